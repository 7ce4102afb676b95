/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * rt.h: the secondsite actor runtime, the manual.
 *
 * One process (a node) runs one libev loop. Roles are actors: each owns a
 * mailbox, handles one message at a time to completion, and talks to other
 * actors only by posting messages. Links to other nodes are mutual-TLS
 * connections carrying frames (an Envelope header + raw payload); a link
 * delivers each received frame to its owner actor as a message. Every chart
 * transition is appended to the node's trace file.
 *
 * Memory is bounded: messages come from a slot pool and payloads from a
 * byte-budgeted buffer pool, both sized from the node's configuration. A full
 * pool is back-pressure (RT_AGAIN), never an unbounded queue.
 *
 * Ownership: the caller owns what it allocates unless a function says it
 * takes ownership. A posted message belongs to the runtime; the handler sees
 * it as const and must not keep pointers into it after returning, except
 * buffers it takes a reference on with rt_buf_ref().
 */
#ifndef RT_H
#define RT_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ev.h>

/* ---- return codes ------------------------------------------------------ */

enum {
    RT_OK = 0,     /* done */
    RT_ERR = -1,   /* failed; the reason was logged or is in an error string */
    RT_AGAIN = -2, /* a pool or a queue is full: try again on RT_SIG_RESUME */
};

#define RT_PROTO_VERSION 1u         /* link protocol version sent in Hello */
#define RT_MSG_INLINE    1024u      /* inline bytes in one message slot */
#define RT_NAME_MAX      64u        /* node, actor and pair names, with NUL */
#define RT_MAX_PAYLOAD   (16u << 20) /* hard ceiling for one frame's payload */
#define RT_MAX_HEADER    4096u      /* hard ceiling for one encoded Envelope */

/* role bits, as carried in Hello.roles and configured in [node] roles */
enum {
    RT_ROLE_AGENT = 1u << 0,
    RT_ROLE_PS = 1u << 1,
    RT_ROLE_CS = 1u << 2,
    RT_ROLE_MT = 1u << 3,
};

typedef struct rt_node rt_node_t;
typedef struct rt_actor rt_actor_t;
typedef struct rt_msg rt_msg_t;
typedef struct rt_buf rt_buf_t;
typedef struct rt_timer rt_timer_t;
typedef struct rt_link rt_link_t;
typedef struct rt_conf rt_conf_t;
typedef struct rt_trace rt_trace_t;
typedef struct rt_tls rt_tls_t;

/* ---- logging (rt_log.c) -------------------------------------------------- */

typedef enum { RT_LOG_ERR = 0, RT_LOG_WARN, RT_LOG_INFO, RT_LOG_DEBUG } rt_log_level_t;

/*! rt_log_setup() : prefix every line with "PROG[NODE]" and drop lines above
 *  @level. Lines go to stderr, one per call, written with one write(2). */
void rt_log_setup(const char *prog, const char *node, rt_log_level_t level);
/*! rt_log() : one line "PROG[NODE]: level: message" on stderr. */
void rt_log(rt_log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/*! rt_log_level_parse() : "err|warn|info|debug" -> level. @return RT_ERR if unknown */
int rt_log_level_parse(const char *s, rt_log_level_t *out);

/*! rt_errf() : format a one-line reason into @err (nothing when @errlen is
 *  0), for the functions whose failures are values with a reason.
 *  @return RT_ERR, so that `return rt_errf(err, errlen, "...")` reads well. */
int rt_errf(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/*! rt_name_ok() : true if @s can name a node, a pair, a disk or a file: 1 to
 *  RT_NAME_MAX-1 characters of [A-Za-z0-9._-], not starting with '.' or '-'. */
bool rt_name_ok(const char *s);

/* ---- time (rt_time.c) ---------------------------------------------------- */

uint64_t rt_now_us(void);  /* wall clock (CLOCK_REALTIME), µs since the epoch */
uint64_t rt_mono_us(void); /* monotonic clock, µs */

/* ---- buffers (rt_pool.c) ------------------------------------------------- */

/* A reference-counted byte buffer from the node's budgeted pool. Sizes are
 * rounded up to a power of two (4 KiB minimum); freed buffers are kept on a
 * free list per size class and reused. */
struct rt_buf {
    uint32_t refs;    /* references; the buffer returns to the pool at 0 */
    uint32_t cap;     /* usable bytes in data[] */
    uint32_t len;     /* bytes in use, set by the producer */
    uint32_t cls;     /* size class, private to the pool */
    rt_node_t *node;  /* pool owner */
    rt_buf_t *next;   /* free-list link, private to the pool */
    uint8_t data[];   /* cap bytes */
};

/*! rt_buf_alloc() : a buffer of at least @cap bytes with refs = 1, len = 0.
 *  @return NULL when the node's buffer budget is exhausted (back-pressure:
 *  retry on RT_SIG_RESUME) or @cap exceeds RT_MAX_PAYLOAD + RT_MAX_HEADER. */
rt_buf_t *rt_buf_alloc(rt_node_t *node, size_t cap);
void rt_buf_ref(rt_buf_t *b);   /* take one more reference */
void rt_buf_unref(rt_buf_t *b); /* drop one reference; NULL is a no-op */
/*! rt_buf_stats() : bytes currently allocated and the budget, for status. */
void rt_buf_stats(const rt_node_t *node, size_t *used, size_t *budget);
/*! rt_buf_alloc_for() : rt_buf_alloc() on behalf of @requester, which gets
 *  RT_SIG_RESUME once the pool has room for @cap again. @return NULL as
 *  rt_buf_alloc(); a @cap that can never fit the budget gets no RESUME. */
rt_buf_t *rt_buf_alloc_for(rt_node_t *node, rt_actor_t *requester, size_t cap);
/*! rt_buf_trim() : free the buffers kept on the free lists (the node does it
 *  by itself when the pool was idle for a few seconds, to keep RSS small). */
void rt_buf_trim(rt_node_t *node);

/* ---- messages and actors (rt_actor.c) ------------------------------------ */

/* Runtime signals. Tags below RT_SIG_USER are the runtime's; a frame received
 * on a link is delivered with tag = the Envelope body's field number (10..),
 * which is why RT_SIG_USER is above every protobuf body tag. Who posts what: */
enum {
    RT_SIG_NONE = 0,
    RT_SIG_START = 1,     /* runtime, once, when the node starts running */
    RT_SIG_STOP = 2,      /* runtime, on SIGTERM/SIGINT: finish and call rt_actor_stopped() */
    RT_SIG_CRON = 3,      /* runtime, every cron period of the actor */
    RT_SIG_TIMER = 4,     /* rt_timer_t with the default tag */
    RT_SIG_RESUME = 5,    /* runtime, when a pool that refused this actor has room again */
    RT_SIG_LINK_UP = 6,   /* link, hello done; m->link, m->data = ss_Hello of the peer */
    RT_SIG_LINK_DOWN = 7, /* link, it left the up state; m->link */
    RT_SIG_LINK_WRITABLE = 8, /* link, its send queue fell below the low-water mark */
    /* 10..999: frames, tag = Envelope body field number; m->data = ss_Envelope */
    RT_SIG_USER = 1000,   /* first tag free for actor-to-actor messages */
};

/* A message. m->data holds up to RT_MSG_INLINE bytes (len of them valid);
 * bulk data rides in m->buf, which the message owns one reference on. */
struct rt_msg {
    rt_msg_t *next;       /* mailbox link, private to the runtime */
    rt_actor_t *from;     /* sender actor, or NULL for the runtime */
    rt_link_t *link;      /* the link a frame or link signal concerns, or NULL */
    rt_buf_t *buf;        /* payload, or NULL; released after the handler */
    uint64_t u64;         /* small argument (a sequence number, a timer id) */
    uint32_t tag;         /* signal: RT_SIG_*, frame body tag, or actor-defined */
    uint32_t len;         /* valid bytes in data[] */
    uint8_t flags;        /* private to the runtime */
    _Alignas(16) uint8_t data[RT_MSG_INLINE];
};

typedef void (*rt_dispatch_fn)(rt_actor_t *me, const rt_msg_t *m);

/* The runtime's part of an actor: embed it FIRST in the role's private struct
 * and recover the role with a cast (QP style). */
struct rt_actor {
    rt_node_t *node;        /* the node this actor runs on */
    char name[RT_NAME_MAX]; /* "agent", "link:secondary", ... (traces, logs) */
    rt_dispatch_fn dispatch;/* the handler, one call per message */
    rt_msg_t *head, *tail;  /* mailbox, FIFO */
    uint32_t queued;        /* messages in the mailbox */
    rt_actor_t *next_ready; /* run-queue link, private */
    rt_actor_t *next_all;   /* node's actor list, private */
    bool ready;             /* on the run queue, private */
    bool wants_resume;      /* a pool refused it; RT_SIG_RESUME pending, private */
    bool stopped;           /* rt_actor_stopped() was called */
    uint8_t waits;          /* which pools refused it, RESUME pending (bits), private */
    ev_timer cron;          /* the periodic RT_SIG_CRON, private */
    rt_msg_t *cron_msg;     /* preallocated cron message, private */
};

/*! rt_actor_init() : register @me on @node with @name and @dispatch. The actor
 *  receives RT_SIG_START when the node runs (or at once if it already runs).
 *  @return RT_ERR if the message pool cannot hold its preallocated slots. */
int rt_actor_init(rt_actor_t *me, rt_node_t *node, const char *name, rt_dispatch_fn dispatch);
/*! rt_actor_fini() : stop its cron, drop its queued messages, unregister. */
void rt_actor_fini(rt_actor_t *me);
/*! rt_actor_cron() : deliver RT_SIG_CRON every @period_s seconds (0 stops). */
void rt_actor_cron(rt_actor_t *me, double period_s);
/*! rt_actor_stopped() : tell the runtime @me finished its RT_SIG_STOP work;
 *  the node exits its loop once every actor has said so (or on a deadline). */
void rt_actor_stopped(rt_actor_t *me);

/*! rt_msg_new() : a message slot with @tag, len 0, no buf, for the caller to
 *  fill and hand to rt_msg_post(). @return NULL when the slot pool is full
 *  (back-pressure; @requester, if not NULL, gets RT_SIG_RESUME later). */
rt_msg_t *rt_msg_new(rt_node_t *node, rt_actor_t *requester, uint32_t tag);
/*! rt_msg_post() : queue @m to @to. Takes ownership of @m (and its buf). */
void rt_msg_post(rt_actor_t *to, rt_msg_t *m);
/*! rt_msg_free() : return an unposted message (and its buf) to the pool. */
void rt_msg_free(rt_msg_t *m);
/*! rt_post() : copy @len bytes of @data into a new message and post it.
 *  Takes ownership of @buf (may be NULL) only on RT_OK.
 *  @return RT_OK, RT_AGAIN when the pool is full (@from gets RT_SIG_RESUME),
 *  RT_ERR when @len > RT_MSG_INLINE. */
int rt_post(rt_actor_t *to, rt_actor_t *from, uint32_t tag, const void *data, size_t len,
            rt_buf_t *buf);

/* ---- timers (rt_timer.c) -------------------------------------------------- */

/* A one-shot or repeating timer that posts a preallocated message to its
 * owner (never more than one pending at a time, so it never fails). */
struct rt_timer {
    ev_timer w;         /* embedded libev watcher, private */
    rt_actor_t *owner;  /* receives the message */
    uint32_t tag;       /* RT_SIG_TIMER or an actor-defined tag */
    uint64_t id;        /* copied to m->u64, to tell timers apart */
    rt_msg_t *msg;      /* preallocated, private */
    bool pending;       /* msg is in the mailbox, private */
};

/*! rt_timer_init() : bind @t to @owner. @return RT_ERR if no slot is free. */
int rt_timer_init(rt_timer_t *t, rt_actor_t *owner, uint32_t tag, uint64_t id);
void rt_timer_start(rt_timer_t *t, double after_s, double repeat_s);
void rt_timer_stop(rt_timer_t *t);
bool rt_timer_active(const rt_timer_t *t);
void rt_timer_fini(rt_timer_t *t); /* stop and release the slot */

/* ---- workers (rt_work.c) ---------------------------------------------------- */

/* CPU-heavy work (compression, checksums) runs on a small pool of threads
 * beside the loop: [node] workers of them (default rt_work_default_workers():
 * online CPUs - 1, at least 1; 0 runs every job inline, on the loop, at
 * submit). A job is fn(arg) on a worker thread; once it returned, its owner
 * gets an ordinary message: tag = done_tag, m->u64 = the submit's u64,
 * rt_work_arg(m) = arg. Completions arrive in the order jobs finish, which
 * with two workers or more is not the order of submission: an owner that
 * needs order re-orders (by a sequence number in u64, say).
 *
 * The rule that keeps the rest of the runtime single-threaded: from submit
 * until its completion is handled, the job owns @arg and what it points to,
 * and the owner neither reads nor writes it; the job touches no actor,
 * message, buffer reference count, timer, link, trace or log, only bytes
 * (an rt_buf's data[] is fine: the owner keeps the reference and drops it
 * after the completion). The completion's message slot is taken at submit,
 * so a job that ran is always reported.
 *
 * Shutdown: rt_actor_fini(owner) cancels the owner's queued jobs, waits for
 * its running ones to return (so that freeing what their args point to is
 * safe right after) and drops their completions: the owner frees the args
 * of jobs it never saw complete. An owner that wants its jobs finished on
 * RT_SIG_STOP calls rt_actor_stopped() once its completions are in.
 * rt_node_free() joins the threads. */

#define RT_WORK_QUEUE       64u /* jobs per node queued, running, or done and not yet posted */
#define RT_WORK_MAX_THREADS 64u /* largest [node] workers */

typedef void (*rt_work_fn)(void *arg);

/*! rt_work_submit() : run @fn(@arg) on a worker of @owner's node and post
 *  @done_tag (an actor tag, >= RT_SIG_USER) with m->u64 = @u64 to @owner
 *  when it returned. @return RT_OK, RT_AGAIN when the job slots or the
 *  message pool are full (@owner gets RT_SIG_RESUME), RT_ERR for a NULL
 *  @fn, a runtime tag or an owner that is not registered. */
int rt_work_submit(rt_actor_t *owner, rt_work_fn fn, void *arg, uint32_t done_tag, uint64_t u64);
/*! rt_work_arg() : the arg of the job whose completion @m is (NULL if @m is
 *  not one). */
void *rt_work_arg(const rt_msg_t *m);
/*! rt_work_inflight() : jobs of @owner submitted whose completion is not
 *  yet in its mailbox. */
unsigned rt_work_inflight(const rt_actor_t *owner);
/*! rt_work_workers() : the node's worker threads (0: jobs run inline). */
unsigned rt_work_workers(const rt_node_t *node);
/*! rt_work_set_workers() : use @n threads instead of [node] workers (tests,
 *  tools). @return RT_ERR once the first job started the pool, or when @n >
 *  RT_WORK_MAX_THREADS. */
int rt_work_set_workers(rt_node_t *node, unsigned n);
/*! rt_work_default_workers() : online CPUs - 1, at least 1 (at most
 *  RT_WORK_MAX_THREADS): the default of [node] workers. */
unsigned rt_work_default_workers(void);

/* ---- trace (rt_trace.c) --------------------------------------------------- */

/* One record of a chart transition; strings are copied and truncated to the
 * sizes of proto/trace.options. NULL strings are empty. */
typedef struct rt_trace_rec {
    const char *actor, *machine, *from, *event, *to, *detail;
    const char *peer, *pair;  /* optional */
    int64_t clock_offset_us;  /* optional, with peer */
    bool refused;
} rt_trace_rec_t;

/*! rt_trace_open() : append to @path (created 0640), rotating to @path.1 ..
 *  @path.@keep when it passes @max_bytes. @return NULL and logs on failure. */
rt_trace_t *rt_trace_open(const char *path, const char *node, uint64_t max_bytes, int keep);
void rt_trace_close(rt_trace_t *t);
/*! rt_trace_emit() : append one TraceEvent (time now, next seq). Never blocks
 *  on a full disk: a failed write is counted and logged once per minute. */
void rt_trace_emit(rt_trace_t *t, const rt_trace_rec_t *r);
/*! rt_node_trace() : the node's trace (NULL if none): charts emit through it. */
rt_trace_t *rt_node_trace(rt_node_t *node);

/* ---- charts (runtime side of the fsm/ charts) ----------------------------- */

/* The common state of every chart instance. Each chart's generated file
 * defines NAME_init(), NAME_exec(), NAME_state_name(), NAME_event_name(). */
typedef struct rt_chart {
    int cs;                  /* Ragel current state */
    const char *machine;     /* "link", "pair", ... */
    rt_actor_t *actor;       /* whose transitions these are (trace, logs) */
    const char *detail;      /* set by the caller before exec, traced */
    const char *peer, *pair; /* optional trace context */
} rt_chart_t;

/*! rt_chart_trace() : trace one transition (or a refusal, @to == NULL) and log
 *  a refusal on one line. Called by the generated exec functions. */
void rt_chart_trace(const rt_chart_t *c, const char *from, const char *event, const char *to);

/* ---- configuration (rt_conf.c) -------------------------------------------- */

/*! rt_conf_load() : read and validate an INI file against the schema of every
 *  known section and key. Errors: one line "FILE:LINE: [SECTION] KEY: what is
 *  wrong" in @err. @return NULL on error. */
rt_conf_t *rt_conf_load(const char *path, char *err, size_t errlen);
void rt_conf_free(rt_conf_t *c);
/*! lookups: @section is the full section name ("node", "peer secondary").
 *  They return the schema's default when the key is absent (NULL or 0 when
 *  it has none). rt_conf_u64 of a size key gives bytes, of a roles key the
 *  RT_ROLE_* bits, of log_level its rt_log_level_t. The schema (sections,
 *  keys, types, defaults, bounds) is the table at the top of rt_conf.c. */
const char *rt_conf_str(const rt_conf_t *c, const char *section, const char *key);
uint64_t rt_conf_u64(const rt_conf_t *c, const char *section, const char *key);
double rt_conf_double(const rt_conf_t *c, const char *section, const char *key);
bool rt_conf_bool(const rt_conf_t *c, const char *section, const char *key);
/*! rt_conf_path() : a path value resolved against the config file's folder. */
const char *rt_conf_path(const rt_conf_t *c, const char *section, const char *key, char *out,
                         size_t outlen);
/*! rt_conf_role_dir() : a role's data folder: [@role] dir when set, else
 *  [node] data_dir/@role, resolved like rt_conf_path(). @return @out, or NULL
 *  when it does not fit in @outlen. */
const char *rt_conf_role_dir(const rt_conf_t *c, const char *role, char *out, size_t outlen);
/*! rt_conf_each() : call @fn for every section whose type is @type ("peer",
 *  "disk", ...), with the section's full name and its NAME part. */
void rt_conf_each(const rt_conf_t *c, const char *type,
                  void (*fn)(void *arg, const char *section, const char *name), void *arg);
/*! rt_conf_file() : the path it was loaded from. */
const char *rt_conf_file(const rt_conf_t *c);
/*! rt_parse_size() : "64M", "1G", "4096" -> bytes. @return RT_ERR if bad. */
int rt_parse_size(const char *s, uint64_t *out);
/*! rt_parse_addr() : "127.0.0.1:7400" -> numeric IPv4/IPv6 address and port,
 *  no name lookup (static builds have no NSS). @return RT_ERR if bad. */
struct sockaddr_storage;
int rt_parse_addr(const char *s, struct sockaddr_storage *out, unsigned *addrlen);

/* ---- TLS (rt_tls.c: wolfSSL sessions; rt_cert.c: certificate making) ---- */

/*! rt_tls_ctx_new() : a TLS 1.3-only context with mutual authentication:
 *  @ca verifies the peer, @cert/@key identify us. @server chooses the role.
 *  @return NULL with a one-line reason in @err. */
rt_tls_t *rt_tls_ctx_new(const char *ca, const char *cert, const char *key, bool server,
                         char *err, size_t errlen);
void rt_tls_ctx_free(rt_tls_t *t);

/* One TLS session on a connected non-blocking socket (the link's transport).
 * Every call returns at once: RT_AGAIN means "call again when the socket is
 * readable, or writable if rt_tls_want_write() says so". Reasons for RT_ERR
 * are one line in @err, written for the operator ("peer certificate is not
 * signed by the site CA", "peer does not speak TLS 1.3", ...). */
typedef struct rt_tls_conn rt_tls_conn_t;
/*! rt_tls_conn_new() : a session over @fd (not owned: the caller closes it)
 *  with the role of @t. @return NULL with a reason in @err. */
rt_tls_conn_t *rt_tls_conn_new(rt_tls_t *t, int fd, char *err, size_t errlen);
void rt_tls_conn_free(rt_tls_conn_t *c); /* NULL is a no-op; sends nothing */
/*! rt_tls_handshake() : advance the handshake. @return RT_OK when done (the
 *  peer's certificate chains to the site CA), RT_AGAIN, or RT_ERR. */
int rt_tls_handshake(rt_tls_conn_t *c, char *err, size_t errlen);
/*! rt_tls_want_write() : after RT_AGAIN, true if the session waits for the
 *  socket to be writable rather than readable. */
bool rt_tls_want_write(const rt_tls_conn_t *c);
/*! rt_tls_peer_cn() : the CN of the peer's verified certificate ("" before
 *  the handshake is done). */
const char *rt_tls_peer_cn(const rt_tls_conn_t *c);
/*! rt_tls_peer_admin() : true if the peer's verified certificate has
 *  OU=RT_CERT_OU_ADMIN (false before the handshake is done). */
bool rt_tls_peer_admin(const rt_tls_conn_t *c);
/*! rt_tls_cipher() : wolfSSL's name of the negotiated suite, e.g.
 *  "TLS13-AES128-GCM-SHA256" ("" before the handshake is done). The server's
 *  order decides: AES-GCM first when the linked wolfSSL has hardware AES on
 *  this CPU, else ChaCha20-Poly1305 first; SS_TLS_PREFER=aes-gcm|chacha20 in
 *  the environment overrides that when a context is made (benchmarks). */
const char *rt_tls_cipher(const rt_tls_conn_t *c);
/*! rt_tls_read() : up to @len decrypted bytes into @buf. @return RT_OK with
 *  *@got > 0, RT_AGAIN, or RT_ERR (peer closed, alert, broken record). */
int rt_tls_read(rt_tls_conn_t *c, void *buf, size_t len, size_t *got, char *err, size_t errlen);
/*! rt_tls_pending() : decrypted bytes are buffered inside the session, so
 *  the socket will not signal them: read again without waiting. */
bool rt_tls_pending(const rt_tls_conn_t *c);
/*! rt_tls_write() : send @len bytes (partial writes allowed: *@put says how
 *  many were taken). After RT_AGAIN, call again with the same bytes.
 *  @return RT_OK with *@put > 0, RT_AGAIN, or RT_ERR. */
int rt_tls_write(rt_tls_conn_t *c, const void *buf, size_t len, size_t *put, char *err,
                 size_t errlen);
/*! rt_tls_shutdown() : send close_notify if the socket takes it now; never
 *  waits for the peer's. */
void rt_tls_shutdown(rt_tls_conn_t *c);

/* ---- links (rt_link.c, rt_frame.c; chart fsm/link.rl) --------------------- */

typedef struct rt_link_conf {
    const char *peer_name;   /* expected peer CN; NULL accepts any CN of the site CA */
    double hb_interval_s;    /* heartbeat period (default 1 s) */
    double hb_timeout_s;     /* no frame for this long: the link is down (default 5 s) */
    double backoff_min_s;    /* first reconnect delay (default 0.1 s) */
    double backoff_max_s;    /* reconnect delay ceiling (default 5 s) */
    size_t sndq_high;        /* bytes queued before rt_link_send says RT_AGAIN */
    uint32_t max_payload;    /* largest payload accepted (<= RT_MAX_PAYLOAD) */
} rt_link_conf_t;

/*! rt_link_connect() : an outbound link to @addr, owned by @owner, that
 *  reconnects by itself with exponential backoff and jitter. */
rt_link_t *rt_link_connect(rt_node_t *node, rt_actor_t *owner, rt_tls_t *tls, const char *addr,
                           const rt_link_conf_t *lc);
/*! rt_listener_new() : accept links on @addr; each accepted link is owned by
 *  @owner (which sees RT_SIG_LINK_UP once the hello is done). */
typedef struct rt_listener rt_listener_t;
rt_listener_t *rt_listener_new(rt_node_t *node, rt_actor_t *owner, rt_tls_t *tls,
                               const char *addr, const rt_link_conf_t *lc);
void rt_listener_free(rt_listener_t *l);
/*! rt_link_send() : queue one frame: @env (an ss_Envelope, whose payload_len
 *  is set from @payload_len) and @payload_len bytes of @payload, taking one
 *  reference on @payload (may be NULL). @return RT_OK, RT_AGAIN when the
 *  send queue is above its high-water mark (wait for RT_SIG_LINK_WRITABLE),
 *  RT_ERR when the link is not up. */
struct _ss_Envelope;
int rt_link_send(rt_link_t *l, const struct _ss_Envelope *env, rt_buf_t *payload,
                 uint32_t payload_len);
/*! rt_link_close() : close for good (chart -> closed) and free at the next turn. */
void rt_link_close(rt_link_t *l);
const char *rt_link_peer(const rt_link_t *l);      /* peer node name, or "" */
/*! rt_link_peer_admin() : true if the peer showed an admin certificate
 *  (OU=admin) in its last TLS handshake; false for plain TCP. The management
 *  endpoint allows changes only to such peers. */
bool rt_link_peer_admin(const rt_link_t *l);
const char *rt_link_state(const rt_link_t *l);     /* chart state name */
int64_t rt_link_clock_offset_us(const rt_link_t *l);
bool rt_link_is_up(const rt_link_t *l);
void *rt_link_user(const rt_link_t *l);            /* owner's per-link pointer */
void rt_link_set_user(rt_link_t *l, void *user);
/* More of the link (rt_link.c). rt_link_connect() and rt_listener_new()
 * return NULL (and log) when the address is not numeric IP:PORT or the
 * socket cannot be made/bound. Link signals to the owner: RT_SIG_LINK_UP
 * (m->data = the peer's ss_Hello), RT_SIG_LINK_DOWN (m->data = the reason, a
 * NUL-terminated string) and RT_SIG_LINK_WRITABLE come from the runtime's
 * reserve, so they are never lost to a full pool. A link is an actor itself
 * ("link:NAME", or "link:in:ADDR" when accepted): it gets RT_SIG_RESUME when
 * a pool that refused a received frame has room, and stops by itself on
 * RT_SIG_STOP (Goodbye, close). Memory: a closed link is freed only once no
 * message naming it (m->link) is left in any mailbox, so a handler may use
 * m->link (rt_link_send then says RT_ERR if it is down); an actor that keeps
 * a link pointer must drop it on RT_SIG_LINK_DOWN. */
/*! rt_link_route_fn : the actor that gets the frame whose header is @env
 *  (body tag env->which_body, env->to_role) received on @l; NULL means the
 *  link's owner. Runs on every frame: keep it cheap. */
typedef rt_actor_t *(*rt_link_route_fn)(void *arg, rt_link_t *l, const struct _ss_Envelope *env);
void rt_link_set_route(rt_link_t *l, rt_link_route_fn fn, void *arg);
/*! rt_listener_set_route() : the route of every link @ls accepts from now on. */
void rt_listener_set_route(rt_listener_t *ls, rt_link_route_fn fn, void *arg);
/*! rt_link_watch() : @a gets RT_SIG_LINK_UP/DOWN/WRITABLE of @l too (the
 *  owner always does). @return RT_ERR if RT_LINK_WATCHERS already watch. */
#define RT_LINK_WATCHERS 8
int rt_link_watch(rt_link_t *l, rt_actor_t *a);
/*! rt_listener_watch() : the same for every link @ls accepts from now on. */
int rt_listener_watch(rt_listener_t *ls, rt_actor_t *a);
/*! rt_listener_next() : the links @ls accepted and still holds (up or not),
 *  after @prev (NULL: the first); NULL at the end. */
rt_link_t *rt_listener_next(const rt_listener_t *ls, const rt_link_t *prev);
/*! rt_link_peer_roles() : the RT_ROLE_* bits the peer's Hello announced (0
 *  before the Hello). */
uint32_t rt_link_peer_roles(const rt_link_t *l);
/*! rt_link_addr() : the peer's "IP:PORT" (outbound: the configured address). */
const char *rt_link_addr(const rt_link_t *l);
/*! rt_link_free() : close and free at once, for teardown after the loop has
 *  stopped (inside the loop use rt_link_close). NULL is a no-op. */
void rt_link_free(rt_link_t *l);
/* (rt_listener_free() frees, the same way, every link it accepted.) */

/* ---- frames: encode/decode (rt_frame.c) ----------------------------------- */

/* A frame is varint(len(Envelope)) | Envelope (nanopb, proto/link.proto) |
 * Envelope.payload_len raw bytes. The decoder is sans-IO: it looks at the
 * bytes it is given and says "need more", "here is a frame" or "bad, because".
 * The link uses it on its receive buffer, the fuzzer on anything. */

#define RT_FRAME_PREFIX_MAX 5u  /* bytes of the length varint, at most (32 bits) */
#define RT_FRAME_HDR_MAX    (RT_FRAME_PREFIX_MAX + RT_MAX_HEADER) /* prefix + Envelope */

/* What the decoder found. */
typedef struct rt_frame {
    size_t hdr_len;        /* RT_OK: prefix + Envelope bytes; the payload starts there */
    uint32_t payload_len;  /* RT_OK: raw payload bytes after the header */
    size_t need;           /* RT_AGAIN: bytes needed in all, as far as known (> given) */
    char why[96];          /* RT_ERR: what is wrong, one line */
} rt_frame_t;

/*! rt_frame_decode_header() : decode the frame header at the start of @p
 *  (@len bytes) into @env, accepting payloads up to @max_payload (clamped to
 *  RT_MAX_PAYLOAD). The payload need not be there yet.
 *  @return RT_OK (@env and fr->hdr_len, fr->payload_len set), RT_AGAIN
 *  (the header is incomplete; fr->need), or RT_ERR (fr->why: bad length
 *  prefix, oversize header > RT_MAX_HEADER, undecodable header, no body or an
 *  unknown body tag, oversize payload). Never reads past @len. */
int rt_frame_decode_header(const uint8_t *p, size_t len, uint32_t max_payload,
                           struct _ss_Envelope *env, rt_frame_t *fr);
/*! rt_frame_decode() : rt_frame_decode_header(), and RT_AGAIN (fr->need)
 *  until the whole payload is in @p too: on RT_OK the payload is
 *  p[fr->hdr_len .. fr->hdr_len + fr->payload_len). */
int rt_frame_decode(const uint8_t *p, size_t len, uint32_t max_payload,
                    struct _ss_Envelope *env, rt_frame_t *fr);
/*! rt_frame_encode_header() : write varint + @env, with its payload_len
 *  replaced by @payload_len, to @out (@cap bytes; RT_FRAME_HDR_MAX always
 *  suffices). @return RT_OK with *@outlen set, or RT_ERR if @env has no
 *  body, encodes to more than RT_MAX_HEADER bytes or @cap is too small. */
int rt_frame_encode_header(const struct _ss_Envelope *env, uint32_t payload_len, uint8_t *out,
                           size_t cap, size_t *outlen);

/* ---- node (rt_node.c) ----------------------------------------------------- */

/*! rt_node_new() : a node named @name with the budgets of @conf ([node]
 *  memory, msg_slots; [trace] file, max, keep). Installs SIGTERM/SIGINT
 *  handlers that post RT_SIG_STOP to every actor. @return NULL and logs. */
rt_node_t *rt_node_new(const char *name, const rt_conf_t *conf);
void rt_node_free(rt_node_t *node);
struct ev_loop *rt_node_loop(rt_node_t *node);
const char *rt_node_name(const rt_node_t *node);
const rt_conf_t *rt_node_conf(const rt_node_t *node);
/*! rt_node_run() : post RT_SIG_START to every actor and run the loop until
 *  every actor has stopped. @return RT_OK, or RT_ERR if the stop deadline
 *  (10 s) passed first. */
int rt_node_run(rt_node_t *node);
/*! rt_node_stop() : post RT_SIG_STOP to every actor (what SIGTERM does). */
void rt_node_stop(rt_node_t *node);
/*! rt_node_new_on() : rt_node_new() on the caller's @loop (not owned, not
 *  destroyed by rt_node_free), e.g. two nodes in one test process. Only the
 *  first live node of a process installs the SIGTERM/SIGINT watchers. A
 *  NULL @conf gives the defaults: 64M buffers, 4096 slots, no trace. */
rt_node_t *rt_node_new_on(const char *name, const rt_conf_t *conf, struct ev_loop *loop);
/*! rt_node_run_all() : run @n nodes that share one loop (rt_node_new_on)
 *  until every one has stopped; SIGTERM/SIGINT stop them all. This is
 *  `noded --demo`: two appliances in one process, linked over loopback.
 *  @return RT_ERR if any node's stop deadline passed. */
int rt_node_run_all(rt_node_t **nodes, unsigned n);
/*! rt_node_set_trace() : (re)open the node's trace at @path, or close it when
 *  @path is NULL. @return RT_ERR (logged) if the file cannot be opened. */
int rt_node_set_trace(rt_node_t *node, const char *path, uint64_t max_bytes, int keep);
/*! rt_node_set_stop_deadline() : seconds from RT_SIG_STOP to giving up
 *  (default 10), for tests. */
void rt_node_set_stop_deadline(rt_node_t *node, double seconds);

/* ---- certificates (rt_cert.c; wolfSSL certificate generation) ------------- */

/* The site's certificates, made with wolfSSL's certificate generation (no
 * openssl command at run time). Every key is ECC P-256, every certificate is
 * signed with ECDSA/SHA-256, all files are PEM. A CA folder holds ca.crt and
 * ca.key; the files of a node NAME are NAME.crt and NAME.key. Keys are written
 * 0600 and certificates 0644, each through a temporary file (O_EXCL) that is
 * fsync'd and then linked into place (renamed with RT_CERT_FORCE), so a crash
 * never leaves a half-written file and an existing file is never clobbered by
 * accident. The subject of a node certificate is CN=NAME, OU=node; of an admin
 * certificate CN=NAME, OU=admin (the management endpoint requires that OU). */

#define RT_CERT_CA_DAYS   3650u   /* site CA validity, days */
#define RT_CERT_NODE_DAYS 1095u   /* default node/admin certificate validity */
#define RT_CERT_MAX_DAYS  36500u  /* largest validity accepted */
#define RT_CERT_OU_NODE   "node"  /* OU of a node certificate */
#define RT_CERT_OU_ADMIN  "admin" /* OU of an admin certificate */

enum {
    RT_CERT_ADMIN = 1u << 0, /* rt_cert_issue(): an admin certificate (OU=admin) */
    RT_CERT_FORCE = 1u << 1, /* replace existing files instead of refusing */
};

/* What rt_cert_info() reads from a certificate. */
typedef struct rt_cert_info {
    char cn[RT_NAME_MAX];        /* subject CN, "" if none */
    char ou[RT_NAME_MAX];        /* subject OU, "" if none */
    char issuer_cn[RT_NAME_MAX]; /* issuer CN, "" if none */
    char serial[41];             /* serial number, lowercase hex */
    int64_t not_before;          /* validity start, seconds since the epoch (UTC) */
    int64_t not_after;           /* validity end, seconds since the epoch (UTC) */
    bool is_ca;                  /* basicConstraints CA:TRUE */
    bool admin;                  /* ou is RT_CERT_OU_ADMIN */
} rt_cert_info_t;

/*! rt_cert_name_ok() : true if @name can be a node name, a certificate CN and
 *  a file name: 1..RT_NAME_MAX-1 characters of [A-Za-z0-9._-], not starting
 *  with '.' or '-', and not "ca" (reserved for the CA's own files). */
bool rt_cert_name_ok(const char *name);
/*! rt_cert_ca_create() : create the site CA in @dir (made 0700 if missing):
 *  a new P-256 key @dir/ca.key and a self-signed certificate @dir/ca.crt with
 *  CN "@site CA" (@site NULL: "secondsite"), CA:TRUE pathlen 0, keyCertSign +
 *  cRLSign, a random serial, valid RT_CERT_CA_DAYS days.
 *  @return RT_OK, or RT_ERR with a one-line reason in @err, in particular when
 *  either file exists and @flags lacks RT_CERT_FORCE (nothing is written). */
int rt_cert_ca_create(const char *dir, const char *site, unsigned flags, char *err,
                      size_t errlen);
/*! rt_cert_issue() : issue @out_dir/@name.crt and @out_dir/@name.key (the
 *  folder made 0700 if missing; @out_dir NULL means @ca_dir), signed by the CA
 *  in @ca_dir: a new P-256 key, CN=@name, OU=node (OU=admin with
 *  RT_CERT_ADMIN), CA:FALSE, digitalSignature, extended key usage serverAuth +
 *  clientAuth, valid @days days (0: RT_CERT_NODE_DAYS). The new certificate is
 *  verified against ca.crt before it is written.
 *  @return RT_OK, or RT_ERR with a one-line reason in @err (bad name or days,
 *  unreadable or mismatched CA, files exist without RT_CERT_FORCE, I/O). */
int rt_cert_issue(const char *ca_dir, const char *out_dir, const char *name, unsigned days,
                  unsigned flags, char *err, size_t errlen);
/*! rt_cert_info() : read the PEM certificate at @path into @out.
 *  @return RT_OK, or RT_ERR with a one-line reason in @err. */
int rt_cert_info(const char *path, rt_cert_info_t *out, char *err, size_t errlen);
/*! rt_cert_verify() : check that the PEM certificate @cert_path was issued by
 *  the CA certificate @ca_path and is inside its validity period.
 *  @return RT_OK, or RT_ERR with a one-line reason in @err. */
int rt_cert_verify(const char *ca_path, const char *cert_path, char *err, size_t errlen);

#endif /* RT_H */
