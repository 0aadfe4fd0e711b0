/* catalog.h - the sealed segments of a data directory by time, each with a
 * summary of its hosts and ports ("DIR/catalog"), so a search opens only the
 * indexes of the segments that overlap its time range and may hold a match,
 * instead of every one.
 *
 * Written by the store whenever its list of sealed segments changes (the
 * entries rewritten, tmp + rename; a new segment's summary appended to
 * "DIR/catalog.sum.GEN"), read by every search. A stale catalog is safe: a
 * segment it does not list (sealed since, or the open one) is opened as
 * before, and one it lists that is gone (evicted since) is skipped because
 * its pcap is. A catalog that is missing, torn or fails its checksum is
 * ignored (every index is opened, as before there was one). Segment files
 * replaced by hand under numbers the catalog lists mislead searches until
 * the next start of a store on the directory, which checks each segment
 * against its entry; delete the catalog files with the segments.
 *
 * The summary is a Bloom filter (64-byte lines, each with its checksum)
 * over the segment's distinct host addresses, their network prefixes (IPv4
 * /8 /16 /24, IPv6 /32 /48 /64), its ports and 256-port blocks: "no" is
 * certain, "maybe" costs an index open. It takes up to 1/256 of the
 * segment's bytes (at least 16 KiB). Segments with odd packets (flowkey.h:
 * their headers are not judged) and segments with more distinct keys than
 * that holds have none; both are always opened.
 */
#ifndef MSCOPE_CATALOG_H
#define MSCOPE_CATALOG_H

#include "segindex.h"

#include <stddef.h>
#include <stdint.h>

#define CATALOG_ODD 0x1 /* the segment holds odd packets: never pruned by its summary */

typedef struct catalog_entry {
    uint64_t seq;
    int64_t min_ts, max_ts; /* inclusive; 0 and 0 with no packets */
    uint64_t packets;
    uint32_t flags;         /* CATALOG_* */
    uint32_t bloom_bytes;   /* 0: no summary, else a power of two >= 64 */
    const uint8_t *bloom;   /* bloom_bytes of lines, then a CRC-32C per line */
    /* Without bloom: the catalog_read_lines whose summary file holds the
     * summary, at bloom_off; else NULL (zero-initialized entries have none). */
    const struct catalog *file;
    uint64_t bloom_off;
} catalog_entry;

/* Summarize segment seq's sealed index into e (seq, flags, bloom,
 * bloom_bytes; the bloom is malloc'd, NULL when the segment gets none: free
 * it; the times and packet count are left as they are). The filter's hashes depend on seq: an entry is only read under the
 * seq it was made for. Reads the host and port tables and the odd flows
 * through their checksums: a damaged index gets no summary. */
void catalog_summarize(const segidx_t *ix, uint64_t seq, catalog_entry *e);

/* The same summary from the keys segidx_builder_write gave of the index
 * (pcap_bytes: the segment's, as in its header). */
void catalog_summarize_keys(const segidx_keys *k, uint64_t pcap_bytes, uint64_t seq,
                            catalog_entry *e);

/* The store's writer of dir's catalog. It remembers which summaries its
 * summary file holds, so a seal appends only its own; at open it adopts
 * the catalog and summary file an earlier writer left (a start-up then
 * summarizes only the segments they lack). */
typedef struct catalog_writer catalog_writer_t;
catalog_writer_t *catalog_writer_open(const char *dir);
void catalog_writer_free(catalog_writer_t *w);

/* 1 when the writer has segment e->seq's summary (or its decision of none),
 * made when the segment had e's times and packet count; a summary made for
 * other ones (the number reused, the segment cut back) is forgotten: 0. */
int catalog_writer_known(catalog_writer_t *w, const catalog_entry *e);

/* Append segment e->seq's summary (e->bloom, e->flags, and its times and
 * packet count) to the summary file, unless the writer has one. Returns 0
 * or -errno. */
int catalog_writer_add(catalog_writer_t *w, const catalog_entry *e);

/* Make dir's catalog these entries (seq, times, packets; ascending seq),
 * each with the summary added for it, if any. Forgets the summaries of
 * segments no longer listed, and starts a new generation without them
 * once they outweigh the living. Returns 0 or -errno (the old catalog
 * stays, still whole). */
int catalog_writer_put(catalog_writer_t *w, const catalog_entry *e, size_t n);

/* A catalog as read: its entries, whose summaries point into the mapped
 * summary file, or are read from it line by line (catalog_release unmaps
 * or closes it). Read line by line, the entries point back at the
 * catalog_t: it stays where it was read into until released. */
typedef struct catalog {
    catalog_entry *e; /* ascending seq */
    size_t n;
    void *map;
    size_t map_size;
    int fd;       /* the summary file, for catalog_read_lines; else -1 */
    uint64_t gen; /* of the summary file */
} catalog_t;

/* Read dir's catalog into c, its summary file mapped. Returns the number of
 * entries, or -1 with err set when there is none or its header or entries
 * are damaged (a damaged summary line is found when it is read, and then
 * says "maybe"). */
long catalog_read(const char *dir, catalog_t *c, char *err, size_t errlen);
/* The same, but the summaries stay in their file: each test reads its one
 * line and that line's checksum (two preads). For a search, which tests a
 * line or two of each of thousands of summaries: mapping the summary file
 * faults in (and unmapping tears down) nearly every page of it - 17 MB at
 * 2 000 segments, which cost more than the tests. */
long catalog_read_lines(const char *dir, catalog_t *c, char *err, size_t errlen);
void catalog_release(catalog_t *c);

/* The entry of seq in e[0..n) (ascending seq), or NULL. */
const catalog_entry *catalog_find(const catalog_entry *e, size_t n, uint64_t seq);

/* 0 when the segment holds no host address in [lo, hi] (IPv4 mapped) and
 * no port in [lo, hi], 1 when it may (or has no summary to say). */
int catalog_may_hold_hosts(const catalog_entry *e, const uint8_t lo[16], const uint8_t hi[16]);
int catalog_may_hold_ports(const catalog_entry *e, uint16_t lo, uint16_t hi);

#endif
