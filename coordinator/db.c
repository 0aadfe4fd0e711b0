/* db.c - migrations, COPY + merge of flow records, node registry (see db.h).
 *
 * DESIGN: one column table drives the schema, the staging table, the COPY
 * line and the merge statement, so they cannot disagree. Values reach SQL
 * only as COPY data (escaped) or as $n parameters: no text is ever pasted
 * into a statement except our own identifiers and dates we formatted.
 */
#include "db.h"

#include "hash.h"
#include "log.h"
#include "timeparse.h"
#include "xmalloc.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DB_KNOWN_DAYS 64

struct db {
    PGconn *conn;
    int32_t known_days[DB_KNOWN_DAYS]; /* partitions created this session */
    int nknown;
    char sqlstate[6];                  /* of the last failed statement */
};

/* Remember why a statement failed: the data itself, or the moment? */
static void db__state(db_t *d, const PGresult *r)
{
    const char *st = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    snprintf(d->sqlstate, sizeof d->sqlstate, "%s", st ? st : "");
}

/* The flow columns, in COPY order. The partition key first_ts is derived. */
static const char *const DB_COLS[][2] = {
    { "node", "text NOT NULL" }, { "flow_id", "bigint NOT NULL" }, { "vni", "bigint" },
    { "observer", "inet" }, { "proto", "smallint" }, { "client_ip", "inet" },
    { "client_port", "integer" }, { "server_ip", "inet" }, { "server_port", "integer" },
    { "first_ns", "bigint" }, { "last_ns", "bigint" },
#define DIR_COLS(d)                                                                            \
    { d "_packets", "bigint" }, { d "_ip_bytes", "bigint" }, { d "_payload_bytes", "bigint" }, \
        { d "_retransmissions", "integer" }, { d "_fast_retransmissions", "integer" },         \
        { d "_spurious_retransmissions", "integer" }, { d "_out_of_order", "integer" },        \
        { d "_dup_acks", "integer" }, { d "_lost_segments", "integer" },                       \
        { d "_zero_windows", "integer" }, { d "_window_full", "integer" },                     \
        { d "_keep_alives", "integer" }, { d "_rsts", "integer" }, { d "_fins", "integer" },    \
        { d "_rtt_count", "bigint" }, { d "_rtt_min", "bigint" }, { d "_rtt_max", "bigint" },  \
        { d "_rtt_sum", "bigint" }
    DIR_COLS("c2s"), DIR_COLS("s2c"),
#undef DIR_COLS
    { "hs_seen", "smallint" }, { "syn_ns", "bigint" }, { "synack_ns", "bigint" },
    { "ack_ns", "bigint" }, { "initial_rtt_ns", "bigint" }, { "app_count", "bigint" },
    { "app_min", "bigint" }, { "app_max", "bigint" }, { "app_sum", "bigint" },
    { "conn_state", "text" }, { "history", "text" }, { "final", "boolean" },
};
#define DB_NCOLS (sizeof DB_COLS / sizeof DB_COLS[0])

/* ---- COPY text ----------------------------------------------------------- */

static void db__grow(db_text *t, size_t n)
{
    t->cap = (t->len + n + 1) * 2;
    t->buf = xrealloc(t->buf, t->cap);
}

/* Inlined: most calls append a constant 1-8 bytes, which the compiler then
 * copies without a call (a quarter of the coordinator's CPU went here). */
static inline __attribute__((always_inline)) void db__put(db_text *t, const char *s, size_t n)
{
    if (__builtin_expect(t->len + n + 1 > t->cap, 0)) db__grow(t, n);
    memcpy(t->buf + t->len, s, n);
    t->len += n;
}

static void db__text(db_text *t, const char *s)
{
    for (; *s; s++) {
        char esc[2] = { '\\', 0 };
        switch (*s) {
        case '\\': esc[1] = '\\'; break;
        case '\t': esc[1] = 't'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        default: db__put(t, s, 1); continue;
        }
        db__put(t, esc, 2);
    }
}

/* Integers by hand: this runs ~70 times per record at 100 000 records/s. */
static void db__i64(db_text *t, int64_t v, int sep)
{
    char tmp[24], *p = tmp + sizeof tmp;
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    if (sep) *--p = '\t';
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0) *--p = '-';
    db__put(t, p, (size_t)(tmp + sizeof tmp - p));
}

static void db__null(db_text *t) { db__put(t, "\\N\t", 3); }

static int64_t db__floordiv(int64_t a, int64_t b) { return a / b - (a % b < 0); }

/* A timestamptz in COPY text: UTC, microseconds (truncated). */
static void db__ts(db_text *t, int64_t ns, int sep)
{
    int64_t secs = db__floordiv(ns, 1000000000LL);
    int64_t us = (ns - secs * 1000000000LL) / 1000;
    time_t tt = (time_t)secs;
    struct tm tm;
    gmtime_r(&tt, &tm);
    char s[48];
    int n = snprintf(s, sizeof s, "%04d-%02d-%02d %02d:%02d:%02d.%06d+00%s", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)us,
                     sep ? "\t" : "");
    db__put(t, s, (size_t)n);
}

/* ---- binary COPY (records into flows and flows_live) ---------------------------------
 * PostgreSQL parses binary COPY fields without text conversion: measured
 * here, the flows COPY runs ~1.4x faster than in text. Each tuple is a field
 * count and length-prefixed fields in network order; the file header and
 * trailer are added when the batch is sent (db__copy_binary). */

static void db__b16(db_text *t, uint16_t v)
{
    uint8_t b[2] = { (uint8_t)(v >> 8), (uint8_t)v };
    db__put(t, (const char *)b, 2);
}

static void db__b32(db_text *t, uint32_t v)
{
    uint8_t b[4] = { (uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v };
    db__put(t, (const char *)b, 4);
}

static void db__b64(db_text *t, uint64_t v)
{
    db__b32(t, (uint32_t)(v >> 32));
    db__b32(t, (uint32_t)v);
}

static void db__bint8(db_text *t, int64_t v) { db__b32(t, 8), db__b64(t, (uint64_t)v); }
static void db__bint4(db_text *t, int64_t v) { db__b32(t, 4), db__b32(t, (uint32_t)v); }
static void db__bint2(db_text *t, int64_t v) { db__b32(t, 2), db__b16(t, (uint16_t)v); }

static void db__btext(db_text *t, const char *s)
{
    size_t n = strlen(s);
    db__b32(t, (uint32_t)n);
    db__put(t, s, n);
}

/* inet: family (2 = IPv4, 3 = IPv6 in PostgreSQL's numbering), bits,
 * is_cidr, length, address. */
static void db__binet(db_text *t, ProtobufCBinaryData ip)
{
    if (ip.len != 4 && ip.len != 16) {
        db__b32(t, 0xffffffffu); /* NULL */
        return;
    }
    uint8_t h[4] = { ip.len == 4 ? 2 : 3, (uint8_t)(ip.len * 8), 0, (uint8_t)ip.len };
    db__b32(t, 4 + (uint32_t)ip.len);
    db__put(t, (const char *)h, 4);
    db__put(t, (const char *)ip.data, ip.len);
}

static void db__bdir(db_text *t, const Mirrorscope__Direction *d)
{
    static const Mirrorscope__Direction zero = MIRRORSCOPE__DIRECTION__INIT;
    static const Mirrorscope__Stat zstat = MIRRORSCOPE__STAT__INIT;
    if (!d) d = &zero;
    const Mirrorscope__Stat *r = d->rtt_ns ? d->rtt_ns : &zstat;
    db__bint8(t, (int64_t)d->packets);
    db__bint8(t, (int64_t)d->ip_bytes);
    db__bint8(t, (int64_t)d->payload_bytes);
    uint32_t v[] = { d->retransmissions, d->fast_retransmissions, d->spurious_retransmissions,
                     d->out_of_order, d->dup_acks, d->lost_segments, d->zero_windows,
                     d->window_full, d->keep_alives, d->rsts, d->fins };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) db__bint4(t, v[i]);
    db__bint8(t, (int64_t)r->count);
    db__bint8(t, r->min);
    db__bint8(t, r->max);
    db__bint8(t, r->sum);
}

/* One record as a binary COPY tuple: DB_COLS then first_ts. */
static void db__brow(db_text *t, const char *node, const Mirrorscope__FlowRecord *r)
{
    static const Mirrorscope__Endpoint zep = MIRRORSCOPE__ENDPOINT__INIT;
    static const Mirrorscope__Handshake zhs = MIRRORSCOPE__HANDSHAKE__INIT;
    static const Mirrorscope__Stat zstat = MIRRORSCOPE__STAT__INIT;
    const Mirrorscope__Endpoint *c = r->client ? r->client : &zep;
    const Mirrorscope__Endpoint *s = r->server ? r->server : &zep;
    const Mirrorscope__Handshake *h = r->handshake ? r->handshake : &zhs;
    const Mirrorscope__Stat *a = r->app_response_ns ? r->app_response_ns : &zstat;
    db__b16(t, (uint16_t)(DB_NCOLS + 1));
    db__btext(t, node);
    db__bint8(t, (int64_t)r->flow_id);
    db__bint8(t, r->vni);
    db__binet(t, r->observer);
    db__bint2(t, r->proto);
    db__binet(t, c->ip);
    db__bint4(t, c->port);
    db__binet(t, s->ip);
    db__bint4(t, s->port);
    db__bint8(t, r->first_ns);
    db__bint8(t, r->last_ns);
    db__bdir(t, r->c2s);
    db__bdir(t, r->s2c);
    db__bint2(t, h->seen);
    db__bint8(t, h->syn_ns);
    db__bint8(t, h->synack_ns);
    db__bint8(t, h->ack_ns);
    db__bint8(t, h->initial_rtt_ns);
    db__bint8(t, (int64_t)a->count);
    db__bint8(t, a->min);
    db__bint8(t, a->max);
    db__bint8(t, a->sum);
    db__btext(t, r->conn_state ? r->conn_state : "");
    db__btext(t, r->history ? r->history : "");
    db__b32(t, 1);
    uint8_t fin = r->final ? 1 : 0;
    db__put(t, (const char *)&fin, 1);
    /* timestamptz: microseconds since 2000-01-01 UTC, truncated like db__ts() */
    db__bint8(t, db__floordiv(r->first_ns, 1000) - 946684800000000LL);
}

/* ---- per-minute aggregates, summed in memory --------------------------------
 * Per (minute of first packet, node, server endpoint, protocol) of each final
 * record with a server address: what flow_minutes holds (see migration v2). */

#define DB_HIST 16 /* log2 buckets of a flow's mean ACK RTT in microseconds */

typedef struct db_minute {
    int64_t minute_ns;
    uint32_t node;       /* index into db_aggs.nodes */
    uint8_t ip[16], iplen;
    uint8_t proto;
    uint16_t port;
    int used, has_rtt, has_app;
    int64_t flows, packets, bytes, retrans, rtt_sum, rtt_count, rtt_min, rtt_max, app_sum,
        app_count, app_min, app_max, hist[DB_HIST];
} db_minute;

struct db_aggs {
    db_minute *slot;
    size_t cap, n;       /* open addressing, cap a power of two */
    char **nodes;
    size_t nnodes, capnodes;
};

static uint64_t db__hash(const db_minute *k)
{
    uint64_t h = (uint64_t)k->minute_ns * 0x9e3779b97f4a7c15ULL ^ k->node ^ ((uint64_t)k->port << 32) ^
                 ((uint64_t)k->proto << 48);
    for (int i = 0; i < k->iplen; i++) h = (h ^ k->ip[i]) * 0x100000001b3ULL;
    return h ^ (h >> 31);
}

static int db__same(const db_minute *a, const db_minute *b)
{
    return a->minute_ns == b->minute_ns && a->node == b->node && a->port == b->port &&
           a->proto == b->proto && a->iplen == b->iplen && !memcmp(a->ip, b->ip, a->iplen);
}

static db_minute *db__slot(db_aggs *g, const db_minute *k)
{
    if ((g->n + 1) * 2 > g->cap) { /* grow: keep the load under one half */
        db_minute *old = g->slot;
        size_t oldcap = g->cap;
        g->cap = g->cap ? g->cap * 2 : 1024;
        g->slot = xcalloc(g->cap, sizeof *g->slot);
        for (size_t i = 0; i < oldcap; i++) {
            if (!old[i].used) continue;
            size_t j = db__hash(&old[i]) & (g->cap - 1);
            while (g->slot[j].used) j = (j + 1) & (g->cap - 1);
            g->slot[j] = old[i];
        }
        free(old);
    }
    size_t j = db__hash(k) & (g->cap - 1);
    while (g->slot[j].used && !db__same(&g->slot[j], k)) j = (j + 1) & (g->cap - 1);
    if (!g->slot[j].used) {
        g->slot[j] = *k;
        g->slot[j].used = 1;
        g->n++;
    }
    return &g->slot[j];
}

static uint32_t db__node_index(db_aggs *g, const char *node)
{
    for (size_t i = 0; i < g->nnodes; i++)
        if (!strcmp(g->nodes[i], node)) return (uint32_t)i;
    xgrow((void **)&g->nodes, &g->capnodes, g->nnodes + 1, sizeof *g->nodes);
    g->nodes[g->nnodes] = xstrdup(node);
    return (uint32_t)g->nnodes++;
}

static void db__aggregate(db_aggs *g, const char *node, const Mirrorscope__FlowRecord *r)
{
    ProtobufCBinaryData ip = r->server ? r->server->ip : (ProtobufCBinaryData){ 0, NULL };
    if (ip.len != 4 && ip.len != 16) return;
    db_minute k;
    memset(&k, 0, sizeof k);
    k.minute_ns = db__floordiv(r->first_ns, 60000000000LL) * 60000000000LL;
    k.node = db__node_index(g, node);
    memcpy(k.ip, ip.data, ip.len);
    k.iplen = (uint8_t)ip.len;
    k.port = (uint16_t)r->server->port;
    k.proto = (uint8_t)r->proto;
    db_minute *m = db__slot(g, &k);
    static const Mirrorscope__Direction zd = MIRRORSCOPE__DIRECTION__INIT;
    static const Mirrorscope__Stat zs = MIRRORSCOPE__STAT__INIT;
    const Mirrorscope__Direction *c = r->c2s ? r->c2s : &zd, *s = r->s2c ? r->s2c : &zd;
    const Mirrorscope__Stat *cr = c->rtt_ns ? c->rtt_ns : &zs, *sr = s->rtt_ns ? s->rtt_ns : &zs;
    const Mirrorscope__Stat *a = r->app_response_ns ? r->app_response_ns : &zs;
    m->flows++;
    m->packets += (int64_t)(c->packets + s->packets);
    m->bytes += (int64_t)(c->ip_bytes + s->ip_bytes);
    m->retrans += (int64_t)c->retransmissions + s->retransmissions;
    int64_t rsum = cr->sum + sr->sum, rcnt = (int64_t)(cr->count + sr->count);
    m->rtt_sum += rsum;
    m->rtt_count += rcnt;
    if (rcnt > 0) {
        /* the least non-zero direction minimum; the greatest maximum */
        int64_t lo = cr->min && sr->min ? (cr->min < sr->min ? cr->min : sr->min)
                                        : (cr->min ? cr->min : sr->min);
        int64_t hi = cr->max > sr->max ? cr->max : sr->max;
        if (lo && (!m->has_rtt || lo < m->rtt_min || !m->rtt_min)) m->rtt_min = lo;
        if (!m->has_rtt || hi > m->rtt_max) m->rtt_max = hi;
        m->has_rtt = 1;
        int b = (int)floor(log2((double)(rsum / rcnt) / 1000.0 + 1));
        m->hist[b < 0 ? 0 : b >= DB_HIST ? DB_HIST - 1 : b]++;
    }
    m->app_sum += a->sum;
    m->app_count += (int64_t)a->count;
    if (a->count) {
        if (!m->has_app || a->min < m->app_min) m->app_min = a->min;
        if (!m->has_app || a->max > m->app_max) m->app_max = a->max;
        m->has_app = 1;
    }
}

/* ---- flows with interim rows ------------------------------------------------ */

struct db_liveset {
    uint64_t *slot; /* 0 = empty, 1 = deleted, else a hash */
    size_t cap, used, live;
};

db_liveset *db_liveset_new(void) { return xcalloc(1, sizeof(db_liveset)); }

void db_liveset_free(db_liveset *s)
{
    if (!s) return;
    free(s->slot);
    free(s);
}

static uint64_t db__key(const char *node, uint64_t flow_id)
{
    uint64_t h = hash_mix64(hash_bytes(node, strlen(node), flow_id));
    return h < 2 ? h + 2 : h; /* 0 and 1 mark empty and deleted slots */
}

static void db__live_add(db_liveset *s, uint64_t k)
{
    if ((s->used + 1) * 2 > s->cap) { /* grow (or rehash away the deleted) */
        uint64_t *old = s->slot;
        size_t oldcap = s->cap;
        s->cap = s->live * 4 > 1024 ? s->live * 4 : 1024;
        size_t c = 1;
        while (c < s->cap) c <<= 1;
        s->cap = c;
        s->slot = xcalloc(s->cap, sizeof *s->slot);
        s->used = s->live = 0;
        for (size_t i = 0; i < oldcap; i++)
            if (old[i] > 1) db__live_add(s, old[i]);
        free(old);
    }
    size_t j = k & (s->cap - 1);
    while (s->slot[j] > 1 && s->slot[j] != k) j = (j + 1) & (s->cap - 1);
    if (s->slot[j] == k) return;
    if (s->slot[j] == 0) s->used++;
    s->slot[j] = k;
    s->live++;
}

/* Remove k; 1 when it was there. */
static int db__live_take(db_liveset *s, uint64_t k)
{
    if (!s->cap) return 0;
    size_t j = k & (s->cap - 1);
    while (s->slot[j]) {
        if (s->slot[j] == k) {
            s->slot[j] = 1;
            s->live--;
            return 1;
        }
        j = (j + 1) & (s->cap - 1);
    }
    return 0;
}

long db_liveset_load(db_t *d, db_liveset *s, char *err, size_t errlen)
{
    PGresult *r = PQexec(d->conn, "SELECT node, flow_id FROM flows_live");
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        snprintf(err, errlen, "%s", PQresultErrorMessage(r));
        PQclear(r);
        return -1;
    }
    long n = PQntuples(r);
    for (long i = 0; i < n; i++)
        db__live_add(s, db__key(PQgetvalue(r, (int)i, 0),
                                (uint64_t)strtoll(PQgetvalue(r, (int)i, 1), NULL, 10)));
    PQclear(r);
    return n;
}

/* ---- batches ------------------------------------------------------------- */

db_batch *db_batch_route(db_batch *plain, db_batch *ordered, db_liveset *live, const char *node,
                         const Mirrorscope__FlowRecord *r)
{
    if (!r->final) return ordered;
    uint64_t k = db__key(node, r->flow_id);
    if (!live->cap) return plain;
    size_t j = k & (live->cap - 1);
    while (live->slot[j]) {
        if (live->slot[j] == k) return ordered;
        j = (j + 1) & (live->cap - 1);
    }
    return plain;
}

void db_batch_append(db_batch *b, db_liveset *live, const char *node,
                     const Mirrorscope__FlowRecord *r)
{
    b->records++;
    uint64_t k = db__key(node, r->flow_id);
    if (!r->final) {
        db__brow(&b->live, node, r);
        b->interims++;
        db__live_add(live, k);
        return;
    }
    db__brow(&b->fin, node, r);
    if (db__live_take(live, k)) { /* its interim row goes */
        db__text(&b->keys, node);
        db__put(&b->keys, "\t", 1);
        db__i64(&b->keys, (int64_t)r->flow_id, 0);
        db__put(&b->keys, "\n", 1);
    }
    b->finals++;
    int32_t day = (int32_t)db__floordiv(r->first_ns, 86400000000000LL);
    int known = 0;
    for (size_t i = 0; i < b->ndays && !known; i++) known = b->days[i] == day;
    if (!known) {
        xgrow((void **)&b->days, &b->capdays, b->ndays + 1, sizeof *b->days);
        b->days[b->ndays++] = day;
    }
    if (!b->agg) b->agg = xcalloc(1, sizeof *b->agg);
    db__aggregate(b->agg, node, r);
}

static void db__opt(db_text *t, int has, int64_t v)
{
    if (has) db__i64(t, v, 1);
    else db__null(t);
}

void db_batch_seal(db_batch *b, const char *id)
{
    if (b->sealed) return;
    snprintf(b->id, sizeof b->id, "%s", id);
    db_aggs *g = b->agg;
    for (size_t i = 0; g && i < g->cap; i++) {
        const db_minute *m = &g->slot[i];
        if (!m->used) continue;
        db_text *t = &b->mins;
        char ip[64];
        inet_ntop(m->iplen == 4 ? AF_INET : AF_INET6, m->ip, ip, sizeof ip);
        db__ts(t, m->minute_ns, 1);
        db__text(t, g->nodes[m->node]);
        db__put(t, "\t", 1);
        db__put(t, ip, strlen(ip));
        db__put(t, "\t", 1);
        int64_t v[] = { m->port, m->proto, m->flows, m->packets, m->bytes, m->retrans, m->rtt_sum,
                        m->rtt_count };
        for (size_t k = 0; k < sizeof v / sizeof v[0]; k++) db__i64(t, v[k], 1);
        db__opt(t, m->has_rtt && m->rtt_min, m->rtt_min);
        db__opt(t, m->has_rtt, m->rtt_max);
        db__i64(t, m->app_sum, 1);
        db__i64(t, m->app_count, 1);
        db__opt(t, m->has_app, m->app_min);
        db__opt(t, m->has_app, m->app_max);
        for (int h = 0; h < DB_HIST; h++) db__i64(t, m->hist[h], h < DB_HIST - 1);
        db__put(t, "\n", 1);
    }
    b->sealed = 1;
}

static void db__aggs_clear(db_aggs *g)
{
    if (!g) return;
    if (g->n) memset(g->slot, 0, g->cap * sizeof *g->slot);
    g->n = 0;
    for (size_t i = 0; i < g->nnodes; i++) free(g->nodes[i]);
    g->nnodes = 0;
}

void db_batch_clear(db_batch *b)
{
    b->fin.len = b->keys.len = b->live.len = b->mins.len = 0;
    b->records = b->finals = b->interims = 0;
    b->ndays = 0;
    b->sealed = 0;
    b->id[0] = 0;
    db__aggs_clear(b->agg);
}

void db_batch_free(db_batch *b)
{
    db__aggs_clear(b->agg);
    if (b->agg) {
        free(b->agg->slot);
        free(b->agg->nodes);
        free(b->agg);
    }
    free(b->fin.buf);
    free(b->keys.buf);
    free(b->live.buf);
    free(b->mins.buf);
    free(b->days);
    memset(b, 0, sizeof *b);
}

#define DB_SPOOL_MAGIC "MSCOPE-BATCH 4"

void db_batch_encode(const db_batch *b, db_text *out)
{
    char hdr[512];
    int n = snprintf(hdr, sizeof hdr,
                     DB_SPOOL_MAGIC " id=%s records=%" PRIu64 " finals=%" PRIu64 " interims=%" PRIu64
                     " fin=%zu keys=%zu live=%zu mins=%zu days=",
                     b->id, b->records, b->finals, b->interims, b->fin.len, b->keys.len,
                     b->live.len, b->mins.len);
    out->len = 0;
    db__put(out, hdr, (size_t)n);
    for (size_t i = 0; i < b->ndays; i++) db__i64(out, b->days[i], 0), db__put(out, ",", 1);
    db__put(out, "\n", 1);
    db__put(out, b->fin.buf ? b->fin.buf : "", b->fin.len);
    db__put(out, b->keys.buf ? b->keys.buf : "", b->keys.len);
    db__put(out, b->live.buf ? b->live.buf : "", b->live.len);
    db__put(out, b->mins.buf ? b->mins.buf : "", b->mins.len);
}

int db_batch_decode(db_batch *b, const char *data, size_t len)
{
    db_batch_clear(b);
    const char *nl = memchr(data, '\n', len < 1024 ? len : 1024);
    if (!nl || strncmp(data, DB_SPOOL_MAGIC " ", sizeof DB_SPOOL_MAGIC)) return -1;
    char hdr[1024];
    memcpy(hdr, data, (size_t)(nl - data));
    hdr[nl - data] = 0;
    unsigned long long rec, fins, ints;
    size_t lf, lk, ll, lm;
    int off = 0;
    if (sscanf(hdr, DB_SPOOL_MAGIC " id=%63s records=%llu finals=%llu interims=%llu fin=%zu "
                    "keys=%zu live=%zu mins=%zu days=%n",
               b->id, &rec, &fins, &ints, &lf, &lk, &ll, &lm, &off) != 8 || !off)
        return -1;
    const char *body = nl + 1;
    if ((size_t)(data + len - body) != lf + lk + ll + lm) return -1;
    for (char *p = hdr + off; *p;) {
        char *end;
        long long day = strtoll(p, &end, 10);
        if (end == p || *end != ',') return -1;
        xgrow((void **)&b->days, &b->capdays, b->ndays + 1, sizeof *b->days);
        b->days[b->ndays++] = (int32_t)day;
        p = end + 1;
    }
    db__put(&b->fin, body, lf);
    db__put(&b->keys, body + lf, lk);
    db__put(&b->live, body + lf + lk, ll);
    db__put(&b->mins, body + lf + lk + ll, lm);
    b->records = rec;
    b->finals = fins;
    b->interims = ints;
    b->sealed = 1;
    return 0;
}

/* ---- statements ---------------------------------------------------------- */

static int db__exec(db_t *d, const char *sql, char *err, size_t errlen)
{
    PGresult *r = PQexec(d->conn, sql);
    ExecStatusType st = PQresultStatus(r);
    int ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
    if (!ok) {
        snprintf(err, errlen, "%s", PQresultErrorMessage(r));
        db__state(d, r);
    }
    PQclear(r);
    return ok ? 0 : -1;
}

static void db__cols(char *out, size_t len, const char *prefix, int with_types)
{
    size_t used = 0;
    out[0] = 0;
    for (size_t i = 0; i < DB_NCOLS && used < len; i++)
        used += (size_t)snprintf(out + used, len - used, "%s%s%s%s%s", i ? ", " : "", prefix,
                                 DB_COLS[i][0], with_types ? " " : "",
                                 with_types ? DB_COLS[i][1] : "");
}

static int db__migrate_v1(db_t *d, char *err, size_t errlen);
static int db__migrate_v2(db_t *d, char *err, size_t errlen);
static int db__migrate_v3(db_t *d, char *err, size_t errlen);
static int db__migrate_v4(db_t *d, char *err, size_t errlen);

/* One migration: its statements and the version row, in one transaction. */
static int db__migration(db_t *d, int version, const char *body, char *err, size_t errlen)
{
    size_t n = strlen(body) + 128;
    char *sql = xmalloc(n);
    snprintf(sql, n, "BEGIN;%sINSERT INTO schema_migrations (version) VALUES (%d);COMMIT;", body,
             version);
    int rc = db__exec(d, sql, err, errlen);
    free(sql);
    if (rc < 0) {
        PQclear(PQexec(d->conn, "ROLLBACK"));
        return -1;
    }
    log_info("database schema migrated to version %d", version);
    return 0;
}

static int db__migrate(db_t *d, char *err, size_t errlen)
{
    if (db__exec(d, "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, "
                    "applied_at timestamptz NOT NULL DEFAULT now())",
                 err, errlen) < 0)
        return -1;
    PGresult *r = PQexec(d->conn, "SELECT coalesce(max(version), 0) FROM schema_migrations");
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        snprintf(err, errlen, "%s", PQresultErrorMessage(r));
        PQclear(r);
        return -1;
    }
    int version = atoi(PQgetvalue(r, 0, 0));
    PQclear(r);
    if (version < 1 && db__migrate_v1(d, err, errlen) < 0) return -1;
    if (version < 2 && db__migrate_v2(d, err, errlen) < 0) return -1;
    if (version < 3 && db__migrate_v3(d, err, errlen) < 0) return -1;
    if (version < 4 && db__migrate_v4(d, err, errlen) < 0) return -1;
    return 0;
}

/* v3: the time index becomes BRIN. Rows arrive roughly in time order, so a
 * block-range index prunes as well as a B-tree inside a day partition, at a
 * fraction of the insert cost (measured: the B-tree alone cost ~25% of COPY). */
static int db__migrate_v3(db_t *d, char *err, size_t errlen)
{
    return db__migration(d, 3,
                         "DROP INDEX IF EXISTS flows_first_ts_idx;"
                         "CREATE INDEX flows_first_ts_brin ON flows USING brin (first_ts);",
                         err, errlen);
}

/* v4: COPY at full speed. `flows` holds final records only, COPY'd straight
 * in: no primary key and no B-tree while its day is being written (sealed
 * days get their host indexes from db_index_sealed()). Interim records of
 * long flows live in `flows_live`, keyed (node, flow_id), until their final
 * replaces them; `flows_all` is both. A batch ledger makes writes exactly-
 * once without the key. Measured on 2 cores: the key and the two B-trees
 * halved COPY speed, the staging + merge halved it again. */
static int db__migrate_v4(db_t *d, char *err, size_t errlen)
{
    return db__migration(d, 4,
        "CREATE TABLE flows_live (LIKE flows INCLUDING DEFAULTS, PRIMARY KEY (node, flow_id));"
        "INSERT INTO flows_live SELECT * FROM flows WHERE NOT final "
        "ON CONFLICT (node, flow_id) DO NOTHING;"
        "DELETE FROM flows WHERE NOT final;"
        "ALTER TABLE flows DROP CONSTRAINT flows_pkey;"
        "DROP INDEX IF EXISTS flows_server_ip_server_port_idx;"
        "DROP INDEX IF EXISTS flows_client_ip_idx;"
        "CREATE VIEW flows_all AS SELECT * FROM flows UNION ALL SELECT * FROM flows_live;"
        /* the primary key starts with minute: this index only cost inserts */
        "DROP INDEX IF EXISTS flow_minutes_minute_idx;"
        "CREATE TABLE applied_batches (id text PRIMARY KEY, "
        "applied_at timestamptz NOT NULL DEFAULT now());",
        err, errlen);
}

/* v1: flows partitioned by day of first packet, and the node registry. */
static int db__migrate_v1(db_t *d, char *err, size_t errlen)
{
    char cols[8192], sql[16384];
    db__cols(cols, sizeof cols, "", 1);
    snprintf(sql, sizeof sql,
             "CREATE TABLE flows (%s, first_ts timestamptz NOT NULL, "
             "updated_at timestamptz NOT NULL DEFAULT now(), "
             "PRIMARY KEY (node, flow_id, first_ts)) PARTITION BY RANGE (first_ts);"
             "CREATE INDEX ON flows (first_ts);"
             "CREATE INDEX ON flows (server_ip, server_port);"
             "CREATE INDEX ON flows (client_ip);"
             "CREATE TABLE nodes (node text PRIMARY KEY, start_ns bigint, version text, "
             "search_endpoint text, last_seen timestamptz, rx_packets bigint, rx_bytes bigint, "
             "stored_packets bigint, stored_bytes bigint, flows_active bigint, "
             "records_published bigint, records_shed bigint, gaps bigint NOT NULL DEFAULT 0);",
             cols);
    return db__migration(d, 1, sql, err, errlen);
}

/* v2: per-minute aggregates per node and server endpoint, for dashboards. */
static int db__migrate_v2(db_t *d, char *err, size_t errlen)
{
    char sql[8192];
    size_t n = (size_t)snprintf(sql, sizeof sql,
        "CREATE TABLE flow_minutes (minute timestamptz NOT NULL, node text NOT NULL, "
        "server_ip inet NOT NULL, server_port integer NOT NULL, proto smallint NOT NULL, "
        "flows bigint NOT NULL, packets bigint NOT NULL, bytes bigint NOT NULL, "
        "retransmissions bigint NOT NULL, rtt_sum bigint NOT NULL, rtt_count bigint NOT NULL, "
        "rtt_min bigint, rtt_max bigint, app_sum bigint NOT NULL, app_count bigint NOT NULL, "
        "app_min bigint, app_max bigint");
    for (int i = 0; i < DB_HIST; i++)
        n += (size_t)snprintf(sql + n, sizeof sql - n, ", rtt_h%d bigint NOT NULL DEFAULT 0", i);
    snprintf(sql + n, sizeof sql - n,
             ", PRIMARY KEY (minute, node, server_ip, server_port, proto));"
             "CREATE INDEX ON flow_minutes (minute);");
    return db__migration(d, 2, sql, err, errlen);
}

db_t *db_open(const char *conninfo, char *err, size_t errlen)
{
    db_t *d = xcalloc(1, sizeof *d);
    d->conn = PQconnectdb(conninfo ? conninfo : "");
    if (PQstatus(d->conn) != CONNECTION_OK) {
        snprintf(err, errlen, "cannot connect to PostgreSQL: %s", PQerrorMessage(d->conn));
        goto fail;
    }
    PQclear(PQexec(d->conn, "SET client_min_messages = warning"));
    /* A batch is rewritten from the spool if a commit is lost: a synchronous
     * commit per batch buys nothing a crash could not redo. */
    PQclear(PQexec(d->conn, "SET synchronous_commit = off"));
    if (db__migrate(d, err, errlen) < 0) goto fail;
    char cols[8192], sql[12000];
    db__cols(cols, sizeof cols, "", 1);
    /* Staging tables live as long as the connection. */
    snprintf(sql, sizeof sql,
             "CREATE TEMP TABLE live_staging (%s, first_ts timestamptz NOT NULL);"
             "CREATE TEMP TABLE final_keys (node text, flow_id bigint);"
             "CREATE TEMP TABLE minutes_staging (LIKE flow_minutes)",
             cols);
    if (db__exec(d, sql, err, errlen) < 0) goto fail;
    return d;
fail:
    db_close(d);
    return NULL;
}

void db_close(db_t *d)
{
    if (!d) return;
    PQfinish(d->conn);
    free(d);
}

int db_ok(db_t *d) { return d && PQstatus(d->conn) == CONNECTION_OK; }

int db_ping(db_t *d, char *err, size_t errlen) { return db__exec(d, "SELECT 1", err, errlen); }

/* Create the day partitions a batch needs (each once per session). */
static int db__partitions(db_t *d, const db_batch *b, char *err, size_t errlen)
{
    for (size_t i = 0; i < b->ndays; i++) {
        int32_t day = b->days[i];
        int known = 0;
        for (int k = 0; k < d->nknown && !known; k++) known = d->known_days[k] == day;
        if (known) continue;
        time_t t0 = (time_t)day * 86400;
        struct tm tm;
        gmtime_r(&t0, &tm);
        char sql[512];
        snprintf(sql, sizeof sql,
                 "CREATE TABLE IF NOT EXISTS flows_%04d%02d%02d PARTITION OF flows FOR VALUES "
                 "FROM ('%04d-%02d-%02d 00:00:00+00') TO ('%04d-%02d-%02d 00:00:00+00'::timestamptz "
                 "+ interval '1 day')",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_year + 1900, tm.tm_mon + 1,
                 tm.tm_mday, tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
        /* Two writers may create the same day at once: IF NOT EXISTS is not
         * proof against that; the loser's "already exists" is success. */
        if (db__exec(d, sql, err, errlen) < 0 && strcmp(d->sqlstate, "42P07") &&
            strcmp(d->sqlstate, "23505"))
            return -1;
        /* Remember only today and yesterday: retention (on another
         * connection) may drop older days, which then must be made again. */
        int32_t today = (int32_t)(time(NULL) / 86400);
        if (day >= today - 1 && d->nknown < DB_KNOWN_DAYS) d->known_days[d->nknown++] = day;
    }
    return 0;
}

/* COPY pieces of data into a table, sent as they are. */
static int db__copy_parts(db_t *d, const char *stmt, const char *const *part, const size_t *len,
                          int nparts, char *err, size_t errlen)
{
    PGresult *r = PQexec(d->conn, stmt);
    if (PQresultStatus(r) != PGRES_COPY_IN) {
        snprintf(err, errlen, "%s: %s", stmt, PQresultErrorMessage(r));
        db__state(d, r);
        PQclear(r);
        return -1;
    }
    PQclear(r);
    /* In 1 MiB pieces: libpq buffers what it is given, and a batch can be large. */
    for (int p = 0; p < nparts; p++) {
        for (size_t off = 0; off < len[p];) {
            size_t n = len[p] - off < (1u << 20) ? len[p] - off : (1u << 20);
            if (PQputCopyData(d->conn, part[p] + off, (int)n) != 1) {
                snprintf(err, errlen, "COPY data: %s", PQerrorMessage(d->conn));
                return -1;
            }
            off += n;
        }
    }
    if (PQputCopyEnd(d->conn, NULL) != 1) {
        snprintf(err, errlen, "COPY end: %s", PQerrorMessage(d->conn));
        return -1;
    }
    int rc = 0;
    while ((r = PQgetResult(d->conn))) {
        if (PQresultStatus(r) != PGRES_COMMAND_OK && !rc) {
            snprintf(err, errlen, "%s: %s", stmt, PQresultErrorMessage(r));
            db__state(d, r);
            rc = -1;
        }
        PQclear(r);
    }
    return rc;
}

static int db__copy(db_t *d, const char *stmt, const db_text *t, char *err, size_t errlen)
{
    const char *part[] = { t->buf };
    size_t len[] = { t->len };
    return db__copy_parts(d, stmt, part, len, 1, err, errlen);
}

/* COPY ... (FORMAT binary): the file header, the tuples, the trailer. */
static int db__copy_binary(db_t *d, const char *stmt, const db_text *tuples, char *err, size_t errlen)
{
    static const char hdr[19] = "PGCOPY\n\377\r\n\0\0\0\0\0\0\0\0\0";
    const char *part[] = { hdr, tuples->buf, "\377\377" };
    size_t len[] = { sizeof hdr, tuples->len, 2 };
    return db__copy_parts(d, stmt, part, len, 3, err, errlen);
}

/* Interim records: each flow's latest goes into flows_live unless its final
 * is in this batch; finals take their flow's interim row out. */
static int db__merge_live(db_t *d, const db_batch *b, char *err, size_t errlen)
{
    static _Thread_local char sql[65536]; /* per writer thread; too big for the stack */
    char cols[8192], upd[16384];
    if (b->keys.len && db__copy(d, "COPY final_keys FROM STDIN", &b->keys, err, errlen) < 0) return -1;
    if (b->keys.len &&
        db__exec(d, "DELETE FROM flows_live l USING final_keys k "
                    "WHERE l.node = k.node AND l.flow_id = k.flow_id", err, errlen) < 0)
        return -1;
    if (b->interims) {
        if (db__copy_binary(d, "COPY live_staging FROM STDIN (FORMAT binary)", &b->live, err, errlen) < 0)
            return -1;
        db__cols(cols, sizeof cols, "", 0);
        size_t used = 0;
        for (size_t i = 2; i < DB_NCOLS; i++)
            used += (size_t)snprintf(upd + used, sizeof upd - used, "%s = EXCLUDED.%s, ",
                                     DB_COLS[i][0], DB_COLS[i][0]);
        snprintf(sql, sizeof sql,
                 "INSERT INTO flows_live (%s, first_ts) "
                 "SELECT DISTINCT ON (node, flow_id) %s, first_ts FROM live_staging s "
                 "WHERE NOT EXISTS (SELECT 1 FROM final_keys k WHERE k.node = s.node AND "
                 "k.flow_id = s.flow_id) ORDER BY node, flow_id, last_ns DESC "
                 "ON CONFLICT (node, flow_id) DO UPDATE SET %s first_ts = EXCLUDED.first_ts, "
                 "updated_at = now() WHERE flows_live.last_ns <= EXCLUDED.last_ns",
                 cols, cols, upd);
        if (db__exec(d, sql, err, errlen) < 0) return -1;
    }
    return db__exec(d, "TRUNCATE live_staging, final_keys", err, errlen);
}

static int db__add_minutes(db_t *d, const db_batch *b, char *err, size_t errlen)
{
    char sql[8192], hupd[2048];
    size_t hu = 0;
    for (int i = 0; i < DB_HIST; i++)
        hu += (size_t)snprintf(hupd + hu, sizeof hupd - hu,
                               ", rtt_h%d = flow_minutes.rtt_h%d + EXCLUDED.rtt_h%d", i, i, i);
    if (db__copy(d, "COPY minutes_staging FROM STDIN", &b->mins, err, errlen) < 0) return -1;
    snprintf(sql, sizeof sql,
             /* in key order: two writers adding to the same rows then wait
              * for each other, never deadlock */
             "INSERT INTO flow_minutes SELECT * FROM minutes_staging "
             "ORDER BY minute, node, server_ip, server_port, proto "
             "ON CONFLICT (minute, node, server_ip, server_port, proto) DO UPDATE SET "
             "flows = flow_minutes.flows + EXCLUDED.flows, packets = flow_minutes.packets + EXCLUDED.packets, "
             "bytes = flow_minutes.bytes + EXCLUDED.bytes, retransmissions = flow_minutes.retransmissions + "
             "EXCLUDED.retransmissions, rtt_sum = flow_minutes.rtt_sum + EXCLUDED.rtt_sum, rtt_count = "
             "flow_minutes.rtt_count + EXCLUDED.rtt_count, rtt_min = least(flow_minutes.rtt_min, EXCLUDED.rtt_min), "
             "rtt_max = greatest(flow_minutes.rtt_max, EXCLUDED.rtt_max), app_sum = flow_minutes.app_sum + "
             "EXCLUDED.app_sum, app_count = flow_minutes.app_count + EXCLUDED.app_count, app_min = "
             "least(flow_minutes.app_min, EXCLUDED.app_min), app_max = greatest(flow_minutes.app_max, "
             "EXCLUDED.app_max)%s; TRUNCATE minutes_staging",
             hupd);
    return db__exec(d, sql, err, errlen);
}

int db_write(db_t *d, const db_batch *b, char *err, size_t errlen)
{
    if (!b->records) return 0;
    if (!db_ok(d)) {
        snprintf(err, errlen, "no database connection");
        return -1;
    }
    d->sqlstate[0] = 0;
    /* Partitions first, each in its own statement outside the batch's
     * transaction (a failed CREATE would abort it). */
    if (db__partitions(d, b, err, errlen) < 0) return -1;
    if (db__exec(d, "BEGIN", err, errlen) < 0) return -1;
    /* The ledger: a batch already committed (the spool kept it because the
     * commit's answer was lost, or we died before deleting the file) is not
     * written twice. */
    const char *params[] = { b->id };
    PGresult *r = PQexecParams(d->conn, "INSERT INTO applied_batches (id) VALUES ($1) "
                                        "ON CONFLICT DO NOTHING", 1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        snprintf(err, errlen, "ledger: %s", PQresultErrorMessage(r));
        PQclear(r);
        goto fail;
    }
    int fresh = atoi(PQcmdTuples(r)) == 1;
    PQclear(r);
    if (!fresh) {
        log_warn("batch %s (%" PRIu64 " records) was written before: skipped", b->id, b->records);
        PQclear(PQexec(d->conn, "ROLLBACK"));
        return 0;
    }
    int64_t t0 = timeparse_mono_ns(), t1 = t0, t2, t3;
    if (b->finals) {
        static _Thread_local char stmt[12000];
        char cols[8192];
        db__cols(cols, sizeof cols, "", 0);
        /* All in one day (the usual case): straight into its partition,
         * without routing each row through the parent. */
        char table[32] = "flows";
        if (b->ndays == 1) {
            time_t t = (time_t)b->days[0] * 86400;
            struct tm tm;
            gmtime_r(&t, &tm);
            snprintf(table, sizeof table, "flows_%04d%02d%02d", tm.tm_year + 1900, tm.tm_mon + 1,
                     tm.tm_mday);
        }
        snprintf(stmt, sizeof stmt, "COPY %s (%s, first_ts) FROM STDIN (FORMAT binary)", table, cols);
        if (db__copy_binary(d, stmt, &b->fin, err, errlen) < 0) goto fail;
        t1 = timeparse_mono_ns();
    }
    if ((b->interims || b->keys.len) && db__merge_live(d, b, err, errlen) < 0) goto fail;
    t2 = timeparse_mono_ns();
    if (b->mins.len && db__add_minutes(d, b, err, errlen) < 0) goto fail;
    t3 = timeparse_mono_ns();
    if (db__exec(d, "COMMIT", err, errlen) < 0) goto fail;
    log_debug("batch %s: COPY %" PRIu64 " finals %.1f ms, %" PRIu64 " interims %.1f ms, "
              "minutes %.1f ms, commit %.1f ms", b->id, b->finals, (double)(t1 - t0) / 1e6,
              b->interims, (double)(t2 - t1) / 1e6, (double)(t3 - t2) / 1e6,
              (double)(timeparse_mono_ns() - t3) / 1e6);
    return 0;
fail:
    PQclear(PQexec(d->conn, "ROLLBACK"));
    /* Data exceptions and integrity violations: these rows will never go. */
    return !strncmp(d->sqlstate, "22", 2) || !strncmp(d->sqlstate, "23", 2) ? -2 : -1;
}

int db_index_sealed(db_t *d, char *err, size_t errlen)
{
    /* Our partitions before today without their host indexes yet. */
    PGresult *r = PQexec(d->conn,
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'flows' "
        "AND c.relname ~ '^flows_[0-9]{8}$' "
        "AND to_date(substr(c.relname, 7), 'YYYYMMDD') < (now() AT TIME ZONE 'UTC')::date "
        "AND NOT EXISTS (SELECT 1 FROM pg_indexes x WHERE x.tablename = c.relname "
        "AND x.indexname = c.relname || '_server') ORDER BY 1");
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        snprintf(err, errlen, "%s", PQresultErrorMessage(r));
        PQclear(r);
        return -1;
    }
    int done = 0;
    for (int i = 0; i < PQntuples(r); i++) {
        const char *t = PQgetvalue(r, i, 0); /* matched ^flows_[0-9]{8}$ above */
        char sql[512];
        snprintf(sql, sizeof sql,
                 "CREATE INDEX IF NOT EXISTS %s_client ON %s (client_ip);"
                 "CREATE INDEX IF NOT EXISTS %s_server ON %s (server_ip, server_port)",
                 t, t, t, t);
        if (db__exec(d, sql, err, errlen) < 0) break;
        log_info("indexed the sealed day partition %s", t);
        done++;
    }
    PQclear(r);
    return done;
}

int db_upsert_node(db_t *d, const Mirrorscope__Heartbeat *hb, uint64_t gaps, char *err,
                   size_t errlen)
{
    static const Mirrorscope__Counters zc = MIRRORSCOPE__COUNTERS__INIT;
    const Mirrorscope__Counters *c = hb->counters ? hb->counters : &zc;
    char v[10][32];
    snprintf(v[0], 32, "%" PRId64, hb->start_ns);
    snprintf(v[1], 32, "%" PRIu64, c->rx_packets);
    snprintf(v[2], 32, "%" PRIu64, c->rx_bytes);
    snprintf(v[3], 32, "%" PRIu64, c->stored_packets);
    snprintf(v[4], 32, "%" PRIu64, c->stored_bytes);
    snprintf(v[5], 32, "%" PRIu64, c->flows_active);
    snprintf(v[6], 32, "%" PRIu64, c->records_published);
    snprintf(v[7], 32, "%" PRIu64, c->records_shed);
    snprintf(v[8], 32, "%" PRIu64, gaps);
    const char *params[] = { hb->node, v[0], hb->version, hb->search_endpoint, v[1], v[2], v[3],
                             v[4], v[5], v[6], v[7], v[8] };
    PGresult *r = PQexecParams(
        d->conn,
        "INSERT INTO nodes (node, start_ns, version, search_endpoint, last_seen, rx_packets, "
        "rx_bytes, stored_packets, stored_bytes, flows_active, records_published, records_shed, "
        "gaps) VALUES ($1, $2, $3, $4, now(), $5, $6, $7, $8, $9, $10, $11, $12) "
        "ON CONFLICT (node) DO UPDATE SET start_ns = EXCLUDED.start_ns, version = "
        "EXCLUDED.version, search_endpoint = EXCLUDED.search_endpoint, last_seen = now(), "
        "rx_packets = EXCLUDED.rx_packets, rx_bytes = EXCLUDED.rx_bytes, stored_packets = "
        "EXCLUDED.stored_packets, stored_bytes = EXCLUDED.stored_bytes, flows_active = "
        "EXCLUDED.flows_active, records_published = EXCLUDED.records_published, records_shed = "
        "EXCLUDED.records_shed, gaps = EXCLUDED.gaps",
        12, NULL, params, NULL, NULL, 0);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok) snprintf(err, errlen, "%s", PQresultErrorMessage(r));
    PQclear(r);
    return ok ? 0 : -1;
}

int db_retention(db_t *d, int days, char *err, size_t errlen)
{
    /* The ledger only guards replays of spool files, which happen at the
     * next start: a week of it is plenty. */
    PQclear(PQexec(d->conn, "DELETE FROM applied_batches WHERE applied_at < now() - interval '7 days'"));
    /* A safety net for the live set (lost at a crash): interim rows whose
     * final is in flows. The equal first_ts prunes to one partition. */
    PQclear(PQexec(d->conn, "DELETE FROM flows_live l WHERE EXISTS (SELECT 1 FROM flows f WHERE "
                            "f.first_ts = l.first_ts AND f.node = l.node AND f.flow_id = l.flow_id)"));
    if (days <= 0) return 0;
    char p0[16];
    snprintf(p0, sizeof p0, "%d", days);
    const char *params[] = { p0 };
    /* Our own partitions, named flows_YYYYMMDD, whose day ended before the cut. */
    PGresult *r = PQexecParams(d->conn,
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'flows' "
        "AND c.relname ~ '^flows_[0-9]{8}$' "
        "AND to_date(substr(c.relname, 7), 'YYYYMMDD') + 1 <= (now() AT TIME ZONE 'UTC')::date - $1::int",
        1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        snprintf(err, errlen, "%s", PQresultErrorMessage(r));
        PQclear(r);
        return -1;
    }
    int dropped = 0;
    for (int i = 0; i < PQntuples(r); i++) {
        char sql[128];
        const char *name = PQgetvalue(r, i, 0); /* matched ^flows_[0-9]{8}$ above */
        snprintf(sql, sizeof sql, "DROP TABLE IF EXISTS %s", name);
        if (db__exec(d, sql, err, errlen) < 0) break;
        log_info("retention: dropped partition %s", name);
        dropped++;
        d->nknown = 0; /* forget created partitions: re-check on the next write */
    }
    PQclear(r);
    r = PQexecParams(d->conn,
                     "DELETE FROM flow_minutes WHERE minute < date_trunc('day', now()) - $1::int * interval '1 day'",
                     1, NULL, params, NULL, NULL, 0);
    PQclear(r);
    r = PQexecParams(d->conn,
                     "DELETE FROM flows_live WHERE first_ts < date_trunc('day', now()) - $1::int * interval '1 day'",
                     1, NULL, params, NULL, NULL, 0);
    PQclear(r);
    return dropped;
}

/* ---- RPC queries ----------------------------------------------------------- */

static int64_t db__i(PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? 0 : strtoll(PQgetvalue(r, row, col), NULL, 10);
}

static char *db__s(PGresult *r, int row, int col) { return xstrdup(PQgetvalue(r, row, col)); }

static ProtobufCBinaryData db__ipbytes(const char *s)
{
    ProtobufCBinaryData b = { 0, NULL };
    uint8_t tmp[16];
    if (inet_pton(AF_INET, s, tmp) == 1) b.len = 4;
    else if (inet_pton(AF_INET6, s, tmp) == 1) b.len = 16;
    else return b;
    b.data = xmalloc(b.len);
    memcpy(b.data, tmp, b.len);
    return b;
}

/* Run a parameterised query; distinguish "your input is wrong" (SQLSTATE
 * class 22, data exceptions: a bad inet, say) from "we failed". */
static PGresult *db__query(db_t *d, const char *sql, int n, const char *const *params,
                           int *bad_request, char *err, size_t errlen)
{
    if (!db_ok(d)) {
        snprintf(err, errlen, "the database is not reachable right now");
        return NULL;
    }
    PGresult *r = PQexecParams(d->conn, sql, n, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) == PGRES_TUPLES_OK) return r;
    const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    if (bad_request && state && !strncmp(state, "22", 2)) *bad_request = 1;
    snprintf(err, errlen, "%s", PQresultErrorMessage(r));
    PQclear(r);
    return NULL;
}

int db_list_nodes(db_t *d, int64_t stale_ns, int64_t dead_ns, Mirrorscope__Response *resp,
                  char *err, size_t errlen)
{
    char st[32], dd[32];
    snprintf(st, sizeof st, "%" PRId64, stale_ns / 1000000);
    snprintf(dd, sizeof dd, "%" PRId64, dead_ns / 1000000);
    const char *params[] = { st, dd };
    PGresult *r = db__query(d,
        "SELECT node, start_ns, version, search_endpoint, "
        "(extract(epoch from last_seen) * 1e9)::bigint, "
        "CASE WHEN now() - last_seen > $2::bigint * interval '1 millisecond' THEN 'dead' "
        "WHEN now() - last_seen > $1::bigint * interval '1 millisecond' THEN 'stale' ELSE 'alive' END, "
        "rx_packets, stored_packets, flows_active, records_published, records_shed, gaps "
        "FROM nodes ORDER BY node", 2, params, NULL, err, errlen);
    if (!r) return -1;
    int n = PQntuples(r);
    resp->n_nodes = (size_t)n;
    resp->nodes = xcalloc((size_t)n + 1, sizeof *resp->nodes);
    for (int i = 0; i < n; i++) {
        Mirrorscope__NodeInfo *ni = xmalloc(sizeof *ni);
        mirrorscope__node_info__init(ni);
        ni->node = db__s(r, i, 0);
        ni->start_ns = db__i(r, i, 1);
        ni->version = db__s(r, i, 2);
        ni->search_endpoint = db__s(r, i, 3);
        ni->last_seen_ns = db__i(r, i, 4);
        ni->state = db__s(r, i, 5);
        ni->rx_packets = (uint64_t)db__i(r, i, 6);
        ni->stored_packets = (uint64_t)db__i(r, i, 7);
        ni->flows_active = (uint64_t)db__i(r, i, 8);
        ni->records_published = (uint64_t)db__i(r, i, 9);
        ni->records_shed = (uint64_t)db__i(r, i, 10);
        ni->gaps = (uint64_t)db__i(r, i, 11);
        resp->nodes[i] = ni;
    }
    PQclear(r);
    return 0;
}

static Mirrorscope__Direction *db__dir_from(PGresult *r, int row, int col, Mirrorscope__Stat **rtt)
{
    Mirrorscope__Direction *d = xmalloc(sizeof *d);
    mirrorscope__direction__init(d);
    d->packets = (uint64_t)db__i(r, row, col + 0);
    d->ip_bytes = (uint64_t)db__i(r, row, col + 1);
    d->payload_bytes = (uint64_t)db__i(r, row, col + 2);
    d->retransmissions = (uint32_t)db__i(r, row, col + 3);
    d->fast_retransmissions = (uint32_t)db__i(r, row, col + 4);
    d->spurious_retransmissions = (uint32_t)db__i(r, row, col + 5);
    d->out_of_order = (uint32_t)db__i(r, row, col + 6);
    d->dup_acks = (uint32_t)db__i(r, row, col + 7);
    d->lost_segments = (uint32_t)db__i(r, row, col + 8);
    d->zero_windows = (uint32_t)db__i(r, row, col + 9);
    d->window_full = (uint32_t)db__i(r, row, col + 10);
    d->keep_alives = (uint32_t)db__i(r, row, col + 11);
    d->rsts = (uint32_t)db__i(r, row, col + 12);
    d->fins = (uint32_t)db__i(r, row, col + 13);
    *rtt = xmalloc(sizeof **rtt);
    mirrorscope__stat__init(*rtt);
    (*rtt)->count = (uint64_t)db__i(r, row, col + 14);
    (*rtt)->min = db__i(r, row, col + 15);
    (*rtt)->max = db__i(r, row, col + 16);
    (*rtt)->sum = db__i(r, row, col + 17);
    d->rtt_ns = *rtt;
    return d;
}

static Mirrorscope__FlowRecord *db__record_from(PGresult *r, int i)
{
    /* Columns in DB_COLS order, observer/ips as text via host(). */
    Mirrorscope__FlowRecord *m = xmalloc(sizeof *m);
    mirrorscope__flow_record__init(m);
    m->flow_id = (uint64_t)db__i(r, i, 1);
    m->vni = (uint32_t)db__i(r, i, 2);
    m->observer = db__ipbytes(PQgetvalue(r, i, 3));
    m->proto = (uint32_t)db__i(r, i, 4);
    m->client = xmalloc(sizeof *m->client);
    mirrorscope__endpoint__init(m->client);
    m->client->ip = db__ipbytes(PQgetvalue(r, i, 5));
    m->client->port = (uint32_t)db__i(r, i, 6);
    m->server = xmalloc(sizeof *m->server);
    mirrorscope__endpoint__init(m->server);
    m->server->ip = db__ipbytes(PQgetvalue(r, i, 7));
    m->server->port = (uint32_t)db__i(r, i, 8);
    m->first_ns = db__i(r, i, 9);
    m->last_ns = db__i(r, i, 10);
    Mirrorscope__Stat *rtt;
    m->c2s = db__dir_from(r, i, 11, &rtt);
    m->s2c = db__dir_from(r, i, 29, &rtt);
    int c = 47;
    m->handshake = xmalloc(sizeof *m->handshake);
    mirrorscope__handshake__init(m->handshake);
    m->handshake->seen = (uint32_t)db__i(r, i, c);
    m->handshake->complete = (m->handshake->seen & 7) == 7;
    m->handshake->syn_ns = db__i(r, i, c + 1);
    m->handshake->synack_ns = db__i(r, i, c + 2);
    m->handshake->ack_ns = db__i(r, i, c + 3);
    m->handshake->initial_rtt_ns = db__i(r, i, c + 4);
    if ((m->handshake->seen & 3) == 3)
        m->handshake->server_setup_ns = m->handshake->synack_ns - m->handshake->syn_ns;
    if ((m->handshake->seen & 6) == 6)
        m->handshake->client_setup_ns = m->handshake->ack_ns - m->handshake->synack_ns;
    m->app_response_ns = xmalloc(sizeof *m->app_response_ns);
    mirrorscope__stat__init(m->app_response_ns);
    m->app_response_ns->count = (uint64_t)db__i(r, i, c + 5);
    m->app_response_ns->min = db__i(r, i, c + 6);
    m->app_response_ns->max = db__i(r, i, c + 7);
    m->app_response_ns->sum = db__i(r, i, c + 8);
    m->conn_state = db__s(r, i, c + 9);
    m->history = db__s(r, i, c + 10);
    m->final = PQgetvalue(r, i, c + 11)[0] == 't';
    return m;
}

_Static_assert(DB_NCOLS == 59, "db__record_from() reads the columns by position");

/* A page's position: the last row's sort key, flow id and node. Text of
 * the form KEY.FLOWID.HEXNODE, safe in a URL as it is. */
static void db__cursor_make(char *out, size_t len, const char *key, const char *flow_id,
                            const char *node)
{
    int n = snprintf(out, len, "%s.%s.", key, flow_id);
    for (const unsigned char *p = (const unsigned char *)node; n > 0 && *p && (size_t)n + 3 < len; p++)
        n += snprintf(out + n, len - (size_t)n, "%02x", *p);
}

static int db__cursor_parse(const char *c, char *key, char *flow_id, char *node, size_t len)
{
    const char *d1 = strchr(c, '.'), *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
    if (!d2 || d1 == c || d2 == d1 + 1 || (size_t)(d1 - c) >= 32 || (size_t)(d2 - d1) > 32)
        return -1;
    for (const char *p = c; p < d2; p++)
        if (p != d1 && !(*p >= '0' && *p <= '9') && !(*p == '-' && (p == c || p == d1 + 1)))
            return -1;
    memcpy(key, c, (size_t)(d1 - c));
    key[d1 - c] = 0;
    memcpy(flow_id, d1 + 1, (size_t)(d2 - d1 - 1));
    flow_id[d2 - d1 - 1] = 0;
    size_t hex = strlen(d2 + 1);
    if (hex % 2 || hex / 2 >= len) return -1;
    for (size_t i = 0; i < hex / 2; i++) {
        unsigned v;
        if (sscanf(d2 + 1 + 2 * i, "%2x", &v) != 1 || !v) return -1;
        node[i] = (char)v;
    }
    node[hex / 2] = 0;
    return 0;
}

int db_query_flows(db_t *d, const Mirrorscope__QueryFlows *q, Mirrorscope__Response *resp,
                   int *bad_request, char *err, size_t errlen)
{
    /* Each order is a sort key, then node and flow id: a total order, so a
     * cursor (the last row's three values) starts the next page exactly. */
    static const struct { const char *name, *key; int desc; } orders[] = {
        { "first", "first_ns", 0 },
        { "newest", "first_ns", 1 },
        { "last", "last_ns", 1 },
        { "bytes", "(c2s_ip_bytes + s2c_ip_bytes)", 1 },
        { "packets", "(c2s_packets + s2c_packets)", 1 },
        { "rtt", "coalesce((c2s_rtt_sum + s2c_rtt_sum) / nullif(c2s_rtt_count + s2c_rtt_count, 0), -1)", 1 },
        { "retransmissions", "(c2s_retransmissions + s2c_retransmissions)", 1 },
    };
    int o = -1;
    const char *ob = q->order_by && *q->order_by ? q->order_by : "first";
    for (int i = 0; i < (int)(sizeof orders / sizeof orders[0]); i++)
        if (!strcmp(ob, orders[i].name)) o = i;
    if (o < 0) {
        *bad_request = 1;
        snprintf(err, errlen, "order must be first, newest, last, bytes, packets, rtt or retransmissions");
        return -1;
    }
    char ck[32] = "", cf[40] = "", cn[256] = "";
    int has_cursor = q->cursor && *q->cursor;
    if (has_cursor && db__cursor_parse(q->cursor, ck, cf, cn, sizeof cn) < 0) {
        *bad_request = 1;
        snprintf(err, errlen, "cursor: not a cursor from an earlier answer");
        return -1;
    }
    char p[9][64];
    int64_t to = q->to_ns ? q->to_ns : INT64_MAX / 2;
    uint32_t limit = q->limit ? (q->limit > 10000 ? 10000 : q->limit) : 100;
    snprintf(p[0], 64, "%" PRId64, q->from_ns);
    snprintf(p[1], 64, "%" PRId64, to);
    snprintf(p[3], 64, "%u", q->port);
    snprintf(p[4], 64, "%u", q->proto);
    snprintf(p[5], 64, "%" PRId64, q->min_rtt_ns);
    snprintf(p[6], 64, "%s", q->only_retransmissions ? "t" : "f");
    snprintf(p[7], 64, "%u", limit);
    const char *params[] = { p[0], p[1], q->host && *q->host ? q->host : NULL, p[3], p[4], p[5],
                             p[6], p[7], q->node && *q->node ? q->node : NULL,
                             has_cursor ? ck : NULL, has_cursor ? cf : NULL,
                             has_cursor ? cn : NULL };
    const char *dir = orders[o].desc ? "DESC" : "ASC";
    char cols[8192], sql[16384];
    db__cols(cols, sizeof cols, "", 0);
    snprintf(sql, sizeof sql,
             "SELECT node, flow_id, vni, host(observer), proto, host(client_ip), client_port, "
             "host(server_ip), server_port, first_ns, last_ns, %s, %s FROM flows_all "
             "WHERE first_ts >= to_timestamp($1::bigint / 1e9) AND first_ns < $2::bigint "
             "AND ($3::inet IS NULL OR client_ip = $3::inet OR server_ip = $3::inet) "
             "AND ($4::int = 0 OR client_port = $4::int OR server_port = $4::int) "
             "AND ($5::int = 0 OR proto = $5::int) "
             "AND ($6::bigint = 0 OR (c2s_rtt_count + s2c_rtt_count > 0 AND "
             "(c2s_rtt_sum + s2c_rtt_sum) / (c2s_rtt_count + s2c_rtt_count) >= $6::bigint)) "
             "AND (NOT $7::boolean OR c2s_retransmissions + s2c_retransmissions > 0) "
             "AND ($9::text IS NULL OR node = $9::text) "
             "AND ($10::bigint IS NULL OR (%s, node, flow_id) %s ($10::bigint, $12::text, $11::bigint)) "
             "ORDER BY %s %s, node %s, flow_id %s LIMIT $8::int",
             cols + strlen("node, flow_id, vni, observer, proto, client_ip, client_port, "
                           "server_ip, server_port, first_ns, last_ns, "),
             orders[o].key, orders[o].key, orders[o].desc ? "<" : ">", orders[o].key, dir, dir,
             dir);
    PGresult *r = db__query(d, sql, 12, params, bad_request, err, errlen);
    if (!r) return -1;
    int n = PQntuples(r);
    resp->n_flows = (size_t)n;
    resp->flows = xcalloc((size_t)n + 1, sizeof *resp->flows);
    for (int i = 0; i < n; i++) {
        Mirrorscope__FlowRow *row = xmalloc(sizeof *row);
        mirrorscope__flow_row__init(row);
        row->node = db__s(r, i, 0);
        row->record = db__record_from(r, i);
        resp->flows[i] = row;
    }
    if (n > 0 && (uint32_t)n == limit) {
        char c[600];
        db__cursor_make(c, sizeof c, PQgetvalue(r, n - 1, DB_NCOLS), PQgetvalue(r, n - 1, 1),
                        PQgetvalue(r, n - 1, 0));
        resp->next_cursor = xstrdup(c);
    }
    PQclear(r);
    return 0;
}

int db_top_talkers(db_t *d, const Mirrorscope__TopTalkers *q, Mirrorscope__Response *resp,
                   int *bad_request, char *err, size_t errlen)
{
    const char *by = q->by && *q->by ? q->by : "server";
    const char *metric = q->metric && *q->metric ? q->metric : "bytes";
    const char *group, *mcol;
    if (!strcmp(by, "server")) group = "server_ip, server_port";
    else if (!strcmp(by, "client")) group = "client_ip";
    else {
        *bad_request = 1;
        snprintf(err, errlen, "by must be server or client");
        return -1;
    }
    if (!strcmp(metric, "bytes")) mcol = "5"; /* positions in the select list */
    else if (!strcmp(metric, "packets")) mcol = "4";
    else if (!strcmp(metric, "flows")) mcol = "3";
    else if (!strcmp(metric, "retransmissions")) mcol = "6";
    else {
        *bad_request = 1;
        snprintf(err, errlen, "metric must be bytes, packets, flows or retransmissions");
        return -1;
    }
    char p[3][32];
    snprintf(p[0], 32, "%" PRId64, q->from_ns);
    snprintf(p[1], 32, "%" PRId64, q->to_ns ? q->to_ns : INT64_MAX / 2);
    snprintf(p[2], 32, "%u", q->limit ? (q->limit > 1000 ? 1000 : q->limit) : 10);
    const char *params[] = { p[0], p[1], p[2] };
    char sql[2048];
    snprintf(sql, sizeof sql,
             "SELECT %s, count(*), sum(c2s_packets + s2c_packets), "
             "sum(c2s_ip_bytes + s2c_ip_bytes), sum(c2s_retransmissions + s2c_retransmissions) "
             "FROM flows_all WHERE first_ts >= to_timestamp($1::bigint / 1e9) AND first_ns < $2::bigint "
             "AND %s IS NOT NULL GROUP BY %s ORDER BY %s DESC LIMIT $3::int",
             !strcmp(by, "server") ? "host(server_ip), server_port" : "host(client_ip), 0",
             !strcmp(by, "server") ? "server_ip" : "client_ip", group, mcol);
    PGresult *r = db__query(d, sql, 3, params, bad_request, err, errlen);
    if (!r) return -1;
    int n = PQntuples(r);
    resp->n_talkers = (size_t)n;
    resp->talkers = xcalloc((size_t)n + 1, sizeof *resp->talkers);
    for (int i = 0; i < n; i++) {
        Mirrorscope__TalkerRow *t = xmalloc(sizeof *t);
        mirrorscope__talker_row__init(t);
        t->ip = db__ipbytes(PQgetvalue(r, i, 0));
        t->port = (uint32_t)db__i(r, i, 1);
        t->flows = (uint64_t)db__i(r, i, 2);
        t->packets = (uint64_t)db__i(r, i, 3);
        t->bytes = (uint64_t)db__i(r, i, 4);
        t->retransmissions = (uint64_t)db__i(r, i, 5);
        resp->talkers[i] = t;
    }
    PQclear(r);
    return 0;
}

int db_time_series(db_t *d, const Mirrorscope__TimeSeries *q, Mirrorscope__Response *resp,
                   int *bad_request, char *err, size_t errlen)
{
    char p[4][32];
    snprintf(p[0], 32, "%" PRId64, q->from_ns);
    snprintf(p[1], 32, "%" PRId64, q->to_ns ? q->to_ns : INT64_MAX / 2);
    snprintf(p[2], 32, "%u", q->server_port);
    const char *params[] = { p[0], p[1], q->node && *q->node ? q->node : NULL,
                             q->server_ip && *q->server_ip ? q->server_ip : NULL, p[2] };
    PGresult *r = db__query(d,
        "SELECT (extract(epoch from minute) * 1e9)::bigint, sum(flows), sum(packets), sum(bytes), "
        "sum(retransmissions), sum(rtt_sum), sum(rtt_count), sum(app_sum), sum(app_count) "
        "FROM flow_minutes WHERE minute >= date_trunc('minute', to_timestamp($1::bigint / 1e9)) "
        "AND minute < to_timestamp($2::bigint / 1e9) AND ($3::text IS NULL OR node = $3::text) "
        "AND ($4::inet IS NULL OR server_ip = $4::inet) AND ($5::int = 0 OR server_port = $5::int) "
        "GROUP BY 1 ORDER BY 1 LIMIT 100000", 5, params, bad_request, err, errlen);
    if (!r) return -1;
    int n = PQntuples(r);
    resp->n_minutes = (size_t)n;
    resp->minutes = xcalloc((size_t)n + 1, sizeof *resp->minutes);
    for (int i = 0; i < n; i++) {
        Mirrorscope__MinuteRow *m = xmalloc(sizeof *m);
        mirrorscope__minute_row__init(m);
        m->minute_ns = db__i(r, i, 0);
        m->flows = (uint64_t)db__i(r, i, 1);
        m->packets = (uint64_t)db__i(r, i, 2);
        m->bytes = (uint64_t)db__i(r, i, 3);
        m->retransmissions = (uint64_t)db__i(r, i, 4);
        m->rtt_sum = db__i(r, i, 5);
        m->rtt_count = (uint64_t)db__i(r, i, 6);
        m->app_sum = db__i(r, i, 7);
        m->app_count = (uint64_t)db__i(r, i, 8);
        resp->minutes[i] = m;
    }
    PQclear(r);
    return 0;
}

static void db__free_record(Mirrorscope__FlowRecord *m)
{
    if (!m) return;
    free(m->observer.data);
    if (m->client) free(m->client->ip.data);
    if (m->server) free(m->server->ip.data);
    free(m->client);
    free(m->server);
    if (m->c2s) free(m->c2s->rtt_ns);
    if (m->s2c) free(m->s2c->rtt_ns);
    free(m->c2s);
    free(m->s2c);
    free(m->handshake);
    free(m->app_response_ns);
    free(m->conn_state);
    free(m->history);
    free(m);
}

void db_response_free(Mirrorscope__Response *resp)
{
    if (resp->next_cursor && resp->next_cursor != protobuf_c_empty_string) free(resp->next_cursor);
    resp->next_cursor = (char *)protobuf_c_empty_string;
    for (size_t i = 0; i < resp->n_nodes; i++) {
        Mirrorscope__NodeInfo *n = resp->nodes[i];
        free(n->node);
        free(n->version);
        free(n->search_endpoint);
        free(n->state);
        free(n);
    }
    for (size_t i = 0; i < resp->n_flows; i++) {
        free(resp->flows[i]->node);
        db__free_record(resp->flows[i]->record);
        free(resp->flows[i]);
    }
    for (size_t i = 0; i < resp->n_talkers; i++) {
        free(resp->talkers[i]->ip.data);
        free(resp->talkers[i]);
    }
    for (size_t i = 0; i < resp->n_minutes; i++) free(resp->minutes[i]);
    free(resp->nodes);
    free(resp->flows);
    free(resp->talkers);
    free(resp->minutes);
    resp->n_nodes = resp->n_flows = resp->n_talkers = resp->n_minutes = 0;
}
