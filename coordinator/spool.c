/* spool.c - on-disk queue of COPY batches (see spool.h). */
#include "spool.h"

#include "log.h"
#include "xmalloc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct spool_file {
    uint64_t seq, records, bytes;
} spool_file;

struct spool {
    pthread_mutex_t mu; /* writers spill from two threads; recursive: peek quarantines */
    char *scratch;       /* a batch encoded, or a file read */
    size_t scratch_cap, scratch_len;
    char *dir;
    int64_t max_bytes;
    spool_file *files; /* oldest first */
    size_t n, cap;
    uint64_t next_seq, records, bytes;
};

static void spool__quarantine(spool_t *s);

/* The totals change under mu but are read without it (spool_records(),
 * spool_bytes(): the writers' figures), so both sides are atomic. */
static void spool__add(spool_t *s, int64_t records, int64_t bytes)
{
    __atomic_add_fetch(&s->records, (uint64_t)records, __ATOMIC_RELAXED);
    __atomic_add_fetch(&s->bytes, (uint64_t)bytes, __ATOMIC_RELAXED);
}

static int spool__cmp(const void *a, const void *b)
{
    const spool_file *x = a, *y = b;
    return (x->seq > y->seq) - (x->seq < y->seq);
}

static void spool__path(const spool_t *s, const spool_file *f, char *buf, size_t len)
{
    snprintf(buf, len, "%s/%016" PRIu64 "-%" PRIu64 ".copy", s->dir, f->seq, f->records);
}

spool_t *spool_open(const char *dir, int64_t max_bytes, char *err, size_t errlen)
{
    if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
        snprintf(err, errlen, "cannot create spool %s: %s", dir, strerror(errno));
        return NULL;
    }
    DIR *d = opendir(dir);
    if (!d) {
        snprintf(err, errlen, "cannot read spool %s: %s", dir, strerror(errno));
        return NULL;
    }
    spool_t *s = xcalloc(1, sizeof *s);
    s->dir = xstrdup(dir);
    s->max_bytes = max_bytes;
    pthread_mutexattr_t ma;
    pthread_mutexattr_init(&ma);
    pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_RECURSIVE);
    pthread_mutex_init(&s->mu, &ma);
    pthread_mutexattr_destroy(&ma);
    struct dirent *de;
    while ((de = readdir(d))) {
        unsigned long long seq, recs;
        char tail[8];
        if (sscanf(de->d_name, "%16llu-%llu.%7s", &seq, &recs, tail) != 3 || strcmp(tail, "copy"))
            continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        struct stat st;
        if (stat(path, &st) < 0) continue;
        xgrow((void **)&s->files, &s->cap, s->n + 1, sizeof *s->files);
        s->files[s->n++] = (spool_file){ seq, recs, (uint64_t)st.st_size };
        s->records += recs;
        s->bytes += (uint64_t)st.st_size;
        if (seq >= s->next_seq) s->next_seq = seq + 1;
    }
    closedir(d);
    if (s->n) {
        qsort(s->files, s->n, sizeof *s->files, spool__cmp);
        log_info("spool %s holds %" PRIu64 " records from an earlier run: writing them first", dir,
                 s->records);
    }
    return s;
}

void spool_close(spool_t *s)
{
    if (!s) return;
    free(s->files);
    free(s->dir);
    free(s->scratch);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

static int spool__append(spool_t *s, const batch_t *b)
{
    if (!batch_records(b)) return 0;
    batch_encode(b, &s->scratch, &s->scratch_cap, &s->scratch_len);
    const char *data = s->scratch;
    size_t len = s->scratch_len;
    if (s->max_bytes > 0 && s->bytes + len > (uint64_t)s->max_bytes) {
        log_error("spool full (%" PRIu64 " bytes): %" PRIu64 " records dropped", s->bytes, batch_records(b));
        return -1;
    }
    spool_file f = { s->next_seq++, batch_flow_records(b), len }; /* records_spooled: flow records */
    char path[4096], tmp[4200];
    spool__path(s, &f, path, sizeof path);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    size_t done = 0;
    while (fd >= 0 && done < len) {
        ssize_t w = write(fd, data + done, len - done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) break;
        done += (size_t)w;
    }
    /* Durable before it counts as kept: the batch leaves memory after this. */
    if (fd < 0 || done < len || fdatasync(fd) < 0 || close(fd) < 0 || rename(tmp, path) < 0) {
        log_error("cannot spool %" PRIu64 " records to %s: %s", batch_records(b), path, strerror(errno));
        if (fd >= 0) close(fd);
        unlink(tmp);
        return -1;
    }
    xgrow((void **)&s->files, &s->cap, s->n + 1, sizeof *s->files);
    s->files[s->n++] = f;
    spool__add(s, (int64_t)f.records, (int64_t)f.bytes);
    return 0;
}

static int spool__peek(spool_t *s, batch_t *out)
{
    while (s->n) {
        char path[4096];
        spool__path(s, &s->files[0], path, sizeof path);
        FILE *f = fopen(path, "rb");
        if (!f) {
            log_error("cannot read spool file %s: %s", path, strerror(errno));
            return -1;
        }
        size_t need = (size_t)s->files[0].bytes;
        if (s->scratch_cap < need + 1) {
            s->scratch_cap = need + 1;
            s->scratch = xrealloc(s->scratch, s->scratch_cap);
        }
        s->scratch_len = fread(s->scratch, 1, need, f);
        fclose(f);
        if (s->scratch_len != need) {
            log_error("spool file %s: short read", path);
            return -1;
        }
        if (batch_decode(out, s->scratch, s->scratch_len) == 0) return 1;
        /* Not a batch (damaged, or written by an older version): set it aside. */
        log_error("spool file %s is not a batch this version reads", path);
        spool__quarantine(s);
    }
    batch_clear(out);
    return 0;
}

static void spool__pop(spool_t *s)
{
    if (!s->n) return;
    char path[4096];
    spool__path(s, &s->files[0], path, sizeof path);
    unlink(path);
    spool__add(s, -(int64_t)s->files[0].records, -(int64_t)s->files[0].bytes);
    memmove(s->files, s->files + 1, (s->n - 1) * sizeof *s->files);
    s->n--;
}

static void spool__quarantine(spool_t *s)
{
    if (!s->n) return;
    char path[4096], bad[4200];
    spool__path(s, &s->files[0], path, sizeof path);
    snprintf(bad, sizeof bad, "%s.bad", path);
    if (rename(path, bad) < 0) unlink(path);
    log_error("%" PRIu64 " records of %s set aside as %s for an operator",
              s->files[0].records, path, bad);
    spool__add(s, -(int64_t)s->files[0].records, -(int64_t)s->files[0].bytes);
    memmove(s->files, s->files + 1, (s->n - 1) * sizeof *s->files);
    s->n--;
}

int spool_append(spool_t *s, const batch_t *b)
{
    pthread_mutex_lock(&s->mu);
    int rc = spool__append(s, b);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int spool_peek(spool_t *s, batch_t *out)
{
    pthread_mutex_lock(&s->mu);
    int rc = spool__peek(s, out);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

void spool_pop(spool_t *s)
{
    pthread_mutex_lock(&s->mu);
    spool__pop(s);
    pthread_mutex_unlock(&s->mu);
}

void spool_quarantine(spool_t *s)
{
    pthread_mutex_lock(&s->mu);
    spool__quarantine(s);
    pthread_mutex_unlock(&s->mu);
}

uint64_t spool_records(const spool_t *s) { return __atomic_load_n(&s->records, __ATOMIC_RELAXED); }
uint64_t spool_bytes(const spool_t *s) { return __atomic_load_n(&s->bytes, __ATOMIC_RELAXED); }
