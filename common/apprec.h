/* apprec.h - an application transaction record (issue 15): one DNS query,
 * one TLS handshake or one HTTP/1.x request/response pair, as the recorder's
 * application thread makes it and as the bus, the coordinator's tables, the CLI
 * and the REST API carry it. docs/APP_ANALYTICS.md says how each field is
 * measured and where tshark shows the same value.
 *
 * The JSON names are fixed by the issue (outside tools and the oracle test,
 * tests/lib/app_oracle.py, rely on them); apprec_json() is the one writer.
 * Values that can be absent carry a has_ flag (JSON null) rather than a
 * sentinel, because every number a sentinel could take is a legal value on
 * the wire somewhere.
 *
 * Strings are bytes as the parser presents them (DNS names in tshark's
 * presentation form, HTTP method/URI/Host as tshark shows them: bytes from
 * 0x80 as U+FFFD), NUL-terminated, cut at
 * the array's size with `truncated` set; the JSON writer escapes control
 * characters and bytes that are not UTF-8 (as \u00XX, so that nothing is
 * lost or made invalid).
 */
#ifndef MSCOPE_APPREC_H
#define MSCOPE_APPREC_H

#include <stddef.h>
#include <stdint.h>

typedef enum apprec_kind {
    APPREC_DNS = 1,
    APPREC_TLS = 2,
    APPREC_HTTP = 3,
} apprec_kind;

/* Bounds of the text fields, NUL included. A DNS name in presentation form
 * is at most 253 characters, but escapes (\\ddd) can make it four times as
 * long; an SNI host name is at most 255 bytes on the wire; Host headers and
 * URIs are cut at what the HTTP parser keeps (docs/APP_ANALYTICS.md). */
#define APPREC_NAME_MAX 1024 /* qname, sni, host */
#define APPREC_METHOD_MAX 24
#define APPREC_URI_MAX 4096
/* The ALPN list offered: at most APPREC_ALPN_MAX names, their bytes packed
 * as in the extension (a length byte, then the name) in alpn[] of
 * APPREC_ALPN_BYTES. The rig's longest offer is 40 names, ~1.7 KB. */
#define APPREC_ALPN_MAX 64
#define APPREC_ALPN_BYTES 2048

typedef struct apprec_dns {
    uint8_t transport; /* 17 (JSON "udp") or 6 ("tcp") */
    uint16_t id;
    uint16_t qtype;
    uint8_t has_response; /* rcode, response_ns: null without it */
    uint16_t rcode;
    uint16_t answers; /* the response's answer count; 0 if unanswered */
    int64_t response_ns;
    char qname[APPREC_NAME_MAX];
} apprec_dns;

typedef struct apprec_tls {
    uint16_t record_version; /* of the record that held the ClientHello */
    uint16_t client_version; /* the ClientHello's legacy version */
    uint8_t has_server_hello; /* version, cipher, hello_rtt_ns: null without it */
    uint16_t version;         /* negotiated: supported_versions if present */
    uint16_t cipher;
    int64_t hello_rtt_ns;
    uint8_t has_sni;
    char sni[APPREC_NAME_MAX];
    uint16_t alpn_count;
    uint16_t alpn_len; /* bytes used in alpn[] */
    uint8_t alpn[APPREC_ALPN_BYTES];
} apprec_tls;

typedef struct apprec_http {
    char method[APPREC_METHOD_MAX];
    uint8_t has_host;
    char host[APPREC_NAME_MAX];
    char uri[APPREC_URI_MAX];
    uint8_t has_response; /* status, response_body_bytes, response_ns: null without it */
    uint16_t status;
    uint64_t request_body_bytes;
    uint64_t response_body_bytes;
    int64_t response_ns;
} apprec_http;

/* One record. The common fields name the flow as its flow record does
 * (flow_id, vni, observer, IPv4 mapped into 16 bytes); the client is the
 * sender of the query, ClientHello or request. */
typedef struct apprec {
    uint8_t kind; /* apprec_kind */
    uint8_t truncated; /* a text field was cut at its bound */
    uint64_t flow_id;
    uint32_t vni;
    uint8_t observer[16];
    uint8_t client_ip[16], server_ip[16];
    uint16_t client_port, server_port;
    int64_t ts_ns; /* the first packet of the request */
    union {
        apprec_dns dns;
        apprec_tls tls;
        apprec_http http;
    } u;
} apprec;

/* Returns the JSON name of a kind ("dns", "tls", "http") or NULL. */
const char *apprec_kind_name(int kind);

/* Copies at most n bytes of s into dst (of size dstsize), NUL-terminated;
 * sets r->truncated when they do not fit. For parsers filling text fields. */
void apprec_text(apprec *r, char *dst, size_t dstsize, const void *s, size_t n);

/* Bytes s[0, n) as tshark 4.0 presents a text field in its output (its
 * format_text()): printable ASCII as it is, control characters as C
 * escapes (\t, \n, ...) or \ooo, bytes that are not UTF-8 as U+FFFD, code
 * points that are not printable as \uXXXX or \UXXXXXXXX (DNS names); with
 * ascii (a field tshark reads as ASCII and prints as it is: the SNI, ALPN
 * names) bytes below 0x80 as they are and every byte from 0x80 as U+FFFD. Writes a NUL-terminated string of at most outsz bytes into out,
 * and sets *cut when it did not fit. DNS names and TLS names use it, so
 * that the records equal tshark's text byte for byte. */
void apprec_tshark_text(char *out, size_t outsz, const void *s, size_t n, int ascii, int *cut);

/* Appends one ALPN name; sets r->truncated when it does not fit. */
void apprec_alpn_add(apprec *r, const void *name, size_t n);

/* One JSON object (no newline, not NUL-terminated) into buf, with the
 * fields of the issue in a fixed order; node names the recorder. Returns
 * the length, or -1 if buf is too small (APPREC_JSON_MAX always
 * suffices for node names under 256 bytes). */
#define APPREC_JSON_MAX 40960
int apprec_json(const apprec *r, const char *node, char *buf, size_t len);

#endif
