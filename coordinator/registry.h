/* registry.h - the coordinator's node registry: every recorder heard on the
 * bus, its last heartbeat, and the sequence checks that tell lost messages
 * (a gap) from a restart.
 *
 * The registry lives on the coordinator's loop thread. What PostgreSQL must
 * learn (the `nodes` table) is taken out as a snapshot of the heartbeats that
 * changed (registry_take_dirty), written by a database job, and handed back
 * on failure (registry_mark_dirty), so the loop never waits for the database.
 *
 * Each node's clock is compared with ours: a heartbeat says when it was sent
 * by the recorder's wall clock, and we note when it came by ours. The
 * difference is its clock's offset plus the message's delay, which is never
 * negative: so the largest of the last REGISTRY_CLOCK_SAMPLES differences
 * (the least delayed) is the offset reported. Beyond REGISTRY_CLOCK_WARN_NS
 * either way a warning is logged, again every REGISTRY_CLOCK_WARN_EVERY_NS
 * while it lasts, and once when the clock agrees again. Nothing else uses
 * a recorder's clock here: liveness is our own time since its last
 * heartbeat, and its flow records keep the times it gave them.
 */
#ifndef MSCOPE_REGISTRY_H
#define MSCOPE_REGISTRY_H

#include "mirrorscope.pb-c.h"
#include "scatter.h"

#include <stddef.h>
#include <stdint.h>

typedef struct registry registry_t;

#define REGISTRY_CLOCK_SAMPLES 8
#define REGISTRY_CLOCK_WARN_NS 5000000000LL           /* 5 s */
#define REGISTRY_CLOCK_WARN_EVERY_NS 600000000000LL   /* 10 min */

typedef struct registry_stats {
    uint64_t nodes, gaps, restarts, heartbeats;
} registry_stats;

registry_t *registry_new(void);
void registry_free(registry_t *r); /* accepts NULL */

/* A flow batch's header: check its sequence (gaps and restarts are counted
 * and logged). The node is created on first sight. */
void registry_flow_seen(registry_t *r, const char *node, int64_t start_ns, uint64_t seq);
/* The same for an application record batch (topic "app", its own sequence). */
void registry_app_seen(registry_t *r, const char *node, int64_t start_ns, uint64_t seq);

/* A heartbeat: check its sequence and keep it (takes ownership of *hb, an
 * unpacked message, and NULLs the caller's pointer). key is the CURVE key
 * its bus connection was let in with ("" or NULL when plain): searches are
 * encrypted to it. */
void registry_heartbeat(registry_t *r, Mirrorscope__Heartbeat **hb, const char *key);

/* The nodes to search: each named one (all must be known: else -1 with the
 * unknown name in err), or with no names every node heard from within
 * alive_ns. Fills out (names and endpoints borrowed until the registry
 * changes: use them at once) sorted by name, at most max. Returns the
 * count. */
int registry_search_nodes(registry_t *r, char *const *names, size_t nnames, int64_t alive_ns,
                          scatter_node *out, int max, char *err, size_t errlen);

/* A node's row for the `nodes` table. */
typedef struct registry_row {
    Mirrorscope__Heartbeat *hb; /* owned by the snapshot */
    uint64_t gaps;
    int clock_known;            /* 0: its heartbeats carry no send time */
    int64_t clock_offset_ns;    /* its clock minus ours (see above) */
} registry_row;

/* Take the heartbeats that changed since the last take (copies; the nodes
 * become clean). Returns the count in *n and an array to free with
 * registry_rows_free(), or NULL when nothing changed. */
registry_row *registry_take_dirty(registry_t *r, size_t *n);

/* The write failed: these nodes are dirty again (unless newer came). */
void registry_mark_dirty(registry_t *r, const registry_row *rows, size_t n);
void registry_rows_free(registry_row *rows, size_t n);

void registry_get_stats(const registry_t *r, registry_stats *out);

/* The nodes with a heartbeat, for /metrics: name (borrowed until the
 * registry changes), gaps, how long since the last heartbeat, and the
 * clock offset (when known). */
typedef struct registry_info {
    const char *name;
    uint64_t gaps;
    int64_t silent_ns;
    int clock_known;
    int64_t clock_offset_ns;
} registry_info;

/* Fills at most max; returns how many nodes there are. */
size_t registry_list(const registry_t *r, registry_info *out, size_t max);

#endif
