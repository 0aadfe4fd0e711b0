/* monitor.h - monitors: named flow filters whose per-minute series the
 * coordinator keeps (see monseries.h).
 *
 * A monitor is a name, a flow-level filter - server and client address or
 * network, server port, protocol, recorders - and optionally a tcpdump
 * expression for its packets (compiled by libpcap when it is given, so a bad
 * one is refused with libpcap's words). Monitors live in PostgreSQL
 * (`monitors`); the coordinator keeps a live copy on its loop thread, which
 * every final flow record from the bus is matched against. Requests (list,
 * show, create, set, delete, series) come from both APIs as the same
 * protobuf Request, are checked here with the same words for both, and run
 * as database jobs; a change reaches the live copy when its job has
 * committed, so the series count records received after the answer, never
 * before.
 */
#ifndef MSCOPE_MONITOR_H
#define MSCOPE_MONITOR_H

#include "dbpool.h"
#include "mirrorscope.pb-c.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct monitor_set monitor_set_t;

/* Load the monitors (a database job: until it ends no record is counted)
 * and flush their series every second (a timer on loop). pool is borrowed
 * and must outlive the set. Never returns NULL. */
monitor_set_t *monitor_new(uv_loop_t *loop, dbpool_t *pool);

/* A flow record from node, on the loop thread (intake's hook): a final
 * record is added to the series of every monitor it matches. */
void monitor_record(void *set, const char *node, const Mirrorscope__FlowRecord *r);

/* An address or network as monitors take it ("10.0.3.7", "10.0.3.0/24")
 * into its canonical text (ADDR/PREFIX, bits past the prefix cleared; ""
 * for ""). Returns 0, or -1 when it is neither. */
int monitor_net_canon(const char *s, char *canon, size_t len);

/* 1 when req is a monitor request (MonitorRequest or MonitorSeries). */
int monitor_is_request(const Mirrorscope__Request *req);

/* Called on the loop with the answer (status and error set when it failed;
 * err is borrowed for the call, resp is freed after it). */
typedef void (*monitor_done_fn)(void *arg, Mirrorscope__Response *resp, const char *err);

/* Check a monitor request as monitor_submit() does, without running it (no
 * database): the op, the name, a definition's values (a filter compiled by
 * libpcap). Returns 0, or -1 with err set (a bad request). */
int monitor_check(const Mirrorscope__Request *req, char *err, size_t errlen);

/* Check (monitor_check()) and run req (copied), then call done once. */
void monitor_submit(monitor_set_t *m, const Mirrorscope__Request *req, monitor_done_fn done,
                    void *arg);

/* A JSON body (the REST API's create and set) into out, whose strings and
 * nodes (*nodes, to free()) are borrowed from body. Returns 0, or -1 with
 * err set (an unknown field, or a value of the wrong type). */
int monitor_from_json(json_t *body, Mirrorscope__Monitor *out, char ***nodes, char *err,
                      size_t errlen);

/* The HTTP status of a Response status. */
int monitor_http_status(Mirrorscope__Response__Status st);

/* Write what the series hold now (after the loop stopped: runs it until the
 * job ends). */
void monitor_finish(monitor_set_t *m);

/* Close the timer (at stop; the loop must run once more). */
void monitor_close(monitor_set_t *m);

/* Free once the loop has run dry. Accepts NULL. */
void monitor_free(monitor_set_t *m);

#endif
