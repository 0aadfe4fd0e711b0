/* busauth.h - who may talk on our ZeroMQ sockets: CURVE key files and the
 * ZAP handler that checks a connecting peer's public key against an
 * allow-list. With bus.c, the only libzmq user.
 *
 * A key is ZeroMQ's Z85 text of a 32-byte Curve25519 key (40 characters).
 * Key files are text, so that an operator can read and copy them:
 *
 *     # comment lines
 *     public-key = <40 characters>
 *     secret-key = <40 characters>      (only in a pair's file)
 *
 * A pair's file (NAME.key) must not be readable by group or others; its
 * public half goes in NAME.pub, which is what a server's allow-list
 * directory holds (one file per allowed peer; the directory is read at
 * every handshake, so adding or removing a file takes effect for the next
 * connection without a restart).
 *
 * DESIGN: libzmq lets any client that knows a CURVE server's public key in
 * unless a ZAP handler answers for the socket's context (RFC 27). The
 * handler is a REP socket on inproc://zeromq.zap.01 of the server socket's
 * own context, bound before the server socket binds, served by a thread of
 * its own (handshakes are rare: a connection's first milliseconds). It
 * answers with the peer's key as the User-Id, which every message from that
 * peer then carries (bus_sub_recv() hands it out): the coordinator learns a
 * recorder's key, and so how to reach its search service, from the bus.
 */
#ifndef MSCOPE_BUSAUTH_H
#define MSCOPE_BUSAUTH_H

#include <stddef.h>
#include <stdint.h>

#define BUSAUTH_KEY_LEN 40 /* Z85 characters; buffers are BUSAUTH_KEY_LEN + 1 */

typedef struct busauth_pair {
    char pub[BUSAUTH_KEY_LEN + 1];
    char sec[BUSAUTH_KEY_LEN + 1]; /* "" when only the public half is known */
} busauth_pair;

/* 1 when this libzmq can do CURVE. */
int busauth_available(void);

/* A new random key pair. Returns 0, or -1 with err set. */
int busauth_generate(busauth_pair *kp, char *err, size_t errlen);

/* Write kp's pair to keypath (mode 0600) and its public half to pubpath
 * (0644); neither may exist yet (a key is never overwritten). Returns 0,
 * or -1 with err naming the file. */
int busauth_write(const busauth_pair *kp, const char *keypath, const char *pubpath, char *err,
                  size_t errlen);

/* Read a key file. With need_secret, the file must hold a pair and must not
 * be readable by group or others. Returns 0, or -1 with err naming the file
 * and line. */
int busauth_load(const char *path, int need_secret, busauth_pair *kp, char *err, size_t errlen);

/* Read the pair at keypath; when it does not exist, make one and write it
 * there with its public half next to it (keypath with ".key" replaced by
 * ".pub", or ".pub" appended). Returns 0 read, 1 created, -1 with err. */
int busauth_load_or_create(const char *keypath, busauth_pair *kp, char *err, size_t errlen);

/* The ".pub" file that goes with a ".key" file, into out (outlen bytes). */
void busauth_pub_path(const char *keypath, char *out, size_t outlen);

/* The name of the file in dir that holds key (without ".pub"), into name;
 * Returns 1 found, 0 not. */
int busauth_allowed(const char *dir, const char *key, char *name, size_t namelen);


/* ---- the ZAP handler (used by bus.c) --------------------------------------- */

typedef struct busauth_zap busauth_zap;

/* Serve ZAP for ctx: allow the keys in allow_dir (may be NULL) and the one
 * key allow_key (may be NULL or ""). what names the socket in logs ("bus",
 * "rpc", "search"). Call before the server socket binds. Returns NULL with
 * err set. */
busauth_zap *busauth_zap_start(void *ctx, const char *what, const char *allow_dir,
                               const char *allow_key, char *err, size_t errlen);

/* Peers refused so far (unknown key, or not CURVE). */
uint64_t busauth_zap_refused(const busauth_zap *z);

/* Stop the handler. Call after zmq_ctx_shutdown(ctx) (its thread is then
 * woken with ETERM) and before zmq_ctx_term(ctx). Accepts NULL. */
void busauth_zap_stop(busauth_zap *z);

#endif
