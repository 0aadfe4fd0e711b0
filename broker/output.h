/* output.h - one destination of the broker: VXLAN or plain UDP to host:port,
 * GRE (transparent Ethernet bridging) to a host, a rotating set of pcap
 * files, or a local interface (frames injected with a packet socket).
 *
 * Socket outputs queue frames and send them in one sendmmsg() per batch
 * (output_flush); the frames are borrowed until then. An output whose socket,
 * file or interface cannot be opened stays "down", counts every packet it
 * should have sent, and tries again every few seconds: one broken tool never
 * stops the others.
 */
#ifndef MSCOPE_OUTPUT_H
#define MSCOPE_OUTPUT_H

#include "brconfig.h"

#include <stdint.h>
#include <stdio.h>

/* Why a packet could not be sent (counted per output). */
enum output_err {
    OUT_ERR_DOWN = 0,    /* the output is not open (socket/file/interface failed) */
    OUT_ERR_REFUSED,     /* ECONNREFUSED: ICMP port unreachable from the tool */
    OUT_ERR_UNREACHABLE, /* no route, network or host unreachable, interface down */
    OUT_ERR_TOO_BIG,     /* larger than a datagram or the interface MTU */
    OUT_ERR_NO_BUFFER,   /* ENOBUFS/EAGAIN: the socket or device queue was full */
    OUT_ERR_IO,          /* writing a pcap file failed */
    OUT_ERR_OTHER,
    OUT_ERR__COUNT
};

typedef struct output_stats {
    uint64_t sent, bytes;              /* frames handed to the kernel / written */
    uint64_t errors[OUT_ERR__COUNT];   /* frames lost, by reason */
    uint64_t files;                    /* pcap: files started */
    uint64_t files_deleted;            /* pcap: removed by max-files */
} output_stats;

typedef struct output output_t;

/* Open the output a [tool] section describes (conf is copied). Never NULL:
 * a failure to open is logged and the output retries from output_tick(). */
output_t *output_new(const brconf_tool *conf);

/* Queue (sockets) or write (pcap) one frame of caplen bytes (origlen on the
 * wire). data is borrowed until the next output_flush(). */
void output_push(output_t *o, int64_t ts_ns, const uint8_t *data, uint32_t caplen,
                 uint32_t origlen);

/* Send what is queued (one sendmmsg per 64 frames). */
void output_flush(output_t *o);

/* Once a second or so: reopen a down output, write buffered pcap data out,
 * log errors seen since the last tick. now_ns is CLOCK_MONOTONIC. */
void output_tick(output_t *o, int64_t now_ns);

/* The tool section this output was made from (for reload comparisons). */
const brconf_tool *output_conf(const output_t *o);

void output_get_stats(const output_t *o, output_stats *st);

/* Frames lost between the last two output_tick() calls (about the last
 * second): what says the output is failing now rather than once. */
uint64_t output_recent_losses(const output_t *o);

/* 1 when the output is open. */
int output_is_up(const output_t *o);

/* Short names for the error reasons ("refused", ...). */
const char *output_err_name(int reason);

/* Flush, close and free. Accepts NULL. */
void output_free(output_t *o);

#endif
