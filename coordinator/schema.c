/* schema.c - the schema as data (see schema.h): the flow columns expanded
 * from the flow record's field table, and the migrations. */
#include "schema.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

/* The flow columns, in COPY order: node, then the flow record's fields as
 * the field table lists them (flowrec_fields.h), each with its kind's SQL
 * type. The partition key first_ts is derived. */
#define SCHEMA__F(c, kind, name, num) { #name, FLOWREC_SQL_##kind },
#define SCHEMA__EP(name, kind, leaf, num) { #name "_" #leaf, FLOWREC_SQL_##kind },
#define SCHEMA__E(c, name, num) FLOWREC_EP_FIELDS(SCHEMA__EP, name)
#define SCHEMA__STAT(prefix, kind, name, num) { prefix "_" #name, FLOWREC_SQL_##kind },
#define SCHEMA__S(c, member, name, sql, num) FLOWREC_STAT_FIELDS(SCHEMA__STAT, #sql)
#define SCHEMA__DIR(d, kind, name, num) { #d "_" #name, FLOWREC_SQL_##kind },
#define SCHEMA__DIR_S(d, member, name, sql, num) FLOWREC_STAT_FIELDS(SCHEMA__STAT, #d "_" #sql)
#define SCHEMA__D(c, name, num) FLOWREC_DIR_FIELDS(SCHEMA__DIR, SCHEMA__DIR_S, name)
#define SCHEMA__HS(c, kind, member, pbname, bit, num) { #member, FLOWREC_SQL_##kind },
#define SCHEMA__H(c, name, num) FLOWREC_HS_FIELDS(SCHEMA__HS, FLOWREC_NOTHING, _)
const char *const schema_cols[][2] = {
    { "node", "text NOT NULL" },
    FLOWREC_FIELDS(SCHEMA__F, SCHEMA__E, SCHEMA__D, SCHEMA__H, SCHEMA__S, _)
};

_Static_assert(sizeof schema_cols / sizeof schema_cols[0] == SCHEMA_NCOLS,
               "SCHEMA_NCOLS must count schema_cols");

void schema_col_list(char *out, size_t len, int with_types)
{
    size_t used = 0;
    out[0] = 0;
    for (size_t i = 0; i < SCHEMA_NCOLS && used < len; i++)
        used += (size_t)snprintf(out + used, len - used, "%s%s%s%s", i ? ", " : "",
                                 schema_cols[i][0], with_types ? " " : "",
                                 with_types ? schema_cols[i][1] : "");
}

static const char *const schema__app_cols[][2] = {
#define SCHEMA__APP_ROW(name, type) { #name, type },
    SCHEMA_APP_COLS(SCHEMA__APP_ROW)
#undef SCHEMA__APP_ROW
};

void schema_app_col_list(char *out, size_t len, int with_types)
{
    size_t used = 0;
    out[0] = 0;
    for (size_t i = 0; i < SCHEMA_APP_NCOLS && used < len; i++)
        used += (size_t)snprintf(out + used, len - used, "%s%s%s%s", i ? ", " : "",
                                 schema__app_cols[i][0], with_types ? " " : "",
                                 with_types ? schema__app_cols[i][1] : "");
}

static int schema__fits(int n, size_t len) { return n >= 0 && (size_t)n < len ? 0 : -1; }

/* v1: flows partitioned by day of first packet, and the node registry. */
static int schema__v1(char *out, size_t len)
{
    char cols[8192];
    schema_col_list(cols, sizeof cols, 1);
    return schema__fits(snprintf(out, len,
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
        cols), len);
}

/* v2: per-minute aggregates per node and server endpoint, for dashboards. */
static int schema__v2(char *out, size_t len)
{
    size_t n = (size_t)snprintf(out, len,
        "CREATE TABLE flow_minutes (minute timestamptz NOT NULL, node text NOT NULL, "
        "server_ip inet NOT NULL, server_port integer NOT NULL, proto smallint NOT NULL, "
        "flows bigint NOT NULL, packets bigint NOT NULL, bytes bigint NOT NULL, "
        "retransmissions bigint NOT NULL, rtt_sum bigint NOT NULL, rtt_count bigint NOT NULL, "
        "rtt_min bigint, rtt_max bigint, app_sum bigint NOT NULL, app_count bigint NOT NULL, "
        "app_min bigint, app_max bigint");
    for (int i = 0; i < SCHEMA_RTT_BUCKETS && n < len; i++)
        n += (size_t)snprintf(out + n, len - n, ", rtt_h%d bigint NOT NULL DEFAULT 0", i);
    if (n >= len) return -1;
    return schema__fits(snprintf(out + n, len - n,
        ", PRIMARY KEY (minute, node, server_ip, server_port, proto));"
        "CREATE INDEX ON flow_minutes (minute);"), len - n);
}

/* v3: the time index becomes BRIN. Rows arrive roughly in time order, so a
 * block-range index prunes as well as a B-tree inside a day partition, at a
 * fraction of the insert cost (measured: the B-tree alone cost ~25% of COPY). */
static int schema__v3(char *out, size_t len)
{
    return schema__fits(snprintf(out, len,
        "DROP INDEX IF EXISTS flows_first_ts_idx;"
        "CREATE INDEX flows_first_ts_brin ON flows USING brin (first_ts);"), len);
}

/* v4: COPY at full speed. `flows` holds final records only, COPY'd straight
 * in: no primary key and no B-tree while its day is being written (sealed
 * days get their host indexes from db_index_sealed()). Interim records of
 * long flows live in `flows_live`, keyed (node, flow_id), until their final
 * replaces them; `flows_all` is both. A batch ledger makes writes exactly-
 * once without the key. Measured on 2 cores: the key and the two B-trees
 * halved COPY speed, the staging + merge halved it again. */
static int schema__v4(char *out, size_t len)
{
    return schema__fits(snprintf(out, len,
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
        "applied_at timestamptz NOT NULL DEFAULT now());"), len);
}

/* v5: the time index keeps several intervals per block range (minmax-multi)
 * instead of one. A range of rows written together holds the finals of
 * flows that started minutes earlier, so one [min, max] per range spans
 * minutes and a millisecond's window matched ~190 of them (450 000 rows
 * read for 166); with up to 32 values per range it matches 2 (4 700 rows,
 * 20x less I/O). The build reads every partition once (~80 s per 100 M
 * rows on 2 cores). */
static int schema__v5(char *out, size_t len)
{
    return schema__fits(snprintf(out, len,
        "DROP INDEX IF EXISTS flows_first_ts_brin;"
        "CREATE INDEX flows_first_ts_brin ON flows USING brin (first_ts timestamptz_minmax_multi_ops);"),
        len);
}

/* v6: each node's clock offset from the coordinator's, measured from its
 * heartbeats (registry.h); NULL until measured. */
static int schema__v6(char *out, size_t len)
{
    return schema__fits(snprintf(out, len, "ALTER TABLE nodes ADD COLUMN clock_offset_ns bigint;"), len);
}

/* v7: monitors (named flow filters, monitor.h) and their per-minute series
 * (monseries.h). The latency histograms are bigint arrays of log-linear
 * buckets, trailing zeros cut; mscope_hist_add() adds two (the upsert) and
 * mscope_hist_quantile() reads a percentile from one (the API, Grafana).
 * Bucket i (1-based) holds values from (4 + (i-2) % 4) * 2^((i-2)/4) / 4 us,
 * a quarter of their power of two wide; bucket 1 is under 1 us. */
static int schema__v7(char *out, size_t len)
{
    static const char *const hist_fn =
        "CREATE FUNCTION mscope_hist_add(a bigint[], b bigint[]) RETURNS bigint[] "
        "LANGUAGE sql IMMUTABLE AS $f$ SELECT coalesce(array_agg(coalesce(a[i], 0) + "
        "coalesce(b[i], 0) ORDER BY i), '{}') FROM generate_series(1, greatest("
        "coalesce(array_length(a, 1), 0), coalesce(array_length(b, 1), 0))) i $f$;"
        "CREATE FUNCTION mscope_hist_quantile(h bigint[], q float8) RETURNS bigint "
        "LANGUAGE sql IMMUTABLE AS $f$ SELECT CASE WHEN i = 1 THEN 0 ELSE round(1000 * "
        "((4 + (i - 2) % 4) * 2 ^ ((i - 2) / 4) / 4.0 + 2 ^ ((i - 2) / 4) / 8.0))::bigint END "
        "FROM (SELECT i, sum(h[i]) OVER (ORDER BY i) AS cum, sum(h[i]) OVER () AS total "
        "FROM generate_subscripts(h, 1) i) b WHERE total > 0 AND cum >= q * total "
        "ORDER BY i LIMIT 1 $f$;";
    return schema__fits(snprintf(out, len,
        "CREATE TABLE monitors (id bigserial PRIMARY KEY, name text NOT NULL UNIQUE, "
        "server cidr, client cidr, server_port integer NOT NULL DEFAULT 0, "
        "proto smallint NOT NULL DEFAULT 0, nodes text[] NOT NULL DEFAULT '{}', "
        "filter text NOT NULL DEFAULT '', created_at timestamptz NOT NULL DEFAULT now(), "
        "changed_at timestamptz NOT NULL DEFAULT now());"
        "CREATE TABLE monitor_minutes (monitor_id bigint NOT NULL REFERENCES monitors "
        "ON DELETE CASCADE, minute timestamptz NOT NULL, "
        "c2s_bytes bigint NOT NULL, s2c_bytes bigint NOT NULL, c2s_packets bigint NOT NULL, "
        "s2c_packets bigint NOT NULL, flows_started bigint NOT NULL, "
        "flows_finished bigint NOT NULL, flows_active bigint NOT NULL, "
        "retransmissions bigint NOT NULL, zero_windows bigint NOT NULL, resets bigint NOT NULL, "
        "handshakes_failed bigint NOT NULL, "
        "hs_count bigint NOT NULL, hs_sum bigint NOT NULL, hs_hist bigint[] NOT NULL, "
        "rtt_count bigint NOT NULL, rtt_sum bigint NOT NULL, rtt_hist bigint[] NOT NULL, "
        "app_count bigint NOT NULL, app_sum bigint NOT NULL, app_hist bigint[] NOT NULL, "
        "PRIMARY KEY (monitor_id, minute));%s", hist_fn), len);
}

/* v8: mscope_hist_sum(), the aggregate of monitor histograms, so a query
 * (Grafana's, over buckets wider than a minute) merges minutes before it
 * reads a percentile. */
static int schema__v8(char *out, size_t len)
{
    return schema__fits(snprintf(out, len,
        "CREATE AGGREGATE mscope_hist_sum(bigint[]) (SFUNC = mscope_hist_add, STYPE = bigint[], "
        "INITCOND = '{}');"), len);
}

/* v9: each node's store and losses from its heartbeats' counters (the
 * drops by reason as a JSON object of counts), for mscope nodes and the
 * dashboard's Overview. */
static int schema__v9(char *out, size_t len)
{
    return schema__fits(snprintf(out, len,
        "ALTER TABLE nodes ADD COLUMN drops jsonb NOT NULL DEFAULT '{}', "
        "ADD COLUMN disk_used bigint, ADD COLUMN oldest_ns bigint, ADD COLUMN newest_ns bigint;"),
        len);
}

/* v10: application transactions (issue 15) in one table partitioned by
 * day of their first request packet, with a BRIN time index like flows (no
 * key, no B-tree: COPY speed), and their per-minute aggregates per kind,
 * node, server endpoint, name (qname, SNI, Host; '' when absent) and, for
 * HTTP, the URI's path (its query cut; '' for DNS and TLS): count, errors
 * (DNS: rcode not 0 or unanswered; TLS: no ServerHello; HTTP: status >= 500
 * or no response), and the response times of those that had one as a sum
 * and a histogram (latency.h's buckets, read by mscope_hist_quantile). */
static int schema__v10(char *out, size_t len)
{
    char cols[4096];
    schema_app_col_list(cols, sizeof cols, 1);
    return schema__fits(snprintf(out, len,
        "CREATE TABLE app_records (%s, ts timestamptz NOT NULL) PARTITION BY RANGE (ts);"
        "CREATE INDEX app_records_ts_brin ON app_records USING brin (ts timestamptz_minmax_multi_ops);"
        "CREATE TABLE app_minutes (minute timestamptz NOT NULL, kind smallint NOT NULL, "
        "node text NOT NULL, server_ip inet NOT NULL, server_port integer NOT NULL, "
        "name bytea NOT NULL, endpoint bytea NOT NULL, count bigint NOT NULL, "
        "errors bigint NOT NULL, response_count bigint NOT NULL, response_sum bigint NOT NULL, "
        "response_hist bigint[] NOT NULL, "
        "PRIMARY KEY (minute, kind, node, server_ip, server_port, name, endpoint));",
        cols), len);
}

int schema_migration_sql(int version, char *out, size_t len)
{
    static int (*const steps[])(char *, size_t) = { schema__v1, schema__v2, schema__v3, schema__v4,
                                                    schema__v5, schema__v6, schema__v7,
                                                    schema__v8, schema__v9, schema__v10 };
    _Static_assert(sizeof steps / sizeof steps[0] == SCHEMA_VERSION, "one step per version");
    if (version < 1 || version > SCHEMA_VERSION) return -1;
    return steps[version - 1](out, len);
}

int schema_session_sql(char *out, size_t len)
{
    char cols[8192];
    schema_col_list(cols, sizeof cols, 1);
    return schema__fits(snprintf(out, len,
        "CREATE TEMP TABLE live_staging (%s, first_ts timestamptz NOT NULL);"
        "CREATE TEMP TABLE final_keys (node text, flow_id bigint);"
        "CREATE TEMP TABLE minutes_staging (LIKE flow_minutes);"
        "CREATE TEMP TABLE app_minutes_staging (LIKE app_minutes)", cols), len);
}

static void schema__day(int day, struct tm *tm)
{
    time_t t = (time_t)day * 86400;
    gmtime_r(&t, tm);
}

void schema_part_name(const char *parent, int day, char *out, size_t len)
{
    struct tm tm;
    schema__day(day, &tm);
    snprintf(out, len, "%s_%04d%02d%02d", parent, tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
}

void schema_partition_name(int day, char *out, size_t len) { schema_part_name("flows", day, out, len); }

/* No vacuum triggered by inserts: a day partition is append-only (there is
 * nothing to reclaim) and its BRIN is summarised by the coordinator, while
 * such a vacuum, throttled below the insert rate, would rescan and dirty
 * every new page again and hold the lock that summarising needs.
 * Anti-wraparound vacuums still run; retention drops old days first. */
int schema_part_sql(const char *parent, int day, char *out, size_t len)
{
    struct tm tm;
    schema__day(day, &tm);
    return schema__fits(snprintf(out, len,
        "CREATE TABLE IF NOT EXISTS %s_%04d%02d%02d PARTITION OF %s FOR VALUES "
        "FROM ('%04d-%02d-%02d 00:00:00+00') TO ('%04d-%02d-%02d 00:00:00+00'::timestamptz "
        "+ interval '1 day') WITH (autovacuum_vacuum_insert_threshold = -1)",
        parent, tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, parent, tm.tm_year + 1900,
        tm.tm_mon + 1, tm.tm_mday, tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday), len);
}

int schema_partition_sql(int day, char *out, size_t len) { return schema_part_sql("flows", day, out, len); }
