/* searchsvc.h - the recorder's search service: a ZeroMQ ROUTER (default
 * tcp://0.0.0.0:5557) that runs the search engine (search.h) over the data
 * directory for the coordinator and streams the answer back in chunks of at
 * most 1 MiB, as far as the requester's credit allows (NodeSearchRequest /
 * NodeSearchReply in proto/mirrorscope.proto).
 *
 * One thread, at a lower CPU priority than ingest, serves a bounded number of
 * searches round-robin; each holds one chunk buffer and its iterator, never
 * the answer. A search ends when it is done, cancelled, its requester has
 * disconnected, or the requester has granted no credit for idle_ns. A
 * search starts only with the cluster's search token (changed at run time
 * by searchsvc_set_token); its credit and cancel messages are its own by
 * requester and id, whatever token they carry.
 */
#ifndef MSCOPE_SEARCHSVC_H
#define MSCOPE_SEARCHSVC_H

#include "bus.h"

#include <stddef.h>
#include <stdint.h>

#define SEARCHSVC_CHUNK (1u << 20)
/* A request carries a drill-down's flows (SearchQuery.flows: up to 100000,
 * about 80 bytes each); it comes only from the coordinator (CURVE). */
#define SEARCHSVC_REQUEST_MAX (16u << 20)

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

/* The token a search must carry to start from now on (a reload: SIGHUP).
 * Searches already running go on: their credit and cancel messages are
 * known by peer and id, whatever token they carry. */
void searchsvc_set_token(searchsvc_t *s, const char *token);

/* ---- without a socket or a thread (tests/fuzz/fuzz_searchsvc.c) ----------
 * The same service driven by its caller: each request as it came off the
 * socket from peer (searchsvc_handle(); at most SEARCHSVC_REQUEST_MAX bytes are
 * taken, a longer one is refused as the socket refuses it), then rounds of
 * work (searchsvc_round(), the thread's loop body; returns 1 while some
 * search could use another turn at once). Replies go to send(ctx, peer,
 * msg, len), which returns 0 or -errno (-EHOSTUNREACH: the requester went).
 * searchsvc_stop() ends what still runs. */
typedef int (*searchsvc_send_fn)(void *ctx, const bus_peer *peer, const uint8_t *msg, size_t len);
searchsvc_t *searchsvc_new_unbound(const searchsvc_opts *o, searchsvc_send_fn send, void *ctx);
void searchsvc_handle(searchsvc_t *s, const bus_peer *peer, const uint8_t *msg, size_t len);
int searchsvc_round(searchsvc_t *s);

/* Stop the thread (searches in progress end), close, free. Accepts NULL. */
void searchsvc_stop(searchsvc_t *s);

#endif
