/* flowrec.c - flow records as JSON lines (see flowrec.h).
 *
 * Hand-rolled appends instead of printf: a busy import prints tens of
 * thousands of records a second, and formatting them with vfprintf cost
 * more than analysing the packets.
 */
#include "flowrec.h"

#include "flowkey.h"

#include <string.h>

typedef struct jbuf {
    char *p;
    size_t len, used;
    int overflow;
} jbuf;

static void jb_str(jbuf *b, const char *s)
{
    size_t n = strlen(s);
    if (b->overflow || n >= b->len - b->used) {
        b->overflow = 1;
        return;
    }
    memcpy(b->p + b->used, s, n);
    b->used += n;
}

static void jb_u64(jbuf *b, uint64_t v)
{
    char tmp[24];
    int i = sizeof tmp;
    do tmp[--i] = (char)('0' + v % 10);
    while ((v /= 10));
    size_t n = sizeof tmp - (size_t)i;
    if (b->overflow || n >= b->len - b->used) {
        b->overflow = 1;
        return;
    }
    memcpy(b->p + b->used, tmp + i, n);
    b->used += n;
}

static void jb_i64(jbuf *b, int64_t v)
{
    if (v < 0) {
        jb_str(b, "-");
        jb_u64(b, (uint64_t)0 - (uint64_t)v);
    } else {
        jb_u64(b, (uint64_t)v);
    }
}

/* ,"name":value */
static void jb_kv_u(jbuf *b, const char *name, uint64_t v)
{
    jb_str(b, ",\"");
    jb_str(b, name);
    jb_str(b, "\":");
    jb_u64(b, v);
}

static void jb_kv_i(jbuf *b, const char *name, int64_t v)
{
    jb_str(b, ",\"");
    jb_str(b, name);
    jb_str(b, "\":");
    jb_i64(b, v);
}

static void jb_stat(jbuf *b, const char *name, const flowrec_stat *s)
{
    jb_str(b, ",\"");
    jb_str(b, name);
    jb_str(b, "\":{\"count\":");
    jb_u64(b, s->count);
    if (s->count) {
        jb_kv_i(b, "min", s->min);
        jb_kv_i(b, "mean", s->sum / (int64_t)s->count);
        jb_kv_i(b, "max", s->max);
    }
    jb_str(b, "}");
}

static void jb_dir(jbuf *b, const char *name, const flowrec_dir *d)
{
    jb_str(b, ",\"");
    jb_str(b, name);
    jb_str(b, "\":{\"packets\":");
    jb_u64(b, d->packets);
    jb_kv_u(b, "ip_bytes", d->ip_bytes);
    jb_kv_u(b, "payload_bytes", d->payload_bytes);
    jb_kv_u(b, "retransmissions", d->retransmissions);
    jb_kv_u(b, "fast_retransmissions", d->fast_retransmissions);
    jb_kv_u(b, "spurious_retransmissions", d->spurious_retransmissions);
    jb_kv_u(b, "out_of_order", d->out_of_order);
    jb_kv_u(b, "dup_acks", d->dup_acks);
    jb_kv_u(b, "lost_segments", d->lost_segments);
    jb_kv_u(b, "zero_windows", d->zero_windows);
    jb_kv_u(b, "window_full", d->window_full);
    jb_kv_u(b, "keep_alives", d->keep_alives);
    jb_kv_u(b, "rsts", d->rsts);
    jb_kv_u(b, "fins", d->fins);
    jb_stat(b, "rtt_ns", &d->rtt);
    jb_str(b, "}");
}

static void jb_endpoint(jbuf *b, const char *name, const uint8_t ip[16], uint16_t port)
{
    char addr[64];
    flowkey_addr_str(ip, addr, sizeof addr);
    jb_str(b, ",\"");
    jb_str(b, name);
    jb_str(b, "\":{\"ip\":\"");
    jb_str(b, addr);
    jb_str(b, "\",\"port\":");
    jb_u64(b, port);
    jb_str(b, "}");
}

int flowrec_json(const flowrec *r, const char *node, char *buf, size_t len)
{
    jbuf b = { buf, len, 0, 0 };
    char obs[64];
    flowkey_addr_str(r->observer, obs, sizeof obs);
    /* node comes from the command line or the host name: no quotes to escape
     * in practice, but never emit broken JSON if there are. */
    jb_str(&b, "{\"flow_id\":");
    jb_u64(&b, r->flow_id);
    jb_str(&b, ",\"node\":\"");
    for (const char *c = node; *c; c++) {
        char one[3] = { *c, 0, 0 };
        if (*c == '"' || *c == '\\') {
            one[0] = '\\';
            one[1] = *c;
        } else if ((unsigned char)*c < 0x20) {
            one[0] = '?';
        }
        jb_str(&b, one);
    }
    jb_str(&b, "\"");
    jb_kv_u(&b, "vni", r->vni);
    jb_str(&b, ",\"observer\":\"");
    jb_str(&b, obs);
    jb_str(&b, "\"");
    jb_kv_u(&b, "proto", r->proto);
    jb_endpoint(&b, "client", r->client_ip, r->client_port);
    jb_endpoint(&b, "server", r->server_ip, r->server_port);
    jb_kv_i(&b, "first_ns", r->first_ns);
    jb_kv_i(&b, "last_ns", r->last_ns);
    jb_dir(&b, "c2s", &r->c2s);
    jb_dir(&b, "s2c", &r->s2c);
    if (r->proto == 6) {
        jb_str(&b, ",\"handshake\":{\"complete\":");
        jb_str(&b, (r->hs_seen & 7) == 7 ? "true" : "false");
        if (r->hs_seen & FLOWREC_HS_SYN) jb_kv_i(&b, "syn_ns", r->syn_ns);
        if (r->hs_seen & FLOWREC_HS_SYNACK) jb_kv_i(&b, "synack_ns", r->synack_ns);
        if (r->hs_seen & FLOWREC_HS_ACK) jb_kv_i(&b, "ack_ns", r->ack_ns);
        if ((r->hs_seen & 3) == 3) jb_kv_i(&b, "server_setup_ns", r->synack_ns - r->syn_ns);
        if ((r->hs_seen & 6) == 6) jb_kv_i(&b, "client_setup_ns", r->ack_ns - r->synack_ns);
        if (r->hs_seen & FLOWREC_HS_IRTT) jb_kv_i(&b, "initial_rtt_ns", r->initial_rtt_ns);
        jb_str(&b, "}");
    }
    jb_stat(&b, "app_response_ns", &r->app_response);
    jb_str(&b, ",\"conn_state\":\"");
    jb_str(&b, r->conn_state);
    jb_str(&b, "\",\"history\":\"");
    jb_str(&b, r->history);
    jb_str(&b, "\",\"final\":");
    jb_str(&b, r->final ? "true" : "false");
    jb_str(&b, "}");
    return b.overflow ? -1 : (int)b.used;
}
