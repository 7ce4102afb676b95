/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * hub.c: the node's link hub (see hub.h).
 *
 * The hub owns the [listen] listener and one outbound link per [peer NAME];
 * links reconnect by themselves (rt_link.c), so the hub's job is small: say
 * in the log when a link goes up or down (with the reason the link gives),
 * route received frames to the role that subscribed to their tag, and tell
 * roles which link reaches which peer. Talks to: the links (it owns them)
 * and the subscribed roles. No chart of its own: each link runs
 * fsm/link.rl.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hub.h"
#include "link.pb.h"

typedef struct hub_peer {
    char name[RT_NAME_MAX];   /* [peer NAME] and the CN it must show */
    char addr[64];            /* its address */
    rt_link_t *link;          /* the outbound link, made at START */
} hub_peer_t;

typedef struct hub_sub {
    uint32_t lo, hi;          /* body tags */
    rt_actor_t *actor;
} hub_sub_t;

struct hub {
    rt_actor_t actor;         /* first: "hub" */
    rt_node_t *node;
    const rt_conf_t *conf;
    rt_link_conf_t lc;        /* [link] */
    rt_tls_t *tls_srv, *tls_cli;
    rt_listener_t *ls;
    hub_peer_t peers[HUB_PEERS_MAX];
    unsigned npeers;
    hub_sub_t subs[HUB_SUBS_MAX];
    unsigned nsubs;
    rt_actor_t *roles[HUB_ROLES]; /* local role actors, by role bit index */
    bool started;
    bool too_many_peers;
};

/* ---- helpers ------------------------------------------------------------------ */

static void roles_str(uint32_t roles, char *out, size_t outlen)
{
    static const char *const names[] = {"agent", "ps", "cs", "mt"};
    size_t off = 0;
    out[0] = '\0';
    for (unsigned i = 0; i < 4; i++)
        if (roles & (1u << i)) {
            int n = snprintf(out + off, outlen - off, "%s%s", off ? "," : "", names[i]);
            if (n < 0 || (size_t)n >= outlen - off)
                break;
            off += (size_t)n;
        }
    if (!out[0])
        snprintf(out, outlen, "none");
}

/* the index of a single role bit, or -1 */
static int role_index(uint32_t role)
{
    for (int i = 0; i < (int)HUB_ROLES; i++)
        if (role == (1u << i))
            return i;
    return -1;
}

static rt_actor_t *hub_route(void *arg, rt_link_t *l, const ss_Envelope *env)
{
    hub_t *hub = arg;
    uint32_t tag = env->which_body;
    (void)l;
    int r = role_index(env->to_role);
    if (r >= 0 && hub->roles[r])
        return hub->roles[r];
    for (unsigned i = 0; i < hub->nsubs; i++)
        if (tag >= hub->subs[i].lo && tag <= hub->subs[i].hi)
            return hub->subs[i].actor;
    return NULL; /* the hub itself: nobody wants it */
}

static void peer_cb(void *arg, const char *section, const char *name)
{
    hub_t *hub = arg;
    if (hub->npeers == HUB_PEERS_MAX) {
        hub->too_many_peers = true;
        return;
    }
    hub_peer_t *p = &hub->peers[hub->npeers++];
    snprintf(p->name, sizeof p->name, "%s", name);
    snprintf(p->addr, sizeof p->addr, "%s", rt_conf_str(hub->conf, section, "address"));
}

/* ---- dispatch ------------------------------------------------------------------ */

static void on_start(hub_t *hub)
{
    hub->started = true;
    for (unsigned i = 0; i < hub->npeers; i++) {
        hub_peer_t *p = &hub->peers[i];
        rt_link_conf_t lc = hub->lc;
        lc.peer_name = p->name;
        p->link = rt_link_connect(hub->node, &hub->actor, hub->tls_cli, p->addr, &lc);
        if (!p->link)
            continue; /* logged; the address was checked by the config already */
        rt_link_set_route(p->link, hub_route, hub);
        for (unsigned s = 0; s < hub->nsubs; s++)
            rt_link_watch(p->link, hub->subs[s].actor);
        for (unsigned r = 0; r < HUB_ROLES; r++)
            if (hub->roles[r])
                rt_link_watch(p->link, hub->roles[r]);
    }
}

static void on_up(const rt_msg_t *m)
{
    const ss_Hello *h = (const ss_Hello *)m->data;
    char roles[32];
    roles_str(h->roles, roles, sizeof roles);
    double off = (double)rt_link_clock_offset_us(m->link) / 1e6;
    rt_log(RT_LOG_INFO, "%s up: peer %s at %s, roles %s, clock offset %+.6f s",
           m->from ? m->from->name : "link", rt_link_peer(m->link), rt_link_addr(m->link), roles,
           off);
}

/* a peer leaving in good order is news; anything else is a warning */
static void on_down(const rt_msg_t *m)
{
    const char *why = (const char *)m->data;
    bool orderly = strncmp(why, "peer said goodbye (code 0", 25) == 0 ||
                   strcmp(why, "node stopping") == 0 || strncmp(why, "closed by", 9) == 0;
    rt_log(orderly ? RT_LOG_INFO : RT_LOG_WARN, "%s down: peer %s at %s: %s",
           m->from ? m->from->name : "link", rt_link_peer(m->link), rt_link_addr(m->link), why);
}

static void hub_dispatch(rt_actor_t *me, const rt_msg_t *m)
{
    hub_t *hub = (hub_t *)me;
    switch (m->tag) {
    case RT_SIG_START:
        on_start(hub);
        break;
    case RT_SIG_STOP:
        rt_actor_stopped(me); /* every link stops by itself */
        break;
    case RT_SIG_LINK_UP:
        on_up(m);
        break;
    case RT_SIG_LINK_DOWN:
        on_down(m);
        break;
    case RT_SIG_LINK_WRITABLE:
    case RT_SIG_RESUME:
    case RT_SIG_CRON:
    case RT_SIG_TIMER:
        break;
    default:
        if (m->tag < RT_SIG_USER)
            rt_log(RT_LOG_DEBUG, "hub: frame with body %u from %s dropped: no role takes it",
                   (unsigned)m->tag, m->link ? rt_link_peer(m->link) : "?");
        break;
    }
}

/* ---- lifecycle ------------------------------------------------------------------ */

static int tls_paths(const rt_conf_t *conf, char *ca, char *crt, char *key, size_t n, char *err,
                     size_t errlen)
{
    if (!rt_conf_path(conf, "tls", "ca", ca, n) || !rt_conf_path(conf, "tls", "cert", crt, n) ||
        !rt_conf_path(conf, "tls", "key", key, n)) {
        snprintf(err, errlen,
                 "%s: [tls] ca, cert and key are needed for [listen] link and [peer] links",
                 rt_conf_file(conf) ? rt_conf_file(conf) : "config");
        return RT_ERR;
    }
    return RT_OK;
}

hub_t *hub_new(rt_node_t *node, const rt_conf_t *conf, char *err, size_t errlen)
{
    char ca[4096], crt[4096], key[4096];
    hub_t *hub = calloc(1, sizeof *hub);
    if (!hub) {
        snprintf(err, errlen, "hub: out of memory");
        return NULL;
    }
    hub->node = node;
    hub->conf = conf;
    hub->lc.hb_interval_s = rt_conf_double(conf, "link", "hb_interval");
    hub->lc.hb_timeout_s = rt_conf_double(conf, "link", "hb_timeout");
    hub->lc.backoff_min_s = rt_conf_double(conf, "link", "backoff_min");
    hub->lc.backoff_max_s = rt_conf_double(conf, "link", "backoff_max");
    hub->lc.sndq_high = (size_t)rt_conf_u64(conf, "link", "sndq_high");
    hub->lc.max_payload = (uint32_t)rt_conf_u64(conf, "link", "max_payload");
    rt_conf_each(conf, "peer", peer_cb, hub);
    if (hub->too_many_peers) {
        snprintf(err, errlen, "%s: more than %u [peer] sections", rt_conf_file(conf),
                 HUB_PEERS_MAX);
        goto fail;
    }
    const char *listen = rt_conf_str(conf, "listen", "link");
    bool listening = listen && listen[0];
    if (rt_actor_init(&hub->actor, node, "hub", hub_dispatch) != RT_OK) {
        snprintf(err, errlen, "hub: message pool full");
        goto fail;
    }
    if (!listening && hub->npeers == 0)
        return hub; /* a node without links */
    if (tls_paths(conf, ca, crt, key, sizeof ca, err, errlen) != RT_OK)
        goto fail;
    if (hub->npeers && !(hub->tls_cli = rt_tls_ctx_new(ca, crt, key, false, err, errlen)))
        goto fail;
    if (listening) {
        if (!(hub->tls_srv = rt_tls_ctx_new(ca, crt, key, true, err, errlen)))
            goto fail;
        hub->ls = rt_listener_new(node, &hub->actor, hub->tls_srv, listen, &hub->lc);
        if (!hub->ls) {
            snprintf(err, errlen, "cannot listen on %s (see the line above)", listen);
            goto fail;
        }
        rt_listener_set_route(hub->ls, hub_route, hub);
        rt_log(RT_LOG_INFO, "listening for links on %s", listen);
    }
    return hub;
fail:
    hub_free(hub);
    return NULL;
}

void hub_free(hub_t *hub)
{
    if (!hub)
        return;
    for (unsigned i = 0; i < hub->npeers; i++)
        rt_link_free(hub->peers[i].link);
    rt_listener_free(hub->ls);
    rt_tls_ctx_free(hub->tls_cli);
    rt_tls_ctx_free(hub->tls_srv);
    rt_actor_fini(&hub->actor);
    free(hub);
}

/* links that exist already, and those accepted later, signal @actor too */
static void watch_all(hub_t *hub, rt_actor_t *actor)
{
    for (unsigned i = 0; i < hub->npeers; i++)
        if (hub->peers[i].link)
            rt_link_watch(hub->peers[i].link, actor);
    if (hub->ls) {
        rt_listener_watch(hub->ls, actor);
        for (rt_link_t *l = rt_listener_next(hub->ls, NULL); l; l = rt_listener_next(hub->ls, l))
            rt_link_watch(l, actor);
    }
}

int hub_subscribe(hub_t *hub, uint32_t tag_lo, uint32_t tag_hi, rt_actor_t *actor)
{
    if (tag_lo > tag_hi || tag_lo < 20 || tag_hi >= RT_SIG_USER || hub->nsubs == HUB_SUBS_MAX)
        return RT_ERR;
    for (unsigned i = 0; i < hub->nsubs; i++)
        if (tag_lo <= hub->subs[i].hi && hub->subs[i].lo <= tag_hi)
            return RT_ERR;
    hub->subs[hub->nsubs++] = (hub_sub_t){tag_lo, tag_hi, actor};
    watch_all(hub, actor);
    return RT_OK;
}

int hub_register_role(hub_t *hub, uint32_t role, rt_actor_t *actor)
{
    int r = role_index(role);
    if (r < 0 || hub->roles[r])
        return RT_ERR;
    hub->roles[r] = actor;
    watch_all(hub, actor);
    return RT_OK;
}

bool hub_role_local(const hub_t *hub, uint32_t role)
{
    int r = role_index(role);
    return r >= 0 && hub->roles[r] != NULL;
}

/* which role @actor plays here (0: none) */
static uint32_t role_of(const hub_t *hub, const rt_actor_t *actor)
{
    for (unsigned r = 0; r < HUB_ROLES; r++)
        if (hub->roles[r] == actor)
            return 1u << r;
    return 0;
}

/* post @env as if it had been received: the receiver cannot tell the difference */
static int post_local(rt_actor_t *to, rt_actor_t *from, const ss_Envelope *env, rt_buf_t *payload)
{
    rt_msg_t *m = rt_msg_new(to->node, from, env->which_body);
    if (!m)
        return RT_AGAIN;
    m->from = from;
    m->len = sizeof *env;
    memcpy(m->data, env, sizeof *env);
    if (payload) {
        rt_buf_ref(payload);
        m->buf = payload;
    }
    rt_msg_post(to, m);
    return RT_OK;
}

/* the first up link whose peer plays @role */
static rt_link_t *link_for_role(hub_t *hub, uint32_t role)
{
    for (unsigned i = 0; i < hub->npeers; i++) {
        rt_link_t *l = hub->peers[i].link;
        if (l && rt_link_is_up(l) && (rt_link_peer_roles(l) & role))
            return l;
    }
    if (hub->ls)
        for (rt_link_t *l = rt_listener_next(hub->ls, NULL); l; l = rt_listener_next(hub->ls, l))
            if (rt_link_is_up(l) && (rt_link_peer_roles(l) & role))
                return l;
    return NULL;
}

int hub_send_role(hub_t *hub, rt_actor_t *from, uint32_t role, ss_Envelope *env,
                  rt_buf_t *payload, uint32_t len)
{
    int r = role_index(role);
    if (r < 0)
        return RT_ERR;
    env->to_role = role;
    env->from_role = role_of(hub, from);
    env->payload_len = payload ? len : 0;
    if (hub->roles[r])
        return post_local(hub->roles[r], from, env, payload);
    rt_link_t *l = link_for_role(hub, role);
    if (!l)
        return RT_ERR;
    return rt_link_send(l, env, payload, env->payload_len);
}

hub_route_t hub_route_of(const rt_msg_t *m)
{
    const ss_Envelope *env = (const ss_Envelope *)m->data;
    return (hub_route_t){m->link, m->link ? NULL : m->from, env->from_role};
}

int hub_route_send(const hub_route_t *r, rt_actor_t *from, uint32_t from_role, ss_Envelope *env)
{
    env->to_role = r->role;
    env->from_role = from_role;
    env->payload_len = 0;
    if (r->link)
        return rt_link_send(r->link, env, NULL, 0);
    if (!r->actor)
        return RT_ERR;
    return post_local(r->actor, from, env, NULL);
}

int hub_reply(hub_t *hub, rt_actor_t *from, const rt_msg_t *m, ss_Envelope *env,
              rt_buf_t *payload, uint32_t len)
{
    const ss_Envelope *req = (const ss_Envelope *)m->data;
    env->to_role = req->from_role;
    env->from_role = role_of(hub, from);
    env->payload_len = payload ? len : 0;
    if (!m->link) {
        if (!m->from)
            return RT_ERR;
        return post_local(m->from, from, env, payload);
    }
    return rt_link_send(m->link, env, payload, env->payload_len);
}

rt_link_t *hub_link(hub_t *hub, const char *peer)
{
    for (unsigned i = 0; i < hub->npeers; i++) {
        rt_link_t *l = hub->peers[i].link;
        if (l && rt_link_is_up(l) && strcmp(rt_link_peer(l), peer) == 0)
            return l;
    }
    if (hub->ls)
        for (rt_link_t *l = rt_listener_next(hub->ls, NULL); l; l = rt_listener_next(hub->ls, l))
            if (rt_link_is_up(l) && strcmp(rt_link_peer(l), peer) == 0)
                return l;
    return NULL;
}

rt_actor_t *hub_actor(hub_t *hub)
{
    return &hub->actor;
}
