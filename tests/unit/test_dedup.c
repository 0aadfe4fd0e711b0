/* test_dedup.c - duplicate suppression: which bytes count, the window, and
 * the symmetric flow hash and rendezvous choice of groups. */
#include "dedup.h"
#include "test.h"
#include "tool.h"

#include <string.h>

/* Ethernet + IPv4 + UDP + 4 payload bytes. */
static const uint8_t frame[] = {
    0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2, 0x08, 0x00,
    0x45, 0, 0, 32, 0x12, 0x34, 0x40, 0, 64, 17, 0xaa, 0xbb, 10, 0, 0, 1, 10, 0, 0, 2,
    0x30, 0x39, 0x00, 0x35, 0, 12, 0, 0,
    'a', 'b', 'c', 'd',
};

static uint64_t key_of(const uint8_t *f, uint32_t len)
{
    pkt_info_t pi;
    decode_frame(f, len, len, &pi);
    return dedup_key(f, len, &pi);
}

static void test_invariant_bytes(void)
{
    uint8_t f[sizeof frame];
    uint64_t k = key_of(frame, sizeof frame);
    memcpy(f, frame, sizeof f);
    f[0] = 0x04;           /* another destination MAC */
    f[22] = 63;            /* TTL decremented */
    f[24] = 0x11;          /* header checksum */
    ASSERT_TRUE(key_of(f, sizeof f) == k);
    memcpy(f, frame, sizeof f);
    f[19] = 0x35;          /* IP ID */
    ASSERT_TRUE(key_of(f, sizeof f) != k);
    memcpy(f, frame, sizeof f);
    f[sizeof f - 1] = 'e'; /* payload */
    ASSERT_TRUE(key_of(f, sizeof f) != k);
    /* A VLAN tag in front of the same packet: the same key. */
    uint8_t v[sizeof frame + 4];
    memcpy(v, frame, 12);
    v[12] = 0x81;
    v[13] = 0x00;
    v[14] = 0x00;
    v[15] = 0x07;
    memcpy(v + 16, frame + 12, sizeof frame - 12);
    ASSERT_TRUE(key_of(v, sizeof v) == k);
}

static void test_window(void)
{
    dedup_t *d = dedup_new(1024, 1000000); /* 1 ms */
    ASSERT_EQ(dedup_check(d, 42, 1000000000), 0);
    ASSERT_EQ(dedup_check(d, 42, 1000000500), 1);   /* 500 ns later */
    ASSERT_EQ(dedup_check(d, 42, 1000900000), 1);   /* measured from the first copy */
    ASSERT_EQ(dedup_check(d, 42, 1002000001), 0);   /* beyond the window: new */
    ASSERT_EQ(dedup_check(d, 42, 1001999999), 1);   /* slightly reordered copy */
    ASSERT_EQ(dedup_check(d, 43, 1002000001), 0);
    /* Many distinct keys: none is a duplicate, the table never grows. */
    int dups = 0;
    for (uint64_t i = 0; i < 100000; i++) dups += dedup_check(d, i * 0x9e3779b97f4a7c15ULL + 7, 2000000000 + (int64_t)i);
    ASSERT_EQ(dups, 0);
    dedup_free(d);
}

static void test_flow_hash(void)
{
    uint8_t r[sizeof frame];
    memcpy(r, frame, sizeof r);
    /* The reverse direction: swap MACs, addresses and ports. */
    memcpy(r, frame + 6, 6);
    memcpy(r + 6, frame, 6);
    memcpy(r + 26, frame + 30, 4);
    memcpy(r + 30, frame + 26, 4);
    memcpy(r + 34, frame + 36, 2);
    memcpy(r + 36, frame + 34, 2);
    pkt_info_t a, b;
    decode_frame(frame, sizeof frame, sizeof frame, &a);
    decode_frame(r, sizeof r, sizeof r, &b);
    ASSERT_TRUE(tool_flow_hash(frame, sizeof frame, &a) == tool_flow_hash(r, sizeof r, &b));
    r[35] ^= 1; /* another port: another flow */
    decode_frame(r, sizeof r, sizeof r, &b);
    ASSERT_TRUE(tool_flow_hash(frame, sizeof frame, &a) != tool_flow_hash(r, sizeof r, &b));
}

static void test_rendezvous(void)
{
    uint64_t s3[3] = { tool_seed("a"), tool_seed("b"), tool_seed("c") };
    uint64_t s2[2] = { tool_seed("a"), tool_seed("b") };
    int count[3] = { 0, 0, 0 }, moved_wrongly = 0;
    for (uint64_t f = 1; f <= 30000; f++) {
        uint64_t h = f * 0x9e3779b97f4a7c15ULL;
        int m = tool_pick(h, s3, 3);
        count[m]++;
        /* Remove c: only c's flows may move. */
        if (m != 2 && tool_pick(h, s2, 2) != m) moved_wrongly++;
    }
    ASSERT_EQ(moved_wrongly, 0);
    for (int i = 0; i < 3; i++) ASSERT_TRUE(count[i] > 9000 && count[i] < 11000);
}

int main(void)
{
    RUN(test_invariant_bytes);
    RUN(test_window);
    RUN(test_flow_hash);
    RUN(test_rendezvous);
    TEST_EXIT();
}
