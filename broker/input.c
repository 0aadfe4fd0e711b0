/* input.c - UDP, interface and file sources for the broker (see input.h).
 *
 * DESIGN: the UDP source is the recorder's receive loop (netio_vxrx: 64
 * messages per recvmmsg() into preallocated slots, VXLAN checked in place,
 * the inner frame 8 bytes in), so nothing is copied. libpcap sources copy each (inner) frame into a
 * 4 MiB arena, because libpcap's buffer is only valid until its next read;
 * a batch ends at 64 frames or when the arena is full. Everything is
 * preallocated when the input opens.
 */
#include "input.h"

#include "log.h"
#include "netio.h"
#include "pcapio.h"
#include "timeparse.h"
#include "xmalloc.h"

#include <errno.h>
#include <pcap/pcap.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define INPUT_ARENA (4u << 20)   /* libpcap sources: frames up to PCAPIO_SNAPLEN */

enum { SRC_UDP, SRC_IFACE, SRC_FILE };

_Static_assert(INPUT_BATCH >= NETIO_VX_BATCH, "one receive fits one batch");

struct input {
    input_opts o;
    int kind;
    int fd;
    pcap_t *pc;
    input_stats st;
    input_batch b;
    uint8_t *mem;                /* libpcap: the arena */
    uint32_t used;               /* arena bytes in use */
    netio_vxrx_t *rx;            /* UDP: the batched receiver */
    netio_vxpkt pkts[NETIO_VX_BATCH];
    input_fn fn;                 /* the current input_run's callback */
    void *ctx;
    int64_t start_mono;          /* --read-rate pacing */
    uint64_t paced;
};

input_t *input_open(const input_opts *o, char *err, size_t errlen)
{
    input_t *in = xcalloc(1, sizeof *in);
    in->o = *o;
    in->fd = -1;
    char perr[PCAP_ERRBUF_SIZE];
    if (o->read) {
        in->kind = SRC_FILE;
        in->pc = pcap_open_offline_with_tstamp_precision(o->read, PCAP_TSTAMP_PRECISION_NANO, perr);
        if (!in->pc) {
            snprintf(err, errlen, "cannot read %s: %s", o->read, perr);
            goto fail;
        }
        if (pcap_datalink(in->pc) != DLT_EN10MB) {
            snprintf(err, errlen, "%s: link type %d is not supported (Ethernet captures only)",
                     o->read, pcap_datalink(in->pc));
            goto fail;
        }
    } else if (o->iface) {
        in->kind = SRC_IFACE;
        in->pc = netio_open_live(o->iface, o->capture_filter, err, errlen);
        if (!in->pc) goto fail;
        if (pcap_setnonblock(in->pc, 1, perr) < 0) {
            snprintf(err, errlen, "pcap_setnonblock(%s) failed: %s", o->iface, perr);
            goto fail;
        }
        in->fd = pcap_get_selectable_fd(in->pc);
    } else {
        in->kind = SRC_UDP;
        in->fd = netio_udp_listen(o->listen, o->rcvbuf, err, errlen);
        if (in->fd < 0) goto fail;
    }
    if (in->kind == SRC_UDP) in->rx = netio_vxrx_new(in->fd);
    else in->mem = xmalloc(INPUT_ARENA);
    return in;
fail:
    input_free(in);
    return NULL;
}

static void input__deliver(input_t *in)
{
    if (in->b.n) {
        in->st.frames += (uint64_t)in->b.n;
        in->fn(in->ctx, &in->b);
    }
    in->b.n = 0;
    in->used = 0;
}

/* libpcap sources: one captured frame, decapsulated when asked, copied. */
static void input__frame(input_t *in, int64_t ts, const uint8_t *data, uint32_t caplen,
                         uint32_t origlen)
{
    in->st.rx_packets++;
    in->st.rx_bytes += caplen;
    uint32_t vni = 0;
    if (in->o.decap_vxlan) {
        uint32_t off;
        uint8_t outer[16];
        int r = decode_outer_vxlan(data, caplen, origlen, in->o.vxlan_port, &off, &vni, outer);
        if (r != VX_OK) {
            in->st.not_decapsulated[r]++;
            return;
        }
        data += off;
        caplen -= off;
        origlen = origlen > off ? origlen - off : caplen;
    }
    if (caplen > PCAPIO_SNAPLEN) {
        caplen = PCAPIO_SNAPLEN;
        in->st.truncated++;
    }
    if (origlen < caplen) origlen = caplen;
    if (in->b.n == INPUT_BATCH || in->used + caplen > INPUT_ARENA) input__deliver(in);
    input_pkt *p = &in->b.p[in->b.n++];
    p->data = in->mem + in->used;
    memcpy(p->data, data, caplen);
    in->used += caplen;
    p->caplen = caplen;
    p->origlen = origlen;
    p->ts_ns = ts;
    p->vni = vni;
}

static void input__pcap_cb(u_char *user, const struct pcap_pkthdr *h, const u_char *data)
{
    input_t *in = (input_t *)user;
    int64_t ts = (int64_t)h->ts.tv_sec * 1000000000LL + h->ts.tv_usec; /* nanoseconds */
    input__frame(in, ts, data, h->caplen, h->len);
}

static int input__wait(input_t *in, int timeout_ms)
{
    struct pollfd pfd = { in->fd, POLLIN, 0 };
    int r = poll(&pfd, 1, timeout_ms);
    return r < 0 && errno != EINTR ? -1 : r > 0;
}

static int input__udp(input_t *in, int max_batches, int timeout_ms)
{
    int total = 0, waited = 0;
    for (int k = 0; k < max_batches; k++) {
        netio_vxcount c;
        int got;
        int n = netio_vxrx_recv(in->rx, 0, in->pkts, &got, &c);
        NETIO_VXCOUNT_ADD(&in->st, &c);
        if (n < 0) {
            log_error("recvmmsg() failed: %s", strerror(-n));
            return -2;
        }
        if (n == 0) {
            if (total || waited) return total;
            int w = input__wait(in, timeout_ms);
            if (w <= 0) return w < 0 ? -2 : 0;
            waited = 1;
            k--; /* the wait does not count as a batch */
            continue;
        }
        for (int i = 0; i < got; i++) {
            input_pkt *p = &in->b.p[in->b.n++];
            p->data = in->pkts[i].frame;
            p->caplen = in->pkts[i].caplen;
            p->origlen = in->pkts[i].origlen;
            p->ts_ns = in->pkts[i].ts_ns;
            p->vni = in->pkts[i].vni;
        }
        total += n;
        input__deliver(in);
        if (n < NETIO_VX_BATCH) break;
    }
    return total;
}

static int input__iface(input_t *in, int max_batches, int timeout_ms)
{
    int total = 0;
    for (int k = 0; k < max_batches; k++) {
        int n = pcap_dispatch(in->pc, INPUT_BATCH, input__pcap_cb, (u_char *)in);
        if (n == PCAP_ERROR) {
            log_error("capture on %s failed: %s", in->o.iface, pcap_geterr(in->pc));
            return -2;
        }
        input__deliver(in);
        total += n;
        if (n > 0) continue;
        if (total || k) break;
        int w = input__wait(in, timeout_ms);
        if (w < 0) return -2;
        if (w == 0) break;
    }
    struct pcap_stat ps;
    if (pcap_stats(in->pc, &ps) == 0) in->st.kernel_drops = ps.ps_drop + ps.ps_ifdrop;
    return total;
}

static int input__file(input_t *in, int max_batches)
{
    struct pcap_pkthdr *h;
    const u_char *data;
    int total = 0, rc = 1;
    if (!in->start_mono) in->start_mono = timeparse_mono_ns();
    for (int k = 0; k < max_batches && rc == 1; k++) {
        int got = 0;
        while (got < INPUT_BATCH && (rc = pcap_next_ex(in->pc, &h, &data)) == 1) {
            input__pcap_cb((u_char *)in, h, data);
            got++;
        }
        input__deliver(in);
        total += got;
        in->paced += (uint64_t)got;
        if (in->o.read_rate > 0) {
            /* Pace: sleep until the packets so far are due at the rate. */
            int64_t due = in->start_mono +
                          (int64_t)(in->paced * 1000000000ULL / (uint64_t)in->o.read_rate);
            int64_t ahead = due - timeparse_mono_ns();
            if (ahead > 0) {
                struct timespec ts = { ahead / 1000000000LL, ahead % 1000000000LL };
                nanosleep(&ts, NULL);
            }
        }
    }
    if (rc == PCAP_ERROR) {
        log_error("%s is cut short or damaged after %llu packets: %s", in->o.read,
                  (unsigned long long)in->st.rx_packets, pcap_geterr(in->pc));
        return -2;
    }
    return rc == PCAP_ERROR_BREAK && !total ? -1 : total;
}

int input_run(input_t *in, int max_batches, int timeout_ms, input_fn fn, void *ctx)
{
    in->fn = fn;
    in->ctx = ctx;
    switch (in->kind) {
    case SRC_UDP: return input__udp(in, max_batches, timeout_ms);
    case SRC_IFACE: return input__iface(in, max_batches, timeout_ms);
    default: return input__file(in, max_batches);
    }
}

void input_get_stats(const input_t *in, input_stats *st) { *st = in->st; }

void input_free(input_t *in)
{
    if (!in) return;
    if (in->pc) pcap_close(in->pc);
    else if (in->fd >= 0) close(in->fd);
    free(in->mem);
    netio_vxrx_free(in->rx);
    free(in);
}
