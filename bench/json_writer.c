/* json_writer.c - the recorder's hand-written flow-record JSON writer
 * (common/flowrec.c, on the --flows-json path) beside jansson building and
 * dumping the same object (both walk the field table, flowrec_fields.h),
 * in the same run. Prints records/s for each; the
 * issue keeps a hand-written writer only where it is measurably faster.
 *
 *   json_writer [RECORDS]     (default 1000000)
 */
#include "flowkey.h"
#include "flowrec.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static json_t *stat_json(const flowrec_stat *s)
{
    if (!s->count) return json_pack("{s:I}", "count", (json_int_t)0);
    return json_pack("{s:I, s:I, s:I, s:I}", "count", (json_int_t)s->count, "min", (json_int_t)s->min,
                     "mean", (json_int_t)(s->sum / (int64_t)s->count), "max", (json_int_t)s->max);
}

static json_t *ip_json(const uint8_t ip[16])
{
    char a[64];
    flowkey_addr_str(ip, a, sizeof a);
    return json_string(a);
}

/* A value by its kind's class (flowrec_fields.h), walking the same table
 * as flowrec_json(). */
#define J_UINT(v) json_integer((json_int_t)(v))
#define J_SINT(v) json_integer((json_int_t)(v))
#define J_IP(v) ip_json(v)
#define J_TEXT(v) json_string(v)
#define J_BOOL(v) json_boolean(v)
#define J_VAL(kind, v) FLOWREC_CAT(J_, FLOWREC_CLASS_##kind)(v)
#define J_SET(o, key, v) json_object_set_new((o), (key), (v));

#define J_DIR_F(c, kind, name, num) J_SET(o, #name, J_VAL(kind, d->name))
#define J_DIR_S(c, member, name, sql, num) J_SET(o, #name, stat_json(&d->member))

static json_t *dir_json(const flowrec_dir *d)
{
    json_t *o = json_object();
    FLOWREC_DIR_FIELDS(J_DIR_F, J_DIR_S, _)
    return o;
}

#define J_HS_F(c, kind, member, pbname, bit, num)                                              \
    if ((bit) && (r->hs_seen & (bit)) == (bit)) J_SET(h, #pbname, J_VAL(kind, r->member))
#define J_HS_V(c, name, num, bits, a, b)                                                       \
    if ((r->hs_seen & (bits)) == (bits)) J_SET(h, #name, json_integer(r->a - r->b))

static json_t *hs_json(const flowrec *r)
{
    json_t *h = json_object();
    J_SET(h, "complete", json_boolean((r->hs_seen & FLOWREC_HS_COMPLETE) == FLOWREC_HS_COMPLETE))
    FLOWREC_HS_FIELDS(J_HS_F, J_HS_V, _)
    return h;
}

#define J_F(c, kind, name, num)                                                                \
    J_SET(o, #name, J_VAL(kind, r->name))                                                      \
    if (!strcmp(#kind, "ID")) J_SET(o, "node", json_string(node))
#define J_EP(e, kind, leaf, num) J_SET(sub, #leaf, J_VAL(kind, r->e##_##leaf))
#define J_E(c, name, num)                                                                      \
    sub = json_object();                                                                       \
    FLOWREC_EP_FIELDS(J_EP, name)                                                              \
    J_SET(o, #name, sub)
#define J_D(c, name, num) J_SET(o, #name, dir_json(&r->name))
#define J_H(c, name, num)                                                                      \
    if (r->proto == 6) J_SET(o, #name, hs_json(r))
#define J_S(c, member, name, sql, num) J_SET(o, #name, stat_json(&r->member))

/* The same object as flowrec_json(), built with jansson. */
static char *jansson_json(const flowrec *r, const char *node)
{
    json_t *o = json_object(), *sub;
    FLOWREC_FIELDS(J_F, J_E, J_D, J_H, J_S, _)
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return s;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 1000000;
    flowrec r;
    memset(&r, 0, sizeof r);
    r.flow_id = ((uint64_t)1796164986 << 32) | 1;
    r.vni = 7;
    r.proto = 6;
    r.client_ip[10] = r.client_ip[11] = r.server_ip[10] = r.server_ip[11] = 0xff;
    r.client_ip[12] = r.server_ip[12] = 10;
    r.client_port = 40000;
    r.server_port = 443;
    r.first_ns = 1796164986000000000LL;
    r.last_ns = r.first_ns + 5000000;
    r.c2s.packets = 12;
    r.c2s.rtt = (flowrec_stat){ 1000, 9000, 20000, 4 };
    r.hs_seen = 15;
    snprintf(r.conn_state, sizeof r.conn_state, "SF");
    snprintf(r.history, sizeof r.history, "ShADadFf");
    r.final = 1;
    char buf[4096];
    size_t sink = 0;
    double t0 = now();
    for (long i = 0; i < n; i++) {
        r.flow_id++;
        sink += (size_t)flowrec_json(&r, "recorder-1", buf, sizeof buf);
    }
    double ours = now() - t0;
    t0 = now();
    for (long i = 0; i < n; i++) {
        r.flow_id++;
        char *s = jansson_json(&r, "recorder-1");
        sink += strlen(s);
        free(s);
    }
    double theirs = now() - t0;
    printf("flow record JSON, %ld records: flowrec_json %.0f records/s, jansson %.0f records/s "
           "(%.1fx) [%zu bytes]\n", n, n / ours, n / theirs, theirs / ours, sink);
    return 0;
}
