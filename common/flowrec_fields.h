/* flowrec_fields.h - the one definition of a flow record's fields (an
 * X-macro table). Everything that holds or moves a record is expanded from
 * it: the C struct (flowrec.h), the JSON writer (flowrec.c), the protobuf
 * mapping both ways (flowpb.c), the coordinator's columns and binary COPY
 * encoder (coordinator/schema.c, batch.c) and its reader of query rows
 * (coordinator/db.c). proto/mirrorscope.proto and the migrations stay
 * written by hand; tests/unit/test_flowpb.c checks the .proto's messages
 * against this table field by field (name, number, type, and nothing
 * missing either way). `flowgen --fields` prints the table as JSON, which
 * tests/integration/test_flow_fields.py walks: the `flows` columns and
 * types, and every field from a recorder's JSON over the bus and through
 * PostgreSQL to `mscope flows --json`.
 *
 * Adding a metric is one line here (a per-direction TCP counter: one line
 * in FLOWREC_DIR_FIELDS), its field in the .proto and its column in a
 * migration; docs/ARCHITECTURE.md says how.
 *
 * Rows name a kind; each kind fixes the C type, the JSON value, the
 * protobuf type and the SQL type:
 *
 *   kind    C           JSON              protobuf  SQL
 *   ID      uint64_t    number, then      uint64    bigint NOT NULL (the flow id:
 *                       "node"                               JSON puts the node after it)
 *   U64     uint64_t    number            uint64    bigint
 *   I64     int64_t     number            int64     bigint
 *   U32B    uint32_t    number            uint32    bigint
 *   U32     uint32_t    number            uint32    integer  (stored as int4: the
 *                                                             bits, read back as uint32)
 *   U16     uint16_t    number            uint32    integer
 *   U8      uint8_t     number            uint32    smallint
 *   IP      uint8_t[16] "address" text    bytes     inet     (IPv4 mapped in C; 4 or
 *                                                             16 bytes on the wire)
 *   TEXT8   char[8]     string            string    text
 *   TEXT24  char[24]    string            string    text
 *   BOOL    int         true/false        bool      boolean
 */
#ifndef MSCOPE_FLOWREC_FIELDS_H
#define MSCOPE_FLOWREC_FIELDS_H

/* The record, in SQL column (COPY) order; the column `node` precedes it
 * and the partition key first_ts follows it. Every row passes c, a context
 * of the caller's choice, on; the sub-tables below do the same. Groups:
 *   F(c, kind, name, pbnum)   a value: C member, JSON key, protobuf field
 *                             and SQL column are all `name`
 *   E(c, name, pbnum)         an endpoint (FLOWREC_EP_FIELDS): C members
 *                             name_ip, name_port; JSON object and protobuf
 *                             Endpoint `name`; columns name_ip, name_port
 *   D(c, name, pbnum)         a direction (FLOWREC_DIR_FIELDS): C member
 *                             `name` (flowrec_dir); JSON object and protobuf
 *                             Direction `name`; columns name_<field>
 *   H(c, name, pbnum)         the TCP handshake (FLOWREC_HS_FIELDS): its C
 *                             members and columns are at the top level; JSON
 *                             object and protobuf Handshake `name`, written
 *                             for TCP (proto 6) only
 *   S(c, member, name, sql, pbnum)  a statistic (flowrec_stat,
 *                             FLOWREC_STAT_FIELDS): C member `member`; JSON
 *                             object and protobuf Stat `name`; columns
 *                             sql_count, sql_min, sql_max, sql_sum
 */
#define FLOWREC_FIELDS(F, E, D, H, S, c)                                                       \
    F(c, ID, flow_id, 1)                                                                       \
    F(c, U32B, vni, 2)                                                                         \
    F(c, IP, observer, 3)                                                                      \
    F(c, U8, proto, 4)                                                                         \
    E(c, client, 5)                                                                            \
    E(c, server, 6)                                                                            \
    F(c, I64, first_ns, 7)                                                                     \
    F(c, I64, last_ns, 8)                                                                      \
    D(c, c2s, 9)                                                                               \
    D(c, s2c, 10)                                                                              \
    H(c, handshake, 11)                                                                        \
    S(c, app_response, app_response_ns, app, 12)                                               \
    F(c, TEXT8, conn_state, 13)                                                                \
    F(c, TEXT24, history, 14)                                                                  \
    F(c, BOOL, final, 15)

/* An endpoint: X(c, kind, name, pbnum). */
#define FLOWREC_EP_FIELDS(X, c)                                                                \
    X(c, IP, ip, 1)                                                                            \
    X(c, U16, port, 2)

/* One direction of a flow, expanded for c2s and s2c: X(c, kind, name, pbnum)
 * for a counter (C member, JSON key, protobuf field `name`; column
 * <dir>_name), S(c, member, name, sql, pbnum) for a statistic as above (its
 * columns <dir>_<sql>_count, ...). */
#define FLOWREC_DIR_FIELDS(X, S, c)                                                            \
    X(c, U64, packets, 1)                                                                      \
    X(c, U64, ip_bytes, 2)                                                                     \
    X(c, U64, payload_bytes, 3)                                                                \
    X(c, U32, retransmissions, 4)                                                              \
    X(c, U32, fast_retransmissions, 5)                                                         \
    X(c, U32, spurious_retransmissions, 6)                                                     \
    X(c, U32, out_of_order, 7)                                                                 \
    X(c, U32, dup_acks, 8)                                                                     \
    X(c, U32, lost_segments, 9)                                                                \
    X(c, U32, zero_windows, 10)                                                                \
    X(c, U32, window_full, 11)                                                                 \
    X(c, U32, keep_alives, 12)                                                                 \
    X(c, U32, rsts, 13)                                                                        \
    X(c, U32, fins, 14)                                                                        \
    S(c, rtt, rtt_ns, rtt, 15)

/* The handshake, in JSON order:
 *   X(c, kind, member, pbname, bit, pbnum)  a stored value (C member and column
 *       `member`, protobuf field `pbname`), shown in JSON only when `bit` is
 *       set in hs_seen; bit 0: hs_seen itself, which JSON shows as
 *       "complete" and as which times are there
 *   V(c, name, pbnum, bits, a, b)  derived: member a minus member b, when all
 *       of `bits` are set (JSON and protobuf only, not stored)
 * "complete" (protobuf field 1: SYN, SYN/ACK and ACK seen) comes first. */
#define FLOWREC_HS_COMPLETE_PBNUM 1
#define FLOWREC_HS_FIELDS(X, V, c)                                                             \
    X(c, U8, hs_seen, seen, 0, 8)                                                              \
    X(c, I64, syn_ns, syn_ns, FLOWREC_HS_SYN, 2)                                               \
    X(c, I64, synack_ns, synack_ns, FLOWREC_HS_SYNACK, 3)                                      \
    X(c, I64, ack_ns, ack_ns, FLOWREC_HS_ACK, 4)                                               \
    V(c, server_setup_ns, 5, FLOWREC_HS_SYN | FLOWREC_HS_SYNACK, synack_ns, syn_ns)            \
    V(c, client_setup_ns, 6, FLOWREC_HS_SYNACK | FLOWREC_HS_ACK, ack_ns, synack_ns)            \
    X(c, I64, initial_rtt_ns, initial_rtt_ns, FLOWREC_HS_IRTT, 7)

#define FLOWREC_HS_SYN 0x01
#define FLOWREC_HS_SYNACK 0x02
#define FLOWREC_HS_ACK 0x04
#define FLOWREC_HS_IRTT 0x08
#define FLOWREC_HS_COMPLETE (FLOWREC_HS_SYN | FLOWREC_HS_SYNACK | FLOWREC_HS_ACK)

/* A statistic of durations (nanoseconds), in protobuf and column order:
 * X(c, kind, name, pbnum). JSON shows count, then min, mean (sum / count)
 * and max when count is not 0. */
#define FLOWREC_STAT_FIELDS(X, c)                                                              \
    X(c, U64, count, 1)                                                                        \
    X(c, I64, min, 2)                                                                          \
    X(c, I64, max, 3)                                                                          \
    X(c, I64, sum, 4)

/* ---- the kinds ---------------------------------------------------------- */

/* FLOWREC_DECL_kind(m): a C declaration of member m. */
#define FLOWREC_DECL_ID(m) uint64_t m
#define FLOWREC_DECL_U64(m) uint64_t m
#define FLOWREC_DECL_I64(m) int64_t m
#define FLOWREC_DECL_U32B(m) uint32_t m
#define FLOWREC_DECL_U32(m) uint32_t m
#define FLOWREC_DECL_U16(m) uint16_t m
#define FLOWREC_DECL_U8(m) uint8_t m
#define FLOWREC_DECL_IP(m) uint8_t m[16]
#define FLOWREC_DECL_TEXT8(m) char m[8]
#define FLOWREC_DECL_TEXT24(m) char m[24]
#define FLOWREC_DECL_BOOL(m) int m

/* FLOWREC_SQL_kind: the column's SQL type. */
#define FLOWREC_SQL_ID "bigint NOT NULL"
#define FLOWREC_SQL_U64 "bigint"
#define FLOWREC_SQL_I64 "bigint"
#define FLOWREC_SQL_U32B "bigint"
#define FLOWREC_SQL_U32 "integer"
#define FLOWREC_SQL_U16 "integer"
#define FLOWREC_SQL_U8 "smallint"
#define FLOWREC_SQL_IP "inet"
#define FLOWREC_SQL_TEXT8 "text"
#define FLOWREC_SQL_TEXT24 "text"
#define FLOWREC_SQL_BOOL "boolean"

/* FLOWREC_PB_kind: the protobuf type, as protobuf-c's PROTOBUF_C_TYPE_<it>. */
#define FLOWREC_PB_ID UINT64
#define FLOWREC_PB_U64 UINT64
#define FLOWREC_PB_I64 INT64
#define FLOWREC_PB_U32B UINT32
#define FLOWREC_PB_U32 UINT32
#define FLOWREC_PB_U16 UINT32
#define FLOWREC_PB_U8 UINT32
#define FLOWREC_PB_IP BYTES
#define FLOWREC_PB_TEXT8 STRING
#define FLOWREC_PB_TEXT24 STRING
#define FLOWREC_PB_BOOL BOOL

/* FLOWREC_CLASS_kind: how a value is handled where the C type does not
 * matter: UINT or SINT (an integer, unsigned or signed), IP, TEXT, BOOL. */
#define FLOWREC_CLASS_ID UINT
#define FLOWREC_CLASS_U64 UINT
#define FLOWREC_CLASS_I64 SINT
#define FLOWREC_CLASS_U32B UINT
#define FLOWREC_CLASS_U32 UINT
#define FLOWREC_CLASS_U16 UINT
#define FLOWREC_CLASS_U8 UINT
#define FLOWREC_CLASS_IP IP
#define FLOWREC_CLASS_TEXT8 TEXT
#define FLOWREC_CLASS_TEXT24 TEXT
#define FLOWREC_CLASS_BOOL BOOL

/* Helpers for expanding: FLOWREC_CAT(a, b) pastes after expanding both. */
#define FLOWREC__CAT2(a, b) a##b
#define FLOWREC_CAT(a, b) FLOWREC__CAT2(a, b)
#define FLOWREC_NOTHING(...)

#endif
