/* main.c - mscope-recorderd, the recorder program: parse the configuration
 * and wire the modules. Users run mscope-recorder (front.c), which becomes
 * this program for everything but the offline search:
 *
 *   mscope-recorder --data-dir DIR [--listen ADDR:PORT | --interface IF]   daemon
 *   mscope-recorder --data-dir DIR --read FILE [--decap vxlan]             import
 *   mscope-recorder search --data-dir DIR [--from T] [--to T] -w OUT EXPR  search (front.c)
 *
 * Threads: receive thread(s) -> pipeline -> one writer thread that owns the
 * store -> the analysis thread (or the writer itself, while it has nothing
 * to store: writer_pass) -> (with application records) the application
 * thread; both feed the publisher (publish.h), the analysis also the
 * output thread of --flows-json (recout.h). A daemon's main thread runs the control loop
 * (ctl.h): signals, stats.json every second, and HTTP - /healthz and
 * /readyz for load balancers, /metrics for Prometheus (status.c). SIGTERM
 * drains: /readyz turns 503 while recording goes on for --drain-time (the
 * NLB's deregistration delay), then it stops; SIGINT stops at once;
 * SIGHUP reads the search and /metrics token files again.
 * MSCOPE_CLOCK_OFFSET_S in the environment is a test hook (timeparse.h): a
 * wall clock that far off.
 */
#include "apprec.h"
#include "appana.h"
#include "config.h"
#include "ctl.h"
#include "figures.h"
#include "flowrec.h"
#include "flowtab.h"
#include "ingest.h"
#include "lineout.h"
#include "log.h"
#include "pipeline.h"
#include "publish.h"
#include "recopts.h"
#include "recout.h"
#include "sandbox.h"
#include "searchsvc.h"
#include "status.h"
#include "store.h"
#include "timeparse.h"
#include "token.h"
#include "xmalloc.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#define MSCOPE_VERSION "0.1.0"
#define RECENT_TICKS 6                /* "dropping now" = within the last 5 s */
#define RX_STALL_NS 3000000000LL      /* a receive thread silent this long is stuck */

typedef struct recorder {
    rec_settings cfg;
    char node[256];
    store_t *store;             /* NULL in analysis-only mode */
    flowtab_t *flows;           /* NULL with --no-analysis */
    appana_t *app;              /* application transactions (--app-json, --coordinator); or NULL */
    /* The analysis's, written a packet: cache lines of their own, not
     * shared with what the application thread reads a packet. The flow
     * table and these belong to whichever thread holds mu: the analysis
     * thread, or the writer analysing a batch itself (writer_pass). */
    struct {
        pthread_mutex_t mu;
        pipe_batch *batch;      /* its batch now (whose events emit_record notes), or NULL */
        uint32_t pos;           /* and the packet in it */
        pipe_events pend;       /* flows ended outside a batch */
    } __attribute__((aligned(64))) ana;
    char ana_pad[64];
    FILE *json;                 /* --flows-json */
    FILE *app_out;              /* --app-json */
    lineout app_lines;          /* the application thread's, to app_out */
    recout_t *out;              /* writes --flows-json (recout.h); NULL without it */
    publisher_t *pub;           /* --coordinator */
    searchsvc_t *search;        /* the search service (daemon mode) */
    bus_sec sec;                /* CURVE keys, unless --insecure */
    int have_keys;              /* sec holds our pair and the coordinator's key */
    char search_announce[512];
    char search_token[TOKEN_MAX];     /* the search service's, and its file: */
    char search_token_path[4096];     /* read again on SIGHUP */
    int64_t start_ns;
    pipeline_t *pipe;
    ingest_live_t *live;
    ingest_stats import_st;
    int import_mode;            /* --read; set before the threads start */
    _Atomic int writer_failed;  /* import: the store refused packets */
    _Atomic int stop;
    pthread_t writer, analysis, app_thread;
    pthread_mutex_t snap_mu;
    store_stats snap;           /* the writer's latest store counters */
    flowtab_stats flow_snap;    /* and flow table counters */
    appana_stats app_snap;      /* and the application layer's */
    /* the control loop (daemon mode) */
    ctl_t *ctl;
    uv_timer_t drain_timer;
    int draining;
    int64_t drain_until, last_log;
    uint64_t drops[RECENT_TICKS];  /* drop totals of the last ticks, a ring */
    uint64_t ticks;
} recorder;

/* Flow records from the analysis thread: the bus, and final ones as JSON
 * lines for --flows-json (formatted by the output thread). A flow's final
 * record also ends its application state (pending transactions go out):
 * noted for the application thread at this point of the batch, or, outside
 * one, before the next batch it gets. */
static void emit_record(void *ctx, const flowrec *rec)
{
    recorder *r = ctx;
    if (r->app && rec->final) {
        if (r->ana.batch) pipe_events_add(&r->ana.batch->ev, r->ana.pos, rec->flow_id);
        else pipe_events_add(&r->ana.pend, 0, rec->flow_id);
    }
    if (r->pub) publish_record(r->pub, rec); /* never blocks; shed records are counted */
    if (r->json && rec->final) recout_flow(r->out, rec);
}

/* Application records from the application thread: the one place they
 * leave the recorder, as JSON lines for --app-json and on the bus's "app"
 * topic. */
static void emit_app(void *ctx, const apprec *rec)
{
    recorder *r = ctx;
    if (r->pub) publish_app(r->pub, rec); /* never blocks; shed records are counted */
    if (r->app_out) { /* here, not on the output thread: see recout.h */
        char *line = lineout_line(&r->app_lines, APPREC_JSON_MAX);
        lineout_commit(&r->app_lines, apprec_json(rec, r->node, line, APPREC_JSON_MAX));
    }
}

static void store_snapshot(recorder *r)
{
    pthread_mutex_lock(&r->snap_mu);
    store_get_stats(r->store, &r->snap);
    pthread_mutex_unlock(&r->snap_mu);
}

static void analyse(recorder *r, pipe_batch *b);

/* The batch just stored goes to the analysis; while nothing waits to be
 * stored the writer then analyses the oldest queued batches itself (the
 * lock taken: no one else is analysing one): on two cores the analysis
 * thread and the reader took turns on one while the writer's was idle
 * half the time (perf sched). */
static void writer_pass(recorder *r, pipe_batch *b)
{
    pipeline_pass(r->pipe, 0, b);
    while (!pipeline_queued(r->pipe, 0) && pipeline_queued(r->pipe, 1) &&
           !pthread_mutex_trylock(&r->ana.mu)) {
        pipe_batch *q = pipeline_next(r->pipe, 1, 0);
        if (q) analyse(r, q);
        pthread_mutex_unlock(&r->ana.mu);
    }
}

/* The writer: stores every packet in arrival order, then passes the batch
 * to the analysis (writer_pass), or frees it with --no-analysis. */
static void *writer_main(void *arg)
{
    recorder *r = arg;
    int64_t last_snap = 0;
    pthread_setname_np(pthread_self(), "mscope-writer");
    for (;;) {
        pipe_batch *b = pipeline_next(r->pipe, 0, 100);
        if (b) {
            for (uint32_t i = 0; r->store && i < b->n; i++) {
                const pipe_pkt *p = &b->pkts[i];
                if (i + 16 < b->n)
                    store_prefetch(r->store, b->pkts[i + 16].hash, b->pkts[i + 8].hash);
                int rc = store_append(r->store, p->ts_ns, b->data + p->data_off, p->caplen,
                                      p->origlen, &p->key, p->hash);
                if (rc < 0 && r->import_mode) r->writer_failed = 1;
            }
            if (r->flows) writer_pass(r, b);
            else pipeline_release(r->pipe, b);
        } else if (pipeline_drained(r->pipe, 0)) {
            break;
        }
        int64_t now = timeparse_mono_ns();
        if (r->store) store_tick(r->store, now);
        if (r->store && now - last_snap > 200000000LL) {
            store_snapshot(r);
            last_snap = now;
        }
    }
    /* Every batch is passed on: the analysis drains them and ends its flows
     * while the last segment is sealed here, not after (the end of an
     * import was the seal, then the flush, one after the other). */
    pipeline_close(r->pipe, 1);
    if (r->store && store_flush_seal(r->store) < 0 && r->import_mode) r->writer_failed = 1;
    if (r->store) store_snapshot(r);
    log_thread_cpu("writer");
    return NULL;
}

static void flow_snapshot(recorder *r)
{
    pthread_mutex_lock(&r->snap_mu);
    flowtab_get_stats(r->flows, &r->flow_snap);
    pthread_mutex_unlock(&r->snap_mu);
}

static void app_snapshot(recorder *r)
{
    pthread_mutex_lock(&r->snap_mu);
    appana_get_stats(r->app, &r->app_snap);
    pthread_mutex_unlock(&r->snap_mu);
}

/* Flows that ended outside a batch go with b, before its first packet. */
static void take_pending(recorder *r, pipe_batch *b)
{
    for (uint32_t i = 0; i < r->ana.pend.n; i++) pipe_events_add(&b->ev, 0, r->ana.pend.ev[i].flow_id);
    r->ana.pend.n = 0;
}

/* The analysis of batch b: every packet through the flow table, in the
 * batches' order; with application records each packet's flow id and the
 * flows that ended go on with the batch to the application thread. Called
 * with r->ana.mu held, by the analysis thread or by the writer
 * (writer_pass). */
static void analyse(recorder *r, pipe_batch *b)
{
    r->ana.batch = b;
    if (r->ana.pend.n) take_pending(r, b);
    for (uint32_t i = 0; i < b->n; i++) {
        const pipe_pkt *p = &b->pkts[i];
        if (i + 16 < b->n)
            flowtab_prefetch(r->flows, b->pkts[i + 16].ana_hash, b->pkts[i + 8].ana_hash);
        r->ana.pos = i;
        b->flow_id[i] = flowtab_packet(r->flows, p->ts_ns, p->key.vni, p->key.observer, &p->ana,
                                       p->ana_hash);
    }
    r->ana.batch = NULL;
    if (r->app) pipeline_pass(r->pipe, 1, b);
    else pipeline_release(r->pipe, b);
}

/* The analysis thread: the batches the writer passed on, in order (taken
 * under r->ana.mu, so none the writer analyses itself overtakes them). */
static void *analysis_main(void *arg)
{
    recorder *r = arg;
    int64_t last_snap = 0;
    pthread_setname_np(pthread_self(), "mscope-analysis");
    for (;;) {
        int queued = pipeline_wait(r->pipe, 1, 100);
        pthread_mutex_lock(&r->ana.mu);
        pipe_batch *b = queued ? pipeline_next(r->pipe, 1, 0) : NULL;
        if (b) {
            analyse(r, b);
        } else if (pipeline_drained(r->pipe, 1)) {
            pthread_mutex_unlock(&r->ana.mu);
            break;
        }
        /* A live feed's flows also age by the wall clock when packets stop. */
        if (!r->import_mode) flowtab_advance(r->flows, timeparse_now_ns());
        if (!b && r->ana.pend.n && (b = pipeline_get(r->pipe, 0))) { /* idle: flows aged out */
            take_pending(r, b);
            pipeline_pass(r->pipe, 1, b);
        }
        int64_t now = timeparse_mono_ns();
        if (now - last_snap > 200000000LL) {
            flow_snapshot(r);
            last_snap = now;
        }
        pthread_mutex_unlock(&r->ana.mu);
    }
    /* The writer has closed stage 1: it analyses nothing more. */
    flowtab_flush(r->flows); /* ends every flow: their events wait in ana.pend */
    flow_snapshot(r);
    log_thread_cpu("analysis");
    if (r->app) pipeline_close(r->pipe, 2); /* the application thread then takes ana.pend */
    return NULL;
}

/* The flows of b's events before packet pos (from *e on) end. */
static inline void app_ends(appana_t *app, const pipe_batch *b, uint32_t *e, uint32_t pos)
{
    for (; *e < b->ev.n && b->ev.ev[*e].pos <= pos; (*e)++) appana_flow_end(app, b->ev.ev[*e].flow_id);
}

/* The application layer: each analysed packet with its flow id, and each
 * flow's end, in the order the analysis saw them (so its records are the
 * same as if it ran there), on a core of its own. */
static void *app_main(void *arg)
{
    recorder *r = arg;
    appana_t *app = r->app;
    int64_t last_snap = 0;
    pthread_setname_np(pthread_self(), "mscope-app");
    for (;;) {
        pipe_batch *b = pipeline_next(r->pipe, 2, 100);
        if (b) {
            uint32_t e = 0;
            for (uint32_t i = 0; i < b->n; i++) {
                const pipe_pkt *p = &b->pkts[i];
                if (i + 8 < b->n && b->pkts[i + 8].payload_off) /* the parsers read it */
                    __builtin_prefetch(b->data + b->pkts[i + 8].data_off + b->pkts[i + 8].payload_off);
                app_ends(app, b, &e, i);
                if (!b->flow_id[i]) continue;
                uint32_t cap = p->payload_off && p->payload_off < p->caplen ? p->caplen - p->payload_off : 0;
                appana_packet(app, b->flow_id[i], p->ts_ns, p->key.vni, p->key.observer, &p->ana,
                              b->data + p->data_off + p->payload_off, cap);
            }
            app_ends(app, b, &e, b->n);
            pipeline_release(r->pipe, b);
        } else if (pipeline_drained(r->pipe, 2)) {
            break;
        }
        if (!r->import_mode) appana_advance(app, timeparse_now_ns());
        if (r->app_out && !b) lineout_flush(&r->app_lines); /* 100 ms without packets */
        else if (r->app_out) lineout_tick(&r->app_lines);
        int64_t now = timeparse_mono_ns();
        if (now - last_snap > 200000000LL) {
            app_snapshot(r);
            last_snap = now;
        }
    }
    /* The analysis's flush ended every flow; it has closed stage 2 since. */
    for (uint32_t i = 0; i < r->ana.pend.n; i++) appana_flow_end(app, r->ana.pend.ev[i].flow_id);
    r->ana.pend.n = 0;
    appana_flush(r->app);
    if (r->app_out) lineout_flush(&r->app_lines);
    app_snapshot(r);
    log_thread_cpu("application");
    return NULL;
}

static void counters(recorder *r, ingest_stats *in, store_stats *st)
{
    memset(in, 0, sizeof *in);
    /* Under the lock: the publisher's heartbeats call this while the main
     * thread starts and stops the live source. */
    pthread_mutex_lock(&r->snap_mu);
    if (r->live) ingest_live_stats(r->live, in);
    ingest_stats_add(in, &r->import_st);
    *st = r->snap;
    pthread_mutex_unlock(&r->snap_mu);
}

static void gather(recorder *r, rec_figures *f)
{
    ingest_stats in;
    store_stats st;
    counters(r, &in, &st);
    flowtab_stats fs;
    appana_stats as;
    pthread_mutex_lock(&r->snap_mu);
    fs = r->flow_snap;
    as = r->app_snap;
    pthread_mutex_unlock(&r->snap_mu);
    publish_stats ps;
    memset(&ps, 0, sizeof ps);
    if (r->pub) publish_get_stats(r->pub, &ps);
    searchsvc_stats ss;
    memset(&ss, 0, sizeof ss);
    if (r->search) searchsvc_get_stats(r->search, &ss);
    uint64_t not_vxlan = 0;
    for (int i = 1; i < VX__COUNT; i++) not_vxlan += in.not_decapsulated[i];
    *f = (rec_figures){
        .rx_packets = in.rx_packets, .rx_bytes = in.rx_bytes, .accepted = in.stored_inner,
        .stored_packets = st.packets, .stored_bytes = st.bytes, .queue_drops = in.queue_drops,
        .kernel_drops = in.kernel_drops, .truncated = in.truncated,
        .drop_disk_full = st.drop_disk_full, .not_vxlan = not_vxlan,
        .disk_full_events = st.disk_full_events, .paused = (uint64_t)st.paused,
        .segments = st.segments, .segments_sealed = st.segments_sealed,
        .segments_evicted = st.segments_evicted, .recovered_segments = st.recovered_segments,
        .recovered_torn_bytes = st.recovered_torn_bytes, .disk_used = st.disk_used,
        .oldest_ns = st.oldest_ns, .newest_ns = st.newest_ns,
        .flows_active = fs.active, .flows_created = fs.created,
        .flows_evicted_full = fs.evicted_full, .flow_records = fs.records,
        .app_flows = as.flows, .app_active = as.active, .app_pool_full = as.pool_full,
        .app_buffer_full = as.buffer_full,
        .flow_records_interim = fs.interim, .flows_unusable_packets = fs.unusable_packets,
        .records_published = ps.published, .records_shed = ps.shed, .records_queued = ps.queued,
        .flow_batches = ps.batches, .heartbeats = ps.heartbeats,
        .app_published = ps.app_published, .app_shed = ps.app_shed, .app_queued = ps.app_queued,
        .app_batches = ps.app_batches,
        .s_requests = ss.requests, .s_started = ss.started, .s_completed = ss.completed,
        .s_failed = ss.failed, .s_cancelled = ss.cancelled, .s_abandoned = ss.abandoned,
        .s_refused = ss.refused, .s_refused_peers = ss.refused_peers, .s_chunks = ss.chunks, .s_packets = ss.packets,
        .s_bytes = ss.bytes, .s_active = ss.active, .s_buffered_bytes = ss.buffered_bytes,
        .s_buffered_bytes_max = ss.buffered_bytes_max,
    };
    for (int k = 0; k < 3; k++) {
        f->app_records[k] = as.kind[k].records;
        f->app_malformed[k] = as.kind[k].malformed;
        f->app_gaps[k] = as.kind[k].gaps;
        f->app_dropped[k] = as.kind[k].dropped;
        f->app_unmatched[k] = as.kind[k].unmatched;
    }
    memcpy(f->not_decapsulated, in.not_decapsulated, sizeof f->not_decapsulated);
    memcpy(f->anomalies, in.anomalies, sizeof f->anomalies);
}

/* DIR/stats.json: the counters for tests and operators (replaced atomically). */
static void write_stats_file(recorder *r)
{
    char path[4096];
    if (r->cfg.stats_file)
        snprintf(path, sizeof path, "%s", r->cfg.stats_file);
    else if (r->cfg.data_dir)
        snprintf(path, sizeof path, "%s/stats.json", r->cfg.data_dir);
    else
        return; /* analysis only, nowhere to keep it */
    rec_figures f;
    gather(r, &f);
    json_t *o = rec_status_json(&f, MSCOPE_VERSION);
    if (figures_write_file(o, path) < 0) log_debug("cannot write %s: %s", path, strerror(errno));
    json_decref(o);
}

static void log_counters(const ingest_stats *in, const store_stats *st)
{
    uint64_t nodecap = 0, anom = 0;
    for (int i = 1; i < VX__COUNT; i++) nodecap += in->not_decapsulated[i];
    for (int i = 1; i < DEC__COUNT; i++) anom += in->anomalies[i];
    log_info("rx %" PRIu64 " pkts %" PRIu64 " bytes; stored %" PRIu64 " pkts in %" PRIu64
             " segments (%" PRIu64 " bytes on disk); dropped: not-vxlan %" PRIu64
             ", queue %" PRIu64 ", kernel %" PRIu64 ", disk-full %" PRIu64
             "; malformed inner (stored) %" PRIu64,
             in->rx_packets, in->rx_bytes, st->packets, st->segments, st->disk_used, nodecap,
             in->queue_drops, in->kernel_drops, st->drop_disk_full, anom);
}

/* Start the writer side: the store (unless analysis-only), the flow table
 * (unless --no-analysis), the pipeline and the writer thread. */
static void counters(recorder *r, ingest_stats *in, store_stats *st);

/* Heartbeat counters, called from the publisher thread. */
static void heartbeat_counters(void *ctx, publish_counters *c)
{
    recorder *r = ctx;
    ingest_stats in;
    store_stats st;
    counters(r, &in, &st);
    pthread_mutex_lock(&r->snap_mu);
    c->flows_active = r->flow_snap.active;
    pthread_mutex_unlock(&r->snap_mu);
    c->rx_packets = in.rx_packets;
    c->rx_bytes = in.rx_bytes;
    c->stored_packets = st.packets;
    c->stored_bytes = st.bytes;
    c->disk_used = st.disk_used;
    c->oldest_ns = st.oldest_ns;
    c->newest_ns = st.newest_ns;
    int n = 0;
    c->drop_names[n] = "queue";
    c->drop_values[n++] = in.queue_drops;
    c->drop_names[n] = "kernel";
    c->drop_values[n++] = in.kernel_drops;
    c->drop_names[n] = "disk_full";
    c->drop_values[n++] = st.drop_disk_full;
    for (int i = 1; i < VX__COUNT && n < 32; i++) {
        c->drop_names[n] = vxlan_reason_name(i);
        c->drop_values[n++] = in.not_decapsulated[i];
    }
    c->ndrops = n;
}

/* The search service, for a daemon with a data directory and a token. The
 * address it announces: --search-endpoint, else --search with a wildcard
 * host replaced by our host name. */
static int start_search(recorder *r)
{
    char err[1024], *path = r->search_token_path, *token = r->search_token;
    if (r->cfg.read || !r->cfg.data_dir || !strcmp(r->cfg.search, "off")) return 0;
    if (r->cfg.search_token_file) snprintf(path, sizeof r->search_token_path, "%s", r->cfg.search_token_file);
    else snprintf(path, sizeof r->search_token_path, "%s/search.token", r->cfg.data_dir);
    if (token_load(path, 0, token, err, sizeof err) < 0) {
        if (r->cfg.search_token_file) {
            log_error("%s", err);
            return -1;
        }
        log_warn("search service off: no search token (%s); put the coordinator's search "
                 "token there or use --search-token-file", err);
        return 0;
    }
    if (!r->cfg.insecure && !r->have_keys) {
        log_warn("search service off: no coordinator key (see --coordinator-key)");
        return 0;
    }
    searchsvc_opts so = {
        .dir = r->cfg.data_dir,
        .endpoint = r->cfg.search,
        .token = token,
        .sec = r->cfg.insecure ? NULL : &r->sec,
        .node = r->node,
        .max_searches = (int)r->cfg.max_searches,
    };
    r->search = searchsvc_start(&so, err, sizeof err);
    if (!r->search) {
        log_error("search service: %s", err);
        return -1;
    }
    if (r->cfg.search_endpoint) {
        snprintf(r->search_announce, sizeof r->search_announce, "%s", r->cfg.search_endpoint);
    } else {
        char host[256] = "localhost";
        gethostname(host, sizeof host - 1);
        const char *colon = strrchr(r->cfg.search, ':');
        const char *h = strstr(r->cfg.search, "://");
        h = h ? h + 3 : r->cfg.search;
        int wild = !strncmp(h, "0.0.0.0:", 8) || !strncmp(h, "*:", 2) || !strncmp(h, "[::]:", 5);
        if (wild && colon) snprintf(r->search_announce, sizeof r->search_announce, "tcp://%s%s", host, colon);
        else snprintf(r->search_announce, sizeof r->search_announce, "%s", r->cfg.search);
    }
    log_info("answering searches on %s (announced as %s)", r->cfg.search, r->search_announce);
    return 0;
}

/* CURVE keys, unless --insecure: our pair (DIR/curve.key, made when
 * missing) and the coordinator's public key, which the bus is encrypted to
 * and which alone may search. Without the coordinator's key the bus cannot
 * start (an error) and the search service stays off (a warning). Returns 0
 * or -1. */
static int load_keys(recorder *r)
{
    char err[1024], path[4096];
    int searching = !r->cfg.read && r->cfg.data_dir && strcmp(r->cfg.search, "off");
    if (searching && !r->cfg.search_token_file) { /* no token: the service stays off anyway */
        snprintf(path, sizeof path, "%s/search.token", r->cfg.data_dir);
        searching = access(path, F_OK) == 0;
    }
    if (r->cfg.insecure) {
        if (r->cfg.coordinator || searching)
            log_warn("--insecure: the bus%s is plain ZeroMQ, unencrypted, and lets in anyone "
                     "who reaches it", searching ? " and the search service" : "");
        return 0;
    }
    if (!r->cfg.coordinator && !searching) return 0;
    if (!r->cfg.key_file && !r->cfg.data_dir) {
        log_error("--coordinator needs this recorder's key: --key-file FILE (make one with "
                  "'mscope keygen --role recorder NAME'), or --insecure");
        return -1;
    }
    if (r->cfg.key_file) snprintf(path, sizeof path, "%s", r->cfg.key_file);
    else snprintf(path, sizeof path, "%s/curve.key", r->cfg.data_dir);
    /* The key goes in the data directory, which the store makes later. */
    if (!r->cfg.key_file && mkdir(r->cfg.data_dir, 0755) < 0 && errno != EEXIST) {
        log_error("mkdir(%s) failed: %s", r->cfg.data_dir, strerror(errno));
        return -1;
    }
    int rc = r->cfg.key_file ? busauth_load(path, 1, &r->sec.self, err, sizeof err)
                             : busauth_load_or_create(path, BUSAUTH_ROLE_RECORDER, &r->sec.self,
                                                      err, sizeof err);
    if (rc < 0) {
        log_error("%s", err);
        return -1;
    }
    if (rc == 1) {
        char pub[4096];
        busauth_pub_path(path, pub, sizeof pub);
        log_info("created this recorder's key pair %s: put %s in the coordinator's allowed "
                 "keys", path, pub);
    }
    if (r->cfg.coordinator_key) snprintf(path, sizeof path, "%s", r->cfg.coordinator_key);
    else if (r->cfg.data_dir) snprintf(path, sizeof path, "%s/coordinator.pub", r->cfg.data_dir);
    else snprintf(path, sizeof path, "(none: give --coordinator-key FILE)");
    busauth_pair coord;
    if (busauth_load(path, 0, &coord, err, sizeof err) < 0) {
        if (!r->cfg.coordinator) return 0; /* start_search() says so */
        log_error("%s: copy the coordinator's curve.pub there, or give --coordinator-key FILE "
                  "(or --insecure)", err);
        return -1;
    }
    memcpy(r->sec.server_key, coord.pub, sizeof coord.pub);
    r->sec.allow_key = r->sec.server_key;
    r->have_keys = 1;
    return 0;
}

static int start_publisher(recorder *r)
{
    char err[512];
    if (!r->cfg.coordinator) return 0;
    publish_opts po = {
        .endpoint = r->cfg.coordinator,
        .sec = r->cfg.insecure ? NULL : &r->sec,
        .node = r->node,
        .version = MSCOPE_VERSION,
        .search_endpoint = r->search_announce,
        .start_ns = r->start_ns,
        .batch_ns = 100000000LL,
        .batch_max = 500,
        .queue = (uint32_t)r->cfg.bus_queue,
        .heartbeat_ns = 1000000000LL,
        /* An import is short: wait for the coordinator to subscribe first. */
        .wait_subscriber_ms = r->cfg.read ? 5000 : 0,
    };
    r->pub = publish_start(&po, heartbeat_counters, r, err, sizeof err);
    if (!r->pub) {
        log_error("%s", err);
        return -1;
    }
    return 0;
}

static int start_writer(recorder *r)
{
    char err[512];
    if (!r->cfg.no_analysis) {
        flowtab_opts fo = {
            .max_flows = (uint32_t)r->cfg.max_flows,
            .idle_ns = r->cfg.flow_idle,
            .interval_ns = r->cfg.flow_interval,
            .skip_interim = !r->pub, /* emit_record keeps only final records then */
            .grace_ns = r->cfg.flow_grace,
            /* ids carry the start second: unique across restarts of a node */
            .id_base = (uint64_t)(timeparse_now_ns() / 1000000000LL) << 32,
        };
        r->flows = flowtab_new(&fo, emit_record, r);
        if (!r->flows) {
            log_error("cannot allocate a flow table of %" PRId64 " flows (%zu bytes each)",
                      r->cfg.max_flows, flowtab_slot_bytes());
            return -1;
        }
    }
    if (r->flows && r->cfg.app && (r->app_out || r->pub)) {
        appana_opts ao = {
            .max_flows = (uint32_t)r->cfg.app_flows,
            .dns_timeout_ns = r->cfg.app_dns_timeout,
            .dns_ports = r->cfg.app_dns_ports,
        };
        r->app = appana_new(&ao, emit_app, r, err, sizeof err);
        if (!r->app) {
            log_error("--app-dns-ports: %s", err);
            return -1;
        }
        if (r->app_out) lineout_init(&r->app_lines, r->app_out);
    }
    if (r->json) {
        r->out = recout_start(r->json, r->node);
        if (!r->out) return -1;
    }
    if (!r->cfg.data_dir) goto pipeline;
    store_opts so = {
        .dir = r->cfg.data_dir,
        .seg_size = r->cfg.segment_size,
        .seg_age_ns = r->cfg.segment_age,
        .max_disk = r->cfg.max_disk,
        .min_free = r->cfg.min_free,
        .flush_ns = r->cfg.flush_interval,
    };
    r->store = store_open(&so, err, sizeof err);
    if (!r->store) {
        log_error("%s", err);
        return -1;
    }
    pthread_mutex_lock(&r->snap_mu); /* the publisher's heartbeats read it */
    store_get_stats(r->store, &r->snap);
    pthread_mutex_unlock(&r->snap_mu);
pipeline:
    /* A live feed needs all its room for bursts: a full queue drops. An
     * import waits instead, and keeps 8 batches in flight while no thread
     * stalls: they stay in the cache between the reader, the writer and
     * the analysis (the import's CPU -9 to -11% against 128 in flight);
     * the room widens while a consumer is away (docs/BENCHMARKS.md). */
    r->pipe = pipeline_new((unsigned)r->cfg.queue_batches, r->cfg.read ? 8 : 0);
    int rc = pthread_create(&r->writer, NULL, writer_main, r);
    if (!rc && r->app) {
        rc = pthread_create(&r->app_thread, NULL, app_main, r);
        if (rc) {
            pipeline_close(r->pipe, 0);
            pthread_join(r->writer, NULL);
        }
    }
    if (!rc && r->flows) {
        rc = pthread_create(&r->analysis, NULL, analysis_main, r);
        if (rc) {
            pipeline_close(r->pipe, 0);
            pthread_join(r->writer, NULL);
            if (r->app) {
                pipeline_close(r->pipe, 2);
                pthread_join(r->app_thread, NULL);
            }
        }
    }
    if (rc) {
        log_error("pthread_create() failed: %s", strerror(rc));
        return -1;
    }
    return 0;
}

static void stop_writer(recorder *r)
{
    pipeline_close(r->pipe, 0);
    pthread_join(r->writer, NULL);
    if (r->flows) pthread_join(r->analysis, NULL);
    if (r->app) pthread_join(r->app_thread, NULL);
    recout_stop(r->out); /* after the analysis: its last records are queued */
    store_close(r->store);
    flowtab_free(r->flows);
    appana_free(r->app);
    lineout_free(&r->app_lines);
    free(r->ana.pend.ev);
    pipeline_free(r->pipe);
}

static ingest_opts make_ingest_opts(recorder *r)
{
    ingest_opts io = {
        .pipe = r->pipe,
        .decap_vxlan = strcmp(r->cfg.decap, "vxlan") == 0,
        .vxlan_port = (uint16_t)r->cfg.vxlan_port,
        .listen = r->cfg.listen,
        .threads = (int)r->cfg.rx_threads,
        .rcvbuf = r->cfg.rcvbuf,
        .iface = r->cfg.interface,
        .capture_filter = r->cfg.capture_filter,
        .analysis = r->flows != NULL,
    };
    return io;
}

static int run_import(recorder *r)
{
    char err[1024];
    ingest_opts io = make_ingest_opts(r);
    /* Now, while there is room: an import that fills the disk can then
     * still say so at the end (figures_write_file() reuses the files). */
    write_stats_file(r);
    ingest_stats done;
    memset(&done, 0, sizeof done);
    int rc = ingest_file(&io, r->cfg.read, &r->writer_failed, &done, err, sizeof err);
    log_thread_cpu("reader"); /* this thread read the file */
    pthread_mutex_lock(&r->snap_mu); /* the publisher's heartbeats read it */
    r->import_st = done;
    pthread_mutex_unlock(&r->snap_mu);
    stop_writer(r);
    if (rc < 0) log_error("%s", err);
    ingest_stats in;
    store_stats st;
    counters(r, &in, &st);
    write_stats_file(r);
    log_counters(&in, &st);
    if (r->writer_failed) {
        log_error("import of %s incomplete: the store could not write %" PRIu64
                  " packets (disk full?)", r->cfg.read, st.drop_disk_full);
        return 1;
    }
    return rc < 0 ? 1 : 0;
}

/* ---- daemon mode: the control loop --------------------------------------- */

/* Why this recorder cannot do its job now (none: healthy); for /readyz,
 * also that it is draining. */
static void health(void *data, int ready, json_t *why)
{
    recorder *r = data;
    rec_figures f;
    gather(r, &f);
    if (f.paused)
        json_array_append_new(why, json_string("the disk is full: recording is paused"));
    char rx[512];
    if (r->live && ingest_live_health(r->live, RX_STALL_NS, rx, sizeof rx))
        json_array_append_new(why, json_string(rx));
    /* Dropping now: any drop since the oldest total in the ring (5 ticks
     * ago; zero in the first seconds, so a drop since the start counts). */
    uint64_t oldest = r->drops[(r->ticks + 1) % RECENT_TICKS];
    uint64_t now = f.queue_drops + f.kernel_drops + f.drop_disk_full;
    if (now > oldest) {
        char m[160];
        snprintf(m, sizeof m, "dropping packets: %" PRIu64 " in the last %d s", now - oldest,
                 RECENT_TICKS - 1);
        json_array_append_new(why, json_string(m));
    }
    if (ready && r->draining) {
        char m[128];
        snprintf(m, sizeof m, "draining: stopping in %.0f s",
                 (double)(r->drain_until - timeparse_mono_ns()) / 1e9);
        json_array_append_new(why, json_string(m));
    }
}

static void health_fields(void *data, json_t *obj)
{
    json_object_set_new(obj, "node", json_string(((recorder *)data)->node));
}

static void metrics(void *data, metrics_t *m)
{
    rec_figures f;
    gather(data, &f);
    rec_status_metrics(&f, m);
}

/* Every second: stats.json, the drop history, the log now and then. */
static void on_tick(void *data)
{
    recorder *r = data;
    rec_figures f;
    write_stats_file(r);
    gather(r, &f);
    r->ticks++;
    r->drops[r->ticks % RECENT_TICKS] = f.queue_drops + f.kernel_drops + f.drop_disk_full;
    if (timeparse_mono_ns() - r->last_log >= r->cfg.stats_interval) {
        ingest_stats in;
        store_stats st;
        counters(r, &in, &st);
        log_counters(&in, &st);
        r->last_log = timeparse_mono_ns();
    }
}

static void on_drained(uv_timer_t *t)
{
    recorder *r = t->data;
    log_info("drained: stopping");
    ctl_stop(r->ctl);
}

static void on_signal(void *data, int sig)
{
    recorder *r = data;
    if (sig == SIGHUP) {
        /* Token files only: the other options take a restart. */
        ctl_token t = { r->search_token_path, r->search_token };
        int n = r->search != NULL;
        if (ctl_reload_tokens(r->ctl, &t, n) && n) searchsvc_set_token(r->search, r->search_token);
        return;
    }
    if (sig == SIGUSR1) {
        ingest_stats in;
        store_stats st;
        counters(r, &in, &st);
        log_counters(&in, &st);
        return;
    }
    if (sig == SIGTERM && !r->draining && r->cfg.drain_time > 0) {
        r->draining = 1;
        r->drain_until = timeparse_mono_ns() + r->cfg.drain_time;
        log_info("SIGTERM: /readyz answers 503; recording goes on for %.0f s (--drain-time), "
                 "then stops (SIGTERM again or SIGINT: at once)", (double)r->cfg.drain_time / 1e9);
        uv_timer_start(&r->drain_timer, on_drained, (uint64_t)(r->cfg.drain_time / 1000000), 0);
        return;
    }
    log_info("%s: shutting down", strsignal(sig));
    ctl_stop(r->ctl);
}

static int run_daemon(recorder *r)
{
    char err[1024];
    ingest_opts io = make_ingest_opts(r);
    ingest_live_t *live = ingest_live_start(&io, err, sizeof err);
    pthread_mutex_lock(&r->snap_mu);
    r->live = live;
    pthread_mutex_unlock(&r->snap_mu);
    if (!r->live) {
        log_error("%s", err);
        stop_writer(r);
        return 1;
    }
    log_info("recording into %s (segments %" PRId64 " MiB / %" PRId64 " s)", r->cfg.data_dir,
             r->cfg.segment_size >> 20, (int64_t)(r->cfg.segment_age / 1000000000LL));
    ctl_hooks hooks = { .data = r, .tick = on_tick, .on_signal = on_signal };
    r->ctl = ctl_new(&hooks, 1000);
    r->last_log = timeparse_mono_ns();
    uv_timer_init(ctl_loop(r->ctl), &r->drain_timer);
    r->drain_timer.data = r;
    int rc = 0;
    httpd_tls tls = { r->cfg.http_cert, r->cfg.http_key };
    if (ctl_listen(r->ctl, r->cfg.http, &tls, err, sizeof err) < 0) {
        log_error("%s", err);
        rc = 1;
    } else {
        ctl_status cs = { .version = MSCOPE_VERSION, .health = health, .fields = health_fields,
                          .metrics = metrics, .data = r, .metrics_token_file = r->cfg.metrics_token_file };
        if (ctl_serve_status(r->ctl, &cs, err, sizeof err) < 0) {
            log_error("%s", err);
            rc = 1;
        } else if (ctl_http(r->ctl)) {
            log_info("HTTP (health, metrics%s) on %s", r->cfg.metrics_token_file ? " with a token" : "",
                     r->cfg.http);
        }
        /* Every thread runs now: from here on only the calls they make. */
        if (!rc && r->cfg.seccomp && sandbox_seccomp("mscope-recorder", 0, err, sizeof err) < 0) {
            log_error("%s", err);
            rc = 1;
        }
        if (!rc) ctl_run(r->ctl);
    }
    uv_close((uv_handle_t *)&r->drain_timer, NULL);
    ctl_free(r->ctl);
    ingest_stats fin;
    memset(&fin, 0, sizeof fin);
    pthread_mutex_lock(&r->snap_mu);
    ingest_live_t *gone = r->live;
    ingest_live_stats(gone, &r->import_st); /* what it had, while it stops */
    r->live = NULL;
    pthread_mutex_unlock(&r->snap_mu);
    ingest_live_stop(gone, &fin);
    pthread_mutex_lock(&r->snap_mu);
    r->import_st = fin;
    pthread_mutex_unlock(&r->snap_mu);
    stop_writer(r);
    ingest_stats in;
    store_stats st;
    counters(r, &in, &st);
    write_stats_file(r);
    log_counters(&in, &st);
    return rc;
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: mscope-recorder --data-dir DIR [options]            record VXLAN from UDP (daemon)\n"
            "       mscope-recorder --data-dir DIR --interface IF       record a live interface\n"
            "       mscope-recorder --data-dir DIR --read FILE          import a pcap/pcapng file\n"
            "       mscope-recorder search --data-dir DIR [--from T] [--to T] -w OUT 'EXPR'\n"
            "                                                          (see: mscope-recorder search --help)\n\n"
            "Stores every packet in nanosecond pcap segments with an index beside each.\n"
            "Counters are in DIR/stats.json (refreshed every second) and logged on SIGUSR1;\n"
            "SIGHUP reads the token files again.\n\n"
            "options:\n");
    config_print_help(rec_opts, out);
}

/* Static: what h2o leaves of HTTP connections still open at exit stays
 * reachable (the loop hangs off it), rather than being reported as a leak. */
static recorder r;

/* The test hook of timeparse.h: MSCOPE_CLOCK_OFFSET_S=SECONDS makes this
 * recorder's wall clock that far off (the fault tests' recorder whose clock
 * is minutes off). Returns 0, or -1 when the value is not a number of
 * seconds within a day. */
static int clock_skew_hook(void)
{
    const char *s = getenv("MSCOPE_CLOCK_OFFSET_S");
    if (!s || !*s) return 0;
    char *end;
    double v = strtod(s, &end);
    if (*end || !(v >= -86400 && v <= 86400)) {
        fprintf(stderr, "mscope-recorder: MSCOPE_CLOCK_OFFSET_S: '%s' is not seconds within a day\n", s);
        return -1;
    }
    timeparse_set_skew_ns((int64_t)(v * 1e9));
    log_warn("MSCOPE_CLOCK_OFFSET_S (a test hook): this recorder's wall clock reads %+.3f s off", v);
    return 0;
}

int main(int argc, char **argv)
{
    log_init("mscope-recorder");
    if (argc > 1 && (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-V"))) {
        printf("mscope-recorder %s\n", MSCOPE_VERSION);
        return 0;
    }
    pthread_mutex_init(&r.snap_mu, NULL);
    pthread_mutex_init(&r.ana.mu, NULL);
    char err[1024];
    int help = 0, npos = 0;
    const char *pos[1];
    if (config_defaults(rec_opts, &r.cfg) < 0) return 2;
    int rc = 2;
    if (config_parse_args(rec_opts, &r.cfg, argc, argv, 1, pos, 0, &npos, &help, err, sizeof err) < 0) {
        fprintf(stderr, "mscope-recorder: %s\n", err);
        goto out;
    }
    if (help) {
        usage(stdout);
        rc = 0;
        goto out;
    }
    if (log_set_level(r.cfg.log_level) < 0) {
        fprintf(stderr, "mscope-recorder: --log-level: '%s' is not error/warn/info/debug\n", r.cfg.log_level);
        goto out;
    }
    if (!r.cfg.data_dir &&
        !(r.cfg.read && (r.cfg.flows_json || r.cfg.app_json || r.cfg.coordinator))) {
        fprintf(stderr, "mscope-recorder: --data-dir is required (or --read FILE with --flows-json "
                        "OUT, --app-json OUT and/or --coordinator for analysis only; see --help)\n");
        goto out;
    }
    if ((r.cfg.flows_json || r.cfg.app_json) && r.cfg.no_analysis) {
        fprintf(stderr, "mscope-recorder: --%s needs the analysis (drop --no-analysis)\n",
                r.cfg.flows_json ? "flows-json" : "app-json");
        goto out;
    }
    if (r.cfg.app_json && !r.cfg.app) {
        fprintf(stderr, "mscope-recorder: --app-json needs the application records (drop --app=no)\n");
        goto out;
    }
    if (r.cfg.app_json || r.cfg.coordinator) {
        uint8_t ports[8192];
        if (appana_parse_ports(r.cfg.app_dns_ports, ports, err, sizeof err) < 0) {
            fprintf(stderr, "mscope-recorder: --app-dns-ports: %s\n", err);
            goto out;
        }
    }
    if (r.cfg.node_id) {
        snprintf(r.node, sizeof r.node, "%s", r.cfg.node_id);
    } else {
        char host[200] = "recorder";
        gethostname(host, sizeof host - 1);
        const char *port = strrchr(r.cfg.listen, ':');
        snprintf(r.node, sizeof r.node, "%s:%s", host, port ? port + 1 : "4789");
    }
    if (r.cfg.flows_json) {
        r.json = strcmp(r.cfg.flows_json, "-") == 0 ? stdout : fopen(r.cfg.flows_json, "w");
        if (!r.json) {
            fprintf(stderr, "mscope-recorder: cannot create %s: %s\n", r.cfg.flows_json, strerror(errno));
            rc = 1;
            goto out;
        }
    }
    if (r.cfg.app_json) {
        r.app_out = strcmp(r.cfg.app_json, "-") == 0 ? stdout : fopen(r.cfg.app_json, "w");
        if (!r.app_out) {
            fprintf(stderr, "mscope-recorder: cannot create %s: %s\n", r.cfg.app_json, strerror(errno));
            rc = 1;
            goto out;
        }
    }
    if (strcmp(r.cfg.decap, "none") && strcmp(r.cfg.decap, "vxlan")) {
        fprintf(stderr, "mscope-recorder: --decap: '%s' is not none or vxlan\n", r.cfg.decap);
        goto out;
    }
    if (r.cfg.read && r.cfg.interface) {
        fprintf(stderr, "mscope-recorder: --read and --interface exclude each other\n");
        goto out;
    }
    /* A daemon's signals go through its control loop (run_daemon). Until
     * that loop takes them, SIGHUP and SIGUSR1 are ignored, not fatal: a
     * 'systemctl reload' during a long start (a crash repair of the store)
     * must not end the recorder, which systemd would count as a clean
     * exit. An import keeps the defaults (a closed terminal ends it). */
    signal(SIGPIPE, SIG_IGN);
    if (!r.cfg.read) {
        signal(SIGHUP, SIG_IGN);
        signal(SIGUSR1, SIG_IGN);
    }
    if (clock_skew_hook() < 0) goto out;
    r.start_ns = timeparse_now_ns();
    if (sandbox_drop_user(r.cfg.user, r.cfg.interface != NULL, err, sizeof err) < 0) {
        log_error("%s", err);
        rc = 1;
        goto out;
    }
    if (!r.cfg.read && ctl_metrics_token_check(r.cfg.metrics_token_file, err, sizeof err) < 0) {
        log_error("metrics-token-file: %s", err); /* before anything is recorded */
        rc = 1;
        goto out;
    }
    /* Before the threads start: they all read it (a data race when the
     * import set it after them, found by ThreadSanitizer). */
    r.import_mode = r.cfg.read != NULL;
    if (load_keys(&r) < 0 || start_search(&r) < 0 || start_publisher(&r) < 0 ||
        start_writer(&r) < 0) {
        recout_stop(r.out);
        publish_stop(r.pub, 0);
        searchsvc_stop(r.search);
        rc = 1;
        goto out;
    }
    rc = r.cfg.read ? run_import(&r) : run_daemon(&r);
    publish_stop(r.pub, 5000);
    searchsvc_stop(r.search);
out:
    if (r.json && r.json != stdout) fclose(r.json);
    if (r.app_out && r.app_out != stdout) fclose(r.app_out);
    config_free(rec_opts, &r.cfg);
    pthread_mutex_destroy(&r.snap_mu);
    pthread_mutex_destroy(&r.ana.mu);
    return rc;
}
