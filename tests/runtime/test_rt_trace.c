/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * test_rt_trace.c: the trace file writer and rt_chart_trace()
 * (runtime/rt_trace.c, rt_chart.c).
 *
 * Records written are read back with nanopb's delimited decoder, as
 * nodetrace does; rotation leaves path.1 .. path.keep, each readable on its
 * own and in sequence; a torn last record leaves the earlier ones readable;
 * strings are cut to the proto sizes at a UTF-8 boundary; a full disk is
 * survived and logged once; a chart refusal is traced and logged on one line.
 */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <pb_decode.h>

#include "rt.h"
#include "trace.pb.h"

static char dir[64];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/test_rt_trace.XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void path_of(char *out, size_t len, const char *name)
{
    snprintf(out, len, "%s/%s", dir, name);
}

/* decode every whole record of @path into @ev (at most @max); @return the
 * count, and in *@torn whether bytes were left that are not a whole record */
static unsigned read_all(const char *path, ss_TraceEvent *ev, unsigned max, bool *torn)
{
    static uint8_t buf[1 << 20];
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    ssize_t n = read(fd, buf, sizeof buf);
    close(fd);
    assert_true(n >= 0);
    pb_istream_t is = pb_istream_from_buffer(buf, (size_t)n);
    unsigned count = 0;
    *torn = false;
    while (is.bytes_left > 0) {
        ss_TraceEvent e = ss_TraceEvent_init_zero;
        if (!pb_decode_ex(&is, ss_TraceEvent_fields, &e, PB_DECODE_DELIMITED)) {
            *torn = true;
            break;
        }
        if (count < max)
            ev[count] = e;
        count++;
    }
    return count;
}

static off_t file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? st.st_size : -1;
}

static void emit_n(rt_trace_t *t, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        char detail[32];
        snprintf(detail, sizeof detail, "rec %u", i);
        rt_trace_rec_t r = {.actor = "link:b", .machine = "link", .from = "up",
                            .event = "hb", .to = "up", .detail = detail};
        rt_trace_emit(t, &r);
    }
}

static void test_write_read_back(void **state)
{
    (void)state;
    char p[128];
    path_of(p, sizeof p, "trace.pb");
    rt_trace_t *t = rt_trace_open(p, "primary", 1u << 20, 3);
    assert_non_null(t);
    uint64_t t0 = rt_now_us();
    emit_n(t, 9);
    rt_trace_rec_t r = {.actor = "agent", .machine = "pair", .from = "protected",
                        .event = "pause", .to = NULL, .detail = NULL, .peer = "secondary",
                        .pair = "p1", .clock_offset_us = -1234, .refused = true};
    rt_trace_emit(t, &r);
    rt_trace_close(t);
    struct stat st;
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0640);

    ss_TraceEvent ev[16];
    bool torn;
    assert_int_equal(read_all(p, ev, 16, &torn), 10);
    assert_false(torn);
    for (unsigned i = 0; i < 9; i++) {
        char detail[32];
        snprintf(detail, sizeof detail, "rec %u", i);
        assert_int_equal(ev[i].seq, i);
        assert_string_equal(ev[i].node, "primary");
        assert_string_equal(ev[i].actor, "link:b");
        assert_string_equal(ev[i].machine, "link");
        assert_string_equal(ev[i].event, "hb");
        assert_string_equal(ev[i].detail, detail);
        assert_false(ev[i].refused);
        assert_true(ev[i].time_us >= t0 && ev[i].time_us <= rt_now_us());
    }
    assert_int_equal(ev[9].seq, 9);
    assert_true(ev[9].refused);
    assert_string_equal(ev[9].to, "");
    assert_string_equal(ev[9].detail, "");
    assert_string_equal(ev[9].peer, "secondary");
    assert_string_equal(ev[9].pair, "p1");
    assert_int_equal(ev[9].clock_offset_us, -1234);

    /* reopening appends; each record stays whole */
    t = rt_trace_open(p, "primary", 1u << 20, 3);
    emit_n(t, 2);
    rt_trace_close(t);
    assert_int_equal(read_all(p, ev, 16, &torn), 12);
    assert_false(torn);
}

static void test_truncation(void **state)
{
    (void)state;
    char p[128];
    path_of(p, sizeof p, "trunc.pb");
    rt_trace_t *t = rt_trace_open(p, "n", 0, 0);
    char longname[200];
    memset(longname, 'x', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    /* 40 x "é" (2 bytes each): 80 bytes for a 31-byte field */
    char accents[81];
    for (int i = 0; i < 40; i++)
        memcpy(accents + 2 * i, "\xc3\xa9", 2);
    accents[80] = '\0';
    char detail[600];
    memset(detail, 'd', sizeof detail - 1);
    detail[sizeof detail - 1] = '\0';
    rt_trace_rec_t r = {.actor = longname, .machine = accents, .from = "a", .event = "b",
                        .to = "c", .detail = detail};
    rt_trace_emit(t, &r);
    rt_trace_close(t);
    ss_TraceEvent ev[2];
    bool torn;
    assert_int_equal(read_all(p, ev, 2, &torn), 1);
    assert_false(torn);
    assert_int_equal(strlen(ev[0].actor), 63);
    assert_int_equal(strlen(ev[0].detail), 255);
    assert_int_equal(strlen(ev[0].machine), 30); /* 15 whole characters, not 31 bytes */
    assert_memory_equal(ev[0].machine, accents, 30);
}

static void test_rotation(void **state)
{
    (void)state;
    char p[128], p1[140], p2[140], p3[140];
    path_of(p, sizeof p, "rot.pb");
    snprintf(p1, sizeof p1, "%s.1", p);
    snprintf(p2, sizeof p2, "%s.2", p);
    snprintf(p3, sizeof p3, "%s.3", p);
    rt_trace_t *t = rt_trace_open(p, "n", 1000, 2);
    emit_n(t, 100); /* ~50 bytes each: several rotations */
    rt_trace_close(t);
    assert_true(file_size(p) > 0 && file_size(p) <= 1000);
    assert_true(file_size(p1) > 0 && file_size(p1) <= 1000);
    assert_true(file_size(p2) > 0 && file_size(p2) <= 1000);
    assert_int_equal(file_size(p3), -1); /* keep = 2 */
    /* oldest to newest: .2, .1, current; contiguous and ending at 99 */
    static ss_TraceEvent ev[3][100];
    bool torn;
    unsigned n2 = read_all(p2, ev[0], 100, &torn);
    assert_false(torn);
    unsigned n1 = read_all(p1, ev[1], 100, &torn);
    assert_false(torn);
    unsigned n0 = read_all(p, ev[2], 100, &torn);
    assert_false(torn);
    assert_true(n2 > 0 && n1 > 0 && n0 > 0);
    assert_int_equal(ev[0][n2 - 1].seq + 1, ev[1][0].seq);
    assert_int_equal(ev[1][n1 - 1].seq + 1, ev[2][0].seq);
    assert_int_equal(ev[2][n0 - 1].seq, 99);
    assert_true(n0 + n1 + n2 < 100); /* older ones were dropped */
}

static void test_torn_last_record(void **state)
{
    (void)state;
    char p[128];
    path_of(p, sizeof p, "torn.pb");
    rt_trace_t *t = rt_trace_open(p, "n", 0, 0);
    emit_n(t, 5);
    rt_trace_close(t);
    off_t sz = file_size(p);
    assert_int_equal(truncate(p, sz - 3), 0);
    ss_TraceEvent ev[8];
    bool torn;
    assert_int_equal(read_all(p, ev, 8, &torn), 4);
    assert_true(torn);
    assert_int_equal(ev[3].seq, 3);
}

/* run @fn with stderr going to a file; return what it wrote */
static void capture_stderr(void (*fn)(void *), void *arg, char *out, size_t len)
{
    char p[128];
    path_of(p, sizeof p, "stderr.txt");
    int fd = open(p, O_RDWR | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    int saved = dup(2);
    dup2(fd, 2);
    fn(arg);
    dup2(saved, 2);
    close(saved);
    ssize_t n = pread(fd, out, len - 1, 0);
    close(fd);
    out[n > 0 ? n : 0] = '\0';
}

static unsigned count_lines(const char *s, const char *needle)
{
    unsigned n = 0;
    for (const char *p = s; (p = strstr(p, needle)) != NULL; p++)
        n++;
    return n;
}

static void full_disk(void *arg)
{
    (void)arg;
    rt_trace_t *t = rt_trace_open("/dev/full", "n", 0, 0);
    assert_non_null(t);
    emit_n(t, 5); /* every write fails with ENOSPC */
    rt_trace_close(t);
}

static void test_full_disk(void **state)
{
    (void)state;
    char out[2048];
    capture_stderr(full_disk, NULL, out, sizeof out);
    /* one line for the first failure, one summary at close; not five */
    assert_int_equal(count_lines(out, "No space left on device"), 1);
    assert_int_equal(count_lines(out, "5 record(s) lost in total"), 1);
}

static void test_open_fails(void **state)
{
    (void)state;
    assert_null(rt_trace_open("/nonexistent-dir/x/trace.pb", "n", 0, 0));
}

/* ---- rt_chart_trace ------------------------------------------------------------ */

static void nop_dispatch(rt_actor_t *a, const rt_msg_t *m)
{
    (void)a;
    (void)m;
}

static void chart_steps(void *arg)
{
    rt_chart_t *c = arg;
    rt_log_setup("test", "n1", RT_LOG_INFO);
    rt_chart_trace(c, "connecting", "connected", "handshake");
    c->detail = "no hello yet";
    rt_chart_trace(c, "handshake", "hb_timeout", NULL);
    rt_log_setup("ss", NULL, RT_LOG_INFO);
}

static void test_chart_trace(void **state)
{
    (void)state;
    char p[128];
    path_of(p, sizeof p, "chart.pb");
    rt_node_t *node = rt_node_new("n1", NULL);
    assert_null(rt_node_trace(node));
    assert_int_equal(rt_node_set_trace(node, p, 1u << 20, 1), RT_OK);
    rt_actor_t a;
    assert_int_equal(rt_actor_init(&a, node, "link:secondary", nop_dispatch), RT_OK);
    rt_chart_t c = {.machine = "link", .actor = &a, .detail = "127.0.0.1:7400",
                    .peer = "secondary"};
    char out[1024];
    capture_stderr(chart_steps, &c, out, sizeof out);
    assert_string_equal(out, "test[n1]: warn: link:secondary: link chart in state handshake "
                             "refuses event hb_timeout\n");
    rt_actor_fini(&a);
    rt_node_free(node);

    ss_TraceEvent ev[4];
    bool torn;
    assert_int_equal(read_all(p, ev, 4, &torn), 2);
    assert_false(torn);
    assert_string_equal(ev[0].node, "n1");
    assert_string_equal(ev[0].actor, "link:secondary");
    assert_string_equal(ev[0].machine, "link");
    assert_string_equal(ev[0].from, "connecting");
    assert_string_equal(ev[0].event, "connected");
    assert_string_equal(ev[0].to, "handshake");
    assert_string_equal(ev[0].detail, "127.0.0.1:7400");
    assert_string_equal(ev[0].peer, "secondary");
    assert_false(ev[0].refused);
    assert_string_equal(ev[1].from, "handshake");
    assert_string_equal(ev[1].to, "handshake");
    assert_string_equal(ev[1].event, "hb_timeout");
    assert_string_equal(ev[1].detail, "no hello yet");
    assert_true(ev[1].refused);
    assert_int_equal(ev[1].seq, 1);
}

static void log_lines(void *arg)
{
    (void)arg;
    rt_log_setup("prog", "node", RT_LOG_WARN);
    rt_log(RT_LOG_INFO, "dropped %d", 1);
    rt_log(RT_LOG_WARN, "kept %d\n", 2);
    rt_log(RT_LOG_ERR, "also kept");
    rt_log_setup("ss", NULL, RT_LOG_INFO);
}

static void test_log_format(void **state)
{
    (void)state;
    char out[512];
    capture_stderr(log_lines, NULL, out, sizeof out);
    assert_string_equal(out, "prog[node]: warn: kept 2\nprog[node]: err: also kept\n");
    rt_log_level_t l;
    assert_int_equal(rt_log_level_parse("debug", &l), RT_OK);
    assert_int_equal(l, RT_LOG_DEBUG);
    assert_int_equal(rt_log_level_parse("loud", &l), RT_ERR);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_write_read_back),
        cmocka_unit_test(test_truncation),
        cmocka_unit_test(test_rotation),
        cmocka_unit_test(test_torn_last_record),
        cmocka_unit_test(test_full_disk),
        cmocka_unit_test(test_open_fails),
        cmocka_unit_test(test_chart_trace),
        cmocka_unit_test(test_log_format),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
