/* test_flowtab.c - the flow table's compact state gives exact records:
 * times and durations past what its 32-bit fields hold (kept in cells),
 * the other direction's times after long silences, counters that carry
 * into the wide record, observation points that come and go, IPv6 beside
 * IPv4. Expected values are worked out by hand from Wireshark's rules
 * (docs/TCP_ANALYTICS.md) and were checked against the analysis before the
 * compact state, run on the same packets written to a capture; the tshark
 * oracle tests check the rules. */
#include "decode.h"
#include "flowkey.h"
#include "flowtab.h"
#include "test.h"

#define S 1000000000LL /* a second in ns */
#define T0 (1700000000LL * S)

static flowrec recs[64];
static int nrecs;

static void emit(void *ctx, const flowrec *r)
{
    (void)ctx;
    if (nrecs < 64) recs[nrecs++] = *r;
}

static flowtab_t *table(uint32_t max_flows)
{
    flowtab_opts o = { .max_flows = max_flows, .idle_ns = 3600 * S, .interval_ns = 100000 * S,
                       .grace_ns = 5 * S, .id_base = 1000 };
    nrecs = 0;
    return flowtab_new(&o, emit, NULL);
}

static void v4(uint8_t out[16], uint8_t a, uint8_t b, uint8_t c, uint8_t d)
{
    uint8_t x[4] = { a, b, c, d };
    decode_map4(x, out);
}

/* A TCP segment from (src, sport) to (dst, dport). */
static pkt_ana seg(const uint8_t src[16], uint16_t sport, const uint8_t dst[16], uint16_t dport,
                   uint32_t seq, uint32_t ack, uint8_t flags, uint32_t len)
{
    pkt_ana a;
    memset(&a, 0, sizeof a);
    pkt_ana_endpoints(&a, src, sport, dst, dport);
    a.seq = seq;
    a.ack = ack;
    a.tcp_flags = flags;
    a.payload_len = len;
    a.ip_len = 40 + len;
    a.win = 1000;
    a.wscale = -1;
    a.proto = 6;
    a.usable = 1;
    return a;
}

static void pkt(flowtab_t *t, int64_t ts, uint32_t vni, const uint8_t obs[16], const pkt_ana *a)
{
    flowtab_packet(t, ts, vni, obs, a, flowtab_hash(a, vni, obs));
}

#define SYN TCP_SYN
#define ACK TCP_ACK

/* A handshake and an exchange whose every gap is seconds long: the SYN/ACK
 * 3 s after the SYN, the ACK 3 s later, the answer 30 s after its request,
 * a retransmission 5 s after the data it repeats (out of order: within the
 * 6 s initial RTT) and another 20 s later (a retransmission). */
static void test_long_gaps(void)
{
    flowtab_t *t = table(100);
    uint8_t c[16], s[16];
    v4(c, 10, 0, 0, 1);
    v4(s, 10, 0, 0, 2);
    uint32_t ci = 1000, si = 500000;
    pkt_ana a = seg(c, 40000, s, 80, ci, 0, SYN, 0);
    pkt(t, T0, 0, NULL, &a);
    a = seg(s, 80, c, 40000, si, ci + 1, SYN | ACK, 0);
    pkt(t, T0 + 3 * S, 0, NULL, &a);
    a = seg(c, 40000, s, 80, ci + 1, si + 1, ACK, 0);
    pkt(t, T0 + 6 * S, 0, NULL, &a);
    a = seg(c, 40000, s, 80, ci + 1, si + 1, ACK, 100); /* the request */
    pkt(t, T0 + 6 * S + 1000, 0, NULL, &a);
    a = seg(s, 80, c, 40000, si + 1, ci + 101, ACK, 200); /* the answer, 30 s on */
    pkt(t, T0 + 36 * S + 1000, 0, NULL, &a);
    a = seg(c, 40000, s, 80, ci + 101, si + 201, ACK, 0);
    pkt(t, T0 + 37 * S + 1000, 0, NULL, &a);
    /* two segments, then the first again 5 s later and 25 s later */
    a = seg(c, 40000, s, 80, ci + 101, si + 201, ACK, 10);
    pkt(t, T0 + 40 * S, 0, NULL, &a);
    a = seg(c, 40000, s, 80, ci + 111, si + 201, ACK, 10);
    pkt(t, T0 + 40 * S, 0, NULL, &a);
    a = seg(c, 40000, s, 80, ci + 101, si + 201, ACK, 10);
    pkt(t, T0 + 45 * S, 0, NULL, &a);
    a = seg(c, 40000, s, 80, ci + 101, si + 201, ACK, 10);
    pkt(t, T0 + 65 * S, 0, NULL, &a);
    flowtab_flush(t);
    ASSERT_EQ(nrecs, 1);
    const flowrec *r = &recs[0];
    ASSERT_EQ(r->first_ns, T0);
    ASSERT_EQ(r->last_ns, T0 + 65 * S);
    ASSERT_EQ(r->syn_ns, T0);
    ASSERT_EQ(r->synack_ns, T0 + 3 * S);
    ASSERT_EQ(r->ack_ns, T0 + 6 * S);
    ASSERT_EQ(r->initial_rtt_ns, 6 * S);
    /* the SYN (3 s) and the request (30 s) */
    ASSERT_EQ(r->c2s.rtt.count, 2);
    ASSERT_EQ(r->c2s.rtt.min, 3 * S);
    ASSERT_EQ(r->c2s.rtt.max, 30 * S);
    ASSERT_EQ(r->c2s.rtt.sum, 33 * S);
    /* the SYN/ACK (3 s) and the answer (1 s) */
    ASSERT_EQ(r->s2c.rtt.count, 2);
    ASSERT_EQ(r->s2c.rtt.min, 1 * S);
    ASSERT_EQ(r->s2c.rtt.max, 3 * S);
    ASSERT_EQ(r->app_response.count, 1);
    ASSERT_EQ(r->app_response.min, 30 * S);
    ASSERT_EQ(r->app_response.max, 30 * S);
    ASSERT_EQ(r->c2s.out_of_order, 1);
    ASSERT_EQ(r->c2s.retransmissions, 1);
    ASSERT_EQ(r->c2s.packets, 8);
    ASSERT_EQ(r->s2c.packets, 2);
    ASSERT_STREQ(r->history, "ShADdT");
    flowtab_free(t);
}

/* A SYN retransmitted 3 s after the first: the handshake's SYN time and
 * the initial RTT are the last SYN's, the ACK RTT the first's; a fast
 * retransmission needs the other side's duplicate ACKs within 20 ms, and
 * that side last spoke 2.6 s before (not fast: a retransmission). */
static void test_other_side_times(void)
{
    flowtab_t *t = table(100);
    uint8_t c[16], s[16];
    v4(c, 10, 0, 1, 1);
    v4(s, 10, 0, 1, 2);
    uint32_t ci = 7, si = 9000;
    pkt_ana a = seg(c, 5555, s, 443, ci, 0, SYN, 0);
    pkt(t, T0, 0, NULL, &a);
    pkt(t, T0 + 3 * S, 0, NULL, &a);
    a = seg(s, 443, c, 5555, si, ci + 1, SYN | ACK, 0);
    pkt(t, T0 + 3 * S + 2000000, 0, NULL, &a);
    a = seg(c, 5555, s, 443, ci + 1, si + 1, ACK, 0);
    pkt(t, T0 + 3 * S + 4000000, 0, NULL, &a);
    /* data, lost; three duplicate ACKs from the server; the client waits
     * 2.5 s in silence from the server, then sends the segment again */
    a = seg(c, 5555, s, 443, ci + 1, si + 1, ACK, 100);
    pkt(t, T0 + 4 * S, 0, NULL, &a);
    a = seg(c, 5555, s, 443, ci + 101, si + 1, ACK, 100);
    pkt(t, T0 + 4 * S + 1000, 0, NULL, &a);
    a = seg(s, 443, c, 5555, si + 1, ci + 1, ACK, 0);
    for (int i = 0; i < 3; i++) pkt(t, T0 + 4 * S + 2000000 + i, 0, NULL, &a);
    a = seg(c, 5555, s, 443, ci + 201, si + 1, ACK, 100);
    pkt(t, T0 + 6 * S + 500000000, 0, NULL, &a);
    a = seg(c, 5555, s, 443, ci + 1, si + 1, ACK, 100);
    pkt(t, T0 + 6 * S + 600000000, 0, NULL, &a);
    flowtab_flush(t);
    ASSERT_EQ(nrecs, 1);
    const flowrec *r = &recs[0];
    ASSERT_EQ(r->syn_ns, T0 + 3 * S);
    ASSERT_EQ(r->initial_rtt_ns, 4000000);
    ASSERT_EQ(r->s2c.dup_acks, 3); /* the SYN/ACK's window and ACK, three times */
    ASSERT_EQ(r->c2s.fast_retransmissions, 0);
    ASSERT_EQ(r->c2s.retransmissions, 2); /* the second SYN, the data */
    /* the SYN/ACK acks the oldest SYN: 3 s 2 ms */
    ASSERT_EQ(r->c2s.rtt.count, 1);
    ASSERT_EQ(r->c2s.rtt.min, 3 * S + 2000000);
    ASSERT_EQ(r->s2c.rtt.max, 2000000);
    ASSERT_STREQ(r->history, "SThADa");
    flowtab_free(t);
}

/* 300 RSTs one way (the table counts 8 bits and carries), flows from three
 * observation points and both IP versions with the same ports kept apart,
 * and points freed when their flows end and taken again. */
static void test_carries_and_points(void)
{
    flowtab_t *t = table(8);
    uint8_t c[16], s[16], c6[16] = { 0x20, 0x01, 0x0d, 0xb8 }, s6[16] = { 0x20, 0x01, 0x0d, 0xb8 };
    v4(c, 192, 168, 0, 1);
    v4(s, 192, 168, 0, 2);
    c6[15] = 1;
    s6[15] = 2;
    uint8_t obs[3][16] = { { 0 } };
    for (int i = 0; i < 3; i++) v4(obs[i], 172, 16, 0, (uint8_t)(i + 1));
    for (int round = 0; round < 2; round++) {
        nrecs = 0;
        int64_t t1 = T0 + round * 100 * S;
        for (int i = 0; i < 300; i++) {
            pkt_ana a = seg(c, 1234, s, 22, 100, 0, TCP_RST, 0);
            pkt(t, t1 + i, 7, obs[0], &a);
            if (i < 2) pkt(t, t1 + i, 7, obs[1 + i], &a); /* one RST from each other point */
            a = seg(c6, 1234, s6, 22, 100, 0, TCP_RST | ACK, 0);
            pkt(t, t1 + i, 7, obs[0], &a);
        }
        flowtab_flush(t);
        ASSERT_EQ(nrecs, 4);
        /* Emptied at once (flowtab_flush): the second round starts from nothing. */
        flowtab_stats st;
        flowtab_get_stats(t, &st);
        ASSERT_EQ(st.active, 0);
        ASSERT_EQ(st.created, 4 * (uint64_t)(round + 1));
        int v6 = 0, total = 0;
        for (int k = 0; k < nrecs && k < 4; k++) {
            const flowrec *r = &recs[k];
            ASSERT_EQ(r->vni, 7);
            ASSERT_EQ(r->client_port, 1234);
            int is6 = r->client_ip[0] == 0x20, o = r->observer[15] - 1;
            ASSERT_TRUE(o >= 0 && o < 3 && !memcmp(r->observer, obs[o < 0 || o > 2 ? 0 : o], 16));
            v6 += is6;
            total += (int)r->c2s.rsts;
            ASSERT_EQ(r->c2s.rsts, is6 || o == 0 ? 300 : 1);
            ASSERT_EQ(r->c2s.packets, is6 || o == 0 ? 300 : 1);
        }
        ASSERT_EQ(v6, 1);
        ASSERT_EQ(total, 602);
    }
    flowtab_free(t);
}

/* Records of the crafted flows: each a SYN and its SYN/ACK. */
static int crafted_good, crafted_all;

static void crafted_emit(void *ctx, const flowrec *r)
{
    (void)ctx;
    crafted_all++;
    crafted_good += r->c2s.packets == 1 && r->s2c.packets == 1 && r->server_port == 443 &&
                    r->synack_ns - r->syn_ns == 1000;
}

/* Flows crafted to share a bucket, as anyone could craft them against a
 * hash that starts the same in every process: under seed 1, 200 of them in
 * one chain of a 1 024-bucket table still give 200 right records; under
 * seed 2 the same flows spread over the buckets. */
static void test_crafted_collisions(void)
{
    uint64_t own = flowkey_seed;
    flowkey_set_seed(1);
    static pkt_ana keys[200];
    unsigned n = 0;
    uint8_t s[16];
    v4(s, 10, 0, 0, 1);
    for (uint32_t i = 0; n < 200 && i < (1u << 24); i++) {
        uint8_t c[16];
        v4(c, 172, (uint8_t)(i >> 16), (uint8_t)(i >> 8), (uint8_t)i);
        pkt_ana a = seg(c, 40000, s, 443, 1, 0, SYN, 0);
        if ((flowtab_hash(&a, 0, NULL) & 1023) == 0) keys[n++] = a;
    }
    ASSERT_EQ(n, 200);
    flowtab_opts o = { .max_flows = 1024, .idle_ns = 3600 * S, .interval_ns = 100000 * S,
                       .grace_ns = 5 * S, .id_base = 1000 };
    flowtab_t *t = flowtab_new(&o, crafted_emit, NULL);
    crafted_good = crafted_all = 0;
    for (unsigned i = 0; i < n; i++) pkt(t, T0 + i * 10000, 0, NULL, &keys[i]);
    for (unsigned i = 0; i < n; i++) {
        pkt_ana r = seg(pkt_ana_dst(&keys[i]), 443, pkt_ana_src(&keys[i]), 40000, 7, 2, SYN | ACK, 0);
        pkt(t, T0 + i * 10000 + 1000, 0, NULL, &r);
    }
    flowtab_stats st;
    flowtab_get_stats(t, &st);
    ASSERT_EQ(st.active, 200);
    flowtab_flush(t);
    ASSERT_EQ(crafted_all, 200);
    ASSERT_EQ(crafted_good, 200);
    flowtab_free(t);
    flowkey_set_seed(2);
    unsigned count[1024] = { 0 }, most = 0;
    for (unsigned i = 0; i < n; i++) {
        unsigned c = ++count[flowtab_hash(&keys[i], 0, NULL) & 1023];
        if (c > most) most = c;
    }
    ASSERT_TRUE(most <= 5);
    flowkey_set_seed(own);
}

/* Expiry follows each flow's last time even when packets' times go back:
 * the table keeps when it next has something to end (one number a packet
 * compares with), and a packet that moves the oldest flow's last time back
 * makes that time earlier. Flow A (port 1111) at T0, B (2222) at T0 + 1 s,
 * then A again at T0 - 30 s: with a 60 s idle timeout A ends once packets
 * move the clock past T0 + 30 s (B lives on), B once past T0 + 61 s. */
static void test_expiry_when_time_goes_back(void)
{
    flowtab_opts o = { .max_flows = 16, .idle_ns = 60 * S, .interval_ns = 100000 * S,
                       .grace_ns = 5 * S, .id_base = 1000 };
    nrecs = 0;
    flowtab_t *t = flowtab_new(&o, emit, NULL);
    uint8_t c[16], srv[16];
    v4(c, 10, 0, 0, 1);
    v4(srv, 10, 0, 0, 2);
    pkt_ana a = seg(c, 1111, srv, 80, 1, 0, ACK, 10), b = seg(c, 2222, srv, 80, 1, 0, ACK, 10);
    pkt(t, T0, 0, NULL, &a);
    pkt(t, T0 + 1 * S, 0, NULL, &b);
    a.seq = 11;
    pkt(t, T0 - 30 * S, 0, NULL, &a); /* back in time: A's last time is now T0 - 30 s */
    /* the clock moved by packets of a third flow, C, as in a capture */
    uint8_t c2[16];
    v4(c2, 10, 0, 0, 3);
    pkt_ana d = seg(c2, 3333, srv, 80, 1, 0, ACK, 10);
    pkt(t, T0 + 29 * S, 0, NULL, &d);
    ASSERT_EQ(nrecs, 0);
    d.seq = 11;
    pkt(t, T0 + 31 * S, 0, NULL, &d);
    ASSERT_EQ(nrecs, 1);
    ASSERT_EQ(recs[0].client_port, 1111);
    ASSERT_EQ(recs[0].c2s.packets, 2);
    ASSERT_TRUE(recs[0].final);
    d.seq = 21;
    pkt(t, T0 + 62 * S, 0, NULL, &d);
    ASSERT_EQ(nrecs, 2);
    ASSERT_EQ(recs[1].client_port, 2222);
    flowtab_stats st;
    flowtab_get_stats(t, &st);
    ASSERT_EQ(st.active, 1);
    flowtab_free(t);
}

int main(void)
{
    RUN(test_crafted_collisions);
    RUN(test_long_gaps);
    RUN(test_other_side_times);
    RUN(test_carries_and_points);
    RUN(test_expiry_when_time_goes_back);
    TEST_EXIT();
}
