/* fuzz_catalog.c - a data directory's catalog and summary file as a search
 * and a restarting store read them.
 *
 * An input is a u32 length n, then n bytes of "catalog", then the bytes of
 * its summary file ("catalog.sum.GEN", GEN from the catalog's header). In
 * inputs of even length the entries' checksum is made right, so the
 * fuzzer reaches the summaries with any content. Then: the catalog is read
 * (every summary must lie inside the mapped file) and each entry's summary
 * probed for hosts, networks and ports and judged for three expressions;
 * then a writer adopts the files (a store's start-up), writes the catalog
 * again with the same entries, and a second read must give each entry the
 * same summary bytes as the first.
 */
#include "catalog.h"
#include "crc32c.h"
#include "exprscan.h"
#include "fuzz.h"

#include <dirent.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

static char fuzz_dir[256];

static void fuzz__clear(void)
{
    DIR *d = opendir(fuzz_dir);
    FUZZ_CHECK(d);
    struct dirent *de;
    char path[512];
    while ((de = readdir(d)))
        if (de->d_name[0] != '.') {
            snprintf(path, sizeof path, "%s/%s", fuzz_dir, de->d_name);
            unlink(path);
        }
    closedir(d);
}

static void fuzz__cleanup(void)
{
    fuzz__clear();
    rmdir(fuzz_dir);
}

static int fuzz__hosts(const void *e, const uint8_t lo[16], const uint8_t hi[16])
{
    return catalog_may_hold_hosts(e, lo, hi);
}

static int fuzz__ports(const void *e, uint16_t lo, uint16_t hi)
{
    return catalog_may_hold_ports(e, lo, hi);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int init;
    static exprscan_t *es[3];
    if (!init) {
        fuzz_quiet();
        const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
        snprintf(fuzz_dir, sizeof fuzz_dir, "%s/fuzz_catalog.XXXXXX", base);
        FUZZ_CHECK(mkdtemp(fuzz_dir));
        atexit(fuzz__cleanup);
        es[0] = exprscan_new("host 10.0.1.1 and tcp port 80");
        es[1] = exprscan_new("net 10.1.0.0/16 or portrange 1000-1100 or host 2001:db8::1");
        es[2] = exprscan_new("not host 10.0.2.2");
        init = 1;
    }
    if (size < 4) return 0;
    uint32_t n;
    memcpy(&n, data, 4);
    data += 4;
    size -= 4;
    if (n > size) n = (uint32_t)size;
    uint8_t *cat = malloc(n + 1);
    FUZZ_CHECK(cat);
    memcpy(cat, data, n);
    uint64_t gen = 1, count = 0;
    if (n >= 40) {
        memcpy(&count, cat + 16, 8);
        memcpy(&gen, cat + 24, 8);
        if (size % 2 == 0 && count <= (n - 40) / 48) {
            uint32_t crc = crc32c(cat + 40, count * 48, 0);
            memcpy(cat + 12, &crc, 4);
        }
    }
    fuzz__clear();
    fuzz_write_file(fuzz_dir, "catalog", cat, n);
    char name[64];
    snprintf(name, sizeof name, "catalog.sum.%llu", (unsigned long long)gen);
    fuzz_write_file(fuzz_dir, name, data + n, size - n);
    free(cat);

    catalog_t c;
    char err[256];
    long got = catalog_read(fuzz_dir, &c, err, sizeof err);
    if (got < 0) return 0;
    FUZZ_CHECK((size_t)got == c.n);
    uint8_t a[16] = { 0 }, b[16];
    a[10] = a[11] = 0xff;
    a[12] = 10;
    memcpy(b, a, 16);
    b[15] = 0xff;
    /* Searches read the same catalog line by line: the same entries, the
     * same answers. */
    catalog_t lines;
    FUZZ_CHECK(catalog_read_lines(fuzz_dir, &lines, err, sizeof err) == got);
    for (size_t i = 0; i < c.n; i++) {
        const catalog_entry *e = &c.e[i], *l = &lines.e[i];
        if (e->bloom_bytes) {
            const uint8_t *m = c.map;
            FUZZ_CHECK(e->bloom >= m && e->bloom + e->bloom_bytes + e->bloom_bytes / 16 <= m + c.map_size);
        }
        FUZZ_CHECK(l->seq == e->seq && l->bloom_bytes == e->bloom_bytes && !l->bloom);
        FUZZ_CHECK(catalog_may_hold_hosts(l, a, a) == catalog_may_hold_hosts(e, a, a));
        FUZZ_CHECK(catalog_may_hold_hosts(l, a, b) == catalog_may_hold_hosts(e, a, b));
        FUZZ_CHECK(catalog_may_hold_ports(l, 80, 80) == catalog_may_hold_ports(e, 80, 80));
        FUZZ_CHECK(catalog_may_hold_ports(l, 1000, 60000) == catalog_may_hold_ports(e, 1000, 60000));
        exprscan_probe p = { fuzz__hosts, fuzz__ports, e };
        for (int k = 0; k < 3; k++) (void)exprscan_may_have_candidates(es[k], &p);
        FUZZ_CHECK(exprscan_may_have_candidates(es[2], &p) == 1); /* `not` is never pruned */
    }
    catalog_release(&lines);

    /* A store's start-up: adopt, write the same entries, read them back. */
    catalog_entry *e = malloc((c.n ? c.n : 1) * sizeof *e);
    uint8_t **before = malloc((c.n ? c.n : 1) * sizeof *before);
    FUZZ_CHECK(e && before);
    for (size_t i = 0; i < c.n; i++) {
        e[i] = c.e[i];
        before[i] = NULL;
        if (c.e[i].bloom_bytes) {
            size_t k = c.e[i].bloom_bytes + c.e[i].bloom_bytes / 16;
            before[i] = malloc(k);
            FUZZ_CHECK(before[i]);
            memcpy(before[i], c.e[i].bloom, k);
        }
    }
    size_t count2 = c.n;
    catalog_release(&c);
    catalog_writer_t *w = catalog_writer_open(fuzz_dir);
    for (size_t i = 0; i < count2; i++) FUZZ_CHECK(catalog_writer_known(w, &e[i]));
    FUZZ_CHECK(catalog_writer_put(w, e, count2) == 0);
    catalog_writer_free(w);
    FUZZ_CHECK(catalog_read(fuzz_dir, &c, err, sizeof err) == (long)count2);
    for (size_t i = 0; i < count2; i++) {
        FUZZ_CHECK(c.e[i].seq == e[i].seq && c.e[i].bloom_bytes == e[i].bloom_bytes);
        if (before[i])
            FUZZ_CHECK(!memcmp(c.e[i].bloom, before[i], e[i].bloom_bytes + e[i].bloom_bytes / 16));
        free(before[i]);
    }
    catalog_release(&c);
    free(before);
    free(e);
    return 0;
}
