/* catalog.c - the segments' catalog and their summaries (see catalog.h).
 *
 * DESIGN: two files. "catalog" holds one entry per sealed segment and is
 * rewritten whole (tmp + rename) after each seal or eviction - 48 bytes a
 * segment. The summaries go to "catalog.sum.GEN", only ever appended to: a
 * seal appends one summary, an eviction leaves a dead one behind, and when
 * the dead outweigh the living the writer copies the living into GEN+1 and
 * removes GEN after the new catalog names it. So a seal costs a write of
 * its own summary plus the entries, not of every summary in the store, and
 * a reader (which maps both) always sees a summary file that holds every
 * byte its catalog points at. Little-endian, like the indexes:
 *   catalog: magic "MSCCAT\0\1", u32 version, u32 CRC-32C of the entries,
 *   u64 count, u64 GEN, u64 summary bytes in use (the file may be longer:
 *   an append not yet named), then count entries (seq, min_ts, max_ts,
 *   packets, flags, bloom bytes, bloom offset in catalog.sum.GEN).
 * A summary is a blocked Bloom filter: a key's five bits all lie in one
 * 64-byte line picked by its hash, so testing a key reads one line, and
 * each line has its own CRC-32C (after the lines): a search verifies the
 * lines it reads, not the file - a whole-store search reads about one line
 * per term per segment, a search over the last minutes none at all. 8 to
 * 16 bits per key give about 1-3% false "maybe". At most 1/256 of the
 * segment's bytes (at least 16 KiB) of lines: a segment with more keys gets
 * none. The store's writer adopts the files at start-up, so summaries are
 * made once, when a segment is sealed (or first found). Version 1 (no
 * summaries) is not read: the store rewrites the catalog when it starts.
 */
#include "catalog.h"

#include "crc32c.h"
#include "hash.h"
#include "xmalloc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static const char CATALOG_MAGIC[8] = { 'M', 'S', 'C', 'C', 'A', 'T', 0, 1 };
#define CATALOG_VERSION 2
#define CATALOG_MAX (1u << 24) /* entries: far beyond any disk */
#define CATALOG_LINE 64u
#define CATALOG_BLOOM_MIN_CAP 16384u   /* a segment's filter may always be this big */
#define CATALOG_BLOOM_SHARE 256u       /* ... or 1/256 of its pcap bytes */
#define CATALOG_BLOOM_MAX (16u << 20)  /* the largest any segment (4 GiB) gets */
#define CATALOG_BITS_PER_KEY 8
#define CATALOG_PROBES 5
#define CATALOG_SCAN_MAX (64u << 20) /* host + port entries read to summarize */

typedef struct catalog_hdr {
    char magic[8];
    uint32_t version, crc;
    uint64_t count, gen, sum_size;
} catalog_hdr;

typedef struct catalog_disk {
    uint64_t seq;
    int64_t min_ts, max_ts;
    uint64_t packets;
    uint32_t flags, bloom_bytes;
    uint64_t bloom_off;
} catalog_disk;

/* Bytes a summary of this many lines takes in the file: lines, then CRCs. */
static size_t catalog__stored(uint32_t bloom_bytes)
{
    return bloom_bytes + bloom_bytes / CATALOG_LINE * 4;
}

/* ---- summaries ----------------------------------------------------------- */

enum { KEY_HOST = 'H', KEY_NET = 'N', KEY_PORT = 'P', KEY_BLOCK = 'B' };

/* The prefixes kept per address, longest last: IPv4 (mapped) and IPv6. */
static const int catalog__v4_prefix[] = { 104, 112, 120 };
static const int catalog__v6_prefix[] = { 32, 48, 64 };
static const uint8_t catalog__mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

static uint64_t catalog__key(int kind, int len, const uint8_t *p, size_t n)
{
    uint8_t k[20] = { (uint8_t)kind, (uint8_t)len };
    memcpy(k + 2, p, n);
    return hash_bytes(k, n + 2, 0x6d73636174616c6fULL);
}

static uint64_t catalog__net_key(const uint8_t a[16], int len)
{
    uint8_t m[16] = { 0 };
    memcpy(m, a, (size_t)len / 8); /* every kept prefix is whole bytes */
    return catalog__key(KEY_NET, len, m, 16);
}

/* The probes of key hash h in segment seq's filter. Mixed with the segment:
 * keys common to every segment (the prefixes of a busy network, well-known
 * port blocks) would otherwise set the same bits everywhere, and an absent
 * key that falls on them would be a "maybe" in every segment. */
static uint64_t catalog__seg_hash(uint64_t h, uint64_t seq)
{
    return hash_mix64(h ^ (seq * 0x9e3779b97f4a7c15ULL));
}

/* A key's line: the low bits of its hash; its five bits in the line: nine
 * bits each from the rest. */
static void catalog__set(uint8_t *bloom, uint32_t bytes, uint64_t h)
{
    uint8_t *line = bloom + (h & (bytes / CATALOG_LINE - 1)) * CATALOG_LINE;
    for (int i = 0; i < CATALOG_PROBES; i++) {
        uint32_t bit = (uint32_t)(h >> (16 + 9 * i)) & 511;
        line[bit >> 3] |= (uint8_t)(1u << (bit & 7));
    }
}

static int catalog__test(const catalog_entry *e, uint64_t key)
{
    uint64_t h = catalog__seg_hash(key, e->seq);
    uint32_t l = (uint32_t)(h & (e->bloom_bytes / CATALOG_LINE - 1));
    uint8_t buf[CATALOG_LINE];
    const uint8_t *line;
    uint32_t crc;
    if (e->bloom) {
        line = e->bloom + l * CATALOG_LINE;
        memcpy(&crc, e->bloom + e->bloom_bytes + l * 4, 4);
    } else {
        /* A line that cannot be read says "maybe", as a damaged one does. */
        uint64_t off = e->bloom_off + (uint64_t)l * CATALOG_LINE;
        if (pread(e->file->fd, buf, CATALOG_LINE, (off_t)off) != (ssize_t)CATALOG_LINE ||
            pread(e->file->fd, &crc, 4, (off_t)(e->bloom_off + e->bloom_bytes + (uint64_t)l * 4)) != 4)
            return 1;
        line = buf;
    }
    /* A line that fails its checksum cannot say "no". */
    if (crc32c(line, CATALOG_LINE, 0) != crc) return 1;
    for (int i = 0; i < CATALOG_PROBES; i++) {
        uint32_t bit = (uint32_t)(h >> (16 + 9 * i)) & 511;
        if (!(line[bit >> 3] >> (bit & 7) & 1)) return 0;
    }
    return 1;
}

static void catalog__add_host(uint8_t *bloom, uint32_t bytes, uint64_t seq, const uint8_t a[16])
{
    int v4 = !memcmp(a, catalog__mapped, 12);
    const int *pre = v4 ? catalog__v4_prefix : catalog__v6_prefix;
    catalog__set(bloom, bytes, catalog__seg_hash(catalog__key(KEY_HOST, 128, a, 16), seq));
    for (int i = 0; i < 3; i++)
        catalog__set(bloom, bytes, catalog__seg_hash(catalog__net_key(a, pre[i]), seq));
}

static uint64_t catalog__port_key(uint16_t port)
{
    uint8_t p[2] = { (uint8_t)(port >> 8), (uint8_t)port };
    return catalog__key(KEY_PORT, 16, p, 2);
}

static uint64_t catalog__block_key(uint32_t block)
{
    uint8_t b = (uint8_t)block;
    return catalog__key(KEY_BLOCK, 8, &b, 1);
}

static uint16_t catalog__port_at(const uint8_t *p)
{
    uint16_t v;
    memcpy(&v, p, 2);
    return v;
}

static void catalog__add_port(uint8_t *bloom, uint32_t bytes, uint64_t seq, uint16_t port)
{
    catalog__set(bloom, bytes, catalog__seg_hash(catalog__port_key(port), seq));
    catalog__set(bloom, bytes, catalog__seg_hash(catalog__block_key(port >> 8u), seq));
}

/* The summary of a segment from its sorted host addresses (n of them,
 * stride bytes apart) and sorted ports (likewise), repeats allowed: each
 * distinct key counts once, where the sorted list changes. */
static void catalog__summarize(uint64_t seq, uint64_t pcap_bytes, const uint8_t *hosts, uint64_t nh,
                               size_t hstride, const uint8_t *ports, uint64_t np, size_t pstride,
                               catalog_entry *e)
{
#define HOST(i) (hosts + (i) * hstride)
#define PORT(i) catalog__port_at(ports + (i) * pstride)
    uint64_t keys = 0;
    for (uint64_t i = 0; i < nh; i++) {
        const uint8_t *a = HOST(i), *b = i ? HOST(i - 1) : NULL;
        const int *pre = memcmp(a, catalog__mapped, 12) ? catalog__v6_prefix : catalog__v4_prefix;
        keys += !b || memcmp(a, b, 16);
        for (int j = 0; j < 3; j++) keys += !b || memcmp(a, b, (size_t)pre[j] / 8);
    }
    for (uint64_t i = 0; i < np; i++) {
        uint16_t p = PORT(i), q = i ? PORT(i - 1) : 0;
        keys += !i || p != q;
        keys += !i || p >> 8 != q >> 8;
    }
    uint64_t cap = pcap_bytes / CATALOG_BLOOM_SHARE;
    if (cap < CATALOG_BLOOM_MIN_CAP) cap = CATALOG_BLOOM_MIN_CAP;
    if (cap > CATALOG_BLOOM_MAX) cap = CATALOG_BLOOM_MAX;
    if (keys * CATALOG_BITS_PER_KEY > cap * 8u) return;
    uint32_t bytes = CATALOG_LINE;
    while (bytes * 8u < keys * CATALOG_BITS_PER_KEY) bytes *= 2;
    uint8_t *bloom = xcalloc(1, catalog__stored(bytes));
    for (uint64_t i = 0; i < nh; i++)
        if (!i || memcmp(HOST(i), HOST(i - 1), 16)) catalog__add_host(bloom, bytes, seq, HOST(i));
    for (uint64_t i = 0; i < np; i++)
        if (!i || PORT(i) != PORT(i - 1)) catalog__add_port(bloom, bytes, seq, PORT(i));
    for (uint32_t l = 0; l < bytes / CATALOG_LINE; l++) {
        uint32_t crc = crc32c(bloom + l * CATALOG_LINE, CATALOG_LINE, 0);
        memcpy(bloom + bytes + l * 4, &crc, 4);
    }
    e->bloom = bloom;
    e->bloom_bytes = bytes;
#undef HOST
#undef PORT
}

static void catalog__begin(uint64_t seq, catalog_entry *e)
{
    e->seq = seq;
    e->flags = 0;
    e->bloom = NULL;
    e->bloom_bytes = 0;
}

void catalog_summarize(const segidx_t *ix, uint64_t seq, catalog_entry *e)
{
    const segidx_hdr *h = ix->hdr;
    catalog__begin(seq, e);
    if (h->nflows) {
        if (segidx_check(ix, &ix->flows[0], sizeof ix->flows[0]) < 0) return;
        if (ix->flows[0].key.kind == FK_ODD) {
            e->flags |= CATALOG_ODD;
            return; /* never pruned: a summary would not be read */
        }
    }
    if (h->nhosts + h->nports > CATALOG_SCAN_MAX ||
        segidx_check(ix, ix->hosts, h->nhosts * sizeof *ix->hosts) < 0 ||
        segidx_check(ix, ix->ports, h->nports * sizeof *ix->ports) < 0)
        return;
    /* Both tables are sorted, so are the prefixes and blocks: distinct keys
     * are where they change. */
    catalog__summarize(seq, h->pcap_bytes, ix->hosts[0].addr, h->nhosts, sizeof *ix->hosts,
                       (const uint8_t *)&ix->ports[0].port, h->nports, sizeof *ix->ports, e);
}

void catalog_summarize_keys(const segidx_keys *k, uint64_t pcap_bytes, uint64_t seq,
                            catalog_entry *e)
{
    catalog__begin(seq, e);
    if (k->odd) {
        e->flags |= CATALOG_ODD;
        return;
    }
    if (k->nhosts + k->nports > CATALOG_SCAN_MAX) return;
    catalog__summarize(seq, pcap_bytes, k->addrs ? k->addrs[0] : NULL, k->naddrs, 16,
                       (const uint8_t *)k->ports, k->nports_distinct, sizeof *k->ports, e);
}

/* Bits lo and hi have in common from the start (128 when equal). */
static int catalog__common_bits(const uint8_t lo[16], const uint8_t hi[16])
{
    for (int i = 0; i < 16; i++)
        if (lo[i] != hi[i]) return i * 8 + __builtin_clz((unsigned)(lo[i] ^ hi[i])) - 24;
    return 128;
}

/* 1 when e has a summary to test. */
static int catalog__has(const catalog_entry *e)
{
    return e->bloom_bytes && !(e->flags & CATALOG_ODD) && (e->bloom || e->file);
}

int catalog_may_hold_hosts(const catalog_entry *e, const uint8_t lo[16], const uint8_t hi[16])
{
    if (!catalog__has(e)) return 1;
    int common = catalog__common_bits(lo, hi);
    if (common == 128) return catalog__test(e, catalog__key(KEY_HOST, 128, lo, 16));
    /* Every address in the range shares `common` leading bits with lo: the
     * longest kept prefix within them answers for all of them. */
    int v4 = common >= 96 && !memcmp(lo, catalog__mapped, 12);
    const int *pre = v4 ? catalog__v4_prefix : catalog__v6_prefix;
    for (int i = 2; i >= 0; i--)
        if (pre[i] <= common) return catalog__test(e, catalog__net_key(lo, pre[i]));
    return 1;
}

int catalog_may_hold_ports(const catalog_entry *e, uint16_t lo, uint16_t hi)
{
    if (!catalog__has(e)) return 1;
    if (lo > hi) return 0;
    if (hi - lo < 16) {
        for (uint32_t p = lo; p <= hi; p++)
            if (catalog__test(e, catalog__port_key((uint16_t)p))) return 1;
        return 0;
    }
    for (uint32_t b = lo >> 8u; b <= (uint32_t)hi >> 8u; b++)
        if (catalog__test(e, catalog__block_key(b))) return 1;
    return 0;
}

/* ---- the file ------------------------------------------------------------ */

struct catalog_writer {
    char *dir;
    uint64_t gen; /* of the summary file; 0 before there is one */
    int fd;       /* catalog.sum.GEN, -1 before there is one */
    uint64_t size;
    int swept;    /* older generations removed since this writer began */
    /* every segment it has a summary (or a decision of none) for, ascending
     * seq, with what the segment was when summarized */
    catalog_entry *seg;    /* seq, min_ts, max_ts, packets, flags, bloom_bytes */
    uint64_t *off;         /* where its summary is in the file */
    size_t n, cap;
};

static void catalog__sum_path(const char *dir, uint64_t gen, char *buf, size_t len)
{
    snprintf(buf, len, "%s/catalog.sum.%" PRIu64, dir, gen);
}

/* Generations of dir's summary files: the highest (keep = 0), or remove
 * every one but keep. */
static uint64_t catalog__gens(const char *dir, uint64_t keep)
{
    DIR *d = opendir(dir);
    uint64_t last = 0;
    if (!d) return 0;
    struct dirent *de;
    char path[4096];
    while ((de = readdir(d))) {
        unsigned long long gen;
        char tail;
        if (sscanf(de->d_name, "catalog.sum.%llu%c", &gen, &tail) != 1) continue;
        if (gen > last) last = gen;
        if (keep && gen != keep) {
            catalog__sum_path(dir, gen, path, sizeof path);
            unlink(path);
        }
    }
    closedir(d);
    return last;
}

static int catalog__pwrite_all(int fd, const void *p, size_t n, uint64_t off)
{
    const char *c = p;
    while (n) {
        ssize_t w = pwrite(fd, c, n, (off_t)off);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) return -errno;
        c += w;
        n -= (size_t)w;
        off += (uint64_t)w;
    }
    return 0;
}

static int catalog__pread_all(int fd, void *p, size_t n, uint64_t off)
{
    char *c = p;
    while (n) {
        ssize_t r = pread(fd, c, n, (off_t)off);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return r < 0 ? -errno : -EIO;
        c += r;
        n -= (size_t)r;
        off += (uint64_t)r;
    }
    return 0;
}

/* The slot of seq, or -1; *at: where it would go. */
static long catalog__slot(const catalog_writer_t *w, uint64_t seq, size_t *at)
{
    size_t a = 0, b = w->n;
    while (a < b) {
        size_t m = (a + b) / 2;
        if (w->seg[m].seq < seq) a = m + 1;
        else b = m;
    }
    if (at) *at = a;
    return a < w->n && w->seg[a].seq == seq ? (long)a : -1;
}

static void catalog__remember(catalog_writer_t *w, const catalog_entry *e, uint64_t off)
{
    size_t at;
    if (catalog__slot(w, e->seq, &at) >= 0) return;
    xgrow((void **)&w->seg, &w->cap, w->n + 1, sizeof *w->seg);
    w->off = xrealloc(w->off, w->cap * sizeof *w->off);
    memmove(w->seg + at + 1, w->seg + at, (w->n - at) * sizeof *w->seg);
    memmove(w->off + at + 1, w->off + at, (w->n - at) * sizeof *w->off);
    w->seg[at] = *e;
    w->seg[at].bloom = NULL;
    w->off[at] = off;
    w->n++;
}

static void catalog__forget(catalog_writer_t *w, size_t j)
{
    memmove(w->seg + j, w->seg + j + 1, (w->n - j - 1) * sizeof *w->seg);
    memmove(w->off + j, w->off + j + 1, (w->n - j - 1) * sizeof *w->off);
    w->n--;
}

catalog_writer_t *catalog_writer_open(const char *dir)
{
    catalog_writer_t *w = xcalloc(1, sizeof *w);
    w->dir = xstrdup(dir);
    w->fd = -1;
    /* Adopt what the last writer left, so a start-up does not read every
     * index's host and port tables again; appends go on after its end. */
    catalog_t c;
    char err[256], path[4096];
    if (catalog_read(dir, &c, err, sizeof err) < 0) return w;
    if (c.map) {
        catalog__sum_path(dir, c.gen, path, sizeof path);
        w->fd = open(path, O_RDWR | O_CLOEXEC);
        if (w->fd >= 0) {
            w->gen = c.gen;
            w->size = c.map_size;
        }
    }
    for (size_t i = 0; i < c.n; i++) {
        const catalog_entry *e = &c.e[i];
        if (e->bloom_bytes && w->fd < 0) continue; /* its file is gone: made again */
        catalog__remember(w, e, e->bloom_bytes ? (uint64_t)(e->bloom - (const uint8_t *)c.map) : 0);
    }
    catalog_release(&c);
    return w;
}

void catalog_writer_free(catalog_writer_t *w)
{
    if (!w) return;
    if (w->fd >= 0) close(w->fd);
    free(w->seg);
    free(w->off);
    free(w->dir);
    free(w);
}

int catalog_writer_known(catalog_writer_t *w, const catalog_entry *e)
{
    long j = catalog__slot(w, e->seq, NULL);
    if (j < 0) return 0;
    const catalog_entry *k = &w->seg[j];
    if (k->min_ts == e->min_ts && k->max_ts == e->max_ts && k->packets == e->packets) return 1;
    /* Another segment under the same number (a store emptied by hand and
     * begun again), or one cut back since: its summary is made again. */
    catalog__forget(w, (size_t)j);
    return 0;
}

/* A new, empty generation after the highest on disk or ours. */
static int catalog__new_gen(catalog_writer_t *w, int *fd, uint64_t *gen)
{
    uint64_t last = catalog__gens(w->dir, 0);
    *gen = (last > w->gen ? last : w->gen) + 1;
    char path[4096];
    catalog__sum_path(w->dir, *gen, path, sizeof path);
    *fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    return *fd < 0 ? -errno : 0;
}

int catalog_writer_add(catalog_writer_t *w, const catalog_entry *e)
{
    if (catalog__slot(w, e->seq, NULL) >= 0) return 0; /* has it */
    if (!e->bloom_bytes) {
        catalog__remember(w, e, 0);
        return 0;
    }
    if (w->fd < 0) {
        int rc = catalog__new_gen(w, &w->fd, &w->gen);
        if (rc < 0) return rc;
        w->size = 0;
    }
    size_t k = catalog__stored(e->bloom_bytes);
    int rc = catalog__pwrite_all(w->fd, e->bloom, k, w->size);
    if (rc < 0) return rc;
    catalog__remember(w, e, w->size);
    w->size += k;
    return 0;
}

/* Copy the living summaries into a new generation. */
static int catalog__compact(catalog_writer_t *w)
{
    int fd;
    uint64_t gen, size = 0;
    int rc = catalog__new_gen(w, &fd, &gen);
    if (rc < 0) return rc;
    size_t most = 0;
    for (size_t j = 0; j < w->n; j++)
        if (catalog__stored(w->seg[j].bloom_bytes) > most) most = catalog__stored(w->seg[j].bloom_bytes);
    char *buf = xmalloc(most + 1);
    uint64_t *off = xmalloc((w->n ? w->n : 1) * sizeof *off);
    for (size_t j = 0; j < w->n && !rc; j++) {
        size_t k = catalog__stored(w->seg[j].bloom_bytes);
        off[j] = size;
        if (!k) continue;
        rc = catalog__pread_all(w->fd, buf, k, w->off[j]);
        if (!rc) rc = catalog__pwrite_all(fd, buf, k, size);
        size += k;
    }
    free(buf);
    if (rc < 0) {
        char path[4096];
        catalog__sum_path(w->dir, gen, path, sizeof path);
        close(fd);
        unlink(path);
        free(off);
        return rc;
    }
    memcpy(w->off, off, w->n * sizeof *off);
    free(off);
    if (w->fd >= 0) close(w->fd);
    w->fd = fd;
    w->gen = gen;
    w->size = size;
    return 0;
}

int catalog_writer_put(catalog_writer_t *w, const catalog_entry *e, size_t n)
{
    int rc = 0;
    if (w->fd < 0) {
        /* No summary yet: an empty generation, so that the catalog names
         * one. */
        rc = catalog__new_gen(w, &w->fd, &w->gen);
        if (rc < 0) return rc;
        w->size = 0;
    }
    /* Forget the evicted; compact when the dead outweigh the living. */
    size_t keep = 0;
    uint64_t live = 0;
    for (size_t j = 0; j < w->n; j++) {
        if (!catalog_find(e, n, w->seg[j].seq)) continue;
        w->seg[keep] = w->seg[j];
        w->off[keep++] = w->off[j];
        live += catalog__stored(w->seg[j].bloom_bytes);
    }
    w->n = keep;
    int compacted = 0;
    if (w->size > live && w->size - live > live + (1u << 20)) {
        rc = catalog__compact(w);
        if (rc < 0) return rc;
        compacted = 1;
    }

    char path[4096], tmp[4200];
    snprintf(path, sizeof path, "%s/catalog", w->dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    size_t size = sizeof(catalog_hdr) + n * sizeof(catalog_disk);
    char *buf = xmalloc(size);
    catalog_hdr *h = (catalog_hdr *)buf;
    memset(h, 0, sizeof *h);
    memcpy(h->magic, CATALOG_MAGIC, 8);
    h->version = CATALOG_VERSION;
    h->count = n;
    h->gen = w->gen;
    h->sum_size = w->size;
    catalog_disk *d = (catalog_disk *)(buf + sizeof *h);
    for (size_t i = 0; i < n; i++) {
        long j = catalog__slot(w, e[i].seq, NULL);
        d[i] = (catalog_disk){ e[i].seq, e[i].min_ts, e[i].max_ts, e[i].packets,
                               j < 0 ? 0 : w->seg[j].flags, j < 0 ? 0 : w->seg[j].bloom_bytes,
                               j < 0 ? 0 : w->off[j] };
    }
    h->crc = crc32c(d, n * sizeof *d, 0);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) rc = -errno;
    if (!rc) rc = catalog__pwrite_all(fd, buf, size, 0);
    if (fd >= 0 && close(fd) < 0 && !rc) rc = -errno;
    if (!rc && rename(tmp, path) < 0) rc = -errno;
    if (rc && fd >= 0) unlink(tmp);
    free(buf);
    /* Other generations go once no catalog names them. */
    if (!rc && (compacted || !w->swept)) {
        catalog__gens(w->dir, w->gen);
        w->swept = 1;
    }
    return rc;
}

/* catalog_read (mapped: 1) and catalog_read_lines (0). */
static long catalog__read(const char *dir, catalog_t *c, int mapped, char *err, size_t errlen)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/catalog", dir);
    memset(c, 0, sizeof *c);
    c->fd = -1;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    catalog_hdr h;
    struct stat sb;
    const char *bad = NULL;
    catalog_entry *e = NULL;
    char *raw = NULL;
    if (fstat(fd, &sb) < 0 || pread(fd, &h, sizeof h, 0) != (ssize_t)sizeof h ||
        memcmp(h.magic, CATALOG_MAGIC, 8) || h.version != CATALOG_VERSION ||
        h.count > CATALOG_MAX || (uint64_t)sb.st_size != sizeof h + h.count * sizeof(catalog_disk)) {
        bad = "not a catalog of this version, or torn";
        goto out;
    }
    size_t want = h.count * sizeof(catalog_disk);
    raw = xmalloc(want + 1);
    if (pread(fd, raw, want, sizeof h) != (ssize_t)want || crc32c(raw, want, 0) != h.crc) {
        bad = "fails its checksum";
        goto out;
    }
    /* The summaries: when their file is gone or short (a catalog restored
     * from elsewhere), the entries still say where segments lie in time. */
    char spath[4096];
    catalog__sum_path(dir, h.gen, spath, sizeof spath);
    int sfd = h.sum_size ? open(spath, O_RDONLY | O_CLOEXEC) : -1;
    struct stat ss;
    void *map = NULL;
    if (sfd >= 0 && (fstat(sfd, &ss) < 0 || (uint64_t)ss.st_size < h.sum_size)) {
        close(sfd);
        sfd = -1;
    }
    if (sfd >= 0 && mapped) {
        map = mmap(NULL, h.sum_size, PROT_READ, MAP_SHARED, sfd, 0);
        if (map == MAP_FAILED) map = NULL;
        close(sfd);
        sfd = -1;
    }
    /* Each summary's lines are checked as they are read (catalog__test). */
    e = xmalloc((h.count ? h.count : 1) * sizeof *e);
    for (uint64_t i = 0; i < h.count; i++) {
        catalog_disk d;
        memcpy(&d, raw + i * sizeof d, sizeof d);
        if (i && d.seq <= e[i - 1].seq) bad = "segments out of order";
        else if (d.bloom_bytes && (d.bloom_bytes < CATALOG_LINE || d.bloom_bytes > CATALOG_BLOOM_MAX ||
                                   (d.bloom_bytes & (d.bloom_bytes - 1)) ||
                                   catalog__stored(d.bloom_bytes) > h.sum_size ||
                                   d.bloom_off > h.sum_size - catalog__stored(d.bloom_bytes)))
            bad = "a summary out of bounds";
        if (bad) {
            if (map) munmap(map, h.sum_size);
            if (sfd >= 0) close(sfd);
            goto out;
        }
        int has = (map || sfd >= 0) && d.bloom_bytes;
        e[i] = (catalog_entry){ d.seq,   d.min_ts,   d.max_ts, d.packets, d.flags,
                                has ? d.bloom_bytes : 0,
                                has && map ? (const uint8_t *)map + d.bloom_off : NULL,
                                has && !map ? c : NULL,
                                has ? d.bloom_off : 0 };
    }
    free(raw);
    close(fd);
    c->e = e;
    c->n = h.count;
    c->map = map;
    c->map_size = map ? h.sum_size : 0;
    c->fd = sfd;
    c->gen = h.gen;
    return (long)c->n;
out:
    snprintf(err, errlen, "%s: %s", path, bad);
    free(raw);
    free(e);
    close(fd);
    return -1;
}

long catalog_read(const char *dir, catalog_t *c, char *err, size_t errlen)
{
    return catalog__read(dir, c, 1, err, errlen);
}

long catalog_read_lines(const char *dir, catalog_t *c, char *err, size_t errlen)
{
    return catalog__read(dir, c, 0, err, errlen);
}

void catalog_release(catalog_t *c)
{
    free(c->e);
    if (c->map) munmap(c->map, c->map_size);
    if (c->fd >= 0) close(c->fd);
    memset(c, 0, sizeof *c);
    c->fd = -1;
}

const catalog_entry *catalog_find(const catalog_entry *e, size_t n, uint64_t seq)
{
    size_t a = 0, b = n;
    while (a < b) {
        size_t m = (a + b) / 2;
        if (e[m].seq < seq) a = m + 1;
        else b = m;
    }
    return a < n && e[a].seq == seq ? &e[a] : NULL;
}
