/* appana.c - the stream layer of application transactions (see appana.h,
 * appstream.h, docs/APP_ANALYTICS.md).
 *
 * DESIGN: a followed flow has a slot from a preallocated pool, found by its
 * flow id in an open-addressing table (linear probing, backward-shift
 * deletion), and its parser's state at the slot's index in that parser's
 * pool. A flow gets a slot when its first payload is detected as DNS over
 * TCP (by port), TLS or HTTP (by the bytes; the first payload's direction
 * is then direction 0), or for each UDP datagram to or from a DNS port
 * (freed again once nothing is pending, so a busy resolver's many short
 * flows do not hold slots for the flow table's idle time). A flow judged
 * not to be one of them is remembered in a direct-mapped cache by id (ids
 * are given out in sequence, so the last NEG entries never collide); a
 * forgotten one is only detected again on its next payload, which in the
 * middle of a stream does not look like a first message.
 *
 * A first payload that its sender's SYN (its initial sequence number,
 * kept per flow in a direct-mapped cache like that one) shows to be
 * beyond the stream's start waits in an undecided slot for the bytes
 * before it: detection reads the stream's first bytes even when the
 * capture point saw them late.
 *
 * Each TCP direction keeps the next expected sequence number. Bytes below
 * it were taken already (first copy wins: a retransmission never completes
 * a message, as in tshark). A segment at it is handed to the parser
 * straight from the packet when nothing is buffered (the common case: no
 * copy); what the parser leaves, and segments beyond a hole, go into a
 * buffer of APPANA_BUF_BYTES from a pool, with the held ranges and, per
 * run of bytes from one packet, the packet's time (app_view_ts). When a
 * segment fills a hole, the bytes it makes contiguous are handed on at its
 * time. A hole that the buffer cannot bridge, or a parser that makes no
 * progress with a full buffer, is a gap: the parser is told, the bytes
 * before it are dropped, and the stream goes on after it.
 */
#include "appana.h"

#include "app_dns.h"
#include "app_http.h"
#include "app_tls.h"
#include "xmalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HELD_MAX 32      /* out-of-order ranges held per direction */
#define RUNS_MAX 512     /* runs of bytes of one packet per buffer */
#define NEG_MIN 65536    /* flows remembered as not followed */
#define SWEEP_NS 1000000000LL
#define SEQ_FAR (1u << 30) /* a segment this far ahead is not one of this stream's */

#define TCPF_FIN 0x01
#define TCPF_SYN 0x02
#define TCPF_RST 0x04
#define TCPF_ACK 0x10

/* The parsers, by index; a slot's ap. */
enum { AP_DNS_UDP, AP_DNS_TCP, AP_TLS, AP_HTTP, AP_N };
static const app_parser *const ap_parser[AP_N] = {
    [AP_DNS_UDP] = &app_dns_udp_parser,
    [AP_DNS_TCP] = &app_dns_tcp_parser,
    [AP_TLS] = &app_tls_parser,
    [AP_HTTP] = &app_http_parser,
};
static const uint8_t ap_kind[AP_N] = { APPREC_DNS, APPREC_DNS, APPREC_TLS, APPREC_HTTP };

/* A direction's buffer: data[0, len) in order and not consumed yet,
 * held[] the out-of-order ranges beyond (sorted, disjoint, each above
 * len), run_off[i] the first byte of the i-th run whose time is
 * run_ts[i] (sorted; a byte's time is its last run at or below it). */
typedef struct abuf {
    uint32_t len;
    uint16_t nheld, nruns;
    uint32_t next_free; /* index + 1 in the free list */
    uint32_t held_lo[HELD_MAX], held_hi[HELD_MAX];
    uint32_t run_off[RUNS_MAX];
    int64_t run_ts[RUNS_MAX];
    uint8_t data[APPANA_BUF_BYTES];
} abuf;

typedef struct adir {
    uint32_t next_seq; /* the sequence number of data offset len (or of the next byte) */
    uint32_t fin_seq;  /* where a FIN seen ends the direction */
    uint32_t buf;      /* index + 1; 0: nothing buffered */
    int64_t last_ts;   /* the packet that last extended the in-order bytes */
    uint8_t has_seq, fin_pending, fin;
} adir;

typedef struct aslot {
    uint64_t flow_id;   /* 0: free */
    uint32_t next_free; /* index + 1 */
    uint8_t ap, proto, undecided;
    uint16_t port[2];   /* [0]: the sender of direction 0 */
    uint8_t ip[2][16];
    uint8_t observer[16];
    uint32_t vni;
    adir d[2];
} aslot;

/* The initial sequence numbers of a flow's SYN and SYN/ACK, by sender (its
 * port and the last 4 bytes of its address), so that a first payload
 * segment that arrives after a later one is known not to be the stream's
 * start. Direct-mapped by flow id like the cache of flows not followed. */
typedef struct isn_ent {
    uint64_t id;
    uint32_t isn[2], who[2];
    uint8_t have[2];
} isn_ent;

struct appana {
    appana_opts o;
    appana_emit_fn emit;
    void *ctx;
    uint8_t dns_ports[8192];
    aslot *slots;
    uint32_t nslots, slot_free, slot_unused;
    uint32_t *tab; /* slot index + 1 */
    uint32_t tabmask;
    unsigned tabshift;
    uint64_t *neg;
    isn_ent *isn; /* as many as neg */
    uint32_t negmask;
    uint8_t *state[AP_N];
    size_t state_size[AP_N];
    abuf *bufs;
    uint32_t nbufs, buf_free, buf_unused;
    int64_t now, last_sweep;
    appana_stats st;
};

static const uint8_t appana__empty[1];

/* ---- ports ---------------------------------------------------------------- */

int appana_parse_ports(const char *s, uint8_t bits[8192], char *err, size_t errlen)
{
    memset(bits, 0, 8192);
    const char *p = s;
    int n = 0;
    while (*p) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < 1 || v > 65535 || (*end && *end != ',')) {
            snprintf(err, errlen, "'%s' is not a list of ports (1-65535, comma-separated)", s);
            return -1;
        }
        bits[v >> 3] |= (uint8_t)(1u << (v & 7));
        n++;
        p = *end ? end + 1 : end;
        if (*end && !*p) n = 0; /* a trailing comma */
    }
    if (!n) {
        snprintf(err, errlen, "'%s' is not a list of ports (1-65535, comma-separated)", s);
        return -1;
    }
    return 0;
}

static inline int appana__dns_port(const appana_t *a, uint16_t port)
{
    return (a->dns_ports[port >> 3] >> (port & 7)) & 1;
}

/* ---- lifecycle ------------------------------------------------------------ */

appana_t *appana_new(const appana_opts *o, appana_emit_fn emit, void *ctx, char *err,
                     size_t errlen)
{
    appana_t *a = xcalloc(1, sizeof *a);
    a->o = *o;
    a->emit = emit;
    a->ctx = ctx;
    if (appana_parse_ports(o->dns_ports ? o->dns_ports : "53,5353", a->dns_ports, err, errlen) < 0) {
        free(a);
        return NULL;
    }
    a->nslots = o->max_flows ? o->max_flows : 1;
    a->slots = xcalloc(a->nslots, sizeof *a->slots);
    unsigned bits = 1;
    while ((1u << bits) < 2 * a->nslots) bits++;
    a->tabmask = (1u << bits) - 1;
    a->tabshift = 64 - bits;
    a->tab = xcalloc((size_t)a->tabmask + 1, sizeof *a->tab);
    uint32_t neg = NEG_MIN;
    while (neg < 4 * a->nslots) neg <<= 1;
    a->negmask = neg - 1;
    a->neg = xcalloc(neg, sizeof *a->neg);
    a->isn = xcalloc(neg, sizeof *a->isn);
    for (int i = 0; i < AP_N; i++) {
        if (!ap_parser[i]) continue;
        a->state_size[i] = (ap_parser[i]->state_size + 15) & ~(size_t)15;
        if (i == AP_DNS_TCP) { /* the same state as over UDP: one pool (a slot is one or the other) */
            a->state[i] = a->state[AP_DNS_UDP];
            continue;
        }
        a->state[i] = xcalloc(a->nslots, a->state_size[i]);
    }
    a->nbufs = o->max_buffers ? o->max_buffers : a->nslots / 8;
    if (a->nbufs < 64) a->nbufs = 64;
    a->bufs = xcalloc(a->nbufs, sizeof *a->bufs);
    return a;
}

void appana_free(appana_t *a)
{
    if (!a) return;
    free(a->slots);
    free(a->tab);
    free(a->neg);
    free(a->isn);
    for (int i = 0; i < AP_N; i++)
        if (i != AP_DNS_TCP) free(a->state[i]);
    free(a->bufs);
    free(a);
}

void appana_get_stats(const appana_t *a, appana_stats *out) { *out = a->st; }

/* ---- slots, the id table, the cache of flows not followed ---------------- */

static inline uint32_t appana__hash(const appana_t *a, uint64_t id)
{
    return (uint32_t)((id * 0x9e3779b97f4a7c15ull) >> a->tabshift);
}

static aslot *appana__find(appana_t *a, uint64_t id)
{
    for (uint32_t i = appana__hash(a, id);; i = (i + 1) & a->tabmask) {
        uint32_t e = a->tab[i];
        if (!e) return NULL;
        if (a->slots[e - 1].flow_id == id) return &a->slots[e - 1];
    }
}

static void appana__tab_del(appana_t *a, uint64_t id)
{
    uint32_t i = appana__hash(a, id);
    while (a->tab[i] && a->slots[a->tab[i] - 1].flow_id != id) i = (i + 1) & a->tabmask;
    if (!a->tab[i]) return;
    /* Backward shift: move later entries of the run into the hole when
     * their home is at or before it. */
    for (uint32_t j = (i + 1) & a->tabmask; a->tab[j]; j = (j + 1) & a->tabmask) {
        uint32_t home = appana__hash(a, a->slots[a->tab[j] - 1].flow_id);
        if (((j - home) & a->tabmask) >= ((j - i) & a->tabmask)) {
            a->tab[i] = a->tab[j];
            i = j;
        }
    }
    a->tab[i] = 0;
}

static inline int appana__neg_has(const appana_t *a, uint64_t id)
{
    return a->neg[id & a->negmask] == id;
}

static inline void appana__neg_add(appana_t *a, uint64_t id) { a->neg[id & a->negmask] = id; }

static inline void appana__neg_del(appana_t *a, uint64_t id)
{
    if (a->neg[id & a->negmask] == id) a->neg[id & a->negmask] = 0;
}

static inline void *appana__state(appana_t *a, const aslot *s)
{
    return a->state[s->ap] + (size_t)(s - a->slots) * a->state_size[s->ap];
}

static aslot *appana__slot_new(appana_t *a, uint64_t id, int ap, const pkt_ana *pa, uint32_t vni,
                               const uint8_t observer[16])
{
    uint32_t idx;
    if (a->slot_free) {
        idx = a->slot_free - 1;
        a->slot_free = a->slots[idx].next_free;
    } else if (a->slot_unused < a->nslots) {
        idx = a->slot_unused++;
    } else {
        a->st.pool_full++;
        return NULL;
    }
    aslot *s = &a->slots[idx];
    memset(s, 0, sizeof *s);
    s->flow_id = id;
    s->ap = (uint8_t)ap;
    s->proto = pa->proto;
    memcpy(s->ip[0], pkt_ana_src(pa), 16);
    memcpy(s->ip[1], pkt_ana_dst(pa), 16);
    s->port[0] = pkt_ana_sport(pa);
    s->port[1] = pkt_ana_dport(pa);
    s->vni = vni;
    if (observer) memcpy(s->observer, observer, 16);
    uint32_t i = appana__hash(a, id);
    while (a->tab[i]) i = (i + 1) & a->tabmask;
    a->tab[i] = idx + 1;
    a->st.flows++;
    a->st.active++;
    return s;
}

static void appana__buf_release(appana_t *a, adir *d)
{
    if (!d->buf) return;
    a->bufs[d->buf - 1].next_free = a->buf_free;
    a->buf_free = d->buf;
    d->buf = 0;
}

static void appana__slot_release(appana_t *a, aslot *s)
{
    appana__buf_release(a, &s->d[0]);
    appana__buf_release(a, &s->d[1]);
    appana__tab_del(a, s->flow_id);
    s->flow_id = 0;
    s->next_free = a->slot_free;
    a->slot_free = (uint32_t)(s - a->slots) + 1;
    a->st.active--;
}

/* The direction of a packet in its slot: 0 when sent by direction 0's sender. */
static inline int appana__dir(const aslot *s, const pkt_ana *pa)
{
    const uint8_t *src = pkt_ana_src(pa), *dst = pkt_ana_dst(pa);
    return !(pkt_ana_sport(pa) == s->port[0] && memcmp(src, s->ip[0], 16) == 0 &&
             (pkt_ana_dport(pa) != s->port[1] || memcmp(dst, s->ip[1], 16) == 0 ||
              memcmp(src, dst, 16) != 0));
}

/* ---- records -------------------------------------------------------------- */

typedef struct emit_ctx {
    appana_t *a;
    const aslot *s;
} emit_ctx;

static void appana__emit(void *ctx, int client_dir, apprec *r)
{
    emit_ctx *e = ctx;
    const aslot *s = e->s;
    int c = client_dir ? 1 : 0;
    r->flow_id = s->flow_id;
    r->vni = s->vni;
    memcpy(r->observer, s->observer, 16);
    memcpy(r->client_ip, s->ip[c], 16);
    memcpy(r->server_ip, s->ip[!c], 16);
    r->client_port = s->port[c];
    r->server_port = s->port[!c];
    e->a->emit(e->a->ctx, r);
}

static inline app_out appana__out(appana_t *a, const aslot *s, emit_ctx *e)
{
    e->a = a;
    e->s = s;
    app_out o = { appana__emit, e, &a->st.kind[ap_kind[s->ap] - 1] };
    return o;
}

/* ---- buffers -------------------------------------------------------------- */

static abuf *appana__buf(appana_t *a, adir *d)
{
    if (d->buf) return &a->bufs[d->buf - 1];
    uint32_t idx;
    if (a->buf_free) {
        idx = a->buf_free - 1;
        a->buf_free = a->bufs[idx].next_free;
    } else if (a->buf_unused < a->nbufs) {
        idx = a->buf_unused++;
    } else {
        return NULL;
    }
    abuf *b = &a->bufs[idx];
    b->len = 0;
    b->nheld = b->nruns = 0;
    d->buf = idx + 1;
    return b;
}

static int64_t appana__ts_const(const void *ctx, size_t off) { return *(const int64_t *)ctx; }

static int64_t appana__ts_buf(const void *ctx, size_t off)
{
    const abuf *b = ctx;
    unsigned lo = 0, hi = b->nruns; /* the last run at or below off */
    while (hi - lo > 1) {
        unsigned mid = (lo + hi) / 2;
        if (b->run_off[mid] <= off) lo = mid;
        else hi = mid;
    }
    return b->nruns ? b->run_ts[lo] : 0;
}

static void appana__run_add(abuf *b, uint32_t off, int64_t ts)
{
    unsigned i = b->nruns;
    while (i && b->run_off[i - 1] > off) i--;
    memmove(&b->run_off[i + 1], &b->run_off[i], (b->nruns - i) * sizeof b->run_off[0]);
    memmove(&b->run_ts[i + 1], &b->run_ts[i], (b->nruns - i) * sizeof b->run_ts[0]);
    b->run_off[i] = off;
    b->run_ts[i] = ts;
    b->nruns++;
}

static void appana__held_add(abuf *b, uint32_t lo, uint32_t hi)
{
    unsigned i = 0;
    while (i < b->nheld && b->held_hi[i] < lo) i++;
    if (i < b->nheld && b->held_lo[i] <= hi) { /* touches range i: merge */
        if (lo < b->held_lo[i]) b->held_lo[i] = lo;
        if (hi > b->held_hi[i]) b->held_hi[i] = hi;
        while (i + 1 < b->nheld && b->held_lo[i + 1] <= b->held_hi[i]) {
            if (b->held_hi[i + 1] > b->held_hi[i]) b->held_hi[i] = b->held_hi[i + 1];
            memmove(&b->held_lo[i + 1], &b->held_lo[i + 2], (b->nheld - i - 2) * sizeof b->held_lo[0]);
            memmove(&b->held_hi[i + 1], &b->held_hi[i + 2], (b->nheld - i - 2) * sizeof b->held_hi[0]);
            b->nheld--;
        }
        return;
    }
    memmove(&b->held_lo[i + 1], &b->held_lo[i], (b->nheld - i) * sizeof b->held_lo[0]);
    memmove(&b->held_hi[i + 1], &b->held_hi[i], (b->nheld - i) * sizeof b->held_hi[0]);
    b->held_lo[i] = lo;
    b->held_hi[i] = hi;
    b->nheld++;
}

/* Writes p[0, m) at offset o (>= len) where no earlier copy is held.
 * Returns 0, or -1 (nothing written) when the bookkeeping is full. */
static int appana__fill(abuf *b, uint32_t o, const uint8_t *p, uint32_t m, int64_t ts)
{
    uint32_t lo[HELD_MAX + 1], hi[HELD_MAX + 1];
    unsigned n = 0;
    uint32_t x = o, end = o + m;
    for (unsigned i = 0; i < b->nheld && x < end; i++) {
        if (b->held_hi[i] <= x) continue;
        if (b->held_lo[i] >= end) break;
        if (b->held_lo[i] > x) lo[n] = x, hi[n++] = b->held_lo[i];
        x = b->held_hi[i];
    }
    if (x < end) lo[n] = x, hi[n++] = end;
    if (b->nruns + n > RUNS_MAX || b->nheld + n > HELD_MAX) return -1;
    for (unsigned i = 0; i < n; i++) {
        memcpy(b->data + lo[i], p + (lo[i] - o), hi[i] - lo[i]);
        appana__run_add(b, lo[i], ts);
        appana__held_add(b, lo[i], hi[i]);
    }
    return 0;
}

/* Held ranges that now start at len become in-order bytes. */
static void appana__absorb(abuf *b)
{
    while (b->nheld && b->held_lo[0] == b->len) {
        b->len = b->held_hi[0];
        memmove(&b->held_lo[0], &b->held_lo[1], (b->nheld - 1) * sizeof b->held_lo[0]);
        memmove(&b->held_hi[0], &b->held_hi[1], (b->nheld - 1) * sizeof b->held_hi[0]);
        b->nheld--;
    }
}

/* Drops the first k bytes (consumed, or given up), moving the rest down. */
static void appana__consume(abuf *b, uint32_t k)
{
    if (!k) return;
    uint32_t end = b->nheld ? b->held_hi[b->nheld - 1] : b->len;
    memmove(b->data, b->data + k, end - k);
    b->len = b->len > k ? b->len - k : 0;
    for (unsigned i = 0; i < b->nheld; i++) b->held_lo[i] -= k, b->held_hi[i] -= k;
    unsigned first = 0; /* the run that holds byte k */
    while (first + 1 < b->nruns && b->run_off[first + 1] <= k) first++;
    unsigned n = b->nruns - first;
    memmove(b->run_off, b->run_off + first, n * sizeof b->run_off[0]);
    memmove(b->run_ts, b->run_ts + first, n * sizeof b->run_ts[0]);
    b->nruns = (uint16_t)n;
    for (unsigned i = 0; i < n; i++) b->run_off[i] = b->run_off[i] > k ? b->run_off[i] - k : 0;
}

/* ---- handing bytes to the parsers ------------------------------------- */

/* What detection says of direction 0's first bytes: a parser, or -1 (none
 * of them), or -2 (too few bytes yet). DNS over TCP goes by port. */
static int appana__detect(const appana_t *a, uint16_t port0, uint16_t port1, const uint8_t *p,
                          size_t len)
{
    int more = 0;
    if (appana__dns_port(a, port0) || appana__dns_port(a, port1)) {
        int r = app_dns_tcp_parser.detect(p, len);
        if (r == APP_DETECT_YES) return AP_DNS_TCP;
        if (r == APP_DETECT_MORE) more = 1;
    }
    for (int ap = AP_TLS; ap < AP_N; ap++) {
        if (!ap_parser[ap]) continue;
        int r = ap_parser[ap]->detect(p, len);
        if (r == APP_DETECT_YES) return ap;
        if (r == APP_DETECT_MORE) more = 1;
    }
    return more ? -2 : -1;
}

/* The flow is not followed (any more): its state goes, its id is
 * remembered so that its later packets are not looked at. */
static void appana__drop(appana_t *a, aslot *s)
{
    appana__neg_add(a, s->flow_id);
    appana__slot_release(a, s);
}

static void appana__gap(appana_t *a, aslot *s, int dir)
{
    if (s->undecided) return;
    a->st.kind[ap_kind[s->ap] - 1].gaps++;
    ap_parser[s->ap]->gap(appana__state(a, s), dir);
}

static int appana__deliver(appana_t *a, aslot *s, int dir, int64_t done_ns);

/* A parser was chosen for a slot that waited: hand it both directions. */
static int appana__decided(appana_t *a, aslot *s, int ap, int64_t done_ns)
{
    s->ap = (uint8_t)ap;
    s->undecided = 0;
    ap_parser[ap]->init(appana__state(a, s));
    if (appana__deliver(a, s, 0, done_ns)) return 1;
    adir *o = &s->d[1];
    if ((o->buf && a->bufs[o->buf - 1].len) || o->fin) return appana__deliver(a, s, 1, o->last_ts);
    return 0;
}

/* Calls the parser on direction dir's unconsumed in-order bytes, at
 * done_ns, and drops what it consumed. Returns 1 when the slot is gone. */
static int appana__deliver(appana_t *a, aslot *s, int dir, int64_t done_ns)
{
    adir *d = &s->d[dir];
    abuf *b = d->buf ? &a->bufs[d->buf - 1] : NULL;
    uint32_t len = b ? b->len : 0;
    if (s->undecided) {
        if (dir != 0) return 0; /* the other direction waits for the decision */
        int ap = appana__detect(a, s->port[0], s->port[1], b ? b->data : appana__empty, len);
        if (ap == -2 && len < APPANA_BUF_BYTES && !d->fin) return 0;
        if (ap < 0) {
            appana__drop(a, s);
            return 1;
        }
        return appana__decided(a, s, ap, done_ns);
    }
    if (!len && !d->fin) return 0;
    app_view v = { b ? b->data : appana__empty, len, done_ns, dir, d->fin, appana__ts_buf, b };
    emit_ctx e;
    app_out out = appana__out(a, s, &e);
    size_t k = ap_parser[s->ap]->parse(appana__state(a, s), &v, &out);
    if (k == APP_PARSE_DONE) {
        ap_parser[s->ap]->end(appana__state(a, s), &out);
        appana__drop(a, s);
        return 1;
    }
    if (!b) return 0;
    appana__consume(b, k < len ? (uint32_t)k : len);
    if (b->len == APPANA_BUF_BYTES) { /* stuck at the bound: a gap */
        appana__gap(a, s, dir);
        appana__consume(b, b->len);
    }
    if (!b->len && !b->nheld) appana__buf_release(a, d);
    return 0;
}

/* In-order bytes with nothing buffered: straight from the packet. */
static int appana__fast(appana_t *a, aslot *s, int dir, const uint8_t *p, uint32_t n, int64_t ts)
{
    adir *d = &s->d[dir];
    int64_t t = ts;
    app_view v = { p, n, ts, dir, 0, appana__ts_const, &t };
    emit_ctx e;
    app_out out = appana__out(a, s, &e);
    size_t k = ap_parser[s->ap]->parse(appana__state(a, s), &v, &out);
    if (k == APP_PARSE_DONE) {
        ap_parser[s->ap]->end(appana__state(a, s), &out);
        appana__drop(a, s);
        return 1;
    }
    d->next_seq += n;
    d->last_ts = ts;
    if (k >= n) return 0;
    uint32_t left = n - (uint32_t)k;
    abuf *b = left < APPANA_BUF_BYTES ? appana__buf(a, d) : NULL;
    if (!b) {
        if (left < APPANA_BUF_BYTES) a->st.buffer_full++;
        appana__gap(a, s, dir);
        return 0;
    }
    memcpy(b->data, p + k, left);
    b->len = left;
    b->run_off[0] = 0;
    b->run_ts[0] = ts;
    b->nruns = 1;
    return 0;
}

/* A hole the buffer cannot bridge: the parser gets a gap, the bytes
 * before the hole go, and the stream resumes at the first held range (or
 * at seq, the segment that does not fit). Returns 1 when the slot is gone. */
static int appana__skip_hole(appana_t *a, aslot *s, int dir, uint32_t seq, int64_t ts)
{
    adir *d = &s->d[dir];
    abuf *b = &a->bufs[d->buf - 1];
    if (s->undecided) {
        appana__drop(a, s);
        return 1;
    }
    appana__gap(a, s, dir);
    if (!b->nheld) {
        appana__consume(b, b->len);
        d->next_seq = seq;
        return 0;
    }
    uint32_t lo = b->held_lo[0];
    d->next_seq += lo - b->len;
    b->len = lo; /* the hole counts as consumed with the bytes before it */
    appana__consume(b, lo);
    appana__absorb(b);
    d->next_seq += b->len;
    d->last_ts = ts;
    return appana__deliver(a, s, dir, ts);
}

/* A segment's payload (its first byte at seq) into direction dir.
 * Returns 1 when the slot is gone. */
static int appana__put(appana_t *a, aslot *s, int dir, uint32_t seq, const uint8_t *p, uint32_t n,
                       int64_t ts)
{
    adir *d = &s->d[dir];
    while (n) {
        if (d->fin) return 0;
        int32_t rel = (int32_t)(seq - d->next_seq);
        if (rel < 0) { /* taken already: the first copy counts */
            if ((uint32_t)-(int64_t)rel >= n) return 0;
            p += (uint32_t)-(int64_t)rel;
            n -= (uint32_t)-(int64_t)rel;
            seq = d->next_seq;
            rel = 0;
        }
        if ((uint32_t)rel >= SEQ_FAR) { /* not this stream's */
            if (!s->undecided) a->st.kind[ap_kind[s->ap] - 1].malformed++;
            return 0;
        }
        if (!d->buf && rel == 0 && !s->undecided) return appana__fast(a, s, dir, p, n, ts);
        abuf *b = appana__buf(a, d);
        if (!b) {
            a->st.buffer_full++;
            if (rel == 0) { /* lost: the parser skips it */
                appana__gap(a, s, dir);
                d->next_seq += n;
            }
            return 0;
        }
        if ((uint32_t)rel >= APPANA_BUF_BYTES - b->len) {
            if (appana__skip_hole(a, s, dir, seq, ts)) return 1;
            continue;
        }
        uint32_t o = b->len + (uint32_t)rel;
        uint32_t m = n < APPANA_BUF_BYTES - o ? n : APPANA_BUF_BYTES - o;
        if (appana__fill(b, o, p, m, ts) < 0) {
            a->st.buffer_full++;
            if (!b->len && !b->nheld) appana__buf_release(a, d);
            return 0;
        }
        uint32_t before = b->len;
        appana__absorb(b);
        d->next_seq += b->len - before;
        p += m;
        n -= m;
        seq += m;
        if (b->len > before) {
            d->last_ts = ts;
            if (appana__deliver(a, s, dir, ts)) return 1;
        }
    }
    return 0;
}

/* The direction ended at its FIN (once every byte before it is in) or a
 * RST: the parser sees it (a body that runs to the close ends). */
static int appana__fin(appana_t *a, aslot *s, int dir, int64_t ts)
{
    adir *d = &s->d[dir];
    if (d->fin) return 0;
    d->fin = 1;
    return appana__deliver(a, s, dir, ts);
}

/* ---- packets -------------------------------------------------------------- */

/* Out of line: the clock moves on nearly every packet and sweeps once a
 * second of packet time, so the check stays small where it is inlined. */
__attribute__((noinline)) static void appana__sweep(appana_t *a)
{
    a->last_sweep = a->now;
    int64_t before = a->now - a->o.dns_timeout_ns;
    for (uint32_t i = 0; i < a->slot_unused; i++) {
        aslot *s = &a->slots[i];
        if (!s->flow_id || s->undecided || !ap_parser[s->ap]->expire) continue;
        emit_ctx e;
        app_out out = appana__out(a, s, &e);
        int left = ap_parser[s->ap]->expire(appana__state(a, s), before, &out);
        if (!left && s->proto == 17) appana__slot_release(a, s);
    }
}

static inline int appana__sweep_due(const appana_t *a) { return a->now - a->last_sweep >= SWEEP_NS; }

void appana_advance(appana_t *a, int64_t now_ns)
{
    if (now_ns > a->now) a->now = now_ns;
    if (appana__sweep_due(a)) appana__sweep(a);
}

/* A UDP datagram; out of line as appana__tcp is. */
__attribute__((noinline)) static void appana__udp(appana_t *a, uint64_t id, int64_t ts, uint32_t vni,
                        const uint8_t observer[16], const pkt_ana *pa, const uint8_t *payload,
                        uint32_t caplen)
{
    if (!appana__dns_port(a, pkt_ana_sport(pa)) && !appana__dns_port(a, pkt_ana_dport(pa))) return;
    if (!caplen) return;
    aslot *s = appana__find(a, id);
    if (!s && !(s = appana__slot_new(a, id, AP_DNS_UDP, pa, vni, observer))) return;
    /* Our flow table gives TCP and UDP different ids (the protocol is in
     * the key); an id that is both came from elsewhere. Its UDP datagrams
     * must not reach a TCP slot: an undecided one has AP_DNS_UDP only as a
     * placeholder, and its parser state was never initialized (the pool
     * holds whatever an earlier flow left there: a pending query answered
     * by this datagram made a record with that flow's times). */
    if (s->proto != 17) return;
    void *state = appana__state(a, s);
    if (!s->d[0].has_seq) { /* new: a fresh state */
        ap_parser[AP_DNS_UDP]->init(state);
        s->d[0].has_seq = 1;
    }
    int64_t t = ts;
    app_view v = { payload, caplen, ts, appana__dir(s, pa), 0, appana__ts_const, &t };
    emit_ctx e;
    app_out out = appana__out(a, s, &e);
    ap_parser[AP_DNS_UDP]->parse(state, &v, &out);
    if (!ap_parser[AP_DNS_UDP]->expire(state, INT64_MIN, &out)) appana__slot_release(a, s);
}

static inline uint32_t appana__who(const pkt_ana *pa)
{
    uint32_t v;
    memcpy(&v, pkt_ana_src(pa) + 12, 4);
    return v ^ ((uint32_t)pkt_ana_sport(pa) << 16);
}

/* A SYN (0) or SYN/ACK (1) of flow id: its sender's first sequence number. */
static void appana__isn_note(appana_t *a, uint64_t id, const pkt_ana *pa)
{
    isn_ent *e = &a->isn[id & a->negmask];
    if (e->id != id) memset(e, 0, sizeof *e);
    e->id = id;
    int i = (pa->tcp_flags & TCPF_ACK) ? 1 : 0;
    e->isn[i] = pa->seq;
    e->who[i] = appana__who(pa);
    e->have[i] = 1;
}

/* Where the sender of pa started its stream (after its SYN), if known and
 * not before pa's bytes: 1 with *start set, else 0. */
static int appana__isn_start(const appana_t *a, uint64_t id, const pkt_ana *pa, uint32_t *start)
{
    const isn_ent *e = &a->isn[id & a->negmask];
    if (e->id != id) return 0;
    uint32_t who = appana__who(pa);
    if (e->have[0] && e->have[1] && e->who[0] == e->who[1]) return 0; /* cannot tell */
    for (int i = 0; i < 2; i++) {
        uint32_t s0 = e->isn[i] + 1;
        if (e->have[i] && e->who[i] == who && (int32_t)(pa->seq - s0) > 0 &&
            pa->seq - s0 < APPANA_BUF_BYTES) {
            *start = s0;
            return 1;
        }
    }
    return 0;
}

/* A TCP segment with bytes or an end, of a flow that may be followed:
 * the stream work. Out of line, so that the packets turned away before
 * (see appana__tcp) do not pay for this function's registers and stack. */
__attribute__((noinline)) static void appana__segment(appana_t *a, uint64_t id, int64_t ts,
                                                      uint32_t vni, const uint8_t observer[16],
                                                      const pkt_ana *pa, const uint8_t *payload,
                                                      uint32_t caplen)
{
    aslot *s = appana__find(a, id);
    if (s && s->proto != 6) return; /* a UDP flow's id (see appana__udp) */
    uint32_t seq = pa->seq + ((pa->tcp_flags & TCPF_SYN) ? 1 : 0);
    if (!s) {
        if (pa->tcp_flags & TCPF_SYN) appana__isn_note(a, id, pa);
        if (!pa->payload_len) return;
        /* Detection reads the first payload, unless its sender's SYN says
         * earlier bytes are still to come: then it waits for them. */
        uint32_t start = seq;
        int ap = -2;
        if (caplen < pa->payload_len)
            ap = -1; /* a sliced first segment: the stream cannot be followed */
        else if (!appana__isn_start(a, id, pa, &start))
            ap = appana__detect(a, pkt_ana_sport(pa), pkt_ana_dport(pa), payload, caplen);
        if (ap == -1) {
            appana__neg_add(a, id);
            return;
        }
        s = appana__slot_new(a, id, ap < 0 ? AP_DNS_UDP : ap, pa, vni, observer);
        if (!s) {
            appana__neg_add(a, id); /* a full pool skips the flow (counted) */
            return;
        }
        if (ap < 0) s->undecided = 1;
        else ap_parser[ap]->init(appana__state(a, s));
        s->d[0].has_seq = 1;
        s->d[0].next_seq = start;
        if (pa->tcp_flags & TCPF_ACK) { /* the other way's next byte, as acknowledged */
            s->d[1].has_seq = 1;
            s->d[1].next_seq = pa->ack;
        }
    }
    int dir = appana__dir(s, pa);
    adir *d = &s->d[dir];
    if (!d->has_seq) {
        d->has_seq = 1;
        d->next_seq = seq;
    }
    if (caplen) {
        if (caplen < pa->payload_len) { /* sliced: its bytes are a hole */
            a->st.buffer_full++;
        } else if (appana__put(a, s, dir, seq, payload, caplen, ts)) {
            return;
        }
    }
    if (pa->tcp_flags & TCPF_FIN) {
        d->fin_pending = 1;
        d->fin_seq = seq + pa->payload_len;
    }
    if (pa->tcp_flags & TCPF_RST) {
        if (appana__fin(a, s, dir, ts) || appana__fin(a, s, !dir, ts)) return;
        return;
    }
    if (d->fin_pending && (int32_t)(d->next_seq - d->fin_seq) >= 0) appana__fin(a, s, dir, ts);
}

/* A TCP segment of a flow that may be followed (see appana__dispatch). A
 * SYN without bytes only notes its sequence number: like the others, it
 * leaves through tail calls without a frame. */
__attribute__((noinline)) static void appana__tcp(appana_t *a, uint64_t id, int64_t ts,
                                                  uint32_t vni, const uint8_t observer[16],
                                                  const pkt_ana *pa, const uint8_t *payload,
                                                  uint32_t caplen)
{
    if ((pa->tcp_flags & TCPF_SYN) && !pa->payload_len) {
        appana__isn_note(a, id, pa);
        return;
    }
    appana__segment(a, id, ts, vni, observer, pa, payload, caplen);
}

/* What a packet asks of the layer once the clock is set: a TCP segment
 * that may be a followed flow's, or a datagram. */
static inline void appana__dispatch(appana_t *a, uint64_t id, int64_t ts, uint32_t vni,
                                    const uint8_t observer[16], const pkt_ana *pa,
                                    const uint8_t *payload, uint32_t caplen)
{
    if (caplen > pa->payload_len) caplen = pa->payload_len;
    if (pa->proto == 6) {
        /* Most packets: an acknowledgement with no byte and no end for a parser. */
        if (!pa->payload_len && !(pa->tcp_flags & (TCPF_FIN | TCPF_RST | TCPF_SYN))) return;
        /* A flow judged not to be followed has no slot: one read tells. */
        if (appana__neg_has(a, id)) return;
        appana__tcp(a, id, ts, vni, observer, pa, payload, caplen);
    } else if (pa->proto == 17) {
        appana__udp(a, id, ts, vni, observer, pa, payload, caplen);
    }
}

/* A packet that takes the clock past the next sweep. Out of line, so that
 * appana_packet makes only tail calls: the packets it turns away cost it
 * a few instructions and no frame to save registers in. */
__attribute__((noinline)) static void appana__packet_sweep(appana_t *a, uint64_t id, int64_t ts,
                                                           uint32_t vni, const uint8_t observer[16],
                                                           const pkt_ana *pa, const uint8_t *payload,
                                                           uint32_t caplen)
{
    appana__sweep(a);
    appana__dispatch(a, id, ts, vni, observer, pa, payload, caplen);
}

void appana_packet(appana_t *a, uint64_t id, int64_t ts, uint32_t vni, const uint8_t observer[16],
                   const pkt_ana *pa, const uint8_t *payload, uint32_t caplen)
{
    if (!id || !pa->usable) return;
    if (ts > a->now) { /* appana_advance, with the sweep's call out of line */
        a->now = ts;
        if (appana__sweep_due(a)) {
            appana__packet_sweep(a, id, ts, vni, observer, pa, payload, caplen);
            return;
        }
    }
    appana__dispatch(a, id, ts, vni, observer, pa, payload, caplen);
}

/* ---- the end of flows ----------------------------------------------------- */

static void appana__end(appana_t *a, aslot *s)
{
    if (s->undecided) {
        appana__slot_release(a, s);
        return;
    }
    if (s->proto == 6) {
        for (int dir = 0; dir < 2; dir++)
            if (appana__fin(a, s, dir, s->d[dir].last_ts)) return;
    }
    emit_ctx e;
    app_out out = appana__out(a, s, &e);
    ap_parser[s->ap]->end(appana__state(a, s), &out);
    appana__slot_release(a, s);
}

void appana_flow_end(appana_t *a, uint64_t id)
{
    if (appana__neg_has(a, id)) { /* not followed: no slot (most flows) */
        appana__neg_del(a, id);
        return;
    }
    aslot *s = appana__find(a, id);
    if (s) appana__end(a, s);
}

void appana_flush(appana_t *a)
{
    for (uint32_t i = 0; i < a->slot_unused; i++)
        if (a->slots[i].flow_id) appana__end(a, &a->slots[i]);
}
