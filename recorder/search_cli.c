/* search_cli.c - `mscope-recorder search --data-dir DIR [--from T] [--to T]
 * [-w OUT] EXPR...`: one pcap in time order on a file or stdout.
 */
#include "search_cli.h"

#include "config.h"
#include "log.h"
#include "pcapio.h"
#include "search.h"
#include "timeparse.h"

#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef struct search_settings {
    char *data_dir, *from, *to, *write, *log_level;
    int64_t max_packets, max_bytes;
    int stats;
} search_settings;

#define O(f) offsetof(search_settings, f)
static const config_opt search_opts[] = {
    { "data-dir", 'd', CFG_STR, O(data_dir), NULL, 0, 0, "DIR", "the recorder's data directory (required)" },
    { "from", 0, CFG_STR, O(from), NULL, 0, 0, "TIME", "first instant, inclusive: RFC 3339, Unix seconds[.frac], or a duration ago (15m, 2h); default: the beginning" },
    { "to", 0, CFG_STR, O(to), NULL, 0, 0, "TIME", "end instant, exclusive (same forms); default: no end" },
    { "write", 'w', CFG_STR, O(write), "-", 0, 0, "FILE", "write the pcap here; - is stdout" },
    { "max-packets", 'c', CFG_INT, O(max_packets), "0", 0, 0, "N", "stop after N packets (0 = no limit)" },
    { "max-bytes", 0, CFG_SIZE, O(max_bytes), "0", 0, 0, "SIZE", "stop before exceeding SIZE captured bytes (0 = no limit)" },
    { "stats", 0, CFG_BOOL, O(stats), NULL, 0, 0, NULL, "print figures (segments, candidates, time) on stderr" },
    { "log-level", 0, CFG_STR, O(log_level), "warn", 0, 0, "LEVEL", "error, warn, info or debug" },
    { NULL, 0, 0, 0, NULL, 0, 0, NULL, NULL },
};
#undef O

int search_cli_main(int argc, char **argv)
{
    search_settings cfg;
    char err[1024], expr[8192] = "";
    const char *pos[64];
    int npos = 0, help = 0, rc = 2;
    memset(&cfg, 0, sizeof cfg);
    if (config_defaults(search_opts, &cfg) < 0) return 2;
    if (config_parse_args(search_opts, &cfg, argc, argv, 1, pos, 64, &npos, &help, err, sizeof err) < 0) {
        fprintf(stderr, "mscope-recorder search: %s\n", err);
        goto out;
    }
    if (help) {
        printf("usage: mscope-recorder search --data-dir DIR [--from T] [--to T] [-w OUT] [EXPR...]\n\n"
               "Writes the stored packets that match the tcpdump filter EXPR within [from, to)\n"
               "as one nanosecond pcap in time order (ties in arrival order). An empty answer\n"
               "is a valid pcap with no packets.\n\noptions:\n");
        config_print_help(search_opts, stdout);
        rc = 0;
        goto out;
    }
    log_set_level(cfg.log_level);
    if (!cfg.data_dir) {
        fprintf(stderr, "mscope-recorder search: --data-dir is required\n");
        goto out;
    }
    for (int i = 0; i < npos; i++) {
        size_t used = strlen(expr);
        if (used + strlen(pos[i]) + 2 >= sizeof expr) {
            fprintf(stderr, "mscope-recorder search: expression too long\n");
            goto out;
        }
        snprintf(expr + used, sizeof expr - used, "%s%s", i ? " " : "", pos[i]);
    }
    search_query q = { .from_ns = INT64_MIN, .to_ns = INT64_MAX, .expr = expr,
                       .max_packets = (uint64_t)cfg.max_packets, .max_bytes = (uint64_t)cfg.max_bytes };
    int64_t now = timeparse_now_ns();
    if (cfg.from && timeparse_parse(cfg.from, now, &q.from_ns) < 0) {
        fprintf(stderr, "mscope-recorder search: --from '%s' is not RFC 3339, Unix seconds or a duration like 15m\n", cfg.from);
        goto out;
    }
    if (cfg.to && timeparse_parse(cfg.to, now, &q.to_ns) < 0) {
        fprintf(stderr, "mscope-recorder search: --to '%s' is not RFC 3339, Unix seconds or a duration like 15m\n", cfg.to);
        goto out;
    }
    if (timeparse_check_range(q.from_ns, q.to_ns, err, sizeof err) < 0) {
        fprintf(stderr, "mscope-recorder search: %s\n", err);
        goto out;
    }
    if (!strcmp(cfg.write, "-") && isatty(1)) {
        fprintf(stderr, "mscope-recorder search: refusing to write pcap to a terminal; use -w FILE or a pipe\n");
        goto out;
    }
    int64_t t0 = timeparse_mono_ns();
    search_t *s = search_new(cfg.data_dir, &q, err, sizeof err);
    if (!s) {
        fprintf(stderr, "mscope-recorder search: %s\n", err);
        goto out;
    }
    pcapout_t *o = pcapout_open(cfg.write, err, sizeof err);
    if (!o) {
        fprintf(stderr, "mscope-recorder search: %s\n", err);
        search_free(s);
        rc = 1;
        goto out;
    }
    search_pkt p;
    int n, werr = 0;
    while ((n = search_next(s, &p)) == 1)
        if ((werr = pcapout_write(o, p.ts_ns, p.caplen, p.origlen, p.data)) < 0) break;
    int cerr = pcapout_close(o);
    if (!werr) werr = cerr;
    search_stats st;
    search_get_stats(s, &st);
    search_free(s);
    rc = 0;
    if (n < 0) {
        fprintf(stderr, "mscope-recorder search: reading segments failed: %s\n", strerror(-n));
        rc = 1;
    }
    if (werr < 0) {
        fprintf(stderr, "mscope-recorder search: writing %s failed: %s\n", cfg.write, strerror(-werr));
        rc = 1;
    }
    if (st.indexes_damaged)
        fprintf(stderr, "mscope-recorder search: warning: %" PRIu64 " segment index%s failed %s checksums; %s scanned instead (nothing missed)\n",
                st.indexes_damaged, st.indexes_damaged == 1 ? "" : "es", st.indexes_damaged == 1 ? "its" : "their",
                st.indexes_damaged == 1 ? "that segment was" : "those segments were");
    if (st.bad_records)
        fprintf(stderr, "mscope-recorder search: warning: %" PRIu64 " index entries did not match their segment and were skipped\n", st.bad_records);
    if (st.limited)
        fprintf(stderr, "mscope-recorder search: stopped at the limit (%" PRIu64 " packets, %" PRIu64 " bytes)\n", st.packets, st.bytes);
    if (cfg.stats)
        fprintf(stderr, "search: %" PRIu64 " packets, %" PRIu64 " bytes; %" PRIu64 " segments (%" PRIu64
                " indexed on the fly, %" PRIu64 " outside the range by the catalog, %" PRIu64
                " without a match by its summaries), %" PRIu64
                " flows, %" PRIu64 " candidates read, index %s; %.3f ms\n",
                st.packets, st.bytes, st.segments, st.segments_unindexed, st.segments_skipped,
                st.segments_pruned, st.flows_selected,
                st.candidates, st.index_used ? "used" : "not usable (scan)",
                (double)(timeparse_mono_ns() - t0) / 1e6);
out:
    config_free(search_opts, &cfg);
    return rc;
}
