/* replay.c - run a fuzz target over files, without libFuzzer.
 *
 * Linked with a tests/fuzz/fuzz_<name>.c in the gcc builds (plain and
 * sanitized), so every corpus file - the seeds and every input that ever
 * crashed a target - is checked by `make check` on every build, not only by
 * whoever runs `make fuzz` with clang. Arguments are files or directories
 * (every regular file directly inside, in name order). Each input is copied
 * into a buffer of exactly its size, so AddressSanitizer sees a read one byte
 * past the end as libFuzzer would. A target reports a finding by crashing or
 * aborting; the replay then dies with it, naming the file first.
 *
 * Exit status: 0 when every input ran, 1 when an argument could not be read
 * or named no input at all (an empty corpus tests nothing).
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
/* Optional in a target, as with libFuzzer. */
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

static int replay__file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        return -1;
    }
    size_t cap = 4096, n = 0;
    uint8_t *buf = malloc(cap);
    size_t got;
    while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) buf = realloc(buf, cap *= 2);
    }
    int bad = !buf || ferror(f);
    fclose(f);
    if (bad) {
        fprintf(stderr, "%s: read failed\n", path);
        free(buf);
        return -1;
    }
    /* The exact size: the target may not read beyond n. */
    uint8_t *exact = malloc(n ? n : 1);
    if (!exact) abort();
    memcpy(exact, buf, n);
    free(buf);
    fprintf(stderr, "replay: %s (%zu bytes)\n", path, n);
    LLVMFuzzerTestOneInput(exact, n);
    free(exact);
    return 0;
}

static int replay__skip(const struct dirent *d) { return d->d_name[0] != '.'; }

int main(int argc, char **argv)
{
    if (LLVMFuzzerInitialize) LLVMFuzzerInitialize(&argc, &argv);
    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE|DIR...\n", argv[0]);
        return 1;
    }
    long runs = 0;
    for (int i = 1; i < argc; i++) {
        struct stat sb;
        if (stat(argv[i], &sb) < 0) {
            perror(argv[i]);
            return 1;
        }
        if (!S_ISDIR(sb.st_mode)) {
            if (replay__file(argv[i]) < 0) return 1;
            runs++;
            continue;
        }
        struct dirent **ents;
        int n = scandir(argv[i], &ents, replay__skip, alphasort);
        if (n < 0) {
            perror(argv[i]);
            return 1;
        }
        for (int k = 0; k < n; k++) {
            char path[4096];
            snprintf(path, sizeof path, "%s/%s", argv[i], ents[k]->d_name);
            if (stat(path, &sb) == 0 && S_ISREG(sb.st_mode)) {
                if (replay__file(path) < 0) return 1;
                runs++;
            }
            free(ents[k]);
        }
        free(ents);
    }
    if (!runs) {
        fprintf(stderr, "replay: no input files\n");
        return 1;
    }
    printf("replay: %ld inputs, no finding\n", runs);
    return 0;
}
