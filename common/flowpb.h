/* flowpb.h - a flow record (flowrec.h) to and from its protobuf message
 * (proto/mirrorscope.proto's FlowRecord), both ways expanded from the field
 * table (flowrec_fields.h): the recorder's publisher fills messages with
 * it, the CLI reads them back to print them with the recorder's own JSON
 * writer.
 */
#ifndef MSCOPE_FLOWPB_H
#define MSCOPE_FLOWPB_H

#include "flowrec.h"
#include "mirrorscope.pb-c.h"

/* One direction's message and the statistics it points to. */
#define FLOWPB__NOFIELD(c, kind, name, num)
#define FLOWPB__STAT(c, member, name, sql, num) Mirrorscope__Stat member;
typedef struct flowpb_dir {
    Mirrorscope__Direction msg;
    FLOWREC_DIR_FIELDS(FLOWPB__NOFIELD, FLOWPB__STAT, _)
} flowpb_dir;

/* A record's message and every sub-message it points to, so that filling
 * one allocates nothing. */
#define FLOWPB__EP(c, name, num) Mirrorscope__Endpoint name;
#define FLOWPB__DIR(c, name, num) flowpb_dir name;
#define FLOWPB__HS(c, name, num) Mirrorscope__Handshake name;
typedef struct flowpb {
    Mirrorscope__FlowRecord msg;
    FLOWREC_FIELDS(FLOWPB__NOFIELD, FLOWPB__EP, FLOWPB__DIR, FLOWPB__HS, FLOWPB__STAT, _)
} flowpb;

/* Fill p->msg from r. Addresses are 4 bytes for IPv4, 16 for IPv6; a
 * statistic without samples is all zero; the handshake is there for TCP
 * only. p->msg points into p and into r (addresses, strings): both must
 * outlive its packing. Cannot fail. */
void flowpb_fill(flowpb *p, const flowrec *r);

/* r from m, the inverse of flowpb_fill(): absent sub-messages and addresses
 * give zeros, strings are cut to r's sizes. Cannot fail. */
void flowpb_read(flowrec *r, const Mirrorscope__FlowRecord *m);

#endif
