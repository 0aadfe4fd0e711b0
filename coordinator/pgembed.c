/* pgembed.c - a private PostgreSQL for the coordinator (see pgembed.h).
 * Runs initdb and pg_ctl (start) as child processes; stops the server with a
 * signal to its postmaster, which needs no program (the seccomp filter).
 *
 * DESIGN: PostgreSQL refuses to run as root, so when we are root the server
 * runs as user `postgres`, and that user must be able to reach its data and
 * socket directories. Whether it can is asked, not guessed from mode bits: a
 * child becomes `postgres` and tries (pgembed__reachable). If it can reach
 * DIR, the cluster lives in DIR/pgdata with its socket in DIR/pgrun. If not
 * (DIR under root's 0700 home, say), the cluster lives in a directory of its
 * own, PGEMBED_ROOT/<name>-<hash of DIR's real path>/{pgdata,pgrun}, owned by
 * `postgres`, and DIR/pgdata and DIR/pgrun are symbolic links to it. On later
 * starts an existing DIR/pgdata decides: a directory is used in place, a link
 * is followed. The server's output goes to DIR/postgresql.log whatever the
 * layout: every child opens it as root before it becomes `postgres`, and
 * pg_ctl runs without -l so the server writes to that inherited descriptor.
 * Each child also changes to "/" first, so a working directory the server's
 * user cannot enter never matters.
 */
#include "pgembed.h"

#include "hash.h"
#include "log.h"
#include "xmalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PGEMBED_ROOT_DEFAULT "/var/lib/mscope/pgembed"

/* Exit codes of a child that failed before exec. */
enum { PGEMBED_EXIT_LOG = 125, PGEMBED_EXIT_USER = 126, PGEMBED_EXIT_EXEC = 127 };

struct pgembed {
    char bindir[256];
    char pgdata[4096], sockdir[4096], logfile[4096];
    uid_t uid;
    gid_t gid;
    int as_other; /* run the server as another user (we are root) */
};

static int pgembed__find_bindir(char *out, size_t len)
{
    static const char *versions[] = { "17", "16", "15", "14", "13", NULL };
    for (int i = 0; versions[i]; i++) {
        char path[256];
        snprintf(path, sizeof path, "/usr/lib/postgresql/%s/bin/initdb", versions[i]);
        if (access(path, X_OK) == 0) {
            snprintf(out, len, "/usr/lib/postgresql/%s/bin", versions[i]);
            return 0;
        }
    }
    return -1;
}

/* In a child: become the server's user (if we are root) and leave a working
 * directory it may not be able to enter. Returns 0, or -1 with errno set. */
static int pgembed__become(const pgembed_t *pg)
{
    if (pg->as_other && (setgroups(0, NULL) < 0 || setgid(pg->gid) < 0 || setuid(pg->uid) < 0))
        return -1;
    return chdir("/");
}

/* Wait for a child; returns its exit status, or -1 if it was killed. */
static int pgembed__wait(pid_t pid)
{
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Run argv as the server's user with stdout and stderr appended to logpath
 * (opened before the switch of user, so it need not be reachable by it).
 * Returns the exit status (PGEMBED_EXIT_* if it failed before exec), or -1
 * if it could not be run or was killed. */
static int pgembed__run(const pgembed_t *pg, char *const argv[], const char *logpath)
{
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        int fd = open(logpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
        if (fd < 0) _exit(PGEMBED_EXIT_LOG);
        if (dup2(fd, 1) < 0 || dup2(fd, 2) < 0) _exit(PGEMBED_EXIT_LOG);
        if (pgembed__become(pg) < 0) _exit(PGEMBED_EXIT_USER);
        execv(argv[0], argv);
        _exit(PGEMBED_EXIT_EXEC);
    }
    return pgembed__wait(pid);
}

/* Can the server's user search (enter) path? Asked of the kernel by a child
 * that becomes that user. Returns 0, or -errno of its access() (-EIO if the
 * child could not become the user). */
static int pgembed__reachable(const pgembed_t *pg, const char *path)
{
    if (!pg->as_other) return 0;
    pid_t pid = fork();
    if (pid < 0) return -errno;
    if (pid == 0) {
        if (pgembed__become(pg) < 0) _exit(255);
        _exit(access(path, X_OK) == 0 ? 0 : (errno > 0 && errno < 255 ? errno : EACCES));
    }
    int rc = pgembed__wait(pid);
    return rc == 0 ? 0 : rc > 0 && rc < 255 ? -rc : -EIO;
}

static int pgembed__mkdir_owned(const pgembed_t *pg, const char *path, mode_t mode)
{
    if (mkdir(path, mode) < 0 && errno != EEXIST) return -1;
    if (pg->as_other && chown(path, pg->uid, pg->gid) < 0) return -1;
    return chmod(path, mode);
}

/* mkdir -p, each new directory 0755 (ours). Returns 0 or -1 with errno. */
static int pgembed__mkdirs(const char *path)
{
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s", path);
    for (char *s = p + 1;; s++) {
        if (*s != '/' && *s) continue;
        char c = *s;
        *s = 0;
        if (mkdir(p, 0755) < 0 && errno != EEXIST) return -1;
        if (!c) return 0;
        *s = c;
    }
}

/* The directory of path (path has a '/' past its first character). */
static void pgembed__dirname(const char *path, char *out, size_t len)
{
    snprintf(out, len, "%s", path);
    char *slash = strrchr(out, '/');
    if (slash && slash != out) *slash = 0;
}

/* The place for the server's files when its user cannot reach DIR:
 * PGEMBED_ROOT/<DIR's name>-<hash of DIR>, created 0700 for that user, with
 * DIR/pgdata and DIR/pgrun linked to it. Returns 0 or -1 with err set. */
static int pgembed__private(pgembed_t *pg, const char *dir, int why, char *err, size_t errlen)
{
    const char *root = getenv("MSCOPE_PGEMBED_ROOT");
    if (!root || !*root) root = PGEMBED_ROOT_DEFAULT;
    const char *name = strrchr(dir, '/');
    name = name && name[1] ? name + 1 : "root";
    char base[PATH_MAX], link[PATH_MAX];
    snprintf(base, sizeof base, "%.2000s/%.32s-%012" PRIx64, root, name,
             hash_bytes(dir, strlen(dir), 0) >> 16);
    if (pgembed__mkdirs(root) < 0) {
        snprintf(err, errlen, "mkdir(%s) failed: %s", root, strerror(errno));
        return -1;
    }
    /* A cluster already there belonged to an earlier DIR at this path that
     * was since removed (DIR/pgdata is gone): keep it, but not as ours. */
    char version[PATH_MAX + 16];
    snprintf(version, sizeof version, "%.4000s/pgdata/PG_VERSION", base);
    if (access(version, F_OK) == 0) {
        char aside[PATH_MAX];
        snprintf(aside, sizeof aside, "%.3000s.orphan-%lld", base, (long long)time(NULL));
        if (rename(base, aside) < 0) {
            snprintf(err, errlen, "rename(%s, %s) failed: %s", base, aside, strerror(errno));
            return -1;
        }
        log_warn("%s held a cluster of an earlier %s that no longer links to it: moved to %s",
                 base, dir, aside);
    }
    if (pgembed__mkdir_owned(pg, base, 0700) < 0) {
        snprintf(err, errlen, "mkdir(%s) failed: %s", base, strerror(errno));
        return -1;
    }
    snprintf(pg->pgdata, sizeof pg->pgdata, "%.4000s/pgdata", base);
    int rc = pgembed__reachable(pg, base);
    if (rc < 0) {
        snprintf(err, errlen, "user postgres cannot reach %s either (%s): set MSCOPE_PGEMBED_ROOT "
                 "to a directory it can reach", base, strerror(-rc));
        return -1;
    }
    snprintf(pg->sockdir, sizeof pg->sockdir, "%.4000s/pgrun", base);
    snprintf(link, sizeof link, "%s/pgdata", dir);
    if (symlink(pg->pgdata, link) < 0) {
        snprintf(err, errlen, "symlink(%s, %s) failed: %s", pg->pgdata, link, strerror(errno));
        return -1;
    }
    /* The socket's link is a convenience for psql -h DIR/pgrun: best effort
     * (an empty DIR/pgrun left by an earlier failed start goes first). */
    snprintf(link, sizeof link, "%s/pgrun", dir);
    rmdir(link);
    if (symlink(pg->sockdir, link) < 0 && errno != EEXIST)
        log_warn("symlink(%s, %s) failed: %s", pg->sockdir, link, strerror(errno));
    log_info("user postgres cannot reach %s (%s): the embedded PostgreSQL keeps its files in %s "
             "(%s/pgdata links there)", dir, strerror(why), base, dir);
    return 0;
}

/* Decide where the cluster and its socket are (see DESIGN). Returns 0 with
 * pg->pgdata and pg->sockdir set, or -1 with err set. */
static int pgembed__layout(pgembed_t *pg, const char *dir, char *err, size_t errlen)
{
    char link[PATH_MAX], target[PATH_MAX], base[PATH_MAX];
    snprintf(link, sizeof link, "%s/pgdata", dir);
    struct stat st;
    if (lstat(link, &st) == 0 && S_ISLNK(st.st_mode)) {
        ssize_t n = readlink(link, target, sizeof target - 1);
        if (n <= 0) {
            snprintf(err, errlen, "readlink(%s) failed: %s", link, strerror(errno));
            return -1;
        }
        target[n] = 0;
        if (target[0] == '/')
            snprintf(pg->pgdata, sizeof pg->pgdata, "%s", target);
        else
            snprintf(pg->pgdata, sizeof pg->pgdata, "%.2000s/%.2000s", dir, target);
        pgembed__dirname(pg->pgdata, base, sizeof base);
        snprintf(pg->sockdir, sizeof pg->sockdir, "%.3000s/pgrun", base);
        /* Recreated if it was removed: initdb then starts a new cluster. */
        if (access(base, F_OK) != 0) {
            char parent[PATH_MAX];
            pgembed__dirname(base, parent, sizeof parent);
            if (pgembed__mkdirs(parent) < 0 || pgembed__mkdir_owned(pg, base, 0700) < 0) {
                snprintf(err, errlen, "mkdir(%s) failed: %s", base, strerror(errno));
                return -1;
            }
        }
        return 0;
    }
    if (lstat(link, &st) == 0 && !S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "%s is neither a directory nor a link to one", link);
        return -1;
    }
    int exists = lstat(link, &st) == 0;
    int rc = pgembed__reachable(pg, dir);
    if (rc == 0) {
        snprintf(pg->pgdata, sizeof pg->pgdata, "%s", link);
        snprintf(pg->sockdir, sizeof pg->sockdir, "%.3000s/pgrun", dir);
        return 0;
    }
    if (exists) {
        /* An empty DIR/pgdata is what a start that failed this way left. */
        if (rmdir(link) < 0) {
            snprintf(err, errlen, "user postgres cannot reach the cluster in %s (%s): move it "
                     "where it can, and link %s to it", link, strerror(-rc), link);
            return -1;
        }
    }
    return pgembed__private(pg, dir, -rc, err, errlen);
}

/* The line of the log, from offset on, that says why a step failed: the
 * first that reads like an error (PostgreSQL logs the cause first, then its
 * consequences: "configuration file ... contains errors", "could not start
 * server"), else the last non-empty one. Writes "" if there is none. */
static void pgembed__log_reason(const char *logfile, off_t offset, char *out, size_t len)
{
    static const char *marks[] = { "FATAL", "PANIC", "ERROR", "error:", "could not",
                                   "invalid", "denied", NULL };
    char buf[16384];
    out[0] = 0;
    int fd = open(logfile, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    struct stat st;
    if (fstat(fd, &st) == 0 && st.st_size - offset > (off_t)sizeof buf - 1)
        offset = st.st_size - (off_t)sizeof buf + 1; /* the last 16 KiB is plenty */
    ssize_t n = pread(fd, buf, sizeof buf - 1, offset);
    close(fd);
    if (n <= 0) return;
    buf[n] = 0;
    const char *last = NULL;
    char *save = NULL;
    for (char *line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        /* Drop pg_ctl's "waiting for server to start...." and the server's
         * "2026-01-01 00:00:00.000 UTC [pid] " in front of its message. */
        char *dots = strstr(line, "....");
        if (dots) line = dots + strspn(dots, ".");
        char *bracket = strstr(line, "] ");
        if (line[0] >= '0' && line[0] <= '9' && bracket && bracket - line < 64) line = bracket + 2;
        while (*line == ' ' || *line == '\t') line++;
        if (!*line) continue;
        last = line;
        for (int i = 0; marks[i]; i++) {
            if (strstr(line, marks[i])) {
                snprintf(out, len, "%s", line);
                return;
            }
        }
    }
    if (last) snprintf(out, len, "%s", last);
}

/* Say in err why a step that exited with rc failed. */
static void pgembed__failed(const pgembed_t *pg, const char *what, int rc, off_t offset,
                            char *err, size_t errlen)
{
    char reason[512];
    if (rc == PGEMBED_EXIT_LOG)
        snprintf(reason, sizeof reason, "cannot open its log");
    else if (rc == PGEMBED_EXIT_USER)
        snprintf(reason, sizeof reason, "cannot become user postgres");
    else if (rc == PGEMBED_EXIT_EXEC)
        snprintf(reason, sizeof reason, "cannot execute it from %s", pg->bindir);
    else
        pgembed__log_reason(pg->logfile, offset, reason, sizeof reason);
    snprintf(err, errlen, "%s failed: %s (log: %s)", what, reason[0] ? reason : "no reason given",
             pg->logfile);
}

static off_t pgembed__log_size(const pgembed_t *pg)
{
    struct stat st;
    return stat(pg->logfile, &st) == 0 ? st.st_size : 0;
}

/* The first line of postmaster.pid, written before pg_ctl -w returns. */
static pid_t pgembed__read_pid(const pgembed_t *pg)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/postmaster.pid", pg->pgdata);
    FILE *f = fopen(path, "re");
    long pid = 0;
    if (f) {
        if (fscanf(f, "%ld", &pid) != 1 || pid <= 1) pid = 0;
        fclose(f);
    }
    return (pid_t)pid;
}

pgembed_t *pgembed_start(const char *reldir, int port, char *conninfo, size_t conninfo_len,
                         char *err, size_t errlen)
{
    pgembed_t *pg = xcalloc(1, sizeof *pg);
    /* The server changes into its data directory: give it absolute paths. */
    char dir[PATH_MAX];
    if (!realpath(reldir, dir) || strlen(dir) > 3000) {
        snprintf(err, errlen, "cannot resolve %s: %s", reldir, strerror(errno));
        goto fail;
    }
    if (pgembed__find_bindir(pg->bindir, sizeof pg->bindir) < 0) {
        snprintf(err, errlen, "no PostgreSQL server found under /usr/lib/postgresql (install "
                              "postgresql, or give --db)");
        goto fail;
    }
    if (geteuid() == 0) {
        struct passwd *pw = getpwnam("postgres");
        if (!pw) {
            snprintf(err, errlen, "running as root needs the 'postgres' user for the embedded "
                                  "PostgreSQL (initdb refuses root)");
            goto fail;
        }
        pg->uid = pw->pw_uid;
        pg->gid = pw->pw_gid;
        pg->as_other = 1;
    }
    snprintf(pg->logfile, sizeof pg->logfile, "%.3000s/postgresql.log", dir);
    /* Ours, but writable by the server's user too, for a pg_ctl -l by hand. */
    int lfd = open(pg->logfile, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (lfd < 0) {
        snprintf(err, errlen, "open(%s) failed: %s", pg->logfile, strerror(errno));
        goto fail;
    }
    if (pg->as_other && fchown(lfd, pg->uid, pg->gid) < 0)
        log_warn("fchown(%s) failed: %s", pg->logfile, strerror(errno));
    close(lfd);
    if (pgembed__layout(pg, dir, err, errlen) < 0) goto fail;
    if (pgembed__mkdir_owned(pg, pg->sockdir, 0700) < 0) {
        snprintf(err, errlen, "mkdir(%s) failed: %s", pg->sockdir, strerror(errno));
        goto fail;
    }
    char version[4200];
    snprintf(version, sizeof version, "%s/PG_VERSION", pg->pgdata);
    if (access(version, F_OK) != 0) {
        if (pgembed__mkdir_owned(pg, pg->pgdata, 0700) < 0) {
            snprintf(err, errlen, "mkdir(%s) failed: %s", pg->pgdata, strerror(errno));
            goto fail;
        }
        char initdb[300];
        snprintf(initdb, sizeof initdb, "%s/initdb", pg->bindir);
        char *argv[] = { initdb, "-D", pg->pgdata, "-U", "mscope", "-A", "trust", "-E", "UTF8",
                         "--no-instructions", NULL };
        log_info("initialising the embedded PostgreSQL in %s", pg->pgdata);
        off_t at = pgembed__log_size(pg);
        int rc = pgembed__run(pg, argv, pg->logfile);
        if (rc != 0) {
            pgembed__failed(pg, "initdb", rc, at, err, errlen);
            goto fail;
        }
    }
    char pgctl[300], opts[4400];
    snprintf(pgctl, sizeof pgctl, "%s/pg_ctl", pg->bindir);
    /* Still running from a run of ours that was killed: use it. */
    char *status[] = { pgctl, "-D", pg->pgdata, "status", NULL };
    if (pgembed__run(pg, status, pg->logfile) == 0) {
        log_info("embedded PostgreSQL already running (left by an earlier run): using it");
        goto connected;
    }
    /* Unix socket only: nothing listens on the network. */
    /* Bulk-load settings for a server that only we use: bigger buffers and
     * fewer checkpoints (each one makes the next writes log whole pages). */
    snprintf(opts, sizeof opts,
             "-k %s -c listen_addresses='' -p %d -c shared_buffers=256MB -c max_wal_size=4GB "
             "-c checkpoint_timeout=15min", pg->sockdir, port);
    /* No -l: the server writes to pg_ctl's stdout, the log we opened. */
    char *argv[] = { pgctl, "-D", pg->pgdata, "-w", "-t", "60", "-o", opts, "start", NULL };
    off_t at = pgembed__log_size(pg);
    int rc = pgembed__run(pg, argv, pg->logfile);
    if (rc != 0) {
        pgembed__failed(pg, "pg_ctl start", rc, at, err, errlen);
        goto fail;
    }
connected:
    snprintf(conninfo, conninfo_len, "host=%s port=%d user=mscope dbname=postgres", pg->sockdir,
             port);
    log_info("embedded PostgreSQL running on %s (port %d)", pg->sockdir, port);
    return pg;
fail:
    free(pg);
    return NULL;
}

void pgembed_stop(pgembed_t *pg)
{
    if (!pg) return;
    /* The pid now: the server may have been restarted since we started it. */
    pid_t pid = pgembed__read_pid(pg);
    /* SIGINT is PostgreSQL's fast shutdown, what pg_ctl -m fast sends. */
    int sent = pid > 0 ? kill(pid, SIGINT) : -1;
    if (pid <= 0 || (sent < 0 && errno == ESRCH)) {
        log_warn("the embedded PostgreSQL was not running (no live postmaster in %s/postmaster.pid)",
                 pg->pgdata);
    } else if (sent < 0) {
        log_warn("cannot signal the embedded PostgreSQL (pid %d): %s", (int)pid, strerror(errno));
    } else {
        for (int i = 0; i < 2400 && kill(pid, 0) == 0; i++) {
            struct timespec ts = { 0, 50 * 1000000L };
            nanosleep(&ts, NULL);
        }
        if (kill(pid, 0) == 0)
            log_warn("the embedded PostgreSQL (pid %d) is still shutting down after 2 minutes", (int)pid);
        else
            log_info("embedded PostgreSQL stopped");
    }
    free(pg);
}
