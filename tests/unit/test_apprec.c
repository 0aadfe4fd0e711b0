/* test_apprec.c - apprec_json(), the one writer of application records
 * (common/apprec.c), checked by a real parser (jansson): the field
 * names and types for each kind, nulls where a value is absent, and strings
 * of any bytes (quotes, control characters, invalid UTF-8) that still parse
 * and keep every byte readable; and the pieces it is built of: jbuf's
 * numbers and strings, and apprec_tshark_text, whose runs of plain bytes
 * are taken eight at a time (a byte to escape at every place in and around
 * such a word). */
#include "apprec.h"
#include "jbuf.h"
#include "test.h"

#include <jansson.h>

static apprec base(int kind)
{
    apprec r;
    memset(&r, 0, sizeof r);
    static const uint8_t v4map[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
    r.kind = (uint8_t)kind;
    r.flow_id = ((uint64_t)1796164986 << 32) | 77;
    r.vni = 9;
    memcpy(r.client_ip, v4map, 12);
    memcpy(r.observer, v4map, 12);
    r.client_ip[12] = 10, r.client_ip[15] = 1;
    r.observer[12] = 192, r.observer[15] = 5;
    r.server_ip[15] = 1; /* ::1 */
    r.client_port = 40001;
    r.server_port = 53;
    r.ts_ns = 1700000000123456789LL;
    return r;
}

static json_t *parse(const apprec *r, const char *node)
{
    static char buf[APPREC_JSON_MAX];
    int n = apprec_json(r, node, buf, sizeof buf);
    ASSERT_TRUE(n > 0);
    if (n <= 0) return NULL;
    json_error_t err;
    json_t *j = json_loadb(buf, (size_t)n, 0, &err);
    if (!j) fprintf(stderr, "  not JSON: %s: %.*s\n", err.text, n, buf);
    ASSERT_TRUE(j != NULL);
    return j;
}

#define GETI(j, k) json_integer_value(json_object_get((j), (k)))
#define GETS(j, k) json_string_value(json_object_get((j), (k)))

static void test_common_and_dns(void)
{
    apprec r = base(APPREC_DNS);
    r.u.dns.transport = 17;
    r.u.dns.id = 0xbeef;
    r.u.dns.qtype = 28;
    apprec_text(&r, r.u.dns.qname, sizeof r.u.dns.qname, "www.example.test", 16);
    json_t *j = parse(&r, "rec-1");
    if (!j) return;
    ASSERT_STREQ(GETS(j, "kind"), "dns");
    ASSERT_EQ((uint64_t)GETI(j, "flow_id"), r.flow_id);
    ASSERT_STREQ(GETS(j, "node"), "rec-1");
    ASSERT_EQ(GETI(j, "vni"), 9);
    ASSERT_STREQ(GETS(j, "observer"), "192.0.0.5");
    ASSERT_STREQ(GETS(json_object_get(j, "client"), "ip"), "10.0.0.1");
    ASSERT_EQ(GETI(json_object_get(j, "client"), "port"), 40001);
    ASSERT_STREQ(GETS(json_object_get(j, "server"), "ip"), "::1");
    ASSERT_EQ(GETI(j, "ts_ns"), 1700000000123456789LL);
    ASSERT_STREQ(GETS(j, "transport"), "udp");
    ASSERT_EQ(GETI(j, "id"), 0xbeef);
    ASSERT_STREQ(GETS(j, "qname"), "www.example.test");
    ASSERT_EQ(GETI(j, "qtype"), 28);
    /* Unanswered: rcode and response_ns null, answers 0. */
    ASSERT_TRUE(json_is_null(json_object_get(j, "rcode")));
    ASSERT_TRUE(json_is_null(json_object_get(j, "response_ns")));
    ASSERT_EQ(GETI(j, "answers"), 0);
    ASSERT_TRUE(json_object_get(j, "truncated") == NULL);
    json_decref(j);

    r.u.dns.transport = 6;
    r.u.dns.has_response = 1;
    r.u.dns.rcode = 3;
    r.u.dns.answers = 2;
    r.u.dns.response_ns = 0; /* a legal value, not "absent" */
    j = parse(&r, "n");
    if (!j) return;
    ASSERT_STREQ(GETS(j, "transport"), "tcp");
    ASSERT_EQ(GETI(j, "rcode"), 3);
    ASSERT_EQ(GETI(j, "answers"), 2);
    ASSERT_TRUE(json_is_integer(json_object_get(j, "response_ns")));
    ASSERT_EQ(GETI(j, "response_ns"), 0);
    json_decref(j);
}

static void test_tls(void)
{
    apprec r = base(APPREC_TLS);
    r.u.tls.record_version = 0x0301;
    r.u.tls.client_version = 0x0303;
    json_t *j = parse(&r, "n");
    if (!j) return;
    ASSERT_EQ(GETI(j, "record_version"), 0x0301);
    ASSERT_EQ(GETI(j, "client_version"), 0x0303);
    ASSERT_TRUE(json_is_null(json_object_get(j, "version")));
    ASSERT_TRUE(json_is_null(json_object_get(j, "sni")));
    ASSERT_TRUE(json_is_array(json_object_get(j, "alpn")));
    ASSERT_EQ(json_array_size(json_object_get(j, "alpn")), 0);
    ASSERT_TRUE(json_is_null(json_object_get(j, "cipher")));
    ASSERT_TRUE(json_is_null(json_object_get(j, "hello_rtt_ns")));
    json_decref(j);

    r.u.tls.has_server_hello = 1;
    r.u.tls.version = 0x0304;
    r.u.tls.cipher = 0x1301;
    r.u.tls.hello_rtt_ns = 20123456;
    r.u.tls.has_sni = 1;
    apprec_text(&r, r.u.tls.sni, sizeof r.u.tls.sni, "a.example.test", 14);
    apprec_alpn_add(&r, "h2", 2);
    apprec_alpn_add(&r, "http/1.1", 8);
    j = parse(&r, "n");
    if (!j) return;
    ASSERT_EQ(GETI(j, "version"), 0x0304);
    ASSERT_EQ(GETI(j, "cipher"), 0x1301);
    ASSERT_EQ(GETI(j, "hello_rtt_ns"), 20123456);
    ASSERT_STREQ(GETS(j, "sni"), "a.example.test");
    json_t *alpn = json_object_get(j, "alpn");
    ASSERT_EQ(json_array_size(alpn), 2);
    ASSERT_STREQ(json_string_value(json_array_get(alpn, 0)), "h2");
    ASSERT_STREQ(json_string_value(json_array_get(alpn, 1)), "http/1.1");
    json_decref(j);

    /* Past the bound: what fits is kept, and the record says it was cut. */
    char name[255];
    memset(name, 'x', sizeof name);
    for (int i = 0; i < 20; i++) apprec_alpn_add(&r, name, sizeof name);
    ASSERT_TRUE(r.truncated);
    ASSERT_TRUE(r.u.tls.alpn_len <= APPREC_ALPN_BYTES);
    j = parse(&r, "n");
    if (!j) return;
    ASSERT_EQ(json_array_size(json_object_get(j, "alpn")), r.u.tls.alpn_count);
    ASSERT_TRUE(json_is_true(json_object_get(j, "truncated")));
    json_decref(j);
}

static void test_http(void)
{
    apprec r = base(APPREC_HTTP);
    apprec_text(&r, r.u.http.method, sizeof r.u.http.method, "POST", 4);
    apprec_text(&r, r.u.http.uri, sizeof r.u.http.uri, "/upload?x=1", 11);
    r.u.http.request_body_bytes = 70000;
    json_t *j = parse(&r, "n");
    if (!j) return;
    ASSERT_STREQ(GETS(j, "kind"), "http");
    ASSERT_STREQ(GETS(j, "method"), "POST");
    ASSERT_TRUE(json_is_null(json_object_get(j, "host")));
    ASSERT_STREQ(GETS(j, "uri"), "/upload?x=1");
    ASSERT_TRUE(json_is_null(json_object_get(j, "status")));
    ASSERT_EQ(GETI(j, "request_body_bytes"), 70000);
    ASSERT_TRUE(json_is_null(json_object_get(j, "response_body_bytes")));
    ASSERT_TRUE(json_is_null(json_object_get(j, "response_ns")));
    json_decref(j);

    r.u.http.has_host = 1;
    apprec_text(&r, r.u.http.host, sizeof r.u.http.host, "h:8080", 6);
    r.u.http.has_response = 1;
    r.u.http.status = 500;
    r.u.http.response_body_bytes = 0;
    r.u.http.response_ns = 5000000;
    j = parse(&r, "n");
    if (!j) return;
    ASSERT_STREQ(GETS(j, "host"), "h:8080");
    ASSERT_EQ(GETI(j, "status"), 500);
    ASSERT_EQ(GETI(j, "response_body_bytes"), 0);
    ASSERT_EQ(GETI(j, "response_ns"), 5000000);
    json_decref(j);
}

/* Hostile bytes in every text field: quotes, backslashes, control bytes, a
 * lone continuation byte, an overlong encoding, a surrogate, and valid UTF-8
 * (kept as it is). */
static void test_hostile_text(void)
{
    static const char raw[] = "a\"b\\c\x01\x7f\x80\xc0\xaf\xed\xa0\x80\xc3\xa9z";
    apprec r = base(APPREC_HTTP);
    apprec_text(&r, r.u.http.method, sizeof r.u.http.method, "GET", 3);
    apprec_text(&r, r.u.http.uri, sizeof r.u.http.uri, raw, sizeof raw - 1);
    json_t *j = parse(&r, "no\"de\n");
    if (!j) return;
    ASSERT_STREQ(GETS(j, "node"), "no\"de\n");
    /* Invalid bytes read as Latin-1 (U+0080, U+00C0, ...), é kept. */
    ASSERT_STREQ(GETS(j, "uri"), "a\"b\\c\x01\x7f\xc2\x80\xc3\x80\xc2\xaf\xc3\xad\xc2\xa0\xc2\x80\xc3\xa9z");
    json_decref(j);

    /* A URI longer than the bound is cut and flagged. */
    static char long_uri[APPREC_URI_MAX * 2];
    memset(long_uri, '/', sizeof long_uri);
    apprec_text(&r, r.u.http.uri, sizeof r.u.http.uri, long_uri, sizeof long_uri);
    ASSERT_TRUE(r.truncated);
    ASSERT_EQ(strlen(r.u.http.uri), APPREC_URI_MAX - 1);
}

static void test_worst_case_fits(void)
{
    /* Every text field full of bytes that escape to six characters. */
    apprec r = base(APPREC_HTTP);
    memset(r.u.http.method, 1, sizeof r.u.http.method - 1);
    memset(r.u.http.host, 1, sizeof r.u.http.host - 1);
    memset(r.u.http.uri, 1, sizeof r.u.http.uri - 1);
    r.u.http.has_host = 1;
    char node[256];
    memset(node, 1, sizeof node - 1);
    node[255] = 0;
    static char buf[APPREC_JSON_MAX];
    ASSERT_TRUE(apprec_json(&r, node, buf, sizeof buf) > 0);
    ASSERT_EQ(apprec_json(&r, node, buf, 100), -1);
    r.kind = 0;
    ASSERT_EQ(apprec_json(&r, node, buf, sizeof buf), -1);
}

static void test_jb_numbers(void)
{
    static const uint64_t u[] = { 0, 1, 9, 10, 11, 99, 100, 101, 999, 1000, 65535, 4294967295ull,
                                  9999999999999999999ull, 10000000000000000000ull, UINT64_MAX };
    char buf[64], want[64];
    for (size_t i = 0; i < sizeof u / sizeof u[0]; i++) {
        for (int k = 0; k < 2; k++) { /* the value, and one less where that is another length */
            uint64_t v = k ? u[i] - (u[i] != 0) : u[i];
            jbuf b = { buf, sizeof buf, 0, 0 };
            jb_u64(&b, v);
            snprintf(want, sizeof want, "%" PRIu64, v);
            ASSERT_EQ(b.used, strlen(want));
            buf[b.used] = 0;
            ASSERT_STREQ(buf, want);
        }
    }
    uint64_t x = 0x9e3779b97f4a7c15ull; /* every length of number, and signs */
    for (int i = 0; i < 2000; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        int64_t v = (int64_t)(x >> (x % 64));
        if (i & 1) v = -v;
        jbuf b = { buf, sizeof buf, 0, 0 };
        jb_i64(&b, v);
        snprintf(want, sizeof want, "%" PRId64, v);
        buf[b.used] = 0;
        ASSERT_STREQ(buf, want);
    }
    jbuf b = { buf, sizeof buf, 0, 0 };
    jb_i64(&b, INT64_MIN);
    buf[b.used] = 0;
    ASSERT_STREQ(buf, "-9223372036854775808");
    /* A number that does not fit sets overflow and writes nothing. */
    jbuf s = { buf, 4, 0, 0 };
    jb_u64(&s, 999);
    ASSERT_EQ(s.used, 3);
    ASSERT_EQ(s.overflow, 0);
    jbuf t = { buf, 4, 0, 0 };
    jb_u64(&t, 1000);
    ASSERT_EQ(t.used, 0);
    ASSERT_EQ(t.overflow, 1);
}

/* A byte (or sequence) to escape at each place of plain runs of 0-24 bytes. */
static void test_text_runs(void)
{
    static const struct {
        const char *in, *json, *tshark, *ascii;
    } special[] = {
        { "\"", "\\\"", "\"", "\"" },
        { "\\", "\\\\", "\\", "\\" },
        { "\x01", "\\u0001", "\\001", "\x01" },
        { "\n", "\\u000a", "\\n", "\n" },
        { "\x7f", "\x7f", "\\177", "\x7f" },
        { "\x80", "\\u0080", "\xef\xbf\xbd", "\xef\xbf\xbd" },
        { "\xc3\xa9", "\xc3\xa9", "\xc3\xa9", "\xef\xbf\xbd\xef\xbf\xbd" },
    };
    static const char plain[] = "abcdefghijklmnopqrstuvwxyz";
    char in[64], out[256], want[256];
    for (size_t k = 0; k < sizeof special / sizeof special[0]; k++) {
        for (size_t pre = 0; pre <= 24; pre++) {
            for (size_t post = 0; post <= 10; post += 5) {
                snprintf(in, sizeof in, "%.*s%s%.*s", (int)pre, plain, special[k].in, (int)post, plain);
                size_t n = strlen(in);
                jbuf b = { out, sizeof out, 0, 0 };
                jb_bytes(&b, in, n);
                out[b.used] = 0;
                snprintf(want, sizeof want, "\"%.*s%s%.*s\"", (int)pre, plain, special[k].json,
                         (int)post, plain);
                ASSERT_STREQ(out, want);
                for (int ascii = 0; ascii < 2; ascii++) {
                    int cut = 0;
                    apprec_tshark_text(out, sizeof out, in, n, ascii, &cut);
                    snprintf(want, sizeof want, "%.*s%s%.*s", (int)pre, plain,
                             ascii ? special[k].ascii : special[k].tshark, (int)post, plain);
                    ASSERT_STREQ(out, want);
                    ASSERT_EQ(cut, 0);
                }
            }
        }
    }
    /* A long plain run cut at the bound keeps what fits. */
    int cut = 0;
    apprec_tshark_text(out, 12, plain, 26, 0, &cut);
    ASSERT_STREQ(out, "abcdefghijk");
    ASSERT_EQ(cut, 1);
}

int main(void)
{
    RUN(test_common_and_dns);
    RUN(test_tls);
    RUN(test_http);
    RUN(test_hostile_text);
    RUN(test_worst_case_fits);
    RUN(test_jb_numbers);
    RUN(test_text_runs);
    TEST_EXIT();
}
