/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * rt_actor.c: mailboxes, the run queue and run-to-completion dispatch.
 *
 * Posting appends a message to the target's mailbox and puts the actor on
 * the node's run queue. While that queue is non-empty an ev_idle watcher at
 * the highest priority runs; each callback dispatches at most RT_BATCH
 * messages, round-robin one message per actor, so that a busy actor cannot
 * starve the others and I/O watchers still run between batches. A handler
 * runs to completion; afterwards the runtime releases the slot and drops the
 * message's buffer reference.
 *
 * This file also owns the actor's cron and the back-pressure wake-up: an
 * actor refused by a pool (message slots, buffers, worker job slots) is
 * remembered and gets RT_SIG_RESUME (from the runtime's reserve, so it
 * cannot fail) once the pool has room again.
 */
#include <stdio.h>
#include <string.h>

#include "rt_i.h"

/* ---- run queue -------------------------------------------------------------- */

static void rq_push(rt_node_t *node, rt_actor_t *a)
{
    a->ready = true;
    a->next_ready = NULL;
    if (node->rq_tail)
        node->rq_tail->next_ready = a;
    else
        node->rq_head = a;
    node->rq_tail = a;
    if (!ev_is_active(&node->idle))
        ev_idle_start(node->loop, &node->idle);
}

static rt_actor_t *rq_pop(rt_node_t *node)
{
    rt_actor_t *a = node->rq_head;
    if (a) {
        node->rq_head = a->next_ready;
        if (!node->rq_head)
            node->rq_tail = NULL;
        a->next_ready = NULL;
        a->ready = false;
    }
    return a;
}

static void rq_remove(rt_node_t *node, rt_actor_t *a)
{
    rt_actor_t *prev = NULL;
    for (rt_actor_t *x = node->rq_head; x; prev = x, x = x->next_ready) {
        if (x != a)
            continue;
        if (prev)
            prev->next_ready = x->next_ready;
        else
            node->rq_head = x->next_ready;
        if (node->rq_tail == x)
            node->rq_tail = prev;
        break;
    }
    a->ready = false;
    a->next_ready = NULL;
}

/* take @m out of @a's mailbox, wherever it is; false if it is not there */
static bool mailbox_unlink(rt_actor_t *a, rt_msg_t *m)
{
    rt_msg_t *prev = NULL;
    for (rt_msg_t *x = a->head; x; prev = x, x = x->next) {
        if (x != m)
            continue;
        if (prev)
            prev->next = x->next;
        else
            a->head = x->next;
        if (a->tail == x)
            a->tail = prev;
        x->next = NULL;
        a->queued--;
        return true; /* an empty actor left on the run queue is skipped */
    }
    return false;
}

/* ---- dispatch --------------------------------------------------------------- */

/* what happens to a message once its handler returned */
static void msg_done(rt_msg_t *m)
{
    rt_slot_t *s = (rt_slot_t *)m;
    if (m->flags & RT_MF_PREALLOC) {
        m->flags &= (uint8_t)~RT_MF_QUEUED;
        if (m->flags & RT_MF_ORPHAN)
            rt_slot_put(m);
        else if (s->timer)
            s->timer->pending = false;
        return;
    }
    rt_buf_unref(m->buf);
    m->buf = NULL;
    rt_slot_put(m);
}

static void idle_cb(struct ev_loop *loop, ev_idle *w, int revents)
{
    (void)revents;
    rt_node_t *node = w->data;
    unsigned n = 0;
    while (n < RT_BATCH && !node->done) {
        rt_actor_t *a = rq_pop(node);
        if (!a)
            break;
        rt_msg_t *m = a->head;
        if (!m)
            continue; /* its last message was withdrawn */
        a->head = m->next;
        if (!a->head)
            a->tail = NULL;
        a->queued--;
        m->next = NULL;
        if (a->head)
            rq_push(node, a);
        if (m->tag == RT_SIG_RESUME && (m->flags & RT_MF_SYS))
            a->waits &= (uint8_t)~RT_WAIT_PENDING; /* a new refusal may post again */
        node->cur_msg = m;
        a->dispatch(a, m); /* may fini @a: do not touch it after this */
        node->cur_msg = NULL;
        msg_done(m);
        n++;
    }
    if (!node->rq_head)
        ev_idle_stop(loop, w);
}

void rt_msg_post(rt_actor_t *to, rt_msg_t *m)
{
    rt_node_t *node = to->node;
    m->next = NULL;
    if (m->flags & RT_MF_PREALLOC)
        m->flags |= RT_MF_QUEUED;
    if (to->tail)
        to->tail->next = m;
    else
        to->head = m;
    to->tail = m;
    to->queued++;
    if (!to->ready)
        rq_push(node, to);
}

int rt_post(rt_actor_t *to, rt_actor_t *from, uint32_t tag, const void *data, size_t len,
            rt_buf_t *buf)
{
    if (len > RT_MSG_INLINE)
        return RT_ERR;
    rt_msg_t *m = rt_msg_new(to->node, from, tag);
    if (!m)
        return RT_AGAIN;
    m->from = from;
    m->buf = buf;
    m->len = (uint32_t)len;
    if (len)
        memcpy(m->data, data, len);
    rt_msg_post(to, m);
    return RT_OK;
}

void rt_post_sys(rt_actor_t *to, uint32_t tag)
{
    rt_msg_t *m = rt_slot_get_sys(to->node, tag);
    if (m)
        rt_msg_post(to, m);
}

/* ---- preallocated messages (cron, timers) ----------------------------------- */

void rt_prealloc_drop(rt_msg_t *m)
{
    rt_slot_t *s = (rt_slot_t *)m;
    rt_node_t *node = s->node;
    s->timer = NULL;
    if (node->cur_msg == m) { /* its handler is running: msg_done frees it */
        m->flags |= RT_MF_ORPHAN;
        return;
    }
    if (m->flags & RT_MF_QUEUED) {
        for (rt_actor_t *a = node->actors; a; a = a->next_all)
            if (mailbox_unlink(a, m))
                break;
    }
    rt_slot_put(m);
}

/* ---- back-pressure wake-up -------------------------------------------------- */

void rt_wait_register(rt_actor_t *a, uint8_t bit)
{
    rt_node_t *node = a->node;
    if (a->waits & bit)
        return;
    a->waits |= bit;
    a->wants_resume = true;
    if (bit == RT_WAIT_MSG)
        node->msg_waiters++;
    else if (bit == RT_WAIT_WORK)
        node->work_waiters++;
    else
        node->buf_waiters++;
}

static void wait_clear(rt_actor_t *a, uint8_t bit)
{
    if (!(a->waits & bit))
        return;
    a->waits &= (uint8_t)~bit;
    if (bit == RT_WAIT_MSG)
        a->node->msg_waiters--;
    else if (bit == RT_WAIT_WORK)
        a->node->work_waiters--;
    else
        a->node->buf_waiters--;
    a->wants_resume = (a->waits & (RT_WAIT_MSG | RT_WAIT_BUF | RT_WAIT_WORK)) != 0;
}

void rt_resume_waiters(rt_node_t *node, uint8_t bit)
{
    for (rt_actor_t *a = node->actors; a; a = a->next_all) {
        if (!(a->waits & bit))
            continue;
        wait_clear(a, bit);
        if (a->waits & RT_WAIT_PENDING)
            continue; /* one RESUME is enough: it retries whatever it needs */
        a->waits |= RT_WAIT_PENDING;
        rt_post_sys(a, RT_SIG_RESUME);
    }
}

/* ---- cron ------------------------------------------------------------------- */

static void cron_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    rt_actor_t *a = w->data;
    if (a->cron_msg && !(a->cron_msg->flags & RT_MF_QUEUED))
        rt_msg_post(a, a->cron_msg); /* still pending: skip this period */
}

void rt_actor_cron(rt_actor_t *me, double period_s)
{
    ev_timer_stop(me->node->loop, &me->cron);
    if (period_s > 0) {
        ev_timer_set(&me->cron, period_s, period_s);
        ev_timer_start(me->node->loop, &me->cron);
    }
}

/* ---- lifecycle -------------------------------------------------------------- */

int rt_actor_init(rt_actor_t *me, rt_node_t *node, const char *name, rt_dispatch_fn dispatch)
{
    memset(me, 0, sizeof *me);
    if (!dispatch) {
        rt_log(RT_LOG_ERR, "actor %s: no dispatch function (bug)", name ? name : "?");
        return RT_ERR;
    }
    /* the cron slot counts like a user message; the reserve grows with us */
    node->reserve += RT_SYS_PER_ACTOR;
    rt_msg_t *m = rt_slot_get_prealloc(node, RT_SIG_CRON);
    if (!m) {
        node->reserve -= RT_SYS_PER_ACTOR;
        rt_log(RT_LOG_ERR, "actor %s: message pool full (msg_slots %u)", name ? name : "?",
               (unsigned)node->slots_max);
        return RT_ERR;
    }
    me->node = node;
    snprintf(me->name, sizeof me->name, "%s", name ? name : "");
    me->dispatch = dispatch;
    me->cron_msg = m;
    ev_init(&me->cron, cron_cb);
    me->cron.data = me;
    me->next_all = node->actors;
    node->actors = me;
    node->nactors++;
    if (node->started)
        rt_post_sys(me, RT_SIG_START);
    if (node->stopping)
        rt_post_sys(me, RT_SIG_STOP);
    return RT_OK;
}

void rt_actor_fini(rt_actor_t *me)
{
    rt_node_t *node = me->node;
    if (!node || !me->dispatch)
        return; /* never registered, or already finished */
    ev_timer_stop(node->loop, &me->cron);
    rt_work_forget(me); /* no job of ours runs after this */
    if (me->cron_msg) {
        rt_prealloc_drop(me->cron_msg);
        me->cron_msg = NULL;
    }
    while (me->head) {
        rt_msg_t *m = me->head;
        me->head = m->next;
        m->next = NULL;
        if (m->flags & RT_MF_PREALLOC) { /* a timer's: it stays the timer's */
            m->flags &= (uint8_t)~RT_MF_QUEUED;
            if (((rt_slot_t *)m)->timer)
                ((rt_slot_t *)m)->timer->pending = false;
            continue;
        }
        rt_buf_unref(m->buf);
        m->buf = NULL;
        rt_slot_put(m);
    }
    me->tail = NULL;
    me->queued = 0;
    if (me->ready)
        rq_remove(node, me);
    wait_clear(me, RT_WAIT_MSG);
    wait_clear(me, RT_WAIT_BUF);
    wait_clear(me, RT_WAIT_WORK);
    for (rt_actor_t **p = &node->actors; *p; p = &(*p)->next_all) {
        if (*p == me) {
            *p = me->next_all;
            break;
        }
    }
    me->next_all = NULL;
    node->nactors--;
    if (me->stopped)
        node->nstopped--;
    node->reserve -= RT_SYS_PER_ACTOR;
    me->dispatch = NULL; /* me->node stays: its timers may be finished after it */
    rt_node_check_done(node);
}

void rt_actor_stopped(rt_actor_t *me)
{
    if (me->stopped)
        return;
    me->stopped = true;
    me->node->nstopped++;
    rt_node_check_done(me->node);
}

void rt_actor_node_setup(rt_node_t *node)
{
    ev_idle_init(&node->idle, idle_cb);
    ev_set_priority(&node->idle, EV_MAXPRI);
    node->idle.data = node;
}
