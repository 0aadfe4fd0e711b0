/* batch.h - a batch of flow records (and application records) on its way
 * to PostgreSQL, already in the bytes COPY takes (see batch.c), and its form
 * in the spool.
 *
 * The loop thread appends records as they come off the bus and seals the
 * batch for a writer (writer.h), which sends it with db_write(). Two
 * batches fill at once (batch_route): "ordered" ones hold interim records
 * and the finals that replace them, and are written one after the other;
 * "plain" ones hold every other final, and the application records, and
 * may be written in parallel.
 */
#ifndef MSCOPE_BATCH_H
#define MSCOPE_BATCH_H

#include "apprec.h"
#include "liveset.h"
#include "mirrorscope.pb-c.h"

#include <stddef.h>
#include <stdint.h>

typedef struct batch batch_t;

batch_t *batch_new(void);
void batch_free(batch_t *b); /* accepts NULL */

/* Which batch a record belongs in: ordered for interim records and for
 * finals whose flow has an interim row, plain for every other final. */
batch_t *batch_route(batch_t *plain, batch_t *ordered, liveset_t *live, const char *node,
                     const Mirrorscope__FlowRecord *r);

/* Encode r (copied) into b; live learns of interim rows and forgets those
 * a final replaces. */
void batch_append(batch_t *b, liveset_t *live, const char *node, const Mirrorscope__FlowRecord *r);

/* Encode an application record (a tuple of app_records, schema.h) into b,
 * and add it into its minute of app_minutes. Plain batches only: nothing
 * replaces an application record, so their order does not matter. */
void batch_append_app(batch_t *b, const char *node, const apprec *r);

/* 1 when r counts as an error in app_minutes: DNS rcode not 0 or no
 * response; TLS no ServerHello; HTTP status >= 500 or no response. */
int batch_app_error(const apprec *r);

/* Render the aggregates and give the batch its ledger id (unique across
 * restarts: the coordinator's start time and a counter). No appends after. */
void batch_seal(batch_t *b, const char *id);

/* Empty it for reuse (buffers kept). */
void batch_clear(batch_t *b);

/* Records of every kind (what fills a batch); flow records (finals and
 * interims: the coordinator's records_* figures); application records. */
uint64_t batch_records(const batch_t *b);
uint64_t batch_flow_records(const batch_t *b);
uint64_t batch_app_records(const batch_t *b);

/* A sealed batch as bytes (a header line, then the COPY data) for the
 * spool, into *buf (grown as needed; *cap its size), *len its length. */
void batch_encode(const batch_t *b, char **buf, size_t *cap, size_t *len);

/* Back from the spool: 0, or -1 for bytes that are not a batch. */
int batch_decode(batch_t *b, const char *data, size_t len);

/* What db_write() sends, borrowed from the batch: binary COPY tuples of
 * finals (fin) and interims (live) without the COPY file header and
 * trailer, text COPY of the keys of the finals that replace interim rows
 * (node TAB flow_id), text COPY of flow_minutes rows, the days the finals
 * fall in. */
typedef struct batch_view {
    const char *id;
    uint64_t records, finals, interims;
    const char *fin, *keys, *live, *mins;
    size_t fin_len, keys_len, live_len, mins_len;
    const int32_t *days;
    size_t ndays;
    /* application records: binary COPY tuples of app_records, text COPY of
     * app_minutes rows, the days they fall in */
    uint64_t apps;
    const char *app, *appmins;
    size_t app_len, appmins_len;
    const int32_t *appdays;
    size_t nappdays;
} batch_view;

void batch_view_of(const batch_t *b, batch_view *v);

#endif
