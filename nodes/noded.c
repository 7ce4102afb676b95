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

#include "agent/agent.h"
#include "demo/demo.h"
#include "hub/hub.h"
#include "mgmt/mgmt.h"
#include "mt/mt.h"
#include "ps/ps.h"
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
    "    --demo DIR         the embedded default: both appliances (primary: agent +\n"
    "                       process server; secondary: master target) in one\n"
    "                       process on loopback, with N protected disks backed by\n"
    "                       sparse images in DIR. Writes the site CA, the\n"
    "                       certificates, primary.ini, secondary.ini, nodectl.ini\n"
    "                       and DIR/demo.env (source it), then serves until\n"
    "                       SIGTERM. A DIR that already holds a demo is resumed.\n"
    "    --disks N          protected disks in a new demo (1..16, default 1)\n"
    "    --disk-size SIZE   size of each disk in a new demo (default 256M)\n"
    "    --init-only        write the demo folder and exit, so that the two\n"
    "                       appliances can run apart: noded -c DIR/primary.ini\n"
    "                       and noded -c DIR/secondary.ini\n"
    "    -h, --help         show this page\n"
    "    -V, --version      print the version\n"
    "\n"
    "FILES\n"
    "    FILE is an INI file; relative paths in it are relative to its folder.\n"
    "    An unknown section or key, or a bad value, is one error line naming\n"
    "    the file, the line and the key, and noded exits 2.\n"
    "    [node]       name (the node's certificate CN), roles (agent, ps, cs,\n"
    "                 mt), data_dir (.), memory (64M: every buffer of the node),\n"
    "                 msg_slots (4096), log_level (err|warn|info|debug),\n"
    "                 workers (CPUs - 1, at least 1: threads for lz4 and\n"
    "                 checksums; 0 runs them on the event loop)\n"
    "    [tls]        ca, cert, key: PEM files from nodectl init and nodectl\n"
    "                 cert issue; every link is mutual TLS 1.3 against ca\n"
    "    [listen]     link = IP:PORT for other nodes; mgmt = IP:PORT, the\n"
    "                 management endpoint that nodectl talks to\n"
    "    [peer NAME]  address = IP:PORT of node NAME, one section per peer\n"
    "    [link]       hb_interval (1 s), hb_timeout (5 s), backoff_min (0.1 s),\n"
    "                 backoff_max (1 s), sndq_high (8M), max_payload (8M)\n"
    "    [trace]      file (trace.pb), max (16M), keep (3): the state trace,\n"
    "                 read it with nodetrace\n"
    "    [agent]      log_max (256M): the write log; when full, the pair\n"
    "                 falls back to its dirty bitmap (bitmap_mode)\n"
    "    [disk NAME]  path (the backing image or device), listen (IP:PORT of\n"
    "                 its NBD export), export (NAME), pair (NAME), group\n"
    "    [ps]         dir (DATA/ps), cache_quota (1G), bandwidth (bytes/s per\n"
    "                 pair, 0 = unlimited), compress (true: lz4), cache\n"
    "                 (auto: relay when this node runs the agent too, else\n"
    "                 spool; spool: ack the agent once data is fsync'd in the\n"
    "                 spool; relay: no fsync here, ack once the master target\n"
    "                 has it, the agent's log holds the backlog)\n"
    "    [mt]         dir (DATA/mt), retention (24h), checkpoint (60s)\n"
    "    Addresses are numeric (IPv4 a.b.c.d:port or [IPv6]:port).\n"
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

/* ---- one appliance: a node, its hub, its endpoint and its roles ---------------- */

typedef struct appliance {
    char path[4096];  /* its config file */
    rt_conf_t *conf;
    rt_node_t *node;
    hub_t *hub;
    mgmt_t *mgmt;
    ps_t *ps;
    mt_t *mt;
    agent_t *agent;
} appliance_t;

static void appliance_close(appliance_t *a)
{
    mgmt_free(a->mgmt);
    agent_free(a->agent);
    ps_free(a->ps);
    mt_free(a->mt);
    hub_free(a->hub);
    rt_node_free(a->node);
    rt_conf_free(a->conf);
    memset(a, 0, sizeof *a);
}

/* load @path and build the appliance on @loop (NULL: its own).
 * @return 0, 1 the node failed (logged), 2 a bad config (one line on stderr) */
static int appliance_open(appliance_t *a, const char *path, struct ev_loop *loop, bool set_log)
{
    char err[512];
    memset(a, 0, sizeof *a);
    snprintf(a->path, sizeof a->path, "%s", path);
    a->conf = rt_conf_load(path, err, sizeof err);
    if (!a->conf) {
        fprintf(stderr, "noded: %s\n", err);
        return 2;
    }
    const char *name = rt_conf_str(a->conf, "node", "name");
    if (!name) { /* a console file (nodectl's) has no [node] */
        fprintf(stderr, "noded: %s: [node] name: missing (a console file?)\n", path);
        appliance_close(a);
        return 2;
    }
    if (set_log)
        rt_log_setup("noded", name, (rt_log_level_t)rt_conf_u64(a->conf, "node", "log_level"));
    a->node = rt_node_new_on(name, a->conf, loop);
    if (!a->node)
        goto fail; /* logged */
    a->hub = hub_new(a->node, a->conf, err, sizeof err);
    if (!a->hub)
        goto fail_err;
    if (rt_conf_str(a->conf, "listen", "mgmt")) { /* the management endpoint, for nodectl */
        a->mgmt = mgmt_new(a->node, a->conf, err, sizeof err);
        if (!a->mgmt)
            goto fail_err;
        mgmt_use_hub(a->mgmt, a->hub);
    }
    uint64_t roles = rt_conf_u64(a->conf, "node", "roles");
    if ((roles & RT_ROLE_MT) && !(a->mt = mt_new(a->node, a->conf, a->hub, err, sizeof err)))
        goto fail_err;
    if ((roles & RT_ROLE_PS) && !(a->ps = ps_new(a->node, a->conf, a->hub, err, sizeof err)))
        goto fail_err;
    if ((roles & RT_ROLE_AGENT) &&
        !(a->agent = agent_new(a->node, a->conf, a->hub, err, sizeof err)))
        goto fail_err;
    if (a->mgmt && ((a->mt && mt_register_status(a->mt, a->mgmt) != RT_OK) ||
                    (a->ps && ps_register_status(a->ps, a->mgmt) != RT_OK))) {
        snprintf(err, sizeof err, "mgmt: no room for the ps/mt status providers");
        goto fail_err;
    }
    /* last: the source's view of a pair (backlog, drained) wins in status */
    if (a->mgmt && a->agent && agent_register_mgmt(a->agent, a->mgmt) != RT_OK) {
        snprintf(err, sizeof err, "mgmt: no room for the agent's status and commands");
        goto fail_err;
    }
    rt_log(RT_LOG_INFO, "node %s ready (roles %s, config %s)", name,
           rt_conf_str(a->conf, "node", "roles"), path);
    return 0;
fail_err:
    rt_log(RT_LOG_ERR, "%s: %s", name, err);
fail:
    appliance_close(a);
    return 1;
}

static int run(const char *path)
{
    appliance_t a;
    int rc = appliance_open(&a, path, NULL, true);
    if (rc)
        return rc;
    rc = rt_node_run(a.node) == RT_OK ? 0 : 1; /* a passed stop deadline is logged */
    if (!rc)
        rt_log(RT_LOG_INFO, "node %s stopped", rt_node_name(a.node));
    appliance_close(&a);
    return rc;
}

/* ---- the embedded default ------------------------------------------------------- */

static int run_demo(const char *dir, unsigned disks, uint64_t disk_size, bool init_only)
{
    char err[512], p1[4096], p2[4096];
    bool resumed;
    appliance_t a[2];
    rt_log_setup("noded", "demo", RT_LOG_INFO);
    if (demo_prepare(dir, disks, disk_size, &resumed, err, sizeof err) != 0) {
        fprintf(stderr, "noded: %s\n", err);
        return 1;
    }
    fprintf(stderr, "noded: demo in %s (%s); source %s/demo.env to use it\n", dir,
            resumed ? "resumed" : "new", dir);
    if (init_only)
        return 0;
    demo_conf_path(dir, true, p1, sizeof p1);
    demo_conf_path(dir, false, p2, sizeof p2);
    struct ev_loop *loop = ev_default_loop(0);
    int rc = appliance_open(&a[0], p1, loop, false);
    if (rc)
        return rc;
    rc = appliance_open(&a[1], p2, loop, false);
    if (rc) {
        appliance_close(&a[0]);
        return rc;
    }
    rt_node_t *nodes[2] = {a[0].node, a[1].node};
    rc = rt_node_run_all(nodes, 2) == RT_OK ? 0 : 1;
    if (!rc)
        rt_log(RT_LOG_INFO, "demo stopped");
    appliance_close(&a[1]);
    appliance_close(&a[0]);
    return rc;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"demo", required_argument, NULL, 'd'},
        {"disks", required_argument, NULL, 'n'},
        {"disk-size", required_argument, NULL, 's'},
        {"init-only", no_argument, NULL, 'i'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    const char *config = NULL, *demo_dir = NULL;
    bool init_only = false, demo_opts = false;
    unsigned disks = 0;
    uint64_t disk_size = 0;
    int c;

    opterr = 0;
    while ((c = getopt_long(argc, argv, ":c:hV", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            config = optarg;
            break;
        case 'd':
            demo_dir = optarg;
            break;
        case 'n': {
            char *end;
            unsigned long v = strtoul(optarg, &end, 10);
            if (*end || v < 1 || v > DEMO_DISKS_MAX)
                return bad_usage("--disks wants a number from 1 to 16, not ", optarg);
            disks = (unsigned)v;
            demo_opts = true;
            break;
        }
        case 's':
            if (rt_parse_size(optarg, &disk_size) != RT_OK || disk_size < (1u << 20) ||
                disk_size % 4096)
                return bad_usage("--disk-size wants a size of at least 1M in 4K units "
                                 "(e.g. 256M, 1G), not ", optarg);
            demo_opts = true;
            break;
        case 'i':
            init_only = true;
            demo_opts = true;
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
    if (demo_dir && config)
        return bad_usage("give either -c FILE or --demo DIR, not both", "");
    if (demo_opts && !demo_dir)
        return bad_usage("--disks, --disk-size and --init-only go with --demo DIR", "");
    if (demo_dir)
        return run_demo(demo_dir, disks, disk_size, init_only);
    if (!config)
        return bad_usage("nothing to do: give -c FILE", "");
    return run(config);
}
