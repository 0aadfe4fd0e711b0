/* timeparse.c - RFC 3339, Unix seconds and "ago" durations (see timeparse.h). */
#include "timeparse.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Written once at start (before threads), read by every thread after. */
static int64_t timeparse__skew_ns;

void timeparse_set_skew_ns(int64_t ns) { timeparse__skew_ns = ns; }

int64_t timeparse_skew_ns(void) { return timeparse__skew_ns; }

int64_t timeparse_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec + timeparse__skew_ns;
}

int64_t timeparse_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Read exactly n digits. */
static int timeparse__digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)(*p)[i])) return -1;
        v = v * 10 + ((*p)[i] - '0');
    }
    *p += n;
    *out = v;
    return 0;
}

/* ".123" -> 123000000 ns; up to 9 digits kept, more ignored. */
static int64_t timeparse__fraction(const char **p)
{
    int64_t ns = 0;
    int n = 0;
    if (**p != '.') return 0;
    (*p)++;
    while (isdigit((unsigned char)**p)) {
        if (n < 9) {
            ns = ns * 10 + (**p - '0');
            n++;
        }
        (*p)++;
    }
    while (n++ < 9) ns *= 10;
    return ns;
}

static int timeparse__rfc3339(const char *s, int64_t *out)
{
    struct tm tm = { 0 };
    int y, mo, d, h, mi, sec;
    const char *p = s;
    if (timeparse__digits(&p, 4, &y) || *p++ != '-' || timeparse__digits(&p, 2, &mo) ||
        *p++ != '-' || timeparse__digits(&p, 2, &d))
        return -1;
    if (*p != 'T' && *p != 't' && *p != ' ') return -1;
    p++;
    if (timeparse__digits(&p, 2, &h) || *p++ != ':' || timeparse__digits(&p, 2, &mi) ||
        *p++ != ':' || timeparse__digits(&p, 2, &sec))
        return -1;
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60) return -1;
    int64_t frac = timeparse__fraction(&p);
    int64_t offset = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int sign = *p++ == '-' ? -1 : 1, oh, om;
        if (timeparse__digits(&p, 2, &oh) || *p++ != ':' || timeparse__digits(&p, 2, &om))
            return -1;
        offset = sign * (oh * 3600 + om * 60);
    } else {
        return -1; /* RFC 3339 requires a zone; guessing local time misleads. */
    }
    if (*p) return -1;
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    int64_t t = (int64_t)timegm(&tm) - offset;
    /* int64 nanoseconds end in 2262 (and begin in 1677). */
    if (t > TIMEPARSE_MAX_SEC || t < -TIMEPARSE_MAX_SEC) return -1;
    *out = t * 1000000000LL + frac;
    return 0;
}

static int timeparse__unix(const char *s, int64_t *out)
{
    const char *p = s;
    int64_t sec = 0;
    if (!isdigit((unsigned char)*p)) return -1;
    while (isdigit((unsigned char)*p)) {
        sec = sec * 10 + (*p++ - '0');
        if (sec > 9000000000LL) return -1;
    }
    int64_t frac = timeparse__fraction(&p);
    if (*p) return -1;
    *out = sec * 1000000000LL + frac;
    return 0;
}

/* "1h30m", "15m", "500ms", "2d": a sum of number+unit pairs, at most max
 * nanoseconds. */
static int timeparse__sum(const char *s, int64_t max, int64_t *out)
{
    static const struct { const char *u; int64_t ns; } units[] = {
        { "ms", 1000000LL }, { "us", 1000LL }, { "ns", 1LL }, { "s", 1000000000LL },
        { "m", 60000000000LL }, { "h", 3600000000000LL }, { "d", 86400000000000LL },
        { "w", 7 * 86400000000000LL },
    };
    const char *p = s;
    int64_t total = 0;
    if (!*p) return -1;
    while (*p) {
        if (!isdigit((unsigned char)*p)) return -1;
        double v = 0;
        int n = 0;
        if (sscanf(p, "%lf%n", &v, &n) != 1) return -1;
        p += n;
        int matched = 0;
        for (unsigned i = 0; i < sizeof units / sizeof units[0]; i++) {
            size_t ul = strlen(units[i].u);
            if (strncmp(p, units[i].u, ul) == 0 && !isalpha((unsigned char)p[ul])) {
                /* Checked in floating point before the conversion: a
                 * duration beyond now (before 1970) means nothing, and a
                 * huge one ("100000000000h") must not wrap around. */
                double ns = v * (double)units[i].ns;
                if (!isfinite(ns) || ns > (double)(max - total)) return -1;
                total += (int64_t)ns;
                p += ul;
                matched = 1;
                break;
            }
        }
        if (!matched) return -1;
    }
    *out = total;
    return 0;
}

static int timeparse__ago(const char *s, int64_t now, int64_t *out)
{
    int64_t d;
    if (timeparse__sum(s, now, &d) < 0) return -1;
    *out = now - d;
    return 0;
}

int timeparse_duration(const char *s, int64_t *out_ns)
{
    /* A bare number is seconds, as every option has always read it. */
    char *end;
    errno = 0;
    double v = s && *s && isdigit((unsigned char)*s) ? strtod(s, &end) : -1;
    if (v >= 0 && !errno && !*end) {
        if (!isfinite(v) || v * 1e9 > 9.2e18) return -1;
        *out_ns = (int64_t)(v * 1e9 + 0.5);
        return 0;
    }
    return s && *s ? timeparse__sum(s, INT64_MAX, out_ns) : -1;
}

int timeparse_check_range(int64_t from_ns, int64_t to_ns, char *err, size_t errlen)
{
    if (to_ns == 0 || to_ns == INT64_MAX || from_ns == INT64_MIN || from_ns < to_ns) return 0;
    char f[48], t[48];
    timeparse_format(from_ns, f, sizeof f);
    timeparse_format(to_ns, t, sizeof t);
    snprintf(err, errlen, "empty time range: from %s is not before to %s", f, t);
    return -1;
}

int timeparse_parse(const char *s, int64_t now_ns, int64_t *out_ns)
{
    if (!s || !*s) return -1;
    if (timeparse__rfc3339(s, out_ns) == 0) return 0;
    if (timeparse__unix(s, out_ns) == 0) return 0;
    return timeparse__ago(s, now_ns, out_ns);
}

void timeparse_format(int64_t ns, char *buf, unsigned buflen)
{
    time_t sec = (time_t)(ns / 1000000000LL);
    long frac = (long)(ns % 1000000000LL);
    if (frac < 0) {
        frac += 1000000000L;
        sec--;
    }
    struct tm tm;
    gmtime_r(&sec, &tm);
    snprintf(buf, buflen, "%04d-%02d-%02dT%02d:%02d:%02d.%09ldZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
}
