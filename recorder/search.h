/* search.h - the recorder's search engine: time range + tcpdump expression
 * over every segment of a data directory, answered in time order.
 *
 * Used by `mscope-recorder search` and by the recorder's search service
 * (searchsvc.c): it is an iterator, so a caller can stream the answer with
 * credit-based flow control and stop (cancel) at any packet.
 */
#ifndef MSCOPE_SEARCH_H
#define MSCOPE_SEARCH_H

#include <stddef.h>
#include <stdint.h>

/* One flow record's packets: those the analysis gave that record (same
 * observation point, protocol and address/port pair either way, inside its
 * time span). */
typedef struct search_flow {
    uint32_t vni;
    uint8_t observer[16];
    uint8_t proto;
    uint8_t a[16], b[16]; /* IPv4 mapped; either way round */
    uint16_t a_port, b_port;
    int64_t first_ns, last_ns; /* inclusive */
} search_flow;

typedef struct search_query {
    int64_t from_ns;      /* inclusive */
    int64_t to_ns;        /* exclusive */
    const char *expr;     /* tcpdump filter; NULL or "" = all */
    uint64_t max_packets; /* 0 = no limit */
    uint64_t max_bytes;   /* captured bytes; 0 = no limit */
    const search_flow *flows; /* nflows > 0: only these flows' packets (and expr's) */
    size_t nflows;
} search_query;

typedef struct search_pkt {
    int64_t ts_ns;
    uint32_t caplen, origlen;
    const uint8_t *data; /* borrowed until the next search_next() */
    uint64_t segment;
} search_pkt;

typedef struct search_stats {
    uint64_t packets, bytes;      /* returned */
    uint64_t segments;            /* overlapping the time range */
    uint64_t segments_skipped;    /* outside it by the catalog: index not opened */
    uint64_t segments_pruned;     /* in it, but no match by the catalog's summary: not opened */
    uint64_t segments_unindexed;  /* indexed on the fly (open or unsealed) */
    uint64_t candidates;          /* packets read and matched with BPF */
    uint64_t flows_selected;      /* flows whose packets were read */
    uint64_t indexes_damaged;     /* failed their checksums: rebuilt from the segment */
    uint64_t bad_records;         /* index/file disagreements, skipped */
    int index_used;               /* the expression narrowed the flows */
    int limited;                  /* stopped by max_packets/max_bytes */
} search_stats;

typedef struct search search_t;

/* Prepare a search over dir (q->flows is copied). Returns NULL with err set
 * for a bad filter (libpcap's message) or an unreadable directory. */
search_t *search_new(const char *dir, const search_query *q, char *err, size_t errlen);

/* The next matching packet in (time, segment, arrival) order. Returns 1 with
 * *p filled, 0 at the end (or a limit), or -errno on a read error. */
int search_next(search_t *s, search_pkt *p);

void search_get_stats(const search_t *s, search_stats *out);
void search_free(search_t *s);

#endif
