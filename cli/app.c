/* app.c - `mscope dns|tls|http`: application records from the coordinator
 * (one RPC, QueryApp), as a table or as the recorder's own JSON lines
 * (each record read back into the C record by apppb.h and printed by
 * apprec_json, so the fields are --app-json's), or with --top their
 * per-minute aggregates per server name and endpoint. */
#include "apppb.h"
#include "cli.h"
#include "timeparse.h"
#include "xmalloc.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* Text from the network for a terminal: printable ASCII as it is, every
 * other byte as \xNN (a name may hold escape sequences). */
static void app__safe(const void *p, size_t n, char *out, size_t cap)
{
    const uint8_t *b = p;
    size_t o = 0;
    for (size_t i = 0; i < n && o + 5 < cap; i++) {
        if (b[i] >= 0x20 && b[i] < 0x7f && b[i] != '\\') out[o++] = (char)b[i];
        else o += (size_t)snprintf(out + o, cap - o, "\\x%02x", b[i]);
    }
    out[o] = 0;
}

static void app__ep(const uint8_t ip[16], uint16_t port, char *out, size_t cap)
{
    static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
    char a[64];
    if (!memcmp(ip, mapped, 12)) {
        inet_ntop(AF_INET, ip + 12, a, sizeof a);
        snprintf(out, cap, "%s:%u", a, port);
    } else {
        inet_ntop(AF_INET6, ip, a, sizeof a);
        snprintf(out, cap, "[%s]:%u", a, port);
    }
}

static void app__ms(int has, int64_t ns, char *out, size_t cap)
{
    if (has) snprintf(out, cap, "%.3f", (double)ns / 1e6);
    else snprintf(out, cap, "-");
}

static void app__header(int kind)
{
    const char *common = "%-23s %-14s %-26s %-26s ";
    printf(common, "TIME", "NODE", "CLIENT", "SERVER");
    if (kind == APPREC_DNS) printf("%-4s %5s %5s %5s %4s %10s  %s\n", "PROT", "ID", "QTYPE", "RCODE", "ANS", "RESP ms", "QNAME");
    else if (kind == APPREC_TLS) printf("%-6s %-6s %10s  %-32s %s\n", "VER", "CIPHER", "HELLO ms", "SNI", "ALPN");
    else printf("%-7s %6s %10s %10s %10s  %-24s %s\n", "METHOD", "STATUS", "REQ B", "RESP B", "RESP ms", "HOST", "URI");
}

static void app__line(const apprec *r, const char *node)
{
    static char a[APPREC_URI_MAX * 4 + 8], b[APPREC_NAME_MAX * 4 + 8];
    char t[40], c[80], s[80], ms[32];
    char full[64];
    timeparse_format(r->ts_ns, full, sizeof full);
    snprintf(t, sizeof t, "%.23s", full);
    app__ep(r->client_ip, r->client_port, c, sizeof c);
    app__ep(r->server_ip, r->server_port, s, sizeof s);
    app__safe(node, strlen(node), b, sizeof b);
    printf("%-23s %-14.14s %-26s %-26s ", t, b, c, s);
    if (r->kind == APPREC_DNS) {
        const apprec_dns *d = &r->u.dns;
        char rc[16] = "-";
        if (d->has_response) snprintf(rc, sizeof rc, "%u", d->rcode);
        app__ms(d->has_response, d->response_ns, ms, sizeof ms);
        app__safe(d->qname, strlen(d->qname), b, sizeof b);
        printf("%-4s %5u %5u %5s %4u %10s  %s\n", d->transport == 6 ? "tcp" : "udp", d->id, d->qtype,
               rc, d->answers, ms, b);
    } else if (r->kind == APPREC_TLS) {
        const apprec_tls *x = &r->u.tls;
        char v[16] = "-", ci[16] = "-";
        if (x->has_server_hello) {
            snprintf(v, sizeof v, "0x%04x", x->version);
            snprintf(ci, sizeof ci, "0x%04x", x->cipher);
        }
        app__ms(x->has_server_hello, x->hello_rtt_ns, ms, sizeof ms);
        if (x->has_sni) app__safe(x->sni, strlen(x->sni), b, sizeof b);
        else snprintf(b, sizeof b, "-");
        /* the ALPN names, comma-separated */
        size_t o = 0;
        a[0] = 0;
        for (size_t off = 0; off < x->alpn_len && o + 8 < sizeof a; off += 1 + x->alpn[off]) {
            if (o) a[o++] = ',';
            app__safe(x->alpn + off + 1, x->alpn[off], a + o, sizeof a - o);
            o += strlen(a + o);
        }
        printf("%-6s %-6s %10s  %-32s %s\n", v, ci, ms, b, o ? a : "-");
    } else {
        const apprec_http *h = &r->u.http;
        char st[16] = "-", rb[24] = "-", m[APPREC_METHOD_MAX * 4];
        if (h->has_response) {
            snprintf(st, sizeof st, "%u", h->status);
            snprintf(rb, sizeof rb, "%" PRIu64, h->response_body_bytes);
        }
        app__ms(h->has_response, h->response_ns, ms, sizeof ms);
        app__safe(h->method, strlen(h->method), m, sizeof m);
        if (h->has_host) app__safe(h->host, strlen(h->host), b, sizeof b);
        else snprintf(b, sizeof b, "-");
        app__safe(h->uri, strlen(h->uri), a, sizeof a);
        printf("%-7s %6s %10" PRIu64 " %10s %10s  %-24s %s\n", m, st, h->request_body_bytes, rb, ms, b, a);
    }
}

static void app__print_records(const Mirrorscope__Response *resp, int kind, int json)
{
    static apprec r;
    static char line[APPREC_JSON_MAX];
    if (!json) app__header(kind);
    for (size_t i = 0; i < resp->n_app_rows; i++) {
        const char *why = NULL;
        if (apppb_read(&r, resp->app_rows[i]->record, &why) < 0) {
            fprintf(stderr, "mscope: a record the coordinator sent cannot be read: %s\n", why);
            continue;
        }
        if (!json) {
            app__line(&r, resp->app_rows[i]->node);
            continue;
        }
        int n = apprec_json(&r, resp->app_rows[i]->node, line, sizeof line);
        if (n > 0) printf("%.*s\n", n, line);
    }
}

static void app__print_top(const Mirrorscope__Response *resp, int by_minute, int json)
{
    static char line[APPPB_AGG_JSON_MAX], name[APPREC_NAME_MAX * 4 + 8], ep[APPREC_URI_MAX * 4 + 8];
    if (!json)
        printf("%s%-32s %-24s %-26s %8s %7s %10s %10s %10s\n", by_minute ? "MINUTE            " : "",
               "NAME", "ENDPOINT", "SERVER", "COUNT", "ERRORS", "P50 ms", "P95 ms", "P99 ms");
    for (size_t i = 0; i < resp->n_app_aggregates; i++) {
        const Mirrorscope__AppAggregate *a = resp->app_aggregates[i];
        if (json) {
            int n = apppb_aggregate_json(a, by_minute, line, sizeof line);
            if (n > 0) printf("%.*s\n", n, line);
            continue;
        }
        uint8_t ip[16] = { 0 };
        if (a->server && a->server->ip.len == 4) {
            ip[10] = ip[11] = 0xff;
            memcpy(ip + 12, a->server->ip.data, 4);
        } else if (a->server && a->server->ip.len == 16) {
            memcpy(ip, a->server->ip.data, 16);
        }
        char srv[80], p50[24], p95[24], p99[24], t[64] = "";
        app__ep(ip, (uint16_t)(a->server ? a->server->port : 0), srv, sizeof srv);
        app__safe(a->name.data, a->name.len, name, sizeof name);
        app__safe(a->endpoint.data, a->endpoint.len, ep, sizeof ep);
        app__ms(a->response_count > 0, a->p50_ns, p50, sizeof p50);
        app__ms(a->response_count > 0, a->p95_ns, p95, sizeof p95);
        app__ms(a->response_count > 0, a->p99_ns, p99, sizeof p99);
        if (by_minute) {
            char full[64];
            timeparse_format(a->minute_ns, full, sizeof full);
            snprintf(t, sizeof t, "%.16s  ", full);
        }
        printf("%s%-32s %-24s %-26s %8" PRIu64 " %7" PRIu64 " %10s %10s %10s\n", t,
               name[0] ? name : "-", ep[0] ? ep : "-", srv, a->count, a->errors, p50, p95, p99);
    }
}

int cli_app(const cli_settings *s, const bus_sec *sec, const char *token, const char *kind,
            int64_t from_ns, int64_t to_ns)
{
    Mirrorscope__QueryApp q;
    mirrorscope__query_app__init(&q);
    q.kind = (char *)kind;
    q.from_ns = from_ns;
    q.to_ns = to_ns;
    q.node = s->node;
    q.client = s->client;
    q.port = (uint32_t)s->port;
    q.name = s->name;
    q.uri = s->uri;
    q.code = s->code;
    q.errors = s->errors;
    q.limit = (uint32_t)s->limit;
    q.top = s->top;
    q.by_minute = s->by_minute;
    char server[128] = "";
    if (s->server && cli_parse_server(s->server, server, sizeof server, &q.server_port) < 0) return 2;
    q.server = server;
    if (s->by_minute && !s->top) {
        fprintf(stderr, "mscope: --by-minute goes with --top\n");
        return 2;
    }
    Mirrorscope__Request req;
    mirrorscope__request__init(&req);
    req.id = (uint64_t)timeparse_now_ns();
    req.token = (char *)token;
    req.body_case = MIRRORSCOPE__REQUEST__BODY_QUERY_APP;
    req.query_app = &q;
    Mirrorscope__Response *resp;
    int rc = cli_call(s, sec, &req, &resp);
    if (rc) return rc;
    int k = !strcmp(kind, "dns") ? APPREC_DNS : !strcmp(kind, "tls") ? APPREC_TLS : APPREC_HTTP;
    if (s->top) app__print_top(resp, s->by_minute, s->json);
    else app__print_records(resp, k, s->json);
    mirrorscope__response__free_unpacked(resp, NULL);
    return 0;
}
