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
 *     role = recorder                   (or client, or "recorder, client")
 *
 * A pair's file (NAME.key) must not be readable by group or others; its
 * public half goes in NAME.pub, which is what a server's allow-list
 * directory holds (one file per allowed peer; the directory is read at
 * every handshake, so adding or removing a file takes effect for the next
 * connection without a restart).
 *
 * The role line says what an allowed key is for: "recorder" may publish on
 * the coordinator's bus, "client" may use its RPC (the mscope CLI). A server
 * socket's ZAP handler is told which role its peers need and refuses a key
 * whose file names other roles only, as it refuses an unknown key. A file
 * without a role line (keys made before roles existed) is let in wherever
 * it is allowed, with a warning at the key's first handshake.
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

/* Roles of a key (bits). */
#define BUSAUTH_ROLE_RECORDER 1u /* publishes flow records and heartbeats on the bus */
#define BUSAUTH_ROLE_CLIENT   2u /* uses the coordinator's RPC */

typedef struct busauth_pair {
    char pub[BUSAUTH_KEY_LEN + 1];
    char sec[BUSAUTH_KEY_LEN + 1]; /* "" when only the public half is known */
    unsigned roles;                /* BUSAUTH_ROLE_* of the file's role line; 0: none given */
} busauth_pair;

/* 1 when this libzmq can do CURVE. */
int busauth_available(void);

/* Parse a role list ("recorder", "client", "recorder, client"; commas and
 * blanks between names) into BUSAUTH_ROLE_* bits. Returns 0, or -1 with
 * err naming the first unknown word (or saying the list is empty). */
int busauth_roles_parse(const char *text, unsigned *roles, char *err, size_t errlen);

/* The text of a role set as a role line writes it ("recorder, client"),
 * "" for 0. A static string. */
const char *busauth_roles_str(unsigned roles);

/* A new random key pair (roles 0). Returns 0, or -1 with err set. */
int busauth_generate(busauth_pair *kp, char *err, size_t errlen);

/* Write kp's pair to keypath (mode 0600) and its public half to pubpath
 * (0644), with a role line when kp->roles is not 0; neither may exist yet
 * (a key is never overwritten). Returns 0, or -1 with err naming the file. */
int busauth_write(const busauth_pair *kp, const char *keypath, const char *pubpath, char *err,
                  size_t errlen);

/* Read a key file (its role line, if any, into kp->roles). With
 * need_secret, the file must hold a pair and must not be readable by group
 * or others. Returns 0, or -1 with err naming the file and line (a
 * malformed line, an unknown role, a second role line). */
int busauth_load(const char *path, int need_secret, busauth_pair *kp, char *err, size_t errlen);

/* Read the pair at keypath; when it does not exist, make one and write it
 * there with its public half next to it (keypath with ".key" replaced by
 * ".pub", or ".pub" appended), whose role line names roles (0: none).
 * Returns 0 read, 1 created, -1 with err. */
int busauth_load_or_create(const char *keypath, unsigned roles, busauth_pair *kp, char *err,
                           size_t errlen);

/* The ".pub" file that goes with a ".key" file, into out (outlen bytes). */
void busauth_pub_path(const char *keypath, char *out, size_t outlen);

/* What an allow-list directory says of a key (busauth_allowed()). */
typedef struct busauth_grant {
    char name[256]; /* found: a file of dir that holds the key, without ".pub" */
    unsigned roles; /* found: its files' roles together; 0 when one has no role line */
    char bad[512];  /* not found: why a file that names the key was not read; else "" */
} busauth_grant;

/* Whether dir allows key, and with which roles (into g). Files that do not
 * parse are skipped (logged at debug level; one that names the key said in
 * g->bad). Returns 1 found, 0 not. */
int busauth_allowed(const char *dir, const char *key, busauth_grant *g);


/* ---- the ZAP handler (used by bus.c) --------------------------------------- */

typedef struct busauth_zap busauth_zap;

/* Serve ZAP for ctx: allow the keys in allow_dir (may be NULL) that have
 * the role need_role (BUSAUTH_ROLE_*; 0: any key of allow_dir), and the one
 * key allow_key (may be NULL or ""; no role asked). A key of allow_dir
 * whose file has no role line is let in, and named in a warning once per
 * process. what names the socket in logs ("bus", "rpc", "search"). Call
 * before the server socket binds. Returns NULL with err set. */
busauth_zap *busauth_zap_start(void *ctx, const char *what, const char *allow_dir,
                               const char *allow_key, unsigned need_role, char *err,
                               size_t errlen);

/* Peers refused so far (unknown key, a key without the role the socket
 * needs, or not CURVE). */
uint64_t busauth_zap_refused(const busauth_zap *z);

/* Stop the handler. Call after zmq_ctx_shutdown(ctx) (its thread is then
 * woken with ETERM) and before zmq_ctx_term(ctx). Accepts NULL. */
void busauth_zap_stop(busauth_zap *z);

#endif
