/* merge.c - k-way merge of time-ordered packet streams (see merge.h).
 *
 * A binary heap of the streams that have a packet at hand, keyed by
 * (timestamp, stream index). The packet returned last stays at the top of
 * the heap until the next call advances its stream, so the data it points
 * to is never released under the caller.
 */
#include "merge.h"

#include "decode.h"
#include "dedup.h"
#include "pcapio.h"
#include "xmalloc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define DEDUP_SLOTS (1u << 16)  /* packets remembered for dedup */

typedef struct merge_chunk {
    const uint8_t *recs;
    size_t len, off;
    void *owner;
    struct merge_chunk *next;
} merge_chunk;

typedef struct merge_stream {
    merge_chunk *head, *tail;
    int64_t ts;           /* of the packet at head->off, when has_pkt */
    int64_t last_pushed;  /* newest timestamp pushed, for the disorder count */
    int has_pkt, ended;
} merge_stream;

struct merge {
    int n;
    merge_stream *s;
    int *heap, nheap;
    int waiting;          /* streams neither ended nor holding a packet */
    int advance;          /* stream of the packet returned last, or -1 */
    merge_release_fn release;
    void *ctx;
    int64_t dedup_ns;
    dedup_t *dedup;
    merge_stats st;
};

merge_t *merge_new(int nstreams, merge_release_fn release, void *ctx)
{
    merge_t *m = xcalloc(1, sizeof *m);
    m->n = nstreams;
    m->s = xcalloc((size_t)(nstreams ? nstreams : 1), sizeof *m->s);
    m->heap = xcalloc((size_t)(nstreams ? nstreams : 1), sizeof *m->heap);
    m->waiting = nstreams;
    m->advance = -1;
    m->release = release;
    m->ctx = ctx;
    for (int i = 0; i < nstreams; i++) m->s[i].last_pushed = INT64_MIN;
    return m;
}

void merge_set_dedup(merge_t *m, int64_t window_ns)
{
    m->dedup_ns = window_ns;
    if (window_ns > 0 && !m->dedup) m->dedup = dedup_new(DEDUP_SLOTS, window_ns);
}

static inline void merge__hdr(const uint8_t *r, int64_t *ts, uint32_t *caplen, uint32_t *origlen)
{
    uint32_t h[4];
    memcpy(h, r, sizeof h);
    *ts = (int64_t)h[0] * 1000000000LL + h[1];
    *caplen = h[2];
    *origlen = h[3];
}

static inline int merge__less(const merge_t *m, int a, int b)
{
    const merge_stream *x = &m->s[a], *y = &m->s[b];
    return x->ts < y->ts || (x->ts == y->ts && a < b);
}

static void merge__sift_down(merge_t *m, int i)
{
    for (;;) {
        int l = 2 * i + 1, r = l + 1, best = i;
        if (l < m->nheap && merge__less(m, m->heap[l], m->heap[best])) best = l;
        if (r < m->nheap && merge__less(m, m->heap[r], m->heap[best])) best = r;
        if (best == i) return;
        int t = m->heap[i];
        m->heap[i] = m->heap[best];
        m->heap[best] = t;
        i = best;
    }
}

static void merge__heap_push(merge_t *m, int stream)
{
    int i = m->nheap++;
    m->heap[i] = stream;
    while (i > 0) {
        int parent = (i - 1) / 2;
        if (!merge__less(m, m->heap[i], m->heap[parent])) break;
        int t = m->heap[i];
        m->heap[i] = m->heap[parent];
        m->heap[parent] = t;
        i = parent;
    }
}

/* Load the stream's packet at hand from its first chunk. */
static void merge__load(merge_stream *s)
{
    uint32_t cl, ol;
    merge__hdr(s->head->recs + s->head->off, &s->ts, &cl, &ol);
    s->has_pkt = 1;
}

int merge_push(merge_t *m, int stream, const uint8_t *recs, size_t len, void *owner)
{
    merge_stream *s = &m->s[stream];
    /* Walk the headers once: whole records only, each one plausible. */
    size_t off = 0;
    int64_t prev = s->last_pushed;
    while (off < len) {
        int64_t ts;
        uint32_t cl, ol;
        if (len - off < PCAPIO_REC_HDR) break;
        merge__hdr(recs + off, &ts, &cl, &ol);
        if (cl > PCAPIO_SNAPLEN || len - off - PCAPIO_REC_HDR < cl) break;
        if (ts < prev) m->st.disorder++;
        prev = ts;
        off += PCAPIO_REC_HDR + cl;
    }
    if (off != len || len == 0) {
        if (len) m->st.bad_chunks++;
        if (m->release) m->release(m->ctx, stream, owner);
        return len ? -EPROTO : 0;
    }
    s->last_pushed = prev;
    merge_chunk *c = xmalloc(sizeof *c);
    *c = (merge_chunk){ recs, len, 0, owner, NULL };
    if (s->tail) s->tail->next = c;
    else s->head = c;
    s->tail = c;
    m->st.chunks_held++;
    m->st.bytes_held += len;
    if (m->st.bytes_held > m->st.bytes_held_max) m->st.bytes_held_max = m->st.bytes_held;
    if (!s->has_pkt && stream != m->advance) {
        merge__load(s);
        if (!s->ended) m->waiting--;
        merge__heap_push(m, stream);
    }
    return 0;
}

void merge_end(merge_t *m, int stream)
{
    merge_stream *s = &m->s[stream];
    if (s->ended) return;
    s->ended = 1;
    if (!s->has_pkt && stream != m->advance) m->waiting--;
}

/* Move the stream of the packet returned last past it; release a chunk
 * that is done. The stream is at the top of the heap. */
static void merge__advance(merge_t *m)
{
    int si = m->advance;
    merge_stream *s = &m->s[si];
    merge_chunk *c = s->head;
    uint32_t cl = 0;
    memcpy(&cl, c->recs + c->off + 8, 4);
    c->off += PCAPIO_REC_HDR + cl;
    m->advance = -1;
    if (c->off >= c->len) {
        s->head = c->next;
        if (!s->head) s->tail = NULL;
        m->st.chunks_held--;
        m->st.bytes_held -= c->len;
        void *owner = c->owner;
        free(c);
        if (m->release) m->release(m->ctx, si, owner);
    }
    if (s->head) {
        merge__load(s);
        merge__sift_down(m, 0);
        return;
    }
    s->has_pkt = 0;
    m->heap[0] = m->heap[--m->nheap];
    if (m->nheap) merge__sift_down(m, 0);
    if (!s->ended) m->waiting++;
}

/* 1 when p repeats a packet returned within the window (then it is dropped):
 * the same invariant bytes as the broker's dedup (dedup.h). */
static int merge__duplicate(merge_t *m, const merge_pkt *p)
{
    pkt_info_t pi;
    decode_frame(p->data, p->caplen, p->origlen, &pi);
    return dedup_check(m->dedup, dedup_key(m->dedup, p->data, p->caplen, &pi), p->ts_ns);
}

int merge_next(merge_t *m, merge_pkt *p, int *waiting)
{
    for (;;) {
        if (m->advance >= 0) merge__advance(m);
        if (m->waiting > 0) {
            for (int i = 0; i < m->n; i++)
                if (!m->s[i].has_pkt && !m->s[i].ended) {
                    *waiting = i;
                    break;
                }
            return 0;
        }
        if (!m->nheap) return -1;
        int si = m->heap[0];
        merge_stream *s = &m->s[si];
        const uint8_t *r = s->head->recs + s->head->off;
        merge__hdr(r, &p->ts_ns, &p->caplen, &p->origlen);
        p->rec = r;
        p->data = r + PCAPIO_REC_HDR;
        p->stream = si;
        m->advance = si;
        if (m->dedup_ns > 0 && merge__duplicate(m, p)) {
            m->st.duplicates++;
            continue;
        }
        m->st.packets++;
        m->st.bytes += p->caplen;
        return 1;
    }
}

void merge_get_stats(const merge_t *m, merge_stats *out) { *out = m->st; }

void merge_free(merge_t *m)
{
    if (!m) return;
    for (int i = 0; i < m->n; i++) {
        merge_chunk *c = m->s[i].head;
        while (c) {
            merge_chunk *next = c->next;
            if (m->release) m->release(m->ctx, i, c->owner);
            free(c);
            c = next;
        }
    }
    dedup_free(m->dedup);
    free(m->heap);
    free(m->s);
    free(m);
}
