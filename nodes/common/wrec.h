/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * wrec.h: the write record, the one unit of replicated data.
 *
 * Every captured write travels as a write record from the agent's write log,
 * over the links, through the process server's spool, into the master
 * target's journal, and it is stored on disk in exactly the same bytes at
 * each hop: a fixed 64-byte little-endian header followed by the stored
 * payload (raw or LZ4). A batch on a link is records back to back. The
 * header carries its own checksum (a torn or corrupt header is caught before
 * its lengths are trusted) and the XXH64 of the logical payload taken at
 * capture, which no later hop recomputes: a mismatch anywhere between
 * capture and apply is detected. docs/FORMAT.md gives the layout byte by byte.
 *
 * Nothing here allocates or does I/O: headers are encoded into and decoded
 * from caller buffers, and a cursor walks records inside a caller's buffer
 * without copying. Return codes are RT_OK / RT_ERR; on RT_ERR a static
 * one-line reason is stored in *why when @why is not NULL.
 */
#ifndef WREC_H
#define WREC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WREC_MAGIC     0x52575353u /* bytes 'S' 'S' 'W' 'R' read as little-endian u32 */
#define WREC_VERSION   1u          /* format version in the header */
#define WREC_HDR_SIZE  64u         /* bytes of the fixed header */
#define WREC_MAX_DATA  (4u << 20)  /* largest logical payload of a DATA record */
#define WREC_MAX_LABEL 256u        /* largest label of a MARK record */
/* largest stored payload: the LZ4 worst case for WREC_MAX_DATA (LZ4_COMPRESSBOUND) */
#define WREC_MAX_STORED (WREC_MAX_DATA + WREC_MAX_DATA / 255u + 16u)
#define WREC_MAX_SIZE   (WREC_HDR_SIZE + WREC_MAX_STORED) /* largest whole record */
#define WREC_END        1          /* wrec_cursor_next(): no more records */

/* Header flags. Exactly one kind bit (DATA, ZERO, TRIM, MARK, SYNCREF) is set. */
enum {
    WREC_F_DATA = 1u << 0,     /* write len bytes of payload at offset */
    WREC_F_ZERO = 1u << 1,     /* write len zero bytes at offset; no payload */
    WREC_F_TRIM = 1u << 2,     /* discard [offset, offset+len): reads back as zeros */
    WREC_F_MARK = 1u << 3,     /* a named recovery point (bookmark, checkpoint); no disk change;
                                  payload = label (UTF-8, len bytes), offset 0 */
    WREC_F_LZ4 = 1u << 4,      /* DATA only: stored payload is one LZ4 block of len bytes */
    WREC_F_INTERIOR = 1u << 5, /* the boundary after this record is not a consistent
                                  point (inside a coalesced group); not on MARK */
    WREC_F_APP = 1u << 6,      /* MARK only: application-consistent bookmark */
    WREC_F_SYNCREF = 1u << 7,  /* agent write log only, never on the wire: "send the current
                                  contents of [offset, offset+len)" (a sync pass); no payload,
                                  len <= WREC_MAX_DATA; the shipper turns it into a DATA or
                                  ZERO record with the same seq. Receivers refuse it. */
};
#define WREC_F_KINDS (WREC_F_DATA | WREC_F_ZERO | WREC_F_TRIM | WREC_F_MARK | WREC_F_SYNCREF)
#define WREC_F_KNOWN 0xffu

/* The decoded header. On disk it is WREC_HDR_SIZE bytes (see FORMAT.md). */
typedef struct wrec_hdr {
    uint16_t flags;   /* WREC_F_* */
    uint64_t seq;     /* pair-local sequence number, >= 1 */
    uint64_t offset;  /* disk byte offset (0 for MARK) */
    uint32_t len;     /* logical payload bytes (the range length for ZERO/TRIM) */
    uint32_t stored;  /* payload bytes that follow the header */
    uint64_t time_us; /* capture time, µs since the epoch (UTC) */
    uint64_t hash;    /* XXH64 (seed 0) of the logical payload; of no bytes for ZERO/TRIM */
    uint32_t skip;    /* writes absorbed just before this one by coalescing: the
                         previous record's sequence is seq - skip - 1 */
} wrec_hdr_t;

/*! wrec_hash() : XXH64 with seed 0, the data hash of records. */
uint64_t wrec_hash(const void *data, size_t len);

/*! wrec_hdr_check() : the field rules of FORMAT.md (one kind, known flags,
 *  lengths in bounds, offset + len <= INT64_MAX, seq >= 1, skip < seq).
 *  @return RT_OK, or RT_ERR with the rule in *why. */
int wrec_hdr_check(const wrec_hdr_t *h, const char **why);

/*! wrec_hdr_encode() : write @h as WREC_HDR_SIZE bytes at @out (magic,
 *  version, fields, header checksum). No validation: call wrec_hdr_check()
 *  or wrec_seal() first. */
void wrec_hdr_encode(const wrec_hdr_t *h, void *out);

/*! wrec_hdr_decode() : parse WREC_HDR_SIZE bytes at @in into @h, checking
 *  magic, version, header checksum and the field rules. Payload not touched.
 *  @return RT_OK, or RT_ERR with the reason in *why. */
int wrec_hdr_decode(const void *in, wrec_hdr_t *h, const char **why);

/*! wrec_size() : header + stored bytes of the record @h. */
static inline size_t wrec_size(const wrec_hdr_t *h)
{
    return (size_t)WREC_HDR_SIZE + h->stored;
}

/*! wrec_is_point() : whether the boundary after @h is a crash-consistent
 *  recovery point (false inside a coalesced group). */
static inline bool wrec_is_point(const wrec_hdr_t *h)
{
    return !(h->flags & WREC_F_INTERIOR);
}

/*! wrec_seal() : at capture: set h->stored and h->hash from the logical
 *  @payload (h->len bytes for DATA and MARK; ignored for ZERO/TRIM), clear
 *  WREC_F_LZ4, and check the fields. The caller then encodes the header with
 *  wrec_hdr_encode() and sends or writes the payload beside it (no copy).
 *  @return RT_OK, or RT_ERR with the rule in *why. */
int wrec_seal(wrec_hdr_t *h, const void *payload, const char **why);

/*! wrec_encode() : write the whole record (header + stored payload) to @out.
 *  h->hash is kept as it is (it was taken at capture; verify before
 *  re-encoding). With @lz4 and a DATA record the payload is LZ4-compressed
 *  when that saves at least 1/16 of it, otherwise stored raw; h->flags and
 *  h->stored are updated to what was written. @payload is the logical
 *  payload. *outlen gets the record size.
 *  @return RT_OK, or RT_ERR if the fields are invalid or @cap is too small. */
int wrec_encode(wrec_hdr_t *h, const void *payload, bool lz4, void *out, size_t cap,
                size_t *outlen, const char **why);

/*! wrec_verify() : check the stored payload of @h against its data hash. For
 *  an LZ4 record it is first decompressed into @scratch (@cap >= h->len,
 *  else RT_ERR). *logical (if not NULL) gets the verified logical payload:
 *  @stored itself, @scratch for LZ4, NULL for ZERO/TRIM.
 *  @return RT_OK, or RT_ERR ("data checksum mismatch", "bad LZ4 block", ...). */
int wrec_verify(const wrec_hdr_t *h, const void *stored, void *scratch, size_t cap,
                const void **logical, const char **why);

/* A cursor over records back to back in a caller's buffer (a link payload,
 * a segment read). It never copies and never reads outside [buf, buf+len). */
typedef struct wrec_cursor {
    const uint8_t *buf; /* the records; caller-owned */
    size_t len;         /* bytes in buf */
    size_t pos;         /* offset of the next record */
} wrec_cursor_t;

void wrec_cursor_init(wrec_cursor_t *c, const void *buf, size_t len);

/*! wrec_cursor_next() : decode the next header into @h and point *stored at
 *  its stored payload inside the buffer (the payload is not verified: use
 *  wrec_verify()). @return RT_OK with a record, WREC_END when pos == len,
 *  RT_ERR for a bad header or a record cut short (pos stays at it). */
int wrec_cursor_next(wrec_cursor_t *c, wrec_hdr_t *h, const uint8_t **stored, const char **why);

/*! wrec_kind_name() : "data", "zero", "trim", "mark", "syncref" or "?" (logs). */
const char *wrec_kind_name(uint16_t flags);

#endif /* WREC_H */
