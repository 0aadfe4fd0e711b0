/* pcapread.h - classic pcap files of Ethernet frames, read in large blocks.
 *
 * The files tcpdump and Mirrorscope write (magic a1b2c3d4 or a1b23c4d,
 * either byte order, version 2.4, link type 1) are read here, with what
 * libpcap does to them kept exactly: the same packets, times scaled to
 * nanoseconds, a record longer than the file's snapshot length cut to it,
 * the same errors in libpcap's words. Anything else (pcapng, other link
 * types or versions, stdin) is not opened, and the caller reads it with
 * libpcap. Why: libpcap reads a file with two fread() calls per record and
 * copies each packet out of stdio's buffer, ~10% of an import's CPU; here a
 * packet is handed over where a read() of 4 MiB put it - or, with
 * pcapread_lend(), where a read() into the caller's own buffer put it.
 */
#ifndef MSCOPE_PCAPREAD_H
#define MSCOPE_PCAPREAD_H

#include "pcapio.h"

#include <stddef.h>
#include <stdint.h>

typedef struct pcapread pcapread_t;

/* Open path if it is such a file. Returns the reader; NULL with *errnum 0
 * when it is some other kind of file (or too short to say: libpcap then
 * says what it is), NULL with *errnum an errno value when it cannot be
 * opened or read. */
pcapread_t *pcapread_open(const char *path, int *errnum);

/* The next packet: 1 with its time (ns), lengths and bytes (borrowed until
 * the next call, or in a lent buffer until the caller reuses it), 0 at the
 * end of the file, -1 when the file is damaged or cut short (err says how,
 * as libpcap would), PCAPREAD_NO_ROOM when the next record does not fit in
 * what is left of a lent buffer (lend another, then call again). */
#define PCAPREAD_NO_ROOM 2
int pcapread_next(pcapread_t *r, int64_t *ts_ns, uint32_t *caplen, uint32_t *origlen,
                  const uint8_t **data, char *err, size_t errlen);

/* From now on read the file into buf, the caller's (cap bytes, at least
 * PCAPREAD_LEND_MIN so that any record fits): the packets returned then
 * point into it and stay there, so a caller that queues packets needs no
 * copy of their bytes. What was read and not yet returned moves to its
 * start. records is how many packets the caller wants in it at most: reads
 * are sized by it, so that little is read past them. Lend the first buffer
 * before the first pcapread_next(), and every later one at least as large;
 * once lent, pcapread never writes to an earlier buffer again. */
#define PCAPREAD_LEND_MIN (PCAPIO_REC_HDR + PCAPIO_SNAPLEN)
void pcapread_lend(pcapread_t *r, uint8_t *buf, size_t cap, unsigned records);

/* Accepts NULL. */
void pcapread_close(pcapread_t *r);

#endif
