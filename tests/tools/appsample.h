/* appsample.h - application records (common/apprec.h) for the round trips
 * of tests/unit/test_apppb.c and `appgen` (tests/integration/test_app_coordinator.py).
 * Header-only: test code.
 *
 * Record k is of kind dns, tls, http in turn; within a record every number
 * has its own value (k and the field's place), so a field read into another
 * shows; flow ids above 2^63 (stored signed), IPv4 addresses for even k and
 * IPv6 for odd. Every other record of a kind has its null-able values absent
 * (unanswered, no ServerHello, no response, no SNI or Host). Names come from
 * a set of `names` (so that the per-minute aggregates group them) made
 * hostile: quotes, backslashes, tabs, newlines, control bytes, bytes that are
 * not UTF-8, multi-byte UTF-8, and each kind's longest text (a 1023-byte
 * name, a 4095-byte URI, 64 ALPN names). Response times spread over
 * microseconds to seconds so that percentiles fall in distinct buckets.
 * What the coordinator checks (coordinator/wire.c) holds: times after
 * `base`, durations positive, HTTP status 100-599, DNS transport 17 or 6.
 */
#ifndef MSCOPE_APPSAMPLE_H
#define MSCOPE_APPSAMPLE_H

#include "apprec.h"
#include "decode.h"

#include <stdio.h>
#include <string.h>

/* Name i of the set, for a kind; hostile bytes included. */
static inline void appsample__name(char *out, size_t cap, unsigned i, const char *what)
{
    static const char *const odd[] = {
        "plain", "q\"uote", "back\\slash", "tab\there", "new\nline", "ctl\x01\x1f\x7f",
        "bad\xff\xfe utf8", "lone\xc3", "caf\xc3\xa9.\xe2\x82\xac", "sp ace%20",
    };
    snprintf(out, cap, "%s%u.%s.example", odd[i % (sizeof odd / sizeof odd[0])], i, what);
}

static inline uint64_t appsample__rnd(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* Record k of a sample of `names` names per kind, time after base. */
static inline void appsample_make(apprec *r, unsigned k, unsigned names, int64_t base)
{
    uint64_t seed = 0x9e3779b97f4a7c15ULL ^ ((uint64_t)k * 0xff51afd7ed558ccdULL);
    for (int i = 0; i < 4; i++) appsample__rnd(&seed);
    memset(r, 0, sizeof *r);
    unsigned kind = 1 + k % 3, nth = k / 3;
    int absent = nth % 2 == 1;
    unsigned name = names ? nth % names : nth;
    r->kind = (uint8_t)kind;
    r->flow_id = (1ULL << 63) + ((uint64_t)k << 8) + 1;
    r->vni = 1000 + k;
    const uint8_t obs[4] = { 192, 0, 2, (uint8_t)(k % 250 + 1) };
    decode_map4(obs, r->observer);
    if (k % 2 == 0) {
        const uint8_t c[4] = { 10, 1, (uint8_t)(k >> 8), (uint8_t)k };
        const uint8_t s[4] = { 172, 16, 0, (uint8_t)(name + 1) };
        decode_map4(c, r->client_ip);
        decode_map4(s, r->server_ip);
    } else {
        r->client_ip[0] = 0x20, r->client_ip[1] = 0x01, r->client_ip[2] = 0x0d, r->client_ip[3] = 0xb8;
        r->client_ip[14] = (uint8_t)(k >> 8), r->client_ip[15] = (uint8_t)k;
        r->server_ip[0] = 0x20, r->server_ip[1] = 0x01, r->server_ip[2] = 0x0d, r->server_ip[3] = 0xb8;
        r->server_ip[4] = 0xff, r->server_ip[15] = (uint8_t)(name + 1);
    }
    r->client_port = (uint16_t)(20000 + k);
    r->ts_ns = base + (int64_t)k * 7777777LL + 11;
    /* 5 us .. ~5 s, log-spread: distinct buckets of the latency histograms */
    int64_t resp = (int64_t)(5000.0 * (double)(1ULL << (appsample__rnd(&seed) % 20))) +
                   (int64_t)(appsample__rnd(&seed) % 997);
    if (kind == APPREC_DNS) {
        apprec_dns *d = &r->u.dns;
        r->server_port = k % 4 == 1 ? 5353 : 53;
        d->transport = k % 5 == 0 ? 6 : 17;
        d->id = (uint16_t)(40000 + k);
        appsample__name(d->qname, sizeof d->qname, name, "dns");
        if (nth == 7) { /* the longest name a record holds */
            memset(d->qname, 'n', sizeof d->qname - 1);
            d->qname[sizeof d->qname - 1] = 0;
        }
        d->qtype = (uint16_t)(1 + k % 255);
        d->answers = absent ? 0 : (uint16_t)(2 + k % 7);
        if (!absent) {
            d->has_response = 1;
            d->rcode = (uint16_t)(nth % 3 == 0 ? 3 : 0); /* NXDOMAIN for some */
            d->response_ns = resp;
        }
    } else if (kind == APPREC_TLS) {
        apprec_tls *t = &r->u.tls;
        r->server_port = 443;
        t->record_version = 0x0301;
        t->client_version = 0x0303;
        if (!absent) {
            t->has_server_hello = 1;
            t->version = nth % 4 == 0 ? 0x0303 : 0x0304;
            t->cipher = (uint16_t)(0x1301 + k % 3);
            t->hello_rtt_ns = resp;
        }
        if (nth % 4 != 3) {
            t->has_sni = 1;
            appsample__name(t->sni, sizeof t->sni, name, "tls");
        }
        unsigned nalpn = nth == 5 ? APPREC_ALPN_MAX : nth % 4;
        for (unsigned i = 0; i < nalpn; i++) {
            char a[32];
            int n = snprintf(a, sizeof a, i % 2 ? "h%u\"x" : "http/1.%u", i);
            apprec_alpn_add(r, a, (size_t)n);
        }
    } else {
        apprec_http *h = &r->u.http;
        r->server_port = (uint16_t)(nth % 2 ? 8080 : 80);
        static const char *const methods[] = { "GET", "POST", "HEAD", "PUT", "M-SEARCH" };
        snprintf(h->method, sizeof h->method, "%s", methods[nth % 5]);
        if (nth % 4 != 3) {
            h->has_host = 1;
            appsample__name(h->host, sizeof h->host, name, "http");
        }
        snprintf(h->uri, sizeof h->uri, "/p%u/%s?q=%u&\"x\"\\\t\xff", name % 3, k % 2 ? "a" : "b", k);
        if (nth == 9) { /* the longest URI a record holds */
            memset(h->uri, 'u', sizeof h->uri - 1);
            h->uri[0] = '/';
            h->uri[sizeof h->uri - 1] = 0;
        }
        h->request_body_bytes = k % 2 ? (1ULL << 40) + k : 0;
        if (!absent) {
            h->has_response = 1;
            static const uint16_t st[] = { 200, 404, 500, 503, 301, 204 };
            h->status = st[(nth / 2) % 6]; /* nth is even here */
            h->response_body_bytes = (1ULL << 33) + k;
            h->response_ns = resp;
        }
    }
    if (k % 11 == 10) r->truncated = 1;
}

#endif
