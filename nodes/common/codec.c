/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * codec.c: LZ4 for batches, and the checks every receiver of a WriteBatch
 * runs before it trusts a byte (see codec.h).
 *
 * LZ4 block API only (no frame format): the batch header carries the raw
 * length, so the frame's own headers and checksums would be dead weight;
 * integrity comes from the records' data hashes, which are checked after
 * inflation anyway. Compression asks LZ4 for an output no larger than what
 * is still worth sending, so incompressible data costs one failed pass and
 * no copy.
 */
#include "codec.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include <lz4.h>

/* ---- compression ---------------------------------------------------------- */

size_t codec_bound(size_t len)
{
    if (len > CODEC_RAW_MAX)
        return 0;
    return (size_t)LZ4_compressBound((int)len);
}

size_t codec_worth(size_t len)
{
    /* strictly below CODEC_WORTH_PCT % */
    size_t w = (size_t)(((uint64_t)len * CODEC_WORTH_PCT + 99u) / 100u);
    return w ? w - 1 : 0;
}

int codec_compress(const void *src, size_t len, void *dst, size_t cap, size_t *dstlen)
{
    if (len == 0 || len > CODEC_RAW_MAX || !src || !dst)
        return RT_ERR;
    size_t want = codec_worth(len);
    if (cap < want)
        want = cap;
    if (want == 0)
        return RT_AGAIN;
    /* LZ4 gives up (returns 0) as soon as the output would not fit: that is
     * exactly the incompressible case */
    int n = LZ4_compress_default(src, dst, (int)len, (int)want);
    if (n <= 0)
        return RT_AGAIN;
    *dstlen = (size_t)n;
    return RT_OK;
}

int codec_decompress(const void *src, size_t len, void *dst, size_t cap, size_t raw_len,
                     const char **why)
{
    const char *dummy;
    if (!why)
        why = &dummy;
    if (raw_len == 0 || raw_len > CODEC_RAW_MAX || raw_len > cap) {
        *why = "inflated length out of bounds";
        return RT_ERR;
    }
    if (len == 0 || len > (size_t)LZ4_compressBound((int)raw_len)) {
        *why = "compressed length out of bounds";
        return RT_ERR;
    }
    /* decompress_safe never reads past @len nor writes past raw_len, and
     * fails on a malformed block; getting exactly raw_len back means the
     * whole block was consumed (the last sequence ends the input) */
    int n = LZ4_decompress_safe(src, dst, (int)len, (int)raw_len);
    if (n < 0) {
        *why = "malformed LZ4 block";
        return RT_ERR;
    }
    if ((size_t)n != raw_len) {
        *why = "LZ4 block inflates to another length than raw_len";
        return RT_ERR;
    }
    return RT_OK;
}

/* ---- batches ---------------------------------------------------------------- */

void codec_work_free(codec_work_t *w)
{
    if (!w)
        return;
    free(w->raw);
    free(w->lz);
    w->raw = NULL;
    w->lz = NULL;
    w->rawcap = 0;
}

__attribute__((format(printf, 3, 4))) static int bad(char *why, size_t whylen, const char *fmt,
                                                     ...)
{
    if (why && whylen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, whylen, fmt, ap);
        va_end(ap);
    }
    return RT_ERR;
}

/* grow w->raw to @need bytes (<= CODEC_RAW_MAX), keeping it afterwards */
static int work_raw(codec_work_t *w, size_t need)
{
    if (w->rawcap >= need)
        return RT_OK;
    size_t cap = w->rawcap ? w->rawcap : (256u << 10);
    while (cap < need)
        cap *= 2;
    if (cap > CODEC_RAW_MAX)
        cap = CODEC_RAW_MAX;
    uint8_t *p = realloc(w->raw, cap);
    if (!p)
        return RT_ERR;
    w->raw = p;
    w->rawcap = cap;
    return RT_OK;
}

static bool changes_disk(uint16_t flags)
{
    return (flags & (WREC_F_DATA | WREC_F_ZERO | WREC_F_TRIM)) != 0;
}

int codec_batch_open(const codec_batch_t *b, const uint8_t *payload, size_t len,
                     uint64_t disk_size, codec_work_t *w, codec_run_t *out, char *why,
                     size_t whylen)
{
    const uint8_t *recs = payload;
    size_t rlen = len;
    const char *r_why = NULL;

    if (b->flags & ~CODEC_BATCH_KNOWN)
        return bad(why, whylen, "unknown batch flags 0x%" PRIx32, b->flags);
    if (b->count == 0 || b->first_seq == 0 || b->last_seq < b->first_seq ||
        b->last_seq - b->first_seq < (uint64_t)b->count - 1)
        return bad(why, whylen,
                   "batch header says %" PRIu32 " records %" PRIu64 "..%" PRIu64
                   ": not a valid range",
                   b->count, b->first_seq, b->last_seq);
    if (len == 0 || !payload)
        return bad(why, whylen, "batch without a payload");
    if (b->flags & CODEC_BATCH_LZ4) {
        if (b->raw_len == 0 || b->raw_len > CODEC_RAW_MAX)
            return bad(why, whylen, "raw_len %" PRIu32 " out of bounds", b->raw_len);
        if (work_raw(w, b->raw_len) != RT_OK)
            return bad(why, whylen, "out of memory for %" PRIu32 " bytes", b->raw_len);
        if (codec_decompress(payload, len, w->raw, w->rawcap, b->raw_len, &r_why) != RT_OK)
            return bad(why, whylen, "batch payload: %s", r_why);
        recs = w->raw;
        rlen = b->raw_len;
    } else if (b->raw_len != 0 && b->raw_len != len) {
        return bad(why, whylen, "raw_len %" PRIu32 " differs from the payload's %zu bytes",
                   b->raw_len, len);
    }

    wrec_cursor_t c;
    wrec_hdr_t h;
    const uint8_t *stored;
    uint64_t prev = 0, max_time = 0;
    uint32_t n = 0;
    int r;
    wrec_cursor_init(&c, recs, rlen);
    while ((r = wrec_cursor_next(&c, &h, &stored, &r_why)) == RT_OK) {
        if (n == b->count)
            return bad(why, whylen, "more records than the %" PRIu32 " announced", b->count);
        if (n == 0 && h.seq != b->first_seq)
            return bad(why, whylen, "first record is %" PRIu64 ", the batch says %" PRIu64,
                       h.seq, b->first_seq);
        if (n > 0 && h.seq - h.skip != prev + 1)
            return bad(why, whylen, "record %" PRIu64 " (skip %" PRIu32 ") does not follow %" PRIu64,
                       h.seq, h.skip, prev);
        if (h.seq > b->last_seq)
            return bad(why, whylen, "record %" PRIu64 " is past the batch's last %" PRIu64, h.seq,
                       b->last_seq);
        if (disk_size && changes_disk(h.flags) &&
            (h.offset > disk_size || h.len > disk_size - h.offset))
            return bad(why, whylen,
                       "record %" PRIu64 " writes past the end of the disk (%" PRIu64 " + %" PRIu32
                       " > %" PRIu64 ")",
                       h.seq, h.offset, h.len, disk_size);
        if ((h.flags & WREC_F_LZ4) && !w->lz && !(w->lz = malloc(WREC_MAX_DATA)))
            return bad(why, whylen, "out of memory");
        if (wrec_verify(&h, stored, w->lz, WREC_MAX_DATA, NULL, &r_why) != RT_OK)
            return bad(why, whylen, "record %" PRIu64 ": %s", h.seq, r_why);
        if (n == 0 && out)
            out->from_seq = h.seq - h.skip;
        if (h.time_us > max_time)
            max_time = h.time_us;
        prev = h.seq;
        n++;
    }
    if (r != WREC_END)
        return bad(why, whylen, "bad record at batch byte %zu: %s", c.pos,
                   r_why ? r_why : "?");
    if (n != b->count || prev != b->last_seq)
        return bad(why, whylen,
                   "batch says %" PRIu32 " records up to %" PRIu64 ", it holds %" PRIu32
                   " up to %" PRIu64,
                   b->count, b->last_seq, n, prev);
    if (out) {
        out->recs = recs;
        out->len = rlen;
        out->last_seq = prev;
        out->count = n;
        out->max_time_us = max_time;
    }
    return RT_OK;
}
