/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * rt_log.c: one-line logging to stderr.
 *
 * Every line is "PROG[NODE]: level: message" and goes out in a single
 * write(2), so lines from several processes sharing a terminal or a log file
 * never interleave mid-line. Lines above the configured level are dropped
 * before formatting. The prefix is process-wide: one process runs one node.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "rt.h"

#define RT_LOG_LINE 1024

static char log_prog[32] = "ss";
static char log_node[RT_NAME_MAX];
static rt_log_level_t log_level = RT_LOG_INFO;

static const char *const level_names[] = {"err", "warn", "info", "debug"};

void rt_log_setup(const char *prog, const char *node, rt_log_level_t level)
{
    snprintf(log_prog, sizeof log_prog, "%s", prog ? prog : "ss");
    snprintf(log_node, sizeof log_node, "%s", node ? node : "");
    log_level = level;
}

int rt_log_level_parse(const char *s, rt_log_level_t *out)
{
    for (unsigned i = 0; i < sizeof level_names / sizeof level_names[0]; i++) {
        if (s && strcmp(s, level_names[i]) == 0) {
            *out = (rt_log_level_t)i;
            return RT_OK;
        }
    }
    return RT_ERR;
}

void rt_log(rt_log_level_t level, const char *fmt, ...)
{
    if (level > log_level || (unsigned)level > RT_LOG_DEBUG)
        return;
    int saved = errno; /* callers often log and then look at errno */
    char line[RT_LOG_LINE];
    int n;
    if (log_node[0])
        n = snprintf(line, sizeof line, "%s[%s]: %s: ", log_prog, log_node, level_names[level]);
    else
        n = snprintf(line, sizeof line, "%s: %s: ", log_prog, level_names[level]);
    if (n < 0)
        n = 0;
    size_t off = (size_t)n < sizeof line ? (size_t)n : sizeof line - 1;
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + off, sizeof line - off, fmt, ap);
    va_end(ap);
    if (m < 0)
        m = 0;
    off += (size_t)m;
    if (off > sizeof line - 2) { /* truncated: mark it and keep the newline */
        off = sizeof line - 2;
        memcpy(line + off - 3, "...", 3);
    }
    while (off > 0 && line[off - 1] == '\n') /* one line, whatever the caller gave */
        off--;
    line[off++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, off);
    (void)w; /* nowhere to report a failed log write */
    errno = saved;
}

/* ---- error values ------------------------------------------------------------ */

int rt_errf(char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return RT_ERR;
}

bool rt_name_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n >= RT_NAME_MAX || s[0] == '.' || s[0] == '-')
        return false;
    return strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") == n;
}
