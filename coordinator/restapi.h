/* restapi.h - the coordinator's REST API under /api/v1/ (JSON over HTTP).
 *
 * The same questions the RPC API answers, from the same query layer
 * (query.h): nodes, flows (every RPC filter, newest first, paged with a
 * cursor; `Accept: application/x-ndjson` streams every matching flow),
 * top talkers, per-minute series, monitors (monrest.h) - and the
 * distributed search, whose pcap
 * streams as fast as the HTTP client takes it. Rows are the .proto's
 * messages as JSON (pbjson.h). Bearer tokens: the read token for queries,
 * the admin token for everything (searches return packets: admin only).
 * Errors are JSON {"error", "status"} with a fitting HTTP status. The
 * OpenAPI document is served at /api/v1/openapi.json.
 */
#ifndef MSCOPE_RESTAPI_H
#define MSCOPE_RESTAPI_H

#include "dbpool.h"
#include "httpd.h"
#include "monitor.h"
#include "registry.h"
#include "scatter.h"

#include <stdint.h>
#include <uv.h>

typedef struct restapi restapi_t;

typedef struct restapi_opts {
    const char *read_token, *admin_token; /* copied */
    int64_t stale_ns, dead_ns;
    int max_queries;                      /* database jobs in flight; more: 503 */
    monitor_set_t *monitors;              /* borrowed: /api/v1/monitors (monrest.h); NULL: 404 */
} restapi_opts;

typedef struct restapi_stats {
    uint64_t requests, errors, unauthenticated, forbidden, queries_active, streams_active;
} restapi_stats;

/* Add the routes to http (borrowed, as are the others; a timer of ours
 * lives on loop until restapi_close()). */
restapi_t *restapi_new(uv_loop_t *loop, httpd_t *http, const restapi_opts *o, registry_t *reg,
                       scatter_t *sc, dbpool_t *pool);

/* Close the module's handle (at stop; the loop must run once more). */
void restapi_close(restapi_t *a);

/* The tokens requests must carry from now on (a reload: SIGHUP). */
void restapi_set_tokens(restapi_t *a, const char *read_token, const char *admin_token);

void restapi_get_stats(const restapi_t *a, restapi_stats *out);

/* Free once the loop has stopped (no job in flight). Accepts NULL. */
void restapi_free(restapi_t *a);

#endif
