/* netio.c - shared socket and capture set-up, and the one batched VXLAN
 * receive loop of the recorder and the broker (see netio.h). */
#include "netio.h"

#include "decode.h"
#include "log.h"
#include "pcapio.h"
#include "timeparse.h"
#include "xmalloc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int netio__host(const char *host, size_t hl, uint16_t port, struct sockaddr_storage *ss,
                       socklen_t *len)
{
    char buf[128];
    if (hl >= sizeof buf) return -EINVAL;
    memcpy(buf, host, hl);
    buf[hl] = 0;
    memset(ss, 0, sizeof *ss);
    if (buf[0] == '[' && hl > 2 && buf[hl - 1] == ']') {
        buf[hl - 1] = 0;
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons(port);
        if (inet_pton(AF_INET6, buf + 1, &a->sin6_addr) != 1) return -EINVAL;
        *len = sizeof *a;
        return 0;
    }
    struct sockaddr_in *a = (struct sockaddr_in *)ss;
    a->sin_family = AF_INET;
    a->sin_port = htons(port);
    if (!*buf) a->sin_addr.s_addr = htonl(INADDR_ANY);
    else if (inet_pton(AF_INET, buf, &a->sin_addr) != 1) return -EINVAL;
    *len = sizeof *a;
    return 0;
}

int netio_parse_addr(const char *s, struct sockaddr_storage *ss, socklen_t *len)
{
    const char *colon = strrchr(s, ':');
    if (!colon) return -EINVAL;
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (end == colon + 1 || *end || port <= 0 || port > 65535) return -EINVAL;
    return netio__host(s, (size_t)(colon - s), (uint16_t)port, ss, len);
}

int netio_parse_host(const char *s, struct sockaddr_storage *ss, socklen_t *len)
{
    if (!*s) return -EINVAL;
    return netio__host(s, strlen(s), 0, ss, len);
}

int netio_udp_listen(const char *listen, int64_t rcvbuf, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    if (netio_parse_addr(listen, &ss, &sl) < 0) {
        snprintf(err, errlen, "bad --listen '%s' (want ADDR:PORT or [ADDR6]:PORT)", listen);
        return -1;
    }
    int fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket() failed: %s", strerror(errno));
        return -1;
    }
    int one = 1, buf = (int)(rcvbuf > 0x7fffffff ? 0x7fffffff : rcvbuf);
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    /* FORCE passes rmem_max when we are privileged; otherwise take what we may. */
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &buf, sizeof buf) < 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
    setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_RXQ_OVFL, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&ss, sl) < 0) {
        snprintf(err, errlen, "bind() to %s failed: %s", listen, strerror(errno));
        close(fd);
        return -1;
    }
    int got = 0;
    socklen_t gl = sizeof got;
    getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &got, &gl);
    if (got < buf)
        log_warn("socket receive buffer is %d bytes, asked for %d (raise net.core.rmem_max)", got, buf);
    return fd;
}

/* A datagram's kernel timestamp (0 when absent) and the socket's
 * cumulative drop count (unchanged when the message has none). */
static void netio__rx_meta(struct msghdr *m, int64_t *ts_ns, uint32_t *ovfl)
{
    *ts_ns = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(m); c; c = CMSG_NXTHDR(m, c)) {
        if (c->cmsg_level != SOL_SOCKET) continue;
        if (c->cmsg_type == SO_TIMESTAMPNS) {
            struct timespec tv;
            memcpy(&tv, CMSG_DATA(c), sizeof tv);
            *ts_ns = (int64_t)tv.tv_sec * 1000000000LL + tv.tv_nsec;
        } else if (c->cmsg_type == SO_RXQ_OVFL) {
            memcpy(ovfl, CMSG_DATA(c), sizeof *ovfl);
        }
    }
}

/* A socket address's IP as 16 bytes (IPv4 mapped). */
static void netio__addr16(const struct sockaddr_storage *ss, uint8_t out[16])
{
    if (ss->ss_family == AF_INET)
        decode_map4((const uint8_t *)&((const struct sockaddr_in *)ss)->sin_addr, out);
    else
        memcpy(out, &((const struct sockaddr_in6 *)ss)->sin6_addr, 16);
}

struct netio_vxrx {
    int fd;
    uint32_t last_ovfl;
    struct mmsghdr msgs[NETIO_VX_BATCH];
    struct iovec iov[NETIO_VX_BATCH];
    struct sockaddr_storage from[NETIO_VX_BATCH];
    char ctrl[NETIO_VX_BATCH][128];
    uint8_t *bufs;
};

netio_vxrx_t *netio_vxrx_new(int fd)
{
    netio_vxrx_t *r = xcalloc(1, sizeof *r);
    r->fd = fd;
    r->bufs = xmalloc((size_t)NETIO_VX_BATCH * NETIO_VX_SLOT);
    for (int i = 0; i < NETIO_VX_BATCH; i++) {
        r->iov[i].iov_base = r->bufs + (size_t)i * NETIO_VX_SLOT;
        r->iov[i].iov_len = NETIO_VX_SLOT;
    }
    return r;
}

void netio_vxrx_free(netio_vxrx_t *r)
{
    if (!r) return;
    free(r->bufs);
    free(r);
}

int netio_vxrx_recv(netio_vxrx_t *r, int64_t ts_offset_ns, netio_vxpkt *out, int *nout,
                    netio_vxcount *c)
{
    memset(c, 0, sizeof *c);
    *nout = 0;
    for (int i = 0; i < NETIO_VX_BATCH; i++) {
        struct msghdr *m = &r->msgs[i].msg_hdr;
        m->msg_iov = &r->iov[i];
        m->msg_iovlen = 1;
        m->msg_name = &r->from[i];
        m->msg_namelen = sizeof r->from[i];
        m->msg_control = r->ctrl[i];
        m->msg_controllen = sizeof r->ctrl[i];
        m->msg_flags = 0;
    }
    int n = recvmmsg(r->fd, r->msgs, NETIO_VX_BATCH, MSG_DONTWAIT, NULL);
    if (n < 0) return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0 : -errno;
    int64_t fallback = 0;
    for (int i = 0; i < n; i++) {
        struct msghdr *m = &r->msgs[i].msg_hdr;
        uint32_t len = r->msgs[i].msg_len, cap = len;
        int64_t ts;
        uint32_t ov = r->last_ovfl;
        netio__rx_meta(m, &ts, &ov);
        c->kernel_drops += ov - r->last_ovfl;
        r->last_ovfl = ov;
        if (ts) {
            ts += ts_offset_ns;
        } else {
            if (!fallback) fallback = timeparse_now_ns();
            ts = fallback;
        }
        c->rx_packets++;
        c->rx_bytes += len;
        if ((m->msg_flags & MSG_TRUNC) || len > NETIO_VX_SLOT) {
            cap = NETIO_VX_SLOT;
            c->truncated++;
        }
        uint32_t vni;
        int rc = decode_vxlan(r->iov[i].iov_base, cap, &vni);
        if (rc != VX_OK) {
            c->not_decapsulated[rc]++;
            continue;
        }
        netio_vxpkt *p = &out[(*nout)++];
        p->frame = (uint8_t *)r->iov[i].iov_base + DECODE_VXLAN_HDR;
        p->caplen = cap - DECODE_VXLAN_HDR;
        p->origlen = len - DECODE_VXLAN_HDR;
        p->vni = vni;
        p->ts_ns = ts;
        netio__addr16(&r->from[i], p->observer);
    }
    return n;
}

pcap_t *netio_open_live(const char *iface, const char *capture_filter, char *err, size_t errlen)
{
    char perr[PCAP_ERRBUF_SIZE];
    pcap_t *pc = pcap_create(iface, perr);
    if (!pc) {
        snprintf(err, errlen, "pcap_create(%s) failed: %s", iface, perr);
        return NULL;
    }
    pcap_set_snaplen(pc, (int)PCAPIO_SNAPLEN);
    pcap_set_promisc(pc, 1);
    pcap_set_timeout(pc, 100);
    pcap_set_buffer_size(pc, 64 << 20);
    pcap_set_tstamp_precision(pc, PCAP_TSTAMP_PRECISION_NANO);
    int rc = pcap_activate(pc);
    if (rc < 0) {
        snprintf(err, errlen, "cannot capture on %s: %s", iface, pcap_geterr(pc));
        goto fail;
    }
    if (pcap_datalink(pc) != DLT_EN10MB) {
        snprintf(err, errlen, "%s: link type %d is not Ethernet", iface, pcap_datalink(pc));
        goto fail;
    }
    if (capture_filter && *capture_filter) {
        struct bpf_program prog;
        if (pcap_compile(pc, &prog, capture_filter, 1, PCAP_NETMASK_UNKNOWN) < 0) {
            snprintf(err, errlen, "bad capture filter '%s': %s", capture_filter, pcap_geterr(pc));
            goto fail;
        }
        rc = pcap_setfilter(pc, &prog);
        pcap_freecode(&prog);
        if (rc < 0) {
            snprintf(err, errlen, "cannot set capture filter '%s': %s", capture_filter,
                     pcap_geterr(pc));
            goto fail;
        }
    }
    return pc;
fail:
    pcap_close(pc);
    return NULL;
}
