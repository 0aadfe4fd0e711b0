/* httpd.h - every daemon's HTTP side: h2o on the daemon's libuv loop (the
 * only h2o user), with a small routing table and JSON answers (jansson).
 *
 * A daemon makes one server (`--http ADDR:PORT`, or "off"), adds routes
 * (exact paths, or prefixes ending in '/'), and answers each request on the
 * loop thread: at once from its handler with httpd_respond*(); later (after
 * a database job), by keeping the request and answering when ready - the
 * client may have gone by then, which httpd_respond() handles; or as a
 * stream whose pieces go only as fast as the client takes them. Request
 * bodies are capped (HTTPD_BODY_MAX).
 *
 * Stopping: httpd_shutdown() closes the listener and lets the requests in
 * progress finish; httpd_connections() says how many connections are still
 * open, so a daemon can wait a moment for them before it exits.
 */
#ifndef MSCOPE_HTTPD_H
#define MSCOPE_HTTPD_H

#include <jansson.h>
#include <stddef.h>
#include <uv.h>

#define HTTPD_BODY_MAX (1u << 20)

typedef struct httpd httpd_t;
typedef struct httpd_req httpd_req_t; /* valid until answered or the client goes */

/* A handler answers req (now or later) and returns 0; or returns -1 for
 * "not mine", which becomes 404. */
typedef int (*httpd_handler)(void *data, httpd_req_t *req);

/* TLS for a listener: PEM files (the certificate chain, then the key).
 * Both NULL: plain HTTP. */
typedef struct httpd_tls {
    const char *cert_file;
    const char *key_file;
} httpd_tls;

/* Listen on addr ("HOST:PORT"; IPv6 as "[::1]:8080"), with TLS when tls
 * names files (TLS 1.2 or later; plain HTTP on that port then fails the
 * handshake). Returns NULL with err set when it cannot bind, or the files
 * cannot be read or do not match. */
httpd_t *httpd_new(uv_loop_t *loop, const char *addr, const httpd_tls *tls, char *err,
                   size_t errlen);

/* Load tls's files as httpd_new() would, and let them go: for a daemon's
 * --check. Returns 0; 1 when the certificate cannot be used, 2 when the
 * key cannot (or does not match it), with httpd_new()'s words in err. */
int httpd_tls_check(const httpd_tls *tls, char *err, size_t errlen);

/* Route requests for path (exact), or every path below it when path ends
 * with '/'. The longest match wins. data is borrowed. */
void httpd_route(httpd_t *h, const char *path, httpd_handler fn, void *data);

/* The request: method ("GET"), path without the query, the raw query
 * string (no '?'; "" when none), a header by name (NULL when absent), and
 * the body. Strings are NUL-terminated and live while the handler runs
 * (a handler that answers later copies what it needs). */
const char *httpd_method(httpd_req_t *r);
const char *httpd_path(httpd_req_t *r);
const char *httpd_query(httpd_req_t *r);
const char *httpd_header(httpd_req_t *r, const char *name);
const char *httpd_body(httpd_req_t *r, size_t *len);

/* The token of an "Authorization: Bearer TOKEN" header (the scheme in any
 * case, then one or more spaces or tabs, as RFC 9110 allows), or NULL. */
const char *httpd_bearer(httpd_req_t *r);

/* The value of a query parameter (URL-decoded, into out of outlen bytes).
 * Returns 1 when present, 0 when absent, -1 when too long or malformed. */
int httpd_param(httpd_req_t *r, const char *name, char *out, size_t outlen);

/* Answer with body (copied). content_type NULL means text/plain. Every
 * request is answered exactly once (respond or stream); after that r is
 * not the caller's any more. Answering a request whose client has gone
 * only releases it. */
void httpd_respond(httpd_req_t *r, int status, const char *content_type, const char *body,
                   size_t len);

/* httpd_respond() with the Cache-Control value given (httpd_respond() says
 * "no-store") and extra headers: a list of name, value pairs ending with
 * NULL, or NULL. Everything is copied. */
void httpd_respond_with(httpd_req_t *r, int status, const char *content_type,
                        const char *cache_control, const char *const *headers, const char *body,
                        size_t len);

/* Answer with a JSON value (takes the reference: it is decref'd). */
void httpd_respond_json(httpd_req_t *r, int status, json_t *body);

/* An error as JSON: {"error": message, "status": status}. */
void httpd_respond_error(httpd_req_t *r, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- streamed answers -----------------------------------------------------
 * httpd_stream_start() sends the status and headers (plus headers, a list of
 * name, value pairs ending with NULL, or NULL). Then one piece at a time:
 * httpd_stream_send() is allowed when httpd_stream_ready(), i.e. right after
 * the start and each time proceed(data) is called (the client has taken the
 * last piece); the piece is copied. final = 1 ends the answer. on_close(data,
 * complete) is called once when the request is over - complete = 0 when the
 * client went away first - and r is gone after it. */
typedef void (*httpd_stream_cb)(void *data);

/* Returns 0, or -1 when the client has already gone (r is released; no
 * callback comes). */
int httpd_stream_start(httpd_req_t *r, int status, const char *content_type,
                       httpd_stream_cb proceed, void (*on_close)(void *data, int complete),
                       void *data, const char *const *headers);
int httpd_stream_ready(const httpd_req_t *r);

/* Returns 0, or -1 when not ready (nothing sent). */
int httpd_stream_send(httpd_req_t *r, const void *data, size_t len, int final);

/* ---- requests in memory ----------------------------------------------------
 * For tests/fuzz/fuzz_http.c: a request made from the text of an HTTP/1.1
 * request, routed by the same table and answered by the same handlers as a
 * connection's, its answer kept in memory. A streamed answer keeps only its
 * status, as if the client went after the headers (httpd_stream_start()
 * returns -1). The request stays the caller's: free it with
 * httpd_req_free() once answered (a handler that answers later - after a
 * database job - holds it till then). */

/* The request line (METHOD SP TARGET SP HTTP/1.x), header lines ("Name:
 * value"), a blank line, then the body: the rest of the text (at most
 * HTTPD_BODY_MAX bytes). Lines end with CRLF or LF. The target's path is
 * normalised as h2o normalises it. Returns NULL when the text is not such a
 * request (h2o answers those itself). */
httpd_req_t *httpd_req_from_text(const char *text, size_t len);

/* Route r by h's table, as a request from a connection is routed. */
void httpd_dispatch(httpd_t *h, httpd_req_t *r);

/* The answer so far: its status (0 until answered), the number of answers
 * given (exactly one is right), and the body of the first. */
int httpd_req_status(const httpd_req_t *r);
int httpd_req_answers(const httpd_req_t *r);
const char *httpd_req_answer(const httpd_req_t *r, size_t *len);

/* Accepts NULL; only for requests made by httpd_req_from_text(). */
void httpd_req_free(httpd_req_t *r);

/* Stop listening; open connections finish their requests (idle keep-alive
 * ones end with h2o's request timeout, or the process). Accepts NULL. */
void httpd_shutdown(httpd_t *h);

/* Connections open now. */
int httpd_connections(const httpd_t *h);

/* Free, when no connection is open; with some still open the server is
 * left to the process's exit (as h2o's own server does). Accepts NULL. */
void httpd_free(httpd_t *h);

#endif
