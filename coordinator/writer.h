/* writer.h - the coordinator's database writer thread.
 *
 * The loop thread decodes the bus and turns records into COPY data while
 * the writers write the previous batches: on two cores the coordinator's
 * work and PostgreSQL's overlap instead of taking turns. The handover is a
 * double buffer: the loop thread offers its sealed batch when the writer is
 * idle and gets an empty one back; while the writer is busy the loop
 * thread's batch keeps growing (bounded by the caller), so batches grow
 * with the load.
 *
 * Each writer has its own connection; the coordinator runs two: the first
 * writes the batches that must keep their order (interim records, and the
 * finals that replace them) and the spool, the second writes plain final
 * records in parallel (PostgreSQL's COPY is one core per connection). A
 * batch a writer cannot write goes to the shared spool (fsync'd); every
 * second the first writer reconnects when needed and writes the spool
 * back, oldest first, before anything newer of its own.
 */
#ifndef MSCOPE_WRITER_H
#define MSCOPE_WRITER_H

#include "db.h"
#include "metrics.h"
#include "spool.h"

#include <stdint.h>

typedef struct writer writer_t;

typedef struct writer_stats {
    uint64_t records_written, records_dropped, batches_written, db_errors; /* flow records */
    uint64_t app_written, app_dropped;  /* application records */
    uint64_t records_spooled, spool_bytes;
    int connected;
} writer_stats;

/* Start the thread with its own connection (may fail now: it retries).
 * replayer: this writer writes the spool back (one writer may). The spool
 * stays the caller's. on_idle (may be NULL) is called from the writer's
 * thread each time it has finished a batch and can take the next: the
 * coordinator wakes its loop with it (uv_async_send is safe there).
 * latency (may be NULL, borrowed) gets each written batch's duration. */
writer_t *writer_start(const char *conninfo, spool_t *spool, int replayer,
                       void (*on_idle)(void *), void *arg, metrics_hist *latency);

/* 1 while it has a batch to write (check before sealing the next one). */
int writer_busy(writer_t *w);

/* Hand over *b (sealed) if the writer is idle: *b becomes an empty batch,
 * the one the writer held. Returns 1 when taken, 0 when the writer is busy
 * (keep appending). Batches change hands, and so owners: the caller frees
 * the ones it holds at the end, writer_stop() the one its writer holds. A
 * batch may go to any writer. */
int writer_offer(writer_t *w, batch_t **b);

void writer_get_stats(writer_t *w, writer_stats *out);

/* Write or spool what was handed over, then stop and free; the last
 * counters go to *final (may be NULL). Accepts NULL. */
void writer_stop(writer_t *w, writer_stats *final);

#endif
