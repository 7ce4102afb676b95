/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * demo.c: writes the embedded default's folder (see demo.h).
 *
 * Everything a new user needs to try the product on one machine: a site CA
 * and certificates made with the product's own certificate code, sparse disk
 * images, two appliance configs linked over loopback, a console config and
 * demo.env. Ports are chosen free on 127.0.0.1 by the kernel (bind to port
 * 0, all held open until every one is known, so they differ). Every file is
 * written through a temporary name and renamed; demo.env comes last.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "demo.h"
#include "rt.h"

#define DEMO_GROUP "demo"
/* ports: primary mgmt, secondary link, secondary mgmt, then one NBD per disk */
#define DEMO_FIXED_PORTS 3u

/* ---- helpers ------------------------------------------------------------------ */

static int mkdir_p(const char *path, mode_t mode)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *p = tmp + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            if (mkdir(tmp, mode) != 0 && errno != EEXIST)
                return -1;
            *p = '/';
        }
    return mkdir(tmp, mode) != 0 && errno != EEXIST ? -1 : 0;
}

/* write @text to @dir/@name through a temporary file, fsync'd, then renamed */
static int write_file(const char *dir, const char *name, const char *text, char *err,
                      size_t errlen)
{
    char path[4096], tmp[4200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return rt_errf(err, errlen, "demo: cannot create %s: %s", tmp, strerror(errno));
    size_t len = strlen(text), off = 0;
    while (off < len) {
        ssize_t n = write(fd, text + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            int e = errno;
            close(fd);
            unlink(tmp);
            return rt_errf(err, errlen, "demo: cannot write %s: %s", tmp, strerror(e));
        }
        off += (size_t)n;
    }
    if (fsync(fd) != 0 || close(fd) != 0 || rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return rt_errf(err, errlen, "demo: cannot write %s: %s", path, strerror(e));
    }
    return 0;
}

/* @n distinct free TCP ports on 127.0.0.1 */
static int free_ports(unsigned n, unsigned *ports, char *err, size_t errlen)
{
    int fds[DEMO_FIXED_PORTS + DEMO_DISKS_MAX];
    unsigned got = 0;
    int rc = 0;
    for (; got < n; got++) {
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t alen = sizeof a;
        fds[got] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fds[got] < 0 || bind(fds[got], (struct sockaddr *)&a, sizeof a) != 0 ||
            getsockname(fds[got], (struct sockaddr *)&a, &alen) != 0) {
            rc = rt_errf(err, errlen, "demo: cannot find a free port on 127.0.0.1: %s",
                      strerror(errno));
            if (fds[got] >= 0)
                close(fds[got]);
            break;
        }
        ports[got] = ntohs(a.sin_port);
    }
    for (unsigned i = 0; i < got; i++)
        close(fds[i]);
    return rc;
}

/* a growing text buffer for the config files (they are small) */
typedef struct text {
    char buf[16384];
    size_t len;
    bool overflow;
} text_t;

static void put(text_t *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(text_t *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(t->buf + t->len, sizeof t->buf - t->len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof t->buf - t->len)
        t->overflow = true;
    else
        t->len += (size_t)n;
}

/* ---- the folder ------------------------------------------------------------------- */

void demo_conf_path(const char *dir, bool primary, char *out, size_t outlen)
{
    snprintf(out, outlen, "%s/%s", dir, primary ? "primary.ini" : "secondary.ini");
}

/* what a resumed folder holds, to say so when the options ask for another */
static void resume_notice(const char *dir, unsigned disks, uint64_t disk_size)
{
    unsigned have = 0;
    char path[4096];
    struct stat st;
    uint64_t size0 = 0;
    for (; have < DEMO_DISKS_MAX; have++) {
        snprintf(path, sizeof path, "%s/disks/disk%u.img", dir, have);
        if (stat(path, &st) != 0)
            break;
        if (have == 0)
            size0 = (uint64_t)st.st_size;
    }
    if ((disks && disks != have) || (disk_size && disk_size != size0))
        rt_log(RT_LOG_WARN,
               "demo: %s already holds a demo with %u disk(s) of %llu bytes; resuming it as it "
               "is (remove the folder for a new one)",
               dir, have, (unsigned long long)size0);
}

static int make_disks(const char *dir, unsigned disks, uint64_t size, char *err, size_t errlen)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/disks", dir);
    if (mkdir_p(path, 0755) != 0)
        return rt_errf(err, errlen, "demo: cannot create %s: %s", path, strerror(errno));
    for (unsigned i = 0; i < disks; i++) {
        snprintf(path, sizeof path, "%s/disks/disk%u.img", dir, i);
        int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0 || ftruncate(fd, (off_t)size) != 0) {
            int e = errno;
            if (fd >= 0)
                close(fd);
            return rt_errf(err, errlen, "demo: cannot make the disk image %s: %s", path,
                        strerror(e));
        }
        close(fd);
    }
    return 0;
}

static int make_certs(const char *dir, char *err, size_t errlen)
{
    char ca[4096];
    snprintf(ca, sizeof ca, "%s/ca", dir);
    /* a folder left by an interrupted set-up is made again from scratch */
    if (rt_cert_ca_create(ca, "secondsite-demo", RT_CERT_FORCE, err, errlen) != RT_OK ||
        rt_cert_issue(ca, NULL, "primary", 0, RT_CERT_FORCE, err, errlen) != RT_OK ||
        rt_cert_issue(ca, NULL, "secondary", 0, RT_CERT_FORCE, err, errlen) != RT_OK ||
        rt_cert_issue(ca, NULL, "admin", 0, RT_CERT_ADMIN | RT_CERT_FORCE, err, errlen) != RT_OK)
        return -1;
    return 0;
}

int demo_prepare(const char *dir, unsigned disks, uint64_t disk_size, bool *resumed, char *err,
                 size_t errlen)
{
    char path[4096];
    unsigned ports[DEMO_FIXED_PORTS + DEMO_DISKS_MAX];
    struct stat st;
    *resumed = false;
    if (errlen)
        err[0] = '\0';
    snprintf(path, sizeof path, "%s/demo.env", dir);
    if (stat(path, &st) == 0) {
        *resumed = true;
        resume_notice(dir, disks, disk_size);
        return 0;
    }
    if (!disks)
        disks = 1;
    if (!disk_size)
        disk_size = DEMO_DEFAULT_DISK_SIZE;
    if (disks > DEMO_DISKS_MAX)
        return rt_errf(err, errlen, "demo: at most %u disks", DEMO_DISKS_MAX);
    if (disk_size % 4096)
        return rt_errf(err, errlen, "demo: the disk size must be a multiple of 4096 bytes");
    if (mkdir_p(dir, 0755) != 0)
        return rt_errf(err, errlen, "demo: cannot create %s: %s", dir, strerror(errno));
    if (make_certs(dir, err, errlen) != 0 || make_disks(dir, disks, disk_size, err, errlen) != 0 ||
        free_ports(DEMO_FIXED_PORTS + disks, ports, err, errlen) != 0)
        return -1;
    unsigned p_mgmt1 = ports[0], p_link2 = ports[1], p_mgmt2 = ports[2];

    text_t *t = calloc(1, sizeof *t);
    if (!t)
        return rt_errf(err, errlen, "demo: out of memory");
    int rc = -1;

    /* the primary appliance: agent + process server */
    put(t, "# secondsite demo: the primary appliance (agent + process server).\n"
           "# Paths are relative to this file's folder.\n"
           "[node]\nname = primary\nroles = agent, ps\ndata_dir = primary\n\n"
           "[trace]\nfile = primary/trace.pb\n\n"
           "[tls]\nca = ca/ca.crt\ncert = ca/primary.crt\nkey = ca/primary.key\n\n"
           "[listen]\nmgmt = 127.0.0.1:%u\n\n"
           "[peer secondary]\naddress = 127.0.0.1:%u\n\n"
           "[ps]\ncache_quota = 1G\n",
        p_mgmt1, p_link2);
    for (unsigned i = 0; i < disks; i++)
        put(t, "\n[disk disk%u]\npath = disks/disk%u.img\nexport = disk%u\nlisten = 127.0.0.1:%u\n"
               "pair = " DEMO_GROUP "-disk%u\ngroup = " DEMO_GROUP "\n",
            i, i, i, ports[DEMO_FIXED_PORTS + i], i);
    if (t->overflow || write_file(dir, "primary.ini", t->buf, err, errlen) != 0)
        goto out;

    /* the secondary appliance: master target (the configuration server joins later) */
    t->len = 0;
    put(t, "# secondsite demo: the secondary appliance (master target).\n"
           "# Paths are relative to this file's folder.\n"
           "[node]\nname = secondary\nroles = mt\ndata_dir = secondary\n\n"
           "[trace]\nfile = secondary/trace.pb\n\n"
           "[tls]\nca = ca/ca.crt\ncert = ca/secondary.crt\nkey = ca/secondary.key\n\n"
           "[listen]\nlink = 127.0.0.1:%u\nmgmt = 127.0.0.1:%u\n\n"
           "[mt]\ndir = secondary/mt\nretention = 24h\n",
        p_link2, p_mgmt2);
    if (t->overflow || write_file(dir, "secondary.ini", t->buf, err, errlen) != 0)
        goto out;

    /* the console: the primary's endpoint knows every pair end to end */
    t->len = 0;
    put(t, "# nodectl's view of the demo: the primary appliance's management endpoint.\n"
           "[console]\nendpoint = 127.0.0.1:%u\n\n"
           "[tls]\nca = ca/ca.crt\ncert = ca/admin.crt\nkey = ca/admin.key\n",
        p_mgmt1);
    if (t->overflow || write_file(dir, "nodectl.ini", t->buf, err, errlen) != 0)
        goto out;

    char abs[4096];
    if (!realpath(dir, abs))
        snprintf(abs, sizeof abs, "%s", dir);
    for (const char *sub = "primary"; sub; sub = strcmp(sub, "primary") == 0 ? "secondary" : NULL) {
        snprintf(path, sizeof path, "%s/%s", dir, sub);
        if (mkdir_p(path, 0755) != 0) {
            rt_errf(err, errlen, "demo: cannot create %s: %s", path, strerror(errno));
            goto out;
        }
    }
    t->len = 0;
    put(t, "# secondsite demo: source this file (. %s/demo.env)\n"
           "NODECTL_CONF=%s/nodectl.ini\nPRIMARY_CONF=%s/primary.ini\n"
           "SECONDARY_CONF=%s/secondary.ini\nGROUP=" DEMO_GROUP "\n",
        abs, abs, abs, abs);
    for (unsigned i = 0; i < disks; i++)
        put(t, "PAIR_%u=" DEMO_GROUP "-disk%u\nNBD_URI_%u=nbd://127.0.0.1:%u/disk%u\n"
               "SOURCE_%u=%s/disks/disk%u.img\n",
            i, i, i, ports[DEMO_FIXED_PORTS + i], i, i, abs, i);
    put(t, "MT_DIR=%s/secondary/mt\nTRACE_FILES=\"%s/primary/trace.pb %s/secondary/trace.pb\"\n"
           "export NODECTL_CONF\n",
        abs, abs, abs);
    if (t->overflow || write_file(dir, "demo.env", t->buf, err, errlen) != 0)
        goto out;
    rc = 0;
out:
    if (t->overflow && rc != 0 && !err[0])
        rt_errf(err, errlen, "demo: a config file grew too large");
    free(t);
    return rc;
}
