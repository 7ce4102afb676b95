/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * main.c: nodectl, the operator's console of secondsite.
 *
 *   nodectl [--conf FILE] [--json] COMMAND [ARGS...]
 *
 * This file holds the global options and the command table; each command
 * lives in its own file (cmd_*.c) and is one row here. The top-level man page
 * and "nodectl help" are generated from the table. Global options come
 * before the command; --json is also accepted after it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nodectl.h"

static int cmd_help(ctl_t *ctl, int argc, char **argv);

/* The commands. Add a row (and a cmd_*.c file) to add a command. */
static const ctl_cmd_t commands[] = {
    {"init", "DIR [--site NAME] [--force]",
     "create the site CA and an admin certificate for this console",
     "DESCRIPTION\n"
     "    Creates DIR (mode 0700) if needed and writes the site CA, DIR/ca.crt and\n"
     "    DIR/ca.key (ECC P-256, self-signed, CA:TRUE, valid 10 years), and an admin\n"
     "    certificate for this console, DIR/admin.crt and DIR/admin.key (CN=admin,\n"
     "    OU=admin, valid 3 years). Keys are written with mode 0600. Every node's\n"
     "    certificate is then issued from DIR with nodectl cert issue.\n"
     "\n"
     "OPTIONS\n"
     "    --site NAME  name the CA \"NAME CA\" (default: secondsite)\n"
     "    --force      replace an existing CA and admin certificate; every\n"
     "                 certificate the old CA issued stops being accepted\n"
     "    --json       print the paths written as one JSON object\n"
     "    -h, --help   show this page\n",
     ctl_cmd_init, NULL},
    {"cert", NULL, "issue, show and verify certificates of the site CA", NULL, NULL,
     ctl_cert_cmds},
    {"status", NULL, "every pair: state, RPO lag, backlog, cache, link", ctl_status_help,
     ctl_cmd_status, NULL},
    {"pairs", NULL, "list the protection pairs", ctl_pairs_help, ctl_cmd_pairs, NULL},
    {"pair", NULL, "show one protection pair", NULL, NULL, ctl_pair_cmds},
    {"wait", "PAIR (--state S | --drained) [--timeout SECONDS]",
     "block until a pair reaches a state, or until it is drained", ctl_wait_help, ctl_cmd_wait,
     NULL},
    {"trace", "--out DIR", "fetch the node's trace files into DIR", ctl_trace_help,
     ctl_cmd_trace, NULL},
    {"restore", "--offline DIR --pair PAIR [--point P] --out IMG",
     "rebuild one disk image from a master target's folder, no daemon running",
     ctl_restore_help, ctl_cmd_restore, NULL},
    {"call", "CMD [ARG...]", "send one management command, print the node's JSON answer",
     ctl_call_help, ctl_cmd_call, NULL},
    {"help", "[COMMAND [SUBCOMMAND]]", "show the manual of nodectl or of one command", NULL,
     cmd_help, NULL},
    {NULL, NULL, NULL, NULL, NULL, NULL},
};

static const char page_head[] =
    "NAME\n"
    "    nodectl - the operator's console of secondsite\n"
    "\n"
    "SYNOPSIS\n"
    "    nodectl [--conf FILE] [--timeout S] [--json] COMMAND [ARGS...]\n"
    "    nodectl COMMAND --help\n"
    "\n"
    "DESCRIPTION\n"
    "    nodectl sets up a site (its CA and certificates) and is the console of\n"
    "    the nodes: status, pairs, wait and trace talk to a node's management\n"
    "    endpoint over mutual TLS 1.3, with the endpoint and certificates named\n"
    "    by the console file (--conf FILE or NODECTL_CONF).\n"
    "\n"
    "COMMANDS\n";

static const char page_options[] =
    "OPTIONS\n"
    "    --conf FILE  the console file that says how to reach a node: [console]\n"
    "                 endpoint, [tls] ca, cert, key (default: $NODECTL_CONF)\n"
    "    --timeout S  wait at most S seconds for the node (to connect, and for\n"
    "                 each answer; default: [console] timeout, else 10)\n"
    "    --json       one JSON document on stdout instead of text\n"
    "    -h, --help   show this page\n";

static void print_rows(const ctl_cmd_t *t, const char *prefix)
{
    for (; t->name; t++) {
        char head[96];
        if (t->sub) {
            char p[64];
            snprintf(p, sizeof p, "%s%s ", prefix, t->name);
            print_rows(t->sub, p);
            continue;
        }
        snprintf(head, sizeof head, "%s%s%s%s", prefix, t->name, t->args ? " " : "",
                 t->args ? t->args : "");
        printf("    %s\n        %s\n", head, t->summary);
    }
}

static int main_help(void)
{
    fputs(page_head, stdout);
    print_rows(commands, "");
    printf("\n%s\n%s\n%s", page_options, ctl_environment_text, ctl_exit_status_text);
    return CTL_EXIT_OK;
}

static const ctl_cmd_t *find(const ctl_cmd_t *t, const char *name)
{
    for (; t->name; t++)
        if (strcmp(t->name, name) == 0)
            return t;
    return NULL;
}

static bool is_help(const char *a)
{
    return strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0;
}

/* Run argv[0] from table @t; @ctl->path holds the names so far. */
static int dispatch(ctl_t *ctl, const ctl_cmd_t *t, int argc, char **argv)
{
    const ctl_cmd_t *c = find(t, argv[0]);
    size_t n = strlen(ctl->path);

    if (!c)
        return ctl_usage(ctl, "unknown command '%s'", argv[0]);
    snprintf(ctl->path + n, sizeof ctl->path - n, "%s%s", n ? " " : "", c->name);
    ctl->cmd = c;
    if (!c->sub)
        return c->run(ctl, argc, argv);
    if (argc < 2) {
        char names[128] = "";
        for (const ctl_cmd_t *s = c->sub; s->name; s++) {
            size_t k = strlen(names);
            snprintf(names + k, sizeof names - k, "%s%s", k ? ", " : "", s->name);
        }
        return ctl_usage(ctl, "missing command (one of: %s)", names);
    }
    if (is_help(argv[1]))
        return ctl_help(ctl);
    return dispatch(ctl, c->sub, argc - 1, argv + 1);
}

static int cmd_help(ctl_t *ctl, int argc, char **argv)
{
    ctl_t sub = {.conf = ctl->conf, .json = ctl->json};
    const ctl_cmd_t *t = commands;
    int i;

    if (argc < 2)
        return main_help();
    if (is_help(argv[1]))
        return ctl_help(ctl);
    for (i = 1; i < argc; i++) {
        const ctl_cmd_t *c = find(t, argv[i]);
        size_t n = strlen(sub.path);
        if (!c) {
            sub.cmd = NULL;
            return ctl_usage(ctl, "no command '%s'; nodectl --help lists them", argv[i]);
        }
        snprintf(sub.path + n, sizeof sub.path - n, "%s%s", n ? " " : "", c->name);
        sub.cmd = c;
        if (!c->sub)
            break;
        t = c->sub;
    }
    return ctl_help(&sub);
}

int main(int argc, char **argv)
{
    ctl_t ctl = {.conf = getenv("NODECTL_CONF")};
    int i;

    if (ctl.conf && !ctl.conf[0])
        ctl.conf = NULL;
    for (i = 1; i < argc && argv[i][0] == '-'; i++) {
        const char *a = argv[i];
        if (is_help(a))
            return main_help();
        if (strcmp(a, "--json") == 0) {
            ctl.json = true;
        } else if (strcmp(a, "--conf") == 0) {
            if (i + 1 >= argc)
                return ctl_usage(&ctl, "option '--conf' needs a FILE");
            ctl.conf = argv[++i];
        } else if (strncmp(a, "--conf=", 7) == 0) {
            ctl.conf = a + 7;
        } else if (strcmp(a, "--timeout") == 0 || strncmp(a, "--timeout=", 10) == 0) {
            const char *v = a[9] == '=' ? a + 10 : i + 1 < argc ? argv[++i] : NULL;
            char *end = NULL;
            ctl.timeout_s = v ? strtod(v, &end) : 0;
            if (!v || end == v || *end || !(ctl.timeout_s >= 0.1 && ctl.timeout_s <= 3600))
                return ctl_usage(&ctl, "option '--timeout' needs SECONDS, 0.1 to 3600");
        } else if (strcmp(a, "--") == 0) {
            i++;
            break;
        } else {
            return ctl_usage(&ctl, "unknown option '%s'", a);
        }
    }
    if (i >= argc)
        return ctl_usage(&ctl, "missing COMMAND");
    return dispatch(&ctl, commands, argc - i, argv + i);
}
