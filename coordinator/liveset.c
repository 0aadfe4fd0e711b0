/* liveset.c - an open-addressing set of 64-bit flow hashes (see liveset.h). */
#include "liveset.h"

#include "hash.h"
#include "xmalloc.h"

#include <stdlib.h>
#include <string.h>

struct liveset {
    uint64_t *slot; /* 0 = empty, 1 = deleted, else a hash */
    size_t cap, used, live;
};

liveset_t *liveset_new(void) { return xcalloc(1, sizeof(liveset_t)); }

void liveset_free(liveset_t *s)
{
    if (!s) return;
    free(s->slot);
    free(s);
}

static uint64_t liveset__key(const char *node, uint64_t flow_id)
{
    uint64_t h = hash_mix64(hash_bytes(node, strlen(node), flow_id));
    return h < 2 ? h + 2 : h; /* 0 and 1 mark empty and deleted slots */
}

static void liveset__add(liveset_t *s, uint64_t k)
{
    if ((s->used + 1) * 2 > s->cap) { /* grow (or rehash away the deleted) */
        uint64_t *old = s->slot;
        size_t oldcap = s->cap;
        s->cap = s->live * 4 > 1024 ? s->live * 4 : 1024;
        size_t c = 1;
        while (c < s->cap) c <<= 1;
        s->cap = c;
        s->slot = xcalloc(s->cap, sizeof *s->slot);
        s->used = s->live = 0;
        for (size_t i = 0; i < oldcap; i++)
            if (old[i] > 1) liveset__add(s, old[i]);
        free(old);
    }
    size_t j = k & (s->cap - 1);
    while (s->slot[j] > 1 && s->slot[j] != k) j = (j + 1) & (s->cap - 1);
    if (s->slot[j] == k) return;
    if (s->slot[j] == 0) s->used++;
    s->slot[j] = k;
    s->live++;
}

/* Remove k; 1 when it was there. */
static int liveset__take(liveset_t *s, uint64_t k)
{
    if (!s->cap) return 0;
    size_t j = k & (s->cap - 1);
    while (s->slot[j]) {
        if (s->slot[j] == k) {
            s->slot[j] = 1;
            s->live--;
            return 1;
        }
        j = (j + 1) & (s->cap - 1);
    }
    return 0;
}


void liveset_add(liveset_t *s, const char *node, uint64_t flow_id)
{
    liveset__add(s, liveset__key(node, flow_id));
}

int liveset_take(liveset_t *s, const char *node, uint64_t flow_id)
{
    return liveset__take(s, liveset__key(node, flow_id));
}

int liveset_has(const liveset_t *s, const char *node, uint64_t flow_id)
{
    if (!s->cap) return 0;
    uint64_t k = liveset__key(node, flow_id);
    size_t j = k & (s->cap - 1);
    while (s->slot[j]) {
        if (s->slot[j] == k) return 1;
        j = (j + 1) & (s->cap - 1);
    }
    return 0;
}
