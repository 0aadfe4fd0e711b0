/* main.c - mscope-coordinator: the recorders' bus into PostgreSQL.
 *
 *   mscope-coordinator --data-dir DIR [--db CONNINFO] [--bus tcp://0.0.0.0:5556]
 *
 * SUB on the bus: flow batches and heartbeats, gap detection per node, the
 * node registry, batched COPY of flow records and per-minute aggregates
 * into PostgreSQL - its own embedded server by default. While the database
 * is unreachable, batches wait in memory (bounded, counted when dropped)
 * and are retried every second. A ROUTER socket answers the protobuf RPC
 * API (list nodes, query flows, top talkers, time series), each request
 * authenticated by the token in DIR/rpc.token.
 */
#include "bus.h"
#include "config.h"
#include "db.h"
#include "log.h"
#include "mirrorscope.pb-c.h"
#include "pgembed.h"
#include "scatter.h"
#include "spool.h"
#include "writer.h"
#include "timeparse.h"
#include "token.h"
#include "xmalloc.h"

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
#define MSG_MAX (64u << 20)
#define POLL_MAX 1024

typedef struct coord_settings {
    char *data_dir, *db, *bus, *rpc, *token_file, *search_token_file, *log_level, *stats_file;
    int64_t pg_port, flush_interval, batch_records, max_pending, stale_after, dead_after, max_spool,
        retention_days, search_window, search_node_timeout, search_idle_timeout, max_searches;
} coord_settings;

#define O(f) offsetof(coord_settings, f)
static const config_opt coord_opts[] = {
    { "data-dir", 'd', CFG_STR, O(data_dir), NULL, 0, 0, "DIR", "state, and the embedded PostgreSQL (required)" },
    { "db", 0, CFG_STR, O(db), NULL, 0, 0, "CONNINFO", "libpq connection string or URI of an existing server (no password here: use PGPASSFILE); default: PG* variables if PGHOST is set, else the embedded server" },
    { "bus", 0, CFG_STR, O(bus), "tcp://0.0.0.0:5556", 0, 0, "ENDPOINT", "where recorders publish (SUB, bound)" },
    { "rpc", 0, CFG_STR, O(rpc), "tcp://127.0.0.1:5555", 0, 0, "ENDPOINT", "where clients (mscope) send requests (ROUTER, bound)" },
    { "token-file", 0, CFG_STR, O(token_file), NULL, 0, 0, "FILE", "the RPC token clients must present (default: DIR/rpc.token, created 0600 if missing)" },
    { "search-token-file", 0, CFG_STR, O(search_token_file), NULL, 0, 0, "FILE", "the cluster's search token, presented to recorders (default: DIR/search.token, created 0600 if missing: copy it to every recorder)" },
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
    { "retention-days", 0, CFG_INT, O(retention_days), "0", 0, 100000, "DAYS", "drop flows (whole day partitions) and per-minute rows older than this; 0 keeps everything" },
    { "max-spool", 0, CFG_SIZE, O(max_spool), "1G", 0, 0, "SIZE", "records kept on disk (DIR/spool) while PostgreSQL is away; beyond, dropped and counted" },
    { "stats-file", 0, CFG_STR, O(stats_file), NULL, 0, 0, "FILE", "counters as JSON (default: DIR/stats.json)" },
    { "log-level", 0, CFG_STR, O(log_level), "info", 0, 0, "LEVEL", "error, warn, info or debug" },
    { NULL, 0, 0, 0, NULL, 0, 0, NULL, NULL },
};
#undef O

typedef struct node_state {
    char name[256];
    int64_t start_ns;
    uint64_t flow_seq, hb_seq, gaps;
    Mirrorscope__Heartbeat *last_hb; /* owned, unpacked */
    int hb_dirty;
    int64_t seen_mono;               /* when its last heartbeat came */
} node_state;

typedef struct coord {
    coord_settings cfg;
    scatter_t *scatter;
    char conninfo[1024];
    db_t *db;             /* queries and the node registry (the writer has its own) */
    writer_t *writer[2];  /* 0: ordered batches and the spool; 1: plain finals */
    writer_stats final_ws;  /* their last counters, once stopped */
    spool_t *spool;
    db_batch *plain;      /* finals without an interim row: any writer, in parallel */
    db_batch *ordered;    /* interims and the finals replacing them: writer 0, in order */
    db_liveset *live;     /* flows with an interim row in flows_live */
    uint64_t batch_seq;
    int64_t start_ns;
    int64_t last_db_try;
    node_state *nodes;
    size_t nnodes, cap_nodes;
    /* counters */
    uint64_t batches, records_in, records_dropped, gaps, restarts, bad_messages, heartbeats,
        rpc_requests, rpc_errors, rpc_unauthenticated;
    char token[TOKEN_MAX], search_token[TOKEN_MAX];
} coord;

static volatile sig_atomic_t stop_flag;
static void on_signal(int sig) { stop_flag = sig; }

static node_state *node_get(coord *c, const char *name)
{
    for (size_t i = 0; i < c->nnodes; i++)
        if (!strcmp(c->nodes[i].name, name)) return &c->nodes[i];
    xgrow((void **)&c->nodes, &c->cap_nodes, c->nnodes + 1, sizeof *c->nodes);
    node_state *n = &c->nodes[c->nnodes++];
    memset(n, 0, sizeof *n);
    snprintf(n->name, sizeof n->name, "%s", name);
    log_info("new node %s", n->name);
    return n;
}

/* Sequence check: same process start and a jump = lost messages; a new
 * start time = the recorder restarted, not a gap. */
static void check_seq(coord *c, node_state *n, int64_t start_ns, uint64_t seq, uint64_t *last,
                      const char *topic)
{
    if (n->start_ns != start_ns) {
        if (n->start_ns) {
            c->restarts++;
            log_info("node %s restarted", n->name);
        }
        n->start_ns = start_ns;
        n->flow_seq = n->hb_seq = 0;
        *last = 0;
    }
    if (*last && seq != *last + 1) {
        uint64_t lost = seq > *last ? seq - *last - 1 : 0;
        n->gaps += lost;
        c->gaps += lost;
        log_warn("node %s: %s sequence jumped from %" PRIu64 " to %" PRIu64 " (%" PRIu64
                 " messages lost)", n->name, topic, *last, seq, lost);
    }
    *last = seq;
}

/* A bump allocator for unpacking flow batches: a batch of 500 records is
 * thousands of small allocations, all freed together right after; one
 * reset per batch instead of a malloc/free each. Blocks are chained when a
 * batch needs more; the next reset makes one block big enough for it. */
typedef struct arena_block {
    struct arena_block *next;
    size_t cap, used;
    _Alignas(16) uint8_t data[];
} arena_block;

static arena_block *flow_arena;

static void *arena_alloc(void *ctx, size_t size)
{
    (void)ctx;
    size = (size + 15) & ~(size_t)15;
    arena_block *a = flow_arena;
    if (!a || a->used + size > a->cap) {
        size_t cap = size > (1u << 20) ? size : (1u << 20);
        a = xmalloc(sizeof *a + cap);
        a->next = flow_arena;
        a->cap = cap;
        a->used = 0;
        flow_arena = a;
    }
    void *p = a->data + a->used;
    a->used += size;
    return p;
}

static void arena_free(void *ctx, void *p)
{
    (void)ctx;
    (void)p;
}

static void arena_reset(int release)
{
    size_t total = 0;
    int blocks = 0;
    for (arena_block *a = flow_arena; a; a = a->next) total += a->cap, blocks++;
    if (blocks <= 1 && !release) {
        if (flow_arena) flow_arena->used = 0;
        return;
    }
    while (flow_arena) {
        arena_block *next = flow_arena->next;
        free(flow_arena);
        flow_arena = next;
    }
    if (release) return;
    flow_arena = xmalloc(sizeof *flow_arena + total);
    flow_arena->next = NULL;
    flow_arena->cap = total;
    flow_arena->used = 0;
}

static ProtobufCAllocator flow_alloc = { arena_alloc, arena_free, NULL };

static void on_flow(coord *c, const uint8_t *data, size_t len)
{
    arena_reset(0);
    Mirrorscope__FlowBatch *b = mirrorscope__flow_batch__unpack(&flow_alloc, len, data);
    if (!b || !b->node || !*b->node) {
        c->bad_messages++;
        log_warn("undecodable flow batch (%zu bytes) ignored", len);
        /* nothing to free: the arena is reset before the next batch */
        return;
    }
    node_state *n = node_get(c, b->node);
    check_seq(c, n, b->start_ns, b->seq, &n->flow_seq, "flow");
    c->batches++;
    for (size_t i = 0; i < b->n_records; i++) {
        c->records_in++;
        db_batch_append(db_batch_route(c->plain, c->ordered, c->live, b->node, b->records[i]),
                        c->live, b->node, b->records[i]);
    }
    /* Not free_unpacked(): it would walk every field to free nothing; the
     * arena is reset before the next batch. */
}

static void on_hb(coord *c, const uint8_t *data, size_t len)
{
    Mirrorscope__Heartbeat *h = mirrorscope__heartbeat__unpack(NULL, len, data);
    if (!h || !h->node || !*h->node) {
        c->bad_messages++;
        log_warn("undecodable heartbeat (%zu bytes) ignored", len);
        if (h) mirrorscope__heartbeat__free_unpacked(h, NULL);
        return;
    }
    node_state *n = node_get(c, h->node);
    check_seq(c, n, h->start_ns, h->seq, &n->hb_seq, "hb");
    if (n->last_hb) mirrorscope__heartbeat__free_unpacked(n->last_hb, NULL);
    n->last_hb = h;
    n->hb_dirty = 1;
    n->seen_mono = timeparse_mono_ns();
    c->heartbeats++;
}

/* The query connection (RPC answers, node registry): retried every second. */
static void reconnect(coord *c)
{
    char err[1024];
    int64_t now = timeparse_mono_ns();
    if (c->db && db_ok(c->db)) return;
    if (now - c->last_db_try < 1000000000LL) return;
    c->last_db_try = now;
    db_close(c->db);
    c->db = db_open(c->conninfo, err, sizeof err);
    if (!c->db) log_warn("database unreachable for queries: %s", err);
    else log_info("query connection to the database ready");
}

static uint64_t pending_records(const coord *c)
{
    return (c->plain ? c->plain->records : 0) + (c->ordered ? c->ordered->records : 0);
}

/* Seal *b with a ledger id unique across our restarts and hand it to w. */
static int offer(coord *c, writer_t *w, db_batch **b)
{
    char id[64];
    if (writer_busy(w)) return 0;
    snprintf(id, sizeof id, "%" PRId64 "-%" PRIu64, c->start_ns, c->batch_seq + 1);
    db_batch_seal(*b, id);
    if (!writer_offer(w, b)) return 0; /* cannot happen: we are its only feeder */
    c->batch_seq++;
    return 1;
}

/* Give the writers what waits, when they are free: ordered batches to
 * writer 0 only (one after the other), plain ones to whichever is free.
 * Returns 1 when nothing is left waiting. */
static int handoff(coord *c)
{
    if (c->ordered->records) offer(c, c->writer[0], &c->ordered);
    if (c->plain->records && !offer(c, c->writer[1], &c->plain) && !c->ordered->records)
        offer(c, c->writer[0], &c->plain);
    return !pending_records(c);
}

static void update_nodes(coord *c)
{
    char err[1024];
    reconnect(c);
    for (size_t i = 0; c->db && i < c->nnodes; i++) {
        node_state *n = &c->nodes[i];
        if (!n->hb_dirty) continue;
        if (db_upsert_node(c->db, n->last_hb, n->gaps, err, sizeof err) == 0) {
            n->hb_dirty = 0;
        } else {
            log_warn("node registry update failed: %s", err);
            if (!db_ok(c->db)) {
                db_close(c->db);
                c->db = NULL;
            }
        }
    }
}

/* A token file: the given path or DIR/NAME, created when missing. */
static int load_token(coord *c, const char *given, const char *name, char *out, char *err,
                      size_t errlen)
{
    char path[4096];
    if (given) snprintf(path, sizeof path, "%s", given);
    else snprintf(path, sizeof path, "%s/%s", c->cfg.data_dir, name);
    int rc = token_load(path, 1, out, err, errlen);
    if (rc == 1) log_info("created token file %s", path);
    return rc < 0 ? -1 : 0;
}

static int node_cmp(const void *a, const void *b)
{
    return strcmp(((const scatter_node *)a)->name, ((const scatter_node *)b)->name);
}

/* A search: every node heard from within dead-after (or the named ones),
 * sorted by name - the merge's tie order. Returns 0 when it streams. */
static int start_search(coord *c, const bus_peer *client, uint64_t id,
                        const Mirrorscope__SearchQuery *q, int *bad, char *err, size_t errlen)
{
    scatter_node *nodes = xcalloc(c->nnodes + 1, sizeof *nodes);
    int n = 0, rc = -1;
    int64_t now = timeparse_mono_ns();
    for (size_t k = 0; k < q->n_nodes; k++) {
        node_state *ns = NULL;
        for (size_t i = 0; i < c->nnodes && !ns; i++)
            if (!strcmp(c->nodes[i].name, q->nodes[k]) && c->nodes[i].last_hb) ns = &c->nodes[i];
        if (!ns) {
            snprintf(err, errlen, "unknown recorder '%.200s' (see mscope nodes)", q->nodes[k]);
            *bad = 1;
            goto out;
        }
    }
    for (size_t i = 0; i < c->nnodes; i++) {
        node_state *ns = &c->nodes[i];
        if (!ns->last_hb) continue;
        int wanted = q->n_nodes == 0 && now - ns->seen_mono < c->cfg.dead_after;
        for (size_t k = 0; k < q->n_nodes && !wanted; k++) wanted = !strcmp(ns->name, q->nodes[k]);
        if (!wanted) continue;
        nodes[n].name = ns->name;
        nodes[n].endpoint = ns->last_hb->search_endpoint;
        n++;
    }
    qsort(nodes, (size_t)n, sizeof *nodes, node_cmp);
    rc = scatter_start(c->scatter, client, id, q, nodes, n, err, errlen);
out:
    free(nodes);
    return rc;
}

static void rpc_answer(coord *c, bus_rpc_t *rpc, const uint8_t *data, long len)
{
    Mirrorscope__Response resp;
    mirrorscope__response__init(&resp);
    char err[1024] = "";
    int bad = 0, rc = 0;
    /* An empty body is a valid protobuf (all defaults): it is then refused
     * below for its missing token and body. len < 0: too large. */
    Mirrorscope__Request *req = len >= 0 ? mirrorscope__request__unpack(NULL, (size_t)len, data) : NULL;
    c->rpc_requests++;
    if (!req) {
        resp.status = MIRRORSCOPE__RESPONSE__STATUS__BAD_REQUEST;
        snprintf(err, sizeof err, len < 0 ? "request too large" : "not a Request message");
    } else if (!token_equal(c->token, req->token)) {
        resp.id = req->id;
        resp.status = MIRRORSCOPE__RESPONSE__STATUS__UNAUTHENTICATED;
        snprintf(err, sizeof err, "missing or wrong token");
        c->rpc_unauthenticated++;
    } else {
        resp.id = req->id;
        bus_peer client;
        bus_rpc_peer(rpc, &client);
        if (req->body_case == MIRRORSCOPE__REQUEST__BODY_SEARCH_CREDIT) {
            scatter_credit(c->scatter, &client, req->id, req->search_credit);
            goto out; /* streams take no answer */
        } else if (req->body_case == MIRRORSCOPE__REQUEST__BODY_SEARCH_CANCEL) {
            scatter_cancel(c->scatter, &client, req->id);
            goto out;
        } else if (req->body_case == MIRRORSCOPE__REQUEST__BODY_SEARCH) {
            if (!req->search) {
                rc = -1;
                bad = 1;
                snprintf(err, sizeof err, "empty search");
            } else if ((rc = start_search(c, &client, req->id, req->search, &bad, err, sizeof err)) == 0) {
                goto out; /* the answer streams from scatter_work() */
            }
        } else if (reconnect(c), !c->db) {
            rc = -1;
            snprintf(err, sizeof err, "the database is not reachable right now");
        } else {
            switch (req->body_case) {
            case MIRRORSCOPE__REQUEST__BODY_LIST_NODES:
                rc = db_list_nodes(c->db, c->cfg.stale_after, c->cfg.dead_after, &resp, err, sizeof err);
                break;
            case MIRRORSCOPE__REQUEST__BODY_QUERY_FLOWS:
                rc = db_query_flows(c->db, req->query_flows, &resp, &bad, err, sizeof err);
                break;
            case MIRRORSCOPE__REQUEST__BODY_TOP_TALKERS:
                rc = db_top_talkers(c->db, req->top_talkers, &resp, &bad, err, sizeof err);
                break;
            case MIRRORSCOPE__REQUEST__BODY_TIME_SERIES:
                rc = db_time_series(c->db, req->time_series, &resp, &bad, err, sizeof err);
                break;
            default:
                rc = -1;
                bad = 1;
                snprintf(err, sizeof err, "unknown request type");
            }
        }
        if (rc < 0)
            resp.status = bad ? MIRRORSCOPE__RESPONSE__STATUS__BAD_REQUEST
                              : MIRRORSCOPE__RESPONSE__STATUS__ERROR;
    }
    if (resp.status != MIRRORSCOPE__RESPONSE__STATUS__OK) {
        c->rpc_errors++;
        err[strcspn(err, "\n")] = 0;
        resp.error = err;
        log_debug("rpc request refused: %s", err);
    }
    size_t n = mirrorscope__response__get_packed_size(&resp);
    uint8_t *out = xmalloc(n + 1);
    mirrorscope__response__pack(&resp, out);
    bus_rpc_reply(rpc, out, n);
    free(out);
    db_response_free(&resp);
out:
    if (req) mirrorscope__request__free_unpacked(req, NULL);
}

static void write_stats(coord *c)
{
    char path[4096], tmp[4200];
    if (c->cfg.stats_file) snprintf(path, sizeof path, "%s", c->cfg.stats_file);
    else snprintf(path, sizeof path, "%s/stats.json", c->cfg.data_dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) return;
    writer_stats ws = c->final_ws;
    if (c->writer[0]) {
        writer_stats w1;
        writer_get_stats(c->writer[0], &ws);
        writer_get_stats(c->writer[1], &w1);
        ws.records_written += w1.records_written;
        ws.records_dropped += w1.records_dropped;
        ws.db_errors += w1.db_errors;
        ws.connected = ws.connected && w1.connected;
    }
    fprintf(f,
            "{\n  \"version\": \"%s\",\n  \"nodes\": %zu,\n  \"batches\": %" PRIu64
            ",\n  \"heartbeats\": %" PRIu64 ",\n  \"records_received\": %" PRIu64
            ",\n  \"records_written\": %" PRIu64 ",\n  \"records_pending\": %" PRIu64
            ",\n  \"records_dropped\": %" PRIu64 ",\n  \"gaps\": %" PRIu64
            ",\n  \"restarts\": %" PRIu64 ",\n  \"bad_messages\": %" PRIu64
            ",\n  \"db_errors\": %" PRIu64 ",\n  \"db_connected\": %d"
            ",\n  \"rpc_requests\": %" PRIu64 ",\n  \"rpc_errors\": %" PRIu64
            ",\n  \"rpc_unauthenticated\": %" PRIu64 ",\n  \"records_spooled\": %" PRIu64
            ",\n  \"spool_bytes\": %" PRIu64 ",\n",
            COORD_VERSION, c->nnodes, c->batches, c->heartbeats, c->records_in,
            ws.records_written, pending_records(c), c->records_dropped + ws.records_dropped,
            c->gaps, c->restarts, c->bad_messages, ws.db_errors, ws.connected, c->rpc_requests,
            c->rpc_errors, c->rpc_unauthenticated, spool_records(c->spool), spool_bytes(c->spool));
    scatter_stats ss;
    memset(&ss, 0, sizeof ss);
    if (c->scatter) scatter_get_stats(c->scatter, &ss);
    fprintf(f,
            "  \"search\": {\"searches\": %" PRIu64 ", \"completed\": %" PRIu64
            ", \"partial\": %" PRIu64 ", \"failed\": %" PRIu64 ", \"cancelled\": %" PRIu64
            ", \"abandoned\": %" PRIu64 ", \"packets\": %" PRIu64 ", \"bytes\": %" PRIu64
            ", \"duplicates\": %" PRIu64 ", \"chunks_out\": %" PRIu64 ", \"active\": %" PRIu64
            ", \"bytes_held\": %" PRIu64 ", \"bytes_held_max\": %" PRIu64 "}\n}\n",
            ss.searches, ss.completed, ss.partial, ss.failed, ss.cancelled, ss.abandoned,
            ss.packets, ss.bytes, ss.duplicates, ss.chunks_out, ss.active, ss.bytes_held,
            ss.bytes_held_max);
    if (fclose(f) == 0) rename(tmp, path);
}

int main(int argc, char **argv)
{
    coord c;
    memset(&c, 0, sizeof c);
    log_init("mscope-coordinator");
    char err[1024];
    const char *pos[1];
    int npos = 0, help = 0, rc = 2;
    pgembed_t *pg = NULL;
    bus_sub_t *bus = NULL;
    bus_rpc_t *rpc = NULL;
    uint8_t *msg = NULL;
    if (config_defaults(coord_opts, &c.cfg) < 0) return 2;
    if (config_parse_args(coord_opts, &c.cfg, argc, argv, 1, pos, 0, &npos, &help, err, sizeof err) < 0) {
        fprintf(stderr, "mscope-coordinator: %s\n", err);
        goto out;
    }
    if (help) {
        printf("usage: mscope-coordinator --data-dir DIR [options]\n\n"
               "Receives flow records and heartbeats from recorders and keeps them in\n"
               "PostgreSQL (its own embedded server unless --db or PGHOST is given).\n\noptions:\n");
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
    if (mkdir(c.cfg.data_dir, 0755) < 0 && errno != EEXIST) {
        log_error("cannot create %s: %s", c.cfg.data_dir, strerror(errno));
        goto out;
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGPIPE, SIG_IGN);
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
    c.db = db_open(c.conninfo, err, sizeof err);
    if (!c.db) {
        log_error("%s", err);
        goto out;
    }
    c.live = db_liveset_new();
    long nlive = db_liveset_load(c.db, c.live, err, sizeof err);
    if (nlive < 0) {
        log_error("reading flows_live: %s", err);
        goto out;
    }
    c.start_ns = timeparse_now_ns();
    c.writer[0] = writer_start(c.conninfo, c.spool, 1);
    c.writer[1] = writer_start(c.conninfo, c.spool, 0);
    c.ordered = writer_first_batch(c.writer[0]);
    c.plain = writer_first_batch(c.writer[1]);
    /* ~2000 batches of up to 500 records: beyond, ZeroMQ stops reading and
     * the recorders hold records in their own bounded queues (XPUB_NODROP). */
    bus = bus_sub_new(c.cfg.bus, 2000, err, sizeof err);
    if (!bus) {
        log_error("%s", err);
        goto out;
    }
    log_info("listening for recorders on %s", c.cfg.bus);
    if (load_token(&c, c.cfg.token_file, "rpc.token", c.token, err, sizeof err) < 0 ||
        load_token(&c, c.cfg.search_token_file, "search.token", c.search_token, err, sizeof err) < 0) {
        log_error("%s", err);
        goto out;
    }
    rpc = bus_rpc_new(c.cfg.rpc, err, sizeof err);
    if (!rpc) {
        log_error("%s", err);
        goto out;
    }
    log_info("answering requests on %s", c.cfg.rpc);
    scatter_opts so = {
        .token = c.search_token,
        .window = (uint32_t)c.cfg.search_window,
        .node_timeout_ns = c.cfg.search_node_timeout,
        .idle_timeout_ns = c.cfg.search_idle_timeout,
        .max_searches = (int)c.cfg.max_searches,
    };
    c.scatter = scatter_new(rpc, &so);
    msg = xmalloc(MSG_MAX);
    int64_t last_flush = timeparse_mono_ns(), last_stats = 0, last_retention = 0;
    while (!stop_flag) {
        /* One wait for everything: the bus, clients, and the recorders
         * answering searches. */
        void *socks[POLL_MAX];
        int ready[POLL_MAX];
        /* A full batch while the writer is busy: leave the bus unread, so
         * ZeroMQ holds back the recorders instead of us dropping records. */
        socks[0] = pending_records(&c) < (uint64_t)c.cfg.max_pending ? bus : NULL;
        socks[1] = rpc;
        int ns = 2 + scatter_sockets(c.scatter, socks + 2, POLL_MAX - 2);
        bus_poll(socks, ns, ready, 20);
        for (int burst = 0; ready[0] && burst < 1000 &&
                            pending_records(&c) < (uint64_t)c.cfg.max_pending; burst++) {
            char topic[32];
            long n = bus_sub_recv(bus, topic, sizeof topic, msg, MSG_MAX, 0);
            if (n == 0) break;
            if (n > 0 && !strcmp(topic, "flow")) on_flow(&c, msg, (size_t)n);
            else if (n > 0 && !strcmp(topic, "hb")) on_hb(&c, msg, (size_t)n);
            else {
                c.bad_messages++;
                log_warn("ignored a bus message (topic '%s', %ld)", topic, n);
            }
        }
        int q;
        size_t qlen;
        while ((q = bus_rpc_recv(rpc, msg, MSG_MAX, &qlen, 0)) != 0) {
            if (q < 0 && q != -EMSGSIZE) break;
            rpc_answer(&c, rpc, msg, q < 0 ? -1 : (long)qlen);
        }
        scatter_work(c.scatter);
        int64_t now = timeparse_mono_ns();
        if ((now - last_flush >= c.cfg.flush_interval ||
             pending_records(&c) >= (uint64_t)c.cfg.batch_records) && handoff(&c)) {
            last_flush = now;
            update_nodes(&c);
        }
        if (now - last_stats >= 1000000000LL) {
            write_stats(&c);
            last_stats = now;
        }
        if (c.db && (!last_retention || now - last_retention >= 3600000000000LL)) {
            /* Hourly, on the query connection: the writer goes on meanwhile. */
            if (db_retention(c.db, (int)c.cfg.retention_days, err, sizeof err) < 0)
                log_warn("retention failed: %s", err);
            if (db_index_sealed(c.db, err, sizeof err) < 0)
                log_warn("indexing sealed days failed: %s", err);
            last_retention = now;
        }
    }
    log_info("signal %d: writing what is pending and stopping", (int)stop_flag);
    /* What cannot be written now goes to the spool for the next start. */
    while (!handoff(&c)) {
        struct timespec ts = { 0, 10000000 };
        nanosleep(&ts, NULL);
    }
    update_nodes(&c);
    writer_stats w1;
    writer_stop(c.writer[1], &w1); /* each writes its last batch, or spools it */
    writer_stop(c.writer[0], &c.final_ws);
    c.final_ws.records_written += w1.records_written;
    c.final_ws.records_dropped += w1.records_dropped;
    c.final_ws.db_errors += w1.db_errors;
    c.writer[0] = c.writer[1] = NULL;
    c.plain = c.ordered = NULL;
    write_stats(&c);
    rc = 0;
    if (spool_records(c.spool))
        log_warn("%" PRIu64 " flow records wait in the spool for the next start", spool_records(c.spool));
out:
    free(msg);
    scatter_free(c.scatter);
    bus_rpc_close(rpc);
    bus_sub_close(bus);
    db_close(c.db);
    pgembed_stop(pg);
    for (size_t i = 0; i < c.nnodes; i++)
        if (c.nodes[i].last_hb) mirrorscope__heartbeat__free_unpacked(c.nodes[i].last_hb, NULL);
    free(c.nodes);
    writer_stop(c.writer[1], NULL);
    writer_stop(c.writer[0], NULL);
    spool_close(c.spool);
    db_liveset_free(c.live);
    arena_reset(1);
    config_free(coord_opts, &c.cfg);
    return rc;
}
