/* broker.h - the broker's processing chain and its tools: per packet, strip
 * VLAN tags (optional), decode, deduplicate (optional), offer to every tool;
 * per batch, flush every output. Owns the configuration, the outputs and the
 * tools; a reload swaps them between two batches.
 */
#ifndef MSCOPE_BROKER_H
#define MSCOPE_BROKER_H

#include "brconfig.h"
#include "input.h"
#include "tool.h"

#include <stddef.h>
#include <stdint.h>

typedef struct broker_opts {
    int dedup;              /* drop duplicates within dedup_window */
    int64_t dedup_window;   /* nanoseconds */
    int64_t dedup_slots;    /* table entries */
    int strip_vlan;         /* remove 802.1Q/802.1ad tags before anything else */
} broker_opts;

typedef struct broker broker_t;

/* The chain's own counters (the tools and outputs keep theirs). */
typedef struct broker_stats {
    uint64_t deduplicated, vlan_stripped, reloads;
    uint64_t anomalies[DEC__COUNT]; /* inner frames by their first anomaly (passed on) */
    int dedup, strip_vlan;          /* the options in force */
} broker_stats;

/* Build the chain and open every output of *cfg, which the broker takes
 * (*cfg becomes NULL). Returns NULL with err set if a tool cannot be built. */
broker_t *broker_new(const broker_opts *o, brconfig_t **cfg, char *err, size_t errlen);

/* Replace the configuration with *cfg (taken on success, *cfg = NULL). Tools
 * whose output keys are unchanged keep their sockets or files and counters;
 * removed tools are flushed and closed; new ones opened. Returns 0, or -1
 * with err set (the old configuration stays). */
int broker_reload(broker_t *b, const broker_opts *o, brconfig_t **cfg, char *err, size_t errlen);

/* The input callback: process one batch (ctx is the broker). */
void broker_batch(void *ctx, input_batch *batch);

/* About once a second (now_ns monotonic): outputs retry, flush files, log. */
void broker_tick(broker_t *b, int64_t now_ns);

void broker_get_stats(const broker_t *b, broker_stats *st);

/* Number of tools (groups count once), and tool i of them (0 <= i <
 * broker_ntools()), borrowed until the next reload. */
int broker_ntools(const broker_t *b);
tool_t *broker_tool(const broker_t *b, int i);

void broker_free(broker_t *b);

#endif
