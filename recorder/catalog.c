/* catalog.c - the segments' time catalog (see catalog.h).
 *
 * DESIGN: one small file, rewritten whole (32 bytes a segment: half a MiB
 * for a 4 TB store of 256 MiB segments) after each seal or eviction: the
 * writer pays a page-cache write per 256 MiB of packets, a search reads one
 * file instead of opening thousands. Little-endian, like the indexes:
 *   magic "MSCCAT\0\1", u32 version, u32 CRC-32C of the entries, u64 count,
 *   then count entries (seq, min_ts, max_ts, packets).
 */
#include "catalog.h"

#include "crc32c.h"
#include "xmalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char CATALOG_MAGIC[8] = { 'M', 'S', 'C', 'C', 'A', 'T', 0, 1 };
#define CATALOG_VERSION 1
#define CATALOG_MAX (1u << 24) /* entries: far beyond any disk */

typedef struct catalog_hdr {
    char magic[8];
    uint32_t version, crc;
    uint64_t count;
} catalog_hdr;

static int catalog__write_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n) {
        ssize_t w = write(fd, c, n);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) return -errno;
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

int catalog_write(const char *dir, const catalog_entry *e, size_t n)
{
    char path[4096], tmp[4200];
    snprintf(path, sizeof path, "%s/catalog", dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    catalog_hdr h;
    memset(&h, 0, sizeof h);
    memcpy(h.magic, CATALOG_MAGIC, 8);
    h.version = CATALOG_VERSION;
    h.count = n;
    h.crc = crc32c(e, n * sizeof *e, 0);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return -errno;
    int rc = catalog__write_all(fd, &h, sizeof h);
    if (!rc && n) rc = catalog__write_all(fd, e, n * sizeof *e);
    if (close(fd) < 0 && !rc) rc = -errno;
    if (!rc && rename(tmp, path) < 0) rc = -errno;
    if (rc) unlink(tmp);
    return rc;
}

long catalog_read(const char *dir, catalog_entry **out, char *err, size_t errlen)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/catalog", dir);
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    catalog_hdr h;
    struct stat sb;
    long rc = -1;
    if (fstat(fd, &sb) < 0 || read(fd, &h, sizeof h) != (ssize_t)sizeof h ||
        memcmp(h.magic, CATALOG_MAGIC, 8) || h.version != CATALOG_VERSION ||
        h.count > CATALOG_MAX || (uint64_t)sb.st_size != sizeof h + h.count * sizeof **out) {
        snprintf(err, errlen, "%s: not a catalog of this version, or torn", path);
        goto out;
    }
    catalog_entry *e = xmalloc(h.count ? h.count * sizeof *e : 1);
    size_t want = h.count * sizeof *e, got = 0;
    while (got < want) {
        ssize_t r = read(fd, (char *)e + got, want - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        got += (size_t)r;
    }
    if (got != want || crc32c(e, want, 0) != h.crc) {
        snprintf(err, errlen, "%s: fails its checksum", path);
        free(e);
        goto out;
    }
    for (uint64_t i = 1; i < h.count; i++)
        if (e[i].seq <= e[i - 1].seq) {
            snprintf(err, errlen, "%s: segments out of order", path);
            free(e);
            goto out;
        }
    *out = e;
    rc = (long)h.count;
out:
    close(fd);
    return rc;
}

const catalog_entry *catalog_find(const catalog_entry *e, size_t n, uint64_t seq)
{
    size_t a = 0, b = n;
    while (a < b) {
        size_t m = (a + b) / 2;
        if (e[m].seq < seq) a = m + 1;
        else b = m;
    }
    return a < n && e[a].seq == seq ? &e[a] : NULL;
}
