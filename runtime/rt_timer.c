/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * rt_timer.c: timers that post a message to their owner actor.
 *
 * A timer owns one preallocated message slot, so firing never needs the
 * pool and can never fail. At most one of its messages is pending: if the
 * owner has not handled the last one when the timer fires again, that tick
 * is skipped (a slow actor sees fewer ticks, never a growing backlog).
 */
#include "rt_i.h"

static void timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    rt_timer_t *t = (rt_timer_t *)((char *)w - offsetof(rt_timer_t, w));
    if (t->pending || !t->msg)
        return;
    t->pending = true;
    t->msg->tag = t->tag;
    t->msg->u64 = t->id;
    rt_msg_post(t->owner, t->msg);
}

int rt_timer_init(rt_timer_t *t, rt_actor_t *owner, uint32_t tag, uint64_t id)
{
    t->owner = owner;
    t->tag = tag;
    t->id = id;
    t->pending = false;
    ev_init(&t->w, timer_cb);
    t->msg = rt_slot_get_prealloc(owner->node, tag);
    if (!t->msg) {
        rt_log(RT_LOG_ERR, "actor %s: message pool full, no timer", owner->name);
        return RT_ERR;
    }
    ((rt_slot_t *)t->msg)->timer = t;
    t->msg->u64 = id;
    return RT_OK;
}

void rt_timer_start(rt_timer_t *t, double after_s, double repeat_s)
{
    struct ev_loop *loop = t->owner->node->loop;
    ev_timer_stop(loop, &t->w);
    ev_timer_set(&t->w, after_s > 0 ? after_s : 0, repeat_s > 0 ? repeat_s : 0);
    ev_timer_start(loop, &t->w);
}

void rt_timer_stop(rt_timer_t *t)
{
    ev_timer_stop(t->owner->node->loop, &t->w);
}

bool rt_timer_active(const rt_timer_t *t)
{
    /* ev_is_active() casts away const inside libev's macro: read the field */
    return t->w.active != 0;
}

void rt_timer_fini(rt_timer_t *t)
{
    if (!t->owner)
        return;
    ev_timer_stop(t->owner->node->loop, &t->w);
    if (t->msg) {
        rt_prealloc_drop(t->msg);
        t->msg = NULL;
    }
    t->pending = false;
}
