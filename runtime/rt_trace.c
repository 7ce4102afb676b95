/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * rt_trace.c: the node's trace file writer.
 *
 * Every chart transition becomes one ss_TraceEvent appended to the trace
 * file as a varint length followed by the encoded message (nanopb's
 * delimited form), so a reader needs nothing but the file, and a record cut
 * short by a crash is detectable as a length running past the end.
 *
 * One write(2) per record on an O_APPEND descriptor and no fsync: tracing
 * must never slow the data path or block it on a full disk. A failed write
 * is counted and logged at most once a minute; a short write is cut back
 * off the file so that later records stay readable. When the file would
 * pass max_bytes it is rotated: path.(k-1) -> path.k ... path -> path.1,
 * keeping `keep` old files; each file starts with a whole record.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <pb_encode.h>

#include "rt.h"
#include "trace.pb.h"

#define RT_TRACE_LOG_EVERY_US (60u * 1000000u)

struct rt_trace {
    int fd;
    char *path;
    char node[RT_NAME_MAX];
    uint64_t max_bytes;     /* rotate when a record would pass this; 0 = never */
    int keep;               /* rotated files kept */
    uint64_t size;          /* current file size */
    uint64_t seq;           /* next record number */
    uint64_t failures;      /* writes that failed */
    uint64_t failures_logged;
    uint64_t last_log_us;   /* monotonic time of the last failure line, 0 = never */
};

/* ---- helpers ---------------------------------------------------------------- */

/* copy @src into @dst[@size], cutting at a UTF-8 character boundary */
static void copy_trunc(char *dst, size_t size, const char *src)
{
    if (!src) {
        dst[0] = '\0';
        return;
    }
    size_t n = strlen(src);
    if (n >= size) {
        n = size - 1;
        /* do not split a multi-byte character: back off over continuation bytes */
        while (n > 0 && ((unsigned char)src[n] & 0xC0u) == 0x80u)
            n--;
    }
    memcpy(dst, src, n);
    dst[n] = '\0';
}

/* (re)open the file; @loud logs a failure (at open time, not per record) */
static int trace_openfd(rt_trace_t *t, bool loud)
{
    t->fd = open(t->path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (t->fd < 0) {
        if (loud)
            rt_log(RT_LOG_ERR, "trace %s: cannot open: %s", t->path, strerror(errno));
        return RT_ERR;
    }
    struct stat st;
    t->size = fstat(t->fd, &st) == 0 ? (uint64_t)st.st_size : 0;
    return RT_OK;
}

static void trace_failed(rt_trace_t *t, const char *what, int err)
{
    t->failures++;
    uint64_t now = rt_mono_us();
    if (t->last_log_us == 0 || now - t->last_log_us >= RT_TRACE_LOG_EVERY_US) {
        rt_log(RT_LOG_WARN, "trace %s: %s: %s (%llu record(s) lost so far)", t->path, what,
               strerror(err), (unsigned long long)t->failures);
        t->last_log_us = now ? now : 1;
        t->failures_logged = t->failures;
    }
}

/* path.(k-1) -> path.k ... path -> path.1, then a fresh path */
static void trace_rotate(rt_trace_t *t)
{
    size_t len = strlen(t->path) + 16;
    char *from = malloc(len), *to = malloc(len);
    if (!from || !to)
        goto out;
    close(t->fd);
    t->fd = -1;
    if (t->keep <= 0) {
        unlink(t->path);
    } else {
        for (int k = t->keep; k > 1; k--) {
            snprintf(from, len, "%s.%d", t->path, k - 1);
            snprintf(to, len, "%s.%d", t->path, k);
            if (rename(from, to) != 0 && errno != ENOENT)
                trace_failed(t, "rotate", errno);
        }
        snprintf(to, len, "%s.1", t->path);
        if (rename(t->path, to) != 0)
            trace_failed(t, "rotate", errno);
    }
    if (trace_openfd(t, false) != RT_OK)
        trace_failed(t, "reopen", errno);
out:
    free(from);
    free(to);
}

/* ---- API -------------------------------------------------------------------- */

rt_trace_t *rt_trace_open(const char *path, const char *node, uint64_t max_bytes, int keep)
{
    rt_trace_t *t = calloc(1, sizeof *t);
    if (!t || !(t->path = strdup(path))) {
        rt_log(RT_LOG_ERR, "trace %s: out of memory", path);
        goto fail;
    }
    snprintf(t->node, sizeof t->node, "%s", node ? node : "");
    t->max_bytes = max_bytes;
    t->keep = keep < 0 ? 0 : keep;
    if (trace_openfd(t, true) != RT_OK)
        goto fail;
    return t;
fail:
    if (t)
        free(t->path);
    free(t);
    return NULL;
}

void rt_trace_close(rt_trace_t *t)
{
    if (!t)
        return;
    if (t->failures > t->failures_logged)
        rt_log(RT_LOG_WARN, "trace %s: %llu record(s) lost in total", t->path,
               (unsigned long long)t->failures);
    if (t->fd >= 0)
        close(t->fd);
    free(t->path);
    free(t);
}

void rt_trace_emit(rt_trace_t *t, const rt_trace_rec_t *r)
{
    if (!t)
        return;
    ss_TraceEvent ev = ss_TraceEvent_init_zero;
    ev.time_us = rt_now_us();
    ev.seq = t->seq++;
    copy_trunc(ev.node, sizeof ev.node, t->node);
    copy_trunc(ev.actor, sizeof ev.actor, r->actor);
    copy_trunc(ev.machine, sizeof ev.machine, r->machine);
    copy_trunc(ev.from, sizeof ev.from, r->from);
    copy_trunc(ev.event, sizeof ev.event, r->event);
    copy_trunc(ev.to, sizeof ev.to, r->to);
    copy_trunc(ev.detail, sizeof ev.detail, r->detail);
    copy_trunc(ev.peer, sizeof ev.peer, r->peer);
    copy_trunc(ev.pair, sizeof ev.pair, r->pair);
    ev.clock_offset_us = r->clock_offset_us;
    ev.refused = r->refused;

    uint8_t buf[ss_TraceEvent_size + 10];
    pb_ostream_t os = pb_ostream_from_buffer(buf, sizeof buf);
    if (!pb_encode_ex(&os, ss_TraceEvent_fields, &ev, PB_ENCODE_DELIMITED)) {
        trace_failed(t, "encode", EINVAL); /* cannot happen: every field is bounded */
        return;
    }
    if (t->fd >= 0 && t->max_bytes && t->size > 0 && t->size + os.bytes_written > t->max_bytes)
        trace_rotate(t);
    if (t->fd < 0 && trace_openfd(t, false) != RT_OK) {
        trace_failed(t, "open", errno);
        return;
    }
    ssize_t n = write(t->fd, buf, os.bytes_written);
    if (n == (ssize_t)os.bytes_written) {
        t->size += (uint64_t)n;
        return;
    }
    int err = n < 0 ? errno : ENOSPC;
    if (n > 0 && ftruncate(t->fd, (off_t)t->size) != 0) /* keep the file parseable */
        t->size += (uint64_t)n; /* could not cut it: the reader sees a torn record */
    trace_failed(t, "write", err);
}
