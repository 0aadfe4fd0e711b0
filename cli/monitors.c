/* monitors.c - `mscope monitors`: list, show, create, set, delete monitors and
 * print their per-minute series, through the coordinator's RPC API.
 *
 *   mscope monitors list
 *   mscope monitors show NAME
 *   mscope monitors create NAME [server=NET] [client=NET] [port=N] [proto=tcp|udp|N]
 *                               [nodes=A,B] [filter='tcpdump expression']
 *   mscope monitors set NAME [the same words: the whole definition is replaced]
 *   mscope monitors delete NAME
 *   mscope monitors series NAME [--since 1h | --from T --to T]
 *
 * The definition is given as KEY=VALUE words, not options, so its keys
 * cannot collide with the options of other commands. --json prints the
 * REST API's objects (pbjson.h). Checks are the coordinator's (monitor.c):
 * the words of a refusal are the same as the REST API's.
 */
#include "cli.h"

#include "mirrorscope.pb-c.h"
#include "pbjson.h"
#include "timeparse.h"
#include "xmalloc.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define CLI_MON_NODES 256

/* KEY=VALUE words into m (strings borrowed from words; nodes into *nodes,
 * to free()). Returns 0, or -1 said. */
static int cli_mon_words(Mirrorscope__Monitor *m, const char *const *words, int n, char **nodes_buf,
                         char ***nodes)
{
    static const struct { const char *name; uint32_t num; } protos[] = {
        { "tcp", 6 }, { "udp", 17 }, { "icmp", 1 }, { "icmp6", 58 }, { "sctp", 132 },
    };
    *nodes = xcalloc(CLI_MON_NODES + 1, sizeof **nodes);
    for (int i = 0; i < n; i++) {
        const char *eq = strchr(words[i], '=');
        if (!eq) {
            fprintf(stderr, "mscope: '%s' is not KEY=VALUE (server, client, port, proto, nodes, filter)\n",
                    words[i]);
            return -1;
        }
        size_t kl = (size_t)(eq - words[i]);
        const char *v = eq + 1;
        char *end;
#define KEY(k) (kl == strlen(k) && !strncmp(words[i], k, kl))
        if (KEY("server")) m->server = (char *)v;
        else if (KEY("client")) m->client = (char *)v;
        else if (KEY("filter")) m->filter = (char *)v;
        else if (KEY("port")) {
            errno = 0;
            unsigned long p = strtoul(v, &end, 10);
            if (!*v || *end || errno || p > 65535) {
                fprintf(stderr, "mscope: port: '%s' is not a port (0 for any, else 1 to 65535)\n", v);
                return -1;
            }
            m->server_port = (uint32_t)p;
        } else if (KEY("proto")) {
            int found = 0;
            for (size_t k = 0; k < sizeof protos / sizeof protos[0]; k++)
                if (!strcasecmp(v, protos[k].name)) m->proto = protos[k].num, found = 1;
            if (!found) {
                unsigned long p = strtoul(v, &end, 10);
                if (!*v || *end || p > 255) {
                    fprintf(stderr, "mscope: proto: '%s' is not tcp, udp, icmp, icmp6, sctp or 0 to 255\n", v);
                    return -1;
                }
                m->proto = (uint32_t)p;
            }
        } else if (KEY("nodes")) {
            free(*nodes_buf);
            *nodes_buf = xstrdup(v);
            m->n_nodes = 0;
            for (char *save = NULL, *t = strtok_r(*nodes_buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
                if (m->n_nodes == CLI_MON_NODES) {
                    fprintf(stderr, "mscope: nodes: at most %d\n", CLI_MON_NODES);
                    return -1;
                }
                (*nodes)[m->n_nodes++] = t;
            }
            m->nodes = *nodes;
        } else {
            fprintf(stderr, "mscope: unknown key '%.*s' (server, client, port, proto, nodes, filter)\n",
                    (int)kl, words[i]);
            return -1;
        }
#undef KEY
    }
    return 0;
}

static void cli_mon_print(const Mirrorscope__Monitor *m)
{
    char created[64], changed[64], nodes[4096] = "";
    timeparse_format(m->created_ns, created, sizeof created);
    timeparse_format(m->changed_ns, changed, sizeof changed);
    for (size_t i = 0; i < m->n_nodes; i++)
        snprintf(nodes + strlen(nodes), sizeof nodes - strlen(nodes), "%s%s", i ? "," : "", m->nodes[i]);
    printf("name:        %s\nserver:      %s\nclient:      %s\nport:        %s%u\nproto:       %u\n"
           "nodes:       %s\nfilter:      %s\ncreated:     %s\nchanged:     %s\n",
           m->name, *m->server ? m->server : "any", *m->client ? m->client : "any",
           m->server_port ? "" : "any ", m->server_port, m->proto, *nodes ? nodes : "all",
           *m->filter ? m->filter : "-", created, changed);
}

static void cli_mon_list(const Mirrorscope__Response *r)
{
    printf("%-24s %-20s %-20s %5s %5s %-16s %s\n", "NAME", "SERVER", "CLIENT", "PORT", "PROTO",
           "NODES", "FILTER");
    for (size_t i = 0; i < r->n_monitors; i++) {
        const Mirrorscope__Monitor *m = r->monitors[i];
        char nodes[256] = "";
        for (size_t k = 0; k < m->n_nodes; k++)
            snprintf(nodes + strlen(nodes), sizeof nodes - strlen(nodes), "%s%s", k ? "," : "", m->nodes[k]);
        printf("%-24s %-20s %-20s %5u %5u %-16s %s\n", m->name, *m->server ? m->server : "any",
               *m->client ? m->client : "any", m->server_port, m->proto, *nodes ? nodes : "all",
               *m->filter ? m->filter : "-");
    }
}

static void cli_mon_ms(char *out, size_t len, int64_t ns, uint64_t have)
{
    if (have) snprintf(out, len, "%.3f", (double)ns / 1e6);
    else snprintf(out, len, "-");
}

static void cli_mon_series(const Mirrorscope__Response *r)
{
    printf("%-23s %12s %12s %9s %9s %7s %7s %7s %6s %6s %6s %6s %9s %9s %9s %9s\n", "MINUTE",
           "BYTES C>S", "BYTES S>C", "PKTS C>S", "PKTS S>C", "STARTED", "ENDED", "ACTIVE", "RETX",
           "ZWIN", "RST", "HSFAIL", "HS ms", "RTT ms", "RTT p99", "RESP ms");
    for (size_t i = 0; i < r->n_monitor_minutes; i++) {
        const Mirrorscope__MonitorMinute *m = r->monitor_minutes[i];
        char t[64], hs[16], rtt[16], p99[16], app[16];
        timeparse_format(m->minute_ns, t, sizeof t);
        cli_mon_ms(hs, sizeof hs, m->handshake_rtt->mean, m->handshake_rtt->count);
        cli_mon_ms(rtt, sizeof rtt, m->ack_rtt->mean, m->ack_rtt->count);
        cli_mon_ms(p99, sizeof p99, m->ack_rtt->p99, m->ack_rtt->flows);
        cli_mon_ms(app, sizeof app, m->app_response->mean, m->app_response->count);
        printf("%-23.19s %12" PRIu64 " %12" PRIu64 " %9" PRIu64 " %9" PRIu64 " %7" PRIu64 " %7" PRIu64
               " %7" PRIu64 " %6" PRIu64 " %6" PRIu64 " %6" PRIu64 " %6" PRIu64 " %9s %9s %9s %9s\n",
               t, m->c2s_bytes, m->s2c_bytes, m->c2s_packets, m->s2c_packets, m->flows_started,
               m->flows_finished, m->flows_active, m->retransmissions, m->zero_windows, m->resets,
               m->handshakes_failed, hs, rtt, p99, app);
    }
}

static void cli_mon_json(json_t *v)
{
    json_dumpf(v, stdout, JSON_COMPACT);
    putchar('\n');
    json_decref(v);
}

int cli_monitors(const cli_settings *s, const bus_sec *sec, const char *token, int64_t from_ns,
                 int64_t to_ns, const char *const *words, int nwords)
{
    static const char usage[] =
        "mscope: usage: mscope monitors list | show NAME | create NAME [KEY=VALUE...] |\n"
        "        set NAME [KEY=VALUE...] | delete NAME | series NAME [--since 1h]\n"
        "        keys: server=NET client=NET port=N proto=tcp|udp|N nodes=A,B filter=EXPR\n";
    const char *op = nwords ? words[0] : "list";
    int rc = 2;
    char *nodes_buf = NULL, **nodes = NULL;
    Mirrorscope__Request req = MIRRORSCOPE__REQUEST__INIT;
    Mirrorscope__MonitorRequest mr = MIRRORSCOPE__MONITOR_REQUEST__INIT;
    Mirrorscope__MonitorSeries ms = MIRRORSCOPE__MONITOR_SERIES__INIT;
    Mirrorscope__Monitor def = MIRRORSCOPE__MONITOR__INIT;
    int write = !strcmp(op, "create") || !strcmp(op, "set");
    int series = !strcmp(op, "series");
    if (!write && !series && strcmp(op, "list") && strcmp(op, "show") && strcmp(op, "delete")) {
        fputs(usage, stderr);
        goto out;
    }
    if (strcmp(op, "list") && nwords < 2) {
        fputs(usage, stderr);
        goto out;
    }
    if (!write && nwords > (strcmp(op, "list") ? 2 : 1)) {
        fprintf(stderr, "mscope: unexpected argument '%s'\n", words[strcmp(op, "list") ? 2 : 1]);
        goto out;
    }
    req.id = (uint64_t)timeparse_now_ns();
    req.token = (char *)token;
    if (series) {
        ms.name = (char *)words[1];
        ms.from_ns = from_ns;
        ms.to_ns = to_ns;
        req.body_case = MIRRORSCOPE__REQUEST__BODY_MONITOR_SERIES;
        req.monitor_series = &ms;
    } else {
        mr.op = (char *)op;
        if (nwords > 1) mr.name = (char *)words[1];
        if (write) {
            def.name = (char *)words[1];
            if (cli_mon_words(&def, words + 2, nwords - 2, &nodes_buf, &nodes) < 0) goto out;
            mr.monitor = &def;
        }
        req.body_case = MIRRORSCOPE__REQUEST__BODY_MONITOR;
        req.monitor = &mr;
    }
    Mirrorscope__Response *resp;
    rc = cli_call(s, sec, &req, &resp);
    if (rc) goto out;
    if (s->json) {
        json_t *a = json_array();
        for (size_t i = 0; i < resp->n_monitors; i++) json_array_append_new(a, pbjson_message(&resp->monitors[i]->base));
        for (size_t i = 0; i < resp->n_monitor_minutes; i++)
            json_array_append_new(a, pbjson_message(&resp->monitor_minutes[i]->base));
        if (!strcmp(op, "list") || series) cli_mon_json(a);
        else {
            cli_mon_json(json_incref(json_array_get(a, 0)));
            json_decref(a);
        }
    } else if (!strcmp(op, "list")) {
        cli_mon_list(resp);
    } else if (series) {
        cli_mon_series(resp);
    } else if (resp->n_monitors == 1) {
        if (!strcmp(op, "delete")) printf("deleted monitor %s\n", resp->monitors[0]->name);
        else cli_mon_print(resp->monitors[0]);
    }
    mirrorscope__response__free_unpacked(resp, NULL);
out:
    free(nodes);
    free(nodes_buf);
    return rc;
}
