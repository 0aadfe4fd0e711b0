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

static inline void jb_mem(jbuf *b, const char *s, size_t n)
{
    if (b->overflow || n >= b->len - b->used) {
        b->overflow = 1;
        return;
    }
    memcpy(b->p + b->used, s, n);
    b->used += n;
}

static inline void jb_str(jbuf *b, const char *s) { jb_mem(b, s, strlen(s)); }

/* A string literal: its length is known at compile time. */
#define JB_LIT(b, lit) jb_mem((b), (lit), sizeof(lit) - 1)

/* ,"key": - one literal, copied at once */
#define JB_KEY(b, key) JB_LIT((b), ",\"" key "\":")

static inline void jb_u64(jbuf *b, uint64_t v)
{
    char tmp[24];
    int i = sizeof tmp;
    do tmp[--i] = (char)('0' + v % 10);
    while ((v /= 10));
    jb_mem(b, tmp + i, sizeof tmp - (size_t)i);
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
