/* status.h - the broker's figures and health. Every counter is a row of a
 * table (figures.h) that gives its stats.json key and its Prometheus name,
 * so stats.json and /metrics are rendered from one definition and cannot
 * disagree; the health checks say in words why the broker is not doing its
 * job right now.
 *
 * Every function that takes the broker must be called while the caller
 * holds it (rxloop_lock), or once the packet thread has ended.
 */
#ifndef MSCOPE_BROKER_STATUS_H
#define MSCOPE_BROKER_STATUS_H

#include "broker.h"
#include "input.h"
#include "metrics.h"
#include "rxloop.h"

#include <jansson.h>

typedef struct status status_t;

/* version goes into stats.json and the health answers; source names the
 * input in health reasons ("udp 0.0.0.0:4789", ...); both are copied.
 * Never NULL. */
status_t *status_new(const char *version, const char *source);
void status_free(status_t *s); /* accepts NULL */

/* Once a second, after broker_tick(): note what changed since the last
 * tick (kernel drops; each output keeps its own recent losses). */
void status_tick(status_t *s, const input_stats *in);

/* stats.json's object (a new reference): the input's and the chain's
 * counters, and each tool's under "tools" (a group's members inside it). */
json_t *status_json(status_t *s, broker_t *b, const input_stats *in);

/* Write it to path atomically. A failure is logged once (not each second);
 * returns 0 or -1. */
int status_write_file(status_t *s, json_t *o, const char *path);

/* Every figure as Prometheus metrics (mscope_broker_*), appended to m. */
void status_metrics(status_t *s, broker_t *b, const input_stats *in, metrics_t *m);

/* Why the broker cannot do its job now, a sentence each appended to why
 * (none: healthy): the packet thread failed, ended or is stuck, the input
 * dropped packets in the last second, an output is down or lost packets in
 * the last second. */
void status_health(status_t *s, broker_t *b, const rxloop_state *rx, json_t *why);

/* Log the counters: one line for the input, one per tool. */
void status_log(status_t *s, broker_t *b, const input_stats *in);

#endif
