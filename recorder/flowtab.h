/* flowtab.h - the flow table: bidirectional conversations and their
 * real-time TCP analysis, emitting flow records (flowrec.h).
 *
 * Bounded: at most max_flows conversations, all memory mapped at creation
 * (untouched pages cost nothing), nothing allocated per packet.
 * When full, the least recently active flow is closed early: its record is
 * emitted as final and counted in evicted_full.
 * Time is the packets' own time: a file is analysed the same way at any
 * speed, and a live feed's clock is its newest packet (flowtab_advance()
 * moves it forward when no packets come).
 */
#ifndef MSCOPE_FLOWTAB_H
#define MSCOPE_FLOWTAB_H

#include "decode.h"
#include "flowrec.h"

#include <stdint.h>

/* What the analysis needs of a packet; filled by the receive thread from
 * its decode (flowtab_ana_from()), so the writer never decodes twice. The
 * endpoints come in the flow table's canonical order, the same for both
 * directions of a flow (the receive thread orders them and hashes the key
 * once; the analysis thread only compares): pkt_ana_src() and the others
 * below give them as sent. */
typedef struct pkt_ana {
    uint8_t a[16], b[16]; /* the endpoints, IPv4 mapped, in canonical order */
    uint32_t ports;       /* a's port | b's port << 16 (0 without TCP/UDP) */
    uint32_t seq, ack, payload_len, ip_len;
    uint16_t win;
    uint8_t tcp_flags;
    int8_t wscale;
    uint8_t proto;
    uint8_t usable;   /* an IP packet whose headers the analysis can use */
    uint8_t a_is_src; /* sent by endpoint a */
    uint8_t v6;       /* not both endpoints IPv4 */
} pkt_ana;

/* Set a packet's endpoints (from src:sport to dst:dport), ordered. */
void pkt_ana_endpoints(pkt_ana *a, const uint8_t src[16], uint16_t sport, const uint8_t dst[16],
                       uint16_t dport);

static inline const uint8_t *pkt_ana_src(const pkt_ana *a) { return a->a_is_src ? a->a : a->b; }
static inline const uint8_t *pkt_ana_dst(const pkt_ana *a) { return a->a_is_src ? a->b : a->a; }
static inline uint16_t pkt_ana_sport(const pkt_ana *a)
{
    return (uint16_t)(a->a_is_src ? a->ports : a->ports >> 16);
}
static inline uint16_t pkt_ana_dport(const pkt_ana *a)
{
    return (uint16_t)(a->a_is_src ? a->ports >> 16 : a->ports);
}

/* Fill *a from a decoded packet and return the hash of its flow (both
 * directions alike; flowtab_hash() of the same arguments), computed by the
 * receive thread so the analysis only looks it up. 0 and a->usable 0 for a
 * packet the analysis cannot use. */
uint64_t flowtab_ana_from(pkt_ana *a, const pkt_info_t *pi, uint32_t vni, const uint8_t observer[16]);

/* The hash of a packet's flow, from the process's secret (flowkey_seed,
 * flowkey.h), so it is the same only within one process. */
uint64_t flowtab_hash(const pkt_ana *a, uint32_t vni, const uint8_t observer[16]);

typedef struct flowtab_opts {
    uint32_t max_flows;
    int64_t idle_ns;     /* final record after this long without packets */
    int64_t interval_ns; /* interim record of a long flow this often */
    int skip_interim;    /* 1: interim records are counted when due but not made (no one
                          * reads them: without a publisher only final records leave) */
    int64_t grace_ns;    /* final record this long after FIN both ways or RST */
    uint64_t id_base;    /* flow ids start here (process start, so ids never repeat) */
} flowtab_opts;

typedef void (*flowtab_emit_fn)(void *ctx, const flowrec *r);

typedef struct flowtab_stats {
    uint64_t active, created, evicted_full, records, interim, unusable_packets;
} flowtab_stats;

typedef struct flowtab flowtab_t;

/* Allocate the table. emit is called for every record (interim ones only
 * without skip_interim), synchronously, from the thread that calls into the
 * table. Returns NULL if memory is short. */
flowtab_t *flowtab_new(const flowtab_opts *o, flowtab_emit_fn emit, void *ctx);
void flowtab_free(flowtab_t *t);

/* Account one packet seen at ts_ns from observation point (vni, observer);
 * hash = flowtab_hash() of the same arguments. Returns the id of the flow
 * it went to (its records' flow_id), or 0 for a packet the analysis cannot
 * use. */
uint64_t flowtab_packet(flowtab_t *t, int64_t ts_ns, uint32_t vni, const uint8_t observer[16],
                    const pkt_ana *a, uint64_t hash);

/* Prefetch the table memory of packets a few places ahead: the bucket of
 * hash_far, the flow of hash_near (whose bucket was prefetched before), and
 * the blocks of the flow whose hash_near came four calls before. */
void flowtab_prefetch(flowtab_t *t, uint64_t hash_far, uint64_t hash_near);

/* Move the clock to now_ns and emit what timed out (idle, closed). */
void flowtab_advance(flowtab_t *t, int64_t now_ns);

/* Emit a final record for every flow and empty the table (shutdown, end of file). */
void flowtab_flush(flowtab_t *t);

void flowtab_get_stats(const flowtab_t *t, flowtab_stats *out);

/* Bytes of a flow's own slots and index entry (for sizing --max-flows); a
 * flow also holds, while it needs them, pooled blocks: an extension record
 * (32 bytes) from its first application response or anomaly, the anomaly
 * counters (72), a pair of blocks of outstanding segments (192) while a
 * direction has two or more, an 8-byte cell for each time or duration its
 * 32-bit fields cannot hold, its IPv6 addresses (32). */
size_t flowtab_slot_bytes(void);

#endif
