/* decode.c - per-layer packet decoders (see decode.h).
 *
 * DESIGN: one function per layer, all of the same shape (Suricata's
 * decode-*.c): check the bytes are there, read the header, hand the rest to
 * the next layer. The first anomaly is remembered in pi->reason and decoding
 * stops there, because what follows a broken header cannot be trusted. Bad
 * checksums are never looked at: Traffic Mirroring copies packets before the
 * NIC fills checksums in, so "wrong" checksums are normal.
 */
#include "decode.h"

#include <string.h>

#define ETH_HDR 14
#define ETHERTYPE_IPV4 0x0800
#define ETHERTYPE_IPV6 0x86dd
#define ETHERTYPE_VLAN 0x8100
#define ETHERTYPE_QINQ 0x88a8
#define ETHERTYPE_QINQ_OLD 0x9100

static inline uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static inline uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

void decode_map4(const uint8_t v4[4], uint8_t out[16])
{
    memset(out, 0, 10);
    out[10] = 0xff;
    out[11] = 0xff;
    memcpy(out + 12, v4, 4);
}

static int decode__fail(pkt_info_t *pi, int reason)
{
    if (!pi->reason) pi->reason = (uint8_t)reason;
    return pi->reason;
}

/* end = one past the last byte that belongs to this IP datagram and was
 * captured; wire_end = where the datagram ends by its IP header. Payload
 * lengths are the wire's (as tshark's tcp.len), so a capture sliced by a
 * snaplen or Traffic Mirroring's packet_length still counts every byte. */
static int decode__tcp(const uint8_t *p, uint32_t off, uint32_t end, uint32_t wire_end,
                       pkt_info_t *pi)
{
    pi->l4_off = off;
    if (end < off + 20) {
        /* Ports may still be there: keep them, the header is still short. */
        if (end >= off + 4) {
            pi->sport = rd16(p + off);
            pi->dport = rd16(p + off + 2);
        }
        return decode__fail(pi, DEC_TCP_SHORT);
    }
    const uint8_t *t = p + off;
    pi->sport = rd16(t);
    pi->dport = rd16(t + 2);
    pi->tcp_seq = rd32(t + 4);
    pi->tcp_ack = rd32(t + 8);
    pi->tcp_flags = t[13] & 0x3f;
    pi->tcp_win = rd16(t + 14);
    pi->flags |= PKT_F_L4;
    uint32_t doff = (uint32_t)(t[12] >> 4) * 4;
    if (doff < 20 || off + doff > wire_end) return decode__fail(pi, DEC_TCP_BAD_OFF);
    pi->payload_off = off + doff;
    pi->payload_len = wire_end - (off + doff);
    if (off + doff > end) return decode__fail(pi, DEC_TCP_SHORT); /* options cut by the capture */
    if (pi->tcp_flags & TCP_SYN) {
        /* Only a SYN carries the window scale (RFC 7323); walk its options. */
        for (uint32_t o = 20; o < doff;) {
            uint8_t kind = t[o];
            if (kind == 0) break;
            if (kind == 1) {
                o++;
                continue;
            }
            if (o + 1 >= doff || t[o + 1] < 2 || o + t[o + 1] > doff) break;
            if (kind == 3 && t[o + 1] == 3) pi->tcp_wscale = (int8_t)(t[o + 2] > 14 ? 14 : t[o + 2]);
            o += t[o + 1];
        }
    }
    return DEC_OK;
}

static int decode__udp(const uint8_t *p, uint32_t off, uint32_t end, uint32_t ip_payload,
                       pkt_info_t *pi)
{
    pi->l4_off = off;
    if (end < off + 8) {
        if (end >= off + 4) {
            pi->sport = rd16(p + off);
            pi->dport = rd16(p + off + 2);
        }
        return decode__fail(pi, DEC_UDP_SHORT);
    }
    pi->sport = rd16(p + off);
    pi->dport = rd16(p + off + 2);
    pi->flags |= PKT_F_L4;
    uint32_t ulen = rd16(p + off + 4);
    if (ulen < 8 || ulen > ip_payload) return decode__fail(pi, DEC_UDP_BAD_LEN);
    pi->payload_off = off + 8;
    pi->payload_len = ulen - 8;
    return DEC_OK;
}

static int decode__icmp(const uint8_t *p, uint32_t off, uint32_t end, uint32_t wire_end,
                        pkt_info_t *pi)
{
    pi->l4_off = off;
    if (end < off + 4) return decode__fail(pi, DEC_ICMP_SHORT);
    pi->icmp_type = p[off];
    pi->icmp_code = p[off + 1];
    pi->flags |= PKT_F_L4;
    pi->payload_off = off + 4;
    pi->payload_len = wire_end > off + 4 ? wire_end - (off + 4) : 0;
    return DEC_OK;
}

static int decode__l4(const uint8_t *p, uint32_t off, uint32_t end, uint32_t wire_end,
                      pkt_info_t *pi)
{
    if (pi->flags & PKT_F_FRAG_LATER) return DEC_OK; /* no transport header here */
    switch (pi->proto) {
    case 6: return decode__tcp(p, off, end, wire_end, pi);
    case 17: return decode__udp(p, off, end, wire_end - off, pi);
    case 1:
    case 58: return decode__icmp(p, off, end, wire_end, pi);
    default:
        pi->l4_off = off;
        return DEC_OK;
    }
}

static int decode__ipv4(const uint8_t *p, uint32_t off, uint32_t caplen, uint32_t origlen,
                        pkt_info_t *pi)
{
    pi->l3 = PKT_L3_IPV4;
    pi->l3_off = off;
    if (caplen < off + 20) return decode__fail(pi, DEC_IPV4_SHORT);
    const uint8_t *ip = p + off;
    decode_map4(ip + 12, pi->src);
    decode_map4(ip + 16, pi->dst);
    pi->proto = ip[9];
    if ((ip[0] >> 4) != 4) return decode__fail(pi, DEC_IPV4_BAD_VERSION);
    uint32_t ihl = (uint32_t)(ip[0] & 0x0f) * 4;
    if (ihl < 20) return decode__fail(pi, DEC_IPV4_BAD_IHL);
    uint16_t fragw = rd16(ip + 6);
    if (fragw & 0x3fff) {
        pi->flags |= PKT_F_FRAG;
        if (fragw & 0x1fff) pi->flags |= PKT_F_FRAG_LATER;
    }
    uint32_t totlen = rd16(ip + 2);
    pi->ip_len = totlen;
    if (totlen < ihl || off + totlen > origlen) return decode__fail(pi, DEC_IPV4_BAD_TOTLEN);
    if (caplen < off + ihl) return decode__fail(pi, DEC_IPV4_SHORT);
    uint32_t end = off + totlen < caplen ? off + totlen : caplen;
    return decode__l4(p, off + ihl, end, off + totlen, pi);
}

static int decode__ipv6(const uint8_t *p, uint32_t off, uint32_t caplen, uint32_t origlen,
                        pkt_info_t *pi)
{
    pi->l3 = PKT_L3_IPV6;
    pi->l3_off = off;
    if (caplen < off + 40) return decode__fail(pi, DEC_IPV6_SHORT);
    const uint8_t *ip = p + off;
    memcpy(pi->src, ip + 8, 16);
    memcpy(pi->dst, ip + 24, 16);
    uint8_t nh = ip[6];
    pi->proto = nh;
    if ((ip[0] >> 4) != 6) return decode__fail(pi, DEC_IPV6_BAD_VERSION);
    uint32_t plen = rd16(ip + 4);
    pi->ip_len = plen + 40;
    if (off + 40 + plen > origlen) return decode__fail(pi, DEC_IPV6_BAD_PLEN);
    uint32_t end = off + 40 + plen < caplen ? off + 40 + plen : caplen;
    uint32_t cur = off + 40;
    /* Walk extension headers: hop-by-hop, routing, fragment, destination
     * options, AH. Bounded by the datagram, so a loop of headers cannot spin. */
    for (;;) {
        if (nh == 0 || nh == 43 || nh == 60 || nh == 51 || nh == 135) {
            if (end < cur + 8) return decode__fail(pi, DEC_IPV6_EXT_SHORT);
            uint32_t hl = nh == 51 ? ((uint32_t)p[cur + 1] + 2) * 4 : ((uint32_t)p[cur + 1] + 1) * 8;
            pi->flags |= PKT_F_IP6_EXT;
            nh = p[cur];
            cur += hl;
            if (cur > end) return decode__fail(pi, DEC_IPV6_EXT_SHORT);
        } else if (nh == 44) {
            if (end < cur + 8) return decode__fail(pi, DEC_IPV6_EXT_SHORT);
            pi->flags |= PKT_F_IP6_EXT | PKT_F_FRAG;
            if (rd16(p + cur + 2) & 0xfff8) pi->flags |= PKT_F_FRAG_LATER;
            nh = p[cur];
            cur += 8;
        } else {
            break;
        }
    }
    pi->proto = nh;
    return decode__l4(p, cur, end, off + 40 + plen, pi);
}

int decode_frame(const uint8_t *p, uint32_t caplen, uint32_t origlen, pkt_info_t *pi)
{
    memset(pi, 0, sizeof *pi);
    pi->tcp_wscale = -1;
    if (origlen < caplen) origlen = caplen;
    if (caplen < ETH_HDR) return decode__fail(pi, DEC_ETH_SHORT);
    uint32_t off = 12;
    uint16_t et = rd16(p + off);
    while (et == ETHERTYPE_VLAN || et == ETHERTYPE_QINQ || et == ETHERTYPE_QINQ_OLD) {
        if (caplen < off + 6) {
            pi->ethertype = et;
            return decode__fail(pi, DEC_VLAN_SHORT);
        }
        pi->vlans++;
        off += 4;
        et = rd16(p + off);
    }
    pi->ethertype = et;
    off += 2;
    if (et == ETHERTYPE_IPV4) return decode__ipv4(p, off, caplen, origlen, pi);
    if (et == ETHERTYPE_IPV6) return decode__ipv6(p, off, caplen, origlen, pi);
    pi->l3 = PKT_L3_OTHER;
    pi->l3_off = off;
    return DEC_OK;
}

int decode_vxlan(const uint8_t *p, uint32_t len, uint32_t *vni)
{
    if (len < DECODE_VXLAN_HDR) return VX_HDR_SHORT;
    if (!(p[0] & 0x08)) return VX_NO_I_FLAG;
    *vni = (uint32_t)p[4] << 16 | (uint32_t)p[5] << 8 | p[6];
    return VX_OK;
}

int decode_outer_vxlan(const uint8_t *p, uint32_t caplen, uint32_t origlen, uint16_t vxlan_port,
                       uint32_t *inner_off, uint32_t *vni, uint8_t outer_src[16])
{
    pkt_info_t pi;
    decode_frame(p, caplen, origlen, &pi);
    if (pi.l3 != PKT_L3_IPV4 && pi.l3 != PKT_L3_IPV6) {
        return pi.reason == DEC_ETH_SHORT || pi.reason == DEC_VLAN_SHORT ? VX_FRAME_SHORT
                                                                          : VX_NOT_IP;
    }
    if (pi.reason == DEC_IPV4_SHORT || pi.reason == DEC_IPV6_SHORT ||
        pi.reason == DEC_IPV6_EXT_SHORT)
        return VX_FRAME_SHORT;
    if (pi.proto != 17) return VX_NOT_UDP;
    if (pi.flags & PKT_F_FRAG) return VX_OUTER_FRAGMENT;
    if (!(pi.flags & PKT_F_L4)) return VX_FRAME_SHORT;
    if (pi.dport != vxlan_port) return VX_NOT_VXLAN_PORT;
    uint32_t off = pi.l4_off + 8;
    if (off > caplen) return VX_FRAME_SHORT;
    int rc = decode_vxlan(p + off, caplen - off, vni);
    if (rc != VX_OK) return rc;
    memcpy(outer_src, pi.src, 16);
    *inner_off = off + DECODE_VXLAN_HDR;
    return VX_OK;
}

const char *decode_reason_name(int reason)
{
    static const char *names[DEC__COUNT] = {
        "ok", "eth_short", "vlan_short", "ipv4_short", "ipv4_bad_version", "ipv4_bad_ihl",
        "ipv4_bad_totlen", "ipv6_short", "ipv6_bad_version", "ipv6_bad_plen",
        "ipv6_ext_short", "tcp_short", "tcp_bad_offset", "udp_short", "udp_bad_length",
        "icmp_short",
    };
    return reason >= 0 && reason < DEC__COUNT ? names[reason] : "unknown";
}

const char *vxlan_reason_name(int reason)
{
    static const char *names[VX__COUNT] = {
        "ok", "frame_short", "not_ip", "not_udp", "outer_fragment", "not_vxlan_port",
        "vxlan_short", "vxlan_no_i_flag",
    };
    return reason >= 0 && reason < VX__COUNT ? names[reason] : "unknown";
}
