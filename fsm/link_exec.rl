/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * link_exec.rl: runs the link chart (fsm/link.rl) one event at a time.
 *
 * The chart is over ints: the events of enum LinkEvent, imported from
 * proto/fsm.proto so that their numbers have one source. Each action is one
 * line that calls the link's C through its table (runtime/rt_link_fsm.h) and
 * keeps the event it returns; `refuse` puts back the state held before the
 * event. Tracing happens here, after the action, so every transition and
 * every refusal is recorded exactly once. No I/O and no allocation here.
 */
#include <ctype.h>
#include <stddef.h>
#include <string.h>

#include "fsm.pb.h"
#include "rt_link_fsm.h"

%%{
  machine link;
  alphtype int;
  access f->chart.;
  import "../proto/fsm.proto";

  action connect   { f->next = f->ops->connect(f->ctx); }
  action accept    { f->next = f->ops->accept(f->ctx); }
  action handshake { f->next = f->ops->handshake(f->ctx); }
  action hello     { f->next = f->ops->hello(f->ctx); }
  action up        { f->next = f->ops->up(f->ctx); }
  action retry     { f->next = f->ops->retry(f->ctx); }
  action close     { f->next = f->ops->close(f->ctx); }
  action refuse    { f->refused = true; fgoto *f->saved; }
  action names     { (void)fentry(init); (void)fentry(connecting); (void)fentry(handshake); (void)fentry(hello); (void)fentry(up); (void)fentry(backoff); (void)fentry(closed); }

  include "link.rl";
}%%

%% write data;

/* the named states, in chart order; filled on first use (Ragel's state
 * numbers are static const ints, not constant expressions) */
static int state_cs[7];
static const char *const state_names[7] = {
    "init", "connecting", "handshake", "hello", "up", "backoff", "closed",
};

static void states_fill(void)
{
    state_cs[0] = link_en_main_start_init;
    state_cs[1] = link_en_main_connecting;
    state_cs[2] = link_en_main_handshake;
    state_cs[3] = link_en_main_hello;
    state_cs[4] = link_en_main_up;
    state_cs[5] = link_en_main_backoff;
    state_cs[6] = link_en_main_closed;
}

int link_fsm_state_count(void)
{
    return (int)(sizeof state_names / sizeof state_names[0]);
}

int link_fsm_state_at(int i)
{
    states_fill();
    return i >= 0 && i < link_fsm_state_count() ? state_cs[i] : -1;
}

const char *link_fsm_state_name(int cs)
{
    states_fill();
    if (cs == link_error)
        return "error";
    for (int i = 0; i < link_fsm_state_count(); i++)
        if (state_cs[i] == cs)
            return state_names[i];
    return "?";
}

const char *link_fsm_state(const link_fsm_t *f)
{
    return link_fsm_state_name(f->chart.cs);
}

const char *link_fsm_event_name(int ev)
{
    static char names[_ss_LinkEvent_ARRAYSIZE][32];
    if (ev <= (int)_ss_LinkEvent_MIN || ev > (int)_ss_LinkEvent_MAX)
        return "?";
    char *out = names[ev];
    if (!out[0]) {
        const char *s = ss_LinkEvent_name((ss_LinkEvent)ev);
        if (strncmp(s, "LINK_", 5) == 0)
            s += 5;
        size_t i = 0;
        for (; s[i] && i + 1 < sizeof names[0]; i++)
            out[i] = (char)tolower((unsigned char)s[i]);
        out[i] = '\0';
    }
    return out;
}

void link_fsm_init(link_fsm_t *f, const link_fsm_ops_t *ops, void *ctx, rt_actor_t *actor)
{
    memset(f, 0, sizeof *f);
    f->ops = ops;
    f->ctx = ctx;
    f->chart.machine = "link";
    f->chart.actor = actor;
    %% write init;
}

int link_fsm_exec(link_fsm_t *f, int ev)
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
        f->ops->trace(&f->chart, link_fsm_state_name(from), link_fsm_event_name(ev), NULL);
        return RT_ERR;
    }
    f->ops->trace(&f->chart, link_fsm_state_name(from), link_fsm_event_name(ev),
                  link_fsm_state_name(f->chart.cs));
    return f->next;
}
