/* appquery.h - application records (DNS, TLS, HTTP) and their per-minute
 * aggregates out of PostgreSQL for both APIs (query.h dispatches a
 * Request's QueryApp here, on a database job's thread).
 *
 * Rows of app_records are read back into the C record (apprec.h) and from
 * it into the .proto's AppRecord by the recorder's own mapping (apppb.h),
 * so the CLI and the REST API print them with the recorder's JSON writer:
 * one set of field names, whatever the path. Filter values reach SQL only
 * as $n parameters.
 */
#ifndef MSCOPE_APPQUERY_H
#define MSCOPE_APPQUERY_H

#include "db.h"
#include "mirrorscope.pb-c.h"

#include <stddef.h>
#include <stdint.h>

#define APPQUERY_PARAMS 17
#define APPQUERY_TEXT_MAX 256     /* node, client, server: as querysql.h's values */
#define APPQUERY_PATTERN_MAX 120  /* name, uri: their LIKE patterns stay under 256 bytes */
#define APPQUERY_ROWS_MAX 10000u

/* A QueryApp's statement: one of appquery_template()'s texts and the
 * values of its parameters (NULL: SQL NULL, the filter not given). */
typedef struct appquery_stmt {
    const char *sql;
    int nparams, kind, top;
    uint32_t limit;
    const char *params[APPQUERY_PARAMS];
    char v[APPQUERY_PARAMS][256]; /* last: cleared up to here */
} appquery_stmt;

/* Build q's statement at time now_ns without a database: checks the kind,
 * the time range, the limit and every filter value (rpcapi_check() refuses
 * a bad request with it before any job). Returns 0, or -1 with err set. */
int appquery_build(const Mirrorscope__QueryApp *q, int64_t now_ns, appquery_stmt *st, char *err,
                   size_t errlen);

/* The i-th statement text appquery_build() can give, NULL past the last. */
const char *appquery_template(int i);

/* Fill resp->app_rows (or, with q->top, resp->app_aggregates). Each element
 * is one allocation (its sub-messages and text inside it), which
 * db_response_free() frees. Returns 0, or -1 with err set and *bad_request
 * set when the request itself was wrong (a kind, limit, filter or address
 * that does not parse). */
int appquery_run(db_t *db, const Mirrorscope__QueryApp *q, Mirrorscope__Response *resp,
                 int *bad_request, char *err, size_t errlen);

/* 1, 2, 3 for "dns", "tls", "http"; 0 for anything else. */
int appquery_kind(const char *name);

#endif
