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

static void jb_mem(jbuf *b, const char *s, size_t n)
{
    if (b->overflow || n >= b->len - b->used) {
        b->overflow = 1;
        return;
    }
    memcpy(b->p + b->used, s, n);
    b->used += n;
}

static void jb_str(jbuf *b, const char *s) { jb_mem(b, s, strlen(s)); }

/* A string literal: its length is known at compile time. */
#define JB_LIT(b, lit) jb_mem((b), (lit), sizeof(lit) - 1)

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
        JB_LIT(b, "-");
        jb_u64(b, (uint64_t)0 - (uint64_t)v);
    } else {
        jb_u64(b, (uint64_t)v);
    }
}

/* ,"name":value - the key is one literal, copied at once */
#define JB_KV_U(b, name, v) (JB_LIT((b), ",\"" name "\":"), jb_u64((b), (v)))
#define JB_KV_I(b, name, v) (JB_LIT((b), ",\"" name "\":"), jb_i64((b), (v)))

/* "count", then min/mean/max when there are samples; head = ',"name":{"count":' */
static void jb_stat(jbuf *b, const char *head, size_t headlen, const flowrec_stat *s)
{
    jb_mem(b, head, headlen);
    jb_u64(b, s->count);
    if (s->count) {
        JB_KV_I(b, "min", s->min);
        JB_KV_I(b, "mean", s->sum / (int64_t)s->count);
        JB_KV_I(b, "max", s->max);
    }
    JB_LIT(b, "}");
}
#define JB_STAT(b, name, s) jb_stat((b), ",\"" name "\":{\"count\":", sizeof(",\"" name "\":{\"count\":") - 1, (s))

static void jb_dir(jbuf *b, const char *name, const flowrec_dir *d)
{
    JB_LIT(b, ",\"");
    jb_str(b, name);
    JB_LIT(b, "\":{\"packets\":");
    jb_u64(b, d->packets);
    JB_KV_U(b, "ip_bytes", d->ip_bytes);
    JB_KV_U(b, "payload_bytes", d->payload_bytes);
    JB_KV_U(b, "retransmissions", d->retransmissions);
    JB_KV_U(b, "fast_retransmissions", d->fast_retransmissions);
    JB_KV_U(b, "spurious_retransmissions", d->spurious_retransmissions);
    JB_KV_U(b, "out_of_order", d->out_of_order);
    JB_KV_U(b, "dup_acks", d->dup_acks);
    JB_KV_U(b, "lost_segments", d->lost_segments);
    JB_KV_U(b, "zero_windows", d->zero_windows);
    JB_KV_U(b, "window_full", d->window_full);
    JB_KV_U(b, "keep_alives", d->keep_alives);
    JB_KV_U(b, "rsts", d->rsts);
    JB_KV_U(b, "fins", d->fins);
    JB_STAT(b, "rtt_ns", &d->rtt);
    JB_LIT(b, "}");
}

static void jb_endpoint(jbuf *b, const char *name, const uint8_t ip[16], uint16_t port)
{
    char addr[64];
    flowkey_addr_str(ip, addr, sizeof addr);
    JB_LIT(b, ",\"");
    jb_str(b, name);
    JB_LIT(b, "\":{\"ip\":\"");
    jb_str(b, addr);
    JB_LIT(b, "\",\"port\":");
    jb_u64(b, port);
    JB_LIT(b, "}");
}

int flowrec_json(const flowrec *r, const char *node, char *buf, size_t len)
{
    jbuf b = { buf, len, 0, 0 };
    char obs[64];
    flowkey_addr_str(r->observer, obs, sizeof obs);
    /* node comes from the command line or the host name: no quotes to escape
     * in practice, but never emit broken JSON if there are. */
    JB_LIT(&b, "{\"flow_id\":");
    jb_u64(&b, r->flow_id);
    JB_LIT(&b, ",\"node\":\"");
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
    JB_LIT(&b, "\"");
    JB_KV_U(&b, "vni", r->vni);
    JB_LIT(&b, ",\"observer\":\"");
    jb_str(&b, obs);
    JB_LIT(&b, "\"");
    JB_KV_U(&b, "proto", r->proto);
    jb_endpoint(&b, "client", r->client_ip, r->client_port);
    jb_endpoint(&b, "server", r->server_ip, r->server_port);
    JB_KV_I(&b, "first_ns", r->first_ns);
    JB_KV_I(&b, "last_ns", r->last_ns);
    jb_dir(&b, "c2s", &r->c2s);
    jb_dir(&b, "s2c", &r->s2c);
    if (r->proto == 6) {
        JB_LIT(&b, ",\"handshake\":{\"complete\":");
        jb_str(&b, (r->hs_seen & 7) == 7 ? "true" : "false");
        if (r->hs_seen & FLOWREC_HS_SYN) JB_KV_I(&b, "syn_ns", r->syn_ns);
        if (r->hs_seen & FLOWREC_HS_SYNACK) JB_KV_I(&b, "synack_ns", r->synack_ns);
        if (r->hs_seen & FLOWREC_HS_ACK) JB_KV_I(&b, "ack_ns", r->ack_ns);
        if ((r->hs_seen & 3) == 3) JB_KV_I(&b, "server_setup_ns", r->synack_ns - r->syn_ns);
        if ((r->hs_seen & 6) == 6) JB_KV_I(&b, "client_setup_ns", r->ack_ns - r->synack_ns);
        if (r->hs_seen & FLOWREC_HS_IRTT) JB_KV_I(&b, "initial_rtt_ns", r->initial_rtt_ns);
        JB_LIT(&b, "}");
    }
    JB_STAT(&b, "app_response_ns", &r->app_response);
    JB_LIT(&b, ",\"conn_state\":\"");
    jb_str(&b, r->conn_state);
    JB_LIT(&b, "\",\"history\":\"");
    jb_str(&b, r->history);
    JB_LIT(&b, "\",\"final\":");
    jb_str(&b, r->final ? "true" : "false");
    JB_LIT(&b, "}");
    return b.overflow ? -1 : (int)b.used;
}
