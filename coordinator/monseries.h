/* monseries.h - the per-minute series of monitors: flow records summed in
 * memory per (monitor, minute), then added into `monitor_minutes` in one
 * transaction (monitor.c flushes every second), and read back for the APIs.
 *
 * A final record counts in the minute of its first packet (bytes and packets
 * each way, retransmissions, zero windows, resets, failed handshakes,
 * latencies, flows started), of its last packet (flows finished) and in
 * every minute from first to last (flows active; a flow longer than a day
 * counts in its last 1440 minutes). Latency percentiles come from mergeable
 * histograms: log-linear buckets of microseconds, 4 per power of two
 * (bucket 0: under 1 us; b >= 1: from (4 + (b-1) % 4) * 2^((b-1)/4) / 4 us,
 * a quarter of that power wide), of each flow's own value (handshake: its
 * initial RTT; ACK RTT and response time: its mean), summed per minute;
 * PostgreSQL's mscope_hist_quantile() reads them (schema v7) and
 * mscope_hist_sum() adds them over rows (v8).
 */
#ifndef MSCOPE_MONSERIES_H
#define MSCOPE_MONSERIES_H

#include "db.h"
#include "mirrorscope.pb-c.h"

#include <stddef.h>
#include <stdint.h>

#define MONSERIES_BUCKETS 109 /* up to 2^27 us (134 s); longer counts in the last */

typedef struct monseries monseries_t;

monseries_t *monseries_new(void);
void monseries_free(monseries_t *s); /* accepts NULL */

/* The bucket of a latency in ns (0 .. MONSERIES_BUCKETS - 1). */
int monseries_bucket(int64_t ns);

/* Add a final record r into monitor id's minutes. */
void monseries_add(monseries_t *s, int64_t id, const Mirrorscope__FlowRecord *r);

/* (monitor, minute) rows held. */
size_t monseries_rows(const monseries_t *s);

/* Add from's rows into into (a write that failed comes back). */
void monseries_merge(monseries_t *into, const monseries_t *from);

/* Add every row into monitor_minutes in one transaction (rows of monitors
 * deleted meanwhile are skipped). Returns 0, or -1 with err set; *retry is
 * set when trying again later may work (not for data PostgreSQL refuses). */
int monseries_write(db_t *db, const monseries_t *s, int *retry, char *err, size_t errlen);

/* The minutes of monitor id in [from_ns, to_ns) (to 0: now) into
 * resp->monitor_minutes. Returns 0, or -1 with err set. */
int monseries_query(db_t *db, int64_t id, int64_t from_ns, int64_t to_ns,
                    Mirrorscope__Response *resp, char *err, size_t errlen);

#endif
