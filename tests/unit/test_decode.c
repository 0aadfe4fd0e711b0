/* test_decode.c - the decoders on hand-built frames, every malformed case
 * the store must keep and count, and VXLAN decapsulation. */
#include "decode.h"
#include "flowkey.h"
#include "test.h"

/* Builds Ethernet/IPv4/TCP frames to vary one field at a time. */
static size_t ipv4_tcp(uint8_t *f, int ihl_words, uint16_t totlen_adj, int tcp_bytes)
{
    memset(f, 0, 256);
    f[12] = 0x08; f[13] = 0x00;
    uint8_t *ip = f + 14;
    ip[0] = (uint8_t)(0x40 | ihl_words);
    int ihl = ihl_words * 4 < 20 ? 20 : ihl_words * 4;
    uint16_t tot = (uint16_t)(ihl + tcp_bytes + totlen_adj);
    ip[2] = (uint8_t)(tot >> 8); ip[3] = (uint8_t)tot;
    ip[8] = 64; ip[9] = 6;
    ip[12] = 10; ip[13] = 0; ip[14] = 1; ip[15] = 1;
    ip[16] = 10; ip[17] = 0; ip[18] = 2; ip[19] = 2;
    uint8_t *t = ip + ihl;
    t[0] = 0xc3; t[1] = 0x50; /* 50000 */
    t[2] = 0x01; t[3] = 0xbb; /* 443 */
    t[12] = 0x50; t[13] = TCP_SYN | TCP_ACK;
    return (size_t)(14 + ihl + tcp_bytes);
}

static void test_clean_tcp(void)
{
    uint8_t f[256];
    size_t n = ipv4_tcp(f, 5, 0, 20);
    pkt_info_t pi;
    ASSERT_EQ(decode_frame(f, (uint32_t)n, (uint32_t)n, &pi), DEC_OK);
    ASSERT_EQ(pi.l3, PKT_L3_IPV4);
    ASSERT_EQ(pi.proto, 6);
    ASSERT_EQ(pi.sport, 50000);
    ASSERT_EQ(pi.dport, 443);
    ASSERT_EQ(pi.tcp_flags, TCP_SYN | TCP_ACK);
    ASSERT_EQ(pi.payload_len, 0);
    flowkey_t k;
    flowkey_from_pkt(&k, &pi, 7, NULL);
    ASSERT_EQ(k.kind, FK_IPV4);
    ASSERT_EQ(k.vni, 7);
    ASSERT_EQ(k.src[15], 1);
    ASSERT_EQ(k.dst[15], 2);
}

static void test_ipv4_options(void)
{
    uint8_t f[256];
    size_t n = ipv4_tcp(f, 7, 0, 20); /* 8 bytes of options */
    pkt_info_t pi;
    ASSERT_EQ(decode_frame(f, (uint32_t)n, (uint32_t)n, &pi), DEC_OK);
    ASSERT_EQ(pi.l4_off, 14 + 28);
    ASSERT_EQ(pi.dport, 443);
}

static void test_malformed_kept_and_named(void)
{
    uint8_t f[256];
    pkt_info_t pi;
    flowkey_t k;
    size_t n = ipv4_tcp(f, 5, 0, 20);
    /* truncated TCP header: 10 of 20 bytes captured (the wire had them all) */
    ASSERT_EQ(decode_frame(f, (uint32_t)(n - 10), (uint32_t)n, &pi), DEC_TCP_SHORT);
    ASSERT_EQ(pi.dport, 443); /* ports were there and are kept */
    flowkey_from_pkt(&k, &pi, 0, NULL);
    ASSERT_EQ(k.kind, FK_ODD);
    /* IHL < 5 */
    n = ipv4_tcp(f, 4, 0, 20);
    ASSERT_EQ(decode_frame(f, (uint32_t)n, (uint32_t)n, &pi), DEC_IPV4_BAD_IHL);
    /* total length beyond the frame */
    n = ipv4_tcp(f, 5, 100, 20);
    ASSERT_EQ(decode_frame(f, (uint32_t)n, (uint32_t)n, &pi), DEC_IPV4_BAD_TOTLEN);
    /* ... but not when the frame was sliced by a snaplen: origlen covers it */
    ASSERT_EQ(decode_frame(f, (uint32_t)n, (uint32_t)n + 100, &pi), DEC_OK);
    /* bad version */
    n = ipv4_tcp(f, 5, 0, 20);
    f[14] = 0x65;
    ASSERT_EQ(decode_frame(f, (uint32_t)n, (uint32_t)n, &pi), DEC_IPV4_BAD_VERSION);
    /* TCP data offset < 5 */
    n = ipv4_tcp(f, 5, 0, 20);
    f[14 + 20 + 12] = 0x40;
    ASSERT_EQ(decode_frame(f, (uint32_t)n, (uint32_t)n, &pi), DEC_TCP_BAD_OFF);
    /* shorter than Ethernet */
    ASSERT_EQ(decode_frame(f, 10, 10, &pi), DEC_ETH_SHORT);
    /* IPv4 header cut */
    ASSERT_EQ(decode_frame(f, 20, 20, &pi), DEC_IPV4_SHORT);
}

static void test_udp_bad_length(void)
{
    uint8_t f[128];
    memset(f, 0, sizeof f);
    f[12] = 0x08;
    uint8_t *ip = f + 14;
    ip[0] = 0x45; ip[3] = 20 + 8 + 4; ip[9] = 17;
    uint8_t *u = ip + 20;
    u[0] = 0x30; u[1] = 0x39; u[2] = 0; u[3] = 53;
    u[5] = 200; /* UDP length 200 > 12 bytes of IP payload */
    pkt_info_t pi;
    ASSERT_EQ(decode_frame(f, 14 + 32, 14 + 32, &pi), DEC_UDP_BAD_LEN);
    ASSERT_EQ(pi.dport, 53);
    u[5] = 12;
    ASSERT_EQ(decode_frame(f, 14 + 32, 14 + 32, &pi), DEC_OK);
    ASSERT_EQ(pi.payload_len, 4);
}

static void test_vlan_qinq(void)
{
    uint8_t f[128];
    memset(f, 0, sizeof f);
    f[12] = 0x88; f[13] = 0xa8; /* 802.1ad */
    f[16] = 0x81; f[17] = 0x00; /* 802.1Q */
    f[20] = 0x08; f[21] = 0x00;
    uint8_t *ip = f + 22;
    ip[0] = 0x45; ip[3] = 28; ip[9] = 1;
    pkt_info_t pi;
    ASSERT_EQ(decode_frame(f, 22 + 28, 22 + 28, &pi), DEC_OK);
    ASSERT_EQ(pi.vlans, 2);
    ASSERT_EQ(pi.proto, 1);
    flowkey_t k;
    flowkey_from_pkt(&k, &pi, 0, NULL);
    ASSERT_EQ(k.kind, FK_IPV4); /* indexed, with its tag count (exprscan shifts by it) */
    ASSERT_EQ(k.vlans, 2);
    ASSERT_EQ(decode_frame(f, 18, 18, &pi), DEC_VLAN_SHORT);
}

static void test_ipv4_fragments(void)
{
    uint8_t f[256];
    pkt_info_t pi;
    size_t n = ipv4_tcp(f, 5, 0, 20);
    f[14 + 6] = 0x20; /* MF: first fragment */
    ASSERT_EQ(decode_frame(f, (uint32_t)n, (uint32_t)n, &pi), DEC_OK);
    ASSERT_TRUE(pi.flags & PKT_F_FRAG);
    ASSERT_TRUE(!(pi.flags & PKT_F_FRAG_LATER));
    ASSERT_EQ(pi.dport, 443);
    f[14 + 7] = 0x10; /* offset 16*8: a later fragment, no TCP header */
    ASSERT_EQ(decode_frame(f, (uint32_t)n, (uint32_t)n, &pi), DEC_OK);
    ASSERT_TRUE(pi.flags & PKT_F_FRAG_LATER);
    ASSERT_EQ(pi.dport, 0);
}

static void test_ipv6_ext_headers(void)
{
    uint8_t f[256];
    memset(f, 0, sizeof f);
    f[12] = 0x86; f[13] = 0xdd;
    uint8_t *ip = f + 14;
    ip[0] = 0x60;
    ip[5] = 8 + 8 + 8; /* hop-by-hop + dest opts + UDP */
    ip[6] = 0;         /* hop-by-hop */
    ip[8] = 0x20; ip[9] = 0x01; ip[10] = 0x0d; ip[11] = 0xb8; ip[23] = 1;
    ip[24] = 0x20; ip[25] = 0x01; ip[26] = 0x0d; ip[27] = 0xb8; ip[39] = 2;
    uint8_t *x = ip + 40;
    x[0] = 60; x[1] = 0;   /* next: dest opts, 8 bytes */
    x[8] = 17; x[9] = 0;   /* next: UDP */
    uint8_t *u = x + 16;
    u[1] = 99; u[3] = 53; u[5] = 8;
    size_t n = 14 + 40 + 24;
    pkt_info_t pi;
    ASSERT_EQ(decode_frame(f, (uint32_t)n, (uint32_t)n, &pi), DEC_OK);
    ASSERT_EQ(pi.l3, PKT_L3_IPV6);
    ASSERT_EQ(pi.proto, 17);
    ASSERT_EQ(pi.dport, 53);
    ASSERT_TRUE(pi.flags & PKT_F_IP6_EXT);
    /* cut inside the second extension header */
    ASSERT_EQ(decode_frame(f, 14 + 40 + 12, (uint32_t)n, &pi), DEC_IPV6_EXT_SHORT);
    /* payload length larger than the frame */
    ip[5] = 200;
    ASSERT_EQ(decode_frame(f, (uint32_t)n, (uint32_t)n, &pi), DEC_IPV6_BAD_PLEN);
}

static void test_icmp(void)
{
    uint8_t f[128];
    memset(f, 0, sizeof f);
    f[12] = 0x08;
    uint8_t *ip = f + 14;
    ip[0] = 0x45; ip[3] = 20 + 8; ip[9] = 1;
    ip[20] = 8; /* echo request */
    pkt_info_t pi;
    ASSERT_EQ(decode_frame(f, 14 + 28, 14 + 28, &pi), DEC_OK);
    ASSERT_EQ(pi.icmp_type, 8);
    ASSERT_EQ(decode_frame(f, 14 + 22, 14 + 28, &pi), DEC_ICMP_SHORT);
}

static void test_vxlan(void)
{
    uint8_t v[64];
    uint32_t vni = 0;
    memset(v, 0, sizeof v);
    v[0] = 0x08; v[4] = 0x00; v[5] = 0x01; v[6] = 0x02;
    ASSERT_EQ(decode_vxlan(v, sizeof v, &vni), VX_OK);
    ASSERT_EQ(vni, 0x102);
    ASSERT_EQ(decode_vxlan(v, 4, &vni), VX_HDR_SHORT);
    ASSERT_EQ(decode_vxlan(v, 12, &vni), VX_OK); /* a short inner frame is kept */
    v[0] = 0;
    ASSERT_EQ(decode_vxlan(v, sizeof v, &vni), VX_NO_I_FLAG);
}

static void test_outer_vxlan(void)
{
    uint8_t f[256];
    memset(f, 0, sizeof f);
    f[12] = 0x08;
    uint8_t *ip = f + 14;
    ip[0] = 0x45; ip[9] = 17;
    ip[12] = 10; ip[13] = 99; ip[14] = 0; ip[15] = 5;
    uint8_t *u = ip + 20;
    u[2] = 0x12; u[3] = 0xb5; /* 4789 */
    uint8_t *vx = u + 8;
    vx[0] = 0x08; vx[6] = 7;
    size_t inner = 14 + 20 + 8 + 8;
    size_t n = inner + 60;
    ip[3] = (uint8_t)(n - 14); ip[2] = (uint8_t)((n - 14) >> 8);
    u[5] = (uint8_t)(n - 34);
    uint32_t off, vni;
    uint8_t obs[16];
    ASSERT_EQ(decode_outer_vxlan(f, (uint32_t)n, (uint32_t)n, 4789, &off, &vni, obs), VX_OK);
    ASSERT_EQ(off, inner);
    ASSERT_EQ(vni, 7);
    ASSERT_EQ(obs[13], 99);
    ASSERT_EQ(decode_outer_vxlan(f, (uint32_t)n, (uint32_t)n, 8472, &off, &vni, obs), VX_NOT_VXLAN_PORT);
    /* a capture cut inside the outer headers */
    ASSERT_EQ(decode_outer_vxlan(f, 14 + 20 + 4, 14 + 20 + 4, 4789, &off, &vni, obs), VX_FRAME_SHORT);
    /* a capture sliced by a snaplen inside the inner frame still decapsulates */
    ASSERT_EQ(decode_outer_vxlan(f, (uint32_t)inner + 20, (uint32_t)n, 4789, &off, &vni, obs), VX_OK);
    /* a whole datagram whose UDP payload is only 4 bytes */
    ip[3] = 20 + 8 + 4; ip[2] = 0; u[5] = 12;
    ASSERT_EQ(decode_outer_vxlan(f, 14 + 20 + 8 + 4, 14 + 20 + 8 + 4, 4789, &off, &vni, obs), VX_HDR_SHORT);
    ip[3] = (uint8_t)(n - 14); u[5] = (uint8_t)(n - 34);
    ip[9] = 6;
    ASSERT_EQ(decode_outer_vxlan(f, (uint32_t)n, (uint32_t)n, 4789, &off, &vni, obs), VX_NOT_UDP);
    f[12] = 0x08; f[13] = 0x06; /* ARP */
    ASSERT_EQ(decode_outer_vxlan(f, (uint32_t)n, (uint32_t)n, 4789, &off, &vni, obs), VX_NOT_IP);
    ASSERT_EQ(decode_outer_vxlan(f, 8, 8, 4789, &off, &vni, obs), VX_FRAME_SHORT);
}

static void test_reason_names(void)
{
    ASSERT_STREQ(decode_reason_name(DEC_TCP_SHORT), "tcp_short");
    ASSERT_STREQ(vxlan_reason_name(VX_NO_I_FLAG), "vxlan_no_i_flag");
    for (int i = 0; i < DEC__COUNT; i++) ASSERT_TRUE(strcmp(decode_reason_name(i), "unknown"));
    for (int i = 0; i < VX__COUNT; i++) ASSERT_TRUE(strcmp(vxlan_reason_name(i), "unknown"));
}

int main(void)
{
    RUN(test_clean_tcp);
    RUN(test_ipv4_options);
    RUN(test_malformed_kept_and_named);
    RUN(test_udp_bad_length);
    RUN(test_vlan_qinq);
    RUN(test_ipv4_fragments);
    RUN(test_ipv6_ext_headers);
    RUN(test_icmp);
    RUN(test_vxlan);
    RUN(test_outer_vxlan);
    RUN(test_reason_names);
    TEST_EXIT();
}
