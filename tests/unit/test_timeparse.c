/* test_timeparse.c - the three time forms of --from/--to. */
#include "test.h"
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
}

static void test_format(void)
{
    char buf[64];
    timeparse_format(1700000000LL * 1000000000LL + 42, buf, sizeof buf);
    ASSERT_STREQ(buf, "2023-11-14T22:13:20.000000042Z");
}

int main(void)
{
    RUN(test_rfc3339);
    RUN(test_unix);
    RUN(test_ago);
    RUN(test_format);
    TEST_EXIT();
}
