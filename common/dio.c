/* dio.c - O_DIRECT writes and their fallback (see dio.h). */
#include "dio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

/* MSCOPE_TEST_DIO_REFUSE set (tests only): every direct write fails with
 * EINVAL, as on a file system that takes the O_DIRECT flag but refuses the
 * writes. Nothing else reaches that fallback on ext4 or tmpfs, where the
 * writers' aligned buffers always go through. Read once. */
static int dio__refuse(void)
{
    static int refuse = -1;
    int r = __atomic_load_n(&refuse, __ATOMIC_RELAXED);
    if (r < 0) {
        r = getenv("MSCOPE_TEST_DIO_REFUSE") != NULL;
        __atomic_store_n(&refuse, r, __ATOMIC_RELAXED);
    }
    return r;
}

int dio_set(int fd, int on)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0) return -errno;
    int want = on ? fl | O_DIRECT : fl & ~O_DIRECT;
    if (want != fl && fcntl(fd, F_SETFL, want) < 0) return -errno;
    return 0;
}

size_t dio_pwrite(int fd, int *direct, const void *p, size_t len, uint64_t off, int *err)
{
    const uint8_t *b = p;
    size_t done = 0;
    *err = 0;
    while (done < len) {
        ssize_t n = direct && *direct && dio__refuse()
                        ? (errno = EINVAL, -1)
                        : pwrite(fd, b + done, len - done, (off_t)(off + done));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EINVAL && direct && *direct) {
            int rc = dio_set(fd, 0);
            if (rc < 0) {
                *err = -rc;
                break;
            }
            *direct = 0;
            continue;
        }
        if (n <= 0) {
            *err = n < 0 ? errno : ENOSPC;
            break;
        }
        done += (size_t)n;
    }
    return done;
}
