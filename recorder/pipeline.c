/* pipeline.c - batch queue between ingest threads and the writer (see pipeline.h). */
#include "pipeline.h"

#include "xmalloc.h"

#include <pthread.h>
#include <stdlib.h>
#include <time.h>

struct pipeline {
    pthread_mutex_t mu;
    pthread_cond_t has_free, has_full;
    pipe_batch **free_list;
    unsigned nfree;
    pipe_batch **ring; /* filled batches, FIFO */
    unsigned head, count, cap;
    pipe_batch *all;
    int closed;
};

pipeline_t *pipeline_new(unsigned nbatches)
{
    pipeline_t *p = xcalloc(1, sizeof *p);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->has_free, NULL);
    pthread_cond_init(&p->has_full, NULL);
    p->cap = nbatches;
    p->all = xcalloc(nbatches, sizeof *p->all);
    p->free_list = xcalloc(nbatches, sizeof *p->free_list);
    p->ring = xcalloc(nbatches, sizeof *p->ring);
    for (unsigned i = 0; i < nbatches; i++) p->free_list[p->nfree++] = &p->all[i];
    return p;
}

void pipeline_free(pipeline_t *p)
{
    if (!p) return;
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->has_free);
    pthread_cond_destroy(&p->has_full);
    free(p->all);
    free(p->free_list);
    free(p->ring);
    free(p);
}

pipe_batch *pipeline_get(pipeline_t *p, int wait)
{
    pipe_batch *b = NULL;
    pthread_mutex_lock(&p->mu);
    while (wait && !p->nfree && !p->closed) pthread_cond_wait(&p->has_free, &p->mu);
    if (p->nfree && !p->closed) b = p->free_list[--p->nfree];
    pthread_mutex_unlock(&p->mu);
    if (b) {
        b->n = 0;
        b->used = 0;
    }
    return b;
}

static void pipeline__give_back(pipeline_t *p, pipe_batch *b)
{
    p->free_list[p->nfree++] = b;
    pthread_cond_signal(&p->has_free);
}

void pipeline_submit(pipeline_t *p, pipe_batch *b)
{
    pthread_mutex_lock(&p->mu);
    if (!b->n) {
        pipeline__give_back(p, b);
    } else {
        p->ring[(p->head + p->count) % p->cap] = b;
        p->count++;
        pthread_cond_signal(&p->has_full);
    }
    pthread_mutex_unlock(&p->mu);
}

pipe_batch *pipeline_next(pipeline_t *p, int timeout_ms)
{
    pipe_batch *b = NULL;
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_nsec += (long)timeout_ms * 1000000L;
    until.tv_sec += until.tv_nsec / 1000000000L;
    until.tv_nsec %= 1000000000L;
    pthread_mutex_lock(&p->mu);
    while (!p->count && !p->closed)
        if (pthread_cond_timedwait(&p->has_full, &p->mu, &until)) break;
    if (p->count) {
        b = p->ring[p->head];
        p->head = (p->head + 1) % p->cap;
        p->count--;
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

void pipeline_close(pipeline_t *p)
{
    pthread_mutex_lock(&p->mu);
    p->closed = 1;
    pthread_cond_broadcast(&p->has_full);
    pthread_cond_broadcast(&p->has_free);
    pthread_mutex_unlock(&p->mu);
}

int pipeline_drained(pipeline_t *p)
{
    pthread_mutex_lock(&p->mu);
    int d = p->closed && !p->count;
    pthread_mutex_unlock(&p->mu);
    return d;
}
