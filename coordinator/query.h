/* query.h - the one query layer behind both APIs (the protobuf RPC and the
 * REST API): a Request's query - nodes, flows, top talkers, time series,
 * application records (appquery.h) -
 * answered from PostgreSQL into a Response. Runs on a database job thread
 * (dbpool.h) with that job's connection.
 */
#ifndef MSCOPE_QUERY_H
#define MSCOPE_QUERY_H

#include "db.h"
#include "mirrorscope.pb-c.h"

#include <stddef.h>
#include <stdint.h>

typedef struct query_opts {
    int64_t stale_ns, dead_ns; /* node states in ListNodes */
} query_opts;

enum {
    QUERY_BAD_REQUEST = -1, /* the request itself is wrong: err says how */
    QUERY_FAILED = -2,      /* the database failed the query */
    QUERY_UNREACHABLE = -3, /* the connection is gone */
};

/* 1 when req is a query (and not a search or an unknown body). */
int query_is_query(const Mirrorscope__Request *req);

/* Fill resp (free with db_response_free()). Returns 0, or one of the codes
 * above with err set. */
int query_run(db_t *db, const query_opts *o, const Mirrorscope__Request *req,
              Mirrorscope__Response *resp, char *err, size_t errlen);

#endif
