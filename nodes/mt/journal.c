/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * journal.c: the master target's retention journal (see journal.h and
 * docs/FORMAT.md, "Master target journal").
 *
 * In memory a journal is: the index (one small entry per record after the
 * promoted sequence P: sequence, point time, range, location, hash), the
 * marks among them, and up to two extent maps. An extent map answers "which
 * record holds byte x at point S" for one S: a treap of disjoint extents
 * keyed by start, built by inserting the records P+1..S in order (a later
 * write cuts the extents it overlaps). The latest point's map is kept up to
 * date as records arrive; one other point's map is cached and extended
 * forwards when a later point is asked for. Bytes no extent covers come from
 * the base image.
 *
 * The index is rebuilt from the record headers at every open (no index file
 * to fall out of step with the journal after a crash). The state file is the
 * only mutable metadata and is replaced atomically.
 */
#include "journal.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <xxhash.h>

#include "nodes/common/seglog.h"
#include "rt.h"

#define BASE_NAME    "base.img"
#define STATE_NAME   "state"
#define STATE_TMP    "state.tmp"
#define LOG_NAME     "journal"
#define STATE_MAX    1024u      /* bytes of a state file, at most */
#define EXPORT_CHUNK (1u << 20) /* restore copies in chunks of this size */
#define ZERO_CHUNK   (64u << 10)

/* ---- types ---------------------------------------------------------------------- */

/* one journal record after the promoted sequence */
typedef struct jrec {
    uint64_t seq;
    uint64_t ptime;  /* point time: max capture time of the records up to this one */
    uint64_t offset; /* disk range start */
    uint64_t seg;    /* location (seglog_loc_t) */
    uint64_t pos;
    uint64_t hash;   /* data hash from the header */
    uint32_t len;
    uint32_t stored;
    uint16_t flags;
} jrec_t;

typedef struct jmark {
    uint64_t seg, pos;  /* where its label is, while it is pending */
    bool pending;       /* label not read yet (found by a header-only scan) */
    mtj_point_t pt;
} jmark_t;

/* treap node: extent [start, end) holds the bytes of record number rec
 * (absolute record number, see jrec_at()); index 0 is nil */
typedef struct xnode {
    uint64_t start, end, rec;
    uint32_t l, r, prio;
} xnode_t;

typedef struct xmap {
    xnode_t *n;
    uint32_t cap;      /* nodes allocated */
    uint32_t used;     /* nodes ever handed out (high-water), node 0 is nil */
    uint32_t freel;    /* free list through .l */
    uint32_t root;
    uint32_t rng;      /* xorshift state for priorities */
    bool valid;
    uint64_t next_rec; /* absolute number of the next record to insert */
} xmap_t;

struct mtj {
    char *dir;            /* MT_DIR/pair */
    int dirfd;            /* holds the flock */
    int basefd;
    bool readonly;
    bool failed;          /* index out of step with the log: reopen */
    seglog_t *log;
    uint64_t disk_size;
    uint64_t retention_us;
    uint64_t hold;
    uint64_t promoted;      /* P: the base image is the state after P */
    uint64_t promoted_time; /* point time of P */
    uint64_t target;        /* >= P: an interrupted promotion's target */
    uint64_t first_pt;      /* oldest readable point: max(P, target) */
    /* index: live records are recs[head .. nrecs); record number a is at
     * recs[a - rec_off] */
    jrec_t *recs;
    size_t nrecs, caprecs, head;
    uint64_t rec_off;
    jmark_t *marks;
    size_t nmarks, capmarks, mhead;
    uint64_t log_first;   /* sequence the log starts from (first record's seq - skip) */
    bool saw_rec;
    bool bad_range;       /* a record outside the disk was found at open */
    bool oom;
    xmap_t latest, point;
    uint8_t *scratch;     /* WREC_MAX_DATA: verify/decompress on append and promotion */
    uint8_t *cbuf;        /* WREC_MAX_STORED: an LZ4 record's stored bytes, for reads */
    uint8_t *lzbuf;       /* WREC_MAX_DATA: the decompressed record lz_rec */
    uint64_t lz_rec;      /* absolute number held in lzbuf, UINT64_MAX if none */
};

static int pread_all(int fd, void *buf, size_t len, uint64_t off)
{
    uint8_t *p = buf;

    while (len > 0) {
        ssize_t n = pread(fd, p, len, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n == 0)
                errno = EIO;
            return RT_ERR;
        }
        p += n;
        len -= (size_t)n;
        off += (uint64_t)n;
    }
    return RT_OK;
}

static int pwrite_all(int fd, const void *buf, size_t len, uint64_t off)
{
    const uint8_t *p = buf;

    while (len > 0) {
        ssize_t n = pwrite(fd, p, len, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return RT_ERR;
        p += n;
        len -= (size_t)n;
        off += (uint64_t)n;
    }
    return RT_OK;
}

static bool all_zero(const uint8_t *p, size_t n)
{
    return n == 0 || (p[0] == 0 && memcmp(p, p + 1, n - 1) == 0);
}

/* ---- the index ---------------------------------------------------------------------- */

static jrec_t *jrec_at(const mtj_t *j, uint64_t rec)
{
    return &j->recs[rec - j->rec_off];
}

static uint64_t live_first(const mtj_t *j) /* absolute number of the first live record */
{
    return j->rec_off + j->head;
}

static uint64_t live_end(const mtj_t *j) /* one past the last */
{
    return j->rec_off + j->nrecs;
}

static uint64_t last_seq(const mtj_t *j)
{
    return j->nrecs > j->head ? j->recs[j->nrecs - 1].seq : j->promoted;
}

static uint64_t time_of_last(const mtj_t *j)
{
    return j->nrecs > j->head ? j->recs[j->nrecs - 1].ptime : j->promoted_time;
}

/* one past the number of the last live record with seq <= @seq (so
 * live_first() when there is none) */
static uint64_t rec_upto(const mtj_t *j, uint64_t seq)
{
    size_t lo = j->head, hi = j->nrecs;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (j->recs[mid].seq <= seq)
            lo = mid + 1;
        else
            hi = mid;
    }
    return j->rec_off + lo;
}

/* the live record with exactly @seq, or NULL */
static const jrec_t *rec_eq(const mtj_t *j, uint64_t seq)
{
    uint64_t u = rec_upto(j, seq);
    if (u == live_first(j) || jrec_at(j, u - 1)->seq != seq)
        return NULL;
    return jrec_at(j, u - 1);
}

static int reserve(void **arr, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return RT_OK;
    size_t ncap = *cap ? *cap : 1024;
    while (ncap < need)
        ncap *= 2;
    void *n = realloc(*arr, ncap * elem);
    if (!n)
        return RT_ERR;
    *arr = n;
    *cap = ncap;
    return RT_OK;
}

/* ---- extent maps (treaps) -------------------------------------------------------------- */

static uint32_t xm_rand(xmap_t *m)
{
    uint32_t x = m->rng;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return m->rng = x;
}

static void xm_clear(xmap_t *m)
{
    m->used = 1;
    m->freel = 0;
    m->root = 0;
    m->valid = false;
    m->next_rec = 0;
    if (!m->rng)
        m->rng = 0x9e3779b9u;
}

/* room for @more nodes without failing (each insert takes at most 3) */
static int xm_reserve(xmap_t *m, size_t more)
{
    size_t need = (size_t)m->used + more;

    if (need <= m->cap)
        return RT_OK;
    if (need > UINT32_MAX)
        return RT_ERR;
    size_t ncap = m->cap ? m->cap : 1024;
    while (ncap < need)
        ncap *= 2;
    if (ncap > UINT32_MAX)
        ncap = UINT32_MAX;
    xnode_t *n = realloc(m->n, ncap * sizeof *n);
    if (!n)
        return RT_ERR;
    m->n = n;
    m->cap = (uint32_t)ncap;
    return RT_OK;
}

static uint32_t xm_new(xmap_t *m, uint64_t start, uint64_t end, uint64_t rec)
{
    uint32_t i;

    if (m->freel) {
        i = m->freel;
        m->freel = m->n[i].l;
    } else {
        i = m->used++;
    }
    m->n[i] = (xnode_t){ .start = start, .end = end, .rec = rec, .prio = xm_rand(m) };
    return i;
}

static void xm_free_tree(xmap_t *m, uint32_t t)
{
    while (t) {
        uint32_t r = m->n[t].r;
        xm_free_tree(m, m->n[t].l);
        m->n[t].l = m->freel;
        m->freel = t;
        t = r;
    }
}

/* split @t into nodes with start < key (*a) and start >= key (*b) */
static void xm_split(xnode_t *n, uint32_t t, uint64_t key, uint32_t *a, uint32_t *b)
{
    if (!t) {
        *a = *b = 0;
    } else if (n[t].start < key) {
        xm_split(n, n[t].r, key, &n[t].r, b);
        *a = t;
    } else {
        xm_split(n, n[t].l, key, a, &n[t].l);
        *b = t;
    }
}

static uint32_t xm_merge(xnode_t *n, uint32_t a, uint32_t b)
{
    if (!a)
        return b;
    if (!b)
        return a;
    if (n[a].prio > n[b].prio) {
        n[a].r = xm_merge(n, n[a].r, b);
        return a;
    }
    n[b].l = xm_merge(n, a, n[b].l);
    return b;
}

/* cut the extent that strictly contains @x (start < x < end) in two at x */
static void xm_cut(xmap_t *m, uint64_t x)
{
    uint32_t t = m->root;

    while (t) {
        if (x < m->n[t].start)
            t = m->n[t].l;
        else if (x >= m->n[t].end)
            t = m->n[t].r;
        else
            break;
    }
    if (!t || m->n[t].start == x)
        return;
    uint64_t end = m->n[t].end;
    m->n[t].end = x;
    uint32_t k = xm_new(m, x, end, m->n[t].rec), a, b;
    xm_split(m->n, m->root, x, &a, &b);
    m->root = xm_merge(m->n, xm_merge(m->n, a, k), b);
}

/* record @rec now holds [start, end); capacity for 3 nodes must be reserved */
static void xm_insert(xmap_t *m, uint64_t start, uint64_t end, uint64_t rec)
{
    uint32_t a, b, mid, c;

    xm_cut(m, start);
    xm_cut(m, end);
    xm_split(m->n, m->root, start, &a, &b);
    xm_split(m->n, b, end, &mid, &c);
    xm_free_tree(m, mid);
    uint32_t k = xm_new(m, start, end, rec);
    m->root = xm_merge(m->n, xm_merge(m->n, a, k), c);
}

static bool changes_disk(uint16_t flags)
{
    return (flags & (WREC_F_DATA | WREC_F_ZERO | WREC_F_TRIM)) != 0;
}

/* add the records up to number @upto (exclusive) to @m */
static int xm_extend(mtj_t *j, xmap_t *m, uint64_t upto)
{
    if (m->next_rec < live_first(j))
        m->next_rec = live_first(j);
    if (upto > m->next_rec && xm_reserve(m, 3 * (size_t)(upto - m->next_rec)) != RT_OK)
        return RT_ERR;
    for (; m->next_rec < upto; m->next_rec++) {
        const jrec_t *r = jrec_at(j, m->next_rec);
        if (changes_disk(r->flags))
            xm_insert(m, r->offset, r->offset + r->len, m->next_rec);
    }
    m->valid = true;
    return RT_OK;
}

/* the map of point @seq (first_pt <= seq <= last) */
static xmap_t *map_for(mtj_t *j, uint64_t seq, char *err, size_t errlen)
{
    uint64_t upto = rec_upto(j, seq);
    xmap_t *m;

    if (upto == live_end(j)) {
        m = &j->latest;
    } else {
        m = &j->point;
        if (m->valid && m->next_rec > upto)
            xm_clear(m); /* it is ahead of this point: rebuild */
    }
    if (!m->valid)
        xm_clear(m);
    if (xm_extend(j, m, upto) != RT_OK) {
        xm_clear(m);
        rt_errf(err, errlen, "%s: out of memory for the extent map", j->dir);
        return NULL;
    }
    return m;
}

static void maps_invalidate(mtj_t *j)
{
    xm_clear(&j->latest);
    xm_clear(&j->point);
    j->lz_rec = UINT64_MAX;
}

/* ---- reading a point ------------------------------------------------------------------ */

typedef struct rctx {
    mtj_t *j;
    uint64_t off, end, cur; /* the read range and how far it is filled */
    uint8_t *buf;
    char *err;
    size_t errlen;
} rctx_t;

static int read_base(rctx_t *c, uint64_t upto)
{
    if (c->cur >= upto)
        return RT_OK;
    if (pread_all(c->j->basefd, c->buf + (c->cur - c->off), (size_t)(upto - c->cur), c->cur) !=
        RT_OK)
        return rt_errf(c->err, c->errlen, "%s/%s: read: %s", c->j->dir, BASE_NAME, strerror(errno));
    c->cur = upto;
    return RT_OK;
}

static int read_rec(mtj_t *j, uint64_t rec, uint64_t from, size_t n, uint8_t *out, char *err,
                    size_t errlen)
{
    const jrec_t *r = jrec_at(j, rec);
    seglog_loc_t loc = { r->seg, r->pos };
    uint64_t at = from - r->offset;

    if (!(r->flags & WREC_F_DATA)) {
        memset(out, 0, n); /* ZERO and TRIM read back as zeros */
        return RT_OK;
    }
    if (!(r->flags & WREC_F_LZ4))
        return seglog_pread(j->log, &loc, at, out, n, err, errlen);
    if (j->lz_rec != rec) {
        wrec_hdr_t h = { .flags = r->flags, .seq = r->seq, .offset = r->offset, .len = r->len,
                         .stored = r->stored, .hash = r->hash };
        const char *why = NULL;
        if (!j->cbuf)
            j->cbuf = malloc(WREC_MAX_STORED);
        if (!j->lzbuf)
            j->lzbuf = malloc(WREC_MAX_DATA);
        if (!j->cbuf || !j->lzbuf)
            return rt_errf(err, errlen, "%s: out of memory", j->dir);
        j->lz_rec = UINT64_MAX;
        if (seglog_pread(j->log, &loc, 0, j->cbuf, r->stored, err, errlen) != RT_OK)
            return RT_ERR;
        if (wrec_verify(&h, j->cbuf, j->lzbuf, WREC_MAX_DATA, NULL, &why) != RT_OK)
            return rt_errf(err, errlen, "%s: record %" PRIu64 ": %s", j->dir, r->seq, why);
        j->lz_rec = rec;
    }
    memcpy(out, j->lzbuf + at, n);
    return RT_OK;
}

static int visit(rctx_t *c, const xmap_t *m, uint32_t t)
{
    while (t) {
        const xnode_t *x = &m->n[t];
        if (x->end <= c->off) {
            t = x->r;
            continue;
        }
        if (x->start >= c->end) {
            t = x->l;
            continue;
        }
        if (visit(c, m, x->l) != RT_OK)
            return RT_ERR;
        uint64_t lo = x->start > c->off ? x->start : c->off;
        uint64_t hi = x->end < c->end ? x->end : c->end;
        if (read_base(c, lo) != RT_OK ||
            read_rec(c->j, x->rec, lo, (size_t)(hi - lo), c->buf + (lo - c->off), c->err,
                     c->errlen) != RT_OK)
            return RT_ERR;
        c->cur = hi;
        t = x->r;
    }
    return RT_OK;
}

/* whether any extent of @m overlaps [lo, hi) */
static bool xm_any(const xmap_t *m, uint64_t lo, uint64_t hi)
{
    uint32_t t = m->root;

    while (t) {
        const xnode_t *x = &m->n[t];
        if (x->end <= lo)
            t = x->r;
        else if (x->start >= hi)
            t = x->l;
        else
            return true;
    }
    return false;
}

static int check_point(const mtj_t *j, uint64_t seq, char *err, size_t errlen)
{
    if (j->failed)
        return rt_errf(err, errlen, "%s: an earlier failure left the journal unusable; reopen it",
                    j->dir);
    if (seq < j->first_pt || seq > last_seq(j))
        return rt_errf(err, errlen,
                    "%s: point %" PRIu64 " is outside the retention window [%" PRIu64
                    ", %" PRIu64 "]",
                    j->dir, seq, j->first_pt, last_seq(j));
    return RT_OK;
}

int mtj_read(mtj_t *j, uint64_t point_seq, uint64_t offset, size_t len, void *buf, char *err,
             size_t errlen)
{
    if (check_point(j, point_seq, err, errlen) != RT_OK)
        return RT_ERR;
    if (offset > j->disk_size || len > j->disk_size - offset)
        return rt_errf(err, errlen, "%s: read of %zu bytes at %" PRIu64 " is outside the disk (%" PRIu64
                    " bytes)", j->dir, len, offset, j->disk_size);
    xmap_t *m = map_for(j, point_seq, err, errlen);
    if (!m)
        return RT_ERR;
    rctx_t c = { j, offset, offset + len, offset, buf, err, errlen };
    if (visit(&c, m, m->root) != RT_OK || read_base(&c, c.end) != RT_OK)
        return RT_ERR;
    return RT_OK;
}

/* ---- the state file --------------------------------------------------------------------- */

typedef struct jstate {
    uint64_t disk_size, promoted, promoted_time, target;
} jstate_t;

static int state_write(mtj_t *j, const jstate_t *s, char *err, size_t errlen)
{
    char text[STATE_MAX];
    int n = snprintf(text, sizeof text,
                     "%s %u\n"
                     "disk_size %" PRIu64 "\n"
                     "promoted_seq %" PRIu64 "\n"
                     "promoted_time_us %" PRIu64 "\n"
                     "target_seq %" PRIu64 "\n",
                     MTJ_STATE_MAGIC, MTJ_STATE_VERSION, s->disk_size, s->promoted,
                     s->promoted_time, s->target);
    n += snprintf(text + n, sizeof text - (size_t)n, "checksum %016" PRIx64 "\n",
                  (uint64_t)XXH64(text, (size_t)n, 0));

    int fd = openat(j->dirfd, STATE_TMP, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd < 0)
        return rt_errf(err, errlen, "%s/%s: create: %s", j->dir, STATE_TMP, strerror(errno));
    if (pwrite_all(fd, text, (size_t)n, 0) != RT_OK || fdatasync(fd) != 0) {
        int e = errno;
        close(fd);
        unlinkat(j->dirfd, STATE_TMP, 0);
        return rt_errf(err, errlen, "%s/%s: write: %s", j->dir, STATE_TMP, strerror(e));
    }
    close(fd);
    if (renameat(j->dirfd, STATE_TMP, j->dirfd, STATE_NAME) != 0 || fsync(j->dirfd) != 0)
        return rt_errf(err, errlen, "%s/%s: replace: %s", j->dir, STATE_NAME, strerror(errno));
    return RT_OK;
}

static int state_read(mtj_t *j, jstate_t *s, char *err, size_t errlen)
{
    char text[STATE_MAX + 1];
    int fd = openat(j->dirfd, STATE_NAME, O_RDONLY | O_CLOEXEC);
    ssize_t n;

    if (fd < 0)
        return rt_errf(err, errlen, "%s/%s: %s", j->dir, STATE_NAME, strerror(errno));
    n = read(fd, text, sizeof text);
    close(fd);
    if (n < 0)
        return rt_errf(err, errlen, "%s/%s: read: %s", j->dir, STATE_NAME, strerror(errno));
    if ((size_t)n > STATE_MAX)
        return rt_errf(err, errlen, "%s/%s: too large to be a state file", j->dir, STATE_NAME);
    text[n] = '\0';

    char *ck = strstr(text, "checksum ");
    unsigned version = 0;
    uint64_t sum = 0;
    int have = 0;
    char magic[32];
    if (!ck || (ck != text && ck[-1] != '\n') || sscanf(ck, "checksum %" SCNx64, &sum) != 1 ||
        sum != XXH64(text, (size_t)(ck - text), 0))
        return rt_errf(err, errlen, "%s/%s: checksum missing or wrong (damaged state file)", j->dir,
                    STATE_NAME);
    *ck = '\0';
    if (sscanf(text, "%31s %u", magic, &version) != 2 || strcmp(magic, MTJ_STATE_MAGIC) != 0)
        return rt_errf(err, errlen, "%s/%s: not a journal state file", j->dir, STATE_NAME);
    if (version != MTJ_STATE_VERSION)
        return rt_errf(err, errlen, "%s/%s: unsupported version %u", j->dir, STATE_NAME, version);
    for (char *line = strchr(text, '\n'); line && line[1]; line = strchr(line + 1, '\n')) {
        char key[32];
        uint64_t v;
        if (sscanf(line + 1, "%31s %" SCNu64, key, &v) != 2)
            continue;
        if (strcmp(key, "disk_size") == 0)
            s->disk_size = v, have |= 1;
        else if (strcmp(key, "promoted_seq") == 0)
            s->promoted = v, have |= 2;
        else if (strcmp(key, "promoted_time_us") == 0)
            s->promoted_time = v, have |= 4;
        else if (strcmp(key, "target_seq") == 0)
            s->target = v, have |= 8;
    }
    if (have != 15 || s->disk_size == 0 || s->target < s->promoted)
        return rt_errf(err, errlen, "%s/%s: incomplete or inconsistent", j->dir, STATE_NAME);
    return RT_OK;
}

/* ---- open, create, close ---------------------------------------------------------------- */

static void index_rec(void *arg, const wrec_hdr_t *h, const uint8_t *stored,
                      const seglog_loc_t *loc)
{
    mtj_t *j = arg;

    if (!j->saw_rec) {
        j->saw_rec = true;
        j->log_first = h->seq - h->skip;
    }
    if (h->seq <= j->promoted)
        return;
    if (changes_disk(h->flags) && h->offset + h->len > j->disk_size)
        j->bad_range = true;
    if (reserve((void **)&j->recs, &j->caprecs, j->nrecs + 1, sizeof *j->recs) != RT_OK ||
        ((h->flags & WREC_F_MARK) &&
         reserve((void **)&j->marks, &j->capmarks, j->nmarks + 1, sizeof *j->marks) != RT_OK)) {
        j->oom = true;
        return;
    }
    uint64_t prev = j->nrecs > j->head ? j->recs[j->nrecs - 1].ptime : j->promoted_time;
    jrec_t *r = &j->recs[j->nrecs];
    *r = (jrec_t){ .seq = h->seq, .ptime = h->time_us > prev ? h->time_us : prev,
                   .offset = h->offset, .seg = loc->seg, .pos = loc->pos, .hash = h->hash,
                   .len = h->len, .stored = h->stored, .flags = h->flags };
    uint64_t num = j->rec_off + j->nrecs++;
    if (h->flags & WREC_F_MARK) {
        jmark_t *mk = &j->marks[j->nmarks++];
        memset(mk, 0, sizeof *mk);
        mk->seg = loc->seg;
        mk->pos = loc->pos;
        mk->pt.seq = h->seq;
        mk->pt.time_us = r->ptime;
        mk->pt.kind = (h->flags & WREC_F_APP) ? MTJ_PT_APP : MTJ_PT_MARK;
        if (stored)
            memcpy(mk->pt.label, stored, h->len);
        else
            mk->pending = true;
    }
    if (j->latest.valid && changes_disk(h->flags)) {
        xm_insert(&j->latest, h->offset, h->offset + h->len, num); /* reserved by the caller */
        j->latest.next_rec = num + 1;
    } else if (j->latest.valid) {
        j->latest.next_rec = num + 1;
    }
}

static bool pair_ok(const char *pair)
{
    size_t n = strlen(pair);

    if (n == 0 || n >= RT_NAME_MAX || pair[0] == '.')
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = pair[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.'))
            return false;
    }
    return true;
}

static int create_files(mtj_t *j, const mtj_conf_t *conf, char *err, size_t errlen)
{
    uint64_t first = conf->first_seq ? conf->first_seq : 1;

    if (conf->disk_size == 0)
        return rt_errf(err, errlen, "%s: creating a journal needs the disk size", j->dir);
    int fd = openat(j->dirfd, BASE_NAME, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0)
        return rt_errf(err, errlen, "%s/%s: create: %s", j->dir, BASE_NAME, strerror(errno));
    if (ftruncate(fd, (off_t)conf->disk_size) != 0 || fsync(fd) != 0) {
        int e = errno;
        close(fd);
        return rt_errf(err, errlen, "%s/%s: size: %s", j->dir, BASE_NAME, strerror(e));
    }
    close(fd);
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", j->dir, LOG_NAME);
    seglog_conf_t lc = { .seg_max = conf->seg_max, .first_seq = first, .create = true };
    seglog_t *l = seglog_open(path, &lc, err, errlen);
    if (!l)
        return RT_ERR;
    seglog_close(l);
    jstate_t s = { .disk_size = conf->disk_size, .promoted = first - 1, .target = first - 1 };
    /* the state file comes last: a folder without it is an unfinished creation */
    return state_write(j, &s, err, errlen);
}

static void fill_labels(mtj_t *j)
{
    for (size_t i = j->mhead; i < j->nmarks; i++) {
        jmark_t *mk = &j->marks[i];
        const jrec_t *r = rec_eq(j, mk->pt.seq);
        if (!mk->pending || !r)
            continue;
        seglog_loc_t loc = { mk->seg, mk->pos };
        if (seglog_pread(j->log, &loc, 0, mk->pt.label, r->len, NULL, 0) == RT_OK)
            mk->pending = false;
        else
            snprintf(mk->pt.label, sizeof mk->pt.label, "?");
    }
}

static int promote_to(mtj_t *j, uint64_t seq, char *err, size_t errlen);

mtj_t *mtj_open(const char *mt_dir, const char *pair, const mtj_conf_t *conf, char *err,
                size_t errlen)
{
    mtj_t *j = calloc(1, sizeof *j);
    jstate_t s = { 0 };
    char path[4096];
    struct stat st;

    if (!j) {
        rt_errf(err, errlen, "out of memory");
        return NULL;
    }
    j->dirfd = -1;
    j->basefd = -1;
    j->lz_rec = UINT64_MAX;
    j->hold = UINT64_MAX;
    j->readonly = conf->readonly;
    j->retention_us = conf->retention_us ? conf->retention_us : MTJ_RETENTION_DEFAULT_US;
    xm_clear(&j->latest);
    xm_clear(&j->point);
    j->point.rng = 0x2545f491u;
    if (!pair_ok(pair)) {
        rt_errf(err, errlen, "bad pair name '%s' (letters, digits, '-', '_', '.')", pair);
        goto fail;
    }
    if ((size_t)snprintf(path, sizeof path, "%s/%s", mt_dir, pair) >= sizeof path ||
        !(j->dir = strdup(path))) {
        rt_errf(err, errlen, "%s/%s: path too long", mt_dir, pair);
        goto fail;
    }
    if (conf->create && !conf->readonly) {
        if (mkdir(mt_dir, 0750) != 0 && errno != EEXIST) {
            rt_errf(err, errlen, "%s: create: %s", mt_dir, strerror(errno));
            goto fail;
        }
        if (mkdir(j->dir, 0750) != 0 && errno != EEXIST) {
            rt_errf(err, errlen, "%s: create: %s", j->dir, strerror(errno));
            goto fail;
        }
    }
    j->dirfd = open(j->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (j->dirfd < 0) {
        rt_errf(err, errlen, "%s: %s (no journal for pair '%s' here)", j->dir, strerror(errno),
             pair);
        goto fail;
    }
    if (flock(j->dirfd, (conf->readonly ? LOCK_SH : LOCK_EX) | LOCK_NB) != 0) {
        rt_errf(err, errlen, "%s: %s", j->dir,
             errno == EWOULDBLOCK ? "in use by a running master target (stop it first)"
                                  : strerror(errno));
        goto fail;
    }
    if (faccessat(j->dirfd, STATE_NAME, F_OK, 0) != 0) {
        if (!conf->create || conf->readonly) {
            rt_errf(err, errlen, "%s: no state file (not a journal, or its creation never finished)",
                 j->dir);
            goto fail;
        }
        if (create_files(j, conf, err, errlen) != RT_OK)
            goto fail;
    }
    if (state_read(j, &s, err, errlen) != RT_OK)
        goto fail;
    if (conf->disk_size && conf->disk_size != s.disk_size) {
        rt_errf(err, errlen, "%s: disk size %" PRIu64 " does not match the journal's %" PRIu64,
             j->dir, conf->disk_size, s.disk_size);
        goto fail;
    }
    j->disk_size = s.disk_size;
    j->promoted = s.promoted;
    j->promoted_time = s.promoted_time;
    j->target = s.target;
    j->first_pt = s.target;
    j->basefd = openat(j->dirfd, BASE_NAME, (conf->readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC);
    if (j->basefd < 0 || fstat(j->basefd, &st) != 0) {
        rt_errf(err, errlen, "%s/%s: %s", j->dir, BASE_NAME, strerror(errno));
        goto fail;
    }
    if ((uint64_t)st.st_size != j->disk_size) {
        rt_errf(err, errlen, "%s/%s: %" PRIu64 " bytes, the disk has %" PRIu64, j->dir, BASE_NAME,
             (uint64_t)st.st_size, j->disk_size);
        goto fail;
    }
    snprintf(path, sizeof path, "%s/%s", j->dir, LOG_NAME);
    seglog_conf_t lc = { .seg_max = conf->seg_max, .first_seq = j->promoted + 1,
                         .readonly = conf->readonly, .defer_unlink = conf->defer_unlink,
                         .on_rec = index_rec, .arg = j };
    j->log = seglog_open(path, &lc, err, errlen);
    if (!j->log)
        goto fail;
    if (j->oom) {
        rt_errf(err, errlen, "%s: out of memory for the index", j->dir);
        goto fail;
    }
    if (j->bad_range) {
        rt_errf(err, errlen, "%s: the journal has a write outside the disk", j->dir);
        goto fail;
    }
    /* the log must continue the base image: it starts at or before P + 1
     * and reaches at least the promotion target */
    uint64_t lfirst = j->saw_rec ? j->log_first : seglog_last_seq(j->log) + 1;
    if (lfirst > j->promoted + 1 || seglog_last_seq(j->log) < j->target) {
        rt_errf(err, errlen,
             "%s: the journal (sequences %" PRIu64 "..%" PRIu64
             ") does not continue the base image (after %" PRIu64 ", target %" PRIu64 ")",
             j->dir, lfirst, seglog_last_seq(j->log), j->promoted, j->target);
        goto fail;
    }
    fill_labels(j);
    if (j->target > j->promoted && !j->readonly &&
        promote_to(j, j->target, err, errlen) != RT_OK)
        goto fail;
    return j;
fail:
    mtj_close(j);
    return NULL;
}

void mtj_close(mtj_t *j)
{
    if (!j)
        return;
    seglog_close(j->log);
    if (j->basefd >= 0)
        close(j->basefd);
    if (j->dirfd >= 0)
        close(j->dirfd);
    free(j->latest.n);
    free(j->point.n);
    free(j->recs);
    free(j->marks);
    free(j->scratch);
    free(j->cbuf);
    free(j->lzbuf);
    free(j->dir);
    free(j);
}

/* ---- append and commit ------------------------------------------------------------------ */

static int need_scratch(mtj_t *j, char *err, size_t errlen)
{
    if (!j->scratch && !(j->scratch = malloc(WREC_MAX_DATA)))
        return rt_errf(err, errlen, "%s: out of memory", j->dir);
    return RT_OK;
}

int mtj_append(mtj_t *j, const void *recs, size_t len, uint64_t *last, char *err, size_t errlen)
{
    wrec_cursor_t c;
    wrec_hdr_t h;
    const uint8_t *stored;
    const char *why = NULL;
    uint64_t prev = last_seq(j);
    size_t skip_bytes = 0, nnew = 0, nmark = 0;
    int r;

    if (j->readonly || j->failed)
        return rt_errf(err, errlen, "%s: %s", j->dir,
                    j->readonly ? "opened read-only" : "unusable after an earlier failure");
    if (need_scratch(j, err, errlen) != RT_OK)
        return RT_ERR;
    wrec_cursor_init(&c, recs, len);
    while ((r = wrec_cursor_next(&c, &h, &stored, &why)) == RT_OK) {
        if (h.seq <= prev && nnew == 0) {
            skip_bytes = c.pos; /* a resend of what we have */
            continue;
        }
        if (h.seq - h.skip != prev + 1)
            return rt_errf(err, errlen,
                        "%s: record %" PRIu64 " (skip %" PRIu32 ") does not follow %" PRIu64,
                        j->dir, h.seq, h.skip, prev);
        if (changes_disk(h.flags) && h.offset + h.len > j->disk_size)
            return rt_errf(err, errlen,
                        "%s: record %" PRIu64 " writes past the end of the disk (%" PRIu64
                        " + %" PRIu32 " > %" PRIu64 ")",
                        j->dir, h.seq, h.offset, h.len, j->disk_size);
        if (wrec_verify(&h, stored, j->scratch, WREC_MAX_DATA, NULL, &why) != RT_OK)
            return rt_errf(err, errlen, "%s: record %" PRIu64 ": %s", j->dir, h.seq, why);
        prev = h.seq;
        nnew++;
        if (h.flags & WREC_F_MARK)
            nmark++;
    }
    if (r != WREC_END)
        return rt_errf(err, errlen, "%s: bad record at batch byte %zu: %s", j->dir, c.pos, why);
    if (nnew == 0) {
        if (last)
            *last = last_seq(j);
        return RT_OK;
    }
    /* reserve everything the index callback needs, so that it cannot fail */
    if (reserve((void **)&j->recs, &j->caprecs, j->nrecs + nnew, sizeof *j->recs) != RT_OK ||
        reserve((void **)&j->marks, &j->capmarks, j->nmarks + nmark, sizeof *j->marks) != RT_OK ||
        (j->latest.valid && xm_reserve(&j->latest, 3 * nnew) != RT_OK))
        return rt_errf(err, errlen, "%s: out of memory for the index", j->dir);
    r = seglog_append(j->log, (const uint8_t *)recs + skip_bytes, len - skip_bytes, index_rec, j,
                      err, errlen);
    if (j->oom) {
        j->failed = true;
        return rt_errf(err, errlen, "%s: out of memory for the index", j->dir);
    }
    if (last)
        *last = last_seq(j);
    return r;
}

int mtj_commit(mtj_t *j, uint64_t *durable, char *err, size_t errlen)
{
    if (j->readonly) {
        if (durable)
            *durable = seglog_durable_seq(j->log);
        return RT_OK;
    }
    return seglog_commit(j->log, durable, err, errlen);
}

int mtj_commit_begin(mtj_t *j, seglog_job_t **job, char *err, size_t errlen)
{
    *job = NULL;
    if (j->readonly)
        return RT_OK;
    if (j->failed)
        return rt_errf(err, errlen, "%s: unusable after an earlier failure", j->dir);
    return seglog_commit_begin(j->log, job, err, errlen);
}

int mtj_commit_end(mtj_t *j, seglog_job_t *job, uint64_t *durable, char *err, size_t errlen)
{
    return seglog_commit_end(j ? j->log : NULL, job, durable, err, errlen);
}

int mtj_reap_begin(mtj_t *j, seglog_job_t **job, char *err, size_t errlen)
{
    *job = NULL;
    if (j->readonly)
        return RT_OK;
    return seglog_reap_begin(j->log, job, err, errlen);
}

int mtj_reap_end(mtj_t *j, seglog_job_t *job, char *err, size_t errlen)
{
    return seglog_reap_end(j ? j->log : NULL, job, err, errlen);
}

bool mtj_reap_pending(const mtj_t *j)
{
    return !j->readonly && seglog_reap_pending(j->log);
}

/* ---- promotion -------------------------------------------------------------------------- */

static int zero_range(mtj_t *j, uint64_t off, uint64_t len, char *err, size_t errlen)
{
    static uint8_t zeros[ZERO_CHUNK]; /* never written; in .bss, not in the binary */

    if (fallocate(j->basefd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off,
                  (off_t)len) == 0)
        return RT_OK;
    while (len > 0) { /* no hole punching here: write the zeros */
        size_t n = len < ZERO_CHUNK ? (size_t)len : ZERO_CHUNK;
        if (pwrite_all(j->basefd, zeros, n, off) != RT_OK)
            return rt_errf(err, errlen, "%s/%s: write: %s", j->dir, BASE_NAME, strerror(errno));
        off += n;
        len -= n;
    }
    return RT_OK;
}

static int apply(mtj_t *j, const wrec_hdr_t *h, const void *data, char *err, size_t errlen)
{
    switch (h->flags & WREC_F_KINDS) {
    case WREC_F_DATA:
        if (all_zero(data, h->len)) /* keep the base sparse */
            return zero_range(j, h->offset, h->len, err, errlen);
        if (pwrite_all(j->basefd, data, h->len, h->offset) != RT_OK)
            return rt_errf(err, errlen, "%s/%s: write: %s", j->dir, BASE_NAME, strerror(errno));
        return RT_OK;
    case WREC_F_ZERO:
    case WREC_F_TRIM:
        return zero_range(j, h->offset, h->len, err, errlen);
    default:
        return RT_OK; /* marks change nothing */
    }
}

/* Drop the index entries at or below P (after a promotion). */
static void index_drop(mtj_t *j)
{
    while (j->head < j->nrecs && j->recs[j->head].seq <= j->promoted)
        j->head++;
    while (j->mhead < j->nmarks && j->marks[j->mhead].pt.seq <= j->promoted)
        j->mhead++;
    if (j->head > 0 && j->head >= j->nrecs / 2) {
        memmove(j->recs, j->recs + j->head, (j->nrecs - j->head) * sizeof *j->recs);
        j->nrecs -= j->head;
        j->rec_off += j->head;
        j->head = 0;
    }
    if (j->mhead > 0 && j->mhead >= j->nmarks / 2) {
        memmove(j->marks, j->marks + j->mhead, (j->nmarks - j->mhead) * sizeof *j->marks);
        j->nmarks -= j->mhead;
        j->mhead = 0;
    }
    maps_invalidate(j);
}

/* Promote through @seq (P < seq <= last, validated by the caller). */
static int promote_to(mtj_t *j, uint64_t seq, char *err, size_t errlen)
{
    jstate_t s = { j->disk_size, j->promoted, j->promoted_time, seq };
    seglog_iter_t *it = NULL;
    wrec_hdr_t h;
    const uint8_t *stored;
    const char *why = NULL;
    uint64_t done = j->promoted;
    int r, rc = RT_ERR;

    if (need_scratch(j, err, errlen) != RT_OK)
        return RT_ERR;
    /* 1. say where we are going: from now on points below seq are gone */
    if (j->target != seq) {
        if (state_write(j, &s, err, errlen) != RT_OK)
            return RT_ERR;
        j->target = seq;
    }
    if (j->first_pt < seq) {
        j->first_pt = seq;
        xm_clear(&j->point);
    }
    /* 2. apply P+1..seq in order, each checked against its hash */
    it = seglog_iter_new(j->log, j->promoted + 1, false, err, errlen);
    if (!it)
        return RT_ERR;
    while ((r = seglog_iter_next(it, seq, &h, &stored, NULL, err, errlen)) == RT_OK) {
        const void *data = NULL;
        if (wrec_verify(&h, stored, j->scratch, WREC_MAX_DATA, &data, &why) != RT_OK) {
            rt_errf(err, errlen, "%s: record %" PRIu64 ": %s; not promoted", j->dir, h.seq, why);
            goto out;
        }
        if (apply(j, &h, data, err, errlen) != RT_OK)
            goto out;
        done = h.seq;
    }
    if (r == RT_ERR)
        goto out;
    if (done != seq) {
        rt_errf(err, errlen, "%s: promotion to %" PRIu64 " stopped at %" PRIu64, j->dir, seq, done);
        goto out;
    }
    /* 3. the base is durable before the state says so */
    if (fdatasync(j->basefd) != 0) {
        rt_errf(err, errlen, "%s/%s: sync: %s", j->dir, BASE_NAME, strerror(errno));
        goto out;
    }
    const jrec_t *rec = rec_eq(j, seq);
    s.promoted = seq;
    s.promoted_time = rec ? rec->ptime : j->promoted_time;
    if (state_write(j, &s, err, errlen) != RT_OK)
        goto out;
    j->promoted = seq;
    j->promoted_time = s.promoted_time;
    index_drop(j);
    /* 4. free the space; a failure here only delays it */
    rc = seglog_trim(j->log, seq + 1, err, errlen);
out:
    seglog_iter_free(it);
    return rc;
}

int mtj_promote(mtj_t *j, uint64_t seq, char *err, size_t errlen)
{
    const jrec_t *r;

    if (j->readonly || j->failed)
        return rt_errf(err, errlen, "%s: %s", j->dir,
                    j->readonly ? "opened read-only" : "unusable after an earlier failure");
    if (seq <= j->promoted)
        return RT_OK;
    if (seq > seglog_durable_seq(j->log))
        return rt_errf(err, errlen, "%s: cannot promote %" PRIu64 ": only %" PRIu64 " is durable",
                    j->dir, seq, seglog_durable_seq(j->log));
    if (seq > j->hold)
        return rt_errf(err, errlen, "%s: cannot promote %" PRIu64 ": a hold at %" PRIu64, j->dir,
                    seq, j->hold);
    r = rec_eq(j, seq);
    if (!r || !wrec_is_point(&(wrec_hdr_t){ .flags = r->flags }))
        return rt_errf(err, errlen, "%s: %" PRIu64 " is not a consistent point", j->dir, seq);
    return promote_to(j, seq, err, errlen);
}

int mtj_retain(mtj_t *j, uint64_t now_us, uint64_t max_bytes, uint64_t *promoted, char *err,
               size_t errlen)
{
    uint64_t cutoff = now_us > j->retention_us ? now_us - j->retention_us : 0;
    uint64_t limit = seglog_durable_seq(j->log), bytes = 0, to = 0;
    int rc = RT_OK;

    if (j->readonly)
        return rt_errf(err, errlen, "%s: opened read-only", j->dir);
    if (j->hold < limit)
        limit = j->hold;
    for (size_t i = j->head; i < j->nrecs; i++) {
        const jrec_t *r = &j->recs[i];
        if (r->ptime >= cutoff || r->seq > limit)
            break;
        bytes += WREC_HDR_SIZE + r->stored;
        if (max_bytes && bytes > max_bytes && to != 0)
            break;
        if (!(r->flags & WREC_F_INTERIOR))
            to = r->seq;
    }
    if (to > j->promoted)
        rc = mtj_promote(j, to, err, errlen);
    if (promoted)
        *promoted = j->promoted;
    return rc;
}

void mtj_hold(mtj_t *j, uint64_t seq)
{
    j->hold = seq;
}

void mtj_set_retention(mtj_t *j, uint64_t retention_us)
{
    j->retention_us = retention_us ? retention_us : MTJ_RETENTION_DEFAULT_US;
}

/* ---- points ----------------------------------------------------------------------------- */

static uint64_t durable_seq(const mtj_t *j)
{
    uint64_t d = seglog_durable_seq(j->log);
    return d < j->first_pt ? j->first_pt : d;
}

static const jmark_t *mark_eq(const mtj_t *j, uint64_t seq)
{
    size_t lo = j->mhead, hi = j->nmarks;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (j->marks[mid].pt.seq < seq)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < j->nmarks && j->marks[lo].pt.seq == seq ? &j->marks[lo] : NULL;
}

static void point_of(const mtj_t *j, uint64_t seq, mtj_point_t *out)
{
    const jrec_t *r = rec_eq(j, seq);
    const jmark_t *mk = mark_eq(j, seq);

    if (mk) {
        *out = mk->pt;
        return;
    }
    memset(out, 0, sizeof *out);
    out->seq = seq;
    out->time_us = r ? r->ptime : j->promoted_time;
    out->kind = seq == j->first_pt ? MTJ_PT_BASE : MTJ_PT_CRASH;
}

/* the newest consistent point among the records before number @upto, not
 * below first_pt */
static uint64_t point_before(const mtj_t *j, uint64_t upto)
{
    for (uint64_t a = upto; a > live_first(j); a--) {
        const jrec_t *r = jrec_at(j, a - 1);
        if (r->seq < j->first_pt)
            break;
        if (!(r->flags & WREC_F_INTERIOR))
            return r->seq;
    }
    return j->first_pt;
}

static bool digits(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (*s < '0' || *s > '9')
            return false;
    return true;
}

int mtj_resolve(const mtj_t *j, const char *spec, mtj_point_t *out, char *err, size_t errlen)
{
    uint64_t dur = durable_seq(j), t;
    char a[MTJ_TIME_MAX];

    if (strcmp(spec, "latest") == 0) {
        point_of(j, point_before(j, rec_upto(j, dur)), out);
        return RT_OK;
    }
    if (strcmp(spec, "oldest") == 0) {
        point_of(j, j->first_pt, out);
        return RT_OK;
    }
    if (strcmp(spec, "latest-app") == 0) {
        for (size_t i = j->nmarks; i > j->mhead; i--) {
            const jmark_t *mk = &j->marks[i - 1];
            if (mk->pt.kind == MTJ_PT_APP && mk->pt.seq <= dur && mk->pt.seq >= j->first_pt) {
                *out = mk->pt;
                return RT_OK;
            }
        }
        return rt_errf(err, errlen, "%s: no application-consistent point in the retention window",
                    j->dir);
    }
    if (digits(spec)) {
        errno = 0;
        uint64_t seq = strtoull(spec, NULL, 10);
        const jrec_t *r;
        if (errno != 0 || seq < j->first_pt || seq > dur)
            return rt_errf(err, errlen,
                        "%s: point %s is outside the retention window [%" PRIu64 ", %" PRIu64
                        "]",
                        j->dir, spec, j->first_pt, dur);
        if (seq != j->first_pt) {
            r = rec_eq(j, seq);
            if (!r)
                return rt_errf(err, errlen,
                            "%s: %" PRIu64 " is not a write boundary here (coalesced away)",
                            j->dir, seq);
            if (r->flags & WREC_F_INTERIOR)
                return rt_errf(err, errlen,
                            "%s: %" PRIu64 " is inside a coalesced group: not a consistent "
                            "point",
                            j->dir, seq);
        }
        point_of(j, seq, out);
        return RT_OK;
    }
    if (mtj_parse_time(spec, &t) == RT_OK) {
        /* the last record with point time <= t (point times never decrease) */
        size_t lo = j->head, hi = j->nrecs;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (j->recs[mid].ptime <= t)
                lo = mid + 1;
            else
                hi = mid;
        }
        uint64_t upto = j->rec_off + lo, d = rec_upto(j, dur);
        uint64_t seq = point_before(j, upto < d ? upto : d);
        point_of(j, seq, out);
        if (out->time_us > t)
            return rt_errf(err, errlen, "%s: no recovery point at or before %s (the oldest is %s)",
                        j->dir, spec, mtj_format_time(out->time_us, a));
        return RT_OK;
    }
    for (size_t i = j->nmarks; i > j->mhead; i--) {
        const jmark_t *mk = &j->marks[i - 1];
        if (strcmp(mk->pt.label, spec) == 0 && mk->pt.seq <= dur && mk->pt.seq >= j->first_pt) {
            *out = mk->pt;
            return RT_OK;
        }
    }
    return rt_errf(err, errlen,
                "%s: no point '%s' (use latest, latest-app, oldest, a sequence number, a UTC "
                "time like 2024-05-01T12:00:00Z, or a bookmark name)",
                j->dir, spec);
}

void mtj_each_point(const mtj_t *j, uint64_t min_gap_us,
                    bool (*fn)(void *arg, const mtj_point_t *p), void *arg)
{
    uint64_t dur = durable_seq(j);
    uint64_t latest = point_before(j, rec_upto(j, dur));
    mtj_point_t pt;

    point_of(j, j->first_pt, &pt);
    if (!fn(arg, &pt))
        return;
    uint64_t last_t = pt.time_us;
    for (size_t i = j->head; i < j->nrecs; i++) {
        const jrec_t *r = &j->recs[i];
        if (r->seq <= j->first_pt)
            continue;
        if (r->seq > dur)
            break;
        bool want = (r->flags & WREC_F_MARK) || r->seq == latest ||
                    (!(r->flags & WREC_F_INTERIOR) && r->ptime - last_t >= min_gap_us);
        if (!want)
            continue;
        point_of(j, r->seq, &pt);
        last_t = pt.time_us;
        if (!fn(arg, &pt))
            return;
    }
}

void mtj_info(const mtj_t *j, mtj_info_t *out)
{
    struct stat st;

    memset(out, 0, sizeof *out);
    out->disk_size = j->disk_size;
    out->first_seq = j->first_pt;
    mtj_point_t pt;
    point_of(j, j->first_pt, &pt);
    out->first_time_us = pt.time_us;
    out->last_seq = last_seq(j);
    out->last_time_us = time_of_last(j);
    out->durable_seq = seglog_durable_seq(j->log);
    out->promoted_seq = j->promoted;
    out->records = j->nrecs - j->head;
    out->marks = j->nmarks - j->mhead;
    out->journal_bytes = seglog_bytes(j->log);
    if (fstat(j->basefd, &st) == 0)
        out->base_bytes = (uint64_t)st.st_blocks * 512u;
    out->retention_us = j->retention_us;
    out->hold_seq = j->hold;
}

/* ---- export and offline restore ------------------------------------------------------------ */

/* read every record up to @seq once and check its data hash */
static int verify_upto(mtj_t *j, uint64_t seq, char *err, size_t errlen)
{
    seglog_iter_t *it = seglog_iter_new(j->log, j->promoted + 1, true, err, errlen);
    wrec_hdr_t h;
    uint64_t done = j->promoted;
    int r;

    if (!it)
        return RT_ERR;
    while ((r = seglog_iter_next(it, seq, &h, NULL, NULL, err, errlen)) == RT_OK)
        done = h.seq;
    seglog_iter_free(it);
    if (r == RT_ERR)
        return RT_ERR;
    uint64_t u = rec_upto(j, seq);
    if (u > live_first(j) && done != jrec_at(j, u - 1)->seq)
        return rt_errf(err, errlen, "%s: the journal ends at %" PRIu64 " before point %" PRIu64,
                    j->dir, done, seq);
    return RT_OK;
}

/* whether the base image has no data in [off, off+len) */
static bool base_hole(const mtj_t *j, uint64_t off, uint64_t len)
{
    off_t d = lseek(j->basefd, (off_t)off, SEEK_DATA);
    if (d < 0)
        return errno == ENXIO; /* no data from here to the end */
    return (uint64_t)d >= off + len;
}

int mtj_export(mtj_t *j, uint64_t seq, const char *out_path, uint64_t *written, char *err,
               size_t errlen)
{
    struct stat st;
    bool sparse = true, created = false;
    uint8_t *buf = NULL;
    uint64_t wrote = 0;
    int fd = -1, rc = RT_ERR;

    if (check_point(j, seq, err, errlen) != RT_OK || verify_upto(j, seq, err, errlen) != RT_OK)
        return RT_ERR;
    if (stat(out_path, &st) == 0 && S_ISBLK(st.st_mode)) {
        sparse = false;
        fd = open(out_path, O_WRONLY | O_CLOEXEC);
    } else {
        fd = open(out_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
        created = fd >= 0;
    }
    if (fd < 0)
        return rt_errf(err, errlen, "%s: open: %s", out_path, strerror(errno));
    if (sparse && ftruncate(fd, (off_t)j->disk_size) != 0) {
        rt_errf(err, errlen, "%s: size: %s", out_path, strerror(errno));
        goto out;
    }
    buf = malloc(EXPORT_CHUNK);
    if (!buf) {
        rt_errf(err, errlen, "out of memory");
        goto out;
    }
    xmap_t *m = map_for(j, seq, err, errlen);
    if (!m)
        goto out;
    for (uint64_t off = 0; off < j->disk_size; off += EXPORT_CHUNK) {
        size_t n = j->disk_size - off < EXPORT_CHUNK ? (size_t)(j->disk_size - off) : EXPORT_CHUNK;
        if (sparse && !xm_any(m, off, off + n) && base_hole(j, off, n))
            continue;
        if (mtj_read(j, seq, off, n, buf, err, errlen) != RT_OK)
            goto out;
        if (sparse && all_zero(buf, n))
            continue;
        if (pwrite_all(fd, buf, n, off) != RT_OK) {
            rt_errf(err, errlen, "%s: write: %s", out_path, strerror(errno));
            goto out;
        }
        wrote += n;
    }
    if (fsync(fd) != 0) {
        rt_errf(err, errlen, "%s: sync: %s", out_path, strerror(errno));
        goto out;
    }
    if (written)
        *written = wrote;
    rc = RT_OK;
out:
    free(buf);
    if (fd >= 0)
        close(fd);
    if (rc != RT_OK && created)
        unlink(out_path);
    return rc;
}

int mtj_restore(const char *mt_dir, const char *pair, const char *point, const char *out_path,
                mtj_point_t *pt, char *err, size_t errlen)
{
    mtj_conf_t conf = { .readonly = true };
    mtj_point_t p;
    mtj_t *j = mtj_open(mt_dir, pair, &conf, err, errlen);
    int rc = RT_ERR;

    if (!j)
        return RT_ERR;
    if (mtj_resolve(j, point, &p, err, errlen) == RT_OK &&
        mtj_export(j, p.seq, out_path, NULL, err, errlen) == RT_OK) {
        if (pt)
            *pt = p;
        rc = RT_OK;
    }
    mtj_close(j);
    return rc;
}

/* ---- time --------------------------------------------------------------------------------- */

char *mtj_format_time(uint64_t us, char *out)
{
    time_t s = (time_t)(us / 1000000u);
    struct tm tm;

    if (!gmtime_r(&s, &tm)) {
        snprintf(out, MTJ_TIME_MAX, "@%" PRIu64, us);
        return out;
    }
    size_t n = strftime(out, MTJ_TIME_MAX, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, MTJ_TIME_MAX - n, ".%06uZ", (unsigned)(us % 1000000u));
    return out;
}

int mtj_parse_time(const char *s, uint64_t *us)
{
    struct tm tm = { 0 }, chk;
    int n = 0;
    uint64_t frac = 0;
    unsigned fdigits = 0;

    if (sscanf(s, "%4d-%2d-%2d%*1[T ]%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
               &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &n) != 6 || n != 19)
        return RT_ERR;
    s += n;
    if (*s == '.') {
        for (s++; *s >= '0' && *s <= '9'; s++, fdigits++)
            if (fdigits < 6)
                frac = frac * 10u + (uint64_t)(*s - '0');
        if (fdigits == 0)
            return RT_ERR;
        for (unsigned k = fdigits; k < 6; k++)
            frac *= 10u;
    }
    if (strcmp(s, "Z") != 0 && strcmp(s, "+00:00") != 0 && *s != '\0')
        return RT_ERR;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    chk = tm;
    time_t t = timegm(&tm);
    if (t == (time_t)-1 || t < 0 || tm.tm_mday != chk.tm_mday || tm.tm_mon != chk.tm_mon ||
        tm.tm_hour != chk.tm_hour || tm.tm_min != chk.tm_min || tm.tm_sec != chk.tm_sec)
        return RT_ERR;
    *us = (uint64_t)t * 1000000u + frac;
    return RT_OK;
}
