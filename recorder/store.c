/* store.c - pcap segments, their indexes, the disk budget and crash repair
 * (see store.h).
 *
 * DESIGN: packets are copied into a 4 MiB buffer, and segments are written
 * with O_DIRECT: the disk reads the buffer itself, so the bytes are copied
 * once (into the buffer) instead of twice (and again into page-cache pages
 * the kernel must find and clear, which was half the recorder's CPU time on
 * a small VM). Two buffers, allocated once (in huge pages if the kernel gives
 * them: store__buffer) and reused: when one is full, an I/O
 * thread writes its whole 4 KiB blocks while the writer fills the other,
 * which starts with the block the last whole record ended in (written again
 * with the next blocks: O_DIRECT offsets and lengths are whole blocks). At
 * the flush interval (searches see a packet within a second) and at a seal,
 * the tail after the last whole block is written through the page cache
 * (O_DIRECT cleared for that one pwrite), so the file only ever holds a
 * prefix of the records - never padding - and a crash leaves at worst a torn
 * last record, which recovery cuts (zero fill a file system may show after a
 * crash is never taken for packets: pcapio_parse_rec). A file system that
 * refuses O_DIRECT (ramfs when the flag is set; others at a write: the
 * rule is common/dio.c's) gets buffered writes, logged once. The index
 * builder records each packet's file offset at append time, which is exactly
 * where the record will land because the file is only ever appended to. At a
 * seal a sealer thread lays the index out straight into its file and makes
 * the segment's catalog summary (sorting and laying out 17 MB took the
 * writer ~0.1 s per 256 MiB segment) while the writer goes on in a second
 * builder; the writer lists the segment and applies the disk budget when the
 * index is written (at its next tick or seal), and a search meanwhile scans
 * the segment as it scans the open one.
 *
 * A failed write (ENOSPC, EDQUOT, EIO) is cut back to the last whole record
 * with ftruncate, so the file never holds a torn record; the bytes after it
 * stay buffered (an I/O thread's failure comes back to the writer, its
 * unwritten bytes in front of the buffer). The store then evicts old
 * segments if it may and retries; if nothing can be freed it pauses: new
 * packets are refused and counted, and every tick retries the buffered write
 * until space appears. Nothing already accepted is
 * lost, and the file is never corrupted. After every change of the list of
 * sealed segments the catalog (catalog.h) is rewritten for searches; each
 * segment's host and port summary is appended to it once, when the segment
 * is sealed (or found at start-up without one).
 */
#include "store.h"

#include "catalog.h"
#include "dio.h"
#include "log.h"
#include "pcapio.h"
#include "segindex.h"
#include "timeparse.h"
#include "xmalloc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#define STORE_BUF (4u << 20)
#define STORE_BUF_CAP (2 * STORE_BUF) /* room to merge a failed write back */
#define STORE_HUGE_PAGE (2u << 20)
#define STORE_RETRY_NS 1000000000LL

typedef struct seg_info {
    uint64_t seq;
    uint64_t bytes; /* pcap + index */
    int64_t min_ts, max_ts;
    uint64_t packets;
} seg_info;

/* The I/O thread writes one job at a time: the new aligned blocks of a full
 * buffer, while the writer fills the other buffer. */
enum { STORE_IO_IDLE, STORE_IO_QUEUED, STORE_IO_DONE };

typedef struct store_io {
    pthread_t tid;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int state, quit;   /* under mu */
    int fd;            /* the job: len bytes at p to file offset off */
    const uint8_t *p;
    size_t len;
    uint64_t off;
    size_t done;       /* its result: bytes written, and the errno that stopped it */
    int err;
    int direct;        /* the I/O thread's report: 0 if it fell back to the page cache */
} store_io;

/* The sealer thread lays out a sealed segment's index and writes it, while
 * the writer goes on with the next segment in a second index builder. */
typedef struct store_sealer {
    pthread_t tid;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int quit;              /* under mu */
    int state;             /* STORE_IO_*, under mu */
    segidx_builder_t *b;   /* the job: the builder of segment seq, pcap_bytes long */
    uint64_t seq, pcap_bytes;
    char idx[4096];
    segidx_hdr hdr;        /* its result: the index's header, its catalog summary */
    catalog_entry sum;
    int wrc;               /* and whether the index was written (0 or -errno) */
} store_sealer;

struct store {
    store_opts o;
    char *dir;
    int lock_fd;
    /* sealed segments, ascending seq */
    seg_info *segs;
    size_t nsegs, cap_segs;
    catalog_writer_t *catw;
    int catalog_failing; /* the last catalog write failed (logged) */
    uint64_t next_seq;
    /* the open segment */
    int fd;              /* -1 when none is open */
    int direct;          /* fd has O_DIRECT: whole aligned blocks of buf */
    int no_direct;       /* the file system refused O_DIRECT (logged once) */
    uint64_t seq;
    uint64_t base;       /* file offset of buf[0] (aligned when direct) */
    uint64_t file_size;  /* bytes in the file: base <= file_size <= base + used */
    uint32_t committed;  /* packets whose bytes are in the file */
    int64_t opened_ns, last_flush_ns, last_retry_ns;
    int64_t open_min_ts, open_max_ts;
    uint8_t *buf;        /* STORE_BUF_CAP bytes, DIO_ALIGN-aligned, reused */
    size_t used;
    uint8_t *spare;      /* the other buffer; NULL while the I/O thread has it */
    uint8_t *job_buf;    /* the buffer the I/O thread writes from, NULL if none */
    uint64_t job_base;   /* its file offset, and the bytes it held */
    size_t job_used, job_from;
    store_io io;
    int no_io_thread;    /* it could not be started */
    segidx_builder_t *ix;
    segidx_builder_t *ix_spare; /* the other builder; NULL while the sealer has it */
    store_sealer sl;
    int no_sealer;              /* its thread could not be started */
    int64_t sealing_min_ts, sealing_max_ts; /* the segment the sealer holds */
    store_stats st;
};

void store_segment_path(const char *dir, uint64_t seq, const char *ext, char *buf, size_t len)
{
    snprintf(buf, len, "%s/seg-%012" PRIu64 ".%s", dir, seq, ext);
}

static int store__cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* 1 when name is a segment's pcap, "seg-" 1 to 12 digits ".pcap" (the
 * digits into *seq). By hand: sscanf was a fifth of a search's listing of
 * a 2 000-segment directory. */
static int store__segment_name(const char *name, uint64_t *seq)
{
    if (strncmp(name, "seg-", 4)) return 0;
    const char *p = name + 4;
    uint64_t v = 0;
    int digits = 0;
    for (; *p >= '0' && *p <= '9' && digits < 12; p++, digits++) v = v * 10 + (uint64_t)(*p - '0');
    if (!digits || strcmp(p, ".pcap")) return 0;
    *seq = v;
    return 1;
}

long store_list_segments(const char *dir, uint64_t **seqs)
{
    DIR *d = opendir(dir);
    *seqs = NULL;
    if (!d) return -errno;
    size_t n = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        uint64_t seq;
        if (store__segment_name(de->d_name, &seq)) {
            xgrow((void **)seqs, &cap, n + 1, sizeof **seqs);
            (*seqs)[n++] = seq;
        }
    }
    closedir(d);
    if (n) qsort(*seqs, n, sizeof **seqs, store__cmp_u64);
    return (long)n;
}

/* A write buffer (STORE_BUF_CAP bytes), in huge pages where the kernel
 * gives them (transparent huge pages on request, "madvise", is Debian's
 * default): O_DIRECT pins a buffer's pages for every write, 1 024 small pages
 * a 4 MiB write (5% of an import's CPU) against two huge ones. Without
 * them (the call refused, or no huge page free) it is what it was. */
static uint8_t *store__buffer(void)
{
    uint8_t *p = xmalloc_aligned(STORE_HUGE_PAGE, STORE_BUF_CAP);
    (void)madvise(p, STORE_BUF_CAP, MADV_HUGEPAGE);
    return p;
}

static uint64_t store__file_size(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 ? (uint64_t)sb.st_size : 0;
}

/* List sealed segment seq (its index's header h, bytes on disk in all) and
 * give the catalog its summary, unless the catalog has it already: sum, the
 * one made when the index was (borrowed), or when NULL one made from ix. */
static void store__add_sealed(store_t *s, uint64_t seq, const segidx_hdr *h, uint64_t bytes,
                              const catalog_entry *sum, const segidx_t *ix)
{
    xgrow((void **)&s->segs, &s->cap_segs, s->nsegs + 1, sizeof *s->segs);
    seg_info *g = &s->segs[s->nsegs++];
    g->seq = seq;
    g->bytes = bytes;
    g->min_ts = h->min_ts;
    g->max_ts = h->max_ts;
    g->packets = h->npkts;
    catalog_entry e = { .seq = seq, .min_ts = g->min_ts, .max_ts = g->max_ts, .packets = g->packets };
    if (!catalog_writer_known(s->catw, &e)) {
        if (sum) {
            e.flags = sum->flags;
            e.bloom = sum->bloom;
            e.bloom_bytes = sum->bloom_bytes;
        } else {
            catalog_summarize(ix, seq, &e);
        }
        int rc = catalog_writer_add(s->catw, &e);
        if (rc < 0)
            log_warn("cannot append segment %" PRIu64 "'s summary to %s/catalog.sum: %s (searches "
                     "open its index)", seq, s->dir, strerror(-rc));
        if (!sum) free((void *)e.bloom);
    }
}

/* Write segment seq's index from builder b (straight to the file, see
 * segidx_builder_write) and make its catalog summary into *sum (its bloom
 * malloc'd). Returns 0 or -errno; *h and *sum are made either way. */
static int store__write_index(segidx_builder_t *b, uint64_t seq, uint64_t pcap_bytes,
                              const char *idx, segidx_hdr *h, catalog_entry *sum)
{
    segidx_keys keys;
    int rc = segidx_builder_write(b, pcap_bytes, idx, h, &keys);
    memset(sum, 0, sizeof *sum);
    catalog_summarize_keys(&keys, pcap_bytes, seq, sum);
    segidx_keys_free(&keys);
    return rc;
}

/* Index a segment that has a pcap but no (valid) index: cut a torn tail,
 * rebuild, write the index. Returns 0, or -1 if the file is not a segment. */
static int store__repair(store_t *s, uint64_t seq)
{
    char pcap[4096], idx[4096];
    store_segment_path(s->dir, seq, "pcap", pcap, sizeof pcap);
    store_segment_path(s->dir, seq, "idx", idx, sizeof idx);
    int fd = open(pcap, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        log_error("open(%s) failed: %s", pcap, strerror(errno));
        return -1;
    }
    uint64_t size = (uint64_t)lseek(fd, 0, SEEK_END), valid = 0;
    if (size < PCAPIO_FILE_HDR) {
        /* Created but the header never made it: nothing to keep. */
        close(fd);
        unlink(pcap);
        log_warn("removed empty segment %s (%" PRIu64 " bytes)", pcap, size);
        return -1;
    }
    segidx_builder_reset(s->ix, seq);
    if (segidx_scan_pcap(s->ix, fd, size, &valid) < 0) {
        close(fd);
        log_error("%s is not a Mirrorscope segment (bad pcap header); left untouched", pcap);
        return -1;
    }
    if (valid < size) {
        if (ftruncate(fd, (off_t)valid) < 0) {
            log_error("ftruncate(%s) failed: %s", pcap, strerror(errno));
            close(fd);
            return -1;
        }
        s->st.recovered_torn_bytes += size - valid;
        log_warn("cut torn tail of %s: %" PRIu64 " bytes after the last whole packet", pcap,
                 size - valid);
    }
    close(fd);
    segidx_hdr h;
    catalog_entry sum;
    int rc = store__write_index(s->ix, seq, valid, idx, &h, &sum);
    if (rc < 0) log_warn("cannot write index %s: %s (searches will scan it)", idx, strerror(-rc));
    log_info("recovered segment %s: %" PRIu64 " packets re-indexed", pcap, h.npkts);
    s->st.recovered_segments++;
    store__add_sealed(s, seq, &h, valid + h.total_size, &sum, NULL);
    free((void *)sum.bloom);
    return 0;
}

static void store__load(store_t *s)
{
    uint64_t *seqs;
    long n = store_list_segments(s->dir, &seqs);
    char path[4096], err[256];
    for (long i = 0; i < n; i++) {
        store_segment_path(s->dir, seqs[i], "idx", path, sizeof path);
        segidx_t *ix = segidx_open(path, err, sizeof err);
        if (!ix && errno != ENOENT) log_warn("index %s: %s: rebuilding it", path, err);
        char pcap[4096];
        store_segment_path(s->dir, seqs[i], "pcap", pcap, sizeof pcap);
        uint64_t psize = store__file_size(pcap);
        if (ix && ix->hdr->pcap_bytes == psize) {
            store__add_sealed(s, seqs[i], ix->hdr, psize + ix->size, NULL, ix);
        } else {
            if (ix) log_warn("index %s does not match its segment: rebuilding", path);
            store__repair(s, seqs[i]);
        }
        segidx_free(ix);
        if (seqs[i] >= s->next_seq) s->next_seq = seqs[i] + 1;
    }
    free(seqs);
}

static uint64_t store__free_bytes(store_t *s)
{
    struct statvfs v;
    if (statvfs(s->dir, &v) < 0) return UINT64_MAX;
    return (uint64_t)v.f_bavail * v.f_frsize;
}

/* Does the sealer hold a segment whose index is being made? */
static int store__sealing(const store_t *s) { return !s->no_sealer && !s->ix_spare; }

static uint64_t store__used(store_t *s)
{
    uint64_t u = s->fd >= 0 ? s->file_size : 0;
    if (store__sealing(s)) u += s->sl.pcap_bytes;
    for (size_t i = 0; i < s->nsegs; i++) u += s->segs[i].bytes;
    return u;
}

/* Delete the oldest sealed segment. Returns 0, or -1 if there is none. */
static int store__evict_one(store_t *s, const char *why)
{
    if (!s->nsegs) return -1;
    seg_info g = s->segs[0];
    char pcap[4096], idx[4096];
    store_segment_path(s->dir, g.seq, "pcap", pcap, sizeof pcap);
    store_segment_path(s->dir, g.seq, "idx", idx, sizeof idx);
    /* Index first: a pcap without index is "needs repair", never "lost". */
    unlink(idx);
    unlink(pcap);
    memmove(s->segs, s->segs + 1, (s->nsegs - 1) * sizeof *s->segs);
    s->nsegs--;
    s->st.segments_evicted++;
    s->st.bytes_evicted += g.bytes;
    log_info("evicted segment %" PRIu64 " (%" PRIu64 " packets, %" PRIu64 " bytes): %s", g.seq,
             g.packets, g.bytes, why);
    return 0;
}

/* The sealed segments' catalog for searches (catalog.h): rewritten after
 * each change of the list. A failure leaves the old one, which is safe
 * (stale entries are skipped, missing ones opened); logged once a streak. */
static void store__catalog(store_t *s)
{
    catalog_entry *e = xmalloc((s->nsegs ? s->nsegs : 1) * sizeof *e);
    for (size_t i = 0; i < s->nsegs; i++)
        e[i] = (catalog_entry){ .seq = s->segs[i].seq, .min_ts = s->segs[i].min_ts,
                                .max_ts = s->segs[i].max_ts, .packets = s->segs[i].packets };
    int rc = catalog_writer_put(s->catw, e, s->nsegs);
    free(e);
    if (rc < 0 && !s->catalog_failing)
        log_warn("cannot write %s/catalog: %s (searches open every index until it is written)",
                 s->dir, strerror(-rc));
    s->catalog_failing = rc < 0;
}

static void store__budget(store_t *s)
{
    while (s->o.max_disk > 0 && store__used(s) > (uint64_t)s->o.max_disk)
        if (store__evict_one(s, "over --max-disk") < 0) break;
    while (s->o.min_free > 0 && store__free_bytes(s) < (uint64_t)s->o.min_free)
        if (store__evict_one(s, "free space below --min-free") < 0) break;
    store__catalog(s);
}

/* Where the last whole record among the first `limit` bytes of the open
 * segment ends (0 while the file header is not whole), and how many packets
 * that is. The index builder holds every record's offset. */
static uint64_t store__whole_upto(store_t *s, uint64_t limit, uint32_t *npkts)
{
    uint32_t n = segidx_builder_count(s->ix);
    if (limit >= s->base + s->used) { /* everything appended is in */
        *npkts = n;
        return s->base + s->used;
    }
    uint32_t m = segidx_builder_count_upto(s->ix, limit); /* records starting <= limit */
    *npkts = m ? m - 1 : 0; /* record m - 1 ends past limit */
    return m ? segidx_builder_offset(s->ix, m - 1) : 0;
}

/* After bytes up to file_size reached the file: count the whole records and
 * drop what is written from the buffer, keeping (when direct) the aligned
 * block where the last whole record ends, which the next write starts with. */
static void store__advance(store_t *s)
{
    uint64_t whole = store__whole_upto(s, s->file_size, &s->committed);
    size_t keep_from = (size_t)(whole - s->base);
    if (s->direct) keep_from &= ~(size_t)(DIO_ALIGN - 1);
    if (!keep_from) return;
    memmove(s->buf, s->buf + keep_from, s->used - keep_from);
    s->used -= keep_from;
    s->base += keep_from;
}

/* The file system refused O_DIRECT, when it was set on a new segment or at
 * a write (which dio_pwrite then made through the page cache, O_DIRECT
 * cleared): this segment and the next go through the page cache. Logged
 * once per store. */
static void store__went_buffered(store_t *s, const char *why)
{
    s->direct = 0;
    if (!s->no_direct)
        log_warn("%s: %s; writing segments through the page cache", s->dir, why);
    s->no_direct = 1;
}

/* After a failed write: the file cut after the last whole record in it (a
 * torn one is never left), the rest kept in the buffer for the next try. */
static void store__cut_back(store_t *s)
{
    uint64_t whole = store__whole_upto(s, s->file_size, &s->committed);
    if (ftruncate(s->fd, (off_t)whole) < 0)
        log_error("cannot cut segment %" PRIu64 " back after a failed write: %s", s->seq,
                  strerror(errno));
    s->file_size = whole;
}

/* Write the buffer out: with O_DIRECT only its whole aligned blocks, unless
 * all is set (a flush for searches, a seal), when the tail after them is
 * written through the page cache (O_DIRECT cleared for that one pwrite) and
 * rewritten by the next direct write. So the file only ever holds a prefix
 * of the records, never padding. On failure keep the whole records that made
 * it, cut the file after the last one (ftruncate), keep the rest buffered. */
static int store__write_buf(store_t *s, int all)
{
    size_t have = (size_t)(s->file_size - s->base); /* of buf, in the file */
    size_t mask = s->direct ? DIO_ALIGN - 1 : 0;
    size_t blocks = s->used & ~mask, from = have & ~mask;
    int err = 0;
    if (blocks > have) {
        int was_direct = s->direct;
        size_t n = dio_pwrite(s->fd, &s->direct, s->buf + from, blocks - from, s->base + from, &err);
        if (was_direct && !s->direct) store__went_buffered(s, "a direct write failed (EINVAL)");
        if (from + n > have) s->file_size = s->base + from + n;
        have = (size_t)(s->file_size - s->base);
    }
    if (!err && all && s->used > have) {
        if (s->direct) dio_set(s->fd, 0);
        size_t n = dio_pwrite(s->fd, NULL, s->buf + have, s->used - have, s->base + have, &err);
        if (s->direct) dio_set(s->fd, 1);
        s->file_size += n;
    }
    if (err) store__cut_back(s);
    store__advance(s);
    return -err;
}

static void *store__io_main(void *arg)
{
    store_io *io = arg;
    pthread_setname_np(pthread_self(), "mscope-store-io");
    pthread_mutex_lock(&io->mu);
    for (;;) {
        while (io->state != STORE_IO_QUEUED && !io->quit) pthread_cond_wait(&io->cv, &io->mu);
        if (io->state != STORE_IO_QUEUED) break;
        pthread_mutex_unlock(&io->mu);
        int err, direct = 1;
        size_t n = dio_pwrite(io->fd, &direct, io->p, io->len, io->off, &err);
        pthread_mutex_lock(&io->mu);
        io->done = n;
        io->err = err;
        io->direct = direct;
        io->state = STORE_IO_DONE;
        pthread_cond_broadcast(&io->cv);
    }
    pthread_mutex_unlock(&io->mu);
    return NULL;
}

/* The buffer is full (direct, nothing in flight): hand its new aligned
 * blocks to the I/O thread and go on in the spare buffer, which starts with
 * the aligned block where the last whole record among them ends (the next
 * write rewrites it, as store__advance would keep it). */
static void store__io_start(store_t *s)
{
    size_t have = (size_t)(s->file_size - s->base);
    size_t blocks = s->used & ~(size_t)(DIO_ALIGN - 1);
    size_t from = have & ~(size_t)(DIO_ALIGN - 1);
    uint32_t npkts;
    uint64_t whole = store__whole_upto(s, s->base + blocks, &npkts);
    size_t keep_from = (size_t)(whole - s->base) & ~(size_t)(DIO_ALIGN - 1);
    s->job_buf = s->buf;
    s->job_base = s->base;
    s->job_used = s->used;
    s->job_from = from;
    memcpy(s->spare, s->buf + keep_from, s->used - keep_from);
    s->buf = s->spare;
    s->spare = NULL;
    s->used -= keep_from;
    s->base += keep_from;
    pthread_mutex_lock(&s->io.mu);
    s->io.fd = s->fd;
    s->io.p = s->job_buf + from;
    s->io.len = blocks - from;
    s->io.off = s->job_base + from;
    s->io.state = STORE_IO_QUEUED;
    pthread_cond_broadcast(&s->io.cv);
    pthread_mutex_unlock(&s->io.mu);
}

/* Wait for the I/O thread's job, if there is one, and take its result: what
 * it wrote is in the file. On failure its unwritten bytes come back in front
 * of the buffer, and the file is cut after the last whole record as in
 * store__write_buf. Returns 0 or -errno. */
static int store__io_wait(store_t *s)
{
    if (!s->job_buf) return 0;
    pthread_mutex_lock(&s->io.mu);
    while (s->io.state == STORE_IO_QUEUED) pthread_cond_wait(&s->io.cv, &s->io.mu);
    size_t n = s->io.done;
    int err = s->io.err;
    int direct = s->io.direct;
    s->io.state = STORE_IO_IDLE;
    pthread_mutex_unlock(&s->io.mu);
    uint8_t *j = s->job_buf;
    s->job_buf = NULL;
    if (s->job_base + s->job_from + n > s->file_size) s->file_size = s->job_base + s->job_from + n;
    if (!direct) store__went_buffered(s, "a direct write failed (EINVAL)");
    if (!err) {
        s->spare = j;
        store__whole_upto(s, s->file_size, &s->committed);
        return 0;
    }
    /* The job's bytes before the buffer's base, then the buffer: at most
     * STORE_BUF + STORE_BUF, what the buffers hold. */
    size_t at = (size_t)(s->base - s->job_base);
    memcpy(j + at, s->buf, s->used);
    s->spare = s->buf;
    s->buf = j;
    s->used += at;
    s->base = s->job_base;
    store__cut_back(s);
    store__advance(s);
    return -err;
}

/* Write buffered packets (all: the unaligned tail too, see store__write_buf;
 * else, with O_DIRECT, the I/O thread writes the full buffer's blocks while
 * the writer goes on); on a full disk evict old segments if we may, else
 * pause. */
static int store__flush(store_t *s, int all)
{
    if (s->fd < 0) return 0;
    int rc = store__io_wait(s);
    if (rc == 0) {
        if (s->base + s->used == s->file_size) return 0;
        s->last_flush_ns = timeparse_mono_ns();
        if (!all && s->direct && !s->no_io_thread && (s->used & ~(size_t)(DIO_ALIGN - 1)) > s->file_size - s->base) {
            store__io_start(s);
            return 0;
        }
        rc = store__write_buf(s, all);
    }
    if (rc == 0) {
        if (s->st.paused) {
            log_info("writing resumed: %" PRIu64 " packets were dropped while the disk was full",
                     s->st.drop_disk_full);
            s->st.paused = 0;
        }
        return 0;
    }
    /* Out of space: make room from the oldest segments if we may, then retry. */
    int evicted = 0;
    while ((rc == -ENOSPC || rc == -EDQUOT) && store__evict_one(s, "disk full") == 0) {
        evicted = 1;
        rc = store__write_buf(s, all);
    }
    if (evicted) store__catalog(s);
    if (rc == 0) return 0;
    if (!s->st.paused) {
        s->st.paused = 1;
        s->st.disk_full_events++;
        log_error("write to segment %" PRIu64 " in %s failed: %s; writing paused, new packets "
                  "are dropped and counted until space frees",
                  s->seq, s->dir, strerror(-rc));
    }
    s->last_retry_ns = timeparse_mono_ns();
    return rc;
}

static int store__open_segment(store_t *s)
{
    char path[4096];
    s->seq = s->next_seq++;
    store_segment_path(s->dir, s->seq, "pcap", path, sizeof path);
    s->fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (s->fd < 0) {
        int e = errno;
        log_error("cannot create segment %s: %s", path, strerror(e));
        return -e;
    }
    s->direct = 0;
    if (!s->no_direct) {
        if (dio_set(s->fd, 1) == 0)
            s->direct = 1;
        else
            store__went_buffered(s, "the file system refuses O_DIRECT");
    }
    segidx_builder_reset(s->ix, s->seq);
    pcapio_file_header(s->buf);
    s->used = PCAPIO_FILE_HDR;
    s->base = 0;
    s->file_size = 0;
    s->committed = 0;
    s->opened_ns = timeparse_mono_ns();
    s->last_flush_ns = s->opened_ns; /* the first flush one interval on, as every next one */
    s->open_min_ts = INT64_MAX;
    s->open_max_ts = INT64_MIN;
    return 0;
}

static void *store__sealer_main(void *arg)
{
    store_sealer *sl = arg;
    pthread_setname_np(pthread_self(), "mscope-sealer");
    pthread_mutex_lock(&sl->mu);
    for (;;) {
        while (sl->state != STORE_IO_QUEUED && !sl->quit) pthread_cond_wait(&sl->cv, &sl->mu);
        if (sl->state != STORE_IO_QUEUED) break;
        pthread_mutex_unlock(&sl->mu);
        segidx_hdr h;
        catalog_entry sum;
        int wrc = store__write_index(sl->b, sl->seq, sl->pcap_bytes, sl->idx, &h, &sum);
        pthread_mutex_lock(&sl->mu);
        sl->hdr = h;
        sl->sum = sum;
        sl->wrc = wrc;
        sl->state = STORE_IO_DONE;
        pthread_cond_broadcast(&sl->cv);
    }
    pthread_mutex_unlock(&sl->mu);
    return NULL;
}

/* The index of a sealed segment is made (header h, summary sum: its bloom
 * is freed here) and written (wrc): list the segment, apply the disk budget. */
static void store__sealed(store_t *s, uint64_t seq, uint64_t pcap_bytes, const segidx_hdr *h,
                          catalog_entry *sum, int wrc, const char *idx)
{
    if (wrc < 0)
        log_warn("cannot write index %s: %s; it will be rebuilt at start-up and searches scan "
                 "the segment meanwhile",
                 idx, strerror(-wrc));
    store__add_sealed(s, seq, h, pcap_bytes + (wrc < 0 ? 0 : h->total_size), sum, NULL);
    free((void *)sum->bloom);
    sum->bloom = NULL;
    s->st.segments_sealed++;
    log_debug("sealed segment %" PRIu64 ": %" PRIu64 " packets, %" PRIu64 " bytes", seq,
              h->npkts, pcap_bytes);
    store__budget(s);
}

/* Take the sealer's result if it has one (wait: wait for it). */
static void store__sealer_reap(store_t *s, int wait)
{
    store_sealer *sl = &s->sl;
    if (s->ix_spare || s->no_sealer) return; /* nothing given */
    pthread_mutex_lock(&sl->mu);
    while (wait && sl->state == STORE_IO_QUEUED) pthread_cond_wait(&sl->cv, &sl->mu);
    int done = sl->state == STORE_IO_DONE;
    if (done) sl->state = STORE_IO_IDLE;
    pthread_mutex_unlock(&sl->mu);
    if (!done) return;
    s->ix_spare = sl->b;
    store__sealed(s, sl->seq, sl->pcap_bytes, &sl->hdr, &sl->sum, sl->wrc, sl->idx);
}

static int store__seal(store_t *s)
{
    if (s->fd < 0) return 0;
    int rc = store__flush(s, 1);
    if (rc < 0) {
        /* What did not reach the file is dropped now, and counted. */
        uint32_t lost = segidx_builder_count(s->ix) - s->committed;
        s->st.drop_disk_full += lost;
        s->st.packets -= lost;
        segidx_builder_truncate(s->ix, s->committed);
        s->used = 0;
        log_error("segment %" PRIu64 " sealed without its last %u packets: %s", s->seq, lost,
                  strerror(-rc));
    }
    close(s->fd);
    s->fd = -1;
    char pcap[4096], idx[4096];
    store_segment_path(s->dir, s->seq, "pcap", pcap, sizeof pcap);
    store_segment_path(s->dir, s->seq, "idx", idx, sizeof idx);
    if (s->file_size < PCAPIO_FILE_HDR) {
        unlink(pcap); /* not even the header was written */
        return rc;
    }
    /* The previous segment's index first: one at a time, in order. */
    store__sealer_reap(s, 1);
    if (s->ix_spare) { /* the sealer makes the index; the writer goes on */
        store_sealer *sl = &s->sl;
        pthread_mutex_lock(&sl->mu);
        sl->b = s->ix;
        sl->seq = s->seq;
        sl->pcap_bytes = s->file_size;
        snprintf(sl->idx, sizeof sl->idx, "%s", idx);
        sl->state = STORE_IO_QUEUED;
        pthread_cond_broadcast(&sl->cv);
        pthread_mutex_unlock(&sl->mu);
        s->ix = s->ix_spare;
        s->ix_spare = NULL;
        s->sealing_min_ts = s->open_min_ts;
        s->sealing_max_ts = s->open_max_ts;
        return rc;
    }
    segidx_hdr h;
    catalog_entry sum;
    int wrc = store__write_index(s->ix, s->seq, s->file_size, idx, &h, &sum);
    store__sealed(s, s->seq, s->file_size, &h, &sum, wrc, idx);
    return rc;
}

store_t *store_open(const store_opts *o, char *err, size_t errlen)
{
    if (mkdir(o->dir, 0755) < 0 && errno != EEXIST) {
        snprintf(err, errlen, "cannot create data directory %s: %s", o->dir, strerror(errno));
        return NULL;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/LOCK", o->dir);
    int lfd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (lfd < 0) {
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    if (flock(lfd, LOCK_EX | LOCK_NB) < 0) {
        snprintf(err, errlen, "data directory %s is in use by another recorder (%s)", o->dir,
                 strerror(errno));
        close(lfd);
        return NULL;
    }
    store_t *s = xcalloc(1, sizeof *s);
    s->o = *o;
    s->dir = xstrdup(o->dir);
    s->o.dir = s->dir;
    s->lock_fd = lfd;
    s->fd = -1;
    s->next_seq = 1;
    s->buf = store__buffer();
    s->spare = store__buffer();
    pthread_mutex_init(&s->io.mu, NULL);
    pthread_cond_init(&s->io.cv, NULL);
    int trc = pthread_create(&s->io.tid, NULL, store__io_main, &s->io);
    if (trc) {
        /* A store without its I/O thread: never hands it a job. */
        log_warn("pthread_create() failed: %s; the writer writes segments itself", strerror(trc));
        s->no_io_thread = 1;
    }
    s->ix = segidx_builder_new();
    pthread_mutex_init(&s->sl.mu, NULL);
    pthread_cond_init(&s->sl.cv, NULL);
    trc = pthread_create(&s->sl.tid, NULL, store__sealer_main, &s->sl);
    if (trc) {
        log_warn("pthread_create() failed: %s; the writer makes indexes itself", strerror(trc));
        s->no_sealer = 1;
    } else {
        s->ix_spare = segidx_builder_new();
    }
    s->catw = catalog_writer_open(s->dir);
    store__load(s);
    store__budget(s);
    return s;
}

void store_prefetch(store_t *s, uint64_t hash_far, uint64_t hash_near)
{
    segidx_builder_prefetch(s->ix, hash_far, hash_near);
}

int store_append(store_t *s, int64_t ts_ns, const uint8_t *data, uint32_t caplen,
                 uint32_t origlen, const flowkey_t *k, uint64_t hash)
{
    if (s->st.paused) {
        s->st.drop_disk_full++;
        return -ENOSPC;
    }
    uint64_t rec = PCAPIO_REC_HDR + caplen;
    if (s->fd >= 0 && segidx_builder_count(s->ix) > 0 &&
        s->base + s->used + rec > (uint64_t)s->o.seg_size)
        store__seal(s);
    if (s->fd < 0) {
        int rc = store__open_segment(s);
        if (rc < 0) {
            s->st.drop_disk_full++;
            return rc;
        }
    }
    if (s->used + rec > STORE_BUF) {
        int rc = store__flush(s, 0);
        if (rc < 0) {
            s->st.drop_disk_full++;
            return rc;
        }
    }
    uint32_t off = (uint32_t)(s->base + s->used);
    if (!ts_ns && !caplen && !origlen) origlen = 1; /* else zero fill (pcapio_parse_rec) */
    pcapio_rec_header(s->buf + s->used, ts_ns, caplen, origlen);
    memcpy(s->buf + s->used + PCAPIO_REC_HDR, data, caplen);
    s->used += rec;
    segidx_builder_add(s->ix, k, hash, ts_ns, off, origlen);
    if (ts_ns < s->open_min_ts) s->open_min_ts = ts_ns;
    if (ts_ns > s->open_max_ts) s->open_max_ts = ts_ns;
    s->st.packets++;
    s->st.bytes += caplen;
    return 0;
}

void store_tick(store_t *s, int64_t now_ns)
{
    store__sealer_reap(s, 0);
    if (s->st.paused) {
        if (now_ns - s->last_retry_ns >= STORE_RETRY_NS) store__flush(s, 1);
        return;
    }
    if (s->fd >= 0 && segidx_builder_count(s->ix) > 0 && now_ns - s->opened_ns >= s->o.seg_age_ns) {
        store__seal(s);
        return;
    }
    if (now_ns - s->last_flush_ns >= s->o.flush_ns) store__flush(s, 1);
}

int store_flush_seal(store_t *s)
{
    int rc = store__seal(s);
    store__sealer_reap(s, 1);
    return rc;
}

void store_close(store_t *s)
{
    if (!s) return;
    store__seal(s); /* waits for the I/O thread's last job */
    store__sealer_reap(s, 1);
    if (!s->no_sealer) {
        pthread_mutex_lock(&s->sl.mu);
        s->sl.quit = 1;
        pthread_cond_broadcast(&s->sl.cv);
        pthread_mutex_unlock(&s->sl.mu);
        pthread_join(s->sl.tid, NULL);
    }
    pthread_mutex_destroy(&s->sl.mu);
    pthread_cond_destroy(&s->sl.cv);
    segidx_builder_free(s->ix_spare);
    if (!s->no_io_thread) {
        pthread_mutex_lock(&s->io.mu);
        s->io.quit = 1;
        pthread_cond_broadcast(&s->io.cv);
        pthread_mutex_unlock(&s->io.mu);
        pthread_join(s->io.tid, NULL);
    }
    pthread_mutex_destroy(&s->io.mu);
    pthread_cond_destroy(&s->io.cv);
    flock(s->lock_fd, LOCK_UN);
    close(s->lock_fd);
    segidx_builder_free(s->ix);
    free(s->buf);
    free(s->spare);
    catalog_writer_free(s->catw);
    free(s->segs);
    free(s->dir);
    free(s);
}

void store_get_stats(store_t *s, store_stats *out)
{
    *out = s->st;
    out->disk_used = store__used(s);
    out->segments = s->nsegs + (s->fd >= 0) + (uint64_t)store__sealing(s);
    out->oldest_ns = out->newest_ns = 0;
    int64_t lo = INT64_MAX, hi = INT64_MIN;
    for (size_t i = 0; i < s->nsegs; i++) {
        if (!s->segs[i].packets) continue;
        if (s->segs[i].min_ts < lo) lo = s->segs[i].min_ts;
        if (s->segs[i].max_ts > hi) hi = s->segs[i].max_ts;
    }
    if (s->fd >= 0 && segidx_builder_count(s->ix)) {
        if (s->open_min_ts < lo) lo = s->open_min_ts;
        if (s->open_max_ts > hi) hi = s->open_max_ts;
    }
    if (store__sealing(s) && s->sealing_min_ts <= s->sealing_max_ts) {
        if (s->sealing_min_ts < lo) lo = s->sealing_min_ts;
        if (s->sealing_max_ts > hi) hi = s->sealing_max_ts;
    }
    if (lo != INT64_MAX) {
        out->oldest_ns = lo;
        out->newest_ns = hi;
    }
}
