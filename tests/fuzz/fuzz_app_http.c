/* fuzz_app_http.c - the HTTP/1.x parser (recorder/app_http.c) over both
 * directions of a flow, driven as the stream layer drives it
 * (tests/unit/appdrv.h).
 *
 * Input: one options byte, then packets, each
 *     ctl, length (1 byte; 2 bytes little-endian when ctl bit 7 is set),
 *     that many bytes (fewer if the input ends)
 * ctl bit 0: the direction (0 the client's); bit 1: a gap in that
 * direction before the packet; bit 2: that direction ends (FIN) after it;
 * bits 3-6: nanoseconds since the previous packet. Options bits 0-1: the
 * piece size, less one, of the second run (below); bit 2: both directions
 * end before the flow does. tests/fuzz/mkcorpus.py writes seeds in this
 * form from captures and from hand-made exchanges.
 *
 * Besides crashes and reads out of bounds, the checks hold the parser to
 * its contract: it never consumes more than the view holds; every record is
 * an HTTP record of the client's direction with bounded, terminated text,
 * a status only with a response, and times within the packets'; records
 * come in request order (ts_ns never goes back); the counts agree with the
 * records; end() leaves a state that parses the same input the same again;
 * and the records do not depend on how a packet's bytes are split: the
 * same packets cut into pieces of 1 to 4 bytes (each piece with its
 * packet's time) give the same records and counts, as long as no bound
 * decides anything.
 */
#include "app_http.h"
#include "appdrv.h"
#include "fuzz.h"

#include <string.h>

#define FUZZ_T0 1000000000LL
#define FUZZ_BOUND 65536 /* the layer's bound in the driver */

/* What a run emitted: checked record by record, and folded into a digest
 * (FNV-1a over every field) for comparing runs without keeping them. */
typedef struct fuzz_sum {
    uint64_t h;
    int n;
    int64_t prev, t_last;
} fuzz_sum;

static void fuzz__fold(fuzz_sum *u, const void *p, size_t n)
{
    for (size_t i = 0; i < n; i++) u->h = (u->h ^ ((const uint8_t *)p)[i]) * 0x100000001b3ULL;
}

static size_t fuzz__strnlen(const char *s, size_t n)
{
    const char *z = memchr(s, 0, n);
    FUZZ_CHECK(z != NULL);
    return (size_t)(z - s);
}

static void fuzz__record(void *ctx, int client_dir, const apprec *r)
{
    static char json[APPREC_JSON_MAX];
    fuzz_sum *u = ctx;
    const apprec_http *h = &r->u.http;
    FUZZ_CHECK(client_dir == 0);
    FUZZ_CHECK(r->kind == APPREC_HTTP);
    FUZZ_CHECK(r->ts_ns >= u->prev && r->ts_ns <= u->t_last);
    u->prev = r->ts_ns;
    size_t ml = fuzz__strnlen(h->method, sizeof h->method);
    size_t ul = fuzz__strnlen(h->uri, sizeof h->uri);
    size_t hl = fuzz__strnlen(h->host, sizeof h->host);
    FUZZ_CHECK(ml > 0);
    FUZZ_CHECK(h->has_host || hl == 0);
    if (h->has_response) {
        FUZZ_CHECK(h->status >= 200 && h->status <= 999);
        int64_t span = u->t_last - FUZZ_T0;
        FUZZ_CHECK(h->response_ns >= -span && h->response_ns <= span);
    } else {
        FUZZ_CHECK(h->status == 0 && h->response_body_bytes == 0 && h->response_ns == 0);
    }
    FUZZ_CHECK(apprec_json(r, "fuzz", json, sizeof json) > 0);
    fuzz__fold(u, &r->ts_ns, sizeof r->ts_ns);
    fuzz__fold(u, &r->truncated, 1);
    fuzz__fold(u, h->method, ml + 1);
    fuzz__fold(u, h->uri, ul + 1);
    fuzz__fold(u, h->host, hl + 1);
    fuzz__fold(u, &h->has_host, 1);
    fuzz__fold(u, &h->has_response, 1);
    fuzz__fold(u, &h->status, sizeof h->status);
    fuzz__fold(u, &h->request_body_bytes, sizeof h->request_body_bytes);
    fuzz__fold(u, &h->response_body_bytes, sizeof h->response_body_bytes);
    fuzz__fold(u, &h->response_ns, sizeof h->response_ns);
    u->n++;
}

/* Runs the input through a fresh driver (state: the parser's state to
 * start from, or NULL for init's); piece 0: each packet whole. x is left
 * for the caller to free. */
static void fuzz__run(appdrv *x, fuzz_sum *u, const void *state, const uint8_t *data, size_t size,
                      size_t piece)
{
    appdrv_init(x, &app_http_parser, 0, FUZZ_BOUND);
    if (state) memcpy(x->state, state, app_http_parser.state_size);
    memset(u, 0, sizeof *u);
    u->h = 0xcbf29ce484222325ULL;
    u->prev = FUZZ_T0;
    u->t_last = FUZZ_T0 + 15 * (int64_t)size;
    x->hook = fuzz__record;
    x->hook_ctx = u;
    uint8_t opts = data[0];
    size_t i = 1;
    int64_t t = FUZZ_T0;
    while (i < size) {
        uint8_t ctl = data[i++];
        size_t n = 0;
        if (i < size) n = data[i++];
        if ((ctl & 0x80) && i < size) n |= (size_t)data[i++] << 8;
        if (n > size - i) n = size - i;
        int dir = ctl & 1;
        t += (ctl >> 3) & 15;
        if (!x->d[dir].fin) {
            if (ctl & 2) appdrv_gap(x, dir);
            if (!piece || n == 0) {
                appdrv_send(x, dir, data + i, n, t);
            } else {
                for (size_t k = 0; k < n; k += piece)
                    appdrv_send(x, dir, data + i + k, n - k < piece ? n - k : piece, t);
            }
            if (ctl & 4) appdrv_fin(x, dir, t);
        }
        i += n;
    }
    if (opts & 4) {
        for (int dir = 0; dir < 2; dir++)
            if (!x->d[dir].fin) appdrv_fin(x, dir, t);
    }
    appdrv_end(x);
    FUZZ_CHECK(x->bad_used == 0);
    FUZZ_CHECK((uint64_t)x->nrec == x->counts.records && u->n == x->nrec);
}

static int fuzz__same(const appdrv *a, const fuzz_sum *ua, const appdrv *b, const fuzz_sum *ub)
{
    return ua->h == ub->h && ua->n == ub->n && memcmp(&a->counts, &b->counts, sizeof a->counts) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int init;
    if (!init) {
        fuzz_quiet();
        init = 1;
    }
    if (size == 0) return 0;

    /* Detection of the first client packet: a decision, stable as it grows. */
    if (size > 3 && !(data[1] & 0x81)) {
        size_t n = data[2], off = 3;
        if (n > size - off) n = size - off;
        int full = app_http_parser.detect(data + off, n);
        FUZZ_CHECK(full == APP_DETECT_NO || full == APP_DETECT_YES || full == APP_DETECT_MORE);
        for (size_t k = 0; k < n; k += 1 + k / 2) {
            int part = app_http_parser.detect(data + off, k);
            if (part != APP_DETECT_MORE) FUZZ_CHECK(part == full);
        }
    }

    appdrv a, b;
    fuzz_sum ua, ub;
    fuzz__run(&a, &ua, NULL, data, size, 0);

    /* end() left a state that parses the same input the same again. */
    fuzz__run(&b, &ub, a.state, data, size, 0);
    FUZZ_CHECK(fuzz__same(&a, &ua, &b, &ub));
    appdrv_free(&b);

    /* Cut into pieces: the same, unless a bound decided something. */
    if (size < APP_HTTP_HEADER_MAX && a.layer_gaps == 0) {
        fuzz__run(&b, &ub, NULL, data, size, 1 + (data[0] & 3));
        FUZZ_CHECK(b.layer_gaps == 0);
        FUZZ_CHECK(fuzz__same(&a, &ua, &b, &ub));
        appdrv_free(&b);
    }
    appdrv_free(&a);
    return 0;
}
