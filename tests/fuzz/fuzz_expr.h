/* fuzz_expr.h - what the two expression targets share: the values to build
 * flows from, taken from the expression itself (so its terms are true of
 * some flows and false of others, not false of everything), and the index
 * of those flows the search would consult.
 */
#ifndef MSCOPE_FUZZ_EXPR_H
#define MSCOPE_FUZZ_EXPR_H

#include "decode.h"
#include "exprscan.h"
#include "flowkey.h"
#include "fuzz.h"
#include "segindex.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_NADDR 8
#define FUZZ_NPORT 8

typedef struct fuzz_values {
    uint8_t addr[FUZZ_NADDR][16]; /* IPv4 mapped, or IPv6 */
    int is4[FUZZ_NADDR];
    int naddr;
    uint16_t port[FUZZ_NPORT];
    int nport;
} fuzz_values;

static void fuzz_values__addr(fuzz_values *v, const char *s)
{
    if (v->naddr == FUZZ_NADDR) return;
    uint8_t a[16];
    if (inet_pton(AF_INET, s, a) == 1) {
        decode_map4(a, v->addr[v->naddr]);
        v->is4[v->naddr++] = 1;
    } else if (inet_pton(AF_INET6, s, a) == 1) {
        memcpy(v->addr[v->naddr], a, 16);
        v->is4[v->naddr++] = 0;
    }
}

/* Addresses and numbers written in expr (prefixes and ranges split at '/'
 * and '-'; each address with a neighbour of the same network, each number
 * with the one below it), then an address of each family and two ports
 * that the expression does not name. */
static void fuzz_values_from(fuzz_values *v, const char *expr)
{
    memset(v, 0, sizeof *v);
    const char *p = expr;
    while (*p) {
        if (!isalnum((unsigned char)*p) && *p != ':' && *p != '.') {
            p++;
            continue;
        }
        char w[64];
        size_t n = 0;
        while ((isalnum((unsigned char)*p) || *p == ':' || *p == '.') && n < sizeof w - 1) w[n++] = *p++;
        w[n] = 0;
        while (isalnum((unsigned char)*p) || *p == ':' || *p == '.') p++;
        char *end;
        long num = strtol(w, &end, 10);
        if (!*end && n <= 5) {
            if (num <= 65535 && v->nport < FUZZ_NPORT - 2) v->port[v->nport++] = (uint16_t)num;
            if (num <= 65535 && num > 0 && v->nport < FUZZ_NPORT - 2) v->port[v->nport++] = (uint16_t)(num - 1);
            continue;
        }
        int had = v->naddr;
        if (v->naddr < FUZZ_NADDR - 3) fuzz_values__addr(v, w);
        if (v->naddr > had) {
            /* Another address of the same network (a net's base is rarely
             * a host): the last byte set. */
            memcpy(v->addr[v->naddr], v->addr[had], 16);
            v->addr[v->naddr][15] |= 0x7f;
            v->is4[v->naddr] = v->is4[had];
            v->naddr++;
        }
    }
    fuzz_values__addr(v, "10.200.0.9");
    fuzz_values__addr(v, "2001:db8:ffff::9");
    v->port[v->nport++] = 40000;
    v->port[v->nport++] = 443;
}

/* The index of keys[0..n) (one packet each, at times 0..n-1), as the store
 * would build it; *ids gets each key's flow id in it. */
static segidx_t *fuzz_index(const flowkey_t *keys, int n, uint32_t *ids)
{
    segidx_builder_t *b = segidx_builder_new();
    segidx_builder_reset(b, 1);
    for (int i = 0; i < n; i++)
        segidx_builder_add(b, &keys[i], flowkey_hash(&keys[i]), i, 24 + 100 * (uint32_t)i, 60);
    segidx_t *ix = segidx_builder_finish(b, 24 + 100 * (uint64_t)n);
    segidx_builder_free(b);
    /* Each key's flow, through a hash table of the flows (a scan of every
     * flow per key would be most of the time the target runs). */
    enum { SLOTS = 1024 };
    uint32_t slot[SLOTS];
    FUZZ_CHECK(ix->hdr->nflows < SLOTS / 2);
    memset(slot, 0xff, sizeof slot);
    for (uint32_t f = 0; f < ix->hdr->nflows; f++) {
        uint32_t h = (uint32_t)flowkey_hash(&ix->flows[f].key) & (SLOTS - 1);
        while (slot[h] != UINT32_MAX) h = (h + 1) & (SLOTS - 1);
        slot[h] = f;
    }
    for (int i = 0; i < n; i++) {
        uint32_t h = (uint32_t)flowkey_hash(&keys[i]) & (SLOTS - 1);
        while (slot[h] != UINT32_MAX && !flowkey_equal(&ix->flows[slot[h]].key, &keys[i]))
            h = (h + 1) & (SLOTS - 1);
        ids[i] = slot[h];
        FUZZ_CHECK(ids[i] != UINT32_MAX); /* every key is in the index */
    }
    return ix;
}

/* The flows the search would read for e: candidates from the lookups
 * (sorted, unique, in range), or NULL with *all set when it judges every
 * flow. The caller frees. */
static uint32_t *fuzz_candidates(const exprscan_t *e, const segidx_t *ix, long *n, int *all)
{
    uint32_t *c = NULL;
    *n = exprscan_candidates(e, ix, &c);
    *all = *n < 0;
    FUZZ_CHECK(!*all || !c);
    for (long i = 0; i < *n; i++) {
        FUZZ_CHECK(c[i] < ix->hdr->nflows);
        if (i) FUZZ_CHECK(c[i - 1] < c[i]);
    }
    return c;
}

static int fuzz_in(const uint32_t *c, long n, uint32_t id)
{
    long a = 0, b = n;
    while (a < b) {
        long m = (a + b) / 2;
        if (c[m] < id) a = m + 1;
        else b = m;
    }
    return a < n && c[a] == id;
}

#endif
