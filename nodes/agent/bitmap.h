/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * bitmap.h: the agent's persistent dirty bitmap, one per protected disk.
 *
 * One bit per 4 KiB block of the disk says "this block may differ from the
 * replica and must be sent again by the next sync pass". Bits are set when
 * a write cannot go into the write log (bitmap mode after a log overflow, a
 * failed write) and for every block at the start of an initial sync; a sync
 * pass clears them as it queues the blocks for shipping. So a resync after
 * an outage covers only regions that may differ.
 *
 * A second, coarse map (one bit per 4 MiB extent, the "activity map", as in
 * DRBD's activity log) closes the window between a write reaching the
 * backing disk and its record reaching the write log: the agent marks an
 * extent active before any write touches it (nbd on_begin hook), and clears
 * the marks only when every write so far is captured. A crash in between
 * leaves the mark, and the next open folds every active extent into the
 * dirty bits, so the block is resynced instead of silently differing.
 *
 * Persistence: every change is pwrite()n to the file at once (only the bytes
 * that changed), with no fsync: kill -9 keeps the page cache, and
 * bitmap_sync() (on a client FLUSH) makes it durable against power loss
 * too. The header, which also keeps a few numbers of the agent's own
 * (bitmap_meta_t), is replaced with pwrite + fdatasync. Layout (all
 * integers little-endian):
 *
 *   0     header, 4096 bytes: magic "SSBM", version 1, block size, extent
 *         size, disk size, meta (epoch, flags, sync_from, sync_end), XXH64
 *         of the first 120 bytes at offset 120
 *   4096  activity map: bit e of byte e/8 = extent e, padded to 4 KiB
 *   ...   dirty bits: bit b of byte b/8 = block b
 *
 * Memory: one bit per block and per extent in memory (32 KiB per GiB of
 * disk), allocated at open. Blocking I/O, one thread. Errors: RT_OK/RT_ERR
 * with a one-line reason in @err naming the file.
 */
#ifndef BITMAP_H
#define BITMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BITMAP_BLOCK   4096u        /* bytes per dirty bit */
#define BITMAP_EXTENT  (4u << 20)   /* bytes per activity bit */
#define BITMAP_HDR     4096u        /* header bytes at the start of the file */
#define BITMAP_END     1            /* bitmap_next(): no set bit at or after the start */

/* The agent's numbers kept in the header (bitmap_set_meta() makes them durable). */
typedef struct bitmap_meta {
    uint64_t epoch;     /* sync generation (PairOpen.epoch) */
    uint64_t flags;     /* the agent's flags (e.g. seeded) */
    uint64_t sync_from; /* first seq of the sync pass in progress, 0: none */
    uint64_t sync_end;  /* last seq of the pass once its walk finished, 0: not yet */
} bitmap_meta_t;

typedef struct bitmap bitmap_t;

/*! bitmap_open() : open the bitmap file @path of a disk of @disk_size bytes,
 *  or create it (every bit clear, meta zero; file and folder synced) when it
 *  does not exist and @create is set; *@created (may be NULL) says which.
 *  Extents left active by a crash are folded into the dirty bits (and the
 *  activity map cleared) before it returns: bitmap_recovered() tells how
 *  many. @return NULL with the reason in @err (bad or torn header, a disk
 *  size other than the file's, I/O, no memory). */
bitmap_t *bitmap_open(const char *path, uint64_t disk_size, bool create, bool *created, char *err,
                      size_t errlen);
/*! bitmap_close() : close without syncing. NULL is a no-op. */
void bitmap_close(bitmap_t *bm);

/*! bitmap_set() : mark every block that [@off, @off + @len) touches (clamped
 *  to the disk). @return RT_OK, or RT_ERR (I/O: the bits are set in memory
 *  but may not be on disk). */
int bitmap_set(bitmap_t *bm, uint64_t off, uint64_t len, char *err, size_t errlen);
/*! bitmap_clear() : clear the @count blocks from block @first (clamped).
 *  @return RT_OK or RT_ERR (I/O, as bitmap_set). */
int bitmap_clear(bitmap_t *bm, uint64_t first, uint64_t count, char *err, size_t errlen);
/*! bitmap_test() : whether block @block is marked (false past the end). */
bool bitmap_test(const bitmap_t *bm, uint64_t block);
/*! bitmap_next() : the first run of marked blocks at or after block @from,
 *  cut at @max blocks (> 0): *@first and *@count.
 *  @return RT_OK, or BITMAP_END if no block at or after @from is marked. */
int bitmap_next(const bitmap_t *bm, uint64_t from, uint64_t max, uint64_t *first,
                uint64_t *count);

uint64_t bitmap_blocks(const bitmap_t *bm);       /* blocks of the disk */
uint64_t bitmap_dirty_blocks(const bitmap_t *bm); /* blocks marked */
/*! bitmap_dirty_bytes() : bytes of the disk in marked blocks (the last
 *  block counts only up to the disk size). */
uint64_t bitmap_dirty_bytes(const bitmap_t *bm);
uint64_t bitmap_disk_size(const bitmap_t *bm);

/*! bitmap_activate() : mark active every extent that [@off, @off + @len)
 *  touches, before the write happens; only a newly active extent costs a
 *  pwrite. @return RT_OK, or RT_ERR (I/O: the write must not go ahead). */
int bitmap_activate(bitmap_t *bm, uint64_t off, uint64_t len, char *err, size_t errlen);
/*! bitmap_quiesce() : clear every activity mark; call it only when every
 *  write so far is captured (in the write log or the dirty bits).
 *  @return RT_OK or RT_ERR (I/O). */
int bitmap_quiesce(bitmap_t *bm, char *err, size_t errlen);
unsigned bitmap_active(const bitmap_t *bm);   /* extents marked active now */
/*! bitmap_recovered() : extents that were active at open (a crash) and were
 *  folded into the dirty bits. */
unsigned bitmap_recovered(const bitmap_t *bm);

/*! bitmap_sync() : fdatasync the file if anything changed since the last
 *  sync. @return RT_OK or RT_ERR. */
int bitmap_sync(bitmap_t *bm, char *err, size_t errlen);
/* Sync off the loop: bitmap_sync_begin() captures a job (a descriptor of its
 * own and the writes made so far) on the owning thread, bitmap_job_run() (an
 * rt_work_fn) does its fdatasync on a worker, and bitmap_sync_end() on the
 * owning thread marks synced what the job covered (writes made meanwhile
 * wait for a later sync) and frees it. One job at a time per bitmap; from
 * begin to end the bitmap may be used (and even closed) as usual. */
typedef struct bitmap_job bitmap_job_t;
/*! bitmap_sync_begin() : *job gets a job, or NULL when everything is synced
 *  already. @return RT_OK, RT_AGAIN when a job is in flight (*job NULL),
 *  RT_ERR (out of memory, no descriptor). */
int bitmap_sync_begin(bitmap_t *bm, bitmap_job_t **job, char *err, size_t errlen);
/*! bitmap_job_run() : the job's fdatasync; touches only the job. */
void bitmap_job_run(void *job);
/*! bitmap_sync_end() : the result of @job, on the owning thread; frees it.
 *  A job of another bitmap (or @bm NULL) changes nothing. @return RT_OK, or
 *  RT_ERR when its fdatasync failed. */
int bitmap_sync_end(bitmap_t *bm, bitmap_job_t *job, char *err, size_t errlen);
/*! bitmap_job_free() : free a job whose end will never be called. NULL is a no-op. */
void bitmap_job_free(bitmap_job_t *job);
/*! bitmap_meta() : the agent's numbers, as last set or read at open. */
const bitmap_meta_t *bitmap_meta(const bitmap_t *bm);
/*! bitmap_set_meta() : replace the header with @meta (pwrite + fdatasync;
 *  the bits written before it are synced first, so the header never runs
 *  ahead of them). @return RT_OK, or RT_ERR (memory keeps the new meta). */
int bitmap_set_meta(bitmap_t *bm, const bitmap_meta_t *meta, char *err, size_t errlen);

#endif /* BITMAP_H */
