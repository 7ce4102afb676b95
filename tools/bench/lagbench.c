/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * lagbench: the lag figure of `make bench`: how long a write acknowledged by
 * the agent's NBD export takes to become durable at the master target, under
 * a sustained random-write load at a fixed rate, and whether the backlog
 * grows under that load.
 *
 *   lagbench run --nbd IP:PORT --export NAME --conf CONSOLE_INI --pair ID
 *                --rate MBPS --seconds S [--bs BYTES] [--depth N]
 *                [--poll-ms MS] [--drain-s S] [--trace FILE]
 *   lagbench patch --nbd IP:PORT --export NAME --old FILE --new FILE
 *                write through the export every 4 KiB block in which NEW
 *                differs from OLD (the export holding OLD's bytes), at most
 *                16 in flight, then NBD_CMD_FLUSH: the resync row's change,
 *                made through the product's front door, the same change
 *                `diskbench mutate` made to NEW for the rsync baseline.
 *                Prints blocks=, bytes=, of_blocks=, seconds=.
 *
 * Why a program of its own: `nodectl status` gives the age of the oldest
 * write not yet durable (rpo_lag_ms), a property of one instant, not the
 * lag of each write, and starting nodectl every few milliseconds would cost
 * a process and a TLS handshake per look. So this program does both ends
 * itself, on one monotonic clock:
 *   - a writer (the main thread) is an NBD client that sends BYTES-sized
 *     writes at random aligned offsets, open loop at the fixed RATE (write i
 *     is due at t0 + i * BYTES / RATE; at most DEPTH in flight; late writes
 *     go out as soon as a slot frees, so a slow export lowers the achieved
 *     rate, which is reported), and timestamps each reply as it is read;
 *   - a sampler (a thread) keeps one management session (mutual TLS, like
 *     nodectl) and asks `pair-show PAIR` every POLL_MS, recording when it
 *     asked, when the answer came, source_seq, mt_durable_seq, backlog_bytes,
 *     rpo_lag_ms and the pair's state.
 * The agent gives sequence numbers in the order it replies on the loop, one
 * connection replies in order, and nothing else writes to the disk while
 * the pair is protected, so the i-th reply is the write that ends at
 * sequence base + (i + 1) * K, where base is source_seq before the load and
 * K the records per write (the number of sequences the load used divided by
 * the writes; it must divide exactly, else the mapping is void and the run
 * fails). The write is durable at the master target once a sample shows
 * mt_durable_seq >= that sequence. It became durable after the look before
 * that one was asked and before that answer came, so its lag is given as
 * an upper bound (reply -> that answer; the lag_* figures) and a lower bound
 * (reply -> the previous look was asked; lag_lo_*), 0 when negative: the two
 * are one poll interval plus one round trip apart (resolution_ms, the mean
 * time from a look's question to the next look's answer). After the load the
 * sampler goes on until every write is durable (bounded by --drain-s): the
 * drain time is reported too.
 * Backlog: the mean backlog_bytes of the last third of the load window minus
 * that of the first third, over the time between them, is its growth rate;
 * it "grows" when that rate exceeds 2 % of the write rate (at least 1 MB/s)
 * and the backlog rose by more than 4 MiB. A pair that left protected during
 * the load (bitmap mode) voids the figures. sustained=1 says the export took
 * the load at 95 % of the rate or more; otherwise the figures are those of
 * the rate it took (achieved_mbps), not of the rate asked for.
 *
 * Output: one line of KEY=VALUE pairs (MB is 10^6 bytes; times in ms);
 * errors: one line on stderr and exit 1; bad usage exits 2. An alarm bounds
 * the whole run.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "link.pb.h"
#include "nodes/agent/nbd_proto.h"
#include "rt.h"
#include "rt_json.h"

#define MB             1e6
#define MAX_DEPTH      64u
#define MAX_BS         (4u << 20)
#define MAX_WRITES     (4u << 20)   /* writes one run may record */
#define MAX_SAMPLES    (1u << 20)   /* status samples one run may record */
#define MGMT_TIMEOUT_S 10.0         /* connect, handshake, each answer */
#define MGMT_RBUF      (RT_FRAME_HDR_MAX + 16384u)
#define DOC_MAX        (64u << 10)  /* longest pair-show answer accepted */
#define JSON_TOK       256u
#define POOL_BYTES     (8u << 20)   /* the data written comes from this pool */
#define BASE_WAIT_S    60.0         /* for the pair to be protected and drained first */
#define GROW_MIN_BYTES (4.0 * 1048576)

enum { OK = 0, FAIL = 1, USAGE = 2 };

/* ---- options ------------------------------------------------------------------ */

typedef struct opts {
    const char *nbd, *export_name, *conf, *pair, *trace;
    double rate_mbps, seconds, poll_ms, drain_s;
    uint32_t bs, depth;
} opts_t;

/* ---- clock and errors --------------------------------------------------------- */

static uint64_t mono_us(void)
{
    return rt_mono_us();
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void die(const char *fmt, ...)
{
    va_list ap;
    fputs("lagbench: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(FAIL);
}

/* ---- big-endian helpers --------------------------------------------------------- */

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (24 - 8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (56 - 8 * i));
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t get64(const uint8_t *p)
{
    return (uint64_t)get32(p) << 32 | get32(p + 4);
}

/* ---- blocking socket I/O (the writer's handshake) ------------------------------ */

static void read_all(int fd, void *buf, size_t len, const char *what)
{
    uint8_t *p = buf;
    while (len) {
        ssize_t n = read(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            die("NBD export: %s: %s", what, n == 0 ? "connection closed" : strerror(errno));
        p += n;
        len -= (size_t)n;
    }
}

static void write_all(int fd, const void *buf, size_t len, const char *what)
{
    const uint8_t *p = buf;
    while (len) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            die("NBD export: %s: %s", what, strerror(errno));
        p += n;
        len -= (size_t)n;
    }
}

static int tcp_connect(const char *addr)
{
    struct sockaddr_storage sa;
    unsigned salen = 0;
    if (rt_parse_addr(addr, &sa, &salen) != RT_OK)
        die("bad address '%s' (want a numeric IP:PORT)", addr);
    int fd = socket(sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        die("socket: %s", strerror(errno));
    if (connect(fd, (const struct sockaddr *)&sa, salen) != 0)
        die("connect to %s: %s", addr, strerror(errno));
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

/* ---- the NBD writer ---------------------------------------------------------------- */

/* fixed newstyle handshake and NBD_OPT_GO; @return the export's size */
static uint64_t nbd_open(int fd, const char *name)
{
    uint8_t b[64];
    read_all(fd, b, 18, "greeting");
    if (get64(b) != NBD_MAGIC || get64(b + 8) != NBD_IHAVEOPT)
        die("NBD export: not a newstyle NBD server");
    uint16_t hflags = (uint16_t)(b[16] << 8 | b[17]);
    if (!(hflags & NBD_FLAG_FIXED_NEWSTYLE))
        die("NBD export: the server does not speak fixed newstyle");
    put32(b, NBD_FLAG_C_FIXED_NEWSTYLE | (hflags & NBD_FLAG_NO_ZEROES ? NBD_FLAG_C_NO_ZEROES : 0));
    write_all(fd, b, 4, "client flags");

    size_t nl = strlen(name);
    if (nl > NBD_NAME_MAX)
        die("export name too long");
    uint8_t opt[NBD_OPT_HDR_SIZE + 4];
    put64(opt, NBD_IHAVEOPT);
    put32(opt + 8, 7u); /* NBD_OPT_GO */
    put32(opt + 12, (uint32_t)(4 + nl + 2));
    put32(opt + 16, (uint32_t)nl);
    write_all(fd, opt, sizeof opt, "NBD_OPT_GO");
    write_all(fd, name, nl, "NBD_OPT_GO");
    uint8_t none[2] = {0, 0}; /* no information requests */
    write_all(fd, none, 2, "NBD_OPT_GO");

    uint64_t size = 0;
    uint16_t tflags = 0;
    for (int replies = 0; replies < 64; replies++) {
        uint8_t h[NBD_REP_HDR_SIZE];
        read_all(fd, h, sizeof h, "option reply");
        uint32_t type = get32(h + 12), len = get32(h + 16);
        if (get64(h) != NBD_REP_MAGIC)
            die("NBD export: bad option reply magic");
        if (len > NBD_NAME_MAX + 64)
            die("NBD export: option reply of %u bytes", len);
        uint8_t data[NBD_NAME_MAX + 64];
        read_all(fd, data, len, "option reply data");
        if (type & 0x80000000u)
            die("NBD export '%s': NBD_OPT_GO refused (error %u)", name, type & 0x7fffffffu);
        if (type == NBD_REP_INFO && len >= 12 && data[0] == 0 && data[1] == NBD_INFO_EXPORT) {
            size = get64(data + 2);
            tflags = (uint16_t)(data[10] << 8 | data[11]);
        }
        if (type == NBD_REP_ACK) {
            if (!size)
                die("NBD export '%s': no size in the NBD_OPT_GO answer", name);
            if (tflags & NBD_FLAG_READ_ONLY)
                die("NBD export '%s' is read-only", name);
            return size;
        }
    }
    die("NBD export: too many option replies");
}

typedef struct writer {
    int fd;
    uint64_t size;           /* of the export */
    uint32_t bs, depth;
    uint64_t due_us;         /* µs between two writes at the target rate */
    uint64_t n_max;          /* writes the run will send */
    uint64_t sent, acked;
    uint64_t *ack_us;        /* [n_max]: when the reply of write i was read */
    uint8_t *pool;           /* POOL_BYTES of data to write from */
    uint64_t rng;
    bool in_order;           /* every reply came in the order of the requests */
    uint8_t rbuf[NBD_REPLY_SIZE * 256];
    size_t rlen;
} writer_t;

static uint64_t rnd(uint64_t *s)
{
    /* xorshift64*: cheap offsets and data, reproducible */
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ull;
}

/* the data: half random bytes, half a repeated text (lz4 takes about half) */
static void pool_fill(uint8_t *p, size_t n, uint64_t seed)
{
    static const char text[] = "secondsite lagbench: data written through the export. ";
    for (size_t i = 0; i < n; i += 8) {
        uint64_t r = rnd(&seed);
        if ((i / 256) % 2 == 0)
            memcpy(p + i, &r, 8);
        else
            memcpy(p + i, text + (i % (sizeof text - 9)), 8);
    }
}

static void send_write(writer_t *w)
{
    uint8_t h[NBD_REQUEST_SIZE];
    uint64_t blocks = w->size / w->bs, off = (rnd(&w->rng) % blocks) * w->bs;
    size_t from = (size_t)((rnd(&w->rng) % ((POOL_BYTES - w->bs) / 8)) * 8);
    uint64_t stamp = w->sent;
    put32(h, NBD_REQUEST_MAGIC);
    put16(h + 4, 0);
    put16(h + 6, 1u); /* NBD_CMD_WRITE */
    put64(h + 8, w->sent);
    put64(h + 16, off);
    put32(h + 24, w->bs);
    memcpy(w->pool + from, &stamp, sizeof stamp); /* no two writes alike */
    struct iovec iov[2] = {{h, sizeof h}, {w->pool + from, w->bs}};
    size_t left = sizeof h + w->bs;
    int i = 0;
    while (left) {
        ssize_t n = writev(w->fd, iov + i, 2 - i);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            die("NBD export: write request: %s", strerror(errno));
        left -= (size_t)n;
        while (n > 0 && i < 2) {
            size_t take = (size_t)n < iov[i].iov_len ? (size_t)n : iov[i].iov_len;
            iov[i].iov_base = (uint8_t *)iov[i].iov_base + take;
            iov[i].iov_len -= take;
            n -= (ssize_t)take;
            if (!iov[i].iov_len)
                i++;
        }
    }
    w->sent++;
}

/* read what replies are there (waiting at most @wait_us for the first) */
static void read_replies(writer_t *w, uint64_t wait_us)
{
    struct pollfd p = {w->fd, POLLIN, 0};
    struct timespec ts = {(time_t)(wait_us / 1000000u), (long)(wait_us % 1000000u) * 1000};
    int n = ppoll(&p, 1, &ts, NULL);
    if (n < 0 && errno != EINTR)
        die("poll: %s", strerror(errno));
    if (n <= 0)
        return;
    ssize_t r = recv(w->fd, w->rbuf + w->rlen, sizeof w->rbuf - w->rlen, MSG_DONTWAIT);
    if (r < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (r <= 0)
        die("NBD export: reading replies: %s", r == 0 ? "connection closed" : strerror(errno));
    uint64_t t = mono_us();
    w->rlen += (size_t)r;
    size_t at = 0;
    for (; w->rlen - at >= NBD_REPLY_SIZE; at += NBD_REPLY_SIZE) {
        const uint8_t *q = w->rbuf + at;
        uint64_t cookie = get64(q + 8);
        if (get32(q) != NBD_SIMPLE_REPLY_MAGIC)
            die("NBD export: bad reply magic");
        if (get32(q + 4))
            die("NBD export: write %" PRIu64 " failed with NBD error %u", cookie, get32(q + 4));
        if (cookie >= w->sent)
            die("NBD export: reply for unknown request %" PRIu64, cookie);
        if (cookie != w->acked)
            w->in_order = false;
        w->ack_us[w->acked++] = t;
    }
    memmove(w->rbuf, w->rbuf + at, w->rlen - at);
    w->rlen -= at;
}

/* the load: n_max writes at the fixed rate from @t0; @return its end */
static uint64_t writer_run(writer_t *w, uint64_t t0)
{
    while (w->acked < w->n_max) {
        uint64_t now = mono_us();
        while (w->sent < w->n_max && w->sent - w->acked < w->depth &&
               now >= t0 + w->sent * w->due_us) {
            send_write(w);
            now = mono_us();
        }
        uint64_t wait = 20000;
        if (w->sent < w->n_max && w->sent - w->acked < w->depth) {
            uint64_t next = t0 + w->sent * w->due_us;
            wait = next > now ? next - now : 0;
        }
        read_replies(w, wait);
    }
    return mono_us();
}

/* ---- the sampler: one management session, pair-show every poll ---------------- */

typedef struct sample {
    uint64_t t_ask, t_ans;         /* mono µs: request sent, answer read */
    uint64_t source_seq, mt_seq;   /* UINT64_MAX: null */
    uint64_t backlog, rpo_ms;
    bool protected_ok;             /* state was protected */
} sample_t;

typedef struct mgmt {
    int fd;
    rt_tls_t *tls;
    rt_tls_conn_t *tc;
    uint64_t corr;
    size_t rlen;
    uint8_t rbuf[MGMT_RBUF];
    char err[512];
} mgmt_t;

static int wait_fd(int fd, bool out, double secs)
{
    struct pollfd p = {fd, (short)(out ? POLLOUT : POLLIN), 0};
    int n;
    do
        n = poll(&p, 1, (int)(secs * 1000));
    while (n < 0 && errno == EINTR);
    return n;
}

static void mg_die(const mgmt_t *m, const char *what)
{
    die("management session: %s: %s", what, m->err);
}

static void mg_write(mgmt_t *m, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    while (len) {
        size_t put = 0;
        int rc = rt_tls_write(m->tc, p, len, &put, m->err, sizeof m->err);
        if (rc == RT_ERR)
            mg_die(m, "write");
        p += put;
        len -= put;
        if (rc == RT_AGAIN && wait_fd(m->fd, rt_tls_want_write(m->tc), MGMT_TIMEOUT_S) <= 0)
            die("management session: the node does not take a request");
    }
}

static void mg_send(mgmt_t *m, const ss_Envelope *env)
{
    uint8_t hdr[RT_FRAME_HDR_MAX];
    size_t hl = 0;
    if (rt_frame_encode_header(env, 0, hdr, sizeof hdr, &hl) != RT_OK)
        die("management session: cannot encode a frame");
    mg_write(m, hdr, hl);
}

/* the next frame that is not a heartbeat; its payload (up to @cap - 1 bytes,
 * NUL-terminated) into @doc */
static void mg_recv(mgmt_t *m, ss_Envelope *env, char *doc, size_t cap, size_t *dlen)
{
    for (;;) {
        rt_frame_t fr;
        int rc = rt_frame_decode(m->rbuf, m->rlen, (uint32_t)(cap - 1), env, &fr);
        if (rc == RT_ERR)
            die("management session: bad frame: %s", fr.why);
        if (rc == RT_OK) {
            size_t len = fr.payload_len;
            memcpy(doc, m->rbuf + fr.hdr_len, len);
            doc[len] = '\0';
            *dlen = len;
            memmove(m->rbuf, m->rbuf + fr.hdr_len + len, m->rlen - fr.hdr_len - len);
            m->rlen -= fr.hdr_len + len;
            if (env->which_body == ss_Envelope_heartbeat_tag) {
                if (env->body.heartbeat.echo_us == 0) { /* a ping: answer it */
                    ss_Envelope pong = ss_Envelope_init_zero;
                    pong.which_body = ss_Envelope_heartbeat_tag;
                    pong.body.heartbeat.time_us = rt_now_us();
                    pong.body.heartbeat.echo_us = env->body.heartbeat.time_us;
                    mg_send(m, &pong);
                }
                continue;
            }
            if (env->which_body == ss_Envelope_goodbye_tag)
                die("management session: the node said goodbye: %s", env->body.goodbye.reason);
            return;
        }
        if (m->rlen == sizeof m->rbuf)
            die("management session: frame too large");
        size_t got = 0;
        rc = rt_tls_read(m->tc, m->rbuf + m->rlen, sizeof m->rbuf - m->rlen, &got, m->err,
                         sizeof m->err);
        if (rc == RT_ERR)
            mg_die(m, "read");
        m->rlen += got;
        if (rc == RT_AGAIN && !rt_tls_pending(m->tc) &&
            wait_fd(m->fd, rt_tls_want_write(m->tc), MGMT_TIMEOUT_S) <= 0)
            die("management session: no answer within %g s", MGMT_TIMEOUT_S);
    }
}

static void mg_open(mgmt_t *m, const char *conf_path)
{
    char ca[PATH_MAX], crt[PATH_MAX], key[PATH_MAX];
    rt_cert_info_t info;
    rt_conf_t *conf = rt_conf_load(conf_path, m->err, sizeof m->err);
    if (!conf)
        die("%s", m->err);
    const char *ep = rt_conf_str(conf, "console", "endpoint");
    if (!ep)
        ep = rt_conf_str(conf, "listen", "mgmt");
    if (!ep || !rt_conf_path(conf, "tls", "ca", ca, sizeof ca) ||
        !rt_conf_path(conf, "tls", "cert", crt, sizeof crt) ||
        !rt_conf_path(conf, "tls", "key", key, sizeof key))
        die("%s: needs [console] endpoint and [tls] ca, cert, key", conf_path);
    if (rt_cert_info(crt, &info, m->err, sizeof m->err) != RT_OK)
        die("%s", m->err);
    m->tls = rt_tls_ctx_new(ca, crt, key, false, m->err, sizeof m->err);
    if (!m->tls)
        die("%s", m->err);
    m->fd = tcp_connect(ep);
    rt_conf_free(conf);
    m->tc = rt_tls_conn_new(m->tls, m->fd, m->err, sizeof m->err);
    if (!m->tc)
        mg_die(m, "TLS session");
    for (;;) {
        int rc = rt_tls_handshake(m->tc, m->err, sizeof m->err);
        if (rc == RT_OK)
            break;
        if (rc == RT_ERR)
            mg_die(m, "TLS handshake");
        if (wait_fd(m->fd, rt_tls_want_write(m->tc), MGMT_TIMEOUT_S) <= 0)
            die("management session: no TLS handshake within %g s", MGMT_TIMEOUT_S);
    }
    ss_Envelope env = ss_Envelope_init_zero;
    env.which_body = ss_Envelope_hello_tag;
    env.body.hello.version = RT_PROTO_VERSION;
    snprintf(env.body.hello.node, sizeof env.body.hello.node, "%s", info.cn);
    env.body.hello.roles = 0; /* a console */
    env.body.hello.time_us = rt_now_us();
    env.body.hello.max_payload = DOC_MAX;
    mg_send(m, &env);
    char doc[256];
    size_t dl;
    mg_recv(m, &env, doc, sizeof doc, &dl);
    if (env.which_body != ss_Envelope_hello_tag)
        die("management session: the node did not say hello");
}

static uint64_t field_u64(const rt_json_doc_t *d, const char *key)
{
    uint64_t v;
    return rt_json_get_u64(d, rt_json_get(d, 0, key), &v) == RT_OK ? v : UINT64_MAX;
}

/* one look at the pair */
static void mg_sample(mgmt_t *m, const char *pair, sample_t *s)
{
    static char doc[DOC_MAX];
    rt_json_tok_t tok[JSON_TOK];
    rt_json_doc_t d;
    ss_Envelope env = ss_Envelope_init_zero;
    size_t dl = 0;
    char why[160];

    env.which_body = ss_Envelope_mgmt_request_tag;
    env.corr = ++m->corr;
    snprintf(env.body.mgmt_request.cmd, sizeof env.body.mgmt_request.cmd, "pair-show");
    snprintf(env.body.mgmt_request.args[0], sizeof env.body.mgmt_request.args[0], "%s", pair);
    env.body.mgmt_request.args_count = 1;
    s->t_ask = mono_us();
    mg_send(m, &env);
    uint64_t corr = m->corr;
    do
        mg_recv(m, &env, doc, sizeof doc, &dl);
    while (env.which_body != ss_Envelope_mgmt_response_tag || env.corr != corr);
    s->t_ans = mono_us();
    if (env.body.mgmt_response.code != 0)
        die("pair-show %s: %s", pair, env.body.mgmt_response.error);
    if (rt_json_parse(&d, doc, dl, tok, JSON_TOK, why, sizeof why) != RT_OK)
        die("pair-show %s: bad document: %s", pair, why);
    s->source_seq = field_u64(&d, "source_seq");
    s->mt_seq = field_u64(&d, "mt_durable_seq");
    s->backlog = field_u64(&d, "backlog_bytes");
    s->rpo_ms = field_u64(&d, "rpo_lag_ms");
    s->protected_ok = rt_json_streq(&d, rt_json_get(&d, 0, "state"), "protected");
    if (s->source_seq == UINT64_MAX || s->mt_seq == UINT64_MAX)
        die("pair-show %s: no source_seq or mt_durable_seq (is the pair on this node?)", pair);
}

typedef struct sampler {
    mgmt_t *m;
    const char *pair;
    uint64_t poll_us;
    uint64_t deadline_us;          /* give up after this (mono) */
    _Atomic uint64_t want_seq;     /* stop once mt_durable_seq reaches it (0: not yet known) */
    _Atomic uint64_t count;        /* samples published */
    sample_t *s;                   /* [MAX_SAMPLES] */
} sampler_t;

static void *sampler_main(void *arg)
{
    sampler_t *sp = arg;
    uint64_t next = mono_us();
    for (;;) {
        uint64_t n = atomic_load(&sp->count);
        if (n == MAX_SAMPLES)
            break;
        mg_sample(sp->m, sp->pair, &sp->s[n]);
        atomic_store(&sp->count, n + 1);
        uint64_t want = atomic_load(&sp->want_seq);
        if (want && sp->s[n].mt_seq >= want)
            break;
        uint64_t now = mono_us();
        if (now > sp->deadline_us)
            break;
        next += sp->poll_us;
        if (next > now) {
            struct timespec ts = {(time_t)((next - now) / 1000000u),
                                  (long)((next - now) % 1000000u) * 1000};
            while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
                ;
        } else {
            next = now;
        }
    }
    return NULL;
}

/* ---- figures ----------------------------------------------------------------- */

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* nearest-rank percentile of sorted @v (@n > 0), in ms */
static double pct_ms(const uint64_t *v, uint64_t n, double p)
{
    uint64_t rank = (uint64_t)ceil(p / 100.0 * (double)n);
    if (rank < 1)
        rank = 1;
    return (double)v[rank - 1] / 1000.0;
}

/* ---- patch: the blocks that differ, written through the export ---------------- */

#define PATCH_BS    4096u       /* the granularity of the change (the file system's block) */
#define PATCH_DEPTH 16u         /* writes in flight */
#define PATCH_CHUNK (1u << 20)  /* bytes of OLD and NEW compared per read */
#define PATCH_LIMIT 1800u       /* seconds before the alarm ends the run */

/* read exactly @len bytes of @fd at @off (a regular file) or die */
static void pread_all(int fd, void *buf, size_t len, off_t off, const char *path)
{
    size_t got = 0;
    while (got < len) {
        ssize_t n = pread(fd, (uint8_t *)buf + got, len - got, off + (off_t)got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            die("%s: %s", path, n == 0 ? "shorter than expected" : strerror(errno));
        got += (size_t)n;
    }
}

/* one simple reply, which must be a success */
static void patch_reply(int fd, uint64_t sent)
{
    uint8_t q[NBD_REPLY_SIZE];
    read_all(fd, q, sizeof q, "reply");
    if (get32(q) != NBD_SIMPLE_REPLY_MAGIC)
        die("NBD export: bad reply magic");
    if (get32(q + 4))
        die("NBD export: request %" PRIu64 " failed with NBD error %u", get64(q + 8),
            get32(q + 4));
    if (get64(q + 8) >= sent)
        die("NBD export: reply for unknown request %" PRIu64, get64(q + 8));
}

static void patch_request(int fd, uint16_t type, uint64_t cookie, uint64_t off, uint32_t len)
{
    uint8_t h[NBD_REQUEST_SIZE];
    put32(h, NBD_REQUEST_MAGIC);
    put16(h + 4, 0);
    put16(h + 6, type);
    put64(h + 8, cookie);
    put64(h + 16, off);
    put32(h + 24, len);
    write_all(fd, h, sizeof h, "request");
}

static void patch_usage(void)
{
    fprintf(stderr, "usage: lagbench patch --nbd IP:PORT --export NAME --old FILE --new FILE\n");
    exit(USAGE);
}

static int cmd_patch(int argc, char **argv)
{
    static const struct option lo[] = {
        {"nbd", 1, NULL, 'n'}, {"export", 1, NULL, 'e'}, {"old", 1, NULL, 'o'},
        {"new", 1, NULL, 'N'}, {NULL, 0, NULL, 0},
    };
    const char *nbd = NULL, *name = NULL, *old_path = NULL, *new_path = NULL;
    optind = 2;
    int c;
    while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (c) {
        case 'n': nbd = optarg; break;
        case 'e': name = optarg; break;
        case 'o': old_path = optarg; break;
        case 'N': new_path = optarg; break;
        default: patch_usage();
        }
    }
    if (optind != argc || !nbd || !name || !old_path || !new_path)
        patch_usage();
    signal(SIGPIPE, SIG_IGN);
    alarm(PATCH_LIMIT);

    int fo = open(old_path, O_RDONLY | O_CLOEXEC), fn = open(new_path, O_RDONLY | O_CLOEXEC);
    struct stat so, sn;
    if (fo < 0 || fstat(fo, &so) != 0)
        die("%s: %s", old_path, strerror(errno));
    if (fn < 0 || fstat(fn, &sn) != 0)
        die("%s: %s", new_path, strerror(errno));
    if (so.st_size != sn.st_size || so.st_size <= 0 || so.st_size % PATCH_BS)
        die("%s and %s must have the same size, a multiple of %u bytes", old_path, new_path,
            PATCH_BS);
    uint64_t fsize = (uint64_t)sn.st_size;
    uint8_t *a = malloc(PATCH_CHUNK), *b = malloc(PATCH_CHUNK);
    if (!a || !b)
        die("out of memory");

    int fd = tcp_connect(nbd);
    uint64_t esize = nbd_open(fd, name);
    if (esize < fsize)
        die("the export (%" PRIu64 " bytes) is smaller than %s", esize, new_path);

    uint64_t t0 = mono_us(), sent = 0, acked = 0;
    for (uint64_t off = 0; off < fsize; off += PATCH_CHUNK) {
        size_t len = fsize - off < PATCH_CHUNK ? (size_t)(fsize - off) : PATCH_CHUNK;
        pread_all(fo, a, len, (off_t)off, old_path);
        pread_all(fn, b, len, (off_t)off, new_path);
        for (size_t i = 0; i < len; i += PATCH_BS) {
            if (memcmp(a + i, b + i, PATCH_BS) == 0)
                continue;
            if (sent - acked == PATCH_DEPTH) {
                patch_reply(fd, sent);
                acked++;
            }
            patch_request(fd, NBD_CMD_WRITE, sent++, off + i, PATCH_BS);
            write_all(fd, b + i, PATCH_BS, "write data");
        }
    }
    for (; acked < sent; acked++)
        patch_reply(fd, sent);
    patch_request(fd, NBD_CMD_FLUSH, sent, 0, 0);
    patch_reply(fd, sent + 1);
    uint64_t t1 = mono_us();
    patch_request(fd, NBD_CMD_DISC, sent + 1, 0, 0);
    close(fd);
    close(fo);
    close(fn);
    free(a);
    free(b);
    printf("blocks=%" PRIu64 " bytes=%" PRIu64 " of_blocks=%" PRIu64 " seconds=%.3f\n", sent,
           sent * PATCH_BS, fsize / PATCH_BS, (double)(t1 - t0) / 1e6);
    return OK;
}

static void usage(void)
{
    fprintf(stderr, "usage: lagbench patch --nbd IP:PORT --export NAME --old FILE --new FILE\n"
                    "       lagbench run --nbd IP:PORT --export NAME --conf CONSOLE_INI "
                    "--pair ID --rate MBPS --seconds S [--bs BYTES] [--depth N] [--poll-ms MS] "
                    "[--drain-s S] [--trace FILE]\n");
    exit(USAGE);
}

static void parse(int argc, char **argv, opts_t *o)
{
    static const struct option lo[] = {
        {"nbd", 1, NULL, 'n'},     {"export", 1, NULL, 'e'},  {"conf", 1, NULL, 'c'},
        {"pair", 1, NULL, 'p'},    {"rate", 1, NULL, 'r'},    {"seconds", 1, NULL, 's'},
        {"bs", 1, NULL, 'b'},      {"depth", 1, NULL, 'd'},   {"poll-ms", 1, NULL, 'P'},
        {"drain-s", 1, NULL, 'D'}, {"trace", 1, NULL, 't'},   {NULL, 0, NULL, 0},
    };
    *o = (opts_t){.bs = 65536, .depth = 16, .poll_ms = 5, .drain_s = 120};
    if (argc < 2 || strcmp(argv[1], "run") != 0)
        usage();
    optind = 2;
    int c;
    char *end;
    while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        double v = 0;
        if (strchr("rsbdPD", c)) {
            errno = 0;
            v = strtod(optarg, &end);
            if (errno || end == optarg || *end || !(v > 0) || v > 1e9)
                usage();
        }
        switch (c) {
        case 'n': o->nbd = optarg; break;
        case 'e': o->export_name = optarg; break;
        case 'c': o->conf = optarg; break;
        case 'p': o->pair = optarg; break;
        case 't': o->trace = optarg; break;
        case 'r': o->rate_mbps = v; break;
        case 's': o->seconds = v; break;
        case 'P': o->poll_ms = v; break;
        case 'D': o->drain_s = v; break;
        case 'b':
            if (v != floor(v) || v < 512 || v > MAX_BS || (uint32_t)v % 512)
                usage();
            o->bs = (uint32_t)v;
            break;
        case 'd':
            if (v != floor(v) || v > MAX_DEPTH)
                usage();
            o->depth = (uint32_t)v;
            break;
        default: usage();
        }
    }
    if (optind != argc || !o->nbd || !o->export_name || !o->conf || !o->pair ||
        !(o->rate_mbps > 0) || !(o->seconds > 0))
        usage();
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "patch") == 0)
        return cmd_patch(argc, argv);
    opts_t o;
    parse(argc, argv, &o);
    signal(SIGPIPE, SIG_IGN);
    alarm((unsigned)(BASE_WAIT_S + o.seconds + o.drain_s + 120));

    /* the management session, and a pair that is protected and drained */
    static mgmt_t m;
    mg_open(&m, o.conf);
    sample_t base;
    uint64_t give_up = mono_us() + (uint64_t)(BASE_WAIT_S * 1e6);
    for (;;) {
        mg_sample(&m, o.pair, &base);
        if (base.protected_ok && base.mt_seq >= base.source_seq)
            break;
        if (mono_us() > give_up)
            die("pair %s is not protected and drained after %g s", o.pair, BASE_WAIT_S);
        usleep(100000);
    }

    /* the writer */
    writer_t w = {.bs = o.bs, .depth = o.depth, .in_order = true, .rng = 0x9e3779b97f4a7c15ull};
    w.due_us = (uint64_t)((double)o.bs / (o.rate_mbps * MB) * 1e6);
    if (w.due_us == 0)
        w.due_us = 1;
    double n = ceil(o.seconds * o.rate_mbps * MB / o.bs);
    if (n > MAX_WRITES)
        die("%g writes is more than one run records (%u): lower --rate or --seconds", n,
            MAX_WRITES);
    w.n_max = (uint64_t)n;
    w.ack_us = calloc(w.n_max, sizeof *w.ack_us);
    w.pool = malloc(POOL_BYTES);
    sampler_t sp = {.m = &m, .pair = o.pair, .poll_us = (uint64_t)(o.poll_ms * 1000)};
    sp.s = calloc(MAX_SAMPLES, sizeof *sp.s);
    if (!w.ack_us || !w.pool || !sp.s)
        die("out of memory");
    pool_fill(w.pool, POOL_BYTES, 42);
    char host[64];
    snprintf(host, sizeof host, "%s", o.nbd);
    w.fd = tcp_connect(host);
    w.size = nbd_open(w.fd, o.export_name);
    if (w.size < o.bs)
        die("the export (%" PRIu64 " bytes) is smaller than one write", w.size);

    /* load, with the sampler running from just before it to the drain */
    uint64_t t0 = mono_us();
    sp.deadline_us = t0 + (uint64_t)((o.seconds * 3 + o.drain_s) * 1e6);
    pthread_t th;
    if (pthread_create(&th, NULL, sampler_main, &sp) != 0)
        die("pthread_create failed");
    uint64_t t_end = writer_run(&w, t0);
    uint8_t disc[NBD_REQUEST_SIZE] = {0};
    put32(disc, NBD_REQUEST_MAGIC);
    put16(disc + 6, 2u); /* NBD_CMD_DISC */
    write_all(w.fd, disc, sizeof disc, "NBD_CMD_DISC");
    close(w.fd);

    /* the last sequence of the load: source_seq of a look asked after the last reply */
    uint64_t end_seq = 0;
    while (!end_seq) {
        uint64_t cnt = atomic_load(&sp.count);
        for (uint64_t j = cnt; j-- > 0;)
            if (sp.s[j].t_ask > t_end) {
                end_seq = sp.s[j].source_seq;
                break;
            }
        if (!end_seq && (cnt == MAX_SAMPLES || mono_us() > sp.deadline_us))
            die("the sampler stopped before the load's end could be seen");
        if (!end_seq)
            usleep(1000);
    }
    atomic_store(&sp.want_seq, end_seq);
    pthread_join(th, NULL);
    uint64_t ns = atomic_load(&sp.count);

    /* map replies to sequences */
    uint64_t used = end_seq - base.source_seq;
    if (used == 0 || used % w.n_max)
        die("the load used %" PRIu64 " sequences for %" PRIu64 " writes: something else wrote, "
            "or writes were not logged one by one (bitmap mode?): no per-write lag",
            used, w.n_max);
    uint64_t k = used / w.n_max;

    /* per-write lag: reply -> first answer showing it durable at the master target */
    uint64_t *lag = calloc(w.n_max, sizeof *lag), *lo = calloc(w.n_max, sizeof *lo);
    uint64_t undurable = 0, j = 0, nl = 0;
    if (!lag || !lo)
        die("out of memory");
    for (uint64_t i = 0; i < w.n_max; i++) {
        uint64_t seq = base.source_seq + (i + 1) * k;
        while (j < ns && sp.s[j].mt_seq < seq)
            j++;
        if (j == ns) {
            undurable = w.n_max - i;
            break;
        }
        /* durable after the previous look was asked, before this answer came */
        uint64_t before = j ? sp.s[j - 1].t_ask : 0;
        lag[nl] = sp.s[j].t_ans > w.ack_us[i] ? sp.s[j].t_ans - w.ack_us[i] : 0;
        lo[nl++] = before > w.ack_us[i] ? before - w.ack_us[i] : 0;
    }
    uint64_t drain_end = t_end;
    for (uint64_t i = 0; i < ns; i++)
        if (sp.s[i].mt_seq >= end_seq) {
            drain_end = sp.s[i].t_ans;
            break;
        }

    /* samples of the load window: resolution, status rpo lag, backlog thirds, state */
    uint64_t nwin = 0, left_protected = 0;
    uint64_t *rpov = calloc(ns + 1, sizeof *rpov);
    double sum3[3] = {0, 0, 0}, cnt3[3] = {0, 0, 0}, tsum3[3] = {0, 0, 0}, gap_sum = 0;
    uint64_t backlog_max = 0;
    if (!rpov)
        die("out of memory");
    for (uint64_t i = 0; i < ns; i++) {
        const sample_t *s = &sp.s[i];
        if (i)
            gap_sum += (double)(s->t_ans - sp.s[i - 1].t_ask);
        if (!s->protected_ok)
            left_protected++;
        if (s->t_ask < t0 || s->t_ans > t_end)
            continue;
        rpov[nwin++] = s->rpo_ms * 1000;
        int third = (int)(3 * (s->t_ask - t0) / (t_end - t0 + 1));
        if (third > 2)
            third = 2;
        if (s->backlog != UINT64_MAX) {
            sum3[third] += (double)s->backlog;
            cnt3[third]++;
            tsum3[third] += (double)(s->t_ask - t0);
            if (s->backlog > backlog_max)
                backlog_max = s->backlog;
        }
    }
    if (left_protected)
        die("the pair left the protected state during the load (%" PRIu64 " of %" PRIu64
            " looks): figures void", left_protected, ns);
    double slope = 0, rise = 0;
    if (cnt3[0] > 0 && cnt3[2] > 0) {
        double dt = (tsum3[2] / cnt3[2] - tsum3[0] / cnt3[0]) / 1e6;
        rise = sum3[2] / cnt3[2] - sum3[0] / cnt3[0];
        slope = dt > 0 ? rise / dt / MB : 0;
    }
    double grow_min = o.rate_mbps * 0.02 > 1 ? o.rate_mbps * 0.02 : 1;
    int grows = slope > grow_min && rise > GROW_MIN_BYTES;

    if (o.trace) {
        FILE *f = fopen(o.trace, "w");
        if (f) {
            fprintf(f, "# t_ask_ms\tt_ans_ms\tsource_seq\tmt_durable_seq\tbacklog_bytes\t"
                       "rpo_lag_ms\n");
            for (uint64_t i = 0; i < ns; i++)
                fprintf(f, "%.3f\t%.3f\t%" PRIu64 "\t%" PRIu64 "\t%" PRIu64 "\t%" PRIu64 "\n",
                        (double)((int64_t)sp.s[i].t_ask - (int64_t)t0) / 1000,
                        (double)((int64_t)sp.s[i].t_ans - (int64_t)t0) / 1000,
                        sp.s[i].source_seq, sp.s[i].mt_seq, sp.s[i].backlog, sp.s[i].rpo_ms);
            fclose(f);
        }
    }
    if (undurable)
        die("%" PRIu64 " of %" PRIu64 " writes were not durable at the master target %g s "
            "after the load", undurable, w.n_max, o.drain_s);

    qsort(lag, nl, sizeof *lag, cmp_u64);
    qsort(lo, nl, sizeof *lo, cmp_u64);
    qsort(rpov, nwin, sizeof *rpov, cmp_u64);
    double secs = (double)(t_end - t0) / 1e6, achieved = (double)w.n_max * o.bs / MB / secs;
    printf("writes=%" PRIu64 " bs=%u depth=%u target_mbps=%.1f achieved_mbps=%.1f "
           "seqs_per_write=%" PRIu64 " in_order=%d "
           "lag_p50_ms=%.2f lag_p90_ms=%.2f lag_p99_ms=%.2f lag_max_ms=%.2f "
           "lag_lo_p50_ms=%.2f lag_lo_p99_ms=%.2f "
           "samples=%" PRIu64 " resolution_ms=%.2f "
           "status_rpo_p50_ms=%.0f status_rpo_p99_ms=%.0f "
           "backlog_first_mib=%.2f backlog_last_mib=%.2f backlog_max_mib=%.2f "
           "backlog_slope_mbps=%.2f backlog_grows=%d sustained=%d drain_ms=%.1f\n",
           w.n_max, o.bs, o.depth, o.rate_mbps, achieved, k,
           w.in_order ? 1 : 0, pct_ms(lag, nl, 50), pct_ms(lag, nl, 90), pct_ms(lag, nl, 99),
           (double)lag[nl - 1] / 1000, pct_ms(lo, nl, 50), pct_ms(lo, nl, 99), ns, ns > 1 ? gap_sum / (double)(ns - 1) / 1000 : 0,
           nwin ? pct_ms(rpov, nwin, 50) : 0, nwin ? pct_ms(rpov, nwin, 99) : 0,
           cnt3[0] ? sum3[0] / cnt3[0] / 1048576 : 0, cnt3[2] ? sum3[2] / cnt3[2] / 1048576 : 0,
           (double)backlog_max / 1048576, slope, grows, achieved >= 0.95 * o.rate_mbps,
           drain_end > t_end ? (double)(drain_end - t_end) / 1000 : 0);

    if (m.tc) {
        rt_tls_shutdown(m.tc);
        rt_tls_conn_free(m.tc);
    }
    close(m.fd);
    rt_tls_ctx_free(m.tls);
    free(lag);
    free(lo);
    free(rpov);
    free(sp.s);
    free(w.ack_us);
    free(w.pool);
    return OK;
}
