/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * seglog.h: a segmented, append-only, crash-safe log of write records.
 *
 * The agent's write log, the process server's spool and the master target's
 * journal are all one seglog: a folder of segment files named by the first
 * sequence number they cover (00000000000000000001.seg), each a 64-byte
 * segment header followed by write records (wrec.h) in sequence order.
 *
 * Group commit: seglog_append() only writes (no fsync); seglog_commit() does
 * one fdatasync covering everything appended so far and reports the highest
 * durable sequence. The caller batches appends and acknowledges only what a
 * commit reported durable (seglog_commit_end() for an asynchronous one).
 *
 * Crash safety: a segment is created as a temporary file, its header synced,
 * renamed and the folder synced, so a crash never loses or half-creates one;
 * a segment is synced before the next one is created, so only the last
 * (active) segment can have a torn tail. Opening the log verifies it, cuts
 * the active segment at the first torn, corrupt or out-of-sequence record
 * (everything after it was never committed), and checks sequence continuity
 * across segments. FORMAT.md has the rules byte by byte.
 *
 * Sequence continuity: each record's seq - skip is the previous record's
 * seq + 1 (skip > 0 only where coalescing absorbed writes); a segment's name
 * is the previous segment's last seq + 1.
 *
 * Asynchronous commit (seglog_commit_begin/_end, seglog_job_run): the
 * fdatasync of a group commit can run on a worker thread while the owning
 * thread keeps appending; durable rises only to what the sync covered.
 * Deferred deletion (seglog_conf_t.defer_unlink, seglog_reap_begin/_end):
 * trimmed segments leave the table at once and their files are deleted by
 * a worker later, oldest first, one job at a time, so that a crash at any
 * moment leaves a continuous log (the segments not deleted yet come back
 * at open, below the records a caller still wants; every caller reads from
 * its own first wanted seq, so they only cost space).
 *
 * The log is plain blocking I/O with no event loop; one thread uses a log
 * and its iterators (a job's worker touches only the job). Memory: the log
 * holds a small table per segment and a few open descriptors; an iterator
 * holds one read buffer (up to WREC_MAX_SIZE, plus as much again to verify
 * LZ4 records).
 *
 * Errors: RT_OK / RT_ERR; on RT_ERR a one-line reason is written to @err
 * (when not NULL) that names the file and what to do.
 */
#ifndef SEGLOG_H
#define SEGLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wrec.h"

#define SEGLOG_SEG_MAX_DEFAULT (64ull << 20) /* segment size limit */
#define SEGLOG_SEG_MAX_MIN     4096ull       /* smallest accepted limit (tests) */
#define SEGLOG_HDR_SIZE        64u           /* segment header bytes */
#define SEGLOG_MAGIC           0x47535353u   /* bytes 'S' 'S' 'S' 'G' as little-endian u32 */
#define SEGLOG_VERSION         1u
#define SEGLOG_END             1             /* iterator: nothing more to read for now */

typedef struct seglog seglog_t;
typedef struct seglog_iter seglog_iter_t;

/* Where a record lives: stable until its segment is trimmed. */
typedef struct seglog_loc {
    uint64_t seg; /* the segment's name (first sequence it covers) */
    uint64_t pos; /* byte offset of the record header in that segment file */
} seglog_loc_t;

/* Called once per record, in sequence order, by open (every record found)
 * and append (every record written). @stored is the record's stored payload
 * when it was read (appends, the verified tail at open), NULL when only the
 * header was (sealed segments at open). Pointers are valid during the call. */
typedef void (*seglog_rec_fn)(void *arg, const wrec_hdr_t *h, const uint8_t *stored,
                              const seglog_loc_t *loc);

typedef struct seglog_conf {
    uint64_t seg_max;     /* segment size limit in bytes (0: 64 MiB); a single record
                             larger than that gets a segment of its own */
    uint64_t first_seq;   /* name of the first segment of a new log (0: 1) */
    bool create;          /* create the folder and a first segment if there are none */
    bool readonly;        /* never write: a torn tail (or, here only, damage in any
                             segment) ends the log instead of being cut or refused */
    bool verify_all;      /* verify data hashes of every segment at open, not just the
                             active one (sealed ones get their headers checked) */
    bool defer_unlink;    /* seglog_trim() only queues the files of trimmed segments;
                             seglog_reap_begin() jobs delete them */
    bool no_sync;         /* the owner needs no durability from this log (the process
                             server's spool in relay mode): no fdatasync or fsync ever;
                             seglog_commit() and seglog_commit_begin() (which then gives
                             no job) raise durable to the last record at once. After a
                             power loss such a log may not recover: a writer's open
                             with create then starts it afresh (empty, first_seq) and
                             seglog_recovered() says why */
    seglog_rec_fn on_rec; /* called for every record found at open (or NULL) */
    void *arg;            /* for on_rec */
} seglog_conf_t;

/*! seglog_open() : open (recover) or create the log in folder @dir. Takes an
 *  exclusive lock on the folder (shared when @conf->readonly), so one writer
 *  per log. A read-only open of a folder without segments is an empty log.
 *  @return the log, or NULL with the reason in @err. */
seglog_t *seglog_open(const char *dir, const seglog_conf_t *conf, char *err, size_t errlen);

/*! seglog_close() : close without committing (call seglog_commit() first for
 *  durability). NULL is a no-op. A job of the log still in flight is not
 *  freed: it stays its caller's, who ends it later with the log given as
 *  NULL (or another log: it is then stale) or frees it (seglog_job_free). */
void seglog_close(seglog_t *l);

/*! seglog_append() : append the records back to back in @recs (@len bytes,
 *  e.g. a link payload). All are checked first (header checksum, field rules,
 *  continuity with the log and with each other); if any fails nothing is
 *  written. Data hashes are the caller's to check (wrec_verify()). Crosses to
 *  new segments as needed. @fn (may be NULL) sees every record written, with
 *  its location. Not durable until seglog_commit().
 *  @return RT_OK, or RT_ERR (bad record, read-only log, I/O error: the log
 *  then holds a prefix of the batch, every record of which @fn has seen). */
int seglog_append(seglog_t *l, const void *recs, size_t len, seglog_rec_fn fn, void *arg,
                  char *err, size_t errlen);

/*! seglog_append_rec() : append one record given as a header @h (fields
 *  complete, e.g. from wrec_seal()) and its @stored payload in a separate
 *  buffer, written with one pwritev (no copy). @loc (may be NULL) gets its
 *  location. @return RT_OK or RT_ERR as seglog_append(). */
int seglog_append_rec(seglog_t *l, const wrec_hdr_t *h, const void *stored, seglog_loc_t *loc,
                      char *err, size_t errlen);

/*! seglog_commit() : make everything appended durable (one fdatasync of the
 *  active segment, if anything was appended since the last commit).
 *  *durable_seq (may be NULL) gets seglog_durable_seq().
 *  @return RT_OK, or RT_ERR if the sync failed (nothing new is durable). */
int seglog_commit(seglog_t *l, uint64_t *durable_seq, char *err, size_t errlen);

/*! seglog_trim() : delete the segments whose every record is below @seq (never
 *  the active segment), oldest first, then sync the folder. A crash midway
 *  leaves a shorter, still continuous log. With conf.defer_unlink the
 *  segments only leave the table (first_seq, bytes, records and readers no
 *  longer see them) and their names are queued for seglog_reap_begin();
 *  at most SEGLOG_DEAD_MAX names wait at once, and a trim that finds the
 *  queue full leaves the rest in the log for a later trim.
 *  @return RT_OK, or RT_ERR (I/O). */
int seglog_trim(seglog_t *l, uint64_t seq, char *err, size_t errlen);

/*! seglog_reset() : drop every record and start again empty at @next_seq
 *  (e.g. an agent log that overflowed). Segments are deleted oldest first
 *  (trimmed ones still queued or being deleted by a reap job too, here, on
 *  the calling thread) and the new one is created last; after a crash
 *  midway the log reopens as a suffix of the old one or, if none is left,
 *  as created by the next open. A commit job in flight becomes stale (its
 *  end raises nothing). @return RT_OK, or RT_ERR (I/O, read-only, or
 *  @next_seq names a segment a reap job in flight is deleting). */
int seglog_reset(seglog_t *l, uint64_t next_seq, char *err, size_t errlen);

/*! seglog_pread() : read @len bytes of the stored payload of the record at
 *  @loc, from payload offset @off. No verification (the caller has the
 *  header from the index). @return RT_OK, or RT_ERR (trimmed, I/O, short). */
int seglog_pread(seglog_t *l, const seglog_loc_t *loc, uint64_t off, void *buf, size_t len,
                 char *err, size_t errlen);

/* ---- jobs: commit and deletion off the owning thread ---------------------------- *
 *
 * A job is made on the owning thread by a _begin(), run once by
 * seglog_job_run() (an rt_work_fn: on a worker, or inline), and ended on the
 * owning thread by the matching _end(), which frees it. From begin to end the
 * job owns what it holds (descriptors of its own, names) and the log does
 * not look at it, so appends, rollovers, trims, resets and even a close may
 * happen meanwhile. At most one commit job and one reap job per log are in
 * flight. A caller that will never see a job's end (its worker completion
 * was dropped at shutdown) frees it with seglog_job_free(). */

#define SEGLOG_DEAD_MAX 32u /* trimmed segment names waiting for deletion, at most */

typedef struct seglog_job seglog_job_t;

/*! seglog_commit_begin() : capture a group commit: a descriptor of its own
 *  on the active segment and the last appended seq S. Sealed segments are
 *  synced by the rollover that sealed them, so syncing the active one makes
 *  everything up to S durable. *job gets the job, or NULL when everything is
 *  durable already (nothing to run; read-only logs too).
 *  @return RT_OK, RT_AGAIN when a commit job is in flight (*job NULL: begin
 *  again after its end), or RT_ERR (the log failed earlier; out of memory,
 *  no descriptor). */
int seglog_commit_begin(seglog_t *l, seglog_job_t **job, char *err, size_t errlen);

/*! seglog_commit_end() : the result of a commit job, on the owning thread:
 *  durable rises to the S captured at begin, never above it (appends made
 *  during the sync wait for the next commit), and never goes down. A failed
 *  sync marks the log failed, as seglog_commit(). A job of another log, of a
 *  closed log (@l NULL) or from before a reset is stale: nothing changes.
 *  Frees @job. *durable_seq (may be NULL) gets seglog_durable_seq() (0 for a
 *  NULL @l). @return RT_OK (also for a stale job), or RT_ERR (the sync
 *  failed: reopen the log). */
int seglog_commit_end(seglog_t *l, seglog_job_t *job, uint64_t *durable_seq, char *err,
                      size_t errlen);

/*! seglog_reap_begin() : take the queued names of trimmed segments (see
 *  seglog_trim, conf.defer_unlink) into a job that deletes them oldest first
 *  and then syncs the folder. *job gets NULL when nothing is queued.
 *  @return RT_OK, RT_AGAIN when a reap job is in flight, or RT_ERR (no
 *  descriptor for the folder, out of memory; the names stay queued). */
int seglog_reap_begin(seglog_t *l, seglog_job_t **job, char *err, size_t errlen);

/*! seglog_reap_end() : the result of a reap job, on the owning thread. Names
 *  it could not delete go back to the head of the queue (for the next job).
 *  Frees @job. @return RT_OK (also for a stale job), or RT_ERR (a delete or
 *  the folder sync failed; the log itself is fine). */
int seglog_reap_end(seglog_t *l, seglog_job_t *job, char *err, size_t errlen);

/*! seglog_reap_pending() : names are queued for a reap job. */
bool seglog_reap_pending(const seglog_t *l);

/*! seglog_job_run() : do the job's system calls (fdatasync, or unlinkat and
 *  fsync of the folder); touches only the job. Signature of rt_work_fn. */
void seglog_job_run(void *job);

/*! seglog_job_free() : free a job whose end will never be called. NULL is a
 *  no-op. */
void seglog_job_free(seglog_job_t *job);

/* ---- state -------------------------------------------------------------------- */

uint64_t seglog_first_seq(const seglog_t *l);   /* first record's seq (next_seq if empty) */
uint64_t seglog_last_seq(const seglog_t *l);    /* last record's seq (first_seq - 1 if empty) */
uint64_t seglog_durable_seq(const seglog_t *l); /* highest committed seq (last at open) */
uint64_t seglog_bytes(const seglog_t *l);       /* bytes of all segment files */
uint64_t seglog_records(const seglog_t *l);     /* records in the log */
unsigned seglog_segments(const seglog_t *l);    /* segment files */
const char *seglog_dir(const seglog_t *l);
/*! seglog_recovered() : bytes cut (or, read-only, ignored) from the tail at
 *  open, and a reason for the first bad record ("" when none), for logs. */
uint64_t seglog_recovered(const seglog_t *l, const char **why);

/* ---- reading ------------------------------------------------------------------ */

/*! seglog_iter_new() : an iterator from the first record with seq >= @from.
 *  With @verify every record's data hash is checked (LZ4 decompressed).
 *  The iterator follows appends and survives trims of segments it is in.
 *  @return NULL (out of memory) with the reason in @err. */
seglog_iter_t *seglog_iter_new(seglog_t *l, uint64_t from, bool verify, char *err,
                               size_t errlen);
void seglog_iter_free(seglog_iter_t *it);

/*! seglog_iter_next() : the next record with seq <= @max_seq. *stored points
 *  into the iterator's buffer, valid until the next call; @loc may be NULL.
 *  @return RT_OK with a record, SEGLOG_END when none is available (yet), or
 *  RT_ERR (I/O, corruption, checksum, a gap left by a trim) with @err. */
int seglog_iter_next(seglog_iter_t *it, uint64_t max_seq, wrec_hdr_t *h, const uint8_t **stored,
                     seglog_loc_t *loc, char *err, size_t errlen);

/*! seglog_iter_batch() : copy whole records (header + stored) with seq <=
 *  @max_seq back to back into @buf, as many as fit in @cap (a link payload).
 *  *used gets the bytes, *last_seq (may be NULL) the last record's seq.
 *  A @cap of WREC_MAX_SIZE always makes progress. @return RT_OK with at
 *  least one record, SEGLOG_END when none is available, RT_ERR as
 *  seglog_iter_next() or when @cap cannot hold the next record. */
int seglog_iter_batch(seglog_iter_t *it, uint64_t max_seq, void *buf, size_t cap, size_t *used,
                      uint64_t *last_seq, char *err, size_t errlen);

/*! seglog_iter_seq() : the seq the iterator will return next at the earliest. */
uint64_t seglog_iter_seq(const seglog_iter_t *it);

#endif /* SEGLOG_H */
