/* app_http.h - the HTTP/1.x parser behind the application layer (issue 15):
 * one record per request/response pair, pipelining and keep-alive
 * included, bodies counted and never stored. An app_parser (appstream.h):
 * the stream layer detects a flow with detect, keeps app_http_parser's
 * state_size bytes per flow, and calls parse for each direction as its
 * in-order bytes grow. docs/APP_ANALYTICS.md gives the rules (pairing in
 * order, 1xx skipped, the times), tests/lib/app_oracle.py the same values
 * as tshark derives them.
 *
 * Direction 0 (the flow's first payload, which detect saw start with a
 * request line) is the client's. Per flow the state holds at most
 * APP_HTTP_PENDING requests waiting for their responses and
 * APP_HTTP_TEXT bytes of their method, Host and URI. Counted in the
 * parser's app_counts:
 *   records    records emitted;
 *   malformed  messages that did not parse (a bad start line, a bad length
 *              or chunk line, a header block over APP_HTTP_HEADER_MAX, a
 *              message cut by the end of its direction); the direction then
 *              looks for the next start line;
 *   unmatched  responses to no request;
 *   dropped    requests not tracked because APP_HTTP_PENDING were already
 *              waiting (their responses are still skipped in order), and
 *              records whose text was cut at APP_HTTP_TEXT or at the
 *              record's own bounds (the record says `truncated`).
 * A CONNECT accepted (2xx) or a 101 ends the HTTP of a flow: parse returns
 * APP_PARSE_DONE, and end() records the requests still waiting (a 101 is
 * not an answer: its request has none).
 * A gap (counted by the layer) gives up the message in progress in its
 * direction: a request cut short is recorded with the body bytes seen, a
 * request whose response's header block was lost is recorded without a
 * response.
 */
#ifndef MSCOPE_APP_HTTP_H
#define MSCOPE_APP_HTTP_H

#include "appstream.h"

/* A header block (start line, header lines, the empty line) longer than
 * this is malformed: a generous bound, as docs/APP_ANALYTICS.md says
 * (Apache's default limit is 8 KiB a line, nginx's 8 KiB a buffer). */
#define APP_HTTP_HEADER_MAX 16384
/* Requests per flow waiting for their responses (a pipelined batch). */
#define APP_HTTP_PENDING 16
/* Bytes per flow for the waiting requests' method, Host and URI: one
 * request at the record's own bounds always fits when none waits. */
#define APP_HTTP_TEXT 8192
/* A detector that has seen this many bytes without a whole request line
 * says no. */
#define APP_HTTP_DETECT_MAX 8192

extern const app_parser app_http_parser;

#endif
