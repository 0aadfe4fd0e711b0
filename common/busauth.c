/* busauth.c - CURVE key files and the ZAP handler (see busauth.h).
 *
 * DESIGN: a key's roles live in its .pub file rather than in one allow-list
 * directory per socket: the file is what an operator copies when enrolling
 * a peer, so what the key is for travels with it, one directory still
 * serves both sockets, and a key cannot be left behind in the wrong
 * directory. Keys without a role line are let in (deployments made before
 * roles keep working) and named once: the set of keys already named is the
 * process's, so that a key used on the coordinator's bus and RPC alike is
 * named once, not once per socket. */
#include "busauth.h"

#include "log.h"
#include "timeparse.h"
#include "xmalloc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#define BUSAUTH_LOG_EVERY_NS (10 * 1000000000LL) /* refusals are logged at most this often */

int busauth_available(void)
{
    return zmq_has("curve");
}

/* 1 when s is 40 characters that decode as Z85. */
static int busauth__valid(const char *s)
{
    uint8_t bin[32];
    return strlen(s) == BUSAUTH_KEY_LEN && zmq_z85_decode(bin, s) != NULL;
}

static const struct {
    const char *name;
    unsigned bit;
} busauth__roles[] = {
    { "recorder", BUSAUTH_ROLE_RECORDER },
    { "client", BUSAUTH_ROLE_CLIENT },
};

int busauth_roles_parse(const char *text, unsigned *roles, char *err, size_t errlen)
{
    *roles = 0;
    const char *p = text;
    for (;;) {
        p += strspn(p, " \t,\r\n");
        if (!*p) break;
        size_t n = strcspn(p, " \t,\r\n");
        unsigned bit = 0;
        for (size_t i = 0; i < sizeof busauth__roles / sizeof busauth__roles[0]; i++)
            if (strlen(busauth__roles[i].name) == n && !strncmp(p, busauth__roles[i].name, n))
                bit = busauth__roles[i].bit;
        if (!bit) {
            snprintf(err, errlen, "unknown role \"%.*s\" (roles: recorder, client)",
                     (int)(n > 64 ? 64 : n), p);
            return -1;
        }
        *roles |= bit;
        p += n;
    }
    if (!*roles) {
        snprintf(err, errlen, "no role named (roles: recorder, client)");
        return -1;
    }
    return 0;
}

const char *busauth_roles_str(unsigned roles)
{
    switch (roles & (BUSAUTH_ROLE_RECORDER | BUSAUTH_ROLE_CLIENT)) {
    case BUSAUTH_ROLE_RECORDER: return "recorder";
    case BUSAUTH_ROLE_CLIENT: return "client";
    case BUSAUTH_ROLE_RECORDER | BUSAUTH_ROLE_CLIENT: return "recorder, client";
    default: return "";
    }
}

int busauth_generate(busauth_pair *kp, char *err, size_t errlen)
{
    kp->roles = 0;
    if (zmq_curve_keypair(kp->pub, kp->sec) < 0) {
        snprintf(err, errlen, "zmq_curve_keypair() failed: %s (libzmq without CURVE?)",
                 zmq_strerror(errno));
        return -1;
    }
    return 0;
}

static int busauth__write_file(const char *path, mode_t mode, const char *text, char *err,
                               size_t errlen)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, mode);
    size_t n = strlen(text);
    if (fd < 0 || write(fd, text, n) != (ssize_t)n || fsync(fd) < 0) {
        snprintf(err, errlen, "cannot write key file %.900s: %s", path, strerror(errno));
        if (fd >= 0) {
            close(fd);
            unlink(path);
        }
        return -1;
    }
    close(fd);
    return 0;
}

int busauth_write(const busauth_pair *kp, const char *keypath, const char *pubpath, char *err,
                  size_t errlen)
{
    char text[512];
    snprintf(text, sizeof text,
             "# A Mirrorscope CURVE key pair. Secret: keep this file 0600, never copy it;\n"
             "# give its public half (the .pub file) to the peers that must let it in.\n"
             "public-key = %s\nsecret-key = %s\n", kp->pub, kp->sec);
    if (busauth__write_file(keypath, 0600, text, err, errlen) < 0) return -1;
    char role[160] = "";
    if (kp->roles)
        snprintf(role, sizeof role, "# What the key may do: publish on the bus (recorder), use "
                 "the RPC (client).\nrole = %s\n", busauth_roles_str(kp->roles));
    snprintf(text, sizeof text,
             "# A Mirrorscope CURVE public key: put it in a server's allow-list directory.\n"
             "public-key = %s\n%s", kp->pub, role);
    if (busauth__write_file(pubpath, 0644, text, err, errlen) < 0) {
        unlink(keypath);
        return -1;
    }
    return 0;
}

/* "name = KEY" on one line: the key is 40 characters that may include '#'
 * and '=', so this is not the config parser's syntax. Returns 1 matched
 * (key copied to out), 0 another line, -1 malformed. */
static int busauth__line(const char *line, const char *name, char *out)
{
    size_t nl = strlen(name);
    if (strncmp(line, name, nl) != 0) return 0;
    const char *p = line + nl;
    while (*p == ' ' || *p == '\t') p++;
    if (*p++ != '=') return -1;
    while (*p == ' ' || *p == '\t') p++;
    size_t k = strcspn(p, " \t\r\n");
    if (k != BUSAUTH_KEY_LEN) return -1;
    memcpy(out, p, BUSAUTH_KEY_LEN);
    out[BUSAUTH_KEY_LEN] = 0;
    for (p += k; *p; p++)
        if (*p != ' ' && *p != '\t' && *p != '\r' && *p != '\n') return -1;
    return busauth__valid(out) ? 1 : -1;
}

int busauth_load(const char *path, int need_secret, busauth_pair *kp, char *err, size_t errlen)
{
    memset(kp, 0, sizeof *kp);
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "cannot read key file %.900s: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    int loose = fstat(fileno(f), &st) == 0 && (st.st_mode & 077);
    char line[256];
    int lineno = 0, rc = 0;
    while (rc == 0 && fgets(line, sizeof line, f)) {
        lineno++;
        const char *p = line;
        while (*p == ' ' || *p == '\t') p++;
        if (*p == '#' || *p == '\n' || *p == '\r' || !*p) continue;
        if (!strncmp(p, "role", 4) && strchr(" \t=", p[4])) {
            const char *v = p + 4 + strspn(p + 4, " \t");
            char why[128];
            unsigned roles;
            if (*v != '=') {
                snprintf(err, errlen, "%.900s:%d: expected \"role = recorder\", \"role = client\" "
                         "or \"role = recorder, client\"", path, lineno);
                rc = -1;
            } else if (kp->roles) {
                snprintf(err, errlen, "%.900s:%d: a second role line (name every role on one: "
                         "\"role = recorder, client\")", path, lineno);
                rc = -1;
            } else if (busauth_roles_parse(v + 1, &roles, why, sizeof why) < 0) {
                snprintf(err, errlen, "%.900s:%d: %s", path, lineno, why);
                rc = -1;
            } else {
                kp->roles = roles;
            }
            continue;
        }
        int a = busauth__line(p, "public-key", kp->pub);
        int b = a ? 0 : busauth__line(p, "secret-key", kp->sec);
        if (a < 0 || b < 0 || (!a && !b)) {
            snprintf(err, errlen, "%.900s:%d: expected \"public-key = KEY\" or \"secret-key = "
                     "KEY\" with a 40-character Z85 key, or \"role = ROLES\"", path, lineno);
            rc = -1;
        }
    }
    fclose(f);
    if (rc < 0) return -1;
    if (need_secret && kp->sec[0] && loose) {
        snprintf(err, errlen, "key file %.900s holds a secret key but is readable by others "
                 "(chmod 600 it)", path);
        return -1;
    }
    if (!kp->pub[0] || (need_secret && !kp->sec[0])) {
        snprintf(err, errlen, "key file %.900s has no %s", path,
                 kp->pub[0] ? "secret-key (give the pair's .key file, not the .pub)" : "public-key");
        return -1;
    }
    if (kp->sec[0]) { /* the pair must be a pair */
        char derived[BUSAUTH_KEY_LEN + 1];
        if (zmq_curve_public(derived, kp->sec) < 0 || strcmp(derived, kp->pub) != 0) {
            snprintf(err, errlen, "key file %.900s: its public-key is not that of its secret-key",
                     path);
            return -1;
        }
    }
    return 0;
}

void busauth_pub_path(const char *keypath, char *out, size_t outlen)
{
    size_t n = strlen(keypath);
    if (n > 4 && !strcmp(keypath + n - 4, ".key"))
        snprintf(out, outlen, "%.*s.pub", (int)(n - 4), keypath);
    else
        snprintf(out, outlen, "%s.pub", keypath);
}

int busauth_load_or_create(const char *keypath, unsigned roles, busauth_pair *kp, char *err,
                           size_t errlen)
{
    if (access(keypath, F_OK) == 0 || errno != ENOENT)
        return busauth_load(keypath, 1, kp, err, errlen);
    char pub[PATH_MAX];
    busauth_pub_path(keypath, pub, sizeof pub);
    if (busauth_generate(kp, err, errlen) < 0) return -1;
    kp->roles = roles;
    unlink(pub); /* a stale public half of a key that is gone */
    if (busauth_write(kp, keypath, pub, err, errlen) < 0) return -1;
    return 1;
}

int busauth_allowed(const char *dir, const char *key, busauth_grant *g)
{
    memset(g, 0, sizeof *g);
    DIR *d = opendir(dir);
    if (!d) return 0;
    struct dirent *e;
    int found = 0, roleless = 0;
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (n <= 4 || strcmp(e->d_name + n - 4, ".pub") != 0) continue;
        char path[PATH_MAX], err[1200];
        busauth_pair kp;
        if (snprintf(path, sizeof path, "%s/%s", dir, e->d_name) >= (int)sizeof path) continue;
        if (busauth_load(path, 0, &kp, err, sizeof err) < 0) {
            log_debug("allow-list: %s", err);
            /* The public key is read before a bad line after it (a role
             * with a typo): the refusal can then say why. */
            if (!strcmp(kp.pub, key)) snprintf(g->bad, sizeof g->bad, "%.500s", err);
            continue;
        }
        if (strcmp(kp.pub, key) != 0) continue;
        /* Every file of the key counts (two files, two role sets: the
         * union), and the name is that of a file without a role line if
         * there is one, as that is the one a warning must name. */
        if (!found || (!kp.roles && !roleless))
            snprintf(g->name, sizeof g->name, "%.*s", (int)(n - 4), e->d_name);
        found = 1;
        roleless |= !kp.roles;
        g->roles |= kp.roles;
    }
    closedir(d);
    if (roleless) g->roles = 0;
    if (found) g->bad[0] = 0;
    return found;
}


/* ---- ZAP (RFC 27) ------------------------------------------------------------ */

struct busauth_zap {
    void *rep;
    pthread_t thread;
    char what[16];
    char *allow_dir;
    char allow_key[BUSAUTH_KEY_LEN + 1];
    unsigned need_role; /* BUSAUTH_ROLE_* asked of allow_dir's keys; 0: none */
    _Atomic uint64_t refused;
    int64_t last_log_ns;
    uint64_t refused_logged;
};

uint64_t busauth_zap_refused(const busauth_zap *z)
{
    return z ? atomic_load(&((busauth_zap *)z)->refused) : 0;
}

/* The keys without a role line named in a warning so far: the process's
 * (see DESIGN), guarded by a mutex as every server socket has its own ZAP
 * thread. */
static pthread_mutex_t busauth__warned_lock = PTHREAD_MUTEX_INITIALIZER;
static char (*busauth__warned)[BUSAUTH_KEY_LEN + 1];
static size_t busauth__nwarned, busauth__warned_cap;

/* Warn, once per key in this process, that the allowed key user (file
 * NAME.pub of z's directory) has no role line. */
static void busauth__warn_roleless(const busauth_zap *z, const char *user, const char *name)
{
    pthread_mutex_lock(&busauth__warned_lock);
    for (size_t i = 0; i < busauth__nwarned; i++)
        if (!strcmp(busauth__warned[i], user)) {
            pthread_mutex_unlock(&busauth__warned_lock);
            return;
        }
    if (busauth__nwarned == busauth__warned_cap) {
        busauth__warned_cap = busauth__warned_cap ? 2 * busauth__warned_cap : 16;
        busauth__warned = xrealloc(busauth__warned, busauth__warned_cap * sizeof *busauth__warned);
    }
    memcpy(busauth__warned[busauth__nwarned++], user, BUSAUTH_KEY_LEN + 1);
    pthread_mutex_unlock(&busauth__warned_lock);
    log_warn("%s: key %s of %s/%s.pub has no role line, so it is let in on both the bus and "
             "the RPC: add \"role = recorder\" (a recorder's key) or \"role = client\" (a CLI "
             "user's key) to that file", z->what, user, z->allow_dir, name);
}

/* Decide on one request's frames: version, request id, domain, address,
 * identity, mechanism, credentials. Returns 1 allowed (key in user), 0 not,
 * with the reason in why (whylen bytes). */
static int busauth__decide(busauth_zap *z, zmq_msg_t *f, int nf, char *user, char *why,
                           size_t whylen)
{
    snprintf(why, whylen, "malformed ZAP request");
    if (nf < 6 || zmq_msg_size(&f[0]) != 3 || memcmp(zmq_msg_data(&f[0]), "1.0", 3)) return 0;
    if (zmq_msg_size(&f[5]) != 5 || memcmp(zmq_msg_data(&f[5]), "CURVE", 5)) {
        snprintf(why, whylen, "not CURVE");
        return 0;
    }
    if (nf != 7 || zmq_msg_size(&f[6]) != 32) return 0;
    zmq_z85_encode(user, zmq_msg_data(&f[6]), 32);
    busauth_grant g;
    if (z->allow_key[0] && !strcmp(user, z->allow_key)) return 1;
    if (!z->allow_dir || !busauth_allowed(z->allow_dir, user, &g)) {
        if (z->allow_dir && g.bad[0]) snprintf(why, whylen, "key not allowed: %s", g.bad);
        else snprintf(why, whylen, "key not allowed");
        return 0;
    }
    if (!z->need_role || (g.roles & z->need_role)) return 1;
    if (!g.roles) {
        busauth__warn_roleless(z, user, g.name);
        return 1;
    }
    snprintf(why, whylen, "key known as %.200s.pub but not allowed on this socket: it would need "
             "role = %s, its file says role = %s", g.name, busauth_roles_str(z->need_role),
             busauth_roles_str(g.roles));
    return 0;
}

static void busauth__log_refusal(busauth_zap *z, const char *address, const char *key,
                                 const char *why)
{
    uint64_t n = atomic_fetch_add(&z->refused, 1) + 1;
    int64_t now = timeparse_mono_ns();
    if (z->last_log_ns && now - z->last_log_ns < BUSAUTH_LOG_EVERY_NS) return;
    log_warn("%s: refused a peer at %s (%s%s%s); %llu refused in all, %llu since the last "
             "message%s%s", z->what, address, why, key[0] ? ", key " : "", key,
             (unsigned long long)n, (unsigned long long)(n - z->refused_logged),
             z->allow_dir ? "; allowed keys are in " : "", z->allow_dir ? z->allow_dir : "");
    z->last_log_ns = now;
    z->refused_logged = n;
}

static void *busauth__serve(void *arg)
{
    busauth_zap *z = arg;
    for (;;) {
        zmq_msg_t f[8];
        int nf = 0, more = 1, dead = 0;
        while (more) {
            zmq_msg_t m;
            zmq_msg_init(&m);
            if (zmq_msg_recv(&m, z->rep, 0) < 0) {
                zmq_msg_close(&m);
                if (errno == EINTR) continue;
                dead = 1; /* ETERM: the context is shutting down */
                break;
            }
            more = zmq_msg_more(&m);
            if (nf < 8) f[nf++] = m;
            else zmq_msg_close(&m);
        }
        if (dead) {
            for (int i = 0; i < nf; i++) zmq_msg_close(&f[i]);
            break;
        }
        char user[BUSAUTH_KEY_LEN + 1] = "", address[64] = "?", why[1024];
        int ok = busauth__decide(z, f, nf, user, why, sizeof why);
        if (nf > 3)
            snprintf(address, sizeof address, "%.*s", (int)zmq_msg_size(&f[3]),
                     (const char *)zmq_msg_data(&f[3]));
        if (!ok) busauth__log_refusal(z, address, user, why);
        /* The answer: version, the request id echoed, status, text, user id,
         * metadata. */
        zmq_send(z->rep, "1.0", 3, ZMQ_SNDMORE);
        if (nf > 1) zmq_send(z->rep, zmq_msg_data(&f[1]), zmq_msg_size(&f[1]), ZMQ_SNDMORE);
        else zmq_send(z->rep, "", 0, ZMQ_SNDMORE);
        zmq_send(z->rep, ok ? "200" : "400", 3, ZMQ_SNDMORE);
        zmq_send(z->rep, ok ? "OK" : why, strlen(ok ? "OK" : why), ZMQ_SNDMORE);
        zmq_send(z->rep, user, ok ? strlen(user) : 0, ZMQ_SNDMORE);
        zmq_send(z->rep, "", 0, 0);
        for (int i = 0; i < nf; i++) zmq_msg_close(&f[i]);
    }
    zmq_close(z->rep);
    return NULL;
}

busauth_zap *busauth_zap_start(void *ctx, const char *what, const char *allow_dir,
                               const char *allow_key, unsigned need_role, char *err,
                               size_t errlen)
{
    busauth_zap *z = xcalloc(1, sizeof *z);
    z->need_role = need_role;
    snprintf(z->what, sizeof z->what, "%s", what);
    if (allow_dir) z->allow_dir = xstrdup(allow_dir);
    if (allow_key) snprintf(z->allow_key, sizeof z->allow_key, "%s", allow_key);
    int zero = 0;
    z->rep = zmq_socket(ctx, ZMQ_REP);
    if (!z->rep || zmq_setsockopt(z->rep, ZMQ_LINGER, &zero, sizeof zero) < 0 ||
        zmq_bind(z->rep, "inproc://zeromq.zap.01") < 0) {
        snprintf(err, errlen, "ZAP handler for %s: %s", what, zmq_strerror(errno));
        goto fail;
    }
    /* pthread_create is a full barrier: the socket may move to the thread. */
    if ((errno = pthread_create(&z->thread, NULL, busauth__serve, z)) != 0) {
        snprintf(err, errlen, "ZAP handler for %s: pthread_create() failed: %s", what,
                 strerror(errno));
        goto fail;
    }
    return z;
fail:
    if (z->rep) zmq_close(z->rep);
    free(z->allow_dir);
    free(z);
    return NULL;
}

void busauth_zap_stop(busauth_zap *z)
{
    if (!z) return;
    pthread_join(z->thread, NULL);
    free(z->allow_dir);
    free(z);
}
