/* db.h - the coordinator's PostgreSQL side (the only libpq user).
 *
 * Flow records arrive in batches already encoded for COPY (batch.h) and are
 * written in one transaction per batch (db_write). Final records are COPY'd
 * straight into `flows` (partitioned by day); interim records of long flows
 * live in `flows_live` until their final replaces them; the view `flows_all`
 * is both. Application records go into `app_records` (by day) and their
 * aggregates into `app_minutes` in the same transaction. The schema's
 * migrations (schema.h) run at connect. A db_t is one
 * connection, used by one thread at a time.
 */
#ifndef MSCOPE_DB_H
#define MSCOPE_DB_H

#include "batch.h"
#include "liveset.h"
#include "mirrorscope.pb-c.h"
#include "querysql.h"

#include <stddef.h>
#include <stdint.h>

typedef struct db db_t;

/* Connect with a libpq connection string (or "" for the PG* environment)
 * and apply pending migrations. Returns NULL with err set. */
db_t *db_open(const char *conninfo, char *err, size_t errlen);
void db_close(db_t *d);

/* Fill s from flows_live (at start). Returns the count or -1. */
long db_liveset_load(db_t *d, liveset_t *s, char *err, size_t errlen);

/* Write a sealed batch in one transaction: COPY the finals into `flows`,
 * merge the interims into `flows_live` (dropping those whose final came),
 * add the aggregates into `flow_minutes`, record the id in the ledger.
 * A batch whose id the ledger already holds is skipped (a replay after a
 * crash between commit and spool deletion). Returns 0 (written or already
 * there: clear it), -1 with err set (nothing written: the server or the
 * connection failed; retry later), or -2 when PostgreSQL refused the rows
 * themselves (any other error: they will never go; set them aside). */
int db_write(db_t *d, const batch_t *b, char *err, size_t errlen);

/* Index the day partitions before today that are not indexed yet (the
 * current day has only its BRIN time index, so COPY runs at full speed).
 * Returns the number indexed, or -1 with err set. */
int db_index_sealed(db_t *d, char *err, size_t errlen);

/* Summarise the BRIN time indexes of the day partitions `day` (days since
 * 1970, UTC) of flows and app_records over the rows written since the last call, so time-ordered
 * queries on the day being written prune as well as on sealed days. Gives
 * up at once (returns 0) while another session holds the partition for an
 * index build or VACUUM. Returns the block ranges summarised, or -1. */
int db_summarize_day(db_t *d, int day, char *err, size_t errlen);

/* Insert or update a node from its heartbeat (parameterised), with its
 * gap count and its clock's offset from ours (NULL: not measured; see
 * registry.h). Returns 0, or -1 with err set. */
int db_upsert_node(db_t *d, const Mirrorscope__Heartbeat *hb, uint64_t gaps,
                   const int64_t *clock_offset_ns, char *err, size_t errlen);

/* 1 when the connection is usable (as libpq last saw it). */
int db_ok(db_t *d);

/* A round trip ("SELECT 1"): 0, or -1 with err set. */
int db_ping(db_t *d, char *err, size_t errlen);

/* Renice this connection's server process (it must be on this machine:
 * the embedded server, or any server reached by a Unix socket), and let it
 * start no parallel workers (they would run at the server's priority).
 * Returns 0, or -1 when it is not local or the kernel refused. */
int db_lower_priority(db_t *d, int nice);

/* Housekeeping, hourly: prune the batch ledger; with days > 0 also drop day
 * partitions of flows, and per-minute and live rows, older than days.
 * Returns the number of partitions dropped, or -1 with err set. */
int db_retention(db_t *d, int days, char *err, size_t errlen);

/* One parameterised statement for a module that keeps its SQL itself
 * (monitor.c, monseries.c): fn (may be NULL) gets each row's values as text,
 * NULL for SQL NULL (at most 64 columns). Returns the rows returned or
 * affected, or -1 with err set and sqlstate (if not NULL) PostgreSQL's code,
 * e.g. "23505" for a duplicate key. */
typedef void (*db_row_fn)(void *arg, int ncols, const char *const *vals);
long db_exec_params(db_t *d, const char *sql, int n, const char *const *params, db_row_fn fn,
                    void *arg, char sqlstate[6], char *err, size_t errlen);

/* ---- queries for the APIs (query.h calls these) ----------------------------
 * Each fills the repeated fields of resp (free them with db_response_free()).
 * The statements and their parameters are built by querysql.h, without a
 * database; filter values travel as $n parameters only. Returns 0, or -1
 * with err set; bad_request is set when the request itself was wrong (e.g. a
 * host that is not an address, which only PostgreSQL's inet finds). */
int db_list_nodes(db_t *d, int64_t stale_ns, int64_t dead_ns, Mirrorscope__Response *resp,
                  char *err, size_t errlen);
/* Run a statement querysql_request() built (flows, top talkers, series). */
int db_run(db_t *d, const querysql *qs, Mirrorscope__Response *resp, int *bad_request,
           char *err, size_t errlen);
/* One page of flows (querysql_flows(), then db_run()): the drill-down's. */
int db_query_flows(db_t *d, const Mirrorscope__QueryFlows *q, Mirrorscope__Response *resp,
                   int *bad_request, char *err, size_t errlen);
/* A monitor's tcpdump expression for its packets ("" for all) into filter
 * (may be NULL: only "does it exist"). Returns 0, or -1 with err set
 * (bad_request when there is no monitor of that name). */
int db_monitor_filter(db_t *d, const char *name, char *filter, size_t filterlen, int *bad_request,
                      char *err, size_t errlen);
void db_response_free(Mirrorscope__Response *resp);

#endif
