/*
 * udp_sink - the baseline receiver for Mirrorscope benchmarks.
 *
 * It does the least a UDP receiver can do: recvmmsg(2) into preallocated
 * buffers, count messages and bytes, nothing else.  Comparing Mirrorscope's
 * throughput and drop count with this sink under the same sender tells how
 * much the recorder costs on top of the kernel's own receive path, and shows
 * when drops are the machine's limit rather than the recorder's.
 *
 * Exit happens --idle milliseconds after the last message (once at least one
 * arrived) or on SIGINT/SIGTERM; it then prints
 *   received=N bytes=B drops=D seconds=S pps=P
 * where drops is the kernel's count for this socket (receive buffer overflow),
 * taken from /proc/net/udp{,6} and from the SO_RXQ_OVFL control message.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define BATCH 64u
#define BUF_SIZE 9216u
#define RCVBUF_BYTES (64 << 20)
#define CTRL_SIZE 64u /* room for one SO_RXQ_OVFL cmsg (a uint32) */

struct opts {
    const char *bind_addr;
    int idle_ms;
};

struct sink {
    int fd;
    int family;
    uint8_t *bufs; /* BATCH buffers of BUF_SIZE bytes */
    struct iovec iov[BATCH];
    struct mmsghdr msgs[BATCH];
    uint8_t ctrl[BATCH][CTRL_SIZE];
    uint64_t received;
    uint64_t bytes;
    uint32_t ovfl; /* latest SO_RXQ_OVFL value: cumulative drops */
    struct timespec first, last;
};

/* Set by SIGINT/SIGTERM; a signal handler can only reach a global. */
static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

/* ------------------------------------------------------------------ */
/* Socket setup                                                         */
/* ------------------------------------------------------------------ */

/* Splits "HOST:PORT" or "[V6]:PORT"; host/port point into buf. */
static int split_host_port(const char *s, char *buf, size_t bufsz, char **host, char **port)
{
    if (strlen(s) >= bufsz)
        return -1;
    strcpy(buf, s);
    char *colon;
    if (buf[0] == '[') {
        char *close = strchr(buf, ']');
        if (!close || close[1] != ':')
            return -1;
        *close = '\0';
        *host = buf + 1;
        colon = close + 1;
    } else {
        colon = strrchr(buf, ':');
        if (!colon)
            return -1;
        *colon = '\0';
        *host = buf;
    }
    *port = colon + 1;
    /* getaddrinfo() would silently wrap a port above 65535, so check here. */
    char *end;
    unsigned long pn = strtoul(*port, &end, 10);
    return **host && **port && !*end && pn >= 1 && pn <= 65535 ? 0 : -1;
}

/*
 * The bigger the receive buffer, the longer a burst the sink absorbs.
 * SO_RCVBUFFORCE (root/CAP_NET_ADMIN) ignores net.core.rmem_max; otherwise
 * SO_RCVBUF gets whatever rmem_max allows.
 */
static void grow_rcvbuf(int fd)
{
    int want = RCVBUF_BYTES, got = 0;
    socklen_t len = sizeof got;
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &want, sizeof want) < 0 &&
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &want, sizeof want) < 0)
        fprintf(stderr, "udp_sink: setsockopt(SO_RCVBUF): %s (continuing)\n", strerror(errno));
    if (getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &got, &len) == 0)
        fprintf(stderr, "udp_sink: receive buffer %d bytes\n", got);
}

static int open_socket(const char *bind_addr, int *family)
{
    char buf[256], *host, *port;
    if (split_host_port(bind_addr, buf, sizeof buf, &host, &port) < 0) {
        fprintf(stderr, "udp_sink: --bind needs ADDR:PORT or [V6ADDR]:PORT,"
                " port 1..65535, not '%s'\n",
                bind_addr);
        return -1;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_DGRAM,
                             .ai_flags = AI_PASSIVE};
    struct addrinfo *ai;
    int rc = getaddrinfo(host, port, &hints, &ai);
    if (rc != 0) {
        fprintf(stderr, "udp_sink: getaddrinfo(%s, %s): %s\n", host, port, gai_strerror(rc));
        return -1;
    }
    int fd = socket(ai->ai_family, SOCK_DGRAM, 0);
    if (fd < 0) {
        fprintf(stderr, "udp_sink: socket: %s\n", strerror(errno));
        freeaddrinfo(ai);
        return -1;
    }
    *family = ai->ai_family;
    grow_rcvbuf(fd);
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_RXQ_OVFL, &one, sizeof one) < 0)
        fprintf(stderr, "udp_sink: setsockopt(SO_RXQ_OVFL): %s (continuing)\n", strerror(errno));
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
        fprintf(stderr, "udp_sink: bind(%s): %s\n", bind_addr, strerror(errno));
        freeaddrinfo(ai);
        close(fd);
        return -1;
    }
    freeaddrinfo(ai);
    fprintf(stderr, "udp_sink: listening on %s\n", bind_addr);
    return fd;
}

/* ------------------------------------------------------------------ */
/* Drop accounting                                                      */
/* ------------------------------------------------------------------ */

/* Drops column of this socket's line in /proc/net/udp{,6}, matched by inode. */
static int proc_drops(const struct sink *s, uint64_t *drops)
{
    struct stat st;
    if (fstat(s->fd, &st) < 0) {
        fprintf(stderr, "udp_sink: fstat: %s\n", strerror(errno));
        return -1;
    }
    const char *path = s->family == AF_INET6 ? "/proc/net/udp6" : "/proc/net/udp";
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "udp_sink: fopen(%s): %s\n", path, strerror(errno));
        return -1;
    }
    char line[512];
    int found = -1;
    while (fgets(line, sizeof line, f)) {
        unsigned long inode;
        unsigned long long d;
        /* sl local rem st tx:rx tr:when retr uid timeout inode ref ptr drops */
        if (sscanf(line, "%*s %*s %*s %*s %*s %*s %*s %*s %*s %lu %*s %*s %llu", &inode, &d) == 2 &&
            inode == (unsigned long)st.st_ino) {
            *drops = d;
            found = 0;
            break;
        }
    }
    fclose(f);
    return found;
}

/* The kernel attaches SO_RXQ_OVFL only once drops happened; keep the latest. */
static void note_ovfl(struct sink *s, const struct msghdr *mh)
{
    for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR((struct msghdr *)mh, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SO_RXQ_OVFL) {
            uint32_t v;
            memcpy(&v, CMSG_DATA(c), sizeof v);
            if (v > s->ovfl)
                s->ovfl = v;
        }
    }
}

/* ------------------------------------------------------------------ */
/* Receiving                                                            */
/* ------------------------------------------------------------------ */

static int sink_init(struct sink *s, int fd, int family)
{
    memset(s, 0, sizeof *s);
    s->fd = fd;
    s->family = family;
    s->bufs = malloc((size_t)BATCH * BUF_SIZE);
    if (!s->bufs) {
        fprintf(stderr, "udp_sink: malloc: %s\n", strerror(errno));
        return -1;
    }
    for (unsigned i = 0; i < BATCH; i++) {
        s->iov[i].iov_base = s->bufs + (size_t)i * BUF_SIZE;
        s->iov[i].iov_len = BUF_SIZE;
        s->msgs[i].msg_hdr.msg_iov = &s->iov[i];
        s->msgs[i].msg_hdr.msg_iovlen = 1;
        s->msgs[i].msg_hdr.msg_control = s->ctrl[i];
    }
    return 0;
}

/* Reads everything queued; returns messages read, or -1 on error. */
static int drain(struct sink *s)
{
    int total = 0;
    while (!stop_requested) {
        for (unsigned i = 0; i < BATCH; i++)
            s->msgs[i].msg_hdr.msg_controllen = CTRL_SIZE; /* kernel shrinks it */
        int n = recvmmsg(s->fd, s->msgs, BATCH, MSG_DONTWAIT, NULL);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
                return total;
            fprintf(stderr, "udp_sink: recvmmsg: %s\n", strerror(errno));
            return -1;
        }
        if (s->received == 0 && n > 0)
            clock_gettime(CLOCK_MONOTONIC, &s->first);
        for (int i = 0; i < n; i++)
            s->bytes += s->msgs[i].msg_len;
        s->received += (uint64_t)n;
        note_ovfl(s, &s->msgs[n - 1].msg_hdr);
        total += n;
        clock_gettime(CLOCK_MONOTONIC, &s->last);
    }
    return total;
}

/* Waits for data; stops after idle_ms of silence once traffic was seen. */
static int run(struct sink *s, int idle_ms)
{
    struct pollfd p = {.fd = s->fd, .events = POLLIN};
    while (!stop_requested) {
        int rc = poll(&p, 1, s->received ? idle_ms : -1);
        if (rc < 0) {
            if (errno == EINTR)
                continue;
            fprintf(stderr, "udp_sink: poll: %s\n", strerror(errno));
            return -1;
        }
        if (rc == 0)
            return 0;
        if (drain(s) < 0)
            return -1;
    }
    return 0;
}

static void report(const struct sink *s)
{
    uint64_t drops = s->ovfl, pd;
    if (proc_drops(s, &pd) == 0 && pd > drops)
        drops = pd;
    double secs = (double)(s->last.tv_sec - s->first.tv_sec) +
                  (double)(s->last.tv_nsec - s->first.tv_nsec) / 1e9;
    double pps = secs > 0 ? (double)s->received / secs : 0;
    printf("received=%" PRIu64 " bytes=%" PRIu64 " drops=%" PRIu64 " seconds=%.6f pps=%.0f\n",
           s->received, s->bytes, drops, secs, pps);
    fflush(stdout);
}

/* ------------------------------------------------------------------ */
/* Command line                                                         */
/* ------------------------------------------------------------------ */

static void usage(FILE *to)
{
    fprintf(to,
            "usage: udp_sink [--bind ADDR:PORT] [--idle MS]\n"
            "Baseline UDP receiver: recvmmsg in batches of %u, counts, nothing else.\n"
            "\n"
            "  --bind ADDR:PORT  address to listen on (default 0.0.0.0:4789;\n"
            "                    IPv6 as [ADDR]:PORT)\n"
            "  --idle MS         exit after MS milliseconds without messages, once at\n"
            "                    least one arrived (default 1000)\n"
            "  -h, --help        this text\n"
            "\n"
            "Also exits on SIGINT/SIGTERM.  Prints to stdout at exit:\n"
            "  received=N bytes=B drops=D seconds=S pps=P\n"
            "bytes are UDP payload bytes; drops are the kernel's receive-buffer drops\n"
            "for this socket; seconds span first to last message.\n",
            BATCH);
}

static int parse_args(int argc, char **argv, struct opts *o)
{
    static const struct option longopts[] = {
        {"bind", required_argument, NULL, 'b'},
        {"idle", required_argument, NULL, 'i'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;
    char *end;
    long v;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 'h':
            usage(stdout);
            return 1;
        case 'b':
            o->bind_addr = optarg;
            break;
        case 'i':
            errno = 0;
            v = strtol(optarg, &end, 10);
            if (errno || end == optarg || *end || v < 1 || v > 86400000) {
                fprintf(stderr, "udp_sink: --idle needs milliseconds 1..86400000, not '%s'\n",
                        optarg);
                return -1;
            }
            o->idle_ms = (int)v;
            break;
        default:
            fprintf(stderr, "udp_sink: try --help\n");
            return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "udp_sink: unexpected argument '%s'; try --help\n", argv[optind]);
        return -1;
    }
    return 0;
}

static void install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal; /* no SA_RESTART: poll must return EINTR */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

int main(int argc, char **argv)
{
    struct opts o = {.bind_addr = "0.0.0.0:4789", .idle_ms = 1000};
    int rc = parse_args(argc, argv, &o);
    if (rc != 0)
        return rc > 0 ? 0 : 2;

    install_signals();
    int family;
    int fd = open_socket(o.bind_addr, &family);
    if (fd < 0)
        return 1;
    /* struct sink holds the batch arrays; keep it off the stack. */
    struct sink *s = malloc(sizeof *s);
    if (!s) {
        fprintf(stderr, "udp_sink: malloc: %s\n", strerror(errno));
        close(fd);
        return 1;
    }
    rc = sink_init(s, fd, family);
    if (rc == 0)
        rc = run(s, o.idle_ms);
    if (rc == 0)
        report(s);
    close(fd);
    free(s->bufs);
    free(s);
    return rc == 0 ? 0 : 1;
}
