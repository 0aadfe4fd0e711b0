/* test_apppb.c - application records through protobuf and back
 * (common/apppb.c): every field of every kind, nulls, hostile text and the
 * longest text a record holds come back as they went (compared as the one
 * JSON writer prints them, and by the bytes of the text fields); every field
 * of the .proto's messages is set by some sample (a field added to the
 * .proto but not mapped fails here); and what a record cannot hold is
 * refused with a reason, not cut or wrapped. */
#include "apppb.h"
#include "../tools/appsample.h"
#include "test.h"

#include <stdlib.h>

#define SAMPLES 120

/* Pack m, unpack it, read it into out. Returns apppb_read's result. */
static int trip(const Mirrorscope__AppRecord *m, apprec *out, const char **why)
{
    size_t n = mirrorscope__app_record__get_packed_size(m);
    uint8_t *buf = malloc(n + 1);
    mirrorscope__app_record__pack(m, buf);
    Mirrorscope__AppRecord *u = mirrorscope__app_record__unpack(NULL, n, buf);
    free(buf);
    ASSERT_TRUE(u != NULL);
    if (!u) return -2;
    int rc = apppb_read(out, u, why);
    mirrorscope__app_record__free_unpacked(u, NULL);
    return rc;
}

/* Fields of message type d set (non-zero, non-empty) in m, as bits by index. */
static void mark_set(const ProtobufCMessage *m, uint64_t *seen)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    const uint8_t *base = (const uint8_t *)m;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        const void *p = base + f->offset;
        int set = 0;
        if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
            set = *(const uint32_t *)(base + f->quantifier_offset) == f->id;
        } else if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            set = *(const size_t *)(base + f->quantifier_offset) > 0;
        } else switch (f->type) {
            case PROTOBUF_C_TYPE_BYTES: set = ((const ProtobufCBinaryData *)p)->len > 0; break;
            case PROTOBUF_C_TYPE_MESSAGE: set = *(void *const *)p != NULL; break;
            case PROTOBUF_C_TYPE_BOOL: set = *(const protobuf_c_boolean *)p != 0; break;
            case PROTOBUF_C_TYPE_UINT64: case PROTOBUF_C_TYPE_INT64: set = *(const uint64_t *)p != 0; break;
            default: set = *(const uint32_t *)p != 0; break;
            }
        if (set) *seen |= 1ULL << i;
    }
}

static void check_all_set(const ProtobufCMessageDescriptor *d, uint64_t seen)
{
    for (unsigned i = 0; i < d->n_fields; i++)
        if (!(seen & (1ULL << i))) {
            fprintf(stderr, "  %s.%s is never set by apppb_fill()\n", d->name, d->fields[i].name);
            test_failures++;
        }
}

static void test_round_trip(void)
{
    static apprec r, back;
    static char j1[APPREC_JSON_MAX], j2[APPREC_JSON_MAX];
    static apppb p;
    uint64_t seen[4] = { 0 };
    int kinds[4] = { 0 }, nulls = 0, longest = 0;
    for (unsigned k = 0; k < SAMPLES; k++) {
        appsample_make(&r, k, 10, 1700000000000000000LL);
        apppb_fill(&p, &r);
        mark_set(&p.msg.base, &seen[0]);
        /* the oneof's members share one pointer: its case says which */
        if (p.msg.app_case == MIRRORSCOPE__APP_RECORD__APP_DNS) mark_set(&p.dns.base, &seen[1]);
        if (p.msg.app_case == MIRRORSCOPE__APP_RECORD__APP_TLS) mark_set(&p.tls.base, &seen[2]);
        if (p.msg.app_case == MIRRORSCOPE__APP_RECORD__APP_HTTP) mark_set(&p.http.base, &seen[3]);
        const char *why = NULL;
        memset(&back, 0xa5, sizeof back); /* nothing may be left unwritten */
        int rc = trip(&p.msg, &back, &why);
        ASSERT_EQ(rc, 0);
        if (rc) {
            fprintf(stderr, "  record %u refused: %s\n", k, why ? why : "?");
            continue;
        }
        int n1 = apprec_json(&r, "node \"x\"", j1, sizeof j1);
        int n2 = apprec_json(&back, "node \"x\"", j2, sizeof j2);
        ASSERT_TRUE(n1 > 0);
        ASSERT_EQ(n1, n2);
        if (n1 != n2 || memcmp(j1, j2, (size_t)n1))
            fprintf(stderr, "  record %u:\n  sent %.*s\n  back %.*s\n", k, n1, j1, n2, j2);
        ASSERT_EQ(back.kind, r.kind);
        ASSERT_EQ(back.truncated, r.truncated);
        ASSERT_TRUE(!memcmp(back.observer, r.observer, 16) && !memcmp(back.client_ip, r.client_ip, 16) &&
                    !memcmp(back.server_ip, r.server_ip, 16));
        kinds[r.kind]++;
        if (r.kind == APPREC_DNS) {
            ASSERT_STREQ(back.u.dns.qname, r.u.dns.qname);
            nulls += !r.u.dns.has_response;
            longest += strlen(r.u.dns.qname) == APPREC_NAME_MAX - 1;
        } else if (r.kind == APPREC_TLS) {
            ASSERT_EQ(back.u.tls.alpn_len, r.u.tls.alpn_len);
            ASSERT_EQ(back.u.tls.alpn_count, r.u.tls.alpn_count);
            ASSERT_TRUE(!memcmp(back.u.tls.alpn, r.u.tls.alpn, r.u.tls.alpn_len));
            longest += r.u.tls.alpn_count == APPREC_ALPN_MAX;
            nulls += !r.u.tls.has_server_hello + !r.u.tls.has_sni;
        } else {
            ASSERT_STREQ(back.u.http.uri, r.u.http.uri);
            ASSERT_STREQ(back.u.http.method, r.u.http.method);
            if (r.u.http.has_host) ASSERT_STREQ(back.u.http.host, r.u.http.host);
            longest += strlen(r.u.http.uri) == APPREC_URI_MAX - 1;
            nulls += !r.u.http.has_response + !r.u.http.has_host;
        }
    }
    ASSERT_TRUE(kinds[1] > 0 && kinds[2] > 0 && kinds[3] > 0);
    ASSERT_TRUE(nulls > 10);
    ASSERT_EQ(longest, 3); /* a longest qname, ALPN list and URI went through */
    check_all_set(&mirrorscope__app_record__descriptor, seen[0]);
    check_all_set(&mirrorscope__dns_transaction__descriptor, seen[1]);
    check_all_set(&mirrorscope__tls_handshake__descriptor, seen[2]);
    check_all_set(&mirrorscope__http_transaction__descriptor, seen[3]);
}

/* What a record cannot hold is refused, with a reason. */
static void test_refused(void)
{
    static apprec r, back;
    static apppb p;
    static uint8_t big[APPREC_URI_MAX + 10];
    ProtobufCBinaryData b;
    const char *why;
    memset(big, 'x', sizeof big);
#define REFUSED(setup)                                                                         \
    do {                                                                                       \
        apppb_fill(&p, &r);                                                                    \
        setup;                                                                                 \
        why = NULL;                                                                            \
        ASSERT_EQ(trip(&p.msg, &back, &why), -1);                                              \
        ASSERT_TRUE(why != NULL);                                                              \
    } while (0)
    appsample_make(&r, 0, 10, 1700000000000000000LL); /* dns */
    REFUSED(p.client.port = 65536);
    REFUSED(p.server.ip.len = 5);
    REFUSED(p.msg.observer.len = 15);
    REFUSED(p.dns.id = 65536);
    REFUSED(p.dns.rcode = 70000);
    REFUSED(p.dns.transport = 256);
    REFUSED((p.dns.qname.len = APPREC_NAME_MAX, p.dns.qname.data = big));
    REFUSED((b = (ProtobufCBinaryData){ 3, (uint8_t *)"a\0b" }, p.dns.qname = b));
    REFUSED(p.msg.app_case = MIRRORSCOPE__APP_RECORD__APP__NOT_SET);
    appsample_make(&r, 1, 10, 1700000000000000000LL); /* tls */
    REFUSED(p.tls.cipher = 65536);
    REFUSED((p.tls.sni.len = APPREC_NAME_MAX, p.tls.sni.data = big));
    static ProtobufCBinaryData many[APPREC_ALPN_MAX + 1];
    for (int i = 0; i <= APPREC_ALPN_MAX; i++) many[i] = (ProtobufCBinaryData){ 2, (uint8_t *)"h2" };
    REFUSED((p.tls.n_alpn = APPREC_ALPN_MAX + 1, p.tls.alpn = many));
    many[0].len = 0;
    REFUSED((p.tls.n_alpn = 1, p.tls.alpn = many));
    many[0] = (ProtobufCBinaryData){ 256, big };
    REFUSED((p.tls.n_alpn = 1, p.tls.alpn = many));
    for (int i = 0; i < 16; i++) many[i] = (ProtobufCBinaryData){ 255, big };
    REFUSED((p.tls.n_alpn = 16, p.tls.alpn = many)); /* 4096 bytes packed */
    appsample_make(&r, 2, 10, 1700000000000000000LL); /* http */
    REFUSED((p.http.uri.len = APPREC_URI_MAX, p.http.uri.data = big));
    REFUSED((p.http.method.len = APPREC_METHOD_MAX, p.http.method.data = big));
    REFUSED(p.http.status = 65536);
    /* the longest that fits goes */
    apppb_fill(&p, &r);
    p.http.uri.len = APPREC_URI_MAX - 1;
    p.http.uri.data = big;
    ASSERT_EQ(trip(&p.msg, &back, &why), 0);
    ASSERT_EQ(strlen(back.u.http.uri), APPREC_URI_MAX - 1);
#undef REFUSED
}

int main(void)
{
    test_round_trip();
    test_refused();
    if (test_failures) fprintf(stderr, "%d failures\n", test_failures);
    return test_failures ? 1 : 0;
}
