/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * nt_read.c: reading trace files: the record decoder, whole files, rotated
 * siblings, and followed (live) files.
 *
 * A record is a varint length followed by that many bytes of an encoded
 * ss_TraceEvent. The decoder tells three cases apart, because the viewer
 * must say exactly where a file stopped: a complete record (RT_OK), bytes
 * that end inside a record (RT_AGAIN: a truncated file, or a live file whose
 * writer is mid-record), and a record that can never decode (RT_ERR: a bad
 * varint, an absurd length, or a body nanopb rejects). It is the libFuzzer
 * target's subject (tests/fuzz/fuzz_trace_reader.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <pb_decode.h>

#include "nodetrace.h"

/* ---- one record ----------------------------------------------------------------- */

int nt_decode_next(const uint8_t *p, size_t n, size_t *used, ss_TraceEvent *ev, char *why,
                   size_t whylen)
{
    uint64_t len = 0;
    size_t i;
    for (i = 0; i < 10; i++) {
        if (i == n)
            return RT_AGAIN;
        len |= (uint64_t)(p[i] & 0x7f) << (7 * i);
        if (!(p[i] & 0x80))
            break;
    }
    if (i == 10) {
        snprintf(why, whylen, "corrupt record: bad length varint");
        return RT_ERR;
    }
    i++;
    if (len > NT_REC_MAX) {
        snprintf(why, whylen, "corrupt record: length %llu exceeds %u",
                 (unsigned long long)len, NT_REC_MAX);
        return RT_ERR;
    }
    if (n - i < len)
        return RT_AGAIN;
    pb_istream_t st = pb_istream_from_buffer(p + i, (size_t)len);
    if (!pb_decode(&st, ss_TraceEvent_fields, ev)) {
        snprintf(why, whylen, "corrupt record: %s", PB_GET_ERROR(&st));
        return RT_ERR;
    }
    *used = i + (size_t)len;
    return RT_OK;
}

int nt_load_buf(nt_set_t *s, const uint8_t *p, size_t n, nt_stop_t *stop)
{
    size_t off = 0;
    ss_TraceEvent ev;
    memset(stop, 0, sizeof *stop);
    while (off < n) {
        size_t used = 0;
        int rc = nt_decode_next(p + off, n - off, &used, &ev, stop->why, sizeof stop->why);
        if (rc == RT_AGAIN) {
            snprintf(stop->why, sizeof stop->why, "truncated record");
            rc = RT_ERR;
        }
        if (rc != RT_OK) {
            stop->stopped = true;
            stop->at = off;
            return RT_OK;
        }
        if (nt_set_add(s, &ev) != RT_OK)
            return RT_ERR;
        stop->records++;
        off += used;
    }
    return RT_OK;
}

/* ---- whole files ----------------------------------------------------------------- */

#define NT_CHUNK (1u << 20) /* files are read in chunks: memory stays the records' */

int nt_load_file(nt_set_t *s, const char *path, nt_stop_t *stop)
{
    uint8_t *buf = malloc(NT_CHUNK);
    size_t len = 0;
    uint64_t base = 0; /* file offset of buf[0] */
    bool eof = false;
    int rc = RT_ERR;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ss_TraceEvent ev;
    memset(stop, 0, sizeof *stop);
    if (fd < 0) {
        fprintf(stderr, "nodetrace: %s: %s\n", path, strerror(errno));
        goto out;
    }
    if (!buf) {
        fprintf(stderr, "nodetrace: %s: out of memory\n", path);
        goto out;
    }
    while (!eof) {
        ssize_t r = read(fd, buf + len, NT_CHUNK - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            fprintf(stderr, "nodetrace: %s: read: %s\n", path, strerror(errno));
            goto out;
        }
        eof = r == 0;
        len += (size_t)r;
        size_t pos = 0, used = 0;
        while (pos < len) {
            int d = nt_decode_next(buf + pos, len - pos, &used, &ev, stop->why, sizeof stop->why);
            if (d == RT_AGAIN && !eof)
                break; /* the rest of the record is in the next chunk */
            if (d != RT_OK) {
                if (d == RT_AGAIN)
                    snprintf(stop->why, sizeof stop->why, "truncated record");
                stop->stopped = true;
                stop->at = base + pos;
                rc = RT_OK;
                goto out;
            }
            if (nt_set_add(s, &ev) != RT_OK) {
                fprintf(stderr, "nodetrace: %s: out of memory\n", path);
                goto out;
            }
            stop->records++;
            pos += used;
        }
        memmove(buf, buf + pos, len - pos);
        len -= pos;
        base += pos;
    }
    rc = RT_OK;
out:
    free(buf);
    if (fd >= 0)
        close(fd);
    return rc;
}

size_t nt_rotated(const char *path, char **out, size_t max)
{
    size_t n = 0;
    unsigned last = 0;
    char name[4096];
    struct stat st;
    /* PATH.1, PATH.2, ... up to the first gap; oldest (highest) first */
    for (unsigned k = 1; k <= max && k < 10000; k++) {
        snprintf(name, sizeof name, "%s.%u", path, k);
        if (stat(name, &st) != 0 || !S_ISREG(st.st_mode))
            break;
        last = k;
    }
    for (unsigned k = last; k >= 1 && n < max; k--) {
        snprintf(name, sizeof name, "%s.%u", path, k);
        out[n] = strdup(name);
        if (out[n])
            n++;
    }
    return n;
}

/* ---- followed files ----------------------------------------------------------------- */

int nt_follow_open(nt_follow_t *f, const char *path, uint64_t from)
{
    memset(f, 0, sizeof *f);
    f->path = path;
    f->fd = -1;
    f->cap = 1 << 16;
    f->buf = malloc(f->cap);
    if (!f->buf)
        return RT_ERR;
    f->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (f->fd >= 0) {
        struct stat st;
        if (fstat(f->fd, &st) == 0) {
            f->ino = st.st_ino;
            f->dev = st.st_dev;
        }
        if (lseek(f->fd, (off_t)from, SEEK_SET) == (off_t)from)
            f->off = from;
        else
            lseek(f->fd, 0, SEEK_SET);
    }
    return RT_OK;
}

void nt_follow_close(nt_follow_t *f)
{
    if (f->fd >= 0)
        close(f->fd);
    free(f->buf);
    f->buf = NULL;
    f->fd = -1;
}

/* decode what is buffered; keep a partial record for the next poll */
static long follow_decode(nt_follow_t *f, nt_set_t *s)
{
    size_t pos = 0;
    long added = 0;
    ss_TraceEvent ev;
    char why[128];
    while (!f->broken && pos < f->len) {
        size_t used = 0;
        int rc = nt_decode_next(f->buf + pos, f->len - pos, &used, &ev, why, sizeof why);
        if (rc == RT_AGAIN)
            break;
        if (rc == RT_ERR) {
            fprintf(stderr, "nodetrace: %s: stopped at byte %llu: %s (record %llu)\n", f->path,
                    (unsigned long long)(f->off + pos), why,
                    (unsigned long long)f->records + 1);
            f->broken = true;
            break;
        }
        if (nt_set_add(s, &ev) != RT_OK)
            return -1;
        f->records++;
        added++;
        pos += used;
    }
    if (f->broken)
        pos = f->len;
    memmove(f->buf, f->buf + pos, f->len - pos);
    f->len -= pos;
    f->off += pos;
    return added;
}

/* read everything @f->fd has now */
static long follow_drain(nt_follow_t *f, nt_set_t *s)
{
    long total = 0;
    for (int round = 0; round < 4096; round++) {
        if (f->len == f->cap) {
            /* a record never exceeds NT_REC_MAX, so a full buffer decodes to room */
            long a = follow_decode(f, s);
            if (a < 0)
                return -1;
            total += a;
            if (f->len == f->cap)
                break;
        }
        ssize_t r = read(f->fd, f->buf + f->len, f->cap - f->len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        f->len += (size_t)r;
    }
    long a = follow_decode(f, s);
    return a < 0 ? -1 : total + a;
}

long nt_follow_poll(nt_follow_t *f, nt_set_t *s)
{
    long total = 0;
    struct stat st;
    bool exists = stat(f->path, &st) == 0;

    if (f->fd >= 0) {
        long a = follow_drain(f, s);
        if (a < 0)
            return -1;
        total += a;
        if (exists && (st.st_ino != f->ino || st.st_dev != f->dev)) {
            /* rotated: the old file is drained, continue with the new one */
            close(f->fd);
            f->fd = -1;
        } else if (exists && fstat(f->fd, &st) == 0 &&
                   (uint64_t)st.st_size < f->off + f->len) {
            /* truncated in place: start over */
            lseek(f->fd, 0, SEEK_SET);
            f->off = 0;
            f->len = 0;
            f->broken = false;
        }
    }
    if (f->fd < 0 && exists) {
        f->fd = open(f->path, O_RDONLY | O_CLOEXEC);
        if (f->fd < 0)
            return total;
        f->ino = st.st_ino;
        f->dev = st.st_dev;
        f->off = 0;
        f->len = 0;
        f->broken = false;
        long a = follow_drain(f, s);
        if (a < 0)
            return -1;
        total += a;
    }
    return total;
}
