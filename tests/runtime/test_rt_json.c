/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * test_rt_json.c: the JSON writer and reader (runtime/rt_json.c).
 *
 * The management endpoint's answers and nodectl's --json output are built
 * with this writer, and nodectl reads answers back with this reader, so the
 * tests pin the exact bytes written (escaping of quotes, backslashes and
 * control characters, UTF-8 passed through, invalid bytes replaced), the
 * structure (commas and keys placed by the writer, nesting), every misuse
 * and overflow turning into an error rather than a broken document, and the
 * reader accepting what the writer makes while refusing what RFC 8259 does.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <string.h>

#include <cmocka.h>

#include "rt.h"
#include "rt_json.h"

/* the document written by @j, which must be complete */
static const char *doc(const rt_json_t *j)
{
    assert_int_equal(rt_json_finish(j), RT_OK);
    assert_int_equal(strlen(j->buf), j->len);
    return j->buf;
}

static const char *esc(const char *s)
{
    static char out[256];
    size_t n = rt_json_escape(out, sizeof out, s, strlen(s), 0);
    assert_true(n < sizeof out);
    return out;
}

/* ---- escaping ---------------------------------------------------------------- */

static void test_escape_specials(void **state)
{
    (void)state;
    assert_string_equal(esc("a\"b\\c/d"), "\"a\\\"b\\\\c/d\"");
    assert_string_equal(esc("\n\r\t\b\f"), "\"\\n\\r\\t\\b\\f\"");
    assert_string_equal(esc("\x01\x1f\x7f x"), "\"\\u0001\\u001f\\u007f x\"");
    assert_string_equal(esc(""), "\"\"");
    assert_string_equal(esc("<a&b>"), "\"<a&b>\"");
    char out[64];
    rt_json_escape(out, sizeof out, "<a&b>", 5, RT_JSON_HTML);
    assert_string_equal(out, "\"\\u003ca\\u0026b\\u003e\"");
    /* an embedded NUL is a control character like the others */
    rt_json_escape(out, sizeof out, "a\0b", 3, 0);
    assert_string_equal(out, "\"a\\u0000b\"");
}

static void test_escape_utf8(void **state)
{
    (void)state;
    /* valid UTF-8 of 2, 3 and 4 bytes passes through unchanged */
    assert_string_equal(esc("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"),
                        "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"");
    /* a stray byte, a cut sequence, an overlong form, a surrogate, beyond U+10FFFF */
    assert_string_equal(esc("a\xff"), "\"a\\ufffd\"");
    assert_string_equal(esc("\xe2\x82"), "\"\\ufffd\\ufffd\"");
    assert_string_equal(esc("\xc0\xaf"), "\"\\ufffd\\ufffd\"");
    assert_string_equal(esc("\xed\xa0\x80"), "\"\\ufffd\\ufffd\\ufffd\"");
    assert_string_equal(esc("\xf4\x90\x80\x80"), "\"\\ufffd\\ufffd\\ufffd\\ufffd\"");
}

static void test_escape_truncates(void **state)
{
    (void)state;
    char out[6];
    /* snprintf semantics: the full length is returned, the output is cut */
    assert_int_equal(rt_json_escape(out, sizeof out, "abcdefgh", 8, 0), 10);
    assert_string_equal(out, "\"abcd");
    assert_int_equal(rt_json_escape(NULL, 0, "a\n", 2, 0), 5);
}

/* ---- writer ------------------------------------------------------------------ */

static void test_nesting(void **state)
{
    (void)state;
    char buf[256];
    rt_json_t j;
    rt_json_init(&j, buf, sizeof buf);
    rt_json_obj(&j, NULL);
    rt_json_str(&j, "node", "pri\"mary");
    rt_json_arr(&j, "roles");
    rt_json_str(&j, NULL, "agent");
    rt_json_str(&j, NULL, "ps");
    rt_json_arr_end(&j);
    rt_json_arr(&j, "links");
    rt_json_obj(&j, NULL);
    rt_json_u64(&j, "n", 1);
    rt_json_obj_end(&j);
    rt_json_obj(&j, NULL);
    rt_json_obj_end(&j);
    rt_json_arr_end(&j);
    rt_json_arr(&j, "empty");
    rt_json_arr_end(&j);
    rt_json_bool(&j, "t", true);
    rt_json_bool(&j, "f", false);
    rt_json_null(&j, "z");
    rt_json_str(&j, "nul", NULL);
    rt_json_obj_end(&j);
    assert_string_equal(doc(&j), "{\"node\":\"pri\\\"mary\",\"roles\":[\"agent\",\"ps\"],"
                                 "\"links\":[{\"n\":1},{}],\"empty\":[],\"t\":true,"
                                 "\"f\":false,\"z\":null,\"nul\":null}");
}

static void test_numbers(void **state)
{
    (void)state;
    char buf[256];
    rt_json_t j;
    rt_json_init(&j, buf, sizeof buf);
    rt_json_arr(&j, NULL);
    rt_json_u64(&j, NULL, UINT64_MAX);
    rt_json_i64(&j, NULL, INT64_MIN);
    rt_json_dbl(&j, NULL, 0.25);
    rt_json_dbl(&j, NULL, 0.1);
    rt_json_dbl(&j, NULL, NAN);
    rt_json_dbl(&j, NULL, INFINITY);
    rt_json_strf(&j, NULL, "%d-%s", 7, "x");
    rt_json_arr_end(&j);
    assert_string_equal(doc(&j),
                        "[18446744073709551615,-9223372036854775808,0.25,0.1,null,null,\"7-x\"]");
}

static void test_scalar_top_level(void **state)
{
    (void)state;
    char buf[16];
    rt_json_t j;
    rt_json_init(&j, buf, sizeof buf);
    rt_json_u64(&j, NULL, 42);
    assert_string_equal(doc(&j), "42");
    /* a second top-level value is misuse */
    rt_json_u64(&j, NULL, 1);
    assert_int_equal(rt_json_finish(&j), RT_ERR);
    rt_json_reset(&j);
    assert_int_equal(rt_json_finish(&j), RT_ERR); /* nothing written yet */
    rt_json_str(&j, NULL, "x");
    assert_string_equal(doc(&j), "\"x\"");
}

static void test_misuse(void **state)
{
    (void)state;
    char buf[256];
    rt_json_t j;

    rt_json_init(&j, buf, sizeof buf); /* a value without a key inside an object */
    rt_json_obj(&j, NULL);
    rt_json_u64(&j, NULL, 1);
    rt_json_obj_end(&j);
    assert_int_equal(rt_json_finish(&j), RT_ERR);

    rt_json_init(&j, buf, sizeof buf); /* a key inside an array */
    rt_json_arr(&j, NULL);
    rt_json_u64(&j, "k", 1);
    rt_json_arr_end(&j);
    assert_int_equal(rt_json_finish(&j), RT_ERR);

    rt_json_init(&j, buf, sizeof buf); /* a key at the top level */
    rt_json_obj(&j, "k");
    assert_int_equal(rt_json_finish(&j), RT_ERR);

    rt_json_init(&j, buf, sizeof buf); /* the wrong closer */
    rt_json_obj(&j, NULL);
    rt_json_arr_end(&j);
    assert_int_equal(rt_json_finish(&j), RT_ERR);

    rt_json_init(&j, buf, sizeof buf); /* a closer too many */
    rt_json_arr(&j, NULL);
    rt_json_arr_end(&j);
    rt_json_arr_end(&j);
    assert_int_equal(rt_json_finish(&j), RT_ERR);

    rt_json_init(&j, buf, sizeof buf); /* left open */
    rt_json_arr(&j, NULL);
    assert_int_equal(rt_json_finish(&j), RT_ERR);

    rt_json_init(&j, buf, sizeof buf); /* too deep */
    for (unsigned i = 0; i < RT_JSON_DEPTH; i++)
        rt_json_arr(&j, NULL);
    for (unsigned i = 0; i < RT_JSON_DEPTH; i++)
        rt_json_arr_end(&j);
    assert_int_equal(rt_json_finish(&j), RT_OK);
    rt_json_reset(&j);
    for (unsigned i = 0; i <= RT_JSON_DEPTH; i++)
        rt_json_arr(&j, NULL);
    for (unsigned i = 0; i <= RT_JSON_DEPTH; i++)
        rt_json_arr_end(&j);
    assert_int_equal(rt_json_finish(&j), RT_ERR);

    rt_json_init(&j, buf, 0); /* no room at all */
    rt_json_null(&j, NULL);
    assert_int_equal(rt_json_finish(&j), RT_ERR);
}

static void test_overflow(void **state)
{
    (void)state;
    /* ["abc"] is 7 bytes: it fits 8 (with the NUL), not 7, and the error sticks */
    char buf[8];
    rt_json_t j;
    rt_json_init(&j, buf, 8);
    rt_json_arr(&j, NULL);
    rt_json_str(&j, NULL, "abc");
    rt_json_arr_end(&j);
    assert_string_equal(doc(&j), "[\"abc\"]");

    rt_json_init(&j, buf, 7);
    rt_json_arr(&j, NULL);
    rt_json_str(&j, NULL, "abc");
    rt_json_arr_end(&j);
    assert_int_equal(rt_json_finish(&j), RT_ERR);
    assert_true(j.len < 7);

    /* an escape that does not fit is an error, not a cut escape */
    rt_json_init(&j, buf, 8);
    rt_json_str(&j, NULL, "ab\x01");
    assert_int_equal(rt_json_finish(&j), RT_ERR);
    assert_null(strstr(buf, "\\u"));
}

static void test_alloc_grows_to_max(void **state)
{
    (void)state;
    rt_json_t j;
    assert_int_equal(rt_json_init_alloc(&j, 16, 4096), RT_OK);
    rt_json_arr(&j, NULL);
    for (int i = 0; i < 300; i++)
        rt_json_u64(&j, NULL, 1000 + (uint64_t)i); /* 5 bytes each */
    rt_json_arr_end(&j);
    assert_int_equal(rt_json_finish(&j), RT_OK);
    assert_int_equal(j.len, 2 + 300 * 5 - 1);
    assert_true(j.cap <= 4096);
    assert_memory_equal(j.buf, "[1000,1001,", 11);

    rt_json_reset(&j); /* reused: the same ceiling applies */
    rt_json_arr(&j, NULL);
    for (int i = 0; i < 1000; i++)
        rt_json_u64(&j, NULL, 1000 + (uint64_t)i);
    rt_json_arr_end(&j);
    assert_int_equal(rt_json_finish(&j), RT_ERR);
    assert_true(j.cap <= 4096);
    rt_json_free(&j);
    assert_null(j.buf);
}

static void test_rollback(void **state)
{
    (void)state;
    char buf[40];
    rt_json_t j;
    rt_json_init(&j, buf, sizeof buf);
    rt_json_obj(&j, NULL);
    rt_json_u64(&j, "a", 1);
    rt_json_mark_t m = rt_json_mark(&j);
    rt_json_obj(&j, "sec"); /* a section that overflows the buffer half-way */
    rt_json_str(&j, "big", "0123456789012345678901234567890123456789");
    assert_true(j.err);
    rt_json_rollback(&j, m);
    assert_false(j.err);
    rt_json_obj(&j, "sec"); /* replaced by a short one: commas still right */
    rt_json_str(&j, "error", "x");
    rt_json_obj_end(&j);
    rt_json_u64(&j, "b", 2);
    rt_json_obj_end(&j);
    assert_string_equal(doc(&j), "{\"a\":1,\"sec\":{\"error\":\"x\"},\"b\":2}");

    /* a mark at the very start: back to an empty writer */
    rt_json_init(&j, buf, sizeof buf);
    m = rt_json_mark(&j);
    rt_json_arr(&j, NULL);
    rt_json_rollback(&j, m);
    assert_int_equal(rt_json_finish(&j), RT_ERR);
    rt_json_u64(&j, NULL, 5);
    assert_string_equal(doc(&j), "5");
}

/* ---- reader ------------------------------------------------------------------ */

static void test_parse_round_trip(void **state)
{
    (void)state;
    char buf[512], s[64];
    rt_json_t j;
    rt_json_tok_t tok[64];
    rt_json_doc_t d;
    char err[128];
    uint64_t u;
    int64_t i;
    double x;
    bool b;

    rt_json_init(&j, buf, sizeof buf);
    rt_json_obj(&j, NULL);
    rt_json_str(&j, "name", "a\"b\\c\n\x01 caf\xc3\xa9");
    rt_json_obj(&j, "memory");
    rt_json_u64(&j, "used", 123);
    rt_json_u64(&j, "budget", UINT64_MAX);
    rt_json_obj_end(&j);
    rt_json_arr(&j, "pairs");
    rt_json_obj(&j, NULL);
    rt_json_str(&j, "id", "p0");
    rt_json_arr(&j, "deep");
    rt_json_arr(&j, NULL);
    rt_json_arr_end(&j);
    rt_json_arr_end(&j);
    rt_json_obj_end(&j);
    rt_json_obj(&j, NULL);
    rt_json_str(&j, "id", "p1");
    rt_json_i64(&j, "off", -5);
    rt_json_dbl(&j, "prog", 0.5);
    rt_json_bool(&j, "drained", true);
    rt_json_obj_end(&j);
    rt_json_arr_end(&j);
    rt_json_null(&j, "none");
    rt_json_obj_end(&j);
    assert_int_equal(rt_json_finish(&j), RT_OK);

    assert_int_equal(rt_json_parse(&d, j.buf, j.len, tok, 64, err, sizeof err), RT_OK);
    assert_int_equal(rt_json_type(&d, 0), RT_JSON_T_OBJ);
    assert_int_equal(rt_json_size(&d, 0), 4);
    assert_int_equal(rt_json_get_str(&d, rt_json_get(&d, 0, "name"), s, sizeof s), RT_OK);
    assert_string_equal(s, "a\"b\\c\n\x01 caf\xc3\xa9");
    assert_int_equal(rt_json_get_u64(&d, rt_json_get(&d, rt_json_get(&d, 0, "memory"), "used"),
                                     &u), RT_OK);
    assert_int_equal(u, 123);
    assert_int_equal(rt_json_get_u64(&d, rt_json_get(&d, rt_json_get(&d, 0, "memory"), "budget"),
                                     &u), RT_OK);
    assert_true(u == UINT64_MAX);
    int pairs = rt_json_get(&d, 0, "pairs");
    assert_int_equal(rt_json_size(&d, pairs), 2);
    int p1 = rt_json_at(&d, pairs, 1); /* found by skipping p0's nested arrays */
    assert_true(rt_json_streq(&d, rt_json_get(&d, p1, "id"), "p1"));
    assert_false(rt_json_streq(&d, rt_json_get(&d, p1, "id"), "p0"));
    assert_int_equal(rt_json_get_i64(&d, rt_json_get(&d, p1, "off"), &i), RT_OK);
    assert_int_equal(i, -5);
    assert_int_equal(rt_json_get_dbl(&d, rt_json_get(&d, p1, "prog"), &x), RT_OK);
    assert_true(x == 0.5);
    assert_int_equal(rt_json_get_bool(&d, rt_json_get(&d, p1, "drained"), &b), RT_OK);
    assert_true(b);
    assert_int_equal(rt_json_type(&d, rt_json_get(&d, 0, "none")), RT_JSON_T_NULL);
    assert_int_equal(rt_json_get(&d, 0, "missing"), -1);
    assert_int_equal(rt_json_at(&d, pairs, 2), -1);
    /* -1 chains through lookups, and wrong types are errors */
    assert_int_equal(rt_json_get(&d, rt_json_get(&d, 0, "missing"), "x"), -1);
    assert_int_equal(rt_json_get_u64(&d, -1, &u), RT_ERR);
    assert_int_equal(rt_json_get_u64(&d, rt_json_get(&d, p1, "off"), &u), RT_ERR);
    assert_int_equal(rt_json_get_u64(&d, rt_json_get(&d, p1, "prog"), &u), RT_ERR);
    assert_int_equal(rt_json_get_str(&d, rt_json_get(&d, 0, "memory"), s, sizeof s), RT_ERR);
    /* a string that does not fit the caller's buffer */
    assert_int_equal(rt_json_get_str(&d, rt_json_get(&d, 0, "name"), s, 4), RT_ERR);
}

static void test_parse_unescape(void **state)
{
    (void)state;
    static const char text[] =
        " {\"k\\u0065y\" : \"\\u00e9\\ud83d\\ude00\\/\\t\\ud800x\"} \n";
    rt_json_tok_t tok[8];
    rt_json_doc_t d;
    char s[32];
    assert_int_equal(rt_json_parse(&d, text, strlen(text), tok, 8, NULL, 0), RT_OK);
    int v = rt_json_get(&d, 0, "key"); /* an escaped member name still matches */
    assert_int_equal(rt_json_get_str(&d, v, s, sizeof s), RT_OK);
    assert_string_equal(s, "\xc3\xa9\xf0\x9f\x98\x80/\t\xef\xbf\xbdx");
}

static void expect_bad(const char *text, const char *why)
{
    rt_json_tok_t tok[64];
    rt_json_doc_t d;
    char err[128];
    if (rt_json_parse(&d, text, strlen(text), tok, 64, err, sizeof err) != RT_ERR)
        fail_msg("accepted: %s", text);
    if (!strstr(err, why))
        fail_msg("%s: reason '%s', want '%s'", text, err, why);
}

static void test_parse_rejects(void **state)
{
    (void)state;
    expect_bad("", "unexpected end");
    expect_bad("[1,]", "unexpected character");
    expect_bad("{\"a\":1,}", "member name");
    expect_bad("{\"a\" 1}", "':'");
    expect_bad("[1 2]", "',' or ']'");
    expect_bad("01", "trailing");
    expect_bad("1.", "bad number");
    expect_bad("-", "bad number");
    expect_bad("1e", "bad number");
    expect_bad("\"abc", "unterminated");
    expect_bad("\"a\nb\"", "control character");
    expect_bad("\"\\x\"", "bad escape");
    expect_bad("\"\\u12g4\"", "bad \\u");
    expect_bad("\"\xff\"", "invalid UTF-8");
    expect_bad("tru", "unexpected character");
    expect_bad("{} {}", "trailing");
    expect_bad("'a'", "unexpected character");

    char deep[2 * RT_JSON_DEPTH + 4];
    size_t n = 0;
    for (unsigned i = 0; i <= RT_JSON_DEPTH; i++)
        deep[n++] = '[';
    for (unsigned i = 0; i <= RT_JSON_DEPTH; i++)
        deep[n++] = ']';
    deep[n] = '\0';
    expect_bad(deep, "too deep");
    deep[n - 1] = '\0'; /* one level less is fine */
    rt_json_tok_t tok[64];
    rt_json_doc_t d;
    assert_int_equal(rt_json_parse(&d, deep + 1, strlen(deep + 1), tok, 64, NULL, 0), RT_OK);

    /* counting: the number of tokens needed, and no lookups */
    assert_int_equal(rt_json_parse(&d, "{\"a\":[1,2],\"b\":null}", 20, NULL, 0, NULL, 0), RT_OK);
    assert_int_equal(d.ntok, 7); /* the object, 2 keys, the array, 2 numbers, null */
    assert_int_equal(rt_json_get(&d, 0, "a"), -1);
    assert_int_equal(rt_json_parse(&d, "[1,]", 4, NULL, 0, NULL, 0), RT_ERR);

    /* more values than tokens */
    assert_int_equal(rt_json_parse(&d, "[1,2,3]", 7, tok, 3, NULL, 0), RT_ERR);
    assert_int_equal(rt_json_parse(&d, "[1,2,3]", 7, tok, 4, NULL, 0), RT_OK);
}

static void test_b64(void **state)
{
    (void)state;
    static const char *const golden[] = {"\"\"", "\"AA==\"", "\"AAE=\"", "\"AAEC\"",
                                         "\"AAECAw==\""};
    uint8_t data[300], back[300];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (uint8_t)(i * 131 + 7);
    for (size_t n = 0; n < 5; n++) { /* RFC 4648 padding, on 00 01 02 03 */
        uint8_t z[4] = {0, 1, 2, 3};
        char buf[32];
        rt_json_t j;
        rt_json_init(&j, buf, sizeof buf);
        rt_json_b64(&j, NULL, z, n);
        assert_string_equal(doc(&j), golden[n]);
    }
    for (size_t n = 0; n <= sizeof data; n += 37) {
        char buf[512];
        rt_json_t j;
        rt_json_tok_t tok[4];
        rt_json_doc_t d;
        size_t got = 0;
        rt_json_init(&j, buf, sizeof buf);
        rt_json_obj(&j, NULL);
        rt_json_b64(&j, "data", data, n);
        rt_json_obj_end(&j);
        assert_int_equal(rt_json_parse(&d, j.buf, j.len, tok, 4, NULL, 0), RT_OK);
        assert_int_equal(rt_json_get_b64(&d, rt_json_get(&d, 0, "data"), back, sizeof back, &got),
                         RT_OK);
        assert_int_equal(got, n);
        assert_memory_equal(back, data, n);
    }
    rt_json_tok_t tok[4];
    rt_json_doc_t d;
    size_t got;
    static const char *const bad[] = {"\"AAE\"", "\"A=AA\"", "\"AA=A\"", "\"AA==AAAA\"",
                                      "\"AA*A\""};
    for (size_t i = 0; i < 5; i++) {
        assert_int_equal(rt_json_parse(&d, bad[i], strlen(bad[i]), tok, 4, NULL, 0), RT_OK);
        assert_int_equal(rt_json_get_b64(&d, 0, back, sizeof back, &got), RT_ERR);
    }
    /* output too small */
    assert_int_equal(rt_json_parse(&d, "\"AAECAw==\"", 10, tok, 4, NULL, 0), RT_OK);
    assert_int_equal(rt_json_get_b64(&d, 0, back, 3, &got), RT_ERR);
    assert_int_equal(rt_json_get_b64(&d, 0, back, 4, &got), RT_OK);
    assert_int_equal(got, 4);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_escape_specials),
        cmocka_unit_test(test_escape_utf8),
        cmocka_unit_test(test_escape_truncates),
        cmocka_unit_test(test_nesting),
        cmocka_unit_test(test_numbers),
        cmocka_unit_test(test_scalar_top_level),
        cmocka_unit_test(test_misuse),
        cmocka_unit_test(test_overflow),
        cmocka_unit_test(test_alloc_grows_to_max),
        cmocka_unit_test(test_rollback),
        cmocka_unit_test(test_parse_round_trip),
        cmocka_unit_test(test_parse_unescape),
        cmocka_unit_test(test_parse_rejects),
        cmocka_unit_test(test_b64),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
