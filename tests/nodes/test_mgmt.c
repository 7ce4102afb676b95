/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * test_mgmt.c: the management endpoint (nodes/mgmt/mgmt.c) over real links.
 *
 * Three nodes share one libev loop: "srv" runs the management actor from a
 * config file (listener, certificates and trace set as noded would give
 * it), "admin" and "plain" are consoles with an admin certificate and a
 * node certificate of the same site CA, talking mutual TLS 1.3 over
 * loopback like nodectl does. Each test sends requests and checks the
 * answers' codes, error lines and JSON documents: the built-ins, the status
 * merge of several providers by pair id, the admin check, the trace files
 * (chunks, and names that are not in the node's trace set), and the limits
 * (too many pairs, oversized sections and documents). Every wait is bounded.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "link.pb.h"
#include "nodes/mgmt/mgmt.h"
#include "rt.h"
#include "rt_json.h"

/* ---- console actor: sends one request at a time, keeps the answer ------------- */

typedef struct console {
    rt_actor_t actor;
    rt_link_t *link;        /* the outbound link to srv, owned here */
    bool up;
    int downs;
    int answers;
    uint64_t corr;
    int code;               /* of the last answer */
    char error[256];
    char *doc;              /* its payload, NUL-terminated, or NULL */
    size_t len;
} console_t;

static void console_dispatch(rt_actor_t *me, const rt_msg_t *m)
{
    console_t *c = (console_t *)me;
    switch (m->tag) {
    case RT_SIG_LINK_UP:
        c->up = true;
        break;
    case RT_SIG_LINK_DOWN:
        c->up = false;
        c->downs++;
        break;
    case RT_SIG_STOP:
        rt_actor_stopped(me);
        break;
    case ss_Envelope_mgmt_response_tag: {
        const ss_Envelope *e = (const ss_Envelope *)(const void *)m->data;
        if (e->corr != c->corr)
            break;
        free(c->doc);
        c->doc = NULL;
        c->len = 0;
        c->code = e->body.mgmt_response.code;
        snprintf(c->error, sizeof c->error, "%s", e->body.mgmt_response.error);
        if (m->buf && e->payload_len) {
            c->doc = malloc(e->payload_len + 1);
            memcpy(c->doc, m->buf->data, e->payload_len);
            c->doc[e->payload_len] = '\0';
            c->len = e->payload_len;
        }
        c->answers++;
        break;
    }
    default:
        break;
    }
}

/* ---- fixture -------------------------------------------------------------------- */

static struct ev_loop *loop;
static rt_node_t *nsrv, *nadm, *nplain;
static rt_conf_t *conf;
static mgmt_t *mg;
static rt_tls_t *tls_adm, *tls_plain;
static console_t cadm, cplain;
static ev_timer nudge;
static char dir[64], addr[32];

#define RUN_UNTIL(cond, secs)                                                          \
    do {                                                                               \
        uint64_t end_ = rt_mono_us() + (uint64_t)((secs) * 1e6);                       \
        while (!(cond) && rt_mono_us() < end_)                                         \
            ev_run(loop, EVRUN_ONCE);                                                  \
    } while (0)

static void nudge_cb(struct ev_loop *l, ev_timer *w, int revents)
{
    (void)l;
    (void)w;
    (void)revents;
}

static unsigned free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof sa;
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &sl) != 0)
        return 0;
    close(fd);
    return ntohs(sa.sin_port);
}

static char *path_in(const char *name)
{
    static char p[8][128];
    static unsigned k;
    char *s = p[k++ % 8];
    snprintf(s, sizeof p[0], "%s/%s", dir, name);
    return s;
}

static int console_up(console_t *c, rt_node_t *node, rt_tls_t *tls, const char *name)
{
    rt_link_conf_t lc = {
        .peer_name = "srv",
        .hb_interval_s = 0.2,
        .hb_timeout_s = 5,
        .backoff_min_s = 0.02,
        .backoff_max_s = 0.2,
        .sndq_high = 1u << 20,
        .max_payload = 4u << 20,
    };
    memset(c, 0, sizeof *c);
    if (rt_actor_init(&c->actor, node, name, console_dispatch) != RT_OK)
        return -1;
    c->link = rt_link_connect(node, &c->actor, tls, addr, &lc);
    return c->link ? 0 : -1;
}

static int setup(void **state)
{
    (void)state;
    char err[512];
    snprintf(dir, sizeof dir, "/tmp/test_mgmt.XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    if (rt_cert_ca_create(dir, NULL, 0, err, sizeof err) != RT_OK ||
        rt_cert_issue(dir, NULL, "srv", 0, 0, err, sizeof err) != RT_OK ||
        rt_cert_issue(dir, NULL, "admin", 0, RT_CERT_ADMIN, err, sizeof err) != RT_OK ||
        rt_cert_issue(dir, NULL, "plain", 0, 0, err, sizeof err) != RT_OK) {
        fprintf(stderr, "certificates: %s\n", err);
        return -1;
    }
    snprintf(addr, sizeof addr, "127.0.0.1:%u", free_port());
    FILE *f = fopen(path_in("srv.conf"), "w");
    if (!f)
        return -1;
    fprintf(f,
            "[node]\nname = srv\nroles = agent, mt\n"
            "[tls]\nca = ca.crt\ncert = srv.crt\nkey = srv.key\n"
            "[listen]\nmgmt = %s\n"
            "[link]\nhb_interval = 0.2\n"
            "[trace]\nfile = trace.pb\nkeep = 2\n",
            addr);
    fclose(f);
    conf = rt_conf_load(path_in("srv.conf"), err, sizeof err);
    if (!conf) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    loop = ev_loop_new(EVFLAG_AUTO);
    nsrv = rt_node_new_on("srv", conf, loop);
    nadm = rt_node_new_on("admin", NULL, loop);
    nplain = rt_node_new_on("plain", NULL, loop);
    if (!nsrv || !nadm || !nplain)
        return -1;
    mg = mgmt_new(nsrv, conf, err, sizeof err);
    if (!mg) {
        fprintf(stderr, "mgmt_new: %s\n", err);
        return -1;
    }
    tls_adm = rt_tls_ctx_new(path_in("ca.crt"), path_in("admin.crt"), path_in("admin.key"),
                             false, err, sizeof err);
    tls_plain = rt_tls_ctx_new(path_in("ca.crt"), path_in("plain.crt"), path_in("plain.key"),
                               false, err, sizeof err);
    if (!tls_adm || !tls_plain)
        return -1;
    ev_timer_init(&nudge, nudge_cb, 0.01, 0.01);
    ev_timer_start(loop, &nudge);
    if (console_up(&cadm, nadm, tls_adm, "console-admin") ||
        console_up(&cplain, nplain, tls_plain, "console-plain"))
        return -1;
    RUN_UNTIL(cadm.up && cplain.up, 10);
    return cadm.up && cplain.up ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    rt_link_free(cadm.link);
    rt_link_free(cplain.link);
    rt_actor_fini(&cadm.actor);
    rt_actor_fini(&cplain.actor);
    free(cadm.doc);
    free(cplain.doc);
    mgmt_free(mg);
    ev_timer_stop(loop, &nudge);
    rt_node_free(nsrv);
    rt_node_free(nadm);
    rt_node_free(nplain);
    rt_tls_ctx_free(tls_adm);
    rt_tls_ctx_free(tls_plain);
    rt_conf_free(conf);
    ev_loop_destroy(loop);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* ---- requests --------------------------------------------------------------------- */

static rt_json_tok_t toks[16384]; /* a status of MGMT_PAIRS_MAX pairs needs ~8000 */
static rt_json_doc_t d;

/* send @cmd with the NULL-terminated arguments from @c; wait for the answer;
 * parse it into d when there is one. @return the answer's code */
static int call(console_t *c, const char *cmd, ...)
{
    ss_Envelope e = ss_Envelope_init_zero;
    va_list ap;
    const char *a;
    e.which_body = ss_Envelope_mgmt_request_tag;
    e.corr = ++c->corr;
    snprintf(e.body.mgmt_request.cmd, sizeof e.body.mgmt_request.cmd, "%s", cmd);
    va_start(ap, cmd);
    while ((a = va_arg(ap, const char *)) != NULL) {
        pb_size_t i = e.body.mgmt_request.args_count++;
        snprintf(e.body.mgmt_request.args[i], sizeof e.body.mgmt_request.args[i], "%s", a);
    }
    va_end(ap);
    int want = c->answers + 1;
    assert_true(c->up);
    assert_int_equal(rt_link_send(c->link, &e, NULL, 0), RT_OK);
    RUN_UNTIL(c->answers == want, 10);
    assert_int_equal(c->answers, want);
    memset(&d, 0, sizeof d);
    if (c->doc) {
        char err[128];
        if (rt_json_parse(&d, c->doc, c->len, toks, 16384, err, sizeof err) != RT_OK)
            fail_msg("%s: %s in %.200s", cmd, err, c->doc);
    }
    return c->code;
}

static void expect_str(int t, const char *want)
{
    char s[256];
    assert_int_equal(rt_json_get_str(&d, t, s, sizeof s), RT_OK);
    assert_string_equal(s, want);
}

static uint64_t get_u64(int t)
{
    uint64_t v = 0;
    assert_int_equal(rt_json_get_u64(&d, t, &v), RT_OK);
    return v;
}

static bool get_bool(int t)
{
    bool v = false;
    assert_int_equal(rt_json_get_bool(&d, t, &v), RT_OK);
    return v;
}

/* ---- providers used by the tests --------------------------------------------------- */

static int agent_tag, mt_tag, bad_tag, many_tag, big_tag;

static int agent_status(void *ctx, mgmt_status_t *st, rt_json_t *out, char *err, size_t errlen)
{
    (void)ctx;
    (void)err;
    (void)errlen;
    mgmt_pair_t *p1 = mgmt_status_pair(st, "p1"), *p0 = mgmt_status_pair(st, "p0");
    assert_non_null(p1);
    assert_non_null(p0);
    snprintf(p0->state, sizeof p0->state, "protected");
    snprintf(p0->disk, sizeof p0->disk, "disk0");
    snprintf(p0->group, sizeof p0->group, "g1");
    p0->source_seq = 20;
    snprintf(p1->state, sizeof p1->state, "initial_sync");
    p1->source_seq = 10;
    p1->sync_progress = 0.25;
    rt_json_u64(out, "exports", 2);
    rt_json_str(out, "note", "q\"uote");
    return MGMT_OK;
}

static int mt_status(void *ctx, mgmt_status_t *st, rt_json_t *out, char *err, size_t errlen)
{
    (void)ctx;
    (void)err;
    (void)errlen;
    mgmt_pair_t *p0 = mgmt_status_pair(st, "p0"), *p1 = mgmt_status_pair(st, "p1");
    p0->mt_durable_seq = 20; /* everything acked is durable */
    p1->mt_durable_seq = 5;  /* five writes behind */
    p1->backlog_bytes = 5 * 4096;
    rt_json_u64(out, "journals", 2);
    return MGMT_OK;
}

static int bad_status(void *ctx, mgmt_status_t *st, rt_json_t *out, char *err, size_t errlen)
{
    (void)ctx;
    mgmt_status_pair(st, "p2")->drained = 1; /* kept even though the section fails */
    rt_json_u64(out, "half", 1);
    rt_json_obj(out, "left_open");
    snprintf(err, errlen, "disk on fire");
    return MGMT_FAIL;
}

static void test_ping(void **state)
{
    (void)state;
    assert_int_equal(call(&cadm, "ping", NULL), MGMT_OK);
    expect_str(rt_json_get(&d, 0, "node"), "srv");
    expect_str(rt_json_get(&d, 0, "peer"), "admin");
    expect_str(rt_json_get(&d, 0, "version"), SS_VERSION);
    int roles = rt_json_get(&d, 0, "roles");
    assert_int_equal(rt_json_size(&d, roles), 2);
    expect_str(rt_json_at(&d, roles, 0), "agent");
    expect_str(rt_json_at(&d, roles, 1), "mt");
    assert_true(get_bool(rt_json_get(&d, 0, "admin")));
    assert_int_equal(get_u64(rt_json_get(&d, 0, "proto")), RT_PROTO_VERSION);

    assert_int_equal(call(&cplain, "ping", NULL), MGMT_OK);
    expect_str(rt_json_get(&d, 0, "peer"), "plain");
    assert_false(get_bool(rt_json_get(&d, 0, "admin")));

    assert_int_equal(call(&cplain, "ping", "extra", NULL), MGMT_USAGE);
    assert_non_null(strstr(cplain.error, "takes no arguments"));
    assert_null(cplain.doc);
}

static void test_status_merges_providers(void **state)
{
    (void)state;
    assert_int_equal(mgmt_register_status(mg, "agent", agent_status, &agent_tag), RT_OK);
    assert_int_equal(mgmt_register_status(mg, "mt", mt_status, &mt_tag), RT_OK);
    assert_int_equal(mgmt_register_status(mg, "bad", bad_status, &bad_tag), RT_OK);
    assert_int_equal(mgmt_register_status(mg, "agent", mt_status, &mt_tag), RT_ERR); /* taken */

    assert_int_equal(call(&cplain, "status", NULL), MGMT_OK);
    expect_str(rt_json_get(&d, 0, "node"), "srv");
    assert_true(get_u64(rt_json_get(&d, rt_json_get(&d, 0, "memory"), "budget")) > 0);
    assert_int_equal(rt_json_type(&d, rt_json_get(&d, 0, "links")), RT_JSON_T_ARR);
    int secs = rt_json_get(&d, 0, "sections");
    assert_int_equal(get_u64(rt_json_get(&d, rt_json_get(&d, secs, "agent"), "exports")), 2);
    expect_str(rt_json_get(&d, rt_json_get(&d, secs, "agent"), "note"), "q\"uote");
    assert_int_equal(get_u64(rt_json_get(&d, rt_json_get(&d, secs, "mt"), "journals")), 2);
    int bad = rt_json_get(&d, secs, "bad"); /* its half-written section was replaced */
    assert_int_equal(rt_json_size(&d, bad), 1);
    expect_str(rt_json_get(&d, bad, "error"), "disk on fire");

    int pairs = rt_json_get(&d, 0, "pairs");
    assert_int_equal(rt_json_size(&d, pairs), 3);
    int p0 = rt_json_at(&d, pairs, 0), p1 = rt_json_at(&d, pairs, 1), p2 = rt_json_at(&d, pairs, 2);
    expect_str(rt_json_get(&d, p0, "id"), "p0"); /* sorted by id */
    expect_str(rt_json_get(&d, p1, "id"), "p1");
    expect_str(rt_json_get(&d, p2, "id"), "p2");
    /* p0: from the agent and the mt, merged; everything acked is durable */
    expect_str(rt_json_get(&d, p0, "state"), "protected");
    expect_str(rt_json_get(&d, p0, "disk"), "disk0");
    expect_str(rt_json_get(&d, p0, "group"), "g1");
    assert_int_equal(get_u64(rt_json_get(&d, p0, "source_seq")), 20);
    assert_int_equal(get_u64(rt_json_get(&d, p0, "mt_durable_seq")), 20);
    assert_true(get_bool(rt_json_get(&d, p0, "drained")));
    assert_int_equal(rt_json_type(&d, rt_json_get(&d, p0, "cache_bytes")), RT_JSON_T_NULL);
    assert_int_equal(rt_json_type(&d, rt_json_get(&d, p0, "link")), RT_JSON_T_NULL);
    assert_int_equal(rt_json_type(&d, rt_json_get(&d, p0, "sync_progress")), RT_JSON_T_NULL);
    /* p1: behind */
    assert_false(get_bool(rt_json_get(&d, p1, "drained")));
    assert_int_equal(get_u64(rt_json_get(&d, p1, "backlog_bytes")), 5 * 4096);
    double prog = 0;
    assert_int_equal(rt_json_get_dbl(&d, rt_json_get(&d, p1, "sync_progress"), &prog), RT_OK);
    assert_true(prog == 0.25);
    /* p2: only said "drained" explicitly */
    assert_true(get_bool(rt_json_get(&d, p2, "drained")));
    assert_int_equal(rt_json_type(&d, rt_json_get(&d, p2, "state")), RT_JSON_T_NULL);
    /* every documented field is there (docs/MGMT.md) */
    static const char *const fields[] = {
        "id", "disk", "group", "state", "source_seq", "ps_durable_seq", "mt_durable_seq",
        "drained", "rpo_lag_ms", "backlog_bytes", "cache_bytes", "cache_quota", "link",
        "bitmap_dirty_bytes", "sync_progress",
    };
    assert_int_equal(rt_json_size(&d, p0), sizeof fields / sizeof fields[0]);
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        assert_true(rt_json_get(&d, p0, fields[i]) >= 0);
    assert_false(get_bool(rt_json_get(&d, 0, "pairs_truncated")));

    /* pairs and pair-show see the same merge */
    assert_int_equal(call(&cplain, "pairs", NULL), MGMT_OK);
    assert_int_equal(rt_json_size(&d, rt_json_get(&d, 0, "pairs")), 3);
    assert_int_equal(rt_json_get(&d, 0, "sections"), -1);
    assert_int_equal(call(&cplain, "pair-show", "p1", NULL), MGMT_OK);
    expect_str(rt_json_get(&d, 0, "id"), "p1");
    expect_str(rt_json_get(&d, 0, "state"), "initial_sync");
    assert_int_equal(get_u64(rt_json_get(&d, 0, "mt_durable_seq")), 5);
    assert_int_equal(call(&cplain, "pair-show", "nope", NULL), MGMT_FAIL);
    assert_string_equal(cplain.error, "no pair 'nope' on node srv (nodectl pairs lists them)");
    assert_int_equal(call(&cplain, "pair-show", NULL), MGMT_USAGE);

    /* a role going away takes its providers with it */
    mgmt_unregister(mg, &bad_tag);
    assert_int_equal(call(&cplain, "pairs", NULL), MGMT_OK);
    assert_int_equal(rt_json_size(&d, rt_json_get(&d, 0, "pairs")), 2);
    mgmt_unregister(mg, &agent_tag);
    mgmt_unregister(mg, &mt_tag);
    assert_int_equal(call(&cplain, "status", NULL), MGMT_OK);
    assert_int_equal(rt_json_size(&d, rt_json_get(&d, 0, "pairs")), 0);
    assert_int_equal(rt_json_size(&d, rt_json_get(&d, 0, "sections")), 0);
}

/* ---- commands and the admin check --------------------------------------------------- */

static int pokes;

static int cmd_poke(void *ctx, const ss_MgmtRequest *req, rt_json_t *out, char *err,
                    size_t errlen)
{
    (void)ctx;
    (void)req;
    (void)out;
    (void)err;
    (void)errlen;
    pokes++; /* writes nothing: the answer is {} */
    return MGMT_OK;
}

static int cmd_huge(void *ctx, const ss_MgmtRequest *req, rt_json_t *out, char *err,
                    size_t errlen)
{
    (void)ctx;
    (void)req;
    (void)err;
    (void)errlen;
    static char kib[1024];
    memset(kib, 'x', sizeof kib - 1);
    rt_json_arr(out, NULL);
    for (unsigned i = 0; i < 3000; i++) /* 3 MB: above MGMT_DOC_MAX */
        rt_json_str(out, NULL, kib);
    rt_json_arr_end(out);
    return MGMT_OK;
}

static void test_commands_and_admin(void **state)
{
    (void)state;
    assert_int_equal(mgmt_register(mg, "poke", cmd_poke, &pokes, MGMT_ADMIN), RT_OK);
    assert_int_equal(mgmt_register(mg, "poke", cmd_poke, &pokes, 0), RT_ERR);
    assert_int_equal(mgmt_register(mg, "status", cmd_poke, &pokes, 0), RT_ERR);
    assert_int_equal(mgmt_register(mg, "a-name-longer-than-thirty-one-chars", cmd_poke, &pokes, 0),
                     RT_ERR);
    assert_int_equal(mgmt_register(mg, "huge", cmd_huge, &pokes, 0), RT_OK);

    assert_int_equal(call(&cplain, "poke", NULL), MGMT_FAIL); /* a node certificate */
    assert_non_null(strstr(cplain.error, "needs an admin certificate"));
    assert_int_equal(pokes, 0);
    assert_int_equal(call(&cadm, "poke", NULL), MGMT_OK);
    assert_int_equal(pokes, 1);
    assert_string_equal(cadm.doc, "{}");

    assert_int_equal(call(&cadm, "frobnicate", NULL), MGMT_USAGE);
    assert_non_null(strstr(cadm.error, "has no command 'frobnicate'"));
    assert_non_null(strstr(cadm.error, "poke"));

    assert_int_equal(call(&cadm, "huge", NULL), MGMT_FAIL);
    assert_non_null(strstr(cadm.error, "too large"));
    assert_null(cadm.doc);

    mgmt_unregister(mg, &pokes);
    assert_int_equal(call(&cadm, "poke", NULL), MGMT_USAGE);
    assert_int_equal(call(&cadm, "ping", NULL), MGMT_OK); /* built-ins stay */
}

/* ---- limits of status ------------------------------------------------------------------ */

static int many_status(void *ctx, mgmt_status_t *st, rt_json_t *out, char *err, size_t errlen)
{
    (void)ctx;
    (void)out;
    (void)err;
    (void)errlen;
    char id[16];
    unsigned made = 0;
    for (unsigned i = 0; i < MGMT_PAIRS_MAX + 10; i++) {
        snprintf(id, sizeof id, "q%04u", i);
        made += mgmt_status_pair(st, id) != NULL;
    }
    assert_int_equal(made, MGMT_PAIRS_MAX);
    assert_null(mgmt_status_pair(st, ""));
    return MGMT_OK;
}

static int big_status(void *ctx, mgmt_status_t *st, rt_json_t *out, char *err, size_t errlen)
{
    (void)ctx;
    (void)st;
    (void)err;
    (void)errlen;
    static char kib[1024];
    memset(kib, 'y', sizeof kib - 1);
    rt_json_arr(out, "blob");
    for (unsigned i = 0; i < 300; i++) /* 300 KB: above MGMT_SECTION_MAX */
        rt_json_str(out, NULL, kib);
    rt_json_arr_end(out);
    return MGMT_OK;
}

static void test_status_limits(void **state)
{
    (void)state;
    assert_int_equal(mgmt_register_status(mg, "many", many_status, &many_tag), RT_OK);
    assert_int_equal(mgmt_register_status(mg, "big", big_status, &big_tag), RT_OK);
    assert_int_equal(call(&cadm, "status", NULL), MGMT_OK);
    assert_int_equal(rt_json_size(&d, rt_json_get(&d, 0, "pairs")), MGMT_PAIRS_MAX);
    assert_true(get_bool(rt_json_get(&d, 0, "pairs_truncated")));
    int big = rt_json_get(&d, rt_json_get(&d, 0, "sections"), "big");
    assert_int_equal(rt_json_get(&d, big, "blob"), -1);
    assert_non_null(strstr(cadm.doc, "larger than"));
    assert_true(cadm.len < MGMT_DOC_MAX);
    mgmt_unregister(mg, &many_tag);
    mgmt_unregister(mg, &big_tag);
}

/* ---- trace files ---------------------------------------------------------------------- */

static void write_file(const char *path, size_t n, unsigned seed)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    for (size_t i = 0; i < n; i++)
        fputc((int)((i * 31 + seed) & 0xff), f);
    fclose(f);
}

static void test_trace_files(void **state)
{
    (void)state;
    const size_t big = 2 * MGMT_CHUNK + 1000; /* three chunks */
    write_file(path_in("trace.pb.2"), big, 7);
    write_file(path_in("trace.pb.1"), 100, 9);
    write_file(path_in("trace.pb.3"), 10, 1); /* past keep = 2: not in the set */
    write_file(path_in("secret"), 10, 1);

    assert_int_equal(call(&cplain, "trace-list", NULL), MGMT_OK);
    int files = rt_json_get(&d, 0, "files");
    assert_int_equal(rt_json_size(&d, files), 3);
    expect_str(rt_json_get(&d, rt_json_at(&d, files, 0), "name"), "trace.pb.2"); /* oldest first */
    expect_str(rt_json_get(&d, rt_json_at(&d, files, 1), "name"), "trace.pb.1");
    expect_str(rt_json_get(&d, rt_json_at(&d, files, 2), "name"), "trace.pb");
    assert_int_equal(get_u64(rt_json_get(&d, rt_json_at(&d, files, 0), "size")), big);

    /* the big one in chunks: whole, in order, no more than MGMT_CHUNK each */
    uint8_t *got = malloc(big), *chunk = malloc(MGMT_CHUNK);
    size_t off = 0;
    for (int i = 0; i < 5 && off < big; i++) {
        char off_s[24];
        size_t n = 0;
        snprintf(off_s, sizeof off_s, "%zu", off);
        assert_int_equal(call(&cplain, "trace-get", "trace.pb.2", off_s, NULL), MGMT_OK);
        assert_int_equal(get_u64(rt_json_get(&d, 0, "offset")), off);
        assert_int_equal(get_u64(rt_json_get(&d, 0, "size")), big);
        assert_int_equal(rt_json_get_b64(&d, rt_json_get(&d, 0, "data"), chunk, MGMT_CHUNK, &n),
                         RT_OK);
        assert_int_equal(get_u64(rt_json_get(&d, 0, "len")), n);
        assert_true(n > 0 && n <= MGMT_CHUNK);
        assert_int_equal(get_bool(rt_json_get(&d, 0, "eof")), off + n == big);
        memcpy(got + off, chunk, n);
        off += n;
    }
    assert_int_equal(off, big);
    for (size_t i = 0; i < big; i++)
        if (got[i] != (uint8_t)((i * 31 + 7) & 0xff))
            fail_msg("byte %zu differs", i);
    free(got);
    free(chunk);

    /* a LENGTH, and the end of the file */
    assert_int_equal(call(&cplain, "trace-get", "trace.pb.1", "90", "5", NULL), MGMT_OK);
    assert_int_equal(get_u64(rt_json_get(&d, 0, "len")), 5);
    assert_false(get_bool(rt_json_get(&d, 0, "eof")));
    assert_int_equal(call(&cplain, "trace-get", "trace.pb.1", "95", "100", NULL), MGMT_OK);
    assert_int_equal(get_u64(rt_json_get(&d, 0, "len")), 5);
    assert_true(get_bool(rt_json_get(&d, 0, "eof")));
    assert_int_equal(call(&cplain, "trace-get", "trace.pb.1", "100", NULL), MGMT_OK);
    assert_int_equal(get_u64(rt_json_get(&d, 0, "len")), 0);
    assert_true(get_bool(rt_json_get(&d, 0, "eof")));
    assert_int_equal(call(&cplain, "trace-get", "trace.pb.1", "101", NULL), MGMT_FAIL);
    assert_non_null(strstr(cplain.error, "past the end"));

    /* only the node's own trace set, by exact name */
    static const char *const refused[] = {
        "trace.pb.3", "trace.pb.0", "trace.pb.01", "secret", "../secret", "/etc/passwd",
        "trace.pb/../secret", "trace.pb.1/", "", "srv.key", "trace.pb.",
    };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        if (call(&cplain, "trace-get", refused[i], "0", NULL) != MGMT_FAIL)
            fail_msg("trace-get '%s' was not refused", refused[i]);
        assert_non_null(strstr(cplain.error, "is not a trace file of node srv"));
    }
    assert_int_equal(call(&cplain, "trace-get", "trace.pb.1", "x", NULL), MGMT_USAGE);
    assert_int_equal(call(&cplain, "trace-get", "trace.pb.1", "-1", NULL), MGMT_USAGE);
    assert_int_equal(call(&cplain, "trace-get", "trace.pb.1", "0", "0", NULL), MGMT_USAGE);
    assert_int_equal(call(&cplain, "trace-get", "trace.pb.1", NULL), MGMT_USAGE);
}

/* ---- a frame that is not a request ----------------------------------------------------- */

static void test_bad_frame_closes_link(void **state)
{
    (void)state;
    ss_Envelope e = ss_Envelope_init_zero;
    e.which_body = ss_Envelope_write_ack_tag;
    int downs = cplain.downs;
    assert_int_equal(rt_link_send(cplain.link, &e, NULL, 0), RT_OK);
    RUN_UNTIL(cplain.downs > downs, 5);
    assert_true(cplain.downs > downs);
    /* the console reconnects by itself and is served again */
    RUN_UNTIL(cplain.up, 5);
    assert_int_equal(call(&cplain, "ping", NULL), MGMT_OK);
    /* the other console never noticed */
    assert_int_equal(call(&cadm, "ping", NULL), MGMT_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ping),
        cmocka_unit_test(test_status_merges_providers),
        cmocka_unit_test(test_commands_and_admin),
        cmocka_unit_test(test_status_limits),
        cmocka_unit_test(test_trace_files),
        cmocka_unit_test(test_bad_frame_closes_link),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
