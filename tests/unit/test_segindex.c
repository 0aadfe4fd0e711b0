/* test_segindex.c - build, write, map, verify and rebuild a segment index. */
#include "crc32c.h"
#include "flowkey.h"
#include "pcapio.h"
#include "segindex.h"
#include "test.h"

#include <errno.h>
#include <stdio.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

static flowkey_t key(int kind, uint8_t a, uint8_t b, uint16_t sp, uint16_t dp)
{
    flowkey_t k;
    memset(&k, 0, sizeof k);
    k.kind = (uint8_t)kind;
    if (kind != FK_ODD) {
        uint8_t v4[4] = { 10, 0, 0, a };
        decode_map4(v4, k.src);
        v4[3] = b;
        decode_map4(v4, k.dst);
        k.proto = 6;
        k.sport = sp;
        k.dport = dp;
    }
    return k;
}

static void test_build_and_roundtrip(void)
{
    segidx_builder_t *b = segidx_builder_new();
    segidx_builder_reset(b, 42);
    flowkey_t k1 = key(FK_IPV4, 1, 2, 1000, 80), k2 = key(FK_IPV4, 2, 1, 80, 1000),
              ko = key(FK_ODD, 0, 0, 0, 0);
    /* 5000 packets alternating over three flows, one timestamp out of order */
    for (uint32_t i = 0; i < 5000; i++) {
        const flowkey_t *k = i % 3 == 0 ? &k1 : i % 3 == 1 ? &k2 : &ko;
        int64_t ts = 1000 + i * 10;
        if (i == 4000) ts = 5;
        segidx_builder_add(b, k, flowkey_hash(k), ts, 24 + i * 100, 84);
    }
    segidx_builder_truncate(b, 4990); /* pretend the last 10 never hit the disk */
    segidx_t *ix = segidx_builder_finish(b, 24 + 4990 * 100);
    ASSERT_EQ(ix->hdr->npkts, 4990);
    ASSERT_EQ(ix->hdr->nflows, 3);
    ASSERT_EQ(ix->flows[0].key.kind, FK_ODD); /* odd flows first */
    ASSERT_EQ(ix->hdr->min_ts, 5);
    ASSERT_TRUE(!(ix->hdr->flags & SEGIDX_F_TS_SORTED));
    ASSERT_EQ(ix->hdr->nblocks, 5);
    uint64_t total = 0;
    for (uint64_t f = 0; f < ix->hdr->nflows; f++) {
        total += ix->flows[f].packets;
        for (uint32_t j = 1; j < ix->flows[f].packets; j++)
            ASSERT_TRUE(ix->posts[ix->flows[f].post_start + j] > ix->posts[ix->flows[f].post_start + j - 1]);
    }
    ASSERT_EQ(total, 4990);
    ASSERT_EQ(ix->hdr->nhosts, 4); /* two directional flows, two addresses each */
    ASSERT_EQ(ix->hdr->nports, 4);
    char path[] = "/tmp/mscope-test-idx-XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    ASSERT_EQ(segidx_write(ix, path), 0);
    char err[256];
    segidx_t *m = segidx_open(path, err, sizeof err);
    ASSERT_TRUE(m != NULL);
    if (m) {
        ASSERT_EQ(m->hdr->seq, 42);
        ASSERT_EQ(m->hdr->npkts, 4990);
        ASSERT_EQ(m->off[10], 24 + 1000);
        ASSERT_EQ(memcmp(m->flows, ix->flows, ix->hdr->nflows * sizeof *ix->flows), 0);
        segidx_free(m);
    }
    /* A torn index is refused, not trusted. */
    ASSERT_EQ(truncate(path, 100), 0);
    ASSERT_TRUE(segidx_open(path, err, sizeof err) == NULL);
    unlink(path);
    segidx_free(ix);
    segidx_builder_free(b);
}

static void test_scan_cuts_torn_tail(void)
{
    char path[] = "/tmp/mscope-test-seg-XXXXXX";
    int fd = mkstemp(path);
    uint8_t hdr[PCAPIO_FILE_HDR], rec[PCAPIO_REC_HDR], data[60];
    memset(data, 0, sizeof data);
    data[12] = 0x08; data[14] = 0x45; data[17] = 46; data[23] = 17; data[37] = 8; data[39] = 26;
    pcapio_file_header(hdr);
    ASSERT_EQ(write(fd, hdr, sizeof hdr), (ssize_t)sizeof hdr);
    for (int i = 0; i < 3; i++) {
        pcapio_rec_header(rec, 1000000000LL + i, sizeof data, sizeof data);
        ASSERT_EQ(write(fd, rec, sizeof rec), (ssize_t)sizeof rec);
        ASSERT_EQ(write(fd, data, sizeof data), (ssize_t)sizeof data);
    }
    ASSERT_EQ(write(fd, rec, 10), 10); /* a torn record header */
    segidx_builder_t *b = segidx_builder_new();
    segidx_builder_reset(b, 1);
    uint64_t valid = 0;
    ASSERT_EQ(segidx_scan_pcap(b, fd, 24 + 3 * 76 + 10, &valid), 0);
    ASSERT_EQ(valid, 24 + 3 * 76);
    ASSERT_EQ(segidx_builder_count(b), 3);
    segidx_builder_free(b);
    close(fd);
    unlink(path);
}

/* The bit-at-a-time definition: what both implementations must equal. */
static uint32_t crc_reference(const uint8_t *p, size_t n)
{
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = c & 1 ? (c >> 1) ^ 0x82f63b78u : c >> 1;
    }
    return ~c;
}

static void test_crc32c(void)
{
    ASSERT_EQ(crc32c("123456789", 9, 0), 0xe3069283u); /* the standard check value */
    ASSERT_EQ(crc32c("", 0, 0), 0);
    uint8_t buf[1000];
    uint32_t x = 12345;
    for (size_t i = 0; i < sizeof buf; i++) buf[i] = (uint8_t)((x = x * 1103515245u + 12345u) >> 16);
    /* Every alignment and length around the 8-byte steps, both ways, chained. */
    for (size_t a = 0; a < 9; a++)
        for (size_t n = 0; n < 40; n++) {
            uint32_t want = crc_reference(buf + a, n);
            ASSERT_EQ(crc32c(buf + a, n, 0), want);
            ASSERT_EQ(crc32c__software(buf + a, n, 0), want);
            ASSERT_EQ(crc32c(buf + a + n / 2, n - n / 2, crc32c(buf + a, n / 2, 0)), want);
        }
    ASSERT_EQ(crc32c(buf, sizeof buf, 0), crc_reference(buf, sizeof buf));
}

/* Write an index of 60000 packets (several chunks) to a temporary file;
 * returns its path (static). */
static const char *write_index(void)
{
    static char path[64];
    segidx_builder_t *b = segidx_builder_new();
    segidx_builder_reset(b, 7);
    flowkey_t k1 = key(FK_IPV4, 1, 2, 1000, 80), ko = key(FK_ODD, 0, 0, 0, 0);
    for (uint32_t i = 0; i < 60000; i++) {
        flowkey_t kn = key(FK_IPV4, (uint8_t)(i % 200), 2, (uint16_t)(i % 3000), 80);
        const flowkey_t *k = i % 5 == 0 ? &ko : i % 5 == 1 ? &k1 : &kn;
        segidx_builder_add(b, k, flowkey_hash(k), 1000 + i, 24 + i * 100, 84);
    }
    segidx_t *ix = segidx_builder_finish(b, 24 + 60000 * 100);
    snprintf(path, sizeof path, "/tmp/mscope-test-idx-XXXXXX");
    int fd = mkstemp(path);
    close(fd);
    ASSERT_EQ(segidx_write(ix, path), 0);
    segidx_free(ix);
    segidx_builder_free(b);
    return path;
}

static void flip_byte(const char *path, uint64_t off)
{
    int fd = open(path, O_RDWR);
    uint8_t c;
    ASSERT_EQ(pread(fd, &c, 1, (off_t)off), 1);
    c ^= 0x10;
    ASSERT_EQ(pwrite(fd, &c, 1, (off_t)off), 1);
    close(fd);
}

/* Version 2 files (64 KiB chunks) are still read and checked. */
static void test_version2(void)
{
    char err[256];
    const char *path = write_index();
    FILE *f = fopen(path, "r+b");
    ASSERT_TRUE(f != NULL);
    if (!f) return;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    char *buf = malloc((size_t)size);
    fseek(f, 0, SEEK_SET);
    ASSERT_EQ(fread(buf, 1, (size_t)size, f), size);
    segidx_hdr *h = (segidx_hdr *)buf;
    ASSERT_EQ(h->version, 3);
    h->version = 2;
    segidx_checksum(buf, (size_t)size);
    fseek(f, 0, SEEK_SET);
    ASSERT_EQ(fwrite(buf, 1, (size_t)size, f), size);
    fclose(f);
    segidx_t *ix = segidx_open(path, err, sizeof err);
    ASSERT_TRUE(ix != NULL);
    if (ix) {
        ASSERT_EQ(ix->chk->shift, 16);
        ASSERT_EQ(ix->chk->nchunks, (h->off_crcs - sizeof *h + 65535) / 65536);
        ASSERT_EQ(segidx_verify(ix, err, sizeof err), 0);
        segidx_free(ix);
    }
    flip_byte(path, h->off_posts + 4 * 100);
    ix = segidx_open(path, err, sizeof err);
    ASSERT_TRUE(ix != NULL);
    if (ix) {
        ASSERT_EQ(segidx_check(ix, ix->posts + 100, 4), -1);
        ASSERT_EQ(segidx_check(ix, &ix->ts[0], 8), 0);
        segidx_free(ix);
    }
    free(buf);
    unlink(path);
}

static void test_checksums(void)
{
    char err[256];
    const char *path = write_index();
    segidx_t *ix = segidx_open(path, err, sizeof err);
    ASSERT_TRUE(ix != NULL);
    if (!ix) return;
    ASSERT_TRUE(ix->chk && ix->chk->nchunks > 8);
    ASSERT_EQ(segidx_verify(ix, err, sizeof err), 0);
    segidx_hdr h = *ix->hdr;
    segidx_free(ix);
    /* One flipped bit in any section: the header still opens; reading the
     * damaged part fails and names its section, other chunks still pass. */
    struct { uint64_t off; const char *name; } sec[] = {
        { h.off_ts + 8 * 20000 + 1, "times" },     { h.off_off + 4 * 30000, "offsets" },
        { h.off_flows + 96 * 100 + 3, "flows" },   { h.off_posts + 4 * 59999, "posting lists" },
        { h.off_hosts + 15, "hosts" },             { h.off_ports, "ports" },
        { h.off_blocks + 9, "time blocks" },
    };
    for (unsigned i = 0; i < sizeof sec / sizeof sec[0]; i++) {
        flip_byte(path, sec[i].off);
        ix = segidx_open(path, err, sizeof err);
        ASSERT_TRUE(ix != NULL);
        if (ix) {
            const char *p = (const char *)ix->base + sec[i].off;
            ASSERT_EQ(segidx_check(ix, p, 1), -1);
            ASSERT_EQ(segidx_check(ix, p, 1), -1); /* a failed chunk is not marked good */
            ASSERT_TRUE(strstr(ix->chk->damage, sec[i].name) != NULL);
            ASSERT_EQ(segidx_verify(ix, err, sizeof err), -1);
            /* The first packet's time is far from every flip but the ts one's chunk. */
            if (i) ASSERT_EQ(segidx_check(ix, &ix->ts[0], 8), 0);
            segidx_free(ix);
        }
        flip_byte(path, sec[i].off); /* back: it passes again */
        ix = segidx_open(path, err, sizeof err);
        ASSERT_TRUE(ix != NULL && segidx_verify(ix, err, sizeof err) == 0);
        segidx_free(ix);
    }
    /* The header or the chunk table: refused at open. */
    uint64_t hdr_fields[] = { offsetof(segidx_hdr, pcap_bytes), offsetof(segidx_hdr, min_ts),
                              h.off_crcs + 4 };
    for (unsigned i = 0; i < 3; i++) {
        flip_byte(path, hdr_fields[i]);
        errno = 0;
        ASSERT_TRUE(segidx_open(path, err, sizeof err) == NULL);
        ASSERT_EQ(errno, EBADMSG);
        ASSERT_TRUE(strstr(err, "checksum") != NULL);
        flip_byte(path, hdr_fields[i]);
    }
    /* A version 1 index (before checksums) is another version, not damage. */
    uint32_t v1 = 1;
    int fd = open(path, O_RDWR);
    ASSERT_EQ(pwrite(fd, &v1, 4, offsetof(segidx_hdr, version)), 4);
    close(fd);
    errno = 0;
    ASSERT_TRUE(segidx_open(path, err, sizeof err) == NULL);
    ASSERT_EQ(errno, EPROTO);
    errno = 0;
    ASSERT_TRUE(segidx_open("/nonexistent/seg.idx", err, sizeof err) == NULL);
    ASSERT_EQ(errno, ENOENT);
    unlink(path);
}


/* Keys of every form the builder keeps, compact or whole: IPv4 from three
 * VNIs and five observers, IPv6 below and above the IPv4-mapped block,
 * IPv4-mapped addresses in an IPv6 header, odd keys, later fragments, and
 * a key whose padding is set (as only a caller building keys by hand makes). */
static flowkey_t mixed_key(uint32_t i)
{
    flowkey_t k;
    memset(&k, 0, sizeof k);
    uint32_t r = i * 2654435761u;
    k.vni = i % 3;
    k.observer[15] = (uint8_t)(i % 5);
    if (i % 5) k.observer[0] = 0xfd;
    uint8_t v4[4] = { 10, (uint8_t)(r >> 8), (uint8_t)(r >> 16), (uint8_t)(i % 250) };
    switch (i % 9) {
    case 0: case 1: case 2: case 3:
        k.kind = FK_IPV4;
        decode_map4(v4, k.src);
        v4[3] = (uint8_t)(i % 7); /* many flows share a server */
        decode_map4(v4, k.dst);
        k.proto = i % 2 ? 6 : 17;
        k.sport = (uint16_t)(1024 + r % 50000);
        k.dport = (uint16_t)(i % 4 == 3 ? k.sport : 443 + i % 3); /* a few alike */
        k.vlans = (uint8_t)(i % 3 == 0);
        break;
    case 4:
        k.kind = FK_IPV6;
        k.src[0] = i % 2 ? 0x20 : 0x00; /* 2001:db8::/32 above, ::/96 below the mapped block */
        k.src[1] = i % 2 ? 0x01 : 0x00;
        k.src[15] = (uint8_t)r;
        k.src[14] = (uint8_t)(r >> 8);
        k.dst[0] = 0xfe;
        k.dst[1] = 0x80;
        k.dst[15] = (uint8_t)(i % 11);
        k.proto = 6;
        k.sport = (uint16_t)r;
        k.dport = 80;
        break;
    case 5:
        k.kind = FK_IPV6; /* mapped addresses in an IPv6 header */
        decode_map4(v4, k.src);
        k.dst[15] = 1;
        k.proto = 17;
        k.sport = 53;
        k.dport = (uint16_t)(r >> 3);
        break;
    case 6:
        k.kind = FK_ODD;
        break;
    case 7:
        k.kind = FK_IPV4;
        k.frag_later = 1;
        k.proto = 17;
        decode_map4(v4, k.src);
        decode_map4(v4, k.dst); /* one address both ways */
        break;
    default:
        k.kind = FK_IPV4;
        decode_map4(v4, k.src);
        v4[0] = 192;
        decode_map4(v4, k.dst);
        k.proto = 6;
        k.sport = 7;
        k.dport = 9;
        k.pad[1] = (uint8_t)(i % 2); /* half of these only */
        break;
    }
    return k;
}

static void *slurp(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    *size = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    void *p = malloc(*size ? *size : 1);
    if (fread(p, 1, *size, f) != *size) *size = 0;
    fclose(f);
    return p;
}

/* Build from nkeys keys, npkts packets (their times mostly rising); the last
 * 100 packets truncated away. */
static void fill(segidx_builder_t *b, uint64_t seq, uint32_t nkeys, uint32_t npkts)
{
    segidx_builder_reset(b, seq);
    for (uint32_t i = 0; i < npkts; i++) {
        flowkey_t k = mixed_key((i * 7919u) % nkeys);
        int64_t ts = 1000000 + (int64_t)i * 10 - (i % 97 == 0 ? 5000 : 0);
        segidx_builder_add(b, &k, flowkey_hash(&k), ts, 24 + i * 80, 60 + i % 1400);
    }
    segidx_builder_truncate(b, npkts - 100);
}

static int host_cmp(const segidx_host *x, const segidx_host *y)
{
    int c = memcmp(x->addr, y->addr, 16);
    return c ? c : (x->flow > y->flow) - (x->flow < y->flow);
}

/* The index laid out straight into a file is the one laid out in memory,
 * byte for byte; its keys are the distinct hosts and ports of its tables;
 * every packet's key is its flow's; and a builder reused after a reset
 * builds the same index again. */
static void test_write_equals_finish(void)
{
    char p1[] = "/tmp/mscope-test-idx-XXXXXX", p2[] = "/tmp/mscope-test-idx-XXXXXX";
    close(mkstemp(p1));
    close(mkstemp(p2));
    segidx_builder_t *b = segidx_builder_new();
    for (int round = 0; round < 3; round++) {
        /* 9000 keys: the table grows; then a reset builder, reused; then
         * 60000 keys: more than 32768 IPv4 host entries, sorted by 16-bit
         * digits instead of bytes (segindex.c: segidx__sort_hi) */
        static const uint32_t nkeys_of[3] = { 9000, 700, 60000 }, npkts_of[3] = { 40000, 5000, 150000 };
        uint32_t nkeys = nkeys_of[round], npkts = npkts_of[round];
        fill(b, 9 + round, nkeys, npkts);
        segidx_t *ix = segidx_builder_finish(b, 24 + (uint64_t)npkts * 80);
        ASSERT_EQ(segidx_write(ix, p1), 0);
        segidx_hdr h;
        segidx_keys keys;
        ASSERT_EQ(segidx_builder_write(b, 24 + (uint64_t)npkts * 80, p2, &h, &keys), 0);
        size_t n1 = 0, n2 = 0;
        char *f1 = slurp(p1, &n1), *f2 = slurp(p2, &n2);
        ASSERT_TRUE(n1 > 0 && n1 == n2 && n1 == h.total_size);
        ASSERT_TRUE(f1 && f2 && memcmp(f1, f2, n1) == 0);
        ASSERT_EQ(memcmp(&h, ix->hdr, sizeof h), 0);
        free(f1);
        free(f2);
        const segidx_hdr *x = ix->hdr;
        ASSERT_EQ(x->npkts, npkts - 100);
        ASSERT_EQ(ix->flows[0].key.kind, FK_ODD);
        ASSERT_EQ(keys.odd, 1);
        ASSERT_EQ(keys.nhosts, x->nhosts);
        ASSERT_EQ(keys.nports, x->nports);
        /* Round 0's port table is built by counting, round 1's by sorting
         * (segindex.c: SEGIDX_PORTS_SORT_MAX, 8192): the same checks hold. */
        ASSERT_TRUE(round == 1 ? x->nports <= 8192 : x->nports > 8192);
        /* Hosts and ports sorted; the keys their distinct values. */
        size_t na = 0, np = 0, n4 = 0;
        for (uint64_t i = 0; i < x->nhosts; i++) {
            if (i) ASSERT_TRUE(host_cmp(&ix->hosts[i - 1], &ix->hosts[i]) < 0);
            static const uint8_t mapped[12] = { [10] = 0xff, [11] = 0xff };
            n4 += !memcmp(ix->hosts[i].addr, mapped, 12);
            if (!i || memcmp(ix->hosts[i - 1].addr, ix->hosts[i].addr, 16)) {
                ASSERT_TRUE(na < keys.naddrs && !memcmp(keys.addrs[na], ix->hosts[i].addr, 16));
                na++;
            }
        }
        ASSERT_EQ(na, keys.naddrs);
        if (round == 2) ASSERT_TRUE(n4 > 32768);
        for (uint64_t i = 0; i < x->nports; i++) {
            const segidx_port *q = &ix->ports[i], *o = i ? q - 1 : NULL;
            if (o) ASSERT_TRUE(o->port < q->port || (o->port == q->port && o->flow < q->flow));
            ASSERT_TRUE(q->flow < x->nflows);
            const flowkey_t *fk = &ix->flows[q->flow].key;
            ASSERT_TRUE(fk->sport == q->port || fk->dport == q->port);
            if (!o || o->port != q->port) {
                ASSERT_TRUE(np < keys.nports_distinct && keys.ports[np] == q->port);
                np++;
            }
        }
        ASSERT_EQ(np, keys.nports_distinct);
        /* Each flow's packets have its key; flows are distinct. */
        uint64_t total = 0;
        for (uint64_t f = 0; f < x->nflows; f++) {
            const segidx_flow *fl = &ix->flows[f];
            total += fl->packets;
            for (uint32_t j = 0; j < fl->packets; j++) {
                uint32_t i = ix->posts[fl->post_start + j];
                flowkey_t k = mixed_key((i * 7919u) % nkeys);
                ASSERT_TRUE(flowkey_equal(&k, &fl->key));
                if (j) ASSERT_TRUE(i > ix->posts[fl->post_start + j - 1]);
            }
            if (f) ASSERT_TRUE(!flowkey_equal(&fl->key, &ix->flows[f - 1].key));
        }
        ASSERT_EQ(total, x->npkts);
        segidx_keys_free(&keys);
        segidx_free(ix);
    }
    segidx_builder_free(b);
    /* A file that cannot be written: an error, and still the header. */
    b = segidx_builder_new();
    fill(b, 3, 50, 400);
    segidx_hdr h;
    ASSERT_TRUE(segidx_builder_write(b, 24 + 400 * 80, "/nonexistent/dir/seg.idx", &h, NULL) < 0);
    ASSERT_EQ(h.npkts, 300);
    segidx_builder_free(b);
    unlink(p1);
    unlink(p2);
}

int main(void)
{
    RUN(test_crc32c);
    RUN(test_checksums);
    RUN(test_version2);
    RUN(test_build_and_roundtrip);
    RUN(test_scan_cuts_torn_tail);
    RUN(test_write_equals_finish);
    TEST_EXIT();
}
