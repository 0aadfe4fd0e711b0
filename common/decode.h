/* decode.h - packet decoders: Ethernet, 802.1Q/802.1ad, IPv4, IPv6 (extension
 * headers), TCP, UDP, ICMP/ICMPv6, and VXLAN decapsulation.
 *
 * Every layer is checked against the captured length before it is read.
 * Decoding never fails a frame: a malformed inner packet is still stored and
 * searched exactly as captured; decode only reports the first anomaly (a
 * decode_reason) so callers can count it. Only VXLAN decapsulation can reject
 * a message, because without a valid header there is no inner frame to keep.
 */
#ifndef MSCOPE_DECODE_H
#define MSCOPE_DECODE_H

#include <stddef.h>
#include <stdint.h>

#define DECODE_VXLAN_PORT 4789
#define DECODE_VXLAN_HDR 8

/* Anomalies in an inner frame. The frame is kept; the reason is counted. */
enum decode_reason {
    DEC_OK = 0,
    DEC_ETH_SHORT,        /* frame shorter than an Ethernet header */
    DEC_VLAN_SHORT,       /* VLAN tag cut off */
    DEC_IPV4_SHORT,       /* IPv4 header cut off */
    DEC_IPV4_BAD_VERSION, /* ethertype IPv4 but version != 4 */
    DEC_IPV4_BAD_IHL,     /* IHL < 5 */
    DEC_IPV4_BAD_TOTLEN,  /* total length < header or > frame */
    DEC_IPV6_SHORT,       /* IPv6 header cut off */
    DEC_IPV6_BAD_VERSION, /* ethertype IPv6 but version != 6 */
    DEC_IPV6_BAD_PLEN,    /* payload length > frame */
    DEC_IPV6_EXT_SHORT,   /* an extension header cut off */
    DEC_TCP_SHORT,        /* TCP header cut off */
    DEC_TCP_BAD_OFF,      /* data offset < 5 or beyond the segment */
    DEC_UDP_SHORT,        /* UDP header cut off */
    DEC_UDP_BAD_LEN,      /* UDP length < 8 or > IP payload */
    DEC_ICMP_SHORT,       /* ICMP header cut off */
    DEC__COUNT
};

/* Why a message could not be decapsulated (it is dropped and counted). */
enum vxlan_reason {
    VX_OK = 0,
    VX_FRAME_SHORT,    /* outer frame cut before UDP payload */
    VX_NOT_IP,         /* outer frame is not IPv4/IPv6 */
    VX_NOT_UDP,        /* outer IP payload is not UDP */
    VX_OUTER_FRAGMENT, /* outer IP fragment: no whole VXLAN message */
    VX_NOT_VXLAN_PORT, /* UDP destination is not the VXLAN port */
    VX_HDR_SHORT,      /* fewer than 8 bytes of VXLAN header */
    VX_NO_I_FLAG,      /* I flag (valid VNI) clear */
    VX__COUNT
};

enum { PKT_L3_NONE = 0, PKT_L3_IPV4 = 4, PKT_L3_IPV6 = 6, PKT_L3_OTHER = 1 };

#define PKT_F_FRAG 0x01      /* an IP fragment */
#define PKT_F_FRAG_LATER 0x02 /* a fragment other than the first: no L4 header */
#define PKT_F_IP6_EXT 0x04   /* IPv6 extension headers precede the transport */
#define PKT_F_L4 0x08        /* ports / ICMP type decoded */

#define TCP_FIN 0x01
#define TCP_SYN 0x02
#define TCP_RST 0x04
#define TCP_PSH 0x08
#define TCP_ACK 0x10
#define TCP_URG 0x20

/* A decoded frame: offsets into the caller's buffer, which stays borrowed. */
typedef struct pkt_info {
    uint8_t l3;          /* PKT_L3_* */
    uint8_t vlans;       /* number of 802.1Q/802.1ad tags */
    uint8_t flags;       /* PKT_F_* */
    uint8_t reason;      /* enum decode_reason of the first anomaly */
    uint8_t proto;       /* transport protocol after extension headers */
    uint8_t tcp_flags;
    int8_t tcp_wscale;   /* window scale option of a SYN; -1 when absent */
    uint8_t icmp_type, icmp_code;
    uint16_t ethertype;  /* innermost */
    uint16_t sport, dport;
    uint16_t tcp_win;
    uint32_t tcp_seq, tcp_ack;
    uint32_t l3_off, l4_off, payload_off, payload_len;
    uint32_t ip_len;     /* IP datagram length as the header says */
    uint8_t src[16], dst[16]; /* IPv4 as ::ffff:a.b.c.d */
} pkt_info_t;

/* Decode an Ethernet frame of caplen captured bytes (origlen on the wire).
 * Always fills pi; returns the first anomaly (DEC_OK when clean). */
int decode_frame(const uint8_t *p, uint32_t caplen, uint32_t origlen, pkt_info_t *pi);

/* Check a VXLAN header at p (len bytes of UDP payload). On success stores the
 * VNI and returns VX_OK; the inner frame starts at p + 8. An inner frame too
 * short for Ethernet is still a frame: it is stored, and decode_frame()
 * names it (DEC_ETH_SHORT). */
int decode_vxlan(const uint8_t *p, uint32_t len, uint32_t *vni);

/* Decapsulate an outer Ethernet/IP/UDP/VXLAN frame as found in a capture of
 * mirrored traffic (caplen captured of origlen on the wire: a capture sliced
 * by a snaplen still yields its inner frame, sliced). On VX_OK sets *inner_off, *vni and outer_src (16 bytes,
 * IPv4 mapped). vxlan_port is the UDP destination port to accept. */
int decode_outer_vxlan(const uint8_t *p, uint32_t caplen, uint32_t origlen, uint16_t vxlan_port,
                       uint32_t *inner_off, uint32_t *vni, uint8_t outer_src[16]);

/* Short names for counters and logs ("tcp_short", "vxlan_no_i_flag", ...). */
const char *decode_reason_name(int reason);
const char *vxlan_reason_name(int reason);

/* Store an IPv4 address as an IPv4-mapped IPv6 address. */
void decode_map4(const uint8_t v4[4], uint8_t out[16]);

#endif
