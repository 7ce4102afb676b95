/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * pair_exec.rl: runs the pair chart (fsm/pair.rl) one event at a time.
 *
 * The chart is over ints: the events of enum PairEvent, imported from
 * proto/fsm.proto so that their numbers have one source. Each action is one
 * line that calls the agent's C through its table (nodes/agent/pair_fsm.h)
 * and keeps the event it returns; `refuse` puts back the state held before
 * the event. Tracing happens here, after the action, so every transition and
 * every refusal is recorded exactly once, with pair= the pair id. No I/O and
 * no allocation here.
 */
#include <ctype.h>
#include <stddef.h>
#include <string.h>

#include "fsm.pb.h"
#include "nodes/agent/pair_fsm.h"

%%{
  machine pair;
  alphtype int;
  access f->chart.;
  import "../proto/fsm.proto";

  action sync      { f->next = f->ops->sync(f->ctx); }
  action seeded    { f->next = f->ops->seeded(f->ctx); }
  action protect   { f->next = f->ops->protect(f->ctx); }
  action resync    { f->next = f->ops->resync(f->ctx); }
  action overflow  { f->next = f->ops->overflow(f->ctx); }
  action pause     { f->next = f->ops->pause(f->ctx); }
  action refuse    { f->refused = true; fgoto *f->saved; }
  action names     { (void)fentry(created); (void)fentry(initial_sync); (void)fentry(protected); (void)fentry(resyncing); (void)fentry(bitmap_mode); (void)fentry(paused); }

  include "pair.rl";
}%%

%% write data;

/* the named states, in chart order; filled on first use (Ragel's state
 * numbers are static const ints, not constant expressions) */
static int state_cs[6];
static const char *const state_names[6] = {
    "created", "initial_sync", "protected", "resyncing", "bitmap_mode", "paused",
};

static void states_fill(void)
{
    state_cs[0] = pair_en_main_start_created;
    state_cs[1] = pair_en_main_initial_sync;
    state_cs[2] = pair_en_main_protected;
    state_cs[3] = pair_en_main_resyncing;
    state_cs[4] = pair_en_main_bitmap_mode;
    state_cs[5] = pair_en_main_paused;
}

int pair_fsm_state_count(void)
{
    return (int)(sizeof state_names / sizeof state_names[0]);
}

int pair_fsm_state_at(int i)
{
    states_fill();
    return i >= 0 && i < pair_fsm_state_count() ? state_cs[i] : -1;
}

const char *pair_fsm_state_name(int cs)
{
    states_fill();
    if (cs == pair_error)
        return "error";
    for (int i = 0; i < pair_fsm_state_count(); i++)
        if (state_cs[i] == cs)
            return state_names[i];
    return "?";
}

const char *pair_fsm_state(const pair_fsm_t *f)
{
    return pair_fsm_state_name(f->chart.cs);
}

bool pair_fsm_in(const pair_fsm_t *f, const char *name)
{
    return strcmp(pair_fsm_state(f), name) == 0;
}

const char *pair_fsm_event_name(int ev)
{
    static char names[_ss_PairEvent_ARRAYSIZE][32];
    if (ev <= (int)_ss_PairEvent_MIN || ev > (int)_ss_PairEvent_MAX)
        return "?";
    char *out = names[ev];
    if (!out[0]) {
        const char *s = ss_PairEvent_name((ss_PairEvent)ev);
        if (strncmp(s, "PAIR_", 5) == 0)
            s += 5;
        size_t i = 0;
        for (; s[i] && i + 1 < sizeof names[0]; i++)
            out[i] = (char)tolower((unsigned char)s[i]);
        out[i] = '\0';
    }
    return out;
}

void pair_fsm_init(pair_fsm_t *f, const pair_fsm_ops_t *ops, void *ctx, rt_actor_t *actor,
                   const char *pair)
{
    memset(f, 0, sizeof *f);
    f->ops = ops;
    f->ctx = ctx;
    f->chart.machine = "pair";
    f->chart.actor = actor;
    f->chart.pair = pair;
    %% write init;
}

int pair_fsm_exec(pair_fsm_t *f, int ev)
{
    const int *p = &ev, *pe = p + 1, *eof = NULL;
    int from = f->chart.cs;
    f->saved = from;
    f->next = 0;
    f->refused = false;
    %% write exec;
    (void)eof;
    if (f->refused) {
        f->chart.cs = from;
        f->ops->trace(&f->chart, pair_fsm_state_name(from), pair_fsm_event_name(ev), NULL);
        return RT_ERR;
    }
    f->ops->trace(&f->chart, pair_fsm_state_name(from), pair_fsm_event_name(ev),
                  pair_fsm_state_name(f->chart.cs));
    return f->next;
}
