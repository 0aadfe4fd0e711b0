/* netio.h - socket and capture set-up shared by the daemons: address
 * parsing, a batched UDP receive socket, the metadata of a received
 * datagram, and a live libpcap capture. Used by the recorder's ingest and the
 * broker's input and outputs, so both read "ADDR:PORT" and count kernel drops
 * the same way.
 */
#ifndef MSCOPE_NETIO_H
#define MSCOPE_NETIO_H

#include "decode.h"

#include <pcap/pcap.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Parse "ADDR:PORT", "[ADDR6]:PORT" or ":PORT" (any address) into ss.
 * Returns 0, or -EINVAL for anything else. */
int netio_parse_addr(const char *s, struct sockaddr_storage *ss, socklen_t *len);

/* Parse "ADDR" or "[ADDR6]" (no port) into ss with port 0. Returns 0 or -EINVAL. */
int netio_parse_host(const char *s, struct sockaddr_storage *ss, socklen_t *len);

/* A UDP socket bound to listen ("ADDR:PORT"), SO_REUSEPORT, with a receive
 * buffer of rcvbuf bytes (forced when privileged; a smaller one is logged),
 * nanosecond receive timestamps and SO_RXQ_OVFL drop counts. Returns the
 * descriptor, or -1 with err set. */
int netio_udp_listen(const char *listen, int64_t rcvbuf, char *err, size_t errlen);

/* ---- VXLAN over UDP, in batches -------------------------------------------
 * The one receive loop of the recorder and the broker: one recvmmsg() of up
 * to NETIO_VX_BATCH datagrams into preallocated slots of NETIO_VX_SLOT bytes,
 * each with its kernel timestamp, the socket's drop count and its sender,
 * checked as VXLAN (decode_vxlan). Nothing is allocated per datagram. */
#define NETIO_VX_BATCH 64
#define NETIO_VX_SLOT 10240u /* a 9001-byte jumbo frame plus headers */

typedef struct netio_vxpkt {
    uint8_t *frame;       /* the inner Ethernet frame, in the receiver's slot (writable) */
    uint32_t caplen, origlen;
    uint32_t vni;
    int64_t ts_ns;        /* the kernel's receive time (+ ts_offset_ns), else now */
    uint8_t observer[16]; /* the sender: the mirrored interface (IPv4 mapped) */
} netio_vxpkt;

/* What a receive saw; added to the caller's counters of the same names with
 * NETIO_VXCOUNT_ADD. */
typedef struct netio_vxcount {
    uint64_t rx_packets, rx_bytes;           /* datagrams received */
    uint64_t truncated;                      /* larger than a slot: cut */
    uint64_t kernel_drops;                   /* the socket's overflow (SO_RXQ_OVFL) */
    uint64_t not_decapsulated[VX__COUNT];    /* not VXLAN, by reason */
} netio_vxcount;

#define NETIO_VXCOUNT_ADD(dst, c)                                                   \
    do {                                                                            \
        (dst)->rx_packets += (c)->rx_packets;                                       \
        (dst)->rx_bytes += (c)->rx_bytes;                                           \
        (dst)->truncated += (c)->truncated;                                         \
        (dst)->kernel_drops += (c)->kernel_drops;                                   \
        for (int vx_ = 0; vx_ < VX__COUNT; vx_++)                                   \
            (dst)->not_decapsulated[vx_] += (c)->not_decapsulated[vx_];             \
    } while (0)

typedef struct netio_vxrx netio_vxrx_t;

/* A receiver on fd (a socket from netio_udp_listen(), not owned). */
netio_vxrx_t *netio_vxrx_new(int fd);
void netio_vxrx_free(netio_vxrx_t *r);

/* Receive what is waiting, without waiting: the valid VXLAN datagrams into
 * out[0..*n) (room for NETIO_VX_BATCH; the frames stay valid until the next
 * call), everything received counted into *c (zeroed first). ts_offset_ns
 * is added to kernel timestamps (the recorder's clock test hook). Returns
 * the number of datagrams received (0: none waiting), or -errno when the
 * socket fails. */
int netio_vxrx_recv(netio_vxrx_t *r, int64_t ts_offset_ns, netio_vxpkt *out, int *n,
                    netio_vxcount *c);

/* Open a live capture on iface: promiscuous, full snaplen, nanosecond
 * timestamps, 64 MiB buffer, Ethernet only, with an optional tcpdump
 * capture filter. Returns NULL with libpcap's message in err. */
pcap_t *netio_open_live(const char *iface, const char *capture_filter, char *err, size_t errlen);

#endif
