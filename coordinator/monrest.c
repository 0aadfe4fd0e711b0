/* monrest.c - the REST API's monitor endpoints (see monrest.h). */
#include "monrest.h"

#include "pbjson.h"
#include "timeparse.h"
#include "xmalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MONREST_PREFIX "/api/v1/monitors"

typedef struct monrest_job {
    httpd_req_t *req;
    uint64_t *errors;
    int kind; /* what the answer is */
} monrest_job;

enum { ANS_LIST, ANS_ONE, ANS_CREATED, ANS_SERIES };

int monrest_path(const char *path)
{
    size_t n = strlen(MONREST_PREFIX);
    return !strncmp(path, MONREST_PREFIX, n) && (path[n] == 0 || path[n] == '/');
}

int monrest_needs_admin(httpd_req_t *r) { return strcmp(httpd_method(r), "GET") != 0; }

static void monrest__error(httpd_req_t *r, uint64_t *errors, int status, const char *msg)
{
    char line[1024];
    snprintf(line, sizeof line, "%s", msg);
    line[strcspn(line, "\n")] = 0;
    (*errors)++;
    httpd_respond_error(r, status, "%s", line);
}

static void monrest__done(void *arg, Mirrorscope__Response *resp, const char *err)
{
    monrest_job *j = arg;
    if (resp->status != MIRRORSCOPE__RESPONSE__STATUS__OK) {
        monrest__error(j->req, j->errors, monitor_http_status(resp->status), err && *err ? err : "failed");
    } else if (j->kind == ANS_LIST || j->kind == ANS_SERIES) {
        json_t *a = json_array();
        for (size_t i = 0; i < resp->n_monitors; i++)
            json_array_append_new(a, pbjson_message(&resp->monitors[i]->base));
        for (size_t i = 0; i < resp->n_monitor_minutes; i++)
            json_array_append_new(a, pbjson_message(&resp->monitor_minutes[i]->base));
        httpd_respond_json(j->req, 200, json_pack("{s:o}", j->kind == ANS_LIST ? "monitors" : "minutes", a));
    } else if (resp->n_monitors == 1) {
        httpd_respond_json(j->req, j->kind == ANS_CREATED ? 201 : 200,
                           pbjson_message(&resp->monitors[0]->base));
    } else {
        monrest__error(j->req, j->errors, 500, "no monitor in the answer");
    }
    free(j);
}

/* Only these parameters (NULL-terminated). 0, or -1 with err set. */
static int monrest__known(httpd_req_t *r, const char *const *known, char *err, size_t errlen)
{
    const char *p = httpd_query(r);
    while (*p) {
        size_t len = strcspn(p, "&"), klen = strcspn(p, "=&");
        int ok = klen == 0;
        for (int i = 0; known[i] && !ok; i++) ok = strlen(known[i]) == klen && !memcmp(known[i], p, klen);
        if (!ok) {
            snprintf(err, errlen, "unknown parameter '%.*s'", (int)(klen > 64 ? 64 : klen), p);
            return -1;
        }
        p += len + (p[len] == '&');
    }
    return 0;
}

static int monrest__time(httpd_req_t *r, const char *name, int64_t *out, char *err, size_t errlen)
{
    char v[256];
    int rc = httpd_param(r, name, v, sizeof v);
    if (rc < 0) {
        snprintf(err, errlen, "%s: malformed or too long", name);
        return -1;
    }
    if (rc == 0) return 0;
    if (timeparse_parse(v, timeparse_now_ns(), out) < 0) {
        snprintf(err, errlen, "%s: '%.100s' is not a time (RFC 3339, Unix seconds, or a duration ago "
                              "such as 15m)", name, v);
        return -1;
    }
    return 0;
}

void monrest_handle(monitor_set_t *m, httpd_req_t *r, uint64_t *errors)
{
    static const char *const none[] = { NULL }, *const range[] = { "from", "to", NULL };
    const char *path = httpd_path(r) + strlen(MONREST_PREFIX), *method = httpd_method(r);
    char name[128] = "", err[1024] = "";
    int series = 0;
    if (*path == '/') {
        path++;
        size_t n = strcspn(path, "/");
        if (n == 0 || n >= sizeof name) {
            monrest__error(r, errors, 404, "no such monitor resource (see /api/v1/openapi.json)");
            return;
        }
        memcpy(name, path, n);
        name[n] = 0;
        if (path[n]) {
            if (strcmp(path + n, "/series")) {
                monrest__error(r, errors, 404, "no such monitor resource (see /api/v1/openapi.json)");
                return;
            }
            series = 1;
        }
    }
    const char *allowed = series ? "GET" : *name ? "GET, PUT or DELETE" : "GET or POST";
    int ok_method = series ? !strcmp(method, "GET")
                  : *name ? !strcmp(method, "GET") || !strcmp(method, "PUT") || !strcmp(method, "DELETE")
                          : !strcmp(method, "GET") || !strcmp(method, "POST");
    if (!ok_method) {
        snprintf(err, sizeof err, "%s takes %s", httpd_path(r), allowed);
        monrest__error(r, errors, 405, err);
        return;
    }
    Mirrorscope__Request q = MIRRORSCOPE__REQUEST__INIT;
    Mirrorscope__MonitorRequest mr = MIRRORSCOPE__MONITOR_REQUEST__INIT;
    Mirrorscope__MonitorSeries ms = MIRRORSCOPE__MONITOR_SERIES__INIT;
    Mirrorscope__Monitor def = MIRRORSCOPE__MONITOR__INIT;
    json_t *body = NULL;
    char **nodes = NULL;
    monrest_job *j = xcalloc(1, sizeof *j);
    j->req = r;
    j->errors = errors;
    if (monrest__known(r, series ? range : none, err, sizeof err) < 0) goto bad;
    if (series) {
        if (monrest__time(r, "from", &ms.from_ns, err, sizeof err) < 0 ||
            monrest__time(r, "to", &ms.to_ns, err, sizeof err) < 0)
            goto bad;
        ms.name = name;
        q.body_case = MIRRORSCOPE__REQUEST__BODY_MONITOR_SERIES;
        q.monitor_series = &ms;
        j->kind = ANS_SERIES;
    } else {
        q.body_case = MIRRORSCOPE__REQUEST__BODY_MONITOR;
        q.monitor = &mr;
        mr.name = name;
        if (!strcmp(method, "POST") || !strcmp(method, "PUT")) {
            size_t len;
            const char *text = httpd_body(r, &len);
            json_error_t jerr;
            body = json_loadb(text, len, 0, &jerr);
            if (!body) {
                snprintf(err, sizeof err, "the body must be a JSON object (a Monitor): %s", jerr.text);
                goto bad;
            }
            if (monitor_from_json(body, &def, &nodes, err, sizeof err) < 0) goto bad;
            mr.monitor = &def;
            mr.op = !strcmp(method, "POST") ? "create" : "set";
            j->kind = !strcmp(method, "POST") ? ANS_CREATED : ANS_ONE;
        } else if (!strcmp(method, "DELETE")) {
            mr.op = "delete";
            j->kind = ANS_ONE;
        } else {
            mr.op = *name ? "show" : "list";
            j->kind = *name ? ANS_ONE : ANS_LIST;
        }
    }
    monitor_submit(m, &q, monrest__done, j); /* copies q */
    goto out;
bad:
    monrest__error(r, errors, 400, err);
    free(j);
out:
    free(nodes);
    json_decref(body);
}
