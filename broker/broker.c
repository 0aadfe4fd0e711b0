/* broker.c - the processing chain (see broker.h).
 *
 * DESIGN: one thread runs everything: receive a batch, run each packet
 * through the chain, flush each output once (one sendmmsg per tool per
 * batch). Nothing is shared, so counters are plain integers, and a reload
 * between two batches cannot lose a packet in flight. Per packet there is no
 * allocation: the frame is decoded once into a stack pkt_info_t and every
 * tool reads the same bytes; only masking copies, into the tool's buffer.
 */
#include "broker.h"

#include "dedup.h"
#include "log.h"
#include "output.h"
#include "tool.h"
#include "xmalloc.h"

#include <inttypes.h>
#include <stdio.h>
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
    int stats_warned;  /* the stats file could not be written (logged once) */
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
        if (b->dedup && dedup_check(b->dedup, dedup_key(ip->data, ip->caplen, &pi), ip->ts_ns)) {
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

/* Sum of a tool's outputs. */
static void broker__tool_out(const tool_t *t, output_stats *sum)
{
    memset(sum, 0, sizeof *sum);
    for (int i = 0; i < tool_noutputs(t); i++) {
        output_stats s;
        output_get_stats(tool_output(t, i), &s);
        sum->sent += s.sent;
        sum->bytes += s.bytes;
        sum->files += s.files;
        sum->files_deleted += s.files_deleted;
        for (int r = 0; r < OUT_ERR__COUNT; r++) sum->errors[r] += s.errors[r];
    }
}

static void broker__json_out(FILE *f, const output_stats *s, const char *indent)
{
    uint64_t lost = 0;
    for (int r = 0; r < OUT_ERR__COUNT; r++) lost += s->errors[r];
    fprintf(f, "%s\"sent\": %" PRIu64 ", \"sent_bytes\": %" PRIu64 ", \"send_errors_total\": %" PRIu64
            ", \"files\": %" PRIu64 ", \"files_deleted\": %" PRIu64 ",\n%s\"send_errors\": {",
            indent, s->sent, s->bytes, lost, s->files, s->files_deleted, indent);
    for (int r = 0; r < OUT_ERR__COUNT; r++)
        fprintf(f, "%s\"%s\": %" PRIu64, r ? ", " : "", output_err_name(r), s->errors[r]);
    fprintf(f, "}");
}

/* "key": "value", with the value escaped for JSON (paths may hold anything). */
static void broker__json_str(FILE *f, const char *key, const char *v)
{
    fprintf(f, "\"%s\": \"", key);
    for (const unsigned char *c = (const unsigned char *)v; *c; c++) {
        if (*c == '"' || *c == '\\') fprintf(f, "\\%c", *c);
        else if (*c < 0x20) fprintf(f, "\\u%04x", *c);
        else fputc(*c, f);
    }
    fprintf(f, "\", ");
}

static void broker__json_conf(FILE *f, const output_t *o)
{
    const brconf_tool *c = output_conf(o);
    fprintf(f, "\"type\": \"%s\", \"up\": %s, ", brconfig_type_name(c->type_id),
            output_is_up(o) ? "true" : "false");
    if (c->dest) broker__json_str(f, "dest", c->dest);
    if (c->type_id == BROUT_VXLAN) fprintf(f, "\"vni\": %" PRId64 ", ", c->vni);
    if (c->dir) broker__json_str(f, "dir", c->dir);
    if (c->interface) broker__json_str(f, "interface", c->interface);
}

static void broker__json_reasons(FILE *f, const char *name, const uint64_t *v, int n,
                                 const char *(*label)(int))
{
    fprintf(f, "  \"%s\": {", name);
    for (int i = 1; i < n; i++) fprintf(f, "%s\"%s\": %" PRIu64, i > 1 ? ", " : "", label(i), v[i]);
    fprintf(f, "},\n");
}

void broker_write_stats(broker_t *b, const input_stats *in, const char *path)
{
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) {
        if (!b->stats_warned++) log_warn("cannot write %s: %m (not retried in the log)", tmp);
        return;
    }
    fprintf(f,
            "{\n  \"rx_packets\": %" PRIu64 ",\n  \"rx_bytes\": %" PRIu64 ",\n  \"frames\": %" PRIu64
            ",\n  \"kernel_drops\": %" PRIu64 ",\n  \"truncated\": %" PRIu64
            ",\n  \"deduplicated\": %" PRIu64 ",\n  \"vlan_stripped\": %" PRIu64
            ",\n  \"reloads\": %" PRIu64 ",\n  \"dedup\": %s,\n  \"strip_vlan\": %s,\n",
            in->rx_packets, in->rx_bytes, in->frames, in->kernel_drops, in->truncated,
            b->deduplicated, b->vlan_stripped, b->reloads, b->dedup ? "true" : "false",
            b->o.strip_vlan ? "true" : "false");
    broker__json_reasons(f, "not_decapsulated", in->not_decapsulated, VX__COUNT, vxlan_reason_name);
    broker__json_reasons(f, "anomalies", b->anomalies, DEC__COUNT, decode_reason_name);
    fprintf(f, "  \"tools\": {");
    for (int t = 0; t < b->ntools; t++) {
        tool_t *tl = b->tools[t];
        const tool_stats *s = tool_counters(tl);
        output_stats os;
        broker__tool_out(tl, &os);
        fprintf(f, "%s\n    \"%s\": {", t ? "," : "", tool_name(tl));
        if (tool_is_group(tl)) fprintf(f, "\"type\": \"group\", ");
        else broker__json_conf(f, tool_output(tl, 0));
        fprintf(f, "\"in\": %" PRIu64 ", \"matched\": %" PRIu64 ", \"sliced\": %" PRIu64
                ", \"masked\": %" PRIu64 ", \"deduplicated\": %" PRIu64 ",\n",
                s->in, s->matched, s->sliced, s->masked, s->deduplicated);
        broker__json_out(f, &os, "      ");
        if (tool_is_group(tl)) {
            fprintf(f, ",\n      \"members\": {");
            for (int m = 0; m < tool_noutputs(tl); m++) {
                output_t *o = tool_output(tl, m);
                output_stats ms;
                output_get_stats(o, &ms);
                fprintf(f, "%s\n        \"%s\": {", m ? "," : "", output_conf(o)->name);
                broker__json_conf(f, o);
                fprintf(f, "\n");
                broker__json_out(f, &ms, "          ");
                fprintf(f, "}");
            }
            fprintf(f, "\n      }");
        }
        fprintf(f, "}");
    }
    fprintf(f, "\n  }\n}\n");
    if (fclose(f) == 0) rename(tmp, path);
}

void broker_log_counters(broker_t *b, const input_stats *in)
{
    uint64_t nodecap = 0, anom = 0;
    for (int i = 1; i < VX__COUNT; i++) nodecap += in->not_decapsulated[i];
    for (int i = 1; i < DEC__COUNT; i++) anom += b->anomalies[i];
    log_info("input: rx %" PRIu64 " pkts %" PRIu64 " bytes, %" PRIu64 " frames; dropped: "
             "not-vxlan %" PRIu64 ", kernel %" PRIu64 ", duplicates %" PRIu64
             "; vlan-stripped %" PRIu64 ", truncated %" PRIu64 ", malformed inner (passed on) %" PRIu64,
             in->rx_packets, in->rx_bytes, in->frames, nodecap, in->kernel_drops, b->deduplicated,
             b->vlan_stripped, in->truncated, anom);
    for (int t = 0; t < b->ntools; t++) {
        tool_t *tl = b->tools[t];
        const tool_stats *s = tool_counters(tl);
        output_stats os;
        broker__tool_out(tl, &os);
        char errs[256];
        int n = 0;
        errs[0] = 0;
        for (int r = 0; r < OUT_ERR__COUNT && n < (int)sizeof errs - 40; r++)
            if (os.errors[r])
                n += snprintf(errs + n, sizeof errs - (size_t)n, " %s=%" PRIu64,
                              output_err_name(r), os.errors[r]);
        log_info("tool %s: in %" PRIu64 " matched %" PRIu64 " sent %" PRIu64 " sliced %" PRIu64
                 " masked %" PRIu64 " deduplicated %" PRIu64 " send-errors%s", tool_name(tl),
                 s->in, s->matched, os.sent, s->sliced, s->masked, s->deduplicated,
                 n ? errs : " 0");
    }
}

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
