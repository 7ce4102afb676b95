/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * rt_tls.c: TLS 1.3 with mutual authentication, the one door to wolfSSL for
 * sessions.
 *
 * Every link between nodes is TLS 1.3 and both sides show a certificate of
 * the site CA; anything else (another CA, a self-signed certificate, no
 * certificate, TLS 1.2 or older, not TLS at all) must fail the handshake
 * with a reason an operator understands, because that reason is the one log
 * line the node writes before closing the connection. The link (rt_link.c)
 * drives sessions from libev watchers on non-blocking sockets, so nothing
 * here ever waits: wolfSSL's WANT_READ/WANT_WRITE become RT_AGAIN and
 * rt_tls_want_write() tells the link which way to wait. Names are checked by
 * the link against the CN this file reports.
 */
#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/error-ssl.h>
#include <wolfssl/wolfcrypt/error-crypt.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#elif defined(__aarch64__)
#include <sys/auxv.h>
#endif

#include "rt.h"

struct rt_tls {
    WOLFSSL_CTX *ctx;
    bool server;
};

struct rt_tls_conn {
    WOLFSSL *ssl;
    bool server;
    bool want_write;       /* the last RT_AGAIN waits for writability */
    char cn[RT_NAME_MAX];  /* peer certificate CN once the handshake is done */
    bool admin;            /* the peer certificate's OU is RT_CERT_OU_ADMIN */
};

static int tls_inits; /* wolfSSL_Init()/Cleanup() are reference counted by us */

/* ---- reasons --------------------------------------------------------------- */

/* The reason for a failed handshake or I/O, in words, then wolfSSL's own. */
static void reason(rt_tls_conn_t *c, int code, const char *what, char *err, size_t errlen)
{
    const char *why = NULL;
    char lib[80];

    switch (code) {
    case ASN_NO_SIGNER_E:
        why = "peer certificate is not signed by the site CA";
        break;
    case ASN_SELF_SIGNED_E:
        why = "peer certificate is self-signed, not from the site CA";
        break;
    case ASN_AFTER_DATE_E:
        why = "peer certificate has expired";
        break;
    case ASN_BEFORE_DATE_E:
        why = "peer certificate is not valid yet";
        break;
    case NO_PEER_CERT:
        why = "peer sent no certificate";
        break;
    case VERSION_ERROR:
        why = "peer does not speak TLS 1.3";
        break;
    case UNKNOWN_RECORD_TYPE:
    case LENGTH_ERROR:
    case PARSE_ERROR:
    case BUFFER_ERROR:
    case INCOMPLETE_DATA:
        why = "peer does not speak TLS (malformed record)";
        break;
    case SOCKET_PEER_CLOSED_E:
    case WOLFSSL_ERROR_ZERO_RETURN:
        why = "peer closed the connection";
        break;
    case FATAL_ERROR:
        why = "peer refused the handshake (fatal alert)";
        break;
    case SOCKET_ERROR_E:
        why = errno ? strerror(errno) : "socket error";
        break;
    default:
        break;
    }
    wolfSSL_ERR_error_string_n((unsigned long)code, lib, sizeof lib);
    if (c && code == FATAL_ERROR) {
        WOLFSSL_ALERT_HISTORY h;
        if (wolfSSL_get_alert_history(c->ssl, &h) == WOLFSSL_SUCCESS && h.last_rx.code > 0)
            snprintf(lib, sizeof lib, "alert %s", wolfSSL_alert_desc_string_long(h.last_rx.code));
    }
    if (why)
        snprintf(err, errlen, "%s: %s (%s)", what, why, lib);
    else
        snprintf(err, errlen, "%s: %s (wolfSSL %d)", what, lib, code);
}

/* ---- contexts -------------------------------------------------------------- */

/* ---- cipher preference ----------------------------------------------------- */

#define RT_TLS_AES_FIRST                                                                    \
    "TLS13-AES128-GCM-SHA256:TLS13-AES256-GCM-SHA384:TLS13-CHACHA20-POLY1305-SHA256"
#define RT_TLS_CHACHA_FIRST                                                                 \
    "TLS13-CHACHA20-POLY1305-SHA256:TLS13-AES128-GCM-SHA256:TLS13-AES256-GCM-SHA384"

/* True when the wolfSSL we were compiled against does AES-GCM with the CPU's
 * instructions and this CPU has them: AES-NI and PCLMULQDQ for a WOLFSSL_AESNI
 * build (wolfSSL checks the same bits before it takes that path), the ARMv8
 * AES and PMULL instructions for a WOLFSSL_ARMASM build. Debian's shared
 * library has neither, so it always does AES in software. */
static bool hw_aes(void)
{
#if defined(WOLFSSL_AESNI) && (defined(__x86_64__) || defined(__i386__))
    unsigned a, b, c, d;
    return __get_cpuid(1, &a, &b, &c, &d) && (c & bit_AES) && (c & bit_PCLMUL);
#elif defined(WOLFSSL_ARMASM) && defined(__aarch64__)
    unsigned long caps = getauxval(AT_HWCAP);
    return (caps & HWCAP_AES) && (caps & HWCAP_PMULL);
#else
    return false;
#endif
}

/* The TLS 1.3 suites in our order of preference (the server's order decides):
 * AES-GCM with hardware AES moves several times the bytes of ChaCha20-Poly1305
 * per core, while software AES-GCM moves about half of ChaCha20's. The
 * environment variable SS_TLS_PREFER=aes-gcm|chacha20 overrides the choice
 * (benchmarks compare the two). The choice is logged once. */
static const char *cipher_list(void)
{
    static bool logged;
    const char *env = getenv("SS_TLS_PREFER");
    bool aes = hw_aes();
    const char *why = aes ? "the CPU has AES instructions and this wolfSSL uses them"
                          : "no hardware AES in this wolfSSL on this CPU";

    if (env && strcmp(env, "aes-gcm") == 0) {
        aes = true;
        why = "SS_TLS_PREFER=aes-gcm";
    } else if (env && strcmp(env, "chacha20") == 0) {
        aes = false;
        why = "SS_TLS_PREFER=chacha20";
    }
    if (!logged) {
        logged = true;
        rt_log(RT_LOG_DEBUG, "tls: preferring %s (%s)",
               aes ? "AES-GCM" : "ChaCha20-Poly1305", why);
    }
    return aes ? RT_TLS_AES_FIRST : RT_TLS_CHACHA_FIRST;
}

rt_tls_t *rt_tls_ctx_new(const char *ca, const char *cert, const char *key, bool server,
                         char *err, size_t errlen)
{
    rt_tls_t *t = calloc(1, sizeof *t);
    if (!t) {
        snprintf(err, errlen, "tls: out of memory");
        return NULL;
    }
    if (tls_inits++ == 0)
        wolfSSL_Init();
    t->server = server;
    t->ctx = wolfSSL_CTX_new(server ? wolfTLSv1_3_server_method() : wolfTLSv1_3_client_method());
    if (!t->ctx) {
        snprintf(err, errlen, "tls: cannot create a TLS 1.3 context");
        goto fail;
    }
    if (wolfSSL_CTX_load_verify_locations(t->ctx, ca, NULL) != WOLFSSL_SUCCESS) {
        snprintf(err, errlen, "tls: cannot load the site CA %s (make one with nodectl init)", ca);
        goto fail;
    }
    if (wolfSSL_CTX_use_certificate_file(t->ctx, cert, WOLFSSL_FILETYPE_PEM) != WOLFSSL_SUCCESS) {
        snprintf(err, errlen, "tls: cannot load the certificate %s (issue one with nodectl cert issue)", cert);
        goto fail;
    }
    if (wolfSSL_CTX_use_PrivateKey_file(t->ctx, key, WOLFSSL_FILETYPE_PEM) != WOLFSSL_SUCCESS) {
        snprintf(err, errlen, "tls: cannot load the key %s (it comes with the certificate from nodectl cert issue)", key);
        goto fail;
    }
    if (wolfSSL_CTX_check_private_key(t->ctx) != WOLFSSL_SUCCESS) {
        snprintf(err, errlen, "tls: the key %s does not match the certificate %s", key, cert);
        goto fail;
    }
    wolfSSL_CTX_set_verify(t->ctx, WOLFSSL_VERIFY_PEER | WOLFSSL_VERIFY_FAIL_IF_NO_PEER_CERT,
                           NULL);
    wolfSSL_CTX_set_mode(t->ctx, SSL_MODE_ENABLE_PARTIAL_WRITE);
    const char *ciphers = cipher_list();
    if (wolfSSL_CTX_set_cipher_list(t->ctx, ciphers) != WOLFSSL_SUCCESS) {
        snprintf(err, errlen, "tls: cannot set the cipher list %s", ciphers);
        goto fail;
    }
    return t;
fail:
    rt_tls_ctx_free(t);
    return NULL;
}

void rt_tls_ctx_free(rt_tls_t *t)
{
    if (!t)
        return;
    if (t->ctx)
        wolfSSL_CTX_free(t->ctx);
    free(t);
    if (--tls_inits == 0)
        wolfSSL_Cleanup();
}

/* ---- sessions -------------------------------------------------------------- */

rt_tls_conn_t *rt_tls_conn_new(rt_tls_t *t, int fd, char *err, size_t errlen)
{
    rt_tls_conn_t *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(err, errlen, "tls: out of memory");
        return NULL;
    }
    c->server = t->server;
    c->ssl = wolfSSL_new(t->ctx);
    if (!c->ssl || wolfSSL_set_fd(c->ssl, fd) != WOLFSSL_SUCCESS) {
        snprintf(err, errlen, "tls: cannot create a session");
        rt_tls_conn_free(c);
        return NULL;
    }
    return c;
}

void rt_tls_conn_free(rt_tls_conn_t *c)
{
    if (!c)
        return;
    if (c->ssl)
        wolfSSL_free(c->ssl);
    free(c);
}

/* RT_AGAIN for WANT_READ/WANT_WRITE, else RT_ERR with the reason */
static int io_result(rt_tls_conn_t *c, int ret, const char *what, char *err, size_t errlen)
{
    int code = wolfSSL_get_error(c->ssl, ret);
    if (code == WOLFSSL_ERROR_WANT_READ || code == WOLFSSL_ERROR_WANT_WRITE) {
        c->want_write = code == WOLFSSL_ERROR_WANT_WRITE;
        return RT_AGAIN;
    }
    reason(c, code, what, err, errlen);
    return RT_ERR;
}

int rt_tls_handshake(rt_tls_conn_t *c, char *err, size_t errlen)
{
    errno = 0;
    int ret = c->server ? wolfSSL_accept(c->ssl) : wolfSSL_connect(c->ssl);
    if (ret != WOLFSSL_SUCCESS)
        return io_result(c, ret, "TLS handshake", err, errlen);
    /* belt and braces: the context only speaks 1.3 and verifies the peer */
    if (strcmp(wolfSSL_get_version(c->ssl), "TLSv1.3") != 0) {
        snprintf(err, errlen, "TLS handshake: peer negotiated %s, not TLS 1.3",
                 wolfSSL_get_version(c->ssl));
        return RT_ERR;
    }
    WOLFSSL_X509 *x = wolfSSL_get_peer_certificate(c->ssl);
    const char *cn = x ? wolfSSL_X509_get_subjectCN(x) : NULL;
    if (!cn || !cn[0] || strlen(cn) >= sizeof c->cn) {
        snprintf(err, errlen, "TLS handshake: peer certificate has no usable CN");
        wolfSSL_X509_free(x);
        return RT_ERR;
    }
    snprintf(c->cn, sizeof c->cn, "%s", cn);
    char ou[RT_NAME_MAX] = "";
    WOLFSSL_X509_NAME *sn = wolfSSL_X509_get_subject_name(x);
    if (!sn || wolfSSL_X509_NAME_get_text_by_NID(sn, NID_organizationalUnitName, ou,
                                                  (int)sizeof ou) < 0)
        ou[0] = '\0';
    c->admin = strcmp(ou, RT_CERT_OU_ADMIN) == 0;
    wolfSSL_X509_free(x);
    return RT_OK;
}

bool rt_tls_want_write(const rt_tls_conn_t *c)
{
    return c->want_write;
}

const char *rt_tls_peer_cn(const rt_tls_conn_t *c)
{
    return c->cn;
}

bool rt_tls_peer_admin(const rt_tls_conn_t *c)
{
    return c->admin;
}

const char *rt_tls_cipher(const rt_tls_conn_t *c)
{
    const char *name = c->cn[0] ? wolfSSL_get_cipher_name(c->ssl) : NULL;
    return name ? name : "";
}

int rt_tls_read(rt_tls_conn_t *c, void *buf, size_t len, size_t *got, char *err, size_t errlen)
{
    if (len > INT32_MAX)
        len = INT32_MAX;
    errno = 0;
    int ret = wolfSSL_read(c->ssl, buf, (int)len);
    if (ret > 0) {
        *got = (size_t)ret;
        return RT_OK;
    }
    return io_result(c, ret, "TLS read", err, errlen);
}

bool rt_tls_pending(const rt_tls_conn_t *c)
{
    return wolfSSL_pending(c->ssl) > 0;
}

int rt_tls_write(rt_tls_conn_t *c, const void *buf, size_t len, size_t *put, char *err,
                 size_t errlen)
{
    if (len > INT32_MAX)
        len = INT32_MAX;
    errno = 0;
    int ret = wolfSSL_write(c->ssl, buf, (int)len);
    if (ret > 0) {
        *put = (size_t)ret;
        return RT_OK;
    }
    return io_result(c, ret, "TLS write", err, errlen);
}

void rt_tls_shutdown(rt_tls_conn_t *c)
{
    if (c && c->ssl)
        (void)wolfSSL_shutdown(c->ssl);
}
