/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * rt_work.c: the node's worker pool, CPU-heavy jobs beside the event loop.
 *
 * The runtime is single-threaded: one loop, run-to-completion handlers. A
 * handler that compresses a megabyte or hashes a batch would hold every
 * other actor and every socket for that long, and leave the machine's other
 * cores idle. So an actor hands such work to a small pool of threads
 * (rt_work_submit) and gets the result back as an ordinary message in its
 * mailbox; the loop never waits for a job.
 *
 * What is shared between threads, and nothing else: the queue of jobs to
 * run and the list of jobs that finished, both under one mutex (w->mu),
 * plus the job's own fn/arg, which the submitter wrote before queueing and
 * reads again only after the job came back through the same mutex. One lock
 * for both lists keeps the job's state (queued, running, done) in one place,
 * which is what rt_work_forget() needs to cancel and wait; the critical
 * sections are a few pointer moves, against jobs that take a millisecond.
 * Everything else (the free list of job slots, the completion messages, the
 * mailboxes, the pools) is touched by the loop thread only: a worker wakes
 * the loop with ev_async_send(), and the loop posts the completion
 * messages. A job must not touch actors, messages, buffers' reference
 * counts or any runtime object: it works on the bytes its arg points to.
 *
 * Bounded: RT_WORK_QUEUE job slots per node (queued, running or finished
 * but not yet posted). A full pool is RT_AGAIN with RT_SIG_RESUME once a
 * slot is free. The completion message is taken from the slot pool at
 * submit time, so a job that ran can always be reported.
 *
 * Workers: [node] workers threads, started at the first job (a node that
 * never submits costs no thread). workers = 0 runs each job inline at
 * submit, on the loop, and still reports it by message, for tests and for
 * one-core appliances. Threads block every signal: signals are the loop's.
 */
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rt_i.h"

#define RT_WORK_STACK (1u << 20) /* bytes of stack per worker thread */

typedef enum {
    JOB_FREE = 0, /* on the free list */
    JOB_QUEUED,   /* on the queue, waiting for a worker */
    JOB_RUNNING,  /* a worker runs fn */
    JOB_DONE,     /* on the done list, waiting for the loop */
} job_state_t;

typedef struct rt_job {
    struct rt_job *next;   /* queue, done list or free list */
    rt_work_fn fn;
    void *arg;
    rt_actor_t *owner;     /* loop thread only; NULL once the owner went away */
    rt_msg_t *msg;         /* the completion, taken at submit; loop thread only */
    job_state_t state;     /* under mu */
} rt_job_t;

struct rt_work {
    rt_node_t *node;
    unsigned nthreads;        /* started */
    pthread_t *threads;
    pthread_mutex_t mu;
    pthread_cond_t cv_job;    /* a job was queued, or quit was set */
    pthread_cond_t cv_done;   /* a job finished running */
    rt_job_t *q_head, *q_tail;       /* queued, under mu */
    rt_job_t *done_head, *done_tail; /* finished, under mu */
    bool quit;                /* under mu: run what is queued, then exit */
    ev_async async;           /* workers -> loop: the done list is not empty */
    rt_job_t *free_list;      /* loop thread only */
    unsigned used;            /* loop thread only: slots not on the free list */
    rt_job_t jobs[RT_WORK_QUEUE];
};

/* ---- worker threads ----------------------------------------------------------- */

static void *worker_main(void *p)
{
    rt_work_t *w = p;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->q_head && !w->quit)
            pthread_cond_wait(&w->cv_job, &w->mu);
        rt_job_t *j = w->q_head;
        if (!j)
            break; /* quit, and nothing left to run */
        w->q_head = j->next;
        if (!w->q_head)
            w->q_tail = NULL;
        j->next = NULL;
        j->state = JOB_RUNNING;
        pthread_mutex_unlock(&w->mu);

        j->fn(j->arg);

        pthread_mutex_lock(&w->mu);
        j->state = JOB_DONE;
        bool wake = !w->done_head;
        if (w->done_tail)
            w->done_tail->next = j;
        else
            w->done_head = j;
        w->done_tail = j;
        pthread_cond_broadcast(&w->cv_done);
        if (wake) {
            /* the list went from empty to not: the loop must look. Sent
             * under the lock so that rt_work_fini cannot stop the watcher
             * between the push and the send (it joins us first anyway). */
            ev_async_send(w->node->loop, &w->async);
        }
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

/* ---- the loop side --------------------------------------------------------------- */

static void job_put(rt_work_t *w, rt_job_t *j)
{
    j->fn = NULL;
    j->arg = NULL;
    j->owner = NULL;
    j->msg = NULL;
    j->state = JOB_FREE;
    j->next = w->free_list;
    w->free_list = j;
    w->used--;
}

/* a finished job: post its completion (or drop it, orphaned) and free the slot */
static void job_finish(rt_work_t *w, rt_job_t *j)
{
    if (j->owner)
        rt_msg_post(j->owner, j->msg);
    else
        rt_msg_free(j->msg);
    job_put(w, j);
}

static void resume_waiters(rt_work_t *w)
{
    if (w->node->work_waiters && w->free_list)
        rt_resume_waiters(w->node, RT_WAIT_WORK);
}

static void async_cb(struct ev_loop *loop, ev_async *a, int revents)
{
    (void)loop;
    (void)revents;
    rt_work_t *w = a->data;
    pthread_mutex_lock(&w->mu);
    rt_job_t *j = w->done_head;
    w->done_head = w->done_tail = NULL;
    pthread_mutex_unlock(&w->mu);
    while (j) {
        rt_job_t *next = j->next;
        j->next = NULL;
        job_finish(w, j);
        j = next;
    }
    resume_waiters(w);
}

/* the pool of @node, started now if it is not yet; NULL if no thread could
 * be started (logged once; the node then runs its jobs inline) */
static rt_work_t *work_get(rt_node_t *node)
{
    if (node->work)
        return node->work;
    rt_work_t *w = calloc(1, sizeof *w);
    pthread_t *th = calloc(node->workers, sizeof *th);
    if (!w || !th) {
        free(w);
        free(th);
        goto fail;
    }
    w->node = node;
    w->threads = th;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv_job, NULL);
    pthread_cond_init(&w->cv_done, NULL);
    for (unsigned i = RT_WORK_QUEUE; i-- > 0;) {
        w->jobs[i].next = w->free_list;
        w->free_list = &w->jobs[i];
    }
    ev_async_init(&w->async, async_cb);
    w->async.data = w;
    ev_async_start(node->loop, &w->async);
    ev_unref(node->loop); /* the pool alone does not keep the loop running */
    node->work = w;

    /* the threads inherit this mask: every signal stays with the loop */
    sigset_t all, old;
    pthread_attr_t attr;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, RT_WORK_STACK);
    for (unsigned i = 0; i < node->workers; i++) {
        if (pthread_create(&w->threads[i], &attr, worker_main, w) != 0)
            break;
        w->nthreads++;
    }
    pthread_attr_destroy(&attr);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (w->nthreads == 0) {
        rt_work_fini(node);
        goto fail;
    }
    if (w->nthreads < node->workers)
        rt_log(RT_LOG_WARN, "node %s: started %u of %u worker threads", node->name, w->nthreads,
               node->workers);
    return w;
fail:
    rt_log(RT_LOG_WARN, "node %s: cannot start worker threads; running jobs on the loop",
           node->name);
    node->workers = 0;
    return NULL;
}

int rt_work_submit(rt_actor_t *owner, rt_work_fn fn, void *arg, uint32_t done_tag, uint64_t u64)
{
    rt_node_t *node = owner->node;
    if (!fn || done_tag < RT_SIG_USER || !owner->dispatch)
        return RT_ERR;
    rt_work_t *w = node->workers ? work_get(node) : NULL;
    if (w && !w->free_list) {
        rt_wait_register(owner, RT_WAIT_WORK);
        return RT_AGAIN;
    }
    rt_msg_t *m = rt_msg_new(node, owner, done_tag);
    if (!m)
        return RT_AGAIN; /* the slot pool RESUMEs it */
    m->u64 = u64;
    m->len = (uint32_t)sizeof arg;
    memcpy(m->data, &arg, sizeof arg);
    if (!w) {
        fn(arg); /* inline: the same contract, without the thread */
        rt_msg_post(owner, m);
        return RT_OK;
    }
    rt_job_t *j = w->free_list;
    w->free_list = j->next;
    w->used++;
    j->next = NULL;
    j->fn = fn;
    j->arg = arg;
    j->owner = owner;
    j->msg = m;
    pthread_mutex_lock(&w->mu);
    j->state = JOB_QUEUED;
    if (w->q_tail)
        w->q_tail->next = j;
    else
        w->q_head = j;
    w->q_tail = j;
    pthread_cond_signal(&w->cv_job);
    pthread_mutex_unlock(&w->mu);
    return RT_OK;
}

void *rt_work_arg(const rt_msg_t *m)
{
    void *arg = NULL;
    if (m && m->len == sizeof arg)
        memcpy(&arg, m->data, sizeof arg);
    return arg;
}

unsigned rt_work_inflight(const rt_actor_t *owner)
{
    const rt_work_t *w = owner->node->work;
    unsigned n = 0;
    if (!w)
        return 0;
    for (unsigned i = 0; i < RT_WORK_QUEUE; i++)
        if (w->jobs[i].owner == owner)
            n++;
    return n;
}

unsigned rt_work_workers(const rt_node_t *node)
{
    return node->workers;
}

int rt_work_set_workers(rt_node_t *node, unsigned n)
{
    if (node->work || n > RT_WORK_MAX_THREADS)
        return RT_ERR;
    node->workers = n;
    return RT_OK;
}

unsigned rt_work_default_workers(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n <= 2)
        return 1;
    return n - 1 > RT_WORK_MAX_THREADS ? RT_WORK_MAX_THREADS : (unsigned)(n - 1);
}

/* ---- hooks: owner gone, node gone -------------------------------------------------- */

void rt_work_forget(rt_actor_t *owner)
{
    rt_work_t *w = owner->node->work;
    if (!w)
        return;
    rt_job_t *cancelled = NULL;
    pthread_mutex_lock(&w->mu);
    /* not started yet: they never will */
    rt_job_t **pp = &w->q_head;
    w->q_tail = NULL;
    while (*pp) {
        rt_job_t *j = *pp;
        if (j->owner == owner) {
            *pp = j->next;
            j->next = cancelled;
            cancelled = j;
        } else {
            w->q_tail = j;
            pp = &j->next;
        }
    }
    /* running: their arg may be the owner's memory, which goes away next */
    for (;;) {
        bool running = false;
        for (unsigned i = 0; i < RT_WORK_QUEUE; i++)
            if (w->jobs[i].owner == owner && w->jobs[i].state == JOB_RUNNING)
                running = true;
        if (!running)
            break;
        pthread_cond_wait(&w->cv_done, &w->mu);
    }
    pthread_mutex_unlock(&w->mu);
    /* done, not posted: dropped when the loop takes them */
    for (unsigned i = 0; i < RT_WORK_QUEUE; i++)
        if (w->jobs[i].owner == owner)
            w->jobs[i].owner = NULL;
    while (cancelled) {
        rt_job_t *next = cancelled->next;
        rt_msg_free(cancelled->msg);
        job_put(w, cancelled);
        cancelled = next;
    }
    resume_waiters(w);
}

void rt_work_fini(rt_node_t *node)
{
    rt_work_t *w = node->work;
    if (!w)
        return;
    pthread_mutex_lock(&w->mu);
    w->quit = true;
    pthread_cond_broadcast(&w->cv_job);
    pthread_mutex_unlock(&w->mu);
    for (unsigned i = 0; i < w->nthreads; i++)
        pthread_join(w->threads[i], NULL);
    /* single-threaded again: whatever finished is dropped with its message */
    for (rt_job_t *j = w->done_head, *next; j; j = next) {
        next = j->next;
        rt_msg_free(j->msg);
        job_put(w, j);
    }
    w->done_head = w->done_tail = NULL;
    ev_ref(node->loop);
    ev_async_stop(node->loop, &w->async);
    pthread_cond_destroy(&w->cv_done);
    pthread_cond_destroy(&w->cv_job);
    pthread_mutex_destroy(&w->mu);
    free(w->threads);
    free(w);
    node->work = NULL;
}
