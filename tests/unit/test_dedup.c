/* test_dedup.c - duplicate suppression: which bytes count, the window, the
 * keyed name (decoys), and the symmetric flow hash and rendezvous choice of
 * groups. */
#include "dedup.h"
#include "hash.h"
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

static dedup_t *table;

static uint64_t key_of(const uint8_t *f, uint32_t len)
{
    pkt_info_t pi;
    decode_frame(f, len, len, &pi);
    return dedup_key(table, f, len, &pi);
}

static void test_invariant_bytes(void)
{
    uint8_t f[sizeof frame];
    table = dedup_new(64, 1000);
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
    /* Another table has another key: other names for the same packet. */
    dedup_t *first = table;
    table = dedup_new(64, 1000);
    ASSERT_TRUE(key_of(frame, sizeof frame) != k);
    dedup_free(first);
    dedup_free(table);
}

/* SipHash-2-4's published vectors (key 00..0f, messages 00, 00 01, ...),
 * and SipHash-1-3's as CPython computes it. */
static void test_siphash(void)
{
    uint64_t key[2];
    uint8_t kb[16], msg[64];
    for (int i = 0; i < 16; i++) kb[i] = (uint8_t)i;
    for (int i = 0; i < 64; i++) msg[i] = (uint8_t)i;
    for (int w = 0; w < 2; w++) { /* little-endian words, as the reference reads the key */
        key[w] = 0;
        for (int b = 7; b >= 0; b--) key[w] = key[w] << 8 | kb[8 * w + b];
    }
    ASSERT_TRUE(hash_sip24(key, NULL, 0, msg, 0) == 0x726fdb47dd0e0e31ULL);
    ASSERT_TRUE(hash_sip24(key, NULL, 0, msg, 15) == 0xa129ca6149be45e5ULL);
    /* A head of whole words is the message's start. */
    for (size_t n = 0; n <= 40; n++)
        ASSERT_TRUE(hash_sip24(key, msg, 16, msg + 16, n) == hash_sip24(key, NULL, 0, msg, 16 + n));
    ASSERT_TRUE(hash_sip13(key, msg, 16, msg + 16, 20) == hash_sip13(key, NULL, 0, msg, 36));
    /* SipHash-1-3 itself: CPython 3.11's hash() of bytes is SipHash-1-3, its
     * key all zero under PYTHONHASHSEED=0 (hash(bytes(range(15))) there). */
    const uint64_t zero[2] = { 0, 0 };
    ASSERT_TRUE(hash_sip13(zero, NULL, 0, msg, 15) == 0xf30eb725bb91c9eaULL);
    ASSERT_TRUE(hash_sip13(zero, msg, 8, msg + 8, 28) == 0xac77921fcc642bd3ULL);
    ASSERT_TRUE(hash_sip13(key, NULL, 0, msg, 36) != hash_sip24(key, NULL, 0, msg, 36));
}

/* The attack the key stops: a decoy sent first, which an unkeyed hash
 * names like the real packet after it, so that the real one is dropped as
 * its duplicate. hash_bytes, the broker's name for packets until the key,
 * has invertible steps: the decoy flips the top bit of the transport
 * bytes' third word and corrects the fifth (the next of that lane) for
 * the difference this makes - which cancels for half of all seeds, so no
 * seed, secret or not, helps. With the keyed name every real packet must
 * pass. */
static void test_decoys(void)
{
    const uint64_t p1 = 0x9e3779b185ebca87ULL, p2 = 0xc2b2ae3d27d4eb4fULL; /* hash.c's */
    uint64_t inv = p2; /* p2's inverse mod 2^64 (Newton: each step doubles the bits) */
    for (int i = 0; i < 6; i++) inv *= 2 - p2 * inv;
    const uint64_t fix = (uint64_t)0 - ((uint64_t)1 << 30) * p1 * inv;
    /* Ethernet, IPv4 (total length 92), UDP, 64 bytes of payload. */
    uint8_t m[14 + 20 + 8 + 64], dcy[sizeof m];
    memset(m, 0, sizeof m);
    memcpy(m, frame, 34);
    m[16] = 0;
    m[17] = 92;
    m[34 + 5] = 72; /* UDP length */
    table = dedup_new(4096, 1000000000); /* 1 s */
    uint64_t x = 0x243f6a8885a308d3ULL;
    int alike_unkeyed = 0, dropped = 0;
    for (int i = 0; i < 256; i++) {
        for (size_t j = 42; j < sizeof m; j++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            m[j] = (uint8_t)x;
        }
        m[18] = (uint8_t)i; /* IP ID */
        memcpy(dcy, m, sizeof m);
        const uint8_t *l4 = m + 34;
        uint8_t *dl4 = dcy + 34;
        dl4[16 + 7] ^= 0x80;
        uint64_t w;
        memcpy(&w, dl4 + 32, 8);
        w += fix;
        memcpy(dl4 + 32, &w, 8);
        ASSERT_TRUE(memcmp(m, dcy, sizeof m) != 0);
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        alike_unkeyed += hash_bytes(l4, 72, x) == hash_bytes(dl4, 72, x);
        int64_t t = 1000000000LL + i * 1000LL;
        ASSERT_EQ(dedup_check(table, key_of(dcy, sizeof dcy), t), 0);
        dropped += dedup_check(table, key_of(m, sizeof m), t + 500);
    }
    ASSERT_TRUE(alike_unkeyed > 64); /* about half: the decoys are real ones */
    ASSERT_EQ(dropped, 0);
    dedup_free(table);
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
    RUN(test_siphash);
    RUN(test_decoys);
    RUN(test_window);
    RUN(test_flow_hash);
    RUN(test_rendezvous);
    TEST_EXIT();
}
