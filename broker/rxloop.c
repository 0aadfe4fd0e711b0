/* rxloop.c - the broker's packet thread (see rxloop.h).
 *
 * DESIGN: the thread takes the lock once per batch (up to 64 packets), not
 * per packet, and not while it waits for packets: an uncontended lock per
 * batch costs nothing next to the batch's system calls, and the control
 * loop, which holds it for a few microseconds a second (more while a reload
 * opens outputs), never meets a half-processed batch. The input's counters
 * are copied under the same lock after every batch and every turn, so the
 * control loop reads one consistent set without touching the input.
 */
#include "rxloop.h"

#include "timeparse.h"
#include "xmalloc.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RXLOOP_BATCHES 16   /* batches per turn before looking at the stop flag */
#define RXLOOP_WAIT_MS 100  /* longest wait for packets per turn */

struct rxloop {
    input_t *in;
    broker_t *b;
    void (*on_end)(void *data);
    void *data;
    pthread_t thread;
    pthread_mutex_t mu;
    input_stats in_st;           /* under mu */
    _Atomic int stop, running, result, joined;
    _Atomic int64_t beat_ns;     /* CLOCK_MONOTONIC of the last turn */
};

static void rxloop__batch(void *ctx, input_batch *batch)
{
    rxloop_t *r = ctx;
    pthread_mutex_lock(&r->mu);
    broker_batch(r->b, batch);
    input_get_stats(r->in, &r->in_st);
    pthread_mutex_unlock(&r->mu);
}

static void *rxloop__main(void *arg)
{
    rxloop_t *r = arg;
    int result = RXLOOP_STOPPED;
    while (!atomic_load(&r->stop)) {
        int n = input_run(r->in, RXLOOP_BATCHES, RXLOOP_WAIT_MS, rxloop__batch, r);
        atomic_store(&r->beat_ns, timeparse_mono_ns());
        pthread_mutex_lock(&r->mu);
        input_get_stats(r->in, &r->in_st); /* drops and rejects outside any batch */
        pthread_mutex_unlock(&r->mu);
        if (n == -1) {
            result = RXLOOP_EOF;
            break;
        }
        if (n == -2) {
            result = RXLOOP_FAILED;
            break;
        }
    }
    atomic_store(&r->result, result);
    atomic_store(&r->running, 0);
    if (r->on_end) r->on_end(r->data);
    return NULL;
}

rxloop_t *rxloop_start(input_t *in, broker_t *b, void (*on_end)(void *data), void *data,
                       char *err, size_t errlen)
{
    rxloop_t *r = xcalloc(1, sizeof *r);
    r->in = in;
    r->b = b;
    r->on_end = on_end;
    r->data = data;
    pthread_mutex_init(&r->mu, NULL);
    input_get_stats(in, &r->in_st);
    atomic_store(&r->beat_ns, timeparse_mono_ns());
    atomic_store(&r->running, 1);
    /* The new thread inherits this mask: signals go to the control loop. */
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGHUP);
    sigaddset(&block, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    int rc = pthread_create(&r->thread, NULL, rxloop__main, r);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        snprintf(err, errlen, "pthread_create() failed: %s", strerror(rc));
        pthread_mutex_destroy(&r->mu);
        free(r);
        return NULL;
    }
    return r;
}

broker_t *rxloop_lock(rxloop_t *r, input_stats *in)
{
    pthread_mutex_lock(&r->mu);
    if (in) *in = r->in_st;
    return r->b;
}

void rxloop_unlock(rxloop_t *r) { pthread_mutex_unlock(&r->mu); }

void rxloop_get_state(rxloop_t *r, rxloop_state *st)
{
    st->running = atomic_load(&r->running);
    st->result = atomic_load(&r->result);
    st->idle_ns = st->running ? timeparse_mono_ns() - atomic_load(&r->beat_ns) : 0;
}

void rxloop_stop(rxloop_t *r) { atomic_store(&r->stop, 1); }

int rxloop_join(rxloop_t *r)
{
    rxloop_stop(r);
    if (!atomic_exchange(&r->joined, 1)) pthread_join(r->thread, NULL);
    return atomic_load(&r->result);
}

void rxloop_free(rxloop_t *r)
{
    if (!r) return;
    rxloop_join(r);
    pthread_mutex_destroy(&r->mu);
    free(r);
}
