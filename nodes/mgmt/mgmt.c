/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * mgmt.c: the management actor, a node's endpoint for nodectl (see mgmt.h).
 *
 * Owns: the [listen] mgmt listener and the console links it accepts, the
 * command registry, the status providers and the pair table a status is
 * collected into. Talks to: consoles (nodectl, later the configuration
 * server) over those links, one ss_MgmtRequest in, one ss_MgmtResponse out,
 * matched by Envelope.corr. No chart: a request is answered within the turn
 * that receives it, so a console link has no state beyond the link's own
 * chart (fsm/link.rl).
 *
 * Why a registry rather than a switch: the roles (agent, ps, mt, cs) are
 * written separately and each knows only its own part of a pair (the agent
 * its captured sequence, the process server its cache, the master target
 * what is durable). Status asks every provider in turn and merges their
 * answers by pair id, so nodectl sees one row per pair whatever the roles
 * of the node, and a new role adds rows without touching this file.
 *
 * Responses are rendered into a bounded growable buffer (MGMT_DOC_MAX), then
 * copied into a buffer of the node's pool for the link. Trace files are
 * served read-only, by name from the node's own trace set only (the names
 * are generated here, never joined from the request), in chunks of at most
 * MGMT_CHUNK bytes read into a pool buffer.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../hub/hub.h"
#include "link.pb.h"
#include "mgmt.h"

#define MGMT_REQ_PAYLOAD 4096u /* largest payload a console may send (requests have none) */
#define MGMT_SCRATCH     4096u /* where sections go when only the pairs are wanted */

typedef struct mgmt_cmd {
    char name[32];
    mgmt_cmd_fn fn;
    void *ctx;
    unsigned flags;
} mgmt_cmd_t;

typedef struct mgmt_prov {
    char name[RT_NAME_MAX];
    mgmt_status_fn fn;
    void *ctx;
} mgmt_prov_t;

struct mgmt_status {
    mgmt_pair_t *pairs;        /* MGMT_PAIRS_MAX entries, the actor's */
    uint32_t n;
    bool truncated;            /* a provider found the table full */
};

struct mgmt {
    rt_actor_t actor;          /* first: "mgmt" */
    rt_node_t *node;
    const rt_conf_t *conf;     /* not owned */
    rt_tls_t *tls;
    rt_listener_t *ls;
    char addr[64];             /* [listen] mgmt */
    uint64_t start_mono;       /* for uptime */
    mgmt_cmd_t cmds[MGMT_CMDS_MAX];
    unsigned ncmds;
    mgmt_prov_t provs[MGMT_STATUS_MAX];
    unsigned nprovs;
    struct hub *hub;           /* for the links in status, or NULL */
    char trace_path[4096];     /* "" when the node has no trace */
    unsigned trace_keep;
    bool stopping;
    /* the request being served, for the built-ins */
    rt_link_t *cur_link;
    mgmt_status_t st;
    mgmt_pair_t pairs[MGMT_PAIRS_MAX];
};

static const char *const role_names[] = {"agent", "ps", "cs", "mt"};

/* ---- helpers ------------------------------------------------------------------- */

static uint32_t node_roles(const mgmt_t *me)
{
    return me->conf ? (uint32_t)rt_conf_u64(me->conf, "node", "roles") : 0;
}

static void roles_json(const mgmt_t *me, rt_json_t *j)
{
    uint32_t roles = node_roles(me);
    rt_json_arr(j, "roles");
    for (unsigned i = 0; i < 4; i++)
        if (roles & (1u << i))
            rt_json_str(j, NULL, role_names[i]);
    rt_json_arr_end(j);
}

static double uptime_s(const mgmt_t *me)
{
    return (double)(rt_mono_us() - me->start_mono) / 1e6;
}

/* a strict decimal: @return false if @s is not one or is above @max */
static bool parse_u64(const char *s, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;
    if (!*s)
        return false;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return false;
        unsigned d = (unsigned)(*s - '0');
        if (d > max || v > (max - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

static void fmt_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void fmt_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* ---- status collection ------------------------------------------------------------ */

mgmt_pair_t *mgmt_status_pair(mgmt_status_t *st, const char *id)
{
    if (!id || !id[0] || strlen(id) >= RT_NAME_MAX)
        return NULL;
    for (uint32_t i = 0; i < st->n; i++)
        if (strcmp(st->pairs[i].id, id) == 0)
            return &st->pairs[i];
    if (st->n == MGMT_PAIRS_MAX) {
        st->truncated = true;
        return NULL;
    }
    mgmt_pair_t *p = &st->pairs[st->n++];
    memset(p, 0, sizeof *p);
    snprintf(p->id, sizeof p->id, "%s", id);
    p->source_seq = p->ps_durable_seq = p->mt_durable_seq = MGMT_UNKNOWN;
    p->rpo_lag_ms = p->backlog_bytes = p->cache_bytes = p->cache_quota = MGMT_UNKNOWN;
    p->bitmap_dirty_bytes = MGMT_UNKNOWN;
    p->sync_progress = NAN;
    p->drained = -1;
    return p;
}

static int pair_cmp(const void *a, const void *b)
{
    return strcmp(((const mgmt_pair_t *)a)->id, ((const mgmt_pair_t *)b)->id);
}

/* ask every provider; their sections go into @j (an open object) when it is
 * not NULL. Pairs end up sorted by id in me->st. */
static void collect(mgmt_t *me, rt_json_t *j)
{
    char scratch[MGMT_SCRATCH];
    me->st.pairs = me->pairs;
    me->st.n = 0;
    me->st.truncated = false;
    for (unsigned i = 0; i < me->nprovs; i++) {
        const mgmt_prov_t *pv = &me->provs[i];
        char err[256] = "";
        if (!j) {
            rt_json_t sj;
            rt_json_init(&sj, scratch, sizeof scratch);
            rt_json_obj(&sj, NULL);
            (void)pv->fn(pv->ctx, &me->st, &sj, err, sizeof err);
            continue;
        }
        rt_json_mark_t mk = rt_json_mark(j);
        rt_json_obj(j, pv->name);
        size_t before = j->len;
        uint8_t depth = j->depth;
        int rc = pv->fn(pv->ctx, &me->st, j, err, sizeof err);
        bool ok = rc == MGMT_OK && !j->err && j->depth == depth &&
                  j->len - before <= MGMT_SECTION_MAX;
        if (ok) {
            rt_json_obj_end(j);
            continue;
        }
        if (rc == MGMT_OK)
            fmt_err(err, sizeof err, "section %s is malformed or larger than %u bytes (bug)",
                    pv->name, MGMT_SECTION_MAX);
        else if (!err[0])
            fmt_err(err, sizeof err, "provider %s failed without saying why", pv->name);
        rt_log(RT_LOG_WARN, "mgmt: status of %s: %s", pv->name, err);
        rt_json_rollback(j, mk);
        rt_json_obj(j, pv->name);
        rt_json_str(j, "error", err);
        rt_json_obj_end(j);
    }
    qsort(me->st.pairs, me->st.n, sizeof me->st.pairs[0], pair_cmp);
}

static void opt_str(rt_json_t *j, const char *key, const char *s)
{
    if (s[0])
        rt_json_str(j, key, s);
    else
        rt_json_null(j, key);
}

static void opt_u64(rt_json_t *j, const char *key, uint64_t v)
{
    if (v == MGMT_UNKNOWN)
        rt_json_null(j, key);
    else
        rt_json_u64(j, key, v);
}

/* one pair as a JSON object (docs/MGMT.md) */
static void pair_json(rt_json_t *j, const char *key, const mgmt_pair_t *p)
{
    rt_json_obj(j, key);
    rt_json_str(j, "id", p->id);
    opt_str(j, "disk", p->disk);
    opt_str(j, "group", p->group);
    opt_str(j, "state", p->state);
    opt_u64(j, "source_seq", p->source_seq);
    opt_u64(j, "ps_durable_seq", p->ps_durable_seq);
    opt_u64(j, "mt_durable_seq", p->mt_durable_seq);
    if (p->drained >= 0)
        rt_json_bool(j, "drained", p->drained > 0);
    else if (p->source_seq != MGMT_UNKNOWN && p->mt_durable_seq != MGMT_UNKNOWN)
        rt_json_bool(j, "drained", p->source_seq <= p->mt_durable_seq);
    else
        rt_json_null(j, "drained");
    opt_u64(j, "rpo_lag_ms", p->rpo_lag_ms);
    opt_u64(j, "backlog_bytes", p->backlog_bytes);
    opt_u64(j, "cache_bytes", p->cache_bytes);
    opt_u64(j, "cache_quota", p->cache_quota);
    opt_str(j, "link", p->link);
    opt_u64(j, "bitmap_dirty_bytes", p->bitmap_dirty_bytes);
    rt_json_dbl(j, "sync_progress", p->sync_progress); /* NaN: null */
    rt_json_obj_end(j);
}

static void pairs_json(const mgmt_t *me, rt_json_t *j)
{
    rt_json_arr(j, "pairs");
    for (uint32_t i = 0; i < me->st.n; i++)
        pair_json(j, NULL, &me->st.pairs[i]);
    rt_json_arr_end(j);
    rt_json_bool(j, "pairs_truncated", me->st.truncated);
}

typedef struct {
    mgmt_t *me;
    rt_json_t *j;
} links_walk_t;

/* one [peer NAME]: its link if up, else what the config says */
static void link_entry(void *arg, const char *section, const char *name)
{
    links_walk_t *w = arg;
    rt_json_t *j = w->j;
    rt_link_t *l = hub_link(w->me->hub, name);
    rt_json_obj(j, NULL);
    rt_json_str(j, "peer", name);
    rt_json_str(j, "addr", l ? rt_link_addr(l) : rt_conf_str(w->me->conf, section, "address"));
    rt_json_str(j, "state", l ? rt_link_state(l) : "down");
    rt_json_bool(j, "up", l != NULL);
    if (l)
        rt_json_i64(j, "clock_offset_us", rt_link_clock_offset_us(l));
    else
        rt_json_null(j, "clock_offset_us");
    rt_json_obj_end(j);
}

/* ---- built-in commands ------------------------------------------------------------ */

static int no_args(const ss_MgmtRequest *req, unsigned max, char *err, size_t errlen)
{
    if (req->args_count <= max)
        return MGMT_OK;
    fmt_err(err, errlen, "%s takes %s argument%s, not %u", req->cmd,
            max ? "at most one" : "no", max ? "" : "s", (unsigned)req->args_count);
    return MGMT_USAGE;
}

static int cmd_ping(void *ctx, const ss_MgmtRequest *req, rt_json_t *j, char *err, size_t errlen)
{
    mgmt_t *me = ctx;
    int rc = no_args(req, 0, err, errlen);
    if (rc != MGMT_OK)
        return rc;
    rt_json_obj(j, NULL);
    rt_json_str(j, "node", rt_node_name(me->node));
    roles_json(me, j);
    rt_json_str(j, "version", SS_VERSION);
    rt_json_u64(j, "proto", RT_PROTO_VERSION);
    rt_json_dbl(j, "uptime_s", uptime_s(me));
    rt_json_u64(j, "time_us", rt_now_us());
    rt_json_str(j, "peer", me->cur_link ? rt_link_peer(me->cur_link) : "");
    rt_json_bool(j, "admin", me->cur_link && rt_link_peer_admin(me->cur_link));
    rt_json_obj_end(j);
    return MGMT_OK;
}

static int cmd_status(void *ctx, const ss_MgmtRequest *req, rt_json_t *j, char *err,
                      size_t errlen)
{
    mgmt_t *me = ctx;
    size_t used = 0, budget = 0;
    int rc = no_args(req, 0, err, errlen);
    if (rc != MGMT_OK)
        return rc;
    rt_buf_stats(me->node, &used, &budget);
    rt_json_obj(j, NULL);
    rt_json_str(j, "node", rt_node_name(me->node));
    roles_json(me, j);
    rt_json_str(j, "version", SS_VERSION);
    rt_json_dbl(j, "uptime_s", uptime_s(me));
    rt_json_u64(j, "time_us", rt_now_us());
    rt_json_obj(j, "memory");
    rt_json_u64(j, "used", used);
    rt_json_u64(j, "budget", budget);
    rt_json_obj_end(j);
    rt_json_arr(j, "links");
    if (me->hub && me->conf) {
        links_walk_t w = {me, j};
        rt_conf_each(me->conf, "peer", link_entry, &w);
    }
    rt_json_arr_end(j);
    rt_json_obj(j, "sections");
    collect(me, j);
    rt_json_obj_end(j);
    pairs_json(me, j);
    rt_json_obj_end(j);
    return MGMT_OK;
}

static int cmd_pairs(void *ctx, const ss_MgmtRequest *req, rt_json_t *j, char *err,
                     size_t errlen)
{
    mgmt_t *me = ctx;
    int rc = no_args(req, 0, err, errlen);
    if (rc != MGMT_OK)
        return rc;
    collect(me, NULL);
    rt_json_obj(j, NULL);
    rt_json_str(j, "node", rt_node_name(me->node));
    pairs_json(me, j);
    rt_json_obj_end(j);
    return MGMT_OK;
}

static int cmd_pair_show(void *ctx, const ss_MgmtRequest *req, rt_json_t *j, char *err,
                         size_t errlen)
{
    mgmt_t *me = ctx;
    if (req->args_count != 1) {
        fmt_err(err, errlen, "pair-show takes one argument, the pair id");
        return MGMT_USAGE;
    }
    collect(me, NULL);
    for (uint32_t i = 0; i < me->st.n; i++) {
        if (strcmp(me->st.pairs[i].id, req->args[0]) == 0) {
            pair_json(j, NULL, &me->st.pairs[i]);
            return MGMT_OK;
        }
    }
    fmt_err(err, errlen, "no pair '%s' on node %s (nodectl pairs lists them)", req->args[0],
            rt_node_name(me->node));
    return MGMT_FAIL;
}

/* ---- trace files -------------------------------------------------------------------- */

static const char *trace_base(const mgmt_t *me)
{
    const char *slash = strrchr(me->trace_path, '/');
    return slash ? slash + 1 : me->trace_path;
}

/* the path of trace file number @k of the set (0: the live file) */
static bool trace_file(const mgmt_t *me, unsigned k, char *path, size_t len)
{
    int n = k ? snprintf(path, len, "%s.%u", me->trace_path, k)
              : snprintf(path, len, "%s", me->trace_path);
    return n > 0 && (size_t)n < len;
}

/* which file of the set @name is: @return its number, or -1 if none. The
 * name is compared with the generated names, never used as a path. */
static int trace_lookup(const mgmt_t *me, const char *name)
{
    const char *base = trace_base(me);
    size_t blen = strlen(base);
    uint64_t k;
    if (!me->trace_path[0] || strncmp(name, base, blen) != 0)
        return -1;
    if (name[blen] == '\0')
        return 0;
    if (name[blen] != '.' || name[blen + 1] == '0' ||
        !parse_u64(name + blen + 1, me->trace_keep, &k) || k == 0)
        return -1;
    return (int)k;
}

static int cmd_trace_list(void *ctx, const ss_MgmtRequest *req, rt_json_t *j, char *err,
                          size_t errlen)
{
    mgmt_t *me = ctx;
    char path[4200];
    int rc = no_args(req, 0, err, errlen);
    if (rc != MGMT_OK)
        return rc;
    rt_json_obj(j, NULL);
    rt_json_str(j, "node", rt_node_name(me->node));
    rt_json_arr(j, "files");
    for (unsigned k = me->trace_path[0] ? me->trace_keep + 1 : 0; k-- > 0;) { /* oldest first */
        struct stat sb;
        if (!trace_file(me, k, path, sizeof path) || stat(path, &sb) != 0 || !S_ISREG(sb.st_mode))
            continue;
        const char *slash = strrchr(path, '/');
        rt_json_obj(j, NULL);
        rt_json_str(j, "name", slash ? slash + 1 : path);
        rt_json_u64(j, "size", (uint64_t)sb.st_size);
        rt_json_u64(j, "mtime", (uint64_t)sb.st_mtime);
        rt_json_obj_end(j);
    }
    rt_json_arr_end(j);
    rt_json_obj_end(j);
    return MGMT_OK;
}

static int cmd_trace_get(void *ctx, const ss_MgmtRequest *req, rt_json_t *j, char *err,
                         size_t errlen)
{
    mgmt_t *me = ctx;
    char path[4200];
    uint64_t off, want = MGMT_CHUNK;
    int k, fd = -1, rc = MGMT_FAIL;
    rt_buf_t *b = NULL;
    struct stat sb;

    if (req->args_count < 2 || req->args_count > 3) {
        fmt_err(err, errlen, "trace-get takes NAME OFFSET [LENGTH]");
        return MGMT_USAGE;
    }
    if (!parse_u64(req->args[1], INT64_MAX, &off)) {
        fmt_err(err, errlen, "trace-get: bad OFFSET '%s' (a byte offset)", req->args[1]);
        return MGMT_USAGE;
    }
    if (req->args_count == 3 && (!parse_u64(req->args[2], MGMT_CHUNK, &want) || want == 0)) {
        fmt_err(err, errlen, "trace-get: bad LENGTH '%s' (1 to %u bytes)", req->args[2],
                MGMT_CHUNK);
        return MGMT_USAGE;
    }
    k = trace_lookup(me, req->args[0]);
    if (k < 0 || !trace_file(me, (unsigned)k, path, sizeof path)) {
        fmt_err(err, errlen, "'%s' is not a trace file of node %s (nodectl trace lists them)",
                req->args[0], rt_node_name(me->node));
        return MGMT_FAIL;
    }
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0 || fstat(fd, &sb) != 0) {
        fmt_err(err, errlen, "cannot open trace file %s: %s", req->args[0], strerror(errno));
        goto out;
    }
    if (off > (uint64_t)sb.st_size) {
        fmt_err(err, errlen, "offset %llu is past the end of %s (%llu bytes; rotated?)",
                (unsigned long long)off, req->args[0], (unsigned long long)sb.st_size);
        goto out;
    }
    if (want > (uint64_t)sb.st_size - off)
        want = (uint64_t)sb.st_size - off;
    size_t got = 0;
    if (want) {
        b = rt_buf_alloc(me->node, (size_t)want);
        if (!b) {
            fmt_err(err, errlen, "node %s is short of buffer memory; try again",
                    rt_node_name(me->node));
            goto out;
        }
        while (got < want) {
            ssize_t n = pread(fd, b->data + got, (size_t)want - got, (off_t)(off + got));
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0) {
                fmt_err(err, errlen, "cannot read trace file %s: %s", req->args[0],
                        strerror(errno));
                goto out;
            }
            if (n == 0)
                break; /* cut short under us (rotation): send what there is */
            got += (size_t)n;
        }
    }
    rt_json_obj(j, NULL);
    rt_json_str(j, "name", req->args[0]);
    rt_json_u64(j, "offset", off);
    rt_json_u64(j, "size", (uint64_t)sb.st_size);
    rt_json_u64(j, "len", got);
    rt_json_bool(j, "eof", off + got >= (uint64_t)sb.st_size);
    rt_json_b64(j, "data", b ? b->data : NULL, got);
    rt_json_obj_end(j);
    rc = MGMT_OK;
out:
    rt_buf_unref(b);
    if (fd >= 0)
        close(fd);
    return rc;
}

/* ---- requests ------------------------------------------------------------------------ */

/* one response frame on @l; @doc (@len bytes) is copied into a pool buffer */
static void respond(mgmt_t *me, rt_link_t *l, uint64_t corr, int code, const char *error,
                    const char *doc, size_t len)
{
    ss_Envelope e = ss_Envelope_init_zero;
    rt_buf_t *b = NULL;
    e.which_body = ss_Envelope_mgmt_response_tag;
    e.corr = corr;
    if (len) {
        b = rt_buf_alloc(me->node, len);
        if (b) {
            memcpy(b->data, doc, len);
            b->len = (uint32_t)len;
        } else {
            code = MGMT_FAIL;
            error = "the node is short of buffer memory; try again";
            len = 0;
        }
    }
    e.body.mgmt_response.code = code;
    snprintf(e.body.mgmt_response.error, sizeof e.body.mgmt_response.error, "%s",
             error ? error : "");
    for (char *p = e.body.mgmt_response.error; *p; p++) /* one line, always */
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    int rc = rt_link_send(l, &e, b, (uint32_t)len);
    rt_buf_unref(b);
    if (rc == RT_AGAIN) {
        rt_log(RT_LOG_WARN, "mgmt: %s (%s) does not read its responses: closing", rt_link_peer(l),
               rt_link_addr(l));
        rt_link_close(l);
    } else if (rc == RT_ERR && rt_link_is_up(l)) {
        rt_log(RT_LOG_WARN, "mgmt: cannot answer %s (%s): closing", rt_link_peer(l),
               rt_link_addr(l));
        rt_link_close(l);
    }
}

static const mgmt_cmd_t *cmd_find(const mgmt_t *me, const char *name)
{
    for (unsigned i = 0; i < me->ncmds; i++)
        if (strcmp(me->cmds[i].name, name) == 0)
            return &me->cmds[i];
    return NULL;
}

static void on_request(mgmt_t *me, const rt_msg_t *m)
{
    const ss_Envelope *env = (const ss_Envelope *)(const void *)m->data;
    const ss_MgmtRequest *req = &env->body.mgmt_request;
    rt_link_t *l = m->link;
    char err[256] = "";
    rt_json_t j;

    if (!l || m->len < sizeof *env)
        return;
    const mgmt_cmd_t *c = cmd_find(me, req->cmd);
    if (!c) {
        char names[200] = "";
        size_t off = 0;
        for (unsigned i = 0; i < me->ncmds && off < sizeof names; i++) {
            int n = snprintf(names + off, sizeof names - off, "%s%s", i ? ", " : "",
                             me->cmds[i].name);
            off += n > 0 ? (size_t)n : 0;
        }
        fmt_err(err, sizeof err, "node %s has no command '%s' (it knows: %s)",
                rt_node_name(me->node), req->cmd, names);
        respond(me, l, env->corr, MGMT_USAGE, err, NULL, 0);
        return;
    }
    if ((c->flags & MGMT_ADMIN) && !rt_link_peer_admin(l)) {
        rt_log(RT_LOG_WARN, "mgmt: refused '%s' from %s (%s): not an admin certificate", c->name,
               rt_link_peer(l), rt_link_addr(l));
        fmt_err(err, sizeof err,
                "'%s' needs an admin certificate (OU=admin) and '%s' is not one: use the "
                "console certificate made by nodectl init",
                c->name, rt_link_peer(l));
        respond(me, l, env->corr, MGMT_FAIL, err, NULL, 0);
        return;
    }
    rt_log(RT_LOG_DEBUG, "mgmt: %s from %s", c->name, rt_link_peer(l));
    if (rt_json_init_alloc(&j, 4096, MGMT_DOC_MAX) != RT_OK) {
        respond(me, l, env->corr, MGMT_FAIL, "the node is out of memory; try again", NULL, 0);
        return;
    }
    me->cur_link = l;
    int code = c->fn(c->ctx, req, &j, err, sizeof err);
    me->cur_link = NULL;
    if (code != MGMT_OK && code != MGMT_FAIL && code != MGMT_USAGE) {
        rt_log(RT_LOG_ERR, "mgmt: command %s returned %d (bug)", c->name, code);
        code = MGMT_FAIL;
    }
    if (code == MGMT_OK && j.len == 0 && !j.err) { /* nothing to say: {} */
        rt_json_obj(&j, NULL);
        rt_json_obj_end(&j);
    }
    if (code == MGMT_OK && rt_json_finish(&j) != RT_OK) {
        rt_log(RT_LOG_ERR, "mgmt: the answer to %s is malformed or above %u bytes", c->name,
               MGMT_DOC_MAX);
        fmt_err(err, sizeof err, "the answer to '%s' is too large or malformed (node bug)",
                c->name);
        code = MGMT_FAIL;
    }
    if (code != MGMT_OK && !err[0])
        fmt_err(err, sizeof err, "'%s' failed without saying why", c->name);
    if (code == MGMT_OK)
        respond(me, l, env->corr, code, NULL, j.buf, j.len);
    else
        respond(me, l, env->corr, code, err, NULL, 0);
    rt_json_free(&j);
}

/* ---- dispatch ------------------------------------------------------------------------ */

static void mgmt_dispatch(rt_actor_t *actor, const rt_msg_t *m)
{
    mgmt_t *me = (mgmt_t *)actor;
    switch (m->tag) {
    case RT_SIG_START:
        break;
    case RT_SIG_STOP:
        me->stopping = true; /* the links stop by themselves */
        rt_actor_stopped(actor);
        break;
    case RT_SIG_LINK_UP:
        if (m->link)
            rt_log(RT_LOG_DEBUG, "mgmt: console %s connected from %s%s", rt_link_peer(m->link),
                   rt_link_addr(m->link), rt_link_peer_admin(m->link) ? " (admin)" : "");
        break;
    case RT_SIG_LINK_DOWN:
    case RT_SIG_LINK_WRITABLE:
        break;
    case ss_Envelope_mgmt_request_tag:
        if (!me->stopping)
            on_request(me, m);
        break;
    default:
        if (m->link && m->tag < RT_SIG_USER && !me->stopping) {
            rt_log(RT_LOG_WARN,
                   "mgmt: %s (%s) sent a frame with body %u, which a management endpoint does "
                   "not take: closing",
                   rt_link_peer(m->link), rt_link_addr(m->link), (unsigned)m->tag);
            rt_link_close(m->link);
        }
        break;
    }
}

/* ---- registry ------------------------------------------------------------------------ */

int mgmt_register(mgmt_t *me, const char *name, mgmt_cmd_fn fn, void *ctx, unsigned flags)
{
    if (!name || !name[0] || strlen(name) >= sizeof me->cmds[0].name || !fn ||
        me->ncmds == MGMT_CMDS_MAX || cmd_find(me, name))
        return RT_ERR;
    mgmt_cmd_t *c = &me->cmds[me->ncmds++];
    snprintf(c->name, sizeof c->name, "%s", name);
    c->fn = fn;
    c->ctx = ctx;
    c->flags = flags;
    return RT_OK;
}

int mgmt_register_status(mgmt_t *me, const char *name, mgmt_status_fn fn, void *ctx)
{
    if (!name || !name[0] || strlen(name) >= RT_NAME_MAX || !fn || me->nprovs == MGMT_STATUS_MAX)
        return RT_ERR;
    for (unsigned i = 0; i < me->nprovs; i++)
        if (strcmp(me->provs[i].name, name) == 0)
            return RT_ERR;
    mgmt_prov_t *p = &me->provs[me->nprovs++];
    snprintf(p->name, sizeof p->name, "%s", name);
    p->fn = fn;
    p->ctx = ctx;
    return RT_OK;
}

void mgmt_unregister(mgmt_t *me, void *ctx)
{
    unsigned n = 0;
    for (unsigned i = 0; i < me->ncmds; i++)
        if (me->cmds[i].ctx != ctx || ctx == me)
            me->cmds[n++] = me->cmds[i];
    me->ncmds = n;
    n = 0;
    for (unsigned i = 0; i < me->nprovs; i++)
        if (me->provs[i].ctx != ctx)
            me->provs[n++] = me->provs[i];
    me->nprovs = n;
}

void mgmt_use_hub(mgmt_t *me, struct hub *hub)
{
    me->hub = hub;
}

int mgmt_set_trace(mgmt_t *me, const char *path, unsigned keep)
{
    if (!path) {
        me->trace_path[0] = '\0';
        return RT_OK;
    }
    if (strlen(path) >= sizeof me->trace_path - 8)
        return RT_ERR;
    snprintf(me->trace_path, sizeof me->trace_path, "%s", path);
    me->trace_keep = keep > MGMT_TRACE_FILES - 1 ? MGMT_TRACE_FILES - 1 : keep;
    return RT_OK;
}

/* ---- lifecycle ------------------------------------------------------------------------ */

mgmt_t *mgmt_new(rt_node_t *node, const rt_conf_t *conf, char *err, size_t errlen)
{
    char ca[4096], crt[4096], key[4096], tpath[4096];
    rt_link_conf_t lc;
    mgmt_t *me = calloc(1, sizeof *me);
    if (!me) {
        snprintf(err, errlen, "mgmt: out of memory");
        return NULL;
    }
    me->node = node;
    me->conf = conf;
    me->start_mono = rt_mono_us();
    const char *addr = conf ? rt_conf_str(conf, "listen", "mgmt") : NULL;
    const char *file = conf && rt_conf_file(conf) ? rt_conf_file(conf) : "config";
    if (!addr || !addr[0]) {
        snprintf(err, errlen, "%s: no [listen] mgmt address for the management endpoint", file);
        goto fail;
    }
    snprintf(me->addr, sizeof me->addr, "%s", addr);
    if (!rt_conf_path(conf, "tls", "ca", ca, sizeof ca) ||
        !rt_conf_path(conf, "tls", "cert", crt, sizeof crt) ||
        !rt_conf_path(conf, "tls", "key", key, sizeof key)) {
        snprintf(err, errlen, "%s: [tls] ca, cert and key are needed for [listen] mgmt", file);
        goto fail;
    }
    if (rt_conf_path(conf, "trace", "file", tpath, sizeof tpath))
        mgmt_set_trace(me, tpath, (unsigned)rt_conf_u64(conf, "trace", "keep"));
    if (rt_actor_init(&me->actor, node, "mgmt", mgmt_dispatch) != RT_OK) {
        snprintf(err, errlen, "mgmt: message pool full");
        goto fail;
    }
    if (!(me->tls = rt_tls_ctx_new(ca, crt, key, true, err, errlen)))
        goto fail;
    memset(&lc, 0, sizeof lc);
    lc.hb_interval_s = rt_conf_double(conf, "link", "hb_interval");
    lc.hb_timeout_s = rt_conf_double(conf, "link", "hb_timeout");
    lc.sndq_high = (size_t)rt_conf_u64(conf, "link", "sndq_high");
    lc.max_payload = MGMT_REQ_PAYLOAD;
    me->ls = rt_listener_new(node, &me->actor, me->tls, addr, &lc);
    if (!me->ls) {
        snprintf(err, errlen, "cannot listen on %s for management (see the line above)", addr);
        goto fail;
    }
    static const struct {
        const char *name;
        mgmt_cmd_fn fn;
    } builtins[] = {
        {"ping", cmd_ping},           {"status", cmd_status},
        {"pairs", cmd_pairs},         {"pair-show", cmd_pair_show},
        {"trace-list", cmd_trace_list}, {"trace-get", cmd_trace_get},
    };
    for (size_t i = 0; i < sizeof builtins / sizeof builtins[0]; i++)
        mgmt_register(me, builtins[i].name, builtins[i].fn, me, 0);
    rt_log(RT_LOG_INFO, "management endpoint on %s", addr);
    return me;
fail:
    mgmt_free(me);
    return NULL;
}

void mgmt_free(mgmt_t *me)
{
    if (!me)
        return;
    rt_listener_free(me->ls);
    rt_tls_ctx_free(me->tls);
    rt_actor_fini(&me->actor);
    free(me);
}

rt_actor_t *mgmt_actor(mgmt_t *me)
{
    return &me->actor;
}
