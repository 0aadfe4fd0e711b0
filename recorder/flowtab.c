/* flowtab.c - flow table and TCP analysis (see flowtab.h, docs/TCP_ANALYTICS.md).
 *
 * DESIGN: a flow is two preallocated slots of the same number: a hot one
 * (the key, the hash chain, the list links, the last time: all a lookup or
 * an expiry reads) and a cold one (the analysis state and the counters,
 * read only for the flow's own packets), so a lookup walking a chain reads
 * no analysis state. A chained hash index of 32-bit slot numbers finds
 * flows, a free list recycles them, and two doubly linked lists order them -
 * by activity (idle expiry, eviction when full) and by close time (grace
 * expiry). The activity list is "second chance": a packet only updates the
 * flow's last time, and a flow found at the old end that was active since it
 * was queued goes back to the new end - so a packet touches no list, and no
 * other flow's memory. Each TCP direction keeps Wireshark's per-direction
 * analysis state (next expected sequence number, last ACK, window, duplicate
 * ACK count) so the same packet gets the same flags as in tshark; the order
 * of the tests in flowtab__tcp() follows Wireshark's
 * tcp_analyze_sequence_number(): which flag a segment gets depends on that
 * order.
 *
 * Compact state (~390 bytes a flow): an 88-byte hot slot (the hash chain,
 * list and flags in the key's padding), a 296-byte cold one (each
 * direction's TCP state and counters in 96 bytes, then the flow's times,
 * history and statistics), a 4-byte index entry. The flow record is built
 * only when emitted, from narrow counters - 32-bit packets, bytes and sample
 * counts, 16-bit RST and FIN counts; the anomaly counts (retransmissions,
 * duplicate ACKs, lost segments, ...), which most flows never have, live in
 * a 72-byte block from a pool taken at a flow's first anomaly. A counter that wraps carries into
 * the flow's wide record, a side array by slot number that only such flows
 * touch, so records stay exact whatever the flow. Of a direction's
 * unacknowledged segments (the oldest 8, for ACK RTTs) the oldest is kept in
 * the flow, the others in a 96-byte block from a pool, held only while two
 * or more are outstanding (a request waiting for its answer needs none); an
 * entry is the segment's end (its start is never needed) and its time. The
 * pool and the wide records are allocated at creation like the slots, and
 * untouched pages cost nothing, so memory follows what is in use.
 */
#include "flowtab.h"

#include "flowkey.h"
#include "xmalloc.h"

#include <stddef.h>
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

/* A direction's outstanding segments after the oldest (which fdir
 * holds), oldest first: 96 bytes, two cache lines. A free block is chained
 * through end[0] (index + 1). */
typedef struct ua_blk {
    uint32_t end[UA_MAX]; /* sequence number after the segment; the last unused */
    int64_t ts[UA_MAX];   /* when it was seen */
} ua_blk;

/* Per-direction events: RSTs and FINs, which most flows have, counted 16
 * bits wide in the flow; the anomalies, which most flows never have, 32 bits
 * wide in a block of both directions' taken from a pool at the first one.
 * Carries go to the wide record. */
enum { EV_RETRANS, EV_FAST, EV_SPURIOUS, EV_OOO, EV_DUPACK, EV_LOST, EV_ZW, EV_WF, EV_KA,
       EV_RARE, EV_RST = EV_RARE, EV_FIN, EV_N };

typedef struct ev_blk {
    uint32_t n[2][EV_RARE]; /* a free block is chained through n[0][0] (index + 1) */
} ev_blk;

/* One direction of a flow: its TCP analysis state and its counters (96
 * bytes, no padding). */
typedef struct fdir {
    int64_t nextseqtime, lastacktime;
    int64_t ua0_ts;     /* the oldest outstanding segment: when seen */
    int64_t rtt_min, rtt_max, rtt_sum; /* as flowrec_stat's */
    uint32_t ua0_end;   /* the sequence number after the oldest outstanding segment */
    uint32_t nextseq, maxseqtobeacked, lastack;
    uint32_t ua;        /* block of the other outstanding segments (index + 1), 0 when none */
    uint32_t packets, ip_bytes, payload_bytes, rtt_count; /* carries in the wide record */
    uint16_t window;    /* as sent (unscaled) */
    int16_t dupacknum;  /* saturates: only compared with -1 and 2 */
    uint16_t ev[EV_N - EV_RARE]; /* RSTs, FINs */
    int8_t win_scale;   /* -1 unknown, -2 not in use, else the shift */
    uint8_t window_is_syn; /* the stored window came from a SYN: never scaled */
    uint8_t lastseg;    /* the last segment's TA_KA / TA_ZWP (the only flags read back) */
    uint8_t nua;        /* outstanding segments: ua0 and nua - 1 in the block */
} fdir;

/* The carries of a flow's narrow counters (flow bit F_WIDE). */
typedef struct flow_wide {
    uint64_t packets[2], ip_bytes[2], payload_bytes[2], rtt_count[2]; /* + 2^32 each carry */
    uint64_t ev[2][EV_N]; /* + 2^32 (anomalies) or 2^16 (RSTs, FINs) each carry */
    uint64_t app_count, interims;
} flow_wide;

typedef struct fkey {
    uint8_t a[16], b[16]; /* endpoints in canonical order */
    uint8_t observer[16];
    uint32_t vni;
    uint16_t aport, bport;
    uint8_t proto;
    uint8_t pad[7];
} fkey;

enum { LIST_NONE, LIST_LRU, LIST_CLOSING };

/* flow bits */
#define F_CLIENT_IS_A 0x01
#define F_REQ_PENDING 0x02 /* a request's payload seen, no response payload yet */
#define F_WIDE 0x04        /* the wide record holds something */
#define F_FIN0 0x10        /* by direction: 0 client->server, 1 server->client */
#define F_FIN1 0x20
#define F_RST0 0x40
#define F_RST1 0x80

#define FKEY_LEN offsetof(fkey, pad) /* the bytes that make a key; the rest is 0 in a packet's */

/* Hot: what a lookup, the lists and expiry read. The key's padding holds the
 * hash chain, the list and the bits (so a key is compared on its FKEY_LEN
 * bytes, and hashed from a copy with the padding cleared). */
typedef struct flow {
    union {
        fkey key;
        struct {
            uint8_t key_bytes_[FKEY_LEN];
            uint8_t list;
            uint8_t bits;  /* F_* */
            uint8_t unused_;
            uint32_t chain; /* next in hash bucket (index + 1) */
        };
    };
    int64_t last_ns;
    int64_t queued_ns;   /* activity list: last_ns when queued; close list: the close time */
    uint32_t prev, next; /* in its list (index + 1) */
} flow;

/* Cold: the analysis and what the record is built from. */
typedef struct fcold {
    /* what a packet reads: the first 240 bytes */
    fdir dir[2];
    int64_t first_ns;
    uint64_t history;  /* Zeek's letters as 4-bit codes (direction * 8 + letter), first lowest */
    uint32_t interims; /* the next interim record is due at first_ns + (interims + 1) * interval */
    uint32_t evb;      /* the anomaly counters' block (index + 1), 0 while there are none */
    uint32_t app_count;
    uint16_t hist_seen; /* letters seen, bit direction * 8 + letter */
    uint8_t hs_seen;
    uint8_t hist_len;
    int64_t syn_irtt; /* before the initial RTT (FLOWREC_HS_IRTT): the most recent SYN's
                       * time (0: none); after: the initial RTT */
    int64_t req_last_ns;
    /* the handshake, a response, the record */
    int64_t syn_ns, synack_ns, ack_ns;
    int64_t app_min, app_max, app_sum;
    uint64_t flow_id;
} fcold;

struct flowtab {
    flowtab_opts o;
    flowtab_emit_fn emit;
    void *ctx;
    flow *flows;
    fcold *cold;
    flow_wide *wide;
    ua_blk *ua;
    ev_blk *evb;
    uint32_t *buckets; /* index + 1 */
    uint32_t nbuckets;
    uint32_t free_head; /* released slots: index + 1, chained through .next */
    uint32_t unused;    /* slots [unused, max_flows) were never used (untouched memory) */
    uint32_t ua_free, ua_unused, ua_n; /* the same for the segment blocks */
    uint32_t evb_free, evb_unused;     /* and the anomaly blocks (max_flows) */
    uint32_t lru_head, lru_tail, close_head, close_tail;
    uint64_t next_id;
    int64_t now;
    flowtab_stats st;
};

size_t flowtab_slot_bytes(void)
{
    return sizeof(flow) + sizeof(fcold) + 2 * sizeof(uint32_t);
}

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
    void *ua = NULL;
    t->o = *o;
    if (t->o.max_flows < 1) t->o.max_flows = 1;
    t->emit = emit;
    t->ctx = ctx;
    /* Large callocs are fresh mappings: pages cost memory once touched. */
    t->flows = calloc(t->o.max_flows, sizeof *t->flows);
    t->cold = calloc(t->o.max_flows, sizeof *t->cold);
    t->wide = calloc(t->o.max_flows, sizeof *t->wide);
    t->evb = calloc(t->o.max_flows, sizeof *t->evb);
    /* Two blocks per flow at most; 32-byte aligned (each spans two cache
     * lines), never read before written. */
    t->ua_n = t->o.max_flows * 2;
    if (posix_memalign(&ua, 32, (size_t)t->ua_n * sizeof(ua_blk)) == 0) t->ua = ua;
    t->nbuckets = 1;
    while (t->nbuckets < t->o.max_flows) t->nbuckets <<= 1;
    t->buckets = calloc(t->nbuckets, sizeof *t->buckets);
    if (!t->flows || !t->cold || !t->wide || !t->evb || !t->ua || !t->buckets) {
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
    free(t->cold);
    free(t->wide);
    free(t->evb);
    free(t->ua);
    free(t->buckets);
    free(t);
}

_Static_assert(sizeof(fkey) == 64, "fkey is hashed as eight 64-bit words");
_Static_assert(offsetof(flow, chain) + sizeof(uint32_t) == sizeof(fkey), "flow: key padding used");
_Static_assert(sizeof(flow) == 88, "a hot slot is 88 bytes");
#define FCOLD_HOT 240 /* bytes of fcold a packet reads */
_Static_assert(offsetof(fcold, syn_ns) == FCOLD_HOT, "fcold: what a packet reads comes first");
_Static_assert(sizeof(fdir) == 96, "fdir has no padding");
_Static_assert(sizeof(ua_blk) == 96, "a block of outstanding segments is two cache lines");

static uint64_t flowtab__hash(const fkey *k) { return flowkey_hash64(k); }

/* ---- compact values ---------------------------------------------------- */

/* The flow's wide record, marked in use. */
static flow_wide *flowtab__wide(flowtab_t *t, uint32_t id)
{
    t->flows[id - 1].bits |= F_WIDE;
    return &t->wide[id - 1];
}

/* A 32-bit counter; its carries are counted in *wide (only touched then). */
static inline void flowtab__add32(flowtab_t *t, uint32_t id, uint32_t *c, uint64_t *wide,
                                  uint32_t v)
{
    uint32_t old = *c;
    *c = old + v;
    if (*c < old) {
        flowtab__wide(t, id);
        *wide += 1ull << 32;
    }
}

static void flowtab__ev(flowtab_t *t, uint32_t id, fcold *c, int dir, int ev)
{
    if (ev >= EV_RARE) {
        if (++c->dir[dir].ev[ev - EV_RARE] == 0) {
            flowtab__wide(t, id);
            t->wide[id - 1].ev[dir][ev] += 1u << 16;
        }
        return;
    }
    if (!c->evb) {
        if (t->evb_free) {
            c->evb = t->evb_free;
            t->evb_free = t->evb[c->evb - 1].n[0][0];
        } else {
            c->evb = ++t->evb_unused; /* one per flow at most: never beyond max_flows */
        }
        memset(&t->evb[c->evb - 1], 0, sizeof(ev_blk));
    }
    if (++t->evb[c->evb - 1].n[dir][ev] == 0) {
        flowtab__wide(t, id);
        t->wide[id - 1].ev[dir][ev] += 1ull << 32;
    }
}

/* Add sample v to a statistic kept as flowrec_stat keeps it: minimum
 * (INT64_MAX before the first sample), maximum (0 before), sum, count. */
static void flowtab__stat(flowtab_t *t, uint32_t id, int64_t *mn, int64_t *mx, int64_t *sum,
                          uint32_t *count, uint64_t *wcount, int64_t v)
{
    if (v < *mn) *mn = v;
    if (v > *mx) *mx = v;
    *sum += v;
    flowtab__add32(t, id, count, wcount, 1);
}

/* ---- outstanding segments ---------------------------------------------- */

static uint32_t flowtab__ua_alloc(flowtab_t *t)
{
    uint32_t b;
    if (t->ua_free) {
        b = t->ua_free;
        t->ua_free = t->ua[b - 1].end[0];
    } else if (t->ua_unused < t->ua_n) {
        b = ++t->ua_unused;
    } else {
        return 0;
    }
    return b;
}

static void flowtab__ua_release(flowtab_t *t, fdir *d)
{
    if (!d->ua) return;
    t->ua[d->ua - 1].end[0] = t->ua_free;
    t->ua_free = d->ua;
    d->ua = 0;
}

/* Outstanding segment i (0 the oldest) of direction d. */
static inline uint32_t *flowtab__ua_end(flowtab_t *t, fdir *d, unsigned i)
{
    return i ? &t->ua[d->ua - 1].end[i - 1] : &d->ua0_end;
}

static inline int64_t *flowtab__ua_ts(flowtab_t *t, fdir *d, unsigned i)
{
    return i ? &t->ua[d->ua - 1].ts[i - 1] : &d->ua0_ts;
}

/* Remember a segment ending at end, seen at ts (the oldest UA_MAX). */
static void flowtab__ua_add(flowtab_t *t, fdir *d, uint32_t end, int64_t ts)
{
    if (d->nua >= UA_MAX) return;
    if (d->nua && !d->ua && !(d->ua = flowtab__ua_alloc(t))) return;
    *flowtab__ua_end(t, d, d->nua) = end;
    *flowtab__ua_ts(t, d, d->nua) = ts;
    d->nua++;
}

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

/* Zeek's conn_state; any0/any1: packets seen from the client/the server. */
static void flowtab__conn_state(const flow *f, uint8_t hs, int any0, int any1, char out[8])
{
    const char *s;
    uint8_t b = f->bits;
    int fin0 = !!(b & F_FIN0), fin1 = !!(b & F_FIN1), rst0 = !!(b & F_RST0), rst1 = !!(b & F_RST1);
    if (f->key.proto != 6) {
        s = any0 && any1 ? "SF" : "S0";
    } else if (!(hs & FLOWREC_HS_SYN) && !(hs & FLOWREC_HS_SYNACK)) {
        s = "OTH";
    } else if (!(hs & FLOWREC_HS_SYNACK)) {
        s = rst1 ? "REJ" : fin0 ? "SH" : rst0 ? "RSTOS0" : "S0";
    } else {
        s = rst0 ? "RSTO" : rst1 ? "RSTR" : fin0 && fin1 ? "SF" : fin0 ? "S2" : fin1 ? "S3" : "S1";
    }
    strcpy(out, s);
}

static void flowtab__dir_out(const flowtab_t *t, uint32_t id, int dir, flowrec_dir *o)
{
    const flow *f = &t->flows[id - 1];
    const fdir *a = &t->cold[id - 1].dir[dir];
    const flow_wide *w = &t->wide[id - 1];
    int wide = (f->bits & F_WIDE) != 0;
    o->packets = a->packets + (wide ? w->packets[dir] : 0);
    o->ip_bytes = a->ip_bytes + (wide ? w->ip_bytes[dir] : 0);
    o->payload_bytes = a->payload_bytes + (wide ? w->payload_bytes[dir] : 0);
    const fcold *c = &t->cold[id - 1];
    uint64_t ev[EV_N];
    for (int i = 0; i < EV_N; i++) {
        ev[i] = i >= EV_RARE ? a->ev[i - EV_RARE] : c->evb ? t->evb[c->evb - 1].n[dir][i] : 0;
        if (wide) ev[i] += w->ev[dir][i];
    }
    o->retransmissions = (uint32_t)ev[EV_RETRANS];
    o->fast_retransmissions = (uint32_t)ev[EV_FAST];
    o->spurious_retransmissions = (uint32_t)ev[EV_SPURIOUS];
    o->out_of_order = (uint32_t)ev[EV_OOO];
    o->dup_acks = (uint32_t)ev[EV_DUPACK];
    o->lost_segments = (uint32_t)ev[EV_LOST];
    o->zero_windows = (uint32_t)ev[EV_ZW];
    o->window_full = (uint32_t)ev[EV_WF];
    o->keep_alives = (uint32_t)ev[EV_KA];
    o->rsts = (uint32_t)ev[EV_RST];
    o->fins = (uint32_t)ev[EV_FIN];
    o->rtt.count = a->rtt_count + (wide ? w->rtt_count[dir] : 0);
    o->rtt.sum = a->rtt_sum;
    o->rtt.min = a->rtt_min;
    o->rtt.max = a->rtt_max;
}

static void flowtab__emit(flowtab_t *t, uint32_t id, int final)
{
    const flow *f = &t->flows[id - 1];
    const fcold *c = &t->cold[id - 1];
    const flow_wide *w = &t->wide[id - 1];
    int client_is_a = (f->bits & F_CLIENT_IS_A) != 0;
    flowrec r;
    memset(&r, 0, sizeof r);
    r.flow_id = c->flow_id;
    r.vni = f->key.vni;
    memcpy(r.observer, f->key.observer, 16);
    r.proto = f->key.proto;
    memcpy(r.client_ip, client_is_a ? f->key.a : f->key.b, 16);
    memcpy(r.server_ip, client_is_a ? f->key.b : f->key.a, 16);
    r.client_port = client_is_a ? f->key.aport : f->key.bport;
    r.server_port = client_is_a ? f->key.bport : f->key.aport;
    r.first_ns = c->first_ns;
    r.last_ns = f->last_ns;
    flowtab__dir_out(t, id, 0, &r.c2s);
    flowtab__dir_out(t, id, 1, &r.s2c);
    r.hs_seen = c->hs_seen;
    r.syn_ns = c->syn_ns;
    r.synack_ns = c->synack_ns;
    r.ack_ns = c->ack_ns;
    if (c->hs_seen & FLOWREC_HS_IRTT) r.initial_rtt_ns = c->syn_irtt;
    r.app_response.count = c->app_count + ((f->bits & F_WIDE) ? w->app_count : 0);
    r.app_response.sum = c->app_sum;
    r.app_response.min = c->app_min;
    r.app_response.max = c->app_max;
    flowtab__conn_state(f, c->hs_seen, r.c2s.packets != 0, r.s2c.packets != 0, r.conn_state);
    static const char letters[] = "shadfrtw";
    for (uint8_t i = 0; i < c->hist_len; i++) {
        unsigned code = (unsigned)(c->history >> (4 * i)) & 15;
        char l = letters[code & 7];
        r.history[i] = code < 8 ? (char)(l - 'a' + 'A') : l;
    }
    r.history[c->hist_len] = 0;
    r.final = final;
    t->st.records++;
    if (!final) t->st.interim++;
    t->emit(t->ctx, &r);
}

static void flowtab__release(flowtab_t *t, uint32_t id)
{
    flow *f = &t->flows[id - 1];
    fcold *c = &t->cold[id - 1];
    fkey k = f->key;
    memset(k.pad, 0, sizeof k.pad);
    uint32_t b = (uint32_t)(flowtab__hash(&k) & (t->nbuckets - 1));
    uint32_t *p = &t->buckets[b];
    while (*p && *p != id) p = &t->flows[*p - 1].chain;
    if (*p) *p = f->chain;
    flowtab__unlink(t, id);
    flowtab__ua_release(t, &c->dir[0]);
    flowtab__ua_release(t, &c->dir[1]);
    if (c->evb) {
        t->evb[c->evb - 1].n[0][0] = t->evb_free;
        t->evb_free = c->evb;
    }
    if (f->bits & F_WIDE) memset(&t->wide[id - 1], 0, sizeof t->wide[id - 1]);
    memset(f, 0, sizeof *f);
    f->next = t->free_head;
    t->free_head = id;
    t->st.active--;
}

static void flowtab__finish(flowtab_t *t, uint32_t id)
{
    flowtab__emit(t, id, 1);
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
    fcold *c = &t->cold[id - 1];
    memset(f, 0, sizeof *f);
    memset(c, 0, sizeof *c);
    f->key = *k;
    f->chain = t->buckets[bucket];
    t->buckets[bucket] = id;
    c->dir[0].win_scale = c->dir[1].win_scale = -1;
    c->dir[0].rtt_min = c->dir[1].rtt_min = c->app_min = INT64_MAX;
    c->flow_id = t->next_id++;
    t->st.active++;
    t->st.created++;
    return id;
}

static void flowtab__history(fcold *c, int dir, char ch)
{
    int bit = -1;
    static const char letters[] = "shadfrtw";
    for (int i = 0; letters[i]; i++)
        if (letters[i] == ch) bit = i;
    /* Each letter at most once per direction: 16 codes fit the 64 bits. */
    unsigned code = (unsigned)(dir * 8 + bit);
    if (bit < 0 || (c->hist_seen & (1u << code))) return;
    c->hist_seen |= (uint16_t)(1u << code);
    c->history |= (uint64_t)code << (4 * c->hist_len++);
}

/* ---- TCP analysis (Wireshark's tcp_analyze_sequence_number) -------------- */

static void flowtab__tcp(flowtab_t *t, uint32_t id, int dir, int64_t ts, const pkt_ana *a)
{
    fcold *c = &t->cold[id - 1];
    fdir *fwd = &c->dir[dir], *rev = &c->dir[1 - dir];
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
        if (seq + seglen == rev->lastack + ((uint32_t)rev->window << shift)) ta |= TA_WF;
    }
    /* KEEP ALIVE ACK */
    if (seglen == 0 && window && window == fwd->window && seq == fwd->nextseq &&
        ack == fwd->lastack && (rev->lastseg & TA_KA) &&
        !(flags & (TCP_SYN | TCP_FIN | TCP_RST))) {
        ta |= TA_KA_ACK;
        goto finished_fwd;
    }
    /* ZERO WINDOW PROBE ACK */
    if (seglen == 0 && window == 0 && window == fwd->window && seq == fwd->nextseq &&
        ack == fwd->lastack && (rev->lastseg & TA_ZWP) &&
        !(flags & (TCP_SYN | TCP_FIN | TCP_RST))) {
        ta |= TA_ZWP_ACK;
        goto finished_fwd;
    }
    /* DUPLICATE ACK */
    if (seglen == 0 && window && window == fwd->window && seq == fwd->nextseq &&
        ack == fwd->lastack && !(flags & (TCP_SYN | TCP_FIN | TCP_RST))) {
        fwd->dupacknum = fwd->dupacknum == -1 ? 1
                       : fwd->dupacknum == INT16_MAX ? INT16_MAX : fwd->dupacknum + 1;
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
            int64_t irtt = (c->hs_seen & FLOWREC_HS_IRTT) ? c->syn_irtt : 0;
            int64_t thres = irtt ? irtt : 3000000LL;
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
        flowtab__ua_add(t, fwd, nextseq, ts);
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
    fwd->window = (uint16_t)window;
    fwd->window_is_syn = (flags & TCP_SYN) != 0;
    fwd->lastack = ack;
    fwd->lastacktime = ts;
    fwd->lastseg = (uint8_t)(ta & (TA_KA | TA_ZWP));

    /* ACK RTT: this ACK exactly covers an unacknowledged segment of the other
     * direction. As in Wireshark, the oldest exact match gives the sample;
     * what the ACK covers is dropped. */
    if (rev->nua) {
        int64_t rtt = -1;
        uint8_t keep = 0;
        for (uint8_t i = 0; i < rev->nua; i++) {
            uint32_t end = *flowtab__ua_end(t, rev, i);
            int64_t sent = *flowtab__ua_ts(t, rev, i);
            if (ack == end) {
                if (rtt < 0) rtt = ts - sent;
                continue;
            }
            if (SEQ_GT(end, ack)) {
                *flowtab__ua_end(t, rev, keep) = end;
                *flowtab__ua_ts(t, rev, keep) = sent;
                keep++;
            }
        }
        rev->nua = keep;
        if (keep <= 1) flowtab__ua_release(t, rev);
        if (rtt >= 0) {
            fdir *r = &c->dir[1 - dir];
            flowtab__stat(t, id, &r->rtt_min, &r->rtt_max, &r->rtt_sum, &r->rtt_count,
                          &t->wide[id - 1].rtt_count[1 - dir], rtt);
        }
    }

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

    if (ta & (TA_RETRANS | TA_FAST | TA_SPURIOUS)) flowtab__ev(t, id, c, dir, EV_RETRANS);
    if (ta & TA_FAST) flowtab__ev(t, id, c, dir, EV_FAST);
    if (ta & TA_SPURIOUS) flowtab__ev(t, id, c, dir, EV_SPURIOUS);
    if (ta & TA_OOO) flowtab__ev(t, id, c, dir, EV_OOO);
    if (ta & TA_DUPACK) flowtab__ev(t, id, c, dir, EV_DUPACK);
    if (ta & TA_LOST) flowtab__ev(t, id, c, dir, EV_LOST);
    if (ta & TA_ZW) flowtab__ev(t, id, c, dir, EV_ZW);
    if (ta & TA_WF) flowtab__ev(t, id, c, dir, EV_WF);
    if (ta & TA_KA) flowtab__ev(t, id, c, dir, EV_KA);
    if (ta & (TA_RETRANS | TA_FAST | TA_SPURIOUS)) flowtab__history(c, dir, 't');
    if (ta & TA_ZW) flowtab__history(c, dir, 'w');
}

static void flowtab__tcp_session(flowtab_t *t, uint32_t id, int dir, int64_t ts, const pkt_ana *a)
{
    flow *f = &t->flows[id - 1];
    fcold *c = &t->cold[id - 1];
    uint8_t fl = a->tcp_flags;
    int client = dir == 0;
    /* The handshake is the last SYN and SYN/ACK before the client's ACK, so
     * retransmitted SYNs cannot make the setup times negative. */
    if ((fl & TCP_SYN) && !(fl & TCP_ACK)) {
        if (client && !(c->hs_seen & FLOWREC_HS_ACK)) {
            c->hs_seen |= FLOWREC_HS_SYN;
            c->syn_ns = ts;
        }
        if (!(c->hs_seen & FLOWREC_HS_IRTT)) c->syn_irtt = ts; /* the most recent SYN */
        flowtab__history(c, dir, 's');
    } else if ((fl & TCP_SYN) && (fl & TCP_ACK)) {
        if (!client && !(c->hs_seen & FLOWREC_HS_ACK)) {
            c->hs_seen |= FLOWREC_HS_SYNACK;
            c->synack_ns = ts;
        }
        flowtab__history(c, dir, 'h');
    }
    /* Initial RTT as Wireshark: the first ACK without SYN after a SYN, from
     * the most recent SYN (a refusing RST/ACK counts too). */
    if ((fl & (TCP_SYN | TCP_ACK)) == TCP_ACK && c->syn_irtt && !(c->hs_seen & FLOWREC_HS_IRTT)) {
        c->syn_irtt = ts - c->syn_irtt;
        c->hs_seen |= FLOWREC_HS_IRTT;
    }
    if (client && (fl & (TCP_SYN | TCP_ACK)) == TCP_ACK && (c->hs_seen & FLOWREC_HS_SYNACK) &&
        !(c->hs_seen & FLOWREC_HS_ACK)) {
        c->hs_seen |= FLOWREC_HS_ACK;
        c->ack_ns = ts;
    }
    flowtab__tcp(t, id, dir, ts, a);
    if (fl & TCP_FIN) {
        flowtab__ev(t, id, c, dir, EV_FIN);
        f->bits |= dir ? F_FIN1 : F_FIN0;
        flowtab__history(c, dir, 'f');
    }
    if (fl & TCP_RST) {
        flowtab__ev(t, id, c, dir, EV_RST);
        f->bits |= dir ? F_RST1 : F_RST0;
        flowtab__history(c, dir, 'r');
    }
    if (a->payload_len) flowtab__history(c, dir, 'd');
    else if ((fl & (TCP_SYN | TCP_FIN | TCP_RST | TCP_ACK)) == TCP_ACK) flowtab__history(c, dir, 'a');
}

/* Application response time: last request byte -> first response byte. */
static void flowtab__app(flowtab_t *t, uint32_t id, int dir, int64_t ts, const pkt_ana *a)
{
    flow *f = &t->flows[id - 1];
    fcold *c = &t->cold[id - 1];
    if (!a->payload_len) return;
    if (dir == 0) {
        c->req_last_ns = ts;
        f->bits |= F_REQ_PENDING;
    } else if (f->bits & F_REQ_PENDING) {
        flowtab__stat(t, id, &c->app_min, &c->app_max, &c->app_sum, &c->app_count,
                      &t->wide[id - 1].app_count, ts - c->req_last_ns);
        f->bits &= (uint8_t)~F_REQ_PENDING;
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
    /* The hot slot (key, links, times) and the part of the cold slot a
     * packet reads (analysis state, counters). */
    const char *f = (const char *)&t->flows[id - 1];
    __builtin_prefetch(f, 1);
    __builtin_prefetch(f + sizeof(flow) - 1, 1);
    const char *c = (const char *)&t->cold[id - 1];
    for (size_t off = 0; off < FCOLD_HOT; off += 64) __builtin_prefetch(c + off, 1);
    __builtin_prefetch(c + FCOLD_HOT - 1, 1);
}

uint64_t flowtab_packet(flowtab_t *t, int64_t ts, uint32_t vni, const uint8_t observer[16],
                        const pkt_ana *a, uint64_t hash)
{
    if (!a->usable) {
        t->st.unusable_packets++;
        return 0;
    }
    if (ts > t->now) flowtab_advance(t, ts);
    fkey k;
    int a_is_src = flowtab__key(&k, a, vni, observer);
    uint32_t bucket = (uint32_t)(hash & (t->nbuckets - 1));
    uint32_t id = t->buckets[bucket];
    while (id && memcmp(&t->flows[id - 1].key, &k, FKEY_LEN) != 0) id = t->flows[id - 1].chain;

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
        if (client_is_src == a_is_src) f->bits |= F_CLIENT_IS_A;
        t->cold[id - 1].first_ns = ts;
        f->queued_ns = ts;
        flowtab__push(t, id, LIST_LRU);
    }
    flow *f = &t->flows[id - 1];
    fcold *c = &t->cold[id - 1];
    flow_wide *w = &t->wide[id - 1];
    int dir = (a_is_src == !!(f->bits & F_CLIENT_IS_A)) ? 0 : 1;
    f->last_ns = ts;
    fdir *d = &c->dir[dir];
    flowtab__add32(t, id, &d->packets, &w->packets[dir], 1);
    flowtab__add32(t, id, &d->ip_bytes, &w->ip_bytes[dir], a->ip_len);
    flowtab__add32(t, id, &d->payload_bytes, &w->payload_bytes[dir], a->payload_len);
    if (a->proto == 6) flowtab__tcp_session(t, id, dir, ts, a);
    flowtab__app(t, id, dir, ts, a);
    if (f->list == LIST_LRU &&
        (((f->bits & (F_FIN0 | F_FIN1)) == (F_FIN0 | F_FIN1)) || (f->bits & (F_RST0 | F_RST1)))) {
        f->queued_ns = ts; /* the close time */
        flowtab__unlink(t, id);
        flowtab__push(t, id, LIST_CLOSING);
    }
    /* Interim records every interval after the first packet. */
    uint64_t k_int = c->interims + ((f->bits & F_WIDE) ? w->interims : 0);
    int64_t next_interim = c->first_ns + (int64_t)(k_int + 1) * t->o.interval_ns;
    if (ts >= next_interim) {
        flowtab__emit(t, id, 0);
        /* the next one: the first multiple of the interval after ts */
        uint64_t step = (uint64_t)((ts - c->first_ns) / t->o.interval_ns) - k_int;
        for (; step > UINT32_MAX; step -= UINT32_MAX)
            flowtab__add32(t, id, &c->interims, &w->interims, UINT32_MAX);
        flowtab__add32(t, id, &c->interims, &w->interims, (uint32_t)step);
    }
    return c->flow_id;
}

void flowtab_advance(flowtab_t *t, int64_t now)
{
    if (now > t->now) t->now = now;
    while (t->close_tail && t->flows[t->close_tail - 1].queued_ns + t->o.grace_ns <= t->now)
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
