/* recout.c - the output thread of --flows-json (recout.h).
 *
 * DESIGN: a ring of record copies under a mutex. The producer writes at the
 * ring's tail; the thread takes what is queued at once, formats and writes
 * it without the lock (the producer never writes those slots: they stay
 * counted until done), then gives the slots back. The producer wakes the
 * thread only when it sleeps and a batch has gathered (or at stop), not per
 * record; the thread's timed wait picks up a trickle. Lines go out through
 * a lineout (lineout.h: a write() per ~250 records), flushed when the
 * thread has been idle 50 ms and at least once a second while records keep
 * coming.
 */
#include "recout.h"

#include "lineout.h"
#include "log.h"
#include "xmalloc.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define RECOUT_QUEUE 1024 /* records: 408 KiB */
#define RECOUT_WAKE 64    /* records gathered before a sleeping thread is woken */
#define RECOUT_IDLE_MS 50
#define RECOUT_LINE 4096 /* room for a line (flowrec.h: 2 KiB suffice) */

struct recout {
    const char *node;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t work, room;
    flowrec *ring;
    uint32_t head, count;
    int stop, sleeping, waiting; /* waiting: the producer, for room */
    lineout lines;               /* the thread's */
};

void recout_flow(recout_t *o, const flowrec *r)
{
    pthread_mutex_lock(&o->mu);
    while (o->count == RECOUT_QUEUE) {
        o->waiting = 1;
        if (o->sleeping) pthread_cond_signal(&o->work);
        pthread_cond_wait(&o->room, &o->mu);
    }
    o->ring[(o->head + o->count) % RECOUT_QUEUE] = *r;
    o->count++;
    if (o->sleeping && o->count >= RECOUT_WAKE) pthread_cond_signal(&o->work);
    pthread_mutex_unlock(&o->mu);
}

/* Waits up to RECOUT_IDLE_MS for records (the lock held); after a wait in
 * which none came, flushes the file (without the lock). */
static void recout__idle(recout_t *o)
{
    o->sleeping = 1;
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_nsec += RECOUT_IDLE_MS * 1000000L;
    if (until.tv_nsec >= 1000000000L) until.tv_sec++, until.tv_nsec -= 1000000000L;
    int rc = pthread_cond_timedwait(&o->work, &o->mu, &until);
    o->sleeping = 0;
    if (rc == ETIMEDOUT && !o->count) {
        pthread_mutex_unlock(&o->mu);
        lineout_flush(&o->lines);
        pthread_mutex_lock(&o->mu);
    }
}

static void *recout__main(void *arg)
{
    recout_t *o = arg;
    pthread_setname_np(pthread_self(), "mscope-output");
    pthread_mutex_lock(&o->mu);
    for (;;) {
        uint32_t n = o->count, head = o->head;
        if (!n) {
            if (o->stop) break;
            recout__idle(o);
            continue;
        }
        pthread_mutex_unlock(&o->mu);
        for (uint32_t i = 0; i < n; i++) {
            char *line = lineout_line(&o->lines, RECOUT_LINE);
            lineout_commit(&o->lines, flowrec_json(&o->ring[(head + i) % RECOUT_QUEUE], o->node,
                                                   line, RECOUT_LINE));
        }
        lineout_tick(&o->lines);
        pthread_mutex_lock(&o->mu);
        o->head = (head + n) % RECOUT_QUEUE;
        o->count -= n;
        if (o->waiting) {
            o->waiting = 0;
            pthread_cond_signal(&o->room);
        }
    }
    pthread_mutex_unlock(&o->mu);
    lineout_flush(&o->lines);
    log_thread_cpu("output");
    return NULL;
}

recout_t *recout_start(FILE *out, const char *node)
{
    recout_t *o = xcalloc(1, sizeof *o);
    o->node = node;
    o->ring = xmalloc(RECOUT_QUEUE * sizeof *o->ring);
    lineout_init(&o->lines, out);
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
        o->stop = 1; /* nothing to join */
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
    free(o->ring);
    lineout_free(&o->lines);
    free(o);
}
