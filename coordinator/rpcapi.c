/* rpcapi.c - the protobuf RPC API (see rpcapi.h). */
#include "rpcapi.h"


#include "appquery.h"
#include "buswatch.h"
#include "drill.h"
#include "log.h"
#include "query.h"
#include "querysql.h"
#include "token.h"
#include "wire.h"
#include "timeparse.h"
#include "xmalloc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RPC_BURST 256           /* requests per wake-up before others get a turn */
#define RPC_MAX_NODES 4096

struct rpcapi {
    bus_rpc_t *sock;
    bus_watch_t *watch;
    rpcapi_opts o;
    char token[TOKEN_MAX];
    registry_t *reg;
    scatter_t *sc;
    dbpool_t *pool;
    uint8_t *rx;
    rpcapi_stats st;
};

/* A query on its way through the pool. */
typedef struct rpc_job {
    rpcapi_t *api;
    bus_peer client;
    Mirrorscope__Request *req; /* owned */
    Mirrorscope__Response resp;
} rpc_job;

static void rpcapi__send(rpcapi_t *a, const bus_peer *client, Mirrorscope__Response *resp,
                         const char *err)
{
    char line[1024];
    if (resp->status != MIRRORSCOPE__RESPONSE__STATUS__OK) {
        a->st.errors++;
        snprintf(line, sizeof line, "%s", err && *err ? err : "failed");
        line[strcspn(line, "\n")] = 0;
        resp->error = line;
        log_debug("rpc request refused: %s", line);
    }
    size_t n = mirrorscope__response__get_packed_size(resp);
    uint8_t *out = xmalloc(n + 1);
    mirrorscope__response__pack(resp, out);
    bus_rpc_send_to(a->sock, client, out, n); /* a client gone is no error of ours */
    free(out);
    resp->error = NULL;
}

static int rpcapi__work(db_t *db, void *arg, char *err, size_t errlen)
{
    rpc_job *j = arg;
    query_opts qo = { j->api->o.stale_ns, j->api->o.dead_ns };
    return query_run(db, &qo, j->req, &j->resp, err, errlen);
}

static void rpcapi__done(void *arg, int rc, const char *err)
{
    rpc_job *j = arg;
    rpcapi_t *a = j->api;
    a->st.queries_active--;
    if (rc < 0)
        j->resp.status = rc == QUERY_BAD_REQUEST ? MIRRORSCOPE__RESPONSE__STATUS__BAD_REQUEST
                                                 : MIRRORSCOPE__RESPONSE__STATUS__ERROR;
    rpcapi__send(a, &j->client, &j->resp, err);
    db_response_free(&j->resp);
    mirrorscope__request__free_unpacked(j->req, NULL);
    free(j);
}

/* A monitor request on its way (monitor.h answers it). */
typedef struct rpc_mon {
    rpcapi_t *api;
    bus_peer client;
} rpc_mon;

static void rpcapi__monitor_done(void *arg, Mirrorscope__Response *resp, const char *err)
{
    rpc_mon *mj = arg;
    mj->api->st.queries_active--;
    rpcapi__send(mj->api, &mj->client, resp, err);
    free(mj);
}

/* A drill-down that could not start: the client's answer. */
typedef struct rpc_drill {
    rpcapi_t *api;
    bus_peer client;
    uint64_t id;
} rpc_drill;

static void rpcapi__drill_started(void *ctx, int ok, int bad, const char *err)
{
    rpc_drill *d = ctx;
    if (ok) {
        free(d);
        return;
    }
    Mirrorscope__Response resp;
    mirrorscope__response__init(&resp);
    resp.id = d->id;
    resp.status = bad ? MIRRORSCOPE__RESPONSE__STATUS__BAD_REQUEST : MIRRORSCOPE__RESPONSE__STATUS__ERROR;
    rpcapi__send(d->api, &d->client, &resp, err);
    free(d);
}

rpcapi_route rpcapi_check(const uint8_t *buf, long len, const char *token, int monitors,
                          Mirrorscope__Request **out, Mirrorscope__Response__Status *status,
                          char *err, size_t errlen)
{
    *status = MIRRORSCOPE__RESPONSE__STATUS__BAD_REQUEST;
    /* An empty body is a valid protobuf (all defaults): it is then refused
     * below for its missing token and body. */
    Mirrorscope__Request *req = len >= 0 ? mirrorscope__request__unpack(NULL, (size_t)len, buf) : NULL;
    *out = req;
    if (!req) {
        snprintf(err, errlen, len < 0 ? "request too large" : "not a Request message");
        return RPCAPI_REFUSE;
    }
    if (!token_equal(token, req->token)) {
        *status = MIRRORSCOPE__RESPONSE__STATUS__UNAUTHENTICATED;
        snprintf(err, errlen, "missing or wrong token");
        return RPCAPI_REFUSE;
    }
    /* Monitor requests and drill-downs are copied for their jobs. */
    if (!wire_round_trip(&req->base)) {
        snprintf(err, errlen, "a field that does not survive a round trip (numbered 0?)");
        return RPCAPI_REFUSE;
    }
    switch (req->body_case) {
    case MIRRORSCOPE__REQUEST__BODY_SEARCH_CREDIT: return RPCAPI_CREDIT;
    case MIRRORSCOPE__REQUEST__BODY_SEARCH_CANCEL: return RPCAPI_CANCEL;
    case MIRRORSCOPE__REQUEST__BODY_SEARCH: {
        const Mirrorscope__SearchQuery *q = req->search;
        if (!q) {
            snprintf(err, errlen, "empty search");
            return RPCAPI_REFUSE;
        }
        if (q->flows_of) return drill_check(q, err, errlen) < 0 ? RPCAPI_REFUSE : RPCAPI_DRILL;
        return timeparse_check_range(q->from_ns, q->to_ns, err, errlen) < 0 ? RPCAPI_REFUSE
                                                                          : RPCAPI_SEARCH;
    }
    case MIRRORSCOPE__REQUEST__BODY_LIST_NODES:
    case MIRRORSCOPE__REQUEST__BODY_QUERY_FLOWS:
    case MIRRORSCOPE__REQUEST__BODY_TOP_TALKERS:
    case MIRRORSCOPE__REQUEST__BODY_TIME_SERIES: { /* query_is_query() */
        querysql qs; /* built again by the job: this only refuses a bad one early */
        return querysql_request(req, timeparse_now_ns(), &qs, err, errlen) < 0 ? RPCAPI_REFUSE
                                                                                 : RPCAPI_QUERY;
    }
    case MIRRORSCOPE__REQUEST__BODY_QUERY_APP: { /* query_is_query(): appquery.h */
        static _Thread_local appquery_stmt st; /* built again by the job */
        if (!req->query_app) {
            snprintf(err, errlen, "empty query_app");
            return RPCAPI_REFUSE;
        }
        return appquery_build(req->query_app, timeparse_now_ns(), &st, err, errlen) < 0
                   ? RPCAPI_REFUSE : RPCAPI_QUERY;
    }
    case MIRRORSCOPE__REQUEST__BODY_MONITOR:
    case MIRRORSCOPE__REQUEST__BODY_MONITOR_SERIES:
        if (!monitors) break;
        return monitor_check(req, err, errlen) < 0 ? RPCAPI_REFUSE : RPCAPI_MONITOR;
    default: break;
    }
    snprintf(err, errlen, "unknown request type");
    return RPCAPI_REFUSE;
}

/* A search over the nodes the registry knows (or the ones named), or a
 * drill-down (flows_of: drill.h), checked by rpcapi_check(). Returns 0 when
 * it streams (or, for a drill-down, will stream or be answered), -1 with err
 * (bad set when the request was wrong). */
static int rpcapi__search(rpcapi_t *a, const bus_peer *client, const Mirrorscope__Request *req,
                          int *bad, char *err, size_t errlen)
{
    const Mirrorscope__SearchQuery *q = req->search;
    if (q->flows_of) {
        rpc_drill *d = xcalloc(1, sizeof *d);
        *d = (rpc_drill){ a, *client, req->id };
        drill_env env = { a->pool, a->reg, a->sc };
        if (drill_start(&env, client, req->id, q, NULL, rpcapi__drill_started, d, err, errlen) == 0)
            return 0;
        free(d);
        *bad = 1;
        return -1;
    }
    scatter_node *nodes = xcalloc(RPC_MAX_NODES, sizeof *nodes);
    int rc = -1;
    int n = registry_search_nodes(a->reg, q->nodes, q->n_nodes, a->o.dead_ns, nodes,
                                  RPC_MAX_NODES, err, errlen);
    if (n < 0) *bad = 1;
    else rc = scatter_start(a->sc, client, req->id, q, nodes, n, NULL, err, errlen);
    free(nodes);
    return rc;
}

/* One request. len < 0: it was too large. */
static void rpcapi__request(rpcapi_t *a, long len)
{
    Mirrorscope__Response resp;
    mirrorscope__response__init(&resp);
    char err[1024] = "";
    bus_peer client;
    bus_rpc_peer(a->sock, &client);
    Mirrorscope__Request *req;
    a->st.requests++;
    rpcapi_route route = rpcapi_check(a->rx, len, a->token, a->o.monitors != NULL, &req,
                                      &resp.status, err, sizeof err);
    if (req) resp.id = req->id;
    int bad = 0;
    switch (route) {
    case RPCAPI_REFUSE:
        if (resp.status == MIRRORSCOPE__RESPONSE__STATUS__UNAUTHENTICATED) a->st.unauthenticated++;
        goto answer;
    case RPCAPI_CREDIT:
        scatter_credit(a->sc, &client, req->id, req->search_credit);
        goto done; /* streams take no answer */
    case RPCAPI_CANCEL:
        scatter_cancel(a->sc, &client, req->id);
        goto done;
    case RPCAPI_SEARCH:
    case RPCAPI_DRILL:
        if (rpcapi__search(a, &client, req, &bad, err, sizeof err) == 0) goto done;
        resp.status = bad ? MIRRORSCOPE__RESPONSE__STATUS__BAD_REQUEST
                          : MIRRORSCOPE__RESPONSE__STATUS__ERROR;
        goto answer;
    case RPCAPI_QUERY:
        if (a->st.queries_active >= (uint64_t)a->o.max_queries) {
            resp.status = MIRRORSCOPE__RESPONSE__STATUS__ERROR;
            snprintf(err, sizeof err, "busy: %d queries are running; try again later",
                     a->o.max_queries);
            goto answer;
        }
        rpc_job *j = xcalloc(1, sizeof *j);
        j->api = a;
        j->client = client;
        j->req = req;
        mirrorscope__response__init(&j->resp);
        j->resp.id = req->id;
        a->st.queries_active++;
        dbpool_submit(a->pool, rpcapi__work, rpcapi__done, j);
        return; /* answered by rpcapi__done() */
    case RPCAPI_MONITOR: {
        rpc_mon *mj = xmalloc(sizeof *mj);
        mj->api = a;
        mj->client = client;
        a->st.queries_active++;
        monitor_submit(a->o.monitors, req, rpcapi__monitor_done, mj);
        goto done;
    }
    }
answer:
    rpcapi__send(a, &client, &resp, err);
done:
    if (req) mirrorscope__request__free_unpacked(req, NULL);
}

static void rpcapi__on_readable(void *data)
{
    rpcapi_t *a = data;
    int q;
    size_t qlen;
    for (int i = 0; i < RPC_BURST && (q = bus_rpc_recv(a->sock, a->rx, RPCAPI_REQUEST_MAX, &qlen, 0)) != 0; i++) {
        if (q < 0 && q != -EMSGSIZE) break;
        rpcapi__request(a, q < 0 ? -1 : (long)qlen);
    }
    scatter_work(a->sc); /* credit may have come: send what it allows */
}

rpcapi_t *rpcapi_new(uv_loop_t *loop, bus_rpc_t *sock, const rpcapi_opts *o, registry_t *reg,
                     scatter_t *sc, dbpool_t *pool, char *err, size_t errlen)
{
    rpcapi_t *a = xcalloc(1, sizeof *a);
    a->sock = sock;
    a->o = *o;
    a->o.token = NULL;
    if (a->o.max_queries < 1) a->o.max_queries = 64;
    snprintf(a->token, sizeof a->token, "%s", o->token ? o->token : "");
    a->reg = reg;
    a->sc = sc;
    a->pool = pool;
    a->rx = xmalloc(RPCAPI_REQUEST_MAX);
    a->watch = bus_watch_new(loop, sock, rpcapi__on_readable, a, err, errlen);
    if (!a->watch) {
        rpcapi_free(a);
        return NULL;
    }
    return a;
}

void rpcapi_set_token(rpcapi_t *a, const char *token)
{
    explicit_bzero(a->token, sizeof a->token);
    snprintf(a->token, sizeof a->token, "%s", token);
}

void rpcapi_stop(rpcapi_t *a)
{
    if (!a) return;
    bus_watch_free(a->watch);
    a->watch = NULL;
}

void rpcapi_get_stats(const rpcapi_t *a, rpcapi_stats *out) { *out = a->st; }

void rpcapi_free(rpcapi_t *a)
{
    if (!a) return;
    rpcapi_stop(a);
    free(a->rx);
    free(a);
}
