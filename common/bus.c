/* bus.c - the ZeroMQ sockets: the bus (XPUB/SUB), the RPC server (ROUTER)
 * and its stream clients (DEALER); see bus.h. With busauth.c (keys, ZAP),
 * the only libzmq user. */
#include "bus.h"

#include "log.h"
#include "xmalloc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

/* Every socket object starts with these fields, so bus_socket_fd(),
 * bus_socket_readable() and bus_socket_refused() can take any of them. */
typedef struct bus__base {
    void *ctx;
    void *sock;
    busauth_zap *zap; /* servers with CURVE: who may connect */
    void *mon;        /* clients: handshake and connection events (PAIR) */
    int handshake;    /* what the handshakes seen on mon say, BUS_HANDSHAKE_* */
    int failures;     /* failed handshakes since the last that succeeded */
    int retries;      /* connection attempts failed since the last that connected */
} bus__base;

struct bus_pub {
    void *ctx;
    void *sock;
    busauth_zap *zap;
    void *mon;
    int handshake;
    int failures;
    int retries;
    int subscribed;
};

/* Every socket here has its own context and linger 0 (set longer where a
 * close must deliver). Returns 0 with b->ctx and b->sock set, or -1 with err. */
static int bus__socket(int type, const char *name, bus__base *b, char *err, size_t errlen)
{
    int zero = 0;
    b->ctx = zmq_ctx_new();
    b->sock = b->ctx ? zmq_socket(b->ctx, type) : NULL;
    if (!b->sock) {
        snprintf(err, errlen, "zmq_socket(%s) failed: %s", name, zmq_strerror(errno));
        if (b->ctx) zmq_ctx_term(b->ctx);
        b->ctx = NULL;
        return -1;
    }
    zmq_setsockopt(b->sock, ZMQ_LINGER, &zero, sizeof zero);
    return 0;
}

/* Close a socket and its context (and the context's ZAP handler, which
 * only leaves once the context is shut down). */
static void bus__close(bus__base *b)
{
    if (b->sock) zmq_close(b->sock);
    if (b->mon) zmq_close(b->mon);
    if (b->zap) {
        zmq_ctx_shutdown(b->ctx);
        busauth_zap_stop(b->zap);
    }
    if (b->ctx) zmq_ctx_term(b->ctx);
    b->sock = b->ctx = b->mon = NULL;
    b->zap = NULL;
}

/* CURVE for a server socket: the ZAP handler on its context first (without
 * one libzmq lets in any client that knows our public key), then the
 * socket options. Nothing to do for sec NULL (plain). Returns 0 or -1. */
static int bus__secure_server(bus__base *b, const bus_sec *sec, const char *what, char *err,
                              size_t errlen)
{
    if (!sec) return 0;
    int one = 1;
    if (!(b->zap = busauth_zap_start(b->ctx, what, sec->allow_dir, sec->allow_key,
                                       sec->need_role, err, errlen)))
        return -1;
    if (zmq_setsockopt(b->sock, ZMQ_ZAP_DOMAIN, "mscope", 6) < 0 ||
        zmq_setsockopt(b->sock, ZMQ_CURVE_SERVER, &one, sizeof one) < 0 ||
        zmq_setsockopt(b->sock, ZMQ_CURVE_SECRETKEY, sec->self.sec, BUSAUTH_KEY_LEN) < 0) {
        snprintf(err, errlen, "%s: CURVE server options: %s", what, zmq_strerror(errno));
        return -1;
    }
    return 0;
}

/* A client socket: with CURVE our pair and the server's public key; with
 * or without, a monitor of the handshakes and connections, so that a
 * refusal, a mismatch (one end plain, the other CURVE), or nothing
 * listening can be told from silence. */
static int bus__client(bus__base *b, const bus_sec *sec, char *err, size_t errlen)
{
    char mon[64];
    snprintf(mon, sizeof mon, "inproc://mscope-handshakes-%p", (void *)b);
    if (sec && (zmq_setsockopt(b->sock, ZMQ_CURVE_SERVERKEY, sec->server_key, BUSAUTH_KEY_LEN) < 0 ||
                zmq_setsockopt(b->sock, ZMQ_CURVE_PUBLICKEY, sec->self.pub, BUSAUTH_KEY_LEN) < 0 ||
                zmq_setsockopt(b->sock, ZMQ_CURVE_SECRETKEY, sec->self.sec, BUSAUTH_KEY_LEN) < 0)) {
        snprintf(err, errlen, "CURVE client options: %s", zmq_strerror(errno));
        return -1;
    }
    if (zmq_socket_monitor(b->sock, mon, ZMQ_EVENT_CONNECTED | ZMQ_EVENT_CONNECT_RETRIED |
                           ZMQ_EVENT_HANDSHAKE_SUCCEEDED |
                           ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |
                           ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                           ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) < 0 ||
        !(b->mon = zmq_socket(b->ctx, ZMQ_PAIR)) || zmq_connect(b->mon, mon) < 0) {
        snprintf(err, errlen, "socket monitor: %s", zmq_strerror(errno));
        return -1;
    }
    return 0;
}

/* Secure, then bind or connect; on failure close everything. */
static int bus__attach(bus__base *b, const bus_sec *sec, const char *what, const char *endpoint,
                       int bind, char *err, size_t errlen)
{
    int rc = bind ? bus__secure_server(b, sec, what, err, errlen)
                  : bus__client(b, sec, err, errlen);
    if (rc == 0 && (bind ? zmq_bind(b->sock, endpoint) : zmq_connect(b->sock, endpoint)) == 0)
        return 0;
    if (rc == 0)
        snprintf(err, errlen, "%s(%s) failed: %s", bind ? "zmq_bind" : "zmq_connect", endpoint,
                 zmq_strerror(errno));
    bus__close(b);
    return -1;
}

#define BUS__HANDSHAKE_FAILURES 3 /* in a row: a wrong key, not bad luck */
#define BUS__CONNECT_RETRIES 3    /* in a row: libzmq retries every 100-199 ms (its interval, jittered) */

int bus_socket_handshake(void *sock)
{
    bus__base *b = sock;
    while (b->mon) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, b->mon, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&m);
            break;
        }
        /* An event is two frames: [u16 event, u32 value] and the endpoint.
         * A refusal is the server's word (ZAP said no). A server that
         * cannot decrypt our hello (a wrong server key) just closes the
         * connection, which looks like any connection lost during a
         * handshake: only several in a row, with no success between, say
         * that it is not passing trouble. libzmq says it will retry a
         * connection (CONNECT_RETRIED) after a connect that failed (refused,
         * no route, a name that does not resolve) and when a connection is
         * lost: three of those with no connection made between (~0.2-0.4 s)
         * mean that nothing can be reached there; a host that never answers
         * a connect at all stays silence. CONNECTED comes before any
         * handshake, so a slow handshake or a refused key never counts. */
        if (zmq_msg_more(&m) && zmq_msg_size(&m) >= 2) {
            uint16_t ev;
            memcpy(&ev, zmq_msg_data(&m), 2);
            if (ev == ZMQ_EVENT_CONNECTED) {
                b->retries = 0;
                if (b->handshake == BUS_HANDSHAKE_NO_LISTENER) b->handshake = BUS_HANDSHAKE_NONE;
            } else if (ev == ZMQ_EVENT_CONNECT_RETRIED) {
                if (++b->retries >= BUS__CONNECT_RETRIES) b->handshake = BUS_HANDSHAKE_NO_LISTENER;
            } else if (ev == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) {
                b->handshake = BUS_HANDSHAKE_OK;
                b->failures = 0;
            } else if (ev == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) {
                b->handshake = BUS_HANDSHAKE_REFUSED;
            } else if (ev == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL) {
                /* libzmq ends the connection for good, no retry (seen from
                 * a plain client at a CURVE server, about one time in three;
                 * the other times the server hangs up first, NO_DETAIL) */
                b->handshake = BUS_HANDSHAKE_FAILED;
            } else if (++b->failures >= BUS__HANDSHAKE_FAILURES) {
                b->handshake = BUS_HANDSHAKE_FAILED;
            }
        }
        zmq_msg_close(&m);
    }
    return b->handshake;
}

const char *bus_handshake_str(int h)
{
    switch (h) {
    case BUS_HANDSHAKE_OK: return "connected";
    case BUS_HANDSHAKE_REFUSED:
        return "the server refused our key (it is not in its allow-list, or its role there is "
               "not for this socket: a recorder key on the RPC, a client key on the bus)";
    case BUS_HANDSHAKE_FAILED:
        return "the handshake failed (one end runs --insecure and the other does not, or the "
               "server's key is wrong)";
    case BUS_HANDSHAKE_NO_LISTENER:
        return "cannot connect (nothing listens there, or it is unreachable)";
    default: return "no connection yet";
    }
}

bus_pub_t *bus_pub_new(const char *endpoint, int hwm, const bus_sec *sec, char *err,
                       size_t errlen)
{
    bus_pub_t *b = xcalloc(1, sizeof *b);
    int one = 1;
    if (bus__socket(ZMQ_XPUB, "XPUB", (bus__base *)b, err, errlen) < 0) goto fail;
    int64_t max = 4096; /* what comes back is subscriptions, a few bytes each */
    zmq_setsockopt(b->sock, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(b->sock, ZMQ_XPUB_NODROP, &one, sizeof one);
    zmq_setsockopt(b->sock, ZMQ_MAXMSGSIZE, &max, sizeof max);
    if (bus__attach((bus__base *)b, sec, "bus", endpoint, 0, err, errlen) < 0)
        goto fail;
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
        if (bus_pub_hopeless(b)) break;
        bus__drain(b, 50);
        waited += 50;
    }
    return b->subscribed;
}

int bus_pub_hopeless(bus_pub_t *b) { return bus_handshake_refused(bus_socket_handshake(b)); }

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
    bus__close((bus__base *)b);
    free(b);
}

struct bus_sub {
    void *ctx;
    void *sock;
    busauth_zap *zap;
    void *mon;
    int handshake;
    int failures;
    int retries;
};

bus_sub_t *bus_sub_new(const char *endpoint, int hwm, size_t maxmsg, const bus_sec *sec,
                       char *err, size_t errlen)
{
    bus_sub_t *b = xcalloc(1, sizeof *b);
    if (bus__socket(ZMQ_SUB, "SUB", (bus__base *)b, err, errlen) < 0) goto fail;
    zmq_setsockopt(b->sock, ZMQ_RCVHWM, &hwm, sizeof hwm);
    /* Before the bind: ZeroMQ drops a peer that announces a bigger frame,
     * before it allocates it. */
    int64_t max = (int64_t)maxmsg;
    zmq_setsockopt(b->sock, ZMQ_MAXMSGSIZE, &max, sizeof max);
    zmq_setsockopt(b->sock, ZMQ_SUBSCRIBE, "", 0);
    if (bus__attach((bus__base *)b, sec, "bus", endpoint, 1, err, errlen) < 0)
        goto fail;
    return b;
fail:
    free(b);
    return NULL;
}

long bus_sub_recv(bus_sub_t *b, char *topic, size_t topiclen, void *data, size_t cap,
                  char *peer_key, int timeout_ms)
{
    zmq_pollitem_t it = { b->sock, 0, ZMQ_POLLIN, 0 };
    int rc = zmq_poll(&it, 1, timeout_ms);
    if (rc < 0) return errno == EINTR ? 0 : -errno;
    if (rc == 0) return 0;
    zmq_msg_t t;
    zmq_msg_init(&t);
    if (zmq_msg_recv(&t, b->sock, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&t);
        return errno == EAGAIN ? 0 : -errno;
    }
    size_t n = zmq_msg_size(&t) < topiclen - 1 ? zmq_msg_size(&t) : topiclen - 1;
    memcpy(topic, zmq_msg_data(&t), n);
    topic[n] = 0;
    if (peer_key) { /* the User-Id our ZAP handler gave the connection: its key */
        const char *uid = zmq_msg_gets(&t, "User-Id");
        snprintf(peer_key, BUSAUTH_KEY_LEN + 1, "%s", uid ? uid : "");
    }
    zmq_msg_close(&t);
    int more = 0;
    size_t ml = sizeof more;
    zmq_getsockopt(b->sock, ZMQ_RCVMORE, &more, &ml);
    if (!more) return -EPROTO;
    int got = zmq_recv(b->sock, data, cap, 0);
    if (got < 0) return -errno;
    long len = got;
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
    bus__close((bus__base *)b);
    free(b);
}

#define RPC_ENVELOPE_MAX 8

struct bus_rpc {
    void *ctx;
    void *sock;
    busauth_zap *zap;
    void *mon;
    int handshake;
    int failures;
    int retries;
    zmq_msg_t env[RPC_ENVELOPE_MAX];
    int nenv;
};

bus_rpc_t *bus_rpc_new(const char *endpoint, size_t maxmsg, const bus_sec *sec, const char *what,
                       char *err, size_t errlen)
{
    bus_rpc_t *r = xcalloc(1, sizeof *r);
    int64_t maxsize = (int64_t)maxmsg;
    int one = 1;
    if (bus__socket(ZMQ_ROUTER, "ROUTER", (bus__base *)r, err, errlen) < 0) goto fail;
    zmq_setsockopt(r->sock, ZMQ_MAXMSGSIZE, &maxsize, sizeof maxsize);
    /* Report a requester that has gone (EHOSTUNREACH) instead of dropping
     * silently: a stream to it is then stopped at once. */
    zmq_setsockopt(r->sock, ZMQ_ROUTER_MANDATORY, &one, sizeof one);
    if (bus__attach((bus__base *)r, sec, what, endpoint, 1, err, errlen) < 0)
        goto fail;
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
    bus__close((bus__base *)r);
    free(r);
}

long bus_rpc_call(const char *endpoint, const bus_sec *sec, const void *req, size_t len,
                  void **reply, int timeout_ms, char *err, size_t errlen)
{
    long rc = -1;
    bus__base b = { 0 };
    int64_t max = BUS_RPC_REPLY_MAX;
    *reply = NULL;
    if (bus__socket(ZMQ_DEALER, "DEALER", &b, err, errlen) < 0) return -EIO;
    zmq_setsockopt(b.sock, ZMQ_MAXMSGSIZE, &max, sizeof max);
    if (bus__attach(&b, sec, "rpc", endpoint, 0, err, errlen) < 0) return -EIO;
    if (zmq_send(b.sock, req, len, 0) < 0) {
        snprintf(err, errlen, "sending to %s failed: %s", endpoint, zmq_strerror(errno));
        rc = -errno;
        goto out;
    }
    /* Wait for the answer, or for a handshake that fails (then there will
     * be none: say why at once instead of timing out). */
    for (int waited = 0;; waited += 50) {
        zmq_pollitem_t it = { b.sock, 0, ZMQ_POLLIN, 0 };
        int left = timeout_ms - waited;
        if (zmq_poll(&it, 1, left < 50 ? (left > 0 ? left : 0) : 50) > 0) break;
        int hs = bus_socket_handshake(&b);
        if (bus_handshake_refused(hs)) {
            snprintf(err, errlen, "%s: %s", endpoint, bus_handshake_str(hs));
            rc = -EACCES;
            goto out;
        }
        if (hs == BUS_HANDSHAKE_NO_LISTENER) {
            snprintf(err, errlen, "%s: %s; is the coordinator running?", endpoint, bus_handshake_str(hs));
            rc = -ECONNREFUSED;
            goto out;
        }
        if (left <= 50) {
            snprintf(err, errlen, "no answer from %s within %d ms (is the coordinator running?)",
                     endpoint, timeout_ms);
            rc = -ETIMEDOUT;
            goto out;
        }
    }
    zmq_msg_t m;
    zmq_msg_init(&m);
    if (zmq_msg_recv(&m, b.sock, 0) < 0) {
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
    bus__close(&b);
    return rc;
}

struct bus_dealer {
    void *ctx;
    void *sock;
    busauth_zap *zap; /* always NULL: a client */
    void *mon;
    int handshake;
    int failures;
    int retries;
};

bus_dealer_t *bus_dealer_new(const char *endpoint, long maxmsg, const bus_sec *sec, char *err,
                             size_t errlen)
{
    bus_dealer_t *d = xcalloc(1, sizeof *d);
    int64_t max = maxmsg;
    if (bus__socket(ZMQ_DEALER, "DEALER", (bus__base *)d, err, errlen) < 0) goto fail;
    zmq_setsockopt(d->sock, ZMQ_MAXMSGSIZE, &max, sizeof max);
    if (bus__attach((bus__base *)d, sec, "search", endpoint, 0, err, errlen) < 0)
        goto fail;
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
    bus__close((bus__base *)d);
    free(d);
}

int bus_socket_fd(void *sock)
{
    int fd = -1;
    size_t len = sizeof fd;
    if (zmq_getsockopt(((const bus__base *)sock)->sock, ZMQ_FD, &fd, &len) < 0) return -errno;
    return fd;
}

uint64_t bus_socket_refused(void *sock)
{
    return busauth_zap_refused(((const bus__base *)sock)->zap);
}

int bus_socket_readable(void *sock)
{
    int ev = 0;
    size_t len = sizeof ev;
    if (zmq_getsockopt(((const bus__base *)sock)->sock, ZMQ_EVENTS, &ev, &len) < 0) return 0;
    return (ev & ZMQ_POLLIN) != 0;
}
