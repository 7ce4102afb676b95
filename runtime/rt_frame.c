/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * rt_frame.c: frame encoding and decoding, with no I/O.
 *
 * Every link carries frames: a varint giving the length of an Envelope, the
 * Envelope (nanopb, proto/link.proto), then Envelope.payload_len raw bytes,
 * so that bulk data never passes through nanopb structs. The decoder works
 * on whatever bytes it is given and never reads past them, so the link can
 * call it on a partly filled receive buffer and libFuzzer can call it on
 * anything (tests/fuzz/fuzz_frame.c). Every way a peer can get a header
 * wrong has its own reason, because that reason is what the operator reads
 * in the log line when the link is closed.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <pb_decode.h>
#include <pb_encode.h>

#include "link.pb.h"
#include "rt.h"

/* the length prefix of a header can never exceed its own field */
_Static_assert(RT_MAX_HEADER < (1u << 14), "a header length must fit two varint bytes");

static int bad(rt_frame_t *fr, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int bad(rt_frame_t *fr, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(fr->why, sizeof fr->why, fmt, ap);
    va_end(ap);
    return RT_ERR;
}

/* The varint at @p: RT_OK with *v and *n bytes, RT_AGAIN if it goes on past
 * @len, RT_ERR if it is longer than 5 bytes or above 32 bits. */
static int varint32(const uint8_t *p, size_t len, uint32_t *v, size_t *n)
{
    uint64_t x = 0;
    for (size_t i = 0; i < RT_FRAME_PREFIX_MAX; i++) {
        if (i >= len)
            return RT_AGAIN;
        x |= (uint64_t)(p[i] & 0x7fu) << (7 * i);
        if (!(p[i] & 0x80u)) {
            if (x > UINT32_MAX)
                return RT_ERR;
            *v = (uint32_t)x;
            *n = i + 1;
            return RT_OK;
        }
    }
    return RT_ERR;
}

/* The first field of an Envelope that is neither payload_len nor corr: the
 * body tag this build does not know (nanopb skipped it). 0 if none. */
static uint32_t unknown_field(const uint8_t *p, size_t len)
{
    pb_istream_t s = pb_istream_from_buffer(p, len);
    pb_wire_type_t wt;
    uint32_t tag;
    bool eof;
    while (pb_decode_tag(&s, &wt, &tag, &eof)) {
        if (tag != ss_Envelope_payload_len_tag && tag != ss_Envelope_corr_tag)
            return tag;
        if (!pb_skip_field(&s, wt))
            break;
    }
    return 0;
}

int rt_frame_decode_header(const uint8_t *p, size_t len, uint32_t max_payload,
                           struct _ss_Envelope *env, rt_frame_t *fr)
{
    uint32_t hlen;
    size_t n;

    memset(fr, 0, sizeof *fr);
    if (max_payload > RT_MAX_PAYLOAD)
        max_payload = RT_MAX_PAYLOAD;
    switch (varint32(p, len, &hlen, &n)) {
    case RT_AGAIN:
        fr->need = len + 1;
        return RT_AGAIN;
    case RT_ERR:
        return bad(fr, "bad length prefix (not a 32-bit varint)");
    default:
        break;
    }
    if (hlen > RT_MAX_HEADER)
        return bad(fr, "oversize header (%u bytes > %u)", (unsigned)hlen, RT_MAX_HEADER);
    if (len - n < hlen) {
        fr->need = n + hlen;
        return RT_AGAIN;
    }
    pb_istream_t s = pb_istream_from_buffer(p + n, hlen);
    if (!pb_decode(&s, ss_Envelope_fields, env))
        return bad(fr, "undecodable header (%s)", PB_GET_ERROR(&s));
    if (env->which_body == 0) {
        uint32_t tag = unknown_field(p + n, hlen);
        if (tag)
            return bad(fr, "unknown body tag %u", (unsigned)tag);
        return bad(fr, "header without a body");
    }
    if (env->payload_len > max_payload)
        return bad(fr, "oversize payload (%u bytes > %u)", (unsigned)env->payload_len,
                   (unsigned)max_payload);
    fr->hdr_len = n + hlen;
    fr->payload_len = env->payload_len;
    return RT_OK;
}

int rt_frame_decode(const uint8_t *p, size_t len, uint32_t max_payload,
                    struct _ss_Envelope *env, rt_frame_t *fr)
{
    int rc = rt_frame_decode_header(p, len, max_payload, env, fr);
    if (rc != RT_OK)
        return rc;
    size_t total = fr->hdr_len + fr->payload_len;
    if (len < total) {
        fr->need = total;
        return RT_AGAIN;
    }
    return RT_OK;
}

int rt_frame_encode_header(const struct _ss_Envelope *env, uint32_t payload_len, uint8_t *out,
                           size_t cap, size_t *outlen)
{
    ss_Envelope e = *env; /* payload_len is ours to set, the caller's stays as it was */
    size_t size;

    e.payload_len = payload_len;
    if (e.which_body == 0 || !pb_get_encoded_size(&size, ss_Envelope_fields, &e) ||
        size > RT_MAX_HEADER)
        return RT_ERR;
    /* the prefix, two bytes at most since size <= RT_MAX_HEADER < 2^14 */
    size_t n = size < 0x80u ? 1 : 2;
    if (cap < n + size)
        return RT_ERR;
    if (n == 1) {
        out[0] = (uint8_t)size;
    } else {
        out[0] = (uint8_t)(0x80u | (size & 0x7fu));
        out[1] = (uint8_t)(size >> 7);
    }
    pb_ostream_t s = pb_ostream_from_buffer(out + n, size);
    if (!pb_encode(&s, ss_Envelope_fields, &e) || s.bytes_written != size)
        return RT_ERR;
    *outlen = n + size;
    return RT_OK;
}
