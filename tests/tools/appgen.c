/* appgen.c - application records (DNS, TLS, HTTP) on the coordinator's bus,
 * as a recorder publishes them (AppBatch on topic "app", each record mapped
 * by the recorder's own apppb.h), for tests/integration/test_app_coordinator.py.
 *
 *   appgen --to ENDPOINT --records N [--names M] [--node NAME] [--base-ns T]
 *          [--batch B] [--quiet] [--key-file PAIR --server-key PUB]
 *
 * sends N records of tests/tools/appsample.h (every field its own value,
 * nulls, hostile text, each kind's longest text) in batches of B (100), their
 * times from T (default: 10 minutes ago) on, and prints each as its JSON
 * line (apprec_json, the recorder's writer): what the coordinator must give
 * back (--quiet: not printed, for bench/bench_app_ingest.py).
 *
 *   appgen --to ENDPOINT --hostile [--node NAME] [--base-ns T] [keys]
 *
 * sends what no recorder sends: one batch of records each with one value out
 * of range or too long (each must be dropped alone and counted), with good
 * records between them (which must be written), a batch that does not
 * decode and one without a node name (each counted as a bad message).
 * Prints {"bad_records": N, "bad_messages": M} and then the good records'
 * JSON lines.
 */
#include "appsample.h" /* first: the sample records of the unit test */
#include "apppb.h"
#include "bus.h"
#include "mirrorscope.pb-c.h"
#include "timeparse.h"
#include "toolpub.h"
#include "xmalloc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int send_batch(bus_pub_t *pub, const char *node, uint64_t seq, Mirrorscope__AppRecord **recs,
                      size_t n)
{
    Mirrorscope__AppBatch b;
    mirrorscope__app_batch__init(&b);
    b.node = (char *)node;
    b.start_ns = 1;
    b.seq = seq;
    b.n_records = n;
    b.records = recs;
    size_t len = mirrorscope__app_batch__get_packed_size(&b);
    uint8_t *buf = xmalloc(len + 1);
    mirrorscope__app_batch__pack(&b, buf);
    int rc;
    while ((rc = bus_pub_send(pub, "app", buf, len)) == -EAGAIN) usleep(200);
    free(buf);
    if (rc < 0) fprintf(stderr, "appgen: send failed: %s\n", strerror(-rc));
    return rc;
}

static void print_rec(const apprec *r, const char *node)
{
    static char line[APPREC_JSON_MAX];
    int n = apprec_json(r, node, line, sizeof line);
    if (n > 0) printf("%.*s\n", n, line);
}

/* N sample records in batches of B. */
static int send_records(bus_pub_t *pub, const char *node, unsigned n, unsigned names, int64_t base,
                        unsigned B, int quiet)
{
    apprec *recs = xcalloc(B, sizeof *recs);
    apppb *pbs = xcalloc(B, sizeof *pbs);
    Mirrorscope__AppRecord **ptrs = xcalloc(B, sizeof *ptrs);
    uint64_t seq = 0;
    for (unsigned k = 0; k < n;) {
        size_t m = 0;
        for (; m < B && k < n; m++, k++) {
            appsample_make(&recs[m], k, names, base);
            apppb_fill(&pbs[m], &recs[m]);
            ptrs[m] = &pbs[m].msg;
        }
        if (send_batch(pub, node, ++seq, ptrs, m) < 0) return 1;
        for (size_t i = 0; i < m && !quiet; i++) print_rec(&recs[i], node);
    }
    free(ptrs);
    free(pbs);
    free(recs);
    return 0;
}

/* One hostile change to a good record's message. */
typedef void (*spoil_fn)(apppb *p);
static uint8_t big[8192];
static ProtobufCBinaryData many[100];
static void sp_port(apppb *p) { p->client.port = 70000; }
static void sp_ip(apppb *p) { p->server.ip.len = 5; }
static void sp_qname(apppb *p) { p->dns.qname = (ProtobufCBinaryData){ 2000, big }; }
static void sp_nul(apppb *p) { p->dns.qname = (ProtobufCBinaryData){ 5, (uint8_t *)"a\0b.c" }; }
static void sp_transport(apppb *p) { p->dns.transport = 99; }
static void sp_rcode(apppb *p) { p->dns.has_response = 1, p->dns.rcode = 5000; }
static void sp_time(apppb *p) { p->msg.ts_ns = -5; }
static void sp_kind(apppb *p) { p->msg.app_case = MIRRORSCOPE__APP_RECORD__APP__NOT_SET; }
static void sp_vni(apppb *p) { p->msg.vni = 1u << 25; }
static void sp_sni(apppb *p) { p->tls.has_sni = 1, p->tls.sni = (ProtobufCBinaryData){ 1024, big }; }
static void sp_alpn(apppb *p) { p->tls.n_alpn = 100, p->tls.alpn = many; }
static void sp_rtt(apppb *p) { p->tls.has_server_hello = 1, p->tls.hello_rtt_ns = INT64_MAX; }
static void sp_uri(apppb *p) { p->http.uri = (ProtobufCBinaryData){ 4096, big }; }
static void sp_status(apppb *p) { p->http.has_response = 1, p->http.status = 42; }
static void sp_body(apppb *p) { p->http.request_body_bytes = UINT64_MAX; }

static int send_hostile(bus_pub_t *pub, const char *node, int64_t base)
{
    /* the kind each spoiler needs: 1 dns, 2 tls, 3 http */
    static const struct { int kind; spoil_fn fn; } sp[] = {
        { 1, sp_port }, { 1, sp_ip }, { 1, sp_qname }, { 1, sp_nul }, { 1, sp_transport },
        { 1, sp_rcode }, { 1, sp_time }, { 1, sp_kind }, { 2, sp_vni }, { 2, sp_sni },
        { 2, sp_alpn }, { 2, sp_rtt }, { 3, sp_uri }, { 3, sp_status }, { 3, sp_body },
    };
    enum { NS = sizeof sp / sizeof sp[0] };
    memset(big, 'b', sizeof big);
    for (int i = 0; i < 100; i++) many[i] = (ProtobufCBinaryData){ 2, (uint8_t *)"h2" };
    apprec *recs = xcalloc(2 * NS, sizeof *recs);
    apppb *pbs = xcalloc(2 * NS, sizeof *pbs);
    Mirrorscope__AppRecord *ptrs[2 * NS];
    /* good and bad in turn: the good ones from 1000 on (kinds in turn from
     * k % 3), each bad one from a good record of its spoiler's kind */
    for (unsigned i = 0; i < NS; i++) {
        unsigned good = 1000 + 2 * i, bad = 3000 + 3 * i + (unsigned)(sp[i].kind - 1);
        appsample_make(&recs[2 * i], good, 5, base);
        appsample_make(&recs[2 * i + 1], bad, 5, base);
        apppb_fill(&pbs[2 * i], &recs[2 * i]);
        apppb_fill(&pbs[2 * i + 1], &recs[2 * i + 1]);
        sp[i].fn(&pbs[2 * i + 1]);
        ptrs[2 * i] = &pbs[2 * i].msg;
        ptrs[2 * i + 1] = &pbs[2 * i + 1].msg;
    }
    if (send_batch(pub, node, 1, ptrs, 2 * NS) < 0) return 1;
    static const uint8_t garbage[] = { 0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 1, 2, 3 };
    int rc;
    while ((rc = bus_pub_send(pub, "app", garbage, sizeof garbage)) == -EAGAIN) usleep(200);
    if (rc < 0 || send_batch(pub, "", 2, ptrs, 2) < 0) return 1;
    printf("{\"bad_records\": %d, \"bad_messages\": 2}\n", (int)NS);
    for (unsigned i = 0; i < NS; i++) print_rec(&recs[2 * i], node);
    free(pbs);
    free(recs);
    return 0;
}

int main(int argc, char **argv)
{
    const char *to = NULL, *node = "appgen", *key_file = NULL, *server_key = NULL;
    long long records = 0, names = 4, batch = 100;
    int hostile = 0, quiet = 0;
    int64_t base = timeparse_now_ns() - 600LL * 1000000000LL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--hostile")) hostile = 1;
        else if (!strcmp(argv[i], "--quiet")) quiet = 1;
        else if (i + 1 >= argc) break;
        else if (!strcmp(argv[i], "--to")) to = argv[++i];
        else if (!strcmp(argv[i], "--node")) node = argv[++i];
        else if (!strcmp(argv[i], "--records")) records = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--names")) names = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--batch")) batch = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--base-ns")) base = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--key-file")) key_file = argv[++i];
        else if (!strcmp(argv[i], "--server-key")) server_key = argv[++i];
        else {
            fprintf(stderr, "appgen: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (!to || (!hostile && (records <= 0 || records > 10000000)) || names < 1 || batch < 1 ||
        batch > 500) {
        fprintf(stderr, "usage: appgen --to ENDPOINT --records N [--names M] [--node NAME] "
                        "[--base-ns T] [--batch B (<= 500)] [--quiet] [--key-file PAIR --server-key PUB]\n"
                        "       appgen --to ENDPOINT --hostile [--node NAME] [keys]\n");
        return 2;
    }
    int open_rc;
    bus_pub_t *pub = toolpub_open("appgen", to, key_file, server_key, &open_rc);
    if (!pub) return open_rc;
    int rc = hostile ? send_hostile(pub, node, base)
                     : send_records(pub, node, (unsigned)records, (unsigned)names, base,
                                    (unsigned)batch, quiet);
    fflush(stdout);
    bus_pub_close(pub, 60000);
    return rc;
}
