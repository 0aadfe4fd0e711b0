/* querysql.c - the API queries' SQL, built without a database (see
 * querysql.h).
 *
 * DESIGN: every statement text is made once (the first call, under
 * pthread_once) from our own tables - the flow column list (schema.h), the
 * sort orders, the groupings and metrics of top talkers - and a request only
 * chooses among them by name; its values go into $n parameters. So a request
 * can pick a statement but never change one, and the whole set is known (the
 * fuzz target compares every built text with it).
 */
#include "querysql.h"

#include "schema.h"
#include "timeparse.h"
#include "xmalloc.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

/* Each order is a sort key, then node and flow id: a total order, so a
 * cursor (the last row's three values) starts the next page exactly. */
static const struct { const char *name, *key; int desc; } querysql__orders[] = {
    { "first", "first_ns", 0 },
    { "newest", "first_ns", 1 },
    { "last", "last_ns", 1 },
    { "bytes", "(c2s_ip_bytes + s2c_ip_bytes)", 1 },
    { "packets", "(c2s_packets + s2c_packets)", 1 },
    { "rtt", "coalesce((c2s_rtt_sum + s2c_rtt_sum) / nullif(c2s_rtt_count + s2c_rtt_count, 0), -1)", 1 },
    { "retransmissions", "(c2s_retransmissions + s2c_retransmissions)", 1 },
};
#define QUERYSQL_NORDERS (sizeof querysql__orders / sizeof querysql__orders[0])

/* Top talkers: grouped by server or client, ranked by a metric (its
 * position in the select list). */
static const char *const querysql__by[] = { "server", "client" };
static const struct { const char *name, *pos; } querysql__metrics[] = {
    { "bytes", "5" }, { "packets", "4" }, { "flows", "3" }, { "retransmissions", "6" },
};
#define QUERYSQL_NMETRICS (sizeof querysql__metrics / sizeof querysql__metrics[0])

static const char querysql__series_sql[] =
    "SELECT (extract(epoch from minute) * 1e9)::bigint, sum(flows), sum(packets), sum(bytes), "
    "sum(retransmissions), sum(rtt_sum), sum(rtt_count), sum(app_sum), sum(app_count) "
    "FROM flow_minutes WHERE minute >= date_trunc('minute', to_timestamp($1::bigint / 1e9)) "
    "AND minute < to_timestamp($2::bigint / 1e9) AND ($3::text IS NULL OR node = $3::text) "
    "AND ($4::inet IS NULL OR server_ip = $4::inet) AND ($5::int = 0 OR server_port = $5::int) "
    "GROUP BY 1 ORDER BY 1 LIMIT 100000";

static char *querysql__flows_sql[QUERYSQL_NORDERS], *querysql__flows_probe[QUERYSQL_NORDERS];
static char *querysql__talkers_sql[2][QUERYSQL_NMETRICS];
static pthread_once_t querysql__once = PTHREAD_ONCE_INIT;

static void querysql__make_flows(size_t o)
{
    const char *dir = querysql__orders[o].desc ? "DESC" : "ASC";
    static char cols[8192], sql[16384], where[4096], probe[4200];
    schema_col_list(cols, sizeof cols, 0);
    /* $13/$14: a window of first_ts, in whole microseconds (first_ts's own
     * resolution), so a row is in exactly one of two adjacent windows; as
     * timestamp literals, so the planner sees constants and estimates the
     * window (an expression it cannot fold made it guess a third of the
     * table and scan all of it). */
    snprintf(where, sizeof where,
             "FROM flows_all "
             "WHERE first_ts >= to_timestamp($1::bigint / 1e9) AND first_ns < $2::bigint "
             "AND ($3::inet IS NULL OR client_ip = $3::inet OR server_ip = $3::inet) "
             "AND ($4::int = 0 OR client_port = $4::int OR server_port = $4::int) "
             "AND ($5::int = 0 OR proto = $5::int) "
             "AND ($6::bigint = 0 OR (c2s_rtt_count + s2c_rtt_count > 0 AND "
             "(c2s_rtt_sum + s2c_rtt_sum) / (c2s_rtt_count + s2c_rtt_count) >= $6::bigint)) "
             "AND (NOT $7::boolean OR c2s_retransmissions + s2c_retransmissions > 0) "
             "AND ($9::text IS NULL OR node = $9::text) "
             "AND ($10::bigint IS NULL OR (%s, node, flow_id) %s ($10::bigint, $12::text, $11::bigint)) "
             "AND ($13::timestamptz IS NULL OR first_ts >= $13::timestamptz) "
             "AND ($14::timestamptz IS NULL OR first_ts < $14::timestamptz) "
             "AND ($15::inet IS NULL OR server_ip <<= $15::inet) "
             "AND ($16::inet IS NULL OR client_ip <<= $16::inet) "
             "AND ($17::int = 0 OR server_port = $17::int) "
             /* A monitor's flow filter, as monseries.c matches records. */
             "AND ($18::text IS NULL OR EXISTS (SELECT 1 FROM monitors m WHERE m.name = $18::text "
             "AND (m.server IS NULL OR server_ip <<= m.server) "
             "AND (m.client IS NULL OR client_ip <<= m.client) "
             "AND (m.server_port = 0 OR server_port = m.server_port) "
             "AND (m.proto = 0 OR proto = m.proto) "
             "AND (cardinality(m.nodes) = 0 OR node = ANY (m.nodes)))) ",
             querysql__orders[o].key, querysql__orders[o].desc ? "<" : ">");
    snprintf(sql, sizeof sql,
             "SELECT node, flow_id, vni, host(observer), proto, host(client_ip), client_port, "
             "host(server_ip), server_port, first_ns, last_ns, %s, %s %s"
             "ORDER BY %s %s, node %s, flow_id %s LIMIT $8::int",
             cols + strlen("node, flow_id, vni, observer, proto, client_ip, client_port, "
                           "server_ip, server_port, first_ns, last_ns, "),
             querysql__orders[o].key, where, querysql__orders[o].key, dir, dir, dir);
    /* ($8, the page size, means nothing here; named so its type is known.) */
    snprintf(probe, sizeof probe, "SELECT 1 %s AND $8::int > 0 LIMIT 1", where);
    querysql__flows_sql[o] = xstrdup(sql);
    querysql__flows_probe[o] = xstrdup(probe);
}

static void querysql__init(void)
{
    for (size_t o = 0; o < QUERYSQL_NORDERS; o++) querysql__make_flows(o);
    for (size_t b = 0; b < 2; b++)
        for (size_t m = 0; m < QUERYSQL_NMETRICS; m++) {
            char sql[2048];
            snprintf(sql, sizeof sql,
                     "SELECT %s, count(*), sum(c2s_packets + s2c_packets), "
                     "sum(c2s_ip_bytes + s2c_ip_bytes), sum(c2s_retransmissions + s2c_retransmissions) "
                     "FROM flows_all WHERE first_ts >= to_timestamp($1::bigint / 1e9) AND first_ns < $2::bigint "
                     "AND %s IS NOT NULL GROUP BY %s ORDER BY %s DESC LIMIT $3::int",
                     b == 0 ? "host(server_ip), server_port" : "host(client_ip), 0",
                     b == 0 ? "server_ip" : "client_ip",
                     b == 0 ? "server_ip, server_port" : "client_ip", querysql__metrics[m].pos);
            querysql__talkers_sql[b][m] = xstrdup(sql);
        }
}

const char *querysql_template(int i)
{
    pthread_once(&querysql__once, querysql__init);
    if (i < 0) return NULL;
    if (i < (int)QUERYSQL_NORDERS) return querysql__flows_sql[i];
    i -= (int)QUERYSQL_NORDERS;
    if (i < (int)QUERYSQL_NORDERS) return querysql__flows_probe[i];
    i -= (int)QUERYSQL_NORDERS;
    if (i < 2 * (int)QUERYSQL_NMETRICS) return querysql__talkers_sql[i / QUERYSQL_NMETRICS][i % QUERYSQL_NMETRICS];
    i -= 2 * (int)QUERYSQL_NMETRICS;
    return i == 0 ? querysql__series_sql : NULL;
}

/* A text filter value of the request as a parameter: NULL (no filter) when
 * empty; refused when longer than any value it could match. */
static int querysql__text(const char *what, const char *v, const char **param, char *err,
                          size_t errlen)
{
    *param = NULL;
    if (!v || !*v) return 0;
    if (strlen(v) >= QUERYSQL_VALUE_MAX) {
        snprintf(err, errlen, "%s: longer than %d bytes", what, QUERYSQL_VALUE_MAX - 1);
        return -1;
    }
    *param = v;
    return 0;
}

void querysql_cursor_make(char *out, size_t len, const char *key, const char *flow_id,
                          const char *node)
{
    int n = snprintf(out, len, "%s.%s.", key, flow_id);
    for (const unsigned char *p = (const unsigned char *)node; n > 0 && *p && (size_t)n + 3 < len; p++)
        n += snprintf(out + n, len - (size_t)n, "%02x", *p);
}

static int querysql__cursor_parse(const char *c, char *key, char *flow_id, char *node, size_t len)
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




int querysql_flows(const Mirrorscope__QueryFlows *q, int64_t now_ns, querysql *out, char *err,
                   size_t errlen)
{
    pthread_once(&querysql__once, querysql__init);
    memset(out, 0, sizeof *out);
    out->kind = QUERYSQL_FLOWS;
    int o = -1;
    const char *ob = q->order_by && *q->order_by ? q->order_by : "first";
    for (int i = 0; i < (int)QUERYSQL_NORDERS; i++)
        if (!strcmp(ob, querysql__orders[i].name)) o = i;
    if (o < 0) {
        snprintf(err, errlen, "order must be first, newest, last, bytes, packets, rtt or retransmissions");
        return -1;
    }
    char (*p)[64] = out->v;
    int has_cursor = q->cursor && *q->cursor;
    if (has_cursor && querysql__cursor_parse(q->cursor, p[9], p[10], out->cursor_node,
                                             sizeof out->cursor_node) < 0) {
        snprintf(err, errlen, "cursor: not a cursor from an earlier answer");
        return -1;
    }
    const char **params = out->params;
    if (querysql__text("host", q->host, &params[2], err, errlen) < 0 ||
        querysql__text("node", q->node, &params[8], err, errlen) < 0 ||
        querysql__text("server", q->server, &params[14], err, errlen) < 0 ||
        querysql__text("client", q->client, &params[15], err, errlen) < 0 ||
        querysql__text("monitor", q->monitor, &params[QUERYSQL_FLOWS_MONITOR], err, errlen) < 0)
        return -1;
    int64_t to = q->to_ns ? q->to_ns : INT64_MAX / 2;
    out->limit = q->limit ? (q->limit > QUERYSQL_FLOWS_MAX ? QUERYSQL_FLOWS_MAX : q->limit) : 100;
    snprintf(p[0], 64, "%" PRId64, q->from_ns);
    snprintf(p[1], 64, "%" PRId64, to);
    snprintf(p[3], 64, "%u", q->port);
    snprintf(p[4], 64, "%u", q->proto);
    snprintf(p[5], 64, "%" PRId64, q->min_rtt_ns);
    snprintf(p[6], 64, "%s", q->only_retransmissions ? "t" : "f");
    snprintf(p[7], 64, "%" PRIu32, out->limit);
    snprintf(p[16], 64, "%u", q->server_port);
    for (int i = 0; i < 17; i++)
        if (i != 2 && i != 8 && i != 12 && i != 13 && i != 14 && i != 15) params[i] = p[i];
    if (!has_cursor) params[9] = params[10] = NULL;
    params[11] = has_cursor ? out->cursor_node : NULL;
    out->nparams = QUERYSQL_PARAMS;
    out->sql = querysql__flows_sql[o];
    out->probe = querysql__flows_probe[o];

    /* The time orders walk the range in windows of first_ts (db.c says
     * why); with a host, the host indexes find its few rows at once: one
     * query, as for the other orders. The first window starts at the
     * cursor, or at the end of the range the walk starts from. */
    out->windowed = !strcmp(querysql__orders[o].key, "first_ns") && !params[2];
    out->desc = querysql__orders[o].desc;
    out->now_us = now_ns / 1000;
    out->from_us = q->from_ns / 1000;
    out->to_us = to / 1000;
    int64_t w = QUERYSQL_WINDOW_MIN_US;
    if (!out->windowed) {
        out->lo = out->hi = INT64_MIN; /* no window */
    } else if (out->desc) {
        out->hi = has_cursor ? strtoll(p[9], NULL, 10) / 1000 + 1 : INT64_MIN;
        out->lo = (out->hi != INT64_MIN ? out->hi : (out->to_us < out->now_us ? out->to_us : out->now_us)) - w;
    } else {
        out->lo = has_cursor ? strtoll(p[9], NULL, 10) / 1000 : out->from_us;
        out->hi = out->lo + w;
    }
    return 0;
}

static int querysql__talkers(const Mirrorscope__TopTalkers *q, querysql *out, char *err,
                             size_t errlen)
{
    const char *by = q->by && *q->by ? q->by : "server";
    const char *metric = q->metric && *q->metric ? q->metric : "bytes";
    size_t b = 0, m = 0;
    while (b < 2 && strcmp(by, querysql__by[b])) b++;
    if (b == 2) {
        snprintf(err, errlen, "by must be server or client");
        return -1;
    }
    while (m < QUERYSQL_NMETRICS && strcmp(metric, querysql__metrics[m].name)) m++;
    if (m == QUERYSQL_NMETRICS) {
        snprintf(err, errlen, "metric must be bytes, packets, flows or retransmissions");
        return -1;
    }
    out->kind = QUERYSQL_TALKERS;
    snprintf(out->v[0], 64, "%" PRId64, q->from_ns);
    snprintf(out->v[1], 64, "%" PRId64, q->to_ns ? q->to_ns : INT64_MAX / 2);
    snprintf(out->v[2], 64, "%u", q->limit ? (q->limit > 1000 ? 1000 : q->limit) : 10);
    for (int i = 0; i < 3; i++) out->params[i] = out->v[i];
    out->nparams = 3;
    out->sql = querysql__talkers_sql[b][m];
    return 0;
}

static int querysql__series(const Mirrorscope__TimeSeries *q, querysql *out, char *err,
                            size_t errlen)
{
    out->kind = QUERYSQL_SERIES;
    snprintf(out->v[0], 64, "%" PRId64, q->from_ns);
    snprintf(out->v[1], 64, "%" PRId64, q->to_ns ? q->to_ns : INT64_MAX / 2);
    snprintf(out->v[4], 64, "%u", q->server_port);
    out->params[0] = out->v[0];
    out->params[1] = out->v[1];
    out->params[4] = out->v[4];
    if (querysql__text("node", q->node, &out->params[2], err, errlen) < 0 ||
        querysql__text("server_ip", q->server_ip, &out->params[3], err, errlen) < 0)
        return -1;
    out->nparams = 5;
    out->sql = querysql__series_sql;
    return 0;
}

int querysql_request(const Mirrorscope__Request *req, int64_t now_ns, querysql *out, char *err,
                     size_t errlen)
{
    pthread_once(&querysql__once, querysql__init);
    memset(out, 0, sizeof *out);
    int64_t from = 0, to = 0;
    switch (req->body_case) {
    case MIRRORSCOPE__REQUEST__BODY_QUERY_FLOWS:
        from = req->query_flows->from_ns, to = req->query_flows->to_ns;
        break;
    case MIRRORSCOPE__REQUEST__BODY_TOP_TALKERS:
        from = req->top_talkers->from_ns, to = req->top_talkers->to_ns;
        break;
    case MIRRORSCOPE__REQUEST__BODY_TIME_SERIES:
        from = req->time_series->from_ns, to = req->time_series->to_ns;
        break;
    default: break;
    }
    if (timeparse_check_range(from, to, err, errlen) < 0) return -1;
    switch (req->body_case) {
    case MIRRORSCOPE__REQUEST__BODY_LIST_NODES: out->kind = QUERYSQL_NODES; return 0;
    case MIRRORSCOPE__REQUEST__BODY_QUERY_FLOWS:
        return querysql_flows(req->query_flows, now_ns, out, err, errlen);
    case MIRRORSCOPE__REQUEST__BODY_TOP_TALKERS:
        return querysql__talkers(req->top_talkers, out, err, errlen);
    case MIRRORSCOPE__REQUEST__BODY_TIME_SERIES:
        return querysql__series(req->time_series, out, err, errlen);
    default:
        snprintf(err, errlen, "unknown request type");
        return -1;
    }
}
