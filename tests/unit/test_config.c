/* test_config.c - one option table for flags, files and defaults. */
#include "config.h"
#include "test.h"

#include <stddef.h>
#include <unistd.h>

typedef struct s { char *name; int64_t size, dur, n; int flag; } s_t;
static const config_opt opts[] = {
    { "name", 'n', CFG_STR, offsetof(s_t, name), "x", 0, 0, "S", "a name" },
    { "size", 0, CFG_SIZE, offsetof(s_t, size), "256M", 0, 0, "SIZE", "a size" },
    { "dur", 0, CFG_DURATION, offsetof(s_t, dur), "60s", 0, 0, "D", "a duration" },
    { "n", 0, CFG_INT, offsetof(s_t, n), "1", 1, 64, "N", "a count" },
    { "flag", 0, CFG_BOOL, offsetof(s_t, flag), NULL, 0, 0, NULL, "a flag" },
    { NULL, 0, 0, 0, NULL, 0, 0, NULL, NULL },
};

static void test_defaults_and_args(void)
{
    s_t v;
    char err[256];
    const char *pos[4];
    int npos, help = 0;
    ASSERT_EQ(config_defaults(opts, &v), 0);
    ASSERT_EQ(v.size, 256LL << 20);
    ASSERT_EQ(v.dur, 60000000000LL);
    char *argv[] = { "p", "--size=2G", "-n", "abc", "pos1", "--dur", "250ms", "--flag", "--n", "7" };
    ASSERT_EQ(config_parse_args(opts, &v, 10, argv, 1, pos, 4, &npos, &help, err, sizeof err), 0);
    ASSERT_EQ(v.size, 2LL << 30);
    ASSERT_STREQ(v.name, "abc");
    ASSERT_EQ(v.dur, 250000000LL);
    ASSERT_EQ(v.flag, 1);
    ASSERT_EQ(v.n, 7);
    ASSERT_EQ(npos, 1);
    char *bad[] = { "p", "--n", "99" };
    ASSERT_EQ(config_parse_args(opts, &v, 3, bad, 1, pos, 4, &npos, &help, err, sizeof err), -1);
    ASSERT_TRUE(strstr(err, "out of range") != NULL);
    char *unk[] = { "p", "--nope" };
    ASSERT_EQ(config_parse_args(opts, &v, 2, unk, 1, pos, 4, &npos, &help, err, sizeof err), -1);
    ASSERT_TRUE(strstr(err, "unknown option --nope") != NULL);
    config_free(opts, &v);
}

static void test_file(void)
{
    s_t v;
    char err[256], path[] = "/tmp/mscope-test-cfg-XXXXXX";
    config_defaults(opts, &v);
    int fd = mkstemp(path);
    const char *text = "# comment\nname = from-file\nsize = 1K  # trailing\n\nbogus line\n";
    ASSERT_EQ(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    ASSERT_EQ(config_load_file(opts, &v, path, err, sizeof err), -1);
    ASSERT_TRUE(strstr(err, ":5: expected") != NULL); /* names the line */
    ASSERT_STREQ(v.name, "from-file");
    ASSERT_EQ(v.size, 1024);
    unlink(path);
    config_free(opts, &v);
}

/* What config_read_lines refuses, for both daemons' files. */
static void test_file_lines(void)
{
    s_t v;
    char err[256];
    ASSERT_EQ(config_defaults(opts, &v), 0);
    struct { const char *text, *want; } cases[] = {
        { "[tool ids]\n", ":1: expected 'key = value' (sections are the broker's)" },
        { "name = x\n = y\n", ":2: a key is missing before '='" },
        { "nonsense = 1\n", ":1: unknown option 'nonsense'" },
    };
    for (unsigned i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char path[] = "/tmp/mscope-cfg-XXXXXX";
        int fd = mkstemp(path);
        ASSERT_EQ(write(fd, cases[i].text, strlen(cases[i].text)), (ssize_t)strlen(cases[i].text));
        close(fd);
        ASSERT_EQ(config_load_file(opts, &v, path, err, sizeof err), -1);
        ASSERT_TRUE(strstr(err, cases[i].want) != NULL);
        unlink(path);
    }
    /* A line longer than CONFIG_LINE_MAX is refused, not cut in two. */
    char path[] = "/tmp/mscope-cfg-XXXXXX";
    int fd = mkstemp(path);
    char big[CONFIG_LINE_MAX + 100];
    memset(big, 'a', sizeof big);
    memcpy(big, "name = ", 7);
    big[sizeof big - 1] = '\n';
    ASSERT_EQ(write(fd, big, sizeof big), (ssize_t)sizeof big);
    close(fd);
    ASSERT_EQ(config_load_file(opts, &v, path, err, sizeof err), -1);
    ASSERT_TRUE(strstr(err, ":1: line longer than") != NULL);
    unlink(path);
    config_free(opts, &v);
}

/* Limits are said in the option's own terms: "at least 1s", not nanoseconds. */
static void test_limits_in_words(void)
{
    typedef struct { int64_t d, n; } l_t;
    static const config_opt lopts[] = {
        { "every", 0, CFG_DURATION, offsetof(l_t, d), "1h", 1000000000LL, 0, "D", "how often" },
        { "n", 0, CFG_INT, offsetof(l_t, n), "5", 1, 64, "N", "a count" },
        { NULL, 0, 0, 0, NULL, 0, 0, NULL, NULL },
    };
    l_t v;
    char err[256];
    ASSERT_EQ(config_defaults(lopts, &v), 0);
    ASSERT_EQ(config_set(&lopts[0], &v, "500ms", err, sizeof err), -1);
    ASSERT_STREQ(err, "--every: 500ms is too small (at least 1s)");
    ASSERT_EQ(config_set(&lopts[1], &v, "65", err, sizeof err), -1);
    ASSERT_STREQ(err, "--n: 65 is out of range (1 to 64)");
    ASSERT_EQ(config_set(&lopts[0], &v, "2s", err, sizeof err), 0);
    ASSERT_EQ(v.d, 2000000000LL);
}

int main(void)
{
    RUN(test_defaults_and_args);
    RUN(test_file);
    RUN(test_file_lines);
    RUN(test_limits_in_words);
    TEST_EXIT();
}
