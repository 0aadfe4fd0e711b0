/* fuzz_pcap.c - capture files, read the two ways Mirrorscope reads them.
 *
 *   - Imports (`mscope-recorder --read`, `mscope-broker --read`): libpcap
 *     opens pcap or pcapng of any byte order and resolution; every packet
 *     then goes through what recorder/ingest.c does with it (decapsulate
 *     when --decap vxlan, decode, index key, analysis fields) and into a
 *     small flow table - the TCP analysis of `--read FILE --flows-json -` -
 *     whose records are printed as JSON. Both with and without --decap.
 *   - Classic pcap imports are read by pcapread (common/pcapread.h), not
 *     libpcap: whatever pcapread opens, libpcap must read the same way -
 *     the same packets, the same end, the same error text.
 *   - Our own segments (crash repair at start-up, searches of segments that
 *     have no index yet): pcapio's header and record checks walked by
 *     segidx_scan_pcap, the index built from the walk and laid out.
 * libpcap itself is not instrumented (Debian's build): this target is about
 * our code behind it. Memory is the input itself (fmemopen, a memfd).
 */
#include "decode.h"
#include "flowkey.h"
#include "flowrec.h"
#include "flowtab.h"
#include "fuzz.h"
#include "pcapio.h"
#include "pcapread.h"
#include "segindex.h"

#include <pcap/pcap.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_MAX_PACKETS 4096 /* an input of 1 MiB holds at most 64 Ki empty records */

typedef struct fuzz_import {
    uint64_t records;
    int monotonic; /* no packet so far earlier than the one before */
} fuzz_import;

static void fuzz__stat_ok(const flowrec_stat *s)
{
    if (s->count) FUZZ_CHECK(s->min >= 0 && s->min <= s->max && s->sum >= 0);
}

static void fuzz__emit(void *ctx, const flowrec *r)
{
    fuzz_import *im = ctx;
    char buf[2048];
    int n = flowrec_json(r, "fuzz", buf, sizeof buf);
    FUZZ_CHECK(n > 0 && (size_t)n < sizeof buf);
    FUZZ_CHECK(buf[0] == '{' && buf[n - 1] == '}');
    /* What the coordinator demands of a record's times (coordinator/wire.c),
     * for captures whose clock never goes back. (One that does can end a
     * flow before it began or measure a negative RTT: known, reported.) */
    if (im->monotonic) {
        FUZZ_CHECK(r->first_ns <= r->last_ns);
        fuzz__stat_ok(&r->c2s.rtt);
        fuzz__stat_ok(&r->s2c.rtt);
        fuzz__stat_ok(&r->app_response);
        if (r->hs_seen & FLOWREC_HS_IRTT) FUZZ_CHECK(r->initial_rtt_ns >= 0);
    }
    im->records++;
}

/* ingest__frame: decode, key, analysis fields, then the flow table. */
static void fuzz__frame(flowtab_t *ft, int64_t ts, const uint8_t *p, uint32_t caplen,
                        uint32_t origlen, uint32_t vni, const uint8_t *observer)
{
    if (caplen > PCAPIO_SNAPLEN) caplen = PCAPIO_SNAPLEN;
    if (origlen < caplen) origlen = caplen;
    pkt_info_t pi;
    decode_frame(p, caplen, origlen, &pi);
    flowkey_t k;
    flowkey_from_pkt(&k, &pi, vni, observer);
    volatile uint64_t h = flowkey_hash(&k);
    (void)h;
    pkt_ana a;
    uint64_t ah = flowtab_ana_from(&a, &pi, vni, observer);
    FUZZ_CHECK(ah == flowtab_hash(&a, vni, observer)); /* the receive thread's = the table's */
    flowtab_packet(ft, ts, vni, observer, &a, ah);
}

static void fuzz__import(const uint8_t *data, size_t size, int decap)
{
    if (!size) return; /* fmemopen refuses an empty buffer */
    FILE *f = fmemopen((void *)data, size, "rb");
    FUZZ_CHECK(f);
    char err[PCAP_ERRBUF_SIZE];
    pcap_t *pc = pcap_fopen_offline_with_tstamp_precision(f, PCAP_TSTAMP_PRECISION_NANO, err);
    if (!pc) {
        fclose(f);
        return;
    }
    if (pcap_datalink(pc) != DLT_EN10MB) { /* ingest_file refuses the file */
        pcap_close(pc);
        return;
    }
    fuzz_import im = { 0, 1 };
    flowtab_opts o = { .max_flows = 16, .idle_ns = 60000000000LL, .interval_ns = 10000000000LL,
                       .grace_ns = 5000000000LL, .id_base = 1 };
    flowtab_t *ft = flowtab_new(&o, fuzz__emit, &im);
    FUZZ_CHECK(ft);
    struct pcap_pkthdr *h;
    const u_char *p;
    int64_t prev = INT64_MIN;
    for (int n = 0; n < FUZZ_MAX_PACKETS && pcap_next_ex(pc, &h, &p) == 1; n++) {
        /* As ingest.c reads a time (seconds are unsigned in a pcap file).
         * A pcapng file can say any time up to 2^64 units; past 2262 the
         * nanoseconds overflow in ingest.c, and near it the flow table's
         * time arithmetic does (known, reported): such packets are left
         * out, times a pcap file can hold (up to 2106) are all tried. */
        int64_t sec = h->ts.tv_sec < 0 ? (int64_t)(uint32_t)h->ts.tv_sec : (int64_t)h->ts.tv_sec;
        if (sec > (int64_t)UINT32_MAX) continue;
        int64_t ts = sec * 1000000000LL + h->ts.tv_usec;
        if (ts < prev) im.monotonic = 0;
        prev = ts;
        if (!decap) {
            fuzz__frame(ft, ts, p, h->caplen, h->len, 0, NULL);
            continue;
        }
        uint32_t inner, vni;
        uint8_t outer[16];
        if (decode_outer_vxlan(p, h->caplen, h->len, DECODE_VXLAN_PORT, &inner, &vni, outer) == VX_OK)
            fuzz__frame(ft, ts, p + inner, h->caplen - inner, h->len - inner, vni, outer);
    }
    flowtab_flush(ft);
    flowtab_stats st;
    flowtab_get_stats(ft, &st);
    FUZZ_CHECK(st.records == im.records && st.active == 0);
    flowtab_free(ft);
    pcap_close(pc); /* closes f */
}

/* FNV-1a of n bytes. */
static uint32_t fuzz__sum(const uint8_t *p, uint32_t n)
{
    uint32_t h = 2166136261u;
    for (uint32_t i = 0; i < n; i++) h = (h ^ p[i]) * 16777619u;
    return h;
}

/* pcapread against libpcap on the same bytes: into its own buffer, or
 * (inputs of odd length) into two lent ones taken in turn as the import
 * lends its batches, each for a few packets - the packets of a buffer
 * keep their bytes until the next is lent. */
static void fuzz__pcapread(const uint8_t *data, size_t size)
{
    int errnum;
    pcapread_t *r = pcapread_open(fuzz_memfile(data, size, NULL), &errnum);
    FUZZ_CHECK(errnum == 0);
    if (!r) return;
    FILE *f = fmemopen((void *)data, size, "rb");
    FUZZ_CHECK(f);
    char perr[PCAP_ERRBUF_SIZE], rerr[256];
    pcap_t *pc = pcap_fopen_offline_with_tstamp_precision(f, PCAP_TSTAMP_PRECISION_NANO, perr);
    FUZZ_CHECK(pc && pcap_datalink(pc) == DLT_EN10MB);
    unsigned lend = size & 1 ? data[size - 1] % 8 + 1 : 0, in_buf = 0, cur = 0;
    static uint8_t *bufs[2];
    const uint8_t *first = NULL;
    uint32_t first_len = 0, first_sum = 0;
    if (lend) {
        for (int i = 0; i < 2; i++)
            if (!bufs[i]) bufs[i] = malloc(PCAPREAD_LEND_MIN);
        pcapread_lend(r, bufs[cur], PCAPREAD_LEND_MIN, lend);
    }
    for (int n = 0;; n++) {
        struct pcap_pkthdr *h;
        const u_char *p;
        int64_t ts;
        uint32_t caplen, origlen;
        const uint8_t *d;
        int prc = pcap_next_ex(pc, &h, &p);
        int rrc = 0;
        for (int again = 0; again < 2; again++) {
            if (lend && (in_buf == lend || rrc == PCAPREAD_NO_ROOM)) {
                /* the buffer's first packet is still intact */
                if (first) FUZZ_CHECK(fuzz__sum(first, first_len) == first_sum);
                FUZZ_CHECK(in_buf > 0);
                cur ^= 1;
                pcapread_lend(r, bufs[cur], PCAPREAD_LEND_MIN, lend);
                in_buf = 0;
                first = NULL;
            }
            rrc = pcapread_next(r, &ts, &caplen, &origlen, &d, rerr, sizeof rerr);
            if (rrc != PCAPREAD_NO_ROOM) break;
        }
        FUZZ_CHECK(rrc == (prc == 1 ? 1 : prc == PCAP_ERROR_BREAK ? 0 : -1));
        if (rrc < 0) FUZZ_CHECK(!strcmp(rerr, pcap_geterr(pc)));
        if (rrc != 1 || n == FUZZ_MAX_PACKETS) break;
        FUZZ_CHECK(ts == (int64_t)(uint32_t)h->ts.tv_sec * 1000000000LL + h->ts.tv_usec);
        FUZZ_CHECK(caplen == h->caplen && origlen == h->len && !memcmp(d, p, caplen));
        if (lend && !in_buf++) {
            FUZZ_CHECK(d >= bufs[cur] && d + caplen <= bufs[cur] + PCAPREAD_LEND_MIN);
            first = d;
            first_len = caplen;
            first_sum = fuzz__sum(d, caplen);
        }
    }
    pcap_close(pc); /* closes f */
    pcapread_close(r);
}

/* store.c's crash repair and search.c's index of an unsealed segment. */
static void fuzz__segment(const uint8_t *data, size_t size)
{
    int fd;
    fuzz_memfile(data, size, &fd);
    segidx_builder_t *b = segidx_builder_new();
    segidx_builder_reset(b, 1);
    uint64_t valid;
    int rc = segidx_scan_pcap(b, fd, size, &valid);
    FUZZ_CHECK(valid <= size);
    FUZZ_CHECK(rc == (size >= PCAPIO_FILE_HDR && pcapio_check_header(data, size) == 0 ? 0 : -1));
    if (rc == 0) {
        FUZZ_CHECK(valid >= PCAPIO_FILE_HDR);
        segidx_t *ix = segidx_builder_finish(b, valid);
        const segidx_hdr *hd = ix->hdr;
        FUZZ_CHECK(hd->npkts == segidx_builder_count(b));
        /* Every packet is in exactly one posting list, at an offset the
         * walk found a whole record at. */
        uint64_t posted = 0;
        for (uint64_t f = 0; f < hd->nflows; f++) {
            FUZZ_CHECK(segidx_flow_ok(ix, f));
            posted += ix->flows[f].packets;
        }
        FUZZ_CHECK(posted == hd->npkts);
        for (uint64_t i = 0; i < hd->npkts; i++) {
            int64_t ts;
            uint32_t caplen, origlen;
            FUZZ_CHECK(ix->off[i] + (uint64_t)PCAPIO_REC_HDR <= valid);
            FUZZ_CHECK(pcapio_parse_rec(data, valid, ix->off[i], &ts, &caplen, &origlen) > 0);
            FUZZ_CHECK(ts == ix->ts[i]);
        }
        segidx_free(ix);
    }
    segidx_builder_free(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    flowkey_set_seed(0); /* the same buckets every run: a finding replays as found */
    static int init;
    if (!init) {
        fuzz_quiet();
        init = 1;
    }
    fuzz__import(data, size, 0);
    fuzz__import(data, size, 1);
    fuzz__pcapread(data, size);
    fuzz__segment(data, size);
    return 0;
}
