/* segindex.c - build, write, map and rebuild segment indexes (see segindex.h).
 *
 * DESIGN: while a segment is open the builder keeps four parallel per-packet
 * arrays (time, file offset, flow id, length: 20 bytes a packet) and a hash
 * table of flows. Nothing per flow is updated per packet except the lookup, so
 * the writer's inner loop is one hash probe and four stores. At seal time the
 * flow statistics and posting lists fall out of one counting sort over the
 * flow ids, and the host/port lookup tables out of two qsorts over the flows.
 * The chunk checksums are computed last, over the laid-out sections. A view
 * of a file carries one bit per chunk: set once the chunk has matched, so
 * the readers' segidx_check is a bit test after the first read.
 */
#include "segindex.h"

#include "crc32c.h"
#include "decode.h"
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

struct segidx_builder {
    uint64_t seq;
    /* per packet */
    int64_t *ts;
    uint32_t *off, *flow, *len;
    size_t npkts, cap_pkts;
    /* flows and their hash table: a slot holds the top 32 bits of the key's
     * hash and flow id + 1 (0 = empty), so a probe touches a key only when
     * the tags agree */
    flowkey_t *keys;
    uint64_t *hashes;
    size_t nflows, cap_flows;
    uint64_t *slots;
    size_t nslots;
};

segidx_builder_t *segidx_builder_new(void)
{
    segidx_builder_t *b = xcalloc(1, sizeof *b);
    b->nslots = 4096;
    b->slots = xcalloc(b->nslots, sizeof *b->slots);
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
    free(b->hashes);
    free(b->slots);
    free(b);
}

void segidx_builder_reset(segidx_builder_t *b, uint64_t seq)
{
    b->seq = seq;
    b->npkts = 0;
    b->nflows = 0;
    memset(b->slots, 0, b->nslots * sizeof *b->slots);
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

#define SLOT(hash, id) (((hash) & 0xffffffff00000000ULL) | ((uint64_t)(id) + 1))

static void segidx__rehash(segidx_builder_t *b)
{
    size_t n = b->nslots * 2;
    uint64_t *s = xcalloc(n, sizeof *s);
    for (size_t f = 0; f < b->nflows; f++) {
        size_t i = b->hashes[f] & (n - 1);
        while (s[i]) i = (i + 1) & (n - 1);
        s[i] = SLOT(b->hashes[f], f);
    }
    free(b->slots);
    b->slots = s;
    b->nslots = n;
}

static uint32_t segidx__flow_id(segidx_builder_t *b, const flowkey_t *k, uint64_t hash)
{
    size_t mask = b->nslots - 1, i = hash & mask;
    uint64_t tag = hash & 0xffffffff00000000ULL;
    for (;;) {
        uint64_t s = b->slots[i];
        if (!s) break;
        if ((s & 0xffffffff00000000ULL) == tag) {
            uint32_t id = (uint32_t)s - 1;
            if (flowkey_equal(&b->keys[id], k)) return id;
        }
        i = (i + 1) & mask;
    }
    if (b->nflows == b->cap_flows) {
        size_t cap = b->cap_flows;
        xgrow((void **)&b->keys, &cap, b->nflows + 1, sizeof *b->keys);
        b->hashes = xrealloc(b->hashes, cap * sizeof *b->hashes);
        b->cap_flows = cap;
    }
    uint32_t id = (uint32_t)b->nflows++;
    b->keys[id] = *k;
    b->hashes[id] = hash;
    b->slots[i] = SLOT(hash, id);
    if (b->nflows * 2 > b->nslots) segidx__rehash(b);
    return id;
}

void segidx_builder_prefetch(const segidx_builder_t *b, uint64_t hash_far, uint64_t hash_near)
{
    __builtin_prefetch(&b->slots[hash_far & (b->nslots - 1)]);
    /* The near packet's slot was fetched a while ago: fetch its key now. */
    uint64_t s = b->slots[hash_near & (b->nslots - 1)];
    if (s && (s & 0xffffffff00000000ULL) == (hash_near & 0xffffffff00000000ULL))
        __builtin_prefetch(&b->keys[(uint32_t)s - 1]);
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

static int segidx__cmp_host(const void *a, const void *b)
{
    const segidx_host *x = a, *y = b;
    int c = memcmp(x->addr, y->addr, 16);
    return c ? c : (x->flow > y->flow) - (x->flow < y->flow);
}

static int segidx__cmp_port(const void *a, const void *b)
{
    const segidx_port *x = a, *y = b;
    if (x->port != y->port) return x->port < y->port ? -1 : 1;
    return (x->flow > y->flow) - (x->flow < y->flow);
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
        snprintf(err, errlen, "index version %u (this program reads 2 and %u)", h->version, SEGIDX_VERSION);
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

segidx_t *segidx_builder_finish(segidx_builder_t *b, uint64_t pcap_bytes)
{
    size_t n = b->npkts;
    /* Count packets per flow; flows emptied by truncate get no slot. */
    uint32_t *cnt = xcalloc(b->nflows + 1, sizeof *cnt);
    for (size_t i = 0; i < n; i++) cnt[b->flow[i]]++;
    uint32_t *remap = xmalloc((b->nflows + 1) * sizeof *remap);
    size_t nflows = 0;
    /* Odd flows first: searches always read them, and find them without a scan. */
    for (size_t f = 0; f < b->nflows; f++)
        remap[f] = cnt[f] && b->keys[f].kind == FK_ODD ? (uint32_t)nflows++ : UINT32_MAX;
    for (size_t f = 0; f < b->nflows; f++)
        if (cnt[f] && b->keys[f].kind != FK_ODD) remap[f] = (uint32_t)nflows++;

    size_t nhosts = 0, nports = 0;
    for (size_t f = 0; f < b->nflows; f++) {
        if (!cnt[f]) continue;
        const flowkey_t *k = &b->keys[f];
        if (k->kind == FK_ODD) continue;
        nhosts += memcmp(k->src, k->dst, 16) ? 2 : 1;
        if (k->proto == 6 || k->proto == 17) nports += k->sport != k->dport ? 2 : 1;
    }
    size_t nblocks = (n + SEGIDX_BLOCK - 1) / SEGIDX_BLOCK;

    segidx_hdr h;
    memset(&h, 0, sizeof h);
    memcpy(h.magic, SEGIDX_MAGIC, 8);
    h.version = SEGIDX_VERSION;
    h.seq = b->seq;
    h.pcap_bytes = pcap_bytes;
    h.npkts = n;
    h.nflows = nflows;
    h.nhosts = nhosts;
    h.nports = nports;
    h.nblocks = nblocks;
    size_t o = segidx__align(sizeof h);
    h.off_ts = o; o = segidx__align(o + n * sizeof(int64_t));
    h.off_off = o; o = segidx__align(o + n * 4);
    h.off_flows = o; o = segidx__align(o + nflows * sizeof(segidx_flow));
    h.off_posts = o; o = segidx__align(o + n * 4);
    h.off_hosts = o; o = segidx__align(o + nhosts * sizeof(segidx_host));
    h.off_ports = o; o = segidx__align(o + nports * sizeof(segidx_port));
    h.off_blocks = o; o = segidx__align(o + nblocks * sizeof(segidx_block));
    h.off_crcs = o; o = segidx__align(o + segidx__nchunks(&h) * 4);
    h.total_size = o;

    char *buf = xcalloc(1, o);
    int64_t *ts = (int64_t *)(buf + h.off_ts);
    uint32_t *off = (uint32_t *)(buf + h.off_off);
    segidx_flow *flows = (segidx_flow *)(buf + h.off_flows);
    uint32_t *posts = (uint32_t *)(buf + h.off_posts);
    segidx_host *hosts = (segidx_host *)(buf + h.off_hosts);
    segidx_port *ports = (segidx_port *)(buf + h.off_ports);
    segidx_block *blocks = (segidx_block *)(buf + h.off_blocks);

    if (n) { /* an empty builder has no arrays yet: memcpy from NULL is undefined */
        memcpy(ts, b->ts, n * sizeof *ts);
        memcpy(off, b->off, n * sizeof *off);
    }
    for (size_t f = 0; f < b->nflows; f++) {
        if (!cnt[f]) continue;
        segidx_flow *fl = &flows[remap[f]];
        fl->key = b->keys[f];
        fl->post_start = cnt[f]; /* the count, for now */
        fl->first_ns = INT64_MAX;
        fl->last_ns = INT64_MIN;
    }
    uint32_t start = 0;
    for (size_t f = 0; f < nflows; f++) {
        uint32_t c = flows[f].post_start;
        flows[f].post_start = start;
        start += c;
    }
    h.flags = SEGIDX_F_TS_SORTED;
    h.min_ts = n ? INT64_MAX : 0;
    h.max_ts = n ? INT64_MIN : 0;
    for (size_t i = 0; i < n; i++) {
        segidx_flow *fl = &flows[remap[b->flow[i]]];
        posts[fl->post_start + fl->packets++] = (uint32_t)i;
        fl->bytes += b->len[i];
        if (ts[i] < fl->first_ns) fl->first_ns = ts[i];
        if (ts[i] > fl->last_ns) fl->last_ns = ts[i];
        if (ts[i] < h.min_ts) h.min_ts = ts[i];
        if (ts[i] > h.max_ts) h.max_ts = ts[i];
        if (i && ts[i] < ts[i - 1]) h.flags &= ~(uint32_t)SEGIDX_F_TS_SORTED;
        segidx_block *bl = &blocks[i / SEGIDX_BLOCK];
        if (i % SEGIDX_BLOCK == 0) bl->min_ts = bl->max_ts = ts[i];
        if (ts[i] < bl->min_ts) bl->min_ts = ts[i];
        if (ts[i] > bl->max_ts) bl->max_ts = ts[i];
    }
    size_t hi = 0, pi = 0;
    for (size_t f = 0; f < nflows; f++) {
        const flowkey_t *k = &flows[f].key;
        if (k->kind == FK_ODD) continue;
        memcpy(hosts[hi].addr, k->src, 16);
        hosts[hi++].flow = (uint32_t)f;
        if (memcmp(k->src, k->dst, 16)) {
            memcpy(hosts[hi].addr, k->dst, 16);
            hosts[hi++].flow = (uint32_t)f;
        }
        if (k->proto == 6 || k->proto == 17) {
            ports[pi].port = k->sport;
            ports[pi++].flow = (uint32_t)f;
            if (k->sport != k->dport) {
                ports[pi].port = k->dport;
                ports[pi++].flow = (uint32_t)f;
            }
        }
    }
    qsort(hosts, nhosts, sizeof *hosts, segidx__cmp_host);
    qsort(ports, nports, sizeof *ports, segidx__cmp_port);
    memcpy(buf, &h, sizeof h);
    segidx_checksum(buf, o);
    free(cnt);
    free(remap);

    segidx_t *ix = xcalloc(1, sizeof *ix);
    ix->base = buf;
    ix->size = o;
    char err[128];
    if (segidx__bind(ix, err, sizeof err) < 0) {
        log_error("built an inconsistent index: %s", err); /* a bug, not input */
        abort();
    }
    segidx__chk_free(ix); /* made here from the packets: nothing to check */
    return ix;
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
