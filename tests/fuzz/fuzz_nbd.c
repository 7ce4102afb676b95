/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * fuzz_nbd.c: libFuzzer target for the agent's NBD server (nodes/agent/nbd.c),
 * negotiation and request parsing together, through the real socket code.
 *
 * The input is what a client sends. Byte 0 chooses a mode: bit 0 prepends a
 * canned handshake (client flags + NBD_OPT_GO "fz") so that most inputs reach
 * the transmission parser; bit 1 makes the write hook answer RT_AGAIN on
 * every third call, so that pause/resume and the budgets are exercised (the
 * harness resumes the export whenever it is paused). The rest is written into
 * one end of a socketpair served by a fresh server over a 1 MiB memfd export,
 * the loop is pumped and replies drained, then the client half-closes and
 * finally hangs up.
 *
 * Checked besides ASan/UBSan (and LeakSanitizer at exit): the hooks only
 * ever see ranges inside the export, data exactly for plain writes and known
 * flags; and a client that hangs up is always cleaned up, whatever state it
 * left its connection in (no connection left open).
 * Seeds: tests/fuzz/corpus/fuzz_nbd/.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "nodes/agent/nbd.h"
#include "nodes/agent/nbd_proto.h"
#include "rt.h"

#define FZ_SIZE   (1u << 20)
#define FZ_ROUNDS 4000

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct ev_loop *loop;
static int memfd = -1, rofd = -1;
static unsigned hook_calls;
static bool hold_mode;

static int fz_write(void *ctx, uint64_t off, uint32_t len, const void *d, uint32_t flags)
{
    (void)ctx;
    if (len == 0 || off > FZ_SIZE || len > FZ_SIZE - off)
        abort(); /* a range outside the export reached the hook */
    bool plain = !(flags & (NBD_HOOK_ZERO | NBD_HOOK_TRIM | NBD_HOOK_FAILED));
    if (plain != (d != NULL))
        abort();
    if (flags & ~(uint32_t)(NBD_HOOK_ZERO | NBD_HOOK_TRIM | NBD_HOOK_FUA | NBD_HOOK_FAILED))
        abort();
    hook_calls++;
    return hold_mode && hook_calls % 3 == 0 ? RT_AGAIN : RT_OK;
}

static int fz_flush(void *ctx)
{
    (void)ctx;
    hook_calls++;
    return hold_mode && hook_calls % 3 == 0 ? RT_AGAIN : RT_OK;
}

static void fz_init(void)
{
    if (loop)
        return;
    rt_log_setup("fuzz_nbd", "", RT_LOG_ERR);
    loop = ev_loop_new(EVFLAG_AUTO);
    memfd = memfd_create("fz", MFD_CLOEXEC);
    rofd = memfd_create("fy", MFD_CLOEXEC);
    if (!loop || memfd < 0 || rofd < 0 || ftruncate(memfd, FZ_SIZE) < 0 ||
        ftruncate(rofd, 4096) < 0)
        abort();
}

/* The canned handshake of mode bit 0. */
static size_t canned(uint8_t *p)
{
    nbd_put32(p, NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES);
    nbd_put64(p + 4, NBD_IHAVEOPT);
    nbd_put32(p + 12, NBD_OPT_GO);
    nbd_put32(p + 16, 4 + 2 + 2);
    nbd_put32(p + 20, 2);
    memcpy(p + 24, "fz", 2);
    nbd_put16(p + 26, 0);
    return 28;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t pre[32], junk[65536];
    int sv[2];

    if (size < 1 || size > (1u << 20))
        return 0;
    fz_init();
    hold_mode = data[0] & 2;
    hook_calls = 0;
    size_t npre = (data[0] & 1) ? canned(pre) : 0;
    data++;
    size--;

    nbd_server_conf_t sc = {.max_block = 64u << 10, .conn_reqs = 16, .conn_bytes = 128u << 10};
    nbd_server_t *s = nbd_server_new(loop, &sc);
    nbd_export_conf_t ec = {.name = "fz", .path = NULL, .fd = memfd,
                            .hooks = {.on_write = fz_write, .on_flush = fz_flush}};
    nbd_export_conf_t ey = {.name = "fy", .description = "ro", .fd = rofd, .readonly = true,
                            .hooks = {.on_write = fz_write, .on_flush = fz_flush}};
    nbd_export_t *e = s ? nbd_export_add(s, &ec) : NULL;
    if (!e || !nbd_export_add(s, &ey))
        abort();
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        abort();
    if (fcntl(sv[0], F_SETFL, O_NONBLOCK) < 0)
        abort();
    if (nbd_server_adopt(s, sv[1]) != RT_OK)
        abort();

    size_t sent_pre = 0, sent = 0;
    bool shut = false;
    for (int i = 0; i < FZ_ROUNDS && nbd_server_conns(s) > 0; i++) {
        if (sent_pre < npre) {
            ssize_t w = send(sv[0], pre + sent_pre, npre - sent_pre, MSG_DONTWAIT | MSG_NOSIGNAL);
            if (w > 0)
                sent_pre += (size_t)w;
        } else if (sent < size) {
            ssize_t w = send(sv[0], data + sent, size - sent, MSG_DONTWAIT | MSG_NOSIGNAL);
            if (w > 0)
                sent += (size_t)w;
            else if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
                sent = size; /* the server hung up */
        } else if (!shut) {
            shutdown(sv[0], SHUT_WR);
            shut = true;
        }
        ev_run(loop, EVRUN_NOWAIT);
        while (recv(sv[0], junk, sizeof(junk), MSG_DONTWAIT) > 0)
            ;
        if (nbd_export_paused(e))
            nbd_export_resume(e);
    }
    /* hang up for good: whatever state it was in, the server lets go */
    close(sv[0]);
    for (int i = 0; i < 64 && nbd_server_conns(s) > 0; i++) {
        if (nbd_export_paused(e))
            nbd_export_resume(e);
        ev_run(loop, EVRUN_NOWAIT);
    }
    if (nbd_server_conns(s) != 0) {
        fprintf(stderr, "fuzz_nbd: connection still open after the client hung up\n");
        abort();
    }
    nbd_server_free(s);
    return 0;
}
