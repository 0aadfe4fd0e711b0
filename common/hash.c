/* hash.c - byte-string hashing (see hash.h).
 *
 * DESIGN: hash_bytes has two 64-bit lanes, each word multiplied and rotated
 * (the shape of xxHash's inner loop), folded with the length at the end:
 * several bytes a cycle. Each step is invertible, so a second message with
 * the same hash is easy to write (flip a word's top bit, correct the next
 * word of its lane): fine for spreading flows over tools, not for deciding
 * that a packet was seen before. hash_sip13 is SipHash as published, read
 * as little-endian words on any host; its head lets a caller hash a few
 * fixed header fields and then the packet's bytes in place, no copy. */
#include "hash.h"

#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

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

#define SIP_ROUND(v0, v1, v2, v3) \
    do { \
        v0 += v1; v1 = hash__rotl(v1, 13); v1 ^= v0; v0 = hash__rotl(v0, 32); \
        v2 += v3; v3 = hash__rotl(v3, 16); v3 ^= v2; \
        v0 += v3; v3 = hash__rotl(v3, 21); v3 ^= v0; \
        v2 += v1; v1 = hash__rotl(v1, 17); v1 ^= v2; v2 = hash__rotl(v2, 32); \
    } while (0)

static inline uint64_t hash__le64(const uint8_t *p)
{
    uint64_t w;
    memcpy(&w, p, 8);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    w = __builtin_bswap64(w);
#endif
    return w;
}

/* Inlined into both callers, so each one's round counts are constants. */
static inline __attribute__((always_inline)) uint64_t
hash__sip(const uint64_t key[2], const uint8_t *head, size_t nhead, const uint8_t *p, size_t n,
          int crounds, int drounds)
{
    uint64_t v0 = key[0] ^ 0x736f6d6570736575ULL, v1 = key[1] ^ 0x646f72616e646f6dULL;
    uint64_t v2 = key[0] ^ 0x6c7967656e657261ULL, v3 = key[1] ^ 0x7465646279746573ULL;
#define SIP_WORD(w) \
    do { \
        uint64_t m_ = (w); \
        v3 ^= m_; \
        for (int r_ = 0; r_ < crounds; r_++) SIP_ROUND(v0, v1, v2, v3); \
        v0 ^= m_; \
    } while (0)
    for (size_t i = 0; i + 8 <= nhead; i += 8) SIP_WORD(hash__le64(head + i));
    size_t i = 0;
    for (; i + 8 <= n; i += 8) SIP_WORD(hash__le64(p + i));
    uint8_t last[8] = { 0 };
    if (n > i) memcpy(last, p + i, n - i);
    last[7] = (uint8_t)(nhead + n);
    SIP_WORD(hash__le64(last));
#undef SIP_WORD
    v2 ^= 0xff;
    for (int r = 0; r < drounds; r++) SIP_ROUND(v0, v1, v2, v3);
    return v0 ^ v1 ^ v2 ^ v3;
}

uint64_t hash_sip13(const uint64_t key[2], const void *head, size_t nhead, const void *p, size_t n)
{
    return hash__sip(key, head, nhead & ~(size_t)7, p, n, 1, 3);
}

uint64_t hash_sip24(const uint64_t key[2], const void *head, size_t nhead, const void *p, size_t n)
{
    return hash__sip(key, head, nhead & ~(size_t)7, p, n, 2, 4);
}

void hash_random(void *out, size_t n)
{
    uint8_t *o = out;
    size_t got = 0;
    while (got < n) {
        ssize_t r = getrandom(o + got, n - got, GRND_NONBLOCK);
        if (r <= 0) break;
        got += (size_t)r;
    }
    if (got == n) return;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t s = (uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15ULL ^ (uint64_t)ts.tv_sec << 20 ^
                 (uint64_t)getpid();
    for (; got < n; got++) {
        s = hash_mix64(s + P1);
        o[got] = (uint8_t)s;
    }
}
