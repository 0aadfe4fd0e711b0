/* pipeline.h - hands decoded packets from the ingest threads to the writer.
 *
 * Packets travel in preallocated batches (up to 512 packets / 512 KiB of
 * frame bytes each). An ingest thread fills a batch and submits it; the
 * writer thread stores every packet and passes the batch on to the analysis
 * thread (stage 1), which gives it back or, with application records,
 * passes it on to the application thread (stage 2) with each packet's flow
 * id and the flows that ended between its packets (events): storing, the
 * TCP analysis and the application layer run on different cores, in the
 * same packet order. A stage may have more than one consumer if they take
 * and handle its batches under a lock of their own (the recorder's writer
 * analyses batches while it has nothing to store: pipeline_queued,
 * pipeline_wait). The lock is taken once per batch, never per packet,
 * and nothing is allocated after start-up but a batch's event list (grown
 * when more flows end within one batch than ever before). When every batch is in flight the producer either waits (file
 * import: nothing may be lost) or drops and counts (live feeds: the receive
 * path must never block). An import keeps few batches in flight unless a
 * consumer stalls (pipeline_new's hot).
 */
#ifndef MSCOPE_PIPELINE_H
#define MSCOPE_PIPELINE_H

#include "flowkey.h"
#include "flowtab.h"

#include <stdint.h>

#define PIPE_BATCH_PKTS 512
#define PIPE_BATCH_BYTES (512u << 10)

typedef struct pipe_pkt {
    int64_t ts_ns;
    uint32_t caplen, origlen;
    uint32_t data_off; /* into batch->data */
    uint32_t payload_off; /* the TCP/UDP payload within the frame (with the analysis; 0: none) */
    uint64_t hash;     /* flowkey_hash(&key) */
    flowkey_t key;     /* also carries the observation point (vni, observer) */
    pkt_ana ana;       /* what the TCP analysis needs */
    uint64_t ana_hash; /* flowtab_ana_from()'s (= flowtab_hash(&ana, ...)) */
} pipe_pkt;

/* Something the analysis did between two packets of a batch that the next
 * stage must see at the same point: a flow's final record (its id). */
typedef struct pipe_event {
    uint64_t flow_id;
    uint32_t pos; /* before the batch's packet pos (n: after the last) */
} pipe_event;

typedef struct pipe_events {
    pipe_event *ev; /* in pos order */
    uint32_t n, cap;
} pipe_events;

typedef struct pipe_batch {
    uint32_t n;
    uint32_t used;
    int64_t first_mono_ns; /* when its first packet arrived (latency bound) */
    pipe_events ev;        /* emptied by pipeline_get() */
    pipe_pkt pkts[PIPE_BATCH_PKTS];
    /* The analysis's, for the application thread: the flow the table put
     * each packet in (0: none). Apart from pkts, which the analysis only
     * reads: eight to a cache line, not one written in each packet's. */
    uint64_t flow_id[PIPE_BATCH_PKTS];
    uint8_t data[PIPE_BATCH_BYTES];
} pipe_batch;

typedef struct pipeline pipeline_t;

/* nbatches batches are allocated now; none later. With hot (an import's
 * pipeline), a producer that waits (pipeline_get(p, 1)) keeps at most hot
 * batches out while the consumers keep up - the same few batches go round,
 * warm in the cache - and twice as many each time it waited 5 ms in vain
 * (a consumer stalled), back down by one every 16 batches after;
 * up to nbatches. 0: nbatches from the start. */
pipeline_t *pipeline_new(unsigned nbatches, unsigned hot);
void pipeline_free(pipeline_t *p);

/* The batches a waiting producer may have out now (pipeline_new's hot,
 * widened by stalls; nbatches without hot). */
unsigned pipeline_room(pipeline_t *p);

/* Take an empty batch. wait=1 blocks until one is free (or the pipeline is
 * closed: NULL) - a producer that had to wait is woken when a few are, not
 * at each one given back; wait=0 returns NULL at once when none is free. */
pipe_batch *pipeline_get(pipeline_t *p, int wait);

/* Hand a filled batch to the writer (ownership passes). Empty batches are
 * returned to the free list. */
void pipeline_submit(pipeline_t *p, pipe_batch *b);

/* Consumer side of stage 0 (the writer) or 1 (the analysis): the next
 * batch, waiting up to timeout_ms; NULL on timeout, or when the stage is
 * closed and drained (then pipeline_drained() is 1). */
pipe_batch *pipeline_next(pipeline_t *p, int stage, int timeout_ms);

/* Wait up to timeout_ms for a batch queued at stage s (not taking it): 1
 * when one is. */
int pipeline_wait(pipeline_t *p, int stage, int timeout_ms);

/* The batches queued at stage s now. */
unsigned pipeline_queued(pipeline_t *p, int stage);

/* Stage s is done with b: hand it to stage s + 1 (s is 0 or 1). A batch
 * straight from pipeline_get() may go to stage 2 with events only. */
void pipeline_pass(pipeline_t *p, int s, pipe_batch *b);

/* Note an event at pos (see pipe_event), after those noted before. */
void pipe_events_add(pipe_events *e, uint32_t pos, uint64_t flow_id);

/* Done with b: back to the free list. */
void pipeline_release(pipeline_t *p, pipe_batch *b);

/* No more batches will enter stage: its consumer drains what is queued,
 * then sees NULL. Close stage 0 when ingest ends, stage 1 when the writer
 * has passed its last batch, stage 2 when the analysis has. */
void pipeline_close(pipeline_t *p, int stage);
int pipeline_drained(pipeline_t *p, int stage);

/* Room for one more packet of caplen bytes? */
static inline int pipe_batch_fits(const pipe_batch *b, uint32_t caplen)
{
    return b->n < PIPE_BATCH_PKTS && b->used + caplen <= PIPE_BATCH_BYTES;
}

#endif
