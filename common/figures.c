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
    char name[160];
    for (size_t i = 0; i < n; i++) {
        const figure_row *r = &rows[i];
        if (!r->metric) continue;
        int seen = 0; /* rendered with an earlier row of the same metric */
        for (size_t j = 0; j < i && !seen; j++)
            seen = rows[j].metric && !strcmp(rows[j].metric, r->metric);
        if (seen) continue;
        snprintf(name, sizeof name, "%s%s", prefix, r->metric);
        metrics_family(m, name, r->type == FIG_COUNTER ? "counter" : "gauge", r->help);
        for (size_t j = i; j < n; j++) {
            const figure_row *s = &rows[j];
            if (!s->metric || strcmp(s->metric, r->metric)) continue;
            const char *labels[] = { s->label, s->value, NULL };
            double v = figures__value(s, base, NULL) * (s->scale ? s->scale : 1);
            metrics_sample(m, name, s->label ? labels : NULL, v);
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
