/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * rt_link.c: links between nodes, over TLS 1.3 (or plain TCP) sockets.
 *
 * A link carries frames (rt_frame.c) between two nodes and hides the socket,
 * the TLS session, reconnection and flow control from the actors that use
 * it. Its lifecycle is the chart fsm/link.rl: this file gives the chart its
 * actions (the "act_" functions, each returning the next event) and raises
 * the events that I/O and timers produce. An outbound link reconnects
 * forever with exponential backoff and jitter; an accepted link is closed
 * when lost and the peer reconnects.
 *
 * Receiving: bytes land in a staging buffer where frame headers are decoded;
 * a payload goes into an rt_buf_t from the node's pool (the part already
 * staged is copied, the rest is read straight into it) and the frame is
 * posted to the actor its route picks (the owner by default), with the
 * Envelope in m->data and the payload in m->buf. A full pool stops reading
 * (the link is an actor and gets RT_SIG_RESUME when there is room), so the
 * peer's TCP window fills and a slow receiver slows its sender.
 *
 * Sending: rt_link_send() encodes the header into a bounded header area and
 * queues it with a reference on the payload; plain TCP writes the queue with
 * writev(), TLS gathers it into one record buffer. Past sndq_high the caller
 * gets RT_AGAIN and later RT_SIG_LINK_WRITABLE, once the queue is below half.
 *
 * Hello (first frame each way) carries the protocol version and the node's
 * name, which must be the certificate's CN; heartbeats (a ping each
 * hb_interval, answered at once by a pong) keep the link alive, measure the
 * round trip and refine the peer clock offset. Anything malformed closes
 * that connection only, with one log line that says why.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "fsm.pb.h"
#include "link.pb.h"
#include "rt_i.h"
#include "rt_link_fsm.h"

_Static_assert(sizeof(ss_Envelope) <= RT_MSG_INLINE, "a frame's Envelope must fit a message");
_Static_assert(sizeof(ss_Hello) <= RT_MSG_INLINE, "a Hello must fit a message");

#define EV(x) ss_LinkEvent_LINK_##x

#define LINK_RBUF         (RT_FRAME_HDR_MAX + 16384u) /* receive staging bytes */
#define LINK_SQ_MAX       256u      /* frames queued for sending, at most */
#define LINK_HBUF         (32u << 10) /* encoded headers queued, bytes */
#define LINK_TXBUF        16384u    /* TLS: bytes gathered into one record */
#define LINK_IOV          64        /* iovecs per writev */
#define LINK_READS        32        /* reads per wake-up before yielding */
#define LINK_ACCEPTS      16        /* accepts per wake-up */
#define LINK_ACCEPTED_MAX 128u      /* accepted links alive at once, per listener */
#define LINK_REAP_S       0.05      /* recheck period for freeing a closed link */
#define LINK_SAMPLES      8         /* clock samples kept (the best is used) */
#define LINK_TAG_LINK_MAX 19u       /* body tags 10..19 are the link's own */

/* ---- types ------------------------------------------------------------------ */

/* chart states, in link_fsm_state_at() order */
enum { ST_INIT, ST_CONNECTING, ST_HANDSHAKE, ST_HELLO, ST_UP, ST_BACKOFF, ST_CLOSED };

typedef enum {
    RX_HDR,     /* decoding a header from the staging buffer */
    RX_NEEDBUF, /* header done, waiting for a payload buffer */
    RX_PAYLOAD, /* reading the payload into its buffer */
    RX_DELIVER, /* frame complete, waiting for a message slot */
} rx_state_t;

typedef struct sq_ent {
    uint32_t hoff, hlen; /* encoded header in l->hbuf */
    rt_buf_t *pay;       /* payload (one reference), or NULL */
    uint32_t plen;       /* payload bytes */
    uint32_t done;       /* bytes of header + payload written (or staged for TLS) */
} sq_ent_t;

typedef struct clock_sample {
    int64_t offset_us;   /* peer clock minus ours */
    uint64_t rtt_us;     /* round trip of the measurement */
} clock_sample_t;

struct rt_link {
    rt_actor_t actor;           /* first: "link:NAME"; gets RESUME and STOP */
    rt_node_t *node;
    rt_actor_t *owner;          /* gets link signals and unrouted frames */
    rt_listener_t *ls;          /* accepted: the listener; NULL: outbound */
    rt_link_t *ls_next;         /* the listener's list of links */
    rt_tls_t *tls;              /* NULL: plain TCP */
    rt_tls_conn_t *conn;        /* the session while connected */
    rt_link_conf_t lc;          /* normalised; lc.peer_name points at want_peer */
    char want_peer[RT_NAME_MAX];/* expected CN (outbound with [peer NAME]) */
    struct sockaddr_storage sa; /* peer address */
    unsigned salen;
    char addr[64];              /* "IP:PORT" */
    int fd;                     /* -1 when not connected */
    ev_io rio, wio;
    ev_timer tick;              /* heartbeats, and the deadline before up */
    ev_timer backoff;           /* reconnect delay */
    ev_timer reap;              /* frees a closed link once nothing names it */
    link_fsm_t fsm;
    char detail[320];           /* what the next traced transition says */
    char last_logged[320];      /* outbound failures are logged when they change */
    char peer[RT_NAME_MAX];     /* peer node: certificate CN, then Hello.node */
    bool peer_admin;            /* the peer certificate has OU=admin (mgmt) */
    ss_Hello hello;             /* the peer's Hello */
    bool outbound, up, closed, failed, in_event, stopping;
    bool released;              /* the owner let go (rt_link_close): free when closed */
    double delay_s;             /* next backoff delay, before jitter */
    uint64_t phase_mono;        /* when the current connection attempt began */
    uint64_t last_rx_mono;      /* when the last frame arrived */
    clock_sample_t samples[LINK_SAMPLES];
    unsigned nsamples, sample_next;
    int64_t offset_us;          /* current peer clock offset estimate */
    rt_link_route_fn route;
    void *route_arg;
    rt_actor_t *watch[RT_LINK_WATCHERS]; /* also get link signals */
    unsigned nwatch;
    void *user;
    int evq[4];                 /* events raised while an action ran (a bug) */
    unsigned nevq;

    /* receive */
    rx_state_t rx;
    bool rx_blocked;            /* a pool refused: reading stopped until RESUME */
    ss_Envelope renv;           /* the frame being received */
    rt_buf_t *rpay;
    uint32_t rplen, rgot;
    size_t rlen, roff;
    uint8_t rbuf[LINK_RBUF];

    /* send */
    sq_ent_t sq[LINK_SQ_MAX];
    uint32_t sq_head, sq_n;
    size_t sq_bytes;            /* queued + staged, not yet written */
    bool want_writable;         /* a sender got RT_AGAIN */
    uint32_t hstart, hend;
    uint32_t txoff, txlen;
    uint8_t hbuf[LINK_HBUF];
    uint8_t tx[LINK_TXBUF];
};

struct rt_listener {
    rt_node_t *node;
    rt_actor_t *owner;
    rt_tls_t *tls;
    rt_link_conf_t lc;
    int fd;
    ev_io io;
    char addr[64];
    rt_link_t *links;           /* accepted, alive or waiting to be freed */
    unsigned nlinks;
    rt_link_route_fn route;
    void *route_arg;
    rt_actor_t *watch[RT_LINK_WATCHERS];
    unsigned nwatch;
};

static void link_event(rt_link_t *l, int ev);
static void link_fail(rt_link_t *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void link_read(rt_link_t *l);
static void link_flush(rt_link_t *l);
static void link_destroy(rt_link_t *l);

static bool in_state(const rt_link_t *l, int idx)
{
    return l->fsm.chart.cs == link_fsm_state_at(idx);
}

/* ---- small helpers ------------------------------------------------------------ */

static void set_detail(rt_link_t *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void set_detail(rt_link_t *l, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(l->detail, sizeof l->detail, fmt, ap);
    va_end(ap);
}

/* the event for "this connection failed": outbound links retry, accepted
 * links (and stopping ones) close */
static int fail_ev(rt_link_t *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail_ev(rt_link_t *l, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(l->detail, sizeof l->detail, fmt, ap);
    va_end(ap);
    l->failed = true;
    return l->outbound && !l->stopping ? EV(FAIL) : EV(CLOSE);
}

static void format_addr(const struct sockaddr_storage *sa, char *out, size_t outlen)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;
    if (sa->ss_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof ip);
        port = ntohs(s4->sin_port);
        snprintf(out, outlen, "%s:%u", ip, port);
    } else if (sa->ss_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof ip);
        port = ntohs(s6->sin6_port);
        snprintf(out, outlen, "[%s]:%u", ip, port);
    } else {
        snprintf(out, outlen, "?");
    }
}

/* a random number in [0, 1), for jitter; xorshift seeded per process */
static double jitter01(void)
{
    static uint64_t x;
    if (!x)
        x = rt_mono_us() ^ ((uint64_t)getpid() << 32) ^ 0x9e3779b97f4a7c15ull;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return (double)(x >> 11) / (double)(1ull << 53);
}

static void conf_norm(rt_link_t *l, const rt_link_conf_t *src)
{
    l->lc = *src;
    if (src->peer_name && src->peer_name[0]) {
        snprintf(l->want_peer, sizeof l->want_peer, "%s", src->peer_name);
        l->lc.peer_name = l->want_peer;
    } else {
        l->lc.peer_name = NULL;
    }
    if (l->lc.hb_interval_s <= 0)
        l->lc.hb_interval_s = 1.0;
    if (l->lc.hb_timeout_s <= 0)
        l->lc.hb_timeout_s = 5.0;
    if (l->lc.backoff_min_s <= 0)
        l->lc.backoff_min_s = 0.1;
    if (l->lc.backoff_max_s < l->lc.backoff_min_s)
        l->lc.backoff_max_s = l->lc.backoff_min_s > 5.0 ? l->lc.backoff_min_s : 5.0;
    if (l->lc.sndq_high == 0)
        l->lc.sndq_high = 8u << 20;
    if (l->lc.max_payload == 0 || l->lc.max_payload > RT_MAX_PAYLOAD)
        l->lc.max_payload = RT_MAX_PAYLOAD;
}

static void post_one(rt_link_t *l, rt_actor_t *to, uint32_t tag, const void *data, size_t len)
{
    rt_msg_t *m = rt_slot_get_sys(l->node, tag);
    if (!m)
        return; /* logged by the pool: a bug */
    m->from = &l->actor;
    m->link = l;
    if (len > RT_MSG_INLINE)
        len = RT_MSG_INLINE;
    if (len)
        memcpy(m->data, data, len);
    m->len = (uint32_t)len;
    rt_msg_post(to, m);
}

/* post a link signal to the owner and the watchers, from the reserve (it
 * must not be lost to a full pool) */
static void post_signal(rt_link_t *l, uint32_t tag, const void *data, size_t len)
{
    post_one(l, l->owner, tag, data, len);
    for (unsigned i = 0; i < l->nwatch; i++)
        if (l->watch[i] != l->owner && l->watch[i]->dispatch)
            post_one(l, l->watch[i], tag, data, len);
}

/* ---- send queue --------------------------------------------------------------- */

static void sq_reset(rt_link_t *l)
{
    while (l->sq_n) {
        sq_ent_t *e = &l->sq[l->sq_head];
        rt_buf_unref(e->pay);
        e->pay = NULL;
        l->sq_head = (l->sq_head + 1) % LINK_SQ_MAX;
        l->sq_n--;
    }
    l->sq_head = 0;
    l->sq_bytes = 0;
    l->hstart = l->hend = 0;
    l->txoff = l->txlen = 0;
}

static void sq_pop(rt_link_t *l)
{
    sq_ent_t *e = &l->sq[l->sq_head];
    rt_buf_unref(e->pay);
    e->pay = NULL;
    l->hstart = e->hoff + e->hlen;
    l->sq_head = (l->sq_head + 1) % LINK_SQ_MAX;
    if (--l->sq_n == 0)
        l->sq_head = l->hstart = l->hend = 0;
}

/* room for one more header at hend, moving queued headers to the front */
static bool hbuf_room(rt_link_t *l)
{
    if (LINK_HBUF - l->hend >= RT_FRAME_HDR_MAX)
        return true;
    if (l->hstart == 0)
        return false;
    memmove(l->hbuf, l->hbuf + l->hstart, l->hend - l->hstart);
    for (uint32_t i = 0; i < l->sq_n; i++)
        l->sq[(l->sq_head + i) % LINK_SQ_MAX].hoff -= l->hstart;
    l->hend -= l->hstart;
    l->hstart = 0;
    return LINK_HBUF - l->hend >= RT_FRAME_HDR_MAX;
}

static bool sq_below_half(const rt_link_t *l)
{
    return l->sq_bytes < l->lc.sndq_high / 2 && l->sq_n < LINK_SQ_MAX / 2 &&
           l->hend - l->hstart < LINK_HBUF / 2;
}

/* queue one frame; @internal frames (hello, heartbeats) ignore sndq_high */
static int sq_push(rt_link_t *l, const ss_Envelope *env, rt_buf_t *pay, uint32_t plen,
                   bool internal)
{
    if ((!internal && l->sq_bytes >= l->lc.sndq_high) || l->sq_n == LINK_SQ_MAX ||
        !hbuf_room(l)) {
        l->want_writable = true;
        return RT_AGAIN;
    }
    size_t hl = 0;
    if (rt_frame_encode_header(env, plen, l->hbuf + l->hend, LINK_HBUF - l->hend, &hl) != RT_OK) {
        rt_log(RT_LOG_ERR, "%s: cannot encode a frame with body %u (no body or header > %u bytes)",
               l->actor.name, (unsigned)env->which_body, RT_MAX_HEADER);
        return RT_ERR;
    }
    sq_ent_t *e = &l->sq[(l->sq_head + l->sq_n) % LINK_SQ_MAX];
    e->hoff = l->hend;
    e->hlen = (uint32_t)hl;
    e->pay = plen ? pay : NULL;
    e->plen = plen;
    e->done = 0;
    if (e->pay)
        rt_buf_ref(e->pay);
    l->hend += (uint32_t)hl;
    l->sq_n++;
    l->sq_bytes += hl + plen;
    if (l->fd >= 0 && !ev_is_active(&l->wio))
        ev_io_start(l->node->loop, &l->wio);
    return RT_OK;
}

/* bytes of the front entries: header then payload, from where it stopped */
static void sq_consume(rt_link_t *l, size_t n)
{
    while (n && l->sq_n) {
        sq_ent_t *e = &l->sq[l->sq_head];
        size_t left = (size_t)e->hlen + e->plen - e->done;
        size_t take = n < left ? n : left;
        e->done += (uint32_t)take;
        n -= take;
        if (e->done == e->hlen + e->plen)
            sq_pop(l);
    }
}

/* plain TCP: writev straight from the queue */
static int write_plain(rt_link_t *l, char *err, size_t errlen)
{
    while (l->sq_n) {
        struct iovec iov[LINK_IOV];
        int cnt = 0;
        for (uint32_t i = 0; i < l->sq_n && cnt + 2 <= LINK_IOV; i++) {
            const sq_ent_t *e = &l->sq[(l->sq_head + i) % LINK_SQ_MAX];
            if (e->done < e->hlen) {
                iov[cnt].iov_base = l->hbuf + e->hoff + e->done;
                iov[cnt++].iov_len = e->hlen - e->done;
            }
            uint32_t pdone = e->done > e->hlen ? e->done - e->hlen : 0;
            if (e->plen > pdone) {
                iov[cnt].iov_base = e->pay->data + pdone;
                iov[cnt++].iov_len = e->plen - pdone;
            }
        }
        ssize_t n = writev(l->fd, iov, cnt);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return RT_AGAIN;
            snprintf(err, errlen, "write: %s", strerror(errno));
            return RT_ERR;
        }
        l->sq_bytes -= (size_t)n;
        sq_consume(l, (size_t)n);
    }
    return RT_OK;
}

/* TLS: gather queued bytes into one record buffer, then write it */
static int write_tls(rt_link_t *l, char *err, size_t errlen)
{
    for (;;) {
        if (l->txoff == l->txlen) {
            l->txoff = l->txlen = 0;
            while (l->sq_n && l->txlen < LINK_TXBUF) {
                sq_ent_t *e = &l->sq[l->sq_head];
                uint32_t room = LINK_TXBUF - l->txlen, take;
                if (e->done < e->hlen) {
                    take = e->hlen - e->done < room ? e->hlen - e->done : room;
                    memcpy(l->tx + l->txlen, l->hbuf + e->hoff + e->done, take);
                } else {
                    uint32_t pdone = e->done - e->hlen;
                    take = e->plen - pdone < room ? e->plen - pdone : room;
                    memcpy(l->tx + l->txlen, e->pay->data + pdone, take);
                }
                l->txlen += take;
                e->done += take;
                if (e->done == e->hlen + e->plen)
                    sq_pop(l);
            }
        }
        if (l->txlen == 0)
            return RT_OK;
        size_t put = 0;
        int rc = rt_tls_write(l->conn, l->tx + l->txoff, l->txlen - l->txoff, &put, err, errlen);
        if (rc != RT_OK)
            return rc;
        l->txoff += (uint32_t)put;
        l->sq_bytes -= put;
    }
}

static void link_flush(rt_link_t *l)
{
    char err[256];
    if (l->fd < 0 || !(in_state(l, ST_HELLO) || in_state(l, ST_UP)))
        return; /* only in hello and up: the handshake owns the socket before */
    int rc = l->conn ? write_tls(l, err, sizeof err) : write_plain(l, err, sizeof err);
    if (rc == RT_ERR) {
        link_fail(l, "%s", err);
        return;
    }
    bool pending = l->sq_n || l->txoff < l->txlen;
    if (pending && (!l->conn || rt_tls_want_write(l->conn))) {
        if (!ev_is_active(&l->wio))
            ev_io_start(l->node->loop, &l->wio);
    } else if (ev_is_active(&l->wio)) {
        ev_io_stop(l->node->loop, &l->wio);
    }
    if (l->want_writable && l->up && sq_below_half(l)) {
        l->want_writable = false;
        post_signal(l, RT_SIG_LINK_WRITABLE, NULL, 0);
    }
}

/* ---- connection teardown --------------------------------------------------------- */

static void rx_reset(rt_link_t *l)
{
    rt_buf_unref(l->rpay);
    l->rpay = NULL;
    l->rx = RX_HDR;
    l->rx_blocked = false;
    l->rlen = l->roff = 0;
    l->rplen = l->rgot = 0;
}

/* drop the connection; tell the owner if it was up */
static void teardown(rt_link_t *l)
{
    struct ev_loop *loop = l->node->loop;
    bool was_up = l->up;
    ev_io_stop(loop, &l->rio);
    ev_io_stop(loop, &l->wio);
    ev_clear_pending(loop, &l->rio);
    ev_clear_pending(loop, &l->wio);
    ev_timer_stop(loop, &l->tick);
    if (l->conn) {
        if (l->up || l->stopping)
            rt_tls_shutdown(l->conn);
        rt_tls_conn_free(l->conn);
        l->conn = NULL;
    }
    if (l->fd >= 0) {
        close(l->fd);
        l->fd = -1;
    }
    rx_reset(l);
    sq_reset(l);
    l->up = false;
    l->want_writable = false;
    l->nsamples = l->sample_next = 0;
    if (was_up) {
        post_signal(l, RT_SIG_LINK_DOWN, l->detail, strlen(l->detail) + 1);
    } else if (l->failed) {
        /* one line per refused or failed connection; a dead peer being
         * retried logs again only when the reason changes */
        bool repeat = l->outbound && strcmp(l->last_logged, l->detail) == 0;
        const char *st = link_fsm_state_name(l->fsm.saved); /* where it failed */
        if (l->outbound)
            rt_log(repeat ? RT_LOG_DEBUG : RT_LOG_WARN, "%s: %s: %s", l->actor.name, l->addr,
                   l->detail);
        else if (strcmp(st, "handshake") == 0)
            rt_log(RT_LOG_WARN, "%s: refused: %s", l->actor.name, l->detail);
        else
            rt_log(RT_LOG_WARN, "%s: closed in %s: %s", l->actor.name, st, l->detail);
        snprintf(l->last_logged, sizeof l->last_logged, "%s", l->detail);
    }
    l->failed = false;
}

/* ---- chart actions ------------------------------------------------------------------ */

static int tls_step(rt_link_t *l);

static int act_connect(void *ctx)
{
    rt_link_t *l = ctx;
    int one = 1;
    l->phase_mono = rt_mono_us();
    l->fd = socket(l->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (l->fd < 0)
        return fail_ev(l, "socket: %s", strerror(errno));
    setsockopt(l->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    ev_io_set(&l->rio, l->fd, EV_READ);
    ev_io_set(&l->wio, l->fd, EV_WRITE);
    ev_timer_set(&l->tick, l->lc.hb_interval_s, l->lc.hb_interval_s);
    ev_timer_start(l->node->loop, &l->tick);
    set_detail(l, "%s", l->addr);
    if (connect(l->fd, (const struct sockaddr *)&l->sa, l->salen) == 0)
        return EV(CONNECTED);
    if (errno != EINPROGRESS)
        return fail_ev(l, "connect: %s", strerror(errno));
    ev_io_start(l->node->loop, &l->wio);
    return 0;
}

/* both sides of the handshake: a session on the socket, then the first step */
static int start_session(rt_link_t *l)
{
    char err[256];
    ev_io_stop(l->node->loop, &l->wio);
    if (!l->tls) {
        ev_io_start(l->node->loop, &l->rio);
        set_detail(l, "plain TCP, no TLS");
        return EV(TLS_OK);
    }
    l->conn = rt_tls_conn_new(l->tls, l->fd, err, sizeof err);
    if (!l->conn)
        return fail_ev(l, "%s", err);
    set_detail(l, "%s", l->addr);
    return tls_step(l);
}

static int act_accept(void *ctx)
{
    return start_session(ctx);
}

static int act_handshake(void *ctx)
{
    return start_session(ctx);
}

static int act_hello(void *ctx)
{
    rt_link_t *l = ctx;
    const rt_conf_t *conf = rt_node_conf(l->node);
    ss_Envelope e = ss_Envelope_init_zero;
    e.which_body = ss_Envelope_hello_tag;
    e.body.hello.version = RT_PROTO_VERSION;
    snprintf(e.body.hello.node, sizeof e.body.hello.node, "%s", rt_node_name(l->node));
    e.body.hello.roles = conf ? (uint32_t)rt_conf_u64(conf, "node", "roles") : 0;
    e.body.hello.time_us = rt_now_us();
    e.body.hello.max_payload = l->lc.max_payload;
    if (sq_push(l, &e, NULL, 0, true) != RT_OK)
        return fail_ev(l, "cannot queue the Hello");
    ev_io_start(l->node->loop, &l->rio);
    ev_io_start(l->node->loop, &l->wio);
    return 0;
}

static int act_up(void *ctx)
{
    rt_link_t *l = ctx;
    l->up = true;
    l->delay_s = l->lc.backoff_min_s;
    l->last_logged[0] = '\0';
    l->last_rx_mono = rt_mono_us();
    post_signal(l, RT_SIG_LINK_UP, &l->hello, sizeof l->hello);
    return 0;
}

static int act_retry(void *ctx)
{
    rt_link_t *l = ctx;
    teardown(l);
    double d = l->delay_s * (0.5 + 0.5 * jitter01());
    l->delay_s = l->delay_s * 2 < l->lc.backoff_max_s ? l->delay_s * 2 : l->lc.backoff_max_s;
    size_t n = strlen(l->detail);
    snprintf(l->detail + n, sizeof l->detail - n, " (retry in %.3f s)", d);
    ev_timer_set(&l->backoff, d, 0);
    ev_timer_start(l->node->loop, &l->backoff);
    return 0;
}

static int act_close(void *ctx)
{
    rt_link_t *l = ctx;
    teardown(l);
    ev_timer_stop(l->node->loop, &l->backoff);
    l->closed = true;
    if (l->ls || l->released) { /* else the owner frees it with rt_link_free */
        ev_timer_set(&l->reap, 0, 0);
        ev_timer_start(l->node->loop, &l->reap);
    }
    return 0;
}

/* the hello transition also records the peer and the clock offset */
static void link_trace(const rt_chart_t *c, const char *from, const char *event, const char *to)
{
    const rt_link_t *l = (const rt_link_t *)c->actor;
    rt_trace_t *t = rt_node_trace(l->node);
    if (!to || strcmp(event, "hello_ok") != 0 || !t) {
        rt_chart_trace(c, from, event, to);
        return;
    }
    rt_log(RT_LOG_DEBUG, "%s: link %s -%s-> %s", l->actor.name, from, event, to);
    rt_trace_rec_t r = {
        .actor = l->actor.name,
        .machine = c->machine,
        .from = from,
        .event = event,
        .to = to,
        .detail = c->detail,
        .peer = l->peer,
        .clock_offset_us = l->offset_us,
    };
    rt_trace_emit(t, &r);
}

static const link_fsm_ops_t link_ops = {
    .connect = act_connect,
    .accept = act_accept,
    .handshake = act_handshake,
    .hello = act_hello,
    .up = act_up,
    .retry = act_retry,
    .close = act_close,
    .trace = link_trace,
};

/* ---- events ---------------------------------------------------------------------- */

/* feed @ev and whatever the actions return; an event raised while an action
 * runs (which the actions avoid) is queued rather than nested */
static void link_event(rt_link_t *l, int ev)
{
    if (l->in_event) {
        rt_log(RT_LOG_ERR, "%s: event %s raised inside an action (bug)", l->actor.name,
               link_fsm_event_name(ev));
        if (l->nevq < sizeof l->evq / sizeof l->evq[0])
            l->evq[l->nevq++] = ev;
        return;
    }
    l->in_event = true;
    l->fsm.chart.detail = l->detail;
    for (int i = 0; ev > 0 && i < 16; i++) {
        int next = link_fsm_exec(&l->fsm, ev);
        if (next <= 0 && l->nevq) {
            next = l->evq[0];
            memmove(l->evq, l->evq + 1, --l->nevq * sizeof l->evq[0]);
        }
        ev = next;
    }
    l->in_event = false;
}

static void link_fail(rt_link_t *l, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(l->detail, sizeof l->detail, fmt, ap);
    va_end(ap);
    l->failed = true;
    link_event(l, l->outbound && !l->stopping ? EV(FAIL) : EV(CLOSE));
}

/* ---- handshake ------------------------------------------------------------------- */

static int tls_step(rt_link_t *l)
{
    char err[256];
    int rc = rt_tls_handshake(l->conn, err, sizeof err);
    if (rc == RT_AGAIN) {
        if (!ev_is_active(&l->rio))
            ev_io_start(l->node->loop, &l->rio);
        if (rt_tls_want_write(l->conn))
            ev_io_start(l->node->loop, &l->wio);
        else
            ev_io_stop(l->node->loop, &l->wio);
        return 0;
    }
    if (rc == RT_ERR)
        return fail_ev(l, "%s", err);
    const char *cn = rt_tls_peer_cn(l->conn);
    if (l->lc.peer_name && strcmp(cn, l->lc.peer_name) != 0)
        return fail_ev(l, "peer certificate is for '%s', not the configured peer '%s'", cn,
                       l->lc.peer_name);
    snprintf(l->peer, sizeof l->peer, "%s", cn);
    l->peer_admin = rt_tls_peer_admin(l->conn);
    ev_io_stop(l->node->loop, &l->wio);
    set_detail(l, "TLS 1.3, peer certificate CN=%s", cn);
    return EV(TLS_OK);
}

/* ---- receiving ------------------------------------------------------------------- */

static void clock_sample(rt_link_t *l, int64_t offset_us, uint64_t rtt_us)
{
    l->samples[l->sample_next] = (clock_sample_t){offset_us, rtt_us};
    l->sample_next = (l->sample_next + 1) % LINK_SAMPLES;
    if (l->nsamples < LINK_SAMPLES)
        l->nsamples++;
    unsigned best = 0;
    for (unsigned i = 1; i < l->nsamples; i++)
        if (l->samples[i].rtt_us < l->samples[best].rtt_us)
            best = i;
    l->offset_us = l->samples[best].offset_us; /* the least delayed sample is the truest */
}

static void send_heartbeat(rt_link_t *l, uint64_t echo_us)
{
    ss_Envelope e = ss_Envelope_init_zero;
    e.which_body = ss_Envelope_heartbeat_tag;
    e.body.heartbeat.time_us = rt_now_us();
    e.body.heartbeat.echo_us = echo_us;
    (void)sq_push(l, &e, NULL, 0, true); /* a full queue already says the peer is alive */
}

static void on_hello(rt_link_t *l)
{
    const ss_Hello *h = &l->renv.body.hello;
    const char *state = rt_link_state(l);
    if (strcmp(state, "hello") != 0) {
        link_fail(l, "protocol error: Hello in state %s", state);
        return;
    }
    if (h->version != RT_PROTO_VERSION) {
        link_fail(l, "wrong protocol version %u in Hello (this node speaks %u)",
                  (unsigned)h->version, RT_PROTO_VERSION);
        return;
    }
    if (!h->node[0]) {
        link_fail(l, "Hello without a node name");
        return;
    }
    if (l->conn && strcmp(h->node, l->peer) != 0) {
        link_fail(l, "Hello says node '%s' but its certificate is '%s'", h->node, l->peer);
        return;
    }
    if (!l->conn && l->lc.peer_name && strcmp(h->node, l->lc.peer_name) != 0) {
        link_fail(l, "Hello says node '%s', not the configured peer '%s'", h->node,
                  l->lc.peer_name);
        return;
    }
    l->hello = *h;
    size_t n = strnlen(h->node, sizeof l->peer - 1);
    memcpy(l->peer, h->node, n);
    l->peer[n] = '\0';
    l->offset_us = (int64_t)(h->time_us - rt_now_us());
    set_detail(l, "peer %s at %s, roles 0x%x, max payload %u, clock offset %+lld us", l->peer,
               l->addr, (unsigned)h->roles, (unsigned)h->max_payload, (long long)l->offset_us);
    link_event(l, EV(HELLO_OK));
}

static void on_link_frame(rt_link_t *l)
{
    const ss_Envelope *e = &l->renv;
    if (e->payload_len) {
        link_fail(l, "bad frame: link frame (body %u) with a payload", (unsigned)e->which_body);
        return;
    }
    switch (e->which_body) {
    case ss_Envelope_hello_tag:
        on_hello(l);
        return;
    case ss_Envelope_heartbeat_tag:
        if (!l->up) {
            link_fail(l, "protocol error: heartbeat before the Hello");
            return;
        }
        if (e->body.heartbeat.echo_us == 0) {
            send_heartbeat(l, e->body.heartbeat.time_us); /* pong */
            link_flush(l);
        } else {
            uint64_t t4 = rt_now_us(), t1 = e->body.heartbeat.echo_us;
            if (t4 >= t1) { /* our own time came back: a round trip */
                int64_t mid = (int64_t)(t1 + (t4 - t1) / 2);
                clock_sample(l, (int64_t)e->body.heartbeat.time_us - mid, t4 - t1);
            }
        }
        return;
    case ss_Envelope_goodbye_tag:
        link_fail(l, "peer said goodbye (code %u: %s)", (unsigned)e->body.goodbye.code,
                  e->body.goodbye.reason);
        return;
    default:
        link_fail(l, "bad frame: body %u is not a link frame", (unsigned)e->which_body);
        return;
    }
}

typedef enum { RXP_IO, RXP_BLOCKED, RXP_GONE } rxp_t;

static rxp_t rx_block(rt_link_t *l)
{
    l->rx_blocked = true;
    ev_io_stop(l->node->loop, &l->rio);
    return RXP_BLOCKED;
}

static int deliver(rt_link_t *l)
{
    uint32_t tag = l->renv.which_body;
    rt_actor_t *to = l->route ? l->route(l->route_arg, l, &l->renv) : NULL;
    rt_msg_t *m = rt_msg_new(l->node, &l->actor, tag);
    if (!m)
        return RT_AGAIN;
    m->from = &l->actor;
    m->link = l;
    m->buf = l->rpay;
    m->len = sizeof l->renv;
    memcpy(m->data, &l->renv, sizeof l->renv);
    l->rpay = NULL;
    rt_msg_post(to ? to : l->owner, m);
    return RT_OK;
}

/* the smallest pool class holding @n bytes (rt_pool.c rounds the same way) */
static size_t pool_class(size_t n)
{
    size_t c = (size_t)1 << RT_BUF_MIN_SHIFT;
    while (c < n)
        c <<= 1;
    return c;
}

/* consume what is staged: frames, as far as the bytes and the pools allow */
static rxp_t rx_process(rt_link_t *l)
{
    rt_frame_t fr;
    for (;;) {
        if (l->fd < 0)
            return RXP_GONE;
        switch (l->rx) {
        case RX_HDR: {
            int rc = rt_frame_decode_header(l->rbuf + l->roff, l->rlen - l->roff,
                                            l->lc.max_payload, &l->renv, &fr);
            if (rc == RT_AGAIN)
                return RXP_IO;
            if (rc == RT_ERR) {
                link_fail(l, "bad frame: %s", fr.why);
                return RXP_GONE;
            }
            l->roff += fr.hdr_len;
            l->rplen = fr.payload_len;
            l->rgot = 0;
            l->last_rx_mono = rt_mono_us();
            if (l->renv.which_body <= LINK_TAG_LINK_MAX) {
                on_link_frame(l);
                continue;
            }
            if (!l->up) {
                link_fail(l, "protocol error: frame with body %u before the Hello",
                          (unsigned)l->renv.which_body);
                return RXP_GONE;
            }
            l->rx = l->rplen ? RX_NEEDBUF : RX_DELIVER;
            continue;
        }
        case RX_NEEDBUF: {
            if (pool_class(l->rplen) > l->node->buf_budget) {
                link_fail(l, "frame payload of %u bytes can never fit this node's memory",
                          (unsigned)l->rplen);
                return RXP_GONE;
            }
            l->rpay = rt_buf_alloc_for(l->node, &l->actor, l->rplen);
            if (!l->rpay)
                return rx_block(l);
            size_t avail = l->rlen - l->roff;
            uint32_t take = avail < l->rplen ? (uint32_t)avail : l->rplen;
            memcpy(l->rpay->data, l->rbuf + l->roff, take);
            l->roff += take;
            l->rgot = take;
            l->rpay->len = l->rplen;
            l->rx = l->rgot == l->rplen ? RX_DELIVER : RX_PAYLOAD;
            continue;
        }
        case RX_PAYLOAD:
            if (l->rgot < l->rplen)
                return RXP_IO;
            l->rx = RX_DELIVER;
            continue;
        case RX_DELIVER:
            if (deliver(l) != RT_OK)
                return rx_block(l);
            l->rx = RX_HDR;
            continue;
        }
    }
}

static int io_read(rt_link_t *l, void *buf, size_t len, size_t *got, char *err, size_t errlen)
{
    if (l->conn)
        return rt_tls_read(l->conn, buf, len, got, err, errlen);
    for (;;) {
        ssize_t n = read(l->fd, buf, len);
        if (n > 0) {
            *got = (size_t)n;
            return RT_OK;
        }
        if (n == 0) {
            snprintf(err, errlen, "peer closed the connection");
            return RT_ERR;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return RT_AGAIN;
        snprintf(err, errlen, "read: %s", strerror(errno));
        return RT_ERR;
    }
}

static void link_read(rt_link_t *l)
{
    char err[256];
    for (int i = 0; i < LINK_READS; i++) {
        if (l->rx_blocked || rx_process(l) != RXP_IO)
            return;
        size_t got = 0;
        int rc;
        if (l->rx == RX_PAYLOAD) {
            rc = io_read(l, l->rpay->data + l->rgot, l->rplen - l->rgot, &got, err, sizeof err);
            if (rc == RT_OK)
                l->rgot += (uint32_t)got;
        } else {
            if (l->roff) {
                memmove(l->rbuf, l->rbuf + l->roff, l->rlen - l->roff);
                l->rlen -= l->roff;
                l->roff = 0;
            }
            rc = io_read(l, l->rbuf + l->rlen, LINK_RBUF - l->rlen, &got, err, sizeof err);
            if (rc == RT_OK)
                l->rlen += got;
        }
        if (rc == RT_AGAIN) {
            if (l->conn && rt_tls_want_write(l->conn) && !ev_is_active(&l->wio))
                ev_io_start(l->node->loop, &l->wio);
            return;
        }
        if (rc == RT_ERR) {
            if ((l->rx == RX_PAYLOAD || l->roff < l->rlen) && strstr(err, "closed"))
                link_fail(l, "truncated frame: the connection ended inside it (%s)", err);
            else
                link_fail(l, "%s", err);
            return;
        }
    }
    /* more may be waiting (in the socket or inside TLS): come back after
     * the other watchers had their turn */
    ev_feed_event(l->node->loop, &l->rio, EV_READ);
}

/* ---- watchers -------------------------------------------------------------------- */

static void rio_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    rt_link_t *l = w->data;
    if (l->fd < 0)
        return;
    if (in_state(l, ST_HANDSHAKE)) {
        link_event(l, tls_step(l));
        if (l->fd < 0 || !in_state(l, ST_HELLO))
            return;
        /* the peer's Hello may already sit in the session */
    }
    if (in_state(l, ST_HELLO) || in_state(l, ST_UP)) {
        link_read(l);
        if (l->fd >= 0 && (l->sq_n || l->txoff < l->txlen))
            link_flush(l);
    }
}

static void wio_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)revents;
    rt_link_t *l = w->data;
    if (l->fd < 0)
        return;
    if (in_state(l, ST_CONNECTING)) {
        int soerr = 0;
        socklen_t sl = sizeof soerr;
        ev_io_stop(loop, w);
        if (getsockopt(l->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
            soerr = errno;
        if (soerr) {
            link_event(l, fail_ev(l, "connect: %s", strerror(soerr)));
            return;
        }
        set_detail(l, "%s", l->addr);
        link_event(l, EV(CONNECTED));
        return;
    }
    if (in_state(l, ST_HANDSHAKE)) {
        link_event(l, tls_step(l));
        if (l->fd >= 0 && in_state(l, ST_HELLO))
            link_read(l);
        return;
    }
    link_flush(l);
    if (l->fd >= 0 && l->conn && rt_tls_pending(l->conn))
        link_read(l);
}

static void tick_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    rt_link_t *l = w->data;
    uint64_t now = rt_mono_us();
    if (l->rx_blocked)
        l->last_rx_mono = now; /* we stopped reading, not the peer its writing */
    if (l->up) {
        double quiet = (double)(now - l->last_rx_mono) / 1e6;
        if (quiet > l->lc.hb_timeout_s) {
            link_fail(l, "heartbeat timeout: no frame for %.1f s", quiet);
            return;
        }
        send_heartbeat(l, 0);
        link_flush(l);
        return;
    }
    double spent = (double)(now - l->phase_mono) / 1e6;
    if (spent > l->lc.hb_timeout_s)
        link_fail(l, "timeout: still in %s after %.1f s", rt_link_state(l), spent);
}

static void backoff_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    rt_link_t *l = w->data;
    set_detail(l, "%s", l->addr);
    link_event(l, EV(RETRY));
}

/* is any message naming @l still queued or being handled? */
static bool link_referenced(const rt_link_t *l)
{
    const rt_node_t *node = l->node;
    if (node->cur_msg && node->cur_msg->link == l)
        return true;
    for (const rt_actor_t *a = node->actors; a; a = a->next_all)
        for (const rt_msg_t *m = a->head; m; m = m->next)
            if (m->link == l)
                return true;
    return false;
}

static void reap_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)revents;
    rt_link_t *l = w->data;
    if (link_referenced(l)) {
        ev_timer_set(w, LINK_REAP_S, 0);
        ev_timer_start(loop, w);
        return;
    }
    link_destroy(l);
}

/* ---- the link as an actor -------------------------------------------------------- */

static void link_dispatch(rt_actor_t *me, const rt_msg_t *m)
{
    rt_link_t *l = (rt_link_t *)me;
    switch (m->tag) {
    case RT_SIG_RESUME:
        if (l->rx_blocked && l->fd >= 0) {
            l->rx_blocked = false;
            ev_io_start(l->node->loop, &l->rio);
            ev_feed_event(l->node->loop, &l->rio, EV_READ);
        }
        break;
    case RT_SIG_STOP:
        l->stopping = true;
        if (l->up) {
            ss_Envelope e = ss_Envelope_init_zero;
            e.which_body = ss_Envelope_goodbye_tag;
            snprintf(e.body.goodbye.reason, sizeof e.body.goodbye.reason, "node stopping");
            if (sq_push(l, &e, NULL, 0, true) == RT_OK)
                link_flush(l); /* one try: a stopping node does not wait */
        }
        if (!l->closed) {
            set_detail(l, "node stopping");
            link_event(l, EV(CLOSE));
        }
        rt_actor_stopped(me);
        break;
    default:
        break;
    }
}

static rt_link_t *link_new(rt_node_t *node, rt_actor_t *owner, rt_tls_t *tls,
                           const rt_link_conf_t *lc, const char *name)
{
    rt_link_t *l = calloc(1, sizeof *l);
    if (!l) {
        rt_log(RT_LOG_ERR, "%s: out of memory", name);
        return NULL;
    }
    if (rt_actor_init(&l->actor, node, name, link_dispatch) != RT_OK) {
        free(l);
        return NULL;
    }
    l->node = node;
    l->owner = owner;
    l->tls = tls;
    l->fd = -1;
    conf_norm(l, lc);
    l->delay_s = l->lc.backoff_min_s;
    ev_init(&l->rio, rio_cb);
    ev_init(&l->wio, wio_cb);
    ev_init(&l->tick, tick_cb);
    ev_init(&l->backoff, backoff_cb);
    ev_init(&l->reap, reap_cb);
    l->rio.data = l->wio.data = l->tick.data = l->backoff.data = l->reap.data = l;
    link_fsm_init(&l->fsm, &link_ops, l, &l->actor);
    l->fsm.chart.peer = l->peer;
    l->fsm.chart.detail = l->detail;
    return l;
}

static void link_destroy(rt_link_t *l)
{
    struct ev_loop *loop = l->node->loop;
    l->failed = false;
    if (!l->closed) {
        l->stopping = true;
        l->up = false; /* no DOWN signal: nobody is left to read it */
        teardown(l);
    }
    ev_timer_stop(loop, &l->tick);
    ev_timer_stop(loop, &l->backoff);
    ev_timer_stop(loop, &l->reap);
    ev_clear_pending(loop, &l->rio);
    ev_clear_pending(loop, &l->wio);
    ev_clear_pending(loop, &l->tick);
    ev_clear_pending(loop, &l->backoff);
    ev_clear_pending(loop, &l->reap);
    if (l->ls) {
        for (rt_link_t **p = &l->ls->links; *p; p = &(*p)->ls_next) {
            if (*p == l) {
                *p = l->ls_next;
                l->ls->nlinks--;
                break;
            }
        }
    }
    rt_actor_fini(&l->actor);
    free(l);
}

/* ---- public: links ---------------------------------------------------------------- */

rt_link_t *rt_link_connect(rt_node_t *node, rt_actor_t *owner, rt_tls_t *tls, const char *addr,
                           const rt_link_conf_t *lc)
{
    struct sockaddr_storage sa;
    unsigned salen = 0;
    char name[80]; /* the actor keeps RT_NAME_MAX - 1 of it */
    if (rt_parse_addr(addr, &sa, &salen) != RT_OK) {
        rt_log(RT_LOG_ERR, "link: bad address '%s' (expected numeric IP:PORT)", addr);
        return NULL;
    }
    snprintf(name, sizeof name, "link:%s",
             lc->peer_name && lc->peer_name[0] ? lc->peer_name : addr);
    rt_link_t *l = link_new(node, owner, tls, lc, name);
    if (!l)
        return NULL;
    l->outbound = true;
    l->sa = sa;
    l->salen = salen;
    format_addr(&sa, l->addr, sizeof l->addr);
    if (lc->peer_name && lc->peer_name[0])
        snprintf(l->peer, sizeof l->peer, "%s", lc->peer_name);
    set_detail(l, "%s", l->addr);
    link_event(l, EV(START));
    return l;
}

int rt_link_send(rt_link_t *l, const struct _ss_Envelope *env, rt_buf_t *payload,
                 uint32_t payload_len)
{
    if (!l->up || l->fd < 0)
        return RT_ERR;
    if (payload_len && (!payload || payload->len < payload_len)) {
        rt_log(RT_LOG_ERR, "%s: send of %u payload bytes from a buffer of %u (bug)",
               l->actor.name, (unsigned)payload_len, payload ? (unsigned)payload->len : 0u);
        return RT_ERR;
    }
    if (payload_len > l->hello.max_payload && l->hello.max_payload) {
        rt_log(RT_LOG_ERR, "%s: payload of %u bytes is over the peer's max_payload %u",
               l->actor.name, (unsigned)payload_len, (unsigned)l->hello.max_payload);
        return RT_ERR;
    }
    if (env->which_body <= LINK_TAG_LINK_MAX) {
        rt_log(RT_LOG_ERR, "%s: body %u is the link's own (bug)", l->actor.name,
               (unsigned)env->which_body);
        return RT_ERR;
    }
    return sq_push(l, env, payload, payload_len, false);
}

void rt_link_close(rt_link_t *l)
{
    if (!l || l->released)
        return;
    l->released = true;
    if (l->closed) { /* closed already (node stop): only the freeing is left */
        ev_timer_set(&l->reap, 0, 0);
        ev_timer_start(l->node->loop, &l->reap);
        return;
    }
    set_detail(l, "closed by %s", l->owner ? l->owner->name : "its owner");
    link_event(l, EV(CLOSE));
}

void rt_link_free(rt_link_t *l)
{
    if (l)
        link_destroy(l);
}

const char *rt_link_peer(const rt_link_t *l)
{
    return l->peer;
}

bool rt_link_peer_admin(const rt_link_t *l)
{
    return l->peer_admin;
}

const char *rt_link_state(const rt_link_t *l)
{
    return link_fsm_state(&l->fsm);
}

int64_t rt_link_clock_offset_us(const rt_link_t *l)
{
    return l->offset_us;
}

bool rt_link_is_up(const rt_link_t *l)
{
    return l->up;
}

void *rt_link_user(const rt_link_t *l)
{
    return l->user;
}

void rt_link_set_user(rt_link_t *l, void *user)
{
    l->user = user;
}

uint32_t rt_link_peer_roles(const rt_link_t *l)
{
    return l->up ? l->hello.roles : 0;
}

void rt_link_set_route(rt_link_t *l, rt_link_route_fn fn, void *arg)
{
    l->route = fn;
    l->route_arg = arg;
}

const char *rt_link_addr(const rt_link_t *l)
{
    return l->addr;
}

static int watch_add(rt_actor_t **w, unsigned *n, rt_actor_t *a)
{
    for (unsigned i = 0; i < *n; i++)
        if (w[i] == a)
            return RT_OK;
    if (*n == RT_LINK_WATCHERS)
        return RT_ERR;
    w[(*n)++] = a;
    return RT_OK;
}

int rt_link_watch(rt_link_t *l, rt_actor_t *a)
{
    return watch_add(l->watch, &l->nwatch, a);
}

/* ---- public: listener -------------------------------------------------------------- */

static void accept_one(rt_listener_t *ls, int fd, const struct sockaddr_storage *sa,
                       socklen_t salen)
{
    char addr[64], name[80]; /* the actor keeps RT_NAME_MAX - 1 of it */
    int one = 1;
    format_addr(sa, addr, sizeof addr);
    if (ls->nlinks >= LINK_ACCEPTED_MAX) {
        rt_log(RT_LOG_WARN, "listener %s: refused %s: %u links already open", ls->addr, addr,
               ls->nlinks);
        close(fd);
        return;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    snprintf(name, sizeof name, "link:in:%s", addr);
    rt_link_t *l = link_new(ls->node, ls->owner, ls->tls, &ls->lc, name);
    if (!l) {
        close(fd);
        return;
    }
    l->ls = ls;
    l->ls_next = ls->links;
    ls->links = l;
    ls->nlinks++;
    l->route = ls->route;
    l->route_arg = ls->route_arg;
    memcpy(l->watch, ls->watch, sizeof l->watch);
    l->nwatch = ls->nwatch;
    l->fd = fd;
    memcpy(&l->sa, sa, sizeof l->sa);
    l->salen = (unsigned)salen;
    snprintf(l->addr, sizeof l->addr, "%s", addr);
    l->phase_mono = rt_mono_us();
    ev_io_set(&l->rio, fd, EV_READ);
    ev_io_set(&l->wio, fd, EV_WRITE);
    ev_timer_set(&l->tick, l->lc.hb_interval_s, l->lc.hb_interval_s);
    ev_timer_start(ls->node->loop, &l->tick);
    set_detail(l, "%s", addr);
    link_event(l, EV(ACCEPTED));
}

static void listen_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    rt_listener_t *ls = w->data;
    for (int i = 0; i < LINK_ACCEPTS; i++) {
        struct sockaddr_storage sa;
        socklen_t salen = sizeof sa;
        int fd = accept4(ls->fd, (struct sockaddr *)&sa, &salen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
                errno != ECONNABORTED)
                rt_log(RT_LOG_WARN, "listener %s: accept: %s", ls->addr, strerror(errno));
            return;
        }
        accept_one(ls, fd, &sa, salen);
    }
}

rt_listener_t *rt_listener_new(rt_node_t *node, rt_actor_t *owner, rt_tls_t *tls,
                               const char *addr, const rt_link_conf_t *lc)
{
    struct sockaddr_storage sa;
    unsigned salen = 0;
    int one = 1;
    if (rt_parse_addr(addr, &sa, &salen) != RT_OK) {
        rt_log(RT_LOG_ERR, "listener: bad address '%s' (expected numeric IP:PORT)", addr);
        return NULL;
    }
    rt_listener_t *ls = calloc(1, sizeof *ls);
    if (!ls) {
        rt_log(RT_LOG_ERR, "listener %s: out of memory", addr);
        return NULL;
    }
    ls->node = node;
    ls->owner = owner;
    ls->tls = tls;
    ls->lc = *lc;
    ls->lc.peer_name = NULL; /* any node of the site CA may connect */
    format_addr(&sa, ls->addr, sizeof ls->addr);
    ls->fd = socket(sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (ls->fd < 0) {
        rt_log(RT_LOG_ERR, "listener %s: socket: %s", ls->addr, strerror(errno));
        goto fail;
    }
    setsockopt(ls->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(ls->fd, (const struct sockaddr *)&sa, salen) < 0) {
        rt_log(RT_LOG_ERR, "listener %s: bind: %s", ls->addr, strerror(errno));
        goto fail;
    }
    if (listen(ls->fd, 128) < 0) {
        rt_log(RT_LOG_ERR, "listener %s: listen: %s", ls->addr, strerror(errno));
        goto fail;
    }
    ev_io_init(&ls->io, listen_cb, ls->fd, EV_READ);
    ls->io.data = ls;
    ev_io_start(rt_node_loop(node), &ls->io);
    return ls;
fail:
    if (ls->fd >= 0)
        close(ls->fd);
    free(ls);
    return NULL;
}

void rt_listener_set_route(rt_listener_t *ls, rt_link_route_fn fn, void *arg)
{
    ls->route = fn;
    ls->route_arg = arg;
}

int rt_listener_watch(rt_listener_t *ls, rt_actor_t *a)
{
    return watch_add(ls->watch, &ls->nwatch, a);
}

rt_link_t *rt_listener_next(const rt_listener_t *ls, const rt_link_t *prev)
{
    return prev ? prev->ls_next : ls->links;
}

void rt_listener_free(rt_listener_t *ls)
{
    if (!ls)
        return;
    ev_io_stop(rt_node_loop(ls->node), &ls->io);
    while (ls->links)
        link_destroy(ls->links);
    if (ls->fd >= 0)
        close(ls->fd);
    free(ls);
}
