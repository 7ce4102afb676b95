/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * test_pair.c: replays of the pair chart (fsm/pair.rl), with no disks or
 * sockets.
 *
 * The chart's actions are replaced by recorders (the chart calls its actions
 * through a table), so each replay checks three things: the state it ends
 * in, the actions that ran, and the trace lines (transitions and refusals,
 * each with the pair id). RUN() replays a sequence that must be accepted
 * throughout; FAILS() replays one whose last event must be refused, leaving
 * the state as it was. A table written from issue 3 (which state takes
 * which event) is checked against the chart for every state and every event.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "fsm.pb.h"
#include "nodes/agent/pair_fsm.h"

/* ---- recorders --------------------------------------------------------------- */

static char acts[512];    /* actions run, space separated */
static char traces[2048]; /* one line per trace call */
static int ntraces;
static int script_next;   /* what the next action returns (then reset to 0) */

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

static int a_sync(void *ctx) { (void)ctx; return act("sync"); }
static int a_seeded(void *ctx) { (void)ctx; return act("seeded"); }
static int a_protect(void *ctx) { (void)ctx; return act("protect"); }
static int a_resync(void *ctx) { (void)ctx; return act("resync"); }
static int a_overflow(void *ctx) { (void)ctx; return act("overflow"); }
static int a_pause(void *ctx) { (void)ctx; return act("pause"); }

static void rec_trace(const rt_chart_t *c, const char *from, const char *event, const char *to)
{
    char line[200];
    assert_string_equal(c->machine, "pair");
    if (to)
        snprintf(line, sizeof line, "%s: %s -%s-> %s [%s]\n", c->pair ? c->pair : "-", from,
                 event, to, c->detail ? c->detail : "");
    else
        snprintf(line, sizeof line, "%s: %s -x %s\n", c->pair ? c->pair : "-", from, event);
    size_t n = strlen(traces);
    snprintf(traces + n, sizeof traces - n, "%s", line);
    ntraces++;
}

static const pair_fsm_ops_t ops = {
    .sync = a_sync,
    .seeded = a_seeded,
    .protect = a_protect,
    .resync = a_resync,
    .overflow = a_overflow,
    .pause = a_pause,
    .trace = rec_trace,
};

static pair_fsm_t fsm;

static int setup(void **state)
{
    (void)state;
    acts[0] = traces[0] = '\0';
    ntraces = 0;
    script_next = 0;
    pair_fsm_init(&fsm, &ops, NULL, NULL, "disk0");
    return 0;
}

/* event number of a name, from the chart's own names of the proto enum */
static int ev_of(const char *name)
{
    for (int ev = 1; ev <= (int)_ss_PairEvent_MAX; ev++)
        if (strcmp(pair_fsm_event_name(ev), name) == 0)
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
        int rc = pair_fsm_exec(&fsm, ev_of(t));
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
        assert_string_equal(pair_fsm_state(&fsm), state);                              \
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
        assert_string_equal(pair_fsm_state(&fsm), state);                              \
    } while (0)

/* ---- names ------------------------------------------------------------------- */

static void test_names(void **state)
{
    (void)state;
    /* event numbers come from proto/fsm.proto: each name is the proto's */
    assert_string_equal(pair_fsm_event_name(ss_PairEvent_PAIR_INITIAL), "initial");
    assert_string_equal(pair_fsm_event_name(ss_PairEvent_PAIR_CLEAN), "clean");
    assert_string_equal(pair_fsm_event_name(ss_PairEvent_PAIR_DIRTY), "dirty");
    assert_string_equal(pair_fsm_event_name(ss_PairEvent_PAIR_SYNC_DONE), "sync_done");
    assert_string_equal(pair_fsm_event_name(ss_PairEvent_PAIR_LOG_FULL), "log_full");
    assert_string_equal(pair_fsm_event_name(ss_PairEvent_PAIR_DRAINED), "drained");
    assert_string_equal(pair_fsm_event_name(ss_PairEvent_PAIR_PAUSE), "pause");
    assert_string_equal(pair_fsm_event_name(0), "?");
    assert_string_equal(pair_fsm_event_name(_ss_PairEvent_MAX + 1), "?");
    assert_string_equal(pair_fsm_event_name(-3), "?");
    static const char *const want[] = {"created", "initial_sync", "protected",
                                       "resyncing", "bitmap_mode", "paused"};
    assert_int_equal(pair_fsm_state_count(), 6);
    for (int i = 0; i < 6; i++) {
        int cs = pair_fsm_state_at(i);
        assert_string_equal(pair_fsm_state_name(cs), want[i]);
        for (int j = 0; j < i; j++)
            assert_int_not_equal(cs, pair_fsm_state_at(j));
    }
    assert_int_equal(pair_fsm_state_at(6), -1);
    assert_string_equal(pair_fsm_state_name(0), "error");
    assert_string_equal(pair_fsm_state_name(12345), "?");
    setup(NULL);
    assert_string_equal(pair_fsm_state(&fsm), "created");
    assert_true(pair_fsm_in(&fsm, "created"));
    assert_false(pair_fsm_in(&fsm, "protected"));
    assert_int_equal(ntraces, 0);
}

/* ---- accepted sequences -------------------------------------------------------- */

/* a new pair: initial sync, then protected; every transition traced with the pair */
static void test_new_pair(void **state)
{
    (void)state;
    RUN("initial sync_done", "protected", "sync seeded");
    assert_string_equal(traces, "disk0: created -initial-> initial_sync []\n"
                                "disk0: initial_sync -sync_done-> protected []\n");
    assert_int_equal(ntraces, 2);
}

/* reopening: the agent's pick of where to go */
static void test_reopen(void **state)
{
    (void)state;
    RUN("clean", "protected", "protect");
    RUN("dirty", "resyncing", "resync");
    RUN("dirty sync_done", "protected", "resync protect");
    RUN("log_full", "bitmap_mode", "overflow");
    RUN("log_full drained sync_done", "protected", "overflow resync protect");
    RUN("log_full initial sync_done", "protected", "overflow sync seeded");
}

/* the outage of issue 3: log overflow, bitmap mode, resync of the dirty regions */
static void test_outage(void **state)
{
    (void)state;
    RUN("clean log_full drained sync_done", "protected", "protect overflow resync protect");
    /* an initial sync cut by an overflow goes on as an initial sync */
    RUN("initial log_full initial sync_done", "protected", "sync overflow sync seeded");
    RUN("clean dirty log_full drained", "resyncing", "protect resync overflow resync");
    RUN("clean log_full drained log_full drained sync_done", "protected",
        "protect overflow resync overflow resync protect");
    RUN("clean dirty sync_done dirty sync_done", "protected",
        "protect resync protect resync protect");
}

/* the receiver lost writes the log no longer holds: a full sync again */
static void test_receiver_lost(void **state)
{
    (void)state;
    RUN("clean initial sync_done", "protected", "protect sync seeded");
    RUN("dirty initial", "initial_sync", "resync sync");
    RUN("initial initial initial sync_done", "protected", "sync sync sync seeded");
    RUN("clean log_full initial", "initial_sync", "protect overflow sync");
}

static void test_pause(void **state)
{
    (void)state;
    RUN("pause", "paused", "pause");
    RUN("pause initial", "initial_sync", "pause sync");
    RUN("initial pause initial sync_done", "protected", "sync pause sync seeded");
    RUN("clean pause clean", "protected", "protect pause protect");
    RUN("clean pause dirty", "resyncing", "protect pause resync");
    RUN("clean pause log_full drained", "resyncing", "protect pause overflow resync");
    RUN("dirty pause dirty", "resyncing", "resync pause resync");
    RUN("log_full pause log_full", "bitmap_mode", "overflow pause overflow");
}

/* the detail set before exec is what the trace records */
static void test_detail_traced(void **state)
{
    (void)state;
    setup(NULL);
    fsm.chart.detail = "clean open, log 1..42";
    assert_int_equal(pair_fsm_exec(&fsm, ss_PairEvent_PAIR_CLEAN), 0);
    fsm.chart.detail = "log 268435456 bytes >= log_max";
    assert_int_equal(pair_fsm_exec(&fsm, ss_PairEvent_PAIR_LOG_FULL), 0);
    assert_string_equal(traces, "disk0: created -clean-> protected [clean open, log 1..42]\n"
                                "disk0: protected -log_full-> bitmap_mode "
                                "[log 268435456 bytes >= log_max]\n");
}

/* an action's return value is handed back as the next event */
static void test_next_event(void **state)
{
    (void)state;
    setup(NULL);
    script_next = ss_PairEvent_PAIR_SYNC_DONE; /* the pass had nothing to do */
    int next = pair_fsm_exec(&fsm, ss_PairEvent_PAIR_DIRTY);
    assert_int_equal(next, ss_PairEvent_PAIR_SYNC_DONE);
    assert_string_equal(pair_fsm_state(&fsm), "resyncing");
    assert_int_equal(pair_fsm_exec(&fsm, next), 0);
    assert_string_equal(pair_fsm_state(&fsm), "protected");
    assert_string_equal(acts, "resync protect");
}

/* ---- refused sequences ----------------------------------------------------------- */

static void test_refused(void **state)
{
    (void)state;
    FAILS("sync_done", "created");
    FAILS("drained", "created");
    FAILS("initial clean", "initial_sync");
    FAILS("initial dirty", "initial_sync");
    FAILS("initial drained", "initial_sync");
    FAILS("clean clean", "protected");
    FAILS("clean sync_done", "protected");
    FAILS("clean drained", "protected");
    FAILS("dirty dirty", "resyncing");
    FAILS("dirty clean", "resyncing");
    FAILS("dirty drained", "resyncing");
    FAILS("log_full log_full", "bitmap_mode");
    FAILS("log_full sync_done", "bitmap_mode");
    FAILS("log_full clean", "bitmap_mode");
    FAILS("log_full dirty", "bitmap_mode");
    FAILS("pause pause", "paused");
    FAILS("pause sync_done", "paused");
    FAILS("pause drained", "paused");
}

/* a refusal runs no action, is traced once with to == NULL, and the chart
 * goes on from where it was (not from Ragel's error state) */
static void test_refusal_keeps_state(void **state)
{
    (void)state;
    setup(NULL);
    assert_int_equal(replay("clean log_full"), -1);
    acts[0] = traces[0] = '\0';
    ntraces = 0;
    assert_int_equal(pair_fsm_exec(&fsm, ss_PairEvent_PAIR_SYNC_DONE), RT_ERR);
    assert_true(fsm.refused);
    assert_string_equal(acts, "");
    assert_string_equal(traces, "disk0: bitmap_mode -x sync_done\n");
    assert_int_equal(pair_fsm_exec(&fsm, 0), RT_ERR);
    assert_int_equal(pair_fsm_exec(&fsm, 99), RT_ERR);
    assert_int_equal(pair_fsm_exec(&fsm, -1), RT_ERR);
    assert_int_equal(ntraces, 4);
    assert_string_equal(pair_fsm_state(&fsm), "bitmap_mode");
    assert_int_equal(replay("drained sync_done"), -1);
    assert_string_equal(pair_fsm_state(&fsm), "protected");
    assert_string_equal(acts, "resync protect");
    assert_false(fsm.refused);
}

/* ---- the whole table ----------------------------------------------------------- */

/* the chart of issue 3, written independently of fsm/pair.rl: for each state
 * (in pair_fsm_state_at order) the path that reaches it and, per event
 * (1..7: initial clean dirty sync_done log_full drained pause), the state it
 * leads to, or NULL when refused */
static const struct {
    const char *path;
    const char *to[8];
} table[] = {
    {"", {NULL, "initial_sync", "protected", "resyncing", NULL, "bitmap_mode", NULL, "paused"}},
    {"initial",
     {NULL, "initial_sync", NULL, NULL, "protected", "bitmap_mode", NULL, "paused"}},
    {"clean", {NULL, "initial_sync", NULL, "resyncing", NULL, "bitmap_mode", NULL, "paused"}},
    {"dirty", {NULL, "initial_sync", NULL, NULL, "protected", "bitmap_mode", NULL, "paused"}},
    {"log_full", {NULL, "initial_sync", NULL, NULL, NULL, NULL, "resyncing", "paused"}},
    {"pause",
     {NULL, "initial_sync", "protected", "resyncing", NULL, "bitmap_mode", NULL, NULL}},
};

static void test_table(void **state)
{
    (void)state;
    assert_int_equal((int)_ss_PairEvent_MAX, 7);
    assert_int_equal(sizeof table / sizeof table[0], pair_fsm_state_count());
    for (int s = 0; s < pair_fsm_state_count(); s++) {
        for (int ev = 1; ev <= 7; ev++) {
            setup(NULL);
            assert_int_equal(replay(table[s].path), -1);
            assert_int_equal(fsm.chart.cs, pair_fsm_state_at(s));
            int before = ntraces;
            int rc = pair_fsm_exec(&fsm, ev);
            const char *want = table[s].to[ev];
            assert_int_equal(ntraces, before + 1); /* traced either way */
            if (!want) {
                if (rc != RT_ERR)
                    fail_msg("%s took %s", pair_fsm_state_name(pair_fsm_state_at(s)),
                             pair_fsm_event_name(ev));
                assert_int_equal(fsm.chart.cs, pair_fsm_state_at(s));
            } else {
                if (rc == RT_ERR)
                    fail_msg("%s refused %s", pair_fsm_state_name(pair_fsm_state_at(s)),
                             pair_fsm_event_name(ev));
                assert_string_equal(pair_fsm_state(&fsm), want);
            }
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_new_pair),
        cmocka_unit_test(test_reopen),
        cmocka_unit_test(test_outage),
        cmocka_unit_test(test_receiver_lost),
        cmocka_unit_test(test_pause),
        cmocka_unit_test(test_detail_traced),
        cmocka_unit_test(test_next_event),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_refusal_keeps_state),
        cmocka_unit_test(test_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
