/* flowsample.h - flow records in which every field of the field table
 * (common/flowrec_fields.h) has its own non-default value, made by walking
 * the table: a field added there gets a value here with no change. For the
 * round trips of tests/unit/test_flowpb.c and `flowgen --distinct`
 * (tests/integration/test_flow_fields.py). Header-only: test code.
 *
 * Values by kind, n counting the record's fields and k the record:
 * flow ids above 2^63 and 32-bit counters above 2^31 (they are stored
 * signed), other counters above 2^33, times after `base` (nanoseconds),
 * IPv4 addresses for even k and IPv6 for odd, strings of letters and
 * digits; a statistic's count small, so that its mean differs from the
 * others'. Then what the coordinator checks of a record (coordinator/wire.c)
 * is made true: TCP (so the handshake is written) with every handshake
 * step seen, payload_bytes under ip_bytes.
 */
#ifndef MSCOPE_FLOWSAMPLE_H
#define MSCOPE_FLOWSAMPLE_H

#include "decode.h"
#include "flowrec.h"

#include <stdio.h>
#include <string.h>

typedef struct flowsample {
    unsigned n, k;
    int64_t base;
} flowsample;

static inline uint64_t flowsample__next(flowsample *s) { return ++s->n + 64u * s->k; }

static inline void flowsample__ip(flowsample *s, uint8_t ip[16])
{
    uint64_t v = flowsample__next(s);
    memset(ip, 0, 16);
    if (s->k % 2 == 0) {
        const uint8_t v4[4] = { 10, (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v };
        decode_map4(v4, ip);
    } else {
        ip[0] = 0x20, ip[1] = 0x01, ip[2] = 0x0d, ip[3] = 0xb8;
        for (int i = 0; i < 8; i++) ip[15 - i] = (uint8_t)(v >> (8 * i));
    }
}

#define FLOWSAMPLE__SET_ID(s, m) ((m) = (1ULL << 63) + flowsample__next(s))
#define FLOWSAMPLE__SET_U64(s, m) ((m) = (1ULL << 33) + flowsample__next(s))
#define FLOWSAMPLE__SET_I64(s, m) ((m) = (s)->base + 1000 * (int64_t)flowsample__next(s))
#define FLOWSAMPLE__SET_U32B(s, m) ((m) = (uint32_t)flowsample__next(s))
#define FLOWSAMPLE__SET_U32(s, m) ((m) = (1u << 31) + (uint32_t)flowsample__next(s))
#define FLOWSAMPLE__SET_U16(s, m) ((m) = (uint16_t)(1000 + flowsample__next(s)))
#define FLOWSAMPLE__SET_U8(s, m) ((m) = (uint8_t)(1 + flowsample__next(s) % 250))
#define FLOWSAMPLE__SET_IP(s, m) flowsample__ip((s), (m))
#define FLOWSAMPLE__SET_TEXT(s, m)                                                             \
    snprintf((m), sizeof(m), "%c%u", 'A' + (int)((s)->n % 26), (unsigned)flowsample__next(s))
#define FLOWSAMPLE__SET_TEXT8(s, m) FLOWSAMPLE__SET_TEXT(s, m)
#define FLOWSAMPLE__SET_TEXT24(s, m) FLOWSAMPLE__SET_TEXT(s, m)
#define FLOWSAMPLE__SET_BOOL(s, m) ((m) = (flowsample__next(s), 1))

#define FLOWSAMPLE__STAT_F(c, kind, name, num) FLOWSAMPLE__SET_##kind(s, f->name);

static inline void flowsample__stat(flowsample *s, flowrec_stat *f)
{
    FLOWREC_STAT_FIELDS(FLOWSAMPLE__STAT_F, _)
    f->count &= 0xffffffff; /* few samples, so that each mean (sum / count) is its own too */
}

#define FLOWSAMPLE__DIR_F(c, kind, name, num) FLOWSAMPLE__SET_##kind(s, d->name);
#define FLOWSAMPLE__DIR_S(c, member, name, sql, num) flowsample__stat(s, &d->member);

static inline void flowsample__dir(flowsample *s, flowrec_dir *d)
{
    FLOWREC_DIR_FIELDS(FLOWSAMPLE__DIR_F, FLOWSAMPLE__DIR_S, _)
    if (d->payload_bytes >= d->ip_bytes) { /* wire.c: payload within the IP bytes */
        uint64_t t = d->payload_bytes;
        d->payload_bytes = d->ip_bytes;
        d->ip_bytes = t + 1;
    }
}

#define FLOWSAMPLE__F(c, kind, name, num) FLOWSAMPLE__SET_##kind(s, r->name);
#define FLOWSAMPLE__EP(name, kind, leaf, num) FLOWSAMPLE__SET_##kind(s, r->name##_##leaf);
#define FLOWSAMPLE__E(c, name, num) FLOWREC_EP_FIELDS(FLOWSAMPLE__EP, name)
#define FLOWSAMPLE__D(c, name, num) flowsample__dir(s, &r->name);
#define FLOWSAMPLE__HS(c, kind, member, pbname, bit, num) FLOWSAMPLE__SET_##kind(s, r->member);
#define FLOWSAMPLE__H(c, name, num) FLOWREC_HS_FIELDS(FLOWSAMPLE__HS, FLOWREC_NOTHING, _)
#define FLOWSAMPLE__S(c, member, name, sql, num) flowsample__stat(s, &r->member);

/* Record k of a set: base is a time in nanoseconds (the times follow it by
 * microseconds). */
static inline void flowsample_make(flowrec *r, unsigned k, int64_t base)
{
    flowsample st = { 0, k, base }, *s = &st;
    memset(r, 0, sizeof *r);
    FLOWREC_FIELDS(FLOWSAMPLE__F, FLOWSAMPLE__E, FLOWSAMPLE__D, FLOWSAMPLE__H, FLOWSAMPLE__S, _)
    r->proto = 6;
    r->hs_seen = FLOWREC_HS_COMPLETE | FLOWREC_HS_IRTT;
}

#endif
