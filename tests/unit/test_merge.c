/* test_merge.c - the k-way merge behind distributed search: order with ties
 * (by stream, then arrival), streams that wait or end early, chunk release
 * (the credit signal), malformed chunks, and deduplication. */
#include "merge.h"
#include <errno.h>
#include "pcapio.h"
#include "test.h"

typedef struct chunkbuf {
    uint8_t data[4096];
    size_t len;
} chunkbuf;

/* Append a packet of n bytes (first byte = tag, the rest from fill). */
static void add(chunkbuf *c, int64_t ts, uint8_t tag, uint32_t n, uint8_t fill)
{
    pcapio_rec_header(c->data + c->len, ts, n, n);
    memset(c->data + c->len + PCAPIO_REC_HDR, fill, n);
    c->data[c->len + PCAPIO_REC_HDR] = tag;
    c->len += PCAPIO_REC_HDR + n;
}

static int released[8];
static void on_release(void *ctx, int stream, void *owner)
{
    (void)ctx;
    (void)owner;
    released[stream]++;
}

static void test_order(void)
{
    memset(released, 0, sizeof released);
    chunkbuf a = { .len = 0 }, b = { .len = 0 }, b2 = { .len = 0 };
    add(&a, 10, 'a', 20, 0);
    add(&a, 30, 'b', 20, 0);
    add(&a, 30, 'c', 20, 0);
    add(&b, 5, 'd', 20, 0);
    add(&b, 30, 'e', 20, 0);
    add(&b2, 40, 'f', 20, 0);
    merge_t *m = merge_new(3, on_release, NULL);
    merge_pkt p;
    int w = -1;
    ASSERT_EQ(merge_next(m, &p, &w), 0); /* nothing yet: stream 0 waits */
    ASSERT_EQ(w, 0);
    ASSERT_EQ(merge_push(m, 1, b.data, b.len, NULL), 0);
    ASSERT_EQ(merge_push(m, 0, a.data, a.len, NULL), 0);
    ASSERT_EQ(merge_next(m, &p, &w), 0); /* stream 2 neither sent nor ended */
    ASSERT_EQ(w, 2);
    merge_end(m, 2);
    /* Ties at 30: stream 0 before stream 1, and b before c within stream 0. */
    const char *want = "dabc";
    for (int i = 0; want[i]; i++) {
        int rc = merge_next(m, &p, &w);
        ASSERT_EQ(rc, 1);
        if (rc == 1) ASSERT_EQ(p.data[0], want[i]);
    }
    /* Stream 0's chunk is used up; it might still send a packet at 30 that
     * goes before e: wait for it. */
    ASSERT_EQ(merge_next(m, &p, &w), 0);
    ASSERT_EQ(w, 0);
    ASSERT_EQ(released[0], 1);
    merge_end(m, 0);
    ASSERT_EQ(merge_next(m, &p, &w), 1);
    ASSERT_EQ(p.data[0], 'e');
    ASSERT_EQ(merge_next(m, &p, &w), 0); /* stream 1 may send more */
    ASSERT_EQ(w, 1);
    ASSERT_EQ(released[1], 1);
    ASSERT_EQ(merge_push(m, 1, b2.data, b2.len, NULL), 0);
    merge_end(m, 1);
    ASSERT_EQ(merge_next(m, &p, &w), 1);
    ASSERT_EQ(p.data[0], 'f');
    ASSERT_EQ(merge_next(m, &p, &w), -1);
    merge_stats st;
    merge_get_stats(m, &st);
    ASSERT_EQ(st.packets, 6);
    ASSERT_EQ(st.bytes, 120);
    ASSERT_EQ(st.chunks_held, 0);
    ASSERT_EQ(st.bytes_held_max, a.len + b.len);
    merge_free(m);
}

static void test_malformed(void)
{
    memset(released, 0, sizeof released);
    chunkbuf a = { .len = 0 };
    add(&a, 10, 'a', 20, 0);
    merge_t *m = merge_new(1, on_release, NULL);
    ASSERT_EQ(merge_push(m, 0, a.data, a.len - 1, NULL), -EPROTO); /* cut record */
    ASSERT_EQ(released[0], 1);
    uint8_t junk[PCAPIO_REC_HDR] = { 0 };
    uint32_t huge = PCAPIO_SNAPLEN + 1;
    memcpy(junk + 8, &huge, 4);
    ASSERT_EQ(merge_push(m, 0, junk, sizeof junk, NULL), -EPROTO);
    ASSERT_EQ(merge_push(m, 0, a.data, a.len, NULL), 0); /* still usable */
    merge_end(m, 0);
    merge_pkt p;
    int w;
    ASSERT_EQ(merge_next(m, &p, &w), 1);
    ASSERT_EQ(merge_next(m, &p, &w), -1);
    merge_stats st;
    merge_get_stats(m, &st);
    ASSERT_EQ(st.bad_chunks, 2);
    merge_free(m);
}

/* An IPv4/UDP frame; ttl and the MACs vary by observation point. */
static void add_ip(chunkbuf *c, int64_t ts, uint8_t ttl, uint8_t mac, uint8_t payload)
{
    uint8_t f[60] = { 0 };
    memset(f, mac, 12);
    f[12] = 0x08;
    f[14] = 0x45;
    f[17] = 46;
    f[22] = ttl;
    f[23] = 17;
    f[24] = ttl; /* a router rewrites the checksum too */
    f[26] = 10, f[29] = 1, f[30] = 10, f[33] = 2;
    f[59] = payload;
    pcapio_rec_header(c->data + c->len, ts, sizeof f, sizeof f);
    memcpy(c->data + c->len + PCAPIO_REC_HDR, f, sizeof f);
    c->len += PCAPIO_REC_HDR + sizeof f;
}

static void test_dedup(void)
{
    chunkbuf a = { .len = 0 }, b = { .len = 0 };
    add_ip(&a, 1000, 64, 0x11, 1);
    add_ip(&a, 5000000, 64, 0x11, 2);
    add_ip(&b, 1500, 63, 0x22, 1);     /* the same packet, one hop later: dropped */
    add_ip(&b, 3000, 63, 0x22, 3);     /* different payload: kept */
    add_ip(&b, 9000000, 63, 0x22, 2);  /* same as a's 2nd but 4 ms later: kept */
    merge_t *m = merge_new(2, NULL, NULL);
    merge_set_dedup(m, 1000000);
    merge_push(m, 0, a.data, a.len, NULL);
    merge_push(m, 1, b.data, b.len, NULL);
    merge_end(m, 0);
    merge_end(m, 1);
    merge_pkt p;
    int w, n = 0;
    while (merge_next(m, &p, &w) == 1) n++;
    merge_stats st;
    merge_get_stats(m, &st);
    ASSERT_EQ(n, 4);
    ASSERT_EQ(st.duplicates, 1);
    merge_free(m);
}

int main(void)
{
    test_order();
    test_malformed();
    test_dedup();
    if (test_failures) fprintf(stderr, "%d failures\n", test_failures);
    return test_failures ? 1 : 0;
}
