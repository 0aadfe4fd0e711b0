/* flowrec.c - flow records as JSON lines (see flowrec.h). */
#include "flowrec.h"

#include "flowkey.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>

typedef struct jbuf {
    char *p;
    size_t len, used;
    int overflow;
} jbuf;

static void jb(jbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void jb(jbuf *b, const char *fmt, ...)
{
    if (b->overflow) return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b->p + b->used, b->len - b->used, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= b->len - b->used) b->overflow = 1;
    else b->used += (size_t)n;
}

static void jb_stat(jbuf *b, const char *name, const flowrec_stat *s)
{
    jb(b, ",\"%s\":{\"count\":%" PRIu64, name, s->count);
    if (s->count)
        jb(b, ",\"min\":%" PRId64 ",\"mean\":%" PRId64 ",\"max\":%" PRId64, s->min,
           s->sum / (int64_t)s->count, s->max);
    jb(b, "}");
}

static void jb_dir(jbuf *b, const char *name, const flowrec_dir *d)
{
    jb(b,
       ",\"%s\":{\"packets\":%" PRIu64 ",\"ip_bytes\":%" PRIu64 ",\"payload_bytes\":%" PRIu64
       ",\"retransmissions\":%u,\"fast_retransmissions\":%u,\"spurious_retransmissions\":%u"
       ",\"out_of_order\":%u,\"dup_acks\":%u,\"lost_segments\":%u,\"zero_windows\":%u"
       ",\"window_full\":%u,\"keep_alives\":%u,\"rsts\":%u,\"fins\":%u",
       name, d->packets, d->ip_bytes, d->payload_bytes, d->retransmissions,
       d->fast_retransmissions, d->spurious_retransmissions, d->out_of_order, d->dup_acks,
       d->lost_segments, d->zero_windows, d->window_full, d->keep_alives, d->rsts, d->fins);
    jb_stat(b, "rtt_ns", &d->rtt);
    jb(b, "}");
}

int flowrec_json(const flowrec *r, const char *node, char *buf, size_t len)
{
    jbuf b = { buf, len, 0, 0 };
    char obs[64], cip[64], sip[64];
    flowkey_addr_str(r->observer, obs, sizeof obs);
    flowkey_addr_str(r->client_ip, cip, sizeof cip);
    flowkey_addr_str(r->server_ip, sip, sizeof sip);
    jb(&b,
       "{\"flow_id\":%" PRIu64 ",\"node\":\"%s\",\"vni\":%u,\"observer\":\"%s\",\"proto\":%u"
       ",\"client\":{\"ip\":\"%s\",\"port\":%u},\"server\":{\"ip\":\"%s\",\"port\":%u}"
       ",\"first_ns\":%" PRId64 ",\"last_ns\":%" PRId64,
       r->flow_id, node, r->vni, obs, r->proto, cip, r->client_port, sip, r->server_port,
       r->first_ns, r->last_ns);
    jb_dir(&b, "c2s", &r->c2s);
    jb_dir(&b, "s2c", &r->s2c);
    if (r->proto == 6) {
        int complete = (r->hs_seen & 7) == 7;
        jb(&b, ",\"handshake\":{\"complete\":%s", complete ? "true" : "false");
        if (r->hs_seen & FLOWREC_HS_SYN) jb(&b, ",\"syn_ns\":%" PRId64, r->syn_ns);
        if (r->hs_seen & FLOWREC_HS_SYNACK) jb(&b, ",\"synack_ns\":%" PRId64, r->synack_ns);
        if (r->hs_seen & FLOWREC_HS_ACK) jb(&b, ",\"ack_ns\":%" PRId64, r->ack_ns);
        if ((r->hs_seen & 3) == 3) jb(&b, ",\"server_setup_ns\":%" PRId64, r->synack_ns - r->syn_ns);
        if ((r->hs_seen & 6) == 6) jb(&b, ",\"client_setup_ns\":%" PRId64, r->ack_ns - r->synack_ns);
        if (r->hs_seen & FLOWREC_HS_IRTT) jb(&b, ",\"initial_rtt_ns\":%" PRId64, r->initial_rtt_ns);
        jb(&b, "}");
    }
    jb_stat(&b, "app_response_ns", &r->app_response);
    jb(&b, ",\"conn_state\":\"%s\",\"history\":\"%s\",\"final\":%s}", r->conn_state, r->history,
       r->final ? "true" : "false");
    return b.overflow ? -1 : (int)b.used;
}
