/* pcapio.c - nanosecond pcap writing and record walking (see pcapio.h). */
#include "pcapio.h"

#include "xmalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void pcapio_file_header(uint8_t out[PCAPIO_FILE_HDR])
{
    uint32_t magic = PCAPIO_MAGIC_NS, snap = PCAPIO_SNAPLEN, link = PCAPIO_LINKTYPE_ETHERNET;
    uint16_t major = 2, minor = 4;
    uint32_t zero = 0;
    memcpy(out, &magic, 4);
    memcpy(out + 4, &major, 2);
    memcpy(out + 6, &minor, 2);
    memcpy(out + 8, &zero, 4);
    memcpy(out + 12, &zero, 4);
    memcpy(out + 16, &snap, 4);
    memcpy(out + 20, &link, 4);
}

void pcapio_rec_header(uint8_t out[PCAPIO_REC_HDR], int64_t ts_ns, uint32_t caplen,
                       uint32_t origlen)
{
    pcapio_rec_hdr h = { (uint32_t)(ts_ns / 1000000000LL), (uint32_t)(ts_ns % 1000000000LL),
                         caplen, origlen };
    memcpy(out, &h, sizeof h);
}

int pcapio_check_header(const uint8_t *buf, size_t len)
{
    uint32_t magic, link;
    if (len < PCAPIO_FILE_HDR) return -1;
    memcpy(&magic, buf, 4);
    memcpy(&link, buf + 20, 4);
    return magic == PCAPIO_MAGIC_NS && link == PCAPIO_LINKTYPE_ETHERNET ? 0 : -1;
}

long pcapio_parse_rec(const uint8_t *buf, size_t len, size_t off, int64_t *ts_ns,
                      uint32_t *caplen, uint32_t *origlen)
{
    pcapio_rec_hdr h;
    if (off + PCAPIO_REC_HDR > len) return 0;
    memcpy(&h, buf + off, sizeof h);
    if (!h.ts_sec && !h.ts_frac && !h.caplen && !h.origlen) return 0; /* zero fill */
    if (h.ts_frac >= 1000000000U || h.caplen > PCAPIO_SNAPLEN || h.caplen > h.origlen ||
        h.origlen > 0x7fffffffU)
        return -1;
    if (off + PCAPIO_REC_HDR + h.caplen > len) return 0;
    *ts_ns = (int64_t)h.ts_sec * 1000000000LL + h.ts_frac;
    *caplen = h.caplen;
    *origlen = h.origlen;
    return (long)(PCAPIO_REC_HDR + h.caplen);
}

#define PCAPOUT_BUF (1u << 20)

struct pcapout {
    int fd;
    int owns_fd;
    int err;
    uint64_t size;
    size_t used;
    uint8_t *buf;
};

static int pcapout__flush(pcapout_t *o)
{
    size_t done = 0;
    while (!o->err && done < o->used) {
        ssize_t n = write(o->fd, o->buf + done, o->used - done);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) o->err = -errno;
        else done += (size_t)n;
    }
    o->used = 0;
    return o->err;
}

pcapout_t *pcapout_open(const char *path, char *err, size_t errlen)
{
    int fd = 1, owns = 0;
    if (strcmp(path, "-") != 0) {
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0) {
            snprintf(err, errlen, "cannot create %s: %s", path, strerror(errno));
            return NULL;
        }
        owns = 1;
    }
    pcapout_t *o = xcalloc(1, sizeof *o);
    o->fd = fd;
    o->owns_fd = owns;
    o->buf = xmalloc(PCAPOUT_BUF);
    pcapio_file_header(o->buf);
    o->used = PCAPIO_FILE_HDR;
    o->size = PCAPIO_FILE_HDR;
    return o;
}

int pcapout_write(pcapout_t *o, int64_t ts_ns, uint32_t caplen, uint32_t origlen,
                  const uint8_t *data)
{
    if (o->err) return o->err;
    /* caplen <= PCAPIO_SNAPLEN (256 KiB) always fits an emptied 1 MiB buffer. */
    if (caplen > PCAPIO_SNAPLEN) return o->err = -EINVAL;
    if (o->used + PCAPIO_REC_HDR + caplen > PCAPOUT_BUF && pcapout__flush(o)) return o->err;
    pcapio_rec_header(o->buf + o->used, ts_ns, caplen, origlen);
    o->used += PCAPIO_REC_HDR;
    memcpy(o->buf + o->used, data, caplen);
    o->used += caplen;
    o->size += PCAPIO_REC_HDR + caplen;
    return 0;
}

int pcapout_flush(pcapout_t *o) { return pcapout__flush(o); }

uint64_t pcapout_size(const pcapout_t *o) { return o->size; }

int pcapout_close(pcapout_t *o)
{
    if (!o) return 0;
    pcapout__flush(o);
    int rc = o->err;
    if (o->owns_fd && close(o->fd) < 0 && !rc) rc = -errno;
    free(o->buf);
    free(o);
    return rc;
}
