/* hash.h - hashing of byte strings: hash_bytes, fast and unkeyed (symmetric
 * flow hashes, member seeds: stable across runs and builds, so a flow keeps
 * its group member across restarts and reloads), and hash_sip13, keyed, for
 * names that whoever sends the packets must not be able to make collide
 * (the dedup table's: dedup.h); and the random bytes such keys come from. */
#ifndef MSCOPE_HASH_H
#define MSCOPE_HASH_H

#include <stddef.h>
#include <stdint.h>

/* Final avalanche of a 64-bit value (murmur3's fmix64). */
static inline uint64_t hash_mix64(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

/* Hash n bytes at p, continuing from seed (pass a previous result to chain
 * several pieces). Reads 8 bytes at a time; any alignment. */
uint64_t hash_bytes(const void *p, size_t n, uint64_t seed);

/* SipHash-1-3 (Aumasson and Bernstein's keyed PRF with one compression and
 * three finalization rounds, as Rust's and CPython's hash tables use it)
 * of head (nhead bytes, a multiple of 8) followed by the n bytes at p,
 * under key. Without the key nobody can make two messages hash alike
 * (2^-64 a pair), whereas hash_bytes's collisions can be made by hand, for
 * any seed. hash_sip24 is the same with two and four rounds: SipHash-2-4,
 * whose published test vectors check this code. */
uint64_t hash_sip13(const uint64_t key[2], const void *head, size_t nhead, const void *p, size_t n);
uint64_t hash_sip24(const uint64_t key[2], const void *head, size_t nhead, const void *p, size_t n);

/* n random bytes from the kernel (getrandom), or, where it cannot answer
 * yet (early boot), from the clock and the process id. */
void hash_random(void *out, size_t n);

#endif
