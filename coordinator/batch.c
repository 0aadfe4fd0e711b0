/* batch.c - flow and application records into ready-to-send COPY data (see
 * batch.h).
 *
 * DESIGN: records are encoded once, as they arrive on the bus, into the
 * bytes PostgreSQL takes: binary COPY tuples for `flows` and `flows_live`
 * (no text conversion on the server: ~1.4x faster than text COPY), text COPY
 * for the keys of finals that replace an interim row, and per-minute
 * aggregates summed in an open-addressing table and rendered as text at
 * seal time. A sealed batch is what a writer sends, and - with a one-line
 * header - what the spool keeps. Columns follow schema.h's table, and the
 * tuple encoder is expanded from the same field table (flowrec_fields.h);
 * application records follow schema.h's SCHEMA_APP_COLS, and their minutes
 * are summed the same way with latency.h's histograms.
 */
#include "batch.h"

#include "latency.h"
#include "schema.h"
#include "xmalloc.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* A growing byte buffer. */
typedef struct batch_buf {
    char *buf;
    size_t len, cap;
} batch_buf;

typedef struct batch_aggs batch_aggs;
typedef struct batch_appaggs batch_appaggs;

struct batch {
    batch_buf fin, keys, live, mins;
    batch_buf app, appmins; /* app_records tuples (binary), app_minutes rows (text) */
    batch_aggs *agg;
    batch_appaggs *appagg;
    int32_t *days;          /* UTC days (partitions) the finals fall in */
    size_t ndays, capdays;
    int32_t *appdays;       /* ... and the application records */
    size_t nappdays, capappdays;
    uint64_t apps;
    char id[64];            /* ledger id, set by batch_seal() */
    uint64_t records, finals, interims;
    int sealed;
};

batch_t *batch_new(void) { return xcalloc(1, sizeof(batch_t)); }

uint64_t batch_records(const batch_t *b) { return b->records; }
uint64_t batch_flow_records(const batch_t *b) { return b->records - b->apps; }
uint64_t batch_app_records(const batch_t *b) { return b->apps; }

void batch_view_of(const batch_t *b, batch_view *v)
{
    *v = (batch_view){
        .id = b->id, .records = b->records, .finals = b->finals, .interims = b->interims,
        .fin = b->fin.buf, .fin_len = b->fin.len, .keys = b->keys.buf, .keys_len = b->keys.len,
        .live = b->live.buf, .live_len = b->live.len, .mins = b->mins.buf,
        .mins_len = b->mins.len, .days = b->days, .ndays = b->ndays, .apps = b->apps,
        .app = b->app.buf, .app_len = b->app.len, .appmins = b->appmins.buf,
        .appmins_len = b->appmins.len, .appdays = b->appdays, .nappdays = b->nappdays,
    };
}

/* ---- COPY text ----------------------------------------------------------- */

static void batch__grow(batch_buf *t, size_t n)
{
    t->cap = (t->len + n + 1) * 2;
    t->buf = xrealloc(t->buf, t->cap);
}

/* Inlined: most calls append a constant 1-8 bytes, which the compiler then
 * copies without a call (a quarter of the coordinator's CPU went here). */
static inline __attribute__((always_inline)) void batch__put(batch_buf *t, const char *s, size_t n)
{
    if (__builtin_expect(t->len + n + 1 > t->cap, 0)) batch__grow(t, n);
    memcpy(t->buf + t->len, s, n);
    t->len += n;
}

static void batch__text(batch_buf *t, const char *s)
{
    for (; *s; s++) {
        char esc[2] = { '\\', 0 };
        switch (*s) {
        case '\\': esc[1] = '\\'; break;
        case '\t': esc[1] = 't'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        default: batch__put(t, s, 1); continue;
        }
        batch__put(t, esc, 2);
    }
}

/* Integers by hand: this runs ~70 times per record at 100 000 records/s. */
static void batch__i64(batch_buf *t, int64_t v, int sep)
{
    char tmp[24], *p = tmp + sizeof tmp;
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    if (sep) *--p = '\t';
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0) *--p = '-';
    batch__put(t, p, (size_t)(tmp + sizeof tmp - p));
}

static void batch__null(batch_buf *t) { batch__put(t, "\\N\t", 3); }

static int64_t batch__floordiv(int64_t a, int64_t b) { return a / b - (a % b < 0); }

/* A timestamptz in COPY text: UTC, microseconds (truncated). */
static void batch__ts(batch_buf *t, int64_t ns, int sep)
{
    int64_t secs = batch__floordiv(ns, 1000000000LL);
    int64_t us = (ns - secs * 1000000000LL) / 1000;
    time_t tt = (time_t)secs;
    struct tm tm;
    gmtime_r(&tt, &tm);
    char s[48];
    int n = snprintf(s, sizeof s, "%04d-%02d-%02d %02d:%02d:%02d.%06d+00%s", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)us,
                     sep ? "\t" : "");
    batch__put(t, s, (size_t)n);
}

/* ---- binary COPY (records into flows and flows_live) ---------------------------------
 * PostgreSQL parses binary COPY fields without text conversion: measured
 * here, the flows COPY runs ~1.4x faster than in text. Each tuple is a field
 * count and length-prefixed fields in network order; the file header and
 * trailer are added when the batch is sent (batch__copy_binary). */

static void batch__b16(batch_buf *t, uint16_t v)
{
    uint8_t b[2] = { (uint8_t)(v >> 8), (uint8_t)v };
    batch__put(t, (const char *)b, 2);
}

static void batch__b32(batch_buf *t, uint32_t v)
{
    uint8_t b[4] = { (uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v };
    batch__put(t, (const char *)b, 4);
}

static void batch__b64(batch_buf *t, uint64_t v)
{
    batch__b32(t, (uint32_t)(v >> 32));
    batch__b32(t, (uint32_t)v);
}

static void batch__bint8(batch_buf *t, int64_t v) { batch__b32(t, 8), batch__b64(t, (uint64_t)v); }
static void batch__bint4(batch_buf *t, int64_t v) { batch__b32(t, 4), batch__b32(t, (uint32_t)v); }
static void batch__bint2(batch_buf *t, int64_t v) { batch__b32(t, 2), batch__b16(t, (uint16_t)v); }

static void batch__btext(batch_buf *t, const char *s)
{
    size_t n = strlen(s);
    batch__b32(t, (uint32_t)n);
    batch__put(t, s, n);
}

/* inet: family (2 = IPv4, 3 = IPv6 in PostgreSQL's numbering), bits,
 * is_cidr, length, address. */
static void batch__binet(batch_buf *t, ProtobufCBinaryData ip)
{
    if (ip.len != 4 && ip.len != 16) {
        batch__b32(t, 0xffffffffu); /* NULL */
        return;
    }
    uint8_t h[4] = { ip.len == 4 ? 2 : 3, (uint8_t)(ip.len * 8), 0, (uint8_t)ip.len };
    batch__b32(t, 4 + (uint32_t)ip.len);
    batch__put(t, (const char *)h, 4);
    batch__put(t, (const char *)ip.data, ip.len);
}

/* A value by its kind (flowrec_fields.h), as its column's SQL type. */
#define BATCH__B_ID(t, v) batch__bint8((t), (int64_t)(v))
#define BATCH__B_U64(t, v) batch__bint8((t), (int64_t)(v))
#define BATCH__B_I64(t, v) batch__bint8((t), (v))
#define BATCH__B_U32B(t, v) batch__bint8((t), (v))
#define BATCH__B_U32(t, v) batch__bint4((t), (v))
#define BATCH__B_U16(t, v) batch__bint4((t), (v))
#define BATCH__B_U8(t, v) batch__bint2((t), (v))
#define BATCH__B_IP(t, v) batch__binet((t), (v))
#define BATCH__B_TEXT8(t, v) batch__btext((t), (v) ? (v) : "")
#define BATCH__B_TEXT24(t, v) batch__btext((t), (v) ? (v) : "")
#define BATCH__B_BOOL(t, v) batch__bbool((t), (v))

static void batch__bbool(batch_buf *t, int v)
{
    uint8_t b = v ? 1 : 0;
    batch__b32(t, 1);
    batch__put(t, (const char *)&b, 1);
}

/* An absent sub-message is all zero (an absent endpoint's address NULL). */
#define BATCH__STAT_FIELD(c, kind, name, num) BATCH__B_##kind(t, s->name);

static void batch__bstat(batch_buf *t, const Mirrorscope__Stat *s)
{
    static const Mirrorscope__Stat zero = MIRRORSCOPE__STAT__INIT;
    if (!s) s = &zero;
    FLOWREC_STAT_FIELDS(BATCH__STAT_FIELD, _)
}

#define BATCH__DIR_FIELD(c, kind, name, num) BATCH__B_##kind(t, d->name);
#define BATCH__DIR_STAT(c, member, name, sql, num) batch__bstat(t, d->name);

static void batch__bdir(batch_buf *t, const Mirrorscope__Direction *d)
{
    static const Mirrorscope__Direction zero = MIRRORSCOPE__DIRECTION__INIT;
    if (!d) d = &zero;
    FLOWREC_DIR_FIELDS(BATCH__DIR_FIELD, BATCH__DIR_STAT, _)
}

#define BATCH__HS_FIELD(c, kind, member, pbname, bit, num) BATCH__B_##kind(t, h->pbname);

static void batch__bhs(batch_buf *t, const Mirrorscope__Handshake *h)
{
    static const Mirrorscope__Handshake zero = MIRRORSCOPE__HANDSHAKE__INIT;
    if (!h) h = &zero;
    FLOWREC_HS_FIELDS(BATCH__HS_FIELD, FLOWREC_NOTHING, _)
}

#define BATCH__F(c, kind, name, num) BATCH__B_##kind(t, r->name);
#define BATCH__EP(e, kind, leaf, num) BATCH__B_##kind(t, e->leaf);
#define BATCH__E(c, name, num)                                                                 \
    {                                                                                          \
        const Mirrorscope__Endpoint *e_##name = r->name ? r->name : &zep;                      \
        FLOWREC_EP_FIELDS(BATCH__EP, e_##name)                                                 \
    }
#define BATCH__D(c, name, num) batch__bdir(t, r->name);
#define BATCH__H(c, name, num) batch__bhs(t, r->name);
#define BATCH__S(c, member, name, sql, num) batch__bstat(t, r->name);

/* One record as a binary COPY tuple: schema_cols (node, then the field
 * table's columns) then first_ts. */
static void batch__brow(batch_buf *t, const char *node, const Mirrorscope__FlowRecord *r)
{
    static const Mirrorscope__Endpoint zep = MIRRORSCOPE__ENDPOINT__INIT;
    batch__b16(t, (uint16_t)(SCHEMA_NCOLS + 1));
    batch__btext(t, node);
    FLOWREC_FIELDS(BATCH__F, BATCH__E, BATCH__D, BATCH__H, BATCH__S, _)
    /* timestamptz: microseconds since 2000-01-01 UTC, truncated like batch__ts() */
    batch__bint8(t, batch__floordiv(r->first_ns, 1000) - 946684800000000LL);
}

/* ---- per-minute aggregates, summed in memory --------------------------------
 * Per (minute of first packet, node, server endpoint, protocol) of each final
 * record with a server address: what flow_minutes holds (see migration v2). */

#define SCHEMA_RTT_BUCKETS 16 /* log2 buckets of a flow's mean ACK RTT in microseconds */

typedef struct batch_minute {
    int64_t minute_ns;
    uint32_t node;       /* index into batch_aggs.nodes */
    uint8_t ip[16], iplen;
    uint8_t proto;
    uint16_t port;
    int used, has_rtt, has_app;
    int64_t flows, packets, bytes, retrans, rtt_sum, rtt_count, rtt_min, rtt_max, app_sum,
        app_count, app_min, app_max, hist[SCHEMA_RTT_BUCKETS];
} batch_minute;

struct batch_aggs {
    batch_minute *slot;
    size_t cap, n;       /* open addressing, cap a power of two */
    char **nodes;
    size_t nnodes, capnodes;
};

static uint64_t batch__hash(const batch_minute *k)
{
    uint64_t h = (uint64_t)k->minute_ns * 0x9e3779b97f4a7c15ULL ^ k->node ^ ((uint64_t)k->port << 32) ^
                 ((uint64_t)k->proto << 48);
    for (int i = 0; i < k->iplen; i++) h = (h ^ k->ip[i]) * 0x100000001b3ULL;
    return h ^ (h >> 31);
}

static int batch__same(const batch_minute *a, const batch_minute *b)
{
    return a->minute_ns == b->minute_ns && a->node == b->node && a->port == b->port &&
           a->proto == b->proto && a->iplen == b->iplen && !memcmp(a->ip, b->ip, a->iplen);
}

static batch_minute *batch__slot(batch_aggs *g, const batch_minute *k)
{
    if ((g->n + 1) * 2 > g->cap) { /* grow: keep the load under one half */
        batch_minute *old = g->slot;
        size_t oldcap = g->cap;
        g->cap = g->cap ? g->cap * 2 : 1024;
        g->slot = xcalloc(g->cap, sizeof *g->slot);
        for (size_t i = 0; i < oldcap; i++) {
            if (!old[i].used) continue;
            size_t j = batch__hash(&old[i]) & (g->cap - 1);
            while (g->slot[j].used) j = (j + 1) & (g->cap - 1);
            g->slot[j] = old[i];
        }
        free(old);
    }
    size_t j = batch__hash(k) & (g->cap - 1);
    while (g->slot[j].used && !batch__same(&g->slot[j], k)) j = (j + 1) & (g->cap - 1);
    if (!g->slot[j].used) {
        g->slot[j] = *k;
        g->slot[j].used = 1;
        g->n++;
    }
    return &g->slot[j];
}

static uint32_t batch__node_index(batch_aggs *g, const char *node)
{
    for (size_t i = 0; i < g->nnodes; i++)
        if (!strcmp(g->nodes[i], node)) return (uint32_t)i;
    xgrow((void **)&g->nodes, &g->capnodes, g->nnodes + 1, sizeof *g->nodes);
    g->nodes[g->nnodes] = xstrdup(node);
    return (uint32_t)g->nnodes++;
}

/* *acc += v, saturating. */
static void batch__sadd(int64_t *acc, int64_t v)
{
    if (__builtin_add_overflow(*acc, v, acc)) *acc = v < 0 ? INT64_MIN : INT64_MAX;
}

static void batch__aggregate(batch_aggs *g, const char *node, const Mirrorscope__FlowRecord *r)
{
    ProtobufCBinaryData ip = r->server ? r->server->ip : (ProtobufCBinaryData){ 0, NULL };
    if (ip.len != 4 && ip.len != 16) return;
    batch_minute k;
    memset(&k, 0, sizeof k);
    k.minute_ns = batch__floordiv(r->first_ns, 60000000000LL) * 60000000000LL;
    k.node = batch__node_index(g, node);
    memcpy(k.ip, ip.data, ip.len);
    k.iplen = (uint8_t)ip.len;
    k.port = (uint16_t)r->server->port;
    k.proto = (uint8_t)r->proto;
    batch_minute *m = batch__slot(g, &k);
    static const Mirrorscope__Direction zd = MIRRORSCOPE__DIRECTION__INIT;
    static const Mirrorscope__Stat zs = MIRRORSCOPE__STAT__INIT;
    const Mirrorscope__Direction *c = r->c2s ? r->c2s : &zd, *s = r->s2c ? r->s2c : &zd;
    const Mirrorscope__Stat *cr = c->rtt_ns ? c->rtt_ns : &zs, *sr = s->rtt_ns ? s->rtt_ns : &zs;
    const Mirrorscope__Stat *a = r->app_response_ns ? r->app_response_ns : &zs;
    /* The records passed wire_record_ok(): each value fits with room, but a
     * minute's sums over many records could still overflow: they stop at
     * INT64_MAX instead. */
    m->flows++;
    batch__sadd(&m->packets, (int64_t)(c->packets + s->packets));
    batch__sadd(&m->bytes, (int64_t)(c->ip_bytes + s->ip_bytes));
    batch__sadd(&m->retrans, (int64_t)c->retransmissions + s->retransmissions);
    int64_t rsum = cr->sum + sr->sum, rcnt = (int64_t)(cr->count + sr->count);
    batch__sadd(&m->rtt_sum, rsum);
    batch__sadd(&m->rtt_count, rcnt);
    if (rcnt > 0) {
        /* the least non-zero direction minimum; the greatest maximum */
        int64_t lo = cr->min && sr->min ? (cr->min < sr->min ? cr->min : sr->min)
                                        : (cr->min ? cr->min : sr->min);
        int64_t hi = cr->max > sr->max ? cr->max : sr->max;
        if (lo && (!m->has_rtt || lo < m->rtt_min || !m->rtt_min)) m->rtt_min = lo;
        if (!m->has_rtt || hi > m->rtt_max) m->rtt_max = hi;
        m->has_rtt = 1;
        int b = (int)floor(log2((double)(rsum / rcnt) / 1000.0 + 1));
        m->hist[b < 0 ? 0 : b >= SCHEMA_RTT_BUCKETS ? SCHEMA_RTT_BUCKETS - 1 : b]++;
    }
    batch__sadd(&m->app_sum, a->sum);
    batch__sadd(&m->app_count, (int64_t)a->count);
    if (a->count) {
        if (!m->has_app || a->min < m->app_min) m->app_min = a->min;
        if (!m->has_app || a->max > m->app_max) m->app_max = a->max;
        m->has_app = 1;
    }
}

/* ---- application records: app_records tuples and app_minutes ------------------
 * Each record is one binary COPY tuple in schema.h's SCHEMA_APP_COLS order
 * (a column added there and not here fails to compile: -Wswitch), and adds
 * into its minute's row, keyed as app_minutes is (schema v10). */

static void batch__bnull(batch_buf *t) { batch__b32(t, 0xffffffffu); }

static void batch__bip16(batch_buf *t, const uint8_t ip[16])
{
    static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
    int v4 = !memcmp(ip, mapped, 12);
    batch__binet(t, (ProtobufCBinaryData){ v4 ? 4 : 16, (uint8_t *)ip + (v4 ? 12 : 0) });
}

/* A value or NULL, by its column's SQL type. */
static void batch__bopt4(batch_buf *t, int has, int64_t v) { has ? batch__bint4(t, v) : batch__bnull(t); }
static void batch__bopt8(batch_buf *t, int has, int64_t v) { has ? batch__bint8(t, v) : batch__bnull(t); }
static void batch__bytes(batch_buf *t, int has, const void *p, size_t n)
{
    if (!has) {
        batch__bnull(t);
        return;
    }
    batch__b32(t, (uint32_t)n);
    batch__put(t, (const char *)p, n);
}

/* The kind's server name: qname, SNI, Host (has 0 when absent). */
static const char *batch__app_name(const apprec *r, int *has)
{
    *has = 1;
    switch (r->kind) {
    case APPREC_DNS: return r->u.dns.qname;
    case APPREC_TLS: *has = r->u.tls.has_sni; return r->u.tls.sni;
    default: *has = r->u.http.has_host; return r->u.http.host;
    }
}

/* The kind's response time (has 0 when there was no response). */
static int64_t batch__app_response(const apprec *r, int *has)
{
    switch (r->kind) {
    case APPREC_DNS: *has = r->u.dns.has_response; return r->u.dns.response_ns;
    case APPREC_TLS: *has = r->u.tls.has_server_hello; return r->u.tls.hello_rtt_ns;
    default: *has = r->u.http.has_response; return r->u.http.response_ns;
    }
}

int batch_app_error(const apprec *r)
{
    switch (r->kind) {
    case APPREC_DNS: return !r->u.dns.has_response || r->u.dns.rcode != 0;
    case APPREC_TLS: return !r->u.tls.has_server_hello;
    default: return !r->u.http.has_response || r->u.http.status >= 500;
    }
}

static void batch__app_col(batch_buf *t, const char *node, const apprec *r, int col)
{
    const apprec_dns *d = &r->u.dns;
    const apprec_tls *s = &r->u.tls;
    const apprec_http *h = &r->u.http;
    int dns = r->kind == APPREC_DNS, tls = r->kind == APPREC_TLS, http = r->kind == APPREC_HTTP;
    int has;
    const char *name;
    int64_t v;
    switch ((schema_app_col)col) {
    case SCHEMA_APP_node: batch__btext(t, node); break;
    case SCHEMA_APP_kind: batch__bint2(t, r->kind); break;
    case SCHEMA_APP_flow_id: batch__bint8(t, (int64_t)r->flow_id); break;
    case SCHEMA_APP_vni: batch__bint4(t, r->vni); break;
    case SCHEMA_APP_observer: batch__bip16(t, r->observer); break;
    case SCHEMA_APP_client_ip: batch__bip16(t, r->client_ip); break;
    case SCHEMA_APP_client_port: batch__bint4(t, r->client_port); break;
    case SCHEMA_APP_server_ip: batch__bip16(t, r->server_ip); break;
    case SCHEMA_APP_server_port: batch__bint4(t, r->server_port); break;
    case SCHEMA_APP_ts_ns: batch__bint8(t, r->ts_ns); break;
    case SCHEMA_APP_truncated: batch__bbool(t, r->truncated); break;
    case SCHEMA_APP_error: batch__bbool(t, batch_app_error(r)); break;
    case SCHEMA_APP_name:
        name = batch__app_name(r, &has);
        batch__bytes(t, has, name, strlen(name));
        break;
    case SCHEMA_APP_response_ns:
        v = batch__app_response(r, &has);
        batch__bopt8(t, has, v);
        break;
    case SCHEMA_APP_transport: dns ? batch__bint2(t, d->transport) : batch__bnull(t); break;
    case SCHEMA_APP_dns_id: batch__bopt4(t, dns, d->id); break;
    case SCHEMA_APP_qtype: batch__bopt4(t, dns, d->qtype); break;
    case SCHEMA_APP_rcode: batch__bopt4(t, dns && d->has_response, d->rcode); break;
    case SCHEMA_APP_answers: batch__bopt4(t, dns, d->answers); break;
    case SCHEMA_APP_record_version: batch__bopt4(t, tls, s->record_version); break;
    case SCHEMA_APP_client_version: batch__bopt4(t, tls, s->client_version); break;
    case SCHEMA_APP_version: batch__bopt4(t, tls && s->has_server_hello, s->version); break;
    case SCHEMA_APP_cipher: batch__bopt4(t, tls && s->has_server_hello, s->cipher); break;
    case SCHEMA_APP_alpn: batch__bytes(t, tls, s->alpn, s->alpn_len); break;
    case SCHEMA_APP_method: batch__bytes(t, http, h->method, http ? strlen(h->method) : 0); break;
    case SCHEMA_APP_uri: batch__bytes(t, http, h->uri, http ? strlen(h->uri) : 0); break;
    case SCHEMA_APP_status: batch__bopt4(t, http && h->has_response, h->status); break;
    case SCHEMA_APP_request_body_bytes: batch__bopt8(t, http, (int64_t)h->request_body_bytes); break;
    case SCHEMA_APP_response_body_bytes:
        batch__bopt8(t, http && h->has_response, (int64_t)h->response_body_bytes);
        break;
    case SCHEMA_APP_NCOLS: break;
    }
}

/* One minute's row of app_minutes, summed in memory; its key's bytes (name,
 * endpoint) live in batch_appaggs.keys. */
typedef struct batch_appmin {
    int64_t minute_ns;
    uint64_t hash;
    uint32_t node;
    uint8_t kind, iplen;
    uint16_t port;
    uint8_t ip[16];
    size_t name_off, name_len, ep_off, ep_len;
    int64_t count, errors, rcount, rsum, hist[LATENCY_BUCKETS];
} batch_appmin;

struct batch_appaggs {
    uint32_t *slot;          /* open addressing: 1 + index into rows, 0 empty */
    size_t cap;
    batch_appmin *rows;
    size_t n, caprows;
    batch_buf keys;
    char **nodes;
    size_t nnodes, capnodes;
};

static int batch__appmin_same(const batch_appaggs *g, const batch_appmin *a, const batch_appmin *k,
                              const char *name, const char *ep)
{
    return a->hash == k->hash && a->minute_ns == k->minute_ns && a->kind == k->kind &&
           a->node == k->node && a->port == k->port && a->iplen == k->iplen &&
           !memcmp(a->ip, k->ip, k->iplen) && a->name_len == k->name_len &&
           a->ep_len == k->ep_len && !memcmp(g->keys.buf + a->name_off, name, k->name_len) &&
           !memcmp(g->keys.buf + a->ep_off, ep, k->ep_len);
}

static batch_appmin *batch__appmin(batch_appaggs *g, batch_appmin *k, const char *name,
                                   const char *ep)
{
    if ((g->n + 1) * 2 > g->cap) { /* grow: keep the load under one half */
        free(g->slot);
        g->cap = g->cap ? g->cap * 2 : 256;
        g->slot = xcalloc(g->cap, sizeof *g->slot);
        for (size_t i = 0; i < g->n; i++) {
            size_t j = g->rows[i].hash & (g->cap - 1);
            while (g->slot[j]) j = (j + 1) & (g->cap - 1);
            g->slot[j] = (uint32_t)(i + 1);
        }
    }
    size_t j = k->hash & (g->cap - 1);
    while (g->slot[j] && !batch__appmin_same(g, &g->rows[g->slot[j] - 1], k, name, ep))
        j = (j + 1) & (g->cap - 1);
    if (g->slot[j]) return &g->rows[g->slot[j] - 1];
    xgrow((void **)&g->rows, &g->caprows, g->n + 1, sizeof *g->rows);
    batch_appmin *m = &g->rows[g->n];
    *m = *k;
    m->name_off = g->keys.len;
    batch__put(&g->keys, name, k->name_len);
    m->ep_off = g->keys.len;
    batch__put(&g->keys, ep, k->ep_len);
    g->slot[j] = (uint32_t)++g->n;
    return m;
}

static void batch__app_aggregate(batch_appaggs *g, const char *node, const apprec *r)
{
    batch_appmin k;
    memset(&k, 0, sizeof k);
    int has;
    const char *name = batch__app_name(r, &has);
    if (!has) name = ""; /* no SNI or Host: counted under the empty name */
    /* HTTP's endpoint is the URI's path: the query string would make every
     * request its own row. */
    const char *ep = r->kind == APPREC_HTTP ? r->u.http.uri : "";
    k.name_len = strlen(name);
    k.ep_len = strcspn(ep, "?");
    k.minute_ns = batch__floordiv(r->ts_ns, 60000000000LL) * 60000000000LL;
    k.kind = r->kind;
    uint32_t ni = 0;
    for (; ni < g->nnodes && strcmp(g->nodes[ni], node); ni++) {}
    if (ni == g->nnodes) {
        xgrow((void **)&g->nodes, &g->capnodes, g->nnodes + 1, sizeof *g->nodes);
        g->nodes[g->nnodes++] = xstrdup(node);
    }
    k.node = ni;
    static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
    int v4 = !memcmp(r->server_ip, mapped, 12);
    k.iplen = v4 ? 4 : 16;
    memcpy(k.ip, r->server_ip + (v4 ? 12 : 0), k.iplen);
    k.port = r->server_port;
    uint64_t h = (uint64_t)k.minute_ns * 0x9e3779b97f4a7c15ULL ^ ((uint64_t)k.kind << 56) ^
                 ((uint64_t)k.port << 32) ^ k.node;
    for (int i = 0; i < k.iplen; i++) h = (h ^ k.ip[i]) * 0x100000001b3ULL;
    for (size_t i = 0; i < k.name_len; i++) h = (h ^ (uint8_t)name[i]) * 0x100000001b3ULL;
    for (size_t i = 0; i < k.ep_len; i++) h = (h ^ (uint8_t)ep[i]) * 0x100000001b3ULL;
    k.hash = h ^ (h >> 31);
    batch_appmin *m = batch__appmin(g, &k, name, ep);
    m->count++;
    m->errors += batch_app_error(r);
    int64_t resp = batch__app_response(r, &has);
    if (has) { /* wire_app_ok() bounds each value; the sum stops at INT64_MAX */
        m->rcount++;
        batch__sadd(&m->rsum, resp);
        m->hist[latency_bucket(resp)]++;
    }
}

static void batch__day(int32_t **days, size_t *n, size_t *cap, int64_t ns)
{
    int32_t day = (int32_t)batch__floordiv(ns, 86400000000000LL);
    for (size_t i = 0; i < *n; i++)
        if ((*days)[i] == day) return;
    xgrow((void **)days, cap, *n + 1, sizeof **days);
    (*days)[(*n)++] = day;
}

void batch_append_app(batch_t *b, const char *node, const apprec *r)
{
    b->records++;
    b->apps++;
    batch__b16(&b->app, (uint16_t)(SCHEMA_APP_NCOLS + 1));
    for (int c = 0; c < SCHEMA_APP_NCOLS; c++) batch__app_col(&b->app, node, r, c);
    batch__bint8(&b->app, batch__floordiv(r->ts_ns, 1000) - 946684800000000LL); /* ts */
    batch__day(&b->appdays, &b->nappdays, &b->capappdays, r->ts_ns);
    if (!b->appagg) b->appagg = xcalloc(1, sizeof *b->appagg);
    batch__app_aggregate(b->appagg, node, r);
}

/* bytea in COPY text: \\x and hex (the backslash escaped for COPY). */
static void batch__text_bytea(batch_buf *t, const char *p, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    batch__put(t, "\\\\x", 3);
    for (size_t i = 0; i < n; i++) {
        char two[2] = { hex[(uint8_t)p[i] >> 4], hex[(uint8_t)p[i] & 15] };
        batch__put(t, two, 2);
    }
    batch__put(t, "\t", 1);
}

static void batch__app_seal(batch_t *b)
{
    batch_appaggs *g = b->appagg;
    static _Thread_local char hist[LATENCY_HIST_TEXT];
    for (size_t i = 0; g && i < g->n; i++) {
        const batch_appmin *m = &g->rows[i];
        batch_buf *t = &b->appmins;
        char ip[64];
        inet_ntop(m->iplen == 4 ? AF_INET : AF_INET6, m->ip, ip, sizeof ip);
        batch__ts(t, m->minute_ns, 1);
        batch__i64(t, m->kind, 0);
        batch__put(t, "\t", 1);
        batch__text(t, g->nodes[m->node]);
        batch__put(t, "\t", 1);
        batch__put(t, ip, strlen(ip));
        batch__put(t, "\t", 1);
        batch__i64(t, m->port, 1);
        batch__text_bytea(t, g->keys.buf + m->name_off, m->name_len);
        batch__text_bytea(t, g->keys.buf + m->ep_off, m->ep_len);
        int64_t v[] = { m->count, m->errors, m->rcount, m->rsum };
        for (size_t k = 0; k < 4; k++) batch__i64(t, v[k], 0), batch__put(t, "\t", 1);
        latency_hist_text(m->hist, hist, sizeof hist);
        batch__put(t, hist, strlen(hist));
        batch__put(t, "\n", 1);
    }
}

static void batch__appaggs_clear(batch_appaggs *g)
{
    if (!g) return;
    if (g->cap) memset(g->slot, 0, g->cap * sizeof *g->slot);
    g->n = 0;
    g->keys.len = 0;
    for (size_t i = 0; i < g->nnodes; i++) free(g->nodes[i]);
    g->nnodes = 0;
}

/* ---- batches ------------------------------------------------------------- */

batch_t *batch_route(batch_t *plain, batch_t *ordered, liveset_t *live, const char *node,
                         const Mirrorscope__FlowRecord *r)
{
    if (!r->final) return ordered;
    return liveset_has(live, node, r->flow_id) ? ordered : plain;
}

void batch_append(batch_t *b, liveset_t *live, const char *node,
                     const Mirrorscope__FlowRecord *r)
{
    b->records++;
    if (!r->final) {
        batch__brow(&b->live, node, r);
        b->interims++;
        liveset_add(live, node, r->flow_id);
        return;
    }
    batch__brow(&b->fin, node, r);
    if (liveset_take(live, node, r->flow_id)) { /* its interim row goes */
        batch__text(&b->keys, node);
        batch__put(&b->keys, "\t", 1);
        batch__i64(&b->keys, (int64_t)r->flow_id, 0);
        batch__put(&b->keys, "\n", 1);
    }
    b->finals++;
    int32_t day = (int32_t)batch__floordiv(r->first_ns, 86400000000000LL);
    int known = 0;
    for (size_t i = 0; i < b->ndays && !known; i++) known = b->days[i] == day;
    if (!known) {
        xgrow((void **)&b->days, &b->capdays, b->ndays + 1, sizeof *b->days);
        b->days[b->ndays++] = day;
    }
    if (!b->agg) b->agg = xcalloc(1, sizeof *b->agg);
    batch__aggregate(b->agg, node, r);
}

static void batch__opt(batch_buf *t, int has, int64_t v)
{
    if (has) batch__i64(t, v, 1);
    else batch__null(t);
}

void batch_seal(batch_t *b, const char *id)
{
    if (b->sealed) return;
    snprintf(b->id, sizeof b->id, "%s", id);
    batch_aggs *g = b->agg;
    for (size_t i = 0; g && i < g->cap; i++) {
        const batch_minute *m = &g->slot[i];
        if (!m->used) continue;
        batch_buf *t = &b->mins;
        char ip[64];
        inet_ntop(m->iplen == 4 ? AF_INET : AF_INET6, m->ip, ip, sizeof ip);
        batch__ts(t, m->minute_ns, 1);
        batch__text(t, g->nodes[m->node]);
        batch__put(t, "\t", 1);
        batch__put(t, ip, strlen(ip));
        batch__put(t, "\t", 1);
        int64_t v[] = { m->port, m->proto, m->flows, m->packets, m->bytes, m->retrans, m->rtt_sum,
                        m->rtt_count };
        for (size_t k = 0; k < sizeof v / sizeof v[0]; k++) batch__i64(t, v[k], 1);
        batch__opt(t, m->has_rtt && m->rtt_min, m->rtt_min);
        batch__opt(t, m->has_rtt, m->rtt_max);
        batch__i64(t, m->app_sum, 1);
        batch__i64(t, m->app_count, 1);
        batch__opt(t, m->has_app, m->app_min);
        batch__opt(t, m->has_app, m->app_max);
        for (int h = 0; h < SCHEMA_RTT_BUCKETS; h++) batch__i64(t, m->hist[h], h < SCHEMA_RTT_BUCKETS - 1);
        batch__put(t, "\n", 1);
    }
    batch__app_seal(b);
    b->sealed = 1;
}

static void batch__aggs_clear(batch_aggs *g)
{
    if (!g) return;
    if (g->n) memset(g->slot, 0, g->cap * sizeof *g->slot);
    g->n = 0;
    for (size_t i = 0; i < g->nnodes; i++) free(g->nodes[i]);
    g->nnodes = 0;
}

void batch_clear(batch_t *b)
{
    b->fin.len = b->keys.len = b->live.len = b->mins.len = 0;
    b->app.len = b->appmins.len = 0;
    b->records = b->finals = b->interims = b->apps = 0;
    b->ndays = b->nappdays = 0;
    batch__appaggs_clear(b->appagg);
    b->sealed = 0;
    b->id[0] = 0;
    batch__aggs_clear(b->agg);
}

void batch_free(batch_t *b)
{
    if (!b) return;
    batch__aggs_clear(b->agg);
    if (b->agg) {
        free(b->agg->slot);
        free(b->agg->nodes);
        free(b->agg);
    }
    batch__appaggs_clear(b->appagg);
    if (b->appagg) {
        free(b->appagg->slot);
        free(b->appagg->rows);
        free(b->appagg->keys.buf);
        free(b->appagg->nodes);
        free(b->appagg);
    }
    free(b->app.buf);
    free(b->appmins.buf);
    free(b->appdays);
    free(b->fin.buf);
    free(b->keys.buf);
    free(b->live.buf);
    free(b->mins.buf);
    free(b->days);
    free(b);
}

/* Version 5 adds the application records (apps, app, appmins, appdays);
 * a version 4 file (spooled before) is still read. */
#define BATCH_MAGIC "MSCOPE-BATCH 5"
#define BATCH_MAGIC4 "MSCOPE-BATCH 4"

static void batch__days_text(batch_buf *out, const int32_t *days, size_t n)
{
    for (size_t i = 0; i < n; i++) batch__i64(out, days[i], 0), batch__put(out, ",", 1);
}

void batch_encode(const batch_t *b, char **buf, size_t *cap, size_t *len)
{
    batch_buf o = { *buf, 0, *cap }, *out = &o;
    char hdr[512];
    int n = snprintf(hdr, sizeof hdr,
                     BATCH_MAGIC " id=%s records=%" PRIu64 " finals=%" PRIu64 " interims=%" PRIu64
                     " apps=%" PRIu64 " fin=%zu keys=%zu live=%zu mins=%zu app=%zu appmins=%zu "
                     "appdays=",
                     b->id, b->records, b->finals, b->interims, b->apps, b->fin.len, b->keys.len,
                     b->live.len, b->mins.len, b->app.len, b->appmins.len);
    batch__put(out, hdr, (size_t)n);
    batch__days_text(out, b->appdays, b->nappdays);
    batch__put(out, " days=", 6);
    batch__days_text(out, b->days, b->ndays);
    batch__put(out, "\n", 1);
    batch__put(out, b->fin.buf ? b->fin.buf : "", b->fin.len);
    batch__put(out, b->keys.buf ? b->keys.buf : "", b->keys.len);
    batch__put(out, b->live.buf ? b->live.buf : "", b->live.len);
    batch__put(out, b->mins.buf ? b->mins.buf : "", b->mins.len);
    batch__put(out, b->app.buf ? b->app.buf : "", b->app.len);
    batch__put(out, b->appmins.buf ? b->appmins.buf : "", b->appmins.len);
    *buf = o.buf;
    *cap = o.cap;
    *len = o.len;
}

/* "1,2,3," (each day followed by a comma) up to the end or a space.
 * Returns the position after it, or NULL. */
static char *batch__days_parse(char *p, int32_t **days, size_t *n, size_t *cap)
{
    while (*p && *p != ' ') {
        char *end;
        long long day = strtoll(p, &end, 10);
        if (end == p || *end != ',') return NULL;
        xgrow((void **)days, cap, *n + 1, sizeof **days);
        (*days)[(*n)++] = (int32_t)day;
        p = end + 1;
    }
    return p;
}

int batch_decode(batch_t *b, const char *data, size_t len)
{
    batch_clear(b);
    const char *nl = memchr(data, '\n', len < 1024 ? len : 1024);
    int v4 = nl && !strncmp(data, BATCH_MAGIC4 " ", sizeof BATCH_MAGIC4);
    if (!nl || (!v4 && strncmp(data, BATCH_MAGIC " ", sizeof BATCH_MAGIC))) return -1;
    char hdr[1024];
    memcpy(hdr, data, (size_t)(nl - data));
    hdr[nl - data] = 0;
    unsigned long long rec, fins, ints, apps = 0;
    size_t lf, lk, ll, lm, la = 0, lam = 0;
    int off = 0;
    if (v4) {
        if (sscanf(hdr, BATCH_MAGIC4 " id=%63s records=%llu finals=%llu interims=%llu fin=%zu "
                        "keys=%zu live=%zu mins=%zu days=%n",
                   b->id, &rec, &fins, &ints, &lf, &lk, &ll, &lm, &off) != 8 || !off)
            return -1;
    } else {
        if (sscanf(hdr, BATCH_MAGIC " id=%63s records=%llu finals=%llu interims=%llu apps=%llu "
                        "fin=%zu keys=%zu live=%zu mins=%zu app=%zu appmins=%zu appdays=%n",
                   b->id, &rec, &fins, &ints, &apps, &lf, &lk, &ll, &lm, &la, &lam, &off) != 11 ||
            !off)
            return -1;
        char *p = batch__days_parse(hdr + off, &b->appdays, &b->nappdays, &b->capappdays);
        if (!p || strncmp(p, " days=", 6)) return -1;
        off = (int)(p + 6 - hdr);
    }
    const char *body = nl + 1;
    if ((size_t)(data + len - body) != lf + lk + ll + lm + la + lam) return -1;
    char *p = batch__days_parse(hdr + off, &b->days, &b->ndays, &b->capdays);
    if (!p || *p) return -1;
    batch__put(&b->fin, body, lf);
    batch__put(&b->keys, body + lf, lk);
    batch__put(&b->live, body + lf + lk, ll);
    batch__put(&b->mins, body + lf + lk + ll, lm);
    batch__put(&b->app, body + lf + lk + ll + lm, la);
    batch__put(&b->appmins, body + lf + lk + ll + lm + la, lam);
    b->records = rec;
    b->finals = fins;
    b->interims = ints;
    b->apps = apps;
    b->sealed = 1;
    return 0;
}
