/* ingest.h - the three ways packets come in, one pipeline after decoding:
 *   - VXLAN over UDP (Traffic Mirroring through an NLB), batched recvmmsg,
 *     optionally several threads sharing the port with SO_REUSEPORT;
 *   - a live interface through libpcap;
 *   - a pcap/pcapng file (imports and tests).
 * Each source decapsulates (VXLAN), decodes the inner frame, counts what is
 * odd, keys the packet by flow and copies it into a pipeline batch.
 */
#ifndef MSCOPE_INGEST_H
#define MSCOPE_INGEST_H

#include "decode.h"
#include "pipeline.h"

#include <stddef.h>
#include <stdint.h>

typedef struct ingest_stats {
    uint64_t rx_packets, rx_bytes;      /* messages/frames received */
    uint64_t stored_inner;              /* handed to the writer */
    uint64_t not_decapsulated[VX__COUNT]; /* dropped: no inner frame, by reason */
    uint64_t anomalies[DEC__COUNT];     /* stored anyway, by reason */
    uint64_t queue_drops;               /* dropped: the writer was behind */
    uint64_t kernel_drops;              /* dropped by the kernel (socket/pcap buffer) */
    uint64_t truncated;                 /* larger than the receive buffer */
} ingest_stats;

/* Add b into a. */
void ingest_stats_add(ingest_stats *a, const ingest_stats *b);

typedef struct ingest_opts {
    pipeline_t *pipe;
    int decap_vxlan;      /* files/interfaces: frames are outer VXLAN-in-UDP */
    uint16_t vxlan_port;  /* UDP port recognised when decapsulating frames */
    const char *listen;   /* "ADDR:PORT" or "[ADDR6]:PORT" for the UDP source */
    int threads;          /* UDP receive threads (SO_REUSEPORT) */
    int64_t rcvbuf;       /* requested socket receive buffer, bytes */
    const char *iface;    /* live capture interface */
    const char *capture_filter;
    int analysis;         /* prepare each packet for the flow table (off: --no-analysis) */
} ingest_opts;

/* Import a file into the pipeline, waiting for room (nothing is dropped for
 * speed). *stop is polled between batches. Returns 0 when the whole file was
 * read, -1 with err set when it could not be opened or was cut short (what
 * was read before is still stored). */
int ingest_file(const ingest_opts *o, const char *path, const _Atomic int *stop, ingest_stats *st,
                char *err, size_t errlen);

/* A running live source (UDP listener or interface capture). */
typedef struct ingest_live ingest_live_t;

/* Bind/open and start the receive thread(s). Returns NULL with err set. */
ingest_live_t *ingest_live_start(const ingest_opts *o, char *err, size_t errlen);

/* Snapshot of the counters of all threads so far (thread-safe). */
void ingest_live_stats(ingest_live_t *l, ingest_stats *out);

/* Are the receive threads working? Each loops at least every few hundred
 * milliseconds even when no packet comes; one that ended on an error (a
 * capture interface that went away) or has not looped for stall_ns is
 * unwell. Returns how many are, with the reasons in why (len bytes). */
int ingest_live_health(ingest_live_t *l, int64_t stall_ns, char *why, size_t len);

/* Stop the threads, submit what they hold, add their final counters into
 * *final (may be NULL), free. Accepts NULL. */
void ingest_live_stop(ingest_live_t *l, ingest_stats *final);

#endif
