/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * nbdsock.h: the blocking socket helpers shared by the integration tests'
 * own NBD clients (nbdpoke.c, replload.c): dial an IPv4 "a.b.c.d:port" with
 * 5 s send and receive timeouts, and send or receive exactly n bytes. A
 * failure leaves its reason in g_why (FAILF) for the caller's report.
 * Header-only: each helper program is one translation unit.
 */
#ifndef NBDSOCK_H
#define NBDSOCK_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

static char g_why[256];
#define FAILF(...) (snprintf(g_why, sizeof(g_why), __VA_ARGS__), false)

/* connect to @addr ("a.b.c.d:port"); TCP_NODELAY when @nodelay. @return the
 * descriptor, or -1 */
static int nbdsock_dial(const char *addr, bool nodelay)
{
    char host[64];
    const char *colon = strrchr(addr, ':');
    struct sockaddr_in a = {.sin_family = AF_INET};
    struct timeval tv = {.tv_sec = 5};
    int one = 1;

    if (!colon || (size_t)(colon - addr) >= sizeof(host))
        return -1;
    memcpy(host, addr, (size_t)(colon - addr));
    host[colon - addr] = '\0';
    a.sin_port = htons((uint16_t)atoi(colon + 1));
    if (inet_pton(AF_INET, host, &a.sin_addr) != 1)
        return -1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (nodelay)
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* send all @n bytes of @p */
static bool put(int fd, const void *p, size_t n)
{
    const uint8_t *b = p;
    while (n > 0) {
        ssize_t w = send(fd, b, n, MSG_NOSIGNAL);
        if (w <= 0)
            return FAILF("send: %s", w < 0 ? strerror(errno) : "closed");
        b += w;
        n -= (size_t)w;
    }
    return true;
}

/* receive exactly @n bytes into @p */
static bool get(int fd, void *p, size_t n)
{
    uint8_t *b = p;
    while (n > 0) {
        ssize_t r = recv(fd, b, n, 0);
        if (r <= 0)
            return FAILF("recv: %s", r < 0 ? strerror(errno) : "server closed");
        b += r;
        n -= (size_t)r;
    }
    return true;
}

#endif /* NBDSOCK_H */
