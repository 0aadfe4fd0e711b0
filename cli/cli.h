/* cli.h - the settings of `mscope` shared by its commands. */
#ifndef MSCOPE_CLI_H
#define MSCOPE_CLI_H

#include "bus.h"

#include <stdint.h>

#define CLI_MAX_ARGS 64

typedef struct cli_settings {
    char *coordinator, *token_file, *key_file, *coordinator_key, *from, *to, *since, *host, *order, *node, *by, *metric;
    char *write, *nodes;
    int64_t limit, port, proto, timeout, min_rtt;
    int64_t max_packets, max_bytes, dedup_window, node_timeout;
    int json, retrans, dedup, allow_partial, quiet, insecure;
} cli_settings;

/* `mscope search`: words are the filter expression; sec NULL for plain
 * ZeroMQ. Returns the exit status. */
/* `mscope monitors OP [NAME [KEY=VALUE...]]` (monitors.c): words follow
 * "monitors". Returns the exit status. */
int cli_monitors(const cli_settings *s, const bus_sec *sec, const char *token, int64_t from_ns,
                 int64_t to_ns, const char *const *words, int nwords);

int cli_search(const cli_settings *s, const bus_sec *sec, const char *token, int64_t from_ns,
               int64_t to_ns, const char *const *words, int nwords);

#endif
