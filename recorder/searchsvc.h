/* searchsvc.h - the recorder's search service: a ZeroMQ ROUTER (default
 * tcp://0.0.0.0:5557) that runs the search engine (search.h) over the data
 * directory for the coordinator and streams the answer back in chunks of at
 * most 1 MiB, as far as the requester's credit allows (NodeSearchRequest /
 * NodeSearchReply in proto/mirrorscope.proto).
 *
 * One thread, at a lower CPU priority than ingest, serves a bounded number of
 * searches round-robin; each holds one chunk buffer and its iterator, never
 * the answer. A search ends when it is done, cancelled, its requester has
 * disconnected, or the requester has granted no credit for idle_ns.
 */
#ifndef MSCOPE_SEARCHSVC_H
#define MSCOPE_SEARCHSVC_H

#include "bus.h"

#include <stddef.h>
#include <stdint.h>

#define SEARCHSVC_CHUNK (1u << 20)

typedef struct searchsvc_opts {
    const char *dir;       /* the data directory to search */
    const char *endpoint;  /* where to bind the ROUTER */
    const bus_sec *sec;    /* CURVE: our pair, who may search; NULL: plain */
    const char *token;     /* requests must carry it */
    const char *node;      /* our name, in replies */
    int max_searches;      /* at once; more are refused as busy */
    int64_t idle_ns;       /* default for queries that give no idle timeout */
} searchsvc_opts;

typedef struct searchsvc_stats {
    uint64_t requests;      /* messages received */
    uint64_t started, completed, failed;
    uint64_t cancelled;     /* by the requester */
    uint64_t abandoned;     /* requester gone or silent */
    uint64_t refused;       /* bad token, busy, garbage */
    uint64_t refused_peers; /* connections refused by CURVE (key not allowed) */
    uint64_t chunks, packets, bytes;
    uint64_t active;        /* now */
    uint64_t buffered_bytes;     /* in chunk buffers now */
    uint64_t buffered_bytes_max; /* ever */
} searchsvc_stats;

typedef struct searchsvc searchsvc_t;

/* Bind and start the thread. Returns NULL with err set. */
searchsvc_t *searchsvc_start(const searchsvc_opts *o, char *err, size_t errlen);

void searchsvc_get_stats(searchsvc_t *s, searchsvc_stats *out);

/* Stop the thread (searches in progress end), close, free. Accepts NULL. */
void searchsvc_stop(searchsvc_t *s);

#endif
