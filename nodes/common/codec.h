/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * codec.h: batch compression and the checked opening of a WriteBatch payload.
 *
 * A WriteBatch (proto/repl.proto) carries a run of write records (wrec.h)
 * back to back, or one raw LZ4 block of such a run (BATCH_LZ4, raw_len
 * bytes once inflated). The process server compresses the runs it forwards
 * to the master target, and sends them raw when LZ4 does not bring them
 * under CODEC_WORTH_PCT % of their size (already compressed or encrypted
 * data: the CPU would be spent for nothing). This file is the one place
 * where liblz4 enters for batches (STYLE.md: one file per library);
 * wrec.c handles the per-record LZ4 of the formats.
 *
 * codec_batch_open() is what every receiver of a WriteBatch (process
 * server, master target) runs before it trusts a byte: inflate with strict
 * bounds (the block must inflate to exactly raw_len bytes, never more than
 * CODEC_RAW_MAX), then check every record (header checksum and field rules,
 * data hash taken at capture, LZ4 records inflated), the sequence continuity
 * inside the batch, the first/last/count the WriteBatch claims and, given
 * the disk size, that every range fits the disk. A batch that fails is never
 * applied: the receiver answers ACK_BAD_RECORD. tests/fuzz/fuzz_batch.c
 * runs it over arbitrary bytes.
 *
 * Memory: codec_work_t holds the receiver's two scratch buffers (the
 * inflated run, up to CODEC_RAW_MAX; an LZ4 record's logical payload, up
 * to WREC_MAX_DATA), allocated on first need and kept, so a receiver's
 * memory is bounded and allocated once. Nothing here does I/O or logs.
 */
#ifndef CODEC_H
#define CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nodes/common/wrec.h"
#include "rt.h"

#define CODEC_RAW_MAX   RT_MAX_PAYLOAD /* largest record run a batch may inflate to */
#define CODEC_WORTH_PCT 90u            /* compressed must be below this % of raw, else raw */
/* Flow control (WriteAck.credit): a receiver that holds nothing pending for
 * a pair gives it at least this many record bytes of credit (and takes
 * them, past its quota if need be), and a sender never builds a record
 * larger than this (the agent's are at most 1 MiB of data and a header), so
 * a sender waiting for credit gets enough for its next record at the
 * latest once the receiver forwarded everything. */
#define CODEC_CREDIT_MIN ((1u << 20) + 4096u)

/* WriteBatch.flags bits (ss_BatchFlag), repeated here so that callers need
 * not include the generated header; a test checks they agree. */
enum {
    CODEC_BATCH_LZ4 = 1u,       /* payload is one LZ4 block of raw_len bytes */
    CODEC_BATCH_SYNC = 2u,      /* records of an initial sync or a resync */
    CODEC_BATCH_SYNC_DONE = 4u, /* the sync pass ends with this batch */
};
#define CODEC_BATCH_KNOWN 7u

/*! codec_bound() : the most bytes codec_compress() may need for @len bytes
 *  of input (LZ4_compressBound), 0 if @len > CODEC_RAW_MAX. */
size_t codec_bound(size_t len);

/*! codec_worth() : the largest compressed size still worth sending for a
 *  run of @len bytes (strictly below CODEC_WORTH_PCT % of it). */
size_t codec_worth(size_t len);

/*! codec_compress() : compress the @len bytes at @src into one LZ4 block at
 *  @dst (@cap bytes; codec_worth(@len) suffice, the block is never larger).
 *  @return RT_OK with *dstlen set, RT_AGAIN when the result would not be
 *  below codec_worth(@len) (incompressible: send @src raw), or RT_ERR when
 *  @len is 0 or above CODEC_RAW_MAX. */
int codec_compress(const void *src, size_t len, void *dst, size_t cap, size_t *dstlen);

/*! codec_decompress() : inflate the LZ4 block @src (@len bytes) into @dst
 *  (@cap bytes). Strict: the block must be well formed, end exactly at
 *  @len, and inflate to exactly @raw_len bytes (<= @cap, <= CODEC_RAW_MAX).
 *  Never reads or writes outside the given bounds.
 *  @return RT_OK, or RT_ERR with a static reason in *why (may be NULL). */
int codec_decompress(const void *src, size_t len, void *dst, size_t cap, size_t raw_len,
                     const char **why);

/* A receiver's scratch space (zero-initialise; codec_work_free at the end). */
typedef struct codec_work {
    uint8_t *raw;    /* inflated record run, rawcap bytes */
    size_t rawcap;
    uint8_t *lz;     /* WREC_MAX_DATA: an LZ4 record's logical payload while verified */
} codec_work_t;

void codec_work_free(codec_work_t *w); /* free the buffers; the struct can be reused */

/* What a WriteBatch says about its payload (from ss_WriteBatch). */
typedef struct codec_batch {
    uint64_t first_seq; /* seq of the first record */
    uint64_t last_seq;  /* seq of the last record */
    uint32_t count;     /* records */
    uint32_t flags;     /* CODEC_BATCH_* */
    uint32_t raw_len;   /* bytes of the record run (before LZ4) */
} codec_batch_t;

/* The checked record run, pointing into the payload or into w->raw. */
typedef struct codec_run {
    const uint8_t *recs; /* the records back to back */
    size_t len;          /* bytes */
    uint64_t from_seq;   /* first record's seq - skip: the sequence it continues from + 1 */
    uint64_t last_seq;   /* last record's seq */
    uint32_t count;      /* records */
    uint64_t max_time_us;/* latest capture time in the run */
} codec_run_t;

/*! codec_batch_open() : check the WriteBatch payload @payload (@len bytes)
 *  described by @b, inflating it into @w when BATCH_LZ4, as the file
 *  comment says; with @disk_size != 0 every DATA/ZERO/TRIM range must end
 *  inside it. Nothing is written anywhere but @w.
 *  @return RT_OK with @out filled, or RT_ERR with a one-line reason in
 *  @why (@whylen bytes: which record, what is wrong). */
int codec_batch_open(const codec_batch_t *b, const uint8_t *payload, size_t len,
                     uint64_t disk_size, codec_work_t *w, codec_run_t *out, char *why,
                     size_t whylen);

#endif /* CODEC_H */
