/* cli.h - the settings of `mscope` shared by its commands. */
#ifndef MSCOPE_CLI_H
#define MSCOPE_CLI_H

#include "bus.h"
#include "mirrorscope.pb-c.h"

#include <stdint.h>

#define CLI_MAX_ARGS 64

typedef struct cli_settings {
    char *coordinator, *token_file, *key_file, *coordinator_key, *role, *from, *to, *since, *host, *order, *node, *by, *metric;
    char *write, *nodes, *server, *client, *monitor, *name, *uri, *code;
    int64_t limit, port, proto, timeout, min_rtt;
    int64_t max_packets, max_bytes, dedup_window, node_timeout;
    int json, retrans, dedup, allow_partial, quiet, insecure, errors, top, by_minute;
} cli_settings;

/* One RPC to the coordinator. Returns 0 with *resp (free it with
 * mirrorscope__response__free_unpacked), or the exit status after saying
 * why on stderr: 1 unreachable or failed, 2 refused as bad (or no such
 * thing, or a name taken), 3 authentication refused. */
int cli_call(const cli_settings *s, const bus_sec *sec, Mirrorscope__Request *req,
             Mirrorscope__Response **resp);

/* `mscope search`: words are the filter expression; sec NULL for plain
 * ZeroMQ. flows_of non-NULL: `mscope flows ... -w FILE`, the packets of the
 * flows it selects (drill-down; from/to are then its). Returns the exit
 * status. */
/* `mscope monitors OP [NAME [KEY=VALUE...]]` (monitors.c): words follow
 * "monitors". Returns the exit status. */
int cli_monitors(const cli_settings *s, const bus_sec *sec, const char *token, int64_t from_ns,
                 int64_t to_ns, const char *const *words, int nwords);

/* --server IP[/LEN][:PORT] (an IPv6 address with a port in brackets) into
 * its address part (out) and port (0 without). Returns 0, or -1 said. */
int cli_parse_server(const char *v, char *out, size_t outlen, uint32_t *port);

/* `mscope dns|tls|http` (app.c): application records of that kind, or with
 * --top their aggregates. Returns the exit status. */
int cli_app(const cli_settings *s, const bus_sec *sec, const char *token, const char *kind,
            int64_t from_ns, int64_t to_ns);

int cli_search(const cli_settings *s, const bus_sec *sec, const char *token, int64_t from_ns,
               int64_t to_ns, const char *const *words, int nwords,
               Mirrorscope__QueryFlows *flows_of);

#endif
