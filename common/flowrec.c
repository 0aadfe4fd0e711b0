/* flowrec.c - flow records as JSON lines (see flowrec.h), written by code
 * expanded from the field table (flowrec_fields.h): a field added there is
 * printed with no change here. The appends are jbuf.h's (no printf: see
 * there why).
 */
#include "flowrec.h"

#include "jbuf.h"

#include <string.h>

/* The recorder's own strings (conn_state, history letters): nothing to escape. */
static void jb_text(jbuf *b, const char *s)
{
    JB_LIT(b, "\"");
    jb_str(b, s);
    JB_LIT(b, "\"");
}

/* node comes from the command line or the host name: escaped like any
 * string, so that odd names never break the JSON. */
static void jb_node(jbuf *b, const char *node)
{
    JB_LIT(b, ",\"node\":");
    jb_bytes(b, node, strlen(node));
}

/* A value by its kind's class (flowrec_fields.h). */
#define JB_VAL_UINT(b, v) jb_u64((b), (uint64_t)(v))
#define JB_VAL_SINT(b, v) jb_i64((b), (int64_t)(v))
#define JB_VAL_IP(b, v) jb_ip((b), (v))
#define JB_VAL_TEXT(b, v) jb_text((b), (v))
#define JB_VAL_BOOL(b, v) JB_BOOL((b), (v))
#define JB_VAL(b, kind, v) FLOWREC_CAT(JB_VAL_, FLOWREC_CLASS_##kind)((b), (v))

/* ,"key":value. A zero number is one literal, key and value: most counters
 * of most records are zero, and a key then a number was two appends. */
#define JB_KV_UINT(b, name, v)                                                                 \
    ((v) ? (JB_KEY((b), name), jb_u64((b), (uint64_t)(v))) : JB_LIT((b), ",\"" name "\":0"))
#define JB_KV_SINT(b, name, v) (JB_KEY((b), name), JB_VAL_SINT((b), (v)))
#define JB_KV_IP(b, name, v) (JB_KEY((b), name), JB_VAL_IP((b), (v)))
#define JB_KV_TEXT(b, name, v) (JB_KEY((b), name), JB_VAL_TEXT((b), (v)))
#define JB_KV_BOOL(b, name, v) (JB_KEY((b), name), JB_VAL_BOOL((b), (v)))
#define JB_KV(b, kind, name, v) FLOWREC_CAT(JB_KV_, FLOWREC_CLASS_##kind)((b), name, (v))

/* "count", then min/mean/max when there are samples. */
static void jb_stat(jbuf *b, const flowrec_stat *s)
{
    if (!s->count) {
        JB_LIT(b, "{\"count\":0}");
        return;
    }
    JB_LIT(b, "{\"count\":");
    jb_u64(b, s->count);
    JB_KEY(b, "min"), jb_i64(b, s->min);
    JB_KEY(b, "mean"), jb_i64(b, s->sum / (int64_t)s->count);
    JB_KEY(b, "max"), jb_i64(b, s->max);
    JB_LIT(b, "}");
}

#define JB_DIR_FIELD(d, kind, name, num) JB_KV(b, kind, #name, d->name);
#define JB_DIR_STAT(d, member, name, sql, num) JB_KEY(b, #name), jb_stat(b, &d->member);

static void jb_dir(jbuf *b, const flowrec_dir *d)
{
    size_t open = b->used;
    FLOWREC_DIR_FIELDS(JB_DIR_FIELD, JB_DIR_STAT, d)
    if (!b->overflow) b->p[open] = '{'; /* was the first key's comma */
    JB_LIT(b, "}");
}

/* The handshake: "complete", then each time whose bits were seen. */
#define JB_HS_FIELD(r, kind, member, pbname, bit, num)                                         \
    if ((bit) && (r->hs_seen & (bit)) == (bit)) JB_KEY(b, #pbname), JB_VAL(b, kind, r->member);
#define JB_HS_DERIVED(r, name, num, bits, x, y)                                                \
    if ((r->hs_seen & (bits)) == (bits)) JB_KEY(b, #name), jb_i64(b, r->x - r->y);

static void jb_handshake(jbuf *b, const flowrec *r)
{
    JB_LIT(b, "{\"complete\":");
    JB_BOOL(b, (r->hs_seen & FLOWREC_HS_COMPLETE) == FLOWREC_HS_COMPLETE);
    FLOWREC_HS_FIELDS(JB_HS_FIELD, JB_HS_DERIVED, r)
    JB_LIT(b, "}");
}

/* The record, expanded from FLOWREC_FIELDS: every value is ,"key":value,
 * and an object's opening brace replaces its first key's comma. */
#define JB_F(r, kind, name, num)                                                               \
    JB_KV(&b, kind, #name, r->name);                                                           \
    if (FLOWREC_CAT(JB_IS_, kind)) jb_node(&b, node);
#define JB_IS_ID 1 /* the node follows the flow id */
#define JB_IS_U64 0
#define JB_IS_I64 0
#define JB_IS_U32B 0
#define JB_IS_U32 0
#define JB_IS_U16 0
#define JB_IS_U8 0
#define JB_IS_IP 0
#define JB_IS_TEXT8 0
#define JB_IS_TEXT24 0
#define JB_IS_BOOL 0
#define JB_EP_FIELD(name, kind, leaf, num) JB_KV(&b, kind, #leaf, r->name##_##leaf);
#define JB_E(r, name, num)                                                                     \
    JB_KEY(&b, #name);                                                                         \
    open = b.used;                                                                             \
    FLOWREC_EP_FIELDS(JB_EP_FIELD, name)                                                       \
    if (!b.overflow) b.p[open] = '{';                                                          \
    JB_LIT(&b, "}");
#define JB_D(r, name, num) JB_KEY(&b, #name), jb_dir(&b, &r->name);
#define JB_H(r, name, num)                                                                     \
    if (r->proto == 6) JB_KEY(&b, #name), jb_handshake(&b, r);
#define JB_S(r, member, name, sql, num) JB_KEY(&b, #name), jb_stat(&b, &r->member);

int flowrec_json(const flowrec *r, const char *node, char *buf, size_t len)
{
    jbuf b = { buf, len, 0, 0 };
    size_t open;
    FLOWREC_FIELDS(JB_F, JB_E, JB_D, JB_H, JB_S, r)
    if (!b.overflow) buf[0] = '{'; /* was the first key's comma */
    JB_LIT(&b, "}");
    return b.overflow ? -1 : (int)b.used;
}
