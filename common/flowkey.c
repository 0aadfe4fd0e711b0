/* flowkey.c - directional flow keys for the store index (see flowkey.h). */
#include "flowkey.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

void flowkey_from_pkt(flowkey_t *k, const pkt_info_t *pi, uint32_t vni, const uint8_t *observer)
{
    memset(k, 0, sizeof *k);
    k->vni = vni;
    if (observer) memcpy(k->observer, observer, 16);
    /* IPv4 fragments are plain: libpcap reads ports only at fragment offset
     * 0, which is exactly when we have them. IPv6 fragments come with an
     * extension header and stay odd. */
    int plain = (pi->l3 == PKT_L3_IPV4 || pi->l3 == PKT_L3_IPV6) && pi->reason == DEC_OK &&
                !(pi->flags & PKT_F_IP6_EXT) && pi->proto != 132;
    if (!plain) return; /* FK_ODD, all else zero */
    k->kind = pi->l3 == PKT_L3_IPV4 ? FK_IPV4 : FK_IPV6;
    k->proto = pi->proto;
    k->vlans = pi->vlans;
    memcpy(k->src, pi->src, 16);
    memcpy(k->dst, pi->dst, 16);
    if (pi->flags & PKT_F_FRAG_LATER) {
        k->frag_later = 1;
    } else if (pi->proto == 6 || pi->proto == 17) {
        k->sport = pi->sport;
        k->dport = pi->dport;
    }
}

uint64_t flowkey_hash(const flowkey_t *k) { return flowkey_hash64(k); }

uint64_t flowkey_hash64(const void *key64)
{
    /* 64-bit multiply-xorshift over the eight words of the key. */
    uint64_t w[8], h = 0x9e3779b97f4a7c15ULL;
    memcpy(w, key64, sizeof w);
    for (int i = 0; i < 8; i++) {
        h ^= w[i];
        h *= 0xff51afd7ed558ccdULL;
        h ^= h >> 32;
    }
    return h;
}

int flowkey_equal(const flowkey_t *a, const flowkey_t *b) { return memcmp(a, b, sizeof *a) == 0; }

void flowkey_addr_str(const uint8_t a[16], char *buf, unsigned buflen)
{
    static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
    static const uint8_t zero[16];
    if (memcmp(a, mapped, 12) == 0) {
        /* By hand, as inet_ntop writes it: the JSON writers print three
         * addresses a record, and inet_ntop's sprintf was a fifth of a
         * record's cost. */
        char tmp[16];
        unsigned n = 0;
        for (int i = 12; i < 16; i++) {
            unsigned v = a[i];
            if (v >= 100) tmp[n++] = (char)('0' + v / 100);
            if (v >= 10) tmp[n++] = (char)('0' + v / 10 % 10);
            tmp[n++] = (char)('0' + v % 10);
            tmp[n++] = i < 15 ? '.' : 0;
        }
        if (n <= buflen) memcpy(buf, tmp, n);
        else if (buflen) buf[0] = 0;
    } else if (memcmp(a, zero, 16) == 0) {
        snprintf(buf, buflen, "::"); /* the observer of a local capture: in every record */
    } else {
        inet_ntop(AF_INET6, a, buf, buflen);
    }
}
