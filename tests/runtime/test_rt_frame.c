/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * test_rt_frame.c: the frame codec (runtime/rt_frame.c) without sockets.
 *
 * Round trips through the encoder and the decoder, golden bytes for one
 * frame (so both sides cannot drift together), "need more" at every split
 * point of a frame, and each reason the decoder gives for a bad header: the
 * link closes a connection on exactly these, so each must be told apart.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "link.pb.h"
#include "rt.h"

static ss_Envelope hello_env(void)
{
    ss_Envelope e = ss_Envelope_init_zero;
    e.which_body = ss_Envelope_hello_tag;
    e.corr = 77;
    e.body.hello.version = RT_PROTO_VERSION;
    strcpy(e.body.hello.node, "secondary");
    e.body.hello.roles = RT_ROLE_CS | RT_ROLE_MT;
    e.body.hello.time_us = 1700000000123456ull;
    e.body.hello.max_payload = 1u << 20;
    return e;
}

/* a whole frame (header + @plen payload bytes of pattern) into @buf */
static size_t make_frame(uint8_t *buf, size_t cap, const ss_Envelope *e, uint32_t plen)
{
    size_t hl = 0;
    assert_int_equal(rt_frame_encode_header(e, plen, buf, cap, &hl), RT_OK);
    assert_true(hl + plen <= cap);
    for (uint32_t i = 0; i < plen; i++)
        buf[hl + i] = (uint8_t)(i * 7 + 1);
    return hl + plen;
}

static void test_round_trip(void **state)
{
    (void)state;
    uint8_t buf[RT_FRAME_HDR_MAX + 300];
    ss_Envelope e = hello_env(), d;
    rt_frame_t fr;
    size_t n = make_frame(buf, sizeof buf, &e, 300);

    assert_int_equal(rt_frame_decode(buf, n, 1u << 20, &d, &fr), RT_OK);
    assert_int_equal(fr.payload_len, 300);
    assert_int_equal(fr.hdr_len + 300, n);
    assert_int_equal(d.which_body, ss_Envelope_hello_tag);
    assert_int_equal(d.payload_len, 300);
    assert_int_equal(d.corr, 77);
    assert_int_equal(d.body.hello.version, RT_PROTO_VERSION);
    assert_string_equal(d.body.hello.node, "secondary");
    assert_int_equal(d.body.hello.roles, RT_ROLE_CS | RT_ROLE_MT);
    assert_int_equal(d.body.hello.time_us, 1700000000123456ull);
    assert_int_equal(d.body.hello.max_payload, 1u << 20);
    assert_int_equal(buf[fr.hdr_len], 1);
    assert_int_equal(buf[fr.hdr_len + 299], (uint8_t)(299 * 7 + 1));
    /* the caller's envelope is not touched by the encoder */
    assert_int_equal(e.payload_len, 0);
}

/* Envelope{heartbeat{time_us: 1, echo_us: 2}}: field 11 length-delimited
 * (0x5a), 4 bytes: 08 01 10 02; prefix 6. payload_len 0 is not encoded. */
static void test_golden(void **state)
{
    (void)state;
    static const uint8_t want[] = {0x06, 0x5a, 0x04, 0x08, 0x01, 0x10, 0x02};
    ss_Envelope e = ss_Envelope_init_zero, d;
    uint8_t buf[64];
    size_t n = 0;
    rt_frame_t fr;

    e.which_body = ss_Envelope_heartbeat_tag;
    e.body.heartbeat.time_us = 1;
    e.body.heartbeat.echo_us = 2;
    assert_int_equal(rt_frame_encode_header(&e, 0, buf, sizeof buf, &n), RT_OK);
    assert_int_equal(n, sizeof want);
    assert_memory_equal(buf, want, sizeof want);
    assert_int_equal(rt_frame_decode(want, sizeof want, 0, &d, &fr), RT_OK);
    assert_int_equal(d.which_body, ss_Envelope_heartbeat_tag);
    assert_int_equal(d.body.heartbeat.echo_us, 2);
    assert_int_equal(fr.hdr_len, sizeof want);
    assert_int_equal(fr.payload_len, 0);
}

/* a header longer than 127 bytes takes a two-byte prefix */
static void test_long_header(void **state)
{
    (void)state;
    ss_Envelope e = ss_Envelope_init_zero, d;
    uint8_t buf[RT_FRAME_HDR_MAX];
    size_t n = 0;
    rt_frame_t fr;

    e.which_body = ss_Envelope_goodbye_tag;
    memset(e.body.goodbye.reason, 'r', sizeof e.body.goodbye.reason - 1);
    assert_int_equal(rt_frame_encode_header(&e, 5, buf, sizeof buf, &n), RT_OK);
    assert_true(n > 130);
    assert_true(buf[0] & 0x80);
    assert_int_equal(rt_frame_decode_header(buf, n, 5, &d, &fr), RT_OK);
    assert_int_equal(fr.hdr_len, n);
    assert_int_equal(strlen(d.body.goodbye.reason), sizeof e.body.goodbye.reason - 1);
    /* the payload is announced but not there */
    assert_int_equal(rt_frame_decode(buf, n, 5, &d, &fr), RT_AGAIN);
    assert_int_equal(fr.need, n + 5);
}

static void test_need_more_every_split(void **state)
{
    (void)state;
    uint8_t buf[RT_FRAME_HDR_MAX + 40];
    ss_Envelope e = hello_env(), d;
    rt_frame_t fr;
    size_t n = make_frame(buf, sizeof buf, &e, 40), hl = n - 40;

    for (size_t k = 0; k < n; k++) {
        assert_int_equal(rt_frame_decode(buf, k, 1u << 20, &d, &fr), RT_AGAIN);
        assert_true(fr.need > k);
        assert_true(fr.need <= n);
        int rc = rt_frame_decode_header(buf, k, 1u << 20, &d, &fr);
        if (k < hl) {
            assert_int_equal(rc, RT_AGAIN);
            assert_true(fr.need > k && fr.need <= hl);
        } else {
            assert_int_equal(rc, RT_OK);
            assert_int_equal(fr.hdr_len, hl);
        }
    }
    assert_int_equal(rt_frame_decode(buf, n, 1u << 20, &d, &fr), RT_OK);
}

/* two frames back to back: the first decodes alone, then the second */
static void test_back_to_back(void **state)
{
    (void)state;
    uint8_t buf[2 * (RT_FRAME_HDR_MAX + 10)];
    ss_Envelope e = hello_env(), d;
    rt_frame_t fr;
    size_t a = make_frame(buf, sizeof buf, &e, 10);
    e.which_body = ss_Envelope_heartbeat_tag;
    e.body.heartbeat.time_us = 9;
    size_t b = make_frame(buf + a, sizeof buf - a, &e, 3);

    assert_int_equal(rt_frame_decode(buf, a + b, 100, &d, &fr), RT_OK);
    assert_int_equal(d.which_body, ss_Envelope_hello_tag);
    assert_int_equal(fr.hdr_len + fr.payload_len, a);
    assert_int_equal(rt_frame_decode(buf + a, b, 100, &d, &fr), RT_OK);
    assert_int_equal(d.which_body, ss_Envelope_heartbeat_tag);
    assert_int_equal(d.body.heartbeat.time_us, 9);
    assert_int_equal(fr.payload_len, 3);
}

static void expect_err(const uint8_t *p, size_t len, uint32_t max_payload, const char *why)
{
    ss_Envelope d;
    rt_frame_t fr;
    assert_int_equal(rt_frame_decode(p, len, max_payload, &d, &fr), RT_ERR);
    if (!strstr(fr.why, why))
        fail_msg("reason \"%s\" lacks \"%s\"", fr.why, why);
}

static void test_bad_prefix(void **state)
{
    (void)state;
    static const uint8_t six[] = {0x80, 0x80, 0x80, 0x80, 0x80, 0x01};
    static const uint8_t big[] = {0xff, 0xff, 0xff, 0xff, 0x7f};
    expect_err(six, sizeof six, 100, "bad length prefix");
    expect_err(big, sizeof big, 100, "bad length prefix");
    /* four continuation bytes are not yet an error */
    ss_Envelope d;
    rt_frame_t fr;
    assert_int_equal(rt_frame_decode(six, 4, 100, &d, &fr), RT_AGAIN);
}

/* a two-byte varint of @v */
static void varint2(uint8_t *p, uint32_t v)
{
    assert_true(v >= 0x80 && v < 0x4000);
    p[0] = (uint8_t)(0x80u | (v & 0x7fu));
    p[1] = (uint8_t)(v >> 7);
}

static void test_oversize_header(void **state)
{
    (void)state;
    uint8_t p[2], ok[2];
    ss_Envelope d;
    rt_frame_t fr;
    /* refused from the prefix alone, before the bytes come */
    varint2(p, RT_MAX_HEADER + 1);
    expect_err(p, sizeof p, 100, "oversize header");
    /* RT_MAX_HEADER itself is allowed: need more */
    varint2(ok, RT_MAX_HEADER);
    assert_int_equal(rt_frame_decode(ok, sizeof ok, 100, &d, &fr), RT_AGAIN);
    assert_int_equal(fr.need, 2 + RT_MAX_HEADER);
    /* far too big, three bytes */
    static const uint8_t huge[] = {0x80, 0x80, 0x40};
    expect_err(huge, sizeof huge, 100, "oversize header (1048576 bytes");
}

static void test_undecodable(void **state)
{
    (void)state;
    /* field 1 as a varint that never ends */
    static const uint8_t g1[] = {0x03, 0x08, 0xff, 0xff};
    /* field 10 (hello) claims 50 bytes inside a 3-byte header */
    static const uint8_t g2[] = {0x03, 0x52, 0x32, 0x00};
    /* wire type 7 does not exist */
    static const uint8_t g3[] = {0x01, 0x0f};
    expect_err(g1, sizeof g1, 100, "undecodable header");
    expect_err(g2, sizeof g2, 100, "undecodable header");
    expect_err(g3, sizeof g3, 100, "undecodable header");

    /* a node name longer than Hello.node's max_size */
    uint8_t buf[128];
    size_t i = 0;
    buf[i++] = 0; /* prefix, set below */
    buf[i++] = 0x52; /* field 10, length-delimited */
    buf[i++] = 2 + 70;
    buf[i++] = 0x12; /* Hello.node */
    buf[i++] = 70;
    memset(buf + i, 'n', 70);
    i += 70;
    buf[0] = (uint8_t)(i - 1);
    expect_err(buf, i, 100, "undecodable header");
}

static void test_no_body_and_unknown_tag(void **state)
{
    (void)state;
    static const uint8_t empty[] = {0x00};
    static const uint8_t only_corr[] = {0x02, 0x10, 0x05};
    /* field 99, varint 1: tag (99 << 3) = 792 = 0x98 0x06 */
    static const uint8_t unknown[] = {0x05, 0x10, 0x05, 0x98, 0x06, 0x01};
    expect_err(empty, sizeof empty, 100, "without a body");
    expect_err(only_corr, sizeof only_corr, 100, "without a body");
    expect_err(unknown, sizeof unknown, 100, "unknown body tag 99");
}

static void test_oversize_payload(void **state)
{
    (void)state;
    uint8_t buf[RT_FRAME_HDR_MAX];
    ss_Envelope e = hello_env(), d;
    rt_frame_t fr;
    size_t hl = 0;

    assert_int_equal(rt_frame_encode_header(&e, 4097, buf, sizeof buf, &hl), RT_OK);
    expect_err(buf, hl, 4096, "oversize payload (4097 bytes > 4096)");
    assert_int_equal(rt_frame_decode_header(buf, hl, 4097, &d, &fr), RT_OK);
    /* a max_payload above the hard ceiling is clamped to it */
    assert_int_equal(rt_frame_encode_header(&e, RT_MAX_PAYLOAD + 1, buf, sizeof buf, &hl), RT_OK);
    expect_err(buf, hl, UINT32_MAX, "oversize payload");
    assert_int_equal(rt_frame_encode_header(&e, RT_MAX_PAYLOAD, buf, sizeof buf, &hl), RT_OK);
    assert_int_equal(rt_frame_decode_header(buf, hl, UINT32_MAX, &d, &fr), RT_OK);
}

static void test_encode_errors(void **state)
{
    (void)state;
    ss_Envelope e = ss_Envelope_init_zero;
    uint8_t buf[RT_FRAME_HDR_MAX];
    size_t n = 12345;

    assert_int_equal(rt_frame_encode_header(&e, 0, buf, sizeof buf, &n), RT_ERR);
    assert_int_equal(n, 12345);
    e = hello_env();
    size_t need = 0;
    assert_int_equal(rt_frame_encode_header(&e, 0, buf, sizeof buf, &need), RT_OK);
    assert_int_equal(rt_frame_encode_header(&e, 0, buf, need - 1, &n), RT_ERR);
    assert_int_equal(rt_frame_encode_header(&e, 0, buf, need, &n), RT_OK);
    assert_int_equal(n, need);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_golden),
        cmocka_unit_test(test_long_header),
        cmocka_unit_test(test_need_more_every_split),
        cmocka_unit_test(test_back_to_back),
        cmocka_unit_test(test_bad_prefix),
        cmocka_unit_test(test_oversize_header),
        cmocka_unit_test(test_undecodable),
        cmocka_unit_test(test_no_body_and_unknown_tag),
        cmocka_unit_test(test_oversize_payload),
        cmocka_unit_test(test_encode_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
