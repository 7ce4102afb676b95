/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * journal.h: the master target's per-pair retention journal.
 *
 * A pair's replica lives in MT_DIR/<pair>/: a sparse base image holding the
 * disk as it was after write P (the promoted-through sequence), a seglog of
 * every write after P (journal/), and a small state file. The state after
 * exactly writes 1..S, for any S from P to the last write, is the base image
 * overlaid with the journal's writes up to S: that is a recovery point, and
 * mtj_read() reads it directly, through an extent map (which journal write
 * holds each byte at point S) built in memory from the record headers.
 *
 * Writes older than the retention window are promoted: applied into the
 * base image in order, the base synced, P advanced in the state file, and
 * their segments deleted. The state file records the promotion target
 * before the base is touched, so a crash midway is finished (replayed) at
 * the next open and no point that was still readable is ever served wrong.
 *
 * mtj_restore() rebuilds one point as a sparse image with no daemon
 * running, read-only on the folder. docs/FORMAT.md documents every file.
 *
 * Points: every record boundary S is a crash-consistent point unless the
 * record carries WREC_F_INTERIOR. A MARK record (a checkpoint or bookmark
 * inserted by the agent into the write stream) names the point after it.
 * A point's time is the latest capture time of the writes up to it.
 *
 * Plain blocking I/O, no event loop, one thread per journal. Errors: RT_OK /
 * RT_ERR with a one-line reason in @err (when not NULL).
 */
#ifndef MT_JOURNAL_H
#define MT_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nodes/common/seglog.h"
#include "nodes/common/wrec.h"

#define MTJ_RETENTION_DEFAULT_US (24ull * 3600u * 1000000u) /* 24 h */
#define MTJ_STATE_MAGIC "secondsite-mt-journal"
#define MTJ_STATE_VERSION 1u
#define MTJ_TIME_MAX 40u /* bytes of a formatted time, with NUL */

typedef struct mtj mtj_t;

typedef struct mtj_conf {
    uint64_t disk_size;    /* create: the disk size in bytes (required); open: 0, or it
                              must match */
    uint64_t retention_us; /* retention window (0: 24 h) */
    uint64_t seg_max;      /* journal segment size (0: 64 MiB) */
    uint64_t first_seq;    /* create: the first sequence the pair will send (0: 1) */
    bool create;           /* create the pair folder if it is not there */
    bool readonly;         /* offline: write nothing (a pending promotion is not finished;
                              the points it covers are just not readable) */
    bool defer_unlink;     /* promotion's trim only queues the dropped segments; delete
                              them with mtj_reap_begin() jobs (seglog's defer_unlink) */
} mtj_conf_t;

typedef enum mtj_kind {
    MTJ_PT_CRASH = 0, /* a write boundary: crash-consistent */
    MTJ_PT_BASE,      /* the oldest point: the base image alone */
    MTJ_PT_MARK,      /* a checkpoint / bookmark mark */
    MTJ_PT_APP,       /* an application-consistent bookmark */
} mtj_kind_t;

typedef struct mtj_point {
    uint64_t seq;                      /* the state after every write up to seq */
    uint64_t time_us;                  /* latest capture time up to seq (µs, UTC) */
    mtj_kind_t kind;
    char label[WREC_MAX_LABEL + 1];    /* MARK/APP label, else "" */
} mtj_point_t;

typedef struct mtj_info {
    uint64_t disk_size;
    uint64_t first_seq;      /* oldest readable point */
    uint64_t first_time_us;
    uint64_t last_seq;       /* last write appended */
    uint64_t last_time_us;
    uint64_t durable_seq;    /* last write committed (fdatasync'd) */
    uint64_t promoted_seq;   /* the base image is the state after this write */
    uint64_t records;        /* journal records after promoted_seq */
    uint64_t marks;          /* MARK records among them */
    uint64_t journal_bytes;  /* bytes of the journal's segment files */
    uint64_t base_bytes;     /* bytes allocated to the base image */
    uint64_t retention_us;
    uint64_t hold_seq;       /* promotion never passes this (UINT64_MAX: no hold) */
} mtj_info_t;

/*! mtj_open() : open (recover) or create the journal of @pair in @mt_dir.
 *  Takes a lock on the pair folder (shared when read-only). Recovery: the
 *  journal's seglog is recovered (torn tail cut), checked against the state
 *  file, and an interrupted promotion is finished.
 *  @return the journal, or NULL with the reason in @err. */
mtj_t *mtj_open(const char *mt_dir, const char *pair, const mtj_conf_t *conf, char *err,
                size_t errlen);

/*! mtj_close() : close (without committing). NULL is a no-op. */
void mtj_close(mtj_t *j);

/*! mtj_append() : append a batch of records back to back (a link payload).
 *  Each record is checked: header, data hash (LZ4 decompressed; the hash is
 *  the one taken at capture), range inside the disk, sequence continuity.
 *  Records at or below the last sequence are duplicates of a resend and are
 *  skipped (they must come first in the batch). If any record fails nothing
 *  is appended. Not durable until mtj_commit(). *last_seq (may be NULL) gets
 *  the last sequence in the journal.
 *  @return RT_OK, or RT_ERR (bad record: resync that range; I/O error). */
int mtj_append(mtj_t *j, const void *recs, size_t len, uint64_t *last_seq, char *err,
               size_t errlen);

/*! mtj_commit() : make every appended record durable (one fdatasync).
 *  *durable_seq (may be NULL) gets the highest durable sequence: ack up to it.
 *  @return RT_OK, or RT_ERR (the journal must be reopened). */
int mtj_commit(mtj_t *j, uint64_t *durable_seq, char *err, size_t errlen);

/*! mtj_commit_begin() / mtj_commit_end() : mtj_commit() in two halves, so
 *  that its fdatasync runs on a worker (seglog_job_run) while the caller
 *  keeps appending; durable rises at the end to what the job covered (see
 *  seglog_commit_begin/_end; promotion never passes it). A read-only journal
 *  has nothing to sync (*job NULL). mtj_commit_end() takes a NULL @j (the
 *  journal was closed meanwhile: the job is stale and only freed); it frees
 *  @job. @return as seglog_commit_begin() / seglog_commit_end(): RT_ERR
 *  means the journal must be reopened. */
int mtj_commit_begin(mtj_t *j, seglog_job_t **job, char *err, size_t errlen);
int mtj_commit_end(mtj_t *j, seglog_job_t *job, uint64_t *durable_seq, char *err,
                   size_t errlen);

/*! mtj_reap_begin() / mtj_reap_end() / mtj_reap_pending() : with
 *  conf.defer_unlink, the deletion of the segments promotion dropped, as a
 *  job (seglog_reap_begin/_end; a journal reopened before it ran finds them
 *  again below the promoted sequence and ignores them). mtj_reap_end() takes
 *  a NULL @j and frees @job. @return as seglog_reap_begin()/_end(). */
int mtj_reap_begin(mtj_t *j, seglog_job_t **job, char *err, size_t errlen);
int mtj_reap_end(mtj_t *j, seglog_job_t *job, char *err, size_t errlen);
bool mtj_reap_pending(const mtj_t *j);

/*! mtj_read() : read @len bytes at @offset of the disk as it was after
 *  exactly the writes up to @point_seq (first_seq <= point_seq <= last_seq).
 *  The first read at a new point builds that point's extent map (the latest
 *  point's map is kept up to date as writes arrive; one other point is
 *  cached). Data is not re-hashed here (mtj_restore and promotion do).
 *  @return RT_OK, or RT_ERR (point out of the window, range outside the disk,
 *  I/O). */
int mtj_read(mtj_t *j, uint64_t point_seq, uint64_t offset, size_t len, void *buf, char *err,
             size_t errlen);

/*! mtj_resolve() : a point from an operator's spec: "latest" (the last
 *  durable point), "latest-app", "oldest", a sequence number, an ISO-8601
 *  UTC time "YYYY-MM-DDTHH:MM:SS[.ffffff]Z" (the latest point at or before
 *  it), or a mark's label (the latest mark with it). Only consistent points
 *  are returned. @return RT_OK, or RT_ERR with why in @err. */
int mtj_resolve(const mtj_t *j, const char *spec, mtj_point_t *out, char *err, size_t errlen);

/*! mtj_each_point() : call @fn for the points of the window, oldest first:
 *  the oldest, then consistent points at least @min_gap_us after the last
 *  one given, every mark, and the latest durable point. @fn returns false to
 *  stop. */
void mtj_each_point(const mtj_t *j, uint64_t min_gap_us,
                    bool (*fn)(void *arg, const mtj_point_t *p), void *arg);

/*! mtj_info() : sizes and sequence bounds, for status. */
void mtj_info(const mtj_t *j, mtj_info_t *out);

/*! mtj_hold() : never promote past @seq (a test failover is reading a point);
 *  UINT64_MAX releases the hold. */
void mtj_hold(mtj_t *j, uint64_t seq);

/*! mtj_set_retention() : change the retention window (policy update). */
void mtj_set_retention(mtj_t *j, uint64_t retention_us);

/*! mtj_promote() : apply every write up to @seq into the base image (a
 *  consistent, durable point at or below the hold), sync it, record it in
 *  the state file and delete the segments wholly below it. Each record's data
 *  hash is checked before it is applied. Points below @seq stop being
 *  readable. @return RT_OK, or RT_ERR (the journal stays correct and the
 *  promotion is retried by the next call or open). */
int mtj_promote(mtj_t *j, uint64_t seq, char *err, size_t errlen);

/*! mtj_retain() : promote the writes older than the retention window at
 *  @now_us, at most about @max_bytes of journal data per call (0: no limit),
 *  ending on a consistent point. *promoted (may be NULL) gets the promoted
 *  sequence after the call. @return RT_OK (also when nothing was due), or
 *  RT_ERR as mtj_promote(). */
int mtj_retain(mtj_t *j, uint64_t now_us, uint64_t max_bytes, uint64_t *promoted, char *err,
               size_t errlen);

/*! mtj_export() : write the disk at @point_seq to @out_path: a regular file
 *  is created (or truncated) sparse, its zero blocks left as holes; a block
 *  device is written whole. Every journal record up to the point is
 *  verified against its data hash first. *written (may be NULL) gets the
 *  bytes actually written. The file is synced before returning.
 *  @return RT_OK, or RT_ERR (a partial regular file is removed). */
int mtj_export(mtj_t *j, uint64_t point_seq, const char *out_path, uint64_t *written,
               char *err, size_t errlen);

/*! mtj_restore() : offline restore: open @pair in @mt_dir read-only (no
 *  daemon may hold it), resolve @point (see mtj_resolve) and mtj_export() it
 *  to @out_path. *pt (may be NULL) gets the point restored.
 *  @return RT_OK, or RT_ERR with a one-line reason in @err. */
int mtj_restore(const char *mt_dir, const char *pair, const char *point, const char *out_path,
                mtj_point_t *pt, char *err, size_t errlen);

/*! mtj_format_time() : µs since the epoch -> "YYYY-MM-DDTHH:MM:SS.ffffffZ"
 *  into @out (MTJ_TIME_MAX bytes). @return out. */
char *mtj_format_time(uint64_t us, char *out);

/*! mtj_parse_time() : the ISO-8601 UTC forms mtj_resolve() accepts -> µs.
 *  @return RT_OK, or RT_ERR if it is not one. */
int mtj_parse_time(const char *s, uint64_t *us);

#endif /* MT_JOURNAL_H */
