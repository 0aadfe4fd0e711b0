/* catalog.c - the segments' catalog and their summaries (see catalog.h).
 *
 * DESIGN: one file, rewritten whole after each seal or eviction: the writer
 * pays a page-cache write per segment sealed, a search maps one file
 * instead of opening thousands. Little-endian, like the indexes:
 *   magic "MSCCAT\0\1", u32 version, u32 CRC-32C of the entries, u64
 *   count, u64 summary bytes,
 *   count entries (seq, min_ts, max_ts, packets, flags, bloom bytes, bloom
 *   offset into the summary area), then the summary area.
 * A summary is a blocked Bloom filter: a key's five bits all lie in one
 * 64-byte line picked by its hash, so testing a key reads one line, and
 * each line has its own CRC-32C (after the lines): a search verifies the
 * lines it reads, not the file - a whole-store search reads about one line
 * per term per segment, a search over the last minutes none at all. 8 to
 * 16 bits per key give about 1-3% false "maybe". At most CATALOG_BLOOM_MAX
 * bytes of lines: a segment with more keys gets none (a big segment's index
 * costs little beside its packets), which also bounds the file at about
 * 17 KiB a segment. Version 1 (no summaries) is not read: the store
 * rewrites the catalog when it starts.
 */
#include "catalog.h"

#include "crc32c.h"
#include "hash.h"
#include "xmalloc.h"

#include <errno.h>
#include <fcntl.h>
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
#define CATALOG_BLOOM_MAX 16384u
#define CATALOG_BITS_PER_KEY 8
#define CATALOG_PROBES 5
#define CATALOG_SCAN_MAX (1u << 20) /* host + port entries read to summarize */

typedef struct catalog_hdr {
    char magic[8];
    uint32_t version, crc;
    uint64_t count, bloom_total;
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
    const uint8_t *line = e->bloom + l * CATALOG_LINE;
    uint32_t crc;
    memcpy(&crc, e->bloom + e->bloom_bytes + l * 4, 4);
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

static void catalog__add_port(uint8_t *bloom, uint32_t bytes, uint64_t seq, uint16_t port)
{
    catalog__set(bloom, bytes, catalog__seg_hash(catalog__port_key(port), seq));
    catalog__set(bloom, bytes, catalog__seg_hash(catalog__block_key(port >> 8u), seq));
}

void catalog_summarize(const segidx_t *ix, uint64_t seq, catalog_entry *e)
{
    const segidx_hdr *h = ix->hdr;
    e->seq = seq;
    e->flags = 0;
    e->bloom = NULL;
    e->bloom_bytes = 0;
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
    uint64_t keys = 0;
    for (uint64_t i = 0; i < h->nhosts; i++) {
        const uint8_t *a = ix->hosts[i].addr, *b = i ? ix->hosts[i - 1].addr : NULL;
        const int *pre = memcmp(a, catalog__mapped, 12) ? catalog__v6_prefix : catalog__v4_prefix;
        keys += !b || memcmp(a, b, 16);
        for (int j = 0; j < 3; j++) keys += !b || memcmp(a, b, (size_t)pre[j] / 8);
    }
    for (uint64_t i = 0; i < h->nports; i++) {
        uint16_t p = ix->ports[i].port, q = i ? ix->ports[i - 1].port : 0;
        keys += !i || p != q;
        keys += !i || p >> 8 != q >> 8;
    }
    if (keys * CATALOG_BITS_PER_KEY > CATALOG_BLOOM_MAX * 8u) return;
    uint32_t bytes = CATALOG_LINE;
    while (bytes * 8u < keys * CATALOG_BITS_PER_KEY) bytes *= 2;
    uint8_t *bloom = xcalloc(1, catalog__stored(bytes));
    for (uint64_t i = 0; i < h->nhosts; i++)
        if (!i || memcmp(ix->hosts[i].addr, ix->hosts[i - 1].addr, 16))
            catalog__add_host(bloom, bytes, seq, ix->hosts[i].addr);
    for (uint64_t i = 0; i < h->nports; i++)
        if (!i || ix->ports[i].port != ix->ports[i - 1].port)
            catalog__add_port(bloom, bytes, seq, ix->ports[i].port);
    for (uint32_t l = 0; l < bytes / CATALOG_LINE; l++) {
        uint32_t crc = crc32c(bloom + l * CATALOG_LINE, CATALOG_LINE, 0);
        memcpy(bloom + bytes + l * 4, &crc, 4);
    }
    e->bloom = bloom;
    e->bloom_bytes = bytes;
}

/* Bits lo and hi have in common from the start (128 when equal). */
static int catalog__common_bits(const uint8_t lo[16], const uint8_t hi[16])
{
    for (int i = 0; i < 16; i++)
        if (lo[i] != hi[i]) return i * 8 + __builtin_clz((unsigned)(lo[i] ^ hi[i])) - 24;
    return 128;
}

int catalog_may_hold_hosts(const catalog_entry *e, const uint8_t lo[16], const uint8_t hi[16])
{
    if (!e->bloom_bytes || (e->flags & CATALOG_ODD)) return 1;
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
    if (!e->bloom_bytes || (e->flags & CATALOG_ODD)) return 1;
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

static int catalog__write_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n) {
        ssize_t w = write(fd, c, n);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) return -errno;
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

int catalog_write(const char *dir, const catalog_entry *e, size_t n)
{
    char path[4096], tmp[4200];
    snprintf(path, sizeof path, "%s/catalog", dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++) total += catalog__stored(e[i].bloom_bytes);
    size_t size = sizeof(catalog_hdr) + n * sizeof(catalog_disk) + total;
    char *buf = xmalloc(size);
    catalog_hdr *h = (catalog_hdr *)buf;
    memset(h, 0, sizeof *h);
    memcpy(h->magic, CATALOG_MAGIC, 8);
    h->version = CATALOG_VERSION;
    h->count = n;
    h->bloom_total = total;
    catalog_disk *d = (catalog_disk *)(buf + sizeof *h);
    char *area = (char *)(d + n);
    uint64_t off = 0;
    for (size_t i = 0; i < n; i++) {
        d[i] = (catalog_disk){ e[i].seq,   e[i].min_ts,      e[i].max_ts, e[i].packets,
                               e[i].flags, e[i].bloom_bytes, off };
        size_t k = catalog__stored(e[i].bloom_bytes);
        if (k) memcpy(area + off, e[i].bloom, k);
        off += k;
    }
    h->crc = crc32c(d, n * sizeof *d, 0);
    int rc = 0, fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) rc = -errno;
    if (!rc) rc = catalog__write_all(fd, buf, size);
    if (fd >= 0 && close(fd) < 0 && !rc) rc = -errno;
    if (!rc && rename(tmp, path) < 0) rc = -errno;
    if (rc && fd >= 0) unlink(tmp);
    free(buf);
    return rc;
}

long catalog_read(const char *dir, catalog_t *c, char *err, size_t errlen)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/catalog", dir);
    memset(c, 0, sizeof *c);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    struct stat sb;
    const char *bad = NULL;
    void *map = MAP_FAILED;
    if (fstat(fd, &sb) < 0 || (size_t)sb.st_size < sizeof(catalog_hdr) ||
        (map = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_SHARED, fd, 0)) == MAP_FAILED) {
        snprintf(err, errlen, "%s: too short to be a catalog, or unreadable", path);
        close(fd);
        return -1;
    }
    close(fd);
    const catalog_hdr *h = map;
    catalog_entry *e = NULL;
    if (memcmp(h->magic, CATALOG_MAGIC, 8) || h->version != CATALOG_VERSION ||
        h->count > CATALOG_MAX || h->bloom_total > h->count * catalog__stored(CATALOG_BLOOM_MAX) ||
        (uint64_t)sb.st_size != sizeof *h + h->count * sizeof(catalog_disk) + h->bloom_total) {
        bad = "not a catalog of this version, or torn";
        goto out;
    }
    const char *raw = (const char *)(h + 1);
    if (crc32c(raw, h->count * sizeof(catalog_disk), 0) != h->crc) {
        bad = "fails its checksum";
        goto out;
    }
    /* Each summary's lines are checked as they are read (catalog__test). */
    const uint8_t *area = (const uint8_t *)raw + h->count * sizeof(catalog_disk);
    e = xmalloc((h->count ? h->count : 1) * sizeof *e);
    for (uint64_t i = 0; i < h->count; i++) {
        catalog_disk d;
        memcpy(&d, raw + i * sizeof d, sizeof d);
        if (i && d.seq <= e[i - 1].seq) bad = "segments out of order";
        else if (d.bloom_bytes && (d.bloom_bytes < CATALOG_LINE || d.bloom_bytes > CATALOG_BLOOM_MAX ||
                                   (d.bloom_bytes & (d.bloom_bytes - 1)) ||
                                   d.bloom_off > h->bloom_total - catalog__stored(d.bloom_bytes)))
            bad = "a summary out of bounds";
        if (bad) goto out;
        e[i] = (catalog_entry){ d.seq,   d.min_ts,      d.max_ts, d.packets,
                                d.flags, d.bloom_bytes, d.bloom_bytes ? area + d.bloom_off : NULL };
    }
    c->e = e;
    c->n = h->count;
    c->map = map;
    c->map_size = (size_t)sb.st_size;
    return (long)c->n;
out:
    snprintf(err, errlen, "%s: %s", path, bad);
    free(e);
    munmap(map, (size_t)sb.st_size);
    return -1;
}

void catalog_release(catalog_t *c)
{
    free(c->e);
    if (c->map) munmap(c->map, c->map_size);
    memset(c, 0, sizeof *c);
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
