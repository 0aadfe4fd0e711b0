/* exprscan.h - read a tcpdump filter expression for what the index can use.
 *
 * libpcap compiles the expression into BPF for the exact per-packet match;
 * this module parses the same text a second time, only to learn which flows
 * of a segment can possibly hold a matching packet, so the search reads only
 * their packets. Two rules keep it safe:
 *   - it may say "maybe" too often, never "no" wrongly: each term is judged on
 *     a flow key as TRUE, FALSE or UNKNOWN (three-valued logic), and a flow is
 *     skipped only when the whole expression is FALSE for it;
 *   - anything it does not understand (hostnames, byte offsets, relational
 *     expressions, terms after `vlan`/`mpls`/`pppoes`, which shift every later
 *     offset in libpcap) is UNKNOWN, and a parse it cannot follow at all
 *     makes the whole expression UNKNOWN: a full scan, still exact.
 */
#ifndef MSCOPE_EXPRSCAN_H
#define MSCOPE_EXPRSCAN_H

#include "flowkey.h"
#include "segindex.h"

#include <stdint.h>

typedef struct exprscan exprscan_t;

enum { ES_FALSE = 0, ES_TRUE = 1, ES_UNKNOWN = 2 };

/* Parse expr (NULL or empty = everything). Never fails: an expression it
 * cannot follow becomes "unknown everywhere". The caller has already checked
 * the expression with libpcap. */
exprscan_t *exprscan_new(const char *expr);
void exprscan_free(exprscan_t *e);

/* Judge a flow key: ES_FALSE means no packet of the flow can match. */
int exprscan_eval(const exprscan_t *e, const flowkey_t *k);

/* Candidate flows of one segment, via its host and port lookup tables.
 * Returns the number of flow ids stored in *out (sorted, unique, malloc'd,
 * caller frees), -1 when the expression gives the lookups nothing to use
 * (then every flow is a candidate), or -2 when a chunk of the tables they
 * read failed its checksum (ix->chk->damage says which). Odd flows are not
 * included: callers add them (they are always candidates). */
long exprscan_candidates(const exprscan_t *e, const segidx_t *ix, uint32_t **out);

/* Coarse lookups for a whole unit of flows (a segment, by its catalog
 * summary): whether it may hold a host address in [lo, hi] (IPv4 mapped),
 * or a port in [lo, hi]. A 0 must be certain; 1 may be wrong. */
typedef struct exprscan_probe {
    int (*hosts)(const void *ctx, const uint8_t lo[16], const uint8_t hi[16]);
    int (*ports)(const void *ctx, uint16_t lo, uint16_t hi);
    const void *ctx;
} exprscan_probe;

/* 0 when exprscan_candidates() would find no flow at all in a unit the
 * probe answers for (so only its odd flows could match), 1 otherwise. It
 * follows the same terms the lookup tables would: what they cannot narrow
 * (`not`, terms after `vlan`, a parse it could not follow) is 1. */
int exprscan_may_have_candidates(const exprscan_t *e, const exprscan_probe *p);

/* 1 when the parse found host/port terms the lookup tables can use. */
int exprscan_uses_index(const exprscan_t *e);

/* 1 when the expression was followed, so flows can be judged with
 * exprscan_eval; 0 means a full scan of every packet in the time range. */
int exprscan_parsed(const exprscan_t *e);

/* A one-line description of the parse, for --debug and tests. */
void exprscan_describe(const exprscan_t *e, char *buf, unsigned buflen);

#endif
