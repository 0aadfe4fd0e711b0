/* publish.c - batching publisher of flow records, application records and
 * heartbeats (see publish.h).
 *
 * DESIGN: a mutex-protected ring of flowrec structs (preallocated) between
 * the writer and this module's thread, and one of apprec structs beside it
 * (topic "app", AppBatch, its own sequence; the same batching, bounds and
 * shedding, with its own counters). The thread wakes every 10 ms or when
 * a batch's worth is queued, takes up to batch_max records, encodes one
 * FlowBatch with protobuf-c into a reused buffer (each record's message
 * filled by flowpb.h, from the field table), and sends it. If the bus
 * refuses (high-water mark), the batch is retried on the next wake and new
 * records pile up in the ring until it is full, then are shed and counted:
 * memory stays bounded and the packet path never waits.
 */
#include "publish.h"

#include "apppb.h"
#include "bus.h"
#include "flowpb.h"
#include "log.h"
#include "mirrorscope.pb-c.h"
#include "timeparse.h"
#include "xmalloc.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct publisher {
    publish_opts o;
    char *node, *version, *search;
    bus_pub_t *bus;
    publish_counters_fn counters;
    void *ctx;
    pthread_t tid;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    flowrec *ring;
    uint32_t head, count;
    int stop;
    uint64_t flow_seq, hb_seq, app_seq;
    apprec *app_ring;          /* o.app_queue records; calloc'd: pages only as used */
    uint32_t app_head, app_count;
    publish_stats st;
    /* encoding scratch, reused */
    flowrec *batch;
    apprec *app_batch;
    apppb *app_pb;
    uint8_t *buf;
    size_t buf_cap;
};

static int publish__send(publisher_t *p, const char *topic, const ProtobufCMessage *m)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    if (n > p->buf_cap) {
        p->buf_cap = n * 2;
        p->buf = xrealloc(p->buf, p->buf_cap);
    }
    protobuf_c_message_pack(m, p->buf);
    return bus_pub_send(p->bus, topic, p->buf, n);
}

/* Send up to batch_max queued records. Returns 1 if a batch went, 0 if
 * nothing was queued, -1 if the bus refused (records stay queued). */
static int publish__flush_batch(publisher_t *p)
{
    /* Nobody listening: PUB would drop the batch silently. Keep it queued. */
    if (!bus_pub_has_subscriber(p->bus)) return -1;
    pthread_mutex_lock(&p->mu);
    uint32_t n = p->count < p->o.batch_max ? p->count : p->o.batch_max;
    for (uint32_t i = 0; i < n; i++) p->batch[i] = p->ring[(p->head + i) % p->o.queue];
    uint64_t shed = p->st.shed;
    pthread_mutex_unlock(&p->mu);
    if (!n) return 0;

    flowpb *recs = xcalloc(n, sizeof *recs);
    Mirrorscope__FlowRecord **ptrs = xcalloc(n, sizeof *ptrs);
    for (uint32_t i = 0; i < n; i++) {
        flowpb_fill(&recs[i], &p->batch[i]);
        ptrs[i] = &recs[i].msg;
    }
    Mirrorscope__FlowBatch b;
    mirrorscope__flow_batch__init(&b);
    b.node = p->node;
    b.start_ns = p->o.start_ns;
    b.seq = p->flow_seq + 1;
    b.n_records = n;
    b.records = ptrs;
    b.records_shed_total = shed;
    int rc = publish__send(p, "flow", &b.base);
    free(ptrs);
    free(recs);
    if (rc < 0) return -1;
    p->flow_seq++;
    pthread_mutex_lock(&p->mu);
    p->head = (p->head + n) % p->o.queue;
    p->count -= n;
    p->st.published += n;
    p->st.batches++;
    pthread_mutex_unlock(&p->mu);
    return 1;
}

/* The same for application records (topic "app"). */
static int publish__flush_app(publisher_t *p)
{
    if (!bus_pub_has_subscriber(p->bus)) return -1;
    pthread_mutex_lock(&p->mu);
    uint32_t n = p->app_count < p->o.batch_max ? p->app_count : p->o.batch_max;
    for (uint32_t i = 0; i < n; i++) p->app_batch[i] = p->app_ring[(p->app_head + i) % p->o.app_queue];
    uint64_t shed = p->st.app_shed;
    pthread_mutex_unlock(&p->mu);
    if (!n) return 0;
    Mirrorscope__AppRecord **ptrs = xcalloc(n, sizeof *ptrs);
    for (uint32_t i = 0; i < n; i++) {
        apppb_fill(&p->app_pb[i], &p->app_batch[i]);
        ptrs[i] = &p->app_pb[i].msg;
    }
    Mirrorscope__AppBatch b;
    mirrorscope__app_batch__init(&b);
    b.node = p->node;
    b.start_ns = p->o.start_ns;
    b.seq = p->app_seq + 1;
    b.n_records = n;
    b.records = ptrs;
    b.records_shed_total = shed;
    int rc = publish__send(p, "app", &b.base);
    free(ptrs);
    if (rc < 0) return -1;
    p->app_seq++;
    pthread_mutex_lock(&p->mu);
    p->app_head = (p->app_head + n) % p->o.app_queue;
    p->app_count -= n;
    p->st.app_published += n;
    p->st.app_batches++;
    pthread_mutex_unlock(&p->mu);
    return 1;
}

static void publish__heartbeat(publisher_t *p)
{
    publish_counters c;
    memset(&c, 0, sizeof c);
    if (p->counters) p->counters(p->ctx, &c);
    publish_stats st;
    publish_get_stats(p, &st);
    Mirrorscope__Counters m;
    mirrorscope__counters__init(&m);
    m.rx_packets = c.rx_packets;
    m.rx_bytes = c.rx_bytes;
    m.stored_packets = c.stored_packets;
    m.stored_bytes = c.stored_bytes;
    m.disk_used = c.disk_used;
    m.oldest_ns = c.oldest_ns;
    m.newest_ns = c.newest_ns;
    m.flows_active = c.flows_active;
    m.records_published = st.published;
    m.records_shed = st.shed;
    Mirrorscope__Counters__DropsEntry entries[32], *eptr[32];
    for (int i = 0; i < c.ndrops && i < 32; i++) {
        mirrorscope__counters__drops_entry__init(&entries[i]);
        entries[i].key = (char *)c.drop_names[i];
        entries[i].value = c.drop_values[i];
        eptr[i] = &entries[i];
    }
    m.n_drops = (size_t)(c.ndrops < 32 ? c.ndrops : 32);
    m.drops = eptr;
    Mirrorscope__Heartbeat hb;
    mirrorscope__heartbeat__init(&hb);
    hb.node = p->node;
    hb.start_ns = p->o.start_ns;
    hb.seq = p->hb_seq + 1;
    hb.version = p->version;
    hb.search_endpoint = p->search;
    hb.time_ns = timeparse_now_ns();
    hb.counters = &m;
    if (publish__send(p, "hb", &hb.base) == 0) {
        p->hb_seq++;
        pthread_mutex_lock(&p->mu);
        p->st.heartbeats++;
        pthread_mutex_unlock(&p->mu);
    }
}

static uint32_t publish__queued(publisher_t *p)
{
    pthread_mutex_lock(&p->mu);
    uint32_t n = p->count;
    pthread_mutex_unlock(&p->mu);
    return n;
}

static uint32_t publish__app_queued(publisher_t *p)
{
    pthread_mutex_lock(&p->mu);
    uint32_t n = p->app_count;
    pthread_mutex_unlock(&p->mu);
    return n;
}

static void *publish__main(void *arg)
{
    publisher_t *p = arg;
    pthread_setname_np(pthread_self(), "mscope-publish");
    if (p->o.wait_subscriber_ms > 0 && !bus_pub_wait_subscriber(p->bus, p->o.wait_subscriber_ms)) {
        if (bus_pub_hopeless(p->bus))
            log_warn("coordinator %s: %s; records queue up to the ring's size and are not "
                     "published", p->o.endpoint, bus_handshake_str(bus_socket_handshake(p->bus)));
        else
            log_warn("no subscriber on %s after %d ms (%s); publishing anyway (records queue up to "
                     "the high-water mark)", p->o.endpoint, p->o.wait_subscriber_ms,
                     bus_handshake_str(bus_socket_handshake(p->bus)));
    }
    int64_t last_hb = 0, first_wait = 0, app_first_wait = 0;
    int handshake = BUS_HANDSHAKE_NONE;
    for (;;) {
        pthread_mutex_lock(&p->mu);
        if (!p->stop && p->count < p->o.batch_max && p->app_count < p->o.batch_max) {
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_nsec += 10000000L;
            if (until.tv_nsec >= 1000000000L) {
                until.tv_sec++;
                until.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&p->cv, &p->mu, &until);
        }
        int stop = p->stop;
        uint32_t queued = p->count, app_queued = p->app_count;
        pthread_mutex_unlock(&p->mu);
        int64_t now = timeparse_mono_ns();
        if (now - last_hb >= p->o.heartbeat_ns) {
            publish__heartbeat(p);
            last_hb = now;
            /* A coordinator that refuses our key would otherwise look like
             * one that is away: say so once per change. */
            int hs = bus_socket_handshake(p->bus);
            if (hs != handshake && hs != BUS_HANDSHAKE_OK)
                log_warn("coordinator %s: %s", p->o.endpoint, bus_handshake_str(hs));
            else if (hs != handshake && handshake != BUS_HANDSHAKE_NONE)
                log_info("coordinator %s: %s", p->o.endpoint, bus_handshake_str(hs));
            handshake = hs;
        }
        if (stop) break;
        /* A partial batch waits up to batch_ns for company. */
        if (queued && !first_wait) first_wait = now;
        if (queued >= p->o.batch_max || (queued && now - first_wait >= p->o.batch_ns)) {
            int rc;
            do rc = publish__flush_batch(p);
            while (rc == 1 && publish__queued(p) >= p->o.batch_max);
            if (rc == 1) first_wait = publish__queued(p) ? now : 0;
        }
        if (app_queued && !app_first_wait) app_first_wait = now;
        if (app_queued >= p->o.batch_max || (app_queued && now - app_first_wait >= p->o.batch_ns)) {
            int rc;
            do rc = publish__flush_app(p);
            while (rc == 1 && publish__app_queued(p) >= p->o.batch_max);
            if (rc == 1) app_first_wait = publish__app_queued(p) ? now : 0;
        }
    }
    /* Shutdown: send everything queued; a bus that refuses records (a
     * subscriber away, its high-water mark) gets 5 s, one that refused our
     * key none: nothing gets through it (publish_stop counts what stays). */
    int64_t deadline = timeparse_mono_ns() + (bus_pub_hopeless(p->bus) ? 0 : 5000000000LL);
    while ((publish__queued(p) || publish__app_queued(p)) && timeparse_mono_ns() < deadline) {
        int a = publish__flush_batch(p), b = publish__flush_app(p);
        if (a == -1 || b == -1) {
            struct timespec ts = { 0, 10000000L };
            nanosleep(&ts, NULL);
        }
    }
    publish__heartbeat(p);
    return NULL;
}

publisher_t *publish_start(const publish_opts *o, publish_counters_fn fn, void *ctx, char *err,
                           size_t errlen)
{
    bus_pub_t *bus = bus_pub_new(o->endpoint, 10000, o->sec, err, errlen);
    if (!bus) return NULL;
    publisher_t *p = xcalloc(1, sizeof *p);
    p->o = *o;
    p->o.sec = NULL; /* borrowed for the start only */
    p->node = xstrdup(o->node);
    p->version = xstrdup(o->version ? o->version : "");
    p->search = xstrdup(o->search_endpoint ? o->search_endpoint : "");
    p->bus = bus;
    p->counters = fn;
    p->ctx = ctx;
    p->ring = xcalloc(o->queue, sizeof *p->ring);
    p->batch = xcalloc(o->batch_max, sizeof *p->batch);
    if (!p->o.app_queue) p->o.app_queue = PUBLISH_APP_QUEUE;
    p->app_ring = xcalloc(p->o.app_queue, sizeof *p->app_ring);
    p->app_batch = xcalloc(o->batch_max, sizeof *p->app_batch);
    p->app_pb = xcalloc(o->batch_max, sizeof *p->app_pb);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    int rc = pthread_create(&p->tid, NULL, publish__main, p);
    if (rc) {
        snprintf(err, errlen, "pthread_create() failed: %s", strerror(rc));
        bus_pub_close(bus, 0);
        free(p->ring);
        free(p->batch);
        free(p->app_ring);
        free(p->app_batch);
        free(p->app_pb);
        free(p->node);
        free(p->version);
        free(p->search);
        free(p);
        return NULL;
    }
    log_info("publishing flow and application records and heartbeats to %s as %s", o->endpoint,
             o->node);
    return p;
}

int publish_record(publisher_t *p, const flowrec *r)
{
    int rc = 0;
    pthread_mutex_lock(&p->mu);
    if (p->count == p->o.queue) {
        p->st.shed++;
        rc = -1;
    } else {
        p->ring[(p->head + p->count) % p->o.queue] = *r;
        p->count++;
        if (p->count >= p->o.batch_max) pthread_cond_signal(&p->cv);
    }
    pthread_mutex_unlock(&p->mu);
    return rc;
}

int publish_app(publisher_t *p, const apprec *r)
{
    int rc = 0;
    pthread_mutex_lock(&p->mu);
    if (p->app_count == p->o.app_queue) {
        p->st.app_shed++;
        rc = -1;
    } else {
        p->app_ring[(p->app_head + p->app_count) % p->o.app_queue] = *r;
        p->app_count++;
        if (p->app_count >= p->o.batch_max) pthread_cond_signal(&p->cv);
    }
    pthread_mutex_unlock(&p->mu);
    return rc;
}

void publish_get_stats(publisher_t *p, publish_stats *out)
{
    pthread_mutex_lock(&p->mu);
    *out = p->st;
    out->queued = p->count;
    out->app_queued = p->app_count;
    pthread_mutex_unlock(&p->mu);
}

void publish_stop(publisher_t *p, int linger_ms)
{
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
    pthread_join(p->tid, NULL);
    if (p->count)
        log_warn("%u flow records not published at shutdown (no coordinator subscribed, or the "
                 "bus refused them)", p->count);
    if (p->app_count)
        log_warn("%u application records not published at shutdown (no coordinator subscribed, "
                 "or the bus refused them)", p->app_count);
    bus_pub_close(p->bus, linger_ms);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p->ring);
    free(p->batch);
    free(p->app_ring);
    free(p->app_batch);
    free(p->app_pb);
    free(p->buf);
    free(p->node);
    free(p->version);
    free(p->search);
    free(p);
}
