/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * cmd_status.c: nodectl status, pairs, pair show and wait.
 *
 * The operator's view of replication: what each pair is doing (state, RPO
 * lag, backlog, cache, link), and a way for scripts and people to block
 * until a pair reaches a state or until everything acknowledged to the
 * workload is durable at the master target. Everything comes from the
 * node's management endpoint (nodes/mgmt) as JSON documents whose shapes
 * docs/MGMT.md describes; --json prints them as they came, the text output
 * is a table. wait polls the pair every WAIT_POLL_S seconds, survives the
 * node restarting under it (it reconnects until its deadline), and on
 * timeout says where the pair stood.
 */
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "nodectl.h"
#include "rt.h"

#define WAIT_POLL_S      0.1   /* between two looks at the pair */
#define WAIT_RETRY_S     0.5   /* between two connection attempts while waiting */
#define WAIT_DEFAULT_S   600u  /* --timeout default */
#define WAIT_MAX_S       (7u * 24 * 3600)
#define WAIT_PROGRESS_S  1.0   /* progress line refresh on a terminal */

const char ctl_status_help[] =
    "DESCRIPTION\n"
    "    Asks the node's management endpoint for its status and prints the node\n"
    "    (roles, version, uptime, memory), its links to other nodes (state, clock\n"
    "    offset) and one row per protection pair: its state, RPO lag (age of the\n"
    "    oldest write not yet durable at the master target), backlog (bytes\n"
    "    acknowledged to the workload but not yet durable there), process server\n"
    "    cache use and quota, and the state of the link that carries it. A dash\n"
    "    means the node does not know the value.\n"
    "\n"
    "OPTIONS\n"
    "    --json       print the node's whole status document (docs/MGMT.md)\n"
    "    -h, --help   show this page\n";

const char ctl_pairs_help[] =
    "DESCRIPTION\n"
    "    Lists the protection pairs the node knows: id, disk, consistency group,\n"
    "    state and link.\n"
    "\n"
    "OPTIONS\n"
    "    --json       print the node's document: {\"node\", \"pairs\": [...]}\n"
    "    -h, --help   show this page\n";

static const char pair_show_help[] =
    "DESCRIPTION\n"
    "    Prints every field the node has for pair PAIR (docs/MGMT.md lists them).\n"
    "\n"
    "OPTIONS\n"
    "    --json       print the pair as one JSON object\n"
    "    -h, --help   show this page\n";

const char ctl_wait_help[] =
    "DESCRIPTION\n"
    "    Blocks until pair PAIR is in state S (--state S), or until it is drained\n"
    "    (--drained): every write acknowledged to the workload's NBD client is\n"
    "    durable at the master target. The pair is polled ten times a second;\n"
    "    if the node restarts meanwhile, wait reconnects until its deadline. On a\n"
    "    terminal, progress is shown on stderr.\n"
    "\n"
    "OPTIONS\n"
    "    --state S          wait for state S (initial_sync, protected, resyncing,\n"
    "                       bitmap_mode, paused, ...)\n"
    "    --drained          wait until nothing acknowledged is missing at the\n"
    "                       master target\n"
    "    --timeout SECONDS  give up after SECONDS (default 600): exit 1 with a line\n"
    "                       that says where the pair stood\n"
    "    --json             print the pair as one JSON object when done\n"
    "    -h, --help         show this page\n";

/* ---- formatting helpers ------------------------------------------------------- */

static const char *bytes_str(uint64_t v, char *buf, size_t n)
{
    static const char units[] = "BKMGTPE";
    double x = (double)v;
    unsigned u = 0;
    while (x >= 1024 && u + 1 < sizeof units - 1) {
        x /= 1024;
        u++;
    }
    if (u == 0)
        snprintf(buf, n, "%lluB", (unsigned long long)v);
    else
        snprintf(buf, n, x < 10 ? "%.1f%c" : "%.0f%c", x, units[u]);
    return buf;
}

static const char *ms_str(uint64_t ms, char *buf, size_t n)
{
    if (ms < 1000)
        snprintf(buf, n, "%llums", (unsigned long long)ms);
    else if (ms < 60000)
        snprintf(buf, n, "%.1fs", (double)ms / 1000);
    else if (ms < 3600000)
        snprintf(buf, n, "%llum%02llus", (unsigned long long)(ms / 60000),
                 (unsigned long long)(ms / 1000 % 60));
    else
        snprintf(buf, n, "%lluh%02llum", (unsigned long long)(ms / 3600000),
                 (unsigned long long)(ms / 60000 % 60));
    return buf;
}

/* member @key of object @obj as text for a table: "-" when null or absent */
static const char *field(const rt_json_doc_t *d, int obj, const char *key, char *buf, size_t n)
{
    int t = rt_json_get(d, obj, key);
    bool b;
    switch (rt_json_type(d, t)) {
    case RT_JSON_T_STR:
        if (rt_json_get_str(d, t, buf, n) == RT_OK)
            return buf;
        break;
    case RT_JSON_T_NUM:
        snprintf(buf, n, "%.*s", (int)(d->tok[t].end - d->tok[t].start), d->text + d->tok[t].start);
        return buf;
    case RT_JSON_T_BOOL:
        rt_json_get_bool(d, t, &b);
        return b ? "yes" : "no";
    case RT_JSON_T_NULL:
    case RT_JSON_T_ARR:
    case RT_JSON_T_OBJ:
        break;
    }
    return "-";
}

static bool num(const rt_json_doc_t *d, int obj, const char *key, uint64_t *v)
{
    return rt_json_get_u64(d, rt_json_get(d, obj, key), v) == RT_OK;
}

/* A small table: rows of cells, printed with columns as wide as their
 * widest cell. Cells are copied. */
#define TAB_COLS 8
#define TAB_CELL 64
typedef struct {
    unsigned ncols, nrows, cap;
    char (*cells)[TAB_COLS][TAB_CELL];
} table_t;

static void tab_row(table_t *t, ...)
{
    if (t->nrows == t->cap) {
        unsigned ncap = t->cap ? t->cap * 2 : 16;
        void *n = realloc(t->cells, ncap * sizeof *t->cells);
        if (!n)
            return; /* out of memory: the row is left out */
        t->cells = n;
        t->cap = ncap;
    }
    va_list ap;
    va_start(ap, t);
    for (unsigned i = 0; i < t->ncols; i++)
        snprintf(t->cells[t->nrows][i], TAB_CELL, "%s", va_arg(ap, const char *));
    va_end(ap);
    t->nrows++;
}

static void tab_print(table_t *t)
{
    size_t w[TAB_COLS] = {0};
    for (unsigned r = 0; r < t->nrows; r++)
        for (unsigned i = 0; i < t->ncols; i++)
            if (strlen(t->cells[r][i]) > w[i])
                w[i] = strlen(t->cells[r][i]);
    for (unsigned r = 0; r < t->nrows; r++) {
        for (unsigned i = 0; i < t->ncols; i++) {
            if (i + 1 == t->ncols)
                printf("%s\n", t->cells[r][i]);
            else
                printf("%-*s  ", (int)w[i], t->cells[r][i]);
        }
    }
    free(t->cells);
    t->cells = NULL;
    t->nrows = t->cap = 0;
}

/* the options of a command that takes none but --json/--help: @return -1 to
 * go on, else the exit code */
static int plain_opts(ctl_t *ctl, int argc, char **argv, int want_args)
{
    static const struct option lo[] = {CTL_COMMON_LONGOPTS, {NULL, 0, NULL, 0}};
    bool first = true;
    int c;
    while ((c = ctl_getopt(ctl, argc, argv, "h", lo, &first)) != -1) {
        if (c == CTL_GETOPT_HELP)
            return CTL_EXIT_OK;
        return CTL_EXIT_USAGE;
    }
    if (argc - optind < want_args)
        return ctl_usage(ctl, "missing PAIR, the pair id (nodectl pairs lists them)");
    if (argc - optind > want_args)
        return ctl_usage(ctl, "unexpected argument '%s'", argv[optind + want_args]);
    return -1;
}

/* one call on a fresh connection; @return the exit code (the error printed) */
static int call_once(ctl_t *ctl, const char *cmd, unsigned nargs, const char *const *args,
                     ctl_resp_t *r)
{
    int rc;
    memset(r, 0, sizeof *r);
    ctl_conn_t *c = ctl_open(ctl, &rc);
    if (!c)
        return rc;
    if (ctl_call(c, cmd, nargs, args, r) != CTL_EXIT_OK)
        rc = ctl_report(ctl, r);
    ctl_disconnect(c);
    return rc;
}

/* ---- status ------------------------------------------------------------------- */

static void print_pairs_table(const rt_json_doc_t *d, int pairs, bool full)
{
    table_t t = {.ncols = full ? 6u : 5u};
    char b[6][TAB_CELL];
    if (full)
        tab_row(&t, "PAIR", "STATE", "RPO LAG", "BACKLOG", "CACHE", "LINK");
    else
        tab_row(&t, "PAIR", "DISK", "GROUP", "STATE", "LINK");
    for (uint32_t i = 0; i < rt_json_size(d, pairs); i++) {
        int p = rt_json_at(d, pairs, i);
        uint64_t v, q;
        if (!full) {
            tab_row(&t, field(d, p, "id", b[0], TAB_CELL), field(d, p, "disk", b[1], TAB_CELL),
                    field(d, p, "group", b[2], TAB_CELL), field(d, p, "state", b[3], TAB_CELL),
                    field(d, p, "link", b[4], TAB_CELL));
            continue;
        }
        const char *lag = num(d, p, "rpo_lag_ms", &v) ? ms_str(v, b[2], TAB_CELL) : "-";
        const char *backlog = num(d, p, "backlog_bytes", &v) ? bytes_str(v, b[3], TAB_CELL) : "-";
        char cache[TAB_CELL] = "-", qs[24];
        if (num(d, p, "cache_bytes", &v)) {
            bytes_str(v, cache, sizeof cache);
            if (num(d, p, "cache_quota", &q) && q) {
                size_t n = strlen(cache);
                snprintf(cache + n, sizeof cache - n, " of %s (%.0f%%)",
                         bytes_str(q, qs, sizeof qs), 100.0 * (double)v / (double)q);
            }
        }
        char state[TAB_CELL];
        double prog;
        field(d, p, "state", state, sizeof state);
        if (rt_json_get_dbl(d, rt_json_get(d, p, "sync_progress"), &prog) == RT_OK &&
            prog < 1.0 && strlen(state) + 8 < sizeof state)
            snprintf(state + strlen(state), sizeof state - strlen(state), " %.0f%%", prog * 100);
        tab_row(&t, field(d, p, "id", b[0], TAB_CELL), state, lag, backlog, cache,
                field(d, p, "link", b[5], TAB_CELL));
    }
    tab_print(&t);
}

static void print_status(const rt_json_doc_t *d)
{
    char node[RT_NAME_MAX], ver[32], roles[64] = "", u[32], m1[24], m2[24];
    double up = 0;
    uint64_t used = 0, budget = 0;
    int r = rt_json_get(d, 0, "roles");
    for (uint32_t i = 0; i < rt_json_size(d, r); i++) {
        char one[16];
        size_t n = strlen(roles);
        if (rt_json_get_str(d, rt_json_at(d, r, i), one, sizeof one) == RT_OK)
            snprintf(roles + n, sizeof roles - n, "%s%s", n ? ", " : "", one);
    }
    rt_json_get_dbl(d, rt_json_get(d, 0, "uptime_s"), &up);
    int mem = rt_json_get(d, 0, "memory");
    num(d, mem, "used", &used);
    num(d, mem, "budget", &budget);
    printf("node %s (%s), version %s, up %s, memory %s of %s\n",
           field(d, 0, "node", node, sizeof node), roles[0] ? roles : "no roles",
           field(d, 0, "version", ver, sizeof ver), ms_str((uint64_t)(up * 1000), u, sizeof u),
           bytes_str(used, m1, sizeof m1), bytes_str(budget, m2, sizeof m2));

    int links = rt_json_get(d, 0, "links");
    if (rt_json_size(d, links)) {
        table_t t = {.ncols = 4};
        tab_row(&t, "LINK", "STATE", "ADDRESS", "CLOCK OFFSET");
        for (uint32_t i = 0; i < rt_json_size(d, links); i++) {
            int l = rt_json_at(d, links, i);
            char b[3][TAB_CELL], off[32] = "-";
            int64_t us;
            if (rt_json_get_i64(d, rt_json_get(d, l, "clock_offset_us"), &us) == RT_OK)
                snprintf(off, sizeof off, "%+.3f ms", (double)us / 1000);
            tab_row(&t, field(d, l, "peer", b[0], TAB_CELL), field(d, l, "state", b[1], TAB_CELL),
                    field(d, l, "addr", b[2], TAB_CELL), off);
        }
        tab_print(&t);
    }
    int secs = rt_json_get(d, 0, "sections");
    /* a section that failed says so: members are key, value, key, ... */
    if (rt_json_type(d, secs) == RT_JSON_T_OBJ) {
        uint32_t k = (uint32_t)secs + 1;
        for (uint32_t i = 0; i < rt_json_size(d, secs); i++) {
            char name[RT_NAME_MAX], err[256];
            int val = (int)k + 1;
            if (rt_json_get_str(d, rt_json_get(d, val, "error"), err, sizeof err) == RT_OK &&
                rt_json_get_str(d, (int)k, name, sizeof name) == RT_OK)
                printf("%s: error: %s\n", name, err);
            k = d->tok[val].next;
        }
    }
    int pairs = rt_json_get(d, 0, "pairs");
    if (rt_json_size(d, pairs) == 0) {
        printf("no protection pairs on node %s\n", node);
        return;
    }
    print_pairs_table(d, pairs, true);
    bool trunc = false;
    if (rt_json_get_bool(d, rt_json_get(d, 0, "pairs_truncated"), &trunc) == RT_OK && trunc)
        printf("(more pairs than one status shows)\n");
}

int ctl_cmd_status(ctl_t *ctl, int argc, char **argv)
{
    ctl_resp_t r;
    int rc = plain_opts(ctl, argc, argv, 0);
    if (rc >= 0)
        return rc;
    rc = call_once(ctl, "status", 0, NULL, &r);
    if (rc == CTL_EXIT_OK) {
        if (ctl->json)
            printf("%s\n", r.text);
        else
            print_status(&r.doc);
    }
    ctl_resp_free(&r);
    return rc;
}

/* ---- pairs, pair show ------------------------------------------------------------ */

int ctl_cmd_pairs(ctl_t *ctl, int argc, char **argv)
{
    ctl_resp_t r;
    char node[RT_NAME_MAX];
    int rc = plain_opts(ctl, argc, argv, 0);
    if (rc >= 0)
        return rc;
    rc = call_once(ctl, "pairs", 0, NULL, &r);
    if (rc == CTL_EXIT_OK) {
        int pairs = rt_json_get(&r.doc, 0, "pairs");
        if (ctl->json)
            printf("%s\n", r.text);
        else if (rt_json_size(&r.doc, pairs) == 0)
            printf("no protection pairs on node %s\n", field(&r.doc, 0, "node", node, sizeof node));
        else
            print_pairs_table(&r.doc, pairs, false);
    }
    ctl_resp_free(&r);
    return rc;
}

static void print_pair(const rt_json_doc_t *d, int p)
{
    uint32_t k = (uint32_t)p + 1;
    for (uint32_t i = 0; i < rt_json_size(d, p); i++) {
        char key[64], val[TAB_CELL];
        rt_json_get_str(d, (int)k, key, sizeof key);
        printf("%-19s %s\n", key, field(d, p, key, val, sizeof val));
        k = d->tok[k + 1].next;
    }
}

static int pair_show(ctl_t *ctl, int argc, char **argv)
{
    ctl_resp_t r;
    int rc = plain_opts(ctl, argc, argv, 1);
    if (rc >= 0)
        return rc;
    const char *id = argv[optind];
    rc = call_once(ctl, "pair-show", 1, &id, &r);
    if (rc == CTL_EXIT_OK) {
        if (ctl->json)
            printf("%s\n", r.text);
        else
            print_pair(&r.doc, 0);
    }
    ctl_resp_free(&r);
    return rc;
}

const ctl_cmd_t ctl_pair_cmds[] = {
    {"show", "PAIR", "every field of one protection pair", pair_show_help, pair_show, NULL},
    {NULL, NULL, NULL, NULL, NULL, NULL},
};

/* ---- wait ------------------------------------------------------------------------- */

static double now_s(void)
{
    return (double)rt_mono_us() / 1e6;
}

static void sleep_s(double s)
{
    if (s <= 0)
        return;
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

/* is the pair @p drained? "drained" when the node says, else the seqs */
static bool is_drained(const rt_json_doc_t *d, int p)
{
    bool b;
    uint64_t src, mt;
    if (rt_json_get_bool(d, rt_json_get(d, p, "drained"), &b) == RT_OK)
        return b;
    return num(d, p, "source_seq", &src) && num(d, p, "mt_durable_seq", &mt) && src <= mt;
}

static void append(char *out, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void append(char *out, size_t n, const char *fmt, ...)
{
    size_t off = strlen(out);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out + off, n - off, fmt, ap);
    va_end(ap);
}

/* where the pair stands, one phrase: "state S, sync N%, ..." */
static void where(const rt_json_doc_t *d, int p, char *out, size_t n)
{
    char st[64], b[24];
    uint64_t v;
    double prog;
    snprintf(out, n, "state %s", field(d, p, "state", st, sizeof st));
    if (rt_json_get_dbl(d, rt_json_get(d, p, "sync_progress"), &prog) == RT_OK)
        append(out, n, ", sync %.0f%%", prog * 100);
    if (num(d, p, "source_seq", &v))
        append(out, n, ", acked seq %llu", (unsigned long long)v);
    if (num(d, p, "mt_durable_seq", &v))
        append(out, n, ", durable at the master target up to seq %llu", (unsigned long long)v);
    if (num(d, p, "backlog_bytes", &v))
        append(out, n, ", backlog %s", bytes_str(v, b, sizeof b));
}

int ctl_cmd_wait(ctl_t *ctl, int argc, char **argv)
{
    static const struct option lo[] = {
        CTL_COMMON_LONGOPTS,         {"state", 1, NULL, 's'}, {"drained", 0, NULL, 'd'},
        {"timeout", 1, NULL, 't'},   {NULL, 0, NULL, 0},
    };
    const char *state = NULL, *id;
    unsigned timeout = WAIT_DEFAULT_S;
    bool drained = false, first = true, tty = isatty(2), shown = false;
    int c, rc = CTL_EXIT_FAIL;
    char last[512] = "", lasterr[1024] = "", err[1024];

    while ((c = ctl_getopt(ctl, argc, argv, "h", lo, &first)) != -1) {
        switch (c) {
        case 's': state = optarg; break;
        case 'd': drained = true; break;
        case 't':
            if (!ctl_parse_uint(optarg, 1, WAIT_MAX_S, &timeout))
                return ctl_usage(ctl, "bad --timeout '%s': give SECONDS, 1 to %u", optarg,
                                 WAIT_MAX_S);
            break;
        case CTL_GETOPT_HELP: return CTL_EXIT_OK;
        default: return CTL_EXIT_USAGE;
        }
    }
    if (optind >= argc)
        return ctl_usage(ctl, "missing PAIR, the pair id (nodectl pairs lists them)");
    if (optind + 1 < argc)
        return ctl_usage(ctl, "unexpected argument '%s'", argv[optind + 1]);
    if (!state == !drained)
        return ctl_usage(ctl, "give either --state S or --drained");
    if (state && (!state[0] || strspn(state, "abcdefghijklmnopqrstuvwxyz_") != strlen(state)))
        return ctl_usage(ctl, "bad --state '%s': a state name like protected", state);
    id = argv[optind];

    double start = now_s(), deadline = start + timeout, next_show = start;
    ctl_conn_t *conn = ctl_open(ctl, &rc); /* the first attempt must work */
    if (!conn)
        return rc;
    for (;;) {
        ctl_resp_t r;
        if (!conn) {
            conn = ctl_connect(ctl, &rc, err, sizeof err);
            if (!conn)
                snprintf(lasterr, sizeof lasterr, "%s", err);
        }
        if (conn) {
            if (ctl_call(conn, "pair-show", 1, &id, &r) == CTL_EXIT_OK) {
                lasterr[0] = '\0';
                bool done = drained ? is_drained(&r.doc, 0)
                                    : rt_json_streq(&r.doc, rt_json_get(&r.doc, 0, "state"), state);
                where(&r.doc, 0, last, sizeof last);
                if (done) {
                    if (tty && shown)
                        fputs("\r\033[K", stderr);
                    if (ctl->json)
                        printf("%s\n", r.text);
                    else if (drained)
                        printf("pair %s: drained after %.1f s (%s)\n", id, now_s() - start,
                               last);
                    else
                        printf("pair %s: in state %s after %.1f s\n", id, state, now_s() - start);
                    ctl_resp_free(&r);
                    ctl_disconnect(conn);
                    return CTL_EXIT_OK;
                }
                ctl_resp_free(&r);
            } else if (!r.transport) { /* the node answered: no such pair, ... */
                if (tty && shown)
                    fputs("\r\033[K", stderr);
                rc = ctl_report(ctl, &r);
                ctl_resp_free(&r);
                ctl_disconnect(conn);
                return rc;
            } else {
                snprintf(lasterr, sizeof lasterr, "%s", r.error);
                ctl_resp_free(&r);
                ctl_disconnect(conn);
                conn = NULL;
            }
        }
        double now = now_s();
        if (tty && now >= next_show) {
            fprintf(stderr, "\r\033[Kwaiting for pair %s (%s): %s", id,
                    drained ? "drained" : state, lasterr[0] ? "node unreachable, retrying" : last);
            shown = true;
            next_show = now + WAIT_PROGRESS_S;
        }
        if (now >= deadline)
            break;
        double pause = conn ? WAIT_POLL_S : WAIT_RETRY_S;
        sleep_s(now + pause > deadline ? deadline - now : pause);
    }
    if (tty && shown)
        fputs("\r\033[K", stderr);
    ctl_disconnect(conn);
    if (lasterr[0])
        return ctl_fail(ctl, "pair %s: gave up after %u s: %s", id, timeout, lasterr);
    if (drained)
        return ctl_fail(ctl, "pair %s was not drained within %u s; now: %s", id, timeout, last);
    return ctl_fail(ctl, "pair %s did not reach state %s within %u s; now: %s", id, state,
                    timeout, last);
}
