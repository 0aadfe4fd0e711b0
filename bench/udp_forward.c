/*
 * udp_forward - the baseline for the broker benchmark: a bare UDP
 * receive-and-resend loop with no processing.
 *
 * recvmmsg(2) 64 datagrams into preallocated buffers, sendmmsg(2) the same
 * buffers unchanged to one connected destination, repeat. No decoding, no
 * filtering, no copying. The broker does this plus decapsulation, dedup,
 * filters and re-encapsulation; the ratio of the two is the broker's cost.
 *
 *   udp_forward --bind ADDR:PORT --to ADDR:PORT [--idle MS] [--rcvbuf BYTES]
 *
 * Exits --idle ms after the last datagram (once one arrived) and prints
 *   received=N forwarded=F send_errors=E seconds=S pps=P
 * with S from the first to the last datagram.
 */
#include "netio.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define FWD_BATCH 64
#define FWD_BUF 10240

static double fwd_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    const char *bind_to = NULL, *to = NULL;
    int idle_ms = 700;
    long long rcvbuf = 64 << 20;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--bind")) bind_to = argv[i + 1];
        else if (!strcmp(argv[i], "--to")) to = argv[i + 1];
        else if (!strcmp(argv[i], "--idle")) idle_ms = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--rcvbuf")) rcvbuf = atoll(argv[i + 1]);
    }
    struct sockaddr_storage dst;
    socklen_t dl;
    if (!bind_to || !to || netio_parse_addr(to, &dst, &dl) < 0) {
        fprintf(stderr, "usage: udp_forward --bind ADDR:PORT --to ADDR:PORT [--idle MS] [--rcvbuf BYTES]\n");
        return 2;
    }
    char err[256];
    int in = netio_udp_listen(bind_to, rcvbuf, err, sizeof err);
    int out = socket(dst.ss_family, SOCK_DGRAM, 0);
    if (in < 0 || out < 0 || connect(out, (struct sockaddr *)&dst, dl) < 0) {
        fprintf(stderr, "udp_forward: %s\n", in < 0 ? err : strerror(errno));
        return 1;
    }
    static unsigned char bufs[FWD_BATCH][FWD_BUF];
    struct mmsghdr rx[FWD_BATCH], tx[FWD_BATCH];
    struct iovec riov[FWD_BATCH], tiov[FWD_BATCH];
    unsigned long long received = 0, forwarded = 0, errors = 0;
    double first = 0, last = 0;
    for (;;) {
        for (int i = 0; i < FWD_BATCH; i++) {
            riov[i].iov_base = bufs[i];
            riov[i].iov_len = FWD_BUF;
            memset(&rx[i].msg_hdr, 0, sizeof rx[i].msg_hdr);
            rx[i].msg_hdr.msg_iov = &riov[i];
            rx[i].msg_hdr.msg_iovlen = 1;
        }
        int n = recvmmsg(in, rx, FWD_BATCH, MSG_DONTWAIT, NULL);
        if (n <= 0) {
            struct pollfd p = { in, POLLIN, 0 };
            if (poll(&p, 1, received ? idle_ms : 60000) == 0) break;
            continue;
        }
        last = fwd_now();
        if (!received) first = last;
        received += (unsigned)n;
        for (int i = 0; i < n; i++) {
            tiov[i].iov_base = bufs[i];
            tiov[i].iov_len = rx[i].msg_len;
            memset(&tx[i].msg_hdr, 0, sizeof tx[i].msg_hdr);
            tx[i].msg_hdr.msg_iov = &tiov[i];
            tx[i].msg_hdr.msg_iovlen = 1;
        }
        for (int i = 0; i < n;) {
            int r = sendmmsg(out, tx + i, (unsigned)(n - i), MSG_DONTWAIT);
            if (r > 0) {
                forwarded += (unsigned)r;
                i += r;
            } else if (r < 0 && errno == EINTR) {
                continue;
            } else {
                errors++;
                i++;
            }
        }
    }
    double s = last - first;
    printf("received=%llu forwarded=%llu send_errors=%llu seconds=%.6f pps=%.0f\n", received,
           forwarded, errors, s, s > 0 ? (double)received / s : 0.0);
    close(in);
    close(out);
    return 0;
}
