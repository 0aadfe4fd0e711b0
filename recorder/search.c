/* search.c - indexed, time-ordered search over pcap segments (see search.h).
 *
 * DESIGN: the catalog (catalog.h) rules out, without opening their indexes,
 * the sealed segments outside the time range and those whose host and port
 * summary holds none of the expression's lookup terms (or none of the
 * selected flows). Each other segment overlapping the range gets a cursor: the sorted
 * list of candidate packet ordinals, found from its index (exprscan picks the
 * flows, their posting lists give the packets, the time index drops what is
 * outside the range). A heap merges the cursors by (timestamp, segment,
 * arrival ordinal) - one total order even when imports overlap in time.
 * Only then is each candidate read and matched exactly with libpcap's BPF.
 * Segments are activated lazily, in order of their first timestamp, so
 * memory holds only the segments that overlap the current point in time.
 * Every index byte the candidates come from is checked against its chunk's
 * checksum first; a segment whose index is damaged is answered from its
 * pcap instead (indexed on the fly, as the open segment is) and counted.
 */
#include "search.h"

#include "catalog.h"
#include "decode.h"
#include "exprscan.h"
#include "filter.h"
#include "flowtab.h"
#include "log.h"
#include "pcapio.h"
#include "segindex.h"
#include "store.h"
#include "xmalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SEARCH_SEL_JUDGE_MAX 4096 /* selected flows judged against segment summaries */
#define SEARCH_WIN (512u << 10) /* holds the largest record (256 KiB + header) */
#define SEARCH_SMALL_READ 2048u
#define SEARCH__DAMAGED 1 /* search__candidates: an index chunk failed its checksum */

typedef struct cursor {
    uint64_t seq;
    segidx_t *ix;
    int fd;
    int dense;
    uint32_t *cand;
    size_t ncand, i;
    uint8_t *win;
    uint64_t win_off;
    size_t win_len;
} cursor;

/* A selected flow's identity, laid out for memcmp (zeroed padding) with the
 * lower (address, port) first, so both directions of a flow compare equal. */
typedef struct sel_key {
    uint32_t vni;
    uint8_t observer[16];
    uint8_t a[16], b[16];
    uint16_t a_port, b_port;
    uint8_t proto, pad[3];
} sel_key;

typedef struct sel_flow {
    sel_key k;
    int64_t first_ns, last_ns;
} sel_flow;

struct search {
    char *dir;
    search_query q;
    /* q.flows, sorted by (key, first_ns); in sel_any with the observation
     * point left out, for index keys that do not know theirs */
    sel_flow *sel, *sel_any;
    size_t nsel;
    filter_t *filter;
    exprscan_t *es;
    cursor *segs; /* all overlapping segments, by (min_ts, seq) */
    size_t nsegs, next;
    cursor **heap;
    size_t nheap;
    cursor *done; /* exhausted; released at the next call (its window is in use) */
    search_stats st;
};

static void search__sel_key(sel_key *k, uint32_t vni, const uint8_t observer[16], uint8_t proto,
                            const uint8_t a[16], uint16_t ap, const uint8_t b[16], uint16_t bp)
{
    memset(k, 0, sizeof *k);
    k->vni = vni;
    memcpy(k->observer, observer, 16);
    k->proto = proto;
    int c = memcmp(a, b, 16);
    if (c > 0 || (c == 0 && ap > bp)) {
        const uint8_t *t = a;
        a = b;
        b = t;
        uint16_t tp = ap;
        ap = bp;
        bp = tp;
    }
    memcpy(k->a, a, 16);
    memcpy(k->b, b, 16);
    k->a_port = ap;
    k->b_port = bp;
}

static int search__cmp_sel(const void *x, const void *y)
{
    const sel_flow *a = x, *b = y;
    int c = memcmp(&a->k, &b->k, sizeof a->k);
    if (c) return c;
    return (a->first_ns > b->first_ns) - (a->first_ns < b->first_ns);
}

static const uint8_t search__no_observer[16];

/* The selected flows with key k: [*lo, return value) of *v, which is
 * sel_any when k has no observation point (VNI 0, no observer: a segment
 * indexed from its pcap, where they are not kept, or a local capture). */
static size_t search__sel_find(const search_t *s, const sel_key *k, const sel_flow **v, size_t *lo)
{
    sel_key any = *k;
    const sel_flow *arr = s->sel;
    if (!k->vni && !memcmp(k->observer, search__no_observer, 16)) arr = s->sel_any;
    *v = arr;
    size_t a = 0, b = s->nsel;
    while (a < b) {
        size_t m = (a + b) / 2;
        if (memcmp(&arr[m].k, &any, sizeof any) < 0) a = m + 1;
        else b = m;
    }
    *lo = a;
    while (b < s->nsel && !memcmp(&arr[b].k, &any, sizeof any)) b++;
    return b;
}

/* 1 when a selected flow in v[lo, hi) spans ts (first and last inclusive). */
static int search__sel_spans(const sel_flow *v, size_t lo, size_t hi, int64_t ts)
{
    for (size_t i = lo; i < hi; i++)
        if (ts >= v[i].first_ns && ts <= v[i].last_ns) return 1;
    return 0;
}

static int search__cmp_seg(const void *a, const void *b)
{
    const cursor *x = a, *y = b;
    if (x->ix->hdr->min_ts != y->ix->hdr->min_ts) return x->ix->hdr->min_ts < y->ix->hdr->min_ts ? -1 : 1;
    return (x->seq > y->seq) - (x->seq < y->seq);
}

/* A damaged index is rebuilt from its pcap and written back, so the next
 * search trusts it again; a failed write (a reader without write access to
 * the directory, a full disk) only means the next search scans again. The
 * segment may be evicted meanwhile: then the new index goes too. */
static void search__write_back(const segidx_t *ix, const char *idx, const char *pcap)
{
    int rc = segidx_write(ix, idx);
    if (rc < 0) {
        log_warn("cannot rewrite index %s: %s (the next search scans its segment again)", idx,
                 strerror(-rc));
        return;
    }
    struct stat sb;
    if (stat(pcap, &sb) < 0) unlink(idx);
}

static void search__damaged(search_t *s, const char *idx, const char *why)
{
    s->st.indexes_damaged++;
    log_warn("%s: %s; scanning its segment instead", idx, why);
}

/* The segment's index built from its pcap (NULL if the pcap is gone or not
 * ours); written back when rewrite is set. */
static segidx_t *search__rebuild(search_t *s, uint64_t seq, int rewrite)
{
    char pcap[4096], idx[4096];
    store_segment_path(s->dir, seq, "pcap", pcap, sizeof pcap);
    store_segment_path(s->dir, seq, "idx", idx, sizeof idx);
    int fd = open(pcap, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return NULL;
    struct stat sb;
    segidx_t *ix = NULL;
    segidx_builder_t *b = segidx_builder_new();
    segidx_builder_reset(b, seq);
    uint64_t valid;
    if (fstat(fd, &sb) == 0 && segidx_scan_pcap(b, fd, (uint64_t)sb.st_size, &valid) == 0) {
        ix = segidx_builder_finish(b, valid);
        if (rewrite) search__write_back(ix, idx, pcap);
    }
    segidx_builder_free(b);
    close(fd);
    return ix;
}

/* Map the segment's index, or build one in memory when there is none yet
 * (the open segment of a running daemon, or one a crash left) or when the
 * one on disk is damaged (counted in indexes_damaged: the answer says so,
 * and is still whole). Damage inside the sections is found later, chunk by
 * chunk, as the search reads them (search__activate). */
static segidx_t *search__index(search_t *s, uint64_t seq)
{
    char pcap[4096], idx[4096], err[256];
    store_segment_path(s->dir, seq, "pcap", pcap, sizeof pcap);
    struct stat sb;
    if (stat(pcap, &sb) < 0) return NULL; /* evicted meanwhile */
    store_segment_path(s->dir, seq, "idx", idx, sizeof idx);
    segidx_t *ix = segidx_open(idx, err, sizeof err);
    /* No index (open segment) or one of an older version: scan, quietly. */
    int damaged = !ix && errno == EBADMSG, rewrite = damaged || (!ix && errno == EPROTO);
    if (ix && ix->hdr->pcap_bytes <= (uint64_t)sb.st_size) return ix;
    if (ix) {
        snprintf(err, sizeof err, "index covers %" PRIu64 " bytes of a %" PRIu64 "-byte segment",
                 ix->hdr->pcap_bytes, (uint64_t)sb.st_size);
        damaged = rewrite = 1;
    }
    segidx_free(ix);
    if (damaged) search__damaged(s, idx, err);
    ix = search__rebuild(s, seq, rewrite);
    if (ix && !damaged) s->st.segments_unindexed++;
    return ix;
}

static int search__probe_hosts(const void *ce, const uint8_t lo[16], const uint8_t hi[16])
{
    return catalog_may_hold_hosts(ce, lo, hi);
}

static int search__probe_ports(const void *ce, uint16_t lo, uint16_t hi)
{
    return catalog_may_hold_ports(ce, lo, hi);
}

/* 0 when the segment's summary says it holds none of the selected flows
 * that span its time: an index flow is a selected one only when its
 * addresses, and for TCP and UDP its ports, are the flow's (odd packets are
 * judged by decoding them; a segment with any has no summary). A large
 * selection is not judged (its cost would grow as flows times segments). */
static int search__sel_may(const search_t *s, const catalog_entry *ce)
{
    if (!ce->bloom_bytes || (ce->flags & CATALOG_ODD) || s->nsel > SEARCH_SEL_JUDGE_MAX) return 1;
    for (size_t i = 0; i < s->nsel; i++) {
        const sel_flow *v = &s->sel[i];
        if (v->last_ns < ce->min_ts || v->first_ns > ce->max_ts) continue;
        if (!catalog_may_hold_hosts(ce, v->k.a, v->k.a) || !catalog_may_hold_hosts(ce, v->k.b, v->k.b))
            continue;
        if ((v->k.proto == 6 || v->k.proto == 17) &&
            (!catalog_may_hold_ports(ce, v->k.a_port, v->k.a_port) ||
             !catalog_may_hold_ports(ce, v->k.b_port, v->k.b_port)))
            continue;
        return 1;
    }
    return 0;
}

search_t *search_new(const char *dir, const search_query *q, char *err, size_t errlen)
{
    filter_t *f = filter_new(q->expr, err, errlen);
    if (!f) return NULL;
    uint64_t *seqs;
    long n = store_list_segments(dir, &seqs);
    if (n < 0) {
        snprintf(err, errlen, "cannot read data directory %s: %s", dir, strerror((int)-n));
        filter_free(f);
        return NULL;
    }
    search_t *s = xcalloc(1, sizeof *s);
    s->dir = xstrdup(dir);
    s->q = *q;
    s->q.flows = NULL;
    if (q->nflows) {
        s->sel = xmalloc(q->nflows * sizeof *s->sel);
        for (size_t i = 0; i < q->nflows; i++) {
            const search_flow *sf = &q->flows[i];
            search__sel_key(&s->sel[i].k, sf->vni, sf->observer, sf->proto, sf->a, sf->a_port, sf->b,
                            sf->b_port);
            s->sel[i].first_ns = sf->first_ns;
            s->sel[i].last_ns = sf->last_ns;
        }
        s->nsel = q->nflows;
        s->sel_any = xmalloc(s->nsel * sizeof *s->sel_any);
        for (size_t i = 0; i < s->nsel; i++) {
            s->sel_any[i] = s->sel[i];
            s->sel_any[i].k.vni = 0;
            memset(s->sel_any[i].k.observer, 0, 16);
        }
        qsort(s->sel, s->nsel, sizeof *s->sel, search__cmp_sel);
        qsort(s->sel_any, s->nsel, sizeof *s->sel_any, search__cmp_sel);
    }
    s->filter = f;
    s->es = exprscan_new(q->expr);
    s->st.index_used = exprscan_parsed(s->es);
    s->segs = xcalloc((size_t)n + 1, sizeof *s->segs);
    /* The catalog says which sealed segments lie outside the range, and by
     * their summaries which hold none of the expression's hosts or ports,
     * or none of the selected flows (drill-down): their indexes stay
     * closed. Without one, every index is opened. */
    catalog_t cat;
    char cerr[256];
    catalog_read_lines(dir, &cat, cerr, sizeof cerr); /* none or damaged: no entries */
    for (long i = 0; i < n; i++) {
        const catalog_entry *ce = catalog_find(cat.e, cat.n, seqs[i]);
        if (ce && (!ce->packets || ce->max_ts < q->from_ns || ce->min_ts >= q->to_ns)) {
            s->st.segments_skipped++;
            continue;
        }
        if (ce && !s->nsel) {
            exprscan_probe p = { search__probe_hosts, search__probe_ports, ce };
            if (!exprscan_may_have_candidates(s->es, &p)) {
                s->st.segments_pruned++;
                continue;
            }
        }
        if (ce && s->nsel && !search__sel_may(s, ce)) {
            s->st.segments_pruned++;
            continue;
        }
        segidx_t *ix = search__index(s, seqs[i]);
        if (!ix) continue;
        const segidx_hdr *h = ix->hdr;
        if (!h->npkts || h->max_ts < q->from_ns || h->min_ts >= q->to_ns) {
            segidx_free(ix);
            continue;
        }
        cursor *c = &s->segs[s->nsegs++];
        c->seq = seqs[i];
        c->ix = ix;
        c->fd = -1;
    }
    free(seqs);
    catalog_release(&cat);
    qsort(s->segs, s->nsegs, sizeof *s->segs, search__cmp_seg);
    s->st.segments = s->nsegs;
    s->heap = xcalloc(s->nsegs + 1, sizeof *s->heap);
    return s;
}

static const segidx_t *search__cmp_ix; /* qsort has no context argument in C11 */

static int search__cmp_ts(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    int64_t tx = search__cmp_ix->ts[x], ty = search__cmp_ix->ts[y];
    if (tx != ty) return tx < ty ? -1 : 1;
    return (x > y) - (x < y);
}

static int search__cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

/* Add flow f's packets to the candidates. Returns -1 when what it reads
 * fails its checksum. */
static int search__add_flow(search_t *s, cursor *c, uint32_t f, size_t *cap)
{
    const segidx_t *ix = c->ix;
    if (f >= ix->hdr->nflows) {
        s->st.bad_records++;
        return 0;
    }
    if (segidx_check(ix, &ix->flows[f], sizeof ix->flows[f]) < 0) return -1;
    if (!segidx_flow_ok(ix, f)) {
        s->st.bad_records++;
        return 0;
    }
    const segidx_flow *fl = &ix->flows[f];
    /* No flow is empty in an index we wrote; a damaged one adds nothing (and
     * c->cand may still be NULL, where even + 0 is undefined). */
    if (!fl->packets) return 0;
    if (fl->last_ns < s->q.from_ns || fl->first_ns >= s->q.to_ns) return 0;
    if (exprscan_eval(s->es, &fl->key) == ES_FALSE) return 0;
    if (segidx_check(ix, ix->posts + fl->post_start, fl->packets * sizeof *ix->posts) < 0) return -1;
    s->st.flows_selected++;
    xgrow((void **)&c->cand, cap, c->ncand + fl->packets, sizeof *c->cand);
    memcpy(c->cand + c->ncand, ix->posts + fl->post_start, fl->packets * sizeof *c->cand);
    c->ncand += fl->packets;
    return 0;
}

static const uint8_t *search__read(cursor *c, uint64_t off, int *err);

/* Candidates of a search for selected flows (search_query.flows): the
 * packets of each index flow whose key is a selected flow's (either way),
 * inside its span; and of the odd flows (flowkey.h), each packet read and
 * decoded as the analysis decodes it, kept when its addresses, ports and
 * protocol are a selected flow's at that time. Needs c->fd and c->win.
 * Returns -1 when an index chunk fails its checksum, -errno when reading
 * the segment fails. */
static int search__sel_candidates(search_t *s, cursor *c, size_t *cap)
{
    const segidx_t *ix = c->ix;
    const segidx_hdr *h = ix->hdr;
    for (uint64_t f = 0; f < h->nflows; f++) {
        if (segidx_check(ix, &ix->flows[f], sizeof ix->flows[f]) < 0) return SEARCH__DAMAGED;
        if (!segidx_flow_ok(ix, f)) {
            s->st.bad_records++;
            continue;
        }
        const segidx_flow *fl = &ix->flows[f];
        if (!fl->packets || fl->last_ns < s->q.from_ns || fl->first_ns >= s->q.to_ns) continue;
        const flowkey_t *k = &fl->key;
        size_t lo = 0, hi = 0;
        const sel_flow *v = s->sel;
        if (k->kind != FK_ODD) {
            sel_key sk;
            search__sel_key(&sk, k->vni, k->observer, k->proto, k->src, k->sport, k->dst, k->dport);
            hi = search__sel_find(s, &sk, &v, &lo);
            if (lo == hi) continue;
        }
        const uint32_t *posts = ix->posts + fl->post_start;
        if (segidx_check(ix, posts, fl->packets * sizeof *posts) < 0) return SEARCH__DAMAGED;
        s->st.flows_selected++;
        for (uint32_t i = 0; i < fl->packets; i++) {
            uint32_t p = posts[i];
            if (p >= h->npkts) {
                s->st.bad_records++;
                continue;
            }
            if (segidx_check(ix, &ix->ts[p], sizeof *ix->ts) < 0 ||
                segidx_check(ix, &ix->off[p], sizeof *ix->off) < 0)
                return SEARCH__DAMAGED;
            int64_t ts = ix->ts[p];
            if (ts < s->q.from_ns || ts >= s->q.to_ns) continue;
            if (k->kind == FK_ODD) {
                int err = 0;
                const uint8_t *rec = search__read(c, ix->off[p], &err);
                if (err) return err;
                pcapio_rec_hdr rh;
                if (!rec || (memcpy(&rh, rec, sizeof rh), rh.caplen > rh.origlen) ||
                    (int64_t)rh.ts_sec * 1000000000LL + rh.ts_frac != ts) {
                    s->st.bad_records++;
                    continue;
                }
                pkt_info_t pi;
                pkt_ana a;
                decode_frame(rec + PCAPIO_REC_HDR, rh.caplen, rh.origlen, &pi);
                flowtab_ana_from(&a, &pi, 0, NULL);
                if (!a.usable) continue;
                sel_key sk;
                search__sel_key(&sk, k->vni, k->observer, a.proto, pkt_ana_src(&a), pkt_ana_sport(&a),
                                pkt_ana_dst(&a), pkt_ana_dport(&a));
                hi = search__sel_find(s, &sk, &v, &lo);
            }
            if (!search__sel_spans(v, lo, hi, ts)) continue;
            xgrow((void **)&c->cand, cap, c->ncand + 1, sizeof *c->cand);
            c->cand[c->ncand++] = p;
        }
    }
    return 0;
}

/* Fill c->cand with the ordinals to read, in (time, ordinal) order, reading
 * only index chunks that pass their checksums: then search_next trusts
 * ts[] and off[] of every candidate. Returns 0, SEARCH__DAMAGED at the
 * first chunk that does not pass (c->cand is then incomplete: the caller
 * rebuilds the index and comes again), or -errno (a read of a selection). */
static int search__candidates(search_t *s, cursor *c)
{
    const segidx_t *ix = c->ix;
    const segidx_hdr *h = ix->hdr;
    size_t cap = 0;
    uint32_t *flows = NULL;
    int rc = SEARCH__DAMAGED;
    /* The lookups verify what they read of the host and port tables. */
    long nf = s->nsel ? 0 : exprscan_candidates(s->es, ix, &flows);
    if (nf == -2) return SEARCH__DAMAGED;
    int whole = h->min_ts >= s->q.from_ns && h->max_ts < s->q.to_ns;
    if (s->nsel) {
        rc = search__sel_candidates(s, c, &cap);
        if (rc != 0) goto out;
        rc = SEARCH__DAMAGED;
        if (c->ncand > 1) qsort(c->cand, c->ncand, sizeof *c->cand, search__cmp_u32);
    } else if (filter_is_all(s->filter) || !exprscan_parsed(s->es)) {
        /* No usable terms: every packet in range, block by block. */
        if (segidx_check(ix, ix->blocks, h->nblocks * sizeof *ix->blocks) < 0) goto out;
        c->cand = xmalloc((h->npkts ? h->npkts : 1) * sizeof *c->cand);
        for (uint64_t b = 0; b < h->nblocks; b++) {
            if (!whole && (ix->blocks[b].max_ts < s->q.from_ns || ix->blocks[b].min_ts >= s->q.to_ns))
                continue;
            uint64_t end = (b + 1) * SEGIDX_BLOCK < h->npkts ? (b + 1) * SEGIDX_BLOCK : h->npkts;
            for (uint64_t i = b * SEGIDX_BLOCK; i < end; i++) c->cand[c->ncand++] = (uint32_t)i;
        }
        s->st.flows_selected += h->nflows;
    } else {
        /* Odd flows are always read (flowkey.h); then the lookups' picks, or
         * every flow judged one by one when the lookups had nothing. */
        uint32_t f = 0;
        for (; f < h->nflows; f++) {
            if (segidx_check(ix, &ix->flows[f], sizeof ix->flows[f]) < 0) goto out;
            if (ix->flows[f].key.kind != FK_ODD) break;
            if (search__add_flow(s, c, f, &cap) < 0) goto out;
        }
        if (nf < 0) {
            for (; f < h->nflows; f++)
                if (search__add_flow(s, c, f, &cap) < 0) goto out;
        } else {
            for (long i = 0; i < nf; i++) {
                if (flows[i] >= h->nflows) continue;
                if (segidx_check(ix, &ix->flows[flows[i]], sizeof *ix->flows) < 0) goto out;
                if (ix->flows[flows[i]].key.kind != FK_ODD && search__add_flow(s, c, flows[i], &cap) < 0)
                    goto out;
            }
        }
        if (c->ncand > 1) qsort(c->cand, c->ncand, sizeof *c->cand, search__cmp_u32);
    }
    /* Per-packet time filter, and a bound check against a corrupt index. */
    size_t o = 0;
    for (size_t i = 0; i < c->ncand; i++) {
        uint32_t p = c->cand[i];
        if (p >= h->npkts) {
            s->st.bad_records++;
            continue;
        }
        if (segidx_check(ix, &ix->ts[p], sizeof *ix->ts) < 0 ||
            segidx_check(ix, &ix->off[p], sizeof *ix->off) < 0)
            goto out;
        if (whole || (ix->ts[p] >= s->q.from_ns && ix->ts[p] < s->q.to_ns)) c->cand[o++] = p;
    }
    c->ncand = o;
    if (!(h->flags & SEGIDX_F_TS_SORTED) && c->ncand > 1) {
        search__cmp_ix = ix;
        qsort(c->cand, c->ncand, sizeof *c->cand, search__cmp_ts);
    }
    c->dense = c->ncand * 32 > h->npkts;
    rc = 0;
out:
    free(flows);
    return rc;
}

static void search__release(cursor *c)
{
    free(c->cand);
    free(c->win);
    if (c->fd >= 0) close(c->fd);
    segidx_free(c->ix);
    c->cand = NULL;
    c->win = NULL;
    c->fd = -1;
    c->ix = NULL;
}

static int search__open(search_t *s, cursor *c)
{
    char path[4096];
    store_segment_path(s->dir, c->seq, "pcap", path, sizeof path);
    c->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (c->fd < 0) {
        log_warn("segment %s vanished during the search (evicted?)", path);
        return -1;
    }
    c->win = xmalloc(SEARCH_WIN);
    return 0;
}

/* Make c ready to read: its candidates and its file. Returns 1, 0 when it
 * has nothing to give (released), or -errno when reading it failed. */
static int search__activate(search_t *s, cursor *c)
{
    /* A selection reads odd packets while it picks: the file first. */
    if (s->nsel && search__open(s, c) < 0) goto none;
    int rc = search__candidates(s, c);
    if (rc == SEARCH__DAMAGED) {
        /* A chunk failed: this segment is answered from its pcap instead. */
        char idx[4096];
        store_segment_path(s->dir, c->seq, "idx", idx, sizeof idx);
        search__damaged(s, idx, c->ix->chk->damage);
        free(c->cand);
        c->cand = NULL;
        c->ncand = 0;
        segidx_free(c->ix);
        c->ix = search__rebuild(s, c->seq, 1);
        if (!c->ix) {
            log_warn("segment %" PRIu64 " vanished during the search (evicted?)", c->seq);
            goto none;
        }
        rc = search__candidates(s, c); /* built from the packets: no checksums to fail */
    }
    if (rc < 0) {
        search__release(c);
        return rc;
    }
    if (!c->ncand) goto none;
    if (c->fd < 0 && search__open(s, c) < 0) goto none;
    return 1;
none:
    search__release(c);
    return 0;
}

static int64_t search__head_ts(const cursor *c) { return c->ix->ts[c->cand[c->i]]; }

static int search__less(const cursor *a, const cursor *b)
{
    int64_t ta = search__head_ts(a), tb = search__head_ts(b);
    if (ta != tb) return ta < tb;
    if (a->seq != b->seq) return a->seq < b->seq;
    return a->cand[a->i] < b->cand[b->i];
}

static void search__sift_down(search_t *s, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < s->nheap && search__less(s->heap[l], s->heap[m])) m = l;
        if (r < s->nheap && search__less(s->heap[r], s->heap[m])) m = r;
        if (m == i) return;
        cursor *t = s->heap[i];
        s->heap[i] = s->heap[m];
        s->heap[m] = t;
        i = m;
    }
}

static void search__push(search_t *s, cursor *c)
{
    size_t i = s->nheap++;
    s->heap[i] = c;
    while (i && search__less(s->heap[i], s->heap[(i - 1) / 2])) {
        cursor *t = s->heap[i];
        s->heap[i] = s->heap[(i - 1) / 2];
        s->heap[(i - 1) / 2] = t;
        i = (i - 1) / 2;
    }
}

/* Read the record at off into the cursor's window; returns a pointer to its
 * header or NULL (short file / I/O error). */
static const uint8_t *search__read(cursor *c, uint64_t off, int *err)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        if (off >= c->win_off && off + PCAPIO_REC_HDR <= c->win_off + c->win_len) {
            pcapio_rec_hdr h;
            memcpy(&h, c->win + (off - c->win_off), sizeof h);
            if (h.caplen > PCAPIO_SNAPLEN) return NULL;
            if (off + PCAPIO_REC_HDR + h.caplen <= c->win_off + c->win_len)
                return c->win + (off - c->win_off);
        }
        size_t want = c->dense || attempt ? SEARCH_WIN : SEARCH_SMALL_READ;
        ssize_t n;
        do n = pread(c->fd, c->win, want, (off_t)off);
        while (n < 0 && errno == EINTR);
        if (n < 0) {
            *err = -errno;
            return NULL;
        }
        c->win_off = off;
        c->win_len = (size_t)n;
    }
    return NULL;
}

int search_next(search_t *s, search_pkt *p)
{
    if (s->done) {
        search__release(s->done);
        s->done = NULL;
    }
    for (;;) {
        if (s->q.max_packets && s->st.packets >= s->q.max_packets) {
            s->st.limited = 1;
            return 0;
        }
        /* Activate every segment that may hold a packet at or before the head. */
        while (s->next < s->nsegs &&
               (!s->nheap || s->segs[s->next].ix->hdr->min_ts <= search__head_ts(s->heap[0]))) {
            cursor *c = &s->segs[s->next++];
            int rc = search__activate(s, c);
            if (rc < 0) return rc;
            if (rc) search__push(s, c);
        }
        if (!s->nheap) return 0;
        cursor *c = s->heap[0];
        uint32_t ord = c->cand[c->i];
        int64_t want_ts = c->ix->ts[ord];
        int err = 0;
        const uint8_t *rec = search__read(c, c->ix->off[ord], &err);
        c->i++;
        if (c->i == c->ncand) {
            s->heap[0] = s->heap[--s->nheap];
            if (s->nheap) search__sift_down(s, 0);
        } else {
            search__sift_down(s, 0);
        }
        if (err) return err;
        s->st.candidates++;
        pcapio_rec_hdr h;
        if (!rec) {
            s->st.bad_records++;
            goto next;
        }
        memcpy(&h, rec, sizeof h);
        if ((int64_t)h.ts_sec * 1000000000LL + h.ts_frac != want_ts || h.caplen > h.origlen) {
            s->st.bad_records++;
            goto next;
        }
        if (!filter_match(s->filter, rec + PCAPIO_REC_HDR, h.caplen, h.origlen)) goto next;
        if (s->q.max_bytes && s->st.bytes + h.caplen > s->q.max_bytes) {
            s->st.limited = 1;
            return 0;
        }
        p->ts_ns = want_ts;
        p->caplen = h.caplen;
        p->origlen = h.origlen;
        p->data = rec + PCAPIO_REC_HDR;
        p->segment = c->seq;
        s->st.packets++;
        s->st.bytes += h.caplen;
        if (c->i == c->ncand) s->done = c; /* p->data points into its window */
        return 1;
    next:
        if (c->i == c->ncand) search__release(c);
    }
}

void search_get_stats(const search_t *s, search_stats *out) { *out = s->st; }

void search_free(search_t *s)
{
    if (!s) return;
    for (size_t i = 0; i < s->nsegs; i++) search__release(&s->segs[i]);
    free(s->segs);
    free(s->heap);
    free(s->sel);
    free(s->sel_any);
    filter_free(s->filter);
    exprscan_free(s->es);
    free(s->dir);
    free(s);
}
