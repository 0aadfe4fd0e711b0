/* dedup.c - duplicate packet suppression (see dedup.h).
 *
 * DESIGN: the table is an array of 4-entry buckets, each one cache line
 * (4 hashes, 4 times). A lookup reads one line: an entry with the same hash
 * younger than the window is a duplicate; otherwise the packet takes an
 * expired entry or the oldest one. Times are the packets' own timestamps, so
 * a replayed file deduplicates as the live feed would. Time going backwards
 * (reordered copies) is measured as a distance either way.
 */
#include "dedup.h"

#include "hash.h"
#include "xmalloc.h"

#include <stdlib.h>
#include <string.h>

#define DEDUP_WAYS 4

typedef struct dedup_bucket {
    uint64_t key[DEDUP_WAYS];
    int64_t ts[DEDUP_WAYS];
} dedup_bucket;

struct dedup {
    dedup_bucket *b;
    uint64_t mask;
    int64_t window;
    uint64_t key[2]; /* SipHash's (dedup.h: why keyed) */
};

dedup_t *dedup_new(uint32_t slots, int64_t window_ns)
{
    uint64_t n = 16;
    while (n * DEDUP_WAYS < slots) n <<= 1;
    dedup_t *d = xcalloc(1, sizeof *d);
    d->b = xcalloc(n, sizeof *d->b);
    d->mask = n - 1;
    d->window = window_ns;
    hash_random(d->key, sizeof d->key);
    return d;
}

uint64_t dedup_key(const dedup_t *d, const uint8_t *frame, uint32_t caplen, const pkt_info_t *pi)
{
    uint32_t off = pi->l3_off;
    /* The fixed fields go first, as whole words (zero padded); their length
     * and the protocol's tag in front keep the three forms apart. */
    uint8_t h[24] = { 0 };
    if (pi->l3 == PKT_L3_IPV4 && caplen >= off + 20) {
        /* Bytes 0-7 (version .. fragment), 9 (protocol), 12-19 (addresses). */
        h[0] = 4;
        memcpy(h + 1, frame + off, 8);
        h[9] = frame[off + 9];
        memcpy(h + 10, frame + off + 12, 8);
        uint32_t end = off + pi->ip_len < caplen ? off + pi->ip_len : caplen;
        if (end < off + 20) end = off + 20;
        return hash_sip13(d->key, h, 24, frame + off + 20, end - off - 20);
    }
    if (pi->l3 == PKT_L3_IPV6 && caplen >= off + 40) {
        /* Everything but byte 7, the hop limit. ip_len is 0 when the version
         * is not 6 (decode stops before the length): then the header alone,
         * not end - off - 8 wrapped to 4 GiB (a read far past the frame). */
        h[0] = 6;
        memcpy(h + 1, frame + off, 7);
        uint32_t end = off + pi->ip_len < caplen ? off + pi->ip_len : caplen;
        if (end < off + 40) end = off + 40;
        return hash_sip13(d->key, h, 8, frame + off + 8, end - off - 8);
    }
    if (off > caplen) off = caplen;
    h[0] = 1;
    return hash_sip13(d->key, h, 8, frame + off, caplen - off);
}

int dedup_check(dedup_t *d, uint64_t key, int64_t ts_ns)
{
    if (!key) key = 1; /* 0 marks an empty entry */
    dedup_bucket *b = &d->b[(key >> 7) & d->mask];
    int victim = 0;
    for (int i = 0; i < DEDUP_WAYS; i++) {
        int64_t age = ts_ns - b->ts[i];
        if (age < 0) age = -age;
        if (b->key[i] == key && age <= d->window) return 1;
        if (!b->key[i] || age > d->window) {
            victim = i;
            b->key[i] = 0; /* expired: free for the taking */
        } else if (b->key[victim] && b->ts[i] < b->ts[victim]) {
            victim = i;
        }
    }
    b->key[victim] = key;
    b->ts[victim] = ts_ns;
    return 0;
}

void dedup_free(dedup_t *d)
{
    if (!d) return;
    free(d->b);
    free(d);
}
