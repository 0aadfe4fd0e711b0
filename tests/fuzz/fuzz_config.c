/* fuzz_config.c - the option parser every daemon reads its configuration
 * file and its command line with (common/config.c).
 *
 * An input is a configuration file ("key = value" lines), read with
 * config_load_file() into the recorder's settings. The same bytes, split at
 * newlines, are then an argument vector for config_parse_args(), except
 * --config, which would read whatever file the input names. The option
 * table is the recorder's own (recopts.c): every type and range the
 * daemons use. Values that are accepted must be in range.
 */
#include "config.h"
#include "fuzz.h"
#include "recopts.h"

#include <stddef.h>
#include <string.h>

/* Every number in range, every boolean 0 or 1. */
static void fuzz__check(const rec_settings *s)
{
    for (const config_opt *o = rec_opts; o->name; o++) {
        const char *f = (const char *)s + o->offset;
        if (o->type == CFG_BOOL) {
            int b;
            memcpy(&b, f, sizeof b);
            FUZZ_CHECK(b == 0 || b == 1);
        } else if (o->type != CFG_STR) {
            int64_t v;
            memcpy(&v, f, sizeof v);
            FUZZ_CHECK(v >= o->min && (!o->max || v <= o->max));
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int init;
    if (!init) {
        fuzz_quiet();
        init = 1;
    }
    if (size > 65536) return 0;
    rec_settings s;
    memset(&s, 0, sizeof s);
    FUZZ_CHECK(config_defaults(rec_opts, &s) == 0);
    char err[512] = "";
    const char *path = fuzz_memfile(data, size, NULL);
    int rc = config_load_file(rec_opts, &s, path, err, sizeof err);
    FUZZ_CHECK(rc == 0 || rc == -1);
    FUZZ_CHECK(strlen(err) < sizeof err || rc == 0);
    fuzz__check(&s);
    config_free(rec_opts, &s);

    /* The command line: one argument per line, --config left out. */
    char *copy = malloc(size + 1);
    memcpy(copy, data, size);
    copy[size] = 0;
    char *argv[258];
    int argc = 0;
    argv[argc++] = "mscope-recorder";
    for (char *save = NULL, *a = strtok_r(copy, "\n", &save); a && argc < 257;
         a = strtok_r(NULL, "\n", &save))
        if (strncmp(a, "--config", 8) != 0) argv[argc++] = a;
    argv[argc] = NULL;
    memset(&s, 0, sizeof s);
    config_defaults(rec_opts, &s);
    const char *pos[4];
    int npos = 0, help = 0;
    if (config_parse_args(rec_opts, &s, argc, argv, 1, pos, 4, &npos, &help, err, sizeof err) == 0) {
        FUZZ_CHECK(npos >= 0 && npos <= 4);
        fuzz__check(&s);
    }
    config_free(rec_opts, &s);
    free(copy);
    return 0;
}
