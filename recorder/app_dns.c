/* app_dns.c - DNS queries and their responses over UDP and TCP (see
 * app_dns.h, docs/APP_ANALYTICS.md).
 *
 * DESIGN: a flow's state is a FIFO of its unanswered queries (at most
 * DNS_PENDING; a query past it is dropped and counted), each with its id,
 * direction, type, raw name and times. A response answers the oldest
 * pending query with the same id sent the other way (tshark's
 * dns.response_to rule: the flow already fixes the transport and the
 * swapped addresses and ports) and completed no later than the response
 * (tshark pairs a response with a query in an earlier frame). A query
 * with the id and direction of a pending one within DNS_RETRANS_NS is a
 * retransmission (tshark's dns.retransmission, its retransmission_timer
 * of 5 s) and makes no record.
 * Names are kept raw (labels joined by '.', at most 255 bytes) and put in
 * tshark's presentation (apprec_tshark_text(); "<Root>" for the root) when
 * the record is made.
 *
 * Times: a query's ts_ns is the packet with its first byte (for TCP, the
 * length prefix's); response_ns is the packet that completed the response
 * minus the one that completed the query (tshark's dns.time: the frames the
 * two messages are dissected in).
 *
 * Over TCP, messages are length-prefixed. One larger than what the stream
 * layer holds is read from its first bytes (the header, and the question of
 * a query) and then skipped as it arrives, so it completes when its last
 * byte does. A framing error (a message too short for a header) or a gap
 * ends the connection's parsing: the length prefixes cannot be found again.
 */
#include "app_dns.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

#define DNS_PENDING 8
#define DNS_RAW_MAX 255                /* a name's raw form kept per query */
#define DNS_RETRANS_NS 5000000000LL    /* tshark's dns.retransmission_timer */
#define DNS_HDR 12
#define DNS_QUESTION_MAX (DNS_HDR + 255 + 4) /* header, the longest name, type, class */
#define DNS_PTR_HOPS 64

typedef struct dns_query {
    int64_t ts_ns, done_ns;
    uint16_t id, qtype;
    uint8_t dir, cut;
    uint8_t rawlen; /* 0: the root */
    uint8_t raw[DNS_RAW_MAX];
} dns_query;

/* What a message's first bytes say. */
typedef struct dns_msg {
    uint16_t id, flags, qdcount, ancount, qtype;
    uint8_t cut;
    uint8_t rawlen;
    uint8_t raw[DNS_RAW_MAX];
} dns_msg;

typedef struct dns_state {
    uint8_t transport; /* 17 or 6 */
    uint8_t npending;
    uint8_t dead;      /* TCP: the framing is lost */
    uint8_t big_dir;
    uint32_t big_left; /* TCP: bytes of a large message still to skip */
    int64_t big_ts;
    int big_ok;        /* its first bytes parsed */
    dns_msg big;
    dns_query q[DNS_PENDING]; /* oldest first */
} dns_state;

/* ---- names ---------------------------------------------------------------- */

/* The raw name at off: labels as they are, joined by '.' (tshark joins
 * them so, whatever bytes they hold). Returns the offset after the name
 * where it starts (not where a pointer led), 0 when malformed. */
static size_t dns__raw_name(const uint8_t *m, size_t len, size_t off, uint8_t *raw,
                            uint8_t *rawlen, uint8_t *cut)
{
    size_t end = 0, n = 0;
    int hops = 0;
    *cut = 0;
    for (;;) {
        if (off >= len) return 0;
        uint8_t l = m[off];
        if (l == 0) {
            if (!end) end = off + 1;
            break;
        }
        if ((l & 0xc0) == 0xc0) {
            if (off + 1 >= len || ++hops > DNS_PTR_HOPS) return 0;
            if (!end) end = off + 2;
            off = ((size_t)(l & 0x3f) << 8) | m[off + 1];
            continue;
        }
        if (l & 0xc0) return 0; /* extended (0x40) and reserved (0x80) label types */
        if (off + 1 + l > len) return 0;
        for (size_t i = 0; i < (size_t)l + 1; i++) {
            uint8_t c = i == 0 ? '.' : m[off + i];
            if (i == 0 && n == 0) continue; /* no dot before the first label */
            if (n < DNS_RAW_MAX) raw[n++] = c;
            else *cut = 1;
        }
        off += 1 + (size_t)l;
    }
    *rawlen = (uint8_t)n;
    return end;
}

size_t app_dns_name(const uint8_t *m, size_t len, size_t off, char *out, size_t outsz, int *cut)
{
    uint8_t raw[DNS_RAW_MAX], rawlen = 0, rcut = 0;
    size_t end = dns__raw_name(m, len, off, raw, &rawlen, &rcut);
    *cut = rcut;
    out[0] = 0;
    if (!end) return 0;
    if (rawlen) apprec_tshark_text(out, outsz, raw, rawlen, 0, cut);
    else snprintf(out, outsz, "<Root>");
    return end;
}

/* ---- messages ----------------------------------------------------------- */

/* The header and, for a query, the first question of a message of which
 * len bytes are at m. Returns 0, or -1 when they do not parse. */
static int dns__msg(const uint8_t *m, size_t len, dns_msg *d)
{
    if (len < DNS_HDR) return -1;
    d->id = (uint16_t)(m[0] << 8 | m[1]);
    d->flags = (uint16_t)(m[2] << 8 | m[3]);
    d->qdcount = (uint16_t)(m[4] << 8 | m[5]);
    d->ancount = (uint16_t)(m[6] << 8 | m[7]);
    d->rawlen = 0;
    d->cut = 0;
    d->qtype = 0;
    if (d->flags & 0x8000) return 0; /* a response: its header is all we need */
    if (!d->qdcount) return -1;      /* a query without a question */
    size_t end = dns__raw_name(m, len, DNS_HDR, d->raw, &d->rawlen, &d->cut);
    if (!end || end + 2 > len) return -1;
    d->qtype = (uint16_t)(m[end] << 8 | m[end + 1]);
    return 0;
}

static void dns__emit(dns_state *s, const dns_query *q, const dns_msg *resp, int64_t resp_done,
                      const app_out *out)
{
    apprec r;
    /* Up to the name, which is written with its NUL below: the rest of the
     * record's 5 KB is never read. */
    memset(&r, 0, offsetof(apprec, u) + offsetof(apprec_dns, qname));
    r.kind = APPREC_DNS;
    r.ts_ns = q->ts_ns;
    r.u.dns.transport = s->transport;
    r.u.dns.id = q->id;
    r.u.dns.qtype = q->qtype;
    int cut = q->cut;
    if (q->rawlen) apprec_tshark_text(r.u.dns.qname, sizeof r.u.dns.qname, q->raw, q->rawlen, 0, &cut);
    else apprec_text(&r, r.u.dns.qname, sizeof r.u.dns.qname, "<Root>", 6);
    r.truncated |= (uint8_t)cut;
    if (resp) {
        r.u.dns.has_response = 1;
        r.u.dns.rcode = resp->flags & 0xf;
        r.u.dns.answers = resp->ancount;
        r.u.dns.response_ns = resp_done - q->done_ns;
    }
    out->counts->records++;
    out->emit(out->ctx, q->dir, &r);
}

static void dns__drop_at(dns_state *s, int i)
{
    memmove(&s->q[i], &s->q[i + 1], (size_t)(s->npending - i - 1) * sizeof s->q[0]);
    s->npending--;
}

/* One whole message: sent in direction dir, its first byte at ts_ns, its
 * last at done_ns. */
static void dns__message(dns_state *s, const dns_msg *d, int dir, int64_t ts_ns, int64_t done_ns,
                         const app_out *out)
{
    if (d->flags & 0x8000) {
        /* Only a query completed by then: the stream layer can hand a
         * direction's held bytes after the other's later ones (a TCP
         * stream whose first segment came late holds the server's response
         * until the query's start is in), and tshark, reading frames in
         * order, does not pair a response with a query after it. */
        for (int i = 0; i < s->npending; i++) {
            if (s->q[i].id == d->id && s->q[i].dir != dir && s->q[i].done_ns <= done_ns) {
                dns__emit(s, &s->q[i], d, done_ns, out);
                dns__drop_at(s, i);
                return;
            }
        }
        out->counts->unmatched++;
        return;
    }
    for (int i = 0; i < s->npending; i++)
        if (s->q[i].id == d->id && s->q[i].dir == dir && done_ns - s->q[i].done_ns < DNS_RETRANS_NS)
            return; /* a retransmission: the first query's record stands */
    if (s->npending == DNS_PENDING) {
        out->counts->dropped++;
        return;
    }
    dns_query *q = &s->q[s->npending++];
    q->ts_ns = ts_ns;
    q->done_ns = done_ns;
    q->id = d->id;
    q->qtype = d->qtype;
    q->dir = (uint8_t)dir;
    q->cut = d->cut;
    q->rawlen = d->rawlen;
    memcpy(q->raw, d->raw, d->rawlen);
}

/* ---- the parsers ---------------------------------------------------------- */

static void dns__init(dns_state *s, uint8_t transport)
{
    memset(s, 0, offsetof(dns_state, q));
    s->transport = transport;
}

static void dns_udp_init(void *state) { dns__init(state, 17); }
static void dns_tcp_init(void *state) { dns__init(state, 6); }

static int dns_detect_udp(const uint8_t *p, size_t len) { return len >= DNS_HDR ? APP_DETECT_YES : APP_DETECT_NO; }

/* DNS over TCP is chosen by port; the bytes only have to be a length
 * prefix and a header that could be a query or a response. */
static int dns_detect_tcp(const uint8_t *p, size_t len)
{
    if (len < 2 + 4) return APP_DETECT_MORE;
    size_t n = (size_t)(p[0] << 8 | p[1]);
    if (n < DNS_HDR) return APP_DETECT_NO;
    return ((p[4] >> 3) & 0xf) <= 6 ? APP_DETECT_YES : APP_DETECT_NO; /* a known opcode */
}

/* One datagram. */
static size_t dns_udp_parse(void *state, const app_view *v, const app_out *out)
{
    dns_state *s = state;
    dns_msg d;
    if (dns__msg(v->p, v->len, &d) < 0) out->counts->malformed++;
    else dns__message(s, &d, v->dir, app_view_ts(v, 0), v->done_ns, out);
    return v->len;
}

static size_t dns_tcp_parse(void *state, const app_view *v, const app_out *out)
{
    dns_state *s = state;
    size_t off = 0;
    if (s->dead) return v->len;
    while (off < v->len) {
        if (s->big_left) { /* skipping the rest of a large message */
            size_t k = v->len - off < s->big_left ? v->len - off : s->big_left;
            off += k;
            s->big_left -= (uint32_t)k;
            if (!s->big_left && s->big_ok)
                dns__message(s, &s->big, s->big_dir, s->big_ts, v->done_ns, out);
            continue;
        }
        if (v->len - off < 2) break;
        size_t n = (size_t)(v->p[off] << 8 | v->p[off + 1]);
        const uint8_t *m = v->p + off + 2;
        size_t have = v->len - off - 2;
        if (n < DNS_HDR) {
            out->counts->malformed++;
            s->dead = 1;
            return v->len;
        }
        if (have >= n) {
            dns_msg d;
            if (dns__msg(m, n, &d) < 0) out->counts->malformed++;
            else dns__message(s, &d, v->dir, app_view_ts(v, off), v->done_ns, out);
            off += 2 + n;
            continue;
        }
        /* Not whole yet: a message the layer may not hold whole is read from
         * its first bytes and skipped as it comes. */
        if (n + 2 > 4096 && have >= (n < DNS_QUESTION_MAX ? n : DNS_QUESTION_MAX)) {
            s->big_ok = dns__msg(m, have, &s->big) == 0;
            if (!s->big_ok) out->counts->malformed++;
            s->big_ts = app_view_ts(v, off);
            s->big_dir = (uint8_t)v->dir;
            s->big_left = (uint32_t)(n - have);
            off = v->len;
            if (!s->big_left && s->big_ok) /* cannot happen: have < n */
                dns__message(s, &s->big, s->big_dir, s->big_ts, v->done_ns, out);
            break;
        }
        break;
    }
    return off;
}

static void dns_gap(void *state, int dir)
{
    dns_state *s = state;
    if (s->transport == 6) s->dead = 1; /* the length prefixes are lost */
}

static int dns_expire(void *state, int64_t before_ns, const app_out *out)
{
    dns_state *s = state;
    while (s->npending && s->q[0].done_ns < before_ns) {
        dns__emit(s, &s->q[0], NULL, 0, out);
        dns__drop_at(s, 0);
    }
    return s->npending;
}

static void dns_end(void *state, const app_out *out)
{
    dns_expire(state, INT64_MAX, out);
}

const app_parser app_dns_udp_parser = {
    .name = "dns",
    .state_size = sizeof(dns_state),
    .detect = dns_detect_udp,
    .init = dns_udp_init,
    .parse = dns_udp_parse,
    .gap = dns_gap,
    .end = dns_end,
    .expire = dns_expire,
};

const app_parser app_dns_tcp_parser = {
    .name = "dns",
    .state_size = sizeof(dns_state),
    .detect = dns_detect_tcp,
    .init = dns_tcp_init,
    .parse = dns_tcp_parse,
    .gap = dns_gap,
    .end = dns_end,
    .expire = dns_expire,
};
