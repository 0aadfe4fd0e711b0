/* registry.c - the node registry (see registry.h).
 *
 * Nodes are few (one per recorder instance), so a plain array searched by
 * name is enough; heartbeats come once a second per node.
 */
#include "registry.h"

#include "log.h"
#include "pbcopy.h"
#include "timeparse.h"
#include "xmalloc.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct reg_node {
    char name[256];
    int64_t start_ns;
    uint64_t flow_seq, app_seq, hb_seq, gaps;
    Mirrorscope__Heartbeat *last_hb; /* owned, unpacked */
    char key[BUSAUTH_KEY_LEN + 1];   /* its CURVE key (that of its bus connection), "" plain */
    int dirty;
    int64_t seen_mono;               /* when its last heartbeat came */
    int64_t clock[REGISTRY_CLOCK_SAMPLES]; /* the last offsets measured (registry.h) */
    unsigned nclock, clock_next;
    int clock_warned;                /* a warning stands: it is off */
    int64_t clock_warned_mono;       /* when the last one was logged */
} reg_node;

struct registry {
    reg_node *nodes;
    size_t n, cap;
    registry_stats st;
};

registry_t *registry_new(void) { return xcalloc(1, sizeof(registry_t)); }

void registry_free(registry_t *r)
{
    if (!r) return;
    for (size_t i = 0; i < r->n; i++)
        if (r->nodes[i].last_hb) mirrorscope__heartbeat__free_unpacked(r->nodes[i].last_hb, NULL);
    free(r->nodes);
    free(r);
}

static reg_node *registry__find(registry_t *r, const char *name)
{
    for (size_t i = 0; i < r->n; i++)
        if (!strcmp(r->nodes[i].name, name)) return &r->nodes[i];
    return NULL;
}

static reg_node *registry__get(registry_t *r, const char *name)
{
    reg_node *n = registry__find(r, name);
    if (n) return n;
    xgrow((void **)&r->nodes, &r->cap, r->n + 1, sizeof *r->nodes);
    n = &r->nodes[r->n++];
    memset(n, 0, sizeof *n);
    snprintf(n->name, sizeof n->name, "%s", name);
    r->st.nodes = r->n;
    log_info("new node %s", n->name);
    return n;
}

/* Sequence check: same process start and a jump = lost messages; a new
 * start time = the recorder restarted, not a gap. */
static void registry__seq(registry_t *r, reg_node *n, int64_t start_ns, uint64_t seq,
                          uint64_t *last, const char *topic)
{
    if (n->start_ns != start_ns) {
        if (n->start_ns) {
            r->st.restarts++;
            log_info("node %s restarted", n->name);
        }
        n->start_ns = start_ns;
        n->flow_seq = n->app_seq = n->hb_seq = 0;
        n->nclock = n->clock_next = 0; /* its clock may have been set meanwhile */
        *last = 0;
    }
    if (*last && seq != *last + 1) {
        uint64_t lost = seq > *last ? seq - *last - 1 : 0;
        n->gaps += lost;
        r->st.gaps += lost;
        log_warn("node %s: %s sequence jumped from %" PRIu64 " to %" PRIu64 " (%" PRIu64
                 " messages lost)", n->name, topic, *last, seq, lost);
    }
    *last = seq;
}

void registry_flow_seen(registry_t *r, const char *node, int64_t start_ns, uint64_t seq)
{
    reg_node *n = registry__get(r, node);
    registry__seq(r, n, start_ns, seq, &n->flow_seq, "flow");
}

void registry_app_seen(registry_t *r, const char *node, int64_t start_ns, uint64_t seq)
{
    reg_node *n = registry__get(r, node);
    registry__seq(r, n, start_ns, seq, &n->app_seq, "app");
}

/* Its clock minus ours, when it measured anything (the largest sample). */
static int registry__offset(const reg_node *n, int64_t *out)
{
    if (!n->nclock) return 0;
    int64_t best = n->clock[0];
    for (unsigned i = 1; i < n->nclock; i++)
        if (n->clock[i] > best) best = n->clock[i];
    *out = best;
    return 1;
}

/* One heartbeat's measure: sent at sent_ns by its clock, come now by ours.
 * Warns (rate-limited) while the offset is past the threshold. */
static void registry__clock(reg_node *n, int64_t sent_ns)
{
    n->clock[n->clock_next] = sent_ns - timeparse_now_ns();
    n->clock_next = (n->clock_next + 1) % REGISTRY_CLOCK_SAMPLES;
    if (n->nclock < REGISTRY_CLOCK_SAMPLES) n->nclock++;
    int64_t off = 0, now = timeparse_mono_ns();
    registry__offset(n, &off);
    int64_t mag = off < 0 ? -off : off;
    if (mag > REGISTRY_CLOCK_WARN_NS) {
        if (n->clock_warned && now - n->clock_warned_mono < REGISTRY_CLOCK_WARN_EVERY_NS) return;
        log_warn("node %s: its clock is %+.1f s off ours (more than %lld s: check its NTP); its "
                 "flow records keep its times", n->name, (double)off / 1e9,
                 REGISTRY_CLOCK_WARN_NS / 1000000000LL);
        n->clock_warned = 1;
        n->clock_warned_mono = now;
    } else if (n->clock_warned && mag <= REGISTRY_CLOCK_WARN_NS / 2) {
        log_info("node %s: its clock agrees with ours again (%+.1f s off)", n->name, (double)off / 1e9);
        n->clock_warned = 0;
    }
}

void registry_heartbeat(registry_t *r, Mirrorscope__Heartbeat **hb, const char *key)
{
    Mirrorscope__Heartbeat *h = *hb;
    *hb = NULL;
    reg_node *n = registry__get(r, h->node);
    snprintf(n->key, sizeof n->key, "%s", key ? key : "");
    registry__seq(r, n, h->start_ns, h->seq, &n->hb_seq, "hb");
    if (h->time_ns) registry__clock(n, h->time_ns);
    if (n->last_hb) mirrorscope__heartbeat__free_unpacked(n->last_hb, NULL);
    n->last_hb = h;
    n->dirty = 1;
    n->seen_mono = timeparse_mono_ns();
    r->st.heartbeats++;
}

static int registry__cmp_node(const void *a, const void *b)
{
    return strcmp(((const scatter_node *)a)->name, ((const scatter_node *)b)->name);
}

int registry_search_nodes(registry_t *r, char *const *names, size_t nnames, int64_t alive_ns,
                          scatter_node *out, int max, char *err, size_t errlen)
{
    for (size_t k = 0; k < nnames; k++) {
        reg_node *n = registry__find(r, names[k]);
        if (!n || !n->last_hb) {
            snprintf(err, errlen, "unknown recorder '%.200s' (see mscope nodes)", names[k]);
            return -1;
        }
    }
    int64_t now = timeparse_mono_ns();
    int count = 0;
    for (size_t i = 0; i < r->n && count < max; i++) {
        reg_node *n = &r->nodes[i];
        if (!n->last_hb) continue;
        int wanted = nnames == 0 && now - n->seen_mono < alive_ns;
        for (size_t k = 0; k < nnames && !wanted; k++) wanted = !strcmp(n->name, names[k]);
        if (wanted)
            out[count++] = (scatter_node){ .name = n->name, .endpoint = n->last_hb->search_endpoint, .key = n->key };
    }
    qsort(out, (size_t)count, sizeof *out, registry__cmp_node);
    return count;
}

registry_row *registry_take_dirty(registry_t *r, size_t *n)
{
    size_t k = 0;
    for (size_t i = 0; i < r->n; i++) k += r->nodes[i].dirty;
    *n = k;
    if (!k) return NULL;
    registry_row *rows = xcalloc(k, sizeof *rows);
    k = 0;
    for (size_t i = 0; i < r->n; i++) {
        reg_node *nd = &r->nodes[i];
        if (!nd->dirty) continue;
        rows[k].hb = (Mirrorscope__Heartbeat *)pbcopy(&nd->last_hb->base);
        rows[k].gaps = nd->gaps;
        rows[k].clock_known = registry__offset(nd, &rows[k].clock_offset_ns);
        k++;
        nd->dirty = 0;
    }
    return rows;
}

void registry_mark_dirty(registry_t *r, const registry_row *rows, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        reg_node *nd = registry__find(r, rows[i].hb->node);
        if (nd) nd->dirty = 1;
    }
}

void registry_rows_free(registry_row *rows, size_t n)
{
    for (size_t i = 0; rows && i < n; i++) mirrorscope__heartbeat__free_unpacked(rows[i].hb, NULL);
    free(rows);
}

void registry_get_stats(const registry_t *r, registry_stats *out) { *out = r->st; }

size_t registry_list(const registry_t *r, registry_info *out, size_t max)
{
    int64_t now = timeparse_mono_ns();
    size_t k = 0;
    for (size_t i = 0; i < r->n; i++) {
        const reg_node *n = &r->nodes[i];
        if (!n->last_hb) continue;
        if (k < max) {
            out[k] = (registry_info){ n->name, n->gaps, now - n->seen_mono, 0, 0 };
            out[k].clock_known = registry__offset(n, &out[k].clock_offset_ns);
        }
        k++;
    }
    return k;
}
