/* json_writer.c - the recorder's hand-written flow-record JSON writer
 * (common/flowrec.c, on the --flows-json path) beside jansson building and
 * dumping the same object, in the same run. Prints records/s for each; the
 * issue keeps a hand-written writer only where it is measurably faster.
 *
 *   json_writer [RECORDS]     (default 1000000)
 */
#include "flowrec.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static json_t *stat_json(const flowrec_stat *s)
{
    if (!s->count) return json_pack("{s:I}", "count", (json_int_t)0);
    return json_pack("{s:I, s:I, s:I, s:I}", "count", (json_int_t)s->count, "min", (json_int_t)s->min,
                     "mean", (json_int_t)(s->sum / (int64_t)s->count), "max", (json_int_t)s->max);
}

static json_t *dir_json(const flowrec_dir *d)
{
    json_t *o = json_pack("{s:I, s:I, s:I, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i}",
                          "packets", (json_int_t)d->packets, "ip_bytes", (json_int_t)d->ip_bytes,
                          "payload_bytes", (json_int_t)d->payload_bytes, "retransmissions",
                          (int)d->retransmissions, "fast_retransmissions", (int)d->fast_retransmissions,
                          "spurious_retransmissions", (int)d->spurious_retransmissions,
                          "out_of_order", (int)d->out_of_order, "dup_acks", (int)d->dup_acks,
                          "lost_segments", (int)d->lost_segments, "zero_windows", (int)d->zero_windows,
                          "window_full", (int)d->window_full, "keep_alives", (int)d->keep_alives,
                          "rsts", (int)d->rsts, "fins", (int)d->fins);
    json_object_set_new(o, "rtt_ns", stat_json(&d->rtt));
    return o;
}

/* The same object as flowrec_json(), built with jansson. */
static char *jansson_json(const flowrec *r, const char *node)
{
    json_t *o = json_pack("{s:I, s:s, s:i, s:s, s:i, s:{s:s, s:i}, s:{s:s, s:i}, s:I, s:I}",
                          "flow_id", (json_int_t)r->flow_id, "node", node, "vni", (int)r->vni,
                          "observer", "192.168.0.9", "proto", (int)r->proto, "client", "ip",
                          "10.0.0.1", "port", (int)r->client_port, "server", "ip", "10.0.0.2",
                          "port", (int)r->server_port, "first_ns", (json_int_t)r->first_ns,
                          "last_ns", (json_int_t)r->last_ns);
    json_object_set_new(o, "c2s", dir_json(&r->c2s));
    json_object_set_new(o, "s2c", dir_json(&r->s2c));
    json_object_set_new(o, "handshake",
                        json_pack("{s:b, s:I, s:I, s:I, s:I}", "complete", 1, "syn_ns",
                                  (json_int_t)r->syn_ns, "synack_ns", (json_int_t)r->synack_ns,
                                  "ack_ns", (json_int_t)r->ack_ns, "initial_rtt_ns",
                                  (json_int_t)r->initial_rtt_ns));
    json_object_set_new(o, "app_response_ns", stat_json(&r->app_response));
    json_object_set_new(o, "conn_state", json_string(r->conn_state));
    json_object_set_new(o, "history", json_string(r->history));
    json_object_set_new(o, "final", json_boolean(r->final));
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return s;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 1000000;
    flowrec r;
    memset(&r, 0, sizeof r);
    r.flow_id = ((uint64_t)1796164986 << 32) | 1;
    r.vni = 7;
    r.proto = 6;
    r.client_ip[10] = r.client_ip[11] = r.server_ip[10] = r.server_ip[11] = 0xff;
    r.client_ip[12] = r.server_ip[12] = 10;
    r.client_port = 40000;
    r.server_port = 443;
    r.first_ns = 1796164986000000000LL;
    r.last_ns = r.first_ns + 5000000;
    r.c2s.packets = 12;
    r.c2s.rtt = (flowrec_stat){ 1000, 9000, 20000, 4 };
    r.hs_seen = 15;
    snprintf(r.conn_state, sizeof r.conn_state, "SF");
    snprintf(r.history, sizeof r.history, "ShADadFf");
    r.final = 1;
    char buf[4096];
    size_t sink = 0;
    double t0 = now();
    for (long i = 0; i < n; i++) {
        r.flow_id++;
        sink += (size_t)flowrec_json(&r, "recorder-1", buf, sizeof buf);
    }
    double ours = now() - t0;
    t0 = now();
    for (long i = 0; i < n; i++) {
        r.flow_id++;
        char *s = jansson_json(&r, "recorder-1");
        sink += strlen(s);
        free(s);
    }
    double theirs = now() - t0;
    printf("flow record JSON, %ld records: flowrec_json %.0f records/s, jansson %.0f records/s "
           "(%.1fx) [%zu bytes]\n", n, n / ours, n / theirs, theirs / ours, sink);
    return 0;
}
