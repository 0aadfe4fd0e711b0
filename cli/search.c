/* search.c - `mscope search`: one question to every recorder, one pcap back.
 *
 * Sends Request{search} from a DEALER, writes each chunk's records after a
 * nanosecond pcap header as they arrive, grants one chunk of credit per
 * chunk written (so a slow disk or pipe slows the whole cluster's answer
 * instead of filling anyone's memory), and prints the trailer's per-node
 * summary. Ctrl-C cancels the search everywhere.
 */
#include "bus.h"
#include "cli.h"
#include "mirrorscope.pb-c.h"
#include "pcapio.h"
#include "timeparse.h"
#include "xmalloc.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SEARCH_WINDOW 4
#define SEARCH_RX_MAX (8u << 20)

static volatile sig_atomic_t interrupted;
static void on_sigint(int sig)
{
    (void)sig;
    interrupted = 1;
}

static int send_req(bus_dealer_t *d, Mirrorscope__Request *r)
{
    size_t n = mirrorscope__request__get_packed_size(r);
    uint8_t *buf = xmalloc(n + 1);
    mirrorscope__request__pack(r, buf);
    int rc = bus_dealer_send(d, buf, n);
    free(buf);
    return rc;
}

static void human(double v, char *out, size_t len)
{
    const char *u = " KMGT";
    int i = 0;
    while (v >= 1024 && i < 4) {
        v /= 1024;
        i++;
    }
    if (i) snprintf(out, len, "%.1f %ciB", v, u[i]);
    else snprintf(out, len, "%.0f B", v);
}

static void print_summary(const Mirrorscope__SearchTrailer *t)
{
    fprintf(stderr, "%-28s %-12s %10s %12s %9s %6s %9s  %s\n", "RECORDER", "STATUS", "PACKETS",
            "BYTES", "SEGMENTS", "INDEX", "MS", "ERROR");
    for (size_t i = 0; i < t->n_nodes; i++) {
        const Mirrorscope__NodeSearchStatus *n = t->nodes[i];
        const Mirrorscope__SearchFigures *f = n->figures;
        if (f)
            fprintf(stderr, "%-28s %-12s %10" PRIu64 " %12" PRIu64 " %9" PRIu64 " %6s %9.1f  %s\n",
                    n->node, n->status, f->packets, f->bytes, f->segments,
                    f->index_used ? "yes" : "no", (double)f->took_ns / 1e6, n->error);
        else
            fprintf(stderr, "%-28s %-12s %10s %12s %9s %6s %9s  %s\n", n->node, n->status, "-", "-",
                    "-", "-", "-", n->error);
    }
    char b[32];
    human((double)t->bytes, b, sizeof b);
    fprintf(stderr, "%" PRIu64 " packets (%s) from %zu recorder%s in %.1f ms%s", t->packets, b,
            t->n_nodes, t->n_nodes == 1 ? "" : "s", (double)t->took_ns / 1e6, t->partial ? " - PARTIAL: see above\n" : "\n");
    if (t->duplicates) fprintf(stderr, "%" PRIu64 " duplicate packets dropped\n", t->duplicates);
}

/* A drill-down's selection: said even with --quiet when it is not whole. */
static void print_flows_note(const Mirrorscope__SearchTrailer *t, int quiet)
{
    if (!quiet) fprintf(stderr, "the packets of %" PRIu64 " flow%s\n", t->flows, t->flows == 1 ? "" : "s");
    if (t->flows_limited)
        fprintf(stderr, "warning: more flows match than the limit (%" PRIu64 "): narrow the filter or raise --limit (at most 100000)\n",
                t->flows);
    if (t->flows_unreachable)
        fprintf(stderr, "warning: %" PRIu64 " of the flows were seen by recorders this coordinator does not know now: their packets are missing\n",
                t->flows_unreachable);
}

/* What a recorder says it had to work around: shown even with --quiet. */
static void print_index_warnings(const Mirrorscope__SearchTrailer *t)
{
    for (size_t i = 0; i < t->n_nodes; i++) {
        const Mirrorscope__SearchFigures *f = t->nodes[i]->figures;
        if (f && f->indexes_damaged)
            fprintf(stderr, "warning: %s: %" PRIu64 " segment index%s failed %s checksums; %s scanned instead (nothing missed)\n",
                    t->nodes[i]->node, f->indexes_damaged, f->indexes_damaged == 1 ? "" : "es",
                    f->indexes_damaged == 1 ? "its" : "their", f->indexes_damaged == 1 ? "that segment was" : "those segments were");
        if (f && f->bad_records)
            fprintf(stderr, "warning: %s: %" PRIu64 " index entries did not match their segment and were skipped\n",
                    t->nodes[i]->node, f->bad_records);
    }
}

int cli_search(const cli_settings *s, const bus_sec *sec, const char *token, int64_t from_ns,
               int64_t to_ns, const char *const *words, int nwords,
               Mirrorscope__QueryFlows *flows_of)
{
    char expr[8192] = "", err[1024];
    int rc = 2;
    char *nodes_copy = NULL;
    char *node_list[256];
    bus_dealer_t *d = NULL;
    FILE *out = NULL;
    uint8_t *rx = NULL;
    for (int i = 0; i < nwords; i++) {
        size_t used = strlen(expr);
        if (used + strlen(words[i]) + 2 >= sizeof expr) {
            fprintf(stderr, "mscope search: expression too long\n");
            return 2;
        }
        snprintf(expr + used, sizeof expr - used, "%s%s", i ? " " : "", words[i]);
    }
    if (!s->write) {
        fprintf(stderr, "mscope search: say where the pcap goes: -w FILE (or -w - for stdout)\n");
        return 2;
    }
    int to_stdout = !strcmp(s->write, "-");
    if (to_stdout && isatty(1)) {
        fprintf(stderr, "mscope search: refusing to write pcap to a terminal; use -w FILE or a pipe\n");
        return 2;
    }
    Mirrorscope__SearchQuery q;
    mirrorscope__search_query__init(&q);
    q.from_ns = from_ns;
    q.to_ns = to_ns;
    q.filter = expr;
    q.max_packets = (uint64_t)s->max_packets;
    q.max_bytes = (uint64_t)s->max_bytes;
    q.credit = SEARCH_WINDOW;
    q.dedup = s->dedup;
    q.dedup_window_ns = s->dedup_window;
    q.node_timeout_ms = (uint32_t)(s->node_timeout / 1000000LL);
    q.flows_of = flows_of;
    if (s->nodes) {
        nodes_copy = xstrdup(s->nodes);
        for (char *tok = strtok(nodes_copy, ","); tok && q.n_nodes < 256; tok = strtok(NULL, ","))
            if (*tok) node_list[q.n_nodes++] = tok;
        q.nodes = node_list;
    }
    Mirrorscope__Request req;
    mirrorscope__request__init(&req);
    req.id = (uint64_t)timeparse_now_ns();
    req.token = (char *)token;
    req.body_case = MIRRORSCOPE__REQUEST__BODY_SEARCH;
    req.search = &q;

    rc = 1;
    d = bus_dealer_new(s->coordinator, SEARCH_RX_MAX, sec, err, sizeof err);
    if (!d) {
        fprintf(stderr, "mscope search: %s\n", err);
        goto out;
    }
    out = to_stdout ? stdout : fopen(s->write, "wb");
    if (!out) {
        fprintf(stderr, "mscope search: cannot create %s: %s\n", s->write, strerror(errno));
        goto out;
    }
    setvbuf(out, NULL, _IOFBF, 1 << 20);
    uint8_t hdr[PCAPIO_FILE_HDR];
    pcapio_file_header(hdr);
    if (fwrite(hdr, 1, sizeof hdr, out) != sizeof hdr) goto write_failed;
    signal(SIGINT, on_sigint);
    signal(SIGTERM, on_sigint);
    signal(SIGPIPE, SIG_IGN);
    if (send_req(d, &req) < 0) {
        fprintf(stderr, "mscope search: cannot send the request\n");
        goto out;
    }
    rx = xmalloc(SEARCH_RX_MAX);
    int progress = !s->quiet && isatty(2);
    int64_t wait_ns = s->timeout > s->node_timeout + 10000000000LL ? s->timeout : s->node_timeout + 10000000000LL;
    int64_t last_msg = timeparse_mono_ns(), last_progress = 0;
    uint64_t packets = 0, bytes = 0;
    for (;;) {
        if (interrupted) {
            req.body_case = MIRRORSCOPE__REQUEST__BODY_SEARCH_CANCEL;
            req.search_cancel = 1;
            send_req(d, &req);
            fprintf(stderr, "%smscope search: interrupted; search cancelled (%" PRIu64 " packets written)\n",
                    progress ? "\n" : "", packets);
            fflush(out);
            rc = 130;
            goto out;
        }
        size_t len = 0;
        int r = bus_dealer_recv(d, rx, SEARCH_RX_MAX, &len, 200);
        int64_t now = timeparse_mono_ns();
        if (r == 0) {
            int hs = bus_socket_handshake(d);
            if (bus_handshake_refused(hs)) {
                fprintf(stderr, "%smscope search: %s: %s\n", progress ? "\n" : "", s->coordinator,
                        bus_handshake_str(hs));
                rc = 3;
                goto out;
            }
            if (hs == BUS_HANDSHAKE_NO_LISTENER) { /* the coordinator is gone: say so now */
                fprintf(stderr, "%smscope search: %s: %s; is the coordinator running?\n",
                        progress ? "\n" : "", s->coordinator, bus_handshake_str(hs));
                goto out;
            }
            if (now - last_msg > wait_ns) {
                fprintf(stderr, "%smscope search: no answer from %s for %.0f s (is the coordinator running?)\n",
                        progress ? "\n" : "", s->coordinator, (double)wait_ns / 1e9);
                goto out;
            }
            continue;
        }
        last_msg = now;
        Mirrorscope__Response *resp = r > 0 ? mirrorscope__response__unpack(NULL, len, rx) : NULL;
        if (!resp || resp->id != req.id) {
            if (resp) mirrorscope__response__free_unpacked(resp, NULL);
            fprintf(stderr, "mscope search: an answer that is not ours (%s)\n", r < 0 ? strerror(-r) : "wrong id");
            continue;
        }
        if (resp->search_chunk) {
            const Mirrorscope__SearchChunk *c = resp->search_chunk;
            if (c->records.len && fwrite(c->records.data, 1, c->records.len, out) != c->records.len) {
                mirrorscope__response__free_unpacked(resp, NULL);
                goto write_failed;
            }
            packets += c->packets;
            bytes += c->records.len;
            req.body_case = MIRRORSCOPE__REQUEST__BODY_SEARCH_CREDIT;
            req.search_credit = 1;
            send_req(d, &req);
            if (progress && now - last_progress > 200000000LL) {
                char b[32];
                human((double)bytes, b, sizeof b);
                fprintf(stderr, "\r%" PRIu64 " packets, %s, %u/%u recorders done   ", packets, b,
                        c->nodes_done, c->nodes_total);
                last_progress = now;
            }
        }
        if (resp->search_trailer || resp->status != MIRRORSCOPE__RESPONSE__STATUS__OK) {
            if (progress && last_progress) fprintf(stderr, "\n");
            if (resp->status != MIRRORSCOPE__RESPONSE__STATUS__OK)
                fprintf(stderr, "mscope search: %s\n", resp->error && *resp->error ? resp->error : "refused");
            if (resp->search_trailer && (!s->quiet || resp->search_trailer->partial))
                print_summary(resp->search_trailer);
            if (resp->search_trailer) print_index_warnings(resp->search_trailer);
            if (resp->search_trailer && flows_of) print_flows_note(resp->search_trailer, s->quiet);
            rc = resp->status == MIRRORSCOPE__RESPONSE__STATUS__UNAUTHENTICATED ? 3
               : resp->status == MIRRORSCOPE__RESPONSE__STATUS__BAD_REQUEST ? 2
               : resp->status != MIRRORSCOPE__RESPONSE__STATUS__OK ? 1
               : resp->search_trailer->partial && !s->allow_partial ? 4 : 0;
            mirrorscope__response__free_unpacked(resp, NULL);
            break;
        }
        mirrorscope__response__free_unpacked(resp, NULL);
    }
    if (fflush(out) != 0) goto write_failed;
    goto out;
write_failed:
    fprintf(stderr, "mscope search: writing %s failed: %s; search cancelled\n", s->write, strerror(errno));
    req.body_case = MIRRORSCOPE__REQUEST__BODY_SEARCH_CANCEL;
    req.search_cancel = 1;
    if (d) send_req(d, &req);
    rc = 1;
out:
    if (out && out != stdout) {
        if (fclose(out) != 0 && rc == 0) {
            fprintf(stderr, "mscope search: closing %s failed: %s\n", s->write, strerror(errno));
            rc = 1;
        }
    }
    bus_dealer_close(d, 200); /* a last cancel gets out */
    free(rx);
    free(nodes_copy);
    return rc;
}
