/* store.h - the packet store: append-only nanosecond pcap segments with an
 * index beside each, a disk budget, and crash recovery.
 *
 * Files in the data directory:
 *   seg-000000000042.pcap   packets, as written; tcpdump/Wireshark open it
 *   seg-000000000042.idx    its index (segindex.h), written when sealed
 *   LOCK                    held (flock) by the one daemon writing here
 * A segment without an index is either the open one or one a crash left
 * behind; store_open() repairs and indexes the latter.
 *
 * Threading: one writer thread calls append/tick/close. Readers (search) only
 * read files and never need a lock: segments are append-only and an index
 * appears by rename.
 */
#ifndef MSCOPE_STORE_H
#define MSCOPE_STORE_H

#include "flowkey.h"

#include <stddef.h>
#include <stdint.h>

typedef struct store store_t;

typedef struct store_opts {
    const char *dir;
    int64_t seg_size;   /* roll when a segment would exceed this many bytes */
    int64_t seg_age_ns; /* roll a non-empty segment this long after it opened */
    int64_t max_disk;   /* bytes of segments + indexes to keep; 0 = no limit */
    int64_t min_free;   /* keep this many bytes free on the file system; 0 = no floor */
    int64_t flush_ns;   /* write buffered packets out at least this often */
} store_opts;

typedef struct store_stats {
    uint64_t packets, bytes;        /* stored (written to a segment) */
    uint64_t segments_sealed, segments_evicted, bytes_evicted;
    uint64_t drop_disk_full;        /* packets refused while writing was paused */
    uint64_t disk_full_events;      /* times writing paused */
    uint64_t recovered_segments, recovered_torn_bytes;
    uint64_t disk_used;             /* bytes of segments + indexes now */
    uint64_t segments;              /* segments now, the open one included */
    int64_t oldest_ns, newest_ns;   /* packet times held (0 when empty) */
    int paused;
} store_stats;

/* Open (create) the data directory, take its lock, repair and index segments
 * a crash left unsealed, and apply the disk budget. Returns NULL with err set
 * when the directory cannot be used or another process holds it. */
store_t *store_open(const store_opts *o, char *err, size_t errlen);

/* Append one packet (hash = flowkey_hash(k)). The bytes are copied.
 * Returns 0, or -ENOSPC while writing is paused for lack of space (the packet
 * is counted in drop_disk_full), or another -errno for an I/O error (also
 * counted). */
int store_append(store_t *s, int64_t ts_ns, const uint8_t *data, uint32_t caplen,
                 uint32_t origlen, const flowkey_t *k, uint64_t hash);

/* Prefetch index memory for packets appended soon (see segidx_builder_prefetch). */
void store_prefetch(store_t *s, uint64_t hash_far, uint64_t hash_near);

/* Housekeeping, called at least every 250 ms by the writer thread: flush so
 * packets are searchable within a second, roll aged segments, retry a paused
 * write. now_ns is CLOCK_MONOTONIC. */
void store_tick(store_t *s, int64_t now_ns);

/* Write everything out and seal the open segment. Returns 0, or -errno when
 * some packets could not be written (they were counted). */
int store_flush_seal(store_t *s);

/* Seal, release the lock and free. Accepts NULL. */
void store_close(store_t *s);

void store_get_stats(store_t *s, store_stats *out);

/* "DIR/seg-%012llu.EXT" into buf. */
void store_segment_path(const char *dir, uint64_t seq, const char *ext, char *buf, size_t len);

/* List the segment numbers in dir (from seg-*.pcap names), ascending.
 * Returns the count (array malloc'd into *seqs) or -errno. */
long store_list_segments(const char *dir, uint64_t **seqs);

#endif
