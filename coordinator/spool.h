/* spool.h - flow records kept on disk while PostgreSQL is away.
 *
 * When a write to the database fails, the coordinator moves the batch from
 * memory into an append-only spool file (DIR/spool/SEQ-RECORDS.copy, the
 * sealed batch as batch_encode() writes it,
 * fsync'd) and, once the database answers again, writes the files back in
 * order - oldest first, before anything newer - and deletes each only after
 * its transaction committed. Files survive a coordinator restart, so an
 * outage loses nothing that reached the spool; the total is bounded.
 */
#ifndef MSCOPE_SPOOL_H
#define MSCOPE_SPOOL_H

#include "batch.h"

#include <stdint.h>

typedef struct spool spool_t;

/* Open (create) the spool directory and find files left by an earlier run. */
spool_t *spool_open(const char *dir, int64_t max_bytes, char *err, size_t errlen);
void spool_close(spool_t *s);

/* Append a batch as one file. Returns 0, or -1 when the spool is full or the
 * write failed (logged; the caller counts the records as dropped). */
int spool_append(spool_t *s, const batch_t *b);

/* Load the oldest file into out (a sealed batch). Files that are not batches
 * are set aside (*.bad) and skipped. Returns 1, 0 when empty, -1 on a read
 * error. */
int spool_peek(spool_t *s, batch_t *out);

/* Delete the oldest file (after it was written to the database). */
void spool_pop(spool_t *s);

/* The database refuses the oldest file's rows themselves (not a lost
 * connection): rename it *.bad, out of the queue, for an operator. */
void spool_quarantine(spool_t *s);

uint64_t spool_records(const spool_t *s);
uint64_t spool_bytes(const spool_t *s);

#endif
