/*
 * pcapgen - deterministic synthetic traffic generator for Mirrorscope tests.
 *
 * Writes a classic pcap file (link type 1, Ethernet) whose every byte depends
 * only on the command-line options.  Tests regenerate their inputs instead of
 * storing binary fixtures, and benchmarks can produce multi-gigabyte files in
 * seconds.  The traffic imitates what a VPC Traffic Mirroring target sees:
 * many interleaved TCP/UDP/ICMP conversations over IPv4 and IPv6, plus the
 * awkward cases a recorder must survive (VLAN/QinQ tags, IP options, fragments,
 * IPv6 extension headers, ARP, malformed headers, snaplen-sliced frames).
 * With --vxlan every frame is wrapped the way the mirror session delivers it
 * (outer Ethernet/IPv4/UDP 4789/VXLAN), optionally with a share of messages
 * that a decapsulator must reject.  Wrapping draws no random numbers, so the
 * inner frames are exactly those of the same run without --vxlan: a test can
 * decapsulate and compare against the plain file.
 *
 * Output goes through one large buffer written with write(2) in big chunks and
 * nothing is allocated per packet, so --bytes 2500000000 takes seconds.
 */
#ifndef _GNU_SOURCE
#endif

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PCAP_MAGIC_USEC 0xa1b2c3d4u
#define PCAP_MAGIC_NSEC 0xa1b23c4du
#define PCAP_SNAPLEN 262144u
#define LINKTYPE_ETHERNET 1u

#define VXLAN_PORT 4789u
#define OUTER_LEN (14u + 20u + 8u + 8u) /* Ethernet + IPv4 + UDP + VXLAN */
#define HEADROOM 64u                    /* room to prepend the outer headers */
#define FRAME_MAX 2048u                 /* largest frame we ever build */
#define OUTBUF_SIZE (8u << 20)          /* write(2) granularity */
#define REC_HDR_LEN 16u

#define ETH_IPV4 0x0800u
#define ETH_IPV6 0x86ddu
#define ETH_ARP 0x0806u
#define ETH_VLAN 0x8100u
#define ETH_QINQ 0x88a8u

#define PROTO_HOPOPTS 0u
#define PROTO_ICMP 1u
#define PROTO_TCP 6u
#define PROTO_UDP 17u
#define PROTO_FRAG6 44u
#define PROTO_ICMP6 58u
#define PROTO_DSTOPTS 60u

#define TCP_FIN 0x01u
#define TCP_SYN 0x02u
#define TCP_RST 0x04u
#define TCP_PSH 0x08u
#define TCP_ACK 0x10u

#define TCP_MSS 1448u  /* data per full segment (1500 - 20 - 20 - 12 for timestamps) */
#define FRAG4_CHUNK 1480u
#define FRAG6_CHUNK 1448u

/* ------------------------------------------------------------------ */
/* Options                                                              */
/* ------------------------------------------------------------------ */

struct opts {
    const char *out_path;
    uint64_t packets;
    uint64_t bytes;      /* 0 = use packets */
    uint32_t flows;
    uint64_t seed;
    uint64_t start_sec;
    uint64_t rate;
    bool nsec;
    bool clean;
    bool vxlan;
    uint32_t vni;
    uint32_t bad_vxlan_pct;
};

/* ------------------------------------------------------------------ */
/* Deterministic random numbers (splitmix64: tiny, fast, good enough)   */
/* ------------------------------------------------------------------ */

struct rng {
    uint64_t s;
};

static uint64_t rng_next(struct rng *r)
{
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Uniform in [0, n) without division (Lemire's multiply-shift). */
static uint32_t rng_below(struct rng *r, uint32_t n)
{
    return (uint32_t)(((rng_next(r) >> 32) * (uint64_t)n) >> 32);
}

/* Uniform in [lo, hi], inclusive. */
static uint32_t rng_range(struct rng *r, uint32_t lo, uint32_t hi)
{
    return lo + rng_below(r, hi - lo + 1u);
}

static uint64_t rng_range64(struct rng *r, uint64_t lo, uint64_t hi)
{
    uint64_t span = hi - lo + 1u;
    return span == 0 ? rng_next(r) : lo + rng_next(r) % span;
}

/* Pseudo-random payload, written byte-by-byte so output is endian-independent. */
static void fill_random(struct rng *r, uint8_t *p, size_t n)
{
    while (n > 0) {
        uint64_t v = rng_next(r);
        size_t k = n < 8 ? n : 8;
        for (size_t i = 0; i < k; i++)
            p[i] = (uint8_t)(v >> (8 * i));
        p += k;
        n -= k;
    }
}

static uint32_t hash32(uint32_t x)
{
    x ^= x >> 16;
    x *= 0x7feb352du;
    x ^= x >> 15;
    x *= 0x846ca68bu;
    x ^= x >> 16;
    return x;
}

/* ------------------------------------------------------------------ */
/* Byte helpers: network order for headers, little endian for pcap     */
/* ------------------------------------------------------------------ */

static void put16(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static uint32_t get16(const uint8_t *p)
{
    return ((uint32_t)p[0] << 8) | p[1];
}

static void put32le(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static void put16le(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

/* ------------------------------------------------------------------ */
/* Internet checksum                                                    */
/* ------------------------------------------------------------------ */

static uint32_t csum_add(uint32_t acc, const uint8_t *p, size_t n)
{
    for (; n > 1; p += 2, n -= 2)
        acc += get16(p);
    if (n)
        acc += (uint32_t)p[0] << 8;
    return acc;
}

static uint16_t csum_fold(uint32_t acc)
{
    while (acc >> 16)
        acc = (acc & 0xffffu) + (acc >> 16);
    return (uint16_t)acc;
}

/* ------------------------------------------------------------------ */
/* Flows                                                                */
/* ------------------------------------------------------------------ */

enum kind { K_TCP4, K_TCP6, K_DNS4, K_UDP4, K_UDP6, K_ICMP4, K_ICMP6, K_FRAG4, K_FRAG6, K_COUNT };

/* Percent weights of flow kinds; clean mix leaves out the fragmenting ones. */
static const uint8_t kind_weight_normal[K_COUNT] = {36, 12, 12, 10, 8, 8, 6, 4, 4};
static const uint8_t kind_weight_clean[K_COUNT] = {38, 13, 13, 11, 9, 9, 7, 0, 0};

static const uint16_t server_ports[] = {22, 53, 80, 443, 5432, 8080};

/* VLAN decoration of a flow: none, one 802.1Q tag, or 802.1ad + 802.1Q. */
struct tags {
    int n;
    uint16_t outer_vid;
    uint16_t inner_vid;
};

struct flow {
    uint32_t id;
    enum kind kind;
    bool v6;
    uint8_t cli_ip[16], srv_ip[16];
    uint16_t cli_port, srv_port;
    struct tags tags;
    int ip_opt_words; /* IPv4 options, in 32-bit words (IHL - 5) */
    bool v6_ext;      /* hop-by-hop + destination options before L4 */
    uint32_t cli_seq, srv_seq;
    uint16_t cli_ipid, srv_ipid;
    uint32_t frag_ident;
    int step;         /* position within the current exchange */
    int left;         /* exchanges (or datagrams) left before closing */
    int segs_left;    /* server segments left in a TCP response */
    bool rst_close;
    uint16_t icmp_id, icmp_seq;
    uint16_t dns_id;
    uint32_t dgram_len;  /* fragmented datagram: IP payload length */
    uint32_t dgram_sent; /* fragmented datagram: payload bytes sent so far */
    bool done;
};

/* ------------------------------------------------------------------ */
/* Generator state                                                      */
/* ------------------------------------------------------------------ */

struct counters {
    uint64_t packets;
    uint64_t file_bytes;
    uint64_t flows_started;
    uint64_t oddities;
    uint64_t bad_vxlan;
};

struct gen {
    const struct opts *o;
    struct rng rng;
    struct flow *flows;
    uint32_t next_flow_id;
    uint64_t ts_ns;
    uint64_t avg_gap_ns;
    uint8_t pkt[HEADROOM + FRAME_MAX]; /* frame is built at pkt + HEADROOM */
    size_t len;                         /* wire length of the current frame */
    size_t caplen;                      /* captured length of the current frame */
    uint32_t key;                       /* flow key, drives the VXLAN outer header */
    uint16_t outer_ipid;
    uint8_t *out;
    size_t out_used;
    int fd;
    struct counters c;
};

static uint8_t *frame(struct gen *g)
{
    return g->pkt + HEADROOM;
}

/* ------------------------------------------------------------------ */
/* Addresses                                                            */
/* ------------------------------------------------------------------ */

/* 10.0.1.x and 10.0.2.x are reserved for the well-known test hosts. */
static void random_ip4(struct rng *r, uint8_t ip[16])
{
    memset(ip, 0, 16);
    if (rng_below(r, 100) < 80) {
        ip[0] = 10;
        ip[1] = 0;
        ip[2] = (uint8_t)rng_range(r, 10, 250);
    } else {
        ip[0] = 192;
        ip[1] = 168;
        ip[2] = (uint8_t)rng_below(r, 256);
    }
    ip[3] = (uint8_t)rng_range(r, 1, 254);
}

static void set_ip4(uint8_t ip[16], uint8_t a, uint8_t b, uint8_t c, uint8_t d)
{
    memset(ip, 0, 16);
    ip[0] = a;
    ip[1] = b;
    ip[2] = c;
    ip[3] = d;
}

/* 2001:db8:0:X::Y */
static void random_ip6(struct rng *r, uint8_t ip[16])
{
    static const uint8_t prefix[4] = {0x20, 0x01, 0x0d, 0xb8};
    memset(ip, 0, 16);
    memcpy(ip, prefix, 4);
    ip[7] = (uint8_t)rng_range(r, 1, 255);
    put16(ip + 14, rng_range(r, 1, 0xffff));
}

/* Locally administered MAC derived from the IP, so each host keeps one MAC. */
static void mac_for(const uint8_t ip[16], bool v6, uint8_t mac[6])
{
    mac[0] = 0x02;
    mac[1] = v6 ? 0x06 : 0x00;
    memcpy(mac + 2, v6 ? ip + 12 : ip, 4);
}

static uint16_t ephemeral_port(struct rng *r)
{
    return (uint16_t)rng_range(r, 32768, 60999);
}

/* ------------------------------------------------------------------ */
/* Flow creation                                                        */
/* ------------------------------------------------------------------ */

static enum kind pick_kind(struct gen *g)
{
    const uint8_t *w = g->o->clean ? kind_weight_clean : kind_weight_normal;
    uint32_t r = rng_below(&g->rng, 100);
    for (int k = 0; k < K_COUNT; k++) {
        if (r < w[k])
            return (enum kind)k;
        r -= w[k];
    }
    return K_TCP4;
}

static bool kind_is_v6(enum kind k)
{
    return k == K_TCP6 || k == K_UDP6 || k == K_ICMP6 || k == K_FRAG6;
}

static void pick_decorations(struct gen *g, struct flow *f)
{
    if (g->o->clean)
        return;
    uint32_t r = rng_below(&g->rng, 100);
    if (r < 3) {
        f->tags.n = 1;
        f->tags.outer_vid = rng_below(&g->rng, 2) ? 200 : 100;
    } else if (r < 5) {
        f->tags.n = 2;
        f->tags.outer_vid = 10;
        f->tags.inner_vid = rng_below(&g->rng, 2) ? 200 : 100;
    }
    r = rng_below(&g->rng, 100);
    if (!f->v6)
        f->ip_opt_words = r < 4 ? 1 : r < 6 ? 2 : 0;
    else if (f->kind == K_TCP6 || f->kind == K_UDP6)
        f->v6_ext = r < 15;
}

static void pick_endpoints(struct gen *g, struct flow *f)
{
    struct rng *r = &g->rng;
    if (f->v6) {
        random_ip6(r, f->cli_ip);
        random_ip6(r, f->srv_ip);
    } else {
        random_ip4(r, f->cli_ip);
        random_ip4(r, f->srv_ip);
    }
    f->cli_port = ephemeral_port(r);
    switch (f->kind) {
    case K_DNS4:
        f->srv_port = 53;
        break;
    case K_UDP4:
    case K_UDP6:
    case K_FRAG4:
    case K_FRAG6:
        f->srv_port = (uint16_t)rng_range(r, 1024, 65535);
        break;
    default:
        f->srv_port = server_ports[rng_below(r, sizeof server_ports / sizeof server_ports[0])];
        break;
    }
}

/*
 * Some flow ids always involve the well-known hosts 10.0.1.1 (client) and
 * 10.0.2.2:443 (server), so tests can filter on them at any packet count:
 * id%16 == 0 is 10.0.1.1 -> 10.0.2.2:443, id%16 == 8 is any -> 10.0.2.2:443
 * (both TCP), and an IPv4 flow with id%16 == 4 has client 10.0.1.1.
 */
static bool serves_well_known(uint32_t id)
{
    return id % 16 == 0 || id % 16 == 8;
}

static void apply_well_known_hosts(struct flow *f)
{
    uint32_t slot = f->id % 16;
    if (serves_well_known(f->id)) {
        set_ip4(f->srv_ip, 10, 0, 2, 2);
        f->srv_port = 443;
    }
    if ((slot == 0 || slot == 4) && !f->v6)
        set_ip4(f->cli_ip, 10, 0, 1, 1);
}

static void init_flow_counters(struct gen *g, struct flow *f)
{
    struct rng *r = &g->rng;
    f->cli_seq = (uint32_t)rng_next(r);
    f->srv_seq = (uint32_t)rng_next(r);
    f->cli_ipid = (uint16_t)rng_next(r);
    f->srv_ipid = (uint16_t)rng_next(r);
    f->frag_ident = (uint32_t)rng_next(r);
    f->icmp_id = (uint16_t)rng_next(r);
    f->rst_close = rng_below(r, 100) < 15;
    switch (f->kind) {
    case K_TCP4:
    case K_TCP6:
        f->left = (int)rng_range(r, 1, 12);
        break;
    case K_DNS4:
        f->left = (int)rng_range(r, 1, 3);
        break;
    case K_UDP4:
    case K_UDP6:
        f->left = (int)rng_range(r, 2, 30);
        break;
    case K_ICMP4:
    case K_ICMP6:
        f->left = (int)rng_range(r, 1, 8);
        break;
    default:
        f->left = (int)rng_range(r, 1, 3);
        break;
    }
}

static void new_flow(struct gen *g, struct flow *f)
{
    memset(f, 0, sizeof *f);
    f->id = g->next_flow_id++;
    f->kind = serves_well_known(f->id) ? K_TCP4 : pick_kind(g);
    f->v6 = kind_is_v6(f->kind);
    pick_endpoints(g, f);
    apply_well_known_hosts(f);
    pick_decorations(g, f);
    init_flow_counters(g, f);
    g->c.flows_started++;
}

/* ------------------------------------------------------------------ */
/* Header writers                                                       */
/* ------------------------------------------------------------------ */

static size_t put_eth(uint8_t *p, const uint8_t dst[6], const uint8_t src[6],
                      const struct tags *t, uint16_t ethertype)
{
    size_t off = 12;
    memcpy(p, dst, 6);
    memcpy(p + 6, src, 6);
    if (t && t->n == 2) {
        put16(p + off, ETH_QINQ);
        put16(p + off + 2, t->outer_vid);
        put16(p + off + 4, ETH_VLAN);
        put16(p + off + 6, t->inner_vid);
        off += 8;
    } else if (t && t->n == 1) {
        put16(p + off, ETH_VLAN);
        put16(p + off + 2, t->outer_vid);
        off += 4;
    }
    put16(p + off, ethertype);
    return off + 2;
}

/* IPv4 header with total length and checksum left for ip4_finish(). */
static size_t put_ip4(uint8_t *p, const uint8_t *src, const uint8_t *dst, uint8_t proto,
                      uint16_t id, uint16_t frag, int opt_words, uint8_t ttl)
{
    size_t hl = 20u + 4u * (size_t)opt_words;
    p[0] = (uint8_t)(0x40 | (hl / 4));
    p[1] = 0;
    put16(p + 2, 0);
    put16(p + 4, id);
    put16(p + 6, frag);
    p[8] = ttl;
    p[9] = proto;
    put16(p + 10, 0);
    memcpy(p + 12, src, 4);
    memcpy(p + 16, dst, 4);
    if (opt_words == 1) {
        /* Router Alert, as IGMP/RSVP senders use it. */
        p[20] = 0x94;
        p[21] = 4;
        put16(p + 22, 0);
    } else if (opt_words == 2) {
        /* Record Route with one empty slot, then End of Options. */
        p[20] = 7;
        p[21] = 7;
        p[22] = 4;
        memset(p + 23, 0, 4);
        p[27] = 0;
    }
    return hl;
}

/* Checksum covers at least 20 bytes even when IHL is bogus (< 5). */
static void ip4_checksum(uint8_t *ip)
{
    size_t hl = (size_t)(ip[0] & 0x0f) * 4u;
    if (hl < 20)
        hl = 20;
    put16(ip + 10, 0);
    put16(ip + 10, (uint16_t)~csum_fold(csum_add(0, ip, hl)));
}

static size_t put_ip6(uint8_t *p, const uint8_t *src, const uint8_t *dst, uint8_t nh,
                      uint32_t flow_label, uint8_t hops)
{
    put32(p, 0x60000000u | (flow_label & 0xfffffu));
    put16(p + 4, 0);
    p[6] = nh;
    p[7] = hops;
    memcpy(p + 8, src, 16);
    memcpy(p + 24, dst, 16);
    return 40;
}

/* Hop-by-hop (Router Alert + PadN) then destination options (PadN). */
static size_t put_ip6_ext(uint8_t *p, uint8_t final_nh)
{
    static const uint8_t hbh[8] = {PROTO_DSTOPTS, 0, 5, 2, 0, 0, 1, 0};
    static const uint8_t dst[8] = {0, 0, 1, 4, 0, 0, 0, 0};
    memcpy(p, hbh, 8);
    memcpy(p + 8, dst, 8);
    p[8] = final_nh;
    return 16;
}

static size_t put_tcp(uint8_t *p, uint16_t sport, uint16_t dport, uint32_t seq, uint32_t ack,
                      uint8_t flags, bool syn_opts)
{
    static const uint8_t opts[12] = {2, 4, 0x05, 0xb4, 1, 3, 3, 7, 1, 1, 4, 2};
    size_t hl = syn_opts ? 32 : 20;
    put16(p, sport);
    put16(p + 2, dport);
    put32(p + 4, seq);
    put32(p + 8, ack);
    p[12] = (uint8_t)((hl / 4) << 4);
    p[13] = flags;
    put16(p + 14, syn_opts ? 64240 : 502);
    put16(p + 16, 0);
    put16(p + 18, 0);
    if (syn_opts)
        memcpy(p + 20, opts, sizeof opts);
    return hl;
}

static size_t put_udp(uint8_t *p, uint16_t sport, uint16_t dport, size_t len)
{
    put16(p, sport);
    put16(p + 2, dport);
    put16(p + 4, (uint32_t)len);
    put16(p + 6, 0);
    return 8;
}

/* ------------------------------------------------------------------ */
/* Building a flow's packet: L2 + L3 around an L4 message               */
/* ------------------------------------------------------------------ */

/* Where the layers of the frame under construction start. */
struct layout {
    bool v6;
    uint8_t proto;  /* final L4 protocol */
    bool fragment;  /* L4 message incomplete: leave its checksum alone */
    size_t l3;
    size_t l4;
    const uint8_t *src, *dst;
};

/* Endpoint view of a flow for one direction. */
struct dir {
    const uint8_t *src_ip, *dst_ip;
    uint16_t sport, dport;
    bool c2s;
};

static struct dir flow_dir(const struct flow *f, bool c2s)
{
    struct dir d;
    d.c2s = c2s;
    d.src_ip = c2s ? f->cli_ip : f->srv_ip;
    d.dst_ip = c2s ? f->srv_ip : f->cli_ip;
    d.sport = c2s ? f->cli_port : f->srv_port;
    d.dport = c2s ? f->srv_port : f->cli_port;
    return d;
}

/*
 * Writes Ethernet (with the flow's tags) and the IP header(s); returns the
 * layout so the caller can write L4 at frame + lay->l4.  ip_frag is the IPv4
 * flags/offset field or, with frag6_ext, the IPv6 fragment header is added.
 */
static struct layout begin_ip(struct gen *g, struct flow *f, const struct dir *d, uint8_t proto,
                              uint16_t ip_frag)
{
    uint8_t *p = frame(g);
    uint8_t smac[6], dmac[6];
    struct layout lay = {.v6 = f->v6, .proto = proto, .src = d->src_ip, .dst = d->dst_ip};

    mac_for(d->src_ip, f->v6, smac);
    mac_for(d->dst_ip, f->v6, dmac);
    lay.l3 = put_eth(p, dmac, smac, &f->tags, f->v6 ? ETH_IPV6 : ETH_IPV4);
    uint8_t ttl = d->c2s ? 64 : 63;
    if (!f->v6) {
        uint16_t id = d->c2s ? f->cli_ipid++ : f->srv_ipid++;
        lay.l4 = lay.l3 + put_ip4(p + lay.l3, d->src_ip, d->dst_ip, proto, id,
                                  ip_frag ? ip_frag : 0x4000 /* DF */, f->ip_opt_words, ttl);
        return lay;
    }
    uint8_t nh = f->v6_ext ? PROTO_HOPOPTS : proto;
    lay.l4 = lay.l3 + put_ip6(p + lay.l3, d->src_ip, d->dst_ip, nh, hash32(f->id) & 0xfffff, ttl);
    if (f->v6_ext)
        lay.l4 += put_ip6_ext(p + lay.l4, proto);
    return lay;
}

/* Pseudo-header sum: what a sender with checksum offload leaves in the field. */
static uint32_t pseudo_sum(const struct layout *lay, size_t l4len)
{
    size_t alen = lay->v6 ? 16 : 4;
    uint32_t acc = csum_add(0, lay->src, alen);
    acc = csum_add(acc, lay->dst, alen);
    return acc + lay->proto + (uint32_t)l4len;
}

/*
 * TCP/UDP get the offload-style partial checksum (mirrored traffic really
 * looks like that); ICMP gets a correct one.
 */
static void set_l4_checksum(const struct layout *lay, uint8_t *l4, size_t l4len)
{
    if (lay->proto == PROTO_TCP)
        put16(l4 + 16, csum_fold(pseudo_sum(lay, l4len)));
    else if (lay->proto == PROTO_UDP)
        put16(l4 + 6, csum_fold(pseudo_sum(lay, l4len)));
    else if (lay->proto == PROTO_ICMP)
        put16(l4 + 2, (uint16_t)~csum_fold(csum_add(0, l4, l4len)));
    else if (lay->proto == PROTO_ICMP6)
        put16(l4 + 2, (uint16_t)~csum_fold(csum_add(pseudo_sum(lay, l4len), l4, l4len)));
}

/* Finishes IP lengths and checksums once the L4 message is in place. */
static void end_ip(struct gen *g, const struct layout *lay, size_t l4len)
{
    uint8_t *p = frame(g);
    size_t total = lay->l4 + l4len;

    /* A fragment's L4 checksum would cover the whole datagram: leave it 0. */
    if (!lay->fragment)
        set_l4_checksum(lay, p + lay->l4, l4len);
    if (lay->v6) {
        put16(p + lay->l3 + 4, (uint32_t)(total - lay->l3 - 40));
    } else {
        put16(p + lay->l3 + 2, (uint32_t)(total - lay->l3));
        ip4_checksum(p + lay->l3);
    }
    g->len = total;
    g->caplen = total;
}

/* ------------------------------------------------------------------ */
/* Per-protocol packets                                                 */
/* ------------------------------------------------------------------ */

static struct layout tcp_packet(struct gen *g, struct flow *f, bool c2s, uint8_t flags,
                                size_t paylen)
{
    struct dir d = flow_dir(f, c2s);
    struct layout lay = begin_ip(g, f, &d, PROTO_TCP, 0);
    uint8_t *l4 = frame(g) + lay.l4;
    uint32_t *seq = c2s ? &f->cli_seq : &f->srv_seq;
    uint32_t ack = (flags & TCP_ACK) ? (c2s ? f->srv_seq : f->cli_seq) : 0;
    size_t hl = put_tcp(l4, d.sport, d.dport, *seq, ack, flags, (flags & TCP_SYN) != 0);

    fill_random(&g->rng, l4 + hl, paylen);
    end_ip(g, &lay, hl + paylen);
    *seq += (uint32_t)paylen + ((flags & (TCP_SYN | TCP_FIN)) ? 1u : 0u);
    return lay;
}

static struct layout udp_packet(struct gen *g, struct flow *f, bool c2s, size_t paylen)
{
    struct dir d = flow_dir(f, c2s);
    struct layout lay = begin_ip(g, f, &d, PROTO_UDP, 0);
    uint8_t *l4 = frame(g) + lay.l4;

    put_udp(l4, d.sport, d.dport, 8 + paylen);
    fill_random(&g->rng, l4 + 8, paylen);
    end_ip(g, &lay, 8 + paylen);
    return lay;
}

/* Echo request/reply with a ping(8)-like payload: 8 random bytes then 0x10.. */
static void icmp_echo(struct gen *g, struct flow *f, bool request)
{
    struct dir d = flow_dir(f, request);
    uint8_t proto = f->v6 ? PROTO_ICMP6 : PROTO_ICMP;
    struct layout lay = begin_ip(g, f, &d, proto, 0);
    uint8_t *l4 = frame(g) + lay.l4;

    if (f->v6)
        l4[0] = request ? 128 : 129;
    else
        l4[0] = request ? 8 : 0;
    l4[1] = 0;
    put16(l4 + 2, 0);
    put16(l4 + 4, f->icmp_id);
    put16(l4 + 6, f->icmp_seq);
    fill_random(&g->rng, l4 + 8, 8);
    for (size_t i = 16; i < 64; i++)
        l4[i] = (uint8_t)(i);
    end_ip(g, &lay, 64);
}

/* DNS query (or response with one A record) for a name derived from the flow. */
static size_t put_dns(uint8_t *p, const struct flow *f, bool response)
{
    static const char *const hosts[] = {"www", "api", "db", "mail", "cdn", "auth", "s3", "git"};
    static const char *const zones[] = {"example", "corp", "internal"};
    const char *host = hosts[f->id % 8];
    const char *zone = zones[(f->id / 8) % 3];
    size_t off = 12;

    put16(p, f->dns_id);
    put16(p + 2, response ? 0x8180 : 0x0100);
    put16(p + 4, 1);
    put16(p + 6, response ? 1 : 0);
    put16(p + 8, 0);
    put16(p + 10, 0);
    const char *labels[3] = {host, zone, "com"};
    for (int i = 0; i < 3; i++) {
        size_t n = strlen(labels[i]);
        p[off++] = (uint8_t)n;
        memcpy(p + off, labels[i], n);
        off += n;
    }
    p[off++] = 0;
    put16(p + off, 1); /* A */
    put16(p + off + 2, 1); /* IN */
    off += 4;
    if (response) {
        put16(p + off, 0xc00c); /* pointer to the question name */
        put16(p + off + 2, 1);
        put16(p + off + 4, 1);
        put32(p + off + 6, 300);
        put16(p + off + 10, 4);
        p[off + 12] = 10;
        p[off + 13] = 0;
        p[off + 14] = (uint8_t)(10 + f->id % 200);
        p[off + 15] = (uint8_t)(1 + f->id % 250);
        off += 16;
    }
    return off;
}

static void dns_packet(struct gen *g, struct flow *f, bool response)
{
    struct dir d = flow_dir(f, !response);
    struct layout lay = begin_ip(g, f, &d, PROTO_UDP, 0);
    uint8_t *l4 = frame(g) + lay.l4;
    size_t n = put_dns(l4 + 8, f, response);

    put_udp(l4, d.sport, d.dport, 8 + n);
    end_ip(g, &lay, 8 + n);
}

/*
 * One fragment of a large UDP datagram.  The first fragment carries the UDP
 * header; IPv4 uses the MF bit and offset, IPv6 a fragment extension header.
 */
static void fragment_packet(struct gen *g, struct flow *f)
{
    struct dir d = flow_dir(f, true);
    size_t chunk = f->v6 ? FRAG6_CHUNK : FRAG4_CHUNK;
    size_t off8 = f->dgram_sent / 8;
    size_t n = f->dgram_len - f->dgram_sent;
    bool more = n > chunk;
    if (more)
        n = chunk;

    uint16_t frag4 = (uint16_t)(off8 | (more ? 0x2000u : 0));
    struct layout lay = begin_ip(g, f, &d, f->v6 ? PROTO_FRAG6 : PROTO_UDP, f->v6 ? 0 : frag4);
    uint8_t *p = frame(g) + lay.l4;
    size_t hdr = 0;
    if (!f->v6)
        put16(frame(g) + lay.l3 + 4, (uint16_t)f->frag_ident); /* same ID on all fragments */
    if (f->v6) {
        p[0] = PROTO_UDP;
        p[1] = 0;
        put16(p + 2, (uint32_t)((off8 << 3) | (more ? 1u : 0u)));
        put32(p + 4, f->frag_ident);
        hdr = 8;
    }
    if (f->dgram_sent == 0) {
        put_udp(p + hdr, d.sport, d.dport, f->dgram_len);
        fill_random(&g->rng, p + hdr + 8, n - 8);
    } else {
        fill_random(&g->rng, p + hdr, n);
    }
    lay.fragment = true;
    end_ip(g, &lay, hdr + n);
    f->dgram_sent += (uint32_t)n;
}

/* ------------------------------------------------------------------ */
/* Flow state machines: each call emits exactly one packet              */
/* ------------------------------------------------------------------ */

enum { T_SYN, T_SYNACK, T_ACK3, T_REQ, T_RESP, T_ACKRESP, T_CLOSE, T_FIN2, T_LASTACK };

static void step_tcp(struct gen *g, struct flow *f)
{
    struct rng *r = &g->rng;
    switch (f->step) {
    case T_SYN:
        tcp_packet(g, f, true, TCP_SYN, 0);
        break;
    case T_SYNACK:
        tcp_packet(g, f, false, TCP_SYN | TCP_ACK, 0);
        break;
    case T_ACK3:
        tcp_packet(g, f, true, TCP_ACK, 0);
        f->step = T_REQ;
        return;
    case T_REQ:
        tcp_packet(g, f, true, TCP_PSH | TCP_ACK, rng_range(r, 20, 600));
        f->segs_left = (int)rng_range(r, 1, 4);
        break;
    case T_RESP:
        if (--f->segs_left > 0) {
            tcp_packet(g, f, false, TCP_ACK, TCP_MSS);
            return;
        }
        tcp_packet(g, f, false, TCP_PSH | TCP_ACK, rng_range(r, 1, TCP_MSS));
        break;
    case T_ACKRESP:
        tcp_packet(g, f, true, TCP_ACK, 0);
        f->step = --f->left > 0 ? T_REQ : T_CLOSE;
        return;
    case T_CLOSE:
        if (f->rst_close) {
            tcp_packet(g, f, true, TCP_RST | TCP_ACK, 0);
            f->done = true;
            return;
        }
        tcp_packet(g, f, true, TCP_FIN | TCP_ACK, 0);
        break;
    case T_FIN2:
        tcp_packet(g, f, false, TCP_FIN | TCP_ACK, 0);
        break;
    default:
        tcp_packet(g, f, true, TCP_ACK, 0);
        f->done = true;
        return;
    }
    f->step++;
}

static void step_dns(struct gen *g, struct flow *f)
{
    if (f->step == 0) {
        f->dns_id = (uint16_t)rng_next(&g->rng);
        dns_packet(g, f, false);
        f->step = 1;
        return;
    }
    dns_packet(g, f, true);
    f->step = 0;
    f->done = --f->left <= 0;
}

static void step_udp(struct gen *g, struct flow *f)
{
    bool c2s = f->step == 0 || rng_below(&g->rng, 100) < 60;
    udp_packet(g, f, c2s, rng_range(&g->rng, 16, 1200));
    f->step = 1;
    f->done = --f->left <= 0;
}

static void step_icmp(struct gen *g, struct flow *f)
{
    icmp_echo(g, f, f->step == 0);
    if (f->step == 0) {
        f->step = 1;
        return;
    }
    f->step = 0;
    f->icmp_seq++;
    f->done = --f->left <= 0;
}

static void step_frag(struct gen *g, struct flow *f)
{
    if (f->dgram_len == 0) {
        f->dgram_len = 8 + rng_range(&g->rng, 1600, 4000);
        f->dgram_sent = 0;
        f->frag_ident++;
    }
    fragment_packet(g, f);
    if (f->dgram_sent < f->dgram_len)
        return;
    f->dgram_len = 0;
    f->done = --f->left <= 0;
}

static void step_flow(struct gen *g, struct flow *f)
{
    g->key = f->id;
    switch (f->kind) {
    case K_TCP4:
    case K_TCP6:
        step_tcp(g, f);
        break;
    case K_DNS4:
        step_dns(g, f);
        break;
    case K_UDP4:
    case K_UDP6:
        step_udp(g, f);
        break;
    case K_ICMP4:
    case K_ICMP6:
        step_icmp(g, f);
        break;
    default:
        step_frag(g, f);
        break;
    }
}

/* ------------------------------------------------------------------ */
/* One-off odd packets (normal mix only)                                */
/* ------------------------------------------------------------------ */

enum odd { ODD_ARP, ODD_TRUNC_TCP, ODD_BAD_IHL, ODD_UDP_LEN, ODD_IP_LEN, ODD_SHORT, ODD_SLICED,
           ODD_COUNT };

/* A throwaway IPv4 flow with random endpoints; no VLAN, no options. */
static void scratch_flow(struct gen *g, struct flow *f, enum kind k)
{
    memset(f, 0, sizeof *f);
    f->id = (uint32_t)rng_next(&g->rng);
    f->kind = k;
    pick_endpoints(g, f);
    init_flow_counters(g, f);
    g->key = f->id;
}

static void odd_arp(struct gen *g, struct flow *f)
{
    static const uint8_t bcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    uint8_t *p = frame(g);
    uint8_t smac[6];
    mac_for(f->cli_ip, false, smac);
    size_t off = put_eth(p, bcast, smac, NULL, ETH_ARP);
    put16(p + off, 1);
    put16(p + off + 2, ETH_IPV4);
    p[off + 4] = 6;
    p[off + 5] = 4;
    put16(p + off + 6, 1);
    memcpy(p + off + 8, smac, 6);
    memcpy(p + off + 14, f->cli_ip, 4);
    memset(p + off + 18, 0, 6);
    memcpy(p + off + 24, f->srv_ip, 4);
    off += 28;
    memset(p + off, 0, 60 - off); /* Ethernet minimum-size padding */
    g->len = g->caplen = 60;
}

static void odd_packet(struct gen *g, enum odd which)
{
    struct flow f;
    uint8_t *p = frame(g);
    struct layout lay;

    g->c.oddities++;
    switch (which) {
    case ODD_ARP:
        scratch_flow(g, &f, K_TCP4);
        odd_arp(g, &f);
        break;
    case ODD_TRUNC_TCP: /* IP says TCP, capture stops 10 bytes into the header */
        scratch_flow(g, &f, K_TCP4);
        lay = tcp_packet(g, &f, true, TCP_PSH | TCP_ACK, rng_range(&g->rng, 100, 1000));
        g->caplen = lay.l4 + 10;
        break;
    case ODD_BAD_IHL:
        scratch_flow(g, &f, K_UDP4);
        lay = udp_packet(g, &f, true, rng_range(&g->rng, 16, 200));
        p[lay.l3] = (uint8_t)(0x40 | rng_range(&g->rng, 0, 4));
        ip4_checksum(p + lay.l3);
        break;
    case ODD_UDP_LEN:
        scratch_flow(g, &f, K_UDP4);
        lay = udp_packet(g, &f, true, rng_range(&g->rng, 16, 200));
        put16(p + lay.l4 + 4, get16(p + lay.l4 + 4) + rng_range(&g->rng, 1, 300));
        break;
    case ODD_IP_LEN:
        scratch_flow(g, &f, K_TCP4);
        lay = tcp_packet(g, &f, true, TCP_PSH | TCP_ACK, rng_range(&g->rng, 10, 400));
        put16(p + lay.l3 + 2, get16(p + lay.l3 + 2) + rng_range(&g->rng, 100, 800));
        ip4_checksum(p + lay.l3);
        break;
    case ODD_SHORT:
        g->key = (uint32_t)rng_next(&g->rng);
        g->len = g->caplen = rng_range(&g->rng, 1, 13);
        fill_random(&g->rng, p, g->len);
        break;
    default: /* ODD_SLICED: a full-size segment captured with snaplen 96 */
        scratch_flow(g, &f, K_TCP4);
        tcp_packet(g, &f, false, TCP_ACK, TCP_MSS + 12);
        g->caplen = 96;
        break;
    }
}

/* ------------------------------------------------------------------ */
/* VXLAN encapsulation                                                  */
/* ------------------------------------------------------------------ */

enum bad_reason { BAD_TRUNCATED, BAD_IFLAG, BAD_PORT, BAD_NOT_UDP, BAD_COUNT };

/* Exactly pct% of packets, spread evenly, without using the random stream. */
static bool is_bad_slot(uint64_t index, uint32_t pct)
{
    return (index + 1) * pct / 100 != index * pct / 100;
}

/*
 * Prepends outer Ethernet/IPv4/UDP/VXLAN in the headroom.  The outer source
 * (10.99.0.X) and UDP source port follow the flow key, as a mirror session
 * hashes flows over its sources.  bad >= 0 makes the message undecapsulatable.
 */
static void wrap_vxlan(struct gen *g, int bad)
{
    static const uint8_t dmac[6] = {0x02, 0x99, 0x00, 0x00, 0x00, 0x01};
    static const uint8_t smac[6] = {0x02, 0x99, 0x00, 0x00, 0x00, 0x02};
    uint8_t *o = frame(g) - OUTER_LEN;
    uint32_t h = hash32(g->key ^ 0x5bd1e995u);
    uint8_t src[4] = {10, 99, 0, (uint8_t)(1 + h % 250)};
    uint8_t dst[4] = {10, 99, 255, 1};
    size_t inner_len = g->len, inner_cap = g->caplen;
    size_t vx_len = 8;

    if (bad == BAD_TRUNCATED) {
        vx_len = 4; /* VXLAN header cut short, no inner frame */
        inner_len = inner_cap = 0;
    }
    put_eth(o, dmac, smac, NULL, ETH_IPV4);
    put_ip4(o + 14, src, dst, bad == BAD_NOT_UDP ? 253 : PROTO_UDP, g->outer_ipid++, 0, 0, 64);
    put16(o + 16, (uint32_t)(20 + 8 + vx_len + inner_len));
    ip4_checksum(o + 14);
    put_udp(o + 34, (uint16_t)(49152 + (h >> 8) % 16384),
            bad == BAD_PORT ? VXLAN_PORT - 1 : VXLAN_PORT, 8 + vx_len + inner_len);
    o[42] = bad == BAD_IFLAG ? 0x00 : 0x08;
    o[43] = o[44] = o[45] = 0;
    o[46] = (uint8_t)(g->o->vni >> 16);
    o[47] = (uint8_t)(g->o->vni >> 8);
    o[48] = (uint8_t)g->o->vni;
    o[49] = 0;

    size_t outer = OUTER_LEN - (8 - vx_len);
    g->len = outer + inner_len;
    g->caplen = outer + inner_cap;
}

/* ------------------------------------------------------------------ */
/* Output                                                               */
/* ------------------------------------------------------------------ */

static int write_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            fprintf(stderr, "pcapgen: write: %s\n", strerror(errno));
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int flush_out(struct gen *g)
{
    int rc = write_all(g->fd, g->out, g->out_used);
    g->out_used = 0;
    return rc;
}

static void put_file_header(struct gen *g)
{
    uint8_t *h = g->out + g->out_used;
    put32le(h, g->o->nsec ? PCAP_MAGIC_NSEC : PCAP_MAGIC_USEC);
    put16le(h + 4, 2);
    put16le(h + 6, 4);
    put32le(h + 8, 0);
    put32le(h + 12, 0);
    put32le(h + 16, PCAP_SNAPLEN);
    put32le(h + 20, LINKTYPE_ETHERNET);
    g->out_used += 24;
    g->c.file_bytes += 24;
}

/* Appends the current frame as a record; the caller keeps room for one. */
static int put_record(struct gen *g, const uint8_t *data)
{
    uint8_t *h = g->out + g->out_used;
    uint64_t sec = g->ts_ns / 1000000000u;
    uint64_t frac = g->ts_ns % 1000000000u;
    put32le(h, (uint32_t)sec);
    put32le(h + 4, (uint32_t)(g->o->nsec ? frac : frac / 1000u));
    put32le(h + 8, (uint32_t)g->caplen);
    put32le(h + 12, (uint32_t)g->len);
    memcpy(h + REC_HDR_LEN, data, g->caplen);
    g->out_used += REC_HDR_LEN + g->caplen;
    g->c.file_bytes += REC_HDR_LEN + g->caplen;
    g->c.packets++;
    if (OUTBUF_SIZE - g->out_used < REC_HDR_LEN + HEADROOM + FRAME_MAX)
        return flush_out(g);
    return 0;
}

/*
 * Gaps are uniform around the average, with ~3% exact repeats of the previous
 * timestamp so that consumers must cope with ties.
 */
static void advance_clock(struct gen *g)
{
    if (rng_below(&g->rng, 100) < 3)
        return;
    uint64_t hi = g->avg_gap_ns * 200u / 97u;
    g->ts_ns += rng_range64(&g->rng, 1, hi > 1 ? hi - 1 : 1);
}

/* ------------------------------------------------------------------ */
/* Main loop                                                            */
/* ------------------------------------------------------------------ */

static void build_one(struct gen *g)
{
    if (!g->o->clean) {
        uint32_t r = rng_below(&g->rng, 1000);
        if (r < 10u * ODD_COUNT) {
            odd_packet(g, (enum odd)(r / 10));
            return;
        }
    }
    struct flow *f = &g->flows[rng_below(&g->rng, g->o->flows)];
    step_flow(g, f);
    if (f->done)
        new_flow(g, f);
}

static bool finished(const struct gen *g)
{
    if (g->o->bytes)
        return g->c.file_bytes >= g->o->bytes;
    return g->c.packets >= g->o->packets;
}

static int generate(struct gen *g)
{
    put_file_header(g);
    for (uint32_t i = 0; i < g->o->flows; i++)
        new_flow(g, &g->flows[i]);
    while (!finished(g)) {
        build_one(g);
        const uint8_t *data = frame(g);
        if (g->o->vxlan) {
            int bad = -1;
            if (g->o->bad_vxlan_pct && is_bad_slot(g->c.packets, g->o->bad_vxlan_pct))
                bad = (int)(g->c.bad_vxlan++ % BAD_COUNT);
            wrap_vxlan(g, bad);
            data -= OUTER_LEN;
        }
        if (g->c.packets > 0)
            advance_clock(g);
        if (put_record(g, data) < 0)
            return -1;
    }
    return flush_out(g);
}

/* ------------------------------------------------------------------ */
/* Command line                                                         */
/* ------------------------------------------------------------------ */

static void usage(FILE *to)
{
    fprintf(to,
            "usage: pcapgen -w FILE|- [options]\n"
            "Writes deterministic synthetic traffic as a pcap file (Ethernet link type).\n"
            "\n"
            "  -w FILE          output file, '-' for stdout (required)\n"
            "  --packets N      number of packets (default 10000)\n"
            "  --bytes N        instead of --packets: stop at the first record that makes\n"
            "                   the file at least N bytes (suffix k/m/g = KiB/MiB/GiB)\n"
            "  --flows N        concurrently active flows, interleaved (default 200);\n"
            "                   a finished flow is replaced by a new one\n"
            "  --seed S         random seed; same options => identical file (default 1)\n"
            "  --start UNIXSEC  timestamp of the first packet (default 1700000000)\n"
            "  --rate PPS       average packet rate for timestamps (default 10000);\n"
            "                   ~3%% of packets repeat the previous timestamp exactly\n"
            "  --nsec           nanosecond pcap (magic a1b23c4d); default microsecond\n"
            "  --mix normal|clean  clean = only well-formed IPv4/IPv6 TCP/UDP/ICMP\n"
            "                   (default normal: adds VLAN/QinQ, IP options, fragments,\n"
            "                   IPv6 extension headers, ARP, malformed and sliced frames)\n"
            "  --vxlan          wrap every frame in Ethernet/IPv4/UDP 4789/VXLAN\n"
            "  --vni N          VXLAN network identifier (default 7)\n"
            "  --bad-vxlan PCT  with --vxlan: PCT%% of messages undecapsulatable, rotating:\n"
            "                   truncated VXLAN header, I flag clear, UDP port 4788,\n"
            "                   IP protocol 253 instead of UDP\n"
            "  -h, --help       this text\n"
            "\n"
            "Hosts 10.0.1.1 (client) and 10.0.2.2 (TCP server on port 443) always appear.\n"
            "TCP/UDP checksums hold only the pseudo-header sum, as with checksum offload.\n"
            "--vxlan does not change inner frames or timestamps: each valid message less\n"
            "its 50 outer bytes equals the packet at the same index made without --vxlan.\n"
            "A one-line summary is printed to stderr.\n");
}

static int parse_u64(const char *name, const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    uint64_t mult = 1;
    if (end != s && *end && !end[1]) {
        switch (*end) {
        case 'k': case 'K': mult = 1ull << 10; end++; break;
        case 'm': case 'M': mult = 1ull << 20; end++; break;
        case 'g': case 'G': mult = 1ull << 30; end++; break;
        default: break;
        }
    }
    if (errno || end == s || *end || s[0] == '-' || v > max / mult || v * mult < min) {
        fprintf(stderr, "pcapgen: invalid value for %s: '%s' (allowed %" PRIu64 "..%" PRIu64 ")\n",
                name, s, min, max);
        return -1;
    }
    *out = v * mult;
    return 0;
}

enum { O_PACKETS = 256, O_FLOWS, O_SEED, O_START, O_RATE, O_NSEC, O_BYTES, O_MIX, O_VXLAN,
       O_VNI, O_BAD_VXLAN };

static int parse_opt(struct opts *o, int c, const char *arg)
{
    uint64_t v;
    switch (c) {
    case 'w': o->out_path = arg; return 0;
    case O_PACKETS: return parse_u64("--packets", arg, 0, UINT64_MAX, &o->packets);
    case O_BYTES: return parse_u64("--bytes", arg, 1, UINT64_MAX, &o->bytes);
    case O_SEED: return parse_u64("--seed", arg, 0, UINT64_MAX, &o->seed);
    case O_START: return parse_u64("--start", arg, 0, UINT32_MAX - 100000u, &o->start_sec);
    case O_RATE: return parse_u64("--rate", arg, 1, 1000000000u, &o->rate);
    case O_NSEC: o->nsec = true; return 0;
    case O_VXLAN: o->vxlan = true; return 0;
    case O_FLOWS:
        if (parse_u64("--flows", arg, 1, 10000000u, &v) < 0)
            return -1;
        o->flows = (uint32_t)v;
        return 0;
    case O_VNI:
        if (parse_u64("--vni", arg, 0, 0xffffffu, &v) < 0)
            return -1;
        o->vni = (uint32_t)v;
        return 0;
    case O_BAD_VXLAN:
        if (parse_u64("--bad-vxlan", arg, 0, 100, &v) < 0)
            return -1;
        o->bad_vxlan_pct = (uint32_t)v;
        return 0;
    case O_MIX:
        if (strcmp(arg, "normal") && strcmp(arg, "clean")) {
            fprintf(stderr, "pcapgen: --mix must be 'normal' or 'clean', not '%s'\n", arg);
            return -1;
        }
        o->clean = !strcmp(arg, "clean");
        return 0;
    default:
        return -1;
    }
}

/* Returns 0 to run, 1 after --help, -1 on a usage error. */
static int parse_args(int argc, char **argv, struct opts *o)
{
    static const struct option longopts[] = {
        {"packets", required_argument, NULL, O_PACKETS},
        {"bytes", required_argument, NULL, O_BYTES},
        {"flows", required_argument, NULL, O_FLOWS},
        {"seed", required_argument, NULL, O_SEED},
        {"start", required_argument, NULL, O_START},
        {"rate", required_argument, NULL, O_RATE},
        {"nsec", no_argument, NULL, O_NSEC},
        {"mix", required_argument, NULL, O_MIX},
        {"vxlan", no_argument, NULL, O_VXLAN},
        {"vni", required_argument, NULL, O_VNI},
        {"bad-vxlan", required_argument, NULL, O_BAD_VXLAN},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "w:h", longopts, NULL)) != -1) {
        if (c == 'h') {
            usage(stdout);
            return 1;
        }
        if (c == '?' || parse_opt(o, c, optarg) < 0) {
            fprintf(stderr, "pcapgen: try --help\n");
            return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "pcapgen: unexpected argument '%s'; try --help\n", argv[optind]);
        return -1;
    }
    if (!o->out_path) {
        fprintf(stderr, "pcapgen: -w FILE is required ('-' for stdout); try --help\n");
        return -1;
    }
    if (o->bad_vxlan_pct && !o->vxlan) {
        fprintf(stderr, "pcapgen: --bad-vxlan needs --vxlan\n");
        return -1;
    }
    return 0;
}

static int open_output(const char *path)
{
    if (!strcmp(path, "-")) {
        if (isatty(STDOUT_FILENO)) {
            fprintf(stderr, "pcapgen: refusing to write binary pcap to a terminal\n");
            return -1;
        }
        return STDOUT_FILENO;
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        fprintf(stderr, "pcapgen: open(%s): %s\n", path, strerror(errno));
    return fd;
}

static void print_summary(const struct gen *g, uint64_t first_ts)
{
    const struct opts *o = g->o;
    fprintf(stderr,
            "pcapgen: wrote %" PRIu64 " packets, %" PRIu64 " bytes to %s (%s, %s mix%s), "
            "%" PRIu64 " flows, %" PRIu64 " odd, %" PRIu64 " bad-vxlan, "
            "ts %" PRIu64 ".%09" PRIu64 "..%" PRIu64 ".%09" PRIu64 "\n",
            g->c.packets, g->c.file_bytes, o->out_path, o->nsec ? "nsec" : "usec",
            o->clean ? "clean" : "normal", o->vxlan ? ", vxlan" : "", g->c.flows_started,
            g->c.oddities, g->c.bad_vxlan, first_ts / 1000000000u, first_ts % 1000000000u,
            g->ts_ns / 1000000000u, g->ts_ns % 1000000000u);
}

int main(int argc, char **argv)
{
    struct opts o = {.packets = 10000, .flows = 200, .seed = 1, .start_sec = 1700000000u,
                     .rate = 10000, .vni = 7};
    int rc = parse_args(argc, argv, &o);
    if (rc != 0)
        return rc > 0 ? 0 : 2;

    /* Large, so allocate rather than keep on the stack. */
    struct gen *g = calloc(1, sizeof *g);
    uint8_t *out = malloc(OUTBUF_SIZE);
    struct flow *flows = calloc(o.flows, sizeof *flows);
    if (!g || !out || !flows) {
        fprintf(stderr, "pcapgen: malloc: %s\n", strerror(errno));
        return 1;
    }
    g->o = &o;
    g->rng.s = o.seed;
    g->flows = flows;
    g->out = out;
    g->ts_ns = o.start_sec * 1000000000u;
    g->avg_gap_ns = 1000000000u / o.rate;
    g->fd = open_output(o.out_path);
    if (g->fd < 0)
        return 1;

    uint64_t first_ts = g->ts_ns;
    rc = generate(g);
    if (g->fd != STDOUT_FILENO && close(g->fd) < 0) {
        fprintf(stderr, "pcapgen: close(%s): %s\n", o.out_path, strerror(errno));
        rc = -1;
    }
    if (rc == 0)
        print_summary(g, first_ts);
    free(flows);
    free(out);
    free(g);
    return rc == 0 ? 0 : 1;
}
