/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * cmd_call.c: nodectl call CMD [ARG...], one raw management request.
 *
 * The roles register their own management commands (nodes/mgmt) before
 * nodectl has a dedicated command for each; call sends any command with its
 * arguments and prints the node's JSON answer as it came, so a role's
 * command can be used and tested the day it exists. The node checks the
 * command, its arguments and the caller's certificate as for any request;
 * the exit code is the node's answer code.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "nodectl.h"

const char ctl_call_help[] =
    "DESCRIPTION\n"
    "    Sends command CMD with its arguments to the node's management endpoint\n"
    "    and prints the node's answer, one JSON document. For commands that have\n"
    "    no nodectl command of their own (nodectl call ping, nodectl call\n"
    "    trace-list); docs/MGMT.md lists what a node understands. Commands that\n"
    "    change anything need the admin certificate of nodectl init.\n"
    "\n"
    "OPTIONS\n"
    "    -h, --help   show this page (options after CMD are passed to the node)\n";

int ctl_cmd_call(ctl_t *ctl, int argc, char **argv)
{
    ctl_resp_t r;
    int rc;
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0))
        return ctl_help(ctl);
    if (argc < 2)
        return ctl_usage(ctl, "missing CMD, the management command (nodectl call ping)");
    if (argc - 2 > 6)
        return ctl_usage(ctl, "at most 6 arguments after CMD");
    ctl_conn_t *c = ctl_open(ctl, &rc);
    if (!c)
        return rc;
    if (ctl_call(c, argv[1], (unsigned)(argc - 2), (const char *const *)(argv + 2), &r) ==
        CTL_EXIT_OK)
        printf("%s\n", r.text);
    else
        rc = ctl_report(ctl, &r);
    ctl_resp_free(&r);
    ctl_disconnect(c);
    return rc;
}
