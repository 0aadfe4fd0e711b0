/* figures.h - a daemon's counters defined once, as table rows that give
 * each one's stats.json key and its Prometheus name, type, label and help;
 * stats.json and /metrics are both rendered from the table, so they cannot
 * disagree or miss a figure (Redis' static_configs[] idea, for counters).
 *
 * A daemon keeps its figures in a plain struct of 64-bit fields, fills it
 * from its modules, and points the rows at the fields by offset.
 */
#ifndef MSCOPE_FIGURES_H
#define MSCOPE_FIGURES_H

#include "metrics.h"

#include <jansson.h>
#include <stddef.h>

enum figure_type {
    FIG_COUNTER, /* uint64_t, only grows; the metric name ends in _total */
    FIG_GAUGE,   /* uint64_t */
    FIG_GAUGE_S, /* int64_t (times, may be negative) */
};

typedef struct figure_row {
    const char *key;    /* stats.json key; NULL: a metric only */
    const char *group;  /* stats.json object it sits in (NULL: top level) */
    const char *metric; /* Prometheus name after the daemon's prefix; NULL: JSON only */
    const char *label;  /* one label for rows sharing a metric ("reason"), or NULL */
    const char *value;  /* ... and its value */
    enum figure_type type;
    size_t off;         /* offsetof(the daemon's figures struct, field) */
    const char *help;   /* for the first row of each metric */
    double scale;       /* the metric is value * scale (0 means 1): e.g. ns to seconds */
} figure_row;

/* The stats.json object: rows in order, grouped rows in nested objects.
 * Returns a new reference. */
json_t *figures_json(const figure_row *rows, size_t n, const void *base);

/* Every row with a metric, as prefix + metric, rows of one metric
 * together under one HELP/TYPE. */
void figures_metrics(const figure_row *rows, size_t n, const void *base, const char *prefix,
                     metrics_t *m);

/* The same for several instances of one set of rows (one per tool, per
 * queue, ...): each metric's samples for every instance together under one
 * HELP/TYPE, each sample labelled with its instance's labels (key, value
 * pairs ending with NULL; labels itself may be NULL for none) before the
 * row's own label. Nothing is rendered when ninst is 0. */
#define FIGURES_LABELS_MAX 4
void figures_metrics_each(const figure_row *rows, size_t n, const void *const *bases,
                          const char *const *const *labels, size_t ninst, const char *prefix,
                          metrics_t *m);

/* Write a JSON value to path so that a reader always sees a whole file, and
 * so that it keeps being written when the disk is full (see figures.c).
 * Returns 0 or -1 (errno set). */
int figures_write_file(json_t *o, const char *path);

#endif
