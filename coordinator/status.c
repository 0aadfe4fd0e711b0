/* status.c - the coordinator's figures: one table row each (see status.h
 * and figures.h). */
#include "status.h"

#include "figures.h"

#include <stddef.h>

#define F(f) offsetof(coord_figures, f)
#define FINISHED "Searches ended, by result: completed (every recorder answered), partial (some did not: labelled so), failed, cancelled by the client, abandoned (the client went away or stopped taking data)."
static const figure_row status_rows[] = {
    { "batches", NULL, "bus_batches_total", NULL, NULL, FIG_COUNTER, F(batches), "Flow batches received on the bus.", 0 },
    { "heartbeats", NULL, "heartbeats_total", NULL, NULL, FIG_COUNTER, F(heartbeats), "Heartbeats received from recorders.", 0 },
    { "records_received", NULL, "records_received_total", NULL, NULL, FIG_COUNTER, F(records_received), "Flow records received on the bus.", 0 },
    { "records_written", NULL, "records_written_total", NULL, NULL, FIG_COUNTER, F(records_written), "Flow records written to PostgreSQL.", 0 },
    { "records_pending", NULL, "records_pending", NULL, NULL, FIG_GAUGE, F(records_pending), "Records (flow and application) waiting for a writer.", 0 },
    { "records_dropped", NULL, "records_dropped_total", NULL, NULL, FIG_COUNTER, F(records_dropped), "Flow records lost: refused by PostgreSQL, or beyond the spool's limit.", 0 },
    /* /metrics has it per node (mscope_coordinator_bus_gaps_total{node}): sum() for all. */
    { "gaps", NULL, NULL, NULL, NULL, FIG_COUNTER, F(gaps), NULL, 0 },
    { "restarts", NULL, "node_restarts_total", NULL, NULL, FIG_COUNTER, F(restarts), "Recorder restarts seen on the bus.", 0 },
    { "bad_messages", NULL, "bad_messages_total", NULL, NULL, FIG_COUNTER, F(bad_messages), "Bus messages that could not be decoded.", 0 },
    { "bad_records", NULL, "bad_records_total", NULL, NULL, FIG_COUNTER, F(bad_records), "Flow records dropped on arrival: a value no recorder sends (out of range, too long).", 0 },
    { "app_batches", NULL, "bus_app_batches_total", NULL, NULL, FIG_COUNTER, F(app_batches), "Application record batches (DNS, TLS, HTTP) received on the bus.", 0 },
    { "app_records_received", NULL, "app_records_received_total", NULL, NULL, FIG_COUNTER, F(app_records_received), "Application records received on the bus.", 0 },
    { "app_records_written", NULL, "app_records_written_total", NULL, NULL, FIG_COUNTER, F(app_records_written), "Application records written to PostgreSQL.", 0 },
    { "app_records_dropped", NULL, "app_records_dropped_total", NULL, NULL, FIG_COUNTER, F(app_records_dropped), "Application records lost: refused by PostgreSQL, or beyond the spool's limit.", 0 },
    { "bad_app_records", NULL, "bad_app_records_total", NULL, NULL, FIG_COUNTER, F(bad_app_records), "Application records dropped on arrival: a value no recorder sends (out of range, too long, no kind).", 0 },
    { "bus_refused", NULL, "bus_peers_refused_total", NULL, NULL, FIG_COUNTER, F(bus_refused), "Connections to the bus refused: the peer's key is not allowed, or not with role recorder (CURVE).", 0 },
    { "rpc_refused", NULL, "rpc_peers_refused_total", NULL, NULL, FIG_COUNTER, F(rpc_refused), "Connections to the RPC refused: the peer's key is not allowed, or not with role client (CURVE).", 0 },
    { "nodes", NULL, "nodes_known", NULL, NULL, FIG_GAUGE, F(nodes), "Recorders ever heard from since the start.", 0 },
    { "db_errors", NULL, "db_errors_total", NULL, NULL, FIG_COUNTER, F(db_errors), "Failed database writes (each retried or spooled).", 0 },
    { "db_connected", NULL, "db_connected", NULL, NULL, FIG_GAUGE, F(db_connected), "1 when both writers are connected to PostgreSQL.", 0 },
    { "records_spooled", NULL, "db_spool_records", NULL, NULL, FIG_GAUGE, F(records_spooled), "Flow records waiting on disk for PostgreSQL.", 0 },
    { "spool_bytes", NULL, "db_spool_bytes", NULL, NULL, FIG_GAUGE, F(spool_bytes), "Bytes of the on-disk spool.", 0 },
    { "housekeeping_runs", NULL, "housekeeping_runs_total", NULL, NULL, FIG_COUNTER, F(housekeeping_runs), "Housekeeping rounds (retention, indexing of sealed days).", 0 },
    { "housekeeping_errors", NULL, "housekeeping_errors_total", NULL, NULL, FIG_COUNTER, F(housekeeping_errors), "Housekeeping rounds that failed.", 0 },
    { "queries_active", NULL, "queries_active", NULL, NULL, FIG_GAUGE, F(queries_active), "API queries running on the database now.", 0 },
    { "rpc_requests", NULL, "rpc_requests_total", NULL, NULL, FIG_COUNTER, F(rpc_requests), "RPC requests received.", 0 },
    { "rpc_errors", NULL, "rpc_errors_total", NULL, NULL, FIG_COUNTER, F(rpc_errors), "RPC requests answered with an error.", 0 },
    { "rpc_unauthenticated", NULL, "rpc_unauthenticated_total", NULL, NULL, FIG_COUNTER, F(rpc_unauthenticated), "RPC requests refused for a missing or wrong token.", 0 },
    { "rest_requests", NULL, "rest_requests_total", NULL, NULL, FIG_COUNTER, F(rest_requests), "REST API requests received.", 0 },
    { "rest_errors", NULL, "rest_errors_total", NULL, NULL, FIG_COUNTER, F(rest_errors), "REST API requests answered with an error status.", 0 },
    { "rest_unauthenticated", NULL, "rest_unauthenticated_total", NULL, NULL, FIG_COUNTER, F(rest_unauthenticated), "REST API requests refused for a missing or wrong token (401).", 0 },
    { "rest_forbidden", NULL, "rest_forbidden_total", NULL, NULL, FIG_COUNTER, F(rest_forbidden), "REST API requests refused for needing the admin token (403).", 0 },
    { "rest_streams", NULL, "rest_streams_active", NULL, NULL, FIG_GAUGE, F(rest_streams), "REST answers streaming now (exports, searches).", 0 },
    { "searches", "search", "searches_total", NULL, NULL, FIG_COUNTER, F(searches), "Distributed searches started.", 0 },
    { "completed", "search", "searches_finished_total", "result", "completed", FIG_COUNTER, F(completed), FINISHED, 0 },
    { "partial", "search", "searches_finished_total", "result", "partial", FIG_COUNTER, F(partial), FINISHED, 0 },
    { "failed", "search", "searches_finished_total", "result", "failed", FIG_COUNTER, F(failed), FINISHED, 0 },
    { "cancelled", "search", "searches_finished_total", "result", "cancelled", FIG_COUNTER, F(cancelled), FINISHED, 0 },
    { "abandoned", "search", "searches_finished_total", "result", "abandoned", FIG_COUNTER, F(abandoned), FINISHED, 0 },
    { "packets", "search", "search_packets_total", NULL, NULL, FIG_COUNTER, F(packets), "Packets sent to search clients.", 0 },
    { "bytes", "search", "search_bytes_total", NULL, NULL, FIG_COUNTER, F(bytes), "Capture bytes sent to search clients.", 0 },
    { "duplicates", "search", "search_duplicates_total", NULL, NULL, FIG_COUNTER, F(duplicates), "Duplicate packets removed by searches with dedup.", 0 },
    { "chunks_out", "search", "search_chunks_total", NULL, NULL, FIG_COUNTER, F(chunks_out), "Capture chunks sent to search clients.", 0 },
    { "active", "search", "searches_active", NULL, NULL, FIG_GAUGE, F(active), "Searches running now.", 0 },
    { "bytes_held", "search", "search_bytes_held", NULL, NULL, FIG_GAUGE, F(bytes_held), "Bytes held for merging and output now.", 0 },
    { "bytes_held_max", "search", "search_bytes_held_max", NULL, NULL, FIG_GAUGE, F(bytes_held_max), "Most bytes ever held for merging and output.", 0 },
};
#undef F
#undef FINISHED

#define NROWS (sizeof status_rows / sizeof status_rows[0])

json_t *status_json(const coord_figures *f, const char *version)
{
    json_t *o = figures_json(status_rows, NROWS, f);
    json_object_set_new(o, "version", json_string(version));
    return o;
}

void status_metrics(const coord_figures *f, metrics_t *m)
{
    figures_metrics(status_rows, NROWS, f, "mscope_coordinator_", m);
}
