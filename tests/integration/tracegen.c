/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * tracegen.c: writes synthetic trace files through the node's trace writer
 * (rt_trace_open/rt_trace_emit), for nodetrace's tests and its scale check.
 *
 * nodetrace must be tested on files made the way nodes make them, without
 * bringing up a whole site, so this program drives the real writer with
 * scripted transitions:
 *
 *   tracegen scenario DIR
 *       two nodes' files, DIR/primary.trace and DIR/secondary.trace: link
 *       charts coming up with a measured clock offset, a pair through initial
 *       sync, an outage with bitmap mode and a resync, two refused events
 *       (one on the link chart, one on a pair), and a detail with characters
 *       that JSON and HTML must escape.
 *       Each record is emitted after the clock moved on, and its fields are
 *       printed to stdout as "NODE ACTOR MACHINE FROM EVENT TO REFUSED" in
 *       emission order: the order nodetrace's merge must reproduce.
 *   tracegen bulk FILE COUNT [--node NAME] [--max-bytes B --keep K]
 *                            [--interval-ms MS]
 *       COUNT transitions of 12 actors over 3 charts (1 in 97 refused),
 *       optionally rotating, optionally paced for --follow tests.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rt.h"

static uint64_t wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* ---- scenario ------------------------------------------------------------------ */

typedef struct step {
    int node;                /* 0 primary, 1 secondary */
    const char *actor, *machine, *from, *event, *to, *detail, *peer, *pair;
    int64_t offset;
    bool refused;
} step_t;

static const char *const node_name[2] = {"primary", "secondary"};

static const step_t scenario[] = {
    {0, "link:secondary", "link", "init", "start", "connecting", "to 127.0.0.1:7401", "secondary", NULL, 0, false},
    {1, "link:primary", "link", "init", "accepted", "handshake", "from 127.0.0.1:50122", "primary", NULL, 0, false},
    {0, "link:secondary", "link", "connecting", "connected", "handshake", "", "secondary", NULL, 0, false},
    {1, "link:primary", "link", "handshake", "tls_ok", "hello", "TLSv1.3", "primary", NULL, 0, false},
    {0, "link:secondary", "link", "handshake", "tls_ok", "hello", "TLSv1.3", "secondary", NULL, 0, false},
    {0, "link:secondary", "link", "hello", "hello_ok", "up", "peer secondary v1", "secondary", NULL, 123, false},
    {1, "link:primary", "link", "hello", "hello_ok", "up", "peer primary v1", "primary", NULL, -123, false},
    {1, "cs", "pair", "none", "create", "created", "disk0 -> mt", NULL, "pair-0", 0, false},
    {0, "agent", "pair", "created", "start_sync", "initial_sync", "256 MiB to copy", NULL, "pair-0", 0, false},
    {0, "ps", "spool", "idle", "data", "forwarding", "batch 1", NULL, "pair-0", 0, false},
    {1, "mt", "journal", "idle", "append", "applying", "seq 1..512", NULL, "pair-0", 0, false},
    {0, "agent", "pair", "initial_sync", "sync_done", "protected", "rpo 0.1 s", NULL, "pair-0", 0, false},
    {1, "cs", "pair", "initial_sync", "sync_done", "protected", "", NULL, "pair-0", 0, false},
    {0, "link:secondary", "link", "up", "fail", "backoff", "no frame for 5 s", "secondary", NULL, 0, false},
    {1, "link:primary", "link", "up", "close", "closed", "peer lost", "primary", NULL, 0, false},
    {1, "link:primary", "link", "closed", "hello_ok", "closed", "late hello", "primary", NULL, 0, true},
    {0, "ps", "spool", "forwarding", "link_down", "caching", "outage", NULL, "pair-0", 0, false},
    {0, "agent", "pair", "protected", "log_full", "bitmap_mode", "write log overflow", NULL, "pair-0", 0, false},
    {1, "cs", "pair", "protected", "failover_commit", "protected", "no failover in progress", NULL, "pair-0", 0, true},
    {0, "link:secondary", "link", "backoff", "retry", "connecting", "attempt 2", "secondary", NULL, 0, false},
    {0, "link:secondary", "link", "connecting", "connected", "handshake", "", "secondary", NULL, 0, false},
    {1, "link:primary", "link", "init", "accepted", "handshake", "from 127.0.0.1:50123", "primary", NULL, 0, false},
    {0, "link:secondary", "link", "handshake", "tls_ok", "hello", "TLSv1.3", "secondary", NULL, 0, false},
    {1, "link:primary", "link", "handshake", "tls_ok", "hello", "TLSv1.3", "primary", NULL, 0, false},
    {0, "link:secondary", "link", "hello", "hello_ok", "up", "peer secondary v1", "secondary", NULL, 150, false},
    {1, "link:primary", "link", "hello", "hello_ok", "up", "peer primary v1", "primary", NULL, -150, false},
    {0, "agent", "pair", "bitmap_mode", "link_up", "resyncing", "17 dirty regions", NULL, "pair-0", 0, false},
    {0, "ps", "spool", "caching", "link_up", "forwarding", "drain 3 MiB \"q\" <b>&", NULL, "pair-0", 0, false},
    {1, "mt", "journal", "applying", "append", "applying", "seq 513..900", NULL, "pair-0", 0, false},
    {0, "agent", "pair", "resyncing", "resync_done", "protected", "rpo 0.2 s", NULL, "pair-0", 0, false},
};

/* wait until the wall clock moved past @t, so that records never tie */
static void clock_past(uint64_t t)
{
    for (int i = 0; i < 1000000 && wall_us() <= t; i++)
        ;
}

static int run_scenario(const char *dir)
{
    char path[2][4096];
    rt_trace_t *t[2] = {NULL, NULL};
    int rc = 1;
    for (int i = 0; i < 2; i++) {
        snprintf(path[i], sizeof path[i], "%s/%s.trace", dir, node_name[i]);
        t[i] = rt_trace_open(path[i], node_name[i], 1u << 20, 3);
        if (!t[i]) {
            fprintf(stderr, "tracegen: cannot open %s\n", path[i]);
            goto out;
        }
    }
    for (size_t i = 0; i < sizeof scenario / sizeof scenario[0]; i++) {
        const step_t *s = &scenario[i];
        rt_trace_rec_t r = {
            .actor = s->actor, .machine = s->machine, .from = s->from, .event = s->event,
            .to = s->refused ? s->from : s->to, .detail = s->detail, .peer = s->peer,
            .pair = s->pair, .clock_offset_us = s->offset, .refused = s->refused,
        };
        rt_trace_emit(t[s->node], &r);
        printf("%s %s %s %s %s %s %s\n", node_name[s->node], s->actor, s->machine, s->from,
               s->event, r.to, s->refused ? "refused" : "ok");
        clock_past(wall_us());
    }
    rc = 0;
out:
    for (int i = 0; i < 2; i++)
        if (t[i])
            rt_trace_close(t[i]);
    return rc;
}

/* ---- bulk ---------------------------------------------------------------------- */

static const char *const bulk_actor[12] = {
    "agent", "ps", "cs", "mt", "link:secondary", "link:primary",
    "agent:disk1", "agent:disk2", "mt:pair-1", "mt:pair-2", "cs:plan", "link:mgmt",
};
static const unsigned bulk_machine_of[12] = {1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 2, 0};
static const char *const bulk_machine[3] = {"link", "pair", "plan"};
/* cycles through each chart: link as fsm/link.rl draws it (up, fail, backoff, retry) */
static const unsigned bulk_len[3] = {5, 3, 4};
static const char *const bulk_state[3][5] = {
    {"connecting", "handshake", "hello", "up", "backoff"},
    {"protected", "bitmap_mode", "resyncing"},
    {"group_1", "hook", "group_2", "done"},
};
static const char *const bulk_event[3][5] = {
    {"connected", "tls_ok", "hello_ok", "fail", "retry"},
    {"log_full", "link_up", "resync_done"},
    {"pre_hook", "hook_done", "boot", "restart"},
};

static int run_bulk(const char *path, unsigned long count, const char *node, uint64_t max_bytes,
                    int keep, long interval_ms)
{
    rt_trace_t *t = rt_trace_open(path, node, max_bytes, keep);
    char detail[64], pair[16];
    unsigned pos[12] = {0};
    if (!t) {
        fprintf(stderr, "tracegen: cannot open %s\n", path);
        return 1;
    }
    for (unsigned long i = 0; i < count; i++) {
        unsigned a = (unsigned)(i * 7 % 12), m = bulk_machine_of[a];
        bool refused = i % 97 == 96;
        unsigned len = bulk_len[m], st = pos[a] % len;
        snprintf(detail, sizeof detail, "n=%lu", i);
        snprintf(pair, sizeof pair, "pair-%u", a % 4);
        rt_trace_rec_t r = {
            .actor = bulk_actor[a], .machine = bulk_machine[m], .from = bulk_state[m][st],
            .event = bulk_event[m][refused ? (st + 1) % len : st], /* refused: a later event */
            .to = refused ? bulk_state[m][st] : bulk_state[m][(st + 1) % len], .detail = detail,
            .pair = m == 1 ? pair : NULL, .refused = refused,
        };
        if (!refused)
            pos[a]++;
        rt_trace_emit(t, &r);
        if (interval_ms > 0) {
            struct timespec ts = {interval_ms / 1000, (interval_ms % 1000) * 1000000L};
            nanosleep(&ts, NULL);
        }
    }
    rt_trace_close(t);
    return 0;
}

static int usage(void)
{
    fprintf(stderr, "usage: tracegen scenario DIR\n"
                    "       tracegen bulk FILE COUNT [--node NAME] [--max-bytes B --keep K] "
                    "[--interval-ms MS]\n");
    return 2;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "scenario") == 0)
        return run_scenario(argv[2]);
    if (argc >= 4 && strcmp(argv[1], "bulk") == 0) {
        const char *node = "primary";
        uint64_t max_bytes = 1ull << 40;
        int keep = 1;
        long interval = 0;
        for (int i = 4; i + 1 < argc; i += 2) {
            if (strcmp(argv[i], "--node") == 0)
                node = argv[i + 1];
            else if (strcmp(argv[i], "--max-bytes") == 0)
                max_bytes = strtoull(argv[i + 1], NULL, 0);
            else if (strcmp(argv[i], "--keep") == 0)
                keep = atoi(argv[i + 1]);
            else if (strcmp(argv[i], "--interval-ms") == 0)
                interval = atol(argv[i + 1]);
            else
                return usage();
        }
        return run_bulk(argv[2], strtoul(argv[3], NULL, 0), node, max_bytes, keep, interval);
    }
    return usage();
}
