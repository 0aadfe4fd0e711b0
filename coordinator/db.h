/* db.h - the coordinator's PostgreSQL side (the only libpq user).
 *
 * Flow records arrive in batches; each batch is appended to a COPY buffer
 * (text format, escaped), then written in one transaction: COPY into a
 * staging table, create the day partitions it needs, merge into `flows`
 * (an interim record is replaced by a later one of the same flow, never a
 * final by an interim). Versioned migrations run at connect.
 */
#ifndef MSCOPE_DB_H
#define MSCOPE_DB_H

#include "mirrorscope.pb-c.h"

#include <stddef.h>
#include <stdint.h>

typedef struct db db_t;

/* Connect with a libpq connection string (or "" for the PG* environment)
 * and apply pending migrations. Returns NULL with err set. */
db_t *db_open(const char *conninfo, char *err, size_t errlen);
void db_close(db_t *d);

/* Records waiting to be written (owned by the caller, reused). */
typedef struct db_batch {
    char *buf;
    size_t len, cap;
    uint64_t records;
} db_batch;

void db_batch_append(db_batch *b, const char *node, const Mirrorscope__FlowRecord *r);
void db_batch_clear(db_batch *b);
void db_batch_free(db_batch *b);

/* Write a batch in one transaction. Returns 0 (the batch may be cleared) or
 * -1 with err set (nothing was written: retry the same batch later). */
int db_write(db_t *d, const db_batch *b, char *err, size_t errlen);

/* Insert or update a node from its heartbeat (parameterised). */
int db_upsert_node(db_t *d, const Mirrorscope__Heartbeat *hb, uint64_t gaps, char *err,
                   size_t errlen);

/* 1 when the connection is usable. */
int db_ok(db_t *d);

/* Drop day partitions of flows, and per-minute rows, older than days.
 * Returns the number of partitions dropped, or -1 with err set. */
int db_retention(db_t *d, int days, char *err, size_t errlen);

/* ---- queries for the RPC API ---------------------------------------------
 * Each fills the repeated fields of resp (allocations owned by the caller's
 * arena: free with db_response_free()). Filter values travel as $n
 * parameters only. Returns 0, or -1 with err set; bad_request is set when
 * the request itself was wrong (e.g. a host that is not an address). */
int db_list_nodes(db_t *d, int64_t stale_ns, int64_t dead_ns, Mirrorscope__Response *resp,
                  char *err, size_t errlen);
int db_query_flows(db_t *d, const Mirrorscope__QueryFlows *q, Mirrorscope__Response *resp,
                   int *bad_request, char *err, size_t errlen);
int db_top_talkers(db_t *d, const Mirrorscope__TopTalkers *q, Mirrorscope__Response *resp,
                   int *bad_request, char *err, size_t errlen);
int db_time_series(db_t *d, const Mirrorscope__TimeSeries *q, Mirrorscope__Response *resp,
                   int *bad_request, char *err, size_t errlen);
void db_response_free(Mirrorscope__Response *resp);

#endif
