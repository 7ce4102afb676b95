/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * rt_node.c: a node, the process-wide home of actors.
 *
 * A node owns the libev loop, the two pools sized from [node] memory and
 * msg_slots, the worker pool of [node] workers (rt_work.c; started at the
 * first job), the trace file of [trace], and the start/stop sequence:
 * rt_node_run() posts RT_SIG_START to every actor and runs the loop until a
 * stop (SIGTERM, SIGINT or rt_node_stop) has been acknowledged by every
 * actor with rt_actor_stopped(), or until the stop deadline passes. SIGPIPE
 * is ignored: a peer closing a socket is an error value, not a death.
 *
 * libev binds a signal to one loop, so only the first live node of a
 * process watches SIGTERM/SIGINT (tests may run several nodes at once).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rt_i.h"

#define RT_DEFAULT_MEMORY    (64u << 20)
#define RT_DEFAULT_MSG_SLOTS 4096u

static rt_node_t *signal_owner; /* the node whose loop watches the signals */

/* ---- stop ------------------------------------------------------------------- */

void rt_node_check_done(rt_node_t *node)
{
    if (node->stopping && node->started && !node->done && node->nstopped >= node->nactors) {
        node->done = true;
        ev_break(node->loop, EVBREAK_ONE);
    }
}

static void deadline_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)revents;
    rt_node_t *node = w->data;
    char names[256] = "";
    size_t off = 0;
    for (rt_actor_t *a = node->actors; a; a = a->next_all) {
        if (a->stopped)
            continue;
        int n = snprintf(names + off, sizeof names - off, "%s%s", off ? " " : "", a->name);
        if (n < 0 || (size_t)n >= sizeof names - off)
            break;
        off += (size_t)n;
    }
    rt_log(RT_LOG_ERR, "stop deadline (%g s) passed; still running: %s", node->stop_deadline_s,
           names);
    node->run_result = RT_ERR;
    node->done = true;
    ev_break(loop, EVBREAK_ONE);
}

void rt_node_stop(rt_node_t *node)
{
    if (node->stopping || node->stop_requested)
        return;
    if (!node->started) { /* rt_node_run will post STOP after START */
        node->stop_requested = true;
        return;
    }
    node->stopping = true;
    for (rt_actor_t *a = node->actors; a; a = a->next_all)
        rt_post_sys(a, RT_SIG_STOP);
    ev_timer_set(&node->deadline, node->stop_deadline_s, 0);
    ev_timer_start(node->loop, &node->deadline);
    rt_node_check_done(node);
}

static void signal_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void)loop;
    (void)revents;
    rt_node_t *node = w->data;
    if (node->stopping) {
        rt_log(RT_LOG_WARN, "signal %d: already stopping", w->signum);
        return;
    }
    rt_log(RT_LOG_INFO, "signal %d: stopping", w->signum);
    if (node->group)
        for (unsigned i = 0; i < node->ngroup; i++)
            rt_node_stop(node->group[i]);
    else
        rt_node_stop(node);
}

void rt_node_set_stop_deadline(rt_node_t *node, double seconds)
{
    node->stop_deadline_s = seconds > 0 ? seconds : RT_STOP_DEADLINE;
}

/* ---- housekeeping ----------------------------------------------------------- */

static void housekeep_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    rt_node_t *node = w->data;
    if (node->buf_allocs == node->buf_allocs_seen && node->buf_cached)
        rt_buf_trim(node); /* idle for a whole period: give the memory back */
    node->buf_allocs_seen = node->buf_allocs;
}

/* ---- lifecycle -------------------------------------------------------------- */

int rt_node_set_trace(rt_node_t *node, const char *path, uint64_t max_bytes, int keep)
{
    rt_trace_close(node->trace);
    node->trace = NULL;
    if (!path)
        return RT_OK;
    node->trace = rt_trace_open(path, node->name, max_bytes, keep);
    return node->trace ? RT_OK : RT_ERR;
}

rt_node_t *rt_node_new_on(const char *name, const rt_conf_t *conf, struct ev_loop *loop)
{
    size_t memory = RT_DEFAULT_MEMORY;
    uint32_t slots = RT_DEFAULT_MSG_SLOTS;
    unsigned workers = rt_work_default_workers();
    if (conf) {
        memory = (size_t)rt_conf_u64(conf, "node", "memory");
        slots = (uint32_t)rt_conf_u64(conf, "node", "msg_slots");
        if (rt_conf_str(conf, "node", "workers")) /* absent: the default */
            workers = (unsigned)rt_conf_u64(conf, "node", "workers");
    }
    rt_node_t *node = calloc(1, sizeof *node);
    if (!node) {
        rt_log(RT_LOG_ERR, "node %s: out of memory", name);
        return NULL;
    }
    snprintf(node->name, sizeof node->name, "%s", name ? name : "");
    node->conf = conf;
    node->workers = workers;
    node->loop = loop;
    if (!loop) {
        node->loop = ev_loop_new(EVFLAG_AUTO);
        node->own_loop = true;
        if (!node->loop) {
            rt_log(RT_LOG_ERR, "node %s: cannot create the event loop", node->name);
            goto fail;
        }
    }
    rt_slot_pool_init(node, slots);
    rt_buf_pool_init(node, memory);
    rt_actor_node_setup(node);
    node->stop_deadline_s = RT_STOP_DEADLINE;
    node->run_result = RT_OK;
    ev_init(&node->deadline, deadline_cb);
    node->deadline.data = node;
    ev_timer_init(&node->housekeep, housekeep_cb, RT_HOUSEKEEP_S, RT_HOUSEKEEP_S);
    node->housekeep.data = node;
    ev_timer_start(node->loop, &node->housekeep);
    ev_unref(node->loop); /* housekeeping alone does not keep the loop running */

    if (conf) {
        char path[4096];
        if (rt_conf_path(conf, "trace", "file", path, sizeof path) &&
            rt_node_set_trace(node, path, rt_conf_u64(conf, "trace", "max"),
                              (int)rt_conf_u64(conf, "trace", "keep")) != RT_OK)
            goto fail;
    }

    signal(SIGPIPE, SIG_IGN);
    if (!signal_owner) {
        signal_owner = node;
        node->own_signals = true;
        ev_signal_init(&node->sigterm, signal_cb, SIGTERM);
        ev_signal_init(&node->sigint, signal_cb, SIGINT);
        node->sigterm.data = node->sigint.data = node;
        ev_signal_start(node->loop, &node->sigterm);
        ev_signal_start(node->loop, &node->sigint);
        ev_unref(node->loop);
        ev_unref(node->loop);
    }
    return node;
fail:
    rt_node_free(node);
    return NULL;
}

rt_node_t *rt_node_new(const char *name, const rt_conf_t *conf)
{
    return rt_node_new_on(name, conf, NULL);
}

void rt_node_free(rt_node_t *node)
{
    if (!node)
        return;
    if (node->loop) {
        if (node->own_signals) {
            ev_ref(node->loop);
            ev_ref(node->loop);
            ev_signal_stop(node->loop, &node->sigterm);
            ev_signal_stop(node->loop, &node->sigint);
            signal_owner = NULL;
        }
        if (ev_is_active(&node->housekeep)) {
            ev_ref(node->loop);
            ev_timer_stop(node->loop, &node->housekeep);
        }
        ev_timer_stop(node->loop, &node->deadline);
        ev_idle_stop(node->loop, &node->idle);
    }
    while (node->actors) /* normally the roles did this already */
        rt_actor_fini(node->actors);
    rt_work_fini(node); /* no owner is left: nothing is queued or running */
    rt_trace_close(node->trace);
    node->trace = NULL;
    rt_buf_pool_fini(node);
    rt_slot_pool_fini(node);
    if (node->own_loop && node->loop)
        ev_loop_destroy(node->loop);
    free(node);
}

static void node_start(rt_node_t *node)
{
    if (node->started)
        return;
    node->started = true;
    for (rt_actor_t *a = node->actors; a; a = a->next_all)
        rt_post_sys(a, RT_SIG_START);
    if (node->stop_requested) {
        node->stop_requested = false;
        rt_node_stop(node);
    }
}

int rt_node_run(rt_node_t *node)
{
    node_start(node);
    node->done = false;
    rt_node_check_done(node);
    if (!node->done) {
        ev_ref(node->loop); /* run until told, even with no watcher */
        ev_run(node->loop, 0);
        ev_unref(node->loop);
    }
    if (node->done) /* (another node sharing the loop may have broken it) */
        ev_timer_stop(node->loop, &node->deadline);
    return node->run_result;
}

int rt_node_run_all(rt_node_t **nodes, unsigned n)
{
    int rc = RT_OK;
    for (unsigned i = 0; i < n; i++) {
        nodes[i]->group = nodes;
        nodes[i]->ngroup = n;
        node_start(nodes[i]);
    }
    for (;;) {
        /* the nodes share the loop: a node that finishes breaks it, and
         * the loop is taken up again until every node has stopped */
        bool all_done = true;
        for (unsigned i = 0; i < n; i++)
            if (!nodes[i]->done) {
                all_done = false;
                if (rt_node_run(nodes[i]) != RT_OK)
                    rc = RT_ERR;
                break;
            }
        if (all_done)
            break;
    }
    for (unsigned i = 0; i < n; i++)
        nodes[i]->group = NULL;
    return rc;
}

struct ev_loop *rt_node_loop(rt_node_t *node)
{
    return node->loop;
}

const char *rt_node_name(const rt_node_t *node)
{
    return node->name;
}

const rt_conf_t *rt_node_conf(const rt_node_t *node)
{
    return node->conf;
}

rt_trace_t *rt_node_trace(rt_node_t *node)
{
    return node->trace;
}
