/* lineout.h - JSON lines gathered in a 256 KiB buffer and written to a file
 * a block at a time, flushed when asked and at least once a second: what
 * --flows-json (recout.c's thread) and --app-json (the application thread)
 * write through.
 *
 * Why not stdio's own buffer: it is st_blksize, 4 KiB, so a write() every
 * few records - 15 500 calls an import of the bench capture, half the
 * output thread's CPU when the file was a real one (docs/BENCHMARKS.md) -
 * and glibc's setvbuf ignores a size without a buffer. One thread owns a
 * lineout; out stays the caller's to close after lineout_free.
 */
#ifndef MSCOPE_LINEOUT_H
#define MSCOPE_LINEOUT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct lineout {
    FILE *out;
    char *buf;          /* LINEOUT_BUF bytes: lines not yet written */
    size_t used;
    int64_t flushed_ns; /* the last flush (monotonic) */
} lineout;

void lineout_init(lineout *lo, FILE *out);

/* Where to write the next line, with room for max bytes (at most a
 * quarter of the buffer) and its newline. */
char *lineout_line(lineout *lo, size_t max);

/* The line written at lineout_line() is len bytes; len <= 0: none. */
void lineout_commit(lineout *lo, int len);

/* Write and flush what is gathered. */
void lineout_flush(lineout *lo);

/* lineout_flush() if a second has passed since the last one: a stream
 * that never pauses still reaches its reader. */
void lineout_tick(lineout *lo);

/* Flush, and free the buffer. */
void lineout_free(lineout *lo);

#endif
