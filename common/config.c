/* config.c - one option table for flags, config files and --help, where
 * each value came from for later messages, and the one reader of every
 * daemon's config-file lines (see config.h). */
#include "config.h"

#include "timeparse.h"

#include "xmalloc.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define FIELD(settings, o, type) ((type *)((char *)(settings) + (o)->offset))

static int config__suffixed(const char *s, int64_t *out, const char *const *sfx,
                            const int64_t *mult, int n, int64_t bare)
{
    if (!s || !*s) return -1;
    errno = 0;
    char *end;
    double v = strtod(s, &end);
    if (errno || end == s || v < 0) return -1;
    int64_t m = bare;
    if (*end) {
        int found = 0;
        for (int i = 0; i < n; i++) {
            if (strcasecmp(end, sfx[i]) == 0) {
                m = mult[i];
                found = 1;
                break;
            }
        }
        if (!found) return -1;
    }
    double r = v * (double)m;
    if (r > 9.2e18) return -1;
    *out = (int64_t)(r + 0.5);
    return 0;
}

int config_parse_size(const char *s, int64_t *out)
{
    static const char *const sfx[] = { "b", "k", "kb", "kib", "m", "mb", "mib",
                                       "g", "gb", "gib", "t", "tb", "tib" };
    static const int64_t K = 1024;
    static const int64_t mult[] = { 1, K, K, K, K * K, K * K, K * K, K * K * K, K * K * K,
                                    K * K * K, K * K * K * K, K * K * K * K, K * K * K * K };
    return config__suffixed(s, out, sfx, mult, 13, 1);
}

int config_parse_duration(const char *s, int64_t *out_ns)
{
    return timeparse_duration(s, out_ns); /* one grammar with --since */
}

const config_opt *config_find(const config_opt *opts, const char *name)
{
    for (const config_opt *o = opts; o->name; o++)
        if (strcmp(o->name, name) == 0) return o;
    return NULL;
}

/* A limit as the user writes it: durations in the largest whole unit. */
static void config__fmt(enum config_type type, int64_t v, char *out, size_t len)
{
    static const struct { const char *unit; int64_t ns; } units[] = {
        { "h", 3600000000000LL }, { "m", 60000000000LL }, { "s", 1000000000LL },
        { "ms", 1000000LL }, { "us", 1000LL },
    };
    if (type == CFG_DURATION && v) {
        for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
            if (v % units[i].ns == 0) {
                snprintf(out, len, "%lld%s", (long long)(v / units[i].ns), units[i].unit);
                return;
            }
        snprintf(out, len, "%lldns", (long long)v);
        return;
    }
    snprintf(out, len, "%lld", (long long)v);
}

int config_set(const config_opt *o, void *settings, const char *value, char *err, size_t errlen)
{
    int64_t v = 0;
    switch (o->type) {
    case CFG_STR: {
        char **f = FIELD(settings, o, char *);
        free(*f);
        *f = value ? xstrdup(value) : NULL;
        return 0;
    }
    case CFG_BOOL: {
        int *f = FIELD(settings, o, int);
        if (!value || !strcasecmp(value, "yes") || !strcasecmp(value, "true") ||
            !strcmp(value, "1") || !strcasecmp(value, "on")) {
            *f = 1;
        } else if (!strcasecmp(value, "no") || !strcasecmp(value, "false") ||
                   !strcmp(value, "0") || !strcasecmp(value, "off")) {
            *f = 0;
        } else {
            snprintf(err, errlen, "--%s: '%s' is not yes/no", o->name, value);
            return -1;
        }
        return 0;
    }
    case CFG_INT: {
        char *end;
        errno = 0;
        long long ll = value ? strtoll(value, &end, 0) : 0;
        if (!value || errno || end == value || *end) {
            snprintf(err, errlen, "--%s: '%s' is not a whole number", o->name,
                     value ? value : "");
            return -1;
        }
        v = ll;
        break;
    }
    case CFG_SIZE:
        if (config_parse_size(value, &v) < 0) {
            snprintf(err, errlen, "--%s: '%s' is not a size (e.g. 512M, 2G)", o->name,
                     value ? value : "");
            return -1;
        }
        break;
    case CFG_DURATION:
        if (config_parse_duration(value, &v) < 0) {
            snprintf(err, errlen, "--%s: '%s' is not a duration (e.g. 250ms, 60s, 5m)",
                     o->name, value ? value : "");
            return -1;
        }
        break;
    }
    if (v < o->min || (o->max && v > o->max)) {
        char lo[32], hi[32];
        config__fmt(o->type, o->min, lo, sizeof lo);
        config__fmt(o->type, o->max, hi, sizeof hi);
        if (o->max)
            snprintf(err, errlen, "--%s: %s is out of range (%s to %s)", o->name, value, lo, hi);
        else
            snprintf(err, errlen, "--%s: %s is too small (at least %s)", o->name, value, lo);
        return -1;
    }
    *FIELD(settings, o, int64_t) = v;
    return 0;
}

int config_defaults(const config_opt *opts, void *settings)
{
    char err[256];
    for (const config_opt *o = opts; o->name; o++) {
        if (o->type == CFG_STR) {
            *FIELD(settings, o, char *) = o->def ? xstrdup(o->def) : NULL;
            continue;
        }
        if (o->type == CFG_BOOL && !o->def) {
            *FIELD(settings, o, int) = 0;
            continue;
        }
        if (o->def && config_set(o, settings, o->def, err, sizeof err) < 0) {
            fprintf(stderr, "bad built-in default: %s\n", err);
            return -1;
        }
    }
    return 0;
}

char *config_trim(char *s)
{
    while (isspace((unsigned char)*s)) s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1])) *--e = 0;
    return s;
}

void config_origin_note(const config_opt *opts, config_origin *where, const config_opt *o,
                        const char *file, int line)
{
    if (!where) return;
    config_origin *w = &where[o - opts];
    w->file = file;
    w->line = file ? line : 0;
    w->flag = !file;
}

const char *config_origin_str(const config_opt *opts, const config_origin *where, const char *name,
                              char *buf, size_t len)
{
    const config_opt *o = config_find(opts, name);
    const config_origin *w = o && where ? &where[o - opts] : NULL;
    if (w && w->file) snprintf(buf, len, "%s:%d: %s", w->file, w->line, name);
    else if (w && w->flag) snprintf(buf, len, "--%s", name);
    else snprintf(buf, len, "%s", name);
    return buf;
}

int config_read_lines(const char *path, const char *expect, config_line_fn fn, void *ctx,
                      char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "cannot open config file %s: %s", path, strerror(errno));
        return -1;
    }
    char line[CONFIG_LINE_MAX + 2];
    int lineno = 0, rc = 0;
    while (!rc && fgets(line, sizeof line, f)) {
        lineno++;
        size_t len = strlen(line);
        if (len == sizeof line - 1 && line[len - 1] != '\n') {
            snprintf(err, errlen, "%s:%d: line longer than %d bytes", path, lineno, CONFIG_LINE_MAX);
            rc = -1;
            break;
        }
        char *hash = strchr(line, '#');
        if (hash) *hash = 0;
        char *s = config_trim(line);
        if (!*s) continue;
        if (*s == '[') {
            rc = fn(ctx, path, lineno, s, NULL, NULL, err, errlen);
            continue;
        }
        char *eq = strchr(s, '=');
        if (!eq) {
            snprintf(err, errlen, "%s:%d: expected %s", path, lineno, expect);
            rc = -1;
            break;
        }
        *eq = 0;
        char *key = config_trim(s), *val = config_trim(eq + 1);
        if (!*key) {
            snprintf(err, errlen, "%s:%d: a key is missing before '='", path, lineno);
            rc = -1;
            break;
        }
        rc = fn(ctx, path, lineno, NULL, key, val, err, errlen);
    }
    fclose(f);
    return rc;
}

typedef struct config__file {
    const config_opt *opts;
    void *settings;
    config_origin *where;
} config__file;

static int config__file_line(void *ctx, const char *path, int lineno, char *section, char *key,
                             char *val, char *err, size_t errlen)
{
    config__file *c = ctx;
    char msg[512];
    if (section) {
        snprintf(err, errlen, "%s:%d: expected 'key = value' (sections are the broker's)", path, lineno);
        return -1;
    }
    const config_opt *o = config_find(c->opts, key);
    if (!o || !strcmp(key, "config")) {
        snprintf(err, errlen, "%s:%d: unknown option '%s'", path, lineno, key);
        return -1;
    }
    if (config_set(o, c->settings, val, msg, sizeof msg) < 0) {
        snprintf(err, errlen, "%s:%d: %s", path, lineno, msg);
        return -1;
    }
    config_origin_note(c->opts, c->where, o, path, lineno);
    return 0;
}

static int config__load_file(const config_opt *opts, void *settings, config_origin *where,
                             const char *path, char *err, size_t errlen)
{
    config__file c = { opts, settings, where };
    return config_read_lines(path, "'key = value'", config__file_line, &c, err, errlen);
}

int config_load_file(const config_opt *opts, void *settings, const char *path, char *err,
                     size_t errlen)
{
    return config__load_file(opts, settings, NULL, path, err, errlen);
}

static const config_opt *config__find_short(const config_opt *opts, char c)
{
    for (const config_opt *o = opts; o->name; o++)
        if (o->short_name && o->short_name == c) return o;
    return NULL;
}

int config_parse_args(const config_opt *opts, void *settings, int argc, char **argv, int argi,
                      const char **positional, int max_pos, int *npos, int *help, char *err,
                      size_t errlen)
{
    return config_parse_args_where(opts, settings, NULL, argc, argv, argi, positional, max_pos,
                                   npos, help, err, errlen);
}

int config_parse_args_where(const config_opt *opts, void *settings, config_origin *where, int argc,
                            char **argv, int argi, const char **positional, int max_pos, int *npos,
                            int *help, char *err, size_t errlen)
{
    int only_pos = 0;
    *npos = 0;
    for (int i = argi; i < argc; i++) {
        const char *a = argv[i];
        const config_opt *o = NULL;
        const char *val = NULL;
        if (!only_pos && strcmp(a, "--") == 0) {
            only_pos = 1;
            continue;
        }
        if (!only_pos && (!strcmp(a, "--help") || !strcmp(a, "-h"))) {
            *help = 1;
            continue;
        }
        if (!only_pos && a[0] == '-' && a[1] == '-') {
            char name[128];
            const char *eq = strchr(a + 2, '=');
            size_t n = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
            if (n >= sizeof name) n = sizeof name - 1;
            memcpy(name, a + 2, n);
            name[n] = 0;
            if (!strcmp(name, "config")) {
                const char *path = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
                if (!path) {
                    snprintf(err, errlen, "--config needs a file");
                    return -1;
                }
                if (config__load_file(opts, settings, where, path, err, errlen) < 0) return -1;
                continue;
            }
            o = config_find(opts, name);
            if (!o) {
                snprintf(err, errlen, "unknown option --%s (see --help)", name);
                return -1;
            }
            if (eq) val = eq + 1;
        } else if (!only_pos && a[0] == '-' && a[1] && a[1] != '-' && !a[2]) {
            o = config__find_short(opts, a[1]);
            if (!o) {
                snprintf(err, errlen, "unknown option %s (see --help)", a);
                return -1;
            }
        } else {
            if (*npos >= max_pos) {
                snprintf(err, errlen, "unexpected argument '%s'", a);
                return -1;
            }
            positional[(*npos)++] = a;
            continue;
        }
        if (!val && o->type != CFG_BOOL) {
            if (i + 1 >= argc) {
                snprintf(err, errlen, "--%s needs a value", o->name);
                return -1;
            }
            val = argv[++i];
        }
        if (config_set(o, settings, val, err, errlen) < 0) return -1;
        config_origin_note(opts, where, o, NULL, 0);
    }
    return 0;
}

void config_print_help(const config_opt *opts, FILE *out)
{
    for (const config_opt *o = opts; o->name; o++) {
        char flag[96];
        if (o->short_name)
            snprintf(flag, sizeof flag, "-%c, --%s%s%s", o->short_name, o->name,
                     o->metavar ? " " : "", o->metavar ? o->metavar : "");
        else
            snprintf(flag, sizeof flag, "    --%s%s%s", o->name, o->metavar ? " " : "",
                     o->metavar ? o->metavar : "");
        fprintf(out, "  %-30s %s", flag, o->help);
        if (o->def) fprintf(out, " (default: %s)", o->def);
        fputc('\n', out);
    }
    fprintf(out, "  %-30s %s\n", "    --config FILE", "read 'option = value' lines from FILE");
    fprintf(out, "  %-30s %s\n", "-h, --help", "show this help");
}

void config_free(const config_opt *opts, void *settings)
{
    for (const config_opt *o = opts; o->name; o++) {
        if (o->type == CFG_STR) {
            char **f = FIELD(settings, o, char *);
            free(*f);
            *f = NULL;
        }
    }
}
