/* merge.h - k-way merge of time-ordered packet streams into one, the heart
 * of the distributed search (one stream per recorder) and of `mscope merge`.
 *
 * Each stream arrives as chunks of pcap records (16-byte nanosecond record
 * headers, native byte order, then the captured bytes), each chunk in time
 * order and each stream in time order across its chunks. The merge orders
 * by (timestamp, stream index, position in the stream): callers number
 * streams in a stable order (the coordinator sorts nodes by name), so the
 * same inputs always give the same output.
 *
 * Memory is what the caller pushes: the merge copies nothing and keeps a
 * chunk only until its last packet has been taken, then hands it back
 * through the release callback (the coordinator grants the node one more
 * chunk there). Optional deduplication drops a packet identical to one
 * already emitted within a time window (the same packet mirrored at two
 * observation points), comparing what dedup.h compares (the broker's rule).
 */
#ifndef MSCOPE_MERGE_H
#define MSCOPE_MERGE_H

#include <stddef.h>
#include <stdint.h>

typedef struct merge merge_t;

/* Called when every packet of a chunk has been taken (and the packet last
 * returned from it is no longer in use). */
typedef void (*merge_release_fn)(void *ctx, int stream, void *owner);

typedef struct merge_pkt {
    int64_t ts_ns;
    uint32_t caplen, origlen;
    const uint8_t *rec;  /* the whole record: header then data */
    const uint8_t *data;
    int stream;
} merge_pkt;

typedef struct merge_stats {
    uint64_t packets, bytes;  /* returned */
    uint64_t duplicates;      /* dropped by dedup */
    uint64_t bad_chunks;      /* refused by merge_push (malformed) */
    uint64_t disorder;        /* a stream went back in time (merged as it came) */
    uint64_t chunks_held;     /* now */
    uint64_t bytes_held;      /* now */
    uint64_t bytes_held_max;  /* ever */
} merge_stats;

merge_t *merge_new(int nstreams, merge_release_fn release, void *ctx);

/* Drop a packet identical to one returned less than window_ns before it.
 * 0 (the default) turns deduplication off. */
void merge_set_dedup(merge_t *m, int64_t window_ns);

/* Append a chunk of len bytes at recs to a stream; owner is handed to the
 * release callback when the chunk has been consumed (also when the merge is
 * freed). An empty chunk is released at once. Returns 0, or -EPROTO when
 * the chunk does not hold whole records (it is released, nothing merged). */
int merge_push(merge_t *m, int stream, const uint8_t *recs, size_t len, void *owner);

/* The stream will get no more chunks (finished, failed or given up). What it
 * already has is still merged. */
void merge_end(merge_t *m, int stream);

/* The next packet in order. Returns 1 with *p filled (valid until the next
 * call), 0 when a stream that has not ended has nothing buffered (*waiting
 * is set to it: push to it or end it), -1 when every stream has ended and
 * everything has been returned. */
int merge_next(merge_t *m, merge_pkt *p, int *waiting);

void merge_get_stats(const merge_t *m, merge_stats *out);

/* Release whatever is still held, then free. Accepts NULL. */
void merge_free(merge_t *m);

#endif
