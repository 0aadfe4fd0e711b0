/* timeparse.h - the time arguments users type: --from/--to/--since.
 *
 * Three forms are accepted, as the issue and the CLI docs promise:
 *   RFC 3339        2026-11-25T21:47:10Z, 2026-11-25T21:47:10.123456789+01:00
 *   Unix seconds    1700000000, 1700000000.123456789
 *   a duration ago  15m, 2h, 90s, 1h30m, 500ms, 1d  (relative to now)
 */
#ifndef MSCOPE_TIMEPARSE_H
#define MSCOPE_TIMEPARSE_H

#include <stddef.h>
#include <stdint.h>

/* The widest instant in whole seconds either side of 1970 (int64 ns). */
#define TIMEPARSE_MAX_SEC (INT64_MAX / 1000000000LL - 1)

/* Parse s into nanoseconds since the Unix epoch; durations count back from
 * now_ns. Returns 0, or -1 if s is none of the forms above or names an
 * instant outside 1970..2262 for durations, 1677..2262 otherwise (out
 * untouched). */
int timeparse_parse(const char *s, int64_t now_ns, int64_t *out_ns);

/* A length of time in the grammar of the "ago" form above ("1h30m", "90s",
 * "500ms", "2d", "1w"; ns, us, ms, s, m, h, d, w summed), or a bare number
 * of seconds ("10", "0.5"): every duration option reads this one grammar.
 * Returns 0, or -1 if malformed or beyond int64 nanoseconds. */
int timeparse_duration(const char *s, int64_t *out_ns);

/* [from, to) must hold an instant: 0, or -1 with err naming both ends when
 * from is not before to. to of 0 or INT64_MAX and from of INT64_MIN mean
 * an open end. */
int timeparse_check_range(int64_t from_ns, int64_t to_ns, char *err, size_t errlen);

/* Current wall-clock time in nanoseconds since the epoch, plus the test
 * skew below (0 unless set). */
int64_t timeparse_now_ns(void);

/* TEST HOOK. A recorder whose clock is off cannot be had here without
 * moving the clock of the whole machine, so a recorder started with
 * MSCOPE_CLOCK_OFFSET_S=SECONDS in its environment sets this skew: every
 * wall-clock reading it makes (timeparse_now_ns, and the kernel's receive
 * times of live packets, which ingest shifts by timeparse_skew_ns) is that
 * far off, as on a host whose clock is. Its log says so at start. Interval
 * timers (CLOCK_MONOTONIC) and log line times are untouched. Set it once,
 * before any thread starts. */
void timeparse_set_skew_ns(int64_t ns);
int64_t timeparse_skew_ns(void);

/* CLOCK_MONOTONIC in nanoseconds: for intervals and timeouts. */
int64_t timeparse_mono_ns(void);

/* Format ns as RFC 3339 UTC with nanoseconds into buf (>= 40 bytes). */
void timeparse_format(int64_t ns, char *buf, unsigned buflen);

#endif
