/* main.c - mscope, the command line client of the coordinator's RPC API.
 *
 *   mscope nodes                      the recorders the coordinator knows
 *   mscope flows [filters]            flow records (TCP analysis) from PostgreSQL
 *   mscope flows [filters] -w FILE    the packets of exactly those flows (drill-down)
 *   mscope top [--by server|client] [--metric bytes|packets|flows|retransmissions]
 *   mscope series [--host IP --port N --node NAME]   per-minute time series
 *   mscope monitors list|show|create|set|delete|series   monitors (monitors.c)
 *   mscope dns|tls|http [filters] [--top]   application records, or their aggregates (app.c)
 *
 * Exit status: 0 success; 1 the coordinator failed or cannot be reached;
 * 2 bad usage or a request it refused as bad; 3 authentication refused.
 */
#include "bus.h"
#include "config.h"
#include "flowkey.h"
#include "flowpb.h"
#include "log.h"
#include "mirrorscope.pb-c.h"
#include "timeparse.h"
#include "token.h"
#include "xmalloc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

#define O(f) offsetof(cli_settings, f)
static const config_opt cli_opts[] = {
    { "coordinator", 'C', CFG_STR, O(coordinator), "tcp://127.0.0.1:5555", 0, 0, "ENDPOINT", "the coordinator's RPC address" },
    { "token-file", 'k', CFG_STR, O(token_file), NULL, 0, 0, "FILE", "the coordinator's token file (default: $MSCOPE_TOKEN_FILE, else /var/lib/mscope/coordinator/rpc.token)" },
    { "key-file", 0, CFG_STR, O(key_file), NULL, 0, 0, "FILE", "our CURVE key pair, whose .pub the coordinator allows (default: $MSCOPE_KEY_FILE, else /var/lib/mscope/coordinator/client.key)" },
    { "role", 0, CFG_STR, O(role), NULL, 0, 0, "ROLE", "keygen (required, no default): what the key is for, written in NAME.pub: recorder (publishes flow records on the coordinator's bus) or client (uses its RPC, as this CLI does); \"recorder,client\" for both; none (no role line) for a server's own pair, which no allow-list holds" },
    { "coordinator-key", 0, CFG_STR, O(coordinator_key), NULL, 0, 0, "FILE", "the coordinator's public key (default: $MSCOPE_COORDINATOR_KEY, else /var/lib/mscope/coordinator/curve.pub)" },
    { "insecure", 0, CFG_BOOL, O(insecure), NULL, 0, 0, NULL, "plain ZeroMQ, for a coordinator run with --insecure" },
    { "json", 'j', CFG_BOOL, O(json), NULL, 0, 0, NULL, "JSON for scripts (flows: an array of --flows-json objects; dns/tls/http: one object per line, the recorder's --app-json fields)" },
    { "from", 0, CFG_STR, O(from), NULL, 0, 0, "TIME", "first instant (RFC 3339, Unix seconds, or a duration ago); default: 1h ago" },
    { "to", 0, CFG_STR, O(to), NULL, 0, 0, "TIME", "end instant, exclusive; default: now" },
    { "since", 0, CFG_STR, O(since), NULL, 0, 0, "DURATION", "same as --from DURATION" },
    { "limit", 'n', CFG_INT, O(limit), "0", 0, 100000, "N", "rows at most; 0 = the command's default (flows 100, top 10; flows -w 10000, at most 100000; dns/tls/http 100, --top 20)" },
    { "host", 0, CFG_STR, O(host), NULL, 0, 0, "IP", "flows/series: client or server address" },
    { "port", 0, CFG_INT, O(port), "0", 0, 65535, "N", "flows/series/dns/tls/http: client or server port (--top: server port)" },
    { "proto", 0, CFG_INT, O(proto), "0", 0, 255, "N", "flows: IP protocol (6 tcp, 17 udp)" },
    { "min-rtt", 0, CFG_DURATION, O(min_rtt), "0", 0, 0, "DURATION", "flows: mean ACK RTT at least this" },
    { "retrans", 0, CFG_BOOL, O(retrans), NULL, 0, 0, NULL, "flows: only flows with retransmissions" },
    { "order", 0, CFG_STR, O(order), "first", 0, 0, "KEY", "flows: first, last, bytes, packets, rtt, retransmissions" },
    { "node", 0, CFG_STR, O(node), NULL, 0, 0, "NAME", "flows/series/dns/tls/http: one recorder" },
    { "server", 0, CFG_STR, O(server), NULL, 0, 0, "IP[/LEN][:PORT]", "flows/dns/tls/http: server address or network, and port ([IPv6]:PORT)" },
    { "client", 0, CFG_STR, O(client), NULL, 0, 0, "IP[/LEN]", "flows/dns/tls/http: client address or network" },
    { "name", 0, CFG_STR, O(name), NULL, 0, 0, "TEXT", "dns/tls/http: qname, SNI or Host containing TEXT, or matching it whole when it has * or ?" },
    { "uri", 0, CFG_STR, O(uri), NULL, 0, 0, "TEXT", "http: URI containing TEXT, or matching it whole when it has * or ? (--top: the endpoint, the URI's path)" },
    { "code", 0, CFG_STR, O(code), NULL, 0, 0, "N", "dns: rcode N; http: status N, or a class such as 5xx" },
    { "errors", 0, CFG_BOOL, O(errors), NULL, 0, 0, NULL, "dns/tls/http: only errors (DNS rcode not 0 or unanswered; TLS no ServerHello; HTTP status >= 500 or no response)" },
    { "top", 0, CFG_BOOL, O(top), NULL, 0, 0, NULL, "dns/tls/http: per server name (and HTTP endpoint) and server: records, errors, response time p50/p95/p99, from the per-minute aggregates; most records first" },
    { "by-minute", 0, CFG_BOOL, O(by_minute), NULL, 0, 0, NULL, "dns/tls/http --top: one row per minute too" },
    { "monitor", 0, CFG_STR, O(monitor), NULL, 0, 0, "NAME", "flows: the flows a monitor counts (with -w: its packets, its own expression applied)" },
    { "by", 0, CFG_STR, O(by), "server", 0, 0, "SIDE", "top: server or client" },
    { "metric", 0, CFG_STR, O(metric), "bytes", 0, 0, "M", "top: bytes, packets, flows, retransmissions" },
    { "timeout", 0, CFG_DURATION, O(timeout), "10s", 1000000LL, 0, "DURATION", "how long to wait for the coordinator's answer (one that cannot be reached fails at once)" },
    { "write", 'w', CFG_STR, O(write), NULL, 0, 0, "FILE", "search: write the pcap here; - is stdout (required); flows: the packets of the flows selected, instead of the rows" },
    { "nodes", 0, CFG_STR, O(nodes), NULL, 0, 0, "A,B,...", "search: only these recorders (default: every live one)" },
    { "max-packets", 'c', CFG_INT, O(max_packets), "0", 0, 0, "N", "search: stop after N packets (0 = no limit)" },
    { "max-bytes", 0, CFG_SIZE, O(max_bytes), "0", 0, 0, "SIZE", "search: stop before SIZE captured bytes (0 = no limit)" },
    { "dedup", 0, CFG_BOOL, O(dedup), NULL, 0, 0, NULL, "search: drop a packet identical (IP datagram, TTL aside) to one seen within --dedup-window" },
    { "dedup-window", 0, CFG_DURATION, O(dedup_window), "1ms", 1, 0, "DURATION", "search: the dedup window" },
    { "node-timeout", 0, CFG_DURATION, O(node_timeout), "10s", 100000000LL, 0, "DURATION", "search: give up a recorder silent this long (the answer is then partial)" },
    { "allow-partial", 0, CFG_BOOL, O(allow_partial), NULL, 0, 0, NULL, "search: exit 0 even when some recorder did not answer completely" },
    { "quiet", 'q', CFG_BOOL, O(quiet), NULL, 0, 0, NULL, "search: no progress line or per-node summary" },
    { NULL, 0, 0, 0, NULL, 0, 0, NULL, NULL },
};
#undef O

static void usage(FILE *f)
{
    fprintf(f, "usage: mscope COMMAND [options]\n\n"
               "commands:\n"
               "  nodes     the recorders the coordinator knows, and their state\n"
               "  flows     flow records, newest analysis from every recorder; with -w FILE the\n"
               "            packets of exactly the flows selected, as one pcap (drill-down):\n"
               "            mscope flows --since 1h --server 10.0.3.7:443 --retrans -w slow.pcap\n"
               "  top       top talkers by bytes, packets, flows or retransmissions\n"
               "  series    per-minute time series\n"
               "  dns, tls, http   application records (one per DNS query, TLS handshake, HTTP\n"
               "            request), newest first; --top for their per-minute aggregates per name:\n"
               "            mscope http --since 15m --name api.example --code 5xx\n"
               "            mscope dns --top --errors\n"
               "  monitors  list | show NAME | create NAME [KEY=VALUE...] | set NAME [KEY=VALUE...] |\n"
               "            delete NAME | series NAME: named flow filters and their per-minute series;\n"
               "            keys server=NET client=NET port=N proto=tcp|udp|N nodes=A,B filter=EXPR\n"
               "  search    packets from every recorder, merged by time into one pcap:\n"
               "            mscope search --since 20m 'host 10.0.3.7 and tcp port 443' -w incident.pcap\n"
               "  keygen --role recorder|client NAME   write a new CURVE key pair to NAME.key\n"
               "            (0600) and its public half to NAME.pub, for a coordinator's allowed\n"
               "            keys: a recorder key is let in on its bus only, a client key on its\n"
               "            RPC only; --role has no default (none: a server's own pair)\n\n"
               "Time range (flows, top, series, search, dns, tls, http): --from/--since, --to; default:\n"
               "the last hour.\n\n"
               "exit status: 0 ok, 1 coordinator unreachable or failed, 2 bad usage or request,\n"
               "3 authentication refused, 4 search answer partial (some recorder did not answer\n"
               "completely; --allow-partial makes that 0)\n\noptions:\n");
    config_print_help(cli_opts, f);
}

/* --server IP[/LEN][:PORT] (an IPv6 address with a port in brackets) into
 * its address part (out) and port. Returns 0, or -1 said. */
int cli_parse_server(const char *v, char *out, size_t outlen, uint32_t *port)
{
    const char *colon = NULL;
    size_t alen = strlen(v);
    if (v[0] == '[') {
        const char *close = strchr(v, ']');
        if (!close || (close[1] && close[1] != ':')) goto bad;
        alen = (size_t)(close - v - 1);
        v++;
        colon = close[1] ? close + 1 : NULL;
    } else if ((colon = strchr(v, ':')) && strchr(colon + 1, ':')) {
        colon = NULL; /* IPv6 without a port */
    } else if (colon) {
        alen = (size_t)(colon - v);
    }
    if (!alen || alen >= outlen) goto bad;
    memcpy(out, v, alen);
    out[alen] = 0;
    *port = 0;
    if (colon) {
        char *end;
        errno = 0;
        unsigned long p = strtoul(colon + 1, &end, 10);
        if (!colon[1] || *end || errno || p < 1 || p > 65535) goto bad;
        *port = (uint32_t)p;
    }
    return 0;
bad:
    fprintf(stderr, "mscope: --server: '%s' is not IP[/LEN][:PORT] ([IPv6]:PORT for a port)\n", v);
    return -1;
}

int cli_call(const cli_settings *s, const bus_sec *sec, Mirrorscope__Request *req,
             Mirrorscope__Response **resp)
{
    char err[1024];
    size_t n = mirrorscope__request__get_packed_size(req);
    uint8_t *buf = xmalloc(n + 1);
    mirrorscope__request__pack(req, buf);
    void *reply = NULL;
    long got = bus_rpc_call(s->coordinator, sec, buf, n, &reply, (int)(s->timeout / 1000000), err,
                            sizeof err);
    free(buf);
    *resp = NULL;
    if (got < 0) {
        fprintf(stderr, "mscope: %s\n", err);
        return got == -EACCES ? 3 : 1;
    }
    Mirrorscope__Response *r = mirrorscope__response__unpack(NULL, (size_t)got, reply);
    free(reply);
    if (!r) {
        fprintf(stderr, "mscope: the coordinator's answer is not a Response\n");
        return 1;
    }
    int rc;
    switch (r->status) {
    case MIRRORSCOPE__RESPONSE__STATUS__OK: rc = 0; break;
    case MIRRORSCOPE__RESPONSE__STATUS__UNAUTHENTICATED: rc = 3; break;
    case MIRRORSCOPE__RESPONSE__STATUS__ERROR: rc = 1; break;
    default: rc = 2; break; /* bad request, no such monitor, a name taken */
    }
    if (rc) {
        fprintf(stderr, "mscope: %s\n", r->error && *r->error ? r->error : "request failed");
        mirrorscope__response__free_unpacked(r, NULL);
        return rc;
    }
    *resp = r;
    return 0;
}

static int read_token(const cli_settings *s, char tok[TOKEN_MAX])
{
    char err[1024];
    const char *path = s->token_file ? s->token_file : getenv("MSCOPE_TOKEN_FILE");
    if (!path) path = "/var/lib/mscope/coordinator/rpc.token";
    if (token_load(path, 0, tok, err, sizeof err) == 0) return 0;
    fprintf(stderr, "mscope: %s (use --token-file)\n", err);
    return -1;
}

/* The file named by an option, else an environment variable, else a default. */
static const char *cli_path(const char *given, const char *env, const char *def)
{
    return given ? given : getenv(env) ? getenv(env) : def;
}

/* CURVE: our pair and the coordinator's public key. Returns 0, or -1 said. */
static int read_keys(const cli_settings *s, bus_sec *sec)
{
    char err[1024];
    const char *kf = cli_path(s->key_file, "MSCOPE_KEY_FILE", "/var/lib/mscope/coordinator/client.key");
    const char *cf = cli_path(s->coordinator_key, "MSCOPE_COORDINATOR_KEY",
                              "/var/lib/mscope/coordinator/curve.pub");
    busauth_pair coord;
    memset(sec, 0, sizeof *sec);
    if (busauth_load(kf, 1, &sec->self, err, sizeof err) < 0) {
        fprintf(stderr, "mscope: %s (use --key-file; make a pair with 'mscope keygen --role client NAME' "
                        "and put NAME.pub in the coordinator's allowed keys)\n", err);
        return -1;
    }
    if (busauth_load(cf, 0, &coord, err, sizeof err) < 0) {
        fprintf(stderr, "mscope: %s (use --coordinator-key: a copy of the coordinator's "
                        "curve.pub)\n", err);
        return -1;
    }
    memcpy(sec->server_key, coord.pub, sizeof coord.pub);
    return 0;
}

/* `mscope keygen --role ROLES NAME`: NAME.key and NAME.pub (NAME may end in
 * .key), the role line in NAME.pub. Returns the exit status. */
static int keygen(const char *name, const char *role)
{
    char err[1024], keypath[4096], pubpath[4200];
    unsigned roles;
    if (!role) {
        fprintf(stderr, "mscope keygen: --role is required: --role recorder for a recorder's key "
                        "(let in on the coordinator's bus only), --role client for a CLI user's "
                        "(its RPC only)\n");
        return 2;
    }
    if (!strcmp(role, "none")) {
        roles = 0; /* a server's own pair: no allow-list is meant to hold it */
    } else if (busauth_roles_parse(role, &roles, err, sizeof err) < 0) {
        fprintf(stderr, "mscope keygen: --role %s: %s\n", role, err);
        return 2;
    }
    size_t n = strlen(name);
    if (n > 4 && !strcmp(name + n - 4, ".key")) snprintf(keypath, sizeof keypath, "%s", name);
    else snprintf(keypath, sizeof keypath, "%s.key", name);
    busauth_pub_path(keypath, pubpath, sizeof pubpath);
    busauth_pair kp;
    int ok = busauth_generate(&kp, err, sizeof err) == 0;
    kp.roles = roles;
    if (!ok || busauth_write(&kp, keypath, pubpath, err, sizeof err) < 0) {
        fprintf(stderr, "mscope keygen: %s\n", err);
        return 1;
    }
    printf("%s: the key pair (secret: keep it 0600)\n%s: its public key %s, role %s\n", keypath,
           pubpath, kp.pub, roles ? busauth_roles_str(roles) : "none");
    return 0;
}

static void ip_str(ProtobufCBinaryData ip, char *out, size_t len)
{
    if (ip.len == 4) inet_ntop(AF_INET, ip.data, out, (socklen_t)len);
    else if (ip.len == 16) inet_ntop(AF_INET6, ip.data, out, (socklen_t)len);
    else snprintf(out, len, "-");
}

static void fmt_time(int64_t ns, char *buf, size_t len)
{
    char full[64];
    timeparse_format(ns, full, sizeof full);
    snprintf(buf, len, "%.23s", full); /* to the millisecond */
}

/* A JSON value to stdout, one line, and its reference dropped. */
static void print_json(json_t *v)
{
    json_dumpf(v, stdout, JSON_COMPACT);
    putchar('\n');
    json_decref(v);
}

/* Its drops by reason as a JSON object of counts. */
static json_t *node_drops(const Mirrorscope__NodeInfo *n)
{
    json_t *o = json_object();
    for (size_t i = 0; i < n->n_drops; i++)
        json_object_set_new(o, n->drops[i]->key, json_integer((json_int_t)n->drops[i]->value));
    return o;
}

/* The span of packets it holds, "-" when it holds none. */
static void fmt_span(int64_t oldest_ns, int64_t newest_ns, char *buf, size_t len)
{
    double s = (double)(newest_ns - oldest_ns) / 1e9;
    if (!oldest_ns || newest_ns < oldest_ns) snprintf(buf, len, "-");
    else if (s < 120) snprintf(buf, len, "%.0fs", s);
    else if (s < 7200) snprintf(buf, len, "%.0fm", s / 60);
    else if (s < 172800) snprintf(buf, len, "%.1fh", s / 3600);
    else snprintf(buf, len, "%.1fd", s / 86400);
}

static void print_nodes(const Mirrorscope__Response *r, int json)
{
    if (json) {
        /* Strings here came from recorders over the network: jansson escapes them. */
        json_t *a = json_array();
        for (size_t i = 0; i < r->n_nodes; i++) {
            const Mirrorscope__NodeInfo *n = r->nodes[i];
            json_array_append_new(
                a, json_pack("{s:s, s:s, s:I, s:I, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:o, "
                             "s:o, s:I, s:I, s:I}",
                             "node", n->node, "state", n->state, "start_ns", (json_int_t)n->start_ns,
                             "last_seen_ns", (json_int_t)n->last_seen_ns, "version", n->version,
                             "search_endpoint", n->search_endpoint, "rx_packets",
                             (json_int_t)n->rx_packets, "stored_packets", (json_int_t)n->stored_packets,
                             "flows_active", (json_int_t)n->flows_active, "records_published",
                             (json_int_t)n->records_published, "records_shed",
                             (json_int_t)n->records_shed, "gaps", (json_int_t)n->gaps,
                             "clock_offset_ns", n->clock_offset_known
                                 ? json_integer((json_int_t)n->clock_offset_ns) : json_null(),
                             "drops", node_drops(n), "disk_used", (json_int_t)n->disk_used,
                             "oldest_ns", (json_int_t)n->oldest_ns, "newest_ns",
                             (json_int_t)n->newest_ns));
        }
        print_json(a);
        return;
    }
    printf("%-24s %-6s %-23s %12s %12s %8s %10s %9s %7s %6s %9s  %s\n", "NODE", "STATE", "LAST SEEN",
           "RX PACKETS", "STORED", "FLOWS", "DROPS", "DISK", "HELD", "GAPS", "CLOCK", "SEARCH");
    for (size_t i = 0; i < r->n_nodes; i++) {
        const Mirrorscope__NodeInfo *n = r->nodes[i];
        char t[40], clk[32] = "-", disk[32], held[32];
        uint64_t drops = 0;
        for (size_t k = 0; k < n->n_drops; k++) drops += n->drops[k]->value;
        fmt_time(n->last_seen_ns, t, sizeof t);
        if (n->clock_offset_known) snprintf(clk, sizeof clk, "%+.1fs", (double)n->clock_offset_ns / 1e9);
        if (n->disk_used >= 1000000000) snprintf(disk, sizeof disk, "%.1fG", (double)n->disk_used / 1e9);
        else snprintf(disk, sizeof disk, "%.1fM", (double)n->disk_used / 1e6);
        fmt_span(n->oldest_ns, n->newest_ns, held, sizeof held);
        printf("%-24s %-6s %-23s %12" PRIu64 " %12" PRIu64 " %8" PRIu64 " %10" PRIu64
               " %9s %7s %6" PRIu64 " %9s  %s\n", n->node, n->state, t, n->rx_packets,
               n->stored_packets, n->flows_active, drops, disk, held, n->gaps, clk,
               n->search_endpoint);
    }
    /* Which reasons, when any: the column above is their sum. */
    for (size_t i = 0; i < r->n_nodes; i++) {
        const Mirrorscope__NodeInfo *n = r->nodes[i];
        for (size_t k = 0; k < n->n_drops; k++)
            if (n->drops[k]->value)
                printf("  %s dropped %" PRIu64 " packets: %s\n", n->node, n->drops[k]->value,
                       n->drops[k]->key);
    }
}

static void print_flows(const Mirrorscope__Response *r, int json)
{
    if (json) {
        printf("[");
        for (size_t i = 0; i < r->n_flows; i++) {
            flowrec rec;
            char line[4096];
            flowpb_read(&rec, r->flows[i]->record); /* printed by the recorder's writer */
            int n = flowrec_json(&rec, r->flows[i]->node, line, sizeof line);
            if (n > 0) printf("%s%.*s", i ? ",\n" : "", n, line); /* not NUL-terminated */
        }
        printf("]\n");
        return;
    }
    printf("%-23s %-16s %-28s %-28s %5s %8s %10s %5s %9s %-5s\n", "FIRST", "NODE", "CLIENT", "SERVER",
           "PROTO", "PACKETS", "BYTES", "RETX", "RTT ms", "STATE");
    for (size_t i = 0; i < r->n_flows; i++) {
        const Mirrorscope__FlowRecord *m = r->flows[i]->record;
        char t[40], c[64], s[64], ce[80], se[80], rtt[16] = "-";
        fmt_time(m->first_ns, t, sizeof t);
        ip_str(m->client->ip, c, sizeof c);
        ip_str(m->server->ip, s, sizeof s);
        snprintf(ce, sizeof ce, "%s:%u", c, m->client->port);
        snprintf(se, sizeof se, "%s:%u", s, m->server->port);
        uint64_t cnt = m->c2s->rtt_ns->count + m->s2c->rtt_ns->count;
        if (cnt)
            snprintf(rtt, sizeof rtt, "%.3f",
                     (double)(m->c2s->rtt_ns->sum + m->s2c->rtt_ns->sum) / (double)cnt / 1e6);
        printf("%-23s %-16.16s %-28s %-28s %5u %8" PRIu64 " %10" PRIu64 " %5u %9s %-5s\n", t,
               r->flows[i]->node, ce, se, m->proto, m->c2s->packets + m->s2c->packets,
               m->c2s->ip_bytes + m->s2c->ip_bytes,
               m->c2s->retransmissions + m->s2c->retransmissions, rtt, m->conn_state);
    }
}

static void print_talkers(const Mirrorscope__Response *r, int json)
{
    json_t *a = json ? json_array() : NULL;
    if (!json)
        printf("%-40s %10s %12s %14s %8s\n", "ENDPOINT", "FLOWS", "PACKETS", "BYTES", "RETX");
    for (size_t i = 0; i < r->n_talkers; i++) {
        const Mirrorscope__TalkerRow *t = r->talkers[i];
        char ip[64], ep[80];
        ip_str(t->ip, ip, sizeof ip);
        if (t->port) snprintf(ep, sizeof ep, "%s:%u", ip, t->port);
        else snprintf(ep, sizeof ep, "%s", ip);
        if (json)
            json_array_append_new(a, json_pack("{s:s, s:I, s:I, s:I, s:I, s:I}", "ip", ip, "port",
                                               (json_int_t)t->port, "flows", (json_int_t)t->flows,
                                               "packets", (json_int_t)t->packets, "bytes",
                                               (json_int_t)t->bytes, "retransmissions",
                                               (json_int_t)t->retransmissions));
        else
            printf("%-40s %10" PRIu64 " %12" PRIu64 " %14" PRIu64 " %8" PRIu64 "\n", ep, t->flows,
                   t->packets, t->bytes, t->retransmissions);
    }
    if (json) print_json(a);
}

static void print_series(const Mirrorscope__Response *r, int json)
{
    json_t *a = json ? json_array() : NULL;
    if (!json)
        printf("%-23s %8s %12s %14s %8s %10s\n", "MINUTE", "FLOWS", "PACKETS", "BYTES", "RETX", "RTT ms");
    for (size_t i = 0; i < r->n_minutes; i++) {
        const Mirrorscope__MinuteRow *m = r->minutes[i];
        if (json) {
            json_array_append_new(
                a, json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "minute_ns",
                             (json_int_t)m->minute_ns, "flows", (json_int_t)m->flows, "packets",
                             (json_int_t)m->packets, "bytes", (json_int_t)m->bytes,
                             "retransmissions", (json_int_t)m->retransmissions, "rtt_sum",
                             (json_int_t)m->rtt_sum, "rtt_count", (json_int_t)m->rtt_count,
                             "app_sum", (json_int_t)m->app_sum, "app_count",
                             (json_int_t)m->app_count));
        } else {
            char t[40], rtt[16] = "-";
            fmt_time(m->minute_ns, t, sizeof t);
            if (m->rtt_count) snprintf(rtt, sizeof rtt, "%.3f", (double)m->rtt_sum / (double)m->rtt_count / 1e6);
            printf("%-23s %8" PRIu64 " %12" PRIu64 " %14" PRIu64 " %8" PRIu64 " %10s\n", t, m->flows,
                   m->packets, m->bytes, m->retransmissions, rtt);
        }
    }
    if (json) print_json(a);
}

int main(int argc, char **argv)
{
    cli_settings s;
    memset(&s, 0, sizeof s);
    log_init("mscope");
    char err[1024], token[TOKEN_MAX];
    const char *pos[CLI_MAX_ARGS];
    int npos = 0, help = 0, rc = 2;
    if (config_defaults(cli_opts, &s) < 0) return 2;
    if (config_parse_args(cli_opts, &s, argc, argv, 1, pos, CLI_MAX_ARGS, &npos, &help, err, sizeof err) < 0) {
        fprintf(stderr, "mscope: %s\n", err);
        goto out;
    }
    if (help || npos == 0) {
        usage(help ? stdout : stderr);
        rc = help ? 0 : 2;
        goto out;
    }
    const char *cmd = pos[0];
    if (!strcmp(cmd, "keygen")) {
        if (npos != 2) {
            fprintf(stderr, "mscope: usage: mscope keygen --role recorder|client NAME (writes "
                            "NAME.key and NAME.pub)\n");
            goto out;
        }
        rc = keygen(pos[1], s.role);
        goto out;
    }
    int64_t now = timeparse_now_ns(), from = now - 3600LL * 1000000000LL, to = 0;
    const char *fs = s.since ? s.since : s.from;
    if (fs && timeparse_parse(fs, now, &from) < 0) {
        fprintf(stderr, "mscope: bad time '%s' (RFC 3339, Unix seconds, or a duration like 15m)\n", fs);
        goto out;
    }
    if (s.to && timeparse_parse(s.to, now, &to) < 0) {
        fprintf(stderr, "mscope: bad time '%s'\n", s.to);
        goto out;
    }
    char rerr[200];
    if (timeparse_check_range(from, to, rerr, sizeof rerr) < 0) {
        fprintf(stderr, "mscope: %s\n", rerr);
        goto out;
    }
    if (!strcmp(cmd, "monitors")) {
        bus_sec msec;
        if (read_token(&s, token) < 0 || (!s.insecure && read_keys(&s, &msec) < 0)) goto out;
        rc = cli_monitors(&s, s.insecure ? NULL : &msec, token, from, to, pos + 1, npos - 1);
        goto out;
    }
    if (!strcmp(cmd, "dns") || !strcmp(cmd, "tls") || !strcmp(cmd, "http")) {
        bus_sec asec;
        if (npos > 1) {
            fprintf(stderr, "mscope: unexpected argument '%s'\n", pos[1]);
            goto out;
        }
        if (read_token(&s, token) < 0 || (!s.insecure && read_keys(&s, &asec) < 0)) goto out;
        rc = cli_app(&s, s.insecure ? NULL : &asec, token, cmd, from, to);
        goto out;
    }
    int drill = !strcmp(cmd, "flows") && s.write;
    if (s.limit > 10000 && !drill) {
        fprintf(stderr, "mscope: --limit: at most 10000 rows (up to 100000 flows with flows -w)\n");
        goto out;
    }
    if (strcmp(cmd, "search") && !drill && npos > 1) {
        fprintf(stderr, "mscope: unexpected argument '%s'\n", pos[1]);
        goto out;
    }
    bus_sec sec;
    if (read_token(&s, token) < 0 || (!s.insecure && read_keys(&s, &sec) < 0)) goto out;
    Mirrorscope__QueryFlows qf;
    mirrorscope__query_flows__init(&qf);
    qf.from_ns = from;
    qf.to_ns = to;
    qf.host = s.host;
    qf.port = (uint32_t)s.port;
    qf.proto = (uint32_t)s.proto;
    qf.min_rtt_ns = s.min_rtt;
    qf.only_retransmissions = s.retrans;
    qf.order_by = s.order;
    qf.limit = s.limit ? (uint32_t)s.limit : drill ? 10000 : 100;
    qf.node = s.node;
    char server[128] = "";
    if (s.server && cli_parse_server(s.server, server, sizeof server, &qf.server_port) < 0) goto out;
    qf.server = server;
    qf.client = s.client;
    qf.monitor = s.monitor;
    if (!strcmp(cmd, "search") || drill) {
        rc = cli_search(&s, s.insecure ? NULL : &sec, token, from, to, pos + 1, npos - 1,
                        drill ? &qf : NULL);
        goto out;
    }
    Mirrorscope__Request req;
    mirrorscope__request__init(&req);
    req.id = (uint64_t)now;
    req.token = token;
    Mirrorscope__ListNodes ln;
    Mirrorscope__TopTalkers tt;
    Mirrorscope__TimeSeries ts;
    if (!strcmp(cmd, "nodes")) {
        mirrorscope__list_nodes__init(&ln);
        req.body_case = MIRRORSCOPE__REQUEST__BODY_LIST_NODES;
        req.list_nodes = &ln;
    } else if (!strcmp(cmd, "flows")) {
        req.body_case = MIRRORSCOPE__REQUEST__BODY_QUERY_FLOWS;
        req.query_flows = &qf;
    } else if (!strcmp(cmd, "top")) {
        mirrorscope__top_talkers__init(&tt);
        tt.from_ns = from;
        tt.to_ns = to;
        tt.by = s.by;
        tt.metric = s.metric;
        tt.limit = s.limit ? (uint32_t)s.limit : 10;
        req.body_case = MIRRORSCOPE__REQUEST__BODY_TOP_TALKERS;
        req.top_talkers = &tt;
    } else if (!strcmp(cmd, "series")) {
        mirrorscope__time_series__init(&ts);
        ts.from_ns = from;
        ts.to_ns = to;
        ts.node = s.node;
        ts.server_ip = s.host;
        ts.server_port = (uint32_t)s.port;
        req.body_case = MIRRORSCOPE__REQUEST__BODY_TIME_SERIES;
        req.time_series = &ts;
    } else {
        fprintf(stderr, "mscope: unknown command '%s' (nodes, flows, top, series, search, dns, tls, "
                        "http, monitors; see --help)\n", cmd);
        goto out;
    }
    Mirrorscope__Response *resp;
    rc = cli_call(&s, s.insecure ? NULL : &sec, &req, &resp);
    if (rc) goto out;
    if (!strcmp(cmd, "nodes")) print_nodes(resp, s.json);
    else if (!strcmp(cmd, "flows")) print_flows(resp, s.json);
    else if (!strcmp(cmd, "top")) print_talkers(resp, s.json);
    else print_series(resp, s.json);
    mirrorscope__response__free_unpacked(resp, NULL);
out:
    config_free(cli_opts, &s);
    return rc;
}
