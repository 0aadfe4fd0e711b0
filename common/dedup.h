/* dedup.h - drop the second copy of a packet seen twice within a window
 * (both ends of a connection mirrored: one packet, two observations).
 *
 * A packet is named by a 64-bit keyed hash (SipHash-1-3, hash.h) of its
 * invariant bytes (dedup_key), under a random key each table makes for
 * itself:
 *   IPv4: the IP header without TTL and header checksum (version, IHL, TOS,
 *         total length, ID, flags, fragment offset, protocol, addresses,
 *         options), then everything after it up to the IP total length as
 *         captured (transport header and payload);
 *   IPv6: the IP header without the hop limit, then everything after it;
 *   other frames: the whole frame after the Ethernet header and VLAN tags.
 * Ethernet addresses, VLAN tags, the VXLAN VNI and the outer (observation
 * point) addresses are not compared: they are what differs between two
 * observations of one packet. Keyed, because a packet taken for a duplicate
 * is dropped unseen: with a name anyone can compute, whoever sends packets
 * past a mirrored interface could send a harmless one first named like the
 * attack that follows (a decoy), and no tool would see the attack. Without
 * the key two different packets share a name with probability 2^-64. The
 * table is fixed-size (no allocation per packet): 4-way buckets of (hash,
 * time); a full bucket forgets its oldest.
 */
#ifndef MSCOPE_DEDUP_H
#define MSCOPE_DEDUP_H

#include "decode.h"

#include <stdint.h>

typedef struct dedup dedup_t;

/* A table of about `slots` entries (rounded up to a power of two, at least
 * 64) remembering packets for window_ns, with a key of its own (from the
 * kernel's random source). Returns the table (aborts on OOM). */
dedup_t *dedup_new(uint32_t slots, int64_t window_ns);

/* The name in table d of a decoded frame: its invariant bytes' hash under
 * d's key (see above). */
uint64_t dedup_key(const dedup_t *d, const uint8_t *frame, uint32_t caplen, const pkt_info_t *pi);

/* Returns 1 when key was seen within the window before ts_ns (the packet is
 * a duplicate: drop it), else remembers it and returns 0. The time of the
 * first copy is kept, so a third copy is measured against the first. */
int dedup_check(dedup_t *d, uint64_t key, int64_t ts_ns);

void dedup_free(dedup_t *d);

#endif
