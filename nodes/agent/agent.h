/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * agent.h: the agent role, the actor that captures every write of the
 * protected disks and ships it to the process server.
 *
 * One pair per [disk NAME] section: the disk (an image file or a block
 * device, [disk] path) is served to its workload as an NBD export on [disk]
 * listen (nodes/agent/nbd.h). Every completed write gets a per-disk
 * sequence number, a timestamp and an XXH64 checksum and is appended, after
 * it reached the disk and before the client sees the reply, to the pair's
 * write log (a seglog in DATA/agent/PAIR/log, bounded by [agent] log_max);
 * FLUSH and FUA commit the log. The log is shipped to the process server
 * (PairOpen / WriteBatch / WriteAck, proto/repl.proto) and trimmed only on
 * its WriteAck; a reconnect resumes from the process server's durable_seq.
 * A persistent dirty bitmap (nodes/agent/bitmap.h, DATA/agent/PAIR/bitmap)
 * takes the writes the log cannot (bitmap mode after an overflow, failed
 * writes, extents active at a crash), and sync passes (initial sync, resync)
 * send only the regions it marks. The pair chart (fsm/pair.rl) is the
 * pair's state; every transition is traced with pair= the pair id.
 *
 * A write acknowledged to the NBD client is never lost and never applied
 * out of order: its record is in the log (the page cache survives kill -9
 * of anything; a FLUSH made it durable against power loss too) before the
 * reply, and records are shipped and applied in sequence order.
 */
#ifndef AGENT_H
#define AGENT_H

#include <stdbool.h>
#include <stdint.h>

#include "nodes/hub/hub.h"
#include "nodes/mgmt/mgmt.h"
#include "rt.h"

#define AGENT_PAIRS_MAX   16u          /* [disk NAME] sections one agent serves */
#define AGENT_REC_MAX     (1u << 20)   /* data bytes per record: longer writes are split,
                                          sync references are cut at this size */
#define AGENT_BATCH       (1u << 20)   /* record bytes per WriteBatch, about */
#define AGENT_WINDOW      (32u << 20)  /* record bytes in flight to the ps, per pair (relay: to the mt) */
#define AGENT_INFLIGHT    32u          /* batches in flight to the ps, per pair */
#define AGENT_SYNC_AHEAD  (16u << 20)  /* bytes a sync pass may queue beyond the ps's acks */
#define AGENT_COALESCE_RECS  64u         /* a trickle of writes behind a batch in flight... */
#define AGENT_COALESCE_BYTES (256u << 10)  /* ...waits for its ack below these (Nagle) */
#define AGENT_SEG_MAX     (4u << 20)   /* log segment size, at most (log_max / 8 below) */
#define AGENT_STALL_S     5.0          /* no ack progress with batches in flight: reopen */
#define AGENT_HOLD_S      1.0          /* wait after ACK_FULL before trying again */

typedef struct agent agent_t;

/*! agent_new() : the agent of @node, configured from @conf ([agent]
 *  log_max, every [disk NAME]: path, export, listen, pair, group; [node]
 *  data_dir), registered with @hub for RT_ROLE_AGENT. Opens (recovers) or
 *  creates each pair's log and bitmap and starts its NBD export. @conf and
 *  @hub must outlive it.
 *  @return NULL with a one-line reason in @err (no [disk] section, more than
 *  AGENT_PAIRS_MAX, a disk or folder that cannot be opened, a damaged log or
 *  bitmap, an address in use, a message pool too small). */
agent_t *agent_new(rt_node_t *node, const rt_conf_t *conf, hub_t *hub, char *err, size_t errlen);
/*! agent_free() : stop the exports (requests not yet replied to are dropped,
 *  never acknowledged), close logs and bitmaps; after the loop stopped (a
 *  clean stop, RT_SIG_STOP, committed everything first). NULL is a no-op. */
void agent_free(agent_t *me);
/*! agent_actor() : the agent's actor. */
rt_actor_t *agent_actor(agent_t *me);

/*! agent_status() : the mgmt status provider (mgmt_status_fn): fills each
 *  pair's disk, group, state, source_seq, ps_durable_seq, mt_durable_seq,
 *  drained, rpo_lag_ms, backlog_bytes, bitmap_dirty_bytes, sync_progress and
 *  link, and writes the "agent" section (log_max, per pair: export, NBD
 *  address and counters, log, bitmap, sync pass, shipping counters).
 *  @return MGMT_OK. */
int agent_status(void *me, mgmt_status_t *st, rt_json_t *out, char *err, size_t errlen);
/*! agent_pair_status() : what agent_status() fills into the status pair of
 *  @pair (@out as mgmt_status_pair() hands it out: id set, the rest
 *  unknown; the fields the agent does not know stay so). With a NULL @st,
 *  agent_status() writes only its section. @return RT_ERR if unknown. */
int agent_pair_status(const agent_t *me, const char *pair, mgmt_pair_t *out);
/*! agent_register_mgmt() : register agent_status() as "agent" and the admin
 *  commands "pause PAIR" and "resume PAIR" with @mgmt.
 *  @return RT_ERR if a table is full or a name is taken. */
int agent_register_mgmt(agent_t *me, mgmt_t *mgmt);

/*! agent_pause() : pause (@pause) or resume replication of @pair: paused,
 *  writes are still captured (log, then bitmap) but nothing is shipped or
 *  synced. @return RT_ERR if the pair is unknown or the chart refuses. */
int agent_pause(agent_t *me, const char *pair, bool pause);

/* What tests and status read about one pair. */
typedef struct agent_pair_info {
    const char *state;        /* pair chart state */
    const char *session;      /* "down", "opening", "open", "held" */
    unsigned nbd_port;        /* bound NBD port */
    uint64_t disk_size;
    uint64_t captured;        /* last seq given to a write (source_seq) */
    uint64_t ps_acked;        /* last seq durable at the ps */
    uint64_t mt_acked;        /* last seq durable at the mt, as the ps says */
    uint64_t consistent_seq;  /* as the ps says */
    uint64_t log_first, log_last, log_bytes; /* the write log */
    uint64_t dirty_bytes;     /* bitmap */
    uint64_t sync_from, sync_end; /* the sync pass in progress (0: none / not yet) */
    bool bitmap_capture;      /* writes go to the bitmap (log overflowed) */
    bool seeded;              /* an initial sync completed once */
    bool drained;             /* bitmap empty, no sync pending, mt_acked >= captured */
    unsigned recovered;       /* extents folded into the bitmap after a crash, at open */
    unsigned active;          /* extents marked active now (writes since the last cron) */
    uint64_t writes;          /* writes captured (log or bitmap) */
    uint64_t sent_batches, sent_bytes; /* WriteBatch frames and record bytes sent */
    uint64_t sync_data_bytes; /* data bytes sent for sync references */
    uint64_t sync_zero_bytes; /* bytes of sync references that read as zeros: ZERO records */
    uint64_t sync_hole_bytes; /* bytes of holes a sync pass sent as ZERO records, unread */
    uint64_t reopens;         /* PairOpen sent */
    bool credit_on;           /* the ps gives credit (WriteAck.credit) */
    uint64_t credit;          /* ... record bytes beyond ps_acked, as it last said */
    uint64_t inflight_bytes;  /* record bytes sent beyond ps_acked */
    uint64_t rewinds;         /* ACK_FULL under credit: sent again from ps_acked + 1 */
} agent_pair_info_t;

/*! agent_pair_info() : the state of pair @pair. @return RT_ERR if unknown. */
int agent_pair_info(const agent_t *me, const char *pair, agent_pair_info_t *out);

#endif /* AGENT_H */
