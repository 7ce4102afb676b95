/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * fuzz_batch.c: libFuzzer target for the master target's batch decode and
 * verify path (mt_batch_check() in nodes/mt/mt.c, over codec_batch_open()
 * in nodes/common/codec.c): what a WriteBatch from the network goes through
 * before a byte of it reaches a journal.
 *
 * Input: a 36-byte little-endian header standing for the WriteBatch fields
 * and the journal's position (flags u32, first_seq u64, last_seq u64,
 * count u32, raw_len u32, the journal's last seq u64), then the payload.
 * Besides "no crash, no read or write out of bounds" (ASan, UBSan), it
 * checks the promises: a refusal has a reason; an accepted run holds
 * exactly count records from first_seq to last_seq, each continuing the one
 * before, each with a good header and capture hash, each inside the disk,
 * and an LZ4 run inflated to exactly raw_len; the verdict agrees with the
 * journal's position. Seeds are in tests/fuzz/corpus/fuzz_batch/.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "nodes/common/codec.h"
#include "nodes/common/wrec.h"
#include "nodes/mt/mt.h"

#define FUZZ_DISK (64ull << 20)
#define HDR       36u

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint64_t le(const uint8_t *p, unsigned n)
{
    uint64_t v = 0;
    for (unsigned i = n; i-- > 0;)
        v = (v << 8) | p[i];
    return v;
}

static codec_work_t work; /* kept across inputs, as the master target keeps it */
static uint8_t scratch[WREC_MAX_DATA];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < HDR)
        return 0;
    uint32_t flags = (uint32_t)le(data, 4);
    uint64_t first = le(data + 4, 8), last = le(data + 12, 8);
    uint32_t count = (uint32_t)le(data + 20, 4), raw_len = (uint32_t)le(data + 24, 4);
    uint64_t held = le(data + 28, 8);
    /* a private copy, so that a read past the payload is caught exactly */
    size_t len = size - HDR;
    uint8_t *payload = malloc(len ? len : 1);
    if (!payload)
        return 0;
    memcpy(payload, data + HDR, len);

    codec_run_t run;
    char why[192];
    why[0] = '\0';
    mt_verdict_t v = mt_batch_check(flags, first, last, count, raw_len, payload, len, FUZZ_DISK,
                                    held, &work, &run, why, sizeof why);
    if (v == MT_BATCH_BAD) {
        if (!why[0] || !memchr(why, '\0', sizeof why))
            abort();
        free(payload);
        return 0;
    }
    if (v != MT_BATCH_APPLY && v != MT_BATCH_DUP && v != MT_BATCH_GAP)
        abort();
    if ((flags & CODEC_BATCH_LZ4) ? run.len != raw_len : (run.recs != payload || run.len != len))
        abort();
    if (run.count != count || run.last_seq != last || count == 0)
        abort();
    wrec_cursor_t c;
    wrec_hdr_t h;
    const uint8_t *st;
    uint64_t prev = 0;
    uint32_t n = 0;
    int r;
    wrec_cursor_init(&c, run.recs, run.len);
    while ((r = wrec_cursor_next(&c, &h, &st, NULL)) == RT_OK) {
        if (n == 0 ? (h.seq != first || h.seq - h.skip != run.from_seq)
                   : h.seq - h.skip != prev + 1)
            abort();
        if (wrec_verify(&h, st, scratch, sizeof scratch, NULL, NULL) != RT_OK)
            abort();
        if ((h.flags & (WREC_F_DATA | WREC_F_ZERO | WREC_F_TRIM)) &&
            (h.offset > FUZZ_DISK || h.len > FUZZ_DISK - h.offset))
            abort();
        prev = h.seq;
        n++;
    }
    if (r != WREC_END || n != count || prev != last)
        abort();
    switch (v) {
    case MT_BATCH_DUP:
        if (last > held)
            abort();
        break;
    case MT_BATCH_GAP:
        if (last <= held || run.from_seq <= held + 1)
            abort();
        break;
    case MT_BATCH_APPLY:
        if (last <= held || run.from_seq > held + 1)
            abort();
        break;
    case MT_BATCH_BAD:
        abort();
    }
    free(payload);
    return 0;
}
