/* crc32c.h - CRC-32C (Castagnoli), the checksum of segment index sections.
 *
 * CRC-32C because x86 computes it in one instruction (SSE 4.2) at several
 * GB/s, so verifying an index costs little beside reading it; the same
 * polynomial as iSCSI, ext4 and LevelDB's block checksums, with a table
 * fallback for CPUs without the instruction. */
#ifndef MSCOPE_CRC32C_H
#define MSCOPE_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* CRC-32C of n bytes at p, continuing from crc (0 to start; pass a previous
 * result to chain pieces). crc32c("123456789", 9, 0) == 0xe3069283. */
uint32_t crc32c(const void *p, size_t n, uint32_t crc);

/* The table version whatever the CPU (the unit test compares the two). */
uint32_t crc32c__software(const void *p, size_t n, uint32_t crc);

#endif
