/* netio.h - socket and capture set-up shared by the daemons: address
 * parsing, a batched UDP receive socket, the metadata of a received
 * datagram, and a live libpcap capture. Used by the recorder's ingest and the
 * broker's input and outputs, so both read "ADDR:PORT" and count kernel drops
 * the same way.
 */
#ifndef MSCOPE_NETIO_H
#define MSCOPE_NETIO_H

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

/* Read the metadata of one datagram received with the options above: its
 * kernel timestamp (0 when absent) and the socket's cumulative drop count
 * (left unchanged when the message has none). */
void netio_rx_meta(struct msghdr *m, int64_t *ts_ns, uint32_t *ovfl);

/* Store a socket address's IP as 16 bytes (IPv4 mapped). */
void netio_addr16(const struct sockaddr_storage *ss, uint8_t out[16]);

/* Open a live capture on iface: promiscuous, full snaplen, nanosecond
 * timestamps, 64 MiB buffer, Ethernet only, with an optional tcpdump
 * capture filter. Returns NULL with libpcap's message in err. */
pcap_t *netio_open_live(const char *iface, const char *capture_filter, char *err, size_t errlen);

#endif
