/* segindex.c - build, write, map and rebuild segment indexes (see segindex.h).
 *
 * DESIGN: while a segment is open the builder keeps four parallel per-packet
 * arrays (time, file offset, flow id, length: 20 bytes a packet) and a flat
 * open-addressing table of its flows: a 4-byte slot (flow number and hash
 * bits) pointing into an array of 20-byte keys - IPv4 addresses in 4 bytes,
 * the observation point as a number into a small table of them - with the
 * keys that do not fit (IPv6, odd) kept whole beside it: about 30 bytes a
 * flow where the 64-byte flowkey_t and its hash took ~100. Nothing per flow
 * is updated per packet except the lookup, so the writer's inner loop is
 * one hash probe and four stores; the writer prefetches the probe's slot
 * 16 packets ahead and the key it finds 8 ahead (and a whole key 4 ahead).
 * At seal time the posting lists fall out of one counting sort over the
 * flow ids, each flow's statistics out of a walk of its list (each packet's
 * time and length prefetched ahead: they are spread over megabytes), the
 * host table out of a radix sort of 8-byte (IPv4 address, flow) numbers
 * (IPv6 entries by a radix sort of their addresses) and the port table out
 * of a count per port (a sort when it is small). The flows' order is made
 * once, and the host and port tables read a compact key's fields where
 * they are; only the flow table needs a whole key made from it. The sealer
 * writes them to the file a section at a time through an aligned buffer,
 * with O_DIRECT (segidx__out says why), each chunk's checksum computed on
 * the way, so sealing takes a few bytes a flow and a packet beside the
 * builder, not the index's size (which for small flows is more than the
 * segment's). The same code lays an index out in memory for a view (the
 * open segment's, tests). A view of a file carries one bit per chunk: set
 * once the chunk has matched, so the readers' segidx_check is a bit test
 * after the first read.
 */
#include "segindex.h"

#include "crc32c.h"
#include "decode.h"
#include "dio.h"
#include "hash.h"
#include "log.h"
#include "pcapio.h"
#include "xmalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static const char SEGIDX_MAGIC[8] = { 'M', 'S', 'C', 'I', 'D', 'X', 0, 1 };
#define SEGIDX_VERSION 3

/* ---- the builder ---------------------------------------------------------- */

/* A directional flow's key as the builder keeps it: 20 bytes where
 * flowkey_t has 64. The addresses of an IPv4 key (mapped, so 12 of their 16
 * bytes are the same in every one) in 4 bytes each, the observation point
 * (VNI and outer source address) as its number in the builder's table of
 * them. A key that does not fit - IPv6, the odd key, anything a caller
 * built by hand - is kept whole in a side table, and its compact form is
 * SK_WIDE with its number there. One key has one form, so two keys are
 * equal when their forms are. */
typedef struct segidx__key {
    uint32_t src, dst; /* IPv4 addresses' bytes as in the packet; SK_WIDE: src numbers wide[] */
    uint32_t obs;      /* number in obs[] */
    uint16_t sport, dport;
    uint8_t kind, proto, vlans, bits; /* SK_* */
} segidx__key;

#define SK_FRAG 0x1 /* flowkey_t.frag_later */
#define SK_WIDE 0x2

typedef struct segidx__obs {
    uint32_t vni;
    uint8_t observer[16];
} segidx__obs;

_Static_assert(sizeof(segidx__key) == 20, "a compact key has no padding (compared with memcmp)");
_Static_assert(sizeof(segidx__obs) == 20, "an observation point has no padding (hashed whole)");

static const uint8_t segidx__mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

struct segidx_builder {
    uint64_t seq;
    /* per packet */
    int64_t *ts;
    uint32_t *off, *flow, *len;
    size_t npkts, cap_pkts;
    /* flows, numbered in the order of their first packets, and their hash
     * table: a slot holds flow number + 1 in its low log2(nslots) bits (0 =
     * empty) and the top bits of the key's hash above them, so a probe
     * reads a key only when those agree */
    segidx__key *keys;
    size_t nflows, cap_flows;
    uint32_t *slots;
    size_t nslots;
    flowkey_t *wide; /* the keys kept whole */
    size_t nwide, cap_wide;
    /* observation points and their hash table (number + 1, 0 = empty) */
    segidx__obs *obs;
    size_t nobs, cap_obs;
    uint32_t *obs_slots;
    size_t nobs_slots;
    uint32_t last_obs; /* the one looked up last, number + 1 (0 = none) */
    /* segidx_builder_prefetch: the keys it fetched the last four calls
     * (number + 1, 0 = none), whose whole key it fetches once they are in */
    uint32_t pf_ring[4];
    uint32_t pf_n;
};

#define SEGIDX_MIN_SLOTS 4096

segidx_builder_t *segidx_builder_new(void)
{
    segidx_builder_t *b = xcalloc(1, sizeof *b);
    b->nslots = SEGIDX_MIN_SLOTS;
    b->slots = xcalloc(b->nslots, sizeof *b->slots);
    b->nobs_slots = 64;
    b->obs_slots = xcalloc(b->nobs_slots, sizeof *b->obs_slots);
    return b;
}

void segidx_builder_free(segidx_builder_t *b)
{
    if (!b) return;
    free(b->ts);
    free(b->off);
    free(b->flow);
    free(b->len);
    free(b->keys);
    free(b->slots);
    free(b->wide);
    free(b->obs);
    free(b->obs_slots);
    free(b);
}

void segidx_builder_reset(segidx_builder_t *b, uint64_t seq)
{
    b->seq = seq;
    memset(b->pf_ring, 0, sizeof b->pf_ring);
    b->npkts = 0;
    b->nflows = 0;
    b->nwide = 0;
    b->nobs = 0;
    b->last_obs = 0;
    memset(b->slots, 0, b->nslots * sizeof *b->slots);
    memset(b->obs_slots, 0, b->nobs_slots * sizeof *b->obs_slots);
}

uint32_t segidx_builder_count(const segidx_builder_t *b) { return (uint32_t)b->npkts; }

uint32_t segidx_builder_count_upto(const segidx_builder_t *b, uint64_t off)
{
    size_t lo = 0, hi = b->npkts; /* the answer is in [lo, hi] */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (b->off[mid] <= off) lo = mid + 1;
        else hi = mid;
    }
    return (uint32_t)lo;
}

uint32_t segidx_builder_offset(const segidx_builder_t *b, uint32_t i) { return b->off[i]; }

static uint64_t segidx__obs_hash(const segidx__obs *o)
{
    return hash_bytes(o, sizeof *o, 0x6f62736572766572ULL);
}

/* The number of observation point (vni, observer), added if new. */
static uint32_t segidx__obs_id(segidx_builder_t *b, uint32_t vni, const uint8_t observer[16])
{
    if (b->last_obs) { /* nearly always: a few points, long runs of each */
        const segidx__obs *o = &b->obs[b->last_obs - 1];
        if (o->vni == vni && !memcmp(o->observer, observer, 16)) return b->last_obs - 1;
    }
    segidx__obs want;
    want.vni = vni;
    memcpy(want.observer, observer, 16);
    size_t mask = b->nobs_slots - 1, i = segidx__obs_hash(&want) & mask;
    for (; b->obs_slots[i]; i = (i + 1) & mask) {
        const segidx__obs *o = &b->obs[b->obs_slots[i] - 1];
        if (!memcmp(o, &want, sizeof want)) return (b->last_obs = b->obs_slots[i]) - 1;
    }
    xgrow((void **)&b->obs, &b->cap_obs, b->nobs + 1, sizeof *b->obs);
    b->obs[b->nobs++] = want;
    b->obs_slots[i] = (uint32_t)b->nobs;
    if (b->nobs * 2 > b->nobs_slots) {
        size_t n = b->nobs_slots * 2;
        uint32_t *s = xcalloc(n, sizeof *s);
        for (size_t o = 0; o < b->nobs; o++) {
            size_t j = segidx__obs_hash(&b->obs[o]) & (n - 1);
            while (s[j]) j = (j + 1) & (n - 1);
            s[j] = (uint32_t)o + 1;
        }
        free(b->obs_slots);
        b->obs_slots = s;
        b->nobs_slots = n;
    }
    return (b->last_obs = (uint32_t)b->nobs) - 1;
}

/* k's compact form in *c; 0 when it has none (it is kept whole). */
static int segidx__compact(segidx_builder_t *b, const flowkey_t *k, segidx__key *c)
{
    static const uint8_t zero[sizeof k->pad];
    if (memcmp(k->src, segidx__mapped, 12) || memcmp(k->dst, segidx__mapped, 12) ||
        k->frag_later > 1 || memcmp(k->pad, zero, sizeof zero))
        return 0;
    memcpy(&c->src, k->src + 12, 4);
    memcpy(&c->dst, k->dst + 12, 4);
    c->obs = segidx__obs_id(b, k->vni, k->observer);
    c->sport = k->sport;
    c->dport = k->dport;
    c->kind = k->kind;
    c->proto = k->proto;
    c->vlans = k->vlans;
    c->bits = k->frag_later ? SK_FRAG : 0;
    return 1;
}

/* Flow f's key as the caller gave it. */
static void segidx__expand(const segidx_builder_t *b, size_t f, flowkey_t *k)
{
    const segidx__key *c = &b->keys[f];
    if (c->bits & SK_WIDE) {
        *k = b->wide[c->src];
        return;
    }
    memset(k, 0, sizeof *k);
    memcpy(k->src, segidx__mapped, 12);
    memcpy(k->src + 12, &c->src, 4);
    memcpy(k->dst, segidx__mapped, 12);
    memcpy(k->dst + 12, &c->dst, 4);
    k->vni = b->obs[c->obs].vni;
    memcpy(k->observer, b->obs[c->obs].observer, 16);
    k->sport = c->sport;
    k->dport = c->dport;
    k->kind = c->kind;
    k->proto = c->proto;
    k->vlans = c->vlans;
    k->frag_later = c->bits & SK_FRAG;
}

static uint8_t segidx__kind(const segidx_builder_t *b, size_t f)
{
    const segidx__key *c = &b->keys[f];
    return c->bits & SK_WIDE ? b->wide[c->src].kind : c->kind;
}

static void segidx__rehash(segidx_builder_t *b)
{
    size_t n = b->nslots * 2;
    uint32_t *s = xcalloc(n, sizeof *s), mask = (uint32_t)(n - 1);
    for (size_t f = 0; f < b->nflows; f++) {
        flowkey_t k;
        segidx__expand(b, f, &k); /* the hash is the caller's: flowkey_hash of the whole key */
        uint64_t h = flowkey_hash(&k);
        size_t i = h & mask;
        while (s[i]) i = (i + 1) & mask;
        s[i] = ((uint32_t)(h >> 32) & ~mask) | (uint32_t)(f + 1);
    }
    free(b->slots);
    b->slots = s;
    b->nslots = n;
}

static uint32_t segidx__flow_id(segidx_builder_t *b, const flowkey_t *k, uint64_t hash)
{
    segidx__key c;
    int compact = segidx__compact(b, k, &c);
    uint32_t mask = (uint32_t)(b->nslots - 1), tag = (uint32_t)(hash >> 32) & ~mask;
    size_t i = hash & mask;
    for (;;) {
        uint32_t s = b->slots[i];
        if (!s) break;
        if ((s & ~mask) == tag) {
            uint32_t id = (s & mask) - 1;
            const segidx__key *e = &b->keys[id];
            if (compact ? !memcmp(e, &c, sizeof c)
                        : (e->bits & SK_WIDE) && flowkey_equal(&b->wide[e->src], k))
                return id;
        }
        i = (i + 1) & mask;
    }
    if (!compact) {
        xgrow((void **)&b->wide, &b->cap_wide, b->nwide + 1, sizeof *b->wide);
        b->wide[b->nwide] = *k;
        memset(&c, 0, sizeof c);
        c.src = (uint32_t)b->nwide++;
        c.bits = SK_WIDE;
    }
    xgrow((void **)&b->keys, &b->cap_flows, b->nflows + 1, sizeof *b->keys);
    uint32_t id = (uint32_t)b->nflows++;
    b->keys[id] = c;
    b->slots[i] = tag | (id + 1); /* id + 1 <= nslots / 2 + 1: within the mask */
    if (b->nflows * 2 > b->nslots) segidx__rehash(b);
    return id;
}

void segidx_builder_prefetch(segidx_builder_t *b, uint64_t hash_far, uint64_t hash_near)
{
    uint32_t mask = (uint32_t)(b->nslots - 1);
    __builtin_prefetch(&b->slots[hash_far & mask]);
    /* The near packet's slot was fetched a while ago: fetch its key now -
     * the first one in its probe run with its tag (linear probing at a
     * load of up to a half: a third of the flows are not in their first
     * slot, and their key compares were the builder's largest cost). */
    uint32_t tag = (uint32_t)(hash_near >> 32) & ~mask, found = 0;
    for (uint32_t i = hash_near & mask, n = 0; n < 8; i = (i + 1) & mask, n++) {
        uint32_t s = b->slots[i];
        if (!s) break;
        if ((s & ~mask) == tag) {
            found = s & mask;
            __builtin_prefetch(&b->keys[found - 1]);
            break;
        }
    }
    /* Four calls on, that key is in the cache: a key kept whole (IPv6, odd
     * packets) is compared in wide[], fetched for it now. */
    uint32_t old = b->pf_ring[b->pf_n & 3];
    b->pf_ring[b->pf_n++ & 3] = found;
    if (old && old <= b->nflows && (b->keys[old - 1].bits & SK_WIDE))
        __builtin_prefetch(&b->wide[b->keys[old - 1].src]);
}

void segidx_builder_add(segidx_builder_t *b, const flowkey_t *k, uint64_t hash, int64_t ts_ns,
                        uint32_t off, uint32_t origlen)
{
    if (b->npkts == b->cap_pkts) {
        size_t cap = b->cap_pkts;
        xgrow((void **)&b->ts, &cap, b->npkts + 1, sizeof *b->ts);
        b->off = xrealloc(b->off, cap * sizeof *b->off);
        b->flow = xrealloc(b->flow, cap * sizeof *b->flow);
        b->len = xrealloc(b->len, cap * sizeof *b->len);
        b->cap_pkts = cap;
    }
    size_t i = b->npkts++;
    b->ts[i] = ts_ns;
    b->off[i] = off;
    b->flow[i] = segidx__flow_id(b, k, hash);
    b->len[i] = origlen;
}

void segidx_builder_truncate(segidx_builder_t *b, uint32_t n)
{
    /* Flows left without packets are dropped at finish time. */
    if (n < b->npkts) b->npkts = n;
}

static size_t segidx__align(size_t x) { return (x + 7) & ~(size_t)7; }

static void segidx__chk_free(segidx_t *ix)
{
    if (!ix->chk) return;
    free(ix->chk->ok);
    free(ix->chk);
    ix->chk = NULL;
}

typedef struct segidx__sec { uint64_t off, n, elem; } segidx__sec;

#define SEGIDX_NSEC 7

static const char *const segidx__sec_name[SEGIDX_NSEC] = { "times", "offsets", "flows", "posting lists",
                                                           "hosts", "ports", "time blocks" };

static void segidx__sections(const segidx_hdr *h, segidx__sec sec[SEGIDX_NSEC])
{
    segidx__sec s[SEGIDX_NSEC] = {
        { h->off_ts, h->npkts, sizeof(int64_t) },         { h->off_off, h->npkts, 4 },
        { h->off_flows, h->nflows, sizeof(segidx_flow) }, { h->off_posts, h->npkts, 4 },
        { h->off_hosts, h->nhosts, sizeof(segidx_host) }, { h->off_ports, h->nports, sizeof(segidx_port) },
        { h->off_blocks, h->nblocks, sizeof(segidx_block) },
    };
    memcpy(sec, s, sizeof s);
}

/* Bytes under one checksum: version 2 files have 64 KiB chunks, version 3
 * (written now) 4 KiB, so a binary search's probes verify a page each. */
static uint64_t segidx__chunk(const segidx_hdr *h)
{
    return h->version == 2 ? 1u << 16 : SEGIDX_CHUNK;
}

static uint64_t segidx__nchunks(const segidx_hdr *h)
{
    return (h->off_crcs - sizeof *h + segidx__chunk(h) - 1) / segidx__chunk(h);
}

static uint32_t segidx__hdr_crc(const segidx_hdr *h)
{
    segidx_hdr c = *h;
    c.hdr_crc = 0;
    return crc32c(&c, sizeof c, 0);
}

static int segidx__bind(segidx_t *ix, char *err, size_t errlen)
{
    const segidx_hdr *h = ix->base;
    if (ix->size < sizeof *h || memcmp(h->magic, SEGIDX_MAGIC, 8) != 0) {
        snprintf(err, errlen, "not a segment index");
        return -EBADMSG;
    }
    if (h->version != SEGIDX_VERSION && h->version != 2) {
        snprintf(err, errlen, "index version %u (this program reads 2 and %u)", h->version,
                 (unsigned)SEGIDX_VERSION);
        return -EPROTO;
    }
    if (h->hdr_crc != segidx__hdr_crc(h)) {
        snprintf(err, errlen, "index header fails its checksum");
        return -EBADMSG;
    }
    if (h->total_size != ix->size) {
        snprintf(err, errlen, "index is %zu bytes, its header says %" PRIu64 " (torn?)", ix->size,
                 h->total_size);
        return -EBADMSG;
    }
    if (h->off_crcs < sizeof *h || h->off_crcs > ix->size || (h->off_crcs & 7) ||
        segidx__nchunks(h) * 4 > ix->size - h->off_crcs) {
        snprintf(err, errlen, "index chunk table out of bounds");
        return -EBADMSG;
    }
    segidx__sec sec[SEGIDX_NSEC];
    segidx__sections(h, sec);
    for (unsigned i = 0; i < SEGIDX_NSEC; i++) {
        /* Every section lies between the header and the chunk table, so
         * every byte a search reads is under some chunk's checksum. */
        if (sec[i].n > ix->size || sec[i].off > h->off_crcs || sec[i].off < sizeof *h ||
            sec[i].n * sec[i].elem > h->off_crcs - sec[i].off || (sec[i].off & 7)) {
            snprintf(err, errlen, "index section %s out of bounds", segidx__sec_name[i]);
            return -EBADMSG;
        }
    }
    const char *base = ix->base;
    uint64_t nchunks = segidx__nchunks(h);
    if (crc32c(base + h->off_crcs, nchunks * 4, 0) != h->crcs_crc) {
        snprintf(err, errlen, "index chunk table fails its checksum");
        return -EBADMSG;
    }
    ix->hdr = h;
    ix->ts = (const int64_t *)(base + h->off_ts);
    ix->off = (const uint32_t *)(base + h->off_off);
    ix->flows = (const segidx_flow *)(base + h->off_flows);
    ix->posts = (const uint32_t *)(base + h->off_posts);
    ix->hosts = (const segidx_host *)(base + h->off_hosts);
    ix->ports = (const segidx_port *)(base + h->off_ports);
    ix->blocks = (const segidx_block *)(base + h->off_blocks);
    ix->chk = xcalloc(1, sizeof *ix->chk);
    ix->chk->nchunks = nchunks;
    ix->chk->shift = h->version == 2 ? 16 : SEGIDX_CHUNK_SHIFT;
    ix->chk->crcs = (const uint32_t *)(base + h->off_crcs);
    ix->chk->ok = xcalloc(nchunks / 64 + 1, sizeof *ix->chk->ok);
    /* Per-flow and per-entry bounds are checked where they are used
     * (segidx_flow_ok, the search's ordinal check), and so are the chunks'
     * checksums (segidx_check): walking every flow or chunk here would fault
     * in the whole file for a query that needs a few pages. */
    return 0;
}

static uint32_t segidx__chunk_crc(const char *base, const segidx_hdr *h, uint64_t c)
{
    uint64_t a = sizeof *h + c * segidx__chunk(h), b = a + segidx__chunk(h);
    return crc32c(base + a, (b < h->off_crcs ? b : h->off_crcs) - a, 0);
}

void segidx_checksum(void *base, size_t size)
{
    segidx_hdr *h = base;
    if (size < sizeof *h) return;
    /* Only a table that fits is computed; segidx__bind refuses the rest. */
    if (h->off_crcs >= sizeof *h && h->off_crcs <= size && !(h->off_crcs & 7) &&
        segidx__nchunks(h) * 4 <= size - h->off_crcs) {
        uint32_t *crcs = (uint32_t *)((char *)base + h->off_crcs);
        uint64_t n = segidx__nchunks(h);
        for (uint64_t c = 0; c < n; c++) crcs[c] = segidx__chunk_crc(base, h, c);
        h->crcs_crc = crc32c(crcs, n * 4, 0);
    }
    h->hdr_crc = segidx__hdr_crc(h);
}

int segidx__check_slow(const segidx_t *ix, size_t a, size_t b)
{
    struct segidx_chk *k = ix->chk;
    const segidx_hdr *h = ix->hdr;
    if (!k) return 0; /* built in memory: nothing to check */
    if (a < sizeof *h) a = sizeof *h; /* the header was checked at open */
    if (b > h->off_crcs) b = h->off_crcs;
    if (b <= a) return 0;
    uint64_t chunk = segidx__chunk(h);
    for (uint64_t c = (a - sizeof *h) / chunk; c <= (b - 1 - sizeof *h) / chunk; c++) {
        if (k->ok[c >> 6] >> (c & 63) & 1) continue;
        if (segidx__chunk_crc(ix->base, h, c) != k->crcs[c]) {
            if (!k->damage[0]) {
                /* Name the sections the chunk holds. */
                uint64_t lo = sizeof *h + c * chunk, hi = lo + chunk;
                segidx__sec sec[SEGIDX_NSEC];
                segidx__sections(h, sec);
                size_t n = (size_t)snprintf(k->damage, sizeof k->damage,
                                            "index chunk %" PRIu64 " fails its checksum (", c);
                const char *sep = "";
                for (unsigned i = 0; i < SEGIDX_NSEC && n < sizeof k->damage; i++) {
                    uint64_t end = sec[i].off + sec[i].n * sec[i].elem;
                    if (sec[i].n && sec[i].off < hi && end > lo) {
                        n += (size_t)snprintf(k->damage + n, sizeof k->damage - n, "%s%s", sep,
                                              segidx__sec_name[i]);
                        sep = ", ";
                    }
                }
                if (n < sizeof k->damage) snprintf(k->damage + n, sizeof k->damage - n, ")");
            }
            return -1;
        }
        k->ok[c >> 6] |= 1ULL << (c & 63);
    }
    return 0;
}

int segidx_verify(const segidx_t *ix, char *err, size_t errlen)
{
    if (segidx__check_slow(ix, sizeof *ix->hdr, ix->hdr->off_crcs) == 0) return 0;
    snprintf(err, errlen, "%s", ix->chk->damage);
    return -1;
}

/* ---- laying the index out -------------------------------------------------- */

/* Sort n numbers - a value above bit 32 (bytes of it), a flow's place in
 * the index below - made in ascending place order: a radix sort, a digit
 * of the value a pass from the lowest, stable, so equal values keep their
 * places' order and the numbers come out as a sort of the whole numbers
 * would put them; a pass where every value has the same digit moves
 * nothing. Digits of 16 bits for many numbers (a count per digit value
 * costs less than a pass then), else of 8. A quicksort of the host numbers
 * took 45 instructions a packet of every sealed segment on the bench
 * capture. */
static void segidx__sort_hi(uint64_t *a, size_t n, int bytes)
{
    if (n < 2) return;
    unsigned bits = n >= 32768 ? 16 : 8, nd = 1u << bits;
    uint64_t *tmp = xmalloc(n * sizeof *tmp), *src = a, *dst = tmp;
    uint32_t *at = xmalloc(nd * sizeof *at);
    for (unsigned sh = 32; sh < 32 + 8 * (unsigned)bytes; sh += bits) {
        uint64_t mask = nd - 1;
        memset(at, 0, nd * sizeof *at);
        for (size_t i = 0; i < n; i++) at[(src[i] >> sh) & mask]++;
        if (at[(src[0] >> sh) & mask] == n) continue;
        for (uint32_t c = 0, sum = 0; c < nd; c++) { /* counts to starts */
            uint32_t k = at[c];
            at[c] = sum;
            sum += k;
        }
        for (size_t i = 0; i < n; i++) dst[at[(src[i] >> sh) & mask]++] = src[i];
        uint64_t *t = src;
        src = dst;
        dst = t;
    }
    if (src != a) memcpy(a, src, n * sizeof *a);
    free(at);
    free(tmp);
}

/* Where the index goes: memory (the whole of it, for a view) or a file.
 * A file is written with O_DIRECT in whole blocks of an aligned buffer:
 * through the page cache, the kernel's copy of ~40 bytes a packet into
 * freshly allocated cache pages took 0-110 ms of a 1 M-packet import's CPU
 * (0.27-0.40 s), as much as the pages cost to find at that moment
 * (docs/BENCHMARKS.md), and filled the cache with bytes a search reads only
 * in part, and later. The pcap segments bypass the cache for the same
 * reason (store.c). The first block is held back and written last, with
 * the header in it; the last block is padded and the file cut to its size.
 * A file system that refuses O_DIRECT gets the same writes buffered. */
typedef struct segidx__out {
    char *mem;        /* the index in memory, or NULL */
    int fd;           /* else the file */
    int direct;       /* fd has O_DIRECT */
    uint64_t pos;     /* the offset of the next byte */
    uint64_t off_crcs;
    uint32_t *crcs;   /* file: each chunk's, summed before each write (segidx__out_sum) */
    uint64_t summed;  /* file: bytes before this are in their chunk's CRC */
    uint8_t *buf;     /* file: the bytes from buf_off to pos (aligned) */
    size_t used;
    uint64_t buf_off; /* file: a multiple of DIO_ALIGN */
    uint8_t *head;    /* file: the first block, written last */
    int err;          /* file: the first write's errno */
} segidx__out;

#define SEGIDX_OUT_BUF (1u << 20)

/* Add the buffered bytes not yet summed to their chunks' checksums (the
 * header is checked apart; the chunk table is not under them). */
static void segidx__out_sum(segidx__out *o)
{
    uint64_t from = o->summed > sizeof(segidx_hdr) ? o->summed : sizeof(segidx_hdr);
    uint64_t to = o->pos < o->off_crcs ? o->pos : o->off_crcs;
    while (from < to) {
        uint64_t c = (from - sizeof(segidx_hdr)) >> SEGIDX_CHUNK_SHIFT;
        uint64_t chunk_end = sizeof(segidx_hdr) + ((c + 1) << SEGIDX_CHUNK_SHIFT);
        uint64_t end = chunk_end < to ? chunk_end : to;
        o->crcs[c] = crc32c(o->buf + (from - o->buf_off), (size_t)(end - from), o->crcs[c]);
        from = end;
    }
    o->summed = o->pos;
}

/* pwrite all of len bytes at off (through the page cache if the file
 * system refuses O_DIRECT: dio_pwrite); the first error is kept, and after
 * it nothing more is written. */
static void segidx__out_pwrite(segidx__out *o, const uint8_t *p, size_t len, uint64_t off)
{
    if (!o->err) dio_pwrite(o->fd, &o->direct, p, len, off, &o->err);
}

/* Write the buffer: all of it (its size a multiple of the block, or at the
 * end padded to one with zeros), the first block kept for the header. */
static void segidx__out_flush(segidx__out *o)
{
    if (o->mem || !o->used) return;
    segidx__out_sum(o);
    size_t len = (o->used + DIO_ALIGN - 1) & ~(size_t)(DIO_ALIGN - 1);
    memset(o->buf + o->used, 0, len - o->used);
    size_t skip = 0;
    if (o->buf_off == 0) {
        memcpy(o->head, o->buf, DIO_ALIGN);
        skip = DIO_ALIGN;
    }
    if (len > skip) segidx__out_pwrite(o, o->buf + skip, len - skip, o->buf_off + skip);
    o->buf_off += len;
    o->used = 0;
}

/* segidx__put's general path: into memory, or through the buffer in
 * pieces, writing it whenever it fills. */
static __attribute__((noinline)) void segidx__put_slow(segidx__out *o, const void *p, size_t n)
{
    if (o->mem) {
        memcpy(o->mem + o->pos, p, n);
        o->pos += n;
        return;
    }
    const uint8_t *q = p;
    while (n) {
        size_t k = SEGIDX_OUT_BUF - o->used < n ? SEGIDX_OUT_BUF - o->used : n;
        memcpy(o->buf + o->used, q, k);
        o->used += k;
        o->pos += k;
        q += k;
        n -= k;
        if (o->used == SEGIDX_OUT_BUF) segidx__out_flush(o);
    }
}

/* Append n bytes. Inline for what fits the buffer: called per flow and per
 * host entry with a constant size, whose copy then needs no call. */
static inline void segidx__put(segidx__out *o, const void *p, size_t n)
{
    if (o->mem || SEGIDX_OUT_BUF - o->used <= n) {
        segidx__put_slow(o, p, n);
        return;
    }
    memcpy(o->buf + o->used, p, n);
    o->used += n;
    o->pos += n;
}

/* Zeros up to offset off (the padding before a section, the header's place). */
static void segidx__pad(segidx__out *o, uint64_t off)
{
    static const uint8_t zero[256];
    while (off > o->pos) {
        size_t n = off - o->pos < sizeof zero ? (size_t)(off - o->pos) : sizeof zero;
        segidx__put(o, zero, n);
    }
}

/* What laying out needs beside the builder: the header, per flow where
 * its posting list ends in posts[] (0 for a flow without packets), and the
 * flows in the index's order - the odd ones first (searches always read
 * them, and find them without a scan), then the others, each in builder
 * order; flows emptied by truncate are left out. Flow order[i] is the
 * index's flow i, its list from end[order[i - 1]] (0 for the first) to
 * end[order[i]]. */
typedef struct segidx__plan {
    segidx_hdr h;
    uint32_t *end;
    uint32_t *posts;
    uint32_t *order; /* h.nflows builder numbers */
    segidx_block *blocks; /* h.nblocks */
    size_t nodd;     /* the first nodd of them odd */
    size_t nhosts4;  /* host entries with an IPv4 (mapped) address */
} segidx__plan;

/* The key of a flow kept whole (IPv6, odd packets), NULL for a compact one:
 * the host and port tables read a compact key's fields where they are,
 * both its addresses IPv4, instead of the 64-byte key made from it. */
static const flowkey_t *segidx__wide(const segidx_builder_t *b, size_t f)
{
    const segidx__key *c = &b->keys[f];
    return c->bits & SK_WIDE ? &b->wide[c->src] : NULL;
}

/* A compact key's IPv4 address (its bytes as in the packet) as a number
 * that sorts as the address. */
static uint32_t segidx__be32(uint32_t a)
{
    uint8_t v[4];
    memcpy(v, &a, 4);
    return (uint32_t)v[0] << 24 | (uint32_t)v[1] << 16 | (uint32_t)v[2] << 8 | v[3];
}

static int segidx__is_mapped(const uint8_t a[16]) { return !memcmp(a, segidx__mapped, 12); }

static void segidx__plan_make(segidx_builder_t *b, uint64_t pcap_bytes, segidx__plan *p)
{
    size_t n = b->npkts;
    memset(p, 0, sizeof *p);
    /* Count packets per flow, then make the counts starts in the index's
     * order, then place each packet (a counting sort over the flows). */
    uint32_t *end = xcalloc(b->nflows + 1, sizeof *end);
    uint32_t *order = xmalloc((b->nflows ? b->nflows : 1) * sizeof *order);
    for (size_t i = 0; i < n; i++) end[b->flow[i]]++;
    size_t nflows = 0, nhosts = 0, nports = 0;
    uint32_t start = 0;
    for (int others = 0; others < 2; others++) {
        for (size_t f = 0; f < b->nflows; f++) {
            if ((segidx__kind(b, f) == FK_ODD) == others || !end[f]) continue;
            uint32_t c = end[f];
            end[f] = start;
            start += c;
            order[nflows++] = (uint32_t)f;
            if (!others) continue;
            const segidx__key *ck = &b->keys[f];
            const flowkey_t *w = segidx__wide(b, f);
            int two = w ? memcmp(w->src, w->dst, 16) != 0 : ck->src != ck->dst;
            nhosts += 1 + two;
            p->nhosts4 += w ? segidx__is_mapped(w->src) + (two && segidx__is_mapped(w->dst)) : 1 + two;
            uint8_t proto = w ? w->proto : ck->proto;
            if (proto == 6 || proto == 17)
                nports += (w ? w->sport != w->dport : ck->sport != ck->dport) ? 2 : 1;
        }
        if (!others) p->nodd = nflows;
    }
    uint32_t *posts = xmalloc((n ? n : 1) * sizeof *posts);
    for (size_t i = 0; i < n; i++) posts[end[b->flow[i]]++] = (uint32_t)i;
    p->end = end;
    p->posts = posts;
    p->order = order;

    segidx_hdr *h = &p->h;
    memcpy(h->magic, SEGIDX_MAGIC, 8);
    h->version = SEGIDX_VERSION;
    h->seq = b->seq;
    h->pcap_bytes = pcap_bytes;
    h->npkts = n;
    h->nflows = nflows;
    h->nhosts = nhosts;
    h->nports = nports;
    h->nblocks = (n + SEGIDX_BLOCK - 1) / SEGIDX_BLOCK;
    h->flags = SEGIDX_F_TS_SORTED;
    h->min_ts = n ? INT64_MAX : 0;
    h->max_ts = n ? INT64_MIN : 0;
    /* The time blocks, the segment's first and last times and whether its
     * times rise, in one walk over them. */
    p->blocks = xmalloc((h->nblocks ? h->nblocks : 1) * sizeof *p->blocks);
    int sorted = 1;
    for (size_t i = 0, k = 0; i < n; i += SEGIDX_BLOCK, k++) {
        size_t e = n - i < SEGIDX_BLOCK ? n : i + SEGIDX_BLOCK;
        int64_t lo = b->ts[i], hi = lo, prev = i ? b->ts[i - 1] : INT64_MIN;
        for (size_t j = i; j < e; j++) {
            int64_t t = b->ts[j];
            lo = t < lo ? t : lo;
            hi = t > hi ? t : hi;
            sorted &= t >= prev;
            prev = t;
        }
        p->blocks[k] = (segidx_block){ .min_ts = lo, .max_ts = hi };
        if (lo < h->min_ts) h->min_ts = lo;
        if (hi > h->max_ts) h->max_ts = hi;
    }
    if (!sorted) h->flags &= ~(uint32_t)SEGIDX_F_TS_SORTED;
    size_t o = segidx__align(sizeof *h);
    h->off_ts = o; o = segidx__align(o + n * sizeof(int64_t));
    h->off_off = o; o = segidx__align(o + n * 4);
    h->off_flows = o; o = segidx__align(o + nflows * sizeof(segidx_flow));
    h->off_posts = o; o = segidx__align(o + n * 4);
    h->off_hosts = o; o = segidx__align(o + nhosts * sizeof(segidx_host));
    h->off_ports = o; o = segidx__align(o + nports * sizeof(segidx_port));
    h->off_blocks = o; o = segidx__align(o + h->nblocks * sizeof(segidx_block));
    h->off_crcs = o; o = segidx__align(o + segidx__nchunks(h) * 4);
    h->total_size = o;
}

static void segidx__keys_addr(segidx_keys *keys, const uint8_t a[16])
{
    if (!keys || (keys->naddrs && !memcmp(keys->addrs[keys->naddrs - 1], a, 16))) return;
    xgrow((void **)&keys->addrs, &keys->cap_addrs, keys->naddrs + 1, sizeof *keys->addrs);
    memcpy(keys->addrs[keys->naddrs++], a, 16);
}

/* Sort n host entries by address, equal ones kept in their order: entries
 * made in ascending flow order, a flow's two addresses different, come out
 * in (address, flow) order. A radix sort, a byte a pass from the last; a
 * pass where every entry has the same byte (IPv6 prefixes) moves nothing.
 * It took a fifth of qsort's instructions on the bench capture's IPv6 hosts. */
static void segidx__sort_hosts(segidx_host *a, size_t n)
{
    if (n < 2) return;
    segidx_host *tmp = xmalloc(n * sizeof *tmp), *src = a, *dst = tmp;
    for (int byte = 15; byte >= 0; byte--) {
        size_t at[256] = { 0 };
        for (size_t i = 0; i < n; i++) at[src[i].addr[byte]]++;
        if (at[src[0].addr[byte]] == n) continue;
        for (size_t c = 0, sum = 0; c < 256; c++) { /* counts to starts */
            size_t k = at[c];
            at[c] = sum;
            sum += k;
        }
        for (size_t i = 0; i < n; i++) dst[at[src[i].addr[byte]]++] = src[i];
        segidx_host *t = src;
        src = dst;
        dst = t;
    }
    if (src != a) memcpy(a, src, n * sizeof *a);
    free(tmp);
}

/* The host table: (address, flow) sorted. IPv4 (mapped) entries are sorted
 * as 64-bit numbers, the address's bytes over the flow's number, the others
 * as segidx_host by segidx__sort_hosts; mapped addresses sort after the others below the
 * mapped prefix and before those above it. */
static void segidx__emit_hosts(segidx_builder_t *b, segidx__plan *p, segidx__out *o,
                               segidx_keys *keys)
{
    size_t n4 = p->nhosts4, nw = p->h.nhosts - n4, i4 = 0, iw = 0;
    uint64_t *h4 = xmalloc((n4 ? n4 : 1) * sizeof *h4);
    segidx_host *hw = xcalloc(nw ? nw : 1, sizeof *hw);
    for (size_t fo = p->nodd; fo < p->h.nflows; fo++) {
        const segidx__key *c = &b->keys[p->order[fo]];
        const flowkey_t *k = segidx__wide(b, p->order[fo]);
        if (!k) { /* both addresses IPv4 */
            h4[i4++] = (uint64_t)segidx__be32(c->src) << 32 | (uint32_t)fo;
            if (c->dst != c->src) h4[i4++] = (uint64_t)segidx__be32(c->dst) << 32 | (uint32_t)fo;
            continue;
        }
        const uint8_t *a[2] = { k->src, k->dst };
        for (int j = 0; j < 1 + (memcmp(k->src, k->dst, 16) != 0); j++) {
            if (segidx__is_mapped(a[j])) {
                uint32_t v;
                memcpy(&v, a[j] + 12, 4);
                h4[i4++] = (uint64_t)segidx__be32(v) << 32 | (uint32_t)fo;
            } else {
                memcpy(hw[iw].addr, a[j], 16);
                hw[iw++].flow = fo;
            }
        }
    }
    segidx__sort_hi(h4, n4, 4);
    segidx__sort_hosts(hw, nw);
    size_t below = 0;
    while (below < nw && memcmp(hw[below].addr, segidx__mapped, 12) < 0) below++;
    for (size_t i = 0; i < below; i++) {
        segidx__put(o, &hw[i], sizeof hw[i]);
        segidx__keys_addr(keys, hw[i].addr);
    }
    for (size_t i = 0; i < n4; i++) {
        segidx_host e;
        memcpy(e.addr, segidx__mapped, 12);
        uint32_t be = (uint32_t)(h4[i] >> 32);
        e.addr[12] = (uint8_t)(be >> 24);
        e.addr[13] = (uint8_t)(be >> 16);
        e.addr[14] = (uint8_t)(be >> 8);
        e.addr[15] = (uint8_t)be;
        e.flow = (uint32_t)h4[i];
        segidx__put(o, &e, sizeof e);
        /* noted at its first entry (equal addresses are neighbours here) */
        if (!i || be != (uint32_t)(h4[i - 1] >> 32)) segidx__keys_addr(keys, e.addr);
    }
    for (size_t i = below; i < nw; i++) {
        segidx__put(o, &hw[i], sizeof hw[i]);
        segidx__keys_addr(keys, hw[i].addr);
    }
    free(h4);
    free(hw);
}

/* The port table, (port, flow) sorted: by counting the ports when it is
 * large, else by sorting (port, flow) numbers - a count over all 65 536
 * ports costs more than the sort of a small segment's few entries. Both
 * give the same table (flows are met in ascending order). */
#define SEGIDX_PORTS_SORT_MAX 8192

static void segidx__port_key(segidx_keys *keys, uint16_t port)
{
    if (!keys) return;
    xgrow((void **)&keys->ports, &keys->cap_ports, keys->nports_distinct + 1, sizeof *keys->ports);
    keys->ports[keys->nports_distinct++] = port;
}

static void segidx__emit_ports(segidx_builder_t *b, segidx__plan *p, segidx__out *o,
                               segidx_keys *keys)
{
    size_t np = p->h.nports;
    int counting = np > SEGIDX_PORTS_SORT_MAX;
    uint32_t *at = counting ? xcalloc(65536, sizeof *at) : NULL;
    uint64_t *pf = counting ? NULL : xmalloc((np ? np : 1) * sizeof *pf);
    segidx_port *ports = xcalloc(np ? np : 1, sizeof *ports);
    size_t k = 0;
    for (int pass = 0; pass < 2; pass++) {
        for (size_t fo = p->nodd; fo < p->h.nflows; fo++) {
            const segidx__key *c = &b->keys[p->order[fo]];
            const flowkey_t *w = segidx__wide(b, p->order[fo]);
            uint8_t proto = w ? w->proto : c->proto;
            if (proto != 6 && proto != 17) continue;
            uint16_t q[2] = { w ? w->sport : c->sport, w ? w->dport : c->dport };
            for (int j = 0; j < 1 + (q[0] != q[1]); j++) {
                if (!counting) {
                    pf[k++] = (uint64_t)q[j] << 32 | (uint32_t)fo;
                } else if (!pass) {
                    at[q[j]]++;
                } else {
                    segidx_port *e = &ports[at[q[j]]++];
                    e->port = q[j];
                    e->flow = (uint32_t)fo;
                }
            }
        }
        if (!counting) {
            segidx__sort_hi(pf, k, 2);
            for (size_t i = 0; i < k; i++) {
                ports[i].port = (uint16_t)(pf[i] >> 32);
                ports[i].flow = (uint32_t)pf[i];
                if (!i || ports[i].port != ports[i - 1].port) segidx__port_key(keys, ports[i].port);
            }
            break;
        }
        if (pass) break;
        uint32_t s = 0; /* counts to starts */
        for (uint32_t port = 0; port < 65536; port++) {
            uint32_t c = at[port];
            at[port] = s;
            s += c;
            if (c) segidx__port_key(keys, (uint16_t)port);
        }
    }
    segidx__put(o, ports, np * sizeof *ports);
    free(ports);
    free(pf);
    free(at);
}

/* Lay the index planned in p out through o, from the header's place (zeros)
 * to the chunk table (exclusive); frees the plan's arrays. */
static void segidx__emit(segidx_builder_t *b, segidx__plan *p, segidx__out *o, segidx_keys *keys)
{
    const segidx_hdr *h = &p->h;
    size_t n = b->npkts;
    if (keys) {
        memset(keys, 0, sizeof *keys);
        keys->nhosts = h->nhosts;
        keys->nports = h->nports;
    }
    segidx__pad(o, segidx__align(sizeof *h)); /* the header's place, filled last */
    if (n) { /* an empty builder has no arrays yet: memcpy from NULL is undefined */
        segidx__put(o, b->ts, n * sizeof *b->ts);
        segidx__pad(o, h->off_off);
        segidx__put(o, b->off, n * sizeof *b->off);
    }
    segidx__pad(o, h->off_flows);
    for (size_t fo = 0; fo < h->nflows; fo++) {
        uint32_t start = fo ? p->end[p->order[fo - 1]] : 0, end = p->end[p->order[fo]];
        segidx_flow fl;
        memset(&fl, 0, sizeof fl);
        segidx__expand(b, p->order[fo], &fl.key);
        fl.first_ns = INT64_MAX;
        fl.last_ns = INT64_MIN;
        for (uint32_t j = start; j < end; j++) {
            /* A flow's packets are spread over the segment's arrays: each
             * one's time and length fetched 16 list entries ahead. */
            if (j + 16 < n) {
                __builtin_prefetch(&b->ts[p->posts[j + 16]]);
                __builtin_prefetch(&b->len[p->posts[j + 16]]);
            }
            uint32_t i = p->posts[j];
            fl.bytes += b->len[i];
            if (b->ts[i] < fl.first_ns) fl.first_ns = b->ts[i];
            if (b->ts[i] > fl.last_ns) fl.last_ns = b->ts[i];
        }
        fl.packets = end - start;
        fl.post_start = start;
        if (keys && fo < p->nodd) keys->odd = 1;
        segidx__put(o, &fl, sizeof fl);
    }
    segidx__pad(o, h->off_posts);
    segidx__put(o, p->posts, n * sizeof *p->posts);
    free(p->posts);
    p->posts = NULL;
    segidx__pad(o, h->off_hosts);
    segidx__emit_hosts(b, p, o, keys);
    segidx__pad(o, h->off_ports);
    segidx__emit_ports(b, p, o, keys);
    free(p->end);
    free(p->order);
    p->end = NULL;
    p->order = NULL;
    segidx__pad(o, h->off_blocks);
    segidx__put(o, p->blocks, h->nblocks * sizeof *p->blocks);
    free(p->blocks);
    p->blocks = NULL;
    segidx__pad(o, h->off_crcs);
}

segidx_t *segidx_builder_finish(segidx_builder_t *b, uint64_t pcap_bytes)
{
    segidx__plan p;
    segidx__plan_make(b, pcap_bytes, &p);
    segidx__out o = { .mem = xcalloc(1, p.h.total_size) };
    segidx__emit(b, &p, &o, NULL);
    memcpy(o.mem, &p.h, sizeof p.h);
    segidx_checksum(o.mem, p.h.total_size);

    segidx_t *ix = xcalloc(1, sizeof *ix);
    ix->base = o.mem;
    ix->size = p.h.total_size;
    char err[128];
    if (segidx__bind(ix, err, sizeof err) < 0) {
        log_error("built an inconsistent index: %s", err); /* a bug, not input */
        abort();
    }
    segidx__chk_free(ix); /* made here from the packets: nothing to check */
    return ix;
}

int segidx_builder_write(segidx_builder_t *b, uint64_t pcap_bytes, const char *path,
                         segidx_hdr *hdr, segidx_keys *keys)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    segidx__plan p;
    segidx__plan_make(b, pcap_bytes, &p);
    segidx_hdr *h = &p.h;
    uint64_t nchunks = segidx__nchunks(h);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    int open_err = fd < 0 ? errno : 0; /* before anything else can change errno */
    int direct = fd >= 0 && dio_set(fd, 1) == 0; /* else buffered: the file system refuses it */
    segidx__out o = { .fd = fd,
                      .direct = direct,
                      .err = open_err, /* the layout is still made: the header and keys are wanted */
                      .off_crcs = h->off_crcs,
                      .crcs = xcalloc(nchunks + 1, sizeof(uint32_t)),
                      .buf = xmalloc_aligned(DIO_ALIGN, SEGIDX_OUT_BUF),
                      .head = xmalloc_aligned(DIO_ALIGN, DIO_ALIGN) };
    segidx__emit(b, &p, &o, keys);
    /* The chunk table, then the header with the checksums of both. */
    segidx__out_sum(&o);
    segidx__put(&o, o.crcs, nchunks * 4);
    segidx__pad(&o, h->total_size);
    h->crcs_crc = crc32c(o.crcs, nchunks * 4, 0);
    h->hdr_crc = segidx__hdr_crc(h);
    segidx__out_flush(&o);
    memcpy(o.head, h, sizeof *h);
    segidx__out_pwrite(&o, o.head, DIO_ALIGN, 0);
    if (!o.err && o.buf_off > h->total_size && ftruncate(o.fd, (off_t)h->total_size) < 0)
        o.err = errno;
    *hdr = *h;
    int rc = -o.err;
    if (o.fd >= 0 && close(o.fd) < 0 && !rc) rc = -errno;
    if (!rc && rename(tmp, path) < 0) rc = -errno;
    if (rc) unlink(tmp);
    free(o.crcs);
    free(o.buf);
    free(o.head);
    return rc;
}

void segidx_keys_free(segidx_keys *keys)
{
    if (!keys) return;
    free(keys->addrs);
    free(keys->ports);
    memset(keys, 0, sizeof *keys);
}

int segidx_write(const segidx_t *ix, const char *path)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return -errno;
    const char *p = ix->base;
    size_t left = ix->size;
    int rc = 0;
    while (left) {
        ssize_t w = write(fd, p, left);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) {
            rc = -errno;
            break;
        }
        p += w;
        left -= (size_t)w;
    }
    if (close(fd) < 0 && !rc) rc = -errno;
    if (!rc && rename(tmp, path) < 0) rc = -errno;
    if (rc) unlink(tmp);
    return rc;
}

segidx_t *segidx_open(const char *path, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "open(%s) failed: %s", path, strerror(errno));
        return NULL;
    }
    struct stat sb;
    off_t size = fstat(fd, &sb) == 0 ? sb.st_size : -1;
    if (size < (off_t)sizeof(segidx_hdr)) {
        snprintf(err, errlen, "%s: too short to be an index", path);
        close(fd);
        errno = EBADMSG;
        return NULL;
    }
    void *m = mmap(NULL, (size_t)size, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (m == MAP_FAILED) {
        snprintf(err, errlen, "mmap(%s) failed: %s", path, strerror(errno));
        return NULL;
    }
    segidx_t *ix = xcalloc(1, sizeof *ix);
    ix->base = m;
    ix->size = (size_t)size;
    ix->mapped = 1;
    int rc = segidx__bind(ix, err, errlen);
    if (rc < 0) {
        segidx_free(ix);
        errno = -rc;
        return NULL;
    }
    return ix;
}

void segidx_free(segidx_t *ix)
{
    if (!ix) return;
    segidx__chk_free(ix);
    if (ix->mapped)
        munmap(ix->base, ix->size);
    else
        free(ix->base);
    free(ix);
}

int segidx_scan_pcap(segidx_builder_t *b, int fd, uint64_t size, uint64_t *valid_bytes)
{
    *valid_bytes = 0;
    if (size < PCAPIO_FILE_HDR) return -1;
    void *m = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
    if (m == MAP_FAILED) return -1;
    const uint8_t *p = m;
    int rc = 0;
    if (pcapio_check_header(p, size) < 0) {
        rc = -1;
        goto out;
    }
    size_t off = PCAPIO_FILE_HDR;
    for (;;) {
        int64_t ts;
        uint32_t caplen, origlen;
        long n = pcapio_parse_rec(p, size, off, &ts, &caplen, &origlen);
        if (n <= 0) break;
        pkt_info_t pi;
        flowkey_t k;
        decode_frame(p + off + PCAPIO_REC_HDR, caplen, origlen, &pi);
        flowkey_from_pkt(&k, &pi, 0, NULL);
        segidx_builder_add(b, &k, flowkey_hash(&k), ts, (uint32_t)off, origlen);
        off += (size_t)n;
    }
    *valid_bytes = off;
out:
    munmap(m, size);
    return rc;
}
