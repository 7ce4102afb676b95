/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * test_rt_timer.c: timers that post to their owner (runtime/rt_timer.c).
 *
 * One-shot and repeating timers over a bounded loop run, tag and id carried
 * in the message, stop, and the rule that keeps a slow actor from building
 * a backlog: a timer never has more than one message pending, so a firing
 * while the last one waits is skipped. Finishing a timer while its message
 * waits, or from inside its own handler, must not leak or deliver.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "rt.h"
#include "rt_i.h"

typedef struct tact {
    rt_actor_t a;
    unsigned n;
    uint32_t tag[64];
    uint64_t id[64];
    rt_timer_t *fini_me; /* rt_timer_fini() this one from its own handler */
} tact_t;

static void tact_dispatch(rt_actor_t *a, const rt_msg_t *m)
{
    tact_t *me = (tact_t *)a;
    if (me->n < 64) {
        me->tag[me->n] = m->tag;
        me->id[me->n] = m->u64;
    }
    me->n++;
    if (me->fini_me) {
        rt_timer_fini(me->fini_me);
        me->fini_me = NULL;
    }
}

static void break_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)w;
    (void)revents;
    ev_break(loop, EVBREAK_ONE);
}

/* run the loop for @s seconds (bounded by an ev_timer, no sleeping) */
static void run_for(rt_node_t *node, double s)
{
    ev_timer t;
    ev_timer_init(&t, break_cb, s, 0);
    ev_timer_start(rt_node_loop(node), &t);
    ev_run(rt_node_loop(node), 0);
    ev_timer_stop(rt_node_loop(node), &t);
}

static void setup_actor(rt_node_t **node, tact_t *a)
{
    *node = rt_node_new("t", NULL);
    assert_non_null(*node);
    memset(a, 0, sizeof *a);
    assert_int_equal(rt_actor_init(&a->a, *node, "a", tact_dispatch), RT_OK);
}

static void test_one_shot(void **state)
{
    (void)state;
    rt_node_t *node;
    tact_t a;
    setup_actor(&node, &a);
    rt_timer_t t;
    assert_int_equal(rt_timer_init(&t, &a.a, RT_SIG_USER + 7, 42), RT_OK);
    assert_false(rt_timer_active(&t));
    rt_timer_start(&t, 0.02, 0);
    assert_true(rt_timer_active(&t));
    run_for(node, 0.15);
    assert_int_equal(a.n, 1);
    assert_int_equal(a.tag[0], RT_SIG_USER + 7);
    assert_int_equal(a.id[0], 42);
    assert_false(rt_timer_active(&t));
    assert_false(t.pending);
    /* it can be started again */
    rt_timer_start(&t, 0, 0);
    run_for(node, 0.05);
    assert_int_equal(a.n, 2);
    rt_timer_fini(&t);
    rt_actor_fini(&a.a);
    assert_int_equal(node->slots_used, 0);
    rt_node_free(node);
}

static void test_repeat_and_stop(void **state)
{
    (void)state;
    rt_node_t *node;
    tact_t a;
    setup_actor(&node, &a);
    rt_timer_t t1, t2;
    assert_int_equal(rt_timer_init(&t1, &a.a, RT_SIG_TIMER, 1), RT_OK);
    assert_int_equal(rt_timer_init(&t2, &a.a, RT_SIG_TIMER, 2), RT_OK);
    rt_timer_start(&t1, 0.02, 0.02);
    rt_timer_start(&t2, 10, 0); /* never fires within the run */
    run_for(node, 0.21);
    /* about 10 ticks; a loaded machine may lose some, never gain */
    assert_true(a.n >= 3);
    assert_true(a.n <= 10);
    for (unsigned i = 0; i < a.n && i < 64; i++) {
        assert_int_equal(a.tag[i], RT_SIG_TIMER);
        assert_int_equal(a.id[i], 1);
    }
    assert_true(rt_timer_active(&t1));
    rt_timer_stop(&t1);
    assert_false(rt_timer_active(&t1));
    unsigned n = a.n;
    run_for(node, 0.06);
    assert_int_equal(a.n, n);
    rt_timer_fini(&t1);
    rt_timer_fini(&t2);
    rt_actor_fini(&a.a);
    rt_node_free(node);
}

static void test_skip_while_pending(void **state)
{
    (void)state;
    rt_node_t *node;
    tact_t a;
    setup_actor(&node, &a);
    rt_timer_t t;
    assert_int_equal(rt_timer_init(&t, &a.a, RT_SIG_TIMER, 5), RT_OK);
    rt_timer_start(&t, 100, 100);
    /* fire it three times before the owner runs: one message only */
    ev_invoke(rt_node_loop(node), &t.w, EV_TIMER);
    ev_invoke(rt_node_loop(node), &t.w, EV_TIMER);
    ev_invoke(rt_node_loop(node), &t.w, EV_TIMER);
    assert_true(t.pending);
    assert_int_equal(a.a.queued, 1);
    ev_run(rt_node_loop(node), EVRUN_NOWAIT);
    assert_int_equal(a.n, 1);
    assert_false(t.pending);
    /* after it was handled the next firing posts again */
    ev_invoke(rt_node_loop(node), &t.w, EV_TIMER);
    ev_run(rt_node_loop(node), EVRUN_NOWAIT);
    assert_int_equal(a.n, 2);
    rt_timer_fini(&t);
    rt_actor_fini(&a.a);
    rt_node_free(node);
}

static void test_fini_while_pending(void **state)
{
    (void)state;
    rt_node_t *node;
    tact_t a;
    setup_actor(&node, &a);
    rt_timer_t t;
    assert_int_equal(rt_timer_init(&t, &a.a, RT_SIG_TIMER, 5), RT_OK);
    rt_timer_start(&t, 100, 0);
    ev_invoke(rt_node_loop(node), &t.w, EV_TIMER);
    assert_int_equal(a.a.queued, 1);
    rt_timer_fini(&t); /* withdraws the message */
    assert_int_equal(a.a.queued, 0);
    ev_run(rt_node_loop(node), EVRUN_NOWAIT);
    assert_int_equal(a.n, 0);
    assert_int_equal(node->slots_used, 1); /* the cron's slot only */
    rt_actor_fini(&a.a);
    rt_node_free(node);
}

static void test_fini_in_own_handler(void **state)
{
    (void)state;
    rt_node_t *node;
    tact_t a;
    setup_actor(&node, &a);
    rt_timer_t t;
    assert_int_equal(rt_timer_init(&t, &a.a, RT_SIG_TIMER, 5), RT_OK);
    a.fini_me = &t;
    rt_timer_start(&t, 0, 0.01);
    run_for(node, 0.08);
    assert_int_equal(a.n, 1);
    assert_false(rt_timer_active(&t));
    assert_int_equal(node->slots_used, 1);
    rt_actor_fini(&a.a);
    rt_node_free(node);
}

/* timers do not need the pool once made: they fire with the pool full */
static void test_fires_with_pool_full(void **state)
{
    (void)state;
    rt_node_t *node;
    tact_t a;
    setup_actor(&node, &a);
    rt_timer_t t;
    assert_int_equal(rt_timer_init(&t, &a.a, RT_SIG_TIMER, 9), RT_OK);
    static rt_msg_t *held[5000];
    unsigned n = 0;
    while (n < 5000 && (held[n] = rt_msg_new(node, NULL, RT_SIG_USER)) != NULL)
        n++;
    assert_true(n > 4000 && n < 5000);
    rt_timer_t none;
    assert_int_equal(rt_timer_init(&none, &a.a, RT_SIG_TIMER, 0), RT_ERR);
    rt_timer_start(&t, 0, 0);
    run_for(node, 0.03);
    assert_int_equal(a.n, 1);
    assert_int_equal(a.id[0], 9);
    while (n)
        rt_msg_free(held[--n]);
    rt_timer_fini(&t);
    rt_actor_fini(&a.a);
    rt_node_free(node);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_shot),
        cmocka_unit_test(test_repeat_and_stop),
        cmocka_unit_test(test_skip_while_pending),
        cmocka_unit_test(test_fini_while_pending),
        cmocka_unit_test(test_fini_in_own_handler),
        cmocka_unit_test(test_fires_with_pool_full),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
