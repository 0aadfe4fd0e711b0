/* pgembed.c - a private PostgreSQL under the coordinator's data directory
 * (see pgembed.h). Runs initdb and pg_ctl as child processes.
 */
#include "pgembed.h"

#include "log.h"
#include "xmalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

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

/* Run argv (as the server's user when we are root), output to logpath.
 * Returns the exit status, or -1 if it could not run. */
static int pgembed__run(pgembed_t *pg, char *const argv[], const char *logpath)
{
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        int fd = open(logpath, O_WRONLY | O_CREAT | O_APPEND, 0640);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        if (pg->as_other) {
            if (setgroups(0, NULL) < 0 || setgid(pg->gid) < 0 || setuid(pg->uid) < 0) _exit(126);
        }
        execv(argv[0], argv);
        _exit(127);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static int pgembed__mkdir_owned(pgembed_t *pg, const char *path, mode_t mode)
{
    if (mkdir(path, mode) < 0 && errno != EEXIST) return -1;
    if (pg->as_other && chown(path, pg->uid, pg->gid) < 0) return -1;
    return chmod(path, mode);
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
        chmod(dir, 0711); /* the server's user must reach its directories */
    }
    snprintf(pg->pgdata, sizeof pg->pgdata, "%.3000s/pgdata", dir);
    snprintf(pg->sockdir, sizeof pg->sockdir, "%.3000s/pgrun", dir);
    snprintf(pg->logfile, sizeof pg->logfile, "%.3000s/postgresql.log", dir);
    int lfd = open(pg->logfile, O_WRONLY | O_CREAT | O_APPEND, 0640);
    if (lfd >= 0) {
        if (pg->as_other && fchown(lfd, pg->uid, pg->gid) < 0) log_warn("fchown(%s) failed", pg->logfile);
        close(lfd);
    }
    if (pgembed__mkdir_owned(pg, pg->sockdir, 0700) < 0) {
        snprintf(err, errlen, "cannot prepare %s: %s", pg->sockdir, strerror(errno));
        goto fail;
    }
    char version[4200];
    snprintf(version, sizeof version, "%s/PG_VERSION", pg->pgdata);
    if (access(version, F_OK) != 0) {
        if (pgembed__mkdir_owned(pg, pg->pgdata, 0700) < 0) {
            snprintf(err, errlen, "cannot create %s: %s", pg->pgdata, strerror(errno));
            goto fail;
        }
        char initdb[300];
        snprintf(initdb, sizeof initdb, "%s/initdb", pg->bindir);
        char *argv[] = { initdb, "-D", pg->pgdata, "-U", "mscope", "-A", "trust", "-E", "UTF8",
                         "--no-instructions", NULL };
        log_info("initialising the embedded PostgreSQL in %s", pg->pgdata);
        if (pgembed__run(pg, argv, pg->logfile) != 0) {
            snprintf(err, errlen, "initdb failed (see %s)", pg->logfile);
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
    char *argv[] = { pgctl, "-D", pg->pgdata, "-l", pg->logfile, "-w", "-t", "60", "-o", opts,
                     "start", NULL };
    if (pgembed__run(pg, argv, pg->logfile) != 0) {
        snprintf(err, errlen, "pg_ctl start failed (see %s)", pg->logfile);
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
    char pgctl[300];
    snprintf(pgctl, sizeof pgctl, "%s/pg_ctl", pg->bindir);
    char *argv[] = { pgctl, "-D", pg->pgdata, "-m", "fast", "-w", "stop", NULL };
    if (pgembed__run(pg, argv, pg->logfile) != 0)
        log_warn("pg_ctl stop failed (see %s)", pg->logfile);
    else
        log_info("embedded PostgreSQL stopped");
    free(pg);
}
