/* flowrec.h - a flow record as published and printed: one bidirectional
 * conversation seen from one observation point, with per-direction TCP
 * metrics defined as Wireshark's TCP analysis defines them
 * (docs/TCP_ANALYTICS.md). The same fields go to protobuf and to JSON.
 */
#ifndef MSCOPE_FLOWREC_H
#define MSCOPE_FLOWREC_H

#include <stddef.h>
#include <stdint.h>

typedef struct flowrec_stat {
    int64_t min, max, sum; /* nanoseconds */
    uint64_t count;
} flowrec_stat;

typedef struct flowrec_dir {
    uint64_t packets, ip_bytes, payload_bytes;
    uint32_t retransmissions, fast_retransmissions, spurious_retransmissions, out_of_order,
        dup_acks, lost_segments, zero_windows, window_full, keep_alives, rsts, fins;
    flowrec_stat rtt;
} flowrec_dir;

#define FLOWREC_HS_SYN 0x01
#define FLOWREC_HS_SYNACK 0x02
#define FLOWREC_HS_ACK 0x04
#define FLOWREC_HS_IRTT 0x08

typedef struct flowrec {
    uint64_t flow_id;
    uint32_t vni;
    uint8_t observer[16];
    uint8_t proto;
    uint8_t client_ip[16], server_ip[16]; /* IPv4 mapped */
    uint16_t client_port, server_port;
    int64_t first_ns, last_ns;
    flowrec_dir c2s, s2c;
    uint8_t hs_seen; /* FLOWREC_HS_* */
    int64_t syn_ns, synack_ns, ack_ns, initial_rtt_ns;
    flowrec_stat app_response;
    char conn_state[8];
    char history[24];
    int final;
} flowrec;

/* One JSON object (no newline, not NUL-terminated) into buf; node names the
 * recorder. Returns the length, or -1 if buf is too small (2 KiB always
 * suffices for node names under 256 bytes). */
int flowrec_json(const flowrec *r, const char *node, char *buf, size_t len);

#endif
