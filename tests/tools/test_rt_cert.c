/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * test_rt_cert.c: the site CA and node certificates (runtime/rt_cert.c).
 *
 * Every link trusts exactly what these functions make, so the tests check
 * the certificates the way a peer would: wolfSSL's certificate manager must
 * accept a node certificate under its own CA and refuse it under another
 * one, and a real mutual TLS 1.3 handshake (wolfSSL on both ends of a
 * socketpair, no openssl) must succeed between two nodes of one CA and fail
 * for a node of another CA. They also check what the files look like on disk
 * (modes, no leftovers) and that nothing is overwritten without
 * RT_CERT_FORCE.
 */
#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/ecc.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "rt.h"

static char root[PATH_MAX]; /* scratch folder of the current test */

static const char *pj(char *buf, const char *a, const char *b)
{
    if ((size_t)snprintf(buf, PATH_MAX, "%s/%s", a, b) >= PATH_MAX)
        abort(); /* scratch paths are short */
    return buf;
}

static void rm_tree(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char p[PATH_MAX];
    struct stat st;

    if (!d)
        return;
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        pj(p, dir, e->d_name);
        if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode))
            rm_tree(p);
        else
            unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

static int setup(void **state)
{
    (void)state;
    snprintf(root, sizeof root, "/tmp/test_rt_cert.XXXXXX");
    if (!mkdtemp(root))
        return -1;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    rm_tree(root);
    return 0;
}

/* Make a CA in root/NAME and return its path in @dir. */
static void make_ca(char *dir, const char *name)
{
    char err[512];

    pj(dir, root, name);
    if (rt_cert_ca_create(dir, NULL, 0, err, sizeof err) != RT_OK)
        fail_msg("rt_cert_ca_create(%s): %s", dir, err);
}

static void issue(const char *ca, const char *name, unsigned days, unsigned flags)
{
    char err[512];

    if (rt_cert_issue(ca, NULL, name, days, flags, err, sizeof err) != RT_OK)
        fail_msg("rt_cert_issue(%s): %s", name, err);
}

static size_t read_file(const char *path, char *buf, size_t cap)
{
    FILE *f = fopen(path, "rb");
    size_t n;

    assert_non_null(f);
    n = fread(buf, 1, cap, f);
    fclose(f);
    return n;
}

/* The certificate manager of wolfSSL with @ca loaded: does it accept @crt? */
static int cm_verify(const char *ca, const char *crt)
{
    WOLFSSL_CERT_MANAGER *cm = wolfSSL_CertManagerNew();
    int ret;

    assert_non_null(cm);
    assert_int_equal(wolfSSL_CertManagerLoadCA(cm, ca, NULL), WOLFSSL_SUCCESS);
    ret = wolfSSL_CertManagerVerify(cm, crt, WOLFSSL_FILETYPE_PEM);
    wolfSSL_CertManagerFree(cm);
    return ret;
}

/* ---- CA and node certificates ------------------------------------------ */

static void test_issue_and_verify(void **state)
{
    char ca[PATH_MAX], p[PATH_MAX], q[PATH_MAX], err[512];

    (void)state;
    make_ca(ca, "site");
    issue(ca, "n1", 0, 0);
    /* accepted by wolfSSL's certificate manager under its own CA */
    assert_int_equal(cm_verify(pj(p, ca, "ca.crt"), pj(q, ca, "n1.crt")), WOLFSSL_SUCCESS);
    assert_int_equal(rt_cert_verify(pj(p, ca, "ca.crt"), pj(q, ca, "n1.crt"), err, sizeof err),
                     RT_OK);
    /* the CA certificate is self-signed */
    assert_int_equal(cm_verify(pj(p, ca, "ca.crt"), pj(q, ca, "ca.crt")), WOLFSSL_SUCCESS);
}

static void test_other_ca_refused(void **state)
{
    char a[PATH_MAX], b[PATH_MAX], p[PATH_MAX], q[PATH_MAX], err[512];

    (void)state;
    make_ca(a, "a");
    make_ca(b, "b");
    issue(a, "n1", 0, 0);
    issue(b, "n2", 0, 0);
    assert_int_not_equal(cm_verify(pj(p, a, "ca.crt"), pj(q, b, "n2.crt")), WOLFSSL_SUCCESS);
    assert_int_not_equal(cm_verify(pj(p, b, "ca.crt"), pj(q, a, "n1.crt")), WOLFSSL_SUCCESS);
    assert_int_equal(cm_verify(pj(p, b, "ca.crt"), pj(q, b, "n2.crt")), WOLFSSL_SUCCESS);
    err[0] = 0;
    assert_int_equal(rt_cert_verify(pj(p, a, "ca.crt"), pj(q, b, "n2.crt"), err, sizeof err),
                     RT_ERR);
    assert_non_null(strstr(err, "n2.crt"));
    /* a node certificate is not a CA: what it signs would not verify either */
    assert_int_not_equal(cm_verify(pj(p, a, "n1.crt"), pj(q, a, "n1.crt")), WOLFSSL_SUCCESS);
}

static void test_info_reads_names(void **state)
{
    char ca[PATH_MAX], p[PATH_MAX], err[512];
    rt_cert_info_t i;
    int64_t now = (int64_t)time(NULL);

    (void)state;
    make_ca(ca, "site");
    issue(ca, "node-1.a_b", 30, 0);
    issue(ca, "op", 0, RT_CERT_ADMIN);

    assert_int_equal(rt_cert_info(pj(p, ca, "node-1.a_b.crt"), &i, err, sizeof err), RT_OK);
    assert_string_equal(i.cn, "node-1.a_b");
    assert_string_equal(i.ou, RT_CERT_OU_NODE);
    assert_string_equal(i.issuer_cn, "secondsite CA");
    assert_false(i.is_ca);
    assert_false(i.admin);
    assert_int_equal(strlen(i.serial), 32); /* 16 random bytes */
    assert_true(i.not_before <= now && i.not_after > now);
    /* valid until 30 days from now (within a minute of slack) */
    assert_true(i.not_after >= now + 30 * 86400 - 60 && i.not_after <= now + 30 * 86400 + 60);

    assert_int_equal(rt_cert_info(pj(p, ca, "op.crt"), &i, err, sizeof err), RT_OK);
    assert_string_equal(i.cn, "op");
    assert_string_equal(i.ou, RT_CERT_OU_ADMIN);
    assert_true(i.admin);
    assert_true(i.not_after >= now + (int64_t)RT_CERT_NODE_DAYS * 86400 - 60);

    assert_int_equal(rt_cert_info(pj(p, ca, "ca.crt"), &i, err, sizeof err), RT_OK);
    assert_true(i.is_ca);
    assert_string_equal(i.cn, "secondsite CA");
    assert_string_equal(i.issuer_cn, "secondsite CA");
    assert_true(i.not_after >= now + (int64_t)RT_CERT_CA_DAYS * 86400 - 60);

    /* not a certificate: an error, not garbage */
    assert_int_equal(rt_cert_info(pj(p, ca, "ca.key"), &i, err, sizeof err), RT_ERR);
    assert_int_equal(rt_cert_info(pj(p, ca, "missing.crt"), &i, err, sizeof err), RT_ERR);
    assert_non_null(strstr(err, "missing.crt"));
}

static void test_site_name(void **state)
{
    char dir[PATH_MAX], p[PATH_MAX], err[512];
    rt_cert_info_t i;

    (void)state;
    pj(dir, root, "lab");
    assert_int_equal(rt_cert_ca_create(dir, "lab", 0, err, sizeof err), RT_OK);
    assert_int_equal(rt_cert_info(pj(p, dir, "ca.crt"), &i, err, sizeof err), RT_OK);
    assert_string_equal(i.cn, "lab CA");
    assert_int_equal(rt_cert_ca_create(pj(p, root, "x"), "bad/site", 0, err, sizeof err),
                     RT_ERR);
}

/* ---- files on disk ------------------------------------------------------ */

static mode_t mode_of(const char *path)
{
    struct stat st;

    assert_int_equal(stat(path, &st), 0);
    return st.st_mode & 07777;
}

static void test_file_modes(void **state)
{
    char ca[PATH_MAX], out[PATH_MAX], p[PATH_MAX], err[512];
    mode_t old = umask(0); /* modes must not depend on the umask */
    DIR *d;
    struct dirent *e;

    (void)state;
    make_ca(ca, "site");
    pj(out, root, "out");
    assert_int_equal(rt_cert_issue(ca, out, "n1", 0, 0, err, sizeof err), RT_OK);
    umask(old);
    assert_int_equal(mode_of(pj(p, ca, "ca.key")), 0600);
    assert_int_equal(mode_of(pj(p, ca, "ca.crt")), 0644);
    assert_int_equal(mode_of(pj(p, out, "n1.key")), 0600);
    assert_int_equal(mode_of(pj(p, out, "n1.crt")), 0644);
    assert_int_equal(mode_of(ca), 0700);
    assert_int_equal(mode_of(out), 0700);
    /* the key went to --out, not to the CA folder */
    assert_int_equal(access(pj(p, ca, "n1.key"), F_OK), -1);
    /* no temporary files left behind */
    d = opendir(out);
    assert_non_null(d);
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] == '.' && strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            fail_msg("leftover %s", e->d_name);
    closedir(d);
}

static void test_refuse_overwrite(void **state)
{
    char ca[PATH_MAX], p[PATH_MAX], err[512], before[8192], after[8192];
    size_t nb, na;

    (void)state;
    make_ca(ca, "site");
    nb = read_file(pj(p, ca, "ca.key"), before, sizeof before);

    err[0] = 0;
    assert_int_equal(rt_cert_ca_create(ca, NULL, 0, err, sizeof err), RT_ERR);
    assert_non_null(strstr(err, "--force"));
    na = read_file(pj(p, ca, "ca.key"), after, sizeof after);
    assert_memory_equal(before, after, nb);
    assert_int_equal(na, nb);

    /* only one of the two files there: still refused, the other not made */
    assert_int_equal(unlink(pj(p, ca, "ca.crt")), 0);
    assert_int_equal(rt_cert_ca_create(ca, NULL, 0, err, sizeof err), RT_ERR);
    assert_int_equal(access(pj(p, ca, "ca.crt"), F_OK), -1);

    assert_int_equal(rt_cert_ca_create(ca, NULL, RT_CERT_FORCE, err, sizeof err), RT_OK);
    na = read_file(pj(p, ca, "ca.key"), after, sizeof after);
    assert_false(na == nb && memcmp(before, after, nb) == 0);

    issue(ca, "n1", 0, 0);
    nb = read_file(pj(p, ca, "n1.crt"), before, sizeof before);
    assert_int_equal(rt_cert_issue(ca, NULL, "n1", 0, 0, err, sizeof err), RT_ERR);
    assert_non_null(strstr(err, "n1"));
    na = read_file(pj(p, ca, "n1.crt"), after, sizeof after);
    assert_int_equal(na, nb);
    assert_memory_equal(before, after, nb);
    issue(ca, "n1", 0, RT_CERT_FORCE);
    na = read_file(pj(p, ca, "n1.crt"), after, sizeof after);
    assert_false(na == nb && memcmp(before, after, nb) == 0);
    assert_int_equal(mode_of(pj(p, ca, "n1.key")), 0600);
}

static void test_bad_input(void **state)
{
    char a[PATH_MAX], b[PATH_MAX], p[PATH_MAX], q[PATH_MAX], err[512];
    static const char *const bad[] = {"", ".x", "-x", "a/b", "..", "ca", "a b", "é",
        "0123456789012345678901234567890123456789012345678901234567890123"};

    (void)state;
    make_ca(a, "a");
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_false(rt_cert_name_ok(bad[i]));
        assert_int_equal(rt_cert_issue(a, NULL, bad[i], 0, 0, err, sizeof err), RT_ERR);
    }
    assert_true(rt_cert_name_ok("primary-01.site_a"));
    assert_true(rt_cert_name_ok("012345678901234567890123456789012345678901234567890123456789012"));
    assert_int_equal(rt_cert_issue(a, NULL, "n1", RT_CERT_MAX_DAYS + 1, 0, err, sizeof err),
                     RT_ERR);
    /* no CA there */
    assert_int_equal(rt_cert_issue(pj(p, root, "none"), NULL, "n1", 0, 0, err, sizeof err),
                     RT_ERR);
    assert_non_null(strstr(err, "ca.crt"));
    /* a CA key that does not belong to the CA certificate is caught */
    make_ca(b, "b");
    assert_int_equal(rename(pj(p, b, "ca.key"), pj(q, a, "ca.key")), 0);
    err[0] = 0;
    assert_int_equal(rt_cert_issue(a, NULL, "n1", 0, 0, err, sizeof err), RT_ERR);
    assert_non_null(strstr(err, "does not match"));
    assert_int_equal(access(pj(p, a, "n1.crt"), F_OK), -1);
    assert_int_equal(access(pj(p, a, "n1.key"), F_OK), -1);
}

/* ---- a real mutual TLS 1.3 handshake ------------------------------------ */

typedef struct side {
    const char *ca, *crt, *key; /* what this end trusts and presents */
    int fd;
    bool ok;                    /* handshake done and "ok" exchanged */
    char peer_cn[RT_NAME_MAX];  /* CN of the peer's certificate */
    char version[16];
} side_t;

static void *tls_side(void *arg, bool server)
{
    side_t *s = arg;
    WOLFSSL_CTX *ctx = wolfSSL_CTX_new(server ? wolfTLSv1_3_server_method()
                                              : wolfTLSv1_3_client_method());
    WOLFSSL *ssl = NULL;
    WOLFSSL_X509 *peer;
    char buf[8];

    if (!ctx)
        goto out;
    if (wolfSSL_CTX_load_verify_locations(ctx, s->ca, NULL) != WOLFSSL_SUCCESS ||
        wolfSSL_CTX_use_certificate_file(ctx, s->crt, WOLFSSL_FILETYPE_PEM) != WOLFSSL_SUCCESS ||
        wolfSSL_CTX_use_PrivateKey_file(ctx, s->key, WOLFSSL_FILETYPE_PEM) != WOLFSSL_SUCCESS)
        goto out;
    wolfSSL_CTX_set_verify(ctx, WOLFSSL_VERIFY_PEER | WOLFSSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    if (!(ssl = wolfSSL_new(ctx)) || wolfSSL_set_fd(ssl, s->fd) != WOLFSSL_SUCCESS)
        goto out;
    if ((server ? wolfSSL_accept(ssl) : wolfSSL_connect(ssl)) != WOLFSSL_SUCCESS)
        goto out;
    snprintf(s->version, sizeof s->version, "%s", wolfSSL_get_version(ssl));
    if ((peer = wolfSSL_get_peer_certificate(ssl)) != NULL) {
        wolfSSL_X509_NAME_get_text_by_NID(wolfSSL_X509_get_subject_name(peer), NID_commonName,
                                          s->peer_cn, (int)sizeof s->peer_cn);
        wolfSSL_X509_free(peer);
    }
    /* the server speaks first only once it has accepted the client */
    if (server) {
        s->ok = wolfSSL_write(ssl, "ok", 2) == 2;
    } else {
        s->ok = wolfSSL_read(ssl, buf, sizeof buf) == 2 && memcmp(buf, "ok", 2) == 0;
    }
out:
    if (ssl)
        wolfSSL_free(ssl);
    if (ctx)
        wolfSSL_CTX_free(ctx);
    shutdown(s->fd, SHUT_RDWR);
    return NULL;
}

static void *server_main(void *arg)
{
    tls_side(arg, true);
    wc_ecc_fp_free(); /* wolfSSL's per-thread ECC point cache (FP_ECC) */
    return NULL;
}

static void handshake(side_t *srv, side_t *cli)
{
    struct timeval tv = {.tv_sec = 10}; /* bounds every blocking read and write */
    pthread_t th;
    int sv[2];

    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    for (int i = 0; i < 2; i++) {
        setsockopt(sv[i], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        setsockopt(sv[i], SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    }
    srv->fd = sv[0];
    cli->fd = sv[1];
    assert_int_equal(pthread_create(&th, NULL, server_main, srv), 0);
    tls_side(cli, false);
    pthread_join(th, NULL);
    close(sv[0]);
    close(sv[1]);
}

static void test_mutual_tls13(void **state)
{
    char a[PATH_MAX], b[PATH_MAX], f[8][PATH_MAX];
    side_t srv, cli;

    (void)state;
    make_ca(a, "a");
    make_ca(b, "b");
    issue(a, "primary", 0, 0);
    issue(a, "secondary", 0, 0);
    issue(b, "intruder", 0, 0);
    pj(f[0], a, "ca.crt");
    pj(f[1], a, "secondary.crt");
    pj(f[2], a, "secondary.key");
    pj(f[3], a, "primary.crt");
    pj(f[4], a, "primary.key");
    pj(f[5], b, "intruder.crt");
    pj(f[6], b, "intruder.key");
    pj(f[7], b, "ca.crt");

    /* two nodes of one CA: both ends authenticate, TLS 1.3 */
    srv = (side_t){.ca = f[0], .crt = f[1], .key = f[2]};
    cli = (side_t){.ca = f[0], .crt = f[3], .key = f[4]};
    handshake(&srv, &cli);
    assert_true(srv.ok);
    assert_true(cli.ok);
    assert_string_equal(srv.peer_cn, "primary");
    assert_string_equal(cli.peer_cn, "secondary");
    assert_string_equal(srv.version, "TLSv1.3");

    /* a client from another CA (that trusts ours) is refused by the server */
    srv = (side_t){.ca = f[0], .crt = f[1], .key = f[2]};
    cli = (side_t){.ca = f[0], .crt = f[5], .key = f[6]};
    handshake(&srv, &cli);
    assert_false(srv.ok);
    assert_false(cli.ok);

    /* a server from another CA is refused by the client */
    srv = (side_t){.ca = f[0], .crt = f[5], .key = f[6]};
    cli = (side_t){.ca = f[0], .crt = f[3], .key = f[4]};
    handshake(&srv, &cli);
    assert_false(cli.ok);
    assert_false(srv.ok);

    /* the admin certificate works on a link the same way */
    issue(a, "admin", 0, RT_CERT_ADMIN);
    pj(f[3], a, "admin.crt");
    pj(f[4], a, "admin.key");
    srv = (side_t){.ca = f[0], .crt = f[1], .key = f[2]};
    cli = (side_t){.ca = f[0], .crt = f[3], .key = f[4]};
    handshake(&srv, &cli);
    assert_true(srv.ok);
    assert_string_equal(srv.peer_cn, "admin");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_issue_and_verify, setup, teardown),
        cmocka_unit_test_setup_teardown(test_other_ca_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_info_reads_names, setup, teardown),
        cmocka_unit_test_setup_teardown(test_site_name, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_modes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refuse_overwrite, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_input, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mutual_tls13, setup, teardown),
    };
    int rc;

    /* a refused handshake races: the server may close before the client has
     * sent its last flight, and that write must fail, not kill the test */
    signal(SIGPIPE, SIG_IGN);
    wolfSSL_Init();
    rc = cmocka_run_group_tests_name("rt_cert", tests, NULL, NULL);
    wolfSSL_Cleanup();
    return rc;
}
