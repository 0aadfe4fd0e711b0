/* scatter.c - the coordinator's distributed search (see scatter.h).
 *
 * Per search: one DEALER per node speaking NodeSearchRequest/Reply, a merge
 * of the nodes' chunk streams, and an output chunk for the client. Credit
 * runs backwards through the chain: the client grants output chunks; a
 * node's chunk, once merged out, is released and the node granted one more.
 */
#include "scatter.h"

#include "buswatch.h"
#include "log.h"
#include "merge.h"
#include "pbjson.h"
#include "pcapio.h"
#include "timeparse.h"
#include "token.h"
#include "xmalloc.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SC_CHUNK (1u << 20)
#define SC_RX_MAX (SC_CHUNK + 65536)      /* a node's reply: a chunk and its envelope */
#define SC_FLUSH_PARTIAL (64u << 10)      /* send a partial chunk this big while waiting */
#define SC_FLUSH_AGE_NS 50000000LL        /* ... or this old */
#define SC_CANCEL_LINGER_MS 50
#define SC_TICK_MS 100                    /* timeouts are checked this often */

enum { N_PENDING, N_RUNNING, N_OK, N_FAILED, N_TIMEOUT, N_UNREACHABLE, N_STOPPED };
static const char *const node_state_name[] = { "pending", "running", "ok", "failed",
                                               "timeout", "unreachable", "ok" };

typedef struct sc_node {
    char *name, *endpoint, *error;
    bus_dealer_t *d;
    bus_watch_t *w;  /* d on the loop */
    int state, bad_request, has_fig;
    Mirrorscope__SearchFigures fig;
    int64_t last_heard;
} sc_node;

typedef struct sc_search {
    scatter_t *sc;
    int busy, ending;
    bus_peer client;
    scatter_sink sink;   /* .send NULL: the RPC client on the ROUTER */
    uint64_t id, nid;
    merge_t *m;
    sc_node *nodes;
    int n;
    uint8_t *out;
    size_t fill;
    uint32_t npkts, credit;
    uint64_t seq, packets, bytes, max_packets, max_bytes;
    int limited, have_pkt;
    merge_pkt pkt;
    int64_t t0, client_heard, last_out, node_timeout, idle_timeout;
    uint64_t flows, flows_unreachable; /* a drill-down's (scatter_note_flows) */
    int flows_limited;
} sc_search;

struct scatter {
    uv_loop_t *loop;
    uv_timer_t *tick;  /* freed by its close callback */
    bus_rpc_t *rpc;
    scatter_opts o;
    char token[TOKEN_MAX];
    busauth_pair self; /* CURVE: our pair (o.self copied); self.sec "" when plain */
    sc_search *s;
    uint64_t next_nid;
    uint8_t *rx;
    uint8_t *tx;   /* a message to a client, packed */
    size_t txcap;
    scatter_stats st;
    metrics_hist latency; /* a search's time from start to trailer */
};

static void sc__on_tick(uv_timer_t *t) { scatter_work(t->data); }

/* A node's DEALER has something: read, merge and send what can go. */
static void sc__on_readable(void *data) { scatter_work(data); }

scatter_t *scatter_new(uv_loop_t *loop, bus_rpc_t *rpc, const scatter_opts *o)
{
    scatter_t *sc = xcalloc(1, sizeof *sc);
    sc->loop = loop;
    sc->tick = xcalloc(1, sizeof *sc->tick);
    uv_timer_init(loop, sc->tick);
    sc->tick->data = sc;
    uv_timer_start(sc->tick, sc__on_tick, SC_TICK_MS, SC_TICK_MS);
    sc->rpc = rpc;
    sc->o = *o;
    scatter_set_token(sc, o->token ? o->token : "");
    sc->o.token = NULL; /* the caller's: copied */
    if (o->self) sc->self = *o->self;
    sc->o.self = NULL;
    if (sc->o.window < 1) sc->o.window = 4;
    if (sc->o.max_searches < 1) sc->o.max_searches = 8;
    if (sc->o.node_timeout_ns <= 0) sc->o.node_timeout_ns = 10000000000LL;
    if (sc->o.idle_timeout_ns <= 0) sc->o.idle_timeout_ns = 60000000000LL;
    sc->s = xcalloc((size_t)sc->o.max_searches, sizeof *sc->s);
    sc->rx = xmalloc(SC_RX_MAX);
    metrics_hist_init(&sc->latency, metrics_latency_bounds, metrics_latency_nbounds);
    sc->next_nid = (uint64_t)timeparse_now_ns();
    return sc;
}

static int sc__node_send(scatter_t *sc, sc_search *s, sc_node *nd, Mirrorscope__NodeSearchRequest *r)
{
    uint8_t small[512];
    r->id = s->nid;
    r->token = sc->token;
    size_t n = mirrorscope__node_search_request__get_packed_size(r);
    uint8_t *buf = n <= sizeof small ? small : xmalloc(n);
    mirrorscope__node_search_request__pack(r, buf);
    int rc = bus_dealer_send(nd->d, buf, n);
    if (buf != small) free(buf);
    return rc;
}

/* A node is finished (done, failed, given up): no more chunks from it. */
static void sc__node_end(sc_search *s, int i, int state, const char *error, int tell)
{
    sc_node *nd = &s->nodes[i];
    if (nd->state >= N_OK) return;
    nd->state = state;
    if (error && *error && !nd->error) nd->error = xstrdup(error);
    if (tell && nd->d) {
        Mirrorscope__NodeSearchRequest r;
        mirrorscope__node_search_request__init(&r);
        r.body_case = MIRRORSCOPE__NODE_SEARCH_REQUEST__BODY_CANCEL;
        r.cancel = 1;
        sc__node_send(s->sc, s, nd, &r);
    }
    bus_watch_free(nd->w);
    nd->w = NULL;
    bus_dealer_close(nd->d, tell ? SC_CANCEL_LINGER_MS : 0);
    nd->d = NULL;
    merge_end(s->m, i);
}

/* The merge is done with a chunk: free it and let its node send another. */
static void sc__release(void *ctx, int stream, void *owner)
{
    sc_search *s = ctx;
    mirrorscope__node_search_reply__free_unpacked(owner, NULL);
    sc_node *nd = &s->nodes[stream];
    if (s->ending || nd->state >= N_OK || !nd->d) return;
    Mirrorscope__NodeSearchRequest r;
    mirrorscope__node_search_request__init(&r);
    r.body_case = MIRRORSCOPE__NODE_SEARCH_REQUEST__BODY_CREDIT;
    r.credit = 1;
    sc__node_send(s->sc, s, nd, &r);
}

static void sc__free_search(scatter_t *sc, sc_search *s)
{
    s->ending = 1;
    for (int i = 0; i < s->n; i++) {
        sc_node *nd = &s->nodes[i];
        if (nd->state < N_OK) sc__node_end(s, i, N_STOPPED, NULL, 1);
        free(nd->name);
        free(nd->endpoint);
        free(nd->error);
    }
    merge_free(s->m);
    free(s->nodes);
    free(s->out);
    scatter_sink sink = s->sink;
    memset(s, 0, sizeof *s);
    sc->st.active--;
    if (sink.ended) sink.ended(sink.ctx);
}

static sc_search *sc__find(scatter_t *sc, const bus_peer *client, uint64_t id)
{
    for (int i = 0; i < sc->o.max_searches; i++) {
        sc_search *s = &sc->s[i];
        if (s->busy && s->id == id && s->client.len == client->len &&
            !memcmp(s->client.id, client->id, client->len))
            return s;
    }
    return NULL;
}

int scatter_start(scatter_t *sc, const bus_peer *client, uint64_t id,
                  const Mirrorscope__SearchQuery *q, const scatter_node *nodes, int n,
                  const scatter_sink *sink, char *err, size_t errlen)
{
    sc_search *s = NULL;
    if (timeparse_check_range(q->from_ns, q->to_ns, err, errlen) < 0) return -1;
    if (sc__find(sc, client, id)) {
        snprintf(err, errlen, "a search with id %" PRIu64 " is already running", id);
        return -1;
    }
    for (int i = 0; i < sc->o.max_searches && !s; i++)
        if (!sc->s[i].busy) s = &sc->s[i];
    if (!s) {
        snprintf(err, errlen, "busy: %d searches are running; try again later", sc->o.max_searches);
        return -1;
    }
    /* A drill-down that selected no flows answers an empty capture. */
    if (n < 1 && !q->flows_of) {
        snprintf(err, errlen, "no live recorders to search");
        return -1;
    }
    int64_t now = timeparse_mono_ns();
    memset(s, 0, sizeof *s);
    s->sc = sc;
    s->busy = 1;
    s->client = *client;
    if (sink) s->sink = *sink;
    s->id = id;
    s->nid = ++sc->next_nid;
    s->n = n;
    s->nodes = xcalloc((size_t)n, sizeof *s->nodes);
    s->m = merge_new(n, sc__release, s);
    if (q->dedup) merge_set_dedup(s->m, q->dedup_window_ns > 0 ? q->dedup_window_ns : 1000000LL);
    s->out = xmalloc(SC_CHUNK);
    s->credit = q->credit ? q->credit : 4;
    s->max_packets = q->max_packets;
    s->max_bytes = q->max_bytes;
    s->t0 = s->client_heard = s->last_out = now;
    s->node_timeout = q->node_timeout_ms ? (int64_t)q->node_timeout_ms * 1000000LL : sc->o.node_timeout_ns;
    s->idle_timeout = q->idle_timeout_ms ? (int64_t)q->idle_timeout_ms * 1000000LL : sc->o.idle_timeout_ns;
    sc->st.searches++;
    sc->st.active++;

    /* What each node is asked: the same query, our window as its credit, and
     * patience for as long as our client may be slow. */
    Mirrorscope__SearchQuery nq = *q;
    nq.credit = sc->o.window;
    nq.n_nodes = 0;
    nq.nodes = NULL;
    nq.dedup = 0;
    nq.flows_of = NULL;
    int64_t idle_ms = s->idle_timeout / 1000000LL + 30000;
    nq.idle_timeout_ms = idle_ms > UINT32_MAX ? UINT32_MAX : (uint32_t)idle_ms;
    Mirrorscope__NodeSearchRequest r;
    mirrorscope__node_search_request__init(&r);
    r.body_case = MIRRORSCOPE__NODE_SEARCH_REQUEST__BODY_START;
    r.start = &nq;
    for (int i = 0; i < n; i++) {
        sc_node *nd = &s->nodes[i];
        char e[512];
        nd->name = xstrdup(nodes[i].name);
        nd->endpoint = xstrdup(nodes[i].endpoint ? nodes[i].endpoint : "");
        nd->last_heard = now;
        if (!*nd->endpoint) {
            sc__node_end(s, i, N_UNREACHABLE, "the recorder announces no search service (no search token there?)", 0);
            continue;
        }
        /* With CURVE, the recorder's search service has the key its bus
         * connection was let in with. */
        bus_sec sec = { .self = sc->self };
        if (sc->self.sec[0]) {
            if (!nodes[i].key || !*nodes[i].key) {
                sc__node_end(s, i, N_UNREACHABLE, "the recorder's key is unknown (its bus connection is plain: --insecure?)", 0);
                continue;
            }
            snprintf(sec.server_key, sizeof sec.server_key, "%s", nodes[i].key);
        }
        if (nodes[i].n_flows) {
            nq.flows = nodes[i].flows;
            nq.n_flows = nodes[i].n_flows;
        }
        nd->d = bus_dealer_new(nd->endpoint, SC_RX_MAX, sc->self.sec[0] ? &sec : NULL, e, sizeof e);
        if (nd->d) nd->w = bus_watch_new(sc->loop, nd->d, sc__on_readable, sc, e, sizeof e);
        if (!nd->w || sc__node_send(sc, s, nd, &r) < 0) {
            sc__node_end(s, i, N_UNREACHABLE, nd->w ? "cannot send the request" : e, 0);
            continue;
        }
    }
    log_info("search %" PRIu64 ": '%s' sent to %d recorders", id, q->filter, n);
    return 0;
}

void scatter_note_flows(scatter_t *sc, const bus_peer *client, uint64_t id, uint64_t flows,
                        int limited, uint64_t unreachable)
{
    sc_search *s = sc__find(sc, client, id);
    if (!s) return;
    s->flows = flows;
    s->flows_limited = limited;
    s->flows_unreachable = unreachable;
}

void scatter_credit(scatter_t *sc, const bus_peer *client, uint64_t id, uint32_t n)
{
    sc_search *s = sc__find(sc, client, id);
    if (!s) return;
    s->credit += n;
    s->client_heard = timeparse_mono_ns();
}

void scatter_cancel(scatter_t *sc, const bus_peer *client, uint64_t id)
{
    sc_search *s = sc__find(sc, client, id);
    if (!s) return;
    log_info("search %" PRIu64 " cancelled by the client", id);
    sc->st.cancelled++;
    sc__free_search(sc, s);
}

/* Send to the client; a client that has gone ends the search. */
static int sc__to_client(scatter_t *sc, sc_search *s, Mirrorscope__Response *resp)
{
    resp->id = s->id;
    int rc;
    if (s->sink.send) {
        rc = s->sink.send(s->sink.ctx, resp) < 0 ? -EPIPE : 0;
    } else {
        size_t n = mirrorscope__response__get_packed_size(resp);
        if (n + 1 > sc->txcap) sc->tx = xrealloc(sc->tx, sc->txcap = n + 1);
        mirrorscope__response__pack(resp, sc->tx);
        rc = bus_rpc_send_to(sc->rpc, &s->client, sc->tx, n);
    }
    if (rc < 0) {
        log_info("search %" PRIu64 ": the client has gone (%s); stopped", s->id, strerror(-rc));
        sc->st.abandoned++;
        sc__free_search(sc, s);
    }
    return rc;
}

static int sc__send_chunk(scatter_t *sc, sc_search *s)
{
    Mirrorscope__Response resp;
    Mirrorscope__SearchChunk c;
    mirrorscope__response__init(&resp);
    mirrorscope__search_chunk__init(&c);
    c.seq = ++s->seq;
    c.records.data = s->out;
    c.records.len = s->fill;
    c.packets = s->npkts;
    c.nodes_total = (uint32_t)s->n;
    for (int i = 0; i < s->n; i++) c.nodes_done += s->nodes[i].state >= N_OK;
    resp.search_chunk = &c;
    s->credit--;
    s->fill = 0;
    s->npkts = 0;
    s->last_out = timeparse_mono_ns();
    sc->st.chunks_out++;
    return sc__to_client(sc, s, &resp);
}

/* The trailer as it stands (the last one when every node has ended); its
 * node array is allocated (free t->nodes[0] and t->nodes), its strings are
 * the search's. *refused: nodes that refused the query; *first_error. */
static void sc__trailer_fill(const sc_search *s, Mirrorscope__SearchTrailer *t, int *refused,
                             const char **first_error)
{
    mirrorscope__search_trailer__init(t);
    Mirrorscope__NodeSearchStatus *st = xcalloc((size_t)s->n + 1, sizeof *st);
    Mirrorscope__NodeSearchStatus **stp = xcalloc((size_t)s->n + 1, sizeof *stp);
    stp[0] = st; /* for the free, even with no nodes */
    merge_stats ms;
    merge_get_stats(s->m, &ms);
    *refused = 0;
    *first_error = NULL;
    for (int i = 0; i < s->n; i++) {
        sc_node *nd = &s->nodes[i];
        mirrorscope__node_search_status__init(&st[i]);
        st[i].node = nd->name;
        st[i].endpoint = nd->endpoint;
        st[i].status = (char *)node_state_name[nd->state];
        st[i].error = nd->error ? nd->error : "";
        if (nd->has_fig) st[i].figures = &nd->fig;
        stp[i] = &st[i];
        if (nd->state != N_OK && nd->state != N_STOPPED) t->partial = 1;
        if (nd->state == N_FAILED && nd->bad_request) (*refused)++;
        if (nd->error && !*first_error) *first_error = nd->error;
    }
    t->n_nodes = (size_t)s->n;
    t->nodes = stp;
    t->packets = s->packets;
    t->bytes = s->bytes;
    t->duplicates = ms.duplicates;
    t->took_ns = timeparse_mono_ns() - s->t0;
    t->flows = s->flows;
    t->flows_limited = s->flows_limited;
    t->flows_unreachable = s->flows_unreachable;
    if (s->flows_unreachable) t->partial = 1;
}

static void sc__trailer_free(Mirrorscope__SearchTrailer *t)
{
    free(t->nodes[0]);
    free(t->nodes);
}

static void sc__send_trailer(scatter_t *sc, sc_search *s)
{
    Mirrorscope__Response resp;
    Mirrorscope__SearchTrailer t;
    mirrorscope__response__init(&resp);
    int refused;
    const char *first_error;
    sc__trailer_fill(s, &t, &refused, &first_error);
    resp.search_trailer = &t;
    char err[1024];
    if (s->n && refused == s->n) {
        resp.status = MIRRORSCOPE__RESPONSE__STATUS__BAD_REQUEST;
        snprintf(err, sizeof err, "%s", first_error ? first_error : "refused");
        resp.error = err;
        sc->st.failed++;
    } else if (t.partial) {
        sc->st.partial++;
    } else {
        sc->st.completed++;
    }
    metrics_hist_observe(&sc->latency, (double)t.took_ns / 1e9);
    sc->st.packets += s->packets;
    sc->st.bytes += s->bytes;
    sc->st.duplicates += t.duplicates;
    log_info("search %" PRIu64 ": %" PRIu64 " packets, %" PRIu64 " bytes from %d recorders%s in %.1f ms",
             s->id, s->packets, s->bytes, s->n, t.partial ? " (PARTIAL)" : "", (double)t.took_ns / 1e6);
    if (sc__to_client(sc, s, &resp) == 0) sc__free_search(sc, s);
    sc__trailer_free(&t);
}

json_t *scatter_progress_json(scatter_t *sc, const bus_peer *client, uint64_t id)
{
    sc_search *s = sc__find(sc, client, id);
    if (!s) return NULL;
    Mirrorscope__SearchTrailer t;
    int refused;
    const char *first_error;
    sc__trailer_fill(s, &t, &refused, &first_error);
    t.partial = 0; /* not decided yet */
    json_t *j = pbjson_message(&t.base);
    sc__trailer_free(&t);
    return j;
}

/* Merge and send as far as the data at hand and the client's credit go. */
static void sc__pump(scatter_t *sc, sc_search *s)
{
    for (;;) {
        if (!s->have_pkt) {
            if (s->max_packets && s->packets >= s->max_packets && !s->limited) {
                s->limited = 1; /* enough: the nodes can stop */
                for (int i = 0; i < s->n; i++) sc__node_end(s, i, N_STOPPED, NULL, 1);
            }
            int waiting = -1;
            int rc = s->limited ? -1 : merge_next(s->m, &s->pkt, &waiting);
            if (rc == 0) {
                int64_t now = timeparse_mono_ns();
                if (s->fill && s->credit &&
                    (s->fill >= SC_FLUSH_PARTIAL || now - s->last_out >= SC_FLUSH_AGE_NS))
                    sc__send_chunk(sc, s);
                return;
            }
            if (rc < 0) {
                if (s->fill) {
                    if (!s->credit) return;
                    if (sc__send_chunk(sc, s) < 0) return;
                }
                sc__send_trailer(sc, s);
                return;
            }
            if (s->max_bytes && s->bytes + s->pkt.caplen > s->max_bytes) {
                s->limited = 1;
                for (int i = 0; i < s->n; i++) sc__node_end(s, i, N_STOPPED, NULL, 1);
                continue;
            }
            s->have_pkt = 1;
        }
        size_t need = PCAPIO_REC_HDR + s->pkt.caplen;
        if (s->fill + need > SC_CHUNK) {
            if (!s->credit) return;
            if (sc__send_chunk(sc, s) < 0) return;
        }
        memcpy(s->out + s->fill, s->pkt.rec, need);
        s->fill += need;
        s->npkts++;
        s->packets++;
        s->bytes += s->pkt.caplen;
        s->have_pkt = 0;
    }
}

static void sc__figures(sc_node *nd, const Mirrorscope__SearchFigures *f)
{
    if (!f) return;
    mirrorscope__search_figures__init(&nd->fig);
    nd->fig.packets = f->packets;
    nd->fig.bytes = f->bytes;
    nd->fig.segments = f->segments;
    nd->fig.candidates = f->candidates;
    nd->fig.index_used = f->index_used;
    nd->fig.limited = f->limited;
    nd->fig.indexes_damaged = f->indexes_damaged;
    nd->fig.bad_records = f->bad_records;
    nd->fig.took_ns = f->took_ns;
    nd->has_fig = 1;
}

/* Read what node i has sent. */
static void sc__drain(scatter_t *sc, sc_search *s, int i, int64_t now)
{
    sc_node *nd = &s->nodes[i];
    while (nd->d) {
        size_t len = 0;
        int rc = bus_dealer_recv(nd->d, sc->rx, SC_RX_MAX, &len, 0);
        if (rc == 0) return;
        Mirrorscope__NodeSearchReply *r =
            rc > 0 ? mirrorscope__node_search_reply__unpack(NULL, len, sc->rx) : NULL;
        if (!r || r->id != s->nid) {
            char e[128];
            snprintf(e, sizeof e, "garbage from the recorder (%s)", rc < 0 ? strerror(-rc) : "not our reply");
            if (r) mirrorscope__node_search_reply__free_unpacked(r, NULL);
            sc__node_end(s, i, N_FAILED, e, 1);
            return;
        }
        nd->last_heard = now;
        switch (r->body_case) {
        case MIRRORSCOPE__NODE_SEARCH_REPLY__BODY_CHUNK:
            nd->state = N_RUNNING;
            if (!r->chunk) break;
            /* The merge owns the reply now and frees it once merged. */
            if (merge_push(s->m, i, r->chunk->records.data, r->chunk->records.len, r) < 0)
                sc__node_end(s, i, N_FAILED, "the recorder sent a malformed chunk", 1);
            continue;
        case MIRRORSCOPE__NODE_SEARCH_REPLY__BODY_DONE:
            if (r->done) {
                sc__figures(nd, r->done->figures);
                nd->bad_request = r->done->bad_request;
                sc__node_end(s, i, r->done->ok ? N_OK : N_FAILED, r->done->error, 0);
            } else {
                sc__node_end(s, i, N_FAILED, "empty done message", 0);
            }
            break;
        case MIRRORSCOPE__NODE_SEARCH_REPLY__BODY_ACCEPTED:
        case MIRRORSCOPE__NODE_SEARCH_REPLY__BODY_ALIVE:
            if (nd->state == N_PENDING) nd->state = N_RUNNING;
            break;
        default:
            break;
        }
        mirrorscope__node_search_reply__free_unpacked(r, NULL);
    }
}

static void sc__held(scatter_t *sc)
{
    uint64_t held = 0;
    for (int i = 0; i < sc->o.max_searches; i++) {
        if (!sc->s[i].busy) continue;
        merge_stats ms;
        merge_get_stats(sc->s[i].m, &ms);
        held += ms.bytes_held + sc->s[i].fill;
    }
    sc->st.bytes_held = held;
    if (held > sc->st.bytes_held_max) sc->st.bytes_held_max = held;
}

void scatter_work(scatter_t *sc)
{
    int64_t now = timeparse_mono_ns();
    for (int k = 0; k < sc->o.max_searches; k++) {
        sc_search *s = &sc->s[k];
        if (!s->busy) continue;
        for (int i = 0; i < s->n; i++) {
            sc__drain(sc, s, i, now);
            sc_node *nd = &s->nodes[i];
            int hs = nd->state < N_OK && nd->d ? bus_socket_handshake(nd->d) : BUS_HANDSHAKE_NONE;
            /* A recorder whose connections are refused (down since its
             * last heartbeat, or restarting) is unreachable now: not after
             * the node timeout, on every search until the registry forgets it. */
            if (bus_handshake_refused(hs) || hs == BUS_HANDSHAKE_NO_LISTENER) {
                log_warn("search %" PRIu64 ": recorder %s (%s): %s", s->id, nd->name, nd->endpoint,
                         bus_handshake_str(hs));
                /* no cancel: none could reach it (closing would linger for one) */
                sc__node_end(s, i, N_UNREACHABLE, bus_handshake_str(hs), 0);
            } else if (nd->state < N_OK && now - nd->last_heard > s->node_timeout) {
                int heard = nd->state == N_RUNNING;
                char e[160];
                snprintf(e, sizeof e, "%s for %.1f s", heard ? "silent" : "no answer",
                         (double)s->node_timeout / 1e9);
                log_warn("search %" PRIu64 ": recorder %s (%s): %s", s->id, nd->name, nd->endpoint, e);
                sc__node_end(s, i, heard ? N_TIMEOUT : N_UNREACHABLE, e, 1);
            }
        }
        sc__held(sc);
        sc__pump(sc, s);
        if (s->busy && s->credit == 0 && now - s->client_heard > s->idle_timeout) {
            log_warn("search %" PRIu64 ": no credit from the client for %.0f s; stopped", s->id,
                     (double)s->idle_timeout / 1e9);
            sc->st.abandoned++;
            sc__free_search(sc, s);
        }
    }
}

void scatter_get_stats(const scatter_t *sc, scatter_stats *out) { *out = sc->st; }

const metrics_hist *scatter_latency(const scatter_t *sc) { return &sc->latency; }

void scatter_set_token(scatter_t *sc, const char *token)
{
    explicit_bzero(sc->token, sizeof sc->token);
    snprintf(sc->token, sizeof sc->token, "%s", token);
}

void scatter_free(scatter_t *sc)
{
    if (!sc) return;
    for (int i = 0; i < sc->o.max_searches; i++)
        if (sc->s[i].busy) sc__free_search(sc, &sc->s[i]);
    uv_close((uv_handle_t *)sc->tick, (uv_close_cb)free);
    free(sc->s);
    free(sc->rx);
    free(sc->tx);
    explicit_bzero(sc->token, sizeof sc->token);
    free(sc);
}
