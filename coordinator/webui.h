/* webui.h - the coordinator's web dashboard: the files under web/ (and
 * uPlot's, from web/node_modules), compiled into the binary at build time
 * by cmake/embed_files.cmake and served under "/" on the HTTP listener.
 *
 * The files hold no data and need no token; the page asks the user for a
 * REST API token and sends it to /api/v1/ itself (docs/OPERATIONS.md).
 */
#ifndef MSCOPE_WEBUI_H
#define MSCOPE_WEBUI_H

#include "httpd.h"

#include <stddef.h>

/* One embedded file: its URL path ("/index.html"), its bytes, and its
 * entity tag (quoted, from its SHA-256). */
typedef struct webui_file {
    const char *url;
    const char *data;
    size_t len;
    const char *etag;
} webui_file;

/* The table the build generates; the last row's url is NULL. */
extern const webui_file webui_files[];

/* Route "/" and everything below it that no longer route claims (the REST
 * API, /healthz, /readyz and /metrics keep theirs) to the embedded files.
 * "/" is /index.html; a path that is not a file is the usual JSON 404: the
 * dashboard's own pages are "#/name" fragments of "/", so every URL it
 * makes is "/" or a file. */
void webui_serve(httpd_t *http);

/* The file for a URL path ("/" is "/index.html"), or NULL. */
const webui_file *webui_find(const char *path);

/* The Content-Type for a URL path, from its extension. */
const char *webui_content_type(const char *path);

#endif
