/* test_exprscan.c - the expression reader against libpcap itself.
 *
 * For many expressions and flows, a packet of the flow is built and matched
 * with libpcap's compiled BPF (the oracle). exprscan may answer UNKNOWN, but
 * FALSE must mean BPF rejects and TRUE must mean BPF accepts - otherwise the
 * index would hide packets tcpdump finds (or `not` would).
 */
#include "decode.h"
#include "exprscan.h"
#include "filter.h"
#include "flowkey.h"
#include "test.h"

#include <arpa/inet.h>

typedef struct flow_case {
    int v6;
    uint8_t proto;
    const char *src, *dst;
    uint16_t sport, dport;
    int vlans;      /* 802.1Q tags in front */
    int frag_later; /* an IPv4 fragment after the first */
} flow_case;

static const flow_case flows[] = {
    { 0, 6, "10.0.1.1", "10.0.2.2", 50000, 443, 0, 0 },
    { 0, 6, "10.0.2.2", "10.0.1.1", 443, 50000, 0, 0 },
    { 0, 17, "10.0.1.1", "192.168.1.53", 40000, 53, 0, 0 },
    { 0, 1, "10.0.3.3", "10.0.1.1", 0, 0, 0, 0 },
    { 0, 47, "10.9.9.9", "10.0.2.2", 0, 0, 0, 0 },
    { 1, 6, "2001:db8::1", "2001:db8::2", 33333, 80, 0, 0 },
    { 1, 17, "2001:db8::2", "2001:db8:1::9", 5353, 5353, 0, 0 },
    { 1, 58, "2001:db8::1", "2001:db8::2", 0, 0, 0, 0 },
    { 0, 6, "10.0.1.1", "10.0.2.2", 50000, 443, 1, 0 },
    { 0, 17, "10.0.3.3", "10.0.1.1", 53, 5353, 2, 0 },
    { 1, 6, "2001:db8::1", "2001:db8::2", 33333, 80, 1, 0 },
    { 0, 6, "10.0.1.1", "10.0.2.2", 0, 0, 0, 1 },
    { 0, 17, "10.0.3.3", "192.168.1.53", 0, 0, 1, 1 },
};

static const char *exprs[] = {
    "host 10.0.1.1",
    "src host 10.0.1.1",
    "dst host 10.0.1.1",
    "host 10.0.1.1 and port 443",
    "host 10.0.1.1 or host 10.0.3.3",
    "not host 10.0.1.1",
    "not (host 10.0.1.1 or port 53)",
    "net 10.0.0.0/16",
    "dst net 192.168.0.0/16",
    "net 10.0.0.0 mask 255.255.0.0",
    "tcp",
    "udp and not port 53",
    "icmp or icmp6",
    "ip6",
    "ip and not tcp",
    "port 443",
    "src port 443",
    "dst port 443",
    "tcp dst port 443",
    "udp port 443",
    "portrange 5000-6000",
    "tcp port 443 or udp port 53",
    "ip6 host 2001:db8::1",
    "ip6 net 2001:db8::/48",
    "host 2001:db8::2 and udp",
    "ip proto 47",
    "proto 6",
    "vlan",
    "vlan and host 10.0.1.1",
    "host 10.0.1.1 or vlan",
    "host 10.0.1.1 or 10.0.3.3",
    "host 10.0.1.1 and not 10.0.2.2",
    "tcp[13] & 2 != 0",
    "(tcp[13] & 2) != 0 and host 10.0.1.1",
    "len > 100",
    "greater 40 and port 53",
    "src and dst net 10.0.0.0/16",
    "src or dst host 10.0.2.2",
    "arp or host 10.0.1.1",
    "not tcp and not udp",
    "ether host 00:00:00:00:00:01 or port 53",
    "not not host 10.0.1.1",
    "host 10.0.1.1 and port 443 or port 53",
    "port 53 or port 443 and host 10.0.1.1",
    "ip6 and tcp port 80",
    "sctp or host 10.9.9.9",
    "icmp6 and host 2001:db8::2",
    "not ip6",
    "vlan and tcp",
    "vlan and vlan and udp",
    "vlan and port 443",
    "vlan 100 and host 10.0.1.1",
    "not vlan and host 10.0.1.1",
    "host 10.0.1.1 or vlan and ip6",
    "vlan or tcp",
    "mpls or host 10.0.1.1",
    "port 443 or port 53",
    "tcp and not port 443",
    NULL,
};

/* Build a minimal, well-formed Ethernet frame of the flow. */
static uint32_t build(const flow_case *c, uint8_t *f)
{
    memset(f, 0, 256);
    uint32_t l4 = c->proto == 6 ? 20 : c->proto == 17 ? 8 : 8;
    uint32_t n, e = 12;
    for (int v = 0; v < c->vlans; v++) {
        f[e] = 0x81; f[e + 1] = 0x00; f[e + 3] = 100; /* 802.1Q, VLAN 100 */
        e += 4;
    }
    uint8_t *ip = f + e + 2;
    if (!c->v6) {
        f[e] = 0x08;
        ip[0] = 0x45;
        ip[3] = (uint8_t)(20 + l4);
        if (c->frag_later) ip[7] = 0x10; /* offset 128: the bytes after are data */
        ip[8] = 64;
        ip[9] = c->proto;
        inet_pton(AF_INET, c->src, ip + 12);
        inet_pton(AF_INET, c->dst, ip + 16);
        n = e + 2 + 20;
    } else {
        f[e] = 0x86; f[e + 1] = 0xdd;
        ip[0] = 0x60;
        ip[5] = (uint8_t)l4;
        ip[6] = c->proto;
        ip[7] = 64;
        inet_pton(AF_INET6, c->src, ip + 8);
        inet_pton(AF_INET6, c->dst, ip + 24);
        n = e + 2 + 40;
    }
    uint8_t *t = f + n;
    t[0] = (uint8_t)(c->sport >> 8); t[1] = (uint8_t)c->sport;
    t[2] = (uint8_t)(c->dport >> 8); t[3] = (uint8_t)c->dport;
    if (c->proto == 6) t[12] = 0x50;
    if (c->proto == 17) t[5] = 8;
    return n + l4;
}

static void test_against_libpcap(void)
{
    int checked = 0, decided = 0;
    for (int e = 0; exprs[e]; e++) {
        char err[512];
        filter_t *bpf = filter_new(exprs[e], err, sizeof err);
        if (!bpf) {
            fprintf(stderr, "libpcap rejected '%s': %s\n", exprs[e], err);
            test_failures++;
            continue;
        }
        exprscan_t *es = exprscan_new(exprs[e]);
        for (size_t i = 0; i < sizeof flows / sizeof flows[0]; i++) {
            uint8_t f[256];
            uint32_t n = build(&flows[i], f);
            pkt_info_t pi;
            ASSERT_EQ(decode_frame(f, n, n, &pi), DEC_OK);
            flowkey_t k;
            flowkey_from_pkt(&k, &pi, 0, NULL);
            int v = exprscan_eval(es, &k);
            int m = filter_match(bpf, f, n, n);
            checked++;
            if (v != ES_UNKNOWN) decided++;
            if ((v == ES_FALSE && m) || (v == ES_TRUE && !m)) {
                char d[256];
                exprscan_describe(es, d, sizeof d);
                fprintf(stderr, "'%s' on flow %zu: exprscan %d, libpcap %d (parse: %s)\n",
                        exprs[e], i, v, m, d);
                test_failures++;
            }
        }
        exprscan_free(es);
        filter_free(bpf);
    }
    /* The reader must actually decide most cases, or the index is useless. */
    ASSERT_TRUE(decided * 10 > checked * 7);
}

static void test_parse_shapes(void)
{
    char d[256];
    exprscan_t *es = exprscan_new("host 10.0.1.1 and port 443 or port 53");
    exprscan_describe(es, d, sizeof d);
    /* equal precedence, left to right: (host and port) or port */
    ASSERT_STREQ(d, "OR AND HOST PORT PORT");
    ASSERT_TRUE(exprscan_uses_index(es));
    exprscan_free(es);
    es = exprscan_new("tcp[13] & 2 != 0");
    ASSERT_TRUE(!exprscan_uses_index(es));
    exprscan_free(es);
    es = exprscan_new("host (10.0.0.1 or 10.0.0.2)");
    ASSERT_TRUE(!exprscan_parsed(es)); /* not followed: full scan, still exact */
    exprscan_free(es);
    es = exprscan_new("vlan 100 and host 10.0.1.1");
    exprscan_describe(es, d, sizeof d);
    ASSERT_STREQ(d, "AND VLAN HOST"); /* the host term reads one tag further in */
    exprscan_free(es);
}

static void test_odd_flows_always_candidates(void)
{
    flowkey_t odd;
    memset(&odd, 0, sizeof odd);
    for (int e = 0; exprs[e]; e++) {
        exprscan_t *es = exprscan_new(exprs[e]);
        ASSERT_TRUE(exprscan_eval(es, &odd) == ES_UNKNOWN);
        exprscan_free(es);
    }
}

int main(void)
{
    RUN(test_against_libpcap);
    RUN(test_parse_shapes);
    RUN(test_odd_flows_always_candidates);
    TEST_EXIT();
}
