/* crc32c.c - CRC-32C with the SSE 4.2 instruction when the CPU has it.
 *
 * DESIGN: the choice is made once (a function pointer set on first use); the
 * hardware loop takes 8 bytes per instruction, the fallback is slicing-by-8
 * over tables built on first use. Both give the same results (unit test).
 */
#include "crc32c.h"

#include <pthread.h>
#include <string.h>

#define CRC32C_POLY 0x82f63b78u /* reflected Castagnoli polynomial */

static uint32_t crc32c__table[8][256];
static uint32_t (*crc32c__impl)(const uint8_t *, size_t, uint32_t);
static pthread_once_t crc32c__once = PTHREAD_ONCE_INIT;

static uint32_t crc32c__sw(const uint8_t *p, size_t n, uint32_t crc)
{
    while (n && ((uintptr_t)p & 7)) {
        crc = crc32c__table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
        n--;
    }
    while (n >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        v ^= crc; /* little-endian: the low four bytes take the running CRC */
        crc = crc32c__table[7][v & 0xff] ^ crc32c__table[6][(v >> 8) & 0xff] ^
              crc32c__table[5][(v >> 16) & 0xff] ^ crc32c__table[4][(v >> 24) & 0xff] ^
              crc32c__table[3][(v >> 32) & 0xff] ^ crc32c__table[2][(v >> 40) & 0xff] ^
              crc32c__table[1][(v >> 48) & 0xff] ^ crc32c__table[0][v >> 56];
        p += 8;
        n -= 8;
    }
    while (n--) crc = crc32c__table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) static uint32_t crc32c__hw(const uint8_t *p, size_t n, uint32_t crc)
{
    uint64_t c = crc;
    while (n && ((uintptr_t)p & 7)) {
        c = __builtin_ia32_crc32qi((uint32_t)c, *p++);
        n--;
    }
    while (n >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        c = __builtin_ia32_crc32di(c, v);
        p += 8;
        n -= 8;
    }
    while (n--) c = __builtin_ia32_crc32qi((uint32_t)c, *p++);
    return (uint32_t)c;
}
#endif

static void crc32c__init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = c & 1 ? (c >> 1) ^ CRC32C_POLY : c >> 1;
        crc32c__table[0][i] = c;
    }
    for (int t = 1; t < 8; t++)
        for (int i = 0; i < 256; i++)
            crc32c__table[t][i] = (crc32c__table[t - 1][i] >> 8) ^ crc32c__table[0][crc32c__table[t - 1][i] & 0xff];
    crc32c__impl = crc32c__sw;
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("sse4.2")) crc32c__impl = crc32c__hw;
#endif
}

uint32_t crc32c(const void *p, size_t n, uint32_t crc)
{
    pthread_once(&crc32c__once, crc32c__init);
    return ~crc32c__impl(p, n, ~crc);
}

uint32_t crc32c__software(const void *p, size_t n, uint32_t crc)
{
    pthread_once(&crc32c__once, crc32c__init);
    return ~crc32c__sw(p, n, ~crc);
}
