/* test_pcapread.c - pcapread reads what libpcap reads: the same files, each
 * read by both (libpcap at nanosecond precision, as the ingest opens it),
 * give the same packets (time, lengths, bytes) and end the same way, with
 * libpcap's error text. Files: both resolutions, both byte orders, a
 * fraction of a second past 2^31 (libpcap reads it signed, but unsigned
 * when swapped), records
 * longer than the snapshot length, a snapshot length of 0, a record longer
 * than any snapshot, a file cut inside a header and inside a record (one
 * longer than the snapshot length too), and
 * records crossing the 4 MiB read blocks; each read into pcapread's own
 * buffer and into buffers lent by the caller (pcapread_lend). pcapng, another link type and
 * version 2.3 are not opened (libpcap reads those). */
#include "pcapread.h"

#include "test.h"

#include <errno.h>
#include <pcap/pcap.h>
#include <stdint.h>
#include <unistd.h>

static char path[] = "/tmp/test_pcapread.XXXXXX";

typedef struct out {
    uint8_t *p;
    size_t n, cap;
} out;

static void put(out *o, const void *p, size_t n)
{
    if (o->n + n > o->cap) {
        o->cap = (o->n + n) * 2;
        o->p = realloc(o->p, o->cap);
    }
    memcpy(o->p + o->n, p, n);
    o->n += n;
}

static void put32(out *o, uint32_t v, int swapped)
{
    if (swapped) v = __builtin_bswap32(v);
    put(o, &v, 4);
}

static void file_header(out *o, uint32_t magic, int swapped, uint16_t minor, uint32_t snaplen, uint32_t link)
{
    put32(o, magic, swapped);
    uint16_t v[2] = { 2, minor };
    if (swapped) {
        v[0] = __builtin_bswap16(v[0]);
        v[1] = __builtin_bswap16(v[1]);
    }
    put(o, v, 4);
    put32(o, 0, swapped);
    put32(o, 0, swapped);
    put32(o, snaplen, swapped);
    put32(o, link, swapped);
}

static uint32_t seed = 12345;
static uint32_t rnd(void)
{
    seed = seed * 1103515245u + 12345u;
    return seed >> 8;
}

/* A record of caplen bytes of pattern (origlen = caplen + extra). */
static void record(out *o, int swapped, uint32_t sec, uint32_t frac, uint32_t caplen, uint32_t extra)
{
    put32(o, sec, swapped);
    put32(o, frac, swapped);
    put32(o, caplen, swapped);
    put32(o, caplen + extra, swapped);
    for (uint32_t i = 0; i < caplen; i++) {
        uint8_t b = (uint8_t)rnd();
        put(o, &b, 1);
    }
}

static void write_file(const out *o, size_t n)
{
    FILE *f = fopen(path, "wb");
    ASSERT_TRUE(f != NULL);
    if (n) fwrite(o->p, 1, n, f);
    fclose(f);
}

/* Lent buffers (pcapread_lend), as the recorder's import lends its
 * batches: two of the smallest size taken in turn, each for at most
 * `records` packets or until a record does not fit. Every packet of a
 * buffer must still hold its bytes when the next buffer is lent, since the
 * import queues them there. With `same`, one buffer lent again each time,
 * as when the batch just handed on is done by every stage before the
 * reader takes the next (the read-ahead then moves within it). */
typedef struct lender {
    unsigned records, n, cur, same;
    uint8_t *buf[2];
    const uint8_t *data[64];
    uint32_t caplen[64];
    uint8_t *copy[64];
} lender;

static void lender_check(lender *l)
{
    for (unsigned i = 0; i < l->n && i < 64; i++) {
        ASSERT_TRUE(l->data[i] >= l->buf[l->cur] && l->data[i] + l->caplen[i] <= l->buf[l->cur] + PCAPREAD_LEND_MIN);
        ASSERT_TRUE(!memcmp(l->data[i], l->copy[i], l->caplen[i]));
        free(l->copy[i]);
    }
    l->n = 0;
}

static void lender_lend(lender *l, pcapread_t *r)
{
    lender_check(l);
    if (!l->same) l->cur ^= 1;
    pcapread_lend(r, l->buf[l->cur], PCAPREAD_LEND_MIN, l->records);
}

/* Read path with both; they must agree packet by packet and at the end.
 * lend: 0 reads into pcapread's own buffer, else into lent ones of at most
 * lend packets each. Returns the packets read, or -1 when pcapread does not
 * open the file. */
static long both_lent(const char *what, int want_error, unsigned lend, unsigned same)
{
    int errnum;
    pcapread_t *r = pcapread_open(path, &errnum);
    ASSERT_EQ(errnum, 0);
    if (!r) return -1;
    lender l = { .records = lend, .same = same };
    if (lend) {
        l.buf[0] = malloc(PCAPREAD_LEND_MIN);
        l.buf[1] = malloc(PCAPREAD_LEND_MIN);
        lender_lend(&l, r);
    }
    char perr[PCAP_ERRBUF_SIZE], rerr[256] = "";
    pcap_t *pc = pcap_open_offline_with_tstamp_precision(path, PCAP_TSTAMP_PRECISION_NANO, perr);
    ASSERT_TRUE(pc != NULL);
    if (!pc) {
        fprintf(stderr, "%s: libpcap: %s\n", what, perr);
        pcapread_close(r);
        return 0;
    }
    long n = 0;
    for (;;) {
        struct pcap_pkthdr *h;
        const u_char *d;
        int prc = pcap_next_ex(pc, &h, &d);
        int64_t ts;
        uint32_t caplen, origlen;
        const uint8_t *data;
        if (lend && l.n == lend) lender_lend(&l, r);
        int rrc = pcapread_next(r, &ts, &caplen, &origlen, &data, rerr, sizeof rerr);
        if (lend && rrc == PCAPREAD_NO_ROOM) {
            ASSERT_TRUE(l.n > 0); /* a fresh buffer holds any record */
            lender_lend(&l, r);
            rrc = pcapread_next(r, &ts, &caplen, &origlen, &data, rerr, sizeof rerr);
        }
        if (prc != 1 || rrc != 1) {
            ASSERT_EQ(rrc, prc == 1 ? 1 : prc == PCAP_ERROR_BREAK ? 0 : -1);
            if (prc == PCAP_ERROR && rrc < 0) ASSERT_STREQ(rerr, pcap_geterr(pc));
            ASSERT_EQ(prc == PCAP_ERROR, want_error);
            break;
        }
        int64_t pts = (int64_t)(uint32_t)h->ts.tv_sec * 1000000000LL + h->ts.tv_usec;
        ASSERT_EQ(ts, pts);
        ASSERT_EQ(caplen, h->caplen);
        ASSERT_EQ(origlen, h->len);
        ASSERT_TRUE(caplen == h->caplen && !memcmp(data, d, caplen));
        if (lend && l.n < 64) {
            l.data[l.n] = data;
            l.caplen[l.n] = caplen;
            l.copy[l.n] = malloc(caplen + 1);
            memcpy(l.copy[l.n], data, caplen);
        }
        l.n++;
        n++;
    }
    pcap_close(pc);
    pcapread_close(r);
    if (lend) {
        lender_check(&l);
        free(l.buf[0]);
        free(l.buf[1]);
    }
    fprintf(stderr, "  %s%s: %ld packets%s%s\n", what, lend ? " (lent buffers)" : "", n,
            *rerr ? ", then: " : "", rerr);
    return n;
}

/* The same in both ways of reading: pcapread's buffer, then lent ones of
 * a few packets each and of many (then the records that do not fit end
 * them). */
static long both(const char *what, int want_error)
{
    long n = both_lent(what, want_error, 0, 0);
    ASSERT_EQ(both_lent(what, want_error, 7, 0), n);
    ASSERT_EQ(both_lent(what, want_error, 100000, 0), n);
    ASSERT_EQ(both_lent(what, want_error, 7, 1), n);
    return n;
}

/* Both resolutions and byte orders, many records of every size up to the
 * snapshot length and beyond it (cut to it), some crossing read blocks;
 * then the same files cut inside a record and inside a header. */
static void test_files(void)
{
    static const uint32_t magics[2] = { 0xa1b2c3d4u, 0xa1b23c4du };
    for (int m = 0; m < 2; m++)
        for (int swapped = 0; swapped < 2; swapped++)
            for (int snap = 0; snap < 3; snap++) {
                uint32_t snaplen = snap == 0 ? 262144 : snap == 1 ? 1500 : 0;
                out o = { 0 };
                file_header(&o, magics[m], swapped, 4, snaplen, 1);
                size_t cut_rec = 0, cut_hdr = 0;
                long want = 0;
                /* ~9 MiB: records cross the 4 MiB blocks. */
                while (o.n < (9u << 20)) {
                    uint32_t caplen = rnd() % 100 == 0 ? 60000 + rnd() % 200000 : rnd() % 1600;
                    uint32_t frac = m ? rnd() % 1000000000u : rnd() % 1000000u;
                    if (want == 7) frac = m ? 999999999u : 999999u;
                    if (want == 11) frac = 0x80000000u + rnd(); /* damaged (see pcapread.c) */
                    uint32_t sec = want == 3 ? 0xfffffff0u : 1700000000u + (uint32_t)want; /* past 2038 */
                    if (want == 2000) cut_rec = o.n + 16 + caplen / 2;
                    if (want == 3000) cut_hdr = o.n + 7;
                    record(&o, swapped, sec, frac, caplen, want % 5);
                    want++;
                }
                char what[128];
                snprintf(what, sizeof what, "magic %08x%s, snaplen %u", magics[m], swapped ? " swapped" : "", snaplen);
                write_file(&o, o.n);
                ASSERT_EQ(both(what, 0), want);
                write_file(&o, cut_rec);
                ASSERT_EQ(both("  cut inside a record", 1), 2000);
                write_file(&o, cut_hdr);
                ASSERT_EQ(both("  cut inside a header", 1), 3000);
                free(o.p);
            }
}

/* A record longer than any snapshot: an error, as libpcap's. */
static void test_too_long(void)
{
    for (int snap = 0; snap < 2; snap++) {
        out o = { 0 };
        file_header(&o, 0xa1b23c4du, 0, 4, snap ? 1000000 : 0, 1);
        record(&o, 0, 1, 2, 100, 0);
        record(&o, 0, 1, 3, 262145, 0);
        write_file(&o, o.n);
        ASSERT_EQ(both("caplen 262145", 1), 1);
        free(o.p);
    }
}

/* A record longer than the snapshot length, cut short before the
 * snapshot length, at it, and after it (libpcap words the first apart;
 * found by fuzz_pcap). */
static void test_cut_past_snaplen(void)
{
    static const size_t avail[] = { 92, 96, 200 };
    for (int i = 0; i < 3; i++) {
        out o = { 0 };
        file_header(&o, 0xa1b23c4du, i == 1, 4, 96, 1);
        record(&o, i == 1, 1, 2, 1514, 0);
        write_file(&o, 24 + 16 + avail[i]);
        ASSERT_EQ(both("cut, caplen 1514 past snaplen 96", 1), 0);
        free(o.p);
    }
}

/* What pcapread leaves to libpcap: pcapng, another link type, version
 * 2.3, an empty file and a bare header's worth of garbage. */
static void test_not_ours(void)
{
    out o = { 0 };
    file_header(&o, 0xa1b23c4du, 0, 4, 0, 101); /* raw IP */
    write_file(&o, o.n);
    ASSERT_EQ(both("link type 101", 0), -1);
    o.n = 0;
    file_header(&o, 0xa1b2c3d4u, 0, 3, 0, 1);
    write_file(&o, o.n);
    ASSERT_EQ(both("version 2.3", 0), -1);
    o.n = 0;
    put32(&o, 0x0a0d0d0au, 0); /* a pcapng section header block's type */
    put32(&o, 28, 0);
    put32(&o, 0x1a2b3c4du, 0);
    write_file(&o, o.n);
    ASSERT_EQ(both("pcapng", 0), -1);
    write_file(&o, 0);
    ASSERT_EQ(both("empty", 0), -1);
    free(o.p);
    int errnum;
    ASSERT_TRUE(pcapread_open("/nonexistent/x.pcap", &errnum) == NULL);
    ASSERT_EQ(errnum, ENOENT);
    /* Only a header: no packets, no error. */
    o = (out){ 0 };
    file_header(&o, 0xa1b2c3d4u, 1, 4, 65535, 1);
    write_file(&o, o.n);
    ASSERT_EQ(both("header only", 0), 0);
    free(o.p);
}

/* A file that grows after it was opened (its buffer was sized to what it
 * held then): every record appended is read, the large ones too, then the
 * end without an error - the same packets as libpcap's reading of it. */
static void test_grows_after_open(void)
{
    out o = { 0 };
    file_header(&o, 0xa1b23c4du, 0, 4, 0, 1);
    record(&o, 0, 1, 2, 60, 0);
    size_t first = o.n;
    write_file(&o, first);
    int errnum;
    pcapread_t *r = pcapread_open(path, &errnum);
    ASSERT_TRUE(r != NULL);
    long want = 1;
    while (o.n < (6u << 20)) { /* past the full buffer's block */
        record(&o, 0, 2, (uint32_t)want, want % 50 == 0 ? 200000 : rnd() % 1600, 0);
        want++;
    }
    FILE *f = fopen(path, "ab");
    ASSERT_TRUE(f != NULL);
    fwrite(o.p + first, 1, o.n - first, f);
    fclose(f);
    long n = 0;
    char err[256] = "";
    int64_t ts;
    uint32_t caplen, origlen;
    const uint8_t *data;
    int rc;
    while ((rc = pcapread_next(r, &ts, &caplen, &origlen, &data, err, sizeof err)) == 1) n++;
    ASSERT_EQ(rc, 0);
    ASSERT_EQ(n, want);
    pcapread_close(r);
    ASSERT_EQ(both("grown", 0), want); /* and record by record as libpcap reads it */
    free(o.p);
}

int main(void)
{
    int fd = mkstemp(path);
    ASSERT_TRUE(fd >= 0);
    close(fd);
    RUN(test_files);
    RUN(test_too_long);
    RUN(test_cut_past_snaplen);
    RUN(test_not_ours);
    RUN(test_grows_after_open);
    unlink(path);
    TEST_EXIT();
}
