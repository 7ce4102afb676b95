/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * nbd.h: the agent's NBD server, the manual.
 *
 * The agent serves every protected disk to its workload as an NBD export
 * backed by the real disk or image, and must see every completed write, in
 * order, to give it a sequence number and put it in its write log. This
 * module is that tap: an NBD server (fixed newstyle negotiation, simple
 * replies) that runs on the caller's libev loop and calls the export's hooks
 * for every write that reached the backing file, before the client sees the
 * reply.
 *
 * Protocol: options GO, INFO (EXPORT, NAME, DESCRIPTION, BLOCK_SIZE with
 * minimum 1, preferred 4096, maximum max_block), LIST, ABORT, EXPORT_NAME;
 * STRUCTURED_REPLY, STARTTLS and anything else are refused with
 * NBD_REP_ERR_UNSUP. Commands READ, WRITE, FLUSH, TRIM (punches a hole),
 * WRITE_ZEROES (NO_HOLE, FAST_ZERO), DISC, FUA on any of them. Transmission
 * flags: HAS_FLAGS, SEND_FLUSH, SEND_FUA, SEND_TRIM, SEND_WRITE_ZEROES,
 * SEND_FAST_ZERO, CAN_MULTI_CONN (all connections of an export share one file
 * descriptor and requests run one at a time on the loop, so a flush covers
 * every write replied to on any connection), READ_ONLY for read-only exports.
 *
 * Execution model: requests are read as they arrive (pipelined), run in
 * arrival order on the loop with pread/pwrite/fallocate, and their replies
 * are batched with one sendmsg. Durability is off the loop: a FLUSH, and a
 * write with FUA once written, is parked (it keeps its request slot) until
 * an fdatasync of the backing file that started after it ran has finished
 * (on the caller's workers through nbd_server_conf.sync_submit, else on the
 * loop) and the hook's own durability is done (a hook returning NBD_PARK,
 * then nbd_export_complete()); later requests go on meanwhile, so replies
 * may leave out of order, as NBD allows (each carries its handle). Syncs of
 * an export run one at a time: the requests that arrive during one share
 * the next. Memory is bounded per connection: at
 * most conn_reqs requests and conn_bytes payload bytes in flight; past that the
 * server stops reading that socket (back-pressure). Bad input closes only the
 * offending connection (bad magic, broken negotiation) or gets an error reply
 * (out of range: EINVAL, or ENOSPC for writes; longer than max_block: EINVAL,
 * a write's payload is read and dropped; unknown command or flag: EINVAL).
 *
 * Threading: everything runs on the loop given to nbd_server_new(); no
 * function here may be called from another thread.
 */
#ifndef NBD_H
#define NBD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ev.h>

typedef struct nbd_server nbd_server_t;
typedef struct nbd_export nbd_export_t;
typedef struct nbd_sync nbd_sync_t;

/* ---- capture hooks ----------------------------------------------------------- */

/* flags of on_write() */
enum {
    NBD_HOOK_ZERO = 1u << 0,   /* WRITE_ZEROES: the range now reads as zeroes; data is NULL */
    NBD_HOOK_TRIM = 1u << 1,   /* TRIM punched a hole: the range now reads as zeroes; data NULL */
    NBD_HOOK_FUA = 1u << 2,    /* the client asked for FUA: make the capture durable before
                                  the reply (return NBD_PARK to do it off the loop); the
                                  backing file's fdatasync runs after the hook */
    NBD_HOOK_FAILED = 1u << 3, /* the operation failed part-way: the range's contents are
                                  unknown (mark it dirty); data is NULL; the client gets an error */
};

/* on_write()/on_flush() return: captured, but the reply waits until
 * nbd_export_complete() covers this call's token (nbd_export_token() read
 * during the call, or any time after it). The request stays in flight;
 * requests after it go on. */
#define NBD_PARK 1

/* What the agent plugs into an export. Both hooks run on the loop, after the
 * operation reached the backing file (not yet synced: FUA and FLUSH syncs
 * run after the hook, the reply waits for both) and BEFORE the reply is
 * queued, in the order the operations completed (one at a time, across all
 * connections of the export). Each call of on_write/on_flush gets the next
 * token of the export (nbd_export_token()). They must not call
 * nbd_export_remove() or nbd_server_free(); they may call
 * nbd_export_pause()/nbd_export_resume() and nbd_export_complete().
 *
 * Return values (both hooks):
 *   RT_OK    captured; the reply goes out.
 *   NBD_PARK captured; the reply waits for nbd_export_complete() (above).
 *   RT_AGAIN captured, but hold: the reply goes out and the export pauses
 *            (as nbd_export_pause()) until nbd_export_resume(): no further
 *            request of this export runs; its clients are left to fill their
 *            in-flight budgets and are then no longer read (back-pressure).
 *   RT_ERR   not captured; the client gets NBD_EIO for this request (the data
 *            may already be on the backing disk: treat the range as dirty).
 * Either hook may be NULL (no capture). */
typedef struct nbd_hooks {
    /*! on_write() : a WRITE (@data = @len bytes, valid only during the call),
     *  a WRITE_ZEROES (NBD_HOOK_ZERO) or a TRIM (NBD_HOOK_TRIM) of
     *  [@off, @off + @len) completed. Zero-length requests are not reported;
     *  a TRIM the backing store cannot punch is a no-op and is not reported. */
    int (*on_write)(void *ctx, uint64_t off, uint32_t len, const void *data, uint32_t flags);
    /*! on_flush() : a FLUSH runs: every write replied to before it is
     *  written (the backing file's fdatasync is started after this call and
     *  the reply waits for it); the agent decides what durable means for its
     *  log (NBD_PARK to make it durable off the loop). */
    int (*on_flush)(void *ctx);
    /*! on_begin() : a WRITE, WRITE_ZEROES or TRIM of [@off, @off + @len) is
     *  about to touch the backing file (it runs before the operation, on the
     *  loop, in order; RT_AGAIN is not allowed here). The agent marks the
     *  range in its activity map, so that a crash between the write and
     *  on_write() still gets the range resynced. @return RT_OK to go on, or
     *  RT_ERR: the client gets NBD_EIO and the backing file is not touched. */
    int (*on_begin)(void *ctx, uint64_t off, uint32_t len);
} nbd_hooks_t;

/* ---- server ------------------------------------------------------------------ */

typedef struct nbd_server_conf {
    const char *listen;         /* "127.0.0.1:10809" or "[::1]:10809", numeric only; port 0
                                   picks a free port (see nbd_server_port()); NULL: no
                                   listener, connections come from nbd_server_adopt() */
    uint32_t max_block;         /* largest READ/WRITE payload (0: 32 MiB, the ceiling) */
    uint32_t max_conns;         /* clients at once, all exports (0: 64) */
    uint32_t conn_reqs;         /* requests in flight per client (0: 128) */
    uint64_t conn_bytes;        /* payload bytes in flight per client (0: 64 MiB); one request
                                   is always admitted when nothing else is in flight */
    double handshake_timeout_s; /* close a client still negotiating after this (0: 30 s) */
    /* where the backing file's fdatasync of FLUSH and FUA runs: hand @job to
     * a worker that runs nbd_sync_run(job), then call nbd_sync_end() on the
     * loop (RT_OK); anything else, or NULL here: it runs on the loop */
    int (*sync_submit)(void *arg, nbd_sync_t *job);
    void *sync_arg;             /* first argument of sync_submit */
} nbd_server_conf_t;

/*! nbd_sync_run() : a sync job's fdatasync (of a descriptor of its own);
 *  touches only the job (rt_work_fn signature). */
void nbd_sync_run(void *job);

/*! nbd_sync_end() : on the loop, the result of a job that sync_submit took:
 *  the parked requests it covers get their reply (EIO if the sync failed)
 *  and the next sync starts if requests wait for one. Frees @job. A job of
 *  an export since removed changes nothing. @s must be the job's server. */
void nbd_sync_end(nbd_server_t *s, nbd_sync_t *job);

/*! nbd_sync_free() : free a job whose end will never be called (its server
 *  was freed meanwhile). NULL is a no-op. */
void nbd_sync_free(nbd_sync_t *job);

/*! nbd_server_new() : a server on @loop, listening on @conf->listen unless it
 *  is NULL. The caller keeps @loop running; @conf is copied.
 *  @return NULL (and logs why) if the address is bad or cannot be bound. */
nbd_server_t *nbd_server_new(struct ev_loop *loop, const nbd_server_conf_t *conf);

/*! nbd_server_free() : close every connection (requests not yet replied to are
 *  dropped, never acknowledged), every export and the listener. NULL is a
 *  no-op. Not from inside a hook. */
void nbd_server_free(nbd_server_t *s);

/*! nbd_server_port() : the bound TCP port. @return 0 without a listener. */
unsigned nbd_server_port(const nbd_server_t *s);

/*! nbd_server_adopt() : serve the connected stream socket @fd (a socketpair
 *  end, an inherited socket) as if it had been accepted. Takes ownership of
 *  @fd in every case (closes it on failure).
 *  @return RT_OK, RT_ERR when the connection limit is reached or memory fails. */
int nbd_server_adopt(nbd_server_t *s, int fd);

/*! nbd_server_conns() : connections currently open (negotiating or not). */
unsigned nbd_server_conns(const nbd_server_t *s);

/* ---- exports ------------------------------------------------------------------ */

typedef struct nbd_export_conf {
    const char *name;        /* 1..NBD_NAME_MAX bytes, unique on the server; the first
                                export added is also the default export "" */
    const char *description; /* shown by NBD_OPT_LIST/INFO, or NULL */
    const char *path;        /* backing file or block device, opened O_RDWR (O_RDONLY if
                                readonly); NULL: use fd */
    int fd;                  /* backing descriptor when path is NULL; the caller keeps
                                ownership and must keep it open until nbd_export_remove() */
    bool readonly;           /* advertise NBD_FLAG_READ_ONLY; writes get NBD_EPERM */
    nbd_hooks_t hooks;       /* capture hooks, copied */
    void *ctx;               /* first argument of the hooks */
} nbd_export_conf_t;

/*! nbd_export_add() : serve a backing file or block device as export
 *  @conf->name. Its size is taken now (files: st_size; block devices:
 *  BLKGETSIZE64). @return NULL (and logs why) on a duplicate or bad name, a
 *  file that cannot be opened or sized. */
nbd_export_t *nbd_export_add(nbd_server_t *s, const nbd_export_conf_t *conf);

/*! nbd_export_remove() : hard-disconnect the export's clients and forget it;
 *  closes the backing file if nbd_export_add() opened it. Not from inside a
 *  hook. NULL is a no-op. */
void nbd_export_remove(nbd_export_t *e);

/*! nbd_export_find() : the export called @name. @return NULL if none. */
nbd_export_t *nbd_export_find(nbd_server_t *s, const char *name);

/*! nbd_export_pause() : stop running requests of @e (reads too, so that order
 *  is kept) until nbd_export_resume(). Requests keep arriving until each
 *  client's in-flight budget is full; then its socket is no longer read. */
void nbd_export_pause(nbd_export_t *e);

/*! nbd_export_resume() : run @e's queued requests again. The work starts at
 *  the next loop iteration (safe to call from a hook). */
void nbd_export_resume(nbd_export_t *e);

bool nbd_export_paused(const nbd_export_t *e);
uint64_t nbd_export_size(const nbd_export_t *e);
const char *nbd_export_name(const nbd_export_t *e);
/*! nbd_export_fd() : the backing descriptor, for the agent's own reads
 *  (initial sync, resync) with pread() on the loop. Owned by the export. */
int nbd_export_fd(const nbd_export_t *e);

/*! nbd_export_token() : the token of the on_write/on_flush call running now,
 *  or of the last one (tokens rise by one per call, from 1). */
uint64_t nbd_export_token(const nbd_export_t *e);

/*! nbd_export_complete() : every request parked by a hook call whose token
 *  is <= @upto (and this one, if called from inside the hook) may now be
 *  replied to: with success when @rc is RT_OK, else with NBD_EIO. Replies go
 *  out once the backing-file sync each also waits for is done. Requests of
 *  connections closed meanwhile are gone: nothing happens for them. */
void nbd_export_complete(nbd_export_t *e, uint64_t upto, int rc);

typedef struct nbd_export_stats {
    uint32_t conns;          /* clients in transmission on this export */
    uint64_t reads, writes;  /* commands completed (writes: WRITE, WRITE_ZEROES, TRIM) */
    uint64_t flushes;        /* FLUSH commands completed */
    uint64_t bytes_read, bytes_written;
    uint64_t errors;         /* error replies sent */
    uint64_t syncs;          /* fdatasyncs of the backing file started (FLUSH, FUA) */
    uint32_t parked;         /* requests waiting now for a sync or nbd_export_complete() */
} nbd_export_stats_t;

/*! nbd_export_stats() : counters since nbd_export_add(). */
void nbd_export_stats(const nbd_export_t *e, nbd_export_stats_t *out);

#endif /* NBD_H */
