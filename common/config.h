/* config.h - table-driven options: one row per option serves the command line,
 * the config file, validation and --help alike (as Redis' static_configs[]).
 *
 * A program declares `static const config_opt opts[]` ending in a row whose
 * name is NULL; each row names a field of the program's own settings struct
 * by offset. Values are parsed from strings in one place, so "--max-disk 2G"
 * and "max-disk = 2G" in a file mean the same thing.
 */
#ifndef MSCOPE_CONFIG_H
#define MSCOPE_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum config_type {
    CFG_STR,      /* char * (owned by the settings struct; default may be NULL) */
    CFG_INT,      /* int64_t, decimal, within [min, max] */
    CFG_SIZE,     /* int64_t bytes; suffix K, M, G, T (powers of 1024) */
    CFG_DURATION, /* int64_t nanoseconds; suffix ns, us, ms, s, m, h, d (bare = s) */
    CFG_BOOL,     /* int; as a flag it takes no value, in a file yes/no/true/false/1/0 */
};

typedef struct config_opt {
    const char *name;   /* long option name without "--", also the file key */
    char short_name;    /* single-letter flag, or 0 */
    enum config_type type;
    size_t offset;      /* offsetof(settings struct, field) */
    const char *def;    /* default as a string, parsed like user input; NULL = none */
    int64_t min, max;   /* accepted range for INT/SIZE/DURATION (max 0 = unbounded) */
    const char *metavar;
    const char *help;
} config_opt;

/* Where an option got its value, for messages about it found later (after
 * a file and the flags have been merged): one per row of a table, indexed
 * like it, zeroed = every option at its default. */
typedef struct config_origin {
    const char *file; /* borrowed: the path as given, which must outlive it */
    int line;         /* the file's line, or 0 */
    int flag;         /* 1: set last by its command-line flag */
} config_origin;

/* Fill every field from its default. Returns 0, or -1 if a default does not
 * parse (a programming error, logged). */
int config_defaults(const config_opt *opts, void *settings);

/* Parse one value for option o into settings. Returns 0, or -1 with a message
 * in err (size errlen) naming the option and the bad value. */
int config_set(const config_opt *o, void *settings, const char *value, char *err, size_t errlen);

/* Look an option up by long name; NULL if unknown. */
const config_opt *config_find(const config_opt *opts, const char *name);

/* The lines of a config file as every daemon's file is read: '#' starts a
 * comment, blank lines are skipped, a line is at most CONFIG_LINE_MAX bytes.
 * fn gets each "[...]" header (section: the trimmed line, key and val NULL)
 * and each "key = value" (trimmed; section NULL) with its line number, and
 * returns 0, or -1 with err set (FILE:LINE: included). expect says what a
 * line may be, for the error about one that is neither ("'key = value'").
 * Returns 0, or -1 with err naming the file, the line and the problem. */
#define CONFIG_LINE_MAX 8190

/* s without its leading and trailing blanks (cut in place). */
char *config_trim(char *s);
typedef int (*config_line_fn)(void *ctx, const char *path, int lineno, char *section, char *key,
                              char *val, char *err, size_t errlen);
int config_read_lines(const char *path, const char *expect, config_line_fn fn, void *ctx,
                      char *err, size_t errlen);

/* Read "key = value" lines from path (config_read_lines; no sections).
 * Returns 0, or -1 with err naming the file, the line and the problem. */
int config_load_file(const config_opt *opts, void *settings, const char *path, char *err,
                     size_t errlen);

/* Parse argv from index *argi. Options may appear anywhere; "--name value",
 * "--name=value", "-x value"; "--" ends options. Arguments that are not options
 * are collected into positional (at most max_pos, borrowed from argv), their
 * count stored in *npos. "--config FILE" is applied where it appears, so later
 * flags override the file. "--help" sets *help. Returns 0 or -1 with err set. */
int config_parse_args(const config_opt *opts, void *settings, int argc, char **argv, int argi,
                      const char **positional, int max_pos, int *npos, int *help, char *err,
                      size_t errlen);

/* config_parse_args() that also keeps in where (one entry per row of opts,
 * may be NULL) where each option set got its value: the flag, or FILE:LINE
 * of a --config file. Entries of options not set are left alone, so a
 * caller can fill where from another source first (the broker's file). */
int config_parse_args_where(const config_opt *opts, void *settings, config_origin *where, int argc,
                            char **argv, int argi, const char **positional, int max_pos, int *npos,
                            int *help, char *err, size_t errlen);

/* Note in where that option o of opts was set at file:line (file borrowed). */
void config_origin_note(const config_opt *opts, config_origin *where, const config_opt *o,
                        const char *file, int line);

/* How a message about option name names it, the way config_set() and the
 * file parser word their own: "FILE:LINE: name" when it was set in a file,
 * "--name" when by its flag, "name" at its default (or where NULL). A
 * message is then "<that>: the problem". Returns buf. */
const char *config_origin_str(const config_opt *opts, const config_origin *where, const char *name,
                              char *buf, size_t len);

/* Print one line per option: flags, metavar, help and default. */
void config_print_help(const config_opt *opts, FILE *out);

/* Free the strings of CFG_STR fields. */
void config_free(const config_opt *opts, void *settings);

/* Parsers shared with other modules. Each returns 0 or -1 on a bad string. */
int config_parse_size(const char *s, int64_t *out);
int config_parse_duration(const char *s, int64_t *out_ns);

#endif
