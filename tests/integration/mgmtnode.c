/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * mgmtnode.c: a node with a management endpoint and scripted pairs, for the
 * integration tests of nodectl status, pairs, pair show and wait (t20_mgmt).
 *
 *   mgmtnode -c FILE [--scale X] [--pair ID]...
 *
 * It runs like noded -c FILE (hub, [listen] mgmt, trace), and plugs one
 * status provider into the management actor, the way the data-path roles
 * do, whose pairs follow a fixed timeline from start-up, so that waits have
 * something real to wait for before the roles exist:
 *   0 .. 1.0 s   initial_sync, sync_progress t / 1.0
 *   1.0 s ..     protected
 *   writes are acknowledged (source_seq = 100 per second) until 1.5 s, and
 *   reach the master target 0.8 s later, so the pair is drained from 2.3 s.
 * (every time multiplied by --scale, default 1).
 * The admin command "fake-pause ID" puts a pair in state paused (a change,
 * so it needs an admin certificate). SIGTERM stops it like noded.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nodes/hub/hub.h"
#include "nodes/mgmt/mgmt.h"
#include "rt.h"

#define MAX_PAIRS 8

typedef struct {
    char id[RT_NAME_MAX];
    bool paused;
} fake_pair_t;

static fake_pair_t pairs[MAX_PAIRS];
static unsigned npairs;
static uint64_t t0;
static double scale = 1.0;

static int fake_status(void *ctx, mgmt_status_t *st, rt_json_t *out, char *err, size_t errlen)
{
    (void)ctx;
    (void)err;
    (void)errlen;
    double t = (double)(rt_mono_us() - t0) / 1e6 / scale;
    uint64_t src = (uint64_t)(fmin(t, 1.5) * 100), mt = t > 0.8 ? (uint64_t)((t - 0.8) * 100) : 0;
    if (mt > src)
        mt = src;
    for (unsigned i = 0; i < npairs; i++) {
        mgmt_pair_t *p = mgmt_status_pair(st, pairs[i].id);
        if (!p)
            continue;
        snprintf(p->disk, sizeof p->disk, "disk%u", i);
        snprintf(p->group, sizeof p->group, "g0");
        snprintf(p->state, sizeof p->state, "%s",
                 pairs[i].paused ? "paused" : t < 1.0 ? "initial_sync" : "protected");
        snprintf(p->link, sizeof p->link, "up");
        p->sync_progress = t < 1.0 ? t : 1.0;
        p->source_seq = src;
        p->ps_durable_seq = src;
        p->mt_durable_seq = mt;
        p->backlog_bytes = (src - mt) * 4096;
        p->rpo_lag_ms = src > mt ? 800 : 0;
        p->cache_bytes = (src - mt) * 4096;
        p->cache_quota = 1u << 30;
        p->bitmap_dirty_bytes = 0;
    }
    rt_json_dbl(out, "age_s", t);
    return MGMT_OK;
}

static int fake_pause(void *ctx, const ss_MgmtRequest *req, rt_json_t *out, char *err,
                      size_t errlen)
{
    (void)ctx;
    if (req->args_count != 1) {
        snprintf(err, errlen, "fake-pause takes one argument, the pair id");
        return MGMT_USAGE;
    }
    for (unsigned i = 0; i < npairs; i++) {
        if (strcmp(pairs[i].id, req->args[0]) == 0) {
            pairs[i].paused = true;
            rt_json_obj(out, NULL);
            rt_json_str(out, "paused", pairs[i].id);
            rt_json_obj_end(out);
            return MGMT_OK;
        }
    }
    snprintf(err, errlen, "no pair '%s'", req->args[0]);
    return MGMT_FAIL;
}

int main(int argc, char **argv)
{
    char err[512];
    const char *path = NULL;
    int rc = 1;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-c") == 0 && i + 1 < argc) {
            path = argv[++i];
        } else if (strcmp(argv[i], "--scale") == 0 && i + 1 < argc) {
            scale = atof(argv[++i]);
            if (!(scale > 0))
                scale = 1.0;
        } else if (strcmp(argv[i], "--pair") == 0 && i + 1 < argc && npairs < MAX_PAIRS) {
            snprintf(pairs[npairs++].id, RT_NAME_MAX, "%s", argv[++i]);
        } else {
            fprintf(stderr, "usage: mgmtnode -c FILE [--scale X] [--pair ID]...\n");
            return 2;
        }
    }
    if (!path) {
        fprintf(stderr, "usage: mgmtnode -c FILE [--scale X] [--pair ID]...\n");
        return 2;
    }
    rt_conf_t *conf = rt_conf_load(path, err, sizeof err);
    if (!conf) {
        fprintf(stderr, "mgmtnode: %s\n", err);
        return 2;
    }
    const char *name = rt_conf_str(conf, "node", "name");
    rt_log_setup("mgmtnode", name, (rt_log_level_t)rt_conf_u64(conf, "node", "log_level"));
    rt_node_t *node = rt_node_new(name, conf);
    hub_t *hub = node ? hub_new(node, conf, err, sizeof err) : NULL;
    mgmt_t *mg = hub ? mgmt_new(node, conf, err, sizeof err) : NULL;
    if (!mg) {
        fprintf(stderr, "mgmtnode: %s\n", err);
        goto out;
    }
    mgmt_use_hub(mg, hub);
    t0 = rt_mono_us();
    if (mgmt_register_status(mg, "fake", fake_status, NULL) != RT_OK ||
        mgmt_register(mg, "fake-pause", fake_pause, NULL, MGMT_ADMIN) != RT_OK)
        goto out;
    rt_log(RT_LOG_INFO, "mgmtnode %s running with %u scripted pair(s)", name, npairs);
    rc = rt_node_run(node) == RT_OK ? 0 : 1;
out:
    mgmt_free(mg);
    hub_free(hub);
    rt_node_free(node);
    rt_conf_free(conf);
    return rc;
}
