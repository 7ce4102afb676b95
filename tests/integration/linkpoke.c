/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * linkpoke.c: a raw link client for integration tests, the peer nobody
 * should trust.
 *
 *   linkpoke --free-port [N]             print N (default 1) free loopback ports
 *   linkpoke --connect IP:PORT [options] connect once, misbehave, report
 *
 * It connects to a node's link listener with plain TCP or with TLS of a
 * chosen version and certificate (or none), optionally does the Hello, then
 * sends one kind of bad input and reports on stdout what the node did:
 *
 *   local IP:PORT             the address the node sees (to find its log line)
 *   handshake ok|failed: WHY  (TLS only)
 *   hello ok PEER             the node's Hello, after ours (with --hello)
 *   sent KIND N bytes
 *   closed by peer after S s  or  open after S s  (waits up to --wait seconds)
 *
 * It speaks TLS through wolfSSL directly rather than through rt_tls.c on
 * purpose: it must be able to do what the product refuses to (TLS 1.2, no
 * client certificate, any CA), and it must not share the code it tests.
 * Frames are built with rt_frame.c, except the malformed ones, which are
 * written byte by byte. Every wait is bounded.
 */
#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "link.pb.h"
#include "rt.h"

typedef struct poke {
    int fd;
    WOLFSSL_CTX *ctx;
    WOLFSSL *ssl;
} poke_t;

static int die(const char *what)
{
    fprintf(stderr, "linkpoke: %s\n", what);
    return 1;
}

static int free_ports(int n)
{
    int fds[64];
    if (n < 1 || n > 64)
        return die("--free-port: N must be 1..64");
    for (int i = 0; i < n; i++) {
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t sl = sizeof sa;
        fds[i] = socket(AF_INET, SOCK_STREAM, 0);
        if (fds[i] < 0 || bind(fds[i], (struct sockaddr *)&sa, sizeof sa) < 0 ||
            getsockname(fds[i], (struct sockaddr *)&sa, &sl) < 0)
            return die("--free-port: cannot bind a loopback port");
        printf("%u\n", ntohs(sa.sin_port));
    }
    for (int i = 0; i < n; i++)
        close(fds[i]);
    return 0;
}

/* ---- I/O ---------------------------------------------------------------------- */

static int put(poke_t *p, const void *buf, size_t len)
{
    if (p->ssl)
        return wolfSSL_write(p->ssl, buf, (int)len) == (int)len ? 0 : -1;
    return write(p->fd, buf, len) == (ssize_t)len ? 0 : -1;
}

/* read up to @len bytes within @ms; >0 bytes, 0 peer closed, -1 timeout, -2 error */
static int get(poke_t *p, void *buf, size_t len, int ms)
{
    if (!(p->ssl && wolfSSL_pending(p->ssl) > 0)) {
        struct pollfd pfd = {.fd = p->fd, .events = POLLIN};
        int r = poll(&pfd, 1, ms);
        if (r == 0)
            return -1;
        if (r < 0)
            return -2;
    }
    if (p->ssl) {
        int n = wolfSSL_read(p->ssl, buf, (int)len);
        if (n > 0)
            return n;
        int e = wolfSSL_get_error(p->ssl, n);
        if (e == WOLFSSL_ERROR_WANT_READ)
            return -1;
        return e == WOLFSSL_ERROR_ZERO_RETURN || e == SOCKET_PEER_CLOSED_E ? 0 : -2;
    }
    ssize_t n = read(p->fd, buf, len);
    if (n >= 0)
        return (int)n;
    return errno == ECONNRESET ? 0 : -2;
}

static int send_frame(poke_t *p, const ss_Envelope *e, uint32_t plen)
{
    uint8_t buf[RT_FRAME_HDR_MAX];
    size_t n = 0;
    if (rt_frame_encode_header(e, plen, buf, sizeof buf, &n) != RT_OK)
        return -1;
    return put(p, buf, n);
}

/* the node's Hello: read one whole frame (bounded) and decode it */
static int read_hello(poke_t *p, char *peer, size_t peerlen, int ms)
{
    uint8_t buf[RT_FRAME_HDR_MAX];
    size_t have = 0;
    while (have < sizeof buf) {
        ss_Envelope e;
        rt_frame_t fr;
        int rc = rt_frame_decode(buf, have, RT_MAX_PAYLOAD, &e, &fr);
        if (rc == RT_OK) {
            if (e.which_body != ss_Envelope_hello_tag)
                return -1;
            snprintf(peer, peerlen, "%s", e.body.hello.node);
            return 0;
        }
        if (rc == RT_ERR)
            return -1;
        int n = get(p, buf + have, fr.need - have, ms);
        if (n <= 0)
            return -1;
        have += (size_t)n;
    }
    return -1;
}

/* ---- misbehaviours -------------------------------------------------------------- */

static int send_kind(poke_t *p, const char *kind, const char *name)
{
    ss_Envelope e = ss_Envelope_init_zero;
    if (strcmp(kind, "none") == 0) {
        printf("sent none 0 bytes\n");
        return 0;
    }
    if (strcmp(kind, "garbage") == 0) {
        /* looks like neither TLS nor a frame: a varint that never ends */
        static const uint8_t g[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 'g', 'a', 'r', 'b',
                                    'a', 'g', 'e', '\r', '\n'};
        printf("sent garbage %zu bytes\n", sizeof g);
        return put(p, g, sizeof g);
    }
    if (strcmp(kind, "truncated") == 0) {
        /* a Hello header cut in the middle, then we close */
        uint8_t buf[RT_FRAME_HDR_MAX];
        size_t n = 0;
        e.which_body = ss_Envelope_hello_tag;
        e.body.hello.version = RT_PROTO_VERSION;
        snprintf(e.body.hello.node, sizeof e.body.hello.node, "%s", name);
        if (rt_frame_encode_header(&e, 0, buf, sizeof buf, &n) != RT_OK)
            return -1;
        printf("sent truncated %zu bytes\n", n / 2);
        return put(p, buf, n / 2);
    }
    if (strcmp(kind, "oversize") == 0) {
        /* a header length of 1 MiB (> RT_MAX_HEADER) */
        static const uint8_t o[] = {0x80, 0x80, 0x40, 0x00, 0x00};
        printf("sent oversize %zu bytes\n", sizeof o);
        return put(p, o, sizeof o);
    }
    if (strcmp(kind, "oversize-payload") == 0) {
        e.which_body = ss_Envelope_write_ack_tag;
        printf("sent oversize-payload header\n");
        return send_frame(p, &e, RT_MAX_PAYLOAD);
    }
    if (strcmp(kind, "unknown-tag") == 0) {
        /* Envelope{corr: 5, field 99: 1} */
        static const uint8_t u[] = {0x05, 0x10, 0x05, 0x98, 0x06, 0x01};
        printf("sent unknown-tag %zu bytes\n", sizeof u);
        return put(p, u, sizeof u);
    }
    if (strcmp(kind, "bad-version") == 0) {
        e.which_body = ss_Envelope_hello_tag;
        e.body.hello.version = RT_PROTO_VERSION + 98;
        snprintf(e.body.hello.node, sizeof e.body.hello.node, "%s", name);
        e.body.hello.time_us = rt_now_us();
        printf("sent bad-version hello\n");
        return send_frame(p, &e, 0);
    }
    if (strcmp(kind, "bad-name") == 0) {
        e.which_body = ss_Envelope_hello_tag;
        e.body.hello.version = RT_PROTO_VERSION;
        snprintf(e.body.hello.node, sizeof e.body.hello.node, "%s-impostor", name);
        e.body.hello.time_us = rt_now_us();
        printf("sent bad-name hello\n");
        return send_frame(p, &e, 0);
    }
    fprintf(stderr, "linkpoke: unknown --send kind %s\n", kind);
    return -1;
}

/* ---- main -------------------------------------------------------------------------- */

static const char usage[] =
    "usage: linkpoke --free-port [N]\n"
    "       linkpoke --connect IP:PORT [--plain | [--tls 1.3|1.2|1.1] [--ca FILE]\n"
    "                [--cert FILE --key FILE]] [--name NODE] [--hello]\n"
    "                [--send none|garbage|truncated|oversize|oversize-payload|\n"
    "                        unknown-tag|bad-version|bad-name] [--wait SECONDS]\n";

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"free-port", no_argument, NULL, 'F'}, {"connect", required_argument, NULL, 'c'},
        {"plain", no_argument, NULL, 'p'},     {"tls", required_argument, NULL, 't'},
        {"ca", required_argument, NULL, 'a'},  {"cert", required_argument, NULL, 'C'},
        {"key", required_argument, NULL, 'k'}, {"name", required_argument, NULL, 'n'},
        {"hello", no_argument, NULL, 'H'},     {"send", required_argument, NULL, 's'},
        {"wait", required_argument, NULL, 'w'}, {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *addr = NULL, *tls = "1.3", *ca = NULL, *cert = NULL, *key = NULL;
    const char *name = "poke", *kind = "none";
    bool plain = false, hello = false, freeport = false;
    double wait_s = 3;
    int c, rc = 1;
    poke_t p = {.fd = -1};

    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'F': freeport = true; break;
        case 'c': addr = optarg; break;
        case 'p': plain = true; break;
        case 't': tls = optarg; break;
        case 'a': ca = optarg; break;
        case 'C': cert = optarg; break;
        case 'k': key = optarg; break;
        case 'n': name = optarg; break;
        case 'H': hello = true; break;
        case 's': kind = optarg; break;
        case 'w': wait_s = atof(optarg); break;
        case 'h': fputs(usage, stdout); return 0;
        default: fputs(usage, stderr); return 2;
        }
    }
    if (freeport)
        return free_ports(optind < argc ? atoi(argv[optind]) : 1);
    if (!addr || wait_s <= 0 || wait_s > 60) {
        fputs(usage, stderr);
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    /* a refused peer may close while our last handshake flight is still
     * going out: that write fails (the handshake fails), it must not kill us */
    signal(SIGPIPE, SIG_IGN);

    struct sockaddr_storage sa;
    unsigned salen = 0;
    if (rt_parse_addr(addr, &sa, &salen) != RT_OK)
        return die("--connect: not a numeric IP:PORT");
    p.fd = socket(sa.ss_family, SOCK_STREAM, 0);
    struct timeval tv = {.tv_sec = 5};
    setsockopt(p.fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    setsockopt(p.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (connect(p.fd, (struct sockaddr *)&sa, salen) < 0) {
        fprintf(stderr, "linkpoke: connect %s: %s\n", addr, strerror(errno));
        goto out;
    }
    struct sockaddr_in me;
    socklen_t ml = sizeof me;
    getsockname(p.fd, (struct sockaddr *)&me, &ml);
    char ip[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &me.sin_addr, ip, sizeof ip);
    printf("local %s:%u\n", ip, ntohs(me.sin_port));

    if (!plain) {
        wolfSSL_Init();
        WOLFSSL_METHOD *m = strcmp(tls, "1.3") == 0   ? wolfTLSv1_3_client_method()
                            : strcmp(tls, "1.2") == 0 ? wolfTLSv1_2_client_method()
                            : strcmp(tls, "1.1") == 0 ? wolfTLSv1_1_client_method()
                                                      : NULL;
        if (!m || !(p.ctx = wolfSSL_CTX_new(m))) {
            die("--tls: this wolfSSL cannot make that TLS version");
            goto out;
        }
        if (ca && wolfSSL_CTX_load_verify_locations(p.ctx, ca, NULL) == WOLFSSL_SUCCESS)
            wolfSSL_CTX_set_verify(p.ctx, WOLFSSL_VERIFY_PEER, NULL);
        else
            wolfSSL_CTX_set_verify(p.ctx, WOLFSSL_VERIFY_NONE, NULL);
        if (cert && (wolfSSL_CTX_use_certificate_file(p.ctx, cert, WOLFSSL_FILETYPE_PEM) !=
                         WOLFSSL_SUCCESS ||
                     wolfSSL_CTX_use_PrivateKey_file(p.ctx, key ? key : "", WOLFSSL_FILETYPE_PEM) !=
                         WOLFSSL_SUCCESS)) {
            die("--cert/--key: cannot load them");
            goto out;
        }
        p.ssl = wolfSSL_new(p.ctx);
        wolfSSL_set_fd(p.ssl, p.fd);
        int r = wolfSSL_connect(p.ssl);
        if (r != WOLFSSL_SUCCESS) {
            char why[80];
            wolfSSL_ERR_error_string_n((unsigned long)wolfSSL_get_error(p.ssl, r), why, sizeof why);
            printf("handshake failed: %s\n", why);
        } else {
            printf("handshake ok %s\n", wolfSSL_get_version(p.ssl));
        }
    }
    if (hello) {
        ss_Envelope e = ss_Envelope_init_zero;
        char peer[RT_NAME_MAX] = "";
        e.which_body = ss_Envelope_hello_tag;
        e.body.hello.version = RT_PROTO_VERSION;
        snprintf(e.body.hello.node, sizeof e.body.hello.node, "%s", name);
        e.body.hello.time_us = rt_now_us();
        e.body.hello.max_payload = 65536;
        if (send_frame(&p, &e, 0) < 0 || read_hello(&p, peer, sizeof peer, 3000) < 0)
            printf("hello failed\n");
        else
            printf("hello ok %s\n", peer);
    }
    if (send_kind(&p, kind, name) < 0)
        printf("send failed (the peer may have closed already)\n");
    if (strcmp(kind, "truncated") == 0) {
        shutdown(p.fd, SHUT_WR); /* the frame ends here: the node sees EOF */
    }

    /* how long until the node closes on us */
    uint64_t t0 = rt_mono_us(), end = t0 + (uint64_t)(wait_s * 1e6);
    for (;;) {
        uint8_t buf[4096];
        uint64_t now = rt_mono_us();
        if (now >= end) {
            printf("open after %.1f s\n", wait_s);
            break;
        }
        int n = get(&p, buf, sizeof buf, (int)((end - now) / 1000) + 1);
        if (n == 0 || n == -2) {
            printf("closed by peer after %.2f s\n", (double)(rt_mono_us() - t0) / 1e6);
            break;
        }
    }
    rc = 0;
out:
    if (p.ssl)
        wolfSSL_free(p.ssl);
    if (p.ctx)
        wolfSSL_CTX_free(p.ctx);
    if (p.fd >= 0)
        close(p.fd);
    return rc;
}
