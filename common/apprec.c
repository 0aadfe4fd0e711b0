/* apprec.c - application transaction records as JSON (see apprec.h), and
 * the helpers parsers fill their text fields with. */
#include "apprec.h"

#include "jbuf.h"

#include <stdio.h>
#include <string.h>

const char *apprec_kind_name(int kind)
{
    switch (kind) {
    case APPREC_DNS: return "dns";
    case APPREC_TLS: return "tls";
    case APPREC_HTTP: return "http";
    }
    return NULL;
}

void apprec_text(apprec *r, char *dst, size_t dstsize, const void *s, size_t n)
{
    if (n >= dstsize) {
        n = dstsize - 1;
        r->truncated = 1;
    }
    memcpy(dst, s, n);
    dst[n] = 0;
}

void apprec_alpn_add(apprec *r, const void *name, size_t n)
{
    apprec_tls *t = &r->u.tls;
    if (n > 255 || t->alpn_count >= APPREC_ALPN_MAX || 1 + n > sizeof t->alpn - t->alpn_len) {
        r->truncated = 1;
        return;
    }
    t->alpn[t->alpn_len] = (uint8_t)n;
    memcpy(t->alpn + t->alpn_len + 1, name, n);
    t->alpn_len = (uint16_t)(t->alpn_len + 1 + n);
    t->alpn_count++;
}

/* Is code point c printable as GLib's g_unichar_isprint() says (tshark's
 * format_text() asks it)? Exact for controls, surrogates, format
 * characters and noncharacters; unassigned code points are only known in
 * the planes that hold none. */
static int apprec__printable(uint32_t c)
{
    static const uint32_t format[][2] = {
        { 0x00ad, 0x00ad }, { 0x0600, 0x0605 }, { 0x061c, 0x061c }, { 0x06dd, 0x06dd },
        { 0x070f, 0x070f }, { 0x0890, 0x0891 }, { 0x08e2, 0x08e2 }, { 0x180e, 0x180e },
        { 0x200b, 0x200f }, { 0x202a, 0x202e }, { 0x2060, 0x2064 }, { 0x2066, 0x206f },
        { 0xfeff, 0xfeff }, { 0xfff9, 0xfffb }, { 0x110bd, 0x110bd }, { 0x110cd, 0x110cd },
        { 0x13430, 0x1343f }, { 0x1bca0, 0x1bca3 }, { 0x1d173, 0x1d17a }, { 0xe0001, 0xe0001 },
        { 0xe0020, 0xe007f },
    };
    if (c < 0x20 || (c >= 0x7f && c < 0xa0)) return 0;
    if (c >= 0xfdd0 && c <= 0xfdef) return 0;
    if ((c & 0xfffe) == 0xfffe) return 0;
    if (c >= 0x323b0 && c < 0xe0000) return 0; /* planes 4-13 and the rest of 3: unassigned */
    if ((c >= 0xe0002 && c < 0xe0020) || (c >= 0xe0080 && c < 0xe0100) ||
        (c >= 0xe01f0 && c < 0xf0000))
        return 0;
    for (size_t i = 0; i < sizeof format / sizeof format[0]; i++)
        if (c >= format[i][0] && c <= format[i][1]) return 0;
    return 1;
}

typedef struct tx_out {
    char *p;
    size_t n, size;
    int cut;
} tx_out;

/* Appends n bytes; past the bound nothing more is appended (cut set), but
 * the part of a run of plain characters that fits is kept (an escape or
 * an encoded character is whole or not at all). */
static void tx__put_run(tx_out *o, const char *s, size_t n, int partial)
{
    if (o->cut) return;
    if (o->n + n >= o->size) {
        o->cut = 1;
        if (!partial) return;
        n = o->size - 1 - o->n;
    }
    memcpy(o->p + o->n, s, n);
    o->n += n;
}

static void tx__put(tx_out *o, const char *s, size_t n) { tx__put_run(o, s, n, 0); }

static void tx__put_utf8(tx_out *o, uint32_t c)
{
    char b[4];
    size_t n;
    if (c < 0x80) b[0] = (char)c, n = 1;
    else if (c < 0x800) b[0] = (char)(0xc0 | c >> 6), b[1] = (char)(0x80 | (c & 0x3f)), n = 2;
    else if (c < 0x10000)
        b[0] = (char)(0xe0 | c >> 12), b[1] = (char)(0x80 | ((c >> 6) & 0x3f)),
        b[2] = (char)(0x80 | (c & 0x3f)), n = 3;
    else
        b[0] = (char)(0xf0 | c >> 18), b[1] = (char)(0x80 | ((c >> 12) & 0x3f)),
        b[2] = (char)(0x80 | ((c >> 6) & 0x3f)), b[3] = (char)(0x80 | (c & 0x3f)), n = 4;
    tx__put(o, b, n);
}

/* See apprec.h. The rules were read off tshark 4.0.17 byte by byte (DNS
 * names with every byte value and the odd UTF-8 sequences below): a
 * single-byte control character gets a C escape or \ooo; a UTF-8 sequence
 * is decoded without an overlong check (C0 AF is '/'), and a decoded code
 * point that is not printable gets \uXXXX (even U+0000 and U+007F) or
 * \UXXXXXXXX; a sequence cut short by a byte that is not a continuation, a
 * lone continuation byte, FE/FF, a 5- or 6-byte sequence, a surrogate and a
 * code point past U+10FFFF are one U+FFFD each. With ascii (what tshark
 * prints of the SNI and ALPN names, checked the same way) bytes below 0x80
 * are as they are, control characters too, and every byte from 0x80 is
 * one U+FFFD. */
void apprec_tshark_text(char *out, size_t outsz, const void *s, size_t n, int ascii, int *cut)
{
    const uint8_t *raw = s;
    tx_out o = { out, 0, outsz, 0 };
    for (size_t i = 0; i < n;) {
        uint8_t b = raw[i];
        char e[16];
        if (b < 0x80) {
            if (ascii || (b >= 0x20 && b != 0x7f)) { /* a run of them at once */
                size_t k = i + 1;
                while (n - k >= 8) { /* eight at a time while they last */
                    uint64_t w = jb_word(raw + k);
                    if (jb_word_high(w) | (ascii ? 0 : jb_word_below(w, 0x20) | jb_word_has(w, 0x7f)))
                        break;
                    k += 8;
                }
                while (k < n && raw[k] < 0x80 && (ascii || (raw[k] >= 0x20 && raw[k] != 0x7f))) k++;
                tx__put_run(&o, (const char *)raw + i, k - i, 1);
                i = k;
                continue;
            }
            i++;
            static const char cesc[] = "abtnvfr"; /* 7..13 */
            if (b >= 7 && b <= 13) snprintf(e, sizeof e, "\\%c", cesc[b - 7]);
            else snprintf(e, sizeof e, "\\%03o", b);
            tx__put(&o, e, strlen(e));
            continue;
        }
        size_t need;
        uint32_t c;
        if (ascii) need = 1, c = 0xfffd;
        else if (b >= 0xc0 && b < 0xe0) need = 2, c = b & 0x1f;
        else if (b >= 0xe0 && b < 0xf0) need = 3, c = b & 0x0f;
        else if (b >= 0xf0 && b < 0xf8) need = 4, c = b & 0x07;
        else if (b >= 0xf8 && b < 0xfc) need = 5, c = b & 0x03;
        else if (b >= 0xfc && b < 0xfe) need = 6, c = b & 0x01;
        else need = 1, c = 0xfffd;
        size_t k = 1;
        while (k < need && i + k < n && (raw[i + k] & 0xc0) == 0x80) c = (c << 6) | (raw[i + k++] & 0x3f);
        i += k;
        if (k < need || need == 1 || need > 4 || (c >= 0xd800 && c < 0xe000) || c > 0x10ffff) {
            tx__put_utf8(&o, 0xfffd);
            continue;
        }
        if (apprec__printable(c)) {
            tx__put_utf8(&o, c);
            continue;
        }
        if (c <= 0xffff) snprintf(e, sizeof e, "\\u%04X", c);
        else snprintf(e, sizeof e, "\\U%08X", c);
        tx__put(&o, e, strlen(e));
    }
    out[o.n] = 0;
    if (o.cut) *cut = 1;
}

static void jb_text(jbuf *b, const char *s) { jb_bytes(b, s, strlen(s)); }

static void jb_ep(jbuf *b, const uint8_t ip[16], uint16_t port)
{
    JB_LIT(b, "{\"ip\":");
    jb_ip(b, ip);
    JB_KEY(b, "port");
    jb_u64(b, port);
    JB_LIT(b, "}");
}

/* A number, or null when absent. */
static void jb_opt_u64(jbuf *b, int has, uint64_t v)
{
    if (has) jb_u64(b, v);
    else JB_LIT(b, "null");
}

static void jb_opt_i64(jbuf *b, int has, int64_t v)
{
    if (has) jb_i64(b, v);
    else JB_LIT(b, "null");
}

static void jb_dns(jbuf *b, const apprec_dns *d)
{
    JB_KEY(b, "transport");
    if (d->transport == 6) JB_LIT(b, "\"tcp\"");
    else JB_LIT(b, "\"udp\"");
    JB_KEY(b, "id"), jb_u64(b, d->id);
    JB_KEY(b, "qname"), jb_text(b, d->qname);
    JB_KEY(b, "qtype"), jb_u64(b, d->qtype);
    JB_KEY(b, "rcode"), jb_opt_u64(b, d->has_response, d->rcode);
    JB_KEY(b, "answers"), jb_u64(b, d->answers);
    JB_KEY(b, "response_ns"), jb_opt_i64(b, d->has_response, d->response_ns);
}

static void jb_tls(jbuf *b, const apprec_tls *t)
{
    JB_KEY(b, "record_version"), jb_u64(b, t->record_version);
    JB_KEY(b, "client_version"), jb_u64(b, t->client_version);
    JB_KEY(b, "version"), jb_opt_u64(b, t->has_server_hello, t->version);
    JB_KEY(b, "sni");
    if (t->has_sni) jb_text(b, t->sni);
    else JB_LIT(b, "null");
    JB_KEY(b, "alpn");
    JB_LIT(b, "[");
    for (size_t off = 0, i = 0; i < t->alpn_count && off < t->alpn_len; i++) {
        size_t n = t->alpn[off];
        if (n > (size_t)t->alpn_len - off - 1) break; /* apprec_alpn_add never packs this */
        if (i) JB_LIT(b, ",");
        jb_bytes(b, t->alpn + off + 1, n);
        off += 1 + n;
    }
    JB_LIT(b, "]");
    JB_KEY(b, "cipher"), jb_opt_u64(b, t->has_server_hello, t->cipher);
    JB_KEY(b, "hello_rtt_ns"), jb_opt_i64(b, t->has_server_hello, t->hello_rtt_ns);
}

static void jb_http(jbuf *b, const apprec_http *h)
{
    JB_KEY(b, "method"), jb_text(b, h->method);
    JB_KEY(b, "host");
    if (h->has_host) jb_text(b, h->host);
    else JB_LIT(b, "null");
    JB_KEY(b, "uri"), jb_text(b, h->uri);
    JB_KEY(b, "status"), jb_opt_u64(b, h->has_response, h->status);
    JB_KEY(b, "request_body_bytes"), jb_u64(b, h->request_body_bytes);
    JB_KEY(b, "response_body_bytes"), jb_opt_u64(b, h->has_response, h->response_body_bytes);
    JB_KEY(b, "response_ns"), jb_opt_i64(b, h->has_response, h->response_ns);
}

int apprec_json(const apprec *r, const char *node, char *buf, size_t len)
{
    jbuf b = { buf, len, 0, 0 };
    const char *kind = apprec_kind_name(r->kind);
    if (!kind) return -1;
    JB_LIT(&b, "{\"kind\":\"");
    jb_str(&b, kind);
    JB_LIT(&b, "\"");
    JB_KEY(&b, "flow_id"), jb_u64(&b, r->flow_id);
    JB_KEY(&b, "node"), jb_text(&b, node);
    JB_KEY(&b, "vni"), jb_u64(&b, r->vni);
    JB_KEY(&b, "observer"), jb_ip(&b, r->observer);
    JB_KEY(&b, "client"), jb_ep(&b, r->client_ip, r->client_port);
    JB_KEY(&b, "server"), jb_ep(&b, r->server_ip, r->server_port);
    JB_KEY(&b, "ts_ns"), jb_i64(&b, r->ts_ns);
    switch (r->kind) {
    case APPREC_DNS: jb_dns(&b, &r->u.dns); break;
    case APPREC_TLS: jb_tls(&b, &r->u.tls); break;
    case APPREC_HTTP: jb_http(&b, &r->u.http); break;
    }
    if (r->truncated) JB_KEY(&b, "truncated"), JB_LIT(&b, "true");
    JB_LIT(&b, "}");
    return b.overflow ? -1 : (int)b.used;
}
