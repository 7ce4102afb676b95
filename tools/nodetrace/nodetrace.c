/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * nodetrace.c: the state trace viewer's command line.
 *
 * When a pair is stuck or a failover went wrong, the operator needs to see
 * what every actor on every appliance did, in order, and where a chart refused
 * an event. nodetrace reads the trace files of one or more nodes (with their
 * rotated siblings), merges them by time, filters them, and prints a timeline,
 * JSON lines, or one self-contained HTML page; --follow keeps printing what a
 * live node appends. The reading, merging, filtering and output live in the
 * nt_*.c files (see nodetrace.h); this file is options, the order of work,
 * and exit codes.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "nodetrace.h"

#define MAX_FILES 256

static const char usage_text[] =
    "usage: nodetrace [OPTIONS] FILE...\n"
    "\n"
    "Show the state transitions recorded in secondsite trace files, merged by time.\n"
    "Each FILE is read with its rotated siblings (FILE.N .. FILE.1, oldest first).\n"
    "\n"
    "Output (default: one line per transition on stdout):\n"
    "  TIME NODE ACTOR MACHINE FROM -> TO EVENT DETAIL\n"
    "  TIME NODE ACTOR MACHINE FROM -x EVENT (refused) DETAIL\n"
    "  TIME is ISO-8601 UTC with microseconds. Lines starting with '#' before the\n"
    "  timeline give each node's clock offset to its peers, as measured at hello.\n"
    "  --json               one JSON object per line (keys time_us, time, node, actor,\n"
    "                       machine, from, event, to, detail, refused, peer, pair,\n"
    "                       clock_offset_us, seq); no '#' lines\n"
    "  --html OUT           write one self-contained HTML page (no network needed):\n"
    "                       swimlanes per actor, chart graphs with visited transitions\n"
    "  --charts DIR         chart graphs MACHINE.svg for --html (default: the folder\n"
    "                       fsm/ beside the nodetrace binary, made by make fsm-dot)\n"
    "  --color=WHEN         auto (default: when stdout is a terminal), always, never\n"
    "\n"
    "Filters (name filters are shell patterns, e.g. --actor 'link:*'):\n"
    "  --pair ID  --actor NAME  --machine NAME  --node NAME\n"
    "  --since TIME  --until TIME\n"
    "                       TIME: 2026-11-26T11:45:01.123456Z (fraction, seconds and Z\n"
    "                       optional; UTC), @EPOCH_SECONDS, now, or relative to now:\n"
    "                       -90s, -5m, -2h, -1d, -500ms\n"
    "\n"
    "Other options:\n"
    "  --adjust-clock       shift every node's times into the clock of the node that\n"
    "                       recorded the first transition, by the measured offsets\n"
    "                       (not applied to what arrives while following)\n"
    "  --no-rotated         read only the files named, not FILE.1, FILE.2 ...\n"
    "  --follow             after the existing records, print new ones as they are\n"
    "                       appended (follows rotation; a file may not exist yet)\n"
    "  --follow-timeout S   stop following after S seconds (default: never)\n"
    "  -h, --help           this text\n"
    "\n"
    "A damaged or truncated file is read up to the damage; nodetrace then says on\n"
    "stderr where it stopped: \"nodetrace: FILE: stopped at byte N: WHY (record K)\".\n"
    "\n"
    "Exit status: 0 every file was read (a damaged file counts as read when at least\n"
    "one record came before the damage); 1 a file could not be opened, or was damaged\n"
    "before its first record, or the HTML page could not be written; 2 bad usage.\n";

enum {
    OPT_PAIR = 256, OPT_ACTOR, OPT_MACHINE, OPT_NODE, OPT_SINCE, OPT_UNTIL, OPT_JSON, OPT_HTML,
    OPT_CHARTS, OPT_COLOR, OPT_ADJUST, OPT_NOROT, OPT_FOLLOW, OPT_FOLLOW_TIMEOUT,
};

static const struct option long_opts[] = {
    {"pair", required_argument, NULL, OPT_PAIR},
    {"actor", required_argument, NULL, OPT_ACTOR},
    {"machine", required_argument, NULL, OPT_MACHINE},
    {"node", required_argument, NULL, OPT_NODE},
    {"since", required_argument, NULL, OPT_SINCE},
    {"until", required_argument, NULL, OPT_UNTIL},
    {"json", no_argument, NULL, OPT_JSON},
    {"html", required_argument, NULL, OPT_HTML},
    {"charts", required_argument, NULL, OPT_CHARTS},
    {"color", optional_argument, NULL, OPT_COLOR},
    {"colour", optional_argument, NULL, OPT_COLOR},
    {"adjust-clock", no_argument, NULL, OPT_ADJUST},
    {"no-rotated", no_argument, NULL, OPT_NOROT},
    {"follow", no_argument, NULL, OPT_FOLLOW},
    {"follow-timeout", required_argument, NULL, OPT_FOLLOW_TIMEOUT},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

typedef struct opts {
    nt_filter_t filter;
    bool json, adjust, rotated, follow, color;
    double follow_timeout;   /* seconds, < 0: forever */
    const char *html, *charts;
    char charts_buf[PATH_MAX];
} opts_t;

static uint64_t now_us(clockid_t clk)
{
    struct timespec ts;
    clock_gettime(clk, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static int usage_error(const char *fmt, const char *arg)
{
    fprintf(stderr, "nodetrace: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, " (see nodetrace --help)\n");
    return 2;
}

/* the default chart folder: fsm/ beside the binary */
static const char *default_charts(opts_t *o)
{
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0)
        return NULL;
    self[n] = '\0';
    char *slash = strrchr(self, '/');
    if (!slash)
        return NULL;
    if ((size_t)(slash - self) + sizeof "/fsm" > sizeof o->charts_buf)
        return NULL;
    memcpy(o->charts_buf, self, (size_t)(slash - self));
    memcpy(o->charts_buf + (slash - self), "/fsm", sizeof "/fsm");
    return o->charts_buf;
}

static int parse_args(int argc, char **argv, opts_t *o)
{
    const char *color = "auto";
    uint64_t now = now_us(CLOCK_REALTIME);
    int c;
    memset(o, 0, sizeof *o);
    o->rotated = true;
    o->follow_timeout = -1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", long_opts, NULL)) != -1) {
        switch (c) {
        case OPT_PAIR: o->filter.pair = optarg; break;
        case OPT_ACTOR: o->filter.actor = optarg; break;
        case OPT_MACHINE: o->filter.machine = optarg; break;
        case OPT_NODE: o->filter.node = optarg; break;
        case OPT_SINCE:
            if (nt_parse_time(optarg, now, &o->filter.since_us) != RT_OK)
                return usage_error("--since: bad time '%s'", optarg);
            o->filter.has_since = true;
            break;
        case OPT_UNTIL:
            if (nt_parse_time(optarg, now, &o->filter.until_us) != RT_OK)
                return usage_error("--until: bad time '%s'", optarg);
            o->filter.has_until = true;
            break;
        case OPT_JSON: o->json = true; break;
        case OPT_HTML: o->html = optarg; break;
        case OPT_CHARTS: o->charts = optarg; break;
        case OPT_COLOR: color = optarg ? optarg : "always"; break;
        case OPT_ADJUST: o->adjust = true; break;
        case OPT_NOROT: o->rotated = false; break;
        case OPT_FOLLOW: o->follow = true; break;
        case OPT_FOLLOW_TIMEOUT: {
            char *end;
            errno = 0;
            o->follow_timeout = strtod(optarg, &end);
            if (end == optarg || *end || errno || o->follow_timeout < 0)
                return usage_error("--follow-timeout: bad number of seconds '%s'", optarg);
            break;
        }
        case 'h':
            fputs(usage_text, stdout);
            exit(0);
        case ':':
            return usage_error("%s needs a value", argv[optind - 1]);
        default:
            return usage_error("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (strcmp(color, "always") == 0)
        o->color = true;
    else if (strcmp(color, "never") == 0)
        o->color = false;
    else if (strcmp(color, "auto") == 0)
        o->color = isatty(STDOUT_FILENO) && !getenv("NO_COLOR") &&
                   !(getenv("TERM") && strcmp(getenv("TERM"), "dumb") == 0);
    else
        return usage_error("--color: '%s' is not auto, always or never", color);
    if (optind >= argc)
        return usage_error("%s", "no trace FILE given");
    if (argc - optind > MAX_FILES)
        return usage_error("%s", "too many files (at most 256)");
    if (o->html && (o->follow || o->json))
        return usage_error("%s", "--html cannot be combined with --follow or --json");
    if (o->filter.has_since && o->filter.has_until && o->filter.since_us > o->filter.until_us)
        return usage_error("%s", "--since is after --until");
    if (o->html && !o->charts)
        o->charts = default_charts(o);
    return 0;
}

/* ---- reading ------------------------------------------------------------------------ */

static void report_stop(const char *path, const nt_stop_t *st)
{
    fprintf(stderr, "nodetrace: %s: stopped at byte %llu: %s (record %llu)\n", path,
            (unsigned long long)st->at, st->why, (unsigned long long)st->records + 1);
}

/* one file and, unless --no-rotated, its rotated siblings; @return 0 or 1 */
static int load_one(nt_set_t *s, const char *path, const opts_t *o, nt_follow_t *fol)
{
    int status = 0;
    nt_stop_t st;
    if (o->rotated) {
        char *rot[64];
        size_t n = nt_rotated(path, rot, 64);
        for (size_t i = 0; i < n; i++) {
            if (nt_load_file(s, rot[i], &st) != RT_OK) {
                status = 1;
            } else if (st.stopped) {
                report_stop(rot[i], &st);
                if (st.records == 0)
                    status = 1;
            }
            free(rot[i]);
        }
    }
    if (fol) {
        /* followed: the follower reads it, and tolerates a missing file */
        if (nt_follow_open(fol, path, 0) != RT_OK || nt_follow_poll(fol, s) < 0) {
            fprintf(stderr, "nodetrace: %s: out of memory\n", path);
            return 1;
        }
        return status;
    }
    if (nt_load_file(s, path, &st) != RT_OK)
        return 1;
    if (st.stopped) {
        report_stop(path, &st);
        if (st.records == 0)
            status = 1;
    }
    return status;
}

static void print_set(const nt_set_t *s, const opts_t *o)
{
    for (size_t i = 0; i < s->n; i++) {
        const nt_rec_t *r = &s->rec[i];
        if (!nt_filter_match(s, r, &o->filter))
            continue;
        if (o->json)
            nt_print_json(stdout, s, r);
        else
            nt_print_line(stdout, s, r, o->color);
    }
}

/* ---- follow ------------------------------------------------------------------------- */

static int follow(nt_follow_t *fol, size_t nfol, const opts_t *o)
{
    nt_set_t batch;
    uint64_t start = now_us(CLOCK_MONOTONIC);
    int rc = 0;
    if (nt_set_init(&batch) != RT_OK)
        return 1;
    for (;;) {
        if (o->follow_timeout >= 0 &&
            (double)(now_us(CLOCK_MONOTONIC) - start) >= o->follow_timeout * 1e6)
            break;
        struct timespec ts = {0, 100 * 1000 * 1000};
        nanosleep(&ts, NULL);
        for (size_t i = 0; i < nfol; i++) {
            if (nt_follow_poll(&fol[i], &batch) < 0) {
                fprintf(stderr, "nodetrace: out of memory\n");
                rc = 1;
                goto out;
            }
        }
        if (batch.n == 0)
            continue;
        nt_set_sort(&batch);
        print_set(&batch, o);
        fflush(stdout);
        batch.n = 0;
        /* keep the string table from growing forever on a long session */
        if (batch.str.arena_len > (16u << 20)) {
            nt_set_free(&batch);
            if (nt_set_init(&batch) != RT_OK) {
                rc = 1;
                goto out;
            }
        }
    }
out:
    nt_set_free(&batch);
    return rc;
}

/* the last two components of @path ("primary/trace.pb"): fetched traces are
 * DIR/NODE/NAME and every node's file has the same NAME */
static const char *short_name(const char *path)
{
    const char *p = path + strlen(path);
    int slashes = 0;
    while (p > path && !(p[-1] == '/' && ++slashes == 2))
        p--;
    return *p ? p : path;
}

/* the page's title (the files) and the filters, as text */
static void describe_run(int argc, char **argv, const opts_t *o, char *title, size_t tlen,
                         char *filters, size_t flen)
{
    size_t n = 0;
    for (int i = optind; i < argc && n < tlen; i++)
        n += (size_t)snprintf(title + n, tlen - n, "%s%s", n ? " " : "", short_name(argv[i]));
    n = 0;
    const char *name[4] = {"pair", "actor", "machine", "node"};
    const char *val[4] = {o->filter.pair, o->filter.actor, o->filter.machine, o->filter.node};
    for (int i = 0; i < 4 && n < flen; i++)
        if (val[i])
            n += (size_t)snprintf(filters + n, flen - n, "%s%s %s", n ? ", " : "", name[i], val[i]);
    for (int i = 1; i < optind && n < flen; i++) {
        /* the time bounds as the operator typed them (getopt moved options first) */
        const char *a = argv[i];
        if ((strcmp(a, "--since") == 0 || strcmp(a, "--until") == 0) && i + 1 < optind)
            n += (size_t)snprintf(filters + n, flen - n, "%s%s %s", n ? ", " : "", a + 2,
                                  argv[++i]);
        else if (strncmp(a, "--since=", 8) == 0 || strncmp(a, "--until=", 8) == 0)
            n += (size_t)snprintf(filters + n, flen - n, "%s%.5s %s", n ? ", " : "", a + 2,
                                  a + 8);
    }
}

/* ---- main --------------------------------------------------------------------------- */

int main(int argc, char **argv)
{
    opts_t o;
    nt_set_t set;
    nt_follow_t fol[MAX_FILES];
    size_t nfol = 0;
    int status = parse_args(argc, argv, &o);
    if (status)
        return status;
    if (nt_set_init(&set) != RT_OK) {
        fprintf(stderr, "nodetrace: out of memory\n");
        return 1;
    }
    if (!o.follow)
        setvbuf(stdout, NULL, _IOFBF, 1 << 20);
    for (int i = optind; i < argc; i++) {
        nt_follow_t *f = o.follow ? &fol[nfol++] : NULL;
        if (load_one(&set, argv[i], &o, f))
            status = 1;
    }
    if (o.adjust) {
        nt_set_adjust_clock(&set);
        if (set.n && !o.json && !o.html)
            printf("# times shifted into the clock of node %s\n", nt_str(&set, set.rec[0].node));
    } else {
        nt_set_sort(&set);
    }
    if (o.html) {
        char title[512] = "", filters[512] = "";
        describe_run(argc, argv, &o, title, sizeof title, filters, sizeof filters);
        nt_html_opts_t ho = {.charts_dir = o.charts, .title = title, .filters = filters};
        if (nt_write_html(&set, &o.filter, &ho, o.html) != RT_OK)
            status = 1;
    } else {
        if (!o.json)
            nt_print_offsets(stdout, &set);
        print_set(&set, &o);
        fflush(stdout);
        if (o.follow && follow(fol, nfol, &o))
            status = 1;
    }
    for (size_t i = 0; i < nfol; i++)
        nt_follow_close(&fol[i]);
    nt_set_free(&set);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "nodetrace: writing output: %s\n", strerror(errno));
        status = 1;
    }
    return status;
}
