/*
 * vxsend - replay a capture file as VXLAN-over-UDP messages.
 *
 * Mirrorscope receives VPC Traffic Mirroring traffic: every mirrored frame
 * arrives as the payload of a VXLAN message on UDP port 4789.  vxsend plays
 * that role in tests and benchmarks without AWS: it reads a pcap/pcapng file
 * with libpcap, prefixes every frame with an 8-byte VXLAN header and sends it
 * with sendmmsg(2), either as fast as possible or paced to a given rate.
 *
 * All frames are loaded into memory before the first send, so the timed loop
 * only builds iovecs that point into that memory (no copies, no file I/O).
 * Optionally every Nth message is made malformed so receivers' rejection
 * paths get exercised.
 */
#ifndef _GNU_SOURCE
#endif

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pcap/pcap.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define VXLAN_HDR_LEN 8u
#define MAX_UDP_PAYLOAD 65507u /* IPv4 limit; larger frames are skipped */
#define MAX_BATCH 1024u
#define SNDBUF_BYTES (4 << 20)

/* ------------------------------------------------------------------ */
/* Options                                                              */
/* ------------------------------------------------------------------ */

struct opts {
    const char *file;
    const char *to;
    const char *from;
    uint32_t vni;
    uint64_t rate;  /* messages per second, 0 = unpaced */
    uint64_t loops; /* 0 = until interrupted */
    uint32_t batch;
    uint64_t bad_every;
    bool count;
};

/* ------------------------------------------------------------------ */
/* Frames preloaded from the capture file                               */
/* ------------------------------------------------------------------ */

struct frames {
    uint8_t *data;    /* all frames back to back */
    size_t used, cap;
    size_t *off;      /* start of frame i in data */
    uint32_t *len;    /* captured length of frame i */
    size_t n, ncap;
    uint64_t skipped; /* frames too large for one UDP datagram */
};

static int frames_grow(struct frames *f, size_t more)
{
    if (f->used + more > f->cap) {
        size_t cap = f->cap ? f->cap : (1u << 20);
        while (cap < f->used + more)
            cap *= 2;
        uint8_t *d = realloc(f->data, cap);
        if (!d)
            return -1;
        f->data = d;
        f->cap = cap;
    }
    if (f->n == f->ncap) {
        size_t ncap = f->ncap ? f->ncap * 2 : 4096;
        size_t *off = realloc(f->off, ncap * sizeof *off);
        if (!off)
            return -1;
        f->off = off;
        uint32_t *len = realloc(f->len, ncap * sizeof *len);
        if (!len)
            return -1;
        f->len = len;
        f->ncap = ncap;
    }
    return 0;
}

static int frames_add(struct frames *f, const uint8_t *p, uint32_t len)
{
    if (len > MAX_UDP_PAYLOAD - VXLAN_HDR_LEN) {
        f->skipped++;
        return 0;
    }
    if (frames_grow(f, len) < 0) {
        fprintf(stderr, "vxsend: realloc: %s\n", strerror(errno));
        return -1;
    }
    memcpy(f->data + f->used, p, len);
    f->off[f->n] = f->used;
    f->len[f->n] = len;
    f->used += len;
    f->n++;
    return 0;
}

static void frames_free(struct frames *f)
{
    free(f->data);
    free(f->off);
    free(f->len);
}

static int load_frames(const char *path, struct frames *f)
{
    char errbuf[PCAP_ERRBUF_SIZE];
    pcap_t *pc = pcap_open_offline_with_tstamp_precision(path, PCAP_TSTAMP_PRECISION_NANO, errbuf);
    if (!pc) {
        fprintf(stderr, "vxsend: pcap_open_offline_with_tstamp_precision(%s): %s\n", path, errbuf);
        return -1;
    }
    struct pcap_pkthdr *h;
    const u_char *data;
    int rc;
    while ((rc = pcap_next_ex(pc, &h, &data)) == 1) {
        if (frames_add(f, data, h->caplen) < 0) {
            pcap_close(pc);
            return -1;
        }
    }
    if (rc == PCAP_ERROR) {
        fprintf(stderr, "vxsend: pcap_next_ex(%s): %s\n", path, pcap_geterr(pc));
        pcap_close(pc);
        return -1;
    }
    pcap_close(pc);
    if (f->skipped)
        fprintf(stderr, "vxsend: skipped %" PRIu64 " frames larger than %u bytes\n", f->skipped,
                MAX_UDP_PAYLOAD - VXLAN_HDR_LEN);
    if (f->n == 0) {
        fprintf(stderr, "vxsend: %s: no frames to send\n", path);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* Socket                                                               */
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

static int resolve(const char *host, const char *port, int family, struct sockaddr_storage *ss,
                   socklen_t *len)
{
    struct addrinfo hints = {.ai_family = family, .ai_socktype = SOCK_DGRAM};
    struct addrinfo *ai;
    int rc = getaddrinfo(host, port, &hints, &ai);
    if (rc != 0) {
        fprintf(stderr, "vxsend: getaddrinfo(%s, %s): %s\n", host, port, gai_strerror(rc));
        return -1;
    }
    memcpy(ss, ai->ai_addr, ai->ai_addrlen);
    *len = ai->ai_addrlen;
    freeaddrinfo(ai);
    return 0;
}

/*
 * Connected UDP socket: the route is looked up once, and sendmmsg needs no
 * per-message address.  With --from the source address is bound first.
 */
static int open_socket(const struct opts *o)
{
    char buf[256], *host, *port;
    struct sockaddr_storage dst, src;
    socklen_t dlen, slen;

    if (split_host_port(o->to, buf, sizeof buf, &host, &port) < 0) {
        fprintf(stderr, "vxsend: --to needs HOST:PORT or [V6ADDR]:PORT, port 1..65535, not '%s'\n",
                o->to);
        return -1;
    }
    if (resolve(host, port, AF_UNSPEC, &dst, &dlen) < 0)
        return -1;
    int fd = socket(dst.ss_family, SOCK_DGRAM, 0);
    if (fd < 0) {
        fprintf(stderr, "vxsend: socket: %s\n", strerror(errno));
        return -1;
    }
    int sndbuf = SNDBUF_BYTES;
    if (setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf) < 0)
        fprintf(stderr, "vxsend: setsockopt(SO_SNDBUF): %s (continuing)\n", strerror(errno));
    if (o->from) {
        if (resolve(o->from, "0", dst.ss_family, &src, &slen) < 0)
            goto fail;
        if (bind(fd, (struct sockaddr *)&src, slen) < 0) {
            fprintf(stderr, "vxsend: bind(%s): %s\n", o->from, strerror(errno));
            goto fail;
        }
    }
    if (connect(fd, (struct sockaddr *)&dst, dlen) < 0) {
        fprintf(stderr, "vxsend: connect(%s): %s\n", o->to, strerror(errno));
        goto fail;
    }
    return fd;
fail:
    close(fd);
    return -1;
}

/* ------------------------------------------------------------------ */
/* Sending                                                              */
/* ------------------------------------------------------------------ */

/* Set by SIGINT/SIGTERM; a signal handler can only reach a global. */
static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

struct stats {
    uint64_t sent;
    uint64_t bytes;
    uint64_t refused; /* ECONNREFUSED: nobody listening (ICMP port unreachable) */
    struct timespec t0, t1;
};

struct sender {
    const struct opts *o;
    const struct frames *fr;
    int fd;
    uint8_t hdr_good[VXLAN_HDR_LEN];
    uint8_t hdr_noflag[VXLAN_HDR_LEN];
    struct mmsghdr *msgs;
    struct iovec *iov; /* two per message: VXLAN header, frame */
    uint32_t batch;    /* messages per sendmmsg call (may shrink with pacing) */
    uint64_t next_frame;
    uint64_t loops_done;
    uint64_t msg_index; /* messages built so far, for --bad-every */
    struct stats st;
};

static void make_header(uint8_t h[VXLAN_HDR_LEN], uint8_t flags, uint32_t vni)
{
    h[0] = flags;
    h[1] = h[2] = h[3] = 0;
    h[4] = (uint8_t)(vni >> 16);
    h[5] = (uint8_t)(vni >> 8);
    h[6] = (uint8_t)vni;
    h[7] = 0;
}

static bool more_to_send(const struct sender *s)
{
    return !stop_requested && (s->o->loops == 0 || s->loops_done < s->o->loops);
}

/* Fills message i with the next frame; bad ones rotate through two faults. */
static void build_msg(struct sender *s, uint32_t i)
{
    struct iovec *iov = &s->iov[2 * i];
    struct msghdr *mh = &s->msgs[i].msg_hdr;
    size_t k = s->next_frame;
    uint64_t n = ++s->msg_index;
    uint64_t bad = s->o->bad_every && n % s->o->bad_every == 0 ? n / s->o->bad_every : 0;

    memset(mh, 0, sizeof *mh);
    mh->msg_iov = iov;
    iov[0].iov_base = bad && bad % 2 == 0 ? s->hdr_noflag : s->hdr_good;
    iov[0].iov_len = VXLAN_HDR_LEN;
    iov[1].iov_base = s->fr->data + s->fr->off[k];
    iov[1].iov_len = s->fr->len[k];
    mh->msg_iovlen = 2;
    if (bad && bad % 2 == 1) {
        /* odd-numbered bad message: VXLAN header cut to 4 bytes, no frame */
        iov[0].iov_len = 4;
        mh->msg_iovlen = 1;
    }
    if (++s->next_frame == s->fr->n) {
        s->next_frame = 0;
        s->loops_done++;
    }
}

static uint32_t build_batch(struct sender *s)
{
    uint32_t n = 0;
    while (n < s->batch && more_to_send(s))
        build_msg(s, n++);
    return n;
}

static uint64_t msg_bytes(const struct msghdr *mh)
{
    uint64_t b = 0;
    for (size_t i = 0; i < mh->msg_iovlen; i++)
        b += mh->msg_iov[i].iov_len;
    return b;
}

/* Sends all n prepared messages, retrying after partial sends. */
static int send_batch(struct sender *s, uint32_t n)
{
    uint32_t done = 0;
    while (done < n) {
        int rc = sendmmsg(s->fd, s->msgs + done, n - done, 0);
        if (rc < 0) {
            if (errno == EINTR && !stop_requested)
                continue;
            if (errno == EINTR)
                return 0;
            if (errno == ECONNREFUSED) {
                /* A previous datagram drew ICMP port unreachable; not fatal,
                 * the receiver may not be up yet.  Retry the same message. */
                if (s->st.refused++ == 0)
                    fprintf(stderr, "vxsend: sendmmsg(%s): %s (continuing)\n", s->o->to,
                            strerror(errno));
                continue;
            }
            if (errno == ENOBUFS || errno == EAGAIN)
                continue;
            fprintf(stderr, "vxsend: sendmmsg(%s): %s\n", s->o->to, strerror(errno));
            return -1;
        }
        for (int i = 0; i < rc; i++)
            s->st.bytes += msg_bytes(&s->msgs[done + (uint32_t)i].msg_hdr);
        s->st.sent += (uint64_t)rc;
        done += (uint32_t)rc;
    }
    return 0;
}

static uint64_t ts_ns(const struct timespec *t)
{
    return (uint64_t)t->tv_sec * 1000000000u + (uint64_t)t->tv_nsec;
}

/*
 * Sleeps until message number `sent` is due: start + sent/rate.  Pacing by
 * absolute deadlines keeps the average exact even when single sleeps overrun.
 */
static void pace(const struct sender *s)
{
    if (s->o->rate == 0)
        return;
    uint64_t due = ts_ns(&s->st.t0) +
                   (uint64_t)((double)s->st.sent * 1e9 / (double)s->o->rate);
    struct timespec t = {.tv_sec = (time_t)(due / 1000000000u),
                         .tv_nsec = (long)(due % 1000000000u)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &t, NULL) == EINTR && !stop_requested)
        ;
}

static int run(struct sender *s)
{
    clock_gettime(CLOCK_MONOTONIC, &s->st.t0);
    while (more_to_send(s)) {
        pace(s);
        uint32_t n = build_batch(s);
        if (send_batch(s, n) < 0)
            return -1;
    }
    clock_gettime(CLOCK_MONOTONIC, &s->st.t1);
    return 0;
}

/*
 * With pacing, cap a batch at about 1 ms worth of messages so bursts stay
 * short at low rates (10k pps -> 10 per call) while high rates keep the
 * full batch for throughput.
 */
static uint32_t effective_batch(const struct opts *o)
{
    if (o->rate == 0)
        return o->batch;
    uint64_t per_ms = o->rate / 1000;
    if (per_ms < 1)
        per_ms = 1;
    return per_ms < o->batch ? (uint32_t)per_ms : o->batch;
}

static int sender_init(struct sender *s, const struct opts *o, const struct frames *fr, int fd)
{
    memset(s, 0, sizeof *s);
    s->o = o;
    s->fr = fr;
    s->fd = fd;
    s->batch = effective_batch(o);
    make_header(s->hdr_good, 0x08, o->vni);
    make_header(s->hdr_noflag, 0x00, o->vni);
    s->msgs = calloc(o->batch, sizeof *s->msgs);
    s->iov = calloc(2u * o->batch, sizeof *s->iov);
    if (!s->msgs || !s->iov) {
        fprintf(stderr, "vxsend: calloc: %s\n", strerror(errno));
        return -1;
    }
    return 0;
}

static void report(const struct sender *s)
{
    double secs = (double)(ts_ns(&s->st.t1) - ts_ns(&s->st.t0)) / 1e9;
    double pps = secs > 0 ? (double)s->st.sent / secs : 0;
    printf("sent=%" PRIu64 " bytes=%" PRIu64 " seconds=%.6f pps=%.0f\n", s->st.sent, s->st.bytes,
           secs, pps);
    fflush(stdout);
}

/* ------------------------------------------------------------------ */
/* Command line                                                         */
/* ------------------------------------------------------------------ */

static void usage(FILE *to)
{
    fprintf(to,
            "usage: vxsend [options] FILE\n"
            "Sends every frame of a pcap/pcapng FILE as a VXLAN message over UDP.\n"
            "\n"
            "  --to HOST:PORT   destination (default 127.0.0.1:4789; IPv6 as [ADDR]:PORT)\n"
            "  --from ADDR      bind this source address first (e.g. 127.0.0.2)\n"
            "  --vni N          VXLAN network identifier (default 7)\n"
            "  --rate PPS       messages per second, 0 = as fast as possible (default 0);\n"
            "                   paced by absolute deadlines, batches capped at ~1 ms\n"
            "  --loop N         send the file N times, 0 = until SIGINT (default 1)\n"
            "  --batch N        messages per sendmmsg call, 1..%u (default 64)\n"
            "  --bad-every N    every Nth message is malformed, alternating: VXLAN\n"
            "                   truncated to 4 bytes (no frame), I flag clear\n"
            "  --count          print 'sent=N bytes=B seconds=S pps=P' to stdout at the end\n"
            "                   (bytes = UDP payload bytes, VXLAN headers included)\n"
            "  -h, --help       this text\n"
            "\n"
            "Frames are loaded into memory before sending; file timestamps are ignored.\n",
            MAX_BATCH);
}

static int parse_u64(const char *name, const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-' || v < min || v > max) {
        fprintf(stderr, "vxsend: invalid value for %s: '%s' (allowed %" PRIu64 "..%" PRIu64 ")\n",
                name, s, min, max);
        return -1;
    }
    *out = v;
    return 0;
}

enum { O_TO = 256, O_FROM, O_VNI, O_RATE, O_LOOP, O_BATCH, O_BAD_EVERY, O_COUNT };

static int parse_opt(struct opts *o, int c, const char *arg)
{
    uint64_t v;
    switch (c) {
    case O_TO: o->to = arg; return 0;
    case O_FROM: o->from = arg; return 0;
    case O_COUNT: o->count = true; return 0;
    case O_RATE: return parse_u64("--rate", arg, 0, 1000000000u, &o->rate);
    case O_LOOP: return parse_u64("--loop", arg, 0, UINT64_MAX, &o->loops);
    case O_BAD_EVERY: return parse_u64("--bad-every", arg, 0, UINT64_MAX, &o->bad_every);
    case O_VNI:
        if (parse_u64("--vni", arg, 0, 0xffffffu, &v) < 0)
            return -1;
        o->vni = (uint32_t)v;
        return 0;
    case O_BATCH:
        if (parse_u64("--batch", arg, 1, MAX_BATCH, &v) < 0)
            return -1;
        o->batch = (uint32_t)v;
        return 0;
    default:
        return -1;
    }
}

/* Returns 0 to run, 1 after --help, -1 on a usage error. */
static int parse_args(int argc, char **argv, struct opts *o)
{
    static const struct option longopts[] = {
        {"to", required_argument, NULL, O_TO},
        {"from", required_argument, NULL, O_FROM},
        {"vni", required_argument, NULL, O_VNI},
        {"rate", required_argument, NULL, O_RATE},
        {"loop", required_argument, NULL, O_LOOP},
        {"batch", required_argument, NULL, O_BATCH},
        {"bad-every", required_argument, NULL, O_BAD_EVERY},
        {"count", no_argument, NULL, O_COUNT},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        if (c == 'h') {
            usage(stdout);
            return 1;
        }
        if (c == '?' || parse_opt(o, c, optarg) < 0) {
            fprintf(stderr, "vxsend: try --help\n");
            return -1;
        }
    }
    if (argc - optind != 1) {
        fprintf(stderr, "vxsend: expected exactly one capture FILE; try --help\n");
        return -1;
    }
    o->file = argv[optind];
    return 0;
}

static void install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal; /* no SA_RESTART: interrupt sleeps and sends */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

int main(int argc, char **argv)
{
    struct opts o = {.to = "127.0.0.1:4789", .vni = 7, .loops = 1, .batch = 64};
    int rc = parse_args(argc, argv, &o);
    if (rc != 0)
        return rc > 0 ? 0 : 2;

    struct frames fr;
    memset(&fr, 0, sizeof fr);
    if (load_frames(o.file, &fr) < 0)
        return 1;
    int fd = open_socket(&o);
    if (fd < 0) {
        frames_free(&fr);
        return 1;
    }
    struct sender s;
    install_signals();
    rc = sender_init(&s, &o, &fr, fd);
    if (rc == 0)
        rc = run(&s);
    if (rc == 0 && o.count)
        report(&s);
    if (s.st.refused)
        fprintf(stderr, "vxsend: %" PRIu64 " sends refused (no listener at %s?)\n", s.st.refused,
                o.to);
    close(fd);
    free(s.msgs);
    free(s.iov);
    frames_free(&fr);
    return rc == 0 ? 0 : 1;
}
