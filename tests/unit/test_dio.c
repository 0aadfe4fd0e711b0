/* test_dio.c - O_DIRECT writes and the fallback to the page cache when a
 * write is refused (EINVAL), in a file beside the test (the build tree's
 * file system; /tmp may be one without direct I/O). */
#include "dio.h"
#include "test.h"
#include "xmalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

static char path[64];

static int open_new(void)
{
    snprintf(path, sizeof path, "test_dio.%d.tmp", (int)getpid());
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    ASSERT_TRUE(fd >= 0);
    return fd;
}

static int has_direct(int fd)
{
    return (fcntl(fd, F_GETFL) & O_DIRECT) != 0;
}

/* The file's bytes [off, off + n) equal want. */
static void expect_bytes(int fd, uint64_t off, const uint8_t *want, size_t n)
{
    uint8_t *got = xmalloc(n);
    ASSERT_EQ(pread(fd, got, n, (off_t)off), (long long)n);
    ASSERT_TRUE(memcmp(got, want, n) == 0);
    free(got);
}

static void fill(uint8_t *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++) p[i] = (uint8_t)(i * 31 + seed);
}

/* Aligned blocks go direct and stay direct; then a write O_DIRECT cannot
 * make (an odd length from an odd address) is made through the page cache,
 * O_DIRECT is cleared on the file and in *direct, and every byte lands. */
static void test_direct_then_refused(void)
{
    int fd = open_new();
    int direct = dio_set(fd, 1) == 0;
    if (!direct) {
        fprintf(stderr, "note: this file system refuses O_DIRECT; only the buffered path tested\n");
    } else {
        ASSERT_TRUE(has_direct(fd));
    }
    uint8_t *buf = xmalloc_aligned(DIO_ALIGN, 4 * DIO_ALIGN);
    fill(buf, 4 * DIO_ALIGN, 7);
    int err = -1, was = direct;
    ASSERT_EQ(dio_pwrite(fd, &direct, buf, 2 * DIO_ALIGN, 0, &err), 2 * DIO_ALIGN);
    ASSERT_EQ(err, 0);
    ASSERT_EQ(direct, was); /* an aligned write is not refused */

    /* 1 000 bytes from buf + 1 at offset 2 blocks: refused direct. */
    ASSERT_EQ(dio_pwrite(fd, &direct, buf + 1, 1000, 2 * DIO_ALIGN, &err), 1000);
    ASSERT_EQ(err, 0);
    ASSERT_EQ(direct, 0);
    ASSERT_TRUE(!has_direct(fd));
    expect_bytes(fd, 0, buf, 2 * DIO_ALIGN);
    expect_bytes(fd, 2 * DIO_ALIGN, buf + 1, 1000);
    ASSERT_EQ(lseek(fd, 0, SEEK_END), 2 * DIO_ALIGN + 1000);
    free(buf);
    close(fd);
    unlink(path);
}

/* Without a direct flag to clear, the refusal is the caller's: nothing is
 * written and err says EINVAL. */
static void test_refused_without_fallback(void)
{
    int fd = open_new();
    if (dio_set(fd, 1) < 0) {
        fprintf(stderr, "note: this file system refuses O_DIRECT; skipped\n");
        close(fd);
        unlink(path);
        return;
    }
    uint8_t b[100];
    fill(b, sizeof b, 3);
    int err = 0;
    ASSERT_EQ(dio_pwrite(fd, NULL, b, sizeof b, 0, &err), 0);
    ASSERT_EQ(err, EINVAL);
    ASSERT_TRUE(has_direct(fd));
    /* Cleared and set again around one write, as the store writes a tail. */
    ASSERT_EQ(dio_set(fd, 0), 0);
    ASSERT_TRUE(!has_direct(fd));
    ASSERT_EQ(dio_pwrite(fd, NULL, b, sizeof b, 0, &err), sizeof b);
    ASSERT_EQ(err, 0);
    ASSERT_EQ(dio_set(fd, 1), 0);
    ASSERT_TRUE(has_direct(fd));
    close(fd);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    expect_bytes(fd, 0, b, sizeof b);
    close(fd);
    unlink(path);
}

/* Other errors stop the write and are said: a file not open for writing. */
static void test_other_errors(void)
{
    int fd = open_new();
    close(fd);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    uint8_t b[16] = { 0 };
    int err = 0, direct = 0;
    ASSERT_EQ(dio_pwrite(fd, &direct, b, sizeof b, 0, &err), 0);
    ASSERT_EQ(err, EBADF);
    ASSERT_EQ(dio_set(-1, 1), -EBADF);
    close(fd);
    unlink(path);
}

int main(void)
{
    RUN(test_direct_then_refused);
    RUN(test_refused_without_fallback);
    RUN(test_other_errors);
    TEST_EXIT();
}
