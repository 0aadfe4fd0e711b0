/* test_flowrec.c - flowrec_json(), the JSON writer on the recorder's hot
 * path (hand-rolled appends, expanded from the field table), checked by a
 * real parser (jansson): every record it writes parses, with the values it
 * was given - also for node names with quotes, backslashes and control
 * characters. Its numbers and addresses are checked against snprintf and
 * flowkey_addr_str (itself checked against inet_ntop). */
#include "flowrec.h"
#include "flowkey.h"
#include "jbuf.h"
#include "test.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdlib.h>

static flowrec sample(void)
{
    flowrec r;
    memset(&r, 0, sizeof r);
    r.flow_id = ((uint64_t)1796164986 << 32) | 12345; /* start second << 32, as the recorder makes them */
    r.vni = 7;
    r.proto = 6;
    static const uint8_t v4map[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
    memcpy(r.client_ip, v4map, 12);
    memcpy(r.server_ip, v4map, 12);
    memcpy(r.observer, v4map, 12);
    r.client_ip[12] = 10, r.client_ip[15] = 1;
    r.server_ip[12] = 10, r.server_ip[15] = 2;
    r.observer[12] = 192, r.observer[13] = 168, r.observer[15] = 9;
    r.client_port = 40000;
    r.server_port = 443;
    r.first_ns = 1700000000123456789LL;
    r.last_ns = r.first_ns + 5000000;
    r.c2s.packets = 12;
    r.c2s.ip_bytes = 3456;
    r.c2s.retransmissions = 2;
    r.c2s.rtt = (flowrec_stat){ 1000, 9000, 20000, 4 };
    r.s2c.packets = 30;
    r.hs_seen = FLOWREC_HS_SYN | FLOWREC_HS_SYNACK | FLOWREC_HS_ACK | FLOWREC_HS_IRTT;
    r.syn_ns = r.first_ns;
    r.synack_ns = r.first_ns + 1000;
    r.ack_ns = r.first_ns + 2500;
    r.initial_rtt_ns = 2500;
    snprintf(r.conn_state, sizeof r.conn_state, "SF");
    snprintf(r.history, sizeof r.history, "ShADadFf");
    r.final = 1;
    return r;
}

static json_t *parse(const flowrec *r, const char *node)
{
    char buf[4096];
    int n = flowrec_json(r, node, buf, sizeof buf);
    ASSERT_TRUE(n > 0);
    json_error_t e;
    json_t *j = json_loadb(buf, n > 0 ? (size_t)n : 0, 0, &e);
    if (!j) fprintf(stderr, "not JSON (%s): %.*s\n", e.text, n, buf);
    ASSERT_TRUE(j != NULL);
    return j;
}

static void test_values(void)
{
    flowrec r = sample();
    json_t *j = parse(&r, "rec-a");
    if (!j) return;
    ASSERT_STREQ(json_string_value(json_object_get(j, "node")), "rec-a");
    ASSERT_TRUE((uint64_t)json_integer_value(json_object_get(j, "flow_id")) == r.flow_id);
    ASSERT_EQ(json_integer_value(json_object_get(j, "vni")), 7);
    ASSERT_STREQ(json_string_value(json_object_get(j, "observer")), "192.168.0.9");
    ASSERT_STREQ(json_string_value(json_object_get(json_object_get(j, "client"), "ip")), "10.0.0.1");
    ASSERT_EQ(json_integer_value(json_object_get(json_object_get(j, "server"), "port")), 443);
    ASSERT_EQ(json_integer_value(json_object_get(j, "first_ns")), r.first_ns);
    json_t *c2s = json_object_get(j, "c2s");
    ASSERT_EQ(json_integer_value(json_object_get(c2s, "packets")), 12);
    ASSERT_EQ(json_integer_value(json_object_get(c2s, "retransmissions")), 2);
    json_t *hs = json_object_get(j, "handshake");
    ASSERT_TRUE(json_is_true(json_object_get(hs, "complete")));
    ASSERT_EQ(json_integer_value(json_object_get(hs, "initial_rtt_ns")), 2500);
    ASSERT_STREQ(json_string_value(json_object_get(j, "history")), "ShADadFf");
    ASSERT_TRUE(json_is_true(json_object_get(j, "final")));
    json_decref(j);
}

static void test_hostile_node_names(void)
{
    static const char *const names[] = { "a\"b", "back\\slash", "tab\there", "nl\nx", "\x01\x1f",
                                         "ünïcode", "" };
    flowrec r = sample();
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        json_t *j = parse(&r, names[i]);
        if (!j) continue;
        const char *got = json_string_value(json_object_get(j, "node"));
        ASSERT_TRUE(got != NULL);
        /* Quotes and backslashes survive; control characters may be replaced. */
        if (got && !strpbrk(names[i], "\t\n\x01\x1f")) ASSERT_STREQ(got, names[i]);
        json_decref(j);
    }
}

static void test_too_small(void)
{
    flowrec r = sample();
    char buf[64];
    ASSERT_EQ(flowrec_json(&r, "n", buf, sizeof buf), -1);
}

/* jb_u64 and jb_i64 as snprintf writes them: every power of ten and its
 * neighbours (where the digit count and the eight-digit split change), the
 * extremes, and random values of every length. */
static void test_numbers(void)
{
    uint64_t vals[200];
    size_t n = 0;
    vals[n++] = 0;
    vals[n++] = UINT64_MAX;
    for (uint64_t p = 1;; p *= 10) { /* up to 10^19 */
        vals[n++] = p - 1;
        vals[n++] = p;
        vals[n++] = p + 1;
        if (p > UINT64_MAX / 10) break;
    }
    srand(7);
    while (n < sizeof vals / sizeof vals[0]) {
        uint64_t v = (uint64_t)rand() << 42 ^ (uint64_t)rand() << 21 ^ (uint64_t)rand();
        vals[n++] = v >> (rand() % 64);
    }
    for (size_t i = 0; i < n; i++) {
        char got[32], want[32];
        jbuf b = { got, sizeof got, 0, 0 };
        jb_u64(&b, vals[i]);
        got[b.used] = 0;
        snprintf(want, sizeof want, "%" PRIu64, vals[i]);
        ASSERT_STREQ(got, want);
        int64_t sv = (int64_t)vals[i];
        b.used = 0;
        jb_i64(&b, sv);
        got[b.used] = 0;
        snprintf(want, sizeof want, "%" PRId64, sv);
        ASSERT_STREQ(got, want);
    }
}

/* jb_ip writes in place when there is room and through a copy near the
 * buffer's end: the same text either way, and an overflow when it does not
 * fit. */
static void test_addresses(void)
{
    static const uint8_t addrs[][16] = {
        { 0 },
        { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 255, 255, 255, 255 },
        { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 99, 100 },
        { 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1 },
        { 0xfe, 0x80, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14 },
    };
    for (size_t i = 0; i < sizeof addrs / sizeof addrs[0]; i++) {
        char want[80], text[64];
        flowkey_addr_str(addrs[i], text, sizeof text);
        snprintf(want, sizeof want, "\"%s\"", text);
        size_t len = strlen(want);
        char big[128], tight[64];
        jbuf b = { big, sizeof big, 0, 0 };
        jb_ip(&b, addrs[i]);
        ASSERT_EQ(b.used, len);
        ASSERT_TRUE(memcmp(big, want, len) == 0);
        jbuf t = { tight, len + 1, 0, 0 }; /* just room (one byte stays free) */
        jb_ip(&t, addrs[i]);
        ASSERT_EQ(t.overflow, 0);
        ASSERT_TRUE(t.used == len && memcmp(tight, want, len) == 0);
        jbuf s = { tight, len, 0, 0 }; /* a byte short */
        jb_ip(&s, addrs[i]);
        ASSERT_EQ(s.overflow, 1);
    }
}

int main(void)
{
    RUN(test_numbers);
    RUN(test_addresses);
    RUN(test_values);
    RUN(test_hostile_node_names);
    RUN(test_too_small);
    TEST_EXIT();
}
