/* filter.c - libpcap BPF compile and match (see filter.h). */
#include "filter.h"

#include "pcapio.h"
#include "xmalloc.h"

#include <pcap/pcap.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct filter {
    int all;
    struct bpf_program prog;
};

filter_t *filter_new(const char *expr, char *err, size_t errlen)
{
    filter_t *f = xcalloc(1, sizeof *f);
    if (!expr || !*expr) {
        f->all = 1;
        return f;
    }
    if (strlen(expr) > FILTER_EXPR_MAX) {
        snprintf(err, errlen, "filter expression of %zu bytes: at most %d (narrow it, e.g. with "
                 "net instead of many hosts)", strlen(expr), FILTER_EXPR_MAX);
        free(f);
        return NULL;
    }
    pcap_t *dead = pcap_open_dead_with_tstamp_precision(DLT_EN10MB, PCAPIO_SNAPLEN,
                                                        PCAP_TSTAMP_PRECISION_NANO);
    if (!dead) {
        snprintf(err, errlen, "pcap_open_dead() failed");
        free(f);
        return NULL;
    }
    if (pcap_compile(dead, &f->prog, expr, 1, PCAP_NETMASK_UNKNOWN) < 0) {
        snprintf(err, errlen, "bad filter '%s': %s", expr, pcap_geterr(dead));
        pcap_close(dead);
        free(f);
        return NULL;
    }
    pcap_close(dead);
    return f;
}

int filter_match(const filter_t *f, const uint8_t *data, uint32_t caplen, uint32_t origlen)
{
    if (f->all) return 1;
    struct pcap_pkthdr h;
    memset(&h, 0, sizeof h);
    h.caplen = caplen;
    h.len = origlen;
    return pcap_offline_filter(&f->prog, &h, data) != 0;
}

int filter_is_all(const filter_t *f) { return f->all; }

void filter_free(filter_t *f)
{
    if (!f) return;
    if (!f->all) pcap_freecode(&f->prog);
    free(f);
}
