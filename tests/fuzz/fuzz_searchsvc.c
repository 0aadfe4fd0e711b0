/* fuzz_searchsvc.c - the recorder's search service (recorder/searchsvc.c)
 * with a request as it comes off its socket.
 *
 * At start a small real store is written with the store code (store.c:
 * segments, indexes, catalog): TCP, UDP and IPv6 flows over a second of
 * 2023-11-14. The service runs unbound (searchsvc_new_unbound(): no socket,
 * no thread; the same request handler and the same rounds of work the
 * thread runs), allowing one search at a time. An input is one
 * NodeSearchRequest message: handled from a first requester, then from a
 * second (a start is then refused as busy), then the searches are driven as
 * the coordinator drives them - credit granted as chunks come, up to 256
 * rounds - and what still runs is cancelled. Every reply is decoded and
 * checked: it decodes; a search answers accepted first, then chunks in
 * sequence of at most SEARCHSVC_CHUNK bytes of pcap records whose times lie
 * in the query's range and whose count the chunk states, then one done whose
 * figures count the packets sent; a refusal says why; a wrong token gets
 * nothing but that refusal; nothing is left running.
 */
#include "decode.h"
#include "flowkey.h"
#include "fuzz.h"
#include "mirrorscope.pb-c.h"
#include "pcapio.h"
#include "searchsvc.h"
#include "store.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FUZZ_TOKEN "fuzz-search-token-0123456789"
#define FUZZ_T0 1700000000000000000LL /* the store's first packet */
#define FUZZ_ROUNDS 256

static char fuzz_dir[256];
static searchsvc_t *fuzz_svc;

/* What one requester has been told about one search. */
typedef struct fuzz_peer {
    bus_peer peer;
    int accepted, done, done_ok, refused;
    uint64_t seq, packets, done_packets;
    uint32_t credit_used;
} fuzz_peer;

static fuzz_peer fuzz_peers[2];
static const Mirrorscope__NodeSearchRequest *fuzz_rq; /* the input, decoded (or NULL) */
static int64_t fuzz_from, fuzz_to;                    /* its range */

static void fuzz__frame(uint8_t *f, size_t *len, int v6, int udp, int i)
{
    memset(f, 0, 128);
    f[12] = v6 ? 0x86 : 0x08, f[13] = v6 ? 0xDD : 0x00;
    uint8_t *ip = f + 14, *l4;
    size_t l4len = udp ? 8 + 16 : 20 + 16;
    if (v6) {
        ip[0] = 0x60;
        ip[4] = (uint8_t)(l4len >> 8), ip[5] = (uint8_t)l4len;
        ip[6] = udp ? 17 : 6, ip[7] = 64;
        ip[8] = 0x20, ip[9] = 0x01, ip[10] = 0x0d, ip[11] = 0xb8, ip[23] = 1;
        ip[24] = 0x20, ip[25] = 0x01, ip[26] = 0x0d, ip[27] = 0xb8, ip[39] = (uint8_t)(2 + i % 3);
        l4 = ip + 40;
    } else {
        ip[0] = 0x45;
        size_t tl = 20 + l4len;
        ip[2] = (uint8_t)(tl >> 8), ip[3] = (uint8_t)tl;
        ip[8] = 64, ip[9] = udp ? 17 : 6;
        ip[12] = 10, ip[13] = 0, ip[14] = 1, ip[15] = 1;
        ip[16] = 10, ip[17] = 0, ip[18] = 2, ip[19] = (uint8_t)(2 + i % 3);
        l4 = ip + 20;
    }
    uint16_t sport = (uint16_t)(40000 + i % 5), dport = udp ? 53 : 443;
    l4[0] = (uint8_t)(sport >> 8), l4[1] = (uint8_t)sport;
    l4[2] = (uint8_t)(dport >> 8), l4[3] = (uint8_t)dport;
    if (udp) {
        l4[4] = (uint8_t)(l4len >> 8), l4[5] = (uint8_t)l4len;
    } else {
        l4[12] = 0x50, l4[13] = 0x18; /* PSH ACK */
    }
    *len = (size_t)(l4 - f) + l4len;
}

static void fuzz__store(void)
{
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(fuzz_dir, sizeof fuzz_dir, "%s/fuzz_searchsvc.XXXXXX", base);
    FUZZ_CHECK(mkdtemp(fuzz_dir));
    char err[512];
    /* Small segments: a search crosses several, and the catalog prunes. */
    store_opts so = { .dir = fuzz_dir, .seg_size = 16384, .flush_ns = 1000000000LL };
    store_t *st = store_open(&so, err, sizeof err);
    FUZZ_CHECK(st);
    for (int i = 0; i < 600; i++) {
        uint8_t f[128];
        size_t len;
        fuzz__frame(f, &len, i % 7 == 0, i % 3 == 0, i);
        pkt_info_t pi;
        decode_frame(f, (uint32_t)len, (uint32_t)len, &pi);
        flowkey_t k;
        flowkey_from_pkt(&k, &pi, 0, NULL);
        FUZZ_CHECK(store_append(st, FUZZ_T0 + (int64_t)i * 1666667, f, (uint32_t)len,
                                (uint32_t)len, &k, flowkey_hash(&k)) == 0);
    }
    FUZZ_CHECK(store_flush_seal(st) == 0);
    store_close(st);
}

static void fuzz__cleanup(void)
{
    searchsvc_stop(fuzz_svc);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", fuzz_dir);
    if (system(cmd) != 0) fprintf(stderr, "fuzz_searchsvc: could not remove %s\n", fuzz_dir);
}

static fuzz_peer *fuzz__who(const bus_peer *p)
{
    for (int i = 0; i < 2; i++)
        if (p->len == fuzz_peers[i].peer.len && !memcmp(p->id, fuzz_peers[i].peer.id, p->len))
            return &fuzz_peers[i];
    return NULL;
}

/* Every reply of the service: decoded and checked as it comes. */
static int fuzz__send(void *ctx, const bus_peer *peer, const uint8_t *msg, size_t len)
{
    (void)ctx;
    fuzz_peer *fp = fuzz__who(peer);
    FUZZ_CHECK(fp);
    Mirrorscope__NodeSearchReply *r = mirrorscope__node_search_reply__unpack(NULL, len, msg);
    FUZZ_CHECK(r);
    FUZZ_CHECK(!strcmp(r->node, "rec-fuzz"));
    FUZZ_CHECK(!fp->done && !fp->refused); /* nothing after the end */
    int authed = fuzz_rq && !strcmp(fuzz_rq->token, FUZZ_TOKEN);
    switch (r->body_case) {
    case MIRRORSCOPE__NODE_SEARCH_REPLY__BODY_ACCEPTED:
        FUZZ_CHECK(authed && fuzz_rq->body_case == MIRRORSCOPE__NODE_SEARCH_REQUEST__BODY_START);
        FUZZ_CHECK(!fp->accepted && r->id == fuzz_rq->id);
        fp->accepted = 1;
        break;
    case MIRRORSCOPE__NODE_SEARCH_REPLY__BODY_CHUNK: {
        const Mirrorscope__SearchChunk *c = r->chunk;
        FUZZ_CHECK(fp->accepted && c->seq == ++fp->seq);
        FUZZ_CHECK(c->records.len <= SEARCHSVC_CHUNK);
        uint32_t n = 0;
        for (size_t off = 0; off < c->records.len; n++) {
            FUZZ_CHECK(off + PCAPIO_REC_HDR <= c->records.len);
            uint32_t h[4];
            memcpy(h, c->records.data + off, sizeof h);
            int64_t ts = (int64_t)h[0] * 1000000000LL + h[1];
            FUZZ_CHECK(h[1] < 1000000000u && h[2] <= h[3]);
            FUZZ_CHECK(ts >= fuzz_from && ts < fuzz_to);
            off += PCAPIO_REC_HDR + h[2];
            FUZZ_CHECK(off <= c->records.len);
        }
        FUZZ_CHECK(n == c->packets);
        fp->packets += n;
        fp->credit_used++;
        break;
    }
    case MIRRORSCOPE__NODE_SEARCH_REPLY__BODY_ALIVE: FUZZ_CHECK(fp->accepted); break;
    case MIRRORSCOPE__NODE_SEARCH_REPLY__BODY_DONE:
        if (!r->done->ok) FUZZ_CHECK(r->done->error && *r->done->error);
        if (!fp->accepted) { /* refused before it started */
            FUZZ_CHECK(!r->done->ok);
            fp->refused = 1;
        } else {
            fp->done = 1;
            fp->done_ok = r->done->ok;
            FUZZ_CHECK(r->done->figures);
            fp->done_packets = r->done->figures->packets;
            if (r->done->ok) FUZZ_CHECK(fp->done_packets == fp->packets);
        }
        if (!authed && fuzz_rq) FUZZ_CHECK(!strcmp(r->done->error, "missing or wrong search token"));
        break;
    default: FUZZ_CHECK(0);
    }
    mirrorscope__node_search_reply__free_unpacked(r, NULL);
    return 0;
}

/* A control message of the coordinator's for the input's search. */
static void fuzz__control(fuzz_peer *fp, int cancel)
{
    Mirrorscope__NodeSearchRequest c = MIRRORSCOPE__NODE_SEARCH_REQUEST__INIT;
    c.id = fuzz_rq->id;
    c.token = (char *)FUZZ_TOKEN;
    c.body_case = cancel ? MIRRORSCOPE__NODE_SEARCH_REQUEST__BODY_CANCEL
                         : MIRRORSCOPE__NODE_SEARCH_REQUEST__BODY_CREDIT;
    if (cancel) c.cancel = 1;
    else c.credit = 4;
    uint8_t buf[128];
    size_t n = mirrorscope__node_search_request__pack(&c, buf);
    searchsvc_handle(fuzz_svc, &fp->peer, buf, n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    flowkey_set_seed(0); /* the same buckets every run: a finding replays as found */
    if (!fuzz_svc) {
        fuzz_quiet();
        fuzz__store();
        searchsvc_opts o = { .dir = fuzz_dir, .token = FUZZ_TOKEN, .node = "rec-fuzz",
                             .max_searches = 1, .idle_ns = 60000000000LL };
        fuzz_svc = searchsvc_new_unbound(&o, fuzz__send, NULL);
        for (int i = 0; i < 2; i++) {
            fuzz_peers[i].peer.len = 4;
            memcpy(fuzz_peers[i].peer.id, i ? "peB" : "peA", 4);
        }
        atexit(fuzz__cleanup);
    }
    if (size > SEARCHSVC_REQUEST_MAX) return 0;
    Mirrorscope__NodeSearchRequest *rq = mirrorscope__node_search_request__unpack(NULL, size, data);
    fuzz_rq = rq;
    fuzz_from = INT64_MIN, fuzz_to = INT64_MAX;
    if (rq && rq->body_case == MIRRORSCOPE__NODE_SEARCH_REQUEST__BODY_START) {
        fuzz_from = rq->start->from_ns;
        fuzz_to = rq->start->to_ns ? rq->start->to_ns : INT64_MAX;
    }
    for (int i = 0; i < 2; i++) {
        bus_peer keep = fuzz_peers[i].peer;
        memset(&fuzz_peers[i], 0, sizeof fuzz_peers[i]);
        fuzz_peers[i].peer = keep;
    }
    searchsvc_handle(fuzz_svc, &fuzz_peers[0].peer, data, size);
    searchsvc_handle(fuzz_svc, &fuzz_peers[1].peer, data, size);
    /* The second requester's start is refused as busy when the first runs. */
    if (fuzz_peers[0].accepted && !fuzz_peers[0].done) FUZZ_CHECK(fuzz_peers[1].refused);
    /* Drive what runs: credit as it is used, as the coordinator's window. */
    for (int round = 0; round < FUZZ_ROUNDS; round++) {
        int more = searchsvc_round(fuzz_svc);
        for (int i = 0; i < 2; i++) {
            fuzz_peer *fp = &fuzz_peers[i];
            if (fp->accepted && !fp->done && fp->credit_used >= 4) {
                fp->credit_used -= 4;
                fuzz__control(fp, 0);
                more = 1;
            }
        }
        if (!more) break;
    }
    for (int i = 0; i < 2; i++)
        if (fuzz_peers[i].accepted && !fuzz_peers[i].done) fuzz__control(&fuzz_peers[i], 1);
    searchsvc_stats st;
    searchsvc_get_stats(fuzz_svc, &st);
    FUZZ_CHECK(st.active == 0 && st.buffered_bytes == 0);
    if (!rq) FUZZ_CHECK(fuzz_peers[0].refused && fuzz_peers[1].refused);
    if (rq) mirrorscope__node_search_request__free_unpacked(rq, NULL);
    fuzz_rq = NULL;
    return 0;
}
