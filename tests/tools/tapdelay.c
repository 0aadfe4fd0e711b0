/*
 * tapdelay - a userspace "wire" between two TAP devices, with delay, jitter,
 * reordering, loss and an optional rate limit.
 *
 * The test kernel has no netem qdisc, yet the TCP analytics tests need real
 * Linux TCP over a path with a round-trip time, lost frames and frames that
 * arrive out of order.  tapdelay is that path: it creates two TAP devices
 * (IFF_TAP | IFF_NO_PI), optionally each inside a named network namespace
 * (/run/netns/NAME, as `ip netns add` makes them), reads every Ethernet frame
 * the kernel sends out of one and writes it into the other after the
 * configured one-way delay.  The kernels on both sides stay untouched: the
 * TCP being measured is the real one.
 *
 * DESIGN
 *   One thread, one ppoll(2) loop over the two TAP descriptors with a timeout
 *   equal to the next departure.  Each direction owns a fixed pool of frame
 *   slots (--limit, preallocated; memory is bounded) and a binary min-heap of
 *   (departure time, arrival sequence), so equal departure times keep
 *   arrival order and only the frames picked for extra delay overtake.
 *   Per frame:   loss?  -> dropped (seeded PRNG, one stream per direction)
 *                rate   -> departs when the "link" is free (serialisation)
 *                delay + uniform jitter, + --reorder-gap for --reorder % of
 *                frames (these arrive after frames sent later).
 *   A full pool tail-drops (counted).  SIGTERM/SIGINT end the loop between two
 *   ppoll calls (signals are blocked outside ppoll, so none is missed); the
 *   counters go to stderr and the TAP devices vanish with their descriptors.
 *
 * Ready protocol: once both devices exist, "ready A B" is printed on stdout
 * and flushed, so a script can configure the links (addresses, up, offloads).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#define SLOT_BYTES 16384u   /* jumbo frames (9000 + headers) fit */
#define READ_BURST 64       /* frames read per descriptor per wakeup */
#define DEFAULT_LIMIT 4096u /* frames queued per direction */
#define NS_PER_MS 1000000ull

typedef struct frame {
    uint64_t due;  /* CLOCK_MONOTONIC ns */
    uint64_t seq;  /* arrival order, breaks ties in due */
    uint32_t len;
    uint32_t slot;
} frame_t;

typedef struct counters {
    uint64_t rx, tx, lost, reordered, overflow, oversize, tx_errors;
} counters_t;

/* One direction of the wire: frames read from `from`, written to `to`. */
typedef struct direction {
    const char *name;
    int from, to;
    uint8_t *slots;      /* limit * SLOT_BYTES */
    uint32_t *free_list; /* stack of free slot numbers */
    uint32_t n_free;
    frame_t *heap; /* min-heap on (due, seq) */
    uint32_t n_heap;
    uint64_t link_free; /* rate limit: when the link finishes the last frame */
    uint64_t rng;
    counters_t c;
} direction_t;

typedef struct options {
    const char *tap[2];
    const char *netns[2];
    double delay_ms, jitter_ms, reorder_pct, reorder_gap_ms, loss_pct, rate_mbit;
    uint32_t limit;
    uint64_t seed;
} options_t;

static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* xorshift64*: small, fast, good enough for "drop 1% of frames", seeded. */
static uint64_t rng_next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1Dull;
}

/* Uniform in [0, 1). */
static double rng_unit(uint64_t *s)
{
    return (double)(rng_next(s) >> 11) * (1.0 / 9007199254740992.0);
}

static bool frame_before(const frame_t *a, const frame_t *b)
{
    return a->due < b->due || (a->due == b->due && a->seq < b->seq);
}

static void heap_push(direction_t *d, frame_t f)
{
    uint32_t i = d->n_heap++;
    while (i > 0) {
        uint32_t parent = (i - 1) / 2;
        if (!frame_before(&f, &d->heap[parent])) break;
        d->heap[i] = d->heap[parent];
        i = parent;
    }
    d->heap[i] = f;
}

static frame_t heap_pop(direction_t *d)
{
    frame_t top = d->heap[0];
    frame_t last = d->heap[--d->n_heap];
    uint32_t i = 0, n = d->n_heap;
    for (;;) {
        uint32_t l = 2 * i + 1, r = l + 1, m = i;
        const frame_t *best = &last;
        if (l < n && frame_before(&d->heap[l], best)) {
            m = l;
            best = &d->heap[l];
        }
        if (r < n && frame_before(&d->heap[r], best)) m = r;
        if (m == i) break;
        d->heap[i] = d->heap[m];
        i = m;
    }
    if (n > 0) d->heap[i] = last;
    return top;
}

/* Opens /dev/net/tun and attaches (creating it if needed) TAP device `name`,
 * inside network namespace `netns` when it is not NULL.  The namespace
 * matters at open(): the tun socket takes the opener's namespace.  Returns a
 * non-blocking descriptor, or -1 after printing why. */
static int tap_open(const char *name, const char *netns)
{
    int self = -1, target = -1, fd = -1;
    if (strlen(name) >= IFNAMSIZ) {
        fprintf(stderr, "tapdelay: device name too long: %s\n", name);
        return -1;
    }
    if (netns) {
        char path[512];
        if (strchr(netns, '/'))
            snprintf(path, sizeof path, "%s", netns);
        else
            snprintf(path, sizeof path, "/run/netns/%s", netns);
        self = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
        target = open(path, O_RDONLY | O_CLOEXEC);
        if (self < 0 || target < 0) {
            fprintf(stderr, "tapdelay: open() of %s failed: %s\n",
                    self < 0 ? "/proc/self/ns/net" : path, strerror(errno));
            goto out;
        }
        if (setns(target, CLONE_NEWNET) != 0) {
            fprintf(stderr, "tapdelay: setns() to %s failed: %s\n", path, strerror(errno));
            goto out;
        }
    }
    fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, "tapdelay: open() of /dev/net/tun failed: %s\n", strerror(errno));
    } else {
        struct ifreq ifr;
        memset(&ifr, 0, sizeof ifr);
        ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
        memcpy(ifr.ifr_name, name, strlen(name));
        if (ioctl(fd, TUNSETIFF, &ifr) != 0) {
            fprintf(stderr, "tapdelay: TUNSETIFF %s failed: %s\n", name, strerror(errno));
            close(fd);
            fd = -1;
        }
    }
    if (netns && setns(self, CLONE_NEWNET) != 0) {
        fprintf(stderr, "tapdelay: setns() back failed: %s\n", strerror(errno));
        if (fd >= 0) close(fd);
        fd = -1;
    }
out:
    if (self >= 0) close(self);
    if (target >= 0) close(target);
    return fd;
}

static int direction_init(direction_t *d, const char *name, int from, int to, uint32_t limit,
                          uint64_t seed)
{
    memset(d, 0, sizeof *d);
    d->name = name;
    d->from = from;
    d->to = to;
    d->slots = malloc((size_t)limit * SLOT_BYTES);
    d->free_list = malloc((size_t)limit * sizeof *d->free_list);
    d->heap = malloc((size_t)limit * sizeof *d->heap);
    if (!d->slots || !d->free_list || !d->heap) return -1;
    for (uint32_t i = 0; i < limit; i++) d->free_list[i] = limit - 1 - i;
    d->n_free = limit;
    d->rng = seed ? seed : 0x9E3779B97F4A7C15ull;
    return 0;
}

static void direction_free(direction_t *d)
{
    free(d->slots);
    free(d->free_list);
    free(d->heap);
}

/* Reads up to READ_BURST frames from d->from and schedules them. */
static void direction_read(direction_t *d, const options_t *o, uint64_t *seq)
{
    static uint8_t scratch[SLOT_BYTES];
    for (int k = 0; k < READ_BURST; k++) {
        uint8_t *buf = d->n_free ? d->slots + (size_t)d->free_list[d->n_free - 1] * SLOT_BYTES
                                 : scratch;
        ssize_t n = read(d->from, buf, SLOT_BYTES);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                fprintf(stderr, "tapdelay: read() on %s failed: %s\n", d->name, strerror(errno));
            return;
        }
        if (n == 0) return;
        uint64_t now = now_ns();
        d->c.rx++;
        if ((size_t)n >= SLOT_BYTES) { /* possibly cut: never forward a damaged frame */
            d->c.oversize++;
            continue;
        }
        if (o->loss_pct > 0 && rng_unit(&d->rng) * 100.0 < o->loss_pct) {
            d->c.lost++;
            continue;
        }
        if (buf == scratch) {
            d->c.overflow++;
            continue;
        }
        uint64_t depart = now;
        if (o->rate_mbit > 0) {
            uint64_t tx = (uint64_t)((double)n * 8000.0 / o->rate_mbit); /* ns */
            depart = (d->link_free > now ? d->link_free : now) + tx;
            d->link_free = depart;
        }
        double extra_ms = o->delay_ms;
        if (o->jitter_ms > 0) extra_ms += rng_unit(&d->rng) * o->jitter_ms;
        if (o->reorder_pct > 0 && rng_unit(&d->rng) * 100.0 < o->reorder_pct) {
            extra_ms += o->reorder_gap_ms;
            d->c.reordered++;
        }
        frame_t f = {.due = depart + (uint64_t)(extra_ms * (double)NS_PER_MS),
                     .seq = (*seq)++,
                     .len = (uint32_t)n,
                     .slot = d->free_list[--d->n_free]};
        heap_push(d, f);
    }
}

/* Writes every frame that is due; returns the next departure time or 0. */
static uint64_t direction_send(direction_t *d, uint64_t now)
{
    while (d->n_heap && d->heap[0].due <= now) {
        frame_t f = heap_pop(d);
        ssize_t n = write(d->to, d->slots + (size_t)f.slot * SLOT_BYTES, f.len);
        if (n == (ssize_t)f.len)
            d->c.tx++;
        else
            d->c.tx_errors++; /* e.g. the far device is down: a wire drops too */
        d->free_list[d->n_free++] = f.slot;
    }
    return d->n_heap ? d->heap[0].due : 0;
}

static void usage(FILE *to)
{
    fprintf(to,
            "usage: tapdelay --tap-a NAME --tap-b NAME [options]\n"
            "\n"
            "Creates TAP devices A and B (IFF_TAP|IFF_NO_PI) and forwards every Ethernet\n"
            "frame between them in both directions after a one-way delay.  Prints\n"
            "\"ready A B\" on stdout once both exist; stops on SIGTERM/SIGINT and prints\n"
            "its counters on stderr.  The devices disappear when tapdelay exits.\n"
            "\n"
            "  --tap-a NAME, --tap-b NAME   device names (created if missing)\n"
            "  --netns-a NS, --netns-b NS   create the device inside network namespace NS\n"
            "                               (a name under /run/netns, or a path)\n"
            "  --delay MS        one-way delay, each direction (default 0; RTT = 2 x MS)\n"
            "  --jitter MS       extra uniform random delay in [0, MS) per frame; frames may\n"
            "                    then overtake each other\n"
            "  --reorder PCT     this percentage of frames gets --reorder-gap extra delay,\n"
            "                    so frames sent after them arrive first\n"
            "  --reorder-gap MS  extra delay of reordered frames (default 5)\n"
            "  --loss PCT        drop this percentage of frames at random (e.g. 1, 0.5)\n"
            "  --rate MBIT       serialise frames at this rate (default 0 = unlimited)\n"
            "  --limit N         frames queued per direction before tail drop (default %u)\n"
            "  --seed N          PRNG seed (default 1); same seed, same random choices\n"
            "  -h, --help        this text\n"
            "\n"
            "Example: RTT 20 ms, 1%% loss between namespaces c and s:\n"
            "  tapdelay --tap-a tc --netns-a c --tap-b ts --netns-b s --delay 10 --loss 1\n",
            DEFAULT_LIMIT);
}

static int parse_double(const char *s, const char *what, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || v < lo || v > hi) {
        fprintf(stderr, "tapdelay: bad %s '%s' (want %g..%g)\n", what, s, lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

/* Returns 0 to run, 1 after --help, -1 on a usage error. */
static int parse_args(int argc, char **argv, options_t *o)
{
    static const struct option longopts[] = {
        {"tap-a", required_argument, NULL, 'a'},   {"tap-b", required_argument, NULL, 'b'},
        {"netns-a", required_argument, NULL, 'A'}, {"netns-b", required_argument, NULL, 'B'},
        {"delay", required_argument, NULL, 'd'},   {"jitter", required_argument, NULL, 'j'},
        {"reorder", required_argument, NULL, 'r'}, {"reorder-gap", required_argument, NULL, 'g'},
        {"loss", required_argument, NULL, 'l'},    {"rate", required_argument, NULL, 'R'},
        {"limit", required_argument, NULL, 'n'},   {"seed", required_argument, NULL, 's'},
        {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0}};
    memset(o, 0, sizeof *o);
    o->reorder_gap_ms = 5;
    o->limit = DEFAULT_LIMIT;
    o->seed = 1;
    int c;
    double v;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 'a': o->tap[0] = optarg; break;
        case 'b': o->tap[1] = optarg; break;
        case 'A': o->netns[0] = optarg; break;
        case 'B': o->netns[1] = optarg; break;
        case 'd':
            if (parse_double(optarg, "--delay", 0, 60000, &o->delay_ms)) return -1;
            break;
        case 'j':
            if (parse_double(optarg, "--jitter", 0, 60000, &o->jitter_ms)) return -1;
            break;
        case 'r':
            if (parse_double(optarg, "--reorder", 0, 100, &o->reorder_pct)) return -1;
            break;
        case 'g':
            if (parse_double(optarg, "--reorder-gap", 0, 60000, &o->reorder_gap_ms)) return -1;
            break;
        case 'l':
            if (parse_double(optarg, "--loss", 0, 100, &o->loss_pct)) return -1;
            break;
        case 'R':
            if (parse_double(optarg, "--rate", 0, 1e6, &o->rate_mbit)) return -1;
            break;
        case 'n':
            if (parse_double(optarg, "--limit", 1, 1 << 20, &v)) return -1;
            o->limit = (uint32_t)v;
            break;
        case 's':
            if (parse_double(optarg, "--seed", 0, 1e18, &v)) return -1;
            o->seed = (uint64_t)v;
            break;
        case 'h': usage(stdout); return 1;
        default: return -1;
        }
    }
    if (optind != argc || !o->tap[0] || !o->tap[1]) {
        fprintf(stderr, "tapdelay: --tap-a and --tap-b are required (try --help)\n");
        return -1;
    }
    if (!o->netns[0] && !o->netns[1] && strcmp(o->tap[0], o->tap[1]) == 0) {
        fprintf(stderr, "tapdelay: the two devices need different names\n");
        return -1;
    }
    return 0;
}

static void print_counters(const direction_t *d)
{
    fprintf(stderr,
            "tapdelay: %s rx=%" PRIu64 " tx=%" PRIu64 " lost=%" PRIu64 " reordered=%" PRIu64
            " overflow=%" PRIu64 " oversize=%" PRIu64 " tx_errors=%" PRIu64 " queued=%" PRIu32
            "\n",
            d->name, d->c.rx, d->c.tx, d->c.lost, d->c.reordered, d->c.overflow, d->c.oversize,
            d->c.tx_errors, d->n_heap);
}

int main(int argc, char **argv)
{
    options_t o;
    int rc = parse_args(argc, argv, &o);
    if (rc) return rc > 0 ? 0 : 2;

    int fd[2] = {-1, -1};
    direction_t dir[2];
    memset(dir, 0, sizeof dir);
    int status = 1;

    sigset_t block, empty;
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    sigemptyset(&empty);
    sigprocmask(SIG_BLOCK, &block, NULL);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    for (int i = 0; i < 2; i++) {
        fd[i] = tap_open(o.tap[i], o.netns[i]);
        if (fd[i] < 0) goto done;
    }
    if (direction_init(&dir[0], "a->b", fd[0], fd[1], o.limit, o.seed) != 0 ||
        direction_init(&dir[1], "b->a", fd[1], fd[0], o.limit,
                       o.seed * 0x9E3779B97F4A7C15ull + 1) != 0) {
        fprintf(stderr, "tapdelay: out of memory for %u frames per direction\n", o.limit);
        goto done;
    }
    printf("ready %s %s\n", o.tap[0], o.tap[1]);
    fflush(stdout);

    uint64_t seq = 0;
    while (!g_stop) {
        uint64_t now = now_ns();
        uint64_t next = 0;
        for (int i = 0; i < 2; i++) {
            uint64_t t = direction_send(&dir[i], now);
            if (t && (!next || t < next)) next = t;
        }
        struct pollfd pfd[2] = {{.fd = fd[0], .events = POLLIN}, {.fd = fd[1], .events = POLLIN}};
        struct timespec ts, *tsp = NULL;
        if (next) {
            uint64_t wait = next > now ? next - now : 0;
            ts.tv_sec = (time_t)(wait / 1000000000ull);
            ts.tv_nsec = (long)(wait % 1000000000ull);
            tsp = &ts;
        }
        int n = ppoll(pfd, 2, tsp, &empty);
        if (n < 0) {
            if (errno == EINTR) continue;
            fprintf(stderr, "tapdelay: ppoll() failed: %s\n", strerror(errno));
            goto done;
        }
        for (int i = 0; i < 2; i++) {
            if (pfd[i].revents & (POLLERR | POLLNVAL)) {
                fprintf(stderr, "tapdelay: device %s failed (removed?)\n", o.tap[i]);
                goto done;
            }
            if (pfd[i].revents & POLLIN) direction_read(&dir[i], &o, &seq);
        }
    }
    status = 0;
done:
    if (dir[0].slots || dir[1].slots) {
        print_counters(&dir[0]);
        print_counters(&dir[1]);
    }
    direction_free(&dir[0]);
    direction_free(&dir[1]);
    for (int i = 0; i < 2; i++)
        if (fd[i] >= 0) close(fd[i]);
    return status;
}
