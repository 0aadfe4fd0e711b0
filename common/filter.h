/* filter.h - tcpdump filter expressions, compiled and matched by libpcap, so
 * that a search selects exactly the packets `tcpdump -r FILE 'EXPR'` would.
 * The only module that calls pcap_compile.
 */
#ifndef MSCOPE_FILTER_H
#define MSCOPE_FILTER_H

#include <stddef.h>
#include <stdint.h>

typedef struct filter filter_t;

/* The longest expression compiled: libpcap's optimizer takes time that grows
 * about as the cube of an expression's terms (a fuzzed 4 KB one took 25 s,
 * 1 KB at most 0.3 s), and searches compile what clients send. */
#define FILTER_EXPR_MAX 1024

/* Compile expr for Ethernet frames. An empty or NULL expr matches everything.
 * Returns NULL with libpcap's own message in err when the expression is bad,
 * or ours when it is longer than FILTER_EXPR_MAX bytes. */
filter_t *filter_new(const char *expr, char *err, size_t errlen);

/* Run the compiled program on one packet. Returns 1 on match, 0 otherwise. */
int filter_match(const filter_t *f, const uint8_t *data, uint32_t caplen, uint32_t origlen);

/* 1 when the filter accepts every packet (no expression). */
int filter_is_all(const filter_t *f);

void filter_free(filter_t *f);

#endif
