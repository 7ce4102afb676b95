/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * cmd_cert.c: nodectl init and nodectl cert issue|show|verify.
 *
 * The site's trust starts here: init makes the site CA and the console's own
 * admin certificate, cert issue makes a node's (or another operator's)
 * certificate, cert show and cert verify read them back. The work is done by
 * the runtime's certificate module (runtime/rt_cert.c, wolfSSL), so that
 * noded --demo and a future enrolment service make exactly the same files.
 */
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nodectl.h"
#include "rt.h"

#define ADMIN_NAME "admin" /* CN of the console's certificate made by init */

static bool exists(const char *path)
{
    return access(path, F_OK) == 0;
}

static void json_kv(const char *key, const char *val, bool last)
{
    ctl_json_str(stdout, key);
    fputc(':', stdout);
    ctl_json_str(stdout, val);
    fputs(last ? "" : ",", stdout);
}

/* ---- nodectl init ------------------------------------------------------ */

int ctl_cmd_init(ctl_t *ctl, int argc, char **argv)
{
    static const struct option lo[] = {
        CTL_COMMON_LONGOPTS, {"site", 1, NULL, 's'}, {"force", 0, NULL, 'f'}, {NULL, 0, NULL, 0},
    };
    char err[512], p[4][PATH_MAX];
    const char *dir, *site = NULL;
    static const char *const files[4] = {"ca.crt", "ca.key", ADMIN_NAME ".crt", ADMIN_NAME ".key"};
    unsigned flags = 0;
    bool first = true;
    int c;

    while ((c = ctl_getopt(ctl, argc, argv, "h", lo, &first)) != -1) {
        switch (c) {
        case 's': site = optarg; break;
        case 'f': flags |= RT_CERT_FORCE; break;
        case CTL_GETOPT_HELP: return CTL_EXIT_OK;
        default: return CTL_EXIT_USAGE;
        }
    }
    if (optind >= argc)
        return ctl_usage(ctl, "missing DIR, the folder for the site CA");
    if (optind + 1 < argc)
        return ctl_usage(ctl, "unexpected argument '%s'", argv[optind + 1]);
    dir = argv[optind];
    if (site && !rt_cert_name_ok(site))
        return ctl_usage(ctl, "bad --site '%s': use 1-63 of A-Z a-z 0-9 . _ -", site);
    for (int i = 0; i < 4; i++) {
        if ((size_t)snprintf(p[i], sizeof p[i], "%s/%s", dir, files[i]) >= sizeof p[i])
            return ctl_usage(ctl, "DIR is too long");
        if (!(flags & RT_CERT_FORCE) && exists(p[i]))
            return ctl_fail(ctl, "%s exists: %s already holds a site; pass --force to replace "
                            "it (certificates of the old CA stop working)", p[i], dir);
    }
    if (rt_cert_ca_create(dir, site, flags, err, sizeof err) != RT_OK)
        return ctl_fail(ctl, "%s", err);
    if (rt_cert_issue(dir, dir, ADMIN_NAME, 0, flags | RT_CERT_ADMIN, err, sizeof err) != RT_OK)
        return ctl_fail(ctl, "site CA created, but the admin certificate failed: %s", err);
    if (ctl->json) {
        fputc('{', stdout);
        json_kv("ca_cert", p[0], false);
        json_kv("ca_key", p[1], false);
        json_kv("admin_cert", p[2], false);
        json_kv("admin_key", p[3], true);
        fputs("}\n", stdout);
    } else {
        printf("site CA:           %s (key %s, mode 0600)\n", p[0], p[1]);
        printf("admin certificate: %s (key %s, mode 0600)\n", p[2], p[3]);
        printf("next: nodectl cert issue --ca %s NAME, for each node\n", dir);
    }
    return CTL_EXIT_OK;
}

/* ---- nodectl cert issue ------------------------------------------------ */

static int cert_issue(ctl_t *ctl, int argc, char **argv)
{
    static const struct option lo[] = {
        CTL_COMMON_LONGOPTS,        {"ca", 1, NULL, 'c'},    {"out", 1, NULL, 'o'},
        {"admin", 0, NULL, 'a'},    {"days", 1, NULL, 'd'},  {"force", 0, NULL, 'f'},
        {NULL, 0, NULL, 0},
    };
    char err[512], crt[PATH_MAX], key[PATH_MAX], nb[32], na[32];
    const char *ca = NULL, *out = NULL, *name;
    rt_cert_info_t info;
    unsigned flags = 0, days = RT_CERT_NODE_DAYS;
    bool first = true;
    int c;

    while ((c = ctl_getopt(ctl, argc, argv, "h", lo, &first)) != -1) {
        switch (c) {
        case 'c': ca = optarg; break;
        case 'o': out = optarg; break;
        case 'a': flags |= RT_CERT_ADMIN; break;
        case 'f': flags |= RT_CERT_FORCE; break;
        case 'd':
            if (!ctl_parse_uint(optarg, 1, RT_CERT_MAX_DAYS, &days))
                return ctl_usage(ctl, "bad --days '%s': give a number of days, 1 to %u", optarg,
                                 RT_CERT_MAX_DAYS);
            break;
        case CTL_GETOPT_HELP: return CTL_EXIT_OK;
        default: return CTL_EXIT_USAGE;
        }
    }
    if (!ca)
        return ctl_usage(ctl, "missing --ca DIR, the folder made by nodectl init");
    if (optind >= argc)
        return ctl_usage(ctl, "missing NAME, the node name for the certificate's CN");
    if (optind + 1 < argc)
        return ctl_usage(ctl, "unexpected argument '%s'", argv[optind + 1]);
    name = argv[optind];
    if (!rt_cert_name_ok(name))
        return ctl_usage(ctl, "bad NAME '%s': use 1-63 of A-Z a-z 0-9 . _ - (not starting "
                         "with . or -, not 'ca')", name);
    if (!out)
        out = ca;
    if (rt_cert_issue(ca, out, name, days, flags, err, sizeof err) != RT_OK)
        return ctl_fail(ctl, "%s", err);
    snprintf(crt, sizeof crt, "%s/%s.crt", out, name);
    snprintf(key, sizeof key, "%s/%s.key", out, name);
    if (rt_cert_info(crt, &info, err, sizeof err) != RT_OK)
        return ctl_fail(ctl, "issued, but cannot read it back: %s", err);
    ctl_iso_time(info.not_before, nb, sizeof nb);
    ctl_iso_time(info.not_after, na, sizeof na);
    if (ctl->json) {
        fputc('{', stdout);
        json_kv("name", name, false);
        json_kv("cert", crt, false);
        json_kv("key", key, false);
        json_kv("ou", info.ou, false);
        json_kv("not_after", na, false);
        printf("\"admin\":%s,\"days\":%u}\n", info.admin ? "true" : "false", days);
    } else {
        printf("certificate: %s (CN=%s, OU=%s, valid until %s)\n", crt, info.cn, info.ou, na);
        printf("key:         %s (mode 0600)\n", key);
    }
    return CTL_EXIT_OK;
}

/* ---- nodectl cert show ------------------------------------------------- */

static int cert_show(ctl_t *ctl, int argc, char **argv)
{
    static const struct option lo[] = {CTL_COMMON_LONGOPTS, {NULL, 0, NULL, 0}};
    char err[512], nb[32], na[32];
    rt_cert_info_t i;
    bool first = true;
    int c;

    while ((c = ctl_getopt(ctl, argc, argv, "h", lo, &first)) != -1) {
        if (c == CTL_GETOPT_HELP)
            return CTL_EXIT_OK;
        return CTL_EXIT_USAGE;
    }
    if (optind >= argc)
        return ctl_usage(ctl, "missing FILE, a PEM certificate");
    if (optind + 1 < argc)
        return ctl_usage(ctl, "unexpected argument '%s'", argv[optind + 1]);
    if (rt_cert_info(argv[optind], &i, err, sizeof err) != RT_OK)
        return ctl_fail(ctl, "%s", err);
    ctl_iso_time(i.not_before, nb, sizeof nb);
    ctl_iso_time(i.not_after, na, sizeof na);
    if (ctl->json) {
        fputc('{', stdout);
        json_kv("file", argv[optind], false);
        json_kv("cn", i.cn, false);
        json_kv("ou", i.ou, false);
        json_kv("issuer_cn", i.issuer_cn, false);
        json_kv("serial", i.serial, false);
        json_kv("not_before", nb, false);
        json_kv("not_after", na, false);
        printf("\"ca\":%s,\"admin\":%s}\n", i.is_ca ? "true" : "false",
               i.admin ? "true" : "false");
    } else {
        printf("CN          %s\n", i.cn);
        printf("OU          %s\n", i.ou[0] ? i.ou : "-");
        printf("issuer      %s\n", i.issuer_cn);
        printf("serial      %s\n", i.serial);
        printf("not before  %s\n", nb);
        printf("not after   %s\n", na);
        printf("kind        %s\n", i.is_ca ? "CA" : i.admin ? "admin" : "node");
    }
    return CTL_EXIT_OK;
}

/* ---- nodectl cert verify ----------------------------------------------- */

static int cert_verify(ctl_t *ctl, int argc, char **argv)
{
    static const struct option lo[] = {
        CTL_COMMON_LONGOPTS, {"ca", 1, NULL, 'c'}, {NULL, 0, NULL, 0},
    };
    char err[1024], ca_path[PATH_MAX];
    const char *ca = NULL, *file;
    struct stat st;
    bool first = true;
    int c, rc;

    while ((c = ctl_getopt(ctl, argc, argv, "h", lo, &first)) != -1) {
        switch (c) {
        case 'c': ca = optarg; break;
        case CTL_GETOPT_HELP: return CTL_EXIT_OK;
        default: return CTL_EXIT_USAGE;
        }
    }
    if (!ca)
        return ctl_usage(ctl, "missing --ca DIR|FILE, the site CA");
    if (optind >= argc)
        return ctl_usage(ctl, "missing FILE, the certificate to check");
    if (optind + 1 < argc)
        return ctl_usage(ctl, "unexpected argument '%s'", argv[optind + 1]);
    file = argv[optind];
    if (stat(ca, &st) == 0 && S_ISDIR(st.st_mode))
        snprintf(ca_path, sizeof ca_path, "%s/ca.crt", ca);
    else
        snprintf(ca_path, sizeof ca_path, "%s", ca);
    rc = rt_cert_verify(ca_path, file, err, sizeof err);
    if (ctl->json) {
        fputc('{', stdout);
        json_kv("file", file, false);
        json_kv("ca", ca_path, false);
        printf("\"valid\":%s", rc == RT_OK ? "true" : "false");
        if (rc != RT_OK) {
            fputc(',', stdout);
            json_kv("error", err, true);
        }
        fputs("}\n", stdout);
    } else if (rc == RT_OK) {
        printf("%s: valid, issued by %s\n", file, ca_path);
    }
    if (rc != RT_OK)
        return ctl_fail(ctl, "%s", err);
    return CTL_EXIT_OK;
}

const ctl_cmd_t ctl_cert_cmds[] = {
    {"issue", "--ca DIR NAME [--out DIR] [--admin] [--days N] [--force]",
     "issue a node (or admin) certificate signed by the site CA",
     "DESCRIPTION\n"
     "    Makes a new ECC P-256 key and a certificate for NAME signed by the CA in\n"
     "    DIR (DIR/ca.crt, DIR/ca.key): CN=NAME, OU=node (OU=admin with --admin),\n"
     "    CA:FALSE, key usage digitalSignature, extended key usage serverAuth and\n"
     "    clientAuth. Writes OUT/NAME.crt (0644) and OUT/NAME.key (0600). NAME is\n"
     "    the node's name: 1-63 of A-Z a-z 0-9 . _ -, not starting with . or -.\n"
     "\n"
     "OPTIONS\n"
     "    --ca DIR     the CA folder made by nodectl init (required)\n"
     "    --out DIR    where to write the files (default: the CA folder; created\n"
     "                 with mode 0700 if missing)\n"
     "    --admin      an admin certificate (OU=admin): may use management\n"
     "                 operations\n"
     "    --days N     validity in days (default 1095, 3 years)\n"
     "    --force      replace existing OUT/NAME.crt and OUT/NAME.key\n"
     "    --json       print what was written as one JSON object\n"
     "    -h, --help   show this page\n",
     cert_issue, NULL},
    {"show", "FILE", "print a certificate's CN, OU, issuer and validity",
     "DESCRIPTION\n"
     "    Reads the PEM certificate FILE and prints its subject CN and OU, the\n"
     "    issuer's CN, the serial number, the validity period (UTC) and its kind\n"
     "    (CA, admin or node).\n"
     "\n"
     "OPTIONS\n"
     "    --json       one JSON object: file, cn, ou, issuer_cn, serial,\n"
     "                 not_before, not_after, ca, admin\n"
     "    -h, --help   show this page\n",
     cert_show, NULL},
    {"verify", "--ca DIR|FILE FILE", "check that a certificate was issued by the site CA",
     "DESCRIPTION\n"
     "    Checks the signature of the PEM certificate FILE against the site CA\n"
     "    (DIR/ca.crt, or a CA certificate FILE) and that it is valid now. Exits 0\n"
     "    if it is, 1 if not.\n"
     "\n"
     "OPTIONS\n"
     "    --ca DIR|FILE  the CA folder or the CA certificate (required)\n"
     "    --json         one JSON object: file, ca, valid, error\n"
     "    -h, --help     show this page\n",
     cert_verify, NULL},
    {NULL, NULL, NULL, NULL, NULL, NULL},
};
