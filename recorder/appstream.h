/* appstream.h - what an application parser over TCP (DNS over TCP, TLS,
 * HTTP/1.x) sees of a connection, and how it hands back records. The
 * contract between the stream layer (recorder/appana.c: reassembly, per-flow
 * slots, detection, output) and the parsers (one file per protocol), so
 * that each parser is a pure function of bytes and times, testable and
 * fuzzable on its own. docs/APP_ANALYTICS.md gives the rules behind it.
 *
 * The stream layer reassembles each direction in sequence: the first copy
 * of every byte counts (a retransmission never completes a message: tshark
 * dissects the first copy), out-of-order data is held within a bound until
 * the hole is filled. After each packet that extends a direction's
 * in-order data, the parser of the flow is called with a view of that
 * direction's bytes it has not consumed yet; it consumes whole messages (or
 * message bodies it only counts) and returns how many bytes it consumed.
 * What it leaves stays in the view, and comes back with more bytes appended,
 * up to the layer's bound per direction; a parser that needs more than the
 * bound to make progress is told so by a gap.
 *
 * Times: every byte has the time of the packet that carried its first copy
 * (app_view_ts); the packet whose arrival made the view's last bytes
 * contiguous is done_ns: "the packet that completed a message" is the
 * done_ns of the call in which the message's last byte became visible. When
 * a held-back segment fills a hole, the bytes it releases all complete at
 * its time.
 */
#ifndef MSCOPE_APPSTREAM_H
#define MSCOPE_APPSTREAM_H

#include "apprec.h"

#include <stddef.h>
#include <stdint.h>

/* One direction of a flow as the parser sees it now. dir is 0 for the
 * direction of the flow's first payload (the one detection looked at), 1
 * for the other. */
typedef struct app_view {
    const uint8_t *p; /* the unconsumed in-order bytes */
    size_t len;
    int64_t done_ns;  /* the packet that made p[len - 1] visible */
    int dir;
    int fin;          /* this direction has ended (FIN/RST, or the flow ended):
                         no byte will follow p[len - 1] */
    /* The time of the packet that carried p[off] (its first copy). */
    int64_t (*ts_at)(const void *ctx, size_t off);
    const void *ts_ctx;
} app_view;

static inline int64_t app_view_ts(const app_view *v, size_t off) { return v->ts_at(v->ts_ctx, off); }

/* Records go out through the layer, which fills the common fields (flow_id,
 * node, vni, observer) and the endpoints: client_dir is the direction
 * whose sender is the client (the query's, ClientHello's or request's). */
typedef void (*app_emit_fn)(void *ctx, int client_dir, apprec *r);

/* What a parser drops or cannot read, counted per protocol (the layer
 * keeps one per parser and shows them in stats.json and the metrics). */
typedef struct app_counts {
    uint64_t records;   /* emitted */
    uint64_t malformed; /* messages that did not parse (bytes skipped or flow given up) */
    uint64_t gaps;      /* messages lost to a gap */
    uint64_t dropped;   /* pending requests/queries dropped at a per-flow bound */
    uint64_t unmatched; /* responses to no request seen (pairing failed) */
} app_counts;

typedef struct app_out {
    app_emit_fn emit;
    void *ctx;
    app_counts *counts;
} app_out;

/* What a detector says of a flow's first payload bytes. */
enum {
    APP_DETECT_NO = 0,   /* not this protocol: never look again */
    APP_DETECT_YES = 1,
    APP_DETECT_MORE = 2, /* too few bytes to say yet */
};

/* What parse returns when it wants no more bytes of the flow (a TLS
 * handshake whose ServerHello was seen): the layer calls end, frees the
 * flow's state and ignores its later packets. */
#define APP_PARSE_DONE ((size_t)-1)

/* A parser's entry points, per protocol (TLS and HTTP/1.x; DNS over TCP in
 * the same form). state is the parser's per-flow state, of state_size
 * bytes, made by init in memory the layer owns (a preallocated pool: no
 * allocation per flow); parse consumes from v and returns the bytes it
 * consumed; gap says bytes of direction dir were lost (a hole the bound
 * could not hold, or a parser stuck at the bound): give up the message in
 * progress, count it, resynchronise if the protocol allows; end says the
 * flow ended: emit what is pending (an unanswered request, a handshake
 * without its ServerHello) and forget the state. expire (optional, NULL
 * for parsers that only finish at the flow's end) emits what has waited
 * since before before_ns (an unanswered DNS query after the timeout) and
 * returns how many requests are still pending: the layer calls it as
 * packet time passes, and frees a UDP flow's state when nothing is
 * pending. */
typedef struct app_parser {
    const char *name;
    size_t state_size;
    int (*detect)(const uint8_t *p, size_t len);
    void (*init)(void *state);
    size_t (*parse)(void *state, const app_view *v, const app_out *out);
    void (*gap)(void *state, int dir);
    void (*end)(void *state, const app_out *out);
    int (*expire)(void *state, int64_t before_ns, const app_out *out);
} app_parser;

#endif
