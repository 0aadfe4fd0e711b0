/* store.c - pcap segments, their indexes, the disk budget and crash repair
 * (see store.h).
 *
 * DESIGN: packets are copied into a 4 MiB buffer and written with one
 * write() when it fills or at the flush interval, so the writer does few,
 * large syscalls and a reader sees new packets within a second. The index
 * builder records each packet's file offset at append time, which is exactly
 * where the record will land because the file is only ever appended to.
 *
 * A failed write (ENOSPC, EDQUOT, EIO) is cut back to the last whole write
 * with ftruncate, so the file never holds a torn record; the buffer is kept.
 * The store then evicts old segments if it may and retries; if nothing can
 * be freed it pauses: new packets are refused and counted, and every tick
 * retries the buffered write until space appears. Nothing already accepted is
 * lost, and the file is never corrupted. After every change of the list of
 * sealed segments the catalog (catalog.h) is rewritten for searches; each
 * segment's host and port summary is appended to it once, when the segment
 * is sealed (or found at start-up without one).
 */
#include "store.h"

#include "catalog.h"
#include "log.h"
#include "pcapio.h"
#include "segindex.h"
#include "timeparse.h"
#include "xmalloc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#define STORE_BUF (4u << 20)
#define STORE_RETRY_NS 1000000000LL

typedef struct seg_info {
    uint64_t seq;
    uint64_t bytes; /* pcap + index */
    int64_t min_ts, max_ts;
    uint64_t packets;
} seg_info;

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
    uint64_t seq;
    uint64_t file_size;  /* bytes safely in the file */
    uint32_t committed;  /* packets whose bytes are in the file */
    int64_t opened_ns, last_flush_ns, last_retry_ns;
    int64_t open_min_ts, open_max_ts;
    uint8_t *buf;
    size_t used;
    segidx_builder_t *ix;
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

long store_list_segments(const char *dir, uint64_t **seqs)
{
    DIR *d = opendir(dir);
    *seqs = NULL;
    if (!d) return -errno;
    size_t n = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        unsigned long long seq;
        char tail[8];
        if (sscanf(de->d_name, "seg-%12llu.%7s", &seq, tail) == 2 && !strcmp(tail, "pcap")) {
            xgrow((void **)seqs, &cap, n + 1, sizeof **seqs);
            (*seqs)[n++] = seq;
        }
    }
    closedir(d);
    if (n) qsort(*seqs, n, sizeof **seqs, store__cmp_u64);
    return (long)n;
}

static uint64_t store__file_size(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 ? (uint64_t)sb.st_size : 0;
}

static void store__add_sealed(store_t *s, uint64_t seq, const segidx_t *ix, uint64_t bytes)
{
    xgrow((void **)&s->segs, &s->cap_segs, s->nsegs + 1, sizeof *s->segs);
    seg_info *g = &s->segs[s->nsegs++];
    g->seq = seq;
    g->bytes = bytes;
    g->min_ts = ix->hdr->min_ts;
    g->max_ts = ix->hdr->max_ts;
    g->packets = ix->hdr->npkts;
    /* Its summary for the catalog, unless the catalog has it already. */
    if (!catalog_writer_known(s->catw, seq)) {
        catalog_entry e;
        catalog_summarize(ix, seq, &e);
        int rc = catalog_writer_add(s->catw, &e);
        if (rc < 0)
            log_warn("cannot append segment %" PRIu64 "'s summary to %s/catalog.sum: %s (searches "
                     "open its index)", seq, s->dir, strerror(-rc));
        free((void *)e.bloom);
    }
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
    segidx_t *ix = segidx_builder_finish(s->ix, valid);
    int rc = segidx_write(ix, idx);
    if (rc < 0) log_warn("cannot write index %s: %s (searches will scan it)", idx, strerror(-rc));
    log_info("recovered segment %s: %" PRIu64 " packets re-indexed", pcap, ix->hdr->npkts);
    s->st.recovered_segments++;
    store__add_sealed(s, seq, ix, valid + ix->size);
    segidx_free(ix);
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
            store__add_sealed(s, seqs[i], ix, psize + ix->size);
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

static uint64_t store__used(store_t *s)
{
    uint64_t u = s->fd >= 0 ? s->file_size : 0;
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

/* After a write that stopped after done bytes, keep the whole records among
 * them, cut the file after the last one, and move the rest to the front of
 * the buffer, so a disk that frees a little space makes a little progress. */
static void store__keep_whole(store_t *s, size_t done)
{
    size_t pos = 0;
    uint32_t pkts = 0;
    if (s->file_size == 0) {
        if (done < PCAPIO_FILE_HDR) goto cut;
        pos = PCAPIO_FILE_HDR;
    }
    while (pos + PCAPIO_REC_HDR <= done) {
        pcapio_rec_hdr h;
        memcpy(&h, s->buf + pos, sizeof h);
        if (pos + PCAPIO_REC_HDR + h.caplen > done) break;
        pos += PCAPIO_REC_HDR + h.caplen;
        pkts++;
    }
cut:
    if (ftruncate(s->fd, (off_t)(s->file_size + pos)) < 0 ||
        lseek(s->fd, (off_t)(s->file_size + pos), SEEK_SET) < 0)
        log_error("cannot cut segment %" PRIu64 " back after a failed write: %s", s->seq,
                  strerror(errno));
    memmove(s->buf, s->buf + pos, s->used - pos);
    s->used -= pos;
    s->file_size += pos;
    s->committed += pkts;
}

/* Write the buffer. On failure keep what was whole and cut the rest. */
static int store__write_buf(store_t *s)
{
    size_t done = 0;
    while (done < s->used) {
        ssize_t n = write(s->fd, s->buf + done, s->used - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            int e = n < 0 ? errno : ENOSPC;
            store__keep_whole(s, done);
            return -e;
        }
        done += (size_t)n;
    }
    s->file_size += s->used;
    s->used = 0;
    s->committed = segidx_builder_count(s->ix);
    return 0;
}

static int store__flush(store_t *s)
{
    if (s->fd < 0 || !s->used) return 0;
    s->last_flush_ns = timeparse_mono_ns();
    int rc = store__write_buf(s);
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
        rc = store__write_buf(s);
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
    segidx_builder_reset(s->ix, s->seq);
    pcapio_file_header(s->buf);
    s->used = PCAPIO_FILE_HDR;
    s->file_size = 0;
    s->committed = 0;
    s->opened_ns = timeparse_mono_ns();
    s->open_min_ts = INT64_MAX;
    s->open_max_ts = INT64_MIN;
    return 0;
}

static int store__seal(store_t *s)
{
    if (s->fd < 0) return 0;
    int rc = store__flush(s);
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
    segidx_t *ix = segidx_builder_finish(s->ix, s->file_size);
    int wrc = segidx_write(ix, idx);
    if (wrc < 0)
        log_warn("cannot write index %s: %s; it will be rebuilt at start-up and searches scan "
                 "the segment meanwhile",
                 idx, strerror(-wrc));
    store__add_sealed(s, s->seq, ix, s->file_size + (wrc < 0 ? 0 : ix->size));
    s->st.segments_sealed++;
    log_debug("sealed segment %" PRIu64 ": %" PRIu64 " packets, %" PRIu64 " bytes", s->seq,
              ix->hdr->npkts, s->file_size);
    segidx_free(ix);
    store__budget(s);
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
    s->buf = xmalloc(STORE_BUF);
    s->ix = segidx_builder_new();
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
        s->file_size + s->used + rec > (uint64_t)s->o.seg_size)
        store__seal(s);
    if (s->fd < 0) {
        int rc = store__open_segment(s);
        if (rc < 0) {
            s->st.drop_disk_full++;
            return rc;
        }
    }
    if (s->used + rec > STORE_BUF) {
        int rc = store__flush(s);
        if (rc < 0) {
            s->st.drop_disk_full++;
            return rc;
        }
    }
    uint32_t off = (uint32_t)(s->file_size + s->used);
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
    if (s->st.paused) {
        if (now_ns - s->last_retry_ns >= STORE_RETRY_NS) store__flush(s);
        return;
    }
    if (s->fd >= 0 && segidx_builder_count(s->ix) > 0 && now_ns - s->opened_ns >= s->o.seg_age_ns) {
        store__seal(s);
        return;
    }
    if (s->used && now_ns - s->last_flush_ns >= s->o.flush_ns) store__flush(s);
}

int store_flush_seal(store_t *s) { return store__seal(s); }

void store_close(store_t *s)
{
    if (!s) return;
    store__seal(s);
    flock(s->lock_fd, LOCK_UN);
    close(s->lock_fd);
    segidx_builder_free(s->ix);
    free(s->buf);
    catalog_writer_free(s->catw);
    free(s->segs);
    free(s->dir);
    free(s);
}

void store_get_stats(store_t *s, store_stats *out)
{
    *out = s->st;
    out->disk_used = store__used(s);
    out->segments = s->nsegs + (s->fd >= 0);
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
    if (lo != INT64_MAX) {
        out->oldest_ns = lo;
        out->newest_ns = hi;
    }
}
