/* drill.h - drill-down: the packets of exactly the flows a flows query
 * selects, in one merged capture (`mscope flows ... -w FILE`, REST
 * GET /api/v1/flows/pcap).
 *
 * A search whose SearchQuery has flows_of: the coordinator runs that flows
 * query (as `mscope flows` would, up to its limit), groups the flows by the
 * recorder that saw each, and asks each recorder for exactly its flows
 * (SearchQuery.flows: observation point, protocol, both endpoints, time
 * span); the answers merge and stream as any search's. The trailer says how
 * many flows were selected, whether the limit cut the selection, and how
 * many flows belong to recorders the coordinator no longer knows.
 */
#ifndef MSCOPE_DRILL_H
#define MSCOPE_DRILL_H

#include "bus.h"
#include "dbpool.h"
#include "mirrorscope.pb-c.h"
#include "registry.h"
#include "scatter.h"

#define DRILL_DEFAULT_FLOWS 10000u
#define DRILL_MAX_FLOWS 100000u

typedef struct drill_env {
    dbpool_t *pool;
    registry_t *reg;
    scatter_t *sc;
} drill_env;

/* Called once on the loop when the flows query has run: ok = 1, the search
 * runs (answers go to the client or sink from the next loop turn on: a
 * sink's stream must be ready when this returns); ok = 0, it could not
 * start: bad is set when the request was wrong (a bad filter value), err
 * says why. */
typedef void (*drill_started_fn)(void *ctx, int ok, int bad, const char *err);

/* Check a drill-down request without starting it (no database): the flows
 * query's limit, time range and filter values (querysql_flows()). Returns 0,
 * or -1 with err set (a bad request). */
int drill_check(const Mirrorscope__SearchQuery *q, char *err, size_t errlen);

/* Start the drill-down q->flows_of for client/id (as scatter_start(), sink
 * NULL: the RPC client on the ROUTER). q is checked (drill_check()) and copied. Returns 0: the flows
 * query runs, and started(ctx) comes; -1 with err set: nothing runs and
 * started is not called. */
int drill_start(const drill_env *env, const bus_peer *client, uint64_t id,
                const Mirrorscope__SearchQuery *q, const scatter_sink *sink,
                drill_started_fn started, void *ctx, char *err, size_t errlen);

#endif
