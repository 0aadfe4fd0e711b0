/* flowpb.c - flow records to and from protobuf (see flowpb.h).
 *
 * DESIGN: one function per group of the field table (flowrec_fields.h) -
 * endpoint, direction, handshake, statistic - each expanding its rows; a
 * value is copied by its kind's class (an integer, an address, a string, a
 * flag). The groups themselves are fixed by the .proto's messages; their
 * rows are not, so a field added to the table is carried with no change
 * here.
 */
#include "flowpb.h"

#include "decode.h"

#include <stdio.h>
#include <string.h>

/* ---- flowrec -> protobuf ------------------------------------------------- */

static void flowpb__ip(ProtobufCBinaryData *out, const uint8_t ip[16])
{
    static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
    size_t len = memcmp(ip, mapped, 12) == 0 ? 4 : 16;
    out->data = (uint8_t *)ip + (16 - len); /* only read while packing */
    out->len = len;
}

#define FILL_UINT(dst, src) ((dst) = (src))
#define FILL_SINT(dst, src) ((dst) = (src))
#define FILL_IP(dst, src) flowpb__ip(&(dst), (src))
#define FILL_TEXT(dst, src) ((dst) = (char *)(src))
#define FILL_BOOL(dst, src) ((dst) = (src) != 0)
#define FILL(kind, dst, src) FLOWREC_CAT(FILL_, FLOWREC_CLASS_##kind)(dst, src)

#define FILL_STAT_FIELD(c, kind, name, num) FILL(kind, s->name, f->name);

static Mirrorscope__Stat *flowpb__fill_stat(Mirrorscope__Stat *s, const flowrec_stat *f)
{
    mirrorscope__stat__init(s);
    if (f->count) { FLOWREC_STAT_FIELDS(FILL_STAT_FIELD, _) }
    return s;
}

#define FILL_DIR_FIELD(c, kind, name, num) FILL(kind, p->msg.name, f->name);
#define FILL_DIR_STAT(c, member, name, sql, num) p->msg.name = flowpb__fill_stat(&p->member, &f->member);

static Mirrorscope__Direction *flowpb__fill_dir(flowpb_dir *p, const flowrec_dir *f)
{
    mirrorscope__direction__init(&p->msg);
    FLOWREC_DIR_FIELDS(FILL_DIR_FIELD, FILL_DIR_STAT, _)
    return &p->msg;
}

#define FILL_HS_FIELD(c, kind, member, pbname, bit, num) FILL(kind, h->pbname, r->member);
#define FILL_HS_DERIVED(c, name, num, bits, a, b)                                              \
    if ((r->hs_seen & (bits)) == (bits)) h->name = r->a - r->b;

static Mirrorscope__Handshake *flowpb__fill_hs(Mirrorscope__Handshake *h, const flowrec *r)
{
    mirrorscope__handshake__init(h);
    h->complete = (r->hs_seen & FLOWREC_HS_COMPLETE) == FLOWREC_HS_COMPLETE;
    FLOWREC_HS_FIELDS(FILL_HS_FIELD, FILL_HS_DERIVED, _)
    return h;
}

#define FILL_F(c, kind, name, num) FILL(kind, p->msg.name, r->name);
#define FILL_EP_FIELD(name, kind, leaf, num) FILL(kind, p->name.leaf, r->name##_##leaf);
#define FILL_E(c, name, num)                                                                   \
    mirrorscope__endpoint__init(&p->name);                                                     \
    FLOWREC_EP_FIELDS(FILL_EP_FIELD, name)                                                     \
    p->msg.name = &p->name;
#define FILL_D(c, name, num) p->msg.name = flowpb__fill_dir(&p->name, &r->name);
#define FILL_H(c, name, num)                                                                   \
    if (r->proto == 6) p->msg.name = flowpb__fill_hs(&p->name, r);
#define FILL_S(c, member, name, sql, num) p->msg.name = flowpb__fill_stat(&p->member, &r->member);

void flowpb_fill(flowpb *p, const flowrec *r)
{
    mirrorscope__flow_record__init(&p->msg);
    FLOWREC_FIELDS(FILL_F, FILL_E, FILL_D, FILL_H, FILL_S, _)
}

/* ---- protobuf -> flowrec ------------------------------------------------- */

static void flowpb__ip16(uint8_t out[16], ProtobufCBinaryData ip)
{
    memset(out, 0, 16);
    if (ip.len == 4) decode_map4(ip.data, out);
    else if (ip.len == 16) memcpy(out, ip.data, 16);
}

#define READ_UINT(dst, src) ((dst) = (src))
#define READ_SINT(dst, src) ((dst) = (src))
#define READ_IP(dst, src) flowpb__ip16((dst), (src))
#define READ_TEXT(dst, src) snprintf((dst), sizeof(dst), "%s", (src) ? (src) : "")
#define READ_BOOL(dst, src) ((dst) = (src) != 0)
#define READ(kind, dst, src) FLOWREC_CAT(READ_, FLOWREC_CLASS_##kind)(dst, src)

#define READ_STAT_FIELD(c, kind, name, num) READ(kind, f->name, s->name);

static void flowpb__read_stat(flowrec_stat *f, const Mirrorscope__Stat *s)
{
    if (s) { FLOWREC_STAT_FIELDS(READ_STAT_FIELD, _) }
}

#define READ_DIR_FIELD(c, kind, name, num) READ(kind, f->name, m->name);
#define READ_DIR_STAT(c, member, name, sql, num) flowpb__read_stat(&f->member, m->name);

static void flowpb__read_dir(flowrec_dir *f, const Mirrorscope__Direction *m)
{
    if (m) { FLOWREC_DIR_FIELDS(READ_DIR_FIELD, READ_DIR_STAT, _) }
}

#define READ_HS_FIELD(c, kind, member, pbname, bit, num) READ(kind, r->member, h->pbname);

static void flowpb__read_hs(flowrec *r, const Mirrorscope__Handshake *h)
{
    if (h) { FLOWREC_HS_FIELDS(READ_HS_FIELD, FLOWREC_NOTHING, _) }
}

#define READ_F(c, kind, name, num) READ(kind, r->name, m->name);
#define READ_EP_FIELD(name, kind, leaf, num) READ(kind, r->name##_##leaf, m->name->leaf);
#define READ_E(c, name, num)                                                                   \
    if (m->name) { FLOWREC_EP_FIELDS(READ_EP_FIELD, name) }
#define READ_D(c, name, num) flowpb__read_dir(&r->name, m->name);
#define READ_H(c, name, num) flowpb__read_hs(r, m->name);
#define READ_S(c, member, name, sql, num) flowpb__read_stat(&r->member, m->name);

void flowpb_read(flowrec *r, const Mirrorscope__FlowRecord *m)
{
    memset(r, 0, sizeof *r);
    FLOWREC_FIELDS(READ_F, READ_E, READ_D, READ_H, READ_S, _)
}
