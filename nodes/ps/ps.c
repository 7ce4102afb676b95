/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * ps.c: the process server actor (see ps.h).
 *
 * Owns: one spool per pair ([ps] dir/PAIR/spool, a seglog) and a small state
 * file per pair (PAIR/pair.state: disk, size, group, epoch, the end of the
 * last sync pass; docs/FORMAT.md 5). Talks to: agents (PairOpen and
 * WriteBatch in, WriteAck and the PairOpen answer out) and the master target
 * (PairOpen and WriteBatch out, WriteAck and the PairOpen answer in), all
 * through the hub. No chart of its own: the pair chart lives at the agent;
 * here each pair has a small forwarding state (down, opening, open, hold).
 *
 * Durability: a WriteBatch is checked (codec_batch_open: every record's
 * header and capture hash, continuity, range), appended to the spool, and
 * acknowledged only after the commit that covers it: the commit starts from
 * a zero-delay timer, and its fdatasync runs on a worker (seglog_commit_begin
 * / seglog_job_run / seglog_commit_end) while the loop keeps taking batches;
 * durable rises, and the ack goes out, only when the job is back, and only
 * to what it covered. One commit per spool is in flight; what arrived
 * meanwhile shares the next one, started as soon as the job is back. What
 * the ack says durable is what a reopen of the spool recovers after kill -9
 * (seglog's recovery rules). Trimmed spool segments are deleted by worker
 * jobs too (seglog_reap_begin), one at a time per spool, oldest first.
 *
 * Relay mode ([ps] cache = relay; auto picks it when this node runs the
 * agent role too): the agent's own log on the same appliance already holds
 * every record until it is told durable, so a synced second copy on the
 * same disk buys nothing. The spool is then a staging area that is never
 * synced (seglog no_sync: appends reach the page cache, trimmed segments
 * are mostly deleted before writeback), and the agent is told durable only
 * what the master target has (agent_durable). After a restart here the
 * agent's PairOpen is answered only once the mt has answered ours
 * (open_owed), so the agent never resumes past what the mt holds. The
 * backlog of an outage is then bounded by [agent] log_max, not by the
 * quota.
 *
 * Flow control: every ack and PairOpen answer to the agent carries the
 * pair's credit (credit_of: record bytes it will take beyond that durable
 * seq, its share of the room under the quota), which the agent keeps
 * within; what was promised is taken even past the quota (grant_cum).
 *
 * Forwarding: per pair an iterator over the spool from mt_durable_seq + 1,
 * batches of about PS_BATCH_RAW bytes of records (only committed ones, and
 * ending exactly at the end of a sync pass, which the batch flags with
 * BATCH_SYNC_DONE), compressed when it pays, a window of PS_WINDOW bytes or
 * PS_INFLIGHT batches in flight, and a token bucket when [ps] bandwidth is
 * set. Compression runs on the node's workers (rt_work_submit), up to
 * PS_ZJOBS batches of a pair at once: built batches wait in a small ring in
 * sequence order and leave it from the head only, so a batch that finished
 * compressing early waits for the ones before it. A built batch the link
 * cannot take yet stays at the head until RT_SIG_LINK_WRITABLE (or
 * RT_SIG_RESUME for a pool), never dropped; a rewind discards the ring (a
 * batch still on a worker is dropped when it comes back). The
 * mt's WriteAck trims the spool below its durable_seq and is passed on to
 * the agent. Any doubt (link down, ACK_FULL, ACK_BAD_RECORD, a gap) rewinds
 * to the mt's durable_seq + 1 after a PairOpen: the mt drops duplicates, so
 * a resend costs bandwidth, never correctness.
 */
#include "ps.h"

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
#include "nodes/common/codec.h"
#include "nodes/common/kvstate.h"
#include "nodes/common/seglog.h"

#define PS_STATE_NAME  "pair.state"
#define PS_STATE_MAGIC "secondsite-ps-pair"
#define PS_SPOOL_NAME  "spool"
#define PS_MARKS       1024u        /* backlog accounting points per pair */
#define PS_OPEN_RETRY  5.0          /* seconds before a PairOpen to the mt is sent again */
#define PS_STALL_S 10.0 /* batches in flight and no ack for this long: ask the mt where it is */
#define PS_HOLD_FULL   1.0          /* seconds to hold after the mt said ACK_FULL */
#define PS_HOLD_BAD    5.0          /* ... after ACK_BAD_RECORD or a spool read error */
#define PS_MT_LINKS    8u           /* links to nodes with the mt role we track */
#define PS_PATH_MAX    4096u
#define PS_ZJOBS       4u           /* batches of a pair built and not yet sent (compressing or ready) */
#define PS_ZINLINE     (32u << 10)  /* raw bytes under which a batch is compressed on the loop */

enum {
    PS_SIG_COMMIT = RT_SIG_USER + 1, /* commit timer: end of the turn, commit and ack */
    PS_SIG_PUMP = RT_SIG_USER + 2,   /* bandwidth timer: tokens are back */
    PS_SIG_ZIPPED = RT_SIG_USER + 3, /* a worker compressed a batch (rt_work_arg: its zjob_t) */
    PS_SIG_SYNCED = RT_SIG_USER + 4, /* a worker synced a spool or deleted trimmed segments
                                        (rt_work_arg: its seglog_job_t) */
};

/* The forwarding state of a pair towards the master target. */
typedef enum {
    FWD_DOWN = 0, /* no PairOpen answered: no route, or not tried yet */
    FWD_OPENING,  /* PairOpen sent, waiting for the answer */
    FWD_OPEN,     /* sending from mt_durable + 1 */
    FWD_HOLD,     /* the mt refused (full, bad record): wait, then rewind */
} fwd_t;

static const char *const fwd_names[] = {"down", "opening", "open", "hold"};
/* the same as status "link" values of the path to the mt */
static const char *const fwd_link[] = {"down", "connecting", "up", "held"};

/* Where a peer role is: a link (and the role there), or an actor of this node. */
typedef struct inflight {
    uint64_t from, last; /* the batch's sequence range (from = first.seq - first.skip) */
    uint32_t wire;       /* payload bytes */
} inflight_t;

typedef struct ps_pair ps_pair_t;

/* A built batch on its way to the master target. While busy, a worker owns
 * raw->data and z->data (the compression job), and only it touches them. */
typedef struct zjob {
    ps_pair_t *p;
    bool busy;           /* submitted, completion not handled yet */
    bool queued;         /* in the pair's ring; false: free, or discarded while busy */
    bool ready;          /* may be sent: out/out_len are set */
    rt_buf_t *raw;       /* the record run, used bytes */
    rt_buf_t *z;         /* the LZ4 block, or NULL */
    uint32_t used;
    ss_WriteBatch wb;
    uint64_t from;       /* first record's seq - skip */
    int rc;              /* job: codec_compress's answer */
    size_t zlen;         /* job: bytes of the block */
} zjob_t;

typedef struct mark {
    uint64_t seq;  /* after this record ... */
    uint64_t cum;  /* ... this many record bytes were appended since open */
} mark_t;

struct ps_pair {
    ps_t *ps;
    char id[RT_NAME_MAX];
    char disk[RT_NAME_MAX];
    char group[RT_NAME_MAX];
    char dir[PS_PATH_MAX];     /* [ps] dir/PAIR */
    uint64_t disk_size;
    uint64_t epoch;
    uint64_t sync_done;        /* last seq of the last BATCH_SYNC_DONE batch (state file) */
    seglog_t *spool;
    uint64_t appended;         /* last seq appended */
    uint64_t durable;          /* last seq committed */
    bool dirty;                /* appended since the last commit began */
    seglog_job_t *cjob;        /* commit in flight (a worker syncs the spool), or NULL */
    seglog_job_t *rjob;        /* deletion of trimmed segments in flight, or NULL */
    /* agent side */
    hub_route_t agent;
    bool open_owed;            /* relay: the agent's PairOpen waits for the mt's answer */
    uint64_t open_corr;        /* its corr */
    bool ack_owed;             /* the agent is owed a WriteAck */
    bool said_full;            /* ACK_FULL was given: say when there is room again */
    uint64_t told_durable, told_mt;
    uint64_t told_credit;      /* WriteAck.credit of the last ack (beyond told_durable) */
    uint64_t grant_cum;        /* cum up to which that credit is honoured whatever the quota */
    uint64_t full_acks;
    /* master target side */
    fwd_t fwd;
    uint64_t corr;             /* generation of our PairOpen to the mt */
    uint64_t open_sent_us;     /* when it was sent (mono) */
    uint64_t ack_seen_us;      /* last ack progress, or the first batch in flight (mono) */
    uint64_t hold_until_us;    /* FWD_HOLD: until (mono) */
    bool verify_next;          /* re-read the spool with hash checks (after ACK_BAD_RECORD) */
    uint64_t mt_durable, consistent;
    bool mt_known;             /* mt_durable came from the mt in this run */
    uint64_t sent;             /* last seq built into a batch */
    seglog_iter_t *it;
    inflight_t fl[PS_INFLIGHT];
    unsigned fl_head, fl_n;
    uint64_t fl_bytes;
    zjob_t zj[PS_ZJOBS];       /* built batches (see zjob_t) */
    unsigned zq[PS_ZJOBS];     /* ring of zj indexes in sequence order: the head leaves first */
    unsigned zq_head, zq_n;
    uint64_t zq_bytes;         /* raw bytes of the ring's batches */
    double tokens;             /* bandwidth bucket, bytes */
    uint64_t refill_us;
    /* backlog accounting */
    mark_t mk[PS_MARKS];
    unsigned mk_head, mk_n;
    uint64_t cum, cum_mark, last_rec;
    uint64_t gran;
    /* counters */
    uint64_t raw_sent, wire_sent, batches_sent, batches_lz4, bad_acks, stalls;
};

struct ps {
    rt_actor_t actor;          /* first: "ps" */
    rt_node_t *node;
    hub_t *hub;
    const rt_conf_t *conf;
    char dir[PS_PATH_MAX];
    uint64_t quota;
    uint64_t bandwidth;        /* bytes/s per pair, 0 = unlimited */
    bool compress;
    bool relay;                /* [ps] cache: the agent hears mt_durable as durable */
    uint64_t seg_max;
    ps_pair_t *pairs[PS_PAIRS_MAX];
    unsigned npairs;
    rt_timer_t commit_t;
    bool commit_armed;
    rt_timer_t pump_t;
    rt_link_t *mt_links[PS_MT_LINKS];
    bool warned;               /* cache above PS_WARN_PCT */
    codec_work_t work;
};

static void pump(ps_pair_t *p);
static void fwd_open(ps_pair_t *p);
static void answer_open(ps_pair_t *p);

/* ---- helpers ------------------------------------------------------------------ */

static ps_pair_t *pair_find(const ps_t *me, const char *id)
{
    for (unsigned i = 0; i < me->npairs; i++)
        if (strcmp(me->pairs[i]->id, id) == 0)
            return me->pairs[i];
    return NULL;
}

/* what the agent may count as durable: in the spool, or already at the mt */
static uint64_t eff_durable(const ps_pair_t *p)
{
    return p->durable > p->mt_durable ? p->durable : p->mt_durable;
}

/* what the agent is told durable: in relay mode only what the mt has, as
 * the spool is not synced and the agent's log keeps the rest */
static uint64_t agent_durable(const ps_pair_t *p)
{
    return p->ps->relay ? p->mt_durable : eff_durable(p);
}

uint64_t ps_cache_bytes(const ps_t *me)
{
    uint64_t n = 0;
    for (unsigned i = 0; i < me->npairs; i++)
        if (me->pairs[i]->spool)
            n += seglog_bytes(me->pairs[i]->spool);
    return n;
}

bool ps_cache_warning(const ps_t *me)
{
    return me->warned;
}

/* ---- backlog accounting ------------------------------------------------------- */

/* every record appended (or found at open) passes here */
static void rec_seen(void *arg, const wrec_hdr_t *h, const uint8_t *stored,
                     const seglog_loc_t *loc)
{
    ps_pair_t *p = arg;
    (void)stored;
    (void)loc;
    p->cum += wrec_size(h);
    p->last_rec = h->seq;
    if (p->cum - p->cum_mark < p->gran)
        return;
    if (p->mk_n == PS_MARKS) {
        /* thin out: keep every other point, at twice the granularity */
        unsigned k = 0;
        for (unsigned i = 0; i < p->mk_n; i += 2)
            p->mk[(p->mk_head + k++) % PS_MARKS] = p->mk[(p->mk_head + i) % PS_MARKS];
        p->mk_n = k;
        p->gran *= 2;
    }
    p->mk[(p->mk_head + p->mk_n++) % PS_MARKS] = (mark_t){h->seq, p->cum};
    p->cum_mark = p->cum;
}

/* record bytes appended up to @seq, about (under by less than one granule) */
static uint64_t cum_at(const ps_pair_t *p, uint64_t seq)
{
    if (seq >= p->last_rec)
        return p->cum;
    uint64_t c = 0;
    for (unsigned i = 0; i < p->mk_n; i++) {
        const mark_t *k = &p->mk[(p->mk_head + i) % PS_MARKS];
        if (k->seq > seq)
            break;
        c = k->cum;
    }
    return c;
}

/* forget the points below @seq except the last one (cum_at still needs it) */
static void marks_drop(ps_pair_t *p, uint64_t seq)
{
    while (p->mk_n >= 2 && p->mk[(p->mk_head + 1) % PS_MARKS].seq <= seq) {
        p->mk_head = (p->mk_head + 1) % PS_MARKS;
        p->mk_n--;
    }
}

static uint64_t backlog(const ps_pair_t *p)
{
    return p->cum - cum_at(p, p->mt_durable);
}

/* ---- pairs: state file, open, close --------------------------------------------- */

static int state_save(ps_pair_t *p, char *err, size_t errlen)
{
    kvs_t kv = {0};
    kvs_set(&kv, "pair", p->id);
    kvs_set(&kv, "disk", p->disk[0] ? p->disk : "-");
    kvs_set(&kv, "group", p->group[0] ? p->group : "-");
    kvs_set_u64(&kv, "disk_size", p->disk_size);
    kvs_set_u64(&kv, "epoch", p->epoch);
    kvs_set_u64(&kv, "sync_done_seq", p->sync_done);
    return kvs_write(p->dir, PS_STATE_NAME, PS_STATE_MAGIC, 1, &kv, err, errlen);
}

static void copy_name(char *dst, const char *src)
{
    snprintf(dst, RT_NAME_MAX, "%s", src && strcmp(src, "-") != 0 ? src : "");
}

/* drop a built batch's buffers and free its slot (not while a worker has it) */
static void zjob_release(zjob_t *z)
{
    rt_buf_unref(z->raw);
    rt_buf_unref(z->z);
    z->raw = z->z = NULL;
    z->queued = z->ready = false;
}

/* after rt_actor_fini (no job runs any more) or with nothing submitted */
static void pair_close(ps_pair_t *p)
{
    if (!p)
        return;
    seglog_iter_free(p->it);
    for (unsigned i = 0; i < PS_ZJOBS; i++)
        zjob_release(&p->zj[i]);
    seglog_close(p->spool);
    seglog_job_free(p->cjob); /* never saw their end: dropped by rt_actor_fini */
    seglog_job_free(p->rjob);
    free(p);
}

/* open the spool of @p (p->dir set); it is created when @create */
static int spool_open(ps_pair_t *p, bool create, char *err, size_t errlen)
{
    char path[PS_PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/%s", p->dir, PS_SPOOL_NAME);
    p->cum = p->cum_mark = p->last_rec = 0;
    p->grant_cum = 0; /* a credit told before is void: the agent hears again */
    p->mk_head = p->mk_n = 0;
    p->gran = p->ps->quota / 512 > (256u << 10) ? p->ps->quota / 512 : (256u << 10);
    seglog_conf_t lc = {.seg_max = p->ps->seg_max, .first_seq = 1, .create = create,
                        .defer_unlink = true, .no_sync = p->ps->relay,
                        .on_rec = rec_seen, .arg = p};
    /* relay: nothing in an unsynced spool is needed after a crash (the
     * agent's log holds every record the mt lacks), so one that does not
     * recover is started afresh by seglog (no_sync with create) */
    lc.create = create || p->ps->relay;
    p->spool = seglog_open(path, &lc, err, errlen);
    if (!p->spool)
        return RT_ERR;
    p->appended = seglog_last_seq(p->spool);
    p->durable = seglog_durable_seq(p->spool);
    p->dirty = false;
    const char *why = "";
    uint64_t cut = seglog_recovered(p->spool, &why);
    if (cut)
        rt_log(RT_LOG_WARN, "ps: pair %s: spool recovery dropped %" PRIu64 " bytes (%s)",
               p->id, cut, why);
    return RT_OK;
}

static ps_pair_t *pair_alloc(ps_t *me, const char *id)
{
    ps_pair_t *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->ps = me;
    for (unsigned i = 0; i < PS_ZJOBS; i++)
        p->zj[i].p = p;
    snprintf(p->id, sizeof p->id, "%s", id);
    if ((size_t)snprintf(p->dir, sizeof p->dir, "%s/%s", me->dir, id) >= sizeof p->dir) {
        free(p);
        return NULL;
    }
    p->tokens = 0;
    p->refill_us = rt_mono_us();
    return p;
}

/* a pair found in the folder at start */
static int pair_load(ps_t *me, const char *id, char *err, size_t errlen)
{
    kvs_t kv;
    ps_pair_t *p = pair_alloc(me, id);
    if (!p)
        return rt_errf(err, errlen, "ps: out of memory");
    if (kvs_read(p->dir, PS_STATE_NAME, PS_STATE_MAGIC, 1, &kv, err, errlen) != RT_OK) {
        free(p);
        return errno == ENOENT ? RT_OK : RT_ERR; /* an unfinished creation: made again on use */
    }
    copy_name(p->disk, kvs_get(&kv, "disk"));
    copy_name(p->group, kvs_get(&kv, "group"));
    p->disk_size = kvs_get_u64(&kv, "disk_size", 0);
    p->epoch = kvs_get_u64(&kv, "epoch", 0);
    p->sync_done = kvs_get_u64(&kv, "sync_done_seq", 0);
    if (spool_open(p, false, err, errlen) != RT_OK) {
        pair_close(p);
        return RT_ERR;
    }
    me->pairs[me->npairs++] = p;
    rt_log(RT_LOG_INFO, "ps: pair %s: spool holds %" PRIu64 "..%" PRIu64 " (%" PRIu64 " bytes)",
           id, seglog_first_seq(p->spool), p->durable, seglog_bytes(p->spool));
    return RT_OK;
}

/* a pair seen first in an agent's PairOpen */
static ps_pair_t *pair_create(ps_t *me, const ss_PairOpen *po, char *err, size_t errlen)
{
    if (!rt_name_ok(po->pair)) {
        rt_errf(err, errlen, "bad pair name '%s'", po->pair);
        return NULL;
    }
    if (me->npairs == PS_PAIRS_MAX) {
        rt_errf(err, errlen, "more than %u pairs", PS_PAIRS_MAX);
        return NULL;
    }
    ps_pair_t *p = pair_alloc(me, po->pair);
    if (!p) {
        rt_errf(err, errlen, "out of memory");
        return NULL;
    }
    copy_name(p->disk, po->disk);
    copy_name(p->group, po->group);
    p->disk_size = po->disk_size;
    p->epoch = po->epoch;
    if (mkdir(p->dir, 0750) != 0 && errno != EEXIST) {
        rt_errf(err, errlen, "%s: create: %s", p->dir, strerror(errno));
        goto fail;
    }
    /* the spool first, the state file last: a folder without it is unfinished */
    if (spool_open(p, true, err, errlen) != RT_OK || state_save(p, err, errlen) != RT_OK)
        goto fail;
    me->pairs[me->npairs++] = p;
    rt_log(RT_LOG_INFO, "ps: pair %s created (disk %s, %" PRIu64 " bytes)", p->id, p->disk,
           p->disk_size);
    return p;
fail:
    pair_close(p);
    return NULL;
}

/* ---- credit to the agent (flow control) ------------------------------------------ */

static bool room_back(const ps_pair_t *p);

/* the cache's room is shared by the pairs whose agent is connected */
static uint64_t agents_now(const ps_t *me)
{
    uint64_t n = 0;
    for (unsigned i = 0; i < me->npairs; i++)
        if (me->pairs[i]->agent.link || me->pairs[i]->agent.actor)
            n++;
    return n ? n : 1;
}

/* the growth of a pair's credit worth an ack of its own (see ack_agent) */
static uint64_t credit_step(const ps_t *me)
{
    uint64_t s = me->quota / 16;
    return s < (64u << 10) ? (64u << 10) : s > PS_BATCH_RAW ? PS_BATCH_RAW : s;
}

/* WriteAck.credit for @p: record bytes its agent may send beyond the
 * durable seq of the ack. Nothing while the agent is held (ACK_FULL, until
 * room_back); else the pair's share of the room left under the quota, less
 * the headers of the segments that room will take; and at least
 * CODEC_CREDIT_MIN when nothing of the pair is pending, as a batch is then
 * taken whatever the cache holds (on_write_batch), so that an agent never
 * waits for room that only its own next batch would free. */
static uint64_t credit_of(const ps_pair_t *p)
{
    const ps_t *me = p->ps;
    if (p->said_full && !room_back(p))
        return 0;
    uint64_t used = ps_cache_bytes(me);
    uint64_t room = me->quota > used ? me->quota - used : 0;
    uint64_t hdrs = (room / (me->seg_max ? me->seg_max : 1) + 2) * SEGLOG_HDR_SIZE;
    room = room > hdrs ? (room - hdrs) / agents_now(me) : 0;
    bool pending = backlog(p) > 0 || p->appended > p->mt_durable;
    if (!pending && room < CODEC_CREDIT_MIN)
        room = CODEC_CREDIT_MIN;
    return room;
}

/* @credit went to the agent: batches within it are taken even past the
 * quota (by the segment headers, the floor of credit_of, or when pairs
 * share a full cache), so that what the agent was promised is never refused
 * and sent again. A later, smaller credit does not take back an earlier
 * one: the agent may have sent on it already. */
static void credit_told(ps_pair_t *p, uint64_t credit)
{
    p->told_credit = credit;
    if (p->cum + credit > p->grant_cum)
        p->grant_cum = p->cum + credit;
}

/* ---- acknowledgements to the agent --------------------------------------------- */

static int ack_to(ps_t *me, ps_pair_t *p, const hub_route_t *r, uint32_t status, const char *reason)
{
    ss_Envelope env = ss_Envelope_init_zero;
    env.which_body = ss_Envelope_write_ack_tag;
    ss_WriteAck *a = &env.body.write_ack;
    snprintf(a->pair, sizeof a->pair, "%s", p->id);
    a->durable_seq = agent_durable(p);
    a->mt_durable_seq = p->mt_durable;
    a->consistent_seq = p->consistent;
    a->status = status;
    a->has_credit = true;
    a->credit = credit_of(p);
    if (reason)
        snprintf(a->reason, sizeof a->reason, "%s", reason);
    int rc = hub_route_send(r, &me->actor, RT_ROLE_PS, &env);
    if (rc == RT_OK) {
        p->told_durable = a->durable_seq;
        p->told_mt = a->mt_durable_seq;
        credit_told(p, a->credit);
    }
    return rc;
}

/* an agent held with ACK_FULL is let go once an eighth of the quota is free
 * again, so that it does not bounce on the limit batch after batch; or once
 * the master target has all of its pair's spool: what the cache still holds
 * then is at most the spool's active segment, which only a later append can
 * free (seglog_trim keeps it), so waiting for room would wait forever */
static bool room_back(const ps_pair_t *p)
{
    const ps_t *me = p->ps;
    return ps_cache_bytes(me) + me->quota / 8 <= me->quota ||
           (backlog(p) == 0 && p->appended <= p->mt_durable);
}

/* the owed or unsolicited ack to the agent of @p, if it is due: ACK_OK, or
 * ACK_FULL (with the durable seqs) while the agent is held */
static void ack_agent(ps_pair_t *p)
{
    ps_t *me = p->ps;
    if (!p->agent.link && !p->agent.actor) {
        p->ack_owed = false; /* the agent learns it with its next PairOpen */
        return;
    }
    if (p->open_owed)
        return; /* relay: acks follow the PairOpen answer */
    bool release = p->said_full && room_back(p);
    bool news = agent_durable(p) > p->told_durable || p->mt_durable > p->told_mt || release ||
                credit_of(p) >= p->told_credit + credit_step(me);
    if (!p->ack_owed && !news)
        return;
    bool held = p->said_full && !release;
    int rc = ack_to(me, p, &p->agent, held ? ss_AckStatus_ACK_FULL : ss_AckStatus_ACK_OK,
                    held ? "process server cache full" : NULL);
    if (rc == RT_AGAIN) {
        p->ack_owed = true; /* again on WRITABLE, RESUME or cron */
        return;
    }
    if (rc == RT_ERR)
        p->agent = (hub_route_t){NULL, NULL, 0};
    p->ack_owed = false;
    if (release)
        p->said_full = false;
}

/* tell held agents when there is room again, and waiting ones of more credit
 * (room freed by another pair's trim) */
static void release_all(ps_t *me)
{
    for (unsigned i = 0; i < me->npairs; i++)
        ack_agent(me->pairs[i]);
}

/* ---- group commit --------------------------------------------------------------- */

static void arm_commit(ps_t *me)
{
    if (!me->commit_armed) {
        me->commit_armed = true;
        rt_timer_start(&me->commit_t, 0.0, 0.0);
    }
}

static void cache_check(ps_t *me)
{
    uint64_t used = ps_cache_bytes(me);
    if (!me->warned && used * 100 >= me->quota * PS_WARN_PCT) {
        me->warned = true;
        rt_log(RT_LOG_WARN,
               "ps: cache at %" PRIu64 " of %" PRIu64 " bytes (%" PRIu64
               " %%): the master target is not keeping up; at 100 %% agents are held",
               used, me->quota, used * 100 / (me->quota ? me->quota : 1));
    } else if (me->warned && used * 100 < me->quota * (PS_WARN_PCT - 5)) {
        me->warned = false;
        rt_log(RT_LOG_INFO, "ps: cache back under %u %% (%" PRIu64 " bytes)", PS_WARN_PCT - 5,
               used);
    }
}

/* reopen a spool after a failed write or sync: what it recovers is the truth */
static void spool_reopen(ps_pair_t *p)
{
    char err[256];
    seglog_iter_free(p->it);
    p->it = NULL;
    seglog_close(p->spool);
    p->spool = NULL;
    if (spool_open(p, true, err, sizeof err) != RT_OK) {
        rt_log(RT_LOG_ERR, "ps: pair %s: cannot reopen its spool: %s", p->id, err);
        return;
    }
    if (p->fwd != FWD_DOWN)
        p->fwd = FWD_DOWN; /* rewind from the mt's durable seq at the next open */
}

/* the end of a commit job, on the loop: durable rises to what it covered */
static void commit_done(ps_pair_t *p, seglog_job_t *j)
{
    char err[256];
    uint64_t d = 0;
    if (seglog_commit_end(p->spool, j, &d, err, sizeof err) != RT_OK) {
        rt_log(RT_LOG_ERR, "ps: pair %s: %s; reopening the spool", p->id, err);
        spool_reopen(p);
        return;
    }
    if (p->spool)
        p->durable = d;
}

/* start the commit of what @p appended, unless one is in flight (its end
 * starts the next); the fdatasync runs on a worker */
static void commit_pair(ps_pair_t *p)
{
    char err[256];
    seglog_job_t *j = NULL;
    if (!p->dirty || !p->spool || p->cjob)
        return;
    p->dirty = false;
    int rc = seglog_commit_begin(p->spool, &j, err, sizeof err);
    if (rc == RT_ERR) {
        rt_log(RT_LOG_ERR, "ps: pair %s: %s; reopening the spool", p->id, err);
        spool_reopen(p);
        return;
    }
    if (rc == RT_AGAIN) {
        p->dirty = true; /* (not with cjob NULL; kept for safety) */
        return;
    }
    if (!j) {
        p->durable = seglog_durable_seq(p->spool); /* durable already */
        return;
    }
    p->cjob = j;
    if (rt_work_submit(&p->ps->actor, seglog_job_run, j, PS_SIG_SYNCED, 0) != RT_OK) {
        p->cjob = NULL; /* the workers' queue is full: sync here */
        seglog_job_run(j);
        commit_done(p, j);
    }
}

/* delete the spool's trimmed segments on a worker, one job at a time */
static void reap(ps_pair_t *p)
{
    char err[256];
    seglog_job_t *j = NULL;
    if (!p->spool || p->rjob || !seglog_reap_pending(p->spool))
        return;
    int rc = seglog_reap_begin(p->spool, &j, err, sizeof err);
    if (rc == RT_ERR)
        rt_log(RT_LOG_WARN, "ps: pair %s: %s", p->id, err); /* the cron tries again */
    if (!j)
        return;
    p->rjob = j;
    if (rt_work_submit(&p->ps->actor, seglog_job_run, j, PS_SIG_SYNCED, 0) != RT_OK) {
        p->rjob = NULL; /* the workers' queue is full: delete here */
        seglog_job_run(j);
        if (seglog_reap_end(p->spool, j, err, sizeof err) != RT_OK)
            rt_log(RT_LOG_WARN, "ps: pair %s: %s", p->id, err);
    }
}

/* a commit or reap job is back */
static void on_synced(ps_t *me, const rt_msg_t *m)
{
    char err[256];
    seglog_job_t *j = rt_work_arg(m);
    if (!j)
        return;
    for (unsigned i = 0; i < me->npairs; i++) {
        ps_pair_t *p = me->pairs[i];
        if (p->cjob == j) {
            p->cjob = NULL;
            commit_done(p, j);
            commit_pair(p); /* what arrived during the sync */
            ack_agent(p);
            pump(p);
            cache_check(me);
            return;
        }
        if (p->rjob == j) {
            p->rjob = NULL;
            if (seglog_reap_end(p->spool, j, err, sizeof err) != RT_OK)
                rt_log(RT_LOG_WARN, "ps: pair %s: %s", p->id, err);
            reap(p); /* names trimmed meanwhile */
            return;
        }
    }
    seglog_job_free(j); /* (every job is a pair's) */
}

/* on RT_SIG_STOP: commit every spool here, on the loop (a job still on a
 * worker syncs the same file: harmless), and ack what that made durable */
static void commit_now(ps_t *me)
{
    char err[256];
    me->commit_armed = false;
    for (unsigned i = 0; i < me->npairs; i++) {
        ps_pair_t *p = me->pairs[i];
        uint64_t d = 0;
        if (!p->spool)
            continue;
        p->dirty = false;
        if (seglog_commit(p->spool, &d, err, sizeof err) != RT_OK) {
            rt_log(RT_LOG_ERR, "ps: pair %s: %s; reopening the spool", p->id, err);
            spool_reopen(p);
            continue;
        }
        p->durable = d;
        ack_agent(p);
    }
}

static void commit_all(ps_t *me)
{
    me->commit_armed = false;
    for (unsigned i = 0; i < me->npairs; i++)
        commit_pair(me->pairs[i]);
    for (unsigned i = 0; i < me->npairs; i++) {
        ps_pair_t *p = me->pairs[i];
        if (!p->cjob) /* else the job's end acks, with what it made durable */
            ack_agent(p);
        pump(p);
    }
    cache_check(me);
}

/* ---- from the agent --------------------------------------------------------------- */

static void on_pair_open(ps_t *me, const rt_msg_t *m, const ss_PairOpen *po)
{
    char err[256];
    hub_route_t r = hub_route_of(m);
    ps_pair_t *p = pair_find(me, po->pair);
    if (!p && !(p = pair_create(me, po, err, sizeof err))) {
        rt_log(RT_LOG_ERR, "ps: PairOpen for pair '%s': %s", po->pair, err);
        return;
    }
    if (po->disk_size && p->disk_size && po->disk_size != p->disk_size)
        rt_log(RT_LOG_WARN, "ps: pair %s: the agent says %" PRIu64 " bytes, the spool has %" PRIu64,
               p->id, po->disk_size, p->disk_size);
    if (po->epoch > p->epoch) {
        p->epoch = po->epoch;
        if (state_save(p, err, sizeof err) != RT_OK)
            rt_log(RT_LOG_ERR, "ps: pair %s: %s", p->id, err);
    }
    p->agent = r;
    if (po->last_seq < agent_durable(p))
        rt_log(RT_LOG_WARN,
               "ps: pair %s: the agent captured up to %" PRIu64 " but %" PRIu64
               " is durable here (the agent lost its log?)",
               p->id, po->last_seq, agent_durable(p));
    p->open_corr = ((const ss_Envelope *)m->data)->corr;
    p->open_owed = true;
    if (!me->relay || p->mt_known)
        answer_open(p);
    /* relay: what the agent may drop is what the mt has, and only the mt
     * knows it after a restart here: its PairOpen answer sends ours */
    if (p->fwd == FWD_DOWN)
        fwd_open(p);
}

/* the answer to the agent's PairOpen (p->open_corr): where to resume */
static void answer_open(ps_pair_t *p)
{
    ps_t *me = p->ps;
    if (!p->open_owed || (!p->agent.link && !p->agent.actor))
        return;
    p->open_owed = false;
    ss_Envelope env = ss_Envelope_init_zero;
    env.which_body = ss_Envelope_pair_open_tag;
    env.corr = p->open_corr;
    ss_PairOpen *a = &env.body.pair_open;
    snprintf(a->pair, sizeof a->pair, "%s", p->id);
    snprintf(a->disk, sizeof a->disk, "%s", p->disk);
    snprintf(a->group, sizeof a->group, "%s", p->group);
    a->disk_size = p->disk_size;
    a->last_seq = p->appended;
    a->durable_seq = agent_durable(p);
    a->mt_durable_seq = p->mt_durable;
    a->consistent_seq = p->consistent;
    a->epoch = p->epoch;
    a->reply = true;
    a->has_credit = true;
    a->credit = credit_of(p);
    if (hub_route_send(&p->agent, &me->actor, RT_ROLE_PS, &env) == RT_OK) {
        p->told_durable = a->durable_seq;
        p->told_mt = a->mt_durable_seq;
        credit_told(p, a->credit);
    }
}

/* the byte offset in the run @recs (@len) of the first record with seq > @after */
static size_t skip_upto(const uint8_t *recs, size_t len, uint64_t after)
{
    wrec_cursor_t c;
    wrec_hdr_t h;
    const uint8_t *st;
    wrec_cursor_init(&c, recs, len);
    size_t pos = 0;
    while (wrec_cursor_next(&c, &h, &st, NULL) == RT_OK && h.seq <= after)
        pos = c.pos;
    return pos;
}

static void on_write_batch(ps_t *me, const rt_msg_t *m, const ss_WriteBatch *wb,
                           uint32_t payload_len)
{
    char err[256], why[192];
    hub_route_t r = hub_route_of(m);
    ps_pair_t *p = pair_find(me, wb->pair);
    if (!p || !p->spool) {
        ss_Envelope env = ss_Envelope_init_zero;
        env.which_body = ss_Envelope_write_ack_tag;
        snprintf(env.body.write_ack.pair, sizeof env.body.write_ack.pair, "%s", wb->pair);
        env.body.write_ack.status = ss_AckStatus_ACK_UNKNOWN_PAIR;
        snprintf(env.body.write_ack.reason, sizeof env.body.write_ack.reason,
                 p ? "spool unavailable" : "no PairOpen for this pair");
        hub_route_send(&r, &me->actor, RT_ROLE_PS, &env);
        return;
    }
    p->agent = r;
    const uint8_t *payload = m->buf ? m->buf->data : NULL;
    if (payload_len > (m->buf ? m->buf->cap : 0)) {
        rt_log(RT_LOG_ERR, "ps: pair %s: batch payload of %u bytes missing", p->id, payload_len);
        return;
    }
    codec_batch_t b = {wb->first_seq, wb->last_seq, wb->count, wb->flags, wb->raw_len};
    codec_run_t run;
    if (codec_batch_open(&b, payload, payload_len, p->disk_size, &me->work, &run, why,
                         sizeof why) != RT_OK) {
        rt_log(RT_LOG_WARN, "ps: pair %s: batch %" PRIu64 "..%" PRIu64 " refused: %s", p->id,
               wb->first_seq, wb->last_seq, why);
        ack_to(me, p, &r, ss_AckStatus_ACK_BAD_RECORD, why);
        return;
    }
    if (p->said_full) {
        if (!room_back(p)) {
            /* held: every batch is refused until the agent is told there is room */
            p->full_acks++;
            ack_to(me, p, &r, ss_AckStatus_ACK_FULL, "process server cache full");
            return;
        }
        p->said_full = false;
    }
    if (wb->epoch > p->epoch)
        p->epoch = wb->epoch;
    bool sync_done = (wb->flags & CODEC_BATCH_SYNC_DONE) && run.last_seq > p->sync_done;
    if (run.last_seq <= p->appended && !sync_done) {
        /* a resend of what we hold: acknowledged by the commit that covers it */
        p->ack_owed = true;
        arm_commit(me);
        return;
    }
    if (run.from_seq > p->appended + 1) {
        if (p->appended <= p->mt_durable && p->mt_known && run.from_seq == p->mt_durable + 1 &&
            !p->dirty) {
            /* the spool lost what the mt already has (a new disk here): start it
             * again where the mt is */
            if (seglog_reset(p->spool, run.from_seq, err, sizeof err) != RT_OK) {
                rt_log(RT_LOG_ERR, "ps: pair %s: %s", p->id, err);
                spool_reopen(p);
                ack_to(me, p, &r, ss_AckStatus_ACK_FULL, "spool unavailable");
                return;
            }
            seglog_iter_free(p->it);
            p->it = NULL;
            p->appended = p->durable = run.from_seq - 1;
            if (p->fwd != FWD_DOWN)
                fwd_open(p);
        } else {
            /* a gap: say where we are, the agent resends from there */
            ack_to(me, p, &r, ss_AckStatus_ACK_OK, NULL);
            return;
        }
    }
    size_t skip = run.from_seq <= p->appended ? skip_upto(run.recs, run.len, p->appended) : 0;
    size_t add = run.len - skip;
    if (add > 0) {
        uint64_t used = ps_cache_bytes(me);
        bool pending = backlog(p) > 0 || p->appended > p->mt_durable;
        if (used + add > me->quota && pending && p->cum + add > p->grant_cum) {
            p->full_acks++;
            if (!p->said_full)
                rt_log(RT_LOG_WARN,
                       "ps: pair %s: cache full (%" PRIu64 " + %zu > %" PRIu64
                       " bytes): holding the agent",
                       p->id, used, add, me->quota);
            p->said_full = true;
            ack_to(me, p, &r, ss_AckStatus_ACK_FULL, "process server cache full");
            return;
        }
        if (seglog_append(p->spool, run.recs + skip, add, rec_seen, p, err, sizeof err) !=
            RT_OK) {
            rt_log(RT_LOG_ERR, "ps: pair %s: %s", p->id, err);
            p->appended = seglog_last_seq(p->spool);
            p->dirty = true;
            arm_commit(me);
            p->said_full = true;
            ack_to(me, p, &r, ss_AckStatus_ACK_FULL, "spool write failed");
            return;
        }
        p->appended = seglog_last_seq(p->spool);
        p->dirty = true;
    }
    if (sync_done) {
        /* durable before the ack that covers the batch: the agent will not say it again */
        p->sync_done = run.last_seq;
        if (state_save(p, err, sizeof err) != RT_OK)
            rt_log(RT_LOG_ERR, "ps: pair %s: end of sync pass at %" PRIu64 " not recorded: %s",
                   p->id, run.last_seq, err);
    }
    p->ack_owed = true;
    arm_commit(me);
}

/* ---- towards the master target ------------------------------------------------------ */

static void fl_clear(ps_pair_t *p)
{
    p->fl_head = p->fl_n = 0;
    p->fl_bytes = 0;
    /* built, not sent: gone; one still on a worker is released when it is back */
    for (; p->zq_n > 0; p->zq_n--, p->zq_head = (p->zq_head + 1) % PS_ZJOBS) {
        zjob_t *z = &p->zj[p->zq[p->zq_head]];
        z->queued = false;
        if (!z->busy)
            zjob_release(z);
    }
    p->zq_bytes = 0;
}

/* forward from @d + 1 again. @return RT_ERR when the spool cannot: in
 * particular when it no longer holds d + 1 (the master target lost writes it
 * had acknowledged; only a resync of the pair repairs that) */
static int rewind_to(ps_pair_t *p, uint64_t d)
{
    char err[256];
    fl_clear(p);
    seglog_iter_free(p->it);
    p->it = NULL;
    p->sent = d;
    if (!p->spool)
        return RT_ERR;
    if (d + 1 < seglog_first_seq(p->spool)) {
        rt_log(RT_LOG_ERR,
               "ps: pair %s: the master target needs seq %" PRIu64
               " but this cache starts at %" PRIu64 ": the pair needs a resync",
               p->id, d + 1, seglog_first_seq(p->spool));
        return RT_ERR;
    }
    p->it = seglog_iter_new(p->spool, d + 1, p->verify_next, err, sizeof err);
    if (!p->it) {
        rt_log(RT_LOG_ERR, "ps: pair %s: %s", p->id, err);
        return RT_ERR;
    }
    return RT_OK;
}

static void fwd_open(ps_pair_t *p)
{
    ps_t *me = p->ps;
    if (!p->spool)
        return;
    ss_Envelope env = ss_Envelope_init_zero;
    env.which_body = ss_Envelope_pair_open_tag;
    env.corr = ++p->corr;
    env.to_role = RT_ROLE_MT;
    ss_PairOpen *o = &env.body.pair_open;
    snprintf(o->pair, sizeof o->pair, "%s", p->id);
    snprintf(o->disk, sizeof o->disk, "%s", p->disk);
    snprintf(o->group, sizeof o->group, "%s", p->group);
    o->disk_size = p->disk_size;
    o->last_seq = p->appended;
    o->durable_seq = p->durable;
    o->epoch = p->epoch;
    fl_clear(p);
    int rc = hub_send_role(me->hub, &me->actor, RT_ROLE_MT, &env, NULL, 0);
    p->open_sent_us = rt_mono_us();
    p->fwd = rc == RT_OK ? FWD_OPENING : FWD_DOWN; /* RT_ERR: no route; RT_AGAIN: later */
}

static void fwd_down(ps_pair_t *p)
{
    fl_clear(p);
    p->fwd = FWD_DOWN;
}

static void hold(ps_pair_t *p, double seconds)
{
    fl_clear(p);
    p->fwd = FWD_HOLD;
    p->hold_until_us = rt_mono_us() + (uint64_t)(seconds * 1e6);
}

static void on_mt_open_reply(ps_t *me, const rt_msg_t *m, const ss_PairOpen *po)
{
    char err[256];
    ps_pair_t *p = pair_find(me, po->pair);
    const ss_Envelope *env = (const ss_Envelope *)m->data;
    if (!p || p->fwd != FWD_OPENING || env->corr != p->corr)
        return; /* stale */
    if (p->mt_known && po->durable_seq < p->mt_durable)
        rt_log(RT_LOG_WARN,
               "ps: pair %s: the master target went back from %" PRIu64 " to %" PRIu64
               " durable; resending",
               p->id, p->mt_durable, po->durable_seq);
    p->mt_durable = po->durable_seq;
    p->mt_known = true;
    if (po->consistent_seq > p->consistent)
        p->consistent = po->consistent_seq;
    marks_drop(p, p->mt_durable);
    if (p->mt_durable > p->appended && !p->dirty) {
        /* the mt is ahead of this spool (a spool lost here): continue from the mt */
        if (seglog_records(p->spool) == 0 || seglog_last_seq(p->spool) < p->mt_durable) {
            seglog_iter_free(p->it);
            p->it = NULL;
            if (seglog_reset(p->spool, p->mt_durable + 1, err, sizeof err) == RT_OK) {
                p->appended = p->durable = p->mt_durable;
                rt_log(RT_LOG_WARN, "ps: pair %s: spool restarted at %" PRIu64 " (the mt's)",
                       p->id, p->mt_durable + 1);
            } else {
                rt_log(RT_LOG_ERR, "ps: pair %s: %s", p->id, err);
            }
        }
    } else if (p->mt_durable >= seglog_first_seq(p->spool) &&
               seglog_trim(p->spool, p->mt_durable + 1, err, sizeof err) != RT_OK) {
        rt_log(RT_LOG_WARN, "ps: pair %s: trim: %s", p->id, err);
    }
    reap(p);
    if (rewind_to(p, p->mt_durable) != RT_OK) {
        hold(p, PS_HOLD_BAD);
        return;
    }
    p->fwd = FWD_OPEN;
    p->verify_next = false;
    answer_open(p);
    ack_agent(p);
    pump(p);
    cache_check(me);
}

static void on_mt_ack(ps_t *me, const ss_WriteAck *a)
{
    char err[256];
    ps_pair_t *p = pair_find(me, a->pair);
    if (!p || p->fwd == FWD_DOWN || p->fwd == FWD_OPENING)
        return; /* nothing in flight: the PairOpen answer will say where the mt is */
    switch (a->status) {
    case ss_AckStatus_ACK_OK:
        break;
    case ss_AckStatus_ACK_FULL:
        if (p->fwd != FWD_HOLD)
            rt_log(RT_LOG_WARN, "ps: pair %s: the master target is full (%s): holding", p->id,
                   a->reason);
        hold(p, PS_HOLD_FULL);
        return;
    case ss_AckStatus_ACK_BAD_RECORD:
        p->bad_acks++;
        rt_log(RT_LOG_ERR,
               "ps: pair %s: the master target refused a batch after %" PRIu64
               " (%s); re-reading the spool with checks",
               p->id, a->durable_seq, a->reason);
        p->verify_next = true;
        hold(p, PS_HOLD_BAD);
        return;
    case ss_AckStatus_ACK_UNKNOWN_PAIR:
        fwd_open(p);
        return;
    default:
        rt_log(RT_LOG_WARN, "ps: pair %s: ack with unknown status %u", p->id,
               (unsigned)a->status);
        return;
    }
    if (a->consistent_seq > p->consistent)
        p->consistent = a->consistent_seq;
    if (a->durable_seq > p->mt_durable) {
        p->mt_durable = a->durable_seq;
        p->ack_seen_us = rt_mono_us();
        while (p->fl_n > 0 && p->fl[p->fl_head].last <= p->mt_durable) {
            p->fl_bytes -= p->fl[p->fl_head].wire;
            p->fl_head = (p->fl_head + 1) % PS_INFLIGHT;
            p->fl_n--;
        }
        marks_drop(p, p->mt_durable);
        if (seglog_trim(p->spool, p->mt_durable + 1, err, sizeof err) != RT_OK)
            rt_log(RT_LOG_WARN, "ps: pair %s: trim: %s", p->id, err);
        reap(p);
    }
    if (p->fl_n > 0 && p->fl[p->fl_head].from > p->mt_durable + 1) {
        /* the mt skipped something we sent: resend from where it is */
        rt_log(RT_LOG_WARN, "ps: pair %s: the master target is at %" PRIu64 ", resending", p->id,
               p->mt_durable);
        if (rewind_to(p, p->mt_durable) != RT_OK)
            hold(p, PS_HOLD_BAD);
    }
    ack_agent(p);
    release_all(me);
    pump(p);
    cache_check(me);
}

/* try to hand the batch at the head of the ring to the route; @return
 * RT_OK when it was taken (and left the ring), RT_AGAIN, or RT_ERR */
static int send_head(ps_pair_t *p)
{
    ps_t *me = p->ps;
    zjob_t *z = &p->zj[p->zq[p->zq_head]];
    rt_buf_t *out = z->z ? z->z : z->raw;
    ss_Envelope env = ss_Envelope_init_zero;
    env.which_body = ss_Envelope_write_batch_tag;
    env.to_role = RT_ROLE_MT;
    env.corr = p->corr;
    env.body.write_batch = z->wb;
    env.body.write_batch.sent_us = rt_now_us();
    int rc = hub_send_role(me->hub, &me->actor, RT_ROLE_MT, &env, out, out->len);
    if (rc == RT_AGAIN)
        return RT_AGAIN;
    if (rc != RT_OK) {
        fwd_down(p); /* no route: wait for a link to the mt */
        return RT_ERR;
    }
    if (p->fl_n == 0)
        p->ack_seen_us = rt_mono_us(); /* the stall clock starts with the first in flight */
    inflight_t *f = &p->fl[(p->fl_head + p->fl_n++) % PS_INFLIGHT];
    *f = (inflight_t){z->from, z->wb.last_seq, out->len};
    p->fl_bytes += out->len;
    p->raw_sent += z->wb.raw_len;
    p->wire_sent += out->len;
    p->batches_sent++;
    if (z->wb.flags & CODEC_BATCH_LZ4)
        p->batches_lz4++;
    p->zq_bytes -= z->used;
    p->zq_head = (p->zq_head + 1) % PS_ZJOBS;
    p->zq_n--;
    zjob_release(z);
    return RT_OK;
}

static uint32_t batch_target(const ps_t *me)
{
    if (!me->bandwidth)
        return PS_BATCH_RAW;
    uint64_t t = me->bandwidth / 8;
    if (t < (64u << 10))
        t = 64u << 10;
    return t < PS_BATCH_RAW ? (uint32_t)t : PS_BATCH_RAW;
}

/* the bandwidth bucket: true if @p may send now, else the pump timer is set */
static bool tokens_ok(ps_pair_t *p)
{
    ps_t *me = p->ps;
    if (!me->bandwidth)
        return true;
    uint64_t now = rt_mono_us();
    double burst = (double)me->bandwidth / 4;
    if (burst < (double)batch_target(me))
        burst = (double)batch_target(me);
    p->tokens += (double)me->bandwidth * (double)(now - p->refill_us) / 1e6;
    if (p->tokens > burst)
        p->tokens = burst;
    p->refill_us = now;
    if (p->tokens > 0)
        return true;
    double wait = (-p->tokens + 1) / (double)me->bandwidth;
    if (!rt_timer_active(&me->pump_t))
        rt_timer_start(&me->pump_t, wait < 0.001 ? 0.001 : wait, 0);
    return false;
}

/* the compression job, on a worker: only z's buffers' bytes */
static void zjob_run(void *arg)
{
    zjob_t *z = arg;
    z->zlen = 0;
    z->rc = codec_compress(z->raw->data, z->used, z->z->data, z->z->cap, &z->zlen);
}

/* the job's result, on the loop: send the block, or the run when LZ4 did not pay */
static void zjob_done(zjob_t *z)
{
    ps_pair_t *p = z->p;
    if (z->rc == RT_OK) {
        z->z->len = (uint32_t)z->zlen;
        rt_buf_unref(z->raw);
        z->raw = NULL;
        z->wb.flags |= CODEC_BATCH_LZ4;
        if (p->ps->bandwidth) /* build() charged the raw size */
            p->tokens += (double)z->used - (double)z->zlen;
    } else {
        rt_buf_unref(z->z); /* incompressible: send it raw */
        z->z = NULL;
    }
    z->ready = true;
}

static void on_zipped(ps_t *me, const rt_msg_t *m)
{
    zjob_t *z = rt_work_arg(m);
    (void)me;
    if (!z || !z->busy)
        return;
    z->busy = false;
    if (!z->queued) {
        zjob_release(z); /* discarded by a rewind while it was on the worker */
    } else {
        zjob_done(z);
    }
    pump(z->p);
}

/* build the next batch from the spool into the ring (compressing it on a
 * worker when [ps] compress); @return RT_OK, SEGLOG_END (nothing to send),
 * RT_AGAIN (no buffer or slot: RESUME or a completion), RT_ERR (read failed) */
static int build(ps_pair_t *p)
{
    ps_t *me = p->ps;
    char err[256];
    uint64_t max = p->durable;
    if (p->sync_done > p->sent && p->sync_done < max)
        max = p->sync_done; /* the pass's last batch ends exactly there */
    if (p->sent >= max)
        return SEGLOG_END;
    zjob_t *z = NULL;
    for (unsigned i = 0; i < PS_ZJOBS && !z; i++)
        if (!p->zj[i].busy && !p->zj[i].queued)
            z = &p->zj[i];
    if (!z)
        return RT_AGAIN; /* discarded batches still on a worker: their completion pumps */
    if (!p->it) {
        /* the ring's batches were never sent: rebuild them too */
        uint64_t d = p->zq_n ? p->zj[p->zq[p->zq_head]].from - 1 : p->sent;
        if (rewind_to(p, d) != RT_OK)
            return RT_ERR;
    }
    size_t target = batch_target(me);
    rt_buf_t *raw = rt_buf_alloc_for(me->node, &me->actor, target);
    if (!raw)
        return RT_AGAIN;
    size_t used = 0;
    uint64_t last = 0;
    int r = seglog_iter_batch(p->it, max, raw->data, target, &used, &last, err, sizeof err);
    if (r == RT_ERR && used == 0) {
        /* perhaps one record larger than the target: try once with room for it */
        rt_buf_unref(raw);
        raw = rt_buf_alloc_for(me->node, &me->actor, WREC_MAX_SIZE);
        if (!raw)
            return RT_AGAIN;
        r = seglog_iter_batch(p->it, max, raw->data, WREC_MAX_SIZE, &used, &last, err,
                              sizeof err);
    }
    if (r != RT_OK) {
        rt_buf_unref(raw);
        if (r == RT_ERR)
            rt_log(RT_LOG_ERR, "ps: pair %s: reading the spool: %s", p->id, err);
        return r;
    }
    raw->len = (uint32_t)used;
    /* count the records and find the first */
    wrec_cursor_t c;
    wrec_hdr_t h;
    uint32_t count = 0;
    uint64_t first = 0, from = 0;
    wrec_cursor_init(&c, raw->data, used);
    while (wrec_cursor_next(&c, &h, NULL, NULL) == RT_OK) {
        if (!count) {
            first = h.seq;
            from = h.seq - h.skip;
        }
        count++;
    }
    ss_WriteBatch *wb = &z->wb;
    memset(wb, 0, sizeof *wb);
    snprintf(wb->pair, sizeof wb->pair, "%s", p->id);
    wb->first_seq = first;
    wb->last_seq = last;
    wb->count = count;
    wb->raw_len = (uint32_t)used;
    wb->epoch = p->epoch;
    if (last == p->sync_done)
        wb->flags |= CODEC_BATCH_SYNC_DONE;
    z->raw = raw;
    z->z = NULL;
    z->used = (uint32_t)used;
    z->from = from;
    z->queued = true;
    z->ready = false;
    p->zq[(p->zq_head + p->zq_n++) % PS_ZJOBS] = (unsigned)(z - p->zj);
    p->zq_bytes += used;
    p->sent = last;
    if (me->bandwidth)
        p->tokens -= (double)used; /* the compressed size is given back when known */
    if (me->compress)
        z->z = rt_buf_alloc(me->node, codec_worth(used) ? codec_worth(used) : 1);
    if (!z->z) {
        z->ready = true; /* not compressing, or no buffer: send it raw */
        return RT_OK;
    }
    z->busy = true;
    if (used < PS_ZINLINE || rt_work_submit(&me->actor, zjob_run, z, PS_SIG_ZIPPED, 0) != RT_OK) {
        /* small (cheaper here than a thread hop), or the workers' queue is full */
        z->busy = false;
        zjob_run(z);
        zjob_done(z);
    }
    return RT_OK;
}

static void pump(ps_pair_t *p)
{
    for (unsigned guard = 0; guard < 4 * PS_INFLIGHT && p->fwd == FWD_OPEN; guard++) {
        if (p->zq_n > 0 && p->zj[p->zq[p->zq_head]].ready) {
            if (send_head(p) != RT_OK)
                return;
            continue;
        }
        /* what is in the ring goes in flight next: count it in the window */
        if (p->zq_n == PS_ZJOBS || p->fl_n + p->zq_n >= PS_INFLIGHT ||
            p->fl_bytes + p->zq_bytes >= PS_WINDOW || !tokens_ok(p))
            return;
        int r = build(p);
        if (r == RT_ERR)
            hold(p, PS_HOLD_BAD);
        if (r != RT_OK)
            return;
    }
}

static void pump_all(ps_t *me)
{
    for (unsigned i = 0; i < me->npairs; i++)
        pump(me->pairs[i]);
}

/* ---- link signals, cron ------------------------------------------------------------- */

static void on_link_up(ps_t *me, const rt_msg_t *m)
{
    const ss_Hello *h = (const ss_Hello *)m->data;
    if (!(h->roles & RT_ROLE_MT))
        return;
    for (unsigned i = 0; i < PS_MT_LINKS; i++)
        if (!me->mt_links[i]) {
            me->mt_links[i] = m->link;
            break;
        }
    for (unsigned i = 0; i < me->npairs; i++)
        if (me->pairs[i]->fwd == FWD_DOWN)
            fwd_open(me->pairs[i]);
}

static void on_link_down(ps_t *me, const rt_msg_t *m)
{
    bool mt = false;
    for (unsigned i = 0; i < PS_MT_LINKS; i++)
        if (me->mt_links[i] == m->link) {
            me->mt_links[i] = NULL;
            mt = true;
        }
    for (unsigned i = 0; i < me->npairs; i++) {
        ps_pair_t *p = me->pairs[i];
        if (p->agent.link == m->link)
            p->agent = (hub_route_t){NULL, NULL, 0};
        if (mt && p->fwd != FWD_DOWN) {
            fwd_down(p);
            fwd_open(p); /* another route may be there; else wait for LINK_UP */
        }
    }
}

static void cron(ps_t *me)
{
    uint64_t now = rt_mono_us();
    for (unsigned i = 0; i < me->npairs; i++) {
        ps_pair_t *p = me->pairs[i];
        switch (p->fwd) {
        case FWD_DOWN:
            fwd_open(p);
            break;
        case FWD_OPENING:
            if (now - p->open_sent_us > (uint64_t)(PS_OPEN_RETRY * 1e6))
                fwd_open(p);
            break;
        case FWD_HOLD:
            if (now >= p->hold_until_us)
                fwd_open(p); /* learn where the mt is, then resend from there */
            break;
        case FWD_OPEN:
            if (p->fl_n > 0 && now - p->ack_seen_us > (uint64_t)(PS_STALL_S * 1e6)) {
                /* an ack lost on the way (or a master target that forgot a
                 * batch): its PairOpen answer says where it is, and the
                 * spool is resent from there; it applies nothing twice */
                rt_log(RT_LOG_WARN,
                       "ps: pair %s: no ack from the master target for %.0f s with %u batches "
                       "in flight (up to %" PRIu64 "); asking where it is",
                       p->id, PS_STALL_S, p->fl_n, p->sent);
                p->stalls++;
                fwd_open(p);
                break;
            }
            pump(p);
            break;
        }
        if (p->ack_owed)
            ack_agent(p);
        reap(p); /* names left queued by a failed start */
    }
    release_all(me);
    cache_check(me);
}

/* ---- dispatch ------------------------------------------------------------------------ */

static void ps_dispatch(rt_actor_t *actor, const rt_msg_t *m)
{
    ps_t *me = (ps_t *)actor;
    const ss_Envelope *env = (const ss_Envelope *)m->data;
    switch (m->tag) {
    case RT_SIG_START:
        for (unsigned i = 0; i < me->npairs; i++)
            fwd_open(me->pairs[i]);
        break;
    case RT_SIG_STOP:
        commit_now(me); /* nothing acked is lost either way; this acks what arrived */
        rt_actor_cron(&me->actor, 0);
        rt_actor_stopped(&me->actor);
        break;
    case RT_SIG_CRON:
        cron(me);
        break;
    case RT_SIG_LINK_UP:
        on_link_up(me, m);
        break;
    case RT_SIG_LINK_DOWN:
        on_link_down(me, m);
        break;
    case RT_SIG_LINK_WRITABLE:
    case RT_SIG_RESUME:
        for (unsigned i = 0; i < me->npairs; i++)
            if (me->pairs[i]->ack_owed)
                ack_agent(me->pairs[i]);
        for (unsigned i = 0; i < me->npairs; i++)
            if (me->pairs[i]->fwd == FWD_DOWN)
                fwd_open(me->pairs[i]);
        pump_all(me);
        break;
    case PS_SIG_COMMIT:
        commit_all(me);
        break;
    case PS_SIG_PUMP:
        pump_all(me);
        break;
    case PS_SIG_ZIPPED:
        on_zipped(me, m);
        break;
    case PS_SIG_SYNCED:
        on_synced(me, m);
        break;
    case ss_Envelope_pair_open_tag:
        if (env->body.pair_open.reply)
            on_mt_open_reply(me, m, &env->body.pair_open);
        else
            on_pair_open(me, m, &env->body.pair_open);
        break;
    case ss_Envelope_write_batch_tag:
        on_write_batch(me, m, &env->body.write_batch, env->payload_len);
        break;
    case ss_Envelope_write_ack_tag:
        on_mt_ack(me, &env->body.write_ack);
        break;
    default:
        break;
    }
}

/* ---- status ----------------------------------------------------------------------------- */

int ps_pair_info(const ps_t *me, const char *pair, ps_pair_info_t *out)
{
    const ps_pair_t *p = pair_find(me, pair);
    if (!p)
        return RT_ERR;
    memset(out, 0, sizeof *out);
    out->durable_seq = eff_durable(p);
    out->mt_durable_seq = p->mt_durable;
    out->consistent_seq = p->consistent;
    out->sent_seq = p->sent;
    out->spool_bytes = p->spool ? seglog_bytes(p->spool) : 0;
    out->backlog_bytes = backlog(p);
    out->raw_sent = p->raw_sent;
    out->wire_sent = p->wire_sent;
    out->batches_sent = p->batches_sent;
    out->batches_lz4 = p->batches_lz4;
    out->full_acks = p->full_acks;
    return RT_OK;
}

int ps_status(void *ctx, mgmt_status_t *st, rt_json_t *out, char *err, size_t errlen)
{
    ps_t *me = ctx;
    (void)err;
    (void)errlen;
    uint64_t used = ps_cache_bytes(me);
    rt_json_str(out, "dir", me->dir);
    rt_json_u64(out, "cache_bytes", used);
    rt_json_u64(out, "cache_quota", me->quota);
    rt_json_str(out, "cache_mode", me->relay ? "relay" : "spool");
    rt_json_bool(out, "cache_warning", me->warned);
    rt_json_u64(out, "bandwidth", me->bandwidth);
    rt_json_bool(out, "compress", me->compress);
    rt_json_obj(out, "pairs");
    for (unsigned i = 0; i < me->npairs; i++) {
        const ps_pair_t *p = me->pairs[i];
        mgmt_pair_t *mp = mgmt_status_pair(st, p->id);
        if (mp) {
            if (p->disk[0])
                snprintf(mp->disk, sizeof mp->disk, "%s", p->disk);
            if (p->group[0])
                snprintf(mp->group, sizeof mp->group, "%s", p->group);
            mp->ps_durable_seq = eff_durable(p);
            if (p->mt_known)
                mp->mt_durable_seq = p->mt_durable;
            mp->cache_bytes = p->spool ? seglog_bytes(p->spool) : 0;
            mp->cache_quota = me->quota;
            mp->backlog_bytes = backlog(p);
            if (!mp->link[0]) /* the agent's view wins when it gives one */
                snprintf(mp->link, sizeof mp->link, "%s", fwd_link[p->fwd]);
        }
        rt_json_obj(out, p->id);
        rt_json_u64(out, "durable_seq", eff_durable(p));
        rt_json_u64(out, "mt_durable_seq", p->mt_durable);
        rt_json_u64(out, "consistent_seq", p->consistent);
        rt_json_u64(out, "sent_seq", p->sent);
        rt_json_str(out, "forwarding", fwd_names[p->fwd]);
        rt_json_u64(out, "spool_bytes", p->spool ? seglog_bytes(p->spool) : 0);
        rt_json_u64(out, "backlog_bytes", backlog(p));
        rt_json_u64(out, "inflight_bytes", p->fl_bytes);
        rt_json_u64(out, "raw_sent", p->raw_sent);
        rt_json_u64(out, "wire_sent", p->wire_sent);
        rt_json_u64(out, "batches_sent", p->batches_sent);
        rt_json_u64(out, "batches_lz4", p->batches_lz4);
        rt_json_u64(out, "full_acks", p->full_acks);
        rt_json_u64(out, "bad_acks", p->bad_acks);
        rt_json_u64(out, "ack_stalls", p->stalls);
        rt_json_bool(out, "agent_connected", p->agent.link || p->agent.actor);
        rt_json_obj_end(out);
    }
    rt_json_obj_end(out);
    return MGMT_OK;
}

int ps_register_status(ps_t *me, mgmt_t *mgmt)
{
    return mgmt_register_status(mgmt, "ps", ps_status, me);
}

/* ---- lifecycle ------------------------------------------------------------------------------ */

static int load_all(ps_t *me, char *err, size_t errlen)
{
    DIR *d = opendir(me->dir);
    if (!d)
        return rt_errf(err, errlen, "%s: %s", me->dir, strerror(errno));
    struct dirent *e;
    int rc = RT_OK;
    while ((e = readdir(d)) && rc == RT_OK) {
        if (!rt_name_ok(e->d_name))
            continue;
        if (me->npairs == PS_PAIRS_MAX) {
            rc = rt_errf(err, errlen, "%s: more than %u pairs", me->dir, PS_PAIRS_MAX);
            break;
        }
        if (pair_load(me, e->d_name, err, errlen) != RT_OK)
            rt_log(RT_LOG_ERR, "ps: pair %s left out: %s", e->d_name, err);
    }
    closedir(d);
    return rc;
}

ps_t *ps_new(rt_node_t *node, const rt_conf_t *conf, hub_t *hub, char *err, size_t errlen)
{
    ps_t *me = calloc(1, sizeof *me);
    if (!me) {
        rt_errf(err, errlen, "ps: out of memory");
        return NULL;
    }
    me->node = node;
    me->hub = hub;
    me->conf = conf;
    if (!rt_conf_role_dir(conf, "ps", me->dir, sizeof me->dir)) {
        rt_errf(err, errlen, "ps: [ps] dir or [node] data_dir: path too long");
        goto fail;
    }
    me->quota = rt_conf_u64(conf, "ps", "cache_quota");
    me->bandwidth = rt_conf_u64(conf, "ps", "bandwidth");
    me->compress = rt_conf_bool(conf, "ps", "compress");
    switch (rt_conf_u64(conf, "ps", "cache")) {
    case 1: me->relay = false; break; /* spool */
    case 2: me->relay = true; break;  /* relay */
    default: me->relay = (rt_conf_u64(conf, "node", "roles") & RT_ROLE_AGENT) != 0; break;
    }
    me->seg_max = me->quota / 16;
    if (me->seg_max > SEGLOG_SEG_MAX_DEFAULT)
        me->seg_max = SEGLOG_SEG_MAX_DEFAULT;
    if (me->seg_max < (64u << 10))
        me->seg_max = 64u << 10;
    if (mkdir(me->dir, 0750) != 0 && errno != EEXIST) {
        rt_errf(err, errlen, "ps: %s: create: %s", me->dir, strerror(errno));
        goto fail;
    }
    if (load_all(me, err, errlen) != RT_OK)
        goto fail;
    if (rt_actor_init(&me->actor, node, "ps", ps_dispatch) != RT_OK ||
        rt_timer_init(&me->commit_t, &me->actor, PS_SIG_COMMIT, 0) != RT_OK ||
        rt_timer_init(&me->pump_t, &me->actor, PS_SIG_PUMP, 0) != RT_OK) {
        rt_errf(err, errlen, "ps: message pool full");
        goto fail;
    }
    if (hub_register_role(hub, RT_ROLE_PS, &me->actor) != RT_OK) {
        rt_errf(err, errlen, "ps: the hub has a ps role already");
        goto fail;
    }
    rt_actor_cron(&me->actor, 1.0);
    rt_log(RT_LOG_INFO, "ps: %u pair(s) in %s, cache quota %" PRIu64 " bytes%s", me->npairs,
           me->dir, me->quota, me->compress ? ", lz4" : "");
    return me;
fail:
    ps_free(me);
    return NULL;
}

void ps_free(ps_t *me)
{
    if (!me)
        return;
    if (me->actor.node) {
        rt_timer_fini(&me->commit_t);
        rt_timer_fini(&me->pump_t);
        rt_actor_fini(&me->actor);
    }
    for (unsigned i = 0; i < me->npairs; i++)
        pair_close(me->pairs[i]);
    codec_work_free(&me->work);
    free(me);
}

rt_actor_t *ps_actor(ps_t *me)
{
    return &me->actor;
}
