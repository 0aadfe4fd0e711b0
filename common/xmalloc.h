/* xmalloc.h - allocation that aborts on out-of-memory.
 *
 * A daemon that cannot get memory for its tables cannot do anything useful,
 * so instead of a NULL check at every call site these abort with a message
 * (as Redis' zmalloc does). Hot paths do not allocate at all.
 */
#ifndef MSCOPE_XMALLOC_H
#define MSCOPE_XMALLOC_H

#include <stddef.h>

void *xmalloc(size_t n);
void *xcalloc(size_t count, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);

/* n bytes at an address that is a multiple of align (a power of two, at
 * least sizeof(void *)), for O_DIRECT buffers; released with free(). */
void *xmalloc_aligned(size_t align, size_t n);

/* Grow *arr (element size elem) so it holds at least need elements, doubling
 * *cap; used for amortised, rarely-taken growth of per-segment arrays. */
void xgrow(void **arr, size_t *cap, size_t need, size_t elem);

#endif
