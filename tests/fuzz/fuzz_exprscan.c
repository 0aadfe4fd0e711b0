/* fuzz_exprscan.c - the filter-expression scanner (recorder/exprscan.c) on
 * any text, without libpcap (fast; fuzz_exprscan_bpf holds it to libpcap).
 *
 * An input is an expression. It is parsed, described, judged on a
 * hundred-odd flow keys made of the addresses and numbers it names (IPv4 and
 * IPv6, TCP, UDP, ICMP, VLAN tags, later fragments), and asked for its
 * candidate flows in an index of those keys. The search reads only the
 * candidates (and the odd flows), so the check that matters: every flow
 * the expression does not rule out (exprscan_eval not ES_FALSE) must be a
 * candidate, or the search would miss its packets where tcpdump finds them.
 */
#include "exprscan.h"
#include "flowkey.h"
#include "fuzz.h"
#include "fuzz_expr.h"

#include <string.h>

#define FUZZ_NKEYS 128

static int fuzz__keys(const fuzz_values *v, flowkey_t *keys)
{
    static const uint8_t protos[] = { 6, 17, 1, 58, 47 };
    int n = 0;
    for (int i = 0; n < FUZZ_NKEYS && i < 4 * FUZZ_NKEYS; i++) {
        int s = i % v->naddr, d = (i / v->naddr) % v->naddr;
        if (v->is4[s] != v->is4[d]) continue;
        flowkey_t *k = &keys[n++];
        memset(k, 0, sizeof *k);
        k->kind = v->is4[s] ? FK_IPV4 : FK_IPV6;
        memcpy(k->src, v->addr[s], 16);
        memcpy(k->dst, v->addr[d], 16);
        k->proto = protos[(i / 3) % 5];
        if (k->proto == 1 && !v->is4[s]) k->proto = 58;
        if (k->proto == 58 && v->is4[s]) k->proto = 1;
        k->vlans = (uint8_t)(i % 3);
        if (k->proto == 6 || k->proto == 17) {
            if (k->kind == FK_IPV4 && i % 17 == 0) {
                k->frag_later = 1; /* no ports */
            } else {
                k->sport = v->port[i % v->nport];
                k->dport = v->port[(i / 2 + 1) % v->nport];
            }
        }
    }
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    flowkey_set_seed(0); /* the same buckets every run: a finding replays as found */
    static int init;
    static flowkey_t keys[FUZZ_NKEYS];
    static uint32_t ids[FUZZ_NKEYS];
    if (!init) {
        fuzz_quiet();
        init = 1;
    }
    if (size > 4096) return 0;
    char *expr = malloc(size + 1);
    memcpy(expr, data, size);
    expr[size] = 0;

    exprscan_t *e = exprscan_new(expr);
    char desc[512], small[24];
    exprscan_describe(e, desc, sizeof desc);
    exprscan_describe(e, small, sizeof small);
    FUZZ_CHECK(strlen(desc) < sizeof desc && strlen(small) < sizeof small);
    if (!exprscan_parsed(e)) FUZZ_CHECK(!exprscan_uses_index(e) && !strcmp(desc, "scan"));

    /* The keys and their index depend only on the values: most mutations
     * keep them, so the last ones are kept (building an index per input
     * would be most of the time spent). */
    static fuzz_values last;
    static segidx_t *ix;
    static int n;
    fuzz_values v;
    fuzz_values_from(&v, expr);
    if (!ix || memcmp(&v, &last, sizeof v) != 0) {
        segidx_free(ix);
        n = fuzz__keys(&v, keys);
        ix = fuzz_index(keys, n, ids);
        last = v;
    }
    long nc;
    int all;
    uint32_t *cand = fuzz_candidates(e, ix, &nc, &all);
    if (!exprscan_uses_index(e)) FUZZ_CHECK(all);
    for (int i = 0; i < n; i++) {
        int r = exprscan_eval(e, &keys[i]);
        FUZZ_CHECK(r == ES_FALSE || r == ES_TRUE || r == ES_UNKNOWN);
        if (!exprscan_parsed(e)) FUZZ_CHECK(r == ES_UNKNOWN);
        if (r != ES_FALSE && !all && !fuzz_in(cand, nc, ids[i])) {
            char s[64], d[64];
            flowkey_addr_str(keys[i].src, s, sizeof s);
            flowkey_addr_str(keys[i].dst, d, sizeof d);
            fprintf(stderr, "'%s' (%s): flow %s:%u > %s:%u proto %u vlans %u is %s but not a "
                    "candidate\n", expr, desc, s, keys[i].sport, d, keys[i].dport, keys[i].proto,
                    keys[i].vlans, r == ES_TRUE ? "TRUE" : "UNKNOWN");
            FUZZ_CHECK(!"a flow the expression may match is not a candidate");
        }
    }
    free(cand);
    exprscan_free(e);
    free(expr);
    return 0;
}
