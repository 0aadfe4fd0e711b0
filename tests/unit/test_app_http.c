/* test_app_http.c - the HTTP/1.x parser (recorder/app_http.c) driven as the
 * stream layer drives it (appstream.h): a small driver keeps each
 * direction's unconsumed bytes and the time of the packet that carried
 * each, appends a "packet" and calls parse with the view, calls gap when a
 * direction stays stuck at its bound, and end at the flow's end (appdrv.h,
 * shared with the fuzz target). Every
 * field of every record is checked, with the times the issue defines:
 * ts_ns the packet of the request's first byte, response_ns from the packet
 * that completed the request to the one that completed the response's
 * header block. */
#include "app_http.h"
#include "appdrv.h"
#include "test.h"

#include <stdlib.h>

#define T0 1796221709614401616LL
#define DRV_BOUND 65536 /* the layer's bound per direction */
#define DRV_RECS 64

typedef appdrv drv;

static void drv_init(drv *x) { appdrv_init(x, &app_http_parser, DRV_RECS, DRV_BOUND); }
static void drv_free(drv *x) { appdrv_free(x); }
static void drv_send(drv *x, int dir, const void *p, size_t n, int64_t ts) { appdrv_send(x, dir, p, n, ts); }
static void drv_sends(drv *x, int dir, const char *s, int64_t ts) { appdrv_send(x, dir, s, strlen(s), ts); }
static void drv_fin(drv *x, int dir, int64_t ts) { appdrv_fin(x, dir, ts); }
static void drv_end(drv *x) { appdrv_end(x); }

/* Every field of record i; host NULL for none, status -1 for no response. */
#define CHECK_REC(x, i, method, host, uri, status, reqb, respb, ts, rns)          \
    do {                                                                          \
        int _f = test_failures;                                                   \
        check_rec((x), (i), (method), (host), (uri), (status), (reqb), (respb), (ts), (rns)); \
        if (_f != test_failures) fprintf(stderr, "  (record %d checked at line %d)\n", (i), __LINE__); \
    } while (0)

static void check_rec(const drv *x, int i, const char *method, const char *host, const char *uri,
                      int status, uint64_t reqb, uint64_t respb, int64_t ts, int64_t rns)
{
    ASSERT_TRUE(i < x->nrec && i < DRV_RECS);
    if (i >= x->nrec || i >= DRV_RECS) return;
    const apprec *r = &x->recs[i];
    const apprec_http *h = &r->u.http;
    ASSERT_EQ(r->kind, APPREC_HTTP);
    ASSERT_EQ(r->truncated, 0);
    ASSERT_EQ(r->ts_ns, ts);
    ASSERT_STREQ(h->method, method);
    ASSERT_EQ(h->has_host, host != NULL);
    ASSERT_STREQ(h->host, host ? host : "");
    ASSERT_STREQ(h->uri, uri);
    ASSERT_EQ(h->request_body_bytes, reqb);
    ASSERT_EQ(h->has_response, status >= 0);
    if (status >= 0) {
        ASSERT_EQ(h->status, status);
        ASSERT_EQ(h->response_body_bytes, respb);
        ASSERT_EQ(h->response_ns, rns);
    } else {
        ASSERT_EQ(h->status, 0);
        ASSERT_EQ(h->response_body_bytes, 0);
        ASSERT_EQ(h->response_ns, 0);
    }
}

static void check_counts(const drv *x, int records, int malformed, int gaps, int dropped,
                         int unmatched)
{
    ASSERT_EQ(x->nrec, records);
    ASSERT_EQ(x->counts.records, records);
    ASSERT_EQ(x->counts.malformed, malformed);
    ASSERT_EQ(x->counts.gaps, gaps);
    ASSERT_EQ(x->counts.dropped, dropped);
    ASSERT_EQ(x->counts.unmatched, unmatched);
    ASSERT_EQ(x->bad_used, 0);
    for (int i = 0; i < x->nrec && i < x->cap; i++) ASSERT_EQ(x->client_dir[i], 0);
}

/* ---- detection ------------------------------------------------------------ */

static int detect(const char *s) { return app_http_parser.detect((const uint8_t *)s, strlen(s)); }

static void test_detect(void)
{
    ASSERT_EQ(detect("GET / HTTP/1.1\r\n"), APP_DETECT_YES);
    ASSERT_EQ(detect("GET / HTTP/1.0\n"), APP_DETECT_YES);
    ASSERT_EQ(detect("PROPFIND /dav/x HTTP/1.1\r\nHost: a\r\n"), APP_DETECT_YES);
    ASSERT_EQ(detect("BASELINE-CONTROL /x HTTP/1.1\r\n"), APP_DETECT_YES);
    /* Every proper prefix of a request line: not yet decided. */
    const char *line = "OPTIONS /a/b?c=d HTTP/1.1\r\n";
    for (size_t n = 0; n < strlen(line); n++)
        ASSERT_EQ(app_http_parser.detect((const uint8_t *)line, n), APP_DETECT_MORE);
    ASSERT_EQ(detect("GE"), APP_DETECT_MORE);
    ASSERT_EQ(detect("P"), APP_DETECT_MORE);
    ASSERT_EQ(detect("get:1"), APP_DETECT_NO); /* short first payloads of other protocols */
    ASSERT_EQ(detect("ssss"), APP_DETECT_NO);
    ASSERT_EQ(detect("@GET / HTTP/1.1\r\n"), APP_DETECT_NO);
    ASSERT_EQ(detect("GET /x HTTP/1.1\r"), APP_DETECT_MORE);
    /* Not HTTP/1.x requests. */
    ASSERT_EQ(detect("get / HTTP/1.1\r\n"), APP_DETECT_NO);
    ASSERT_EQ(detect("GETS / HTTP/1.1\r\n"), APP_DETECT_NO);
    ASSERT_EQ(detect("GET  / HTTP/1.1\r\n"), APP_DETECT_NO);
    ASSERT_EQ(detect("GET / HTTP/2.0\r\n"), APP_DETECT_NO);
    ASSERT_EQ(detect("GET / HTTP/1.1 \r\n"), APP_DETECT_NO);
    ASSERT_EQ(detect("GET / HTTP/1.1\rX"), APP_DETECT_NO);
    ASSERT_EQ(detect("GET /a\tb HTTP/1.1\r\n"), APP_DETECT_NO);
    ASSERT_EQ(detect("HTTP/1.1 200 OK\r\n"), APP_DETECT_NO);
    ASSERT_EQ(detect("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), APP_DETECT_NO);
    ASSERT_EQ(detect("\x16\x03\x01\x02\x00\x01"), APP_DETECT_NO);
    ASSERT_EQ(detect("SSH-2.0-OpenSSH_9.2\r\n"), APP_DETECT_NO);
    /* A request line past the detector's bound without its end: no. */
    size_t n = APP_HTTP_DETECT_MAX + 10;
    char *big = malloc(n);
    memcpy(big, "GET /", 5);
    memset(big + 5, 'a', n - 5);
    ASSERT_EQ(app_http_parser.detect((const uint8_t *)big, APP_HTTP_DETECT_MAX - 1), APP_DETECT_MORE);
    ASSERT_EQ(app_http_parser.detect((const uint8_t *)big, n), APP_DETECT_NO);
    free(big);
}

/* ---- one exchange, split every way ----------------------------------------- */

static const char split_req[] =
    "POST /upload;v=1?x=%20y HTTP/1.1\r\n"
    "Host:  www.example.test \r\n"
    "Transfer-Encoding: chunked\r\n"
    "Expect: 100-continue\r\n"
    "\r\n"
    "5;name=value\r\nhello\r\n"
    "0A\r\n0123456789\r\n"
    "0\r\nX-Trailer: yes\r\n\r\n";
static const char split_resp[] =
    "HTTP/1.1 100 Continue\r\n\r\n"
    "HTTP/1.1 201 Created\r\n"
    "Content-Type: text/plain\r\n"
    "Transfer-Encoding: gzip, chunked\r\n"
    "\r\n"
    "3\r\nabc\r\n"
    "1f ; ext\r\n0123456789012345678901234567890\r\n"
    "0\r\nA: b\r\nC: d\r\n\r\n";

/* The offset just past the end of the final response's header block. */
static size_t split_resp_headers(void)
{
    const char *final = strstr(split_resp, "HTTP/1.1 201");
    return (size_t)(strstr(final, "\r\n\r\n") + 4 - split_resp);
}

/* The request in two packets (at T0+1, T0+2, split at a) and the response
 * in two (T0+10, T0+20, split at b); then a second exchange on the same
 * connection, which must be untouched by where the first was split. */
static void split_once(size_t a, size_t b)
{
    drv x;
    drv_init(&x);
    size_t rl = strlen(split_req), sl = strlen(split_resp);
    if (a) drv_send(&x, 0, split_req, a, T0 + 1);
    if (a < rl) drv_send(&x, 0, split_req + a, rl - a, T0 + 2);
    if (b) drv_send(&x, 1, split_resp, b, T0 + 10);
    if (b < sl) drv_send(&x, 1, split_resp + b, sl - b, T0 + 20);
    drv_sends(&x, 0, "GET /next HTTP/1.1\r\nHost: h\r\n\r\n", T0 + 30);
    drv_sends(&x, 1, "HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nno\n", T0 + 45);
    int64_t ts = a ? T0 + 1 : T0 + 2;
    int64_t done = a == rl ? T0 + 1 : T0 + 2;
    int64_t hdr = b >= split_resp_headers() ? T0 + 10 : T0 + 20;
    int f = test_failures;
    CHECK_REC(&x, 0, "POST", "www.example.test ", "/upload;v=1?x=%20y", 201, 15, 34, ts, hdr - done);
    CHECK_REC(&x, 1, "GET", "h", "/next", 404, 0, 3, T0 + 30, 15);
    check_counts(&x, 2, 0, 0, 0, 0);
    drv_end(&x);
    ASSERT_EQ(x.nrec, 2);
    if (f != test_failures) fprintf(stderr, "  (split at %zu, %zu)\n", a, b);
    drv_free(&x);
}

static void test_every_split(void)
{
    size_t rl = strlen(split_req), sl = strlen(split_resp);
    for (size_t a = 0; a <= rl; a++) {
        split_once(a, sl);
        split_once(a, 0);
    }
    for (size_t b = 0; b <= sl; b++) split_once(rl, b);
    for (size_t a = 0; a <= rl; a += 7)
        for (size_t b = 0; b <= sl; b += 5) split_once(a, b);
}

/* Every byte its own packet, a nanosecond apart: the request's first byte,
 * its last, and the response header block's last decide the times. */
static void test_byte_by_byte(void)
{
    drv x;
    drv_init(&x);
    size_t rl = strlen(split_req), sl = strlen(split_resp);
    for (size_t i = 0; i < rl; i++) drv_send(&x, 0, split_req + i, 1, T0 + (int64_t)i);
    ASSERT_EQ(x.nrec, 0);
    for (size_t i = 0; i < sl; i++) drv_send(&x, 1, split_resp + i, 1, T0 + 1000 + (int64_t)i);
    int64_t hdr = T0 + 1000 + (int64_t)split_resp_headers() - 1;
    CHECK_REC(&x, 0, "POST", "www.example.test ", "/upload;v=1?x=%20y", 201, 15, 34, T0,
              hdr - (T0 + (int64_t)rl - 1));
    check_counts(&x, 1, 0, 0, 0, 0);
    drv_free(&x);
}

/* ---- sequences -------------------------------------------------------------- */

static void test_keepalive(void)
{
    drv x;
    drv_init(&x);
    /* curl's sequence on one connection: 100 B, 300 KB in many segments,
     * 404, 500, a chunked body. */
    drv_sends(&x, 0, "GET /size/100 HTTP/1.1\r\nHost: www.example.test\r\nUser-Agent: curl\r\n"
                     "Accept: */*\r\n\r\n", T0);
    drv_sends(&x, 1, "HTTP/1.0 200 OK\r\nServer: x\r\nContent-Length: 100\r\n\r\n", T0 + 500);
    char body[1448];
    memset(body, 'b', sizeof body);
    drv_send(&x, 1, body, 100, T0 + 600);
    ASSERT_EQ(x.nrec, 1);
    drv_sends(&x, 0, "GET /size/300000 HTTP/1.1\r\nHost: www.example.test\r\n\r\n", T0 + 1000);
    drv_sends(&x, 1, "HTTP/1.1 200 OK\r\ncontent-length:300000\r\n\r\n", T0 + 2000);
    size_t left = 300000;
    for (int64_t t = T0 + 2001; left; t++) {
        size_t n = left < sizeof body ? left : sizeof body;
        drv_send(&x, 1, body, n, t);
        left -= n;
        ASSERT_EQ(x.nrec, left ? 1 : 2);
    }
    drv_sends(&x, 0, "GET /nothing/here HTTP/1.1\r\nHost: www.example.test\r\n\r\n", T0 + 3000);
    drv_sends(&x, 1, "HTTP/1.1 404 Not Found\r\nContent-Length: 25\r\n\r\n", T0 + 3100);
    drv_send(&x, 1, body, 25, T0 + 3100);
    drv_sends(&x, 0, "\r\nGET /fail HTTP/1.1\r\nHost: www.example.test\r\n\r\n", T0 + 4000);
    drv_sends(&x, 1, "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 15\r\n\r\n0123456789abcde",
              T0 + 4200);
    drv_sends(&x, 0, "GET /chunked/12345 HTTP/1.1\r\nHost: www.example.test\r\n\r\n", T0 + 5000);
    drv_sends(&x, 1, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3039\r\n", T0 + 5300);
    left = 12345;
    for (int64_t t = T0 + 5301; left; t++) {
        size_t n = left < sizeof body ? left : sizeof body;
        drv_send(&x, 1, body, n, t);
        left -= n;
    }
    ASSERT_EQ(x.nrec, 4);
    drv_sends(&x, 1, "\r\n0\r\n\r\n", T0 + 5400);
    CHECK_REC(&x, 0, "GET", "www.example.test", "/size/100", 200, 0, 100, T0, 500);
    CHECK_REC(&x, 1, "GET", "www.example.test", "/size/300000", 200, 0, 300000, T0 + 1000, 1000);
    CHECK_REC(&x, 2, "GET", "www.example.test", "/nothing/here", 404, 0, 25, T0 + 3000, 100);
    CHECK_REC(&x, 3, "GET", "www.example.test", "/fail", 500, 0, 15, T0 + 4000, 200);
    CHECK_REC(&x, 4, "GET", "www.example.test", "/chunked/12345", 200, 0, 12345, T0 + 5000, 300);
    drv_fin(&x, 0, T0 + 6000);
    drv_fin(&x, 1, T0 + 6001);
    drv_end(&x);
    check_counts(&x, 5, 0, 0, 0, 0);
    drv_free(&x);
}

/* Six requests in one packet, their responses in one packet; then three
 * more whose responses come one by one. */
static void test_pipelined(void)
{
    drv x;
    drv_init(&x);
    static const char *uris[6] = { "/size/10", "/nothing/here", "/size/40", "/chunked/9", "/fail",
                                   "/size/200" };
    char req[2048] = "", resp[4096] = "";
    for (int i = 0; i < 6; i++) {
        char one[256];
        snprintf(one, sizeof one, "GET %s HTTP/1.1\r\nHost: api.example.test\r\n\r\n", uris[i]);
        strcat(req, one);
    }
    strcat(resp, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789");
    strcat(resp, "HTTP/1.1 404 Not Found\r\nContent-Length: 5\r\n\r\nnope!");
    strcat(resp, "HTTP/1.1 200 OK\r\nContent-Length: 40\r\n\r\n0123456789012345678901234567890123456789");
    strcat(resp, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n9\r\n123456789\r\n0\r\n\r\n");
    strcat(resp, "HTTP/1.1 500 Oops\r\nContent-Length: 0\r\n\r\n");
    strcat(resp, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    drv_sends(&x, 0, req, T0);
    ASSERT_EQ(x.nrec, 0);
    drv_sends(&x, 1, resp, T0 + 77);
    static const int status[6] = { 200, 404, 200, 200, 500, 200 };
    static const int blen[6] = { 10, 5, 40, 9, 0, 2 };
    for (int i = 0; i < 6; i++)
        CHECK_REC(&x, i, "GET", "api.example.test", uris[i], status[i], 0, blen[i], T0, 77);
    drv_sends(&x, 0, "GET /a HTTP/1.1\r\n\r\nHEAD /b HTTP/1.1\r\n\r\nDELETE /c HTTP/1.1\r\n\r\n", T0 + 100);
    drv_sends(&x, 1, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n", T0 + 110);
    drv_sends(&x, 1, "xHTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
              T0 + 120);
    CHECK_REC(&x, 6, "GET", NULL, "/a", 200, 0, 1, T0 + 100, 10);
    CHECK_REC(&x, 7, "HEAD", NULL, "/b", 200, 0, 0, T0 + 100, 20);
    CHECK_REC(&x, 8, "DELETE", NULL, "/c", 204, 0, 0, T0 + 100, 20);
    check_counts(&x, 9, 0, 0, 0, 0);
    drv_free(&x);
}

/* HEAD's response has no body whatever its Content-Length; 1xx is not the
 * answer; 204 and 304 have none either. */
static void test_no_body_responses(void)
{
    drv x;
    drv_init(&x);
    drv_sends(&x, 0, "HEAD /size/2000 HTTP/1.1\r\nHost: w\r\n\r\n", T0);
    drv_sends(&x, 1, "HTTP/1.1 200 OK\r\nContent-Length: 2000\r\nContent-Type: text/plain\r\n\r\n",
              T0 + 10);
    drv_sends(&x, 0, "PUT /x HTTP/1.1\r\nHost: w\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n",
              T0 + 20);
    drv_sends(&x, 1, "HTTP/1.1 100 Continue\r\n\r\n", T0 + 30);
    drv_sends(&x, 0, "da", T0 + 40);
    drv_sends(&x, 0, "ta", T0 + 50);
    drv_sends(&x, 1, "HTTP/1.1 102 Processing\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n",
              T0 + 55);
    drv_sends(&x, 1, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n", T0 + 60);
    drv_sends(&x, 1, "abc", T0 + 65);
    drv_sends(&x, 0, "DELETE /y HTTP/1.1\r\nHost: w\r\n\r\nGET /z HTTP/1.1\r\nHost: w\r\n"
                     "If-None-Match: \"e\"\r\n\r\n", T0 + 70);
    drv_sends(&x, 1, "HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n", T0 + 80);
    drv_sends(&x, 1, "HTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\nETag: \"e\"\r\n\r\n", T0 + 90);
    drv_sends(&x, 0, "GET /last HTTP/1.1\r\nHost: w\r\n\r\n", T0 + 100);
    drv_sends(&x, 1, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", T0 + 101);
    CHECK_REC(&x, 0, "HEAD", "w", "/size/2000", 200, 0, 0, T0, 10);
    CHECK_REC(&x, 1, "PUT", "w", "/x", 200, 4, 3, T0 + 20, 10);
    CHECK_REC(&x, 2, "DELETE", "w", "/y", 204, 0, 0, T0 + 70, 10);
    CHECK_REC(&x, 3, "GET", "w", "/z", 304, 0, 0, T0 + 70, 20);
    CHECK_REC(&x, 4, "GET", "w", "/last", 200, 0, 0, T0 + 100, 1);
    check_counts(&x, 5, 0, 0, 0, 0);
    drv_free(&x);
}

/* A response without a length ends with the connection: at its FIN, or at
 * the flow's end; an unanswered request is emitted at the end without one. */
static void test_close_delimited(void)
{
    drv x;
    drv_init(&x);
    drv_sends(&x, 0, "GET /old HTTP/1.0\r\nConnection: close\r\n\r\n", T0);
    drv_sends(&x, 1, "HTTP/1.0 200 OK\r\nServer: SimpleHTTP\r\n\r\nsome", T0 + 5);
    drv_sends(&x, 1, "more", T0 + 6);
    ASSERT_EQ(x.nrec, 0);
    drv_fin(&x, 1, T0 + 7);
    CHECK_REC(&x, 0, "GET", NULL, "/old", 200, 0, 8, T0, 5);
    drv_end(&x);
    check_counts(&x, 1, 0, 0, 0, 0);
    drv_free(&x);

    drv_init(&x);
    drv_sends(&x, 0, "GET /a HTTP/1.1\r\nHost: h\r\n\r\n", T0);
    drv_sends(&x, 1, "HTTP/1.1 200 OK\r\n\r\n0123456789", T0 + 3);
    drv_sends(&x, 0, "GET /b HTTP/1.1\r\nHost: h\r\n\r\n", T0 + 4); /* never answered */
    drv_sends(&x, 1, "HTTP/1.1 200 OK\r\n\r\n", T0 + 5);           /* part of /a's body */
    ASSERT_EQ(x.nrec, 0);
    drv_end(&x);
    CHECK_REC(&x, 0, "GET", "h", "/a", 200, 0, 29, T0, 3);
    CHECK_REC(&x, 1, "GET", "h", "/b", -1, 0, 0, T0 + 4, 0);
    check_counts(&x, 2, 0, 0, 0, 0);
    drv_free(&x);

    /* Unanswered requests, one with its body incomplete (cut: malformed). */
    drv_init(&x);
    drv_sends(&x, 0, "GET /1 HTTP/1.1\r\nHost: h\r\n\r\nPOST /2 HTTP/1.1\r\nContent-Length: 10\r\n\r\n12",
              T0);
    drv_sends(&x, 0, "345", T0 + 1);
    drv_end(&x);
    CHECK_REC(&x, 0, "GET", "h", "/1", -1, 0, 0, T0, 0);
    CHECK_REC(&x, 1, "POST", NULL, "/2", -1, 5, 0, T0, 0);
    check_counts(&x, 2, 1, 0, 0, 0);
    drv_free(&x);
}

/* Chunked bodies both ways: extensions, upper-case hex, trailers, LF-only
 * lines, a body split inside the chunk-size line and inside the CRLFs. */
static void test_chunked(void)
{
    drv x;
    drv_init(&x);
    drv_sends(&x, 0, "POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: Chunked\r\n\r\n", T0);
    drv_sends(&x, 0, "1", T0 + 1);
    drv_sends(&x, 0, "0;a=\"b;c\"\r", T0 + 2);
    drv_sends(&x, 0, "\n0123456789abcdef", T0 + 3);
    drv_sends(&x, 0, "\r", T0 + 4);
    drv_sends(&x, 0, "\n2\nxy\n0000\r\nT: 1\r\n", T0 + 5);
    ASSERT_EQ(x.d[0].len, 0);
    drv_sends(&x, 1, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 99\r\n\r\n",
              T0 + 6); /* early: before the request's end */
    drv_sends(&x, 0, "\r\n", T0 + 7);
    drv_sends(&x, 1, "0\r\n\r\n", T0 + 8);
    CHECK_REC(&x, 0, "POST", "h", "/c", 200, 18, 0, T0, -1);
    check_counts(&x, 1, 0, 0, 0, 0);
    drv_free(&x);
}

/* ---- the unusual and the broken --------------------------------------------- */

static void test_response_without_request(void)
{
    drv x;
    drv_init(&x);
    drv_sends(&x, 1, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nHTTP/", T0);
    ASSERT_EQ(x.counts.unmatched, 1);
    drv_sends(&x, 0, "GET / HTTP/1.1\r\nHost: h\r\n\r\n", T0 + 10);
    drv_sends(&x, 1, "HTTP/1.1 301 Moved\r\nLocation: /x\r\nContent-Length: 0\r\n\r\n", T0 + 20);
    CHECK_REC(&x, 0, "GET", "h", "/", 301, 0, 0, T0 + 10, 10);
    drv_end(&x);
    check_counts(&x, 1, 0, 0, 0, 1);
    drv_free(&x);
}

/* Garbage where a message should start is malformed once; the direction
 * finds the next start line and pairs go on in order. */
static void test_garbage(void)
{
    drv x;
    drv_init(&x);
    drv_sends(&x, 0, "GET /1 HTTP/1.1\r\n\r\n", T0);
    drv_sends(&x, 0, "\x01\x02\x03 binary junk\r\nmore junk\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\n", T0 + 1);
    drv_sends(&x, 1, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n1", T0 + 2);
    drv_sends(&x, 1, "junk HTTP/1.1 200\r\nHTTP/1.1 404 No\r\nContent-Length: 1\r\n\r\n2", T0 + 3);
    CHECK_REC(&x, 0, "GET", NULL, "/1", 200, 0, 1, T0, 2);
    CHECK_REC(&x, 1, "GET", "h", "/2", 404, 0, 1, T0 + 1, 2);
    check_counts(&x, 2, 2, 0, 0, 0);
    /* A bad Content-Length, a bad chunk line, a bad status line. */
    drv_sends(&x, 0, "POST /3 HTTP/1.1\r\nContent-Length: 12x\r\n\r\nGET /4 HTTP/1.1\r\n\r\n", T0 + 10);
    drv_sends(&x, 1, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", T0 + 11);
    drv_sends(&x, 1, "HTTP/1.1 202 OK\r\nContent-Length: 0\r\n\r\nHTTP/1.1 2x0 OK\r\n\r\n", T0 + 12);
    CHECK_REC(&x, 2, "POST", NULL, "/3", 200, 0, 0, T0 + 10, 1);
    CHECK_REC(&x, 3, "GET", NULL, "/4", 202, 0, 0, T0 + 10, 2);
    check_counts(&x, 4, 5, 0, 0, 0);
    /* Two Content-Lengths that differ. */
    drv_sends(&x, 0, "GET /5 HTTP/1.1\r\n\r\n", T0 + 20);
    drv_sends(&x, 1, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", T0 + 21);
    CHECK_REC(&x, 4, "GET", NULL, "/5", 200, 0, 0, T0 + 20, 1);
    check_counts(&x, 5, 6, 0, 0, 0);
    drv_end(&x);
    drv_free(&x);
}

/* A header line past APP_HTTP_HEADER_MAX: malformed, the request still
 * holds its place (cut, truncated), the next exchange is whole. */
static void test_huge_headers(void)
{
    drv x;
    drv_init(&x);
    size_t n = APP_HTTP_HEADER_MAX + 5000;
    char *big = malloc(n + 1);
    memset(big, 'c', n);
    big[n] = 0;
    drv_sends(&x, 0, "GET /huge HTTP/1.1\r\nHost: h\r\nCookie: ", T0);
    for (size_t i = 0; i < n; i += 1000) drv_send(&x, 0, big + i, n - i < 1000 ? n - i : 1000, T0 + 1);
    drv_sends(&x, 0, "\r\n\r\nGET /ok HTTP/1.1\r\nHost: h\r\n\r\n", T0 + 2);
    drv_sends(&x, 1, "HTTP/1.1 431 Too Large\r\nContent-Length: 0\r\n\r\n", T0 + 3);
    drv_sends(&x, 1, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", T0 + 4);
    ASSERT_EQ(x.nrec, 2);
    if (x.nrec == 2) {
        const apprec_http *h = &x.recs[0].u.http;
        ASSERT_EQ(x.recs[0].truncated, 1);
        ASSERT_STREQ(h->method, "GET");
        ASSERT_STREQ(h->uri, "/huge");
        ASSERT_EQ(h->status, 431);
        ASSERT_EQ(x.recs[0].ts_ns, T0);
    }
    CHECK_REC(&x, 1, "GET", "h", "/ok", 200, 0, 0, T0 + 2, 2);
    check_counts(&x, 2, 1, 0, 1, 0);
    /* A response header past the bound: malformed, its request unanswered. */
    drv_sends(&x, 0, "GET /r HTTP/1.1\r\n\r\n", T0 + 10);
    drv_sends(&x, 1, "HTTP/1.1 200 OK\r\nX-Big: ", T0 + 11);
    drv_send(&x, 1, big, n, T0 + 12);
    drv_sends(&x, 1, "\r\n\r\n", T0 + 13);
    drv_sends(&x, 0, "GET /s HTTP/1.1\r\n\r\n", T0 + 20);
    drv_sends(&x, 1, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", T0 + 21);
    CHECK_REC(&x, 2, "GET", NULL, "/r", -1, 0, 0, T0 + 10, 0);
    CHECK_REC(&x, 3, "GET", NULL, "/s", 200, 0, 0, T0 + 20, 1);
    check_counts(&x, 4, 2, 0, 1, 0);
    /* Garbage without a line end, past both bounds: malformed once a
     * direction, consumed as it comes (the layer never holds it). */
    size_t m = DRV_BOUND + 100;
    char *junk = malloc(m);
    memset(junk, 'j', m);
    drv_send(&x, 1, junk, m, T0 + 30);
    drv_send(&x, 0, junk, m, T0 + 31);
    drv_sends(&x, 0, "\r\nGET /t HTTP/1.1\r\n\r\n", T0 + 32);
    drv_sends(&x, 1, "\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", T0 + 33);
    CHECK_REC(&x, 4, "GET", NULL, "/t", 200, 0, 0, T0 + 32, 1);
    ASSERT_EQ(x.counts.malformed, 4);
    drv_end(&x);
    free(junk);
    free(big);
    drv_free(&x);
}

/* More requests in flight than the FIFO holds: the extra ones are dropped
 * (counted) but keep their place, so every response pairs right. */
static void test_fifo_bound(void)
{
    drv x;
    drv_init(&x);
    char req[4096] = "", resp[8192] = "";
    int total = APP_HTTP_PENDING + 4;
    for (int i = 0; i < total; i++) {
        char one[128];
        snprintf(one, sizeof one, "GET /%d HTTP/1.1\r\n\r\n", i);
        strcat(req, one);
        snprintf(one, sizeof one, "HTTP/1.1 %d OK\r\nContent-Length: 1\r\n\r\nx", 210 + i);
        strcat(resp, one);
    }
    drv_sends(&x, 0, req, T0);
    drv_sends(&x, 1, resp, T0 + 2);
    for (int i = 0; i < APP_HTTP_PENDING; i++) {
        char uri[16];
        snprintf(uri, sizeof uri, "/%d", i);
        CHECK_REC(&x, i, "GET", NULL, uri, 210 + i, 0, 1, T0, 2);
    }
    check_counts(&x, APP_HTTP_PENDING, 0, 0, 4, 0);
    /* Room again: tracked, and a HEAD still has no body. */
    drv_sends(&x, 0, "HEAD /h HTTP/1.1\r\n\r\nGET /g HTTP/1.1\r\n\r\n", T0 + 3);
    drv_sends(&x, 1, "HTTP/1.1 299 OK\r\nContent-Length: 100\r\n\r\n"
                     "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", T0 + 4);
    CHECK_REC(&x, APP_HTTP_PENDING, "HEAD", NULL, "/h", 299, 0, 0, T0 + 3, 1);
    CHECK_REC(&x, APP_HTTP_PENDING + 1, "GET", NULL, "/g", 200, 0, 0, T0 + 3, 1);
    check_counts(&x, APP_HTTP_PENDING + 2, 0, 0, 4, 0);
    drv_free(&x);
}

/* Long URIs in flight at once: what does not fit in the text ring is cut
 * (the record says so, and it is counted). */
static void test_text_bound(void)
{
    drv x;
    drv_init(&x);
    size_t ul = 3000;
    char *req = malloc(3 * (ul + 64)), *uri = malloc(ul + 1);
    uri[0] = '/';
    memset(uri + 1, 'u', ul - 1);
    uri[ul] = 0;
    req[0] = 0;
    for (int i = 0; i < 3; i++) sprintf(req + strlen(req), "GET %s HTTP/1.1\r\nHost: hh\r\n\r\n", uri);
    drv_sends(&x, 0, req, T0);
    drv_sends(&x, 1, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0"
                     "\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", T0 + 1);
    CHECK_REC(&x, 0, "GET", "hh", uri, 200, 0, 0, T0, 1);
    CHECK_REC(&x, 1, "GET", "hh", uri, 200, 0, 0, T0, 1);
    ASSERT_EQ(x.nrec, 3);
    if (x.nrec == 3) {
        ASSERT_EQ(x.recs[2].truncated, 1);
        ASSERT_STREQ(x.recs[2].u.http.method, "GET");
        ASSERT_STREQ(x.recs[2].u.http.host, "hh");
        ASSERT_EQ(strlen(x.recs[2].u.http.uri), APP_HTTP_TEXT - 2 * (ul + 5) - 5);
        ASSERT_EQ(x.recs[2].u.http.status, 200);
    }
    check_counts(&x, 3, 0, 0, 1, 0);
    /* A request that does not fit at the ring's end wraps to its start,
     * whole, when the oldest text there is gone. */
    char one[3100];
    snprintf(one, sizeof one, "GET %s HTTP/1.1\r\nHost: hh\r\n\r\n", uri);
    static const char ok[] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    drv_sends(&x, 0, one, T0 + 2);
    drv_sends(&x, 0, one, T0 + 3);
    drv_sends(&x, 1, ok, T0 + 4);
    drv_sends(&x, 0, one, T0 + 5);
    drv_sends(&x, 1, ok, T0 + 6);
    drv_sends(&x, 1, ok, T0 + 7);
    CHECK_REC(&x, 3, "GET", "hh", uri, 200, 0, 0, T0 + 2, 2);
    CHECK_REC(&x, 4, "GET", "hh", uri, 200, 0, 0, T0 + 3, 3);
    CHECK_REC(&x, 5, "GET", "hh", uri, 200, 0, 0, T0 + 5, 2);
    /* A URI past the record's own bound: cut there. */
    char *huge = malloc(APPREC_URI_MAX + 100);
    memset(huge, 'v', APPREC_URI_MAX + 99);
    memcpy(huge, "PUT /", 5);
    strcpy(huge + APPREC_URI_MAX + 20, " HTTP/1.1\r\n\r\n");
    drv_sends(&x, 0, huge, T0 + 8);
    drv_end(&x);
    ASSERT_EQ(x.nrec, 7);
    if (x.nrec == 7) {
        ASSERT_EQ(x.recs[6].truncated, 1);
        ASSERT_EQ(strlen(x.recs[6].u.http.uri), APPREC_URI_MAX - 1);
    }
    ASSERT_EQ(x.counts.dropped, 2);
    free(huge);
    free(req);
    free(uri);
    drv_free(&x);
}

/* gap(): the message in progress is given up and counted; the direction
 * picks up at the next start line. */
static void test_gaps(void)
{
    drv x;
    drv_init(&x);
    /* A request body cut by a gap: recorded with what was seen. */
    drv_sends(&x, 0, "POST /p HTTP/1.1\r\nContent-Length: 100\r\n\r\n0123456789", T0);
    appdrv_gap(&x, 0);
    drv_sends(&x, 0, "89\r\nGET /q HTTP/1.1\r\n\r\n", T0 + 5);
    drv_sends(&x, 1, "HTTP/1.1 413 Too Large\r\nContent-Length: 0\r\n\r\n", T0 + 6);
    drv_sends(&x, 1, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n", T0 + 7);
    /* A response body cut by a gap, the next response found at once. */
    appdrv_gap(&x, 1);
    drv_sends(&x, 0, "GET /r HTTP/1.1\r\n\r\n", T0 + 8);
    drv_sends(&x, 1, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nr", T0 + 9);
    CHECK_REC(&x, 0, "POST", NULL, "/p", 413, 10, 0, T0, 6);
    CHECK_REC(&x, 1, "GET", NULL, "/q", 200, 0, 0, T0 + 5, 2);
    CHECK_REC(&x, 2, "GET", NULL, "/r", 200, 0, 1, T0 + 8, 1);
    check_counts(&x, 3, 0, 2, 0, 0);
    /* A response's header block lost in a gap: its request is unanswered,
     * the next response is the next request's. */
    drv_sends(&x, 0, "GET /s HTTP/1.1\r\n\r\nGET /t HTTP/1.1\r\n\r\n", T0 + 10);
    drv_sends(&x, 1, "HTTP/1.1 200 OK\r\nCont", T0 + 11);
    appdrv_gap(&x, 1);
    drv_sends(&x, 1, "HTTP/1.1 201 OK\r\nContent-Length: 0\r\n\r\n", T0 + 12);
    CHECK_REC(&x, 3, "GET", NULL, "/s", -1, 0, 0, T0 + 10, 0);
    CHECK_REC(&x, 4, "GET", NULL, "/t", 201, 0, 0, T0 + 10, 2);
    check_counts(&x, 5, 0, 3, 0, 0);
    drv_end(&x);
    drv_free(&x);

    /* A client that sends past the layer's bound while its CONNECT waits
     * for an answer: the layer's gap. */
    drv_init(&x);
    drv_sends(&x, 0, "CONNECT h:443 HTTP/1.1\r\n\r\n", T0);
    char *data = malloc(DRV_BOUND);
    memset(data, 0x17, DRV_BOUND);
    drv_send(&x, 0, data, DRV_BOUND, T0 + 1);
    ASSERT_EQ(x.d[0].len, 0);
    ASSERT_EQ(x.layer_gaps, 1);
    drv_sends(&x, 1, "HTTP/1.1 200 OK\r\n\r\n", T0 + 2);
    drv_send(&x, 0, data, 100, T0 + 3);
    ASSERT_EQ(x.d[0].len, 0);
    CHECK_REC(&x, 0, "CONNECT", NULL, "h:443", 200, 0, 0, T0, 2);
    check_counts(&x, 1, 0, 1, 0, 0);
    free(data);
    drv_free(&x);
}

/* CONNECT accepted and 101 leave HTTP: parse says APP_PARSE_DONE, the
 * requests waiting are recorded then, the rest is not looked at. */
static void test_tunnels(void)
{
    drv x;
    drv_init(&x);
    drv_sends(&x, 0, "CONNECT example.test:443 HTTP/1.1\r\nHost: example.test:443\r\n\r\n", T0);
    drv_sends(&x, 0, "\x16\x03\x01\x00\x05hello", T0 + 1); /* sent before the answer */
    ASSERT_EQ(x.done, 0);
    drv_sends(&x, 1, "HTTP/1.1 200 Connection established\r\n\r\n", T0 + 2);
    ASSERT_EQ(x.done, 1);
    ASSERT_EQ(x.nrec, 1);
    drv_sends(&x, 1, "\x16\x03\x03 server", T0 + 3);
    drv_sends(&x, 0, "GET /not/parsed HTTP/1.1\r\n\r\n", T0 + 4);
    drv_end(&x);
    CHECK_REC(&x, 0, "CONNECT", "example.test:443", "example.test:443", 200, 0, 0, T0, 2);
    check_counts(&x, 1, 0, 0, 0, 0);
    drv_free(&x);

    /* Refused: HTTP goes on. */
    drv_init(&x);
    drv_sends(&x, 0, "CONNECT a:1 HTTP/1.1\r\n\r\n", T0);
    drv_sends(&x, 0, "GET /b HTTP/1.1\r\n\r\n", T0 + 1);
    drv_sends(&x, 1, "HTTP/1.1 407 Auth\r\nContent-Length: 2\r\n\r\nno", T0 + 2);
    drv_sends(&x, 0, "\r\n", T0 + 3);
    drv_sends(&x, 1, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", T0 + 4);
    CHECK_REC(&x, 0, "CONNECT", NULL, "a:1", 407, 0, 2, T0, 2);
    /* Held back while the CONNECT waited: complete at the call that let
     * it through (T0 + 3), not at its packet's. */
    CHECK_REC(&x, 1, "GET", NULL, "/b", 200, 0, 0, T0 + 1, 1);
    ASSERT_EQ(x.done, 0);
    check_counts(&x, 2, 0, 0, 0, 0);
    drv_free(&x);

    drv_init(&x);
    drv_sends(&x, 0, "GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", T0);
    drv_sends(&x, 1, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x05hello", T0 + 1);
    ASSERT_EQ(x.done, 1);
    ASSERT_EQ(x.nrec, 1);
    drv_sends(&x, 0, "\x81\x85....xxxxx", T0 + 2);
    drv_end(&x);
    CHECK_REC(&x, 0, "GET", "h", "/ws", -1, 0, 0, T0, 0); /* 1xx is not an answer */
    check_counts(&x, 1, 0, 0, 0, 0);
    drv_free(&x);
}

/* Text as tshark shows it: bytes from 0x80 as U+FFFD (it reads these
 * fields as ASCII), control characters as they are; Host keeps trailing
 * white space and the first of two Host headers counts. */
static void test_text_presentation(void)
{
    drv x;
    drv_init(&x);
    drv_sends(&x, 0, "GET /u%C3%A9?q=\xc3\xa9 HTTP/1.1\r\nHost: \th\x01st\t \r\nHost: b\r\n\r\n", T0);
    drv_sends(&x, 1, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", T0 + 1);
    CHECK_REC(&x, 0, "GET", "h\001st\t ", "/u%C3%A9?q=\xef\xbf\xbd\xef\xbf\xbd", 200, 0, 0, T0, 1);
    check_counts(&x, 1, 0, 0, 0, 0);
    drv_free(&x);
}

/* Cut by the end of a direction: the message waiting for more is counted. */
static void test_fin_cuts(void)
{
    drv x;
    drv_init(&x);
    drv_sends(&x, 0, "GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\nHo", T0);
    drv_fin(&x, 0, T0 + 1);
    drv_sends(&x, 1, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n12345", T0 + 2);
    drv_fin(&x, 1, T0 + 3);
    drv_fin(&x, 1, T0 + 3);
    drv_end(&x);
    CHECK_REC(&x, 0, "GET", NULL, "/a", 200, 0, 5, T0, 2);
    check_counts(&x, 1, 2, 0, 0, 0);
    drv_free(&x);
}

int main(void)
{
    RUN(test_detect);
    RUN(test_every_split);
    RUN(test_byte_by_byte);
    RUN(test_keepalive);
    RUN(test_pipelined);
    RUN(test_no_body_responses);
    RUN(test_close_delimited);
    RUN(test_chunked);
    RUN(test_response_without_request);
    RUN(test_garbage);
    RUN(test_huge_headers);
    RUN(test_fifo_bound);
    RUN(test_text_bound);
    RUN(test_gaps);
    RUN(test_tunnels);
    RUN(test_text_presentation);
    RUN(test_fin_cuts);
    TEST_EXIT();
}
