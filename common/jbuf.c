/* jbuf.c - the JSON appends too long to inline (see jbuf.h). */
#include "jbuf.h"

#include "flowkey.h"

size_t jb_utf8_len(const uint8_t *s, size_t n)
{
    uint8_t c = s[0];
    size_t len;
    uint32_t min, cp;
    if (c < 0x80) return 1;
    if (c >= 0xc2 && c <= 0xdf) len = 2, min = 0x80, cp = c & 0x1f;
    else if (c >= 0xe0 && c <= 0xef) len = 3, min = 0x800, cp = c & 0x0f;
    else if (c >= 0xf0 && c <= 0xf4) len = 4, min = 0x10000, cp = c & 0x07;
    else return 0;
    if (len > n) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
    return len;
}

void jb_bytes(jbuf *b, const void *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const uint8_t *p = s;
    size_t run = 0; /* bytes copied as they are, appended in one go */
    JB_LIT(b, "\"");
    for (size_t i = 0; i < n;) {
        /* Eight printable ASCII bytes without '"' or '\\' at a time while
         * they last, then the next eight (or the rest) a byte at a time. */
        while (n - i >= 8) {
            uint64_t w = jb_word(p + i);
            if (jb_word_high(w) | jb_word_below(w, 0x20) | jb_word_has(w, '"') | jb_word_has(w, '\\'))
                break;
            run += 8;
            i += 8;
        }
        for (size_t stop = n - i >= 8 ? i + 8 : n; i < stop;) {
            uint8_t c = p[i];
            size_t keep = 0;
            if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') keep = 1;
            else if (c >= 0x80) keep = jb_utf8_len(p + i, n - i);
            if (keep) {
                run += keep;
                i += keep;
                continue;
            }
            jb_mem(b, (const char *)p + i - run, run);
            run = 0;
            if (c == '"') JB_LIT(b, "\\\"");
            else if (c == '\\') JB_LIT(b, "\\\\");
            else {
                char esc[6] = { '\\', 'u', '0', '0', hex[c >> 4], hex[c & 15] };
                jb_mem(b, esc, sizeof esc);
            }
            i++;
        }
    }
    jb_mem(b, (const char *)p + n - run, run);
    JB_LIT(b, "\"");
}

void jb_ip(jbuf *b, const uint8_t ip[16])
{
    /* Straight into the buffer when the most an address takes fits (no
     * copy, no strlen: three addresses a record). */
    if (b->len - b->used > FLOWKEY_ADDR_ROOM + 2) {
        char *p = b->p + b->used;
        p[0] = '"';
        unsigned n = flowkey_addr_fmt(ip, p + 1);
        p[n + 1] = '"';
        b->used += n + 2;
        return;
    }
    char addr[FLOWKEY_ADDR_ROOM];
    unsigned n = flowkey_addr_fmt(ip, addr);
    JB_LIT(b, "\"");
    jb_mem(b, addr, n);
    JB_LIT(b, "\"");
}
