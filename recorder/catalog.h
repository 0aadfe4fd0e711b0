/* catalog.h - the sealed segments of a data directory by time
 * ("DIR/catalog"), so a search opens only the indexes of the segments that
 * overlap its time range instead of every one.
 *
 * Written by the store (tmp + rename) whenever its list of sealed segments
 * changes, read by every search. A stale catalog is always safe: a segment
 * it does not list (sealed since, or the open one) is opened as before, and
 * one it lists that is gone (evicted since) is skipped because its pcap is.
 * A catalog that is missing, torn or fails its checksum is ignored (every
 * index is opened, as before there was one).
 */
#ifndef MSCOPE_CATALOG_H
#define MSCOPE_CATALOG_H

#include <stddef.h>
#include <stdint.h>

typedef struct catalog_entry {
    uint64_t seq;
    int64_t min_ts, max_ts; /* inclusive; 0 and 0 with no packets */
    uint64_t packets;
} catalog_entry;

/* Replace dir's catalog with these entries (ascending seq). Returns 0 or
 * -errno (the old catalog stays). */
int catalog_write(const char *dir, const catalog_entry *e, size_t n);

/* dir's catalog (*out: ascending seq; free it). Returns the number of
 * entries, or -1 with err set when there is none or it is damaged. */
long catalog_read(const char *dir, catalog_entry **out, char *err, size_t errlen);

/* The entry of seq in e[0..n) (ascending seq), or NULL. */
const catalog_entry *catalog_find(const catalog_entry *e, size_t n, uint64_t seq);

#endif
