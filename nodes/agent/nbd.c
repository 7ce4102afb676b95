/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * nbd.c: the agent's NBD server (protocol engine and sockets on libev).
 *
 * Why it exists: the agent must see every write its workload makes to a
 * protected disk, in completion order, before the workload is told the write
 * is done. Serving the disk over NBD gives that tap without a kernel module:
 * the workload (qemu, nbdcopy, a VM) writes through us, we write the backing
 * file and hand each completed write to the agent's hook, then reply.
 *
 * Shape: a server owns a listener, a list of exports and a list of
 * connections. A connection goes through four phases: client flags, option
 * haggling (one option at a time, replies built in a small growable buffer
 * bounded by the export table), transmission, closing. In transmission the
 * bytes read from the socket are cut into requests (slots from a fixed
 * per-connection array; WRITE payloads go to a buffer of the request's own
 * size, large ones read straight from the socket), queued, run in order on
 * the loop, and their replies batched into one sendmsg. Two budgets bound a
 * connection, request slots and payload bytes in flight; when either is full
 * the socket is no longer read until replies go out (back-pressure). An
 * export can be paused (explicitly or by a hook returning RT_AGAIN): its
 * requests then wait in their queues and the budgets fill up.
 *
 * Parking: a FLUSH, or a write with FUA, that ran is linked on its export's
 * parked list (keeping its slot) until the two things its reply waits for
 * are done: the backing file's fdatasync (sync_gen: a sync generation of
 * the export that started after the request ran; one sync job at a time,
 * later requests share the next) and the hook's durability (wait_hook,
 * until nbd_export_complete() covers its token). Then it joins its
 * connection's reply queue, and the export's kick sends it. A connection
 * that closes unlinks its parked requests, so a late completion finds
 * nothing to touch.
 *
 * Every socket is non-blocking; libev watchers are embedded in the structs
 * and the owner is recovered with offsetof. A connection is only ever freed
 * from the top of a libev callback, never while one of its functions is on
 * the stack.
 */
#include "nbd.h"
#include "nbd_proto.h"
#include "rt.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#define NBD_DEF_MAX_BLOCK  (32u << 20)
#define NBD_DEF_MAX_CONNS  64u
#define NBD_DEF_CONN_REQS  128u
#define NBD_DEF_CONN_BYTES (64ull << 20)
#define NBD_DEF_HS_TIMEOUT 30.0
#define NBD_MIN_BLOCK      1u
#define NBD_PREF_BLOCK     4096u
#define NBD_RX_CAP         (128u << 10) /* receive buffer per connection */
#define NBD_OPT_MAX        (16u << 10)  /* longest option payload parsed; longer: TOO_BIG */
#define NBD_DIRECT_MIN     4096u        /* payload rest read straight into the request */
#define NBD_IOV_MAX        64           /* iovecs per sendmsg */
#define NBD_READ_ROUNDS    16           /* reads per callback before yielding to others */
#define NBD_ZERO_CHUNK     (64u << 10)

#define container_of(p, type, member) ((type *)(void *)((char *)(p) - offsetof(type, member)))

typedef struct nbd_conn nbd_conn_t;
typedef struct nbd_req nbd_req_t;

/* ---- structures --------------------------------------------------------- */

/* One request, from its header to the last byte of its reply. */
struct nbd_req {
    nbd_req_t *next;   /* free list or queue link */
    uint64_t cookie;   /* the client's handle, echoed */
    uint64_t off;      /* offset in the export */
    uint32_t len;      /* length field of the request */
    uint16_t type;     /* NBD_CMD_* */
    uint16_t flags;    /* NBD_CMD_FLAG_* */
    uint32_t err;      /* NBD error to reply with, 0 for success */
    uint32_t have;     /* WRITE payload bytes received so far */
    uint64_t charge;   /* payload bytes counted against the connection budget */
    uint8_t *data;     /* WRITE payload or READ result, owned; NULL when none */
    bool skip;         /* WRITE payload is read and dropped (request already failed) */
    bool parked;       /* on the export's parked list */
    bool wait_hook;    /* parked until nbd_export_complete() covers token */
    uint64_t token;    /* of the last on_write/on_flush call made for it */
    uint64_t sync_gen; /* parked until the export's sync generation reaches it; 0: none */
    nbd_conn_t *conn;  /* its connection (parked requests) */
    nbd_req_t *pnext, *pprev; /* export's parked list */
    uint8_t hdr[NBD_REPLY_SIZE]; /* the simple reply, built when the request ran */
};

typedef struct nbd_queue {
    nbd_req_t *head, *tail;
} nbd_queue_t;

/* connection phases */
typedef enum {
    NBD_PH_CFLAGS,  /* greeting queued, waiting for the 32-bit client flags */
    NBD_PH_OPTS,    /* option haggling */
    NBD_PH_TRANS,   /* transmission: requests and replies */
    NBD_PH_CLOSING, /* after NBD_OPT_ABORT: send what is queued, then close */
} nbd_phase_t;

struct nbd_conn {
    ev_io rio;            /* readable */
    ev_io wio;            /* writable, only while output is stuck */
    ev_timer hs;          /* negotiation deadline */
    nbd_server_t *srv;    /* owner */
    nbd_conn_t *next, *prev; /* server's connection list */
    nbd_export_t *exp;    /* chosen export, from NBD_OPT_GO/EXPORT_NAME on */
    int fd;               /* the socket, owned */
    nbd_phase_t ph;       /* where the conversation is */
    bool no_zeroes;       /* client set NBD_FLAG_C_NO_ZEROES */
    bool eof;             /* client closed its side: finish what is queued, then close */
    bool disc;            /* NBD_CMD_DISC seen: nothing more is read */
    bool blocked;         /* a budget is full: the socket is not read */
    uint8_t *rx;          /* receive buffer, NBD_RX_CAP bytes */
    uint32_t rpos, rend;  /* unparsed bytes are rx[rpos, rend) */
    uint8_t *nout;        /* negotiation output */
    size_t nout_pos, nout_len, nout_cap;
    uint64_t opt_skip;    /* bytes of an oversize option still to drop */
    uint32_t opt_skip_opt;/* that option's number, for the TOO_BIG reply */
    nbd_req_t *slots;     /* conn_reqs request slots */
    nbd_req_t *free;      /* free slots */
    nbd_req_t *cur;       /* the WRITE whose payload is arriving */
    nbd_queue_t pend;     /* received, waiting to run */
    nbd_queue_t out;      /* ran, reply waiting to be sent */
    size_t out_off;       /* bytes of out.head's reply already sent */
    uint64_t inflight;    /* payload bytes charged by slots in use */
    unsigned nparked;     /* slots parked on the export */
    char peer[64];        /* "addr:port" for logs */
};

struct nbd_export {
    nbd_server_t *srv;      /* owner */
    nbd_export_t *next;     /* server's export list, in order of addition */
    char *name;             /* owned */
    char *desc;             /* owned, or NULL */
    size_t name_len, desc_len;
    int fd;                 /* backing store */
    bool own_fd;            /* opened by nbd_export_add() */
    bool readonly;
    bool is_blk;            /* a block device (no mode-0 fallocate) */
    bool paused;            /* requests wait until nbd_export_resume() */
    uint64_t size;          /* bytes, fixed at nbd_export_add() */
    nbd_hooks_t hooks;
    void *ctx;
    ev_prepare kick;        /* runs the export's connections after a resume or release */
    nbd_export_stats_t st;
    uint64_t token;         /* last hook token given out */
    nbd_req_t *in_hook;     /* request whose on_write/on_flush runs now, or NULL */
    int in_hook_rc;         /* nbd_export_complete() during that call: its rc... */
    bool in_hook_done;      /* ...and that it happened */
    nbd_req_t *parked;      /* requests waiting for a sync or a completion */
    uint64_t sync_started;  /* sync generations started... */
    uint64_t sync_done;     /* ...and finished */
    bool sync_want;         /* requests wait for the generation after the one running */
    nbd_sync_t *sjob;       /* sync job handed to sync_submit, or NULL */
};

/* A backing-file fdatasync off the loop. */
struct nbd_sync {
    const nbd_export_t *e; /* compared only: the export may be gone at the end */
    uint64_t gen;          /* the sync generation it finishes */
    int fd;                /* a descriptor of its own */
    int err;               /* errno of the fdatasync, 0 when it worked */
};

struct nbd_server {
    struct ev_loop *loop;
    nbd_server_conf_t conf; /* defaults applied; conf.listen not kept */
    int lfd;                /* listening socket, or -1 */
    unsigned port;          /* bound port */
    ev_io lio;              /* listener readable */
    ev_timer lretry;        /* accept paused after EMFILE/ENFILE */
    nbd_export_t *exports;
    nbd_conn_t *conns;
    unsigned nconns;
};

static void conn_free(nbd_conn_t *c);
static int conn_run(nbd_conn_t *c);
static void reply_queue(nbd_conn_t *c, nbd_req_t *r);

/* ---- small helpers ------------------------------------------------------- */

static void q_push(nbd_queue_t *q, nbd_req_t *r)
{
    r->next = NULL;
    if (q->tail)
        q->tail->next = r;
    else
        q->head = r;
    q->tail = r;
}

static nbd_req_t *q_pop(nbd_queue_t *q)
{
    nbd_req_t *r = q->head;
    if (r) {
        q->head = r->next;
        if (!q->head)
            q->tail = NULL;
        r->next = NULL;
    }
    return r;
}

/* errno of a failed file operation -> NBD error (EDQUOT, EFBIG -> ENOSPC per spec) */
static uint32_t nbd_errno(int e)
{
    switch (e) {
    case EPERM:
    case EROFS:
        return NBD_EPERM;
    case ENOSPC:
    case EDQUOT:
    case EFBIG:
        return NBD_ENOSPC;
    case ENOMEM:
        return NBD_ENOMEM;
    case EINVAL:
        return NBD_EINVAL;
    case EOPNOTSUPP:
        return NBD_ENOTSUP;
    default:
        return NBD_EIO;
    }
}

static int pwrite_all(int fd, const uint8_t *p, size_t n, uint64_t off)
{
    while (n > 0) {
        ssize_t w = pwrite(fd, p, n, (off_t)off);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (w == 0) {
            errno = ENOSPC;
            return -1;
        }
        p += w;
        n -= (size_t)w;
        off += (uint64_t)w;
    }
    return 0;
}

static int pread_all(int fd, uint8_t *p, size_t n, uint64_t off)
{
    while (n > 0) {
        ssize_t r = pread(fd, p, n, (off_t)off);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (r == 0) { /* the file shrank under us */
            errno = EIO;
            return -1;
        }
        p += r;
        n -= (size_t)r;
        off += (uint64_t)r;
    }
    return 0;
}

/* ---- negotiation output ---------------------------------------------------- */

/* Room for @n more bytes; returns where they go. NULL when memory fails. */
static uint8_t *nout_grab(nbd_conn_t *c, size_t n)
{
    if (c->nout_pos == c->nout_len)
        c->nout_pos = c->nout_len = 0;
    if (c->nout_len + n > c->nout_cap) {
        size_t cap = c->nout_cap ? c->nout_cap : 512;
        while (cap < c->nout_len + n)
            cap *= 2;
        uint8_t *p = realloc(c->nout, cap);
        if (!p)
            return NULL;
        c->nout = p;
        c->nout_cap = cap;
    }
    uint8_t *p = c->nout + c->nout_len;
    c->nout_len += n;
    return p;
}

/* An option reply header with room for @len payload bytes after it. */
static uint8_t *rep_begin(nbd_conn_t *c, uint32_t opt, uint32_t type, uint32_t len)
{
    uint8_t *p = nout_grab(c, NBD_REP_HDR_SIZE + (size_t)len);
    if (!p)
        return NULL;
    nbd_put64(p, NBD_REP_MAGIC);
    nbd_put32(p + 8, opt);
    nbd_put32(p + 12, type);
    nbd_put32(p + 16, len);
    return p + NBD_REP_HDR_SIZE;
}

/* A reply whose payload is @msg (ACK: NULL; errors: a message for humans). */
static int rep_simple(nbd_conn_t *c, uint32_t opt, uint32_t type, const char *msg)
{
    uint32_t len = msg ? (uint32_t)strlen(msg) : 0;
    uint8_t *p = rep_begin(c, opt, type, len);
    if (!p)
        return RT_ERR;
    if (len)
        memcpy(p, msg, len);
    return RT_OK;
}

/* ---- exports ---------------------------------------------------------------- */

static uint16_t export_tflags(const nbd_export_t *e)
{
    uint16_t f = NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH | NBD_FLAG_SEND_FUA |
                 NBD_FLAG_CAN_MULTI_CONN;
    if (e->readonly)
        f |= NBD_FLAG_READ_ONLY;
    else
        f |= NBD_FLAG_SEND_TRIM | NBD_FLAG_SEND_WRITE_ZEROES | NBD_FLAG_SEND_FAST_ZERO;
    return f;
}

/* The export called @name (@len bytes); the empty name is the first export. */
static nbd_export_t *export_lookup(nbd_server_t *s, const uint8_t *name, size_t len)
{
    if (len == 0)
        return s->exports;
    for (nbd_export_t *e = s->exports; e; e = e->next)
        if (e->name_len == len && memcmp(e->name, name, len) == 0)
            return e;
    return NULL;
}

/* ---- hooks -------------------------------------------------------------------- */

/* What a hook of request @r (NULL: a failure report, which never parks)
 * answered: @return the NBD error for the reply; r->wait_hook set when the
 * reply must wait for nbd_export_complete(). */
static uint32_t hook_answer(nbd_export_t *e, nbd_req_t *r, int rc)
{
    bool done = e->in_hook_done;
    int drc = e->in_hook_rc;
    e->in_hook = NULL;
    e->in_hook_done = false;
    if (rc == RT_AGAIN) {
        e->paused = true;
        return 0;
    }
    if (rc == NBD_PARK) {
        if (done) /* completed from inside the hook already */
            return drc == RT_OK ? 0 : NBD_EIO;
        if (r)
            r->wait_hook = true;
        return 0;
    }
    return rc == RT_OK ? 0 : NBD_EIO;
}

/* Report a write-like completion. @return the NBD error for the reply. */
static uint32_t hook_write(nbd_export_t *e, nbd_req_t *r, uint64_t off, uint32_t len,
                           const void *data, uint32_t flags)
{
    if (!e->hooks.on_write)
        return 0;
    e->in_hook = r;
    e->in_hook_done = false;
    if (r)
        r->token = e->token + 1;
    e->token++;
    return hook_answer(e, r, e->hooks.on_write(e->ctx, off, len, data, flags));
}

/* A write-like operation is about to touch the disk. @return true if the
 * hook refused it (the request fails with EIO, the disk is untouched). */
static bool hook_begin_refused(nbd_export_t *e, const nbd_req_t *r)
{
    if (!e->hooks.on_begin || r->len == 0 ||
        (r->type != NBD_CMD_WRITE && r->type != NBD_CMD_TRIM && r->type != NBD_CMD_WRITE_ZEROES))
        return false;
    return e->hooks.on_begin(e->ctx, r->off, r->len) != RT_OK;
}

/* A write-like operation failed after it may have touched the disk. */
static void hook_failed(nbd_export_t *e, uint64_t off, uint32_t len, uint32_t flags)
{
    e->st.errors++;
    if (e->hooks.on_write && len > 0)
        (void)hook_write(e, NULL, off, len, NULL, flags | NBD_HOOK_FAILED);
}

/* ---- command execution -------------------------------------------------------- */

static uint32_t exec_read(nbd_export_t *e, nbd_req_t *r)
{
    if (r->len == 0)
        return 0;
    r->data = malloc(r->len);
    if (!r->data)
        return NBD_ENOMEM;
    if (pread_all(e->fd, r->data, r->len, r->off) < 0)
        return nbd_errno(errno);
    e->st.reads++;
    e->st.bytes_read += r->len;
    return 0;
}

static uint32_t exec_write(nbd_export_t *e, nbd_req_t *r)
{
    bool fua = r->flags & NBD_CMD_FLAG_FUA;
    if (r->len == 0)
        return 0;
    if (pwrite_all(e->fd, r->data, r->len, r->off) < 0) {
        uint32_t err = nbd_errno(errno);
        hook_failed(e, r->off, r->len, fua ? NBD_HOOK_FUA : 0);
        return err;
    }
    e->st.writes++;
    e->st.bytes_written += r->len;
    if (fua)
        r->sync_gen = 1; /* wants a sync (the generation is set when it parks) */
    return hook_write(e, r, r->off, r->len, r->data, fua ? NBD_HOOK_FUA : 0);
}

static int punch(int fd, uint64_t off, uint32_t len)
{
    return fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len);
}

static uint32_t exec_trim(nbd_export_t *e, nbd_req_t *r)
{
    bool fua = r->flags & NBD_CMD_FLAG_FUA;
    if (r->len == 0)
        return 0;
    if (punch(e->fd, r->off, r->len) < 0) {
        if (errno == EOPNOTSUPP || errno == ENOSYS)
            return 0; /* a hint the store cannot take: nothing changed */
        uint32_t err = nbd_errno(errno);
        hook_failed(e, r->off, r->len, NBD_HOOK_TRIM);
        return err;
    }
    e->st.writes++;
    if (fua)
        r->sync_gen = 1;
    return hook_write(e, r, r->off, r->len, NULL, NBD_HOOK_TRIM | (fua ? NBD_HOOK_FUA : 0));
}

/* Make [off, off+len) read as zeroes. The fast ways first; writing zeroes
 * only when none works and the client did not ask for FAST_ZERO. */
static uint32_t zero_range(nbd_export_t *e, uint64_t off, uint32_t len, bool no_hole, bool fast)
{
    static const uint8_t zeroes[NBD_ZERO_CHUNK];

    if (!no_hole && punch(e->fd, off, len) == 0)
        return 0;
    if (fallocate(e->fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len) == 0)
        return 0;
    /* tmpfs and some others: a hole, then allocate it again */
    if (no_hole && !e->is_blk && punch(e->fd, off, len) == 0) {
        (void)fallocate(e->fd, FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len);
        return 0;
    }
    if (fast)
        return NBD_ENOTSUP; /* nothing was changed */
    while (len > 0) {
        uint32_t n = len < NBD_ZERO_CHUNK ? len : NBD_ZERO_CHUNK;
        if (pwrite_all(e->fd, zeroes, n, off) < 0)
            return nbd_errno(errno);
        off += n;
        len -= n;
    }
    return 0;
}

static uint32_t exec_zeroes(nbd_export_t *e, nbd_req_t *r)
{
    bool fua = r->flags & NBD_CMD_FLAG_FUA;
    uint32_t hf = NBD_HOOK_ZERO | (fua ? NBD_HOOK_FUA : 0);
    if (r->len == 0)
        return 0;
    uint32_t err = zero_range(e, r->off, r->len, r->flags & NBD_CMD_FLAG_NO_HOLE,
                              r->flags & NBD_CMD_FLAG_FAST_ZERO);
    if (err == NBD_ENOTSUP)
        return err;
    if (err) {
        hook_failed(e, r->off, r->len, hf);
        return err;
    }
    e->st.writes++;
    if (fua)
        r->sync_gen = 1;
    return hook_write(e, r, r->off, r->len, NULL, hf);
}

static uint32_t exec_flush(nbd_export_t *e, nbd_req_t *r)
{
    r->sync_gen = 1; /* the reply waits for a sync that starts after this */
    if (!e->hooks.on_flush)
        return 0;
    e->in_hook = r;
    e->in_hook_done = false;
    r->token = ++e->token;
    uint32_t err = hook_answer(e, r, e->hooks.on_flush(e->ctx));
    if (err)
        e->st.errors++;
    return err;
}

/* ---- parking: syncs of the backing file and hook completions ----------------- */

static void park_unlink(nbd_export_t *e, nbd_req_t *r)
{
    if (r->pprev)
        r->pprev->pnext = r->pnext;
    else
        e->parked = r->pnext;
    if (r->pnext)
        r->pnext->pprev = r->pprev;
    r->pnext = r->pprev = NULL;
    r->parked = false;
    e->st.parked--;
}

/* @r waits for nothing more: its reply joins the queue, the kick sends it */
static void park_release(nbd_export_t *e, nbd_req_t *r)
{
    nbd_conn_t *c = r->conn;
    park_unlink(e, r);
    c->nparked--;
    if (r->type == NBD_CMD_FLUSH) {
        if (r->err)
            e->st.errors++;
        else
            e->st.flushes++;
    }
    reply_queue(c, r);
    if (!ev_is_active(&e->kick))
        ev_prepare_start(e->srv->loop, &e->kick);
}

/* A write-like request's sync failed: the client gets EIO, the range is dirty. */
static void park_fail(nbd_export_t *e, nbd_req_t *r, uint32_t err)
{
    if (r->err)
        return;
    r->err = err;
    if (r->type != NBD_CMD_FLUSH) {
        uint32_t hf = NBD_HOOK_FUA | (r->type == NBD_CMD_TRIM ? NBD_HOOK_TRIM
                                      : r->type == NBD_CMD_WRITE_ZEROES ? NBD_HOOK_ZERO : 0);
        hook_failed(e, r->off, r->len, hf); /* (counts the error) */
    }
}

static void sync_finish(nbd_export_t *e, uint64_t gen, int err);

/* Start the next sync generation: on a worker when the server has a runner. */
static void sync_start(nbd_export_t *e)
{
    nbd_server_t *s = e->srv;
    uint64_t gen = ++e->sync_started;
    e->sync_want = false;
    e->st.syncs++;
    if (s->conf.sync_submit) {
        nbd_sync_t *j = calloc(1, sizeof(*j));
        if (j) {
            j->fd = fcntl(e->fd, F_DUPFD_CLOEXEC, 0);
            j->e = e;
            j->gen = gen;
            if (j->fd >= 0) {
                e->sjob = j;
                if (s->conf.sync_submit(s->conf.sync_arg, j) == RT_OK)
                    return;
                e->sjob = NULL;
                close(j->fd);
            }
            free(j);
        }
    }
    sync_finish(e, gen, fdatasync(e->fd) == 0 ? 0 : errno); /* on the loop */
}

/* Sync generation @gen finished (@err: its errno): release what it covers. */
static void sync_finish(nbd_export_t *e, uint64_t gen, int err)
{
    nbd_req_t *r, *next;
    if (gen > e->sync_done)
        e->sync_done = gen;
    if (err)
        rt_log(RT_LOG_ERR, "nbd: export %s: fdatasync: %s", e->name, strerror(err));
    for (r = e->parked; r; r = next) {
        next = r->pnext;
        if (!r->sync_gen || r->sync_gen > gen)
            continue;
        r->sync_gen = 0;
        if (err)
            park_fail(e, r, NBD_EIO);
        if (!r->wait_hook)
            park_release(e, r);
    }
    if (e->sync_want && !e->sjob)
        sync_start(e);
}

/* @r ran and waits for a sync and/or its hook's completion: park it. */
static void park(nbd_conn_t *c, nbd_req_t *r)
{
    nbd_export_t *e = c->exp;
    r->conn = c;
    r->parked = true;
    r->pprev = NULL;
    r->pnext = e->parked;
    if (e->parked)
        e->parked->pprev = r;
    e->parked = r;
    e->st.parked++;
    c->nparked++;
    if (!r->sync_gen) {
        return;
    }
    /* a sync that starts from now on: the next one, or one now */
    r->sync_gen = e->sync_started + 1;
    if (e->sjob)
        e->sync_want = true;
    else
        sync_start(e); /* may release @r at once (a sync on the loop) */
}

void nbd_sync_run(void *job)
{
    nbd_sync_t *j = job;
    j->err = fdatasync(j->fd) == 0 ? 0 : errno;
}

void nbd_sync_free(nbd_sync_t *job)
{
    if (!job)
        return;
    close(job->fd);
    free(job);
}

void nbd_sync_end(nbd_server_t *s, nbd_sync_t *job)
{
    if (!job)
        return;
    for (nbd_export_t *e = s ? s->exports : NULL; e; e = e->next) {
        if (e->sjob != job)
            continue;
        e->sjob = NULL;
        uint64_t gen = job->gen;
        int err = job->err;
        nbd_sync_free(job);
        sync_finish(e, gen, err);
        return;
    }
    nbd_sync_free(job); /* its export is gone */
}

uint64_t nbd_export_token(const nbd_export_t *e)
{
    return e->token;
}

void nbd_export_complete(nbd_export_t *e, uint64_t upto, int rc)
{
    nbd_req_t *r, *next;
    if (e->in_hook && e->in_hook->token <= upto && !e->in_hook_done) {
        e->in_hook_done = true;
        e->in_hook_rc = rc;
    }
    for (r = e->parked; r; r = next) {
        next = r->pnext;
        if (!r->wait_hook || r->token > upto)
            continue;
        r->wait_hook = false;
        if (rc != RT_OK && !r->err)
            r->err = NBD_EIO;
        if (!r->sync_gen)
            park_release(e, r);
    }
}

/* Check a request against the export before anything else happens to it. */
static uint32_t req_check(const nbd_server_t *s, const nbd_export_t *e, const nbd_req_t *r)
{
    uint16_t allowed;
    bool ranged = true, writes = false;

    switch (r->type) {
    case NBD_CMD_READ:
        allowed = NBD_CMD_FLAG_FUA;
        break;
    case NBD_CMD_WRITE:
        allowed = NBD_CMD_FLAG_FUA;
        writes = true;
        break;
    case NBD_CMD_TRIM:
        allowed = NBD_CMD_FLAG_FUA;
        writes = true;
        break;
    case NBD_CMD_WRITE_ZEROES:
        allowed = NBD_CMD_FLAG_FUA | NBD_CMD_FLAG_NO_HOLE | NBD_CMD_FLAG_FAST_ZERO;
        writes = true;
        break;
    case NBD_CMD_FLUSH:
        allowed = NBD_CMD_FLAG_FUA;
        ranged = false;
        break;
    default:
        return NBD_EINVAL; /* unknown command, CACHE, BLOCK_STATUS: not advertised */
    }
    if (r->flags & ~allowed)
        return NBD_EINVAL;
    if (writes && e->readonly)
        return NBD_EPERM;
    if ((r->type == NBD_CMD_READ || r->type == NBD_CMD_WRITE) && r->len > s->conf.max_block)
        return NBD_EINVAL;
    if (ranged && (r->off > e->size || r->len > e->size - r->off))
        return (r->type == NBD_CMD_WRITE || r->type == NBD_CMD_WRITE_ZEROES) ? NBD_ENOSPC
                                                                            : NBD_EINVAL;
    return 0;
}

/* Return a slot and its budget. */
static void req_done(nbd_conn_t *c, nbd_req_t *r)
{
    free(r->data);
    r->data = NULL;
    c->inflight -= r->charge;
    r->charge = 0;
    r->next = c->free;
    c->free = r;
}

/* Run queued requests in order while the export is not paused. */
static void conn_exec(nbd_conn_t *c)
{
    nbd_export_t *e = c->exp;
    nbd_req_t *r;

    while (!e->paused && (r = q_pop(&c->pend)) != NULL) {
        if (!r->err && hook_begin_refused(e, r))
            r->err = NBD_EIO;
        if (!r->err) {
            switch (r->type) {
            case NBD_CMD_READ:
                r->err = exec_read(e, r);
                break;
            case NBD_CMD_WRITE:
                r->err = exec_write(e, r);
                break;
            case NBD_CMD_TRIM:
                r->err = exec_trim(e, r);
                break;
            case NBD_CMD_WRITE_ZEROES:
                r->err = exec_zeroes(e, r);
                break;
            case NBD_CMD_FLUSH:
                r->err = exec_flush(e, r);
                break;
            default:
                r->err = NBD_EINVAL;
                break;
            }
        } else {
            e->st.errors++;
        }
        if (r->type != NBD_CMD_READ || r->err) { /* only a good READ keeps its buffer */
            free(r->data);
            r->data = NULL;
            c->inflight -= r->charge;
            r->charge = 0;
        }
        if (!r->err && (r->sync_gen || r->wait_hook)) {
            park(c, r);
            continue;
        }
        reply_queue(c, r);
    }
}

/* @r's simple reply, at the end of the connection's output */
static void reply_queue(nbd_conn_t *c, nbd_req_t *r)
{
    nbd_put32(r->hdr, NBD_SIMPLE_REPLY_MAGIC);
    nbd_put32(r->hdr + 4, r->err);
    nbd_put64(r->hdr + 8, r->cookie);
    q_push(&c->out, r);
}

/* ---- parsing ------------------------------------------------------------------ */

enum { P_MORE = 0, P_PROGRESS = 1 }; /* parse results besides RT_ERR */

static void enter_trans(nbd_conn_t *c, nbd_export_t *e)
{
    c->exp = e;
    c->ph = NBD_PH_TRANS;
    e->st.conns++;
    ev_timer_stop(c->srv->loop, &c->hs);
    rt_log(RT_LOG_DEBUG, "nbd: %s: serving export %s", c->peer, e->name);
}

/* NBD_OPT_INFO and NBD_OPT_GO. */
static int opt_info(nbd_conn_t *c, uint32_t opt, const uint8_t *d, uint32_t len)
{
    bool want_name = false, want_desc = false;
    uint8_t *p;

    if (len < 6)
        return rep_simple(c, opt, NBD_REP_ERR_INVALID, "option too short");
    uint32_t nl = nbd_get32(d);
    if (nl > len - 6)
        return rep_simple(c, opt, NBD_REP_ERR_INVALID, "name longer than the option");
    uint16_t nreq = nbd_get16(d + 4 + nl);
    if ((uint64_t)len != 6ull + nl + 2ull * nreq)
        return rep_simple(c, opt, NBD_REP_ERR_INVALID, "option length mismatch");
    nbd_export_t *e = export_lookup(c->srv, d + 4, nl);
    if (!e)
        return rep_simple(c, opt, NBD_REP_ERR_UNKNOWN, "no such export");
    for (uint16_t i = 0; i < nreq; i++) {
        uint16_t t = nbd_get16(d + 6 + nl + 2u * i);
        if (t == NBD_INFO_NAME)
            want_name = true;
        else if (t == NBD_INFO_DESCRIPTION)
            want_desc = true;
    }

    if (!(p = rep_begin(c, opt, NBD_REP_INFO, 12)))
        return RT_ERR;
    nbd_put16(p, NBD_INFO_EXPORT);
    nbd_put64(p + 2, e->size);
    nbd_put16(p + 10, export_tflags(e));
    if (want_name) {
        if (!(p = rep_begin(c, opt, NBD_REP_INFO, 2 + (uint32_t)e->name_len)))
            return RT_ERR;
        nbd_put16(p, NBD_INFO_NAME);
        memcpy(p + 2, e->name, e->name_len);
    }
    if (want_desc && e->desc) {
        if (!(p = rep_begin(c, opt, NBD_REP_INFO, 2 + (uint32_t)e->desc_len)))
            return RT_ERR;
        nbd_put16(p, NBD_INFO_DESCRIPTION);
        memcpy(p + 2, e->desc, e->desc_len);
    }
    /* sent whether asked or not: the protocol allows it, and clients then
     * keep to our maximum */
    if (!(p = rep_begin(c, opt, NBD_REP_INFO, 14)))
        return RT_ERR;
    nbd_put16(p, NBD_INFO_BLOCK_SIZE);
    nbd_put32(p + 2, NBD_MIN_BLOCK);
    nbd_put32(p + 6, NBD_PREF_BLOCK);
    nbd_put32(p + 10, c->srv->conf.max_block);
    if (rep_simple(c, opt, NBD_REP_ACK, NULL) != RT_OK)
        return RT_ERR;
    if (opt == NBD_OPT_GO)
        enter_trans(c, e);
    return RT_OK;
}

static int opt_list(nbd_conn_t *c, uint32_t len)
{
    if (len != 0)
        return rep_simple(c, NBD_OPT_LIST, NBD_REP_ERR_INVALID, "NBD_OPT_LIST takes no data");
    for (nbd_export_t *e = c->srv->exports; e; e = e->next) {
        uint8_t *p = rep_begin(c, NBD_OPT_LIST, NBD_REP_SERVER,
                               4 + (uint32_t)e->name_len + (uint32_t)e->desc_len);
        if (!p)
            return RT_ERR;
        nbd_put32(p, (uint32_t)e->name_len);
        memcpy(p + 4, e->name, e->name_len);
        if (e->desc_len)
            memcpy(p + 4 + e->name_len, e->desc, e->desc_len);
    }
    return rep_simple(c, NBD_OPT_LIST, NBD_REP_ACK, NULL);
}

static int opt_export_name(nbd_conn_t *c, const uint8_t *d, uint32_t len)
{
    nbd_export_t *e = export_lookup(c->srv, d, len);
    if (!e) { /* this option cannot fail politely: the spec says hang up */
        rt_log(RT_LOG_INFO, "nbd: %s: NBD_OPT_EXPORT_NAME of an unknown export, closing",
               c->peer);
        return RT_ERR;
    }
    size_t n = c->no_zeroes ? 10 : 134;
    uint8_t *p = nout_grab(c, n);
    if (!p)
        return RT_ERR;
    memset(p, 0, n);
    nbd_put64(p, e->size);
    nbd_put16(p + 8, export_tflags(e));
    enter_trans(c, e);
    return RT_OK;
}

static int opt_handle(nbd_conn_t *c, uint32_t opt, const uint8_t *d, uint32_t len)
{
    switch (opt) {
    case NBD_OPT_EXPORT_NAME:
        return opt_export_name(c, d, len);
    case NBD_OPT_ABORT:
        c->ph = NBD_PH_CLOSING;
        return rep_simple(c, opt, NBD_REP_ACK, NULL);
    case NBD_OPT_LIST:
        return opt_list(c, len);
    case NBD_OPT_INFO:
    case NBD_OPT_GO:
        return opt_info(c, opt, d, len);
    case NBD_OPT_STRUCTURED_REPLY:
        return rep_simple(c, opt, NBD_REP_ERR_UNSUP, "simple replies only");
    case NBD_OPT_STARTTLS:
        return rep_simple(c, opt, NBD_REP_ERR_UNSUP, "no TLS on this server");
    default:
        return rep_simple(c, opt, NBD_REP_ERR_UNSUP, "option not supported");
    }
}

static int parse_cflags(nbd_conn_t *c)
{
    if (c->rend - c->rpos < 4)
        return P_MORE;
    uint32_t f = nbd_get32(c->rx + c->rpos);
    c->rpos += 4;
    if (f & ~(uint32_t)(NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES)) {
        rt_log(RT_LOG_INFO, "nbd: %s: unknown client flags 0x%x, closing", c->peer, f);
        return RT_ERR;
    }
    c->no_zeroes = f & NBD_FLAG_C_NO_ZEROES;
    c->ph = NBD_PH_OPTS;
    return P_PROGRESS;
}

static int parse_opt(nbd_conn_t *c)
{
    uint32_t avail = c->rend - c->rpos;

    if (c->opt_skip > 0) { /* dropping an oversize option's data */
        uint32_t n = c->opt_skip < avail ? (uint32_t)c->opt_skip : avail;
        c->rpos += n;
        c->opt_skip -= n;
        if (c->opt_skip > 0)
            return P_MORE;
        if (rep_simple(c, c->opt_skip_opt, NBD_REP_ERR_TOO_BIG, "option too long") != RT_OK)
            return RT_ERR;
        return P_PROGRESS;
    }
    if (c->nout_pos < c->nout_len)
        return P_MORE; /* one option at a time: its replies go out first */
    if (avail < NBD_OPT_HDR_SIZE)
        return P_MORE;
    const uint8_t *p = c->rx + c->rpos;
    if (nbd_get64(p) != NBD_IHAVEOPT) {
        rt_log(RT_LOG_INFO, "nbd: %s: bad option magic, closing", c->peer);
        return RT_ERR;
    }
    uint32_t opt = nbd_get32(p + 8), len = nbd_get32(p + 12);
    if (len > NBD_OPT_MAX) {
        if (opt == NBD_OPT_EXPORT_NAME) {
            rt_log(RT_LOG_INFO, "nbd: %s: export name of %u bytes, closing", c->peer, len);
            return RT_ERR;
        }
        c->rpos += NBD_OPT_HDR_SIZE;
        c->opt_skip = len;
        c->opt_skip_opt = opt;
        return P_PROGRESS;
    }
    if (avail < NBD_OPT_HDR_SIZE + len)
        return P_MORE;
    c->rpos += NBD_OPT_HDR_SIZE + len;
    if (opt_handle(c, opt, p + NBD_OPT_HDR_SIZE, len) != RT_OK)
        return RT_ERR;
    return P_PROGRESS;
}

static int parse_req(nbd_conn_t *c)
{
    nbd_server_t *s = c->srv;
    uint32_t avail = c->rend - c->rpos;
    nbd_req_t *r = c->cur;

    if (r) { /* WRITE payload */
        uint32_t n = r->len - r->have;
        if (n > avail)
            n = avail;
        if (!r->skip && n)
            memcpy(r->data + r->have, c->rx + c->rpos, n);
        r->have += n;
        c->rpos += n;
        if (r->have < r->len)
            return P_MORE;
        c->cur = NULL;
        q_push(&c->pend, r);
        return P_PROGRESS;
    }
    if (c->disc || avail < NBD_REQUEST_SIZE)
        return P_MORE;

    const uint8_t *p = c->rx + c->rpos;
    uint32_t magic = nbd_get32(p);
    if (magic != NBD_REQUEST_MAGIC) {
        rt_log(RT_LOG_INFO, "nbd: %s: bad request magic 0x%08x, closing", c->peer, magic);
        return RT_ERR;
    }
    uint16_t type = nbd_get16(p + 6);
    uint32_t len = nbd_get32(p + 24);
    uint64_t charge = 0;
    if ((type == NBD_CMD_READ || type == NBD_CMD_WRITE) && len <= s->conf.max_block)
        charge = len;
    if (!c->free || (c->inflight > 0 && c->inflight + charge > s->conf.conn_bytes)) {
        c->blocked = true; /* budget full: wait for replies to go out */
        return P_MORE;
    }
    c->rpos += NBD_REQUEST_SIZE;

    r = c->free;
    c->free = r->next;
    memset(r, 0, sizeof(*r));
    r->flags = nbd_get16(p + 4);
    r->type = type;
    r->cookie = nbd_get64(p + 8);
    r->off = nbd_get64(p + 16);
    r->len = len;
    if (type == NBD_CMD_DISC) {
        c->disc = true;
        r->next = c->free;
        c->free = r;
        return P_PROGRESS;
    }
    r->err = req_check(s, c->exp, r);
    if (type == NBD_CMD_WRITE) {
        if (!r->err && len > 0) {
            r->data = malloc(len);
            if (r->data) {
                r->charge = len;
                c->inflight += len;
            } else {
                r->err = NBD_ENOMEM;
            }
        }
        r->skip = r->err != 0;
        if (len > 0) {
            c->cur = r;
            return P_PROGRESS;
        }
    } else if (type == NBD_CMD_READ && !r->err) {
        r->charge = len;
        c->inflight += len;
    }
    q_push(&c->pend, r);
    return P_PROGRESS;
}

/* Cut as much of the receive buffer into options or requests as the phase
 * and the budgets allow. */
static int conn_parse(nbd_conn_t *c)
{
    for (;;) {
        int rc;
        switch (c->ph) {
        case NBD_PH_CFLAGS:
            rc = parse_cflags(c);
            break;
        case NBD_PH_OPTS:
            rc = parse_opt(c);
            break;
        case NBD_PH_TRANS:
            rc = parse_req(c);
            break;
        case NBD_PH_CLOSING:
        default:
            rc = P_MORE;
            break;
        }
        if (rc == P_PROGRESS)
            continue;
        if (c->rpos == c->rend)
            c->rpos = c->rend = 0;
        return rc == RT_ERR ? RT_ERR : RT_OK;
    }
}

/* ---- socket I/O ------------------------------------------------------------------ */

/* Bytes of @r's reply on the wire. */
static size_t reply_size(const nbd_req_t *r)
{
    return NBD_REPLY_SIZE + (r->type == NBD_CMD_READ && !r->err ? r->len : 0);
}

/* Send queued output until done or the socket is full; add the bytes sent
 * to *@sent. */
static int conn_flush(nbd_conn_t *c, size_t *sent)
{
    for (;;) {
        struct iovec iov[NBD_IOV_MAX];
        int n = 0;
        size_t want = 0;

        if (c->nout_pos < c->nout_len) {
            iov[n].iov_base = c->nout + c->nout_pos;
            iov[n].iov_len = c->nout_len - c->nout_pos;
            want += iov[n++].iov_len;
        }
        size_t skip = c->out_off;
        for (nbd_req_t *r = c->out.head; r && n < NBD_IOV_MAX - 1; r = r->next) {
            if (skip < NBD_REPLY_SIZE) {
                iov[n].iov_base = r->hdr + skip;
                iov[n].iov_len = NBD_REPLY_SIZE - skip;
                want += iov[n++].iov_len;
                skip = 0;
            } else {
                skip -= NBD_REPLY_SIZE;
            }
            if (reply_size(r) > NBD_REPLY_SIZE && r->len > 0) {
                iov[n].iov_base = r->data + skip;
                iov[n].iov_len = r->len - skip;
                want += iov[n++].iov_len;
            }
            skip = 0;
        }
        if (n == 0)
            return RT_OK;

        struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)n};
        ssize_t w = sendmsg(c->fd, &mh, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return RT_OK;
            rt_log(RT_LOG_DEBUG, "nbd: %s: send: %s", c->peer, strerror(errno));
            return RT_ERR;
        }
        size_t left = (size_t)w;
        *sent += (size_t)w;
        if (c->nout_pos < c->nout_len) {
            size_t k = c->nout_len - c->nout_pos;
            if (k > left)
                k = left;
            c->nout_pos += k;
            left -= k;
        }
        while (left > 0 && c->out.head) {
            nbd_req_t *r = c->out.head;
            size_t rest = reply_size(r) - c->out_off;
            if (left < rest) {
                c->out_off += left;
                left = 0;
                break;
            }
            left -= rest;
            c->out_off = 0;
            (void)q_pop(&c->out);
            req_done(c, r);
        }
        if ((size_t)w < want)
            return RT_OK; /* the socket took what it could */
    }
}

/* Watchers follow the state: read while input can be taken, write while
 * output is stuck. */
static void conn_watch(nbd_conn_t *c)
{
    struct ev_loop *loop = c->srv->loop;
    bool out = c->nout_pos < c->nout_len || c->out.head;
    bool room = c->rend < NBD_RX_CAP || c->rpos > 0 || (c->cur && !c->cur->skip);
    bool rd = !c->eof && !c->disc && c->ph != NBD_PH_CLOSING && !c->blocked && room;

    if (rd && !ev_is_active(&c->rio))
        ev_io_start(loop, &c->rio);
    else if (!rd && ev_is_active(&c->rio))
        ev_io_stop(loop, &c->rio);
    if (out && !ev_is_active(&c->wio))
        ev_io_start(loop, &c->wio);
    else if (!out && ev_is_active(&c->wio))
        ev_io_stop(loop, &c->wio);
}

/* Parse, run, send, until nothing moves; then decide whether the
 * connection is finished. @return RT_ERR when it must be closed now. */
static int conn_run(nbd_conn_t *c)
{
    for (int round = 0; round < 64; round++) {
        size_t sent = 0;

        c->blocked = false;
        if (conn_parse(c) != RT_OK)
            return RT_ERR;
        if (c->ph == NBD_PH_TRANS)
            conn_exec(c);
        if (conn_flush(c, &sent) != RT_OK)
            return RT_ERR;
        /* sending frees budget and unblocks the option parser: go again if
         * there is buffered input left to use it */
        if (sent == 0 || c->rpos == c->rend)
            break;
    }

    bool idle = c->nout_pos == c->nout_len && !c->out.head;
    switch (c->ph) {
    case NBD_PH_CLOSING:
        if (idle)
            return RT_ERR;
        break;
    case NBD_PH_TRANS:
        if ((c->disc || c->eof) && idle && !c->pend.head && !c->nparked)
            return RT_ERR;
        break;
    case NBD_PH_CFLAGS:
    case NBD_PH_OPTS:
        if (c->eof && idle) /* answered what could be parsed: nothing more will come */
            return RT_ERR;
        break;
    }
    conn_watch(c);
    return RT_OK;
}

/* Read what the socket has (bounded per call, so that one busy client does
 * not starve the others) and act on it. */
static int conn_read(nbd_conn_t *c)
{
    for (int i = 0; i < NBD_READ_ROUNDS; i++) {
        nbd_req_t *r = c->cur;
        ssize_t n;

        if (r && !r->skip && c->rpos == c->rend && r->len - r->have >= NBD_DIRECT_MIN) {
            /* large payload: straight into the request, the rest into rx */
            struct iovec iov[2] = {
                {.iov_base = r->data + r->have, .iov_len = r->len - r->have},
                {.iov_base = c->rx, .iov_len = NBD_RX_CAP},
            };
            c->rpos = c->rend = 0;
            n = readv(c->fd, iov, 2);
            if (n > 0) {
                size_t take = (size_t)n < iov[0].iov_len ? (size_t)n : iov[0].iov_len;
                r->have += (uint32_t)take;
                c->rend = (uint32_t)((size_t)n - take);
            }
        } else {
            if (c->rpos > 0 && c->rpos < c->rend) {
                memmove(c->rx, c->rx + c->rpos, c->rend - c->rpos);
                c->rend -= c->rpos;
                c->rpos = 0;
            } else if (c->rpos == c->rend) {
                c->rpos = c->rend = 0;
            }
            if (c->rend == NBD_RX_CAP)
                break;
            n = read(c->fd, c->rx + c->rend, NBD_RX_CAP - c->rend);
            if (n > 0)
                c->rend += (uint32_t)n;
        }
        if (n == 0) {
            c->eof = true;
            break;
        }
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            rt_log(RT_LOG_DEBUG, "nbd: %s: read: %s", c->peer, strerror(errno));
            return RT_ERR;
        }
        if (conn_run(c) != RT_OK)
            return RT_ERR;
        if (!ev_is_active(&c->rio))
            return RT_OK; /* blocked, closing or finished */
    }
    return conn_run(c);
}

static void conn_read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    nbd_conn_t *c = container_of(w, nbd_conn_t, rio);
    if (conn_read(c) != RT_OK)
        conn_free(c);
}

static void conn_write_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    nbd_conn_t *c = container_of(w, nbd_conn_t, wio);
    if (conn_run(c) != RT_OK)
        conn_free(c);
}

static void conn_hs_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    nbd_conn_t *c = container_of(w, nbd_conn_t, hs);
    rt_log(RT_LOG_INFO, "nbd: %s: negotiation timed out, closing", c->peer);
    conn_free(c);
}

/* ---- connections -------------------------------------------------------------- */

static void conn_free(nbd_conn_t *c)
{
    nbd_server_t *s = c->srv;

    ev_io_stop(s->loop, &c->rio);
    ev_io_stop(s->loop, &c->wio);
    ev_timer_stop(s->loop, &c->hs);
    close(c->fd);
    if (c->slots)
        for (uint32_t i = 0; i < s->conf.conn_reqs; i++) {
            if (c->slots[i].parked) /* its sync or completion will find nothing */
                park_unlink(c->exp, &c->slots[i]);
            free(c->slots[i].data);
        }
    free(c->slots);
    free(c->rx);
    free(c->nout);
    if (c->exp && c->ph == NBD_PH_TRANS)
        c->exp->st.conns--;
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    s->nconns--;
    rt_log(RT_LOG_DEBUG, "nbd: %s: closed", c->peer);
    free(c);
}

static void peer_name(int fd, char *out, size_t outlen)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    char host[INET6_ADDRSTRLEN] = "local";
    unsigned port = 0;

    if (getpeername(fd, (struct sockaddr *)&ss, &sl) == 0) {
        if (ss.ss_family == AF_INET) {
            const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;
            inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
            port = ntohs(a->sin_port);
        } else if (ss.ss_family == AF_INET6) {
            const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;
            inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
            port = ntohs(a->sin6_port);
        }
    }
    snprintf(out, outlen, "%s:%u", host, port);
}

int nbd_server_adopt(nbd_server_t *s, int fd)
{
    nbd_conn_t *c = NULL;
    int one = 1;

    if (s->nconns >= s->conf.max_conns) {
        rt_log(RT_LOG_WARN, "nbd: %u clients already, refusing another", s->nconns);
        goto fail;
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        goto fail;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)); /* not for AF_UNIX */
    c = calloc(1, sizeof(*c));
    if (!c)
        goto fail;
    c->rx = malloc(NBD_RX_CAP);
    c->slots = calloc(s->conf.conn_reqs, sizeof(*c->slots));
    if (!c->rx || !c->slots)
        goto fail;
    for (uint32_t i = s->conf.conn_reqs; i-- > 0;) {
        c->slots[i].next = c->free;
        c->free = &c->slots[i];
    }
    c->srv = s;
    c->fd = fd;
    c->ph = NBD_PH_CFLAGS;
    peer_name(fd, c->peer, sizeof(c->peer));

    uint8_t *p = nout_grab(c, 18);
    if (!p)
        goto fail;
    nbd_put64(p, NBD_MAGIC);
    nbd_put64(p + 8, NBD_IHAVEOPT);
    nbd_put16(p + 16, NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES);

    ev_io_init(&c->rio, conn_read_cb, fd, EV_READ);
    ev_io_init(&c->wio, conn_write_cb, fd, EV_WRITE);
    ev_timer_init(&c->hs, conn_hs_cb, s->conf.handshake_timeout_s, 0.);
    ev_timer_start(s->loop, &c->hs);
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    s->nconns++;
    rt_log(RT_LOG_DEBUG, "nbd: %s: connected", c->peer);
    if (conn_run(c) != RT_OK) {
        conn_free(c);
        return RT_ERR;
    }
    return RT_OK;

fail:
    if (c) {
        free(c->rx);
        free(c->slots);
        free(c->nout);
        free(c);
    }
    close(fd);
    return RT_ERR;
}

unsigned nbd_server_conns(const nbd_server_t *s)
{
    return s->nconns;
}

/* ---- listener ------------------------------------------------------------------ */

static void srv_accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)revents;
    nbd_server_t *s = container_of(w, nbd_server_t, lio);

    for (int i = 0; i < 16; i++) {
        int fd = accept4(s->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                rt_log(RT_LOG_WARN, "nbd: accept: %s; pausing accepts for 1 s", strerror(errno));
                ev_io_stop(loop, &s->lio);
                ev_timer_set(&s->lretry, 1., 0.);
                ev_timer_start(loop, &s->lretry);
            }
            return;
        }
        (void)nbd_server_adopt(s, fd);
    }
}

static void srv_retry_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)revents;
    nbd_server_t *s = container_of(w, nbd_server_t, lretry);
    ev_io_start(loop, &s->lio);
}

/* "1.2.3.4:port" or "[v6]:port", numeric only. */
static int parse_listen(const char *str, struct sockaddr_storage *ss, socklen_t *sl)
{
    char host[INET6_ADDRSTRLEN + 1];
    const char *port;
    size_t hl;

    memset(ss, 0, sizeof(*ss));
    if (str[0] == '[') {
        const char *end = strchr(str, ']');
        if (!end || end[1] != ':')
            return RT_ERR;
        hl = (size_t)(end - str - 1);
        if (hl == 0 || hl >= sizeof(host))
            return RT_ERR;
        memcpy(host, str + 1, hl);
        port = end + 2;
    } else {
        const char *colon = strrchr(str, ':');
        if (!colon)
            return RT_ERR;
        hl = (size_t)(colon - str);
        if (hl == 0 || hl >= sizeof(host))
            return RT_ERR;
        memcpy(host, str, hl);
        port = colon + 1;
    }
    host[hl] = '\0';
    if (*port == '\0' || strlen(port) > 5 || strspn(port, "0123456789") != strlen(port))
        return RT_ERR;
    unsigned long pn = strtoul(port, NULL, 10);
    if (pn > 65535)
        return RT_ERR;
    if (str[0] == '[') {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
        if (inet_pton(AF_INET6, host, &a->sin6_addr) != 1)
            return RT_ERR;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)pn);
        *sl = sizeof(*a);
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)ss;
        if (inet_pton(AF_INET, host, &a->sin_addr) != 1)
            return RT_ERR;
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)pn);
        *sl = sizeof(*a);
    }
    return RT_OK;
}

static int srv_listen(nbd_server_t *s, const char *addr)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    int one = 1;

    if (parse_listen(addr, &ss, &sl) != RT_OK) {
        rt_log(RT_LOG_ERR, "nbd: bad listen address '%s' (want numeric ADDR:PORT)", addr);
        return RT_ERR;
    }
    s->lfd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s->lfd < 0) {
        rt_log(RT_LOG_ERR, "nbd: socket: %s", strerror(errno));
        return RT_ERR;
    }
    (void)setsockopt(s->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(s->lfd, (struct sockaddr *)&ss, sl) < 0 || listen(s->lfd, 128) < 0) {
        rt_log(RT_LOG_ERR, "nbd: cannot listen on %s: %s", addr, strerror(errno));
        return RT_ERR;
    }
    sl = sizeof(ss);
    if (getsockname(s->lfd, (struct sockaddr *)&ss, &sl) == 0)
        s->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                 : ((struct sockaddr_in *)&ss)->sin_port);
    ev_io_init(&s->lio, srv_accept_cb, s->lfd, EV_READ);
    ev_io_start(s->loop, &s->lio);
    return RT_OK;
}

/* ---- server lifecycle ------------------------------------------------------------ */

nbd_server_t *nbd_server_new(struct ev_loop *loop, const nbd_server_conf_t *conf)
{
    nbd_server_t *s = calloc(1, sizeof(*s));
    if (!s) {
        rt_log(RT_LOG_ERR, "nbd: out of memory");
        return NULL;
    }
    s->loop = loop;
    s->lfd = -1;
    s->conf = *conf;
    s->conf.listen = NULL;
    if (s->conf.max_block == 0 || s->conf.max_block > NBD_DEF_MAX_BLOCK)
        s->conf.max_block = NBD_DEF_MAX_BLOCK;
    if (s->conf.max_conns == 0)
        s->conf.max_conns = NBD_DEF_MAX_CONNS;
    if (s->conf.conn_reqs == 0)
        s->conf.conn_reqs = NBD_DEF_CONN_REQS;
    if (s->conf.conn_bytes == 0)
        s->conf.conn_bytes = NBD_DEF_CONN_BYTES;
    if (s->conf.handshake_timeout_s <= 0)
        s->conf.handshake_timeout_s = NBD_DEF_HS_TIMEOUT;
    ev_timer_init(&s->lretry, srv_retry_cb, 1., 0.);
    if (conf->listen && srv_listen(s, conf->listen) != RT_OK) {
        if (s->lfd >= 0)
            close(s->lfd);
        free(s);
        return NULL;
    }
    return s;
}

unsigned nbd_server_port(const nbd_server_t *s)
{
    return s->port;
}

void nbd_server_free(nbd_server_t *s)
{
    if (!s)
        return;
    if (s->lfd >= 0) {
        ev_io_stop(s->loop, &s->lio);
        ev_timer_stop(s->loop, &s->lretry);
        close(s->lfd);
    }
    while (s->conns)
        conn_free(s->conns);
    while (s->exports)
        nbd_export_remove(s->exports);
    free(s);
}

/* ---- export lifecycle -------------------------------------------------------------- */

static void export_kick_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
    (void)revents;
    nbd_export_t *e = container_of(w, nbd_export_t, kick);
    nbd_conn_t *c, *next;

    ev_prepare_stop(loop, w);
    for (c = e->srv->conns; c; c = next) {
        next = c->next;
        if (c->exp == e && c->ph == NBD_PH_TRANS && conn_run(c) != RT_OK)
            conn_free(c);
    }
}

nbd_export_t *nbd_export_add(nbd_server_t *s, const nbd_export_conf_t *conf)
{
    nbd_export_t *e = NULL;
    struct stat st;
    size_t nl = conf->name ? strlen(conf->name) : 0;
    size_t dl = conf->description ? strlen(conf->description) : 0;

    if (nl == 0 || nl > NBD_NAME_MAX || dl > NBD_NAME_MAX) {
        rt_log(RT_LOG_ERR, "nbd: export name must be 1..%u bytes", NBD_NAME_MAX);
        return NULL;
    }
    if (export_lookup(s, (const uint8_t *)conf->name, nl)) {
        rt_log(RT_LOG_ERR, "nbd: export %s exists already", conf->name);
        return NULL;
    }
    e = calloc(1, sizeof(*e));
    if (!e) {
        rt_log(RT_LOG_ERR, "nbd: out of memory");
        return NULL;
    }
    e->srv = s;
    e->fd = -1;
    e->name = strdup(conf->name);
    e->desc = dl ? strdup(conf->description) : NULL;
    if (!e->name || (dl && !e->desc)) {
        rt_log(RT_LOG_ERR, "nbd: out of memory");
        goto fail;
    }
    e->name_len = nl;
    e->desc_len = dl;
    e->readonly = conf->readonly;
    e->hooks = conf->hooks;
    e->ctx = conf->ctx;
    if (conf->path) {
        e->fd = open(conf->path, (conf->readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC);
        if (e->fd < 0) {
            rt_log(RT_LOG_ERR, "nbd: export %s: cannot open %s: %s", conf->name, conf->path,
                   strerror(errno));
            goto fail;
        }
        e->own_fd = true;
    } else {
        e->fd = conf->fd;
    }
    if (fstat(e->fd, &st) < 0) {
        rt_log(RT_LOG_ERR, "nbd: export %s: fstat: %s", conf->name, strerror(errno));
        goto fail;
    }
    if (S_ISBLK(st.st_mode)) {
        uint64_t sz;
        if (ioctl(e->fd, BLKGETSIZE64, &sz) < 0) {
            rt_log(RT_LOG_ERR, "nbd: export %s: BLKGETSIZE64: %s", conf->name, strerror(errno));
            goto fail;
        }
        e->size = sz;
        e->is_blk = true;
    } else if (S_ISREG(st.st_mode)) {
        e->size = (uint64_t)st.st_size;
    } else {
        rt_log(RT_LOG_ERR, "nbd: export %s: not a file or block device", conf->name);
        goto fail;
    }
    ev_prepare_init(&e->kick, export_kick_cb);
    if (!s->exports) {
        s->exports = e;
    } else {
        nbd_export_t *t = s->exports;
        while (t->next)
            t = t->next;
        t->next = e;
    }
    return e;

fail:
    if (e->own_fd && e->fd >= 0)
        close(e->fd);
    free(e->name);
    free(e->desc);
    free(e);
    return NULL;
}

void nbd_export_remove(nbd_export_t *e)
{
    if (!e)
        return;
    nbd_server_t *s = e->srv;
    nbd_conn_t *c, *next;

    for (c = s->conns; c; c = next) {
        next = c->next;
        if (c->exp == e)
            conn_free(c);
    }
    ev_prepare_stop(s->loop, &e->kick);
    for (nbd_export_t **pp = &s->exports; *pp; pp = &(*pp)->next)
        if (*pp == e) {
            *pp = e->next;
            break;
        }
    if (e->own_fd)
        close(e->fd);
    free(e->name);
    free(e->desc);
    free(e);
}

nbd_export_t *nbd_export_find(nbd_server_t *s, const char *name)
{
    size_t nl = strlen(name);
    return nl ? export_lookup(s, (const uint8_t *)name, nl) : NULL;
}

void nbd_export_pause(nbd_export_t *e)
{
    e->paused = true;
}

void nbd_export_resume(nbd_export_t *e)
{
    if (!e->paused)
        return;
    e->paused = false;
    if (!ev_is_active(&e->kick))
        ev_prepare_start(e->srv->loop, &e->kick);
}

bool nbd_export_paused(const nbd_export_t *e)
{
    return e->paused;
}

uint64_t nbd_export_size(const nbd_export_t *e)
{
    return e->size;
}

const char *nbd_export_name(const nbd_export_t *e)
{
    return e->name;
}

int nbd_export_fd(const nbd_export_t *e)
{
    return e->fd;
}

void nbd_export_stats(const nbd_export_t *e, nbd_export_stats_t *out)
{
    *out = e->st;
}
