/* bropts.c - the broker's option table (bropts.h). */
#include "bropts.h"

#include "ctl.h"

#include <stddef.h>

#define O(f) offsetof(br_settings, f)
static const config_opt table[] = {
    { "listen", 'l', CFG_STR, O(listen), "0.0.0.0:4789", 0, 0, "ADDR:PORT", "receive VXLAN over UDP here (unless --interface or --read)" },
    { "interface", 'i', CFG_STR, O(interface), NULL, 0, 0, "IF", "capture from a live interface instead" },
    { "capture-filter", 'f', CFG_STR, O(capture_filter), NULL, 0, 0, "EXPR", "tcpdump filter applied at capture (--interface)" },
    { "read", 'r', CFG_STR, O(read), NULL, 0, 0, "FILE", "read a pcap/pcapng file, flush the outputs, exit" },
    { "read-rate", 0, CFG_INT, O(read_rate), "0", 0, 100000000, "PPS", "--read: replay at this many packets per second (0 = as fast as possible)" },
    { "decap", 0, CFG_STR, O(decap), "none", 0, 0, "none|vxlan", "frames read from a file or interface are VXLAN-in-UDP: use the inner frames (others are dropped and counted)" },
    { "vxlan-port", 0, CFG_INT, O(vxlan_port), "4789", 1, 65535, "PORT", "UDP port recognised by --decap vxlan" },
    { "rcvbuf", 0, CFG_SIZE, O(rcvbuf), "64M", 65536, 1LL << 31, "SIZE", "UDP socket receive buffer" },
    { "dedup", 0, CFG_BOOL, O(dedup), "no", 0, 0, NULL, "drop a packet seen again within --dedup-window (both ends mirrored)" },
    { "dedup-window", 0, CFG_DURATION, O(dedup_window), "10ms", 1000, 60000000000LL, "DURATION", "how long a packet is remembered for --dedup" },
    { "dedup-table", 0, CFG_INT, O(dedup_table), "65536", 64, 1LL << 28, "N", "packets remembered at once for --dedup (fixed memory: 16 bytes each)" },
    { "strip-vlan", 0, CFG_BOOL, O(strip_vlan), "no", 0, 0, NULL, "remove 802.1Q/802.1ad VLAN tags from every frame before the tools see it" },
    { "http", 0, CFG_STR, O(http), NULL, 0, 0, "ADDR:PORT", "HTTP: /healthz, /readyz, /metrics (Prometheus); off disables (default: 0.0.0.0:8082; with --read: off)" },
    CTL_TLS_OPTS(br_settings, http_cert, http_key),
    CTL_METRICS_OPTS(br_settings, metrics_token_file),
    { "stats-file", 0, CFG_STR, O(stats_file), NULL, 0, 0, "FILE", "keep every counter here as JSON, rewritten each second (default: none)" },
    { "stats-interval", 0, CFG_DURATION, O(stats_interval), "60s", 1000000000LL, 0, "DURATION", "log the counters this often" },
    { "log-level", 0, CFG_STR, O(log_level), "info", 0, 0, "LEVEL", "error, warn, info or debug" },
    { "check", 0, CFG_BOOL, O(check), "no", 0, 0, NULL, "validate the configuration file, print a summary and exit" },
    { "user", 0, CFG_STR, O(user), NULL, 0, 0, "NAME", "as root: become this user at start (with --interface keeping only CAP_NET_RAW)" },
    { "seccomp", 0, CFG_BOOL, O(seccomp), "yes", 0, 0, NULL, "allow only the system calls the broker makes, once it runs (--seccomp=no to turn off)" },
    { NULL, 0, 0, 0, NULL, 0, 0, NULL, NULL },
};
#undef O

_Static_assert(sizeof table / sizeof table[0] == BR_NOPTS, "BR_NOPTS counts the table");
const config_opt *const br_opts = table;
