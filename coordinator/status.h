/* status.h - the coordinator's figures, defined once: each is a row of one
 * table that gives its stats.json key and its Prometheus name, type and
 * help, so the file and /metrics can never disagree or miss one.
 */
#ifndef MSCOPE_STATUS_H
#define MSCOPE_STATUS_H

#include "metrics.h"

#include <jansson.h>
#include <stdint.h>

typedef struct coord_figures {
    /* bus and records */
    uint64_t batches, heartbeats, records_received, records_written, records_pending,
        records_dropped, gaps, restarts, bad_messages, bad_records, bus_refused, rpc_refused, nodes;
    uint64_t app_batches, app_records_received, app_records_written, app_records_dropped,
        bad_app_records;
    /* database */
    uint64_t db_errors, db_connected, records_spooled, spool_bytes, housekeeping_runs,
        housekeeping_errors, queries_active;
    /* RPC and REST */
    uint64_t rpc_requests, rpc_errors, rpc_unauthenticated;
    uint64_t rest_requests, rest_errors, rest_unauthenticated, rest_forbidden, rest_streams;
    /* search */
    uint64_t searches, completed, partial, failed, cancelled, abandoned, packets, bytes,
        duplicates, chunks_out, active, bytes_held, bytes_held_max;
} coord_figures;

/* stats.json's object (a new reference). */
json_t *status_json(const coord_figures *f, const char *version);

/* Every figure as Prometheus metrics (mscope_coordinator_*). */
void status_metrics(const coord_figures *f, metrics_t *m);

#endif
