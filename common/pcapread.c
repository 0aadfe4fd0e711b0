/* pcapread.c - classic pcap files read in large blocks (see pcapread.h).
 *
 * DESIGN: one buffer of 4 MiB plus the largest record; records are parsed
 * where read() put them, and a record that runs past the end of what was
 * read is moved to the front before the next read(). A regular file smaller
 * than that gets a buffer one byte larger than itself (a small import, and
 * every input of the pcap fuzz target, then maps and faults in a few pages,
 * not 4.3 MiB), grown to the full size should the file have grown and filled
 * it. A caller that lends its own buffers (the recorder's import: its
 * batches) gets its packets read straight into them, and a record that
 * does not fit in what is left of one moves to the next lent one instead.
 * The checks and their
 * order are libpcap's (sf-pcap.c, pcap_next_packet): the snapshot length
 * is the header's, or the Ethernet maximum (262144) when that is 0 or past
 * INT_MAX; a record longer than the maximum is an error; one longer than the
 * snapshot length gives its first snapshot-length bytes and the rest is
 * skipped; a file ending inside a record is an error worded as libpcap's
 * (tests/unit/test_pcapread.c reads the same files with both).
 */
#include "pcapread.h"

#include "pcapio.h"
#include "xmalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PCAPREAD_BLOCK (4u << 20)
#define PCAPREAD_CAP (PCAPREAD_BLOCK + PCAPIO_REC_HDR + PCAPIO_SNAPLEN)
#define PCAPREAD_MAGIC_US_SWAPPED 0xd4c3b2a1U
#define PCAPREAD_MAGIC_NS_SWAPPED 0x4d3cb2a1U

struct pcapread {
    int fd;
    int swapped, nano;
    uint32_t snapshot;
    uint8_t *buf;
    size_t cap, pos, end;
    size_t ask;      /* the most one read() asks for (beyond what is needed) */
    int eof;
    int lent;        /* buf is the caller's (pcapread_lend) */
    uint64_t nrec;   /* records returned */
    uint64_t nread;  /* bytes read from the file */
    uint64_t lend_nrec; /* nrec when buf was lent */
    unsigned lend_want; /* records the caller wants in it */
};

static uint32_t pcapread__u32(const pcapread_t *r, const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return r->swapped ? __builtin_bswap32(v) : v;
}

/* How much a read() into a lent buffer asks for: the records still wanted
 * in it at the average size so far, in whole pages, at least 16 KiB - so
 * that little is read past them and moved again to the next buffer. */
static size_t pcapread__lent_ask(const pcapread_t *r)
{
    uint64_t given = r->nrec - r->lend_nrec, left = given < r->lend_want ? r->lend_want - given : 1;
    uint64_t used = r->nread - (r->end - r->pos) - PCAPIO_FILE_HDR;
    uint64_t avg = r->nrec ? used / r->nrec + 1 : 2048;
    uint64_t ask = (left * avg + 4095) & ~(uint64_t)4095;
    return ask < (16u << 10) ? 16u << 10 : ask > SIZE_MAX ? SIZE_MAX : (size_t)ask;
}

/* pcapread__fill's slow path: read() until want bytes are there from pos
 * on or the file ends. Our own buffer's tail moves to its front first; a
 * lent one's stays where the packets before it point, and when want does
 * not fit behind it the answer is 1 (the caller lends another). */
static __attribute__((noinline)) int pcapread__refill(pcapread_t *r, size_t want)
{
    if (r->lent) {
        if (want > r->cap - r->pos) return 1;
    } else {
        memmove(r->buf, r->buf + r->pos, r->end - r->pos);
        r->end -= r->pos;
        r->pos = 0;
    }
    while (r->end - r->pos < want && !r->eof) {
        if (r->end == r->cap) { /* only a buffer sized to a small file fills up */
            r->cap = PCAPREAD_CAP;
            r->buf = xrealloc(r->buf, r->cap);
        }
        size_t need = want - (r->end - r->pos), ask = r->lent ? pcapread__lent_ask(r) : r->ask;
        if (ask < need) ask = need;
        if (ask > r->cap - r->end) ask = r->cap - r->end;
        ssize_t n = read(r->fd, r->buf + r->end, ask);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return -errno;
        if (n == 0) r->eof = 1;
        r->end += (size_t)n;
        r->nread += (uint64_t)n;
    }
    return 0;
}

/* At least want bytes from pos on in the buffer, unless the file ends
 * first. Returns 0, -errno when read() fails, or 1 when a lent buffer has
 * no room for them. Inline: twice a packet,
 * and all but one call in thousands find the bytes there. */
static inline int pcapread__fill(pcapread_t *r, size_t want)
{
    return r->end - r->pos >= want ? 0 : pcapread__refill(r, want);
}

pcapread_t *pcapread_open(const char *path, int *errnum)
{
    *errnum = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        *errnum = errno;
        return NULL;
    }
    pcapread_t *r = xcalloc(1, sizeof *r);
    r->fd = fd;
    r->cap = PCAPREAD_CAP;
    struct stat st;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size >= 0 &&
        (uint64_t)st.st_size < r->cap)
        r->cap = (size_t)st.st_size + 1; /* room left after the last byte: read() then says EOF */
    r->buf = xmalloc(r->cap);
    /* The first read is short: whatever it reads past the header moves
     * to the first buffer lent, which may be smaller than ours. */
    r->ask = 64u << 10;
    int rc = pcapread__fill(r, PCAPIO_FILE_HDR);
    r->ask = SIZE_MAX;
    if (rc < 0) {
        *errnum = -rc;
        goto not_ours;
    }
    if (r->end < PCAPIO_FILE_HDR) goto not_ours;
    uint32_t magic;
    memcpy(&magic, r->buf, 4);
    r->nano = magic == PCAPIO_MAGIC_NS || magic == PCAPREAD_MAGIC_NS_SWAPPED;
    r->swapped = magic == PCAPREAD_MAGIC_US_SWAPPED || magic == PCAPREAD_MAGIC_NS_SWAPPED;
    if (!r->nano && !r->swapped && magic != PCAPIO_MAGIC_US) goto not_ours;
    uint16_t major, minor;
    memcpy(&major, r->buf + 4, 2);
    memcpy(&minor, r->buf + 6, 2);
    if (r->swapped) {
        major = __builtin_bswap16(major);
        minor = __builtin_bswap16(minor);
    }
    /* Other versions (2.3 swapped its lengths) and link types (or FCS
     * bits in the link type) are libpcap's to read. */
    if (major != 2 || minor != 4 || pcapread__u32(r, r->buf + 20) != PCAPIO_LINKTYPE_ETHERNET) goto not_ours;
    /* libpcap's pcap_adjust_snapshot: only 0 and lengths past INT_MAX are
     * replaced; a larger one stays, and then cuts nothing. */
    r->snapshot = pcapread__u32(r, r->buf + 16);
    if (!r->snapshot || r->snapshot > INT32_MAX) r->snapshot = PCAPIO_SNAPLEN;
    r->pos = PCAPIO_FILE_HDR;
    return r;
not_ours:
    pcapread_close(r);
    return NULL;
}

int pcapread_next(pcapread_t *r, int64_t *ts_ns, uint32_t *caplen, uint32_t *origlen,
                  const uint8_t **data, char *err, size_t errlen)
{
    int rc = pcapread__fill(r, PCAPIO_REC_HDR);
    if (rc) goto fill_failed;
    size_t have = r->end - r->pos;
    if (have < PCAPIO_REC_HDR) {
        if (!have) return 0;
        snprintf(err, errlen, "truncated dump file; tried to read %u header bytes, only got %zu",
                 PCAPIO_REC_HDR, have);
        return -1;
    }
    const uint8_t *h = r->buf + r->pos;
    uint32_t sec = pcapread__u32(r, h), frac = pcapread__u32(r, h + 4);
    uint32_t cap = pcapread__u32(r, h + 8), len = pcapread__u32(r, h + 12);
    if (cap > PCAPIO_SNAPLEN) {
        if (cap > r->snapshot)
            snprintf(err, errlen, "invalid packet capture length %u, bigger than snaplen of %u", cap,
                     r->snapshot);
        else
            snprintf(err, errlen, "invalid packet capture length %u, bigger than maximum of %u", cap,
                     PCAPIO_SNAPLEN);
        return -1;
    }
    rc = pcapread__fill(r, PCAPIO_REC_HDR + (size_t)cap);
    if (rc) goto fill_failed;
    have = r->end - r->pos;
    if (have < PCAPIO_REC_HDR + (size_t)cap) {
        /* libpcap reads a record longer than the snapshot length in two
         * steps, the snapshot length first: cut inside that, it says so. */
        size_t got = have - PCAPIO_REC_HDR;
        uint32_t tried = cap > r->snapshot && got < r->snapshot ? r->snapshot : cap;
        snprintf(err, errlen, "truncated dump file; tried to read %u captured bytes, only got %zu", tried,
                 got);
        return -1;
    }
    /* Seconds are unsigned in the file (good until 2106; the ingest reads
     * libpcap's signed ones so too). A fraction of 2^31 or more (damaged)
     * is what libpcap makes of it: signed in a file of our byte order,
     * unsigned in a swapped one (its byte swap yields an unsigned value). */
    int64_t f = r->swapped ? (int64_t)frac : (int64_t)(int32_t)frac;
    *ts_ns = (int64_t)sec * 1000000000LL + (r->nano ? f : f * 1000);
    *caplen = cap > r->snapshot ? r->snapshot : cap;
    *origlen = len;
    *data = r->buf + r->pos + PCAPIO_REC_HDR;
    r->pos += PCAPIO_REC_HDR + (size_t)cap;
    r->nrec++;
    return 1;
fill_failed:
    if (rc > 0) return PCAPREAD_NO_ROOM;
    snprintf(err, errlen, "error reading dump file: %s", strerror(-rc));
    return -1;
}

void pcapread_lend(pcapread_t *r, uint8_t *buf, size_t cap, unsigned records)
{
    size_t tail = r->end - r->pos;
    /* Ours holds at most its short first read past the header, a lent one
     * at most a record and what was read behind it for this one. */
    if (cap < PCAPREAD_LEND_MIN || tail > cap) abort();
    /* buf may be the buffer lent last time, given back and lent again (an
     * import's batch done by every stage before the reader took one). */
    memmove(buf, r->buf + r->pos, tail);
    if (!r->lent) free(r->buf);
    r->buf = buf;
    r->cap = cap;
    r->pos = 0;
    r->end = tail;
    r->lent = 1;
    r->lend_nrec = r->nrec;
    r->lend_want = records ? records : 1;
}

void pcapread_close(pcapread_t *r)
{
    if (!r) return;
    close(r->fd);
    if (!r->lent) free(r->buf);
    free(r);
}
