/* test.h - minimal assertions for the unit suites (after libuv's task.h):
 * each failure prints file:line and both values, and the suite exits 1. */
#ifndef MSCOPE_TEST_H
#define MSCOPE_TEST_H

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int test_failures;

#define ASSERT_TRUE(c)                                                           \
    do {                                                                         \
        if (!(c)) {                                                              \
            fprintf(stderr, "%s:%d: assertion failed: %s\n", __FILE__, __LINE__, #c); \
            test_failures++;                                                     \
        }                                                                        \
    } while (0)

#define ASSERT_EQ(a, b)                                                          \
    do {                                                                         \
        long long _a = (long long)(a), _b = (long long)(b);                      \
        if (_a != _b) {                                                          \
            fprintf(stderr, "%s:%d: %s == %s failed: %lld != %lld\n", __FILE__, __LINE__, \
                    #a, #b, _a, _b);                                             \
            test_failures++;                                                     \
        }                                                                        \
    } while (0)

#define ASSERT_STREQ(a, b)                                                       \
    do {                                                                         \
        const char *_a = (a), *_b = (b);                                         \
        if (strcmp(_a, _b) != 0) {                                               \
            fprintf(stderr, "%s:%d: %s == %s failed: \"%s\" != \"%s\"\n", __FILE__, \
                    __LINE__, #a, #b, _a, _b);                                   \
            test_failures++;                                                     \
        }                                                                        \
    } while (0)

#define RUN(fn)                                                                  \
    do {                                                                         \
        int _before = test_failures;                                             \
        fn();                                                                    \
        fprintf(stderr, "%s %s\n", test_failures == _before ? "ok  " : "FAIL", #fn); \
    } while (0)

#define TEST_EXIT() return test_failures ? 1 : 0

#endif
