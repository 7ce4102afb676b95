/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * bitmap.c: the agent's persistent dirty bitmap and activity map (see
 * bitmap.h for what they are for and the file layout).
 *
 * Both maps live in memory as plain byte arrays (bit i is bit i%8 of byte
 * i/8), which is also their layout in the file, so persisting a change is
 * one pwrite of the bytes it touched, with no conversion. The number of set
 * dirty bits is kept up to date as bits change, for status.
 */
#include "bitmap.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <xxhash.h>

#include "rt.h"

#define BM_MAGIC   0x4d425353u /* "SSBM" as little-endian u32 */
#define BM_VERSION 1u
#define BM_SUMOFF  120u        /* header checksum: XXH64 of bytes 0..119, stored here */

struct bitmap {
    int fd;
    char path[4096];
    uint64_t disk_size;
    uint64_t nblocks, nextents;
    uint8_t *bits;         /* nblocks bits */
    uint8_t *act;          /* nextents bits */
    uint64_t act_off;      /* file offset of the activity map */
    uint64_t bits_off;     /* file offset of the dirty bits */
    uint64_t dirty;        /* set dirty bits */
    unsigned active;       /* set activity bits */
    unsigned recovered;    /* activity bits found at open */
    uint64_t wgen;         /* writes to the file so far (counts persist() calls) */
    uint64_t sgen;         /* ... of which a finished fdatasync covers this many */
    bitmap_job_t *job;     /* sync job in flight (its caller's until its end), or NULL */
    bitmap_meta_t meta;
};

/* ---- helpers ------------------------------------------------------------------ */

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get32(const uint8_t *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static uint64_t get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static uint64_t bytes_of(uint64_t nbits)
{
    return (nbits + 7) / 8;
}

static uint64_t round_page(uint64_t n)
{
    return (n + 4095) & ~(uint64_t)4095;
}

static int pwrite_all(int fd, const uint8_t *p, size_t n, uint64_t off)
{
    while (n > 0) {
        ssize_t w = pwrite(fd, p, n, (off_t)off);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return RT_ERR;
        }
        p += w;
        n -= (size_t)w;
        off += (uint64_t)w;
    }
    return RT_OK;
}

static int pread_all(int fd, uint8_t *p, size_t n, uint64_t off)
{
    while (n > 0) {
        ssize_t r = pread(fd, p, n, (off_t)off);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return RT_ERR;
        }
        if (r == 0) {
            errno = EIO; /* short file */
            return RT_ERR;
        }
        p += r;
        n -= (size_t)r;
        off += (uint64_t)r;
    }
    return RT_OK;
}

static void hdr_encode(const bitmap_t *bm, uint8_t *h)
{
    memset(h, 0, BITMAP_HDR);
    put32(h + 0, BM_MAGIC);
    h[4] = (uint8_t)BM_VERSION;
    put32(h + 8, BITMAP_BLOCK);
    put32(h + 12, BITMAP_EXTENT);
    put64(h + 16, bm->disk_size);
    put64(h + 24, bm->meta.epoch);
    put64(h + 32, bm->meta.flags);
    put64(h + 40, bm->meta.sync_from);
    put64(h + 48, bm->meta.sync_end);
    put64(h + BM_SUMOFF, XXH64(h, BM_SUMOFF, 0));
}

/* Persist bytes [lo, hi] of the map at @base (file offset @foff). */
static int persist(bitmap_t *bm, const uint8_t *base, uint64_t foff, uint64_t lo, uint64_t hi,
                   char *err, size_t errlen)
{
    if (pwrite_all(bm->fd, base + lo, (size_t)(hi - lo + 1), foff + lo) != RT_OK)
        return rt_errf(err, errlen, "%s: write: %s", bm->path, strerror(errno));
    bm->wgen++;
    return RT_OK;
}

/* Set (@on) or clear bits [first, first+count) of @map; @return how many
 * changed, with the byte range touched in *lo..*hi (only when > 0). */
static uint64_t flip(uint8_t *map, uint64_t first, uint64_t count, bool on, uint64_t *lo,
                     uint64_t *hi)
{
    uint64_t changed = 0, b = first, end = first + count;
    bool any = false;
    while (b < end) {
        uint64_t byte = b / 8;
        unsigned bit = (unsigned)(b % 8);
        if (bit == 0 && end - b >= 8) { /* whole bytes */
            uint8_t want = on ? 0xff : 0x00;
            if (map[byte] != want) {
                uint8_t diff = (uint8_t)(map[byte] ^ want);
                changed += (uint64_t)__builtin_popcount(diff);
                map[byte] = want;
                if (!any)
                    *lo = byte;
                *hi = byte;
                any = true;
            }
            b += 8;
            continue;
        }
        uint8_t m = (uint8_t)(1u << bit);
        if (!!(map[byte] & m) != on) {
            map[byte] = on ? (uint8_t)(map[byte] | m) : (uint8_t)(map[byte] & ~m);
            changed++;
            if (!any)
                *lo = byte;
            *hi = byte;
            any = true;
        }
        b++;
    }
    return changed;
}

static bool bit_get(const uint8_t *map, uint64_t i)
{
    return (map[i / 8] >> (i % 8)) & 1u;
}

static uint64_t popcount_map(const uint8_t *map, uint64_t nbytes)
{
    uint64_t n = 0;
    for (uint64_t i = 0; i < nbytes; i++)
        n += (uint64_t)__builtin_popcount(map[i]);
    return n;
}

/* ---- open and close --------------------------------------------------------- */

static int sync_dir(const char *path)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s", path);
    int dfd = open(dirname(tmp), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return RT_ERR;
    int rc = fsync(dfd) == 0 ? RT_OK : RT_ERR;
    close(dfd);
    return rc;
}

static int create_file(bitmap_t *bm, char *err, size_t errlen)
{
    char tmp[4200];
    uint8_t h[BITMAP_HDR];
    int rc = RT_ERR;
    snprintf(tmp, sizeof tmp, "%s.tmp", bm->path);
    int fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd < 0)
        return rt_errf(err, errlen, "%s: create: %s", tmp, strerror(errno));
    hdr_encode(bm, h);
    if (pwrite_all(fd, h, sizeof h, 0) != RT_OK ||
        ftruncate(fd, (off_t)(bm->bits_off + round_page(bytes_of(bm->nblocks)))) != 0 ||
        fdatasync(fd) != 0) {
        rt_errf(err, errlen, "%s: write: %s", tmp, strerror(errno));
        goto out;
    }
    if (rename(tmp, bm->path) != 0 || sync_dir(bm->path) != RT_OK) {
        rt_errf(err, errlen, "%s: rename: %s", bm->path, strerror(errno));
        goto out;
    }
    rc = RT_OK;
out:
    close(fd);
    if (rc != RT_OK)
        unlink(tmp);
    return rc;
}

static int load(bitmap_t *bm, char *err, size_t errlen)
{
    uint8_t h[BITMAP_HDR];
    if (pread_all(bm->fd, h, sizeof h, 0) != RT_OK)
        return rt_errf(err, errlen, "%s: read header: %s", bm->path, strerror(errno));
    if (get32(h) != BM_MAGIC || get64(h + BM_SUMOFF) != XXH64(h, BM_SUMOFF, 0))
        return rt_errf(err, errlen, "%s: not a dirty bitmap, or a damaged header (move it away "
                    "to resync the whole disk)", bm->path);
    if (h[4] != BM_VERSION || get32(h + 8) != BITMAP_BLOCK || get32(h + 12) != BITMAP_EXTENT)
        return rt_errf(err, errlen, "%s: unsupported bitmap version or geometry", bm->path);
    uint64_t size = get64(h + 16);
    if (size != bm->disk_size)
        return rt_errf(err, errlen, "%s: made for a disk of %llu bytes, the disk has %llu",
                    bm->path, (unsigned long long)size, (unsigned long long)bm->disk_size);
    bm->meta.epoch = get64(h + 24);
    bm->meta.flags = get64(h + 32);
    bm->meta.sync_from = get64(h + 40);
    bm->meta.sync_end = get64(h + 48);
    if (pread_all(bm->fd, bm->act, (size_t)bytes_of(bm->nextents), bm->act_off) != RT_OK ||
        pread_all(bm->fd, bm->bits, (size_t)bytes_of(bm->nblocks), bm->bits_off) != RT_OK)
        return rt_errf(err, errlen, "%s: read: %s", bm->path, strerror(errno));
    /* bits past the end of the disk are never set */
    if (bm->nblocks % 8)
        bm->bits[bm->nblocks / 8] &= (uint8_t)((1u << (bm->nblocks % 8)) - 1);
    if (bm->nextents % 8)
        bm->act[bm->nextents / 8] &= (uint8_t)((1u << (bm->nextents % 8)) - 1);
    bm->dirty = popcount_map(bm->bits, bytes_of(bm->nblocks));
    return RT_OK;
}

/* A crash left extents active: their blocks may differ from the replica. */
static int fold_activity(bitmap_t *bm, char *err, size_t errlen)
{
    unsigned n = (unsigned)popcount_map(bm->act, bytes_of(bm->nextents));
    bm->recovered = n;
    if (n == 0)
        return RT_OK;
    for (uint64_t e = 0; e < bm->nextents; e++)
        if (bit_get(bm->act, e) &&
            bitmap_set(bm, e * BITMAP_EXTENT, BITMAP_EXTENT, err, errlen) != RT_OK)
            return RT_ERR;
    bm->active = n;
    if (bitmap_sync(bm, err, errlen) != RT_OK) /* the bits before the marks go */
        return RT_ERR;
    return bitmap_quiesce(bm, err, errlen);
}

bitmap_t *bitmap_open(const char *path, uint64_t disk_size, bool create, bool *created, char *err,
                      size_t errlen)
{
    bitmap_t *bm = calloc(1, sizeof *bm);
    if (!bm) {
        rt_errf(err, errlen, "%s: out of memory", path);
        return NULL;
    }
    bm->fd = -1;
    if (created)
        *created = false;
    if (snprintf(bm->path, sizeof bm->path, "%s", path) >= (int)sizeof bm->path) {
        rt_errf(err, errlen, "bitmap path too long");
        goto fail;
    }
    bm->disk_size = disk_size;
    bm->nblocks = (disk_size + BITMAP_BLOCK - 1) / BITMAP_BLOCK;
    bm->nextents = (disk_size + BITMAP_EXTENT - 1) / BITMAP_EXTENT;
    bm->act_off = BITMAP_HDR;
    bm->bits_off = bm->act_off + round_page(bytes_of(bm->nextents));
    bm->bits = calloc(1, (size_t)bytes_of(bm->nblocks) + 1);
    bm->act = calloc(1, (size_t)bytes_of(bm->nextents) + 1);
    if (!bm->bits || !bm->act) {
        rt_errf(err, errlen, "%s: out of memory for %llu blocks", path,
             (unsigned long long)bm->nblocks);
        goto fail;
    }
    struct stat st;
    if (stat(path, &st) != 0) {
        if (errno != ENOENT || !create) {
            rt_errf(err, errlen, "%s: %s", path, strerror(errno));
            goto fail;
        }
        if (create_file(bm, err, errlen) != RT_OK)
            goto fail;
        if (created)
            *created = true;
    }
    bm->fd = open(path, O_RDWR | O_CLOEXEC);
    if (bm->fd < 0) {
        rt_errf(err, errlen, "%s: open: %s", path, strerror(errno));
        goto fail;
    }
    if (load(bm, err, errlen) != RT_OK || fold_activity(bm, err, errlen) != RT_OK)
        goto fail;
    return bm;
fail:
    bitmap_close(bm);
    return NULL;
}

void bitmap_close(bitmap_t *bm)
{
    if (!bm)
        return;
    if (bm->fd >= 0)
        close(bm->fd);
    free(bm->bits);
    free(bm->act);
    free(bm);
}

/* ---- dirty bits ----------------------------------------------------------------- */

int bitmap_set(bitmap_t *bm, uint64_t off, uint64_t len, char *err, size_t errlen)
{
    if (len == 0 || off >= bm->disk_size)
        return RT_OK;
    if (len > bm->disk_size - off)
        len = bm->disk_size - off;
    uint64_t first = off / BITMAP_BLOCK, last = (off + len - 1) / BITMAP_BLOCK, lo = 0, hi = 0;
    uint64_t n = flip(bm->bits, first, last - first + 1, true, &lo, &hi);
    if (n == 0)
        return RT_OK;
    bm->dirty += n;
    return persist(bm, bm->bits, bm->bits_off, lo, hi, err, errlen);
}

int bitmap_clear(bitmap_t *bm, uint64_t first, uint64_t count, char *err, size_t errlen)
{
    if (first >= bm->nblocks || count == 0)
        return RT_OK;
    if (count > bm->nblocks - first)
        count = bm->nblocks - first;
    uint64_t lo = 0, hi = 0;
    uint64_t n = flip(bm->bits, first, count, false, &lo, &hi);
    if (n == 0)
        return RT_OK;
    bm->dirty -= n;
    return persist(bm, bm->bits, bm->bits_off, lo, hi, err, errlen);
}

bool bitmap_test(const bitmap_t *bm, uint64_t block)
{
    return block < bm->nblocks && bit_get(bm->bits, block);
}

int bitmap_next(const bitmap_t *bm, uint64_t from, uint64_t max, uint64_t *first,
                uint64_t *count)
{
    uint64_t b = from;
    if (bm->dirty == 0)
        return BITMAP_END;
    while (b < bm->nblocks) {
        if (b % 64 == 0 && b + 64 <= bm->nblocks) { /* skip clear words fast */
            uint64_t w;
            memcpy(&w, bm->bits + b / 8, 8);
            if (w == 0) {
                b += 64;
                continue;
            }
        }
        if (bit_get(bm->bits, b))
            break;
        b++;
    }
    if (b >= bm->nblocks)
        return BITMAP_END;
    uint64_t n = 0;
    while (b + n < bm->nblocks && n < max) {
        uint64_t i = b + n, w;
        if (i % 64 == 0 && i + 64 <= bm->nblocks && max - n >= 64) { /* whole set words */
            memcpy(&w, bm->bits + i / 8, 8);
            if (w == UINT64_MAX) {
                n += 64;
                continue;
            }
        }
        if (!bit_get(bm->bits, i))
            break;
        n++;
    }
    *first = b;
    *count = n;
    return RT_OK;
}

uint64_t bitmap_blocks(const bitmap_t *bm)
{
    return bm->nblocks;
}

uint64_t bitmap_dirty_blocks(const bitmap_t *bm)
{
    return bm->dirty;
}

uint64_t bitmap_dirty_bytes(const bitmap_t *bm)
{
    uint64_t bytes = bm->dirty * BITMAP_BLOCK;
    uint64_t tail = bm->disk_size % BITMAP_BLOCK;
    if (tail && bm->dirty && bit_get(bm->bits, bm->nblocks - 1))
        bytes -= BITMAP_BLOCK - tail;
    return bytes;
}

uint64_t bitmap_disk_size(const bitmap_t *bm)
{
    return bm->disk_size;
}

/* ---- activity map ------------------------------------------------------------------ */

int bitmap_activate(bitmap_t *bm, uint64_t off, uint64_t len, char *err, size_t errlen)
{
    if (len == 0 || off >= bm->disk_size)
        return RT_OK;
    if (len > bm->disk_size - off)
        len = bm->disk_size - off;
    uint64_t first = off / BITMAP_EXTENT, last = (off + len - 1) / BITMAP_EXTENT, lo = 0, hi = 0;
    uint64_t n = flip(bm->act, first, last - first + 1, true, &lo, &hi);
    if (n == 0)
        return RT_OK;
    bm->active += (unsigned)n;
    return persist(bm, bm->act, bm->act_off, lo, hi, err, errlen);
}

int bitmap_quiesce(bitmap_t *bm, char *err, size_t errlen)
{
    if (bm->active == 0)
        return RT_OK;
    uint64_t lo = 0, hi = 0;
    uint64_t n = flip(bm->act, 0, bm->nextents, false, &lo, &hi);
    bm->active = 0;
    if (n == 0)
        return RT_OK;
    return persist(bm, bm->act, bm->act_off, lo, hi, err, errlen);
}

unsigned bitmap_active(const bitmap_t *bm)
{
    return bm->active;
}

unsigned bitmap_recovered(const bitmap_t *bm)
{
    return bm->recovered;
}

/* ---- durability and meta ------------------------------------------------------------ */

int bitmap_sync(bitmap_t *bm, char *err, size_t errlen)
{
    if (bm->sgen == bm->wgen)
        return RT_OK;
    if (fdatasync(bm->fd) != 0)
        return rt_errf(err, errlen, "%s: fdatasync: %s", bm->path, strerror(errno));
    bm->sgen = bm->wgen;
    return RT_OK;
}

/* A sync job: a descriptor of its own (the bitmap may be closed meanwhile)
 * and the write count it covers. */
struct bitmap_job {
    const bitmap_t *bm; /* for bitmap_sync_end() to tell its own jobs (compared only) */
    int fd;
    uint64_t gen;
    int err;            /* errno of the fdatasync, 0 when it worked */
};

int bitmap_sync_begin(bitmap_t *bm, bitmap_job_t **job, char *err, size_t errlen)
{
    *job = NULL;
    if (bm->sgen == bm->wgen)
        return RT_OK;
    if (bm->job)
        return RT_AGAIN;
    bitmap_job_t *j = calloc(1, sizeof *j);
    if (!j)
        return rt_errf(err, errlen, "%s: out of memory", bm->path);
    j->fd = fcntl(bm->fd, F_DUPFD_CLOEXEC, 0);
    if (j->fd < 0) {
        free(j);
        return rt_errf(err, errlen, "%s: duplicate a descriptor: %s", bm->path, strerror(errno));
    }
    j->bm = bm;
    j->gen = bm->wgen;
    bm->job = j;
    *job = j;
    return RT_OK;
}

void bitmap_job_run(void *job)
{
    bitmap_job_t *j = job;
    j->err = fdatasync(j->fd) == 0 ? 0 : errno;
}

int bitmap_sync_end(bitmap_t *bm, bitmap_job_t *job, char *err, size_t errlen)
{
    int rc = RT_OK;
    if (!job)
        return RT_OK;
    if (bm && bm->job == job) {
        bm->job = NULL;
        if (job->err)
            rc = rt_errf(err, errlen, "%s: fdatasync: %s", bm->path, strerror(job->err));
        else if (job->gen > bm->sgen)
            bm->sgen = job->gen;
    }
    bitmap_job_free(job);
    return rc;
}

void bitmap_job_free(bitmap_job_t *job)
{
    if (!job)
        return;
    close(job->fd);
    free(job);
}

const bitmap_meta_t *bitmap_meta(const bitmap_t *bm)
{
    return &bm->meta;
}

int bitmap_set_meta(bitmap_t *bm, const bitmap_meta_t *meta, char *err, size_t errlen)
{
    uint8_t h[BITMAP_HDR];
    bm->meta = *meta;
    if (bitmap_sync(bm, err, errlen) != RT_OK)
        return RT_ERR;
    hdr_encode(bm, h);
    if (pwrite_all(bm->fd, h, sizeof h, 0) != RT_OK || fdatasync(bm->fd) != 0)
        return rt_errf(err, errlen, "%s: write header: %s", bm->path, strerror(errno));
    return RT_OK;
}
