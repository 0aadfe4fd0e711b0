/* tool.h - a tool's rules and where its packets go: one output, or a group
 * of outputs sharing the load by a symmetric flow hash.
 *
 * Rules, in order: the tcpdump filter (pass: send what matches; drop: send
 * what does not), slicing to N bytes, payload masking. A group picks the
 * member by rendezvous hashing of the flow: both directions of a connection
 * hash alike, and removing a member moves only that member's flows.
 */
#ifndef MSCOPE_TOOL_H
#define MSCOPE_TOOL_H

#include "brconfig.h"
#include "decode.h"
#include "output.h"

#include <stdint.h>

typedef struct tool_stats {
    uint64_t in;           /* packets offered (after deduplication) */
    uint64_t matched;      /* selected by the rules */
    uint64_t sliced;       /* of those, cut to the slice length */
    uint64_t masked;       /* of those, payload zeroed */
    uint64_t deduplicated; /* duplicates removed that the rules would have selected */
} tool_stats;

/* A packet as the tools see it: the inner frame, decoded once. */
typedef struct tool_pkt {
    const uint8_t *data;
    uint32_t caplen, origlen;
    int64_t ts_ns;
    const pkt_info_t *pi;
    uint64_t flow_hash;    /* symmetric flow hash; computed on first need */
    int have_hash;
} tool_pkt;

typedef struct tool tool_t;

/* Build the tool of section conf->tools[idx] (a tool outside a group, or a
 * group) over outputs (n of them; one for a tool, the members' in member
 * order for a group), which stay owned by the caller. Returns NULL with err
 * set if the filter does not compile (validation makes that unexpected). */
tool_t *tool_new(const brconf_tool *conf, output_t **outputs, int n, char *err, size_t errlen);

/* Offer one packet: count it, apply the rules, hand it to an output. */
void tool_packet(tool_t *t, tool_pkt *p);

/* A duplicate dropped before the tools: count it if the rules would pass it. */
void tool_duplicate(tool_t *t, tool_pkt *p);

/* After a batch (once its outputs are flushed): reuse the masking buffer. */
void tool_batch_end(tool_t *t);

/* Symmetric flow hash of a frame: equal for both directions of a flow
 * (addresses and ports sorted; IP fragments by addresses only; non-IP by the
 * sorted Ethernet addresses). */
uint64_t tool_flow_hash(const uint8_t *data, uint32_t caplen, const pkt_info_t *pi);

/* Rendezvous choice among n members whose seeds are given: the member with
 * the highest mix(hash, seed). Seeds come from member names (tool_seed). */
int tool_pick(uint64_t flow_hash, const uint64_t *seeds, int n);
uint64_t tool_seed(const char *name);

const char *tool_name(const tool_t *t);
int tool_is_group(const tool_t *t);
int tool_noutputs(const tool_t *t);
output_t *tool_output(const tool_t *t, int i);

/* Counters, readable and settable (a reload carries them to the new tool). */
tool_stats *tool_counters(tool_t *t);

void tool_free(tool_t *t);

#endif
