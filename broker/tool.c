/* tool.c - per-tool rules and group balancing (see tool.h).
 *
 * DESIGN: the frame is shared by every tool and never modified; a tool that
 * masks copies the (sliced) frame into its own 1 MiB buffer first, so other
 * tools still see the original bytes. The buffer is reused per batch; when
 * a batch fills it, the tool's outputs are flushed early and it starts over.
 */
#include "tool.h"

#include "filter.h"
#include "hash.h"
#include "xmalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOOL_MASK_BUF (1u << 20)

struct tool {
    char *name;
    int is_group;
    filter_t *f;
    int drop;            /* action = drop: invert the filter */
    uint32_t slice;      /* 0 = whole frame */
    int mask;
    int n;
    output_t **out;      /* borrowed */
    uint64_t *seeds;
    uint8_t *mbuf;       /* masking copies */
    uint32_t mused;
    tool_stats st;
};

uint64_t tool_seed(const char *name) { return hash_bytes(name, strlen(name), 0x5eed); }

tool_t *tool_new(const brconf_tool *conf, output_t **outputs, int n, char *err, size_t errlen)
{
    filter_t *f = filter_new(conf->filter, err, errlen);
    if (!f) return NULL;
    tool_t *t = xcalloc(1, sizeof *t);
    t->name = xstrdup(conf->name);
    t->is_group = conf->kind == BRCONF_GROUP;
    t->f = f;
    t->drop = conf->action_id == BRACT_DROP;
    t->slice = (uint32_t)conf->slice;
    t->mask = conf->mask_payload;
    t->n = n;
    t->out = xcalloc((size_t)n, sizeof *t->out);
    t->seeds = xcalloc((size_t)n, sizeof *t->seeds);
    for (int i = 0; i < n; i++) {
        t->out[i] = outputs[i];
        t->seeds[i] = tool_seed(output_conf(outputs[i])->name);
    }
    if (t->mask) t->mbuf = xmalloc(TOOL_MASK_BUF);
    return t;
}

static int tool__selects(const tool_t *t, const tool_pkt *p)
{
    return filter_match(t->f, p->data, p->caplen, p->origlen) != t->drop;
}

uint64_t tool_flow_hash(const uint8_t *data, uint32_t caplen, const pkt_info_t *pi)
{
    struct {
        uint8_t a[16], b[16];
        uint16_t pa, pb;
        uint8_t proto, pad[3];
    } k;
    memset(&k, 0, sizeof k);
    if (pi->l3 == PKT_L3_IPV4 || pi->l3 == PKT_L3_IPV6) {
        uint16_t sp = 0, dp = 0;
        /* Fragments carry ports only in the first one: use none for any. */
        if ((pi->flags & PKT_F_L4) && !(pi->flags & PKT_F_FRAG)) {
            sp = pi->sport;
            dp = pi->dport;
        }
        int c = memcmp(pi->src, pi->dst, 16);
        int src_first = c < 0 || (c == 0 && sp <= dp);
        memcpy(k.a, src_first ? pi->src : pi->dst, 16);
        memcpy(k.b, src_first ? pi->dst : pi->src, 16);
        k.pa = src_first ? sp : dp;
        k.pb = src_first ? dp : sp;
        k.proto = pi->proto;
    } else if (caplen >= 12) {
        int c = memcmp(data, data + 6, 6);
        memcpy(k.a, c < 0 ? data : data + 6, 6);
        memcpy(k.b, c < 0 ? data + 6 : data, 6);
        k.proto = 0xff;
    }
    return hash_bytes(&k, sizeof k, 0xf10);
}

int tool_pick(uint64_t flow_hash, const uint64_t *seeds, int n)
{
    int best = 0;
    uint64_t top = 0;
    for (int i = 0; i < n; i++) {
        uint64_t s = hash_mix64(flow_hash ^ seeds[i]);
        if (i == 0 || s > top) {
            top = s;
            best = i;
        }
    }
    return best;
}

/* The rendezvous choice among the members that are up (all, if none is):
 * while a member's output is down its flows go to the others, and come back
 * when it is up again. */
static int tool__pick_up(const tool_t *t, uint64_t flow_hash)
{
    int best = -1;
    uint64_t top = 0;
    for (int i = 0; i < t->n; i++) {
        if (!output_is_up(t->out[i])) continue;
        uint64_t s = hash_mix64(flow_hash ^ t->seeds[i]);
        if (best < 0 || s > top) {
            top = s;
            best = i;
        }
    }
    return best >= 0 ? best : tool_pick(flow_hash, t->seeds, t->n);
}

/* Zero what follows the transport header (the IP header when there is no
 * decoded transport), within the len bytes kept. Non-IP frames are kept. */
static void tool__mask(uint8_t *f, uint32_t len, const pkt_info_t *pi)
{
    uint32_t from;
    if (pi->l3 != PKT_L3_IPV4 && pi->l3 != PKT_L3_IPV6) return;
    if ((pi->flags & PKT_F_L4) && pi->payload_off) from = pi->payload_off;
    else if (pi->l4_off) from = pi->l4_off;
    else return;
    if (from < len) memset(f + from, 0, len - from);
}

void tool_packet(tool_t *t, tool_pkt *p)
{
    t->st.in++;
    if (!tool__selects(t, p)) return;
    t->st.matched++;
    uint32_t len = p->caplen;
    if (t->slice && len > t->slice) {
        len = t->slice;
        t->st.sliced++;
    }
    int m = 0;
    if (t->n > 1) {
        if (!p->have_hash) {
            p->flow_hash = tool_flow_hash(p->data, p->caplen, p->pi);
            p->have_hash = 1;
        }
        m = tool__pick_up(t, p->flow_hash);
    }
    const uint8_t *data = p->data;
    if (t->mask) { /* len <= PCAPIO_SNAPLEN, a quarter of the buffer */
        if (t->mused + len > TOOL_MASK_BUF) {
            for (int i = 0; i < t->n; i++) output_flush(t->out[i]);
            t->mused = 0;
        }
        uint8_t *c = t->mbuf + t->mused;
        memcpy(c, p->data, len);
        tool__mask(c, len, p->pi);
        t->mused += len;
        data = c;
        t->st.masked++;
    }
    output_push(t->out[m], p->ts_ns, data, len, p->origlen);
}

void tool_duplicate(tool_t *t, tool_pkt *p)
{
    if (tool__selects(t, p)) t->st.deduplicated++;
}

void tool_batch_end(tool_t *t) { t->mused = 0; }

const char *tool_name(const tool_t *t) { return t->name; }
int tool_is_group(const tool_t *t) { return t->is_group; }
int tool_noutputs(const tool_t *t) { return t->n; }
output_t *tool_output(const tool_t *t, int i) { return t->out[i]; }
tool_stats *tool_counters(tool_t *t) { return &t->st; }

void tool_free(tool_t *t)
{
    if (!t) return;
    filter_free(t->f);
    free(t->out);
    free(t->seeds);
    free(t->mbuf);
    free(t->name);
    free(t);
}
