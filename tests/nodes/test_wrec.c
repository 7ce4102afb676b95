/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * test_wrec.c: the write record (nodes/common/wrec.c).
 *
 * Round trips of every record kind, the header layout against FORMAT.md
 * byte by byte, every single-bit corruption of a header and of a payload
 * (raw and LZ4) detected, every field rule refused, the cursor over a batch
 * cut at every length, and the capture hash surviving re-encoding.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "nodes/common/wrec.h"
#include "rt.h"

static uint64_t rng = 0x1234567887654321ull;

static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static void fill_random(uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)rnd();
}

static uint64_t le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* a sealed DATA record of @len bytes of @data, encoded into @out */
static size_t make_data(uint8_t *out, size_t cap, uint64_t seq, uint64_t off, const uint8_t *data,
                        uint32_t len, bool lz4)
{
    wrec_hdr_t h = { .flags = WREC_F_DATA, .seq = seq, .offset = off, .len = len,
                     .time_us = 1700000000000000ull + seq };
    size_t n = 0;
    assert_int_equal(wrec_seal(&h, data, NULL), RT_OK);
    assert_int_equal(wrec_encode(&h, data, lz4, out, cap, &n, NULL), RT_OK);
    return n;
}

/* ---- layout ----------------------------------------------------------------- */

static void test_layout_golden(void **state)
{
    (void)state;
    uint8_t b[WREC_HDR_SIZE];
    wrec_hdr_t h = { .flags = WREC_F_DATA | WREC_F_INTERIOR, .seq = 0x0102030405060708ull,
                     .offset = 0x1112131415161718ull & 0x0fffffffffffffffull, .len = 0x200,
                     .stored = 0x200, .time_us = 0x2122232425262728ull,
                     .hash = 0x3132333435363738ull, .skip = 0x41424344u };

    wrec_hdr_encode(&h, b);
    assert_memory_equal(b, "SSWR", 4);
    assert_int_equal(b[4], 1);
    assert_int_equal(b[5], 0);
    assert_int_equal(b[6], WREC_F_DATA | WREC_F_INTERIOR);
    assert_int_equal(b[7], 0);
    assert_true(le64(b + 8) == h.seq);
    assert_int_equal(b[8], 0x08); /* little-endian */
    assert_true(le64(b + 16) == h.offset);
    assert_int_equal(le32(b + 24), 0x200);
    assert_int_equal(le32(b + 28), 0x200);
    assert_true(le64(b + 32) == h.time_us);
    assert_true(le64(b + 40) == h.hash);
    assert_int_equal(le32(b + 48), 0x41424344u);
    assert_int_equal(le32(b + 52), 0);
    assert_true(le64(b + 56) == XXH64(b, 56, 0));

    wrec_hdr_t d;
    assert_int_equal(wrec_hdr_decode(b, &d, NULL), RT_OK);
    assert_int_equal(d.flags, h.flags);
    assert_true(d.seq == h.seq && d.offset == h.offset && d.time_us == h.time_us);
    assert_true(d.hash == h.hash && d.len == h.len && d.stored == h.stored && d.skip == h.skip);
    assert_true(wrec_hash("", 0) == XXH64("", 0, 0));
}

static void test_round_trip_kinds(void **state)
{
    (void)state;
    uint8_t data[5000], out[8192], scratch[8192];
    const void *logical;
    wrec_hdr_t d;
    size_t n;

    fill_random(data, sizeof data);
    /* DATA raw */
    n = make_data(out, sizeof out, 7, 4096, data, 5000, false);
    assert_int_equal(n, WREC_HDR_SIZE + 5000);
    assert_int_equal(wrec_hdr_decode(out, &d, NULL), RT_OK);
    assert_int_equal(d.flags, WREC_F_DATA);
    assert_int_equal(wrec_verify(&d, out + WREC_HDR_SIZE, NULL, 0, &logical, NULL), RT_OK);
    assert_ptr_equal(logical, out + WREC_HDR_SIZE);
    assert_memory_equal(logical, data, 5000);

    /* ZERO and TRIM: no payload, hash of nothing */
    for (int k = 0; k < 2; k++) {
        wrec_hdr_t h = { .flags = k ? WREC_F_TRIM : WREC_F_ZERO, .seq = 8, .offset = 1 << 20,
                         .len = 3u << 30 };
        assert_int_equal(wrec_seal(&h, NULL, NULL), RT_OK);
        assert_int_equal(h.stored, 0);
        assert_int_equal(wrec_encode(&h, NULL, true, out, sizeof out, &n, NULL), RT_OK);
        assert_int_equal(n, WREC_HDR_SIZE);
        assert_int_equal(wrec_hdr_decode(out, &d, NULL), RT_OK);
        assert_int_equal(d.len, 3u << 30);
        assert_int_equal(wrec_verify(&d, NULL, NULL, 0, &logical, NULL), RT_OK);
        assert_null(logical);
    }

    /* MARK with a label, application-consistent */
    wrec_hdr_t m = { .flags = WREC_F_MARK | WREC_F_APP, .seq = 9, .len = 6 };
    assert_int_equal(wrec_seal(&m, "nightly", NULL), RT_OK);
    assert_int_equal(wrec_encode(&m, "nightly", false, out, sizeof out, &n, NULL), RT_OK);
    assert_int_equal(n, WREC_HDR_SIZE + 6);
    assert_int_equal(wrec_hdr_decode(out, &d, NULL), RT_OK);
    assert_int_equal(d.flags, WREC_F_MARK | WREC_F_APP);
    assert_int_equal(wrec_verify(&d, out + WREC_HDR_SIZE, NULL, 0, &logical, NULL), RT_OK);
    assert_memory_equal(logical, "nightl", 6);
    assert_true(wrec_is_point(&d));

    /* LZ4: compressible data is stored compressed and verifies after inflation */
    uint8_t text[4096];
    for (size_t i = 0; i < sizeof text; i++)
        text[i] = (uint8_t)"abcabcabd"[i % 9];
    n = make_data(out, sizeof out, 10, 0, text, sizeof text, true);
    assert_int_equal(wrec_hdr_decode(out, &d, NULL), RT_OK);
    assert_true(d.flags & WREC_F_LZ4);
    assert_true(d.stored < sizeof text / 4);
    assert_int_equal(n, WREC_HDR_SIZE + d.stored);
    assert_int_equal(wrec_verify(&d, out + WREC_HDR_SIZE, scratch, sizeof scratch, &logical, NULL),
                     RT_OK);
    assert_ptr_equal(logical, scratch);
    assert_memory_equal(scratch, text, sizeof text);
    /* not enough room to inflate */
    assert_int_equal(wrec_verify(&d, out + WREC_HDR_SIZE, scratch, 100, NULL, NULL), RT_ERR);

    /* LZ4 asked for random data: stored raw */
    n = make_data(out, sizeof out, 11, 0, data, 4096, true);
    assert_int_equal(wrec_hdr_decode(out, &d, NULL), RT_OK);
    assert_false(d.flags & WREC_F_LZ4);
    assert_int_equal(d.stored, 4096);
}

/* ---- corruption ---------------------------------------------------------------- */

static void test_header_bit_flips(void **state)
{
    (void)state;
    uint8_t data[256], out[512];
    wrec_hdr_t d;
    const char *why;

    fill_random(data, sizeof data);
    make_data(out, sizeof out, 42, 512, data, sizeof data, false);
    for (unsigned bit = 0; bit < WREC_HDR_SIZE * 8; bit++) {
        out[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        why = NULL;
        assert_int_equal(wrec_hdr_decode(out, &d, &why), RT_ERR);
        assert_non_null(why);
        out[bit / 8] ^= (uint8_t)(1u << (bit % 8));
    }
    assert_int_equal(wrec_hdr_decode(out, &d, NULL), RT_OK);
}

static void test_payload_bit_flips(void **state)
{
    (void)state;
    uint8_t data[200], out[512], scratch[4096];
    wrec_hdr_t d;
    const char *why;

    fill_random(data, sizeof data);
    make_data(out, sizeof out, 43, 0, data, sizeof data, false);
    assert_int_equal(wrec_hdr_decode(out, &d, NULL), RT_OK);
    for (unsigned bit = 0; bit < sizeof data * 8; bit++) {
        uint8_t *p = out + WREC_HDR_SIZE + bit / 8;
        *p ^= (uint8_t)(1u << (bit % 8));
        why = NULL;
        assert_int_equal(wrec_verify(&d, out + WREC_HDR_SIZE, NULL, 0, NULL, &why), RT_ERR);
        assert_string_equal(why, "data checksum mismatch");
        *p ^= (uint8_t)(1u << (bit % 8));
    }
    assert_int_equal(wrec_verify(&d, out + WREC_HDR_SIZE, NULL, 0, NULL, NULL), RT_OK);

    /* LZ4: no alteration of the compressed block yields wrong data: it is
     * caught (as a bad block or a checksum mismatch after inflation), or it
     * still inflates to exactly the original (e.g. a match offset moved
     * inside a run of equal bytes) */
    uint8_t text[4096];
    for (size_t i = 0; i < sizeof text; i++)
        text[i] = (uint8_t)(i / 64);
    uint8_t big[8192];
    make_data(big, sizeof big, 44, 0, text, sizeof text, true);
    assert_int_equal(wrec_hdr_decode(big, &d, NULL), RT_OK);
    assert_true(d.flags & WREC_F_LZ4);
    unsigned caught = 0, flips = 0;
    for (unsigned i = 0; i < d.stored; i++) {
        for (unsigned x = 1; x < 256; x <<= 1) {
            const void *logical = NULL;
            big[WREC_HDR_SIZE + i] ^= (uint8_t)x;
            memset(scratch, 0xee, sizeof scratch);
            flips++;
            if (wrec_verify(&d, big + WREC_HDR_SIZE, scratch, sizeof scratch, &logical, NULL) !=
                RT_OK)
                caught++;
            else
                assert_memory_equal(logical, text, sizeof text);
            big[WREC_HDR_SIZE + i] ^= (uint8_t)x;
        }
    }
    assert_true(caught > flips / 2);
    assert_int_equal(wrec_verify(&d, big + WREC_HDR_SIZE, scratch, sizeof scratch, NULL, NULL),
                     RT_OK);
}

/* encode @h unchecked (header checksum valid) and expect decode to refuse it */
static void expect_refused(const wrec_hdr_t *h, const char *reason)
{
    uint8_t b[WREC_HDR_SIZE];
    wrec_hdr_t d;
    const char *why = NULL;

    wrec_hdr_encode(h, b);
    assert_int_equal(wrec_hdr_decode(b, &d, &why), RT_ERR);
    assert_non_null(why);
    if (reason)
        assert_string_equal(why, reason);
    why = NULL;
    assert_int_equal(wrec_hdr_check(h, &why), RT_ERR);
    assert_non_null(why);
}

static void test_field_rules(void **state)
{
    (void)state;
    const wrec_hdr_t ok = { .flags = WREC_F_DATA, .seq = 5, .offset = 0, .len = 512,
                            .stored = 512 };
    wrec_hdr_t h;
    uint8_t b[WREC_HDR_SIZE];
    wrec_hdr_t d;

    assert_int_equal(wrec_hdr_check(&ok, NULL), RT_OK);
    h = ok, h.flags |= 0x100, expect_refused(&h, "unknown flags");
    h = ok, h.flags |= 0x8000, expect_refused(&h, "unknown flags");
    h = ok, h.flags = WREC_F_DATA | WREC_F_ZERO, expect_refused(&h, "not exactly one record kind");
    h = ok, h.flags = WREC_F_INTERIOR, expect_refused(&h, "not exactly one record kind");
    h = ok, h.flags = WREC_F_ZERO | WREC_F_LZ4, h.stored = 0, expect_refused(&h, NULL);
    h = ok, h.flags = WREC_F_DATA | WREC_F_APP, expect_refused(&h, NULL);
    h = ok, h.flags = WREC_F_MARK | WREC_F_INTERIOR, h.len = h.stored = 0,
    expect_refused(&h, NULL);
    h = ok, h.seq = 0, expect_refused(&h, "sequence number 0");
    h = ok, h.skip = 5, expect_refused(&h, "skip reaches below sequence 1");
    h = ok, h.len = h.stored = 0, expect_refused(&h, "data length out of bounds");
    h = ok, h.len = h.stored = WREC_MAX_DATA + 1, expect_refused(&h, "data length out of bounds");
    h = ok, h.stored = 511, expect_refused(&h, "stored length differs from length");
    h = ok, h.flags |= WREC_F_LZ4, h.stored = 0, expect_refused(&h, NULL);
    h = ok, h.flags |= WREC_F_LZ4, h.stored = 512 + 512 / 255 + 17, expect_refused(&h, NULL);
    h = ok, h.flags = WREC_F_ZERO, h.stored = 1, expect_refused(&h, NULL);
    h = ok, h.flags = WREC_F_TRIM, h.len = 0, h.stored = 0, expect_refused(&h, NULL);
    h = ok, h.flags = WREC_F_MARK, h.len = h.stored = 4, h.offset = 4096,
    expect_refused(&h, "mark with an offset");
    h = ok, h.flags = WREC_F_MARK, h.len = h.stored = WREC_MAX_LABEL + 1, expect_refused(&h, NULL);
    h = ok, h.offset = (uint64_t)INT64_MAX - 100, expect_refused(&h, "offset + length out of range");
    /* SYNCREF (agent log only): header only, 1..WREC_MAX_DATA bytes of the disk */
    h = ok, h.flags = WREC_F_SYNCREF, h.stored = 0,
    assert_int_equal(wrec_hdr_check(&h, NULL), RT_OK);
    h = ok, h.flags = WREC_F_SYNCREF | WREC_F_INTERIOR, h.stored = 0,
    assert_int_equal(wrec_hdr_check(&h, NULL), RT_OK);
    h = ok, h.flags = WREC_F_SYNCREF, expect_refused(&h, "syncref length out of bounds or with a payload");
    h = ok, h.flags = WREC_F_SYNCREF, h.len = 0, h.stored = 0, expect_refused(&h, NULL);
    h = ok, h.flags = WREC_F_SYNCREF, h.len = WREC_MAX_DATA + 1, h.stored = 0,
    expect_refused(&h, NULL);
    h = ok, h.flags = WREC_F_SYNCREF | WREC_F_LZ4, h.stored = 0, expect_refused(&h, NULL);
    h = ok, h.flags = WREC_F_SYNCREF | WREC_F_DATA, expect_refused(&h, NULL);
    assert_string_equal(wrec_kind_name(WREC_F_SYNCREF), "syncref");
    /* at the limits: accepted */
    h = ok, h.len = h.stored = WREC_MAX_DATA, assert_int_equal(wrec_hdr_check(&h, NULL), RT_OK);
    h = ok, h.skip = 4, assert_int_equal(wrec_hdr_check(&h, NULL), RT_OK);
    h = ok, h.offset = (uint64_t)INT64_MAX - 512, assert_int_equal(wrec_hdr_check(&h, NULL), RT_OK);

    /* version and reserved field: patched with a valid header checksum */
    wrec_hdr_encode(&ok, b);
    b[4] = 2;
    uint64_t sum = XXH64(b, 56, 0);
    for (int i = 0; i < 8; i++)
        b[56 + i] = (uint8_t)(sum >> (8 * i));
    const char *why = NULL;
    assert_int_equal(wrec_hdr_decode(b, &d, &why), RT_ERR);
    assert_string_equal(why, "unsupported record version");
    wrec_hdr_encode(&ok, b);
    b[53] = 1;
    sum = XXH64(b, 56, 0);
    for (int i = 0; i < 8; i++)
        b[56 + i] = (uint8_t)(sum >> (8 * i));
    assert_int_equal(wrec_hdr_decode(b, &d, &why), RT_ERR);
    assert_string_equal(why, "reserved header field not zero");
    /* magic */
    wrec_hdr_encode(&ok, b);
    b[0] = 'X';
    assert_int_equal(wrec_hdr_decode(b, &d, &why), RT_ERR);
    assert_string_equal(why, "bad record magic");
    /* seal refuses a DATA record without payload */
    h = ok;
    assert_int_equal(wrec_seal(&h, NULL, NULL), RT_ERR);
}

/* ---- cursor ------------------------------------------------------------------------ */

static void test_cursor_cut_everywhere(void **state)
{
    (void)state;
    uint8_t data[700], batch[4096];
    size_t ends[4], n = 0;

    fill_random(data, sizeof data);
    n += make_data(batch + n, sizeof batch - n, 1, 0, data, 700, false);
    ends[0] = n;
    wrec_hdr_t z = { .flags = WREC_F_ZERO, .seq = 2, .offset = 8192, .len = 4096 };
    assert_int_equal(wrec_seal(&z, NULL, NULL), RT_OK);
    wrec_hdr_encode(&z, batch + n);
    n += WREC_HDR_SIZE;
    ends[1] = n;
    n += make_data(batch + n, sizeof batch - n, 3, 512, data, 300, false);
    ends[2] = n;
    wrec_hdr_t m = { .flags = WREC_F_MARK, .seq = 4, .len = 2 };
    assert_int_equal(wrec_seal(&m, "cp", NULL), RT_OK);
    size_t mn;
    assert_int_equal(wrec_encode(&m, "cp", false, batch + n, sizeof batch - n, &mn, NULL), RT_OK);
    n += mn;
    ends[3] = n;

    for (size_t cut = 0; cut <= n; cut++) {
        wrec_cursor_t c;
        wrec_hdr_t h;
        const uint8_t *p;
        int r, got = 0;
        size_t whole = 0;
        while (whole < 4 && ends[whole] <= cut)
            whole++;
        wrec_cursor_init(&c, batch, cut);
        while ((r = wrec_cursor_next(&c, &h, &p, NULL)) == RT_OK) {
            assert_int_equal(h.seq, (uint64_t)got + 1);
            assert_ptr_equal(p, batch + (got ? ends[got - 1] : 0) + WREC_HDR_SIZE);
            got++;
        }
        assert_int_equal(got, (int)whole);
        bool at_boundary = cut == 0 || (whole > 0 && ends[whole - 1] == cut);
        assert_int_equal(r, at_boundary ? WREC_END : RT_ERR);
        assert_int_equal(c.pos, whole ? ends[whole - 1] : 0);
    }
}

static void test_hash_survives_reencode(void **state)
{
    (void)state;
    uint8_t data[4096], out[8192], out2[8192], scratch[4096];
    wrec_hdr_t h = { .flags = WREC_F_DATA, .seq = 1, .len = sizeof data };
    wrec_hdr_t d;
    const void *logical;

    memset(data, 'q', sizeof data);
    assert_int_equal(wrec_seal(&h, data, NULL), RT_OK);
    /* a hop re-encodes with LZ4: the capture hash is carried, not recomputed */
    assert_int_equal(wrec_encode(&h, data, true, out, sizeof out, NULL, NULL), RT_OK);
    assert_int_equal(wrec_hdr_decode(out, &d, NULL), RT_OK);
    assert_true(d.flags & WREC_F_LZ4);
    assert_int_equal(wrec_verify(&d, out + WREC_HDR_SIZE, scratch, sizeof scratch, &logical, NULL),
                     RT_OK);
    /* data changed between capture and re-encoding: the old hash exposes it */
    data[100] = 'x';
    wrec_hdr_t h2 = d;
    assert_int_equal(wrec_encode(&h2, data, false, out2, sizeof out2, NULL, NULL), RT_OK);
    assert_int_equal(wrec_hdr_decode(out2, &d, NULL), RT_OK);
    assert_int_equal(wrec_verify(&d, out2 + WREC_HDR_SIZE, NULL, 0, NULL, NULL), RT_ERR);
    /* an output buffer too small is refused */
    assert_int_equal(wrec_encode(&h, data, false, out, 100, NULL, NULL), RT_ERR);
    assert_int_equal(wrec_encode(&h, data, false, out, 10, NULL, NULL), RT_ERR);
    assert_string_equal(wrec_kind_name(WREC_F_TRIM), "trim");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layout_golden),
        cmocka_unit_test(test_round_trip_kinds),
        cmocka_unit_test(test_header_bit_flips),
        cmocka_unit_test(test_payload_bit_flips),
        cmocka_unit_test(test_field_rules),
        cmocka_unit_test(test_cursor_cut_everywhere),
        cmocka_unit_test(test_hash_survives_reencode),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
