/* toolpub.h - the bus publisher of the test publishers (flowgen, appgen):
 * CURVE with both keys given (a pair whose .pub the coordinator allows with
 * role recorder - a client key is refused on the bus - and the
 * coordinator's curve.pub), else plain; waits up to 10 s for the
 * coordinator to subscribe. Returns NULL after saying why on stderr, with
 * *rc the tool's exit code (2: bad keys, 1: no subscriber). */
#ifndef MSCOPE_TOOLPUB_H
#define MSCOPE_TOOLPUB_H

#include "bus.h"
#include "busauth.h"

#include <stdio.h>
#include <string.h>

static bus_pub_t *toolpub_open(const char *prog, const char *to, const char *key_file,
                               const char *server_key, int *rc)
{
    char err[1024];
    bus_sec sec;
    memset(&sec, 0, sizeof sec);
    busauth_pair srv;
    int secure = key_file && server_key;
    if (secure && (busauth_load(key_file, 1, &sec.self, err, sizeof err) < 0 ||
                   busauth_load(server_key, 0, &srv, err, sizeof err) < 0)) {
        fprintf(stderr, "%s: %s\n", prog, err);
        *rc = 2;
        return NULL;
    }
    if (secure) memcpy(sec.server_key, srv.pub, sizeof srv.pub);
    bus_pub_t *pub = bus_pub_new(to, 1000, secure ? &sec : NULL, err, sizeof err);
    if (!pub || !bus_pub_wait_subscriber(pub, 10000)) {
        fprintf(stderr, "%s: %s\n", prog, pub ? "no subscriber within 10 s" : err);
        bus_pub_close(pub, 0);
        *rc = 1;
        return NULL;
    }
    return pub;
}

#endif
