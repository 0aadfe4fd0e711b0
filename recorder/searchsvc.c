/* searchsvc.c - the recorder's search service (see searchsvc.h). */
#include "searchsvc.h"

#include "bus.h"
#include "filter.h"
#include "decode.h"
#include "log.h"
#include "mirrorscope.pb-c.h"
#include "pcapio.h"
#include "search.h"
#include "timeparse.h"
#include "token.h"
#include "xmalloc.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#define SVC_OUT_MAX (SEARCHSVC_CHUNK + 4096)
#define SVC_SLICE_NS 20000000LL     /* one search's turn before the next one's */
#define SVC_ALIVE_NS 1000000000LL   /* say we are alive at least this often */
#define SVC_DEFAULT_CREDIT 4

typedef struct svc_job {
    int busy;
    bus_peer peer;
    uint64_t id;
    search_t *it;
    uint8_t *buf;
    size_t fill;
    uint32_t npkts;
    uint64_t seq;
    uint32_t credit;
    int finished;   /* the iterator has ended (what is in buf still goes) */
    int read_err;   /* -errno from the iterator */
    int64_t t0, last_sent, last_heard, idle_ns;
} svc_job;

struct searchsvc {
    char *dir, *node;
    char token[TOKEN_MAX]; /* under mu: searchsvc_set_token() */
    int max_jobs;
    int64_t idle_ns;
    bus_rpc_t *rpc;            /* NULL: unbound (searchsvc_new_unbound) */
    searchsvc_send_fn send;    /* unbound: where replies go */
    void *send_ctx;
    svc_job *jobs;
    uint8_t *req, *out;
    pthread_t thread;
    _Atomic int stop;
    pthread_mutex_t mu;
    searchsvc_stats st;
};

#define SVC_COUNT(s, field, n)            \
    do {                                  \
        pthread_mutex_lock(&(s)->mu);     \
        (s)->st.field += (n);             \
        pthread_mutex_unlock(&(s)->mu);   \
    } while (0)

/* Pack and send one reply to the job's requester. Returns 0 or -errno
 * (-EHOSTUNREACH: the requester has gone). */
static int svc__send(searchsvc_t *s, const bus_peer *peer, Mirrorscope__NodeSearchReply *r)
{
    r->node = s->node;
    size_t n = mirrorscope__node_search_reply__get_packed_size(r);
    if (n > SVC_OUT_MAX) return -EMSGSIZE;
    mirrorscope__node_search_reply__pack(r, s->out);
    if (s->send) return s->send(s->send_ctx, peer, s->out, n);
    return bus_rpc_send_to(s->rpc, peer, s->out, n);
}

static int svc__send_done(searchsvc_t *s, const bus_peer *peer, uint64_t id, int ok,
                          int bad_request, const char *error, const search_stats *fig,
                          int64_t took_ns)
{
    Mirrorscope__NodeSearchReply r;
    Mirrorscope__NodeSearchDone d;
    Mirrorscope__SearchFigures f;
    mirrorscope__node_search_reply__init(&r);
    mirrorscope__node_search_done__init(&d);
    mirrorscope__search_figures__init(&f);
    r.id = id;
    r.body_case = MIRRORSCOPE__NODE_SEARCH_REPLY__BODY_DONE;
    r.done = &d;
    d.ok = ok;
    d.bad_request = bad_request;
    d.error = (char *)(error ? error : "");
    if (fig) {
        f.packets = fig->packets;
        f.bytes = fig->bytes;
        f.segments = fig->segments;
        f.candidates = fig->candidates;
        f.index_used = fig->index_used;
        f.limited = fig->limited;
        f.indexes_damaged = fig->indexes_damaged;
        f.bad_records = fig->bad_records;
        f.took_ns = took_ns;
        d.figures = &f;
    }
    return svc__send(s, peer, &r);
}

static int svc__send_flag(searchsvc_t *s, svc_job *j, int accepted)
{
    Mirrorscope__NodeSearchReply r;
    mirrorscope__node_search_reply__init(&r);
    r.id = j->id;
    r.body_case = accepted ? MIRRORSCOPE__NODE_SEARCH_REPLY__BODY_ACCEPTED
                           : MIRRORSCOPE__NODE_SEARCH_REPLY__BODY_ALIVE;
    if (accepted) r.accepted = 1;
    else r.alive = 1;
    j->last_sent = timeparse_mono_ns();
    return svc__send(s, &j->peer, &r);
}

static void svc__end(searchsvc_t *s, svc_job *j)
{
    pthread_mutex_lock(&s->mu);
    s->st.active--;
    s->st.buffered_bytes -= SEARCHSVC_CHUNK;
    pthread_mutex_unlock(&s->mu);
    search_free(j->it);
    free(j->buf);
    memset(j, 0, sizeof *j);
}

static svc_job *svc__find(searchsvc_t *s, const bus_peer *p, uint64_t id)
{
    for (int i = 0; i < s->max_jobs; i++) {
        svc_job *j = &s->jobs[i];
        if (j->busy && j->id == id && j->peer.len == p->len && !memcmp(j->peer.id, p->id, p->len))
            return j;
    }
    return NULL;
}

/* 16 address bytes (IPv4 mapped) of a protobuf Endpoint; -1 if malformed. */
static int svc__addr(const Mirrorscope__Endpoint *e, uint8_t out[16])
{
    if (!e || (e->ip.len != 4 && e->ip.len != 16) || e->port > 65535) return -1;
    if (e->ip.len == 4) decode_map4(e->ip.data, out);
    else memcpy(out, e->ip.data, 16);
    return 0;
}

/* The query's flow selection as the engine takes it (*out: free it). */
static int svc__flows(const Mirrorscope__SearchQuery *q, search_flow **out, char *err, size_t errlen)
{
    search_flow *v = xcalloc(q->n_flows, sizeof *v);
    for (size_t i = 0; i < q->n_flows; i++) {
        const Mirrorscope__FlowSelection *f = q->flows[i];
        search_flow *o = &v[i];
        if (svc__addr(f->client, o->a) < 0 || svc__addr(f->server, o->b) < 0 || f->proto > 255 ||
            (f->observer.len && f->observer.len != 4 && f->observer.len != 16) ||
            f->last_ns < f->first_ns) {
            snprintf(err, errlen, "flow selection %zu is malformed", i);
            free(v);
            return -1;
        }
        o->vni = f->vni;
        if (f->observer.len == 4) decode_map4(f->observer.data, o->observer);
        else if (f->observer.len == 16) memcpy(o->observer, f->observer.data, 16);
        o->proto = (uint8_t)f->proto;
        o->a_port = (uint16_t)f->client->port;
        o->b_port = (uint16_t)f->server->port;
        o->first_ns = f->first_ns;
        o->last_ns = f->last_ns;
    }
    *out = v;
    return 0;
}

static void svc__start(searchsvc_t *s, const bus_peer *peer, uint64_t id, const Mirrorscope__SearchQuery *q)
{
    char err[1024];
    svc_job *j = NULL;
    if (svc__find(s, peer, id)) return; /* a repeated start: the first one runs */
    for (int i = 0; i < s->max_jobs && !j; i++)
        if (!s->jobs[i].busy) j = &s->jobs[i];
    if (!j) {
        snprintf(err, sizeof err, "busy: %d searches are running on this recorder", s->max_jobs);
        SVC_COUNT(s, refused, 1);
        svc__send_done(s, peer, id, 0, 0, err, NULL, 0);
        return;
    }
    /* A bad filter is the query's fault: say so apart from other failures. */
    filter_t *f = filter_new(q->filter, err, sizeof err);
    if (!f) {
        SVC_COUNT(s, failed, 1);
        svc__send_done(s, peer, id, 0, 1, err, NULL, 0);
        return;
    }
    filter_free(f);
    search_query sq = {
        .from_ns = q->from_ns,
        .to_ns = q->to_ns ? q->to_ns : INT64_MAX,
        .expr = q->filter,
        .max_packets = q->max_packets,
        .max_bytes = q->max_bytes,
    };
    if (sq.to_ns <= sq.from_ns) {
        SVC_COUNT(s, failed, 1);
        svc__send_done(s, peer, id, 0, 1, "empty time range (to <= from)", NULL, 0);
        return;
    }
    search_flow *flows = NULL;
    if (q->n_flows && svc__flows(q, &flows, err, sizeof err) < 0) {
        SVC_COUNT(s, failed, 1);
        svc__send_done(s, peer, id, 0, 1, err, NULL, 0);
        return;
    }
    sq.flows = flows;
    sq.nflows = q->n_flows;
    search_t *it = search_new(s->dir, &sq, err, sizeof err);
    free(flows);
    if (!it) {
        SVC_COUNT(s, failed, 1);
        svc__send_done(s, peer, id, 0, 0, err, NULL, 0);
        return;
    }
    memset(j, 0, sizeof *j);
    j->busy = 1;
    j->peer = *peer;
    j->id = id;
    j->it = it;
    j->buf = xmalloc(SEARCHSVC_CHUNK);
    j->credit = q->credit ? q->credit : SVC_DEFAULT_CREDIT;
    j->t0 = j->last_heard = timeparse_mono_ns();
    j->idle_ns = q->idle_timeout_ms ? (int64_t)q->idle_timeout_ms * 1000000LL : s->idle_ns;
    pthread_mutex_lock(&s->mu);
    s->st.started++;
    s->st.active++;
    s->st.buffered_bytes += SEARCHSVC_CHUNK;
    if (s->st.buffered_bytes > s->st.buffered_bytes_max) s->st.buffered_bytes_max = s->st.buffered_bytes;
    pthread_mutex_unlock(&s->mu);
    log_debug("search %llu started: '%s'%s", (unsigned long long)id, q->filter, q->n_flows ? " (selected flows)" : "");
    if (svc__send_flag(s, j, 1) < 0) {
        SVC_COUNT(s, abandoned, 1);
        svc__end(s, j);
    }
}

static void svc__request(searchsvc_t *s, const bus_peer *from, const uint8_t *data, size_t len,
                         int too_big)
{
    bus_peer peer = *from;
    SVC_COUNT(s, requests, 1);
    Mirrorscope__NodeSearchRequest *rq =
        too_big ? NULL : mirrorscope__node_search_request__unpack(NULL, len, data);
    if (!rq) {
        SVC_COUNT(s, refused, 1);
        svc__send_done(s, &peer, 0, 0, 1, too_big ? "request too large" : "not a NodeSearchRequest", NULL, 0);
        return;
    }
    /* The token opens a search. The credit and cancel messages of one that
     * runs are its own by peer and id (svc__find), so a token changed
     * meanwhile (SIGHUP, here or at the coordinator) does not cut it off. */
    svc_job *j = svc__find(s, &peer, rq->id);
    int control = j && (rq->body_case == MIRRORSCOPE__NODE_SEARCH_REQUEST__BODY_CREDIT ||
                        rq->body_case == MIRRORSCOPE__NODE_SEARCH_REQUEST__BODY_CANCEL);
    pthread_mutex_lock(&s->mu);
    int ok = control || token_equal(s->token, rq->token);
    pthread_mutex_unlock(&s->mu);
    if (!ok) {
        SVC_COUNT(s, refused, 1);
        log_warn("search request with a missing or wrong token refused");
        svc__send_done(s, &peer, rq->id, 0, 0, "missing or wrong search token", NULL, 0);
        goto out;
    }
    switch (rq->body_case) {
    case MIRRORSCOPE__NODE_SEARCH_REQUEST__BODY_START:
        svc__start(s, &peer, rq->id, rq->start);
        break;
    case MIRRORSCOPE__NODE_SEARCH_REQUEST__BODY_CREDIT:
        if (j) {
            j->credit += rq->credit;
            j->last_heard = timeparse_mono_ns();
        }
        break;
    case MIRRORSCOPE__NODE_SEARCH_REQUEST__BODY_CANCEL:
        if (j) {
            log_debug("search %llu cancelled", (unsigned long long)j->id);
            SVC_COUNT(s, cancelled, 1);
            svc__end(s, j);
        }
        break;
    default:
        SVC_COUNT(s, refused, 1);
        svc__send_done(s, &peer, rq->id, 0, 1, "unknown request type", NULL, 0);
    }
out:
    mirrorscope__node_search_request__free_unpacked(rq, NULL);
}

static int svc__send_chunk(searchsvc_t *s, svc_job *j)
{
    Mirrorscope__NodeSearchReply r;
    Mirrorscope__SearchChunk c;
    mirrorscope__node_search_reply__init(&r);
    mirrorscope__search_chunk__init(&c);
    r.id = j->id;
    r.body_case = MIRRORSCOPE__NODE_SEARCH_REPLY__BODY_CHUNK;
    r.chunk = &c;
    c.seq = ++j->seq;
    c.records.data = j->buf;
    c.records.len = j->fill;
    c.packets = j->npkts;
    int rc = svc__send(s, &j->peer, &r);
    if (rc == 0) {
        pthread_mutex_lock(&s->mu);
        s->st.chunks++;
        s->st.packets += j->npkts;
        s->st.bytes += j->fill;
        pthread_mutex_unlock(&s->mu);
    }
    j->credit--;
    j->fill = 0;
    j->npkts = 0;
    j->last_sent = timeparse_mono_ns();
    return rc;
}

/* One turn of a search: fill and send chunks while it has credit, for at
 * most a time slice. Returns 1 when it could use another turn now. */
static int svc__work(searchsvc_t *s, svc_job *j)
{
    int64_t deadline = timeparse_mono_ns() + SVC_SLICE_NS;
    unsigned n = 0;
    while (j->credit > 0) {
        if (j->finished) {
            if (j->fill && svc__send_chunk(s, j) < 0) goto gone;
            if (j->fill) return 0;
            search_stats fig;
            search_get_stats(j->it, &fig);
            int64_t took = timeparse_mono_ns() - j->t0;
            if (j->read_err) {
                char e[256];
                snprintf(e, sizeof e, "reading the segments failed: %s", strerror(-j->read_err));
                svc__send_done(s, &j->peer, j->id, 0, 0, e, &fig, took);
                SVC_COUNT(s, failed, 1);
            } else {
                svc__send_done(s, &j->peer, j->id, 1, 0, NULL, &fig, took);
                SVC_COUNT(s, completed, 1);
            }
            log_debug("search %llu done: %llu packets in %.1f ms", (unsigned long long)j->id,
                      (unsigned long long)fig.packets, (double)took / 1e6);
            svc__end(s, j);
            return 0;
        }
        search_pkt p;
        int rc = search_next(j->it, &p);
        if (rc <= 0) {
            j->finished = 1;
            j->read_err = rc < 0 ? rc : 0;
            continue;
        }
        size_t need = PCAPIO_REC_HDR + p.caplen;
        if (j->fill + need > SEARCHSVC_CHUNK && svc__send_chunk(s, j) < 0) goto gone;
        /* Credit may now be 0: the packet waits in the buffer for more. */
        pcapio_rec_header(j->buf + j->fill, p.ts_ns, p.caplen, p.origlen);
        memcpy(j->buf + j->fill + PCAPIO_REC_HDR, p.data, p.caplen);
        j->fill += need;
        j->npkts++;
        if (++n % 64 == 0 && timeparse_mono_ns() >= deadline) {
            /* A slow, sparse search still shows progress to the requester. */
            if (j->credit > 0 && svc__send_chunk(s, j) < 0) goto gone;
            return 1;
        }
    }
    return 0;
gone:
    log_info("search %llu: the requester has gone; stopped", (unsigned long long)j->id);
    SVC_COUNT(s, abandoned, 1);
    svc__end(s, j);
    return 0;
}

/* One turn of every search (work while it has credit; the idle and alive
 * timers). Returns 1 when some search could use another turn at once. */
static int svc__round(searchsvc_t *s)
{
    int more = 0;
    int64_t now = timeparse_mono_ns();
    for (int i = 0; i < s->max_jobs; i++) {
        svc_job *j = &s->jobs[i];
        if (!j->busy) continue;
        if (j->credit > 0) {
            more |= svc__work(s, j);
            if (!j->busy) continue;
            more |= j->credit > 0;
            now = timeparse_mono_ns();
        }
        if (j->credit == 0 && now - j->last_heard > j->idle_ns) {
            log_warn("search %llu: no credit from the requester for %lld s; stopped",
                     (unsigned long long)j->id, (long long)(j->idle_ns / 1000000000LL));
            SVC_COUNT(s, abandoned, 1);
            svc__end(s, j);
            continue;
        }
        if (now - j->last_sent >= SVC_ALIVE_NS && svc__send_flag(s, j, 0) < 0) {
            SVC_COUNT(s, abandoned, 1);
            svc__end(s, j);
        }
    }
    return more;
}

static void *svc__main(void *arg)
{
    searchsvc_t *s = arg;
    pthread_setname_np(pthread_self(), "mscope-search");
    /* Ingest comes first: searches take what CPU is left. */
    setpriority(PRIO_PROCESS, (id_t)gettid(), 10);
    int more = 0;
    while (!s->stop) {
        size_t len = 0;
        int rc;
        while ((rc = bus_rpc_recv(s->rpc, s->req, SEARCHSVC_REQUEST_MAX, &len, more ? 0 : 100)) != 0) {
            if (rc < 0 && rc != -EMSGSIZE) break;
            bus_peer peer;
            bus_rpc_peer(s->rpc, &peer);
            svc__request(s, &peer, s->req, len, rc == -EMSGSIZE);
            more = 1; /* look at the work right after; then poll without waiting */
            if (s->stop) break;
        }
        more = svc__round(s);
    }
    for (int i = 0; i < s->max_jobs; i++)
        if (s->jobs[i].busy) svc__end(s, &s->jobs[i]);
    return NULL;
}

static searchsvc_t *svc__new(const searchsvc_opts *o)
{
    searchsvc_t *s = xcalloc(1, sizeof *s);
    s->dir = xstrdup(o->dir);
    snprintf(s->token, sizeof s->token, "%s", o->token);
    s->node = xstrdup(o->node);
    s->max_jobs = o->max_searches > 0 ? o->max_searches : 4;
    s->idle_ns = o->idle_ns > 0 ? o->idle_ns : 60000000000LL;
    s->jobs = xcalloc((size_t)s->max_jobs, sizeof *s->jobs);
    s->out = xmalloc(SVC_OUT_MAX);
    pthread_mutex_init(&s->mu, NULL);
    return s;
}

searchsvc_t *searchsvc_new_unbound(const searchsvc_opts *o, searchsvc_send_fn send, void *ctx)
{
    searchsvc_t *s = svc__new(o);
    s->send = send;
    s->send_ctx = ctx;
    return s;
}

void searchsvc_handle(searchsvc_t *s, const bus_peer *peer, const uint8_t *msg, size_t len)
{
    svc__request(s, peer, msg, len, len > SEARCHSVC_REQUEST_MAX);
}

int searchsvc_round(searchsvc_t *s) { return svc__round(s); }

searchsvc_t *searchsvc_start(const searchsvc_opts *o, char *err, size_t errlen)
{
    searchsvc_t *s = svc__new(o);
    s->req = xmalloc(SEARCHSVC_REQUEST_MAX);
    s->rpc = bus_rpc_new(o->endpoint, SEARCHSVC_REQUEST_MAX, o->sec, "search", err, errlen);
    if (!s->rpc) goto fail;
    int rc = pthread_create(&s->thread, NULL, svc__main, s);
    if (rc) {
        snprintf(err, errlen, "pthread_create() failed: %s", strerror(rc));
        goto fail;
    }
    return s;
fail:
    bus_rpc_close(s->rpc);
    s->rpc = NULL;
    s->thread = 0;
    searchsvc_stop(s);
    return NULL;
}

void searchsvc_set_token(searchsvc_t *s, const char *token)
{
    pthread_mutex_lock(&s->mu);
    explicit_bzero(s->token, sizeof s->token);
    snprintf(s->token, sizeof s->token, "%s", token);
    pthread_mutex_unlock(&s->mu);
}

void searchsvc_get_stats(searchsvc_t *s, searchsvc_stats *out)
{
    pthread_mutex_lock(&s->mu);
    *out = s->st;
    pthread_mutex_unlock(&s->mu);
    out->refused_peers = s->rpc ? bus_socket_refused(s->rpc) : 0; /* the ZAP thread's, atomic */
}

void searchsvc_stop(searchsvc_t *s)
{
    if (!s) return;
    if (s->rpc) {
        s->stop = 1;
        pthread_join(s->thread, NULL);
        bus_rpc_close(s->rpc);
    }
    for (int i = 0; i < s->max_jobs; i++) /* unbound: searches left running */
        if (s->jobs[i].busy) svc__end(s, &s->jobs[i]);
    pthread_mutex_destroy(&s->mu);
    free(s->jobs);
    free(s->req);
    free(s->out);
    free(s->dir);
    explicit_bzero(s->token, sizeof s->token);
    free(s->node);
    free(s);
}
