/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * linkbench: the link stages of `make bench`: how fast one connection over
 * loopback moves bytes, in plain TCP and in mutual-TLS 1.3 made with the
 * project's own TLS context (rt_tls_ctx_new, the one the links use), so the
 * table shows what the wire and the cipher cost before any protocol of ours.
 *
 *   linkbench port                print a TCP port on 127.0.0.1 that was free
 *                                 a moment ago (for the driver's servers)
 *   linkbench tcp BYTES           push BYTES from a client to a server process
 *   linkbench tls BYTES CA SERVER_CRT SERVER_KEY CLIENT_CRT CLIENT_KEY
 *                                 the same over TLS 1.3 with mutual
 *                                 authentication against the site CA CA
 *
 * The server is a forked child on 127.0.0.1:0; the client (this process)
 * sends the byte count, then the bytes in 256 KiB writes; the server reads
 * them all and answers one byte, and the clock stops when that byte arrives
 * (so nothing is left in flight). Both sides block; an alarm bounds the run.
 * Output: one line of KEY=VALUE pairs (MB is 10^6 bytes); errors are one line
 * on stderr and exit 1, bad usage exits 2.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "rt.h"

#define CHUNK      (256u << 10) /* bytes per write/read call */
#define MAX_BYTES  (64ull << 30) /* refuse to push more than 64 GiB */
#define RUN_LIMIT  300u         /* seconds before the alarm ends either side */
#define MB         1e6

enum { OK = 0, FAIL = 1, USAGE = 2 };

/* one side of the connection: plain TCP when tls is NULL */
typedef struct side {
    int fd;
    rt_tls_conn_t *tls;
    char err[256];
} side_t;

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int side_write(side_t *s, const void *buf, size_t len)
{
    size_t put = 0;
    while (put < len) {
        size_t n = 0;
        if (s->tls) {
            if (rt_tls_write(s->tls, (const char *)buf + put, len - put, &n, s->err,
                             sizeof s->err) != RT_OK)
                return RT_ERR;
        } else {
            ssize_t w = write(s->fd, (const char *)buf + put, len - put);
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0) {
                snprintf(s->err, sizeof s->err, "write: %s", strerror(errno));
                return RT_ERR;
            }
            n = (size_t)w;
        }
        put += n;
    }
    return RT_OK;
}

/* read up to @len bytes (at least one); *@got says how many */
static int side_read(side_t *s, void *buf, size_t len, size_t *got)
{
    if (s->tls)
        return rt_tls_read(s->tls, buf, len, got, s->err, sizeof s->err);
    for (;;) {
        ssize_t r = read(s->fd, buf, len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            snprintf(s->err, sizeof s->err, "read: %s", r ? strerror(errno) : "peer closed");
            return RT_ERR;
        }
        *got = (size_t)r;
        return RT_OK;
    }
}

static int side_read_full(side_t *s, void *buf, size_t len)
{
    size_t have = 0;
    while (have < len) {
        size_t n = 0;
        if (side_read(s, (char *)buf + have, len - have, &n) != RT_OK)
            return RT_ERR;
        have += n;
    }
    return RT_OK;
}

static int listen_any(uint16_t *port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 4) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &alen) != 0) {
        close(fd);
        return -1;
    }
    *port = ntohs(a.sin_port);
    return fd;
}

/* ---- the server child ------------------------------------------------------- */

static int serve(int lfd, rt_tls_t *tls)
{
    int rc = FAIL;
    side_t s = {.fd = -1};
    char *buf = malloc(CHUNK);
    uint64_t want = 0, have = 0;
    const char ack = 'k';

    if (!buf)
        goto out;
    s.fd = accept(lfd, NULL, NULL);
    if (s.fd < 0) {
        snprintf(s.err, sizeof s.err, "accept: %s", strerror(errno));
        goto out;
    }
    if (tls) {
        s.tls = rt_tls_conn_new(tls, s.fd, s.err, sizeof s.err);
        if (!s.tls || rt_tls_handshake(s.tls, s.err, sizeof s.err) != RT_OK)
            goto out;
    }
    if (side_read_full(&s, &want, sizeof want) != RT_OK)
        goto out;
    while (have < want) {
        size_t n = 0;
        uint64_t left = want - have;
        if (side_read(&s, buf, left < CHUNK ? (size_t)left : CHUNK, &n) != RT_OK)
            goto out;
        have += n;
    }
    if (side_write(&s, &ack, 1) != RT_OK)
        goto out;
    rc = OK;
out:
    if (rc != OK)
        fprintf(stderr, "linkbench: server: %s\n", s.err[0] ? s.err : "out of memory");
    if (s.tls) {
        rt_tls_shutdown(s.tls);
        rt_tls_conn_free(s.tls);
    }
    if (s.fd >= 0)
        close(s.fd);
    free(buf);
    return rc;
}

/* ---- the client (the measured side) ----------------------------------------- */

static int push(uint64_t bytes, rt_tls_t *srv_tls, rt_tls_t *cli_tls)
{
    int rc = FAIL, status = 0;
    side_t s = {.fd = -1};
    char *buf = NULL;
    uint16_t port = 0;
    pid_t child = -1;
    char ack = 0;
    int lfd = listen_any(&port);

    if (lfd < 0) {
        snprintf(s.err, sizeof s.err, "listen on 127.0.0.1: %s", strerror(errno));
        goto out;
    }
    child = fork();
    if (child < 0) {
        snprintf(s.err, sizeof s.err, "fork: %s", strerror(errno));
        goto out;
    }
    if (child == 0)
        _exit(serve(lfd, srv_tls));
    close(lfd);
    lfd = -1;

    buf = malloc(CHUNK);
    if (!buf) {
        snprintf(s.err, sizeof s.err, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < CHUNK; i++) /* not all zero, not that it matters here */
        buf[i] = (char)(i * 131u + (i >> 9));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    s.fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s.fd < 0 || connect(s.fd, (struct sockaddr *)&a, sizeof a) != 0) {
        snprintf(s.err, sizeof s.err, "connect to 127.0.0.1:%u: %s", port, strerror(errno));
        goto out;
    }
    double t0 = mono();
    if (cli_tls) {
        s.tls = rt_tls_conn_new(cli_tls, s.fd, s.err, sizeof s.err);
        if (!s.tls || rt_tls_handshake(s.tls, s.err, sizeof s.err) != RT_OK)
            goto out;
    }
    double t1 = mono();
    if (side_write(&s, &bytes, sizeof bytes) != RT_OK)
        goto out;
    for (uint64_t sent = 0; sent < bytes;) {
        uint64_t left = bytes - sent;
        size_t n = left < CHUNK ? (size_t)left : CHUNK;
        if (side_write(&s, buf, n) != RT_OK)
            goto out;
        sent += n;
    }
    if (side_read_full(&s, &ack, 1) != RT_OK || ack != 'k') {
        if (!s.err[0])
            snprintf(s.err, sizeof s.err, "bad acknowledgement from the server");
        goto out;
    }
    double secs = mono() - t1;
    printf("bytes=%" PRIu64 " seconds=%.3f mbps=%.1f handshake_ms=%.2f\n", bytes, secs,
           (double)bytes / MB / secs, (t1 - t0) * 1e3);
    rc = OK;
out:
    if (rc != OK)
        fprintf(stderr, "linkbench: client: %s\n", s.err);
    if (s.tls) {
        rt_tls_shutdown(s.tls);
        rt_tls_conn_free(s.tls);
    }
    if (s.fd >= 0)
        close(s.fd);
    if (lfd >= 0)
        close(lfd);
    if (child > 0) {
        if (rc != OK)
            kill(child, SIGKILL);
        if (waitpid(child, &status, 0) == child && rc == OK &&
            !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
            fprintf(stderr, "linkbench: the server side failed\n");
            rc = FAIL;
        }
    }
    free(buf);
    return rc;
}

static int usage(void)
{
    fprintf(stderr, "linkbench: usage: linkbench port | tcp BYTES | "
                    "tls BYTES CA SERVER_CRT SERVER_KEY CLIENT_CRT CLIENT_KEY\n");
    return USAGE;
}

static int parse_bytes(const char *s, uint64_t *out)
{
    if (rt_parse_size(s, out) != RT_OK || *out == 0 || *out > MAX_BYTES)
        return RT_ERR;
    return RT_OK;
}

int main(int argc, char **argv)
{
    int rc = USAGE;
    uint64_t bytes = 0;
    rt_tls_t *st = NULL, *ct = NULL;
    char err[256] = "";

    signal(SIGPIPE, SIG_IGN);
    alarm(RUN_LIMIT); /* inherited by the server child */
    if (argc == 2 && strcmp(argv[1], "port") == 0) {
        uint16_t port = 0;
        int fd = listen_any(&port);
        if (fd < 0) {
            fprintf(stderr, "linkbench: listen on 127.0.0.1: %s\n", strerror(errno));
            return FAIL;
        }
        close(fd);
        printf("%u\n", port);
        return OK;
    }
    if (argc == 3 && strcmp(argv[1], "tcp") == 0) {
        if (parse_bytes(argv[2], &bytes) != RT_OK)
            return usage();
        return push(bytes, NULL, NULL);
    }
    if (argc != 8 || strcmp(argv[1], "tls") != 0 || parse_bytes(argv[2], &bytes) != RT_OK)
        return usage();
    rc = FAIL;
    st = rt_tls_ctx_new(argv[3], argv[4], argv[5], true, err, sizeof err);
    if (!st)
        goto out;
    ct = rt_tls_ctx_new(argv[3], argv[6], argv[7], false, err, sizeof err);
    if (!ct)
        goto out;
    rc = push(bytes, st, ct);
out:
    if (err[0])
        fprintf(stderr, "linkbench: %s\n", err);
    rt_tls_ctx_free(ct);
    rt_tls_ctx_free(st);
    return rc;
}
