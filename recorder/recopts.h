/* recopts.h - the recorder's settings and its option table: what
 * mscope-recorderd reads from its command line and --config file
 * (config.h), and what `--help` prints. One table, read by the recorder
 * and by the fuzz target of the configuration parser (tests/fuzz). */
#ifndef MSCOPE_RECOPTS_H
#define MSCOPE_RECOPTS_H

#include "config.h"

#include <stdint.h>

typedef struct rec_settings {
    char *data_dir, *read, *decap, *listen, *interface, *capture_filter, *log_level, *stats_file,
        *flows_json, *app_json, *app_dns_ports, *node_id, *coordinator, *search_endpoint,
        *search, *search_token_file, *http, *key_file, *coordinator_key, *user, *http_cert,
        *http_key, *metrics_token_file;
    int64_t vxlan_port, rx_threads, rcvbuf, segment_size, segment_age, max_disk, min_free,
        flush_interval, queue_batches, stats_interval, max_flows, flow_interval, flow_idle,
        flow_grace, bus_queue, max_searches, drain_time, app_flows, app_dns_timeout;
    int no_analysis, insecure, seccomp, app;
} rec_settings;

/* Every option, ending with a zeroed entry. */
extern const config_opt rec_opts[];

#endif
