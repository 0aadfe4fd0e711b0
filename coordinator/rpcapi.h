/* rpcapi.h - the coordinator's protobuf RPC API on its libuv loop.
 *
 * Requests come on the ROUTER (bus.h) from REQ or DEALER clients. Each is
 * authenticated by the RPC token; searches, credit and cancels go to the
 * scatter module at once; queries (nodes, flows, top talkers, series) and
 * monitor requests (monitor.h) run
 * as database jobs (dbpool.h) and are answered, by request id, when they
 * end - so a slow query never holds up the bus or another client.
 */
#ifndef MSCOPE_RPCAPI_H
#define MSCOPE_RPCAPI_H

#include "bus.h"
#include "dbpool.h"
#include "monitor.h"
#include "registry.h"
#include "scatter.h"

#include <stdint.h>
#include <uv.h>

#define RPCAPI_REQUEST_MAX (1u << 20) /* a request: a query with its filters */

typedef struct rpcapi rpcapi_t;

typedef struct rpcapi_opts {
    const char *token;        /* copied */
    int64_t stale_ns, dead_ns;  /* node states in ListNodes; search's "alive" */
    int max_queries;          /* queries in flight; more are answered "busy" */
    monitor_set_t *monitors;  /* borrowed: monitor requests; NULL refuses them */
} rpcapi_opts;

typedef struct rpcapi_stats {
    uint64_t requests, errors, unauthenticated, queries_active;
} rpcapi_stats;

/* Answer requests arriving on sock (borrowed: it must outlive the API and
 * every query in flight; scatter answers on it too). Returns NULL with err
 * set when the socket cannot be watched. */
rpcapi_t *rpcapi_new(uv_loop_t *loop, bus_rpc_t *sock, const rpcapi_opts *o, registry_t *reg,
                     scatter_t *sc, dbpool_t *pool, char *err, size_t errlen);

/* Stop reading requests (queries in flight still get their answers). */
void rpcapi_stop(rpcapi_t *a);

void rpcapi_get_stats(const rpcapi_t *a, rpcapi_stats *out);

/* Free once the loop has run dry (no query in flight). Accepts NULL. */
void rpcapi_free(rpcapi_t *a);

#endif
