/* pcapio.h - the pcap file format as Mirrorscope writes it: nanosecond
 * resolution, Ethernet link type, native byte order (what libpcap writes too).
 *
 * Reading foreign files goes through pcapread.h (classic pcap of Ethernet
 * frames) or libpcap (pcapng and the rest) in the ingest module; this module
 * only writes our own files and walks our own segments, where a record's
 * file offset matters to the index.
 */
#ifndef MSCOPE_PCAPIO_H
#define MSCOPE_PCAPIO_H

#include <stddef.h>
#include <stdint.h>

#define PCAPIO_MAGIC_NS 0xa1b23c4dU
#define PCAPIO_MAGIC_US 0xa1b2c3d4U
#define PCAPIO_SNAPLEN 262144U
#define PCAPIO_LINKTYPE_ETHERNET 1U
#define PCAPIO_FILE_HDR 24U
#define PCAPIO_REC_HDR 16U

typedef struct pcapio_rec_hdr {
    uint32_t ts_sec, ts_frac, caplen, origlen;
} pcapio_rec_hdr;

/* Fill a 24-byte nanosecond file header. */
void pcapio_file_header(uint8_t out[PCAPIO_FILE_HDR]);

/* Fill a 16-byte record header for a packet at ts_ns. */
void pcapio_rec_header(uint8_t out[PCAPIO_REC_HDR], int64_t ts_ns, uint32_t caplen,
                       uint32_t origlen);

/* Check that buf holds our file header (nanosecond, native order, Ethernet).
 * Returns 0 or -1. */
int pcapio_check_header(const uint8_t *buf, size_t len);

/* Parse the record at off in buf (len bytes). Returns the record's total size
 * (header + data) when whole and plausible, 0 if the buffer ends inside it (a
 * torn tail) or if it is zero fill, -1 if the header is impossible (garbage).
 * Zero fill is a header of 16 zero bytes (no data, time 0): what a file
 * system may show past the last write that reached the disk after a crash.
 * It is never a packet: walkers stop there as at a torn tail, and our
 * writers never write such a header (store_append). */
long pcapio_parse_rec(const uint8_t *buf, size_t len, size_t off, int64_t *ts_ns,
                      uint32_t *caplen, uint32_t *origlen);

/* A buffered pcap writer for search output: a file, or stdout for "-". */
typedef struct pcapout pcapout_t;

/* Create path ("-" = stdout) and write the file header. Returns NULL with err
 * set if the file cannot be created. */
pcapout_t *pcapout_open(const char *path, char *err, size_t errlen);

/* Append one packet. Returns 0, or -errno when writing failed (the error
 * sticks: later calls fail too). */
int pcapout_write(pcapout_t *o, int64_t ts_ns, uint32_t caplen, uint32_t origlen,
                  const uint8_t *data);

/* Write out what is buffered (a reader of the file sees every packet so far).
 * Returns 0 or -errno (sticky, as for pcapout_write). */
int pcapout_flush(pcapout_t *o);

/* Bytes written to the file so far, buffered ones included. */
uint64_t pcapout_size(const pcapout_t *o);

/* Flush and close. Returns 0 or -errno of the first failure. Accepts NULL. */
int pcapout_close(pcapout_t *o);

#endif
