/* arena.c - bump allocation in chained blocks (see arena.h). */
#include "arena.h"

#include "xmalloc.h"

#include <stdint.h>
#include <stdlib.h>

#define ARENA_BLOCK (1u << 20)

typedef struct arena_block {
    struct arena_block *next;
    size_t cap, used;
    _Alignas(16) uint8_t data[];
} arena_block;

struct arena {
    arena_block *head;
    ProtobufCAllocator pb;
};

static void *arena__pb_alloc(void *ctx, size_t size) { return arena_alloc(ctx, size); }
static void arena__pb_free(void *ctx, void *p) { (void)ctx, (void)p; }

arena_t *arena_new(void)
{
    arena_t *a = xcalloc(1, sizeof *a);
    a->pb = (ProtobufCAllocator){ arena__pb_alloc, arena__pb_free, a };
    return a;
}

void *arena_alloc(arena_t *a, size_t size)
{
    size = (size + 15) & ~(size_t)15;
    arena_block *b = a->head;
    if (!b || b->used + size > b->cap) {
        size_t cap = size > ARENA_BLOCK ? size : ARENA_BLOCK;
        b = xmalloc(sizeof *b + cap);
        b->next = a->head;
        b->cap = cap;
        b->used = 0;
        a->head = b;
    }
    void *p = b->data + b->used;
    b->used += size;
    return p;
}

static void arena__release(arena_t *a)
{
    while (a->head) {
        arena_block *next = a->head->next;
        free(a->head);
        a->head = next;
    }
}

void arena_reset(arena_t *a)
{
    if (!a->head) return;
    if (!a->head->next) {
        a->head->used = 0;
        return;
    }
    size_t total = 0;
    for (arena_block *b = a->head; b; b = b->next) total += b->cap;
    arena__release(a);
    a->head = xmalloc(sizeof *a->head + total);
    a->head->next = NULL;
    a->head->cap = total;
    a->head->used = 0;
}

ProtobufCAllocator *arena_protobuf(arena_t *a) { return &a->pb; }

void arena_free(arena_t *a)
{
    if (!a) return;
    arena__release(a);
    free(a);
}
