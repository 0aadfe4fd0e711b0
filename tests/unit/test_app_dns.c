/* test_app_dns.c - the DNS parser (recorder/app_dns.c): names as tshark
 * 4.0.17 prints dns.qry.name (every expected string below is what that
 * tshark printed for the same bytes), pairing by id and direction,
 * retransmissions, the per-flow bound, the timeout, DNS over TCP split
 * anywhere and several messages in one segment, and malformed input
 * counted. */
#include "app_dns.h"
#include "test.h"

static apprec got[64];
static int ngot;
static app_counts counts;

static void emit(void *ctx, int client_dir, apprec *r)
{
    if (ngot < 64) got[ngot++] = *r;
}

static const app_out out = { emit, NULL, &counts };

static void reset(void)
{
    ngot = 0;
    memset(&counts, 0, sizeof counts);
}

/* A message with the header's 12 bytes and then the name bytes given. */
static const char *name_of(const char *wire, size_t n)
{
    static uint8_t m[600];
    static char text[APPREC_NAME_MAX];
    memset(m, 0, 12);
    memcpy(m + 12, wire, n);
    int cut = 0;
    if (!app_dns_name(m, 12 + n, 12, text, sizeof text, &cut)) return "(malformed)";
    return text;
}

#define NAME(lit) name_of(lit, sizeof(lit) - 1)

static void test_names(void)
{
    ASSERT_STREQ(NAME("\3www\7example\4test\0"), "www.example.test");
    ASSERT_STREQ(NAME("\0"), "<Root>");
    ASSERT_STREQ(NAME("\3a.b\1c\0"), "a.b.c");         /* a dot inside a label: as it is */
    ASSERT_STREQ(NAME("\6we\\ird\1x\0"), "we\\ird.x");
    ASSERT_STREQ(NAME("\6sp ace\1x\0"), "sp ace.x");
    ASSERT_STREQ(NAME("\3\"q\"\1x\0"), "\"q\".x");
    ASSERT_STREQ(NAME("\5UPPER\1x\0"), "UPPER.x");
    /* ASCII control characters: C escapes or \ooo */
    ASSERT_STREQ(NAME("\4\1ctl\1x\0"), "\\001ctl.x");
    ASSERT_STREQ(NAME("\3X\0Y\0"), "X\\000Y");
    ASSERT_STREQ(NAME("\3X\7Y\0"), "X\\aY");
    ASSERT_STREQ(NAME("\3X\10Y\0"), "X\\bY");
    ASSERT_STREQ(NAME("\3X\11Y\0"), "X\\tY");
    ASSERT_STREQ(NAME("\3X\12Y\0"), "X\\nY");
    ASSERT_STREQ(NAME("\3X\13Y\0"), "X\\vY");
    ASSERT_STREQ(NAME("\3X\14Y\0"), "X\\fY");
    ASSERT_STREQ(NAME("\3X\15Y\0"), "X\\rY");
    ASSERT_STREQ(NAME("\3X\33Y\0"), "X\\033Y");
    ASSERT_STREQ(NAME("\3X\177Y\0"), "X\\177Y");
    /* UTF-8: valid passes, invalid is U+FFFD per maximal piece, decoded
     * code points that are not printable are \uXXXX */
    ASSERT_STREQ(NAME("\4\xc3\xa9t\xe9\1x\0"), "\xc3\xa9t\xef\xbf\xbd.x");
    ASSERT_STREQ(NAME("\3X\x80Y\0"), "X\xef\xbf\xbdY");
    ASSERT_STREQ(NAME("\3X\xffY\0"), "X\xef\xbf\xbdY");
    ASSERT_STREQ(NAME("\1\x7f\1\xff\0"), "\\177.\xef\xbf\xbd");
    ASSERT_STREQ(NAME("\3\xe2\x82" "a\0"), "\xef\xbf\xbd" "a");
    ASSERT_STREQ(NAME("\3\xc0\xaf" "a\0"), "/a");           /* overlong, decoded */
    ASSERT_STREQ(NAME("\3\xc0\x80" "a\0"), "\\u0000a");
    ASSERT_STREQ(NAME("\3\xc1\xbf" "a\0"), "\\u007Fa");
    ASSERT_STREQ(NAME("\4\xe0\x80\xaf" "a\0"), "/a");
    ASSERT_STREQ(NAME("\4\xed\xa0\x80" "a\0"), "\xef\xbf\xbd" "a"); /* a surrogate */
    ASSERT_STREQ(NAME("\5\xf4\x90\x80\x80" "a\0"), "\xef\xbf\xbd" "a");
    ASSERT_STREQ(NAME("\6\xf8\x88\x80\x80\x80" "a\0"), "\xef\xbf\xbd" "a");
    ASSERT_STREQ(NAME("\3\x80\x80" "a\0"), "\xef\xbf\xbd\xef\xbf\xbd" "a");
    ASSERT_STREQ(NAME("\5\xe2\x82\xe2\x82" "a\0"), "\xef\xbf\xbd\xef\xbf\xbd" "a");
    ASSERT_STREQ(NAME("\3\xc2\x85" "a\0"), "\\u0085a");
    ASSERT_STREQ(NAME("\3\xc2\xa0" "a\0"), "\xc2\xa0" "a");
    ASSERT_STREQ(NAME("\3\xc2\xad" "a\0"), "\\u00ADa");
    ASSERT_STREQ(NAME("\4\xe2\x80\x8b" "a\0"), "\\u200Ba");
    ASSERT_STREQ(NAME("\4\xe2\x80\xa8" "a\0"), "\xe2\x80\xa8" "a");
    ASSERT_STREQ(NAME("\4\xef\xbb\xbf" "a\0"), "\\uFEFFa");
    ASSERT_STREQ(NAME("\4\xef\xb7\x90" "a\0"), "\\uFDD0a");
    ASSERT_STREQ(NAME("\4\xef\xbf\xbe" "a\0"), "\\uFFFEa");
    ASSERT_STREQ(NAME("\4\xee\x80\x80" "a\0"), "\xee\x80\x80" "a");
    ASSERT_STREQ(NAME("\5\xf0\x9f\x98\x80" "a\0"), "\xf0\x9f\x98\x80" "a");
    ASSERT_STREQ(NAME("\5\xf3\xa0\x80\x81" "a\0"), "\\U000E0001a");
    ASSERT_STREQ(NAME("\5\xf3\xb0\x80\x80" "a\0"), "\xf3\xb0\x80\x80" "a");
    /* compression, and what is not a name */
    ASSERT_STREQ(NAME("\1a\0\3ftp\300\14"), "a");
    {
        static const char m[] = "\1a\0\3ftp\300\14";
        uint8_t msg[40] = { 0 };
        memcpy(msg + 12, m, sizeof m - 1);
        char text[64];
        int cut = 0;
        ASSERT_EQ(app_dns_name(msg, 12 + sizeof m - 1, 15, text, sizeof text, &cut), 12 + 9);
        ASSERT_STREQ(text, "ftp.a");
    }
    {   /* the bound: what fits of a plain run is kept, an escape whole or not */
        char o[8];
        int cut = 0;
        apprec_tshark_text(o, sizeof o, "abcdefghij", 10, 0, &cut);
        ASSERT_STREQ(o, "abcdefg");
        ASSERT_EQ(cut, 1);
        cut = 0;
        apprec_tshark_text(o, sizeof o, "abcde\1xy", 8, 0, &cut);
        ASSERT_STREQ(o, "abcde");
        ASSERT_EQ(cut, 1);
        cut = 0;
        apprec_tshark_text(o, sizeof o, "ab\1c", 4, 0, &cut);
        ASSERT_STREQ(o, "ab\\001c");
        ASSERT_EQ(cut, 0);
    }
    ASSERT_STREQ(NAME("\300\14"), "(malformed)");      /* a pointer to itself */
    ASSERT_STREQ(NAME("\77abc"), "(malformed)");       /* a label past the end */
    ASSERT_STREQ(NAME("\101abc\0"), "(malformed)");    /* extended label type */
    ASSERT_STREQ(NAME("\3www"), "(malformed)");        /* no end */
}

static size_t query(uint8_t *m, uint16_t id, uint16_t qtype)
{
    static const uint8_t hdr[12] = { 0, 0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0 };
    static const uint8_t name[] = "\3www\7example\4test";
    memcpy(m, hdr, 12);
    m[0] = (uint8_t)(id >> 8), m[1] = (uint8_t)id;
    memcpy(m + 12, name, sizeof name);
    size_t n = 12 + sizeof name;
    m[n++] = (uint8_t)(qtype >> 8), m[n++] = (uint8_t)qtype, m[n++] = 0, m[n++] = 1;
    return n;
}

static size_t response(uint8_t *m, uint16_t id, uint8_t rcode, uint8_t answers)
{
    static const uint8_t hdr[12] = { 0, 0, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0 };
    memcpy(m, hdr, 12);
    m[0] = (uint8_t)(id >> 8), m[1] = (uint8_t)id;
    m[3] |= rcode;
    m[7] = answers;
    return 12;
}

static int64_t ts_fixed(const void *ctx, size_t off) { return *(const int64_t *)ctx; }

/* One datagram through the UDP parser. */
static void udp(void *st, int dir, const uint8_t *m, size_t n, int64_t ts)
{
    app_view v = { m, n, ts, dir, 0, ts_fixed, &ts };
    ASSERT_EQ(app_dns_udp_parser.parse(st, &v, &out), n);
}

static void test_udp_pairing(void)
{
    static uint64_t st[(1 << 14) / 8];
    ASSERT_TRUE(app_dns_udp_parser.state_size <= sizeof st);
    uint8_t m[128];
    reset();
    app_dns_udp_parser.init(st);
    udp(st, 0, m, query(m, 7, 1), 1000);
    udp(st, 0, m, query(m, 7, 1), 1500);      /* a retransmission: no second record */
    udp(st, 0, m, query(m, 8, 28), 2000);
    udp(st, 0, m, response(m, 7, 0, 2), 2600); /* from the client's side: not an answer */
    ASSERT_EQ(counts.unmatched, 1);
    udp(st, 1, m, response(m, 8, 3, 0), 5000);
    udp(st, 1, m, response(m, 7, 0, 2), 6000);
    ASSERT_EQ(ngot, 2);
    ASSERT_EQ(got[0].u.dns.id, 8);
    ASSERT_EQ(got[0].u.dns.qtype, 28);
    ASSERT_EQ(got[0].u.dns.rcode, 3);
    ASSERT_EQ(got[0].u.dns.response_ns, 3000);
    ASSERT_EQ(got[0].ts_ns, 2000);
    ASSERT_STREQ(got[0].u.dns.qname, "www.example.test");
    ASSERT_EQ(got[1].u.dns.id, 7);
    ASSERT_EQ(got[1].u.dns.answers, 2);
    ASSERT_EQ(got[1].u.dns.response_ns, 5000);
    ASSERT_EQ(got[1].u.dns.transport, 17);
    ASSERT_EQ(app_dns_udp_parser.expire(st, INT64_MIN, &out), 0);
    /* The same id again after the retransmission window: a new query. */
    udp(st, 0, m, query(m, 7, 1), 10000);
    udp(st, 0, m, query(m, 7, 1), 10000 + 6000000000LL);
    ASSERT_EQ(app_dns_udp_parser.expire(st, INT64_MIN, &out), 2);
    /* Unanswered: out after the timeout, oldest first, and at the end. */
    ASSERT_EQ(app_dns_udp_parser.expire(st, 10001, &out), 1);
    ASSERT_EQ(ngot, 3);
    ASSERT_TRUE(!got[2].u.dns.has_response);
    ASSERT_EQ(got[2].ts_ns, 10000);
    app_dns_udp_parser.end(st, &out);
    ASSERT_EQ(ngot, 4);
    /* The bound: a query past DNS_PENDING is dropped and counted. */
    reset();
    app_dns_udp_parser.init(st);
    for (int i = 0; i < 20; i++) udp(st, 0, m, query(m, (uint16_t)(100 + i), 1), 1000 + i);
    ASSERT_TRUE(counts.dropped > 0);
    ASSERT_EQ(app_dns_udp_parser.expire(st, INT64_MIN, &out) + (int)counts.dropped, 20);
    /* Malformed: cut headers, a query without a question. */
    udp(st, 0, m, 5, 3000);
    uint8_t noq[12] = { 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0 };
    udp(st, 0, noq, 12, 3000);
    ASSERT_EQ(counts.malformed, 2);
    app_dns_udp_parser.end(st, &out);
}

/* Per-byte times of a TCP view: byte i came at ts[i]. */
static int64_t ts_bytes(const void *ctx, size_t off) { return ((const int64_t *)ctx)[off]; }

static void test_tcp_split(void)
{
    static uint64_t st[(1 << 14) / 8];
    uint8_t stream[256], resp[128];
    size_t n = 0;
    for (int i = 0; i < 3; i++) { /* three queries back to back */
        size_t k = query(stream + n + 2, (uint16_t)(i + 1), 1);
        stream[n] = 0, stream[n + 1] = (uint8_t)k;
        n += 2 + k;
    }
    size_t rn = 0;
    for (int i = 0; i < 3; i++) {
        size_t k = response(resp + rn + 2, (uint16_t)(3 - i), 0, 1);
        resp[rn] = 0, resp[rn + 1] = (uint8_t)k;
        rn += 2 + k;
    }
    /* The client's bytes arrive split at every position: the messages
     * before the split complete with the first part, the rest with the
     * second; the layer's view keeps what was not consumed. */
    for (size_t cut = 1; cut < n; cut++) {
        reset();
        app_dns_tcp_parser.init(st);
        int64_t ts[256];
        for (size_t i = 0; i < n; i++) ts[i] = i < cut ? 100 : 200;
        app_view v = { stream, cut, 100, 0, 0, ts_bytes, ts };
        size_t used = app_dns_tcp_parser.parse(st, &v, &out);
        ASSERT_TRUE(used <= cut);
        app_view v2 = { stream + used, n - used, 200, 0, 0, ts_bytes, ts + used };
        ASSERT_EQ(app_dns_tcp_parser.parse(st, &v2, &out), n - used);
        app_view r = { resp, rn, 1000, 1, 0, ts_fixed, &(int64_t){ 1000 } };
        ASSERT_EQ(app_dns_tcp_parser.parse(st, &r, &out), rn);
        ASSERT_EQ(ngot, 3);
        for (int i = 0; i < ngot; i++) {
            size_t start = (size_t)(got[i].u.dns.id - 1) * (n / 3), end = start + n / 3;
            ASSERT_EQ(got[i].ts_ns, start < cut ? 100 : 200);
            ASSERT_EQ(got[i].u.dns.response_ns, 1000 - (end <= cut ? 100 : 200));
            ASSERT_EQ(got[i].u.dns.transport, 6);
        }
        ASSERT_EQ(counts.malformed, 0);
        app_dns_tcp_parser.end(st, &out);
    }
    /* A length too short for a header ends the connection's parsing. */
    reset();
    app_dns_tcp_parser.init(st);
    uint8_t bad[] = { 0, 3, 1, 2, 3, 0, 0 };
    app_view v = { bad, sizeof bad, 1, 0, 0, ts_fixed, &(int64_t){ 1 } };
    ASSERT_EQ(app_dns_tcp_parser.parse(st, &v, &out), sizeof bad);
    ASSERT_EQ(counts.malformed, 1);
    ASSERT_EQ(app_dns_tcp_parser.parse(st, &v, &out), sizeof bad);
    ASSERT_EQ(counts.malformed, 1);
}

int main(void)
{
    RUN(test_names);
    RUN(test_udp_pairing);
    RUN(test_tcp_split);
    TEST_EXIT();
}
