/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * rt_cert.c: the site CA and the certificates of nodes and operators.
 *
 * Every link is mutual TLS against the site CA, so a site needs a CA and one
 * certificate per node (and per operator console) before anything can talk.
 * This file makes them with wolfSSL's certificate generation, so that an
 * appliance needs no openssl command: ECC P-256 keys, ECDSA/SHA-256
 * signatures, PEM files. It also reads certificates back (CN, OU, issuer,
 * validity) for the inventory and for name checks, and verifies a certificate
 * against a CA with wolfSSL's certificate manager.
 *
 * Files are written crash-safe and never clobbered by accident: each goes to
 * a temporary file created with O_EXCL in the target folder, is fsync'd, and
 * is then hard-linked to its final name (link(2) fails if the name exists;
 * with RT_CERT_FORCE it is renamed over it instead), then the folder is
 * fsync'd. A key and its certificate are staged together and placed only
 * when both are ready, so a failure leaves neither.
 */
#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/asn_public.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/error-crypt.h>
#include <wolfssl/wolfcrypt/random.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "rt.h"

#define CERT_DER_MAX 4096u  /* one P-256 certificate is ~600 bytes */
#define PEM_MAX      8192u  /* largest PEM file we read */
#define KEY_DER_MAX  512u   /* SEC1 P-256 private key is 121 bytes */
#define SERIAL_LEN   16     /* random serial bytes (RFC 5280: <= 20) */

/* ---- small helpers ----------------------------------------------------- */

static const char *wc_err(int ret)
{
    return wc_GetErrorString(ret);
}

bool rt_cert_name_ok(const char *name)
{
    return rt_name_ok(name) && strcmp(name, "ca") != 0; /* "ca" names the CA's files */
}

/* Read a whole (small) file into @buf. @return bytes read, or -1 with @err. */
static long read_small(const char *path, unsigned char *buf, size_t cap, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    size_t got = 0;
    long rc = -1;

    if (fd < 0) {
        rt_errf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    for (;;) {
        ssize_t r = read(fd, buf + got, cap - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rt_errf(err, errlen, "cannot read %s: %s", path, strerror(errno));
            goto out;
        }
        if (r == 0)
            break;
        got += (size_t)r;
        if (got == cap) {
            rt_errf(err, errlen, "%s is larger than %zu bytes: not a PEM certificate or key", path,
                 cap - 1);
            goto out;
        }
    }
    rc = (long)got;
out:
    close(fd);
    return rc;
}

static int mkdir_if_missing(const char *dir, char *err, size_t errlen)
{
    struct stat st;

    if (mkdir(dir, 0700) == 0 || errno == EEXIST) {
        if (stat(dir, &st) == 0 && S_ISDIR(st.st_mode))
            return RT_OK;
        return rt_errf(err, errlen, "%s exists and is not a folder", dir);
    }
    return rt_errf(err, errlen, "cannot create folder %s: %s", dir, strerror(errno));
}

/* ---- staged, crash-safe file writes ------------------------------------ */

typedef struct staged {
    char tmp[PATH_MAX];  /* temporary file, "" once gone */
    char dst[PATH_MAX];  /* final name */
    bool placed;         /* dst now holds our data */
} staged_t;

/* Write @len bytes to a fresh temporary file beside @dst with @mode, fsync'd. */
static int stage(staged_t *s, const char *dir, const char *file, const void *data, size_t len,
                 mode_t mode, char *err, size_t errlen)
{
    const unsigned char *p = data;
    int fd = -1, rc = RT_ERR;

    memset(s, 0, sizeof *s);
    if ((size_t)snprintf(s->dst, sizeof s->dst, "%s/%s", dir, file) >= sizeof s->dst ||
        (size_t)snprintf(s->tmp, sizeof s->tmp, "%s/.%s.XXXXXX", dir, file) >= sizeof s->tmp) {
        s->tmp[0] = 0;
        return rt_errf(err, errlen, "path too long: %s/%s", dir, file);
    }
    fd = mkostemp(s->tmp, O_CLOEXEC); /* O_CREAT|O_EXCL, mode 0600 */
    if (fd < 0) {
        rt_errf(err, errlen, "cannot create a file in %s: %s", dir, strerror(errno));
        s->tmp[0] = 0;
        goto out;
    }
    if (fchmod(fd, mode) != 0) {
        rt_errf(err, errlen, "cannot set the mode of %s: %s", s->tmp, strerror(errno));
        goto out;
    }
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            rt_errf(err, errlen, "cannot write %s: %s", s->tmp, strerror(errno));
            goto out;
        }
        p += w;
        len -= (size_t)w;
    }
    if (fsync(fd) != 0) {
        rt_errf(err, errlen, "cannot fsync %s: %s", s->tmp, strerror(errno));
        goto out;
    }
    rc = RT_OK;
out:
    if (fd >= 0 && close(fd) != 0 && rc == RT_OK)
        rc = rt_errf(err, errlen, "cannot close %s: %s", s->tmp, strerror(errno));
    return rc;
}

/* Remove the temporary file; with @undo also the placed final name. */
static void unstage(staged_t *s, bool undo)
{
    if (s->tmp[0])
        unlink(s->tmp);
    s->tmp[0] = 0;
    if (undo && s->placed)
        unlink(s->dst);
    s->placed = false;
}

static int fsync_dir(const char *dir, char *err, size_t errlen)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc = RT_OK;

    if (fd < 0)
        return rt_errf(err, errlen, "cannot open folder %s: %s", dir, strerror(errno));
    if (fsync(fd) != 0)
        rc = rt_errf(err, errlen, "cannot fsync folder %s: %s", dir, strerror(errno));
    close(fd);
    return rc;
}

/* Put every staged file in place: all of them or none. */
static int place_all(staged_t *s, int n, const char *dir, bool force, char *err, size_t errlen)
{
    int i;

    if (!force) {
        for (i = 0; i < n; i++)
            if (access(s[i].dst, F_OK) == 0)
                return rt_errf(err, errlen, "%s exists; pass --force to replace it", s[i].dst);
    }
    for (i = 0; i < n; i++) {
        int r = force ? rename(s[i].tmp, s[i].dst) : link(s[i].tmp, s[i].dst);
        if (r != 0) {
            if (errno == EEXIST)
                rt_errf(err, errlen, "%s exists; pass --force to replace it", s[i].dst);
            else
                rt_errf(err, errlen, "cannot create %s: %s", s[i].dst, strerror(errno));
            while (--i >= 0)
                unstage(&s[i], !force); /* a replaced file cannot be restored */
            return RT_ERR;
        }
        s[i].placed = true;
        if (force)
            s[i].tmp[0] = 0; /* renamed: nothing left to remove */
    }
    for (i = 0; i < n; i++)
        unstage(&s[i], false);
    return fsync_dir(dir, err, errlen);
}

/* ---- keys and certificates --------------------------------------------- */

static void fill_name(CertName *n, const char *cn, const char *ou)
{
    snprintf(n->org, sizeof n->org, "secondsite");
    n->orgEnc = CTC_UTF8;
    if (ou) {
        snprintf(n->unit, sizeof n->unit, "%s", ou);
        n->unitEnc = CTC_UTF8;
    }
    snprintf(n->commonName, sizeof n->commonName, "%s", cn);
    n->commonNameEnc = CTC_UTF8;
}

static int new_serial(Cert *c, WC_RNG *rng)
{
    int ret = wc_RNG_GenerateBlock(rng, c->serial, SERIAL_LEN);
    if (ret != 0)
        return ret;
    c->serial[0] = (byte)((c->serial[0] & 0x3f) | 0x40); /* positive, no leading zero */
    c->serialSz = SERIAL_LEN;
    return 0;
}

/* The key as PEM ("EC PRIVATE KEY"). @return length or -1. */
static int key_pem(ecc_key *key, unsigned char *pem, size_t cap, char *err, size_t errlen)
{
    unsigned char der[KEY_DER_MAX];
    int dlen = wc_EccKeyToDer(key, der, sizeof der), plen = -1;

    if (dlen <= 0) {
        rt_errf(err, errlen, "cannot encode the key: %s", wc_err(dlen));
        goto out;
    }
    plen = wc_DerToPem(der, (word32)dlen, pem, (word32)cap, ECC_PRIVATEKEY_TYPE);
    if (plen <= 0) {
        rt_errf(err, errlen, "cannot encode the key as PEM: %s", wc_err(plen));
        plen = -1;
    }
out:
    explicit_bzero(der, sizeof der);
    return plen;
}

static int new_key(ecc_key *key, WC_RNG *rng, char *err, size_t errlen)
{
    int ret = wc_ecc_make_key_ex(rng, 32, key, ECC_SECP256R1);

    if (ret == 0)
        ret = wc_ecc_set_rng(key, rng);
    if (ret != 0)
        return rt_errf(err, errlen, "cannot make a P-256 key: %s", wc_err(ret));
    return RT_OK;
}

/* Sign @c with @signer into PEM @pem. @return length or -1. */
static int make_cert_pem(Cert *c, ecc_key *subject_key, ecc_key *signer, WC_RNG *rng,
                         unsigned char *pem, size_t cap, char *err, size_t errlen)
{
    unsigned char der[CERT_DER_MAX];
    int ret, plen;

    c->sigType = CTC_SHA256wECDSA;
    ret = wc_MakeCert_ex(c, der, sizeof der, ECC_TYPE, subject_key, rng);
    if (ret >= 0)
        ret = wc_SignCert_ex(c->bodySz, c->sigType, der, sizeof der, ECC_TYPE, signer, rng);
    if (ret < 0) {
        rt_errf(err, errlen, "cannot make the certificate: %s", wc_err(ret));
        return -1;
    }
    plen = wc_DerToPem(der, (word32)ret, pem, (word32)cap, CERT_TYPE);
    if (plen <= 0) {
        rt_errf(err, errlen, "cannot encode the certificate as PEM: %s", wc_err(plen));
        return -1;
    }
    return plen;
}

int rt_cert_ca_create(const char *dir, const char *site, unsigned flags, char *err,
                      size_t errlen)
{
    unsigned char kpem[PEM_MAX], cpem[PEM_MAX];
    char cn[RT_NAME_MAX];
    staged_t st[2];
    ecc_key key;
    WC_RNG rng;
    Cert c;
    bool rng_ok = false, key_ok = false;
    int klen, clen, ret, rc = RT_ERR, nst = 0;

    if (!site)
        site = "secondsite";
    if (!rt_cert_name_ok(site))
        return rt_errf(err, errlen, "bad site name '%s': use 1-63 of A-Z a-z 0-9 . _ -", site);
    snprintf(cn, sizeof cn, "%.*s CA", (int)sizeof cn - 4, site);
    if (mkdir_if_missing(dir, err, errlen) != RT_OK)
        return RT_ERR;
    if (!(flags & RT_CERT_FORCE)) {
        const char *f[2] = {"ca.crt", "ca.key"};
        for (int i = 0; i < 2; i++) {
            char p[PATH_MAX];
            snprintf(p, sizeof p, "%s/%s", dir, f[i]);
            if (access(p, F_OK) == 0)
                return rt_errf(err, errlen,
                            "%s exists: %s already holds a site CA; pass --force to replace it "
                            "(certificates it issued stop working)", p, dir);
        }
    }
    if ((ret = wc_InitRng(&rng)) != 0) {
        rt_errf(err, errlen, "cannot seed the random generator: %s", wc_err(ret));
        goto out;
    }
    rng_ok = true;
    if ((ret = wc_ecc_init(&key)) != 0) {
        rt_errf(err, errlen, "cannot init a key: %s", wc_err(ret));
        goto out;
    }
    key_ok = true;
    if (new_key(&key, &rng, err, errlen) != RT_OK)
        goto out;

    if ((ret = wc_InitCert(&c)) != 0 || (ret = new_serial(&c, &rng)) != 0) {
        rt_errf(err, errlen, "cannot init the certificate: %s", wc_err(ret));
        goto out;
    }
    fill_name(&c.subject, cn, NULL);
    c.selfSigned = 1;
    c.isCA = 1;
    c.basicConstSet = 1;
    c.pathLen = 0;
    c.pathLenSet = 1;
    c.daysValid = (int)RT_CERT_CA_DAYS;
    if ((ret = wc_SetKeyUsage(&c, "keyCertSign,cRLSign")) != 0 ||
        (ret = wc_SetSubjectKeyIdFromPublicKey_ex(&c, ECC_TYPE, &key)) != 0 ||
        (ret = wc_SetAuthKeyIdFromPublicKey_ex(&c, ECC_TYPE, &key)) != 0) {
        rt_errf(err, errlen, "cannot set the CA extensions: %s", wc_err(ret));
        goto out;
    }
    if ((clen = make_cert_pem(&c, &key, &key, &rng, cpem, sizeof cpem, err, errlen)) < 0)
        goto out;
    if ((klen = key_pem(&key, kpem, sizeof kpem, err, errlen)) < 0)
        goto out;

    if (stage(&st[nst++], dir, "ca.key", kpem, (size_t)klen, 0600, err, errlen) != RT_OK ||
        stage(&st[nst++], dir, "ca.crt", cpem, (size_t)clen, 0644, err, errlen) != RT_OK)
        goto out;
    rc = place_all(st, nst, dir, flags & RT_CERT_FORCE, err, errlen);
out:
    for (int i = 0; i < nst; i++)
        unstage(&st[i], false);
    explicit_bzero(kpem, sizeof kpem);
    if (key_ok)
        wc_ecc_free(&key);
    if (rng_ok)
        wc_FreeRng(&rng);
    return rc;
}

/* Load the CA's key and certificate (DER) from @ca_dir. */
static int load_ca(const char *ca_dir, ecc_key *key, unsigned char *cder, int *cder_len,
                   char *err, size_t errlen)
{
    unsigned char pem[PEM_MAX], der[KEY_DER_MAX * 4];
    char path[PATH_MAX];
    word32 idx = 0;
    long n;
    int dlen, ret, rc = RT_ERR;

    snprintf(path, sizeof path, "%s/ca.crt", ca_dir);
    if ((n = read_small(path, pem, sizeof pem, err, errlen)) < 0)
        goto out;
    *cder_len = wc_CertPemToDer(pem, (int)n, cder, (int)CERT_DER_MAX, CERT_TYPE);
    if (*cder_len <= 0) {
        rt_errf(err, errlen, "%s is not a PEM certificate: %s", path, wc_err(*cder_len));
        goto out;
    }
    snprintf(path, sizeof path, "%s/ca.key", ca_dir);
    if ((n = read_small(path, pem, sizeof pem, err, errlen)) < 0)
        goto out;
    dlen = wc_KeyPemToDer(pem, (int)n, der, (int)sizeof der, NULL);
    if (dlen <= 0) {
        rt_errf(err, errlen, "%s is not a PEM private key: %s", path, wc_err(dlen));
        goto out;
    }
    if ((ret = wc_EccPrivateKeyDecode(der, &idx, key, (word32)dlen)) != 0) {
        rt_errf(err, errlen, "%s is not an ECC private key: %s", path, wc_err(ret));
        goto out;
    }
    rc = RT_OK;
out:
    explicit_bzero(pem, sizeof pem);
    explicit_bzero(der, sizeof der);
    return rc;
}

/* Verify DER/PEM certificate bytes against CA DER bytes. */
static int verify_buf(const unsigned char *ca, long ca_len, int ca_fmt, const unsigned char *crt,
                      long crt_len, int crt_fmt, char *err, size_t errlen)
{
    WOLFSSL_CERT_MANAGER *cm = wolfSSL_CertManagerNew();
    int ret, rc = RT_ERR;

    if (!cm)
        return rt_errf(err, errlen, "out of memory");
    ret = wolfSSL_CertManagerLoadCABuffer(cm, ca, ca_len, ca_fmt);
    if (ret != WOLFSSL_SUCCESS) {
        rt_errf(err, errlen, "cannot load the CA certificate: %s", wc_err(ret));
        goto out;
    }
    ret = wolfSSL_CertManagerVerifyBuffer(cm, crt, crt_len, crt_fmt);
    if (ret != WOLFSSL_SUCCESS) {
        rt_errf(err, errlen, "not signed by this CA or not valid now: %s", wc_err(ret));
        goto out;
    }
    rc = RT_OK;
out:
    wolfSSL_CertManagerFree(cm);
    return rc;
}

int rt_cert_issue(const char *ca_dir, const char *out_dir, const char *name, unsigned days,
                  unsigned flags, char *err, size_t errlen)
{
    unsigned char kpem[PEM_MAX], cpem[PEM_MAX], cader[CERT_DER_MAX];
    char file[RT_NAME_MAX + 8], why[256];
    staged_t st[2];
    ecc_key cakey, key;
    WC_RNG rng;
    Cert c;
    bool rng_ok = false, cakey_ok = false, key_ok = false;
    int klen, clen, cader_len = 0, ret, rc = RT_ERR, nst = 0;

    if (!out_dir)
        out_dir = ca_dir;
    if (!rt_cert_name_ok(name))
        return rt_errf(err, errlen,
                    "bad name '%s': use 1-63 of A-Z a-z 0-9 . _ - (not starting with . or -, "
                    "not 'ca')", name ? name : "");
    if (days == 0)
        days = RT_CERT_NODE_DAYS;
    if (days > RT_CERT_MAX_DAYS)
        return rt_errf(err, errlen, "validity of %u days is too long (at most %u)", days,
                    RT_CERT_MAX_DAYS);
    if ((ret = wc_InitRng(&rng)) != 0) {
        rt_errf(err, errlen, "cannot seed the random generator: %s", wc_err(ret));
        goto out;
    }
    rng_ok = true;
    if ((ret = wc_ecc_init(&cakey)) != 0) {
        rt_errf(err, errlen, "cannot init a key: %s", wc_err(ret));
        goto out;
    }
    cakey_ok = true;
    if ((ret = wc_ecc_init(&key)) != 0) {
        rt_errf(err, errlen, "cannot init a key: %s", wc_err(ret));
        goto out;
    }
    key_ok = true;
    if (load_ca(ca_dir, &cakey, cader, &cader_len, err, errlen) != RT_OK)
        goto out;
    if ((ret = wc_ecc_set_rng(&cakey, &rng)) != 0) {
        rt_errf(err, errlen, "cannot use the CA key: %s", wc_err(ret));
        goto out;
    }
    if (mkdir_if_missing(out_dir, err, errlen) != RT_OK)
        goto out;
    if (new_key(&key, &rng, err, errlen) != RT_OK)
        goto out;

    if ((ret = wc_InitCert(&c)) != 0 || (ret = new_serial(&c, &rng)) != 0) {
        rt_errf(err, errlen, "cannot init the certificate: %s", wc_err(ret));
        goto out;
    }
    fill_name(&c.subject, name, (flags & RT_CERT_ADMIN) ? RT_CERT_OU_ADMIN : RT_CERT_OU_NODE);
    c.selfSigned = 0;
    c.isCA = 0;
    c.basicConstSet = 1; /* encode basicConstraints CA:FALSE explicitly */
    c.daysValid = (int)days;
    if ((ret = wc_SetIssuerBuffer(&c, cader, cader_len)) != 0) {
        rt_errf(err, errlen, "%s/ca.crt: cannot use it as issuer: %s", ca_dir, wc_err(ret));
        goto out;
    }
    if ((ret = wc_SetKeyUsage(&c, "digitalSignature")) != 0 ||
        (ret = wc_SetExtKeyUsage(&c, "serverAuth,clientAuth")) != 0 ||
        (ret = wc_SetSubjectKeyIdFromPublicKey_ex(&c, ECC_TYPE, &key)) != 0 ||
        (ret = wc_SetAuthKeyIdFromPublicKey_ex(&c, ECC_TYPE, &cakey)) != 0) {
        rt_errf(err, errlen, "cannot set the certificate extensions: %s", wc_err(ret));
        goto out;
    }
    if ((clen = make_cert_pem(&c, &key, &cakey, &rng, cpem, sizeof cpem, err, errlen)) < 0)
        goto out;
    /* a CA key that does not belong to ca.crt makes certificates nobody accepts */
    if (verify_buf(cader, cader_len, WOLFSSL_FILETYPE_ASN1, cpem, clen, WOLFSSL_FILETYPE_PEM,
                   why, sizeof why) != RT_OK) {
        rt_errf(err, errlen, "%s/ca.key does not match %s/ca.crt (%s)", ca_dir, ca_dir, why);
        goto out;
    }
    if ((klen = key_pem(&key, kpem, sizeof kpem, err, errlen)) < 0)
        goto out;

    snprintf(file, sizeof file, "%s.key", name);
    if (stage(&st[nst++], out_dir, file, kpem, (size_t)klen, 0600, err, errlen) != RT_OK)
        goto out;
    snprintf(file, sizeof file, "%s.crt", name);
    if (stage(&st[nst++], out_dir, file, cpem, (size_t)clen, 0644, err, errlen) != RT_OK)
        goto out;
    rc = place_all(st, nst, out_dir, flags & RT_CERT_FORCE, err, errlen);
out:
    for (int i = 0; i < nst; i++)
        unstage(&st[i], false);
    explicit_bzero(kpem, sizeof kpem);
    if (key_ok)
        wc_ecc_free(&key);
    if (cakey_ok)
        wc_ecc_free(&cakey);
    if (rng_ok)
        wc_FreeRng(&rng);
    return rc;
}

/* ---- reading certificates ---------------------------------------------- */

static void name_text(WOLFSSL_X509_NAME *n, int nid, char *out, size_t cap)
{
    out[0] = 0;
    if (n && wolfSSL_X509_NAME_get_text_by_NID(n, nid, out, (int)cap) < 0)
        out[0] = 0;
}

static int64_t asn1_time(const WOLFSSL_ASN1_TIME *t)
{
    struct tm tm;

    memset(&tm, 0, sizeof tm);
    if (!t || wolfSSL_ASN1_TIME_to_tm(t, &tm) != WOLFSSL_SUCCESS)
        return 0;
    return (int64_t)timegm(&tm);
}

int rt_cert_info(const char *path, rt_cert_info_t *out, char *err, size_t errlen)
{
    unsigned char pem[PEM_MAX], serial[32];
    WOLFSSL_X509 *x;
    int slen = (int)sizeof serial;
    long n;

    memset(out, 0, sizeof *out);
    if ((n = read_small(path, pem, sizeof pem, err, errlen)) < 0)
        return RT_ERR;
    x = wolfSSL_X509_load_certificate_buffer(pem, (int)n, WOLFSSL_FILETYPE_PEM);
    if (!x)
        return rt_errf(err, errlen, "%s is not a PEM certificate", path);
    name_text(wolfSSL_X509_get_subject_name(x), NID_commonName, out->cn, sizeof out->cn);
    name_text(wolfSSL_X509_get_subject_name(x), NID_organizationalUnitName, out->ou,
              sizeof out->ou);
    name_text(wolfSSL_X509_get_issuer_name(x), NID_commonName, out->issuer_cn,
              sizeof out->issuer_cn);
    if (wolfSSL_X509_get_serial_number(x, serial, &slen) == WOLFSSL_SUCCESS) {
        for (int i = 0; i < slen && (size_t)(2 * i + 2) < sizeof out->serial; i++)
            snprintf(out->serial + 2 * i, 3, "%02x", serial[i]);
    }
    out->not_before = asn1_time(wolfSSL_X509_get_notBefore(x));
    out->not_after = asn1_time(wolfSSL_X509_get_notAfter(x));
    out->is_ca = wolfSSL_X509_get_isCA(x) != 0;
    out->admin = strcmp(out->ou, RT_CERT_OU_ADMIN) == 0;
    wolfSSL_X509_free(x);
    return RT_OK;
}

int rt_cert_verify(const char *ca_path, const char *cert_path, char *err, size_t errlen)
{
    unsigned char ca[PEM_MAX], crt[PEM_MAX];
    char why[256];
    long ca_len, crt_len;

    if ((ca_len = read_small(ca_path, ca, sizeof ca, err, errlen)) < 0 ||
        (crt_len = read_small(cert_path, crt, sizeof crt, err, errlen)) < 0)
        return RT_ERR;
    if (verify_buf(ca, ca_len, WOLFSSL_FILETYPE_PEM, crt, crt_len, WOLFSSL_FILETYPE_PEM, why,
                   sizeof why) != RT_OK)
        return rt_errf(err, errlen, "%s against %s: %s", cert_path, ca_path, why);
    return RT_OK;
}
