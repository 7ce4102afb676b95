/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * util.c: the console's shared helpers: the one-line error and usage
 * messages, option parsing over a command's arguments, the generated man
 * pages, and the bits of JSON output. Kept apart from the commands so that
 * every command reports errors and prints help the same way.
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nodectl.h"

const char ctl_environment_text[] =
    "ENVIRONMENT\n"
    "    NODECTL_CONF  the console file nodectl uses to reach a node's management\n"
    "                  endpoint when --conf is not given: [console] endpoint =\n"
    "                  IP:PORT (and timeout = SECONDS), [tls] ca, cert, key (the\n"
    "                  admin certificate from nodectl init). A node's own file\n"
    "                  works too: its [listen] mgmt is the endpoint.\n";

const char ctl_exit_status_text[] =
    "EXIT STATUS\n"
    "    0  success\n"
    "    1  the operation failed (one line on stderr says why)\n"
    "    2  bad usage (one line on stderr says what is wrong and what to do)\n";

static void vline(const char *path, const char *fmt, va_list ap)
{
    char msg[1024];

    vsnprintf(msg, sizeof msg, fmt, ap);
    for (char *p = msg; *p; p++) /* one line, whatever the message holds */
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    if (path && path[0])
        fprintf(stderr, "nodectl: %s: %s", path, msg);
    else
        fprintf(stderr, "nodectl: %s", msg);
}

int ctl_usage(const ctl_t *ctl, const char *fmt, ...)
{
    const ctl_cmd_t *c = ctl->cmd;
    va_list ap;

    va_start(ap, fmt);
    vline(ctl->path, fmt, ap);
    va_end(ap);
    if (c && c->args)
        fprintf(stderr, " (usage: nodectl %s %s; see nodectl %s --help)\n", ctl->path, c->args,
                ctl->path);
    else if (c)
        fprintf(stderr, " (see nodectl %s --help)\n", ctl->path);
    else
        fprintf(stderr, " (see nodectl --help)\n");
    return CTL_EXIT_USAGE;
}

int ctl_fail(const ctl_t *ctl, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vline(ctl->path, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return CTL_EXIT_FAIL;
}

int ctl_help(const ctl_t *ctl)
{
    const ctl_cmd_t *c = ctl->cmd;

    printf("NAME\n    nodectl %s - %s\n\nSYNOPSIS\n", ctl->path, c->summary);
    if (c->sub) {
        for (const ctl_cmd_t *s = c->sub; s->name; s++)
            printf("    nodectl [--conf FILE] [--json] %s %s %s\n", ctl->path, s->name,
                   s->args ? s->args : "");
        printf("\nCOMMANDS\n");
        for (const ctl_cmd_t *s = c->sub; s->name; s++)
            printf("    %-8s %s\n", s->name, s->summary);
        printf("\n    nodectl %s COMMAND --help shows the page of one command.\n", ctl->path);
    } else {
        printf("    nodectl [--conf FILE] [--json] %s%s%s\n", ctl->path, c->args ? " " : "",
               c->args ? c->args : "");
    }
    if (c->help)
        printf("\n%s", c->help);
    printf("\n%s\n%s", ctl_environment_text, ctl_exit_status_text);
    return CTL_EXIT_OK;
}

int ctl_getopt(ctl_t *ctl, int argc, char **argv, const char *shortopts,
               const struct option *longopts, bool *first)
{
    char opts[64];
    int c;

    if (*first) {
        optind = 0; /* GNU: full re-initialisation for a new argv */
        *first = false;
    }
    opterr = 0;
    snprintf(opts, sizeof opts, ":%s", shortopts);
    for (;;) {
        c = getopt_long(argc, argv, opts, longopts, NULL);
        switch (c) {
        case CTL_OPT_HELP:
            ctl_help(ctl);
            return CTL_GETOPT_HELP;
        case CTL_OPT_JSON:
            ctl->json = true;
            continue;
        case '?':
            if (optopt)
                ctl_usage(ctl, "unknown option '-%c'", optopt);
            else
                ctl_usage(ctl, "unknown option '%s'", argv[optind - 1]);
            return CTL_GETOPT_USAGE;
        case ':':
            ctl_usage(ctl, "option '%s' needs a value", argv[optind - 1]);
            return CTL_GETOPT_USAGE;
        default:
            return c;
        }
    }
}

bool ctl_parse_uint(const char *s, unsigned min, unsigned max, unsigned *out)
{
    char *end;
    unsigned long v;

    if (!s || *s < '0' || *s > '9')
        return false;
    errno = 0;
    v = strtoul(s, &end, 10);
    if (errno || *end || v < min || v > max)
        return false;
    *out = (unsigned)v;
    return true;
}

void ctl_json_str(FILE *f, const char *s)
{
    rt_json_fputs(f, s, 0); /* the project's one escaper (runtime/rt_json.c) */
}

const char *ctl_iso_time(long long t, char *buf, size_t len)
{
    time_t tt = (time_t)t;
    struct tm tm;

    if (!gmtime_r(&tt, &tm) || strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(buf, len, "%lld", t);
    return buf;
}
