/* db.h - the coordinator's PostgreSQL side (the only libpq user).
 *
 * Flow records arrive in batches, become COPY text (escaped) as they come,
 * and are written in one transaction per batch (see db_write). Final records
 * are COPY'd straight into `flows` (partitioned by day); interim records of
 * long flows live in `flows_live` until their final replaces them; the view
 * `flows_all` is both. Versioned migrations run at connect.
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

/* A growing buffer of COPY data. */
typedef struct db_text {
    char *buf;
    size_t len, cap;
} db_text;

typedef struct db_aggs db_aggs;

/* Records waiting to be written, as COPY data ready for PostgreSQL (owned by
 * the caller, reused): binary tuples for `flows` (finals) and `flows_live`
 * (interims), text for the keys of finals that replace an interim row and
 * for the per-minute aggregates, which are summed in memory and rendered by
 * db_batch_seal(). A sealed batch is what is written, and
 * what the spool keeps. */
typedef struct db_batch {
    db_text fin, keys, live, mins;
    db_aggs *agg;
    int32_t *days;          /* UTC days (partitions) the finals fall in */
    size_t ndays, capdays;
    char id[64];            /* ledger id, set by db_batch_seal() */
    uint64_t records, finals, interims;
    int sealed;
} db_batch;

/* The flows that have an interim row in flows_live, as 64-bit hashes of
 * (node, flow_id): a final record's key is sent for deletion from
 * flows_live only when its flow is here, so the common short flow costs
 * nothing extra. A false positive only deletes nothing. */
typedef struct db_liveset db_liveset;
db_liveset *db_liveset_new(void);
void db_liveset_free(db_liveset *s);

/* Load the set from flows_live (at start). Returns the count or -1. */
long db_liveset_load(db_t *d, db_liveset *s, char *err, size_t errlen);

void db_batch_append(db_batch *b, db_liveset *live, const char *node,
                     const Mirrorscope__FlowRecord *r);

/* Which batch a record belongs in: `ordered` for interim records and for
 * finals whose flow has an interim row (these must be written in arrival
 * order, one batch after the other), `plain` for every other final (such
 * batches may be written in parallel). */
db_batch *db_batch_route(db_batch *plain, db_batch *ordered, db_liveset *live, const char *node,
                         const Mirrorscope__FlowRecord *r);

/* Render the aggregates and give the batch its ledger id (unique across
 * restarts: the coordinator's start time and a counter). No appends after. */
void db_batch_seal(db_batch *b, const char *id);
void db_batch_clear(db_batch *b);
void db_batch_free(db_batch *b);

/* A sealed batch as bytes (header line + texts) for the spool, and back.
 * db_batch_decode() returns 0, or -1 for a file that is not a batch. */
void db_batch_encode(const db_batch *b, db_text *out);
int db_batch_decode(db_batch *b, const char *data, size_t len);

/* Write a sealed batch in one transaction: COPY the finals into `flows`,
 * merge the interims into `flows_live` (dropping those whose final came),
 * add the aggregates into `flow_minutes`, record the id in the ledger.
 * A batch whose id the ledger already holds is skipped (a replay after a
 * crash between commit and spool deletion). Returns 0 (written or already
 * there: clear it), -1 with err set (nothing written: retry later), or -2
 * when PostgreSQL refused the rows themselves (a data exception or an
 * integrity violation: they will never go; set them aside). */
int db_write(db_t *d, const db_batch *b, char *err, size_t errlen);

/* Index the day partitions before today that are not indexed yet (the
 * current day has only its BRIN time index, so COPY runs at full speed).
 * Returns the number indexed, or -1 with err set. */
int db_index_sealed(db_t *d, char *err, size_t errlen);

/* Insert or update a node from its heartbeat (parameterised). */
int db_upsert_node(db_t *d, const Mirrorscope__Heartbeat *hb, uint64_t gaps, char *err,
                   size_t errlen);

/* 1 when the connection is usable (as libpq last saw it). */
int db_ok(db_t *d);

/* A round trip ("SELECT 1"): 0, or -1 with err set. */
int db_ping(db_t *d, char *err, size_t errlen);

/* Housekeeping, hourly: prune the batch ledger; with days > 0 also drop day
 * partitions of flows, and per-minute and live rows, older than days.
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
