/* appdrv.h - a stream driver for the application parsers' unit tests and
 * fuzz targets: what the stream layer (recorder/appana.c) does for one flow,
 * after reassembly, as appstream.h defines it. Per direction it keeps the
 * bytes the parser has not consumed with the time of the packet that
 * carried each; a "packet" appends bytes and calls parse with the view
 * (done_ns the packet's time); a direction that stays stuck at `bound`
 * bytes gets a gap and loses what it held, as the layer's bound does; end
 * ends the flow (as APP_PARSE_DONE does, after which nothing is looked at). Records are kept (up to cap) with the client direction
 * each was emitted with, and shown to `hook` when one is set.
 */
#ifndef MSCOPE_APPDRV_H
#define MSCOPE_APPDRV_H

#include "appstream.h"

#include <stdlib.h>
#include <string.h>

typedef struct appdrv_dir {
    uint8_t *p;
    int64_t *ts;
    size_t len, cap;
    int fin;
} appdrv_dir;

typedef struct appdrv {
    const app_parser *ps;
    void *state;
    app_counts counts;
    appdrv_dir d[2];
    size_t bound;   /* the layer's bound per direction */
    apprec *recs;   /* the first cap records */
    int *client_dir;
    int cap, nrec;  /* nrec: all emitted, kept or not */
    int bad_used;   /* parse said it consumed more than the view held */
    int done;       /* parse said APP_PARSE_DONE: end was called, the rest is ignored */
    int layer_gaps; /* gaps the bound caused */
    void (*hook)(void *hook_ctx, int client_dir, const apprec *r);
    void *hook_ctx;
} appdrv;

static void appdrv__emit(void *ctx, int client_dir, apprec *r)
{
    appdrv *x = ctx;
    if (x->nrec < x->cap) {
        x->recs[x->nrec] = *r;
        x->client_dir[x->nrec] = client_dir;
    }
    x->nrec++;
    if (x->hook) x->hook(x->hook_ctx, client_dir, r);
}

static int64_t appdrv__ts(const void *ctx, size_t off) { return ((const appdrv_dir *)ctx)->ts[off]; }

/* Aborts on out-of-memory: a test has nothing better to do. */
static void *appdrv__realloc(void *p, size_t n)
{
    p = realloc(p, n ? n : 1);
    if (!p) abort();
    return p;
}

static void appdrv_init(appdrv *x, const app_parser *ps, int cap, size_t bound)
{
    memset(x, 0, sizeof *x);
    x->ps = ps;
    x->bound = bound;
    x->cap = cap;
    x->state = appdrv__realloc(NULL, ps->state_size);
    x->recs = appdrv__realloc(NULL, (size_t)cap * sizeof(apprec));
    x->client_dir = appdrv__realloc(NULL, (size_t)cap * sizeof(int));
    ps->init(x->state);
}

static void appdrv_free(appdrv *x)
{
    free(x->state);
    free(x->recs);
    free(x->client_dir);
    for (int i = 0; i < 2; i++) free(x->d[i].p), free(x->d[i].ts);
}

static app_out appdrv__out(appdrv *x)
{
    app_out out = { .emit = appdrv__emit, .ctx = x, .counts = &x->counts };
    return out;
}

/* The layer's gap: counted, the parser is told, the direction's bytes are
 * dropped. */
static void appdrv_gap(appdrv *x, int dir)
{
    if (x->done) return;
    x->counts.gaps++;
    x->ps->gap(x->state, dir);
    x->d[dir].len = 0;
}

static void appdrv__call(appdrv *x, int dir, int64_t done_ns)
{
    appdrv_dir *d = &x->d[dir];
    app_view v = { .p = d->p, .len = d->len, .done_ns = done_ns, .dir = dir, .fin = d->fin,
                   .ts_at = appdrv__ts, .ts_ctx = d };
    app_out out = appdrv__out(x);
    size_t used = x->ps->parse(x->state, &v, &out);
    if (used == APP_PARSE_DONE) {
        /* As the layer: end, and the flow's later packets are not looked at. */
        x->ps->end(x->state, &out);
        x->done = 1;
        x->d[0].len = x->d[1].len = 0;
        return;
    }
    if (used > d->len) {
        x->bad_used++;
        used = d->len;
    }
    if (used) {
        memmove(d->p, d->p + used, d->len - used);
        memmove(d->ts, d->ts + used, (d->len - used) * sizeof *d->ts);
        d->len -= used;
    }
    if (d->len >= x->bound) {
        x->layer_gaps++;
        appdrv_gap(x, dir);
    }
}

/* One packet of n bytes in direction dir at time ts. */
static void appdrv_send(appdrv *x, int dir, const void *p, size_t n, int64_t ts)
{
    appdrv_dir *d = &x->d[dir];
    if (x->done) return;
    if (d->len + n > d->cap) {
        d->cap = (d->len + n) * 2;
        d->p = appdrv__realloc(d->p, d->cap);
        d->ts = appdrv__realloc(d->ts, d->cap * sizeof *d->ts);
    }
    if (n) memcpy(d->p + d->len, p, n);
    for (size_t i = 0; i < n; i++) d->ts[d->len + i] = ts;
    d->len += n;
    appdrv__call(x, dir, ts);
}

/* The direction ends (FIN): the parser sees its view once more with fin. */
static void appdrv_fin(appdrv *x, int dir, int64_t ts)
{
    if (x->done) return;
    x->d[dir].fin = 1;
    appdrv__call(x, dir, ts);
}

static void appdrv_end(appdrv *x)
{
    if (x->done) return;
    app_out out = appdrv__out(x);
    x->ps->end(x->state, &out);
}

#endif
