/* recopts.c - the recorder's option table (recopts.h). */
#include "recopts.h"

#include "ctl.h"

#include <stddef.h>

#define O(f) offsetof(rec_settings, f)
const config_opt rec_opts[] = {
    { "data-dir", 'd', CFG_STR, O(data_dir), NULL, 0, 0, "DIR", "store segments and indexes in DIR (required)" },
    { "read", 'r', CFG_STR, O(read), NULL, 0, 0, "FILE", "import a pcap/pcapng file, then exit" },
    { "decap", 0, CFG_STR, O(decap), "none", 0, 0, "none|vxlan", "frames read from a file or interface are VXLAN-in-UDP: store the inner frames" },
    { "listen", 'l', CFG_STR, O(listen), "0.0.0.0:4789", 0, 0, "ADDR:PORT", "receive VXLAN over UDP here (daemon mode)" },
    { "interface", 'i', CFG_STR, O(interface), NULL, 0, 0, "IF", "capture from a live interface instead of UDP" },
    { "capture-filter", 'f', CFG_STR, O(capture_filter), NULL, 0, 0, "EXPR", "tcpdump filter applied at capture (--interface)" },
    { "vxlan-port", 0, CFG_INT, O(vxlan_port), "4789", 1, 65535, "PORT", "UDP port recognised when decapsulating frames (--decap vxlan)" },
    { "rx-threads", 0, CFG_INT, O(rx_threads), "1", 1, 64, "N", "UDP receive threads sharing the port (SO_REUSEPORT)" },
    { "rcvbuf", 0, CFG_SIZE, O(rcvbuf), "64M", 65536, 1LL << 31, "SIZE", "UDP socket receive buffer" },
    { "segment-size", 0, CFG_SIZE, O(segment_size), "256M", 65536, 0xffffffffLL, "SIZE", "roll segments at this size (at most 4G)" },
    { "segment-age", 0, CFG_DURATION, O(segment_age), "60s", 1000000LL, 0, "DURATION", "roll a segment this long after it opened" },
    { "max-disk", 0, CFG_SIZE, O(max_disk), "0", 0, 0, "SIZE", "delete the oldest segments beyond this many bytes (0 = no limit)" },
    { "min-free", 0, CFG_SIZE, O(min_free), "1G", 0, 0, "SIZE", "delete the oldest segments to keep this much disk free (0 = off)" },
    { "flush-interval", 0, CFG_DURATION, O(flush_interval), "200ms", 1000000LL, 0, "DURATION", "write buffered packets at least this often (search sees them then)" },
    { "queue-batches", 0, CFG_INT, O(queue_batches), "128", 4, 65536, "N", "batches (512 packets / 512 KiB each) between receive and writer" },
    { "stats-interval", 0, CFG_DURATION, O(stats_interval), "60s", 1000000000LL, 0, "DURATION", "log counters this often" },
    { "stats-file", 0, CFG_STR, O(stats_file), NULL, 0, 0, "FILE", "where to keep the counters as JSON (default: DIR/stats.json)" },
    { "flows-json", 0, CFG_STR, O(flows_json), NULL, 0, 0, "FILE", "print one JSON object per final flow record (- = stdout); with --read, --data-dir becomes optional" },
    { "app-json", 0, CFG_STR, O(app_json), NULL, 0, 0, "FILE", "print one JSON object per application transaction - DNS query, TLS handshake, HTTP request (docs/APP_ANALYTICS.md) - (- = stdout); with --read, --data-dir becomes optional" },
    { "app", 0, CFG_BOOL, O(app), "yes", 0, 0, NULL, "application records (DNS, TLS, HTTP/1.x) for --app-json and the coordinator (--app=no: none, and no cost)" },
    { "app-dns-ports", 0, CFG_STR, O(app_dns_ports), "53,5353", 0, 0, "PORTS", "UDP and TCP ports whose flows are DNS, comma-separated (TLS and HTTP are told from their bytes, on any port)" },
    { "app-dns-timeout", 0, CFG_DURATION, O(app_dns_timeout), "10s", 1000000LL, 0, "DURATION", "a DNS query without a response is recorded as unanswered this long after it (packet time)" },
    { "app-flows", 0, CFG_INT, O(app_flows), "16384", 1, 1000000, "N", "flows followed at once for application transactions (~20 KB of address space each, touched only while in use); a DNS, TLS or HTTP flow beyond is not followed (counted)" },
    { "coordinator", 'C', CFG_STR, O(coordinator), NULL, 0, 0, "ENDPOINT", "publish flow records and heartbeats to the coordinator's bus, e.g. tcp://10.0.0.9:5556" },
    { "bus-queue", 0, CFG_INT, O(bus_queue), "100000", 10, 100000000, "N", "flow records held for the coordinator (while it is away or slow); beyond, records are shed and counted" },
    { "search", 0, CFG_STR, O(search), "tcp://0.0.0.0:5557", 0, 0, "ENDPOINT", "answer the coordinator's searches here (daemon mode; \"off\" disables)" },
    { "search-token-file", 0, CFG_STR, O(search_token_file), NULL, 0, 0, "FILE", "the cluster's search token, which every search must carry (default: DIR/search.token; without it the search service stays off)" },
    { "search-endpoint", 0, CFG_STR, O(search_endpoint), NULL, 0, 0, "ENDPOINT", "search address announced in heartbeats (default: --search with a wildcard address replaced by the host name)" },
    { "max-searches", 0, CFG_INT, O(max_searches), "4", 1, 64, "N", "searches served at once; more are refused as busy" },
    { "key-file", 0, CFG_STR, O(key_file), NULL, 0, 0, "FILE", "this recorder's CURVE key pair (default: DIR/curve.key, created 0600 with DIR/curve.pub if missing: put curve.pub in the coordinator's allowed keys)" },
    { "coordinator-key", 0, CFG_STR, O(coordinator_key), NULL, 0, 0, "FILE", "the coordinator's public key (default: DIR/coordinator.pub, a copy of the coordinator's curve.pub): the bus is encrypted to it, and only it may search" },
    { "insecure", 0, CFG_BOOL, O(insecure), NULL, 0, 0, NULL, "plain ZeroMQ on the bus and the search service: unencrypted, and no key needed to connect" },
    { "node-id", 0, CFG_STR, O(node_id), NULL, 0, 0, "NAME", "this recorder's name in flow records (default: host name and VXLAN port)" },
    { "max-flows", 0, CFG_INT, O(max_flows), "1000000", 1, 100000000, "N", "flows tracked at once; when full the least recently active is closed early (counted)" },
    { "flow-interval", 0, CFG_DURATION, O(flow_interval), "10s", 1000000LL, 0, "DURATION", "interim record of a long flow this often" },
    { "flow-idle", 0, CFG_DURATION, O(flow_idle), "60s", 1000000LL, 0, "DURATION", "final record after a flow is idle this long" },
    { "flow-grace", 0, CFG_DURATION, O(flow_grace), "5s", 0, 0, "DURATION", "final record this long after a TCP close (FIN both ways, or RST)" },
    { "no-analysis", 0, CFG_BOOL, O(no_analysis), NULL, 0, 0, NULL, "store only: no flow table, no records" },
    { "http", 0, CFG_STR, O(http), "0.0.0.0:8081", 0, 0, "ADDR:PORT", "HTTP (daemon mode): /healthz and /readyz for load balancers, /metrics for Prometheus; off disables" },
    CTL_TLS_OPTS(rec_settings, http_cert, http_key),
    CTL_METRICS_OPTS(rec_settings, metrics_token_file),
    { "drain-time", 0, CFG_DURATION, O(drain_time), "15s", 0, 0, "DURATION", "on SIGTERM, keep recording this long with /readyz at 503 (the load balancer's deregistration delay), then stop" },
    { "user", 0, CFG_STR, O(user), NULL, 0, 0, "NAME", "as root: become this user at start, before anything is created (with --interface keeping only CAP_NET_RAW)" },
    { "seccomp", 0, CFG_BOOL, O(seccomp), "yes", 0, 0, NULL, "daemon: allow only the system calls the recorder makes, once it runs (--seccomp=no to turn off)" },
    { "log-level", 0, CFG_STR, O(log_level), "info", 0, 0, "LEVEL", "error, warn, info or debug" },
    { NULL, 0, 0, 0, NULL, 0, 0, NULL, NULL },
};
#undef O
