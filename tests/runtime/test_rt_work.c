/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * test_rt_work.c: the worker pool (runtime/rt_work.c).
 *
 * A job runs on another thread and its result arrives in the owner's
 * mailbox as a message (tag, u64, arg); a full pool says RT_AGAIN and
 * RESUMEs the owner once a slot is free; two workers really run two jobs at
 * once (a rendezvous that only two concurrent jobs can pass) and a thousand
 * jobs each complete exactly once; workers = 0 runs the job inline at submit
 * and still reports it by message; an owner that goes away with jobs queued
 * and running cancels the first, waits for the second and gets no
 * completion; a node freed with jobs in flight joins its threads; an owner
 * can hold RT_SIG_STOP until its jobs are in. Every wait is bounded in
 * iterations and in time.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "rt.h"
#include "rt_i.h"

#define TAG_DONE (RT_SIG_USER + 7)
#define MAXJOBS  1200u

/* ---- jobs ------------------------------------------------------------------ */

typedef struct job {
    uint32_t id;
    uint8_t data[256];
    uint64_t sum;              /* written by the job */
    pthread_t thread;          /* where it ran */
    unsigned sleep_ms;         /* how long it takes */
    atomic_int *gate;          /* when set: wait until *gate != 0 (bounded) */
    atomic_int *rendezvous;    /* when set: arrive, then wait for 2 arrivals (bounded) */
    bool met;                  /* the rendezvous saw both */
    atomic_int *started, *finished;
} job_t;

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void job_fn(void *arg)
{
    job_t *j = arg;
    if (j->started)
        atomic_fetch_add(j->started, 1);
    j->thread = pthread_self();
    if (j->gate)
        for (unsigned i = 0; i < 5000 && !atomic_load(j->gate); i++)
            sleep_ms(1);
    if (j->rendezvous) {
        atomic_fetch_add(j->rendezvous, 1);
        for (unsigned i = 0; i < 5000 && atomic_load(j->rendezvous) < 2; i++)
            sleep_ms(1);
        j->met = atomic_load(j->rendezvous) >= 2;
    }
    if (j->sleep_ms)
        sleep_ms(j->sleep_ms);
    uint64_t s = j->id;
    for (size_t i = 0; i < sizeof j->data; i++)
        s = s * 31u + j->data[i];
    j->sum = s;
    if (j->finished)
        atomic_fetch_add(j->finished, 1);
}

static uint64_t expected_sum(const job_t *j)
{
    uint64_t s = j->id;
    for (size_t i = 0; i < sizeof j->data; i++)
        s = s * 31u + j->data[i];
    return s;
}

static void job_setup(job_t *j, uint32_t id)
{
    memset(j, 0, sizeof *j);
    j->id = id;
    for (size_t i = 0; i < sizeof j->data; i++)
        j->data[i] = (uint8_t)(id * 7u + i);
}

/* ---- the owner actor ----------------------------------------------------------- */

typedef struct owner {
    rt_actor_t a;               /* first */
    unsigned done, resumes, stops, others;
    unsigned seen[MAXJOBS];     /* completions per job id */
    uint64_t u64_bad;           /* completions whose u64 did not match the arg */
    job_t *jobs;                /* the owner's jobs (for refills) */
    unsigned njobs, next;       /* jobs to submit in all, next to submit */
    bool refill;                /* submit more on RESUME and on each completion */
    bool hold_stop;             /* on RT_SIG_STOP, wait for the jobs */
    bool stopping;
    unsigned again;             /* RT_AGAIN answers seen while refilling */
} owner_t;

static void refill(owner_t *o)
{
    while (o->next < o->njobs) {
        job_t *j = &o->jobs[o->next];
        int rc = rt_work_submit(&o->a, job_fn, j, TAG_DONE, j->id);
        if (rc == RT_AGAIN) {
            o->again++;
            return;
        }
        assert_int_equal(rc, RT_OK);
        o->next++;
    }
}

static void owner_dispatch(rt_actor_t *a, const rt_msg_t *m)
{
    owner_t *o = (owner_t *)a;
    switch (m->tag) {
    case TAG_DONE: {
        job_t *j = rt_work_arg(m);
        assert_non_null(j);
        assert_null(m->from);
        if (m->u64 != j->id)
            o->u64_bad++;
        assert_true(j->id < MAXJOBS);
        o->seen[j->id]++;
        assert_true(j->sum == expected_sum(j)); /* the job's writes are visible */
        o->done++;
        if (o->refill)
            refill(o);
        if (o->stopping && o->done == o->next)
            rt_actor_stopped(a);
        break;
    }
    case RT_SIG_RESUME:
        o->resumes++;
        if (o->refill)
            refill(o);
        break;
    case RT_SIG_STOP:
        o->stops++;
        if (o->hold_stop && o->done < o->next)
            o->stopping = true;
        else
            rt_actor_stopped(a);
        break;
    case RT_SIG_START:
        if (o->refill)
            refill(o);
        break;
    default:
        o->others++;
        break;
    }
}

static owner_t *owner_new(rt_node_t *node, const char *name)
{
    owner_t *o = calloc(1, sizeof *o);
    assert_non_null(o);
    assert_int_equal(rt_actor_init(&o->a, node, name, owner_dispatch), RT_OK);
    return o;
}

/* ---- running the loop, bounded ---------------------------------------------------- */

static void tick_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)w;
    (void)revents;
}

/* run @node's loop until @cond(@arg) holds, at most @seconds and 100000
 * iterations; @return whether it holds */
static bool run_until(rt_node_t *node, bool (*cond)(void *), void *arg, double seconds)
{
    struct ev_loop *loop = rt_node_loop(node);
    ev_timer tick;
    ev_timer_init(&tick, tick_cb, 0.005, 0.005); /* bounds each blocking wait */
    ev_timer_start(loop, &tick);
    uint64_t end = rt_mono_us() + (uint64_t)(seconds * 1e6);
    for (unsigned i = 0; i < 100000 && !cond(arg) && rt_mono_us() < end; i++)
        ev_run(loop, EVRUN_ONCE);
    ev_timer_stop(loop, &tick);
    return cond(arg);
}

typedef struct want {
    owner_t *o;
    unsigned done;
} want_t;

static bool done_reached(void *arg)
{
    want_t *w = arg;
    return w->o->done >= w->done;
}

static bool resumed(void *arg)
{
    return ((owner_t *)arg)->resumes > 0;
}

static bool queue_empty(void *arg)
{
    return ((rt_node_t *)arg)->rq_head == NULL;
}

static rt_node_t *node_with(unsigned workers)
{
    rt_node_t *node = rt_node_new("t", NULL);
    assert_non_null(node);
    assert_int_equal(rt_work_set_workers(node, workers), RT_OK);
    assert_int_equal(rt_work_workers(node), workers);
    return node;
}

/* ---- tests ------------------------------------------------------------------------- */

static void test_result_in_mailbox(void **state)
{
    (void)state;
    rt_node_t *node = node_with(1);
    owner_t *o = owner_new(node, "owner");
    job_t jobs[8];
    for (uint32_t i = 0; i < 8; i++) {
        job_setup(&jobs[i], i);
        assert_int_equal(rt_work_submit(&o->a, job_fn, &jobs[i], TAG_DONE, i), RT_OK);
    }
    assert_int_equal(o->done, 0); /* nothing before the loop runs */
    want_t w = {o, 8};
    assert_true(run_until(node, done_reached, &w, 10));
    assert_int_equal(o->done, 8);
    assert_int_equal(o->u64_bad, 0);
    for (uint32_t i = 0; i < 8; i++) {
        assert_int_equal(o->seen[i], 1);
        assert_true(jobs[i].sum == expected_sum(&jobs[i]));
        /* on the worker, not on the loop's thread */
        assert_false(pthread_equal(jobs[i].thread, pthread_self()));
    }
    /* one worker: they all ran on the same thread */
    for (uint32_t i = 1; i < 8; i++)
        assert_true(pthread_equal(jobs[i].thread, jobs[0].thread));
    assert_int_equal(rt_work_inflight(&o->a), 0);
    /* the pool started: the count is fixed now */
    assert_int_equal(rt_work_set_workers(node, 3), RT_ERR);
    rt_actor_fini(&o->a);
    assert_int_equal(node->slots_used, 0);
    rt_node_free(node);
    free(o);
}

static void test_bad_calls(void **state)
{
    (void)state;
    rt_node_t *node = node_with(1);
    owner_t *o = owner_new(node, "owner");
    job_t j;
    job_setup(&j, 1);
    assert_int_equal(rt_work_submit(&o->a, NULL, &j, TAG_DONE, 0), RT_ERR);
    assert_int_equal(rt_work_submit(&o->a, job_fn, &j, RT_SIG_RESUME, 0), RT_ERR);
    assert_null(rt_work_arg(NULL));
    assert_int_equal(rt_work_set_workers(node, RT_WORK_MAX_THREADS + 1), RT_ERR);
    assert_true(rt_work_default_workers() >= 1);
    assert_true(rt_work_default_workers() <= RT_WORK_MAX_THREADS);
    rt_actor_fini(&o->a);
    rt_node_free(node);
    free(o);
}

static void test_backpressure_resume(void **state)
{
    (void)state;
    rt_node_t *node = node_with(1);
    owner_t *o = owner_new(node, "owner");
    job_t *jobs = calloc(RT_WORK_QUEUE + 1, sizeof *jobs);
    assert_non_null(jobs);
    atomic_int gate = 0;
    for (uint32_t i = 0; i < RT_WORK_QUEUE + 1; i++) {
        job_setup(&jobs[i], i);
        jobs[i].gate = &gate; /* nothing finishes until the gate opens */
    }
    for (uint32_t i = 0; i < RT_WORK_QUEUE; i++)
        assert_int_equal(rt_work_submit(&o->a, job_fn, &jobs[i], TAG_DONE, i), RT_OK);
    assert_int_equal(rt_work_inflight(&o->a), RT_WORK_QUEUE);
    /* full: refused, never queued beyond the bound */
    assert_int_equal(rt_work_submit(&o->a, job_fn, &jobs[RT_WORK_QUEUE], TAG_DONE, 99),
                     RT_AGAIN);
    assert_int_equal(o->resumes, 0);
    assert_int_equal(node->work_waiters, 1);
    atomic_store(&gate, 1);
    assert_true(run_until(node, resumed, o, 10));
    assert_int_equal(o->resumes, 1);
    assert_int_equal(node->work_waiters, 0);
    assert_true(o->done >= 1);
    /* and now it is taken */
    assert_int_equal(rt_work_submit(&o->a, job_fn, &jobs[RT_WORK_QUEUE], TAG_DONE,
                                    RT_WORK_QUEUE),
                     RT_OK);
    want_t w = {o, RT_WORK_QUEUE + 1};
    assert_true(run_until(node, done_reached, &w, 10));
    for (uint32_t i = 0; i < RT_WORK_QUEUE + 1; i++)
        assert_int_equal(o->seen[i], 1);
    assert_int_equal(o->u64_bad, 0);
    rt_actor_fini(&o->a);
    rt_node_free(node);
    free(jobs);
    free(o);
}

static void test_two_workers_many_jobs(void **state)
{
    (void)state;
    rt_node_t *node = node_with(2);
    owner_t *o = owner_new(node, "owner");
    /* two jobs that can finish only if both run at the same time */
    atomic_int rv = 0;
    job_t pair[2];
    for (uint32_t i = 0; i < 2; i++) {
        job_setup(&pair[i], i);
        pair[i].rendezvous = &rv;
        assert_int_equal(rt_work_submit(&o->a, job_fn, &pair[i], TAG_DONE, i), RT_OK);
    }
    want_t w2 = {o, 2};
    assert_true(run_until(node, done_reached, &w2, 10));
    assert_true(pair[0].met);
    assert_true(pair[1].met);
    assert_false(pthread_equal(pair[0].thread, pair[1].thread));

    /* a thousand more, refilled as slots free: each completes exactly once */
    memset(o->seen, 0, sizeof o->seen);
    o->done = 0;
    unsigned n = 1000;
    job_t *jobs = calloc(n, sizeof *jobs);
    assert_non_null(jobs);
    for (uint32_t i = 0; i < n; i++)
        job_setup(&jobs[i], i);
    o->jobs = jobs;
    o->njobs = n;
    o->next = 0;
    o->refill = true;
    refill(o);
    assert_int_equal(o->next, RT_WORK_QUEUE); /* the bound held */
    want_t w = {o, n};
    assert_true(run_until(node, done_reached, &w, 30));
    assert_int_equal(o->done, n);
    assert_int_equal(o->next, n);
    assert_true(o->again >= 1);
    assert_int_equal(o->u64_bad, 0);
    for (uint32_t i = 0; i < n; i++)
        assert_int_equal(o->seen[i], 1);
    /* nothing more arrives afterwards */
    run_until(node, queue_empty, node, 1);
    assert_int_equal(o->done, n);
    assert_int_equal(rt_work_inflight(&o->a), 0);
    rt_actor_fini(&o->a);
    assert_int_equal(node->slots_used, 0);
    rt_node_free(node);
    free(jobs);
    free(o);
}

static void test_inline_mode(void **state)
{
    (void)state;
    rt_node_t *node = node_with(0);
    owner_t *o = owner_new(node, "owner");
    job_t j;
    job_setup(&j, 5);
    assert_int_equal(rt_work_submit(&o->a, job_fn, &j, TAG_DONE, 5), RT_OK);
    /* it ran already, here, on the loop's thread ... */
    assert_true(j.sum == expected_sum(&j));
    assert_true(pthread_equal(j.thread, pthread_self()));
    assert_null(node->work); /* no thread was started */
    /* ... and is reported like any job: by a message, after the caller returned */
    assert_int_equal(o->done, 0);
    want_t w = {o, 1};
    assert_true(run_until(node, done_reached, &w, 5));
    assert_int_equal(o->seen[5], 1);
    assert_int_equal(o->u64_bad, 0);
    /* no job slots in inline mode: never RT_AGAIN for them */
    job_t *many = calloc(2 * RT_WORK_QUEUE, sizeof *many);
    assert_non_null(many);
    for (uint32_t i = 0; i < 2 * RT_WORK_QUEUE; i++) {
        job_setup(&many[i], 10 + i);
        assert_int_equal(rt_work_submit(&o->a, job_fn, &many[i], TAG_DONE, 10 + i), RT_OK);
    }
    want_t w2 = {o, 1 + 2 * RT_WORK_QUEUE};
    assert_true(run_until(node, done_reached, &w2, 5));
    rt_actor_fini(&o->a);
    rt_node_free(node);
    free(many);
    free(o);
}

static void *open_gate_later(void *arg)
{
    sleep_ms(100);
    atomic_store((atomic_int *)arg, 1);
    return NULL;
}

static void test_owner_gone_with_jobs_in_flight(void **state)
{
    (void)state;
    rt_node_t *node = node_with(2);
    owner_t *o = owner_new(node, "owner");
    atomic_int started = 0, finished = 0, gate = 0;
    job_t jobs[10];
    for (uint32_t i = 0; i < 10; i++) {
        job_setup(&jobs[i], i);
        jobs[i].gate = &gate;
        jobs[i].started = &started;
        jobs[i].finished = &finished;
        assert_int_equal(rt_work_submit(&o->a, job_fn, &jobs[i], TAG_DONE, i), RT_OK);
    }
    /* the two workers hold a job each until the gate opens; the rest wait */
    for (unsigned i = 0; i < 2000 && atomic_load(&started) < 2; i++)
        sleep_ms(1);
    assert_int_equal(atomic_load(&started), 2);
    assert_int_equal(atomic_load(&finished), 0);
    pthread_t opener;
    assert_int_equal(pthread_create(&opener, NULL, open_gate_later, &gate), 0);
    rt_actor_fini(&o->a); /* returns once the running two returned */
    /* the running ones are finished, the queued ones never start */
    int s = atomic_load(&started);
    assert_true(s >= 2);
    assert_int_equal(atomic_load(&finished), s);
    assert_true(s < 10);
    pthread_join(opener, NULL);
    sleep_ms(100);
    assert_int_equal(atomic_load(&started), s);
    assert_int_equal(o->done, 0);
    /* their slots come back: a new owner can fill the whole pool */
    run_until(node, queue_empty, node, 1);
    ev_run(rt_node_loop(node), EVRUN_NOWAIT);
    assert_int_equal(node->slots_used, 0);
    owner_t *o2 = owner_new(node, "owner2");
    job_t *more = calloc(RT_WORK_QUEUE, sizeof *more);
    assert_non_null(more);
    for (uint32_t i = 0; i < RT_WORK_QUEUE; i++) {
        job_setup(&more[i], i);
        assert_int_equal(rt_work_submit(&o2->a, job_fn, &more[i], TAG_DONE, i), RT_OK);
    }
    want_t w = {o2, RT_WORK_QUEUE};
    assert_true(run_until(node, done_reached, &w, 10));
    assert_int_equal(o->done, 0); /* the first owner never heard back */
    rt_actor_fini(&o2->a);
    rt_node_free(node);
    free(more);
    free(o2);
    free(o);
}

static void test_node_free_with_jobs_in_flight(void **state)
{
    (void)state;
    rt_node_t *node = node_with(2);
    owner_t *o = owner_new(node, "owner");
    atomic_int started = 0, finished = 0;
    job_t jobs[6];
    for (uint32_t i = 0; i < 6; i++) {
        job_setup(&jobs[i], i);
        jobs[i].sleep_ms = 20;
        jobs[i].started = &started;
        jobs[i].finished = &finished;
        assert_int_equal(rt_work_submit(&o->a, job_fn, &jobs[i], TAG_DONE, i), RT_OK);
    }
    for (unsigned i = 0; i < 2000 && atomic_load(&started) < 1; i++)
        sleep_ms(1);
    /* the owner is still registered: the node finishes it, then joins */
    rt_node_free(node);
    assert_int_equal(atomic_load(&finished), atomic_load(&started));
    assert_true(atomic_load(&started) >= 1);
    assert_int_equal(o->done, 0);
    free(o);
}

static void test_stop_waits_for_jobs(void **state)
{
    (void)state;
    rt_node_t *node = node_with(1);
    rt_node_set_stop_deadline(node, 10);
    owner_t *o = owner_new(node, "owner");
    job_t jobs[5];
    for (uint32_t i = 0; i < 5; i++) {
        job_setup(&jobs[i], i);
        jobs[i].sleep_ms = 20;
    }
    o->jobs = jobs;
    o->njobs = 5;
    o->refill = true;     /* submitted on RT_SIG_START */
    o->hold_stop = true;  /* and RT_SIG_STOP waits for them */
    rt_node_stop(node);   /* STOP right after START */
    assert_int_equal(rt_node_run(node), RT_OK);
    assert_int_equal(o->stops, 1);
    assert_int_equal(o->done, 5);
    for (uint32_t i = 0; i < 5; i++)
        assert_int_equal(o->seen[i], 1);
    rt_actor_fini(&o->a);
    rt_node_free(node);
    free(o);
}

static void test_msg_pool_full(void **state)
{
    (void)state;
    rt_node_t *node = node_with(1);
    owner_t *o = owner_new(node, "owner");
    /* take every user slot */
    rt_msg_t *held[5000];
    unsigned n = 0;
    while (n < 5000 && (held[n] = rt_msg_new(node, NULL, RT_SIG_USER)))
        n++;
    assert_true(n > 0 && n < 5000);
    job_t j;
    job_setup(&j, 3);
    assert_int_equal(rt_work_submit(&o->a, job_fn, &j, TAG_DONE, 3), RT_AGAIN);
    assert_true(j.sum == 0); /* refused before it ran */
    for (unsigned i = 0; i < n; i++)
        rt_msg_free(held[i]);
    assert_true(run_until(node, resumed, o, 5));
    assert_int_equal(rt_work_submit(&o->a, job_fn, &j, TAG_DONE, 3), RT_OK);
    want_t w = {o, 1};
    assert_true(run_until(node, done_reached, &w, 5));
    assert_int_equal(o->seen[3], 1);
    rt_actor_fini(&o->a);
    rt_node_free(node);
    free(o);
}

static void test_conf_key(void **state)
{
    (void)state;
    char dir[] = "/tmp/test_rt_work.XXXXXX", path[64], err[256], cmd[96];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/n.conf", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("[node]\nname = t\nroles = ps\nworkers = 3\n", f);
    fclose(f);
    rt_conf_t *c = rt_conf_load(path, err, sizeof err);
    assert_non_null(c);
    rt_node_t *node = rt_node_new("t", c);
    assert_non_null(node);
    assert_int_equal(rt_work_workers(node), 3);
    rt_node_free(node);
    rt_conf_free(c);
    /* absent: one less than the CPUs, at least one */
    f = fopen(path, "w");
    assert_non_null(f);
    fputs("[node]\nname = t\nroles = ps\n", f);
    fclose(f);
    c = rt_conf_load(path, err, sizeof err);
    assert_non_null(c);
    node = rt_node_new("t", c);
    assert_non_null(node);
    assert_int_equal(rt_work_workers(node), rt_work_default_workers());
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    assert_int_equal(rt_work_default_workers(), cpus > 2 ? (unsigned)cpus - 1 : 1);
    rt_node_free(node);
    rt_conf_free(c);
    /* out of bounds */
    f = fopen(path, "w");
    assert_non_null(f);
    fputs("[node]\nname = t\nroles = ps\nworkers = 65\n", f);
    fclose(f);
    assert_null(rt_conf_load(path, err, sizeof err));
    assert_non_null(strstr(err, "workers"));
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    rt_log_setup("test_rt_work", "t", RT_LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_result_in_mailbox),
        cmocka_unit_test(test_bad_calls),
        cmocka_unit_test(test_backpressure_resume),
        cmocka_unit_test(test_two_workers_many_jobs),
        cmocka_unit_test(test_inline_mode),
        cmocka_unit_test(test_owner_gone_with_jobs_in_flight),
        cmocka_unit_test(test_node_free_with_jobs_in_flight),
        cmocka_unit_test(test_stop_waits_for_jobs),
        cmocka_unit_test(test_msg_pool_full),
        cmocka_unit_test(test_conf_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
