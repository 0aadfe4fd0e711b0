/* appana.h - application transactions (issue 15): the stream layer that
 * follows DNS, TLS and HTTP/1.x flows and hands their bytes to the parsers
 * of appstream.h, which make the records (apprec.h).
 *
 * The recorder's application thread calls appana_packet() for every packet
 * that flowtab_packet() (on the analysis thread) has placed in a flow (the
 * flow's id names the records), and appana_flow_end() at the point where
 * the flow table emitted the flow's final record, so that what is pending
 * goes out. Time is the packets' own, as
 * in the flow table. docs/APP_ANALYTICS.md gives the rules.
 *
 * Bounded: at most max_flows flows followed at once (a flow that would be
 * one more is not followed, and counted), each direction's bytes held up to
 * APPANA_BUF_BYTES in one of max_buffers buffers, all allocated at
 * creation; nothing is allocated per packet. Flows that are not DNS, TLS or
 * HTTP cost no state: their id is remembered in a small direct-mapped
 * cache, so their later packets are not looked at again.
 */
#ifndef MSCOPE_APPANA_H
#define MSCOPE_APPANA_H

#include "appstream.h"
#include "flowtab.h"

#include <stddef.h>
#include <stdint.h>

/* Bytes held per direction: the unconsumed in-order bytes a parser needs
 * whole (a TLS handshake record of up to 16 KiB + 5, HTTP headers), and
 * out-of-order data beyond a hole. */
#define APPANA_BUF_BYTES 24576

typedef struct appana_opts {
    uint32_t max_flows;      /* flows followed at once */
    uint32_t max_buffers;    /* reassembly buffers (0: max_flows / 8, at least 64) */
    int64_t dns_timeout_ns;  /* an unanswered query is emitted this long after it */
    const char *dns_ports;   /* "53,5353": UDP and TCP ports whose flows are DNS */
} appana_opts;

/* Per protocol (index: apprec_kind - 1), and the layer's own. */
typedef struct appana_stats {
    app_counts kind[3];
    uint64_t flows;        /* flows followed (slots taken) */
    uint64_t active;       /* followed now */
    uint64_t pool_full;    /* flows not followed: every slot in use */
    uint64_t buffer_full;  /* segments whose bytes could not be held (no buffer, or its
                              bookkeeping full): a gap for the parser */
} appana_stats;

typedef struct appana appana_t;

/* Every record, synchronously from the thread that calls into the layer;
 * r is borrowed for the call, its common fields filled. */
typedef void (*appana_emit_fn)(void *ctx, const apprec *r);

/* Allocates the layer. Returns NULL with a message in err when the options
 * are wrong (a port list that does not parse). */
appana_t *appana_new(const appana_opts *o, appana_emit_fn emit, void *ctx, char *err,
                     size_t errlen);
void appana_free(appana_t *a);

/* One packet of flow flow_id (flowtab_packet()'s answer; 0 is ignored) at
 * ts_ns from observation point (vni, observer); payload holds the captured
 * part (caplen bytes) of its a->payload_len bytes of TCP/UDP payload. */
void appana_packet(appana_t *a, uint64_t flow_id, int64_t ts_ns, uint32_t vni,
                   const uint8_t observer[16], const pkt_ana *pa, const uint8_t *payload,
                   uint32_t caplen);

/* The flow ended (its final flow record): what is pending is emitted, its
 * state freed. Unknown ids are ignored. */
void appana_flow_end(appana_t *a, uint64_t flow_id);

/* Move the clock to now_ns: unanswered queries past the timeout go out. */
void appana_advance(appana_t *a, int64_t now_ns);

/* End every followed flow (end of input, shutdown). */
void appana_flush(appana_t *a);

void appana_get_stats(const appana_t *a, appana_stats *out);

/* Parses a port list ("53,5353") into a bitmap of 65536 bits. Returns 0, or
 * -1 with a message in err. */
int appana_parse_ports(const char *s, uint8_t bits[8192], char *err, size_t errlen);

#endif
