/* figures.c - counters as stats.json and Prometheus metrics from one table
 * (see figures.h). */
#include "figures.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

static double figures__value(const figure_row *r, const void *base, json_t **json)
{
    if (r->type == FIG_GAUGE_S) {
        int64_t v;
        memcpy(&v, (const char *)base + r->off, sizeof v);
        if (json) *json = json_integer((json_int_t)v);
        return (double)v;
    }
    uint64_t v;
    memcpy(&v, (const char *)base + r->off, sizeof v);
    if (json) *json = json_integer((json_int_t)v);
    return (double)v;
}

json_t *figures_json(const figure_row *rows, size_t n, const void *base)
{
    json_t *o = json_object();
    for (size_t i = 0; i < n; i++) {
        const figure_row *r = &rows[i];
        json_t *v, *into = o;
        if (!r->key) continue;
        figures__value(r, base, &v);
        if (r->group) {
            into = json_object_get(o, r->group);
            if (!into) {
                into = json_object();
                json_object_set_new(o, r->group, into);
            }
        }
        json_object_set_new(into, r->key, v);
    }
    return o;
}

void figures_metrics(const figure_row *rows, size_t n, const void *base, const char *prefix,
                     metrics_t *m)
{
    figures_metrics_each(rows, n, &base, NULL, 1, prefix, m);
}

void figures_metrics_each(const figure_row *rows, size_t n, const void *const *bases,
                          const char *const *const *labels, size_t ninst, const char *prefix,
                          metrics_t *m)
{
    char name[160];
    const char *l[2 * FIGURES_LABELS_MAX + 3];
    for (size_t i = 0; i < n && ninst; i++) {
        const figure_row *r = &rows[i];
        if (!r->metric) continue;
        int seen = 0; /* rendered with an earlier row of the same metric */
        for (size_t j = 0; j < i && !seen; j++)
            seen = rows[j].metric && !strcmp(rows[j].metric, r->metric);
        if (seen) continue;
        snprintf(name, sizeof name, "%s%s", prefix, r->metric);
        metrics_family(m, name, r->type == FIG_COUNTER ? "counter" : "gauge", r->help);
        for (size_t k = 0; k < ninst; k++) {
            int nl = 0;
            const char *const *il = labels ? labels[k] : NULL;
            for (; il && il[0] && il[1] && nl < 2 * FIGURES_LABELS_MAX; il += 2) {
                l[nl++] = il[0];
                l[nl++] = il[1];
            }
            for (size_t j = i; j < n; j++) {
                const figure_row *s = &rows[j];
                if (!s->metric || strcmp(s->metric, r->metric)) continue;
                int e = nl;
                if (s->label) {
                    l[e++] = s->label;
                    l[e++] = s->value;
                }
                l[e] = NULL;
                double v = figures__value(s, bases[k], NULL) * (s->scale ? s->scale : 1);
                metrics_sample(m, name, e ? l : NULL, v);
            }
        }
    }
}

int figures_write_file(json_t *o, const char *path)
{
    char tmp[4200];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) return -1;
    if (json_dump_file(o, tmp, JSON_INDENT(2)) != 0) return -1;
    return rename(tmp, path);
}
