/* test_token.c - token files (token.h): read as Prometheus reads a
 * credentials_file, created 0600 when asked, read again for a reload
 * without ever losing the token in use, compared in constant time. Files
 * beside the test, in the build tree. */
#include "test.h"
#include "token.h"

#include <sys/stat.h>
#include <unistd.h>

static char path[64];

static void put(const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f || fputs(text, f) < 0 || fclose(f) != 0) {
        perror(path);
        exit(1);
    }
}

static void test_load(void)
{
    char tok[TOKEN_MAX], err[1024];
    put(" \t0123456789abcdef \n\n");
    ASSERT_EQ(token_load(path, 0, tok, err, sizeof err), 0);
    ASSERT_STREQ(tok, "0123456789abcdef");
    const char *bad[] = { "short\n", "0123456789abcdef 0123456789abcdef\n", "", "\x01" "0123456789abcdef\n" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        put(bad[i]);
        ASSERT_EQ(token_load(path, 0, tok, err, sizeof err), -1);
        ASSERT_TRUE(strstr(err, "holds no token") != NULL);
    }
    unlink(path);
    ASSERT_EQ(token_load(path, 0, tok, err, sizeof err), -1);
    ASSERT_TRUE(strstr(err, "cannot read token file") != NULL);
    ASSERT_EQ(token_load(path, 1, tok, err, sizeof err), 1); /* made: 48 hex digits, 0600 */
    ASSERT_EQ(strlen(tok), 48);
    struct stat sb;
    ASSERT_EQ(stat(path, &sb), 0);
    ASSERT_EQ(sb.st_mode & 0777, 0600);
    char again[TOKEN_MAX];
    ASSERT_EQ(token_load(path, 1, again, err, sizeof err), 0);
    ASSERT_STREQ(again, tok);
    unlink(path);
}

/* A reload says whether the token changed, and an unreadable or bad file
 * leaves the token in use as it was. */
static void test_reload(void)
{
    char cur[TOKEN_MAX], err[1024];
    put("first-token-0123456789\n");
    ASSERT_EQ(token_load(path, 0, cur, err, sizeof err), 0);
    ASSERT_EQ(token_reload(path, cur, err, sizeof err), 0);
    ASSERT_STREQ(cur, "first-token-0123456789");
    put("second-token-0123456789\n");
    ASSERT_EQ(token_reload(path, cur, err, sizeof err), 1);
    ASSERT_STREQ(cur, "second-token-0123456789");
    put("bad\n");
    ASSERT_EQ(token_reload(path, cur, err, sizeof err), -1);
    ASSERT_STREQ(cur, "second-token-0123456789");
    unlink(path);
    ASSERT_EQ(token_reload(path, cur, err, sizeof err), -1); /* never created by a reload */
    ASSERT_EQ(access(path, F_OK), -1);
    ASSERT_STREQ(cur, "second-token-0123456789");
}

static void test_equal(void)
{
    ASSERT_TRUE(token_equal("0123456789abcdef", "0123456789abcdef"));
    ASSERT_TRUE(!token_equal("0123456789abcdef", "0123456789abcde"));
    ASSERT_TRUE(!token_equal("0123456789abcdef", "0123456789abcdefg"));
    ASSERT_TRUE(!token_equal("0123456789abcdef", "0123456789abcdeF"));
    ASSERT_TRUE(!token_equal("0123456789abcdef", NULL));
    ASSERT_TRUE(!token_equal("0123456789abcdef", ""));
}

int main(void)
{
    snprintf(path, sizeof path, "test_token.%d.tmp", (int)getpid());
    RUN(test_load);
    RUN(test_reload);
    RUN(test_equal);
    TEST_EXIT();
}
