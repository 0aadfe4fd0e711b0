/* status.h - the recorder's figures, defined once: table rows that give
 * each one's stats.json key and Prometheus name (figures.h), plus the
 * per-reason counts of undecapsulated messages and inner-frame anomalies.
 */
#ifndef MSCOPE_REC_STATUS_H
#define MSCOPE_REC_STATUS_H

#include "decode.h"
#include "metrics.h"

#include <jansson.h>
#include <stdint.h>

typedef struct rec_figures {
    uint64_t rx_packets, rx_bytes, accepted, stored_packets, stored_bytes, queue_drops,
        kernel_drops, truncated, drop_disk_full, not_vxlan, disk_full_events, paused, segments,
        segments_sealed, segments_evicted, recovered_segments, recovered_torn_bytes, disk_used;
    int64_t oldest_ns, newest_ns;
    uint64_t flows_active, flows_created, flows_evicted_full, flow_records, flow_records_interim,
        flows_unusable_packets;
    /* application transactions (appana.h): per kind dns, tls, http */
    uint64_t app_flows, app_active, app_pool_full, app_buffer_full;
    uint64_t app_records[3], app_malformed[3], app_gaps[3], app_dropped[3], app_unmatched[3];
    uint64_t records_published, records_shed, records_queued, flow_batches, heartbeats;
    uint64_t app_published, app_shed, app_queued, app_batches;
    uint64_t s_requests, s_started, s_completed, s_failed, s_cancelled, s_abandoned, s_refused,
        s_refused_peers, s_chunks, s_packets, s_bytes, s_active, s_buffered_bytes, s_buffered_bytes_max;
    uint64_t not_decapsulated[VX__COUNT];
    uint64_t anomalies[DEC__COUNT];
} rec_figures;

/* stats.json's object (a new reference). */
json_t *rec_status_json(const rec_figures *f, const char *version);

/* Every figure as Prometheus metrics (mscope_recorder_*). */
void rec_status_metrics(const rec_figures *f, metrics_t *m);

#endif
