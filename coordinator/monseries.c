/* monseries.c - per-minute series of monitors (see monseries.h).
 *
 * DESIGN: one open-addressing table keyed by (monitor id, minute), filled on
 * the loop thread and handed whole to a database job, which adds every row
 * with an upsert (sums add, histograms add element-wise in SQL), so rows
 * from several flushes - or several coordinators' restarts - of one minute
 * add up. The column list is one table (monseries_cols) read by the insert,
 * the update and the query.
 */
#include "monseries.h"

#include "latency.h"

#include "xmalloc.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MIN_NS 60000000000LL
#define MAX_ACTIVE_MINUTES 1440

/* The summed columns, in the order of the row's values. */
enum {
    V_C2S_BYTES, V_S2C_BYTES, V_C2S_PACKETS, V_S2C_PACKETS, V_STARTED, V_FINISHED, V_ACTIVE,
    V_RETRANS, V_ZWIN, V_RESETS, V_HS_FAILED, V_HS_COUNT, V_HS_SUM, V_RTT_COUNT, V_RTT_SUM,
    V_APP_COUNT, V_APP_SUM, V_N
};
static const char *const monseries_cols[V_N] = {
    "c2s_bytes", "s2c_bytes", "c2s_packets", "s2c_packets", "flows_started", "flows_finished",
    "flows_active", "retransmissions", "zero_windows", "resets", "handshakes_failed", "hs_count",
    "hs_sum", "rtt_count", "rtt_sum", "app_count", "app_sum",
};
enum { H_HS, H_RTT, H_APP, H_N };
static const char *const monseries_hists[H_N] = { "hs_hist", "rtt_hist", "app_hist" };

typedef struct monseries_row {
    int64_t id, minute_ns;
    int used;
    int64_t v[V_N];
    int64_t hist[H_N][LATENCY_BUCKETS];
} monseries_row;

struct monseries {
    monseries_row *slot;
    size_t cap, n;
};

monseries_t *monseries_new(void) { return xcalloc(1, sizeof(monseries_t)); }

void monseries_free(monseries_t *s)
{
    if (!s) return;
    free(s->slot);
    free(s);
}

size_t monseries_rows(const monseries_t *s) { return s->n; }


static uint64_t monseries__hash(int64_t id, int64_t minute)
{
    uint64_t h = (uint64_t)id * 0x9e3779b97f4a7c15ULL ^ (uint64_t)minute * 0xff51afd7ed558ccdULL;
    return h ^ (h >> 29);
}

static monseries_row *monseries__row(monseries_t *s, int64_t id, int64_t minute_ns)
{
    if ((s->n + 1) * 2 > s->cap) { /* grow: keep the load under one half */
        monseries_row *old = s->slot;
        size_t oldcap = s->cap;
        s->cap = s->cap ? s->cap * 2 : 64;
        s->slot = xcalloc(s->cap, sizeof *s->slot);
        for (size_t i = 0; i < oldcap; i++) {
            if (!old[i].used) continue;
            size_t j = monseries__hash(old[i].id, old[i].minute_ns) & (s->cap - 1);
            while (s->slot[j].used) j = (j + 1) & (s->cap - 1);
            s->slot[j] = old[i];
        }
        free(old);
    }
    size_t j = monseries__hash(id, minute_ns) & (s->cap - 1);
    while (s->slot[j].used && (s->slot[j].id != id || s->slot[j].minute_ns != minute_ns))
        j = (j + 1) & (s->cap - 1);
    if (!s->slot[j].used) {
        s->slot[j].used = 1;
        s->slot[j].id = id;
        s->slot[j].minute_ns = minute_ns;
        s->n++;
    }
    return &s->slot[j];
}

/* *acc += v, saturating (records passed wire.c's checks; sums of many may not fit). */
static void monseries__sadd(int64_t *acc, int64_t v)
{
    if (__builtin_add_overflow(*acc, v, acc)) *acc = v < 0 ? INT64_MIN : INT64_MAX;
}

static int64_t monseries__minute(int64_t ns)
{
    int64_t q = ns / MIN_NS;
    if (ns % MIN_NS < 0) q--;
    return q * MIN_NS;
}

void monseries_add(monseries_t *s, int64_t id, const Mirrorscope__FlowRecord *r)
{
    static const Mirrorscope__Direction zd = MIRRORSCOPE__DIRECTION__INIT;
    static const Mirrorscope__Stat zs = MIRRORSCOPE__STAT__INIT;
    static const Mirrorscope__Handshake zh = MIRRORSCOPE__HANDSHAKE__INIT;
    const Mirrorscope__Direction *c = r->c2s ? r->c2s : &zd, *sv = r->s2c ? r->s2c : &zd;
    const Mirrorscope__Stat *cr = c->rtt_ns ? c->rtt_ns : &zs, *sr = sv->rtt_ns ? sv->rtt_ns : &zs;
    const Mirrorscope__Stat *a = r->app_response_ns ? r->app_response_ns : &zs;
    const Mirrorscope__Handshake *h = r->handshake ? r->handshake : &zh;
    int64_t first = monseries__minute(r->first_ns), last = monseries__minute(r->last_ns);
    if (last < first) last = first;

    monseries_row *m = monseries__row(s, id, first);
    monseries__sadd(&m->v[V_C2S_BYTES], (int64_t)c->ip_bytes);
    monseries__sadd(&m->v[V_S2C_BYTES], (int64_t)sv->ip_bytes);
    monseries__sadd(&m->v[V_C2S_PACKETS], (int64_t)c->packets);
    monseries__sadd(&m->v[V_S2C_PACKETS], (int64_t)sv->packets);
    m->v[V_STARTED]++;
    monseries__sadd(&m->v[V_RETRANS], (int64_t)c->retransmissions + sv->retransmissions);
    monseries__sadd(&m->v[V_ZWIN], (int64_t)c->zero_windows + sv->zero_windows);
    monseries__sadd(&m->v[V_RESETS], (int64_t)c->rsts + sv->rsts);
    /* The SYN seen, the SYN/ACK or the last ACK not: the columns' own
     * definition (hs_seen bits 1, 2, 4), so SQL over `flows` agrees. */
    if (r->proto == 6 && (h->seen & 1) && (h->seen & 7) != 7) m->v[V_HS_FAILED]++;
    if (h->seen & 8) {
        m->v[V_HS_COUNT]++;
        monseries__sadd(&m->v[V_HS_SUM], h->initial_rtt_ns);
        m->hist[H_HS][latency_bucket(h->initial_rtt_ns)]++;
    }
    int64_t rcnt = (int64_t)(cr->count + sr->count), rsum = cr->sum + sr->sum;
    if (rcnt > 0) {
        monseries__sadd(&m->v[V_RTT_COUNT], rcnt);
        monseries__sadd(&m->v[V_RTT_SUM], rsum);
        m->hist[H_RTT][latency_bucket(rsum / rcnt)]++;
    }
    if (a->count > 0) {
        monseries__sadd(&m->v[V_APP_COUNT], (int64_t)a->count);
        monseries__sadd(&m->v[V_APP_SUM], a->sum);
        m->hist[H_APP][latency_bucket(a->sum / (int64_t)a->count)]++;
    }
    monseries__row(s, id, last)->v[V_FINISHED]++;
    int64_t from = last - first >= MAX_ACTIVE_MINUTES * MIN_NS ? last - (MAX_ACTIVE_MINUTES - 1) * MIN_NS
                                                               : first;
    for (int64_t t = from; t <= last; t += MIN_NS) monseries__row(s, id, t)->v[V_ACTIVE]++;
}

void monseries_merge(monseries_t *into, const monseries_t *from)
{
    for (size_t i = 0; i < from->cap; i++) {
        const monseries_row *f = &from->slot[i];
        if (!f->used) continue;
        monseries_row *t = monseries__row(into, f->id, f->minute_ns);
        for (int k = 0; k < V_N; k++) monseries__sadd(&t->v[k], f->v[k]);
        for (int h = 0; h < H_N; h++)
            for (int b = 0; b < LATENCY_BUCKETS; b++) t->hist[h][b] += f->hist[h][b];
    }
}

int monseries_write(db_t *db, const monseries_t *s, int *retry, char *err, size_t errlen)
{
    char sql[8192], state[6] = "";
    size_t n = (size_t)snprintf(sql, sizeof sql, "INSERT INTO monitor_minutes (monitor_id, minute");
    for (int k = 0; k < V_N; k++) n += (size_t)snprintf(sql + n, sizeof sql - n, ", %s", monseries_cols[k]);
    for (int h = 0; h < H_N; h++) n += (size_t)snprintf(sql + n, sizeof sql - n, ", %s", monseries_hists[h]);
    n += (size_t)snprintf(sql + n, sizeof sql - n,
                          ") SELECT $1::bigint, to_timestamp($2::bigint)");
    int p = 3;
    for (int k = 0; k < V_N; k++) n += (size_t)snprintf(sql + n, sizeof sql - n, ", $%d::bigint", p++);
    for (int h = 0; h < H_N; h++) n += (size_t)snprintf(sql + n, sizeof sql - n, ", $%d::bigint[]", p++);
    n += (size_t)snprintf(sql + n, sizeof sql - n,
                          " WHERE EXISTS (SELECT 1 FROM monitors WHERE id = $1::bigint) "
                          "ON CONFLICT (monitor_id, minute) DO UPDATE SET ");
    for (int k = 0; k < V_N; k++)
        n += (size_t)snprintf(sql + n, sizeof sql - n, "%s%s = monitor_minutes.%s + EXCLUDED.%s",
                              k ? ", " : "", monseries_cols[k], monseries_cols[k], monseries_cols[k]);
    for (int h = 0; h < H_N; h++)
        n += (size_t)snprintf(sql + n, sizeof sql - n,
                              ", %s = mscope_hist_add(monitor_minutes.%s, EXCLUDED.%s)",
                              monseries_hists[h], monseries_hists[h], monseries_hists[h]);
    *retry = 1;
    if (db_exec_params(db, "BEGIN", 0, NULL, NULL, NULL, state, err, errlen) < 0) return -1;
    enum { NP = 2 + V_N + H_N };
    static _Thread_local char vals[2 + V_N][24], arrays[H_N][LATENCY_HIST_TEXT];
    for (size_t i = 0; i < s->cap; i++) {
        const monseries_row *m = &s->slot[i];
        if (!m->used) continue;
        const char *params[NP];
        snprintf(vals[0], sizeof vals[0], "%" PRId64, m->id);
        snprintf(vals[1], sizeof vals[1], "%" PRId64, m->minute_ns / (int64_t)1000000000);
        for (int k = 0; k < V_N; k++) snprintf(vals[2 + k], sizeof vals[0], "%" PRId64, m->v[k]);
        for (int k = 0; k < 2 + V_N; k++) params[k] = vals[k];
        for (int h = 0; h < H_N; h++) {
            latency_hist_text(m->hist[h], arrays[h], sizeof arrays[h]);
            params[2 + V_N + h] = arrays[h];
        }
        if (db_exec_params(db, sql, NP, params, NULL, NULL, state, err, errlen) < 0) goto fail;
    }
    if (db_exec_params(db, "COMMIT", 0, NULL, NULL, NULL, state, err, errlen) < 0) goto fail;
    return 0;
fail:
    /* Data PostgreSQL refuses (class 22) would be refused again. */
    if (!strncmp(state, "22", 2)) *retry = 0;
    db_exec_params(db, "ROLLBACK", 0, NULL, NULL, NULL, NULL, sql, sizeof sql);
    return -1;
}

typedef struct monseries_rows_ctx {
    Mirrorscope__Response *resp;
    size_t cap;
} monseries_rows_ctx;

static int64_t monseries__i(const char *v) { return v ? strtoll(v, NULL, 10) : 0; }

static Mirrorscope__Latency *monseries__latency(const char *const *v)
{
    Mirrorscope__Latency *l = xmalloc(sizeof *l);
    mirrorscope__latency__init(l);
    l->count = (uint64_t)monseries__i(v[0]);
    l->sum = monseries__i(v[1]);
    l->mean = l->count ? l->sum / (int64_t)l->count : 0;
    l->flows = (uint64_t)monseries__i(v[2]);
    l->p50 = monseries__i(v[3]);
    l->p90 = monseries__i(v[4]);
    l->p99 = monseries__i(v[5]);
    return l;
}

static void monseries__on_row(void *arg, int ncols, const char *const *v)
{
    monseries_rows_ctx *c = arg;
    if (ncols < 1 + 11 + 3 * 6) return;
    Mirrorscope__Response *resp = c->resp;
    if (resp->n_monitor_minutes == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 64;
        resp->monitor_minutes = xrealloc(resp->monitor_minutes, c->cap * sizeof *resp->monitor_minutes);
    }
    Mirrorscope__MonitorMinute *m = xmalloc(sizeof *m);
    mirrorscope__monitor_minute__init(m);
    m->minute_ns = monseries__i(v[0]);
    uint64_t *u[] = { &m->c2s_bytes, &m->s2c_bytes, &m->c2s_packets, &m->s2c_packets,
                      &m->flows_started, &m->flows_finished, &m->flows_active, &m->retransmissions,
                      &m->zero_windows, &m->resets, &m->handshakes_failed };
    for (int k = 0; k < 11; k++) *u[k] = (uint64_t)monseries__i(v[1 + k]);
    m->handshake_rtt = monseries__latency(v + 12);
    m->ack_rtt = monseries__latency(v + 18);
    m->app_response = monseries__latency(v + 24);
    resp->monitor_minutes[resp->n_monitor_minutes++] = m;
}

int monseries_query(db_t *db, int64_t id, int64_t from_ns, int64_t to_ns,
                    Mirrorscope__Response *resp, char *err, size_t errlen)
{
    char sql[4096];
    size_t n = (size_t)snprintf(sql, sizeof sql, "SELECT (extract(epoch from minute) * 1e9)::bigint");
    for (int k = 0; k < V_HS_COUNT; k++) n += (size_t)snprintf(sql + n, sizeof sql - n, ", %s", monseries_cols[k]);
    static const char *const lat[H_N][2] = { { "hs_count", "hs_sum" }, { "rtt_count", "rtt_sum" },
                                             { "app_count", "app_sum" } };
    for (int h = 0; h < H_N; h++)
        n += (size_t)snprintf(sql + n, sizeof sql - n,
                              ", %s, %s, (SELECT coalesce(sum(x), 0) FROM unnest(%s) x), "
                              "mscope_hist_quantile(%s, 0.5), mscope_hist_quantile(%s, 0.9), "
                              "mscope_hist_quantile(%s, 0.99)",
                              lat[h][0], lat[h][1], monseries_hists[h], monseries_hists[h],
                              monseries_hists[h], monseries_hists[h]);
    snprintf(sql + n, sizeof sql - n,
             " FROM monitor_minutes WHERE monitor_id = $1::bigint "
             "AND minute >= date_trunc('minute', to_timestamp($2::bigint / 1e9)) "
             "AND minute < to_timestamp($3::bigint / 1e9) ORDER BY minute LIMIT 100000");
    char p[3][24];
    snprintf(p[0], sizeof p[0], "%" PRId64, id);
    snprintf(p[1], sizeof p[1], "%" PRId64, from_ns);
    snprintf(p[2], sizeof p[2], "%" PRId64, to_ns ? to_ns : (int64_t)(INT64_MAX / 2));
    const char *params[] = { p[0], p[1], p[2] };
    monseries_rows_ctx c = { resp, 0 };
    return db_exec_params(db, sql, 3, params, monseries__on_row, &c, NULL, err, errlen) < 0 ? -1 : 0;
}
