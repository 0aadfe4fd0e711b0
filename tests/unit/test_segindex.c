/* test_segindex.c - build, write, map and rebuild a segment index. */
#include "flowkey.h"
#include "pcapio.h"
#include "segindex.h"
#include "test.h"

#include <fcntl.h>
#include <stdlib.h>
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

int main(void)
{
    RUN(test_build_and_roundtrip);
    RUN(test_scan_cuts_torn_tail);
    TEST_EXIT();
}
