/* flowtab.c - flow table and TCP analysis (see flowtab.h, docs/TCP_ANALYTICS.md).
 *
 * DESIGN: flows live in one preallocated array; a chained hash index finds
 * them, a free list recycles them, and two doubly linked lists order them -
 * by activity (idle expiry, eviction when full) and by close time (grace
 * expiry). The activity list is "second chance": a packet only updates the
 * flow's last time, and a flow found at the old end that was active since it
 * was queued goes back to the new end - so a packet touches no list, and no
 * other flow's memory. Each TCP direction keeps Wireshark's per-direction
 * analysis state (next expected sequence number, last ACK, window, duplicate
 * ACK count, the oldest unacknowledged segments for ACK RTTs) so the same
 * packet gets the same flags as in tshark. The order of the tests in
 * flowtab__tcp() follows Wireshark's tcp_analyze_sequence_number(): which
 * flag a segment gets depends on that order.
 */
#include "flowtab.h"

#include "flowkey.h"
#include "xmalloc.h"

#include <stdlib.h>
#include <string.h>

#define UA_MAX 8 /* unacknowledged segments tracked per direction (Wireshark: 1000) */

/* Per-segment analysis flags, as Wireshark's TCP_A_* */
#define TA_RETRANS 0x0001
#define TA_FAST 0x0002
#define TA_SPURIOUS 0x0004
#define TA_OOO 0x0008
#define TA_LOST 0x0010
#define TA_ZW 0x0020
#define TA_ZWP 0x0040
#define TA_KA 0x0080
#define TA_WU 0x0100
#define TA_WF 0x0200
#define TA_KA_ACK 0x0400
#define TA_ZWP_ACK 0x0800
#define TA_DUPACK 0x1000

#define SEQ_LT(a, b) ((int32_t)((a) - (b)) < 0)
#define SEQ_GT(a, b) ((int32_t)((a) - (b)) > 0)
#define SEQ_LE(a, b) ((int32_t)((a) - (b)) <= 0)

typedef struct ua_seg {
    uint32_t seq, nextseq;
    int64_t ts;
} ua_seg;

typedef struct tcp_dir {
    uint32_t nextseq, maxseqtobeacked, lastack, window;
    int64_t nextseqtime, lastacktime;
    int32_t dupacknum;
    int8_t win_scale;     /* -1 unknown, -2 not in use, else the shift */
    uint8_t window_is_syn; /* the stored window came from a SYN: never scaled */
    uint16_t lastsegflags;
    uint8_t nua;
    ua_seg ua[UA_MAX];    /* oldest first */
} tcp_dir;

typedef struct fkey {
    uint8_t a[16], b[16]; /* endpoints in canonical order */
    uint8_t observer[16];
    uint32_t vni;
    uint16_t aport, bport;
    uint8_t proto;
    uint8_t pad[7];
} fkey;

enum { LIST_NONE, LIST_LRU, LIST_CLOSING };

/* Field order is hot first: a packet reads the key, the list and state
 * bytes, the times and both TCP directions (the first cache lines, which
 * flowtab_prefetch() fetches), then its direction's counters. */
typedef struct flow {
    fkey key;
    uint32_t chain;      /* next in hash bucket (index + 1) */
    uint32_t prev, next; /* in its list (index + 1) */
    uint8_t list;
    uint8_t client_is_a;
    uint8_t hs_seen;
    uint8_t fin[2], rst[2]; /* by direction: 0 client->server, 1 server->client */
    uint8_t hist_seen[2];
    uint8_t hist_len;
    uint8_t req_pending;
    int64_t last_ns, next_interim_ns, mru_syn_ns, req_last_ns;
    tcp_dir tcp[2];
    flowrec_dir d[2];
    int64_t first_ns, queued_ns, close_ns, syn_ns, synack_ns, ack_ns, initial_rtt_ns;
    uint64_t flow_id;
    flowrec_stat app;
    char history[24];
} flow;

struct flowtab {
    flowtab_opts o;
    flowtab_emit_fn emit;
    void *ctx;
    flow *flows;
    uint32_t *buckets; /* index + 1 */
    uint32_t nbuckets;
    uint32_t free_head; /* released slots: index + 1, chained through .next */
    uint32_t unused;    /* slots [unused, max_flows) were never used (untouched memory) */
    uint32_t lru_head, lru_tail, close_head, close_tail;
    uint64_t next_id;
    int64_t now;
    flowtab_stats st;
};

size_t flowtab_slot_bytes(void) { return sizeof(flow) + 2 * sizeof(uint32_t); }

void flowtab_ana_from(pkt_ana *a, const pkt_info_t *pi)
{
    memset(a, 0, sizeof *a);
    if (pi->l3 != PKT_L3_IPV4 && pi->l3 != PKT_L3_IPV6) return;
    if (pi->flags & PKT_F_FRAG_LATER) return; /* no transport header to analyse */
    if (pi->reason == DEC_ETH_SHORT || pi->reason == DEC_VLAN_SHORT ||
        pi->reason == DEC_IPV4_SHORT || pi->reason == DEC_IPV6_SHORT ||
        pi->reason == DEC_IPV4_BAD_VERSION || pi->reason == DEC_IPV6_BAD_VERSION)
        return;
    memcpy(a->src, pi->src, 16);
    memcpy(a->dst, pi->dst, 16);
    a->proto = pi->proto;
    a->ip_len = pi->ip_len;
    if (pi->proto == 6 || pi->proto == 17) {
        if (!(pi->flags & PKT_F_L4) || pi->reason != DEC_OK) return; /* ports/header unreliable */
        a->sport = pi->sport;
        a->dport = pi->dport;
    }
    a->seq = pi->tcp_seq;
    a->ack = pi->tcp_ack;
    a->win = pi->tcp_win;
    a->tcp_flags = pi->tcp_flags;
    a->wscale = pi->tcp_wscale;
    a->payload_len = pi->payload_len;
    a->usable = 1;
}

flowtab_t *flowtab_new(const flowtab_opts *o, flowtab_emit_fn emit, void *ctx)
{
    flowtab_t *t = xcalloc(1, sizeof *t);
    t->o = *o;
    if (t->o.max_flows < 1) t->o.max_flows = 1;
    t->emit = emit;
    t->ctx = ctx;
    t->flows = calloc(t->o.max_flows, sizeof *t->flows);
    t->nbuckets = 1;
    while (t->nbuckets < t->o.max_flows) t->nbuckets <<= 1;
    t->buckets = calloc(t->nbuckets, sizeof *t->buckets);
    if (!t->flows || !t->buckets) {
        flowtab_free(t);
        return NULL;
    }
    t->next_id = o->id_base;
    return t;
}

void flowtab_free(flowtab_t *t)
{
    if (!t) return;
    free(t->flows);
    free(t->buckets);
    free(t);
}

_Static_assert(sizeof(fkey) == 64, "fkey is hashed as eight 64-bit words");

static uint64_t flowtab__hash(const fkey *k) { return flowkey_hash64(k); }

/* ---- lists ------------------------------------------------------------- */

static void flowtab__unlink(flowtab_t *t, uint32_t id)
{
    flow *f = &t->flows[id - 1];
    uint32_t *head = f->list == LIST_LRU ? &t->lru_head : &t->close_head;
    uint32_t *tail = f->list == LIST_LRU ? &t->lru_tail : &t->close_tail;
    if (f->list == LIST_NONE) return;
    if (f->prev) t->flows[f->prev - 1].next = f->next;
    else *head = f->next;
    if (f->next) t->flows[f->next - 1].prev = f->prev;
    else *tail = f->prev;
    f->prev = f->next = 0;
    f->list = LIST_NONE;
}

/* Newest at the head, oldest at the tail. */
static void flowtab__push(flowtab_t *t, uint32_t id, int list)
{
    flow *f = &t->flows[id - 1];
    uint32_t *head = list == LIST_LRU ? &t->lru_head : &t->close_head;
    uint32_t *tail = list == LIST_LRU ? &t->lru_tail : &t->close_tail;
    f->list = (uint8_t)list;
    f->prev = 0;
    f->next = *head;
    if (*head) t->flows[*head - 1].prev = id;
    *head = id;
    if (!*tail) *tail = id;
}

/* ---- records ----------------------------------------------------------- */

static void flowtab__conn_state(const flow *f, char out[8])
{
    const char *s;
    if (f->key.proto != 6) {
        s = f->d[0].packets && f->d[1].packets ? "SF" : "S0";
    } else if (!(f->hs_seen & FLOWREC_HS_SYN) && !(f->hs_seen & FLOWREC_HS_SYNACK)) {
        s = "OTH";
    } else if (!(f->hs_seen & FLOWREC_HS_SYNACK)) {
        s = f->rst[1] ? "REJ" : f->fin[0] ? "SH" : f->rst[0] ? "RSTOS0" : "S0";
    } else {
        s = f->rst[0] ? "RSTO" : f->rst[1] ? "RSTR" : f->fin[0] && f->fin[1] ? "SF"
          : f->fin[0] ? "S2" : f->fin[1] ? "S3" : "S1";
    }
    strcpy(out, s);
}

static void flowtab__emit(flowtab_t *t, flow *f, int final)
{
    flowrec r;
    memset(&r, 0, sizeof r);
    r.flow_id = f->flow_id;
    r.vni = f->key.vni;
    memcpy(r.observer, f->key.observer, 16);
    r.proto = f->key.proto;
    memcpy(r.client_ip, f->client_is_a ? f->key.a : f->key.b, 16);
    memcpy(r.server_ip, f->client_is_a ? f->key.b : f->key.a, 16);
    r.client_port = f->client_is_a ? f->key.aport : f->key.bport;
    r.server_port = f->client_is_a ? f->key.bport : f->key.aport;
    r.first_ns = f->first_ns;
    r.last_ns = f->last_ns;
    r.c2s = f->d[0];
    r.s2c = f->d[1];
    r.hs_seen = f->hs_seen;
    r.syn_ns = f->syn_ns;
    r.synack_ns = f->synack_ns;
    r.ack_ns = f->ack_ns;
    r.initial_rtt_ns = f->initial_rtt_ns;
    r.app_response = f->app;
    flowtab__conn_state(f, r.conn_state);
    memcpy(r.history, f->history, f->hist_len);
    r.history[f->hist_len] = 0;
    r.final = final;
    t->st.records++;
    if (!final) t->st.interim++;
    t->emit(t->ctx, &r);
}

static void flowtab__release(flowtab_t *t, uint32_t id)
{
    flow *f = &t->flows[id - 1];
    uint32_t b = (uint32_t)(flowtab__hash(&f->key) & (t->nbuckets - 1));
    uint32_t *p = &t->buckets[b];
    while (*p && *p != id) p = &t->flows[*p - 1].chain;
    if (*p) *p = f->chain;
    flowtab__unlink(t, id);
    memset(f, 0, sizeof *f);
    f->next = t->free_head;
    t->free_head = id;
    t->st.active--;
}

static void flowtab__finish(flowtab_t *t, uint32_t id)
{
    flowtab__emit(t, &t->flows[id - 1], 1);
    flowtab__release(t, id);
}

/* ---- lookup ------------------------------------------------------------- */

static int flowtab__addr_cmp(const uint8_t *x, uint16_t xp, const uint8_t *y, uint16_t yp)
{
    int c = memcmp(x, y, 16);
    return c ? c : (xp > yp) - (xp < yp);
}

static void flowtab__requeue(flowtab_t *t, uint32_t id)
{
    flowtab__unlink(t, id);
    t->flows[id - 1].queued_ns = t->flows[id - 1].last_ns;
    flowtab__push(t, id, LIST_LRU);
}

/* The flow to close early when the table is full: the least recently
 * active one, as far as a few second chances can tell. */
static uint32_t flowtab__victim(flowtab_t *t)
{
    for (int tries = 0; tries < 8 && t->lru_tail; tries++) {
        flow *f = &t->flows[t->lru_tail - 1];
        if (f->last_ns == f->queued_ns) break;
        flowtab__requeue(t, t->lru_tail);
    }
    return t->lru_tail ? t->lru_tail : t->close_tail;
}

static uint32_t flowtab__new_flow(flowtab_t *t, const fkey *k, uint32_t bucket)
{
    if (!t->free_head && t->unused == t->o.max_flows) {
        /* Full: close the least recently active flow early (counted). */
        t->st.evicted_full++;
        flowtab__finish(t, flowtab__victim(t));
    }
    uint32_t id;
    if (t->free_head) {
        id = t->free_head;
        t->free_head = t->flows[id - 1].next;
    } else {
        id = ++t->unused; /* first touch of this slot's memory */
    }
    flow *f = &t->flows[id - 1];
    memset(f, 0, sizeof *f);
    f->key = *k;
    f->chain = t->buckets[bucket];
    t->buckets[bucket] = id;
    for (int d = 0; d < 2; d++) {
        f->tcp[d].win_scale = -1;
        f->d[d].rtt.min = INT64_MAX;
    }
    f->app.min = INT64_MAX;
    f->flow_id = t->next_id++;
    t->st.active++;
    t->st.created++;
    return id;
}

static void flowtab__history(flow *f, int dir, char c)
{
    int bit = -1;
    static const char letters[] = "shadfrtw";
    for (int i = 0; letters[i]; i++)
        if (letters[i] == c) bit = i;
    if (bit < 0 || (f->hist_seen[dir] & (1u << bit)) || f->hist_len >= sizeof f->history - 1) return;
    f->hist_seen[dir] |= (uint8_t)(1u << bit);
    f->history[f->hist_len++] = dir == 0 ? (char)(c - 'a' + 'A') : c;
}

static void flowtab__stat(flowrec_stat *s, int64_t v)
{
    if (v < s->min) s->min = v;
    if (v > s->max) s->max = v;
    s->sum += v;
    s->count++;
}

/* ---- TCP analysis (Wireshark's tcp_analyze_sequence_number) -------------- */

static void flowtab__tcp(flow *f, int dir, int64_t ts, const pkt_ana *a)
{
    tcp_dir *fwd = &f->tcp[dir], *rev = &f->tcp[1 - dir];
    flowrec_dir *st = &f->d[dir];
    uint32_t seq = a->seq, ack = a->ack, seglen = a->payload_len, window = a->win;
    uint8_t flags = a->tcp_flags;
    unsigned ta = 0;

    /* ZERO WINDOW PROBE */
    if (seglen == 1 && seq == fwd->nextseq && rev->window == 0) {
        ta |= TA_ZWP;
        goto finished_fwd;
    }
    /* ZERO WINDOW */
    if (window == 0 && !(flags & (TCP_RST | TCP_FIN | TCP_SYN))) ta |= TA_ZW;
    /* LOST PACKET: a gap before this segment */
    if (fwd->nextseq && SEQ_GT(seq, fwd->nextseq) && !(flags & TCP_RST)) ta |= TA_LOST;
    /* KEEP ALIVE */
    if ((seglen == 0 || seglen == 1) && seq == fwd->nextseq - 1 &&
        !(flags & (TCP_SYN | TCP_FIN | TCP_RST)))
        ta |= TA_KA;
    /* WINDOW UPDATE */
    if (seglen == 0 && window && window != fwd->window && seq == fwd->nextseq &&
        ack == fwd->lastack && !(flags & (TCP_SYN | TCP_FIN | TCP_RST)))
        ta |= TA_WU;
    /* WINDOW FULL */
    if (seglen > 0 && rev->win_scale != -1 && !(flags & (TCP_SYN | TCP_FIN | TCP_RST))) {
        int shift = rev->window_is_syn || rev->win_scale == -2 ? 0 : rev->win_scale;
        if (seq + seglen == rev->lastack + (rev->window << shift)) ta |= TA_WF;
    }
    /* KEEP ALIVE ACK */
    if (seglen == 0 && window && window == fwd->window && seq == fwd->nextseq &&
        ack == fwd->lastack && (rev->lastsegflags & TA_KA) &&
        !(flags & (TCP_SYN | TCP_FIN | TCP_RST))) {
        ta |= TA_KA_ACK;
        goto finished_fwd;
    }
    /* ZERO WINDOW PROBE ACK */
    if (seglen == 0 && window == 0 && window == fwd->window && seq == fwd->nextseq &&
        ack == fwd->lastack && (rev->lastsegflags & TA_ZWP) &&
        !(flags & (TCP_SYN | TCP_FIN | TCP_RST))) {
        ta |= TA_ZWP_ACK;
        goto finished_fwd;
    }
    /* DUPLICATE ACK */
    if (seglen == 0 && window && window == fwd->window && seq == fwd->nextseq &&
        ack == fwd->lastack && !(flags & (TCP_SYN | TCP_FIN | TCP_RST))) {
        fwd->dupacknum = fwd->dupacknum == -1 ? 1 : fwd->dupacknum + 1;
        ta |= TA_DUPACK;
    }

finished_fwd:
    if (ack != fwd->lastack) fwd->dupacknum = 0;
    /* ACKED LOST PACKET: acks data we never saw; only bookkeeping here */
    if (rev->maxseqtobeacked && SEQ_GT(ack, rev->maxseqtobeacked) && (flags & TCP_ACK)) {
        if (SEQ_GT(rev->maxseqtobeacked, rev->nextseq)) rev->maxseqtobeacked = rev->nextseq;
        else rev->dupacknum = -1;
    }

    /* RETRANSMISSION / FAST RETRANSMISSION / SPURIOUS / OUT-OF-ORDER */
    if ((seglen > 0 || (flags & (TCP_SYN | TCP_FIN))) && !(ta & TA_KA)) {
        int not_advanced = fwd->nextseq && SEQ_LT(seq, fwd->nextseq);
        if (seglen > 1 && fwd->nextseq - 1 == seq) not_advanced = 0;
        if (seglen > 0 && rev->lastack && SEQ_LE(seq + seglen, rev->lastack)) {
            ta |= TA_SPURIOUS;
        } else if (not_advanced && rev->dupacknum >= 2 && rev->lastack == seq &&
                   ts - rev->lastacktime < 20000000LL) {
            ta |= TA_FAST;
        } else {
            int64_t thres = f->initial_rtt_ns ? f->initial_rtt_ns : 3000000LL;
            uint32_t syn_fin = (flags & (TCP_SYN | TCP_FIN)) ? 1 : 0;
            if (not_advanced && ts - fwd->nextseqtime < thres &&
                fwd->nextseq != seq + seglen + syn_fin)
                ta |= TA_OOO;
            else if (not_advanced)
                ta |= TA_RETRANS;
        }
    }

    uint32_t nextseq = seq + seglen;
    if (seglen || (flags & (TCP_SYN | TCP_FIN))) {
        if (flags & (TCP_SYN | TCP_FIN)) nextseq += 1;
        if (fwd->nua < UA_MAX) fwd->ua[fwd->nua++] = (ua_seg){ seq, nextseq, ts };
    }
    if (SEQ_GT(nextseq, fwd->nextseq) || !fwd->nextseq) {
        if (!(ta & TA_ZWP)) {
            fwd->nextseq = nextseq;
            fwd->nextseqtime = ts;
        }
    }
    if (seq == fwd->maxseqtobeacked || !fwd->maxseqtobeacked) {
        if (!(ta & TA_ZWP)) fwd->maxseqtobeacked = fwd->nextseq;
    }
    fwd->window = window;
    fwd->window_is_syn = (flags & TCP_SYN) != 0;
    fwd->lastack = ack;
    fwd->lastacktime = ts;
    fwd->lastsegflags = (uint16_t)ta;

    /* ACK RTT: this ACK exactly covers an unacknowledged segment of the other
     * direction. As in Wireshark, the oldest exact match gives the sample. */
    int64_t rtt = -1;
    uint8_t keep = 0;
    for (uint8_t i = 0; i < rev->nua; i++) {
        ua_seg *u = &rev->ua[i];
        if (ack == u->nextseq) {
            if (rtt < 0) rtt = ts - u->ts;
            continue; /* acked: dropped */
        }
        if (SEQ_GT(ack, u->seq) && SEQ_LE(ack, u->nextseq)) u->seq = ack;
        if (SEQ_GT(u->nextseq, ack)) rev->ua[keep++] = *u;
    }
    rev->nua = keep;
    if (rtt >= 0) flowtab__stat(&f->d[1 - dir].rtt, rtt);

    /* Window scale from the handshake (Wireshark's verify_tcp_window_scaling). */
    if (flags & TCP_SYN) {
        fwd->win_scale = a->wscale;
        if (fwd->win_scale == -1) {
            fwd->win_scale = -2;
            rev->win_scale = -2;
        } else if ((flags & TCP_ACK) && rev->win_scale == -2) {
            fwd->win_scale = -2;
        }
    }

    if (ta & (TA_RETRANS | TA_FAST | TA_SPURIOUS)) st->retransmissions++;
    if (ta & TA_FAST) st->fast_retransmissions++;
    if (ta & TA_SPURIOUS) st->spurious_retransmissions++;
    if (ta & TA_OOO) st->out_of_order++;
    if (ta & TA_DUPACK) st->dup_acks++;
    if (ta & TA_LOST) st->lost_segments++;
    if (ta & TA_ZW) st->zero_windows++;
    if (ta & TA_WF) st->window_full++;
    if (ta & TA_KA) st->keep_alives++;
    if (ta & (TA_RETRANS | TA_FAST | TA_SPURIOUS)) flowtab__history(f, dir, 't');
    if (ta & TA_ZW) flowtab__history(f, dir, 'w');
}

static void flowtab__tcp_session(flowtab_t *t, uint32_t id, int dir, int64_t ts, const pkt_ana *a)
{
    flow *f = &t->flows[id - 1];
    uint8_t fl = a->tcp_flags;
    int client = dir == 0;
    /* The handshake is the last SYN and SYN/ACK before the client's ACK, so
     * retransmitted SYNs cannot make the setup times negative. */
    if ((fl & TCP_SYN) && !(fl & TCP_ACK)) {
        if (client && !(f->hs_seen & FLOWREC_HS_ACK)) {
            f->hs_seen |= FLOWREC_HS_SYN;
            f->syn_ns = ts;
        }
        f->mru_syn_ns = ts;
        flowtab__history(f, dir, 's');
    } else if ((fl & TCP_SYN) && (fl & TCP_ACK)) {
        if (!client && !(f->hs_seen & FLOWREC_HS_ACK)) {
            f->hs_seen |= FLOWREC_HS_SYNACK;
            f->synack_ns = ts;
        }
        flowtab__history(f, dir, 'h');
    }
    /* Initial RTT as Wireshark: the first ACK without SYN after a SYN, from
     * the most recent SYN (a refusing RST/ACK counts too). */
    if ((fl & (TCP_SYN | TCP_ACK)) == TCP_ACK && f->mru_syn_ns && !(f->hs_seen & FLOWREC_HS_IRTT)) {
        f->initial_rtt_ns = ts - f->mru_syn_ns;
        f->hs_seen |= FLOWREC_HS_IRTT;
    }
    if (client && (fl & (TCP_SYN | TCP_ACK)) == TCP_ACK && (f->hs_seen & FLOWREC_HS_SYNACK) &&
        !(f->hs_seen & FLOWREC_HS_ACK)) {
        f->hs_seen |= FLOWREC_HS_ACK;
        f->ack_ns = ts;
    }
    flowtab__tcp(f, dir, ts, a);
    if (fl & TCP_FIN) {
        f->d[dir].fins++;
        f->fin[dir] = 1;
        flowtab__history(f, dir, 'f');
    }
    if (fl & TCP_RST) {
        f->d[dir].rsts++;
        f->rst[dir] = 1;
        flowtab__history(f, dir, 'r');
    }
    if (a->payload_len) flowtab__history(f, dir, 'd');
    else if ((fl & (TCP_SYN | TCP_FIN | TCP_RST | TCP_ACK)) == TCP_ACK) flowtab__history(f, dir, 'a');
}

/* Application response time: last request byte -> first response byte. */
static void flowtab__app(flow *f, int dir, int64_t ts, const pkt_ana *a)
{
    if (!a->payload_len) return;
    if (dir == 0) {
        f->req_last_ns = ts;
        f->req_pending = 1;
    } else if (f->req_pending) {
        flowtab__stat(&f->app, ts - f->req_last_ns);
        f->req_pending = 0;
    }
}

/* The canonical key: endpoints in a fixed order, so both directions match.
 * Returns 1 when the packet's source is endpoint a. */
static int flowtab__key(fkey *k, const pkt_ana *a, uint32_t vni, const uint8_t observer[16])
{
    memset(k, 0, sizeof *k);
    int a_is_src = flowtab__addr_cmp(a->src, a->sport, a->dst, a->dport) <= 0;
    memcpy(k->a, a_is_src ? a->src : a->dst, 16);
    memcpy(k->b, a_is_src ? a->dst : a->src, 16);
    k->aport = a_is_src ? a->sport : a->dport;
    k->bport = a_is_src ? a->dport : a->sport;
    if (observer) memcpy(k->observer, observer, 16);
    k->vni = vni;
    k->proto = a->proto;
    return a_is_src;
}

uint64_t flowtab_hash(const pkt_ana *a, uint32_t vni, const uint8_t observer[16])
{
    fkey k;
    if (!a->usable) return 0;
    flowtab__key(&k, a, vni, observer);
    return flowtab__hash(&k);
}

void flowtab_prefetch(const flowtab_t *t, uint64_t hash_far, uint64_t hash_near)
{
    __builtin_prefetch(&t->buckets[hash_far & (t->nbuckets - 1)]);
    uint32_t id = t->buckets[hash_near & (t->nbuckets - 1)];
    if (!id) return;
    /* The key, state and both TCP directions fill the first seven cache
     * lines (struct flow is ordered hot first); fetching all 13 measured
     * slower, fetching fewer too. */
    const char *f = (const char *)&t->flows[id - 1];
    for (size_t off = 0; off < 448; off += 64) __builtin_prefetch(f + off, 1);
}

void flowtab_packet(flowtab_t *t, int64_t ts, uint32_t vni, const uint8_t observer[16],
                    const pkt_ana *a, uint64_t hash)
{
    if (!a->usable) {
        t->st.unusable_packets++;
        return;
    }
    if (ts > t->now) flowtab_advance(t, ts);
    fkey k;
    int a_is_src = flowtab__key(&k, a, vni, observer);
    uint32_t bucket = (uint32_t)(hash & (t->nbuckets - 1));
    uint32_t id = t->buckets[bucket];
    while (id && memcmp(&t->flows[id - 1].key, &k, sizeof k) != 0) id = t->flows[id - 1].chain;

    int syn_only = a->proto == 6 && (a->tcp_flags & (TCP_SYN | TCP_ACK)) == TCP_SYN;
    if (id && syn_only && t->flows[id - 1].list == LIST_CLOSING) {
        /* A new connection on the same ports after the old one closed. */
        flowtab__finish(t, id);
        id = 0;
    }
    if (!id) {
        id = flowtab__new_flow(t, &k, bucket);
        flow *f = &t->flows[id - 1];
        /* The client: sender of the first SYN; the receiver of a SYN/ACK;
         * otherwise for TCP the side with the higher port (servers listen on
         * low ports), and for other protocols the first sender. */
        int client_is_src;
        if (a->proto == 6 && (a->tcp_flags & TCP_SYN)) client_is_src = !(a->tcp_flags & TCP_ACK);
        else if (a->proto == 6 && a->sport != a->dport) client_is_src = a->sport > a->dport;
        else client_is_src = 1;
        f->client_is_a = (uint8_t)(client_is_src == a_is_src);
        f->first_ns = ts;
        f->queued_ns = ts;
        f->next_interim_ns = ts + t->o.interval_ns;
        flowtab__push(t, id, LIST_LRU);
    }
    flow *f = &t->flows[id - 1];
    int dir = (a_is_src == f->client_is_a) ? 0 : 1;
    f->last_ns = ts;
    flowrec_dir *d = &f->d[dir];
    d->packets++;
    d->ip_bytes += a->ip_len;
    d->payload_bytes += a->payload_len;
    if (a->proto == 6) flowtab__tcp_session(t, id, dir, ts, a);
    flowtab__app(f, dir, ts, a);
    if (f->list == LIST_LRU && ((f->fin[0] && f->fin[1]) || f->rst[0] || f->rst[1])) {
        f->close_ns = ts;
        flowtab__unlink(t, id);
        flowtab__push(t, id, LIST_CLOSING);
    }
    if (ts >= f->next_interim_ns) {
        flowtab__emit(t, f, 0);
        while (f->next_interim_ns <= ts) f->next_interim_ns += t->o.interval_ns;
    }
}

void flowtab_advance(flowtab_t *t, int64_t now)
{
    if (now > t->now) t->now = now;
    while (t->close_tail && t->flows[t->close_tail - 1].close_ns + t->o.grace_ns <= t->now)
        flowtab__finish(t, t->close_tail);
    while (t->lru_tail) {
        uint32_t id = t->lru_tail;
        flow *f = &t->flows[id - 1];
        if (f->last_ns + t->o.idle_ns <= t->now) {
            flowtab__finish(t, id);
        } else if (f->queued_ns + t->o.idle_ns <= t->now) {
            flowtab__requeue(t, id); /* active since queued: second chance */
        } else {
            break; /* everything newer was queued later */
        }
    }
}

void flowtab_flush(flowtab_t *t)
{
    /* Oldest first, so records come out roughly in the order flows ended. */
    while (t->close_tail) flowtab__finish(t, t->close_tail);
    while (t->lru_tail) flowtab__finish(t, t->lru_tail);
}

void flowtab_get_stats(const flowtab_t *t, flowtab_stats *out) { *out = t->st; }
