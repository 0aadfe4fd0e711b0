/* db.c - everything said to PostgreSQL (the only libpq user; see db.h):
 * connections and migrations, batches written with COPY, the node registry,
 * housekeeping, and the queries of the APIs.
 *
 * DESIGN: schema.h's column table (expanded from the flow record's field
 * table, flowrec_fields.h) drives the DDL, the staging tables, the COPY
 * column lists, the merge statement and the reading of rows, and batch.c
 * encodes records in the same order, so they cannot disagree; a column the
 * table has and the database lacks is added at start-up (db__sync_columns). Values reach SQL only as COPY
 * data or as $n parameters: no text is ever pasted into a statement except
 * our own identifiers and dates we formatted.
 */
#include "db.h"

#include "querysql.h"
#include "schema.h"
#include "log.h"
#include "timeparse.h"
#include "xmalloc.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <math.h>
#include <errno.h>
#include <stdio.h>
#include <sys/resource.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DB_KNOWN_DAYS 64

struct db {
    PGconn *conn;
    int32_t known_days[DB_KNOWN_DAYS]; /* partitions created this session */
    int nknown;
    int32_t known_appdays[DB_KNOWN_DAYS]; /* ... of app_records */
    int nknown_app;
    char sqlstate[6];                  /* of the last failed statement */
    int seqscan_off;                   /* SET enable_seqscan = off now */
};

/* Remember why a statement failed: the data itself, or the moment? */
static void db__state(db_t *d, const PGresult *r)
{
    const char *st = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    snprintf(d->sqlstate, sizeof d->sqlstate, "%s", st ? st : "");
}


/* ---- flows with interim rows ------------------------------------------------ */

long db_liveset_load(db_t *d, liveset_t *s, char *err, size_t errlen)
{
    PGresult *r = PQexec(d->conn, "SELECT node, flow_id FROM flows_live");
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        snprintf(err, errlen, "%s", PQresultErrorMessage(r));
        PQclear(r);
        return -1;
    }
    long n = PQntuples(r);
    for (long i = 0; i < n; i++)
        liveset_add(s, PQgetvalue(r, (int)i, 0),
                    (uint64_t)strtoll(PQgetvalue(r, (int)i, 1), NULL, 10));
    PQclear(r);
    return n;
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

/* The field table's columns that `flows` lacks - a metric added to
 * flowrec_fields.h since this database was made (migration 1 makes the
 * table from it, so a new database has them all) - are added to flows and
 * flows_live, at the end and without NOT NULL (old rows hold NULL), and the
 * flows_all view is made again over them: adding a field takes no
 * migration written by hand. Partitions take the parent's new columns. A
 * column of another type than the table's fails (-1, err says which): COPY
 * would refuse every batch. */
static int db__sync_columns(db_t *d, char *err, size_t errlen)
{
    PGresult *r = PQexec(d->conn, "SELECT column_name, data_type FROM information_schema.columns "
                                  "WHERE table_schema = current_schema() AND table_name = 'flows'");
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        snprintf(err, errlen, "%s", PQresultErrorMessage(r));
        PQclear(r);
        return -1;
    }
    static _Thread_local char sql[32768], added[4096];
    size_t n = 0, na = 0;
    n += (size_t)snprintf(sql, sizeof sql, "BEGIN;");
    added[0] = 0;
    for (size_t i = 0; i < SCHEMA_NCOLS && n < sizeof sql && na < sizeof added; i++) {
        const char *type = schema_cols[i][1], *nn = strstr(type, " NOT NULL");
        int tl = nn ? (int)(nn - type) : (int)strlen(type), have = -1;
        for (int k = 0; k < PQntuples(r) && have < 0; k++)
            if (!strcmp(PQgetvalue(r, k, 0), schema_cols[i][0])) have = k;
        if (have >= 0) {
            const char *is = PQgetvalue(r, have, 1);
            if (strlen(is) == (size_t)tl && !strncmp(is, type, (size_t)tl)) continue;
            /* a field's kind changed: converting its rows takes a migration */
            snprintf(err, errlen, "column flows.%s is %s, the flow record's field table says %.*s "
                                  "(a changed kind needs a migration in schema.c)",
                     schema_cols[i][0], is, tl, type);
            PQclear(r);
            return -1;
        }
        n += (size_t)snprintf(sql + n, sizeof sql - n,
                              "ALTER TABLE flows ADD COLUMN IF NOT EXISTS %s %.*s;"
                              "ALTER TABLE flows_live ADD COLUMN IF NOT EXISTS %s %.*s;",
                              schema_cols[i][0], tl, type, schema_cols[i][0], tl, type);
        na += (size_t)snprintf(added + na, sizeof added - na, "%s%s", na ? ", " : "", schema_cols[i][0]);
    }
    PQclear(r);
    if (!na) return 0;
    n += (size_t)snprintf(sql + n, sizeof sql - n,
                          "CREATE OR REPLACE VIEW flows_all AS SELECT * FROM flows "
                          "UNION ALL SELECT * FROM flows_live;COMMIT;");
    if (n >= sizeof sql || na >= sizeof added) {
        snprintf(err, errlen, "the columns to add to flows do not fit their buffer");
        return -1;
    }
    if (db__exec(d, sql, err, errlen) < 0) {
        PQclear(PQexec(d->conn, "ROLLBACK"));
        return -1;
    }
    log_info("columns added to flows from the flow record's field table: %s", added);
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
    for (int v = version + 1; v <= SCHEMA_VERSION; v++) {
        static _Thread_local char sql[32768];
        if (schema_migration_sql(v, sql, sizeof sql) < 0) {
            snprintf(err, errlen, "schema migration %d does not fit its buffer", v);
            return -1;
        }
        if (db__migration(d, v, sql, err, errlen) < 0) return -1;
    }
    return db__sync_columns(d, err, errlen);
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
    char sql[12000];
    /* Staging tables live as long as the connection. */
    if (schema_session_sql(sql, sizeof sql) < 0 || db__exec(d, sql, err, errlen) < 0) goto fail;
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

int db_lower_priority(db_t *d, int nice)
{
    /* Only a server on this machine (a Unix socket): a process id from a
     * TCP connection names a process on another host. */
    const char *host = PQhost(d->conn);
    int pid = PQbackendPID(d->conn);
    if (!host || host[0] != '/' || pid <= 0) return -1;
    if (setpriority(PRIO_PROCESS, (id_t)pid, nice) < 0) {
        log_debug("setpriority(%d, %d) failed: %s", pid, nice, strerror(errno));
        return -1;
    }
    /* Parallel workers are processes of their own, at the server's
     * priority: a big scan would take the CPU back from the writers. */
    PQclear(PQexec(d->conn, "SET max_parallel_workers_per_gather = 0"));
    return 0;
}

/* Create the day partitions of parent that a batch needs (each once per
 * session; known/nknown remember them). */
static int db__partitions(db_t *d, const char *parent, const int32_t *days, size_t ndays,
                          int32_t *known_days, int *nknown, char *err, size_t errlen)
{
    for (size_t i = 0; i < ndays; i++) {
        int32_t day = days[i];
        int known = 0;
        for (int k = 0; k < *nknown && !known; k++) known = known_days[k] == day;
        if (known) continue;
        char sql[512];
        schema_part_sql(parent, day, sql, sizeof sql);
        /* Two writers may create the same day at once: IF NOT EXISTS is not
         * proof against that; the loser's "already exists" is success. */
        if (db__exec(d, sql, err, errlen) < 0 && strcmp(d->sqlstate, "42P07") &&
            strcmp(d->sqlstate, "23505"))
            return -1;
        /* Remember only today and yesterday: retention (on another
         * connection) may drop older days, which then must be made again. */
        int32_t today = (int32_t)(time(NULL) / 86400);
        if (day >= today - 1 && *nknown < DB_KNOWN_DAYS) known_days[(*nknown)++] = day;
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

static int db__copy(db_t *d, const char *stmt, const char *data, size_t n, char *err,
                    size_t errlen)
{
    const char *part[] = { data };
    size_t len[] = { n };
    return db__copy_parts(d, stmt, part, len, 1, err, errlen);
}

/* COPY ... (FORMAT binary): the file header, the tuples, the trailer. */
static int db__copy_binary(db_t *d, const char *stmt, const char *tuples, size_t n, char *err,
                           size_t errlen)
{
    static const char hdr[19] = "PGCOPY\n\377\r\n\0\0\0\0\0\0\0\0\0";
    const char *part[] = { hdr, tuples, "\377\377" };
    size_t len[] = { sizeof hdr, n, 2 };
    return db__copy_parts(d, stmt, part, len, 3, err, errlen);
}

/* Interim records: each flow's latest goes into flows_live unless its final
 * is in this batch; finals take their flow's interim row out. */
static int db__merge_live(db_t *d, const batch_view *b, char *err, size_t errlen)
{
    static _Thread_local char sql[65536]; /* per writer thread; too big for the stack */
    char cols[8192], upd[16384];
    if (b->keys_len && db__copy(d, "COPY final_keys FROM STDIN", b->keys, b->keys_len, err, errlen) < 0)
        return -1;
    if (b->keys_len &&
        db__exec(d, "DELETE FROM flows_live l USING final_keys k "
                    "WHERE l.node = k.node AND l.flow_id = k.flow_id", err, errlen) < 0)
        return -1;
    if (b->interims) {
        if (db__copy_binary(d, "COPY live_staging FROM STDIN (FORMAT binary)", b->live,
                            b->live_len, err, errlen) < 0)
            return -1;
        schema_col_list(cols, sizeof cols, 0);
        size_t used = 0;
        for (size_t i = 2; i < SCHEMA_NCOLS; i++)
            used += (size_t)snprintf(upd + used, sizeof upd - used, "%s = EXCLUDED.%s, ",
                                     schema_cols[i][0], schema_cols[i][0]);
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

/* Application records: COPY'd straight into their day's partition (or the
 * parent when they span days), their minutes added into app_minutes in key
 * order (as flow_minutes, so two writers never deadlock). */
static int db__write_apps(db_t *d, const batch_view *b, char *err, size_t errlen)
{
    static _Thread_local char stmt[4096];
    char cols[2048], table[48] = "app_records";
    schema_app_col_list(cols, sizeof cols, 0);
    if (b->nappdays == 1) schema_part_name("app_records", b->appdays[0], table, sizeof table);
    snprintf(stmt, sizeof stmt, "COPY %s (%s, ts) FROM STDIN (FORMAT binary)", table, cols);
    if (db__copy_binary(d, stmt, b->app, b->app_len, err, errlen) < 0) return -1;
    if (db__copy(d, "COPY app_minutes_staging FROM STDIN", b->appmins, b->appmins_len, err,
                 errlen) < 0)
        return -1;
    return db__exec(d,
        "INSERT INTO app_minutes SELECT * FROM app_minutes_staging "
        "ORDER BY minute, kind, node, server_ip, server_port, name, endpoint "
        "ON CONFLICT (minute, kind, node, server_ip, server_port, name, endpoint) DO UPDATE SET "
        "count = app_minutes.count + EXCLUDED.count, errors = app_minutes.errors + EXCLUDED.errors, "
        "response_count = app_minutes.response_count + EXCLUDED.response_count, "
        "response_sum = app_minutes.response_sum + EXCLUDED.response_sum, "
        "response_hist = mscope_hist_add(app_minutes.response_hist, EXCLUDED.response_hist); "
        "TRUNCATE app_minutes_staging", err, errlen);
}

static int db__add_minutes(db_t *d, const batch_view *b, char *err, size_t errlen)
{
    char sql[8192], hupd[2048];
    size_t hu = 0;
    for (int i = 0; i < SCHEMA_RTT_BUCKETS; i++)
        hu += (size_t)snprintf(hupd + hu, sizeof hupd - hu,
                               ", rtt_h%d = flow_minutes.rtt_h%d + EXCLUDED.rtt_h%d", i, i, i);
    if (db__copy(d, "COPY minutes_staging FROM STDIN", b->mins, b->mins_len, err, errlen) < 0)
        return -1;
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

/* Did the last statement fail because of the rows themselves, so that
 * trying again can never work? Worth retrying are only the failures of the
 * server or the path to it - a lost connection (08, or no SQLSTATE),
 * rollbacks for concurrency (40), missing objects while housekeeping runs
 * (42), resources (53), locks and shutdowns (55, 57), I/O (58), internal
 * errors (XX). Everything else - data exceptions (22), constraints (23),
 * limits such as a row too big to index (54), ... - would stall every batch
 * queued behind this one forever. */
static int db__data_error(const db_t *d)
{
    static const char *const retry[] = { "08", "40", "42", "53", "55", "57", "58", "XX" };
    if (!d->sqlstate[0] || PQstatus(d->conn) != CONNECTION_OK) return 0;
    for (size_t i = 0; i < sizeof retry / sizeof retry[0]; i++)
        if (!strncmp(d->sqlstate, retry[i], 2)) return 0;
    return 1;
}

int db_write(db_t *d, const batch_t *batch, char *err, size_t errlen)
{
    batch_view view, *b = &view;
    batch_view_of(batch, b);
    if (!b->records) return 0;
    if (!db_ok(d)) {
        snprintf(err, errlen, "no database connection");
        return -1;
    }
    d->sqlstate[0] = 0;
    /* Partitions first, each in its own statement outside the batch's
     * transaction (a failed CREATE would abort it). */
    if (db__partitions(d, "flows", b->days, b->ndays, d->known_days, &d->nknown, err, errlen) < 0 ||
        db__partitions(d, "app_records", b->appdays, b->nappdays, d->known_appdays,
                       &d->nknown_app, err, errlen) < 0)
        return -1;
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
        schema_col_list(cols, sizeof cols, 0);
        /* All in one day (the usual case): straight into its partition,
         * without routing each row through the parent. */
        char table[32] = "flows";
        if (b->ndays == 1) schema_partition_name(b->days[0], table, sizeof table);
        snprintf(stmt, sizeof stmt, "COPY %s (%s, first_ts) FROM STDIN (FORMAT binary)", table, cols);
        if (db__copy_binary(d, stmt, b->fin, b->fin_len, err, errlen) < 0) goto fail;
        t1 = timeparse_mono_ns();
    }
    if ((b->interims || b->keys_len) && db__merge_live(d, b, err, errlen) < 0) goto fail;
    t2 = timeparse_mono_ns();
    if (b->mins_len && db__add_minutes(d, b, err, errlen) < 0) goto fail;
    if (b->apps && db__write_apps(d, b, err, errlen) < 0) goto fail;
    t3 = timeparse_mono_ns();
    if (db__exec(d, "COMMIT", err, errlen) < 0) goto fail;
    log_debug("batch %s: COPY %" PRIu64 " finals %.1f ms, %" PRIu64 " interims %.1f ms, "
              "minutes and %" PRIu64 " app records %.1f ms, commit %.1f ms", b->id, b->finals,
              (double)(t1 - t0) / 1e6, b->interims, (double)(t2 - t1) / 1e6, b->apps,
              (double)(t3 - t2) / 1e6,
              (double)(timeparse_mono_ns() - t3) / 1e6);
    return 0;
fail:
    PQclear(PQexec(d->conn, "ROLLBACK"));
    return db__data_error(d) ? -2 : -1;
}

static PGresult *db__query(db_t *d, const char *sql, int n, const char *const *params,
                           int *bad_request, char *err, size_t errlen);


/* Summarise a partition's BRIN time index up to its last block. BRIN
 * summarises a block range only when told (VACUUM, or this), and a time
 * range query must read every unsummarised range: on the day being written
 * at 150 000 records/s that is millions of rows per query. lock_ms > 0
 * gives up after that long when someone holds the table's SHARE UPDATE
 * EXCLUSIVE lock (a CREATE INDEX CONCURRENTLY, a VACUUM): returns 0 then,
 * as if there were nothing to do. */
static int db__summarize(db_t *d, const char *table, int lock_ms, char *err, size_t errlen)
{
    char sql[128];
    snprintf(sql, sizeof sql, "SET LOCAL lock_timeout = %d", lock_ms);
    d->sqlstate[0] = 0;
    if (db__exec(d, "BEGIN", err, errlen) < 0) return -1;
    if (lock_ms > 0 && db__exec(d, sql, err, errlen) < 0) goto fail;
    const char *params[] = { table };
    PGresult *r = db__query(d,
        "SELECT coalesce(sum(brin_summarize_new_values(x.indexrelid)), 0) FROM pg_index x "
        "JOIN pg_class ic ON ic.oid = x.indexrelid JOIN pg_am a ON a.oid = ic.relam "
        "WHERE x.indrelid = to_regclass($1) AND a.amname = 'brin'",
        1, params, NULL, err, errlen);
    if (!r) goto fail;
    int n = atoi(PQgetvalue(r, 0, 0));
    PQclear(r);
    if (db__exec(d, "COMMIT", err, errlen) < 0) return -1;
    return n;
fail:
    PQclear(PQexec(d->conn, "ROLLBACK"));
    return !strcmp(d->sqlstate, "55P03") ? 0 : -1; /* lock_not_available */
}

int db_summarize_day(db_t *d, int day, char *err, size_t errlen)
{
    /* the day's flows and its application records (a partition not made
     * yet has nothing to summarise: to_regclass() is NULL) */
    static const char *const parents[] = { "flows", "app_records" };
    int total = 0;
    for (size_t i = 0; i < sizeof parents / sizeof parents[0]; i++) {
        char t[64];
        schema_part_name(parents[i], day, t, sizeof t);
        int n = db__summarize(d, t, 100, err, errlen);
        if (n < 0) return -1;
        total += n;
    }
    return total;
}

int db_index_sealed(db_t *d, char *err, size_t errlen)
{
    /* Our partitions before today without both host indexes, valid. */
    PGresult *r = PQexec(d->conn,
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'flows' "
        "AND c.relname ~ '^flows_[0-9]{8}$' "
        "AND to_date(substr(c.relname, 7), 'YYYYMMDD') < (now() AT TIME ZONE 'UTC')::date "
        "AND (SELECT count(*) FROM pg_index x JOIN pg_class ic ON ic.oid = x.indexrelid "
        "WHERE x.indrelid = c.oid AND x.indisvalid AND ic.relname IN "
        "(c.relname || '_client', c.relname || '_server')) < 2 ORDER BY 1");
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        snprintf(err, errlen, "%s", PQresultErrorMessage(r));
        PQclear(r);
        return -1;
    }
    /* CONCURRENTLY: a late record of that day (a flow that started before
     * midnight) is written meanwhile instead of waiting for the build. A
     * build that was interrupted leaves an invalid index: dropped, redone. */
    static const char *const idx[][2] = { { "client", "client_ip" },
                                          { "server", "server_ip, server_port" } };
    int done = 0;
    for (int i = 0; i < PQntuples(r); i++) {
        const char *t = PQgetvalue(r, i, 0); /* matched ^flows_[0-9]{8}$ above */
        int ok = 1;
        for (int k = 0; k < 2 && ok; k++) {
            char sql[512];
            snprintf(sql, sizeof sql,
                     "SELECT 1 FROM pg_index x JOIN pg_class ic ON ic.oid = x.indexrelid "
                     "WHERE ic.relname = '%s_%s' AND NOT x.indisvalid", t, idx[k][0]);
            PGresult *inv = PQexec(d->conn, sql);
            int invalid = PQresultStatus(inv) == PGRES_TUPLES_OK && PQntuples(inv) > 0;
            PQclear(inv);
            if (invalid) {
                snprintf(sql, sizeof sql, "DROP INDEX CONCURRENTLY IF EXISTS %s_%s", t, idx[k][0]);
                ok = db__exec(d, sql, err, errlen) == 0;
            }
            snprintf(sql, sizeof sql, "CREATE INDEX CONCURRENTLY IF NOT EXISTS %s_%s ON %s (%s)", t,
                     idx[k][0], t, idx[k][1]);
            ok = ok && db__exec(d, sql, err, errlen) == 0;
        }
        /* and the BRIN of its last hours, which no one summarised */
        ok = ok && db__summarize(d, t, 0, err, errlen) >= 0;
        if (!ok) break;
        log_info("indexed the sealed day partition %s", t);
        done++;
    }
    PQclear(r);
    return done;
}

/* The counters a node's row keeps from its last heartbeat. Each name is a
 * field of Counters, a column of `nodes` and, where the API shows it, a field
 * of NodeInfo (proto/mirrorscope.proto), all 64-bit: the upsert and the
 * listing copy them by these names through the descriptors, so a counter
 * added to the protos, a migration and this list reaches mscope nodes and
 * the REST row with no other code. The drops by reason (a map) are the jsonb
 * column `drops`. */
static const char *const db__node_counters[] = {
    "rx_packets", "rx_bytes", "stored_packets", "stored_bytes", "flows_active",
    "records_published", "records_shed", "disk_used", "oldest_ns", "newest_ns",
};
#define DB_NODE_NCOUNTERS (sizeof db__node_counters / sizeof db__node_counters[0])

/* Field `name` of a message type; every name in the list is one of Counters. */
static const ProtobufCFieldDescriptor *db__field(const ProtobufCMessageDescriptor *m, const char *name)
{
    return protobuf_c_message_descriptor_get_field_by_name(m, name);
}

int db_upsert_node(db_t *d, const Mirrorscope__Heartbeat *hb, uint64_t gaps,
                   const int64_t *clock_offset_ns, char *err, size_t errlen)
{
    static const Mirrorscope__Counters zc = MIRRORSCOPE__COUNTERS__INIT;
    const Mirrorscope__Counters *c = hb->counters ? hb->counters : &zc;
    enum { FIXED = 7 };
    char v[FIXED + DB_NODE_NCOUNTERS][32];
    const char *params[FIXED + DB_NODE_NCOUNTERS];
    char cols[1024] = "", vals[512] = "", sets[2048] = "";
    size_t nc = 0, nv = 0, ns = 0;
    snprintf(v[0], 32, "%" PRId64, hb->start_ns);
    snprintf(v[1], 32, "%" PRIu64, gaps);
    if (clock_offset_ns) snprintf(v[2], 32, "%" PRId64, *clock_offset_ns);
    json_t *drops = json_object();
    for (size_t i = 0; i < c->n_drops; i++)
        json_object_set_new(drops, c->drops[i]->key, json_integer((json_int_t)c->drops[i]->value));
    char *drops_text = json_dumps(drops, JSON_COMPACT);
    json_decref(drops);
    params[0] = hb->node;
    params[1] = v[0];
    params[2] = hb->version;
    params[3] = hb->search_endpoint;
    params[4] = v[1];
    params[5] = clock_offset_ns ? v[2] : NULL;
    params[6] = drops_text ? drops_text : "{}";
    for (size_t i = 0; i < DB_NODE_NCOUNTERS; i++) {
        const char *name = db__node_counters[i];
        const ProtobufCFieldDescriptor *f = db__field(&mirrorscope__counters__descriptor, name);
        const void *p = (const char *)c + f->offset;
        if (f->type == PROTOBUF_C_TYPE_UINT64) snprintf(v[FIXED + i], 32, "%" PRIu64, *(const uint64_t *)p);
        else snprintf(v[FIXED + i], 32, "%" PRId64, *(const int64_t *)p);
        params[FIXED + i] = v[FIXED + i];
        nc += (size_t)snprintf(cols + nc, sizeof cols - nc, ", %s", name);
        nv += (size_t)snprintf(vals + nv, sizeof vals - nv, ", $%zu", FIXED + i + 1);
        ns += (size_t)snprintf(sets + ns, sizeof sets - ns, ", %s = EXCLUDED.%s", name, name);
    }
    char sql[4096];
    snprintf(sql, sizeof sql,
             "INSERT INTO nodes (node, start_ns, version, search_endpoint, last_seen, gaps, "
             "clock_offset_ns, drops%s) VALUES ($1, $2, $3, $4, now(), $5, $6, $7%s) "
             "ON CONFLICT (node) DO UPDATE SET start_ns = EXCLUDED.start_ns, version = "
             "EXCLUDED.version, search_endpoint = EXCLUDED.search_endpoint, last_seen = now(), "
             "gaps = EXCLUDED.gaps, clock_offset_ns = EXCLUDED.clock_offset_ns, "
             "drops = EXCLUDED.drops%s", cols, vals, sets);
    PGresult *r = PQexecParams(d->conn, sql, FIXED + (int)DB_NODE_NCOUNTERS, NULL, params, NULL,
                               NULL, 0);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok) snprintf(err, errlen, "%s", PQresultErrorMessage(r));
    PQclear(r);
    free(drops_text);
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
    /* Our own partitions, named PARENT_YYYYMMDD (flows, app_records), whose
     * day ended before the cut. */
    PGresult *r = PQexecParams(d->conn,
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname IN ('flows', 'app_records') "
        "AND c.relname = p.relname || '_' || right(c.relname, 8) AND right(c.relname, 8) ~ '^[0-9]{8}$' "
        "AND to_date(right(c.relname, 8), 'YYYYMMDD') + 1 <= (now() AT TIME ZONE 'UTC')::date - $1::int",
        1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        snprintf(err, errlen, "%s", PQresultErrorMessage(r));
        PQclear(r);
        return -1;
    }
    int dropped = 0;
    for (int i = 0; i < PQntuples(r); i++) {
        char sql[128];
        const char *name = PQgetvalue(r, i, 0); /* PARENT_YYYYMMDD, matched above */
        snprintf(sql, sizeof sql, "DROP TABLE IF EXISTS %s", name);
        if (db__exec(d, sql, err, errlen) < 0) break;
        log_info("retention: dropped partition %s", name);
        dropped++;
        d->nknown = d->nknown_app = 0; /* forget created partitions: re-check on the next write */
    }
    PQclear(r);
    r = PQexecParams(d->conn,
                     "DELETE FROM flow_minutes WHERE minute < date_trunc('day', now()) - $1::int * interval '1 day'",
                     1, NULL, params, NULL, NULL, 0);
    PQclear(r);
    r = PQexecParams(d->conn,
                     "DELETE FROM app_minutes WHERE minute < date_trunc('day', now()) - $1::int * interval '1 day'",
                     1, NULL, params, NULL, NULL, 0);
    PQclear(r);
    r = PQexecParams(d->conn,
                     "DELETE FROM monitor_minutes WHERE minute < date_trunc('day', now()) - $1::int * interval '1 day'",
                     1, NULL, params, NULL, NULL, 0);
    PQclear(r);
    r = PQexecParams(d->conn,
                     "DELETE FROM flows_live WHERE first_ts < date_trunc('day', now()) - $1::int * interval '1 day'",
                     1, NULL, params, NULL, NULL, 0);
    PQclear(r);
    return dropped;
}

/* ---- any other module's statements ------------------------------------------ */

long db_exec_params(db_t *d, const char *sql, int n, const char *const *params, db_row_fn fn,
                    void *arg, char sqlstate[6], char *err, size_t errlen)
{
    if (sqlstate) sqlstate[0] = 0;
    if (!db_ok(d)) {
        snprintf(err, errlen, "the database is not reachable right now");
        return -1;
    }
    PGresult *r = PQexecParams(d->conn, sql, n, NULL, params, NULL, NULL, 0);
    long rows = -1;
    if (PQresultStatus(r) == PGRES_TUPLES_OK) {
        int nr = PQntuples(r), nc = PQnfields(r);
        const char *vals[64];
        for (int i = 0; fn && i < nr; i++) {
            for (int c = 0; c < nc && c < 64; c++)
                vals[c] = PQgetisnull(r, i, c) ? NULL : PQgetvalue(r, i, c);
            fn(arg, nc < 64 ? nc : 64, vals);
        }
        rows = nr;
    } else if (PQresultStatus(r) == PGRES_COMMAND_OK) {
        rows = atol(PQcmdTuples(r));
    } else {
        db__state(d, r);
        if (sqlstate) snprintf(sqlstate, 6, "%s", d->sqlstate);
        snprintf(err, errlen, "%s", PQresultErrorMessage(r));
        err[strcspn(err, "\n")] = 0;
    }
    PQclear(r);
    return rows;
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
    db__state(d, r);
    const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    if (bad_request && state && !strncmp(state, "22", 2)) *bad_request = 1;
    snprintf(err, errlen, "%s", PQresultErrorMessage(r));
    PQclear(r);
    return NULL;
}

/* A node's drops (the jsonb column's text) as NodeInfo's map entries. */
static void db__node_drops(Mirrorscope__NodeInfo *ni, const char *text)
{
    json_t *o = json_loads(text, 0, NULL);
    if (!json_is_object(o) || !json_object_size(o)) {
        json_decref(o);
        return;
    }
    ni->drops = xcalloc(json_object_size(o), sizeof *ni->drops);
    const char *k;
    json_t *val;
    json_object_foreach(o, k, val) {
        Mirrorscope__NodeInfo__DropsEntry *e = xmalloc(sizeof *e);
        mirrorscope__node_info__drops_entry__init(e);
        e->key = xstrdup(k);
        e->value = (uint64_t)json_integer_value(val);
        ni->drops[ni->n_drops++] = e;
    }
    json_decref(o);
}

int db_list_nodes(db_t *d, int64_t stale_ns, int64_t dead_ns, Mirrorscope__Response *resp,
                  char *err, size_t errlen)
{
    char st[32], dd[32], cols[1024] = "";
    size_t nc = 0;
    for (size_t i = 0; i < DB_NODE_NCOUNTERS; i++)
        nc += (size_t)snprintf(cols + nc, sizeof cols - nc, ", %s", db__node_counters[i]);
    char sql[2048];
    snprintf(sql, sizeof sql,
        "SELECT node, start_ns, version, search_endpoint, "
        "(extract(epoch from last_seen) * 1e9)::bigint, "
        "CASE WHEN now() - last_seen > $2::bigint * interval '1 millisecond' THEN 'dead' "
        "WHEN now() - last_seen > $1::bigint * interval '1 millisecond' THEN 'stale' ELSE 'alive' END, "
        "gaps, clock_offset_ns, drops%s FROM nodes ORDER BY node", cols);
    enum { FIXED = 9 };
    snprintf(st, sizeof st, "%" PRId64, stale_ns / 1000000);
    snprintf(dd, sizeof dd, "%" PRId64, dead_ns / 1000000);
    const char *params[] = { st, dd };
    PGresult *r = db__query(d, sql, 2, params, NULL, err, errlen);
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
        ni->gaps = (uint64_t)db__i(r, i, 6);
        ni->clock_offset_known = !PQgetisnull(r, i, 7);
        ni->clock_offset_ns = db__i(r, i, 7);
        db__node_drops(ni, PQgetvalue(r, i, 8));
        for (size_t k = 0; k < DB_NODE_NCOUNTERS; k++) {
            const ProtobufCFieldDescriptor *f =
                db__field(&mirrorscope__node_info__descriptor, db__node_counters[k]);
            if (f) *(int64_t *)((char *)ni + f->offset) = db__i(r, i, FIXED + (int)k);
        }
        resp->nodes[i] = ni;
    }
    PQclear(r);
    return 0;
}

/* A flow row read back into its message, expanded from the field table
 * (flowrec_fields.h) as schema_cols lists the columns: node is column 0,
 * the table's first field column 1; *col counts on. observer and the
 * endpoints' addresses come as text (inet's output), NULL as no address. */
#define DB__READ_UINT(dst, r, i, c) ((dst) = (uint64_t)db__i((r), (i), (c)))
#define DB__READ_SINT(dst, r, i, c) ((dst) = db__i((r), (i), (c)))
#define DB__READ_IP(dst, r, i, c) ((dst) = db__ipbytes(PQgetvalue((r), (i), (c))))
#define DB__READ_TEXT(dst, r, i, c) ((dst) = db__s((r), (i), (c)))
#define DB__READ_BOOL(dst, r, i, c) ((dst) = PQgetvalue((r), (i), (c))[0] == 't')
#define DB__READ(kind, dst) FLOWREC_CAT(DB__READ_, FLOWREC_CLASS_##kind)(dst, r, i, (*col)++)

#define DB__STAT_FIELD(c, kind, name, num) DB__READ(kind, s->name);

static Mirrorscope__Stat *db__stat_from(PGresult *r, int i, int *col)
{
    Mirrorscope__Stat *s = xmalloc(sizeof *s);
    mirrorscope__stat__init(s);
    FLOWREC_STAT_FIELDS(DB__STAT_FIELD, _)
    return s;
}

#define DB__DIR_FIELD(c, kind, name, num) DB__READ(kind, d->name);
#define DB__DIR_STAT(c, member, name, sql, num) d->name = db__stat_from(r, i, col);

static Mirrorscope__Direction *db__dir_from(PGresult *r, int i, int *col)
{
    Mirrorscope__Direction *d = xmalloc(sizeof *d);
    mirrorscope__direction__init(d);
    FLOWREC_DIR_FIELDS(DB__DIR_FIELD, DB__DIR_STAT, _)
    return d;
}

#define DB__HS_FIELD(c, kind, member, pbname, bit, num) DB__READ(kind, h->pbname);
#define DB__HS_DERIVED(c, name, num, bits, a, b)                                               \
    if ((h->seen & (bits)) == (bits)) h->name = h->a - h->b;

/* Also for a flow that is not TCP, as ever: all zero there. */
static Mirrorscope__Handshake *db__hs_from(PGresult *r, int i, int *col)
{
    Mirrorscope__Handshake *h = xmalloc(sizeof *h);
    mirrorscope__handshake__init(h);
    FLOWREC_HS_FIELDS(DB__HS_FIELD, FLOWREC_NOTHING, _)
    h->complete = (h->seen & FLOWREC_HS_COMPLETE) == FLOWREC_HS_COMPLETE;
    FLOWREC_HS_FIELDS(FLOWREC_NOTHING, DB__HS_DERIVED, _)
    return h;
}

#define DB__F(c, kind, name, num) DB__READ(kind, m->name);
#define DB__EP(name, kind, leaf, num) DB__READ(kind, m->name->leaf);
#define DB__E(c, name, num)                                                                    \
    m->name = xmalloc(sizeof *m->name);                                                        \
    mirrorscope__endpoint__init(m->name);                                                      \
    FLOWREC_EP_FIELDS(DB__EP, name)
#define DB__D(c, name, num) m->name = db__dir_from(r, i, col);
#define DB__H(c, name, num) m->name = db__hs_from(r, i, col);
#define DB__S(c, member, name, sql, num) m->name = db__stat_from(r, i, col);

static Mirrorscope__FlowRecord *db__record_from(PGresult *r, int i)
{
    Mirrorscope__FlowRecord *m = xmalloc(sizeof *m);
    mirrorscope__flow_record__init(m);
    int n = 1, *col = &n;
    FLOWREC_FIELDS(DB__F, DB__E, DB__D, DB__H, DB__S, _)
    return m;
}

/* Sequential scans on or off for this session's next statements (said to
 * the server only when it changes). Off, JIT goes too: the planner then
 * adds a huge cost to any sequential scan left (flows_live has no time
 * index), which crosses jit_above_cost and compiles every probe (300 ms
 * for a 2 ms query). */
static int db__seqscan(db_t *d, int on)
{
    if (d->seqscan_off == !on) return 0;
    PGresult *r = PQexec(d->conn, on ? "RESET enable_seqscan; RESET jit"
                                     : "SET enable_seqscan = off; SET jit = off");
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    if (ok) d->seqscan_off = !on;
    return ok ? 0 : -1;
}

/* Summarise a day being written before a walk over it; a summary that
 * cannot be had at once (another session holds the day) is done without. */
static void db__summarize_quietly(db_t *d, int day)
{
    char e[256];
    if (db_summarize_day(d, day, e, sizeof e) < 0) log_debug("summarising before a walk: %s", e);
}

static void db__us_text(char *out, size_t len, int64_t us)
{
    out[0] = 0;
    if (us == INT64_MIN) return; /* an open end: not sent */
    int64_t secs = us / 1000000 - (us % 1000000 < 0);
    time_t t = (time_t)secs;
    struct tm tm;
    if (!gmtime_r(&t, &tm)) return;
    snprintf(out, len, "%04d-%02d-%02d %02d:%02d:%02d.%06d+00", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(us - secs * 1000000));
}

int db_monitor_filter(db_t *d, const char *name, char *filter, size_t filterlen, int *bad_request,
                      char *err, size_t errlen)
{
    const char *params[] = { name };
    PGresult *r = db__query(d, "SELECT filter FROM monitors WHERE name = $1::text", 1, params,
                            bad_request, err, errlen);
    if (!r) return -1;
    int found = PQntuples(r) == 1;
    if (found && filter) snprintf(filter, filterlen, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    if (!found) {
        *bad_request = 1;
        snprintf(err, errlen, "no monitor '%.200s' (see mscope monitors list)", name);
        return -1;
    }
    return 0;
}

/* Run the flows statement qs (querysql_flows()): one page, walked over
 * windows of first_ts for the time orders. */
static int db__run_flows(db_t *d, const querysql *qs, Mirrorscope__Response *resp,
                         int *bad_request, char *err, size_t errlen)
{
    if (qs->params[QUERYSQL_FLOWS_MONITOR] &&
        db_monitor_filter(d, qs->params[QUERYSQL_FLOWS_MONITOR], NULL, 0, bad_request, err,
                          errlen) < 0)
        return -1;
    const char *sql = qs->sql, *probe = qs->probe;
    uint32_t limit = qs->limit;
    /* The time orders walk the range in windows of first_ts, which the BRIN
     * index prunes to: a page then costs the rows near it, not a sort of
     * the whole range - an exporter paging through millions of flows barely
     * competes with the bus. (Times are in us.) The first window that holds
     * a row is found with cheap LIMIT 1 probes, widening from a millisecond,
     * then narrowed by halves to its nearest millisecond (at 150 000 records
     * a second, a second of flows is 60 MB to sort for 1000 rows); later
     * windows grow with the rows they lacked. With a host, the host indexes
     * find its few rows at once: one query, as for the other orders.
     *
     * Two things keep the walk cheap. The days being written get their
     * newest block ranges summarised first: BRIN cannot rule out a range
     * it has no summary of, and every probe would read them all. And the
     * walk runs without sequential scans. The planner costs a LIMIT 1 probe
     * as if matching rows were spread evenly through the table, but they
     * are in time order, so a scan "expected to stop early" reads the day
     * up to the window; and on a day not yet analysed it guesses the BRIN
     * poorly correlated and sorts a whole day for a millisecond of it.
     * (Seconds either way, on millions of rows.) */
    int windowed = qs->windowed, desc = qs->desc;
    int64_t now_us = qs->now_us, from_us = qs->from_us, to_us = qs->to_us;
    int64_t w = QUERYSQL_WINDOW_MIN_US, lo = qs->lo, hi = qs->hi; /* INT64_MIN: an open end */
    if (windowed) {
        int today = (int)(now_us / 86400000000LL);
        for (int day = today - 1; day <= today; day++)
            if ((int64_t)(day + 1) * 86400000000LL > from_us && (int64_t)day * 86400000000LL < to_us)
                db__summarize_quietly(d, day);
        if (db__seqscan(d, 0) < 0) {
            snprintf(err, errlen, "%s", PQerrorMessage(d->conn));
            return -1;
        }
    }
    resp->flows = xcalloc((size_t)limit + 1, sizeof *resp->flows);
    resp->n_flows = 0;
    int rc = -1;
    char last_key[32] = "", last_id[32] = "", last_node[256] = "";
    int found = !windowed;
    for (int round = 0;; round++) {
        int last = !windowed || round >= 64;
        if (windowed && desc && lo <= from_us) lo = from_us, last = 1;
        if (windowed && !desc && (hi >= to_us || hi > now_us)) hi = INT64_MIN, last = 1;
        char wl[48], wh[48], lim[16];
        const char *params[QUERYSQL_PARAMS];
        memcpy(params, qs->params, sizeof params);
        params[QUERYSQL_FLOWS_LIMIT] = lim;
#define DB_WINDOW(l, h)                                                                   \
    (db__us_text(wl, sizeof wl, (l)), db__us_text(wh, sizeof wh, (h)),                    \
     params[QUERYSQL_FLOWS_WLO] = (l) != INT64_MIN ? wl : NULL,                          \
     params[QUERYSQL_FLOWS_WHI] = (h) != INT64_MIN ? wh : NULL)
        snprintf(lim, sizeof lim, "%zu", (size_t)limit - resp->n_flows);
        if (!found) {
            /* Is there a row in this window at all? */
            DB_WINDOW(lo, hi);
            PGresult *pr = db__query(d, probe, qs->nparams, params, bad_request, err, errlen);
            if (!pr) goto out;
            int any = PQntuples(pr) > 0;
            PQclear(pr);
            if (!any) {
                if (last) break;
                if (w < INT64_MAX / 4) w *= 2;
                if (desc) hi = lo, lo = hi - w;
                else lo = hi, hi = lo + w;
                continue;
            }
            /* Narrow it to the millisecond nearest the start of the walk. */
            while (lo != INT64_MIN && hi != INT64_MIN && hi - lo > QUERYSQL_WINDOW_MIN_US) {
                int64_t mid = lo + (hi - lo) / 2;
                if (desc) DB_WINDOW(mid, hi);
                else DB_WINDOW(lo, mid);
                pr = db__query(d, probe, qs->nparams, params, bad_request, err, errlen);
                if (!pr) goto out;
                any = PQntuples(pr) > 0;
                PQclear(pr);
                if (desc) *(any ? &lo : &hi) = mid;
                else *(any ? &hi : &lo) = mid;
                last = 0;
            }
            if (lo != INT64_MIN && hi != INT64_MIN) w = hi - lo;
            found = 1;
        }
        DB_WINDOW(lo, hi);
#undef DB_WINDOW
        PGresult *r = db__query(d, sql, qs->nparams, params, bad_request, err, errlen);
        if (!r) goto out;
        int n = PQntuples(r);
        for (int i = 0; i < n; i++) {
            Mirrorscope__FlowRow *row = xmalloc(sizeof *row);
            mirrorscope__flow_row__init(row);
            row->node = db__s(r, i, 0);
            row->record = db__record_from(r, i);
            resp->flows[resp->n_flows++] = row;
        }
        if (n > 0) {
            snprintf(last_key, sizeof last_key, "%s", PQgetvalue(r, n - 1, SCHEMA_NCOLS));
            snprintf(last_id, sizeof last_id, "%s", PQgetvalue(r, n - 1, 1));
            snprintf(last_node, sizeof last_node, "%s", PQgetvalue(r, n - 1, 0));
        }
        PQclear(r);
        if (last || resp->n_flows == limit) break;
        /* The next window, beyond this one: as wide as this one's density
         * says the missing rows need, with a quarter to spare; twice as
         * wide when it was empty. */
        uint64_t need = limit - resp->n_flows;
        double grow = n ? (double)need / n * 1.25 : 2.0;
        if (grow > 64) grow = 64;
        if (grow < 1) grow = 1;
        w = (double)w * grow < (double)(INT64_MAX / 4) ? (int64_t)((double)w * grow) + 1 : INT64_MAX / 4;
        if (desc) hi = lo, lo = hi - w;
        else lo = hi, hi = lo + w;
    }
    if (resp->n_flows == limit) {
        char c[600];
        querysql_cursor_make(c, sizeof c, last_key, last_id, last_node);
        resp->next_cursor = xstrdup(c);
    }
    rc = 0;
out:
    if (db__seqscan(d, 1) < 0) rc = -1;
    return rc;
}

static int db__run_talkers(db_t *d, const querysql *qs, Mirrorscope__Response *resp,
                           int *bad_request, char *err, size_t errlen)
{
    PGresult *r = db__query(d, qs->sql, qs->nparams, qs->params, bad_request, err, errlen);
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

static int db__run_series(db_t *d, const querysql *qs, Mirrorscope__Response *resp,
                          int *bad_request, char *err, size_t errlen)
{
    PGresult *r = db__query(d, qs->sql, qs->nparams, qs->params, bad_request, err, errlen);
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

int db_run(db_t *d, const querysql *qs, Mirrorscope__Response *resp, int *bad_request,
           char *err, size_t errlen)
{
    switch (qs->kind) {
    case QUERYSQL_FLOWS: return db__run_flows(d, qs, resp, bad_request, err, errlen);
    case QUERYSQL_TALKERS: return db__run_talkers(d, qs, resp, bad_request, err, errlen);
    case QUERYSQL_SERIES: return db__run_series(d, qs, resp, bad_request, err, errlen);
    default: snprintf(err, errlen, "not a statement db_run() runs"); return -1;
    }
}

int db_query_flows(db_t *d, const Mirrorscope__QueryFlows *q, Mirrorscope__Response *resp,
                   int *bad_request, char *err, size_t errlen)
{
    querysql qs;
    if (querysql_flows(q, timeparse_now_ns(), &qs, err, errlen) < 0) {
        *bad_request = 1;
        return -1;
    }
    return db__run_flows(d, &qs, resp, bad_request, err, errlen);
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
        for (size_t k = 0; k < n->n_drops; k++) {
            free(n->drops[k]->key);
            free(n->drops[k]);
        }
        free(n->drops);
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
    /* appquery.h: each one allocation */
    for (size_t i = 0; i < resp->n_app_rows; i++) free(resp->app_rows[i]);
    for (size_t i = 0; i < resp->n_app_aggregates; i++) free(resp->app_aggregates[i]);
    free(resp->app_rows);
    free(resp->app_aggregates);
    resp->app_rows = NULL;
    resp->app_aggregates = NULL;
    resp->n_app_rows = resp->n_app_aggregates = 0;
    free(resp->nodes);
    free(resp->flows);
    free(resp->talkers);
    free(resp->minutes);
    resp->n_nodes = resp->n_flows = resp->n_talkers = resp->n_minutes = 0;
}
