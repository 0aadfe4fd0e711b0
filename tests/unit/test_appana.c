/* test_appana.c - the stream layer (recorder/appana.c), driven through DNS
 * over TCP and UDP, whose records show the times the layer hands on:
 * segments out of order, a response held until after its query, a late
 * copy that must not replace the first, overlapping segments, a
 * retransmission, a hole the buffer cannot bridge (a gap, counted), the
 * end of a flow with a query pending, the UDP slots freed once answered,
 * the timeout, a full slot pool and a full buffer pool (counted), flows
 * judged not to be followed, and an id that is both a TCP and a UDP
 * flow's. */
#include "appana.h"
#include "test.h"

static apprec got[256];
static int ngot;

static void emit(void *ctx, const apprec *r)
{
    if (ngot < 256) got[ngot++] = *r;
}

static appana_t *mk(uint32_t flows)
{
    char err[128];
    appana_opts o = { .max_flows = flows, .dns_timeout_ns = 2000, .dns_ports = "53" };
    ngot = 0;
    return appana_new(&o, emit, NULL, err, sizeof err);
}

enum { C2S = 0, S2C = 1 };
#define ISN_C 1000u
#define ISN_S 0xfffffffau /* the server's sequence numbers wrap */
static uint16_t srv_port = 53;

/* One packet of flow id between 10.0.0.1:cport and 10.0.0.2:srv_port. */
static void pkt(appana_t *a, uint64_t id, int64_t ts, int dir, int proto, uint16_t cport,
                uint32_t seq, uint8_t flags, const void *p, size_t n)
{
    pkt_ana pa;
    memset(&pa, 0, sizeof pa);
    uint8_t c[16] = { [10] = 0xff, [11] = 0xff, 10, 0, 0, 1 };
    uint8_t s[16] = { [10] = 0xff, [11] = 0xff, 10, 0, 0, 2 };
    if (dir == C2S) pkt_ana_endpoints(&pa, c, cport, s, srv_port);
    else pkt_ana_endpoints(&pa, s, srv_port, c, cport);
    pa.proto = (uint8_t)proto;
    pa.seq = seq;
    pa.ack = dir == C2S ? ISN_S + 1 : ISN_C + 1;
    pa.tcp_flags = (uint8_t)(flags == 0x02 ? flags : flags | 0x10); /* a SYN alone has no ACK */
    pa.payload_len = (uint32_t)n;
    pa.usable = 1;
    appana_packet(a, id, ts, 0, NULL, &pa, p, (uint32_t)n);
}

/* A query over TCP (length prefix, 34 bytes) with id qid. */
static size_t tcp_query(uint8_t *m, uint16_t qid)
{
    static const uint8_t q[] = "\0\42\0\0\1\0\0\1\0\0\0\0\0\0\3www\7example\4test\0\0\1\0\1";
    memcpy(m, q, 36);
    m[2] = (uint8_t)(qid >> 8), m[3] = (uint8_t)qid;
    return 36;
}

static size_t tcp_response(uint8_t *m, uint16_t qid, uint8_t rcode)
{
    static const uint8_t r[] = "\0\14\0\0\x81\x80\0\1\0\1\0\0\0\0";
    memcpy(m, r, 14);
    m[2] = (uint8_t)(qid >> 8), m[3] = (uint8_t)qid;
    m[5] |= rcode;
    return 14;
}

static void test_reorder_first_copy(void)
{
    appana_t *a = mk(16);
    uint8_t q[64], bad[64], r[16];
    tcp_query(q, 9);
    memset(bad, 0xee, sizeof bad);
    uint32_t s0 = ISN_C + 1;
    pkt(a, 1, 100, C2S, 6, 40000, s0, 0x08, q, 10);            /* bytes 0-9 */
    pkt(a, 1, 200, C2S, 6, 40000, s0 + 20, 0x08, q + 20, 16);  /* 20-35 early */
    pkt(a, 1, 250, C2S, 6, 40000, s0 + 20, 0x08, bad, 16);     /* a late copy: ignored */
    pkt(a, 1, 260, C2S, 6, 40000, s0, 0x08, bad, 10);          /* a retransmission */
    ASSERT_EQ(ngot, 0);
    pkt(a, 1, 300, C2S, 6, 40000, s0 + 10, 0x08, q + 10, 10);  /* fills the hole */
    size_t rn = tcp_response(r, 9, 3);
    /* the server's reply: its second half first, over the wrap */
    pkt(a, 1, 500, S2C, 6, 40000, ISN_S + 1 + 6, 0x08, r + 6, rn - 6);
    pkt(a, 1, 600, S2C, 6, 40000, ISN_S + 1, 0x08, r, 6);
    ASSERT_EQ(ngot, 1);
    if (ngot == 1) {
        ASSERT_EQ(got[0].u.dns.id, 9);
        ASSERT_STREQ(got[0].u.dns.qname, "www.example.test");
        ASSERT_EQ(got[0].ts_ns, 100);
        ASSERT_EQ(got[0].u.dns.response_ns, 600 - 300); /* completed by the filling segments */
        ASSERT_EQ(got[0].u.dns.rcode, 3);
        ASSERT_EQ(got[0].client_port, 40000);
        ASSERT_EQ(got[0].server_port, 53);
        ASSERT_EQ(got[0].u.dns.transport, 6);
        ASSERT_EQ(got[0].flow_id, 1);
    }
    appana_stats st;
    appana_get_stats(a, &st);
    ASSERT_EQ(st.kind[0].malformed, 0);
    ASSERT_EQ(st.kind[0].records, 1);
    ASSERT_EQ(st.active, 1);
    appana_flow_end(a, 1);
    appana_get_stats(a, &st);
    ASSERT_EQ(st.active, 0);
    appana_free(a);
}

static void test_first_segment_late(void)
{
    /* The client's first segment reaches the capture point after its
     * second: with the SYN seen, detection waits for the stream's start. */
    appana_t *a = mk(16);
    uint8_t q[64], r[16];
    tcp_query(q, 3);
    pkt(a, 5, 1, C2S, 6, 40005, ISN_C, 0x02, NULL, 0);          /* SYN */
    pkt(a, 5, 2, S2C, 6, 40005, ISN_S, 0x12, NULL, 0);          /* SYN/ACK */
    pkt(a, 5, 10, C2S, 6, 40005, ISN_C + 1 + 4, 0, q + 4, 32);  /* bytes 4-35 first */
    pkt(a, 5, 20, C2S, 6, 40005, ISN_C + 1, 0, q, 4);
    pkt(a, 5, 50, S2C, 6, 40005, ISN_S + 1, 0, r, tcp_response(r, 3, 0));
    ASSERT_EQ(ngot, 1);
    ASSERT_TRUE(ngot == 1 && got[0].ts_ns == 20 && got[0].u.dns.response_ns == 30);
    appana_flush(a);
    appana_free(a);
}

static void test_response_before_query(void)
{
    /* The client's first segment comes late, after the server's response:
     * the response, held while detection waits for the stream's start, is
     * handed on after the query with its own (earlier) time. tshark sees
     * the response's frame first and pairs nothing: neither do we (it was
     * paired, response_ns -5). */
    appana_t *a = mk(16);
    uint8_t q[64], r[16];
    tcp_query(q, 3);
    pkt(a, 6, 1, C2S, 6, 40006, ISN_C, 0x02, NULL, 0);          /* SYN */
    pkt(a, 6, 2, S2C, 6, 40006, ISN_S, 0x12, NULL, 0);          /* SYN/ACK */
    pkt(a, 6, 10, C2S, 6, 40006, ISN_C + 1 + 4, 0, q + 4, 32);  /* bytes 4-35 first */
    pkt(a, 6, 15, S2C, 6, 40006, ISN_S + 1, 0, r, tcp_response(r, 3, 0));
    pkt(a, 6, 20, C2S, 6, 40006, ISN_C + 1, 0, q, 4);           /* bytes 0-3 */
    appana_flow_end(a, 6);
    ASSERT_EQ(ngot, 1);
    if (ngot == 1) {
        ASSERT_EQ(got[0].ts_ns, 20);
        ASSERT_EQ(got[0].u.dns.has_response, 0);
    }
    appana_stats st;
    appana_get_stats(a, &st);
    ASSERT_EQ(st.kind[0].unmatched, 1);
    appana_free(a);
}

static void test_overlaps(void)
{
    /* Two queries back to back, delivered as overlapping segments: every
     * byte's first copy counts, each query completes with the segment that
     * made its last byte contiguous and starts with its first byte's. */
    appana_t *a = mk(16);
    uint8_t q[72], r[32];
    tcp_query(q, 1);
    tcp_query(q + 36, 2);
    uint32_t s0 = ISN_C + 1;
    pkt(a, 2, 10, C2S, 6, 40001, s0, 0, q, 30);
    pkt(a, 2, 20, C2S, 6, 40001, s0 + 50, 0, q + 50, 22);   /* 50-71, held */
    pkt(a, 2, 30, C2S, 6, 40001, s0 + 20, 0, q + 20, 40);   /* 20-59: completes query 1 */
    tcp_response(r, 2, 0);
    tcp_response(r + 14, 1, 0);
    pkt(a, 2, 100, S2C, 6, 40001, ISN_S + 1, 0, r, 28);
    ASSERT_EQ(ngot, 2);
    for (int i = 0; i < ngot; i++) {
        ASSERT_EQ(got[i].ts_ns, got[i].u.dns.id == 1 ? 10 : 30);
        ASSERT_EQ(got[i].u.dns.response_ns, 100 - 30);
    }
    appana_flush(a);
    appana_free(a);
}

static void test_gap_and_end(void)
{
    appana_t *a = mk(16);
    uint8_t q[64];
    tcp_query(q, 5);
    uint32_t s0 = ISN_C + 1;
    /* A query pending at the flow's end: emitted unanswered. */
    pkt(a, 3, 10, C2S, 6, 40002, s0, 0, q, 36);
    ASSERT_EQ(ngot, 0);
    appana_flow_end(a, 3);
    ASSERT_EQ(ngot, 1);
    ASSERT_TRUE(ngot == 1 && !got[0].u.dns.has_response);
    /* A hole no buffer can bridge: a gap, counted; the flow is not lost
     * to the layer (its state is freed at the end). */
    pkt(a, 4, 10, C2S, 6, 40003, s0, 0, q, 10);
    pkt(a, 4, 20, C2S, 6, 40003, s0 + 10 + 100000, 0, q + 10, 26);
    appana_stats st;
    appana_get_stats(a, &st);
    ASSERT_EQ(st.kind[0].gaps, 1);
    ASSERT_EQ(st.active, 1);
    appana_flush(a);
    appana_get_stats(a, &st);
    ASSERT_EQ(st.active, 0);
    appana_free(a);
}

static void test_udp_and_pools(void)
{
    appana_t *a = mk(2);
    uint8_t q[64], r[16];
    size_t qn = tcp_query(q, 7) - 2, rn = tcp_response(r, 7, 0) - 2;
    /* Answered: the slot is freed at once. */
    pkt(a, 10, 100, C2S, 17, 41000, 0, 0, q + 2, qn);
    pkt(a, 10, 150, S2C, 17, 41000, 0, 0, r + 2, rn);
    appana_stats st;
    appana_get_stats(a, &st);
    ASSERT_EQ(ngot, 1);
    ASSERT_EQ(got[0].u.dns.response_ns, 50);
    ASSERT_EQ(got[0].u.dns.transport, 17);
    ASSERT_EQ(st.active, 0);
    /* Two pending fill the pool of two; a third flow is not followed. */
    pkt(a, 11, 200, C2S, 17, 41001, 0, 0, q + 2, qn);
    pkt(a, 12, 200, C2S, 17, 41002, 0, 0, q + 2, qn);
    pkt(a, 13, 200, C2S, 17, 41003, 0, 0, q + 2, qn);
    appana_get_stats(a, &st);
    ASSERT_EQ(st.pool_full, 1);
    ASSERT_EQ(st.active, 2);
    /* The timeout (2000 ns here) frees them as packet time passes. */
    appana_advance(a, 200 + 2000 + 1000000000LL);
    appana_get_stats(a, &st);
    ASSERT_EQ(ngot, 3);
    ASSERT_EQ(st.active, 0);
    /* A TCP flow whose first payload is none of ours is not followed, nor
     * looked at again. */
    srv_port = 22;
    pkt(a, 20, 300, C2S, 6, 40000, ISN_C + 1, 0, "SSH-2.0-x\r\n", 11);
    pkt(a, 20, 310, C2S, 6, 40000, ISN_C + 12, 0, "\x16\x03\x01\x00\x10\x01", 6);
    srv_port = 53;
    appana_get_stats(a, &st);
    ASSERT_EQ(st.active, 0);
    ASSERT_EQ(st.flows, 3);
    appana_free(a);
}

static void test_one_id_two_protocols(void)
{
    /* Our flow table never gives a TCP and a UDP flow one id, but an id
     * that is both must not let UDP datagrams into the TCP flow's slot:
     * there they ran the UDP parser on a state never initialized (an
     * undecided slot's parser is a placeholder), made a record from
     * whatever an earlier flow left in the pool, and freed the TCP slot. */
    appana_t *a = mk(16);
    uint8_t q[64], r[16];
    tcp_query(q, 5);
    pkt(a, 30, 1, C2S, 6, 40030, ISN_C, 0x02, NULL, 0);          /* SYN */
    pkt(a, 30, 2, S2C, 6, 40030, ISN_S, 0x12, NULL, 0);          /* SYN/ACK */
    pkt(a, 30, 10, C2S, 6, 40030, ISN_C + 1 + 4, 0, q + 4, 32);  /* waits for bytes 0-3 */
    uint8_t uq[64], ur[16];
    size_t uqn = tcp_query(uq, 7) - 2, urn = tcp_response(ur, 7, 0) - 2;
    pkt(a, 30, 20, C2S, 17, 40030, 0, 0, uq + 2, uqn);
    pkt(a, 30, 30, S2C, 17, 40030, 0, 0, ur + 2, urn);
    ASSERT_EQ(ngot, 0);
    pkt(a, 30, 40, C2S, 6, 40030, ISN_C + 1, 0, q, 4);
    pkt(a, 30, 50, S2C, 6, 40030, ISN_S + 1, 0, r, tcp_response(r, 5, 0));
    ASSERT_EQ(ngot, 1);
    if (ngot == 1) {
        ASSERT_EQ(got[0].u.dns.transport, 6);
        ASSERT_EQ(got[0].u.dns.id, 5);
        ASSERT_EQ(got[0].ts_ns, 40);
        ASSERT_EQ(got[0].u.dns.response_ns, 10);
    }
    /* The other way round: a TCP segment with a pending UDP query's id
     * leaves the query alone (answered, then, by its response). */
    pkt(a, 31, 100, C2S, 17, 40031, 0, 0, uq + 2, uqn);
    pkt(a, 31, 110, C2S, 6, 40031, ISN_C + 1, 0, q, 36);
    pkt(a, 31, 120, S2C, 17, 40031, 0, 0, ur + 2, urn);
    ASSERT_EQ(ngot, 2);
    if (ngot == 2) {
        ASSERT_EQ(got[1].u.dns.transport, 17);
        ASSERT_EQ(got[1].u.dns.id, 7);
        ASSERT_EQ(got[1].u.dns.response_ns, 20);
    }
    appana_stats st;
    appana_get_stats(a, &st);
    ASSERT_EQ(st.kind[0].malformed, 0);
    appana_flush(a);
    appana_get_stats(a, &st);
    ASSERT_EQ(st.active, 0);
    appana_free(a);
}

static void test_buffer_pool(void)
{
    /* 64 buffers (the least): the 65th flow holding a partial message
     * cannot keep its bytes - counted, a gap for its parser. */
    appana_t *a = mk(100);
    uint8_t q[64];
    tcp_query(q, 1);
    for (uint64_t id = 1; id <= 65; id++)
        pkt(a, id, 10, C2S, 6, (uint16_t)(42000 + id), ISN_C + 1, 0, q, 20);
    appana_stats st;
    appana_get_stats(a, &st);
    ASSERT_EQ(st.buffer_full, 1);
    ASSERT_EQ(st.kind[0].gaps, 1);
    /* The others complete. */
    for (uint64_t id = 1; id <= 65; id++)
        pkt(a, id, 20, C2S, 6, (uint16_t)(42000 + id), ISN_C + 21, 0, q + 20, 16);
    appana_flush(a);
    ASSERT_EQ(ngot, 64);
    appana_free(a);
}

static void test_ports(void)
{
    uint8_t bits[8192];
    char err[128];
    ASSERT_EQ(appana_parse_ports("53,5353,853", bits, err, sizeof err), 0);
    ASSERT_TRUE((bits[53 >> 3] >> (53 & 7)) & 1);
    ASSERT_TRUE((bits[853 >> 3] >> (853 & 7)) & 1);
    ASSERT_TRUE(!((bits[54 >> 3] >> (54 & 7)) & 1));
    const char *bad[] = { "", "53,", "x", "0", "65536", "53;54", "53,,54", "-1" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ASSERT_EQ(appana_parse_ports(bad[i], bits, err, sizeof err), -1);
    /* A port of one's own: its flows are DNS, 53's no longer. */
    appana_opts o = { .max_flows = 4, .dns_timeout_ns = 1, .dns_ports = "5300" };
    ngot = 0;
    appana_t *a = appana_new(&o, emit, NULL, err, sizeof err);
    uint8_t q[64], r[16];
    size_t qn = tcp_query(q, 7) - 2, rn = tcp_response(r, 7, 0) - 2;
    pkt(a, 1, 100, C2S, 17, 41000, 0, 0, q + 2, qn);
    pkt(a, 1, 150, S2C, 17, 41000, 0, 0, r + 2, rn);
    ASSERT_EQ(ngot, 0);
    srv_port = 5300;
    pkt(a, 2, 100, C2S, 17, 41000, 0, 0, q + 2, qn);
    pkt(a, 2, 150, S2C, 17, 41000, 0, 0, r + 2, rn);
    srv_port = 53;
    ASSERT_EQ(ngot, 1);
    appana_free(a);
    o.dns_ports = "53,x";
    ASSERT_TRUE(appana_new(&o, emit, NULL, err, sizeof err) == NULL);
}

int main(void)
{
    RUN(test_reorder_first_copy);
    RUN(test_first_segment_late);
    RUN(test_response_before_query);
    RUN(test_overlaps);
    RUN(test_gap_and_end);
    RUN(test_udp_and_pools);
    RUN(test_one_id_two_protocols);
    RUN(test_buffer_pool);
    RUN(test_ports);
    TEST_EXIT();
}
