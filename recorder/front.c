/* front.c - mscope-recorder, the command. `mscope-recorder search ...` runs
 * here (search_cli.c); every other use - the daemon, --read imports,
 * --help, --version - becomes the recorder program, mscope-recorderd
 * (main.c), by execv in the same process: same pid, arguments, environment
 * and capabilities, so systemd, `kill` and scripts see no difference.
 *
 * DESIGN: the daemon links ZeroMQ (which brings its C++ runtime, Kerberos,
 * PGM, NORM and libsodium), h2o (OpenSSL, wslay, zlib), libuv, jansson and
 * libseccomp: 38 shared libraries, whose mapping and relocation cost ~5 ms
 * of CPU at every start - more than a selective search of a 2 000-segment
 * store itself. The offline search needs only libpcap and the store's
 * code, so this program links only those (--as-needed) and starts like
 * tcpdump does, while the daemon pays for starting this program first
 * (~2.5 ms of CPU, libpcap's libraries included) once, when it starts.
 * Where the recorder program is: beside this one (the build tree),
 * else MSCOPE_RECORDERD_REL from this one's directory (an installed tree:
 * libexec/mirrorscope/), else MSCOPE_RECORDERD_PATH (where the build was
 * configured to install it, for a system without /proc).
 */
#include "log.h"
#include "search_cli.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define FRONT_PROGRAM "mscope-recorderd"

/* Try the recorder program at dir/rel (dir may be empty); returns only when
 * it could not be run, with errno set by execv. */
static void front__exec(const char *dir, const char *rel, char **argv)
{
    char path[PATH_MAX + 64];
    if (snprintf(path, sizeof path, "%s%s%s", dir, *dir ? "/" : "", rel) >= (int)sizeof path) {
        errno = ENAMETOOLONG;
        return;
    }
    execv(path, argv);
}

int main(int argc, char **argv)
{
    log_init("mscope-recorder");
    if (argc > 1 && strcmp(argv[1], "search") == 0) return search_cli_main(argc - 1, argv + 1);

    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n > 0) {
        self[n] = 0;
        char *slash = strrchr(self, '/');
        if (slash) *slash = 0;
        front__exec(self, FRONT_PROGRAM, argv);
        front__exec(self, MSCOPE_RECORDERD_REL, argv);
    }
    front__exec("", MSCOPE_RECORDERD_PATH, argv);
    fprintf(stderr, "mscope-recorder: cannot run the recorder program: execv(%s) failed: %s\n",
            MSCOPE_RECORDERD_PATH, strerror(errno));
    return 127;
}
