/* test_flowkey.c - flowkey_addr_str(), which the JSON writers call for
 * every address of every record: it writes by hand what inet_ntop writes,
 * so it is checked against inet_ntop on addresses of every shape (each of
 * the 256 patterns of zero groups, with and without ::ffff: and IPv4
 * compatible forms) and on random ones. And the index keys' hash: from a
 * secret of each process, so that keys crafted to share a bucket under one
 * seed do not under another. */
#include "flowkey.h"
#include "test.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <unistd.h>

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

/* Keys found (by trying, as an attacker with the code would) to fall into
 * one of 1 024 buckets under seed 1 spread out under seed 2; and two runs
 * of this program start from different seeds, set before main(). */
static void test_seed(void)
{
    uint64_t own = flowkey_seed;
    flowkey_set_seed(1);
    flowkey_t keys[32];
    unsigned n = 0;
    for (uint32_t i = 0; n < 32 && i < (1u << 24); i++) {
        flowkey_t k;
        memset(&k, 0, sizeof k);
        uint8_t c[4] = { 172, (uint8_t)(i >> 16), (uint8_t)(i >> 8), (uint8_t)i }, s[4] = { 10, 0, 0, 1 };
        decode_map4(c, k.src);
        decode_map4(s, k.dst);
        k.sport = 40000;
        k.dport = 443;
        k.kind = FK_IPV4;
        k.proto = 6;
        if ((flowkey_hash(&k) & 1023) == 0) keys[n++] = k;
    }
    ASSERT_EQ(n, 32);
    flowkey_set_seed(2);
    unsigned count[1024] = { 0 }, most = 0;
    for (unsigned i = 0; i < n; i++) {
        unsigned c = ++count[flowkey_hash(&keys[i]) & 1023];
        if (c > most) most = c;
    }
    ASSERT_TRUE(most <= 4);
    flowkey_set_seed(own);

    char exe[4096], cmd[4200], seen[2][32] = { "", "" };
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    ASSERT_TRUE(len > 0);
    if (len <= 0) return;
    exe[len] = 0;
    snprintf(cmd, sizeof cmd, "'%s' --seed", exe);
    for (int run = 0; run < 2; run++) {
        FILE *f = popen(cmd, "r");
        ASSERT_TRUE(f != NULL);
        if (!f) return;
        ASSERT_TRUE(fgets(seen[run], sizeof seen[run], f) != NULL);
        pclose(f);
    }
    char mine[32];
    snprintf(mine, sizeof mine, "%016llx\n", (unsigned long long)own);
    ASSERT_TRUE(seen[0][0] && strcmp(seen[0], seen[1]) != 0 && strcmp(seen[0], mine) != 0);
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--seed") == 0) { /* for test_seed: this process's */
        printf("%016llx\n", (unsigned long long)flowkey_seed);
        return 0;
    }
    RUN(test_seed);
    RUN(test_zero_patterns);
    RUN(test_random);
    RUN(test_named);
    RUN(test_small_buffer);
    TEST_EXIT();
}
