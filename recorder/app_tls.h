/* app_tls.h - TLS handshakes (issue 15): one record per connection with
 * its ClientHello (record and client versions, SNI, the ALPN names offered)
 * and, when seen, its ServerHello (the negotiated version and cipher) and
 * the time between the two. A parser of the appstream.h contract; the
 * stream layer (appana.c) detects TLS from the bytes. docs/APP_ANALYTICS.md
 * gives the rules and the tshark fields each value matches.
 */
#ifndef MSCOPE_APP_TLS_H
#define MSCOPE_APP_TLS_H

#include "appstream.h"

extern const app_parser app_tls_parser;

#endif
