/* flowtab.c - flow table and TCP analysis (see flowtab.h, docs/TCP_ANALYTICS.md).
 *
 * DESIGN: a flow is two preallocated slots of the same number: a hot one
 * (the key, the hash chain, the list links, the last time: all a lookup or
 * an expiry reads) and a cold one (the analysis state and the counters,
 * read only for the flow's own packets), so a lookup walking a chain reads
 * no analysis state. A chained hash index of 32-bit slot numbers (hashed
 * from the process's secret, flowkey.h) finds flows, a free list recycles
 * them (flowtab_flush, which ends them all, empties the table at once),
 * and two doubly linked lists order them - by activity (idle expiry,
 * eviction when full) and by close time (grace expiry). The activity list is "second chance": a packet only updates the
 * flow's last time, and a flow found at the old end that was active since it
 * was queued goes back to the new end - so a packet touches no list, and no
 * other flow's memory. Each TCP direction keeps Wireshark's per-direction
 * analysis state (next expected sequence number, last ACK, window, duplicate
 * ACK count) so the same packet gets the same flags as in tshark; the order
 * of the tests in flowtab__tcp() follows Wireshark's
 * tcp_analyze_sequence_number(): which flag a segment gets depends on that
 * order.
 *
 * Compact state (~240 bytes a flow): a 48-byte hot slot, a 192-byte cold
 * one (three cache lines), a 4-byte index entry. The key keeps IPv4
 * endpoints in 4 bytes each (an IPv6 flow's addresses take a 32-byte entry
 * from a pool, numbered where IPv4 ones are kept) and the observation point
 * (VNI and outer source address) as its number in a table of them, counted
 * by the flows that use it. Times: the first time, the last time, the
 * other direction's last time and the list time are 64-bit; every other
 * time or duration is 32 bits - an age before its direction's last packet
 * (when the sequence number last advanced, when the oldest unacknowledged
 * segment was sent, when the last request byte was: they move only when
 * that direction sends, so a flow that sleeps keeps them), an offset from
 * the first time (the handshake), or a plain value (RTT extremes, the
 * initial RTT). One that does not fit (under -2^30 or over 2^31 ns: a
 * direction that only ACKs for two seconds, an RTT of two seconds) is kept
 * in a 64-bit cell from a pool and the field holds the cell's number, so
 * every result is exact whatever the gaps or the order of the timestamps.
 * The flow record is built only when emitted (an interim one only when
 * someone reads it: flowtab_opts.skip_interim), from narrow counters - 32-bit
 * packets, bytes and sample counts, 16-bit interim counts, 8-bit RST and
 * FIN counts; a counter that wraps carries into the flow's wide record, a
 * side array by slot number that only such flows touch, so records stay
 * exact whatever the flow. What most flows never need comes from pools: a
 * 32-byte extension record, taken at a flow's first application response
 * or anomaly, holds the response statistics and numbers a 72-byte block of
 * the anomaly counts (retransmissions, duplicate ACKs, lost segments, ...);
 * of each direction's unacknowledged segments (the oldest 8, for ACK RTTs)
 * the oldest is kept in the flow and the others in a 192-byte pair of
 * blocks, held only while a direction has two or more outstanding (a
 * request waiting for its answer needs none). Slots, side arrays and pools
 * are mapped at creation and never grow; untouched pages cost nothing, so
 * memory follows what is in use (in 2 MiB transparent huge pages where the
 * kernel gives them: flows are reached at random, and a 4 KiB page per flow
 * was a TLB miss per packet). flowtab_prefetch fetches the slots of the
 * packet it is given and, four calls later, when they are in the cache,
 * the blocks and cells they number.
 */
#include "flowtab.h"

#include "flowkey.h"
#include "xmalloc.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

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

/* ---- 32-bit times ----------------------------------------------------------
 * A field holds a value in [-T_SPAN, T_NONE): an offset from its base (x -
 * base), or an age before it (base - x); T_NONE (INT64_MAX: a minimum
 * before its first sample); or T_CELL + the number of a cell holding the
 * exact value. */
#define T_SPAN (1 << 30)
#define T_NONE INT32_MAX
#define T_CELL 0x80000000u /* cells: [T_CELL, T_CELL + T_SPAN) as unsigned */
#define T_FITS(o) ((o) >= -T_SPAN && (o) < T_NONE)
#define T_FIELDS 13 /* 32-bit time fields of a flow: the most cells it can hold */

static inline int t_is_cell(int32_t v) { return v < -T_SPAN; }

/* A direction's outstanding segments after the oldest (which fdir
 * holds), oldest first. */
typedef struct ua_blk {
    uint32_t end[UA_MAX]; /* sequence number after the segment; the last unused */
    int64_t ts[UA_MAX];   /* when it was seen */
} ua_blk;

/* Per-direction events: RSTs and FINs, which most flows have, counted 8
 * bits wide in the flow; the anomalies, which most flows never have, 32 bits
 * wide in a block of both directions' taken from a pool at the first one.
 * Carries go to the wide record. */
enum { EV_RETRANS, EV_FAST, EV_SPURIOUS, EV_OOO, EV_DUPACK, EV_LOST, EV_ZW, EV_WF, EV_KA,
       EV_RARE, EV_RST = EV_RARE, EV_FIN, EV_N };

typedef struct ev_blk {
    uint32_t n[2][EV_RARE]; /* a free block is chained through n[0][0] (index + 1) */
} ev_blk;

/* What a flow takes at its first need of either: the application response
 * statistics, as flowrec_stat's (the count carries in the wide record), and
 * the number of its anomaly counters' block (index + 1, 0 while none). A
 * free record is chained through evb. */
typedef struct fext {
    int64_t app_min, app_max, app_sum;
    uint32_t app_count;
    uint32_t evb;
} fext;

/* Both directions' outstanding segments after the oldest: 192 bytes, three
 * cache lines; held while either direction has two or more. A free pair is
 * chained through d[0].end[0] (index + 1). */
typedef struct ua_pair {
    ua_blk d[2];
} ua_pair;

/* One direction of a flow: its TCP analysis state and its counters (52
 * bytes, no padding; its byte-wide state is in fcold). Wireshark's
 * lastacktime, the time of the direction's last segment, is the flow's last
 * time or fcold.other_last. */
typedef struct fdir {
    uint32_t nextseq, maxseqtobeacked, lastack;
    uint32_t ua0_end; /* the sequence number after the oldest outstanding segment */
    int32_t nextseqtime, ua0_ts; /* times, as ages before the direction's last packet */
    uint32_t packets, ip_bytes, payload_bytes, rtt_count; /* carries in the wide record */
    int32_t rtt_min, rtt_max; /* values; the sum is in fcold */
    uint16_t window;     /* as sent (unscaled) */
    uint8_t ev[EV_N - EV_RARE]; /* RSTs, FINs */
} fdir;

/* fcold.dst[dir]: outstanding segments (ua0 and nua - 1 in the pair), and: */
#define D_NUA 0x0f
#define D_WSYN 0x10 /* the stored window came from a SYN: never scaled */
#define D_KA 0x20   /* the last segment was a keep-alive (TA_KA) */
#define D_ZWP 0x40  /* ... a zero window probe (TA_ZWP) */

/* The carries of a flow's narrow counters (flow bit F_WIDE). */
typedef struct flow_wide {
    uint64_t packets[2], ip_bytes[2], payload_bytes[2], rtt_count[2]; /* + 2^32 each carry */
    uint64_t ev[2][EV_N]; /* + 2^32 (anomalies) or 2^8 (RSTs, FINs) each carry */
    uint64_t app_count, interims; /* + 2^32 and + 2^16 each carry */
} flow_wide;

/* An observation point: VNI and outer source address. Numbered in
 * t->obs[], found by a chained hash of them, freed when no flow uses it. */
typedef struct obs_pt {
    uint32_t vni;
    uint8_t observer[16];
    uint32_t refs;
    uint32_t next; /* in its bucket, or the free list (index + 1) */
} obs_pt;

enum { LIST_NONE, LIST_LRU, LIST_CLOSING };

/* flow bits */
#define F_CLIENT_IS_A 0x01
#define F_REQ_PENDING 0x02 /* a request's payload seen, no response payload yet */
#define F_WIDE 0x04        /* the wide record holds something */
#define F_V6 0x08          /* IPv6: the addresses are in t->v6[a] */
#define F_FIN0 0x10        /* by direction: 0 client->server, 1 server->client */
#define F_FIN1 0x20
#define F_RST0 0x40
#define F_RST1 0x80

/* Hot: what a lookup, the lists and expiry read. */
typedef struct flow {
    uint32_t a, b; /* IPv4 endpoints in canonical order, bytes as in the packet; with F_V6
                    * a numbers the addresses in t->v6[], b is 0 */
    uint16_t aport, bport;
    uint32_t obs;  /* observation point */
    uint8_t proto;
    uint8_t list;
    uint8_t bits;  /* F_* */
    uint8_t cbits; /* C_* */
    uint32_t chain; /* next in hash bucket (index + 1) */
    uint32_t prev, next; /* in its list (index + 1) */
    int64_t last_ns;
    int64_t queued_ns;   /* activity list: last_ns when queued; close list: the close time */
} flow;
_Static_assert(offsetof(flow, bport) == offsetof(flow, aport) + 2, "a flow's ports are one word");
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "pkey.ports is read from a flow's ports");

/* more flow bits */
#define C_SYN 0x01  /* fcold.syn_irtt holds a SYN's time (a SYN at time 0 does not count) */
#define C_DIR1 0x02 /* the last packet went server -> client */
#define C_EVB 0x04  /* the extension record numbers an anomaly counters' block */
#define C_CELL1 0x08 /* the cells its 32-bit times hold, counted from bit 3 (T_FIELDS at most) */
#define C_CELLS 0x78

/* Cold: the analysis and what the record is built from. */
typedef struct fcold {
    fdir dir[2];
    int64_t rtt_sum[2];
    int64_t first_ns;
    uint64_t history;  /* Zeek's letters as 4-bit codes (direction * 8 + letter), first lowest */
    int64_t other_last; /* the last packet's time of the direction that did not send last */
    uint64_t flow_id;
    uint32_t ext;      /* the extension record (index + 1), 0 until needed */
    uint32_t ua;       /* the pair of outstanding segments' blocks (index + 1), 0 while none */
    int32_t syn_irtt;  /* before the initial RTT (FLOWREC_HS_IRTT): the most recent SYN's
                        * time from first_ns (C_SYN); after: the initial RTT */
    int32_t req_last;  /* the last request byte's time, as an age before the client's
                        * last packet (F_REQ_PENDING) */
    int32_t syn_ns, synack_ns, ack_ns; /* the handshake, from first_ns */
    uint16_t interims; /* the next interim record is due at first_ns + (interims + 1) * interval */
    uint16_t hist_seen; /* letters seen, bit direction * 8 + letter */
    uint8_t hs_seen;
    int8_t dupacknum[2]; /* by direction; saturates: only compared with -1 and 2 */
    int8_t win_scale[2]; /* -1 unknown, -2 not in use, else the shift */
    uint8_t dst[2];     /* D_* */
    uint8_t hist_len;   /* letters in history */
} fcold;

struct flowtab {
    flowtab_opts o;
    flowtab_emit_fn emit;
    void *ctx;
    flow *flows;
    fcold *cold;
    flow_wide *wide;
    uint8_t (*v6)[32]; /* a pool: an IPv6 flow's a and b, the free chained through the
                        * first 4 bytes (index + 1) */
    fext *ext;
    ua_pair *ua;
    ev_blk *evb;
    int64_t *cells;
    uint32_t *buckets; /* index + 1 */
    uint32_t nbuckets;
    uint32_t free_head; /* released slots: index + 1, chained through .next */
    uint32_t unused;    /* slots [unused, max_flows) unused since the start or a flush */
    /* the pools: a free list (index + 1) and the first never used, each */
    uint32_t ext_free, ext_unused;
    uint32_t ua_free, ua_unused;
    uint32_t evb_free, evb_unused;
    uint32_t cell_free, cell_unused;
    uint32_t v6_free, v6_unused;
    size_t ncells;
    /* observation points */
    obs_pt *obs;
    uint32_t *obs_buckets, nobs_buckets; /* chains (index + 1) */
    uint32_t obs_free, obs_unused;       /* a pool like the others (a point per flow at most) */
    uint32_t lru_head, lru_tail, close_head, close_tail;
    uint64_t pf_ring[4]; /* the last near hashes flowtab_prefetch was given */
    unsigned pf_n;
    uint64_t next_id;
    int64_t now;
    int64_t due_ns; /* flowtab__redue() */
    flowtab_stats st;
};

_Static_assert(sizeof(flow) == 48, "a hot slot is 48 bytes");
_Static_assert(sizeof(fdir) == 52, "fdir has no padding");
_Static_assert(sizeof(fcold) == 192, "a cold slot is three cache lines");
_Static_assert(sizeof(ua_blk) == 96, "a block of outstanding segments is two cache lines");
_Static_assert(sizeof(fext) == 32, "an extension record is 32 bytes");

size_t flowtab_slot_bytes(void)
{
    return sizeof(flow) + sizeof(fcold) + 2 * sizeof(uint32_t);
}

/* n elements of size bytes each, zero, mapped: pages cost memory once touched.
 * In huge pages where the kernel gives them: the flows are reached at
 * random, and with small pages nearly every flow's slot was a TLB miss.
 * But not the first 2 MiB (to the first huge page boundary after them):
 * every array is filled from its start, and in huge pages a table of 20 000
 * flows touched and zeroed 2 MiB of each of its eleven arrays - 90 MB
 * resident for an import where store + index took 54, 73 MB now. On the
 * 2-core VM, which hands freed memory back to its host, a huge page
 * touched the first time cost 0.1 ms or, as often, 3-5 ms; small pages
 * 0.4 ms a MiB (docs/BENCHMARKS.md). A million flows live past the first
 * 2 MiB. */
#define FLOWTAB_HUGE ((uintptr_t)2 << 20)

static void *flowtab__map(size_t n, size_t size)
{
    void *p = mmap(NULL, n * size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                   -1, 0);
    if (p == MAP_FAILED) return NULL;
    uintptr_t from = ((uintptr_t)p + 2 * FLOWTAB_HUGE - 1) & ~(uintptr_t)(FLOWTAB_HUGE - 1);
    uintptr_t end = (uintptr_t)p + n * size;
    if (from > end) from = end;
    /* NOHUGEPAGE too: with transparent huge pages "always" (Debian's is
     * "madvise") the start would get them unasked */
    (void)madvise(p, from - (uintptr_t)p, MADV_NOHUGEPAGE);
    if (from < end) (void)madvise((void *)from, end - from, MADV_HUGEPAGE);
    return p;
}

static void flowtab__unmap(void *p, size_t n, size_t size)
{
    if (p) munmap(p, n * size);
}

void flowtab_free(flowtab_t *t)
{
    if (!t) return;
    size_t n = t->o.max_flows;
    flowtab__unmap(t->flows, n, sizeof *t->flows);
    flowtab__unmap(t->cold, n, sizeof *t->cold);
    flowtab__unmap(t->wide, n, sizeof *t->wide);
    flowtab__unmap(t->v6, n, sizeof *t->v6);
    flowtab__unmap(t->ext, n, sizeof *t->ext);
    flowtab__unmap(t->ua, n, sizeof *t->ua);
    flowtab__unmap(t->evb, n, sizeof *t->evb);
    flowtab__unmap(t->cells, t->ncells, sizeof *t->cells);
    flowtab__unmap(t->buckets, t->nbuckets, sizeof *t->buckets);
    flowtab__unmap(t->obs, n, sizeof *t->obs);
    flowtab__unmap(t->obs_buckets, t->nobs_buckets, sizeof *t->obs_buckets);
    free(t);
}

flowtab_t *flowtab_new(const flowtab_opts *o, flowtab_emit_fn emit, void *ctx)
{
    flowtab_t *t = xcalloc(1, sizeof *t);
    t->o = *o;
    if (t->o.max_flows < 1) t->o.max_flows = 1;
    t->emit = emit;
    t->ctx = ctx;
    size_t n = t->o.max_flows;
    t->ncells = n * T_FIELDS; /* one per time field at most */
    t->nbuckets = 1;
    while (t->nbuckets < t->o.max_flows) t->nbuckets <<= 1;
    t->nobs_buckets = 64; /* chains of points: about one each while they number few */
    while (t->nobs_buckets < t->o.max_flows / 16) t->nobs_buckets <<= 1;
    t->flows = flowtab__map(n, sizeof *t->flows);
    t->cold = flowtab__map(n, sizeof *t->cold);
    t->wide = flowtab__map(n, sizeof *t->wide);
    t->v6 = flowtab__map(n, sizeof *t->v6);
    t->ext = flowtab__map(n, sizeof *t->ext);
    t->ua = flowtab__map(n, sizeof *t->ua);
    t->evb = flowtab__map(n, sizeof *t->evb);
    t->cells = flowtab__map(t->ncells, sizeof *t->cells);
    t->buckets = flowtab__map(t->nbuckets, sizeof *t->buckets);
    t->obs = flowtab__map(n, sizeof *t->obs);
    t->obs_buckets = flowtab__map(t->nobs_buckets, sizeof *t->obs_buckets);
    if (!t->flows || !t->cold || !t->wide || !t->v6 || !t->ext || !t->ua || !t->evb ||
        !t->cells || !t->buckets || !t->obs || !t->obs_buckets) {
        flowtab_free(t);
        return NULL;
    }
    t->next_id = o->id_base;
    t->due_ns = INT64_MAX; /* nothing listed */
    return t;
}

/* ---- pools --------------------------------------------------------------- */

/* Pools: a free list (index + 1, chained through a word of each free
 * block) and the first block never used. None runs out: each has room for
 * the most its flows can hold. */

/* The flow's extension record, taken if it has none. */
static fext *flowtab__ext(flowtab_t *t, fcold *c)
{
    if (!c->ext) {
        if (t->ext_free) {
            c->ext = t->ext_free;
            t->ext_free = t->ext[c->ext - 1].evb;
        } else {
            c->ext = ++t->ext_unused;
        }
        fext *e = &t->ext[c->ext - 1];
        memset(e, 0, sizeof *e);
        e->app_min = INT64_MAX;
    }
    return &t->ext[c->ext - 1];
}

/* ---- 32-bit times -------------------------------------------------------- */

/* The value of field v kept as an offset from base, or as an age before it. */
static inline int64_t flowtab__tget(const flowtab_t *t, int32_t v, int64_t base)
{
    if (!t_is_cell(v)) return v == T_NONE ? INT64_MAX : base + v;
    return t->cells[(uint32_t)v - T_CELL];
}

static inline int64_t flowtab__aget(const flowtab_t *t, int32_t v, int64_t base)
{
    return t_is_cell(v) ? t->cells[(uint32_t)v - T_CELL] : base - v;
}

static inline void flowtab__prefetch_cell(const flowtab_t *t, int32_t v)
{
    if (t_is_cell(v)) __builtin_prefetch(&t->cells[(uint32_t)v - T_CELL], 1);
}

/* Field *p of flow f is x: o when fits, else in a cell. */
static void flowtab__tput(flowtab_t *t, flow *f, int32_t *p, int64_t x, int64_t o, int fits)
{
    if (t_is_cell(*p)) {
        uint32_t cell = (uint32_t)*p - T_CELL;
        if (!fits) {
            t->cells[cell] = x;
            return;
        }
        t->cells[cell] = (int64_t)t->cell_free;
        t->cell_free = cell + 1;
        f->cbits = (uint8_t)(f->cbits - C_CELL1);
    } else if (!fits) {
        uint32_t cell;
        if (t->cell_free) {
            cell = t->cell_free - 1;
            t->cell_free = (uint32_t)t->cells[cell];
        } else {
            cell = t->cell_unused++;
        }
        t->cells[cell] = x;
        *p = (int32_t)(T_CELL + cell);
        f->cbits = (uint8_t)(f->cbits + C_CELL1);
        return;
    }
    *p = (int32_t)o;
}

/* Set field *p to x, kept as an offset from base or as an age before it. */
static inline void flowtab__tset(flowtab_t *t, flow *f, int32_t *p, int64_t x, int64_t base)
{
    int64_t o;
    int fits = !__builtin_sub_overflow(x, base, &o) && T_FITS(o);
    flowtab__tput(t, f, p, x, o, fits);
}

static inline void flowtab__aset(flowtab_t *t, flow *f, int32_t *p, int64_t x, int64_t base)
{
    int64_t o;
    int fits = !__builtin_sub_overflow(base, x, &o) && T_FITS(o);
    flowtab__tput(t, f, p, x, o, fits);
}

/* Forget field *p of flow f (its value is not needed): its cell goes back. */
static void flowtab__tdrop(flowtab_t *t, flow *f, int32_t *p)
{
    if (t_is_cell(*p)) {
        uint32_t cell = (uint32_t)*p - T_CELL;
        t->cells[cell] = (int64_t)t->cell_free;
        t->cell_free = cell + 1;
        f->cbits = (uint8_t)(f->cbits - C_CELL1);
    }
    *p = 0;
}

/* The time of direction dir's last packet. */
static inline int64_t flowtab__dlast(const flow *f, const fcold *c, int dir)
{
    return !!(f->cbits & C_DIR1) == dir ? f->last_ns : c->other_last;
}

/* A time kept as an age before its direction's last packet, which moved
 * from old to now (a cell holds it as it is); dropped when not live. */
static inline void flowtab__shift1(flowtab_t *t, flow *f, int32_t *p, int live, int64_t old,
                                   int64_t now)
{
    if (!live) {
        if (*p) flowtab__tdrop(t, f, p);
    } else if (!t_is_cell(*p)) {
        flowtab__aset(t, f, p, old - *p, now);
    }
}

/* A packet of direction dir at ts: that direction's last time moves from
 * its old value, and the times kept from it follow. */
static void flowtab__moved(flowtab_t *t, flow *f, fcold *c, int dir, int64_t ts)
{
    int64_t old = flowtab__dlast(f, c, dir);
    if (!!(f->cbits & C_DIR1) != dir) {
        c->other_last = f->last_ns;
        f->cbits ^= C_DIR1;
    }
    f->last_ns = ts;
    if (ts == old) return;
    fdir *d = &c->dir[dir];
    flowtab__shift1(t, f, &d->nextseqtime, d->nextseq != 0, old, ts);
    flowtab__shift1(t, f, &d->ua0_ts, (c->dst[dir] & D_NUA) != 0, old, ts);
    if (dir == 0) flowtab__shift1(t, f, &c->req_last, f->bits & F_REQ_PENDING, old, ts);
}

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
            t->wide[id - 1].ev[dir][ev] += 1u << 8;
        }
        return;
    }
    fext *e = flowtab__ext(t, c);
    if (!e->evb) {
        if (t->evb_free) {
            e->evb = t->evb_free;
            t->evb_free = t->evb[e->evb - 1].n[0][0];
        } else {
            e->evb = ++t->evb_unused; /* one per flow at most: never beyond max_flows */
        }
        memset(&t->evb[e->evb - 1], 0, sizeof(ev_blk));
        t->flows[id - 1].cbits |= C_EVB;
    }
    if (++t->evb[e->evb - 1].n[dir][ev] == 0) {
        flowtab__wide(t, id);
        t->wide[id - 1].ev[dir][ev] += 1ull << 32;
    }
}

/* Add sample v (>= 0) to a direction's ACK RTTs, kept as flowrec_stat
 * keeps a statistic: minimum (INT64_MAX before the first sample), maximum
 * (0 before), sum, count. An extreme in a cell is over T_NONE: a sample
 * that fits is below it without reading the cell. */
static void flowtab__rtt(flowtab_t *t, uint32_t id, fcold *c, int dir, int64_t v)
{
    flow *f = &t->flows[id - 1];
    fdir *d = &c->dir[dir];
    int fits = v < T_NONE;
    if ((fits && (t_is_cell(d->rtt_min) || v < d->rtt_min)) ||
        (!fits && v < flowtab__tget(t, d->rtt_min, 0)))
        flowtab__tset(t, f, &d->rtt_min, v, 0);
    if (fits ? !t_is_cell(d->rtt_max) && v > d->rtt_max : v > flowtab__tget(t, d->rtt_max, 0))
        flowtab__tset(t, f, &d->rtt_max, v, 0);
    c->rtt_sum[dir] += v;
    flowtab__add32(t, id, &d->rtt_count, &t->wide[id - 1].rtt_count[dir], 1);
}

/* ---- outstanding segments ---------------------------------------------- */

/* The pair of blocks goes back when neither direction needs it. */
static void flowtab__ua_release(flowtab_t *t, fcold *c)
{
    if (!c->ua || (c->dst[0] & D_NUA) > 1 || (c->dst[1] & D_NUA) > 1) return;
    t->ua[c->ua - 1].d[0].end[0] = t->ua_free;
    t->ua_free = c->ua;
    c->ua = 0;
}

/* Direction dir's outstanding segment i (0 the oldest): where its end is,
 * and when it was seen (base: the direction's last packet's time). */
static inline uint32_t *flowtab__ua_end(flowtab_t *t, fcold *c, int dir, unsigned i)
{
    return i ? &t->ua[c->ua - 1].d[dir].end[i - 1] : &c->dir[dir].ua0_end;
}

static inline int64_t flowtab__ua_ts(flowtab_t *t, fcold *c, int dir, unsigned i, int64_t base)
{
    return i ? t->ua[c->ua - 1].d[dir].ts[i - 1] : flowtab__aget(t, c->dir[dir].ua0_ts, base);
}

static inline void flowtab__ua_set(flowtab_t *t, flow *f, fcold *c, int dir, unsigned i,
                                   uint32_t end, int64_t ts, int64_t base)
{
    *flowtab__ua_end(t, c, dir, i) = end;
    if (i) t->ua[c->ua - 1].d[dir].ts[i - 1] = ts;
    else flowtab__aset(t, f, &c->dir[dir].ua0_ts, ts, base);
}

/* Remember a segment ending at end, seen at ts (the oldest UA_MAX). */
static void flowtab__ua_add(flowtab_t *t, flow *f, fcold *c, int dir, uint32_t end, int64_t ts,
                            int64_t base)
{
    unsigned nua = c->dst[dir] & D_NUA;
    if (nua >= UA_MAX) return;
    if (nua && !c->ua) { /* never runs out: a pair per flow */
        if (t->ua_free) {
            c->ua = t->ua_free;
            t->ua_free = t->ua[c->ua - 1].d[0].end[0];
        } else {
            c->ua = ++t->ua_unused;
        }
    }
    flowtab__ua_set(t, f, c, dir, nua, end, ts, base);
    c->dst[dir]++;
}

/* ---- lists ------------------------------------------------------------- */

static inline int64_t flowtab__after(int64_t x, int64_t d)
{
    int64_t r;
    return __builtin_add_overflow(x, d, &r) ? INT64_MAX : r;
}

/* When flowtab_advance() next has something to do: the first test of each
 * of its loops, for the lists' tails as they are now. Kept in t->due_ns,
 * set again whenever a tail changes, the last time of the flow at the
 * activity list's tail goes back, or flowtab_advance() ran (before it,
 * never later than the true time), so a packet compares its time with one
 * number. */
static void flowtab__redue(flowtab_t *t)
{
    int64_t due = INT64_MAX;
    if (t->close_tail) due = flowtab__after(t->flows[t->close_tail - 1].queued_ns, t->o.grace_ns);
    if (t->lru_tail) {
        const flow *f = &t->flows[t->lru_tail - 1];
        int64_t x = flowtab__after(f->last_ns < f->queued_ns ? f->last_ns : f->queued_ns,
                                   t->o.idle_ns);
        if (x < due) due = x;
    }
    t->due_ns = due;
}

static void flowtab__unlink(flowtab_t *t, uint32_t id)
{
    flow *f = &t->flows[id - 1];
    uint32_t *head = f->list == LIST_LRU ? &t->lru_head : &t->close_head;
    uint32_t *tail = f->list == LIST_LRU ? &t->lru_tail : &t->close_tail;
    if (f->list == LIST_NONE) return;
    if (f->prev) t->flows[f->prev - 1].next = f->next;
    else *head = f->next;
    int was_tail = !f->next;
    if (f->next) t->flows[f->next - 1].prev = f->prev;
    else *tail = f->prev;
    f->prev = f->next = 0;
    f->list = LIST_NONE;
    if (was_tail) flowtab__redue(t);
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
    if (!*tail) {
        *tail = id;
        flowtab__redue(t);
    }
}

/* ---- keys ----------------------------------------------------------------- */

static const uint8_t flowtab__mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
static const uint8_t flowtab__zero[16];

/* A packet's key as the table keeps it. */
typedef struct pkey {
    const uint8_t *a16, *b16; /* the endpoints in canonical order */
    uint32_t a, b;            /* their IPv4 addresses (0 for IPv6) */
    /* a's port | b's port << 16: one word, written and compared whole (as
     * two 16-bit fields, the compiler compared them by one 32-bit load of
     * two separate stores, which store forwarding cannot serve: a stall in
     * every lookup) */
    uint32_t ports;
    uint8_t proto, v6;        /* v6: F_V6 or 0 */
} pkey;

static int flowtab__addr_cmp(const uint8_t *x, uint16_t xp, const uint8_t *y, uint16_t yp)
{
    int c = memcmp(x, y, 16);
    return c ? c : (xp > yp) - (xp < yp);
}

/* 1 when address a is IPv4 mapped (::ffff:0:0/96). */
static inline int flowtab__is_mapped(const uint8_t a[16])
{
    uint64_t hi;
    uint32_t mid, want;
    memcpy(&hi, a, 8);
    memcpy(&mid, a + 8, 4);
    memcpy(&want, flowtab__mapped + 8, 4);
    return !hi && mid == want;
}

#define FLOWTAB_INLINE static inline __attribute__((always_inline))

/* The canonical order: endpoints in a fixed order, so both directions
 * match. Fills a's endpoints and k, a's key (which points into a). */
FLOWTAB_INLINE void flowtab__order(pkt_ana *a, pkey *k, const uint8_t src[16], uint16_t sport,
                                   const uint8_t dst[16], uint16_t dport)
{
    int v6 = !(flowtab__is_mapped(src) && flowtab__is_mapped(dst)), a_is_src;
    uint32_t s4, d4;
    memcpy(&s4, src + 12, 4);
    memcpy(&d4, dst + 12, 4);
    if (!v6) { /* the same order as the mapped addresses' */
        uint32_t s = __builtin_bswap32(s4), d = __builtin_bswap32(d4);
        a_is_src = s < d || (s == d && sport <= dport);
    } else {
        a_is_src = flowtab__addr_cmp(src, sport, dst, dport) <= 0;
    }
    memcpy(a->a, a_is_src ? src : dst, 16);
    memcpy(a->b, a_is_src ? dst : src, 16);
    uint32_t fwd = (uint32_t)sport | (uint32_t)dport << 16, rev = (uint32_t)dport | (uint32_t)sport << 16;
    a->ports = k->ports = a_is_src ? fwd : rev;
    a->a_is_src = (uint8_t)a_is_src;
    a->v6 = (uint8_t)v6;
    k->v6 = v6 ? F_V6 : 0;
    k->a16 = a->a;
    k->b16 = a->b;
    k->a = v6 ? 0 : a_is_src ? s4 : d4;
    k->b = v6 ? 0 : a_is_src ? d4 : s4;
}

void pkt_ana_endpoints(pkt_ana *a, const uint8_t src[16], uint16_t sport, const uint8_t dst[16],
                       uint16_t dport)
{
    pkey k;
    flowtab__order(a, &k, src, sport, dst, dport);
}

/* A packet's key, as the table keeps it: its canonical endpoints (put in
 * order by flowtab__order on the receive thread). Always inlined, as
 * flowtab__order and the key's hash are: called per packet, the key then
 * stays in registers instead of a struct in memory behind a call. */
FLOWTAB_INLINE void flowtab__pkey(pkey *k, const pkt_ana *a)
{
    k->v6 = a->v6 ? F_V6 : 0;
    k->a16 = a->a;
    k->b16 = a->b;
    k->ports = a->ports;
    k->proto = a->proto;
    k->a = k->b = 0;
    if (!k->v6) {
        memcpy(&k->a, a->a + 12, 4);
        memcpy(&k->b, a->b + 12, 4);
    }
}

/* Flow id's endpoint addresses (16 bytes, IPv4 mapped). */
static void flowtab__addrs(const flowtab_t *t, uint32_t id, uint8_t a[16], uint8_t b[16])
{
    const flow *f = &t->flows[id - 1];
    if (f->bits & F_V6) {
        memcpy(a, t->v6[f->a], 16);
        memcpy(b, t->v6[f->a] + 16, 16);
        return;
    }
    memcpy(a, flowtab__mapped, 12);
    memcpy(a + 12, &f->a, 4);
    memcpy(b, flowtab__mapped, 12);
    memcpy(b + 12, &f->b, 4);
}

/* The hash of a key: a packet's (flowtab_ana_from() on the receive thread,
 * flowtab_hash() for tests), and a flow's at its release. The
 * multiply-xorshift of flowkey_hash64 over its words, five for an IPv4 key
 * (addresses, ports and VNI, protocol, observer), nine for an IPv6 one (its
 * addresses too), from the process's secret flowkey_seed (flowkey.h: why). */
static inline uint64_t flowtab__mix(uint64_t h, uint64_t w)
{
    h ^= w;
    h *= 0xff51afd7ed558ccdULL;
    return h ^ (h >> 32);
}

FLOWTAB_INLINE uint64_t flowtab__keyhash(const pkey *k, uint32_t vni, const uint8_t observer[16])
{
    uint64_t w[2], h = 0x9e3779b97f4a7c15ULL ^ flowkey_seed;
    h = flowtab__mix(h, (uint64_t)k->a << 32 | k->b);
    h = flowtab__mix(h, (uint64_t)(k->ports & 0xffff) << 48 | (uint64_t)(k->ports >> 16) << 32 | vni);
    h = flowtab__mix(h, (uint64_t)k->proto << 8 | k->v6);
    memcpy(w, observer, 16);
    h = flowtab__mix(flowtab__mix(h, w[0]), w[1]);
    if (k->v6) {
        memcpy(w, k->a16, 16);
        h = flowtab__mix(flowtab__mix(h, w[0]), w[1]);
        memcpy(w, k->b16, 16);
        h = flowtab__mix(flowtab__mix(h, w[0]), w[1]);
    }
    return h;
}

/* Flow id's key, as a packet's. */
static void flowtab__flow_pkey(const flowtab_t *t, uint32_t id, pkey *k)
{
    const flow *f = &t->flows[id - 1];
    k->v6 = f->bits & F_V6;
    k->a = k->v6 ? 0 : f->a;
    k->b = f->b;
    k->ports = (uint32_t)f->aport | (uint32_t)f->bport << 16;
    k->proto = f->proto;
    k->a16 = k->v6 ? t->v6[f->a] : NULL;
    k->b16 = k->v6 ? t->v6[f->a] + 16 : NULL;
}

static int flowtab__match(const flowtab_t *t, uint32_t id, const pkey *k, uint32_t vni,
                          const uint8_t observer[16])
{
    const flow *f = &t->flows[id - 1];
    uint32_t ports;
    memcpy(&ports, &f->aport, 4); /* aport, then bport (asserted after struct flow) */
    if ((k->v6 ? 0 : f->a != k->a) || f->b != k->b || ports != k->ports || f->proto != k->proto ||
        (f->bits & F_V6) != k->v6)
        return 0;
    const obs_pt *o = &t->obs[f->obs];
    uint64_t x[2], y[2];
    memcpy(x, o->observer, 16);
    memcpy(y, observer, 16);
    if (o->vni != vni || x[0] != y[0] || x[1] != y[1]) return 0;
    return !k->v6 || (!memcmp(t->v6[f->a], k->a16, 16) && !memcmp(t->v6[f->a] + 16, k->b16, 16));
}

static uint32_t flowtab__obs_bucket(const flowtab_t *t, uint32_t vni, const uint8_t observer[16])
{
    uint64_t w[2];
    memcpy(w, observer, 16);
    uint64_t h = (w[0] ^ (w[1] * 0x9e3779b97f4a7c15ULL) ^ vni) * 0xff51afd7ed558ccdULL;
    return (uint32_t)(h >> 32) & (t->nobs_buckets - 1);
}

/* The number of observation point (vni, observer), added if new; one more
 * flow uses it. */
static uint32_t flowtab__obs_ref(flowtab_t *t, uint32_t vni, const uint8_t observer[16])
{
    uint32_t *p = &t->obs_buckets[flowtab__obs_bucket(t, vni, observer)];
    for (uint32_t i = *p; i; i = t->obs[i - 1].next) {
        obs_pt *o = &t->obs[i - 1];
        if (o->vni == vni && !memcmp(o->observer, observer, 16)) {
            o->refs++;
            return i - 1;
        }
    }
    uint32_t i;
    if (t->obs_free) {
        i = t->obs_free;
        t->obs_free = t->obs[i - 1].next;
    } else {
        i = ++t->obs_unused;
    }
    obs_pt *o = &t->obs[i - 1];
    o->vni = vni;
    memcpy(o->observer, observer, 16);
    o->refs = 1;
    o->next = *p;
    *p = i;
    return i - 1;
}

/* One flow fewer uses observation point n; the last one frees it. */
static void flowtab__obs_unref(flowtab_t *t, uint32_t n)
{
    obs_pt *o = &t->obs[n];
    if (--o->refs) return;
    uint32_t *p = &t->obs_buckets[flowtab__obs_bucket(t, o->vni, o->observer)];
    while (*p != n + 1) p = &t->obs[*p - 1].next;
    *p = o->next;
    o->next = t->obs_free;
    t->obs_free = n + 1;
}

/* ---- records ----------------------------------------------------------- */

/* Zeek's conn_state; any0/any1: packets seen from the client/the server. */
static void flowtab__conn_state(const flow *f, uint8_t hs, int any0, int any1, char out[8])
{
    const char *s;
    uint8_t b = f->bits;
    int fin0 = !!(b & F_FIN0), fin1 = !!(b & F_FIN1), rst0 = !!(b & F_RST0), rst1 = !!(b & F_RST1);
    if (f->proto != 6) {
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
    const fcold *c = &t->cold[id - 1];
    const fdir *a = &c->dir[dir];
    const flow_wide *w = &t->wide[id - 1];
    const ev_blk *evb = f->cbits & C_EVB ? &t->evb[t->ext[c->ext - 1].evb - 1] : NULL;
    int wide = (f->bits & F_WIDE) != 0;
    o->packets = a->packets + (wide ? w->packets[dir] : 0);
    o->ip_bytes = a->ip_bytes + (wide ? w->ip_bytes[dir] : 0);
    o->payload_bytes = a->payload_bytes + (wide ? w->payload_bytes[dir] : 0);
    uint64_t ev[EV_N];
    for (int i = 0; i < EV_N; i++) {
        ev[i] = i >= EV_RARE ? a->ev[i - EV_RARE] : evb ? evb->n[dir][i] : 0;
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
    o->rtt.sum = c->rtt_sum[dir];
    o->rtt.min = flowtab__tget(t, a->rtt_min, 0);
    o->rtt.max = flowtab__tget(t, a->rtt_max, 0);
}

static void flowtab__emit(flowtab_t *t, uint32_t id, int final)
{
    t->st.records++;
    if (!final) t->st.interim++;
    if (!final && t->o.skip_interim) return;
    const flow *f = &t->flows[id - 1];
    const fcold *c = &t->cold[id - 1];
    /* What the record reads beside the slots, fetched at once. */
    if (c->ext) __builtin_prefetch(&t->ext[c->ext - 1]);
    if (f->cbits & C_CELLS) {
        for (int d = 0; d < 2; d++) {
            flowtab__prefetch_cell(t, c->dir[d].rtt_min);
            flowtab__prefetch_cell(t, c->dir[d].rtt_max);
        }
        flowtab__prefetch_cell(t, c->syn_irtt);
        flowtab__prefetch_cell(t, c->synack_ns);
        flowtab__prefetch_cell(t, c->ack_ns);
    }
    const flow_wide *w = &t->wide[id - 1];
    const obs_pt *o = &t->obs[f->obs];
    int client_is_a = (f->bits & F_CLIENT_IS_A) != 0;
    uint8_t a[16], b[16];
    flowrec r;
    memset(&r, 0, sizeof r);
    r.flow_id = c->flow_id;
    r.vni = o->vni;
    memcpy(r.observer, o->observer, 16);
    r.proto = f->proto;
    flowtab__addrs(t, id, a, b);
    memcpy(r.client_ip, client_is_a ? a : b, 16);
    memcpy(r.server_ip, client_is_a ? b : a, 16);
    r.client_port = client_is_a ? f->aport : f->bport;
    r.server_port = client_is_a ? f->bport : f->aport;
    r.first_ns = c->first_ns;
    r.last_ns = f->last_ns;
    static const char letters[] = "shadfrtw";
    unsigned len = c->hist_len;
    for (unsigned i = 0; i < len; i++) {
        unsigned code = (unsigned)(c->history >> (4 * i)) & 15;
        char l = letters[code & 7];
        r.history[i] = code < 8 ? (char)(l - 'a' + 'A') : l;
    }
    r.history[len] = 0;
    flowtab__dir_out(t, id, 0, &r.c2s);
    flowtab__dir_out(t, id, 1, &r.s2c);
    r.hs_seen = c->hs_seen;
    if (c->hs_seen & FLOWREC_HS_SYN) r.syn_ns = flowtab__tget(t, c->syn_ns, c->first_ns);
    if (c->hs_seen & FLOWREC_HS_SYNACK) r.synack_ns = flowtab__tget(t, c->synack_ns, c->first_ns);
    if (c->hs_seen & FLOWREC_HS_ACK) r.ack_ns = flowtab__tget(t, c->ack_ns, c->first_ns);
    if (c->hs_seen & FLOWREC_HS_IRTT) r.initial_rtt_ns = flowtab__tget(t, c->syn_irtt, 0);
    if (c->ext) {
        const fext *e = &t->ext[c->ext - 1];
        r.app_response.count = e->app_count;
        r.app_response.sum = e->app_sum;
        r.app_response.min = e->app_min;
        r.app_response.max = e->app_max;
    } else {
        r.app_response.min = INT64_MAX;
    }
    if (f->bits & F_WIDE) r.app_response.count += w->app_count;
    flowtab__conn_state(f, c->hs_seen, r.c2s.packets != 0, r.s2c.packets != 0, r.conn_state);
    r.final = final;
    t->emit(t->ctx, &r);
}

static void flowtab__release(flowtab_t *t, uint32_t id)
{
    flow *f = &t->flows[id - 1];
    fcold *c = &t->cold[id - 1];
    pkey k;
    flowtab__flow_pkey(t, id, &k);
    const obs_pt *o = &t->obs[f->obs];
    uint32_t b = (uint32_t)(flowtab__keyhash(&k, o->vni, o->observer) & (t->nbuckets - 1));
    uint32_t *p = &t->buckets[b];
    while (*p && *p != id) p = &t->flows[*p - 1].chain;
    if (*p) *p = f->chain;
    flowtab__unlink(t, id);
    c->dst[0] = c->dst[1] = 0;
    flowtab__ua_release(t, c);
    if (c->ext) {
        fext *e = &t->ext[c->ext - 1];
        if (e->evb) {
            t->evb[e->evb - 1].n[0][0] = t->evb_free;
            t->evb_free = e->evb;
        }
        e->evb = t->ext_free;
        t->ext_free = c->ext;
    }
    /* The cells of its times go back. */
    for (int d = 0; d < 2 && (f->cbits & C_CELLS); d++) {
        fdir *x = &c->dir[d];
        int32_t *fields[] = { &x->nextseqtime, &x->ua0_ts, &x->rtt_min, &x->rtt_max };
        for (unsigned i = 0; i < sizeof fields / sizeof fields[0]; i++) flowtab__tdrop(t, f, fields[i]);
    }
    int32_t *fields[] = { &c->syn_irtt, &c->req_last, &c->syn_ns, &c->synack_ns, &c->ack_ns };
    for (unsigned i = 0; i < sizeof fields / sizeof fields[0] && (f->cbits & C_CELLS); i++)
        flowtab__tdrop(t, f, fields[i]);
    flowtab__obs_unref(t, f->obs);
    if (f->bits & F_V6) {
        memcpy(t->v6[f->a], &t->v6_free, 4);
        t->v6_free = f->a + 1;
    }
    if (f->bits & F_WIDE) memset(&t->wide[id - 1], 0, sizeof t->wide[id - 1]);
    memset(f, 0, sizeof *f);
    f->next = t->free_head;
    t->free_head = id;
    t->st.active--;
}

/* Fetch flow id's slots: the next one a walk of a list looks at. */
static inline void flowtab__prefetch_slots(const flowtab_t *t, uint32_t id)
{
    if (!id) return;
    const char *f = (const char *)&t->flows[id - 1], *c = (const char *)&t->cold[id - 1];
    __builtin_prefetch(f);
    __builtin_prefetch(f + sizeof(flow) - 1);
    for (size_t off = 0; off < sizeof(fcold); off += 64) __builtin_prefetch(c + off);
}

static void flowtab__finish(flowtab_t *t, uint32_t id)
{
    flowtab__emit(t, id, 1);
    flowtab__release(t, id);
}

/* ---- lookup ------------------------------------------------------------- */

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

static uint32_t flowtab__new_flow(flowtab_t *t, const pkey *k, uint32_t vni,
                                  const uint8_t observer[16], uint32_t bucket)
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
        id = ++t->unused; /* (untouched memory until a flush) */
    }
    flow *f = &t->flows[id - 1];
    fcold *c = &t->cold[id - 1];
    memset(f, 0, sizeof *f);
    memset(c, 0, sizeof *c);
    f->a = k->a;
    f->b = k->b;
    f->aport = (uint16_t)k->ports;
    f->bport = (uint16_t)(k->ports >> 16);
    f->proto = k->proto;
    f->bits = k->v6;
    if (k->v6) { /* never runs out: one per flow at most */
        if (t->v6_free) {
            f->a = t->v6_free - 1;
            memcpy(&t->v6_free, t->v6[f->a], 4);
        } else {
            f->a = t->v6_unused++;
        }
        memcpy(t->v6[f->a], k->a16, 16);
        memcpy(t->v6[f->a] + 16, k->b16, 16);
    }
    f->obs = flowtab__obs_ref(t, vni, observer);
    f->chain = t->buckets[bucket];
    t->buckets[bucket] = id;
    c->win_scale[0] = c->win_scale[1] = -1;
    c->dir[0].rtt_min = c->dir[1].rtt_min = T_NONE;
    c->flow_id = t->next_id++;
    t->st.active++;
    t->st.created++;
    return id;
}

/* Zeek's history letters, by their 3-bit codes (flowtab__emit spells them). */
enum { H_S, H_H, H_A, H_D, H_F, H_R, H_T, H_W };

static void flowtab__history(fcold *c, int dir, unsigned letter)
{
    /* Each letter at most once per direction: 16 codes fit the 64 bits. */
    unsigned code = (unsigned)dir * 8 + letter;
    if (c->hist_seen & (1u << code)) return;
    c->history |= (uint64_t)code << (4 * c->hist_len++);
    c->hist_seen |= (uint16_t)(1u << code);
}

/* ---- TCP analysis (Wireshark's tcp_analyze_sequence_number) -------------- */

/* The flags a segment's counters and history letters follow (most segments
 * have none of them: one test, then nothing). */
#define TA_COUNTED (TA_RETRANS | TA_FAST | TA_SPURIOUS | TA_OOO | TA_DUPACK | TA_LOST | TA_ZW | \
                    TA_WF | TA_KA)

static void flowtab__tcp_count(flowtab_t *t, uint32_t id, fcold *c, int dir, unsigned ta)
{
    if (ta & (TA_RETRANS | TA_FAST | TA_SPURIOUS)) flowtab__ev(t, id, c, dir, EV_RETRANS);
    if (ta & TA_FAST) flowtab__ev(t, id, c, dir, EV_FAST);
    if (ta & TA_SPURIOUS) flowtab__ev(t, id, c, dir, EV_SPURIOUS);
    if (ta & TA_OOO) flowtab__ev(t, id, c, dir, EV_OOO);
    if (ta & TA_DUPACK) flowtab__ev(t, id, c, dir, EV_DUPACK);
    if (ta & TA_LOST) flowtab__ev(t, id, c, dir, EV_LOST);
    if (ta & TA_ZW) flowtab__ev(t, id, c, dir, EV_ZW);
    if (ta & TA_WF) flowtab__ev(t, id, c, dir, EV_WF);
    if (ta & TA_KA) flowtab__ev(t, id, c, dir, EV_KA);
    if (ta & (TA_RETRANS | TA_FAST | TA_SPURIOUS)) flowtab__history(c, dir, H_T);
    if (ta & TA_ZW) flowtab__history(c, dir, H_W);
}

static void flowtab__tcp(flowtab_t *t, uint32_t id, int dir, int64_t ts, const pkt_ana *a)
{
    flow *f = &t->flows[id - 1];
    fcold *c = &t->cold[id - 1];
    int8_t *fdup = &c->dupacknum[dir], *rdup = &c->dupacknum[1 - dir];
    int8_t *fws = &c->win_scale[dir], *rws = &c->win_scale[1 - dir];
    uint8_t rdst = c->dst[1 - dir]; /* the other direction's D_* bits, as of its last segment */
    int64_t rev_last = c->other_last; /* the other direction's last packet (this one is ts) */
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
    if (seglen > 0 && *rws != -1 && !(flags & (TCP_SYN | TCP_FIN | TCP_RST))) {
        int shift = (rdst & D_WSYN) || *rws == -2 ? 0 : *rws;
        if (seq + seglen == rev->lastack + ((uint32_t)rev->window << shift)) ta |= TA_WF;
    }
    /* KEEP ALIVE ACK */
    if (seglen == 0 && window && window == fwd->window && seq == fwd->nextseq &&
        ack == fwd->lastack && (rdst & D_KA) &&
        !(flags & (TCP_SYN | TCP_FIN | TCP_RST))) {
        ta |= TA_KA_ACK;
        goto finished_fwd;
    }
    /* ZERO WINDOW PROBE ACK */
    if (seglen == 0 && window == 0 && window == fwd->window && seq == fwd->nextseq &&
        ack == fwd->lastack && (rdst & D_ZWP) &&
        !(flags & (TCP_SYN | TCP_FIN | TCP_RST))) {
        ta |= TA_ZWP_ACK;
        goto finished_fwd;
    }
    /* DUPLICATE ACK */
    if (seglen == 0 && window && window == fwd->window && seq == fwd->nextseq &&
        ack == fwd->lastack && !(flags & (TCP_SYN | TCP_FIN | TCP_RST))) {
        *fdup = *fdup == -1 ? 1 : *fdup == INT8_MAX ? INT8_MAX : (int8_t)(*fdup + 1);
        ta |= TA_DUPACK;
    }

finished_fwd:
    if (ack != fwd->lastack) *fdup = 0;
    /* ACKED LOST PACKET: acks data we never saw; only bookkeeping here */
    if (rev->maxseqtobeacked && SEQ_GT(ack, rev->maxseqtobeacked) && (flags & TCP_ACK)) {
        if (SEQ_GT(rev->maxseqtobeacked, rev->nextseq)) rev->maxseqtobeacked = rev->nextseq;
        else *rdup = -1;
    }

    /* RETRANSMISSION / FAST RETRANSMISSION / SPURIOUS / OUT-OF-ORDER */
    if ((seglen > 0 || (flags & (TCP_SYN | TCP_FIN))) && !(ta & TA_KA)) {
        int not_advanced = fwd->nextseq && SEQ_LT(seq, fwd->nextseq);
        if (seglen > 1 && fwd->nextseq - 1 == seq) not_advanced = 0;
        if (seglen > 0 && rev->lastack && SEQ_LE(seq + seglen, rev->lastack)) {
            ta |= TA_SPURIOUS;
        } else if (not_advanced && *rdup >= 2 && rev->lastack == seq &&
                   ts - rev_last < 20000000LL) {
            ta |= TA_FAST;
        } else if (not_advanced) {
            int64_t irtt = (c->hs_seen & FLOWREC_HS_IRTT) ? flowtab__tget(t, c->syn_irtt, 0) : 0;
            int64_t thres = irtt ? irtt : 3000000LL;
            uint32_t syn_fin = (flags & (TCP_SYN | TCP_FIN)) ? 1 : 0;
            if (ts - flowtab__aget(t, fwd->nextseqtime, ts) < thres &&
                fwd->nextseq != seq + seglen + syn_fin)
                ta |= TA_OOO;
            else
                ta |= TA_RETRANS;
        }
    }

    uint32_t nextseq = seq + seglen;
    if (seglen || (flags & (TCP_SYN | TCP_FIN))) {
        if (flags & (TCP_SYN | TCP_FIN)) nextseq += 1;
        flowtab__ua_add(t, f, c, dir, nextseq, ts, ts);
    }
    if (SEQ_GT(nextseq, fwd->nextseq) || !fwd->nextseq) {
        if (!(ta & TA_ZWP)) {
            fwd->nextseq = nextseq;
            flowtab__aset(t, f, &fwd->nextseqtime, ts, ts);
        }
    }
    if (seq == fwd->maxseqtobeacked || !fwd->maxseqtobeacked) {
        if (!(ta & TA_ZWP)) fwd->maxseqtobeacked = fwd->nextseq;
    }
    fwd->window = (uint16_t)window;
    c->dst[dir] = (uint8_t)((c->dst[dir] & D_NUA) | ((flags & TCP_SYN) ? D_WSYN : 0) |
                            ((ta & TA_KA) ? D_KA : 0) | ((ta & TA_ZWP) ? D_ZWP : 0));
    fwd->lastack = ack; /* and its time, Wireshark's lastacktime, is ts: the flow's last */

    /* ACK RTT: this ACK exactly covers an unacknowledged segment of the other
     * direction. As in Wireshark, the oldest exact match gives the sample;
     * what the ACK covers is dropped. */
    unsigned rnua = c->dst[1 - dir] & D_NUA;
    if (rnua) {
        int64_t rtt = -1;
        uint8_t keep = 0;
        for (uint8_t i = 0; i < rnua; i++) {
            uint32_t end = *flowtab__ua_end(t, c, 1 - dir, i);
            int64_t sent = flowtab__ua_ts(t, c, 1 - dir, i, rev_last);
            if (ack == end) {
                if (rtt < 0) rtt = ts - sent;
                continue;
            }
            if (SEQ_GT(end, ack)) {
                if (keep != i) flowtab__ua_set(t, f, c, 1 - dir, keep, end, sent, rev_last);
                keep++;
            }
        }
        c->dst[1 - dir] = (uint8_t)((c->dst[1 - dir] & ~D_NUA) | keep);
        if (keep <= 1) flowtab__ua_release(t, c);
        if (rtt >= 0) flowtab__rtt(t, id, c, 1 - dir, rtt);
    }

    /* Window scale from the handshake (Wireshark's verify_tcp_window_scaling). */
    if (flags & TCP_SYN) {
        *fws = a->wscale;
        if (*fws == -1) {
            *fws = -2;
            *rws = -2;
        } else if ((flags & TCP_ACK) && *rws == -2) {
            *fws = -2;
        }
    }

    if (ta & TA_COUNTED) flowtab__tcp_count(t, id, c, dir, ta);
}

static void flowtab__tcp_session(flowtab_t *t, uint32_t id, int dir, int64_t ts,
                                 const pkt_ana *a)
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
            flowtab__tset(t, f, &c->syn_ns, ts, c->first_ns);
        }
        if (!(c->hs_seen & FLOWREC_HS_IRTT)) { /* the most recent SYN (none at time 0) */
            flowtab__tset(t, f, &c->syn_irtt, ts, c->first_ns);
            f->cbits = (uint8_t)((f->cbits & ~C_SYN) | (ts ? C_SYN : 0));
        }
        flowtab__history(c, dir, H_S);
    } else if ((fl & TCP_SYN) && (fl & TCP_ACK)) {
        if (!client && !(c->hs_seen & FLOWREC_HS_ACK)) {
            c->hs_seen |= FLOWREC_HS_SYNACK;
            flowtab__tset(t, f, &c->synack_ns, ts, c->first_ns);
        }
        flowtab__history(c, dir, H_H);
    }
    /* Initial RTT as Wireshark: the first ACK without SYN after a SYN, from
     * the most recent SYN (a refusing RST/ACK counts too). */
    if ((fl & (TCP_SYN | TCP_ACK)) == TCP_ACK && (f->cbits & C_SYN) &&
        !(c->hs_seen & FLOWREC_HS_IRTT)) {
        flowtab__tset(t, f, &c->syn_irtt, ts - flowtab__tget(t, c->syn_irtt, c->first_ns), 0);
        c->hs_seen |= FLOWREC_HS_IRTT;
    }
    if (client && (fl & (TCP_SYN | TCP_ACK)) == TCP_ACK && (c->hs_seen & FLOWREC_HS_SYNACK) &&
        !(c->hs_seen & FLOWREC_HS_ACK)) {
        c->hs_seen |= FLOWREC_HS_ACK;
        flowtab__tset(t, f, &c->ack_ns, ts, c->first_ns);
    }
    flowtab__tcp(t, id, dir, ts, a);
    if (fl & TCP_FIN) {
        flowtab__ev(t, id, c, dir, EV_FIN);
        f->bits |= dir ? F_FIN1 : F_FIN0;
        flowtab__history(c, dir, H_F);
    }
    if (fl & TCP_RST) {
        flowtab__ev(t, id, c, dir, EV_RST);
        f->bits |= dir ? F_RST1 : F_RST0;
        flowtab__history(c, dir, H_R);
    }
    if (a->payload_len) flowtab__history(c, dir, H_D);
    else if ((fl & (TCP_SYN | TCP_FIN | TCP_RST | TCP_ACK)) == TCP_ACK) flowtab__history(c, dir, H_A);
}

/* Application response time: last request byte -> first response byte. */
static void flowtab__app(flowtab_t *t, uint32_t id, int dir, int64_t ts, const pkt_ana *a)
{
    flow *f = &t->flows[id - 1];
    fcold *c = &t->cold[id - 1];
    if (!a->payload_len) return;
    if (dir == 0) {
        flowtab__aset(t, f, &c->req_last, ts, ts); /* before the client's last packet: this one */
        f->bits |= F_REQ_PENDING;
    } else if (f->bits & F_REQ_PENDING) {
        fext *e = flowtab__ext(t, c);
        int64_t v = ts - flowtab__aget(t, c->req_last, c->other_last); /* the client's last */
        if (v < e->app_min) e->app_min = v;
        if (v > e->app_max) e->app_max = v;
        e->app_sum += v;
        flowtab__add32(t, id, &e->app_count, &t->wide[id - 1].app_count, 1);
        f->bits &= (uint8_t)~F_REQ_PENDING;
    }
}

/* The anomalies after which the addresses cannot be trusted. */
#define ANA_BAD_L3 (1u << DEC_ETH_SHORT | 1u << DEC_VLAN_SHORT | 1u << DEC_IPV4_SHORT | \
                    1u << DEC_IPV6_SHORT | 1u << DEC_IPV4_BAD_VERSION | 1u << DEC_IPV6_BAD_VERSION)
_Static_assert(DEC__COUNT <= 32, "decode reasons fit a 32-bit mask");
_Static_assert(sizeof(pkt_ana) == 60, "pkt_ana has no padding: flowtab_ana_from writes every byte");

uint64_t flowtab_ana_from(pkt_ana *a, const pkt_info_t *pi, uint32_t vni, const uint8_t observer[16])
{
    uint16_t sport = 0, dport = 0;
    if ((pi->l3 != PKT_L3_IPV4 && pi->l3 != PKT_L3_IPV6) ||
        (pi->flags & PKT_F_FRAG_LATER) || /* no transport header to analyse */
        ((1u << pi->reason) & ANA_BAD_L3))
        goto unusable;
    if (pi->proto == 6 || pi->proto == 17) {
        if (!(pi->flags & PKT_F_L4) || pi->reason != DEC_OK) goto unusable; /* ports/header unreliable */
        sport = pi->sport;
        dport = pi->dport;
    }
    /* every field written */
    pkey k;
    flowtab__order(a, &k, pi->src, sport, pi->dst, dport);
    a->proto = k.proto = pi->proto;
    a->ip_len = pi->ip_len;
    a->seq = pi->tcp_seq;
    a->ack = pi->tcp_ack;
    a->payload_len = pi->payload_len;
    a->win = pi->tcp_win;
    a->tcp_flags = pi->tcp_flags;
    a->wscale = pi->tcp_wscale;
    a->usable = 1;
    return flowtab__keyhash(&k, vni, observer ? observer : flowtab__zero);
unusable:
    memset(a, 0, sizeof *a);
    return 0;
}

uint64_t flowtab_hash(const pkt_ana *a, uint32_t vni, const uint8_t observer[16])
{
    pkey k;
    if (!a->usable) return 0;
    flowtab__pkey(&k, a);
    return flowtab__keyhash(&k, vni, observer ? observer : flowtab__zero);
}

void flowtab_prefetch(flowtab_t *t, uint64_t hash_far, uint64_t hash_near)
{
    uint32_t mask = t->nbuckets - 1;
    __builtin_prefetch(&t->buckets[hash_far & mask]);
    uint32_t id = t->buckets[hash_near & mask];
    if (id) {
        /* The hot slot (key, links, times) and the cold one (what a packet
         * reads: all but the flow id). */
        const char *f = (const char *)&t->flows[id - 1];
        __builtin_prefetch(f, 1);
        __builtin_prefetch(f + sizeof(flow) - 1, 1);
        const char *c = (const char *)&t->cold[id - 1];
        for (size_t off = 0; off < sizeof(fcold); off += 64) __builtin_prefetch(c + off, 1);
    }
    /* Four calls on, the cold slot of this near packet is in the cache:
     * what it points to, fetched for that packet now. */
    uint64_t h = t->pf_ring[t->pf_n & 3];
    t->pf_ring[t->pf_n++ & 3] = hash_near;
    if (!(id = t->buckets[h & mask])) return;
    const fcold *c = &t->cold[id - 1];
    const flow *f = &t->flows[id - 1];
    if (f->bits & F_V6) __builtin_prefetch(t->v6[f->a]);
    if (c->ext) __builtin_prefetch(&t->ext[c->ext - 1], 1);
    if (c->ua) {
        const char *u = (const char *)&t->ua[c->ua - 1];
        for (size_t off = 0; off < sizeof(ua_pair); off += 64) __builtin_prefetch(u + off, 1);
    }
    if (!(f->cbits & C_CELLS)) return;
    for (int d = 0; d < 2; d++) {
        flowtab__prefetch_cell(t, c->dir[d].nextseqtime);
        flowtab__prefetch_cell(t, c->dir[d].ua0_ts);
        flowtab__prefetch_cell(t, c->dir[d].rtt_min);
        flowtab__prefetch_cell(t, c->dir[d].rtt_max);
    }
    flowtab__prefetch_cell(t, c->syn_irtt);
    flowtab__prefetch_cell(t, c->req_last);
}

uint64_t flowtab_packet(flowtab_t *t, int64_t ts, uint32_t vni, const uint8_t observer[16],
                        const pkt_ana *a, uint64_t hash)
{
    if (!a->usable) {
        t->st.unusable_packets++;
        return 0;
    }
    if (ts > t->now) {
        t->now = ts; /* nearly every packet moves the clock, nearly none ends a flow */
        if (ts >= t->due_ns) flowtab_advance(t, ts);
    }
    if (!observer) observer = flowtab__zero;
    pkey k;
    flowtab__pkey(&k, a);
    int a_is_src = a->a_is_src;
    uint32_t bucket = (uint32_t)(hash & (t->nbuckets - 1));
    uint32_t id = t->buckets[bucket];
    while (id && !flowtab__match(t, id, &k, vni, observer)) id = t->flows[id - 1].chain;

    int syn_only = a->proto == 6 && (a->tcp_flags & (TCP_SYN | TCP_ACK)) == TCP_SYN;
    if (id && syn_only && t->flows[id - 1].list == LIST_CLOSING) {
        /* A new connection on the same ports after the old one closed. */
        flowtab__finish(t, id);
        id = 0;
    }
    if (!id) {
        id = flowtab__new_flow(t, &k, vni, observer, bucket);
        flow *f = &t->flows[id - 1];
        /* The client: sender of the first SYN; the receiver of a SYN/ACK;
         * otherwise for TCP the side with the higher port (servers listen on
         * low ports), and for other protocols the first sender. */
        int client_is_src;
        if (a->proto == 6 && (a->tcp_flags & TCP_SYN)) client_is_src = !(a->tcp_flags & TCP_ACK);
        else if (a->proto == 6 && pkt_ana_sport(a) != pkt_ana_dport(a))
            client_is_src = pkt_ana_sport(a) > pkt_ana_dport(a);
        else client_is_src = 1;
        if (client_is_src == a_is_src) f->bits |= F_CLIENT_IS_A;
        t->cold[id - 1].first_ns = ts;
        f->last_ns = ts; /* and the direction of its last packet is this one's: */
        if ((client_is_src == a_is_src) != a_is_src) f->cbits |= C_DIR1;
        f->queued_ns = ts;
        flowtab__push(t, id, LIST_LRU);
    }
    flow *f = &t->flows[id - 1];
    fcold *c = &t->cold[id - 1];
    flow_wide *w = &t->wide[id - 1];
    int dir = (a_is_src == !!(f->bits & F_CLIENT_IS_A)) ? 0 : 1;
    int back = ts < f->last_ns;
    flowtab__moved(t, f, c, dir, ts); /* the flow's last time is ts */
    if (back && id == t->lru_tail) flowtab__redue(t);
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
        uint64_t v = c->interims + step; /* 16 bits in the flow, the carries in the wide record */
        c->interims = (uint16_t)v;
        if (v >> 16) flowtab__wide(t, id)->interims += v & ~(uint64_t)0xffff;
    }
    return c->flow_id;
}

void flowtab_advance(flowtab_t *t, int64_t now)
{
    if (now > t->now) t->now = now;
    while (t->close_tail && t->flows[t->close_tail - 1].queued_ns + t->o.grace_ns <= t->now) {
        flowtab__prefetch_slots(t, t->flows[t->close_tail - 1].prev);
        flowtab__finish(t, t->close_tail);
    }
    while (t->lru_tail) {
        uint32_t id = t->lru_tail;
        flow *f = &t->flows[id - 1];
        if (f->last_ns + t->o.idle_ns <= t->now) {
            flowtab__prefetch_slots(t, f->prev); /* the next to look at */
            flowtab__finish(t, id);
        } else if (f->queued_ns + t->o.idle_ns <= t->now) {
            flowtab__requeue(t, id); /* active since queued: second chance */
        } else {
            break; /* everything newer was queued later */
        }
    }
    flowtab__redue(t); /* exact again (a tail's last time may have moved on) */
}

/* Zero n elements of size bytes at p, as mapped: their pages are given
 * back (zero when next touched) - no cost for the pages never touched. */
static void flowtab__zero_map(void *p, size_t n, size_t size)
{
    if (madvise(p, n * size, MADV_DONTNEED) < 0) memset(p, 0, n * size);
}

void flowtab_flush(flowtab_t *t)
{
    /* Oldest first, so records come out roughly in the order flows ended.
     * Every flow ends, so none is released on its own (its hash, its chain,
     * its lists and pools: a third of the table's work at the end of an
     * import, which nothing else overlaps): the table is emptied at once. */
    uint32_t tails[] = { t->close_tail, t->lru_tail };
    for (int i = 0; i < 2; i++)
        for (uint32_t id = tails[i], prev; id; id = prev) {
            prev = t->flows[id - 1].prev;
            flowtab__prefetch_slots(t, prev);
            flowtab__emit(t, id, 1);
            /* A new flow finds its carries zero (the other pools are set when taken). */
            if (t->flows[id - 1].bits & F_WIDE) memset(&t->wide[id - 1], 0, sizeof t->wide[id - 1]);
        }
    flowtab__zero_map(t->buckets, t->nbuckets, sizeof *t->buckets);
    flowtab__zero_map(t->obs_buckets, t->nobs_buckets, sizeof *t->obs_buckets);
    t->free_head = t->unused = 0;
    t->ext_free = t->ext_unused = t->ua_free = t->ua_unused = t->evb_free = t->evb_unused = 0;
    t->cell_free = t->cell_unused = t->v6_free = t->v6_unused = t->obs_free = t->obs_unused = 0;
    t->lru_head = t->lru_tail = t->close_head = t->close_tail = 0;
    t->due_ns = INT64_MAX;
    t->st.active = 0;
}

void flowtab_get_stats(const flowtab_t *t, flowtab_stats *out) { *out = t->st; }
