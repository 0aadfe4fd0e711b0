/* monitor.c - monitors: definitions, checks, storage and the live copy the
 * series are kept with (see monitor.h).
 *
 * DESIGN: the loop thread owns the live copy (compiled filters, by id) and
 * the series being summed (monseries.h). Requests run as database jobs on a
 * copy of the Request; when a create, set or delete has committed, its done
 * callback - on the loop - applies the change to the live copy before the
 * answer goes, which is what "from the moment it is created (changed)"
 * means: records the bus delivers after that are counted with the new
 * definition. Every second the series are handed to a job that adds them
 * into `monitor_minutes`; a write that fails for a passing reason comes
 * back into the next one.
 */
#include "monitor.h"

#include "filter.h"
#include "log.h"
#include "monseries.h"
#include "pbcopy.h"
#include "timeparse.h"
#include "wire.h"
#include "xmalloc.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MONITOR_NAME_MAX 64
#define MONITOR_NODES_MAX 256
#define MONITOR_FILTER_MAX 4096
#define MONITOR_FLUSH_MS 1000

/* An address or network, parsed. */
typedef struct monitor_net {
    uint8_t addr[16], len, prefix; /* len 0: any */
} monitor_net;

/* A monitor as the loop matches it. */
typedef struct monitor_live {
    int64_t id;
    monitor_net server, client;
    uint32_t server_port, proto;
    char **nodes;
    size_t n_nodes;
} monitor_live;

struct monitor_set {
    uv_loop_t *loop;
    dbpool_t *pool;
    uv_timer_t *timer;
    monitor_live *live;
    size_t n_live;
    monseries_t *series;   /* being summed */
    monseries_t *writing;  /* handed to a job, or NULL */
    uint64_t rows_lost;
};

/* A request on its way through the pool. */
typedef struct monitor_job {
    monitor_set_t *set;
    Mirrorscope__Request *req; /* owned copy; NULL for the load and flushes */
    Mirrorscope__Response resp;
    int64_t id;                /* the monitor the request touched (the last row's) */
    int64_t *ids;              /* every row's, in order */
    int retry;
    monitor_done_fn done;
    void *arg;
} monitor_job;

/* ---- checks ---------------------------------------------------------------- */

/* "10.0.3.7" or "10.0.3.0/24" (bits past the prefix are cleared) into n and
 * its canonical text (ADDR/PREFIX). "" is any. Returns 0 or -1. */
static int monitor__net(const char *s, monitor_net *n, char *canon, size_t len)
{
    memset(n, 0, sizeof *n);
    canon[0] = 0;
    if (!s || !*s) return 0;
    char a[INET6_ADDRSTRLEN + 8];
    if (strlen(s) >= sizeof a) return -1;
    snprintf(a, sizeof a, "%s", s);
    char *slash = strchr(a, '/');
    if (slash) *slash = 0;
    if (inet_pton(AF_INET, a, n->addr) == 1) n->len = 4;
    else if (inet_pton(AF_INET6, a, n->addr) == 1) n->len = 16;
    else return -1;
    long prefix = n->len * 8;
    if (slash) {
        char *end;
        prefix = strtol(slash + 1, &end, 10);
        if (!slash[1] || *end || prefix < 0 || prefix > n->len * 8) return -1;
    }
    n->prefix = (uint8_t)prefix;
    for (int bit = (int)prefix; bit < n->len * 8; bit++) n->addr[bit / 8] &= (uint8_t)~(0x80 >> (bit % 8));
    char text[INET6_ADDRSTRLEN];
    inet_ntop(n->len == 4 ? AF_INET : AF_INET6, n->addr, text, sizeof text);
    snprintf(canon, len, "%s/%d", text, n->prefix);
    return 0;
}

int monitor_net_canon(const char *s, char *canon, size_t len)
{
    monitor_net n;
    return monitor__net(s, &n, canon, len);
}

static int monitor__net_match(const monitor_net *n, const Mirrorscope__Endpoint *ep)
{
    if (!n->len) return 1;
    if (!ep || ep->ip.len != n->len) return 0;
    int full = n->prefix / 8, rest = n->prefix % 8;
    if (memcmp(ep->ip.data, n->addr, (size_t)full)) return 0;
    return !rest || ((ep->ip.data[full] ^ n->addr[full]) & (uint8_t)(0xff << (8 - rest))) == 0;
}

/* Check a definition; fills the canonical networks. Returns 0, or -1 with
 * err set: the same words for the RPC and REST APIs. */
static int monitor__check(const Mirrorscope__Monitor *m, char server[64], char client[64], char *err,
                          size_t errlen)
{
    const char *name = m->name ? m->name : "";
    size_t nl = strlen(name);
    int ok = nl >= 1 && nl <= MONITOR_NAME_MAX &&
             ((name[0] >= 'a' && name[0] <= 'z') || (name[0] >= 'A' && name[0] <= 'Z') ||
              (name[0] >= '0' && name[0] <= '9'));
    for (size_t i = 0; ok && i < nl; i++)
        ok = strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-", name[i]) != NULL;
    if (!ok) {
        snprintf(err, errlen, "name: '%.80s' is not a monitor name (1 to %d of A-Z a-z 0-9 _ . -, "
                              "starting with a letter or digit)", name, MONITOR_NAME_MAX);
        return -1;
    }
    monitor_net n;
    if (monitor__net(m->server, &n, server, 64) < 0) {
        snprintf(err, errlen, "server: '%.80s' is not an address or network (e.g. 10.0.3.7 or "
                              "10.0.3.0/24)", m->server);
        return -1;
    }
    if (monitor__net(m->client, &n, client, 64) < 0) {
        snprintf(err, errlen, "client: '%.80s' is not an address or network (e.g. 10.0.3.7 or "
                              "10.0.3.0/24)", m->client);
        return -1;
    }
    if (m->server_port > 65535) {
        snprintf(err, errlen, "server_port: %u is not a port (0 for any, else 1 to 65535)", m->server_port);
        return -1;
    }
    if (m->proto > 255) {
        snprintf(err, errlen, "proto: %u is not an IP protocol (0 for any, else 1 to 255)", m->proto);
        return -1;
    }
    if (m->n_nodes > MONITOR_NODES_MAX) {
        snprintf(err, errlen, "nodes: at most %d", MONITOR_NODES_MAX);
        return -1;
    }
    for (size_t i = 0; i < m->n_nodes; i++) {
        const char *why;
        if (!wire_node_ok(m->nodes[i], &why)) {
            snprintf(err, errlen, "nodes: '%.80s' is not a recorder name (%s)", m->nodes[i], why);
            return -1;
        }
    }
    if (m->filter && strlen(m->filter) > MONITOR_FILTER_MAX) {
        snprintf(err, errlen, "filter: longer than %d characters", MONITOR_FILTER_MAX);
        return -1;
    }
    if (m->filter && *m->filter) {
        char perr[512];
        filter_t *f = filter_new(m->filter, perr, sizeof perr);
        if (!f) {
            snprintf(err, errlen, "filter: %s", perr);
            return -1;
        }
        filter_free(f);
    }
    return 0;
}

/* ---- the database side (on a pool thread) ---------------------------------- */

#define MONITOR_COLS                                                                              \
    "id, name, server::text, client::text, server_port, proto, array_to_json(nodes)::text, filter, " \
    "(extract(epoch from created_at) * 1e9)::bigint, (extract(epoch from changed_at) * 1e9)::bigint"

static char *monitor__dup(const char *v) { return xstrdup(v ? v : ""); }

static void monitor__on_row(void *arg, int ncols, const char *const *v)
{
    monitor_job *j = arg;
    if (ncols < 10) return;
    Mirrorscope__Response *r = &j->resp;
    r->monitors = xrealloc(r->monitors, (r->n_monitors + 1) * sizeof *r->monitors);
    Mirrorscope__Monitor *m = xmalloc(sizeof *m);
    mirrorscope__monitor__init(m);
    j->id = strtoll(v[0], NULL, 10);
    j->ids = xrealloc(j->ids, (r->n_monitors + 1) * sizeof *j->ids);
    j->ids[r->n_monitors] = j->id;
    m->name = monitor__dup(v[1]);
    m->server = monitor__dup(v[2]);
    m->client = monitor__dup(v[3]);
    m->server_port = (uint32_t)strtoul(v[4], NULL, 10);
    m->proto = (uint32_t)strtoul(v[5], NULL, 10);
    json_t *a = json_loads(v[6] ? v[6] : "[]", 0, NULL);
    size_t i, n = json_is_array(a) ? json_array_size(a) : 0;
    json_t *e;
    m->nodes = xcalloc(n + 1, sizeof *m->nodes);
    json_array_foreach(a, i, e) m->nodes[m->n_nodes++] = monitor__dup(json_string_value(e));
    json_decref(a);
    m->filter = monitor__dup(v[7]);
    m->created_ns = strtoll(v[8], NULL, 10);
    m->changed_ns = strtoll(v[9], NULL, 10);
    r->monitors[r->n_monitors++] = m;
}

/* The nodes as a JSON array text (a parameter). */
static char *monitor__nodes_json(const Mirrorscope__Monitor *m)
{
    json_t *a = json_array();
    for (size_t i = 0; i < m->n_nodes; i++) json_array_append_new(a, json_string(m->nodes[i]));
    char *s = json_dumps(a, JSON_COMPACT);
    json_decref(a);
    return s;
}

static void monitor__fail(monitor_job *j, Mirrorscope__Response__Status st, char *err, size_t errlen,
                          const char *fmt, const char *name)
{
    j->resp.status = st;
    snprintf(err, errlen, fmt, name);
}

static int monitor__work(db_t *db, void *arg, char *err, size_t errlen)
{
    monitor_job *j = arg;
    if (!j->req) { /* a flush */
        int rc = monseries_write(db, j->set->writing, &j->retry, err, errlen);
        return rc;
    }
    char state[6] = "";
    const Mirrorscope__Request *req = j->req;
    if (req->body_case == MIRRORSCOPE__REQUEST__BODY_MONITOR_SERIES) {
        const Mirrorscope__MonitorSeries *q = req->monitor_series;
        if (timeparse_check_range(q->from_ns, q->to_ns, err, errlen) < 0) {
            j->resp.status = MIRRORSCOPE__RESPONSE__STATUS__BAD_REQUEST;
            return -1;
        }
        const char *params[] = { q->name ? q->name : "" };
        long n = db_exec_params(db, "SELECT " MONITOR_COLS " FROM monitors WHERE name = $1", 1,
                                params, monitor__on_row, j, NULL, err, errlen);
        if (n < 0) return -1;
        if (n == 0) {
            monitor__fail(j, MIRRORSCOPE__RESPONSE__STATUS__NOT_FOUND, err, errlen,
                          "no monitor named '%.80s'", params[0]);
            return -1;
        }
        /* The answer is the series; the definition was only looked up. */
        for (size_t i = 0; i < j->resp.n_monitors; i++)
            mirrorscope__monitor__free_unpacked(j->resp.monitors[i], NULL);
        j->resp.n_monitors = 0;
        return monseries_query(db, j->id, q->from_ns, q->to_ns, &j->resp, err, errlen);
    }
    const Mirrorscope__MonitorRequest *mr = req->monitor;
    const char *op = mr->op ? mr->op : "";
    const char *name = mr->name && *mr->name ? mr->name
                     : mr->monitor && mr->monitor->name ? mr->monitor->name : "";
    if (!strcmp(op, "list"))
        return db_exec_params(db, "SELECT " MONITOR_COLS " FROM monitors ORDER BY name", 0, NULL,
                              monitor__on_row, j, NULL, err, errlen) < 0 ? -1 : 0;
    if (!strcmp(op, "show") || !strcmp(op, "delete")) {
        const char *params[] = { name };
        long n = db_exec_params(db, !strcmp(op, "show")
                                        ? "SELECT " MONITOR_COLS " FROM monitors WHERE name = $1"
                                        : "DELETE FROM monitors WHERE name = $1 RETURNING " MONITOR_COLS,
                                1, params, monitor__on_row, j, NULL, err, errlen);
        if (n < 0) return -1;
        if (n == 0) {
            monitor__fail(j, MIRRORSCOPE__RESPONSE__STATUS__NOT_FOUND, err, errlen,
                          "no monitor named '%.80s'", name);
            return -1;
        }
        return 0;
    }
    /* create, set: checked on the loop already (monitor_submit) */
    const Mirrorscope__Monitor *m = mr->monitor;
    char server[64], client[64], port[16], proto[16];
    monitor__check(m, server, client, err, errlen);
    snprintf(port, sizeof port, "%u", m->server_port);
    snprintf(proto, sizeof proto, "%u", m->proto);
    char *nodes = monitor__nodes_json(m);
    const char *params[] = { name, *server ? server : NULL, *client ? client : NULL, port, proto,
                             nodes, m->filter ? m->filter : "" };
    long n = db_exec_params(db, !strcmp(op, "create")
        ? "INSERT INTO monitors (name, server, client, server_port, proto, nodes, filter) "
          "VALUES ($1, $2::cidr, $3::cidr, $4::int, $5::smallint, "
          "ARRAY(SELECT json_array_elements_text($6::json)), $7) RETURNING " MONITOR_COLS
        : "UPDATE monitors SET server = $2::cidr, client = $3::cidr, server_port = $4::int, "
          "proto = $5::smallint, nodes = ARRAY(SELECT json_array_elements_text($6::json)), "
          "filter = $7, changed_at = now() WHERE name = $1 RETURNING " MONITOR_COLS,
        7, params, monitor__on_row, j, state, err, errlen);
    free(nodes);
    if (n < 0 && !strcmp(state, "23505")) {
        monitor__fail(j, MIRRORSCOPE__RESPONSE__STATUS__CONFLICT, err, errlen,
                      "a monitor named '%.80s' exists already", name);
        return -1;
    }
    if (n < 0) return -1;
    if (n == 0) {
        monitor__fail(j, MIRRORSCOPE__RESPONSE__STATUS__NOT_FOUND, err, errlen,
                      "no monitor named '%.80s'", name);
        return -1;
    }
    return 0;
}

/* ---- the live copy (loop thread) ------------------------------------------- */

static void monitor__live_clear(monitor_live *l)
{
    for (size_t i = 0; i < l->n_nodes; i++) free(l->nodes[i]);
    free(l->nodes);
    memset(l, 0, sizeof *l);
}

static void monitor__live_set(monitor_live *l, int64_t id, const Mirrorscope__Monitor *m)
{
    char canon[64];
    monitor__live_clear(l);
    l->id = id;
    monitor__net(m->server, &l->server, canon, sizeof canon);
    monitor__net(m->client, &l->client, canon, sizeof canon);
    l->server_port = m->server_port;
    l->proto = m->proto;
    l->nodes = xcalloc(m->n_nodes + 1, sizeof *l->nodes);
    for (size_t i = 0; i < m->n_nodes; i++) l->nodes[l->n_nodes++] = xstrdup(m->nodes[i]);
}

static monitor_live *monitor__find(monitor_set_t *s, int64_t id)
{
    for (size_t i = 0; i < s->n_live; i++)
        if (s->live[i].id == id) return &s->live[i];
    return NULL;
}

static void monitor__apply(monitor_set_t *s, const char *op, int64_t id, const Mirrorscope__Monitor *m)
{
    monitor_live *l = monitor__find(s, id);
    if (!strcmp(op, "delete")) {
        if (!l) return;
        monitor__live_clear(l);
        *l = s->live[--s->n_live];
        return;
    }
    if (!l) {
        s->live = xrealloc(s->live, (s->n_live + 1) * sizeof *s->live);
        l = &s->live[s->n_live++];
        memset(l, 0, sizeof *l);
    }
    monitor__live_set(l, id, m);
}

void monitor_record(void *set, const char *node, const Mirrorscope__FlowRecord *r)
{
    monitor_set_t *s = set;
    if (!r->final) return;
    for (size_t i = 0; i < s->n_live; i++) {
        const monitor_live *l = &s->live[i];
        if (l->proto && r->proto != l->proto) continue;
        if (l->server_port && (!r->server || r->server->port != l->server_port)) continue;
        if (!monitor__net_match(&l->server, r->server) || !monitor__net_match(&l->client, r->client))
            continue;
        int ok = !l->n_nodes;
        for (size_t k = 0; k < l->n_nodes && !ok; k++) ok = !strcmp(l->nodes[k], node);
        if (ok) monseries_add(s->series, l->id, r);
    }
}

/* ---- jobs ------------------------------------------------------------------ */

static void monitor__job_free(monitor_job *j)
{
    Mirrorscope__Response *r = &j->resp;
    for (size_t i = 0; i < r->n_monitors; i++) mirrorscope__monitor__free_unpacked(r->monitors[i], NULL);
    for (size_t i = 0; i < r->n_monitor_minutes; i++)
        mirrorscope__monitor_minute__free_unpacked(r->monitor_minutes[i], NULL);
    free(r->monitors);
    free(r->monitor_minutes);
    free(j->ids);
    if (j->req) mirrorscope__request__free_unpacked(j->req, NULL);
    free(j);
}

static void monitor__done(void *arg, int rc, const char *err)
{
    monitor_job *j = arg;
    monitor_set_t *s = j->set;
    if (rc < 0) {
        if (j->resp.status == MIRRORSCOPE__RESPONSE__STATUS__OK)
            j->resp.status = MIRRORSCOPE__RESPONSE__STATUS__ERROR;
    } else if (j->req->body_case == MIRRORSCOPE__REQUEST__BODY_MONITOR && j->resp.n_monitors == 1) {
        const char *op = j->req->monitor->op;
        if (!strcmp(op, "create") || !strcmp(op, "set") || !strcmp(op, "delete")) {
            monitor__apply(s, op, j->id, j->resp.monitors[0]);
            log_info("monitor %s: %s", j->resp.monitors[0]->name,
                     !strcmp(op, "create") ? "created" : !strcmp(op, "set") ? "changed" : "deleted");
        }
    }
    j->done(j->arg, &j->resp, rc < 0 ? err : NULL);
    monitor__job_free(j);
}

static int monitor__load_work(db_t *db, void *arg, char *err, size_t errlen)
{
    monitor_job *j = arg;
    return db_exec_params(db, "SELECT " MONITOR_COLS " FROM monitors ORDER BY id", 0, NULL,
                          monitor__on_row, j, NULL, err, errlen) < 0 ? -1 : 0;
}

static void monitor__load_done(void *arg, int rc, const char *err)
{
    monitor_job *j = arg;
    monitor_set_t *s = j->set;
    if (rc < 0) {
        log_error("monitors: cannot load them (%s); no series are kept until the next start", err);
    } else {
        /* Monitors created meanwhile through an API are in the live copy
         * already; the load only adds what it lacks. */
        for (size_t i = 0; i < j->resp.n_monitors; i++)
            if (!monitor__find(s, j->ids[i])) monitor__apply(s, "create", j->ids[i], j->resp.monitors[i]);
        log_info("monitors: %zu loaded", j->resp.n_monitors);
    }
    monitor__job_free(j);
}

static void monitor__flush_done(void *arg, int rc, const char *err)
{
    monitor_job *j = arg;
    monitor_set_t *s = j->set;
    if (rc < 0) {
        if (j->retry || rc == DBPOOL_UNREACHABLE) {
            log_warn("monitor series: cannot write them now (%s); trying again in a second", err);
            monseries_merge(s->series, s->writing);
        } else {
            s->rows_lost += monseries_rows(s->writing);
            log_error("monitor series: PostgreSQL refused %zu rows (%s); they are dropped",
                      monseries_rows(s->writing), err);
        }
    }
    monseries_free(s->writing);
    s->writing = NULL;
    free(j);
}

static void monitor__flush(monitor_set_t *s)
{
    if (s->writing || !monseries_rows(s->series)) return;
    s->writing = s->series;
    s->series = monseries_new();
    monitor_job *j = xcalloc(1, sizeof *j);
    j->set = s;
    dbpool_submit(s->pool, monitor__work, monitor__flush_done, j);
}

static void monitor__on_timer(uv_timer_t *t) { monitor__flush(t->data); }

/* ---- public ---------------------------------------------------------------- */

int monitor_is_request(const Mirrorscope__Request *req)
{
    return req->body_case == MIRRORSCOPE__REQUEST__BODY_MONITOR ||
           req->body_case == MIRRORSCOPE__REQUEST__BODY_MONITOR_SERIES;
}

int monitor_http_status(Mirrorscope__Response__Status st)
{
    switch (st) {
    case MIRRORSCOPE__RESPONSE__STATUS__OK: return 200;
    case MIRRORSCOPE__RESPONSE__STATUS__BAD_REQUEST: return 400;
    case MIRRORSCOPE__RESPONSE__STATUS__UNAUTHENTICATED: return 401;
    case MIRRORSCOPE__RESPONSE__STATUS__NOT_FOUND: return 404;
    case MIRRORSCOPE__RESPONSE__STATUS__CONFLICT: return 409;
    default: return 503;
    }
}

int monitor_check(const Mirrorscope__Request *req, char *err, size_t errlen)
{
    if (req->body_case == MIRRORSCOPE__REQUEST__BODY_MONITOR_SERIES) {
        if (!req->monitor_series->name || !*req->monitor_series->name) {
            snprintf(err, errlen, "name: which monitor?");
            return -1;
        }
    } else if (req->body_case == MIRRORSCOPE__REQUEST__BODY_MONITOR) {
        const Mirrorscope__MonitorRequest *mr = req->monitor;
        const char *op = mr->op ? mr->op : "";
        int write = !strcmp(op, "create") || !strcmp(op, "set");
        if (!write && strcmp(op, "list") && strcmp(op, "show") && strcmp(op, "delete")) {
            snprintf(err, errlen, "op: '%.40s' is not one of list, show, create, set, delete", op);
            return -1;
        }
        if (strcmp(op, "list") && !(mr->name && *mr->name) &&
            !(write && mr->monitor && mr->monitor->name && *mr->monitor->name)) {
            snprintf(err, errlen, "name: which monitor?");
            return -1;
        }
        if (write) {
            if (!mr->monitor) {
                snprintf(err, errlen, "monitor: the definition is missing");
                return -1;
            }
            if (mr->name && *mr->name && mr->monitor->name && *mr->monitor->name &&
                strcmp(mr->name, mr->monitor->name)) {
                snprintf(err, errlen, "name: a monitor keeps its name ('%.80s', not '%.80s')",
                         mr->name, mr->monitor->name);
                return -1;
            }
            Mirrorscope__Monitor def = *mr->monitor;
            if (!(def.name && *def.name)) def.name = mr->name;
            char server[64], client[64];
            if (monitor__check(&def, server, client, err, errlen) < 0) return -1;
        }
    } else {
        snprintf(err, errlen, "unknown request type");
        return -1;
    }
    return 0;
}

void monitor_submit(monitor_set_t *m, const Mirrorscope__Request *req, monitor_done_fn done, void *arg)
{
    char err[1024] = "";
    Mirrorscope__Response resp;
    mirrorscope__response__init(&resp);
    resp.id = req->id;
    resp.status = MIRRORSCOPE__RESPONSE__STATUS__BAD_REQUEST;
    if (monitor_check(req, err, sizeof err) < 0) goto refuse;
    monitor_job *j = xcalloc(1, sizeof *j);
    j->set = m;
    j->req = (Mirrorscope__Request *)pbcopy(&req->base);
    if (j->req->body_case == MIRRORSCOPE__REQUEST__BODY_MONITOR && j->req->monitor->monitor) {
        Mirrorscope__Monitor *d = j->req->monitor->monitor;
        if (!(d->name && *d->name)) {
            if (d->name != protobuf_c_empty_string) free(d->name);
            d->name = xstrdup(j->req->monitor->name);
        }
    }
    mirrorscope__response__init(&j->resp);
    j->resp.id = req->id;
    j->done = done;
    j->arg = arg;
    dbpool_submit(m->pool, monitor__work, monitor__done, j);
    return;
refuse:
    done(arg, &resp, err);
}

int monitor_from_json(json_t *body, Mirrorscope__Monitor *out, char ***nodes, char *err, size_t errlen)
{
    static const struct { const char *name; uint32_t num; } protos[] = {
        { "tcp", 6 }, { "udp", 17 }, { "icmp", 1 }, { "icmp6", 58 }, { "sctp", 132 },
    };
    const char *k;
    json_t *v;
    *nodes = NULL;
    if (!json_is_object(body)) {
        snprintf(err, errlen, "the body must be a JSON object (a Monitor)");
        return -1;
    }
    json_object_foreach(body, k, v) {
        if (!strcmp(k, "name") || !strcmp(k, "server") || !strcmp(k, "client") || !strcmp(k, "filter")) {
            if (!json_is_string(v)) goto bad;
            char **f = !strcmp(k, "name") ? &out->name : !strcmp(k, "server") ? &out->server
                     : !strcmp(k, "client") ? &out->client : &out->filter;
            *f = (char *)json_string_value(v);
        } else if (!strcmp(k, "server_port") || !strcmp(k, "proto")) {
            uint32_t *f = !strcmp(k, "proto") ? &out->proto : &out->server_port;
            if (json_is_integer(v) && json_integer_value(v) >= 0 && json_integer_value(v) <= 65535) {
                *f = (uint32_t)json_integer_value(v);
                continue;
            }
            int found = 0;
            for (size_t i = 0; json_is_string(v) && !strcmp(k, "proto") && i < sizeof protos / sizeof protos[0]; i++)
                if (!strcasecmp(json_string_value(v), protos[i].name)) *f = protos[i].num, found = 1;
            if (!found) goto bad;
        } else if (!strcmp(k, "nodes")) {
            if (!json_is_array(v) || json_array_size(v) > MONITOR_NODES_MAX) goto bad;
            size_t i;
            json_t *e;
            *nodes = xcalloc(json_array_size(v) + 1, sizeof **nodes);
            json_array_foreach(v, i, e) {
                if (!json_is_string(e)) goto bad;
                (*nodes)[i] = (char *)json_string_value(e);
            }
            out->n_nodes = json_array_size(v);
            out->nodes = *nodes;
        } else if (!strcmp(k, "created_ns") || !strcmp(k, "changed_ns")) {
            continue; /* a Monitor read back and sent again: the coordinator sets these */
        } else {
            snprintf(err, errlen, "unknown field '%.64s' in the monitor", k);
            return -1;
        }
        continue;
    bad:
        snprintf(err, errlen, "%s: not a valid value (see the Monitor schema)", k);
        return -1;
    }
    return 0;
}

monitor_set_t *monitor_new(uv_loop_t *loop, dbpool_t *pool)
{
    monitor_set_t *s = xcalloc(1, sizeof *s);
    s->loop = loop;
    s->pool = pool;
    s->series = monseries_new();
    s->timer = xcalloc(1, sizeof *s->timer);
    uv_timer_init(loop, s->timer);
    s->timer->data = s;
    uv_timer_start(s->timer, monitor__on_timer, MONITOR_FLUSH_MS, MONITOR_FLUSH_MS);
    monitor_job *j = xcalloc(1, sizeof *j);
    j->set = s;
    dbpool_submit(pool, monitor__load_work, monitor__load_done, j);
    return s;
}

void monitor_finish(monitor_set_t *m)
{
    if (!m) return;
    while (m->writing) uv_run(m->loop, UV_RUN_ONCE);
    monitor__flush(m);
    while (m->writing) uv_run(m->loop, UV_RUN_ONCE);
}

void monitor_close(monitor_set_t *m)
{
    if (!m || !m->timer) return;
    uv_close((uv_handle_t *)m->timer, (uv_close_cb)free);
    m->timer = NULL;
}

void monitor_free(monitor_set_t *m)
{
    if (!m) return;
    monitor_close(m);
    for (size_t i = 0; i < m->n_live; i++) monitor__live_clear(&m->live[i]);
    free(m->live);
    monseries_free(m->series);
    monseries_free(m->writing);
    free(m);
}
