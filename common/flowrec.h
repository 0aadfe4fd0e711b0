/* flowrec.h - a flow record as published and printed: one bidirectional
 * conversation seen from one observation point, with per-direction TCP
 * metrics defined as Wireshark's TCP analysis defines them
 * (docs/TCP_ANALYTICS.md). Its fields are defined once, in
 * flowrec_fields.h, and the struct below is expanded from that table; so is
 * the JSON writer (flowrec.c), the protobuf mapping (flowpb.h) and the
 * coordinator's columns.
 */
#ifndef MSCOPE_FLOWREC_H
#define MSCOPE_FLOWREC_H

#include <stddef.h>
#include <stdint.h>

#include "flowrec_fields.h"

/* A statistic of durations, nanoseconds (FLOWREC_STAT_FIELDS names its
 * members; this order is kept for the positional initialisers in tests). */
typedef struct flowrec_stat {
    int64_t min, max, sum;
    uint64_t count;
} flowrec_stat;

#define FLOWREC__MEMBER(c, kind, name, num) FLOWREC_DECL_##kind(name);
#define FLOWREC__STAT(c, member, name, sql, num) flowrec_stat member;
#define FLOWREC__EP(c, name, num) FLOWREC_EP_FIELDS(FLOWREC__EP_MEMBER, name)
#define FLOWREC__EP_MEMBER(c, kind, name, num) FLOWREC_DECL_##kind(c##_##name);
#define FLOWREC__DIR(c, name, num) flowrec_dir name;
#define FLOWREC__HS_MEMBER(c, kind, member, pbname, bit, num) FLOWREC_DECL_##kind(member);
#define FLOWREC__HS(c, name, num) FLOWREC_HS_FIELDS(FLOWREC__HS_MEMBER, FLOWREC_NOTHING, _)

/* One direction's counters (flowrec_fields.h: FLOWREC_DIR_FIELDS). */
typedef struct flowrec_dir {
    FLOWREC_DIR_FIELDS(FLOWREC__MEMBER, FLOWREC__STAT, _)
} flowrec_dir;

/* The record (flowrec_fields.h: FLOWREC_FIELDS): client_ip, server_ip and
 * observer IPv4 mapped; hs_seen FLOWREC_HS_* bits; final 0 for an interim
 * record, which a later one replaces. */
typedef struct flowrec {
    FLOWREC_FIELDS(FLOWREC__MEMBER, FLOWREC__EP, FLOWREC__DIR, FLOWREC__HS, FLOWREC__STAT, _)
} flowrec;

/* One JSON object (no newline, not NUL-terminated) into buf; node names the
 * recorder. Returns the length, or -1 if buf is too small (2 KiB always
 * suffices for node names under 256 bytes). */
int flowrec_json(const flowrec *r, const char *node, char *buf, size_t len);

#endif
