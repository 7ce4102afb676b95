/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * test_rt_link.c: links between two nodes in one process (runtime/rt_link.c).
 *
 * Two nodes share one libev loop and talk over real loopback sockets, plain
 * TCP and TLS 1.3 with certificates made here by rt_cert.c. A probe actor
 * owns each side's links and records what the runtime tells it (up, down,
 * writable, frames), so each test checks behaviour an actor would see:
 * frames arrive whole and in order with their payloads, a full send queue
 * says RT_AGAIN and later RT_SIG_LINK_WRITABLE, a full buffer pool stops
 * reading until there is room, a lost link comes back by itself, a silent
 * peer is dropped after hb_timeout, and a bad peer (wrong name, other CA,
 * garbage) never gets up while the good link stays up. Every wait is
 * bounded in time.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "link.pb.h"
#include "rt_i.h"

/* ---- probe actor ------------------------------------------------------------- */

typedef struct probe {
    rt_actor_t actor;
    int ups, downs, writables, frames;
    rt_link_t *link;          /* the link of the last LINK_UP, NULL after DOWN */
    char up_peer[RT_NAME_MAX];/* Hello.node of the last LINK_UP */
    char down_reason[RT_MSG_INLINE];
    uint64_t next_corr;       /* frames must come in corr order from 0 */
    bool order_ok, payload_ok;
    size_t payload_bytes;
    uint32_t last_tag;
} probe_t;

static void probe_dispatch(rt_actor_t *me, const rt_msg_t *m)
{
    probe_t *p = (probe_t *)me;
    switch (m->tag) {
    case RT_SIG_LINK_UP: {
        const ss_Hello *h = (const ss_Hello *)m->data;
        p->ups++;
        p->link = m->link;
        snprintf(p->up_peer, sizeof p->up_peer, "%s", h->node);
        break;
    }
    case RT_SIG_LINK_DOWN:
        p->downs++;
        if (p->link == m->link)
            p->link = NULL;
        snprintf(p->down_reason, sizeof p->down_reason, "%s", (const char *)m->data);
        break;
    case RT_SIG_LINK_WRITABLE:
        p->writables++;
        break;
    case RT_SIG_STOP:
        rt_actor_stopped(me);
        break;
    default:
        if (m->tag >= RT_SIG_USER || m->tag < 20)
            break;
        {
            const ss_Envelope *e = (const ss_Envelope *)m->data;
            p->frames++;
            p->last_tag = m->tag;
            if (e->corr != p->next_corr)
                p->order_ok = false;
            p->next_corr = e->corr + 1;
            if (e->payload_len) {
                if (!m->buf || m->buf->len != e->payload_len)
                    p->payload_ok = false;
                else
                    for (uint32_t i = 0; i < e->payload_len; i++)
                        if (m->buf->data[i] != (uint8_t)(e->corr + i * 13))
                            p->payload_ok = false;
                p->payload_bytes += e->payload_len;
            }
        }
        break;
    }
}

/* ---- fixture ------------------------------------------------------------------- */

static struct ev_loop *loop;
static rt_node_t *na, *nb;
static probe_t pa, pb;
static ev_timer nudge; /* keeps ev_run(ONCE) from sleeping long */
static char tmpdir[64];

static void nudge_cb(struct ev_loop *l, ev_timer *w, int revents)
{
    (void)l;
    (void)w;
    (void)revents;
}

static void probe_init(probe_t *p, rt_node_t *node, const char *name)
{
    memset(p, 0, sizeof *p);
    p->order_ok = p->payload_ok = true;
    assert_int_equal(rt_actor_init(&p->actor, node, name, probe_dispatch), RT_OK);
}

static int setup(void **state)
{
    (void)state;
    loop = ev_loop_new(EVFLAG_AUTO);
    na = rt_node_new_on("A", NULL, loop);
    nb = rt_node_new_on("B", NULL, loop);
    assert_non_null(na);
    assert_non_null(nb);
    probe_init(&pa, na, "probe-a");
    probe_init(&pb, nb, "probe-b");
    ev_timer_init(&nudge, nudge_cb, 0.01, 0.01);
    ev_timer_start(loop, &nudge);
    return 0;
}

static int teardown_fx(void **state)
{
    (void)state;
    ev_timer_stop(loop, &nudge);
    rt_actor_fini(&pa.actor);
    rt_actor_fini(&pb.actor);
    rt_node_free(na);
    rt_node_free(nb);
    ev_loop_destroy(loop);
    return 0;
}

/* run the loop until *@flag-style condition @cond holds, for at most @secs */
#define RUN_UNTIL(cond, secs)                                                          \
    do {                                                                               \
        uint64_t end_ = rt_mono_us() + (uint64_t)((secs) * 1e6);                       \
        while (!(cond) && rt_mono_us() < end_)                                         \
            ev_run(loop, EVRUN_ONCE);                                                  \
    } while (0)

static void run_for(double secs)
{
    uint64_t end = rt_mono_us() + (uint64_t)(secs * 1e6);
    while (rt_mono_us() < end)
        ev_run(loop, EVRUN_ONCE);
}

static unsigned free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof sa;
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
    close(fd);
    return ntohs(sa.sin_port);
}

static rt_link_conf_t fast_conf(const char *peer)
{
    rt_link_conf_t lc = {
        .peer_name = peer,
        .hb_interval_s = 0.05,
        .hb_timeout_s = 0.6,
        .backoff_min_s = 0.02,
        .backoff_max_s = 0.1,
        .sndq_high = 1u << 20,
        .max_payload = 1u << 20,
    };
    return lc;
}

static void send_frame(rt_link_t *l, rt_node_t *node, uint64_t corr, uint32_t plen, int want)
{
    ss_Envelope e = ss_Envelope_init_zero;
    rt_buf_t *b = NULL;
    e.which_body = ss_Envelope_write_ack_tag;
    e.corr = corr;
    if (plen) {
        b = rt_buf_alloc(node, plen);
        assert_non_null(b);
        for (uint32_t i = 0; i < plen; i++)
            b->data[i] = (uint8_t)(corr + i * 13);
        b->len = plen;
    }
    assert_int_equal(rt_link_send(l, &e, b, plen), want);
    rt_buf_unref(b); /* the link took its own reference */
}

/* ---- plain TCP ------------------------------------------------------------------ */

static void test_plain_up_frames_order(void **state)
{
    (void)state;
    char addr[32];
    snprintf(addr, sizeof addr, "127.0.0.1:%u", free_port());
    rt_link_conf_t lc = fast_conf("B");
    lc.sndq_high = 4u << 20; /* all 40 frames fit */
    rt_listener_t *ls = rt_listener_new(nb, &pb.actor, NULL, addr, &lc);
    assert_non_null(ls);
    rt_link_t *l = rt_link_connect(na, &pa.actor, NULL, addr, &lc);
    assert_non_null(l);
    assert_false(rt_link_is_up(l));
    /* nothing can be sent before the hello */
    send_frame(l, na, 0, 0, RT_ERR);

    RUN_UNTIL(pa.ups == 1 && pb.ups == 1, 5);
    assert_int_equal(pa.ups, 1);
    assert_int_equal(pb.ups, 1);
    assert_string_equal(rt_link_state(l), "up");
    assert_string_equal(rt_link_peer(l), "B");
    assert_string_equal(pa.up_peer, "B");
    assert_string_equal(pb.up_peer, "A");
    assert_string_equal(rt_link_peer(pb.link), "A");
    assert_string_equal(rt_link_addr(l), addr);

    /* 40 frames, some with payloads bigger than the staging buffer */
    for (uint64_t i = 0; i < 40; i++)
        send_frame(l, na, i, (uint32_t)((i % 4) * 30000), RT_OK);
    RUN_UNTIL(pb.frames == 40, 5);
    assert_int_equal(pb.frames, 40);
    assert_true(pb.order_ok);
    assert_true(pb.payload_ok);
    assert_int_equal(pb.payload_bytes, 10 * (30000 + 60000 + 90000));
    assert_int_equal(pb.last_tag, ss_Envelope_write_ack_tag);

    /* and the other way, on the accepted link */
    send_frame(pb.link, nb, 0, 5000, RT_OK);
    RUN_UNTIL(pa.frames == 1, 5);
    assert_int_equal(pa.frames, 1);
    assert_true(pa.payload_ok);

    /* heartbeats keep it up well past hb_timeout, and measure the clock */
    run_for(1.0);
    assert_string_equal(rt_link_state(l), "up");
    assert_int_equal(pa.downs, 0);
    int64_t off = rt_link_clock_offset_us(l);
    assert_true(off > -20000 && off < 20000); /* one clock: offset ~ 0 */

    rt_link_close(l);
    RUN_UNTIL(pb.downs == 1, 5);
    assert_int_equal(pb.downs, 1);
    assert_int_equal(pa.downs, 1);
    rt_listener_free(ls);
}

static void test_plain_reconnect(void **state)
{
    (void)state;
    char addr[32];
    snprintf(addr, sizeof addr, "127.0.0.1:%u", free_port());
    rt_link_conf_t lc = fast_conf(NULL);
    /* the peer is not there yet: the link keeps retrying */
    rt_link_t *l = rt_link_connect(na, &pa.actor, NULL, addr, &lc);
    assert_non_null(l);
    run_for(0.3);
    assert_string_not_equal(rt_link_state(l), "up");
    assert_int_equal(pa.ups, 0);

    rt_listener_t *ls = rt_listener_new(nb, &pb.actor, NULL, addr, &lc);
    assert_non_null(ls);
    RUN_UNTIL(pa.ups == 1, 5);
    assert_int_equal(pa.ups, 1);

    /* the accepted side goes away: outbound backs off, then comes back */
    rt_link_close(pb.link);
    RUN_UNTIL(pa.downs == 1, 5);
    assert_int_equal(pa.downs, 1);
    assert_non_null(strstr(pa.down_reason, "peer closed the connection"));
    RUN_UNTIL(pa.ups == 2, 5);
    assert_int_equal(pa.ups, 2);
    assert_string_equal(rt_link_state(l), "up");

    rt_listener_free(ls);
    RUN_UNTIL(pa.downs == 2, 5);
    assert_int_equal(pa.downs, 2);
    rt_link_free(l);
}

static void test_plain_send_backpressure(void **state)
{
    (void)state;
    char addr[32];
    snprintf(addr, sizeof addr, "127.0.0.1:%u", free_port());
    rt_link_conf_t lc = fast_conf(NULL);
    lc.sndq_high = 256u << 10;
    rt_listener_t *ls = rt_listener_new(nb, &pb.actor, NULL, addr, &lc);
    rt_link_t *l = rt_link_connect(na, &pa.actor, NULL, addr, &lc);
    RUN_UNTIL(pa.ups == 1 && pb.ups == 1, 5);
    assert_int_equal(pa.ups, 1);

    /* queue without running the loop: the queue fills, then RT_AGAIN */
    uint64_t sent = 0;
    int rc = RT_OK;
    while (sent < 100) {
        ss_Envelope e = ss_Envelope_init_zero;
        rt_buf_t *b = rt_buf_alloc(na, 64u << 10);
        e.which_body = ss_Envelope_write_ack_tag;
        e.corr = sent;
        for (uint32_t i = 0; i < (64u << 10); i++)
            b->data[i] = (uint8_t)(sent + i * 13);
        b->len = 64u << 10;
        rc = rt_link_send(l, &e, b, 64u << 10);
        rt_buf_unref(b);
        if (rc != RT_OK)
            break;
        sent++;
    }
    assert_int_equal(rc, RT_AGAIN);
    assert_int_equal(sent, 4); /* 4 x 64 KiB reach sndq_high */
    assert_int_equal(pa.writables, 0);
    RUN_UNTIL(pa.writables == 1 && pb.frames == (int)sent, 5);
    assert_int_equal(pa.writables, 1);
    assert_int_equal(pb.frames, sent);
    assert_true(pb.order_ok && pb.payload_ok);
    rt_link_free(l);
    rt_listener_free(ls);
}

static void test_plain_recv_backpressure(void **state)
{
    (void)state;
    char addr[32];
    snprintf(addr, sizeof addr, "127.0.0.1:%u", free_port());
    rt_link_conf_t lc = fast_conf(NULL);
    rt_listener_t *ls = rt_listener_new(nb, &pb.actor, NULL, addr, &lc);
    rt_link_t *l = rt_link_connect(na, &pa.actor, NULL, addr, &lc);
    RUN_UNTIL(pa.ups == 1 && pb.ups == 1, 5);
    assert_int_equal(pb.ups, 1);

    /* fill B's buffer pool */
    rt_buf_t *hold[128];
    int n = 0;
    while (n < 128 && (hold[n] = rt_buf_alloc(nb, 1u << 20)) != NULL)
        n++;
    assert_true(n > 0 && n < 128);
    send_frame(l, na, 0, 300000, RT_OK);
    /* longer than hb_timeout: a link that waits for memory is not dead */
    run_for(2 * lc.hb_timeout_s);
    assert_int_equal(pb.frames, 0); /* no buffer: B stopped reading */
    assert_string_equal(rt_link_state(pb.link), "up");
    assert_string_equal(rt_link_state(l), "up");
    /* B does not read, so TCP fills and A's queue with it: the sender is
     * held back by the slow receiver, not by a queue that grows */
    uint64_t sent = 1;
    int rc = RT_OK;
    while (sent < 400 && rc == RT_OK) {
        ss_Envelope e = ss_Envelope_init_zero;
        rt_buf_t *b = rt_buf_alloc(na, 64u << 10);
        assert_non_null(b);
        e.which_body = ss_Envelope_write_ack_tag;
        e.corr = sent;
        for (uint32_t i = 0; i < (64u << 10); i++)
            b->data[i] = (uint8_t)(sent + i * 13);
        b->len = 64u << 10;
        rc = rt_link_send(l, &e, b, 64u << 10);
        rt_buf_unref(b);
        if (rc == RT_OK)
            sent++;
        run_for(0.002);
    }
    assert_int_equal(rc, RT_AGAIN);
    assert_int_equal(pb.frames, 0);
    assert_int_equal(pa.writables, 0);
    for (int i = 0; i < n; i++)
        rt_buf_unref(hold[i]);
    RUN_UNTIL(pb.frames == (int)sent && pa.writables == 1, 10);
    assert_int_equal(pb.frames, sent); /* RT_SIG_RESUME restarted it */
    assert_true(pb.order_ok && pb.payload_ok);
    assert_int_equal(pa.writables, 1);
    rt_link_free(l);
    rt_listener_free(ls);
}

/* a peer that says Hello and then nothing: dropped after hb_timeout */
static void test_heartbeat_timeout(void **state)
{
    (void)state;
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof sa;
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(lfd, 4), 0);
    assert_int_equal(getsockname(lfd, (struct sockaddr *)&sa, &sl), 0);
    char addr[32];
    snprintf(addr, sizeof addr, "127.0.0.1:%u", ntohs(sa.sin_port));
    rt_link_conf_t lc = fast_conf("mute");
    lc.hb_timeout_s = 0.3;
    rt_link_t *l = rt_link_connect(na, &pa.actor, NULL, addr, &lc);
    RUN_UNTIL(false, 0.1);
    int fd = accept(lfd, NULL, NULL);
    assert_true(fd >= 0);
    ss_Envelope e = ss_Envelope_init_zero;
    uint8_t buf[RT_FRAME_HDR_MAX];
    size_t n = 0;
    e.which_body = ss_Envelope_hello_tag;
    e.body.hello.version = RT_PROTO_VERSION;
    strcpy(e.body.hello.node, "mute");
    e.body.hello.max_payload = 4096;
    assert_int_equal(rt_frame_encode_header(&e, 0, buf, sizeof buf, &n), RT_OK);
    assert_int_equal(write(fd, buf, n), (ssize_t)n);
    RUN_UNTIL(pa.ups == 1, 5);
    assert_int_equal(pa.ups, 1);
    RUN_UNTIL(pa.downs == 1, 3);
    assert_int_equal(pa.downs, 1);
    assert_non_null(strstr(pa.down_reason, "heartbeat timeout"));
    assert_string_not_equal(rt_link_state(l), "up");
    close(fd);
    close(lfd);
    rt_link_free(l);
}

/* garbage on one accepted link closes it; the good link stays up */
static void test_plain_garbage_closes_only_that_link(void **state)
{
    (void)state;
    char addr[32];
    unsigned port = free_port();
    snprintf(addr, sizeof addr, "127.0.0.1:%u", port);
    rt_link_conf_t lc = fast_conf(NULL);
    rt_listener_t *ls = rt_listener_new(nb, &pb.actor, NULL, addr, &lc);
    rt_link_t *l = rt_link_connect(na, &pa.actor, NULL, addr, &lc);
    RUN_UNTIL(pa.ups == 1 && pb.ups == 1, 5);
    assert_int_equal(pb.ups, 1);

    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    static const uint8_t junk[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 'j', 'u', 'n', 'k'};
    assert_int_equal(write(fd, junk, sizeof junk), (ssize_t)sizeof junk);
    /* the node closes it: read sees EOF */
    uint8_t b[64];
    ssize_t r = -1;
    for (int i = 0; i < 200 && r != 0; i++) {
        run_for(0.01);
        r = recv(fd, b, sizeof b, MSG_DONTWAIT);
        if (r > 0)
            continue; /* its Hello */
    }
    assert_int_equal(r, 0);
    close(fd);
    run_for(0.3);
    assert_string_equal(rt_link_state(l), "up");
    assert_int_equal(pa.downs, 0);
    assert_int_equal(pb.ups, 1);
    rt_link_free(l);
    rt_listener_free(ls);
}

/* ---- TLS ------------------------------------------------------------------------- */

static void make_certs(void)
{
    char err[256], other[96];
    snprintf(tmpdir, sizeof tmpdir, "/tmp/test_rt_link.XXXXXX");
    assert_non_null(mkdtemp(tmpdir));
    assert_int_equal(rt_cert_ca_create(tmpdir, "test", 0, err, sizeof err), RT_OK);
    assert_int_equal(rt_cert_issue(tmpdir, NULL, "A", 0, 0, err, sizeof err), RT_OK);
    assert_int_equal(rt_cert_issue(tmpdir, NULL, "B", 0, 0, err, sizeof err), RT_OK);
    snprintf(other, sizeof other, "%s/other", tmpdir);
    assert_int_equal(rt_cert_ca_create(other, "other", 0, err, sizeof err), RT_OK);
    assert_int_equal(rt_cert_issue(other, NULL, "A", 0, 0, err, sizeof err), RT_OK);
}

static void rm_certs(void)
{
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    assert_int_equal(system(cmd), 0);
}

static rt_tls_t *tls_for(const char *cadir, const char *name, bool server)
{
    char ca[128], crt[128], key[128], err[256];
    snprintf(ca, sizeof ca, "%s/ca.crt", tmpdir); /* always trust the site CA */
    snprintf(crt, sizeof crt, "%s/%s.crt", cadir, name);
    snprintf(key, sizeof key, "%s/%s.key", cadir, name);
    rt_tls_t *t = rt_tls_ctx_new(ca, crt, key, server, err, sizeof err);
    if (!t)
        fail_msg("%s", err);
    return t;
}

static void test_tls(void **state)
{
    (void)state;
    char addr[32], other[96];
    make_certs();
    snprintf(other, sizeof other, "%s/other", tmpdir);
    snprintf(addr, sizeof addr, "127.0.0.1:%u", free_port());
    rt_tls_t *srv = tls_for(tmpdir, "B", true);
    rt_tls_t *cli = tls_for(tmpdir, "A", false);
    rt_tls_t *bad = tls_for(other, "A", false);
    char err[256];
    assert_null(rt_tls_ctx_new("/nonexistent/ca.crt", "x", "y", false, err, sizeof err));
    assert_non_null(strstr(err, "cannot load the site CA"));

    rt_link_conf_t lc = fast_conf("B");
    lc.hb_timeout_s = 5; /* ECC handshakes are slow under valgrind */
    rt_listener_t *ls = rt_listener_new(nb, &pb.actor, srv, addr, &lc);
    rt_link_t *good = rt_link_connect(na, &pa.actor, cli, addr, &lc);
    RUN_UNTIL(pa.ups == 1 && pb.ups == 1, 5);
    assert_int_equal(pa.ups, 1);
    assert_int_equal(pb.ups, 1);
    assert_string_equal(rt_link_peer(good), "B");
    assert_string_equal(rt_link_peer(pb.link), "A");
    for (uint64_t i = 0; i < 10; i++)
        send_frame(good, na, i, (uint32_t)(i * 20000), RT_OK);
    RUN_UNTIL(pb.frames == 10, 5);
    assert_int_equal(pb.frames, 10);
    assert_true(pb.order_ok && pb.payload_ok);

    /* a client that expects another name never gets up */
    rt_link_conf_t wrong = lc;
    wrong.peer_name = "C";
    rt_link_t *misnamed = rt_link_connect(na, &pa.actor, cli, addr, &wrong);
    /* a client whose certificate comes from another CA is refused */
    rt_link_t *foreign = rt_link_connect(na, &pa.actor, bad, addr, &lc);
    run_for(0.5);
    assert_int_equal(pa.ups, 1);
    assert_int_equal(pb.ups, 1);
    assert_string_not_equal(rt_link_state(misnamed), "up");
    assert_string_not_equal(rt_link_state(foreign), "up");
    /* and the good link did not notice */
    assert_string_equal(rt_link_state(good), "up");
    assert_int_equal(pa.downs, 0);
    assert_int_equal(pb.downs, 0);

    rt_link_free(misnamed);
    rt_link_free(foreign);
    rt_link_free(good);
    rt_listener_free(ls);
    rt_tls_ctx_free(srv);
    rt_tls_ctx_free(cli);
    rt_tls_ctx_free(bad);
    rm_certs();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_plain_up_frames_order, setup, teardown_fx),
        cmocka_unit_test_setup_teardown(test_plain_reconnect, setup, teardown_fx),
        cmocka_unit_test_setup_teardown(test_plain_send_backpressure, setup, teardown_fx),
        cmocka_unit_test_setup_teardown(test_plain_recv_backpressure, setup, teardown_fx),
        cmocka_unit_test_setup_teardown(test_heartbeat_timeout, setup, teardown_fx),
        cmocka_unit_test_setup_teardown(test_plain_garbage_closes_only_that_link, setup,
                                        teardown_fx),
        cmocka_unit_test_setup_teardown(test_tls, setup, teardown_fx),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
