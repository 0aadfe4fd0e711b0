/* monrest.h - the REST API's monitor endpoints (restapi.c routes them here
 * once the token is checked):
 *
 *   GET    /api/v1/monitors                    {"monitors": [Monitor]}
 *   POST   /api/v1/monitors         (Monitor)  201 Monitor
 *   GET    /api/v1/monitors/NAME               Monitor
 *   PUT    /api/v1/monitors/NAME    (Monitor)  Monitor (the whole definition replaced)
 *   DELETE /api/v1/monitors/NAME               Monitor (as it was)
 *   GET    /api/v1/monitors/NAME/series?from=&to=   {"minutes": [MonitorMinute]}
 *
 * Each becomes the RPC's Request and runs through monitor_submit(), so both
 * APIs check the same things with the same words. Errors are JSON
 * {"error", "status"}: 400, 404 (no such monitor), 405, 409 (the name is
 * taken), 503.
 */
#ifndef MSCOPE_MONREST_H
#define MSCOPE_MONREST_H

#include "httpd.h"
#include "monitor.h"

#include <stdint.h>

/* 1 when path is one of ours. */
int monrest_path(const char *path);

/* The token needed: 1 admin (a change), 0 read. */
int monrest_needs_admin(httpd_req_t *r);

/* Answer r (now or after a database job). errors counts the refusals. */
void monrest_handle(monitor_set_t *m, httpd_req_t *r, uint64_t *errors);

#endif
