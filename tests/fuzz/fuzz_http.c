/* fuzz_http.c - the coordinator's HTTP side: the REST API (restapi.c,
 * monrest.c), the dashboard's files (webui.c) and the status routes every
 * daemon serves, the recorder's included (/healthz, /readyz, /metrics:
 * common/ctl.c), wired as coordinator/main.c wires them.
 *
 * An input is the text of an HTTP/1.1 request - request line, headers
 * (Authorization among them), a blank line, the body - made into a request
 * by httpd_req_from_text() (common/httpd.c; h2o's own parsing is not ours
 * to fuzz) and routed by the same table a connection's request is. The
 * handlers run for real: the router, the token check, the parameter
 * parsers, the search's JSON body, the monitor bodies, and the checks that
 * follow them (libpcap filters, time ranges, the flows query's SQL). Work
 * they hand on goes where it would: database jobs to a pool whose database
 * is not there (each fails "unreachable" and is answered 503 by its done
 * callback), searches to a scatter whose two recorders announce no search
 * service (they end at once). Checked: every request is answered exactly
 * once, with a status; an error is JSON {"error", "status"} with that
 * status; under /api/v1/ (but the OpenAPI document) nothing but 401,
 * 404 or 405 without a token; /metrics 200 with its token (given as
 * --metrics-token-file gives it) and 401 without.
 */
#include "ctl.h"
#include "dbpool.h"
#include "fuzz.h"
#include "httpd.h"
#include "monitor.h"
#include "registry.h"
#include "restapi.h"
#include "scatter.h"
#include "timeparse.h"
#include "token.h"
#include "webui.h"

#include <jansson.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FUZZ_READ "fuzz-http-read-token-0123456789"
#define FUZZ_ADMIN "fuzz-http-admin-token-0123456789"

static struct {
    ctl_t *ctl;
    uv_loop_t *loop;
    dbpool_t *pool;
    registry_t *reg;
    scatter_t *sc;
    monitor_set_t *mon;
    restapi_t *rest;
} fz;

static void fuzz__signal(void *data, int sig) { (void)data, (void)sig; }
static void fuzz__health(void *data, int ready, json_t *why) { (void)data, (void)ready, (void)why; }
static void fuzz__metrics(void *data, metrics_t *m)
{
    (void)data;
    metrics_counter(m, "fuzz_requests_total", "requests", 1);
}

static void fuzz__setup(void)
{
    char err[512];
    ctl_hooks hooks = { .on_signal = fuzz__signal };
    fz.ctl = ctl_new(&hooks, 3600000);
    /* The daemon's signals stay the process's (a fuzzer is stopped by them). */
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGHUP, SIG_DFL);
    signal(SIGUSR1, SIG_DFL);
    fz.loop = ctl_loop(fz.ctl);
    FUZZ_CHECK(ctl_listen(fz.ctl, "127.0.0.1:0", NULL, err, sizeof err) == 0);
    fz.pool = dbpool_new(fz.loop, "host=/nonexistent-fuzz-http port=1 connect_timeout=1");
    fz.reg = registry_new();
    const char *names[] = { "rec-a", "rec-b" };
    for (int i = 0; i < 2; i++) {
        Mirrorscope__Heartbeat hb = MIRRORSCOPE__HEARTBEAT__INIT;
        hb.node = (char *)names[i];
        hb.time_ns = timeparse_now_ns();
        hb.start_ns = 1;
        uint8_t buf[256];
        size_t n = mirrorscope__heartbeat__pack(&hb, buf);
        Mirrorscope__Heartbeat *h = mirrorscope__heartbeat__unpack(NULL, n, buf);
        FUZZ_CHECK(h);
        registry_heartbeat(fz.reg, &h, "");
    }
    scatter_opts so = { .token = "search-token" };
    fz.sc = scatter_new(fz.loop, NULL, &so);
    fz.mon = monitor_new(fz.loop, fz.pool);
    /* /metrics wants a token (the read token's text, in a file as the
     * option gives it), so that its check is fuzzed too. */
    char tpath[] = "/tmp/fuzz-http-metrics-token-XXXXXX";
    int tfd = mkstemp(tpath);
    FUZZ_CHECK(tfd >= 0 && write(tfd, FUZZ_READ "\n", sizeof FUZZ_READ) == (ssize_t)sizeof FUZZ_READ);
    close(tfd);
    ctl_status cs = { .version = "fuzz", .health = fuzz__health, .metrics = fuzz__metrics,
                      .metrics_token_file = tpath };
    FUZZ_CHECK(ctl_serve_status(fz.ctl, &cs, err, sizeof err) == 0);
    unlink(tpath);
    restapi_opts ro = { .read_token = FUZZ_READ, .admin_token = FUZZ_ADMIN,
                        .stale_ns = 30000000000LL, .dead_ns = INT64_MAX / 2, .max_queries = 64,
                        .monitors = fz.mon };
    fz.rest = restapi_new(fz.loop, ctl_http(fz.ctl), &ro, fz.reg, fz.sc, fz.pool);
    webui_serve(ctl_http(fz.ctl));
}

/* Run the loop until the request's jobs are done and what they started
 * has ended (timers keep the loop alive: never UV_RUN_DEFAULT). */
static void fuzz__drain(void)
{
    for (int i = 0; i < 4 || dbpool_busy(fz.pool); i++)
        uv_run(fz.loop, dbpool_busy(fz.pool) ? UV_RUN_ONCE : UV_RUN_NOWAIT);
}

/* 1 when the request carries the read or the admin token as the API reads it. */
static int fuzz__has_token(httpd_req_t *r)
{
    const char *tok = httpd_bearer(r);
    return tok && (token_equal(FUZZ_READ, tok) || token_equal(FUZZ_ADMIN, tok));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!fz.ctl) {
        fuzz_quiet();
        fuzz__setup();
    }
    httpd_req_t *r = httpd_req_from_text((const char *)data, size);
    if (!r) return 0;
    httpd_dispatch(ctl_http(fz.ctl), r);
    fuzz__drain();
    int status = httpd_req_status(r);
    FUZZ_CHECK(status >= 100 && status <= 599);
    FUZZ_CHECK(httpd_req_answers(r) == 1);
    const char *path = httpd_path(r);
    if (!strncmp(path, "/api/v1/", 8) && strcmp(path, "/api/v1/openapi.json") && !fuzz__has_token(r))
        FUZZ_CHECK(status == 401 || status == 404 || status == 405);
    if (!strcmp(path, "/metrics")) /* its token is the read token's text, and only that */
        FUZZ_CHECK(status == (token_equal(FUZZ_READ, httpd_bearer(r)) ? 200 : 401));
    if (status >= 400) {
        size_t len;
        const char *body = httpd_req_answer(r, &len);
        json_t *j = json_loadb(body, len, 0, NULL);
        FUZZ_CHECK(json_is_object(j) && json_is_string(json_object_get(j, "error")));
        FUZZ_CHECK(json_integer_value(json_object_get(j, "status")) == status);
        json_decref(j);
    }
    httpd_req_free(r);
    return 0;
}
