/* test_app_tls.c - the TLS parser (recorder/app_tls.c) through the
 * appstream.h contract: the fields of a ClientHello and ServerHello, times
 * from the packets that completed the records holding them (a ServerHello
 * packed with a Certificate in one record completes with the record), a
 * ClientHello continued in a second record, a record that arrives a byte at
 * a time, supported_versions, and bytes that are not TLS (counted). */
#include "app_tls.h"
#include "test.h"

static apprec got[8];
static int ngot;
static app_counts counts;

static void emit(void *ctx, int client_dir, apprec *r)
{
    ASSERT_EQ(client_dir, 0);
    if (ngot < 8) got[ngot++] = *r;
}

static const app_out out = { emit, NULL, &counts };
static uint64_t st[(1 << 13) / 8];

static int64_t ts_bytes(const void *ctx, size_t off) { return ((const int64_t *)ctx)[off]; }

static size_t put16(uint8_t *p, size_t v) { p[0] = (uint8_t)(v >> 8), p[1] = (uint8_t)v; return 2; }

/* A ClientHello body (after the 4-byte handshake header). */
static size_t ch_body(uint8_t *b)
{
    size_t n = 0;
    n += put16(b + n, 0x0303);
    memset(b + n, 'r', 32), n += 32;
    b[n++] = 0;                       /* session id */
    n += put16(b + n, 2), n += put16(b + n, 0x1301);
    b[n++] = 1, b[n++] = 0;           /* compression */
    size_t ext = n;
    n += 2;
    static const char sni[] = "www.example.test";
    n += put16(b + n, 0), n += put16(b + n, 5 + 16), n += put16(b + n, 3 + 16);
    b[n++] = 0, n += put16(b + n, 16), memcpy(b + n, sni, 16), n += 16;
    n += put16(b + n, 16), n += put16(b + n, 2 + 3 + 9), n += put16(b + n, 3 + 9);
    b[n++] = 2, memcpy(b + n, "h2", 2), n += 2;
    b[n++] = 8, memcpy(b + n, "http/1.1", 8), n += 8;
    put16(b + ext, n - ext - 2);
    return n;
}

static size_t sh_body(uint8_t *b, int tls13)
{
    size_t n = 0;
    n += put16(b + n, 0x0303);
    memset(b + n, 's', 32), n += 32;
    b[n++] = 0;
    n += put16(b + n, tls13 ? 0x1302 : 0xc02b);
    b[n++] = 0;
    if (tls13) n += put16(b + n, 6), n += put16(b + n, 43), n += put16(b + n, 2), n += put16(b + n, 0x0304);
    return n;
}

/* A handshake message of type t with body b, as records of at most max
 * fragment bytes each (version v). Returns the bytes. */
static size_t records(uint8_t *rec, uint8_t t, const uint8_t *b, size_t n, size_t max, uint16_t v)
{
    uint8_t msg[4096];
    msg[0] = t, msg[1] = 0, put16(msg + 2, n);
    memcpy(msg + 4, b, n);
    size_t total = n + 4, off = 0, w = 0;
    while (off < total) {
        size_t k = total - off < max ? total - off : max;
        rec[w] = 22, put16(rec + w + 1, v), put16(rec + w + 3, k);
        memcpy(rec + w + 5, msg + off, k);
        w += 5 + k, off += k;
    }
    return w;
}

/* Feeds bytes to direction dir in pieces of `step`, byte i arriving at
 * ts0 + its piece number; returns what is left unconsumed, or -1 on DONE. */
static long feed(int dir, const uint8_t *p, size_t n, size_t step, int64_t ts0)
{
    static uint8_t view[8192];
    static int64_t ts[8192];
    size_t have = 0;
    for (size_t off = 0; off < n; off += step) {
        size_t k = n - off < step ? n - off : step;
        memcpy(view + have, p + off, k);
        for (size_t i = 0; i < k; i++) ts[have + i] = ts0 + (int64_t)(off / step);
        have += k;
        app_view v = { view, have, ts0 + (int64_t)(off / step), dir, 0, ts_bytes, ts };
        size_t used = app_tls_parser.parse(st, &v, &out);
        if (used == APP_PARSE_DONE) return -1;
        ASSERT_TRUE(used <= have);
        memmove(view, view + used, have - used);
        memmove(ts, ts + used, (have - used) * sizeof ts[0]);
        have -= used;
    }
    return (long)have;
}

static void test_hellos(void)
{
    uint8_t b[2048], c[4096], s[4096];
    size_t cn = records(c, 1, b, ch_body(b), 16384, 0x0301);
    ASSERT_EQ(app_tls_parser.detect(c, 3), APP_DETECT_MORE);
    ASSERT_EQ(app_tls_parser.detect(c, cn), APP_DETECT_YES);
    ASSERT_EQ(app_tls_parser.detect((const uint8_t *)"GET / HTTP/1.1\r\n", 16), APP_DETECT_NO);
    /* The ClientHello a byte at a time; the ServerHello packed with a
     * Certificate in one record, ten bytes at a time: it completes with
     * the record's last byte. */
    for (int tls13 = 0; tls13 < 2; tls13++) {
        ngot = 0;
        memset(&counts, 0, sizeof counts);
        app_tls_parser.init(st);
        ASSERT_EQ(feed(0, c, cn, 1, 1000), 0);
        size_t sn = sh_body(b, tls13);
        uint8_t msg[1024];
        msg[0] = 2, msg[1] = 0, put16(msg + 2, sn);
        memcpy(msg + 4, b, sn);
        size_t mn = 4 + sn;
        msg[mn] = 11, msg[mn + 1] = 0, put16(msg + mn + 2, 300); /* a Certificate */
        memset(msg + mn + 4, 'c', 300);
        mn += 304;
        s[0] = 22, put16(s + 1, 0x0303), put16(s + 3, mn);
        memcpy(s + 5, msg, mn);
        ASSERT_EQ(feed(1, s, 5 + mn, 10, 5000), -1);
        ASSERT_EQ(ngot, 1);
        apprec *r = &got[0];
        ASSERT_EQ(r->ts_ns, 1000);
        ASSERT_EQ(r->u.tls.record_version, 0x0301);
        ASSERT_EQ(r->u.tls.client_version, 0x0303);
        ASSERT_STREQ(r->u.tls.sni, "www.example.test");
        ASSERT_EQ(r->u.tls.alpn_count, 2);
        ASSERT_EQ(r->u.tls.version, tls13 ? 0x0304 : 0x0303);
        ASSERT_EQ(r->u.tls.cipher, tls13 ? 0x1302 : 0xc02b);
        int64_t ch_done = 1000 + (int64_t)cn - 1, sh_done = 5000 + (int64_t)(5 + mn - 1) / 10;
        ASSERT_EQ(r->u.tls.hello_rtt_ns, sh_done - ch_done);
        app_tls_parser.end(st, &out);
        ASSERT_EQ(ngot, 1); /* not twice */
        ASSERT_EQ(counts.malformed, 0);
    }
}

static void test_spanning_and_bad(void)
{
    uint8_t b[2048], c[4096];
    /* A ClientHello continued in a second record: one message. */
    ngot = 0;
    memset(&counts, 0, sizeof counts);
    app_tls_parser.init(st);
    size_t cn = records(c, 1, b, ch_body(b), 40, 0x0303);
    ASSERT_EQ(feed(0, c, cn, 7, 10), 0);
    app_tls_parser.end(st, &out);
    ASSERT_EQ(ngot, 1);
    ASSERT_TRUE(ngot == 1 && !got[0].u.tls.has_server_hello && got[0].u.tls.has_sni);
    ASSERT_EQ(got[0].ts_ns, 10);
    /* A server that answers with what is not TLS: counted, the
     * ClientHello's record emitted. */
    ngot = 0;
    app_tls_parser.init(st);
    cn = records(c, 1, b, ch_body(b), 16384, 0x0301);
    feed(0, c, cn, 2000, 10);
    ASSERT_EQ(feed(1, (const uint8_t *)"HTTP/1.1 400 Bad\r\n\r\n", 20, 20, 20), -1);
    ASSERT_EQ(ngot, 1);
    ASSERT_EQ(counts.malformed, 1);
    /* A ClientHello cut inside its extensions: the record with what was
     * read, counted. */
    ngot = 0;
    memset(&counts, 0, sizeof counts);
    app_tls_parser.init(st);
    size_t bn = ch_body(b);
    cn = records(c, 1, b, bn - 20, 16384, 0x0301);
    feed(0, c, cn, 2000, 10);
    app_tls_parser.end(st, &out);
    ASSERT_EQ(ngot, 1);
    ASSERT_EQ(counts.malformed, 1);
}

int main(void)
{
    ASSERT_TRUE(app_tls_parser.state_size <= sizeof st);
    RUN(test_hellos);
    RUN(test_spanning_and_bad);
    TEST_EXIT();
}
