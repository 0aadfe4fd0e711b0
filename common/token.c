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
        return -1;
    }
    close(fd);
    return 1;
}

int token_load(const char *path, int create, char *out, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        if (errno == ENOENT && create) return token__create(path, out, err, errlen);
        snprintf(err, errlen, "cannot read token file %.900s: %s", path, strerror(errno));
        return -1;
    }
    if (!fgets(out, TOKEN_MAX, f)) out[0] = 0;
    fclose(f);
    out[strcspn(out, "\r\n")] = 0;
    if (strlen(out) < TOKEN_MIN) {
        snprintf(err, errlen, "token file %.900s holds no token of at least %d characters", path,
                 TOKEN_MIN);
        return -1;
    }
    return 0;
}

int token_equal(const char *want, const char *got)
{
    size_t lw = strlen(want), lg = got ? strlen(got) : 0;
    unsigned diff = (unsigned)(lw ^ lg);
    for (size_t i = 0; i < lw; i++) diff |= (unsigned)(want[i] ^ (i < lg ? got[i] : 0));
    return diff == 0;
}
