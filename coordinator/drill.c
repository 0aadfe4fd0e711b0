/* drill.c - drill-down: a flows query turned into a search of exactly
 * those flows' packets (see drill.h).
 *
 * DESIGN: the flows query runs as a database job (dbpool.h), page after
 * page of db_query_flows() (the same query and filters as `mscope flows`)
 * until the limit; each row is kept as its node's name and a FlowSelection.
 * Back on the loop the rows are sorted by node, the nodes looked up in the
 * registry (a flow of a recorder it does not know is counted, not asked
 * for), and scatter_start() sends each recorder its own flows over the time
 * range they span; from there on it is an ordinary search.
 */
#include "drill.h"

#include "querysql.h"

#include "log.h"
#include "pbcopy.h"
#include "timeparse.h"
#include "xmalloc.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct drill_row {
    char *node;
    Mirrorscope__FlowSelection sel;
    Mirrorscope__Endpoint client, server;
    uint8_t cip[16], sip[16], obs[16];
} drill_row;

typedef struct drill_job {
    drill_env env;
    bus_peer client;
    uint64_t id;
    Mirrorscope__SearchQuery *q; /* our copy */
    scatter_sink sink;
    int has_sink;
    drill_started_fn started;
    void *ctx;
    drill_row *rows;
    size_t n, cap;
    uint32_t limit;
    int limited, bad;
    char monitor_filter[4096]; /* flows_of.monitor's tcpdump expression */
} drill_job;

static void drill__free(drill_job *j)
{
    for (size_t i = 0; i < j->n; i++) free(j->rows[i].node);
    free(j->rows);
    protobuf_c_message_free_unpacked(&j->q->base, NULL);
    free(j);
}

static void drill__endpoint(Mirrorscope__Endpoint *e, uint8_t buf[16], const Mirrorscope__Endpoint *from)
{
    mirrorscope__endpoint__init(e);
    size_t len = from && (from->ip.len == 4 || from->ip.len == 16) ? from->ip.len : 0;
    if (len) memcpy(buf, from->ip.data, len);
    e->ip.len = len;
    e->port = from ? from->port : 0;
}

/* A row's message points into the row: set once the rows stop moving. */
static void drill__link(drill_row *d)
{
    d->sel.observer.data = d->obs;
    d->client.ip.data = d->cip;
    d->server.ip.data = d->sip;
    d->sel.client = &d->client;
    d->sel.server = &d->server;
}

static void drill__keep(drill_job *j, const Mirrorscope__FlowRow *row)
{
    const Mirrorscope__FlowRecord *r = row->record;
    if (!r) return;
    xgrow((void **)&j->rows, &j->cap, j->n + 1, sizeof *j->rows);
    drill_row *d = &j->rows[j->n++];
    memset(d, 0, sizeof *d);
    d->node = xstrdup(row->node ? row->node : "");
    mirrorscope__flow_selection__init(&d->sel);
    d->sel.vni = r->vni;
    if (r->observer.len == 4 || r->observer.len == 16) { /* none: captured locally */
        memcpy(d->obs, r->observer.data, r->observer.len);
        d->sel.observer.len = r->observer.len;
    }
    d->sel.proto = r->proto;
    drill__endpoint(&d->client, d->cip, r->client);
    drill__endpoint(&d->server, d->sip, r->server);
    d->sel.first_ns = r->first_ns;
    d->sel.last_ns = r->last_ns;
}

/* Pool thread: the flows, page by page, as `mscope flows` pages them. */
static int drill__work(db_t *db, void *arg, char *err, size_t errlen)
{
    drill_job *j = arg;
    Mirrorscope__QueryFlows qf = *j->q->flows_of;
    char *cursor = NULL;
    int rc = 0;
    if (qf.monitor && *qf.monitor &&
        db_monitor_filter(db, qf.monitor, j->monitor_filter, sizeof j->monitor_filter, &j->bad,
                          err, errlen) < 0)
        return -1;
    for (;;) {
        uint32_t want = j->limit - (uint32_t)j->n;
        qf.limit = want > 10000 ? 10000 : want;
        qf.cursor = cursor ? cursor : (char *)"";
        Mirrorscope__Response resp;
        mirrorscope__response__init(&resp);
        int bad = 0;
        rc = db_query_flows(db, &qf, &resp, &bad, err, errlen);
        if (rc < 0) {
            j->bad = bad;
            db_response_free(&resp);
            break;
        }
        for (size_t i = 0; i < resp.n_flows; i++) drill__keep(j, resp.flows[i]);
        int more = resp.next_cursor && *resp.next_cursor && resp.n_flows;
        free(cursor);
        cursor = more ? xstrdup(resp.next_cursor) : NULL;
        db_response_free(&resp);
        if (!more) break;
        if (j->n >= j->limit) {
            j->limited = 1; /* a next page exists: more flows match */
            break;
        }
    }
    free(cursor);
    return rc;
}

static int drill__cmp_row(const void *a, const void *b)
{
    return strcmp(((const drill_row *)a)->node, ((const drill_row *)b)->node);
}

/* Loop thread: every recorder its own flows. */
static void drill__done(void *arg, int rc, const char *dberr)
{
    drill_job *j = arg;
    char err[1024] = "";
    if (rc < 0) {
        j->started(j->ctx, 0, j->bad, dberr && *dberr ? dberr : "the flows query failed");
        drill__free(j);
        return;
    }
    if (j->n) qsort(j->rows, j->n, sizeof *j->rows, drill__cmp_row); /* none: rows is NULL */
    for (size_t i = 0; i < j->n; i++) drill__link(&j->rows[i]);
    scatter_node *nodes = xcalloc(j->n + 1, sizeof *nodes);
    Mirrorscope__FlowSelection **sel = xcalloc(j->n + 1, sizeof *sel);
    int nn = 0;
    uint64_t unreachable = 0;
    int64_t from = INT64_MAX, to = INT64_MIN;
    for (size_t i = 0; i < j->n;) {
        size_t k = i;
        while (k < j->n && !strcmp(j->rows[k].node, j->rows[i].node)) k++;
        char *name = j->rows[i].node;
        scatter_node one;
        if (registry_search_nodes(j->env.reg, &name, 1, 0, &one, 1, err, sizeof err) != 1) {
            unreachable += k - i;
            log_warn("drill-down %" PRIu64 ": %zu flows of '%s', a recorder this coordinator does "
                     "not know now: their packets are missing", j->id, k - i, name);
            i = k;
            continue;
        }
        for (size_t m = i; m < k; m++) {
            sel[m] = &j->rows[m].sel;
            if (j->rows[m].sel.first_ns < from) from = j->rows[m].sel.first_ns;
            if (j->rows[m].sel.last_ns > to) to = j->rows[m].sel.last_ns;
        }
        one.flows = &sel[i];
        one.n_flows = k - i;
        nodes[nn++] = one;
        i = k;
    }
    /* flows_of stays: it tells scatter_start() that no nodes is an empty
     * answer, not an error (it does not pass it on). */
    Mirrorscope__SearchQuery q = *j->q;
    /* A monitor's packets are also its own expression's. */
    char *expr = NULL;
    if (j->monitor_filter[0]) {
        const char *given = q.filter ? q.filter : "";
        size_t n = strlen(given) + strlen(j->monitor_filter) + 16;
        expr = xmalloc(n);
        if (*given) snprintf(expr, n, "(%s) and (%s)", j->monitor_filter, given);
        else snprintf(expr, n, "%s", j->monitor_filter);
        q.filter = expr;
    }
    q.n_nodes = 0;
    q.nodes = NULL;
    q.n_flows = 0;
    q.flows = NULL;
    /* The span of what was selected (last inclusive); nothing selected: an
     * empty answer over the query's own range. */
    q.from_ns = nn ? from : j->q->flows_of->from_ns;
    q.to_ns = nn ? (to < INT64_MAX ? to + 1 : to) : j->q->flows_of->to_ns;
    if (q.to_ns && q.to_ns <= q.from_ns) q.to_ns = q.from_ns + 1;
    rc = scatter_start(j->env.sc, &j->client, j->id, &q, nodes, nn, j->has_sink ? &j->sink : NULL,
                       err, sizeof err);
    if (rc == 0) {
        scatter_note_flows(j->env.sc, &j->client, j->id, j->n, j->limited, unreachable);
        log_info("drill-down %" PRIu64 ": %zu flows%s on %d recorders", j->id, j->n,
                 j->limited ? " (the limit; more match)" : "", nn);
    }
    j->started(j->ctx, rc == 0, 0, err);
    free(expr);
    free(sel);
    free(nodes);
    drill__free(j);
}

int drill_check(const Mirrorscope__SearchQuery *q, char *err, size_t errlen)
{
    const Mirrorscope__QueryFlows *qf = q->flows_of;
    if (!qf) {
        snprintf(err, errlen, "no flows query");
        return -1;
    }
    if (qf->limit > DRILL_MAX_FLOWS) {
        snprintf(err, errlen, "limit %u: a capture takes the packets of at most %u flows",
                 qf->limit, DRILL_MAX_FLOWS);
        return -1;
    }
    if (timeparse_check_range(qf->from_ns, qf->to_ns, err, errlen) < 0) return -1;
    /* Its pages' statement (drill__work builds it again per page, with
     * their own limit and cursor): a bad filter value is refused here. */
    Mirrorscope__QueryFlows page = *qf;
    page.cursor = (char *)"";
    querysql qs;
    return querysql_flows(&page, 0, &qs, err, errlen);
}

int drill_start(const drill_env *env, const bus_peer *client, uint64_t id,
                const Mirrorscope__SearchQuery *q, const scatter_sink *sink,
                drill_started_fn started, void *ctx, char *err, size_t errlen)
{
    if (drill_check(q, err, errlen) < 0) return -1;
    const Mirrorscope__QueryFlows *qf = q->flows_of;
    drill_job *j = xcalloc(1, sizeof *j);
    j->env = *env;
    j->client = *client;
    j->id = id;
    j->q = (Mirrorscope__SearchQuery *)pbcopy(&q->base);
    if (sink) {
        j->sink = *sink;
        j->has_sink = 1;
    }
    j->started = started;
    j->ctx = ctx;
    j->limit = qf->limit ? qf->limit : DRILL_DEFAULT_FLOWS;
    dbpool_submit(env->pool, drill__work, drill__done, j);
    return 0;
}
