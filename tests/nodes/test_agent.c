/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * test_agent.c: the agent role (nodes/agent/agent.c) on a real node.
 *
 * Each test runs a node on a private libev loop with the real hub, the
 * agent serving a sparse disk image over NBD on 127.0.0.1, and a fake
 * process server actor on the same node (registered for RT_ROLE_PS), which
 * answers PairOpen and WriteBatch exactly as DATAPATH.md says: it refuses a
 * batch that does not continue its durable_seq, verifies every record
 * (checksums, contiguity, no SYNCREF on the wire), applies them to an
 * in-memory replica and acknowledges; it can also answer ACK_FULL (a cache
 * at its quota: the outage of issue 3, since a local ps cannot go away) and
 * hold back its master target. The client speaks NBD by hand and pumps the
 * loop while it waits; every wait is bounded in time.
 *
 * What is checked: the initial sync (holes and zero blocks sent as ZERO
 * records, data once, BATCH_SYNC_DONE at the pass's end, INTERIOR before
 * it), capture order of pipelined overlapping writes, long writes split,
 * the log kept across a crash and a reopen with the resume from the ps's
 * durable_seq (nothing lost, nothing twice), extents active at the crash
 * resynced, bitmap mode on a log overflow and the resync of only the dirty
 * blocks, a receiver ahead of the log (full sync, numbering continued),
 * drained only once the master target has everything, the process server's
 * credit (never exceeded, waiting instead of resending, a refusal sent
 * again from the first unacknowledged seq), pause and resume, a
 * clean stop, status JSON and the trace of every transition.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <pb_decode.h>

#include "link.pb.h"
#include "nodes/agent/agent.h"
#include "nodes/agent/nbd_proto.h"
#include "nodes/common/codec.h"
#include "nodes/common/wrec.h"
#include "repl.pb.h"
#include "rt.h"
#include "rt_json.h"
#include "trace.pb.h"

#define SIZE   (8u << 20)
#define MiB    (1u << 20)
#define WAIT_S 10.0

/* ---- the fake process server ------------------------------------------------------ */

typedef struct fake_ps {
    rt_actor_t actor;
    hub_t *hub;
    /* what survives an agent restart: it stands for the ps's spool and the mt */
    uint64_t durable, mt;
    bool auto_mt;            /* the mt has everything at once */
    bool full;               /* answer ACK_FULL */
    /* flow control (WriteAck.credit), when credit_on: the cache holds the
     * record bytes taken and not yet at the mt, up to quota */
    bool credit_on;
    uint64_t quota, cache;
    uint64_t taken;          /* record bytes taken, in all */
    uint64_t grant;          /* taken + the credit last told: a batch past it is a breach */
    unsigned over;           /* batches sent past the credit */
    bool refuse_once;        /* refuse the next batch: ACK_FULL with no credit */
    uint8_t *replica;        /* SIZE bytes, every record applied in order */
    /* counters */
    unsigned opens, batches, gaps, full_acks, sync_batches, sync_done;
    uint64_t sync_done_seq;  /* last_seq of the last BATCH_SYNC_DONE batch */
    uint64_t first_after_open;
    bool want_first;
    uint64_t records, interior, zero_records, data_bytes;
    uint64_t last_interior_seq, last_point_seq;
    bool bad;                /* a record failed a check */
    char why[160];
} fake_ps_t;

static void ps_bad(fake_ps_t *ps, const char *what, uint64_t seq)
{
    if (!ps->bad)
        snprintf(ps->why, sizeof ps->why, "%s (seq %llu)", what, (unsigned long long)seq);
    ps->bad = true;
}

/* the credit to tell now (and remember as the grant): the room under the
 * quota, and at least CODEC_CREDIT_MIN when the cache is empty, as the
 * real ps does */
static uint64_t ps_credit(fake_ps_t *ps, bool none)
{
    uint64_t c = none || ps->cache >= ps->quota ? 0 : ps->quota - ps->cache;
    if (!none && ps->cache == 0 && c < CODEC_CREDIT_MIN)
        c = CODEC_CREDIT_MIN;
    ps->grant = ps->taken + c;
    return c;
}

static void ps_ack(fake_ps_t *ps, const rt_msg_t *m, uint32_t status)
{
    ss_Envelope env = ss_Envelope_init_zero;
    env.which_body = ss_Envelope_write_ack_tag;
    const ss_Envelope *req = (const ss_Envelope *)m->data;
    snprintf(env.body.write_ack.pair, sizeof env.body.write_ack.pair, "%s",
             req->body.write_batch.pair);
    env.body.write_ack.durable_seq = ps->durable;
    env.body.write_ack.mt_durable_seq = ps->mt;
    env.body.write_ack.status = status;
    if (ps->credit_on) {
        env.body.write_ack.has_credit = true;
        env.body.write_ack.credit = ps_credit(ps, status == ss_AckStatus_ACK_FULL);
    }
    assert_int_equal(hub_reply(ps->hub, &ps->actor, m, &env, NULL, 0), RT_OK);
}

static void ps_batch(fake_ps_t *ps, const rt_msg_t *m)
{
    const ss_Envelope *env = (const ss_Envelope *)m->data;
    const ss_WriteBatch *wb = &env->body.write_batch;
    ps->batches++;
    if (ps->credit_on && ps->taken + wb->raw_len > ps->grant)
        ps->over++;
    if (ps->full || ps->refuse_once) {
        ps->refuse_once = false;
        ps->full_acks++;
        ps_ack(ps, m, ss_AckStatus_ACK_FULL);
        return;
    }
    if (wb->first_seq != ps->durable + 1) {
        ps->gaps++;
        ps_ack(ps, m, ss_AckStatus_ACK_OK);
        return;
    }
    if (ps->want_first) {
        ps->first_after_open = wb->first_seq;
        ps->want_first = false;
    }
    if (!m->buf || env->payload_len != wb->raw_len) {
        ps_bad(ps, "payload length", wb->first_seq);
        return;
    }
    wrec_cursor_t c;
    wrec_hdr_t h;
    const uint8_t *stored;
    const char *why = NULL;
    uint64_t want = wb->first_seq;
    uint32_t n = 0;
    wrec_cursor_init(&c, m->buf->data, env->payload_len);
    int rc;
    while ((rc = wrec_cursor_next(&c, &h, &stored, &why)) == RT_OK) {
        const void *data = NULL;
        if (h.seq != want || h.skip)
            ps_bad(ps, "sequence", h.seq);
        if ((h.flags & WREC_F_KINDS) == WREC_F_SYNCREF)
            ps_bad(ps, "a SYNCREF on the wire", h.seq);
        if (wrec_verify(&h, stored, NULL, 0, &data, &why) != RT_OK)
            ps_bad(ps, why, h.seq);
        if (h.offset + h.len > SIZE && !(h.flags & WREC_F_MARK))
            ps_bad(ps, "out of the disk", h.seq);
        if (ps->bad)
            return;
        if (h.flags & WREC_F_DATA) {
            memcpy(ps->replica + h.offset, data, h.len);
            ps->data_bytes += h.len;
        } else if (h.flags & (WREC_F_ZERO | WREC_F_TRIM)) {
            memset(ps->replica + h.offset, 0, h.len);
            ps->zero_records++;
        }
        if (h.flags & WREC_F_INTERIOR) {
            ps->interior++;
            ps->last_interior_seq = h.seq;
        } else {
            ps->last_point_seq = h.seq;
        }
        ps->records++;
        want++;
        n++;
    }
    if (rc != WREC_END || n != wb->count || want - 1 != wb->last_seq) {
        ps_bad(ps, "batch shape", wb->first_seq);
        return;
    }
    if (wb->flags & ss_BatchFlag_BATCH_SYNC)
        ps->sync_batches++;
    if (wb->flags & ss_BatchFlag_BATCH_SYNC_DONE) {
        ps->sync_done++;
        ps->sync_done_seq = wb->last_seq;
    }
    ps->durable = wb->last_seq;
    ps->taken += wb->raw_len;
    ps->cache += wb->raw_len;
    if (ps->auto_mt) {
        ps->mt = ps->durable;
        ps->cache = 0;
    }
    ps_ack(ps, m, ss_AckStatus_ACK_OK);
}

static void ps_dispatch(rt_actor_t *me, const rt_msg_t *m)
{
    fake_ps_t *ps = (fake_ps_t *)me;
    const ss_Envelope *env = (const ss_Envelope *)m->data;
    if (m->tag == ss_Envelope_pair_open_tag) {
        ss_Envelope r = ss_Envelope_init_zero;
        r.which_body = ss_Envelope_pair_open_tag;
        r.body.pair_open = env->body.pair_open;
        r.body.pair_open.reply = true;
        r.body.pair_open.durable_seq = ps->durable;
        r.body.pair_open.mt_durable_seq = ps->mt;
        r.body.pair_open.has_credit = ps->credit_on;
        r.body.pair_open.credit = ps->credit_on ? ps_credit(ps, false) : 0;
        ps->opens++;
        ps->want_first = true;
        assert_int_equal(hub_reply(ps->hub, &ps->actor, m, &r, NULL, 0), RT_OK);
    } else if (m->tag == ss_Envelope_write_batch_tag) {
        ps_batch(ps, m);
    }
}

/* the mt caught up: an unsolicited WriteAck, as the real ps sends */
static void ps_mt_catch_up(fake_ps_t *ps)
{
    ps->mt = ps->durable;
    ps->cache = 0;
    ss_Envelope env = ss_Envelope_init_zero;
    env.which_body = ss_Envelope_write_ack_tag;
    snprintf(env.body.write_ack.pair, sizeof env.body.write_ack.pair, "d0");
    env.body.write_ack.durable_seq = ps->durable;
    env.body.write_ack.mt_durable_seq = ps->mt;
    env.body.write_ack.has_credit = ps->credit_on;
    env.body.write_ack.credit = ps->credit_on ? ps_credit(ps, false) : 0;
    assert_int_equal(hub_send_role(ps->hub, &ps->actor, RT_ROLE_AGENT, &env, NULL, 0), RT_OK);
}

/* ---- fixture ------------------------------------------------------------------------- */

typedef struct fx {
    char dir[128], conf_path[192], disk[192], trace[192];
    struct ev_loop *loop;
    ev_timer nudge;
    rt_conf_t *conf;
    rt_node_t *node;
    hub_t *hub;
    agent_t *agent;
    fake_ps_t ps;
    bool up;
} fx_t;

static fx_t F;

static void nudge_cb(struct ev_loop *l, ev_timer *w, int revents)
{
    (void)l, (void)w, (void)revents;
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
    (void)st, (void)flag, (void)f;
    return remove(p);
}

static void pwrite_file(const char *path, uint64_t off, const void *buf, size_t n)
{
    int fd = open(path, O_WRONLY);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, buf, n, (off_t)off), (ssize_t)n);
    close(fd);
}

static void fill(uint8_t *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(seed * 131u + i * 7u + (i >> 10) + 1u);
}

static void read_disk(uint8_t *buf)
{
    int fd = open(F.disk, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(pread(fd, buf, SIZE, 0), SIZE);
    close(fd);
}

/* a sparse 8 MiB disk: data at 1 MiB (300 KiB), allocated zeros at 3 MiB
 * (64 KiB), data in the last 4 KiB; the rest is a hole */
static int setup(void **state)
{
    (void)state;
    memset(&F, 0, sizeof F);
    const char *t = getenv("TMPDIR");
    if (!t)
        t = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(F.dir, sizeof F.dir, "%s/test_agent.XXXXXX", t);
    assert_non_null(mkdtemp(F.dir));
    snprintf(F.conf_path, sizeof F.conf_path, "%s/primary.ini", F.dir);
    snprintf(F.disk, sizeof F.disk, "%s/disk0.img", F.dir);
    snprintf(F.trace, sizeof F.trace, "%s/trace.pb", F.dir);
    int fd = open(F.disk, O_RDWR | O_CREAT | O_TRUNC, 0640);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, SIZE), 0);
    close(fd);
    static uint8_t buf[300 * 1024];
    fill(buf, sizeof buf, 1);
    pwrite_file(F.disk, 1 * MiB, buf, sizeof buf);
    memset(buf, 0, 64 * 1024);
    pwrite_file(F.disk, 3 * MiB, buf, 64 * 1024);
    fill(buf, 4096, 2);
    pwrite_file(F.disk, SIZE - 4096, buf, 4096);
    F.ps.replica = calloc(1, SIZE);
    assert_non_null(F.ps.replica);
    F.ps.auto_mt = true;
    return 0;
}

static void fx_stop_node(void)
{
    if (!F.up)
        return;
    agent_free(F.agent); /* no RT_SIG_STOP: what kill -9 leaves (the page cache) */
    F.agent = NULL;
    rt_actor_fini(&F.ps.actor);
    hub_free(F.hub);
    ev_timer_stop(F.loop, &F.nudge);
    rt_node_free(F.node);
    ev_loop_destroy(F.loop);
    rt_conf_free(F.conf);
    F.up = false;
}

static int teardown(void **state)
{
    (void)state;
    fx_stop_node();
    free(F.ps.replica);
    nftw(F.dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}

static void pump(void)
{
    ev_run(F.loop, EVRUN_ONCE);
}

#define RUN_UNTIL(cond, secs)                                                          \
    do {                                                                               \
        uint64_t end_ = rt_mono_us() + (uint64_t)((secs) * 1e6);                       \
        while (!(cond) && rt_mono_us() < end_)                                         \
            pump();                                                                    \
    } while (0)

static agent_pair_info_t info(void)
{
    agent_pair_info_t in;
    assert_int_equal(agent_pair_info(F.agent, "d0", &in), RT_OK);
    return in;
}

static bool in_state(const char *s)
{
    return strcmp(info().state, s) == 0;
}

/* start the node: conf, hub, fake ps, agent; RT_SIG_START to the agent */
static void fx_start(const char *log_max)
{
    char err[512];
    FILE *f = fopen(F.conf_path, "w");
    assert_non_null(f);
    fprintf(f, "[node]\nname = primary\nroles = agent, ps\ndata_dir = data\n\n"
               "[agent]\nlog_max = %s\n\n"
               "[disk d0]\npath = disk0.img\nlisten = 127.0.0.1:0\ngroup = g1\n",
            log_max);
    fclose(f);
    F.conf = rt_conf_load(F.conf_path, err, sizeof err);
    if (!F.conf)
        fail_msg("conf: %s", err);
    F.loop = ev_loop_new(EVFLAG_AUTO);
    F.node = rt_node_new_on("primary", F.conf, F.loop);
    assert_non_null(F.node);
    assert_int_equal(rt_node_set_trace(F.node, F.trace, 16u << 20, 1), RT_OK);
    ev_timer_init(&F.nudge, nudge_cb, 0.005, 0.005);
    ev_timer_start(F.loop, &F.nudge);
    F.hub = hub_new(F.node, F.conf, err, sizeof err);
    if (!F.hub)
        fail_msg("hub: %s", err);
    assert_int_equal(rt_actor_init(&F.ps.actor, F.node, "ps", ps_dispatch), RT_OK);
    F.ps.hub = F.hub;
    assert_int_equal(hub_register_role(F.hub, RT_ROLE_PS, &F.ps.actor), RT_OK);
    F.agent = agent_new(F.node, F.conf, F.hub, err, sizeof err);
    if (!F.agent)
        fail_msg("agent: %s", err);
    F.up = true;
    assert_string_equal(info().state, "created");
    assert_int_equal(rt_post(agent_actor(F.agent), NULL, RT_SIG_START, NULL, 0, NULL), RT_OK);
    RUN_UNTIL(!in_state("created"), WAIT_S);
}

static void expect_replica_equal(void)
{
    static uint8_t src[SIZE];
    read_disk(src);
    if (F.ps.bad)
        fail_msg("fake ps: %s", F.ps.why);
    for (size_t i = 0; i < SIZE; i += 4096)
        if (memcmp(src + i, F.ps.replica + i, 4096) != 0)
            fail_msg("replica differs from the disk at %zu", i);
}

static void wait_drained(void)
{
    RUN_UNTIL(info().drained && in_state("protected"), WAIT_S);
    if (!info().drained || !in_state("protected"))
        fail_msg("not drained: state %s, captured %llu, mt %llu, dirty %llu", info().state,
                 (unsigned long long)info().captured, (unsigned long long)info().mt_acked,
                 (unsigned long long)info().dirty_bytes);
}

/* ---- NBD client (pumps the loop while it waits) ---------------------------------------- */

static void cli_send(int fd, const void *buf, size_t n)
{
    const uint8_t *p = buf;
    uint64_t end = rt_mono_us() + (uint64_t)(WAIT_S * 1e6);
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
            continue;
        }
        assert_true(w < 0 && (errno == EAGAIN || errno == EINTR));
        assert_true(rt_mono_us() < end);
        ev_run(F.loop, EVRUN_NOWAIT);
    }
}

static void cli_recv(int fd, void *buf, size_t n)
{
    uint8_t *p = buf;
    uint64_t end = rt_mono_us() + (uint64_t)(WAIT_S * 1e6);
    while (n > 0) {
        ssize_t r = recv(fd, p, n, MSG_DONTWAIT);
        if (r > 0) {
            p += r;
            n -= (size_t)r;
            continue;
        }
        assert_true(r < 0 && (errno == EAGAIN || errno == EINTR));
        assert_true(rt_mono_us() < end);
        pump();
    }
}

static int cli_open(void)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)info().nbd_port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    uint8_t g[18], b[20], d[64];
    cli_recv(fd, g, sizeof g);
    assert_memory_equal(g, "NBDMAGICIHAVEOPT", 16);
    nbd_put32(b, NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES);
    cli_send(fd, b, 4);
    nbd_put64(b, NBD_IHAVEOPT);
    nbd_put32(b + 8, NBD_OPT_GO);
    nbd_put32(b + 12, 4 + 2 + 2);
    nbd_put32(d, 2);
    memcpy(d + 4, "d0", 2);
    nbd_put16(d + 6, 0);
    cli_send(fd, b, 16);
    cli_send(fd, d, 8);
    for (int i = 0; i < 8; i++) {
        cli_recv(fd, b, 20);
        assert_true(nbd_get64(b) == NBD_REP_MAGIC);
        uint32_t type = nbd_get32(b + 12), len = nbd_get32(b + 16);
        assert_true(len <= sizeof d);
        if (len)
            cli_recv(fd, d, len);
        if (type == NBD_REP_ACK)
            return fd;
        assert_int_equal(type, NBD_REP_INFO);
    }
    fail_msg("no ACK to NBD_OPT_GO");
    return -1;
}

static void cli_req(int fd, uint16_t type, uint16_t flags, uint64_t cookie, uint64_t off,
                    uint32_t len, const void *data)
{
    uint8_t h[28];
    nbd_put32(h, NBD_REQUEST_MAGIC);
    nbd_put16(h + 4, flags);
    nbd_put16(h + 6, type);
    nbd_put64(h + 8, cookie);
    nbd_put64(h + 16, off);
    nbd_put32(h + 24, len);
    cli_send(fd, h, sizeof h);
    if (data)
        cli_send(fd, data, len);
}

static uint32_t cli_reply(int fd, uint64_t cookie)
{
    uint8_t h[16];
    cli_recv(fd, h, sizeof h);
    assert_int_equal(nbd_get32(h), NBD_SIMPLE_REPLY_MAGIC);
    assert_true(nbd_get64(h + 8) == cookie);
    return nbd_get32(h + 4);
}

static void cli_write(int fd, uint64_t off, uint32_t len, unsigned seed, uint16_t flags)
{
    uint8_t *buf = malloc(len);
    assert_non_null(buf);
    fill(buf, len, seed);
    cli_req(fd, NBD_CMD_WRITE, flags, off, off, len, buf);
    free(buf);
    assert_int_equal(cli_reply(fd, off), 0);
}

static mgmt_pair_t status_of(void)
{
    mgmt_pair_t mp;
    memset(&mp, 0, sizeof mp);
    mp.source_seq = mp.ps_durable_seq = mp.mt_durable_seq = MGMT_UNKNOWN;
    mp.rpo_lag_ms = mp.backlog_bytes = mp.cache_bytes = mp.cache_quota = MGMT_UNKNOWN;
    mp.bitmap_dirty_bytes = MGMT_UNKNOWN;
    mp.drained = -1;
    assert_int_equal(agent_pair_status(F.agent, "d0", &mp), RT_OK);
    assert_true(mp.cache_bytes == MGMT_UNKNOWN); /* the ps's field: left alone */
    return mp;
}

/* ---- trace ----------------------------------------------------------------------------- */

/* every pair transition of the trace, as "from -event-> to" lines */
static void pair_trace(char *out, size_t cap)
{
    static uint8_t buf[1 << 20];
    int fd = open(F.trace, O_RDONLY);
    assert_true(fd >= 0);
    ssize_t n = read(fd, buf, sizeof buf);
    close(fd);
    assert_true(n > 0);
    pb_istream_t is = pb_istream_from_buffer(buf, (size_t)n);
    out[0] = '\0';
    while (is.bytes_left) {
        ss_TraceEvent ev = ss_TraceEvent_init_zero;
        assert_true(pb_decode_ex(&is, ss_TraceEvent_fields, &ev, PB_DECODE_DELIMITED));
        if (strcmp(ev.machine, "pair") != 0)
            continue;
        assert_string_equal(ev.pair, "d0");
        assert_string_equal(ev.actor, "agent");
        size_t l = strlen(out);
        snprintf(out + l, cap - l, "%s -%s%s %s\n", ev.from, ev.event, ev.refused ? "x" : "->",
                 ev.to);
    }
}

/* ---- tests ----------------------------------------------------------------------------- */

/* a new pair: the initial sync sends the data once, holes and zeros as ZERO
 * records, and ends with BATCH_SYNC_DONE; the replica equals the disk */
static void test_initial_sync(void **state)
{
    (void)state;
    fx_start("256M");
    RUN_UNTIL(in_state("protected"), WAIT_S);
    assert_string_equal(info().state, "protected");
    expect_replica_equal();
    agent_pair_info_t in = info();
    assert_true(in.seeded);
    assert_true(in.drained);
    assert_int_equal(in.dirty_bytes, 0);
    /* data read and sent once: the 300 KiB and the last 4 KiB, in whole blocks;
     * the allocated zero blocks went as ZERO records (not data) */
    assert_int_equal(F.ps.data_bytes, 300 * 1024 + 4096);
    assert_int_equal(in.sync_data_bytes, 300 * 1024 + 4096);
    assert_int_equal(in.sync_zero_bytes, 64 * 1024);
    assert_int_equal(in.sync_hole_bytes, SIZE - 300 * 1024 - 4096 - 64 * 1024);
    assert_true(F.ps.zero_records >= 3); /* the holes before, between and after */
    /* the pass ends at its last record, flagged; everything before it is interior */
    assert_int_equal(F.ps.sync_done, 1);
    assert_int_equal(F.ps.sync_done_seq, in.captured);
    assert_int_equal(F.ps.last_point_seq, in.captured);
    assert_int_equal(F.ps.interior, in.captured - 1);
    assert_int_equal(F.ps.gaps, 0);
    assert_int_equal(F.ps.opens, 1);
    assert_int_equal(in.sync_from, 0); /* the pass is over */

    char tr[1024];
    pair_trace(tr, sizeof tr);
    assert_string_equal(tr, "created -initial-> initial_sync\n"
                            "initial_sync -sync_done-> protected\n");
}

/* pipelined overlapping writes, a long write, zeroes, trim, flush, FUA: the
 * records arrive in capture order and the replica equals the disk */
static void test_capture_order(void **state)
{
    (void)state;
    fx_start("256M");
    RUN_UNTIL(in_state("protected"), WAIT_S);
    uint64_t base = info().captured;
    int fd = cli_open();
    static uint8_t w[3 * MiB];
    /* 40 pipelined writes, each half over the previous one */
    for (unsigned i = 0; i < 40; i++) {
        fill(w, 8192, 100 + i);
        cli_req(fd, NBD_CMD_WRITE, 0, i, 2 * MiB + i * 4096 + (i % 3) * 512, 8192, w);
    }
    for (unsigned i = 0; i < 40; i++)
        assert_int_equal(cli_reply(fd, i), 0);
    /* a 2.5 MiB write (three records), zeroes, a trim, a FUA write, a flush */
    fill(w, 5 * MiB / 2, 7);
    cli_req(fd, NBD_CMD_WRITE, 0, 100, 4 * MiB + 123, 5 * MiB / 2, w);
    assert_int_equal(cli_reply(fd, 100), 0);
    cli_req(fd, NBD_CMD_WRITE_ZEROES, 0, 101, 4 * MiB + 8192, 20000, NULL);
    assert_int_equal(cli_reply(fd, 101), 0);
    cli_req(fd, NBD_CMD_TRIM, 0, 102, 1 * MiB, 65536, NULL);
    assert_int_equal(cli_reply(fd, 102), 0);
    cli_write(fd, 7, 1000, 9, NBD_CMD_FLAG_FUA);
    cli_req(fd, NBD_CMD_FLUSH, 0, 103, 0, 0, NULL);
    assert_int_equal(cli_reply(fd, 103), 0);
    /* every write went into the log before its reply, with the next seq */
    agent_pair_info_t in = info();
    assert_int_equal(in.captured, base + 40 + 3 + 1 + 1 + 1);
    assert_int_equal(in.writes, 40 + 1 + 1 + 1 + 1);
    close(fd);
    wait_drained();
    expect_replica_equal();
    assert_int_equal(F.ps.durable, in.captured);
    assert_int_equal(F.ps.gaps, 0);
    /* the split write: two INTERIOR records, then the last one */
    assert_int_equal(F.ps.interior, base - 1 + 2);
}

/* pipelined FLUSHes and FUA writes: parked while the log's commit and the
 * disk's sync run on workers, answered (perhaps out of order) exactly once
 * each, and once all are answered everything captured before the last
 * FLUSH is durable in the log */
static void test_flush_parked(void **state)
{
    (void)state;
    fx_start("256M");
    RUN_UNTIL(in_state("protected"), WAIT_S);
    int fd = cli_open();
    static uint8_t w[8192];
    bool seen[40] = {0};
    unsigned n = 0;
    for (unsigned i = 0; i < 20; i++) {
        fill(w, sizeof w, 300 + i);
        cli_req(fd, NBD_CMD_WRITE, (i % 2) ? NBD_CMD_FLAG_FUA : 0, i, 3 * MiB + i * 8192,
                sizeof w, w);
        n++;
        if (i % 5 == 4) {
            cli_req(fd, NBD_CMD_FLUSH, 0, 20 + i, 0, 0, NULL);
            n++;
        }
    }
    for (unsigned k = 0; k < n; k++) {
        uint8_t h[16];
        cli_recv(fd, h, sizeof h);
        assert_int_equal(nbd_get32(h), NBD_SIMPLE_REPLY_MAGIC);
        assert_int_equal(nbd_get32(h + 4), 0);
        uint64_t c = nbd_get64(h + 8);
        assert_true(c < 40 && !seen[c]);
        seen[c] = true;
    }
    agent_pair_info_t in = info();
    rt_json_t j;
    char want[64];
    assert_int_equal(rt_json_init_alloc(&j, 4096, 1u << 20), RT_OK);
    rt_json_obj(&j, NULL);
    assert_int_equal(agent_status(F.agent, NULL, &j, NULL, 0), MGMT_OK);
    rt_json_obj_end(&j);
    assert_int_equal(rt_json_finish(&j), RT_OK);
    snprintf(want, sizeof want, "\"durable_seq\":%llu", (unsigned long long)in.captured);
    assert_non_null(strstr(j.buf, want));
    rt_json_free(&j);
    close(fd);
    wait_drained();
    expect_replica_equal();
}

/* kill -9 with writes acked but not shipped: the log keeps them; the
 * reopened agent resumes from the ps's durable_seq, nothing lost or sent
 * twice, and the extents being written at the crash are resynced */
static void test_crash_and_resume(void **state)
{
    (void)state;
    fx_start("256M");
    RUN_UNTIL(in_state("protected"), WAIT_S);
    uint64_t synced = info().captured;
    F.ps.full = true; /* nothing more is acknowledged */
    int fd = cli_open();
    for (unsigned i = 0; i < 20; i++)
        cli_write(fd, (uint64_t)i * 12288 + 5 * MiB, 6000, 30 + i, 0);
    /* make sure the last write's extent is still marked active (the cron
     * clears the marks once a second) */
    for (unsigned i = 0; i < 3 && info().active == 0; i++)
        cli_write(fd, 5 * MiB + 100, 100, 50 + i, 0);
    assert_true(info().active > 0);
    agent_pair_info_t before = info();
    assert_true(before.captured >= synced + 20);
    assert_int_equal(F.ps.durable, synced);
    close(fd);
    fx_stop_node(); /* kill -9: no stop, no commit */

    F.ps.full = false;
    fx_start("256M");
    agent_pair_info_t in = info();
    assert_true(in.recovered > 0);
    /* the log survived: the unshipped writes are still there */
    assert_true(in.log_first <= synced + 1 && in.log_last >= before.captured);
    wait_drained(); /* through resyncing: see the trace below */
    /* resumed from the ps's durable_seq: the first batch continued it */
    assert_int_equal(F.ps.first_after_open, synced + 1);
    assert_int_equal(F.ps.gaps, 0);
    expect_replica_equal();
    char tr[1024];
    pair_trace(tr, sizeof tr);
    assert_string_equal(tr, "created -initial-> initial_sync\n"
                            "initial_sync -sync_done-> protected\n"
                            "created -dirty-> resyncing\n"
                            "resyncing -sync_done-> protected\n");
}

/* the log overflows while the ps holds: bitmap mode (state, status); once
 * the ps takes data again the log drains and only the dirty blocks are
 * resynced */
static void test_bitmap_mode(void **state)
{
    (void)state;
    fx_start("64K");
    RUN_UNTIL(in_state("protected"), WAIT_S);
    F.ps.full = true;
    int fd = cli_open();
    /* 64 writes of 4 KiB over 64 blocks: far more than 64K of log */
    for (unsigned i = 0; i < 64; i++)
        cli_write(fd, 6 * MiB + (uint64_t)i * 8192, 4096, 200 + i, 0);
    agent_pair_info_t in = info();
    assert_string_equal(in.state, "bitmap_mode");
    assert_true(in.bitmap_capture);
    assert_true(in.dirty_bytes > 0 && in.dirty_bytes < 64 * 4096);
    assert_true(in.log_bytes <= 64 * 1024);
    uint64_t dirty = in.dirty_bytes, data_before = in.sync_data_bytes;
    /* status says so too */
    rt_json_t j;
    assert_int_equal(rt_json_init_alloc(&j, 4096, 1u << 20), RT_OK);
    rt_json_obj(&j, NULL);
    assert_int_equal(agent_status(F.agent, NULL, &j, NULL, 0), MGMT_OK);
    rt_json_obj_end(&j);
    assert_int_equal(rt_json_finish(&j), RT_OK);
    assert_non_null(strstr(j.buf, "\"state\":\"bitmap_mode\""));
    assert_non_null(strstr(j.buf, "\"capture\":true"));
    rt_json_free(&j);
    mgmt_pair_t mp = status_of();
    assert_string_equal(mp.state, "bitmap_mode");
    assert_string_equal(mp.disk, "d0");
    assert_string_equal(mp.group, "g1");
    assert_string_equal(mp.link, "held");
    assert_int_equal(mp.bitmap_dirty_bytes, dirty);
    assert_int_equal(mp.drained, 0);
    assert_int_equal(mp.source_seq, in.captured);
    assert_int_equal(mp.ps_durable_seq, F.ps.durable);
    assert_true(mp.backlog_bytes >= dirty);

    F.ps.full = false;
    wait_drained();
    expect_replica_equal();
    /* the resync read only the dirty blocks */
    in = info();
    assert_int_equal(in.sync_data_bytes - data_before, dirty);
    char tr[1024];
    pair_trace(tr, sizeof tr);
    assert_string_equal(tr, "created -initial-> initial_sync\n"
                            "initial_sync -sync_done-> protected\n"
                            "protected -log_full-> bitmap_mode\n"
                            "bitmap_mode -drained-> resyncing\n"
                            "resyncing -sync_done-> protected\n");
    close(fd);
}

/* the receiver holds more than the agent ever logged: numbering continues
 * after its durable_seq and the whole disk is sent again (holes too, over a
 * replica that is not blank) */
static void test_receiver_ahead(void **state)
{
    (void)state;
    F.ps.durable = F.ps.mt = 1000;
    memset(F.ps.replica, 0xee, SIZE);
    fx_start("256M");
    RUN_UNTIL(in_state("protected"), WAIT_S);
    assert_string_equal(info().state, "protected");
    assert_int_equal(F.ps.first_after_open, 1001);
    assert_true(info().captured > 1000);
    assert_int_equal(F.ps.gaps, 0);
    expect_replica_equal();
}

/* drained means durable at the master target, not just at the ps */
static void test_drained_needs_mt(void **state)
{
    (void)state;
    fx_start("256M");
    RUN_UNTIL(in_state("protected"), WAIT_S);
    F.ps.auto_mt = false;
    int fd = cli_open();
    cli_write(fd, 4096, 4096, 77, 0);
    RUN_UNTIL(F.ps.durable == info().captured, WAIT_S);
    assert_int_equal(F.ps.durable, info().captured);
    assert_int_equal(info().ps_acked, info().captured);
    assert_false(info().drained);
    usleep(20000);
    mgmt_pair_t mp = status_of();
    assert_int_equal(mp.drained, 0);
    assert_int_equal(mp.backlog_bytes, 4096);
    assert_true(mp.rpo_lag_ms >= 20 && mp.rpo_lag_ms < 10000);
    assert_int_equal(mp.ps_durable_seq, mp.source_seq);
    assert_true(mp.mt_durable_seq < mp.source_seq);
    assert_true(mp.sync_progress == 1.0);
    ps_mt_catch_up(&F.ps);
    RUN_UNTIL(info().drained, WAIT_S);
    assert_true(info().drained);
    assert_int_equal(info().mt_acked, info().captured);
    mp = status_of();
    assert_int_equal(mp.drained, 1);
    assert_int_equal(mp.backlog_bytes, 0);
    assert_int_equal(mp.rpo_lag_ms, 0);
    assert_string_equal(mp.link, "up");
    close(fd);
}

/* a ps that gives credit (WriteAck.credit) with a cache far smaller than
 * the agent's window: the agent never sends past the credit, waits while
 * the cache is full (its log keeps the writes) instead of having batches
 * refused, and goes on as acks give credit back; a batch refused all the
 * same (ACK_FULL) is sent again from the first unacknowledged seq once
 * credit returns, without a new session, and nothing is lost */
static void test_credit_flow(void **state)
{
    (void)state;
    F.ps.credit_on = true;
    F.ps.quota = 256u << 10;
    fx_start("256M");
    RUN_UNTIL(in_state("protected"), WAIT_S);
    assert_true(info().credit_on);
    assert_int_equal(F.ps.over, 0);
    unsigned opens = F.ps.opens;
    F.ps.auto_mt = false;
    int fd = cli_open();
    /* 2 MiB in 32 writes of 64 KiB: eight times the cache, more than the
     * credit of an empty cache */
    for (unsigned i = 0; i < 32; i++)
        cli_write(fd, 4 * MiB + (uint64_t)i * 65536, 65536, 40 + i, 0);
    RUN_UNTIL(false, 0.3);
    agent_pair_info_t in = info();
    assert_string_equal(in.state, "protected"); /* the log holds it: no bitmap mode */
    assert_int_equal(F.ps.over, 0);
    assert_int_equal(F.ps.full_acks, 0);
    assert_true(F.ps.cache <= F.ps.quota);
    /* it sent up to the credit: the next record (64 KiB) did not fit */
    assert_true(F.ps.cache + 65536 + WREC_HDR_SIZE > F.ps.quota);
    assert_true(in.ps_acked < in.captured);     /* and waits with the rest */
    assert_true(in.credit_on);
    assert_int_equal(in.credit, F.ps.quota - F.ps.cache);
    assert_int_equal(in.inflight_bytes, 0);
    unsigned batches = F.ps.batches;
    RUN_UNTIL(false, 0.2);
    assert_int_equal(F.ps.batches, batches); /* waiting, not sending */
    /* the mt catches up again and again: credit comes back each time */
    for (int i = 0; i < 16 && F.ps.mt < info().captured; i++) {
        ps_mt_catch_up(&F.ps);
        RUN_UNTIL(F.ps.durable == info().captured || F.ps.cache >= F.ps.quota, WAIT_S);
    }
    ps_mt_catch_up(&F.ps);
    wait_drained();
    expect_replica_equal();
    assert_int_equal(F.ps.over, 0);
    assert_int_equal(F.ps.full_acks, 0);
    assert_int_equal(F.ps.gaps, 0);

    /* refused all the same: sent again once credit returns */
    F.ps.refuse_once = true;
    uint64_t before = info().captured;
    cli_write(fd, 6 * MiB, 65536, 99, 0);
    RUN_UNTIL(F.ps.full_acks == 1, WAIT_S);
    RUN_UNTIL(false, 0.2);
    assert_int_equal(F.ps.full_acks, 1);
    in = info();
    assert_int_equal(in.rewinds, 1);
    assert_int_equal(in.credit, 0);
    assert_int_equal(in.ps_acked, before);
    assert_true(in.captured > before);
    batches = F.ps.batches;
    RUN_UNTIL(false, 0.2);
    assert_int_equal(F.ps.batches, batches); /* no credit: nothing sent */
    ps_mt_catch_up(&F.ps);                    /* credit again */
    RUN_UNTIL(F.ps.durable == info().captured, WAIT_S);
    ps_mt_catch_up(&F.ps);
    wait_drained();
    expect_replica_equal();
    assert_int_equal(F.ps.gaps, 0);   /* it resumed at durable + 1 */
    assert_int_equal(F.ps.over, 0);
    assert_int_equal(F.ps.opens, opens); /* in the same session */
    close(fd);
}

/* paused: capture goes on, nothing ships; resumed: everything arrives */
static void test_pause_resume(void **state)
{
    (void)state;
    fx_start("256M");
    RUN_UNTIL(in_state("protected"), WAIT_S);
    assert_int_equal(agent_pause(F.agent, "d0", true), RT_OK);
    assert_string_equal(info().state, "paused");
    assert_int_equal(agent_pause(F.agent, "d0", true), RT_ERR); /* refused: stays */
    assert_string_equal(info().state, "paused");
    uint64_t batches = F.ps.batches;
    int fd = cli_open();
    cli_write(fd, 2 * MiB, 8192, 5, 0);
    for (int i = 0; i < 50; i++)
        pump();
    assert_int_equal(F.ps.batches, batches);
    assert_false(info().drained);
    assert_int_equal(agent_pause(F.agent, "d0", false), RT_OK);
    assert_string_equal(info().state, "protected");
    wait_drained();
    expect_replica_equal();
    assert_int_equal(agent_pause(F.agent, "nope", true), RT_ERR);
    close(fd);
}

/* a clean stop commits the log and clears the activity map: the next open
 * is clean (protected, nothing to resync) */
static void test_clean_stop(void **state)
{
    (void)state;
    fx_start("256M");
    RUN_UNTIL(in_state("protected"), WAIT_S);
    int fd = cli_open();
    cli_write(fd, 3 * MiB, 4096, 3, 0);
    close(fd);
    wait_drained();
    assert_int_equal(rt_post(agent_actor(F.agent), NULL, RT_SIG_STOP, NULL, 0, NULL), RT_OK);
    RUN_UNTIL(agent_actor(F.agent)->stopped, WAIT_S);
    assert_true(agent_actor(F.agent)->stopped);
    uint64_t captured = info().captured;
    fx_stop_node();
    fx_start("256M");
    agent_pair_info_t in = info();
    assert_string_equal(in.state, "protected");
    assert_int_equal(in.recovered, 0);
    assert_int_equal(in.dirty_bytes, 0);
    assert_int_equal(in.captured, captured);
    assert_true(in.seeded);
}

/* bad configurations are refused with a reason */
static void test_bad_conf(void **state)
{
    (void)state;
    char err[512];
    FILE *f = fopen(F.conf_path, "w");
    assert_non_null(f);
    fprintf(f, "[node]\nname = primary\nroles = agent\ndata_dir = data\n\n"
               "[disk d0]\npath = missing.img\nlisten = 127.0.0.1:0\n");
    fclose(f);
    rt_conf_t *conf = rt_conf_load(F.conf_path, err, sizeof err);
    assert_non_null(conf);
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    rt_node_t *node = rt_node_new_on("primary", conf, loop);
    hub_t *hub = hub_new(node, conf, err, sizeof err);
    assert_non_null(hub);
    assert_null(agent_new(node, conf, hub, err, sizeof err));
    assert_non_null(strstr(err, "missing.img"));
    hub_free(hub);
    rt_node_free(node);
    ev_loop_destroy(loop);
    rt_conf_free(conf);
    /* no [disk] at all */
    f = fopen(F.conf_path, "w");
    assert_non_null(f);
    fprintf(f, "[node]\nname = primary\nroles = agent\n");
    fclose(f);
    conf = rt_conf_load(F.conf_path, err, sizeof err);
    assert_non_null(conf);
    loop = ev_loop_new(EVFLAG_AUTO);
    node = rt_node_new_on("primary", conf, loop);
    hub = hub_new(node, conf, err, sizeof err);
    assert_null(agent_new(node, conf, hub, err, sizeof err));
    assert_non_null(strstr(err, "[disk NAME]"));
    hub_free(hub);
    rt_node_free(node);
    ev_loop_destroy(loop);
    rt_conf_free(conf);
}

int main(void)
{
    rt_log_setup("test_agent", "primary", RT_LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_initial_sync, setup, teardown),
        cmocka_unit_test_setup_teardown(test_capture_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flush_parked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crash_and_resume, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bitmap_mode, setup, teardown),
        cmocka_unit_test_setup_teardown(test_receiver_ahead, setup, teardown),
        cmocka_unit_test_setup_teardown(test_drained_needs_mt, setup, teardown),
        cmocka_unit_test_setup_teardown(test_credit_flow, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pause_resume, setup, teardown),
        cmocka_unit_test_setup_teardown(test_clean_stop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_conf, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
