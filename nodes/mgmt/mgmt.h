/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * mgmt.h: the management endpoint of a node, the actor nodectl talks to.
 *
 * The endpoint listens on [listen] mgmt with mutual TLS 1.3 (the site CA, as
 * every link). A request (ss_MgmtRequest: a command name and its arguments)
 * is answered by one ss_MgmtResponse whose code follows nodectl's exit codes
 * and whose payload is one JSON document, what `nodectl --json` prints.
 * Any certificate of the site may run read-only commands; commands
 * registered with MGMT_ADMIN need an admin certificate (OU=admin).
 *
 * The endpoint is a framework: commands are rows of a registry, and roles
 * (agent, ps, mt, cs) plug in with mgmt_register() for their own commands
 * and mgmt_register_status() to contribute to "status": each status
 * provider fills the pairs it knows (mgmt_status_pair(), merged by pair id
 * across roles) and writes a section of its own. Built in: "ping",
 * "status", "pairs", "pair-show ID", "trace-list", "trace-get NAME OFFSET
 * [LENGTH]". docs/MGMT.md documents every command and document shape.
 *
 * Providers and command handlers run on the node's loop inside the mgmt
 * actor's turn, so they read their role's state between that role's
 * messages (a consistent snapshot); they must not block, must not keep the
 * pointers they are given, and must not change their role's state from a
 * read-only command.
 */
#ifndef MGMT_H
#define MGMT_H

#include "mgmt.pb.h"
#include "rt.h"
#include "rt_json.h"

#ifndef SS_VERSION
#define SS_VERSION "0.1.0" /* product version reported by ping and status */
#endif

#define MGMT_CMDS_MAX    64u          /* registered commands, built-ins included */
#define MGMT_STATUS_MAX  16u          /* status providers */
#define MGMT_PAIRS_MAX   256u         /* pairs in one status document */
#define MGMT_DOC_MAX     (2u << 20)   /* largest response document */
#define MGMT_SECTION_MAX (256u << 10) /* largest section of one status provider */
#define MGMT_CHUNK       (1u << 20)   /* trace-get: most bytes of a file per response */
#define MGMT_TRACE_FILES 101u         /* trace-list: the file and up to 100 rotated ones */

/* Response codes (ss_MgmtResponse.code), the same as nodectl's exit codes. */
enum {
    MGMT_OK = 0,    /* done; the payload is the document */
    MGMT_FAIL = 1,  /* the operation failed; error says why */
    MGMT_USAGE = 2, /* bad command or arguments; error says what is wrong */
};

/* mgmt_register() flags */
enum {
    MGMT_ADMIN = 1u << 0, /* only for peers with an admin certificate */
};

typedef struct mgmt mgmt_t;

/* ---- pairs, as status shows them ------------------------------------------- */

#define MGMT_UNKNOWN UINT64_MAX /* a number nobody filled in: null in JSON */

/* One protection pair in status. mgmt_status_pair() hands out an entry with
 * every number MGMT_UNKNOWN, every string "", sync_progress NaN and drained
 * -1; each role fills what it knows and leaves the rest. When several
 * providers set a field, the last one registered wins. */
typedef struct mgmt_pair {
    char id[RT_NAME_MAX];       /* pair id (set by mgmt_status_pair) */
    char disk[RT_NAME_MAX];     /* protected disk (export) name */
    char group[RT_NAME_MAX];    /* consistency group */
    char state[32];             /* pair chart state: initial_sync, protected, ... */
    char link[32];              /* state of the link that carries the pair: up, backoff, ... */
    uint64_t source_seq;        /* last write acked to the NBD client (agent) */
    uint64_t ps_durable_seq;    /* last write durable in the process server's cache */
    uint64_t mt_durable_seq;    /* last write durable in the master target's journal */
    uint64_t rpo_lag_ms;        /* age of the oldest write not yet durable at the mt */
    uint64_t backlog_bytes;     /* bytes acked at the agent, not yet durable at the mt */
    uint64_t cache_bytes;       /* process server cache in use for the pair */
    uint64_t cache_quota;       /* its quota */
    uint64_t bitmap_dirty_bytes;/* bytes marked dirty in the resync bitmap */
    double sync_progress;       /* initial sync / resync, 0..1; NaN unknown */
    int8_t drained;             /* 1 yes, 0 no, -1 unknown: then it is derived */
} mgmt_pair_t;

/* The status being collected, handed to each provider. */
typedef struct mgmt_status mgmt_status_t;

/*! mgmt_status_pair() : the entry of pair @id in @st, made (everything
 *  unknown) if it is not there yet. @return NULL if @id is empty or too long,
 *  or MGMT_PAIRS_MAX pairs are there already (status then says truncated). */
mgmt_pair_t *mgmt_status_pair(mgmt_status_t *st, const char *id);

/* ---- providers -------------------------------------------------------------- */

/*! mgmt_cmd_fn : run command @req for the caller. Write the response document
 *  as one JSON value into @out (an empty @out on MGMT_OK becomes {}). On
 *  failure put one line in @err (what failed and what to do).
 *  @return MGMT_OK, MGMT_FAIL or MGMT_USAGE. */
typedef int (*mgmt_cmd_fn)(void *ctx, const ss_MgmtRequest *req, rt_json_t *out, char *err,
                           size_t errlen);

/*! mgmt_status_fn : fill the pairs the role knows with mgmt_status_pair(),
 *  and write its own fields (key/value members) into @out, an open object
 *  that becomes "sections": {NAME: {...}} of the status document.
 *  @return MGMT_OK, or MGMT_FAIL with @err (the section then holds only
 *  {"error": @err}; the pairs it filled stay). */
typedef int (*mgmt_status_fn)(void *ctx, mgmt_status_t *st, rt_json_t *out, char *err,
                              size_t errlen);

/*! mgmt_register() : add command @name (at most 31 characters, what nodectl
 *  sends as MgmtRequest.cmd) run by @fn with @ctx; @flags MGMT_ADMIN for a
 *  command that changes anything. @return RT_ERR if @name is taken, bad, or
 *  the table is full. */
int mgmt_register(mgmt_t *me, const char *name, mgmt_cmd_fn fn, void *ctx, unsigned flags);
/*! mgmt_register_status() : add a status provider whose section is @name
 *  ("agent", "ps", ...). @return RT_ERR if @name is taken or the table is full. */
int mgmt_register_status(mgmt_t *me, const char *name, mgmt_status_fn fn, void *ctx);
/*! mgmt_unregister() : remove every command and provider registered with
 *  @ctx (a role going away). */
void mgmt_unregister(mgmt_t *me, void *ctx);

/*! mgmt_use_hub() : list the node's links in status: one entry per
 *  [peer NAME] of the config, with its state from @hub (up, or down). */
struct hub;
void mgmt_use_hub(mgmt_t *me, struct hub *hub);

/* ---- lifecycle -------------------------------------------------------------- */

/*! mgmt_new() : the management actor of @node, listening on [listen] mgmt of
 *  @conf with [tls] ca, cert and key and the [link] settings; trace-list
 *  serves [trace] file and its rotated siblings. @conf must outlive it.
 *  @return NULL with a one-line reason in @err (no [listen] mgmt, missing or
 *  unreadable certificates, address in use, no message slot). */
mgmt_t *mgmt_new(rt_node_t *node, const rt_conf_t *conf, char *err, size_t errlen);
/*! mgmt_free() : close the listener and its links, free everything; after
 *  the loop stopped. NULL is a no-op. */
void mgmt_free(mgmt_t *me);
/*! mgmt_actor() : the management actor. */
rt_actor_t *mgmt_actor(mgmt_t *me);
/*! mgmt_set_trace() : serve @path (and @path.1 .. @path.@keep) as the node's
 *  trace files instead of [trace] file; NULL serves none. For tests.
 *  @return RT_ERR if @path is too long. */
int mgmt_set_trace(mgmt_t *me, const char *path, unsigned keep);

#endif /* MGMT_H */
