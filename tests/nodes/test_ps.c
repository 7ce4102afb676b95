/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * test_ps.c: the process server (nodes/ps/ps.c) on a real node.
 *
 * The node runs the process server, a fake agent (a peer actor that sends
 * deterministic records and keeps the acks) and either a fake master target
 * (a peer that checks order and contents, acking at once or when told) or
 * the real one (nodes/mt), all through the hub as DATAPATH.md routes them.
 * What is checked: one commit and one ack for the batches of a turn;
 * contiguity (gaps refused, overlaps and resends not stored twice, a bad
 * record refused); resume after a reopen; what an ack calls durable is what
 * a reopen recovers after kill -9 (a forked node killed at random moments);
 * the quota (warning, ACK_FULL, nothing dropped, recovery once the mt
 * acks); the credit of every answer (an agent that keeps within it is never
 * refused, waits while the cache is full and is told of room unasked); the same replica with and without compression, and no compression
 * of incompressible data; the unsolicited ack when the mt advances; and the
 * bandwidth limit, measured over a bounded run with generous bounds.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <fcntl.h>
#include <dirent.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "dp_fixture.h"
#include "nodes/common/seglog.h"
#include "nodes/mt/journal.h"
#include "nodes/mt/mt.h"
#include "nodes/ps/ps.h"

/* ---- fixture -------------------------------------------------------------------- */

typedef struct fx {
    char dir[256];
    struct ev_loop *loop;
    rt_conf_t *conf;
    rt_node_t *node;
    hub_t *hub;
    ps_t *ps;
    mt_t *mt;          /* the real master target, or NULL */
    peer_t agent;
    peer_t fmt;        /* the fake master target, when fake_mt */
    bool fake_mt;
    ev_timer nudge;
} fx_t;

static fx_t F;

/* bring up a node in F.dir with [ps] settings @ps_conf; a real mt, a fake
 * one, or none */
static void fx_up(const char *ps_conf, bool real_mt, bool fake_mt)
{
    char text[1024], err[512];
    snprintf(text, sizeof text,
             "[node]\nname = t\nroles = agent,ps,mt\ndata_dir = %s\n[ps]\n%s\n%s\n", F.dir,
             ps_conf, strstr(ps_conf, "cache =") ? "" : "cache = spool");
    F.conf = dp_conf(F.dir, text);
    F.loop = ev_loop_new(EVFLAG_AUTO);
    F.node = rt_node_new_on("t", F.conf, F.loop);
    assert_non_null(F.node);
    F.hub = hub_new(F.node, F.conf, err, sizeof err);
    if (!F.hub)
        fail_msg("hub: %s", err);
    peer_init(&F.agent, F.node, F.hub, "agent", RT_ROLE_AGENT, RT_ROLE_PS);
    F.fake_mt = fake_mt;
    if (fake_mt) {
        peer_init(&F.fmt, F.node, F.hub, "fake-mt", RT_ROLE_MT, RT_ROLE_PS);
        F.fmt.img = calloc(1, DISK_SIZE);
        assert_non_null(F.fmt.img);
    }
    if (real_mt) {
        F.mt = mt_new(F.node, F.conf, F.hub, err, sizeof err);
        if (!F.mt)
            fail_msg("mt: %s", err);
    }
    F.ps = ps_new(F.node, F.conf, F.hub, err, sizeof err);
    if (!F.ps)
        fail_msg("ps: %s", err);
    ev_timer_init(&F.nudge, dp_nudge_cb, 0.005, 0.005);
    ev_timer_start(F.loop, &F.nudge);
}

static void fx_down(void)
{
    if (!F.loop)
        return;
    ev_timer_stop(F.loop, &F.nudge);
    ps_free(F.ps);
    mt_free(F.mt);
    peer_fini(&F.agent);
    if (F.fake_mt)
        peer_fini(&F.fmt);
    hub_free(F.hub);
    rt_node_free(F.node);
    ev_loop_destroy(F.loop);
    rt_conf_free(F.conf);
    F.ps = NULL;
    F.mt = NULL;
    F.hub = NULL;
    F.node = NULL;
    F.loop = NULL;
    F.conf = NULL;
}

static int setup(void **state)
{
    (void)state;
    memset(&F, 0, sizeof F);
    dp_tmpdir(F.dir, sizeof F.dir, "test_ps");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    fx_down();
    dp_rmtree(F.dir);
    return 0;
}

/* open the pair from the agent and wait for the answer */
static void agent_open(uint64_t last_seq)
{
    int before = F.agent.opens;
    peer_open(&F.agent, last_seq, 1);
    RUN_UNTIL(F.loop, F.agent.opens > before, 5);
    assert_true(F.agent.opens > before);
}

/* send first..last as one batch and wait for an ack */
static void send_wait(uint64_t first, uint64_t last, uint32_t flags)
{
    int before = F.agent.acks;
    assert_int_equal(peer_send_batch(&F.agent, first, last, flags), RT_OK);
    RUN_UNTIL(F.loop, F.agent.acks > before, 5);
    assert_true(F.agent.acks > before);
}

/* the records of a closed spool, checked against the generator; @return count */
static uint64_t spool_check(const char *dir, uint32_t len, bool compressible, uint64_t *durable)
{
    char path[512], err[512];
    snprintf(path, sizeof path, "%s/ps/p1/spool", dir);
    seglog_conf_t lc = {0};
    seglog_t *l = seglog_open(path, &lc, err, sizeof err);
    if (!l)
        fail_msg("spool: %s", err);
    *durable = seglog_durable_seq(l);
    seglog_iter_t *it = seglog_iter_new(l, 1, true, err, sizeof err);
    assert_non_null(it);
    static uint8_t want[64u << 10];
    wrec_hdr_t h, g;
    const uint8_t *st;
    uint64_t n = 0, prev = seglog_first_seq(l) - 1;
    int r;
    while ((r = seglog_iter_next(it, UINT64_MAX, &h, &st, NULL, err, sizeof err)) == RT_OK) {
        assert_int_equal(h.seq, prev + 1);
        dp_gen(h.seq, len, compressible, &g, want);
        assert_int_equal(h.offset, g.offset);
        assert_int_equal(h.hash, g.hash);
        assert_memory_equal(st, want, len);
        prev = h.seq;
        n++;
    }
    assert_int_equal(r, SEGLOG_END);
    assert_int_equal(prev, *durable);
    seglog_iter_free(it);
    seglog_close(l);
    return n;
}

/* ---- group commit, contiguity, resume ------------------------------------------------ */

static void test_one_ack_per_turn(void **state)
{
    (void)state;
    fx_up("", false, false);
    agent_open(0);
    assert_int_equal(F.agent.open.durable_seq, 0);
    /* ten batches in one turn: one commit, one ack covering all of them */
    for (uint64_t b = 0; b < 10; b++)
        assert_int_equal(peer_send_batch(&F.agent, b * 4 + 1, b * 4 + 4, 0), RT_OK);
    RUN_UNTIL(F.loop, F.agent.max_durable == 40, 5);
    RUN_UNTIL(F.loop, false, 0.05);
    assert_int_equal(F.agent.max_durable, 40);
    assert_int_equal(F.agent.acks, 1);
    assert_int_equal(F.agent.ack.status, ss_AckStatus_ACK_OK);
    ps_pair_info_t pi;
    assert_int_equal(ps_pair_info(F.ps, "p1", &pi), RT_OK);
    assert_int_equal(pi.durable_seq, 40);
    fx_down();
    uint64_t durable = 0;
    assert_int_equal(spool_check(F.dir, BLOCK, false, &durable), 40);
    assert_int_equal(durable, 40);
}

static void test_contiguity(void **state)
{
    (void)state;
    static uint8_t run[1u << 20];
    fx_up("", false, false);
    agent_open(0);
    send_wait(1, 10, 0);
    assert_int_equal(F.agent.ack.durable, 10);

    /* a gap: refused with where the spool is */
    send_wait(15, 20, 0);
    assert_int_equal(F.agent.ack.status, ss_AckStatus_ACK_OK);
    assert_int_equal(F.agent.ack.durable, 10);
    ps_pair_info_t pi;
    ps_pair_info(F.ps, "p1", &pi);
    assert_int_equal(pi.durable_seq, 10);

    /* an overlap: only the new part is stored */
    send_wait(5, 12, 0);
    assert_int_equal(F.agent.ack.durable, 12);
    /* a plain resend: acknowledged, nothing stored */
    send_wait(1, 12, 0);
    assert_int_equal(F.agent.ack.durable, 12);
    assert_int_equal(F.agent.ack.status, ss_AckStatus_ACK_OK);

    /* a record whose payload does not match its capture hash */
    size_t n = dp_run(13, 14, BLOCK, false, run, sizeof run);
    run[n - 100] ^= 0x01;
    ss_WriteBatch wb = {.first_seq = 13, .last_seq = 14, .count = 2, .raw_len = (uint32_t)n};
    snprintf(wb.pair, sizeof wb.pair, "p1");
    int before = F.agent.acks;
    assert_int_equal(peer_send_raw(&F.agent, &wb, run, n), RT_OK);
    RUN_UNTIL(F.loop, F.agent.acks > before, 5);
    assert_int_equal(F.agent.ack.status, ss_AckStatus_ACK_BAD_RECORD);
    assert_int_equal(F.agent.ack.durable, 12);

    /* a batch header that lies about its count */
    run[n - 100] ^= 0x01;
    wb.count = 3;
    before = F.agent.acks;
    assert_int_equal(peer_send_raw(&F.agent, &wb, run, n), RT_OK);
    RUN_UNTIL(F.loop, F.agent.acks > before, 5);
    assert_int_equal(F.agent.ack.status, ss_AckStatus_ACK_BAD_RECORD);

    /* an unknown pair */
    snprintf(wb.pair, sizeof wb.pair, "nobody");
    wb.count = 2;
    before = F.agent.acks;
    assert_int_equal(peer_send_raw(&F.agent, &wb, run, n), RT_OK);
    RUN_UNTIL(F.loop, F.agent.acks > before, 5);
    assert_int_equal(F.agent.ack.status, ss_AckStatus_ACK_UNKNOWN_PAIR);

    /* and the good one goes in */
    send_wait(13, 14, 0);
    assert_int_equal(F.agent.ack.durable, 14);
    fx_down();
    uint64_t durable = 0;
    assert_int_equal(spool_check(F.dir, BLOCK, false, &durable), 14);
    assert_int_equal(durable, 14);
}

static void test_resume_after_reopen(void **state)
{
    (void)state;
    fx_up("", false, false);
    agent_open(0);
    send_wait(1, 30, 0);
    assert_int_equal(F.agent.ack.durable, 30);
    fx_down();

    fx_up("", false, false);
    agent_open(30);
    assert_int_equal(F.agent.open.durable_seq, 30);
    assert_int_equal(F.agent.open.last_seq, 30);
    assert_int_equal(F.agent.open.disk_size, DISK_SIZE);
    assert_string_equal(F.agent.open.disk, "disk0");
    send_wait(25, 40, 0); /* the agent resends a little too much: harmless */
    assert_int_equal(F.agent.ack.durable, 40);
    fx_down();
    uint64_t durable = 0;
    assert_int_equal(spool_check(F.dir, BLOCK, false, &durable), 40);
}

/* ---- kill -9 ------------------------------------------------------------------------ */

/* the child: a node whose agent keeps a window of batches in flight and
 * writes every durable_seq it is told to @fd; runs until killed */
static void child_run(int fd)
{
    fx_up("", false, false);
    F.agent.ack_fd = fd;
    F.agent.window = 4;
    F.agent.per = 8;
    agent_open(0);
    /* resume where the spool is, as an agent does */
    F.agent.sent_last = F.agent.max_durable = F.agent.open.durable_seq;
    for (int i = 0; i < F.agent.window; i++)
        peer_send_batch(&F.agent, F.agent.sent_last + 1, F.agent.sent_last + 8, 0);
    RUN_UNTIL(F.loop, false, 20);
    _exit(0);
}

/* read 8-byte durable_seqs from @fd until @ms pass; @return the largest */
static uint64_t drain_acks(int fd, int ms, int *count)
{
    uint64_t max = 0, d;
    uint64_t end = rt_mono_us() + (uint64_t)ms * 1000u;
    for (;;) {
        int left = (int)((int64_t)(end - rt_mono_us()) / 1000);
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        if (left < 0)
            left = 0;
        if (poll(&pf, 1, left) <= 0)
            break;
        ssize_t r = read(fd, &d, sizeof d);
        if (r != (ssize_t)sizeof d)
            break;
        if (d > max)
            max = d;
        (*count)++;
    }
    return max;
}

static void test_kill9_durable_before_ack(void **state)
{
    (void)state;
    static const int delays_ms[] = {20, 70, 160};
    uint64_t last_durable = 0;
    for (unsigned round = 0; round < 3; round++) {
        int pfd[2];
        assert_int_equal(pipe(pfd), 0);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            close(pfd[0]);
            child_run(pfd[1]);
        }
        close(pfd[1]);
        int n = 0;
        /* the first ack, then a while of running, then kill -9 mid-stream */
        struct pollfd pf = {.fd = pfd[0], .events = POLLIN};
        assert_int_equal(poll(&pf, 1, 5000), 1);
        uint64_t acked = drain_acks(pfd[0], delays_ms[round], &n);
        kill(pid, SIGKILL);
        int st;
        waitpid(pid, &st, 0);
        uint64_t more = drain_acks(pfd[0], 0, &n); /* acks written before it died */
        if (more > acked)
            acked = more;
        close(pfd[0]);
        assert_true(WIFSIGNALED(st));
        assert_true(n > 0);
        uint64_t durable = 0;
        uint64_t recs = spool_check(F.dir, BLOCK, false, &durable);
        /* everything acknowledged is there, in order, intact */
        assert_true(durable >= acked);
        assert_true(recs >= acked);
        assert_true(durable >= last_durable); /* each round resumes from the last */
        assert_true(durable > last_durable);  /* and made progress */
        last_durable = durable;
    }
}

/* ---- quota ----------------------------------------------------------------------------- */

static void test_quota_full_then_recovery(void **state)
{
    (void)state;
    /* 256 KiB of cache, 4 KiB records; the fake mt takes batches but acks
     * nothing until told. The fake agent ignores WriteAck.credit (an older
     * agent): the ps takes the CODEC_CREDIT_MIN it gave at the open, when
     * nothing was pending, and refuses what goes past it */
    fx_up("cache_quota = 256K\ncompress = false", false, true);
    F.agent.window = 2;
    F.agent.per = 4;
    F.agent.limit = 480;
    agent_open(0);
    RUN_UNTIL(F.loop, F.fmt.sender != NULL, 5); /* the ps opened the pair at the mt */
    for (int i = 0; i < F.agent.window; i++)
        assert_int_equal(peer_send_batch(&F.agent, F.agent.sent_last + 1,
                                         F.agent.sent_last + 4, 0),
                         RT_OK);
    RUN_UNTIL(F.loop, F.agent.full > 0, 10);
    assert_true(F.agent.full > 0);
    RUN_UNTIL(F.loop, false, 0.3); /* batches of that turn still get their commit */
    assert_true(ps_cache_warning(F.ps));
    uint64_t used = ps_cache_bytes(F.ps);
    /* the promised credit and segment headers over, never a batch more */
    assert_true(used <= CODEC_CREDIT_MIN + 2048);
    assert_true(used >= CODEC_CREDIT_MIN - 2 * 4 * (BLOCK + WREC_HDR_SIZE));
    ps_pair_info_t pi;
    ps_pair_info(F.ps, "p1", &pi);
    uint64_t held = pi.durable_seq;
    assert_true(held > 40);
    assert_int_equal(F.agent.max_durable, held);
    assert_int_equal(pi.mt_durable_seq, 0);
    assert_true(pi.full_acks > 0);
    /* stays held while the mt says nothing */
    int acks = F.agent.acks;
    RUN_UNTIL(F.loop, false, 0.3);
    ps_pair_info(F.ps, "p1", &pi);
    assert_int_equal(pi.durable_seq, held);
    assert_int_equal(F.agent.acks, acks);

    /* the mt acks: cache freed, the agent told (unsolicited), and it goes on */
    F.fmt.auto_ack = true;
    peer_ack_now(&F.fmt, ss_AckStatus_ACK_OK);
    RUN_UNTIL(F.loop, F.agent.acks > acks, 5);
    assert_true(F.agent.acks > acks);
    assert_int_equal(F.agent.ack.status, ss_AckStatus_ACK_OK);
    assert_true(F.agent.ack.mt_durable > 0);
    RUN_UNTIL(F.loop, F.fmt.got >= 480 && F.agent.max_mt_durable >= 480, 20);
    assert_int_equal(F.fmt.errors, 0);
    assert_int_equal(F.fmt.got, 480);
    assert_int_equal(F.agent.max_durable, 480);
    assert_int_equal(F.agent.max_mt_durable, 480);
    /* nothing dropped, nothing out of order: the replica is the source */
    static uint8_t want[DISK_SIZE];
    dp_image(480, BLOCK, false, want);
    assert_memory_equal(F.fmt.img, want, DISK_SIZE);
    /* the cache drained back under the warning */
    RUN_UNTIL(F.loop, !ps_cache_warning(F.ps), 3);
    assert_false(ps_cache_warning(F.ps));
    assert_true(ps_cache_bytes(F.ps) < (256u << 10) / 2);
}

/* the fake agent as the real one ships: batches of 4 records while the
 * credit of the last answer (PairOpen, then each WriteAck, counted from its
 * durable_seq) covers them, up to seq @limit; @return once it sent @limit
 * or has had no credit for @idle_s seconds */
static void drive_within_credit(uint64_t limit, double idle_s)
{
    const uint64_t rec = BLOCK + WREC_HDR_SIZE;
    uint64_t d = F.agent.open.durable_seq, credit = F.agent.open.credit;
    int acks = -1;
    uint64_t idle_end = rt_mono_us() + (uint64_t)(idle_s * 1e6);
    uint64_t hard_end = rt_mono_us() + 30000000u;
    assert_true(F.agent.open.has_credit);
    while (F.agent.sent_last < limit && rt_mono_us() < idle_end && rt_mono_us() < hard_end) {
        if (F.agent.acks != acks && F.agent.acks > 0) {
            acks = F.agent.acks;
            assert_true(F.agent.ack.has_credit);
            d = F.agent.ack.durable;
            credit = F.agent.ack.credit;
        }
        uint64_t last = F.agent.sent_last + 4 <= limit ? F.agent.sent_last + 4 : limit;
        if ((last - d) * rec <= credit &&
            peer_send_batch(&F.agent, F.agent.sent_last + 1, last, 0) == RT_OK) {
            idle_end = rt_mono_us() + (uint64_t)(idle_s * 1e6);
            continue;
        }
        ev_run(F.loop, EVRUN_ONCE);
    }
}

/* WriteAck.credit: an agent that keeps within it is never refused, even
 * with a cache far smaller than what it has to send; the credit falls to 0
 * while the master target takes nothing, comes back (an unsolicited ack)
 * once it acknowledges, and nothing is lost or sent twice */
static void test_credit(void **state)
{
    (void)state;
    fx_up("cache_quota = 256K\ncompress = false", false, true);
    agent_open(0);
    RUN_UNTIL(F.loop, F.fmt.sender != NULL, 5);
    /* nothing pending: at least the floor, whatever the quota */
    assert_true(F.agent.open.has_credit);
    assert_true(F.agent.open.credit >= CODEC_CREDIT_MIN);

    /* the mt takes nothing: the credit runs out, with no refusal */
    drive_within_credit(480, 0.5);
    RUN_UNTIL(F.loop, F.agent.max_durable == F.agent.sent_last, 5);
    assert_int_equal(F.agent.full, 0);
    assert_true(F.agent.sent_last < 480);       /* held back by the credit ... */
    assert_true(F.agent.sent_last * (BLOCK + WREC_HDR_SIZE) >= (256u << 10)); /* ... not before */
    assert_int_equal(F.agent.max_durable, F.agent.sent_last);
    assert_true(F.agent.ack.has_credit);
    assert_int_equal(F.agent.ack.credit, 0);
    assert_true(ps_cache_bytes(F.ps) <= CODEC_CREDIT_MIN + 2048);
    ps_pair_info_t pi;
    assert_int_equal(ps_pair_info(F.ps, "p1", &pi), RT_OK);
    assert_int_equal(pi.full_acks, 0);
    uint64_t stalled = F.agent.sent_last;
    int acks = F.agent.acks;

    /* the mt acknowledges: room again, and the agent is told unasked */
    F.fmt.auto_ack = true;
    peer_ack_now(&F.fmt, ss_AckStatus_ACK_OK);
    RUN_UNTIL(F.loop, F.agent.acks > acks, 5);
    assert_true(F.agent.acks > acks);
    assert_true(F.agent.ack.credit > 0);
    drive_within_credit(480, 2.0);
    RUN_UNTIL(F.loop, F.fmt.got >= 480 && F.agent.max_mt_durable >= 480, 20);
    assert_true(F.agent.sent_last == 480 && stalled < 480);
    assert_int_equal(F.agent.full, 0);
    assert_int_equal(F.fmt.errors, 0);
    assert_int_equal(F.fmt.dups, 0);
    assert_int_equal(F.fmt.got, 480);
    assert_int_equal(F.agent.max_mt_durable, 480);
    assert_int_equal(ps_pair_info(F.ps, "p1", &pi), RT_OK);
    assert_int_equal(pi.full_acks, 0);
    static uint8_t want[DISK_SIZE];
    dp_image(480, BLOCK, false, want);
    assert_memory_equal(F.fmt.img, want, DISK_SIZE);
}

/* the mt comes back without writes it had acknowledged, which the cache has
 * freed: the ps says so and waits, it does not resend in a loop */
static void test_mt_lost_data_held(void **state)
{
    (void)state;
    fx_up("cache_quota = 256K\ncompress = false", false, true);
    F.fmt.auto_ack = true;
    agent_open(0);
    RUN_UNTIL(F.loop, F.fmt.sender != NULL, 5);
    for (uint64_t s = 1; s <= 80; s += 4)
        send_wait(s, s + 3, 0);
    RUN_UNTIL(F.loop, F.agent.max_mt_durable == 80, 5);
    assert_int_equal(F.agent.max_mt_durable, 80);
    /* the fake mt forgets everything and asks to be opened again */
    F.fmt.got = 0;
    memset(F.fmt.img, 0, DISK_SIZE);
    peer_ack_now(&F.fmt, ss_AckStatus_ACK_UNKNOWN_PAIR);
    RUN_UNTIL(F.loop, false, 0.3);
    int batches = F.fmt.batches;
    RUN_UNTIL(F.loop, false, 0.5);
    assert_int_equal(F.fmt.batches, batches); /* held, not looping */
    assert_int_equal(F.fmt.got, 0);
    assert_int_equal(F.fmt.errors, 0);
    /* the agent keeps being served by the cache meanwhile */
    send_wait(81, 84, 0);
    assert_int_equal(F.agent.ack.durable, 84);
}

/* ---- relay mode ------------------------------------------------------------------------ */

/* [ps] cache = relay: the agent is told durable only what the mt has, and
 * after a restart of the ps only once the mt said where it is */
static void test_relay_acks_follow_mt(void **state)
{
    (void)state;
    const char *conf = "cache = relay\ncompress = false";
    const uint64_t mt_has = 4;
    fx_up(conf, false, true);
    agent_open(0);
    RUN_UNTIL(F.loop, F.fmt.sender != NULL, 5);
    send_wait(1, 4, 0);
    send_wait(5, 8, 0);
    RUN_UNTIL(F.loop, F.fmt.got == 8, 5);
    assert_int_equal(F.fmt.got, 8);
    RUN_UNTIL(F.loop, false, 0.1);
    assert_int_equal(F.agent.max_durable, 0); /* in the spool, not at the mt: not durable */
    F.fmt.got = mt_has;                       /* the mt says it has 1..4 */
    peer_ack_now(&F.fmt, ss_AckStatus_ACK_OK);
    RUN_UNTIL(F.loop, F.agent.max_durable == 4, 5);
    assert_int_equal(F.agent.max_durable, 4);
    assert_int_equal(F.agent.ack.durable, 4);

    /* a new ps on the same spool (it holds 1..8): the agent's PairOpen is
     * answered only when the mt has said where it is, with the mt's seq */
    fx_down();
    fx_up(conf, false, true);
    F.fmt.got = mt_has;
    F.fmt.hold_open = true;
    int before = F.agent.opens;
    peer_open(&F.agent, 8, 1);
    RUN_UNTIL(F.loop, F.fmt.held_opens > 0, 5);
    assert_true(F.fmt.held_opens > 0);
    RUN_UNTIL(F.loop, false, 0.2);
    assert_int_equal(F.agent.opens, before); /* no answer yet */
    peer_open_release(&F.fmt);
    RUN_UNTIL(F.loop, F.agent.opens > before, 5);
    assert_int_equal(F.agent.opens, before + 1);
    assert_int_equal(F.agent.open.durable_seq, 4);
}

/* relay: a spool that no longer opens (an unsynced one after a power loss)
 * is started afresh, and the agent resumes where the mt is */
static void test_relay_spool_afresh(void **state)
{
    (void)state;
    const char *conf = "cache = relay\ncompress = false";
    fx_up(conf, false, true);
    F.fmt.auto_ack = true;
    agent_open(0);
    RUN_UNTIL(F.loop, F.fmt.sender != NULL, 5);
    send_wait(1, 8, 0);
    RUN_UNTIL(F.loop, F.agent.max_durable == 8, 5);
    assert_int_equal(F.agent.max_durable, 8);
    fx_down();
    /* every segment file of the spool gets a garbage header */
    char path[600];
    snprintf(path, sizeof path, "%s/ps/p1/spool", F.dir);
    DIR *d = opendir(path);
    assert_non_null(d);
    struct dirent *e;
    int n = 0;
    while ((e = readdir(d)) != NULL) {
        if (!strstr(e->d_name, ".seg"))
            continue;
        int fd = openat(dirfd(d), e->d_name, O_WRONLY);
        assert_true(fd >= 0);
        assert_int_equal(pwrite(fd, "garbage!garbage!", 16, 0), 16);
        close(fd);
        n++;
    }
    closedir(d);
    assert_true(n > 0);
    fx_up(conf, false, true);
    F.fmt.got = 8;
    F.fmt.auto_ack = true;
    agent_open(8);
    assert_int_equal(F.agent.open.durable_seq, 8); /* the mt's */
    send_wait(9, 12, 0);
    RUN_UNTIL(F.loop, F.agent.max_durable == 12, 5);
    assert_int_equal(F.agent.max_durable, 12);
    assert_int_equal(F.fmt.got, 12);
    assert_int_equal(F.fmt.errors, 0);
}

/* the same restart in spool mode answers at once with the spool's durable seq */
static void test_spool_answers_from_spool(void **state)
{
    (void)state;
    const char *conf = "cache = spool\ncompress = false";
    const uint64_t mt_has = 0;
    fx_up(conf, false, true);
    agent_open(0);
    RUN_UNTIL(F.loop, F.fmt.sender != NULL, 5);
    send_wait(1, 4, 0);
    RUN_UNTIL(F.loop, F.agent.max_durable == 4, 5);
    assert_int_equal(F.agent.max_durable, 4); /* durable in the spool, the mt has acked nothing */
    fx_down();
    fx_up(conf, false, true);
    F.fmt.got = mt_has;
    F.fmt.hold_open = true;
    agent_open(4);
    assert_int_equal(F.agent.open.durable_seq, 4);
    assert_int_equal(F.fmt.got, 0); /* answered from the spool, the mt still silent */
}

/* ---- compression, unsolicited acks --------------------------------------------------------- */

/* push 1..@n through ps and the real mt; @return the ps counters */
static ps_pair_info_t run_real(const char *ps_conf, uint64_t n, bool compressible)
{
    fx_up(ps_conf, true, false);
    F.agent.compressible = compressible;
    agent_open(0);
    for (uint64_t s = 1; s <= n; s += 8)
        assert_int_equal(peer_send_batch(&F.agent, s, s + 7, 0), RT_OK);
    RUN_UNTIL(F.loop, F.agent.max_durable == n, 10);
    assert_int_equal(F.agent.max_durable, n);
    /* the agent sends nothing more; the ps tells it when the mt has it */
    int sent = F.agent.sent_batches;
    RUN_UNTIL(F.loop, F.agent.max_mt_durable == n, 10);
    assert_int_equal(F.agent.max_mt_durable, n);
    assert_int_equal(F.agent.sent_batches, sent);
    ps_pair_info_t pi;
    assert_int_equal(ps_pair_info(F.ps, "p1", &pi), RT_OK);
    mt_pair_info_t mi;
    assert_int_equal(mt_pair_info(F.mt, "p1", &mi), RT_OK);
    assert_int_equal(mi.durable_seq, n);
    assert_int_equal(mi.bad_batches, 0);
    fx_down();
    return pi;
}

static void restore_to(const char *out)
{
    char mtdir[512], err[512];
    snprintf(mtdir, sizeof mtdir, "%s/mt", F.dir);
    if (mtj_restore(mtdir, "p1", "latest", out, NULL, err, sizeof err) != RT_OK)
        fail_msg("restore: %s", err);
}

static void read_file(const char *path, uint8_t *buf, size_t n)
{
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(pread(fd, buf, n, 0), (ssize_t)n);
    close(fd);
}

static void test_compression_same_replica(void **state)
{
    (void)state;
    static uint8_t want[DISK_SIZE], a[DISK_SIZE], b[DISK_SIZE];
    char img_a[300], img_b[300], keep[256];
    const uint64_t n = 120;

    ps_pair_info_t on = run_real("compress = true", n, true);
    snprintf(img_a, sizeof img_a, "%s.a.img", F.dir);
    restore_to(img_a);
    snprintf(keep, sizeof keep, "%s", F.dir);
    dp_rmtree(F.dir);
    assert_int_equal(mkdir(F.dir, 0700), 0);

    ps_pair_info_t off = run_real("compress = false", n, true);
    snprintf(img_b, sizeof img_b, "%s.b.img", F.dir);
    restore_to(img_b);

    dp_image(n, BLOCK, true, want);
    read_file(img_a, a, DISK_SIZE);
    read_file(img_b, b, DISK_SIZE);
    unlink(img_a);
    unlink(img_b);
    assert_memory_equal(a, want, DISK_SIZE);
    assert_memory_equal(b, want, DISK_SIZE);
    /* it really was compressed the first time, and not the second */
    assert_true(on.batches_lz4 > 0);
    assert_int_equal(on.batches_lz4, on.batches_sent);
    assert_true(on.wire_sent * 4 < on.raw_sent);
    assert_int_equal(off.batches_lz4, 0);
    assert_int_equal(off.wire_sent, off.raw_sent);
    assert_int_equal(on.raw_sent, off.raw_sent);

    /* incompressible data is sent raw even with compression on */
    dp_rmtree(F.dir);
    assert_int_equal(mkdir(F.dir, 0700), 0);
    ps_pair_info_t rnd = run_real("compress = true", 40, false);
    assert_true(rnd.batches_sent > 0);
    assert_int_equal(rnd.batches_lz4, 0);
    assert_int_equal(rnd.wire_sent, rnd.raw_sent);
}

/* ---- bandwidth ------------------------------------------------------------------------------- */

static void test_bandwidth_limit(void **state)
{
    (void)state;
    /* 512 KiB/s; 48 incompressible records of 32 KiB (about 1.5 MiB) */
    const double bw = 512.0 * 1024;
    fx_up("bandwidth = 512K\ncompress = false", false, true);
    F.fmt.auto_ack = true;
    F.agent.len = 32u << 10;
    agent_open(0);
    RUN_UNTIL(F.loop, F.fmt.sender != NULL, 5);
    uint64_t t0 = rt_mono_us();
    for (uint64_t s = 1; s <= 48; s += 4)
        assert_int_equal(peer_send_batch(&F.agent, s, s + 3, 0), RT_OK);
    RUN_UNTIL(F.loop, F.fmt.got == 48, 15);
    double secs = (double)(rt_mono_us() - t0) / 1e6;
    assert_int_equal(F.fmt.got, 48);
    assert_int_equal(F.fmt.errors, 0);
    double bytes = (double)F.fmt.got_bytes;
    /* the bucket lets a burst of bw/4 through, then bw per second: the run
     * cannot be faster than (bytes - burst - one batch) / bw, and a limit
     * that works is not several times slower than asked either */
    double floor_s = (bytes - bw / 4 - 64 * 1024) / bw;
    print_message("bandwidth: %.0f bytes in %.2f s (%.0f B/s, limit %.0f)\n", bytes, secs,
                  bytes / secs, bw);
    assert_true(secs >= floor_s * 0.9);
    assert_true(bytes / secs >= bw * 0.3);
}

/* ---- apart: agent + ps on one node, mt on another, over mutual TLS ---------------------------- */

static unsigned free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof sa;
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &sl) != 0)
        return 0;
    close(fd);
    return ntohs(sa.sin_port);
}

typedef struct sec {
    rt_conf_t *conf;
    rt_node_t *node;
    hub_t *hub;
    mt_t *mt;
} sec_t;

static void sec_up(sec_t *s, const char *path)
{
    char err[512];
    s->conf = rt_conf_load(path, err, sizeof err);
    if (!s->conf)
        fail_msg("%s", err);
    s->node = rt_node_new_on("sec", s->conf, F.loop);
    assert_non_null(s->node);
    s->hub = hub_new(s->node, s->conf, err, sizeof err);
    if (!s->hub)
        fail_msg("hub: %s", err);
    s->mt = mt_new(s->node, s->conf, s->hub, err, sizeof err);
    if (!s->mt)
        fail_msg("mt: %s", err);
    assert_int_equal(rt_post(hub_actor(s->hub), NULL, RT_SIG_START, NULL, 0, NULL), RT_OK);
}

static void sec_down(sec_t *s)
{
    mt_free(s->mt);
    hub_free(s->hub);
    rt_node_free(s->node);
    rt_conf_free(s->conf);
    memset(s, 0, sizeof *s);
}

static void test_apart_over_links(void **state)
{
    (void)state;
    char err[512], ppath[400], spath[400];
    static uint8_t want[DISK_SIZE], got[DISK_SIZE];
    if (rt_cert_ca_create(F.dir, NULL, 0, err, sizeof err) != RT_OK ||
        rt_cert_issue(F.dir, NULL, "prim", 0, 0, err, sizeof err) != RT_OK ||
        rt_cert_issue(F.dir, NULL, "sec", 0, 0, err, sizeof err) != RT_OK)
        fail_msg("certificates: %s", err);
    unsigned port = free_port();
    assert_true(port > 0);
    const char *lk = "[link]\nhb_interval = 0.1\nhb_timeout = 1\nbackoff_min = 0.02\n"
                     "backoff_max = 0.2\n";
    snprintf(ppath, sizeof ppath, "%s/prim.ini", F.dir);
    snprintf(spath, sizeof spath, "%s/sec.ini", F.dir);
    FILE *f = fopen(ppath, "w");
    assert_non_null(f);
    fprintf(f,
            "[node]\nname = prim\nroles = agent, ps\ndata_dir = prim\n[ps]\ncache = spool\n"
            "[tls]\nca = ca.crt\ncert = prim.crt\nkey = prim.key\n"
            "[peer sec]\naddress = 127.0.0.1:%u\n%s",
            port, lk);
    fclose(f);
    f = fopen(spath, "w");
    assert_non_null(f);
    fprintf(f,
            "[node]\nname = sec\nroles = mt\ndata_dir = sec\n"
            "[tls]\nca = ca.crt\ncert = sec.crt\nkey = sec.key\n"
            "[listen]\nlink = 127.0.0.1:%u\n%s",
            port, lk);
    fclose(f);
    char d[400];
    snprintf(d, sizeof d, "%s/prim", F.dir);
    mkdir(d, 0700);
    snprintf(d, sizeof d, "%s/sec", F.dir);
    mkdir(d, 0700);

    /* the primary: fake agent + ps */
    F.conf = rt_conf_load(ppath, err, sizeof err);
    if (!F.conf)
        fail_msg("%s", err);
    F.loop = ev_loop_new(EVFLAG_AUTO);
    F.node = rt_node_new_on("prim", F.conf, F.loop);
    F.hub = hub_new(F.node, F.conf, err, sizeof err);
    if (!F.hub)
        fail_msg("hub: %s", err);
    peer_init(&F.agent, F.node, F.hub, "agent", RT_ROLE_AGENT, RT_ROLE_PS);
    F.ps = ps_new(F.node, F.conf, F.hub, err, sizeof err);
    if (!F.ps)
        fail_msg("ps: %s", err);
    ev_timer_init(&F.nudge, dp_nudge_cb, 0.005, 0.005);
    ev_timer_start(F.loop, &F.nudge);
    sec_t sec;
    sec_up(&sec, spath);
    assert_int_equal(rt_post(hub_actor(F.hub), NULL, RT_SIG_START, NULL, 0, NULL), RT_OK);

    agent_open(0);
    for (uint64_t s = 1; s <= 64; s += 8)
        assert_int_equal(peer_send_batch(&F.agent, s, s + 7, 0), RT_OK);
    RUN_UNTIL(F.loop, F.agent.max_mt_durable == 64, 10);
    assert_int_equal(F.agent.max_mt_durable, 64);

    /* the secondary goes away: the agent still gets durability from the cache */
    sec_down(&sec);
    for (uint64_t s = 65; s <= 96; s += 8)
        assert_int_equal(peer_send_batch(&F.agent, s, s + 7, 0), RT_OK);
    RUN_UNTIL(F.loop, F.agent.max_durable == 96, 10);
    assert_int_equal(F.agent.max_durable, 96);
    RUN_UNTIL(F.loop, false, 0.3);
    assert_int_equal(F.agent.max_mt_durable, 64);
    ps_pair_info_t pi;
    ps_pair_info(F.ps, "p1", &pi);
    assert_true(pi.backlog_bytes >= 32u * (WREC_HDR_SIZE + BLOCK));

    /* it comes back: the ps resumes where the mt is, nothing lost, nothing twice */
    sec_up(&sec, spath);
    RUN_UNTIL(F.loop, F.agent.max_mt_durable == 96, 15);
    assert_int_equal(F.agent.max_mt_durable, 96);
    mt_pair_info_t mi;
    assert_int_equal(mt_pair_info(sec.mt, "p1", &mi), RT_OK);
    assert_int_equal(mi.durable_seq, 96);
    assert_int_equal(mi.bad_batches, 0);
    ps_pair_info(F.ps, "p1", &pi);
    assert_int_equal(pi.backlog_bytes, 0);
    sec_down(&sec);

    char mtdir[400], out[400];
    snprintf(mtdir, sizeof mtdir, "%s/sec/mt", F.dir);
    snprintf(out, sizeof out, "%s/replica.img", F.dir);
    if (mtj_restore(mtdir, "p1", "latest", out, NULL, err, sizeof err) != RT_OK)
        fail_msg("restore: %s", err);
    read_file(out, got, DISK_SIZE);
    dp_image(96, BLOCK, false, want);
    assert_memory_equal(got, want, DISK_SIZE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_one_ack_per_turn, setup, teardown),
        cmocka_unit_test_setup_teardown(test_contiguity, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resume_after_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kill9_durable_before_ack, setup, teardown),
        cmocka_unit_test_setup_teardown(test_quota_full_then_recovery, setup, teardown),
        cmocka_unit_test_setup_teardown(test_credit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mt_lost_data_held, setup, teardown),
        cmocka_unit_test_setup_teardown(test_relay_acks_follow_mt, setup, teardown),
        cmocka_unit_test_setup_teardown(test_spool_answers_from_spool, setup, teardown),
        cmocka_unit_test_setup_teardown(test_relay_spool_afresh, setup, teardown),
        cmocka_unit_test_setup_teardown(test_compression_same_replica, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bandwidth_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_apart_over_links, setup, teardown),
    };
    signal(SIGPIPE, SIG_IGN);
    rt_log_setup("test_ps", "t", RT_LOG_WARN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
