/* ctl.c - a daemon's control loop (see ctl.h). */
#include "ctl.h"

#include "log.h"
#include "timeparse.h"
#include "token.h"
#include "xmalloc.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>

static const int ctl_signals[] = { SIGINT, SIGTERM, SIGHUP, SIGUSR1 };
#define CTL_NSIG (sizeof ctl_signals / sizeof ctl_signals[0])

struct ctl {
    uv_loop_t loop;
    ctl_hooks h;
    uv_signal_t sig[CTL_NSIG];
    uv_timer_t tick, stop_timer;
    httpd_t *http;
    int stopping;
    int64_t stop_at, start_ns;
    ctl_status status;
    metrics_t *metrics;   /* /metrics text, rebuilt per scrape */
    char metrics_token[TOKEN_MAX]; /* "" when /metrics is open */
    char *metrics_token_path;      /* its file, read again by ctl_reload_tokens */
    uint64_t metrics_refused;
};

static void ctl__on_signal(uv_signal_t *s, int signum)
{
    ctl_t *c = s->data;
    if (c->stopping && (signum == SIGINT || signum == SIGTERM)) {
        /* The handlers stay installed to the end: a second SIGTERM (a
         * supervisor's, a second Ctrl-C) must not kill the stop half-way,
         * with records unwritten and the embedded server left running. */
        log_warn("%s: already stopping (SIGKILL stops at once, losing what is in memory)",
                 strsignal(signum));
        return;
    }
    c->h.on_signal(c->h.data, signum);
}

static void ctl__on_tick(uv_timer_t *t)
{
    ctl_t *c = t->data;
    if (c->h.tick) c->h.tick(c->h.data);
}

ctl_t *ctl_new(const ctl_hooks *hooks, uint64_t tick_ms)
{
    ctl_t *c = xcalloc(1, sizeof *c);
    c->h = *hooks;
    c->start_ns = timeparse_now_ns();
    int rc = uv_loop_init(&c->loop);
    if (rc < 0) {
        log_error("uv_loop_init() failed: %s", uv_strerror(rc));
        abort(); /* only out of descriptors or memory: nothing to run without it */
    }
    for (size_t i = 0; i < CTL_NSIG; i++) {
        uv_signal_init(&c->loop, &c->sig[i]);
        c->sig[i].data = c;
        uv_signal_start(&c->sig[i], ctl__on_signal, ctl_signals[i]);
    }
    uv_timer_init(&c->loop, &c->tick);
    c->tick.data = c;
    if (tick_ms) uv_timer_start(&c->tick, ctl__on_tick, 0, tick_ms);
    uv_timer_init(&c->loop, &c->stop_timer);
    c->stop_timer.data = c;
    return c;
}

uv_loop_t *ctl_loop(ctl_t *c) { return &c->loop; }

int ctl_listen(ctl_t *c, const char *addr, const httpd_tls *tls, char *err, size_t errlen)
{
    if (!addr || !strcmp(addr, "off")) return 0;
    c->http = httpd_new(&c->loop, addr, tls, err, errlen);
    return c->http ? 0 : -1;
}

httpd_t *ctl_http(ctl_t *c) { return c->http; }

static void ctl__health(ctl_t *c, httpd_req_t *r, int ready)
{
    json_t *why = json_array();
    c->status.health(c->status.data, ready, why);
    if (ready && c->stopping) json_array_append_new(why, json_string("stopping"));
    int ok = json_array_size(why) == 0;
    json_t *o = json_pack("{s:s, s:o, s:s, s:I}", "status", ok ? "ok" : "unavailable", "reasons",
                          why, "version", c->status.version ? c->status.version : "",
                          "uptime_s", (json_int_t)((timeparse_now_ns() - c->start_ns) / 1000000000LL));
    if (c->status.fields) c->status.fields(c->status.data, o);
    httpd_respond_json(r, ok ? 200 : 503, o);
}

static int ctl__on_healthz(void *data, httpd_req_t *r)
{
    ctl__health(data, r, 0);
    return 0;
}

static int ctl__on_readyz(void *data, httpd_req_t *r)
{
    ctl__health(data, r, 1);
    return 0;
}

static int ctl__on_metrics(void *data, httpd_req_t *r)
{
    ctl_t *c = data;
    if (*c->metrics_token) {
        if (!token_equal(c->metrics_token, httpd_bearer(r))) {
            static const char *const hdrs[] = { "www-authenticate", "Bearer", NULL };
            static const char body[] = "{\"error\":\"/metrics needs Authorization: Bearer TOKEN "
                                       "(--metrics-token-file)\",\"status\":401}\n";
            c->metrics_refused++;
            httpd_respond_with(r, 401, "application/json", "no-store", hdrs, body, sizeof body - 1);
            return 0;
        }
    }
    metrics_reset(c->metrics);
    c->status.metrics(c->status.data, c->metrics);
    metrics_process(c->metrics);
    if (*c->metrics_token)
        metrics_counter(c->metrics, "mscope_metrics_unauthorized_total",
                        "Requests for /metrics refused for a missing or wrong token (401).",
                        (double)c->metrics_refused);
    size_t len;
    const char *text = metrics_text(c->metrics, &len);
    httpd_respond(r, 200, "text/plain; version=0.0.4; charset=utf-8", text, len);
    return 0;
}

/* path's token into out ("" for no path, or on an error). */
static int ctl__metrics_token(const char *path, char out[TOKEN_MAX], char *err, size_t errlen)
{
    *out = 0;
    return path && token_load(path, 0, out, err, errlen) < 0 ? -1 : 0;
}

int ctl_metrics_token_check(const char *path, char *err, size_t errlen)
{
    char tok[TOKEN_MAX];
    int rc = ctl__metrics_token(path, tok, err, errlen);
    explicit_bzero(tok, sizeof tok);
    return rc;
}

int ctl_serve_status(ctl_t *c, const ctl_status *s, char *err, size_t errlen)
{
    /* Read even with HTTP off: a wrong file is an error either way. Read
     * again on SIGHUP (ctl_reload_tokens). */
    char terr[512];
    if (ctl__metrics_token(s->metrics_token_file, c->metrics_token, terr, sizeof terr) < 0) {
        snprintf(err, errlen, "metrics-token-file: %s", terr);
        return -1;
    }
    free(c->metrics_token_path);
    c->metrics_token_path = s->metrics_token_file ? xstrdup(s->metrics_token_file) : NULL;
    if (!c->http) return 0;
    c->status = *s;
    c->status.metrics_token_file = NULL; /* the caller's string: copied above */
    if (!c->metrics) c->metrics = metrics_new();
    httpd_route(c->http, "/healthz", ctl__on_healthz, c);
    httpd_route(c->http, "/readyz", ctl__on_readyz, c);
    httpd_route(c->http, "/metrics", ctl__on_metrics, c);
    return 0;
}

int ctl_reload_tokens(ctl_t *c, const ctl_token *t, int n)
{
    int changed = 0, read = 0, failed = 0;
    for (int i = 0; i <= n; i++) {
        const char *path = i < n ? t[i].path : c->metrics_token_path;
        char *cur = i < n ? t[i].cur : c->metrics_token;
        if (!path) continue;
        char err[1024];
        int rc = token_reload(path, cur, err, sizeof err);
        if (rc < 0) {
            log_error("SIGHUP: %s; the token in use stays", err);
            failed++;
            continue;
        }
        read++;
        changed += rc;
    }
    if (read + failed)
        log_info("SIGHUP: token files read again: %d of %d changed%s", changed, read + failed,
                 failed ? "; the token in use kept where a file failed (above)" : "");
    return changed;
}

void ctl_run(ctl_t *c) { uv_run(&c->loop, UV_RUN_DEFAULT); }

/* The loop is stopped rather than left to run dry: h2o keeps handles of
 * its own on it. */
static void ctl__on_stop_timer(uv_timer_t *t)
{
    ctl_t *c = t->data;
    if (c->h.busy && c->h.busy(c->h.data)) return;
    if (httpd_connections(c->http) &&
        timeparse_mono_ns() - c->stop_at < CTL_HTTP_GRACE_MS * 1000000LL)
        return;
    uv_timer_stop(t);
    uv_stop(&c->loop);
}

static void ctl__close(uv_handle_t *h)
{
    if (h->loop && !uv_is_closing(h)) uv_close(h, NULL);
}

void ctl_stop(ctl_t *c)
{
    if (c->stopping) return;
    c->stopping = 1;
    c->stop_at = timeparse_mono_ns();
    ctl__close((uv_handle_t *)&c->tick);
    httpd_shutdown(c->http);
    uv_timer_start(&c->stop_timer, ctl__on_stop_timer, 0, 20);
}

int ctl_stopping(const ctl_t *c) { return c->stopping; }

void ctl_free(ctl_t *c)
{
    if (!c) return;
    for (size_t i = 0; i < CTL_NSIG; i++) ctl__close((uv_handle_t *)&c->sig[i]);
    ctl__close((uv_handle_t *)&c->tick);
    ctl__close((uv_handle_t *)&c->stop_timer);
    httpd_free(c->http); /* runs the loop once to close h2o's handles */
    metrics_free(c->metrics);
    c->metrics = NULL;
    free(c->metrics_token_path);
    c->metrics_token_path = NULL;
    uv_run(&c->loop, UV_RUN_NOWAIT);
    /* EBUSY when h2o kept connections open: they go with the process. */
    if (uv_loop_close(&c->loop) == 0) free(c);
}
