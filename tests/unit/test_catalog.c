/* test_catalog.c - segment summaries (a Bloom filter of hosts, prefixes,
 * ports and port blocks) and the catalog file that carries them. */
#include "catalog.h"
#include "flowkey.h"
#include "segindex.h"
#include "test.h"

#include <stdlib.h>
#include <unistd.h>

static uint64_t rng = 88172645463325252ULL;

static uint32_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)rng;
}

static void addr4(uint32_t a, uint8_t out[16])
{
    uint8_t v4[4] = { (uint8_t)(a >> 24), (uint8_t)(a >> 16), (uint8_t)(a >> 8), (uint8_t)a };
    decode_map4(v4, out);
}

/* An index of n TCP flows between random 10/8 addresses and ports. */
static segidx_t *index_of(int n, flowkey_t *keys, int odd)
{
    segidx_builder_t *b = segidx_builder_new();
    segidx_builder_reset(b, 1);
    for (int i = 0; i < n; i++) {
        flowkey_t *k = &keys[i];
        memset(k, 0, sizeof *k);
        k->kind = FK_IPV4;
        k->proto = 6;
        addr4(0x0a000000u | (rnd() & 0xffffff), k->src);
        addr4(0x0a000000u | (rnd() & 0xffffff), k->dst);
        k->sport = (uint16_t)(1024 + rnd() % 60000);
        k->dport = (uint16_t)(rnd() % 1024);
        segidx_builder_add(b, k, flowkey_hash(k), 1000 + i, 24 + (uint32_t)i * 100, 84);
    }
    if (odd) {
        flowkey_t k;
        memset(&k, 0, sizeof k);
        segidx_builder_add(b, &k, flowkey_hash(&k), 999999, 24 + (uint32_t)n * 100, 60);
    }
    segidx_t *ix = segidx_builder_finish(b, 24 + (uint64_t)(n + 1) * 100);
    segidx_builder_free(b);
    return ix;
}

static int prefix_holds(const catalog_entry *e, const uint8_t a[16], int bits)
{
    uint8_t lo[16], hi[16];
    for (int i = 0; i < 16; i++) {
        int keep = bits - i * 8;
        uint8_t m = keep >= 8 ? 0xff : keep <= 0 ? 0 : (uint8_t)(0xff << (8 - keep));
        lo[i] = a[i] & m;
        hi[i] = (uint8_t)(a[i] | ~m);
    }
    return catalog_may_hold_hosts(e, lo, hi);
}

/* Nothing present is ever denied; absent keys are denied but for ~1-2%. */
static void test_no_false_no(void)
{
    enum { N = 600 };
    flowkey_t keys[N];
    segidx_t *ix = index_of(N, keys, 0);
    catalog_entry e;
    catalog_summarize(ix, 1, &e);
    ASSERT_TRUE(e.bloom_bytes > 0 && !(e.flags & CATALOG_ODD));
    for (int i = 0; i < N; i++) {
        ASSERT_EQ(catalog_may_hold_hosts(&e, keys[i].src, keys[i].src), 1);
        ASSERT_EQ(catalog_may_hold_hosts(&e, keys[i].dst, keys[i].dst), 1);
        ASSERT_EQ(catalog_may_hold_ports(&e, keys[i].sport, keys[i].sport), 1);
        ASSERT_EQ(catalog_may_hold_ports(&e, keys[i].dport, keys[i].dport), 1);
        ASSERT_EQ(catalog_may_hold_ports(&e, keys[i].sport - 5, keys[i].sport + 5), 1);
        ASSERT_EQ(catalog_may_hold_ports(&e, keys[i].sport & 0xff00, keys[i].sport | 0xff), 1);
        for (int bits = 97; bits < 128; bits += 3) ASSERT_EQ(prefix_holds(&e, keys[i].src, bits), 1);
    }
    /* Absent: addresses outside 10/8, ports above 61024 (none drawn). */
    int fp_host = 0, fp_port = 0, fp_net = 0, tries = 20000;
    for (int i = 0; i < tries; i++) {
        uint8_t a[16];
        addr4(0x0b000000u | (rnd() & 0xffffff), a);
        fp_host += catalog_may_hold_hosts(&e, a, a);
        fp_net += prefix_holds(&e, a, 96 + 24);
        uint16_t p = (uint16_t)(61100 + rnd() % 4000);
        fp_port += catalog_may_hold_ports(&e, p, p);
    }
    printf("false maybe: hosts %.2f%%, /24 %.2f%%, ports %.2f%% (%u-byte summary, %d flows)\n",
           100.0 * fp_host / tries, 100.0 * fp_net / tries, 100.0 * fp_port / tries, e.bloom_bytes, N);
    ASSERT_TRUE(fp_host < tries * 3 / 100);
    ASSERT_TRUE(fp_net < tries * 3 / 100);
    ASSERT_TRUE(fp_port < tries * 3 / 100);
    /* 11.0.0.0/8 holds nothing; ::/0 and 0.0.0.0/0 are not judged. */
    uint8_t a[16], z[16] = { 0 }, f[16];
    memset(f, 0xff, 16);
    addr4(0x0b000000u, a);
    ASSERT_EQ(prefix_holds(&e, a, 104), 0);
    ASSERT_EQ(catalog_may_hold_hosts(&e, z, f), 1);
    addr4(0, a);
    ASSERT_EQ(prefix_holds(&e, a, 96), 1);
    free((void *)e.bloom);
    segidx_free(ix);
}

/* Odd packets: no summary, never pruned; too many keys: none either. */
static void test_no_summary(void)
{
    static flowkey_t keys[4000];
    segidx_t *ix = index_of(10, keys, 1);
    catalog_entry e;
    catalog_summarize(ix, 1, &e);
    ASSERT_TRUE(e.flags & CATALOG_ODD);
    uint8_t a[16];
    addr4(0x0b000001u, a);
    ASSERT_EQ(catalog_may_hold_hosts(&e, a, a), 1);
    segidx_free(ix);
    ix = index_of(4000, keys, 0);
    catalog_summarize(ix, 1, &e);
    ASSERT_EQ(e.bloom_bytes, 0);
    ASSERT_EQ(catalog_may_hold_hosts(&e, a, a), 1);
    segidx_free(ix);
}

static int count_sum_files(const char *dir)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "ls %s | grep -c '^catalog.sum.'", dir);
    FILE *p = popen(cmd, "r");
    int n = -1;
    if (p && fscanf(p, "%d", &n) != 1) n = -1;
    if (p) pclose(p);
    return n;
}

static long file_size(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fclose(f);
    return n;
}

/* The files: summaries round-trip; a put appends only new summaries and
 * compacts when the dead outweigh the living; damaged entries are refused;
 * a summary whose lines were wiped never says "no" for a key it held. */
static void test_file(void)
{
    char dir[] = "/tmp/test_catalog.XXXXXX";
    ASSERT_TRUE(mkdtemp(dir) != NULL);
    flowkey_t keys[3][50];
    catalog_entry in[3];
    for (int i = 0; i < 3; i++) {
        segidx_t *ix = index_of(i == 1 ? 0 : 50, keys[i], i == 2);
        catalog_summarize(ix, (uint64_t)i * 7 + 1, &in[i]);
        in[i].min_ts = i * 100;
        in[i].max_ts = i * 100 + 50;
        in[i].packets = (uint64_t)i;
        segidx_free(ix);
    }
    ASSERT_TRUE(in[0].bloom_bytes > 0 && in[1].bloom_bytes > 0 && in[2].bloom_bytes == 0);
    /* A stale generation from an earlier daemon is swept by the first put. */
    char path[300], sum1[300], sum2[300];
    snprintf(sum1, sizeof sum1, "%s/catalog.sum.1", dir);
    snprintf(sum2, sizeof sum2, "%s/catalog.sum.2", dir);
    FILE *f = fopen(sum1, "wb");
    ASSERT_TRUE(f != NULL);
    fclose(f);
    catalog_writer_t *w = catalog_writer_open(dir);
    ASSERT_EQ(catalog_writer_known(w, &in[0]), 0);
    ASSERT_EQ(catalog_writer_add(w, &in[0]), 0);
    ASSERT_EQ(catalog_writer_put(w, in, 1), 0);
    ASSERT_EQ(count_sum_files(dir), 1);
    long one = file_size(sum2);
    ASSERT_EQ(one, in[0].bloom_bytes + in[0].bloom_bytes / 16);
    ASSERT_EQ(catalog_writer_add(w, &in[1]), 0); /* two sealed: one summary appended */
    ASSERT_EQ(catalog_writer_add(w, &in[2]), 0); /* none: nothing appended */
    ASSERT_EQ(catalog_writer_add(w, &in[0]), 0); /* not again */
    ASSERT_EQ(catalog_writer_put(w, in, 3), 0);
    ASSERT_EQ(file_size(sum2), one + in[1].bloom_bytes + in[1].bloom_bytes / 16);
    ASSERT_EQ(catalog_writer_put(w, in, 3), 0);
    ASSERT_EQ(file_size(sum2), one + in[1].bloom_bytes + in[1].bloom_bytes / 16);
    /* A new writer (a restart) adopts the files: nothing to summarize. */
    catalog_writer_free(w);
    w = catalog_writer_open(dir);
    for (int i = 0; i < 3; i++) ASSERT_EQ(catalog_writer_known(w, &in[i]), 1);
    ASSERT_EQ(catalog_writer_put(w, in, 3), 0);
    ASSERT_EQ(count_sum_files(dir), 1);
    ASSERT_EQ(file_size(sum2), one + in[1].bloom_bytes + in[1].bloom_bytes / 16);
    /* A segment found with another packet count than its summary's (cut
     * back, or the number reused): summarized again, appended again. */
    catalog_entry other = in[1];
    other.packets++;
    ASSERT_EQ(catalog_writer_known(w, &other), 0);
    ASSERT_EQ(catalog_writer_add(w, &other), 0);
    ASSERT_EQ(file_size(sum2), one + 2 * (in[1].bloom_bytes + in[1].bloom_bytes / 16));
    ASSERT_EQ(catalog_writer_known(w, &other), 1);
    ASSERT_EQ(catalog_writer_known(w, &in[1]), 0); /* forgotten in turn */
    ASSERT_EQ(catalog_writer_add(w, &in[1]), 0);
    ASSERT_EQ(catalog_writer_put(w, in, 3), 0);
    catalog_t cat;
    char err[256];
    ASSERT_EQ(catalog_read(dir, &cat, err, sizeof err), 3);
    for (int i = 0; i < 3; i++) {
        ASSERT_EQ(cat.e[i].seq, in[i].seq);
        ASSERT_EQ(cat.e[i].max_ts, in[i].max_ts);
        ASSERT_EQ(cat.e[i].flags, in[i].flags);
        ASSERT_EQ(cat.e[i].bloom_bytes, in[i].bloom_bytes);
        ASSERT_TRUE(!in[i].bloom_bytes || !memcmp(cat.e[i].bloom, in[i].bloom, in[i].bloom_bytes));
    }
    ASSERT_TRUE(catalog_find(cat.e, 3, 8) == &cat.e[1] && !catalog_find(cat.e, 3, 9));

    /* Read line by line (as searches read it): the same entries, and the
     * same answer as the mapped summaries for every key held and for keys
     * absent, some of which the mapped ones deny. */
    catalog_t lines;
    ASSERT_EQ(catalog_read_lines(dir, &lines, err, sizeof err), 3);
    ASSERT_TRUE(lines.fd >= 0 && lines.map == NULL);
    int denied = 0;
    for (int i = 0; i < 3; i++) {
        ASSERT_EQ(lines.e[i].seq, cat.e[i].seq);
        ASSERT_EQ(lines.e[i].bloom_bytes, cat.e[i].bloom_bytes);
        ASSERT_TRUE(lines.e[i].bloom == NULL && (!cat.e[i].bloom_bytes || lines.e[i].file == &lines));
        for (int j = 0; j < 50 && i != 1; j++) { /* segment 8 has no flows */
            ASSERT_EQ(catalog_may_hold_hosts(&lines.e[i], keys[i][j].src, keys[i][j].src),
                      catalog_may_hold_hosts(&cat.e[i], keys[i][j].src, keys[i][j].src));
            ASSERT_EQ(catalog_may_hold_ports(&lines.e[i], keys[i][j].dport, keys[i][j].dport),
                      catalog_may_hold_ports(&cat.e[i], keys[i][j].dport, keys[i][j].dport));
        }
        for (int j = 0; j < 200; j++) {
            uint8_t a[16];
            addr4(0x0b000000u | (rnd() & 0xffffff), a);
            int want = catalog_may_hold_hosts(&cat.e[i], a, a);
            ASSERT_EQ(catalog_may_hold_hosts(&lines.e[i], a, a), want);
            denied += !want;
        }
    }
    ASSERT_TRUE(denied > 300); /* the two summaries deny nearly all 400 */
    catalog_release(&lines);
    ASSERT_EQ(lines.fd, -1);
    catalog_release(&cat);

    /* Wipe the first summary's lines (not their checksums): every line now
     * fails, so nothing it held is denied. */
    f = fopen(sum2, "r+b");
    ASSERT_TRUE(f != NULL);
    for (uint32_t i = 0; i < in[0].bloom_bytes; i++) fputc(0, f);
    fclose(f);
    ASSERT_EQ(catalog_read(dir, &cat, err, sizeof err), 3);
    ASSERT_EQ(catalog_read_lines(dir, &lines, err, sizeof err), 3);
    for (int i = 0; i < 50; i++) {
        ASSERT_EQ(catalog_may_hold_hosts(&cat.e[0], keys[0][i].src, keys[0][i].src), 1);
        ASSERT_EQ(catalog_may_hold_ports(&cat.e[0], keys[0][i].dport, keys[0][i].dport), 1);
        ASSERT_EQ(catalog_may_hold_hosts(&lines.e[0], keys[0][i].src, keys[0][i].src), 1);
        ASSERT_EQ(catalog_may_hold_ports(&lines.e[0], keys[0][i].dport, keys[0][i].dport), 1);
    }
    catalog_release(&cat);
    /* Cut short after the catalog was read (lines that cannot be read):
     * the second summary says "maybe" to keys it denied. */
    uint8_t absent[16];
    int tries = 0;
    do addr4(0x0b000000u | (rnd() & 0xffffff), absent);
    while (catalog_may_hold_hosts(&lines.e[1], absent, absent) && ++tries < 1000);
    ASSERT_EQ(catalog_may_hold_hosts(&lines.e[1], absent, absent), 0);
    ASSERT_EQ(truncate(sum2, one), 0);
    ASSERT_EQ(catalog_may_hold_hosts(&lines.e[1], absent, absent), 1);
    catalog_release(&lines);

    /* The summary file gone: the entries still count, with no summaries. */
    catalog_writer_free(w);
    rename(sum2, sum1);
    ASSERT_EQ(catalog_read(dir, &cat, err, sizeof err), 3);
    ASSERT_TRUE(cat.e[0].bloom_bytes == 0 && cat.e[1].max_ts == in[1].max_ts);
    catalog_release(&cat);

    /* A flipped bit in the entries: refused whole. */
    snprintf(path, sizeof path, "%s/catalog", dir);
    f = fopen(path, "r+b");
    ASSERT_TRUE(f != NULL);
    fseek(f, 40 + 48 + 16, SEEK_SET); /* the second entry's max_ts */
    fputc(0x55, f);
    fclose(f);
    ASSERT_EQ(catalog_read(dir, &cat, err, sizeof err), -1);
    ASSERT_TRUE(strstr(err, "checksum") != NULL);
    for (int i = 0; i < 3; i++) free((void *)in[i].bloom);
    unlink(path);
    unlink(sum1);
    rmdir(dir);
}

/* Evictions leave dead summaries; a writer compacts into a new generation
 * once they outweigh the living by a MiB, and removes the old one. */
/* The summary from the keys the index writer gives equals the one read
 * from the index: with a filter, without one (too many keys for the
 * segment's size), and for a segment with odd packets. */
static void test_summary_from_keys(void)
{
    char path[] = "/tmp/mscope-test-idx-XXXXXX";
    close(mkstemp(path));
    for (int c = 0; c < 3; c++) {
        segidx_builder_t *b = segidx_builder_new();
        segidx_builder_reset(b, 5);
        int n = c == 1 ? 8000 : 800;
        for (int i = 0; i < n; i++) {
            flowkey_t k;
            memset(&k, 0, sizeof k);
            k.kind = i % 10 ? FK_IPV4 : FK_IPV6;
            k.proto = i % 3 ? 6 : 17;
            if (k.kind == FK_IPV4) {
                addr4(0x0a000000u | (rnd() & (c == 1 ? 0xffffff : 0xffff)), k.src);
                addr4(0xc0a80000u | (rnd() & 0xff), k.dst);
            } else {
                k.src[0] = 0x20;
                k.src[15] = (uint8_t)rnd();
                k.dst[15] = 1;
            }
            k.sport = (uint16_t)rnd();
            k.dport = (uint16_t)(rnd() % 2000);
            if (c == 2 && i == 400) memset(&k, 0, sizeof k); /* odd */
            segidx_builder_add(b, &k, flowkey_hash(&k), 1000 + i, 24 + (uint32_t)i * 100, 84);
        }
        uint64_t pcap_bytes = c == 1 ? 100000 : 24 + (uint64_t)n * 100;
        segidx_t *ix = segidx_builder_finish(b, pcap_bytes);
        segidx_hdr h;
        segidx_keys keys;
        ASSERT_EQ(segidx_builder_write(b, pcap_bytes, path, &h, &keys), 0);
        catalog_entry e1, e2;
        catalog_summarize(ix, 5, &e1);
        catalog_summarize_keys(&keys, h.pcap_bytes, 5, &e2);
        ASSERT_EQ(e1.flags, e2.flags);
        ASSERT_EQ(e1.bloom_bytes, e2.bloom_bytes);
        ASSERT_EQ(e1.flags & CATALOG_ODD, c == 2 ? CATALOG_ODD : 0);
        ASSERT_TRUE(c == 0 ? e1.bloom_bytes > 0 : e1.bloom_bytes == 0);
        if (e1.bloom_bytes)
            ASSERT_EQ(memcmp(e1.bloom, e2.bloom, e1.bloom_bytes + e1.bloom_bytes / 16), 0);
        free((void *)e1.bloom);
        free((void *)e2.bloom);
        segidx_keys_free(&keys);
        segidx_free(ix);
        segidx_builder_free(b);
    }
    unlink(path);
}

static void test_compaction(void)
{
    char dir[] = "/tmp/test_catalog.XXXXXX";
    ASSERT_TRUE(mkdtemp(dir) != NULL);
    enum { N = 400 };
    static flowkey_t keys[300];
    catalog_entry *e = calloc(N, sizeof *e);
    for (int i = 0; i < N; i++) {
        segidx_t *ix = index_of(300, keys, 0);
        catalog_summarize(ix, (uint64_t)i + 1, &e[i]);
        segidx_free(ix);
    }
    catalog_writer_t *w = catalog_writer_open(dir);
    char sum1[300], sum2[300];
    snprintf(sum1, sizeof sum1, "%s/catalog.sum.1", dir);
    snprintf(sum2, sizeof sum2, "%s/catalog.sum.2", dir);
    int gens = 1;
    for (int j = 0; j < 19; j++) ASSERT_EQ(catalog_writer_add(w, &e[j]), 0);
    /* A window of 20 segments slides over the 400: seal one, evict one. */
    for (int i = 0; i + 20 <= N; i++) {
        ASSERT_EQ(catalog_writer_add(w, &e[i + 19]), 0);
        ASSERT_EQ(catalog_writer_put(w, e + i, 20), 0);
        if (file_size(sum1) < 0 && gens == 1) gens = 2;
        catalog_t cat;
        char err[256];
        ASSERT_EQ(catalog_read(dir, &cat, err, sizeof err), 20);
        for (int j = 0; j < 20; j++)
            ASSERT_TRUE(cat.e[j].bloom_bytes == e[i + j].bloom_bytes &&
                        !memcmp(cat.e[j].bloom, e[i + j].bloom, e[i + j].bloom_bytes));
        catalog_release(&cat);
        ASSERT_EQ(count_sum_files(dir), 1);
    }
    ASSERT_EQ(gens, 2); /* compacted at least once: generation 1 is gone */
    ASSERT_TRUE(file_size(sum1) < 0);
    catalog_writer_free(w);
    for (int i = 0; i < N; i++) free((void *)e[i].bloom);
    free(e);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    ASSERT_EQ(system(cmd), 0);
}

int main(void)
{
    RUN(test_no_false_no);
    RUN(test_no_summary);
    RUN(test_file);
    RUN(test_compaction);
    RUN(test_summary_from_keys);
    TEST_EXIT();
}
