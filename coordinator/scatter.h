/* scatter.h - the coordinator's distributed search: one query sent to every
 * recorder's search service (for a drill-down, each recorder with its own
 * flows: drill.h), their time-ordered streams merged (merge.h) and streamed
 * to the client as they come.
 *
 * Everything runs on the coordinator's libuv loop: the module owns one
 * DEALER per (search, node) and watches it there (buswatch.h), with a tick
 * for the timeouts. Memory per search is bounded by the nodes
 * times the per-node window of 1 MiB chunks, plus one output chunk: a node
 * gets one more chunk of credit only when one of its chunks has been merged
 * and sent, and chunks go to the client only as far as its credit allows.
 */
#ifndef MSCOPE_SCATTER_H
#define MSCOPE_SCATTER_H

#include "bus.h"
#include "metrics.h"
#include "mirrorscope.pb-c.h"

#include <jansson.h>
#include <uv.h>

#include <stddef.h>
#include <stdint.h>

typedef struct scatter scatter_t;

typedef struct scatter_node {
    const char *name;
    const char *endpoint; /* "" when the node announces no search service */
    const char *key;      /* its CURVE public key (from the bus), "" when plain */
    /* A drill-down: the flows asked of this node (SearchQuery.flows),
     * borrowed until scatter_start() returns; n_flows 0 = the query's own. */
    Mirrorscope__FlowSelection **flows;
    size_t n_flows;
} scatter_node;

typedef struct scatter_opts {
    const char *token;        /* the cluster's search token, sent to recorders */
    const busauth_pair *self; /* CURVE: our key pair (copied); NULL: plain */
    uint32_t window;          /* chunks in flight per node */
    int64_t node_timeout_ns;  /* default when the query gives none */
    int64_t idle_timeout_ns;  /* default for the client */
    int max_searches;         /* at once */
} scatter_opts;

typedef struct scatter_stats {
    uint64_t searches, completed, partial, failed, cancelled, abandoned;
    uint64_t packets, bytes, duplicates, chunks_out;
    uint64_t active;
    uint64_t bytes_held;      /* chunks held for merging and output now */
    uint64_t bytes_held_max;  /* ever */
} scatter_stats;

/* Where a search's answer goes when it is not the RPC client on the
 * ROUTER: send() takes each Response (chunks, as far as the credit goes,
 * then the trailer) and returns 0, or -1 when the client has gone (the
 * search then stops); ended() is called once when the search is over for
 * any reason (after the trailer, a cancel, a client gone or idle), after
 * which the search calls nothing more. ctx is the caller's. */
typedef struct scatter_sink {
    int (*send)(void *ctx, const Mirrorscope__Response *resp);
    void (*ended)(void *ctx);
    void *ctx;
} scatter_sink;

/* rpc: the ROUTER the clients talk to (answers are sent on it). The
 * module's handles live on loop until scatter_free(). */
scatter_t *scatter_new(uv_loop_t *loop, bus_rpc_t *rpc, const scatter_opts *o);

/* Start a search for client (request id: the two name it for credit and
 * cancel) over nodes (n, sorted by name by the caller). The answer goes to
 * sink (copied), or with sink NULL to client on the ROUTER. Returns 0 when
 * it runs (the answer streams from now on), or -1 with err set (nothing was
 * sent, no sink callback comes; the caller answers with an error). */
int scatter_start(scatter_t *sc, const bus_peer *client, uint64_t id,
                  const Mirrorscope__SearchQuery *q, const scatter_node *nodes, int n,
                  const scatter_sink *sink, char *err, size_t errlen);

/* A drill-down (drill.h) started this search: its trailer tells how many
 * flows were selected, whether the limit cut the selection, and how many
 * belong to recorders not asked (which makes the answer partial). */
void scatter_note_flows(scatter_t *sc, const bus_peer *client, uint64_t id, uint64_t flows,
                        int limited, uint64_t unreachable);

/* A running search's trailer as it stands (JSON as pbjson renders it:
 * each node's status so far - pending, running, or how it ended - and the
 * packets and bytes sent until now); NULL when the search is not running. */
json_t *scatter_progress_json(scatter_t *sc, const bus_peer *client, uint64_t id);

/* The client grants n more chunks / cancels. Unknown ids are ignored. */
void scatter_credit(scatter_t *sc, const bus_peer *client, uint64_t id, uint32_t n);
void scatter_cancel(scatter_t *sc, const bus_peer *client, uint64_t id);

/* Read what the nodes sent, merge, send to clients as far as their credit
 * goes, enforce timeouts. Runs by itself on the loop; call it after
 * granting credit so the client's chunks go at once. */
void scatter_work(scatter_t *sc);

void scatter_get_stats(const scatter_t *sc, scatter_stats *out);

/* Searches' durations, start to trailer, in seconds. */
const metrics_hist *scatter_latency(const scatter_t *sc);

/* Cancel everything (nodes are told), free. The loop must run once more
 * to close the module's handles. Accepts NULL. */
void scatter_free(scatter_t *sc);

/* The search token sent to recorders from now on (a reload: SIGHUP). */
void scatter_set_token(scatter_t *sc, const char *token);

#endif
