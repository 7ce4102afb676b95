/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * mgmt_client.c: nodectl's side of the management endpoint (nodes/mgmt).
 *
 * A console is a short-lived program, so this is a blocking client: connect
 * to the endpoint the console file names, TLS 1.3 with the console's admin
 * certificate, exchange Hellos like any node of the site, then one request
 * and one response at a time. The session runs on a non-blocking socket
 * driven by poll(), because rt_tls.c (the project's one door to wolfSSL)
 * speaks "call again when readable/writable"; that also gives every step a
 * timeout, so nodectl never hangs on a node that accepted and went quiet.
 * The node's heartbeats are answered while waiting, as a link peer must.
 *
 * The console file is an INI file checked by rt_conf.c like a node's:
 * [console] endpoint (and timeout), [tls] ca, cert, key. A node's own file
 * works too (its [listen] mgmt is the endpoint), for use on an appliance.
 * Every failure becomes one line for the operator, kept in the caller's
 * response or error buffer: where nodectl tried, what failed, what to check.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "link.pb.h"
#include "nodectl.h"
#include "rt.h"

#define CTL_DEFAULT_TIMEOUT 10.0                  /* seconds, without [console] timeout */
#define CTL_RBUF            (RT_FRAME_HDR_MAX + 16384u) /* receive staging */

struct ctl_conn {
    int fd;
    rt_tls_t *tls;
    rt_tls_conn_t *tc;
    rt_conf_t *conf;
    char addr[64];          /* the endpoint */
    char hint[PATH_MAX + 32]; /* what to check when it is unreachable */
    char me[RT_NAME_MAX];   /* our certificate's CN, sent in Hello */
    char node[RT_NAME_MAX]; /* the node's name, from its Hello */
    double timeout_s;
    uint64_t corr;
    bool broken;            /* the session is unusable */
    size_t rlen;
    uint8_t rbuf[CTL_RBUF];
};

/* ---- small helpers ------------------------------------------------------------ */

static double mono_s(void)
{
    return (double)rt_mono_us() / 1e6;
}

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    for (char *p = err; *p; p++) /* one line */
        if (*p == '\n' || *p == '\r')
            *p = ' ';
}

/* wait until @fd is readable (or writable); @return 1 ready, 0 timed out, -1 error */
static int wait_fd(int fd, bool for_write, double deadline)
{
    for (;;) {
        double left = deadline - mono_s();
        if (left <= 0)
            return 0;
        struct pollfd p = {fd, (short)(for_write ? POLLOUT : POLLIN), 0};
        int n = poll(&p, 1, (int)(left * 1000) + 1);
        if (n > 0)
            return 1;
        if (n == 0)
            continue; /* recheck the clock */
        if (errno != EINTR)
            return -1;
    }
}

/* ---- session I/O ------------------------------------------------------------------ */

static int conn_fail(ctl_conn_t *c, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int conn_fail(ctl_conn_t *c, char *err, size_t errlen, const char *fmt, ...)
{
    char what[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    c->broken = true;
    set_err(err, errlen, "node at %s: %s", c->addr, what);
    return RT_ERR;
}

/* read some bytes, waiting at most the timeout for the first of them */
static int conn_read(ctl_conn_t *c, void *buf, size_t len, size_t *got, char *err, size_t errlen)
{
    double deadline = mono_s() + c->timeout_s;
    char why[256];
    for (;;) {
        int rc = rt_tls_read(c->tc, buf, len, got, why, sizeof why);
        if (rc == RT_OK)
            return RT_OK;
        if (rc == RT_ERR) {
            if (strstr(why, "alert") || strstr(why, "refused"))
                return conn_fail(c, err, errlen,
                                 "refused this console: %s (is the console certificate from the "
                                 "node's site CA?)",
                                 why);
            return conn_fail(c, err, errlen, "%s", why);
        }
        int w = wait_fd(c->fd, rt_tls_want_write(c->tc), deadline);
        if (w == 0)
            return conn_fail(c, err, errlen, "no answer within %g s (try --timeout)",
                             c->timeout_s);
        if (w < 0)
            return conn_fail(c, err, errlen, "poll: %s", strerror(errno));
    }
}

static int conn_write(ctl_conn_t *c, const void *buf, size_t len, char *err, size_t errlen)
{
    const uint8_t *p = buf;
    double deadline = mono_s() + c->timeout_s;
    char why[256];
    while (len) {
        size_t put = 0;
        int rc = rt_tls_write(c->tc, p, len, &put, why, sizeof why);
        if (rc == RT_OK) {
            p += put;
            len -= put;
            deadline = mono_s() + c->timeout_s;
            continue;
        }
        if (rc == RT_ERR)
            return conn_fail(c, err, errlen, "%s", why);
        int w = wait_fd(c->fd, rt_tls_want_write(c->tc), deadline);
        if (w == 0)
            return conn_fail(c, err, errlen, "does not take data for %g s", c->timeout_s);
        if (w < 0)
            return conn_fail(c, err, errlen, "poll: %s", strerror(errno));
    }
    return RT_OK;
}

static int send_frame(ctl_conn_t *c, const ss_Envelope *env, char *err, size_t errlen)
{
    uint8_t hdr[RT_FRAME_HDR_MAX];
    size_t hl = 0;
    if (rt_frame_encode_header(env, 0, hdr, sizeof hdr, &hl) != RT_OK) {
        set_err(err, errlen, "cannot encode a request (arguments too long?)");
        return RT_ERR;
    }
    return conn_write(c, hdr, hl, err, errlen);
}

/* the next frame: @env, and its payload (malloc'd, NUL-terminated, or NULL) */
static int recv_frame(ctl_conn_t *c, ss_Envelope *env, char **payload, uint32_t *plen, char *err,
                      size_t errlen)
{
    rt_frame_t fr;
    size_t got;
    *payload = NULL;
    *plen = 0;
    for (;;) {
        int rc = rt_frame_decode_header(c->rbuf, c->rlen, RT_MAX_PAYLOAD, env, &fr);
        if (rc == RT_ERR)
            return conn_fail(c, err, errlen, "sent a bad frame: %s", fr.why);
        if (rc == RT_OK)
            break;
        if (c->rlen == sizeof c->rbuf)
            return conn_fail(c, err, errlen, "sent a frame header too large");
        if (conn_read(c, c->rbuf + c->rlen, sizeof c->rbuf - c->rlen, &got, err, errlen) != RT_OK)
            return RT_ERR;
        c->rlen += got;
    }
    size_t have = c->rlen - fr.hdr_len, take = have < fr.payload_len ? have : fr.payload_len;
    char *p = NULL;
    if (fr.payload_len) {
        p = malloc((size_t)fr.payload_len + 1);
        if (!p)
            return conn_fail(c, err, errlen, "out of memory for a reply of %u bytes",
                             (unsigned)fr.payload_len);
        memcpy(p, c->rbuf + fr.hdr_len, take);
    }
    memmove(c->rbuf, c->rbuf + fr.hdr_len + take, c->rlen - fr.hdr_len - take);
    c->rlen -= fr.hdr_len + take;
    for (size_t off = take; off < fr.payload_len; off += got) {
        if (conn_read(c, p + off, fr.payload_len - off, &got, err, errlen) != RT_OK) {
            free(p);
            return RT_ERR;
        }
    }
    if (p)
        p[fr.payload_len] = '\0';
    *payload = p;
    *plen = fr.payload_len;
    return RT_OK;
}

/* link frames while waiting: answer pings, notice goodbyes. @return RT_OK if
 * @env was one of them (handled), RT_AGAIN if it is for the caller */
static int link_frame(ctl_conn_t *c, const ss_Envelope *env, char *err, size_t errlen)
{
    if (env->which_body == ss_Envelope_heartbeat_tag) {
        if (env->body.heartbeat.echo_us == 0) {
            ss_Envelope pong = ss_Envelope_init_zero;
            pong.which_body = ss_Envelope_heartbeat_tag;
            pong.body.heartbeat.time_us = rt_now_us();
            pong.body.heartbeat.echo_us = env->body.heartbeat.time_us;
            if (send_frame(c, &pong, err, errlen) != RT_OK)
                return RT_ERR;
        }
        return RT_OK;
    }
    if (env->which_body == ss_Envelope_goodbye_tag)
        return conn_fail(c, err, errlen, "closed the connection (goodbye: %s)",
                         env->body.goodbye.reason[0] ? env->body.goodbye.reason : "no reason");
    return RT_AGAIN;
}

/* ---- connect ---------------------------------------------------------------------- */

/* TCP connect with a deadline; @return RT_OK or RT_ERR with the reason */
static int tcp_connect(ctl_conn_t *c, char *err, size_t errlen)
{
    struct sockaddr_storage sa;
    unsigned salen = 0;
    int soerr = 0;
    socklen_t sl = sizeof soerr;
    if (rt_parse_addr(c->addr, &sa, &salen) != RT_OK) {
        set_err(err, errlen, "bad endpoint '%s' (expected a numeric IP:PORT)", c->addr);
        return RT_ERR;
    }
    c->fd = socket(sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        set_err(err, errlen, "socket: %s", strerror(errno));
        return RT_ERR;
    }
    if (connect(c->fd, (const struct sockaddr *)&sa, salen) == 0)
        return RT_OK;
    if (errno != EINPROGRESS) {
        soerr = errno;
    } else {
        int w = wait_fd(c->fd, true, mono_s() + c->timeout_s);
        if (w == 0) {
            set_err(err, errlen, "cannot reach node at %s: no answer within %g s (is noded "
                    "running? check %s)", c->addr, c->timeout_s, c->hint);
            return RT_ERR;
        }
        if (w < 0 || getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
            soerr = errno;
    }
    if (soerr) {
        char why[128];
        snprintf(why, sizeof why, "%s", strerror(soerr));
        if (why[0] >= 'A' && why[0] <= 'Z') /* "connection refused", mid-sentence */
            why[0] = (char)(why[0] - 'A' + 'a');
        set_err(err, errlen, "cannot reach node at %s: %s (is noded running? check %s)", c->addr,
                why, c->hint);
        return RT_ERR;
    }
    return RT_OK;
}

/* read the console file: endpoint, timeout, certificates; @return exit code */
static int load_conf(ctl_conn_t *c, const ctl_t *ctl, char *ca, char *crt, char *key, size_t n,
                     char *err, size_t errlen)
{
    char why[512];
    if (!ctl->conf) {
        set_err(err, errlen, "no console configuration: give --conf FILE or set NODECTL_CONF (a "
                "file with [console] endpoint and [tls] ca, cert, key)");
        return CTL_EXIT_USAGE;
    }
    if (getenv("NODECTL_CONF") && strcmp(getenv("NODECTL_CONF"), ctl->conf) == 0)
        snprintf(c->hint, sizeof c->hint, "NODECTL_CONF");
    else
        snprintf(c->hint, sizeof c->hint, "%s", ctl->conf);
    c->conf = rt_conf_load(ctl->conf, why, sizeof why);
    if (!c->conf) {
        set_err(err, errlen, "%s", why);
        return CTL_EXIT_USAGE;
    }
    const char *ep = rt_conf_str(c->conf, "console", "endpoint");
    if (!ep)
        ep = rt_conf_str(c->conf, "listen", "mgmt"); /* a node's own file */
    if (!ep) {
        set_err(err, errlen, "%s: no [console] endpoint (nor [listen] mgmt) to say where the node "
                "is", ctl->conf);
        return CTL_EXIT_USAGE;
    }
    snprintf(c->addr, sizeof c->addr, "%s", ep);
    c->timeout_s = ctl->timeout_s > 0 ? ctl->timeout_s
                                      : rt_conf_double(c->conf, "console", "timeout");
    if (c->timeout_s <= 0)
        c->timeout_s = CTL_DEFAULT_TIMEOUT;
    if (!rt_conf_path(c->conf, "tls", "ca", ca, n) ||
        !rt_conf_path(c->conf, "tls", "cert", crt, n) ||
        !rt_conf_path(c->conf, "tls", "key", key, n)) {
        set_err(err, errlen, "%s: [tls] ca, cert and key are needed to reach a node (nodectl init "
                "makes them)", ctl->conf);
        return CTL_EXIT_USAGE;
    }
    return CTL_EXIT_OK;
}

ctl_conn_t *ctl_connect(const ctl_t *ctl, int *rc, char *err, size_t errlen)
{
    char ca[PATH_MAX], crt[PATH_MAX], key[PATH_MAX], why[512];
    rt_cert_info_t info;
    ss_Envelope env = ss_Envelope_init_zero;
    char *payload = NULL;
    uint32_t plen;
    ctl_conn_t *c = calloc(1, sizeof *c);

    *rc = CTL_EXIT_FAIL;
    if (!c) {
        set_err(err, errlen, "out of memory");
        return NULL;
    }
    c->fd = -1;
    if ((*rc = load_conf(c, ctl, ca, crt, key, sizeof ca, err, errlen)) != CTL_EXIT_OK)
        goto fail;
    *rc = CTL_EXIT_FAIL;
    if (rt_cert_info(crt, &info, why, sizeof why) != RT_OK) {
        set_err(err, errlen, "%s", why);
        goto fail;
    }
    snprintf(c->me, sizeof c->me, "%s", info.cn);
    c->tls = rt_tls_ctx_new(ca, crt, key, false, why, sizeof why);
    if (!c->tls) {
        set_err(err, errlen, "%s", why);
        goto fail;
    }
    if (tcp_connect(c, err, errlen) != RT_OK)
        goto fail;
    c->tc = rt_tls_conn_new(c->tls, c->fd, why, sizeof why);
    if (!c->tc) {
        set_err(err, errlen, "%s", why);
        goto fail;
    }
    for (double deadline = mono_s() + c->timeout_s;;) {
        int hs = rt_tls_handshake(c->tc, why, sizeof why);
        if (hs == RT_OK)
            break;
        if (hs == RT_ERR) {
            set_err(err, errlen, "node at %s refused this console: %s (is the console "
                    "certificate from the node's site CA?)", c->addr, why);
            goto fail;
        }
        int w = wait_fd(c->fd, rt_tls_want_write(c->tc), deadline);
        if (w <= 0) {
            set_err(err, errlen, "node at %s: no TLS handshake within %g s (is it a management "
                    "endpoint? check %s)", c->addr, c->timeout_s, c->hint);
            goto fail;
        }
    }
    env.which_body = ss_Envelope_hello_tag;
    env.body.hello.version = RT_PROTO_VERSION;
    snprintf(env.body.hello.node, sizeof env.body.hello.node, "%s", c->me);
    env.body.hello.roles = 0; /* a console */
    env.body.hello.time_us = rt_now_us();
    env.body.hello.max_payload = RT_MAX_PAYLOAD;
    if (send_frame(c, &env, err, errlen) != RT_OK)
        goto fail;
    for (;;) {
        if (recv_frame(c, &env, &payload, &plen, err, errlen) != RT_OK)
            goto fail;
        free(payload);
        if (env.which_body == ss_Envelope_hello_tag)
            break;
        if (link_frame(c, &env, err, errlen) == RT_ERR)
            goto fail;
    }
    if (env.body.hello.version != RT_PROTO_VERSION) {
        set_err(err, errlen, "node at %s speaks link protocol %u, this nodectl %u: use the "
                "nodectl of the same release", c->addr, (unsigned)env.body.hello.version,
                RT_PROTO_VERSION);
        goto fail;
    }
    snprintf(c->node, sizeof c->node, "%s", env.body.hello.node);
    *rc = CTL_EXIT_OK;
    return c;
fail:
    ctl_disconnect(c);
    return NULL;
}

void ctl_disconnect(ctl_conn_t *c)
{
    if (!c)
        return;
    if (c->tc) {
        if (!c->broken)
            rt_tls_shutdown(c->tc);
        rt_tls_conn_free(c->tc);
    }
    if (c->fd >= 0)
        close(c->fd);
    rt_tls_ctx_free(c->tls);
    rt_conf_free(c->conf);
    free(c);
}

const char *ctl_conn_node(const ctl_conn_t *c)
{
    return c->node;
}

const char *ctl_conn_addr(const ctl_conn_t *c)
{
    return c->addr;
}

bool ctl_conn_broken(const ctl_conn_t *c)
{
    return c->broken;
}

/* ---- requests ------------------------------------------------------------------------ */

void ctl_resp_free(ctl_resp_t *r)
{
    free(r->text);
    free(r->tok);
    memset(r, 0, sizeof *r);
}

int ctl_call(ctl_conn_t *c, const char *cmd, unsigned nargs, const char *const *args,
             ctl_resp_t *r)
{
    ss_Envelope env = ss_Envelope_init_zero;
    char *payload = NULL;
    uint32_t plen = 0;

    memset(r, 0, sizeof *r);
    r->code = CTL_EXIT_FAIL;
    if (c->broken) {
        set_err(r->error, sizeof r->error, "node at %s: the connection is broken", c->addr);
        r->transport = true;
        return CTL_EXIT_FAIL;
    }
    ss_MgmtRequest *q = &env.body.mgmt_request;
    env.which_body = ss_Envelope_mgmt_request_tag;
    env.corr = ++c->corr;
    if (strlen(cmd) >= sizeof q->cmd || nargs > sizeof q->args / sizeof q->args[0]) {
        set_err(r->error, sizeof r->error, "command '%s' or its arguments do not fit a request",
                cmd);
        return r->code = CTL_EXIT_USAGE;
    }
    snprintf(q->cmd, sizeof q->cmd, "%s", cmd);
    for (unsigned i = 0; i < nargs; i++) {
        if (strlen(args[i]) >= sizeof q->args[0]) {
            set_err(r->error, sizeof r->error, "argument '%.40s...' is too long (at most %zu "
                    "characters)", args[i], sizeof q->args[0] - 1);
            return r->code = CTL_EXIT_USAGE;
        }
        snprintf(q->args[i], sizeof q->args[0], "%s", args[i]);
    }
    q->args_count = (pb_size_t)nargs;
    if (send_frame(c, &env, r->error, sizeof r->error) != RT_OK)
        goto broken;
    for (;;) {
        if (recv_frame(c, &env, &payload, &plen, r->error, sizeof r->error) != RT_OK)
            goto broken;
        if (env.which_body == ss_Envelope_mgmt_response_tag && env.corr == c->corr)
            break;
        free(payload);
        payload = NULL;
        if (link_frame(c, &env, r->error, sizeof r->error) == RT_ERR)
            goto broken;
    }
    const ss_MgmtResponse *a = &env.body.mgmt_response;
    if (a->code != CTL_EXIT_OK) {
        free(payload);
        set_err(r->error, sizeof r->error, "%s", a->error[0] ? a->error : "failed (no reason)");
        return r->code = a->code == CTL_EXIT_USAGE ? CTL_EXIT_USAGE : CTL_EXIT_FAIL;
    }
    char why[160];
    r->text = payload;
    r->len = plen;
    if (!payload ||
        rt_json_parse(&r->doc, payload, plen, NULL, 0, why, sizeof why) != RT_OK ||
        !(r->tok = calloc(r->doc.ntok, sizeof *r->tok)) ||
        rt_json_parse(&r->doc, payload, plen, r->tok, r->doc.ntok, why, sizeof why) != RT_OK) {
        char msg[sizeof r->error];
        set_err(msg, sizeof msg, "node at %s answered '%s' with a broken document: %s", c->addr,
                cmd, payload ? why : "empty");
        ctl_resp_free(r);
        memcpy(r->error, msg, sizeof msg);
        return r->code = CTL_EXIT_FAIL;
    }
    return r->code = CTL_EXIT_OK;
broken:
    free(payload);
    r->transport = true;
    return r->code = CTL_EXIT_FAIL;
}

int ctl_report(const ctl_t *ctl, const ctl_resp_t *r)
{
    if (r->transport)
        fprintf(stderr, "nodectl: %s\n", r->error);
    else if (r->code == CTL_EXIT_USAGE)
        return ctl_usage(ctl, "%s", r->error);
    else
        ctl_fail(ctl, "%s", r->error);
    return r->code == CTL_EXIT_OK ? CTL_EXIT_FAIL : r->code;
}

ctl_conn_t *ctl_open(const ctl_t *ctl, int *rc)
{
    char err[1024];
    ctl_conn_t *c = ctl_connect(ctl, rc, err, sizeof err);
    if (!c && *rc == CTL_EXIT_USAGE && !ctl->conf)
        ctl_usage(ctl, "%s", err);
    else if (!c && *rc == CTL_EXIT_USAGE) /* the console file is wrong */
        fprintf(stderr, "nodectl: %s: %s\n", ctl->path, err);
    else if (!c)
        fprintf(stderr, "nodectl: %s\n", err);
    return c;
}
