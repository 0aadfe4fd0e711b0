/* dbpool.c - database jobs on libuv's thread pool (see dbpool.h). */
#include "dbpool.h"

#include "log.h"
#include "timeparse.h"
#include "xmalloc.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DBPOOL_MAX 16
#define DBPOOL_RETRY_NS 1000000000LL
#define DBPOOL_NICE 10

struct dbpool {
    uv_loop_t *loop;
    char *conninfo;
    pthread_mutex_t mu;
    db_t *idle[DBPOOL_MAX];  /* under mu */
    int nidle;               /* under mu */
    int64_t last_fail;       /* under mu: when a connect last failed */
    int busy;                /* loop thread only */
};

typedef struct dbpool_job {
    uv_work_t req;
    dbpool_t *pool;
    dbpool_work_fn work;
    dbpool_done_fn done;
    void *arg;
    int rc;
    char err[1024];
    /* libuv hands a job to its thread and back under locks of its own,
     * which ThreadSanitizer cannot see in an uninstrumented libuv; this
     * release/acquire pair states the hand-over where it can (one atomic
     * beside a database round trip costs nothing). */
    _Atomic int handoff;
} dbpool_job;

dbpool_t *dbpool_new(uv_loop_t *loop, const char *conninfo)
{
    dbpool_t *p = xcalloc(1, sizeof *p);
    p->loop = loop;
    p->conninfo = xstrdup(conninfo ? conninfo : "");
    pthread_mutex_init(&p->mu, NULL);
    return p;
}

/* A connection for this job: an idle one, or a new one unless the last
 * attempt failed within the second. NULL with err set. */
static db_t *dbpool__take(dbpool_t *p, char *err, size_t errlen)
{
    pthread_mutex_lock(&p->mu);
    if (p->nidle) {
        db_t *d = p->idle[--p->nidle];
        pthread_mutex_unlock(&p->mu);
        return d;
    }
    int64_t now = timeparse_mono_ns();
    int recent = p->last_fail && now - p->last_fail < DBPOOL_RETRY_NS;
    pthread_mutex_unlock(&p->mu);
    if (recent) {
        snprintf(err, errlen, "the database is not reachable right now");
        return NULL;
    }
    char e[1024];
    db_t *d = db_open(p->conninfo, e, sizeof e);
    /* Queries and housekeeping yield the CPU to the writers' COPY: on a
     * small machine an API client paging through flows, or an index build,
     * must not slow the bus. */
    if (d) db_lower_priority(d, DBPOOL_NICE);
    if (!d) {
        log_warn("database unreachable for queries: %s", e);
        snprintf(err, errlen, "the database is not reachable right now");
        pthread_mutex_lock(&p->mu);
        p->last_fail = timeparse_mono_ns();
        pthread_mutex_unlock(&p->mu);
        return NULL;
    }
    return d;
}

static void dbpool__give(dbpool_t *p, db_t *d)
{
    if (!db_ok(d)) {
        db_close(d);
        return;
    }
    pthread_mutex_lock(&p->mu);
    if (p->nidle < DBPOOL_MAX) {
        p->idle[p->nidle++] = d;
        d = NULL;
    }
    pthread_mutex_unlock(&p->mu);
    db_close(d);
}

static void dbpool__work(uv_work_t *req)
{
    dbpool_job *j = (dbpool_job *)req; /* req is its first member: nothing read before the acquire */
    (void)atomic_load_explicit(&j->handoff, memory_order_acquire);
    db_t *d = dbpool__take(j->pool, j->err, sizeof j->err);
    if (!d) {
        j->rc = DBPOOL_UNREACHABLE;
    } else {
        j->rc = j->work(d, j->arg, j->err, sizeof j->err);
        dbpool__give(j->pool, d);
    }
    atomic_store_explicit(&j->handoff, 2, memory_order_release);
}

static void dbpool__after(uv_work_t *req, int status)
{
    dbpool_job *j = (dbpool_job *)req;
    (void)atomic_load_explicit(&j->handoff, memory_order_acquire);
    j->pool->busy--;
    if (status == UV_ECANCELED) {
        j->rc = -1;
        snprintf(j->err, sizeof j->err, "cancelled");
    }
    j->done(j->arg, j->rc, j->err);
    free(j);
}

void dbpool_submit(dbpool_t *p, dbpool_work_fn work, dbpool_done_fn done, void *arg)
{
    dbpool_job *j = xcalloc(1, sizeof *j);
    j->pool = p;
    j->work = work;
    j->done = done;
    j->arg = arg;
    j->req.data = j;
    atomic_store_explicit(&j->handoff, 1, memory_order_release);
    p->busy++;
    int rc = uv_queue_work(p->loop, &j->req, dbpool__work, dbpool__after);
    if (rc < 0) { /* only for a NULL callback: a programming error */
        log_error("uv_queue_work() failed: %s", uv_strerror(rc));
        abort();
    }
}

int dbpool_busy(const dbpool_t *p) { return p->busy; }


void dbpool_free(dbpool_t *p)
{
    if (!p) return;
    for (int i = 0; i < p->nidle; i++) db_close(p->idle[i]);
    pthread_mutex_destroy(&p->mu);
    free(p->conninfo);
    free(p);
}
