/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * test_rt_actor.c: mailboxes, dispatch and the node's start/stop sequence
 * (runtime/rt_actor.c, rt_node.c).
 *
 * FIFO order per actor, round-robin between actors, the batch bound that
 * keeps I/O from starving, run-to-completion (a message posted by a handler
 * is handled after it returns), back-pressure when the slot pool is full
 * and the RT_SIG_RESUME that follows, the cron, and the stop sequence with
 * its deadline. Every loop run is bounded by a watchdog timer.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "rt.h"
#include "rt_i.h"

#define MAXLOG 512

typedef struct tact {
    rt_actor_t a;            /* first, as the runtime wants */
    uint32_t tags[MAXLOG];   /* tags in the order handled */
    uint64_t u64s[MAXLOG];
    const rt_actor_t *froms[MAXLOG];
    unsigned n;
    unsigned starts, stops, resumes, crons;
    int depth, max_depth;    /* nesting of handler calls */
    bool stop_now;           /* call rt_actor_stopped() on RT_SIG_STOP */
    void (*hook)(struct tact *me, const rt_msg_t *m); /* extra behaviour */
    void *arg;
} tact_t;

static void tact_dispatch(rt_actor_t *a, const rt_msg_t *m)
{
    tact_t *me = (tact_t *)a;
    me->depth++;
    if (me->depth > me->max_depth)
        me->max_depth = me->depth;
    if (me->n < MAXLOG) {
        me->tags[me->n] = m->tag;
        me->u64s[me->n] = m->u64;
        me->froms[me->n] = m->from;
        me->n++;
    }
    switch (m->tag) {
    case RT_SIG_START: me->starts++; break;
    case RT_SIG_STOP:
        me->stops++;
        if (me->stop_now)
            rt_actor_stopped(a);
        break;
    case RT_SIG_RESUME: me->resumes++; break;
    case RT_SIG_CRON: me->crons++; break;
    default: break;
    }
    if (me->hook)
        me->hook(me, m);
    me->depth--;
}

static void tact_init(tact_t *t, rt_node_t *node, const char *name)
{
    memset(t, 0, sizeof *t);
    t->stop_now = true;
    assert_int_equal(rt_actor_init(&t->a, node, name, tact_dispatch), RT_OK);
}

/* a config with a small slot pool, in a fresh folder */
static char tmpdir[64];

static rt_conf_t *small_conf(unsigned slots)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/test_rt_actor.XXXXXX");
    assert_non_null(mkdtemp(tmpdir));
    char path[128];
    snprintf(path, sizeof path, "%s/node.conf", tmpdir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "[node]\nname = t\nroles = agent\nmsg_slots = %u\nmemory = 4M\n", slots);
    fclose(f);
    char err[256];
    rt_conf_t *c = rt_conf_load(path, err, sizeof err);
    assert_non_null(c);
    return c;
}

static void small_conf_done(rt_conf_t *c)
{
    char cmd[160];
    rt_conf_free(c);
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    assert_int_equal(system(cmd), 0);
}

/* run the loop until the run queue is empty, at most @iters iterations */
static unsigned drain(rt_node_t *node, unsigned iters)
{
    unsigned i = 0;
    while (node->rq_head && i < iters) {
        ev_run(rt_node_loop(node), EVRUN_NOWAIT);
        i++;
    }
    return i;
}

static void watchdog_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)revents;
    (void)w;
    ev_break(loop, EVBREAK_ALL);
    fail_msg("watchdog: the loop ran too long");
}

/* ---- FIFO, round-robin, batch --------------------------------------------- */

static void test_fifo_and_batch(void **state)
{
    (void)state;
    rt_node_t *node = rt_node_new("t", NULL);
    assert_non_null(node);
    tact_t a;
    tact_init(&a, node, "a");
    for (uint64_t i = 0; i < 200; i++) {
        rt_msg_t *m = rt_msg_new(node, NULL, RT_SIG_USER);
        assert_non_null(m);
        m->u64 = i;
        rt_msg_post(&a.a, m);
    }
    assert_int_equal(a.a.queued, 200);
    /* one loop iteration dispatches one batch, not everything */
    ev_run(rt_node_loop(node), EVRUN_NOWAIT);
    assert_int_equal(a.n, RT_BATCH);
    assert_int_equal(a.a.queued, 200 - RT_BATCH);
    drain(node, 100);
    assert_int_equal(a.n, 200);
    assert_int_equal(a.a.queued, 0);
    for (unsigned i = 0; i < 200; i++) {
        assert_int_equal(a.tags[i], RT_SIG_USER);
        assert_int_equal(a.u64s[i], i);
    }
    assert_int_equal(node->slots_used, 1); /* only the cron's own slot is out */
    rt_actor_fini(&a.a);
    rt_node_free(node);
}

/* interleaving check with a global log */
static char rr_log[32];
static unsigned rr_n;

static void rr_hook(tact_t *me, const rt_msg_t *m)
{
    (void)m;
    if (rr_n < sizeof rr_log - 1)
        rr_log[rr_n++] = me->a.name[0];
}

static void test_round_robin_order(void **state)
{
    (void)state;
    rt_node_t *node = rt_node_new("t", NULL);
    tact_t a, b;
    tact_init(&a, node, "a");
    tact_init(&b, node, "b");
    a.hook = b.hook = rr_hook;
    rr_n = 0;
    memset(rr_log, 0, sizeof rr_log);
    for (int i = 0; i < 3; i++)
        assert_int_equal(rt_post(&a.a, NULL, RT_SIG_USER, NULL, 0, NULL), RT_OK);
    for (int i = 0; i < 3; i++)
        assert_int_equal(rt_post(&b.a, &a.a, RT_SIG_USER, NULL, 0, NULL), RT_OK);
    drain(node, 10);
    assert_string_equal(rr_log, "ababab");
    assert_null(a.froms[0]);
    assert_ptr_equal(b.froms[0], &a.a);
    rt_actor_fini(&a.a);
    rt_actor_fini(&b.a);
    rt_node_free(node);
}

/* ---- run to completion ------------------------------------------------------- */

static void rtc_hook(tact_t *me, const rt_msg_t *m)
{
    if (m->tag == RT_SIG_USER && m->u64 == 0) {
        /* posted to ourselves: must not run inside this call */
        rt_msg_t *n = rt_msg_new(me->a.node, &me->a, RT_SIG_USER);
        assert_non_null(n);
        n->u64 = 1;
        rt_msg_post(&me->a, n);
        assert_int_equal(me->n, 1); /* still only the first one handled */
        /* the data we were given is intact and readable during the call */
        assert_int_equal(m->len, 5);
        assert_memory_equal(m->data, "hello", 5);
    }
}

static void test_run_to_completion(void **state)
{
    (void)state;
    rt_node_t *node = rt_node_new("t", NULL);
    tact_t a;
    tact_init(&a, node, "a");
    a.hook = rtc_hook;
    assert_int_equal(rt_post(&a.a, NULL, RT_SIG_USER, "hello", 5, NULL), RT_OK);
    drain(node, 10);
    assert_int_equal(a.n, 2);
    assert_int_equal(a.u64s[0], 0);
    assert_int_equal(a.u64s[1], 1);
    assert_int_equal(a.max_depth, 1);
    rt_actor_fini(&a.a);
    rt_node_free(node);
}

static void test_post_limits_and_buf_release(void **state)
{
    (void)state;
    rt_node_t *node = rt_node_new("t", NULL);
    tact_t a;
    tact_init(&a, node, "a");
    uint8_t big[RT_MSG_INLINE + 1];
    memset(big, 1, sizeof big);
    assert_int_equal(rt_post(&a.a, NULL, RT_SIG_USER, big, sizeof big, NULL), RT_ERR);
    assert_int_equal(rt_post(&a.a, NULL, RT_SIG_USER, big, RT_MSG_INLINE, NULL), RT_OK);
    /* the runtime drops the message's buffer reference after the handler */
    rt_buf_t *b = rt_buf_alloc(node, 100);
    assert_non_null(b);
    size_t used;
    rt_buf_stats(node, &used, NULL);
    assert_int_equal(used, 4096);
    assert_int_equal(rt_post(&a.a, NULL, RT_SIG_USER, NULL, 0, b), RT_OK);
    drain(node, 10);
    assert_int_equal(a.n, 2);
    rt_buf_stats(node, &used, NULL);
    assert_int_equal(used, 0);
    /* an unposted message goes back with its buffer */
    rt_msg_t *m = rt_msg_new(node, NULL, RT_SIG_USER);
    m->buf = rt_buf_alloc(node, 10);
    rt_msg_free(m);
    rt_buf_stats(node, &used, NULL);
    assert_int_equal(used, 0);
    assert_int_equal(node->slots_used, 1);
    rt_actor_fini(&a.a);
    rt_node_free(node);
}

/* ---- back-pressure ------------------------------------------------------------ */

static void test_backpressure_resume(void **state)
{
    (void)state;
    rt_conf_t *c = small_conf(64);
    rt_node_t *node = rt_node_new("t", c);
    assert_non_null(node);
    tact_t p, q;
    tact_init(&p, node, "producer");
    tact_init(&q, node, "consumer");
    /* 64 slots - 2 actors x 3 reserved - 2 cron slots = 56 for messages */
    unsigned sent = 0;
    int rc;
    while ((rc = rt_post(&q.a, &p.a, RT_SIG_USER, &sent, sizeof sent, NULL)) == RT_OK &&
           sent < 1000)
        sent++;
    assert_int_equal(rc, RT_AGAIN);
    assert_int_equal(sent, 56);
    assert_true(p.a.wants_resume);
    /* an anonymous request is refused too but registers nobody */
    assert_null(rt_msg_new(node, NULL, RT_SIG_USER));
    assert_false(q.a.wants_resume);
    assert_int_equal(p.resumes, 0);

    drain(node, 100);
    assert_int_equal(q.n, 56);
    assert_int_equal(p.resumes, 1); /* exactly one, however many slots freed */
    assert_false(p.a.wants_resume);
    assert_int_equal(p.tags[0], RT_SIG_RESUME);
    assert_int_equal(rt_post(&q.a, &p.a, RT_SIG_USER, NULL, 0, NULL), RT_OK);
    drain(node, 10);
    rt_actor_fini(&p.a);
    rt_actor_fini(&q.a);
    rt_node_free(node);
    small_conf_done(c);
}

static void test_resume_needs_room(void **state)
{
    (void)state;
    rt_conf_t *c = small_conf(64);
    rt_node_t *node = rt_node_new("t", c);
    tact_t p, q;
    tact_init(&p, node, "producer");
    tact_init(&q, node, "consumer");
    rt_msg_t *held[64];
    unsigned n = 0;
    while (n < 64 && (held[n] = rt_msg_new(node, &p.a, RT_SIG_USER)) != NULL)
        n++;
    assert_int_equal(n, 56);
    /* one slot back is not enough room (1/8 of 58 usable) */
    rt_msg_free(held[--n]);
    drain(node, 10);
    assert_int_equal(p.resumes, 0);
    for (unsigned i = 0; i < 7; i++)
        rt_msg_free(held[--n]);
    drain(node, 10);
    assert_int_equal(p.resumes, 1);
    while (n)
        rt_msg_free(held[--n]);
    rt_actor_fini(&p.a);
    rt_actor_fini(&q.a);
    rt_node_free(node);
    small_conf_done(c);
}

static void test_pool_limits_actor_count(void **state)
{
    (void)state;
    rt_conf_t *c = small_conf(64);
    rt_node_t *node = rt_node_new("t", c);
    /* each actor takes 1 cron slot + 3 reserved: 16 fit in 64 */
    static tact_t many[20];
    unsigned n = 0;
    while (n < 20) {
        memset(&many[n], 0, sizeof many[n]);
        if (rt_actor_init(&many[n].a, node, "m", tact_dispatch) != RT_OK)
            break;
        n++;
    }
    assert_int_equal(n, 16);
    while (n)
        rt_actor_fini(&many[--n].a);
    assert_int_equal(node->slots_used, 0);
    assert_int_equal(node->reserve, 0);
    rt_node_free(node);
    small_conf_done(c);
}

/* ---- start, stop, cron --------------------------------------------------------- */

static tact_t late;

static void start_hook(tact_t *me, const rt_msg_t *m)
{
    if (m->tag == RT_SIG_START && strcmp(me->a.name, "first") == 0) {
        tact_init(&late, me->a.node, "late"); /* registered after start */
        rt_node_stop(me->a.node);
    }
}

static void test_start_stop(void **state)
{
    (void)state;
    rt_node_t *node = rt_node_new("t", NULL);
    tact_t a;
    tact_init(&a, node, "first");
    a.hook = start_hook;
    ev_timer wd;
    ev_timer_init(&wd, watchdog_cb, 5.0, 0);
    ev_timer_start(rt_node_loop(node), &wd);
    assert_int_equal(rt_node_run(node), RT_OK);
    ev_timer_stop(rt_node_loop(node), &wd);
    assert_int_equal(a.starts, 1);
    assert_int_equal(a.stops, 1);
    assert_int_equal(a.tags[0], RT_SIG_START);
    assert_int_equal(a.tags[1], RT_SIG_STOP);
    assert_int_equal(late.starts, 1);
    assert_int_equal(late.stops, 1);
    assert_int_equal(late.tags[0], RT_SIG_START);
    rt_actor_fini(&late.a);
    rt_actor_fini(&a.a);
    rt_node_free(node);
}

/* the slow one stops 50 ms after RT_SIG_STOP */
static rt_timer_t slow_timer;

static void slow_hook(tact_t *me, const rt_msg_t *m)
{
    if (m->tag == RT_SIG_START) {
        /* the whole pool is full when the stop comes: STOP must still arrive */
        tact_t *other = me->arg;
        while (rt_post(&other->a, &me->a, RT_SIG_USER, NULL, 0, NULL) == RT_OK)
            ;
        rt_node_stop(me->a.node);
    } else if (m->tag == RT_SIG_STOP) {
        rt_timer_start(&slow_timer, 0.05, 0);
    } else if (m->tag == RT_SIG_TIMER) {
        rt_actor_stopped(&me->a);
    }
}

static void test_stop_waits_for_every_actor(void **state)
{
    (void)state;
    rt_conf_t *c = small_conf(64);
    rt_node_t *node = rt_node_new("t", c);
    tact_t fast, slow;
    tact_init(&fast, node, "fast");
    tact_init(&slow, node, "slow");
    assert_int_equal(rt_timer_init(&slow_timer, &slow.a, RT_SIG_TIMER, 1), RT_OK);
    slow.stop_now = false;
    slow.hook = slow_hook;
    slow.arg = &fast;
    ev_timer wd;
    ev_timer_init(&wd, watchdog_cb, 5.0, 0);
    ev_timer_start(rt_node_loop(node), &wd);
    uint64_t t0 = rt_mono_us();
    assert_int_equal(rt_node_run(node), RT_OK);
    uint64_t dt = rt_mono_us() - t0;
    ev_timer_stop(rt_node_loop(node), &wd);
    assert_true(dt >= 45000);
    assert_true(fast.a.stopped);
    assert_true(slow.a.stopped);
    assert_int_equal(fast.stops, 1);
    assert_int_equal(slow.stops, 1);
    /* fast got the user messages first, then STOP (FIFO), then nothing */
    assert_int_equal(fast.n, 1 + 55 + 1); /* 56 free minus slow's timer slot */
    assert_int_equal(fast.tags[0], RT_SIG_START);
    assert_int_equal(fast.tags[fast.n - 1], RT_SIG_STOP);
    rt_timer_fini(&slow_timer);
    rt_actor_fini(&fast.a);
    rt_actor_fini(&slow.a);
    rt_node_free(node);
    small_conf_done(c);
}

static void test_stop_deadline(void **state)
{
    (void)state;
    rt_node_t *node = rt_node_new("t", NULL);
    tact_t a, stubborn;
    tact_init(&a, node, "a");
    tact_init(&stubborn, node, "stubborn");
    stubborn.stop_now = false;
    rt_node_set_stop_deadline(node, 0.1);
    rt_node_stop(node); /* before run: START first, then STOP */
    ev_timer wd;
    ev_timer_init(&wd, watchdog_cb, 5.0, 0);
    ev_timer_start(rt_node_loop(node), &wd);
    uint64_t t0 = rt_mono_us();
    assert_int_equal(rt_node_run(node), RT_ERR);
    uint64_t dt = rt_mono_us() - t0;
    ev_timer_stop(rt_node_loop(node), &wd);
    assert_true(dt >= 90000 && dt < 3000000);
    assert_int_equal(stubborn.tags[0], RT_SIG_START);
    assert_int_equal(stubborn.tags[1], RT_SIG_STOP);
    assert_false(stubborn.a.stopped);
    assert_true(a.a.stopped);
    rt_actor_fini(&a.a);
    rt_actor_fini(&stubborn.a);
    rt_node_free(node);
}

static void sigterm_hook(tact_t *me, const rt_msg_t *m)
{
    (void)me;
    if (m->tag == RT_SIG_START)
        kill(getpid(), SIGTERM);
}

static void test_sigterm_stops(void **state)
{
    (void)state;
    rt_node_t *node = rt_node_new("t", NULL);
    tact_t a;
    tact_init(&a, node, "a");
    a.hook = sigterm_hook;
    ev_timer wd;
    ev_timer_init(&wd, watchdog_cb, 5.0, 0);
    ev_timer_start(rt_node_loop(node), &wd);
    assert_int_equal(rt_node_run(node), RT_OK);
    ev_timer_stop(rt_node_loop(node), &wd);
    assert_int_equal(a.stops, 1);
    rt_actor_fini(&a.a);
    rt_node_free(node);
}

static void stop_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    rt_node_stop(w->data);
}

static void test_cron(void **state)
{
    (void)state;
    rt_node_t *node = rt_node_new("t", NULL);
    tact_t a, idle;
    tact_init(&a, node, "a");
    tact_init(&idle, node, "idle");
    rt_actor_cron(&a.a, 0.02);
    ev_timer stop;
    ev_timer_init(&stop, stop_cb, 0.21, 0);
    stop.data = node;
    ev_timer_start(rt_node_loop(node), &stop);
    ev_timer wd;
    ev_timer_init(&wd, watchdog_cb, 5.0, 0);
    ev_timer_start(rt_node_loop(node), &wd);
    assert_int_equal(rt_node_run(node), RT_OK);
    ev_timer_stop(rt_node_loop(node), &wd);
    /* 10 periods in 0.21 s; a loaded machine may lose some, never gain */
    assert_true(a.crons >= 3);
    assert_true(a.crons <= 10);
    assert_int_equal(idle.crons, 0);
    /* 0 stops it */
    rt_actor_cron(&a.a, 0);
    assert_false(ev_is_active(&a.a.cron));
    rt_actor_fini(&a.a);
    rt_actor_fini(&idle.a);
    rt_node_free(node);
}

/* an actor may finish itself from its own handler */
static void fini_hook(tact_t *me, const rt_msg_t *m)
{
    if (m->tag == RT_SIG_USER)
        rt_actor_fini(&me->a);
}

static void test_fini_in_handler(void **state)
{
    (void)state;
    rt_node_t *node = rt_node_new("t", NULL);
    tact_t a;
    tact_init(&a, node, "a");
    a.hook = fini_hook;
    rt_buf_t *b = rt_buf_alloc(node, 10);
    assert_int_equal(rt_post(&a.a, NULL, RT_SIG_USER, NULL, 0, b), RT_OK);
    assert_int_equal(rt_post(&a.a, NULL, RT_SIG_USER + 1, NULL, 0, NULL), RT_OK);
    drain(node, 10);
    assert_int_equal(a.n, 1); /* the second was dropped with the actor */
    assert_int_equal(node->nactors, 0);
    assert_int_equal(node->slots_used, 0);
    size_t used;
    rt_buf_stats(node, &used, NULL);
    assert_int_equal(used, 0);
    rt_node_free(node);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fifo_and_batch),
        cmocka_unit_test(test_round_robin_order),
        cmocka_unit_test(test_run_to_completion),
        cmocka_unit_test(test_post_limits_and_buf_release),
        cmocka_unit_test(test_backpressure_resume),
        cmocka_unit_test(test_resume_needs_room),
        cmocka_unit_test(test_pool_limits_actor_count),
        cmocka_unit_test(test_start_stop),
        cmocka_unit_test(test_stop_waits_for_every_actor),
        cmocka_unit_test(test_stop_deadline),
        cmocka_unit_test(test_sigterm_stops),
        cmocka_unit_test(test_cron),
        cmocka_unit_test(test_fini_in_handler),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
