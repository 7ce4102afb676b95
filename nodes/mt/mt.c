/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * mt.c: the master target actor (see mt.h).
 *
 * Owns: one journal per pair ([mt] dir/PAIR/, nodes/mt/journal.c) and a
 * small state file beside it (PAIR/mt.state: disk, group, epoch, and the
 * end of the last sync pass; docs/FORMAT.md 5). Talks to: the process
 * server (PairOpen and WriteBatch in, the PairOpen answer and WriteAck out)
 * through the hub. No chart of its own: the pair chart lives at the agent.
 *
 * Why a batch is checked here before mtj_append() checks it again: the
 * journal says only "failed", and the master target must tell a bad record
 * (ACK_BAD_RECORD: the sender resends or resyncs that range; the journal is
 * fine) from an I/O error (the journal is reopened and the sender held with
 * ACK_FULL). mt_batch_check() is also the surface tests/fuzz/fuzz_batch.c
 * runs arbitrary bytes through.
 *
 * Pipeline: the check (inflate, every record's capture hash) is the CPU-heavy
 * part, so it runs on the node's workers (rt_work_submit), up to MT_VJOBS
 * batches at once, each with its own scratch space. Batches wait in one FIFO
 * in arrival order (MT_QLEN, all pairs) and are placed and appended from its
 * head only, so the journal sees them in sequence order whatever order the
 * checks finish in; whether a batch is new, a duplicate or a gap is decided
 * at the head, against the journal as it is then. Small batches are checked
 * on the loop (a thread hop costs more). On RT_SIG_STOP what was received is
 * checked and appended before the master target says it stopped.
 *
 * Group commit: a batch is appended at once and a zero-delay timer starts
 * the commit of every journal that changed; its fdatasync runs on a worker
 * (mtj_commit_begin / seglog_job_run / mtj_commit_end) while the loop keeps
 * taking batches, and what it covered is acknowledged when the job is back.
 * One commit per journal is in flight; batches that arrived meanwhile share
 * the next one, started when the job is back. Segments that promotion
 * dropped are deleted by worker jobs too (mtj_reap_begin). Promotion itself
 * (base image writes and sync, state file) stays on the loop. The end of
 * a sync pass is written to mt.state before that commit; it counts (as
 * consistent_seq) only once the journal durably reaches it, so a crash
 * between the two loses nothing and claims nothing early.
 */
#include "mt.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "link.pb.h"
#include "nodes/common/kvstate.h"
#include "nodes/mt/journal.h"

#define MT_STATE_NAME  "mt.state"
#define MT_STATE_MAGIC "secondsite-mt-pair"
#define MT_PATH_MAX    4096u
#define MT_QLEN        256u         /* batches received and not yet appended (all pairs) */
#define MT_VJOBS       4u           /* batches checked at once (each has its scratch) */
#define MT_VINLINE     (32u << 10)  /* payload bytes under which a batch is checked on the loop */
#define MT_TRIM_IDLE   2u           /* crons without a batch before the scratch is freed */

enum {
    MT_SIG_COMMIT = RT_SIG_USER + 1, /* commit timer: end of the turn, commit and ack */
    MT_SIG_CHECKED = RT_SIG_USER + 2, /* a worker checked a batch (rt_work_arg: its vjob_t) */
    MT_SIG_SYNCED = RT_SIG_USER + 3, /* a worker synced a journal or deleted dropped segments
                                        (rt_work_arg: its seglog_job_t) */
};

/* Where the sender of a pair's batches is: a link (and its role), or a local actor. */
typedef struct mt_pair {
    mt_t *mt;
    char id[RT_NAME_MAX];
    char disk[RT_NAME_MAX];
    char group[RT_NAME_MAX];
    mtj_t *j;                /* NULL while unusable (failed to reopen) */
    uint64_t disk_size;
    uint64_t epoch;
    uint64_t last, durable;  /* journal: appended, committed */
    uint64_t consistent;     /* end of a sync pass the journal durably holds */
    uint64_t sync_pending;   /* end of a sync pass recorded, not yet durable in the journal */
    bool dirty;              /* appended since the last commit began */
    seglog_job_t *cjob;      /* commit in flight (a worker syncs the journal), or NULL */
    seglog_job_t *rjob;      /* deletion of dropped segments in flight, or NULL */
    bool ack_owed;
    uint64_t told;           /* durable_seq of the last ACK_OK the sender took */
    hub_route_t src;
    uint64_t batches, dups, bad;
} mt_pair_t;

typedef enum {
    VJ_WAIT = 0, /* received, waiting for a scratch space */
    VJ_RUN,      /* being checked (a worker owns payload bytes, work and the results) */
    VJ_DONE,     /* checked: rc, run and why say how */
} vj_state_t;

/* One received WriteBatch on its way to the journal. */
typedef struct vjob {
    mt_pair_t *p;
    codec_batch_t b;         /* what the WriteBatch says */
    uint64_t epoch;
    uint64_t disk_size;      /* the pair's, for the job (which must not read p) */
    rt_buf_t *payload;       /* the frame's payload (a reference) */
    uint32_t len;            /* its bytes */
    vj_state_t state;
    int ctx;                 /* index of its scratch space, -1: none yet */
    codec_work_t *work;      /* = &mt->work[ctx] while it has one */
    int rc;                  /* codec_batch_open's answer */
    codec_run_t run;         /* the checked run (in payload or in work->raw) */
    char why[192];
} vjob_t;

struct mt {
    rt_actor_t actor;        /* first: "mt" */
    rt_node_t *node;
    hub_t *hub;
    const rt_conf_t *conf;
    char dir[MT_PATH_MAX];
    uint64_t retention_us;
    uint64_t checkpoint_us;
    mt_pair_t *pairs[MT_PAIRS_MAX];
    unsigned npairs;
    rt_timer_t commit_t;
    bool commit_armed;
    vjob_t q[MT_QLEN];       /* FIFO of received batches, applied from the head */
    unsigned q_head, q_n;
    codec_work_t work[MT_VJOBS]; /* scratch spaces for checks */
    bool work_busy[MT_VJOBS];
    uint64_t received;       /* batches received, to see the idle cron */
    uint64_t received_seen;
    unsigned idle_crons;
    bool stopping;           /* RT_SIG_STOP: finish the FIFO, then say stopped */
};

/* ---- helpers ------------------------------------------------------------------ */

static mt_pair_t *pair_find(const mt_t *me, const char *id)
{
    for (unsigned i = 0; i < me->npairs; i++)
        if (strcmp(me->pairs[i]->id, id) == 0)
            return me->pairs[i];
    return NULL;
}

static void copy_name(char *dst, const char *src)
{
    snprintf(dst, RT_NAME_MAX, "%s", src && strcmp(src, "-") != 0 ? src : "");
}

/* ---- the batch check (pure) ------------------------------------------------------ */

/* where a checked run goes against a journal whose last seq is @last_seq_held */
static mt_verdict_t place(const codec_run_t *run, uint64_t last_seq_held)
{
    if (run->last_seq <= last_seq_held)
        return MT_BATCH_DUP;
    if (run->from_seq > last_seq_held + 1)
        return MT_BATCH_GAP;
    return MT_BATCH_APPLY;
}

mt_verdict_t mt_batch_check(uint32_t flags, uint64_t first_seq, uint64_t last_seq,
                            uint32_t count, uint32_t raw_len, const uint8_t *payload, size_t len,
                            uint64_t disk_size, uint64_t last_seq_held, codec_work_t *w,
                            codec_run_t *run, char *why, size_t whylen)
{
    codec_batch_t b = {first_seq, last_seq, count, flags, raw_len};
    if (codec_batch_open(&b, payload, len, disk_size, w, run, why, whylen) != RT_OK)
        return MT_BATCH_BAD;
    return place(run, last_seq_held);
}

/* ---- pairs ---------------------------------------------------------------------- */

static int state_save(mt_pair_t *p, char *err, size_t errlen)
{
    char dir[MT_PATH_MAX + RT_NAME_MAX + 2];
    kvs_t kv = {0};
    snprintf(dir, sizeof dir, "%s/%s", p->mt->dir, p->id);
    kvs_set(&kv, "pair", p->id);
    kvs_set(&kv, "disk", p->disk[0] ? p->disk : "-");
    kvs_set(&kv, "group", p->group[0] ? p->group : "-");
    kvs_set_u64(&kv, "epoch", p->epoch);
    kvs_set_u64(&kv, "consistent_seq", p->consistent);
    kvs_set_u64(&kv, "sync_done_seq", p->sync_pending);
    return kvs_write(dir, MT_STATE_NAME, MT_STATE_MAGIC, 1, &kv, err, errlen);
}

static void state_load(mt_pair_t *p)
{
    char dir[MT_PATH_MAX + RT_NAME_MAX + 2], err[256];
    kvs_t kv;
    snprintf(dir, sizeof dir, "%s/%s", p->mt->dir, p->id);
    if (kvs_read(dir, MT_STATE_NAME, MT_STATE_MAGIC, 1, &kv, err, sizeof err) != RT_OK) {
        if (errno != ENOENT)
            rt_log(RT_LOG_WARN, "mt: pair %s: %s (consistent_seq starts again at 0)", p->id,
                   err);
        return;
    }
    copy_name(p->disk, kvs_get(&kv, "disk"));
    copy_name(p->group, kvs_get(&kv, "group"));
    p->epoch = kvs_get_u64(&kv, "epoch", 0);
    p->consistent = kvs_get_u64(&kv, "consistent_seq", 0);
    p->sync_pending = kvs_get_u64(&kv, "sync_done_seq", 0);
}

/* a recorded end of sync pass counts once the journal durably holds it */
static bool settle_sync(mt_pair_t *p)
{
    if (!p->sync_pending || p->durable < p->sync_pending)
        return false;
    if (p->sync_pending > p->consistent)
        p->consistent = p->sync_pending;
    p->sync_pending = 0;
    return true;
}

static int journal_open(mt_pair_t *p, uint64_t disk_size, bool create, char *err, size_t errlen)
{
    mtj_conf_t jc = {.disk_size = disk_size, .retention_us = p->mt->retention_us,
                     .first_seq = 1, .create = create, .defer_unlink = true};
    p->j = mtj_open(p->mt->dir, p->id, &jc, err, errlen);
    if (!p->j)
        return RT_ERR;
    mtj_info_t info;
    mtj_info(p->j, &info);
    p->disk_size = info.disk_size;
    p->last = info.last_seq;
    p->durable = info.durable_seq;
    p->dirty = false;
    return RT_OK;
}

/* after a failed append or commit: what a reopen recovers is the truth */
static void journal_reopen(mt_pair_t *p)
{
    char err[256];
    mtj_close(p->j);
    p->j = NULL;
    if (journal_open(p, 0, false, err, sizeof err) != RT_OK)
        rt_log(RT_LOG_ERR, "mt: pair %s: cannot reopen its journal: %s", p->id, err);
}

static mt_pair_t *pair_alloc(mt_t *me, const char *id)
{
    mt_pair_t *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->mt = me;
    if ((size_t)snprintf(p->id, sizeof p->id, "%s", id) >= sizeof p->id) {
        free(p);
        return NULL;
    }
    return p;
}

static void pair_close(mt_pair_t *p)
{
    if (!p)
        return;
    mtj_close(p->j);
    seglog_job_free(p->cjob); /* never saw their end: dropped by rt_actor_fini */
    seglog_job_free(p->rjob);
    free(p);
}

static void pair_load(mt_t *me, const char *id)
{
    char err[512];
    mt_pair_t *p = pair_alloc(me, id);
    if (!p)
        return;
    state_load(p);
    if (journal_open(p, 0, false, err, sizeof err) != RT_OK) {
        rt_log(RT_LOG_ERR, "mt: pair %s left out: %s", id, err);
        pair_close(p);
        return;
    }
    settle_sync(p);
    me->pairs[me->npairs++] = p;
    rt_log(RT_LOG_INFO, "mt: pair %s: journal up to %" PRIu64 ", consistent from %" PRIu64, id,
           p->durable, p->consistent);
}

/* ---- group commit ------------------------------------------------------------------ */

static void arm_commit(mt_t *me)
{
    if (!me->commit_armed) {
        me->commit_armed = true;
        rt_timer_start(&me->commit_t, 0.0, 0.0);
    }
}

static int ack_to(mt_t *me, mt_pair_t *p, const hub_route_t *r, uint32_t status, const char *reason)
{
    ss_Envelope env = ss_Envelope_init_zero;
    env.which_body = ss_Envelope_write_ack_tag;
    ss_WriteAck *a = &env.body.write_ack;
    snprintf(a->pair, sizeof a->pair, "%s", p->id);
    a->durable_seq = p->durable;
    a->mt_durable_seq = p->durable;
    a->consistent_seq = p->consistent;
    a->status = status;
    if (reason)
        snprintf(a->reason, sizeof a->reason, "%s", reason);
    return hub_route_send(r, &me->actor, RT_ROLE_MT, &env);
}

/* the ack a sender is owed, or news of a commit it was not told yet: an ack
 * sent from the cron or RESUME between an append and its commit carries the
 * old durable_seq, and the commit must still say the new one (else the
 * sender's window stays full with nothing left to send) */
static void ack_owed(mt_t *me, mt_pair_t *p)
{
    if (!p->ack_owed && p->durable <= p->told)
        return;
    int rc = ack_to(me, p, &p->src, ss_AckStatus_ACK_OK, NULL);
    if (rc == RT_AGAIN)
        return; /* again on WRITABLE or RESUME */
    if (rc == RT_ERR)
        p->src = (hub_route_t){NULL, NULL, 0}; /* gone: its next PairOpen learns durable */
    p->told = p->durable;
    p->ack_owed = false;
}

/* after a commit: a sync pass end the journal now holds counts, and the
 * sender hears what is durable (not while a commit is in flight: its end
 * acks, with what it made durable) */
static void settle_and_ack(mt_t *me, mt_pair_t *p)
{
    char err[256];
    if (settle_sync(p) && state_save(p, err, sizeof err) != RT_OK)
        rt_log(RT_LOG_WARN, "mt: pair %s: %s", p->id, err);
    if (!p->cjob)
        ack_owed(me, p);
}

/* the end of a commit job, on the loop: durable rises to what it covered */
static void commit_done(mt_pair_t *p, seglog_job_t *job)
{
    char err[256];
    uint64_t d = 0;
    if (mtj_commit_end(p->j, job, &d, err, sizeof err) != RT_OK) {
        rt_log(RT_LOG_ERR, "mt: pair %s: %s; reopening the journal", p->id, err);
        journal_reopen(p);
    } else if (p->j) {
        p->durable = d;
    }
}

/* start the commit of what @p appended, unless one is in flight (its end
 * starts the next); the fdatasync runs on a worker */
static void commit_pair(mt_t *me, mt_pair_t *p)
{
    char err[256];
    seglog_job_t *job = NULL;
    uint64_t d = 0;
    if (!p->dirty || !p->j || p->cjob)
        return;
    p->dirty = false;
    int rc = mtj_commit_begin(p->j, &job, err, sizeof err);
    if (rc == RT_AGAIN) {
        p->dirty = true; /* (not with cjob NULL; kept for safety) */
        return;
    }
    if (rc == RT_OK && !job && mtj_commit(p->j, &d, err, sizeof err) == RT_OK) {
        p->durable = d; /* durable already: nothing is synced */
        return;
    }
    if (!job) {
        rt_log(RT_LOG_ERR, "mt: pair %s: %s; reopening the journal", p->id, err);
        journal_reopen(p);
        return;
    }
    p->cjob = job;
    if (rt_work_submit(&me->actor, seglog_job_run, job, MT_SIG_SYNCED, 0) != RT_OK) {
        p->cjob = NULL; /* the workers' queue is full: sync here */
        seglog_job_run(job);
        commit_done(p, job);
    }
}

/* delete the segments promotion dropped, on a worker, one job at a time */
static void reap(mt_t *me, mt_pair_t *p)
{
    char err[256];
    seglog_job_t *job = NULL;
    if (!p->j || p->rjob || !mtj_reap_pending(p->j))
        return;
    if (mtj_reap_begin(p->j, &job, err, sizeof err) == RT_ERR)
        rt_log(RT_LOG_WARN, "mt: pair %s: %s", p->id, err); /* the cron tries again */
    if (!job)
        return;
    p->rjob = job;
    if (rt_work_submit(&me->actor, seglog_job_run, job, MT_SIG_SYNCED, 0) != RT_OK) {
        p->rjob = NULL; /* the workers' queue is full: delete here */
        seglog_job_run(job);
        if (mtj_reap_end(p->j, job, err, sizeof err) != RT_OK)
            rt_log(RT_LOG_WARN, "mt: pair %s: %s", p->id, err);
    }
}

/* a commit or reap job is back */
static void on_synced(mt_t *me, const rt_msg_t *m)
{
    char err[256];
    seglog_job_t *job = rt_work_arg(m);
    if (!job)
        return;
    for (unsigned i = 0; i < me->npairs; i++) {
        mt_pair_t *p = me->pairs[i];
        if (p->cjob == job) {
            p->cjob = NULL;
            commit_done(p, job);
            settle_and_ack(me, p); /* before the next commit: it would hold the ack back */
            commit_pair(me, p);    /* what arrived during the sync */
            return;
        }
        if (p->rjob == job) {
            p->rjob = NULL;
            if (mtj_reap_end(p->j, job, err, sizeof err) != RT_OK)
                rt_log(RT_LOG_WARN, "mt: pair %s: %s", p->id, err);
            reap(me, p); /* dropped meanwhile */
            return;
        }
    }
    seglog_job_free(job); /* (every job is a pair's) */
}

static void commit_all(mt_t *me)
{
    me->commit_armed = false;
    for (unsigned i = 0; i < me->npairs; i++) {
        commit_pair(me, me->pairs[i]);
        settle_and_ack(me, me->pairs[i]);
    }
}

/* on RT_SIG_STOP: commit every journal here, on the loop (a job still on a
 * worker syncs the same file: harmless), and ack what that made durable */
static void commit_now(mt_t *me)
{
    char err[256];
    me->commit_armed = false;
    for (unsigned i = 0; i < me->npairs; i++) {
        mt_pair_t *p = me->pairs[i];
        uint64_t d = 0;
        if (!p->j)
            continue;
        p->dirty = false;
        if (mtj_commit(p->j, &d, err, sizeof err) != RT_OK) {
            rt_log(RT_LOG_ERR, "mt: pair %s: %s; reopening the journal", p->id, err);
            journal_reopen(p);
            continue;
        }
        p->durable = d;
        if (settle_sync(p) && state_save(p, err, sizeof err) != RT_OK)
            rt_log(RT_LOG_WARN, "mt: pair %s: %s", p->id, err);
        ack_owed(me, p);
    }
}

/* ---- messages ---------------------------------------------------------------------- */

static void reply_unknown(mt_t *me, const rt_msg_t *m, const char *pair, const char *why)
{
    ss_Envelope env = ss_Envelope_init_zero;
    env.which_body = ss_Envelope_write_ack_tag;
    snprintf(env.body.write_ack.pair, sizeof env.body.write_ack.pair, "%s", pair);
    env.body.write_ack.status = ss_AckStatus_ACK_UNKNOWN_PAIR;
    snprintf(env.body.write_ack.reason, sizeof env.body.write_ack.reason, "%s", why);
    hub_reply(me->hub, &me->actor, m, &env, NULL, 0);
}

static void on_pair_open(mt_t *me, const rt_msg_t *m, const ss_PairOpen *po)
{
    char err[512];
    mt_pair_t *p = pair_find(me, po->pair);
    if (po->reply)
        return; /* nobody answers the master target */
    if (!p) {
        if (!rt_name_ok(po->pair) || me->npairs == MT_PAIRS_MAX || po->disk_size == 0) {
            rt_log(RT_LOG_ERR, "mt: PairOpen for '%s' (%" PRIu64 " bytes) refused: %s",
                   po->pair, po->disk_size,
                   me->npairs == MT_PAIRS_MAX ? "too many pairs"
                   : po->disk_size ? "bad pair name" : "no disk size");
            return;
        }
        if (!(p = pair_alloc(me, po->pair)))
            return;
        state_load(p); /* a folder left by an unfinished creation may have one */
        if (journal_open(p, po->disk_size, true, err, sizeof err) != RT_OK) {
            rt_log(RT_LOG_ERR, "mt: pair %s: %s", po->pair, err);
            pair_close(p);
            return;
        }
        copy_name(p->disk, po->disk);
        copy_name(p->group, po->group);
        p->epoch = po->epoch;
        if (state_save(p, err, sizeof err) != RT_OK)
            rt_log(RT_LOG_WARN, "mt: pair %s: %s", p->id, err);
        me->pairs[me->npairs++] = p;
        rt_log(RT_LOG_INFO, "mt: pair %s: journal created for %" PRIu64 " bytes (disk %s)",
               p->id, p->disk_size, p->disk);
    } else if (!p->j && journal_open(p, 0, false, err, sizeof err) != RT_OK) {
        rt_log(RT_LOG_ERR, "mt: pair %s: journal unavailable: %s", p->id, err);
        return;
    }
    if (po->disk_size && po->disk_size != p->disk_size)
        rt_log(RT_LOG_ERR,
               "mt: pair %s: the sender says %" PRIu64 " bytes, the journal holds %" PRIu64
               " (a resized disk needs a new pair)",
               p->id, po->disk_size, p->disk_size);
    bool save = false;
    if (po->epoch > p->epoch) {
        p->epoch = po->epoch;
        save = true;
    }
    if (!p->disk[0] && po->disk[0]) {
        copy_name(p->disk, po->disk);
        copy_name(p->group, po->group);
        save = true;
    }
    if (save && state_save(p, err, sizeof err) != RT_OK)
        rt_log(RT_LOG_WARN, "mt: pair %s: %s", p->id, err);
    p->src = hub_route_of(m);

    ss_Envelope env = ss_Envelope_init_zero;
    env.which_body = ss_Envelope_pair_open_tag;
    env.corr = ((const ss_Envelope *)m->data)->corr;
    ss_PairOpen *a = &env.body.pair_open;
    snprintf(a->pair, sizeof a->pair, "%s", p->id);
    snprintf(a->disk, sizeof a->disk, "%s", p->disk);
    snprintf(a->group, sizeof a->group, "%s", p->group);
    a->disk_size = p->disk_size;
    a->last_seq = p->last;
    a->durable_seq = p->durable;
    a->mt_durable_seq = p->durable;
    a->consistent_seq = p->consistent;
    a->epoch = p->epoch;
    a->reply = true;
    hub_reply(me->hub, &me->actor, m, &env, NULL, 0);
}

/* ---- the batch pipeline ---------------------------------------------------------------- */

/* the check, on a worker (or inline): only the job's own bytes */
static void vjob_run(void *arg)
{
    vjob_t *v = arg;
    v->rc = codec_batch_open(&v->b, v->payload->data, v->len, v->disk_size, v->work, &v->run,
                             v->why, sizeof v->why);
}

/* the head batch, checked: place it against the journal and append it */
static void apply(mt_t *me, vjob_t *v)
{
    char err[256];
    mt_pair_t *p = v->p;
    if (!p->j && journal_open(p, 0, false, err, sizeof err) != RT_OK) {
        rt_log(RT_LOG_ERR, "mt: pair %s: journal unavailable: %s", p->id, err);
        ack_to(me, p, &p->src, ss_AckStatus_ACK_FULL, "journal unavailable");
        return;
    }
    if (v->rc != RT_OK) {
        p->bad++;
        rt_log(RT_LOG_WARN, "mt: pair %s: batch %" PRIu64 "..%" PRIu64 " refused: %s", p->id,
               v->b.first_seq, v->b.last_seq, v->why);
        ack_to(me, p, &p->src, ss_AckStatus_ACK_BAD_RECORD, v->why);
        return;
    }
    const codec_run_t *run = &v->run;
    switch (place(run, p->last)) {
    case MT_BATCH_BAD: /* (place() never says so) */
    case MT_BATCH_GAP:
        /* say where the journal is: the sender resends from there */
        ack_to(me, p, &p->src, ss_AckStatus_ACK_OK, NULL);
        return;
    case MT_BATCH_DUP:
        p->dups++;
        break;
    case MT_BATCH_APPLY: {
        uint64_t last = 0;
        if (mtj_append(p->j, run->recs, run->len, &last, err, sizeof err) != RT_OK) {
            rt_log(RT_LOG_ERR, "mt: pair %s: %s; reopening the journal", p->id, err);
            journal_reopen(p);
            ack_to(me, p, &p->src, ss_AckStatus_ACK_FULL, "journal write failed");
            return;
        }
        p->last = last;
        p->dirty = true;
        p->batches++;
        break;
    }
    }
    if ((v->b.flags & CODEC_BATCH_SYNC_DONE) && run->last_seq > p->consistent &&
        run->last_seq > p->sync_pending) {
        /* recorded before the commit; it counts once the journal holds it */
        p->sync_pending = run->last_seq;
        if (state_save(p, err, sizeof err) != RT_OK)
            rt_log(RT_LOG_ERR, "mt: pair %s: end of sync pass at %" PRIu64 " not recorded: %s",
                   p->id, run->last_seq, err);
    }
    if (v->epoch > p->epoch)
        p->epoch = v->epoch;
    p->ack_owed = true;
    arm_commit(me);
}

static void vjob_release(mt_t *me, vjob_t *v)
{
    if (v->ctx >= 0)
        me->work_busy[v->ctx] = false;
    rt_buf_unref(v->payload);
    memset(v, 0, sizeof *v);
    v->ctx = -1;
}

static void stop_done(mt_t *me)
{
    commit_now(me);
    rt_actor_cron(&me->actor, 0);
    rt_actor_stopped(&me->actor);
}

/* append what is checked at the head of the FIFO, in order */
static void apply_ready(mt_t *me)
{
    while (me->q_n > 0 && me->q[me->q_head].state == VJ_DONE) {
        vjob_t *v = &me->q[me->q_head];
        apply(me, v);
        vjob_release(me, v);
        me->q_head = (me->q_head + 1) % MT_QLEN;
        me->q_n--;
    }
}

/* start the check of each waiting batch that can have a scratch space, in
 * FIFO order; @return true if one was checked inline (apply_ready again) */
static bool start_checks(mt_t *me)
{
    bool inline_done = false;
    for (unsigned i = 0; i < me->q_n; i++) {
        vjob_t *v = &me->q[(me->q_head + i) % MT_QLEN];
        if (v->state != VJ_WAIT)
            continue;
        int ctx = -1;
        for (unsigned k = 0; k < MT_VJOBS && ctx < 0; k++)
            if (!me->work_busy[k])
                ctx = (int)k;
        if (ctx < 0)
            break; /* a completion calls us again */
        v->ctx = ctx;
        v->work = &me->work[ctx];
        me->work_busy[ctx] = true;
        size_t size = (v->b.flags & CODEC_BATCH_LZ4) ? v->b.raw_len : v->len;
        int rc = size < MT_VINLINE ? RT_ERR /* small: cheaper here than a thread hop */
                 : rt_work_submit(&me->actor, vjob_run, v, MT_SIG_CHECKED, 0);
        if (rc == RT_OK) {
            v->state = VJ_RUN;
        } else if (rc == RT_ERR) {
            vjob_run(v);
            v->state = VJ_DONE;
            inline_done = true;
        } else {
            v->ctx = -1; /* RT_AGAIN: RESUME calls us again */
            v->work = NULL;
            me->work_busy[ctx] = false;
            break;
        }
    }
    return inline_done;
}

/* move the FIFO on: append, start checks, and finish a stop when it is empty */
static void pipeline(mt_t *me)
{
    for (unsigned guard = 0; guard <= MT_QLEN; guard++) {
        apply_ready(me);
        if (!start_checks(me))
            break;
    }
    if (me->stopping && me->q_n == 0 && !me->actor.stopped)
        stop_done(me);
}

static void on_checked(mt_t *me, const rt_msg_t *m)
{
    vjob_t *v = rt_work_arg(m);
    if (v && v->state == VJ_RUN)
        v->state = VJ_DONE;
    pipeline(me);
}

static void on_write_batch(mt_t *me, const rt_msg_t *m, const ss_WriteBatch *wb,
                           uint32_t payload_len)
{
    char err[256];
    mt_pair_t *p = pair_find(me, wb->pair);
    if (!p) {
        reply_unknown(me, m, wb->pair, "no PairOpen for this pair");
        return;
    }
    p->src = hub_route_of(m);
    if (!p->j && journal_open(p, 0, false, err, sizeof err) != RT_OK) {
        rt_log(RT_LOG_ERR, "mt: pair %s: journal unavailable: %s", p->id, err);
        ack_to(me, p, &p->src, ss_AckStatus_ACK_FULL, "journal unavailable");
        return;
    }
    if (!m->buf || payload_len > m->buf->cap) {
        ack_to(me, p, &p->src, ss_AckStatus_ACK_BAD_RECORD, "payload missing");
        return;
    }
    if (me->q_n == MT_QLEN || me->stopping) {
        /* the sender holds a moment and resends from what is durable here */
        ack_to(me, p, &p->src, ss_AckStatus_ACK_FULL,
               me->stopping ? "master target stopping" : "master target busy");
        return;
    }
    vjob_t *v = &me->q[(me->q_head + me->q_n++) % MT_QLEN];
    memset(v, 0, sizeof *v);
    v->p = p;
    v->b = (codec_batch_t){wb->first_seq, wb->last_seq, wb->count, wb->flags, wb->raw_len};
    v->epoch = wb->epoch;
    v->disk_size = p->disk_size;
    rt_buf_ref(m->buf);
    v->payload = m->buf;
    v->len = payload_len;
    v->ctx = -1;
    v->state = VJ_WAIT;
    me->received++;
    pipeline(me);
}

static void on_link_down(mt_t *me, const rt_msg_t *m)
{
    for (unsigned i = 0; i < me->npairs; i++)
        if (me->pairs[i]->src.link == m->link)
            me->pairs[i]->src = (hub_route_t){NULL, NULL, 0};
}

/* free the scratch spaces once no batch came for a while (idle RSS) */
static void work_trim(mt_t *me)
{
    if (me->received != me->received_seen || me->q_n > 0) {
        me->received_seen = me->received;
        me->idle_crons = 0;
        return;
    }
    if (++me->idle_crons < MT_TRIM_IDLE)
        return;
    for (unsigned k = 0; k < MT_VJOBS; k++)
        if (!me->work_busy[k])
            codec_work_free(&me->work[k]);
}

static void cron(mt_t *me)
{
    char err[256];
    uint64_t now = rt_now_us();
    work_trim(me);
    for (unsigned i = 0; i < me->npairs; i++) {
        mt_pair_t *p = me->pairs[i];
        if (!p->j)
            continue;
        if (mtj_retain(p->j, now, MT_PROMOTE_CHUNK, NULL, err, sizeof err) != RT_OK)
            rt_log(RT_LOG_WARN, "mt: pair %s: promotion: %s", p->id, err);
        reap(me, p);
        ack_owed(me, p);
    }
}

static void mt_dispatch(rt_actor_t *actor, const rt_msg_t *m)
{
    mt_t *me = (mt_t *)actor;
    const ss_Envelope *env = (const ss_Envelope *)m->data;
    switch (m->tag) {
    case RT_SIG_STOP:
        me->stopping = true; /* what was received is appended first */
        pipeline(me);
        break;
    case RT_SIG_CRON:
        cron(me);
        break;
    case RT_SIG_LINK_DOWN:
        on_link_down(me, m);
        break;
    case RT_SIG_LINK_WRITABLE:
    case RT_SIG_RESUME:
        for (unsigned i = 0; i < me->npairs; i++)
            ack_owed(me, me->pairs[i]);
        pipeline(me);
        break;
    case MT_SIG_COMMIT:
        commit_all(me);
        break;
    case MT_SIG_CHECKED:
        on_checked(me, m);
        break;
    case MT_SIG_SYNCED:
        on_synced(me, m);
        break;
    case ss_Envelope_pair_open_tag:
        on_pair_open(me, m, &env->body.pair_open);
        break;
    case ss_Envelope_write_batch_tag:
        on_write_batch(me, m, &env->body.write_batch, env->payload_len);
        break;
    default:
        break; /* RT_SIG_LINK_UP, WriteAcks: nothing to do here */
    }
}

/* ---- status ---------------------------------------------------------------------- */

int mt_pair_info(const mt_t *me, const char *pair, mt_pair_info_t *out)
{
    const mt_pair_t *p = pair_find(me, pair);
    if (!p)
        return RT_ERR;
    memset(out, 0, sizeof *out);
    out->last_seq = p->last;
    out->durable_seq = p->durable;
    out->consistent_seq = p->consistent;
    if (p->j) {
        mtj_info_t info;
        mtj_info(p->j, &info);
        out->records = info.records;
        out->promoted_seq = info.promoted_seq;
    }
    out->batches = p->batches;
    out->dup_batches = p->dups;
    out->bad_batches = p->bad;
    return RT_OK;
}

static bool count_point(void *arg, const mtj_point_t *pt)
{
    (void)pt;
    (*(uint64_t *)arg)++;
    return true;
}

int mt_status(void *ctx, mgmt_status_t *st, rt_json_t *out, char *err, size_t errlen)
{
    mt_t *me = ctx;
    char t1[MTJ_TIME_MAX], t2[MTJ_TIME_MAX];
    (void)err;
    (void)errlen;
    rt_json_str(out, "dir", me->dir);
    rt_json_u64(out, "retention_s", me->retention_us / 1000000u);
    rt_json_u64(out, "checkpoint_s", me->checkpoint_us / 1000000u);
    rt_json_obj(out, "pairs");
    for (unsigned i = 0; i < me->npairs; i++) {
        const mt_pair_t *p = me->pairs[i];
        mgmt_pair_t *mp = mgmt_status_pair(st, p->id);
        if (mp) {
            if (p->disk[0])
                snprintf(mp->disk, sizeof mp->disk, "%s", p->disk);
            if (p->group[0])
                snprintf(mp->group, sizeof mp->group, "%s", p->group);
            mp->mt_durable_seq = p->durable;
        }
        rt_json_obj(out, p->id);
        rt_json_bool(out, "open", p->j != NULL);
        rt_json_u64(out, "disk_size", p->disk_size);
        rt_json_u64(out, "durable_seq", p->durable);
        rt_json_u64(out, "consistent_seq", p->consistent);
        rt_json_u64(out, "epoch", p->epoch);
        if (p->j) {
            mtj_info_t info;
            uint64_t points = 0;
            mtj_info(p->j, &info);
            mtj_each_point(p->j, me->checkpoint_us, count_point, &points);
            rt_json_u64(out, "journal_bytes", info.journal_bytes);
            rt_json_u64(out, "base_bytes", info.base_bytes);
            rt_json_u64(out, "records", info.records);
            rt_json_u64(out, "points", points);
            rt_json_u64(out, "first_seq", info.first_seq);
            rt_json_u64(out, "promoted_seq", info.promoted_seq);
            rt_json_str(out, "oldest_point_time",
                        info.first_time_us ? mtj_format_time(info.first_time_us, t1) : NULL);
            rt_json_str(out, "latest_point_time",
                        info.last_time_us ? mtj_format_time(info.last_time_us, t2) : NULL);
        }
        rt_json_u64(out, "batches", p->batches);
        rt_json_u64(out, "dup_batches", p->dups);
        rt_json_u64(out, "bad_batches", p->bad);
        rt_json_obj_end(out);
    }
    rt_json_obj_end(out);
    return MGMT_OK;
}

int mt_register_status(mt_t *me, mgmt_t *mgmt)
{
    return mgmt_register_status(mgmt, "mt", mt_status, me);
}

/* ---- lifecycle --------------------------------------------------------------------- */

static void load_all(mt_t *me)
{
    DIR *d = opendir(me->dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        char path[MT_PATH_MAX + 2 * RT_NAME_MAX];
        if (!rt_name_ok(e->d_name))
            continue;
        if ((size_t)snprintf(path, sizeof path, "%s/%s/state", me->dir, e->d_name) >=
                sizeof path ||
            access(path, F_OK) != 0)
            continue; /* not a journal, or its creation never finished */
        if (me->npairs == MT_PAIRS_MAX) {
            rt_log(RT_LOG_ERR, "mt: %s: more than %u pairs, %s left out", me->dir,
                   MT_PAIRS_MAX, e->d_name);
            continue;
        }
        pair_load(me, e->d_name);
    }
    closedir(d);
}

mt_t *mt_new(rt_node_t *node, const rt_conf_t *conf, hub_t *hub, char *err, size_t errlen)
{
    mt_t *me = calloc(1, sizeof *me);
    if (!me) {
        rt_errf(err, errlen, "mt: out of memory");
        return NULL;
    }
    me->node = node;
    me->hub = hub;
    me->conf = conf;
    if (!rt_conf_role_dir(conf, "mt", me->dir, sizeof me->dir)) {
        rt_errf(err, errlen, "mt: [mt] dir or [node] data_dir: path too long");
        goto fail;
    }
    me->retention_us = rt_conf_u64(conf, "mt", "retention") * 1000000u;
    me->checkpoint_us = rt_conf_u64(conf, "mt", "checkpoint") * 1000000u;
    if (mkdir(me->dir, 0750) != 0 && errno != EEXIST) {
        rt_errf(err, errlen, "mt: %s: create: %s", me->dir, strerror(errno));
        goto fail;
    }
    load_all(me);
    if (rt_actor_init(&me->actor, node, "mt", mt_dispatch) != RT_OK ||
        rt_timer_init(&me->commit_t, &me->actor, MT_SIG_COMMIT, 0) != RT_OK) {
        rt_errf(err, errlen, "mt: message pool full");
        goto fail;
    }
    if (hub_register_role(hub, RT_ROLE_MT, &me->actor) != RT_OK) {
        rt_errf(err, errlen, "mt: the hub has an mt role already");
        goto fail;
    }
    rt_actor_cron(&me->actor, 1.0);
    rt_log(RT_LOG_INFO, "mt: %u pair(s) in %s, retention %" PRIu64 " s", me->npairs, me->dir,
           me->retention_us / 1000000u);
    return me;
fail:
    mt_free(me);
    return NULL;
}

void mt_free(mt_t *me)
{
    if (!me)
        return;
    if (me->actor.node) {
        rt_timer_fini(&me->commit_t);
        rt_actor_fini(&me->actor); /* no check runs after this */
    }
    for (; me->q_n > 0; me->q_n--, me->q_head = (me->q_head + 1) % MT_QLEN)
        vjob_release(me, &me->q[me->q_head]); /* not appended, not acked: resent */
    for (unsigned i = 0; i < me->npairs; i++)
        pair_close(me->pairs[i]);
    for (unsigned k = 0; k < MT_VJOBS; k++)
        codec_work_free(&me->work[k]);
    free(me);
}

rt_actor_t *mt_actor(mt_t *me)
{
    return &me->actor;
}
