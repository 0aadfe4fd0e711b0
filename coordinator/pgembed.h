/* pgembed.h - the coordinator's own PostgreSQL, for zero-setup runs.
 *
 * With no database configured the coordinator keeps a private cluster under
 * DIR/pgdata (initdb on first use), listening only on a Unix socket in
 * DIR/pgrun, and stops it on exit. PostgreSQL refuses to run as root, so
 * when we are root the server runs as the `postgres` user (Debian's
 * postgresql package creates it); DIR is then made traversable (0711) for it.
 */
#ifndef MSCOPE_PGEMBED_H
#define MSCOPE_PGEMBED_H

#include <stddef.h>

typedef struct pgembed pgembed_t;

/* Initialise (first time) and start the cluster; write a libpq connection
 * string for it into conninfo. Returns NULL with err set. */
pgembed_t *pgembed_start(const char *dir, int port, char *conninfo, size_t conninfo_len,
                         char *err, size_t errlen);

/* Stop the server (fast shutdown) and free. Accepts NULL. */
void pgembed_stop(pgembed_t *pg);

#endif
