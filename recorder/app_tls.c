/* app_tls.c - TLS ClientHello and ServerHello (see app_tls.h,
 * docs/APP_ANALYTICS.md).
 *
 * DESIGN: direction 0 is the client (the layer detects TLS by a handshake
 * record whose first message is a ClientHello). Each direction is read in
 * whole TLS records, as tshark reassembles them (tls.desegment_ssl_records):
 * a hello "completes" with the packet that completed the record holding it,
 * not its own last byte, which differs when a server packs ServerHello,
 * Certificate, ... into one record. The first handshake message of the
 * client is the ClientHello, the server's first is the ServerHello (a
 * HelloRetryRequest counts as one, as the first ServerHello does in the
 * oracle). A message longer than its record continues in the next
 * handshake records and is put together in a scratch buffer. Once the
 * ServerHello is read the record is emitted and the flow is given back
 * (APP_PARSE_DONE); a connection without one gets its record, without the
 * server's fields, at its end. Bytes that are not TLS records end the
 * reading of that direction (counted).
 */
#include "app_tls.h"

#include <stddef.h>
#include <string.h>

#define TLS_RECORD_MAX (16384 + 2048) /* TLSCiphertext's bound */
#define TLS_MSG_MAX 65536             /* a handshake message put together across records */
#define TLS_HANDSHAKE 22
#define TLS_CLIENT_HELLO 1
#define TLS_SERVER_HELLO 2
#define EXT_SERVER_NAME 0
#define EXT_ALPN 16
#define EXT_SUPPORTED_VERSIONS 43

typedef struct tls_state {
    uint8_t have_ch;     /* rec holds the ClientHello's fields */
    uint8_t client_done; /* nothing more to read from the client */
    uint8_t server_done; /* nor from the server */
    uint8_t emitted;
    int64_t ch_done;     /* the packet that completed the ClientHello's record */
    int64_t sh_done;     /* and the ServerHello's */
    apprec rec;
} tls_state;

/* A bounds-checked reader: past the end it reads zeros and sets bad. */
typedef struct rd {
    const uint8_t *p;
    size_t n, off;
    int bad;
} rd;

static uint32_t rd_u(rd *r, unsigned bytes)
{
    uint32_t v = 0;
    if (r->n - r->off < bytes) {
        r->bad = 1;
        r->off = r->n;
        return 0;
    }
    for (unsigned i = 0; i < bytes; i++) v = v << 8 | r->p[r->off++];
    return v;
}

static const uint8_t *rd_skip(rd *r, size_t n)
{
    if (r->n - r->off < n) {
        r->bad = 1;
        r->off = r->n;
        return NULL;
    }
    r->off += n;
    return r->p + r->off - n;
}

/* The first handshake message of the records at p[0, len) (the first a
 * handshake record): its type and body. Returns the bytes of the records
 * it needed, 0 when they are not all here yet, -1 when they are not TLS
 * records or the message is past TLS_MSG_MAX. */
static long tls__first_msg(const uint8_t *p, size_t len, uint8_t *scratch, int *htype,
                           const uint8_t **body, size_t *blen)
{
    size_t off = 0, have = 0, need = 0;
    while (len - off >= 5) {
        size_t rlen = (size_t)(p[off + 3] << 8 | p[off + 4]);
        if (p[off] != TLS_HANDSHAKE || p[off + 1] != 3 || rlen > TLS_RECORD_MAX) return -1;
        if (len - off - 5 < rlen) return 0;
        const uint8_t *frag = p + off + 5;
        if (off == 0) {
            if (rlen < 4) return -1;
            *htype = frag[0];
            need = 4 + ((size_t)frag[1] << 16 | (size_t)frag[2] << 8 | frag[3]);
            if (need > TLS_MSG_MAX) return -1;
            if (rlen >= need) { /* in one record: read in place */
                *body = frag + 4;
                *blen = need - 4;
                return (long)(5 + rlen);
            }
        }
        size_t k = rlen < need - have ? rlen : need - have;
        memcpy(scratch + have, frag, k);
        have += k;
        off += 5 + rlen;
        if (have == need) {
            *body = scratch + 4;
            *blen = need - 4;
            return (long)off;
        }
    }
    return 0;
}

/* The ClientHello's fields into s->rec. Returns 0, or -1 when it is cut
 * short or malformed (what was read before stays). */
static int tls__client_hello(tls_state *s, const uint8_t *b, size_t n)
{
    apprec *r = &s->rec;
    apprec_tls *t = &r->u.tls;
    rd x = { b, n, 0, 0 };
    t->client_version = (uint16_t)rd_u(&x, 2);
    rd_skip(&x, 32);
    rd_skip(&x, rd_u(&x, 1)); /* session id */
    rd_skip(&x, rd_u(&x, 2)); /* cipher suites */
    rd_skip(&x, rd_u(&x, 1)); /* compression methods */
    if (x.bad) return -1;
    if (x.off == x.n) return 0; /* no extensions */
    size_t ext_end = rd_u(&x, 2);
    if (ext_end > x.n - x.off) return -1;
    ext_end += x.off;
    while (!x.bad && ext_end - x.off >= 4) {
        uint32_t type = rd_u(&x, 2), elen = rd_u(&x, 2);
        if (elen > ext_end - x.off) return -1;
        rd e = { b + x.off, elen, 0, 0 };
        x.off += elen;
        if (type == EXT_SERVER_NAME && !t->has_sni) {
            size_t list = rd_u(&e, 2);
            if (list > e.n - e.off) return -1;
            while (!e.bad && e.off < 2 + list) {
                uint32_t ntype = rd_u(&e, 1), nlen = rd_u(&e, 2);
                const uint8_t *name = rd_skip(&e, nlen);
                if (!name) return -1;
                if (ntype == 0) {
                    int cut = 0;
                    apprec_tshark_text(t->sni, sizeof t->sni, name, nlen, 1, &cut);
                    t->has_sni = 1;
                    r->truncated |= (uint8_t)cut;
                    break;
                }
            }
        } else if (type == EXT_ALPN) {
            size_t list = rd_u(&e, 2);
            if (list > e.n - e.off) return -1;
            while (!e.bad && e.off < 2 + list) {
                uint32_t plen = rd_u(&e, 1);
                const uint8_t *proto = rd_skip(&e, plen);
                if (!proto) return -1;
                char text[1024];
                int cut = 0;
                apprec_tshark_text(text, sizeof text, proto, plen, 1, &cut);
                r->truncated |= (uint8_t)cut;
                apprec_alpn_add(r, text, strlen(text));
            }
        }
        if (e.bad) return -1;
    }
    return x.bad ? -1 : 0;
}

/* The ServerHello's version (supported_versions when present) and cipher.
 * Returns 0, or -1 when they cannot be read. */
static int tls__server_hello(tls_state *s, const uint8_t *b, size_t n)
{
    apprec_tls *t = &s->rec.u.tls;
    rd x = { b, n, 0, 0 };
    uint16_t version = (uint16_t)rd_u(&x, 2);
    rd_skip(&x, 32);
    rd_skip(&x, rd_u(&x, 1)); /* session id */
    uint16_t cipher = (uint16_t)rd_u(&x, 2);
    rd_skip(&x, 1); /* compression method */
    if (x.bad) return -1;
    t->version = version;
    t->cipher = cipher;
    t->has_server_hello = 1;
    if (x.n - x.off < 2) return 0;
    size_t ext_end = rd_u(&x, 2);
    if (ext_end > x.n - x.off) ext_end = x.n - x.off; /* what is there is read */
    ext_end += x.off;
    while (ext_end - x.off >= 4) {
        uint32_t type = rd_u(&x, 2), elen = rd_u(&x, 2);
        if (elen > ext_end - x.off) break;
        if (type == EXT_SUPPORTED_VERSIONS && elen >= 2)
            t->version = (uint16_t)(b[x.off] << 8 | b[x.off + 1]);
        x.off += elen;
    }
    return 0;
}

static void tls__emit(tls_state *s, const app_out *out)
{
    if (!s->have_ch || s->emitted) return;
    s->emitted = 1;
    out->counts->records++;
    out->emit(out->ctx, 0, &s->rec);
}

static int tls_detect(const uint8_t *p, size_t len)
{
    if (len >= 1 && p[0] != TLS_HANDSHAKE) return APP_DETECT_NO;
    if (len >= 2 && p[1] != 3) return APP_DETECT_NO;
    if (len >= 3 && p[2] > 4) return APP_DETECT_NO;
    if (len >= 5) {
        size_t rlen = (size_t)(p[3] << 8 | p[4]);
        if (rlen < 4 || rlen > TLS_RECORD_MAX) return APP_DETECT_NO;
    }
    if (len < 6) return APP_DETECT_MORE;
    return p[5] == TLS_CLIENT_HELLO ? APP_DETECT_YES : APP_DETECT_NO;
}

static void tls_init(void *state)
{
    tls_state *s = state;
    memset(s, 0, offsetof(tls_state, rec));
    /* Not the SNI's and the ALPN list's 3 KB: their writers end them (a
     * NUL, the list's length), as apppb_read does. */
    memset(&s->rec, 0, offsetof(apprec, u) + offsetof(apprec_tls, sni) + 1);
    s->rec.u.tls.alpn_count = s->rec.u.tls.alpn_len = 0;
    s->rec.kind = APPREC_TLS;
}

/* Both hellos read (or the server's side given up): the record goes out,
 * and the flow back to the layer. */
static size_t tls__both(tls_state *s, const app_out *out)
{
    if (s->rec.u.tls.has_server_hello) s->rec.u.tls.hello_rtt_ns = s->sh_done - s->ch_done;
    tls__emit(s, out);
    return APP_PARSE_DONE;
}

static size_t tls_parse(void *state, const app_view *v, const app_out *out)
{
    tls_state *s = state;
    static uint8_t scratch[TLS_MSG_MAX]; /* the analysis thread's; a message at a time */
    if (!s->have_ch && s->client_done) return APP_PARSE_DONE; /* no ClientHello to come */
    if (v->dir == 0 ? s->client_done : s->server_done) return v->len;
    size_t off = 0;
    while (v->len - off >= 5) {
        const uint8_t *p = v->p + off;
        size_t rlen = (size_t)(p[3] << 8 | p[4]);
        if (p[1] != 3 || rlen > TLS_RECORD_MAX) goto not_tls;
        if (p[0] != TLS_HANDSHAKE) { /* a change_cipher_spec, an alert: not a hello */
            if (v->len - off - 5 < rlen) break;
            off += 5 + rlen;
            continue;
        }
        int htype = 0;
        const uint8_t *body = NULL;
        size_t blen = 0;
        long used = tls__first_msg(p, v->len - off, scratch, &htype, &body, &blen);
        if (used == 0) break;
        if (used < 0) goto not_tls;
        if (v->dir == 0) {
            s->client_done = 1;
            if (htype != TLS_CLIENT_HELLO) goto not_tls;
            s->rec.ts_ns = app_view_ts(v, off);
            s->rec.u.tls.record_version = (uint16_t)(p[1] << 8 | p[2]);
            s->ch_done = v->done_ns;
            s->have_ch = 1;
            if (tls__client_hello(s, body, blen) < 0) out->counts->malformed++;
            return s->server_done ? tls__both(s, out) : v->len;
        }
        /* The ServerHello is read when its record completes, even before
         * the ClientHello's (a capture point that saw the directions out
         * of order): its time is its own, as in tshark. */
        s->server_done = 1;
        s->sh_done = v->done_ns;
        if (htype != TLS_SERVER_HELLO || tls__server_hello(s, body, blen) < 0)
            out->counts->malformed++;
        return s->have_ch ? tls__both(s, out) : v->len;
    }
    return off;
not_tls:
    out->counts->malformed++;
    if (v->dir == 0) s->client_done = 1;
    else s->server_done = 1;
    if (!s->have_ch && s->client_done) return APP_PARSE_DONE; /* nothing to follow */
    if (s->client_done && s->server_done) return tls__both(s, out);
    return v->len;
}

static void tls_gap(void *state, int dir)
{
    tls_state *s = state;
    if (dir == 0) s->client_done = 1; /* a ClientHello lost (or the bytes after it) */
    else s->server_done = 1;
}

static void tls_end(void *state, const app_out *out) { tls__emit(state, out); }

const app_parser app_tls_parser = {
    .name = "tls",
    .state_size = sizeof(tls_state),
    .detect = tls_detect,
    .init = tls_init,
    .parse = tls_parse,
    .gap = tls_gap,
    .end = tls_end,
};
