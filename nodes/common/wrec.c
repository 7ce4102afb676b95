/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * wrec.c: encode, decode and verify write records (see wrec.h, FORMAT.md).
 *
 * The header is written and read field by field in little-endian order, so
 * the format does not depend on the host's struct layout or byte order. The
 * header checksum is the XXH64 of the first 56 header bytes; the data hash is
 * the XXH64 of the logical payload. libxxhash and liblz4 are the only
 * libraries used; this file is also the one place that touches LZ4 for
 * record payloads.
 */
#include "wrec.h"

#include <string.h>

#include <lz4.h>
#include <xxhash.h>

#include "rt.h"

/* ---- little-endian fields ------------------------------------------------ */

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t get32(const uint8_t *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static uint64_t get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

/* header byte offsets (FORMAT.md, "Write record") */
enum {
    OFF_MAGIC = 0,
    OFF_VERSION = 4,
    OFF_FLAGS = 6,
    OFF_SEQ = 8,
    OFF_OFFSET = 16,
    OFF_LEN = 24,
    OFF_STORED = 28,
    OFF_TIME = 32,
    OFF_HASH = 40,
    OFF_SKIP = 48,
    OFF_RESERVED = 52,
    OFF_HDRSUM = 56,
};

static void set_why(const char **why, const char *s)
{
    if (why)
        *why = s;
}

/* ---- header ---------------------------------------------------------------- */

uint64_t wrec_hash(const void *data, size_t len)
{
    return XXH64(data, len, 0);
}

int wrec_hdr_check(const wrec_hdr_t *h, const char **why)
{
    uint16_t kind = h->flags & WREC_F_KINDS;

    if (h->flags & ~WREC_F_KNOWN)
        return set_why(why, "unknown flags"), RT_ERR;
    if (kind == 0 || (kind & (kind - 1)) != 0)
        return set_why(why, "not exactly one record kind"), RT_ERR;
    if ((h->flags & WREC_F_LZ4) && kind != WREC_F_DATA)
        return set_why(why, "LZ4 flag on a record without data"), RT_ERR;
    if ((h->flags & WREC_F_APP) && kind != WREC_F_MARK)
        return set_why(why, "APP flag on a record that is not a mark"), RT_ERR;
    if ((h->flags & WREC_F_INTERIOR) && kind == WREC_F_MARK)
        return set_why(why, "INTERIOR flag on a mark"), RT_ERR;
    if (h->seq == 0)
        return set_why(why, "sequence number 0"), RT_ERR;
    if (h->skip >= h->seq)
        return set_why(why, "skip reaches below sequence 1"), RT_ERR;
    switch (kind) {
    case WREC_F_DATA:
        if (h->len == 0 || h->len > WREC_MAX_DATA)
            return set_why(why, "data length out of bounds"), RT_ERR;
        if (h->flags & WREC_F_LZ4) {
            if (h->stored == 0 || h->stored > h->len + h->len / 255u + 16u)
                return set_why(why, "LZ4 stored length out of bounds"), RT_ERR;
        } else if (h->stored != h->len) {
            return set_why(why, "stored length differs from length"), RT_ERR;
        }
        break;
    case WREC_F_ZERO:
    case WREC_F_TRIM:
        if (h->len == 0)
            return set_why(why, "empty zero/trim range"), RT_ERR;
        if (h->stored != 0)
            return set_why(why, "zero/trim record with a payload"), RT_ERR;
        break;
    case WREC_F_MARK:
        if (h->len > WREC_MAX_LABEL || h->stored != h->len)
            return set_why(why, "mark label length out of bounds"), RT_ERR;
        if (h->offset != 0)
            return set_why(why, "mark with an offset"), RT_ERR;
        break;
    case WREC_F_SYNCREF:
        if (h->len == 0 || h->len > WREC_MAX_DATA || h->stored != 0)
            return set_why(why, "syncref length out of bounds or with a payload"), RT_ERR;
        break;
    default:
        return set_why(why, "not exactly one record kind"), RT_ERR;
    }
    if (h->offset > (uint64_t)INT64_MAX - h->len)
        return set_why(why, "offset + length out of range"), RT_ERR;
    return RT_OK;
}

void wrec_hdr_encode(const wrec_hdr_t *h, void *out)
{
    uint8_t *p = out;

    put32(p + OFF_MAGIC, WREC_MAGIC);
    put16(p + OFF_VERSION, WREC_VERSION);
    put16(p + OFF_FLAGS, h->flags);
    put64(p + OFF_SEQ, h->seq);
    put64(p + OFF_OFFSET, h->offset);
    put32(p + OFF_LEN, h->len);
    put32(p + OFF_STORED, h->stored);
    put64(p + OFF_TIME, h->time_us);
    put64(p + OFF_HASH, h->hash);
    put32(p + OFF_SKIP, h->skip);
    put32(p + OFF_RESERVED, 0);
    put64(p + OFF_HDRSUM, XXH64(p, OFF_HDRSUM, 0));
}

int wrec_hdr_decode(const void *in, wrec_hdr_t *h, const char **why)
{
    const uint8_t *p = in;

    if (get32(p + OFF_MAGIC) != WREC_MAGIC)
        return set_why(why, "bad record magic"), RT_ERR;
    if (get64(p + OFF_HDRSUM) != XXH64(p, OFF_HDRSUM, 0))
        return set_why(why, "header checksum mismatch"), RT_ERR;
    if (get16(p + OFF_VERSION) != WREC_VERSION)
        return set_why(why, "unsupported record version"), RT_ERR;
    if (get32(p + OFF_RESERVED) != 0)
        return set_why(why, "reserved header field not zero"), RT_ERR;
    h->flags = get16(p + OFF_FLAGS);
    h->seq = get64(p + OFF_SEQ);
    h->offset = get64(p + OFF_OFFSET);
    h->len = get32(p + OFF_LEN);
    h->stored = get32(p + OFF_STORED);
    h->time_us = get64(p + OFF_TIME);
    h->hash = get64(p + OFF_HASH);
    h->skip = get32(p + OFF_SKIP);
    return wrec_hdr_check(h, why);
}

/* ---- payload ----------------------------------------------------------------- */

int wrec_seal(wrec_hdr_t *h, const void *payload, const char **why)
{
    uint16_t kind = h->flags & WREC_F_KINDS;

    h->flags &= (uint16_t)~WREC_F_LZ4;
    if (kind == WREC_F_DATA || kind == WREC_F_MARK) {
        if (h->len > 0 && payload == NULL)
            return set_why(why, "no payload"), RT_ERR;
        h->stored = h->len;
    } else {
        h->stored = 0;
    }
    if (wrec_hdr_check(h, why) != RT_OK)
        return RT_ERR;
    h->hash = XXH64(h->stored ? payload : "", h->stored, 0);
    return RT_OK;
}

int wrec_encode(wrec_hdr_t *h, const void *payload, bool lz4, void *out, size_t cap,
                size_t *outlen, const char **why)
{
    uint16_t kind = h->flags & WREC_F_KINDS;
    uint8_t *p = out;
    uint32_t plen = (kind == WREC_F_DATA || kind == WREC_F_MARK) ? h->len : 0;

    h->flags &= (uint16_t)~WREC_F_LZ4;
    h->stored = plen;
    if (wrec_hdr_check(h, why) != RT_OK)
        return RT_ERR;
    if (plen > 0 && payload == NULL)
        return set_why(why, "no payload"), RT_ERR;
    if (cap < WREC_HDR_SIZE)
        return set_why(why, "output buffer too small"), RT_ERR;
    if (lz4 && kind == WREC_F_DATA && h->len >= 64) {
        /* worth it only when it saves at least 1/16 */
        size_t room = cap - WREC_HDR_SIZE;
        int want = (int)(h->len - h->len / 16u);
        int n = LZ4_compress_default(payload, (char *)p + WREC_HDR_SIZE,
                                     h->len, room < (size_t)want ? (int)room : want);
        if (n > 0) {
            h->flags |= WREC_F_LZ4;
            h->stored = (uint32_t)n;
        }
    }
    if (!(h->flags & WREC_F_LZ4)) {
        if (cap - WREC_HDR_SIZE < plen)
            return set_why(why, "output buffer too small"), RT_ERR;
        if (plen)
            memcpy(p + WREC_HDR_SIZE, payload, plen);
    }
    wrec_hdr_encode(h, p);
    if (outlen)
        *outlen = wrec_size(h);
    return RT_OK;
}

int wrec_verify(const wrec_hdr_t *h, const void *stored, void *scratch, size_t cap,
                const void **logical, const char **why)
{
    const void *data = NULL;
    uint32_t n = 0;

    switch (h->flags & WREC_F_KINDS) {
    case WREC_F_DATA:
        n = h->len;
        if (h->flags & WREC_F_LZ4) {
            if (scratch == NULL || cap < h->len)
                return set_why(why, "no room to decompress"), RT_ERR;
            int got = LZ4_decompress_safe(stored, scratch, (int)h->stored, (int)h->len);
            if (got != (int)h->len)
                return set_why(why, "bad LZ4 block"), RT_ERR;
            data = scratch;
        } else {
            data = stored;
        }
        break;
    case WREC_F_MARK:
        n = h->len;
        data = stored;
        break;
    default:
        break;
    }
    if (XXH64(n ? data : "", n, 0) != h->hash)
        return set_why(why, "data checksum mismatch"), RT_ERR;
    if (logical)
        *logical = data;
    return RT_OK;
}

/* ---- cursor ------------------------------------------------------------------ */

void wrec_cursor_init(wrec_cursor_t *c, const void *buf, size_t len)
{
    c->buf = buf;
    c->len = len;
    c->pos = 0;
}

int wrec_cursor_next(wrec_cursor_t *c, wrec_hdr_t *h, const uint8_t **stored, const char **why)
{
    size_t left = c->len - c->pos;

    if (left == 0)
        return WREC_END;
    if (left < WREC_HDR_SIZE)
        return set_why(why, "record header cut short"), RT_ERR;
    if (wrec_hdr_decode(c->buf + c->pos, h, why) != RT_OK)
        return RT_ERR;
    if (left - WREC_HDR_SIZE < h->stored)
        return set_why(why, "record payload cut short"), RT_ERR;
    if (stored)
        *stored = c->buf + c->pos + WREC_HDR_SIZE;
    c->pos += wrec_size(h);
    return RT_OK;
}

const char *wrec_kind_name(uint16_t flags)
{
    switch (flags & WREC_F_KINDS) {
    case WREC_F_DATA: return "data";
    case WREC_F_ZERO: return "zero";
    case WREC_F_TRIM: return "trim";
    case WREC_F_MARK: return "mark";
    case WREC_F_SYNCREF: return "syncref";
    default: return "?";
    }
}
