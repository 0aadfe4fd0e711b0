/* dio.h - writes that bypass the page cache (O_DIRECT), as the recorder's
 * pcap segments (recorder/store.c) and segment indexes (recorder/segindex.c)
 * make them, and the one rule both follow when a file system refuses them.
 *
 * With O_DIRECT the buffer's address, the file offset and the length must
 * all be multiples of DIO_ALIGN. A file system that does not do direct I/O
 * at all (ramfs, some FUSE) says so with EINVAL, either when the flag is set
 * or at the first write: the file then goes on through the page cache, with
 * the same bytes at the same offsets, so a refusal never loses data.
 */
#ifndef MSCOPE_DIO_H
#define MSCOPE_DIO_H

#include <stddef.h>
#include <stdint.h>

/* Buffer addresses, file offsets and lengths of direct writes: the logical
 * block size of every disk a recorder is expected on (4Kn and 512e alike). */
#define DIO_ALIGN 4096u

/* Set (on) or clear O_DIRECT on fd. Returns 0, or -errno (-EINVAL: the file
 * system refuses direct I/O). */
int dio_set(int fd, int on);

/* Write all len bytes of p at off, resuming after short writes and EINTR.
 * With direct non-NULL and *direct set, a write the file system refuses
 * (EINVAL) clears O_DIRECT on fd, clears *direct, and is made again through
 * the page cache, and so is the rest. Returns the bytes written; *err is 0,
 * or the errno that stopped it (ENOSPC for a write of 0 bytes). */
size_t dio_pwrite(int fd, int *direct, const void *p, size_t len, uint64_t off, int *err);

/* Tests reach the refusal at a write on any file system by setting
 * MSCOPE_TEST_DIO_REFUSE in the environment: each write dio_pwrite makes
 * with *direct set then fails with EINVAL (dio.c). */

#endif
