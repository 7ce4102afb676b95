/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * test_mt.c: the master target (nodes/mt/mt.c) on a real node.
 *
 * The node runs the master target and a fake process server (a peer actor
 * registered as RT_ROLE_PS that sends deterministic records through the
 * hub). What is checked: batches (raw and LZ4) applied and the journal's
 * image equal to the source; a record with a bad capture hash, a torn LZ4
 * block and a record past the end of the disk refused with ACK_BAD_RECORD
 * and never applied; duplicates acknowledged and not applied twice; a gap
 * answered with where the journal is; an unknown pair; resume after a
 * reopen; consistent_seq recorded durably at the end of a sync pass; the
 * verdicts of mt_batch_check(); retention promotion from the cron; and,
 * with a forked node killed at random moments, that what an ack calls
 * durable is what a reopen recovers.
 */
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "dp_fixture.h"
#include "nodes/mt/journal.h"
#include "nodes/mt/mt.h"

typedef struct fx {
    char dir[256];
    char mtdir[300];
    struct ev_loop *loop;
    rt_conf_t *conf;
    rt_node_t *node;
    hub_t *hub;
    mt_t *mt;
    peer_t ps;
    ev_timer nudge;
} fx_t;

static fx_t F;

static void fx_up(const char *mt_conf)
{
    char text[1024], err[512];
    snprintf(text, sizeof text,
             "[node]\nname = t\nroles = ps,mt\ndata_dir = %s\n[mt]\n%s\n", F.dir, mt_conf);
    F.conf = dp_conf(F.dir, text);
    F.loop = ev_loop_new(EVFLAG_AUTO);
    F.node = rt_node_new_on("t", F.conf, F.loop);
    assert_non_null(F.node);
    F.hub = hub_new(F.node, F.conf, err, sizeof err);
    if (!F.hub)
        fail_msg("hub: %s", err);
    peer_init(&F.ps, F.node, F.hub, "fake-ps", RT_ROLE_PS, RT_ROLE_MT);
    F.mt = mt_new(F.node, F.conf, F.hub, err, sizeof err);
    if (!F.mt)
        fail_msg("mt: %s", err);
    ev_timer_init(&F.nudge, dp_nudge_cb, 0.005, 0.005);
    ev_timer_start(F.loop, &F.nudge);
}

static void fx_down(void)
{
    if (!F.loop)
        return;
    ev_timer_stop(F.loop, &F.nudge);
    mt_free(F.mt);
    peer_fini(&F.ps);
    hub_free(F.hub);
    rt_node_free(F.node);
    ev_loop_destroy(F.loop);
    rt_conf_free(F.conf);
    F.mt = NULL;
    F.loop = NULL;
}

static int setup(void **state)
{
    (void)state;
    memset(&F, 0, sizeof F);
    dp_tmpdir(F.dir, sizeof F.dir, "test_mt");
    snprintf(F.mtdir, sizeof F.mtdir, "%s/mt", F.dir);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    fx_down();
    dp_rmtree(F.dir);
    return 0;
}

static void ps_open(void)
{
    int before = F.ps.opens;
    peer_open(&F.ps, 0, 1);
    RUN_UNTIL(F.loop, F.ps.opens > before, 5);
    assert_true(F.ps.opens > before);
}

static void send_wait(uint64_t first, uint64_t last, uint32_t flags)
{
    int before = F.ps.acks;
    assert_int_equal(peer_send_batch(&F.ps, first, last, flags), RT_OK);
    RUN_UNTIL(F.loop, F.ps.acks > before, 5);
    assert_true(F.ps.acks > before);
}

static void raw_wait(const ss_WriteBatch *wb, const void *payload, size_t len)
{
    int before = F.ps.acks;
    assert_int_equal(peer_send_raw(&F.ps, wb, payload, len), RT_OK);
    RUN_UNTIL(F.loop, F.ps.acks > before, 5);
    assert_true(F.ps.acks > before);
}

/* the journal (closed) read at point @seq equals the source after 1..@seq */
static void check_image(uint64_t seq, bool compressible)
{
    static uint8_t want[DISK_SIZE], got[DISK_SIZE];
    char err[512];
    mtj_conf_t jc = {.readonly = true};
    mtj_t *j = mtj_open(F.mtdir, "p1", &jc, err, sizeof err);
    if (!j)
        fail_msg("journal: %s", err);
    mtj_info_t info;
    mtj_info(j, &info);
    assert_true(info.durable_seq >= seq);
    if (mtj_read(j, seq, 0, DISK_SIZE, got, err, sizeof err) != RT_OK)
        fail_msg("read: %s", err);
    mtj_close(j);
    dp_image(seq, BLOCK, compressible, want);
    assert_memory_equal(got, want, DISK_SIZE);
}

static uint64_t journal_records(void)
{
    char err[512];
    mtj_conf_t jc = {.readonly = true};
    mtj_t *j = mtj_open(F.mtdir, "p1", &jc, err, sizeof err);
    if (!j)
        fail_msg("journal: %s", err);
    mtj_info_t info;
    mtj_info(j, &info);
    mtj_close(j);
    return info.records;
}

/* ---- tests ---------------------------------------------------------------------------- */

static void test_apply_raw_and_lz4(void **state)
{
    (void)state;
    fx_up("");
    F.ps.compressible = true;
    ps_open();
    assert_int_equal(F.ps.open.durable_seq, 0);
    assert_int_equal(F.ps.open.disk_size, DISK_SIZE);
    send_wait(1, 20, 0);
    assert_int_equal(F.ps.ack.durable, 20);
    assert_int_equal(F.ps.ack.mt_durable, 20);
    send_wait(21, 50, CODEC_BATCH_LZ4);
    assert_int_equal(F.ps.ack.status, ss_AckStatus_ACK_OK);
    assert_int_equal(F.ps.ack.durable, 50);
    mt_pair_info_t mi;
    assert_int_equal(mt_pair_info(F.mt, "p1", &mi), RT_OK);
    assert_int_equal(mi.durable_seq, 50);
    assert_int_equal(mi.batches, 2);
    fx_down();
    check_image(50, true);
    check_image(20, true); /* every boundary is a point */
}

static void test_bad_records_refused(void **state)
{
    (void)state;
    static uint8_t run[1u << 20], z[1u << 20];
    fx_up("");
    ps_open();
    send_wait(1, 10, 0);

    /* a payload byte changed after capture */
    size_t n = dp_run(11, 14, BLOCK, false, run, sizeof run);
    ss_WriteBatch wb = {.first_seq = 11, .last_seq = 14, .count = 4, .raw_len = (uint32_t)n};
    snprintf(wb.pair, sizeof wb.pair, "p1");
    run[2 * (WREC_HDR_SIZE + BLOCK) + 200] ^= 0x40;
    raw_wait(&wb, run, n);
    assert_int_equal(F.ps.ack.status, ss_AckStatus_ACK_BAD_RECORD);
    assert_int_equal(F.ps.ack.durable, 10);
    run[2 * (WREC_HDR_SIZE + BLOCK) + 200] ^= 0x40;

    /* a torn LZ4 block */
    size_t zl = 0;
    F.ps.compressible = true;
    n = dp_run(11, 14, BLOCK, true, run, sizeof run);
    assert_int_equal(codec_compress(run, n, z, sizeof z, &zl), RT_OK);
    ss_WriteBatch wz = wb;
    wz.flags = CODEC_BATCH_LZ4;
    wz.raw_len = (uint32_t)n;
    raw_wait(&wz, z, zl - 3);
    assert_int_equal(F.ps.ack.status, ss_AckStatus_ACK_BAD_RECORD);
    /* ... and one that inflates to the wrong length */
    wz.raw_len = (uint32_t)n - 1;
    raw_wait(&wz, z, zl);
    assert_int_equal(F.ps.ack.status, ss_AckStatus_ACK_BAD_RECORD);

    /* a write past the end of the disk (sealed, so only the range is wrong) */
    static uint8_t data[BLOCK];
    wrec_hdr_t h = {.flags = WREC_F_DATA, .seq = 11, .offset = DISK_SIZE - 100, .len = BLOCK,
                    .time_us = T0_US};
    memset(data, 0xab, sizeof data);
    assert_int_equal(wrec_seal(&h, data, NULL), RT_OK);
    size_t got = 0;
    assert_int_equal(wrec_encode(&h, data, false, run, sizeof run, &got, NULL), RT_OK);
    ss_WriteBatch wo = {.first_seq = 11, .last_seq = 11, .count = 1, .raw_len = (uint32_t)got};
    snprintf(wo.pair, sizeof wo.pair, "p1");
    raw_wait(&wo, run, got);
    assert_int_equal(F.ps.ack.status, ss_AckStatus_ACK_BAD_RECORD);
    assert_int_equal(F.ps.ack.durable, 10);

    mt_pair_info_t mi;
    mt_pair_info(F.mt, "p1", &mi);
    assert_int_equal(mi.bad_batches, 4);
    assert_int_equal(mi.last_seq, 10);
    assert_int_equal(mi.records, 10);

    /* the good batch still goes in after all that */
    F.ps.compressible = false;
    send_wait(11, 14, 0);
    assert_int_equal(F.ps.ack.status, ss_AckStatus_ACK_OK);
    assert_int_equal(F.ps.ack.durable, 14);
    fx_down();
    check_image(14, false);
}

/* batches checked on two workers at once are still appended in sequence
 * order: a train of big LZ4 batches (checked on a worker) and small raw ones
 * (checked on the loop, done first) lands whole; and nothing behind a bad
 * batch of a train is appended, however early its check finished */
static void test_pipeline_keeps_order(void **state)
{
    (void)state;
    static uint8_t run[1u << 20], z[1u << 20];
    fx_up("");
    assert_int_equal(rt_work_set_workers(F.node, 2), RT_OK);
    F.ps.compressible = true;
    ps_open();
    uint64_t seq = 0;
    for (int i = 0; i < 30; i++) {
        uint64_t n = i % 3 == 0 ? 48 : i % 3 == 1 ? 10 : 2; /* 200K, 42K, 8K of records */
        assert_int_equal(peer_send_batch(&F.ps, seq + 1, seq + n, i % 3 ? 0 : CODEC_BATCH_LZ4),
                         RT_OK);
        seq += n;
    }
    RUN_UNTIL(F.loop, F.ps.max_durable >= seq, 10);
    assert_int_equal(F.ps.max_durable, seq);
    assert_int_equal(F.ps.bad + F.ps.full, 0);
    mt_pair_info_t mi;
    assert_int_equal(mt_pair_info(F.mt, "p1", &mi), RT_OK);
    assert_int_equal(mi.batches, 30);
    assert_int_equal(mi.dup_batches, 0);
    assert_int_equal(mi.last_seq, seq);

    /* a bad LZ4 batch (a payload byte changed after capture), then good ones */
    uint64_t bad_first = seq + 1, bad_last = seq + 48;
    size_t n = dp_run(bad_first, bad_last, BLOCK, true, run, sizeof run);
    run[n - 7] ^= 0x40;
    size_t zl = 0;
    assert_int_equal(codec_compress(run, n, z, sizeof z, &zl), RT_OK);
    ss_WriteBatch wb = {.first_seq = bad_first, .last_seq = bad_last, .count = 48,
                        .flags = CODEC_BATCH_LZ4, .raw_len = (uint32_t)n};
    snprintf(wb.pair, sizeof wb.pair, "p1");
    int acks = F.ps.acks;
    assert_int_equal(peer_send_raw(&F.ps, &wb, z, zl), RT_OK);
    uint64_t after = bad_last;
    for (int i = 0; i < 4; i++) {
        assert_int_equal(peer_send_batch(&F.ps, after + 1, after + 2, 0), RT_OK);
        after += 2;
    }
    RUN_UNTIL(F.loop, F.ps.acks >= acks + 5, 10);
    assert_int_equal(F.ps.acks, acks + 5);
    assert_int_equal(F.ps.bad, 1);
    assert_int_equal(F.ps.max_durable, seq); /* nothing past the bad batch */
    assert_int_equal(mt_pair_info(F.mt, "p1", &mi), RT_OK);
    assert_int_equal(mi.bad_batches, 1);
    assert_int_equal(mi.last_seq, seq);
    assert_int_equal(mi.batches, 30);

    /* resent good, the rest follows */
    F.ps.compressible = true;
    assert_int_equal(peer_send_batch(&F.ps, bad_first, bad_last, CODEC_BATCH_LZ4), RT_OK);
    assert_int_equal(peer_send_batch(&F.ps, bad_last + 1, after, 0), RT_OK);
    RUN_UNTIL(F.loop, F.ps.max_durable >= after, 10);
    assert_int_equal(F.ps.max_durable, after);
    fx_down();
    check_image(after, true);
    check_image(seq, true);
}

/* an ack sent between an append and its commit (from RESUME or the cron)
 * carries the old durable_seq; the commit must still send the new one */
static void test_ack_after_early_ack(void **state)
{
    (void)state;
    fx_up("");
    ps_open();
    send_wait(1, 4, 0);
    assert_int_equal(F.ps.max_durable, 4);
    int acks = F.ps.acks;
    assert_int_equal(peer_send_batch(&F.ps, 5, 8, 0), RT_OK);
    /* queued behind the batch: handled before the commit timer fires */
    assert_int_equal(rt_post(mt_actor(F.mt), NULL, RT_SIG_RESUME, NULL, 0, NULL), RT_OK);
    RUN_UNTIL(F.loop, F.ps.max_durable >= 8, 5);
    assert_int_equal(F.ps.max_durable, 8);
    assert_true(F.ps.acks >= acks + 1);
}

static void test_duplicates_and_gaps(void **state)
{
    (void)state;
    fx_up("");
    ps_open();
    send_wait(1, 10, 0);
    send_wait(1, 10, 0); /* a whole resend */
    assert_int_equal(F.ps.ack.status, ss_AckStatus_ACK_OK);
    assert_int_equal(F.ps.ack.durable, 10);
    send_wait(5, 15, 0); /* a resent prefix */
    assert_int_equal(F.ps.ack.durable, 15);
    send_wait(20, 25, 0); /* a gap */
    assert_int_equal(F.ps.ack.status, ss_AckStatus_ACK_OK);
    assert_int_equal(F.ps.ack.durable, 15);
    mt_pair_info_t mi;
    mt_pair_info(F.mt, "p1", &mi);
    assert_int_equal(mi.last_seq, 15);
    assert_int_equal(mi.records, 15);
    assert_int_equal(mi.dup_batches, 1);

    /* an unknown pair */
    F.ps.pair = "p2";
    send_wait(1, 2, 0);
    assert_int_equal(F.ps.ack.status, ss_AckStatus_ACK_UNKNOWN_PAIR);
    F.ps.pair = "p1";
    fx_down();
    assert_int_equal(journal_records(), 15);
    check_image(15, false);
}

static void test_resume_and_consistent_seq(void **state)
{
    (void)state;
    fx_up("");
    ps_open();
    send_wait(1, 12, CODEC_BATCH_SYNC);
    assert_int_equal(F.ps.ack.consistent, 0);
    send_wait(13, 20, CODEC_BATCH_SYNC | CODEC_BATCH_SYNC_DONE);
    assert_int_equal(F.ps.ack.durable, 20);
    assert_int_equal(F.ps.ack.consistent, 20);
    send_wait(21, 24, 0);
    assert_int_equal(F.ps.ack.consistent, 20);
    fx_down();

    /* a new run: the answer says where to resume and what is consistent */
    fx_up("");
    ps_open();
    assert_int_equal(F.ps.open.durable_seq, 24);
    assert_int_equal(F.ps.open.mt_durable_seq, 24);
    assert_int_equal(F.ps.open.consistent_seq, 20);
    assert_true(F.ps.open.reply);
    send_wait(25, 30, 0);
    assert_int_equal(F.ps.ack.durable, 30);
    assert_int_equal(F.ps.ack.consistent, 20);
    /* a later pass ending in a resent batch still counts */
    send_wait(25, 30, CODEC_BATCH_SYNC_DONE);
    assert_int_equal(F.ps.ack.consistent, 30);
    fx_down();
    check_image(30, false);
}

static void test_batch_check_verdicts(void **state)
{
    (void)state;
    static uint8_t run[1u << 20];
    codec_work_t w = {0};
    codec_run_t r;
    char why[192];
    size_t n = dp_run(5, 8, BLOCK, false, run, sizeof run);
    assert_int_equal(mt_batch_check(0, 5, 8, 4, 0, run, n, DISK_SIZE, 4, &w, &r, why, sizeof why),
                     MT_BATCH_APPLY);
    assert_int_equal(r.from_seq, 5);
    assert_int_equal(r.last_seq, 8);
    assert_int_equal(r.count, 4);
    assert_int_equal(mt_batch_check(0, 5, 8, 4, 0, run, n, DISK_SIZE, 6, &w, &r, why, sizeof why),
                     MT_BATCH_APPLY);
    assert_int_equal(mt_batch_check(0, 5, 8, 4, 0, run, n, DISK_SIZE, 8, &w, &r, why, sizeof why),
                     MT_BATCH_DUP);
    assert_int_equal(mt_batch_check(0, 5, 8, 4, 0, run, n, DISK_SIZE, 3, &w, &r, why, sizeof why),
                     MT_BATCH_GAP);
    assert_int_equal(mt_batch_check(0, 5, 9, 4, 0, run, n, DISK_SIZE, 4, &w, &r, why, sizeof why),
                     MT_BATCH_BAD);
    assert_int_equal(mt_batch_check(0, 5, 8, 4, 0, run, n, BLOCK, 4, &w, &r, why, sizeof why),
                     MT_BATCH_BAD); /* a disk too small for these writes */
    assert_int_equal(mt_batch_check(8, 5, 8, 4, 0, run, n, DISK_SIZE, 4, &w, &r, why, sizeof why),
                     MT_BATCH_BAD); /* unknown flag */
    codec_work_free(&w);
}

static void test_retention_promotes(void **state)
{
    (void)state;
    fx_up("retention = 1");
    ps_open();
    send_wait(1, 30, 0); /* captured in 2023 (T0_US): far outside a 1 s window */
    mt_pair_info_t mi;
    RUN_UNTIL(F.loop, mt_pair_info(F.mt, "p1", &mi) == RT_OK && mi.promoted_seq == 30, 5);
    assert_int_equal(mi.promoted_seq, 30);
    assert_int_equal(mi.records, 0);
    send_wait(31, 40, 0);
    assert_int_equal(F.ps.ack.durable, 40);
    fx_down();
    check_image(40, false);
}

/* ---- kill -9 ------------------------------------------------------------------------ */

static void child_run(int fd)
{
    fx_up("");
    F.ps.ack_fd = fd;
    F.ps.window = 4;
    F.ps.per = 8;
    ps_open();
    F.ps.sent_last = F.ps.max_durable = F.ps.open.durable_seq;
    for (int i = 0; i < F.ps.window; i++)
        peer_send_batch(&F.ps, F.ps.sent_last + 1, F.ps.sent_last + 8, 0);
    RUN_UNTIL(F.loop, false, 20);
    _exit(0);
}

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
        if (read(fd, &d, sizeof d) != (ssize_t)sizeof d)
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
    static const int delays_ms[] = {15, 60, 150};
    uint64_t last = 0;
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
        struct pollfd pf = {.fd = pfd[0], .events = POLLIN};
        assert_int_equal(poll(&pf, 1, 5000), 1);
        uint64_t acked = drain_acks(pfd[0], delays_ms[round], &n);
        kill(pid, SIGKILL);
        int st;
        waitpid(pid, &st, 0);
        uint64_t more = drain_acks(pfd[0], 0, &n);
        if (more > acked)
            acked = more;
        close(pfd[0]);
        assert_true(WIFSIGNALED(st));
        assert_true(n > 0);
        /* reopen as a restarted master target would (recovery cuts a torn tail) */
        char err[512];
        mtj_conf_t jc = {0};
        mtj_t *j = mtj_open(F.mtdir, "p1", &jc, err, sizeof err);
        if (!j)
            fail_msg("journal: %s", err);
        mtj_info_t info;
        mtj_info(j, &info);
        mtj_close(j);
        assert_true(info.durable_seq >= acked);
        assert_true(info.durable_seq > last);
        last = info.durable_seq;
        check_image(info.durable_seq, false);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_apply_raw_and_lz4, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_records_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pipeline_keeps_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ack_after_early_ack, setup, teardown),
        cmocka_unit_test_setup_teardown(test_duplicates_and_gaps, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resume_and_consistent_seq, setup, teardown),
        cmocka_unit_test(test_batch_check_verdicts),
        cmocka_unit_test_setup_teardown(test_retention_promotes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kill9_durable_before_ack, setup, teardown),
    };
    signal(SIGPIPE, SIG_IGN);
    rt_log_setup("test_mt", "t", RT_LOG_WARN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
