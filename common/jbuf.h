/* jbuf.h - appending JSON to a caller's fixed buffer, for the writers of
 * records that go out by the ten thousand a second (flowrec.c, apprec.c).
 *
 * Hand-rolled appends instead of printf: a busy import prints tens of
 * thousands of records a second, and formatting them with vfprintf cost
 * more than analysing the packets. An append that does not fit sets
 * overflow and every later one does nothing, so a writer checks once at
 * the end.
 */
#ifndef MSCOPE_JBUF_H
#define MSCOPE_JBUF_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct jbuf {
    char *p;
    size_t len, used;
    int overflow;
} jbuf;

/* 1 when n more bytes fit (one byte always stays free), else 0 with
 * overflow set. An overflow also shrinks len to used, so that every later
 * append fails this one comparison. */
static inline int jb_room(jbuf *b, size_t n)
{
    if (n >= b->len - b->used) {
        b->overflow = 1;
        b->len = b->used;
        return 0;
    }
    return 1;
}

static inline void jb_mem(jbuf *b, const char *s, size_t n)
{
    if (!jb_room(b, n)) return;
    memcpy(b->p + b->used, s, n);
    b->used += n;
}

static inline void jb_str(jbuf *b, const char *s) { jb_mem(b, s, strlen(s)); }

/* A string literal: its length is known at compile time. */
#define JB_LIT(b, lit) jb_mem((b), (lit), sizeof(lit) - 1)

/* true or false, as literals (an expression, like the other appends) */
#define JB_BOOL(b, v) ((v) ? JB_LIT((b), "true") : JB_LIT((b), "false"))

/* ,"key": - one literal, copied at once */
#define JB_KEY(b, key) JB_LIT((b), ",\"" key "\":")

/* The number of decimal digits of v: from its bit length, corrected by
 * one comparison. */
static inline unsigned jb_digits(uint64_t v)
{
    static const uint64_t pow10[20] = {
        1ull, 10ull, 100ull, 1000ull, 10000ull, 100000ull, 1000000ull, 10000000ull,
        100000000ull, 1000000000ull, 10000000000ull, 100000000000ull, 1000000000000ull,
        10000000000000ull, 100000000000000ull, 1000000000000000ull, 10000000000000000ull,
        100000000000000000ull, 1000000000000000000ull, 10000000000000000000ull,
    };
    v |= 1; /* the same number of digits (v + 1 is never a power of ten for an even v) */
    unsigned t = (unsigned)(64 - __builtin_clzll(v)) * 1233 >> 12; /* 1233 / 4096 ~ log10(2) */
    return t + 1 - (v < pow10[t]);
}

/* Written in place, two digits a division, eight at a time from the right
 * in two independent halves: a record holds a dozen numbers of up to 19
 * digits (its times), and a division by 10 a digit, then a copy, was most
 * of their cost; a chain of nine dependent divisions by 100, a third. */
static inline void jb_u64(jbuf *b, uint64_t v)
{
    static const char d2[] = "00010203040506070809101112131415161718192021222324252627282930313233"
                             "34353637383940414243444546474849505152535455565758596061626364656667"
                             "6869707172737475767778798081828384858687888990919293949596979899";
    if (v < 10) { /* most counters: one digit */
        if (jb_room(b, 1)) b->p[b->used++] = (char)('0' + v);
        return;
    }
    unsigned n = jb_digits(v);
    if (!jb_room(b, n)) return;
    char *e = b->p + b->used + n;
    while (v >= 100000000) {
        uint32_t low = (uint32_t)(v % 100000000), hi4 = low / 10000, lo4 = low % 10000;
        v /= 100000000;
        e -= 8;
        memcpy(e, d2 + 2 * (hi4 / 100), 2);
        memcpy(e + 2, d2 + 2 * (hi4 % 100), 2);
        memcpy(e + 4, d2 + 2 * (lo4 / 100), 2);
        memcpy(e + 6, d2 + 2 * (lo4 % 100), 2);
    }
    uint32_t w = (uint32_t)v;
    while (w >= 100) {
        uint32_t r = w % 100;
        w /= 100;
        e -= 2;
        memcpy(e, d2 + 2 * r, 2);
    }
    if (w >= 10) {
        e -= 2;
        memcpy(e, d2 + 2 * w, 2);
    } else {
        *--e = (char)('0' + w);
    }
    b->used += n;
}

static inline void jb_i64(jbuf *b, int64_t v)
{
    if (v < 0) {
        JB_LIT(b, "-");
        jb_u64(b, (uint64_t)0 - (uint64_t)v);
    } else {
        jb_u64(b, (uint64_t)v);
    }
}

/* Eight bytes at once (read from p in any alignment), for writers that
 * copy runs of plain characters: nonzero when a byte of w is 0x80 or
 * above (jb_word_high), below n (n at most 0x80), or equal to c. */
#define JB_ONES 0x0101010101010101ull
static inline uint64_t jb_word(const void *p)
{
    uint64_t w;
    memcpy(&w, p, 8);
    return w;
}
static inline uint64_t jb_word_high(uint64_t w) { return w & JB_ONES * 0x80; }
static inline uint64_t jb_word_below(uint64_t w, uint8_t n) { return (w - JB_ONES * n) & ~w & JB_ONES * 0x80; }
static inline uint64_t jb_word_has(uint64_t w, uint8_t c) { return jb_word_below(w ^ JB_ONES * c, 1); }

/* Any bytes as a JSON string: quotes, backslashes and control characters
 * escaped; valid UTF-8 sequences kept; every other byte as \u00XX (its
 * Latin-1 reading), so the output is always valid JSON and no byte is
 * silently dropped. */
void jb_bytes(jbuf *b, const void *s, size_t n);

/* The length of the valid UTF-8 sequence at s (n > 0 bytes left): 1 for
 * ASCII, 2-4 for a multi-byte character, 0 when it is not one (RFC 3629,
 * as jansson judges: no overlong forms, surrogates or code points past
 * U+10FFFF). */
size_t jb_utf8_len(const uint8_t *s, size_t n);

/* The address (IPv4 mapped) as a JSON string. */
void jb_ip(jbuf *b, const uint8_t ip[16]);

#endif
