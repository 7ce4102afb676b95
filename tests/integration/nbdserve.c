/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * nbdserve: serve files over NBD through the agent's tap (nodes/agent/nbd.c),
 * for the integration tests that drive it with real clients (qemu-io,
 * qemu-img, nbdcopy, nbdinfo) and with the malformed-input poke tool.
 *
 *   nbdserve --listen ADDR:PORT --export NAME FILE [--export NAME2 FILE2 ...]
 *            [--log LOGFILE] [--port-file FILE] [--max-block BYTES]
 *            [--conn-bytes BYTES] [-v]
 *
 * PORT 0 picks a free port; --port-file then receives it (written once the
 * socket listens, so a test can wait for the file). With --log, every write
 * the capture hook sees is appended as one line, written with one write(2)
 * before the client gets its reply:
 *
 *   SEQ OFFSET LEN XXH64 EXPORT KIND
 *
 * SEQ counts from 1 across all exports in completion order; XXH64 (16 hex
 * digits) is the hash of what the range now holds: the written data, or LEN
 * zero bytes for KIND z (WRITE_ZEROES) and t (TRIM); KIND w is a WRITE, wf a
 * WRITE with FUA, x a failed operation (hash "-"). Flushes are not logged.
 * SIGTERM or SIGINT stops it cleanly.
 */
#include "nodes/agent/nbd.h"
#include "rt.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#define MAX_EXPORTS 8

typedef struct serve_export {
    char *name;
    char *file;
} serve_export_t;

static int log_fd = -1;
static uint64_t log_seq;

static uint64_t hash_zeroes(uint64_t len)
{
    static const uint8_t z[65536];
    XXH64_state_t *st = XXH64_createState();
    uint64_t h;

    if (!st)
        return 0;
    XXH64_reset(st, 0);
    while (len > 0) {
        size_t n = len < sizeof(z) ? (size_t)len : sizeof(z);
        XXH64_update(st, z, n);
        len -= n;
    }
    h = XXH64_digest(st);
    XXH64_freeState(st);
    return h;
}

static int on_write(void *ctx, uint64_t off, uint32_t len, const void *data, uint32_t flags)
{
    const char *name = ctx;
    char line[256], hash[24];
    const char *kind;

    if (log_fd < 0)
        return RT_OK;
    if (flags & NBD_HOOK_FAILED) {
        kind = "x";
        snprintf(hash, sizeof(hash), "-");
    } else {
        uint64_t h;
        if (flags & (NBD_HOOK_ZERO | NBD_HOOK_TRIM)) {
            kind = (flags & NBD_HOOK_ZERO) ? "z" : "t";
            h = hash_zeroes(len);
        } else {
            kind = (flags & NBD_HOOK_FUA) ? "wf" : "w";
            h = XXH64(data, len, 0);
        }
        snprintf(hash, sizeof(hash), "%016" PRIx64, h);
    }
    int n = snprintf(line, sizeof(line), "%" PRIu64 " %" PRIu64 " %u %s %s %s\n", ++log_seq,
                     off, len, hash, name, kind);
    if (n < 0 || (size_t)n >= sizeof(line) || write(log_fd, line, (size_t)n) != n) {
        rt_log(RT_LOG_ERR, "nbdserve: cannot append to the log: %s", strerror(errno));
        return RT_ERR;
    }
    return RT_OK;
}

static void on_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void)w;
    (void)revents;
    ev_break(loop, EVBREAK_ALL);
}

static void usage(void)
{
    fprintf(stderr, "usage: nbdserve --listen ADDR:PORT --export NAME FILE [--export NAME FILE]..."
                    " [--log FILE] [--port-file FILE] [--max-block BYTES] [--conn-bytes BYTES]"
                    " [-v]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    serve_export_t ex[MAX_EXPORTS];
    int nex = 0, rc = 1;
    const char *listen = NULL, *logpath = NULL, *portfile = NULL;
    nbd_server_conf_t sc = {0};
    rt_log_level_t level = RT_LOG_INFO;
    nbd_server_t *srv = NULL;
    struct ev_loop *loop = ev_default_loop(0);
    ev_signal sigterm, sigint;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--listen") == 0 && i + 1 < argc) {
            listen = argv[++i];
        } else if (strcmp(argv[i], "--export") == 0 && i + 2 < argc && nex < MAX_EXPORTS) {
            ex[nex].name = argv[++i];
            ex[nex++].file = argv[++i];
        } else if (strcmp(argv[i], "--log") == 0 && i + 1 < argc) {
            logpath = argv[++i];
        } else if (strcmp(argv[i], "--port-file") == 0 && i + 1 < argc) {
            portfile = argv[++i];
        } else if (strcmp(argv[i], "--max-block") == 0 && i + 1 < argc) {
            sc.max_block = (uint32_t)strtoul(argv[++i], NULL, 0);
        } else if (strcmp(argv[i], "--conn-bytes") == 0 && i + 1 < argc) {
            sc.conn_bytes = strtoull(argv[++i], NULL, 0);
        } else if (strcmp(argv[i], "-v") == 0) {
            level = RT_LOG_DEBUG;
        } else {
            usage();
        }
    }
    if (!listen || nex == 0)
        usage();
    rt_log_setup("nbdserve", "", level);
    signal(SIGPIPE, SIG_IGN);

    if (logpath) {
        log_fd = open(logpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (log_fd < 0) {
            rt_log(RT_LOG_ERR, "nbdserve: cannot open %s: %s", logpath, strerror(errno));
            goto out;
        }
    }
    sc.listen = listen;
    srv = nbd_server_new(loop, &sc);
    if (!srv)
        goto out;
    for (int i = 0; i < nex; i++) {
        nbd_export_conf_t ec = {
            .name = ex[i].name,
            .description = ex[i].file,
            .path = ex[i].file,
            .hooks = {.on_write = on_write},
            .ctx = ex[i].name,
        };
        if (!nbd_export_add(srv, &ec))
            goto out;
    }
    if (portfile) {
        char tmp[4096];
        snprintf(tmp, sizeof(tmp), "%s.tmp", portfile);
        FILE *f = fopen(tmp, "w");
        if (!f || fprintf(f, "%u\n", nbd_server_port(srv)) < 0 || fclose(f) != 0 ||
            rename(tmp, portfile) != 0) {
            rt_log(RT_LOG_ERR, "nbdserve: cannot write %s", portfile);
            goto out;
        }
    }
    rt_log(RT_LOG_INFO, "nbdserve: listening on port %u with %d export(s)", nbd_server_port(srv),
           nex);
    ev_signal_init(&sigterm, on_signal, SIGTERM);
    ev_signal_init(&sigint, on_signal, SIGINT);
    ev_signal_start(loop, &sigterm);
    ev_signal_start(loop, &sigint);
    ev_run(loop, 0);
    rt_log(RT_LOG_INFO, "nbdserve: stopping");
    rc = 0;
out:
    nbd_server_free(srv);
    if (log_fd >= 0)
        close(log_fd);
    return rc;
}
