/* segindex.h - the index written beside each pcap segment.
 *
 * One file per segment ("seg-N.idx" beside "seg-N.pcap"), little-endian,
 * read with mmap. Sections (all arrays, 8-byte aligned):
 *   ts[npkts]     int64 timestamp of packet i (i = arrival ordinal)
 *   off[npkts]    uint32 file offset of packet i's pcap record
 *   flows[nflows] segidx_flow: directional key, first/last time, packets,
 *                 bytes, and where its posting list starts in posts[];
 *                 the odd flows (flowkey.h) come first
 *   posts[npkts]  packet ordinals grouped by flow, ascending within a flow
 *   hosts[nhosts] (address, flow) sorted: host and net lookups
 *   ports[nports] (port, flow) sorted: port and portrange lookups
 *   blocks[]      min/max timestamp per SEGIDX_BLOCK packets: the sparse
 *                 time index that lets a scan skip blocks outside the range
 *   crcs[]        CRC-32C of each SEGIDX_CHUNK bytes of the sections
 * Version 2 added the checksums: a flipped bit in a time, a flow key or a
 * count would otherwise give a wrong answer that looks right. The header has
 * its own CRC and one of the chunk table; segidx_open() checks both. A
 * search checks each chunk the first time it reads from it (segidx_check),
 * so a selective search verifies the few chunks it touches, not the file.
 * Version 3 checks 4 KiB chunks instead of version 2's 64 KiB: a lookup's
 * binary search reads one entry in each of a dozen places, and verified a
 * dozen 64 KiB chunks to do it (~0.2 ms an index); both are read. Version
 * 1 files (no checksums) are not opened: the store rebuilds them.
 * The same layout is built in memory for the open segment and for segments
 * that were never sealed (crash, or still being written by a daemon), so the
 * search engine has one code path.
 */
#ifndef MSCOPE_SEGINDEX_H
#define MSCOPE_SEGINDEX_H

#include "flowkey.h"

#include <stddef.h>
#include <stdint.h>

#define SEGIDX_BLOCK 1024
#define SEGIDX_CHUNK_SHIFT 12
#define SEGIDX_CHUNK (1u << SEGIDX_CHUNK_SHIFT) /* one CRC per page (version 2: 64 KiB) */
#define SEGIDX_F_TS_SORTED 0x1 /* ts[] is non-decreasing: ordinal order is time order */

typedef struct segidx_hdr {
    char magic[8];
    uint32_t version, flags;
    uint64_t seq;        /* segment number */
    uint64_t pcap_bytes; /* bytes of the pcap file this index covers */
    int64_t min_ts, max_ts;
    uint64_t npkts, nflows, nhosts, nports, nblocks;
    uint64_t off_ts, off_off, off_flows, off_posts, off_hosts, off_ports, off_blocks;
    uint64_t off_crcs;   /* the chunk table: sections from sizeof(hdr) to here, chunked */
    uint64_t total_size;
    uint32_t crcs_crc;   /* CRC-32C of the chunk table */
    uint32_t hdr_crc;    /* CRC-32C of this header with hdr_crc = 0 */
} segidx_hdr;

typedef struct segidx_flow {
    flowkey_t key;
    int64_t first_ns, last_ns;
    uint64_t bytes; /* sum of original lengths */
    uint32_t packets;
    uint32_t post_start;
} segidx_flow;

typedef struct segidx_host { uint8_t addr[16]; uint32_t flow; } segidx_host;
typedef struct segidx_port { uint16_t port, pad; uint32_t flow; } segidx_port;
typedef struct segidx_block { int64_t min_ts, max_ts; } segidx_block;

/* A read-only view of an index (mapped file or memory). Fields are public:
 * the search engine walks these arrays on its hot path. */
typedef struct segidx {
    const segidx_hdr *hdr;
    const int64_t *ts;
    const uint32_t *off;
    const segidx_flow *flows;
    const uint32_t *posts;
    const segidx_host *hosts;
    const segidx_port *ports;
    const segidx_block *blocks;
    void *base;
    size_t size;
    int mapped;
    /* Which chunks passed their CRC (one bit each; all set for an index
     * built in memory), and what failed first. Behind a pointer so that a
     * reader holding a const view can still record what it checked. */
    struct segidx_chk {
        uint64_t *ok;
        uint64_t nchunks;
        unsigned shift; /* log2 of the chunk size */
        const uint32_t *crcs;
        char damage[160];
    } *chk;
} segidx_t;

int segidx__check_slow(const segidx_t *ix, size_t a, size_t b);

/* Before reading len bytes at p (inside ix's sections): 0 when every chunk
 * they lie in matches its checksum (each chunk is computed once per view),
 * -1 when one does not (ix->chk->damage says which). Cheap when checked. */
static inline int segidx_check(const segidx_t *ix, const void *p, size_t len)
{
    if (!ix->chk) return 0; /* built in memory */
    size_t a = (size_t)((const char *)p - (const char *)ix->base);
    if (a >= sizeof(segidx_hdr) && len) {
        uint64_t c = (a - sizeof(segidx_hdr)) >> ix->chk->shift;
        if (c == (a + len - 1 - sizeof(segidx_hdr)) >> ix->chk->shift && c < ix->chk->nchunks &&
            (ix->chk->ok[c >> 6] >> (c & 63) & 1))
            return 0;
    }
    return segidx__check_slow(ix, a, a + len);
}

/* 1 when flow f's posting list lies inside posts[] (a corrupt file cannot
 * steer reads out of bounds). */
static inline int segidx_flow_ok(const segidx_t *ix, uint64_t f)
{
    return f < ix->hdr->nflows && ix->flows[f].post_start <= ix->hdr->npkts &&
           ix->flows[f].packets <= ix->hdr->npkts - ix->flows[f].post_start;
}

/* Map and validate an index file: its version, header and chunk table
 * checksums and section bounds (not the chunks: see segidx_check). Returns
 * NULL with err set and errno ENOENT (no file), EPROTO (another version) or
 * EBADMSG (short, torn, or failing its header or chunk table checksum or
 * bounds); callers then rebuild from the pcap. */
segidx_t *segidx_open(const char *path, char *err, size_t errlen);

/* Check every chunk (segidx_check over all sections). Returns 0, or -1 with
 * err naming the first damaged chunk and the sections it holds. */
int segidx_verify(const segidx_t *ix, char *err, size_t errlen);

/* Compute and store the chunk table and header checksums of the index laid
 * out in base[0..size) (whose header's offsets and counts are set). The
 * builder calls it; the fuzz target too, so its inputs get past the check. */
void segidx_checksum(void *base, size_t size);
void segidx_free(segidx_t *ix);

/* --- building ------------------------------------------------------------ */

typedef struct segidx_builder segidx_builder_t;

segidx_builder_t *segidx_builder_new(void);
void segidx_builder_free(segidx_builder_t *b);

/* Start a new segment: forget all packets and flows, keep the memory. */
void segidx_builder_reset(segidx_builder_t *b, uint64_t seq);

/* Record one packet; hash is flowkey_hash(k), computed by the caller (the
 * receive thread, off the writer's critical path; it must be that hash, as
 * the builder recomputes it when its table grows). Amortised O(1);
 * allocates only when a table doubles. */
void segidx_builder_add(segidx_builder_t *b, const flowkey_t *k, uint64_t hash, int64_t ts_ns,
                        uint32_t off, uint32_t origlen);

/* Hint that packets with these key hashes come soon: prefetch the far one's
 * hash slot and the near one's key (its slot having been prefetched before),
 * and, four calls later, the whole key of a flow kept whole. */
void segidx_builder_prefetch(segidx_builder_t *b, uint64_t hash_far, uint64_t hash_near);

/* Forget packets from ordinal n on (their bytes never reached the disk). */
void segidx_builder_truncate(segidx_builder_t *b, uint32_t n);

uint32_t segidx_builder_count(const segidx_builder_t *b);

/* How many of the packets recorded so far start at or before file offset
 * off, and where packet i starts (i < count). Offsets only grow, so the
 * count is a binary search. The store uses them to find the last whole
 * record among the bytes it has written. */
uint32_t segidx_builder_count_upto(const segidx_builder_t *b, uint64_t off);
uint32_t segidx_builder_offset(const segidx_builder_t *b, uint32_t i);

/* Lay the index out in memory. Returns a view that owns its buffer. */
segidx_t *segidx_builder_finish(segidx_builder_t *b, uint64_t pcap_bytes);

/* What a catalog summary of an index needs (catalog_summarize_keys), made
 * as the index is laid out so the tables need not be read back. */
typedef struct segidx_keys {
    uint64_t nhosts, nports; /* entries of the index's host and port tables */
    int odd;                 /* it has odd flows */
    uint8_t (*addrs)[16];    /* its distinct host addresses, ascending (malloc'd) */
    size_t naddrs, cap_addrs;
    uint16_t *ports;         /* its distinct ports, ascending (malloc'd) */
    size_t nports_distinct, cap_ports;
} segidx_keys;

void segidx_keys_free(segidx_keys *keys);

/* Lay the index out straight into the file at path (path.tmp, then
 * rename), a section at a time: beside the builder it takes a few bytes a
 * flow and a packet, not the index's size (segidx_builder_finish then
 * segidx_write give the same bytes). *hdr gets the index's header, and keys
 * (when not NULL) its keys, also when the file could not be written.
 * Returns 0 or -errno. */
int segidx_builder_write(segidx_builder_t *b, uint64_t pcap_bytes, const char *path,
                         segidx_hdr *hdr, segidx_keys *keys);

/* Write a finished view to path atomically (path.tmp then rename).
 * Returns 0 or -errno. */
int segidx_write(const segidx_t *ix, const char *path);

/* Walk the pcap records of a segment (fd, size bytes), decode each packet and
 * add it to b. Stops at the first torn or impossible record, or at zero fill
 * (pcapio_parse_rec); *valid_bytes is
 * where the last whole record ends (the file header counts). Returns 0, or -1
 * when the file header is not ours. */
int segidx_scan_pcap(segidx_builder_t *b, int fd, uint64_t size, uint64_t *valid_bytes);

#endif
