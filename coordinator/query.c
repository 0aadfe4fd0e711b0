/* query.c - the query layer shared by the RPC and REST APIs (see query.h). */
#include "query.h"

#include "timeparse.h"

#include <stdio.h>

int query_is_query(const Mirrorscope__Request *req)
{
    switch (req->body_case) {
    case MIRRORSCOPE__REQUEST__BODY_LIST_NODES:
    case MIRRORSCOPE__REQUEST__BODY_QUERY_FLOWS:
    case MIRRORSCOPE__REQUEST__BODY_TOP_TALKERS:
    case MIRRORSCOPE__REQUEST__BODY_TIME_SERIES: return 1;
    default: return 0;
    }
}

int query_run(db_t *db, const query_opts *o, const Mirrorscope__Request *req,
              Mirrorscope__Response *resp, char *err, size_t errlen)
{
    int bad = 0, rc;
    int64_t from = 0, to = 0;
    switch (req->body_case) {
    case MIRRORSCOPE__REQUEST__BODY_QUERY_FLOWS:
        from = req->query_flows->from_ns, to = req->query_flows->to_ns;
        break;
    case MIRRORSCOPE__REQUEST__BODY_TOP_TALKERS:
        from = req->top_talkers->from_ns, to = req->top_talkers->to_ns;
        break;
    case MIRRORSCOPE__REQUEST__BODY_TIME_SERIES:
        from = req->time_series->from_ns, to = req->time_series->to_ns;
        break;
    default: break;
    }
    if (timeparse_check_range(from, to, err, errlen) < 0) return QUERY_BAD_REQUEST;
    switch (req->body_case) {
    case MIRRORSCOPE__REQUEST__BODY_LIST_NODES:
        rc = db_list_nodes(db, o->stale_ns, o->dead_ns, resp, err, errlen);
        break;
    case MIRRORSCOPE__REQUEST__BODY_QUERY_FLOWS:
        rc = db_query_flows(db, req->query_flows, resp, &bad, err, errlen);
        break;
    case MIRRORSCOPE__REQUEST__BODY_TOP_TALKERS:
        rc = db_top_talkers(db, req->top_talkers, resp, &bad, err, errlen);
        break;
    case MIRRORSCOPE__REQUEST__BODY_TIME_SERIES:
        rc = db_time_series(db, req->time_series, resp, &bad, err, errlen);
        break;
    default:
        snprintf(err, errlen, "unknown request type");
        return QUERY_BAD_REQUEST;
    }
    if (rc == 0) return 0;
    if (bad) return QUERY_BAD_REQUEST;
    return db_ok(db) ? QUERY_FAILED : QUERY_UNREACHABLE;
}
