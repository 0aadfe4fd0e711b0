/* monseries.h - the per-minute series of monitors: flow records summed in
 * memory per (monitor, minute), then added into `monitor_minutes` in one
 * transaction (monitor.c flushes every second), and read back for the APIs.
 *
 * A final record counts in the minute of its first packet (bytes and packets
 * each way, retransmissions, zero windows, resets, failed handshakes,
 * latencies, flows started), of its last packet (flows finished) and in
 * every minute from first to last (flows active; a flow longer than a day
 * counts in its last 1440 minutes). Latency percentiles come from mergeable
 * histograms (latency.h) of each flow's own value (handshake: its initial
 * RTT; ACK RTT and response time: its mean), summed per minute.
 */
#ifndef MSCOPE_MONSERIES_H
#define MSCOPE_MONSERIES_H

#include "db.h"
#include "mirrorscope.pb-c.h"

#include <stddef.h>
#include <stdint.h>

typedef struct monseries monseries_t;

monseries_t *monseries_new(void);
void monseries_free(monseries_t *s); /* accepts NULL */

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
