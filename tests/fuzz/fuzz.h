/* fuzz.h - what the fuzz targets share: a check that turns a broken
 * invariant into a crash (libFuzzer and the replay only see crashes), quiet
 * logging, and files in memory for the modules that read by path.
 */
#ifndef MSCOPE_FUZZ_H
#define MSCOPE_FUZZ_H

#include "log.h"

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

/* A wrong answer is a finding like a crash: print where and abort, in every
 * build (assert() would vanish under NDEBUG). */
#define FUZZ_CHECK(c)                                                             \
    do {                                                                          \
        if (!(c)) {                                                               \
            fprintf(stderr, "%s:%d: fuzz check failed: %s\n", __FILE__, __LINE__, #c); \
            abort();                                                              \
        }                                                                         \
    } while (0)

/* Once per process: no log lines (a target that logs every input spends
 * its time in write(2)). */
static inline void fuzz_quiet(void) { log_level_current = -1; }

/* A file in memory for APIs that take a path: one memfd per process,
 * refilled with each input. Returns its /proc path (static storage), or
 * aborts when memfd is not available. */
static inline const char *fuzz_memfile(const uint8_t *data, size_t size, int *fd_out)
{
    static int fd = -1;
    static char path[64];
    if (fd < 0) {
        fd = memfd_create("fuzz", MFD_CLOEXEC);
        FUZZ_CHECK(fd >= 0);
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    }
    FUZZ_CHECK(ftruncate(fd, 0) == 0);
    size_t done = 0;
    while (done < size) {
        ssize_t w = pwrite(fd, data + done, size - done, (off_t)done);
        FUZZ_CHECK(w > 0);
        done += (size_t)w;
    }
    if (fd_out) *fd_out = fd;
    return path;
}

/* Replace dir/name with n bytes at p, for modules that find their files in
 * a directory (a data directory's segments, catalog). */
static inline void fuzz_write_file(const char *dir, const char *name, const uint8_t *p, size_t n)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    FUZZ_CHECK(fd >= 0);
    while (n) {
        ssize_t w = write(fd, p, n);
        FUZZ_CHECK(w > 0);
        p += w;
        n -= (size_t)w;
    }
    close(fd);
}

#endif
