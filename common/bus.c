/* bus.c - the ZeroMQ sockets: the bus (XPUB/SUB), the RPC server (ROUTER)
 * and its stream clients (DEALER); see bus.h. The only libzmq user. */
#include "bus.h"

#include "log.h"
#include "xmalloc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

/* Every socket object starts with these two fields, so bus_socket_fd()
 * and bus_socket_readable() can take any of them. */
typedef struct bus__base {
    void *ctx;
    void *sock;
} bus__base;

struct bus_pub {
    void *ctx;
    void *sock;
    int subscribed;
};

/* Every socket here has its own context and linger 0 (set longer where a
 * close must deliver). Returns 0 with *ctx and *sock set, or -1 with err. */
static int bus__socket(int type, const char *name, void **ctx, void **sock, char *err,
                       size_t errlen)
{
    int zero = 0;
    *ctx = zmq_ctx_new();
    *sock = *ctx ? zmq_socket(*ctx, type) : NULL;
    if (!*sock) {
        snprintf(err, errlen, "zmq_socket(%s) failed: %s", name, zmq_strerror(errno));
        if (*ctx) zmq_ctx_term(*ctx);
        *ctx = NULL;
        return -1;
    }
    zmq_setsockopt(*sock, ZMQ_LINGER, &zero, sizeof zero);
    return 0;
}

/* Bind or connect; on failure close the socket and context. */
static int bus__attach(void **ctx, void **sock, const char *endpoint, int bind, char *err,
                       size_t errlen)
{
    if ((bind ? zmq_bind(*sock, endpoint) : zmq_connect(*sock, endpoint)) == 0) return 0;
    snprintf(err, errlen, "%s(%s) failed: %s", bind ? "zmq_bind" : "zmq_connect", endpoint,
             zmq_strerror(errno));
    zmq_close(*sock);
    zmq_ctx_term(*ctx);
    *sock = *ctx = NULL;
    return -1;
}

bus_pub_t *bus_pub_new(const char *endpoint, int hwm, char *err, size_t errlen)
{
    bus_pub_t *b = xcalloc(1, sizeof *b);
    int one = 1;
    if (bus__socket(ZMQ_XPUB, "XPUB", &b->ctx, &b->sock, err, errlen) < 0) goto fail;
    zmq_setsockopt(b->sock, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(b->sock, ZMQ_XPUB_NODROP, &one, sizeof one);
    if (bus__attach(&b->ctx, &b->sock, endpoint, 0, err, errlen) < 0) goto fail;
    return b;
fail:
    free(b);
    return NULL;
}

/* Read pending subscription messages (1 = subscribe, 0 = unsubscribe). */
static void bus__drain(bus_pub_t *b, int timeout_ms)
{
    zmq_pollitem_t it = { b->sock, 0, ZMQ_POLLIN, 0 };
    while (zmq_poll(&it, 1, timeout_ms) > 0 && (it.revents & ZMQ_POLLIN)) {
        char msg[256];
        int n = zmq_recv(b->sock, msg, sizeof msg, ZMQ_DONTWAIT);
        if (n > 0) b->subscribed = msg[0] == 1;
        timeout_ms = 0;
    }
}

int bus_pub_wait_subscriber(bus_pub_t *b, int timeout_ms)
{
    int waited = 0;
    while (!b->subscribed && waited <= timeout_ms) {
        bus__drain(b, 50);
        waited += 50;
    }
    return b->subscribed;
}

int bus_pub_has_subscriber(bus_pub_t *b)
{
    bus__drain(b, 0);
    return b->subscribed;
}

int bus_pub_send(bus_pub_t *b, const char *topic, const void *data, size_t len)
{
    bus__drain(b, 0);
    if (zmq_send(b->sock, topic, strlen(topic), ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0)
        return errno == EAGAIN ? -EAGAIN : -errno;
    /* The first frame went: the second cannot fail for lack of room. */
    if (zmq_send(b->sock, data, len, ZMQ_DONTWAIT) < 0) return -errno;
    return 0;
}

void bus_pub_close(bus_pub_t *b, int linger_ms)
{
    if (!b) return;
    zmq_setsockopt(b->sock, ZMQ_LINGER, &linger_ms, sizeof linger_ms);
    zmq_close(b->sock);
    zmq_ctx_term(b->ctx);
    free(b);
}

struct bus_sub {
    void *ctx;
    void *sock;
};

bus_sub_t *bus_sub_new(const char *endpoint, int hwm, size_t maxmsg, char *err, size_t errlen)
{
    bus_sub_t *b = xcalloc(1, sizeof *b);
    if (bus__socket(ZMQ_SUB, "SUB", &b->ctx, &b->sock, err, errlen) < 0) goto fail;
    zmq_setsockopt(b->sock, ZMQ_RCVHWM, &hwm, sizeof hwm);
    /* Before the bind: ZeroMQ drops a peer that announces a bigger frame,
     * before it allocates it. */
    int64_t max = (int64_t)maxmsg;
    zmq_setsockopt(b->sock, ZMQ_MAXMSGSIZE, &max, sizeof max);
    zmq_setsockopt(b->sock, ZMQ_SUBSCRIBE, "", 0);
    if (bus__attach(&b->ctx, &b->sock, endpoint, 1, err, errlen) < 0) goto fail;
    return b;
fail:
    free(b);
    return NULL;
}

long bus_sub_recv(bus_sub_t *b, char *topic, size_t topiclen, void *data, size_t cap,
                  int timeout_ms)
{
    zmq_pollitem_t it = { b->sock, 0, ZMQ_POLLIN, 0 };
    int rc = zmq_poll(&it, 1, timeout_ms);
    if (rc < 0) return errno == EINTR ? 0 : -errno;
    if (rc == 0) return 0;
    int n = zmq_recv(b->sock, topic, topiclen - 1, ZMQ_DONTWAIT);
    if (n < 0) return errno == EAGAIN ? 0 : -errno;
    topic[(size_t)n < topiclen - 1 ? (size_t)n : topiclen - 1] = 0;
    int more = 0;
    size_t ml = sizeof more;
    zmq_getsockopt(b->sock, ZMQ_RCVMORE, &more, &ml);
    if (!more) return -EPROTO;
    n = zmq_recv(b->sock, data, cap, 0);
    if (n < 0) return -errno;
    long len = n;
    zmq_getsockopt(b->sock, ZMQ_RCVMORE, &more, &ml);
    int bad = 0;
    while (more) { /* swallow extra frames of a malformed message */
        char junk[64];
        zmq_recv(b->sock, junk, sizeof junk, 0);
        zmq_getsockopt(b->sock, ZMQ_RCVMORE, &more, &ml);
        bad = 1;
    }
    if (bad) return -EPROTO;
    if ((size_t)len > cap) return -EMSGSIZE;
    return len;
}

void bus_sub_close(bus_sub_t *b)
{
    if (!b) return;
    zmq_close(b->sock);
    zmq_ctx_term(b->ctx);
    free(b);
}

#define RPC_ENVELOPE_MAX 8

struct bus_rpc {
    void *ctx;
    void *sock;
    zmq_msg_t env[RPC_ENVELOPE_MAX];
    int nenv;
};

bus_rpc_t *bus_rpc_new(const char *endpoint, char *err, size_t errlen)
{
    bus_rpc_t *r = xcalloc(1, sizeof *r);
    int64_t maxsize = 1 << 20;
    int one = 1;
    if (bus__socket(ZMQ_ROUTER, "ROUTER", &r->ctx, &r->sock, err, errlen) < 0) goto fail;
    /* A request is small: refuse anything over 1 MiB at the transport. */
    zmq_setsockopt(r->sock, ZMQ_MAXMSGSIZE, &maxsize, sizeof maxsize);
    /* Report a requester that has gone (EHOSTUNREACH) instead of dropping
     * silently: a stream to it is then stopped at once. */
    zmq_setsockopt(r->sock, ZMQ_ROUTER_MANDATORY, &one, sizeof one);
    if (bus__attach(&r->ctx, &r->sock, endpoint, 1, err, errlen) < 0) goto fail;
    return r;
fail:
    free(r);
    return NULL;
}

static void bus__rpc_drop_env(bus_rpc_t *r)
{
    for (int i = 0; i < r->nenv; i++) zmq_msg_close(&r->env[i]);
    r->nenv = 0;
}

int bus_rpc_recv(bus_rpc_t *r, void *data, size_t cap, size_t *len, int timeout_ms)
{
    zmq_pollitem_t it = { r->sock, 0, ZMQ_POLLIN, 0 };
    int rc = zmq_poll(&it, 1, timeout_ms);
    if (rc <= 0) return rc < 0 && errno != EINTR ? -errno : 0;
    bus__rpc_drop_env(r);
    /* Envelope: identity frames up to and including the empty delimiter
     * (REQ clients), or just the identity (DEALER clients). */
    for (;;) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, r->sock, 0) < 0) {
            zmq_msg_close(&m);
            return -errno;
        }
        int more = zmq_msg_more(&m);
        size_t sz = zmq_msg_size(&m);
        if (!more) { /* the body */
            *len = sz <= cap ? sz : 0;
            if (sz <= cap) memcpy(data, zmq_msg_data(&m), sz);
            zmq_msg_close(&m);
            return sz <= cap ? 1 : -EMSGSIZE;
        }
        if (r->nenv < RPC_ENVELOPE_MAX) r->env[r->nenv++] = m;
        else zmq_msg_close(&m);
        if (sz == 0) continue; /* delimiter kept; body follows */
    }
}

int bus_rpc_reply(bus_rpc_t *r, const void *data, size_t len)
{
    for (int i = 0; i < r->nenv; i++) {
        if (zmq_msg_send(&r->env[i], r->sock, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) {
            bus__rpc_drop_env(r);
            return -errno;
        }
    }
    r->nenv = 0; /* zmq_msg_send took the frames */
    if (zmq_send(r->sock, data, len, ZMQ_DONTWAIT) < 0) return -errno;
    return 0;
}

void bus_rpc_peer(const bus_rpc_t *r, bus_peer *out)
{
    memset(out, 0, sizeof *out);
    if (r->nenv < 1) return;
    zmq_msg_t *id = (zmq_msg_t *)&r->env[0];
    size_t n = zmq_msg_size(id);
    out->len = n < sizeof out->id ? n : sizeof out->id;
    memcpy(out->id, zmq_msg_data(id), out->len);
    out->delimited = r->nenv > 1;
}

int bus_rpc_send_to(bus_rpc_t *r, const bus_peer *p, const void *data, size_t len)
{
    if (zmq_send(r->sock, p->id, p->len, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) return -errno;
    if (p->delimited && zmq_send(r->sock, "", 0, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) return -errno;
    if (zmq_send(r->sock, data, len, ZMQ_DONTWAIT) < 0) return -errno;
    return 0;
}

void bus_rpc_close(bus_rpc_t *r)
{
    if (!r) return;
    bus__rpc_drop_env(r);
    zmq_close(r->sock);
    zmq_ctx_term(r->ctx);
    free(r);
}

long bus_rpc_call(const char *endpoint, const void *req, size_t len, void **reply,
                  int timeout_ms, char *err, size_t errlen)
{
    long rc = -1;
    void *ctx, *s;
    *reply = NULL;
    if (bus__socket(ZMQ_DEALER, "DEALER", &ctx, &s, err, errlen) < 0) return -EIO;
    if (bus__attach(&ctx, &s, endpoint, 0, err, errlen) < 0) return -EIO;
    if (zmq_send(s, req, len, 0) < 0) {
        snprintf(err, errlen, "sending to %s failed: %s", endpoint, zmq_strerror(errno));
        rc = -errno;
        goto out;
    }
    zmq_pollitem_t it = { s, 0, ZMQ_POLLIN, 0 };
    if (zmq_poll(&it, 1, timeout_ms) <= 0) {
        snprintf(err, errlen, "no answer from %s within %d ms (is the coordinator running?)",
                 endpoint, timeout_ms);
        rc = -ETIMEDOUT;
        goto out;
    }
    zmq_msg_t m;
    zmq_msg_init(&m);
    if (zmq_msg_recv(&m, s, 0) < 0) {
        snprintf(err, errlen, "receiving from %s failed: %s", endpoint, zmq_strerror(errno));
        rc = -errno;
        zmq_msg_close(&m);
        goto out;
    }
    rc = (long)zmq_msg_size(&m);
    *reply = xmalloc((size_t)rc + 1);
    memcpy(*reply, zmq_msg_data(&m), (size_t)rc);
    zmq_msg_close(&m);
out:
    zmq_close(s);
    zmq_ctx_term(ctx);
    return rc;
}

struct bus_dealer {
    void *ctx;
    void *sock;
};

bus_dealer_t *bus_dealer_new(const char *endpoint, long maxmsg, char *err, size_t errlen)
{
    bus_dealer_t *d = xcalloc(1, sizeof *d);
    int64_t max = maxmsg;
    if (bus__socket(ZMQ_DEALER, "DEALER", &d->ctx, &d->sock, err, errlen) < 0) goto fail;
    zmq_setsockopt(d->sock, ZMQ_MAXMSGSIZE, &max, sizeof max);
    if (bus__attach(&d->ctx, &d->sock, endpoint, 0, err, errlen) < 0) goto fail;
    return d;
fail:
    free(d);
    return NULL;
}

int bus_dealer_send(bus_dealer_t *d, const void *data, size_t len)
{
    return zmq_send(d->sock, data, len, ZMQ_DONTWAIT) < 0 ? -errno : 0;
}

int bus_dealer_recv(bus_dealer_t *d, void *data, size_t cap, size_t *len, int timeout_ms)
{
    if (timeout_ms) {
        zmq_pollitem_t it = { d->sock, 0, ZMQ_POLLIN, 0 };
        int rc = zmq_poll(&it, 1, timeout_ms);
        if (rc <= 0) return rc < 0 && errno != EINTR ? -errno : 0;
    }
    int n = zmq_recv(d->sock, data, cap, ZMQ_DONTWAIT);
    if (n < 0) return errno == EAGAIN || errno == EINTR ? 0 : -errno;
    int more = 0;
    size_t ml = sizeof more;
    zmq_getsockopt(d->sock, ZMQ_RCVMORE, &more, &ml);
    int extra = 0;
    while (more) { /* we never send multipart: swallow the rest */
        char junk[64];
        zmq_recv(d->sock, junk, sizeof junk, 0);
        zmq_getsockopt(d->sock, ZMQ_RCVMORE, &more, &ml);
        extra = 1;
    }
    if (extra) return -EPROTO;
    if ((size_t)n > cap) return -EMSGSIZE;
    *len = (size_t)n;
    return 1;
}

void bus_dealer_close(bus_dealer_t *d, int linger_ms)
{
    if (!d) return;
    zmq_setsockopt(d->sock, ZMQ_LINGER, &linger_ms, sizeof linger_ms);
    zmq_close(d->sock);
    zmq_ctx_term(d->ctx);
    free(d);
}

int bus_socket_fd(void *sock)
{
    int fd = -1;
    size_t len = sizeof fd;
    if (zmq_getsockopt(((const bus__base *)sock)->sock, ZMQ_FD, &fd, &len) < 0) return -errno;
    return fd;
}

int bus_socket_readable(void *sock)
{
    int ev = 0;
    size_t len = sizeof ev;
    if (zmq_getsockopt(((const bus__base *)sock)->sock, ZMQ_EVENTS, &ev, &len) < 0) return 0;
    return (ev & ZMQ_POLLIN) != 0;
}
