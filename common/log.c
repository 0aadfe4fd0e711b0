/* log.c - timestamped, levelled lines on stderr (see log.h). */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

int log_level_current = LOG_LVL_INFO;
static const char *log_prog = "mscope";

void log_init(const char *progname) { log_prog = progname; }

int log_set_level(const char *name)
{
    static const char *names[] = { "error", "warn", "info", "debug" };
    for (int i = 0; i < 4; i++) {
        if (strcmp(name, names[i]) == 0) {
            log_level_current = i;
            return 0;
        }
    }
    return -1;
}

void log_write(int level, const char *fmt, ...)
{
    static const char *tags[] = { "ERROR", "WARN", "INFO", "DEBUG" };
    char line[2048];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s %s: ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, ts.tv_nsec / 1000000, log_prog, tags[level]);
    va_list ap;
    va_start(ap, fmt);
    if (n > 0 && (size_t)n < sizeof line)
        n += vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof line - 1)
        n = (int)sizeof line - 2;
    line[n++] = '\n';
    /* One write per line so lines from several threads never interleave. */
    fwrite(line, 1, (size_t)n, stderr);
}

void log_thread_cpu(const char *name)
{
    struct timespec cpu;
    if (log_level_current >= LOG_LVL_INFO && clock_gettime(CLOCK_THREAD_CPUTIME_ID, &cpu) == 0)
        log_write(LOG_LVL_INFO, "%s thread: %.6f s CPU", name, (double)cpu.tv_sec + cpu.tv_nsec / 1e9);
}
