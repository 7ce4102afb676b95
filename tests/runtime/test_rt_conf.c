/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * test_rt_conf.c: the INI loader and its schema (runtime/rt_conf.c).
 *
 * A good file gives its values, the defaults fill the rest and relative
 * paths resolve against the file's folder. Each kind of mistake gives the
 * one "FILE:LINE: [SECTION] KEY: what (expected ...)" line an operator
 * needs, with the right line number: noded prints exactly that and exits 2.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "rt.h"

static char dir[64];
static char file[128];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/test_rt_conf.XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    snprintf(file, sizeof file, "%s/node.conf", dir);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void write_file(const char *text)
{
    FILE *f = fopen(file, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* load @text, expect failure with the message @want after "FILE:" */
static void expect_error(const char *text, const char *want)
{
    write_file(text);
    char err[512], full[512];
    memset(err, 0, sizeof err);
    assert_null(rt_conf_load(file, err, sizeof err));
    snprintf(full, sizeof full, "%s:%s", file, want);
    assert_string_equal(err, full);
    assert_null(strchr(err, '\n')); /* one line */
}

static const char good[] =
    "# a node\n"
    "[node]\n"
    "name = primary\n"
    "roles = agent, ps\n"
    "data_dir = data\n"
    "memory = 128M\n"
    "log_level = debug\n"
    "\n"
    "[trace]\n"
    "file = t/trace.pb\n"
    "max = 1M\n"
    "\n"
    "[tls]\n"
    "ca = /etc/ss/ca.pem\n"
    "cert = cert.pem\n"
    "\n"
    "[listen]\n"
    "link = 127.0.0.1:7400\n"
    "mgmt = [::1]:7401\n"
    "\n"
    "[link]\n"
    "hb_interval = 0.5\n"
    "\n"
    "[peer secondary]\n"
    "address = 127.0.0.1:7500\n"
    "\n"
    "[peer   mt-2]\n"
    "address = 10.0.0.2:7400 ; the master target\n";

static unsigned npeers;
static char peers[4][2][64];

static void each_peer(void *arg, const char *section, const char *name)
{
    assert_ptr_equal(arg, &npeers);
    assert_true(npeers < 4);
    snprintf(peers[npeers][0], 64, "%s", section);
    snprintf(peers[npeers][1], 64, "%s", name);
    npeers++;
}

static void test_good_file(void **state)
{
    (void)state;
    write_file(good);
    char err[256] = "";
    rt_conf_t *c = rt_conf_load(file, err, sizeof err);
    assert_non_null(c);
    assert_string_equal(err, "");
    assert_string_equal(rt_conf_file(c), file);
    assert_string_equal(rt_conf_str(c, "node", "name"), "primary");
    assert_int_equal(rt_conf_u64(c, "node", "roles"), RT_ROLE_AGENT | RT_ROLE_PS);
    assert_int_equal(rt_conf_u64(c, "node", "memory"), 128u << 20);
    assert_int_equal(rt_conf_u64(c, "node", "msg_slots"), 4096);       /* default */
    assert_string_equal(rt_conf_str(c, "node", "log_level"), "debug");
    assert_int_equal(rt_conf_u64(c, "node", "log_level"), RT_LOG_DEBUG); /* index */
    assert_int_equal(rt_conf_u64(c, "trace", "max"), 1u << 20);
    assert_int_equal(rt_conf_u64(c, "trace", "keep"), 3);
    assert_true(rt_conf_double(c, "link", "hb_interval") == 0.5);
    assert_true(rt_conf_double(c, "link", "hb_timeout") == 5.0);
    assert_true(rt_conf_double(c, "link", "backoff_min") == 0.1);
    assert_int_equal(rt_conf_u64(c, "link", "sndq_high"), 8u << 20);
    assert_int_equal(rt_conf_u64(c, "link", "max_payload"), 8u << 20);
    assert_string_equal(rt_conf_str(c, "listen", "mgmt"), "[::1]:7401");

    char p[256], want[256];
    snprintf(want, sizeof want, "%s/data", dir);
    assert_string_equal(rt_conf_path(c, "node", "data_dir", p, sizeof p), want);
    snprintf(want, sizeof want, "%s/t/trace.pb", dir);
    assert_string_equal(rt_conf_path(c, "trace", "file", p, sizeof p), want);
    assert_string_equal(rt_conf_path(c, "tls", "ca", p, sizeof p), "/etc/ss/ca.pem");
    assert_null(rt_conf_path(c, "tls", "key", p, sizeof p)); /* absent, no default */
    assert_null(rt_conf_path(c, "trace", "file", p, 8));     /* does not fit */

    npeers = 0;
    rt_conf_each(c, "peer", each_peer, &npeers);
    assert_int_equal(npeers, 2);
    assert_string_equal(peers[0][0], "peer secondary");
    assert_string_equal(peers[0][1], "secondary");
    assert_string_equal(peers[1][0], "peer mt-2");
    assert_string_equal(peers[1][1], "mt-2");
    assert_string_equal(rt_conf_str(c, "peer mt-2", "address"), "10.0.0.2:7400");
    assert_string_equal(rt_conf_str(c, "peer secondary", "address"), "127.0.0.1:7500");
    assert_null(rt_conf_str(c, "peer nobody", "address"));
    rt_conf_free(c);
}

static void test_defaults_and_node(void **state)
{
    (void)state;
    write_file("[node]\nname = n\nroles = cs mt\nmsg_slots = 100\nmemory = 4M\n");
    char err[256];
    rt_conf_t *c = rt_conf_load(file, err, sizeof err);
    assert_non_null(c);
    assert_int_equal(rt_conf_u64(c, "node", "roles"), RT_ROLE_CS | RT_ROLE_MT);
    assert_string_equal(rt_conf_str(c, "trace", "file"), "trace.pb");
    assert_int_equal(rt_conf_u64(c, "trace", "max"), 16u << 20);
    assert_int_equal(rt_conf_u64(c, "node", "log_level"), RT_LOG_INFO);
    /* the node takes its budgets and its trace file from it */
    rt_node_t *node = rt_node_new("n", c);
    assert_non_null(node);
    assert_ptr_equal(rt_node_conf(node), c);
    assert_non_null(rt_node_trace(node));
    size_t budget;
    rt_buf_stats(node, NULL, &budget);
    assert_int_equal(budget, 4u << 20);
    rt_node_free(node);
    char p[200];
    snprintf(p, sizeof p, "%s/trace.pb", dir);
    assert_int_equal(access(p, F_OK), 0);
    rt_conf_free(c);
}

/* [mt] retention and checkpoint: durations in seconds (added with the master target) */
static void test_durations(void **state)
{
    (void)state;
    write_file("[node]\nname = n\nroles = mt\n[mt]\ncheckpoint = 15m\n");
    char err[256];
    rt_conf_t *c = rt_conf_load(file, err, sizeof err);
    assert_non_null(c);
    assert_int_equal(rt_conf_u64(c, "mt", "retention"), 24u * 3600u); /* default 24h */
    assert_int_equal(rt_conf_u64(c, "mt", "checkpoint"), 900);
    assert_int_equal(rt_conf_u64(c, "ps", "cache_quota"), 1u << 30);
    assert_true(rt_conf_bool(c, "ps", "compress"));
    rt_conf_free(c);
    write_file("[node]\nname = n\nroles = mt\n[mt]\nretention = 2d\ncheckpoint = 90\n");
    c = rt_conf_load(file, err, sizeof err);
    assert_non_null(c);
    assert_int_equal(rt_conf_u64(c, "mt", "retention"), 2u * 86400u);
    assert_int_equal(rt_conf_u64(c, "mt", "checkpoint"), 90);
    rt_conf_free(c);
    expect_error("[node]\nname = a\nroles = mt\n[mt]\nretention = 3w\n",
                 "5: [mt] retention: bad value \"3w\" (expected seconds, or a duration like 90s, "
                 "15m, 24h or 7d, at least 1)");
    expect_error("[node]\nname = a\nroles = mt\n[mt]\nretention = 0\n",
                 "5: [mt] retention: bad value \"0\" (expected seconds, or a duration like 90s, "
                 "15m, 24h or 7d, at least 1)");
}

static void test_errors(void **state)
{
    (void)state;
    expect_error("[node]\nname = a\nroles = ps\ncolour = red\n",
                 "4: [node] colour: unknown key (expected one of name, roles, data_dir, memory, "
                 "msg_slots, log_level, workers)");
    expect_error("[node]\nname = a\nroles = ps\n\n[disks]\nx = 1\n",
                 "5: [disks]: unknown section (expected one of node, trace, tls, listen, link, "
                 "peer NAME, console, agent, disk NAME, ps, mt)");
    expect_error("[node]\nname = a\nroles = ps\nmemory = 12Q\n",
                 "4: [node] memory: bad value \"12Q\" (expected a size like 4096, 64K, 16M or "
                 "1G, at least 4M)");
    expect_error("[node]\nname = a\nroles = ps\nmemory = 1M\n",
                 "4: [node] memory: bad value \"1M\" (expected a size like 4096, 64K, 16M or "
                 "1G, at least 4M)");
    expect_error("[node]\nname = a\nroles = ps\n[peer b]\naddress = localhost:7400\n",
                 "5: [peer b] address: bad value \"localhost:7400\" (expected a numeric address "
                 "like 127.0.0.1:7400 or [::1]:7400)");
    expect_error("[node]\nname = a\nroles = ps\n\n[peer b]\n\n[link]\nhb_interval = 2\n",
                 "5: [peer b] address: missing required key (expected a numeric address like "
                 "127.0.0.1:7400 or [::1]:7400)");
    expect_error("# x\n[node]\nroles = ps\n",
                 "2: [node] name: missing required key (expected a name of 1 to 63 characters "
                 "from A-Z a-z 0-9 _ . -)");
    expect_error("[trace]\nmax = 1M\n",
                 "2: [node] name: missing required key, and its section (expected a name of 1 "
                 "to 63 characters from A-Z a-z 0-9 _ . -)");
    expect_error("[node]\nname = a\nroles = ps\nname = b\n",
                 "4: [node] name: duplicate key (first set on line 2)");
}

static void test_more_errors(void **state)
{
    (void)state;
    expect_error("[node]\nname = a\nroles = ps\n[node]\n",
                 "4: [node]: duplicate section (first on line 1)");
    expect_error("[node]\nname = a\nroles = ps\nthis line has no value\n",
                 "4: [node]: bad line (expected KEY = VALUE)");
    expect_error("name = a\n[node]\n",
                 "1: [] name: key outside any section (expected a [SECTION] line first)");
    expect_error("[node]\nname = a\nroles = ps\nmsg_slots = 10\n",
                 "4: [node] msg_slots: bad value \"10\" (expected a whole number, from 64 to "
                 "1000000)");
    expect_error("[node]\nname = a\nroles = ps, db\n",
                 "3: [node] roles: bad value \"ps, db\" (expected a list of agent, ps, cs, mt)");
    expect_error("[node]\nname = bad/name\nroles = ps\n",
                 "2: [node] name: bad value \"bad/name\" (expected a name of 1 to 63 characters "
                 "from A-Z a-z 0-9 _ . -)");
    expect_error("[node]\nname = a\nroles = ps\nlog_level = loud\n",
                 "4: [node] log_level: bad value \"loud\" (expected one of err|warn|info|debug)");
    expect_error("[node]\nname = a\nroles = ps\n[link]\nmax_payload = 32M\n",
                 "5: [link] max_payload: bad value \"32M\" (expected a size like 4096, 64K, 16M "
                 "or 1G, from 4K to 16M)");
    expect_error("[node]\nname = a\nroles = ps\n[link]\nhb_timeout = soon\n",
                 "5: [link] hb_timeout: bad value \"soon\" (expected a number, from 0.01 to "
                 "3600)");
    expect_error("[node]\nname = a\nroles = ps\n[peer]\naddress = 1.2.3.4:5\n",
                 "4: [peer]: bad section name (expected [peer NAME], NAME of 1 to 63 characters "
                 "from A-Z a-z 0-9 _ . -)");
    expect_error("[node extra]\n",
                 "1: [node extra]: unexpected name (expected [node])");
    expect_error("[node]\nname = a\n  roles = ps\n",
                 "3: [node] name: indented line read as a continuation of name (expected KEY = "
                 "VALUE at the start of the line)");
    char longline[400];
    snprintf(longline, sizeof longline, "[node]\nname = a\nroles = ps\ndata_dir = %0300d\n", 0);
    expect_error(longline, "4: [node]: line too long (expected at most 198 characters)");
    /* an unreadable file */
    char err[256];
    assert_null(rt_conf_load("/nonexistent/node.conf", err, sizeof err));
    assert_string_equal(err, "/nonexistent/node.conf: cannot open: No such file or directory");
}

static void test_parse_size(void **state)
{
    (void)state;
    uint64_t v;
    assert_int_equal(rt_parse_size("0", &v), RT_OK);
    assert_int_equal(v, 0);
    assert_int_equal(rt_parse_size("4096", &v), RT_OK);
    assert_int_equal(v, 4096);
    assert_int_equal(rt_parse_size("64K", &v), RT_OK);
    assert_int_equal(v, 65536);
    assert_int_equal(rt_parse_size("64M", &v), RT_OK);
    assert_int_equal(v, 64u << 20);
    assert_int_equal(rt_parse_size("1G", &v), RT_OK);
    assert_int_equal(v, 1u << 30);
    assert_int_equal(rt_parse_size("2T", &v), RT_OK);
    assert_int_equal(v, 2ull << 40);
    v = 7;
    const char *bad[] = {"", "M", "12Q", "1.5M", "-1", " 1", "1 ", "1MB",
                         "18446744073709551616", "99999999999999T"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(rt_parse_size(bad[i], &v), RT_ERR);
    assert_int_equal(v, 7); /* untouched on error */
}

static void test_parse_addr(void **state)
{
    (void)state;
    struct sockaddr_storage ss;
    unsigned len = 0;
    assert_int_equal(rt_parse_addr("127.0.0.1:7400", &ss, &len), RT_OK);
    assert_int_equal(ss.ss_family, AF_INET);
    assert_int_equal(len, sizeof(struct sockaddr_in));
    const struct sockaddr_in *a4 = (const struct sockaddr_in *)&ss;
    assert_int_equal(ntohs(a4->sin_port), 7400);
    assert_int_equal(ntohl(a4->sin_addr.s_addr), 0x7f000001);
    assert_int_equal(rt_parse_addr("[::1]:7401", &ss, &len), RT_OK);
    assert_int_equal(ss.ss_family, AF_INET6);
    assert_int_equal(len, sizeof(struct sockaddr_in6));
    const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)&ss;
    assert_int_equal(ntohs(a6->sin6_port), 7401);
    assert_int_equal(a6->sin6_addr.s6_addr[15], 1);
    assert_int_equal(rt_parse_addr("0.0.0.0:0", &ss, &len), RT_OK);
    const char *bad[] = {"localhost:7400", "1.2.3.4", "1.2.3.4:", "1.2.3.4:65536",
                         "[::1]7400", "::1:7400", "1.2.3.4:12a", "1.2.3:80", "[::1]:",
                         ":80", "[nothex]:80"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(rt_parse_addr(bad[i], &ss, &len), RT_ERR);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_file),
        cmocka_unit_test(test_defaults_and_node),
        cmocka_unit_test(test_durations),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_more_errors),
        cmocka_unit_test(test_parse_size),
        cmocka_unit_test(test_parse_addr),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
