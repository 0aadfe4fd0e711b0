/* fuzz_appana.c - the application stream layer and its parsers
 * (recorder/appana.c, app_dns.c, app_tls.c, app_http.c): reassembly,
 * detection, DNS over UDP and TCP, TLS hellos, HTTP/1.x exchanges.
 *
 * An input is a sequence of packets of up to four flows, each packet
 *   byte 0   bit 0 direction (0: client to server), bit 1 UDP (else TCP),
 *            bit 2 FIN, bit 3 RST, bit 4 SYN, bits 5-6 the flow, bit 7:
 *            the flow ends after this packet (its final flow record)
 *   byte 1   the server port: 53, 443, 8080, 5353 (low two bits)
 *   byte 2-3 the segment's sequence number relative to the direction's
 *            next number, signed (big-endian): overlaps, holes, reordering
 *            (a SYN or FIN in order takes a number, as in TCP)
 *   byte 4-5 payload length (big-endian; cut at the input's end)
 *   then the payload;
 * one millisecond apart. One instance serves every input: its pools and
 * caches keep what earlier inputs left, which the layer must never read.
 * So that an input's outcome does not depend on the ones before it (as
 * libFuzzer requires), each input's flows have new ids and its clock
 * starts where the last input's ended plus more than the DNS timeout and a
 * sweep's interval: no sweep sees an earlier input's time as now, as one
 * did when every input restarted the clock at the same time. A flow's TCP
 * and UDP packets share its id, which our flow table never does: the layer
 * must keep them apart. Besides crashes, what every record must hold:
 * its JSON writes, its kind is one of the three, its times are not before
 * the first packet nor after the last, a DNS response time is not negative
 * (times only grow here), a TLS hello time and an HTTP response time are
 * within the input's span (negative when the ServerHello or the response
 * completed before the ClientHello or the request). tests/fuzz/mkcorpus.py
 * makes the seeds from the captures of apprig.py's scenarios in tests/data.
 */
#include "appana.h"
#include "apprec.h"
#include "fuzz.h"

#include <string.h>

static int64_t t_first, t_last;

static void fuzz__emit(void *ctx, const apprec *r)
{
    static char buf[APPREC_JSON_MAX];
    FUZZ_CHECK(r->kind == APPREC_DNS || r->kind == APPREC_TLS || r->kind == APPREC_HTTP);
    FUZZ_CHECK(apprec_json(r, "fuzz", buf, sizeof buf) > 0);
    FUZZ_CHECK(r->ts_ns >= t_first && r->ts_ns <= t_last);
    if (r->kind == APPREC_DNS && r->u.dns.has_response) FUZZ_CHECK(r->u.dns.response_ns >= 0);
    /* A ServerHello may complete before its ClientHello (the directions'
     * segments seen out of order): then the time is negative, as tshark's. */
    if (r->kind == APPREC_TLS && r->u.tls.has_server_hello)
        FUZZ_CHECK(r->u.tls.hello_rtt_ns >= t_first - t_last && r->u.tls.hello_rtt_ns <= t_last - t_first);
    /* An HTTP response may complete its header block before its request
     * is complete (an early answer such as a 413 to a body still coming):
     * then the time is negative, as tshark's frames would make it. */
    if (r->kind == APPREC_HTTP && r->u.http.has_response)
        FUZZ_CHECK(r->u.http.response_ns >= t_first - t_last && r->u.http.response_ns <= t_last - t_first);
    (*(unsigned *)ctx)++;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_quiet();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint16_t server_port[4] = { 53, 443, 8080, 5353 };
    static appana_t *a;
    static unsigned records;
    static uint64_t next_id = 1;
    char err[256];
    if (!a) {
        appana_opts o = { .max_flows = 8, .max_buffers = 4, .dns_timeout_ns = 3000000000LL,
                          .dns_ports = "53,5353" };
        a = appana_new(&o, fuzz__emit, &records, err, sizeof err);
        FUZZ_CHECK(a != NULL);
    }
    uint64_t ids[4];
    uint32_t next[4][2];
    for (int f = 0; f < 4; f++) {
        ids[f] = next_id++;
        next[f][0] = 1000u * (uint32_t)f + 1;
        next[f][1] = 0xfffff000u + 77u * (uint32_t)f; /* wraps soon */
    }
    static int64_t t_next = 1800000000000000000LL; /* 5 s + 1 ms a byte an input: 10^8 inputs of 64 KiB */
    int64_t ts = t_next;
    t_first = ts;
    t_last = ts + (int64_t)size * 1000000;
    size_t off = 0;
    while (size - off >= 6) {
        uint8_t b0 = data[off], port = data[off + 1] & 3;
        int16_t rel = (int16_t)(data[off + 2] << 8 | data[off + 3]);
        size_t n = (size_t)(data[off + 4] << 8 | data[off + 5]);
        off += 6;
        if (n > size - off) n = size - off;
        int dir = b0 & 1, f = (b0 >> 5) & 3;
        pkt_ana pa;
        memset(&pa, 0, sizeof pa);
        pa.usable = 1;
        pa.proto = (b0 & 2) ? 17 : 6;
        uint8_t cli[16] = { [10] = 0xff, [11] = 0xff, 10, 0, 0, 1 };
        uint8_t srv[16] = { [10] = 0xff, [11] = 0xff, 10, 0, 0, 2 };
        uint16_t cport = (uint16_t)(40000 + f);
        if (dir) pkt_ana_endpoints(&pa, srv, server_port[port], cli, cport);
        else pkt_ana_endpoints(&pa, cli, cport, srv, server_port[port]);
        pa.seq = next[f][dir] + (uint32_t)(int32_t)rel;
        pa.ack = next[f][!dir];
        pa.tcp_flags = (uint8_t)(0x10 | ((b0 & 4) ? 0x01 : 0) | ((b0 & 8) ? 0x04 : 0) |
                                 ((b0 & 16) ? 0x02 : 0));
        pa.payload_len = (uint32_t)n;
        if (pa.proto == 6 && rel >= 0) /* a SYN and a FIN take a number each */
            next[f][dir] = pa.seq + (uint32_t)n + ((b0 & 16) ? 1 : 0) + ((b0 & 4) ? 1 : 0);
        appana_packet(a, ids[f], ts, 0, NULL, &pa, data + off, (uint32_t)n);
        off += n;
        if (b0 & 0x80) {
            appana_flow_end(a, ids[f]);
            ids[f] = next_id++;
        }
        ts += 1000000;
    }
    appana_flush(a);
    t_next = t_last + 3000000000LL /* the DNS timeout */ + 2000000000LL /* > a sweep's interval */;
    appana_stats st;
    appana_get_stats(a, &st);
    FUZZ_CHECK(st.active == 0);
    return 0;
}
