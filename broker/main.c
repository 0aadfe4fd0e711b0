/* main.c - mscope-broker: parse the configuration and wire the modules.
 *
 *   mscope-broker --config FILE [--listen ADDR:PORT | --interface IF | --read FILE]
 *
 * Two threads. The packet thread (rxloop.c) runs input -> broker chain ->
 * outputs. The control side runs on a libuv loop (common/ctl): signals
 * (SIGUSR1 logs the counters, SIGHUP reloads the configuration file and
 * reads the /metrics token file again,
 * SIGINT/SIGTERM flush every output and exit), a tick each second (outputs
 * retry and flush, stats.json, the periodic log) and HTTP: /healthz,
 * /readyz and /metrics (status.c).
 */
#include "brconfig.h"
#include "broker.h"
#include "bropts.h"
#include "config.h"
#include "ctl.h"
#include "input.h"
#include "log.h"
#include "netio.h"
#include "rxloop.h"
#include "sandbox.h"
#include "status.h"
#include "timeparse.h"
#include "xmalloc.h"

#include <uv.h>

#include <errno.h>
#include <pcap/pcap.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MSCOPE_VERSION "0.1.0"

typedef struct brokerd {
    br_settings cfg;
    const char *config_path;
    int argc;          /* the command line without --config, reapplied on reload */
    char **argv;
    input_t *in;
    broker_t *b;          /* the packet thread's: touch it only through rxloop_lock() */
    rxloop_t *rx;
    ctl_t *ctl;           /* the control loop, signals, HTTP */
    uv_async_t rx_end;    /* the packet thread has ended */
    status_t *status;
    int64_t start_ns, last_log;
    int stopping;
} brokerd;

static void usage(FILE *out)
{
    fprintf(out,
            "usage: mscope-broker --config FILE [options]    VXLAN from UDP (daemon)\n"
            "       mscope-broker --config FILE --interface IF [--decap vxlan]\n"
            "       mscope-broker --config FILE --read PCAP [--decap vxlan]\n\n"
            "Takes one mirrored feed and serves many security tools: decapsulate, deduplicate,\n"
            "filter, slice and mask per tool; send as VXLAN/UDP/GRE, write rotating pcap files,\n"
            "inject into an interface; groups share the load by a symmetric flow hash.\n"
            "SIGHUP reloads FILE (unchanged tools keep their sockets and files), SIGUSR1 logs\n"
            "the counters. HTTP (--http): /healthz, /readyz, /metrics (Prometheus).\n"
            "Tools, groups and every key: docs/BROKER.md.\n\n"
            "options (also 'name = value' lines at the top of FILE; flags win):\n"
            "  -c, --config FILE              the configuration file (required)\n");
    config_print_help(br_opts, out);
    fputc('\n', out);
    brconfig_print_keys(out);
}

/* What the start would refuse in the global options, said before anything
 * is opened: --check must not pass what the start then rejects. Each
 * problem names where the option was set (where: FILE:LINE or its flag),
 * as the parsers' own messages do. Returns NULL, or the problem in buf. */
static const char *settings_problem(const br_settings *s, const config_origin *where, char *buf,
                                    size_t len)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    char at[4200], at2[4200];
#define AT(name) config_origin_str(br_opts, where, name, at, sizeof at)
#define PROBLEM(...)                        \
    do {                                    \
        snprintf(buf, len, __VA_ARGS__);    \
        return buf;                         \
    } while (0)
    if (log_set_level(s->log_level) < 0)
        PROBLEM("%s: want error, warn, info or debug", AT("log-level"));
    if (strcmp(s->decap, "none") && strcmp(s->decap, "vxlan"))
        PROBLEM("%s: want none or vxlan", AT("decap"));
    if (s->read && s->interface)
        PROBLEM("%s: --read and --interface exclude each other (%s)", AT("read"),
                config_origin_str(br_opts, where, "interface", at2, sizeof at2));
    if (!s->read && !s->interface && netio_parse_addr(s->listen, &ss, &sl) < 0)
        PROBLEM("%s: '%.200s' is not ADDR:PORT", AT("listen"), s->listen);
    if (s->http && strcmp(s->http, "off") && netio_parse_addr(s->http, &ss, &sl) < 0)
        PROBLEM("%s: '%.200s' is not ADDR:PORT or off", AT("http"), s->http);
    if ((!s->http_cert) != (!s->http_key))
        PROBLEM("%s: http-cert and http-key go together", AT(s->http_cert ? "http-cert" : "http-key"));
    if (s->http_cert && s->http && strcmp(s->http, "off")) { /* loaded as the start will load them */
        httpd_tls tls = { s->http_cert, s->http_key };
        char terr[1024];
        int bad = httpd_tls_check(&tls, terr, sizeof terr);
        if (bad) PROBLEM("%s: %s", AT(bad == 1 ? "http-cert" : "http-key"), terr);
    }
    char terr[1024];
    if (ctl_metrics_token_check(s->metrics_token_file, terr, sizeof terr) < 0)
        PROBLEM("%s: %s", AT("metrics-token-file"), terr);
    if (s->read) { /* opened as the input will open it */
        char perr[PCAP_ERRBUF_SIZE];
        if (access(s->read, R_OK) < 0) PROBLEM("%s: %.200s: %s", AT("read"), s->read, strerror(errno));
        pcap_t *pc = pcap_open_offline(s->read, perr);
        if (!pc) PROBLEM("%s: cannot read %.200s: %s", AT("read"), s->read, perr);
        int dlt = pcap_datalink(pc);
        pcap_close(pc);
        if (dlt != DLT_EN10MB)
            PROBLEM("%s: %.200s: link type %d is not supported (Ethernet captures only)", AT("read"),
                    s->read, dlt);
    }
    if (s->capture_filter) { /* compiled as the capture will compile it */
        pcap_t *dead = pcap_open_dead(DLT_EN10MB, 65535);
        struct bpf_program prog;
        int bad = pcap_compile(dead, &prog, s->capture_filter, 1, PCAP_NETMASK_UNKNOWN) < 0;
        if (bad) snprintf(buf, len, "%s: %.300s", AT("capture-filter"), pcap_geterr(dead));
        else pcap_freecode(&prog);
        pcap_close(dead);
        if (bad) return buf;
    }
    return NULL;
#undef PROBLEM
#undef AT
}

/* Settings = defaults, then the file's global lines, then the flags; where
 * each was set goes in where (BR_NOPTS entries). The file is loaded into
 * *cfgp. Returns 0 or -1 with err set. */
static int load_settings(brokerd *d, br_settings *s, config_origin *where, brconfig_t **cfgp,
                         char *err, size_t errlen)
{
    const char *pos[1];
    int npos = 0, help = 0;
    memset(where, 0, BR_NOPTS * sizeof *where);
    if (config_defaults(br_opts, s) < 0) return -1;
    *cfgp = brconfig_load(d->config_path, br_opts, s, where, err, errlen);
    if (!*cfgp) return -1;
    if (config_parse_args_where(br_opts, s, where, d->argc, d->argv, 1, pos, 0, &npos, &help, err,
                                errlen) < 0) {
        brconfig_free(*cfgp);
        *cfgp = NULL;
        return -1;
    }
    /* A daemon serves HTTP unless told not to; a file run only when asked. */
    if (!s->http) s->http = xstrdup(s->read ? "off" : "0.0.0.0:8082");
    return 0;
}

static broker_opts broker_opts_of(const br_settings *s)
{
    broker_opts o = { s->dedup, s->dedup_window, s->dedup_table, s->strip_vlan };
    return o;
}

static int same_str(const char *a, const char *b) { return (!a && !b) || (a && b && !strcmp(a, b)); }

static void reload(brokerd *d)
{
    char err[1024];
    br_settings s;
    config_origin where[BR_NOPTS];
    brconfig_t *cfg = NULL;
    memset(&s, 0, sizeof s);
    if (load_settings(d, &s, where, &cfg, err, sizeof err) < 0) {
        log_error("SIGHUP: %s; keeping the running configuration", err);
        goto out;
    }
    char why[5000];
    const char *bad = settings_problem(&s, where, why, sizeof why);
    if (bad) {
        log_error("SIGHUP: %s; keeping the running configuration", bad);
        log_set_level(d->cfg.log_level);
        goto out;
    }
    if (!same_str(s.listen, d->cfg.listen) || !same_str(s.interface, d->cfg.interface) ||
        !same_str(s.read, d->cfg.read) || !same_str(s.decap, d->cfg.decap) ||
        !same_str(s.capture_filter, d->cfg.capture_filter) || s.vxlan_port != d->cfg.vxlan_port ||
        s.rcvbuf != d->cfg.rcvbuf || !same_str(s.http, d->cfg.http) ||
        !same_str(s.http_cert, d->cfg.http_cert) || !same_str(s.http_key, d->cfg.http_key) ||
        !same_str(s.metrics_token_file, d->cfg.metrics_token_file))
        log_warn("SIGHUP: the input and HTTP options (listen, interface, read, decap, "
                 "capture-filter, vxlan-port, rcvbuf, http, http-cert, http-key, "
                 "metrics-token-file) change only on a restart (the token file in use is "
                 "read again); the rest is reloaded");
    broker_opts bo = broker_opts_of(&s);
    /* Parsed above without stopping the packets; swapped between two batches. */
    broker_t *b = rxloop_lock(d->rx, NULL);
    int rc = broker_reload(b, &bo, &cfg, err, sizeof err);
    rxloop_unlock(d->rx);
    if (rc < 0) {
        log_error("SIGHUP: %s; keeping the running configuration", err);
        goto out;
    }
    /* Keep the input and HTTP options that are in use; take the rest. */
    char *keep[] = { d->cfg.listen, d->cfg.interface, d->cfg.read, d->cfg.decap,
                     d->cfg.capture_filter, d->cfg.http, d->cfg.http_cert, d->cfg.http_key,
                     d->cfg.metrics_token_file };
    char **news[] = { &s.listen, &s.interface, &s.read, &s.decap, &s.capture_filter, &s.http,
                      &s.http_cert, &s.http_key, &s.metrics_token_file };
    for (size_t i = 0; i < sizeof keep / sizeof keep[0]; i++) {
        free(*news[i]);
        *news[i] = keep[i];
    }
    d->cfg.listen = d->cfg.interface = d->cfg.read = d->cfg.decap = d->cfg.capture_filter = NULL;
    d->cfg.http = d->cfg.http_cert = d->cfg.http_key = d->cfg.metrics_token_file = NULL;
    s.vxlan_port = d->cfg.vxlan_port;
    s.rcvbuf = d->cfg.rcvbuf;
    config_free(br_opts, &d->cfg);
    d->cfg = s;
    memset(&s, 0, sizeof s);
    log_info("SIGHUP: configuration reloaded from %s", d->config_path);
out:
    brconfig_free(cfg);
    config_free(br_opts, &s);
}

/* ---- the control loop ------------------------------------------------------ */

static const char *source_of(const br_settings *s, char *buf, size_t len)
{
    if (s->read) snprintf(buf, len, "file %s", s->read);
    else if (s->interface) snprintf(buf, len, "interface %s", s->interface);
    else snprintf(buf, len, "udp %s", s->listen);
    return buf;
}

/* Outputs retry and flush, stats.json, and the counters in the log every
 * --stats-interval (always when log_now). */
static void report(brokerd *d, int log_now)
{
    input_stats in;
    int64_t now = timeparse_mono_ns();
    broker_t *b = rxloop_lock(d->rx, &in);
    broker_tick(b, now);
    status_tick(d->status, &in);
    json_t *o = d->cfg.stats_file ? status_json(d->status, b, &in) : NULL;
    if (log_now || now - d->last_log >= d->cfg.stats_interval) {
        status_log(d->status, b, &in);
        d->last_log = now;
    }
    rxloop_unlock(d->rx);
    if (o) status_write_file(d->status, o, d->cfg.stats_file);
    json_decref(o);
}

static void on_tick(void *data) { report(data, 0); }

static void on_signal(void *data, int sig)
{
    brokerd *d = data;
    switch (sig) {
    case SIGHUP:
        reload(d);
        ctl_reload_tokens(d->ctl, NULL, 0);
        break;
    case SIGUSR1: report(d, 1); break;
    default:
        if (d->stopping) return;
        d->stopping = 1;
        log_info("%s: flushing the outputs and exiting", strsignal(sig));
        rxloop_stop(d->rx);
        ctl_stop(d->ctl);
    }
}

/* Stopping waits for the packet thread's last batch. */
static int is_busy(void *data)
{
    rxloop_state st;
    rxloop_get_state(((brokerd *)data)->rx, &st);
    return st.running;
}

/* On the packet thread, as it ends. */
static void rx_ended(void *data) { uv_async_send(&((brokerd *)data)->rx_end); }

/* A file read to its end (or not) ends the run. A live input that failed
 * does not: the broker stays up for /healthz to say so, and exits 1 when
 * stopped. */
static void on_rx_end(uv_async_t *a)
{
    brokerd *d = a->data;
    rxloop_state st;
    rxloop_get_state(d->rx, &st);
    if (d->cfg.read) {
        d->stopping = 1;
        ctl_stop(d->ctl);
    } else if (st.result == RXLOOP_FAILED) {
        log_error("nothing is received any more: /healthz reports it; stop the broker to restart "
                  "it (it will exit 1)");
    }
}

/* ---- HTTP: health and metrics ------------------------------------------- */

static void health(void *data, int ready, json_t *why)
{
    brokerd *d = data;
    (void)ready;
    rxloop_state st;
    rxloop_get_state(d->rx, &st);
    broker_t *b = rxloop_lock(d->rx, NULL);
    status_health(d->status, b, &st, why);
    rxloop_unlock(d->rx);
}

static void health_fields(void *data, json_t *obj)
{
    brokerd *d = data;
    broker_t *b = rxloop_lock(d->rx, NULL);
    json_object_set_new(obj, "tools", json_integer(broker_ntools(b)));
    rxloop_unlock(d->rx);
}

static void metrics(void *data, metrics_t *m)
{
    brokerd *d = data;
    input_stats in;
    rxloop_state st;
    rxloop_get_state(d->rx, &st);
    broker_t *b = rxloop_lock(d->rx, &in);
    status_metrics(d->status, b, &in, m);
    rxloop_unlock(d->rx);
    metrics_gauge(m, "mscope_broker_input_running",
                  "1 while the packet thread receives (0: ended or failed).", st.running);
}

/* Take --config/-c out of argv (config_parse_args would read it as a file
 * of plain options). Returns the path or NULL. */
static const char *take_config(int *argc, char **argv)
{
    const char *path = NULL;
    int o = 1;
    for (int i = 1; i < *argc; i++) {
        const char *a = argv[i];
        if ((!strcmp(a, "--config") || !strcmp(a, "-c")) && i + 1 < *argc) {
            path = argv[++i];
        } else if (!strncmp(a, "--config=", 9)) {
            path = a + 9;
        } else {
            if (!strcmp(a, "--")) {
                while (i < *argc) argv[o++] = argv[i++];
                break;
            }
            argv[o++] = argv[i];
        }
    }
    *argc = o;
    return path;
}

/* Static: what h2o leaves of connections still open at exit stays reachable
 * (the loop lives here), rather than being reported as a leak. */
static brokerd d;

int main(int argc, char **argv)
{
    log_init("mscope-broker");
    int rc = 2;
    char err[1024], src[4200];
    brconfig_t *cfg = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(argv[i], "--version") || !strcmp(argv[i], "-V")) {
            printf("mscope-broker %s\n", MSCOPE_VERSION);
            return 0;
        }
    }
    d.argv = xcalloc((size_t)argc + 1, sizeof *d.argv);
    memcpy(d.argv, argv, (size_t)argc * sizeof *argv);
    d.argc = argc;
    d.config_path = take_config(&d.argc, d.argv);
    if (!d.config_path) {
        fprintf(stderr, "mscope-broker: --config FILE is required (see --help)\n");
        goto out;
    }
    config_origin where[BR_NOPTS];
    if (load_settings(&d, &d.cfg, where, &cfg, err, sizeof err) < 0) {
        fprintf(stderr, "mscope-broker: %s\n", err);
        goto out;
    }
    char why[5000];
    const char *bad = settings_problem(&d.cfg, where, why, sizeof why);
    if (bad) {
        fprintf(stderr, "mscope-broker: %s\n", bad);
        goto out;
    }
    if (d.cfg.check) {
        printf("%s: ok, %d section(s)\n", d.config_path, cfg->n);
        for (int i = 0; i < cfg->n; i++) {
            const brconf_tool *t = &cfg->tools[i];
            printf("  %s %s: %s%s%s\n", t->kind == BRCONF_GROUP ? "group" : "tool", t->name,
                   t->kind == BRCONF_GROUP ? "members " : brconfig_type_name(t->type_id),
                   t->kind == BRCONF_GROUP ? t->members : "",
                   t->group >= 0 ? " (group member)" : "");
        }
        rc = 0;
        goto out;
    }
    rc = 1;
    if (sandbox_drop_user(d.cfg.user, d.cfg.interface != NULL, err, sizeof err) < 0) {
        fprintf(stderr, "mscope-broker: %s\n", err);
        goto out;
    }
    signal(SIGPIPE, SIG_IGN);
    /* Signals go through the loop from here on (a stop asked for during
     * start-up happens once the loop runs). */
    ctl_hooks hooks = { .data = &d, .tick = on_tick, .on_signal = on_signal, .busy = is_busy };
    d.ctl = ctl_new(&hooks, 1000);
    input_opts io = {
        .listen = d.cfg.listen,
        .iface = d.cfg.interface,
        .read = d.cfg.read,
        .capture_filter = d.cfg.capture_filter,
        .decap_vxlan = strcmp(d.cfg.decap, "vxlan") == 0,
        .vxlan_port = (uint16_t)d.cfg.vxlan_port,
        .rcvbuf = d.cfg.rcvbuf,
        .read_rate = d.cfg.read_rate,
    };
    d.in = input_open(&io, err, sizeof err);
    if (!d.in) {
        log_error("%s", err);
        goto out;
    }
    broker_opts bo = broker_opts_of(&d.cfg);
    d.b = broker_new(&bo, &cfg, err, sizeof err);
    if (!d.b) {
        log_error("%s", err);
        goto out;
    }
    httpd_tls tls = { d.cfg.http_cert, d.cfg.http_key };
    if (ctl_listen(d.ctl, d.cfg.http, &tls, err, sizeof err) < 0) {
        log_error("%s", err);
        goto out;
    }
    d.status = status_new(MSCOPE_VERSION, source_of(&d.cfg, src, sizeof src));
    d.start_ns = timeparse_now_ns();
    d.last_log = timeparse_mono_ns();
    ctl_status cs = { .version = MSCOPE_VERSION, .health = health, .fields = health_fields,
                      .metrics = metrics, .data = &d, .metrics_token_file = d.cfg.metrics_token_file };
    if (ctl_serve_status(d.ctl, &cs, err, sizeof err) < 0) {
        log_error("%s", err);
        goto out;
    }
    uv_async_init(ctl_loop(d.ctl), &d.rx_end, on_rx_end);
    d.rx_end.data = &d;
    log_info("broker: %d tool(s) from %s; input %s%s%s; HTTP %s", broker_ntools(d.b),
             d.config_path, src, strcmp(d.cfg.decap, "vxlan") == 0 ? " (decapsulating VXLAN)" : "",
             d.cfg.dedup ? ", dedup on" : "", d.cfg.http);
    d.rx = rxloop_start(d.in, d.b, rx_ended, &d, err, sizeof err);
    if (!d.rx) {
        log_error("%s", err);
        goto out;
    }

    /* Every thread runs now: from here on only the calls they make. */
    if (d.cfg.seccomp && sandbox_seccomp("mscope-broker", 0, err, sizeof err) < 0) {
        log_error("%s", err);
        goto out;
    }
    ctl_run(d.ctl);

    /* Stopped: the packet thread has ended (or ends now); the last counters. */
    rc = rxloop_join(d.rx) == RXLOOP_FAILED ? 1 : 0;
    report(&d, 1);
out:
    rxloop_free(d.rx); /* before closing what it wakes */
    if (d.ctl) {
        if (d.rx_end.loop && !uv_is_closing((uv_handle_t *)&d.rx_end))
            uv_close((uv_handle_t *)&d.rx_end, NULL);
        ctl_free(d.ctl);
    }
    broker_free(d.b); /* flushes and closes every output */
    input_free(d.in);
    status_free(d.status);
    brconfig_free(cfg);
    config_free(br_opts, &d.cfg);
    free(d.argv);
    return rc;
}
