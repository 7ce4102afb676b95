/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * test_nbd.c: protocol-level tests of the agent's NBD server (nodes/agent/nbd.c).
 *
 * Each test builds a server on a private libev loop with two file-backed
 * exports, hands it one end of a socketpair (or a loopback TCP connection)
 * and speaks NBD by hand from the other end: exact handshake bytes, option
 * replies, every command and every error path, the capture hooks (order,
 * arguments, hold with RT_AGAIN), pause/resume and back-pressure. The loop is
 * pumped with EVRUN_NOWAIT while the client waits, and every wait is bounded
 * in iterations and in time.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "nodes/agent/nbd.h"
#include "nodes/agent/nbd_proto.h"
#include "rt.h"

#define SIZE_A (4u << 20)
#define SIZE_B (1u << 20)
#define WAIT_S 5.0

/* ---- fixture ----------------------------------------------------------------- */

typedef struct hrec {
    char exp;       /* 'a' or 'b' */
    uint64_t off;
    uint32_t len;
    uint32_t flags;
    uint64_t hash;  /* XXH64 of the data, 0 when none */
    bool on_disk;   /* the backing file already held the data when the hook ran */
    int early;      /* reply bytes the client could already read when the hook ran */
} hrec_t;

static hrec_t hrecs[1024];
static int nh, nflush;
static int hook_rc_at = -1, hook_rc_val = RT_OK; /* answer hook_rc_val to call number hook_rc_at */
static int hook_file = -1;   /* export a's backing file: checked from inside the hook */
static int hook_client = -1; /* a client socket: no reply may be readable during the hook */
static int park_rc = RT_OK;  /* what on_flush, and on_write with FUA, answer */
static bool park_inside;     /* ...after completing their own token from inside the hook */
static nbd_export_t *park_exp; /* the export on_flush/FUA complete from inside */
static nbd_sync_t *sjobs[16];  /* sync jobs taken by sync_take() (run by the test) */
static int nsjobs;

static int on_write(void *ctx, uint64_t off, uint32_t len, const void *data, uint32_t flags)
{
    int idx = nh;
    if (nh < (int)(sizeof(hrecs) / sizeof(hrecs[0]))) {
        hrec_t *h = &hrecs[nh++];
        h->exp = *(const char *)ctx;
        h->off = off;
        h->len = len;
        h->flags = flags;
        h->hash = data ? XXH64(data, len, 0) : 0;
        h->on_disk = false;
        h->early = 0;
        if (data && hook_file >= 0 && h->exp == 'a') {
            uint8_t *back = malloc(len);
            h->on_disk = back && pread(hook_file, back, len, (off_t)off) == (ssize_t)len &&
                         memcmp(back, data, len) == 0;
            free(back);
        }
        if (hook_client >= 0)
            (void)ioctl(hook_client, FIONREAD, &h->early);
    }
    if ((flags & NBD_HOOK_FUA) && !(flags & NBD_HOOK_FAILED)) {
        if (park_inside)
            nbd_export_complete(park_exp, nbd_export_token(park_exp), RT_OK);
        return park_rc;
    }
    return idx == hook_rc_at ? hook_rc_val : RT_OK;
}

static int on_flush(void *ctx)
{
    (void)ctx;
    nflush++;
    if (park_inside)
        nbd_export_complete(park_exp, nbd_export_token(park_exp), RT_OK);
    return park_rc;
}

/* nbd_server_conf.sync_submit of the parking tests: keep the job */
static int sync_take(void *arg, nbd_sync_t *job)
{
    (void)arg;
    if (nsjobs == (int)(sizeof(sjobs) / sizeof(sjobs[0])))
        return RT_ERR;
    sjobs[nsjobs++] = job;
    return RT_OK;
}

typedef struct fx {
    struct ev_loop *loop;
    nbd_server_t *srv;
    nbd_export_t *ea, *eb;
    char pa[64], pb[64];
    int fa;  /* the backing file of export a, for checks */
} fx_t;

static char ctx_a = 'a', ctx_b = 'b';

static void fx_init(fx_t *f, const nbd_server_conf_t *conf, bool b_readonly)
{
    nbd_server_conf_t def = {0};
    memset(f, 0, sizeof(*f));
    nh = nflush = 0;
    park_rc = RT_OK;
    park_inside = false;
    park_exp = NULL;
    nsjobs = 0;
    hook_rc_at = -1;
    hook_rc_val = RT_OK;
    hook_client = -1;
    f->loop = ev_loop_new(EVFLAG_AUTO);
    assert_non_null(f->loop);
    f->srv = nbd_server_new(f->loop, conf ? conf : &def);
    assert_non_null(f->srv);
    snprintf(f->pa, sizeof(f->pa), "/tmp/test_nbd_a.XXXXXX");
    snprintf(f->pb, sizeof(f->pb), "/tmp/test_nbd_b.XXXXXX");
    f->fa = mkstemp(f->pa);
    int fb = mkstemp(f->pb);
    assert_true(f->fa >= 0 && fb >= 0);
    hook_file = f->fa;
    assert_int_equal(ftruncate(f->fa, SIZE_A), 0);
    assert_int_equal(ftruncate(fb, SIZE_B), 0);
    close(fb);
    nbd_export_conf_t ea = {.name = "alpha", .description = "disk A", .path = f->pa,
                            .hooks = {.on_write = on_write, .on_flush = on_flush}, .ctx = &ctx_a};
    nbd_export_conf_t eb = {.name = "beta", .path = f->pb, .readonly = b_readonly,
                            .hooks = {.on_write = on_write, .on_flush = on_flush}, .ctx = &ctx_b};
    f->ea = nbd_export_add(f->srv, &ea);
    f->eb = nbd_export_add(f->srv, &eb);
    assert_non_null(f->ea);
    assert_non_null(f->eb);
}

static void fx_fini(fx_t *f)
{
    nbd_server_free(f->srv);
    ev_loop_destroy(f->loop);
    close(f->fa);
    unlink(f->pa);
    unlink(f->pb);
}

/* A client socket served by the fixture; *sfd gets the server's end. */
static int fx_client(fx_t *f, int *sfd)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    assert_int_equal(fcntl(sv[0], F_SETFL, O_NONBLOCK), 0);
    assert_int_equal(nbd_server_adopt(f->srv, sv[1]), RT_OK);
    if (sfd)
        *sfd = sv[1];
    return sv[0];
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void pump(fx_t *f, int rounds)
{
    for (int i = 0; i < rounds; i++)
        ev_run(f->loop, EVRUN_NOWAIT);
}

/* Send all of @n bytes, pumping the loop while the socket is full. */
static void cli_send(fx_t *f, int fd, const void *buf, size_t n)
{
    const uint8_t *p = buf;
    double end = now_s() + WAIT_S;
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
            continue;
        }
        assert_true(w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
        assert_true(now_s() < end);
        pump(f, 1);
    }
    pump(f, 2);
}

/* Receive exactly @n bytes. @return bytes received before EOF or timeout. */
static size_t cli_recv_upto(fx_t *f, int fd, void *buf, size_t n, double wait_s)
{
    uint8_t *p = buf;
    size_t got = 0;
    double end = now_s() + wait_s;
    while (got < n && now_s() < end) {
        ssize_t r = recv(fd, p + got, n - got, MSG_DONTWAIT);
        if (r > 0) {
            got += (size_t)r;
            continue;
        }
        if (r == 0)
            break;
        pump(f, 1);
    }
    return got;
}

static void cli_recv(fx_t *f, int fd, void *buf, size_t n)
{
    assert_int_equal(cli_recv_upto(f, fd, buf, n, WAIT_S), n);
}

/* The server closed the connection (recv gives EOF, not EAGAIN). */
static void cli_expect_eof(fx_t *f, int fd)
{
    uint8_t junk[256];
    double end = now_s() + WAIT_S;
    for (;;) {
        ssize_t r = recv(fd, junk, sizeof(junk), MSG_DONTWAIT);
        if (r == 0)
            return;
        if (r < 0 && errno == ECONNRESET)
            return;
        assert_true(now_s() < end);
        pump(f, 1);
    }
}

/* Nothing arrives within a few loop turns. */
static void cli_expect_silence(fx_t *f, int fd)
{
    uint8_t b;
    pump(f, 20);
    ssize_t r = recv(fd, &b, 1, MSG_DONTWAIT);
    assert_true(r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
}

/* ---- protocol helpers ---------------------------------------------------------- */

static void greet(fx_t *f, int fd, uint32_t cflags)
{
    uint8_t g[18], cf[4];
    cli_recv(f, fd, g, sizeof(g));
    assert_memory_equal(g, "NBDMAGICIHAVEOPT", 16);
    assert_int_equal(nbd_get16(g + 16), NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES);
    nbd_put32(cf, cflags);
    cli_send(f, fd, cf, 4);
}

static void send_opt(fx_t *f, int fd, uint32_t opt, const void *data, uint32_t len)
{
    uint8_t h[16];
    nbd_put64(h, NBD_IHAVEOPT);
    nbd_put32(h + 8, opt);
    nbd_put32(h + 12, len);
    cli_send(f, fd, h, 16);
    if (len)
        cli_send(f, fd, data, len);
}

/* One option reply; its payload goes to @buf (up to @cap). @return type. */
static uint32_t recv_rep(fx_t *f, int fd, uint32_t opt, uint8_t *buf, uint32_t cap,
                         uint32_t *len)
{
    uint8_t h[20];
    cli_recv(f, fd, h, 20);
    assert_true(nbd_get64(h) == NBD_REP_MAGIC);
    assert_int_equal(nbd_get32(h + 8), opt);
    uint32_t l = nbd_get32(h + 16);
    assert_true(l <= cap);
    if (l)
        cli_recv(f, fd, buf, l);
    if (len)
        *len = l;
    return nbd_get32(h + 12);
}

/* NBD_OPT_INFO/GO data for @name with info requests @req[0..n). */
static uint32_t info_data(uint8_t *d, const char *name, const uint16_t *req, uint16_t n)
{
    uint32_t nl = (uint32_t)strlen(name);
    nbd_put32(d, nl);
    memcpy(d + 4, name, nl);
    nbd_put16(d + 4 + nl, n);
    for (uint16_t i = 0; i < n; i++)
        nbd_put16(d + 6 + nl + 2u * i, req[i]);
    return 6 + nl + 2u * n;
}

/* Handshake and NBD_OPT_GO to @name. @return the export size. */
static uint64_t go(fx_t *f, int fd, const char *name, uint16_t *tflags)
{
    uint8_t d[256], buf[256];
    uint32_t len, type;
    uint64_t size = 0;
    greet(f, fd, NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES);
    send_opt(f, fd, NBD_OPT_GO, d, info_data(d, name, NULL, 0));
    for (int i = 0; i < 8; i++) {
        type = recv_rep(f, fd, NBD_OPT_GO, buf, sizeof(buf), &len);
        if (type == NBD_REP_ACK)
            return size;
        assert_int_equal(type, NBD_REP_INFO);
        if (nbd_get16(buf) == NBD_INFO_EXPORT) {
            assert_int_equal(len, 12);
            size = nbd_get64(buf + 2);
            if (tflags)
                *tflags = nbd_get16(buf + 10);
        }
    }
    fail_msg("no ACK to NBD_OPT_GO");
    return 0;
}

static void send_req(fx_t *f, int fd, uint16_t flags, uint16_t type, uint64_t cookie,
                     uint64_t off, uint32_t len, const void *payload)
{
    uint8_t h[28];
    nbd_put32(h, NBD_REQUEST_MAGIC);
    nbd_put16(h + 4, flags);
    nbd_put16(h + 6, type);
    nbd_put64(h + 8, cookie);
    nbd_put64(h + 16, off);
    nbd_put32(h + 24, len);
    cli_send(f, fd, h, 28);
    if (payload && len)
        cli_send(f, fd, payload, len);
}

/* A simple reply for @cookie; a successful READ's @len bytes go to @data.
 * @return the error field. */
static uint32_t recv_reply(fx_t *f, int fd, uint64_t cookie, void *data, uint32_t len)
{
    uint8_t h[16];
    cli_recv(f, fd, h, 16);
    assert_int_equal(nbd_get32(h), NBD_SIMPLE_REPLY_MAGIC);
    assert_true(nbd_get64(h + 8) == cookie);
    uint32_t err = nbd_get32(h + 4);
    if (err == 0 && data && len)
        cli_recv(f, fd, data, len);
    return err;
}

static void fill(uint8_t *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(seed * 31u + i * 7u + (i >> 9));
}

static void file_read(int fd, uint64_t off, void *buf, size_t n)
{
    assert_int_equal(pread(fd, buf, n, (off_t)off), (ssize_t)n);
}

static bool all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return false;
    return true;
}

/* ---- negotiation ------------------------------------------------------------------ */

static void test_list(void **state)
{
    (void)state;
    fx_t f;
    uint8_t buf[256];
    uint32_t len;
    fx_init(&f, NULL, false);
    int fd = fx_client(&f, NULL);
    greet(&f, fd, NBD_FLAG_C_FIXED_NEWSTYLE);
    send_opt(&f, fd, NBD_OPT_LIST, NULL, 0);
    assert_int_equal(recv_rep(&f, fd, NBD_OPT_LIST, buf, sizeof(buf), &len), NBD_REP_SERVER);
    assert_int_equal(nbd_get32(buf), 5);
    assert_memory_equal(buf + 4, "alpha", 5);
    assert_int_equal(len, 4 + 5 + 6);
    assert_memory_equal(buf + 9, "disk A", 6);
    assert_int_equal(recv_rep(&f, fd, NBD_OPT_LIST, buf, sizeof(buf), &len), NBD_REP_SERVER);
    assert_int_equal(len, 4 + 4);
    assert_memory_equal(buf + 4, "beta", 4);
    assert_int_equal(recv_rep(&f, fd, NBD_OPT_LIST, buf, sizeof(buf), &len), NBD_REP_ACK);
    assert_int_equal(len, 0);
    /* data with LIST is invalid, and the session goes on */
    send_opt(&f, fd, NBD_OPT_LIST, "x", 1);
    assert_int_equal(recv_rep(&f, fd, NBD_OPT_LIST, buf, sizeof(buf), NULL), NBD_REP_ERR_INVALID);
    send_opt(&f, fd, NBD_OPT_ABORT, NULL, 0);
    assert_int_equal(recv_rep(&f, fd, NBD_OPT_ABORT, buf, sizeof(buf), &len), NBD_REP_ACK);
    cli_expect_eof(&f, fd);
    pump(&f, 2);
    assert_int_equal(nbd_server_conns(f.srv), 0);
    close(fd);
    fx_fini(&f);
}

static void test_info(void **state)
{
    (void)state;
    fx_t f;
    uint8_t d[256], buf[256];
    uint32_t len;
    const uint16_t req[] = {NBD_INFO_NAME, NBD_INFO_DESCRIPTION, NBD_INFO_BLOCK_SIZE, 77};
    nbd_server_conf_t conf = {.max_block = 1u << 20};
    fx_init(&f, &conf, false);
    int fd = fx_client(&f, NULL);
    greet(&f, fd, NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES);
    /* the default export "" is the first one; the name comes back canonical */
    send_opt(&f, fd, NBD_OPT_INFO, d, info_data(d, "", req, 4));
    bool seen[4] = {false};
    for (;;) {
        uint32_t t = recv_rep(&f, fd, NBD_OPT_INFO, buf, sizeof(buf), &len);
        if (t == NBD_REP_ACK)
            break;
        assert_int_equal(t, NBD_REP_INFO);
        uint16_t it = nbd_get16(buf);
        assert_true(it < 4);
        seen[it] = true;
        switch (it) {
        case NBD_INFO_EXPORT:
            assert_int_equal(len, 12);
            assert_int_equal(nbd_get64(buf + 2), SIZE_A);
            assert_int_equal(nbd_get16(buf + 10),
                             NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH | NBD_FLAG_SEND_FUA |
                                 NBD_FLAG_SEND_TRIM | NBD_FLAG_SEND_WRITE_ZEROES |
                                 NBD_FLAG_SEND_FAST_ZERO | NBD_FLAG_CAN_MULTI_CONN);
            break;
        case NBD_INFO_NAME:
            assert_int_equal(len, 2 + 5);
            assert_memory_equal(buf + 2, "alpha", 5);
            break;
        case NBD_INFO_DESCRIPTION:
            assert_int_equal(len, 2 + 6);
            assert_memory_equal(buf + 2, "disk A", 6);
            break;
        case NBD_INFO_BLOCK_SIZE:
            assert_int_equal(len, 14);
            assert_int_equal(nbd_get32(buf + 2), 1);
            assert_int_equal(nbd_get32(buf + 6), 4096);
            assert_int_equal(nbd_get32(buf + 10), 1u << 20);
            break;
        default:
            fail();
        }
    }
    assert_true(seen[0] && seen[1] && seen[2] && seen[3]);
    /* INFO leaves us negotiating: GO to the read-only-less beta works next */
    send_opt(&f, fd, NBD_OPT_GO, d, info_data(d, "beta", NULL, 0));
    assert_int_equal(recv_rep(&f, fd, NBD_OPT_GO, buf, sizeof(buf), &len), NBD_REP_INFO);
    assert_int_equal(nbd_get16(buf), NBD_INFO_EXPORT);
    assert_int_equal(nbd_get64(buf + 2), SIZE_B);
    assert_int_equal(recv_rep(&f, fd, NBD_OPT_GO, buf, sizeof(buf), &len), NBD_REP_INFO);
    assert_int_equal(nbd_get16(buf), NBD_INFO_BLOCK_SIZE); /* sent even when not asked */
    assert_int_equal(recv_rep(&f, fd, NBD_OPT_GO, buf, sizeof(buf), &len), NBD_REP_ACK);
    send_req(&f, fd, 0, NBD_CMD_READ, 9, 0, sizeof(buf), NULL);
    assert_int_equal(recv_reply(&f, fd, 9, buf, sizeof(buf)), 0);
    assert_true(all_zero(buf, sizeof(buf)));
    close(fd);
    fx_fini(&f);
}

static void test_option_errors(void **state)
{
    (void)state;
    fx_t f;
    uint8_t d[256], buf[256];
    static uint8_t big[64 << 10];
    fx_init(&f, NULL, false);
    int fd = fx_client(&f, NULL);
    greet(&f, fd, NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES);

    send_opt(&f, fd, NBD_OPT_GO, d, info_data(d, "nope", NULL, 0));
    assert_int_equal(recv_rep(&f, fd, NBD_OPT_GO, buf, sizeof(buf), NULL), NBD_REP_ERR_UNKNOWN);
    send_opt(&f, fd, NBD_OPT_INFO, d, info_data(d, "nope", NULL, 0));
    assert_int_equal(recv_rep(&f, fd, NBD_OPT_INFO, buf, sizeof(buf), NULL), NBD_REP_ERR_UNKNOWN);
    /* name length beyond the option */
    uint32_t l = info_data(d, "alpha", NULL, 0);
    nbd_put32(d, 200);
    send_opt(&f, fd, NBD_OPT_GO, d, l);
    assert_int_equal(recv_rep(&f, fd, NBD_OPT_GO, buf, sizeof(buf), NULL), NBD_REP_ERR_INVALID);
    /* request count disagreeing with the length */
    l = info_data(d, "alpha", NULL, 0);
    nbd_put16(d + 4 + 5, 3);
    send_opt(&f, fd, NBD_OPT_GO, d, l);
    assert_int_equal(recv_rep(&f, fd, NBD_OPT_GO, buf, sizeof(buf), NULL), NBD_REP_ERR_INVALID);
    send_opt(&f, fd, NBD_OPT_INFO, d, 3);
    assert_int_equal(recv_rep(&f, fd, NBD_OPT_INFO, buf, sizeof(buf), NULL), NBD_REP_ERR_INVALID);
    send_opt(&f, fd, NBD_OPT_STRUCTURED_REPLY, NULL, 0);
    assert_int_equal(recv_rep(&f, fd, NBD_OPT_STRUCTURED_REPLY, buf, sizeof(buf), NULL),
                     NBD_REP_ERR_UNSUP);
    send_opt(&f, fd, NBD_OPT_STARTTLS, NULL, 0);
    assert_int_equal(recv_rep(&f, fd, NBD_OPT_STARTTLS, buf, sizeof(buf), NULL),
                     NBD_REP_ERR_UNSUP);
    send_opt(&f, fd, NBD_OPT_SET_META_CONTEXT, "abcd", 4);
    assert_int_equal(recv_rep(&f, fd, NBD_OPT_SET_META_CONTEXT, buf, sizeof(buf), NULL),
                     NBD_REP_ERR_UNSUP);
    send_opt(&f, fd, 0x12345, "zz", 2);
    assert_int_equal(recv_rep(&f, fd, 0x12345, buf, sizeof(buf), NULL), NBD_REP_ERR_UNSUP);
    /* an option too long to parse is read, dropped and refused */
    send_opt(&f, fd, NBD_OPT_INFO, big, sizeof(big));
    assert_int_equal(recv_rep(&f, fd, NBD_OPT_INFO, buf, sizeof(buf), NULL), NBD_REP_ERR_TOO_BIG);
    /* after all that, the session still works */
    send_opt(&f, fd, NBD_OPT_GO, d, info_data(d, "alpha", NULL, 0));
    for (int i = 0; i < 3; i++)
        assert_int_equal(recv_rep(&f, fd, NBD_OPT_GO, buf, sizeof(buf), NULL),
                         i < 2 ? NBD_REP_INFO : NBD_REP_ACK);
    send_req(&f, fd, 0, NBD_CMD_FLUSH, 1, 0, 0, NULL);
    assert_int_equal(recv_reply(&f, fd, 1, NULL, 0), 0);
    assert_int_equal(nflush, 1);
    close(fd);
    fx_fini(&f);
}

static void test_export_name(void **state)
{
    (void)state;
    fx_t f;
    uint8_t buf[256];
    fx_init(&f, NULL, false);

    /* with NO_ZEROES: size and flags only */
    int fd = fx_client(&f, NULL);
    greet(&f, fd, NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES);
    send_opt(&f, fd, NBD_OPT_EXPORT_NAME, "beta", 4);
    cli_recv(&f, fd, buf, 10);
    assert_int_equal(nbd_get64(buf), SIZE_B);
    assert_true(nbd_get16(buf + 8) & NBD_FLAG_HAS_FLAGS);
    send_req(&f, fd, 0, NBD_CMD_READ, 5, 512, 100, NULL);
    assert_int_equal(recv_reply(&f, fd, 5, buf, 100), 0);
    close(fd);

    /* without: 124 zero bytes follow; an old non-fixed client is fine too */
    fd = fx_client(&f, NULL);
    greet(&f, fd, 0);
    send_opt(&f, fd, NBD_OPT_EXPORT_NAME, "alpha", 5);
    cli_recv(&f, fd, buf, 134);
    assert_int_equal(nbd_get64(buf), SIZE_A);
    assert_true(all_zero(buf + 10, 124));
    send_req(&f, fd, 0, NBD_CMD_READ, 6, 0, 100, NULL);
    assert_int_equal(recv_reply(&f, fd, 6, buf, 100), 0);
    close(fd);

    /* an unknown name cannot be refused politely: the server hangs up */
    fd = fx_client(&f, NULL);
    greet(&f, fd, NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES);
    send_opt(&f, fd, NBD_OPT_EXPORT_NAME, "gamma", 5);
    cli_expect_eof(&f, fd);
    close(fd);
    pump(&f, 4);
    assert_int_equal(nbd_server_conns(f.srv), 0);
    fx_fini(&f);
}

static void test_bad_handshake(void **state)
{
    (void)state;
    fx_t f;
    uint8_t g[18], b[4];
    fx_init(&f, NULL, false);

    int fd = fx_client(&f, NULL); /* unknown client flag */
    greet(&f, fd, 0x80);
    cli_expect_eof(&f, fd);
    close(fd);

    fd = fx_client(&f, NULL); /* bad option magic */
    greet(&f, fd, NBD_FLAG_C_FIXED_NEWSTYLE);
    cli_send(&f, fd, "GARBAGE!GARBAGE!", 16);
    cli_expect_eof(&f, fd);
    close(fd);

    fd = fx_client(&f, NULL); /* client hangs up mid-header */
    cli_recv(&f, fd, g, sizeof(g));
    nbd_put32(b, 1);
    cli_send(&f, fd, b, 2);
    close(fd);
    pump(&f, 10);
    assert_int_equal(nbd_server_conns(f.srv), 0);

    /* an EXPORT_NAME too long for any name: hang up, not a huge read */
    fd = fx_client(&f, NULL);
    greet(&f, fd, NBD_FLAG_C_FIXED_NEWSTYLE);
    uint8_t h[16];
    nbd_put64(h, NBD_IHAVEOPT);
    nbd_put32(h + 8, NBD_OPT_EXPORT_NAME);
    nbd_put32(h + 12, 1u << 30);
    cli_send(&f, fd, h, 16);
    cli_expect_eof(&f, fd);
    close(fd);
    fx_fini(&f);
}

static void test_handshake_timeout(void **state)
{
    (void)state;
    fx_t f;
    nbd_server_conf_t conf = {.handshake_timeout_s = 0.05};
    uint8_t g[18];
    fx_init(&f, &conf, false);
    int fd = fx_client(&f, NULL);
    cli_recv(&f, fd, g, sizeof(g));
    double t0 = now_s();
    assert_int_equal(nbd_server_conns(f.srv), 1);
    while (nbd_server_conns(f.srv) > 0 && now_s() - t0 < WAIT_S)
        ev_run(f.loop, EVRUN_ONCE);
    assert_int_equal(nbd_server_conns(f.srv), 0);
    assert_true(now_s() - t0 >= 0.04);
    cli_expect_eof(&f, fd);
    close(fd);
    /* a client that completed GO is not timed out */
    fd = fx_client(&f, NULL);
    go(&f, fd, "alpha", NULL);
    t0 = now_s();
    while (now_s() - t0 < 0.15)
        ev_run(f.loop, EVRUN_NOWAIT);
    assert_int_equal(nbd_server_conns(f.srv), 1);
    close(fd);
    fx_fini(&f);
}

/* ---- transmission ---------------------------------------------------------------- */

static void test_read_write(void **state)
{
    (void)state;
    fx_t f;
    static uint8_t w[1 << 20], r[1 << 20], back[1 << 20];
    uint16_t tf = 0;
    fx_init(&f, NULL, false);
    int fd = fx_client(&f, NULL);
    assert_int_equal(go(&f, fd, "alpha", &tf), SIZE_A);
    assert_true(tf & NBD_FLAG_SEND_FLUSH);
    hook_client = fd;

    /* aligned, unaligned, tiny and 1 MiB (read straight from the socket) */
    const struct { uint64_t off; uint32_t len; } cases[] = {
        {0, 4096}, {1, 1000}, {8191, 3}, {12345, 65537}, {1u << 20, 1u << 20}, {SIZE_A - 7, 7},
    };
    for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        fill(w, cases[i].len, i + 1);
        send_req(&f, fd, 0, NBD_CMD_WRITE, 100 + i, cases[i].off, cases[i].len, w);
        assert_int_equal(recv_reply(&f, fd, 100 + i, NULL, 0), 0);
        /* the hook saw exactly this write, after it reached the file */
        assert_int_equal(nh, (int)i + 1);
        assert_int_equal(hrecs[i].exp, 'a');
        assert_true(hrecs[i].off == cases[i].off);
        assert_int_equal(hrecs[i].len, cases[i].len);
        assert_int_equal(hrecs[i].flags, 0);
        assert_true(hrecs[i].hash == XXH64(w, cases[i].len, 0));
        assert_true(hrecs[i].on_disk);      /* after the data reached the file */
        assert_int_equal(hrecs[i].early, 0); /* before the reply went out */
        file_read(f.fa, cases[i].off, back, cases[i].len);
        assert_memory_equal(back, w, cases[i].len);
        send_req(&f, fd, 0, NBD_CMD_READ, 200 + i, cases[i].off, cases[i].len, NULL);
        assert_int_equal(recv_reply(&f, fd, 200 + i, r, cases[i].len), 0);
        assert_memory_equal(r, w, cases[i].len);
    }
    /* FUA reaches the hook; zero-length requests succeed and are not reported */
    fill(w, 512, 99);
    send_req(&f, fd, NBD_CMD_FLAG_FUA, NBD_CMD_WRITE, 300, 512, 512, w);
    assert_int_equal(recv_reply(&f, fd, 300, NULL, 0), 0);
    assert_int_equal(hrecs[nh - 1].flags, NBD_HOOK_FUA);
    int before = nh;
    send_req(&f, fd, 0, NBD_CMD_WRITE, 301, 0, 0, NULL);
    assert_int_equal(recv_reply(&f, fd, 301, NULL, 0), 0);
    send_req(&f, fd, NBD_CMD_FLAG_FUA, NBD_CMD_FLUSH, 302, 0, 0, NULL);
    assert_int_equal(recv_reply(&f, fd, 302, NULL, 0), 0);
    assert_int_equal(nh, before);
    assert_int_equal(nflush, 1);

    nbd_export_stats_t st;
    nbd_export_stats(f.ea, &st);
    assert_int_equal(st.conns, 1);
    assert_int_equal(st.writes, 7);
    assert_int_equal(st.reads, 6);
    assert_int_equal(st.flushes, 1);
    assert_int_equal(st.errors, 0);
    close(fd);
    fx_fini(&f);
}

static void test_trim_zeroes(void **state)
{
    (void)state;
    fx_t f;
    static uint8_t w[256 << 10], r[256 << 10];
    fx_init(&f, NULL, false);
    int fd = fx_client(&f, NULL);
    go(&f, fd, "alpha", NULL);
    fill(w, sizeof(w), 3);
    send_req(&f, fd, 0, NBD_CMD_WRITE, 1, 0, sizeof(w), w);
    assert_int_equal(recv_reply(&f, fd, 1, NULL, 0), 0);

    /* TRIM punches a hole (unaligned edges read back as zeroes too) */
    send_req(&f, fd, 0, NBD_CMD_TRIM, 2, 4096 + 100, 8192, NULL);
    assert_int_equal(recv_reply(&f, fd, 2, NULL, 0), 0);
    /* WRITE_ZEROES may punch, with NO_HOLE must not, FAST_ZERO must be fast */
    send_req(&f, fd, 0, NBD_CMD_WRITE_ZEROES, 3, 65536 + 1, 30000, NULL);
    assert_int_equal(recv_reply(&f, fd, 3, NULL, 0), 0);
    send_req(&f, fd, NBD_CMD_FLAG_NO_HOLE | NBD_CMD_FLAG_FUA, NBD_CMD_WRITE_ZEROES, 4, 131072,
             65536, NULL);
    assert_int_equal(recv_reply(&f, fd, 4, NULL, 0), 0);
    send_req(&f, fd, NBD_CMD_FLAG_FAST_ZERO, NBD_CMD_WRITE_ZEROES, 5, 200000, 10000, NULL);
    uint32_t e = recv_reply(&f, fd, 5, NULL, 0);
    assert_true(e == 0 || e == NBD_ENOTSUP);

    memcpy(r, w, sizeof(w));
    memset(r + 4096 + 100, 0, 8192);
    memset(r + 65536 + 1, 0, 30000);
    memset(r + 131072, 0, 65536);
    if (e == 0)
        memset(r + 200000, 0, 10000);
    send_req(&f, fd, 0, NBD_CMD_READ, 6, 0, sizeof(w), NULL);
    static uint8_t got[256 << 10];
    assert_int_equal(recv_reply(&f, fd, 6, got, sizeof(got)), 0);
    assert_memory_equal(got, r, sizeof(r));
    file_read(f.fa, 0, got, sizeof(got));
    assert_memory_equal(got, r, sizeof(r));

    assert_int_equal(nh, e == 0 ? 5 : 4);
    assert_true(hrecs[1].off == 4096 + 100 && hrecs[1].len == 8192);
    assert_int_equal(hrecs[1].flags, NBD_HOOK_TRIM);
    assert_true(hrecs[2].off == 65537 && hrecs[2].len == 30000);
    assert_int_equal(hrecs[2].flags, NBD_HOOK_ZERO);
    assert_int_equal(hrecs[3].flags, NBD_HOOK_ZERO | NBD_HOOK_FUA);
    assert_true(hrecs[1].hash == 0 && hrecs[2].hash == 0);
    close(fd);
    fx_fini(&f);
}

static void test_request_errors(void **state)
{
    (void)state;
    fx_t f;
    static uint8_t w[128 << 10], back[4096];
    nbd_server_conf_t conf = {.max_block = 64u << 10};
    fx_init(&f, &conf, true);
    int fd = fx_client(&f, NULL);
    go(&f, fd, "alpha", NULL);
    fill(w, sizeof(w), 5);

    /* out of range: reads EINVAL, writes ENOSPC (payload skipped) */
    send_req(&f, fd, 0, NBD_CMD_READ, 1, SIZE_A - 10, 11, NULL);
    assert_int_equal(recv_reply(&f, fd, 1, NULL, 0), NBD_EINVAL);
    send_req(&f, fd, 0, NBD_CMD_READ, 2, UINT64_MAX - 5, 10, NULL);
    assert_int_equal(recv_reply(&f, fd, 2, NULL, 0), NBD_EINVAL);
    send_req(&f, fd, 0, NBD_CMD_WRITE, 3, SIZE_A - 100, 4096, w);
    assert_int_equal(recv_reply(&f, fd, 3, NULL, 0), NBD_ENOSPC);
    send_req(&f, fd, 0, NBD_CMD_WRITE_ZEROES, 4, SIZE_A, 1, NULL);
    assert_int_equal(recv_reply(&f, fd, 4, NULL, 0), NBD_ENOSPC);
    send_req(&f, fd, 0, NBD_CMD_TRIM, 5, SIZE_A + 4096, 4096, NULL);
    assert_int_equal(recv_reply(&f, fd, 5, NULL, 0), NBD_EINVAL);
    /* longer than the maximum block size: EINVAL, a write's payload dropped */
    send_req(&f, fd, 0, NBD_CMD_READ, 6, 0, (64u << 10) + 1, NULL);
    assert_int_equal(recv_reply(&f, fd, 6, NULL, 0), NBD_EINVAL);
    send_req(&f, fd, 0, NBD_CMD_WRITE, 7, 0, sizeof(w), w);
    assert_int_equal(recv_reply(&f, fd, 7, NULL, 0), NBD_EINVAL);
    /* unknown and unadvertised commands, flags not valid for the command */
    send_req(&f, fd, 0, 42, 8, 0, 0, NULL);
    assert_int_equal(recv_reply(&f, fd, 8, NULL, 0), NBD_EINVAL);
    send_req(&f, fd, 0, NBD_CMD_CACHE, 9, 0, 4096, NULL);
    assert_int_equal(recv_reply(&f, fd, 9, NULL, 0), NBD_EINVAL);
    send_req(&f, fd, 0, NBD_CMD_BLOCK_STATUS, 10, 0, 4096, NULL);
    assert_int_equal(recv_reply(&f, fd, 10, NULL, 0), NBD_EINVAL);
    send_req(&f, fd, NBD_CMD_FLAG_NO_HOLE, NBD_CMD_WRITE, 11, 0, 4096, w);
    assert_int_equal(recv_reply(&f, fd, 11, NULL, 0), NBD_EINVAL);
    send_req(&f, fd, NBD_CMD_FLAG_DF, NBD_CMD_READ, 12, 0, 4096, NULL);
    assert_int_equal(recv_reply(&f, fd, 12, NULL, 0), NBD_EINVAL);
    send_req(&f, fd, 1u << 12, NBD_CMD_TRIM, 13, 0, 4096, NULL);
    assert_int_equal(recv_reply(&f, fd, 13, NULL, 0), NBD_EINVAL);

    /* none of it touched the disk or the hooks; the stream is still in step */
    assert_int_equal(nh, 0);
    file_read(f.fa, 0, back, sizeof(back));
    assert_true(all_zero(back, sizeof(back)));
    send_req(&f, fd, 0, NBD_CMD_WRITE, 14, 0, 4096, w);
    assert_int_equal(recv_reply(&f, fd, 14, NULL, 0), 0);
    send_req(&f, fd, 0, NBD_CMD_READ, 15, 0, 4096, NULL);
    assert_int_equal(recv_reply(&f, fd, 15, back, 4096), 0);
    assert_memory_equal(back, w, 4096);
    nbd_export_stats_t st;
    nbd_export_stats(f.ea, &st);
    assert_int_equal(st.errors, 13);
    close(fd);

    /* the read-only export says so and refuses writes with EPERM */
    uint16_t tf = 0;
    fd = fx_client(&f, NULL);
    go(&f, fd, "beta", &tf);
    assert_true(tf & NBD_FLAG_READ_ONLY);
    assert_false(tf & NBD_FLAG_SEND_TRIM);
    send_req(&f, fd, 0, NBD_CMD_WRITE, 1, 0, 512, w);
    assert_int_equal(recv_reply(&f, fd, 1, NULL, 0), NBD_EPERM);
    send_req(&f, fd, 0, NBD_CMD_READ, 2, 0, 512, NULL);
    assert_int_equal(recv_reply(&f, fd, 2, back, 512), 0);
    assert_int_equal(nh, 1);
    close(fd);
    fx_fini(&f);
}

/* A bad magic closes that client only; others on the same and another export
 * keep working. */
static void test_bad_magic_isolated(void **state)
{
    (void)state;
    fx_t f;
    uint8_t w[4096], r[4096];
    fx_init(&f, NULL, false);
    int a1 = fx_client(&f, NULL), a2 = fx_client(&f, NULL), b1 = fx_client(&f, NULL);
    go(&f, a1, "alpha", NULL);
    go(&f, a2, "alpha", NULL);
    go(&f, b1, "beta", NULL);
    fill(w, sizeof(w), 8);
    send_req(&f, a1, 0, NBD_CMD_WRITE, 1, 0, sizeof(w), w);
    assert_int_equal(recv_reply(&f, a1, 1, NULL, 0), 0);

    uint8_t bad[28] = {0xde, 0xad, 0xbe, 0xef};
    cli_send(&f, a1, bad, sizeof(bad));
    cli_expect_eof(&f, a1);
    close(a1);
    assert_int_equal(nbd_server_conns(f.srv), 2);

    send_req(&f, a2, 0, NBD_CMD_READ, 2, 0, sizeof(r), NULL);
    assert_int_equal(recv_reply(&f, a2, 2, r, sizeof(r)), 0);
    assert_memory_equal(r, w, sizeof(w));
    send_req(&f, b1, 0, NBD_CMD_WRITE, 3, 4096, sizeof(w), w);
    assert_int_equal(recv_reply(&f, b1, 3, NULL, 0), 0);
    assert_int_equal(hrecs[nh - 1].exp, 'b');
    close(a2);
    close(b1);
    fx_fini(&f);
}

/* Many requests in flight: all read as they come, replies in order, the hook
 * in completion order. */
static void test_pipeline(void **state)
{
    (void)state;
    fx_t f;
    enum { N = 100 };
    static uint8_t w[N][2048], r[2048];
    uint8_t *stream = malloc(N * (28 + 2048) + N * 28);
    size_t sl = 0;
    assert_non_null(stream);
    fx_init(&f, NULL, false);
    int fd = fx_client(&f, NULL);
    go(&f, fd, "alpha", NULL);
    for (int i = 0; i < N; i++) { /* overlapping writes: order matters */
        fill(w[i], sizeof(w[i]), (unsigned)i + 10);
        uint8_t *h = stream + sl;
        nbd_put32(h, NBD_REQUEST_MAGIC);
        nbd_put16(h + 4, 0);
        nbd_put16(h + 6, NBD_CMD_WRITE);
        nbd_put64(h + 8, 1000u + (unsigned)i);
        nbd_put64(h + 16, (uint64_t)(i % 7) * 1024);
        nbd_put32(h + 24, 2048);
        memcpy(h + 28, w[i], 2048);
        sl += 28 + 2048;
    }
    for (int i = 0; i < N; i++) {
        uint8_t *h = stream + sl;
        nbd_put32(h, NBD_REQUEST_MAGIC);
        nbd_put16(h + 4, 0);
        nbd_put16(h + 6, NBD_CMD_READ);
        nbd_put64(h + 8, 5000u + (unsigned)i);
        nbd_put64(h + 16, (uint64_t)i * 2048);
        nbd_put32(h + 24, 16);
        sl += 28;
    }
    cli_send(&f, fd, stream, sl);
    for (int i = 0; i < N; i++)
        assert_int_equal(recv_reply(&f, fd, 1000u + (unsigned)i, NULL, 0), 0);
    for (int i = 0; i < N; i++)
        assert_int_equal(recv_reply(&f, fd, 5000u + (unsigned)i, r, 16), 0);
    assert_int_equal(nh, N);
    for (int i = 0; i < N; i++) {
        assert_true(hrecs[i].off == (uint64_t)(i % 7) * 1024);
        assert_true(hrecs[i].hash == XXH64(w[i], 2048, 0));
    }
    /* the last writer of each KiB wins, as the order says */
    for (int k = 0; k < 8; k++) {
        uint8_t back[1024];
        int last = -1;
        for (int i = 0; i < N; i++)
            if ((i % 7) == k || (i % 7) == k - 1)
                last = i;
        file_read(f.fa, (uint64_t)k * 1024, back, 1024);
        assert_memory_equal(back, w[last] + ((last % 7) == k ? 0 : 1024), 1024);
    }
    free(stream);
    close(fd);
    fx_fini(&f);
}

/* A paused export runs nothing; its client fills its budget, then the server
 * stops reading the socket. Resume runs everything in order. */
static void test_pause_backpressure(void **state)
{
    (void)state;
    fx_t f;
    enum { N = 16, L = 32 << 10 };
    nbd_server_conf_t conf = {.conn_bytes = 64u << 10, .conn_reqs = 64}; /* bytes limit first */
    uint8_t *stream = malloc((size_t)N * (28 + L));
    size_t sl = 0, sent = 0;
    int sfd, avail = 0;
    assert_non_null(stream);
    fx_init(&f, &conf, false);
    int fd = fx_client(&f, &sfd);
    go(&f, fd, "alpha", NULL);
    nbd_export_pause(f.ea);
    assert_true(nbd_export_paused(f.ea));
    for (int i = 0; i < N; i++) {
        uint8_t *h = stream + sl;
        nbd_put32(h, NBD_REQUEST_MAGIC);
        nbd_put16(h + 4, 0);
        nbd_put16(h + 6, NBD_CMD_WRITE);
        nbd_put64(h + 8, (uint64_t)i);
        nbd_put64(h + 16, (uint64_t)i * L);
        nbd_put32(h + 24, L);
        fill(h + 28, L, (unsigned)i);
        sl += 28 + L;
    }
    double end = now_s() + WAIT_S;
    for (int stuck = 0; sent < sl && stuck < 50 && now_s() < end;) {
        ssize_t w = send(fd, stream + sent, sl - sent, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (w > 0) {
            sent += (size_t)w;
            stuck = 0;
        } else {
            stuck++;
        }
        pump(&f, 2);
    }
    /* nothing ran, nothing was replied, and the server stopped reading */
    assert_true(sent < sl);
    assert_int_equal(nh, 0);
    cli_expect_silence(&f, fd);
    assert_int_equal(ioctl(sfd, FIONREAD, &avail), 0);
    assert_true(avail > 0);
    uint8_t back[512];
    file_read(f.fa, 0, back, sizeof(back));
    assert_true(all_zero(back, sizeof(back)));

    nbd_export_resume(f.ea);
    end = now_s() + WAIT_S;
    while (sent < sl && now_s() < end) { /* 16 replies fit in the socket: no need to read */
        ssize_t w = send(fd, stream + sent, sl - sent, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (w > 0)
            sent += (size_t)w;
        pump(&f, 1);
    }
    assert_true(sent == sl);
    for (int i = 0; i < N; i++)
        assert_int_equal(recv_reply(&f, fd, (uint64_t)i, NULL, 0), 0);
    assert_int_equal(nh, N);
    for (int i = 0; i < N; i++) {
        assert_true(hrecs[i].off == (uint64_t)i * L);
        assert_true(hrecs[i].hash == XXH64(stream + (size_t)i * (28 + L) + 28, L, 0));
    }
    free(stream);
    close(fd);
    fx_fini(&f);
}

/* A hook answering RT_AGAIN holds the export after that request; RT_ERR turns
 * into EIO for the client. */
static void test_hook_hold_and_error(void **state)
{
    (void)state;
    fx_t f;
    uint8_t w[4096];
    fx_init(&f, NULL, false);
    int fd = fx_client(&f, NULL), fb = fx_client(&f, NULL);
    go(&f, fd, "alpha", NULL);
    go(&f, fb, "beta", NULL);
    fill(w, sizeof(w), 1);
    hook_rc_at = 0;
    hook_rc_val = RT_AGAIN;
    for (int i = 0; i < 3; i++)
        send_req(&f, fd, 0, NBD_CMD_WRITE, (uint64_t)i, (uint64_t)i * 4096, sizeof(w), w);
    assert_int_equal(recv_reply(&f, fd, 0, NULL, 0), 0); /* captured, replied */
    cli_expect_silence(&f, fd);
    assert_int_equal(nh, 1);
    assert_true(nbd_export_paused(f.ea));
    /* the other export is not held */
    send_req(&f, fb, 0, NBD_CMD_WRITE, 7, 0, sizeof(w), w);
    assert_int_equal(recv_reply(&f, fb, 7, NULL, 0), 0);
    assert_int_equal(nh, 2);
    nbd_export_resume(f.ea);
    assert_false(nbd_export_paused(f.ea));
    assert_int_equal(recv_reply(&f, fd, 1, NULL, 0), 0);
    assert_int_equal(recv_reply(&f, fd, 2, NULL, 0), 0);
    assert_int_equal(nh, 4);
    assert_true(hrecs[2].off == 4096 && hrecs[3].off == 8192);

    hook_rc_at = nh;
    hook_rc_val = RT_ERR;
    send_req(&f, fd, 0, NBD_CMD_WRITE, 9, 0, sizeof(w), w);
    assert_int_equal(recv_reply(&f, fd, 9, NULL, 0), NBD_EIO);
    send_req(&f, fd, 0, NBD_CMD_WRITE, 10, 0, sizeof(w), w);
    assert_int_equal(recv_reply(&f, fd, 10, NULL, 0), 0);
    close(fd);
    close(fb);
    fx_fini(&f);
}

/* DISC: everything before it is done and replied, then the server closes;
 * a client that half-closes after its requests still gets its replies. */
static void test_disc_and_eof(void **state)
{
    (void)state;
    fx_t f;
    uint8_t w[4096];
    fx_init(&f, NULL, false);
    int fd = fx_client(&f, NULL);
    go(&f, fd, "alpha", NULL);
    fill(w, sizeof(w), 2);
    send_req(&f, fd, 0, NBD_CMD_WRITE, 1, 0, sizeof(w), w);
    send_req(&f, fd, 0, NBD_CMD_WRITE, 2, 4096, sizeof(w), w);
    send_req(&f, fd, 0, NBD_CMD_DISC, 3, 0, 0, NULL);
    assert_int_equal(recv_reply(&f, fd, 1, NULL, 0), 0);
    assert_int_equal(recv_reply(&f, fd, 2, NULL, 0), 0);
    cli_expect_eof(&f, fd);
    close(fd);
    assert_int_equal(nh, 2);

    fd = fx_client(&f, NULL);
    go(&f, fd, "alpha", NULL);
    send_req(&f, fd, 0, NBD_CMD_WRITE, 4, 8192, sizeof(w), w);
    send_req(&f, fd, 0, NBD_CMD_READ, 5, 0, 4096, NULL);
    shutdown(fd, SHUT_WR);
    assert_int_equal(recv_reply(&f, fd, 4, NULL, 0), 0);
    uint8_t r[4096];
    assert_int_equal(recv_reply(&f, fd, 5, r, sizeof(r)), 0);
    assert_memory_equal(r, w, sizeof(w));
    cli_expect_eof(&f, fd);
    close(fd);
    pump(&f, 4);
    assert_int_equal(nbd_server_conns(f.srv), 0);
    fx_fini(&f);
}

static void test_limits_and_remove(void **state)
{
    (void)state;
    fx_t f;
    int sv[2];
    nbd_server_conf_t conf = {.max_conns = 2};
    fx_init(&f, &conf, false);
    int c1 = fx_client(&f, NULL), c2 = fx_client(&f, NULL);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    assert_int_equal(nbd_server_adopt(f.srv, sv[1]), RT_ERR); /* over the limit, fd closed */
    uint8_t b;
    assert_int_equal(recv(sv[0], &b, 1, 0), 0);
    close(sv[0]);
    go(&f, c1, "alpha", NULL);
    go(&f, c2, "beta", NULL);
    /* removing an export hangs up on its clients only */
    assert_true(nbd_export_find(f.srv, "alpha") == f.ea);
    nbd_export_remove(f.ea);
    assert_null(nbd_export_find(f.srv, "alpha"));
    cli_expect_eof(&f, c1);
    send_req(&f, c2, 0, NBD_CMD_READ, 1, 0, 1, NULL);
    assert_int_equal(recv_reply(&f, c2, 1, &b, 1), 0);
    close(c1);
    close(c2);
    /* duplicate and empty names are refused */
    nbd_export_conf_t dup = {.name = "beta", .path = f.pb};
    assert_null(nbd_export_add(f.srv, &dup));
    nbd_export_conf_t empty = {.name = "", .path = f.pb};
    assert_null(nbd_export_add(f.srv, &empty));
    nbd_export_conf_t missing = {.name = "m", .path = "/nonexistent/disk.img"};
    assert_null(nbd_export_add(f.srv, &missing));
    fx_fini(&f);
}

/* The real listener on loopback TCP. */
static void test_tcp_listener(void **state)
{
    (void)state;
    fx_t f;
    nbd_server_conf_t conf = {.listen = "127.0.0.1:0"};
    uint8_t r[512];
    fx_init(&f, &conf, false);
    unsigned port = nbd_server_port(f.srv);
    assert_true(port > 0);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(fcntl(fd, F_SETFL, O_NONBLOCK), 0);
    assert_int_equal(go(&f, fd, "beta", NULL), SIZE_B);
    send_req(&f, fd, 0, NBD_CMD_READ, 77, 0, sizeof(r), NULL);
    assert_int_equal(recv_reply(&f, fd, 77, r, sizeof(r)), 0);
    close(fd);
    fx_fini(&f);

    /* numeric addresses only, and a port is required */
    const char *bad[] = {"localhost:10809", "127.0.0.1", "127.0.0.1:99999", "[::1]10809",
                         "1.2.3:80", "127.0.0.1:8x"};
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        nbd_server_conf_t c = {.listen = bad[i]};
        assert_null(nbd_server_new(loop, &c));
    }
    ev_loop_destroy(loop);
}

/* ---- parking: FLUSH and FUA off the loop ------------------------------------------ */

static nbd_export_stats_t stats_of(nbd_export_t *e)
{
    nbd_export_stats_t st;
    nbd_export_stats(e, &st);
    return st;
}

/* run sync job @i as a worker would, then end it on the loop */
static void run_sync(fx_t *f, int i)
{
    assert_true(i < nsjobs && sjobs[i]);
    nbd_sync_run(sjobs[i]);
    nbd_sync_end(f->srv, sjobs[i]);
    sjobs[i] = NULL;
    pump(f, 4);
}

/* A FLUSH parks until both the backing file's sync (which started after it
 * ran) and the hook's completion are done; requests after it are served
 * meanwhile (replies out of order); FLUSHes during a sync share the next
 * one; an error completion gives EIO. */
static void test_park_flush(void **state)
{
    (void)state;
    fx_t f;
    uint8_t w[4096], r[4096];
    nbd_server_conf_t conf = {.sync_submit = sync_take};
    fx_init(&f, &conf, false);
    park_rc = NBD_PARK;
    int fd = fx_client(&f, NULL);
    go(&f, fd, "alpha", NULL);
    fill(w, sizeof(w), 3);

    send_req(&f, fd, 0, NBD_CMD_WRITE, 1, 8192, sizeof(w), w);
    assert_int_equal(recv_reply(&f, fd, 1, NULL, 0), 0);
    send_req(&f, fd, 0, NBD_CMD_FLUSH, 2, 0, 0, NULL);
    pump(&f, 4);
    assert_int_equal(nflush, 1);
    assert_int_equal(nsjobs, 1); /* its sync: on the "worker", not run yet */
    uint64_t t2 = nbd_export_token(f.ea);
    /* later requests are served while the FLUSH waits: READ 3's reply first */
    send_req(&f, fd, 0, NBD_CMD_READ, 3, 8192, sizeof(r), NULL);
    assert_int_equal(recv_reply(&f, fd, 3, r, sizeof(r)), 0);
    assert_memory_equal(r, w, sizeof(w));
    assert_int_equal(stats_of(f.ea).parked, 1);
    /* two more FLUSHes while the sync runs: no second sync yet */
    send_req(&f, fd, 0, NBD_CMD_FLUSH, 4, 0, 0, NULL);
    send_req(&f, fd, 0, NBD_CMD_FLUSH, 5, 0, 0, NULL);
    pump(&f, 4);
    assert_int_equal(nsjobs, 1);
    assert_int_equal(stats_of(f.ea).parked, 3);
    /* the hook's durability alone does not release FLUSH 2: its sync is not done */
    nbd_export_complete(f.ea, t2, RT_OK);
    cli_expect_silence(&f, fd);
    /* the sync ends: FLUSH 2 is answered; 4 and 5 share the next sync */
    run_sync(&f, 0);
    assert_int_equal(recv_reply(&f, fd, 2, NULL, 0), 0);
    assert_int_equal(nsjobs, 2);
    assert_int_equal(stats_of(f.ea).syncs, 2);
    assert_int_equal(stats_of(f.ea).flushes, 1);
    /* their sync first this time: still parked for the hook */
    run_sync(&f, 1);
    cli_expect_silence(&f, fd);
    assert_int_equal(stats_of(f.ea).parked, 2);
    /* a completion up to 4's token only: 4 goes, with EIO; 5 waits */
    nbd_export_complete(f.ea, t2 + 1, RT_ERR);
    assert_int_equal(recv_reply(&f, fd, 4, NULL, 0), NBD_EIO);
    cli_expect_silence(&f, fd);
    nbd_export_complete(f.ea, nbd_export_token(f.ea), RT_OK);
    assert_int_equal(recv_reply(&f, fd, 5, NULL, 0), 0);
    assert_int_equal(stats_of(f.ea).parked, 0);
    assert_int_equal(stats_of(f.ea).flushes, 2);
    /* a stale or repeated completion touches nothing */
    nbd_export_complete(f.ea, nbd_export_token(f.ea), RT_ERR);
    cli_expect_silence(&f, fd);
    close(fd);
    fx_fini(&f);
}

/* A FUA write's reply waits for its sync and its hook; a plain write behind
 * it is answered first. Without a sync runner, the sync runs on the loop;
 * a hook that completes its own token from inside needs no later call. */
static void test_park_fua(void **state)
{
    (void)state;
    fx_t f;
    uint8_t w[4096];
    nbd_server_conf_t conf = {.sync_submit = sync_take};
    fx_init(&f, &conf, false);
    park_rc = NBD_PARK;
    int fd = fx_client(&f, NULL);
    go(&f, fd, "alpha", NULL);
    fill(w, sizeof(w), 4);
    send_req(&f, fd, NBD_CMD_FLAG_FUA, NBD_CMD_WRITE, 1, 0, sizeof(w), w);
    send_req(&f, fd, 0, NBD_CMD_WRITE, 2, 4096, sizeof(w), w);
    assert_int_equal(recv_reply(&f, fd, 2, NULL, 0), 0);
    assert_int_equal(nh, 2);
    assert_true(hrecs[0].flags & NBD_HOOK_FUA);
    assert_true(hrecs[0].on_disk); /* written before the hook, synced after it */
    assert_int_equal(nsjobs, 1);
    nbd_export_complete(f.ea, nbd_export_token(f.ea), RT_OK);
    cli_expect_silence(&f, fd);
    run_sync(&f, 0);
    assert_int_equal(recv_reply(&f, fd, 1, NULL, 0), 0);
    close(fd);
    fx_fini(&f);

    /* no runner: the sync on the loop; the hook completes itself */
    fx_init(&f, NULL, false);
    park_rc = NBD_PARK;
    park_inside = true;
    park_exp = f.ea;
    fd = fx_client(&f, NULL);
    go(&f, fd, "alpha", NULL);
    send_req(&f, fd, NBD_CMD_FLAG_FUA, NBD_CMD_WRITE, 7, 0, sizeof(w), w);
    assert_int_equal(recv_reply(&f, fd, 7, NULL, 0), 0);
    send_req(&f, fd, 0, NBD_CMD_FLUSH, 8, 0, 0, NULL);
    assert_int_equal(recv_reply(&f, fd, 8, NULL, 0), 0);
    assert_int_equal(stats_of(f.ea).syncs, 2);
    assert_int_equal(stats_of(f.ea).parked, 0);
    close(fd);
    fx_fini(&f);
}

/* A client that goes away with parked requests: the connection closes once
 * the client is gone (DISC waits for them), and a later sync end or
 * completion touches nothing of it (ASan in unit-san). */
static void test_park_close(void **state)
{
    (void)state;
    fx_t f;
    uint8_t w[4096];
    nbd_server_conf_t conf = {.sync_submit = sync_take};
    fx_init(&f, &conf, false);
    park_rc = NBD_PARK;
    int fd = fx_client(&f, NULL);
    go(&f, fd, "alpha", NULL);
    fill(w, sizeof(w), 5);
    /* DISC after a parked FLUSH: the FLUSH is still answered first */
    send_req(&f, fd, 0, NBD_CMD_FLUSH, 1, 0, 0, NULL);
    send_req(&f, fd, 0, NBD_CMD_DISC, 2, 0, 0, NULL);
    pump(&f, 4);
    assert_int_equal(nbd_server_conns(f.srv), 1);
    nbd_export_complete(f.ea, nbd_export_token(f.ea), RT_OK);
    run_sync(&f, 0);
    assert_int_equal(recv_reply(&f, fd, 1, NULL, 0), 0);
    cli_expect_eof(&f, fd);
    close(fd);
    assert_int_equal(nbd_server_conns(f.srv), 0);

    /* hang up with a parked FLUSH and a parked FUA write */
    fd = fx_client(&f, NULL);
    go(&f, fd, "alpha", NULL);
    send_req(&f, fd, 0, NBD_CMD_FLUSH, 3, 0, 0, NULL);
    send_req(&f, fd, NBD_CMD_FLAG_FUA, NBD_CMD_WRITE, 4, 0, sizeof(w), w);
    pump(&f, 4);
    assert_int_equal(stats_of(f.ea).parked, 2);
    close(fd);
    for (int i = 0; i < 50 && nbd_server_conns(f.srv) > 0; i++)
        pump(&f, 1);
    /* the client hung up: its half-close keeps the connection for the replies */
    nbd_export_complete(f.ea, nbd_export_token(f.ea), RT_OK);
    run_sync(&f, 1);
    assert_int_equal(nsjobs, 3); /* the FUA write's sync: the one after the FLUSH's */
    run_sync(&f, 2);
    for (int i = 0; i < 50 && nbd_server_conns(f.srv) > 0; i++)
        pump(&f, 1);
    assert_int_equal(nbd_server_conns(f.srv), 0);
    assert_int_equal(stats_of(f.ea).parked, 0);

    /* a third client parks, then the whole server goes: the job outlives it */
    fd = fx_client(&f, NULL);
    go(&f, fd, "alpha", NULL);
    send_req(&f, fd, 0, NBD_CMD_FLUSH, 5, 0, 0, NULL);
    pump(&f, 4);
    int last = nsjobs - 1;
    assert_non_null(sjobs[last]);
    assert_int_equal(stats_of(f.ea).parked, 1);
    nbd_export_remove(f.ea); /* drops the connection and its parked FLUSH */
    f.ea = NULL;
    assert_int_equal(nbd_server_conns(f.srv), 0);
    nbd_sync_run(sjobs[last]);
    nbd_sync_end(f.srv, sjobs[last]); /* stale: its export is gone */
    sjobs[last] = NULL;
    close(fd);
    fx_fini(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_list),
        cmocka_unit_test(test_info),
        cmocka_unit_test(test_option_errors),
        cmocka_unit_test(test_export_name),
        cmocka_unit_test(test_bad_handshake),
        cmocka_unit_test(test_handshake_timeout),
        cmocka_unit_test(test_read_write),
        cmocka_unit_test(test_trim_zeroes),
        cmocka_unit_test(test_request_errors),
        cmocka_unit_test(test_bad_magic_isolated),
        cmocka_unit_test(test_pipeline),
        cmocka_unit_test(test_pause_backpressure),
        cmocka_unit_test(test_hook_hold_and_error),
        cmocka_unit_test(test_disc_and_eof),
        cmocka_unit_test(test_limits_and_remove),
        cmocka_unit_test(test_tcp_listener),
        cmocka_unit_test(test_park_flush),
        cmocka_unit_test(test_park_fua),
        cmocka_unit_test(test_park_close),
    };
    rt_log_setup("test_nbd", "", RT_LOG_WARN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
