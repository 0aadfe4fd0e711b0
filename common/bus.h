/* bus.h - every ZeroMQ socket of Mirrorscope (the only libzmq user): the
 * recorder -> coordinator bus, the RPC server and its stream clients.
 *
 * A publisher is an XPUB socket that connects to the coordinator's SUB,
 * so recorders need no configuration but the coordinator's address. XPUB
 * instead of PUB for two reasons: it tells us when a subscriber has joined
 * (so a short-lived import does not publish into the void before the
 * connection is up - ZeroMQ's "slow joiner"), and with XPUB_NODROP a full
 * queue is reported to us instead of dropping silently (ZeroMQ's default
 * high-water mark silently sheds most of a burst).
 *
 * Every constructor takes a bus_sec: with it the socket speaks CURVE
 * (encrypted; a server lets in only the client keys its allow-list names,
 * with the role it asks for, see busauth.h); NULL means plain ZeroMQ, which daemons use only when
 * told --insecure. Every client socket, CURVE or plain, also watches its handshakes and its
 * connection attempts, so that a refused key, a handshake that cannot succeed (one end
 * plain, the other CURVE) or a peer nothing can connect to is told from silence at once
 * (bus_socket_handshake) instead of after a timeout.
 */
#ifndef MSCOPE_BUS_H
#define MSCOPE_BUS_H

#include "busauth.h"

#include <stddef.h>
#include <stdint.h>

/* How a socket proves who it is and whom it lets in. Borrowed by the
 * constructors for their duration only (the ZAP handler copies what it
 * keeps). */
typedef struct bus_sec {
    busauth_pair self;                    /* this end's key pair */
    char server_key[BUSAUTH_KEY_LEN + 1]; /* clients: the server's public key */
    const char *allow_dir;                /* servers: allowed client keys (*.pub); may be NULL */
    const char *allow_key;                /* servers: one more allowed key; may be NULL */
    unsigned need_role;                   /* servers: BUSAUTH_ROLE_* allow_dir's keys need; 0 none */
} bus_sec;

typedef struct bus_pub bus_pub_t;

/* Connect a publisher to endpoint ("tcp://host:5556"). hwm is the number of
 * messages queued before sends report -EAGAIN. Returns NULL with err set. */
bus_pub_t *bus_pub_new(const char *endpoint, int hwm, const bus_sec *sec, char *err,
                       size_t errlen);

/* Wait up to timeout_ms for a subscriber. Returns 1 once one has joined
 * (now or before), 0 on timeout, or at once when bus_pub_hopeless(). */
int bus_pub_wait_subscriber(bus_pub_t *b, int timeout_ms);

/* 1 when the server refused our key or the handshake keeps failing
 * (bus_socket_handshake): no subscriber comes of waiting, since libzmq
 * does not soon try a refused handshake again, and a key is not added to
 * the server's allow-list in the seconds an import would wait. */
int bus_pub_hopeless(bus_pub_t *b);

/* 1 while at least one subscriber is connected (ZeroMQ tells XPUB of the
 * first subscription and of the last unsubscription, e.g. a disconnect). */
int bus_pub_has_subscriber(bus_pub_t *b);

/* Send [topic, data] without blocking. Returns 0, -EAGAIN when the queue is
 * full (nothing sent), or another -errno. */
int bus_pub_send(bus_pub_t *b, const char *topic, const void *data, size_t len);

/* Close, giving queued messages up to linger_ms to leave. Accepts NULL. */
void bus_pub_close(bus_pub_t *b, int linger_ms);


/* ---- subscriber (the coordinator's end) ---------------------------------- */

typedef struct bus_sub bus_sub_t;

/* Bind a SUB socket on endpoint ("tcp://0.0.0.0:5556") subscribed to everything.
 * hwm bounds what ZeroMQ queues for us, in messages; a peer that sends a
 * frame over maxmsg bytes is disconnected. Returns NULL with err set. */
bus_sub_t *bus_sub_new(const char *endpoint, int hwm, size_t maxmsg, const bus_sec *sec,
                       char *err, size_t errlen);

/* Receive one [topic, data] message, waiting up to timeout_ms. topic gets
 * at most topiclen-1 bytes, NUL-terminated; data up to cap bytes (longer
 * messages are cut and reported as -EMSGSIZE). peer_key (may be NULL; else
 * BUSAUTH_KEY_LEN + 1 bytes) gets the sender's public key, "" when plain.
 * Returns the data length, 0 on timeout, or -errno; a message that is not
 * two frames is -EPROTO. */
long bus_sub_recv(bus_sub_t *b, char *topic, size_t topiclen, void *data, size_t cap,
                  char *peer_key, int timeout_ms);

void bus_sub_close(bus_sub_t *b);
/* ---- RPC server (ROUTER) ------------------------------------------------- */

typedef struct bus_rpc bus_rpc_t;

/* Bind a ROUTER socket for requests from REQ or DEALER clients; a message
 * over maxmsg bytes is refused by the transport (the peer is disconnected).
 * what names it in logs ("rpc", "search"). */
bus_rpc_t *bus_rpc_new(const char *endpoint, size_t maxmsg, const bus_sec *sec, const char *what,
                       char *err, size_t errlen);

/* Receive one request, waiting up to timeout_ms. The routing envelope is
 * kept inside the server until bus_rpc_reply(). Returns 1 with the body's
 * length in *len (an empty body is a request too), 0 on timeout, -EMSGSIZE
 * for an oversized body (answer it anyway), or -errno. */
int bus_rpc_recv(bus_rpc_t *r, void *data, size_t cap, size_t *len, int timeout_ms);

/* Answer the last request received. Returns 0 or -errno (a client that has
 * gone away is not an error for the server: the reply is dropped). */
int bus_rpc_reply(bus_rpc_t *r, const void *data, size_t len);

void bus_rpc_close(bus_rpc_t *r);

/* A requester to answer more than once (streams: a search sends many
 * messages). Only DEALER requesters can take more than one answer. */
typedef struct bus_peer {
    unsigned char id[256];
    size_t len;
    int delimited; /* a REQ-style empty frame follows the identity */
} bus_peer;

/* The requester of the last request received. */
void bus_rpc_peer(const bus_rpc_t *r, bus_peer *out);

/* Send one message to p without blocking. Returns 0, -EHOSTUNREACH when p
 * has disconnected, -EAGAIN when its queue is full, or another -errno. */
int bus_rpc_send_to(bus_rpc_t *r, const bus_peer *p, const void *data, size_t len);

/* ---- RPC client (DEALER) ------------------------------------------------- */

/* A DEALER connected to a ROUTER, for conversations of many messages (a
 * search stream). Messages over maxmsg bytes end the connection (ZeroMQ's
 * guard against garbage). */
typedef struct bus_dealer bus_dealer_t;

bus_dealer_t *bus_dealer_new(const char *endpoint, long maxmsg, const bus_sec *sec, char *err,
                             size_t errlen);

/* Send without blocking (queued until connected). 0, -EAGAIN or -errno. */
int bus_dealer_send(bus_dealer_t *d, const void *data, size_t len);

/* Receive one message, waiting up to timeout_ms. Returns 1 with its length
 * in *len, 0 on timeout, -EMSGSIZE when it exceeded cap (dropped), -errno. */
int bus_dealer_recv(bus_dealer_t *d, void *data, size_t cap, size_t *len, int timeout_ms);

/* Close, giving queued messages up to linger_ms to leave (a last cancel).
 * Accepts NULL. */
void bus_dealer_close(bus_dealer_t *d, int linger_ms);


/* For event loops (buswatch.h): the descriptor ZeroMQ signals on (edge-
 * triggered: it only says that the socket's state may have changed), and
 * whether a message can be read now without waiting. sock is any of
 * bus_sub_t, bus_rpc_t, bus_dealer_t. bus_socket_fd() returns -errno on
 * failure; bus_socket_readable() returns 1 or 0. */
int bus_socket_fd(void *sock);
int bus_socket_readable(void *sock);

/* Servers with CURVE: peers refused so far (sock: bus_sub_t, bus_rpc_t). */
uint64_t bus_socket_refused(void *sock);

/* Clients: how the last handshake went (sock: bus_pub_t, bus_dealer_t), or
 * that the last three connection attempts failed - refused or unreachable -
 * with none made between (NO_LISTENER, ~0.2-0.4 s after the first, until
 * one connects). It reads the socket's monitor: a client socket's owner
 * must call it every second or so while the socket lives (libzmq's monitor
 * blocks the socket's I/O thread after ~1 000 unread events, and a peer
 * that is down makes ~8 a second). */
enum { BUS_HANDSHAKE_NONE, BUS_HANDSHAKE_OK, BUS_HANDSHAKE_REFUSED, BUS_HANDSHAKE_FAILED,
       BUS_HANDSHAKE_NO_LISTENER };
int bus_socket_handshake(void *sock);
const char *bus_handshake_str(int handshake);

/* 1 when handshake says the server refused our key or the handshake
 * keeps failing: no answer comes of waiting (a server that cannot be
 * connected to, NO_LISTENER, may yet start: each caller decides). */
static inline int bus_handshake_refused(int handshake)
{
    return handshake == BUS_HANDSHAKE_REFUSED || handshake == BUS_HANDSHAKE_FAILED;
}

/* The largest reply bus_rpc_call() takes (10 000 flow records are ~4 MiB);
 * a bigger one ends the connection, and the call times out. */
#define BUS_RPC_REPLY_MAX (64 << 20)

/* One request, one reply, waiting up to timeout_ms for it. On success the
 * reply (malloc'd) is in *reply. Returns its length, -ETIMEDOUT, -EACCES
 * when the handshake failed (err says why), -ECONNREFUSED when nothing
 * listens at endpoint (BUS_HANDSHAKE_NO_LISTENER), or -errno
 * with err set. */
long bus_rpc_call(const char *endpoint, const bus_sec *sec, const void *req, size_t len,
                  void **reply, int timeout_ms, char *err, size_t errlen);

#endif
