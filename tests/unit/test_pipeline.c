/* test_pipeline.c - the batch queue between the threads: batches go through
 * the stages in order; a live feed's producer has every batch from the
 * start and gets NULL, never a wait, when none is free; an import's waiting
 * producer keeps its few hot batches out, has its room doubled when a wait
 * finds no batch given back (a stalled consumer: never a deadlock, up to
 * every batch), and back down to the hot few once batches flow again. */
#include "pipeline.h"

#include "test.h"

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

int main(void)
{
    RUN(test_stages_in_order);
    RUN(test_live_has_every_batch);
    RUN(test_import_room);
    TEST_EXIT();
}
