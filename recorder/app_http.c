/* app_http.c - HTTP/1.x request/response pairs from a flow's two byte
 * streams (see app_http.h, appstream.h, docs/APP_ANALYTICS.md).
 *
 * DESIGN: each direction is a small state machine over the bytes the
 * stream layer has not seen consumed: at a message start it waits for the
 * whole header block (it is consumed only when complete, so a view always
 * starts at a message, a body or a chunk line), then counts the body as it
 * comes - a length, a chunk parser, or to the close - and never stores it.
 * The two directions meet in a FIFO of requests in flight: a request
 * enters it when its header block is read, a response is matched to the
 * oldest request without one (HTTP/1.x answers in order; a 1xx is not the
 * answer), and a pair leaves, as one record, when both its request and its
 * response are complete, so records come out in request order. The method,
 * Host and URI of the requests in flight live in one ring of
 * APP_HTTP_TEXT bytes per flow, allocated in FIFO order like the requests
 * themselves; a request that finds the FIFO full is not tracked but still
 * counted in place, so that the responses after it pair with the right
 * requests. Times follow the oracle (tests/lib/app_oracle.py): ts_ns is the
 * packet of the request's first byte; response_ns runs from the call that
 * completed the request (headers and body) to the call in which the
 * response's header block became whole - every call parses all it can, so
 * "the call in which it was found" is "the call in which it became
 * visible". After a malformed message or a gap a direction looks for the
 * next line that starts a message of its kind (a request line from the
 * client, a status line from the server) and goes on from there.
 */
#include "app_http.h"

#include <stddef.h>
#include <string.h>

/* A direction's state. */
enum {
    HS_START,      /* at a message (or the CR/LF some clients put between) */
    HS_LEN,        /* remain body bytes to count */
    HS_CHUNK_SIZE, /* a chunk-size line */
    HS_CHUNK_DATA, /* remain bytes of a chunk */
    HS_CHUNK_END,  /* the CRLF after a chunk's data */
    HS_TRAILER,    /* trailer lines up to the empty one */
    HS_CLOSE,      /* a response body that ends with the connection */
    HS_SYNC,       /* looking for the next start line */
    HS_HOLD,       /* the client after a CONNECT: waits for the answer */
    HS_TUNNEL,     /* no longer HTTP (CONNECT accepted, 101): parse says
                      APP_PARSE_DONE */
};

/* A request in flight. */
#define RQ_HEAD 0x01    /* no response body, whatever the headers say */
#define RQ_CONNECT 0x02 /* a 2xx answer turns the connection into a tunnel */
#define RQ_HOST 0x04
#define RQ_TRUNC 0x08   /* its text was cut */
#define RQ_DONE 0x10    /* headers and body read */
#define RS_HDR 0x20     /* its response's header block was read */
#define RS_DONE 0x40    /* its response is complete (or was lost) */

typedef struct http_req {
    int64_t ts_ns;     /* the packet of the request's first byte */
    int64_t done_ns;   /* the call that completed it (or its last so far) */
    int64_t resp_ns;   /* the call that completed its response's headers */
    uint64_t req_body; /* de-chunked body bytes */
    uint64_t resp_body;
    uint32_t skipped_before; /* untracked requests just before this one */
    uint16_t text_off, text_alloc; /* its bytes in the text ring, with the
                                      end of the ring it skipped */
    uint16_t method_len, host_len, uri_len;
    uint16_t status;
    uint8_t flags;
} http_req;

typedef struct http_dir {
    uint8_t st;
    uint8_t midline; /* HS_SYNC: the view starts inside a line */
    uint8_t line_ok; /* HS_START: the start line in view has been checked */
    uint8_t tracked; /* the message in progress has an entry, at slot */
    uint8_t slot;
    uint8_t in_msg;  /* a body is being read (a message in progress) */
    uint8_t partial; /* HS_START: the last view left part of a header block */
    uint32_t scan;   /* bytes of the view already searched for a line end */
    uint64_t remain;
    uint64_t body;
    int64_t last_ns; /* done_ns of this direction's latest call */
} http_dir;

/* The ring's offsets and the FIFO's indexes are narrow on purpose (the
 * state is per flow). */
_Static_assert(APP_HTTP_TEXT < 65536, "text ring offsets are 16-bit");
_Static_assert(APP_HTTP_PENDING < 256, "FIFO indexes are 8-bit");
_Static_assert(APP_HTTP_HEADER_MAX < UINT32_MAX, "scan offsets are 32-bit");

typedef struct http_state {
    http_dir d[2]; /* 0: the client's, 1: the server's */
    http_req q[APP_HTTP_PENDING];
    uint8_t head, count;
    uint8_t answered;      /* entries from head whose response is complete */
    uint32_t skipped_tail; /* untracked requests after the last entry */
    uint16_t text_tail, text_used;
    uint8_t text[APP_HTTP_TEXT];
} http_state;

/* What a header block said. */
typedef struct http_msg {
    const uint8_t *method, *uri, *host;
    size_t method_len, uri_len, host_len;
    int has_host;
    int status;
    uint64_t clen;
    int has_clen, bad_clen;
    int te; /* 0 none, 1 chunked last, 2 another coding last */
} http_msg;

/* The request methods a flow may start with: RFC 9110's, PATCH and
 * WebDAV's (RFC 4918, 3253), as tshark's HTTP heuristics know them. */
static const char *const http_methods[] = {
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
    "PROPFIND", "PROPPATCH", "MKCOL", "COPY", "MOVE", "LOCK", "UNLOCK", "SEARCH",
    "REPORT", "CHECKIN", "CHECKOUT", "UNCHECKOUT", "MERGE", "LABEL", "UPDATE",
    "VERSION-CONTROL", "MKWORKSPACE", "MKACTIVITY", "BASELINE-CONTROL", "NOTIFY",
    "SUBSCRIBE", "UNSUBSCRIBE", "POLL", "BCOPY", "BMOVE", "BDELETE", "BPROPFIND",
    "BPROPPATCH", "ACL", "MKCALENDAR", "ORDERPATCH", "BIND", "UNBIND", "REBIND",
};
#define HTTP_METHOD_LONGEST 16 /* "BASELINE-CONTROL" */

/* 1 if p[0..n) is a known method, -1 if it is the start of one, else 0. */
static int http__method(const uint8_t *p, size_t n)
{
    int partial = 0;
    for (size_t i = 0; i < sizeof http_methods / sizeof http_methods[0]; i++) {
        if (n && (uint8_t)http_methods[i][0] != p[0]) continue; /* most are out at once */
        size_t m = strlen(http_methods[i]);
        if (n <= m && memcmp(p, http_methods[i], n) == 0) {
            if (n == m) return 1;
            partial = 1;
        }
    }
    return partial ? -1 : 0;
}

/* The end of "HTTP/1.d" at p: 1 if p[0..len) holds it (at *end), -1 if
 * p[0..len) is a prefix of it, 0 if not. */
static int http__version(const uint8_t *p, size_t len, size_t *end)
{
    static const char v[] = "HTTP/1.";
    for (size_t i = 0; i < 8; i++) {
        if (i == len) return -1;
        if (i < 7 ? p[i] != (uint8_t)v[i] : (p[i] < '0' || p[i] > '9')) return 0;
    }
    *end = 8;
    return 1;
}

/* The line end at p[i]: "\n" or "\r\n". 1 (and *next past it), -1 if the
 * bytes run out first, 0 if p[i] is neither. */
static int http__eol(const uint8_t *p, size_t len, size_t i, size_t *next)
{
    if (i >= len) return -1;
    if (p[i] == '\n') {
        *next = i + 1;
        return 1;
    }
    if (p[i] != '\r') return 0;
    if (i + 1 >= len) return -1;
    if (p[i + 1] != '\n') return 0;
    *next = i + 2;
    return 1;
}

/* A request line "METHOD SP target SP HTTP/1.d CRLF" at p (LF alone is
 * taken too, as tshark does). Returns 1 with the method and target in m
 * and *line its length, CRLF included; -1 when p[0..len) is a valid
 * beginning of one; 0 when it cannot be one. */
static int http__request_line(const uint8_t *p, size_t len, http_msg *m, size_t *line)
{
    size_t i = 0;
    /* Every method in http_methods starts with a capital letter: the
     * first payload of most flows that are not HTTP is out at once. */
    if (len && (p[0] < 'A' || p[0] > 'Z')) return 0;
    while (i < len && p[i] != ' ' && i <= HTTP_METHOD_LONGEST) i++;
    if (i == len) return http__method(p, i) ? -1 : 0;
    if (p[i] != ' ' || http__method(p, i) != 1) return 0;
    size_t t = ++i;
    while (i < len && p[i] > ' ' && p[i] != 0x7f) i++;
    if (i == len) return -1;
    if (p[i] != ' ' || i == t) return 0;
    size_t v = i + 1, vend = 0, next = 0;
    int r = http__version(p + v, len - v, &vend);
    if (r <= 0) return r;
    r = http__eol(p, len, v + vend, &next);
    if (r <= 0) return r;
    m->method = p;
    m->method_len = t - 1;
    m->uri = p + t;
    m->uri_len = v - 1 - t;
    *line = next;
    return 1;
}

/* A status line "HTTP/1.d SP 3DIGIT [SP reason] CRLF" at p: returns as
 * http__request_line, the status in m. */
static int http__status_line(const uint8_t *p, size_t len, http_msg *m, size_t *line)
{
    size_t i = 0;
    int r = http__version(p, len, &i);
    if (r <= 0) return r;
    if (i == len) return -1;
    if (p[i++] != ' ') return 0;
    int status = 0;
    for (int k = 0; k < 3; k++, i++) {
        if (i == len) return -1;
        if (p[i] < '0' || p[i] > '9') return 0;
        status = status * 10 + (p[i] - '0');
    }
    if (status < 100) return 0;
    size_t next = 0;
    r = http__eol(p, len, i, &next);
    if (r == 0) {
        if (p[i] != ' ') return 0;
        /* The reason phrase: anything but a line end. */
        const uint8_t *nl = memchr(p + i, '\n', len - i);
        if (!nl) return -1;
        next = (size_t)(nl - p) + 1;
    } else if (r < 0) {
        return -1;
    }
    m->status = status;
    *line = next;
    return 1;
}

static int http__start_line(int dir, const uint8_t *p, size_t len, http_msg *m, size_t *line)
{
    return dir == 0 ? http__request_line(p, len, m, line) : http__status_line(p, len, m, line);
}

/* The end of a header block that starts at p (the byte after its empty
 * line), or 0 while it is not whole; *scan is where the next search goes
 * on from. */
static size_t http__block_end(const uint8_t *p, size_t len, uint32_t *scan)
{
    size_t i = *scan;
    while (i < len) {
        const uint8_t *nl = memchr(p + i, '\n', len - i);
        if (!nl) break;
        i = (size_t)(nl - p);
        size_t next = 0;
        int r = http__eol(p, len, i + 1, &next);
        if (r > 0) return next;
        if (r < 0) {
            *scan = (uint32_t)i;
            return 0;
        }
        i++;
    }
    *scan = (uint32_t)len;
    return 0;
}

static int http__ieq(const uint8_t *p, size_t n, const char *s)
{
    size_t k = strlen(s);
    if (n != k) return 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = p[i];
        if (c >= 'A' && c <= 'Z') c = (uint8_t)(c + 32);
        if (c != (uint8_t)s[i]) return 0;
    }
    return 1;
}

static int http__ows(uint8_t c) { return c == ' ' || c == '\t'; }

/* Content-Length's value: decimal digits only; 0 when it is not one. */
static int http__decimal(const uint8_t *p, size_t n, uint64_t *out)
{
    if (n == 0 || n > 18) return 0; /* 18 digits cannot overflow */
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9') return 0;
        v = v * 10 + (uint64_t)(p[i] - '0');
    }
    *out = v;
    return 1;
}

/* The header lines of a block (after its start line, up to its end): Host,
 * Content-Length and Transfer-Encoding into m. Lines that are not
 * "name: value" (and obsolete folded continuations) are passed over. */
static void http__headers(const uint8_t *p, size_t end, http_msg *m)
{
    size_t i = 0;
    while (i < end) {
        const uint8_t *nl = memchr(p + i, '\n', end - i);
        size_t e = nl ? (size_t)(nl - p) : end;
        size_t next = e + 1;
        if (e > i && p[e - 1] == '\r') e--;
        if (e == i) break; /* the empty line */
        const uint8_t *colon = memchr(p + i, ':', e - i);
        if (colon && !http__ows(p[i])) {
            size_t ne = (size_t)(colon - p), vs = ne + 1, ve = e;
            while (ne > i && http__ows(p[ne - 1])) ne--;
            while (vs < ve && http__ows(p[vs])) vs++;
            while (ve > vs && http__ows(p[ve - 1])) ve--;
            const uint8_t *name = p + i, *val = p + vs;
            size_t nlen = ne - i, vlen = ve - vs;
            if (http__ieq(name, nlen, "host")) {
                /* The first, as tshark's http.host, which keeps trailing
                 * white space. */
                if (!m->has_host) {
                    m->host = val;
                    m->host_len = e - vs;
                    m->has_host = 1;
                }
            } else if (http__ieq(name, nlen, "content-length")) {
                uint64_t v = 0;
                if (!http__decimal(val, vlen, &v) || (m->has_clen && v != m->clen)) m->bad_clen = 1;
                m->clen = v;
                m->has_clen = 1;
            } else if (http__ieq(name, nlen, "transfer-encoding")) {
                /* The last coding decides: chunked or not. */
                size_t s = vlen;
                while (s > 0 && val[s - 1] != ',') s--;
                size_t ts = s;
                while (ts < vlen && http__ows(val[ts])) ts++;
                m->te = http__ieq(val + ts, vlen - ts, "chunked") ? 1 : 2;
            }
        }
        i = next;
    }
}

static void http__malformed(const app_out *out)
{
    if (out && out->counts) out->counts->malformed++;
}

/* ---- the requests in flight ---------------------------------------------- */

static http_req *http__at(http_state *s, unsigned k) { return &s->q[(s->head + k) % APP_HTTP_PENDING]; }

/* Room for up to want bytes in the text ring, in one piece: returns how
 * many were granted at *off (fewer when the ring is short), and in *alloc
 * what the entry must give back (the granted bytes and the end of the ring
 * skipped to wrap). */
static size_t http__text_alloc(http_state *s, size_t want, uint16_t *off, uint16_t *alloc)
{
    if (s->text_used == 0) s->text_tail = 0;
    size_t tail = s->text_tail, used = s->text_used;
    size_t head = (tail + APP_HTTP_TEXT - used) % APP_HTTP_TEXT;
    size_t at_end, at_start;
    if (used == APP_HTTP_TEXT) {
        at_end = at_start = 0;
    } else if (tail >= head) {
        at_end = APP_HTTP_TEXT - tail;
        at_start = head;
    } else {
        at_end = head - tail;
        at_start = 0;
    }
    size_t got, skip = 0;
    if (want <= at_end || at_end >= at_start) {
        got = want < at_end ? want : at_end;
    } else {
        skip = at_end;
        got = want < at_start ? want : at_start;
        tail = 0;
    }
    *off = (uint16_t)tail;
    *alloc = (uint16_t)(skip + got);
    s->text_tail = (uint16_t)((tail + got) % APP_HTTP_TEXT);
    s->text_used = (uint16_t)(used + skip + got);
    return got;
}

/* Bytes s[0, n) as tshark shows an HTTP text field (it reads them as
 * ASCII): bytes from 0x80 as U+FFFD, the others as they are (control
 * characters too, unlike its DNS and TLS names: apprec_tshark_text).
 * NUL-terminated in out[outsz]; *cut set when it did not fit. */
static void http__text(char *out, size_t outsz, const uint8_t *s, size_t n, int *cut)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        size_t k = s[i] < 0x80 ? 1 : 3;
        if (o + k >= outsz) {
            *cut = 1;
            break;
        }
        if (k == 1) {
            out[o++] = (char)s[i];
        } else {
            memcpy(out + o, "\xef\xbf\xbd", 3);
            o += 3;
        }
    }
    out[o] = 0;
}

static void http__emit(http_state *s, const http_req *e, const app_out *out)
{
    apprec r;
    apprec_http *h = &r.u.http;
    /* Not the text arrays (5 KB), which http__text writes with their NUL
     * below: the header and the fields after them. */
    memset(&r, 0, offsetof(apprec, u));
    memset(&h->has_response, 0, sizeof *h - offsetof(apprec_http, has_response));
    r.kind = APPREC_HTTP;
    r.ts_ns = e->ts_ns;
    const uint8_t *t = s->text + e->text_off;
    int cut = (e->flags & RQ_TRUNC) != 0;
    http__text(h->method, sizeof h->method, t, e->method_len, &cut);
    http__text(h->host, sizeof h->host, t + e->method_len, e->host_len, &cut);
    http__text(h->uri, sizeof h->uri, t + e->method_len + e->host_len, e->uri_len, &cut);
    h->has_host = (e->flags & RQ_HOST) != 0;
    r.truncated = (uint8_t)cut;
    h->request_body_bytes = e->req_body;
    if (e->flags & RS_HDR) {
        h->has_response = 1;
        h->status = e->status;
        h->response_body_bytes = e->resp_body;
        h->response_ns = e->resp_ns - e->done_ns;
    }
    if (out->counts) {
        out->counts->records++;
        if (r.truncated) out->counts->dropped++;
    }
    out->emit(out->ctx, 0, &r);
}

static void http__pop(http_state *s)
{
    http_req *e = http__at(s, 0);
    s->text_used = (uint16_t)(s->text_used - e->text_alloc);
    s->head = (uint8_t)((s->head + 1) % APP_HTTP_PENDING);
    s->count--;
    if (s->answered) s->answered--;
}

/* Emits the pairs at the head of the FIFO that are complete. */
static void http__flush(http_state *s, const app_out *out)
{
    while (s->count) {
        http_req *e = http__at(s, 0);
        if ((e->flags & (RQ_DONE | RS_DONE)) != (RQ_DONE | RS_DONE)) break;
        http__emit(s, e, out);
        http__pop(s);
    }
}

/* A request whose header block was read: a new entry (or an untracked one
 * when the FIFO is full). ts_ns is its first byte's packet. */
static void http__request(http_state *s, const http_msg *m, int64_t ts_ns, const app_out *out)
{
    http_dir *d = &s->d[0];
    if (s->count == APP_HTTP_PENDING) {
        s->skipped_tail++;
        d->tracked = 0;
        if (out->counts) out->counts->dropped++;
        return;
    }
    d->slot = (uint8_t)((s->head + s->count) % APP_HTTP_PENDING);
    d->tracked = 1;
    s->count++;
    http_req *e = &s->q[d->slot];
    memset(e, 0, sizeof *e);
    e->ts_ns = e->done_ns = ts_ns;
    e->skipped_before = s->skipped_tail;
    s->skipped_tail = 0;
    /* The record's bounds first, then the ring's: method, Host, URI, each
     * cut to what is left. */
    size_t ml = m->method_len, hl = m->host_len, ul = m->uri_len;
    if (ml > APPREC_METHOD_MAX - 1) ml = APPREC_METHOD_MAX - 1, e->flags |= RQ_TRUNC;
    if (hl > APPREC_NAME_MAX - 1) hl = APPREC_NAME_MAX - 1, e->flags |= RQ_TRUNC;
    if (ul > APPREC_URI_MAX - 1) ul = APPREC_URI_MAX - 1, e->flags |= RQ_TRUNC;
    size_t got = http__text_alloc(s, ml + hl + ul, &e->text_off, &e->text_alloc);
    if (got < ml + hl + ul) e->flags |= RQ_TRUNC;
    if (ml > got) ml = got;
    if (hl > got - ml) hl = got - ml;
    if (ul > got - ml - hl) ul = got - ml - hl;
    uint8_t *t = s->text + e->text_off;
    memcpy(t, m->method, ml);
    if (hl) memcpy(t + ml, m->host, hl);
    if (ul) memcpy(t + ml + hl, m->uri, ul);
    e->method_len = (uint16_t)ml;
    e->host_len = (uint16_t)hl;
    e->uri_len = (uint16_t)ul;
    if (m->has_host) e->flags |= RQ_HOST;
    if (m->method_len == 4 && memcmp(m->method, "HEAD", 4) == 0) e->flags |= RQ_HEAD;
    if (m->method_len == 7 && memcmp(m->method, "CONNECT", 7) == 0) e->flags |= RQ_CONNECT;
}

/* The request in progress is complete (or given up) at time ns. */
static void http__request_done(http_state *s, int64_t ns)
{
    http_dir *d = &s->d[0];
    if (d->tracked) {
        http_req *e = &s->q[d->slot];
        e->flags |= RQ_DONE;
        e->done_ns = ns;
        e->req_body = d->body;
    }
    d->tracked = 0;
    d->in_msg = 0;
}

/* The request a final response answers: its entry (at d->slot, tracked),
 * or an untracked one; a response to no request is counted. */
static void http__answer(http_state *s, const app_out *out)
{
    http_dir *d = &s->d[1];
    d->tracked = 0;
    if (s->answered < s->count) {
        http_req *e = http__at(s, s->answered);
        if (e->skipped_before) {
            e->skipped_before--;
            return;
        }
        d->slot = (uint8_t)((s->head + s->answered) % APP_HTTP_PENDING);
        d->tracked = 1;
        return;
    }
    if (s->skipped_tail) {
        s->skipped_tail--;
        return;
    }
    if (out && out->counts) out->counts->unmatched++;
}

/* The response in progress is complete (or given up); with_status: its
 * header block was read. */
static void http__response_done(http_state *s, int with_status)
{
    http_dir *d = &s->d[1];
    if (d->tracked) {
        http_req *e = &s->q[d->slot];
        e->flags |= RS_DONE;
        if (!with_status) e->flags &= (uint8_t)~RS_HDR;
        e->resp_body = d->body;
        s->answered++;
    }
    d->tracked = 0;
    d->in_msg = 0;
}

/* The message in progress in direction dir is over: complete, or given up
 * (the rest of it lost, malformed or cut). Its pair goes out at the
 * http__flush() that ends the call. */
static void http__message_done(http_state *s, int dir, int64_t ns)
{
    if (dir == 0) http__request_done(s, ns);
    else http__response_done(s, 1);
}

/* ---- the state machine --------------------------------------------------- */

/* Gives the direction up to look for the next start line; midline says
 * the view it will see next starts inside a line. */
static void http__sync(http_dir *d, int midline)
{
    d->st = HS_SYNC;
    d->midline = (uint8_t)midline;
    d->scan = 0;
}

/* The connection leaves HTTP (a CONNECT accepted, 101): from here on its
 * bytes are not parsed. */
static void http__tunnel(http_state *s)
{
    if (s->d[0].in_msg) http__request_done(s, s->d[0].last_ns);
    s->d[0].st = s->d[1].st = HS_TUNNEL;
}

/* A whole header block p[0..end) at a message start: the message begins. */
static void http__block(http_state *s, int dir, const app_view *v, size_t at, const uint8_t *p,
                        size_t end, const app_out *out)
{
    http_dir *d = &s->d[dir];
    http_msg m;
    memset(&m, 0, sizeof m);
    size_t line = 0;
    if (http__start_line(dir, p, end, &m, &line) != 1) {
        http__malformed(out);
        http__sync(d, 0);
        return;
    }
    http__headers(p + line, end - line, &m);
    d->st = HS_START;
    d->body = 0;
    d->remain = 0;
    int bad = m.bad_clen;
    if (dir == 0) {
        http__request(s, &m, app_view_ts(v, at), out);
        d->in_msg = 1;
        if (m.te == 2) bad = 1; /* a request body's length cannot be known */
        if (bad) {
            http__malformed(out);
            http__request_done(s, v->done_ns);
            http__sync(d, 0);
        } else if (m.te == 1) {
            d->st = HS_CHUNK_SIZE;
        } else if (m.clen) {
            d->st = HS_LEN;
            d->remain = m.clen;
        } else {
            int connect = d->tracked && (s->q[d->slot].flags & RQ_CONNECT);
            http__request_done(s, v->done_ns);
            if (connect) d->st = HS_HOLD;
        }
        return;
    }
    if (m.status < 200) {
        /* Interim: not the answer. 101 leaves HTTP for another protocol. */
        if (m.status == 101) http__tunnel(s);
        return;
    }
    http__answer(s, out);
    int head = 0, connect = 0;
    if (d->tracked) {
        http_req *e = &s->q[d->slot];
        e->status = (uint16_t)m.status;
        e->resp_ns = v->done_ns;
        e->flags |= RS_HDR;
        head = (e->flags & RQ_HEAD) != 0;
        connect = (e->flags & RQ_CONNECT) != 0;
    }
    d->in_msg = 1;
    if (connect) {
        if (m.status < 300) {
            http__response_done(s, 1);
            http__tunnel(s);
            return;
        }
        if (s->d[0].st == HS_HOLD) s->d[0].st = HS_START;
    }
    if (head || m.status == 204 || m.status == 304) {
        http__response_done(s, 1);
    } else if (m.te == 1) {
        d->st = HS_CHUNK_SIZE;
    } else if (m.te == 2) {
        d->st = HS_CLOSE; /* another coding last: the close ends it */
    } else if (bad) {
        http__malformed(out);
        http__response_done(s, 1);
        http__sync(d, 0);
    } else if (m.has_clen) {
        if (m.clen) {
            d->st = HS_LEN;
            d->remain = m.clen;
        } else {
            http__response_done(s, 1);
        }
    } else {
        d->st = HS_CLOSE;
    }
}

/* A header block too long to wait for: malformed. Its start line still
 * makes a request in flight (so that the responses pair in order), or
 * takes the answer of one, which is recorded as lost. */
static void http__oversize(http_state *s, int dir, const app_view *v, size_t at, const uint8_t *p,
                           size_t len, const app_out *out)
{
    http_dir *d = &s->d[dir];
    http_msg m;
    memset(&m, 0, sizeof m);
    size_t line = 0;
    http__malformed(out);
    if (http__start_line(dir, p, len, &m, &line) == 1) {
        if (dir == 0) {
            http__request(s, &m, app_view_ts(v, at), out);
            if (d->tracked) s->q[d->slot].flags |= RQ_TRUNC;
            http__request_done(s, v->done_ns);
        } else if (m.status >= 200) {
            http__answer(s, out);
            http__response_done(s, 0);
        }
    }
    http__sync(d, 1);
}

/* A line end in p[0..len) from d->scan on: the index after it, or 0. */
static size_t http__line(http_dir *d, const uint8_t *p, size_t len)
{
    const uint8_t *nl = len > d->scan ? memchr(p + d->scan, '\n', len - d->scan) : NULL;
    if (!nl) {
        d->scan = (uint32_t)len;
        return 0;
    }
    return (size_t)(nl - p) + 1;
}

/* A chunk-size line p[0..n) (its line end included): the size, or -1. */
static int http__chunk_size(const uint8_t *p, size_t n, uint64_t *size)
{
    size_t i = 0;
    uint64_t v = 0;
    while (i < n) {
        uint8_t c = p[i];
        int x = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
              : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (x < 0) break;
        if (v >> 59) return -1; /* past 2^63 */
        v = v * 16 + (uint64_t)x;
        i++;
    }
    if (i == 0) return -1;
    while (i < n && http__ows(p[i])) i++;
    if (i < n && p[i] != ';' && p[i] != '\r' && p[i] != '\n') return -1;
    *size = v;
    return 0;
}

/* One step of direction dir at p[0..len) (view offset at): the bytes it
 * consumed, or -1 when it needs more bytes to go on. */
static long http__step(http_state *s, int dir, const app_view *v, size_t at, const app_out *out)
{
    http_dir *d = &s->d[dir];
    static const uint8_t none[1];
    const uint8_t *p = v->p ? v->p + at : none; /* an empty view may have no bytes at all */
    size_t len = v->len - at;
    size_t n, end;
    http_msg m;
    switch (d->st) {
    case HS_START:
        if (len == 0) return -1;
        if (p[0] == '\r' || p[0] == '\n') {
            n = 0;
            while (n < len && (p[n] == '\r' || p[n] == '\n')) n++;
            d->scan = 0;
            return (long)n;
        }
        if (!d->line_ok) {
            /* The start line is checked once whole, and its first bytes
             * before: garbage is malformed now rather than at the bound. */
            const uint8_t *nl = len > d->scan ? memchr(p + d->scan, '\n', len - d->scan) : NULL;
            size_t line = 0;
            int r = http__start_line(dir, p, nl ? len : len < 32 ? len : 32, &m, &line);
            if (r == 0 || (r < 0 && nl)) {
                http__malformed(out);
                http__sync(d, 1);
                return 0;
            }
            if (!nl) {
                d->scan = (uint32_t)len;
                if (len < APP_HTTP_HEADER_MAX) return -1;
                http__oversize(s, dir, v, at, p, len, out);
                return (long)len;
            }
            d->line_ok = 1;
            d->scan = (uint32_t)(nl - p);
        }
        end = http__block_end(p, len, &d->scan);
        if (!end) {
            if (len < APP_HTTP_HEADER_MAX) return -1;
            d->line_ok = 0;
            http__oversize(s, dir, v, at, p, len, out);
            return (long)len;
        }
        d->scan = 0;
        d->line_ok = 0;
        if (end > APP_HTTP_HEADER_MAX) {
            http__oversize(s, dir, v, at, p, end, out);
            d->midline = 0; /* the block's end is a line start */
            return (long)end;
        }
        http__block(s, dir, v, at, p, end, out);
        return (long)end;

    case HS_LEN:
    case HS_CHUNK_DATA:
        if (len == 0) return -1;
        n = len < d->remain ? len : (size_t)d->remain;
        d->remain -= n;
        d->body += n;
        if (!d->remain) {
            if (d->st == HS_CHUNK_DATA) {
                d->st = HS_CHUNK_END;
            } else {
                d->st = HS_START;
                http__message_done(s, dir, v->done_ns);
            }
        }
        return (long)n;

    case HS_CHUNK_SIZE: {
        end = http__line(d, p, len);
        if (!end) {
            if (len < APP_HTTP_HEADER_MAX) return -1;
            end = len; /* a chunk line this long is not one */
        }
        d->scan = 0;
        uint64_t size = 0;
        if (http__chunk_size(p, end, &size) < 0) {
            http__malformed(out);
            http__message_done(s, dir, v->done_ns);
            http__sync(d, p[end - 1] != '\n');
            return (long)end;
        }
        if (size) {
            d->st = HS_CHUNK_DATA;
            d->remain = size;
        } else {
            d->st = HS_TRAILER;
        }
        return (long)end;
    }

    case HS_CHUNK_END: {
        int r = http__eol(p, len, 0, &n);
        if (r < 0) return -1;
        if (r == 0) {
            http__malformed(out);
            http__message_done(s, dir, v->done_ns);
            http__sync(d, 1);
            return 0;
        }
        d->st = HS_CHUNK_SIZE;
        return (long)n;
    }

    case HS_TRAILER:
        end = http__line(d, p, len);
        if (!end) {
            if (len < APP_HTTP_HEADER_MAX) return -1;
            http__malformed(out);
            http__message_done(s, dir, v->done_ns);
            http__sync(d, 1);
            return (long)len;
        }
        d->scan = 0;
        if (end == 1 || (end == 2 && p[0] == '\r')) {
            d->st = HS_START;
            http__message_done(s, dir, v->done_ns);
        }
        return (long)end;

    case HS_CLOSE:
        if (len) {
            d->body += len;
            return (long)len;
        }
        if (!v->fin) return -1;
        d->st = HS_START;
        http__response_done(s, 1);
        return -1;

    case HS_SYNC:
        if (len == 0) return -1;
        if (!d->midline) {
            /* A candidate start line is checked whole once its end is in
             * view (its first bytes before), so that a long one arriving in
             * small pieces is not read again at every piece. */
            const uint8_t *nl = len > d->scan ? memchr(p + d->scan, '\n', len - d->scan) : NULL;
            size_t line = 0;
            int r = http__start_line(dir, p, nl ? len : len < 32 ? len : 32, &m, &line);
            if (r == 1) {
                d->st = HS_START;
                d->scan = 0;
                return 0;
            }
            if (r < 0 && !nl && len < APP_HTTP_HEADER_MAX) {
                d->scan = (uint32_t)len;
                return -1;
            }
            d->midline = 1;
        }
        end = http__line(d, p, len);
        d->scan = 0;
        if (!end) return (long)len;
        d->midline = 0;
        return (long)end;

    case HS_HOLD:
        return -1;

    case HS_TUNNEL:
        return len ? (long)len : -1;
    }
    return -1;
}

static size_t http_parse(void *state, const app_view *v, const app_out *out)
{
    http_state *s = state;
    int dir = v->dir ? 1 : 0;
    http_dir *d = &s->d[dir];
    d->last_ns = v->done_ns;
    /* Most calls of a flow that carries bodies: bytes inside a body whose
     * end is not in this view. They are only counted, as http__step's
     * HS_LEN and HS_CHUNK_DATA would, without its walk. */
    if ((d->st == HS_LEN || d->st == HS_CHUNK_DATA) && v->len < d->remain && !v->fin) {
        d->remain -= v->len;
        d->body += v->len;
        d->partial = 0;
        http__flush(s, out);
        return v->len;
    }
    size_t at = 0;
    for (;;) {
        long n = http__step(s, dir, v, at, out);
        if (n < 0) break;
        at += (size_t)n;
    }
    if (v->fin && (at < v->len || d->in_msg)) {
        /* Nothing follows: a message that waits for more is cut. */
        if (d->st != HS_SYNC && d->st != HS_TUNNEL && d->st != HS_HOLD) {
            http__malformed(out);
            if (d->in_msg) http__message_done(s, dir, v->done_ns);
        }
        http__sync(d, 1);
        at = v->len;
    }
    d->partial = d->st == HS_START && at < v->len;
    http__flush(s, out);
    /* A tunnel is not HTTP: the layer need not follow the flow further
     * (end() records what is still waiting). */
    if (s->d[0].st == HS_TUNNEL && s->d[1].st == HS_TUNNEL) return APP_PARSE_DONE;
    return at;
}

static void http_gap(void *state, int dir)
{
    http_state *s = state;
    http_dir *d = &s->d[dir ? 1 : 0];
    /* The layer counts the gap; the pairs it completes go out at the next
     * parse() or end() (gap() has no app_out). */
    if (d->st == HS_TUNNEL) return;
    if (d->in_msg) {
        /* A request or a response with its body cut short. */
        http__message_done(s, dir ? 1 : 0, d->last_ns);
    } else if (dir && d->partial) {
        /* A response's header block lost: its request has no answer. */
        http__answer(s, NULL);
        http__response_done(s, 0);
    }
    /* The bytes after the gap may start a message: look there first. */
    http__sync(d, 0);
    d->partial = 0;
}

/* The text ring is not cleared: its bytes are only read as far as a
 * request wrote them, and clearing it cost more than a flow's parsing. */
static void http_init(void *state) { memset(state, 0, offsetof(http_state, text)); }

static void http_end(void *state, const app_out *out)
{
    http_state *s = state;
    /* A body to the close ends here; any other message in progress is cut. */
    for (int dir = 1; dir >= 0; dir--) {
        http_dir *d = &s->d[dir];
        if (!d->in_msg) continue;
        if (d->st != HS_CLOSE) http__malformed(out);
        http__message_done(s, dir, d->last_ns);
    }
    /* Then every request in flight, answered or not, in order. */
    while (s->count) {
        http__emit(s, http__at(s, 0), out);
        http__pop(s);
    }
    http_init(s);
}

static int http_detect(const uint8_t *p, size_t len)
{
    http_msg m;
    size_t line = 0;
    /* Only the first APP_HTTP_DETECT_MAX bytes count, so that the answer
     * does not depend on how many more the caller had. */
    int r = http__request_line(p, len < APP_HTTP_DETECT_MAX ? len : APP_HTTP_DETECT_MAX, &m, &line);
    if (r > 0) return APP_DETECT_YES;
    if (r < 0 && len < APP_HTTP_DETECT_MAX) return APP_DETECT_MORE;
    return APP_DETECT_NO;
}

const app_parser app_http_parser = {
    .name = "http",
    .state_size = sizeof(http_state),
    .detect = http_detect,
    .init = http_init,
    .parse = http_parse,
    .gap = http_gap,
    .end = http_end,
};
