/* broker.c - the processing chain (see broker.h).
 *
 * DESIGN: the packet thread (rxloop.c) runs the chain: receive a batch, run
 * each packet through the chain, flush each output once (one sendmmsg per
 * tool per batch). The control loop reads counters, ticks the outputs and
 * reloads only while it holds rxloop's lock, which the packet thread takes
 * per batch: counters stay plain integers, and a reload between two batches
 * cannot lose a packet in flight. Per packet there is no
 * allocation: the frame is decoded once into a stack pkt_info_t and every
 * tool reads the same bytes; only masking copies, into the tool's buffer.
 */
#include "broker.h"

#include "dedup.h"
#include "log.h"
#include "output.h"
#include "tool.h"
#include "xmalloc.h"

#include <stdlib.h>
#include <string.h>

struct broker {
    broker_opts o;
    brconfig_t *cfg;
    output_t **outs;   /* one per section of cfg; NULL for groups */
    tool_t **tools;    /* groups and tools outside groups */
    int ntools;
    dedup_t *dedup;
    uint64_t deduplicated, vlan_stripped, reloads;
    uint64_t anomalies[DEC__COUNT];
};

/* Build outs/tools for cfg. Outputs are taken from old (matching name and
 * output keys; the slot is then NULLed) or opened. */
static int broker__build(broker_t *b, brconfig_t *cfg, output_t **old, const brconfig_t *oldcfg,
                         output_t ***outs_out, tool_t ***tools_out, int *ntools_out, char *err,
                         size_t errlen)
{
    output_t **outs = xcalloc((size_t)cfg->n, sizeof *outs);
    tool_t **tools = xcalloc((size_t)cfg->n, sizeof *tools);
    int nt = 0, kept = 0, opened = 0;
    for (int i = 0; i < cfg->n; i++) {
        const brconf_tool *c = &cfg->tools[i];
        if (c->kind != BRCONF_TOOL) continue;
        int j = oldcfg ? brconfig_find(oldcfg, c->name) : -1;
        if (j >= 0 && old[j] && brconfig_output_equal(output_conf(old[j]), c)) {
            outs[i] = old[j];
            old[j] = NULL;
            kept++;
        } else {
            outs[i] = output_new(c);
            opened++;
        }
    }
    for (int i = 0; i < cfg->n; i++) {
        const brconf_tool *c = &cfg->tools[i];
        if (c->kind == BRCONF_TOOL && c->group >= 0) continue;
        output_t *members[BRCONF_MAX_MEMBERS];
        int n = 0;
        if (c->kind == BRCONF_GROUP)
            for (int m = 0; m < c->nmembers; m++) members[n++] = outs[c->member[m]];
        else
            members[n++] = outs[i];
        tools[nt] = tool_new(c, members, n, err, errlen);
        if (!tools[nt]) goto fail;
        nt++;
    }
    if (oldcfg) log_info("configuration %s: %d tool(s); %d output(s) kept as they were, %d opened",
                         cfg->path, nt, kept, opened);
    *outs_out = outs;
    *tools_out = tools;
    *ntools_out = nt;
    return 0;
fail:
    for (int i = 0; i < nt; i++) tool_free(tools[i]);
    for (int i = 0; i < cfg->n; i++) {
        /* give kept outputs back to the old configuration */
        int j = oldcfg && outs[i] ? brconfig_find(oldcfg, cfg->tools[i].name) : -1;
        if (j >= 0 && !old[j]) old[j] = outs[i];
        else output_free(outs[i]);
    }
    free(outs);
    free(tools);
    return -1;
}

static void broker__set_opts(broker_t *b, const broker_opts *o)
{
    if (!o->dedup) {
        dedup_free(b->dedup);
        b->dedup = NULL;
    } else if (!b->dedup || o->dedup_window != b->o.dedup_window ||
               o->dedup_slots != b->o.dedup_slots) {
        dedup_free(b->dedup);
        b->dedup = dedup_new((uint32_t)o->dedup_slots, o->dedup_window);
    }
    b->o = *o;
}

broker_t *broker_new(const broker_opts *o, brconfig_t **cfg, char *err, size_t errlen)
{
    broker_t *b = xcalloc(1, sizeof *b);
    if (broker__build(b, *cfg, NULL, NULL, &b->outs, &b->tools, &b->ntools, err, errlen) < 0) {
        free(b);
        return NULL;
    }
    b->cfg = *cfg;
    *cfg = NULL;
    broker__set_opts(b, o);
    return b;
}

int broker_reload(broker_t *b, const broker_opts *o, brconfig_t **cfg, char *err, size_t errlen)
{
    output_t **outs;
    tool_t **tools;
    int nt;
    /* Nothing is queued between batches, but be sure before moving outputs. */
    for (int i = 0; i < b->cfg->n; i++)
        if (b->outs[i]) output_flush(b->outs[i]);
    if (broker__build(b, *cfg, b->outs, b->cfg, &outs, &tools, &nt, err, errlen) < 0) return -1;
    /* Counters follow the tool's name. */
    for (int i = 0; i < nt; i++) {
        for (int j = 0; j < b->ntools; j++) {
            if (!strcmp(tool_name(tools[i]), tool_name(b->tools[j]))) {
                *tool_counters(tools[i]) = *tool_counters(b->tools[j]);
                break;
            }
        }
    }
    for (int j = 0; j < b->ntools; j++) tool_free(b->tools[j]);
    for (int i = 0; i < b->cfg->n; i++) output_free(b->outs[i]); /* the ones not kept */
    free(b->tools);
    free(b->outs);
    brconfig_free(b->cfg);
    b->cfg = *cfg;
    *cfg = NULL;
    b->outs = outs;
    b->tools = tools;
    b->ntools = nt;
    b->reloads++;
    broker__set_opts(b, o);
    return 0;
}

/* Remove 802.1Q/802.1ad tags in place: the MAC addresses move forward. */
static void broker__strip_vlan(broker_t *b, input_pkt *p)
{
    uint32_t off = 12;
    while (off + 6 <= p->caplen) {
        uint16_t et = (uint16_t)(p->data[off] << 8 | p->data[off + 1]);
        if (et != 0x8100 && et != 0x88a8 && et != 0x9100) break;
        off += 4;
    }
    uint32_t tags = off - 12;
    if (!tags) return;
    memmove(p->data + tags, p->data, 12);
    p->data += tags;
    p->caplen -= tags;
    p->origlen -= tags;
    b->vlan_stripped++;
}

void broker_batch(void *ctx, input_batch *batch)
{
    broker_t *b = ctx;
    for (int i = 0; i < batch->n; i++) {
        input_pkt *ip = &batch->p[i];
        if (b->o.strip_vlan) broker__strip_vlan(b, ip);
        pkt_info_t pi;
        b->anomalies[decode_frame(ip->data, ip->caplen, ip->origlen, &pi)]++;
        tool_pkt p = { ip->data, ip->caplen, ip->origlen, ip->ts_ns, &pi, 0, 0 };
        if (b->dedup && dedup_check(b->dedup, dedup_key(b->dedup, ip->data, ip->caplen, &pi), ip->ts_ns)) {
            b->deduplicated++;
            for (int t = 0; t < b->ntools; t++) tool_duplicate(b->tools[t], &p);
            continue;
        }
        for (int t = 0; t < b->ntools; t++) tool_packet(b->tools[t], &p);
    }
    for (int i = 0; i < b->cfg->n; i++)
        if (b->outs[i]) output_flush(b->outs[i]);
    for (int t = 0; t < b->ntools; t++) tool_batch_end(b->tools[t]);
}

void broker_tick(broker_t *b, int64_t now_ns)
{
    for (int i = 0; i < b->cfg->n; i++)
        if (b->outs[i]) output_tick(b->outs[i], now_ns);
}

int broker_ntools(const broker_t *b) { return b->ntools; }

void broker_get_stats(const broker_t *b, broker_stats *st)
{
    st->deduplicated = b->deduplicated;
    st->vlan_stripped = b->vlan_stripped;
    st->reloads = b->reloads;
    memcpy(st->anomalies, b->anomalies, sizeof st->anomalies);
    st->dedup = b->dedup != NULL;
    st->strip_vlan = b->o.strip_vlan;
}

tool_t *broker_tool(const broker_t *b, int i) { return b->tools[i]; }

void broker_free(broker_t *b)
{
    if (!b) return;
    for (int t = 0; t < b->ntools; t++) tool_free(b->tools[t]);
    for (int i = 0; i < b->cfg->n; i++) output_free(b->outs[i]);
    free(b->tools);
    free(b->outs);
    brconfig_free(b->cfg);
    dedup_free(b->dedup);
    free(b);
}
