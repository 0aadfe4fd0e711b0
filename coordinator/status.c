/* status.c - the coordinator's figures as stats.json and /metrics (see
 * status.h). One table row per figure. */
#include "status.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

typedef struct status_row {
    const char *key;     /* in stats.json ("search" rows go in its "search" object) */
    const char *metric;  /* after mscope_coordinator_ */
    int counter;         /* 1: counter (name ends in _total), 0: gauge */
    int search;
    size_t off;
    const char *help;
} status_row;

#define F(f) offsetof(coord_figures, f)
static const status_row status_rows[] = {
    { "batches", "bus_batches_total", 1, 0, F(batches), "Flow batches received on the bus." },
    { "heartbeats", "heartbeats_total", 1, 0, F(heartbeats), "Heartbeats received from recorders." },
    { "records_received", "records_received_total", 1, 0, F(records_received), "Flow records received on the bus." },
    { "records_written", "records_written_total", 1, 0, F(records_written), "Flow records written to PostgreSQL." },
    { "records_pending", "records_pending", 0, 0, F(records_pending), "Flow records waiting for a writer." },
    { "records_dropped", "records_dropped_total", 1, 0, F(records_dropped), "Flow records lost: refused by PostgreSQL, or beyond the spool's limit." },
    { "gaps", "bus_gaps_total", 1, 0, F(gaps), "Bus messages lost between recorders and the coordinator (sequence gaps), all nodes." },
    { "restarts", "node_restarts_total", 1, 0, F(restarts), "Recorder restarts seen on the bus." },
    { "bad_messages", "bad_messages_total", 1, 0, F(bad_messages), "Bus messages that could not be decoded." },
    { "nodes", "nodes_known", 0, 0, F(nodes), "Recorders ever heard from since the start." },
    { "db_errors", "db_errors_total", 1, 0, F(db_errors), "Failed database writes (each retried or spooled)." },
    { "db_connected", "db_connected", 0, 0, F(db_connected), "1 when both writers are connected to PostgreSQL." },
    { "records_spooled", "db_spool_records", 0, 0, F(records_spooled), "Flow records waiting on disk for PostgreSQL." },
    { "spool_bytes", "db_spool_bytes", 0, 0, F(spool_bytes), "Bytes of the on-disk spool." },
    { "housekeeping_runs", "housekeeping_runs_total", 1, 0, F(housekeeping_runs), "Housekeeping rounds (retention, indexing of sealed days)." },
    { "housekeeping_errors", "housekeeping_errors_total", 1, 0, F(housekeeping_errors), "Housekeeping rounds that failed." },
    { "queries_active", "queries_active", 0, 0, F(queries_active), "API queries running on the database now." },
    { "rpc_requests", "rpc_requests_total", 1, 0, F(rpc_requests), "RPC requests received." },
    { "rpc_errors", "rpc_errors_total", 1, 0, F(rpc_errors), "RPC requests answered with an error." },
    { "rpc_unauthenticated", "rpc_unauthenticated_total", 1, 0, F(rpc_unauthenticated), "RPC requests refused for a missing or wrong token." },
    { "searches", "searches_total", 1, 1, F(searches), "Distributed searches started." },
    { "completed", "searches_completed_total", 1, 1, F(completed), "Searches every recorder answered in full." },
    { "partial", "searches_partial_total", 1, 1, F(partial), "Searches answered without some recorder (labelled partial)." },
    { "failed", "searches_failed_total", 1, 1, F(failed), "Searches that failed on every recorder." },
    { "cancelled", "searches_cancelled_total", 1, 1, F(cancelled), "Searches cancelled by their client." },
    { "abandoned", "searches_abandoned_total", 1, 1, F(abandoned), "Searches whose client went away or stopped taking data." },
    { "packets", "search_packets_total", 1, 1, F(packets), "Packets sent to search clients." },
    { "bytes", "search_bytes_total", 1, 1, F(bytes), "Capture bytes sent to search clients." },
    { "duplicates", "search_duplicates_total", 1, 1, F(duplicates), "Duplicate packets removed by searches with dedup." },
    { "chunks_out", "search_chunks_total", 1, 1, F(chunks_out), "Capture chunks sent to search clients." },
    { "active", "searches_active", 0, 1, F(active), "Searches running now." },
    { "bytes_held", "search_bytes_held", 0, 1, F(bytes_held), "Bytes held for merging and output now." },
    { "bytes_held_max", "search_bytes_held_max", 0, 1, F(bytes_held_max), "Most bytes ever held for merging and output." },
};
#undef F

#define NROWS (sizeof status_rows / sizeof status_rows[0])

static uint64_t status__get(const coord_figures *f, const status_row *r)
{
    uint64_t v;
    memcpy(&v, (const char *)f + r->off, sizeof v);
    return v;
}

json_t *status_json(const coord_figures *f, const char *version)
{
    json_t *o = json_object(), *s = json_object();
    json_object_set_new(o, "version", json_string(version));
    for (size_t i = 0; i < NROWS; i++)
        json_object_set_new(status_rows[i].search ? s : o, status_rows[i].key,
                            json_integer((json_int_t)status__get(f, &status_rows[i])));
    json_object_set_new(o, "search", s);
    return o;
}

void status_metrics(const coord_figures *f, metrics_t *m)
{
    char name[128];
    for (size_t i = 0; i < NROWS; i++) {
        const status_row *r = &status_rows[i];
        snprintf(name, sizeof name, "mscope_coordinator_%s", r->metric);
        if (r->counter) metrics_counter(m, name, r->help, (double)status__get(f, r));
        else metrics_gauge(m, name, r->help, (double)status__get(f, r));
    }
}
