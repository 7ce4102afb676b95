/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * test_codec.c: batch compression and the checked opening of a WriteBatch
 * payload (nodes/common/codec.c).
 *
 * Round trips; the 90 % rule (incompressible data refused, output never
 * above codec_worth); strict inflation (a block cut at any length, a
 * trailing byte, a wrong raw_len either way, bounds); every batch check
 * (first/last/count, continuity inside the batch, the disk's end, unknown
 * flags, raw_len of a raw batch, a changed byte anywhere in the records
 * caught, also through LZ4); and the flag values against repl.proto.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "nodes/common/codec.h"
#include "nodes/common/wrec.h"
#include "repl.pb.h"
#include "rt.h"

#define DISK (1u << 20)

static uint8_t raw[1u << 20], z[1u << 20], back[1u << 20];

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* records first..last (DATA, @len bytes each) back to back into @out */
static size_t records(uint64_t first, uint64_t last, uint32_t len, bool text, uint8_t *out,
                      size_t cap)
{
    static uint8_t data[64u << 10];
    size_t n = 0;
    for (uint64_t s = first; s <= last; s++) {
        wrec_hdr_t h = {.flags = WREC_F_DATA, .seq = s, .offset = (s % 200) * 4096, .len = len,
                        .time_us = 1000 + s};
        for (uint32_t i = 0; i < len; i++)
            data[i] = text ? (uint8_t)("lorem ipsum dolor "[(i + s) % 18]) : (uint8_t)rnd();
        size_t got = 0;
        assert_int_equal(wrec_seal(&h, data, NULL), RT_OK);
        assert_int_equal(wrec_encode(&h, data, false, out + n, cap - n, &got, NULL), RT_OK);
        n += got;
    }
    return n;
}

static void test_flags_match_proto(void **state)
{
    (void)state;
    assert_int_equal(CODEC_BATCH_LZ4, ss_BatchFlag_BATCH_LZ4);
    assert_int_equal(CODEC_BATCH_SYNC, ss_BatchFlag_BATCH_SYNC);
    assert_int_equal(CODEC_BATCH_SYNC_DONE, ss_BatchFlag_BATCH_SYNC_DONE);
}

static void test_round_trip_and_worth(void **state)
{
    (void)state;
    size_t n = records(1, 40, 4096, true, raw, sizeof raw), zl = 0;
    assert_int_equal(codec_compress(raw, n, z, sizeof z, &zl), RT_OK);
    assert_true(zl < codec_worth(n) + 1);
    assert_true(zl * 4 < n);
    assert_int_equal(codec_decompress(z, zl, back, sizeof back, n, NULL), RT_OK);
    assert_memory_equal(back, raw, n);

    /* random bytes: not worth it */
    size_t m = records(1, 40, 4096, false, raw, sizeof raw);
    assert_int_equal(codec_compress(raw, m, z, sizeof z, &zl), RT_AGAIN);
    /* the rule: strictly below 90 % */
    assert_int_equal(codec_worth(1000), 899);
    assert_int_equal(codec_worth(10), 8);
    assert_int_equal(codec_worth(0), 0);
    /* an output buffer smaller than worth is honoured */
    assert_int_equal(codec_compress(raw, n, z, 16, &zl), RT_AGAIN);
    assert_int_equal(codec_compress(raw, 0, z, sizeof z, &zl), RT_ERR);
    assert_int_equal(codec_compress(raw, (size_t)CODEC_RAW_MAX + 1, z, sizeof z, &zl), RT_ERR);
    assert_true(codec_bound(4096) >= 4096);
    assert_int_equal(codec_bound((size_t)CODEC_RAW_MAX + 1), 0);
}

static void test_strict_inflate(void **state)
{
    (void)state;
    const char *why = NULL;
    size_t n = records(1, 8, 4096, true, raw, sizeof raw), zl = 0;
    assert_int_equal(codec_compress(raw, n, z, sizeof z, &zl), RT_OK);
    /* cut at every length: never accepted as the whole run */
    for (size_t cut = 0; cut < zl; cut++)
        assert_int_equal(codec_decompress(z, cut, back, sizeof back, n, &why), RT_ERR);
    /* a trailing byte */
    z[zl] = 0;
    assert_int_equal(codec_decompress(z, zl + 1, back, sizeof back, n, &why), RT_ERR);
    /* raw_len off by one either way, zero, above the cap or the bound */
    assert_int_equal(codec_decompress(z, zl, back, sizeof back, n - 1, &why), RT_ERR);
    assert_int_equal(codec_decompress(z, zl, back, sizeof back, n + 1, &why), RT_ERR);
    assert_int_equal(codec_decompress(z, zl, back, sizeof back, 0, &why), RT_ERR);
    assert_int_equal(codec_decompress(z, zl, back, n - 1, n, &why), RT_ERR);
    assert_int_equal(codec_decompress(z, zl, back, sizeof back, (size_t)CODEC_RAW_MAX + 1, &why),
                     RT_ERR);
    assert_non_null(why);
    assert_int_equal(codec_decompress(z, zl, back, n, n, &why), RT_OK);
    assert_memory_equal(back, raw, n);
}

static void test_batch_open_checks(void **state)
{
    (void)state;
    codec_work_t w = {0};
    codec_run_t r;
    char why[192];
    size_t n = records(10, 19, 4096, true, raw, sizeof raw), zl = 0;
    codec_batch_t b = {10, 19, 10, 0, (uint32_t)n};

    assert_int_equal(codec_batch_open(&b, raw, n, DISK, &w, &r, why, sizeof why), RT_OK);
    assert_ptr_equal(r.recs, raw);
    assert_int_equal(r.len, n);
    assert_int_equal(r.from_seq, 10);
    assert_int_equal(r.last_seq, 19);
    assert_int_equal(r.count, 10);
    assert_int_equal(r.max_time_us, 1019);
    b.raw_len = 0; /* a raw batch may leave raw_len out */
    assert_int_equal(codec_batch_open(&b, raw, n, 0, &w, &r, why, sizeof why), RT_OK);

    /* the header must match the records */
    codec_batch_t bad = {11, 19, 10, 0, 0};
    assert_int_equal(codec_batch_open(&bad, raw, n, DISK, &w, &r, why, sizeof why), RT_ERR);
    bad = (codec_batch_t){10, 20, 10, 0, 0};
    assert_int_equal(codec_batch_open(&bad, raw, n, DISK, &w, &r, why, sizeof why), RT_ERR);
    bad = (codec_batch_t){10, 19, 9, 0, 0};
    assert_int_equal(codec_batch_open(&bad, raw, n, DISK, &w, &r, why, sizeof why), RT_ERR);
    bad = (codec_batch_t){10, 19, 11, 0, 0};
    assert_int_equal(codec_batch_open(&bad, raw, n, DISK, &w, &r, why, sizeof why), RT_ERR);
    bad = (codec_batch_t){10, 19, 10, 8, 0};
    assert_int_equal(codec_batch_open(&bad, raw, n, DISK, &w, &r, why, sizeof why), RT_ERR);
    assert_non_null(strstr(why, "flags"));
    bad = (codec_batch_t){10, 19, 10, 0, (uint32_t)n - 1};
    assert_int_equal(codec_batch_open(&bad, raw, n, DISK, &w, &r, why, sizeof why), RT_ERR);
    bad = (codec_batch_t){10, 19, 0, 0, 0};
    assert_int_equal(codec_batch_open(&bad, raw, n, DISK, &w, &r, why, sizeof why), RT_ERR);
    assert_int_equal(codec_batch_open(&b, raw, 0, DISK, &w, &r, why, sizeof why), RT_ERR);
    /* a disk too small for these offsets */
    assert_int_equal(codec_batch_open(&b, raw, n, 15 * 4096, &w, &r, why, sizeof why), RT_ERR);
    assert_non_null(strstr(why, "end of the disk"));

    /* a hole inside the batch: records 10..14 then 16..19 */
    size_t a = records(10, 14, 4096, true, raw, sizeof raw);
    size_t c = records(16, 19, 4096, true, raw + a, sizeof raw - a);
    codec_batch_t holed = {10, 19, 9, 0, 0};
    assert_int_equal(codec_batch_open(&holed, raw, a + c, DISK, &w, &r, why, sizeof why),
                     RT_ERR);
    assert_non_null(strstr(why, "does not follow"));

    /* any changed byte of the run is caught (headers by their checksum,
     * payloads by the capture hash), raw and through LZ4 */
    n = records(10, 12, 512, true, raw, sizeof raw);
    b = (codec_batch_t){10, 12, 3, 0, 0};
    for (size_t i = 0; i < n; i++) {
        raw[i] ^= 0x10;
        assert_int_equal(codec_batch_open(&b, raw, n, DISK, &w, &r, why, sizeof why), RT_ERR);
        raw[i] ^= 0x10;
    }
    assert_int_equal(codec_batch_open(&b, raw, n, DISK, &w, &r, why, sizeof why), RT_OK);
    for (size_t i = 0; i < n; i += 7) {
        raw[i] ^= 0x01;
        codec_batch_t bz = {10, 12, 3, CODEC_BATCH_LZ4, (uint32_t)n};
        assert_int_equal(codec_compress(raw, n, z, sizeof z, &zl), RT_OK);
        assert_int_equal(codec_batch_open(&bz, z, zl, DISK, &w, &r, why, sizeof why), RT_ERR);
        raw[i] ^= 0x01;
    }
    codec_batch_t bz = {10, 12, 3, CODEC_BATCH_LZ4 | CODEC_BATCH_SYNC_DONE, (uint32_t)n};
    assert_int_equal(codec_compress(raw, n, z, sizeof z, &zl), RT_OK);
    assert_int_equal(codec_batch_open(&bz, z, zl, DISK, &w, &r, why, sizeof why), RT_OK);
    assert_ptr_equal(r.recs, w.raw);
    assert_memory_equal(r.recs, raw, n);
    /* a raw_len above the ceiling is refused before any allocation */
    bz.raw_len = (uint32_t)CODEC_RAW_MAX + 1;
    assert_int_equal(codec_batch_open(&bz, z, zl, DISK, &w, &r, why, sizeof why), RT_ERR);
    codec_work_free(&w);
    assert_null(w.raw);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_flags_match_proto),
        cmocka_unit_test(test_round_trip_and_worth),
        cmocka_unit_test(test_strict_inflate),
        cmocka_unit_test(test_batch_open_checks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
