/* fuzz_decode.c - the packet decoders (common/decode.c) and everything that
 * reads a decoded frame on the packet paths.
 *
 * One input is tried four ways, as the daemons meet frames:
 *   - an inner Ethernet frame (file import, live interface): decode_frame,
 *     whole and as a capture cut by a snaplen (origlen beyond caplen);
 *   - an outer frame of a capture of mirrored traffic (--decap vxlan):
 *     decode_outer_vxlan, then its inner frame;
 *   - a UDP payload from the VXLAN listener: decode_vxlan, then its inner
 *     frame.
 * Each decoded frame then goes where the recorder and the broker send it:
 * the index key (flowkey), the analysis fields and hash (flowtab), the
 * broker's dedup key and load-sharing hash. Besides crashes, the checks
 * below hold the decoder to what its callers assume: every offset it reports
 * lies inside the captured bytes it read, payload lengths stay within the
 * frame on the wire.
 */
#include "decode.h"
#include "dedup.h"
#include "flowkey.h"
#include "flowtab.h"
#include "fuzz.h"
#include "tool.h"

#include <string.h>

/* decode.c's ETH_HDR + IPv4 + UDP + VXLAN: the least an outer frame takes. */
#define FUZZ_OUTER_MIN (14 + 20 + 8 + 8)

static void fuzz__check_info(const pkt_info_t *pi, uint32_t caplen, uint32_t origlen, int reason)
{
    if (origlen < caplen) origlen = caplen; /* as decode_frame does */
    FUZZ_CHECK(reason == pi->reason);
    FUZZ_CHECK(reason >= 0 && reason < DEC__COUNT);
    FUZZ_CHECK(strcmp(decode_reason_name(reason), "unknown") != 0);
    FUZZ_CHECK(pi->l3_off <= caplen);
    FUZZ_CHECK(caplen < 14 || 14 + 4u * pi->vlans <= caplen);
    FUZZ_CHECK(pi->tcp_wscale >= -1 && pi->tcp_wscale <= 14);
    if (pi->flags & PKT_F_FRAG_LATER) FUZZ_CHECK(!(pi->flags & PKT_F_L4));
    if (pi->flags & PKT_F_L4) {
        /* The ports (or ICMP type and code) were read from here. */
        FUZZ_CHECK(pi->l3 == PKT_L3_IPV4 || pi->l3 == PKT_L3_IPV6);
        FUZZ_CHECK(pi->l4_off > pi->l3_off && pi->l4_off + 4 <= caplen);
        if (pi->proto == 6) FUZZ_CHECK(pi->l4_off + 20 <= caplen);
        if (pi->payload_off) {
            FUZZ_CHECK(pi->payload_off >= pi->l4_off + 4);
            FUZZ_CHECK((uint64_t)pi->payload_off + pi->payload_len <= origlen);
        }
    }
    if (reason == DEC_OK && (pi->l3 == PKT_L3_IPV4 || pi->l3 == PKT_L3_IPV6))
        FUZZ_CHECK(pi->l3_off + pi->ip_len <= origlen);
}

/* What the recorder's receive thread and the broker's packet thread do with
 * a frame after decoding it (recorder/ingest.c ingest__frame, broker/broker.c
 * broker_batch, broker/tool.c tool_packet). */
static void fuzz__frame(const uint8_t *p, uint32_t caplen, uint32_t origlen, uint32_t vni,
                        const uint8_t *observer)
{
    pkt_info_t pi;
    int reason = decode_frame(p, caplen, origlen, &pi);
    fuzz__check_info(&pi, caplen, origlen, reason);

    flowkey_t k;
    flowkey_from_pkt(&k, &pi, vni, observer);
    volatile uint64_t sink = flowkey_hash(&k);
    if (k.kind != FK_ODD) {
        FUZZ_CHECK(reason == DEC_OK && k.kind == pi.l3);
        char a[64];
        flowkey_addr_str(k.src, a, sizeof a);
        flowkey_addr_str(k.dst, a, sizeof a);
    }
    pkt_ana ana;
    uint64_t ah = flowtab_ana_from(&ana, &pi, vni, observer);
    FUZZ_CHECK(ah == flowtab_hash(&ana, vni, observer));
    sink ^= ah;
    static dedup_t *dd;
    if (!dd) dd = dedup_new(64, 1000);
    sink ^= dedup_key(dd, p, caplen, &pi);
    sink ^= tool_flow_hash(p, caplen, &pi);
    (void)sink;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    flowkey_set_seed(0); /* the same buckets every run: a finding replays as found */
    static int init;
    if (!init) {
        fuzz_quiet();
        init = 1;
    }
    if (size > 262144) return 0; /* PCAPIO_SNAPLEN: no source hands over more */
    uint32_t n = (uint32_t)size;

    /* An inner frame, whole and sliced (origlen as a snaplen leaves it). */
    fuzz__frame(data, n, n, 0, NULL);
    fuzz__frame(data, n, n + 65535, 0, NULL);

    /* A capture of mirrored traffic, decapsulated as --decap vxlan does. */
    uint32_t inner, vni;
    uint8_t outer[16];
    for (int sliced = 0; sliced < 2; sliced++) {
        uint32_t origlen = sliced ? n + 65535 : n;
        int r = decode_outer_vxlan(data, n, origlen, DECODE_VXLAN_PORT, &inner, &vni, outer);
        FUZZ_CHECK(r >= 0 && r < VX__COUNT);
        FUZZ_CHECK(strcmp(vxlan_reason_name(r), "unknown") != 0);
        if (r != VX_OK) continue;
        FUZZ_CHECK(inner >= FUZZ_OUTER_MIN && inner <= n);
        FUZZ_CHECK(vni <= 0xffffff);
        fuzz__frame(data + inner, n - inner, origlen - inner, vni, outer);
    }

    /* A UDP payload from the VXLAN listener (recorder and broker). */
    if (decode_vxlan(data, n, &vni) == VX_OK) {
        FUZZ_CHECK(n >= DECODE_VXLAN_HDR && vni <= 0xffffff);
        uint8_t from[16] = { 0 };
        fuzz__frame(data + DECODE_VXLAN_HDR, n - DECODE_VXLAN_HDR, n - DECODE_VXLAN_HDR, vni, from);
    }
    return 0;
}
