/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * dp_fixture.h: shared pieces of the data path tests (test_ps.c, test_mt.c).
 *
 * A real node on its own libev loop with a hub (no links: every role is
 * local, so hub_send_role posts directly, exactly as DATAPATH.md says), the
 * role under test, and "peers": small actors that play the agent, the
 * process server or the master target from the outside. A peer sends
 * deterministic write records (the payload of seq is a function of seq, so
 * any receiver can check any record) and keeps what it receives: acks,
 * PairOpen answers, and, as a fake master target, the records in order,
 * applied to an in-memory disk image. Every wait is bounded (RUN_UNTIL).
 *
 * Static functions in a header: each test_*.c is its own binary.
 */
#ifndef DP_FIXTURE_H
#define DP_FIXTURE_H

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "link.pb.h"
#include "nodes/common/codec.h"
#include "nodes/common/wrec.h"
#include "nodes/hub/hub.h"
#include "rt.h"

#define DISK_SIZE  (1u << 20)  /* the test disk: 1 MiB */
#define BLOCK      4096u
#define NBLOCKS    (DISK_SIZE / BLOCK)
#define T0_US      1700000000000000ull
#define MAX_SEQ    4096u       /* records a test may generate */

/* ---- records ------------------------------------------------------------------ */

static inline uint64_t dp_mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

/* the record of @seq: a DATA write of @len bytes (<= 64 KiB) at a block
 * chosen by seq; compressible text-like bytes or random ones */
static inline void dp_gen(uint64_t seq, uint32_t len, bool compressible, wrec_hdr_t *h, uint8_t *data)
{
    memset(h, 0, sizeof *h);
    h->flags = WREC_F_DATA;
    h->seq = seq;
    h->len = len;
    h->offset = (dp_mix(seq) % (DISK_SIZE / BLOCK - len / BLOCK)) * BLOCK;
    h->time_us = T0_US + seq * 1000u;
    uint64_t x = dp_mix(seq + 77) | 1;
    for (uint32_t i = 0; i < len; i++) {
        if (compressible) {
            data[i] = (uint8_t)("secondsite replicates blocks "[(i / 7 + seq) % 29]);
        } else {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            data[i] = (uint8_t)x;
        }
    }
    const char *why = NULL;
    if (wrec_seal(h, data, &why) != RT_OK)
        fail_msg("wrec_seal: %s", why);
}

/* records first..last back to back into @out (cap bytes); @return bytes */
static inline size_t dp_run(uint64_t first, uint64_t last, uint32_t len, bool compressible, uint8_t *out,
                     size_t cap)
{
    static uint8_t data[64u << 10];
    size_t n = 0;
    for (uint64_t s = first; s <= last; s++) {
        wrec_hdr_t h;
        size_t got = 0;
        dp_gen(s, len, compressible, &h, data);
        assert_true(n + WREC_HDR_SIZE + len <= cap);
        assert_int_equal(wrec_encode(&h, data, false, out + n, cap - n, &got, NULL), RT_OK);
        n += got;
    }
    return n;
}

/* the disk after records 1..@upto applied in order */
static inline void dp_image(uint64_t upto, uint32_t len, bool compressible, uint8_t *img)
{
    static uint8_t data[64u << 10];
    memset(img, 0, DISK_SIZE);
    for (uint64_t s = 1; s <= upto; s++) {
        wrec_hdr_t h;
        dp_gen(s, len, compressible, &h, data);
        memcpy(img + h.offset, data, len);
    }
}

/* ---- scratch folders and configs ----------------------------------------------- */

static inline int dp_rm_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
    (void)st, (void)flag, (void)f;
    return remove(p);
}

static inline void dp_tmpdir(char *out, size_t n, const char *tag)
{
    const char *t = getenv("TMPDIR");
    if (!t)
        t = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(out, n, "%s/%s.XXXXXX", t, tag);
    assert_non_null(mkdtemp(out));
}

static inline void dp_rmtree(const char *dir)
{
    if (dir[0])
        nftw(dir, dp_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* write @text to @dir/node.ini and load it */
static rt_conf_t *dp_conf(const char *dir, const char *text)
{
    char path[512], err[512];
    snprintf(path, sizeof path, "%s/node.ini", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    rt_conf_t *c = rt_conf_load(path, err, sizeof err);
    if (!c)
        fail_msg("config: %s", err);
    return c;
}

/* ---- the loop ---------------------------------------------------------------------- */

static inline void dp_nudge_cb(struct ev_loop *l, ev_timer *w, int revents)
{
    (void)l, (void)w, (void)revents;
}

/* run @loop until @cond or @secs seconds passed */
#define RUN_UNTIL(loop, cond, secs)                                                    \
    do {                                                                               \
        uint64_t end_ = rt_mono_us() + (uint64_t)((secs) * 1e6);                       \
        while (!(cond) && rt_mono_us() < end_)                                         \
            ev_run((loop), EVRUN_ONCE);                                                \
    } while (0)

/* ---- peers ------------------------------------------------------------------------ */

typedef struct dp_ack {
    uint64_t durable, mt_durable, consistent;
    uint32_t status;
    bool has_credit;   /* WriteAck.credit present */
    uint64_t credit;
} dp_ack_t;

typedef struct peer {
    rt_actor_t actor;
    hub_t *hub;
    uint32_t role;          /* the role it plays */
    uint32_t to;            /* the role it sends to */
    const char *pair;
    uint32_t len;           /* record payload bytes */
    bool compressible;
    /* as a sender */
    int opens;              /* PairOpen answers */
    ss_PairOpen open;       /* the last one */
    int acks;               /* WriteAcks */
    dp_ack_t ack;           /* the last one */
    uint64_t max_durable, max_mt_durable, consistent;
    int full, bad, unknown;
    int sent_batches;
    uint64_t sent_last;     /* last seq sent */
    int window;             /* self-driving: batches of @per records kept in flight (0: off) */
    int per;
    uint64_t limit;         /* self-driving: the last seq to send (0: no limit) */
    int ack_fd;             /* self-driving: write each durable_seq here (-1: no) */
    /* as a receiver (fake master target) */
    bool auto_ack;          /* answer each batch with a WriteAck at once */
    bool hold_open;         /* keep PairOpen requests unanswered (peer_open_release) */
    int held_opens;
    uint64_t held_corr;
    uint64_t got;           /* records received in order: 1..got */
    uint64_t got_bytes;     /* payload bytes received */
    int batches, lz4_batches, dups;
    int errors;
    char error[256];
    uint8_t *img;           /* DISK_SIZE bytes, records applied in order */
    rt_actor_t *sender;     /* the local actor that sent the batches */
    uint64_t t_first_us, t_last_us;
    codec_work_t work;
} peer_t;

static inline int peer_send_batch(peer_t *p, uint64_t first, uint64_t last, uint32_t flags);

static inline void peer_recv_batch(peer_t *p, const rt_msg_t *m, const ss_Envelope *e)
{
    const ss_WriteBatch *wb = &e->body.write_batch;
    codec_batch_t b = {wb->first_seq, wb->last_seq, wb->count, wb->flags, wb->raw_len};
    codec_run_t run;
    char why[192];
    p->sender = m->from;
    if (codec_batch_open(&b, m->buf ? m->buf->data : NULL, e->payload_len, DISK_SIZE, &p->work,
                         &run, why, sizeof why) != RT_OK) {
        if (!p->errors++)
            snprintf(p->error, sizeof p->error, "bad batch: %s", why);
        return;
    }
    if (!p->t_first_us)
        p->t_first_us = rt_mono_us();
    p->t_last_us = rt_mono_us();
    p->batches++;
    p->got_bytes += e->payload_len;
    if (wb->flags & CODEC_BATCH_LZ4)
        p->lz4_batches++;
    if (run.last_seq <= p->got) {
        p->dups++;
    } else if (run.from_seq != p->got + 1) {
        if (!p->errors++)
            snprintf(p->error, sizeof p->error, "gap: got %llu, batch from %llu",
                     (unsigned long long)p->got, (unsigned long long)run.from_seq);
        return;
    } else {
        wrec_cursor_t c;
        wrec_hdr_t h;
        const uint8_t *st;
        wrec_cursor_init(&c, run.recs, run.len);
        while (wrec_cursor_next(&c, &h, &st, NULL) == RT_OK) {
            if (h.seq <= p->got)
                continue;
            if (p->img && (h.flags & WREC_F_DATA) && !(h.flags & WREC_F_LZ4))
                memcpy(p->img + h.offset, st, h.len);
            p->got = h.seq;
        }
    }
    if (p->auto_ack) {
        ss_Envelope a = ss_Envelope_init_zero;
        a.which_body = ss_Envelope_write_ack_tag;
        snprintf(a.body.write_ack.pair, sizeof a.body.write_ack.pair, "%s", wb->pair);
        a.body.write_ack.durable_seq = p->got;
        a.body.write_ack.mt_durable_seq = p->got;
        hub_reply(p->hub, &p->actor, m, &a, NULL, 0);
    }
}

/* a fake master target's ack of everything received so far, unprompted */
static inline void peer_ack_now(peer_t *p, uint32_t status)
{
    ss_Envelope a = ss_Envelope_init_zero;
    a.which_body = ss_Envelope_write_ack_tag;
    snprintf(a.body.write_ack.pair, sizeof a.body.write_ack.pair, "%s", p->pair);
    a.body.write_ack.durable_seq = p->got;
    a.body.write_ack.mt_durable_seq = p->got;
    a.body.write_ack.status = status;
    assert_int_equal(hub_send_role(p->hub, &p->actor, p->to, &a, NULL, 0), RT_OK);
}

/* a fake master target answers the last PairOpen it held back */
static inline void peer_open_release(peer_t *p)
{
    ss_Envelope a = ss_Envelope_init_zero;
    a.which_body = ss_Envelope_pair_open_tag;
    a.corr = p->held_corr;
    snprintf(a.body.pair_open.pair, sizeof a.body.pair_open.pair, "%s", p->pair);
    a.body.pair_open.reply = true;
    a.body.pair_open.durable_seq = p->got;
    a.body.pair_open.mt_durable_seq = p->got;
    p->hold_open = false;
    assert_int_equal(hub_send_role(p->hub, &p->actor, p->to, &a, NULL, 0), RT_OK);
}

static inline void peer_dispatch(rt_actor_t *actor, const rt_msg_t *m)
{
    peer_t *p = (peer_t *)actor;
    const ss_Envelope *e = (const ss_Envelope *)m->data;
    switch (m->tag) {
    case RT_SIG_STOP:
        rt_actor_stopped(actor);
        break;
    case ss_Envelope_pair_open_tag:
        if (e->body.pair_open.reply) {
            p->opens++;
            p->open = e->body.pair_open;
        } else if (p->hold_open) {
            p->held_opens++;
            p->held_corr = e->corr;
        } else {
            /* as a fake master target: say what we hold */
            ss_Envelope a = ss_Envelope_init_zero;
            a.which_body = ss_Envelope_pair_open_tag;
            a.corr = e->corr;
            a.body.pair_open = e->body.pair_open;
            a.body.pair_open.reply = true;
            a.body.pair_open.durable_seq = p->got;
            a.body.pair_open.mt_durable_seq = p->got;
            p->sender = m->from;
            hub_reply(p->hub, &p->actor, m, &a, NULL, 0);
        }
        break;
    case ss_Envelope_write_ack_tag: {
        const ss_WriteAck *w = &e->body.write_ack;
        p->acks++;
        p->ack = (dp_ack_t){w->durable_seq, w->mt_durable_seq, w->consistent_seq, w->status,
                            w->has_credit, w->credit};
        if (w->durable_seq > p->max_durable)
            p->max_durable = w->durable_seq;
        if (w->mt_durable_seq > p->max_mt_durable)
            p->max_mt_durable = w->mt_durable_seq;
        if (w->consistent_seq > p->consistent)
            p->consistent = w->consistent_seq;
        p->full += w->status == ss_AckStatus_ACK_FULL;
        if (w->status != ss_AckStatus_ACK_OK && p->window)
            p->sent_last = p->max_durable; /* refused: resend from the durable point */
        p->bad += w->status == ss_AckStatus_ACK_BAD_RECORD;
        p->unknown += w->status == ss_AckStatus_ACK_UNKNOWN_PAIR;
        if (p->ack_fd >= 0 && w->status == ss_AckStatus_ACK_OK) {
            uint64_t d = w->durable_seq;
            if (write(p->ack_fd, &d, sizeof d) != (ssize_t)sizeof d)
                _exit(3);
        }
        /* self-driving sender: keep @window batches beyond the durable point */
        while (w->status == ss_AckStatus_ACK_OK && p->window &&
               p->sent_last < p->max_durable + (uint64_t)(p->window * p->per) &&
               (!p->limit || p->sent_last + (uint64_t)p->per <= p->limit))
            if (peer_send_batch(p, p->sent_last + 1, p->sent_last + (uint64_t)p->per, 0) !=
                RT_OK)
                break;
        break;
    }
    case ss_Envelope_write_batch_tag:
        peer_recv_batch(p, m, e);
        break;
    default:
        break;
    }
}

static inline void peer_init(peer_t *p, rt_node_t *node, hub_t *hub, const char *name, uint32_t role,
                      uint32_t to)
{
    memset(p, 0, sizeof *p);
    p->hub = hub;
    p->role = role;
    p->to = to;
    p->pair = "p1";
    p->len = BLOCK;
    p->ack_fd = -1;
    assert_int_equal(rt_actor_init(&p->actor, node, name, peer_dispatch), RT_OK);
    assert_int_equal(hub_register_role(hub, role, &p->actor), RT_OK);
}

static inline void peer_fini(peer_t *p)
{
    rt_actor_fini(&p->actor);
    codec_work_free(&p->work);
    free(p->img);
    p->img = NULL;
}

static inline void peer_open(peer_t *p, uint64_t last_seq, uint64_t epoch)
{
    ss_Envelope e = ss_Envelope_init_zero;
    e.which_body = ss_Envelope_pair_open_tag;
    e.corr = 7;
    ss_PairOpen *o = &e.body.pair_open;
    snprintf(o->pair, sizeof o->pair, "%s", p->pair);
    snprintf(o->disk, sizeof o->disk, "disk0");
    snprintf(o->group, sizeof o->group, "g");
    o->disk_size = DISK_SIZE;
    o->last_seq = last_seq;
    o->epoch = epoch;
    assert_int_equal(hub_send_role(p->hub, &p->actor, p->to, &e, NULL, 0), RT_OK);
}

/* send @payload (@len bytes, already built) as a WriteBatch */
static inline int peer_send_raw(peer_t *p, const ss_WriteBatch *wb, const void *payload, size_t len)
{
    rt_buf_t *b = rt_buf_alloc(p->actor.node, len ? len : 1);
    if (!b)
        return RT_AGAIN;
    memcpy(b->data, payload, len);
    b->len = (uint32_t)len;
    ss_Envelope e = ss_Envelope_init_zero;
    e.which_body = ss_Envelope_write_batch_tag;
    e.body.write_batch = *wb;
    int rc = hub_send_role(p->hub, &p->actor, p->to, &e, b, (uint32_t)len);
    rt_buf_unref(b);
    return rc;
}

/* records first..last as one batch; @flags CODEC_BATCH_* (LZ4 compresses it) */
static inline int peer_send_batch(peer_t *p, uint64_t first, uint64_t last, uint32_t flags)
{
    static uint8_t run[4u << 20], z[4u << 20];
    size_t n = dp_run(first, last, p->len, p->compressible, run, sizeof run);
    ss_WriteBatch wb = ss_WriteBatch_init_zero;
    snprintf(wb.pair, sizeof wb.pair, "%s", p->pair);
    wb.first_seq = first;
    wb.last_seq = last;
    wb.count = (uint32_t)(last - first + 1);
    wb.flags = flags & ~CODEC_BATCH_LZ4;
    wb.raw_len = (uint32_t)n;
    const void *payload = run;
    size_t plen = n;
    if (flags & CODEC_BATCH_LZ4) {
        size_t zl = 0;
        assert_int_equal(codec_compress(run, n, z, sizeof z, &zl), RT_OK);
        wb.flags |= CODEC_BATCH_LZ4;
        payload = z;
        plen = zl;
    }
    int rc = peer_send_raw(p, &wb, payload, plen);
    if (rc == RT_OK) {
        p->sent_batches++;
        if (last > p->sent_last)
            p->sent_last = last;
    }
    return rc;
}

#endif /* DP_FIXTURE_H */
