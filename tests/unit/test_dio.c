/* test_dio.c - O_DIRECT writes and the fallback to the page cache when a
 * write is refused (EINVAL), in a file beside the test (the build tree's
 * file system). A write O_DIRECT cannot make - an odd length from an odd
 * address - is refused by ext4 and XFS, which is how the fallback is
 * reached here; a file system that takes such a write anyway, or has no
 * direct I/O, is named in a note and gets the checks that still apply.
 * test_store_no_direct reaches the fallback on any file system through
 * MSCOPE_TEST_DIO_REFUSE. */
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
    if (fd < 0) {
        perror(path);
        exit(1);
    }
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

enum { NO_DIRECT, TAKES_UNALIGNED, REFUSES_UNALIGNED };

/* What this file system does with O_DIRECT and an unaligned direct write. */
static int probe(void)
{
    int fd = open_new();
    int kind = NO_DIRECT;
    if (dio_set(fd, 1) == 0) {
        uint8_t b[101];
        kind = pwrite(fd, b + 1, 100, 0) < 0 && errno == EINVAL ? REFUSES_UNALIGNED
                                                                 : TAKES_UNALIGNED;
    }
    close(fd);
    unlink(path);
    static const char *const say[] = { "has no direct I/O", "takes unaligned direct writes",
                                       "refuses unaligned direct writes" };
    fprintf(stderr, "note: the build tree's file system %s\n", say[kind]);
    return kind;
}

static int fs_kind;

/* Aligned blocks go direct and stay direct; then a write O_DIRECT cannot
 * make (an odd length from an odd address) is made through the page cache,
 * O_DIRECT is cleared on the file and in *direct, and every byte lands. */
static void test_direct_then_refused(void)
{
    int fd = open_new();
    int direct = dio_set(fd, 1) == 0;
    ASSERT_EQ(direct, fs_kind != NO_DIRECT);
    ASSERT_EQ(has_direct(fd), direct);
    uint8_t *buf = xmalloc_aligned(DIO_ALIGN, 4 * DIO_ALIGN);
    fill(buf, 4 * DIO_ALIGN, 7);
    int err = -1;
    ASSERT_EQ(dio_pwrite(fd, &direct, buf, 2 * DIO_ALIGN, 0, &err), 2 * DIO_ALIGN);
    ASSERT_EQ(err, 0);
    ASSERT_EQ(direct, fs_kind != NO_DIRECT); /* an aligned write is not refused */

    /* 1 000 bytes from buf + 1 at offset 2 blocks. */
    ASSERT_EQ(dio_pwrite(fd, &direct, buf + 1, 1000, 2 * DIO_ALIGN, &err), 1000);
    ASSERT_EQ(err, 0);
    ASSERT_EQ(direct, fs_kind == TAKES_UNALIGNED); /* refused: made buffered, flag cleared */
    ASSERT_EQ(has_direct(fd), direct);
    expect_bytes(fd, 0, buf, 2 * DIO_ALIGN);
    expect_bytes(fd, 2 * DIO_ALIGN, buf + 1, 1000);
    ASSERT_EQ(lseek(fd, 0, SEEK_END), 2 * DIO_ALIGN + 1000);
    free(buf);
    close(fd);
    unlink(path);
}

/* Without a direct flag to clear, the refusal is the caller's: nothing is
 * written and err says EINVAL. O_DIRECT cleared and set again around one
 * write, as the store writes a segment's tail. */
static void test_refused_without_fallback(void)
{
    if (fs_kind == NO_DIRECT) return;
    int fd = open_new();
    ASSERT_EQ(dio_set(fd, 1), 0);
    uint8_t b[100];
    fill(b, sizeof b, 3);
    int err = 0;
    if (fs_kind == REFUSES_UNALIGNED) {
        ASSERT_EQ(dio_pwrite(fd, NULL, b, sizeof b, 0, &err), 0);
        ASSERT_EQ(err, EINVAL);
        ASSERT_TRUE(has_direct(fd));
    }
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
    fs_kind = probe();
    RUN(test_direct_then_refused);
    RUN(test_refused_without_fallback);
    RUN(test_other_errors);
    TEST_EXIT();
}
