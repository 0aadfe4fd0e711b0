/* test_brconfig.c - the broker's configuration file: a good file, and bad
 * lines each reported as FILE:LINE with the reason. */
#include "brconfig.h"
#include "test.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

typedef struct g_t { int dedup; char *listen; } g_t;
static const config_opt globals[] = {
    { "dedup", 0, CFG_BOOL, offsetof(g_t, dedup), "no", 0, 0, NULL, "dedup" },
    { "listen", 0, CFG_STR, offsetof(g_t, listen), "0.0.0.0:4789", 0, 0, "A", "listen" },
    { NULL, 0, 0, 0, NULL, 0, 0, NULL, NULL },
};

static char path[64];

static brconfig_t *load(const char *text, g_t *g, char *err, size_t errlen)
{
    snprintf(path, sizeof path, "/tmp/test_brconfig.%d.conf", (int)getpid());
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
    config_defaults(globals, g);
    brconfig_t *c = brconfig_load(path, globals, g, NULL, err, errlen);
    unlink(path);
    return c;
}

static void test_good(void)
{
    g_t g;
    char err[512] = "";
    brconfig_t *c = load("# a comment\n"
                         "dedup = yes\n"
                         "\n"
                         "[tool ids]\n"
                         "type = vxlan\n"
                         "dest = 127.0.0.1    # port 4789 added\n"
                         "vni = 100\n"
                         "filter = tcp port 80\n"
                         "slice = 128\n"
                         "[tool a]\n"
                         "type = pcap\n"
                         "dir = /tmp/x\n"
                         "[tool b]\n"
                         "type = udp\n"
                         "dest = [::1]:9000\n"
                         "[group g]\n"
                         "members = a, b\n"
                         "action = drop\n"
                         "filter = udp\n"
                         "mask-payload = yes\n",
                         &g, err, sizeof err);
    ASSERT_TRUE(c != NULL);
    if (!c) {
        fprintf(stderr, "%s\n", err);
        return;
    }
    ASSERT_EQ(g.dedup, 1);
    ASSERT_EQ(c->n, 4);
    ASSERT_STREQ(c->tools[0].dest, "127.0.0.1:4789");
    ASSERT_EQ(c->tools[0].type_id, BROUT_VXLAN);
    ASSERT_EQ(c->tools[0].vni, 100);
    ASSERT_EQ(c->tools[0].slice, 128);
    ASSERT_EQ(c->tools[0].group, -1);
    ASSERT_STREQ(c->tools[1].prefix, "a");          /* default prefix: the name */
    ASSERT_EQ(c->tools[1].rotate_size, 256LL << 20); /* default */
    ASSERT_EQ(c->tools[1].group, 3);
    ASSERT_EQ(c->tools[3].kind, BRCONF_GROUP);
    ASSERT_EQ(c->tools[3].nmembers, 2);
    ASSERT_EQ(c->tools[3].member[0], 1);
    ASSERT_EQ(c->tools[3].action_id, BRACT_DROP);
    ASSERT_EQ(c->tools[3].mask_payload, 1);
    ASSERT_EQ(brconfig_find(c, "b"), 2);
    ASSERT_TRUE(brconfig_output_equal(&c->tools[1], &c->tools[1]));
    ASSERT_TRUE(!brconfig_output_equal(&c->tools[1], &c->tools[2]));
    brconfig_free(c);
    config_free(globals, &g);
}

/* Each bad file must fail with "FILE:LINE: ..." containing want. */
static void bad(const char *text, int line, const char *want)
{
    g_t g;
    char err[512] = "", prefix[96];
    brconfig_t *c = load(text, &g, err, sizeof err);
    ASSERT_TRUE(c == NULL);
    brconfig_free(c);
    config_free(globals, &g);
    snprintf(prefix, sizeof prefix, "%s:%d: ", path, line);
    if (strncmp(err, prefix, strlen(prefix)) != 0 || !strstr(err, want)) {
        fprintf(stderr, "  expected '%s...%s', got '%s'\n", prefix, want, err);
        test_failures++;
    }
}

static void test_errors(void)
{
    bad("nonsense\n", 1, "expected 'key = value'");
    bad("bogus = 1\n", 1, "unknown option 'bogus'");
    bad("[tool a]\ntype = pcap\ndir = /x\n[tool a]\n", 4, "already used at line 1");
    bad("[tool a]\ntype = pcap\ndir = /x\nfilter = tcp port\n", 4, "bad filter 'tcp port'");
    bad("[tool a]\ntype = carrier-pigeon\n", 2, "unknown type 'carrier-pigeon'");
    bad("[tool a]\ntype = pcap\n", 1, "needs 'dir");
    bad("[tool a]\ntype = vxlan\ndest = 1.2.3.4\n", 1, "needs 'vni");
    bad("[tool a]\ntype = vxlan\ndest = nohost:x\nvni = 1\n", 3, "dest: 'nohost:x'");
    bad("[tool a]\ntype = pcap\ndir = /x\nvni = 3\n", 4, "'vni' does not apply to a pcap tool");
    bad("[tool a]\ntype = pcap\ndir = /x\nslice = lots\n", 4, "slice");
    bad("[tool a]\ntype = pcap\ndir = /x\naction = maybe\n", 4, "'maybe' is not pass or drop");
    bad("[tool a]\ntype = pcap\ndir = /x\ncolour = blue\n", 4, "unknown key 'colour' in [tool a]");
    bad("[tool a]\ntype = pcap\ndir = /x\ndir = /y\n", 4, "already set for 'a' at line 3");
    bad("[widget a]\n", 1, "unknown section");
    bad("[tool a b]\n", 1, "needs a name");
    bad("[tool a]\ntype = pcap\ndir = /x\n[group g]\nmembers = a, zz\n", 5, "member 'zz': no [tool]");
    bad("[tool a]\ntype = pcap\ndir = /x\nfilter = tcp\n[group g]\nmembers = a\n", 4,
        "is a member of group 'g' (line 5): put 'filter' in the group");
    bad("[tool a]\ntype = pcap\ndir = /x\n[group g]\nmembers = a\n[group h]\nmembers = a\n", 7,
        "already a member of another group");
    bad("[tool a]\ntype = pcap\ndir = /x\n[tool b]\ntype = pcap\ndir = /x\nprefix = a\n", 4,
        "writes the same files as 'a' (line 1)");
    bad("[tool a]\ntype = pcap\ndir = /x\n[group g]\nmembers = a\ntype = udp\n", 6,
        "'type' does not apply to a group");
}

static void test_no_tools(void)
{
    g_t g;
    char err[512] = "";
    brconfig_t *c = load("dedup = yes\n", &g, err, sizeof err);
    ASSERT_TRUE(c == NULL);
    ASSERT_TRUE(strstr(err, "no [tool NAME] section") != NULL);
    config_free(globals, &g);
}

int main(void)
{
    RUN(test_good);
    RUN(test_errors);
    RUN(test_no_tools);
    TEST_EXIT();
}
