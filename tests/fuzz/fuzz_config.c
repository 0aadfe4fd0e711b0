/* fuzz_config.c - the option parser every daemon reads its configuration
 * file and its command line with (common/config.c).
 *
 * An input is a configuration file ("key = value" lines), read with
 * config_load_file() into the recorder's settings. The same bytes, split at
 * newlines, are then an argument vector for config_parse_args(), except
 * --config, which would read whatever file the input names. The option
 * table is a copy of recorder/main.c's (static there): every type and
 * range the daemons use. Values that are accepted must be in range.
 */
#include "config.h"
#include "fuzz.h"

#include <stddef.h>
#include <string.h>

typedef struct rec_settings {
    char *data_dir, *read, *decap, *listen, *interface, *capture_filter, *log_level, *stats_file,
        *flows_json, *node_id, *coordinator, *search_endpoint,
        *search, *search_token_file, *http, *key_file, *coordinator_key;
    int64_t vxlan_port, rx_threads, rcvbuf, segment_size, segment_age, max_disk, min_free,
        flush_interval, queue_batches, stats_interval, max_flows, flow_interval, flow_idle,
        flow_grace, bus_queue, max_searches, drain_time;
    int no_analysis, insecure;
} rec_settings;

#define O(f) offsetof(rec_settings, f)
static const config_opt rec_opts[] = {
    { "data-dir", 'd', CFG_STR, O(data_dir), NULL, 0, 0, "DIR", "" },
    { "read", 'r', CFG_STR, O(read), NULL, 0, 0, "FILE", "" },
    { "decap", 0, CFG_STR, O(decap), "none", 0, 0, "none|vxlan", "" },
    { "listen", 'l', CFG_STR, O(listen), "0.0.0.0:4789", 0, 0, "ADDR:PORT", "" },
    { "interface", 'i', CFG_STR, O(interface), NULL, 0, 0, "IF", "" },
    { "capture-filter", 'f', CFG_STR, O(capture_filter), NULL, 0, 0, "EXPR", "" },
    { "vxlan-port", 0, CFG_INT, O(vxlan_port), "4789", 1, 65535, "PORT", "" },
    { "rx-threads", 0, CFG_INT, O(rx_threads), "1", 1, 64, "N", "" },
    { "rcvbuf", 0, CFG_SIZE, O(rcvbuf), "64M", 65536, 1LL << 31, "SIZE", "" },
    { "segment-size", 0, CFG_SIZE, O(segment_size), "256M", 65536, 0xffffffffLL, "SIZE", "" },
    { "segment-age", 0, CFG_DURATION, O(segment_age), "60s", 1000000LL, 0, "DURATION", "" },
    { "max-disk", 0, CFG_SIZE, O(max_disk), "0", 0, 0, "SIZE", "" },
    { "min-free", 0, CFG_SIZE, O(min_free), "1G", 0, 0, "SIZE", "" },
    { "flush-interval", 0, CFG_DURATION, O(flush_interval), "200ms", 1000000LL, 0, "DURATION", "" },
    { "queue-batches", 0, CFG_INT, O(queue_batches), "128", 4, 65536, "N", "" },
    { "stats-interval", 0, CFG_DURATION, O(stats_interval), "60s", 1000000000LL, 0, "DURATION", "" },
    { "stats-file", 0, CFG_STR, O(stats_file), NULL, 0, 0, "FILE", "" },
    { "flows-json", 0, CFG_STR, O(flows_json), NULL, 0, 0, "FILE", "" },
    { "coordinator", 'C', CFG_STR, O(coordinator), NULL, 0, 0, "ENDPOINT", "" },
    { "bus-queue", 0, CFG_INT, O(bus_queue), "100000", 10, 100000000, "N", "" },
    { "search", 0, CFG_STR, O(search), "tcp://0.0.0.0:5557", 0, 0, "ENDPOINT", "" },
    { "search-token-file", 0, CFG_STR, O(search_token_file), NULL, 0, 0, "FILE", "" },
    { "search-endpoint", 0, CFG_STR, O(search_endpoint), NULL, 0, 0, "ENDPOINT", "" },
    { "max-searches", 0, CFG_INT, O(max_searches), "4", 1, 64, "N", "" },
    { "key-file", 0, CFG_STR, O(key_file), NULL, 0, 0, "FILE", "" },
    { "coordinator-key", 0, CFG_STR, O(coordinator_key), NULL, 0, 0, "FILE", "" },
    { "insecure", 0, CFG_BOOL, O(insecure), NULL, 0, 0, NULL, "" },
    { "node-id", 0, CFG_STR, O(node_id), NULL, 0, 0, "NAME", "" },
    { "max-flows", 0, CFG_INT, O(max_flows), "1000000", 1, 100000000, "N", "" },
    { "flow-interval", 0, CFG_DURATION, O(flow_interval), "10s", 1000000LL, 0, "DURATION", "" },
    { "flow-idle", 0, CFG_DURATION, O(flow_idle), "60s", 1000000LL, 0, "DURATION", "" },
    { "flow-grace", 0, CFG_DURATION, O(flow_grace), "5s", 0, 0, "DURATION", "" },
    { "no-analysis", 0, CFG_BOOL, O(no_analysis), NULL, 0, 0, NULL, "" },
    { "http", 0, CFG_STR, O(http), "0.0.0.0:8081", 0, 0, "ADDR:PORT", "" },
    { "drain-time", 0, CFG_DURATION, O(drain_time), "15s", 0, 0, "DURATION", "" },
    { "log-level", 0, CFG_STR, O(log_level), "info", 0, 0, "LEVEL", "" },
    { NULL, 0, 0, 0, NULL, 0, 0, NULL, NULL },
};
#undef O

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
