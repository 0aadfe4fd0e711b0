/* recout.h - the JSON lines of --flows-json, formatted and written by a
 * thread of their own.
 *
 * Why: a flow record's JSON costs ~4 400 instructions (a kilobyte of text);
 * on the analysis thread that was 29% of its instructions on the bench
 * capture, and the analysis thread's packet rate is the recorder's (one
 * thread owns the flow table). The analysis thread copies the record (408
 * bytes) into a queue, as it does for the bus (publish.h), and goes on; the
 * output thread formats and writes in the order the records came. Unlike
 * the bus, nothing is shed: the file is the user's whole record of an
 * import, so a full queue makes the analysis wait (a live recorder whose
 * output cannot keep up then falls behind, and its receive queue drops,
 * counted as before). Output is flushed when the thread has been idle for
 * 50 ms, and at least once a second while records keep coming, so
 * `--flows-json -` streams.
 *
 * Application records (--app-json) are not handed over: an apprec is ~5 KiB
 * (its names and URI are arrays of their largest size), and copying it cost
 * more than formatting its JSON where it is made (bench_app.py: 0.18-0.19 s
 * of analysis CPU with the copy, 0.175-0.18 s without it, when they were
 * made on the analysis thread); they are made and written on the
 * application thread (main.c). */
#ifndef MSCOPE_RECOUT_H
#define MSCOPE_RECOUT_H

#include "flowrec.h"

#include <stdio.h>

typedef struct recout recout_t;

/* out stays the caller's to close after recout_stop; node is read until
 * then. NULL when the thread cannot start. */
recout_t *recout_start(FILE *out, const char *node);

/* From the one producing thread. A full queue waits for room. */
void recout_flow(recout_t *o, const flowrec *r);

/* Everything queued is written and flushed, then the thread ends. Accepts
 * NULL. */
void recout_stop(recout_t *o);

#endif
