/* test_flowpb.c - the field table (common/flowrec_fields.h) against the
 * hand-written proto/mirrorscope.proto, and the protobuf mapping expanded
 * from it (common/flowpb.c).
 *
 * The .proto check walks the table and protobuf-c's descriptors: every row
 * is a field of its message with the same name, number and type (a group a
 * sub-message of the right type), and every message has no field the table
 * lacks. So a metric added to one and not the other fails here, loudly.
 * The round trip: records whose every field has its own value
 * (tests/tools/flowsample.h) come back from packed protobuf unchanged.
 */
#include "flowpb.h"
#include "test.h"
#include "../tools/flowsample.h"

#include <jansson.h>
#include <stdlib.h>

static size_t test__check(const ProtobufCMessageDescriptor *d, const char *name, unsigned num,
                          ProtobufCType type, const ProtobufCMessageDescriptor *sub)
{
    const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field_by_name(d, name);
    if (!f) {
        fprintf(stderr, "%s has no field %s (the table has it)\n", d->name, name);
        ASSERT_TRUE(f != NULL);
        return 1;
    }
    if (f->id != num || f->type != type || f->label == PROTOBUF_C_LABEL_REPEATED ||
        (sub && f->descriptor != sub))
        fprintf(stderr, "%s.%s: number %u type %d in the .proto, %u %d in the table\n", d->name,
                name, f->id, (int)f->type, num, (int)type);
    ASSERT_EQ(f->id, num);
    ASSERT_EQ((int)f->type, (int)type);
    ASSERT_TRUE(f->label != PROTOBUF_C_LABEL_REPEATED);
    if (sub) ASSERT_TRUE(f->descriptor == sub);
    return 1;
}

#define PBTYPE(kind) FLOWREC_CAT(PROTOBUF_C_TYPE_, FLOWREC_PB_##kind)
#define MSG PROTOBUF_C_TYPE_MESSAGE

/* One message's rows counted against its fields, so none is missing. */
static void test__count(const ProtobufCMessageDescriptor *d, size_t rows)
{
    if (rows != d->n_fields)
        fprintf(stderr, "%s: %u fields in the .proto, %zu in the table\n", d->name, d->n_fields, rows);
    ASSERT_EQ(rows, (size_t)d->n_fields);
}

#define CK_LEAF(d, kind, name, num) n += test__check(d, #name, num, PBTYPE(kind), NULL);
#define CK_STAT(d, member, name, sql, num) n += test__check(d, #name, num, MSG, &mirrorscope__stat__descriptor);
#define CK_HS(d, kind, member, pbname, bit, num) n += test__check(d, #pbname, num, PBTYPE(kind), NULL);
#define CK_HS_V(d, name, num, bits, a, b) n += test__check(d, #name, num, PROTOBUF_C_TYPE_INT64, NULL);
#define CK_E(d, name, num) n += test__check(d, #name, num, MSG, &mirrorscope__endpoint__descriptor);
#define CK_D(d, name, num) n += test__check(d, #name, num, MSG, &mirrorscope__direction__descriptor);
#define CK_H(d, name, num) n += test__check(d, #name, num, MSG, &mirrorscope__handshake__descriptor);

static void test_proto_matches_table(void)
{
    size_t n = 0;
    const ProtobufCMessageDescriptor *rec = &mirrorscope__flow_record__descriptor;
    FLOWREC_FIELDS(CK_LEAF, CK_E, CK_D, CK_H, CK_STAT, rec)
    test__count(rec, n);

    n = 0;
    FLOWREC_EP_FIELDS(CK_LEAF, &mirrorscope__endpoint__descriptor)
    test__count(&mirrorscope__endpoint__descriptor, n);

    n = 0;
    FLOWREC_DIR_FIELDS(CK_LEAF, CK_STAT, &mirrorscope__direction__descriptor)
    test__count(&mirrorscope__direction__descriptor, n);

    n = 0;
    const ProtobufCMessageDescriptor *hs = &mirrorscope__handshake__descriptor;
    n += test__check(hs, "complete", FLOWREC_HS_COMPLETE_PBNUM, PROTOBUF_C_TYPE_BOOL, NULL);
    FLOWREC_HS_FIELDS(CK_HS, CK_HS_V, hs)
    test__count(hs, n);

    n = 0;
    FLOWREC_STAT_FIELDS(CK_LEAF, &mirrorscope__stat__descriptor)
    test__count(&mirrorscope__stat__descriptor, n);
}

/* flowrec -> packed FlowRecord -> flowrec gives the record back. */
static void test_round_trip(void)
{
    for (unsigned k = 0; k < 4; k++) {
        flowrec in, out;
        flowsample_make(&in, k, 1700000000000000000LL);
        flowpb p;
        flowpb_fill(&p, &in);
        size_t len = mirrorscope__flow_record__get_packed_size(&p.msg);
        uint8_t *buf = malloc(len);
        mirrorscope__flow_record__pack(&p.msg, buf);
        Mirrorscope__FlowRecord *m = mirrorscope__flow_record__unpack(NULL, len, buf);
        ASSERT_TRUE(m != NULL);
        if (m) {
            flowpb_read(&out, m);
            ASSERT_TRUE(memcmp(&in, &out, sizeof in) == 0);
            /* the derived handshake values */
            ASSERT_TRUE(m->handshake && m->handshake->complete);
            if (m->handshake) ASSERT_EQ(m->handshake->server_setup_ns, in.synack_ns - in.syn_ns);
            mirrorscope__flow_record__free_unpacked(m, NULL);
        }
        free(buf);
        /* and its JSON parses (flow ids past 2^63: jansson reads them as reals) */
        char line[4096];
        int jl = flowrec_json(&in, "n", line, sizeof line);
        ASSERT_TRUE(jl > 0);
        json_t *j = jl > 0 ? json_loadb(line, (size_t)jl, JSON_DECODE_INT_AS_REAL, NULL) : NULL;
        ASSERT_TRUE(j != NULL);
        json_decref(j);
    }
}

/* A statistic without samples is all zero on the wire; UDP has no handshake. */
static void test_empty_parts(void)
{
    flowrec in;
    flowsample_make(&in, 0, 1700000000000000000LL);
    in.proto = 17;
    in.c2s.rtt.count = 0;
    flowpb p;
    flowpb_fill(&p, &in);
    ASSERT_TRUE(p.msg.handshake == NULL);
    ASSERT_TRUE(p.msg.c2s->rtt_ns->min == 0 && p.msg.c2s->rtt_ns->sum == 0);
    ASSERT_EQ(p.msg.client->ip.len, (size_t)4);
}

int main(void)
{
    RUN(test_proto_matches_table);
    RUN(test_round_trip);
    RUN(test_empty_parts);
    TEST_EXIT();
}
