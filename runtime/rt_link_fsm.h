/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * rt_link_fsm.h: the C interface of the link chart (fsm/link.rl, generated
 * into gen/fsm/link.c from fsm/link_exec.rl).
 *
 * The chart decides, the link acts: link_fsm_exec() feeds one event to the
 * chart, which runs the one action of the transition through a table of
 * plain C functions (rt_link.c gives the real ones, tests/fsm/test_link.c
 * gives recorders, so the chart is tested without sockets). An action returns
 * the next event (or 0): the caller feeds it, so actions never re-enter the
 * chart and the trace stays in order. Event numbers are enum ss_LinkEvent of
 * proto/fsm.proto.
 */
#ifndef RT_LINK_FSM_H
#define RT_LINK_FSM_H

#include "rt.h"

/* The actions of the chart. Each returns the next event (ss_LinkEvent) to
 * feed, or 0. @ctx is link_fsm_t.ctx. */
typedef struct link_fsm_ops {
    int (*connect)(void *ctx);   /* init/backoff -> connecting: start a TCP connect */
    int (*accept)(void *ctx);    /* init -> handshake: start the server side of TLS */
    int (*handshake)(void *ctx); /* connecting -> handshake: start the client side of TLS */
    int (*hello)(void *ctx);     /* handshake -> hello: send our Hello */
    int (*up)(void *ctx);        /* hello -> up: tell the owner, start heartbeats */
    int (*retry)(void *ctx);     /* -> backoff: drop the connection, arm the retry timer */
    int (*close)(void *ctx);     /* -> closed: drop the connection for good */
    /* records one transition (@to NULL: refused); rt_chart_trace in a node */
    void (*trace)(const rt_chart_t *c, const char *from, const char *event, const char *to);
} link_fsm_ops_t;

/* One chart instance, embedded in its link. */
typedef struct link_fsm {
    rt_chart_t chart;           /* cs, machine "link", actor, detail, peer: traced */
    const link_fsm_ops_t *ops;  /* the actions, not owned */
    void *ctx;                  /* passed to every action */
    int saved;                  /* state before the event, restored on refusal */
    int next;                   /* what the action returned */
    bool refused;               /* the last event was refused */
} link_fsm_t;

/*! link_fsm_init() : put @f in the init state, with @ops called with @ctx and
 *  transitions traced as @actor's. Nothing is traced or called. */
void link_fsm_init(link_fsm_t *f, const link_fsm_ops_t *ops, void *ctx, rt_actor_t *actor);
/*! link_fsm_exec() : feed @ev. On a transition the action runs, then the
 *  transition is traced with f->chart.detail. @return the next event to feed
 *  (> 0) or 0; RT_ERR if the state refused @ev (traced with to == NULL,
 *  the state is unchanged and no action ran). */
int link_fsm_exec(link_fsm_t *f, int ev);
/*! link_fsm_state_name() : "init", "connecting", ... for a chart state;
 *  "error" for Ragel's error state, "?" for anything else. */
const char *link_fsm_state_name(int cs);
/*! link_fsm_state() : the name of @f's current state. */
const char *link_fsm_state(const link_fsm_t *f);
/*! link_fsm_event_name() : "start", "tls_ok", ... (the proto name without
 *  LINK_, in lower case); "?" for a number that is not an event. */
const char *link_fsm_event_name(int ev);
/*! link_fsm_state_count() : number of named states, and link_fsm_state_at()
 *  the cs of the i-th one (for tests that walk every state). */
int link_fsm_state_count(void);
int link_fsm_state_at(int i);

#endif /* RT_LINK_FSM_H */
