/* peakrss.c - run a command; print its peak resident size in KiB (wait4's
 * ru_maxrss) and its exit status, "KIB STATUS". With -s the command runs
 * with transparent huge pages off (PR_SET_THP_DISABLE, inherited across
 * exec): its memory then counts in small pages, the same from run to run,
 * where whether the kernel had a huge page free moved a run by 2 MiB.
 *
 * Why a program of its own: a child's peak counts the memory it had when
 * forked, before its exec, so the process that forks it must be small. A
 * test's Python holding parsed records is not, and even a fresh Python's
 * ~12 MiB would hide a small recorder's own peak
 * (tests/integration/test_flow_table_full.py). */
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    int arg = 1;
    if (argc > 1 && strcmp(argv[1], "-s") == 0) {
        if (prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0) < 0) {
            perror("peakrss: PR_SET_THP_DISABLE");
            return 2;
        }
        arg = 2;
    }
    if (argc <= arg) {
        fprintf(stderr, "usage: peakrss [-s] COMMAND [ARG...]\n");
        return 2;
    }
    pid_t pid = fork();
    if (pid < 0) {
        perror("peakrss: fork");
        return 2;
    }
    if (pid == 0) {
        execvp(argv[arg], argv + arg);
        perror("peakrss: exec");
        _exit(127);
    }
    int status;
    struct rusage ru;
    if (wait4(pid, &status, 0, &ru) < 0) {
        perror("peakrss: wait4");
        return 2;
    }
    printf("%ld %d\n", ru.ru_maxrss, status);
    return 0;
}
