/* latency.h - mergeable latency histograms, the one bucketing of the
 * coordinator's per-minute percentiles (monitors' series, monseries.h, and
 * the application records' aggregates, batch.c): log-linear buckets of
 * microseconds, 4 per power of two (bucket 0: under 1 us; b >= 1: from
 * (4 + (b-1) % 4) * 2^((b-1)/4) / 4 us, a quarter of that power wide: within
 * 12.5%), kept in PostgreSQL as bigint[] (trailing zeros cut), added by
 * mscope_hist_add() / mscope_hist_sum() and read by mscope_hist_quantile()
 * (schema v7, v8), which answers a bucket's middle.
 */
#ifndef MSCOPE_LATENCY_H
#define MSCOPE_LATENCY_H

#include <stddef.h>
#include <stdint.h>

#define LATENCY_BUCKETS 109 /* up to 2^27 us (134 s); longer counts in the last */

/* The bucket of a latency in ns (0 .. LATENCY_BUCKETS - 1). */
int latency_bucket(int64_t ns);

/* A histogram as a PostgreSQL array literal, "{1,0,3}": the buckets up to
 * the last one not empty ("{}" for none); out of LATENCY_HIST_TEXT bytes. */
#define LATENCY_HIST_TEXT (LATENCY_BUCKETS * 21 + 4)
void latency_hist_text(const int64_t *hist, char *out, size_t len);

#endif
