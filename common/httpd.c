/* httpd.c - HTTP/1.1 on the daemon's libuv loop with h2o (see httpd.h).
 *
 * DESIGN: one h2o handler at "/" takes every request and looks the path up
 * in our own routing table, so routes can be added in any order and a miss
 * gets the same JSON 404 as everything else. We accept connections
 * ourselves (uv_listen) and hand each to h2o; its close callback counts the
 * connections that are still open. With TLS, h2o does the handshake on the
 * accepted socket (accept_ctx.ssl_ctx, OpenSSL); nothing else changes.
 */
#include "httpd.h"

#include "jbuf.h"
#include "log.h"
#include "xmalloc.h"

#include <ctype.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <h2o.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#define HTTPD_ROUTES_MAX 64
#define HTTPD_BACKLOG 128
#define HTTPD_MEM_HEADERS 64 /* headers of a request in memory */

typedef struct httpd_route_t {
    char path[128];
    size_t len;
    int prefix;
    httpd_handler fn;
    void *data;
} httpd_route_t;

/* h2o's handler, with a way back to us. */
typedef struct httpd_h2o_handler {
    h2o_handler_t super;
    httpd_t *h;
} httpd_h2o_handler;

struct httpd {
    uv_loop_t *loop;
    h2o_globalconf_t config;
    h2o_context_t ctx;
    h2o_accept_ctx_t accept_ctx;
    SSL_CTX *ssl;       /* NULL: plain HTTP */
    uv_tcp_t *listener; /* freed by its close callback */
    int conns;
    httpd_route_t routes[HTTPD_ROUTES_MAX];
    int nroutes;
};

/* Ours, on the heap: it outlives h2o's request when the answer is deferred
 * (the client may go first), and carries a stream's state. */
struct httpd_req {
    h2o_req_t *req;         /* NULL once h2o has disposed of the request */
    struct httpd_mem *mem;  /* a request in memory (httpd_req_from_text), else NULL */
    char *path, *query;     /* in h2o's pool: valid while req is */
    int answered;           /* respond() or stream_start() was called */
    /* a streamed answer */
    h2o_generator_t gen;
    httpd_stream_cb proceed;
    void (*on_close)(void *data, int complete);
    void *data;
    int streaming, final_sent, in_flight;
    char *buf;              /* the piece h2o holds until it proceeds */
    size_t cap;
};

static const httpd_route_t *httpd__match(const httpd_t *h, const char *path)
{
    const httpd_route_t *best = NULL;
    size_t plen = strlen(path);
    for (int i = 0; i < h->nroutes; i++) {
        const httpd_route_t *r = &h->routes[i];
        int hit = r->prefix ? plen >= r->len && !memcmp(path, r->path, r->len)
                            : plen == r->len && !memcmp(path, r->path, r->len);
        if (hit && (!best || r->len > best->len)) best = r;
    }
    return best;
}

/* A request in memory: what h2o's request would hold, and the answer. */
typedef struct httpd_mem {
    h2o_mem_pool_t pool; /* its strings */
    char *method, *body;
    size_t body_len, nheaders;
    char *hname[HTTPD_MEM_HEADERS], *hvalue[HTTPD_MEM_HEADERS];
    int status, answers;
    char *answer;
    size_t answer_len;
} httpd_mem;

/* Route r (a path without its query) by the table; a miss is a 404. */
static void httpd__serve(httpd_t *h, httpd_req_t *r)
{
    const httpd_route_t *rt = httpd__match(h, r->path);
    if (!rt || rt->fn(rt->data, r) < 0)
        httpd_respond_error(r, 404, "no such resource: %.200s", r->path);
}

static char *httpd__strdup(h2o_req_t *req, const char *s, size_t len)
{
    char *p = h2o_mem_alloc_pool(&req->pool, len + 1);
    memcpy(p, s, len);
    p[len] = 0;
    return p;
}

/* h2o clears the request's pool: the request is over (answered, or the
 * client went away). */
static void httpd__dispose(void *p)
{
    httpd_req_t *r = *(httpd_req_t **)p;
    r->req = NULL;
    if (r->streaming) {
        if (r->on_close) r->on_close(r->data, r->final_sent);
        free(r->buf);
        free(r);
    } else if (r->answered) {
        free(r);
    }
    /* else a deferred answer is pending: httpd_respond() frees it */
}

static int httpd__on_req(h2o_handler_t *self, h2o_req_t *req)
{
    httpd_t *h = ((httpd_h2o_handler *)self)->h;
    httpd_req_t *r = xcalloc(1, sizeof *r);
    r->req = req;
    *(httpd_req_t **)h2o_mem_alloc_shared(&req->pool, sizeof r, httpd__dispose) = r;
    /* The path as sent, without the query; h2o's normalised path also drops
     * "..", which is what routing must see. */
    size_t plen = req->path_normalized.len;
    const char *q = memchr(req->path_normalized.base, '?', plen);
    if (q) plen = (size_t)(q - req->path_normalized.base);
    r->path = httpd__strdup(req, req->path_normalized.base, plen);
    if (req->query_at != SIZE_MAX)
        r->query = httpd__strdup(req, req->path.base + req->query_at + 1,
                                 req->path.len - req->query_at - 1);
    else
        r->query = httpd__strdup(req, "", 0);
    httpd__serve(h, r);
    return 0;
}

/* An accepted connection: the handle first, so h2o's close callback (which
 * gets the handle) finds the server. */
typedef struct httpd_conn {
    uv_tcp_t tcp;
    httpd_t *h;
} httpd_conn;

static void httpd__on_close(uv_handle_t *handle)
{
    httpd_conn *c = (httpd_conn *)handle;
    c->h->conns--;
    free(c);
}

static void httpd__on_accept(uv_stream_t *listener, int status)
{
    httpd_t *h = listener->data;
    if (status != 0) return;
    httpd_conn *c = xcalloc(1, sizeof *c);
    c->h = h;
    uv_tcp_init(h->loop, &c->tcp);
    if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0) {
        uv_close((uv_handle_t *)&c->tcp, (uv_close_cb)free);
        return;
    }
    h->conns++;
    h2o_accept(&h->accept_ctx, h2o_uv_socket_create((uv_stream_t *)&c->tcp, httpd__on_close));
}

/* "HOST:PORT" or "[V6]:PORT" into a socket address. */
static int httpd__addr(const char *addr, struct sockaddr_storage *ss, char *err, size_t errlen)
{
    char host[256];
    const char *colon = strrchr(addr, ':');
    if (!colon || colon == addr || (size_t)(colon - addr) >= sizeof host) goto bad;
    memcpy(host, addr, (size_t)(colon - addr));
    host[colon - addr] = 0;
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end || port < 0 || port > 65535 || end == colon + 1) goto bad;
    if (host[0] == '[') {
        size_t n = strlen(host);
        if (n < 3 || host[n - 1] != ']') goto bad;
        host[n - 1] = 0;
        if (uv_ip6_addr(host + 1, (int)port, (struct sockaddr_in6 *)ss) == 0) return 0;
    } else if (uv_ip4_addr(host, (int)port, (struct sockaddr_in *)ss) == 0) {
        return 0;
    }
bad:
    snprintf(err, errlen, "bad HTTP listen address '%s' (want HOST:PORT, e.g. 0.0.0.0:8081, or off)", addr);
    return -1;
}

/* An OpenSSL server context for the certificate chain and key in tls. On
 * failure *bad says which file it was: 1 the certificate, 2 the key. */
static SSL_CTX *httpd__tls(const httpd_tls *tls, int *bad, char *err, size_t errlen)
{
    *bad = 1;
    SSL_CTX *s = SSL_CTX_new(TLS_server_method());
    const char *what = "SSL_CTX_new()";
    if (!s) goto fail;
    SSL_CTX_set_min_proto_version(s, TLS1_2_VERSION);
    SSL_CTX_set_options(s, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    what = tls->cert_file;
    if (SSL_CTX_use_certificate_chain_file(s, tls->cert_file) != 1) goto fail;
    what = tls->key_file;
    *bad = 2;
    if (SSL_CTX_use_PrivateKey_file(s, tls->key_file, SSL_FILETYPE_PEM) != 1) goto fail;
    what = "the key and the certificate";
    if (SSL_CTX_check_private_key(s) != 1) goto fail;
    return s;
fail:;
    char why[256] = "unknown error";
    unsigned long e = ERR_peek_last_error();
    if (e) ERR_error_string_n(e, why, sizeof why);
    ERR_clear_error();
    snprintf(err, errlen, "HTTP TLS: %s: %s", what, why);
    SSL_CTX_free(s);
    return NULL;
}

int httpd_tls_check(const httpd_tls *tls, char *err, size_t errlen)
{
    int bad = 0;
    SSL_CTX *s = httpd__tls(tls, &bad, err, errlen);
    if (!s) return bad;
    SSL_CTX_free(s);
    return 0;
}

httpd_t *httpd_new(uv_loop_t *loop, const char *addr, const httpd_tls *tls, char *err,
                   size_t errlen)
{
    int bad;
    struct sockaddr_storage ss;
    if (httpd__addr(addr, &ss, err, errlen) < 0) return NULL;
    if (tls && (!tls->cert_file) != (!tls->key_file)) {
        snprintf(err, errlen, "HTTP TLS needs both a certificate and a key file");
        return NULL;
    }
    SSL_CTX *ssl = tls && tls->cert_file ? httpd__tls(tls, &bad, err, errlen) : NULL;
    if (tls && tls->cert_file && !ssl) return NULL;
    httpd_t *h = xcalloc(1, sizeof *h);
    h->loop = loop;
    h2o_config_init(&h->config);
    h->config.max_request_entity_size = HTTPD_BODY_MAX;
    h2o_hostconf_t *host = h2o_config_register_host(&h->config, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *path = h2o_config_register_path(host, "/", 0);
    httpd_h2o_handler *hd = (httpd_h2o_handler *)h2o_create_handler(path, sizeof *hd);
    hd->super.on_req = httpd__on_req;
    hd->h = h;
    h2o_context_init(&h->ctx, loop, &h->config);
    h->accept_ctx.ctx = &h->ctx;
    h->accept_ctx.hosts = h->config.hosts;
    h->accept_ctx.ssl_ctx = h->ssl = ssl;
    h->listener = xcalloc(1, sizeof *h->listener);
    uv_tcp_init(loop, h->listener);
    h->listener->data = h;
    int rc = uv_tcp_bind(h->listener, (struct sockaddr *)&ss, 0);
    if (rc == 0) rc = uv_listen((uv_stream_t *)h->listener, HTTPD_BACKLOG, httpd__on_accept);
    if (rc < 0) {
        snprintf(err, errlen, "HTTP listen on %s failed: %s", addr, uv_strerror(rc));
        httpd_free(h);
        return NULL;
    }
    return h;
}

void httpd_route(httpd_t *h, const char *path, httpd_handler fn, void *data)
{
    if (h->nroutes == HTTPD_ROUTES_MAX || strlen(path) >= sizeof h->routes[0].path) {
        log_error("httpd_route(%s): too many routes or too long a path", path);
        abort(); /* a programming error */
    }
    httpd_route_t *r = &h->routes[h->nroutes++];
    snprintf(r->path, sizeof r->path, "%s", path);
    r->len = strlen(path);
    r->prefix = r->len && path[r->len - 1] == '/';
    r->fn = fn;
    r->data = data;
}

const char *httpd_method(httpd_req_t *r)
{
    if (r->mem) return r->mem->method;
    return httpd__strdup(r->req, r->req->method.base, r->req->method.len);
}

const char *httpd_path(httpd_req_t *r) { return r->path; }
const char *httpd_query(httpd_req_t *r) { return r->query; }

const char *httpd_bearer(httpd_req_t *r)
{
    const char *h = httpd_header(r, "authorization");
    if (!h || strncasecmp(h, "Bearer", 6) || (h[6] != ' ' && h[6] != '\t')) return NULL;
    h += 6;
    while (*h == ' ' || *h == '\t') h++;
    return h;
}

const char *httpd_header(httpd_req_t *r, const char *name)
{
    if (r->mem) { /* h2o matches the names it lower-cased; so do we */
        for (size_t i = 0; i < r->mem->nheaders; i++)
            if (!strcasecmp(r->mem->hname[i], name)) return r->mem->hvalue[i];
        return NULL;
    }
    ssize_t i = h2o_find_header_by_str(&r->req->headers, name, strlen(name), -1);
    if (i < 0) return NULL;
    h2o_iovec_t v = r->req->headers.entries[i].value;
    return httpd__strdup(r->req, v.base, v.len);
}

const char *httpd_body(httpd_req_t *r, size_t *len)
{
    if (r->mem) {
        *len = r->mem->body_len;
        return r->mem->body;
    }
    *len = r->req->entity.base ? r->req->entity.len : 0;
    return httpd__strdup(r->req, r->req->entity.base ? r->req->entity.base : "", *len);
}

static int httpd__hex(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    c = tolower(c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* URL-decode s[0..n) into out. Returns 0, or -1 when malformed or too long. */
static int httpd__decode(const char *s, size_t n, char *out, size_t outlen)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)s[i];
        if (c == '+') {
            c = ' ';
        } else if (c == '%') {
            int a = i + 1 < n ? httpd__hex(s[i + 1]) : -1;
            int b = i + 2 < n ? httpd__hex(s[i + 2]) : -1;
            if (a < 0 || b < 0) return -1;
            c = a * 16 + b;
            i += 2;
        }
        if (c == 0 || k + 1 >= outlen) return -1;
        out[k++] = (char)c;
    }
    out[k] = 0;
    return 0;
}

int httpd_param(httpd_req_t *r, const char *name, char *out, size_t outlen)
{
    size_t nlen = strlen(name);
    const char *p = r->query;
    while (*p) {
        const char *amp = strchr(p, '&');
        size_t len = amp ? (size_t)(amp - p) : strlen(p);
        const char *eq = memchr(p, '=', len);
        size_t klen = eq ? (size_t)(eq - p) : len;
        if (klen == nlen && !memcmp(p, name, nlen)) {
            if (!eq) {
                if (outlen) out[0] = 0;
                return 1;
            }
            return httpd__decode(eq + 1, len - klen - 1, out, outlen) < 0 ? -1 : 1;
        }
        if (!amp) break;
        p = amp + 1;
    }
    return 0;
}

static const char *httpd__reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 413: return "Payload Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "";
    }
}

void httpd_respond(httpd_req_t *r, int status, const char *content_type, const char *body,
                   size_t len)
{
    httpd_respond_with(r, status, content_type, "no-store", NULL, body, len);
}

void httpd_respond_with(httpd_req_t *r, int status, const char *content_type,
                        const char *cache_control, const char *const *headers, const char *body,
                        size_t len)
{
    h2o_req_t *req = r->req;
    if (r->mem) {
        r->answered = 1;
        r->mem->status = status;
        if (r->mem->answers++ == 0) {
            r->mem->answer = h2o_mem_alloc_pool(&r->mem->pool, len + 1);
            memcpy(r->mem->answer, body, len);
            r->mem->answer[len] = 0;
            r->mem->answer_len = len;
        }
        return;
    }
    if (!req) { /* the client went away while we worked */
        free(r);
        return;
    }
    r->answered = 1; /* from here h2o may dispose of it (and free r) at any time */
    req->res.status = status;
    req->res.reason = httpd__reason(status);
    const char *ct = content_type ? httpd__strdup(req, content_type, strlen(content_type))
                                  : "text/plain; charset=utf-8";
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, ct, strlen(ct));
    cache_control = httpd__strdup(req, cache_control, strlen(cache_control));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, cache_control,
                   strlen(cache_control));
    for (int i = 0; headers && headers[i] && headers[i + 1]; i += 2) {
        char *name = httpd__strdup(req, headers[i], strlen(headers[i]));
        char *value = httpd__strdup(req, headers[i + 1], strlen(headers[i + 1]));
        h2o_add_header_by_str(&req->pool, &req->res.headers, name, strlen(name), 0, NULL, value,
                              strlen(value));
    }
    /* h2o_send_inline copies the body into the request's pool. */
    h2o_send_inline(req, body, len);
}

void httpd_respond_json(httpd_req_t *r, int status, json_t *body)
{
    char *text = json_dumps(body, JSON_COMPACT | JSON_ENSURE_ASCII);
    json_decref(body);
    if (!text) {
        httpd_respond(r, 500, NULL, "cannot encode the answer\n", 25);
        return;
    }
    size_t n = strlen(text);
    text = xrealloc(text, n + 2); /* out of memory ends the process, as everywhere */
    text[n++] = '\n';
    text[n] = 0;
    httpd_respond(r, status, "application/json", text, n);
    free(text);
}

void httpd_respond_error(httpd_req_t *r, int status, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    /* Messages quote what the client sent (a path, a value), and may cut a
     * character in two: a byte that is not UTF-8 becomes '?', or JSON could
     * not carry the error at all. */
    size_t n = strlen(msg);
    for (size_t i = 0; i < n;) {
        size_t k = jb_utf8_len((const uint8_t *)msg + i, n - i);
        if (!k) msg[i++] = '?';
        else i += k;
    }
    httpd_respond_json(r, status, json_pack("{s:s, s:i}", "error", msg, "status", status));
}

void httpd_shutdown(httpd_t *h)
{
    if (!h || !h->listener) return;
    uv_close((uv_handle_t *)h->listener, (uv_close_cb)free);
    h->listener = NULL;
    /* Not h2o_context_request_shutdown(): its HTTP/2 part arms a timer that
     * h2o_context_dispose() then asserts on; HTTP/1 connections end after
     * their request anyway (we send Connection: close on nothing, so idle
     * keep-alive ones wait for their timeout or the daemon's exit). */
}

int httpd_connections(const httpd_t *h) { return h ? h->conns : 0; }

void httpd_free(httpd_t *h)
{
    if (!h) return;
    httpd_shutdown(h);
    if (h->conns) {
        log_debug("%d HTTP connections still open at exit", h->conns);
        return;
    }
    h2o_context_dispose(&h->ctx); /* runs the loop once to close its handles */
    h2o_config_dispose(&h->config);
    SSL_CTX_free(h->ssl);
    free(h);
}

/* ---- streamed answers ---------------------------------------------------- */

static void httpd__proceed(h2o_generator_t *g, h2o_req_t *req)
{
    (void)req;
    httpd_req_t *r = (httpd_req_t *)((char *)g - offsetof(httpd_req_t, gen));
    r->in_flight = 0;
    if (!r->final_sent && r->proceed) r->proceed(r->data);
}

int httpd_stream_start(httpd_req_t *r, int status, const char *content_type,
                       httpd_stream_cb proceed, void (*on_close)(void *data, int complete),
                       void *data, const char *const *headers)
{
    h2o_req_t *req = r->req;
    if (r->mem) { /* the status, then as if the client went: no pieces, no callback */
        r->answered = 1;
        r->mem->status = status;
        r->mem->answers++;
        return -1;
    }
    if (!req) {
        free(r);
        return -1;
    }
    r->answered = r->streaming = 1;
    r->proceed = proceed;
    r->on_close = on_close;
    r->data = data;
    r->gen.proceed = httpd__proceed;
    r->gen.stop = NULL; /* the pool's dispose hook tells us instead */
    req->res.status = status;
    req->res.reason = httpd__reason(status);
    content_type = httpd__strdup(req, content_type, strlen(content_type));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, content_type,
                   strlen(content_type));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL,
                   H2O_STRLIT("no-store"));
    /* h2o keeps pointers: the names and values go into the request's pool. */
    for (int i = 0; headers && headers[i] && headers[i + 1]; i += 2) {
        char *name = httpd__strdup(req, headers[i], strlen(headers[i]));
        char *value = httpd__strdup(req, headers[i + 1], strlen(headers[i + 1]));
        h2o_add_header_by_str(&req->pool, &req->res.headers, name, strlen(name), 0, NULL, value,
                              strlen(value));
    }
    h2o_start_response(req, &r->gen);
    return 0;
}

int httpd_stream_ready(const httpd_req_t *r) { return r->req && !r->in_flight && !r->final_sent; }

int httpd_stream_send(httpd_req_t *r, const void *data, size_t len, int final)
{
    if (!r->req || r->in_flight || r->final_sent) return -1;
    if (len > r->cap) {
        r->buf = xrealloc(r->buf, len);
        r->cap = len;
    }
    if (len) memcpy(r->buf, data, len);
    h2o_iovec_t v = h2o_iovec_init(r->buf, len);
    r->in_flight = 1;
    r->final_sent = final;
    /* h2o may finish and dispose of the request inside this call. */
    h2o_send(r->req, &v, 1, final ? H2O_SEND_STATE_FINAL : H2O_SEND_STATE_IN_PROGRESS);
    return 0;
}

/* ---- requests in memory -------------------------------------------------- */

/* The next line of text[*at..len) (CRLF or LF ended), NUL-terminated in the
 * pool; NULL at the end of the text. */
static char *httpd__line(h2o_mem_pool_t *pool, const char *text, size_t len, size_t *at)
{
    if (*at >= len) return NULL;
    const char *p = text + *at, *nl = memchr(p, '\n', len - *at);
    size_t n = nl ? (size_t)(nl - p) : len - *at;
    *at += n + (nl != NULL);
    if (n && p[n - 1] == '\r') n--;
    char *line = h2o_mem_alloc_pool(pool, n + 1);
    memcpy(line, p, n);
    line[n] = 0;
    return line;
}

httpd_req_t *httpd_req_from_text(const char *text, size_t len)
{
    httpd_req_t *r = xcalloc(1, sizeof *r);
    httpd_mem *m = r->mem = xcalloc(1, sizeof *m);
    h2o_mem_init_pool(&m->pool);
    size_t at = 0;
    char *line = httpd__line(&m->pool, text, len, &at);
    /* METHOD SP TARGET SP VERSION, as h2o's parser wants it */
    char *sp1 = line ? strchr(line, ' ') : NULL, *sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
    if (!sp2 || sp1 == line || sp2 == sp1 + 1 || sp1[1] != '/' || strncmp(sp2 + 1, "HTTP/1.", 7))
        goto bad;
    *sp1 = *sp2 = 0;
    m->method = line;
    const char *target = sp1 + 1;
    for (;;) {
        char *h = httpd__line(&m->pool, text, len, &at);
        if (!h) goto bad; /* no blank line: the request never ended */
        if (!*h) break;
        char *colon = strchr(h, ':');
        if (!colon || colon == h || m->nheaders == HTTPD_MEM_HEADERS) goto bad;
        *colon = 0;
        char *v = colon + 1;
        while (*v == ' ' || *v == '\t') v++;
        size_t vl = strlen(v);
        while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t')) v[--vl] = 0;
        m->hname[m->nheaders] = h;
        m->hvalue[m->nheaders++] = v;
    }
    /* The rest is the body (h2o would read Content-Length bytes of it),
     * capped as h2o caps it. */
    m->body_len = len - at;
    if (m->body_len > HTTPD_BODY_MAX) goto bad;
    m->body = h2o_mem_alloc_pool(&m->pool, m->body_len + 1);
    memcpy(m->body, text + at, m->body_len);
    m->body[m->body_len] = 0;
    /* The path as h2o normalises it (".." resolved; %-escapes of
     * unreserved characters decoded), without the query. */
    size_t query_at = SIZE_MAX, *idx = NULL;
    h2o_iovec_t norm = h2o_url_normalize_path(&m->pool, target, strlen(target), &query_at, &idx);
    size_t plen = norm.len;
    const char *q = memchr(norm.base, '?', plen);
    if (q) plen = (size_t)(q - norm.base);
    r->path = h2o_mem_alloc_pool(&m->pool, plen + 1);
    memcpy(r->path, norm.base, plen);
    r->path[plen] = 0;
    const char *qs = query_at != SIZE_MAX ? target + query_at + 1 : "";
    r->query = h2o_mem_alloc_pool(&m->pool, strlen(qs) + 1);
    memcpy(r->query, qs, strlen(qs) + 1);
    return r;
bad:
    httpd_req_free(r);
    return NULL;
}

void httpd_dispatch(httpd_t *h, httpd_req_t *r) { httpd__serve(h, r); }

int httpd_req_status(const httpd_req_t *r) { return r->mem ? r->mem->status : 0; }

int httpd_req_answers(const httpd_req_t *r) { return r->mem ? r->mem->answers : 0; }

const char *httpd_req_answer(const httpd_req_t *r, size_t *len)
{
    *len = r->mem && r->mem->answer ? r->mem->answer_len : 0;
    return r->mem && r->mem->answer ? r->mem->answer : "";
}

void httpd_req_free(httpd_req_t *r)
{
    if (!r || !r->mem) return;
    h2o_mem_clear_pool(&r->mem->pool);
    free(r->mem);
    free(r);
}
