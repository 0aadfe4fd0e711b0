/* ingest.c - UDP/VXLAN, live interface and file sources (see ingest.h).
 *
 * DESIGN: every source ends in ingest__frame(), which decodes, keys and
 * copies one inner frame into the current batch (a classic pcap file is
 * read straight into the batches, and nothing is copied); so the three
 * sources cannot drift apart in what they store or count. A receive thread keeps its
 * counters private and publishes a copy under a mutex once per batch, so the
 * hot path has no shared writes and the stats reader sees consistent values.
 */
#include "ingest.h"

#include "flowkey.h"
#include "log.h"
#include "netio.h"
#include "pcapio.h"
#include "pcapread.h"
#include "timeparse.h"
#include "xmalloc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pcap/pcap.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* A partial batch is handed over after 10 ms, or when the socket has been
 * idle that long: searches see packets promptly, yet a slow trickle still
 * fills batches instead of spending one per packet (the queue holds a fixed
 * number of batches, so half-empty ones would shrink it). */
#define BATCH_MAX_AGE_NS 10000000LL

#define INGEST_FILE_BUF (1u << 20)

void ingest_stats_add(ingest_stats *a, const ingest_stats *b)
{
    uint64_t *x = (uint64_t *)a;
    const uint64_t *y = (const uint64_t *)b;
    for (size_t i = 0; i < sizeof *a / sizeof(uint64_t); i++) x[i] += y[i];
}

/* One producer's state: the batch being filled and private counters. */
typedef struct producer {
    pipeline_t *pipe;
    int wait; /* block for a free batch (files) or drop (live) */
    int analysis; /* fill pkt_ana and its hash: only when a flow table reads them */
    pipe_batch *cur;
    ingest_stats st;
    ingest_stats pub;
    pthread_mutex_t pub_mu;
} producer;

static void producer__init(producer *p, const ingest_opts *o, int wait)
{
    memset(p, 0, sizeof *p);
    p->pipe = o->pipe;
    p->wait = wait;
    p->analysis = o->analysis;
    pthread_mutex_init(&p->pub_mu, NULL);
}

static void producer__publish(producer *p)
{
    pthread_mutex_lock(&p->pub_mu);
    p->pub = p->st;
    pthread_mutex_unlock(&p->pub_mu);
}

static void producer__submit(producer *p)
{
    if (p->cur) {
        pipeline_submit(p->pipe, p->cur);
        p->cur = NULL;
    }
    producer__publish(p);
}

/* The per-packet steps below are always inlined into their few callers:
 * their calls' saving and restoring of registers was ~50 instructions a
 * packet. */
#define INGEST_INLINE static inline __attribute__((always_inline))

/* Decode, key and queue one inner Ethernet frame. in_place: data is
 * already in the current batch (read there by pcapread), which has room
 * for the packet - nothing to copy. Else it is copied in. */
INGEST_INLINE void ingest__frame(producer *p, int64_t ts_ns, const uint8_t *data, uint32_t caplen,
                          uint32_t origlen, uint32_t vni, const uint8_t *observer, int in_place)
{
    if (caplen > PCAPIO_SNAPLEN) {
        caplen = PCAPIO_SNAPLEN;
        p->st.truncated++;
    }
    if (origlen < caplen) origlen = caplen;
    if (!in_place) {
        if (p->cur && !pipe_batch_fits(p->cur, caplen)) producer__submit(p);
        if (!p->cur) {
            p->cur = pipeline_get(p->pipe, p->wait);
            if (!p->cur) {
                p->st.queue_drops++;
                return;
            }
            p->cur->first_mono_ns = timeparse_mono_ns();
        }
    }
    pkt_info_t pi;
    int reason = decode_frame(data, caplen, origlen, &pi);
    p->st.anomalies[reason]++;
    pipe_batch *b = p->cur;
    pipe_pkt *k = &b->pkts[b->n++];
    k->ts_ns = ts_ns;
    k->caplen = caplen;
    k->origlen = origlen;
    k->data_off = in_place ? (uint32_t)(data - b->data) : b->used;
    flowkey_from_pkt(&k->key, &pi, vni, observer);
    k->hash = flowkey_hash(&k->key);
    if (p->analysis) {
        k->ana_hash = flowtab_ana_from(&k->ana, &pi, vni, observer);
        k->payload_off = k->ana.payload_len ? pi.payload_off : 0;
    }
    if (!in_place) {
        memcpy(b->data + b->used, data, caplen);
        b->used += caplen;
    }
    p->st.stored_inner++;
}

/* A frame from a file or interface: decapsulate first when asked. */
INGEST_INLINE void ingest__outer(producer *p, const ingest_opts *o, int64_t ts_ns, const uint8_t *data,
                          uint32_t caplen, uint32_t origlen, int in_place)
{
    p->st.rx_packets++;
    p->st.rx_bytes += caplen;
    if (!o->decap_vxlan) {
        ingest__frame(p, ts_ns, data, caplen, origlen, 0, NULL, in_place);
        return;
    }
    uint32_t inner, vni;
    uint8_t outer[16];
    int r = decode_outer_vxlan(data, caplen, origlen, o->vxlan_port, &inner, &vni, outer);
    if (r != VX_OK) {
        p->st.not_decapsulated[r]++;
        return;
    }
    ingest__frame(p, ts_ns, data + inner, caplen - inner, origlen - inner, vni, outer, in_place);
}

/* A packet's time in nanoseconds (our handles are opened with nanosecond
 * precision). A pcap file keeps seconds as an unsigned 32-bit number (good
 * until 2106), but libpcap hands them over through a signed 32-bit field:
 * from 2038 on they come out negative, and would be stored as times before
 * 1970 that no search finds. A pcapng time past 2262 does not fit our
 * nanoseconds: it is kept at the last second that does. */
static int64_t ingest__ts_ns(const struct pcap_pkthdr *h)
{
    int64_t sec = h->ts.tv_sec < 0 ? (int64_t)(uint32_t)h->ts.tv_sec : (int64_t)h->ts.tv_sec;
    if (sec > TIMEPARSE_MAX_SEC) sec = TIMEPARSE_MAX_SEC;
    return sec * 1000000000LL + h->ts.tv_usec;
}

/* ---- file ---------------------------------------------------------------- */

/* A classic pcap file of Ethernet frames, read by pcapread (pcapread.h says
 * why); the same packets, counters and errors as through libpcap. Read
 * straight into the batches: each is lent to pcapread for as many packets
 * as it holds, and a record that does not fit in it starts the next. */
static int ingest__classic(const ingest_opts *o, pcapread_t *r, const char *path, const _Atomic int *stop,
                           ingest_stats *st, char *err, size_t errlen)
{
    producer p;
    producer__init(&p, o, 1);
    int64_t ts;
    uint32_t caplen, origlen;
    const uint8_t *data;
    char rerr[256];
    int rc = 0, out = 0;
    while (!*stop) {
        if (!p.cur || p.cur->n == PIPE_BATCH_PKTS || rc == PCAPREAD_NO_ROOM) {
            producer__submit(&p);
            if (!(p.cur = pipeline_get(p.pipe, 1))) break; /* closed: stopping */
            p.cur->first_mono_ns = timeparse_mono_ns();
            pcapread_lend(r, p.cur->data, PIPE_BATCH_BYTES, PIPE_BATCH_PKTS);
        }
        rc = pcapread_next(r, &ts, &caplen, &origlen, &data, rerr, sizeof rerr);
        if (rc == 1)
            ingest__outer(&p, o, ts, data, caplen, origlen, 1);
        else if (rc != PCAPREAD_NO_ROOM)
            break;
    }
    if (!*stop && rc < 0) {
        snprintf(err, errlen, "%s is cut short or damaged after %llu packets: %s", path,
                 (unsigned long long)p.st.rx_packets, rerr);
        out = -1;
    }
    producer__submit(&p);
    ingest_stats_add(st, &p.st);
    pthread_mutex_destroy(&p.pub_mu);
    return out;
}

int ingest_file(const ingest_opts *o, const char *path, const _Atomic int *stop, ingest_stats *st,
                char *err, size_t errlen)
{
    if (strcmp(path, "-")) {
        int errnum;
        pcapread_t *r = pcapread_open(path, &errnum);
        if (r) {
            int rc = ingest__classic(o, r, path, stop, st, err, errlen);
            pcapread_close(r);
            return rc;
        }
        if (errnum) {
            snprintf(err, errlen, "cannot read %s: %s", path, strerror(errnum));
            return -1;
        }
    }
    char perr[PCAP_ERRBUF_SIZE];
    /* libpcap reads through stdio, whose buffer is one page by default: a
     * read() per 4 KiB. A 1 MiB buffer makes that a read() per MiB. */
    FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin; /* "-" as libpcap */
    if (!f) {
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        return -1;
    }
    char *fbuf = xmalloc(INGEST_FILE_BUF);
    setvbuf(f, fbuf, _IOFBF, INGEST_FILE_BUF);
    pcap_t *pc = pcap_fopen_offline_with_tstamp_precision(f, PCAP_TSTAMP_PRECISION_NANO, perr);
    if (!pc) {
        fclose(f);
        free(fbuf);
        snprintf(err, errlen, "cannot read %s: %s", path, perr);
        return -1;
    }
    if (pcap_datalink(pc) != DLT_EN10MB) {
        snprintf(err, errlen, "%s: link type %s is not supported (Ethernet captures only)", path,
                 pcap_datalink_val_to_name(pcap_datalink(pc)) ? pcap_datalink_val_to_name(pcap_datalink(pc)) : "?");
        pcap_close(pc);
        free(fbuf);
        return -1;
    }
    producer p;
    producer__init(&p, o, 1);
    struct pcap_pkthdr *h;
    const u_char *data;
    int rc = 1, out = 0;
    while (!*stop && (rc = pcap_next_ex(pc, &h, &data)) == 1)
        ingest__outer(&p, o, ingest__ts_ns(h), data, h->caplen, h->len, 0);
    if (!*stop && rc == PCAP_ERROR) {
        snprintf(err, errlen, "%s is cut short or damaged after %llu packets: %s", path,
                 (unsigned long long)p.st.rx_packets, pcap_geterr(pc));
        out = -1;
    }
    producer__submit(&p);
    pcap_close(pc); /* closes f */
    free(fbuf);
    ingest_stats_add(st, &p.st);
    pthread_mutex_destroy(&p.pub_mu);
    return out;
}

/* ---- live sources ---------------------------------------------------------- */

typedef struct rx_thread {
    struct ingest_live *l;
    pthread_t tid;
    _Atomic int64_t beat;  /* monotonic ns of its last turn (health) */
    _Atomic int failed;    /* it has ended on an error */
    int fd;          /* UDP */
    pcap_t *pc;      /* interface */
    uint32_t last_ovfl;
    producer p;
    netio_vxrx_t *rx; /* UDP: the batched receiver */
    netio_vxpkt pkts[NETIO_VX_BATCH];
} rx_thread;

struct ingest_live {
    ingest_opts o;
    _Atomic int stop;
    int n;
    rx_thread *t;
};

static void *ingest__udp_main(void *arg)
{
    rx_thread *t = arg;
    pthread_setname_np(pthread_self(), "mscope-rx");
    while (!t->l->stop) {
        t->beat = timeparse_mono_ns();
        netio_vxcount c;
        int got;
        /* Kernel times shifted by the test hook's skew (timeparse.h), else 0. */
        int n = netio_vxrx_recv(t->rx, timeparse_skew_ns(), t->pkts, &got, &c);
        NETIO_VXCOUNT_ADD(&t->p.st, &c);
        if (n <= 0) {
            if (n < 0) log_error("recvmmsg() failed: %s", strerror(-n));
            if (t->p.cur && timeparse_mono_ns() - t->p.cur->first_mono_ns > BATCH_MAX_AGE_NS)
                producer__submit(&t->p);
            else if (!t->p.cur)
                producer__publish(&t->p);
            struct pollfd pfd = { t->fd, POLLIN, 0 };
            if (poll(&pfd, 1, t->p.cur ? (int)(BATCH_MAX_AGE_NS / 1000000) : 100) == 0 && t->p.cur)
                producer__submit(&t->p); /* idle: hand over what we hold */
            continue;
        }
        for (int i = 0; i < got; i++) {
            const netio_vxpkt *v = &t->pkts[i];
            ingest__frame(&t->p, v->ts_ns, v->frame, v->caplen, v->origlen, v->vni, v->observer, 0);
        }
        if (t->p.cur && timeparse_mono_ns() - t->p.cur->first_mono_ns > BATCH_MAX_AGE_NS)
            producer__submit(&t->p);
    }
    producer__submit(&t->p);
    return NULL;
}

static void ingest__pcap_cb(u_char *user, const struct pcap_pkthdr *h, const u_char *data)
{
    rx_thread *t = (rx_thread *)user;
    /* The kernel's receive time, shifted by the test hook's skew (timeparse.h). */
    ingest__outer(&t->p, &t->l->o, ingest__ts_ns(h) + timeparse_skew_ns(), data, h->caplen, h->len, 0);
}

static void *ingest__pcap_main(void *arg)
{
    rx_thread *t = arg;
    pthread_setname_np(pthread_self(), "mscope-capture");
    while (!t->l->stop) {
        t->beat = timeparse_mono_ns();
        int n = pcap_dispatch(t->pc, 512, ingest__pcap_cb, (u_char *)t);
        if (n == PCAP_ERROR) {
            log_error("capture on %s failed: %s", t->l->o.iface, pcap_geterr(t->pc));
            t->failed = 1;
            break;
        }
        struct pcap_stat ps;
        if (pcap_stats(t->pc, &ps) == 0) t->p.st.kernel_drops = ps.ps_drop + ps.ps_ifdrop;
        producer__submit(&t->p);
    }
    producer__submit(&t->p);
    return NULL;
}

ingest_live_t *ingest_live_start(const ingest_opts *o, char *err, size_t errlen)
{
    ingest_live_t *l = xcalloc(1, sizeof *l);
    l->o = *o;
    l->n = o->iface ? 1 : (o->threads > 0 ? o->threads : 1);
    l->t = xcalloc((size_t)l->n, sizeof *l->t);
    for (int i = 0; i < l->n; i++) {
        rx_thread *t = &l->t[i];
        t->l = l;
        t->fd = -1;
        producer__init(&t->p, o, 0);
        t->beat = timeparse_mono_ns();
        if (o->iface) {
            t->pc = netio_open_live(o->iface, o->capture_filter, err, errlen);
            if (!t->pc) goto fail;
        } else {
            t->fd = netio_udp_listen(o->listen, o->rcvbuf, err, errlen);
            if (t->fd < 0) goto fail;
            t->rx = netio_vxrx_new(t->fd);
        }
    }
    for (int i = 0; i < l->n; i++) {
        rx_thread *t = &l->t[i];
        int rc = pthread_create(&t->tid, NULL, o->iface ? ingest__pcap_main : ingest__udp_main, t);
        if (rc) {
            snprintf(err, errlen, "pthread_create() failed: %s", strerror(rc));
            l->stop = 1;
            for (int j = 0; j < i; j++) pthread_join(l->t[j].tid, NULL);
            goto fail;
        }
    }
    if (o->iface)
        log_info("capturing on %s%s%s", o->iface, o->decap_vxlan ? " (decapsulating VXLAN)" : "",
                 o->capture_filter ? "" : "");
    else
        log_info("listening for VXLAN on udp %s with %d thread(s)", o->listen, l->n);
    return l;
fail:
    for (int i = 0; i < l->n; i++) {
        if (l->t[i].fd >= 0) close(l->t[i].fd);
        if (l->t[i].pc) pcap_close(l->t[i].pc);
        netio_vxrx_free(l->t[i].rx);
    }
    free(l->t);
    free(l);
    return NULL;
}

void ingest_live_stats(ingest_live_t *l, ingest_stats *out)
{
    memset(out, 0, sizeof *out);
    for (int i = 0; i < l->n; i++) {
        producer *p = &l->t[i].p;
        pthread_mutex_lock(&p->pub_mu);
        ingest_stats_add(out, &p->pub);
        pthread_mutex_unlock(&p->pub_mu);
    }
}

int ingest_live_health(ingest_live_t *l, int64_t stall_ns, char *why, size_t len)
{
    int sick = 0;
    size_t used = 0;
    int64_t now = timeparse_mono_ns();
    why[0] = 0;
    for (int i = 0; i < l->n; i++) {
        rx_thread *t = &l->t[i];
        int64_t quiet = now - t->beat;
        int n = 0;
        if (t->failed)
            n = snprintf(why + used, len - used, "%sreceive thread %d has stopped on an error",
                         sick ? "; " : "", i);
        else if (quiet > stall_ns)
            n = snprintf(why + used, len - used, "%sreceive thread %d is stuck (%.1f s)",
                         sick ? "; " : "", i, (double)quiet / 1e9);
        else
            continue;
        sick++;
        if (n > 0 && used + (size_t)n < len) used += (size_t)n;
    }
    return sick;
}

void ingest_live_stop(ingest_live_t *l, ingest_stats *final)
{
    if (!l) return;
    l->stop = 1;
    for (int i = 0; i < l->n; i++) {
        if (l->t[i].pc) pcap_breakloop(l->t[i].pc);
    }
    for (int i = 0; i < l->n; i++) {
        rx_thread *t = &l->t[i];
        pthread_join(t->tid, NULL);
        if (final) ingest_stats_add(final, &t->p.st);
        if (t->fd >= 0) close(t->fd);
        if (t->pc) pcap_close(t->pc);
        netio_vxrx_free(t->rx);
        pthread_mutex_destroy(&t->p.pub_mu);
    }
    free(l->t);
    free(l);
}
