/* metrics.c - Prometheus text exposition (see metrics.h). */
#include "metrics.h"

#include "xmalloc.h"

#include <dirent.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

struct metrics {
    char *buf;
    size_t len, cap;
};

metrics_t *metrics_new(void)
{
    metrics_t *m = xcalloc(1, sizeof *m);
    m->cap = 16384;
    m->buf = xmalloc(m->cap);
    m->buf[0] = 0;
    return m;
}

void metrics_free(metrics_t *m)
{
    if (!m) return;
    free(m->buf);
    free(m);
}

void metrics_reset(metrics_t *m)
{
    m->len = 0;
    m->buf[0] = 0;
}

const char *metrics_text(const metrics_t *m, size_t *len)
{
    *len = m->len;
    return m->buf;
}

static void metrics__printf(metrics_t *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void metrics__printf(metrics_t *m, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(m->buf + m->len, m->cap - m->len, fmt, ap);
        va_end(ap);
        if (n >= 0 && (size_t)n < m->cap - m->len) {
            m->len += (size_t)n;
            return;
        }
        m->cap *= 2;
        m->buf = xrealloc(m->buf, m->cap);
    }
}

static void metrics__putc(metrics_t *m, char c)
{
    if (m->len + 2 > m->cap) m->buf = xrealloc(m->buf, m->cap *= 2);
    m->buf[m->len++] = c;
    m->buf[m->len] = 0;
}

void metrics_family(metrics_t *m, const char *name, const char *type, const char *help)
{
    /* HELP text escapes backslash and newline only. */
    metrics__printf(m, "# HELP %s ", name);
    for (const char *p = help; *p; p++) {
        if (*p == '\\') metrics__printf(m, "\\\\");
        else if (*p == '\n') metrics__printf(m, "\\n");
        else metrics__putc(m, *p);
    }
    metrics__printf(m, "\n# TYPE %s %s\n", name, type);
}

static void metrics__value(metrics_t *m, double v)
{
    if (isnan(v)) metrics__printf(m, " NaN\n");
    else if (isinf(v)) metrics__printf(m, v > 0 ? " +Inf\n" : " -Inf\n");
    else if (v == (double)(int64_t)v && fabs(v) < 9e15) metrics__printf(m, " %lld\n", (long long)v);
    else metrics__printf(m, " %.17g\n", v);
}

static void metrics__labels(metrics_t *m, const char *const *labels, const char *extra_k,
                            const char *extra_v)
{
    int any = 0;
    for (int i = 0; labels && labels[i] && labels[i + 1]; i += 2) {
        metrics__printf(m, "%s%s=\"", any++ ? "," : "{", labels[i]);
        for (const char *p = labels[i + 1]; *p; p++) {
            if (*p == '\\') metrics__printf(m, "\\\\");
            else if (*p == '"') metrics__printf(m, "\\\"");
            else if (*p == '\n') metrics__printf(m, "\\n");
            else metrics__putc(m, *p);
        }
        metrics__putc(m, '"');
    }
    if (extra_k) metrics__printf(m, "%s%s=\"%s\"", any++ ? "," : "{", extra_k, extra_v);
    if (any) metrics__putc(m, '}');
}

void metrics_sample(metrics_t *m, const char *name, const char *const *labels, double value)
{
    metrics__printf(m, "%s", name);
    metrics__labels(m, labels, NULL, NULL);
    metrics__value(m, value);
}

void metrics_counter(metrics_t *m, const char *name, const char *help, double value)
{
    metrics_family(m, name, "counter", help);
    metrics_sample(m, name, NULL, value);
}

void metrics_gauge(metrics_t *m, const char *name, const char *help, double value)
{
    metrics_family(m, name, "gauge", help);
    metrics_sample(m, name, NULL, value);
}

const double metrics_latency_bounds[] = { 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                          0.25,  0.5,    1,     2.5,  5,     10,   30, 60 };
const int metrics_latency_nbounds = sizeof metrics_latency_bounds / sizeof metrics_latency_bounds[0];

void metrics_hist_init(metrics_hist *h, const double *bounds, int nbounds)
{
    memset(h, 0, sizeof *h);
    h->bounds = bounds;
    h->nbounds = nbounds > METRICS_BUCKETS_MAX ? METRICS_BUCKETS_MAX : nbounds;
}

void metrics_hist_observe(metrics_hist *h, double v)
{
    int i = 0;
    while (i < h->nbounds && v > h->bounds[i]) i++;
    __atomic_fetch_add(&h->counts[i], 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&h->count, 1, __ATOMIC_RELAXED);
    /* A double has no atomic add: compare-and-swap its bits. */
    double old, sum;
    __atomic_load(&h->sum, &old, __ATOMIC_RELAXED);
    do {
        sum = old + v;
    } while (!__atomic_compare_exchange(&h->sum, &old, &sum, 1, __ATOMIC_RELAXED, __ATOMIC_RELAXED));
}

void metrics_histogram(metrics_t *m, const char *name, const char *help, const metrics_hist *h)
{
    metrics_family(m, name, "histogram", help);
    uint64_t cum = 0;
    char le[32];
    for (int i = 0; i <= h->nbounds; i++) {
        cum += __atomic_load_n(&h->counts[i], __ATOMIC_RELAXED);
        if (i < h->nbounds) snprintf(le, sizeof le, "%g", h->bounds[i]);
        else snprintf(le, sizeof le, "+Inf");
        metrics__printf(m, "%s_bucket", name);
        metrics__labels(m, NULL, "le", le);
        metrics__value(m, (double)cum);
    }
    double sum;
    __atomic_load(&h->sum, &sum, __ATOMIC_RELAXED);
    metrics__printf(m, "%s_sum", name);
    metrics__value(m, sum);
    metrics__printf(m, "%s_count", name);
    metrics__value(m, (double)cum);
}

void metrics_process(metrics_t *m)
{
    long tick = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
    FILE *f = fopen("/proc/self/stat", "r");
    char buf[1024];
    unsigned long utime = 0, stime = 0, vsize = 0;
    long rss = 0;
    unsigned long long start = 0;
    if (f && fgets(buf, sizeof buf, f)) {
        /* Fields after the command name, which may hold spaces: from the last ')'. */
        char *p = strrchr(buf, ')');
        if (p && sscanf(p + 2,
                        "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu %*d %*d %*d %*d "
                        "%*d %*d %llu %lu %ld",
                        &utime, &stime, &start, &vsize, &rss) != 5)
            utime = stime = 0;
    }
    if (f) fclose(f);
    double boot = 0;
    f = fopen("/proc/stat", "r");
    while (f && fgets(buf, sizeof buf, f))
        if (!strncmp(buf, "btime ", 6)) boot = strtod(buf + 6, NULL);
    if (f) fclose(f);
    int fds = 0;
    DIR *d = opendir("/proc/self/fd");
    for (struct dirent *e; d && (e = readdir(d));)
        if (e->d_name[0] != '.') fds++;
    if (d) closedir(d), fds--; /* the directory's own descriptor */
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    metrics_counter(m, "process_cpu_seconds_total", "Total user and system CPU time spent in seconds.",
                    (double)(utime + stime) / (double)tick);
    metrics_gauge(m, "process_resident_memory_bytes", "Resident memory size in bytes.",
                  (double)rss * (double)page);
    metrics_gauge(m, "process_virtual_memory_bytes", "Virtual memory size in bytes.", (double)vsize);
    metrics_gauge(m, "process_open_fds", "Number of open file descriptors.", fds);
    metrics_gauge(m, "process_max_fds", "Maximum number of open file descriptors.",
                  rl.rlim_cur == RLIM_INFINITY ? -1 : (double)rl.rlim_cur);
    metrics_gauge(m, "process_start_time_seconds",
                  "Start time of the process since unix epoch in seconds.",
                  boot + (double)start / (double)tick);
}
