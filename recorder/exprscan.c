/* exprscan.c - index terms from tcpdump expressions (see exprscan.h).
 *
 * DESIGN: a small recursive-descent parser over libpcap's grammar, where
 * `and` and `or` have equal precedence and associate left to right, `not`
 * binds tightest, and a bare address after `and`/`or` inherits the previous
 * primitive's qualifiers ("host a or b"). Parsed terms become nodes:
 * HOST (address range + direction), PORT (port range + direction + protocol),
 * PROTO, L3 (ip/ip6), NONPLAIN (vlan/mpls/pppoe/arp: never true of an indexed
 * flow) and UNK. Evaluation is Kleene three-valued logic on a flow key.
 */
#include "exprscan.h"

#include "xmalloc.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum tok_type { T_END, T_ID, T_LP, T_RP, T_LB, T_RB, T_AND, T_OR, T_NOT, T_RELOP, T_ARITH };
enum node_type { N_UNK, N_AND, N_OR, N_NOT, N_HOST, N_PORT, N_PROTO, N_L3, N_NONPLAIN, N_VLAN };
enum dir { D_ANY, D_SRC, D_DST, D_BOTH };

#define ES_MAX_TOKENS 512
#define ES_MAX_NODES 512
#define ES_TOKLEN 64

typedef struct es_tok {
    int type;
    char s[ES_TOKLEN];
} es_tok;

typedef struct es_node {
    int type;
    int dir;
    int fam;   /* 0 any, 4, 6 */
    int proto; /* -1 any */
    uint8_t lo[16], hi[16];
    uint16_t plo, phi;
    int shift;  /* `vlan` keywords before this term: its offsets are moved by 4 each */
    int has_id; /* N_VLAN: `vlan N` */
    int a, b;
} es_node;

/* Qualifiers remembered for a bare id after and/or ("host a or b"). */
typedef struct es_qual {
    int valid;
    char pq[16], dq[16], tq[16];
} es_qual;

struct exprscan {
    es_node nodes[ES_MAX_NODES];
    int nnodes;
    int root;    /* -1: nothing usable, scan everything */
    int indexed; /* some node is HOST or PORT */
    /* parser state */
    es_tok *toks;
    int ntoks, pos, err;
    int vshift;   /* `vlan` keywords so far */
    int poisoned; /* after mpls/pppoes/geneve: offsets we do not model */
    es_qual last;
};

/* ---- tokens ------------------------------------------------------------- */

static int es__idchar(int c)
{
    return isalnum(c) || c == '.' || c == ':' || c == '/' || c == '-' || c == '_';
}

static int es__tokenize(exprscan_t *e, const char *s)
{
    e->toks = xcalloc(ES_MAX_TOKENS, sizeof *e->toks);
    e->ntoks = 0;
    while (*s) {
        if (isspace((unsigned char)*s)) {
            s++;
            continue;
        }
        if (e->ntoks >= ES_MAX_TOKENS - 1) return -1;
        /* libpcap reads a backslash and everything up to a blank, '!', '('
         * or ')' as one name: in "portrange \22-2&&2-2" that is all of
         * "22-2&&2-2", one range, where we would see two terms. Not worth
         * modelling: such an expression is scanned. */
        if (*s == '\\') return -1;
        es_tok *t = &e->toks[e->ntoks++];
        const char *two[] = { "&&", "||", "!=", "==", "<=", ">=", "<<", ">>" };
        const int twot[] = { T_AND, T_OR, T_RELOP, T_RELOP, T_RELOP, T_RELOP, T_ARITH, T_ARITH };
        int matched = 0;
        for (int i = 0; i < 8; i++) {
            if (strncmp(s, two[i], 2) == 0) {
                t->type = twot[i];
                memcpy(t->s, s, 2);
                s += 2;
                matched = 1;
                break;
            }
        }
        if (matched) continue;
        if (es__idchar((unsigned char)*s) && *s != '-' && *s != '/') {
            size_t n = 0;
            while (es__idchar((unsigned char)*s)) {
                if (n >= ES_TOKLEN - 1) return -1;
                t->s[n++] = *s++;
            }
            t->type = T_ID;
            if (!strcmp(t->s, "and")) t->type = T_AND;
            else if (!strcmp(t->s, "or")) t->type = T_OR;
            else if (!strcmp(t->s, "not")) t->type = T_NOT;
            continue;
        }
        t->s[0] = *s;
        switch (*s++) {
        case '(': t->type = T_LP; break;
        case ')': t->type = T_RP; break;
        case '[': t->type = T_LB; break;
        case ']': t->type = T_RB; break;
        case '!': t->type = T_NOT; break;
        case '=': case '<': case '>': t->type = T_RELOP; break;
        default: t->type = T_ARITH; break; /* + - * / % & | ^ and anything odd */
        }
    }
    e->toks[e->ntoks].type = T_END;
    return 0;
}

static es_tok *es__peek(exprscan_t *e, int ahead)
{
    int i = e->pos + ahead;
    return &e->toks[i < e->ntoks ? i : e->ntoks];
}

static int es__is(exprscan_t *e, int ahead, const char *word)
{
    es_tok *t = es__peek(e, ahead);
    return t->type == T_ID && strcmp(t->s, word) == 0;
}

/* ---- nodes -------------------------------------------------------------- */

static int es__node(exprscan_t *e, int type)
{
    if (e->nnodes >= ES_MAX_NODES) {
        e->err = 1;
        return 0;
    }
    es_node *n = &e->nodes[e->nnodes];
    memset(n, 0, sizeof *n);
    n->type = type;
    n->proto = -1;
    n->shift = e->vshift;
    n->a = n->b = -1;
    return e->nnodes++;
}

static int es__bin(exprscan_t *e, int type, int a, int b)
{
    int n = es__node(e, type);
    e->nodes[n].a = a;
    e->nodes[n].b = b;
    return n;
}

static int es__in_list(const char *w, const char *const *list)
{
    for (; *list; list++)
        if (!strcmp(w, *list)) return 1;
    return 0;
}

static const char *const ES_PROTOS[] = { "ip", "ip6", "tcp", "udp", "sctp", "icmp", "icmp6",
                                         "igmp", "arp", "rarp", "ether", "fddi", "tr", "wlan",
                                         "link", "ppp", "slip", "decnet", "lat", "moprc",
                                         "mopdl", "iso", "stp", "ipx", "netbeui", "atalk",
                                         "aarp", "esp", "ah", "vrrp", "carp", "pim", "igrp",
                                         "radio", "isis", "clnp", "esis", "es-is", "is-is",
                                         "l1", "l2", "iih", "lsp", "snp", "csnp", "psnp",
                                         NULL };
static const char *const ES_TYPES[] = { "host", "net", "port", "portrange", "proto",
                                        "protochain", "gateway", NULL };

/* A term that is UNKNOWN: consume its tokens up to the next and/or/) at depth 0. */
static int es__skip_term(exprscan_t *e)
{
    int depth = 0;
    for (;;) {
        es_tok *t = es__peek(e, 0);
        if (t->type == T_END) break;
        if (depth == 0 && (t->type == T_AND || t->type == T_OR || t->type == T_RP)) break;
        if (t->type == T_LP || t->type == T_LB) depth++;
        if (t->type == T_RP || t->type == T_RB) depth--;
        e->pos++;
    }
    e->last.valid = 0;
    return es__node(e, N_UNK);
}

/* Does the span from here to the next and/or/) at depth 0 hold a relational
 * operator at depth 0, i.e. is it an arithmetic comparison? */
static int es__is_relational(exprscan_t *e)
{
    int depth = 0;
    for (int i = e->pos; i < e->ntoks; i++) {
        int ty = e->toks[i].type;
        if (depth == 0 && (ty == T_AND || ty == T_OR || ty == T_RP)) return 0;
        if (ty == T_LP || ty == T_LB) depth++;
        if (ty == T_RP || ty == T_RB) depth--;
        if (depth == 0 && ty == T_RELOP) return 1;
    }
    return 0;
}

static int es__parse_addr(const char *s, uint8_t out[16], int *fam)
{
    uint8_t v4[4];
    if (inet_pton(AF_INET, s, v4) == 1) {
        decode_map4(v4, out);
        *fam = 4;
        return 0;
    }
    if (inet_pton(AF_INET6, s, out) == 1) {
        *fam = 6;
        return 0;
    }
    return -1;
}

/* lo/hi from an address and a prefix length (of its own family). */
static void es__prefix(const uint8_t a[16], int fam, int len, uint8_t lo[16], uint8_t hi[16])
{
    int bits = fam == 4 ? 96 + len : len;
    for (int i = 0; i < 16; i++) {
        int keep = bits >= 8 ? 8 : (bits > 0 ? bits : 0);
        uint8_t mask = keep ? (uint8_t)(0xff << (8 - keep)) : 0;
        lo[i] = a[i] & mask;
        hi[i] = (uint8_t)(a[i] | ~mask);
        bits -= 8;
    }
}

static int es__mask_len(const char *s)
{
    uint8_t m[4];
    if (inet_pton(AF_INET, s, m) != 1) return -1;
    uint32_t v = (uint32_t)m[0] << 24 | (uint32_t)m[1] << 16 | (uint32_t)m[2] << 8 | m[3];
    int len = 0;
    while (len < 32 && (v & (0x80000000U >> len))) len++;
    if (len < 32 && (v << len)) return -1; /* not contiguous: leave it to BPF */
    return len;
}

/* A number as libpcap reads it there: base 0 (0x hex, leading 0 octal) for
 * ports, protocols and prefix lengths, but base 10 for each end of a
 * portrange, which libpcap scans with "%d-%d" (its "010-020" is 10 to 20). */
static int es__parse_uint(const char *s, int base, long max, long *out)
{
    char *end;
    if (!isdigit((unsigned char)*s)) return -1;
    long v = strtol(s, &end, base);
    if (*end || v < 0 || v > max) return -1;
    *out = v;
    return 0;
}

/* Build the atom for qualifiers pq/dq/tq and the id token. */
static int es__atom(exprscan_t *e, const char *pq, const char *dq, const char *tq, const char *id)
{
    int dir = D_ANY;
    if (!strcmp(dq, "src")) dir = D_SRC;
    else if (!strcmp(dq, "dst")) dir = D_DST;
    else if (!strcmp(dq, "src and dst") || !strcmp(dq, "dst and src")) dir = D_BOTH;
    else if (*dq && strcmp(dq, "src or dst") && strcmp(dq, "dst or src")) return es__node(e, N_UNK);
    if (!strcmp(tq, "host") || !strcmp(tq, "net")) {
        if (!strcmp(pq, "arp") || !strcmp(pq, "rarp")) return es__node(e, N_NONPLAIN);
        if (*pq && strcmp(pq, "ip") && strcmp(pq, "ip6")) return es__node(e, N_UNK);
        uint8_t a[16];
        int fam, len;
        char buf[ES_TOKLEN];
        snprintf(buf, sizeof buf, "%s", id);
        char *slash = strchr(buf, '/');
        if (slash) *slash = 0;
        if (es__parse_addr(buf, a, &fam) < 0) return es__node(e, N_UNK); /* a name */
        if ((!strcmp(pq, "ip") && fam != 4) || (!strcmp(pq, "ip6") && fam != 6))
            return es__node(e, N_UNK);
        len = fam == 4 ? 32 : 128;
        if (slash) {
            long l;
            if (es__parse_uint(slash + 1, 0, len, &l) < 0) return es__node(e, N_UNK);
            len = (int)l;
        } else if (!strcmp(tq, "net")) {
            if (es__is(e, 0, "mask") && es__peek(e, 1)->type == T_ID) {
                len = es__mask_len(es__peek(e, 1)->s);
                e->pos += 2;
                if (len < 0 || fam != 4) return es__node(e, N_UNK);
            } else if (fam == 4) {
                return es__node(e, N_UNK); /* "net 10.0.0.0" has implied masks: let BPF judge */
            }
        }
        int n = es__node(e, N_HOST);
        es_node *nd = &e->nodes[n];
        nd->dir = dir;
        nd->fam = fam;
        es__prefix(a, fam, len, nd->lo, nd->hi);
        e->indexed = 1;
        return n;
    }
    if (!strcmp(tq, "port") || !strcmp(tq, "portrange")) {
        int proto = -1;
        if (!strcmp(pq, "tcp")) proto = 6;
        else if (!strcmp(pq, "udp")) proto = 17;
        else if (*pq) return es__node(e, N_UNK); /* sctp, ip6 port, ... */
        long lo, hi;
        if (!strcmp(tq, "port")) {
            if (es__parse_uint(id, 0, 65535, &lo) < 0) return es__node(e, N_UNK); /* a service name */
            hi = lo;
        } else {
            char buf[ES_TOKLEN];
            snprintf(buf, sizeof buf, "%s", id);
            char *dash = strchr(buf, '-');
            if (!dash) return es__node(e, N_UNK);
            *dash = 0;
            if (es__parse_uint(buf, 10, 65535, &lo) < 0 || es__parse_uint(dash + 1, 10, 65535, &hi) < 0)
                return es__node(e, N_UNK);
            if (lo > hi) { long t = lo; lo = hi; hi = t; }
        }
        int n = es__node(e, N_PORT);
        es_node *nd = &e->nodes[n];
        nd->dir = dir;
        nd->proto = proto;
        nd->plo = (uint16_t)lo;
        nd->phi = (uint16_t)hi;
        e->indexed = 1;
        return n;
    }
    if (!strcmp(tq, "proto") && !*dq) {
        long p;
        if (es__parse_uint(id, 0, 255, &p) < 0) return es__node(e, N_UNK);
        int fam = !strcmp(pq, "ip") ? 4 : !strcmp(pq, "ip6") ? 6 : 0;
        if (*pq && !fam) return es__node(e, N_UNK);
        int n = es__node(e, N_PROTO);
        e->nodes[n].fam = fam;
        e->nodes[n].proto = (int)p;
        return n;
    }
    return es__node(e, N_UNK);
}

/* A protocol name on its own: "tcp", "ip6", "icmp", "arp". */
static int es__pname(exprscan_t *e, const char *pq)
{
    static const struct { const char *name; int type, fam, proto; } names[] = {
        { "ip", N_L3, 4, -1 },     { "ip6", N_L3, 6, -1 },      { "tcp", N_PROTO, 0, 6 },
        { "udp", N_PROTO, 0, 17 }, { "icmp", N_PROTO, 4, 1 },   { "icmp6", N_PROTO, 6, 58 },
        { "igmp", N_PROTO, 4, 2 }, { "sctp", N_NONPLAIN, 0, -1 }, { "arp", N_NONPLAIN, 0, -1 },
        { "rarp", N_NONPLAIN, 0, -1 },
    };
    for (unsigned i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (strcmp(pq, names[i].name)) continue;
        int n = es__node(e, names[i].type);
        e->nodes[n].fam = names[i].fam;
        e->nodes[n].proto = names[i].proto;
        return n;
    }
    return es__node(e, N_UNK);
}

static int es__expr(exprscan_t *e);

static int es__primitive(exprscan_t *e)
{
    es_tok *t = es__peek(e, 0);
    if (t->type != T_ID) {
        e->err = 1;
        return 0;
    }
    /* `vlan` moves the offsets of every later term by one tag (libpcap reads
     * lexically, not by grouping): terms remember how many came before. */
    if (!strcmp(t->s, "vlan")) {
        e->pos++;
        int has_id = 0;
        if (es__peek(e, 0)->type == T_ID && isdigit((unsigned char)es__peek(e, 0)->s[0])) {
            e->pos++;
            has_id = 1;
        }
        int n = es__node(e, e->poisoned ? N_UNK : N_VLAN);
        e->nodes[n].has_id = has_id;
        e->vshift++;
        e->last.valid = 0;
        return n;
    }
    /* These shift offsets in ways we do not model: everything after is UNKNOWN. */
    if (!strcmp(t->s, "mpls") || !strcmp(t->s, "pppoes") || !strcmp(t->s, "geneve")) {
        e->pos++;
        if (es__peek(e, 0)->type == T_ID && isdigit((unsigned char)es__peek(e, 0)->s[0])) e->pos++;
        e->poisoned = 1;
        e->last.valid = 0;
        return es__node(e, N_UNK);
    }
    if (!strcmp(t->s, "pppoed")) {
        e->pos++;
        e->last.valid = 0;
        return es__node(e, e->poisoned ? N_UNK : N_NONPLAIN);
    }
    char pq[16] = "", dq[16] = "", tq[16] = "";
    if (es__in_list(t->s, ES_PROTOS)) {
        snprintf(pq, sizeof pq, "%.15s", t->s);
        e->pos++;
    }
    if (es__is(e, 0, "src") || es__is(e, 0, "dst")) {
        snprintf(dq, sizeof dq, "%.3s", es__peek(e, 0)->s);
        e->pos++;
        es_tok *c = es__peek(e, 0);
        if ((c->type == T_AND || c->type == T_OR) && (es__is(e, 1, "src") || es__is(e, 1, "dst"))) {
            char both[16];
            snprintf(both, sizeof both, "%.3s %s %.3s", dq, c->type == T_AND ? "and" : "or",
                     es__peek(e, 1)->s);
            memcpy(dq, both, sizeof dq);
            e->pos += 2;
        }
    }
    if (es__peek(e, 0)->type == T_ID && es__in_list(es__peek(e, 0)->s, ES_TYPES)) {
        snprintf(tq, sizeof tq, "%.15s", es__peek(e, 0)->s);
        e->pos++;
    }
    if (*pq && !*dq && !*tq) {
        /* "tcp", or "ether broadcast", "ip multicast", ... */
        es_tok *n = es__peek(e, 0);
        if (n->type == T_ID && (!strcmp(n->s, "broadcast") || !strcmp(n->s, "multicast"))) {
            e->pos++;
            e->last.valid = 0;
            return es__node(e, N_UNK);
        }
        e->last.valid = 0;
        return e->poisoned ? es__node(e, N_UNK) : es__pname(e, pq);
    }
    if (!*pq && !*dq && !*tq) {
        /* less/greater/broadcast/... and bare ids */
        if (!strcmp(t->s, "less") || !strcmp(t->s, "greater") || !strcmp(t->s, "ifname") ||
            !strcmp(t->s, "on") || !strcmp(t->s, "rnr") || !strcmp(t->s, "rulenum") ||
            !strcmp(t->s, "reason") || !strcmp(t->s, "rset") || !strcmp(t->s, "ruleset") ||
            !strcmp(t->s, "srnr") || !strcmp(t->s, "subrulenum") || !strcmp(t->s, "action")) {
            e->pos++;
            if (es__peek(e, 0)->type == T_ID) e->pos++;
            e->last.valid = 0;
            return es__node(e, N_UNK);
        }
        if (!strcmp(t->s, "broadcast") || !strcmp(t->s, "multicast") ||
            !strcmp(t->s, "inbound") || !strcmp(t->s, "outbound")) {
            e->pos++;
            e->last.valid = 0;
            return es__node(e, N_UNK);
        }
        /* A bare id: only after and/or, with the previous primitive's qualifiers. */
        if (!e->last.valid) {
            e->err = 1;
            return 0;
        }
        e->pos++;
        int n = es__atom(e, e->last.pq, e->last.dq, e->last.tq, t->s);
        if (e->poisoned) e->nodes[n].type = N_UNK;
        return n;
    }
    if (!*tq) snprintf(tq, sizeof tq, "host");
    es_tok *id = es__peek(e, 0);
    if (id->type != T_ID) {
        e->err = 1; /* e.g. "host (a or b)": not followed here */
        return 0;
    }
    e->pos++;
    int n = es__atom(e, pq, dq, tq, id->s);
    if (e->poisoned) e->nodes[n].type = N_UNK;
    e->last.valid = strcmp(tq, "proto") && strcmp(tq, "protochain") && strcmp(tq, "gateway");
    memcpy(e->last.pq, pq, sizeof pq);
    memcpy(e->last.dq, dq, sizeof dq);
    memcpy(e->last.tq, tq, sizeof tq);
    return n;
}

static int es__unary(exprscan_t *e)
{
    es_tok *t = es__peek(e, 0);
    if (t->type == T_NOT) {
        e->pos++;
        int a = es__unary(e);
        return es__bin(e, N_NOT, a, -1);
    }
    if (es__is_relational(e)) return es__skip_term(e);
    if (t->type == T_LP) {
        e->pos++;
        int a = es__expr(e);
        if (es__peek(e, 0)->type != T_RP) {
            e->err = 1;
            return 0;
        }
        e->pos++;
        e->last.valid = 0;
        return a;
    }
    return es__primitive(e);
}

static int es__expr(exprscan_t *e)
{
    int left = es__unary(e);
    while (!e->err) {
        int ty = es__peek(e, 0)->type;
        if (ty != T_AND && ty != T_OR) break;
        e->pos++;
        int right = es__unary(e);
        left = es__bin(e, ty == T_AND ? N_AND : N_OR, left, right);
    }
    return left;
}

exprscan_t *exprscan_new(const char *expr)
{
    exprscan_t *e = xcalloc(1, sizeof *e);
    e->root = -1;
    if (!expr || !*expr) goto done;
    if (es__tokenize(e, expr) < 0) goto done;
    int root = es__expr(e);
    if (e->err || es__peek(e, 0)->type != T_END) {
        e->indexed = 0;
        goto done;
    }
    e->root = root;
done:
    free(e->toks);
    e->toks = NULL;
    if (e->root < 0) e->indexed = 0;
    return e;
}

void exprscan_free(exprscan_t *e) { free(e); }

int exprscan_uses_index(const exprscan_t *e) { return e->indexed; }

int exprscan_parsed(const exprscan_t *e) { return e->root >= 0; }

/* ---- evaluation --------------------------------------------------------- */

static int es__in(const uint8_t a[16], const uint8_t lo[16], const uint8_t hi[16])
{
    return memcmp(a, lo, 16) >= 0 && memcmp(a, hi, 16) <= 0;
}

static int es__dir(int dir, int s, int d)
{
    switch (dir) {
    case D_SRC: return s;
    case D_DST: return d;
    case D_BOTH: return s && d;
    default: return s || d;
    }
}

static int es__eval(const exprscan_t *e, int i, const flowkey_t *k)
{
    const es_node *n = &e->nodes[i];
    switch (n->type) {
    case N_AND: {
        int a = es__eval(e, n->a, k);
        if (a == ES_FALSE) return ES_FALSE;
        int b = es__eval(e, n->b, k);
        if (b == ES_FALSE) return ES_FALSE;
        return a == ES_TRUE && b == ES_TRUE ? ES_TRUE : ES_UNKNOWN;
    }
    case N_OR: {
        int a = es__eval(e, n->a, k);
        if (a == ES_TRUE) return ES_TRUE;
        int b = es__eval(e, n->b, k);
        if (b == ES_TRUE) return ES_TRUE;
        return a == ES_FALSE && b == ES_FALSE ? ES_FALSE : ES_UNKNOWN;
    }
    case N_NOT: {
        int a = es__eval(e, n->a, k);
        return a == ES_UNKNOWN ? ES_UNKNOWN : !a;
    }
    case N_UNK: return ES_UNKNOWN;
    default: break;
    }
    if (k->kind == FK_ODD) return ES_UNKNOWN; /* headers we do not model */
    /* Where the term reads relative to the packet's tags: at a tag (fewer
     * `vlan`s than tags) it sees ethertype 0x8100/0x88a8, not IP; past the
     * IP header's start (more `vlan`s) it reads bytes we do not judge. */
    if (n->type == N_VLAN) {
        if (n->shift < k->vlans) return n->has_id ? ES_UNKNOWN : ES_TRUE;
        return n->shift == k->vlans ? ES_FALSE : ES_UNKNOWN;
    }
    if (n->shift < k->vlans) return ES_FALSE;
    if (n->shift > k->vlans) return ES_UNKNOWN;
    switch (n->type) {
    case N_HOST:
        if (k->kind != n->fam) return ES_FALSE;
        return es__dir(n->dir, es__in(k->src, n->lo, n->hi), es__in(k->dst, n->lo, n->hi));
    case N_PORT:
        if (k->proto != 6 && k->proto != 17) return ES_FALSE;
        if (k->frag_later) return ES_FALSE; /* libpcap matches ports at offset 0 only */
        if (n->proto >= 0 && k->proto != n->proto) return ES_FALSE;
        return es__dir(n->dir, k->sport >= n->plo && k->sport <= n->phi,
                       k->dport >= n->plo && k->dport <= n->phi);
    case N_PROTO:
        if (n->fam && k->kind != n->fam) return ES_FALSE;
        return k->proto == n->proto;
    case N_L3: return k->kind == n->fam;
    case N_NONPLAIN: return ES_FALSE;
    }
    return ES_UNKNOWN;
}

int exprscan_eval(const exprscan_t *e, const flowkey_t *k)
{
    return e->root < 0 ? ES_UNKNOWN : es__eval(e, e->root, k);
}

/* ---- candidates from the lookup tables ---------------------------------- */

typedef struct es_set {
    uint32_t *v;
    long n; /* -1 = all */
} es_set;

static int es__cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

static long es__uniq(uint32_t *v, long n)
{
    if (n <= 1) return n;
    qsort(v, (size_t)n, sizeof *v, es__cmp_u32);
    long o = 1;
    for (long i = 1; i < n; i++)
        if (v[i] != v[o - 1]) v[o++] = v[i];
    return o;
}

/* The lookups read a mapped index through its chunk checksums, entry by
 * entry (segidx_check: a chunk is verified once, the first time any of it
 * is read), so a lookup verifies the few chunks its binary searches touch
 * rather than the whole table. A chunk that fails sets *bad; the lookups
 * then answer "all" and exprscan_candidates() says so. */
typedef struct es_ix {
    const segidx_t *ix;
    int bad;
} es_ix;

static int es__ok(es_ix *x, const void *p, size_t len)
{
    if (x->bad || segidx_check(x->ix, p, len) < 0) x->bad = 1;
    return !x->bad;
}

/* First host entry >= addr (upper = 0) or > addr (upper = 1). */
static size_t es__host_bound(es_ix *x, const uint8_t addr[16], int upper)
{
    const segidx_t *ix = x->ix;
    size_t a = 0, b = ix->hdr->nhosts;
    while (a < b) {
        size_t m = (a + b) / 2;
        if (!es__ok(x, &ix->hosts[m], sizeof ix->hosts[m])) return 0;
        int c = memcmp(ix->hosts[m].addr, addr, 16);
        if (c < 0 || (upper && c == 0)) a = m + 1;
        else b = m;
    }
    return a;
}

static size_t es__port_bound(es_ix *x, uint16_t port, int upper)
{
    const segidx_t *ix = x->ix;
    size_t a = 0, b = ix->hdr->nports;
    while (a < b) {
        size_t m = (a + b) / 2;
        if (!es__ok(x, &ix->ports[m], sizeof ix->ports[m])) return 0;
        if (ix->ports[m].port < port || (upper && ix->ports[m].port == port)) a = m + 1;
        else b = m;
    }
    return a;
}

static es_set es__hosts(es_ix *x, const uint8_t lo[16], const uint8_t hi[16])
{
    const segidx_t *ix = x->ix;
    size_t a = es__host_bound(x, lo, 0), end = es__host_bound(x, hi, 1);
    if (end < a || !es__ok(x, &ix->hosts[a], (end - a) * sizeof *ix->hosts)) return (es_set){ NULL, -1 };
    es_set s = { xmalloc((end - a + 1) * sizeof(uint32_t)), 0 };
    for (size_t i = a; i < end; i++) s.v[s.n++] = ix->hosts[i].flow;
    s.n = es__uniq(s.v, s.n);
    return s;
}

static es_set es__ports(es_ix *x, uint16_t lo, uint16_t hi)
{
    const segidx_t *ix = x->ix;
    size_t a = es__port_bound(x, lo, 0), end = es__port_bound(x, hi, 1);
    if (end < a || !es__ok(x, &ix->ports[a], (end - a) * sizeof *ix->ports)) return (es_set){ NULL, -1 };
    es_set s = { xmalloc((end - a + 1) * sizeof(uint32_t)), 0 };
    for (size_t i = a; i < end; i++) s.v[s.n++] = ix->ports[i].flow;
    s.n = es__uniq(s.v, s.n);
    return s;
}

/* How many lookup entries a node would gather (SIZE_MAX: no lookup). Two
 * binary searches per term; lets AND read only its most selective side. */
static size_t es__estimate(const exprscan_t *e, int i, es_ix *x)
{
    const es_node *n = &e->nodes[i];
    if (n->shift) return SIZE_MAX; /* no lookup after `vlan`: see es__cand */
    switch (n->type) {
    case N_HOST: return es__host_bound(x, n->hi, 1) - es__host_bound(x, n->lo, 0);
    case N_PORT: return es__port_bound(x, n->phi, 1) - es__port_bound(x, n->plo, 0);
    case N_AND: {
        size_t a = es__estimate(e, n->a, x), b = es__estimate(e, n->b, x);
        return a < b ? a : b;
    }
    case N_OR: {
        size_t a = es__estimate(e, n->a, x), b = es__estimate(e, n->b, x);
        return a == SIZE_MAX || b == SIZE_MAX ? SIZE_MAX : a + b;
    }
    default: return SIZE_MAX;
    }
}

static es_set es__cand(const exprscan_t *e, int i, es_ix *x)
{
    const es_node *n = &e->nodes[i];
    es_set all = { NULL, -1 };
    /* A term after `vlan` reads 4 bytes further on per tag: in a flow with
     * fewer tags it sees other bytes (the IP length as ethertype, ports as
     * an address) and may match where no address or port of the flow does
     * (es__eval: UNKNOWN). Its lookup would miss such flows: judge them all. */
    if (n->shift) return all;
    switch (n->type) {
    case N_HOST: return es__hosts(x, n->lo, n->hi);
    case N_PORT: return es__ports(x, n->plo, n->phi);
    case N_AND: {
        /* Only the more selective side: every candidate is judged against
         * the whole expression (exprscan_eval) afterwards anyway. */
        size_t ea = es__estimate(e, n->a, x), eb = es__estimate(e, n->b, x);
        if (ea == SIZE_MAX && eb == SIZE_MAX) return all;
        return es__cand(e, ea <= eb ? n->a : n->b, x);
    }
    case N_OR: {
        es_set a = es__cand(e, n->a, x);
        if (a.n < 0) return a;
        es_set b = es__cand(e, n->b, x);
        if (b.n < 0) {
            free(a.v);
            return b;
        }
        a.v = xrealloc(a.v, (size_t)(a.n + b.n + 1) * sizeof(uint32_t));
        memcpy(a.v + a.n, b.v, (size_t)b.n * sizeof(uint32_t));
        a.n = es__uniq(a.v, a.n + b.n);
        free(b.v);
        return a;
    }
    default: return all;
    }
}

long exprscan_candidates(const exprscan_t *e, const segidx_t *ix, uint32_t **out)
{
    *out = NULL;
    if (e->root < 0 || !e->indexed) return -1;
    es_ix x = { ix, 0 };
    es_set s = es__cand(e, e->root, &x);
    if (x.bad) {
        free(s.v);
        return -2;
    }
    *out = s.v;
    return s.n;
}

/* Mirrors es__cand: a set is empty only where the lookups' would be. AND
 * takes one side's set there, the more selective; an empty side is the most
 * selective, so either side being empty empties the AND. */
static int es__may(const exprscan_t *e, int i, const exprscan_probe *p)
{
    const es_node *n = &e->nodes[i];
    if (n->shift) return 1;
    switch (n->type) {
    case N_HOST: return p->hosts(p->ctx, n->lo, n->hi) != 0;
    case N_PORT: return p->ports(p->ctx, n->plo, n->phi) != 0;
    case N_AND: return es__may(e, n->a, p) && es__may(e, n->b, p);
    case N_OR: return es__may(e, n->a, p) || es__may(e, n->b, p);
    default: return 1;
    }
}

int exprscan_may_have_candidates(const exprscan_t *e, const exprscan_probe *p)
{
    if (e->root < 0 || !e->indexed) return 1;
    return es__may(e, e->root, p);
}

void exprscan_describe(const exprscan_t *e, char *buf, unsigned buflen)
{
    static const char *names[] = { "UNK", "AND", "OR", "NOT", "HOST", "PORT", "PROTO", "L3", "NONPLAIN", "VLAN" };
    unsigned used = 0;
    buf[0] = 0;
    if (e->root < 0) {
        snprintf(buf, buflen, "scan");
        return;
    }
    /* Prefix notation by explicit stack, deep trees are bounded by ES_MAX_NODES. */
    int stack[ES_MAX_NODES], sp = 0;
    stack[sp++] = e->root;
    while (sp && used + 16 < buflen) {
        int i = stack[--sp];
        const es_node *n = &e->nodes[i];
        used += (unsigned)snprintf(buf + used, buflen - used, "%s%s", used ? " " : "", names[n->type]);
        if (n->b >= 0 && sp < ES_MAX_NODES) stack[sp++] = n->b;
        if (n->a >= 0 && sp < ES_MAX_NODES) stack[sp++] = n->a;
    }
}
