/* status.c - the recorder's figures: one table row each (see status.h and
 * figures.h); the per-reason arrays are walked by reason name. */
#include "status.h"

#include "figures.h"

#include <stddef.h>
#include <stdio.h>

#define F(f) offsetof(rec_figures, f)
#define DROPS "Packets lost, by reason: queue (the writer was behind), kernel (socket or capture buffer overflow), disk_full (writing paused on a full disk), not_vxlan (UDP messages that are not VXLAN: see not_decapsulated_total)."
#define SEARCHES "Searches ended, by result: completed, failed, cancelled by the requester, abandoned (requester gone or silent), refused (bad token, busy, garbage)."
#define APP_RECORDS "Application transaction records emitted, by kind."
#define APP_MALFORMED "Application messages that did not parse (skipped, or the flow given up), by kind."
#define APP_GAPS "Application messages lost to a gap in a TCP stream (a hole beyond the reassembly bound, a parser stuck at it), by kind."
#define APP_DROPPED "Pending queries or requests dropped at a per-flow bound, by kind."
#define APP_UNMATCHED "Responses to no query or request seen, by kind."
static const figure_row rec_rows[] = {
    { "rx_packets", NULL, "packets_received_total", NULL, NULL, FIG_COUNTER, F(rx_packets), "UDP messages or captured frames received.", 0 },
    { "rx_bytes", NULL, "bytes_received_total", NULL, NULL, FIG_COUNTER, F(rx_bytes), "Bytes of the messages or frames received.", 0 },
    { "accepted", NULL, "packets_accepted_total", NULL, NULL, FIG_COUNTER, F(accepted), "Inner frames handed to the writer.", 0 },
    { "stored_packets", NULL, "packets_stored_total", NULL, NULL, FIG_COUNTER, F(stored_packets), "Packets written to segments.", 0 },
    { "stored_bytes", NULL, "bytes_stored_total", NULL, NULL, FIG_COUNTER, F(stored_bytes), "Bytes of the packets written to segments.", 0 },
    { "queue_drops", NULL, "drops_total", "reason", "queue", FIG_COUNTER, F(queue_drops), DROPS, 0 },
    { "kernel_drops", NULL, "drops_total", "reason", "kernel", FIG_COUNTER, F(kernel_drops), DROPS, 0 },
    { "drop_disk_full", NULL, "drops_total", "reason", "disk_full", FIG_COUNTER, F(drop_disk_full), DROPS, 0 },
    { "not_vxlan", NULL, "drops_total", "reason", "not_vxlan", FIG_COUNTER, F(not_vxlan), DROPS, 0 },
    { "truncated", NULL, "packets_truncated_total", NULL, NULL, FIG_COUNTER, F(truncated), "Messages larger than the receive buffer, stored cut.", 0 },
    { "disk_full_events", NULL, "disk_full_events_total", NULL, NULL, FIG_COUNTER, F(disk_full_events), "Times writing paused on a full disk.", 0 },
    { "paused", NULL, "store_paused", NULL, NULL, FIG_GAUGE, F(paused), "1 while writing is paused on a full disk.", 0 },
    { "segments", NULL, "store_segments", NULL, NULL, FIG_GAUGE, F(segments), "Segments held, the open one included.", 0 },
    { "segments_sealed", NULL, "segments_sealed_total", NULL, NULL, FIG_COUNTER, F(segments_sealed), "Segments sealed with their index.", 0 },
    { "segments_evicted", NULL, "segments_evicted_total", NULL, NULL, FIG_COUNTER, F(segments_evicted), "Oldest segments deleted for the disk budget.", 0 },
    { "recovered_segments", NULL, "segments_recovered_total", NULL, NULL, FIG_COUNTER, F(recovered_segments), "Segments repaired at start-up after a crash.", 0 },
    { "recovered_torn_bytes", NULL, "recovered_torn_bytes_total", NULL, NULL, FIG_COUNTER, F(recovered_torn_bytes), "Bytes of torn records cut off in repairs.", 0 },
    { "disk_used", NULL, "store_bytes", NULL, NULL, FIG_GAUGE, F(disk_used), "Bytes of segments and indexes on disk.", 0 },
    { "oldest_ns", NULL, "store_oldest_seconds", NULL, NULL, FIG_GAUGE_S, F(oldest_ns), "Time of the oldest packet held (Unix seconds; 0 when empty).", 1e-9 },
    { "newest_ns", NULL, "store_newest_seconds", NULL, NULL, FIG_GAUGE_S, F(newest_ns), "Time of the newest packet held (Unix seconds; 0 when empty).", 1e-9 },
    { "flows_active", NULL, "flows_active", NULL, NULL, FIG_GAUGE, F(flows_active), "Flows in the flow table now.", 0 },
    { "flows_created", NULL, "flows_created_total", NULL, NULL, FIG_COUNTER, F(flows_created), "Flows created in the flow table.", 0 },
    { "flows_evicted_full", NULL, "flows_evicted_full_total", NULL, NULL, FIG_COUNTER, F(flows_evicted_full), "Flows closed early because the table was full.", 0 },
    { "flow_records", NULL, "flow_records_total", NULL, NULL, FIG_COUNTER, F(flow_records), "Flow records emitted (final and interim).", 0 },
    { "flow_records_interim", NULL, "flow_records_interim_total", NULL, NULL, FIG_COUNTER, F(flow_records_interim), "Interim flow records emitted.", 0 },
    { "flows_unusable_packets", NULL, "flows_unusable_packets_total", NULL, NULL, FIG_COUNTER, F(flows_unusable_packets), "Packets the analysis could not use (no flow key).", 0 },
    { "flows", "app", "app_flows_total", NULL, NULL, FIG_COUNTER, F(app_flows), "Flows followed for application transactions (DNS, TLS, HTTP).", 0 },
    { "active", "app", "app_flows_active", NULL, NULL, FIG_GAUGE, F(app_active), "Flows followed for application transactions now.", 0 },
    { "pool_full", "app", "app_flows_not_followed_total", NULL, NULL, FIG_COUNTER, F(app_pool_full), "DNS, TLS or HTTP flows not followed: every application slot was in use (--app-flows).", 0 },
    { "buffer_full", "app", "app_segments_not_held_total", NULL, NULL, FIG_COUNTER, F(app_buffer_full), "TCP segments of followed flows whose bytes could not be held (no reassembly buffer free, or a sliced segment): a gap for the parser.", 0 },
    { "dns_records", "app", "app_records_total", "kind", "dns", FIG_COUNTER, F(app_records[0]), APP_RECORDS, 0 },
    { "tls_records", "app", "app_records_total", "kind", "tls", FIG_COUNTER, F(app_records[1]), APP_RECORDS, 0 },
    { "http_records", "app", "app_records_total", "kind", "http", FIG_COUNTER, F(app_records[2]), APP_RECORDS, 0 },
    { "dns_malformed", "app", "app_malformed_total", "kind", "dns", FIG_COUNTER, F(app_malformed[0]), APP_MALFORMED, 0 },
    { "tls_malformed", "app", "app_malformed_total", "kind", "tls", FIG_COUNTER, F(app_malformed[1]), APP_MALFORMED, 0 },
    { "http_malformed", "app", "app_malformed_total", "kind", "http", FIG_COUNTER, F(app_malformed[2]), APP_MALFORMED, 0 },
    { "dns_gaps", "app", "app_gaps_total", "kind", "dns", FIG_COUNTER, F(app_gaps[0]), APP_GAPS, 0 },
    { "tls_gaps", "app", "app_gaps_total", "kind", "tls", FIG_COUNTER, F(app_gaps[1]), APP_GAPS, 0 },
    { "http_gaps", "app", "app_gaps_total", "kind", "http", FIG_COUNTER, F(app_gaps[2]), APP_GAPS, 0 },
    { "dns_dropped", "app", "app_dropped_total", "kind", "dns", FIG_COUNTER, F(app_dropped[0]), APP_DROPPED, 0 },
    { "tls_dropped", "app", "app_dropped_total", "kind", "tls", FIG_COUNTER, F(app_dropped[1]), APP_DROPPED, 0 },
    { "http_dropped", "app", "app_dropped_total", "kind", "http", FIG_COUNTER, F(app_dropped[2]), APP_DROPPED, 0 },
    { "dns_unmatched", "app", "app_unmatched_total", "kind", "dns", FIG_COUNTER, F(app_unmatched[0]), APP_UNMATCHED, 0 },
    { "tls_unmatched", "app", "app_unmatched_total", "kind", "tls", FIG_COUNTER, F(app_unmatched[1]), APP_UNMATCHED, 0 },
    { "http_unmatched", "app", "app_unmatched_total", "kind", "http", FIG_COUNTER, F(app_unmatched[2]), APP_UNMATCHED, 0 },
    { "records_published", NULL, "records_published_total", NULL, NULL, FIG_COUNTER, F(records_published), "Flow records sent to the coordinator.", 0 },
    { "records_shed", NULL, "records_shed_total", NULL, NULL, FIG_COUNTER, F(records_shed), "Flow records shed: the bus queue was full.", 0 },
    { "records_queued", NULL, "records_queued", NULL, NULL, FIG_GAUGE, F(records_queued), "Flow records waiting for the bus.", 0 },
    { "flow_batches", NULL, "bus_batches_total", NULL, NULL, FIG_COUNTER, F(flow_batches), "Flow batches published.", 0 },
    { "heartbeats", NULL, "heartbeats_total", NULL, NULL, FIG_COUNTER, F(heartbeats), "Heartbeats published.", 0 },
    { "app_records_published", NULL, "app_records_published_total", NULL, NULL, FIG_COUNTER, F(app_published), "Application records (DNS, TLS, HTTP) sent to the coordinator.", 0 },
    { "app_records_shed", NULL, "app_records_shed_total", NULL, NULL, FIG_COUNTER, F(app_shed), "Application records shed: their bus queue was full.", 0 },
    { "app_records_queued", NULL, "app_records_queued", NULL, NULL, FIG_GAUGE, F(app_queued), "Application records waiting for the bus.", 0 },
    { "app_batches", NULL, "bus_app_batches_total", NULL, NULL, FIG_COUNTER, F(app_batches), "Application record batches published.", 0 },
    { "requests", "search", "search_messages_total", NULL, NULL, FIG_COUNTER, F(s_requests), "Messages received by the search service.", 0 },
    { "started", "search", "searches_started_total", NULL, NULL, FIG_COUNTER, F(s_started), "Searches started.", 0 },
    { "completed", "search", "search_requests_total", "result", "completed", FIG_COUNTER, F(s_completed), SEARCHES, 0 },
    { "failed", "search", "search_requests_total", "result", "failed", FIG_COUNTER, F(s_failed), SEARCHES, 0 },
    { "cancelled", "search", "search_requests_total", "result", "cancelled", FIG_COUNTER, F(s_cancelled), SEARCHES, 0 },
    { "abandoned", "search", "search_requests_total", "result", "abandoned", FIG_COUNTER, F(s_abandoned), SEARCHES, 0 },
    { "refused", "search", "search_requests_total", "result", "refused", FIG_COUNTER, F(s_refused), SEARCHES, 0 },
    { "refused_peers", "search", "search_peers_refused_total", NULL, NULL, FIG_COUNTER, F(s_refused_peers), "Connections to the search service refused: the peer's key is not allowed (CURVE).", 0 },
    { "chunks", "search", "search_chunks_total", NULL, NULL, FIG_COUNTER, F(s_chunks), "Capture chunks sent to searchers.", 0 },
    { "packets", "search", "search_packets_total", NULL, NULL, FIG_COUNTER, F(s_packets), "Packets sent to searchers.", 0 },
    { "bytes", "search", "search_bytes_total", NULL, NULL, FIG_COUNTER, F(s_bytes), "Capture bytes sent to searchers.", 0 },
    { "active", "search", "searches_active", NULL, NULL, FIG_GAUGE, F(s_active), "Searches running now.", 0 },
    { "buffered_bytes", "search", "search_buffered_bytes", NULL, NULL, FIG_GAUGE, F(s_buffered_bytes), "Bytes in search chunk buffers now.", 0 },
    { "buffered_bytes_max", "search", "search_buffered_bytes_max", NULL, NULL, FIG_GAUGE, F(s_buffered_bytes_max), "Most bytes ever in search chunk buffers.", 0 },
};
#undef F
#define NROWS (sizeof rec_rows / sizeof rec_rows[0])

static json_t *rec_status__reasons(const uint64_t *v, int n, const char *(*name)(int))
{
    json_t *o = json_object();
    for (int i = 1; i < n; i++) json_object_set_new(o, name(i), json_integer((json_int_t)v[i]));
    return o;
}

json_t *rec_status_json(const rec_figures *f, const char *version)
{
    json_t *o = figures_json(rec_rows, NROWS, f);
    json_object_set_new(o, "version", json_string(version));
    json_object_set_new(o, "not_decapsulated",
                        rec_status__reasons(f->not_decapsulated, VX__COUNT, vxlan_reason_name));
    json_object_set_new(o, "anomalies",
                        rec_status__reasons(f->anomalies, DEC__COUNT, decode_reason_name));
    return o;
}

static void rec_status__family(metrics_t *m, const char *name, const char *help, const uint64_t *v,
                               int n, const char *(*reason)(int))
{
    metrics_family(m, name, "counter", help);
    for (int i = 1; i < n; i++) {
        const char *l[] = { "reason", reason(i), NULL };
        metrics_sample(m, name, l, (double)v[i]);
    }
}

void rec_status_metrics(const rec_figures *f, metrics_t *m)
{
    figures_metrics(rec_rows, NROWS, f, "mscope_recorder_", m);
    rec_status__family(m, "mscope_recorder_not_decapsulated_total",
                       "UDP messages dropped because they are not VXLAN, by reason.",
                       f->not_decapsulated, VX__COUNT, vxlan_reason_name);
    rec_status__family(m, "mscope_recorder_anomalies_total",
                       "Malformed inner frames (stored as captured), by reason.", f->anomalies,
                       DEC__COUNT, decode_reason_name);
}
