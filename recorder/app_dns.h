/* app_dns.h - DNS transactions (issue 15) from UDP datagrams and from DNS
 * over TCP (length-prefixed messages, several per connection): one record
 * per query, paired with its response or emitted unanswered after a
 * timeout or at the flow's end. docs/APP_ANALYTICS.md gives the rules and
 * the tshark fields each value matches.
 *
 * Both are parsers of the appstream.h contract with the same per-flow
 * state: app_dns_udp_parser is handed one datagram per call (the view holds
 * exactly it), app_dns_tcp_parser a connection's reassembled bytes. The stream
 * layer (appana.c) chooses them by port.
 */
#ifndef MSCOPE_APP_DNS_H
#define MSCOPE_APP_DNS_H

#include "appstream.h"

#include <stddef.h>
#include <stdint.h>

extern const app_parser app_dns_udp_parser;
extern const app_parser app_dns_tcp_parser;

/* The name at off in the DNS message m (len bytes; compression pointers
 * followed) in tshark 4.0's presentation (dns.qry.name): labels joined by
 * '.', no trailing dot, "<Root>" for the root; ASCII control characters as
 * C escapes (\t, \n, ...) or \ooo, bytes that are not UTF-8 as U+FFFD, and
 * code points that are not printable as \uXXXX or \UXXXXXXXX (tshark's
 * format_text()). Writes a NUL-terminated string of at most outsz bytes
 * into out (outsz >= 8). Returns the offset after the name in m (where the
 * question's type follows), or 0 when the name is malformed (a pointer out
 * of bounds or in a loop, an extended label type, a name past len). */
size_t app_dns_name(const uint8_t *m, size_t len, size_t off, char *out, size_t outsz, int *cut);

#endif
