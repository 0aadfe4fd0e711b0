/* test_flowkey.c - flowkey_addr_str(), which the JSON writers call for
 * every address of every record: it writes by hand what inet_ntop writes,
 * so it is checked against inet_ntop on addresses of every shape (each of
 * the 256 patterns of zero groups, with and without ::ffff: and IPv4
 * compatible forms) and on random ones. */
#include "flowkey.h"
#include "test.h"

#include <arpa/inet.h>

static uint32_t rnd_state = 12345;

static uint32_t rnd(void)
{
    rnd_state = rnd_state * 1103515245u + 12345u;
    return rnd_state >> 8;
}

/* One address against inet_ntop (IPv4 mapped: its dotted quad alone). */
static void check(const uint8_t a[16])
{
    static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
    char want[64], got[64];
    if (!memcmp(a, mapped, 12)) inet_ntop(AF_INET, a + 12, want, sizeof want);
    else inet_ntop(AF_INET6, a, want, sizeof want);
    memset(got, 'x', sizeof got);
    flowkey_addr_str(a, got, sizeof got);
    ASSERT_STREQ(got, want);
}

static void test_zero_patterns(void)
{
    for (int rep = 0; rep < 64; rep++)
        for (unsigned zeros = 0; zeros < 256; zeros++) {
            uint8_t a[16];
            for (int g = 0; g < 8; g++) {
                uint16_t v = 0;
                if (!(zeros & (1u << g))) {
                    /* groups of 1 to 4 hex digits, and 0xffff (the mapped form's) */
                    switch (rnd() % 5) {
                    case 0: v = (uint16_t)(1 + rnd() % 15); break;
                    case 1: v = (uint16_t)(16 + rnd() % 240); break;
                    case 2: v = (uint16_t)(256 + rnd() % 3840); break;
                    case 3: v = (uint16_t)(4096 + rnd() % 61439); break;
                    default: v = 0xffff;
                    }
                }
                a[2 * g] = (uint8_t)(v >> 8);
                a[2 * g + 1] = (uint8_t)v;
            }
            check(a);
        }
}

static void test_random(void)
{
    for (int i = 0; i < 200000; i++) {
        uint8_t a[16];
        for (int j = 0; j < 16; j++) a[j] = (uint8_t)rnd();
        check(a);
        memset(a, 0, 10); /* IPv4 compatible or mapped (::ffff:) and their neighbours */
        a[10] = a[11] = (uint8_t)(i & 1 ? 0xff : 0);
        check(a);
    }
}

static void test_named(void)
{
    static const char *const names[] = { "::", "::1", "::ffff:0:0", "1::", "1::1", "fe80::1",
                                         "2001:db8::ff00:42:8329", "::1.2.3.4", "::ffff:1.2.3.4",
                                         "1:0:0:1:0:0:0:1", "1:0:0:0:1:0:0:1", "0:1:0:1:0:1:0:1" };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        uint8_t a[16];
        ASSERT_EQ(inet_pton(AF_INET6, names[i], a), 1);
        check(a);
    }
}

/* A buffer too small gets an empty string, never a cut one. */
static void test_small_buffer(void)
{
    uint8_t a[16];
    inet_pton(AF_INET6, "2001:db8::ff00:42:8329", a);
    char buf[8] = "xxxxxxx";
    flowkey_addr_str(a, buf, sizeof buf);
    ASSERT_STREQ(buf, "");
}

int main(void)
{
    RUN(test_zero_patterns);
    RUN(test_random);
    RUN(test_named);
    RUN(test_small_buffer);
    TEST_EXIT();
}
