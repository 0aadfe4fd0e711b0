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
 *
 * With --gso, runs of messages go out as one UDP GSO send each (UDP_SEGMENT,
 * Linux >= 4.18): the sender crosses the stack once per run instead of once
 * per datagram, so it can offer several times the plain sendmmsg rate and a
 * benchmark measures the receiver, not the sender.  The kernel needs equal
 * segments (only the last may be shorter), so frames are zero-padded to one
 * size; see usage().
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/udp.h>
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

#ifndef SOL_UDP
#define SOL_UDP 17
#endif
#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
/* Segments per GSO send: 64 since Linux 4.18, 128 in later kernels; probed. */
#define GSO_SEGS_OLD 64u
#define GSO_SEGS_NEW 128u
#define GSO_MIN_FRAME 14u /* an Ethernet header */

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
    bool gso;
    uint32_t gso_size; /* inner frame length frames are padded to; 0 = largest */
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
    uint32_t max_len; /* longest frame loaded */
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
    if (len > f->max_len)
        f->max_len = len;
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
    struct iovec *iov;    /* iov_per_msg per message */
    uint32_t *segs;       /* datagrams in message i: 1, or the length of a GSO run */
    uint32_t iov_per_msg; /* plain: header + frame; --gso: header + frame + pad per segment */
    uint32_t batch;       /* datagrams per sendmmsg call (fewer with pacing) */
    /* --gso only */
    uint32_t gso_size;    /* inner frames are zero-padded to this length */
    uint32_t gso_segs;    /* datagrams per GSO send at most */
    uint8_t *zeros;       /* gso_size zero bytes, the source of all padding */
    union {               /* one UDP_SEGMENT cmsg shared by every GSO message */
        char buf[CMSG_SPACE(sizeof(uint16_t))];
        struct cmsghdr align;
    } ctrl;
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

/* --bad-every: every Nth message is bad, alternately cut short and I flag clear. */
enum fault { FAULT_NONE, FAULT_SHORT, FAULT_NOFLAG };

static enum fault next_fault(const struct sender *s)
{
    uint64_t n = s->msg_index + 1, every = s->o->bad_every;
    if (!every || n % every != 0)
        return FAULT_NONE;
    return (n / every) % 2 == 1 ? FAULT_SHORT : FAULT_NOFLAG;
}

/*
 * Writes the next message's pieces to iov and moves on to the next frame;
 * returns the number of iovecs used (1..3).  With pad, a frame shorter than
 * gso_size is followed by zeros up to gso_size.
 */
static uint32_t put_next(struct sender *s, struct iovec *iov, bool pad)
{
    enum fault f = next_fault(s);
    size_t k = s->next_frame;
    uint32_t len = s->fr->len[k];
    uint32_t n = 1;

    s->msg_index++;
    iov[0].iov_base = f == FAULT_NOFLAG ? s->hdr_noflag : s->hdr_good;
    iov[0].iov_len = VXLAN_HDR_LEN;
    if (f == FAULT_SHORT) {
        iov[0].iov_len = 4; /* VXLAN header cut to 4 bytes, no frame */
    } else {
        iov[1].iov_base = s->fr->data + s->fr->off[k];
        iov[1].iov_len = len;
        n = 2;
        if (pad && len < s->gso_size) {
            iov[2].iov_base = s->zeros;
            iov[2].iov_len = s->gso_size - len;
            n = 3;
        }
    }
    if (++s->next_frame == s->fr->n) {
        s->next_frame = 0;
        s->loops_done++;
    }
    return n;
}

/* Plain mode: message i is one datagram. */
static uint32_t build_plain(struct sender *s, uint32_t i)
{
    struct msghdr *mh = &s->msgs[i].msg_hdr;
    memset(mh, 0, sizeof *mh);
    mh->msg_iov = &s->iov[(size_t)i * s->iov_per_msg];
    mh->msg_iovlen = put_next(s, mh->msg_iov, false);
    return s->segs[i] = 1;
}

/*
 * The next message can join a GSO run if its padded frame is exactly
 * gso_size long, or if it is cut short: the kernel allows a shorter segment,
 * but only as the last one of a send.
 */
static bool joins_run(const struct sender *s)
{
    return next_fault(s) == FAULT_SHORT || s->fr->len[s->next_frame] <= s->gso_size;
}

/*
 * --gso: message i is a run of up to `room` datagrams sent with one
 * UDP_SEGMENT send, which the kernel splits into datagrams of
 * VXLAN_HDR_LEN + gso_size bytes.  A frame longer than gso_size goes alone
 * as an ordinary datagram, unpadded, so file order is kept.
 */
static uint32_t build_gso(struct sender *s, uint32_t i, uint32_t room)
{
    struct msghdr *mh = &s->msgs[i].msg_hdr;
    memset(mh, 0, sizeof *mh);
    mh->msg_iov = &s->iov[(size_t)i * s->iov_per_msg];
    if (!joins_run(s)) {
        mh->msg_iovlen = put_next(s, mh->msg_iov, false);
        return s->segs[i] = 1;
    }
    uint32_t n = 0;
    size_t niov = 0;
    while (n < room && n < s->gso_segs && more_to_send(s) && joins_run(s)) {
        bool shorter = next_fault(s) == FAULT_SHORT;
        niov += put_next(s, mh->msg_iov + niov, true);
        n++;
        if (shorter)
            break;
    }
    mh->msg_iovlen = niov;
    if (n > 1) { /* a run of one is an ordinary datagram */
        mh->msg_control = s->ctrl.buf;
        mh->msg_controllen = sizeof s->ctrl.buf;
    }
    return s->segs[i] = n;
}

/* Fills messages until --batch messages or s->batch datagrams; returns messages. */
static uint32_t build_batch(struct sender *s)
{
    uint32_t n = 0, dgrams = 0;
    while (n < s->o->batch && dgrams < s->batch && more_to_send(s)) {
        dgrams += s->o->gso ? build_gso(s, n, s->batch - dgrams) : build_plain(s, n);
        n++;
    }
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
            if (s->o->gso)
                fprintf(stderr,
                        "vxsend: sendmmsg(%s) with UDP_SEGMENT %u, %" PRIu32
                        " datagrams in the first message: %s\n",
                        s->o->to, s->gso_size + VXLAN_HDR_LEN, s->segs[done], strerror(errno));
            else
                fprintf(stderr, "vxsend: sendmmsg(%s): %s\n", s->o->to, strerror(errno));
            return -1;
        }
        for (uint32_t i = done; i < done + (uint32_t)rc; i++) {
            s->st.bytes += msg_bytes(&s->msgs[i].msg_hdr);
            s->st.sent += s->segs[i];
        }
        done += (uint32_t)rc;
    }
    return 0;
}

static uint64_t ts_ns(const struct timespec *t)
{
    return (uint64_t)t->tv_sec * 1000000000u + (uint64_t)t->tv_nsec;
}

/*
 * Sleeps until datagram number `sent` is due: start + sent/rate.  Pacing by
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
 * Datagrams per sendmmsg call: at most `most` (--batch messages of up to
 * gso_segs datagrams each).  With pacing, capped at about 1 ms worth so
 * bursts stay short at low rates (10k pps -> 10 per call) while high rates
 * keep full batches for throughput.
 */
static uint32_t effective_batch(const struct opts *o, uint32_t most)
{
    if (o->rate == 0)
        return most;
    uint64_t per_ms = o->rate / 1000;
    if (per_ms < 1)
        per_ms = 1;
    return per_ms < most ? (uint32_t)per_ms : most;
}

/*
 * How many segments this kernel takes in one GSO send (64 or 128), or 0
 * without UDP GSO.  Found out by one GSO send of 1-byte segments between two
 * sockets of our own on 127.0.0.1, so the real receiver never sees the probe.
 */
static uint32_t probe_gso_segs(void)
{
    uint32_t segs = 0;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    int rx = socket(AF_INET, SOCK_DGRAM, 0);
    int tx = socket(AF_INET, SOCK_DGRAM, 0);
    if (rx < 0 || tx < 0) {
        fprintf(stderr, "vxsend: socket (GSO probe): %s\n", strerror(errno));
        goto out;
    }
    if (bind(rx, (struct sockaddr *)&a, sizeof a) < 0 ||
        getsockname(rx, (struct sockaddr *)&a, &alen) < 0 ||
        connect(tx, (struct sockaddr *)&a, sizeof a) < 0) {
        fprintf(stderr, "vxsend: bind/connect on 127.0.0.1 (GSO probe): %s\n", strerror(errno));
        goto out;
    }
    int one = 1;
    if (setsockopt(tx, SOL_UDP, UDP_SEGMENT, &one, sizeof one) < 0) {
        fprintf(stderr, "vxsend: setsockopt(SOL_UDP, UDP_SEGMENT): %s (--gso needs Linux >= 4.18)\n",
                strerror(errno));
        goto out;
    }
    static const uint8_t probe[GSO_SEGS_NEW];
    if (send(tx, probe, GSO_SEGS_NEW, 0) == (ssize_t)GSO_SEGS_NEW)
        segs = GSO_SEGS_NEW;
    else if (errno == EINVAL) /* more segments than UDP_MAX_SEGMENTS */
        segs = GSO_SEGS_OLD;
    else
        fprintf(stderr, "vxsend: send of %u segments with UDP_SEGMENT 1 (GSO probe): %s\n",
                GSO_SEGS_NEW, strerror(errno));
out:
    if (rx >= 0)
        close(rx);
    if (tx >= 0)
        close(tx);
    return segs;
}

/* --gso: padding size, segments per send, and what that does to the file. */
static int gso_init(struct sender *s)
{
    const struct opts *o = s->o;
    const struct frames *fr = s->fr;
    uint32_t kernel_segs = probe_gso_segs();
    if (kernel_segs == 0)
        return -1;
    s->gso_size = o->gso_size ? o->gso_size : fr->max_len;
    uint32_t dgram = s->gso_size + VXLAN_HDR_LEN;
    /* one send carries at most a maximal UDP payload */
    s->gso_segs = MAX_UDP_PAYLOAD / dgram;
    if (s->gso_segs > kernel_segs)
        s->gso_segs = kernel_segs;
    s->zeros = calloc(s->gso_size, 1);
    if (!s->zeros) {
        fprintf(stderr, "vxsend: calloc: %s\n", strerror(errno));
        return -1;
    }
    struct cmsghdr *c = &s->ctrl.align;
    c->cmsg_level = SOL_UDP;
    c->cmsg_type = UDP_SEGMENT;
    c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
    uint16_t sz = (uint16_t)dgram; /* dgram <= MAX_UDP_PAYLOAD fits */
    memcpy(CMSG_DATA(c), &sz, sizeof sz);

    size_t padded = 0, single = 0;
    for (size_t i = 0; i < fr->n; i++) {
        padded += fr->len[i] < s->gso_size;
        single += fr->len[i] > s->gso_size;
    }
    fprintf(stderr,
            "vxsend: --gso: %u-byte datagrams, up to %u per send (kernel takes %u); %zu of %zu "
            "frames zero-padded to %u bytes, %zu longer ones sent singly\n",
            dgram, s->gso_segs, kernel_segs, padded, fr->n, s->gso_size, single);
    return 0;
}

static int sender_init(struct sender *s, const struct opts *o, const struct frames *fr, int fd)
{
    memset(s, 0, sizeof *s);
    s->o = o;
    s->fr = fr;
    s->fd = fd;
    s->iov_per_msg = 2;
    uint32_t segs_per_msg = 1;
    if (o->gso) {
        if (gso_init(s) < 0)
            return -1;
        /* 3 * 128 iovecs stays below the kernel's UIO_MAXIOV of 1024 */
        s->iov_per_msg = 3 * s->gso_segs;
        segs_per_msg = s->gso_segs;
    }
    s->batch = effective_batch(o, o->batch * segs_per_msg);
    make_header(s->hdr_good, 0x08, o->vni);
    make_header(s->hdr_noflag, 0x00, o->vni);
    s->msgs = calloc(o->batch, sizeof *s->msgs);
    s->segs = calloc(o->batch, sizeof *s->segs);
    s->iov = calloc((size_t)s->iov_per_msg * o->batch, sizeof *s->iov);
    if (!s->msgs || !s->segs || !s->iov) {
        fprintf(stderr, "vxsend: calloc: %s\n", strerror(errno));
        return -1;
    }
    return 0;
}

static void sender_free(struct sender *s)
{
    free(s->msgs);
    free(s->segs);
    free(s->iov);
    free(s->zeros);
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
            "  --batch N        messages (with --gso: sends) per sendmmsg call, 1..%u\n"
            "                   (default 64)\n"
            "  --bad-every N    every Nth message is malformed, alternating: VXLAN\n"
            "                   truncated to 4 bytes (no frame), I flag clear\n"
            "  --gso            send runs of messages as one UDP GSO send each (UDP_SEGMENT,\n"
            "                   Linux >= 4.18): several times the plain rate; see below\n"
            "  --gso-size BYTES with --gso: frame length to pad to (default: the longest\n"
            "                   frame in FILE), %u..%u\n"
            "  --count          print 'sent=N bytes=B seconds=S pps=P' to stdout at the end\n"
            "                   (N = VXLAN messages, i.e. datagrams, not sends;\n"
            "                   bytes = UDP payload bytes, VXLAN headers and padding included)\n"
            "  -h, --help       this text\n"
            "\n"
            "Frames are loaded into memory before sending; file timestamps are ignored.\n"
            "\n"
            "--gso: the kernel splits a GSO send into equal datagrams, so every frame\n"
            "shorter than --gso-size is padded with zero bytes at its end up to it (an\n"
            "Ethernet trailer: the IP length fields are untouched, so the frame stays\n"
            "valid, and receivers store it padded).  Frames are never truncated: a\n"
            "longer one goes alone as an ordinary datagram, in file order.  Each\n"
            "datagram is still one VXLAN message carrying one Ethernet frame.  A send\n"
            "holds up to 128 datagrams (64 on kernels before that limit was raised),\n"
            "and at most %u bytes.  --batch counts sends per sendmmsg call; --rate\n"
            "still counts datagrams (deadlines are checked once per call).  A\n"
            "--bad-every message cut to 4 bytes ends its run (only a send's last\n"
            "segment may be shorter).  A line to stderr tells how many frames were\n"
            "padded.  The default --gso-size keeps every frame in GSO sends but, for a\n"
            "mix of sizes, pads small frames up to the largest: more bytes per packet.\n",
            MAX_BATCH, GSO_MIN_FRAME, MAX_UDP_PAYLOAD - VXLAN_HDR_LEN, MAX_UDP_PAYLOAD);
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

enum { O_TO = 256, O_FROM, O_VNI, O_RATE, O_LOOP, O_BATCH, O_BAD_EVERY, O_COUNT, O_GSO, O_GSO_SIZE };

static int parse_opt(struct opts *o, int c, const char *arg)
{
    uint64_t v;
    switch (c) {
    case O_TO: o->to = arg; return 0;
    case O_FROM: o->from = arg; return 0;
    case O_COUNT: o->count = true; return 0;
    case O_GSO: o->gso = true; return 0;
    case O_GSO_SIZE:
        if (parse_u64("--gso-size", arg, GSO_MIN_FRAME, MAX_UDP_PAYLOAD - VXLAN_HDR_LEN, &v) < 0)
            return -1;
        o->gso_size = (uint32_t)v;
        return 0;
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
        {"gso", no_argument, NULL, O_GSO},
        {"gso-size", required_argument, NULL, O_GSO_SIZE},
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
    if (o->gso_size && !o->gso) {
        fprintf(stderr, "vxsend: --gso-size needs --gso; try --help\n");
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
    sender_free(&s);
    frames_free(&fr);
    return rc == 0 ? 0 : 1;
}
