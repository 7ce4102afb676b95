/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * test_rt_pool.c: the node's budgeted buffer pool and its message slot pool
 * (runtime/rt_pool.c).
 *
 * Size classes, the byte budget (exhaustion, then room again after a
 * release), reuse through the free lists, a window of big buffers kept
 * for reuse (up to half the budget), the cache giving way to the budget, RT_SIG_RESUME for an actor refused a buffer, and the lazy slot
 * allocation that keeps an idle node small.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "rt.h"
#include "rt_i.h"

static char tmpdir[64];

/* a node with a 4 MiB buffer budget and 64 slots, from a real config file */
static rt_node_t *small_node(rt_conf_t **conf)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/test_rt_pool.XXXXXX");
    assert_non_null(mkdtemp(tmpdir));
    char path[128];
    snprintf(path, sizeof path, "%s/node.conf", tmpdir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("[node]\nname = t\nroles = ps\nmemory = 4M\nmsg_slots = 64\n", f);
    fclose(f);
    char err[256];
    *conf = rt_conf_load(path, err, sizeof err);
    assert_non_null(*conf);
    rt_node_t *node = rt_node_new("t", *conf);
    assert_non_null(node);
    return node;
}

static void small_node_free(rt_node_t *node, rt_conf_t *conf)
{
    rt_node_free(node);
    rt_conf_free(conf);
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    assert_int_equal(system(cmd), 0);
}

static void test_classes(void **state)
{
    (void)state;
    rt_node_t *node = rt_node_new("t", NULL);
    size_t used, budget;
    rt_buf_stats(node, &used, &budget);
    assert_int_equal(used, 0);
    assert_int_equal(budget, 64u << 20);
    rt_buf_t *a = rt_buf_alloc(node, 0), *b = rt_buf_alloc(node, 4096),
             *c = rt_buf_alloc(node, 4097), *d = rt_buf_alloc(node, 1u << 20),
             *e = rt_buf_alloc(node, RT_MAX_PAYLOAD + RT_MAX_HEADER);
    assert_non_null(a);
    assert_non_null(b);
    assert_non_null(c);
    assert_non_null(d);
    assert_non_null(e);
    assert_int_equal(a->cap, 4096);
    assert_int_equal(b->cap, 4096);
    assert_int_equal(c->cap, 8192);
    assert_int_equal(d->cap, 1u << 20);
    assert_int_equal(e->cap, 32u << 20);
    assert_int_equal(a->refs, 1);
    assert_int_equal(a->len, 0);
    memset(e->data, 0xAB, e->cap); /* the whole capacity is usable */
    assert_null(rt_buf_alloc(node, RT_MAX_PAYLOAD + RT_MAX_HEADER + 1));
    rt_buf_stats(node, &used, NULL);
    assert_int_equal(used, 4096 + 4096 + 8192 + (1u << 20) + (32u << 20));
    rt_buf_unref(a);
    rt_buf_unref(b);
    rt_buf_unref(c);
    rt_buf_unref(d);
    rt_buf_unref(e);
    rt_buf_unref(NULL);
    rt_buf_stats(node, &used, NULL);
    assert_int_equal(used, 0);
    rt_node_free(node);
}

static void test_budget_and_reuse(void **state)
{
    (void)state;
    rt_conf_t *conf;
    rt_node_t *node = small_node(&conf);
    rt_buf_t *b[5];
    for (int i = 0; i < 4; i++) {
        b[i] = rt_buf_alloc(node, 1u << 20);
        assert_non_null(b[i]);
    }
    assert_null(rt_buf_alloc(node, 1u << 20)); /* 4 MiB budget is full */
    assert_null(rt_buf_alloc(node, 1));        /* even for a small one */
    /* a second reference keeps it counted */
    rt_buf_ref(b[0]);
    rt_buf_unref(b[0]);
    assert_null(rt_buf_alloc(node, 1));
    rt_buf_unref(b[0]);
    b[4] = rt_buf_alloc(node, 1000);
    assert_non_null(b[4]);
    assert_int_equal(b[4]->cap, 4096);
    /* a freed small buffer is reused from its free list */
    rt_buf_t *old = b[4];
    rt_buf_unref(b[4]);
    assert_int_equal(node->buf_cached, 4096);
    b[4] = rt_buf_alloc(node, 4000);
    assert_ptr_equal(b[4], old);
    assert_int_equal(node->buf_cached, 0);
    rt_buf_unref(b[4]);
    for (int i = 1; i < 4; i++)
        rt_buf_unref(b[i]);
    size_t used;
    rt_buf_stats(node, &used, NULL);
    assert_int_equal(used, 0);
    small_node_free(node, conf);
}

static void test_cache_gives_way(void **state)
{
    (void)state;
    rt_conf_t *conf;
    rt_node_t *node = small_node(&conf);
    /* fill the cache: 512 x 4 KiB = 2 MiB = budget / RT_BUF_KEEP_DIV */
    static rt_buf_t *small[700];
    for (int i = 0; i < 700; i++) {
        small[i] = rt_buf_alloc(node, 4096);
        assert_non_null(small[i]);
    }
    for (int i = 0; i < 700; i++)
        rt_buf_unref(small[i]);
    assert_int_equal(node->buf_cached, (4u << 20) / RT_BUF_KEEP_DIV); /* bounded, the rest freed */
    /* the whole budget is still there for big buffers, and the cache shrinks */
    rt_buf_t *big[4];
    for (int i = 0; i < 4; i++) {
        big[i] = rt_buf_alloc(node, 1u << 20);
        assert_non_null(big[i]);
        assert_true(node->buf_used + node->buf_cached <= node->buf_budget);
    }
    assert_int_equal(node->buf_cached, 0);
    for (int i = 0; i < 4; i++)
        rt_buf_unref(big[i]);
    rt_buf_trim(node);
    assert_int_equal(node->buf_cached, 0);
    small_node_free(node, conf);
}

/* a window of big buffers released at once (one ack) is kept for the next
 * window, up to half the budget: the same memory comes back, no malloc;
 * an idle trim gives it all back */
static void test_cache_keeps_window(void **state)
{
    (void)state;
    rt_conf_t *conf;
    rt_node_t *node = small_node(&conf);
    rt_buf_t *w[3], *again[2];
    for (int i = 0; i < 3; i++) {
        w[i] = rt_buf_alloc(node, (1u << 20) - 100); /* a batch: the 1 MiB class */
        assert_non_null(w[i]);
        memset(w[i]->data, i, w[i]->cap);
    }
    for (int i = 0; i < 3; i++)
        rt_buf_unref(w[i]);
    /* two of the three kept: 2 MiB = budget / 2; the third went to malloc */
    assert_int_equal(node->buf_cached, 2u << 20);
    assert_int_equal(node->buf_used, 0);
    for (int i = 0; i < 2; i++) {
        again[i] = rt_buf_alloc(node, 1u << 20);
        assert_non_null(again[i]);
        assert_true(again[i] == w[0] || again[i] == w[1] || again[i] == w[2]);
    }
    assert_ptr_not_equal(again[0], again[1]);
    assert_int_equal(node->buf_cached, 0);
    for (int i = 0; i < 2; i++)
        rt_buf_unref(again[i]);
    assert_int_equal(node->buf_cached, 2u << 20);
    /* the budget still serves a buffer the cache's room is needed for */
    rt_buf_t *big = rt_buf_alloc(node, 4u << 20);
    assert_non_null(big);
    assert_int_equal(node->buf_cached, 0);
    rt_buf_unref(big);
    rt_buf_trim(node); /* what the node does when idle */
    assert_int_equal(node->buf_cached, 0);
    small_node_free(node, conf);
}

typedef struct {
    rt_actor_t a;
    unsigned resumes;
} tact_t;

static void tact_dispatch(rt_actor_t *a, const rt_msg_t *m)
{
    if (m->tag == RT_SIG_RESUME)
        ((tact_t *)a)->resumes++;
}

static void test_buf_resume(void **state)
{
    (void)state;
    rt_conf_t *conf;
    rt_node_t *node = small_node(&conf);
    tact_t w, other;
    memset(&w, 0, sizeof w);
    memset(&other, 0, sizeof other);
    assert_int_equal(rt_actor_init(&w.a, node, "waiter", tact_dispatch), RT_OK);
    assert_int_equal(rt_actor_init(&other.a, node, "other", tact_dispatch), RT_OK);
    rt_buf_t *b[4];
    for (int i = 0; i < 4; i++)
        b[i] = rt_buf_alloc(node, 1u << 20);
    rt_buf_t *s = rt_buf_alloc(node, 1); /* fails: full */
    assert_null(s);
    assert_null(rt_buf_alloc_for(node, &w.a, 2u << 20));
    assert_true(w.a.wants_resume);
    assert_false(other.a.wants_resume);
    /* more than the budget can ever hold: refused without a promise */
    assert_null(rt_buf_alloc_for(node, &other.a, 8u << 20));
    assert_false(other.a.wants_resume);
    /* 1 MiB free is not the 2 MiB it asked for */
    rt_buf_unref(b[0]);
    ev_run(rt_node_loop(node), EVRUN_NOWAIT);
    assert_int_equal(w.resumes, 0);
    rt_buf_unref(b[1]);
    ev_run(rt_node_loop(node), EVRUN_NOWAIT);
    assert_int_equal(w.resumes, 1);
    assert_false(w.a.wants_resume);
    assert_int_equal(other.resumes, 0);
    rt_buf_t *got = rt_buf_alloc_for(node, &w.a, 2u << 20);
    assert_non_null(got);
    rt_buf_unref(got);
    rt_buf_unref(b[2]);
    rt_buf_unref(b[3]);
    ev_run(rt_node_loop(node), EVRUN_NOWAIT);
    assert_int_equal(w.resumes, 1); /* no new refusal, no new RESUME */
    rt_actor_fini(&w.a);
    rt_actor_fini(&other.a);
    small_node_free(node, conf);
}

static void test_slots_lazy_and_bounded(void **state)
{
    (void)state;
    rt_node_t *node = rt_node_new("t", NULL);
    assert_int_equal(node->slots_made, 0); /* nothing before it is needed */
    rt_msg_t *m = rt_msg_new(node, NULL, RT_SIG_USER + 3);
    assert_non_null(m);
    assert_int_equal(m->tag, RT_SIG_USER + 3);
    assert_int_equal(m->len, 0);
    assert_null(m->buf);
    assert_null(m->link);
    assert_int_equal(node->slots_made, RT_SLOT_CHUNK);
    rt_msg_free(m);
    /* recycled: the same slot comes back, no new chunk */
    rt_msg_t *m2 = rt_msg_new(node, NULL, RT_SIG_USER);
    assert_ptr_equal(m2, m);
    rt_msg_free(m2);
    /* the bound is msg_slots (4096 by default) */
    static rt_msg_t *held[5000];
    unsigned n = 0;
    while (n < 5000 && (held[n] = rt_msg_new(node, NULL, RT_SIG_USER)) != NULL)
        n++;
    assert_int_equal(n, 4096);
    assert_int_equal(node->slots_made, 4096);
    while (n)
        rt_msg_free(held[--n]);
    assert_int_equal(node->slots_used, 0);
    rt_node_free(node);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_classes),
        cmocka_unit_test(test_budget_and_reuse),
        cmocka_unit_test(test_cache_gives_way),
        cmocka_unit_test(test_cache_keeps_window),
        cmocka_unit_test(test_buf_resume),
        cmocka_unit_test(test_slots_lazy_and_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
