/* schema.h - the coordinator's database schema, as data: the flow columns
 * (expanded from the flow record's field table, flowrec_fields.h; the DDL,
 * the binary COPY layout and the queries all read them)
 * and the SQL of each migration. db.c runs them; nothing here talks to
 * PostgreSQL.
 */
#ifndef MSCOPE_SCHEMA_H
#define MSCOPE_SCHEMA_H

#include "flowrec_fields.h"

#include <stddef.h>

/* The columns of `flows` (and `flows_live`) in COPY order: name, SQL type;
 * node, then the flow record's fields (flowrec_fields.h). The partition key
 * first_ts follows them in every COPY. */
extern const char *const schema_cols[][2];
#define SCHEMA__ONE(...) +1
#define SCHEMA__N_EP(c, name, num) FLOWREC_EP_FIELDS(SCHEMA__ONE, _)
#define SCHEMA__N_S(...) FLOWREC_STAT_FIELDS(SCHEMA__ONE, _)
#define SCHEMA__N_D(c, name, num) FLOWREC_DIR_FIELDS(SCHEMA__ONE, SCHEMA__N_S, _)
#define SCHEMA__N_HS(c, kind, member, pbname, bit, num) +1
#define SCHEMA__N_H(c, name, num) FLOWREC_HS_FIELDS(SCHEMA__N_HS, FLOWREC_NOTHING, _)
enum { SCHEMA_NCOLS = 1 FLOWREC_FIELDS(SCHEMA__ONE, SCHEMA__N_EP, SCHEMA__N_D, SCHEMA__N_H,
                                       SCHEMA__N_S, _) };

/* log2 buckets of a flow's mean ACK RTT in microseconds (flow_minutes). */
#define SCHEMA_RTT_BUCKETS 16

/* The columns of `app_records` (application transactions, apprec.h), in
 * COPY order: batch.c encodes them in this order and appquery.c reads them
 * by these names. One table for the three kinds, with a kind column (1 dns,
 * 2 tls, 3 http; docs/ARCHITECTURE.md says why): `name` is the kind's
 * server name (DNS qname, TLS SNI, HTTP Host) and `response_ns` its response
 * time (DNS response_ns, TLS hello_rtt_ns, HTTP response_ns), so filters,
 * aggregates and the one reader work alike for all; the other columns are
 * one kind's and NULL for the rest. A value the record has as null is NULL
 * (rcode and response_ns of an unanswered query, version, cipher and
 * response_ns without a ServerHello, name without an SNI or Host, status,
 * response_body_bytes and response_ns without a response). `error` is
 * batch_app_error()'s verdict, stored so that SQL filters by the same
 * definition the aggregates count with. Text is bytea:
 * the bytes as the recorder's parsers saw them, which need not be UTF-8. The
 * partition key ts (ts_ns as a timestamptz) follows them in every COPY. */
#define SCHEMA_APP_COLS(X)                                                                      \
    X(node, "text NOT NULL")                                                                    \
    X(kind, "smallint NOT NULL")                                                                \
    X(flow_id, "bigint NOT NULL")                                                               \
    X(vni, "integer NOT NULL")                                                                  \
    X(observer, "inet NOT NULL")                                                                \
    X(client_ip, "inet NOT NULL")                                                               \
    X(client_port, "integer NOT NULL")                                                          \
    X(server_ip, "inet NOT NULL")                                                               \
    X(server_port, "integer NOT NULL")                                                          \
    X(ts_ns, "bigint NOT NULL")                                                                 \
    X(truncated, "boolean NOT NULL")                                                            \
    X(error, "boolean NOT NULL")                                                                \
    X(name, "bytea")                                                                            \
    X(response_ns, "bigint")                                                                    \
    X(transport, "smallint")                                                                    \
    X(dns_id, "integer")                                                                        \
    X(qtype, "integer")                                                                         \
    X(rcode, "integer")                                                                         \
    X(answers, "integer")                                                                       \
    X(record_version, "integer")                                                                \
    X(client_version, "integer")                                                                \
    X(version, "integer")                                                                       \
    X(cipher, "integer")                                                                        \
    X(alpn, "bytea")                                                                            \
    X(method, "bytea")                                                                          \
    X(uri, "bytea")                                                                             \
    X(status, "integer")                                                                        \
    X(request_body_bytes, "bigint")                                                             \
    X(response_body_bytes, "bigint")
#define SCHEMA__APP_ENUM(name, type) SCHEMA_APP_##name,
typedef enum schema_app_col { SCHEMA_APP_COLS(SCHEMA__APP_ENUM) SCHEMA_APP_NCOLS } schema_app_col;

/* "a, b, c" of app_records' columns (or "a type, b type" with with_types). */
void schema_app_col_list(char *out, size_t len, int with_types);

/* The latest schema version. */
#define SCHEMA_VERSION 10

/* "a, b, c" (or "a type, b type" with with_types) into out. */
void schema_col_list(char *out, size_t len, int with_types);

/* The SQL that takes the schema from version - 1 to version (statements
 * separated by ';', run by db.c in one transaction with the version's row).
 * Returns 0, or -1 when out is too small or there is no such version. */
int schema_migration_sql(int version, char *out, size_t len);

/* A connection's own staging tables (TEMP: they go with it). 0 or -1. */
int schema_session_sql(char *out, size_t len);

/* The partition of `flows` for a UTC day (days since the epoch): its name
 * (flows_YYYYMMDD) and its DDL (0 or -1). */
void schema_partition_name(int day, char *out, size_t len);
int schema_partition_sql(int day, char *out, size_t len);

/* The same for any day-partitioned table (parent "flows" or "app_records"):
 * PARENT_YYYYMMDD. */
void schema_part_name(const char *parent, int day, char *out, size_t len);
int schema_part_sql(const char *parent, int day, char *out, size_t len);

#endif
