/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * test_rt_tls.c: which TLS 1.3 cipher suite our links agree on
 * (runtime/rt_tls.c).
 *
 * The suite decides how fast a link can move data: AES-GCM is several times
 * faster than ChaCha20-Poly1305 where the linked wolfSSL does AES with the
 * CPU's instructions, and about half as fast where it does AES in software
 * (Debian's shared library). So the tests make real handshakes between two
 * contexts of the project (over a socketpair, certificates from rt_cert) and
 * check the negotiated suite: the default follows this build's wolfSSL and
 * this CPU (read from /proc/cpuinfo, not from the code under test),
 * SS_TLS_PREFER overrides it, and the server's order wins over the client's.
 */
#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "rt.h"

#define AES_SUITE    "TLS13-AES128-GCM-SHA256"
#define CHACHA_SUITE "TLS13-CHACHA20-POLY1305-SHA256"
#define ROUNDS       200 /* handshake steps; a loopback handshake takes a few */

static char root[PATH_MAX]; /* scratch folder with a CA, srv.* and cli.* */

static void path(char *buf, const char *file)
{
    if ((size_t)snprintf(buf, PATH_MAX, "%s/%s", root, file) >= PATH_MAX)
        abort(); /* scratch paths are short */
}

static void rm_tree(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char p[PATH_MAX];

    if (!d)
        return;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if ((size_t)snprintf(p, sizeof p, "%s/%s", dir, e->d_name) < sizeof p)
            unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

static int setup(void **state)
{
    char err[256];
    const char *tmp = getenv("TMPDIR");

    (void)state;
    snprintf(root, sizeof root, "%s/test_rt_tls.XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
    if (!mkdtemp(root))
        return -1;
    if (rt_cert_ca_create(root, "tls", 0, err, sizeof err) != RT_OK ||
        rt_cert_issue(root, NULL, "srv", 0, 0, err, sizeof err) != RT_OK ||
        rt_cert_issue(root, NULL, "cli", 0, 0, err, sizeof err) != RT_OK) {
        fprintf(stderr, "setup: %s\n", err);
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    unsetenv("SS_TLS_PREFER");
    rm_tree(root);
    return 0;
}

/* A context of the project, made with SS_TLS_PREFER=@prefer (NULL: unset). */
static rt_tls_t *ctx(bool server, const char *prefer)
{
    char ca[PATH_MAX], crt[PATH_MAX], key[PATH_MAX], err[256];
    rt_tls_t *t;

    path(ca, "ca.crt");
    path(crt, server ? "srv.crt" : "cli.crt");
    path(key, server ? "srv.key" : "cli.key");
    if (prefer)
        setenv("SS_TLS_PREFER", prefer, 1);
    else
        unsetenv("SS_TLS_PREFER");
    t = rt_tls_ctx_new(ca, crt, key, server, err, sizeof err);
    if (!t)
        fprintf(stderr, "rt_tls_ctx_new: %s\n", err);
    assert_non_null(t);
    return t;
}

/* Handshake a server of @srv_prefer with a client of @cli_prefer over a
 * socketpair; the suite both ends agreed on goes to @suite. */
static void negotiate(const char *srv_prefer, const char *cli_prefer, char *suite, size_t cap)
{
    rt_tls_t *st = ctx(true, srv_prefer), *ct = ctx(false, cli_prefer);
    rt_tls_conn_t *s, *c;
    char err[256] = "";
    int sv[2], rs = RT_AGAIN, rc = RT_AGAIN;

    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    assert_int_equal(fcntl(sv[0], F_SETFL, O_NONBLOCK), 0);
    assert_int_equal(fcntl(sv[1], F_SETFL, O_NONBLOCK), 0);
    s = rt_tls_conn_new(st, sv[0], err, sizeof err);
    c = rt_tls_conn_new(ct, sv[1], err, sizeof err);
    assert_non_null(s);
    assert_non_null(c);
    assert_string_equal(rt_tls_cipher(s), ""); /* nothing agreed yet */
    for (int i = 0; i < ROUNDS && (rs == RT_AGAIN || rc == RT_AGAIN); i++) {
        struct pollfd p[2] = {{.fd = sv[0], .events = POLLIN}, {.fd = sv[1], .events = POLLIN}};
        if (rc == RT_AGAIN)
            rc = rt_tls_handshake(c, err, sizeof err);
        if (rs == RT_AGAIN)
            rs = rt_tls_handshake(s, err, sizeof err);
        if (rs == RT_AGAIN || rc == RT_AGAIN)
            (void)poll(p, 2, 100); /* the other end's turn; bounded */
    }
    if (rs != RT_OK || rc != RT_OK)
        fprintf(stderr, "handshake: %s\n", err);
    assert_int_equal(rs, RT_OK);
    assert_int_equal(rc, RT_OK);
    assert_string_equal(rt_tls_cipher(s), rt_tls_cipher(c));
    snprintf(suite, cap, "%s", rt_tls_cipher(s));
    rt_tls_conn_free(s);
    rt_tls_conn_free(c);
    close(sv[0]);
    close(sv[1]);
    rt_tls_ctx_free(ct);
    rt_tls_ctx_free(st);
}

/* true if the "flags"/"Features" line of /proc/cpuinfo has both words */
static bool cpu_has(const char *a, const char *b)
{
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[4096];
    bool yes = false;

    if (!f)
        return false;
    while (!yes && fgets(line, sizeof line, f)) {
        if (strncmp(line, "flags", 5) != 0 && strncmp(line, "Features", 8) != 0)
            continue;
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = ' '; /* every word ends with a space */
        char wa[32], wb[32];
        snprintf(wa, sizeof wa, " %s ", a);
        snprintf(wb, sizeof wb, " %s ", b);
        yes = strstr(line, wa) && strstr(line, wb);
        break;
    }
    fclose(f);
    return yes;
}

/* the suite a link should agree on here with no SS_TLS_PREFER */
static const char *expected_default(void)
{
#if defined(WOLFSSL_AESNI) && defined(__x86_64__)
    bool hw = cpu_has("aes", "pclmulqdq");
#elif defined(WOLFSSL_ARMASM) && defined(__aarch64__)
    bool hw = cpu_has("aes", "pmull");
#else
    bool hw = false; /* software AES (Debian's library): ChaCha20 is faster */
    (void)cpu_has;
#endif
    return hw ? AES_SUITE : CHACHA_SUITE;
}

static void test_default_follows_cpu(void **state)
{
    char suite[64];

    (void)state;
    negotiate(NULL, NULL, suite, sizeof suite);
    print_message("wolfSSL %s, default suite %s\n",
#ifdef WOLFSSL_AESNI
                  "with AES-NI",
#else
                  "without hardware AES",
#endif
                  suite);
    assert_string_equal(suite, expected_default());
}

static void test_prefer_overrides(void **state)
{
    char suite[64];

    (void)state;
    negotiate("chacha20", "chacha20", suite, sizeof suite);
    assert_string_equal(suite, CHACHA_SUITE);
    negotiate("aes-gcm", "aes-gcm", suite, sizeof suite);
    assert_string_equal(suite, AES_SUITE);
    negotiate("no-such-cipher", "no-such-cipher", suite, sizeof suite); /* ignored */
    assert_string_equal(suite, expected_default());
}

static void test_server_order_wins(void **state)
{
    char suite[64];

    (void)state;
    negotiate("chacha20", "aes-gcm", suite, sizeof suite);
    assert_string_equal(suite, CHACHA_SUITE);
    negotiate("aes-gcm", "chacha20", suite, sizeof suite);
    assert_string_equal(suite, AES_SUITE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_default_follows_cpu, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prefer_overrides, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server_order_wins, setup, teardown),
    };

    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests_name("rt_tls", tests, NULL, NULL);
}
