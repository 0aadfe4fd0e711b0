/* test_recout.c - the output thread writes every flow record handed to it,
 * in the order handed over, as flowrec_json's lines - also when the producer
 * outruns it by far more than its queue holds, so that it must wait, never
 * drop - and flushes its file when idle, and at least once a second while
 * records keep coming, so that a reader of `--flows-json -` sees records
 * without waiting for the end. */
#include "recout.h"

#include "test.h"

#include <fcntl.h>
#include <time.h>
#include <unistd.h>

static char fpath[] = "/tmp/test_recout_flows.XXXXXX";

typedef struct text {
    char *p;
    size_t n, cap;
} text;

static void add(text *t, const char *s, int n)
{
    ASSERT_TRUE(n > 0);
    if (n <= 0) return;
    if (t->n + (size_t)n + 1 > t->cap) {
        t->cap = (t->n + (size_t)n + 1) * 2;
        t->p = realloc(t->p, t->cap);
    }
    memcpy(t->p + t->n, s, (size_t)n);
    t->n += (size_t)n;
    t->p[t->n++] = '\n';
}

static text slurp(const char *path)
{
    text t = { 0 };
    int fd = open(path, O_RDONLY);
    ASSERT_TRUE(fd >= 0);
    char buf[65536];
    ssize_t n;
    while (fd >= 0 && (n = read(fd, buf, sizeof buf)) > 0) {
        t.p = realloc(t.p, t.n + (size_t)n + 1);
        memcpy(t.p + t.n, buf, (size_t)n);
        t.n += (size_t)n;
    }
    if (fd >= 0) close(fd);
    return t;
}

static void flow(flowrec *r, uint64_t i)
{
    memset(r, 0, sizeof *r);
    r->flow_id = 1000000 + i;
    r->proto = 6;
    r->first_ns = 1700000000000000000LL + (int64_t)i;
    r->last_ns = r->first_ns + 5;
    r->c2s.packets = i % 7;
    r->final = 1;
}

/* The output thread on a fresh file (*ff, for the caller to close). */
static recout_t *start(FILE **ff)
{
    *ff = fopen(fpath, "w");
    ASSERT_TRUE(*ff != NULL);
    recout_t *o = recout_start(*ff, "node:1");
    ASSERT_TRUE(o != NULL);
    return o;
}

static size_t file_lines(void)
{
    text t = slurp(fpath);
    size_t lines = 0;
    for (size_t i = 0; i < t.n; i++) lines += t.p[i] == '\n';
    free(t.p);
    return lines;
}

/* 20 000 flow records handed over as fast as the test can: 20 times the
 * queue. */
static void test_all_in_order(void)
{
    FILE *ff;
    recout_t *o = start(&ff);
    text want = { 0 };
    static char line[4096];
    static flowrec fr;
    for (uint64_t i = 0; i < 20000; i++) {
        flow(&fr, i);
        recout_flow(o, &fr);
        add(&want, line, flowrec_json(&fr, "node:1", line, sizeof line));
    }
    recout_stop(o);
    fclose(ff);
    text got = slurp(fpath);
    ASSERT_EQ(got.n, want.n);
    ASSERT_TRUE(got.n == want.n && !memcmp(got.p, want.p, want.n));
    free(got.p), free(want.p);
}

/* Three records and then nothing: within a second they are in the file
 * (stdio alone would hold them until 4 KiB gathered or the end). */
static void test_flushed_when_idle(void)
{
    FILE *ff;
    recout_t *o = start(&ff);
    static flowrec fr;
    for (uint64_t i = 0; i < 3; i++) {
        flow(&fr, i);
        recout_flow(o, &fr);
    }
    size_t lines = 0;
    for (int tries = 0; tries < 100 && lines < 3; tries++) {
        struct timespec ts = { 0, 10000000L };
        nanosleep(&ts, NULL);
        lines = file_lines();
    }
    ASSERT_EQ(lines, 3);
    recout_stop(o);
    fclose(ff);
}

/* A record every 10 ms for 3 s: the thread is never idle for 50 ms, and
 * 300 records do not fill its buffer, yet they reach the file while they
 * keep coming (once a second), not only at the end. */
static void test_flushed_while_busy(void)
{
    FILE *ff;
    recout_t *o = start(&ff);
    static flowrec fr;
    size_t seen = 0;
    for (uint64_t i = 0; i < 300; i++) {
        flow(&fr, i);
        recout_flow(o, &fr);
        struct timespec ts = { 0, 10000000L };
        nanosleep(&ts, NULL);
        if (i % 20 == 19) seen = file_lines();
    }
    ASSERT_TRUE(seen > 0); /* some were in the file before the last was handed over */
    recout_stop(o);
    fclose(ff);
    ASSERT_EQ(file_lines(), 300);
}

int main(void)
{
    int fd = mkstemp(fpath);
    ASSERT_TRUE(fd >= 0);
    close(fd);
    RUN(test_all_in_order);
    RUN(test_flushed_when_idle);
    RUN(test_flushed_while_busy);
    recout_stop(NULL);
    unlink(fpath);
    TEST_EXIT();
}
