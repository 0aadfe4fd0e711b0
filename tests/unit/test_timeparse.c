/* test_timeparse.c - the three time forms of --from/--to. */
#include "test.h"
#include "config.h"
#include "timeparse.h"

static void test_rfc3339(void)
{
    int64_t t = 0;
    ASSERT_EQ(timeparse_parse("2023-11-14T22:13:20Z", 0, &t), 0);
    ASSERT_EQ(t, 1700000000LL * 1000000000LL);
    ASSERT_EQ(timeparse_parse("2023-11-14T22:13:20.5Z", 0, &t), 0);
    ASSERT_EQ(t, 1700000000LL * 1000000000LL + 500000000LL);
    ASSERT_EQ(timeparse_parse("2023-11-14T23:13:20.000000001+01:00", 0, &t), 0);
    ASSERT_EQ(t, 1700000000LL * 1000000000LL + 1);
    ASSERT_EQ(timeparse_parse("2023-11-14T22:13:20", 0, &t), -1); /* no zone */
    ASSERT_EQ(timeparse_parse("2023-13-14T22:13:20Z", 0, &t), -1);
}

static void test_unix(void)
{
    int64_t t = 0;
    ASSERT_EQ(timeparse_parse("1700000000", 0, &t), 0);
    ASSERT_EQ(t, 1700000000LL * 1000000000LL);
    ASSERT_EQ(timeparse_parse("1700000000.000123", 0, &t), 0);
    ASSERT_EQ(t, 1700000000LL * 1000000000LL + 123000);
    ASSERT_EQ(timeparse_parse("17x", 0, &t), -1);
}

static void test_ago(void)
{
    int64_t now = 1700000000LL * 1000000000LL, t = 0;
    ASSERT_EQ(timeparse_parse("15m", now, &t), 0);
    ASSERT_EQ(t, now - 15 * 60 * 1000000000LL);
    ASSERT_EQ(timeparse_parse("1h30m", now, &t), 0);
    ASSERT_EQ(t, now - 90 * 60 * 1000000000LL);
    ASSERT_EQ(timeparse_parse("500ms", now, &t), 0);
    ASSERT_EQ(t, now - 500000000LL);
    ASSERT_EQ(timeparse_parse("2d", now, &t), 0);
    ASSERT_EQ(t, now - 2 * 86400 * 1000000000LL);
    ASSERT_EQ(timeparse_parse("15q", now, &t), -1);
    ASSERT_EQ(timeparse_parse("", now, &t), -1);
    /* Far out of range: refused, never wrapped around. */
    t = 42;
    ASSERT_EQ(timeparse_parse("100000000000h", now, &t), -1);
    ASSERT_EQ(timeparse_parse("1e400s", now, &t), -1);
    ASSERT_EQ(timeparse_parse("60y", now, &t), -1);
    ASSERT_EQ(timeparse_parse("20000d", now, &t), -1); /* before 1970 */
    ASSERT_EQ(t, 42);
    ASSERT_EQ(timeparse_parse("19000d", now, &t), 0);
}

static void test_limits(void)
{
    int64_t t = 42;
    ASSERT_EQ(timeparse_parse("9999-12-31T23:59:59Z", 0, &t), -1);
    ASSERT_EQ(timeparse_parse("2263-01-01T00:00:00Z", 0, &t), -1);
    ASSERT_EQ(t, 42);
    ASSERT_EQ(timeparse_parse("2262-01-01T00:00:00Z", 0, &t), 0);
    ASSERT_EQ(timeparse_parse("9999999999", 0, &t), -1);
}

/* Every duration option and --since read one grammar. */
static void test_duration(void)
{
    int64_t ns = 0;
    ASSERT_EQ(timeparse_duration("1h30m", &ns), 0);
    ASSERT_EQ(ns, 5400LL * 1000000000LL);
    ASSERT_EQ(config_parse_duration("1h30m", &ns), 0); /* what --timeout reads */
    ASSERT_EQ(ns, 5400LL * 1000000000LL);
    ASSERT_EQ(timeparse_duration("10", &ns), 0); /* bare: seconds */
    ASSERT_EQ(ns, 10LL * 1000000000LL);
    ASSERT_EQ(timeparse_duration("0.5", &ns), 0);
    ASSERT_EQ(ns, 500000000LL);
    ASSERT_EQ(timeparse_duration("250ms", &ns), 0);
    ASSERT_EQ(ns, 250000000LL);
    ASSERT_EQ(timeparse_duration("1w1d", &ns), 0);
    ASSERT_EQ(ns, 8LL * 86400 * 1000000000LL);
    ASSERT_EQ(timeparse_duration("1.5s", &ns), 0);
    ASSERT_EQ(ns, 1500000000LL);
    const char *bad[] = { "", "-1", "10x", "h", "1h-5m", "100000000000h", "1e400", NULL };
    for (int i = 0; bad[i]; i++) ASSERT_EQ(timeparse_duration(bad[i], &ns), -1);
}

static void test_range(void)
{
    char err[160] = "";
    int64_t a = 1700000000LL * 1000000000LL, b = a + 1;
    ASSERT_EQ(timeparse_check_range(a, b, err, sizeof err), 0);
    ASSERT_EQ(timeparse_check_range(a, 0, err, sizeof err), 0);         /* no end */
    ASSERT_EQ(timeparse_check_range(INT64_MIN, a, err, sizeof err), 0); /* no start */
    ASSERT_EQ(timeparse_check_range(a, INT64_MAX, err, sizeof err), 0);
    ASSERT_EQ(timeparse_check_range(b, a, err, sizeof err), -1);
    ASSERT_STREQ(err, "empty time range: from 2023-11-14T22:13:20.000000001Z is not before to "
                      "2023-11-14T22:13:20.000000000Z");
    ASSERT_EQ(timeparse_check_range(a, a, err, sizeof err), -1);
}

static void test_format(void)
{
    char buf[64];
    timeparse_format(1700000000LL * 1000000000LL + 42, buf, sizeof buf);
    ASSERT_STREQ(buf, "2023-11-14T22:13:20.000000042Z");
}

/* The test hook's skew moves the wall clock, and only it. */
static void test_skew(void)
{
    int64_t real = timeparse_now_ns(), mono = timeparse_mono_ns();
    timeparse_set_skew_ns(-300LL * 1000000000LL);
    int64_t off = timeparse_now_ns() - real, mono_step = timeparse_mono_ns() - mono;
    timeparse_set_skew_ns(0);
    ASSERT_EQ(timeparse_skew_ns(), 0);
    ASSERT_TRUE(off < -299LL * 1000000000LL && off > -301LL * 1000000000LL);
    ASSERT_TRUE(mono_step >= 0 && mono_step < 1000000000LL);
    ASSERT_TRUE(timeparse_now_ns() - real < 1000000000LL);
}

int main(void)
{
    RUN(test_rfc3339);
    RUN(test_unix);
    RUN(test_ago);
    RUN(test_limits);
    RUN(test_duration);
    RUN(test_range);
    RUN(test_format);
    RUN(test_skew);
    TEST_EXIT();
}
