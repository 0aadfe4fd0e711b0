/* flowkey.c - directional flow keys for the store index, their hash (from
 * a secret of each process) and addresses as text (see flowkey.h). */
#include "flowkey.h"

#include "hash.h"

#include <stddef.h>
#include <string.h>

uint64_t flowkey_seed;

/* At load, before main() and any thread (hash_random: where it comes from). */
__attribute__((constructor)) static void flowkey__seed_init(void)
{
    hash_random(&flowkey_seed, sizeof flowkey_seed);
}

void flowkey_set_seed(uint64_t seed) { flowkey_seed = seed; }

/* The key's last two words (vni, ports; kind, proto, vlans, frag_later,
 * pad) are written whole: the hash reads the key by 64-bit words right
 * after, and a word made of several smaller stores cannot be forwarded to
 * that load (it stalled the reader's hash until the stores reached the
 * cache). */
_Static_assert(offsetof(flowkey_t, vni) == 48 && offsetof(flowkey_t, sport) == 52 &&
                   offsetof(flowkey_t, dport) == 54 && offsetof(flowkey_t, kind) == 56 &&
                   offsetof(flowkey_t, proto) == 57 && offsetof(flowkey_t, vlans) == 58 &&
                   offsetof(flowkey_t, frag_later) == 59,
               "flowkey_from_pkt writes the last 16 bytes as two words");
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "flowkey_from_pkt assumes little-endian");

void flowkey_from_pkt(flowkey_t *k, const pkt_info_t *pi, uint32_t vni, const uint8_t *observer)
{
    static const uint8_t zero[16];
    memcpy(k->observer, observer ? observer : zero, 16);
    uint64_t w6 = vni, w7 = 0;
    /* IPv4 fragments are plain: libpcap reads ports only at fragment offset
     * 0, which is exactly when we have them. IPv6 fragments come with an
     * extension header and stay odd. */
    int plain = (pi->l3 == PKT_L3_IPV4 || pi->l3 == PKT_L3_IPV6) && pi->reason == DEC_OK &&
                !(pi->flags & PKT_F_IP6_EXT) && pi->proto != 132;
    if (plain) {
        w7 = (uint64_t)(pi->l3 == PKT_L3_IPV4 ? FK_IPV4 : FK_IPV6) | (uint64_t)pi->proto << 8 |
             (uint64_t)pi->vlans << 16;
        memcpy(k->src, pi->src, 16);
        memcpy(k->dst, pi->dst, 16);
        if (pi->flags & PKT_F_FRAG_LATER)
            w7 |= (uint64_t)1 << 24;
        else if (pi->proto == 6 || pi->proto == 17)
            w6 |= (uint64_t)pi->sport << 32 | (uint64_t)pi->dport << 48;
    } else { /* FK_ODD, all else zero */
        memcpy(k->src, zero, 16);
        memcpy(k->dst, zero, 16);
    }
    memcpy((uint8_t *)k + 48, &w6, 8);
    memcpy((uint8_t *)k + 56, &w7, 8);
}

uint64_t flowkey_hash(const flowkey_t *k) { return flowkey_hash64(k); }

uint64_t flowkey_hash64(const void *key64)
{
    /* 64-bit multiply-xorshift over the eight words of the key, each read
     * where it is: a copy of the key first became `rep movs`, whose stores
     * the word loads could not take forwarded (40% of the reader's own
     * time stalled there). */
    const uint8_t *p = key64;
    uint64_t h = 0x9e3779b97f4a7c15ULL ^ flowkey_seed;
    /* Unrolled: every packet is hashed here, and the loop's own counting
     * was a third of its instructions. */
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++) {
        uint64_t w;
        memcpy(&w, p + 8 * i, 8);
        h ^= w;
        h *= 0xff51afd7ed558ccdULL;
        h ^= h >> 32;
    }
    return h;
}

int flowkey_equal(const flowkey_t *a, const flowkey_t *b) { return memcmp(a, b, sizeof *a) == 0; }

/* An IPv6 address as glibc's inet_ntop writes it (RFC 4291's form with the
 * longest run of two or more zero groups, the first of equals, as "::";
 * an IPv4-compatible address's last 32 bits dotted), into tmp (>= 46
 * bytes); returns the length with the NUL. */
static unsigned flowkey__ip6_str(const uint8_t a[16], char *tmp)
{
    static const char hex[] = "0123456789abcdef";
    unsigned w[8];
    int best = -1, best_len = 0, cur = -1, cur_len = 0;
    for (int i = 0; i < 8; i++) {
        w[i] = (unsigned)a[2 * i] << 8 | a[2 * i + 1];
        if (!w[i]) {
            if (cur < 0) cur = i, cur_len = 0;
            cur_len++;
        }
        if ((w[i] || i == 7) && cur >= 0) {
            if (best < 0 || cur_len > best_len) best = cur, best_len = cur_len;
            cur = -1;
        }
    }
    if (best_len < 2) best = -1;
    unsigned n = 0;
    for (int i = 0; i < 8; i++) {
        if (best >= 0 && i >= best && i < best + best_len) {
            if (i == best) tmp[n++] = ':';
            continue;
        }
        if (i) tmp[n++] = ':';
        if (i == 6 && best == 0 && (best_len == 6 || (best_len == 5 && w[5] == 0xffff))) {
            for (int j = 12; j < 16; j++) {
                unsigned v = a[j];
                if (v >= 100) tmp[n++] = (char)('0' + v / 100);
                if (v >= 10) tmp[n++] = (char)('0' + v / 10 % 10);
                tmp[n++] = (char)('0' + v % 10);
                if (j < 15) tmp[n++] = '.';
            }
            tmp[n++] = 0;
            return n;
        }
        for (int shift = 12; shift >= 0; shift -= 4)
            if (w[i] >> shift || !shift) tmp[n++] = hex[(w[i] >> shift) & 15];
    }
    if (best >= 0 && best + best_len == 8) tmp[n++] = ':';
    tmp[n++] = 0;
    return n;
}

/* An octet in decimal at out, without branches (an address's octets are
 * anything, so the branches mispredicted): always 3 bytes written (its
 * digits, then what the next append overwrites), its length returned. */
static inline unsigned flowkey__octet(unsigned v, char *out)
{
    char d[5] = { (char)('0' + v / 100), (char)('0' + v / 10 % 10), (char)('0' + v % 10), 0, 0 };
    unsigned len = 1 + (v >= 10) + (v >= 100);
    memcpy(out, d + 3 - len, 3); /* d[3 - len] .. d[5 - len]: within d for any length */
    return len;
}

unsigned flowkey_addr_fmt(const uint8_t a[16], char out[FLOWKEY_ADDR_ROOM])
{
    static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
    /* By hand, as inet_ntop writes them: the JSON writers print three
     * addresses a record (the observer "::" in every one), and inet_ntop's
     * sprintf per group was a fifth of a record's cost, an IPv6 address's
     * ~3 600 instructions. */
    uint64_t hi, lo;
    memcpy(&hi, a, 8);
    memcpy(&lo, a + 8, 8);
    if (!(hi | lo)) { /* the observer of a local capture: at once, not group by group */
        memcpy(out, "::", 2);
        return 2;
    }
    if (memcmp(a, mapped, 12) == 0) {
        unsigned n = 0;
        for (int i = 12; i < 16; i++) {
            n += flowkey__octet(a[i], out + n);
            out[n++] = '.';
        }
        return n - 1;
    }
    return flowkey__ip6_str(a, out) - 1; /* its NUL, within the room, is not counted */
}

void flowkey_addr_str(const uint8_t a[16], char *buf, unsigned buflen)
{
    char tmp[FLOWKEY_ADDR_ROOM];
    unsigned n = flowkey_addr_fmt(a, tmp);
    if (n < buflen) {
        memcpy(buf, tmp, n);
        buf[n] = 0;
    } else if (buflen) {
        buf[0] = 0;
    }
}
