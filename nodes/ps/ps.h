/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * ps.h: the process server, the primary site's durable cache and forwarder.
 *
 * The process server takes the agents' WriteBatches (proto/repl.proto) into
 * one spool per pair (a seglog in [ps] dir/PAIR/spool, docs/FORMAT.md 3),
 * makes them durable with one fdatasync per spool for everything received
 * in a turn of the loop (group commit), and only then acknowledges them
 * (WriteAck.durable_seq). It forwards the spool to the master target in
 * batches of about 1 MiB, LZ4-compressed unless that does not save 10 %,
 * under a window of bytes in flight and a per-pair bandwidth limit ([ps]
 * bandwidth, a token bucket), frees spool segments once the master target
 * acknowledges them durable, and tells the agent (an unsolicited WriteAck)
 * whenever mt_durable_seq advances. The cache has a quota ([ps]
 * cache_quota): a warning at 75 % (log and status); every ack carries the
 * credit the agent may send beyond it (WriteAck.credit: the pair's share
 * of the room under the quota, docs/FORMAT.md 7), so that the agent waits
 * instead of sending what would be refused (its log absorbs, then bitmap
 * mode); past the quota and the credit given, ACK_FULL, which makes it
 * hold. The process server never drops data.
 *
 * With [ps] cache = relay (the default, auto, when the node also runs the
 * agent), the spool is never synced and the agent is told durable only what
 * the master target has: the agent's log on the same appliance is the
 * durable cache, and each byte is synced once on the primary site instead
 * of twice (ps.c, "Relay mode").
 *
 * Protocol: exactly PairOpen / WriteBatch / WriteAck as DATAPATH.md gives
 * them; the answer to a PairOpen is a PairOpen with reply = true. Frames
 * reach it through the hub (role RT_ROLE_PS) and it reaches the master
 * target with hub_send_role(RT_ROLE_MT), local or over a link.
 *
 * Overwrite coalescing inside a consistency interval is not done yet: every
 * captured write is forwarded.
 */
#ifndef PS_H
#define PS_H

#include "nodes/hub/hub.h"
#include "nodes/mgmt/mgmt.h"
#include "rt.h"

#define PS_PAIRS_MAX   64u          /* pairs one process server serves */
#define PS_BATCH_RAW   (1u << 20)   /* raw bytes of records per batch to the mt, about */
#define PS_WINDOW      (8u << 20)   /* bytes on the wire in flight to the mt, per pair */
#define PS_INFLIGHT    64u          /* batches in flight to the mt, per pair */
#define PS_WARN_PCT    75u          /* cache use that logs a warning */

typedef struct ps ps_t;

/*! ps_new() : the process server of @node, configured from @conf ([ps] dir,
 *  cache_quota, bandwidth, compress; [node] data_dir), registered with
 *  @hub for RT_ROLE_PS. Opens (recovers) every pair found in its folder.
 *  @conf and @hub must outlive it.
 *  A pair whose spool cannot be opened is left out, with an error in the log.
 *  @return NULL with a one-line reason in @err (folder, message pool, the
 *  hub's ps role taken). */
ps_t *ps_new(rt_node_t *node, const rt_conf_t *conf, hub_t *hub, char *err, size_t errlen);
/*! ps_free() : close every spool (nothing is lost: only committed data was
 *  acknowledged) and free; after the loop stopped. NULL is a no-op. */
void ps_free(ps_t *me);
/*! ps_actor() : the process server's actor. */
rt_actor_t *ps_actor(ps_t *me);

/*! ps_status() : the mgmt status provider (mgmt_status_fn): fills each
 *  pair's ps_durable_seq, mt_durable_seq, cache_bytes, cache_quota,
 *  backlog_bytes, disk and group, and writes the "ps" section (cache use and
 *  warning, bandwidth, compression, per pair spool and forwarding counters).
 *  @return MGMT_OK. */
int ps_status(void *me, mgmt_status_t *st, rt_json_t *out, char *err, size_t errlen);
/*! ps_register_status() : mgmt_register_status(@mgmt, "ps", ps_status, @me).
 *  @return RT_ERR if the provider table is full. */
int ps_register_status(ps_t *me, mgmt_t *mgmt);

/* What tests and status read. */
typedef struct ps_pair_info {
    uint64_t durable_seq;    /* last seq durable in the spool */
    uint64_t mt_durable_seq; /* last seq the mt acknowledged durable */
    uint64_t consistent_seq; /* as the mt said */
    uint64_t sent_seq;       /* last seq handed to the link towards the mt */
    uint64_t spool_bytes;    /* bytes of the spool's segment files */
    uint64_t backlog_bytes;  /* record bytes in the spool not yet durable at the mt, about */
    uint64_t raw_sent;       /* record bytes sent to the mt */
    uint64_t wire_sent;      /* payload bytes sent to the mt (after LZ4) */
    uint64_t batches_sent;
    uint64_t batches_lz4;    /* of which compressed */
    uint64_t full_acks;      /* ACK_FULL answers given to the agent */
} ps_pair_info_t;

/*! ps_pair_info() : the counters of pair @pair. @return RT_ERR if unknown. */
int ps_pair_info(const ps_t *me, const char *pair, ps_pair_info_t *out);
/*! ps_cache_bytes() : bytes of every spool together (what the quota counts). */
uint64_t ps_cache_bytes(const ps_t *me);
/*! ps_cache_warning() : true while the cache is above PS_WARN_PCT % of its
 *  quota (logged once when it gets there; cleared below 5 points under). */
bool ps_cache_warning(const ps_t *me);

#endif /* PS_H */
