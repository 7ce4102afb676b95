/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * kvstate.c: small durable key-value state files (see kvstate.h).
 *
 * The checksum line makes a damaged file (a disk that lost a page, an
 * operator's editor) refused rather than half believed; the tmp + rename +
 * folder fsync sequence makes replacement atomic across a crash.
 */
#include "kvstate.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <xxhash.h>

#include "rt.h"

int kvs_set(kvs_t *kv, const char *key, const char *val)
{
    size_t kl = strlen(key), vl = strlen(val);
    if (kl == 0 || kl >= KVS_KEY_MAX || vl >= KVS_VAL_MAX || strpbrk(key, " \n") ||
        strchr(val, '\n') || strcmp(key, "checksum") == 0)
        return RT_ERR;
    unsigned i;
    for (i = 0; i < kv->n; i++)
        if (strcmp(kv->key[i], key) == 0)
            break;
    if (i == kv->n) {
        if (kv->n == KVS_MAX_KEYS)
            return RT_ERR;
        kv->n++;
        memcpy(kv->key[i], key, kl + 1);
    }
    memcpy(kv->val[i], val, vl + 1);
    return RT_OK;
}

int kvs_set_u64(kvs_t *kv, const char *key, uint64_t v)
{
    char s[24];
    snprintf(s, sizeof s, "%" PRIu64, v);
    return kvs_set(kv, key, s);
}

const char *kvs_get(const kvs_t *kv, const char *key)
{
    for (unsigned i = 0; i < kv->n; i++)
        if (strcmp(kv->key[i], key) == 0)
            return kv->val[i];
    return NULL;
}

uint64_t kvs_get_u64(const kvs_t *kv, const char *key, uint64_t def)
{
    const char *s = kvs_get(kv, key);
    uint64_t v = 0;
    if (!s || !*s)
        return def;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || v > (UINT64_MAX - 9) / 10)
            return def;
        v = v * 10 + (uint64_t)(*s - '0');
    }
    return v;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return RT_ERR;
        p += w;
        n -= (size_t)w;
    }
    return RT_OK;
}

int kvs_write(const char *dir, const char *name, const char *magic, unsigned version,
              const kvs_t *kv, char *err, size_t errlen)
{
    char text[KVS_FILE_MAX], tmp[4096], path[4096];
    int n = snprintf(text, sizeof text, "%s %u\n", magic, version);
    for (unsigned i = 0; i < kv->n && n > 0 && (size_t)n < sizeof text; i++)
        n += snprintf(text + n, sizeof text - (size_t)n, "%s %s\n", kv->key[i], kv->val[i]);
    if (n <= 0 || (size_t)n + 32 > sizeof text)
        return rt_errf(err, errlen, "%s/%s: state too large", dir, name);
    n += snprintf(text + n, sizeof text - (size_t)n, "checksum %016" PRIx64 "\n",
                  (uint64_t)XXH64(text, (size_t)n, 0));
    if ((size_t)snprintf(tmp, sizeof tmp, "%s/%s.tmp", dir, name) >= sizeof tmp ||
        (size_t)snprintf(path, sizeof path, "%s/%s", dir, name) >= sizeof path)
        return rt_errf(err, errlen, "%s/%s: path too long", dir, name);

    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd < 0)
        return rt_errf(err, errlen, "%s: create: %s", tmp, strerror(errno));
    if (write_all(fd, text, (size_t)n) != RT_OK || fdatasync(fd) != 0) {
        int e = errno;
        close(fd);
        unlink(tmp);
        return rt_errf(err, errlen, "%s: write: %s", tmp, strerror(e));
    }
    close(fd);
    if (rename(tmp, path) != 0)
        return rt_errf(err, errlen, "%s: replace: %s", path, strerror(errno));
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0 || fsync(dfd) != 0) {
        int e = errno;
        if (dfd >= 0)
            close(dfd);
        return rt_errf(err, errlen, "%s: sync folder: %s", dir, strerror(e));
    }
    close(dfd);
    return RT_OK;
}

int kvs_read(const char *dir, const char *name, const char *magic, unsigned version, kvs_t *kv,
             char *err, size_t errlen)
{
    char text[KVS_FILE_MAX + 1], path[4096];
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, name) >= sizeof path)
        return rt_errf(err, errlen, "%s/%s: path too long", dir, name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return rt_errf(err, errlen, "%s: %s", path, strerror(errno));
    size_t got = 0;
    for (;;) {
        ssize_t r = read(fd, text + got, sizeof text - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = errno;
            close(fd);
            return rt_errf(err, errlen, "%s: read: %s", path, strerror(e));
        }
        if (r == 0 || got + (size_t)r == sizeof text) {
            got += (size_t)r;
            break;
        }
        got += (size_t)r;
    }
    close(fd);
    if (got > KVS_FILE_MAX)
        return rt_errf(err, errlen, "%s: too large to be a state file", path);
    text[got] = '\0';

    char *ck = strstr(text, "checksum ");
    while (ck && ck != text && ck[-1] != '\n')
        ck = strstr(ck + 1, "checksum ");
    uint64_t sum = 0;
    if (!ck || sscanf(ck, "checksum %" SCNx64, &sum) != 1 ||
        sum != XXH64(text, (size_t)(ck - text), 0)) {
        errno = EINVAL;
        return rt_errf(err, errlen, "%s: checksum missing or wrong (damaged state file)", path);
    }
    *ck = '\0';
    char m[64];
    unsigned v = 0;
    if (sscanf(text, "%63s %u", m, &v) != 2 || strcmp(m, magic) != 0 || v != version) {
        errno = EINVAL;
        return rt_errf(err, errlen, "%s: not a %s %u file", path, magic, version);
    }
    kv->n = 0;
    for (char *line = strchr(text, '\n'); line && line[1]; line = strchr(line + 1, '\n')) {
        char *k = line + 1, *end = strchr(k, '\n');
        if (!end)
            break;
        char *sp = memchr(k, ' ', (size_t)(end - k));
        if (!sp)
            continue;
        *sp = '\0';
        *end = '\0';
        int rc = kvs_set(kv, k, sp + 1);
        *end = '\n';
        line = end - 1; /* continue from this line's newline */
        if (rc != RT_OK) {
            errno = EINVAL;
            return rt_errf(err, errlen, "%s: bad line for key '%s'", path, k);
        }
    }
    return RT_OK;
}
