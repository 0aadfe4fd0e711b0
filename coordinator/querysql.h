/* querysql.h - the SQL of the API queries, built without a database: a
 * Request's query (flows, top talkers, time series) into one of a fixed set
 * of statement texts and the values of its $n parameters, or a bad-request
 * error. db.c executes what this builds (db_run()); the fuzz target
 * tests/fuzz/fuzz_rpc.c checks it on any Request.
 *
 * What holds for every request (and fuzz_rpc checks): the text is one of
 * the templates (querysql_template()) - user input only ever reaches the
 * parameters -, every parameter is at most QUERYSQL_VALUE_MAX bytes, and a
 * refusal says why.
 */
#ifndef MSCOPE_QUERYSQL_H
#define MSCOPE_QUERYSQL_H

#include "mirrorscope.pb-c.h"

#include <stddef.h>
#include <stdint.h>

#define QUERYSQL_PARAMS 18     /* the most $n of any statement (flows) */
#define QUERYSQL_VALUE_MAX 256 /* bytes of a text filter value: no node name (WIRE_NODE_MAX),
                                * monitor name or address text is longer */
#define QUERYSQL_FLOWS_MAX 10000u /* rows of one flows page */
#define QUERYSQL_WINDOW_MIN_US 1000LL /* the narrowest window of a time-ordered walk */

typedef enum querysql_kind {
    QUERYSQL_NODES,   /* ListNodes: no user input; db.c keeps that statement */
    QUERYSQL_FLOWS,
    QUERYSQL_TALKERS,
    QUERYSQL_SERIES,
} querysql_kind;

/* The parameters of the flows statement that db.c's walk sets per round. */
enum { QUERYSQL_FLOWS_LIMIT = 7, QUERYSQL_FLOWS_MONITOR = 17, QUERYSQL_FLOWS_WLO = 12,
       QUERYSQL_FLOWS_WHI = 13 };

typedef struct querysql {
    querysql_kind kind;
    const char *sql;   /* static storage: one of querysql_template()'s texts */
    const char *probe; /* FLOWS: "is there a row in this window" with the same filters */
    int nparams;
    /* NULL is SQL NULL. Borrowed from the request (which must outlive this)
     * or pointing into v. */
    const char *params[QUERYSQL_PARAMS];
    char v[QUERYSQL_PARAMS][64];
    char cursor_node[QUERYSQL_VALUE_MAX]; /* FLOWS: the cursor's node, decoded */
    /* FLOWS: the page and the time-ordered walk over windows of first_ts
     * (db.c). Times in us; lo/hi the first window, INT64_MIN an open end. */
    uint32_t limit;
    int windowed, desc;
    int64_t now_us, from_us, to_us, lo, hi;
} querysql;

/* Build the statement of a query request (query_is_query()) at time now_ns:
 * checks the time range and every filter value. Returns 0, or -1 with err
 * set (the request is wrong: a bad request). */
int querysql_request(const Mirrorscope__Request *req, int64_t now_ns, querysql *out, char *err,
                     size_t errlen);

/* The same for one QueryFlows (drill-down pages; the range is not checked
 * here: the request's was). Returns 0, or -1 with err set. */
int querysql_flows(const Mirrorscope__QueryFlows *q, int64_t now_ns, querysql *out, char *err,
                   size_t errlen);

/* The i-th statement text this module can build (probes included), NULL past
 * the last: what the fuzz target checks every built text against. */
const char *querysql_template(int i);

/* A flows page's cursor: the last row's sort key, flow id and node as text
 * of the form KEY.FLOWID.HEXNODE (safe in a URL). */
void querysql_cursor_make(char *out, size_t len, const char *key, const char *flow_id,
                          const char *node);

#endif
