/* status.c - the broker's figures and health (see status.h).
 *
 * DESIGN: three row tables, built once by status_new() because the rows
 * for reasons come from the enums' own name functions (a reason added to
 * decode.h or output.h shows up here by itself): the top level (input and
 * chain), a tool's (its rules, then its outputs' sums), and a group
 * member's (the output rows alone, the tail of the tool table). The tool
 * and member rows are rendered once per instance with figures_metrics_each
 * and a tool="NAME" (and group="NAME") label. A tool's packets_total
 * results partition what it was offered: filtered, sent, or lost by reason.
 */
#include "status.h"

#include "figures.h"
#include "log.h"
#include "output.h"
#include "tool.h"
#include "xmalloc.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STATUS_STALL_NS 5000000000LL /* a packet thread silent this long is stuck */

typedef struct top_figures {
    uint64_t rx_packets, rx_bytes, frames, kernel_drops, truncated, deduplicated, vlan_stripped,
        reloads;
    uint64_t not_decapsulated[VX__COUNT];
    uint64_t anomalies[DEC__COUNT];
} top_figures;

/* A tool's figures (a group's: its members' outputs summed); a member uses
 * the output part only. */
typedef struct tool_figures {
    uint64_t in, matched, filtered, sliced, masked, deduplicated;
    uint64_t up, sent, bytes, errors_total, files, files_deleted;
    uint64_t errors[OUT_ERR__COUNT];
} tool_figures;

#define T(f) offsetof(top_figures, f)
static const figure_row status_top_rows[] = {
    { "rx_packets", NULL, "received_packets_total", NULL, NULL, FIG_COUNTER, T(rx_packets), "Messages (UDP input) or frames (interface, file) received.", 0 },
    { "rx_bytes", NULL, "received_bytes_total", NULL, NULL, FIG_COUNTER, T(rx_bytes), "Bytes of the messages or frames received.", 0 },
    { "frames", NULL, "frames_total", NULL, NULL, FIG_COUNTER, T(frames), "Inner frames handed to the tools (after decapsulation, before deduplication).", 0 },
    { "kernel_drops", NULL, "kernel_drops_total", NULL, NULL, FIG_COUNTER, T(kernel_drops), "Packets the kernel dropped before the broker read them (socket buffer overflow, libpcap drops).", 0 },
    { "truncated", NULL, "truncated_total", NULL, NULL, FIG_COUNTER, T(truncated), "Packets larger than the receive buffer, cut to it.", 0 },
    { "deduplicated", NULL, "duplicates_total", NULL, NULL, FIG_COUNTER, T(deduplicated), "Frames dropped as duplicates (--dedup) before the tools.", 0 },
    { "vlan_stripped", NULL, "vlan_stripped_total", NULL, NULL, FIG_COUNTER, T(vlan_stripped), "Frames whose VLAN tags were removed (--strip-vlan).", 0 },
    { "reloads", NULL, "reloads_total", NULL, NULL, FIG_COUNTER, T(reloads), "Configuration reloads (SIGHUP) that took effect.", 0 },
};
#undef T

#define P(f) offsetof(tool_figures, f)
static const figure_row status_rule_rows[] = {
    { "in", NULL, "offered_packets_total", NULL, NULL, FIG_COUNTER, P(in), "Packets offered to the tool's rules (after deduplication).", 0 },
    { "matched", NULL, "matched_packets_total", NULL, NULL, FIG_COUNTER, P(matched), "Packets the tool's rules selected.", 0 },
    { "filtered", NULL, "packets_total", "result", "filtered", FIG_COUNTER, P(filtered), "Packets offered to the tool, by result: filtered (its rules did not select it), sent, or lost, and why: down (the output is not open), refused, unreachable, too_big, no_buffer (the send failed so), io (writing the file failed), other.", 0 },
    { "sliced", NULL, "sliced_packets_total", NULL, NULL, FIG_COUNTER, P(sliced), "Selected packets cut to the tool's slice length.", 0 },
    { "masked", NULL, "masked_packets_total", NULL, NULL, FIG_COUNTER, P(masked), "Selected packets whose payload was zeroed.", 0 },
    { "deduplicated", NULL, "deduplicated_packets_total", NULL, NULL, FIG_COUNTER, P(deduplicated), "Duplicates removed before the tool that its rules would have selected.", 0 },
};

static const figure_row status_out_rows[] = {
    { NULL, NULL, "up", NULL, NULL, FIG_GAUGE, P(up), "1 when the output is open (a group: when any of its members is).", 0 },
    { "sent", NULL, "packets_total", "result", "sent", FIG_COUNTER, P(sent), "Packets the group gave this member, by result: sent, or lost, and why: down (the output is not open), refused, unreachable, too_big, no_buffer (the send failed so), io (writing the file failed), other.", 0 },
    { "sent_bytes", NULL, "bytes_total", NULL, NULL, FIG_COUNTER, P(bytes), "Bytes of the frames sent (after slicing).", 0 },
    { "send_errors_total", NULL, NULL, NULL, NULL, FIG_COUNTER, P(errors_total), NULL, 0 }, /* the lost results summed */
    { "files", NULL, "files_total", NULL, NULL, FIG_COUNTER, P(files), "pcap outputs: files started.", 0 },
    { "files_deleted", NULL, "files_deleted_total", NULL, NULL, FIG_COUNTER, P(files_deleted), "pcap outputs: files deleted by max-files.", 0 },
};
#undef P

#define NRULE (sizeof status_rule_rows / sizeof status_rule_rows[0])
#define NOUT (sizeof status_out_rows / sizeof status_out_rows[0])
#define NTOP (sizeof status_top_rows / sizeof status_top_rows[0])

struct status {
    char *version, *source;
    figure_row top[NTOP + VX__COUNT + DEC__COUNT];
    figure_row tool[NRULE + NOUT + OUT_ERR__COUNT]; /* members: &tool[NRULE] */
    size_t ntop, ntool;
    uint64_t drops_at_tick, recent_drops;
    int write_warned;
};

static size_t status__reasons(figure_row *rows, size_t n, const char *group, const char *metric,
                              const char *help, size_t off, int from, int count,
                              const char *(*name)(int))
{
    for (int i = from; i < count; i++) {
        figure_row r = { name(i), group, metric, "reason", name(i), FIG_COUNTER,
                         off + (size_t)i * sizeof(uint64_t), i == from ? help : NULL, 0 };
        rows[n++] = r;
    }
    return n;
}

status_t *status_new(const char *version, const char *source)
{
    status_t *s = xcalloc(1, sizeof *s);
    s->version = xstrdup(version);
    s->source = xstrdup(source);
    memcpy(s->top, status_top_rows, sizeof status_top_rows);
    s->ntop = status__reasons(s->top, NTOP, "not_decapsulated", "not_decapsulated_total",
                              "Messages dropped because they are not valid VXLAN, by reason.",
                              offsetof(top_figures, not_decapsulated), 1, VX__COUNT,
                              vxlan_reason_name);
    s->ntop = status__reasons(s->top, s->ntop, "anomalies", "anomalies_total",
                              "Inner frames with a malformed header, by the first anomaly "
                              "(passed on to the tools as they are).",
                              offsetof(top_figures, anomalies), 1, DEC__COUNT, decode_reason_name);
    memcpy(s->tool, status_rule_rows, sizeof status_rule_rows);
    memcpy(s->tool + NRULE, status_out_rows, sizeof status_out_rows);
    s->ntool = NRULE + NOUT;
    for (int r = 0; r < OUT_ERR__COUNT; r++) {
        figure_row row = { output_err_name(r), "send_errors", "packets_total", "result",
                           output_err_name(r), FIG_COUNTER,
                           offsetof(tool_figures, errors) + (size_t)r * sizeof(uint64_t), NULL, 0 };
        s->tool[s->ntool++] = row;
    }
    return s;
}

void status_free(status_t *s)
{
    if (!s) return;
    free(s->version);
    free(s->source);
    free(s);
}

void status_tick(status_t *s, const input_stats *in)
{
    s->recent_drops = in->kernel_drops - s->drops_at_tick;
    s->drops_at_tick = in->kernel_drops;
}

/* ---- gathering ------------------------------------------------------------ */

static void status__top(broker_t *b, const input_stats *in, top_figures *f)
{
    broker_stats bs;
    broker_get_stats(b, &bs);
    *f = (top_figures){
        .rx_packets = in->rx_packets, .rx_bytes = in->rx_bytes, .frames = in->frames,
        .kernel_drops = in->kernel_drops, .truncated = in->truncated,
        .deduplicated = bs.deduplicated, .vlan_stripped = bs.vlan_stripped, .reloads = bs.reloads,
    };
    memcpy(f->not_decapsulated, in->not_decapsulated, sizeof f->not_decapsulated);
    memcpy(f->anomalies, bs.anomalies, sizeof f->anomalies);
}

/* Add an output's counters into f. */
static void status__out(const output_t *o, tool_figures *f)
{
    output_stats s;
    output_get_stats(o, &s);
    f->up |= (uint64_t)output_is_up(o);
    f->sent += s.sent;
    f->bytes += s.bytes;
    f->files += s.files;
    f->files_deleted += s.files_deleted;
    for (int r = 0; r < OUT_ERR__COUNT; r++) {
        f->errors[r] += s.errors[r];
        f->errors_total += s.errors[r];
    }
}

static void status__tool(tool_t *t, tool_figures *f)
{
    const tool_stats *ts = tool_counters(t);
    memset(f, 0, sizeof *f);
    f->in = ts->in;
    f->matched = ts->matched;
    f->filtered = ts->in - ts->matched;
    f->sliced = ts->sliced;
    f->masked = ts->masked;
    f->deduplicated = ts->deduplicated;
    for (int i = 0; i < tool_noutputs(t); i++) status__out(tool_output(t, i), f);
}

/* ---- stats.json ------------------------------------------------------------ */

/* The output's configuration: type, up, and its destination keys. */
static void status__conf(json_t *o, const output_t *out)
{
    const brconf_tool *c = output_conf(out);
    json_object_set_new(o, "type", json_string(brconfig_type_name(c->type_id)));
    json_object_set_new(o, "up", json_boolean(output_is_up(out)));
    if (c->dest) json_object_set_new(o, "dest", json_string(c->dest));
    if (c->type_id == BROUT_VXLAN) json_object_set_new(o, "vni", json_integer(c->vni));
    if (c->dir) json_object_set_new(o, "dir", json_string(c->dir));
    if (c->interface) json_object_set_new(o, "interface", json_string(c->interface));
}

json_t *status_json(status_t *s, broker_t *b, const input_stats *in)
{
    top_figures top;
    status__top(b, in, &top);
    broker_stats bs;
    broker_get_stats(b, &bs);
    json_t *o = figures_json(s->top, s->ntop, &top);
    json_object_set_new(o, "dedup", json_boolean(bs.dedup));
    json_object_set_new(o, "strip_vlan", json_boolean(bs.strip_vlan));
    json_object_set_new(o, "version", json_string(s->version));
    json_t *tools = json_object();
    for (int i = 0; i < broker_ntools(b); i++) {
        tool_t *t = broker_tool(b, i);
        tool_figures f;
        status__tool(t, &f);
        json_t *to = json_object();
        if (tool_is_group(t)) json_object_set_new(to, "type", json_string("group"));
        else status__conf(to, tool_output(t, 0));
        json_object_update_new(to, figures_json(s->tool, s->ntool, &f));
        if (tool_is_group(t)) {
            json_t *members = json_object();
            for (int m = 0; m < tool_noutputs(t); m++) {
                const output_t *out = tool_output(t, m);
                tool_figures mf;
                memset(&mf, 0, sizeof mf);
                status__out(out, &mf);
                json_t *mo = json_object();
                status__conf(mo, out);
                json_object_update_new(mo, figures_json(s->tool + NRULE, s->ntool - NRULE, &mf));
                json_object_set_new(members, output_conf(out)->name, mo);
            }
            json_object_set_new(to, "members", members);
        }
        json_object_set_new(tools, tool_name(t), to);
    }
    json_object_set_new(o, "tools", tools);
    return o;
}

int status_write_file(status_t *s, json_t *o, const char *path)
{
    if (figures_write_file(o, path) == 0) return 0;
    if (!s->write_warned++) log_warn("cannot write %s: %m (not retried in the log)", path);
    return -1;
}

/* ---- /metrics ------------------------------------------------------------- */

void status_metrics(status_t *s, broker_t *b, const input_stats *in, metrics_t *m)
{
    top_figures top;
    status__top(b, in, &top);
    figures_metrics(s->top, s->ntop, &top, "mscope_broker_", m);
    int nt = broker_ntools(b), nm = 0;
    for (int i = 0; i < nt; i++)
        if (tool_is_group(broker_tool(b, i))) nm += tool_noutputs(broker_tool(b, i));
    metrics_gauge(m, "mscope_broker_tools", "Tools and groups configured.", nt);
    /* Tools first, then every group's members. */
    size_t n = (size_t)(nt + nm);
    tool_figures *f = xcalloc(n ? n : 1, sizeof *f);
    const void **bases = xcalloc(n ? n : 1, sizeof *bases);
    const char *(*labels)[5] = xcalloc(n ? n : 1, sizeof *labels);
    const char *const **lp = xcalloc(n ? n : 1, sizeof *lp);
    for (int i = 0; i < nt; i++) {
        tool_t *t = broker_tool(b, i);
        status__tool(t, &f[i]);
        bases[i] = &f[i];
        labels[i][0] = "tool";
        labels[i][1] = tool_name(t);
        lp[i] = labels[i];
    }
    figures_metrics_each(s->tool, s->ntool, bases, lp, (size_t)nt,
                         "mscope_broker_tool_", m);
    int k = nt;
    for (int i = 0; i < nt; i++) {
        tool_t *t = broker_tool(b, i);
        if (!tool_is_group(t)) continue;
        for (int j = 0; j < tool_noutputs(t); j++, k++) {
            status__out(tool_output(t, j), &f[k]);
            bases[k] = &f[k];
            labels[k][0] = "group";
            labels[k][1] = tool_name(t);
            labels[k][2] = "tool";
            labels[k][3] = output_conf(tool_output(t, j))->name;
            lp[k] = labels[k];
        }
    }
    figures_metrics_each(s->tool + NRULE, s->ntool - NRULE, bases + nt,
                         lp + nt, (size_t)nm,
                         "mscope_broker_group_member_", m);
    free(lp);
    free(labels);
    free(bases);
    free(f);
}

/* ---- health ---------------------------------------------------------------- */

static void status__why(json_t *why, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void status__why(json_t *why, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    json_array_append_new(why, json_string(buf));
}

static void status__out_health(json_t *why, const output_t *o, const char *group)
{
    const char *name = output_conf(o)->name;
    char in_group[128] = "";
    if (group) snprintf(in_group, sizeof in_group, " (group %s)", group);
    if (!output_is_up(o))
        status__why(why, "tool %s%s: its output is down: its packets are lost (send_errors.down)",
                    name, in_group);
    else if (output_recent_losses(o))
        status__why(why, "tool %s%s: %" PRIu64 " packets lost in the last second (see send_errors)",
                    name, in_group, output_recent_losses(o));
}

void status_health(status_t *s, broker_t *b, const rxloop_state *rx, json_t *why)
{
    if (!rx->running && rx->result == RXLOOP_FAILED)
        status__why(why, "the input (%s) has failed: nothing is received (the log says why)",
                    s->source);
    else if (!rx->running)
        status__why(why, "the input (%s) has ended", s->source);
    else if (rx->idle_ns > STATUS_STALL_NS)
        status__why(why, "the packet thread has not turned for %.1f s (stuck writing?)",
                    (double)rx->idle_ns / 1e9);
    if (s->recent_drops)
        status__why(why, "the input is dropping packets: %" PRIu64 " kernel drops in the last "
                         "second", s->recent_drops);
    for (int i = 0; i < broker_ntools(b); i++) {
        tool_t *t = broker_tool(b, i);
        for (int m = 0; m < tool_noutputs(t); m++)
            status__out_health(why, tool_output(t, m), tool_is_group(t) ? tool_name(t) : NULL);
    }
}

/* ---- the log --------------------------------------------------------------- */

void status_log(status_t *s, broker_t *b, const input_stats *in)
{
    (void)s;
    broker_stats bs;
    broker_get_stats(b, &bs);
    uint64_t nodecap = 0, anom = 0;
    for (int i = 1; i < VX__COUNT; i++) nodecap += in->not_decapsulated[i];
    for (int i = 1; i < DEC__COUNT; i++) anom += bs.anomalies[i];
    log_info("input: rx %" PRIu64 " pkts %" PRIu64 " bytes, %" PRIu64 " frames; dropped: "
             "not-vxlan %" PRIu64 ", kernel %" PRIu64 ", duplicates %" PRIu64
             "; vlan-stripped %" PRIu64 ", truncated %" PRIu64 ", malformed inner (passed on) %" PRIu64,
             in->rx_packets, in->rx_bytes, in->frames, nodecap, in->kernel_drops, bs.deduplicated,
             bs.vlan_stripped, in->truncated, anom);
    for (int i = 0; i < broker_ntools(b); i++) {
        tool_t *t = broker_tool(b, i);
        tool_figures f;
        status__tool(t, &f);
        char errs[256];
        int n = 0;
        errs[0] = 0;
        for (int r = 0; r < OUT_ERR__COUNT && n < (int)sizeof errs - 40; r++)
            if (f.errors[r])
                n += snprintf(errs + n, sizeof errs - (size_t)n, " %s=%" PRIu64,
                              output_err_name(r), f.errors[r]);
        log_info("tool %s: in %" PRIu64 " matched %" PRIu64 " sent %" PRIu64 " sliced %" PRIu64
                 " masked %" PRIu64 " deduplicated %" PRIu64 " send-errors%s", tool_name(t),
                 f.in, f.matched, f.sent, f.sliced, f.masked, f.deduplicated, n ? errs : " 0");
    }
}
