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

/* What a request is, once rpcapi_check() has let it in. */
typedef enum rpcapi_route {
    RPCAPI_REFUSE,  /* answered at once with status and err */
    RPCAPI_CREDIT,  /* search_credit, search_cancel: to the search's stream */
    RPCAPI_CANCEL,
    RPCAPI_SEARCH,  /* to the recorders (scatter.h) */
    RPCAPI_DRILL,   /* a search of the flows a flows query selects (drill.h) */
    RPCAPI_QUERY,   /* a database job (query.h) */
    RPCAPI_MONITOR, /* a monitor request (monitor.h) */
} rpcapi_route;

/* The first steps of every request, without a socket or a database (what
 * tests/fuzz/fuzz_rpc.c drives): decode the len bytes at buf (len < 0: the
 * message was too large), check its token against token, and check what
 * its body asks as far as that can be done here - time ranges, filter
 * values and the SQL they make, a monitor's definition (monitors = 0: the
 * coordinator keeps none, so monitor requests are unknown). *req gets the
 * decoded request (the caller frees it; NULL when it did not decode).
 * Returns the route, or RPCAPI_REFUSE with status and err set. */
rpcapi_route rpcapi_check(const uint8_t *buf, long len, const char *token, int monitors,
                          Mirrorscope__Request **req, Mirrorscope__Response__Status *status,
                          char *err, size_t errlen);

/* Answer requests arriving on sock (borrowed: it must outlive the API and
 * every query in flight; scatter answers on it too). Returns NULL with err
 * set when the socket cannot be watched. */
rpcapi_t *rpcapi_new(uv_loop_t *loop, bus_rpc_t *sock, const rpcapi_opts *o, registry_t *reg,
                     scatter_t *sc, dbpool_t *pool, char *err, size_t errlen);

/* Stop reading requests (queries in flight still get their answers). */
void rpcapi_stop(rpcapi_t *a);

/* The token requests must carry from now on (a reload: SIGHUP). */
void rpcapi_set_token(rpcapi_t *a, const char *token);

void rpcapi_get_stats(const rpcapi_t *a, rpcapi_stats *out);

/* Free once the loop has run dry (no query in flight). Accepts NULL. */
void rpcapi_free(rpcapi_t *a);

#endif
