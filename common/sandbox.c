/* sandbox.c - dropping root and filtering system calls (see sandbox.h).
 *
 * DESIGN: an allow-list, so that a call we never make - execve in the
 * recorder, ptrace, mount, bpf, keyctl, ... - ends the process instead of
 * serving an attacker who took over a thread. The list was read off the
 * daemons running the whole test suite under `strace -f` (both builds:
 * the sanitizers add a few of their own) and is kept in one place for all
 * daemons: the coordinator's threads (libuv and its pool, ZeroMQ, libpq,
 * h2o with OpenSSL) need no call beyond it. What only some daemon needs
 * comes with a flag (SANDBOX_SIGINT: the coordinator stops its embedded
 * PostgreSQL with a signal rather than by running pg_ctl). No daemon runs
 * programs under the filter. The default action is a trap, not a silent kill, so
 * that the log names the call that was missing.
 */
#include "sandbox.h"

#include "log.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <linux/capability.h>
#include <seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

int sandbox_drop_user(const char *user, int keep_net_raw, char *err, size_t errlen)
{
    if (!user || !*user) return 0;
    struct passwd *pw = getpwnam(user);
    if (!pw) {
        snprintf(err, errlen, "--user %s: no such user", user);
        return -1;
    }
    if (geteuid() == pw->pw_uid && getuid() == pw->pw_uid) return 0;
    if (geteuid() != 0) {
        snprintf(err, errlen, "--user %s: only root can become another user", user);
        return -1;
    }
    /* Out of the bounding set goes every capability but the one kept, while
     * we still may (CAP_SETPCAP); KEEPCAPS carries that one over setuid(). */
    for (int cap = 0; cap <= CAP_LAST_CAP; cap++)
        if (!(keep_net_raw && cap == CAP_NET_RAW)) prctl(PR_CAPBSET_DROP, cap, 0, 0, 0);
    if ((keep_net_raw && prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0) ||
        initgroups(pw->pw_name, pw->pw_gid) < 0 || setgid(pw->pw_gid) < 0 ||
        setuid(pw->pw_uid) < 0) {
        snprintf(err, errlen, "--user %s: %s", user, strerror(errno));
        return -1;
    }
    if (keep_net_raw) {
        struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
        struct __user_cap_data_struct data[2];
        memset(data, 0, sizeof data);
        data[0].permitted = data[0].effective = 1u << CAP_NET_RAW;
        if (syscall(SYS_capset, &hdr, data) < 0) {
            snprintf(err, errlen, "--user %s: capset(CAP_NET_RAW): %s", user, strerror(errno));
            return -1;
        }
        prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0);
    }
    /* setuid() from root to another user also clears every capability;
     * make sure there is no way back. */
    if (setuid(0) == 0) {
        snprintf(err, errlen, "--user %s: could become root again", user);
        return -1;
    }
    log_info("running as user %s (uid %d, gid %d)%s", pw->pw_name, (int)pw->pw_uid,
             (int)pw->pw_gid, keep_net_raw ? ", keeping only CAP_NET_RAW" : ", no capabilities");
    return 0;
}

/* Every daemon: memory, threads, files, sockets, the event loop, time. */
static const char *const sandbox__common[] = {
    "read", "write", "readv", "writev", "pread64", "pwrite64", "preadv", "pwritev", "close",
    "fstat", "stat", "lstat", "newfstatat", "statx", "lseek", "statfs", "fstatfs",
    "mmap", "munmap", "mprotect", "mremap", "madvise", "brk", "msync", "mincore", "mlock",
    "munlock", "sched_setscheduler", "sched_setparam",
    "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "sigaltstack", "rt_sigtimedwait",
    "poll", "ppoll", "select", "pselect6", "epoll_create", "epoll_create1", "epoll_ctl",
    "epoll_wait", "epoll_pwait", "eventfd2", "pipe", "pipe2", "dup", "dup2", "dup3", "fcntl",
    "ioctl", "futex", "set_robust_list", "get_robust_list", "clone", "clone3", "exit",
    "exit_group", "gettid", "getpid", "getppid", "tgkill", "tkill", "nanosleep",
    "clock_nanosleep", "clock_gettime", "clock_getres", "gettimeofday", "time", "sched_yield",
    "sched_getaffinity", "sched_getparam", "sched_getscheduler", "getrandom", "rseq",
    "set_tid_address", "arch_prctl", "prctl", "restart_syscall", "membarrier",
    "open", "openat", "creat", "unlink", "unlinkat", "rename", "renameat", "renameat2",
    "mkdir", "mkdirat", "rmdir", "link", "linkat", "symlink", "readlink", "readlinkat",
    "chmod", "fchmod", "fchmodat", "fchown", "access", "faccessat", "faccessat2", "getcwd",
    "chdir", "fchdir", "fsync", "fdatasync", "sync_file_range", "ftruncate", "truncate",
    "fallocate", "fadvise64", "getdents", "getdents64", "flock", "umask", "utimensat",
    "socket", "socketpair", "bind", "listen", "accept", "accept4", "connect", "getsockname",
    "getpeername", "setsockopt", "getsockopt", "sendto", "recvfrom", "sendmsg", "recvmsg",
    "sendmmsg", "recvmmsg", "shutdown", "sendfile",
    "getuid", "geteuid", "getgid", "getegid", "getresuid", "getresgid", "getgroups", "capget",
    "getrlimit", "prlimit64", "getrusage", "times", "sysinfo", "uname", "getpriority",
    "setpriority", "timerfd_create", "timerfd_settime", "timerfd_gettime", "memfd_create",
    "inotify_init1", "inotify_add_watch", "inotify_rm_watch", "wait4", "waitid",
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    /* The sanitizers: LeakSanitizer stops the world at exit from a thread
     * of its own that ptrace()s and signals the others. */
    "ptrace", "process_vm_readv", "sched_setaffinity", "personality", "kill",
#endif
};

static const char *sandbox__who = "mscope";

/* A forbidden call: say which (async-signal-safe), then die of it. */
static void sandbox__on_sigsys(int sig, siginfo_t *si, void *uc)
{
    (void)uc;
    char msg[160], num[16];
    int n = 0, k = 0;
    unsigned v = (unsigned)si->si_syscall;
    do num[k++] = (char)('0' + v % 10);
    while ((v /= 10) && k < (int)sizeof num);
    const char *a = sandbox__who, *b = ": seccomp: forbidden system call ";
    while (*a && n < 100) msg[n++] = *a++;
    while (*b && n < 140) msg[n++] = *b++;
    while (k) msg[n++] = num[--k];
    msg[n++] = '\n';
    ssize_t w = write(2, msg, (size_t)n);
    (void)w;
    signal(sig, SIG_DFL);
    raise(sig);
}

static int sandbox__allow(scmp_filter_ctx ctx, const char *const *names, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int nr = seccomp_syscall_resolve_name(names[i]);
        if (nr == __NR_SCMP_ERROR) continue; /* not on this architecture */
        if (seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0) < 0) return -1;
    }
    return 0;
}

#define SANDBOX_N(a) (sizeof(a) / sizeof((a)[0]))

int sandbox_seccomp(const char *who, int flags, char *err, size_t errlen)
{
    sandbox__who = who;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = sandbox__on_sigsys;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGSYS, &sa, NULL);
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_TRAP);
    int rc = ctx ? 0 : -ENOMEM;
    if (!rc) rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1);
    if (!rc) rc = sandbox__allow(ctx, sandbox__common, SANDBOX_N(sandbox__common));
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__) /* there kill() is common */
    /* Written out: clang finds SCMP_A1()'s initializer incomplete. */
    struct scmp_arg_cmp sig_int = { .arg = 1, .op = SCMP_CMP_EQ, .datum_a = SIGINT, .datum_b = 0 };
    struct scmp_arg_cmp sig_probe = { .arg = 1, .op = SCMP_CMP_EQ, .datum_a = 0, .datum_b = 0 };
    if (!rc && (flags & SANDBOX_SIGINT))
        rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(kill), 1, sig_int);
    if (!rc && (flags & SANDBOX_SIGINT))
        rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(kill), 1, sig_probe);
#endif
    if (!rc) rc = seccomp_load(ctx);
    if (ctx) seccomp_release(ctx);
    if (rc) {
        snprintf(err, errlen, "seccomp filter: %s", strerror(rc < 0 ? -rc : rc));
        return -1;
    }
    log_info("seccomp filter installed: only the system calls %s makes are allowed", who);
    const char *t = getenv("MSCOPE_SANDBOX_SELFTEST");
    if (t && !strcmp(t, "1")) {
        log_warn("MSCOPE_SANDBOX_SELFTEST: making a forbidden system call (swapoff)");
        syscall(SYS_swapoff, "/nonexistent");
        log_error("MSCOPE_SANDBOX_SELFTEST: the forbidden call returned: the filter does not work");
    }
    return 0;
}
