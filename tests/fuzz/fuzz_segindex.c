/* fuzz_segindex.c - a segment index as the search engine reads it.
 *
 * An input is an index file followed by its segment's pcap file: the index
 * is the first hdr.total_size bytes (the whole input when that does not fit),
 * the rest is the pcap. Both are written into a data directory twice over
 * (seg 1 and seg 2 are hard links to the same files, so the search's merge
 * of segments with equal times is exercised too) and searched as
 * `mscope-recorder search` does: everything (the per-block time index), a
 * host-or-port expression over a time range inside the segment (the host
 * and port lookups, the posting lists, the per-packet time filter), and a
 * `not` expression (every flow judged on its key). segidx_open() checks the
 * header and sections; what it leaves to the search (a flow's posting list,
 * an ordinal, a record's offset) must be checked where it is used: a corrupt
 * index may lose packets but never read outside the files. Inputs of even
 * length get their checksums made right before they are written (so the
 * fuzzer reaches the search with any content); odd ones are written as they
 * are (the checksum's refusal and the rebuild from the pcap).
 */
#include "flowkey.h"
#include "fuzz.h"
#include "pcapio.h"
#include "search.h"
#include "segindex.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char fuzz_dir[256];
static volatile uint8_t fuzz_sink; /* keeps the reads of each answer */

/* Seg 2 = hard links to seg 1's files, made again for every input: a search
 * that rebuilds a damaged index writes it back under a new inode. */
static void fuzz__link(void)
{
    char a[512], b[512];
    for (int i = 0; i < 2; i++) {
        const char *ext = i ? "idx" : "pcap";
        snprintf(a, sizeof a, "%s/seg-000000000001.%s", fuzz_dir, ext);
        snprintf(b, sizeof b, "%s/seg-000000000002.%s", fuzz_dir, ext);
        unlink(b);
        FUZZ_CHECK(link(a, b) == 0);
    }
}

static void fuzz__setup(void)
{
    /* tmpfs when there is one: two files are rewritten per input. */
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(fuzz_dir, sizeof fuzz_dir, "%s/fuzz_segindex.XXXXXX", base);
    FUZZ_CHECK(mkdtemp(fuzz_dir));
}

static void fuzz__cleanup(void)
{
    char path[512];
    const char *names[] = { "seg-000000000001.pcap", "seg-000000000001.idx",
                            "seg-000000000002.pcap", "seg-000000000002.idx" };
    for (int i = 0; i < 4; i++) {
        snprintf(path, sizeof path, "%s/%s", fuzz_dir, names[i]);
        unlink(path);
    }
    rmdir(fuzz_dir);
}

static void fuzz__search(const char *expr, int64_t from, int64_t to)
{
    search_query q = { .from_ns = from, .to_ns = to, .expr = expr };
    char err[512];
    search_t *s = search_new(fuzz_dir, &q, err, sizeof err);
    FUZZ_CHECK(s);
    search_pkt p;
    int rc;
    uint64_t n = 0;
    while ((rc = search_next(s, &p)) == 1) {
        FUZZ_CHECK(p.ts_ns >= from && p.ts_ns < to);
        FUZZ_CHECK(p.caplen <= PCAPIO_SNAPLEN && p.caplen <= p.origlen);
        FUZZ_CHECK(p.segment == 1 || p.segment == 2);
        /* The data is borrowed until the next call: every byte readable. */
        uint8_t x = 0;
        for (uint32_t i = 0; i < p.caplen; i++) x ^= p.data[i];
        fuzz_sink = x;
        n++;
    }
    FUZZ_CHECK(rc == 0);
    search_stats st;
    search_get_stats(s, &st);
    FUZZ_CHECK(st.packets == n);
    search_free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    flowkey_set_seed(0); /* the same buckets every run: a finding replays as found */
    static int init;
    if (!init) {
        fuzz_quiet();
        fuzz__setup();
        atexit(fuzz__cleanup);
        init = 1;
    }
    size_t ilen = size;
    segidx_hdr h;
    if (size >= sizeof h) {
        memcpy(&h, data, sizeof h);
        if (h.total_size <= size) ilen = (size_t)h.total_size;
    }
    if (size % 2 == 0 && ilen >= sizeof h) {
        uint8_t *ix = malloc(ilen);
        FUZZ_CHECK(ix);
        memcpy(ix, data, ilen);
        segidx_checksum(ix, ilen);
        fuzz_write_file(fuzz_dir, "seg-000000000001.idx", ix, ilen);
        free(ix);
    } else {
        fuzz_write_file(fuzz_dir, "seg-000000000001.idx", data, ilen);
    }
    fuzz_write_file(fuzz_dir, "seg-000000000001.pcap", data + ilen, size - ilen);
    fuzz__link();

    fuzz__search("", INT64_MIN, INT64_MAX);
    /* A range inside what the header claims, when it claims one. */
    int64_t from = INT64_MIN, to = INT64_MAX;
    if (size >= sizeof h && h.min_ts < h.max_ts) {
        from = h.min_ts + (int64_t)(((uint64_t)h.max_ts - (uint64_t)h.min_ts) / 4);
        to = h.max_ts;
    }
    fuzz__search("host 10.0.1.1 or port 53 or net 2001:db8::/32", from, to);
    fuzz__search("not host 10.0.2.2 and not vlan", INT64_MIN, INT64_MAX);
    return 0;
}
