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

/* The latest schema version. */
#define SCHEMA_VERSION 9

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

#endif
