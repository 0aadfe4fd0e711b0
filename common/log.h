/* log.h - the one logger of every Mirrorscope program.
 *
 * Messages go to stderr, one line each, with a UTC timestamp, the level and the
 * program name. The macros test the level before formatting, so a debug line
 * on a hot path costs one comparison when debug is off.
 */
#ifndef MSCOPE_LOG_H
#define MSCOPE_LOG_H

enum log_level { LOG_LVL_ERROR = 0, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG };

extern int log_level_current;

/* Set the program name printed in every line; the string is borrowed for the
 * life of the process. */
void log_init(const char *progname);

/* Parse "error", "warn", "info" or "debug" into the current level.
 * Returns 0, or -1 (level unchanged) for any other word. */
int log_set_level(const char *name);

void log_write(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* At info: "NAME thread: S s CPU", the calling thread's own CPU time, at
 * its end. bench/bench_app.py and bench/bench_analysis.py read these lines
 * (the analysis alone sets the packet rate a recorder keeps up with, which
 * the process's time mixes with the other threads'). */
void log_thread_cpu(const char *name);

#define log_at(lvl, ...) \
    do { if ((lvl) <= log_level_current) log_write((lvl), __VA_ARGS__); } while (0)
#define log_error(...) log_at(LOG_LVL_ERROR, __VA_ARGS__)
#define log_warn(...)  log_at(LOG_LVL_WARN, __VA_ARGS__)
#define log_info(...)  log_at(LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...) log_at(LOG_LVL_DEBUG, __VA_ARGS__)

#endif
