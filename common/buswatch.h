/* buswatch.h - a ZeroMQ socket of bus.h watched on a libuv loop.
 *
 * ZeroMQ hands out one descriptor per socket (ZMQ_FD) that is edge-
 * triggered: it becomes readable when the socket's state may have changed,
 * not while messages wait. Sending on a socket, or reading only part of its
 * queue, can leave messages waiting with no new edge to come. So a watch
 * asks ZMQ_EVENTS itself: when the descriptor fires, and again before the
 * loop blocks (a uv_prepare), it calls back as long as a message can be
 * read. The callback reads what it wants (typically everything, or a burst);
 * a watch whose reader is held back on purpose (backpressure) is paused, so
 * the loop does not spin on messages nobody will read yet.
 */
#ifndef MSCOPE_BUSWATCH_H
#define MSCOPE_BUSWATCH_H

#include <stddef.h>
#include <uv.h>

typedef struct bus_watch bus_watch_t;

/* Called on the loop's thread while sock has a message to read. */
typedef void (*bus_watch_cb)(void *data);

/* Watch sock (a bus_sub_t, bus_rpc_t or bus_dealer_t, borrowed: free the
 * watch before closing the socket). Returns NULL with err set when ZeroMQ
 * or libuv refuse; the callback is then never called. */
bus_watch_t *bus_watch_new(uv_loop_t *loop, void *sock, bus_watch_cb cb, void *data, char *err,
                           size_t errlen);

/* Paused: no callbacks until resumed (messages stay in ZeroMQ's queue,
 * which holds the sender back). */
void bus_watch_pause(bus_watch_t *w, int paused);

/* Stop watching; safe from inside the watch's own callback (the memory goes
 * when libuv has closed the handles). Accepts NULL. */
void bus_watch_free(bus_watch_t *w);

#endif
