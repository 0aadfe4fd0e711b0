/* buswatch.c - ZeroMQ sockets on a libuv loop (see buswatch.h).
 *
 * DESIGN: three handles per socket. A uv_poll on ZMQ_FD wakes the loop when
 * ZeroMQ signals; a uv_prepare re-checks ZMQ_EVENTS before every blocking
 * wait, which catches the edges that a send or a partial read swallowed;
 * a uv_idle is started while messages remain after a burst, so the loop
 * does not block and serves the rest on its next turn (other sockets and
 * timers get their turn in between). Freeing closes the three handles and
 * the memory goes with the last close callback, so a callback may free the
 * watch that called it.
 */
#include "buswatch.h"

#include "bus.h"
#include "xmalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Callbacks per dispatch before other handles get a turn. */
#define BUS_WATCH_BURST 64

struct bus_watch {
    uv_poll_t poll;
    uv_prepare_t prepare;
    uv_idle_t idle;
    void *sock;
    bus_watch_cb cb;
    void *data;
    int paused, closing, open_handles;
};

/* Only keeps the loop from blocking: the prepare handle does the work. */
static void bus_watch__on_idle(uv_idle_t *h) { (void)h; }

static void bus_watch__dispatch(bus_watch_t *w)
{
    int n = 0;
    while (!w->paused && !w->closing && n < BUS_WATCH_BURST && bus_socket_readable(w->sock)) {
        w->cb(w->data);
        n++;
    }
    if (w->closing) return;
    if (!w->paused && n == BUS_WATCH_BURST && bus_socket_readable(w->sock))
        uv_idle_start(&w->idle, bus_watch__on_idle);
    else
        uv_idle_stop(&w->idle);
}

static void bus_watch__on_poll(uv_poll_t *h, int status, int events)
{
    (void)status;
    (void)events;
    bus_watch__dispatch(h->data);
}

static void bus_watch__on_prepare(uv_prepare_t *h) { bus_watch__dispatch(h->data); }

bus_watch_t *bus_watch_new(uv_loop_t *loop, void *sock, bus_watch_cb cb, void *data, char *err,
                           size_t errlen)
{
    int fd = bus_socket_fd(sock);
    if (fd < 0) {
        snprintf(err, errlen, "zmq_getsockopt(ZMQ_FD) failed: %s", strerror(-fd));
        return NULL;
    }
    bus_watch_t *w = xcalloc(1, sizeof *w);
    w->sock = sock;
    w->cb = cb;
    w->data = data;
    int rc = uv_poll_init(loop, &w->poll, fd);
    if (rc < 0) {
        snprintf(err, errlen, "uv_poll_init() failed: %s", uv_strerror(rc));
        free(w);
        return NULL;
    }
    uv_prepare_init(loop, &w->prepare);
    uv_idle_init(loop, &w->idle);
    w->poll.data = w->prepare.data = w->idle.data = w;
    w->open_handles = 3;
    uv_poll_start(&w->poll, UV_READABLE, bus_watch__on_poll);
    uv_prepare_start(&w->prepare, bus_watch__on_prepare);
    return w;
}

void bus_watch_pause(bus_watch_t *w, int paused)
{
    w->paused = paused;
    if (paused) uv_idle_stop(&w->idle);
}

static void bus_watch__on_close(uv_handle_t *h)
{
    bus_watch_t *w = h->data;
    if (--w->open_handles == 0) free(w);
}

void bus_watch_free(bus_watch_t *w)
{
    if (!w || w->closing) return;
    w->closing = 1;
    uv_close((uv_handle_t *)&w->poll, bus_watch__on_close);
    uv_close((uv_handle_t *)&w->prepare, bus_watch__on_close);
    uv_close((uv_handle_t *)&w->idle, bus_watch__on_close);
}
