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
 * packet is handed over where a read() of 4 MiB put it.
 */
#ifndef MSCOPE_PCAPREAD_H
#define MSCOPE_PCAPREAD_H

#include <stddef.h>
#include <stdint.h>

typedef struct pcapread pcapread_t;

/* Open path if it is such a file. Returns the reader; NULL with *errnum 0
 * when it is some other kind of file (or too short to say: libpcap then
 * says what it is), NULL with *errnum an errno value when it cannot be
 * opened or read. */
pcapread_t *pcapread_open(const char *path, int *errnum);

/* The next packet: 1 with its time (ns), lengths and bytes (borrowed until
 * the next call), 0 at the end of the file, -1 when the file is damaged or
 * cut short (err says how, as libpcap would). */
int pcapread_next(pcapread_t *r, int64_t *ts_ns, uint32_t *caplen, uint32_t *origlen,
                  const uint8_t **data, char *err, size_t errlen);

/* Accepts NULL. */
void pcapread_close(pcapread_t *r);

#endif
