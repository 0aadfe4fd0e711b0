/* query.c - the query layer shared by the RPC and REST APIs (see query.h). */
#include "query.h"

#include "appquery.h"
#include "querysql.h"
#include "timeparse.h"

#include <stdio.h>

int query_is_query(const Mirrorscope__Request *req)
{
    switch (req->body_case) {
    case MIRRORSCOPE__REQUEST__BODY_LIST_NODES:
    case MIRRORSCOPE__REQUEST__BODY_QUERY_FLOWS:
    case MIRRORSCOPE__REQUEST__BODY_TOP_TALKERS:
    case MIRRORSCOPE__REQUEST__BODY_TIME_SERIES:
    case MIRRORSCOPE__REQUEST__BODY_QUERY_APP: return 1;
    default: return 0;
    }
}

int query_run(db_t *db, const query_opts *o, const Mirrorscope__Request *req,
              Mirrorscope__Response *resp, char *err, size_t errlen)
{
    int bad = 0, rc;
    if (req->body_case == MIRRORSCOPE__REQUEST__BODY_QUERY_APP) {
        rc = appquery_run(db, req->query_app, resp, &bad, err, errlen);
        goto out;
    }
    querysql qs;
    if (querysql_request(req, timeparse_now_ns(), &qs, err, errlen) < 0) return QUERY_BAD_REQUEST;
    rc = qs.kind == QUERYSQL_NODES
                 ? db_list_nodes(db, o->stale_ns, o->dead_ns, resp, err, errlen)
                 : db_run(db, &qs, resp, &bad, err, errlen);
out:
    if (rc == 0) return 0;
    if (bad) return QUERY_BAD_REQUEST;
    return db_ok(db) ? QUERY_FAILED : QUERY_UNREACHABLE;
}
