/* metrics.h - Prometheus text exposition (format 0.0.4) for /metrics.
 *
 * A daemon renders its counters into a metrics_t on each scrape: one
 * metrics_family() line pair (HELP, TYPE) per metric, then its samples.
 * Label values are escaped here. Histograms are fixed-bucket, filled with
 * atomic adds so any thread may observe while the loop thread renders.
 */
#ifndef MSCOPE_METRICS_H
#define MSCOPE_METRICS_H

#include <stddef.h>
#include <stdint.h>

typedef struct metrics metrics_t;

metrics_t *metrics_new(void);
void metrics_free(metrics_t *m); /* accepts NULL */

/* Empty the text for the next scrape (the buffer is kept). */
void metrics_reset(metrics_t *m);

/* The text so far (NUL-terminated), its length in *len. */
const char *metrics_text(const metrics_t *m, size_t *len);

/* "# HELP name help" and "# TYPE name type"; type is "counter", "gauge"
 * or "histogram". */
void metrics_family(metrics_t *m, const char *name, const char *type, const char *help);

/* One sample: name{k1="v1",k2="v2"} value. labels is a list of key, value
 * pairs ending with NULL (or NULL for none). */
void metrics_sample(metrics_t *m, const char *name, const char *const *labels, double value);

/* Shorthands: a family with one unlabelled sample. */
void metrics_counter(metrics_t *m, const char *name, const char *help, double value);
void metrics_gauge(metrics_t *m, const char *name, const char *help, double value);

/* ---- histograms --------------------------------------------------------- */

#define METRICS_BUCKETS_MAX 16

typedef struct metrics_hist {
    const double *bounds;  /* upper bounds, ascending (seconds, bytes, ...) */
    int nbounds;
    uint64_t counts[METRICS_BUCKETS_MAX + 1]; /* per bucket; last is +Inf */
    uint64_t count;
    double sum;
} metrics_hist;

/* Buckets for latencies in seconds, 1 ms to 60 s. */
extern const double metrics_latency_bounds[];
extern const int metrics_latency_nbounds;

void metrics_hist_init(metrics_hist *h, const double *bounds, int nbounds);

/* Add one observation (thread-safe). */
void metrics_hist_observe(metrics_hist *h, double v);

/* The family and its _bucket/_sum/_count samples. */
void metrics_histogram(metrics_t *m, const char *name, const char *help, const metrics_hist *h);

/* process_cpu_seconds_total, process_resident_memory_bytes,
 * process_virtual_memory_bytes, process_open_fds, process_max_fds and
 * process_start_time_seconds, from /proc/self. */
void metrics_process(metrics_t *m);

#endif
