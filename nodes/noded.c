/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * noded.c: main of noded, the one binary every secondsite appliance runs.
 *
 * `noded -c FILE` reads and checks the node's INI file, opens its trace,
 * starts its link hub (listener and outbound links) and the roles the file
 * names, then runs the node's loop until SIGTERM or SIGINT, when every actor
 * finishes and the process exits 0. Exit codes follow the command-line
 * contract: 0 done, 1 the node failed, 2 bad usage or a bad config file;
 * every error is one line on stderr. The roles themselves (agent, ps, cs,
 * mt) and `--demo` arrive with later issues.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hub/hub.h"
#include "mgmt/mgmt.h"
#include "rt.h"

#define NODED_VERSION "0.1.0"

static const char usage_text[] =
    "NAME\n"
    "    noded - a secondsite node: replication roles as actors on one event loop\n"
    "\n"
    "SYNOPSIS\n"
    "    noded -c FILE\n"
    "    noded --demo DIR [--disks N] [--disk-size SIZE] [--init-only]\n"
    "    noded --help | --version\n"
    "\n"
    "DESCRIPTION\n"
    "    noded runs one node with the roles its configuration file names\n"
    "    (agent, ps, cs, mt), links to the other nodes of the site over mutual\n"
    "    TLS 1.3, and appends every state transition to its trace file. It runs\n"
    "    until SIGTERM or SIGINT, then stops its actors and exits.\n"
    "\n"
    "OPTIONS\n"
    "    -c, --config FILE  run the node described by the INI file FILE\n"
    "    --demo DIR         every role in one process on loopback (not built yet)\n"
    "    -h, --help         show this page\n"
    "    -V, --version      print the version\n"
    "\n"
    "FILES\n"
    "    FILE               [node] name, roles, memory, msg_slots, log_level;\n"
    "                       [tls] ca, cert, key (PEM, from nodectl init and\n"
    "                       nodectl cert issue); [listen] link = IP:PORT;\n"
    "                       [listen] mgmt = IP:PORT, the management endpoint\n"
    "                       that nodectl talks to;\n"
    "                       [peer NAME] address = IP:PORT, one per node to\n"
    "                       link to; [link] hb_interval, hb_timeout, backoff_min,\n"
    "                       backoff_max, sndq_high, max_payload; [trace] file,\n"
    "                       max, keep. Relative paths are relative to FILE.\n"
    "    [trace] file       the node's trace (default trace.pb), read it with\n"
    "                       nodetrace\n"
    "\n"
    "EXIT STATUS\n"
    "    0  stopped by SIGTERM or SIGINT after a clean shutdown\n"
    "    1  the node failed (certificates, listen address, shutdown deadline)\n"
    "    2  bad usage, or a configuration file with an error (one line naming\n"
    "       the file, the line and the key)\n";

/* one line on stderr, exit status 2 */
static int bad_usage(const char *what, const char *arg)
{
    fprintf(stderr, "noded: %s%s (see noded --help)\n", what, arg);
    return 2;
}

static int run(const char *path)
{
    char err[512];
    int rc = 1;
    rt_node_t *node = NULL;
    hub_t *hub = NULL;
    mgmt_t *mgmt = NULL;
    rt_conf_t *conf = rt_conf_load(path, err, sizeof err);
    if (!conf) {
        fprintf(stderr, "noded: %s\n", err);
        return 2;
    }
    const char *name = rt_conf_str(conf, "node", "name");
    if (!name) { /* a console file (nodectl's) has no [node] */
        fprintf(stderr, "noded: %s: [node] name: missing (a console file?)\n", path);
        rt_conf_free(conf);
        return 2;
    }
    rt_log_setup("noded", name, (rt_log_level_t)rt_conf_u64(conf, "node", "log_level"));
    node = rt_node_new(name, conf);
    if (!node)
        goto out; /* logged */
    hub = hub_new(node, conf, err, sizeof err);
    if (!hub) {
        rt_log(RT_LOG_ERR, "%s", err);
        goto out;
    }
    if (rt_conf_str(conf, "listen", "mgmt")) { /* the management endpoint, for nodectl */
        mgmt = mgmt_new(node, conf, err, sizeof err);
        if (!mgmt) {
            rt_log(RT_LOG_ERR, "%s", err);
            goto out;
        }
        mgmt_use_hub(mgmt, hub);
    }
    rt_log(RT_LOG_INFO, "node %s running (roles %s, config %s)", name,
           rt_conf_str(conf, "node", "roles"), path);
    if (rt_node_run(node) != RT_OK)
        goto out; /* the stop deadline passed: logged */
    rt_log(RT_LOG_INFO, "node %s stopped", name);
    rc = 0;
out:
    mgmt_free(mgmt);
    hub_free(hub);
    rt_node_free(node);
    rt_conf_free(conf);
    return rc;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"demo", required_argument, NULL, 'd'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    const char *config = NULL;
    bool demo = false;
    int c;

    opterr = 0;
    while ((c = getopt_long(argc, argv, ":c:hV", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            config = optarg;
            break;
        case 'd':
            demo = true;
            break;
        case 'h':
            fputs(usage_text, stdout);
            return 0;
        case 'V':
            printf("noded (secondsite) %s, link protocol %u\n", NODED_VERSION, RT_PROTO_VERSION);
            return 0;
        case ':':
            return bad_usage("this option needs an argument: ", argv[optind - 1]);
        default: {
            char opt[3] = {'-', (char)optopt, '\0'};
            return bad_usage("unknown option ", optopt ? opt : argv[optind - 1]);
        }
        }
    }
    if (optind < argc)
        return bad_usage("unexpected argument ", argv[optind]);
    if (demo) {
        fprintf(stderr, "noded: --demo: not built yet\n");
        return 1;
    }
    if (!config)
        return bad_usage("nothing to do: give -c FILE", "");
    return run(config);
}
