/* apprec.c - application transaction records as JSON (see apprec.h), and
 * the helpers parsers fill their text fields with. */
#include "apprec.h"

#include "jbuf.h"

#include <string.h>

const char *apprec_kind_name(int kind)
{
    switch (kind) {
    case APPREC_DNS: return "dns";
    case APPREC_TLS: return "tls";
    case APPREC_HTTP: return "http";
    }
    return NULL;
}

void apprec_text(apprec *r, char *dst, size_t dstsize, const void *s, size_t n)
{
    if (n >= dstsize) {
        n = dstsize - 1;
        r->truncated = 1;
    }
    memcpy(dst, s, n);
    dst[n] = 0;
}

void apprec_alpn_add(apprec *r, const void *name, size_t n)
{
    apprec_tls *t = &r->u.tls;
    if (n > 255 || t->alpn_count >= APPREC_ALPN_MAX || 1 + n > sizeof t->alpn - t->alpn_len) {
        r->truncated = 1;
        return;
    }
    t->alpn[t->alpn_len] = (uint8_t)n;
    memcpy(t->alpn + t->alpn_len + 1, name, n);
    t->alpn_len = (uint16_t)(t->alpn_len + 1 + n);
    t->alpn_count++;
}

static void jb_text(jbuf *b, const char *s) { jb_bytes(b, s, strlen(s)); }

static void jb_ep(jbuf *b, const uint8_t ip[16], uint16_t port)
{
    JB_LIT(b, "{\"ip\":");
    jb_ip(b, ip);
    JB_KEY(b, "port");
    jb_u64(b, port);
    JB_LIT(b, "}");
}

/* A number, or null when absent. */
static void jb_opt_u64(jbuf *b, int has, uint64_t v)
{
    if (has) jb_u64(b, v);
    else JB_LIT(b, "null");
}

static void jb_opt_i64(jbuf *b, int has, int64_t v)
{
    if (has) jb_i64(b, v);
    else JB_LIT(b, "null");
}

static void jb_dns(jbuf *b, const apprec_dns *d)
{
    JB_KEY(b, "transport");
    if (d->transport == 6) JB_LIT(b, "\"tcp\"");
    else JB_LIT(b, "\"udp\"");
    JB_KEY(b, "id"), jb_u64(b, d->id);
    JB_KEY(b, "qname"), jb_text(b, d->qname);
    JB_KEY(b, "qtype"), jb_u64(b, d->qtype);
    JB_KEY(b, "rcode"), jb_opt_u64(b, d->has_response, d->rcode);
    JB_KEY(b, "answers"), jb_u64(b, d->answers);
    JB_KEY(b, "response_ns"), jb_opt_i64(b, d->has_response, d->response_ns);
}

static void jb_tls(jbuf *b, const apprec_tls *t)
{
    JB_KEY(b, "record_version"), jb_u64(b, t->record_version);
    JB_KEY(b, "client_version"), jb_u64(b, t->client_version);
    JB_KEY(b, "version"), jb_opt_u64(b, t->has_server_hello, t->version);
    JB_KEY(b, "sni");
    if (t->has_sni) jb_text(b, t->sni);
    else JB_LIT(b, "null");
    JB_KEY(b, "alpn");
    JB_LIT(b, "[");
    for (size_t off = 0, i = 0; i < t->alpn_count && off < t->alpn_len; i++) {
        size_t n = t->alpn[off];
        if (n > (size_t)t->alpn_len - off - 1) break; /* apprec_alpn_add never packs this */
        if (i) JB_LIT(b, ",");
        jb_bytes(b, t->alpn + off + 1, n);
        off += 1 + n;
    }
    JB_LIT(b, "]");
    JB_KEY(b, "cipher"), jb_opt_u64(b, t->has_server_hello, t->cipher);
    JB_KEY(b, "hello_rtt_ns"), jb_opt_i64(b, t->has_server_hello, t->hello_rtt_ns);
}

static void jb_http(jbuf *b, const apprec_http *h)
{
    JB_KEY(b, "method"), jb_text(b, h->method);
    JB_KEY(b, "host");
    if (h->has_host) jb_text(b, h->host);
    else JB_LIT(b, "null");
    JB_KEY(b, "uri"), jb_text(b, h->uri);
    JB_KEY(b, "status"), jb_opt_u64(b, h->has_response, h->status);
    JB_KEY(b, "request_body_bytes"), jb_u64(b, h->request_body_bytes);
    JB_KEY(b, "response_body_bytes"), jb_opt_u64(b, h->has_response, h->response_body_bytes);
    JB_KEY(b, "response_ns"), jb_opt_i64(b, h->has_response, h->response_ns);
}

int apprec_json(const apprec *r, const char *node, char *buf, size_t len)
{
    jbuf b = { buf, len, 0, 0 };
    const char *kind = apprec_kind_name(r->kind);
    if (!kind) return -1;
    JB_LIT(&b, "{\"kind\":\"");
    jb_str(&b, kind);
    JB_LIT(&b, "\"");
    JB_KEY(&b, "flow_id"), jb_u64(&b, r->flow_id);
    JB_KEY(&b, "node"), jb_text(&b, node);
    JB_KEY(&b, "vni"), jb_u64(&b, r->vni);
    JB_KEY(&b, "observer"), jb_ip(&b, r->observer);
    JB_KEY(&b, "client"), jb_ep(&b, r->client_ip, r->client_port);
    JB_KEY(&b, "server"), jb_ep(&b, r->server_ip, r->server_port);
    JB_KEY(&b, "ts_ns"), jb_i64(&b, r->ts_ns);
    switch (r->kind) {
    case APPREC_DNS: jb_dns(&b, &r->u.dns); break;
    case APPREC_TLS: jb_tls(&b, &r->u.tls); break;
    case APPREC_HTTP: jb_http(&b, &r->u.http); break;
    }
    if (r->truncated) JB_KEY(&b, "truncated"), JB_LIT(&b, "true");
    JB_LIT(&b, "}");
    return b.overflow ? -1 : (int)b.used;
}
