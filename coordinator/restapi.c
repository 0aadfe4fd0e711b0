/* restapi.c - the REST API (see restapi.h).
 *
 * DESIGN: a handler checks the token, turns the URL's parameters into the
 * same protobuf Request the RPC API takes (unknown or bad parameters are a
 * 400 naming them), and runs it as a database job through the query layer;
 * the job's end answers with the rows as JSON. An NDJSON export is a chain
 * of such jobs, one page each: the next page is asked for only when the
 * client has taken the last one, so a slow reader holds one page of memory.
 * Searches and drill-downs (POST /api/v1/search, GET /api/v1/flows/pcap)
 * stream a pcap through scatter.h with the client's reading as credit.
 */
#include "restapi.h"

#include "apppb.h"
#include "config.h"
#include "drill.h"
#include "filter.h"
#include "log.h"
#include "monitor.h"
#include "monrest.h"
#include "pbcopy.h"
#include "pbjson.h"
#include "pcapio.h"
#include "query.h"
#include "timeparse.h"
#include "token.h"
#include "xmalloc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REST_PAGE 1000           /* NDJSON export: flows per database job */
#define REST_PARAM_MAX 1024
#define REST_SEARCHES_MAX 256    /* HTTP searches at once (scatter refuses beyond its own limit) */
#define REST_DONE_KEPT 64        /* finished searches whose status can still be asked for */
#define REST_MAX_NODES 4096

extern const char restapi_openapi_json[]; /* openapi.json, compiled in (CMake) */

/* A search streamed to an HTTP client. It lives until both the search has
 * ended (scatter's ended()) and the HTTP request is over (on_close). */
typedef struct rest_search {
    struct restapi *api;
    uint64_t id;
    bus_peer peer;           /* the key scatter knows it by */
    httpd_req_t *req;        /* NULL once the request is over */
    int header_sent, final_pending, final_sent, search_over, gone, status_kept;
} rest_search;

struct restapi {
    httpd_t *http;
    uv_timer_t *reaper;      /* cancels searches whose client went (freed by close) */
    rest_search *searches[REST_SEARCHES_MAX];
    json_t *done[REST_DONE_KEPT]; /* statuses of ended searches, a ring */
    int done_next;
    uint64_t next_search;
    restapi_opts o;
    char read_token[TOKEN_MAX], admin_token[TOKEN_MAX];
    registry_t *reg;
    scatter_t *sc;
    dbpool_t *pool;
    restapi_stats st;
};

/* A query on its way through the database pool; for an NDJSON export, the
 * export's state across its pages. */
typedef struct rest_job {
    restapi_t *api;
    httpd_req_t *req;
    Mirrorscope__Request *q;    /* owned (unpacked copy) */
    Mirrorscope__Response resp;
    int ndjson, streaming, gone, in_db;
    uint64_t rows;
} rest_job;

/* ---- errors and auth ------------------------------------------------------ */

static void rest__error(restapi_t *a, httpd_req_t *r, int status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void rest__error(restapi_t *a, httpd_req_t *r, int status, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    msg[strcspn(msg, "\n")] = 0;
    a->st.errors++;
    httpd_respond_error(r, status, "%s", msg);
}

enum { NEED_READ, NEED_ADMIN };

/* 1 when the request carries a token good enough; else answered (401/403). */
static int rest__auth(restapi_t *a, httpd_req_t *r, int need)
{
    const char *tok = httpd_bearer(r);
    if (tok && token_equal(a->admin_token, tok)) return 1;
    if (tok && token_equal(a->read_token, tok)) {
        if (need == NEED_READ) return 1;
        a->st.forbidden++;
        rest__error(a, r, 403, "this needs the admin token (the read token only queries)");
        return 0;
    }
    a->st.unauthenticated++;
    rest__error(a, r, 401, tok ? "wrong token" : "missing token: send Authorization: Bearer TOKEN");
    return 0;
}

/* ---- parameters ----------------------------------------------------------- */

/* Every parameter of the query must be one of known (NULL-terminated).
 * Returns 0, or -1 after answering 400. */
static int rest__known(restapi_t *a, httpd_req_t *r, const char *const *known)
{
    const char *p = httpd_query(r);
    while (*p) {
        size_t len = strcspn(p, "&"), klen = strcspn(p, "=&");
        int ok = klen == 0;
        for (int i = 0; known[i] && !ok; i++)
            ok = strlen(known[i]) == klen && !memcmp(known[i], p, klen);
        if (!ok) {
            rest__error(a, r, 400, "unknown parameter '%.*s'", (int)(klen > 64 ? 64 : klen), p);
            return -1;
        }
        p += len + (p[len] == '&');
    }
    return 0;
}

/* The parameter name: 0 absent, 1 present (value in out), -1 answered 400. */
static int rest__param(restapi_t *a, httpd_req_t *r, const char *name, char *out, size_t len)
{
    int rc = httpd_param(r, name, out, len);
    if (rc < 0) rest__error(a, r, 400, "%s: malformed or too long", name);
    return rc;
}

static int rest__time(restapi_t *a, httpd_req_t *r, const char *name, int64_t *out)
{
    char v[REST_PARAM_MAX];
    int rc = rest__param(a, r, name, v, sizeof v);
    if (rc <= 0) return rc;
    if (timeparse_parse(v, timeparse_now_ns(), out) < 0) {
        rest__error(a, r, 400, "%s: '%.100s' is not a time (RFC 3339, Unix seconds, or a duration "
                               "ago such as 15m)", name, v);
        return -1;
    }
    return 1;
}

static int rest__uint(restapi_t *a, httpd_req_t *r, const char *name, uint32_t min, uint32_t max,
                      uint32_t *out)
{
    char v[REST_PARAM_MAX], *end;
    int rc = rest__param(a, r, name, v, sizeof v);
    if (rc <= 0) return rc;
    errno = 0;
    unsigned long x = strtoul(v, &end, 10);
    if (!*v || *end || errno || x < min || x > max) {
        rest__error(a, r, 400, "%s: '%.100s' is not a number from %u to %u", name, v, min, max);
        return -1;
    }
    *out = (uint32_t)x;
    return 1;
}

static int rest__ip(restapi_t *a, httpd_req_t *r, const char *name, char **out)
{
    char v[REST_PARAM_MAX];
    unsigned char tmp[16];
    int rc = rest__param(a, r, name, v, sizeof v);
    if (rc <= 0) return rc;
    if (inet_pton(AF_INET, v, tmp) != 1 && inet_pton(AF_INET6, v, tmp) != 1) {
        rest__error(a, r, 400, "%s: '%.100s' is not an IPv4 or IPv6 address", name, v);
        return -1;
    }
    *out = xstrdup(v);
    return 1;
}

/* An address or network (monitor_net_canon()), canonical, into *out. */
static int rest__net(restapi_t *a, httpd_req_t *r, const char *name, char **out)
{
    char v[REST_PARAM_MAX], canon[64];
    int rc = rest__param(a, r, name, v, sizeof v);
    if (rc <= 0) return rc;
    if (monitor_net_canon(v, canon, sizeof canon) < 0) {
        rest__error(a, r, 400, "%s: '%.100s' is not an address or network (10.0.3.7, 10.0.3.0/24)", name, v);
        return -1;
    }
    *out = xstrdup(canon);
    return 1;
}

static int rest__str(restapi_t *a, httpd_req_t *r, const char *name, const char *const *allowed,
                     char **out)
{
    char v[REST_PARAM_MAX];
    int rc = rest__param(a, r, name, v, sizeof v);
    if (rc <= 0) return rc;
    int ok = !allowed;
    for (int i = 0; allowed && allowed[i] && !ok; i++) ok = !strcmp(allowed[i], v);
    if (!ok) {
        char list[256] = "";
        for (int i = 0; allowed[i]; i++)
            snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "", allowed[i]);
        rest__error(a, r, 400, "%s: '%.100s' is not one of %s", name, v, list);
        return -1;
    }
    *out = xstrdup(v);
    return 1;
}

static int rest__proto(restapi_t *a, httpd_req_t *r, uint32_t *out)
{
    static const struct { const char *name; uint32_t num; } names[] = {
        { "tcp", 6 }, { "udp", 17 }, { "icmp", 1 }, { "icmp6", 58 }, { "sctp", 132 },
    };
    char v[REST_PARAM_MAX];
    int rc = rest__param(a, r, "proto", v, sizeof v);
    if (rc <= 0) return rc;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!strcasecmp(v, names[i].name)) {
            *out = names[i].num;
            return 1;
        }
    return rest__uint(a, r, "proto", 0, 255, out);
}

static int rest__bool(restapi_t *a, httpd_req_t *r, const char *name, protobuf_c_boolean *out)
{
    char v[16];
    int rc = rest__param(a, r, name, v, sizeof v);
    if (rc <= 0) return rc;
    if (!*v || !strcmp(v, "1") || !strcmp(v, "true")) *out = 1;
    else if (!strcmp(v, "0") || !strcmp(v, "false")) *out = 0;
    else {
        rest__error(a, r, 400, "%s: '%.15s' is not true or false", name, v);
        return -1;
    }
    return 1;
}

static int rest__duration(restapi_t *a, httpd_req_t *r, const char *name, int64_t *out)
{
    char v[REST_PARAM_MAX];
    int rc = rest__param(a, r, name, v, sizeof v);
    if (rc <= 0) return rc;
    if (config_parse_duration(v, out) < 0) {
        rest__error(a, r, 400, "%s: '%.100s' is not a duration (e.g. 5ms, 1s)", name, v);
        return -1;
    }
    return 1;
}

/* ---- running a query ------------------------------------------------------ */

static int rest__work(db_t *db, void *arg, char *err, size_t errlen)
{
    rest_job *j = arg;
    query_opts qo = { j->api->o.stale_ns, j->api->o.dead_ns };
    return query_run(db, &qo, j->q, &j->resp, err, errlen);
}

static void rest__job_free(rest_job *j)
{
    if (j->streaming) j->api->st.streams_active--;
    db_response_free(&j->resp);
    mirrorscope__request__free_unpacked(j->q, NULL);
    free(j);
}

/* The rows of a page: a JSON array of the Response's repeated field (the
 * one its request fills; named by rest__key(), also when it is empty). */
static json_t *rest__rows(const Mirrorscope__Response *resp)
{
    json_t *a = json_array();
    for (size_t i = 0; i < resp->n_nodes; i++)
        json_array_append_new(a, pbjson_message(&resp->nodes[i]->base));
    for (size_t i = 0; i < resp->n_flows; i++)
        json_array_append_new(a, pbjson_message(&resp->flows[i]->base));
    for (size_t i = 0; i < resp->n_talkers; i++)
        json_array_append_new(a, pbjson_message(&resp->talkers[i]->base));
    for (size_t i = 0; i < resp->n_minutes; i++)
        json_array_append_new(a, pbjson_message(&resp->minutes[i]->base));
    return a;
}

static const char *rest__key(const Mirrorscope__Request *q)
{
    switch (q->body_case) {
    case MIRRORSCOPE__REQUEST__BODY_QUERY_FLOWS: return "flows";
    case MIRRORSCOPE__REQUEST__BODY_TOP_TALKERS: return "talkers";
    case MIRRORSCOPE__REQUEST__BODY_TIME_SERIES: return "minutes";
    default: return "nodes";
    }
}

static void rest__submit(rest_job *j);

/* Application records and their aggregates, {"records": [...]} or
 * {"aggregates": [...]}: each element written by its one JSON writer
 * (apprec_json, the recorder's; apppb_aggregate_json), so the bytes are
 * those of `mscope dns|tls|http --json` and the numbers exact (flow ids
 * past 2^63 are beyond jansson's integers; the issue fixes these fields as
 * numbers, not pbjson's strings). */
static void rest__app_respond(rest_job *j)
{
    static apprec rec;
    const Mirrorscope__QueryApp *q = j->q->query_app;
    size_t cap = 65536, len = 0;
    char *buf = xmalloc(cap);
    len = (size_t)snprintf(buf, cap, "{\"%s\":[", q->top ? "aggregates" : "records");
    size_t n = q->top ? j->resp.n_app_aggregates : j->resp.n_app_rows;
    int first = 1;
    for (size_t i = 0; i < n; i++) {
        if (cap - len < APPREC_JSON_MAX + 8) buf = xrealloc(buf, cap = cap * 2 + APPREC_JSON_MAX);
        const char *why;
        int w = -1;
        if (q->top)
            w = apppb_aggregate_json(j->resp.app_aggregates[i], q->by_minute, buf + len + 1, cap - len - 1);
        else if (apppb_read(&rec, j->resp.app_rows[i]->record, &why) == 0)
            w = apprec_json(&rec, j->resp.app_rows[i]->node, buf + len + 1, cap - len - 1);
        if (w < 0) continue; /* cannot happen: the rows came from records */
        buf[len] = first ? ' ' : ',';
        first = 0;
        len += 1 + (size_t)w;
    }
    len += (size_t)snprintf(buf + len, cap - len, "]}\n");
    httpd_respond(j->req, 200, "application/json", buf, len);
    free(buf);
}

/* NDJSON: the client took the last page; fetch the next. */
static void rest__proceed(void *data)
{
    rest_job *j = data;
    if (j->resp.next_cursor && *j->resp.next_cursor) {
        Mirrorscope__QueryFlows *f = j->q->query_flows;
        if (f->cursor != protobuf_c_empty_string) free(f->cursor);
        f->cursor = xstrdup(j->resp.next_cursor);
        db_response_free(&j->resp);
        mirrorscope__response__init(&j->resp);
        rest__submit(j);
    }
}

static void rest__closed(void *data, int complete)
{
    rest_job *j = data;
    if (!complete) log_info("REST export: the client went away after %" PRIu64 " rows", j->rows);
    j->gone = 1;
    if (!j->in_db) rest__job_free(j); /* else the job's end frees it */
}

/* One NDJSON page: every row a line; the last page ends the answer. */
static void rest__send_page(rest_job *j)
{
    size_t cap = 65536, len = 0;
    char *buf = xmalloc(cap);
    for (size_t i = 0; i < j->resp.n_flows; i++) {
        json_t *row = pbjson_message(&j->resp.flows[i]->base);
        char *line = json_dumps(row, JSON_COMPACT | JSON_ENSURE_ASCII);
        json_decref(row);
        size_t n = line ? strlen(line) : 0;
        if (len + n + 2 > cap) buf = xrealloc(buf, cap = (len + n + 2) * 2);
        memcpy(buf + len, line, n);
        len += n;
        buf[len++] = '\n';
        free(line);
    }
    j->rows += j->resp.n_flows;
    int last = !(j->resp.next_cursor && *j->resp.next_cursor);
    httpd_stream_send(j->req, buf, len, last); /* last: j may be freed inside */
    free(buf);
}

static void rest__done(void *arg, int rc, const char *err)
{
    rest_job *j = arg;
    restapi_t *a = j->api;
    j->in_db = 0;
    a->st.queries_active--;
    if (j->gone) { /* an export whose client went away meanwhile */
        rest__job_free(j);
        return;
    }
    if (rc < 0) {
        int status = rc == QUERY_BAD_REQUEST ? 400
                   : rc == QUERY_UNREACHABLE || rc == DBPOOL_UNREACHABLE ? 503 : 500;
        if (j->streaming) { /* headers went already: end the stream short */
            log_warn("REST export stopped after %" PRIu64 " rows: %s", j->rows, err);
            httpd_stream_send(j->req, "", 0, 1);
            return;
        }
        rest__error(a, j->req, status, "%s", err);
        rest__job_free(j);
        return;
    }
    if (j->ndjson) {
        if (!j->streaming) {
            if (httpd_stream_start(j->req, 200, "application/x-ndjson", rest__proceed,
                                   rest__closed, j, NULL) < 0) {
                rest__job_free(j);
                return;
            }
            j->streaming = 1;
            a->st.streams_active++;
        }
        rest__send_page(j);
        return;
    }
    if (j->q->body_case == MIRRORSCOPE__REQUEST__BODY_QUERY_APP) {
        rest__app_respond(j);
        rest__job_free(j);
        return;
    }
    json_t *o = json_object();
    json_object_set_new(o, rest__key(j->q), rest__rows(&j->resp));
    if (j->q->body_case == MIRRORSCOPE__REQUEST__BODY_QUERY_FLOWS)
        json_object_set_new(o, "next_cursor", j->resp.next_cursor && *j->resp.next_cursor
                                                  ? json_string(j->resp.next_cursor) : json_null());
    httpd_respond_json(j->req, 200, o);
    rest__job_free(j);
}

static void rest__submit(rest_job *j)
{
    j->in_db = 1;
    j->api->st.queries_active++;
    dbpool_submit(j->api->pool, rest__work, rest__done, j);
}

/* Run q (copied) for r; answers 503 when too many queries are in flight. */
static int rest__query(restapi_t *a, httpd_req_t *r, const Mirrorscope__Request *q, int ndjson)
{
    if (a->st.queries_active >= (uint64_t)a->o.max_queries) {
        rest__error(a, r, 503, "busy: %d queries are running; try again later", a->o.max_queries);
        return 0;
    }
    rest_job *j = xcalloc(1, sizeof *j);
    j->api = a;
    j->req = r;
    j->q = (Mirrorscope__Request *)pbcopy(&q->base); /* the handler's strings go */
    j->ndjson = ndjson;
    mirrorscope__response__init(&j->resp);
    rest__submit(j);
    return 0;
}

/* ---- endpoints ------------------------------------------------------------ */

static int rest__nodes(restapi_t *a, httpd_req_t *r)
{
    static const char *const known[] = { NULL };
    if (rest__known(a, r, known) < 0) return 0;
    Mirrorscope__Request q = MIRRORSCOPE__REQUEST__INIT;
    Mirrorscope__ListNodes ln = MIRRORSCOPE__LIST_NODES__INIT;
    q.body_case = MIRRORSCOPE__REQUEST__BODY_LIST_NODES;
    q.list_nodes = &ln;
    return rest__query(a, r, &q, 0);
}

/* The flows query of GET /api/v1/flows and /api/v1/flows/pcap, from the
 * query string (strings owned: rest__flowq_free()). Returns 0, or -1 after
 * answering 400. */
typedef struct rest_flowq {
    Mirrorscope__QueryFlows f;
    char *host, *order, *node, *cursor, *server, *client, *monitor;
    int limit_given;
} rest_flowq;

static int rest__flowq_parse(restapi_t *a, httpd_req_t *r, const char *const *known,
                             uint32_t max_limit, uint32_t def_limit, rest_flowq *q)
{
    static const char *const orders[] = { "newest", "first", "last", "bytes", "packets", "rtt",
                                          "retransmissions", NULL };
    memset(q, 0, sizeof *q);
    mirrorscope__query_flows__init(&q->f);
    Mirrorscope__QueryFlows *f = &q->f;
    uint32_t port = 0, limit = def_limit, server_port = 0;
    int ok = rest__known(a, r, known) == 0 && rest__time(a, r, "from", &f->from_ns) >= 0 &&
             rest__time(a, r, "to", &f->to_ns) >= 0 && rest__ip(a, r, "host", &q->host) >= 0 &&
             rest__uint(a, r, "port", 1, 65535, &port) >= 0 && rest__proto(a, r, &f->proto) >= 0 &&
             rest__duration(a, r, "min_rtt", &f->min_rtt_ns) >= 0 &&
             rest__bool(a, r, "retransmissions", &f->only_retransmissions) >= 0 &&
             rest__str(a, r, "order", orders, &q->order) >= 0 &&
             (q->limit_given = rest__uint(a, r, "limit", 1, max_limit, &limit)) >= 0 &&
             rest__str(a, r, "node", NULL, &q->node) >= 0 &&
             rest__str(a, r, "cursor", NULL, &q->cursor) >= 0 &&
             rest__net(a, r, "server", &q->server) >= 0 && rest__net(a, r, "client", &q->client) >= 0 &&
             rest__uint(a, r, "server_port", 1, 65535, &server_port) >= 0 &&
             rest__str(a, r, "monitor", NULL, &q->monitor) >= 0;
    f->server = q->server ? q->server : (char *)protobuf_c_empty_string;
    f->client = q->client ? q->client : (char *)protobuf_c_empty_string;
    f->server_port = server_port;
    f->monitor = q->monitor ? q->monitor : (char *)protobuf_c_empty_string;
    f->host = q->host ? q->host : (char *)protobuf_c_empty_string;
    f->port = port;
    f->order_by = q->order ? q->order : "newest";
    f->limit = limit;
    f->node = q->node ? q->node : (char *)protobuf_c_empty_string;
    f->cursor = q->cursor ? q->cursor : (char *)protobuf_c_empty_string;
    return ok ? 0 : -1;
}

static void rest__flowq_free(rest_flowq *q)
{
    free(q->host);
    free(q->order);
    free(q->node);
    free(q->cursor);
    free(q->server);
    free(q->client);
    free(q->monitor);
}

static int rest__flows(restapi_t *a, httpd_req_t *r)
{
    static const char *const known[] = { "from", "to", "host", "port", "proto", "min_rtt",
                                          "retransmissions", "order", "limit", "node", "cursor",
                                          "server", "client", "server_port", "monitor", NULL };
    rest_flowq q;
    if (rest__flowq_parse(a, r, known, 10000, 100, &q) == 0) {
        const char *accept = httpd_header(r, "accept");
        int ndjson = accept && strstr(accept, "application/x-ndjson");
        /* An export pages by REST_PAGE unless told; limit is then the page size. */
        if (ndjson && !q.limit_given) q.f.limit = REST_PAGE;
        Mirrorscope__Request req = MIRRORSCOPE__REQUEST__INIT;
        req.body_case = MIRRORSCOPE__REQUEST__BODY_QUERY_FLOWS;
        req.query_flows = &q.f;
        rest__query(a, r, &req, ndjson);
    }
    rest__flowq_free(&q);
    return 0;
}

static int rest__top(restapi_t *a, httpd_req_t *r)
{
    static const char *const known[] = { "from", "to", "by", "metric", "limit", NULL };
    static const char *const bys[] = { "server", "client", NULL };
    static const char *const metrics[] = { "bytes", "packets", "flows", "retransmissions", NULL };
    Mirrorscope__TopTalkers t = MIRRORSCOPE__TOP_TALKERS__INIT;
    char *by = NULL, *metric = NULL;
    uint32_t limit = 10;
    if (rest__known(a, r, known) == 0 && rest__time(a, r, "from", &t.from_ns) >= 0 &&
        rest__time(a, r, "to", &t.to_ns) >= 0 && rest__str(a, r, "by", bys, &by) >= 0 &&
        rest__str(a, r, "metric", metrics, &metric) >= 0 &&
        rest__uint(a, r, "limit", 1, 1000, &limit) >= 0) {
        t.by = by ? by : "server";
        t.metric = metric ? metric : "bytes";
        t.limit = limit;
        Mirrorscope__Request q = MIRRORSCOPE__REQUEST__INIT;
        q.body_case = MIRRORSCOPE__REQUEST__BODY_TOP_TALKERS;
        q.top_talkers = &t;
        rest__query(a, r, &q, 0);
    }
    free(by);
    free(metric);
    return 0;
}

static int rest__series(restapi_t *a, httpd_req_t *r)
{
    static const char *const known[] = { "from", "to", "node", "server", "port", NULL };
    Mirrorscope__TimeSeries t = MIRRORSCOPE__TIME_SERIES__INIT;
    char *node = NULL, *server = NULL;
    uint32_t port = 0;
    if (rest__known(a, r, known) == 0 && rest__time(a, r, "from", &t.from_ns) >= 0 &&
        rest__time(a, r, "to", &t.to_ns) >= 0 && rest__str(a, r, "node", NULL, &node) >= 0 &&
        rest__ip(a, r, "server", &server) >= 0 && rest__uint(a, r, "port", 1, 65535, &port) >= 0) {
        t.node = node ? node : (char *)protobuf_c_empty_string;
        t.server_ip = server ? server : (char *)protobuf_c_empty_string;
        t.server_port = port;
        Mirrorscope__Request q = MIRRORSCOPE__REQUEST__INIT;
        q.body_case = MIRRORSCOPE__REQUEST__BODY_TIME_SERIES;
        q.time_series = &t;
        rest__query(a, r, &q, 0);
    }
    free(node);
    free(server);
    return 0;
}

/* GET /api/v1/app/KIND[/top]: application records of a kind, or their
 * aggregates. The time range defaults to the last hour, as the CLI's. */
static int rest__app(restapi_t *a, httpd_req_t *r)
{
    static const char *const known[] = { "from", "to", "node", "client", "server", "port",
                                          "server_port", "name", "uri", "code", "errors", "limit",
                                          "by_minute", NULL };
    const char *path = httpd_path(r) + strlen("/api/v1/app/");
    char kind[8];
    snprintf(kind, sizeof kind, "%.*s", (int)strcspn(path, "/"), path);
    int top = strchr(path, '/') != NULL;
    Mirrorscope__QueryApp q = MIRRORSCOPE__QUERY_APP__INIT;
    char *node = NULL, *client = NULL, *server = NULL, *name = NULL, *uri = NULL, *code = NULL;
    uint32_t limit = 0, port = 0, server_port = 0;
    q.from_ns = timeparse_now_ns() - 3600LL * 1000000000LL;
    if (rest__known(a, r, known) == 0 && rest__time(a, r, "from", &q.from_ns) >= 0 &&
        rest__time(a, r, "to", &q.to_ns) >= 0 && rest__str(a, r, "node", NULL, &node) >= 0 &&
        rest__net(a, r, "client", &client) >= 0 && rest__net(a, r, "server", &server) >= 0 &&
        rest__uint(a, r, "port", 1, 65535, &port) >= 0 &&
        rest__uint(a, r, "server_port", 1, 65535, &server_port) >= 0 &&
        rest__str(a, r, "name", NULL, &name) >= 0 && rest__str(a, r, "uri", NULL, &uri) >= 0 &&
        rest__str(a, r, "code", NULL, &code) >= 0 && rest__bool(a, r, "errors", &q.errors) >= 0 &&
        rest__uint(a, r, "limit", 1, 10000, &limit) >= 0 &&
        rest__bool(a, r, "by_minute", &q.by_minute) >= 0) {
        q.kind = kind;
        q.top = top;
        q.node = node ? node : (char *)protobuf_c_empty_string;
        q.client = client ? client : (char *)protobuf_c_empty_string;
        q.server = server ? server : (char *)protobuf_c_empty_string;
        q.name = name ? name : (char *)protobuf_c_empty_string;
        q.uri = uri ? uri : (char *)protobuf_c_empty_string;
        q.code = code ? code : (char *)protobuf_c_empty_string;
        q.port = port;
        q.server_port = server_port;
        q.limit = limit;
        if (q.by_minute && !top) {
            rest__error(a, r, 400, "by_minute: only for /api/v1/app/%s/top", kind);
        } else {
            Mirrorscope__Request req = MIRRORSCOPE__REQUEST__INIT;
            req.body_case = MIRRORSCOPE__REQUEST__BODY_QUERY_APP;
            req.query_app = &q;
            rest__query(a, r, &req, 0);
        }
    }
    free(node);
    free(client);
    free(server);
    free(name);
    free(uri);
    free(code);
    return 0;
}

/* ---- search --------------------------------------------------------------- */

static json_t *rest__status_json(uint64_t id, const char *state, const char *error,
                                 const Mirrorscope__SearchTrailer *t)
{
    char ids[32];
    snprintf(ids, sizeof ids, "%" PRIu64, id);
    return json_pack("{s:s, s:s, s:o, s:o}", "id", ids, "state", state, "error",
                     error ? json_string(error) : json_null(), "trailer",
                     t ? pbjson_message(&t->base) : json_null());
}

static void rest__keep_status(restapi_t *a, json_t *st)
{
    json_decref(a->done[a->done_next]);
    a->done[a->done_next] = st;
    a->done_next = (a->done_next + 1) % REST_DONE_KEPT;
}

static void rest__search_release(rest_search *hs)
{
    restapi_t *a = hs->api;
    for (int i = 0; i < REST_SEARCHES_MAX; i++)
        if (a->searches[i] == hs) a->searches[i] = NULL;
    a->st.streams_active--;
    free(hs);
}

/* Send what can go now: the pcap header with the first piece, the end of
 * the answer once the search is over. Returns 0, or -1 if not ready. */
static int rest__search_piece(rest_search *hs, const uint8_t *data, size_t len, int final)
{
    if (!hs->req || !httpd_stream_ready(hs->req)) return -1;
    if (!hs->header_sent) {
        /* Prefix the file header: one piece, one round trip. */
        uint8_t *buf = xmalloc(PCAPIO_FILE_HDR + len);
        pcapio_file_header(buf);
        if (len) memcpy(buf + PCAPIO_FILE_HDR, data, len);
        hs->header_sent = 1;
        hs->final_sent = final;
        httpd_stream_send(hs->req, buf, PCAPIO_FILE_HDR + len, final);
        free(buf);
        return 0;
    }
    hs->final_sent = final;
    httpd_stream_send(hs->req, data, len, final);
    return 0;
}

/* scatter_sink.send: chunks go to the client (scatter sends one only when
 * it has credit, i.e. when the stream is ready); the trailer is kept for
 * GET /api/v1/searches/ID and ends the answer. */
static int rest__sink_send(void *ctx, const Mirrorscope__Response *resp)
{
    rest_search *hs = ctx;
    if (hs->gone || !hs->req) return -1;
    if (resp->search_chunk) {
        const ProtobufCBinaryData *rec = &resp->search_chunk->records;
        return rest__search_piece(hs, rec->data, rec->len, 0) < 0 ? -1 : 0;
    }
    if (resp->search_trailer) {
        int failed = resp->status != MIRRORSCOPE__RESPONSE__STATUS__OK;
        rest__keep_status(hs->api, rest__status_json(hs->id, failed ? "failed" : "done",
                                                     failed ? resp->error : NULL,
                                                     resp->search_trailer));
        hs->status_kept = 1;
        if (rest__search_piece(hs, NULL, 0, 1) < 0) hs->final_pending = 1;
    }
    return 0;
}

/* scatter_sink.ended: the search is over, whatever the reason. */
static void rest__sink_ended(void *ctx)
{
    rest_search *hs = ctx;
    hs->search_over = 1;
    /* Stopped without a trailer: the client went away or idled too long,
     * or shutdown. Its status says so. */
    if (!hs->status_kept) {
        rest__keep_status(hs->api, rest__status_json(hs->id, "cancelled",
                                                     hs->req ? "the search was stopped"
                                                             : "the client went away",
                                                     NULL));
        hs->status_kept = 1;
    }
    if (hs->req && !hs->final_sent && !hs->final_pending) {
        if (rest__search_piece(hs, NULL, 0, 1) < 0) hs->final_pending = 1;
    }
    if (!hs->req) rest__search_release(hs);
}

/* The client took the last piece: one more chunk of credit, or the end. */
static void rest__search_proceed(void *data)
{
    rest_search *hs = data;
    if (hs->final_pending) {
        hs->final_pending = 0;
        rest__search_piece(hs, NULL, 0, 1);
        return;
    }
    if (hs->search_over) return;
    scatter_credit(hs->api->sc, &hs->peer, hs->id, 1);
    scatter_work(hs->api->sc);
}

static void rest__on_reaper(uv_timer_t *t)
{
    restapi_t *a = t->data;
    for (int i = 0; i < REST_SEARCHES_MAX; i++) {
        rest_search *hs = a->searches[i];
        if (hs && hs->gone && !hs->search_over) {
            log_info("search %" PRIu64 ": the HTTP client went away; cancelled", hs->id);
            scatter_cancel(a->sc, &hs->peer, hs->id); /* ended() releases it */
        }
    }
}

static void rest__search_closed(void *data, int complete)
{
    rest_search *hs = data;
    hs->req = NULL;
    if (hs->search_over) {
        rest__search_release(hs);
        return;
    }
    /* Cancel from the loop, not from inside whatever h2o was doing. */
    (void)complete;
    hs->gone = 1;
    if (hs->api->reaper) uv_timer_start(hs->api->reaper, rest__on_reaper, 0, 0);
}

/* A search's slot and stream state (released by rest__search_release()),
 * or NULL after answering 503 when every slot is taken. */
static rest_search *rest__search_new(restapi_t *a, httpd_req_t *r)
{
    int slot = -1;
    for (int i = 0; i < REST_SEARCHES_MAX && slot < 0; i++)
        if (!a->searches[i]) slot = i;
    if (slot < 0) {
        rest__error(a, r, 503, "busy: too many searches; try again later");
        return NULL;
    }
    rest_search *hs = xcalloc(1, sizeof *hs);
    hs->api = a;
    hs->id = ++a->next_search;
    hs->req = r;
    hs->peer.len = (size_t)snprintf((char *)hs->peer.id, sizeof hs->peer.id, "http/%" PRIu64, hs->id);
    a->searches[slot] = hs;
    a->st.streams_active++;
    return hs;
}

/* The search runs: start the answer (a pcap named file). */
static void rest__search_stream(rest_search *hs, const char *file)
{
    restapi_t *a = hs->api;
    char ids[32], disp[128];
    snprintf(ids, sizeof ids, "%" PRIu64, hs->id);
    snprintf(disp, sizeof disp, "attachment; filename=\"%s\"", file);
    const char *headers[] = { "x-mscope-search-id", ids, "content-disposition", disp, NULL };
    if (httpd_stream_start(hs->req, 200, "application/vnd.tcpdump.pcap", rest__search_proceed,
                           rest__search_closed, hs, headers) < 0) {
        hs->req = NULL; /* the client went before the first byte */
        hs->gone = 1;
        if (a->reaper) uv_timer_start(a->reaper, rest__on_reaper, 0, 0);
    }
}

/* drill_started_fn of GET /api/v1/flows/pcap. */
static void rest__drill_started(void *ctx, int ok, int bad, const char *err)
{
    rest_search *hs = ctx;
    if (ok) {
        rest__search_stream(hs, "mscope-flows.pcap");
        return;
    }
    rest__error(hs->api, hs->req, bad ? 400 : strstr(err, "busy") ? 503 : 500, "%s", err);
    rest__search_release(hs);
}

/* GET /api/v1/flows/pcap: the packets of the flows GET /api/v1/flows would
 * select with the same parameters (drill.h), as one pcap; limit defaults to
 * 10000 flows (at most 100000); filter narrows the packets with a tcpdump
 * expression. The answer's status: GET /api/v1/searches/ID. */
static int rest__flows_pcap(restapi_t *a, httpd_req_t *r)
{
    static const char *const known[] = { "from", "to", "host", "port", "proto", "min_rtt",
                                          "retransmissions", "order", "limit", "node", "filter",
                                          "server", "client", "server_port", "monitor", NULL };
    rest_flowq fq;
    char filter[4096] = "", err[1024];
    if (rest__flowq_parse(a, r, known, DRILL_MAX_FLOWS, DRILL_DEFAULT_FLOWS, &fq) < 0) goto out;
    if (httpd_param(r, "filter", filter, sizeof filter) < 0) {
        rest__error(a, r, 400, "filter: too long or malformed");
        goto out;
    }
    filter_t *f = filter_new(filter, err, sizeof err);
    if (!f) {
        rest__error(a, r, 400, "filter: %s", err);
        goto out;
    }
    filter_free(f);
    rest_search *hs = rest__search_new(a, r);
    if (!hs) goto out;
    Mirrorscope__SearchQuery q = MIRRORSCOPE__SEARCH_QUERY__INIT;
    q.filter = filter;
    q.credit = 1;
    q.flows_of = &fq.f;
    scatter_sink sink = { rest__sink_send, rest__sink_ended, hs };
    drill_env env = { a->pool, a->reg, a->sc };
    if (drill_start(&env, &hs->peer, hs->id, &q, &sink, rest__drill_started, hs, err, sizeof err) < 0) {
        rest__search_release(hs);
        rest__error(a, r, 400, "%s", err);
    }
out:
    rest__flowq_free(&fq);
    return 0;
}

/* The JSON body into a SearchQuery (strings borrowed from body). Returns 0,
 * or -1 after answering 400. */
static int rest__search_query(restapi_t *a, httpd_req_t *r, json_t *body,
                              Mirrorscope__SearchQuery *q, char ***nodes)
{
    static const char *const known[] = { "filter", "from", "to", "nodes", "max_packets",
                                         "max_bytes", "dedup", "dedup_window", "node_timeout",
                                         NULL };
    const char *k;
    json_t *v;
    int64_t now = timeparse_now_ns();
    json_object_foreach(body, k, v) {
        int ok = 0;
        for (int i = 0; known[i] && !ok; i++) ok = !strcmp(k, known[i]);
        if (!ok) {
            rest__error(a, r, 400, "unknown field '%.64s' in the search", k);
            return -1;
        }
        if (!strcmp(k, "filter")) {
            if (!json_is_string(v)) goto bad;
            q->filter = (char *)json_string_value(v);
        } else if (!strcmp(k, "from") || !strcmp(k, "to")) {
            char tmp[64];
            const char *t = json_is_string(v) ? json_string_value(v) : NULL;
            if (json_is_integer(v)) {
                snprintf(tmp, sizeof tmp, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
                t = tmp;
            }
            if (!t || timeparse_parse(t, now, !strcmp(k, "from") ? &q->from_ns : &q->to_ns) < 0) goto bad;
        } else if (!strcmp(k, "nodes")) {
            if (!json_is_array(v) || json_array_size(v) > REST_MAX_NODES) goto bad;
            *nodes = xcalloc(json_array_size(v) + 1, sizeof **nodes);
            size_t i;
            json_t *e;
            json_array_foreach(v, i, e) {
                if (!json_is_string(e)) goto bad;
                (*nodes)[i] = (char *)json_string_value(e);
            }
            q->n_nodes = json_array_size(v);
            q->nodes = *nodes;
        } else if (!strcmp(k, "max_packets") || !strcmp(k, "max_bytes")) {
            if (!json_is_integer(v) || json_integer_value(v) < 0) goto bad;
            *(!strcmp(k, "max_packets") ? &q->max_packets : &q->max_bytes) =
                (uint64_t)json_integer_value(v);
        } else if (!strcmp(k, "dedup")) {
            if (!json_is_boolean(v)) goto bad;
            q->dedup = json_is_true(v);
        } else {
            int64_t ns;
            if (!json_is_string(v) || config_parse_duration(json_string_value(v), &ns) < 0 || ns < 0)
                goto bad;
            if (!strcmp(k, "dedup_window")) q->dedup_window_ns = ns;
            else q->node_timeout_ms = ns / 1000000 > UINT32_MAX ? UINT32_MAX : (uint32_t)(ns / 1000000);
        }
        continue;
    bad:
        rest__error(a, r, 400, "%s: not a valid value (see the SearchRequest schema)", k);
        return -1;
    }
    return 0;
}

static int rest__search(restapi_t *a, httpd_req_t *r)
{
    static const char *const known[] = { NULL };
    if (rest__known(a, r, known) < 0) return 0;
    size_t len;
    const char *text = httpd_body(r, &len);
    json_error_t jerr;
    json_t *body = json_loadb(text, len, 0, &jerr);
    char **nodes = NULL;
    scatter_node *sn = NULL;
    if (!body || !json_is_object(body)) {
        rest__error(a, r, 400, "the body must be a JSON object (SearchRequest): %s",
                    body ? "not an object" : jerr.text);
        goto out;
    }
    Mirrorscope__SearchQuery q = MIRRORSCOPE__SEARCH_QUERY__INIT;
    if (rest__search_query(a, r, body, &q, &nodes) < 0) goto out;
    /* A bad filter is a 400 now, with libpcap's words, not a failed stream. */
    char err[1024];
    filter_t *f = filter_new(q.filter, err, sizeof err);
    if (!f) {
        rest__error(a, r, 400, "filter: %s", err);
        goto out;
    }
    filter_free(f);
    sn = xcalloc(REST_MAX_NODES, sizeof *sn);
    int n = registry_search_nodes(a->reg, q.nodes, q.n_nodes, a->o.dead_ns, sn, REST_MAX_NODES,
                                  err, sizeof err);
    if (n < 0) {
        rest__error(a, r, 400, "nodes: %s", err);
        goto out;
    }
    rest_search *hs = rest__search_new(a, r);
    if (!hs) goto out;
    q.credit = 1; /* the stream is ready for its first piece */
    scatter_sink sink = { rest__sink_send, rest__sink_ended, hs };
    if (scatter_start(a->sc, &hs->peer, hs->id, &q, sn, n, &sink, err, sizeof err) < 0) {
        rest__search_release(hs);
        rest__error(a, r, strstr(err, "busy") || strstr(err, "no live") ? 503 : 400, "%s", err);
        goto out;
    }
    rest__search_stream(hs, "mscope-search.pcap");
out:
    free(sn);
    free(nodes);
    json_decref(body);
    return 0;
}

static int rest__search_status(restapi_t *a, httpd_req_t *r, const char *id)
{
    for (int i = 0; i < REST_SEARCHES_MAX; i++) {
        rest_search *hs = a->searches[i];
        char ids[32];
        if (!hs) continue;
        snprintf(ids, sizeof ids, "%" PRIu64, hs->id);
        if (!strcmp(ids, id) && !hs->search_over) {
            /* Progress: every recorder's state and the packets sent so far. */
            json_t *st = rest__status_json(hs->id, "running", NULL, NULL);
            json_t *now = scatter_progress_json(a->sc, &hs->peer, hs->id);
            if (now) json_object_set_new(st, "trailer", now);
            httpd_respond_json(r, 200, st);
            return 0;
        }
    }
    for (int i = 0; i < REST_DONE_KEPT; i++) {
        json_t *st = a->done[i];
        if (st && !strcmp(json_string_value(json_object_get(st, "id")), id)) {
            httpd_respond_json(r, 200, json_incref(st));
            return 0;
        }
    }
    rest__error(a, r, 404, "no search %.64s (or it ended long ago)", id);
    return 0;
}

static int rest__on_request(void *data, httpd_req_t *r)
{
    restapi_t *a = data;
    const char *path = httpd_path(r), *method = httpd_method(r);
    a->st.requests++;
    static const struct {
        const char *path, *method;
        int need;
        int (*fn)(restapi_t *, httpd_req_t *);
    } routes[] = {
        { "/api/v1/nodes", "GET", NEED_READ, rest__nodes },
        { "/api/v1/flows", "GET", NEED_READ, rest__flows },
        { "/api/v1/top", "GET", NEED_READ, rest__top },
        { "/api/v1/series", "GET", NEED_READ, rest__series },
        { "/api/v1/search", "POST", NEED_ADMIN, rest__search },
        { "/api/v1/flows/pcap", "GET", NEED_ADMIN, rest__flows_pcap },
        { "/api/v1/app/dns", "GET", NEED_READ, rest__app },
        { "/api/v1/app/tls", "GET", NEED_READ, rest__app },
        { "/api/v1/app/http", "GET", NEED_READ, rest__app },
        { "/api/v1/app/dns/top", "GET", NEED_READ, rest__app },
        { "/api/v1/app/tls/top", "GET", NEED_READ, rest__app },
        { "/api/v1/app/http/top", "GET", NEED_READ, rest__app },
    };
    if (!strncmp(path, "/api/v1/searches/", 17)) {
        if (strcmp(method, "GET")) {
            rest__error(a, r, 405, "%s takes GET", path);
            return 0;
        }
        if (!rest__auth(a, r, NEED_ADMIN)) return 0;
        return rest__search_status(a, r, path + 17);
    }
    if (monrest_path(path) && a->o.monitors) {
        if (!rest__auth(a, r, monrest_needs_admin(r) ? NEED_ADMIN : NEED_READ)) return 0;
        monrest_handle(a->o.monitors, r, &a->st.errors);
        return 0;
    }
    if (!strcmp(path, "/api/v1/openapi.json")) {
        httpd_respond(r, 200, "application/json", restapi_openapi_json, strlen(restapi_openapi_json));
        return 0;
    }
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        if (strcmp(path, routes[i].path)) continue;
        if (strcmp(method, routes[i].method)) {
            rest__error(a, r, 405, "%s takes %s", path, routes[i].method);
            return 0;
        }
        if (!rest__auth(a, r, routes[i].need)) return 0;
        return routes[i].fn(a, r);
    }
    rest__error(a, r, 404, "no such resource: %.200s (see /api/v1/openapi.json)", path);
    return 0;
}

restapi_t *restapi_new(uv_loop_t *loop, httpd_t *http, const restapi_opts *o, registry_t *reg,
                       scatter_t *sc, dbpool_t *pool)
{
    restapi_t *a = xcalloc(1, sizeof *a);
    a->http = http;
    a->reaper = xcalloc(1, sizeof *a->reaper);
    uv_timer_init(loop, a->reaper);
    a->reaper->data = a;
    a->o = *o;
    a->o.read_token = a->o.admin_token = NULL;
    if (a->o.max_queries < 1) a->o.max_queries = 64;
    snprintf(a->read_token, sizeof a->read_token, "%s", o->read_token ? o->read_token : "");
    snprintf(a->admin_token, sizeof a->admin_token, "%s", o->admin_token ? o->admin_token : "");
    a->reg = reg;
    a->sc = sc;
    a->pool = pool;
    httpd_route(http, "/api/v1/", rest__on_request, a);
    return a;
}

void restapi_get_stats(const restapi_t *a, restapi_stats *out) { *out = a->st; }

void restapi_set_tokens(restapi_t *a, const char *read_token, const char *admin_token)
{
    explicit_bzero(a->read_token, sizeof a->read_token);
    explicit_bzero(a->admin_token, sizeof a->admin_token);
    snprintf(a->read_token, sizeof a->read_token, "%s", read_token);
    snprintf(a->admin_token, sizeof a->admin_token, "%s", admin_token);
}

void restapi_close(restapi_t *a)
{
    if (!a || !a->reaper) return;
    uv_close((uv_handle_t *)a->reaper, (uv_close_cb)free);
    a->reaper = NULL;
}

void restapi_free(restapi_t *a)
{
    if (!a) return;
    restapi_close(a);
    for (int i = 0; i < REST_DONE_KEPT; i++) json_decref(a->done[i]);
    free(a);
}
