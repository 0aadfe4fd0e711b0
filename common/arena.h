/* arena.h - a bump allocator for memory freed all at once (nginx's pools).
 *
 * Unpacking a flow batch of 500 records is thousands of small allocations,
 * all dropped together right after; with an arena that is one reset per
 * batch instead of a malloc/free each. arena_protobuf() gives protobuf-c an
 * allocator that draws from the arena and frees nothing.
 */
#ifndef MSCOPE_ARENA_H
#define MSCOPE_ARENA_H

#include <protobuf-c/protobuf-c.h>
#include <stddef.h>

typedef struct arena arena_t;

arena_t *arena_new(void);

/* size bytes aligned to 16, valid until the next reset. Never NULL. */
void *arena_alloc(arena_t *a, size_t size);

/* Everything allocated goes. Blocks are kept: when the last round needed
 * more than one, the next starts with one block as big as all of them. */
void arena_reset(arena_t *a);

/* For protobuf-c's unpack: borrowed for the arena's life. */
ProtobufCAllocator *arena_protobuf(arena_t *a);

void arena_free(arena_t *a); /* accepts NULL */

#endif
