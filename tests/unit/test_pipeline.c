/* test_pipeline.c - the batch queue between the threads: batches go through
 * the stages in order; a live feed's producer has every batch from the
 * start and gets NULL, never a wait, when none is free; an import's waiting
 * producer keeps its few hot batches out, has its room doubled when a wait
 * finds no batch given back (a stalled consumer: never a deadlock, up to
 * every batch), and back down to the hot few once batches flow again;
 * batches handed between threads arrive in order, the producer woken as
 * they come back, also with a stage taken from by two threads under a lock
 * (the recorder's writer helping its analysis). */
#include "pipeline.h"

#include "test.h"

#include <pthread.h>
#include <stdio.h>

enum { NB = 16, HOT = 4 };

static void test_stages_in_order(void)
{
    pipeline_t *p = pipeline_new(NB, 0);
    pipe_batch *b[3];
    for (int i = 0; i < 3; i++) {
        b[i] = pipeline_get(p, 0);
        ASSERT_TRUE(b[i] != NULL);
        b[i]->n = (uint32_t)i + 1;
        pipeline_submit(p, b[i]);
    }
    for (int i = 0; i < 3; i++) {
        pipe_batch *x = pipeline_next(p, 0, 100);
        ASSERT_TRUE(x == b[i]);
        pipeline_pass(p, 0, x);
    }
    for (int i = 0; i < 3; i++) {
        pipe_batch *x = pipeline_next(p, 1, 100);
        ASSERT_TRUE(x == b[i]);
        pipeline_release(p, x);
    }
    ASSERT_TRUE(pipeline_next(p, 1, 10) == NULL); /* nothing left: a timeout */
    pipeline_close(p, 0);
    ASSERT_TRUE(pipeline_drained(p, 0));
    ASSERT_TRUE(pipeline_get(p, 1) == NULL); /* closed: no wait */
    pipeline_free(p);
}

static void test_live_has_every_batch(void)
{
    pipeline_t *p = pipeline_new(NB, 0);
    ASSERT_EQ(pipeline_room(p), NB);
    for (int i = 0; i < NB; i++) ASSERT_TRUE(pipeline_get(p, 0) != NULL);
    ASSERT_TRUE(pipeline_get(p, 0) == NULL); /* all out: NULL at once (the feed drops) */
    pipeline_close(p, 0);
    pipeline_free(p);
}

static void test_import_room(void)
{
    pipeline_t *p = pipeline_new(NB, HOT);
    pipe_batch *out[NB];
    ASSERT_EQ(pipeline_room(p), HOT);
    for (int i = 0; i < HOT; i++) ASSERT_TRUE((out[i] = pipeline_get(p, 1)) != NULL);
    /* None given back: the wait finds the consumer stalled and the room
     * doubles - the producer goes on rather than wait forever. */
    ASSERT_TRUE((out[HOT] = pipeline_get(p, 1)) != NULL);
    ASSERT_EQ(pipeline_room(p), 2 * HOT);
    for (int i = HOT + 1; i < NB; i++) ASSERT_TRUE((out[i] = pipeline_get(p, 1)) != NULL);
    ASSERT_EQ(pipeline_room(p), NB); /* doubled again, never past every batch */
    ASSERT_TRUE(pipeline_get(p, 0) == NULL);
    for (int i = 0; i < NB; i++) pipeline_release(p, out[i]);
    /* Batches flow (each given back before the next is taken): the room
     * narrows by one every 16 batches, back to the hot few, and stays. */
    for (int i = 0; i < 16 * NB; i++) {
        pipe_batch *b = pipeline_get(p, 1);
        ASSERT_TRUE(b != NULL);
        if (b) pipeline_release(p, b);
    }
    ASSERT_EQ(pipeline_room(p), HOT);
    /* The wait=0 callers (the analysis's idle hand-over) are not held to it. */
    for (int i = 0; i < NB; i++) ASSERT_TRUE((out[i] = pipeline_get(p, 0)) != NULL);
    ASSERT_EQ(pipeline_room(p), HOT);
    for (int i = 0; i < NB; i++) pipeline_release(p, out[i]);
    pipeline_close(p, 0);
    pipeline_free(p);
}

/* A producer and the two stages' consumers on threads of their own, as in
 * an import: every batch through both stages in order, the producer woken
 * whenever batches come back, whether the room holds 2 (woken at each) or
 * 8 (woken a few at a time). */
enum { MOVED = 3000 };

typedef struct mover {
    pipeline_t *p;
    int stage;
    uint32_t seen, bad;
} mover;

static void *mover_main(void *arg)
{
    mover *m = arg;
    for (pipe_batch *b; (b = pipeline_next(m->p, m->stage, 1000)) || !pipeline_drained(m->p, m->stage);) {
        if (!b) continue;
        if (b->n != m->seen + 1) m->bad++;
        m->seen = b->n;
        if (m->stage == 0) pipeline_pass(m->p, 0, b);
        else pipeline_release(m->p, b);
    }
    if (m->stage == 0) pipeline_close(m->p, 1);
    return NULL;
}

static void test_threads(unsigned nbatches, unsigned hot)
{
    pipeline_t *p = pipeline_new(nbatches, hot);
    mover m[2] = { { .p = p, .stage = 0 }, { .p = p, .stage = 1 } };
    pthread_t t[2];
    for (int i = 0; i < 2; i++) ASSERT_EQ(pthread_create(&t[i], NULL, mover_main, &m[i]), 0);
    for (uint32_t i = 1; i <= MOVED; i++) {
        pipe_batch *b = pipeline_get(p, 1);
        ASSERT_TRUE(b != NULL);
        if (!b) break;
        b->n = i; /* the batch's number, as its packet count */
        pipeline_submit(p, b);
    }
    pipeline_close(p, 0);
    for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
    for (int i = 0; i < 2; i++) {
        ASSERT_EQ(m[i].seen, MOVED);
        ASSERT_EQ(m[i].bad, 0);
    }
    pipeline_free(p);
}

static void test_threads_small(void) { test_threads(2, 0); }
static void test_threads_import(void) { test_threads(NB, 8); }

/* Stage 1 with two consumers, as the recorder's analysis: its own thread,
 * and the stage 0 thread whenever nothing waits for stage 0 - each taking a
 * batch only under one lock and handling it before letting go, so stage 1
 * still sees every batch once, in order. */
typedef struct helped {
    pipeline_t *p;
    pthread_mutex_t mu;
    uint32_t seen, bad, by_stage0, stage0_seen, stage0_bad;
} helped;

static void helped__take(helped *h) /* h->mu held */
{
    pipe_batch *b = pipeline_next(h->p, 1, 0);
    if (!b) return;
    if (b->n != h->seen + 1) h->bad++;
    h->seen = b->n;
    pipeline_release(h->p, b);
}

static void *helped_stage0(void *arg)
{
    helped *h = arg;
    for (pipe_batch *b; (b = pipeline_next(h->p, 0, 1000)) || !pipeline_drained(h->p, 0);) {
        if (!b) continue;
        if (b->n != h->stage0_seen + 1) h->stage0_bad++;
        h->stage0_seen = b->n;
        pipeline_pass(h->p, 0, b);
        while (!pipeline_queued(h->p, 0) && pipeline_queued(h->p, 1) &&
               !pthread_mutex_trylock(&h->mu)) {
            uint32_t before = h->seen;
            helped__take(h);
            h->by_stage0 += h->seen != before;
            pthread_mutex_unlock(&h->mu);
        }
    }
    pipeline_close(h->p, 1);
    return NULL;
}

static void *helped_stage1(void *arg)
{
    helped *h = arg;
    for (;;) {
        int queued = pipeline_wait(h->p, 1, 1000);
        pthread_mutex_lock(&h->mu);
        if (queued) helped__take(h);
        int done = !queued && pipeline_drained(h->p, 1);
        pthread_mutex_unlock(&h->mu);
        if (done) break;
    }
    return NULL;
}

static void test_threads_helped(void)
{
    pipeline_t *p = pipeline_new(NB, 8);
    helped h = { .p = p };
    pthread_mutex_init(&h.mu, NULL);
    pthread_t t0, t1;
    ASSERT_EQ(pthread_create(&t0, NULL, helped_stage0, &h), 0);
    ASSERT_EQ(pthread_create(&t1, NULL, helped_stage1, &h), 0);
    for (uint32_t i = 1; i <= MOVED; i++) {
        pipe_batch *b = pipeline_get(p, 1);
        ASSERT_TRUE(b != NULL);
        if (!b) break;
        b->n = i;
        pipeline_submit(p, b);
    }
    pipeline_close(p, 0);
    pthread_join(t0, NULL);
    pthread_join(t1, NULL);
    ASSERT_EQ(h.stage0_seen, MOVED);
    ASSERT_EQ(h.stage0_bad, 0);
    ASSERT_EQ(h.seen, MOVED);
    ASSERT_EQ(h.bad, 0);
    printf("  stage 1 batches taken by the stage 0 thread: %u of %u\n", h.by_stage0, MOVED);
    pthread_mutex_destroy(&h.mu);
    pipeline_free(p);
}

/* pipeline_queued and pipeline_wait look without taking. */
static void test_wait_and_queued(void)
{
    pipeline_t *p = pipeline_new(NB, 0);
    ASSERT_EQ(pipeline_queued(p, 0), 0);
    ASSERT_EQ(pipeline_wait(p, 0, 10), 0); /* a timeout */
    pipe_batch *b = pipeline_get(p, 0);
    b->n = 1;
    pipeline_submit(p, b);
    ASSERT_EQ(pipeline_queued(p, 0), 1);
    ASSERT_EQ(pipeline_wait(p, 0, 10), 1);
    ASSERT_EQ(pipeline_queued(p, 0), 1); /* still there */
    ASSERT_TRUE(pipeline_next(p, 0, 0) == b);
    pipeline_release(p, b);
    pipeline_close(p, 0);
    ASSERT_EQ(pipeline_wait(p, 0, 1000), 0); /* closed: at once */
    pipeline_free(p);
}

int main(void)
{
    RUN(test_stages_in_order);
    RUN(test_live_has_every_batch);
    RUN(test_import_room);
    RUN(test_threads_small);
    RUN(test_threads_import);
    RUN(test_threads_helped);
    RUN(test_wait_and_queued);
    TEST_EXIT();
}
