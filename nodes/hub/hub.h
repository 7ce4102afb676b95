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
/*! hub_link() : an up link to the node named @peer (outbound or accepted),
 *  or NULL. Look it up when needed rather than keeping it. */
rt_link_t *hub_link(hub_t *hub, const char *peer);
/*! hub_actor() : the hub's actor (it owns the links). */
rt_actor_t *hub_actor(hub_t *hub);

#endif /* HUB_H */
