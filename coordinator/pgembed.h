/* pgembed.h - the coordinator's own PostgreSQL, for zero-setup runs.
 *
 * With no database configured the coordinator keeps a private cluster under
 * DIR/pgdata (initdb on first use), listening only on a Unix socket in
 * DIR/pgrun, and stops it on exit; the server's output goes to
 * DIR/postgresql.log. PostgreSQL refuses to run as root, so when we are root
 * the server runs as the `postgres` user (Debian's postgresql package creates
 * it). If that user cannot reach DIR (under a 0700 home, say), the cluster
 * and its socket live in $MSCOPE_PGEMBED_ROOT (default
 * /var/lib/mscope/pgembed)/<DIR's name>-<hash>/, owned by `postgres`, and
 * DIR/pgdata and DIR/pgrun are links to them.
 */
#ifndef MSCOPE_PGEMBED_H
#define MSCOPE_PGEMBED_H

#include <stddef.h>

typedef struct pgembed pgembed_t;

/* Initialise (first time) and start the cluster for the existing directory
 * dir; write a libpq connection string for it into conninfo. Returns the
 * handle, or NULL with err set to one line saying why (for a failed initdb
 * or pg_ctl, the line of the log that gives the cause). */
pgembed_t *pgembed_start(const char *dir, int port, char *conninfo, size_t conninfo_len,
                         char *err, size_t errlen);

/* Stop the server (fast shutdown: SIGINT to the postmaster its
 * postmaster.pid names now, then wait for it to be gone, at most 2
 * minutes; a warning when it cannot) and free. Runs no program, so it
 * works under the seccomp filter. Accepts NULL. */
void pgembed_stop(pgembed_t *pg);

#endif
