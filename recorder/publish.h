/* publish.h - flow records, application records and heartbeats to the
 * coordinator, as protobuf
 * (proto/mirrorscope.proto) over the ZeroMQ bus (common/bus.h).
 *
 * The writer thread hands records over with publish_record(), which never
 * blocks: records wait in a bounded queue for the publisher thread, which
 * sends them in batches (by count, or every 100 ms) and a heartbeat every
 * second. While no coordinator is subscribed, records wait in the queue
 * instead of vanishing into a PUB socket nobody reads; what does not fit is
 * shed and counted, never hidden.
 */
#ifndef MSCOPE_PUBLISH_H
#define MSCOPE_PUBLISH_H

#include "apprec.h"
#include "bus.h"
#include "flowrec.h"

#include <stddef.h>
#include <stdint.h>

/* Counters a heartbeat carries; filled by the caller's callback. */
typedef struct publish_counters {
    uint64_t rx_packets, rx_bytes, stored_packets, stored_bytes, disk_used, flows_active;
    int64_t oldest_ns, newest_ns;
    int ndrops;
    const char *drop_names[32];
    uint64_t drop_values[32];
} publish_counters;

typedef void (*publish_counters_fn)(void *ctx, publish_counters *out);

typedef struct publish_opts {
    const char *endpoint;        /* coordinator bus, tcp://host:5556 */
    const bus_sec *sec;          /* CURVE keys (used at start only); NULL: plain */
    const char *node;
    const char *version;
    const char *search_endpoint; /* announced in heartbeats */
    int64_t start_ns;            /* process start */
    int64_t batch_ns;            /* send a partial batch after this long */
    uint32_t batch_max;          /* records per batch */
    uint32_t queue;              /* records waiting at most */
    uint32_t app_queue;          /* application records waiting at most; 0: PUBLISH_APP_QUEUE */
    int64_t heartbeat_ns;
    int wait_subscriber_ms;      /* before the first send (slow joiner) */
} publish_opts;

/* An application record is ~5 KiB in memory (its URI and names are arrays
 * of their largest size), so its queue is shorter than the flow records':
 * 8192 of them are 43 MiB at most, touched only as they fill. */
#define PUBLISH_APP_QUEUE 8192

typedef struct publish_stats {
    uint64_t published, shed, batches, heartbeats;
    uint64_t queued; /* waiting to be sent */
    uint64_t app_published, app_shed, app_batches, app_queued; /* application records */
} publish_stats;

typedef struct publisher publisher_t;

/* Connect and start the publisher thread. Returns NULL with err set. */
publisher_t *publish_start(const publish_opts *o, publish_counters_fn fn, void *ctx, char *err,
                           size_t errlen);

/* Queue a record (copied). Never blocks; returns 0, or -1 when the queue is
 * full (the record is shed and counted). Thread-safe. */
int publish_record(publisher_t *p, const flowrec *r);

/* Queue an application record (copied), on topic "app" in AppBatch
 * messages with their own sequence. Never blocks; returns 0, or -1 when
 * its queue is full (shed and counted in app_shed). Thread-safe. */
int publish_app(publisher_t *p, const apprec *r);

void publish_get_stats(publisher_t *p, publish_stats *out);

/* Send what is queued, a last heartbeat, give the socket linger_ms to
 * deliver, stop the thread, free. Accepts NULL. */
void publish_stop(publisher_t *p, int linger_ms);

#endif
