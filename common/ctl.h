/* ctl.h - a daemon's control side: one libuv loop with its signals, a
 * periodic tick, the HTTP server (httpd.h) and an orderly stop. The same in
 * every daemon: packet paths keep their own threads; this loop reports,
 * answers HTTP and turns signals into calls.
 *
 * Signals: SIGINT, SIGTERM, SIGHUP and SIGUSR1 go to the daemon's on_signal
 * hook on the loop thread (libuv's uv_signal: no async-signal-safety rules
 * in the daemon's code). The daemon decides what each means; to end, it
 * calls ctl_stop(). Stopping closes the tick and stops listening for HTTP,
 * then ends ctl_run() as soon as the daemon's busy hook says nothing is in
 * flight and the HTTP clients have gone (or after a grace of
 * CTL_HTTP_GRACE_MS: idle keep-alive clients do not hold a daemon). The
 * signal handlers stay until ctl_free(): once stopping, a further SIGINT or
 * SIGTERM is logged and ignored, so it cannot cut the daemon's last writes
 * short (SIGKILL still can). The status routes (ctl_serve_status) give
 * every daemon the same /healthz, /readyz and /metrics, the last one behind
 * a bearer token when the daemon has one (--metrics-token-file).
 */
#ifndef MSCOPE_CTL_H
#define MSCOPE_CTL_H

#include "httpd.h"
#include "metrics.h"

#include <stdint.h>
#include <uv.h>

#define CTL_HTTP_GRACE_MS 2000

typedef struct ctl ctl_t;

typedef struct ctl_hooks {
    void *data;
    void (*tick)(void *data);               /* every tick_ms; may be NULL */
    void (*on_signal)(void *data, int sig); /* required */
    int (*busy)(void *data);                /* while stopping: 1 = wait; may be NULL */
} ctl_hooks;

/* A loop with the signals watched and the tick armed (first tick at once).
 * Never NULL. */
ctl_t *ctl_new(const ctl_hooks *hooks, uint64_t tick_ms);

uv_loop_t *ctl_loop(ctl_t *c);

/* Serve HTTP on addr ("HOST:PORT"), or nothing for "off"; HTTPS when tls
 * names a certificate and a key (may be NULL). Returns 0, or -1 with err
 * set when it cannot listen or read the files. */
int ctl_listen(ctl_t *c, const char *addr, const httpd_tls *tls, char *err, size_t errlen);

/* The rows of an option table for HTTPS, the same in every daemon: the
 * settings struct S has char *FIELD_cert, *FIELD_key (see config.h). */
#define CTL_TLS_OPTS(S, cert, key) \
    { "http-cert", 0, CFG_STR, offsetof(S, cert), NULL, 0, 0, "FILE", "HTTPS on --http: the certificate chain (PEM), with --http-key; the port then speaks only HTTPS" }, \
    { "http-key", 0, CFG_STR, offsetof(S, key), NULL, 0, 0, "FILE", "HTTPS: the certificate's private key (PEM; keep it 0600)" }

/* The row of an option table for the /metrics token, the same in every
 * daemon: the settings struct S has char *FIELD (see config.h). */
#define CTL_METRICS_OPTS(S, field) \
    { "metrics-token-file", 0, CFG_STR, offsetof(S, field), NULL, 0, 0, "FILE", "/metrics answers only requests with Authorization: Bearer and this file's token (one word of 16 to 127 printable characters; read again on SIGHUP); /healthz and /readyz stay open (load balancers)" }

/* The HTTP server, for routes (NULL when off). */
httpd_t *ctl_http(ctl_t *c);

/* The three status routes every daemon serves, the same way:
 *   GET /healthz  200 {"status":"ok","reasons":[],"version","uptime_s",...}
 *                 or 503 {"status":"unavailable","reasons":[...],...}
 *   GET /readyz   the same, plus "stopping" once ctl_stop() was called
 *   GET /metrics  Prometheus text: the daemon's metrics, then process_*
 * health(data, ready, why) appends a sentence to why for each reason the
 * daemon cannot do its job now (with ready: also what only readiness needs,
 * e.g. draining); fields(data, obj) may add fields to the answer (NULL:
 * none); metrics(data, m) renders the daemon's metrics. With
 * metrics_token_file, /metrics wants that file's token as a bearer token
 * (Prometheus: authorization.credentials_file) and answers 401 without it,
 * counted in mscope_metrics_unauthorized_total; the health routes stay
 * open, for load balancers that send no header. The file is read again by
 * ctl_reload_tokens (SIGHUP). */
typedef struct ctl_status {
    const char *version;
    void (*health)(void *data, int ready, json_t *why);
    void (*fields)(void *data, json_t *obj);
    void (*metrics)(void *data, metrics_t *m);
    void *data;
    const char *metrics_token_file; /* NULL: /metrics is open */
} ctl_status;

/* Read the /metrics token file as ctl_serve_status() will (path NULL:
 * nothing to read): 0, or -1 with token_load's reason in err. What a
 * daemon checks before it starts anything, as the user it runs as. */
int ctl_metrics_token_check(const char *path, char *err, size_t errlen);

/* Route the status endpoints (nothing when HTTP is off). s is copied.
 * Returns 0, or -1 with err set when the token file cannot be read or
 * holds no token (token_load). */
int ctl_serve_status(ctl_t *c, const ctl_status *s, char *err, size_t errlen);

/* A token file a daemon reads again on SIGHUP: its path and the token in
 * use (TOKEN_MAX bytes), which a new one in the file replaces. */
typedef struct ctl_token {
    const char *path;
    char *cur;
} ctl_token;

/* SIGHUP: read again the n token files in t, then the /metrics token's
 * (the file ctl_serve_status was given), so that a token is changed without
 * a restart. A file that cannot be read or holds no token keeps the token
 * in use, logged as an error; the others take effect at once. Logs how
 * many changed (never a token) and returns that number. */
int ctl_reload_tokens(ctl_t *c, const ctl_token *t, int n);

/* Run the loop until the stop has finished. */
void ctl_run(ctl_t *c);

/* Begin the stop (see above). Idempotent. */
void ctl_stop(ctl_t *c);

/* 1 once ctl_stop() was called. */
int ctl_stopping(const ctl_t *c);

/* Close what is left and free. The daemon's own handles on the loop must
 * be closed first (or be closing). Accepts NULL. */
void ctl_free(ctl_t *c);

#endif
