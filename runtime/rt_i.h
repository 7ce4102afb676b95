/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * rt_i.h: the runtime's private parts, shared by the runtime's own files.
 *
 * rt.h is the manual for actors; this header holds what only runtime/ may
 * touch: the node struct (loop, run queue, the two pools, stop state), the
 * message slot wrapper and the hooks between the pool, the actor and the
 * timer code. Roles never include it.
 */
#ifndef RT_I_H
#define RT_I_H

#include "rt.h"

/* ---- tuning ----------------------------------------------------------------- */

#define RT_BATCH          64u    /* messages dispatched per idle callback */
#define RT_SLOT_CHUNK     32u    /* message slots allocated together */
#define RT_SYS_PER_ACTOR  3u     /* START, STOP and RESUME may be pending at once */
#define RT_STOP_DEADLINE  10.0   /* seconds between RT_SIG_STOP and giving up */
#define RT_BUF_MIN_SHIFT  12u    /* 4 KiB, the smallest buffer class */
#define RT_BUF_NCLASS     14u    /* 4 KiB .. 32 MiB >= RT_MAX_PAYLOAD + RT_MAX_HEADER */
#define RT_BUF_KEEP_DIV   2u     /* freed buffers kept (busy): up to budget / this */
#define RT_HOUSEKEEP_S    5.0    /* period of the node's own cron (buffer cache trim) */

/* m->flags bits */
enum {
    RT_MF_SYS = 1u << 0,      /* runtime signal from the reserve (START/STOP/RESUME) */
    RT_MF_PREALLOC = 1u << 1, /* a timer's or the cron's message, owned by it */
    RT_MF_QUEUED = 1u << 2,   /* preallocated message is in a mailbox or dispatched */
    RT_MF_ORPHAN = 1u << 3,   /* its owner let go while it was being dispatched */
};

/* rt_actor.waits bits */
enum {
    RT_WAIT_MSG = 1u << 0,    /* the message slot pool refused it */
    RT_WAIT_BUF = 1u << 1,    /* the buffer pool refused it */
    RT_WAIT_WORK = 1u << 2,   /* the worker pool's job slots were all taken */
    RT_WAIT_PENDING = 1u << 7,/* an RT_SIG_RESUME is in its mailbox */
};

/* A message slot: the message first, so that a message pointer is a slot
 * pointer. Never freed until the node is. */
typedef struct rt_slot {
    rt_msg_t m;
    rt_node_t *node;          /* pool owner */
    rt_timer_t *timer;        /* owner of a preallocated timer message, or NULL */
} rt_slot_t;

typedef struct rt_work rt_work_t; /* the worker pool, private to rt_work.c */

typedef struct rt_slot_chunk {
    struct rt_slot_chunk *next;
    uint32_t n;               /* slots in this chunk */
    rt_slot_t slots[];
} rt_slot_chunk_t;

struct rt_node {
    char name[RT_NAME_MAX];
    struct ev_loop *loop;
    bool own_loop;            /* created by rt_node_new, destroyed by rt_node_free */
    const rt_conf_t *conf;    /* not owned */
    rt_trace_t *trace;        /* owned, or NULL */

    /* actors and the run queue */
    rt_actor_t *actors;       /* all registered, via next_all */
    uint32_t nactors, nstopped;
    rt_actor_t *rq_head, *rq_tail; /* actors with mail, via next_ready */
    ev_idle idle;             /* dispatches while the run queue is non-empty */
    const rt_msg_t *cur_msg;  /* being dispatched, or NULL */

    /* message slot pool */
    rt_slot_chunk_t *chunks;
    rt_msg_t *slot_free;      /* free list via m.next */
    uint32_t slots_max;       /* [node] msg_slots */
    uint32_t slots_made;      /* allocated so far (lazily) */
    uint32_t slots_used;      /* handed out, system ones included */
    uint32_t sys_used;        /* of which runtime signals from the reserve */
    uint32_t reserve;         /* slots kept for runtime signals */
    uint32_t msg_waiters;     /* actors with RT_WAIT_MSG */

    /* buffer pool */
    size_t buf_budget, buf_used, buf_cached;
    rt_buf_t *buf_free[RT_BUF_NCLASS];
    size_t buf_want;          /* largest class a waiting actor asked for */
    uint32_t buf_waiters;     /* actors with RT_WAIT_BUF */
    uint64_t buf_allocs;      /* allocations, to see whether the pool was idle */
    uint64_t buf_allocs_seen; /* value at the last housekeeping tick */
    ev_timer housekeep;

    /* worker pool (rt_work.c) */
    unsigned workers;         /* [node] workers; 0: jobs run inline */
    rt_work_t *work;          /* started at the first job, or NULL */
    uint32_t work_waiters;    /* actors with RT_WAIT_WORK */

    /* run and stop */
    bool started;             /* rt_node_run posted RT_SIG_START */
    bool stopping;            /* RT_SIG_STOP was posted */
    bool stop_requested;      /* rt_node_stop before rt_node_run */
    bool done;                /* the loop was told to exit */
    int run_result;
    double stop_deadline_s;
    ev_timer deadline;
    bool own_signals;
    rt_node_t **group;        /* nodes run together (rt_node_run_all), or NULL */
    unsigned ngroup;
    ev_signal sigterm, sigint;
};

/* ---- hooks between runtime files ------------------------------------------ */

/* rt_pool.c */
int rt_slot_pool_init(rt_node_t *node, uint32_t slots_max);
void rt_slot_pool_fini(rt_node_t *node);
/* a slot for a preallocated (timer/cron) message: counts like a user message */
rt_msg_t *rt_slot_get_prealloc(rt_node_t *node, uint32_t tag);
/* a slot for a runtime signal, from the reserve; NULL only on a bug */
rt_msg_t *rt_slot_get_sys(rt_node_t *node, uint32_t tag);
/* give a slot back (no buf handling) and wake waiters if there is room */
void rt_slot_put(rt_msg_t *m);
void rt_buf_pool_init(rt_node_t *node, size_t budget);
void rt_buf_pool_fini(rt_node_t *node);

/* rt_actor.c */
void rt_actor_node_setup(rt_node_t *node); /* the dispatcher's idle watcher */
void rt_post_sys(rt_actor_t *to, uint32_t tag);
/* release a preallocated message whose owner goes away */
void rt_prealloc_drop(rt_msg_t *m);
/* post RT_SIG_RESUME to every actor waiting with @bit */
void rt_resume_waiters(rt_node_t *node, uint8_t bit);
/* record that @a was refused by the pool @bit */
void rt_wait_register(rt_actor_t *a, uint8_t bit);
/* exit the loop if a stop is under way and every actor stopped */
void rt_node_check_done(rt_node_t *node);

/* rt_work.c */
/* @owner goes away: cancel its queued jobs, wait for its running ones,
 * drop its unposted completions */
void rt_work_forget(rt_actor_t *owner);
/* join the worker threads (they run what is queued first) and free the pool */
void rt_work_fini(rt_node_t *node);

#endif /* RT_I_H */
