/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * agent.c: the agent role (see agent.h), one actor for every protected disk
 * of the node.
 *
 * Owns, per pair: the NBD server and export of the disk, the write log (a
 * seglog), the dirty bitmap with its activity map, and the pair chart
 * (fsm/pair.rl). Talks to: its NBD clients (through the capture hooks, which
 * run on the loop between requests), the process server (PairOpen,
 * WriteBatch, WriteAck through the hub: local or over a link), and the
 * management endpoint (status, pause, resume).
 *
 * Capture: on_begin marks the write's 4 MiB extent active in the bitmap file
 * before the write touches the disk; on_write appends a record with the next
 * sequence number (one per started MiB of a long write) to the log, or, when
 * the log is full, marks the blocks in the bitmap; FLUSH and FUA commit the
 * log and the bitmap on a worker (commit_job_t, AGENT_SIG_COMMITTED; one
 * job at a time, the FLUSHes that arrive during one share the next) while
 * their NBD requests stay parked (NBD_PARK, nbd_export_complete()), and the
 * disk's own fdatasync for them runs on a worker too (AGENT_SIG_FSYNCED):
 * other requests keep being served meanwhile. The cron clears the activity marks once a second (every write so far
 * is captured by then), so a crash resyncs at most the extents written in
 * the last second, and never misses one. Log segments that the process
 * server's acks trimmed are deleted by worker jobs (seglog_reap_begin,
 * AGENT_SIG_REAPED), not on the loop.
 *
 * Sync: a pass (the chart's initial_sync or resyncing) walks the dirty
 * bits: holes become ZERO records, data becomes SYNCREF records (header
 * only), and the bits are cleared once the records are committed. The
 * shipper turns a SYNCREF into a DATA record with the disk's current
 * contents (a ZERO record if they read as zeros). The pass ends with the
 * seq of its last record (sync_end), or later, at the last write captured
 * when one of its references was read (read_upto: the data read holds
 * every write up to there, so the replica holds part of them before): the
 * batch ending there carries BATCH_SYNC_DONE, records of the pass before it
 * carry INTERIOR, and the pass is done (SYNC_DONE) once the master target
 * has it durably.
 *
 * Shipping: a session per pair opens with PairOpen (at start when the ps is
 * local, on every RT_SIG_LINK_UP from a ps otherwise) and resumes from the
 * durable_seq the answer gives; batches of about 1 MiB go out within the
 * credit the process server gives (WriteAck.credit, the room of its cache
 * for the pair; docs/FORMAT.md 7), or a fixed window with an older one: a
 * full cache makes the agent wait, not send what would be refused, and a
 * batch refused all the same is sent again from the first unacknowledged
 * seq once credit returns; every WriteAck trims the log. A receiver that
 * holds less than the log still has (it lost data) or more than the agent
 * ever captured (the agent's log lost its tail) gets a full sync with the
 * sequence numbers continuing after its durable_seq.
 */
#include "agent.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsm.pb.h"
#include "link.pb.h"
#include "nodes/agent/bitmap.h"
#include "nodes/agent/nbd.h"
#include "nodes/agent/pair_fsm.h"
#include "nodes/common/codec.h"
#include "nodes/common/seglog.h"
#include "nodes/common/wrec.h"
#include "repl.pb.h"

#define AGENT_SIG_KICK   (RT_SIG_USER + 1) /* kick timer: there is work (capture, acks) */
#define AGENT_SIG_REAPED (RT_SIG_USER + 2) /* a worker deleted trimmed log segments
                                              (rt_work_arg: its seglog_job_t) */
#define AGENT_SIG_COMMITTED (RT_SIG_USER + 3) /* a worker synced a pair's log and bitmap
                                                 (rt_work_arg: its commit_job_t) */
#define AGENT_SIG_FSYNCED (RT_SIG_USER + 4) /* a worker synced a pair's disk for a FLUSH
                                               or FUA (rt_work_arg: its nbd_sync_t) */
#define AGENT_BATCH_CAP  (2u << 20)  /* batch buffer: AGENT_BATCH + one record always fits */
#define AGENT_SYNC_Q     64u         /* sync references queued beyond the ps's acks */
#define AGENT_LAG_N      1024u       /* capture-time samples for rpo_lag_ms and backlog */
#define AGENT_LAG_GAP_US 10000u      /* at most one sample per 10 ms */
#define AGENT_ZERO_MAX   0xfffff000u /* longest ZERO record of a hole (4 GiB - 4 KiB) */
#define AGENT_RUN_MAX    (AGENT_ZERO_MAX / BITMAP_BLOCK) /* blocks of one hole record */
#define AGENT_WALK_STEPS 64u         /* walk steps per turn */
#define AGENT_PATH       1024u

/* a process server's least credit always takes the largest record */
_Static_assert(AGENT_REC_MAX + WREC_HDR_SIZE <= CODEC_CREDIT_MIN, "record above the credit floor");

/* bitmap_meta_t.flags */
enum {
    META_SEEDED = 1u << 0, /* an initial sync completed: the replica holds a whole image */
};

enum { SESS_DOWN = 0, SESS_OPENING, SESS_OPEN, SESS_HELD };
static const char *const sess_names[] = {"down", "opening", "up", "held"};

typedef struct inflight {
    uint64_t last_seq; /* last record of a batch sent */
    uint32_t bytes;    /* its record bytes */
} inflight_t;

typedef struct syncq {
    uint64_t seq; /* a SYNCREF not yet acked by the ps */
    uint32_t len;
} syncq_t;

typedef struct lag_sample {
    uint64_t seq;     /* last seq captured at... */
    uint64_t time_us; /* ...this wall-clock time */
    uint64_t cum;     /* data bytes captured up to seq */
} lag_sample_t;

typedef struct agent_pair agent_pair_t;

/* A group commit off the loop for FLUSH and FUA: the log's and the bitmap's
 * fdatasync (either may be NULL: nothing to sync there), and the NBD token
 * up to which the parked replies wait for it. */
typedef struct commit_job {
    seglog_job_t *lj;
    bitmap_job_t *bj;
    uint64_t token;
} commit_job_t;

struct agent_pair {
    agent_t *a;
    char id[RT_NAME_MAX];          /* pair id */
    char disk[RT_NAME_MAX];        /* [disk NAME] */
    char export_name[RT_NAME_MAX];
    char group[RT_NAME_MAX];
    char listen[64];
    char path[AGENT_PATH];         /* backing disk */
    char dir[AGENT_PATH];          /* DATA/agent/PAIR */
    nbd_server_t *srv;
    nbd_export_t *exp;
    int fd;                        /* backing descriptor (the export's) */
    uint64_t size;
    seglog_t *log;
    seglog_job_t *rjob;            /* deletion of trimmed log segments in flight, or NULL */
    commit_job_t *cjob;            /* FLUSH/FUA commit in flight, or NULL */
    bool commit_want;              /* FLUSH/FUA parked since cjob began: the next job's */
    nbd_sync_t *fjob;              /* the disk's fdatasync in flight on a worker, or NULL */
    seglog_iter_t *it;             /* shipping position (open sessions only) */
    bitmap_t *bm;
    pair_fsm_t fsm;
    char detail[192];              /* traced with the next transition */

    /* sequence numbers */
    uint64_t captured;             /* last seq given out (the log's last) */
    uint64_t ps_acked;             /* durable at the ps */
    uint64_t mt_acked;             /* durable at the mt (as the ps says) */
    uint64_t consistent;           /* consistent_seq (as the ps says) */
    uint64_t send_next;            /* next seq to ship */

    /* session with the ps */
    int sess;
    uint64_t sess_since_us;        /* mono time of the last PairOpen */
    uint64_t progress_us;          /* mono time of the last ack progress */
    uint64_t retry_us;             /* mono time before which no PairOpen is tried */
    unsigned bad_acks;             /* ACK_BAD_RECORD in a row */
    inflight_t ring[AGENT_INFLIGHT];
    unsigned r_head, r_count;
    uint64_t inflight_bytes;
    rt_buf_t *pend;                /* a built batch the hub could not take yet */
    ss_Envelope pend_env;
    uint32_t pend_len;
    uint64_t pend_last;
    uint64_t tail_seq, tail_cum;   /* the last batch reached the log's end here, at this cum */
    bool credit_on;                /* the ps gives credit (WriteAck.credit): no fixed window */
    uint64_t credit;               /* record bytes the ps takes beyond ps_acked, as last said */
    bool held;                     /* a record read from the log and not sent: no credit */
    wrec_hdr_t held_h;             /* ... its header */
    const uint8_t *held_stored;    /* ... its data, in p->it's buffer (untouched until the
                                      iterator's next call) */

    /* capture */
    bool to_bitmap;                /* the log overflowed: writes go to the bitmap */
    bool paused;
    bool want_full;                /* the next sync action starts a full sync from scratch */

    /* sync pass */
    bool walking;                  /* the walk has bits to visit */
    bool walk_done;                /* the walk found no more bits; sync_end is set */
    uint64_t walk_pos;             /* next block to look at */
    uint64_t pass_last;            /* seq of the last record the walk appended in this pass */
    uint64_t read_upto;            /* captured when a sync reference of the pass was last read:
                                      its data holds every write up to there */
    uint64_t pass_total;           /* dirty bytes when the pass started (progress) */
    syncq_t sq[AGENT_SYNC_Q];
    unsigned sq_head, sq_count;
    uint64_t sq_bytes;

    /* lag and backlog */
    lag_sample_t lag[AGENT_LAG_N];
    unsigned lag_head, lag_count;
    uint64_t cum;                  /* data bytes captured (log) */
    uint64_t cum_at_mt;            /* cum at the last sample the mt has */
    uint64_t dirty_since_us;       /* wall time the bitmap got its first bit, 0: clean */

    /* counters */
    uint64_t writes, sent_batches, sent_bytes, sync_data, sync_zero, sync_holes, reopens;
    uint64_t rewinds;              /* ACK_FULL under credit: sent again from ps_acked + 1 */
};

struct agent {
    rt_actor_t actor;              /* first: "agent" */
    rt_node_t *node;
    const rt_conf_t *conf;
    hub_t *hub;
    uint64_t log_max;
    rt_timer_t kick;               /* AGENT_SIG_KICK, at most one pending */
    bool kick_ok;
    bool stopping;
    agent_pair_t *pairs[AGENT_PAIRS_MAX];
    unsigned npairs;
    char err[2048];                /* scratch for error strings */
};

/* ---- helpers ---------------------------------------------------------------------- */

static uint64_t now_mono(void)
{
    return rt_mono_us();
}

static void kick(agent_t *a)
{
    if (a->kick_ok && !rt_timer_active(&a->kick))
        rt_timer_start(&a->kick, 0, 0);
}

static agent_pair_t *pair_find(const agent_t *a, const char *id)
{
    for (unsigned i = 0; i < a->npairs; i++)
        if (strcmp(a->pairs[i]->id, id) == 0)
            return a->pairs[i];
    return NULL;
}

static bool in_state(const agent_pair_t *p, const char *name)
{
    return pair_fsm_in(&p->fsm, name);
}

static bool syncing(const agent_pair_t *p)
{
    return in_state(p, "initial_sync") || in_state(p, "resyncing");
}

static const bitmap_meta_t *meta(const agent_pair_t *p)
{
    return bitmap_meta(p->bm);
}

static void meta_save(agent_pair_t *p, const bitmap_meta_t *m)
{
    if (bitmap_set_meta(p->bm, m, p->a->err, sizeof p->a->err) != RT_OK)
        rt_log(RT_LOG_ERR, "agent: pair %s: %s", p->id, p->a->err);
}

static bool all_zero(const uint8_t *d, size_t n)
{
    static const uint8_t zeros[4096];
    while (n >= sizeof zeros) {
        if (memcmp(d, zeros, sizeof zeros) != 0)
            return false;
        d += sizeof zeros;
        n -= sizeof zeros;
    }
    return memcmp(d, zeros, n) == 0;
}

/* the host part of "IP:PORT" or "[IPv6]:PORT" */
static int host_len(const char *addr)
{
    const char *c = strrchr(addr, ':');
    return c ? (int)(c - addr) : (int)strlen(addr);
}

/* Feed @ev with @detail, then what the actions return, in order. */
static void fire(agent_pair_t *p, int ev, const char *detail)
{
    snprintf(p->detail, sizeof p->detail, "%s", detail ? detail : "");
    p->fsm.chart.detail = p->detail;
    for (int i = 0; i < 8 && ev > 0; i++)
        ev = pair_fsm_exec(&p->fsm, ev);
    p->fsm.chart.detail = NULL;
}

/* ---- session with the process server ------------------------------------------------ */

static void sess_reset(agent_pair_t *p, int to)
{
    rt_buf_unref(p->pend);
    p->pend = NULL;
    p->r_head = p->r_count = 0;
    p->inflight_bytes = 0;
    seglog_iter_free(p->it);
    p->it = NULL;
    p->held = false;
    p->credit_on = false; /* the next PairOpen answer says */
    p->credit = 0;
    p->sess = to;
}

static int send_ps(agent_pair_t *p, ss_Envelope *env, rt_buf_t *buf, uint32_t len)
{
    return hub_send_role(p->a->hub, &p->a->actor, RT_ROLE_PS, env, buf, len);
}

/* Say what we have; the answer says where to resume. */
static void sess_open(agent_pair_t *p)
{
    ss_Envelope env = ss_Envelope_init_zero;
    env.which_body = ss_Envelope_pair_open_tag;
    ss_PairOpen *po = &env.body.pair_open;
    snprintf(po->pair, sizeof po->pair, "%s", p->id);
    snprintf(po->disk, sizeof po->disk, "%s", p->export_name);
    snprintf(po->group, sizeof po->group, "%s", p->group);
    po->disk_size = p->size;
    po->last_seq = p->captured;
    po->epoch = meta(p)->epoch;
    int rc = send_ps(p, &env, NULL, 0);
    if (rc == RT_OK) {
        p->sess = SESS_OPENING;
        p->sess_since_us = now_mono();
        p->reopens++;
    } else {
        /* RT_ERR: no route (RT_SIG_LINK_UP brings one); RT_AGAIN: a full queue or pool */
        p->sess = SESS_DOWN;
        p->retry_us = now_mono() + (rc == RT_AGAIN ? 100000u : 1000000u);
    }
}

/* ps_acked moved to @d: batches and sync references done, log trimmed */
/* delete the log's trimmed segments on a worker, one job at a time */
static void reap(agent_pair_t *p)
{
    seglog_job_t *j = NULL;
    if (p->rjob || !seglog_reap_pending(p->log))
        return;
    if (seglog_reap_begin(p->log, &j, p->a->err, sizeof p->a->err) == RT_ERR)
        rt_log(RT_LOG_WARN, "agent: pair %s: %s", p->id, p->a->err); /* the next trim retries */
    if (!j)
        return;
    p->rjob = j;
    if (rt_work_submit(&p->a->actor, seglog_job_run, j, AGENT_SIG_REAPED, 0) != RT_OK) {
        p->rjob = NULL; /* the workers' queue is full: delete here */
        seglog_job_run(j);
        if (seglog_reap_end(p->log, j, p->a->err, sizeof p->a->err) != RT_OK)
            rt_log(RT_LOG_WARN, "agent: pair %s: %s", p->id, p->a->err);
    }
}

static void on_reaped(agent_t *a, const rt_msg_t *m)
{
    seglog_job_t *j = rt_work_arg(m);
    if (!j)
        return;
    for (unsigned i = 0; i < a->npairs; i++) {
        agent_pair_t *p = a->pairs[i];
        if (p->rjob == j) {
            p->rjob = NULL;
            if (seglog_reap_end(p->log, j, a->err, sizeof a->err) != RT_OK)
                rt_log(RT_LOG_WARN, "agent: pair %s: %s", p->id, a->err);
            reap(p); /* trimmed meanwhile */
            return;
        }
    }
    seglog_job_free(j); /* (every job is a pair's) */
}

static void acked(agent_pair_t *p, uint64_t d)
{
    if (d > p->captured)
        d = p->captured;
    if (d <= p->ps_acked)
        return;
    p->ps_acked = d;
    p->progress_us = now_mono();
    p->bad_acks = 0;
    while (p->r_count && p->ring[p->r_head].last_seq <= d) {
        p->inflight_bytes -= p->ring[p->r_head].bytes;
        p->r_head = (p->r_head + 1) % AGENT_INFLIGHT;
        p->r_count--;
    }
    while (p->sq_count && p->sq[p->sq_head].seq <= d) {
        p->sq_bytes -= p->sq[p->sq_head].len;
        p->sq_head = (p->sq_head + 1) % AGENT_SYNC_Q;
        p->sq_count--;
    }
    if (seglog_trim(p->log, d + 1, p->a->err, sizeof p->a->err) != RT_OK)
        rt_log(RT_LOG_ERR, "agent: pair %s: %s", p->id, p->a->err);
    reap(p);
}

static void mt_acked(agent_pair_t *p, uint64_t m)
{
    if (m <= p->mt_acked)
        return;
    p->mt_acked = m;
    while (p->lag_count && p->lag[p->lag_head].seq <= m) {
        p->cum_at_mt = p->lag[p->lag_head].cum;
        p->lag_head = (p->lag_head + 1) % AGENT_LAG_N;
        p->lag_count--;
    }
}

/* What the ps said of its room (WriteAck.credit, or the PairOpen answer's)
 * in an answer saying @durable durable: absent, an older ps, whose refusals
 * the fixed window and the hold of ACK_FULL deal with. A credit counts from
 * the ack's durable seq: one older than what we know is not taken. */
static void credit_take(agent_pair_t *p, bool has, uint64_t credit, uint64_t durable)
{
    if (!has) {
        p->credit_on = false;
        return;
    }
    if (durable < p->ps_acked)
        return;
    p->credit_on = true;
    p->credit = credit;
}

/* ship again from ps_acked + 1: nothing in flight, a new log position.
 * @return RT_ERR (logged, session down) when the log cannot be read there */
static int ship_from_acked(agent_pair_t *p)
{
    agent_t *a = p->a;
    rt_buf_unref(p->pend);
    p->pend = NULL;
    p->r_head = p->r_count = 0;
    p->inflight_bytes = 0;
    seglog_iter_free(p->it);
    p->held = false;
    p->send_next = p->ps_acked + 1;
    p->it = seglog_iter_new(p->log, p->send_next, true, a->err, sizeof a->err);
    if (!p->it) {
        rt_log(RT_LOG_ERR, "agent: pair %s: %s", p->id, a->err);
        sess_reset(p, SESS_DOWN);
        p->retry_us = now_mono() + 1000000u;
        return RT_ERR;
    }
    return RT_OK;
}

/* The receiver holds @d, which the log cannot continue from: start the log
 * again after @d and sync the whole disk. */
static void receiver_lost(agent_pair_t *p, uint64_t d)
{
    agent_t *a = p->a;
    char detail[160];
    snprintf(detail, sizeof detail, "receiver holds seq %" PRIu64 ", log holds %" PRIu64
             "..%" PRIu64 ": full sync", d, seglog_first_seq(p->log), p->captured);
    rt_log(RT_LOG_WARN, "agent: pair %s: %s", p->id, detail);
    if (seglog_reset(p->log, d + 1, a->err, sizeof a->err) != RT_OK) {
        rt_log(RT_LOG_ERR, "agent: pair %s: %s", p->id, a->err);
        return;
    }
    p->captured = p->ps_acked = d;
    p->sq_head = p->sq_count = 0;
    p->sq_bytes = 0;
    p->lag_head = p->lag_count = 0;
    p->cum_at_mt = p->cum;
    p->want_full = true;
    fire(p, ss_PairEvent_PAIR_INITIAL, detail);
}

/* ---- capture (NBD hooks, on the loop between requests) -------------------------------- */

static void lag_sample(agent_pair_t *p)
{
    uint64_t t = rt_now_us();
    if (p->lag_count) {
        unsigned last = (p->lag_head + p->lag_count - 1) % AGENT_LAG_N;
        if (t - p->lag[last].time_us < AGENT_LAG_GAP_US || p->lag_count == AGENT_LAG_N) {
            p->lag[last].seq = p->captured; /* the newest sample moves forward */
            p->lag[last].cum = p->cum;
            return;
        }
    }
    unsigned i = (p->lag_head + p->lag_count) % AGENT_LAG_N;
    p->lag[i] = (lag_sample_t){p->captured, t, p->cum};
    p->lag_count++;
}

/* the blocks of [off, off+len) may differ from the replica */
static int mark_dirty(agent_pair_t *p, uint64_t off, uint64_t len)
{
    if (bitmap_set(p->bm, off, len, p->a->err, sizeof p->a->err) != RT_OK) {
        rt_log(RT_LOG_ERR, "agent: pair %s: %s", p->id, p->a->err);
        return RT_ERR;
    }
    if (!p->dirty_since_us)
        p->dirty_since_us = rt_now_us();
    return RT_OK;
}

/* capture goes to the bitmap from now on; the sync pass starts after what was logged */
static void enter_bitmap(agent_pair_t *p)
{
    p->to_bitmap = true;
    p->walking = p->walk_done = false;
    if (!meta(p)->sync_from) {
        bitmap_meta_t m = *meta(p);
        m.sync_from = p->captured + 1;
        m.sync_end = 0;
        meta_save(p, &m);
    }
}

static int append(agent_pair_t *p, wrec_hdr_t *h, const void *data)
{
    const char *why = NULL;
    agent_t *a = p->a;
    h->seq = p->captured + 1;
    h->time_us = rt_now_us();
    if (wrec_seal(h, data, &why) != RT_OK) {
        rt_log(RT_LOG_ERR, "agent: pair %s: record %" PRIu64 ": %s", p->id, h->seq, why);
        return RT_ERR;
    }
    if (seglog_append_rec(p->log, h, data, NULL, a->err, sizeof a->err) != RT_OK) {
        rt_log(RT_LOG_ERR, "agent: pair %s: %s", p->id, a->err);
        p->captured = seglog_last_seq(p->log);
        return RT_ERR;
    }
    p->captured = h->seq;
    return RT_OK;
}

/* the write as records in the log: one per started AGENT_REC_MAX of data,
 * all but the last INTERIOR (the disk was never in the state between them) */
static int capture_log(agent_pair_t *p, uint64_t off, uint32_t len, const uint8_t *data,
                       uint32_t flags)
{
    if (!data) {
        wrec_hdr_t h = {.flags = (flags & NBD_HOOK_TRIM) ? WREC_F_TRIM : WREC_F_ZERO,
                        .offset = off, .len = len};
        if (append(p, &h, NULL) != RT_OK)
            return RT_ERR;
        lag_sample(p);
        return RT_OK;
    }
    for (uint32_t done = 0; done < len;) {
        uint32_t n = len - done > AGENT_REC_MAX ? AGENT_REC_MAX : len - done;
        wrec_hdr_t h = {.flags = WREC_F_DATA, .offset = off + done, .len = n};
        if (done + n < len)
            h.flags |= WREC_F_INTERIOR;
        if (append(p, &h, data + done) != RT_OK)
            return RT_ERR;
        done += n;
        p->cum += n;
    }
    lag_sample(p);
    return RT_OK;
}

static uint64_t log_need(uint32_t len, const void *data)
{
    if (!data)
        return WREC_HDR_SIZE;
    return (uint64_t)len + WREC_HDR_SIZE * (((uint64_t)len + AGENT_REC_MAX - 1) / AGENT_REC_MAX);
}

static int commit(agent_pair_t *p)
{
    agent_t *a = p->a;
    if (seglog_commit(p->log, NULL, a->err, sizeof a->err) != RT_OK ||
        bitmap_sync(p->bm, a->err, sizeof a->err) != RT_OK) {
        rt_log(RT_LOG_ERR, "agent: pair %s: %s", p->id, a->err);
        return RT_ERR;
    }
    return RT_OK;
}

static void commit_job_run(void *arg)
{
    commit_job_t *j = arg;
    if (j->bj)
        bitmap_job_run(j->bj);
    if (j->lj)
        seglog_job_run(j->lj);
}

static void commit_job_free(commit_job_t *j)
{
    if (!j)
        return;
    seglog_job_free(j->lj);
    bitmap_job_free(j->bj);
    free(j);
}

/* the end of a commit job, on the loop: the replies it covers go out */
static void commit_done(agent_pair_t *p, commit_job_t *j)
{
    agent_t *a = p->a;
    int rc = RT_OK;
    if (seglog_commit_end(p->log, j->lj, NULL, a->err, sizeof a->err) != RT_OK) {
        rt_log(RT_LOG_ERR, "agent: pair %s: %s", p->id, a->err);
        rc = RT_ERR;
    }
    j->lj = NULL;
    if (bitmap_sync_end(p->bm, j->bj, a->err, sizeof a->err) != RT_OK) {
        rt_log(RT_LOG_ERR, "agent: pair %s: %s", p->id, a->err);
        rc = RT_ERR;
    }
    j->bj = NULL;
    uint64_t t = j->token;
    free(j);
    nbd_export_complete(p->exp, t, rc);
}

/* Make the log and the bitmap durable for a FLUSH or FUA off the loop: a
 * job covering every record captured so far and every NBD token given out
 * so far, one at a time (a FLUSH arriving during one waits for the next,
 * which covers every one that waited). @return RT_OK (durable already, or
 * synced here), NBD_PARK (nbd_export_complete() follows; perhaps already
 * did), RT_ERR. */
static int commit_async(agent_pair_t *p)
{
    agent_t *a = p->a;
    commit_job_t *j;
    if (p->cjob) {
        p->commit_want = true;
        return NBD_PARK;
    }
    p->commit_want = false;
    if (!(j = calloc(1, sizeof *j)))
        return commit(p);
    j->token = nbd_export_token(p->exp);
    int rc = bitmap_sync_begin(p->bm, &j->bj, a->err, sizeof a->err);
    if (rc == RT_OK) {
        rc = seglog_commit_begin(p->log, &j->lj, a->err, sizeof a->err);
        if (rc != RT_OK && j->bj) { /* (a begun bitmap job must end) */
            bitmap_job_run(j->bj);
            (void)bitmap_sync_end(p->bm, j->bj, NULL, 0);
            j->bj = NULL;
        }
    }
    if (rc != RT_OK) { /* RT_AGAIN (not ours: cannot be) or RT_ERR: on the loop */
        if (rc == RT_ERR)
            rt_log(RT_LOG_WARN, "agent: pair %s: %s (committing on the loop)", p->id, a->err);
        free(j);
        return commit(p);
    }
    if (!j->lj && !j->bj) {
        free(j);
        return RT_OK;
    }
    p->cjob = j;
    if (rt_work_submit(&a->actor, commit_job_run, j, AGENT_SIG_COMMITTED, 0) != RT_OK) {
        p->cjob = NULL; /* the workers' queue is full: sync here */
        commit_job_run(j);
        commit_done(p, j);
    }
    return NBD_PARK;
}

/* the parked FLUSH/FUA replies that waited for the job after the one that ended */
static void commit_next(agent_pair_t *p)
{
    uint64_t t = nbd_export_token(p->exp);
    int rc = commit_async(p);
    if (rc != NBD_PARK)
        nbd_export_complete(p->exp, t, rc);
}

static void on_committed(agent_t *a, const rt_msg_t *m)
{
    commit_job_t *j = rt_work_arg(m);
    if (!j)
        return;
    for (unsigned i = 0; i < a->npairs; i++) {
        agent_pair_t *p = a->pairs[i];
        if (p->cjob == j) {
            p->cjob = NULL;
            commit_done(p, j);
            if (p->commit_want)
                commit_next(p);
            return;
        }
    }
    commit_job_free(j); /* (every job is a pair's) */
}

/* nbd_server_conf.sync_submit: the disk's fdatasync on a worker */
static int disk_sync_submit(void *arg, nbd_sync_t *job)
{
    agent_pair_t *p = arg;
    if (p->fjob || rt_work_submit(&p->a->actor, nbd_sync_run, job, AGENT_SIG_FSYNCED, 0) != RT_OK)
        return RT_ERR; /* the server syncs on the loop */
    p->fjob = job;
    return RT_OK;
}

static void on_fsynced(agent_t *a, const rt_msg_t *m)
{
    nbd_sync_t *j = rt_work_arg(m);
    if (!j)
        return;
    for (unsigned i = 0; i < a->npairs; i++) {
        agent_pair_t *p = a->pairs[i];
        if (p->fjob == j) {
            p->fjob = NULL;
            nbd_sync_end(p->srv, j);
            return;
        }
    }
    nbd_sync_free(j);
}

static int hook_begin(void *ctx, uint64_t off, uint32_t len)
{
    agent_pair_t *p = ctx;
    if (bitmap_activate(p->bm, off, len, p->a->err, sizeof p->a->err) != RT_OK) {
        rt_log(RT_LOG_ERR, "agent: pair %s: %s (write refused)", p->id, p->a->err);
        return RT_ERR;
    }
    return RT_OK;
}

static int hook_write(void *ctx, uint64_t off, uint32_t len, const void *data, uint32_t flags)
{
    agent_pair_t *p = ctx;
    agent_t *a = p->a;
    p->writes++;
    if (flags & NBD_HOOK_FAILED) {
        /* the client gets an error; whatever reached the disk is resynced */
        (void)mark_dirty(p, off, len);
        kick(a);
        return RT_OK;
    }
    bool logged = false;
    if (!p->to_bitmap) {
        if (seglog_bytes(p->log) + log_need(len, data) <= a->log_max) {
            logged = capture_log(p, off, len, data, flags) == RT_OK;
        } else {
            char detail[160];
            snprintf(detail, sizeof detail, "log %" PRIu64 " bytes + %" PRIu64
                     " > log_max %" PRIu64, seglog_bytes(p->log), log_need(len, data),
                     a->log_max);
            if (p->paused || in_state(p, "created")) {
                enter_bitmap(p); /* unpausing goes to bitmap_mode */
            } else {
                rt_log(RT_LOG_WARN, "agent: pair %s: %s: bitmap mode", p->id, detail);
                fire(p, ss_PairEvent_PAIR_LOG_FULL, detail);
            }
        }
    }
    if (!logged && mark_dirty(p, off, len) != RT_OK)
        return RT_ERR;
    kick(a);
    if (flags & NBD_HOOK_FUA)
        return commit_async(p);
    return RT_OK;
}

static int hook_flush(void *ctx)
{
    return commit_async(ctx);
}

/* ---- chart actions ------------------------------------------------------------------ */

/* A pass over the dirty bits starts (or goes on after a restart). */
static void pass_start(agent_pair_t *p, bool full)
{
    bitmap_meta_t m = *meta(p);
    p->to_bitmap = false;
    if (full) {
        (void)mark_dirty(p, 0, p->size);
        m.flags &= ~(uint64_t)META_SEEDED;
        m.sync_from = 0;
    }
    if (!m.sync_from) {
        m.sync_from = p->captured + 1;
        p->read_upto = 0;
    } else if (p->captured > p->read_upto) {
        /* a pass resumed (after a restart): what it read before may hold
         * any write captured so far */
        p->read_upto = p->captured;
    }
    if (bitmap_dirty_blocks(p->bm) > 0)
        m.sync_end = 0; /* the walk decides */
    meta_save(p, &m);
    p->walking = m.sync_end == 0;
    p->walk_done = !p->walking;
    p->walk_pos = 0;
    p->pass_last = 0;
    p->pass_total = bitmap_dirty_bytes(p->bm);
    kick(p->a);
}

static int act_sync(void *ctx)
{
    agent_pair_t *p = ctx;
    bool full = p->want_full;
    p->want_full = false;
    p->paused = false;
    pass_start(p, full);
    return 0;
}

static int act_protect(void *ctx)
{
    agent_pair_t *p = ctx;
    bitmap_meta_t m = *meta(p);
    p->paused = false;
    p->to_bitmap = false;
    p->walking = p->walk_done = false;
    if (m.sync_from || m.sync_end) {
        m.sync_from = m.sync_end = 0;
        meta_save(p, &m);
    }
    if (bitmap_dirty_blocks(p->bm) == 0)
        p->dirty_since_us = 0;
    kick(p->a);
    return 0;
}

static int act_seeded(void *ctx)
{
    agent_pair_t *p = ctx;
    bitmap_meta_t m = *meta(p);
    m.flags |= META_SEEDED;
    meta_save(p, &m);
    return act_protect(ctx);
}

static int act_resync(void *ctx)
{
    agent_pair_t *p = ctx;
    p->paused = false;
    pass_start(p, false);
    return 0;
}

static int act_overflow(void *ctx)
{
    agent_pair_t *p = ctx;
    p->paused = false;
    enter_bitmap(p);
    kick(p->a);
    return 0;
}

static int act_pause(void *ctx)
{
    agent_pair_t *p = ctx;
    p->paused = true;
    p->walking = false;
    sess_reset(p, SESS_DOWN);
    return 0;
}

static const pair_fsm_ops_t pair_ops = {
    .sync = act_sync,
    .seeded = act_seeded,
    .protect = act_protect,
    .resync = act_resync,
    .overflow = act_overflow,
    .pause = act_pause,
    .trace = rt_chart_trace,
};

/* Where a pair goes when it opens or is unpaused. */
static int pick(const agent_pair_t *p, char *detail, size_t n)
{
    const bitmap_meta_t *m = meta(p);
    uint64_t dirty = bitmap_dirty_bytes(p->bm);
    if (!(m->flags & META_SEEDED)) {
        snprintf(detail, n, "not seeded yet: %" PRIu64 " bytes to sync", dirty);
        return ss_PairEvent_PAIR_INITIAL;
    }
    if (p->to_bitmap || seglog_bytes(p->log) >= p->a->log_max) {
        snprintf(detail, n, "log %" PRIu64 " bytes, log_max %" PRIu64, seglog_bytes(p->log),
                 p->a->log_max);
        return ss_PairEvent_PAIR_LOG_FULL;
    }
    if (dirty || m->sync_from) {
        snprintf(detail, n, "%" PRIu64 " bytes dirty (%u extents active at a crash)", dirty,
                 bitmap_recovered(p->bm));
        return ss_PairEvent_PAIR_DIRTY;
    }
    snprintf(detail, n, "log %" PRIu64 "..%" PRIu64, seglog_first_seq(p->log), p->captured);
    return ss_PairEvent_PAIR_CLEAN;
}

/* ---- sync pass: the walk over the dirty bits ------------------------------------------ */

/* One piece of the next dirty run: a hole as one ZERO record, or up to
 * AGENT_REC_MAX of data as one SYNCREF; *first and *count get its blocks.
 * @return RT_OK, BITMAP_END (no dirty block from walk_pos on), RT_ERR. */
static int walk_piece(agent_pair_t *p, uint64_t *first, uint64_t *count)
{
    uint64_t b, n;
    int rc = bitmap_next(p->bm, p->walk_pos, AGENT_REC_MAX / BITMAP_BLOCK, &b, &n);
    if (rc != RT_OK)
        return rc;
    uint64_t off = b * BITMAP_BLOCK, end = (b + n) * BITMAP_BLOCK;
    if (end > p->size)
        end = p->size;
    /* where the data starts: a hole before it needs no reading */
    off_t d = lseek(p->fd, (off_t)off, SEEK_DATA);
    uint64_t data = d >= 0 ? (uint64_t)d & ~(uint64_t)(BITMAP_BLOCK - 1)
                    : errno == ENXIO ? p->size : off; /* ENXIO: a hole to the end */
    wrec_hdr_t h = {.offset = off};
    if (data > off) {
        /* as far as the hole and the dirty run both go, in one ZERO record */
        uint64_t want = ((data < p->size ? data : p->size) - off + BITMAP_BLOCK - 1) /
                        BITMAP_BLOCK;
        if (want > AGENT_RUN_MAX)
            want = AGENT_RUN_MAX;
        if (want > n && bitmap_next(p->bm, b, want, &b, &n) == RT_OK) {
            end = (b + n) * BITMAP_BLOCK;
            if (end > p->size)
                end = p->size;
        }
        h.flags = WREC_F_ZERO;
        h.len = (uint32_t)((data < end ? data : end) - off);
    } else {
        off_t e = lseek(p->fd, (off_t)off, SEEK_HOLE);
        uint64_t hole = e < 0 ? end
                        : ((uint64_t)e + BITMAP_BLOCK - 1) & ~(uint64_t)(BITMAP_BLOCK - 1);
        if (hole <= off || hole > end)
            hole = end;
        h.flags = WREC_F_SYNCREF;
        h.len = (uint32_t)(hole - off);
    }
    if (append(p, &h, NULL) != RT_OK)
        return RT_ERR;
    if (h.flags == WREC_F_ZERO)
        p->sync_holes += h.len;
    if (h.flags == WREC_F_SYNCREF) {
        unsigned i = (p->sq_head + p->sq_count) % AGENT_SYNC_Q;
        p->sq[i] = (syncq_t){h.seq, h.len};
        p->sq_count++;
        p->sq_bytes += h.len;
    }
    p->pass_last = h.seq;
    *first = b;
    *count = (h.len + BITMAP_BLOCK - 1) / BITMAP_BLOCK;
    p->walk_pos = b + *count;
    return RT_OK;
}

/* the walk found no more bits: the pass's end is its last record */
static void walk_finish(agent_pair_t *p)
{
    if (p->pass_last == 0 || p->send_next > p->pass_last) {
        /* nothing appended in this pass (a restart right at its end), or its
         * last record was shipped before the walk knew it was the last (so
         * as INTERIOR, without BATCH_SYNC_DONE, and the replica would have
         * no consistent point after the pass until a later write): one
         * small reference carries the end of the pass to the replica */
        wrec_hdr_t h = {.flags = WREC_F_SYNCREF, .offset = 0,
                        .len = (uint32_t)(p->size < BITMAP_BLOCK ? p->size : BITMAP_BLOCK)};
        if (append(p, &h, NULL) != RT_OK || commit(p) != RT_OK)
            return;
        p->pass_last = h.seq;
    }
    bitmap_meta_t m = *meta(p);
    m.sync_end = p->pass_last;
    meta_save(p, &m);
    p->walking = false;
    p->walk_done = true;
    rt_log(RT_LOG_INFO, "agent: pair %s: sync pass queued, seq %" PRIu64 "..%" PRIu64, p->id,
           m.sync_from, m.sync_end);
}

static void walk(agent_pair_t *p)
{
    struct { uint64_t first, count; } done[AGENT_WALK_STEPS];
    unsigned n = 0;
    bool finished = false, again = false;
    agent_t *a = p->a;

    if (!p->walking || p->paused || !syncing(p))
        return;
    while (n < AGENT_WALK_STEPS && p->sq_count < AGENT_SYNC_Q &&
           p->sq_bytes < AGENT_SYNC_AHEAD && seglog_bytes(p->log) < a->log_max) {
        int rc = walk_piece(p, &done[n].first, &done[n].count);
        if (rc == RT_OK) {
            n++;
            continue;
        }
        if (rc == BITMAP_END && p->walk_pos > 0) {
            /* bits may have been set behind the walk (failed writes): look
             * again from the start, once the bits of this round are cleared */
            p->walk_pos = 0;
            again = true;
            break;
        }
        finished = rc == BITMAP_END;
        break;
    }
    if (n > 0) {
        /* the records first, durably; only then the bits they stand for */
        if (commit(p) != RT_OK)
            return;
        for (unsigned i = 0; i < n; i++)
            if (bitmap_clear(p->bm, done[i].first, done[i].count, a->err, sizeof a->err) != RT_OK)
                rt_log(RT_LOG_ERR, "agent: pair %s: %s", p->id, a->err);
    }
    if (finished && bitmap_dirty_blocks(p->bm) == 0)
        walk_finish(p);
    else if (n == AGENT_WALK_STEPS || again)
        kick(a); /* more to walk, in a later turn */
}

/* ---- shipping --------------------------------------------------------------------------- */

static void ring_push(agent_pair_t *p, uint64_t last, uint32_t bytes)
{
    unsigned i = (p->r_head + p->r_count) % AGENT_INFLIGHT;
    p->ring[i] = (inflight_t){last, bytes};
    p->r_count++;
    p->inflight_bytes += bytes;
    if (p->r_count == 1)
        p->progress_us = now_mono();
    p->sent_batches++;
    p->sent_bytes += bytes;
}

/* the shipper failed on its side (I/O): drop the session, try again later */
static int ship_fail(agent_pair_t *p, rt_buf_t *buf, const char *what)
{
    rt_log(RT_LOG_ERR, "agent: pair %s: %s", p->id, what);
    rt_buf_unref(buf);
    sess_reset(p, SESS_DOWN);
    p->retry_us = now_mono() + 1000000u;
    return RT_AGAIN;
}

/* Where the pass in progress ends (0: not known yet): at its last record,
 * or later when a sync reference was read after later writes, as their data
 * is then in it: the replica is consistent only once those writes are too. */
static uint64_t pass_end(const agent_pair_t *p)
{
    uint64_t e = meta(p)->sync_end;
    return e && p->read_upto > e ? p->read_upto : e;
}

/* record bytes that may be in flight to the ps: its credit (never more
 * than the agent's own window), or the fixed window of an older ps */
static uint64_t window(const agent_pair_t *p)
{
    if (!p->credit_on)
        return AGENT_WINDOW;
    return p->credit < AGENT_WINDOW ? p->credit : AGENT_WINDOW;
}

/* the most bytes record @h takes in a batch: a sync reference becomes a
 * DATA record of its length (or a ZERO record, smaller) */
static uint64_t rec_bound(const wrec_hdr_t *h)
{
    if ((h->flags & WREC_F_KINDS) == WREC_F_SYNCREF)
        return WREC_HDR_SIZE + (uint64_t)h->len;
    return wrec_size(h);
}

/* Build one batch from send_next into @buf, of at most @lim bytes (<= its
 * capacity): a record that does not fit is held for the next batch.
 * *flags gets BatchFlag bits. @return the records, 0 if none is there (or
 * the first does not fit: p->held), RT_ERR (the reason in a->err). */
static int fill_batch(agent_pair_t *p, rt_buf_t *buf, uint64_t lim, uint32_t *used,
                      uint64_t *first, uint64_t *last, uint32_t *flags)
{
    agent_t *a = p->a;
    const bitmap_meta_t *m = meta(p);
    uint64_t max_seq = p->captured, end = pass_end(p);
    if (end && p->send_next <= end && end < max_seq)
        max_seq = end; /* a batch ends where the pass does */
    int count = 0;
    *used = 0;
    *flags = 0;
    while (*used < AGENT_BATCH) {
        wrec_hdr_t h;
        const uint8_t *stored;
        if (p->held) {
            h = p->held_h;
            stored = p->held_stored;
            p->held = false;
        } else {
            int rc = seglog_iter_next(p->it, max_seq, &h, &stored, NULL, a->err, sizeof a->err);
            if (rc == SEGLOG_END)
                break;
            if (rc != RT_OK)
                return RT_ERR;
        }
        if (h.seq != p->send_next + (uint64_t)count) {
            snprintf(a->err, sizeof a->err, "log: seq %" PRIu64 " where %" PRIu64 " was due",
                     h.seq, p->send_next + (uint64_t)count);
            return RT_ERR;
        }
        if (*used + rec_bound(&h) > lim) {
            p->held = true; /* the next batch starts with it */
            p->held_h = h;
            p->held_stored = stored;
            break;
        }
        uint8_t *out = buf->data + *used;
        wrec_hdr_t w = h;
        if ((h.flags & WREC_F_KINDS) == WREC_F_SYNCREF && p->captured > p->read_upto)
            p->read_upto = p->captured; /* read below, with every write captured so far */
        if (m->sync_from && h.seq >= m->sync_from && (!m->sync_end || h.seq < pass_end(p)))
            w.flags |= WREC_F_INTERIOR;
        if ((h.flags & WREC_F_KINDS) == WREC_F_SYNCREF) {
            uint8_t *data = out + WREC_HDR_SIZE;
            ssize_t got = pread(p->fd, data, h.len, (off_t)h.offset);
            if (got < 0 || (uint32_t)got != h.len) {
                snprintf(a->err, sizeof a->err, "%s: read %" PRIu32 " bytes at %" PRIu64 ": %s",
                         p->path, h.len, h.offset, got < 0 ? strerror(errno) : "short read");
                return RT_ERR;
            }
            bool zero = all_zero(data, h.len);
            w.flags = (uint16_t)((w.flags & ~WREC_F_KINDS) | (zero ? WREC_F_ZERO : WREC_F_DATA));
            const char *why = NULL;
            if (wrec_seal(&w, zero ? NULL : data, &why) != RT_OK) {
                snprintf(a->err, sizeof a->err, "sync record %" PRIu64 ": %s", h.seq, why);
                return RT_ERR;
            }
            if (zero)
                p->sync_zero += h.len;
            else
                p->sync_data += h.len;
            *flags |= ss_BatchFlag_BATCH_SYNC;
        } else if (h.stored) {
            memcpy(out + WREC_HDR_SIZE, stored, h.stored);
        }
        wrec_hdr_encode(&w, out);
        *used += (uint32_t)wrec_size(&w);
        if (count == 0)
            *first = h.seq;
        *last = h.seq;
        count++;
    }
    if (count && m->sync_end && *last == pass_end(p))
        *flags |= ss_BatchFlag_BATCH_SYNC_DONE;
    return count;
}

/* Send one batch. @return RT_OK (sent: go on), RT_AGAIN (stop for now),
 * SEGLOG_END (nothing left to send). */
static int ship_one(agent_pair_t *p)
{
    agent_t *a = p->a;
    if (p->pend) {
        int rc = send_ps(p, &p->pend_env, p->pend, p->pend_len);
        if (rc == RT_AGAIN)
            return RT_AGAIN;
        rt_buf_unref(p->pend);
        p->pend = NULL;
        if (rc != RT_OK) {
            sess_reset(p, SESS_DOWN);
            return RT_AGAIN;
        }
        ring_push(p, p->pend_last, p->pend_len);
        return RT_OK;
    }
    if (p->r_count == 0 && p->send_next <= p->ps_acked && ship_from_acked(p) != RT_OK)
        return RT_AGAIN; /* the ps holds more than was sent (after a rewind): skip it */
    if (p->send_next > p->captured)
        return SEGLOG_END;
    if (p->r_count > 0 && !syncing(p) && p->send_next == p->tail_seq + 1 &&
        p->captured - p->tail_seq < AGENT_COALESCE_RECS &&
        p->cum - p->tail_cum < AGENT_COALESCE_BYTES)
        return RT_AGAIN; /* a trickle behind a batch in flight: its ack sends it, grown */
    uint64_t win = window(p);
    if (p->r_count == AGENT_INFLIGHT || p->inflight_bytes >= win)
        return RT_AGAIN;
    uint64_t room = win - p->inflight_bytes;
    if (room > AGENT_BATCH_CAP)
        room = AGENT_BATCH_CAP;
    if (room < WREC_HDR_SIZE || (p->held && rec_bound(&p->held_h) > room))
        return RT_AGAIN; /* no credit for the next record: a later ack brings some */
    rt_buf_t *buf = rt_buf_alloc_for(a->node, &a->actor, AGENT_BATCH_CAP);
    if (!buf)
        return RT_AGAIN; /* RT_SIG_RESUME comes */
    uint32_t used = 0, flags = 0;
    uint64_t first = 0, last = 0;
    int n = fill_batch(p, buf, room, &used, &first, &last, &flags);
    if (n < 0)
        return ship_fail(p, buf, a->err);
    if (n == 0) {
        rt_buf_unref(buf);
        return p->held ? RT_AGAIN : SEGLOG_END;
    }
    if (used <= AGENT_BATCH_CAP / 4) {
        /* small batches (light load) must not pin a big buffer each */
        rt_buf_t *small = rt_buf_alloc(a->node, used);
        if (small) {
            memcpy(small->data, buf->data, used);
            rt_buf_unref(buf);
            buf = small;
        }
    }
    buf->len = used;
    ss_Envelope env = ss_Envelope_init_zero;
    env.which_body = ss_Envelope_write_batch_tag;
    ss_WriteBatch *wb = &env.body.write_batch;
    snprintf(wb->pair, sizeof wb->pair, "%s", p->id);
    wb->first_seq = first;
    wb->last_seq = last;
    wb->count = (uint32_t)n;
    wb->flags = flags;
    wb->raw_len = used;
    wb->epoch = meta(p)->epoch;
    wb->sent_us = rt_now_us();
    p->send_next = last + 1;
    if (last == p->captured) {
        p->tail_seq = last;
        p->tail_cum = p->cum;
    }
    int rc = send_ps(p, &env, buf, used);
    if (rc == RT_AGAIN) {
        p->pend = buf;
        p->pend_env = env;
        p->pend_len = used;
        p->pend_last = last;
        return RT_AGAIN;
    }
    rt_buf_unref(buf);
    if (rc != RT_OK) {
        sess_reset(p, SESS_DOWN);
        return RT_AGAIN;
    }
    ring_push(p, last, used);
    return RT_OK;
}

/* ---- the pair's turn ------------------------------------------------------------------- */

static bool sync_pending(const agent_pair_t *p)
{
    return bitmap_dirty_blocks(p->bm) > 0 || meta(p)->sync_from != 0;
}

static bool drained(const agent_pair_t *p)
{
    return !sync_pending(p) && !p->to_bitmap && p->mt_acked >= p->captured;
}

static void pump_pair(agent_pair_t *p)
{
    agent_t *a = p->a;
    char detail[160];
    if (a->stopping || in_state(p, "created"))
        return;
    uint64_t dirty = bitmap_dirty_bytes(p->bm);
    if (in_state(p, "protected") && dirty) {
        snprintf(detail, sizeof detail, "%" PRIu64 " bytes marked dirty", dirty);
        fire(p, ss_PairEvent_PAIR_DIRTY, detail);
    }
    if (syncing(p) && p->walk_done && dirty) {
        /* new dirty blocks after the walk ended (a failed write): go on */
        bitmap_meta_t m = *meta(p);
        m.sync_end = 0;
        meta_save(p, &m);
        p->walking = true;
        p->walk_done = false;
        p->walk_pos = 0;
    }
    if (in_state(p, "bitmap_mode") && p->sess == SESS_OPEN && p->ps_acked >= p->captured) {
        bool seeded = meta(p)->flags & META_SEEDED;
        snprintf(detail, sizeof detail, "log shipped up to seq %" PRIu64 ", %" PRIu64
                 " bytes dirty", p->ps_acked, dirty);
        fire(p, seeded ? ss_PairEvent_PAIR_DRAINED : ss_PairEvent_PAIR_INITIAL, detail);
    }
    walk(p);
    if (!p->paused) {
        if (p->sess == SESS_DOWN && now_mono() >= p->retry_us)
            sess_open(p);
        if (p->sess == SESS_OPEN)
            for (unsigned i = 0; i < 2 * AGENT_INFLIGHT && ship_one(p) == RT_OK; i++)
                ;
    }
    const bitmap_meta_t *m = meta(p);
    if (syncing(p) && p->walk_done && !bitmap_dirty_blocks(p->bm) && m->sync_end &&
        p->mt_acked >= pass_end(p)) {
        snprintf(detail, sizeof detail, "pass %" PRIu64 "..%" PRIu64
                 " durable at the master target", m->sync_from, pass_end(p));
        fire(p, ss_PairEvent_PAIR_SYNC_DONE, detail);
    }
}

static void pump(agent_t *a)
{
    for (unsigned i = 0; i < a->npairs; i++)
        pump_pair(a->pairs[i]);
}

/* ---- dispatch ------------------------------------------------------------------------ */

static void on_start(agent_t *a)
{
    char detail[160];
    for (unsigned i = 0; i < a->npairs; i++) {
        agent_pair_t *p = a->pairs[i];
        int ev = pick(p, detail, sizeof detail);
        rt_log(RT_LOG_INFO, "agent: pair %s: disk %s (%" PRIu64 " bytes) on nbd://%.*s:%u/%s, %s",
               p->id, p->path, p->size, host_len(p->listen), p->listen, nbd_server_port(p->srv),
               p->export_name, detail);
        fire(p, ev, detail);
        nbd_export_resume(p->exp);
    }
    rt_actor_cron(&a->actor, 1.0);
    pump(a);
}

static void on_stop(agent_t *a)
{
    a->stopping = true;
    for (unsigned i = 0; i < a->npairs; i++) {
        agent_pair_t *p = a->pairs[i];
        nbd_export_pause(p->exp); /* no write runs any more: everything is captured */
        /* parked FLUSH/FUA replies: this commit covers them */
        nbd_export_complete(p->exp, nbd_export_token(p->exp), commit(p));
        if (bitmap_quiesce(p->bm, a->err, sizeof a->err) != RT_OK ||
            bitmap_sync(p->bm, a->err, sizeof a->err) != RT_OK)
            rt_log(RT_LOG_ERR, "agent: pair %s: %s", p->id, a->err);
        sess_reset(p, SESS_DOWN);
    }
    rt_timer_stop(&a->kick);
    rt_actor_cron(&a->actor, 0);
    rt_actor_stopped(&a->actor);
}

static void on_cron(agent_t *a)
{
    uint64_t now = now_mono(), stall = (uint64_t)(AGENT_STALL_S * 1e6);
    for (unsigned i = 0; i < a->npairs; i++) {
        agent_pair_t *p = a->pairs[i];
        /* every write so far is in the log or the bitmap: the marks can go */
        if (bitmap_quiesce(p->bm, a->err, sizeof a->err) != RT_OK)
            rt_log(RT_LOG_ERR, "agent: pair %s: %s", p->id, a->err);
        if (p->sess == SESS_OPENING && now - p->sess_since_us > stall) {
            rt_log(RT_LOG_WARN, "agent: pair %s: no answer to PairOpen: trying again", p->id);
            sess_reset(p, SESS_DOWN);
        } else if (p->sess == SESS_OPEN && p->r_count && now - p->progress_us > stall) {
            rt_log(RT_LOG_WARN, "agent: pair %s: no ack for %.0f s with %u batches in flight: "
                   "reopening", p->id, AGENT_STALL_S, p->r_count);
            sess_reset(p, SESS_DOWN);
        } else if (p->sess == SESS_HELD && now >= p->retry_us) {
            p->sess = SESS_DOWN;
        } else if (p->sess == SESS_OPEN && p->credit_on && !p->r_count && !p->pend &&
                   p->send_next <= p->captured && now - p->progress_us > stall) {
            /* waiting for credit with nothing in flight: no ack will come by
             * itself if the ps missed telling us of room; its PairOpen
             * answer says how much there is (nothing is sent again) */
            sess_reset(p, SESS_DOWN);
        }
    }
    pump(a);
}

static void on_pair_open(agent_t *a, const rt_msg_t *m)
{
    const ss_PairOpen *po = &((const ss_Envelope *)m->data)->body.pair_open;
    agent_pair_t *p = pair_find(a, po->pair);
    if (!po->reply || !p || p->sess != SESS_OPENING)
        return; /* not the answer to a PairOpen of ours in flight */
    mt_acked(p, po->mt_durable_seq);
    p->consistent = po->consistent_seq;
    uint64_t d = po->durable_seq;
    if (d > p->captured || d + 1 < seglog_first_seq(p->log)) {
        receiver_lost(p, d);
    } else {
        if (d < p->ps_acked)
            rt_log(RT_LOG_WARN, "agent: pair %s: the process server holds seq %" PRIu64
                   " but had acknowledged %" PRIu64 ": sending again", p->id, d, p->ps_acked);
        p->ps_acked = d > 0 ? d - 1 : 0;
        acked(p, d);
    }
    if (ship_from_acked(p) != RT_OK)
        return;
    credit_take(p, po->has_credit, po->credit, po->durable_seq);
    p->sess = SESS_OPEN;
    p->progress_us = now_mono();
    rt_log(RT_LOG_INFO, "agent: pair %s: process server holds seq %" PRIu64
           " (master target %" PRIu64 "), shipping from %" PRIu64 " to %" PRIu64, p->id,
           p->ps_acked, p->mt_acked, p->send_next, p->captured);
    pump_pair(p);
}

static void on_write_ack(agent_t *a, const rt_msg_t *m)
{
    const ss_WriteAck *ack = &((const ss_Envelope *)m->data)->body.write_ack;
    agent_pair_t *p = pair_find(a, ack->pair);
    if (!p)
        return;
    mt_acked(p, ack->mt_durable_seq);
    if (ack->consistent_seq > p->consistent)
        p->consistent = ack->consistent_seq;
    switch (ack->status) {
    case ss_AckStatus_ACK_OK:
        if (p->sess == SESS_OPEN && ack->durable_seq < p->ps_acked) {
            rt_log(RT_LOG_WARN, "agent: pair %s: the process server went back to seq %" PRIu64
                   " from %" PRIu64 ": reopening", p->id, ack->durable_seq, p->ps_acked);
            sess_reset(p, SESS_DOWN);
            break;
        }
        acked(p, ack->durable_seq);
        credit_take(p, ack->has_credit, ack->credit, ack->durable_seq);
        if (p->sess == SESS_HELD) {
            /* the ps says there is room again: no need to wait out the hold */
            p->sess = SESS_DOWN;
            p->retry_us = 0;
        }
        break;
    case ss_AckStatus_ACK_FULL:
        acked(p, ack->durable_seq);
        if (ack->has_credit && p->sess == SESS_OPEN) {
            /* a refused batch under credit (pairs sharing a full cache): send
             * again from the first unacknowledged seq once credit allows,
             * without a new session; the log keeps the records meanwhile */
            credit_take(p, true, ack->credit, ack->durable_seq);
            if (p->r_count || p->pend || p->send_next > p->ps_acked + 1) {
                p->rewinds++;
                rt_log(RT_LOG_DEBUG, "agent: pair %s: process server cache full (%s): "
                       "sending again from %" PRIu64 " with credit", p->id, ack->reason,
                       p->ps_acked + 1);
                (void)ship_from_acked(p);
            }
            break;
        }
        if (p->sess != SESS_HELD)
            rt_log(RT_LOG_INFO, "agent: pair %s: process server cache full (%s): holding",
                   p->id, ack->reason);
        sess_reset(p, SESS_HELD);
        p->retry_us = now_mono() + (uint64_t)(AGENT_HOLD_S * 1e6);
        break;
    case ss_AckStatus_ACK_BAD_RECORD:
        acked(p, ack->durable_seq);
        p->bad_acks++;
        rt_log(RT_LOG_ERR, "agent: pair %s: process server refused a record after seq %"
               PRIu64 ": %s: sending again", p->id, ack->durable_seq, ack->reason);
        sess_reset(p, SESS_DOWN);
        p->retry_us = now_mono() + (p->bad_acks > 3 ? 5000000u : 0u);
        break;
    case ss_AckStatus_ACK_UNKNOWN_PAIR:
    default:
        rt_log(RT_LOG_WARN, "agent: pair %s: process server answered status %u (%s): "
               "reopening", p->id, (unsigned)ack->status, ack->reason);
        sess_reset(p, SESS_DOWN);
        break;
    }
    pump_pair(p);
}

/* a link to a process server came or went (nothing to do when it is local) */
static void on_link(agent_t *a, const rt_msg_t *m, bool up)
{
    if (hub_role_local(a->hub, RT_ROLE_PS))
        return;
    uint32_t roles = up ? ((const ss_Hello *)m->data)->roles
                        : (m->link ? rt_link_peer_roles(m->link) : 0);
    if (roles && !(roles & RT_ROLE_PS))
        return;
    for (unsigned i = 0; i < a->npairs; i++) {
        agent_pair_t *p = a->pairs[i];
        if ((up && p->sess == SESS_OPEN) || p->sess == SESS_HELD)
            continue;
        sess_reset(p, SESS_DOWN);
        p->retry_us = 0;
    }
    pump(a);
}

static void agent_dispatch(rt_actor_t *me, const rt_msg_t *m)
{
    agent_t *a = (agent_t *)me;
    switch (m->tag) {
    case RT_SIG_START:
        on_start(a);
        break;
    case RT_SIG_STOP:
        on_stop(a);
        break;
    case RT_SIG_CRON:
        on_cron(a);
        break;
    case RT_SIG_LINK_UP:
        on_link(a, m, true);
        break;
    case RT_SIG_LINK_DOWN:
        on_link(a, m, false);
        break;
    case RT_SIG_RESUME:
    case RT_SIG_LINK_WRITABLE:
    case AGENT_SIG_KICK:
        pump(a);
        break;
    case AGENT_SIG_REAPED:
        on_reaped(a, m);
        break;
    case AGENT_SIG_COMMITTED:
        on_committed(a, m);
        break;
    case AGENT_SIG_FSYNCED:
        on_fsynced(a, m);
        break;
    case ss_Envelope_pair_open_tag:
        on_pair_open(a, m);
        break;
    case ss_Envelope_write_ack_tag:
        on_write_ack(a, m);
        break;
    default:
        rt_log(RT_LOG_DEBUG, "agent: message %u ignored", (unsigned)m->tag);
        break;
    }
}

/* ---- status ------------------------------------------------------------------------------ */

static double progress(const agent_pair_t *p)
{
    if (in_state(p, "protected"))
        return 1.0;
    if (!syncing(p))
        return NAN;
    if (p->pass_total == 0)
        return p->walk_done ? 1.0 : 0.0;
    double left = (double)bitmap_dirty_bytes(p->bm) + (double)p->sq_bytes;
    double f = 1.0 - left / (double)p->pass_total;
    return f < 0 ? 0 : f > 1 ? 1 : f;
}

static uint64_t lag_ms(const agent_pair_t *p)
{
    uint64_t now = rt_now_us(), oldest = 0;
    if (drained(p))
        return 0;
    if (p->mt_acked < p->captured && p->lag_count)
        oldest = p->lag[p->lag_head].time_us;
    if (p->dirty_since_us && (!oldest || p->dirty_since_us < oldest))
        oldest = p->dirty_since_us;
    return oldest && now > oldest ? (now - oldest) / 1000 : 0;
}

static void fill_info(const agent_pair_t *p, agent_pair_info_t *o)
{
    memset(o, 0, sizeof *o);
    o->state = pair_fsm_state(&p->fsm);
    o->session = sess_names[p->sess];
    o->nbd_port = nbd_server_port(p->srv);
    o->disk_size = p->size;
    o->captured = p->captured;
    o->ps_acked = p->ps_acked;
    o->mt_acked = p->mt_acked;
    o->consistent_seq = p->consistent;
    o->log_first = seglog_first_seq(p->log);
    o->log_last = seglog_last_seq(p->log);
    o->log_bytes = seglog_bytes(p->log);
    o->dirty_bytes = bitmap_dirty_bytes(p->bm);
    o->sync_from = meta(p)->sync_from;
    o->sync_end = meta(p)->sync_end;
    o->bitmap_capture = p->to_bitmap;
    o->seeded = meta(p)->flags & META_SEEDED;
    o->drained = drained(p);
    o->recovered = bitmap_recovered(p->bm);
    o->active = bitmap_active(p->bm);
    o->writes = p->writes;
    o->sent_batches = p->sent_batches;
    o->credit_on = p->credit_on;
    o->credit = p->credit;
    o->inflight_bytes = p->inflight_bytes;
    o->rewinds = p->rewinds;
    o->sent_bytes = p->sent_bytes;
    o->sync_data_bytes = p->sync_data;
    o->sync_zero_bytes = p->sync_zero;
    o->sync_hole_bytes = p->sync_holes;
    o->reopens = p->reopens;
}

static void mgmt_fill(const agent_pair_t *p, mgmt_pair_t *mp)
{
    uint64_t dirty = bitmap_dirty_bytes(p->bm);
    snprintf(mp->disk, sizeof mp->disk, "%s", p->export_name);
    snprintf(mp->group, sizeof mp->group, "%s", p->group);
    snprintf(mp->state, sizeof mp->state, "%s", pair_fsm_state(&p->fsm));
    snprintf(mp->link, sizeof mp->link, "%s", sess_names[p->sess]);
    mp->source_seq = p->captured;
    mp->ps_durable_seq = p->ps_acked;
    mp->mt_durable_seq = p->mt_acked;
    mp->drained = drained(p) ? 1 : 0;
    mp->rpo_lag_ms = lag_ms(p);
    mp->backlog_bytes = (p->mt_acked >= p->captured ? 0 : p->cum - p->cum_at_mt) + dirty;
    mp->bitmap_dirty_bytes = dirty;
    mp->sync_progress = progress(p);
}

static void status_pair(const agent_pair_t *p, mgmt_status_t *st, rt_json_t *out)
{
    agent_pair_info_t in;
    fill_info(p, &in);
    mgmt_pair_t *mp = st ? mgmt_status_pair(st, p->id) : NULL;
    if (mp)
        mgmt_fill(p, mp);
    nbd_export_stats_t ns;
    nbd_export_stats(p->exp, &ns);
    rt_json_obj(out, NULL);
    rt_json_str(out, "id", p->id);
    rt_json_str(out, "export", p->export_name);
    rt_json_strf(out, "nbd", "nbd://%.*s:%u/%s", host_len(p->listen), p->listen, in.nbd_port,
                 p->export_name);
    rt_json_str(out, "path", p->path);
    rt_json_u64(out, "disk_size", p->size);
    rt_json_str(out, "state", in.state);
    rt_json_str(out, "session", in.session);
    rt_json_bool(out, "seeded", in.seeded);
    rt_json_u64(out, "epoch", meta(p)->epoch);
    rt_json_obj(out, "log");
    rt_json_u64(out, "first_seq", in.log_first);
    rt_json_u64(out, "last_seq", in.log_last);
    rt_json_u64(out, "durable_seq", seglog_durable_seq(p->log));
    rt_json_u64(out, "bytes", in.log_bytes);
    rt_json_u64(out, "records", seglog_records(p->log));
    rt_json_u64(out, "segments", seglog_segments(p->log));
    rt_json_obj_end(out);
    rt_json_obj(out, "bitmap");
    rt_json_bool(out, "capture", in.bitmap_capture);
    rt_json_u64(out, "dirty_bytes", in.dirty_bytes);
    rt_json_u64(out, "active_extents", bitmap_active(p->bm));
    rt_json_u64(out, "recovered_extents", in.recovered);
    rt_json_obj_end(out);
    rt_json_obj(out, "sync");
    rt_json_u64(out, "from_seq", in.sync_from);
    rt_json_u64(out, "end_seq", in.sync_end);
    rt_json_bool(out, "walk_done", p->walk_done);
    rt_json_u64(out, "walk_block", p->walk_pos);
    rt_json_u64(out, "queued_bytes", p->sq_bytes);
    rt_json_u64(out, "data_bytes_sent", in.sync_data_bytes);
    rt_json_u64(out, "zero_bytes_sent", in.sync_zero_bytes);
    rt_json_u64(out, "hole_bytes_sent", in.sync_hole_bytes);
    rt_json_obj_end(out);
    rt_json_obj(out, "ship");
    rt_json_u64(out, "next_seq", p->send_next);
    rt_json_u64(out, "inflight_batches", p->r_count);
    rt_json_u64(out, "inflight_bytes", p->inflight_bytes);
    if (p->credit_on)
        rt_json_u64(out, "ps_credit", p->credit);
    else
        rt_json_null(out, "ps_credit");
    rt_json_u64(out, "rewinds", p->rewinds);
    rt_json_u64(out, "batches", in.sent_batches);
    rt_json_u64(out, "bytes", in.sent_bytes);
    rt_json_u64(out, "consistent_seq", in.consistent_seq);
    rt_json_u64(out, "opens", in.reopens);
    rt_json_obj_end(out);
    rt_json_obj(out, "nbd_stats");
    rt_json_u64(out, "conns", ns.conns);
    rt_json_u64(out, "reads", ns.reads);
    rt_json_u64(out, "writes", ns.writes);
    rt_json_u64(out, "flushes", ns.flushes);
    rt_json_u64(out, "bytes_written", ns.bytes_written);
    rt_json_u64(out, "errors", ns.errors);
    rt_json_obj_end(out);
    rt_json_obj_end(out);
}

int agent_status(void *me, mgmt_status_t *st, rt_json_t *out, char *err, size_t errlen)
{
    agent_t *a = me;
    (void)err, (void)errlen;
    rt_json_u64(out, "log_max", a->log_max);
    rt_json_arr(out, "pairs");
    for (unsigned i = 0; i < a->npairs; i++)
        status_pair(a->pairs[i], st, out);
    rt_json_arr_end(out);
    return MGMT_OK;
}

static int cmd_pause(agent_t *a, const ss_MgmtRequest *req, bool pause, char *err, size_t errlen)
{
    if (req->args_count != 1) {
        snprintf(err, errlen, "%s takes one argument, the pair id", pause ? "pause" : "resume");
        return MGMT_USAGE;
    }
    agent_pair_t *p = pair_find(a, req->args[0]);
    if (!p) {
        snprintf(err, errlen, "no pair '%s' at agent %s (nodectl pairs lists them)", req->args[0],
                 rt_node_name(a->node));
        return MGMT_FAIL;
    }
    if (agent_pause(a, req->args[0], pause) != RT_OK) {
        snprintf(err, errlen, "pair %s is %s: cannot %s it", p->id, pair_fsm_state(&p->fsm),
                 pause ? "pause" : "resume");
        return MGMT_FAIL;
    }
    return MGMT_OK;
}

static int cmd_pause_fn(void *ctx, const ss_MgmtRequest *req, rt_json_t *out, char *err,
                        size_t errlen)
{
    (void)out;
    return cmd_pause(ctx, req, true, err, errlen);
}

static int cmd_resume_fn(void *ctx, const ss_MgmtRequest *req, rt_json_t *out, char *err,
                         size_t errlen)
{
    (void)out;
    return cmd_pause(ctx, req, false, err, errlen);
}

int agent_register_mgmt(agent_t *me, mgmt_t *mgmt)
{
    if (mgmt_register_status(mgmt, "agent", agent_status, me) != RT_OK ||
        mgmt_register(mgmt, "pause", cmd_pause_fn, me, MGMT_ADMIN) != RT_OK ||
        mgmt_register(mgmt, "resume", cmd_resume_fn, me, MGMT_ADMIN) != RT_OK)
        return RT_ERR;
    return RT_OK;
}

int agent_pause(agent_t *me, const char *pair, bool pause)
{
    agent_pair_t *p = pair_find(me, pair);
    char detail[160];
    if (!p)
        return RT_ERR;
    int from = p->fsm.chart.cs;
    if (pause) {
        fire(p, ss_PairEvent_PAIR_PAUSE, "operator");
    } else {
        if (!in_state(p, "paused"))
            return RT_ERR;
        fire(p, pick(p, detail, sizeof detail), detail);
    }
    if (p->fsm.chart.cs == from)
        return RT_ERR;
    kick(me);
    return RT_OK;
}

int agent_pair_status(const agent_t *me, const char *pair, mgmt_pair_t *out)
{
    const agent_pair_t *p = pair_find(me, pair);
    if (!p)
        return RT_ERR;
    mgmt_fill(p, out);
    return RT_OK;
}

int agent_pair_info(const agent_t *me, const char *pair, agent_pair_info_t *out)
{
    const agent_pair_t *p = pair_find(me, pair);
    if (!p)
        return RT_ERR;
    fill_info(p, out);
    return RT_OK;
}

/* ---- lifecycle ---------------------------------------------------------------------------- */

static int mkdirs(const char *path)
{
    char tmp[AGENT_PATH];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *s = tmp + 1; *s; s++) {
        if (*s != '/')
            continue;
        *s = '\0';
        if (mkdir(tmp, 0750) != 0 && errno != EEXIST)
            return RT_ERR;
        *s = '/';
    }
    return mkdir(tmp, 0750) == 0 || errno == EEXIST ? RT_OK : RT_ERR;
}

static void pair_free(agent_pair_t *p)
{
    if (!p)
        return;
    rt_buf_unref(p->pend);
    seglog_iter_free(p->it);
    nbd_server_free(p->srv); /* removes the export, closes its file */
    seglog_close(p->log);
    bitmap_close(p->bm);
    free(p);
}

static int pair_open(agent_t *a, const char *section, const char *name, char *err, size_t errlen)
{
    const rt_conf_t *conf = a->conf;
    agent_pair_t *p = calloc(1, sizeof *p);
    char data_dir[AGENT_PATH], path[AGENT_PATH + 64];
    if (!p) {
        snprintf(err, errlen, "agent: out of memory");
        return RT_ERR;
    }
    p->a = a;
    p->fd = -1;
    const char *pair = rt_conf_str(conf, section, "pair");
    const char *exp = rt_conf_str(conf, section, "export");
    snprintf(p->disk, sizeof p->disk, "%s", name);
    snprintf(p->id, sizeof p->id, "%s", pair && pair[0] ? pair : name);
    snprintf(p->export_name, sizeof p->export_name, "%s", exp && exp[0] ? exp : name);
    snprintf(p->group, sizeof p->group, "%s", rt_conf_str(conf, section, "group"));
    snprintf(p->listen, sizeof p->listen, "%s", rt_conf_str(conf, section, "listen"));
    if (!rt_conf_path(conf, section, "path", p->path, sizeof p->path) ||
        !rt_conf_path(conf, "node", "data_dir", data_dir, sizeof data_dir)) {
        snprintf(err, errlen, "[%s]: path or [node] data_dir too long", section);
        goto fail;
    }
    if (pair_find(a, p->id)) {
        snprintf(err, errlen, "[%s]: pair %s is served twice", section, p->id);
        goto fail;
    }
    if (snprintf(p->dir, sizeof p->dir, "%s/agent/%s", data_dir, p->id) >= (int)sizeof p->dir ||
        mkdirs(p->dir) != RT_OK) {
        snprintf(err, errlen, "[%s]: cannot make %s/agent/%s: %s", section, data_dir, p->id,
                 strerror(errno));
        goto fail;
    }
    /* the export: the disk, served with our capture hooks, held until START */
    nbd_server_conf_t sc = {.listen = p->listen, .sync_submit = disk_sync_submit, .sync_arg = p};
    p->srv = nbd_server_new(rt_node_loop(a->node), &sc);
    if (!p->srv) {
        snprintf(err, errlen, "[%s]: cannot serve NBD on %s (see the line above)", section,
                 p->listen);
        goto fail;
    }
    nbd_export_conf_t ec = {
        .name = p->export_name,
        .description = p->id,
        .path = p->path,
        .hooks = {.on_write = hook_write, .on_flush = hook_flush, .on_begin = hook_begin},
        .ctx = p,
    };
    p->exp = nbd_export_add(p->srv, &ec);
    if (!p->exp) {
        snprintf(err, errlen, "[%s]: cannot serve %s (see the line above)", section, p->path);
        goto fail;
    }
    nbd_export_pause(p->exp);
    p->fd = nbd_export_fd(p->exp);
    p->size = nbd_export_size(p->exp);
    if (p->size == 0) {
        snprintf(err, errlen, "[%s]: %s is empty", section, p->path);
        goto fail;
    }
    /* the bitmap first: a new one means a new pair (initial sync of everything) */
    bool created = false;
    snprintf(path, sizeof path, "%s/bitmap", p->dir);
    p->bm = bitmap_open(path, p->size, true, &created, err, errlen);
    if (!p->bm)
        goto fail;
    snprintf(path, sizeof path, "%s/log", p->dir);
    /* small segments: a rollover syncs the sealed one on the loop, so its
     * size is the longest stall the log puts on the loop's clients */
    uint64_t seg = a->log_max / 8 < AGENT_SEG_MAX ? a->log_max / 8 : AGENT_SEG_MAX;
    seglog_conf_t lc = {
        .seg_max = seg < SEGLOG_SEG_MAX_MIN ? SEGLOG_SEG_MAX_MIN
                   : seg > SEGLOG_SEG_MAX_DEFAULT ? SEGLOG_SEG_MAX_DEFAULT : seg,
        .create = true,
        .defer_unlink = true, /* reap() deletes trimmed segments on a worker */
    };
    p->log = seglog_open(path, &lc, err, errlen);
    if (!p->log)
        goto fail;
    p->captured = seglog_last_seq(p->log);
    p->ps_acked = seglog_first_seq(p->log) - 1; /* trimmed: the ps had it */
    p->send_next = p->ps_acked + 1;
    if (created) {
        bitmap_meta_t m = {.epoch = 1, .sync_from = p->captured + 1};
        if (mark_dirty(p, 0, p->size) != RT_OK ||
            bitmap_set_meta(p->bm, &m, err, errlen) != RT_OK)
            goto fail;
    } else if (bitmap_recovered(p->bm)) {
        rt_log(RT_LOG_WARN, "agent: pair %s: %u extents were being written at a crash: "
               "they will be resynced", p->id, bitmap_recovered(p->bm));
    }
    if (bitmap_dirty_blocks(p->bm))
        p->dirty_since_us = rt_now_us();
    const char *why = NULL;
    if (seglog_recovered(p->log, &why))
        rt_log(RT_LOG_INFO, "agent: pair %s: log tail cut at open (%s)", p->id, why);
    pair_fsm_init(&p->fsm, &pair_ops, p, &a->actor, p->id);
    a->pairs[a->npairs++] = p;
    return RT_OK;
fail:
    pair_free(p);
    return RT_ERR;
}

typedef struct disk_scan {
    agent_t *a;
    char *err;
    size_t errlen;
    int rc;
} disk_scan_t;

static void disk_cb(void *arg, const char *section, const char *name)
{
    disk_scan_t *s = arg;
    if (s->rc != RT_OK)
        return;
    if (s->a->npairs == AGENT_PAIRS_MAX) {
        snprintf(s->err, s->errlen, "%s: more than %u [disk] sections", rt_conf_file(s->a->conf),
                 AGENT_PAIRS_MAX);
        s->rc = RT_ERR;
        return;
    }
    s->rc = pair_open(s->a, section, name, s->err, s->errlen);
}

agent_t *agent_new(rt_node_t *node, const rt_conf_t *conf, hub_t *hub, char *err, size_t errlen)
{
    agent_t *a = calloc(1, sizeof *a);
    if (!a) {
        snprintf(err, errlen, "agent: out of memory");
        return NULL;
    }
    a->node = node;
    a->conf = conf;
    a->hub = hub;
    a->log_max = rt_conf_u64(conf, "agent", "log_max");
    if (rt_actor_init(&a->actor, node, "agent", agent_dispatch) != RT_OK) {
        snprintf(err, errlen, "agent: message pool full");
        free(a);
        return NULL;
    }
    if (rt_timer_init(&a->kick, &a->actor, AGENT_SIG_KICK, 0) != RT_OK) {
        snprintf(err, errlen, "agent: message pool full");
        goto fail;
    }
    a->kick_ok = true;
    disk_scan_t s = {a, err, errlen, RT_OK};
    rt_conf_each(conf, "disk", disk_cb, &s);
    if (s.rc != RT_OK)
        goto fail;
    if (a->npairs == 0) {
        snprintf(err, errlen, "%s: role agent needs at least one [disk NAME] section",
                 rt_conf_file(conf) ? rt_conf_file(conf) : "config");
        goto fail;
    }
    if (hub_register_role(hub, RT_ROLE_AGENT, &a->actor) != RT_OK) {
        snprintf(err, errlen, "agent: role agent is already registered with the hub");
        goto fail;
    }
    return a;
fail:
    agent_free(a);
    return NULL;
}

void agent_free(agent_t *me)
{
    if (!me)
        return;
    /* reap jobs still on a worker own their memory until rt_actor_fini has
     * waited for them: free them after it (their completions are dropped) */
    seglog_job_t *jobs[AGENT_PAIRS_MAX];
    commit_job_t *cjobs[AGENT_PAIRS_MAX];
    nbd_sync_t *fjobs[AGENT_PAIRS_MAX];
    unsigned njobs = 0;
    for (unsigned i = 0; i < me->npairs && i < AGENT_PAIRS_MAX; i++) {
        agent_pair_t *p = me->pairs[i];
        jobs[njobs] = p ? p->rjob : NULL;
        cjobs[njobs] = p ? p->cjob : NULL;
        fjobs[njobs++] = p ? p->fjob : NULL;
        pair_free(p);
    }
    if (me->kick_ok)
        rt_timer_fini(&me->kick);
    rt_actor_fini(&me->actor);
    for (unsigned i = 0; i < njobs; i++) {
        seglog_job_free(jobs[i]);
        commit_job_free(cjobs[i]);
        nbd_sync_free(fjobs[i]);
    }
    free(me);
}

rt_actor_t *agent_actor(agent_t *me)
{
    return &me->actor;
}
