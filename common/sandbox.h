/* sandbox.h - a daemon gives up what it does not need once it is set up:
 * root (for --user), and every system call it does not make (a seccomp
 * filter of allowed calls; anything else kills the process).
 *
 * The order in a daemon's start: sandbox_drop_user() first (so that what
 * it creates belongs to the user), then everything else (data directory,
 * sockets, threads), then sandbox_seccomp() once the daemon runs (the
 * filter is applied to every thread, TSYNC, and inherited by later ones).
 */
#ifndef MSCOPE_SANDBOX_H
#define MSCOPE_SANDBOX_H

#include <stddef.h>
#include <sys/types.h>

/* Become user (its uid, gid and supplementary groups), with no capability
 * left but CAP_NET_RAW when keep_net_raw (a live interface). Running as
 * that user already is fine; another user without root is an error. NULL
 * or "" does nothing. Returns 0, or -1 with err set. */
int sandbox_drop_user(const char *user, int keep_net_raw, char *err, size_t errlen);

/* What only some daemon needs beyond the common calls. */
enum {
    /* kill() with SIGINT or 0 (to see if a process is there): the coordinator
     * stops its embedded PostgreSQL so, whatever pid the server has now. */
    SANDBOX_SIGINT = 1,
};

/* Install the filter for every thread of the process. A forbidden call is
 * logged (its number) and the process is killed by SIGSYS. who names the
 * daemon in that message. Allowed: the common calls (files, sockets,
 * threads, the event loop, time, memory) and what flags (SANDBOX_*) add.
 * No daemon may run programs under it. With MSCOPE_SANDBOX_SELFTEST=1 in the
 * environment, make a forbidden call right after (the tests' proof that
 * the filter kills). Returns 0, or -1 with err set (nothing installed). */
int sandbox_seccomp(const char *who, int flags, char *err, size_t errlen);

#endif
