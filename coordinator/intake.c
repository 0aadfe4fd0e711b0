/* intake.c - the bus into batches for the writers (see intake.h).
 *
 * DESIGN: two batches fill at once, "ordered" (interim records and the
 * finals that replace them: writer 0, one after the other) and "plain"
 * (every other final: whichever writer is free). A batch is handed over
 * when a writer is free and either batch_records wait or the flush interval
 * has passed; a writer that finishes wakes the loop (uv_async). While the
 * writers are busy the batches grow, so batches grow with the load.
 */
#include "intake.h"

#include "apppb.h"
#include "arena.h"
#include "bus.h"
#include "buswatch.h"
#include "log.h"
#include "timeparse.h"
#include "wire.h"
#include "xmalloc.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The largest bus message: a recorder sends batches of 500 records (~200 KiB),
 * flowgen up to 5000 (~2 MiB). Bigger frames cut their sender off. */
#define INTAKE_MSG_MAX (8u << 20)
#define INTAKE_BURST 1000      /* bus messages per wake-up */
#define INTAKE_HWM 2000        /* ~2000 batches of up to 500 records queued in ZeroMQ */

struct intake {
    intake_opts o;
    registry_t *reg;
    bus_sub_t *bus;
    bus_watch_t *watch;
    int paused, stopping;
    arena_t *arena;            /* flow batches are unpacked into it */
    uint8_t *msg;              /* the receive buffer */
    uv_timer_t *flush;         /* freed by their close callbacks */
    uv_async_t *wake;          /* a writer can take the next batch */
    writer_t *writer[2];       /* 0: ordered batches and the spool; 1: plain finals */
    writer_stats final_ws;     /* their last counters, once stopped */
    batch_t *plain, *ordered;  /* owned by the writers (double buffers) */
    liveset_t *live;
    spool_t *spool;
    uint64_t batch_seq, batches, records_in, bad_messages, bad_records;
    uint64_t app_batches, app_records_in, bad_app_records;
    apprec *app;               /* an application record being read (5 KiB: not on the stack) */
    int64_t bad_logged_ns;      /* rejected records are logged at most every 10 s */
    uint64_t bad_logged;
    char peer_key[BUSAUTH_KEY_LEN + 1]; /* the sender of the message being read */
    int64_t last_flush;
    metrics_hist write_latency;
};

static uint64_t intake__pending(const intake_t *in)
{
    return (in->plain ? batch_records(in->plain) : 0) + (in->ordered ? batch_records(in->ordered) : 0);
}

/* A record no recorder could have sent: dropped alone, counted (*count:
 * flow or application records), logged at most every 10 s for both (a
 * hostile sender must not flood the log). */
static void intake__bad_record(intake_t *in, uint64_t *count, const char *what, const char *node,
                               uint64_t flow_id, const char *why)
{
    (*count)++;
    uint64_t all = in->bad_records + in->bad_app_records;
    int64_t now = timeparse_mono_ns();
    if (in->bad_logged_ns && now - in->bad_logged_ns < 10000000000LL) return;
    log_warn("%s record of flow %" PRIu64 " of %s dropped: %s (%" PRIu64 " records dropped so far, "
             "%" PRIu64 " since the last message)", what, flow_id, node, why, all,
             all - in->bad_logged);
    in->bad_logged_ns = now;
    in->bad_logged = all;
}

static void intake__flow(intake_t *in, const uint8_t *data, size_t len)
{
    arena_reset(in->arena);
    Mirrorscope__FlowBatch *b = mirrorscope__flow_batch__unpack(arena_protobuf(in->arena), len, data);
    const char *why = "undecodable";
    if (!b || !wire_node_ok(b->node, &why)) {
        in->bad_messages++;
        log_warn("flow batch (%zu bytes) ignored: %s", len, why);
        return; /* nothing to free: the arena is reset before the next batch */
    }
    registry_flow_seen(in->reg, b->node, b->start_ns, b->seq);
    in->batches++;
    for (size_t i = 0; i < b->n_records; i++) {
        in->records_in++;
        if (!wire_record_ok(b->records[i], &why)) {
            intake__bad_record(in, &in->bad_records, "flow", b->node, b->records[i]->flow_id, why);
            continue;
        }
        batch_append(batch_route(in->plain, in->ordered, in->live, b->node, b->records[i]),
                     in->live, b->node, b->records[i]);
        if (in->o.on_record) in->o.on_record(in->o.on_record_data, b->node, b->records[i]);
    }
    /* Not free_unpacked(): it would walk every field to free nothing; the
     * arena is reset before the next batch. */
}

/* Application records: each read into the C record (apppb_read refuses what
 * it cannot hold), checked (wire_app_ok), and encoded into the plain batch:
 * no application record replaces another, so their order does not matter. */
static void intake__app(intake_t *in, const uint8_t *data, size_t len)
{
    arena_reset(in->arena);
    Mirrorscope__AppBatch *b = mirrorscope__app_batch__unpack(arena_protobuf(in->arena), len, data);
    const char *why = "undecodable";
    if (!b || !wire_node_ok(b->node, &why)) {
        in->bad_messages++;
        log_warn("application record batch (%zu bytes) ignored: %s", len, why);
        return;
    }
    registry_app_seen(in->reg, b->node, b->start_ns, b->seq);
    in->app_batches++;
    for (size_t i = 0; i < b->n_records; i++) {
        in->app_records_in++;
        if (apppb_read(in->app, b->records[i], &why) < 0 || !wire_app_ok(in->app, &why)) {
            intake__bad_record(in, &in->bad_app_records, "application", b->node,
                               b->records[i]->flow_id, why);
            continue;
        }
        batch_append_app(in->plain, b->node, in->app);
    }
}

static void intake__heartbeat(intake_t *in, const uint8_t *data, size_t len)
{
    Mirrorscope__Heartbeat *h = mirrorscope__heartbeat__unpack(NULL, len, data);
    const char *why = "undecodable";
    if (!h || !wire_heartbeat_fix(h, &why)) {
        in->bad_messages++;
        log_warn("heartbeat (%zu bytes) ignored: %s", len, why);
        if (h) mirrorscope__heartbeat__free_unpacked(h, NULL);
        return;
    }
    registry_heartbeat(in->reg, &h, in->peer_key);
}

/* Seal *b with a ledger id unique across our restarts and hand it to w. */
static int intake__offer(intake_t *in, writer_t *w, batch_t **b)
{
    char id[64];
    if (writer_busy(w)) return 0;
    snprintf(id, sizeof id, "%" PRId64 "-%" PRIu64, in->o.start_ns, in->batch_seq + 1);
    batch_seal(*b, id);
    if (!writer_offer(w, b)) return 0; /* cannot happen: we are its only feeder */
    in->batch_seq++;
    return 1;
}

/* A full batch while the writers are busy: leave the bus unread, so ZeroMQ
 * holds back the recorders instead of us dropping records. */
static void intake__backpressure(intake_t *in)
{
    int full = intake__pending(in) >= in->o.max_pending;
    if (in->watch && full != in->paused) {
        bus_watch_pause(in->watch, full);
        in->paused = full;
    }
}

/* Give the writers what waits, when they are free: ordered batches to
 * writer 0 only (one after the other), plain ones to whichever is free.
 * Returns 1 when nothing is left waiting. */
static int intake__handoff(intake_t *in)
{
    if (batch_records(in->ordered)) intake__offer(in, in->writer[0], &in->ordered);
    if (batch_records(in->plain) && !intake__offer(in, in->writer[1], &in->plain) &&
        !batch_records(in->ordered))
        intake__offer(in, in->writer[0], &in->plain);
    int empty = !intake__pending(in);
    if (empty) in->last_flush = timeparse_mono_ns();
    intake__backpressure(in);
    return empty;
}

static void intake__on_readable(void *data)
{
    intake_t *in = data;
    for (int burst = 0; burst < INTAKE_BURST && !in->paused; burst++) {
        char topic[32];
        long n = bus_sub_recv(in->bus, topic, sizeof topic, in->msg, INTAKE_MSG_MAX,
                              in->peer_key, 0);
        if (n == 0) break;
        if (n > 0 && !strcmp(topic, "flow")) intake__flow(in, in->msg, (size_t)n);
        else if (n > 0 && !strcmp(topic, "app")) intake__app(in, in->msg, (size_t)n);
        else if (n > 0 && !strcmp(topic, "hb")) intake__heartbeat(in, in->msg, (size_t)n);
        else {
            in->bad_messages++;
            log_warn("ignored a bus message (topic '%s', %ld)", topic, n);
        }
        intake__backpressure(in);
    }
    if (intake__pending(in) >= in->o.batch_records) intake__handoff(in);
}

/* From a writer's thread: it can take the next batch. */
static void intake__writer_idle(void *data) { uv_async_send(((intake_t *)data)->wake); }

static void intake__on_wake(uv_async_t *h)
{
    intake_t *in = h->data;
    if (in->stopping || !intake__pending(in)) return;
    if (intake__pending(in) >= in->o.batch_records ||
        timeparse_mono_ns() - in->last_flush >= in->o.flush_interval_ns)
        intake__handoff(in);
}

static void intake__on_flush(uv_timer_t *t)
{
    intake_t *in = t->data;
    if (timeparse_mono_ns() - in->last_flush >= in->o.flush_interval_ns) intake__handoff(in);
}

intake_t *intake_new(uv_loop_t *loop, const intake_opts *o, liveset_t **live, spool_t *spool,
                     registry_t *reg, char *err, size_t errlen)
{
    intake_t *in = xcalloc(1, sizeof *in);
    in->o = *o;
    in->reg = reg;
    in->live = *live;
    *live = NULL;
    in->spool = spool;
    in->arena = arena_new();
    in->last_flush = timeparse_mono_ns();
    metrics_hist_init(&in->write_latency, metrics_latency_bounds, metrics_latency_nbounds);
    in->wake = xcalloc(1, sizeof *in->wake);
    uv_async_init(loop, in->wake, intake__on_wake);
    in->wake->data = in;
    in->writer[0] = writer_start(o->conninfo, spool, 1, intake__writer_idle, in, &in->write_latency);
    in->writer[1] = writer_start(o->conninfo, spool, 0, intake__writer_idle, in, &in->write_latency);
    in->ordered = batch_new();
    in->plain = batch_new();
    in->bus = bus_sub_new(o->endpoint, INTAKE_HWM, INTAKE_MSG_MAX, o->sec, err, errlen);
    if (!in->bus || !(in->watch = bus_watch_new(loop, in->bus, intake__on_readable, in, err, errlen))) {
        intake_free(in); /* its handles close with the loop's next run */
        return NULL;
    }
    in->msg = xmalloc(INTAKE_MSG_MAX);
    in->app = xmalloc(sizeof *in->app);
    uint64_t ms = (uint64_t)(o->flush_interval_ns / 1000000);
    in->flush = xcalloc(1, sizeof *in->flush);
    uv_timer_init(loop, in->flush);
    in->flush->data = in;
    uv_timer_start(in->flush, intake__on_flush, ms ? ms : 1, ms ? ms : 1);
    log_info("listening for recorders on %s", o->endpoint);
    return in;
}

void intake_stop_reading(intake_t *in)
{
    if (!in || in->stopping) return;
    in->stopping = 1;
    bus_watch_free(in->watch);
    in->watch = NULL;
    if (in->flush) uv_close((uv_handle_t *)in->flush, (uv_close_cb)free);
    in->flush = NULL;
}

void intake_finish(intake_t *in)
{
    if (!in || !in->writer[0]) return;
    /* What cannot be written now goes to the spool for the next start. */
    while (!intake__handoff(in)) {
        struct timespec ts = { 0, 10000000 };
        nanosleep(&ts, NULL);
    }
    writer_stats w1;
    writer_stop(in->writer[1], &w1); /* each writes its last batch, or spools it */
    writer_stop(in->writer[0], &in->final_ws);
    in->final_ws.records_written += w1.records_written;
    in->final_ws.records_dropped += w1.records_dropped;
    in->final_ws.db_errors += w1.db_errors;
    in->final_ws.app_written += w1.app_written;
    in->final_ws.app_dropped += w1.app_dropped;
    in->writer[0] = in->writer[1] = NULL;
    batch_free(in->plain); /* empty: handed over above */
    batch_free(in->ordered);
    in->plain = in->ordered = NULL;
}

void intake_get_stats(const intake_t *in, intake_stats *out)
{
    memset(out, 0, sizeof *out);
    if (!in) return;
    writer_stats ws = in->final_ws;
    if (in->writer[0]) {
        writer_stats w1;
        writer_get_stats(in->writer[0], &ws);
        writer_get_stats(in->writer[1], &w1);
        ws.records_written += w1.records_written;
        ws.records_dropped += w1.records_dropped;
        ws.db_errors += w1.db_errors;
        ws.app_written += w1.app_written;
        ws.app_dropped += w1.app_dropped;
        ws.connected = ws.connected && w1.connected;
    }
    *out = (intake_stats){ .batches = in->batches, .records_in = in->records_in,
                           .bad_messages = in->bad_messages, .pending = intake__pending(in),
                           .paused = in->paused, .writers = ws, .bad_records = in->bad_records,
                           .refused_peers = in->bus ? bus_socket_refused(in->bus) : 0,
                           .app_batches = in->app_batches, .app_records_in = in->app_records_in,
                           .bad_app_records = in->bad_app_records };
}

const metrics_hist *intake_write_latency(const intake_t *in) { return &in->write_latency; }

void intake_close(intake_t *in)
{
    if (!in) return;
    intake_stop_reading(in);
    /* The writers first: they wake the loop through this handle. */
    writer_stop(in->writer[1], NULL);
    writer_stop(in->writer[0], NULL);
    in->writer[0] = in->writer[1] = NULL;
    batch_free(in->plain);
    batch_free(in->ordered);
    in->plain = in->ordered = NULL;
    if (in->wake) uv_close((uv_handle_t *)in->wake, (uv_close_cb)free);
    in->wake = NULL;
}

void intake_free(intake_t *in)
{
    if (!in) return;
    intake_close(in);
    bus_sub_close(in->bus);
    liveset_free(in->live);
    arena_free(in->arena);
    free(in->msg);
    free(in->app);
    free(in);
}
