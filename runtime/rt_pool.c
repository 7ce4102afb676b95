/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * rt_pool.c: the node's two bounded pools, message slots and byte buffers.
 *
 * Memory on a node is bounded by configuration, and a full pool is how an
 * actor learns to slow down (RT_AGAIN, then RT_SIG_RESUME), never an
 * unbounded queue.
 *
 * Message slots are fixed-size rt_msg_t wrappers allocated lazily in small
 * chunks up to [node] msg_slots and recycled through a free list; they are
 * freed only with the node. A reserve of RT_SYS_PER_ACTOR slots per actor is
 * kept for the runtime's own signals (START, STOP, RESUME), so that those
 * never fail however full the pool is. Timers and crons hold one
 * preallocated slot each, counted like a user message.
 *
 * Buffers come in power-of-two classes from 4 KiB to 32 MiB. The budget
 * ([node] memory) counts the class size of every live buffer; freed buffers
 * go to a per-class free list so that steady traffic does not hit malloc.
 * The free lists hold up to half the budget (RT_BUF_KEEP_DIV): the windows
 * in flight (agent -> process server, process server -> master target, the
 * compressed copies) are several 1-2 MiB buffers each, released a window at
 * a time by one ack, and a smaller cache sent most of them back to malloc
 * only to fault fresh pages in for the next batches. The cache never costs
 * an allocation (it gives way, largest buffers first, when the budget needs
 * the room) nor idle memory (the node trims it after RT_HOUSEKEEP_S idle).
 */
#include <stdlib.h>
#include <string.h>

#include "rt_i.h"

/* ---- message slots ---------------------------------------------------------- */

int rt_slot_pool_init(rt_node_t *node, uint32_t slots_max)
{
    node->chunks = NULL;
    node->slot_free = NULL;
    node->slots_max = slots_max;
    node->slots_made = node->slots_used = node->sys_used = 0;
    node->reserve = 0;
    node->msg_waiters = 0;
    return RT_OK;
}

void rt_slot_pool_fini(rt_node_t *node)
{
    rt_slot_chunk_t *c = node->chunks;
    while (c) {
        rt_slot_chunk_t *next = c->next;
        free(c);
        c = next;
    }
    node->chunks = NULL;
    node->slot_free = NULL;
}

/* messages that are neither runtime signals nor reserved */
static uint32_t user_used(const rt_node_t *node)
{
    return node->slots_used - node->sys_used;
}

static uint32_t user_cap(const rt_node_t *node)
{
    return node->slots_max > node->reserve ? node->slots_max - node->reserve : 0;
}

static rt_msg_t *slot_take(rt_node_t *node)
{
    if (!node->slot_free) {
        if (node->slots_made >= node->slots_max)
            return NULL;
        uint32_t n = node->slots_max - node->slots_made;
        if (n > RT_SLOT_CHUNK)
            n = RT_SLOT_CHUNK;
        rt_slot_chunk_t *c = malloc(sizeof *c + (size_t)n * sizeof(rt_slot_t));
        if (!c)
            return NULL;
        c->n = n;
        c->next = node->chunks;
        node->chunks = c;
        node->slots_made += n;
        for (uint32_t i = n; i-- > 0;) {
            c->slots[i].node = node;
            c->slots[i].m.next = node->slot_free;
            node->slot_free = &c->slots[i].m;
        }
    }
    rt_msg_t *m = node->slot_free;
    node->slot_free = m->next;
    node->slots_used++;
    return m;
}

static void slot_reset(rt_msg_t *m, uint32_t tag, uint8_t flags)
{
    m->next = NULL;
    m->from = NULL;
    m->link = NULL;
    m->buf = NULL;
    m->u64 = 0;
    m->tag = tag;
    m->len = 0;
    m->flags = flags;
    ((rt_slot_t *)m)->timer = NULL;
}

static rt_msg_t *slot_get_user(rt_node_t *node, uint32_t tag, uint8_t flags)
{
    if (user_used(node) >= user_cap(node))
        return NULL;
    rt_msg_t *m = slot_take(node);
    if (m)
        slot_reset(m, tag, flags);
    return m;
}

rt_msg_t *rt_slot_get_prealloc(rt_node_t *node, uint32_t tag)
{
    return slot_get_user(node, tag, RT_MF_PREALLOC);
}

rt_msg_t *rt_slot_get_sys(rt_node_t *node, uint32_t tag)
{
    rt_msg_t *m = slot_take(node);
    if (!m) {
        rt_log(RT_LOG_ERR, "message reserve exhausted posting signal %u (bug)", (unsigned)tag);
        return NULL;
    }
    node->sys_used++;
    slot_reset(m, tag, RT_MF_SYS);
    return m;
}

void rt_slot_put(rt_msg_t *m)
{
    rt_node_t *node = ((rt_slot_t *)m)->node;
    if (m->flags & RT_MF_SYS)
        node->sys_used--;
    node->slots_used--;
    m->flags = 0;
    m->next = node->slot_free;
    node->slot_free = m;
    if (node->msg_waiters) {
        uint32_t cap = user_cap(node), need = cap / 8 ? cap / 8 : 1;
        if (cap > user_used(node) && cap - user_used(node) >= need)
            rt_resume_waiters(node, RT_WAIT_MSG);
    }
}

rt_msg_t *rt_msg_new(rt_node_t *node, rt_actor_t *requester, uint32_t tag)
{
    rt_msg_t *m = slot_get_user(node, tag, 0);
    if (!m && requester)
        rt_wait_register(requester, RT_WAIT_MSG);
    return m;
}

void rt_msg_free(rt_msg_t *m)
{
    if (!m)
        return;
    rt_buf_unref(m->buf);
    m->buf = NULL;
    rt_slot_put(m);
}

/* ---- buffers ---------------------------------------------------------------- */

static size_t class_size(uint32_t cls)
{
    return (size_t)1 << (RT_BUF_MIN_SHIFT + cls);
}

/* the class holding @cap bytes, or -1 when it is over the hard ceiling */
static int class_of(size_t cap)
{
    if (cap > (size_t)RT_MAX_PAYLOAD + RT_MAX_HEADER)
        return -1;
    uint32_t cls = 0;
    while (class_size(cls) < cap)
        cls++;
    return cls < RT_BUF_NCLASS ? (int)cls : -1;
}

/* cached (free-listed) bytes kept at most while busy (idle: trimmed) */
static size_t cache_limit(const rt_node_t *node)
{
    return node->buf_budget / RT_BUF_KEEP_DIV;
}

void rt_buf_pool_init(rt_node_t *node, size_t budget)
{
    node->buf_budget = budget;
    node->buf_used = node->buf_cached = 0;
    memset(node->buf_free, 0, sizeof node->buf_free);
    node->buf_want = 0;
    node->buf_waiters = 0;
    node->buf_allocs = node->buf_allocs_seen = 0;
}

/* free cached buffers, largest first, until @want more bytes fit */
static void cache_shrink(rt_node_t *node, size_t want)
{
    for (uint32_t cls = RT_BUF_NCLASS; cls-- > 0;) {
        while (node->buf_free[cls] &&
               node->buf_used + node->buf_cached + want > node->buf_budget) {
            rt_buf_t *b = node->buf_free[cls];
            node->buf_free[cls] = b->next;
            node->buf_cached -= class_size(cls);
            free(b);
        }
    }
}

void rt_buf_trim(rt_node_t *node)
{
    for (uint32_t cls = 0; cls < RT_BUF_NCLASS; cls++) {
        while (node->buf_free[cls]) {
            rt_buf_t *b = node->buf_free[cls];
            node->buf_free[cls] = b->next;
            free(b);
        }
    }
    node->buf_cached = 0;
}

void rt_buf_pool_fini(rt_node_t *node)
{
    rt_buf_trim(node);
    if (node->buf_used)
        rt_log(RT_LOG_WARN, "node %s freed with %zu buffer bytes still referenced", node->name,
               node->buf_used);
}

rt_buf_t *rt_buf_alloc(rt_node_t *node, size_t cap)
{
    int c = class_of(cap);
    if (c < 0)
        return NULL;
    uint32_t cls = (uint32_t)c;
    size_t size = class_size(cls);
    if (node->buf_used + size > node->buf_budget)
        return NULL;
    rt_buf_t *b = node->buf_free[cls];
    if (b) {
        node->buf_free[cls] = b->next;
        node->buf_cached -= size;
    } else {
        if (node->buf_used + node->buf_cached + size > node->buf_budget)
            cache_shrink(node, size);
        b = malloc(sizeof *b + size);
        if (!b)
            return NULL;
        b->cls = cls;
        b->cap = (uint32_t)size;
        b->node = node;
    }
    b->refs = 1;
    b->len = 0;
    b->next = NULL;
    node->buf_used += size;
    node->buf_allocs++;
    return b;
}

rt_buf_t *rt_buf_alloc_for(rt_node_t *node, rt_actor_t *requester, size_t cap)
{
    rt_buf_t *b = rt_buf_alloc(node, cap);
    if (b || !requester)
        return b;
    int c = class_of(cap);
    if (c < 0 || class_size((uint32_t)c) > node->buf_budget)
        return NULL; /* never fits: waiting would be forever */
    if (class_size((uint32_t)c) > node->buf_want)
        node->buf_want = class_size((uint32_t)c);
    rt_wait_register(requester, RT_WAIT_BUF);
    return NULL;
}

void rt_buf_ref(rt_buf_t *b)
{
    b->refs++;
}

void rt_buf_unref(rt_buf_t *b)
{
    if (!b || --b->refs > 0)
        return;
    rt_node_t *node = b->node;
    size_t size = class_size(b->cls);
    node->buf_used -= size;
    if (node->buf_cached + size <= cache_limit(node)) {
        b->next = node->buf_free[b->cls];
        node->buf_free[b->cls] = b;
        node->buf_cached += size;
    } else {
        free(b);
    }
    if (node->buf_waiters && node->buf_budget - node->buf_used >= node->buf_want) {
        node->buf_want = 0;
        rt_resume_waiters(node, RT_WAIT_BUF);
    }
}

void rt_buf_stats(const rt_node_t *node, size_t *used, size_t *budget)
{
    if (used)
        *used = node->buf_used;
    if (budget)
        *budget = node->buf_budget;
}
