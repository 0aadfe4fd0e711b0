/* latency.c - mergeable latency histograms (see latency.h). */
#include "latency.h"

#include <inttypes.h>
#include <stdio.h>

int latency_bucket(int64_t ns)
{
    if (ns < 1000) return 0;
    uint64_t us = (uint64_t)ns / 1000;
    int e = 63 - __builtin_clzll(us);
    int sub = e >= 2 ? (int)((us >> (e - 2)) & 3) : (int)((us << (2 - e)) & 3);
    int b = 1 + 4 * e + sub;
    return b >= LATENCY_BUCKETS ? LATENCY_BUCKETS - 1 : b;
}

void latency_hist_text(const int64_t *hist, char *out, size_t len)
{
    int last = -1;
    for (int b = 0; b < LATENCY_BUCKETS; b++)
        if (hist[b]) last = b;
    size_t n = (size_t)snprintf(out, len, "{");
    for (int b = 0; b <= last && n < len; b++)
        n += (size_t)snprintf(out + n, len - n, "%s%" PRId64, b ? "," : "", hist[b]);
    if (n < len) snprintf(out + n, len - n, "}");
}
