/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * rt_chart.c: the runtime side of the Ragel charts.
 *
 * The generated exec functions call rt_chart_trace() for every transition
 * and for every refused event, so that the trace file holds the complete
 * life of every chart instance. A refusal also gets one log line at WARN,
 * since an event a state does not accept is a protocol or logic error
 * someone has to look at; the chart itself stays where it was.
 */
#include "rt_i.h"

static const char *str(const char *s)
{
    return s ? s : "";
}

void rt_chart_trace(const rt_chart_t *c, const char *from, const char *event, const char *to)
{
    const char *actor = c->actor ? c->actor->name : "";
    from = str(from);
    event = str(event);
    bool refused = to == NULL;
    if (refused) {
        to = from;
        rt_log(RT_LOG_WARN, "%s: %s chart in state %s refuses event %s", actor, str(c->machine),
               from, event);
    } else {
        rt_log(RT_LOG_DEBUG, "%s: %s %s -%s-> %s", actor, str(c->machine), from, event, to);
    }
    if (!c->actor || !c->actor->node)
        return;
    rt_trace_rec_t r = {
        .actor = actor,
        .machine = c->machine,
        .from = from,
        .event = event,
        .to = to,
        .detail = c->detail,
        .peer = c->peer,
        .pair = c->pair,
        .refused = refused,
    };
    rt_trace_emit(rt_node_trace(c->actor->node), &r);
}
