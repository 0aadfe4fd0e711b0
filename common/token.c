/* token.c - shared secrets in files (see token.h). */
#include "token.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int token__create(const char *path, char *out, char *err, size_t errlen)
{
    uint8_t rnd[24];
    FILE *u = fopen("/dev/urandom", "r");
    if (!u || fread(rnd, 1, sizeof rnd, u) != sizeof rnd) {
        if (u) fclose(u);
        snprintf(err, errlen, "cannot read /dev/urandom for a token");
        return -1;
    }
    fclose(u);
    for (size_t i = 0; i < sizeof rnd; i++) snprintf(out + 2 * i, 3, "%02x", rnd[i]);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd < 0 || write(fd, out, strlen(out)) < 0 || write(fd, "\n", 1) < 0) {
        snprintf(err, errlen, "cannot create token file %.900s: %s", path, strerror(errno));
        if (fd >= 0) close(fd);
        out[0] = 0;
        return -1;
    }
    close(fd);
    return 1;
}

int token_load(const char *path, int create, char *out, char *err, size_t errlen)
{
    out[0] = 0; /* "" on every error */
    FILE *f = fopen(path, "r");
    if (!f) {
        if (errno == ENOENT && create) return token__create(path, out, err, errlen);
        snprintf(err, errlen, "cannot read token file %.900s: %s", path, strerror(errno));
        return -1;
    }
    /* Read as Prometheus reads a credentials_file (the whole file, white
     * space around it trimmed), so that one file serves both ends. */
    char buf[TOKEN_MAX * 4];
    size_t n = fread(buf, 1, sizeof buf, f);
    int more = n == sizeof buf;
    fclose(f);
    size_t lo = 0;
    while (n && (buf[n - 1] == ' ' || (buf[n - 1] >= '\t' && buf[n - 1] <= '\r'))) n--;
    while (lo < n && (buf[lo] == ' ' || (buf[lo] >= '\t' && buf[lo] <= '\r'))) lo++;
    int bad = 0;
    for (size_t i = lo; i < n; i++) bad |= buf[i] < 0x21 || buf[i] > 0x7e;
    if (more || n - lo > TOKEN_MAX - 1 || bad || n - lo < TOKEN_MIN) {
        snprintf(err, errlen, "token file %.900s holds no token of %d to %d printable characters "
                              "(one word, one line)", path, TOKEN_MIN, TOKEN_MAX - 1);
        return -1;
    }
    memcpy(out, buf + lo, n - lo);
    out[n - lo] = 0;
    return 0;
}

int token_reload(const char *path, char *cur, char *err, size_t errlen)
{
    char tok[TOKEN_MAX] = { 0 }; /* copied whole: no tail of an older token stays in cur */
    int rc = token_load(path, 0, tok, err, errlen);
    if (rc == 0) {
        rc = strcmp(tok, cur) != 0;
        memcpy(cur, tok, TOKEN_MAX);
    }
    explicit_bzero(tok, sizeof tok);
    return rc;
}

int token_equal(const char *want, const char *got)
{
    size_t lw = strlen(want), lg = got ? strlen(got) : 0;
    unsigned diff = (unsigned)(lw ^ lg);
    for (size_t i = 0; i < lw; i++) diff |= (unsigned)(want[i] ^ (i < lg ? got[i] : 0));
    return diff == 0;
}
