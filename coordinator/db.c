/* db.c - migrations, COPY + merge of flow records, node registry (see db.h).
 *
 * DESIGN: one column table drives the schema, the staging table, the COPY
 * line and the merge statement, so they cannot disagree. Values reach SQL
 * only as COPY data (escaped) or as $n parameters: no text is ever pasted
 * into a statement except our own identifiers and dates we formatted.
 */
#include "db.h"

#include "log.h"
#include "xmalloc.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct db {
    PGconn *conn;
    char known_days[64][12]; /* partitions created this session */
    int nknown;
};

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

static void db__put(db_batch *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        b->cap = (b->len + n + 1) * 2;
        b->buf = xrealloc(b->buf, b->cap);
    }
    memcpy(b->buf + b->len, s, n);
    b->len += n;
}

static void db__text(db_batch *b, const char *s)
{
    for (; *s; s++) {
        char esc[2] = { '\\', 0 };
        switch (*s) {
        case '\\': esc[1] = '\\'; break;
        case '\t': esc[1] = 't'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        default: db__put(b, s, 1); continue;
        }
        db__put(b, esc, 2);
    }
}

static void db__i64(db_batch *b, int64_t v, int sep)
{
    char tmp[32];
    int n = snprintf(tmp, sizeof tmp, "%" PRId64 "%s", v, sep ? "\t" : "");
    db__put(b, tmp, (size_t)n);
}

static void db__ip(db_batch *b, ProtobufCBinaryData ip)
{
    char s[64];
    if (ip.len == 4) inet_ntop(AF_INET, ip.data, s, sizeof s);
    else if (ip.len == 16) inet_ntop(AF_INET6, ip.data, s, sizeof s);
    else {
        db__put(b, "\\N\t", 3);
        return;
    }
    db__put(b, s, strlen(s));
    db__put(b, "\t", 1);
}

static void db__dir(db_batch *b, const Mirrorscope__Direction *d)
{
    static const Mirrorscope__Direction zero = MIRRORSCOPE__DIRECTION__INIT;
    static const Mirrorscope__Stat zstat = MIRRORSCOPE__STAT__INIT;
    if (!d) d = &zero;
    const Mirrorscope__Stat *r = d->rtt_ns ? d->rtt_ns : &zstat;
    int64_t v[] = { (int64_t)d->packets, (int64_t)d->ip_bytes, (int64_t)d->payload_bytes,
                    d->retransmissions, d->fast_retransmissions, d->spurious_retransmissions,
                    d->out_of_order, d->dup_acks, d->lost_segments, d->zero_windows,
                    d->window_full, d->keep_alives, d->rsts, d->fins, (int64_t)r->count,
                    r->min, r->max, r->sum };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) db__i64(b, v[i], 1);
}

void db_batch_append(db_batch *b, const char *node, const Mirrorscope__FlowRecord *r)
{
    static const Mirrorscope__Endpoint zep = MIRRORSCOPE__ENDPOINT__INIT;
    static const Mirrorscope__Handshake zhs = MIRRORSCOPE__HANDSHAKE__INIT;
    static const Mirrorscope__Stat zstat = MIRRORSCOPE__STAT__INIT;
    const Mirrorscope__Endpoint *c = r->client ? r->client : &zep;
    const Mirrorscope__Endpoint *s = r->server ? r->server : &zep;
    const Mirrorscope__Handshake *h = r->handshake ? r->handshake : &zhs;
    const Mirrorscope__Stat *a = r->app_response_ns ? r->app_response_ns : &zstat;
    db__text(b, node);
    db__put(b, "\t", 1);
    db__i64(b, (int64_t)r->flow_id, 1);
    db__i64(b, r->vni, 1);
    db__ip(b, r->observer);
    db__i64(b, r->proto, 1);
    db__ip(b, c->ip);
    db__i64(b, c->port, 1);
    db__ip(b, s->ip);
    db__i64(b, s->port, 1);
    db__i64(b, r->first_ns, 1);
    db__i64(b, r->last_ns, 1);
    db__dir(b, r->c2s);
    db__dir(b, r->s2c);
    db__i64(b, h->seen, 1);
    db__i64(b, h->syn_ns, 1);
    db__i64(b, h->synack_ns, 1);
    db__i64(b, h->ack_ns, 1);
    db__i64(b, h->initial_rtt_ns, 1);
    db__i64(b, (int64_t)a->count, 1);
    db__i64(b, a->min, 1);
    db__i64(b, a->max, 1);
    db__i64(b, a->sum, 1);
    db__text(b, r->conn_state ? r->conn_state : "");
    db__put(b, "\t", 1);
    db__text(b, r->history ? r->history : "");
    db__put(b, r->final ? "\tt\n" : "\tf\n", 3);
    b->records++;
}

void db_batch_clear(db_batch *b)
{
    b->len = 0;
    b->records = 0;
}

void db_batch_free(db_batch *b)
{
    free(b->buf);
    memset(b, 0, sizeof *b);
}

/* ---- statements ---------------------------------------------------------- */

static int db__exec(db_t *d, const char *sql, char *err, size_t errlen)
{
    PGresult *r = PQexec(d->conn, sql);
    ExecStatusType st = PQresultStatus(r);
    int ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
    if (!ok) snprintf(err, errlen, "%s", PQresultErrorMessage(r));
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
    return 0;
}

/* v1: flows partitioned by day of first packet, and the node registry. */
static int db__migrate_v1(db_t *d, char *err, size_t errlen)
{
    char cols[8192], sql[16384];
    db__cols(cols, sizeof cols, "", 1);
    snprintf(sql, sizeof sql,
             "BEGIN;"
             "CREATE TABLE flows (%s, first_ts timestamptz NOT NULL, "
             "updated_at timestamptz NOT NULL DEFAULT now(), "
             "PRIMARY KEY (node, flow_id, first_ts)) PARTITION BY RANGE (first_ts);"
             "CREATE INDEX ON flows (first_ts);"
             "CREATE INDEX ON flows (server_ip, server_port);"
             "CREATE INDEX ON flows (client_ip);"
             "CREATE TABLE nodes (node text PRIMARY KEY, start_ns bigint, version text, "
             "search_endpoint text, last_seen timestamptz, rx_packets bigint, rx_bytes bigint, "
             "stored_packets bigint, stored_bytes bigint, flows_active bigint, "
             "records_published bigint, records_shed bigint, gaps bigint NOT NULL DEFAULT 0);"
             "INSERT INTO schema_migrations (version) VALUES (1);"
             "COMMIT;",
             cols);
    if (db__exec(d, sql, err, errlen) < 0) {
        PQexec(d->conn, "ROLLBACK");
        return -1;
    }
    log_info("database schema migrated to version 1");
    return 0;
}

#define DB_HIST 16 /* log2 buckets of a flow's mean ACK RTT in microseconds */

/* v2: per-minute aggregates per node and server endpoint, for dashboards. */
static int db__migrate_v2(db_t *d, char *err, size_t errlen)
{
    char sql[8192];
    size_t n = (size_t)snprintf(sql, sizeof sql,
        "BEGIN;"
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
             "CREATE INDEX ON flow_minutes (minute);"
             "INSERT INTO schema_migrations (version) VALUES (2);"
             "COMMIT;");
    if (db__exec(d, sql, err, errlen) < 0) {
        PQclear(PQexec(d->conn, "ROLLBACK"));
        return -1;
    }
    log_info("database schema migrated to version 2");
    return 0;
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
    if (db__migrate(d, err, errlen) < 0) goto fail;
    char cols[8192], sql[12000];
    db__cols(cols, sizeof cols, "", 1);
    /* The staging table lives as long as the connection. */
    snprintf(sql, sizeof sql, "CREATE TEMP TABLE flows_staging (%s)", cols);
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

/* Create the day partitions the staged rows need. */
static int db__partitions(db_t *d, char *err, size_t errlen)
{
    PGresult *r = PQexec(d->conn, "SELECT DISTINCT (first_ns / 86400000000000) FROM flows_staging");
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        snprintf(err, errlen, "%s", PQresultErrorMessage(r));
        PQclear(r);
        return -1;
    }
    int rc = 0;
    for (int i = 0; i < PQntuples(r) && rc == 0; i++) {
        long long day = atoll(PQgetvalue(r, i, 0));
        char name[12];
        snprintf(name, sizeof name, "%lld", day);
        int known = 0;
        for (int k = 0; k < d->nknown; k++)
            if (!strcmp(d->known_days[k], name)) known = 1;
        if (known) continue;
        time_t t0 = (time_t)(day * 86400);
        struct tm tm;
        gmtime_r(&t0, &tm);
        char sql[512];
        snprintf(sql, sizeof sql,
                 "CREATE TABLE IF NOT EXISTS flows_%04d%02d%02d PARTITION OF flows FOR VALUES "
                 "FROM ('%04d-%02d-%02d 00:00:00+00') TO ('%04d-%02d-%02d 00:00:00+00'::timestamptz "
                 "+ interval '1 day')",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_year + 1900, tm.tm_mon + 1,
                 tm.tm_mday, tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
        rc = db__exec(d, sql, err, errlen);
        if (rc == 0 && d->nknown < 64) snprintf(d->known_days[d->nknown++], 12, "%s", name);
    }
    PQclear(r);
    return rc;
}

int db_write(db_t *d, const db_batch *b, char *err, size_t errlen)
{
    if (!b->records) return 0;
    if (!db_ok(d)) {
        snprintf(err, errlen, "no database connection");
        return -1;
    }
    if (db__exec(d, "BEGIN", err, errlen) < 0) return -1;
    PGresult *r = PQexec(d->conn, "COPY flows_staging FROM STDIN");
    if (PQresultStatus(r) != PGRES_COPY_IN) {
        snprintf(err, errlen, "COPY: %s", PQresultErrorMessage(r));
        PQclear(r);
        goto fail;
    }
    PQclear(r);
    if (PQputCopyData(d->conn, b->buf, (int)b->len) != 1 || PQputCopyEnd(d->conn, NULL) != 1) {
        snprintf(err, errlen, "COPY data: %s", PQerrorMessage(d->conn));
        goto fail;
    }
    r = PQgetResult(d->conn);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        snprintf(err, errlen, "COPY: %s", PQresultErrorMessage(r));
        PQclear(r);
        goto fail;
    }
    PQclear(r);
    while ((r = PQgetResult(d->conn))) PQclear(r);
    if (db__partitions(d, err, errlen) < 0) goto fail;
    /* One row per flow: the final record, else the latest interim. */
    static char sql[65536]; /* one writer thread; too big for the stack */
    char cols[8192], upd[16384];
    db__cols(cols, sizeof cols, "", 0);
    size_t used = 0;
    for (size_t i = 2; i < DB_NCOLS; i++)
        used += (size_t)snprintf(upd + used, sizeof upd - used, "%s = EXCLUDED.%s, ",
                                 DB_COLS[i][0], DB_COLS[i][0]);
    /* Flows that became final in this very statement (not a repeated final)
     * go into the per-minute aggregates once: RETURNING sees only rows the
     * merge inserted or updated. */
    char hist[4096];
    size_t hn = 0;
    for (int i = 0; i < DB_HIST; i++)
        hn += (size_t)snprintf(hist + hn, sizeof hist - hn,
                               ", count(*) FILTER (WHERE rtt_bucket %s %d)", i == DB_HIST - 1 ? ">=" : "=", i);
    char hcols[1024], hupd[2048];
    size_t hc = 0, hu = 0;
    for (int i = 0; i < DB_HIST; i++) {
        hc += (size_t)snprintf(hcols + hc, sizeof hcols - hc, ", rtt_h%d", i);
        hu += (size_t)snprintf(hupd + hu, sizeof hupd - hu, ", rtt_h%d = flow_minutes.rtt_h%d + EXCLUDED.rtt_h%d", i, i, i);
    }
    snprintf(sql, sizeof sql,
             "WITH merged AS ("
             "INSERT INTO flows (%s, first_ts) "
             "SELECT DISTINCT ON (node, flow_id) %s, to_timestamp(first_ns / 1e9) "
             "FROM flows_staging ORDER BY node, flow_id, final DESC, last_ns DESC "
             "ON CONFLICT (node, flow_id, first_ts) DO UPDATE SET %s updated_at = now() "
             "WHERE NOT flows.final RETURNING *), "
             "fin AS (SELECT *, c2s_rtt_sum + s2c_rtt_sum AS rsum, c2s_rtt_count + s2c_rtt_count AS rcnt, "
             "CASE WHEN c2s_rtt_count + s2c_rtt_count > 0 THEN floor(log(2, ((c2s_rtt_sum + s2c_rtt_sum) / "
             "(c2s_rtt_count + s2c_rtt_count)) / 1000.0 + 1))::int ELSE -1 END AS rtt_bucket "
             "FROM merged WHERE final AND server_ip IS NOT NULL) "
             "INSERT INTO flow_minutes (minute, node, server_ip, server_port, proto, flows, packets, bytes, "
             "retransmissions, rtt_sum, rtt_count, rtt_min, rtt_max, app_sum, app_count, app_min, app_max%s) "
             "SELECT date_trunc('minute', first_ts), node, server_ip, server_port, proto, count(*), "
             "sum(c2s_packets + s2c_packets), sum(c2s_ip_bytes + s2c_ip_bytes), "
             "sum(c2s_retransmissions + s2c_retransmissions), sum(rsum), sum(rcnt), "
             "min(least(nullif(c2s_rtt_min, 0), nullif(s2c_rtt_min, 0))) FILTER (WHERE rcnt > 0), "
             "max(greatest(c2s_rtt_max, s2c_rtt_max)) FILTER (WHERE rcnt > 0), "
             "sum(app_sum), sum(app_count), min(app_min) FILTER (WHERE app_count > 0), "
             "max(app_max) FILTER (WHERE app_count > 0)%s "
             "FROM fin GROUP BY 1, 2, 3, 4, 5 "
             "ON CONFLICT (minute, node, server_ip, server_port, proto) DO UPDATE SET "
             "flows = flow_minutes.flows + EXCLUDED.flows, packets = flow_minutes.packets + EXCLUDED.packets, "
             "bytes = flow_minutes.bytes + EXCLUDED.bytes, retransmissions = flow_minutes.retransmissions + "
             "EXCLUDED.retransmissions, rtt_sum = flow_minutes.rtt_sum + EXCLUDED.rtt_sum, rtt_count = "
             "flow_minutes.rtt_count + EXCLUDED.rtt_count, rtt_min = least(flow_minutes.rtt_min, EXCLUDED.rtt_min), "
             "rtt_max = greatest(flow_minutes.rtt_max, EXCLUDED.rtt_max), app_sum = flow_minutes.app_sum + "
             "EXCLUDED.app_sum, app_count = flow_minutes.app_count + EXCLUDED.app_count, app_min = "
             "least(flow_minutes.app_min, EXCLUDED.app_min), app_max = greatest(flow_minutes.app_max, "
             "EXCLUDED.app_max)%s",
             cols, cols, upd, hcols, hist, hupd);
    if (db__exec(d, sql, err, errlen) < 0) goto fail;
    if (db__exec(d, "TRUNCATE flows_staging", err, errlen) < 0) goto fail;
    if (db__exec(d, "COMMIT", err, errlen) < 0) goto fail;
    return 0;
fail:
    PQclear(PQexec(d->conn, "ROLLBACK"));
    return -1;
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
