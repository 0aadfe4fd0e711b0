/* flowgen.c - a load generator for the coordinator: publishes realistic
 * FlowBatch messages (every field set, as a recorder's: flow records
 * mapped by the recorder's own flowpb.h) on the bus as fast
 * as the coordinator takes them (XPUB without drops: a full queue waits).
 *
 *   flowgen --to tcp://127.0.0.1:5556 --records N [--node NAME] [--batch 500]
 *           [--interim-every K] [--interims-first MS] [--servers N] [--spread S] [--pool N]
 *           [--seed S] [--rate R]
 *
 * --interim-every K: every Kth flow also gets an interim record, sent just
 * before its final; with --interims-first MS, all interim records go first,
 * then MS milliseconds of quiet, then the finals (the live table's test).
 *
 * --pool N: make N distinct records once, pack them once, and send them over
 * and over with the node renamed each pass ("NODE-1", "NODE-2", ...: flows
 * stay unique), so the generator's own CPU stays out of the measurement (a
 * serialized FlowBatch of node/seq fields followed by one of records is one
 * valid FlowBatch: protobuf concatenation merges).
 *
 * --rate R: at most R records a second, evenly (checked after each batch), for
 * a steady stream of known length; default: as fast as the coordinator takes
 * them.
 *
 * Prints "sent=N seconds=S rate=R" at the end. Used by bench_coordinator.py:
 * a recorder replaying a capture spends most of its CPU on the packets,
 * which on two cores would measure the recorder, not the coordinator.
 *
 *   flowgen --fields
 *   flowgen --to ENDPOINT --distinct N [--node NAME]
 *
 * --fields prints the flow record's field table (common/flowrec_fields.h)
 * as JSON, one line per value: its kind, C member, JSON path, protobuf path,
 * SQL column and type ("derived": shown in JSON and protobuf, not stored).
 * --distinct N sends N records in which every field has its own value
 * (tests/tools/flowsample.h), through the recorder's own protobuf mapping,
 * and prints each as one line {"json": its --flows-json object, "sql": each
 * column's value as psql prints it}. Both for test_flow_fields.py, which
 * walks the table and lists no field itself.
 */
#include "bus.h"
#include "decode.h"
#include "flowkey.h"
#include "flowpb.h"
#include "flowsample.h"
#include "mirrorscope.pb-c.h"
#include "timeparse.h"
#include "toolpub.h"
#include "xmalloc.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static uint64_t rng = 88172645463325252ULL;
static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* A record as a recorder's flow table makes it, and its message (flowpb.h:
 * the recorder's own mapping, so every field is set as a recorder sets it). */
typedef struct gen_rec {
    flowrec f;
    flowpb pb; /* pb.msg is what is sent; it points into f */
} gen_rec;

static void fill(gen_rec *g, uint64_t id, int64_t first, int final, int servers)
{
    static const uint16_t ports[] = { 443, 80, 22, 5432, 8080, 53, 3306, 6379 };
    flowrec *f = &g->f;
    memset(f, 0, sizeof *f);
    uint32_t srv = (uint32_t)(rnd() % (uint64_t)servers);
    const uint8_t cip[4] = { 10, (uint8_t)rnd(), (uint8_t)rnd(), (uint8_t)rnd() };
    const uint8_t sip[4] = { 172, 16, (uint8_t)(srv >> 8), (uint8_t)srv };
    const uint8_t obs[4] = { 10, 0, 0, 9 };
    decode_map4(cip, f->client_ip);
    decode_map4(sip, f->server_ip);
    decode_map4(obs, f->observer);
    f->client_port = (uint16_t)(32768 + rnd() % 28000);
    f->server_port = ports[srv % 8];
    f->flow_id = id;
    f->vni = 7;
    f->proto = 6;
    f->first_ns = first;
    int64_t rtt = 200000 + (int64_t)(rnd() % 40000000);
    f->last_ns = first + rtt * (int64_t)(2 + rnd() % 50);
    for (int k = 0; k < 2; k++) {
        flowrec_dir *d = k ? &f->s2c : &f->c2s;
        d->packets = 3 + rnd() % 200;
        d->payload_bytes = d->packets * (rnd() % 1400);
        d->ip_bytes = d->payload_bytes + 52 * d->packets;
        d->retransmissions = rnd() % 16 == 0 ? (uint32_t)(rnd() % 5) : 0;
        d->dup_acks = (uint32_t)(rnd() % 3);
        d->fins = 1;
        d->rtt.count = d->packets / 2;
        d->rtt.min = rtt;
        d->rtt.max = rtt * 3;
        d->rtt.sum = (int64_t)d->rtt.count * rtt * 2;
    }
    f->hs_seen = FLOWREC_HS_COMPLETE | FLOWREC_HS_IRTT;
    f->syn_ns = first;
    f->synack_ns = first + rtt / 2;
    f->ack_ns = first + rtt;
    f->initial_rtt_ns = rtt;
    f->app_response.count = 1 + rnd() % 5;
    f->app_response.min = rtt;
    f->app_response.max = rtt * 4;
    f->app_response.sum = (int64_t)f->app_response.count * rtt * 2;
    snprintf(f->conn_state, sizeof f->conn_state, "%s", final ? "SF" : "S1");
    snprintf(f->history, sizeof f->history, "%s", final ? "ShADadFf" : "ShADad");
    f->final = final;
    flowpb_fill(&g->pb, f);
}

/* ---- the field table, and records of distinct values ---------------------- */

static void flowgen__row(const char *kind, const char *c, const char *json, const char *pb,
                         const char *sql, const char *sql_type)
{
    json_t *o = json_pack("{s:s, s:s?, s:s?, s:s, s:s?, s:s?, s:b}", "kind", kind, "c", c, "json",
                          json, "pb", pb, "sql", sql, "sql_type", sql_type, "derived", !sql);
    json_dumpf(o, stdout, JSON_COMPACT);
    putchar('\n');
    json_decref(o);
}

/* The JSON key of a statistic's value: JSON shows the mean, not the sum. */
#define FG_STAT_KEY_count "count"
#define FG_STAT_KEY_min "min"
#define FG_STAT_KEY_max "max"
#define FG_STAT_KEY_sum "mean"
#define FG_F(c, kind, name, num) flowgen__row(#kind, #name, #name, #name, #name, FLOWREC_SQL_##kind);
#define FG_EP(e, kind, leaf, num)                                                              \
    flowgen__row(#kind, #e "_" #leaf, #e "." #leaf, #e "." #leaf, #e "_" #leaf, FLOWREC_SQL_##kind);
#define FG_E(c, name, num) FLOWREC_EP_FIELDS(FG_EP, name)
/* a statistic: c is ("C member prefix", "JSON/protobuf prefix", "column prefix") */
#define FG_A0(a, b, c) a
#define FG_A1(a, b, c) b
#define FG_A2(a, b, c) c
#define FG_STAT(c, kind, name, num)                                                            \
    flowgen__row(#kind, FG_A0 c "." #name, FG_A1 c "." FG_STAT_KEY_##name, FG_A1 c "." #name,  \
                 FG_A2 c "_" #name, FLOWREC_SQL_##kind);
#define FG_S(c, member, name, sql, num) FLOWREC_STAT_FIELDS(FG_STAT, (#member, #name, #sql))
#define FG_DIR(d, kind, name, num)                                                             \
    flowgen__row(#kind, #d "." #name, #d "." #name, #d "." #name, #d "_" #name, FLOWREC_SQL_##kind);
#define FG_DIR_S(d, member, name, sql, num)                                                    \
    FLOWREC_STAT_FIELDS(FG_STAT, (#d "." #member, #d "." #name, #d "_" #sql))
#define FG_D(c, name, num) FLOWREC_DIR_FIELDS(FG_DIR, FG_DIR_S, name)
#define FG_HS(h, kind, member, pbname, bit, num)                                               \
    flowgen__row(#kind, #member, (bit) ? h "." #pbname : NULL, h "." #pbname, #member,         \
                 FLOWREC_SQL_##kind);
#define FG_HS_V(h, name, num, bits, a, b) flowgen__row("I64", NULL, h "." #name, h "." #name, NULL, NULL);
#define FG_H(c, name, num)                                                                     \
    flowgen__row("BOOL", NULL, #name ".complete", #name ".complete", NULL, NULL);              \
    FLOWREC_HS_FIELDS(FG_HS, FG_HS_V, #name)

static void flowgen__fields(void)
{
    FLOWREC_FIELDS(FG_F, FG_E, FG_D, FG_H, FG_S, _)
}

/* Each column's value as psql prints it (inet without its full mask). */
static void flowgen__sql_int(json_t *o, const char *col, long long v)
{
    char t[32];
    snprintf(t, sizeof t, "%lld", v);
    json_object_set_new(o, col, json_string(t));
}

static void flowgen__sql_ip(json_t *o, const char *col, const uint8_t ip[16])
{
    char t[64];
    flowkey_addr_str(ip, t, sizeof t);
    json_object_set_new(o, col, json_string(t));
}

/* By kind: the value COPY stores (ID and U64 as bigint, U32 as integer: signed). */
#define FG_SQL_ID(o, col, v) flowgen__sql_int(o, col, (long long)(int64_t)(v))
#define FG_SQL_U64(o, col, v) flowgen__sql_int(o, col, (long long)(int64_t)(v))
#define FG_SQL_I64(o, col, v) flowgen__sql_int(o, col, (long long)(v))
#define FG_SQL_U32B(o, col, v) flowgen__sql_int(o, col, (long long)(v))
#define FG_SQL_U32(o, col, v) flowgen__sql_int(o, col, (long long)(int32_t)(v))
#define FG_SQL_U16(o, col, v) flowgen__sql_int(o, col, (long long)(v))
#define FG_SQL_U8(o, col, v) flowgen__sql_int(o, col, (long long)(v))
#define FG_SQL_IP(o, col, v) flowgen__sql_ip(o, col, (v))
#define FG_SQL_TEXT8(o, col, v) json_object_set_new(o, col, json_string(v))
#define FG_SQL_TEXT24(o, col, v) json_object_set_new(o, col, json_string(v))
#define FG_SQL_BOOL(o, col, v) json_object_set_new(o, col, json_string((v) ? "t" : "f"))

#define FQ_F(c, kind, name, num) FG_SQL_##kind(o, #name, r->name);
#define FQ_EP(e, kind, leaf, num) FG_SQL_##kind(o, #e "_" #leaf, r->e##_##leaf);
#define FQ_E(c, name, num) FLOWREC_EP_FIELDS(FQ_EP, name)
#define FQ_STAT(p, kind, name, num) FG_SQL_##kind(o, FG_ARG0 p "_" #name, FG_ARG1 p.name);
#define FG_ARG0(a, b) a
#define FG_ARG1(a, b) b
#define FQ_S(c, member, name, sql, num) FLOWREC_STAT_FIELDS(FQ_STAT, (#sql, r->member))
#define FQ_DIR(d, kind, name, num) FG_SQL_##kind(o, #d "_" #name, r->d.name);
#define FQ_DIR_S(d, member, name, sql, num) FLOWREC_STAT_FIELDS(FQ_STAT, (#d "_" #sql, r->d.member))
#define FQ_D(c, name, num) FLOWREC_DIR_FIELDS(FQ_DIR, FQ_DIR_S, name)
#define FQ_HS(c, kind, member, pbname, bit, num) FG_SQL_##kind(o, #member, r->member);
#define FQ_H(c, name, num) FLOWREC_HS_FIELDS(FQ_HS, FLOWREC_NOTHING, _)

static json_t *flowgen__sql(const flowrec *r)
{
    json_t *o = json_object();
    FLOWREC_FIELDS(FQ_F, FQ_E, FQ_D, FQ_H, FQ_S, _)
    return o;
}

/* --distinct: n records, sent in one batch, printed as they were sent. */
static int flowgen__distinct(bus_pub_t *pub, const char *node, unsigned n)
{
    int64_t now = timeparse_now_ns();
    flowrec *recs = xcalloc(n, sizeof *recs);
    flowpb *pbs = xcalloc(n, sizeof *pbs);
    Mirrorscope__FlowRecord **ptrs = xcalloc(n, sizeof *ptrs);
    for (unsigned k = 0; k < n; k++) {
        flowsample_make(&recs[k], k, now - 3600 * 1000000000LL);
        flowpb_fill(&pbs[k], &recs[k]);
        ptrs[k] = &pbs[k].msg;
    }
    Mirrorscope__FlowBatch b;
    mirrorscope__flow_batch__init(&b);
    b.node = (char *)node;
    b.start_ns = now;
    b.seq = 1;
    b.n_records = n;
    b.records = ptrs;
    size_t len = mirrorscope__flow_batch__get_packed_size(&b);
    uint8_t *buf = xmalloc(len);
    mirrorscope__flow_batch__pack(&b, buf);
    int rc;
    while ((rc = bus_pub_send(pub, "flow", buf, len)) == -EAGAIN) usleep(200);
    if (rc < 0) fprintf(stderr, "flowgen: send failed: %s\n", strerror(-rc));
    for (unsigned k = 0; rc >= 0 && k < n; k++) {
        char line[4096];
        int jl = flowrec_json(&recs[k], node, line, sizeof line);
        json_t *sql = flowgen__sql(&recs[k]);
        char *s = json_dumps(sql, JSON_COMPACT);
        printf("{\"json\":%.*s,\"sql\":%s}\n", jl, line, s);
        free(s);
        json_decref(sql);
    }
    free(buf);
    free(ptrs);
    free(pbs);
    free(recs);
    return rc < 0 ? 1 : 0;
}

/* With a rate, sleep until `sent` records are due (t0: when sending began). */
static void pace(double rate, int64_t t0, long long sent)
{
    if (rate <= 0) return;
    int64_t wait = t0 + (int64_t)((double)sent * 1e9 / rate) - timeparse_mono_ns();
    if (wait <= 0) return;
    struct timespec ts = { (time_t)(wait / 1000000000LL), (long)(wait % 1000000000LL) };
    nanosleep(&ts, NULL);
}

int main(int argc, char **argv)
{
    const char *to = NULL, *node = "flowgen", *key_file = NULL, *server_key = NULL;
    double rate = 0;
    long long records = 0, distinct = 0, batch = 500, interim_every = 0, servers = 2000, first_ms = -1, pool = 0, spread = 60;
    if (argc == 2 && !strcmp(argv[1], "--fields")) {
        flowgen__fields();
        return 0;
    }
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--to")) to = argv[i + 1];
        else if (!strcmp(argv[i], "--distinct")) distinct = atoll(argv[i + 1]);
        else if (!strcmp(argv[i], "--node")) node = argv[i + 1];
        else if (!strcmp(argv[i], "--key-file")) key_file = argv[i + 1];
        else if (!strcmp(argv[i], "--server-key")) server_key = argv[i + 1];
        else if (!strcmp(argv[i], "--records")) records = atoll(argv[i + 1]);
        else if (!strcmp(argv[i], "--batch")) batch = atoll(argv[i + 1]);
        else if (!strcmp(argv[i], "--interim-every")) interim_every = atoll(argv[i + 1]);
        else if (!strcmp(argv[i], "--servers")) servers = atoll(argv[i + 1]);
        else if (!strcmp(argv[i], "--interims-first")) first_ms = atoll(argv[i + 1]);
        else if (!strcmp(argv[i], "--pool")) pool = atoll(argv[i + 1]);
        else if (!strcmp(argv[i], "--spread")) spread = atoll(argv[i + 1]);
        else if (!strcmp(argv[i], "--rate")) rate = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--seed")) rng ^= (uint64_t)atoll(argv[i + 1]) * 0x9e3779b97f4a7c15ULL;
        else {
            fprintf(stderr, "flowgen: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (distinct > 0 && distinct <= 1000) records = distinct;
    if (!to || records <= 0 || batch < 1 || batch > 5000 || servers < 1 || spread < 1 || rate < 0) {
        fprintf(stderr, "usage: flowgen --to ENDPOINT --records N [--node NAME] [--batch 500] "
                        "[--interim-every K] [--interims-first MS] [--servers N] [--spread S] "
                        "[--pool N] [--seed S] [--rate R] [--key-file PAIR --server-key PUB]\n"
                        "       flowgen --to ENDPOINT --distinct N (at most 1000) [--node NAME]\n"
                        "       flowgen --fields\n");
        return 2;
    }
    int open_rc;
    bus_pub_t *pub = toolpub_open("flowgen", to, key_file, server_key, &open_rc);
    if (!pub) return open_rc;
    if (distinct) {
        int rc = flowgen__distinct(pub, node, (unsigned)distinct);
        bus_pub_close(pub, 60000);
        return rc;
    }
    gen_rec *g = xcalloc((size_t)batch, sizeof *g);
    Mirrorscope__FlowRecord **ptrs = xcalloc((size_t)batch, sizeof *ptrs);
    uint8_t *buf = NULL;
    size_t cap = 0;
    int64_t start = timeparse_now_ns();
    uint64_t idbase = (uint64_t)(start / 1000000000LL) << 32, seq = 0;
    /* Flows start over the last --spread seconds (default 60), in order, as a
     * recorder's records of short flows do. */
    int64_t first0 = start - spread * 1000000000LL, step = spread * 1000000000LL / records;
    int64_t t0 = timeparse_mono_ns();
    long long sent = 0;
    if (pool > 0) { /* pre-packed records, resent under new node names */
        size_t nb = (size_t)((pool + batch - 1) / batch);
        uint8_t **body = xcalloc(nb, sizeof *body);
        size_t *blen = xcalloc(nb, sizeof *blen), *bcount = xcalloc(nb, sizeof *bcount);
        for (size_t k = 0; k < nb; k++) {
            size_t n = 0;
            for (; n < (size_t)batch && (long long)(k * (size_t)batch + n) < pool; n++) {
                long long i = (long long)(k * (size_t)batch + n);
                int interim = interim_every && i % interim_every == 0;
                fill(&g[n], idbase + (uint64_t)i, first0 + i * (spread * 1000000000LL / pool), !interim,
                     (int)servers);
                ptrs[n] = &g[n].pb.msg;
            }
            Mirrorscope__FlowBatch b;
            mirrorscope__flow_batch__init(&b);
            b.n_records = n;
            b.records = ptrs;
            blen[k] = mirrorscope__flow_batch__get_packed_size(&b);
            body[k] = xmalloc(blen[k]);
            mirrorscope__flow_batch__pack(&b, body[k]);
            bcount[k] = n;
        }
        char name[300];
        for (long long pass = 1; sent < records; pass++) {
            snprintf(name, sizeof name, "%s-%lld", node, pass);
            for (size_t k = 0; k < nb && sent < records; k++) {
                Mirrorscope__FlowBatch h;
                mirrorscope__flow_batch__init(&h);
                h.node = name;
                h.start_ns = start;
                h.seq = ++seq;
                size_t hl = mirrorscope__flow_batch__get_packed_size(&h);
                if (hl + blen[k] > cap) buf = xrealloc(buf, cap = hl + blen[k]);
                mirrorscope__flow_batch__pack(&h, buf);
                memcpy(buf + hl, body[k], blen[k]);
                int rc;
                while ((rc = bus_pub_send(pub, "flow", buf, hl + blen[k])) == -EAGAIN) usleep(500);
                if (rc < 0) {
                    fprintf(stderr, "flowgen: send failed: %s\n", strerror(-rc));
                    return 1;
                }
                sent += (long long)bcount[k];
                pace(rate, t0, sent);
            }
        }
        for (size_t k = 0; k < nb; k++) free(body[k]);
        free(body);
        free(blen);
        free(bcount);
        first_ms = -2; /* done: skip the phases below */
    }
    /* phase 0: interims alone (--interims-first); phase 1: the records */
    for (int phase = first_ms >= 0 ? 0 : first_ms == -2 ? 2 : 1; phase < 2; phase++) {
        long long made = 0;
        while (made < records) {
            size_t n = 0;
            while (n < (size_t)batch && made < records) {
                int interim = interim_every && made % interim_every == 0;
                int64_t first = first0 + made * step;
                if (phase == 0 && !interim) {
                    made++;
                    continue;
                }
                if (phase == 1 && interim && first_ms < 0 && n + 1 < (size_t)batch) {
                    /* the same flow twice: an interim, then its final */
                    fill(&g[n], idbase + (uint64_t)made, first, 0, (int)servers);
                    ptrs[n] = &g[n].pb.msg;
                    n++;
                }
                fill(&g[n], idbase + (uint64_t)made, first, phase == 1, (int)servers);
                ptrs[n] = &g[n].pb.msg;
                n++;
                made++;
            }
            if (!n) break;
            Mirrorscope__FlowBatch b;
            mirrorscope__flow_batch__init(&b);
            b.node = (char *)node;
            b.start_ns = start;
            b.seq = ++seq;
            b.n_records = n;
            b.records = ptrs;
            size_t len = mirrorscope__flow_batch__get_packed_size(&b);
            if (len > cap) buf = xrealloc(buf, cap = len);
            mirrorscope__flow_batch__pack(&b, buf);
            int rc;
            while ((rc = bus_pub_send(pub, "flow", buf, len)) == -EAGAIN) usleep(200);
            if (rc < 0) {
                fprintf(stderr, "flowgen: send failed: %s\n", strerror(-rc));
                return 1;
            }
            sent += (long long)n;
            pace(rate, t0, sent);
        }
        if (phase == 0) {
            struct timespec ts = { first_ms / 1000, (first_ms % 1000) * 1000000L };
            nanosleep(&ts, NULL);
        }
    }
    bus_pub_close(pub, 60000);
    double secs = (double)(timeparse_mono_ns() - t0) / 1e9;
    printf("sent=%lld seconds=%.3f rate=%.0f\n", sent, secs, (double)sent / secs);
    free(buf);
    free(g);
    free(ptrs);
    return 0;
}
