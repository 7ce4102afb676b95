/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * test_nodetrace.c: unit tests of nodetrace's reader, merge, filters, time
 * format and line outputs (tools/nodetrace/), without the command line.
 *
 * The viewer is what people trust when something went wrong, so these tests
 * pin down what it must never get wrong: where a damaged file stops, the
 * order of a merge (ties included), which records a filter keeps, the exact
 * line and JSON formats, clock offsets, and a followed file that grows by
 * partial records and rotates. The tool's .c files are included here because
 * the Makefile links tools only into their own binary.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <pb_encode.h>

#include "tools/nodetrace/nt_filter.c"
#include "tools/nodetrace/nt_out.c"
#include "tools/nodetrace/nt_read.c"
#include "tools/nodetrace/nt_set.c"

/* ---- helpers ------------------------------------------------------------------------ */

static ss_TraceEvent ev_make(uint64_t t, const char *node, uint64_t seq, const char *actor,
                             const char *machine, const char *from, const char *event,
                             const char *to, bool refused)
{
    ss_TraceEvent ev = ss_TraceEvent_init_zero;
    ev.time_us = t;
    ev.seq = seq;
    snprintf(ev.node, sizeof ev.node, "%s", node);
    snprintf(ev.actor, sizeof ev.actor, "%s", actor);
    snprintf(ev.machine, sizeof ev.machine, "%s", machine);
    snprintf(ev.from, sizeof ev.from, "%s", from);
    snprintf(ev.event, sizeof ev.event, "%s", event);
    snprintf(ev.to, sizeof ev.to, "%s", to);
    ev.refused = refused;
    return ev;
}

/* append one delimited record to @buf at *@len */
static void put(uint8_t *buf, size_t cap, size_t *len, const ss_TraceEvent *ev)
{
    pb_ostream_t os = pb_ostream_from_buffer(buf + *len, cap - *len);
    assert_true(pb_encode_delimited(&os, ss_TraceEvent_fields, ev));
    *len += os.bytes_written;
}

/* what @fn printed for record 0 of @s */
static char *capture(void (*fn)(FILE *, const nt_set_t *, const nt_rec_t *, bool),
                     const nt_set_t *s, bool color)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    fn(f, s, &s->rec[0], color);
    fclose(f);
    return text;
}

static void print_json_adapter(FILE *f, const nt_set_t *s, const nt_rec_t *r, bool color)
{
    (void)color;
    nt_print_json(f, s, r);
}

/* ---- decoder ------------------------------------------------------------------------ */

static void test_decode_roundtrip_and_every_truncation(void **state)
{
    (void)state;
    uint8_t buf[1024];
    size_t len = 0, used = 0;
    char why[128];
    ss_TraceEvent in = ev_make(1795693335801043u, "primary", 7, "link:secondary", "link",
                               "hello", "hello_ok", "up", false), out;
    in.clock_offset_us = -123;
    snprintf(in.peer, sizeof in.peer, "secondary");
    put(buf, sizeof buf, &len, &in);
    assert_int_equal(nt_decode_next(buf, len, &used, &out, why, sizeof why), RT_OK);
    assert_int_equal(used, len);
    assert_int_equal(out.time_us, in.time_us);
    assert_int_equal(out.seq, 7);
    assert_int_equal(out.clock_offset_us, -123);
    assert_string_equal(out.actor, "link:secondary");
    assert_string_equal(out.peer, "secondary");
    /* every proper prefix is "need more", never a record or an error */
    for (size_t n = 0; n < len; n++)
        assert_int_equal(nt_decode_next(buf, n, &used, &out, why, sizeof why), RT_AGAIN);
}

static void test_decode_corrupt(void **state)
{
    (void)state;
    size_t used;
    char why[128];
    ss_TraceEvent ev;
    const uint8_t huge[] = {0xff, 0xff, 0x03}; /* length 65535 */
    assert_int_equal(nt_decode_next(huge, sizeof huge, &used, &ev, why, sizeof why), RT_ERR);
    assert_non_null(strstr(why, "length 65535"));
    const uint8_t badvar[11] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
    assert_int_equal(nt_decode_next(badvar, sizeof badvar, &used, &ev, why, sizeof why), RT_ERR);
    /* field 2 (node, a string) with a length running past the record */
    const uint8_t badbody[] = {0x03, 0x12, 0x09, 'a'};
    assert_int_equal(nt_decode_next(badbody, sizeof badbody, &used, &ev, why, sizeof why), RT_ERR);
    assert_non_null(strstr(why, "corrupt record"));
    /* a node name longer than trace.options allows (64 with the NUL) */
    uint8_t longname[80] = {2 + 70, 0x12, 70};
    memset(longname + 3, 'n', 70);
    assert_int_equal(nt_decode_next(longname, 73, &used, &ev, why, sizeof why), RT_ERR);
}

static void test_load_buf_stops_where_damaged(void **state)
{
    (void)state;
    uint8_t buf[4096];
    size_t len = 0, starts[4];
    nt_set_t s;
    nt_stop_t st;
    for (int i = 0; i < 4; i++) {
        ss_TraceEvent ev = ev_make(100 + (uint64_t)i, "n", (uint64_t)i + 1, "a", "m", "x", "e", "y",
                                   false);
        starts[i] = len;
        put(buf, sizeof buf, &len, &ev);
    }
    /* truncated inside the last record */
    assert_int_equal(nt_set_init(&s), RT_OK);
    assert_int_equal(nt_load_buf(&s, buf, len - 2, &st), RT_OK);
    assert_true(st.stopped);
    assert_int_equal(st.at, starts[3]);
    assert_int_equal(st.records, 3);
    assert_int_equal(s.n, 3);
    assert_string_equal(st.why, "truncated record");
    nt_set_free(&s);
    /* garbage over the third record's length */
    buf[starts[2]] = 0xff;
    buf[starts[2] + 1] = 0x7f;
    assert_int_equal(nt_set_init(&s), RT_OK);
    assert_int_equal(nt_load_buf(&s, buf, len, &st), RT_OK);
    assert_true(st.stopped);
    assert_int_equal(st.at, starts[2]);
    assert_int_equal(st.records, 2);
    assert_non_null(strstr(st.why, "corrupt record"));
    nt_set_free(&s);
    /* an intact buffer reads whole */
    assert_int_equal(nt_set_init(&s), RT_OK);
    assert_int_equal(nt_load_buf(&s, buf, starts[2], &st), RT_OK);
    assert_false(st.stopped);
    assert_int_equal(s.n, 2);
    nt_set_free(&s);
}

/* ---- set: strings, merge, offsets -------------------------------------------------- */

static void test_strings_intern(void **state)
{
    (void)state;
    nt_set_t s;
    char name[32];
    assert_int_equal(nt_set_init(&s), RT_OK);
    assert_int_equal(nt_str_intern(&s.str, "", 0), NT_NO_STR);
    uint32_t a = nt_str_intern(&s.str, "agent", 5);
    assert_int_equal(nt_str_intern(&s.str, "agentX", 5), a); /* only @len bytes count */
    for (int i = 0; i < 20000; i++) { /* grows the table and the arena several times */
        snprintf(name, sizeof name, "s%d", i);
        nt_str_intern(&s.str, name, strlen(name));
    }
    assert_int_equal(nt_str_intern(&s.str, "agent", 5), a);
    assert_string_equal(nt_str(&s, a), "agent");
    assert_int_equal(nt_str_find(&s, "s19999"), nt_str_intern(&s.str, "s19999", 6));
    assert_string_equal(nt_str(&s, nt_str_find(&s, "s123")), "s123");
    assert_int_equal(nt_str_find(&s, "nope"), UINT32_MAX);
    assert_string_equal(nt_str(&s, 999999), "");
    nt_set_free(&s);
}

static void test_merge_by_time_with_stable_ties(void **state)
{
    (void)state;
    nt_set_t s;
    assert_int_equal(nt_set_init(&s), RT_OK);
    /* file of node "secondary" first, then "primary": arrival order is not time order */
    ss_TraceEvent in[] = {
        ev_make(10, "secondary", 1, "cs", "pair", "a", "e1", "b", false),
        ev_make(30, "secondary", 2, "cs", "pair", "b", "e2", "c", false),
        ev_make(30, "secondary", 3, "cs", "pair", "c", "e3", "d", false),
        ev_make(20, "primary", 1, "agent", "pair", "a", "p1", "b", false),
        ev_make(30, "primary", 2, "agent", "pair", "b", "p2", "c", false),
        ev_make(5, "primary", 3, "agent", "pair", "c", "p3", "d", false),
    };
    for (size_t i = 0; i < sizeof in / sizeof in[0]; i++)
        assert_int_equal(nt_set_add(&s, &in[i]), RT_OK);
    nt_set_sort(&s);
    /* time, then node name (primary < secondary), then seq */
    const char *want[] = {"p3", "e1", "p1", "p2", "e2", "e3"};
    for (size_t i = 0; i < 6; i++)
        assert_string_equal(nt_str(&s, s.rec[i].event), want[i]);
    /* same time, node and seq: arrival order decides */
    nt_set_free(&s);
    assert_int_equal(nt_set_init(&s), RT_OK);
    ss_TraceEvent d1 = ev_make(1, "n", 0, "a", "m", "x", "first", "y", false);
    ss_TraceEvent d2 = ev_make(1, "n", 0, "a", "m", "x", "second", "y", false);
    ss_TraceEvent d0 = ev_make(0, "n", 0, "a", "m", "x", "zero", "y", false);
    nt_set_add(&s, &d1);
    nt_set_add(&s, &d2);
    nt_set_add(&s, &d0);
    nt_set_sort(&s);
    assert_string_equal(nt_str(&s, s.rec[0].event), "zero");
    assert_string_equal(nt_str(&s, s.rec[1].event), "first");
    assert_string_equal(nt_str(&s, s.rec[2].event), "second");
    nt_set_free(&s);
}

static void test_offsets_and_adjust_clock(void **state)
{
    (void)state;
    nt_set_t s;
    nt_offset_t off[8];
    assert_int_equal(nt_set_init(&s), RT_OK);
    ss_TraceEvent e[] = {
        ev_make(1000, "primary", 1, "link:secondary", "link", "hello", "hello_ok", "up", false),
        ev_make(1500, "primary", 2, "link:secondary", "link", "up", "fail", "backoff", false),
        ev_make(2000, "secondary", 1, "link:primary", "link", "hello", "hello_ok", "up", false),
        ev_make(2100, "secondary", 2, "cs", "pair", "a", "go", "b", false),
    };
    e[0].clock_offset_us = 500; /* secondary's clock is 500 µs ahead of primary's */
    snprintf(e[0].peer, sizeof e[0].peer, "secondary");
    snprintf(e[1].peer, sizeof e[1].peer, "secondary"); /* offset 0: not a measurement */
    e[2].clock_offset_us = -500;
    snprintf(e[2].peer, sizeof e[2].peer, "primary");
    for (int i = 0; i < 4; i++)
        nt_set_add(&s, &e[i]);
    nt_set_sort(&s);
    size_t n = nt_set_offsets(&s, off, 8);
    assert_int_equal(n, 2);
    assert_string_equal(nt_str(&s, off[0].node), "primary");
    assert_string_equal(nt_str(&s, off[0].peer), "secondary");
    assert_int_equal(off[0].offset_us, 500);
    assert_int_equal(off[1].offset_us, -500);

    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    nt_print_offsets(f, &s);
    fclose(f);
    assert_string_equal(text, "# node primary: clock offset to secondary +500 us\n"
                              "# node secondary: clock offset to primary -500 us\n");
    free(text);

    /* into primary's clock (it recorded first): secondary's times move back 500 µs */
    assert_int_equal(nt_set_adjust_clock(&s), 1);
    assert_int_equal(s.rec[0].time_us, 1000);
    assert_int_equal(s.rec[1].time_us, 1500);
    assert_string_equal(nt_str(&s, s.rec[2].node), "secondary");
    assert_int_equal(s.rec[2].time_us, 1500);
    assert_int_equal(s.rec[3].time_us, 1600);
    /* ties after the shift: node name orders them */
    assert_string_equal(nt_str(&s, s.rec[1].node), "primary");
    nt_set_free(&s);
}

/* ---- filters and time ---------------------------------------------------------------- */

static void test_filters(void **state)
{
    (void)state;
    nt_set_t s;
    assert_int_equal(nt_set_init(&s), RT_OK);
    ss_TraceEvent a = ev_make(100, "primary", 1, "link:secondary", "link", "x", "e", "y", false);
    ss_TraceEvent b = ev_make(200, "primary", 2, "agent", "pair", "x", "e", "y", false);
    ss_TraceEvent c = ev_make(300, "secondary", 1, "mt:pair-1", "pair", "x", "e", "y", true);
    snprintf(b.pair, sizeof b.pair, "pair-0");
    snprintf(c.pair, sizeof c.pair, "pair-1");
    nt_set_add(&s, &a);
    nt_set_add(&s, &b);
    nt_set_add(&s, &c);
    nt_filter_t f;
#define KEEPS(x, y, z)                                   \
    do {                                                 \
        assert_int_equal(nt_filter_match(&s, &s.rec[0], &f), x); \
        assert_int_equal(nt_filter_match(&s, &s.rec[1], &f), y); \
        assert_int_equal(nt_filter_match(&s, &s.rec[2], &f), z); \
    } while (0)
    memset(&f, 0, sizeof f);
    KEEPS(1, 1, 1);
    f.pair = "pair-0";
    KEEPS(0, 1, 0);
    memset(&f, 0, sizeof f);
    f.actor = "link:*";
    KEEPS(1, 0, 0);
    memset(&f, 0, sizeof f);
    f.machine = "pair";
    f.node = "secondary";
    KEEPS(0, 0, 1);
    memset(&f, 0, sizeof f);
    f.has_since = true;
    f.since_us = 200;
    KEEPS(0, 1, 1);
    f.has_until = true;
    f.until_us = 200;
    KEEPS(0, 1, 0);
#undef KEEPS
    nt_set_free(&s);
}

static void test_parse_and_format_time(void **state)
{
    (void)state;
    uint64_t t, now = 1795693335000000u; /* 2026-11-26T11:42:15Z */
    char out[40];
    assert_int_equal(nt_parse_time("2026-11-26T11:45:01.123456Z", now, &t), RT_OK);
    nt_format_time(t, out, sizeof out);
    assert_string_equal(out, "2026-11-26T11:45:01.123456Z");
    assert_int_equal(nt_parse_time("2026-11-26 11:45:01.5", now, &t), RT_OK);
    nt_format_time(t, out, sizeof out);
    assert_string_equal(out, "2026-11-26T11:45:01.500000Z");
    assert_int_equal(nt_parse_time("2026-11-26T11:45", now, &t), RT_OK);
    nt_format_time(t, out, sizeof out);
    assert_string_equal(out, "2026-11-26T11:45:00.000000Z");
    assert_int_equal(nt_parse_time("2026-11-26", now, &t), RT_OK);
    nt_format_time(t, out, sizeof out);
    assert_string_equal(out, "2026-11-26T00:00:00.000000Z");
    assert_int_equal(nt_parse_time("1970-01-01T00:00:00Z", now, &t), RT_OK);
    assert_int_equal(t, 0);
    assert_int_equal(nt_parse_time("2000-02-29T12:00:00Z", now, &t), RT_OK);
    assert_int_equal(t, 951825600ull * 1000000u);
    assert_int_equal(nt_parse_time("-5m", now, &t), RT_OK);
    assert_int_equal(t, now - 300000000u);
    assert_int_equal(nt_parse_time("-90s", now, &t), RT_OK);
    assert_int_equal(t, now - 90000000u);
    assert_int_equal(nt_parse_time("-2h", now, &t), RT_OK);
    assert_int_equal(t, now - 7200000000u);
    assert_int_equal(nt_parse_time("-500ms", now, &t), RT_OK);
    assert_int_equal(t, now - 500000u);
    assert_int_equal(nt_parse_time("now", now, &t), RT_OK);
    assert_int_equal(t, now);
    assert_int_equal(nt_parse_time("@1795693335.25", now, &t), RT_OK);
    assert_int_equal(t, 1795693335250000u);
    const char *bad[] = {"", "yesterday", "2026-13-01", "2026-11-26T25:00", "2026-11-26X",
                         "-5x", "-", "-m", "2026-11-26T11:45:01.", "@", "@x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(nt_parse_time(bad[i], now, &t), RT_ERR);
}

/* ---- outputs ---------------------------------------------------------------------------- */

static void test_line_formats(void **state)
{
    (void)state;
    nt_set_t s;
    char *text;
    assert_int_equal(nt_set_init(&s), RT_OK);
    ss_TraceEvent ok = ev_make(1795693501123456u, "primary", 4, "link:secondary", "link",
                               "hello", "hello_ok", "up", false);
    snprintf(ok.detail, sizeof ok.detail, "peer secondary v1");
    nt_set_add(&s, &ok);
    text = capture(nt_print_line, &s, false);
    assert_string_equal(text, "2026-11-26T11:45:01.123456Z primary link:secondary link hello -> up "
                              "hello_ok peer secondary v1\n");
    free(text);
    text = capture(nt_print_line, &s, true);
    assert_non_null(strstr(text, "\033["));         /* coloured */
    assert_non_null(strstr(text, "hello -> up"));
    free(text);

    s.rec[0].refused = true;
    s.rec[0].detail = NT_NO_STR;
    s.rec[0].actor = NT_NO_STR;
    text = capture(nt_print_line, &s, false);
    assert_string_equal(text, "2026-11-26T11:45:01.123456Z primary - link hello -x hello_ok (refused)\n");
    free(text);
    text = capture(nt_print_line, &s, true);
    assert_non_null(strstr(text, "\033[1;31mhello -x hello_ok (refused)"));
    free(text);
    /* control characters never reach the terminal raw: one record, one line */
    ss_TraceEvent nasty = ok;
    snprintf(nasty.detail, sizeof nasty.detail, "two\nlines \033[2J");
    nt_set_add(&s, &nasty);
    s.rec[0] = s.rec[1];
    text = capture(nt_print_line, &s, false);
    assert_non_null(strstr(text, " hello_ok two\\x0alines \\x1b[2J\n"));
    assert_ptr_equal(strchr(text, '\n'), text + strlen(text) - 1);
    free(text);
    nt_set_free(&s);
}

static void test_json(void **state)
{
    (void)state;
    nt_set_t s;
    char *text;
    assert_int_equal(nt_set_init(&s), RT_OK);
    ss_TraceEvent ev = ev_make(1795693501123456u, "pri\"mary", 9, "a\\b", "link", "x", "e", "y",
                               true);
    snprintf(ev.detail, sizeof ev.detail, "tab\there\nnl \x01 caf\xc3\xa9 cut\xc3");
    snprintf(ev.pair, sizeof ev.pair, "pair-0");
    snprintf(ev.peer, sizeof ev.peer, "secondary");
    ev.clock_offset_us = -42;
    nt_set_add(&s, &ev);
    text = capture(print_json_adapter, &s, false);
    assert_string_equal(
        text, "{\"time_us\":1795693501123456,\"time\":\"2026-11-26T11:45:01.123456Z\","
              "\"node\":\"pri\\\"mary\",\"actor\":\"a\\\\b\",\"machine\":\"link\",\"from\":\"x\","
              "\"event\":\"e\",\"to\":\"y\",\"detail\":\"tab\\there\\nnl \\u0001 caf\xc3\xa9 "
              "cut\\ufffd\",\"refused\":true,\"peer\":\"secondary\",\"pair\":\"pair-0\","
              "\"clock_offset_us\":-42,\"seq\":9}\n");
    free(text);
    /* the HTML variant never lets "</script>" through */
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    nt_json_str_html(f, "</script><b>&");
    fclose(f);
    assert_string_equal(text, "\"\\u003c/script\\u003e\\u003cb\\u003e\\u0026\"");
    free(text);
    nt_set_free(&s);
}

/* ---- follow ------------------------------------------------------------------------------ */

static void write_bytes(const char *path, const uint8_t *p, size_t n, bool append)
{
    int fd = open(path, O_WRONLY | O_CREAT | (append ? O_APPEND : O_TRUNC), 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, p, n), (ssize_t)n);
    close(fd);
}

static void test_follow_partial_records_and_rotation(void **state)
{
    (void)state;
    char dir[] = "/tmp/test_nodetrace.XXXXXX", path[256], rot[300];
    uint8_t buf[2048];
    size_t len = 0, r1, r2;
    nt_set_t s;
    nt_follow_t f;
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/node.trace", dir);
    snprintf(rot, sizeof rot, "%s.1", path);
    ss_TraceEvent e[5];
    for (int i = 0; i < 5; i++) {
        char ev[16];
        snprintf(ev, sizeof ev, "e%d", i);
        e[i] = ev_make(10 + (uint64_t)i, "n", (uint64_t)i + 1, "a", "m", "x", ev, "y", false);
    }
    assert_int_equal(nt_set_init(&s), RT_OK);
    /* the file does not exist yet */
    assert_int_equal(nt_follow_open(&f, path, 0), RT_OK);
    assert_int_equal(nt_follow_poll(&f, &s), 0);
    /* one record and a half */
    put(buf, sizeof buf, &len, &e[0]);
    r1 = len;
    put(buf, sizeof buf, &len, &e[1]);
    r2 = len;
    write_bytes(path, buf, r1 + 3, false);
    assert_int_equal(nt_follow_poll(&f, &s), 1);
    assert_int_equal(nt_follow_poll(&f, &s), 0); /* the half stays pending */
    write_bytes(path, buf + r1 + 3, r2 - r1 - 3, true);
    assert_int_equal(nt_follow_poll(&f, &s), 1);
    /* the writer appends e2 and rotates: e3 goes to a new file */
    len = 0;
    put(buf, sizeof buf, &len, &e[2]);
    write_bytes(path, buf, len, true);
    assert_int_equal(rename(path, rot), 0);
    len = 0;
    put(buf, sizeof buf, &len, &e[3]);
    write_bytes(path, buf, len, false);
    assert_int_equal(nt_follow_poll(&f, &s), 2);
    /* removed and made again (a node started over): the new file from its start */
    assert_int_equal(unlink(path), 0);
    len = 0;
    put(buf, sizeof buf, &len, &e[4]);
    write_bytes(path, buf, len, false);
    assert_int_equal(nt_follow_poll(&f, &s), 1);
    assert_int_equal(s.n, 5);
    assert_string_equal(nt_str(&s, s.rec[4].event), "e4");
    const char *want[] = {"e0", "e1", "e2", "e3"};
    for (int i = 0; i < 4; i++)
        assert_string_equal(nt_str(&s, s.rec[i].event), want[i]);
    nt_follow_close(&f);
    nt_set_free(&s);

    /* rotated siblings, oldest first, stopping at the first gap */
    char *names[8];
    char p2[300], p4[300];
    snprintf(p2, sizeof p2, "%s.2", path);
    snprintf(p4, sizeof p4, "%s.4", path);
    write_bytes(p2, buf, 1, false);
    write_bytes(p4, buf, 1, false);
    size_t n = nt_rotated(path, names, 8);
    assert_int_equal(n, 2);
    assert_string_equal(names[0], p2);
    assert_string_equal(names[1], rot);
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    unlink(p2);
    unlink(p4);
    unlink(rot);
    unlink(path);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decode_roundtrip_and_every_truncation),
        cmocka_unit_test(test_decode_corrupt),
        cmocka_unit_test(test_load_buf_stops_where_damaged),
        cmocka_unit_test(test_strings_intern),
        cmocka_unit_test(test_merge_by_time_with_stable_ties),
        cmocka_unit_test(test_offsets_and_adjust_clock),
        cmocka_unit_test(test_filters),
        cmocka_unit_test(test_parse_and_format_time),
        cmocka_unit_test(test_line_formats),
        cmocka_unit_test(test_json),
        cmocka_unit_test(test_follow_partial_records_and_rotation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
