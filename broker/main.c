/* main.c - mscope-broker: parse the configuration and wire the modules.
 *
 *   mscope-broker --config FILE [--listen ADDR:PORT | --interface IF | --read FILE]
 *
 * One thread: input -> broker chain -> outputs. Signals arrive through a
 * signalfd read between batches: SIGUSR1 logs the counters, SIGHUP reloads
 * the configuration file, SIGINT/SIGTERM flush every output and exit.
 */
#include "brconfig.h"
#include "broker.h"
#include "config.h"
#include "input.h"
#include "log.h"
#include "timeparse.h"
#include "xmalloc.h"

#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#define MSCOPE_VERSION "0.1.0"

typedef struct br_settings {
    char *listen, *interface, *capture_filter, *read, *decap, *stats_file, *log_level;
    int64_t vxlan_port, rcvbuf, read_rate, dedup_window, dedup_table, stats_interval;
    int dedup, strip_vlan, check;
} br_settings;

#define O(f) offsetof(br_settings, f)
static const config_opt br_opts[] = {
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
    { "stats-file", 0, CFG_STR, O(stats_file), NULL, 0, 0, "FILE", "keep every counter here as JSON, rewritten each second (default: none)" },
    { "stats-interval", 0, CFG_DURATION, O(stats_interval), "60s", 1000000000LL, 0, "DURATION", "log the counters this often" },
    { "log-level", 0, CFG_STR, O(log_level), "info", 0, 0, "LEVEL", "error, warn, info or debug" },
    { "check", 0, CFG_BOOL, O(check), "no", 0, 0, NULL, "validate the configuration file, print a summary and exit" },
    { NULL, 0, 0, 0, NULL, 0, 0, NULL, NULL },
};
#undef O

typedef struct brokerd {
    br_settings cfg;
    const char *config_path;
    int argc;          /* the command line without --config, reapplied on reload */
    char **argv;
    input_t *in;
    broker_t *b;
    int sfd;
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
            "the counters. Tools, groups and every key: docs/BROKER.md.\n\n"
            "options (also 'name = value' lines at the top of FILE; flags win):\n"
            "  -c, --config FILE              the configuration file (required)\n");
    config_print_help(br_opts, out);
    fputc('\n', out);
    brconfig_print_keys(out);
}

/* What is wrong with settings that each parsed fine, or NULL. */
static const char *settings_problem(const br_settings *s)
{
    if (log_set_level(s->log_level) < 0) return "log-level: want error, warn, info or debug";
    if (strcmp(s->decap, "none") && strcmp(s->decap, "vxlan")) return "decap: want none or vxlan";
    if (s->read && s->interface) return "--read and --interface exclude each other";
    return NULL;
}

/* Settings = defaults, then the file's global lines, then the flags. The
 * file is loaded into *cfgp. Returns 0 or -1 with err set. */
static int load_settings(brokerd *d, br_settings *s, brconfig_t **cfgp, char *err, size_t errlen)
{
    const char *pos[1];
    int npos = 0, help = 0;
    if (config_defaults(br_opts, s) < 0) return -1;
    *cfgp = brconfig_load(d->config_path, br_opts, s, err, errlen);
    if (!*cfgp) return -1;
    if (config_parse_args(br_opts, s, d->argc, d->argv, 1, pos, 0, &npos, &help, err, errlen) < 0) {
        brconfig_free(*cfgp);
        *cfgp = NULL;
        return -1;
    }
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
    brconfig_t *cfg = NULL;
    memset(&s, 0, sizeof s);
    if (load_settings(d, &s, &cfg, err, sizeof err) < 0) {
        log_error("SIGHUP: %s; keeping the running configuration", err);
        goto out;
    }
    const char *bad = settings_problem(&s);
    if (bad) {
        log_error("SIGHUP: %s; keeping the running configuration", bad);
        log_set_level(d->cfg.log_level);
        goto out;
    }
    if (!same_str(s.listen, d->cfg.listen) || !same_str(s.interface, d->cfg.interface) ||
        !same_str(s.read, d->cfg.read) || !same_str(s.decap, d->cfg.decap) ||
        !same_str(s.capture_filter, d->cfg.capture_filter) || s.vxlan_port != d->cfg.vxlan_port ||
        s.rcvbuf != d->cfg.rcvbuf)
        log_warn("SIGHUP: the input options (listen, interface, read, decap, capture-filter, "
                 "vxlan-port, rcvbuf) change only on a restart; the rest is reloaded");
    broker_opts bo = broker_opts_of(&s);
    if (broker_reload(d->b, &bo, &cfg, err, sizeof err) < 0) {
        log_error("SIGHUP: %s; keeping the running configuration", err);
        goto out;
    }
    /* Keep the input options that are in use; take the rest. */
    char *keep[] = { d->cfg.listen, d->cfg.interface, d->cfg.read, d->cfg.decap, d->cfg.capture_filter };
    char **news[] = { &s.listen, &s.interface, &s.read, &s.decap, &s.capture_filter };
    for (int i = 0; i < 5; i++) {
        free(*news[i]);
        *news[i] = keep[i];
    }
    d->cfg.listen = d->cfg.interface = d->cfg.read = d->cfg.decap = d->cfg.capture_filter = NULL;
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

static void report(brokerd *d, int log_them)
{
    input_stats st;
    input_get_stats(d->in, &st);
    if (d->cfg.stats_file) broker_write_stats(d->b, &st, d->cfg.stats_file);
    if (log_them) broker_log_counters(d->b, &st);
}

/* Returns the exit status. */
static int run(brokerd *d)
{
    int rc = 0, stop = 0;
    int64_t now = timeparse_mono_ns(), last_tick = now, last_log = now;
    log_info("broker: %d tool(s) from %s; input %s%s%s", broker_ntools(d->b), d->config_path,
             d->cfg.read ? d->cfg.read : d->cfg.interface ? d->cfg.interface : d->cfg.listen,
             strcmp(d->cfg.decap, "vxlan") == 0 ? " (decapsulating VXLAN)" : "",
             d->cfg.dedup ? ", dedup on" : "");
    report(d, 0);
    while (!stop) {
        int n = input_run(d->in, 16, 100, broker_batch, d->b);
        if (n == -1) break; /* end of the file */
        if (n == -2) {
            rc = 1;
            break;
        }
        struct signalfd_siginfo si;
        while (read(d->sfd, &si, sizeof si) == (ssize_t)sizeof si) {
            switch (si.ssi_signo) {
            case SIGINT:
            case SIGTERM:
                log_info("%s: flushing the outputs and exiting", strsignal((int)si.ssi_signo));
                stop = 1;
                break;
            case SIGHUP: reload(d); break;
            case SIGUSR1:
                report(d, 1);
                last_log = timeparse_mono_ns();
                break;
            }
        }
        now = timeparse_mono_ns();
        if (now - last_tick >= 1000000000LL) {
            broker_tick(d->b, now);
            report(d, now - last_log >= d->cfg.stats_interval);
            if (now - last_log >= d->cfg.stats_interval) last_log = now;
            last_tick = now;
        }
    }
    return rc;
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

int main(int argc, char **argv)
{
    log_init("mscope-broker");
    brokerd d;
    memset(&d, 0, sizeof d);
    d.sfd = -1;
    int rc = 2;
    char err[1024];
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
    if (load_settings(&d, &d.cfg, &cfg, err, sizeof err) < 0) {
        fprintf(stderr, "mscope-broker: %s\n", err);
        goto out;
    }
    const char *bad = settings_problem(&d.cfg);
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
    /* Every signal we act on is read from the signalfd between batches. */
    static const int handled[] = { SIGINT, SIGTERM, SIGUSR1, SIGHUP };
    sigset_t set;
    sigemptyset(&set);
    for (size_t i = 0; i < sizeof handled / sizeof handled[0]; i++) sigaddset(&set, handled[i]);
    sigprocmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    d.sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (d.sfd < 0) {
        log_error("signalfd() failed: %s", strerror(errno));
        rc = 1;
        goto out;
    }
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
        rc = 1;
        goto out;
    }
    broker_opts bo = broker_opts_of(&d.cfg);
    d.b = broker_new(&bo, &cfg, err, sizeof err);
    if (!d.b) {
        log_error("%s", err);
        rc = 1;
        goto out;
    }
    rc = run(&d);
    broker_tick(d.b, timeparse_mono_ns());
    report(&d, 1);
out:
    broker_free(d.b); /* flushes and closes every output */
    input_free(d.in);
    brconfig_free(cfg);
    if (d.sfd >= 0) close(d.sfd);
    config_free(br_opts, &d.cfg);
    free(d.argv);
    return rc;
}
