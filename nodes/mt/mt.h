/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * mt.h: the master target, the secondary site's journal keeper.
 *
 * Per pair a retention journal (nodes/mt/journal.h, mtj_*) in [mt]
 * dir/PAIR/, created at the first PairOpen with the disk size. A WriteBatch
 * is inflated and every record checked (codec_batch_open: header, capture
 * hash, continuity, range inside the disk); a batch that fails gets
 * ACK_BAD_RECORD and nothing of it is applied. Good batches are appended,
 * made durable with one fdatasync per journal for everything received in a
 * turn of the loop, and acknowledged (WriteAck.durable_seq, which is also
 * mt_durable_seq). Records at or below what the journal holds are
 * acknowledged but not applied twice, so a sender can always resume from
 * the durable_seq a PairOpen answer gives it. The end of a sync pass
 * (BATCH_SYNC_DONE) is recorded durably (PAIR/mt.state, docs/FORMAT.md 5)
 * and reported as consistent_seq once the journal holds it. Writes older
 * than [mt] retention are promoted into the base image from the cron.
 *
 * Protocol: PairOpen (answered with a PairOpen, reply = true), WriteBatch
 * (answered with WriteAck) through the hub, role RT_ROLE_MT.
 */
#ifndef MT_H
#define MT_H

#include "nodes/common/codec.h"
#include "nodes/hub/hub.h"
#include "nodes/mgmt/mgmt.h"
#include "rt.h"

#define MT_PAIRS_MAX     64u          /* pairs one master target keeps */
#define MT_PROMOTE_CHUNK (64ull << 20) /* journal bytes promoted per cron, at most */

typedef struct mt mt_t;

/*! mt_new() : the master target of @node, configured from @conf ([mt] dir,
 *  retention, checkpoint; [node] data_dir), registered with @hub for
 *  RT_ROLE_MT. Opens (recovers) every journal found in its folder. @conf and
 *  @hub must outlive it.
 *  A pair whose journal cannot be opened is left out, with an error in the
 *  log (mtj_open says why: the operator's to repair).
 *  @return NULL with a one-line reason in @err (folder, message pool, the
 *  hub's mt role taken). */
mt_t *mt_new(rt_node_t *node, const rt_conf_t *conf, hub_t *hub, char *err, size_t errlen);
/*! mt_free() : close every journal and free; after the loop stopped. NULL is
 *  a no-op. */
void mt_free(mt_t *me);
/*! mt_actor() : the master target's actor. */
rt_actor_t *mt_actor(mt_t *me);

/*! mt_status() : the mgmt status provider (mgmt_status_fn): fills each
 *  pair's mt_durable_seq, disk and group, and writes the "mt" section
 *  (per pair: journal and base bytes, points, sequence bounds, consistent
 *  seq, retention). @return MGMT_OK. */
int mt_status(void *me, mgmt_status_t *st, rt_json_t *out, char *err, size_t errlen);
/*! mt_register_status() : mgmt_register_status(@mgmt, "mt", mt_status, @me).
 *  @return RT_ERR if the provider table is full. */
int mt_register_status(mt_t *me, mgmt_t *mgmt);

/* What the master target makes of a WriteBatch, before it touches the journal. */
typedef enum {
    MT_BATCH_APPLY = 0, /* good, and continues the journal (maybe after a resent prefix) */
    MT_BATCH_DUP,       /* good, every record is in the journal already */
    MT_BATCH_GAP,       /* good, but it does not continue the journal: resend from durable + 1 */
    MT_BATCH_BAD,       /* a record or the batch itself is bad: ACK_BAD_RECORD */
} mt_verdict_t;

/*! mt_batch_check() : the master target's decode and verify path for one
 *  WriteBatch (@flags, @first_seq, @last_seq, @count, @raw_len as the
 *  WriteBatch says, @payload of @len bytes) against a journal of a disk of
 *  @disk_size bytes whose last sequence is @last_seq_held: inflate, check
 *  every record (codec_batch_open), then place the run. Pure: it writes only
 *  into @w and @run. @why (@whylen bytes) says what is wrong for MT_BATCH_BAD.
 *  @return the verdict. */
mt_verdict_t mt_batch_check(uint32_t flags, uint64_t first_seq, uint64_t last_seq,
                            uint32_t count, uint32_t raw_len, const uint8_t *payload, size_t len,
                            uint64_t disk_size, uint64_t last_seq_held, codec_work_t *w,
                            codec_run_t *run, char *why, size_t whylen);

/* What tests and status read. */
typedef struct mt_pair_info {
    uint64_t last_seq;       /* last record appended */
    uint64_t durable_seq;    /* last record committed */
    uint64_t consistent_seq; /* end of the last sync pass held durably (0: none) */
    uint64_t records;        /* records in the journal after the promoted seq */
    uint64_t promoted_seq;
    uint64_t batches;        /* batches applied (not counting duplicates) */
    uint64_t dup_batches;    /* batches acknowledged without applying anything */
    uint64_t bad_batches;    /* batches refused with ACK_BAD_RECORD */
} mt_pair_info_t;

/*! mt_pair_info() : the counters of pair @pair. @return RT_ERR if unknown. */
int mt_pair_info(const mt_t *me, const char *pair, mt_pair_info_t *out);

#endif /* MT_H */
