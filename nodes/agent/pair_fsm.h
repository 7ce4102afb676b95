/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * pair_fsm.h: the C interface of the pair chart (fsm/pair.rl, generated
 * into gen/fsm/pair.c from fsm/pair_exec.rl).
 *
 * The chart decides, the agent acts: pair_fsm_exec() feeds one event to the
 * chart, which runs the one action of the transition through a table of
 * plain C functions (nodes/agent/agent.c gives the real ones,
 * tests/fsm/test_pair.c gives recorders, so the chart is tested without
 * disks or sockets). An action returns the next event (or 0): the caller
 * feeds it, so actions never re-enter the chart and the trace stays in
 * order. Event numbers are enum ss_PairEvent of proto/fsm.proto.
 */
#ifndef PAIR_FSM_H
#define PAIR_FSM_H

#include "rt.h"

/* The actions of the chart. Each returns the next event (ss_PairEvent) to
 * feed, or 0. @ctx is pair_fsm_t.ctx. */
typedef struct pair_fsm_ops {
    int (*sync)(void *ctx);     /* -> initial_sync: start (or go on with) the full sync pass */
    int (*seeded)(void *ctx);   /* initial_sync -> protected: record that the replica holds a
                                   whole image of the disk, then as protect */
    int (*protect)(void *ctx);  /* -> protected: the resync is done, or nothing was pending */
    int (*resync)(void *ctx);   /* -> resyncing: a pass over the dirty regions only */
    int (*overflow)(void *ctx); /* -> bitmap_mode: capture into the dirty bitmap, ship the log */
    int (*pause)(void *ctx);    /* -> paused: stop shipping and syncing; capture goes on */
    /* records one transition (@to NULL: refused); rt_chart_trace in a node */
    void (*trace)(const rt_chart_t *c, const char *from, const char *event, const char *to);
} pair_fsm_ops_t;

/* One chart instance, embedded in its pair. */
typedef struct pair_fsm {
    rt_chart_t chart;          /* cs, machine "pair", actor, detail, pair: traced */
    const pair_fsm_ops_t *ops; /* the actions, not owned */
    void *ctx;                 /* passed to every action */
    int saved;                 /* state before the event, restored on refusal */
    int next;                  /* what the action returned */
    bool refused;              /* the last event was refused */
} pair_fsm_t;

/*! pair_fsm_init() : put @f in the created state, with @ops called with @ctx
 *  and transitions traced as @actor's for pair @pair (kept as a pointer: it
 *  must outlive @f). Nothing is traced or called. */
void pair_fsm_init(pair_fsm_t *f, const pair_fsm_ops_t *ops, void *ctx, rt_actor_t *actor,
                   const char *pair);
/*! pair_fsm_exec() : feed @ev. On a transition the action runs, then the
 *  transition is traced with f->chart.detail. @return the next event to feed
 *  (> 0) or 0; RT_ERR if the state refused @ev (traced with to == NULL, the
 *  state is unchanged and no action ran). */
int pair_fsm_exec(pair_fsm_t *f, int ev);
/*! pair_fsm_state_name() : "created", "initial_sync", ... for a chart state;
 *  "error" for Ragel's error state, "?" for anything else. */
const char *pair_fsm_state_name(int cs);
/*! pair_fsm_state() : the name of @f's current state. */
const char *pair_fsm_state(const pair_fsm_t *f);
/*! pair_fsm_event_name() : "initial", "sync_done", ... (the proto name
 *  without PAIR_, in lower case); "?" for a number that is not an event. */
const char *pair_fsm_event_name(int ev);
/*! pair_fsm_state_count() : number of named states, and pair_fsm_state_at()
 *  the cs of the i-th one (for tests that walk every state). */
int pair_fsm_state_count(void);
int pair_fsm_state_at(int i);
/*! pair_fsm_in() : true if @f is in the state named @name. */
bool pair_fsm_in(const pair_fsm_t *f, const char *name);

#endif /* PAIR_FSM_H */
