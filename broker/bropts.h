/* bropts.h - the broker's global settings and their option table: what
 * mscope-broker reads from its command line and the top of its
 * configuration file (brconfig.h reads the sections after), and what
 * `--help` prints. One table, read by the broker and by the fuzz target of
 * its configuration file (tests/fuzz). */
#ifndef MSCOPE_BROPTS_H
#define MSCOPE_BROPTS_H

#include "config.h"

#include <stdint.h>

typedef struct br_settings {
    char *listen, *interface, *capture_filter, *read, *decap, *http, *stats_file, *log_level, *user,
        *http_cert, *http_key, *metrics_token_file;
    int64_t vxlan_port, rcvbuf, read_rate, dedup_window, dedup_table, stats_interval;
    int dedup, strip_vlan, check, seccomp;
} br_settings;

/* Every option, ending with a zeroed entry: BR_NOPTS entries in all (the
 * size of a config_origin array for them). */
#define BR_NOPTS 23
extern const config_opt *const br_opts;

#endif
