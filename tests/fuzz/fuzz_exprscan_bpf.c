/* fuzz_exprscan_bpf.c - the index's reading of an expression against
 * libpcap's: the search must answer exactly what `tcpdump -r` answers.
 *
 * An input is an expression, optionally followed by a NUL and packet
 * descriptions, 4 bytes each: source and destination (nibbles indexing the
 * addresses the expression names, plus one of each family it does not),
 * source and destination port (likewise), protocol, VLAN tags and fragment
 * offset. Without descriptions a fixed spread of packets is used. Each
 * packet is built as a frame, decoded and keyed as the recorder does, and
 * matched with libpcap's compiled filter. For every frame libpcap matches
 * whose flow is not an odd one (those are always read), exprscan_eval must
 * not say ES_FALSE and the index lookups must name its flow: otherwise the
 * search would skip a packet tcpdump finds. Expressions libpcap refuses are
 * not exprscan's to judge (the search refuses them first). Nor are packets
 * that libpcap's optimized program (tcpdump's, and the search's) matches
 * but its unoptimized program of the same expression does not: libpcap
 * 1.10's optimizer is wrong there (`host 11.0.1.1 and not 31 and not
 * 60.1.1 and not 10.0.0.2` matches a packet from 10.0.0.2), and the index
 * follows the expression's meaning (crash-optimizer-* in the corpus).
 *
 * Names never resolve here (noresolve.c): libpcap would ask DNS for "host
 * foo" on every such input, which is slow and talks to the network.
 */
#include "decode.h"
#include "exprscan.h"
#include "filter.h"
#include "flowkey.h"
#include "fuzz.h"
#include "fuzz_expr.h"

#include <pcap/pcap.h>
#include <string.h>

/* The packet against the expression's unoptimized program: what the
 * expression means, where libpcap's optimizer is wrong. */
static int fuzz__unoptimized_match(const char *expr, const uint8_t *frame, uint32_t len)
{
    pcap_t *dead = pcap_open_dead(DLT_EN10MB, 262144);
    FUZZ_CHECK(dead);
    struct bpf_program prog;
    int m = 1; /* not compiled: count it as a match, the finding stands */
    if (pcap_compile(dead, &prog, expr, 0, PCAP_NETMASK_UNKNOWN) == 0) {
        struct pcap_pkthdr h = { .caplen = len, .len = len };
        m = pcap_offline_filter(&prog, &h, frame) != 0;
        pcap_freecode(&prog);
    }
    pcap_close(dead);
    return m;
}

#define FUZZ_NPKTS 64
#define FUZZ_FRAME 128

static void wr16(uint8_t *p, unsigned v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

/* One frame from a 4-byte description; returns its length. */
static uint32_t fuzz__frame(const fuzz_values *v, const uint8_t d[4], uint8_t *f)
{
    static const uint8_t protos[8] = { 6, 17, 6, 17, 1, 58, 47, 132 };
    int s = (d[0] & 15) % v->naddr, t = (d[0] >> 4) % v->naddr;
    if (v->is4[s] != v->is4[t]) t = s; /* one family per packet */
    int v4 = v->is4[s];
    uint8_t proto = protos[d[2] & 7];
    if (proto == 1 && !v4) proto = 58;
    if (proto == 58 && v4) proto = 1;
    int tags = (d[2] >> 3) & 3;
    if (tags == 3) tags = 0;
    int later = v4 && (d[2] & 0x20) && (d[2] & 0x40); /* a fragment after the first */
    memset(f, 0, FUZZ_FRAME);
    memcpy(f, "\x02\0\0\0\0\x02\x02\0\0\0\0\x01", 12);
    uint32_t o = 12;
    for (int i = 0; i < tags; i++) {
        wr16(f + o, i == 0 && tags == 2 ? 0x88a8 : 0x8100);
        wr16(f + o + 2, (d[3] & 0x80) ? 100 : 7 + (unsigned)i); /* the VLAN id */
        o += 4;
    }
    wr16(f + o, v4 ? 0x0800 : 0x86dd);
    o += 2;
    uint32_t l3 = o, l4len = proto == 6 ? 20 : 8, paylen = d[3] & 15;
    uint32_t iplen = (v4 ? 20 : 40) + l4len + paylen;
    if (v4) {
        f[o] = 0x45;
        wr16(f + o + 2, iplen);
        if (later) wr16(f + o + 6, 0x2000 | 185); /* more fragments, offset 1480 */
        f[o + 8] = 64;
        f[o + 9] = proto;
        memcpy(f + o + 12, v->addr[s] + 12, 4);
        memcpy(f + o + 16, v->addr[t] + 12, 4);
        o += 20;
    } else {
        f[o] = 0x60;
        wr16(f + o + 4, iplen - 40);
        f[o + 6] = proto;
        f[o + 7] = 64;
        memcpy(f + o + 8, v->addr[s], 16);
        memcpy(f + o + 24, v->addr[t], 16);
        o += 40;
    }
    uint16_t sp = v->port[(d[1] & 15) % v->nport], dp = v->port[(d[1] >> 4) % v->nport];
    if (proto == 1 || proto == 58) {
        f[o] = (d[3] & 0x40) ? 0 : 8; /* echo reply / request */
    } else {
        wr16(f + o, sp);
        wr16(f + o + 2, dp);
        if (proto == 6) {
            f[o + 12] = 0x50;
            f[o + 13] = (d[3] & 0x20) ? 0x02 : 0x18; /* SYN, or PSH|ACK */
            wr16(f + o + 14, 65535);
        } else if (proto == 17) {
            wr16(f + o + 4, l4len + paylen);
        }
    }
    (void)l3;
    return o + l4len + paylen;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    flowkey_set_seed(0); /* the same buckets every run: a finding replays as found */
    static int init;
    if (!init) {
        fuzz_quiet();
        init = 1;
    }
    if (size > 4096) return 0;
    size_t elen = strnlen((const char *)data, size);
    char *expr = malloc(elen + 1);
    memcpy(expr, data, elen);
    expr[elen] = 0;
    char err[512];
    filter_t *flt = filter_new(expr, err, sizeof err);
    if (!flt) { /* libpcap refuses it: so does the search */
        free(expr);
        return 0;
    }

    /* The packets: described by the input, or a fixed spread. */
    uint8_t desc[FUZZ_NPKTS][4];
    int n = 0;
    if (elen < size) {
        const uint8_t *p = data + elen + 1;
        size_t left = size - elen - 1;
        for (; n < FUZZ_NPKTS && left >= 4; n++, p += 4, left -= 4) memcpy(desc[n], p, 4);
    }
    if (!n) {
        for (; n < FUZZ_NPKTS; n++) {
            desc[n][0] = (uint8_t)(n * 0x13);
            desc[n][1] = (uint8_t)(n * 0x25 + 0x10);
            desc[n][2] = (uint8_t)(n % 8 | (n / 8 % 3) << 3);
            desc[n][3] = (uint8_t)n;
        }
    }
    fuzz_values v;
    fuzz_values_from(&v, expr);
    uint8_t frames[FUZZ_NPKTS][FUZZ_FRAME];
    uint32_t lens[FUZZ_NPKTS];
    flowkey_t keys[FUZZ_NPKTS];
    uint32_t ids[FUZZ_NPKTS];
    for (int i = 0; i < n; i++) {
        lens[i] = fuzz__frame(&v, desc[i], frames[i]);
        pkt_info_t pi;
        decode_frame(frames[i], lens[i], lens[i], &pi);
        flowkey_from_pkt(&keys[i], &pi, 0, NULL);
    }

    exprscan_t *e = exprscan_new(expr);
    char d[256];
    exprscan_describe(e, d, sizeof d);
    segidx_t *ix = fuzz_index(keys, n, ids);
    long nc;
    int all;
    uint32_t *cand = fuzz_candidates(e, ix, &nc, &all);
    for (int i = 0; i < n; i++) {
        if (keys[i].kind == FK_ODD) continue; /* always read */
        if (!filter_match(flt, frames[i], lens[i], lens[i])) continue;
        int r = exprscan_eval(e, &keys[i]);
        int found = all || fuzz_in(cand, nc, ids[i]);
        if (r != ES_FALSE && found) continue;
        if (!fuzz__unoptimized_match(expr, frames[i], lens[i])) continue; /* libpcap's optimizer */
        char s[64], t[64];
        flowkey_addr_str(keys[i].src, s, sizeof s);
        flowkey_addr_str(keys[i].dst, t, sizeof t);
        fprintf(stderr, "'%s' (%s) matches %s:%u > %s:%u proto %u vlans %u frag_later %u in "
                "libpcap, but exprscan %s\n", expr, d, s, keys[i].sport, t, keys[i].dport,
                keys[i].proto, keys[i].vlans, keys[i].frag_later,
                r == ES_FALSE ? "rules the flow out" : "does not name it a candidate");
        FUZZ_CHECK(!"the index would hide a packet tcpdump finds");
    }
    free(cand);
    segidx_free(ix);
    exprscan_free(e);
    filter_free(flt);
    free(expr);
    return 0;
}
