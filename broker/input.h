/* input.h - where the broker's packets come from: VXLAN over UDP (batched
 * recvmmsg), a live interface (libpcap), or a pcap/pcapng file; from an
 * interface or a file optionally VXLAN-in-UDP frames to decapsulate.
 *
 * Every source hands over batches of inner Ethernet frames held in the
 * input's own preallocated buffers: the frames are writable (the broker
 * strips VLAN tags in place) and valid until the callback returns.
 */
#ifndef MSCOPE_INPUT_H
#define MSCOPE_INPUT_H

#include "decode.h"

#include <stddef.h>
#include <stdint.h>

#define INPUT_BATCH 64

typedef struct input_pkt {
    uint8_t *data;
    uint32_t caplen, origlen;
    int64_t ts_ns;
    uint32_t vni;
} input_pkt;

typedef struct input_batch {
    int n;
    input_pkt p[INPUT_BATCH];
} input_batch;

typedef void (*input_fn)(void *ctx, input_batch *b);

typedef struct input_stats {
    uint64_t rx_packets, rx_bytes;        /* messages (UDP) or frames (file, interface) read */
    uint64_t frames;                      /* inner frames handed to the broker */
    uint64_t not_decapsulated[VX__COUNT]; /* dropped: not valid VXLAN, by reason */
    uint64_t kernel_drops;                /* socket overflow (SO_RXQ_OVFL) or libpcap drops */
    uint64_t truncated;                   /* larger than the receive buffer: cut */
} input_stats;

typedef struct input_opts {
    const char *listen;         /* UDP "ADDR:PORT" (when neither iface nor read) */
    const char *iface;          /* live interface */
    const char *read;           /* file */
    const char *capture_filter; /* iface only */
    int decap_vxlan;            /* iface/file frames are VXLAN-in-UDP */
    uint16_t vxlan_port;        /* the UDP port recognised when decapsulating */
    int64_t rcvbuf;             /* UDP socket receive buffer */
    int64_t read_rate;          /* file: packets per second, 0 = as fast as possible */
} input_opts;

typedef struct input input_t;

/* Open the source. Returns NULL with err set. */
input_t *input_open(const input_opts *o, char *err, size_t errlen);

/* Read what is there, up to max_batches batches, waiting at most timeout_ms
 * for the first packet; fn is called once per batch. Returns the number of
 * packets handed over (0 after a timeout), -1 at the end of a file, or -2
 * when reading failed (the error is logged). */
int input_run(input_t *in, int max_batches, int timeout_ms, input_fn fn, void *ctx);

/* Counters so far. */
void input_get_stats(const input_t *in, input_stats *st);

void input_free(input_t *in);

#endif
