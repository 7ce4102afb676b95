/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * hub.h: the node's link hub, the actor that owns every link of a node.
 *
 * The hub listens on [listen] link for other nodes and keeps one outbound
 * link per [peer NAME] section (to its address, expecting a certificate
 * with CN=NAME), all mutual TLS 1.3 against [tls] ca with the node's [tls]
 * cert and key. It logs each link going up and down. Roles do not handle
 * sockets: they subscribe to a range of frame body tags and get those frames
 * (and every link's RT_SIG_LINK_UP/DOWN/WRITABLE), and find the link to a
 * peer by name when they want to send.
 */
#ifndef HUB_H
#define HUB_H

#include "rt.h"

#define HUB_PEERS_MAX 32u /* [peer NAME] sections */
#define HUB_SUBS_MAX  32u /* subscriptions */
#define HUB_ROLES     4u  /* RT_ROLE_AGENT .. RT_ROLE_MT */

typedef struct hub hub_t;

/*! hub_new() : the hub of @node, configured from @conf ([tls], [listen],
 *  [link], [peer NAME]). The listener is bound at once; outbound links start
 *  when the node runs. @conf must outlive the hub.
 *  @return NULL with a one-line reason in @err (missing [tls] keys while
 *  links are configured, unreadable certificates, an address in use). */
hub_t *hub_new(rt_node_t *node, const rt_conf_t *conf, char *err, size_t errlen);
/*! hub_free() : free the hub and all its links, after the loop stopped. */
void hub_free(hub_t *hub);
/*! hub_subscribe() : frames whose body tag is in [@tag_lo, @tag_hi] go to
 *  @actor, which also gets the link signals of every link; @actor must
 *  outlive the hub. @return RT_ERR if the range overlaps another
 *  subscription, is inside the link's own tags (< 20) or the table is full. */
int hub_subscribe(hub_t *hub, uint32_t tag_lo, uint32_t tag_hi, rt_actor_t *actor);
/*! hub_register_role() : frames addressed to @role (Envelope.to_role, one
 *  RT_ROLE_* bit) go to @actor, which also gets the link signals of every
 *  link, and hub_send_role() to @role from this node posts to it directly.
 *  @return RT_ERR if the role is taken or not a single role bit. */
int hub_register_role(hub_t *hub, uint32_t role, rt_actor_t *actor);
/*! hub_send_role() : send the frame @env (+ @len bytes of @payload, one
 *  reference taken; may be NULL) from @from, a registered role actor, to
 *  the role @role: posted directly when that role runs on this node (the
 *  message looks exactly like a received frame, with m->link NULL and
 *  m->from = @from), else sent on the first up link whose peer announced
 *  @role. Sets env to_role/from_role/payload_len.
 *  @return RT_OK; RT_AGAIN when the link's send queue is full (wait for
 *  RT_SIG_LINK_WRITABLE) or the message pool is (wait for RT_SIG_RESUME);
 *  RT_ERR when no up link reaches @role (wait for RT_SIG_LINK_UP). */
struct _ss_Envelope;
int hub_send_role(hub_t *hub, rt_actor_t *from, uint32_t role, struct _ss_Envelope *env,
                  rt_buf_t *payload, uint32_t len);
/*! hub_reply() : send @env (+ payload) back to where the frame @m came from:
 *  on m->link to the role in its from_role, or locally to m->from.
 *  @return as hub_send_role(). */
int hub_reply(hub_t *hub, rt_actor_t *from, const rt_msg_t *m, struct _ss_Envelope *env,
              rt_buf_t *payload, uint32_t len);
/* A remembered way back to the sender of a frame, for a role that answers
 * later and unprompted (acks): the link the frame came on, or the local
 * sender actor when it came from this node. Drop it on that link's
 * RT_SIG_LINK_DOWN. */
typedef struct hub_route {
    rt_link_t *link;   /* the link the frame came on, or NULL (local) */
    rt_actor_t *actor; /* the sender on this node when link is NULL */
    uint32_t role;     /* the sender's role (its Envelope.from_role) */
} hub_route_t;
/*! hub_route_of() : the route back to where the frame @m came from. */
hub_route_t hub_route_of(const rt_msg_t *m);
/*! hub_route_send() : a frame without payload from @from (playing
 *  @from_role) along @r. @return RT_OK, RT_AGAIN (send queue or message
 *  pool full: retry on RT_SIG_LINK_WRITABLE or RT_SIG_RESUME), RT_ERR (the
 *  route is gone). */
int hub_route_send(const hub_route_t *r, rt_actor_t *from, uint32_t from_role,
                   struct _ss_Envelope *env);
/*! hub_role_local() : true when @role runs on this node. */
bool hub_role_local(const hub_t *hub, uint32_t role);
/*! hub_link() : an up link to the node named @peer (outbound or accepted),
 *  or NULL. Look it up when needed rather than keeping it. */
rt_link_t *hub_link(hub_t *hub, const char *peer);
/*! hub_actor() : the hub's actor (it owns the links). */
rt_actor_t *hub_actor(hub_t *hub);

#endif /* HUB_H */
