/* fuzz_rpc.c - what the coordinator does with an RPC request before it
 * reaches PostgreSQL or a recorder (coordinator/rpcapi.c).
 *
 * An input is a Request message as it comes off the ROUTER socket. It goes
 * through rpcapi_check() - the handler's own first step: decode by
 * protobuf-c, the token, the route, and the body's checks (time ranges,
 * filter values and the SQL they make, a monitor's definition with its
 * filter compiled by libpcap, a drill-down's flows query) - and then
 * through what the route does next short of the database or the sockets:
 * a query's statement (querysql.c) is checked to be one of the fixed
 * templates with at most QUERYSQL_VALUE_MAX bytes per parameter and exactly
 * the parameters it names; a monitor request and a drill-down are copied as
 * their jobs copy them (pbcopy); a search picks its recorders from a
 * registry of two; a refusal is packed as the answer a client gets. Every
 * other input seen with the token: a wrong token is refused, always.
 */
#include "fuzz.h"
#include "mirrorscope.pb-c.h"
#include "pbcopy.h"
#include "appquery.h"
#include "querysql.h"
#include "registry.h"
#include "rpcapi.h"
#include "timeparse.h"
#include "token.h"

#include <stdlib.h>
#include <string.h>

#define FUZZ_TOKEN "fuzz-rpc-token-0123456789"

static registry_t *fuzz_reg;

/* Two recorders that sent a heartbeat just now. */
static void fuzz__registry(void)
{
    fuzz_reg = registry_new();
    const char *names[] = { "rec-a", "rec-b" };
    for (int i = 0; i < 2; i++) {
        Mirrorscope__Heartbeat hb = MIRRORSCOPE__HEARTBEAT__INIT;
        hb.node = (char *)names[i];
        hb.search_endpoint = (char *)"tcp://127.0.0.1:1";
        hb.time_ns = timeparse_now_ns();
        hb.start_ns = 1;
        uint8_t buf[256];
        size_t n = mirrorscope__heartbeat__pack(&hb, buf);
        Mirrorscope__Heartbeat *h = mirrorscope__heartbeat__unpack(NULL, n, buf);
        FUZZ_CHECK(h);
        registry_heartbeat(fuzz_reg, &h, "");
    }
}

/* The largest $n a statement names. */
static int fuzz__max_param(const char *sql)
{
    int max = 0;
    for (const char *p = strchr(sql, '$'); p; p = strchr(p + 1, '$'))
        if (p[1] >= '1' && p[1] <= '9') {
            int n = atoi(p + 1);
            if (n > max) max = n;
        }
    return max;
}

static int fuzz__is_template(const char *sql)
{
    for (int i = 0; querysql_template(i); i++)
        if (sql == querysql_template(i)) return 1;
    return 0;
}

/* An application records query (appquery.h): the same promises. */
static void fuzz__app_query(const Mirrorscope__Request *req)
{
    static appquery_stmt st;
    char err[1024] = "";
    FUZZ_CHECK(appquery_build(req->query_app, timeparse_now_ns(), &st, err, sizeof err) == 0);
    int known = 0;
    for (int i = 0; appquery_template(i); i++) known |= st.sql == appquery_template(i);
    FUZZ_CHECK(known && st.nparams > 0 && st.nparams <= APPQUERY_PARAMS);
    FUZZ_CHECK(fuzz__max_param(st.sql) == st.nparams);
    for (int i = 0; i < st.nparams; i++)
        FUZZ_CHECK(!st.params[i] || strlen(st.params[i]) < APPQUERY_TEXT_MAX);
    FUZZ_CHECK(st.limit >= 1 && st.limit <= APPQUERY_ROWS_MAX);
}

static void fuzz__query(const Mirrorscope__Request *req)
{
    querysql qs;
    char err[1024] = "";
    if (req->body_case == MIRRORSCOPE__REQUEST__BODY_QUERY_APP) {
        fuzz__app_query(req);
        return;
    }
    /* rpcapi_check() let it in: the job's build must succeed too. */
    FUZZ_CHECK(querysql_request(req, timeparse_now_ns(), &qs, err, sizeof err) == 0);
    if (qs.kind == QUERYSQL_NODES) {
        FUZZ_CHECK(req->body_case == MIRRORSCOPE__REQUEST__BODY_LIST_NODES);
        return;
    }
    FUZZ_CHECK(qs.sql && fuzz__is_template(qs.sql));
    FUZZ_CHECK(qs.nparams > 0 && qs.nparams <= QUERYSQL_PARAMS);
    FUZZ_CHECK(fuzz__max_param(qs.sql) == qs.nparams);
    for (int i = 0; i < qs.nparams; i++)
        FUZZ_CHECK(!qs.params[i] || strlen(qs.params[i]) < QUERYSQL_VALUE_MAX);
    if (qs.kind != QUERYSQL_FLOWS) return;
    FUZZ_CHECK(qs.probe && fuzz__is_template(qs.probe) && fuzz__max_param(qs.probe) == qs.nparams);
    FUZZ_CHECK(qs.limit >= 1 && qs.limit <= QUERYSQL_FLOWS_MAX);
    /* The walk sets the window; the build leaves it open. */
    FUZZ_CHECK(!qs.params[QUERYSQL_FLOWS_WLO] && !qs.params[QUERYSQL_FLOWS_WHI]);
    if (qs.windowed && qs.lo != INT64_MIN && qs.hi != INT64_MIN) FUZZ_CHECK(qs.lo < qs.hi);
    /* A cursor made of a page's last row reads back as that row. */
    if (qs.params[9]) {
        char c[600];
        querysql_cursor_make(c, sizeof c, qs.params[9], qs.params[10], qs.params[11]);
        Mirrorscope__QueryFlows again = *req->query_flows;
        again.cursor = c;
        querysql back;
        FUZZ_CHECK(querysql_flows(&again, 0, &back, err, sizeof err) == 0);
        FUZZ_CHECK(!strcmp(back.params[9], qs.params[9]) && !strcmp(back.params[10], qs.params[10]) &&
                   !strcmp(back.params[11], qs.params[11]));
    }
}

static void fuzz__search(const Mirrorscope__Request *req)
{
    const Mirrorscope__SearchQuery *q = req->search;
    scatter_node nodes[4];
    char err[1024] = "";
    int n = registry_search_nodes(fuzz_reg, q->nodes, q->n_nodes, INT64_MAX / 2, nodes, 4, err,
                                  sizeof err);
    if (n < 0) FUZZ_CHECK(err[0]);
    else FUZZ_CHECK(n <= 2);
    /* What each recorder is sent carries the query. */
    Mirrorscope__NodeSearchRequest r = MIRRORSCOPE__NODE_SEARCH_REQUEST__INIT;
    r.body_case = MIRRORSCOPE__NODE_SEARCH_REQUEST__BODY_START;
    r.start = (Mirrorscope__SearchQuery *)q;
    size_t len = mirrorscope__node_search_request__get_packed_size(&r);
    uint8_t *buf = malloc(len + 1);
    FUZZ_CHECK(buf);
    mirrorscope__node_search_request__pack(&r, buf);
    Mirrorscope__NodeSearchRequest *back = mirrorscope__node_search_request__unpack(NULL, len, buf);
    FUZZ_CHECK(back && back->start);
    mirrorscope__node_search_request__free_unpacked(back, NULL);
    free(buf);
}

static void fuzz__refused(const Mirrorscope__Request *req, Mirrorscope__Response__Status st,
                          const char *err)
{
    FUZZ_CHECK(err[0]);
    FUZZ_CHECK(st == MIRRORSCOPE__RESPONSE__STATUS__BAD_REQUEST ||
               st == MIRRORSCOPE__RESPONSE__STATUS__UNAUTHENTICATED);
    FUZZ_CHECK((st == MIRRORSCOPE__RESPONSE__STATUS__UNAUTHENTICATED) ==
               (req && !token_equal(FUZZ_TOKEN, req->token)));
    Mirrorscope__Response resp = MIRRORSCOPE__RESPONSE__INIT;
    resp.status = st;
    resp.error = (char *)err;
    resp.id = req ? req->id : 0;
    size_t n = mirrorscope__response__get_packed_size(&resp);
    FUZZ_CHECK(n < 2048);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!fuzz_reg) {
        fuzz_quiet();
        fuzz__registry();
    }
    if (size > RPCAPI_REQUEST_MAX) return 0; /* the socket's limit: refused before */
    for (int monitors = 1; monitors >= 0; monitors--) {
        Mirrorscope__Request *req = NULL;
        Mirrorscope__Response__Status st;
        char err[1024] = "";
        rpcapi_route route =
            rpcapi_check(data, (long)size, FUZZ_TOKEN, monitors, &req, &st, err, sizeof err);
        switch (route) {
        case RPCAPI_REFUSE: fuzz__refused(req, st, err); break;
        case RPCAPI_CREDIT:
        case RPCAPI_CANCEL:
            FUZZ_CHECK(req->body_case == MIRRORSCOPE__REQUEST__BODY_SEARCH_CREDIT ||
                       req->body_case == MIRRORSCOPE__REQUEST__BODY_SEARCH_CANCEL);
            break;
        case RPCAPI_QUERY: fuzz__query(req); break;
        case RPCAPI_SEARCH: fuzz__search(req); break;
        case RPCAPI_DRILL: {
            ProtobufCMessage *c = pbcopy(&req->search->base); /* as drill_start() keeps it */
            protobuf_c_message_free_unpacked(c, NULL);
            break;
        }
        case RPCAPI_MONITOR: {
            FUZZ_CHECK(monitors);
            ProtobufCMessage *c = pbcopy(&req->base); /* as monitor_submit() keeps it */
            protobuf_c_message_free_unpacked(c, NULL);
            break;
        }
        }
        if (route != RPCAPI_REFUSE) FUZZ_CHECK(req && token_equal(FUZZ_TOKEN, req->token));
        if (req) mirrorscope__request__free_unpacked(req, NULL);
    }
    return 0;
}
