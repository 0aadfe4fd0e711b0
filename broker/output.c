/* output.c - tool outputs: sockets batched with sendmmsg, rotating pcap
 * files, interface injection (see output.h).
 *
 * DESIGN: a socket output keeps a queue of 64 prepared mmsghdrs whose iovecs
 * point at a constant encapsulation header (VXLAN 8 bytes, GRE 4, none for
 * plain UDP and interfaces) and at the caller's frame, so sending a batch
 * copies nothing in user space and costs one system call. Sockets are
 * connected (the route is looked up once, and ICMP errors from the tool come
 * back as ECONNREFUSED) and sends never block: a slow or absent tool loses
 * its own packets, counted, and never holds the others up.
 *
 * Pcap files are named PREFIX-YYYYMMDDTHHMMSS.NNNNNNNNNZ.pcap after the
 * first packet they hold (UTC, nanoseconds, fixed width), kept strictly
 * increasing within a run, so sorting the names sorts the files by time.
 */
#include "output.h"

#include "log.h"
#include "netio.h"
#include "pcapio.h"
#include "timeparse.h"
#include "xmalloc.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define OUT_QLEN 64
#define OUT_RETRY_NS 5000000000LL
#define OUT_LOG_NS 10000000000LL
#define OUT_MAX_DGRAM 65507u
#define OUT_STAMP_LEN 26 /* YYYYMMDDTHHMMSS.NNNNNNNNNZ */

struct output {
    brconf_tool c;           /* output keys only; strings owned */
    int up;
    int64_t next_retry;
    /* sockets */
    int fd;
    uint8_t hdr[8];
    uint32_t hdrlen;
    uint32_t maxlen;         /* largest frame a datagram can carry */
    uint32_t nq;
    struct mmsghdr msgs[OUT_QLEN];
    struct iovec iov[OUT_QLEN][2];
    /* pcap */
    pcapout_t *pc;
    int64_t file_ts, last_name_ns;
    char **files;            /* this prefix's files, oldest first (for max-files) */
    int nfiles, capfiles;
    /* counters and error reporting */
    output_stats st;
    unsigned warned;         /* reasons already logged once */
    int scanned;             /* the directory's existing files are listed */
    uint64_t logged[OUT_ERR__COUNT];
    int last_errno[OUT_ERR__COUNT];
    int64_t last_log;
    uint64_t lost_at_tick, recent_lost; /* for output_recent_losses() */
};

static const char *const output_err_names[OUT_ERR__COUNT] = {
    "down", "refused", "unreachable", "too_big", "no_buffer", "io", "other",
};

const char *output_err_name(int reason)
{
    return reason >= 0 && reason < OUT_ERR__COUNT ? output_err_names[reason] : "?";
}

static char *output__dup(const char *s) { return s ? xstrdup(s) : NULL; }

static int output__classify(int e)
{
    switch (e) {
    case ECONNREFUSED: return OUT_ERR_REFUSED;
    case ENETUNREACH:
    case EHOSTUNREACH:
    case EHOSTDOWN:
    case ENETDOWN:
    case ENXIO:
    case ENODEV: return OUT_ERR_UNREACHABLE;
    case EMSGSIZE: return OUT_ERR_TOO_BIG;
    case ENOBUFS:
    case EAGAIN: return OUT_ERR_NO_BUFFER;
    default: return OUT_ERR_OTHER;
    }
}

/* Count n lost frames; the first loss of each reason is logged at once,
 * later ones in output_tick's summary. */
static void output__lose(output_t *o, int reason, int e, uint64_t n)
{
    o->st.errors[reason] += n;
    o->last_errno[reason] = e;
    if (!(o->warned & (1u << reason))) {
        o->warned |= 1u << reason;
        o->logged[reason] = o->st.errors[reason];
        if (reason == OUT_ERR_DOWN)
            log_warn("tool %s: output is down, dropping its packets (counted as send_errors.down)",
                     o->c.name);
        else
            log_warn("tool %s: send failed: %s (counted as send_errors.%s; more in the periodic "
                     "log)", o->c.name, e ? strerror(e) : output_err_name(reason),
                     output_err_name(reason));
    }
}

static int output__sock_open(output_t *o)
{
    struct sockaddr_storage ss;
    socklen_t sl = 0;
    int fd = -1, e = 0;
    const char *what = "socket()";
    if (o->c.type_id == BROUT_IFACE) {
        unsigned idx = if_nametoindex(o->c.interface);
        if (!idx) {
            e = errno;
            what = "if_nametoindex()";
            goto fail;
        }
        fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
        if (fd < 0) goto fail_errno;
        struct sockaddr_ll ll;
        memset(&ll, 0, sizeof ll);
        ll.sll_family = AF_PACKET;
        ll.sll_ifindex = (int)idx;
        what = "bind()";
        if (bind(fd, (struct sockaddr *)&ll, sizeof ll) < 0) goto fail_errno;
        o->maxlen = PCAPIO_SNAPLEN;
    } else {
        int rc = o->c.type_id == BROUT_GRE ? netio_parse_host(o->c.dest, &ss, &sl)
                                           : netio_parse_addr(o->c.dest, &ss, &sl);
        if (rc < 0) {
            e = -rc;
            goto fail;
        }
        if (o->c.type_id == BROUT_GRE)
            fd = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_GRE);
        else
            fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd < 0) goto fail_errno;
        what = "connect()";
        if (connect(fd, (struct sockaddr *)&ss, sl) < 0) goto fail_errno;
        o->maxlen = OUT_MAX_DGRAM - o->hdrlen;
    }
    int buf = (int)o->c.sndbuf;
    if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &buf, sizeof buf) < 0)
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);
    o->fd = fd;
    return 0;
fail_errno:
    e = errno;
fail:
    log_error("tool %s: %s for %s %s failed: %s; retrying every %d s", o->c.name, what,
              brconfig_type_name(o->c.type_id),
              o->c.type_id == BROUT_IFACE ? o->c.interface : o->c.dest, strerror(e),
              (int)(OUT_RETRY_NS / 1000000000LL));
    if (fd >= 0) close(fd);
    return -1;
}

static int output__mkdirs(const char *dir)
{
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s", dir);
    for (char *s = p + 1; *s; s++) {
        if (*s != '/') continue;
        *s = 0;
        if (mkdir(p, 0755) < 0 && errno != EEXIST) return -errno;
        *s = '/';
    }
    if (mkdir(p, 0755) < 0 && errno != EEXIST) return -errno;
    return 0;
}

static int output__cmpstr(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void output__add_file(output_t *o, const char *name)
{
    if (o->nfiles == o->capfiles) {
        o->capfiles = o->capfiles ? o->capfiles * 2 : 16;
        o->files = xrealloc(o->files, (size_t)o->capfiles * sizeof *o->files);
    }
    o->files[o->nfiles++] = xstrdup(name);
}

/* The files of this prefix already in the directory, oldest first: they
 * count towards max-files too. */
static void output__scan_files(output_t *o)
{
    DIR *d = opendir(o->c.dir);
    if (!d) return;
    size_t pl = strlen(o->c.prefix);
    struct dirent *e;
    while ((e = readdir(d))) {
        /* Exactly PREFIX-YYYYMMDDTHHMMSS.NNNNNNNNNZ.pcap: not another tool's
         * files whose prefix merely starts with ours ("web" vs "web-2"). */
        const char *n = e->d_name;
        if (strlen(n) == pl + 1 + OUT_STAMP_LEN + 5 && !strncmp(n, o->c.prefix, pl) &&
            n[pl] == '-' && isdigit((unsigned char)n[pl + 1]) && n[pl + 9] == 'T' &&
            n[pl + OUT_STAMP_LEN] == 'Z' && !strcmp(n + pl + 1 + OUT_STAMP_LEN, ".pcap"))
            output__add_file(o, n);
    }
    closedir(d);
    if (o->nfiles) qsort(o->files, (size_t)o->nfiles, sizeof *o->files, output__cmpstr);
}

static int output__pcap_open(output_t *o)
{
    int rc = output__mkdirs(o->c.dir);
    if (rc < 0) {
        log_error("tool %s: cannot create directory %s: %s; retrying every %d s", o->c.name,
                  o->c.dir, strerror(-rc), (int)(OUT_RETRY_NS / 1000000000LL));
        return -1;
    }
    if (access(o->c.dir, W_OK) < 0) {
        log_error("tool %s: cannot write into %s: %s; retrying every %d s", o->c.name, o->c.dir,
                  strerror(errno), (int)(OUT_RETRY_NS / 1000000000LL));
        return -1;
    }
    if (!o->scanned) output__scan_files(o);
    o->scanned = 1;
    return 0;
}

static void output__open(output_t *o)
{
    int rc = o->c.type_id == BROUT_PCAP ? output__pcap_open(o) : output__sock_open(o);
    o->up = rc == 0;
    if (!o->up) o->next_retry = timeparse_mono_ns() + OUT_RETRY_NS;
}

output_t *output_new(const brconf_tool *conf)
{
    output_t *o = xcalloc(1, sizeof *o);
    o->c.kind = conf->kind;
    o->c.type_id = conf->type_id;
    o->c.name = xstrdup(conf->name);
    o->c.dest = output__dup(conf->dest);
    o->c.vni = conf->vni;
    o->c.dir = output__dup(conf->dir);
    o->c.prefix = output__dup(conf->prefix);
    o->c.rotate_size = conf->rotate_size;
    o->c.rotate_interval = conf->rotate_interval;
    o->c.max_files = conf->max_files;
    o->c.interface = output__dup(conf->interface);
    o->c.sndbuf = conf->sndbuf;
    o->fd = -1;
    if (o->c.type_id == BROUT_VXLAN) {
        uint32_t vni = (uint32_t)o->c.vni;
        uint8_t h[8] = { 0x08, 0, 0, 0, (uint8_t)(vni >> 16), (uint8_t)(vni >> 8), (uint8_t)vni, 0 };
        memcpy(o->hdr, h, 8);
        o->hdrlen = 8;
    } else if (o->c.type_id == BROUT_GRE) {
        uint8_t h[4] = { 0, 0, 0x65, 0x58 }; /* no flags, version 0, Transparent Ethernet Bridging */
        memcpy(o->hdr, h, 4);
        o->hdrlen = 4;
    }
    for (int i = 0; i < OUT_QLEN; i++) {
        o->iov[i][0].iov_base = o->hdr;
        o->iov[i][0].iov_len = o->hdrlen;
        o->msgs[i].msg_hdr.msg_iov = o->hdrlen ? o->iov[i] : &o->iov[i][1];
        o->msgs[i].msg_hdr.msg_iovlen = o->hdrlen ? 2 : 1;
    }
    output__open(o);
    return o;
}

/* ---- pcap files ------------------------------------------------------------ */

static void output__pcap_close(output_t *o)
{
    if (!o->pc) return;
    int rc = pcapout_close(o->pc);
    o->pc = NULL;
    if (rc < 0) output__lose(o, OUT_ERR_IO, -rc, 0);
}

static void output__retention(output_t *o)
{
    while (o->c.max_files > 0 && o->nfiles > o->c.max_files) {
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/%s", o->c.dir, o->files[0]);
        if (unlink(path) < 0 && errno != ENOENT)
            log_warn("tool %s: cannot delete %s: %s", o->c.name, path, strerror(errno));
        else
            o->st.files_deleted++;
        free(o->files[0]);
        memmove(o->files, o->files + 1, (size_t)(o->nfiles - 1) * sizeof *o->files);
        o->nfiles--;
    }
}

static int output__pcap_new_file(output_t *o, int64_t ts_ns)
{
    char name[256], path[PATH_MAX], err[512];
    int64_t t = ts_ns > o->last_name_ns ? ts_ns : o->last_name_ns + 1;
    for (int tries = 0; tries < 1000; tries++, t++) {
        time_t sec = (time_t)(t / 1000000000LL);
        struct tm tm;
        gmtime_r(&sec, &tm);
        snprintf(name, sizeof name, "%s-%04d%02d%02dT%02d%02d%02d.%09lldZ.pcap", o->c.prefix,
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                 (long long)(t % 1000000000LL));
        snprintf(path, sizeof path, "%s/%s", o->c.dir, name);
        if (access(path, F_OK) < 0) break;
    }
    o->last_name_ns = t;
    o->pc = pcapout_open(path, err, sizeof err);
    if (!o->pc) {
        log_error("tool %s: %s; retrying every %d s", o->c.name, err,
                  (int)(OUT_RETRY_NS / 1000000000LL));
        o->up = 0;
        o->next_retry = timeparse_mono_ns() + OUT_RETRY_NS;
        return -1;
    }
    o->file_ts = ts_ns;
    o->st.files++;
    output__add_file(o, name);
    output__retention(o);
    log_debug("tool %s: writing %s", o->c.name, path);
    return 0;
}

static void output__pcap_push(output_t *o, int64_t ts_ns, const uint8_t *data, uint32_t caplen,
                              uint32_t origlen)
{
    if (o->pc && ((pcapout_size(o->pc) > PCAPIO_FILE_HDR &&
                   pcapout_size(o->pc) + PCAPIO_REC_HDR + caplen > (uint64_t)o->c.rotate_size) ||
                  (o->c.rotate_interval && ts_ns - o->file_ts >= o->c.rotate_interval)))
        output__pcap_close(o);
    if (!o->pc && output__pcap_new_file(o, ts_ns) < 0) {
        output__lose(o, OUT_ERR_DOWN, 0, 1);
        return;
    }
    int rc = pcapout_write(o->pc, ts_ns, caplen, origlen, data);
    if (rc < 0) {
        output__lose(o, OUT_ERR_IO, -rc, 1);
        /* A write error sticks to the file: start another one next time. */
        output__pcap_close(o);
        return;
    }
    o->st.sent++;
    o->st.bytes += caplen;
}

/* ---- the common interface ------------------------------------------------ */

void output_push(output_t *o, int64_t ts_ns, const uint8_t *data, uint32_t caplen,
                 uint32_t origlen)
{
    if (!o->up) {
        output__lose(o, OUT_ERR_DOWN, 0, 1);
        return;
    }
    if (o->c.type_id == BROUT_PCAP) {
        output__pcap_push(o, ts_ns, data, caplen, origlen);
        return;
    }
    if (caplen > o->maxlen) {
        output__lose(o, OUT_ERR_TOO_BIG, EMSGSIZE, 1);
        return;
    }
    if (o->nq == OUT_QLEN) output_flush(o);
    struct iovec *v = &o->iov[o->nq][1];
    v->iov_base = (void *)data;
    v->iov_len = caplen;
    o->nq++;
}

void output_flush(output_t *o)
{
    uint32_t i = 0;
    while (i < o->nq) {
        int r = sendmmsg(o->fd, o->msgs + i, o->nq - i, MSG_DONTWAIT);
        if (r > 0) {
            for (uint32_t j = i; j < i + (uint32_t)r; j++) o->st.bytes += o->iov[j][1].iov_len;
            o->st.sent += (uint64_t)r;
            i += (uint32_t)r;
            continue;
        }
        if (r < 0 && errno == EINTR) continue;
        int e = r < 0 ? errno : EIO;
        output__lose(o, output__classify(e), e, 1); /* the first message failed: skip it */
        i++;
    }
    o->nq = 0;
}

void output_tick(output_t *o, int64_t now_ns)
{
    uint64_t lost = 0;
    for (int r = 0; r < OUT_ERR__COUNT; r++) lost += o->st.errors[r];
    o->recent_lost = lost - o->lost_at_tick;
    o->lost_at_tick = lost;
    if (!o->up && now_ns >= o->next_retry) {
        output__open(o);
        if (o->up) log_info("tool %s: output is up again", o->c.name);
    }
    if (o->pc) {
        int rc = pcapout_flush(o->pc);
        if (rc < 0) {
            output__lose(o, OUT_ERR_IO, -rc, 0);
            output__pcap_close(o);
        }
    }
    if (now_ns - o->last_log < OUT_LOG_NS) return;
    for (int r = 0; r < OUT_ERR__COUNT; r++) {
        if (o->st.errors[r] > o->logged[r]) {
            log_warn("tool %s: %llu more packets lost (send_errors.%s, %llu in all)%s%s",
                     o->c.name, (unsigned long long)(o->st.errors[r] - o->logged[r]),
                     output_err_name(r), (unsigned long long)o->st.errors[r],
                     o->last_errno[r] ? ": " : "", o->last_errno[r] ? strerror(o->last_errno[r]) : "");
            o->logged[r] = o->st.errors[r];
            o->last_log = now_ns;
        }
    }
}

const brconf_tool *output_conf(const output_t *o) { return &o->c; }

void output_get_stats(const output_t *o, output_stats *st) { *st = o->st; }

int output_is_up(const output_t *o) { return o->up; }

uint64_t output_recent_losses(const output_t *o) { return o->recent_lost; }

void output_free(output_t *o)
{
    if (!o) return;
    if (o->nq) output_flush(o);
    output__pcap_close(o);
    if (o->fd >= 0) close(o->fd);
    for (int i = 0; i < o->nfiles; i++) free(o->files[i]);
    free(o->files);
    free(o->c.name);
    free(o->c.dest);
    free(o->c.dir);
    free(o->c.prefix);
    free(o->c.interface);
    free(o);
}
