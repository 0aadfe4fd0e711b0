/* lineout.c - JSON lines written a block at a time (lineout.h). */
#include "lineout.h"

#include "timeparse.h"
#include "xmalloc.h"

#include <stdlib.h>

#define LINEOUT_BUF (256u << 10)
#define LINEOUT_FLUSH_NS 1000000000LL

void lineout_init(lineout *lo, FILE *out)
{
    lo->out = out;
    lo->buf = xmalloc(LINEOUT_BUF);
    lo->used = 0;
    lo->flushed_ns = timeparse_mono_ns();
}

/* The gathered lines in one write() (stdio passes a block larger than its
 * buffer on whole). */
static void lineout__drain(lineout *lo)
{
    if (lo->used) fwrite(lo->buf, 1, lo->used, lo->out);
    lo->used = 0;
}

char *lineout_line(lineout *lo, size_t max)
{
    if (LINEOUT_BUF - lo->used < max + 1) lineout__drain(lo);
    return lo->buf + lo->used;
}

void lineout_commit(lineout *lo, int len)
{
    if (len <= 0) return;
    lo->buf[lo->used + (size_t)len] = '\n';
    lo->used += (size_t)len + 1;
}

void lineout_flush(lineout *lo)
{
    lineout__drain(lo);
    fflush(lo->out);
    lo->flushed_ns = timeparse_mono_ns();
}

void lineout_tick(lineout *lo)
{
    if (timeparse_mono_ns() - lo->flushed_ns >= LINEOUT_FLUSH_NS) lineout_flush(lo);
}

void lineout_free(lineout *lo)
{
    if (!lo->buf) return;
    lineout_flush(lo);
    free(lo->buf);
    lo->buf = NULL;
}
