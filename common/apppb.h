/* apppb.h - an application transaction record (apprec.h) to and from its
 * protobuf message (proto/mirrorscope.proto's AppRecord): the recorder's
 * publisher fills messages with it; the coordinator reads what the bus
 * brings back into records (which is also where anything a record cannot
 * hold is refused), and so does the CLI with what the RPC API answers,
 * printing them with the recorder's own JSON writer (apprec_json).
 */
#ifndef MSCOPE_APPPB_H
#define MSCOPE_APPPB_H

#include "apprec.h"
#include "mirrorscope.pb-c.h"

/* A record's message and every sub-message it points to, so that filling
 * one allocates nothing. */
typedef struct apppb {
    Mirrorscope__AppRecord msg;
    Mirrorscope__Endpoint client, server;
    Mirrorscope__DnsTransaction dns;
    Mirrorscope__TlsHandshake tls;
    Mirrorscope__HttpTransaction http;
    ProtobufCBinaryData alpn[APPREC_ALPN_MAX];
} apppb;

/* Fill p->msg from r. Addresses are 4 bytes for IPv4, 16 for IPv6. p->msg
 * points into p and into r (addresses, text): both must outlive its
 * packing. A record of no known kind gets no sub-message (the reader then
 * refuses it). Cannot fail. */
void apppb_fill(apppb *p, const apprec *r);

/* r from m, the inverse of apppb_fill(). Refuses, rather than cuts or
 * wraps, what r cannot hold as it is: no kind, an address that is neither
 * 4 nor 16 bytes (none gives zeros), a port or a 16-bit field beyond 65535,
 * text longer than its field or holding a NUL byte, an ALPN list beyond
 * APPREC_ALPN_MAX names or APPREC_ALPN_BYTES bytes or with an empty name.
 * Returns 0, or -1 with *why naming the field (r is then partly filled). */
int apppb_read(apprec *r, const Mirrorscope__AppRecord *m, const char **why);

/* One aggregate (the API's AppAggregate) as a JSON object (no newline, not
 * NUL-terminated), the one writer of the CLI's and the REST API's: kind,
 * minute_ns (with by_minute; else absent), name, endpoint (any bytes, as
 * apprec_json writes text), server {ip, port}, count, errors,
 * response_count, response_sum_ns, p50_ns, p95_ns, p99_ns (null when no
 * record had a response). Returns the length, or -1 if buf is too small
 * (APPPB_AGG_JSON_MAX always suffices). */
#define APPPB_AGG_JSON_MAX 40960
int apppb_aggregate_json(const Mirrorscope__AppAggregate *a, int by_minute, char *buf, size_t len);

#endif
