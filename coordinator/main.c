/* main.c - mscope-coordinator: the recorders' bus into PostgreSQL.
 *
 *   mscope-coordinator --data-dir DIR [--db CONNINFO] [--bus tcp://0.0.0.0:5556]
 *
 * Wires the modules together on one libuv loop (ctl.h): the bus (intake.c)
 * feeds the node registry (registry.c) and the writers (writer.c, db.c);
 * the RPC and REST APIs (rpcapi.c, restapi.c) answer clients through the
 * query layer (query.c) and the distributed search (scatter.c); the HTTP
 * listener also serves the web dashboard's embedded files (webui.c). Database
 * queries, node registry writes, the ping and the housekeeping run
 * on the loop's thread pool (dbpool.c), so nothing here waits for
 * PostgreSQL. While the database is unreachable, batches go to the spool
 * on disk (spool.c) and are written back when it returns. What is left
 * here: the options, the keys (CURVE on the bus, the RPC and searches;
 * busauth.h), the token files (read again on SIGHUP), --user and the
 * seccomp filter (sandbox.h), those periodic jobs, what health and
 * /metrics say.
 */
#include "bus.h"
#include "config.h"
#include "ctl.h"
#include "db.h"
#include "dbpool.h"
#include "figures.h"
#include "intake.h"
#include "log.h"
#include "mirrorscope.pb-c.h"
#include "monitor.h"
#include "pgembed.h"
#include "registry.h"
#include "restapi.h"
#include "rpcapi.h"
#include "sandbox.h"
#include "scatter.h"
#include "spool.h"
#include "status.h"
#include "timeparse.h"
#include "token.h"
#include "webui.h"
#include "xmalloc.h"

#include <uv.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define COORD_VERSION "0.1.0"
#define METRIC_NODES_MAX 4096

typedef struct coord_settings {
    char *data_dir, *db, *bus, *rpc, *http, *token_file, *search_token_file, *api_read_token_file,
        *api_admin_token_file, *log_level, *stats_file, *key_file, *allow_dir, *user, *http_cert,
        *http_key, *metrics_token_file;
    int64_t pg_port, flush_interval, batch_records, max_pending, stale_after, dead_after, max_spool,
        retention_days, housekeeping_interval, search_window, search_node_timeout, search_idle_timeout, max_searches;
    int insecure, seccomp;
} coord_settings;

#define O(f) offsetof(coord_settings, f)
static const config_opt coord_opts[] = {
    { "data-dir", 'd', CFG_STR, O(data_dir), NULL, 0, 0, "DIR", "state, and the embedded PostgreSQL (required)" },
    { "db", 0, CFG_STR, O(db), NULL, 0, 0, "CONNINFO", "libpq connection string or URI of an existing server (no password here: use PGPASSFILE); default: PG* variables if PGHOST is set, else the embedded server" },
    { "bus", 0, CFG_STR, O(bus), "tcp://0.0.0.0:5556", 0, 0, "ENDPOINT", "where recorders publish (SUB, bound)" },
    { "rpc", 0, CFG_STR, O(rpc), "tcp://127.0.0.1:5555", 0, 0, "ENDPOINT", "where clients (mscope) send requests (ROUTER, bound)" },
    { "http", 0, CFG_STR, O(http), "127.0.0.1:8080", 0, 0, "ADDR:PORT", "HTTP: the dashboard (/), the REST API (/api/v1/), /healthz, /readyz, /metrics (Prometheus); off disables" },
    CTL_TLS_OPTS(coord_settings, http_cert, http_key),
    CTL_METRICS_OPTS(coord_settings, metrics_token_file),
    { "api-read-token-file", 0, CFG_STR, O(api_read_token_file), NULL, 0, 0, "FILE", "REST API: the token that may query (default: DIR/api-read.token, created 0600 if missing)" },
    { "api-admin-token-file", 0, CFG_STR, O(api_admin_token_file), NULL, 0, 0, "FILE", "REST API: the token that may do everything, searches included (default: DIR/api-admin.token, created 0600 if missing)" },
    { "token-file", 0, CFG_STR, O(token_file), NULL, 0, 0, "FILE", "the RPC token clients must present (default: DIR/rpc.token, created 0600 if missing)" },
    { "search-token-file", 0, CFG_STR, O(search_token_file), NULL, 0, 0, "FILE", "the cluster's search token, presented to recorders (default: DIR/search.token, created 0600 if missing: copy it to every recorder)" },
    { "key-file", 0, CFG_STR, O(key_file), NULL, 0, 0, "FILE", "this coordinator's CURVE key pair (default: DIR/curve.key, created 0600 with DIR/curve.pub if missing: give curve.pub to every recorder and CLI user)" },
    { "allow-dir", 0, CFG_STR, O(allow_dir), NULL, 0, 0, "DIR", "public keys (one NAME.pub file each) of the recorders and CLI users, read at every connection; a file's role line says where its key is let in: role = recorder the bus, role = client the RPC, none both with a warning (default: DIR/allowed-keys, created with client.pub, role client, the key of DIR/client.key, for the local CLI)" },
    { "insecure", 0, CFG_BOOL, O(insecure), NULL, 0, 0, NULL, "plain ZeroMQ on the bus, the RPC and searches: unencrypted, and anyone who reaches the ports may publish" },
    { "user", 0, CFG_STR, O(user), NULL, 0, 0, "NAME", "as root: become this user at start, before anything is created, with no capabilities (the embedded PostgreSQL then runs as that user too)" },
    { "seccomp", 0, CFG_BOOL, O(seccomp), "yes", 0, 0, NULL, "allow only the system calls the coordinator makes, once it runs (--seccomp=no to turn off)" },
    { "search-window", 0, CFG_INT, O(search_window), "4", 1, 64, "N", "search: 1 MiB chunks in flight per recorder" },
    { "search-node-timeout", 0, CFG_DURATION, O(search_node_timeout), "10s", 100000000LL, 0, "DURATION", "search: give up a recorder silent this long (the answer is then partial)" },
    { "search-idle-timeout", 0, CFG_DURATION, O(search_idle_timeout), "60s", 1000000000LL, 0, "DURATION", "search: stop when the client takes nothing for this long" },
    { "max-searches", 0, CFG_INT, O(max_searches), "8", 1, 256, "N", "searches at once; more are refused as busy" },
    { "stale-after", 0, CFG_DURATION, O(stale_after), "10s", 1000000000LL, 0, "DURATION", "a node without heartbeats this long is stale" },
    { "dead-after", 0, CFG_DURATION, O(dead_after), "60s", 1000000000LL, 0, "DURATION", "... and dead after this long" },
    { "pg-port", 0, CFG_INT, O(pg_port), "5433", 1, 65535, "PORT", "embedded PostgreSQL's port (its Unix socket name; it does not listen on the network)" },
    { "flush-interval", 0, CFG_DURATION, O(flush_interval), "250ms", 1000000LL, 0, "DURATION", "write records at least this often" },
    { "batch-records", 0, CFG_INT, O(batch_records), "20000", 1, 10000000, "N", "write when this many records wait" },
    { "max-pending", 0, CFG_INT, O(max_pending), "200000", 1000, 100000000, "N", "records gathered while the writer is busy; beyond, the bus waits (recorders keep records in their own queues)" },
    { "retention-days", 0, CFG_INT, O(retention_days), "0", 0, 100000, "DAYS", "drop flows and application records (whole day partitions) and per-minute rows older than this; 0 keeps everything" },
    { "housekeeping-interval", 0, CFG_DURATION, O(housekeeping_interval), "1h", 1000000000LL, 0, "DURATION", "run retention and index sealed days this often (and once at start)" },
    { "max-spool", 0, CFG_SIZE, O(max_spool), "1G", 0, 0, "SIZE", "records kept on disk (DIR/spool) while PostgreSQL is away; beyond, dropped and counted" },
    { "stats-file", 0, CFG_STR, O(stats_file), NULL, 0, 0, "FILE", "counters as JSON (default: DIR/stats.json)" },
    { "log-level", 0, CFG_STR, O(log_level), "info", 0, 0, "LEVEL", "error, warn, info or debug" },
    { NULL, 0, 0, 0, NULL, 0, 0, NULL, NULL },
};
#undef O

typedef struct coord {
    coord_settings cfg;
    ctl_t *ctl;              /* the loop, signals, HTTP */
    uv_timer_t nodes_timer, house_timer;
    intake_t *intake;        /* the bus into the writers */
    bus_rpc_t *rpc_sock;
    rpcapi_t *api;
    scatter_t *scatter;
    registry_t *reg;
    dbpool_t *pool;
    char conninfo[1024];
    spool_t *spool;
    int64_t start_ns;
    int stopping, house_busy, nodes_busy, ping_busy;
    int db_alive;         /* the last ping's answer */
    uint64_t ticks, house_runs, house_errors;
    char token[TOKEN_MAX], search_token[TOKEN_MAX], api_read[TOKEN_MAX], api_admin[TOKEN_MAX];
    bus_sec sec;             /* CURVE keys, unless --insecure */
    char allow_dir[4096];
    restapi_t *rest;
    monitor_set_t *monitors;  /* monitor.h: definitions and their series */
} coord;

/* ---- the node registry into PostgreSQL, as a database job ---------------- */

typedef struct nodes_job {
    coord *c;
    registry_row *rows;
    size_t n;
} nodes_job;

static int nodes_work(db_t *db, void *arg, char *err, size_t errlen)
{
    nodes_job *j = arg;
    for (size_t i = 0; i < j->n; i++)
        if (db_upsert_node(db, j->rows[i].hb, j->rows[i].gaps,
                           j->rows[i].clock_known ? &j->rows[i].clock_offset_ns : NULL, err, errlen) < 0)
            return -1;
    return 0;
}

static void nodes_done(void *arg, int rc, const char *err)
{
    nodes_job *j = arg;
    if (rc < 0) {
        log_warn("node registry update failed: %s", err);
        registry_mark_dirty(j->c->reg, j->rows, j->n);
    }
    j->c->nodes_busy = 0;
    registry_rows_free(j->rows, j->n);
    free(j);
}

static void update_nodes(coord *c)
{
    if (c->nodes_busy) return;
    size_t n;
    registry_row *rows = registry_take_dirty(c->reg, &n);
    if (!rows) return;
    nodes_job *j = xcalloc(1, sizeof *j);
    j->c = c;
    j->rows = rows;
    j->n = n;
    c->nodes_busy = 1;
    dbpool_submit(c->pool, nodes_work, nodes_done, j);
}

static void on_nodes_timer(uv_timer_t *t) { update_nodes(t->data); }

/* ---- housekeeping: retention and indexing (--housekeeping-interval), on the pool ---- */

static int house_work(db_t *db, void *arg, char *err, size_t errlen)
{
    coord *c = arg;
    int rc = 0;
    if (db_retention(db, (int)c->cfg.retention_days, err, errlen) < 0) {
        log_warn("retention failed: %s", err);
        rc = -1;
    }
    int64_t t0 = timeparse_mono_ns();
    int n = db_index_sealed(db, err, errlen);
    if (n < 0) {
        log_warn("indexing sealed days failed: %s", err);
        rc = -1;
    } else if (n > 0) {
        log_info("indexed %d sealed day partitions in %.1f s", n,
                 (double)(timeparse_mono_ns() - t0) / 1e9);
    }
    return rc;
}

static void house_done(void *arg, int rc, const char *err)
{
    coord *c = arg;
    c->house_busy = 0;
    c->house_runs++;
    if (rc < 0) c->house_errors++;
    (void)err; /* logged by house_work, or by the pool when it could not connect */
}

static void on_house_timer(uv_timer_t *t)
{
    coord *c = t->data;
    if (c->house_busy || c->stopping) return;
    c->house_busy = 1;
    dbpool_submit(c->pool, house_work, house_done, c);
}

/* Where a token file is: the given path or DIR/NAME. */
static const char *token_path(const coord *c, const char *given, const char *name, char path[4096])
{
    if (given) snprintf(path, 4096, "%s", given);
    else snprintf(path, 4096, "%s/%s", c->cfg.data_dir, name);
    return path;
}

/* A token file, created when missing. */
static int load_token(coord *c, const char *given, const char *name, char *out, char *err,
                      size_t errlen)
{
    char path[4096];
    int rc = token_load(token_path(c, given, name, path), 1, out, err, errlen);
    if (rc == 1) log_info("created token file %s", path);
    return rc < 0 ? -1 : 0;
}

/* CURVE keys, unless --insecure: our pair (DIR/curve.key; its public half
 * DIR/curve.pub goes to recorders and CLI users) and the allow-list
 * directory, whose keys need role recorder on the bus and role client on
 * the RPC (intake and RPC get their own copy of c->sec with need_role set).
 * At the first start the default directory is made holding the key of a
 * local CLI pair (DIR/client.key, role client), as DIR/rpc.token is made for
 * it: whoever can read DIR can use the CLI here. Returns 0 or -1. */
static int load_keys(coord *c, char *err, size_t errlen)
{
    char path[4096];
    if (c->cfg.insecure) {
        log_warn("--insecure: the bus, the RPC and searches are plain ZeroMQ, unencrypted; "
                 "anyone who reaches the bus port can write flow records");
        return 0;
    }
    if (!busauth_available()) {
        snprintf(err, errlen, "this libzmq has no CURVE: run with --insecure, or install a libzmq "
                 "built with libsodium");
        return -1;
    }
    if (c->cfg.key_file) snprintf(path, sizeof path, "%s", c->cfg.key_file);
    else snprintf(path, sizeof path, "%s/curve.key", c->cfg.data_dir);
    int rc = c->cfg.key_file ? busauth_load(path, 1, &c->sec.self, err, errlen)
                             : busauth_load_or_create(path, 0, &c->sec.self, err, errlen);
    if (rc < 0) return -1;
    if (rc == 1) log_info("created the coordinator's key pair %s (its public half, for recorders "
                          "and CLI users, is next to it)", path);
    if (c->cfg.allow_dir) {
        snprintf(c->allow_dir, sizeof c->allow_dir, "%s", c->cfg.allow_dir);
        struct stat st;
        if (stat(c->allow_dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
            snprintf(err, errlen, "--allow-dir %.900s: not a directory", c->allow_dir);
            return -1;
        }
    } else {
        snprintf(c->allow_dir, sizeof c->allow_dir, "%s/allowed-keys", c->cfg.data_dir);
        if (mkdir(c->allow_dir, 0700) == 0) {
            busauth_pair cli;
            char keypath[4096], pubpath[4200];
            snprintf(keypath, sizeof keypath, "%s/client.key", c->cfg.data_dir);
            snprintf(pubpath, sizeof pubpath, "%s/client.pub", c->allow_dir);
            unlink(keypath); /* the pair of an allow-list that is gone */
            if (busauth_generate(&cli, err, errlen) < 0) return -1;
            cli.roles = BUSAUTH_ROLE_CLIENT; /* the RPC only: it may not publish on the bus */
            if (busauth_write(&cli, keypath, pubpath, err, errlen) < 0) return -1;
            log_info("created %s, the allowed keys, with the key of %s for the local CLI",
                     c->allow_dir, keypath);
        } else if (errno != EEXIST) {
            snprintf(err, errlen, "mkdir(%.900s) failed: %s", c->allow_dir, strerror(errno));
            return -1;
        }
    }
    c->sec.allow_dir = c->allow_dir;
    return 0;
}

static void gather(coord *c, coord_figures *f)
{
    memset(f, 0, sizeof *f);
    intake_stats is;
    intake_get_stats(c->intake, &is);
    const writer_stats ws = is.writers;
    registry_stats rs;
    registry_get_stats(c->reg, &rs);
    rpcapi_stats as;
    memset(&as, 0, sizeof as);
    if (c->api) rpcapi_get_stats(c->api, &as);
    scatter_stats ss;
    memset(&ss, 0, sizeof ss);
    if (c->scatter) scatter_get_stats(c->scatter, &ss);
    restapi_stats rest;
    memset(&rest, 0, sizeof rest);
    if (c->rest) restapi_get_stats(c->rest, &rest);
    *f = (coord_figures){
        .batches = is.batches, .heartbeats = rs.heartbeats, .records_received = is.records_in,
        .records_written = ws.records_written, .records_pending = is.pending,
        .records_dropped = ws.records_dropped, .gaps = rs.gaps, .restarts = rs.restarts,
        .bad_messages = is.bad_messages, .nodes = rs.nodes,
        .bus_refused = is.refused_peers, .bad_records = is.bad_records,
        .app_batches = is.app_batches, .app_records_received = is.app_records_in,
        .bad_app_records = is.bad_app_records, .app_records_written = ws.app_written,
        .app_records_dropped = ws.app_dropped,
        .rpc_refused = c->rpc_sock ? bus_socket_refused(c->rpc_sock) : 0,
        .db_errors = ws.db_errors, .db_connected = (uint64_t)ws.connected,
        .records_spooled = spool_records(c->spool), .spool_bytes = spool_bytes(c->spool),
        .housekeeping_runs = c->house_runs, .housekeeping_errors = c->house_errors,
        .queries_active = as.queries_active + rest.queries_active,
        .rpc_requests = as.requests, .rpc_errors = as.errors,
        .rpc_unauthenticated = as.unauthenticated,
        .rest_requests = rest.requests, .rest_errors = rest.errors,
        .rest_unauthenticated = rest.unauthenticated, .rest_forbidden = rest.forbidden,
        .rest_streams = rest.streams_active,
        .searches = ss.searches, .completed = ss.completed, .partial = ss.partial,
        .failed = ss.failed, .cancelled = ss.cancelled, .abandoned = ss.abandoned,
        .packets = ss.packets, .bytes = ss.bytes, .duplicates = ss.duplicates,
        .chunks_out = ss.chunks_out, .active = ss.active, .bytes_held = ss.bytes_held,
        .bytes_held_max = ss.bytes_held_max,
    };
}

static void write_stats(coord *c)
{
    char path[4096];
    if (c->cfg.stats_file) snprintf(path, sizeof path, "%s", c->cfg.stats_file);
    else snprintf(path, sizeof path, "%s/stats.json", c->cfg.data_dir);
    coord_figures f;
    gather(c, &f);
    json_t *o = status_json(&f, COORD_VERSION);
    if (figures_write_file(o, path) < 0) log_debug("cannot write %s: %s", path, strerror(errno));
    json_decref(o);
}

/* ---- HTTP: health and metrics ------------------------------------------- */

/* Why the coordinator cannot do its job now (none: healthy). */
static void health(void *data, int ready, json_t *why)
{
    coord *c = data;
    (void)ready;
    if (!c->db_alive)
        json_array_append_new(why, json_string("the database is not reachable (records go to the spool)"));
    intake_stats is;
    intake_get_stats(c->intake, &is);
    if (is.paused)
        json_array_append_new(why, json_string("the writers are behind: the bus is held back"));
}

static void metrics(void *data, metrics_t *m)
{
    coord *c = data;
    coord_figures f;
    gather(c, &f);
    status_metrics(&f, m);
    registry_info *ni = xcalloc(METRIC_NODES_MAX, sizeof *ni);
    size_t n = registry_list(c->reg, ni, METRIC_NODES_MAX);
    if (n > METRIC_NODES_MAX) n = METRIC_NODES_MAX;
    metrics_family(m, "mscope_coordinator_bus_gaps_total", "counter",
                   "Bus messages lost from this recorder (sequence gaps).");
    uint64_t states[3] = { 0, 0, 0 };
    for (size_t i = 0; i < n; i++) {
        const char *l[] = { "node", ni[i].name, NULL };
        metrics_sample(m, "mscope_coordinator_bus_gaps_total", l, (double)ni[i].gaps);
        states[ni[i].silent_ns >= c->cfg.dead_after ? 2 : ni[i].silent_ns >= c->cfg.stale_after ? 1 : 0]++;
    }
    metrics_family(m, "mscope_coordinator_node_clock_offset_seconds", "gauge",
                   "This recorder's clock minus ours, from its heartbeats (5 s either way is warned of).");
    for (size_t i = 0; i < n; i++) {
        const char *l[] = { "node", ni[i].name, NULL };
        if (ni[i].clock_known)
            metrics_sample(m, "mscope_coordinator_node_clock_offset_seconds", l, (double)ni[i].clock_offset_ns / 1e9);
    }
    free(ni);
    static const char *const state_names[] = { "alive", "stale", "dead" };
    metrics_family(m, "mscope_coordinator_nodes", "gauge",
                   "Recorders by state (stale: no heartbeat for --stale-after; dead: --dead-after).");
    for (int i = 0; i < 3; i++) {
        const char *l[] = { "state", state_names[i], NULL };
        metrics_sample(m, "mscope_coordinator_nodes", l, (double)states[i]);
    }
    metrics_histogram(m, "mscope_coordinator_db_write_seconds",
                      "Time to write one batch of flow records to PostgreSQL.",
                      intake_write_latency(c->intake));
    if (c->scatter)
        metrics_histogram(m, "mscope_coordinator_search_seconds",
                          "Time from a search's start to its trailer.", scatter_latency(c->scatter));
}

/* The health checks' view of the database: a round trip every few seconds
 * (the writers only notice an outage when they next write). The same job
 * summarises the BRIN of the day being written, so the APIs' time-ordered
 * pages of the newest rows stay cheap (db.h). */
static int ping_work(db_t *db, void *arg, char *err, size_t errlen)
{
    (void)arg;
    if (db_ping(db, err, errlen) < 0) return -1;
    char e[512];
    static int warned; /* one ping job at a time (ping_busy) */
    /* The days being written: today, and yesterday for the flows that
     * started before midnight. */
    int today = (int)(time(NULL) / 86400);
    for (int day = today - 1; day <= today; day++)
        if (db_summarize_day(db, day, e, sizeof e) < 0 && !warned++)
            log_warn("summarising the time index of the day being written failed (said once): %s", e);
    return 0;
}

static void ping_done(void *arg, int rc, const char *err)
{
    coord *c = arg;
    c->ping_busy = 0;
    int ok = rc == 0;
    if (ok && !c->db_alive) log_info("the database is reachable again");
    if (!ok && c->db_alive) log_warn("the database is not reachable: %s", err);
    c->db_alive = ok;
}

/* Every second: stats.json, and a database ping every other time. */
static void on_tick(void *data)
{
    coord *c = data;
    write_stats(c);
    if (!c->ping_busy && !c->stopping && ++c->ticks % 2 == 0) {
        c->ping_busy = 1;
        dbpool_submit(c->pool, ping_work, ping_done, c);
    }
}

/* Stopping waits for every database job to answer. */
static int is_busy(void *data) { return dbpool_busy(((coord *)data)->pool) > 0; }

/* SIGHUP: the token files read again (the other options take a restart),
 * each in use at once - an RPC or REST request, a search sent, a scrape
 * after this one needs the new token. */
static void reload_tokens(coord *c)
{
    char p[4][4096];
    ctl_token t[] = {
        { token_path(c, c->cfg.token_file, "rpc.token", p[0]), c->token },
        { token_path(c, c->cfg.search_token_file, "search.token", p[1]), c->search_token },
        { token_path(c, c->cfg.api_read_token_file, "api-read.token", p[2]), c->api_read },
        { token_path(c, c->cfg.api_admin_token_file, "api-admin.token", p[3]), c->api_admin },
    };
    if (!ctl_reload_tokens(c->ctl, t, (int)(sizeof t / sizeof t[0]))) return;
    if (c->api) rpcapi_set_token(c->api, c->token);
    if (c->scatter) scatter_set_token(c->scatter, c->search_token);
    if (c->rest) restapi_set_tokens(c->rest, c->api_read, c->api_admin);
}

/* SIGINT/SIGTERM: stop reading and let the loop end (ctl.h); main() then
 * hands what is pending to the writers. SIGUSR1: counters to the log.
 * SIGHUP: the token files read again, and the counters. */
static void on_signal(void *data, int sig)
{
    coord *c = data;
    if (sig == SIGUSR1 || sig == SIGHUP) {
        coord_figures f;
        gather(c, &f);
        if (sig == SIGHUP && !c->stopping) reload_tokens(c);
        log_info("records: %" PRIu64 " received, %" PRIu64 " written, %" PRIu64 " pending, %" PRIu64
                 " spooled, %" PRIu64 " dropped; bus gaps %" PRIu64 "; searches %" PRIu64,
                 f.records_received, f.records_written, f.records_pending, f.records_spooled,
                 f.records_dropped, f.gaps, f.searches);
        return;
    }
    if (c->stopping) return;
    c->stopping = 1;
    log_info("%s: writing what is pending and stopping", strsignal(sig));
    intake_stop_reading(c->intake);
    rpcapi_stop(c->api);
    scatter_free(c->scatter);
    c->scatter = NULL;
    restapi_close(c->rest);
    uv_close((uv_handle_t *)&c->nodes_timer, NULL);
    uv_close((uv_handle_t *)&c->house_timer, NULL);
    ctl_stop(c->ctl);
}

static void timer(coord *c, uv_timer_t *t, uv_timer_cb cb, uint64_t first_ms, uint64_t every_ms)
{
    uv_timer_init(ctl_loop(c->ctl), t);
    t->data = c;
    uv_timer_start(t, cb, first_ms, every_ms);
}

/* Static: what h2o leaves of connections still open at exit stays reachable
 * (the loop lives here), rather than being reported as a leak. */
static coord c;

int main(int argc, char **argv)
{
    log_init("mscope-coordinator");
    char err[1024];
    const char *pos[1];
    int npos = 0, help = 0, rc = 2;
    pgembed_t *pg = NULL;
    if (config_defaults(coord_opts, &c.cfg) < 0) return 2;
    if (config_parse_args(coord_opts, &c.cfg, argc, argv, 1, pos, 0, &npos, &help, err, sizeof err) < 0) {
        fprintf(stderr, "mscope-coordinator: %s\n", err);
        goto out;
    }
    if (help) {
        printf("usage: mscope-coordinator --data-dir DIR [options]\n\n"
               "Receives flow records and heartbeats from recorders and keeps them in\n"
               "PostgreSQL (its own embedded server unless --db or PGHOST is given).\n"
               "SIGUSR1 logs the counters; SIGHUP reads the token files again.\n\noptions:\n");
        config_print_help(coord_opts, stdout);
        rc = 0;
        goto out;
    }
    if (log_set_level(c.cfg.log_level) < 0 || !c.cfg.data_dir) {
        fprintf(stderr, "mscope-coordinator: --data-dir is required and --log-level must be "
                        "error/warn/info/debug (see --help)\n");
        goto out;
    }
    if (c.cfg.db && strstr(c.cfg.db, "password")) {
        fprintf(stderr, "mscope-coordinator: no passwords on the command line: put it in "
                        "~/.pgpass or PGPASSFILE\n");
        goto out;
    }
    rc = 1;
    char uerr[512];
    if (sandbox_drop_user(c.cfg.user, 0, uerr, sizeof uerr) < 0) {
        log_error("%s", uerr);
        goto out;
    }
    if (ctl_metrics_token_check(c.cfg.metrics_token_file, uerr, sizeof uerr) < 0) {
        log_error("metrics-token-file: %s", uerr); /* before the database starts */
        goto out;
    }
    if (mkdir(c.cfg.data_dir, 0755) < 0 && errno != EEXIST) {
        log_error("cannot create %s: %s", c.cfg.data_dir, strerror(errno));
        goto out;
    }
    signal(SIGPIPE, SIG_IGN);
    /* Signals go through the loop from here on (a stop asked for during
     * start-up happens once the loop runs). */
    ctl_hooks hooks = { .data = &c, .tick = on_tick, .on_signal = on_signal, .busy = is_busy };
    c.ctl = ctl_new(&hooks, 1000);
    uv_loop_t *loop = ctl_loop(c.ctl);
    if (c.cfg.db) {
        snprintf(c.conninfo, sizeof c.conninfo, "%s", c.cfg.db);
    } else if (getenv("PGHOST")) {
        c.conninfo[0] = 0; /* libpq reads the PG* environment */
    } else {
        pg = pgembed_start(c.cfg.data_dir, (int)c.cfg.pg_port, c.conninfo, sizeof c.conninfo, err,
                           sizeof err);
        if (!pg) {
            log_error("%s", err);
            goto out;
        }
    }
    char spooldir[4200];
    snprintf(spooldir, sizeof spooldir, "%s/spool", c.cfg.data_dir);
    c.spool = spool_open(spooldir, c.cfg.max_spool, err, sizeof err);
    if (!c.spool) {
        log_error("%s", err);
        goto out;
    }
    /* The first connection applies the migrations; a database that is not
     * there at start is a configuration error, not an outage. */
    db_t *db = db_open(c.conninfo, err, sizeof err);
    if (!db) {
        log_error("%s", err);
        goto out;
    }
    liveset_t *live = liveset_new();
    long nlive = db_liveset_load(db, live, err, sizeof err);
    db_close(db);
    if (nlive < 0) {
        log_error("reading flows_live: %s", err);
        liveset_free(live);
        goto out;
    }
    c.db_alive = 1; /* it answered just now */
    c.start_ns = timeparse_now_ns();
    c.reg = registry_new();
    c.pool = dbpool_new(loop, c.conninfo);
    if (load_keys(&c, err, sizeof err) < 0) {
        log_error("%s", err);
        goto out;
    }
    const bus_sec *sec = c.cfg.insecure ? NULL : &c.sec;
    bus_sec bus_keys = c.sec, rpc_keys = c.sec; /* the same keys, each socket's role */
    bus_keys.need_role = BUSAUTH_ROLE_RECORDER;
    rpc_keys.need_role = BUSAUTH_ROLE_CLIENT;
    intake_opts io = {
        .endpoint = c.cfg.bus,
        .sec = sec ? &bus_keys : NULL,
        .conninfo = c.conninfo,
        .start_ns = c.start_ns,
        .flush_interval_ns = c.cfg.flush_interval,
        .batch_records = (uint64_t)c.cfg.batch_records,
        .max_pending = (uint64_t)c.cfg.max_pending,
        .on_record = monitor_record,
        .on_record_data = c.monitors = monitor_new(loop, c.pool),
    };
    c.intake = intake_new(loop, &io, &live, c.spool, c.reg, err, sizeof err);
    if (!c.intake) {
        log_error("%s", err);
        goto out;
    }
    if (load_token(&c, c.cfg.token_file, "rpc.token", c.token, err, sizeof err) < 0 ||
        load_token(&c, c.cfg.search_token_file, "search.token", c.search_token, err, sizeof err) < 0 ||
        load_token(&c, c.cfg.api_read_token_file, "api-read.token", c.api_read, err, sizeof err) < 0 ||
        load_token(&c, c.cfg.api_admin_token_file, "api-admin.token", c.api_admin, err, sizeof err) < 0) {
        log_error("%s", err);
        goto out;
    }
    c.rpc_sock = bus_rpc_new(c.cfg.rpc, RPCAPI_REQUEST_MAX, sec ? &rpc_keys : NULL, "rpc", err,
                             sizeof err);
    if (!c.rpc_sock) {
        log_error("%s", err);
        goto out;
    }
    scatter_opts so = {
        .token = c.search_token,
        .self = sec ? &c.sec.self : NULL,
        .window = (uint32_t)c.cfg.search_window,
        .node_timeout_ns = c.cfg.search_node_timeout,
        .idle_timeout_ns = c.cfg.search_idle_timeout,
        .max_searches = (int)c.cfg.max_searches,
    };
    c.scatter = scatter_new(loop, c.rpc_sock, &so);
    rpcapi_opts ao = {
        .token = c.token,
        .stale_ns = c.cfg.stale_after,
        .dead_ns = c.cfg.dead_after,
        .max_queries = 64,
        .monitors = c.monitors,
    };
    c.api = rpcapi_new(loop, c.rpc_sock, &ao, c.reg, c.scatter, c.pool, err, sizeof err);
    if (!c.api) {
        log_error("%s", err);
        goto out;
    }
    log_info("answering requests on %s", c.cfg.rpc);
    httpd_tls tls = { c.cfg.http_cert, c.cfg.http_key };
    if (ctl_listen(c.ctl, c.cfg.http, &tls, err, sizeof err) < 0) {
        log_error("%s", err);
        goto out;
    }
    if (ctl_http(c.ctl)) {
        ctl_status cs = { .version = COORD_VERSION, .health = health, .metrics = metrics, .data = &c,
                          .metrics_token_file = c.cfg.metrics_token_file };
        if (ctl_serve_status(c.ctl, &cs, err, sizeof err) < 0) {
            log_error("%s", err);
            goto out;
        }
        restapi_opts ro = {
            .read_token = c.api_read,
            .admin_token = c.api_admin,
            .stale_ns = c.cfg.stale_after,
            .dead_ns = c.cfg.dead_after,
            .max_queries = 64,
            .monitors = c.monitors,
        };
        c.rest = restapi_new(loop, ctl_http(c.ctl), &ro, c.reg, c.scatter, c.pool);
        webui_serve(ctl_http(c.ctl));
        log_info("HTTP (dashboard, REST API, health, metrics) on %s", c.cfg.http);
    }
    timer(&c, &c.nodes_timer, on_nodes_timer, 250, 250);
    timer(&c, &c.house_timer, on_house_timer, 0, (uint64_t)(c.cfg.housekeeping_interval / 1000000));

    /* Every thread runs now (the loop's thread pool starts later, from a
     * filtered thread): from here on only the calls they make. The embedded
     * server's processes descend from the pg_ctl run before this, so they
     * are free of it; we stop the server with SIGINT to its postmaster, the
     * one signal we may send. */
    if (c.cfg.seccomp && sandbox_seccomp("mscope-coordinator", pg ? SANDBOX_SIGINT : 0, err, sizeof err) < 0) {
        log_error("%s", err);
        goto out;
    }
    ctl_run(c.ctl);

    /* Stopped, every query answered. What cannot be written now goes to
     * the spool for the next start. */
    intake_finish(c.intake);
    monitor_finish(c.monitors); /* the last second of monitor series */
    update_nodes(&c);
    while (c.nodes_busy) uv_run(loop, UV_RUN_ONCE); /* the last node registry write */
    write_stats(&c);
    rc = 0;
    if (spool_records(c.spool))
        log_warn("%" PRIu64 " flow records wait in the spool for the next start", spool_records(c.spool));
out:
    /* On an early failure the handles opened so far are closed here. */
    if (c.ctl) {
        intake_close(c.intake);
        rpcapi_stop(c.api);
        scatter_free(c.scatter);
        restapi_close(c.rest);
        monitor_close(c.monitors);
        uv_handle_t *own[] = { (uv_handle_t *)&c.nodes_timer, (uv_handle_t *)&c.house_timer };
        for (size_t i = 0; i < sizeof own / sizeof own[0]; i++)
            if (own[i]->loop && !uv_is_closing(own[i])) uv_close(own[i], NULL);
        ctl_free(c.ctl);
    }
    intake_free(c.intake);
    rpcapi_free(c.api);
    restapi_free(c.rest);
    monitor_free(c.monitors);
    bus_rpc_close(c.rpc_sock);
    dbpool_free(c.pool);
    pgembed_stop(pg);
    registry_free(c.reg);
    spool_close(c.spool);
    config_free(coord_opts, &c.cfg);
    return rc;
}
