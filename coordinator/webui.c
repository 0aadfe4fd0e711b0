/* webui.c - serves the dashboard's embedded files (see webui.h).
 *
 * DESIGN: the build turns web/ into a table of byte arrays (no file is read
 * at run time, so the coordinator's seccomp filter and working directory do
 * not matter, and the binary is the whole install). Each answer carries an
 * ETag from the file's SHA-256 and "Cache-Control: no-cache": a browser
 * keeps the file but asks each time, and an unchanged file costs a 304 with
 * no body - so a new coordinator binary is never shadowed by an old cached
 * script, which hashed file names would otherwise be needed for. A Content-
 * Security-Policy keeps the page to its own origin (nothing from a CDN, no
 * inline scripts), and nosniff makes the types below binding.
 */
#include "webui.h"

#include <string.h>

static const char *const webui__headers[] = {
    "x-content-type-options", "nosniff",
    "content-security-policy",
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'",
    "referrer-policy", "no-referrer",
    NULL,
};

const char *webui_content_type(const char *path)
{
    static const struct {
        const char *ext, *type;
    } types[] = {
        { ".html", "text/html; charset=utf-8" },
        { ".js", "text/javascript; charset=utf-8" },
        { ".css", "text/css; charset=utf-8" },
        { ".svg", "image/svg+xml" },
        { ".png", "image/png" },
        { ".json", "application/json" },
    };
    const char *dot = strrchr(path, '.');
    if (dot && !strchr(dot, '/'))
        for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
            if (!strcmp(dot, types[i].ext)) return types[i].type;
    return "application/octet-stream";
}

const webui_file *webui_find(const char *path)
{
    if (!strcmp(path, "/")) path = "/index.html";
    for (const webui_file *f = webui_files; f->url; f++)
        if (!strcmp(f->url, path)) return f;
    return NULL;
}

/* An If-None-Match header that names etag (or is "*"). */
static int webui__fresh(const char *inm, const char *etag)
{
    if (!inm) return 0;
    if (!strcmp(inm, "*")) return 1;
    const char *p = strstr(inm, etag);
    return p != NULL;
}

static int webui__on_request(void *data, httpd_req_t *r)
{
    (void)data;
    const webui_file *f = webui_find(httpd_path(r));
    if (!f) return -1; /* the JSON 404 */
    const char *m = httpd_method(r);
    if (strcmp(m, "GET") && strcmp(m, "HEAD")) {
        httpd_respond_error(r, 405, "%s takes GET", httpd_path(r));
        return 0;
    }
    const char *headers[16];
    size_t n = 0;
    for (; webui__headers[n]; n++) headers[n] = webui__headers[n];
    headers[n++] = "etag";
    headers[n++] = f->etag;
    headers[n] = NULL;
    const char *type = webui_content_type(f->url);
    if (webui__fresh(httpd_header(r, "if-none-match"), f->etag))
        httpd_respond_with(r, 304, type, "no-cache", headers, "", 0);
    else
        httpd_respond_with(r, 200, type, "no-cache", headers, f->data, f->len);
    return 0;
}

void webui_serve(httpd_t *http)
{
    httpd_route(http, "/", webui__on_request, NULL);
}
