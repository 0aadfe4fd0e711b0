/* hash.c - byte-string hashing (see hash.h).
 *
 * DESIGN: two 64-bit lanes, each word multiplied and rotated (the shape of
 * xxHash's inner loop), folded with the length at the end. About a byte per
 * cycle or better, which matters because the broker hashes every payload. */
#include "hash.h"

#include <string.h>

#define P1 0x9e3779b185ebca87ULL
#define P2 0xc2b2ae3d27d4eb4fULL

static inline uint64_t hash__rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

static inline uint64_t hash__round(uint64_t acc, uint64_t w)
{
    acc += w * P2;
    acc = hash__rotl(acc, 31);
    return acc * P1;
}

uint64_t hash_bytes(const void *p, size_t n, uint64_t seed)
{
    const uint8_t *b = p;
    uint64_t a1 = seed + P1, a2 = seed ^ P2;
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        uint64_t w1, w2;
        memcpy(&w1, b + i, 8);
        memcpy(&w2, b + i + 8, 8);
        a1 = hash__round(a1, w1);
        a2 = hash__round(a2, w2);
    }
    if (i + 8 <= n) {
        uint64_t w;
        memcpy(&w, b + i, 8);
        a1 = hash__round(a1, w);
        i += 8;
    }
    if (i < n) {
        uint64_t w = 0;
        memcpy(&w, b + i, n - i);
        a2 = hash__round(a2, w);
    }
    return hash_mix64(a1 ^ hash__rotl(a2, 27) ^ (uint64_t)n * P2);
}
