/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * seglog.c: the segmented append-only log (see seglog.h and FORMAT.md).
 *
 * Shared by the agent's write log, the process server's spool and the master
 * target's journal, so that crash recovery is written and tested once. The
 * log keeps a small table of its segments (name, first and last sequence,
 * valid bytes) and the descriptor of the active segment; sealed segments are
 * read through a small descriptor cache. Only the active segment is ever
 * written, and it is the only one whose tail recovery may cut.
 *
 * Jobs (seglog.h): a commit job holds a dup of the active segment's
 * descriptor, so a rollover or close during its fdatasync is harmless; a
 * reap job holds a descriptor of the folder opened anew (a dup of dirfd
 * would share its flock and keep the folder locked after a close), and the
 * names it deletes are copied in the log (reaping[]) so that a reset can
 * delete them first itself without reading the job.
 */
#include "seglog.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <xxhash.h>

#include "rt.h"

#define FDCACHE      8u          /* read descriptors of sealed segments kept open */
#define RD_INIT      (1u << 20)  /* first read buffer size */
#define NAME_DIGITS  20u
#define NAME_LEN     (NAME_DIGITS + 4u) /* "%020" PRIu64 ".seg" */

typedef struct seg {
    uint64_t base;  /* name: the first sequence this segment covers */
    uint64_t first; /* first record's seq, 0 when empty */
    uint64_t last;  /* last record's seq; base - 1 when empty */
    uint64_t size;  /* valid bytes: segment header + whole records */
    uint64_t nrec;  /* records */
} seg_t;

/* A buffered sequential reader over one segment file. */
typedef struct rd {
    int fd;         /* not owned */
    uint8_t *buf;   /* bcap bytes */
    size_t bcap;
    uint64_t boff;  /* file offset of buf[0] */
    size_t blen;    /* valid bytes in buf */
} rd_t;

struct seglog {
    char *dir;
    int dirfd;              /* holds the flock */
    bool readonly;
    bool failed;            /* a write or sync failed: refuse more until reopened */
    uint64_t seg_max;
    seg_t *segs;            /* ordered by base; the last is the active one */
    unsigned nsegs, capsegs;
    uint64_t empty_next;    /* next seq of a read-only log without segments */
    int afd;                /* active segment, read-write (-1 when read-only) */
    uint64_t durable;       /* highest durable seq */
    uint64_t nrec;          /* records in the log */
    uint64_t recovered;     /* tail bytes cut or ignored at open */
    const char *recovered_why;
    uint64_t reset_gen;     /* bumped by reset: iterators and jobs from before give up */
    bool defer_unlink;      /* trim queues names in dead[] for reap jobs */
    bool no_sync;           /* never fdatasync or fsync (conf.no_sync) */
    seglog_job_t *cjob;     /* commit job in flight (its caller's until its end) */
    seglog_job_t *rjob;     /* reap job in flight */
    uint64_t dead[SEGLOG_DEAD_MAX];    /* trimmed, not handed to a reap job, oldest first */
    unsigned ndead;
    uint64_t reaping[SEGLOG_DEAD_MAX]; /* names the reap job in flight deletes */
    unsigned nreaping;
    struct {
        uint64_t base;
        int fd;
    } fdc[FDCACHE];
    unsigned fdc_next;
};

enum { JOB_COMMIT = 1, JOB_REAP };

struct seglog_job {
    int kind;           /* JOB_COMMIT or JOB_REAP */
    bool no_sync;       /* JOB_REAP: no folder fsync after the deletes */
    uint64_t gen;       /* the log's reset_gen at begin */
    uint64_t seq;       /* commit: durable once the sync succeeded */
    uint64_t seg;       /* commit: the segment synced */
    int fd;             /* commit: dup of the active segment; reap: the folder */
    unsigned n, done;   /* reap: names, names deleted */
    uint64_t bases[SEGLOG_DEAD_MAX];
    int err;            /* errno of the first failure, 0 */
};

struct seglog_iter {
    seglog_t *l;
    uint64_t from;      /* records below are skipped */
    uint64_t gen;       /* l->reset_gen at creation */
    bool verify;
    bool have_prev;
    uint64_t prev;      /* seq of the last record passed */
    bool in_seg;
    uint64_t seg;       /* current segment's name */
    uint64_t seg_size;  /* its size as last seen */
    uint64_t pos;       /* next record header in it */
    int fd;
    rd_t rd;
    uint8_t *scratch;   /* WREC_MAX_DATA bytes, for LZ4 verification */
    uint64_t checked;   /* pos + 1 of a record already verified by a peek */
};

/* ---- helpers ------------------------------------------------------------------ */

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void seg_name(char *out, size_t n, uint64_t base, const char *suffix)
{
    snprintf(out, n, "%020" PRIu64 ".seg%s", base, suffix);
}

/* "NNNNNNNNNNNNNNNNNNNN.seg" -> base; false for anything else */
static bool parse_name(const char *s, uint64_t *base)
{
    uint64_t v = 0;

    if (strlen(s) != NAME_LEN || strcmp(s + NAME_DIGITS, ".seg") != 0)
        return false;
    for (unsigned i = 0; i < NAME_DIGITS; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        if (v > (UINT64_MAX - (uint64_t)(s[i] - '0')) / 10u)
            return false;
        v = v * 10u + (uint64_t)(s[i] - '0');
    }
    *base = v;
    return v > 0; /* sequence numbers start at 1 */
}

static int pread_all(int fd, void *buf, size_t len, uint64_t off)
{
    uint8_t *p = buf;

    while (len > 0) {
        ssize_t n = pread(fd, p, len, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return RT_ERR;
        if (n == 0) {
            errno = EIO; /* shorter than the table says */
            return RT_ERR;
        }
        p += n;
        len -= (size_t)n;
        off += (uint64_t)n;
    }
    return RT_OK;
}

static int pwritev_all(int fd, struct iovec *iov, int cnt, uint64_t off)
{
    while (cnt > 0) {
        ssize_t n = pwritev(fd, iov, cnt, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return RT_ERR;
        off += (uint64_t)n;
        while (cnt > 0 && (size_t)n >= iov->iov_len) {
            n -= (ssize_t)iov->iov_len;
            iov++;
            cnt--;
        }
        if (cnt > 0) {
            iov->iov_base = (uint8_t *)iov->iov_base + n;
            iov->iov_len -= (size_t)n;
        }
    }
    return RT_OK;
}

/* fdatasync(@fd) unless the log is no_sync */
static int datasync(const seglog_t *l, int fd)
{
    return l->no_sync ? 0 : fdatasync(fd);
}

static int sync_dir(seglog_t *l, char *err, size_t errlen)
{
    if (!l->no_sync && fsync(l->dirfd) != 0)
        return rt_errf(err, errlen, "%s: fsync of the folder: %s", l->dir, strerror(errno));
    return RT_OK;
}

/* ---- segment header ------------------------------------------------------------ */

static void seghdr_encode(uint8_t *p, uint64_t base, uint64_t seg_max)
{
    memset(p, 0, SEGLOG_HDR_SIZE);
    p[0] = 'S';
    p[1] = 'S';
    p[2] = 'S';
    p[3] = 'G';
    p[4] = SEGLOG_VERSION & 0xff;
    p[5] = 0;
    p[6] = SEGLOG_HDR_SIZE & 0xff;
    p[7] = 0;
    put64(p + 8, base);
    put64(p + 16, now_us());
    put64(p + 24, seg_max);
    put64(p + 56, XXH64(p, 56, 0));
}

static const char *seghdr_check(const uint8_t *p, uint64_t base)
{
    if (memcmp(p, "SSSG", 4) != 0)
        return "bad segment magic";
    if (get64(p + 56) != XXH64(p, 56, 0))
        return "segment header checksum mismatch";
    if (p[4] != SEGLOG_VERSION || p[5] != 0)
        return "unsupported segment version";
    if (p[6] != SEGLOG_HDR_SIZE || p[7] != 0)
        return "unexpected segment header size";
    if (get64(p + 8) != base)
        return "segment header does not match its file name";
    return NULL;
}

/* ---- the segment table and descriptors -------------------------------------------- */

static seg_t *seg_find(const seglog_t *l, uint64_t base)
{
    unsigned lo = 0, hi = l->nsegs;

    while (lo < hi) {
        unsigned mid = lo + (hi - lo) / 2;
        if (l->segs[mid].base < base)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < l->nsegs && l->segs[lo].base == base ? &l->segs[lo] : NULL;
}

/* index of the last segment with base <= seq (0 if seq is below all) */
static unsigned seg_index_for(const seglog_t *l, uint64_t seq)
{
    unsigned lo = 0, hi = l->nsegs;

    while (lo < hi) {
        unsigned mid = lo + (hi - lo) / 2;
        if (l->segs[mid].base <= seq)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo > 0 ? lo - 1 : 0;
}

static seg_t *seg_push(seglog_t *l, uint64_t base)
{
    if (l->nsegs == l->capsegs) {
        unsigned ncap = l->capsegs ? l->capsegs * 2 : 16;
        seg_t *n = realloc(l->segs, ncap * sizeof *n);
        if (!n)
            return NULL;
        l->segs = n;
        l->capsegs = ncap;
    }
    seg_t *s = &l->segs[l->nsegs++];
    *s = (seg_t){ .base = base, .last = base - 1, .size = SEGLOG_HDR_SIZE };
    return s;
}

static seg_t *active(seglog_t *l)
{
    return &l->segs[l->nsegs - 1];
}

static void fdc_drop(seglog_t *l, uint64_t base)
{
    for (unsigned i = 0; i < FDCACHE; i++) {
        if (l->fdc[i].fd >= 0 && l->fdc[i].base == base) {
            close(l->fdc[i].fd);
            l->fdc[i].fd = -1;
        }
    }
}

static int open_seg(const seglog_t *l, uint64_t base, int flags)
{
    char name[NAME_LEN + 8];

    seg_name(name, sizeof name, base, "");
    return openat(l->dirfd, name, flags | O_CLOEXEC);
}

/* a descriptor to read segment @base; owned by the log */
static int seg_fd(seglog_t *l, uint64_t base)
{
    if (l->afd >= 0 && l->nsegs > 0 && active(l)->base == base)
        return l->afd;
    for (unsigned i = 0; i < FDCACHE; i++)
        if (l->fdc[i].fd >= 0 && l->fdc[i].base == base)
            return l->fdc[i].fd;
    int fd = open_seg(l, base, O_RDONLY);
    if (fd < 0)
        return -1;
    unsigned i = l->fdc_next++ % FDCACHE;
    if (l->fdc[i].fd >= 0)
        close(l->fdc[i].fd);
    l->fdc[i].fd = fd;
    l->fdc[i].base = base;
    return fd;
}

/* Create segment @base: temp file, header, fdatasync, rename, folder fsync.
 * On success the new segment is the active one (afd). */
static int seg_create(seglog_t *l, uint64_t base, char *err, size_t errlen)
{
    char tmp[NAME_LEN + 8], name[NAME_LEN + 8];
    uint8_t hdr[SEGLOG_HDR_SIZE];
    bool named = false;
    int fd;

    seg_name(tmp, sizeof tmp, base, ".tmp");
    seg_name(name, sizeof name, base, "");
    fd = openat(l->dirfd, tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd < 0)
        return rt_errf(err, errlen, "%s/%s: create: %s", l->dir, tmp, strerror(errno));
    seghdr_encode(hdr, base, l->seg_max);
    struct iovec iov = { hdr, sizeof hdr };
    if (pwritev_all(fd, &iov, 1, 0) != RT_OK || datasync(l, fd) != 0) {
        rt_errf(err, errlen, "%s/%s: write: %s", l->dir, tmp, strerror(errno));
        goto fail;
    }
    if (renameat(l->dirfd, tmp, l->dirfd, name) != 0) {
        rt_errf(err, errlen, "%s/%s: rename: %s", l->dir, name, strerror(errno));
        goto fail;
    }
    named = true;
    if (sync_dir(l, err, errlen) != RT_OK)
        goto fail;
    if (!seg_push(l, base)) {
        rt_errf(err, errlen, "%s: out of memory", l->dir);
        goto fail;
    }
    if (l->afd >= 0)
        close(l->afd);
    l->afd = fd;
    return RT_OK;

fail:
    /* a file not in the table must not stay under a segment's name */
    unlinkat(l->dirfd, named ? name : tmp, 0);
    if (named)
        fsync(l->dirfd);
    close(fd);
    return RT_ERR;
}

/* ---- buffered reader ---------------------------------------------------------------- */

enum { RD_SHORT = 1 };

/* Make [pos, pos+need) of the file available at *out, reading at most up to
 * @limit. @return RT_OK, RD_SHORT if pos+need > limit, RT_ERR (I/O; errno). */
static int rd_get(rd_t *r, uint64_t pos, size_t need, uint64_t limit, const uint8_t **out)
{
    if (pos > limit || need > limit - pos)
        return RD_SHORT;
    if (pos >= r->boff && pos + need <= r->boff + r->blen) {
        *out = r->buf + (pos - r->boff);
        return RT_OK;
    }
    if (need > r->bcap) {
        size_t ncap = r->bcap ? r->bcap : RD_INIT;
        while (ncap < need)
            ncap *= 2;
        if (ncap > WREC_MAX_SIZE && need <= WREC_MAX_SIZE)
            ncap = WREC_MAX_SIZE; /* enough for any record */
        uint8_t *nb = realloc(r->buf, ncap);
        if (!nb) {
            errno = ENOMEM;
            return RT_ERR;
        }
        r->buf = nb;
        r->bcap = ncap;
    }
    size_t want = r->bcap;
    if (want > limit - pos)
        want = (size_t)(limit - pos);
    r->boff = pos;
    r->blen = 0;
    while (r->blen < need) {
        ssize_t n = pread(r->fd, r->buf + r->blen, want - r->blen, (off_t)(pos + r->blen));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return RT_ERR;
        if (n == 0)
            return RD_SHORT; /* the file is shorter than the limit */
        r->blen += (size_t)n;
    }
    *out = r->buf;
    return RT_OK;
}

/* ---- open and recovery ----------------------------------------------------------------- */

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* list segment names; remove temp files when writable */
static int list_segs(seglog_t *l, uint64_t **out, unsigned *n, char *err, size_t errlen)
{
    int fd = dup(l->dirfd);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    uint64_t *v = NULL;
    unsigned cnt = 0, cap = 0;
    bool removed = false;
    struct dirent *e;

    if (!d) {
        if (fd >= 0)
            close(fd);
        return rt_errf(err, errlen, "%s: read folder: %s", l->dir, strerror(errno));
    }
    rewinddir(d);
    while ((e = readdir(d)) != NULL) {
        uint64_t base;
        size_t nl = strlen(e->d_name);
        if (!l->readonly && nl > 8 && strcmp(e->d_name + nl - 8, ".seg.tmp") == 0) {
            unlinkat(l->dirfd, e->d_name, 0); /* a segment whose creation did not finish */
            removed = true;
            continue;
        }
        if (!parse_name(e->d_name, &base))
            continue;
        if (cnt == cap) {
            unsigned ncap = cap ? cap * 2 : 16;
            uint64_t *nv = realloc(v, ncap * sizeof *nv);
            if (!nv) {
                free(v);
                closedir(d);
                return rt_errf(err, errlen, "%s: out of memory", l->dir);
            }
            v = nv;
            cap = ncap;
        }
        v[cnt++] = base;
    }
    closedir(d);
    if (cnt > 1)
        qsort(v, cnt, sizeof *v, cmp_u64);
    *out = v;
    *n = cnt;
    if (removed && sync_dir(l, err, errlen) != RT_OK) {
        free(v);
        return RT_ERR;
    }
    return RT_OK;
}

/* Scan one segment. Sealed segments (not @tail) get a header walk unless
 * @verify; the tail gets every record read and verified. Stops at the first
 * bad record: *bad gets the reason (NULL if none) and s->size the good end. */
static int scan_seg(seglog_t *l, seg_t *s, int fd, uint64_t fsize, bool full,
                    const seglog_conf_t *conf, rd_t *rd, uint8_t **scratch, const char **bad,
                    char *err, size_t errlen)
{
    uint64_t pos = SEGLOG_HDR_SIZE, prev = s->base - 1;
    const char *why = NULL;

    *bad = NULL;
    rd->fd = fd;
    rd->blen = 0;
    while (pos < fsize) {
        wrec_hdr_t h;
        const uint8_t *p;
        uint8_t hb[WREC_HDR_SIZE];
        int r;

        if (full) {
            r = rd_get(rd, pos, WREC_HDR_SIZE, fsize, &p);
        } else if (fsize - pos < WREC_HDR_SIZE) {
            r = RD_SHORT;
        } else {
            r = pread_all(fd, hb, sizeof hb, pos);
            p = hb;
        }
        if (r == RT_ERR)
            return rt_errf(err, errlen, "%s: read segment %" PRIu64 ": %s", l->dir, s->base,
                        strerror(errno));
        if (r == RD_SHORT) {
            why = "record header cut short";
            break;
        }
        if (wrec_hdr_decode(p, &h, &why) != RT_OK)
            break;
        if (h.seq - h.skip != prev + 1) {
            why = "record out of sequence";
            break;
        }
        if (fsize - pos < wrec_size(&h)) {
            why = "record payload cut short";
            break;
        }
        if (full) {
            r = rd_get(rd, pos, wrec_size(&h), fsize, &p);
            if (r == RT_ERR)
                return rt_errf(err, errlen, "%s: read segment %" PRIu64 ": %s", l->dir, s->base,
                            strerror(errno));
            if (r == RD_SHORT) {
                why = "record payload cut short";
                break;
            }
            if ((h.flags & WREC_F_LZ4) && !*scratch) {
                *scratch = malloc(WREC_MAX_DATA);
                if (!*scratch)
                    return rt_errf(err, errlen, "%s: out of memory", l->dir);
            }
            if (wrec_verify(&h, p + WREC_HDR_SIZE, *scratch, WREC_MAX_DATA, NULL, &why) != RT_OK)
                break;
        }
        if (conf->on_rec) {
            seglog_loc_t loc = { s->base, pos };
            conf->on_rec(conf->arg, &h, full ? p + WREC_HDR_SIZE : NULL, &loc);
        }
        if (s->nrec++ == 0)
            s->first = h.seq;
        s->last = prev = h.seq;
        pos += wrec_size(&h);
    }
    s->size = pos;
    *bad = why;
    return RT_OK;
}

static int recover(seglog_t *l, const seglog_conf_t *conf, const uint64_t *bases, unsigned n,
                   char *err, size_t errlen)
{
    rd_t rd = { .fd = -1 };
    uint8_t *scratch = NULL;
    int rc = RT_ERR;

    for (unsigned i = 0; i < n; i++) {
        bool tail = (i == n - 1);
        uint8_t hdr[SEGLOG_HDR_SIZE];
        const char *why = NULL;
        struct stat st;
        int fd = open_seg(l, bases[i], l->readonly ? O_RDONLY : O_RDWR);

        if (fd < 0 || fstat(fd, &st) != 0) {
            rt_errf(err, errlen, "%s: open segment %" PRIu64 ": %s", l->dir, bases[i],
                 strerror(errno));
            if (fd >= 0)
                close(fd);
            goto out;
        }
        if (st.st_size < (off_t)SEGLOG_HDR_SIZE)
            why = "segment shorter than its header";
        else if (pread_all(fd, hdr, sizeof hdr, 0) != RT_OK)
            why = "segment header unreadable";
        else
            why = seghdr_check(hdr, bases[i]);
        if (!why && i > 0 && bases[i] != l->segs[i - 1].last + 1)
            why = "sequence gap before this segment (a segment is missing)";
        if (why) {
            close(fd);
            if (l->readonly && i > 0) {
                /* read-only: the log ends before the damage */
                l->recovered_why = why;
                break;
            }
            rt_errf(err, errlen, "%s: segment %" PRIu64 ": %s; the log cannot be opened", l->dir,
                 bases[i], why);
            goto out;
        }
        seg_t *s = seg_push(l, bases[i]);
        if (!s) {
            close(fd);
            rt_errf(err, errlen, "%s: out of memory", l->dir);
            goto out;
        }
        if (scan_seg(l, s, fd, (uint64_t)st.st_size, tail || conf->verify_all, conf, &rd,
                     &scratch, &why, err, errlen) != RT_OK) {
            close(fd);
            goto out;
        }
        if (!why && s->size != (uint64_t)st.st_size)
            why = "trailing bytes";
        if (why && !tail && !l->readonly) {
            close(fd);
            rt_errf(err, errlen,
                 "%s: sealed segment %" PRIu64 " is damaged at byte %" PRIu64
                 ": %s; the log cannot be opened (restore the file or move the folder away)",
                 l->dir, s->base, s->size, why);
            goto out;
        }
        if (why) {
            l->recovered = (uint64_t)st.st_size - s->size;
            l->recovered_why = why;
            if (!l->readonly) {
                if (ftruncate(fd, (off_t)s->size) != 0 || datasync(l, fd) != 0) {
                    rt_errf(err, errlen, "%s: cut segment %" PRIu64 ": %s", l->dir, s->base,
                         strerror(errno));
                    close(fd);
                    goto out;
                }
            }
        }
        l->nrec += s->nrec;
        if (tail && !l->readonly) {
            l->afd = fd;
        } else {
            close(fd);
        }
        if (why)
            break; /* read-only: damage ends the log here */
    }
    rc = RT_OK;
out:
    free(rd.buf);
    free(scratch);
    return rc;
}

seglog_t *seglog_open(const char *dir, const seglog_conf_t *conf, char *err, size_t errlen)
{
    seglog_t *l = calloc(1, sizeof *l);
    uint64_t *bases = NULL;
    unsigned n = 0;
    uint64_t first_seq = conf->first_seq ? conf->first_seq : 1;

    if (!l) {
        rt_errf(err, errlen, "%s: out of memory", dir);
        return NULL;
    }
    l->dirfd = -1;
    l->afd = -1;
    for (unsigned i = 0; i < FDCACHE; i++)
        l->fdc[i].fd = -1;
    l->readonly = conf->readonly;
    l->defer_unlink = conf->defer_unlink;
    l->no_sync = conf->no_sync;
    l->seg_max = conf->seg_max ? conf->seg_max : SEGLOG_SEG_MAX_DEFAULT;
    l->recovered_why = "";
    l->dir = strdup(dir);
    if (!l->dir) {
        rt_errf(err, errlen, "%s: out of memory", dir);
        goto fail;
    }
    if (l->seg_max < SEGLOG_SEG_MAX_MIN) {
        rt_errf(err, errlen, "%s: segment size %" PRIu64 " below the minimum %llu", dir,
             l->seg_max, (unsigned long long)SEGLOG_SEG_MAX_MIN);
        goto fail;
    }
    if (conf->create && !conf->readonly && mkdir(dir, 0750) != 0 && errno != EEXIST) {
        rt_errf(err, errlen, "%s: create folder: %s", dir, strerror(errno));
        goto fail;
    }
    l->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (l->dirfd < 0) {
        rt_errf(err, errlen, "%s: open folder: %s", dir, strerror(errno));
        goto fail;
    }
    if (flock(l->dirfd, (conf->readonly ? LOCK_SH : LOCK_EX) | LOCK_NB) != 0) {
        rt_errf(err, errlen, "%s: %s", dir,
             errno == EWOULDBLOCK ? "in use by another process (stop the node that has it open)"
                                  : strerror(errno));
        goto fail;
    }
    if (list_segs(l, &bases, &n, err, errlen) != RT_OK)
        goto fail;
    if (n == 0) {
        if (l->readonly) {
            l->empty_next = first_seq;
        } else if (!conf->create) {
            rt_errf(err, errlen, "%s: no segments (not a log, or never created)", dir);
            goto fail;
        } else if (seg_create(l, first_seq, err, errlen) != RT_OK) {
            goto fail;
        }
    } else if (recover(l, conf, bases, n, err, errlen) != RT_OK) {
        if (!conf->no_sync || !conf->create || l->readonly)
            goto fail;
        /* an unsynced log that does not recover (a power loss) holds
         * nothing its owner relies on: start it afresh */
        char name[NAME_LEN + 8];
        struct stat st;
        l->recovered = 0;
        for (unsigned i = 0; i < n; i++) {
            seg_name(name, sizeof name, bases[i], "");
            fdc_drop(l, bases[i]);
            if (fstatat(l->dirfd, name, &st, 0) == 0)
                l->recovered += (uint64_t)st.st_size;
            if (unlinkat(l->dirfd, name, 0) != 0 && errno != ENOENT) {
                rt_errf(err, errlen, "%s/%s: delete: %s", dir, name, strerror(errno));
                goto fail;
            }
        }
        l->nsegs = 0;
        l->nrec = 0;
        if (l->afd >= 0)
            close(l->afd);
        l->afd = -1;
        if (seg_create(l, first_seq, err, errlen) != RT_OK)
            goto fail;
        l->recovered_why = "the log did not recover and was started afresh (no_sync)";
    }
    free(bases);
    l->durable = seglog_last_seq(l);
    return l;
fail:
    free(bases);
    seglog_close(l);
    return NULL;
}

void seglog_close(seglog_t *l)
{
    if (!l)
        return;
    for (unsigned i = 0; i < FDCACHE; i++)
        if (l->fdc[i].fd >= 0)
            close(l->fdc[i].fd);
    if (l->afd >= 0)
        close(l->afd);
    if (l->dirfd >= 0)
        close(l->dirfd); /* drops the flock */
    free(l->segs);
    free(l->dir);
    free(l);
}

/* ---- append and commit ------------------------------------------------------------------ */

static int writable(seglog_t *l, char *err, size_t errlen)
{
    if (l->readonly)
        return rt_errf(err, errlen, "%s: opened read-only", l->dir);
    if (l->failed)
        return rt_errf(err, errlen, "%s: an earlier write or sync failed; reopen the log", l->dir);
    return RT_OK;
}

/* appended records are not all durable yet (a commit job in flight counts
 * as not yet: only its end raises durable) */
static bool unsynced(const seglog_t *l)
{
    return l->durable < seglog_last_seq(l);
}

/* Seal the active segment (sync it) and start segment @base. */
static int rollover(seglog_t *l, uint64_t base, char *err, size_t errlen)
{
    if (unsynced(l)) {
        if (datasync(l, l->afd) != 0) {
            l->failed = true;
            return rt_errf(err, errlen, "%s: sync segment %" PRIu64 ": %s", l->dir,
                        active(l)->base, strerror(errno));
        }
        l->durable = seglog_last_seq(l);
    }
    return seg_create(l, base, err, errlen);
}

/* the active segment is full for a record of @size bytes */
static bool full_for(seglog_t *l, uint64_t size)
{
    const seg_t *a = active(l);
    return a->nrec > 0 && a->size + size > l->seg_max;
}

static void account(seglog_t *l, const wrec_hdr_t *h)
{
    seg_t *a = active(l);

    if (a->nrec++ == 0)
        a->first = h->seq;
    a->last = h->seq;
    a->size += wrec_size(h);
    l->nrec++;
}

/* write @iov at the end of the active segment; undo a partial write */
static int write_tail(seglog_t *l, struct iovec *iov, int cnt, char *err, size_t errlen)
{
    seg_t *a = active(l);

    if (pwritev_all(l->afd, iov, cnt, a->size) == RT_OK)
        return RT_OK;
    int e = errno;
    if (ftruncate(l->afd, (off_t)a->size) != 0)
        l->failed = true; /* the file may now disagree with the table */
    return rt_errf(err, errlen, "%s: write segment %" PRIu64 ": %s", l->dir, a->base, strerror(e));
}

int seglog_append(seglog_t *l, const void *recs, size_t len, seglog_rec_fn fn, void *arg,
                  char *err, size_t errlen)
{
    const uint8_t *p = recs;
    wrec_cursor_t c;
    wrec_hdr_t h;
    const char *why = NULL;
    uint64_t prev = seglog_last_seq(l);
    int r;

    if (writable(l, err, errlen) != RT_OK)
        return RT_ERR;
    /* check everything first: all or nothing */
    wrec_cursor_init(&c, recs, len);
    while ((r = wrec_cursor_next(&c, &h, NULL, &why)) == RT_OK) {
        if (h.seq - h.skip != prev + 1)
            return rt_errf(err, errlen,
                        "%s: record %" PRIu64 " (skip %" PRIu32 ") does not follow %" PRIu64,
                        l->dir, h.seq, h.skip, prev);
        prev = h.seq;
    }
    if (r != WREC_END)
        return rt_errf(err, errlen, "%s: bad record at batch byte %zu: %s", l->dir, c.pos, why);

    size_t pos = 0;
    while (pos < len) {
        wrec_hdr_decode(p + pos, &h, NULL);
        if (full_for(l, wrec_size(&h)) && rollover(l, h.seq - h.skip, err, errlen) != RT_OK)
            return RT_ERR;
        /* the group of records that fit in the active segment */
        size_t end = pos + wrec_size(&h);
        uint64_t gsize = active(l)->size + wrec_size(&h);
        while (end < len) {
            wrec_hdr_t n;
            wrec_hdr_decode(p + end, &n, NULL);
            if (gsize + wrec_size(&n) > l->seg_max)
                break;
            gsize += wrec_size(&n);
            end += wrec_size(&n);
        }
        struct iovec iov = { (void *)(uintptr_t)(p + pos), end - pos };
        if (write_tail(l, &iov, 1, err, errlen) != RT_OK)
            return RT_ERR;
        while (pos < end) {
            wrec_hdr_decode(p + pos, &h, NULL);
            seglog_loc_t loc = { active(l)->base, active(l)->size };
            account(l, &h);
            if (fn)
                fn(arg, &h, p + pos + WREC_HDR_SIZE, &loc);
            pos += wrec_size(&h);
        }
    }
    return RT_OK;
}

int seglog_append_rec(seglog_t *l, const wrec_hdr_t *h, const void *stored, seglog_loc_t *loc,
                      char *err, size_t errlen)
{
    uint8_t hb[WREC_HDR_SIZE];
    const char *why = NULL;
    uint64_t prev = seglog_last_seq(l);

    if (writable(l, err, errlen) != RT_OK)
        return RT_ERR;
    if (wrec_hdr_check(h, &why) != RT_OK)
        return rt_errf(err, errlen, "%s: bad record %" PRIu64 ": %s", l->dir, h->seq, why);
    if (h->stored > 0 && stored == NULL)
        return rt_errf(err, errlen, "%s: record %" PRIu64 " without its payload", l->dir, h->seq);
    if (h->seq - h->skip != prev + 1)
        return rt_errf(err, errlen,
                    "%s: record %" PRIu64 " (skip %" PRIu32 ") does not follow %" PRIu64, l->dir,
                    h->seq, h->skip, prev);
    if (full_for(l, wrec_size(h)) && rollover(l, h->seq - h->skip, err, errlen) != RT_OK)
        return RT_ERR;
    wrec_hdr_encode(h, hb);
    struct iovec iov[2] = { { hb, sizeof hb }, { (void *)(uintptr_t)stored, h->stored } };
    if (write_tail(l, iov, h->stored ? 2 : 1, err, errlen) != RT_OK)
        return RT_ERR;
    if (loc) {
        loc->seg = active(l)->base;
        loc->pos = active(l)->size;
    }
    account(l, h);
    return RT_OK;
}

int seglog_commit(seglog_t *l, uint64_t *durable_seq, char *err, size_t errlen)
{
    if (l->failed)
        return rt_errf(err, errlen, "%s: an earlier write or sync failed; reopen the log", l->dir);
    if (!l->readonly && unsynced(l)) {
        if (datasync(l, l->afd) != 0) {
            /* after a failed sync the page cache cannot be trusted (the pages
             * may be marked clean yet lost): refuse until reopened */
            l->failed = true;
            return rt_errf(err, errlen, "%s: sync segment %" PRIu64 ": %s", l->dir,
                        active(l)->base, strerror(errno));
        }
        l->durable = seglog_last_seq(l);
    }
    if (durable_seq)
        *durable_seq = l->durable;
    return RT_OK;
}

/* ---- jobs ----------------------------------------------------------------------------------- */

int seglog_commit_begin(seglog_t *l, seglog_job_t **job, char *err, size_t errlen)
{
    seglog_job_t *j;

    *job = NULL;
    if (l->failed)
        return rt_errf(err, errlen, "%s: an earlier write or sync failed; reopen the log", l->dir);
    if (l->readonly || !unsynced(l))
        return RT_OK;
    if (l->no_sync) {
        l->durable = seglog_last_seq(l); /* nothing to wait for */
        return RT_OK;
    }
    if (l->cjob)
        return RT_AGAIN;
    j = calloc(1, sizeof *j);
    if (!j)
        return rt_errf(err, errlen, "%s: out of memory", l->dir);
    j->fd = fcntl(l->afd, F_DUPFD_CLOEXEC, 0);
    if (j->fd < 0) {
        rt_errf(err, errlen, "%s: duplicate a descriptor: %s", l->dir, strerror(errno));
        free(j);
        return RT_ERR;
    }
    j->kind = JOB_COMMIT;
    j->gen = l->reset_gen;
    j->seq = seglog_last_seq(l);
    j->seg = active(l)->base;
    l->cjob = j;
    *job = j;
    return RT_OK;
}

int seglog_commit_end(seglog_t *l, seglog_job_t *job, uint64_t *durable_seq, char *err,
                      size_t errlen)
{
    int rc = RT_OK;

    if (!job)
        return RT_OK;
    if (l && l->cjob == job) {
        l->cjob = NULL;
        if (job->kind == JOB_COMMIT && job->gen == l->reset_gen) {
            if (job->err) {
                l->failed = true; /* as seglog_commit: the page cache cannot be trusted */
                rc = rt_errf(err, errlen, "%s: sync segment %" PRIu64 ": %s", l->dir, job->seg,
                             strerror(job->err));
            } else if (job->seq > l->durable) {
                l->durable = job->seq;
            }
        }
    }
    if (durable_seq)
        *durable_seq = l ? l->durable : 0;
    seglog_job_free(job);
    return rc;
}

int seglog_reap_begin(seglog_t *l, seglog_job_t **job, char *err, size_t errlen)
{
    seglog_job_t *j;

    *job = NULL;
    if (l->readonly || l->ndead == 0)
        return RT_OK;
    if (l->rjob)
        return RT_AGAIN;
    j = calloc(1, sizeof *j);
    if (!j)
        return rt_errf(err, errlen, "%s: out of memory", l->dir);
    /* a new open file description: a dup of dirfd would share its flock */
    j->fd = openat(l->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (j->fd < 0) {
        rt_errf(err, errlen, "%s: open folder: %s", l->dir, strerror(errno));
        free(j);
        return RT_ERR;
    }
    j->kind = JOB_REAP;
    j->no_sync = l->no_sync;
    j->gen = l->reset_gen;
    j->n = l->ndead;
    memcpy(j->bases, l->dead, l->ndead * sizeof l->dead[0]);
    memcpy(l->reaping, l->dead, l->ndead * sizeof l->dead[0]);
    l->nreaping = l->ndead;
    l->ndead = 0;
    l->rjob = j;
    *job = j;
    return RT_OK;
}

int seglog_reap_end(seglog_t *l, seglog_job_t *job, char *err, size_t errlen)
{
    int rc = RT_OK;

    if (!job)
        return RT_OK;
    if (l && l->rjob == job) {
        l->rjob = NULL;
        l->nreaping = 0;
        if (job->kind == JOB_REAP && job->gen == l->reset_gen && job->done < job->n) {
            /* not deleted: first in line again (trim keeps ndead + nreaping
             * within the array, so they fit) */
            unsigned back = job->n - job->done;
            memmove(l->dead + back, l->dead, l->ndead * sizeof l->dead[0]);
            memcpy(l->dead, job->bases + job->done, back * sizeof l->dead[0]);
            l->ndead += back;
        }
        if (job->err)
            rc = rt_errf(err, errlen, "%s: delete trimmed segment %" PRIu64 ": %s", l->dir,
                         job->done < job->n ? job->bases[job->done] : job->bases[0],
                         strerror(job->err));
    }
    seglog_job_free(job);
    return rc;
}

bool seglog_reap_pending(const seglog_t *l)
{
    return l->ndead > 0;
}

void seglog_job_run(void *arg)
{
    seglog_job_t *j = arg;
    char name[NAME_LEN + 8];

    if (j->kind == JOB_COMMIT) {
        if (fdatasync(j->fd) != 0)
            j->err = errno;
    } else {
        for (j->done = 0; j->done < j->n; j->done++) {
            seg_name(name, sizeof name, j->bases[j->done], "");
            if (unlinkat(j->fd, name, 0) != 0 && errno != ENOENT) {
                j->err = errno;
                break;
            }
        }
        if (j->done > 0 && !j->no_sync && fsync(j->fd) != 0 && !j->err)
            j->err = errno;
    }
    close(j->fd);
    j->fd = -1;
}

void seglog_job_free(seglog_job_t *job)
{
    if (!job)
        return;
    if (job->fd >= 0)
        close(job->fd);
    free(job);
}

/* ---- trim and reset ------------------------------------------------------------------------ */

static int unlink_seg(seglog_t *l, uint64_t base, char *err, size_t errlen)
{
    char name[NAME_LEN + 8];

    fdc_drop(l, base);
    seg_name(name, sizeof name, base, "");
    if (unlinkat(l->dirfd, name, 0) != 0 && errno != ENOENT)
        return rt_errf(err, errlen, "%s/%s: delete: %s", l->dir, name, strerror(errno));
    return RT_OK;
}

int seglog_trim(seglog_t *l, uint64_t seq, char *err, size_t errlen)
{
    unsigned n = 0;
    int rc = RT_OK;

    if (writable(l, err, errlen) != RT_OK)
        return RT_ERR;
    while (n + 1 < l->nsegs && l->segs[n].last < seq) {
        if (l->defer_unlink) {
            if (l->ndead + l->nreaping >= SEGLOG_DEAD_MAX)
                break; /* the rest waits for a later trim */
            fdc_drop(l, l->segs[n].base);
            l->dead[l->ndead++] = l->segs[n].base;
        } else if (unlink_seg(l, l->segs[n].base, err, errlen) != RT_OK) {
            rc = RT_ERR;
            break;
        }
        l->nrec -= l->segs[n].nrec;
        n++;
    }
    if (n == 0)
        return rc;
    memmove(l->segs, l->segs + n, (l->nsegs - n) * sizeof *l->segs);
    l->nsegs -= n;
    if (!l->defer_unlink && sync_dir(l, rc == RT_OK ? err : NULL, errlen) != RT_OK)
        rc = RT_ERR;
    return rc;
}

int seglog_reset(seglog_t *l, uint64_t next_seq, char *err, size_t errlen)
{
    if (writable(l, err, errlen) != RT_OK)
        return RT_ERR;
    if (next_seq == 0)
        return rt_errf(err, errlen, "%s: reset to sequence 0", l->dir);
    for (unsigned i = 0; i < l->nreaping; i++)
        if (l->reaping[i] == next_seq)
            return rt_errf(err, errlen, "%s: reset to %" PRIu64 " while that segment is being "
                           "deleted; try again later", l->dir, next_seq);
    l->reset_gen++;
    close(l->afd);
    l->afd = -1;
    /* trimmed names first (older than the table's): a reap job in flight may
     * delete the same names at the same time, which ENOENT makes harmless */
    for (unsigned i = 0; i < l->nreaping + l->ndead; i++) {
        uint64_t base = i < l->nreaping ? l->reaping[i] : l->dead[i - l->nreaping];
        if (unlink_seg(l, base, err, errlen) != RT_OK) {
            l->failed = true;
            return RT_ERR;
        }
    }
    l->ndead = 0; /* reaping[] stays until the job's end: the names it may still delete */
    while (l->nsegs > 0) {
        if (unlink_seg(l, l->segs[0].base, err, errlen) != RT_OK) {
            l->failed = true; /* no active segment any more */
            return RT_ERR;
        }
        memmove(l->segs, l->segs + 1, (l->nsegs - 1) * sizeof *l->segs);
        l->nsegs--;
    }
    l->nrec = 0;
    if (sync_dir(l, err, errlen) != RT_OK || seg_create(l, next_seq, err, errlen) != RT_OK) {
        l->failed = true;
        return RT_ERR;
    }
    l->durable = next_seq - 1;
    return RT_OK;
}

int seglog_pread(seglog_t *l, const seglog_loc_t *loc, uint64_t off, void *buf, size_t len,
                 char *err, size_t errlen)
{
    const seg_t *s = seg_find(l, loc->seg);
    uint64_t at = loc->pos + WREC_HDR_SIZE + off;

    if (!s)
        return rt_errf(err, errlen, "%s: segment %" PRIu64 " was trimmed", l->dir, loc->seg);
    if (at < off || at > s->size || len > s->size - at)
        return rt_errf(err, errlen, "%s: read past the end of segment %" PRIu64, l->dir, loc->seg);
    int fd = seg_fd(l, s->base);
    if (fd < 0 || pread_all(fd, buf, len, at) != RT_OK)
        return rt_errf(err, errlen, "%s: read segment %" PRIu64 ": %s", l->dir, loc->seg,
                    strerror(errno));
    return RT_OK;
}

/* ---- state --------------------------------------------------------------------------------------- */

uint64_t seglog_last_seq(const seglog_t *l)
{
    if (l->nsegs == 0)
        return l->empty_next - 1;
    return l->segs[l->nsegs - 1].last;
}

uint64_t seglog_first_seq(const seglog_t *l)
{
    for (unsigned i = 0; i < l->nsegs; i++)
        if (l->segs[i].nrec > 0)
            return l->segs[i].first;
    return seglog_last_seq(l) + 1;
}

uint64_t seglog_durable_seq(const seglog_t *l)
{
    return l->durable;
}

uint64_t seglog_bytes(const seglog_t *l)
{
    uint64_t b = 0;
    for (unsigned i = 0; i < l->nsegs; i++)
        b += l->segs[i].size;
    return b;
}

uint64_t seglog_records(const seglog_t *l)
{
    return l->nrec;
}

unsigned seglog_segments(const seglog_t *l)
{
    return l->nsegs;
}

const char *seglog_dir(const seglog_t *l)
{
    return l->dir;
}

uint64_t seglog_recovered(const seglog_t *l, const char **why)
{
    if (why)
        *why = l->recovered_why;
    return l->recovered;
}

/* ---- iterators ------------------------------------------------------------------------------------- */

static void iter_leave(seglog_iter_t *it)
{
    if (it->fd >= 0)
        close(it->fd);
    it->fd = -1;
    it->in_seg = false;
    it->rd.blen = 0;
}

static int iter_enter(seglog_iter_t *it, const seg_t *s, char *err, size_t errlen)
{
    iter_leave(it);
    it->fd = open_seg(it->l, s->base, O_RDONLY);
    if (it->fd < 0)
        return rt_errf(err, errlen, "%s: open segment %" PRIu64 ": %s", it->l->dir, s->base,
                    strerror(errno));
    it->in_seg = true;
    it->seg = s->base;
    it->seg_size = s->size;
    it->pos = SEGLOG_HDR_SIZE;
    it->checked = 0;
    it->rd.fd = it->fd;
    it->rd.blen = 0;
    return RT_OK;
}

seglog_iter_t *seglog_iter_new(seglog_t *l, uint64_t from, bool verify, char *err, size_t errlen)
{
    seglog_iter_t *it = calloc(1, sizeof *it);

    if (!it) {
        rt_errf(err, errlen, "%s: out of memory", l->dir);
        return NULL;
    }
    it->l = l;
    it->from = from;
    it->verify = verify;
    it->gen = l->reset_gen;
    it->fd = -1;
    it->rd.fd = -1;
    if (l->nsegs > 0 && iter_enter(it, &l->segs[seg_index_for(l, from)], err, errlen) != RT_OK) {
        seglog_iter_free(it);
        return NULL;
    }
    return it;
}

void seglog_iter_free(seglog_iter_t *it)
{
    if (!it)
        return;
    iter_leave(it);
    free(it->rd.buf);
    free(it->scratch);
    free(it);
}

uint64_t seglog_iter_seq(const seglog_iter_t *it)
{
    return it->have_prev && it->prev + 1 > it->from ? it->prev + 1 : it->from;
}

/* Find the next record to hand out without consuming it. */
static int iter_peek(seglog_iter_t *it, uint64_t max_seq, wrec_hdr_t *h, const uint8_t **rec,
                     char *err, size_t errlen)
{
    seglog_t *l = it->l;
    const char *why = NULL;

    if (it->gen != l->reset_gen)
        return rt_errf(err, errlen, "%s: the log was reset under this reader", l->dir);
    for (;;) {
        if (!it->in_seg) {
            if (l->nsegs == 0)
                return SEGLOG_END;
            if (iter_enter(it, &l->segs[seg_index_for(l, it->from)], err, errlen) != RT_OK)
                return RT_ERR;
        }
        const seg_t *s = seg_find(l, it->seg);
        if (s)
            it->seg_size = s->size;
        if (it->pos >= it->seg_size) {
            if (s && s == &l->segs[l->nsegs - 1])
                return SEGLOG_END; /* the active segment: more may come */
            unsigned i = seg_index_for(l, it->seg);
            if (i >= l->nsegs || l->segs[i].base <= it->seg) {
                if (i + 1 >= l->nsegs)
                    return SEGLOG_END;
                i++;
            }
            if (iter_enter(it, &l->segs[i], err, errlen) != RT_OK)
                return RT_ERR;
            continue;
        }
        const uint8_t *p;
        int r = rd_get(&it->rd, it->pos, WREC_HDR_SIZE, it->seg_size, &p);
        if (r == RT_OK && wrec_hdr_decode(p, h, &why) != RT_OK)
            return rt_errf(err, errlen, "%s: segment %" PRIu64 " byte %" PRIu64 ": %s", l->dir,
                        it->seg, it->pos, why);
        if (r == RT_OK)
            r = rd_get(&it->rd, it->pos, wrec_size(h), it->seg_size, &p);
        if (r != RT_OK)
            return rt_errf(err, errlen, "%s: segment %" PRIu64 " byte %" PRIu64 ": %s", l->dir,
                        it->seg, it->pos,
                        r == RD_SHORT ? "record cut short" : strerror(errno));
        if (it->have_prev && h->seq - h->skip != it->prev + 1)
            return rt_errf(err, errlen,
                        "%s: record %" PRIu64 " does not follow %" PRIu64
                        " (trimmed under the reader?)",
                        l->dir, h->seq, it->prev);
        if (h->seq > max_seq)
            return SEGLOG_END;
        if (h->seq < it->from) {
            it->have_prev = true;
            it->prev = h->seq;
            it->pos += wrec_size(h);
            continue;
        }
        if (it->verify && it->checked != it->pos + 1) {
            if ((h->flags & WREC_F_LZ4) && !it->scratch) {
                it->scratch = malloc(WREC_MAX_DATA);
                if (!it->scratch)
                    return rt_errf(err, errlen, "%s: out of memory", l->dir);
            }
            if (wrec_verify(h, p + WREC_HDR_SIZE, it->scratch, WREC_MAX_DATA, NULL, &why) !=
                RT_OK)
                return rt_errf(err, errlen, "%s: record %" PRIu64 " (segment %" PRIu64 "): %s",
                            l->dir, h->seq, it->seg, why);
            it->checked = it->pos + 1;
        }
        *rec = p;
        return RT_OK;
    }
}

static void iter_advance(seglog_iter_t *it, const wrec_hdr_t *h)
{
    it->checked = 0;
    it->have_prev = true;
    it->prev = h->seq;
    it->pos += wrec_size(h);
}

int seglog_iter_next(seglog_iter_t *it, uint64_t max_seq, wrec_hdr_t *h, const uint8_t **stored,
                     seglog_loc_t *loc, char *err, size_t errlen)
{
    const uint8_t *p;
    int r = iter_peek(it, max_seq, h, &p, err, errlen);

    if (r != RT_OK)
        return r;
    if (stored)
        *stored = p + WREC_HDR_SIZE;
    if (loc) {
        loc->seg = it->seg;
        loc->pos = it->pos;
    }
    iter_advance(it, h);
    return RT_OK;
}

int seglog_iter_batch(seglog_iter_t *it, uint64_t max_seq, void *buf, size_t cap, size_t *used,
                      uint64_t *last_seq, char *err, size_t errlen)
{
    size_t n = 0;
    wrec_hdr_t h;
    const uint8_t *p;
    int r;

    while ((r = iter_peek(it, max_seq, &h, &p, err, errlen)) == RT_OK) {
        if (cap - n < wrec_size(&h))
            break;
        memcpy((uint8_t *)buf + n, p, wrec_size(&h));
        n += wrec_size(&h);
        if (last_seq)
            *last_seq = h.seq;
        iter_advance(it, &h);
    }
    *used = n;
    if (r == RT_ERR)
        return n > 0 ? RT_OK : RT_ERR; /* hand out what was good; the error comes next call */
    if (n > 0)
        return RT_OK;
    if (r == RT_OK)
        return rt_errf(err, errlen, "%s: buffer of %zu bytes cannot hold record %" PRIu64
                    " (%zu bytes)", it->l->dir, cap, h.seq, wrec_size(&h));
    return SEGLOG_END;
}
