/* pcapmerge.c - merge nanosecond pcap files by time through the same merge
 * module (common/merge.c) the coordinator uses for distributed searches, so
 * bench_merge.py can set its throughput beside mergecap's on the same files.
 *
 *   pcapmerge -w OUT IN1 IN2 ...
 *
 * Input is read in 1 MiB chunks cut at record boundaries, as recorders send
 * them; output is written in 1 MiB blocks. Inputs must be nanosecond pcaps
 * in native byte order (what pcapgen --nsec and the recorder write).
 */
#include "merge.h"
#include "pcapio.h"
#include "xmalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CHUNK (1u << 20)

typedef struct input {
    int fd;
    uint8_t *carry; /* a record cut by the previous read */
    size_t ncarry;
    int eof;
} input;

static void release(void *ctx, int stream, void *owner)
{
    (void)ctx;
    (void)stream;
    free(owner);
}

/* Push the next chunk of input i: whole records only. 1 pushed, 0 at end,
 * -1 on error. */
static int feed(merge_t *m, input *in, int i)
{
    if (in->eof) return 0;
    uint8_t *buf = xmalloc(CHUNK + PCAPIO_SNAPLEN + PCAPIO_REC_HDR);
    memcpy(buf, in->carry, in->ncarry);
    size_t len = in->ncarry;
    while (len < CHUNK) {
        ssize_t n = read(in->fd, buf + len, CHUNK - len);
        if (n < 0) {
            perror("read");
            free(buf);
            return -1;
        }
        if (n == 0) {
            in->eof = 1;
            break;
        }
        len += (size_t)n;
    }
    size_t off = 0;
    for (;;) { /* the last whole record */
        uint32_t caplen;
        if (len - off < PCAPIO_REC_HDR) break;
        memcpy(&caplen, buf + off + 8, 4);
        if (len - off - PCAPIO_REC_HDR < caplen) break;
        off += PCAPIO_REC_HDR + caplen;
    }
    in->ncarry = len - off;
    memcpy(in->carry, buf + off, in->ncarry);
    if (in->eof && in->ncarry) fprintf(stderr, "pcapmerge: input %d ends inside a record\n", i);
    if (!off) {
        free(buf);
        return in->eof ? 0 : -1;
    }
    return merge_push(m, i, buf, off, buf) == 0 ? 1 : -1;
}

int main(int argc, char **argv)
{
    if (argc < 4 || strcmp(argv[1], "-w")) {
        fprintf(stderr, "usage: pcapmerge -w OUT IN1 IN2 ...\n");
        return 2;
    }
    int n = argc - 3;
    input *in = xcalloc((size_t)n, sizeof *in);
    merge_t *m = merge_new(n, release, NULL);
    for (int i = 0; i < n; i++) {
        uint8_t hdr[PCAPIO_FILE_HDR];
        in[i].fd = open(argv[3 + i], O_RDONLY);
        if (in[i].fd < 0 || read(in[i].fd, hdr, sizeof hdr) != (ssize_t)sizeof hdr ||
            pcapio_check_header(hdr, sizeof hdr) < 0) {
            fprintf(stderr, "pcapmerge: %s is not a nanosecond pcap\n", argv[3 + i]);
            return 1;
        }
        posix_fadvise(in[i].fd, 0, 0, POSIX_FADV_SEQUENTIAL);
        in[i].carry = xmalloc(PCAPIO_SNAPLEN + PCAPIO_REC_HDR);
        if (feed(m, &in[i], i) <= 0) merge_end(m, i);
    }
    int out = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (out < 0) {
        perror(argv[2]);
        return 1;
    }
    uint8_t *ob = xmalloc(CHUNK);
    size_t fill = PCAPIO_FILE_HDR;
    pcapio_file_header(ob);
    merge_pkt p;
    int w, rc;
    while ((rc = merge_next(m, &p, &w)) != -1) {
        if (rc == 0) {
            if (feed(m, &in[w], w) <= 0) merge_end(m, w);
            continue;
        }
        size_t need = PCAPIO_REC_HDR + p.caplen;
        if (fill + need > CHUNK) {
            if (write(out, ob, fill) != (ssize_t)fill) {
                perror("write");
                return 1;
            }
            fill = 0;
        }
        memcpy(ob + fill, p.rec, need);
        fill += need;
    }
    if (write(out, ob, fill) != (ssize_t)fill || close(out) < 0) {
        perror("write");
        return 1;
    }
    merge_free(m);
    for (int i = 0; i < n; i++) {
        close(in[i].fd);
        free(in[i].carry);
    }
    free(in);
    free(ob);
    return 0;
}
