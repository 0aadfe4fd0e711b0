/* writer.c - the database writer thread (see writer.h). */
#include "writer.h"

#include "log.h"
#include "timeparse.h"
#include "xmalloc.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct writer {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    batch_t *inbox;   /* handed over, not yet written (under mu) */
    batch_t *spare;   /* the empty one to give back (under mu) */
    int stop;          /* under mu */
    writer_stats st;   /* under mu */
    /* the thread's own */
    char *conninfo;
    db_t *db;
    spool_t *spool;
    batch_t *replay;
    int64_t last_try;
    int replayer;
    void (*on_idle)(void *);
    void *on_idle_arg;
    metrics_hist *latency;
};

static void writer__count(writer_t *w, uint64_t written, uint64_t batches, uint64_t dropped,
                          uint64_t errors)
{
    pthread_mutex_lock(&w->mu);
    w->st.records_written += written;
    w->st.batches_written += batches;
    w->st.records_dropped += dropped;
    w->st.db_errors += errors;
    w->st.connected = w->db != NULL;
    w->st.records_spooled = spool_records(w->spool);
    w->st.spool_bytes = spool_bytes(w->spool);
    pthread_mutex_unlock(&w->mu);
}

/* A batch written (or dropped): its flow records apart from its
 * application records. */
static void writer__count_batch(writer_t *w, const batch_t *b, int written, int dropped,
                                uint64_t errors)
{
    uint64_t flows = batch_flow_records(b), apps = batch_app_records(b);
    writer__count(w, written ? flows : 0, written ? 1 : 0, dropped ? flows : 0, errors);
    pthread_mutex_lock(&w->mu);
    if (written) w->st.app_written += apps;
    if (dropped) w->st.app_dropped += apps;
    pthread_mutex_unlock(&w->mu);
}

static void writer__reconnect(writer_t *w)
{
    char err[1024];
    int64_t now = timeparse_mono_ns();
    if (w->db || now - w->last_try < 1000000000LL) return;
    w->last_try = now;
    w->db = db_open(w->conninfo, err, sizeof err);
    if (!w->db) log_warn("database unreachable: %s", err);
    else log_info("writer connected to the database");
    writer__count(w, 0, 0, 0, 0);
}

static void writer__failed(writer_t *w, uint64_t n, const char *err)
{
    log_warn("writing %" PRIu64 " flow records failed, kept for later: %s", n, err);
    if (!db_ok(w->db)) {
        db_close(w->db);
        w->db = NULL;
    }
    writer__count(w, 0, 0, 0, 1);
}

/* To the spool; what even the spool cannot keep is counted as dropped. */
static void writer__spill(writer_t *w, const batch_t *b)
{
    writer__count_batch(w, b, 0, spool_append(w->spool, b) < 0, 0);
}

/* Write the spool back, oldest first. Returns 0 when it is empty. */
static int writer__replay(writer_t *w)
{
    char err[1024];
    int rc;
    while (w->db && (rc = spool_peek(w->spool, w->replay)) == 1) {
        uint64_t n = batch_records(w->replay);
        int rc_w = db_write(w->db, w->replay, err, sizeof err);
        if (rc_w < 0) {
            if (rc_w == -2) {
                /* Connected, yet refused: the rows themselves are the
                 * problem. Set them aside rather than block everything. */
                spool_quarantine(w->spool);
                writer__count_batch(w, w->replay, 0, 1, 1);
                continue;
            }
            writer__failed(w, n, err);
            return -1;
        }
        spool_pop(w->spool);
        writer__count_batch(w, w->replay, 1, 0, 0);
        log_info("wrote %" PRIu64 " spooled records (%" PRIu64 " left on disk)", n,
                 spool_records(w->spool));
    }
    if (!w->db) return -1;
    if (rc < 0) {
        log_error("a spool file cannot be read; it stays for an operator to look at");
        return -1;
    }
    return 0;
}

static void writer__write(writer_t *w, batch_t *b)
{
    char err[1024];
    writer__reconnect(w);
    if (!w->db || (w->replayer && spool_records(w->spool) && writer__replay(w) < 0)) {
        writer__spill(w, b); /* behind the spool, in order */
        return;
    }
    int64_t t0 = timeparse_mono_ns();
    int rc = db_write(w->db, b, err, sizeof err);
    if (rc == 0) {
        int64_t took = timeparse_mono_ns() - t0;
        log_debug("wrote %" PRIu64 " records in %.1f ms", batch_records(b), (double)took / 1e6);
        if (w->latency) metrics_hist_observe(w->latency, (double)took / 1e9);
        writer__count_batch(w, b, 1, 0, 0);
        return;
    }
    if (rc == -2) {
        /* Refused, not lost: keep it for an operator rather than retry forever. */
        log_error("the database refused a batch of %" PRIu64 " records: %s", batch_records(b), err);
        if (spool_append(w->spool, b) == 0) spool_quarantine(w->spool);
        writer__count_batch(w, b, 0, 1, 1);
        return;
    }
    writer__failed(w, batch_records(b), err);
    writer__spill(w, b);
}

static void *writer__main(void *arg)
{
    writer_t *w = arg;
    pthread_setname_np(pthread_self(), "mscope-dbwrite");
    writer__reconnect(w); /* at once: health checks read the connected flag */
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->inbox && !w->stop) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += 1;
            if (pthread_cond_timedwait(&w->cv, &w->mu, &ts) != 0) break; /* a second: retry */
        }
        batch_t *b = w->inbox;
        int stop = w->stop;
        pthread_mutex_unlock(&w->mu);
        if (b) {
            writer__write(w, b);
            batch_clear(b);
        } else if (w->replayer && spool_records(w->spool)) {
            writer__reconnect(w);
            writer__replay(w);
        }
        pthread_mutex_lock(&w->mu);
        if (b) {
            w->inbox = NULL;
            w->spare = b;
            if (w->on_idle) {
                pthread_mutex_unlock(&w->mu);
                w->on_idle(w->on_idle_arg);
                pthread_mutex_lock(&w->mu);
            }
        }
        if (stop && !w->inbox) break;
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

writer_t *writer_start(const char *conninfo, spool_t *spool, int replayer,
                       void (*on_idle)(void *), void *arg, metrics_hist *latency)
{
    writer_t *w = xcalloc(1, sizeof *w);
    w->latency = latency;
    w->on_idle = on_idle;
    w->on_idle_arg = arg;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    w->conninfo = xstrdup(conninfo ? conninfo : "");
    w->spool = spool;
    w->replayer = replayer;
    w->replay = batch_new();
    w->spare = batch_new();
    w->st.records_spooled = spool_records(spool);
    w->st.spool_bytes = spool_bytes(spool);
    int rc = pthread_create(&w->thread, NULL, writer__main, w);
    if (rc) {
        log_error("pthread_create() failed: %s", strerror(rc));
        abort(); /* as out of memory: nothing sensible to do without threads */
    }
    return w;
}

int writer_busy(writer_t *w)
{
    pthread_mutex_lock(&w->mu);
    int busy = w->inbox != NULL;
    pthread_mutex_unlock(&w->mu);
    return busy;
}

int writer_offer(writer_t *w, batch_t **b)
{
    pthread_mutex_lock(&w->mu);
    int taken = !w->inbox && w->spare;
    if (taken) {
        w->inbox = *b;
        *b = w->spare;
        w->spare = NULL;
        pthread_cond_signal(&w->cv);
    }
    pthread_mutex_unlock(&w->mu);
    return taken;
}

void writer_get_stats(writer_t *w, writer_stats *out)
{
    pthread_mutex_lock(&w->mu);
    *out = w->st;
    pthread_mutex_unlock(&w->mu);
}

void writer_stop(writer_t *w, writer_stats *final)
{
    if (!w) return;
    pthread_mutex_lock(&w->mu);
    w->stop = 1;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    if (final) *final = w->st;
    db_close(w->db);
    batch_free(w->spare); /* the one it holds: batches move between writers */
    batch_free(w->inbox);
    batch_free(w->replay);
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    free(w->conninfo);
    free(w);
}
