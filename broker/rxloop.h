/* rxloop.h - the broker's packet path on a thread of its own: input ->
 * broker chain -> outputs, batch after batch, until told to stop, the file
 * ends, or receiving fails.
 *
 * The control loop (main.c) touches the broker only while it holds the
 * lock (rxloop_lock): counters, output ticks and reloads happen between two
 * batches. The thread also beats a heartbeat each time its receive loop
 * turns (at least every 100 ms while it runs), so a stuck packet path can
 * be told from an idle one.
 */
#ifndef MSCOPE_RXLOOP_H
#define MSCOPE_RXLOOP_H

#include "broker.h"
#include "input.h"

#include <stddef.h>
#include <stdint.h>

typedef struct rxloop rxloop_t;

enum rxloop_result {
    RXLOOP_STOPPED = 0, /* rxloop_stop() was called */
    RXLOOP_EOF = 1,     /* the file was read to its end */
    RXLOOP_FAILED = -1, /* receiving failed (the input logged why) */
};

typedef struct rxloop_state {
    int running;     /* the thread is receiving */
    int result;      /* once it has ended: enum rxloop_result */
    int64_t idle_ns; /* while running: since the receive loop last turned */
} rxloop_state;

/* Start the thread over in and b, which stay the caller's and must outlive
 * the thread. on_end(data) is called on the packet thread as it ends (may be
 * NULL); it must only wake the control loop (uv_async_send). The thread
 * blocks the signals the control loop handles. Returns NULL with err set
 * when the thread cannot be created. */
rxloop_t *rxloop_start(input_t *in, broker_t *b, void (*on_end)(void *data), void *data,
                       char *err, size_t errlen);

/* Hold the broker between two batches and return it; *in gets the input's
 * counters as of the last batch. Release with rxloop_unlock() soon: the
 * packet thread waits meanwhile (the kernel buffers what arrives). */
broker_t *rxloop_lock(rxloop_t *r, input_stats *in);
void rxloop_unlock(rxloop_t *r);

void rxloop_get_state(rxloop_t *r, rxloop_state *st);

/* Ask the thread to stop after its current batch (it checks at least every
 * 100 ms). Idempotent; safe from any thread. */
void rxloop_stop(rxloop_t *r);

/* Stop, wait for the thread to end, and return its enum rxloop_result. */
int rxloop_join(rxloop_t *r);

/* Join (if not yet) and free. Accepts NULL. */
void rxloop_free(rxloop_t *r);

#endif
