/* dbpool.h - blocking database work off the coordinator's loop.
 *
 * Queries for the APIs, node registry writes and the hourly housekeeping
 * (partition indexing, retention) run on libuv's thread pool, each with a
 * connection of its own taken from a small pool, so no query and no
 * CREATE INDEX ever stalls the bus or a search. A job's done callback runs
 * on the loop thread, where the answer is sent.
 *
 * Connections are opened on demand (at most one per pool thread), their
 * server processes reniced (nice 10) when the server is on this machine so
 * the writers' COPY comes first, checked after each job and dropped when
 * broken; while the database is away a new
 * connection is tried at most once a second and jobs fail at once with
 * "the database is not reachable" rather than queue up behind timeouts.
 */
#ifndef MSCOPE_DBPOOL_H
#define MSCOPE_DBPOOL_H

#include "db.h"

#include <stddef.h>
#include <uv.h>

typedef struct dbpool dbpool_t;

/* Runs on a pool thread with a working connection. Returns 0 or -1 with err
 * set (the job decides what its result means). */
typedef int (*dbpool_work_fn)(db_t *db, void *arg, char *err, size_t errlen);

/* Runs on the loop thread when the job has ended: rc is the work's result,
 * or DBPOOL_UNREACHABLE with err set when no connection could be had (the
 * work did not run). err is borrowed for the call. */
#define DBPOOL_UNREACHABLE (-1000)
typedef void (*dbpool_done_fn)(void *arg, int rc, const char *err);

/* conninfo: libpq's string ("" for the PG* environment), copied. */
dbpool_t *dbpool_new(uv_loop_t *loop, const char *conninfo);

/* Queue a job. arg is the caller's until done is called (always, once). */
void dbpool_submit(dbpool_t *p, dbpool_work_fn work, dbpool_done_fn done, void *arg);

/* Jobs queued or running now. */
int dbpool_busy(const dbpool_t *p);

/* Close the connections. Call once no job is left (the loop has run dry).
 * Accepts NULL. */
void dbpool_free(dbpool_t *p);

#endif
