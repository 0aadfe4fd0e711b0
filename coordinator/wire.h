/* wire.h - what the coordinator accepts from the bus.
 *
 * A message that protobuf decodes can still hold values no recorder sends:
 * a node name of a megabyte, times before 1970 or past 2262, counters that
 * do not fit PostgreSQL's bigint, an RTT minimum above its maximum. Each
 * would fail later - in PostgreSQL (holding up every batch queued behind
 * it), in 64-bit sums (signed overflow), or in minute arithmetic - so every
 * field is checked here, at the edge, against what the code downstream can
 * take. A bad record is dropped alone (counted); a bad node name drops its
 * batch; a heartbeat's counters are clamped to what a bigint holds.
 */
#ifndef MSCOPE_WIRE_H
#define MSCOPE_WIRE_H

#include "apprec.h"
#include "mirrorscope.pb-c.h"

#define WIRE_NODE_MAX 255     /* bytes of a node name (the registry keeps 256) */
/* A per-flow counter: 4.5 PB or 4.5e15 packets, beyond any flow's life;
 * sums of 2048 such still fit an int64. */
#define WIRE_COUNT_MAX (1LL << 52)

/* 1 when node is a usable name: 1..WIRE_NODE_MAX bytes, no control
 * characters or backslash (names go into COPY text and logs); else 0 with
 * *why set. */
int wire_node_ok(const char *node, const char **why);

/* 1 when every field of r is in range; else 0 with *why naming the field. */
int wire_record_ok(const Mirrorscope__FlowRecord *r, const char **why);

/* 1 when m packs into something protobuf-c unpacks again. A field
 * numbered 0, say, is kept as "unknown" on the way in but cannot be read
 * back - and whatever keeps a message by copying it (pbcopy: the
 * registry's heartbeats, a monitor request's or a drill-down's job) would
 * abort. */
int wire_round_trip(const ProtobufCMessage *m);

/* 1 when every value of an application record (read from the bus by
 * apppb_read(), which has already refused what the record cannot hold) is
 * in range: its time, VNI, the DNS transport (UDP or TCP) and rcode (12
 * bits, with EDNS), the HTTP status (100-999), body lengths (WIRE_COUNT_MAX)
 * and response times (as a flow's durations: negative ones are possible
 * when a capture's clock steps back, but sums of them must not overflow).
 * Text is stored as bytes (bytea): any byte but NUL goes. Else 0 with *why
 * naming the field. */
int wire_app_ok(const apprec *r, const char **why);

/* Check a heartbeat's names and bring its numbers into range (counters to
 * at most INT64_MAX, times into [0, the last representable second]).
 * Returns 1 usable, 0 with *why set. */
int wire_heartbeat_fix(Mirrorscope__Heartbeat *h, const char **why);

#endif
