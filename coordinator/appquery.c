/* appquery.c - application records and their aggregates for the APIs (see
 * appquery.h).
 *
 * DESIGN: two fixed statements (records, aggregates) in which every filter
 * is a parameter, NULL when not given - the querysql.h rule: nothing the
 * client sends reaches the text; rows come back as text (db_exec_params)
 * and are read column by column in schema.h's SCHEMA_APP_COLS order, bytea
 * from its hex form.
 */
#include "appquery.h"

#include "apppb.h"
#include "schema.h"
#include "timeparse.h"
#include "xmalloc.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The statements: fixed texts, every filter a parameter that is NULL when
 * not given (so that a request's values never reach the text, which
 * fuzz_rpc checks against appquery_template()). ts (microseconds, the
 * partition key) prunes, ts_ns decides. */
#define APPQUERY__RECORDS                                                                      \
    " FROM app_records WHERE kind = $1::smallint AND ts >= to_timestamp($2::bigint) "             \
    "AND ts < to_timestamp($3::bigint) AND ts_ns >= $4::bigint AND ts_ns < $5::bigint "           \
    "AND ($6::text IS NULL OR node = $6::text) "                                                \
    "AND ($7::inet IS NULL OR client_ip <<= $7::inet) "                                         \
    "AND ($8::inet IS NULL OR server_ip <<= $8::inet) "                                         \
    "AND ($9::int IS NULL OR client_port = $9::int OR server_port = $9::int) "                  \
    "AND ($10::int IS NULL OR server_port = $10::int) "                                         \
    "AND ($11::text IS NULL OR name LIKE convert_to($11::text, 'UTF8')) "                       \
    "AND ($12::text IS NULL OR uri LIKE convert_to($12::text, 'UTF8')) "                        \
    "AND ($13::int IS NULL OR rcode = $13::int) AND ($14::int IS NULL OR status = $14::int) "   \
    "AND ($15::int IS NULL OR status / 100 = $15::int) AND (NOT $16::bool OR error) "            \
    "ORDER BY ts_ns DESC, node, flow_id LIMIT $17::int"
/* The minutes that overlap [from, to). */
#define APPQUERY__TOP                                                                          \
    "SELECT CASE WHEN $2::bool THEN (extract(epoch FROM minute) * 1e9)::bigint ELSE 0 END, "    \
    "name, endpoint, host(server_ip), server_port, sum(count)::bigint, sum(errors)::bigint, "   \
    "sum(response_count)::bigint, least(sum(response_sum), 9223372036854775807)::bigint, "      \
    "mscope_hist_quantile(mscope_hist_sum(response_hist), 0.5), "                                \
    "mscope_hist_quantile(mscope_hist_sum(response_hist), 0.95), "                               \
    "mscope_hist_quantile(mscope_hist_sum(response_hist), 0.99) "                                \
    "FROM app_minutes WHERE kind = $1::smallint "                                               \
    "AND minute > to_timestamp($3::bigint / 1e6) - interval '1 minute' "                        \
    "AND minute < to_timestamp($4::bigint / 1e6) AND ($5::text IS NULL OR node = $5::text) "    \
    "AND ($6::inet IS NULL OR server_ip <<= $6::inet) "                                         \
    "AND ($7::int IS NULL OR server_port = $7::int) AND ($8::int IS NULL OR server_port = $8::int) " \
    "AND ($9::text IS NULL OR name LIKE convert_to($9::text, 'UTF8')) "                         \
    "AND ($10::text IS NULL OR endpoint LIKE convert_to($10::text, 'UTF8')) "                   \
    "GROUP BY 1, name, endpoint, server_ip, server_port "                                      \
    "HAVING (NOT $11::bool OR sum(errors) > 0) "                                                \
    "ORDER BY 1, 6 DESC, name, endpoint, server_ip, server_port LIMIT $12::int"

static char appquery__records_sql[4096 + sizeof APPQUERY__RECORDS];
static const char appquery__top_sql[] = APPQUERY__TOP;

static void appquery__records_init(void)
{
    char cols[1024]; /* 29 names: ~330 bytes */
    schema_app_col_list(cols, sizeof cols, 0);
    snprintf(appquery__records_sql, sizeof appquery__records_sql, "SELECT %s" APPQUERY__RECORDS, cols);
}

/* The records statement: the column list (schema.h) and the filters. */
static const char *appquery__records_text(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, appquery__records_init);
    return appquery__records_sql;
}

const char *appquery_template(int i)
{
    return i == 0 ? appquery__records_text() : i == 1 ? appquery__top_sql : NULL;
}

int appquery_kind(const char *name)
{
    for (int k = APPREC_DNS; k <= APPREC_HTTP; k++)
        if (name && !strcmp(name, apprec_kind_name(k))) return k;
    return 0;
}

/* A filter's LIKE pattern: with * or ? a whole-value pattern (* any bytes,
 * ? one), else a substring; LIKE's own % _ and \ taken literally. */
static void appquery__pattern(const char *in, char *out, size_t len)
{
    int glob = strpbrk(in, "*?") != NULL;
    size_t o = 0;
    if (!glob) out[o++] = '%';
    for (const char *p = in; *p && o + 4 < len; p++) {
        if (glob && *p == '*') out[o++] = '%';
        else if (glob && *p == '?') out[o++] = '_';
        else {
            if (*p == '%' || *p == '_' || *p == '\\') out[o++] = '\\';
            out[o++] = *p;
        }
    }
    if (!glob) out[o++] = '%';
    out[o] = 0;
}

static void appquery__i64(appquery_stmt *st, int i, int64_t v)
{
    snprintf(st->v[i], sizeof st->v[i], "%" PRId64, v);
    st->params[i] = st->v[i];
}

/* A text parameter (NULL when not given); too long is a bad request. */
static int appquery__text_param(appquery_stmt *st, int i, const char *v, const char *name,
                                char *err, size_t errlen)
{
    if (!v || !*v) return 0;
    if (strlen(v) >= APPQUERY_TEXT_MAX) {
        snprintf(err, errlen, "%s: at most %d bytes", name, APPQUERY_TEXT_MAX - 1);
        return -1;
    }
    snprintf(st->v[i], sizeof st->v[i], "%s", v);
    st->params[i] = st->v[i];
    return 0;
}

static int appquery__pattern_param(appquery_stmt *st, int i, const char *v, const char *name,
                                   char *err, size_t errlen)
{
    if (!v || !*v) return 0;
    if (strlen(v) >= APPQUERY_PATTERN_MAX) {
        snprintf(err, errlen, "%s: at most %d bytes", name, APPQUERY_PATTERN_MAX - 1);
        return -1;
    }
    appquery__pattern(v, st->v[i], sizeof st->v[i]);
    st->params[i] = st->v[i];
    return 0;
}

int appquery_build(const Mirrorscope__QueryApp *q, int64_t now_ns, appquery_stmt *st, char *err,
                   size_t errlen)
{
    memset(st, 0, offsetof(appquery_stmt, v));
    int kind = appquery_kind(q->kind);
    if (!kind) {
        snprintf(err, errlen, "kind: dns, tls or http");
        return -1;
    }
    if (timeparse_check_range(q->from_ns, q->to_ns, err, errlen) < 0) return -1;
    int64_t to = q->to_ns ? q->to_ns : now_ns + 1;
    if (q->port > 65535 || q->server_port > 65535) {
        snprintf(err, errlen, "port: at most 65535");
        return -1;
    }
    if (q->uri && *q->uri && kind != APPREC_HTTP) {
        snprintf(err, errlen, "uri: only for http");
        return -1;
    }
    if (q->by_minute && !q->top) {
        snprintf(err, errlen, "by_minute: only with top");
        return -1;
    }
    st->kind = kind;
    st->top = q->top;
    appquery__i64(st, 0, kind);
    if (q->top) {
        st->limit = q->limit ? q->limit : 20;
        if ((q->client && *q->client) || (q->code && *q->code)) {
            snprintf(err, errlen, "client and code filter records; the aggregates are per server "
                                  "name and endpoint, and count errors (errors)");
            return -1;
        }
        st->sql = appquery__top_sql;
        st->nparams = 12;
        st->params[1] = q->by_minute ? "true" : "false";
        appquery__i64(st, 2, q->from_ns / 1000);
        appquery__i64(st, 3, to / 1000);
        if (appquery__text_param(st, 4, q->node, "node", err, errlen) < 0 ||
            appquery__text_param(st, 5, q->server, "server", err, errlen) < 0 ||
            appquery__pattern_param(st, 8, q->name, "name", err, errlen) < 0 ||
            appquery__pattern_param(st, 9, q->uri, "uri", err, errlen) < 0)
            return -1;
        if (q->port) appquery__i64(st, 6, q->port);
        if (q->server_port) appquery__i64(st, 7, q->server_port);
        st->params[10] = q->errors ? "true" : "false";
        if (st->limit > APPQUERY_ROWS_MAX) goto limit;
        appquery__i64(st, 11, st->limit);
        return 0;
    }
    st->limit = q->limit ? q->limit : 100;
    if (st->limit > APPQUERY_ROWS_MAX) goto limit;
    st->sql = appquery__records_text();
    st->nparams = 17;
    appquery__i64(st, 1, q->from_ns / 1000000000 - 1);
    appquery__i64(st, 2, to / 1000000000 + 1);
    appquery__i64(st, 3, q->from_ns);
    appquery__i64(st, 4, to);
    if (appquery__text_param(st, 5, q->node, "node", err, errlen) < 0 ||
        appquery__text_param(st, 6, q->client, "client", err, errlen) < 0 ||
        appquery__text_param(st, 7, q->server, "server", err, errlen) < 0 ||
        appquery__pattern_param(st, 10, q->name, "name", err, errlen) < 0 ||
        appquery__pattern_param(st, 11, q->uri, "uri", err, errlen) < 0)
        return -1;
    if (q->port) appquery__i64(st, 8, q->port);
    if (q->server_port) appquery__i64(st, 9, q->server_port);
    if (q->code && *q->code) {
        char *end;
        long v = strtol(q->code, &end, 10);
        if (kind == APPREC_HTTP && q->code[0] >= '1' && q->code[0] <= '9' && !strcmp(q->code + 1, "xx"))
            appquery__i64(st, 14, q->code[0] - '0');
        else if (kind != APPREC_TLS && end != q->code && !*end && v >= 0 && v <= 65535)
            appquery__i64(st, kind == APPREC_DNS ? 12 : 13, v);
        else {
            snprintf(err, errlen, "code: a DNS rcode or an HTTP status (a number, or a class "
                                  "such as 5xx); TLS has none");
            return -1;
        }
    }
    st->params[15] = q->errors ? "true" : "false";
    appquery__i64(st, 16, st->limit);
    return 0;
limit:
    snprintf(err, errlen, "limit: at most %u rows", APPQUERY_ROWS_MAX);
    return -1;
}

/* ---- rows back into records ----------------------------------------------- */

/* One answer row, in one allocation (db_response_free frees it whole). */
typedef struct appquery_row {
    Mirrorscope__AppRow row; /* first: its address is the block's */
    apppb pb;
    apprec rec;
    char node[256];
} appquery_row;

typedef struct appquery_read {
    Mirrorscope__Response *resp;
    size_t cap;
    int bad;             /* a row that did not read back */
    char err[200];
} appquery_read;

static int64_t appquery__i(const char *v) { return v ? strtoll(v, NULL, 10) : 0; }

static void appquery__ip(const char *v, uint8_t out[16])
{
    memset(out, 0, 16);
    uint8_t a4[4];
    if (!v) return;
    if (inet_pton(AF_INET, v, a4) == 1) {
        out[10] = out[11] = 0xff;
        memcpy(out + 12, a4, 4);
    } else {
        inet_pton(AF_INET6, v, out);
    }
}

static int appquery__hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
         : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* bytea's text form (\x and hex) into out (cap bytes). Returns the length,
 * or -1 when it is not that form or does not fit. */
static long appquery__bytea(const char *v, uint8_t *out, size_t cap)
{
    if (!v || v[0] != '\\' || v[1] != 'x') return -1;
    size_t n = strlen(v + 2);
    if (n % 2 || n / 2 > cap) return -1;
    for (size_t i = 0; i < n / 2; i++) {
        int hi = appquery__hexval(v[2 + 2 * i]), lo = appquery__hexval(v[3 + 2 * i]);
        if (hi < 0 || lo < 0) return -1;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return (long)(n / 2);
}

/* bytea into a NUL-terminated text field of cap bytes. */
static int appquery__text(const char *v, char *out, size_t cap)
{
    long n = appquery__bytea(v, (uint8_t *)out, cap - 1);
    if (n < 0) return -1;
    out[n] = 0;
    return 0;
}

#define COL(c) vals[SCHEMA_APP_##c]

static void appquery__row(void *arg, int ncols, const char *const *vals)
{
    appquery_read *rd = arg;
    if (ncols < SCHEMA_APP_NCOLS || rd->bad) {
        rd->bad = 1;
        return;
    }
    appquery_row *m = xcalloc(1, sizeof *m);
    apprec *r = &m->rec;
    int bad = 0;
    snprintf(m->node, sizeof m->node, "%s", COL(node) ? COL(node) : "");
    r->kind = (uint8_t)appquery__i(COL(kind));
    r->flow_id = (uint64_t)appquery__i(COL(flow_id));
    r->vni = (uint32_t)appquery__i(COL(vni));
    appquery__ip(COL(observer), r->observer);
    appquery__ip(COL(client_ip), r->client_ip);
    appquery__ip(COL(server_ip), r->server_ip);
    r->client_port = (uint16_t)appquery__i(COL(client_port));
    r->server_port = (uint16_t)appquery__i(COL(server_port));
    r->ts_ns = appquery__i(COL(ts_ns));
    r->truncated = COL(truncated) && COL(truncated)[0] == 't';
    if (r->kind == APPREC_DNS) {
        apprec_dns *d = &r->u.dns;
        d->transport = (uint8_t)appquery__i(COL(transport));
        d->id = (uint16_t)appquery__i(COL(dns_id));
        bad |= appquery__text(COL(name), d->qname, sizeof d->qname);
        d->qtype = (uint16_t)appquery__i(COL(qtype));
        d->has_response = COL(rcode) != NULL;
        d->rcode = (uint16_t)appquery__i(COL(rcode));
        d->answers = (uint16_t)appquery__i(COL(answers));
        d->response_ns = appquery__i(COL(response_ns));
    } else if (r->kind == APPREC_TLS) {
        apprec_tls *t = &r->u.tls;
        t->record_version = (uint16_t)appquery__i(COL(record_version));
        t->client_version = (uint16_t)appquery__i(COL(client_version));
        t->has_server_hello = COL(version) != NULL;
        t->version = (uint16_t)appquery__i(COL(version));
        t->cipher = (uint16_t)appquery__i(COL(cipher));
        t->hello_rtt_ns = appquery__i(COL(response_ns));
        t->has_sni = COL(name) != NULL;
        if (t->has_sni) bad |= appquery__text(COL(name), t->sni, sizeof t->sni);
        long n = appquery__bytea(COL(alpn), t->alpn, sizeof t->alpn);
        if (n < 0) bad = 1;
        /* the names packed as in the extension: count them */
        for (long off = 0; n > 0 && off < n; t->alpn_count++) off += 1 + t->alpn[off];
        t->alpn_len = (uint16_t)(n > 0 ? n : 0);
    } else if (r->kind == APPREC_HTTP) {
        apprec_http *h = &r->u.http;
        bad |= appquery__text(COL(method), h->method, sizeof h->method);
        h->has_host = COL(name) != NULL;
        if (h->has_host) bad |= appquery__text(COL(name), h->host, sizeof h->host);
        bad |= appquery__text(COL(uri), h->uri, sizeof h->uri);
        h->has_response = COL(status) != NULL;
        h->status = (uint16_t)appquery__i(COL(status));
        h->request_body_bytes = (uint64_t)appquery__i(COL(request_body_bytes));
        h->response_body_bytes = (uint64_t)appquery__i(COL(response_body_bytes));
        h->response_ns = appquery__i(COL(response_ns));
    } else {
        bad = 1;
    }
    if (bad) { /* only a row written by someone else than batch.c */
        rd->bad = 1;
        snprintf(rd->err, sizeof rd->err, "a row of app_records that is not a record (flow %" PRIu64 ")",
                 r->flow_id);
        free(m);
        return;
    }
    mirrorscope__app_row__init(&m->row);
    apppb_fill(&m->pb, r);
    m->row.node = m->node;
    m->row.record = &m->pb.msg;
    Mirrorscope__Response *resp = rd->resp;
    xgrow((void **)&resp->app_rows, &rd->cap, resp->n_app_rows + 1, sizeof *resp->app_rows);
    resp->app_rows[resp->n_app_rows++] = &m->row;
}

#undef COL

/* ---- aggregates ----------------------------------------------------------- */

/* One aggregate, in one allocation. */
typedef struct appquery_agg {
    Mirrorscope__AppAggregate agg; /* first */
    Mirrorscope__Endpoint server;
    uint8_t ip[16];
    char kind[8];
    uint8_t text[];                /* name, then endpoint */
} appquery_agg;

typedef struct appquery_aggs {
    Mirrorscope__Response *resp;
    size_t cap;
    int kind, bad;
} appquery_aggs;

static void appquery__agg(void *arg, int ncols, const char *const *vals)
{
    appquery_aggs *a = arg;
    if (ncols < 12 || a->bad) {
        a->bad = 1;
        return;
    }
    size_t nl = vals[1] ? strlen(vals[1]) / 2 : 0, el = vals[2] ? strlen(vals[2]) / 2 : 0;
    appquery_agg *g = xcalloc(1, sizeof *g + nl + el + 2);
    Mirrorscope__AppAggregate *m = &g->agg;
    mirrorscope__app_aggregate__init(m);
    mirrorscope__endpoint__init(&g->server);
    long n1 = appquery__bytea(vals[1], g->text, nl), n2 = appquery__bytea(vals[2], g->text + nl, el);
    if (n1 < 0 || n2 < 0) {
        free(g);
        a->bad = 1;
        return;
    }
    m->minute_ns = appquery__i(vals[0]);
    snprintf(g->kind, sizeof g->kind, "%s", apprec_kind_name(a->kind));
    m->kind = g->kind;
    m->name = (ProtobufCBinaryData){ (size_t)n1, g->text };
    m->endpoint = (ProtobufCBinaryData){ (size_t)n2, g->text + nl };
    uint8_t a4[4];
    if (vals[3] && inet_pton(AF_INET, vals[3], a4) == 1) {
        memcpy(g->ip, a4, 4);
        g->server.ip = (ProtobufCBinaryData){ 4, g->ip };
    } else if (vals[3] && inet_pton(AF_INET6, vals[3], g->ip) == 1) {
        g->server.ip = (ProtobufCBinaryData){ 16, g->ip };
    }
    g->server.port = (uint32_t)appquery__i(vals[4]);
    m->server = &g->server;
    m->count = (uint64_t)appquery__i(vals[5]);
    m->errors = (uint64_t)appquery__i(vals[6]);
    m->response_count = (uint64_t)appquery__i(vals[7]);
    m->response_sum = appquery__i(vals[8]);
    m->p50_ns = appquery__i(vals[9]);
    m->p95_ns = appquery__i(vals[10]);
    m->p99_ns = appquery__i(vals[11]);
    Mirrorscope__Response *resp = a->resp;
    xgrow((void **)&resp->app_aggregates, &a->cap, resp->n_app_aggregates + 1,
          sizeof *resp->app_aggregates);
    resp->app_aggregates[resp->n_app_aggregates++] = m;
}

int appquery_run(db_t *db, const Mirrorscope__QueryApp *q, Mirrorscope__Response *resp,
                 int *bad_request, char *err, size_t errlen)
{
    static _Thread_local appquery_stmt st;
    *bad_request = 0;
    if (appquery_build(q, timeparse_now_ns(), &st, err, errlen) < 0) return *bad_request = 1, -1;
    char state[6];
    long n;
    int bad;
    if (st.top) {
        appquery_aggs a = { resp, 0, st.kind, 0 };
        n = db_exec_params(db, st.sql, st.nparams, st.params, appquery__agg, &a, state, err, errlen);
        bad = a.bad;
        if (bad) snprintf(err, errlen, "an app_minutes row that does not read back");
    } else {
        appquery_read rd = { resp, 0, 0, "" };
        n = db_exec_params(db, st.sql, st.nparams, st.params, appquery__row, &rd, state, err, errlen);
        bad = rd.bad;
        if (bad) snprintf(err, errlen, "%s", rd.err);
    }
    if (n < 0) {
        *bad_request = !strncmp(state, "22", 2); /* a client or server that is not an address */
        return -1;
    }
    return bad ? -1 : 0;
}
