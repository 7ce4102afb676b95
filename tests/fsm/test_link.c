/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * test_link.c: replays of the link chart (fsm/link.rl), with no sockets.
 *
 * The chart's actions are replaced by recorders (the chart calls its actions
 * through a table), so each replay checks three things: the state it ends
 * in, the actions that ran, and the trace lines (transitions and refusals).
 * RUN() replays a sequence that must be accepted throughout; FAILS() replays
 * one whose last event must be refused, leaving the state as it was. A table
 * written from the issue (which state takes which event) is checked against
 * the chart for every state and every event.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "fsm.pb.h"
#include "rt_link_fsm.h"

/* ---- recorders --------------------------------------------------------------- */

static char acts[512];   /* actions run, space separated */
static char traces[2048];/* one line per trace call */
static int ntraces;
static int script_next;  /* what the next action returns (then reset to 0) */

static void append(char *dst, size_t cap, const char *s)
{
    size_t n = strlen(dst);
    snprintf(dst + n, cap - n, "%s%s", n ? " " : "", s);
}

static int act(const char *name)
{
    append(acts, sizeof acts, name);
    int n = script_next;
    script_next = 0;
    return n;
}

static int a_connect(void *ctx) { (void)ctx; return act("connect"); }
static int a_accept(void *ctx) { (void)ctx; return act("accept"); }
static int a_handshake(void *ctx) { (void)ctx; return act("handshake"); }
static int a_hello(void *ctx) { (void)ctx; return act("hello"); }
static int a_up(void *ctx) { (void)ctx; return act("up"); }
static int a_retry(void *ctx) { (void)ctx; return act("retry"); }
static int a_close(void *ctx) { (void)ctx; return act("close"); }

static void rec_trace(const rt_chart_t *c, const char *from, const char *event, const char *to)
{
    char line[160];
    assert_string_equal(c->machine, "link");
    if (to)
        snprintf(line, sizeof line, "%s -%s-> %s [%s]\n", from, event, to,
                 c->detail ? c->detail : "");
    else
        snprintf(line, sizeof line, "%s -x %s\n", from, event);
    size_t n = strlen(traces);
    snprintf(traces + n, sizeof traces - n, "%s", line);
    ntraces++;
}

static const link_fsm_ops_t ops = {
    .connect = a_connect,
    .accept = a_accept,
    .handshake = a_handshake,
    .hello = a_hello,
    .up = a_up,
    .retry = a_retry,
    .close = a_close,
    .trace = rec_trace,
};

static link_fsm_t fsm;

static int setup(void **state)
{
    (void)state;
    acts[0] = traces[0] = '\0';
    ntraces = 0;
    script_next = 0;
    link_fsm_init(&fsm, &ops, NULL, NULL);
    return 0;
}

/* event number of a name, from the chart's own names of the proto enum */
static int ev_of(const char *name)
{
    for (int ev = 1; ev <= (int)_ss_LinkEvent_MAX; ev++)
        if (strcmp(link_fsm_event_name(ev), name) == 0)
            return ev;
    fail_msg("no event named %s", name);
    return 0;
}

/* feed the space-separated events of @seq; @return the index of the first
 * refused one, or -1 */
static int replay(const char *seq)
{
    char buf[256], *save = NULL;
    snprintf(buf, sizeof buf, "%s", seq);
    int i = 0;
    for (char *t = strtok_r(buf, " ", &save); t; t = strtok_r(NULL, " ", &save), i++) {
        int rc = link_fsm_exec(&fsm, ev_of(t));
        if (rc == RT_ERR)
            return i;
        assert_true(rc >= 0);
    }
    return -1;
}

#define RUN(seq, state, actions)                                                       \
    do {                                                                               \
        setup(NULL);                                                                   \
        assert_int_equal(replay(seq), -1);                                             \
        assert_string_equal(link_fsm_state(&fsm), state);                              \
        assert_string_equal(acts, actions);                                            \
    } while (0)

/* all events of @seq but the last are accepted; the last is refused in @state */
#define FAILS(seq, state)                                                              \
    do {                                                                               \
        setup(NULL);                                                                   \
        int n_ = 0;                                                                    \
        for (const char *c_ = seq; *c_; c_++)                                          \
            n_ += *c_ == ' ';                                                          \
        assert_int_equal(replay(seq), n_);                                             \
        assert_string_equal(link_fsm_state(&fsm), state);                              \
    } while (0)

/* ---- names ------------------------------------------------------------------- */

static void test_names(void **state)
{
    (void)state;
    /* event numbers come from proto/fsm.proto: each name is the proto's */
    assert_string_equal(link_fsm_event_name(ss_LinkEvent_LINK_START), "start");
    assert_string_equal(link_fsm_event_name(ss_LinkEvent_LINK_ACCEPTED), "accepted");
    assert_string_equal(link_fsm_event_name(ss_LinkEvent_LINK_TLS_OK), "tls_ok");
    assert_string_equal(link_fsm_event_name(ss_LinkEvent_LINK_CLOSE), "close");
    assert_string_equal(link_fsm_event_name(0), "?");
    assert_string_equal(link_fsm_event_name(_ss_LinkEvent_MAX + 1), "?");
    assert_string_equal(link_fsm_event_name(-3), "?");
    static const char *const want[] = {"init", "connecting", "handshake", "hello",
                                       "up", "backoff", "closed"};
    assert_int_equal(link_fsm_state_count(), 7);
    for (int i = 0; i < 7; i++) {
        int cs = link_fsm_state_at(i);
        assert_string_equal(link_fsm_state_name(cs), want[i]);
        for (int j = 0; j < i; j++)
            assert_int_not_equal(cs, link_fsm_state_at(j));
    }
    assert_string_equal(link_fsm_state_name(0), "error");
    assert_string_equal(link_fsm_state_name(12345), "?");
    setup(NULL);
    assert_string_equal(link_fsm_state(&fsm), "init");
    assert_int_equal(ntraces, 0);
}

/* ---- accepted sequences -------------------------------------------------------- */

static void test_outbound_up(void **state)
{
    (void)state;
    RUN("start connected tls_ok hello_ok", "up", "connect handshake hello up");
    assert_string_equal(traces, "init -start-> connecting []\n"
                                "connecting -connected-> handshake []\n"
                                "handshake -tls_ok-> hello []\n"
                                "hello -hello_ok-> up []\n");
}

static void test_accepted_up(void **state)
{
    (void)state;
    RUN("accepted tls_ok hello_ok", "up", "accept hello up");
    RUN("accepted tls_ok hello_ok close", "closed", "accept hello up close");
    RUN("accepted close", "closed", "accept close");
}

static void test_outbound_reconnects(void **state)
{
    (void)state;
    RUN("start connected tls_ok hello_ok fail", "backoff", "connect handshake hello up retry");
    RUN("start connected tls_ok hello_ok fail retry connected tls_ok hello_ok", "up",
        "connect handshake hello up retry connect handshake hello up");
    RUN("start fail retry fail retry fail", "backoff",
        "connect retry connect retry connect retry");
    RUN("start connected fail retry", "connecting", "connect handshake retry connect");
    RUN("start connected tls_ok fail", "backoff", "connect handshake hello retry");
}

static void test_close_from_everywhere(void **state)
{
    (void)state;
    RUN("close", "closed", "close");
    RUN("start close", "closed", "connect close");
    RUN("start connected close", "closed", "connect handshake close");
    RUN("start connected tls_ok close", "closed", "connect handshake hello close");
    RUN("start connected tls_ok hello_ok close", "closed", "connect handshake hello up close");
    RUN("start fail close", "closed", "connect retry close");
}

/* the detail set before exec is what the trace records */
static void test_detail_traced(void **state)
{
    (void)state;
    setup(NULL);
    fsm.chart.detail = "127.0.0.1:7400";
    assert_int_equal(link_fsm_exec(&fsm, ss_LinkEvent_LINK_START), 0);
    fsm.chart.detail = "connect: Connection refused";
    assert_int_equal(link_fsm_exec(&fsm, ss_LinkEvent_LINK_FAIL), 0);
    assert_string_equal(traces, "init -start-> connecting [127.0.0.1:7400]\n"
                                "connecting -fail-> backoff [connect: Connection refused]\n");
}

/* an action's return value is handed back as the next event */
static void test_next_event(void **state)
{
    (void)state;
    setup(NULL);
    script_next = ss_LinkEvent_LINK_FAIL; /* connect() failed at once */
    int next = link_fsm_exec(&fsm, ss_LinkEvent_LINK_START);
    assert_int_equal(next, ss_LinkEvent_LINK_FAIL);
    assert_string_equal(link_fsm_state(&fsm), "connecting");
    assert_int_equal(link_fsm_exec(&fsm, next), 0);
    assert_string_equal(link_fsm_state(&fsm), "backoff");
    assert_string_equal(acts, "connect retry");
}

/* ---- refused sequences ----------------------------------------------------------- */

static void test_refused(void **state)
{
    (void)state;
    FAILS("connected", "init");
    FAILS("tls_ok", "init");
    FAILS("hello_ok", "init");
    FAILS("retry", "init");
    FAILS("fail", "init");
    FAILS("start start", "connecting");
    FAILS("start accepted", "connecting");
    FAILS("start tls_ok", "connecting");
    FAILS("start hello_ok", "connecting");
    FAILS("start retry", "connecting");
    FAILS("accepted connected", "handshake");
    FAILS("accepted hello_ok", "handshake");
    FAILS("accepted tls_ok tls_ok", "hello");
    FAILS("accepted tls_ok hello_ok hello_ok", "up");
    FAILS("accepted tls_ok hello_ok start", "up");
    FAILS("accepted tls_ok hello_ok retry", "up");
    FAILS("start fail connected", "backoff");
    FAILS("start fail fail", "backoff");
    FAILS("close start", "closed");
    FAILS("close close", "closed");
    FAILS("close retry", "closed");
}

/* a refusal runs no action, is traced once with to == NULL, and the chart
 * goes on from where it was (not from Ragel's error state) */
static void test_refusal_keeps_state(void **state)
{
    (void)state;
    setup(NULL);
    assert_int_equal(replay("start connected"), -1);
    acts[0] = traces[0] = '\0';
    ntraces = 0;
    assert_int_equal(link_fsm_exec(&fsm, ss_LinkEvent_LINK_HELLO_OK), RT_ERR);
    assert_true(fsm.refused);
    assert_string_equal(acts, "");
    assert_string_equal(traces, "handshake -x hello_ok\n");
    assert_int_equal(link_fsm_exec(&fsm, 0), RT_ERR);
    assert_int_equal(link_fsm_exec(&fsm, 99), RT_ERR);
    assert_int_equal(link_fsm_exec(&fsm, -1), RT_ERR);
    assert_string_equal(link_fsm_state(&fsm), "handshake");
    assert_int_equal(replay("tls_ok hello_ok"), -1);
    assert_string_equal(link_fsm_state(&fsm), "up");
    assert_string_equal(acts, "hello up");
    assert_false(fsm.refused);
}

/* ---- the whole table ----------------------------------------------------------- */

/* the chart, written independently of fsm/link.rl: for each state
 * (in link_fsm_state_at order) the path that reaches it and, per event
 * (1..8: start accepted connected tls_ok hello_ok fail retry close), the
 * state it leads to, or NULL when refused */
static const struct {
    const char *path;
    const char *to[9];
} table[] = {
    {"", {NULL, "connecting", "handshake", NULL, NULL, NULL, NULL, NULL, "closed"}},
    {"start", {NULL, NULL, NULL, "handshake", NULL, NULL, "backoff", NULL, "closed"}},
    {"start connected", {NULL, NULL, NULL, NULL, "hello", NULL, "backoff", NULL, "closed"}},
    {"start connected tls_ok", {NULL, NULL, NULL, NULL, NULL, "up", "backoff", NULL, "closed"}},
    {"start connected tls_ok hello_ok",
     {NULL, NULL, NULL, NULL, NULL, NULL, "backoff", NULL, "closed"}},
    {"start fail", {NULL, NULL, NULL, NULL, NULL, NULL, NULL, "connecting", "closed"}},
    {"close", {NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL}},
};

static void test_table(void **state)
{
    (void)state;
    assert_int_equal((int)_ss_LinkEvent_MAX, 8);
    assert_int_equal(sizeof table / sizeof table[0], link_fsm_state_count());
    for (int s = 0; s < link_fsm_state_count(); s++) {
        for (int ev = 1; ev <= 8; ev++) {
            setup(NULL);
            assert_int_equal(replay(table[s].path), -1);
            assert_int_equal(fsm.chart.cs, link_fsm_state_at(s));
            int rc = link_fsm_exec(&fsm, ev);
            const char *want = table[s].to[ev];
            if (!want) {
                if (rc != RT_ERR)
                    fail_msg("%s took %s", link_fsm_state_name(link_fsm_state_at(s)),
                             link_fsm_event_name(ev));
                assert_int_equal(fsm.chart.cs, link_fsm_state_at(s));
            } else {
                if (rc == RT_ERR)
                    fail_msg("%s refused %s", link_fsm_state_name(link_fsm_state_at(s)),
                             link_fsm_event_name(ev));
                assert_string_equal(link_fsm_state(&fsm), want);
            }
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_outbound_up),
        cmocka_unit_test(test_accepted_up),
        cmocka_unit_test(test_outbound_reconnects),
        cmocka_unit_test(test_close_from_everywhere),
        cmocka_unit_test(test_detail_traced),
        cmocka_unit_test(test_next_event),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_refusal_keeps_state),
        cmocka_unit_test(test_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
