/* hash.h - fast non-cryptographic hashing of byte strings (dedup keys,
 * symmetric flow hashes, member seeds). Stable across runs and builds, so a
 * flow keeps its group member across restarts and reloads. */
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

#endif
