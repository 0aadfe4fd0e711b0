/* figures.c - counters as stats.json and Prometheus metrics from one table
 * (see figures.h). */
#include "figures.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FIGURES_FILE_MIN 16384 /* bytes given to each stats file up front */

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

/* DESIGN: stats.json usually lives on the disk the daemon fills, and must
 * keep saying what happens when that disk is full. So the file and its
 * companion path.tmp are given their blocks once (FIGURES_FILE_MIN, or more
 * when the JSON outgrows them) and then rewritten in place: the new JSON
 * goes into path.tmp, padded with spaces to the file's size (JSON allows
 * trailing white space), and renameat2(RENAME_EXCHANGE) swaps the two
 * names. A reader sees the old file or the new one, never a torn one, and
 * no write needs a new block. Where the exchange is not supported, or the
 * file does not exist yet, a plain rename does (the next write then makes
 * a new path.tmp, which needs room once). */
int figures_write_file(json_t *o, const char *path)
{
    int saved;
    char tmp[4200];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) {
        errno = ENAMETOOLONG;
        return -1;
    }
    char *text = json_dumps(o, JSON_INDENT(2));
    if (!text) {
        errno = ENOMEM;
        return -1;
    }
    size_t n = strlen(text);
    int rc = -1, fd = open(tmp, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) goto out;
    size_t size = (size_t)st.st_size, want = n + 1 > FIGURES_FILE_MIN ? n + 1 : FIGURES_FILE_MIN;
    if (size < want) {
        want = (want + 4095) & ~(size_t)4095;
        if ((errno = posix_fallocate(fd, 0, (off_t)want)) != 0) goto out;
        size = want;
    }
    char pad[4096];
    memset(pad, ' ', sizeof pad);
    text[n] = '\n'; /* replaces the NUL: the text is written by length */
    if (pwrite(fd, text, n + 1, 0) != (ssize_t)(n + 1)) goto out;
    for (size_t off = n + 1; off < size;) {
        size_t k = size - off < sizeof pad ? size - off : sizeof pad;
        if (pwrite(fd, pad, k, (off_t)off) != (ssize_t)k) goto out;
        off += k;
    }
    rc = renameat2(AT_FDCWD, tmp, AT_FDCWD, path, RENAME_EXCHANGE);
    if (rc < 0 && (errno == ENOENT || errno == EINVAL) && (rc = rename(tmp, path)) == 0) {
        /* The first write: give the next one its file now, while there is
         * room (best effort: without it the next write makes one). */
        close(fd);
        fd = open(tmp, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        if (fd >= 0) posix_fallocate(fd, 0, (off_t)size);
    }
out:
    saved = errno;
    if (fd >= 0) close(fd);
    free(text);
    errno = saved;
    return rc;
}
