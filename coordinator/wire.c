/* wire.c - what the coordinator accepts from the bus (see wire.h). */
#include "wire.h"

#include "timeparse.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define WIRE_TIME_MAX (TIMEPARSE_MAX_SEC * 1000000000LL)
/* A duration statistic's values: a capture whose clock steps back gives
 * negative ones (Wireshark shows them too), but two of them must add up
 * without overflow. */
#define WIRE_STAT_MAX (WIRE_TIME_MAX / 4)
#define WIRE_TEXT_MAX 64 /* conn_state, history: a recorder's are 8 and 24 bytes */

/* At most max bytes of UTF-8 (PostgreSQL refuses anything else in text)
 * without control characters or backslash. */
static int wire__text_ok(const char *s, size_t max)
{
    if (!s) return 1;
    const unsigned char *p = (const unsigned char *)s;
    size_t n = 0;
    while (p[n]) {
        unsigned c = p[n];
        int extra = c < 0x80 ? 0 : (c & 0xe0) == 0xc0 ? 1 : (c & 0xf0) == 0xe0 ? 2
                  : (c & 0xf8) == 0xf0 ? 3 : -1;
        if (extra < 0 || (extra == 0 && (c < 0x20 || c == 0x7f || c == '\\'))) return 0;
        if ((extra == 1 && c < 0xc2) || (extra == 3 && c > 0xf4)) return 0; /* overlong, > U+10FFFF */
        for (int k = 1; k <= extra; k++)
            if ((p[n + k] & 0xc0) != 0x80) return 0; /* also stops at the NUL */
        unsigned c1 = extra ? p[n + 1] : 0;
        if ((c == 0xe0 && c1 < 0xa0) || (c == 0xed && c1 > 0x9f) || (c == 0xf0 && c1 < 0x90) ||
            (c == 0xf4 && c1 > 0x8f))
            return 0; /* overlong, surrogates, beyond U+10FFFF */
        n += (size_t)extra + 1;
        if (n > max) return 0;
    }
    return 1;
}

int wire_node_ok(const char *node, const char **why)
{
    if (!node || !*node) *why = "empty node name";
    else if (strlen(node) > WIRE_NODE_MAX) *why = "node name longer than 255 bytes";
    else if (!wire__text_ok(node, WIRE_NODE_MAX)) *why = "node name not UTF-8 text";
    else return 1;
    return 0;
}

static int wire__time_ok(int64_t t) { return t >= 0 && t <= WIRE_TIME_MAX; }

static int wire__ip_ok(ProtobufCBinaryData ip) { return ip.len == 0 || ip.len == 4 || ip.len == 16; }

static int wire__dur_ok(int64_t v) { return v >= -WIRE_STAT_MAX && v <= WIRE_STAT_MAX; }

/* A statistic of durations: min <= max, every value within +-WIRE_STAT_MAX. */
static int wire__stat_ok(const Mirrorscope__Stat *s)
{
    if (!s || !s->count) return 1;
    return s->count <= (uint64_t)WIRE_COUNT_MAX && s->min <= s->max && wire__dur_ok(s->min) &&
           wire__dur_ok(s->max) && wire__dur_ok(s->sum);
}

static int wire__dir_ok(const Mirrorscope__Direction *d)
{
    if (!d) return 1;
    return d->packets <= (uint64_t)WIRE_COUNT_MAX && d->ip_bytes <= (uint64_t)WIRE_COUNT_MAX &&
           d->payload_bytes <= d->ip_bytes && wire__stat_ok(d->rtt_ns);
}

int wire_record_ok(const Mirrorscope__FlowRecord *r, const char **why)
{
    const Mirrorscope__Handshake *h = r->handshake;
    /* last_ns before first_ns is allowed: a capture's clock may step back. */
    if (!wire__time_ok(r->first_ns) || !wire__time_ok(r->last_ns))
        *why = "first_ns/last_ns out of range";
    else if (r->proto > 255 || r->vni > 0xffffff)
        *why = "proto or vni out of range";
    else if (!wire__ip_ok(r->observer) || (r->client && !wire__ip_ok(r->client->ip)) ||
             (r->server && !wire__ip_ok(r->server->ip)))
        *why = "an address that is neither IPv4 nor IPv6";
    else if ((r->client && r->client->port > 65535) || (r->server && r->server->port > 65535))
        *why = "port out of range";
    else if (!wire__dir_ok(r->c2s) || !wire__dir_ok(r->s2c))
        *why = "a direction's counters or RTT out of range";
    else if (!wire__stat_ok(r->app_response_ns))
        *why = "app_response_ns out of range";
    else if (h && (h->seen > 15 || !wire__time_ok(h->syn_ns) || !wire__time_ok(h->synack_ns) ||
                   !wire__time_ok(h->ack_ns) || !wire__dur_ok(h->initial_rtt_ns)))
        *why = "handshake times out of range";
    else if (!wire__text_ok(r->conn_state, WIRE_TEXT_MAX) || !wire__text_ok(r->history, WIRE_TEXT_MAX))
        *why = "conn_state or history too long or not text";
    else
        return 1;
    return 0;
}

int wire_app_ok(const apprec *r, const char **why)
{
    const apprec_dns *d = &r->u.dns;
    const apprec_tls *t = &r->u.tls;
    const apprec_http *h = &r->u.http;
    if (!wire__time_ok(r->ts_ns)) *why = "ts_ns out of range";
    else if (r->vni > 0xffffff) *why = "vni out of range";
    else if (r->kind == APPREC_DNS && d->transport != 6 && d->transport != 17)
        *why = "dns transport neither udp (17) nor tcp (6)";
    else if (r->kind == APPREC_DNS && d->has_response && (d->rcode > 4095 || !wire__dur_ok(d->response_ns)))
        *why = "dns rcode or response_ns out of range";
    else if (r->kind == APPREC_TLS && t->has_server_hello && !wire__dur_ok(t->hello_rtt_ns))
        *why = "tls hello_rtt_ns out of range";
    else if (r->kind == APPREC_HTTP && h->request_body_bytes > (uint64_t)WIRE_COUNT_MAX)
        *why = "http request_body_bytes out of range";
    else if (r->kind == APPREC_HTTP && h->has_response &&
             (h->status < 100 || h->status > 999 ||
              h->response_body_bytes > (uint64_t)WIRE_COUNT_MAX || !wire__dur_ok(h->response_ns)))
        *why = "http status, response_body_bytes or response_ns out of range";
    else
        return 1;
    return 0;
}

static void wire__clamp_u(uint64_t *v)
{
    if (*v > (uint64_t)INT64_MAX) *v = (uint64_t)INT64_MAX;
}

static void wire__clamp_t(int64_t *t)
{
    if (*t < 0) *t = 0;
    if (*t > WIRE_TIME_MAX) *t = WIRE_TIME_MAX;
}

int wire_round_trip(const ProtobufCMessage *m)
{
    size_t len = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = malloc(len + 1);
    if (!buf) return 0;
    protobuf_c_message_pack(m, buf);
    ProtobufCMessage *c = protobuf_c_message_unpack(m->descriptor, NULL, len, buf);
    free(buf);
    if (c) protobuf_c_message_free_unpacked(c, NULL);
    return c != NULL;
}

int wire_heartbeat_fix(Mirrorscope__Heartbeat *h, const char **why)
{
    if (!wire_node_ok(h->node, why)) return 0;
    if (!wire_round_trip(&h->base)) {
        *why = "a field that does not survive a round trip (numbered 0?)";
        return 0;
    }
    if (!wire__text_ok(h->version, WIRE_NODE_MAX) || !wire__text_ok(h->search_endpoint, WIRE_NODE_MAX)) {
        *why = "version or search_endpoint too long or not text";
        return 0;
    }
    wire__clamp_t(&h->start_ns);
    wire__clamp_t(&h->time_ns);
    Mirrorscope__Counters *c = h->counters;
    if (c) {
        uint64_t *u[] = { &c->rx_packets, &c->rx_bytes, &c->stored_packets, &c->stored_bytes,
                          &c->flows_active, &c->records_published, &c->records_shed, &c->disk_used };
        for (size_t i = 0; i < sizeof u / sizeof u[0]; i++) wire__clamp_u(u[i]);
        for (size_t i = 0; i < c->n_drops; i++) wire__clamp_u(&c->drops[i]->value);
        wire__clamp_t(&c->oldest_ns);
        wire__clamp_t(&c->newest_ns);
    }
    return 1;
}
