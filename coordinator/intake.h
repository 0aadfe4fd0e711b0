/* intake.h - the recorders' bus into the database: the SUB socket on the
 * loop, flow and application record batches decoded (into an arena) and
 * encoded for COPY as they come (batch.h), heartbeats to the registry, and the two writers fed
 * (writer.h) - with backpressure instead of drops: when the writers fall
 * --max-pending records behind, the bus is left unread and ZeroMQ holds the
 * recorders back.
 */
#ifndef MSCOPE_INTAKE_H
#define MSCOPE_INTAKE_H

#include "liveset.h"
#include "metrics.h"
#include "registry.h"
#include "spool.h"
#include "writer.h"

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct intake intake_t;

typedef struct intake_opts {
    const char *endpoint;       /* where recorders publish (bound) */
    const bus_sec *sec;         /* CURVE (used at start only); NULL: plain */
    const char *conninfo;       /* for the writers' connections */
    int64_t start_ns;           /* the coordinator's start: batch ids unique across restarts */
    int64_t flush_interval_ns;  /* hand records over at least this often */
    uint64_t batch_records;     /* ... or when this many wait */
    uint64_t max_pending;       /* beyond, the bus waits */
    /* Each record that passed the checks, on the loop thread (monitor.h's
     * series); NULL: none. The record is borrowed for the call. */
    void (*on_record)(void *data, const char *node, const Mirrorscope__FlowRecord *r);
    void *on_record_data;
} intake_opts;

typedef struct intake_stats {
    uint64_t batches, records_in, bad_messages, pending;
    uint64_t refused_peers;     /* connections refused: key not allowed */
    uint64_t bad_records;       /* records with values out of range, dropped (wire.h) */
    uint64_t app_batches, app_records_in; /* application records (topic "app") */
    uint64_t bad_app_records;   /* ... refused (apppb_read, wire_app_ok), dropped */
    int paused;                 /* the bus is held back now */
    writer_stats writers;       /* both writers' counters, summed */
} intake_stats;

/* Bind and start reading. *live (the flows with interim rows, loaded from
 * flows_live) becomes the intake's, even on failure (*live is NULLed);
 * spool and reg are borrowed (close the spool after intake_free). NULL
 * with err set on failure. */
intake_t *intake_new(uv_loop_t *loop, const intake_opts *o, liveset_t **live, spool_t *spool,
                     registry_t *reg, char *err, size_t errlen);

/* Stop reading the bus (at stop; the loop must run to close the watch). */
void intake_stop_reading(intake_t *in);

/* After the loop has stopped: hand what is pending to the writers, let them
 * write it (or spool it), stop them. Blocks until done. */
void intake_finish(intake_t *in);

void intake_get_stats(const intake_t *in, intake_stats *out);

/* Batch write durations, in seconds (filled by the writers' threads). */
const metrics_hist *intake_write_latency(const intake_t *in);

/* Stop reading and the writers (what they hold is written or spooled),
 * close the handles: the loop must run once more to finish closing them.
 * intake_free() does it too. Accept NULL. */
void intake_close(intake_t *in);
void intake_free(intake_t *in);

#endif
