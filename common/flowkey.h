/* flowkey.h - the directional flow key the store indexes packets by.
 *
 * A key is one direction of one conversation as seen from one observation
 * point (VXLAN VNI + outer source address, or nothing for a local capture),
 * with the number of VLAN tags in front of it and whether it is an IPv4
 * fragment other than the first (no ports). Packets whose headers a BPF
 * filter could read differently than we do - IPv6 extension headers, non-IP,
 * anything malformed, SCTP - share a single "odd" key per observation point:
 * the search engine always scans those, so the index never hides a packet
 * tcpdump would find.
 */
#ifndef MSCOPE_FLOWKEY_H
#define MSCOPE_FLOWKEY_H

#include "decode.h"

#include <stdint.h>

enum { FK_ODD = 0, FK_IPV4 = 4, FK_IPV6 = 6 };

typedef struct flowkey {
    uint8_t src[16], dst[16]; /* IPv4 mapped into IPv6 */
    uint8_t observer[16];     /* outer source address; zero when captured locally */
    uint32_t vni;
    uint16_t sport, dport;    /* 0 without TCP/UDP */
    uint8_t kind;             /* FK_* */
    uint8_t proto;
    uint8_t vlans;            /* 802.1Q/802.1ad tags before the IP header */
    uint8_t frag_later;       /* IPv4 fragment after the first: no ports */
    uint8_t pad[4];
} flowkey_t;

/* Build the key of a decoded packet. observer may be NULL. */
void flowkey_from_pkt(flowkey_t *k, const pkt_info_t *pi, uint32_t vni, const uint8_t *observer);

uint64_t flowkey_hash(const flowkey_t *k);

/* The same 64-bit mix over any 64-byte key. */
uint64_t flowkey_hash64(const void *key64);

/* The secret the in-memory hash tables' hashes start from (flowkey_hash
 * and the flow table's): random in every process, so that nobody sending
 * packets past a mirrored interface can work out, ahead, keys that all
 * fall into one bucket and make every lookup walk them (with a fixed start,
 * a few thousand crafted flows could hold a recorder's analysis, and its
 * capture behind it, to a few thousand packets a second). Set once, at
 * load; nothing on disk depends on it (the catalog's summaries hash on
 * their own). flowkey_set_seed() is for tests and fuzzers that want the
 * same collisions every run: call it before any hash is taken. */
extern uint64_t flowkey_seed;
void flowkey_set_seed(uint64_t seed);
int flowkey_equal(const flowkey_t *a, const flowkey_t *b);

/* Format an address (IPv4 mapped shown as dotted quad) into buf (>= 46 bytes). */
void flowkey_addr_str(const uint8_t a[16], char *buf, unsigned buflen);

/* The same text at out, without a NUL: its length returned (45 at most).
 * Up to FLOWKEY_ADDR_ROOM bytes of out may be written. */
#define FLOWKEY_ADDR_ROOM 48
unsigned flowkey_addr_fmt(const uint8_t a[16], char out[FLOWKEY_ADDR_ROOM]);

_Static_assert(sizeof(flowkey_t) == 64, "flowkey_t is hashed as eight 64-bit words");

#endif
