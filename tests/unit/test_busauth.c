/* test_busauth.c - CURVE key files: the role line's forms, the errors that
 * name file and line, the role written by busauth_write() and
 * busauth_load_or_create(), and an allow-list directory's roles. */
#include "test.h"
#include "busauth.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[] = "/tmp/test_busauth.XXXXXX";
static busauth_pair pair; /* one real pair: the public half of every file */

static const char *path_of(const char *name)
{
    static char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return p;
}

/* Write a .pub file: a public-key line, then extra (may be ""). */
static void put(const char *name, const char *extra)
{
    FILE *f = fopen(path_of(name), "w");
    fprintf(f, "# a comment\npublic-key = %s\n%s", pair.pub, extra);
    fclose(f);
}

/* Load name; the roles, or -1 with the error in err. */
static int roles_of(const char *name, char *err, size_t errlen)
{
    busauth_pair kp;
    err[0] = 0;
    if (busauth_load(path_of(name), 0, &kp, err, errlen) < 0) return -1;
    return (int)kp.roles;
}

static void test_role_forms(void)
{
    static const struct {
        const char *line;
        int roles;
    } ok[] = {
        { "", 0 },
        { "role = recorder\n", BUSAUTH_ROLE_RECORDER },
        { "role = client\n", BUSAUTH_ROLE_CLIENT },
        { "role=client\n", BUSAUTH_ROLE_CLIENT },
        { "  role\t=  recorder  \r\n", BUSAUTH_ROLE_RECORDER },
        { "role = recorder, client\n", BUSAUTH_ROLE_RECORDER | BUSAUTH_ROLE_CLIENT },
        { "role = client,recorder\n", BUSAUTH_ROLE_RECORDER | BUSAUTH_ROLE_CLIENT },
        { "role = client client\n", BUSAUTH_ROLE_CLIENT },
    };
    char err[1200];
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        put("k.pub", ok[i].line);
        ASSERT_EQ(roles_of("k.pub", err, sizeof err), ok[i].roles);
        if (err[0]) fprintf(stderr, "  (%s)\n", err);
    }
}

static void test_role_errors(void)
{
    static const struct {
        const char *line;
        const char *says; /* in the error, after "FILE:3: " */
    } bad[] = {
        { "role = admin\n", "unknown role \"admin\"" },
        { "role = recorder, Client\n", "unknown role \"Client\"" },
        { "role = recorders\n", "unknown role \"recorders\"" },
        { "role =\n", "no role named" },
        { "role = ,\n", "no role named" },
        { "role recorder\n", "expected \"role = recorder\"" },
        { "role = client\nrole = recorder\n", "a second role line" },
        { "roles = client\n", "expected \"public-key = KEY\"" },
    };
    char err[1200], want[1400];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        put("bad.pub", bad[i].line);
        ASSERT_EQ(roles_of("bad.pub", err, sizeof err), -1);
        /* The file and the line: the role line is the third (a comment, the
         * key), the fourth for a second role line. */
        snprintf(want, sizeof want, "%s:%d: ", path_of("bad.pub"),
                 strstr(bad[i].says, "second") ? 4 : 3);
        ASSERT_TRUE(strncmp(err, want, strlen(want)) == 0);
        ASSERT_TRUE(strstr(err, bad[i].says) != NULL);
        if (strncmp(err, want, strlen(want)) || !strstr(err, bad[i].says))
            fprintf(stderr, "  got: %s\n  want: %s...%s\n", err, want, bad[i].says);
    }
}

static void test_roles_parse_str(void)
{
    unsigned r = 99;
    char err[256];
    ASSERT_EQ(busauth_roles_parse("recorder", &r, err, sizeof err), 0);
    ASSERT_EQ(r, BUSAUTH_ROLE_RECORDER);
    ASSERT_EQ(busauth_roles_parse("recorder,client", &r, err, sizeof err), 0);
    ASSERT_EQ(r, BUSAUTH_ROLE_RECORDER | BUSAUTH_ROLE_CLIENT);
    ASSERT_EQ(busauth_roles_parse("", &r, err, sizeof err), -1);
    ASSERT_EQ(busauth_roles_parse("admin", &r, err, sizeof err), -1);
    ASSERT_TRUE(strstr(err, "admin") != NULL);
    ASSERT_STREQ(busauth_roles_str(BUSAUTH_ROLE_RECORDER), "recorder");
    ASSERT_STREQ(busauth_roles_str(BUSAUTH_ROLE_CLIENT), "client");
    ASSERT_STREQ(busauth_roles_str(BUSAUTH_ROLE_RECORDER | BUSAUTH_ROLE_CLIENT), "recorder, client");
    ASSERT_STREQ(busauth_roles_str(0), "");
}

/* What busauth_write() and busauth_load_or_create() write reads back. */
static void test_written_roles(void)
{
    char err[1200], key[512], pub[512];
    busauth_pair kp, back;
    ASSERT_EQ(busauth_generate(&kp, err, sizeof err), 0);
    kp.roles = BUSAUTH_ROLE_CLIENT;
    snprintf(key, sizeof key, "%s", path_of("w.key"));
    snprintf(pub, sizeof pub, "%s", path_of("w.pub"));
    ASSERT_EQ(busauth_write(&kp, key, pub, err, sizeof err), 0);
    ASSERT_EQ(busauth_load(pub, 0, &back, err, sizeof err), 0);
    ASSERT_EQ(back.roles, BUSAUTH_ROLE_CLIENT);
    ASSERT_STREQ(back.pub, kp.pub);
    ASSERT_EQ(busauth_load(key, 1, &back, err, sizeof err), 0); /* the pair still loads */

    snprintf(key, sizeof key, "%s", path_of("rec.key"));
    ASSERT_EQ(busauth_load_or_create(key, BUSAUTH_ROLE_RECORDER, &kp, err, sizeof err), 1);
    ASSERT_EQ(busauth_load(path_of("rec.pub"), 0, &back, err, sizeof err), 0);
    ASSERT_EQ(back.roles, BUSAUTH_ROLE_RECORDER);
    ASSERT_EQ(busauth_load_or_create(key, BUSAUTH_ROLE_RECORDER, &back, err, sizeof err), 0);
    ASSERT_STREQ(back.pub, kp.pub);

    /* No roles: no role line (the coordinator's own curve.pub). */
    snprintf(key, sizeof key, "%s", path_of("srv.key"));
    ASSERT_EQ(busauth_load_or_create(key, 0, &kp, err, sizeof err), 1);
    ASSERT_EQ(busauth_load(path_of("srv.pub"), 0, &back, err, sizeof err), 0);
    ASSERT_EQ(back.roles, 0);
}

/* An allow-list directory: a key's roles are those of all its files, 0
 * (no restriction) when one of them has no role line; a file of the key
 * that does not parse is said. */
static void test_allowed(void)
{
    char sub[512], err[1200], key[1024], pub[1024];
    busauth_grant g;
    snprintf(sub, sizeof sub, "%s/allowed", dir);
    ASSERT_EQ(mkdir(sub, 0700), 0);
    busauth_pair a, b;
    ASSERT_EQ(busauth_generate(&a, err, sizeof err), 0);
    ASSERT_EQ(busauth_generate(&b, err, sizeof err), 0);
    ASSERT_EQ(busauth_allowed(sub, a.pub, &g), 0);
    ASSERT_STREQ(g.bad, "");

    a.roles = BUSAUTH_ROLE_CLIENT;
    snprintf(key, sizeof key, "%s/a.key", dir);
    snprintf(pub, sizeof pub, "%s/a.pub", sub);
    ASSERT_EQ(busauth_write(&a, key, pub, err, sizeof err), 0);
    ASSERT_EQ(busauth_allowed(sub, a.pub, &g), 1);
    ASSERT_STREQ(g.name, "a");
    ASSERT_EQ(g.roles, BUSAUTH_ROLE_CLIENT);
    ASSERT_EQ(busauth_allowed(sub, b.pub, &g), 0);

    /* The same key again, as a recorder: both roles. */
    a.roles = BUSAUTH_ROLE_RECORDER;
    snprintf(key, sizeof key, "%s/a2.key", dir);
    snprintf(pub, sizeof pub, "%s/a2.pub", sub);
    ASSERT_EQ(busauth_write(&a, key, pub, err, sizeof err), 0);
    ASSERT_EQ(busauth_allowed(sub, a.pub, &g), 1);
    ASSERT_EQ(g.roles, BUSAUTH_ROLE_RECORDER | BUSAUTH_ROLE_CLIENT);

    /* And once without a role line: unrestricted, that file named. */
    a.roles = 0;
    snprintf(key, sizeof key, "%s/a3.key", dir);
    snprintf(pub, sizeof pub, "%s/a3.pub", sub);
    ASSERT_EQ(busauth_write(&a, key, pub, err, sizeof err), 0);
    ASSERT_EQ(busauth_allowed(sub, a.pub, &g), 1);
    ASSERT_EQ(g.roles, 0);
    ASSERT_STREQ(g.name, "a3");

    /* b's only file has a role with a typo: not allowed, and why. */
    snprintf(pub, sizeof pub, "%s/b.pub", sub);
    FILE *f = fopen(pub, "w");
    fprintf(f, "public-key = %s\nrole = recroder\n", b.pub);
    fclose(f);
    ASSERT_EQ(busauth_allowed(sub, b.pub, &g), 0);
    ASSERT_TRUE(strstr(g.bad, "b.pub:2: unknown role \"recroder\"") != NULL);
}

int main(void)
{
    if (!busauth_available()) {
        fprintf(stderr, "skip: this libzmq has no CURVE\n");
        return 0;
    }
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    char err[256];
    if (busauth_generate(&pair, err, sizeof err) < 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    RUN(test_role_forms);
    RUN(test_role_errors);
    RUN(test_roles_parse_str);
    RUN(test_written_roles);
    RUN(test_allowed);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    TEST_EXIT();
}
