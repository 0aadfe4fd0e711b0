/* apppb.c - application records to and from protobuf (see apppb.h).
 *
 * DESIGN: the common fields, then one function per kind each way. The
 * null-able values travel as has_ flags beside the values (the .proto's
 * convention, as Handshake.seen), which is apprec's own representation, so
 * the mapping is one assignment per field and exact both ways; the reader
 * checks every narrowing instead of letting it wrap.
 */
#include "apppb.h"

#include "decode.h"
#include "jbuf.h"

#include <string.h>

/* ---- apprec -> protobuf -------------------------------------------------- */

static void apppb__ip(ProtobufCBinaryData *out, const uint8_t ip[16])
{
    static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
    size_t len = memcmp(ip, mapped, 12) == 0 ? 4 : 16;
    out->data = (uint8_t *)ip + (16 - len); /* only read while packing */
    out->len = len;
}

static ProtobufCBinaryData apppb__text(const char *s)
{
    return (ProtobufCBinaryData){ strlen(s), (uint8_t *)s };
}

static void apppb__fill_dns(Mirrorscope__DnsTransaction *m, const apprec_dns *d)
{
    mirrorscope__dns_transaction__init(m);
    m->transport = d->transport;
    m->id = d->id;
    m->qname = apppb__text(d->qname);
    m->qtype = d->qtype;
    m->has_response = d->has_response != 0;
    m->rcode = d->rcode;
    m->answers = d->answers;
    m->response_ns = d->response_ns;
}

static void apppb__fill_tls(apppb *p, const apprec_tls *t)
{
    Mirrorscope__TlsHandshake *m = &p->tls;
    mirrorscope__tls_handshake__init(m);
    m->record_version = t->record_version;
    m->client_version = t->client_version;
    m->has_server_hello = t->has_server_hello != 0;
    m->version = t->version;
    m->cipher = t->cipher;
    m->hello_rtt_ns = t->hello_rtt_ns;
    m->has_sni = t->has_sni != 0;
    if (t->has_sni) m->sni = apppb__text(t->sni);
    size_t n = 0;
    for (size_t off = 0; n < t->alpn_count && n < APPREC_ALPN_MAX && off < t->alpn_len; n++) {
        size_t len = t->alpn[off];
        if (len > (size_t)t->alpn_len - off - 1) break; /* apprec_alpn_add never packs this */
        p->alpn[n] = (ProtobufCBinaryData){ len, (uint8_t *)t->alpn + off + 1 };
        off += 1 + len;
    }
    m->n_alpn = n;
    m->alpn = p->alpn;
}

static void apppb__fill_http(Mirrorscope__HttpTransaction *m, const apprec_http *h)
{
    mirrorscope__http_transaction__init(m);
    m->method = apppb__text(h->method);
    m->has_host = h->has_host != 0;
    if (h->has_host) m->host = apppb__text(h->host);
    m->uri = apppb__text(h->uri);
    m->has_response = h->has_response != 0;
    m->status = h->status;
    m->request_body_bytes = h->request_body_bytes;
    m->response_body_bytes = h->response_body_bytes;
    m->response_ns = h->response_ns;
}

void apppb_fill(apppb *p, const apprec *r)
{
    Mirrorscope__AppRecord *m = &p->msg;
    mirrorscope__app_record__init(m);
    m->flow_id = r->flow_id;
    m->vni = r->vni;
    apppb__ip(&m->observer, r->observer);
    mirrorscope__endpoint__init(&p->client);
    mirrorscope__endpoint__init(&p->server);
    apppb__ip(&p->client.ip, r->client_ip);
    apppb__ip(&p->server.ip, r->server_ip);
    p->client.port = r->client_port;
    p->server.port = r->server_port;
    m->client = &p->client;
    m->server = &p->server;
    m->ts_ns = r->ts_ns;
    m->truncated = r->truncated != 0;
    switch (r->kind) {
    case APPREC_DNS:
        apppb__fill_dns(&p->dns, &r->u.dns);
        m->app_case = MIRRORSCOPE__APP_RECORD__APP_DNS;
        m->dns = &p->dns;
        break;
    case APPREC_TLS:
        apppb__fill_tls(p, &r->u.tls);
        m->app_case = MIRRORSCOPE__APP_RECORD__APP_TLS;
        m->tls = &p->tls;
        break;
    case APPREC_HTTP:
        apppb__fill_http(&p->http, &r->u.http);
        m->app_case = MIRRORSCOPE__APP_RECORD__APP_HTTP;
        m->http = &p->http;
        break;
    }
}

/* ---- protobuf -> apprec -------------------------------------------------- */

static int apppb__read_ip(uint8_t out[16], ProtobufCBinaryData ip)
{
    memset(out, 0, 16);
    if (ip.len == 4) decode_map4(ip.data, out);
    else if (ip.len == 16) memcpy(out, ip.data, 16);
    else if (ip.len != 0) return -1;
    return 0;
}

/* Text into dst (of size cap), refused when it does not fit or holds a NUL
 * (the C record ends its strings there: the rest would be lost). */
static int apppb__read_text(char *dst, size_t cap, ProtobufCBinaryData b)
{
    if (b.len >= cap || (b.len && memchr(b.data, 0, b.len))) return -1;
    if (b.len) memcpy(dst, b.data, b.len);
    dst[b.len] = 0;
    return 0;
}

static int apppb__u16(uint32_t v, uint16_t *out)
{
    if (v > 65535) return -1;
    *out = (uint16_t)v;
    return 0;
}

static int apppb__read_dns(apprec_dns *d, const Mirrorscope__DnsTransaction *m, const char **why)
{
    if (m->transport > 255) return *why = "dns transport out of range", -1;
    d->transport = (uint8_t)m->transport;
    if (apppb__u16(m->id, &d->id) || apppb__u16(m->qtype, &d->qtype) ||
        apppb__u16(m->rcode, &d->rcode) || apppb__u16(m->answers, &d->answers))
        return *why = "dns id, qtype, rcode or answers beyond 65535", -1;
    if (apppb__read_text(d->qname, sizeof d->qname, m->qname))
        return *why = "dns qname too long or holding a NUL byte", -1;
    d->has_response = m->has_response;
    d->response_ns = m->response_ns;
    return 0;
}

static int apppb__read_tls(apprec *r, const Mirrorscope__TlsHandshake *m, const char **why)
{
    apprec_tls *t = &r->u.tls;
    if (apppb__u16(m->record_version, &t->record_version) ||
        apppb__u16(m->client_version, &t->client_version) || apppb__u16(m->version, &t->version) ||
        apppb__u16(m->cipher, &t->cipher))
        return *why = "tls version or cipher beyond 65535", -1;
    t->has_server_hello = m->has_server_hello;
    t->hello_rtt_ns = m->hello_rtt_ns;
    t->has_sni = m->has_sni;
    if (apppb__read_text(t->sni, sizeof t->sni, m->sni))
        return *why = "tls sni too long or holding a NUL byte", -1;
    if (m->n_alpn > APPREC_ALPN_MAX) return *why = "tls alpn: too many names", -1;
    for (size_t i = 0; i < m->n_alpn; i++) {
        size_t n = m->alpn[i].len;
        if (n == 0 || n > 255 || 1 + n > sizeof t->alpn - t->alpn_len)
            return *why = "tls alpn: a name empty or too long, or the list too long", -1;
        apprec_alpn_add(r, m->alpn[i].data, n);
    }
    return 0;
}

static int apppb__read_http(apprec_http *h, const Mirrorscope__HttpTransaction *m, const char **why)
{
    if (apppb__read_text(h->method, sizeof h->method, m->method) ||
        apppb__read_text(h->host, sizeof h->host, m->host) ||
        apppb__read_text(h->uri, sizeof h->uri, m->uri))
        return *why = "http method, host or uri too long or holding a NUL byte", -1;
    if (apppb__u16(m->status, &h->status)) return *why = "http status beyond 65535", -1;
    h->has_host = m->has_host;
    h->has_response = m->has_response;
    h->request_body_bytes = m->request_body_bytes;
    h->response_body_bytes = m->response_body_bytes;
    h->response_ns = m->response_ns;
    return 0;
}

int apppb_read(apprec *r, const Mirrorscope__AppRecord *m, const char **why)
{
    static const Mirrorscope__Endpoint none = MIRRORSCOPE__ENDPOINT__INIT;
    const Mirrorscope__Endpoint *c = m->client ? m->client : &none;
    const Mirrorscope__Endpoint *s = m->server ? m->server : &none;
    memset(r, 0, offsetof(apprec, u));
    r->flow_id = m->flow_id;
    r->vni = m->vni;
    r->ts_ns = m->ts_ns;
    r->truncated = m->truncated;
    if (apppb__read_ip(r->observer, m->observer) || apppb__read_ip(r->client_ip, c->ip) ||
        apppb__read_ip(r->server_ip, s->ip))
        return *why = "an address that is neither IPv4 nor IPv6", -1;
    if (apppb__u16(c->port, &r->client_port) || apppb__u16(s->port, &r->server_port))
        return *why = "port out of range", -1;
    switch (m->app_case) {
    case MIRRORSCOPE__APP_RECORD__APP_DNS:
        r->kind = APPREC_DNS;
        memset(&r->u.dns, 0, offsetof(apprec_dns, qname) + 1);
        return apppb__read_dns(&r->u.dns, m->dns, why);
    case MIRRORSCOPE__APP_RECORD__APP_TLS:
        r->kind = APPREC_TLS;
        memset(&r->u.tls, 0, offsetof(apprec_tls, sni) + 1);
        r->u.tls.alpn_count = r->u.tls.alpn_len = 0;
        return apppb__read_tls(r, m->tls, why);
    case MIRRORSCOPE__APP_RECORD__APP_HTTP:
        r->kind = APPREC_HTTP;
        memset(&r->u.http, 0, sizeof r->u.http);
        return apppb__read_http(&r->u.http, m->http, why);
    default:
        *why = "no kind (dns, tls or http)";
        return -1;
    }
}

/* ---- aggregates as JSON ----------------------------------------------------- */

static void apppb__jb_pct(jbuf *b, int has, int64_t v)
{
    if (has) jb_i64(b, v);
    else JB_LIT(b, "null");
}

int apppb_aggregate_json(const Mirrorscope__AppAggregate *a, int by_minute, char *buf, size_t len)
{
    jbuf b = { buf, len, 0, 0 };
    uint8_t ip[16];
    memset(ip, 0, sizeof ip);
    if (a->server) apppb__read_ip(ip, a->server->ip); /* 4 or 16 bytes from the coordinator */
    JB_LIT(&b, "{\"kind\":");
    jb_bytes(&b, a->kind ? a->kind : "", a->kind ? strlen(a->kind) : 0);
    if (by_minute) JB_KEY(&b, "minute_ns"), jb_i64(&b, a->minute_ns);
    /* an empty bytes field may have no data pointer at all */
    JB_KEY(&b, "name"), jb_bytes(&b, a->name.len ? (const void *)a->name.data : "", a->name.len);
    JB_KEY(&b, "endpoint");
    jb_bytes(&b, a->endpoint.len ? (const void *)a->endpoint.data : "", a->endpoint.len);
    JB_KEY(&b, "server"), JB_LIT(&b, "{\"ip\":"), jb_ip(&b, ip);
    JB_KEY(&b, "port"), jb_u64(&b, a->server ? a->server->port : 0), JB_LIT(&b, "}");
    JB_KEY(&b, "count"), jb_u64(&b, a->count);
    JB_KEY(&b, "errors"), jb_u64(&b, a->errors);
    JB_KEY(&b, "response_count"), jb_u64(&b, a->response_count);
    JB_KEY(&b, "response_sum_ns"), jb_i64(&b, a->response_sum);
    int has = a->response_count > 0;
    JB_KEY(&b, "p50_ns"), apppb__jb_pct(&b, has, a->p50_ns);
    JB_KEY(&b, "p95_ns"), apppb__jb_pct(&b, has, a->p95_ns);
    JB_KEY(&b, "p99_ns"), apppb__jb_pct(&b, has, a->p99_ns);
    JB_LIT(&b, "}");
    return b.overflow ? -1 : (int)b.used;
}
