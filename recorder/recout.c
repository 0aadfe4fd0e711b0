/* recout.c - the output thread of --flows-json and --app-json (recout.h).
 *
 * DESIGN: two rings of record copies (flow records 408 bytes, application
 * records ~5 KiB, so their ring is shorter) under one mutex. The producer
 * writes at a ring's tail; the thread takes what is queued at once, formats
 * and writes it without the lock (the producer never writes those slots:
 * they stay counted until done), then gives the slots back. The producer
 * wakes the thread only when it sleeps and a batch has gathered (or at
 * stop), not per record; the thread's timed wait picks up a trickle.
 */
#include "recout.h"

#include "log.h"
#include "xmalloc.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define RECOUT_FLOWS 1024 /* 408 KiB */
#define RECOUT_APPS 128   /* 660 KiB */
#define RECOUT_WAKE 64    /* records gathered before a sleeping thread is woken */
#define RECOUT_IDLE_MS 50

typedef struct recout_ring {
    void *slots;
    size_t size; /* of a slot */
    uint32_t cap, head, count;
} recout_ring;

struct recout {
    FILE *flows, *app;
    const char *node;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t work, room;
    recout_ring fr, ar;
    int stop, sleeping, waiting; /* waiting: the producer, for room */
    char line[APPREC_JSON_MAX];  /* the thread's; flow records need less */
};

static void *recout__slot(const recout_ring *g, uint32_t i)
{
    return (char *)g->slots + (size_t)(i % g->cap) * g->size;
}

static void recout__put(recout_t *o, recout_ring *g, const void *rec)
{
    pthread_mutex_lock(&o->mu);
    while (g->count == g->cap) {
        o->waiting = 1;
        if (o->sleeping) pthread_cond_signal(&o->work);
        pthread_cond_wait(&o->room, &o->mu);
    }
    memcpy(recout__slot(g, g->head + g->count), rec, g->size);
    g->count++;
    if (o->sleeping && o->fr.count + o->ar.count >= RECOUT_WAKE) pthread_cond_signal(&o->work);
    pthread_mutex_unlock(&o->mu);
}

void recout_flow(recout_t *o, const flowrec *r) { recout__put(o, &o->fr, r); }
void recout_app(recout_t *o, const apprec *r) { recout__put(o, &o->ar, r); }

static void recout__line(FILE *f, char *line, int n)
{
    if (n <= 0) return;
    line[n] = '\n';
    fwrite(line, 1, (size_t)n + 1, f);
}

static void *recout__main(void *arg)
{
    recout_t *o = arg;
    pthread_setname_np(pthread_self(), "mscope-output");
    pthread_mutex_lock(&o->mu);
    for (;;) {
        uint32_t nf = o->fr.count, na = o->ar.count;
        if (!nf && !na) {
            if (o->stop) break;
            o->sleeping = 1;
            struct timespec until;
            clock_gettime(CLOCK_MONOTONIC, &until);
            until.tv_nsec += RECOUT_IDLE_MS * 1000000L;
            if (until.tv_nsec >= 1000000000L) until.tv_sec++, until.tv_nsec -= 1000000000L;
            int rc = pthread_cond_timedwait(&o->work, &o->mu, &until);
            o->sleeping = 0;
            if (rc == ETIMEDOUT && !o->fr.count && !o->ar.count) {
                pthread_mutex_unlock(&o->mu);
                if (o->flows) fflush(o->flows);
                if (o->app) fflush(o->app);
                pthread_mutex_lock(&o->mu);
            }
            continue;
        }
        uint32_t fh = o->fr.head, ah = o->ar.head;
        pthread_mutex_unlock(&o->mu);
        for (uint32_t i = 0; i < nf; i++)
            recout__line(o->flows, o->line,
                         flowrec_json(recout__slot(&o->fr, fh + i), o->node, o->line, sizeof o->line - 1));
        for (uint32_t i = 0; i < na; i++)
            recout__line(o->app, o->line,
                         apprec_json(recout__slot(&o->ar, ah + i), o->node, o->line, sizeof o->line - 1));
        pthread_mutex_lock(&o->mu);
        o->fr.head = (fh + nf) % o->fr.cap;
        o->fr.count -= nf;
        o->ar.head = (ah + na) % o->ar.cap;
        o->ar.count -= na;
        if (o->waiting) {
            o->waiting = 0;
            pthread_cond_signal(&o->room);
        }
    }
    pthread_mutex_unlock(&o->mu);
    if (o->flows) fflush(o->flows);
    if (o->app) fflush(o->app);
    return NULL;
}

recout_t *recout_start(FILE *flows, FILE *app, const char *node)
{
    recout_t *o = xcalloc(1, sizeof *o);
    o->flows = flows;
    o->app = app;
    o->node = node;
    o->fr = (recout_ring){ .size = sizeof(flowrec), .cap = RECOUT_FLOWS };
    o->ar = (recout_ring){ .size = sizeof(apprec), .cap = RECOUT_APPS };
    if (flows) o->fr.slots = xmalloc(o->fr.cap * o->fr.size);
    if (app) o->ar.slots = xmalloc(o->ar.cap * o->ar.size);
    pthread_mutex_init(&o->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&o->work, &ca);
    pthread_condattr_destroy(&ca);
    pthread_cond_init(&o->room, NULL);
    int rc = pthread_create(&o->thread, NULL, recout__main, o);
    if (rc) {
        log_error("cannot start the output thread: %s", strerror(rc));
        o->stop = 1;
        recout_stop(o);
        return NULL;
    }
    return o;
}

void recout_stop(recout_t *o)
{
    if (!o) return;
    if (!o->stop) {
        pthread_mutex_lock(&o->mu);
        o->stop = 1;
        pthread_cond_signal(&o->work);
        pthread_mutex_unlock(&o->mu);
        pthread_join(o->thread, NULL);
    }
    pthread_cond_destroy(&o->work);
    pthread_cond_destroy(&o->room);
    pthread_mutex_destroy(&o->mu);
    free(o->fr.slots);
    free(o->ar.slots);
    free(o);
}
