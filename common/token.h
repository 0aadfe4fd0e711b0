/* token.h - shared secrets in files: the coordinator's RPC token (clients
 * present it) and the cluster's search token (the coordinator presents it
 * to recorders), the REST API's tokens and the /metrics token. A token is
 * one line of 16 to 127 printable characters (white space around it in the
 * file is ignored, as Prometheus's credentials_file ignores it); files are
 * created 0600 from /dev/urandom so that secrets never go on a command line.
 */
#ifndef MSCOPE_TOKEN_H
#define MSCOPE_TOKEN_H

#include <stddef.h>

#define TOKEN_MAX 128 /* with its NUL */
#define TOKEN_MIN 16

/* Read the token in path into out (TOKEN_MAX bytes). When the file does not
 * exist and create is set, make one (random, 0600). Returns 0 read, 1
 * created, -1 with err set (missing, unreadable, or no token of TOKEN_MIN to
 * TOKEN_MAX - 1 printable characters) and out "". */
int token_load(const char *path, int create, char *out, char *err, size_t errlen);

/* Read path's token again into cur (TOKEN_MAX bytes: the token in use), as
 * token_load reads it, never creating the file: for a reload (SIGHUP). On
 * an error cur is left as it was. Returns 1 when the token changed, 0 when
 * it is the same, -1 with err set. */
int token_reload(const char *path, char *cur, char *err, size_t errlen);

/* Constant-time comparison: the time taken says nothing about the token.
 * got may be NULL. Returns 1 when equal. */
int token_equal(const char *want, const char *got);

#endif
