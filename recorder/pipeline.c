/* pipeline.c - batch queue between ingest threads and the writer (see pipeline.h). */
#include "pipeline.h"

#include "xmalloc.h"

#include <pthread.h>
#include <stdlib.h>
#include <time.h>

typedef struct stage {
    pthread_cond_t has;
    pipe_batch **ring; /* FIFO */
    unsigned head, count;
    int closed;
} stage;

/* A waiting producer's wait for a free batch this long means a consumer
 * stalled (descheduled for others' work, or its virtual CPU stolen): the
 * room widens then. A stage takes ~0.25 ms a batch at 2 M packets/s; 1 ms
 * widened it on an idle machine too (the threads' own time slices), 5 ms
 * kept 8 there and widened under load (docs/BENCHMARKS.md). */
#define PIPE_STALL_MS 5
/* Batches taken with no stall before the room narrows by one again. */
#define PIPE_CALM 16
/* A producer waiting for room is woken when this many batches are free in
 * it (half of a smaller room), not at every one given back: it then fills
 * them in a row. Woken at each, the reader of an import slept and woke once
 * a batch, and on this VM each wake-up is an interprocessor interrupt and
 * two context switches: 4 took the full pipeline's CPU 0.49 -> 0.41 s
 * (docs/BENCHMARKS.md). */
#define PIPE_WAKE 4

struct pipeline {
    pthread_mutex_t mu;
    pthread_cond_t has_free;
    pipe_batch **free_list;
    unsigned nfree, cap;
    /* A waiting producer's room (see pipeline_new): batches out (taken,
     * not given back) at most `room`, between `hot` and cap. */
    unsigned out, room, hot, calm;
    stage st[3];
    pipe_batch *all;
};

pipeline_t *pipeline_new(unsigned nbatches, unsigned hot)
{
    pipeline_t *p = xcalloc(1, sizeof *p);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->has_free, NULL);
    p->cap = nbatches;
    p->hot = p->room = hot && hot < nbatches ? hot : nbatches;
    p->all = xcalloc(nbatches, sizeof *p->all);
    p->free_list = xcalloc(nbatches, sizeof *p->free_list);
    for (int s = 0; s < 3; s++) {
        pthread_cond_init(&p->st[s].has, NULL);
        p->st[s].ring = xcalloc(nbatches, sizeof *p->st[s].ring);
    }
    for (unsigned i = 0; i < nbatches; i++) p->free_list[p->nfree++] = &p->all[i];
    return p;
}

void pipeline_free(pipeline_t *p)
{
    if (!p) return;
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->has_free);
    for (int s = 0; s < 3; s++) {
        pthread_cond_destroy(&p->st[s].has);
        free(p->st[s].ring);
    }
    for (unsigned i = 0; i < p->cap; i++) free(p->all[i].ev.ev);
    free(p->all);
    free(p->free_list);
    free(p);
}

unsigned pipeline_room(pipeline_t *p)
{
    pthread_mutex_lock(&p->mu);
    unsigned room = p->room;
    pthread_mutex_unlock(&p->mu);
    return room;
}

/* Wait for a batch given back, PIPE_STALL_MS at most: 0 when one was. */
static int pipeline__wait_free(pipeline_t *p)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_nsec += PIPE_STALL_MS * 1000000L;
    until.tv_sec += until.tv_nsec / 1000000000L;
    until.tv_nsec %= 1000000000L;
    return pthread_cond_timedwait(&p->has_free, &p->mu, &until);
}

pipe_batch *pipeline_get(pipeline_t *p, int wait)
{
    pipe_batch *b = NULL;
    pthread_mutex_lock(&p->mu);
    if (wait) {
        while (!p->st[0].closed && (!p->nfree || p->out >= p->room)) {
            if (pipeline__wait_free(p) && p->nfree && p->out >= p->room) {
                /* Stalled, and only the room held the producer back:
                 * double it, so that it can run ahead while the consumer
                 * is away, as with a deep queue. */
                p->room = p->room * 2 < p->cap ? p->room * 2 : p->cap;
                p->calm = 0;
            }
        }
        if (p->room > p->hot && ++p->calm >= PIPE_CALM) {
            p->room--;
            p->calm = 0;
        }
    }
    if (p->nfree && !p->st[0].closed) {
        b = p->free_list[--p->nfree];
        p->out++;
    }
    pthread_mutex_unlock(&p->mu);
    if (b) {
        b->n = 0;
        b->used = 0;
        b->ev.n = 0;
    }
    return b;
}

void pipe_events_add(pipe_events *e, uint32_t pos, uint64_t flow_id)
{
    if (e->n == e->cap) {
        size_t cap = e->cap;
        xgrow((void **)&e->ev, &cap, (size_t)e->n + 1, sizeof *e->ev);
        e->cap = (uint32_t)cap;
    }
    e->ev[e->n++] = (pipe_event){ .flow_id = flow_id, .pos = pos };
}

static void pipeline__give_back(pipeline_t *p, pipe_batch *b)
{
    p->out--;
    p->free_list[p->nfree++] = b;
    unsigned wake = p->room / 2; /* free batches that wake a waiting producer */
    if (wake > PIPE_WAKE) wake = PIPE_WAKE;
    if (wake < 1) wake = 1;
    if (p->out + wake > p->room) return; /* it sleeps on */
    pthread_cond_signal(&p->has_free);
}

static void pipeline__enqueue(pipeline_t *p, int s, pipe_batch *b)
{
    stage *st = &p->st[s];
    st->ring[(st->head + st->count) % p->cap] = b;
    st->count++;
    pthread_cond_signal(&st->has);
}

void pipeline_submit(pipeline_t *p, pipe_batch *b)
{
    pthread_mutex_lock(&p->mu);
    if (!b->n) pipeline__give_back(p, b);
    else pipeline__enqueue(p, 0, b);
    pthread_mutex_unlock(&p->mu);
}

void pipeline_pass(pipeline_t *p, int s, pipe_batch *b)
{
    pthread_mutex_lock(&p->mu);
    pipeline__enqueue(p, s + 1, b);
    pthread_mutex_unlock(&p->mu);
}

/* Wait (p->mu held) up to timeout_ms for a batch queued at stage st or its
 * closing. */
static void pipeline__wait(pipeline_t *p, stage *st, int timeout_ms)
{
    if (st->count || st->closed || timeout_ms <= 0) return;
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_nsec += (long)timeout_ms * 1000000L;
    until.tv_sec += until.tv_nsec / 1000000000L;
    until.tv_nsec %= 1000000000L;
    while (!st->count && !st->closed)
        if (pthread_cond_timedwait(&st->has, &p->mu, &until)) break;
}

int pipeline_wait(pipeline_t *p, int s, int timeout_ms)
{
    pthread_mutex_lock(&p->mu);
    pipeline__wait(p, &p->st[s], timeout_ms);
    int queued = p->st[s].count != 0;
    pthread_mutex_unlock(&p->mu);
    return queued;
}

unsigned pipeline_queued(pipeline_t *p, int s)
{
    pthread_mutex_lock(&p->mu);
    unsigned n = p->st[s].count;
    pthread_mutex_unlock(&p->mu);
    return n;
}

pipe_batch *pipeline_next(pipeline_t *p, int s, int timeout_ms)
{
    stage *st = &p->st[s];
    pipe_batch *b = NULL;
    pthread_mutex_lock(&p->mu);
    pipeline__wait(p, st, timeout_ms);
    if (st->count) {
        b = st->ring[st->head];
        st->head = (st->head + 1) % p->cap;
        st->count--;
    }
    pthread_mutex_unlock(&p->mu);
    return b;
}

void pipeline_release(pipeline_t *p, pipe_batch *b)
{
    pthread_mutex_lock(&p->mu);
    pipeline__give_back(p, b);
    pthread_mutex_unlock(&p->mu);
}

void pipeline_close(pipeline_t *p, int s)
{
    pthread_mutex_lock(&p->mu);
    p->st[s].closed = 1;
    pthread_cond_broadcast(&p->st[s].has);
    if (s == 0) pthread_cond_broadcast(&p->has_free);
    pthread_mutex_unlock(&p->mu);
}

int pipeline_drained(pipeline_t *p, int s)
{
    pthread_mutex_lock(&p->mu);
    int d = p->st[s].closed && !p->st[s].count;
    pthread_mutex_unlock(&p->mu);
    return d;
}
