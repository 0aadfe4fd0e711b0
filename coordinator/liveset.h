/* liveset.h - the flows that have an interim row in flows_live, as 64-bit
 * hashes of (node, flow_id): a final record's key is sent for deletion from
 * flows_live only when its flow is here, so the common short flow costs
 * nothing extra. A false positive only deletes nothing. Loop thread only.
 */
#ifndef MSCOPE_LIVESET_H
#define MSCOPE_LIVESET_H

#include <stdint.h>

typedef struct liveset liveset_t;

liveset_t *liveset_new(void);
void liveset_free(liveset_t *s); /* accepts NULL */

void liveset_add(liveset_t *s, const char *node, uint64_t flow_id);

/* Remove the flow; 1 when it was there. */
int liveset_take(liveset_t *s, const char *node, uint64_t flow_id);

int liveset_has(const liveset_t *s, const char *node, uint64_t flow_id);

#endif
