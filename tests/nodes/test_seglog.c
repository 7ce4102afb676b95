/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * test_seglog.c: the segmented append-only log (nodes/common/seglog.c).
 *
 * Append, group commit and reopen with the records' locations; refusal of
 * gaps and bad batches (nothing written); rollover and sequence continuity
 * across segments; crash simulation: the active segment cut at every byte
 * of its last record, every byte of it altered, garbage after it, each
 * reopening to exactly the complete prefix and appendable again; damage in
 * a sealed segment refused (read-only: the log ends before it); leftover
 * temporary files; trim; iterators that follow appends and build batches;
 * the folder lock; reset; asynchronous commit jobs (durable never ahead of
 * what the sync covered, appends and rollovers during a sync, a failed sync,
 * stale jobs after a reset or a close) and deferred deletion of trimmed
 * segments (a reopen before the deletion ran, or after part of it); a
 * no_sync log never syncs (this binary counts fdatasync and fsync calls by
 * defining them, which the log's calls bind to) yet reopens whole. Logs
 * live under $TMPDIR (default /dev/shm when
 * present, so the thousand reopens stay fast).
 */
#include <setjmp.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nodes/common/seglog.h"
#include "rt.h"

static char root[256];
static char dir[300];
static char err[512];

/* ---- helpers -------------------------------------------------------------------- */

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
    (void)st, (void)flag, (void)f;
    return remove(p);
}

static int setup(void **state)
{
    (void)state;
    const char *t = getenv("TMPDIR");
    if (!t)
        t = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(root, sizeof root, "%s/test_seglog.XXXXXX", t);
    assert_non_null(mkdtemp(root));
    snprintf(dir, sizeof dir, "%s/log", root);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    nftw(root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}

static uint8_t pat(uint64_t seq, size_t i)
{
    return (uint8_t)(seq * 131u + i * 7u + (i >> 8));
}

static uint32_t len_of(uint64_t seq)
{
    return 100u + (uint32_t)(seq * 37u % 900u);
}

/* encode record @seq (DATA, length len_of(seq) unless @len) into @out */
static size_t mkrec(uint8_t *out, uint64_t seq, uint32_t skip, uint32_t len)
{
    static uint8_t data[WREC_MAX_DATA];
    wrec_hdr_t h = { .flags = WREC_F_DATA, .seq = seq, .skip = skip, .offset = seq * 4096u,
                     .time_us = seq };
    size_t n;

    h.len = len ? len : len_of(seq);
    for (size_t i = 0; i < h.len; i++)
        data[i] = pat(seq, i);
    assert_int_equal(wrec_seal(&h, data, NULL), RT_OK);
    assert_int_equal(wrec_encode(&h, data, false, out, WREC_MAX_SIZE, &n, NULL), RT_OK);
    return n;
}

static void check_payload(const wrec_hdr_t *h, const uint8_t *stored)
{
    for (size_t i = 0; i < h->len; i++)
        if (stored[i] != pat(h->seq, i))
            fail_msg("record %" PRIu64 " byte %zu differs", h->seq, i);
}

/* every fdatasync and fsync of this binary (the log's included) counts here */
static unsigned nsyncs;

int fdatasync(int fd)
{
    nsyncs++;
    return (int)syscall(SYS_fdatasync, fd);
}

int fsync(int fd)
{
    nsyncs++;
    return (int)syscall(SYS_fsync, fd);
}

static seglog_t *open_log(uint64_t seg_max, bool create, bool ro, seglog_rec_fn fn, void *arg)
{
    seglog_conf_t c = { .seg_max = seg_max, .create = create, .readonly = ro, .on_rec = fn,
                        .arg = arg };
    return seglog_open(dir, &c, err, sizeof err);
}

/* append records first..last, in batches of @per */
static void append_range(seglog_t *l, uint64_t first, uint64_t last, unsigned per)
{
    static uint8_t batch[8u << 20];
    for (uint64_t s = first; s <= last;) {
        size_t n = 0;
        for (unsigned k = 0; k < per && s <= last; k++, s++)
            n += mkrec(batch + n, s, 0, 0);
        assert_int_equal(seglog_append(l, batch, n, NULL, NULL, err, sizeof err), RT_OK);
    }
}

typedef struct seen {
    uint64_t n;
    uint64_t seq[4096];
    seglog_loc_t loc[4096];
    bool with_payload[4096];
} seen_t;

static void on_rec(void *arg, const wrec_hdr_t *h, const uint8_t *stored, const seglog_loc_t *loc)
{
    seen_t *s = arg;
    assert_true(s->n < 4096);
    s->seq[s->n] = h->seq;
    s->loc[s->n] = *loc;
    s->with_payload[s->n] = stored != NULL;
    if (stored)
        check_payload(h, stored);
    s->n++;
}

static void seg_path(char *out, size_t n, uint64_t base)
{
    snprintf(out, n, "%s/%020" PRIu64 ".seg", dir, base);
}

static uint8_t *slurp(const char *path, size_t *len)
{
    struct stat st;
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(fstat(fd, &st), 0);
    uint8_t *b = malloc((size_t)st.st_size + 1);
    assert_non_null(b);
    assert_int_equal(pread(fd, b, (size_t)st.st_size, 0), st.st_size);
    close(fd);
    *len = (size_t)st.st_size;
    return b;
}

static void spit(const char *path, const uint8_t *b, size_t len)
{
    int fd = open(path, O_WRONLY | O_TRUNC);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, b, len, 0), (ssize_t)len);
    close(fd);
}

static off_t fsize(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return st.st_size;
}

/* iterate everything with verification; @return records seen */
static uint64_t iterate_all(seglog_t *l, uint64_t from)
{
    seglog_iter_t *it = seglog_iter_new(l, from, true, err, sizeof err);
    wrec_hdr_t h;
    const uint8_t *p;
    uint64_t n = 0, prev = 0;
    int r;

    assert_non_null(it);
    while ((r = seglog_iter_next(it, UINT64_MAX, &h, &p, NULL, err, sizeof err)) == RT_OK) {
        assert_true(h.seq >= from);
        if (prev)
            assert_int_equal(h.seq - h.skip, prev + 1);
        prev = h.seq;
        check_payload(&h, p);
        n++;
    }
    assert_int_equal(r, SEGLOG_END);
    seglog_iter_free(it);
    return n;
}

/* ---- tests -------------------------------------------------------------------------- */

static void test_append_commit_reopen(void **state)
{
    (void)state;
    static seen_t at_append, at_open;
    static uint8_t buf[WREC_MAX_SIZE];
    uint64_t d = 99;
    seglog_t *l = open_log(0, false, false, NULL, NULL);

    assert_null(l); /* no such log and no create */
    l = open_log(0, true, false, NULL, NULL);
    assert_non_null(l);
    assert_int_equal(seglog_first_seq(l), 1);
    assert_int_equal(seglog_last_seq(l), 0);
    assert_int_equal(seglog_records(l), 0);
    assert_int_equal(seglog_segments(l), 1);
    assert_int_equal(seglog_bytes(l), SEGLOG_HDR_SIZE);

    memset(&at_append, 0, sizeof at_append);
    for (uint64_t s = 1; s <= 50; s += 10) {
        size_t n = 0;
        for (uint64_t k = s; k < s + 10; k++)
            n += mkrec(buf + n, k, 0, 0);
        assert_int_equal(seglog_append(l, buf, n, on_rec, &at_append, err, sizeof err), RT_OK);
    }
    for (uint64_t s = 51; s <= 60; s++) {
        wrec_hdr_t h;
        seglog_loc_t loc;
        mkrec(buf, s, 0, 0);
        assert_int_equal(wrec_hdr_decode(buf, &h, NULL), RT_OK);
        assert_int_equal(seglog_append_rec(l, &h, buf + WREC_HDR_SIZE, &loc, err, sizeof err),
                         RT_OK);
        at_append.seq[at_append.n] = s;
        at_append.loc[at_append.n++] = loc;
    }
    assert_int_equal(seglog_last_seq(l), 60);
    assert_int_equal(seglog_durable_seq(l), 0); /* nothing committed yet */
    assert_int_equal(seglog_commit(l, &d, err, sizeof err), RT_OK);
    assert_int_equal(d, 60);
    assert_int_equal(seglog_commit(l, &d, err, sizeof err), RT_OK); /* nothing new */
    assert_int_equal(d, 60);
    uint64_t bytes = seglog_bytes(l);
    seglog_close(l);

    memset(&at_open, 0, sizeof at_open);
    l = open_log(0, false, false, on_rec, &at_open);
    assert_non_null(l);
    const char *why;
    assert_int_equal(seglog_recovered(l, &why), 0);
    assert_string_equal(why, "");
    assert_int_equal(at_open.n, 60);
    for (unsigned i = 0; i < 60; i++) {
        assert_int_equal(at_open.seq[i], i + 1);
        assert_int_equal(at_open.seq[i], at_append.seq[i]);
        assert_int_equal(at_open.loc[i].seg, at_append.loc[i].seg);
        assert_int_equal(at_open.loc[i].pos, at_append.loc[i].pos);
        assert_true(at_open.with_payload[i]); /* the active segment is read in full */
    }
    assert_int_equal(seglog_first_seq(l), 1);
    assert_int_equal(seglog_last_seq(l), 60);
    assert_int_equal(seglog_durable_seq(l), 60);
    assert_int_equal(seglog_records(l), 60);
    assert_int_equal(seglog_bytes(l), bytes);
    assert_int_equal(iterate_all(l, 1), 60);
    assert_int_equal(iterate_all(l, 25), 36);

    uint8_t part[10];
    assert_int_equal(seglog_pread(l, &at_open.loc[29], 5, part, sizeof part, err, sizeof err),
                     RT_OK);
    for (unsigned i = 0; i < sizeof part; i++)
        assert_int_equal(part[i], pat(30, 5 + i));
    assert_int_equal(seglog_pread(l, &at_open.loc[59], len_of(60) - 2, part, 10, err, sizeof err),
                     RT_ERR); /* past the end of the segment */
    seglog_close(l);
}

static void test_reject_gap_and_bad_batch(void **state)
{
    (void)state;
    static uint8_t buf[1 << 20];
    size_t n;
    seglog_t *l = open_log(0, true, false, NULL, NULL);

    assert_non_null(l);
    append_range(l, 1, 3, 3);
    uint64_t bytes = seglog_bytes(l);

    n = mkrec(buf, 4, 0, 0);
    n += mkrec(buf + n, 6, 0, 0); /* gap */
    assert_int_equal(seglog_append(l, buf, n, NULL, NULL, err, sizeof err), RT_ERR);
    assert_non_null(strstr(err, "does not follow"));
    assert_int_equal(seglog_bytes(l), bytes);
    assert_int_equal(seglog_last_seq(l), 3);

    n = mkrec(buf, 4, 0, 0);
    size_t second = n;
    n += mkrec(buf + n, 5, 0, 0);
    buf[second + 9] ^= 1; /* header of the second record */
    assert_int_equal(seglog_append(l, buf, n, NULL, NULL, err, sizeof err), RT_ERR);
    assert_non_null(strstr(err, "header checksum"));
    assert_int_equal(seglog_bytes(l), bytes);
    buf[second + 9] ^= 1;
    assert_int_equal(seglog_append(l, buf, n - 1, NULL, NULL, err, sizeof err), RT_ERR);
    assert_int_equal(seglog_bytes(l), bytes); /* cut short: nothing written */

    wrec_hdr_t h;
    mkrec(buf, 3, 0, 0);
    assert_int_equal(wrec_hdr_decode(buf, &h, NULL), RT_OK);
    assert_int_equal(seglog_append_rec(l, &h, buf + WREC_HDR_SIZE, NULL, err, sizeof err), RT_ERR);

    /* coalescing: 6 with skip 2 follows 3; 7 follows 6 */
    n = mkrec(buf, 6, 2, 0);
    n += mkrec(buf + n, 7, 0, 0);
    assert_int_equal(seglog_append(l, buf, n, NULL, NULL, err, sizeof err), RT_OK);
    n = mkrec(buf, 9, 0, 0); /* skip should have been 1 */
    assert_int_equal(seglog_append(l, buf, n, NULL, NULL, err, sizeof err), RT_ERR);
    assert_int_equal(seglog_commit(l, NULL, err, sizeof err), RT_OK);
    seglog_close(l);

    l = open_log(0, false, false, NULL, NULL);
    assert_non_null(l);
    assert_int_equal(seglog_last_seq(l), 7);
    assert_int_equal(seglog_records(l), 5);
    assert_int_equal(iterate_all(l, 1), 5);
    assert_int_equal(iterate_all(l, 4), 2); /* 4 and 5 were absorbed: starts at 6 */
    seglog_close(l);
}

static void test_rollover_continuity(void **state)
{
    (void)state;
    static seen_t s;
    static uint8_t buf[WREC_MAX_SIZE];
    seglog_t *l = open_log(4096, true, false, NULL, NULL);

    assert_non_null(l);
    append_range(l, 1, 40, 40);
    assert_true(seglog_segments(l) >= seglog_bytes(l) / 4096);
    assert_true(seglog_segments(l) >= 5);
    /* a record larger than a segment gets one of its own */
    size_t n = mkrec(buf, 41, 0, 10000);
    assert_int_equal(seglog_append(l, buf, n, NULL, NULL, err, sizeof err), RT_OK);
    unsigned segs = seglog_segments(l);
    append_range(l, 42, 42, 1);
    assert_int_equal(seglog_segments(l), segs + 1);
    assert_int_equal(seglog_commit(l, NULL, err, sizeof err), RT_OK);
    seglog_close(l);

    memset(&s, 0, sizeof s);
    l = open_log(4096, false, false, on_rec, &s);
    assert_non_null(l);
    assert_int_equal(s.n, 42);
    uint64_t segbase = 0;
    unsigned nseg = 0;
    for (unsigned i = 0; i < s.n; i++) {
        char p[400];
        assert_int_equal(s.seq[i], i + 1);
        if (s.loc[i].seg != segbase) {
            /* a new segment is named by the first sequence it holds */
            assert_true(s.loc[i].seg > segbase);
            assert_int_equal(s.loc[i].seg, s.seq[i]);
            assert_int_equal(s.loc[i].pos, SEGLOG_HDR_SIZE);
            segbase = s.loc[i].seg;
            nseg++;
            seg_path(p, sizeof p, segbase);
            assert_true(fsize(p) <= 4096 || s.seq[i] == 41);
            assert_int_equal(s.with_payload[i], i + 1 == s.n); /* sealed: headers only */
        }
    }
    assert_int_equal(nseg, seglog_segments(l));
    assert_int_equal(iterate_all(l, 1), 42);
    seglog_close(l);

    /* a missing segment in the middle: refused; read-only ends before it */
    char p[400];
    seg_path(p, sizeof p, s.loc[20].seg);
    uint64_t before = s.loc[20].seg - 1;
    assert_int_equal(unlink(p), 0);
    l = open_log(4096, false, false, NULL, NULL);
    assert_null(l);
    assert_non_null(strstr(err, "gap"));
    l = open_log(4096, false, true, NULL, NULL);
    assert_non_null(l);
    assert_int_equal(seglog_last_seq(l), before);
    assert_int_equal(iterate_all(l, 1), before);
    seglog_close(l);
}

/* Build a log whose active segment ends with a small record; return the
 * count and, through the pointers, where that last record lies. */
static uint64_t build_crash_log(uint64_t *seg, uint64_t *start, uint64_t *end)
{
    static seen_t s;
    uint8_t *b;
    size_t len;

    seglog_t *l = open_log(4096, true, false, NULL, NULL);
    assert_non_null(l);
    append_range(l, 1, 12, 4);
    assert_int_equal(seglog_commit(l, NULL, err, sizeof err), RT_OK);
    seglog_close(l);
    memset(&s, 0, sizeof s);
    l = open_log(4096, false, false, on_rec, &s);
    assert_non_null(l);
    seglog_close(l);
    assert_int_equal(s.n, 12);
    assert_true(s.loc[11].seg > 1); /* there are sealed segments before it */
    *seg = s.loc[11].seg;
    *start = s.loc[11].pos;
    char p[400];
    seg_path(p, sizeof p, *seg);
    b = slurp(p, &len);
    free(b);
    *end = len;
    assert_int_equal(*end - *start, WREC_HDR_SIZE + len_of(12));
    return 12;
}

static void expect_recovers_to(uint64_t last, uint64_t seg, uint64_t size, uint64_t cut)
{
    char p[400];
    const char *why;
    seglog_t *l = open_log(4096, false, false, NULL, NULL);

    assert_non_null(l);
    assert_int_equal(seglog_last_seq(l), last);
    assert_int_equal(seglog_records(l), last);
    assert_int_equal(seglog_durable_seq(l), last);
    assert_int_equal(seglog_recovered(l, &why), cut);
    if (cut)
        assert_true(why[0] != '\0');
    seg_path(p, sizeof p, seg);
    assert_int_equal(fsize(p), (off_t)size); /* the torn tail is gone from the file */
    seglog_close(l);
}

static void test_crash_cut_every_byte(void **state)
{
    (void)state;
    uint64_t seg, start, end, n = build_crash_log(&seg, &start, &end);
    char p[400];
    size_t len;

    seg_path(p, sizeof p, seg);
    uint8_t *orig = slurp(p, &len);
    assert_int_equal(len, end);

    /* kill -9 between write and fsync: any prefix of the last record */
    for (uint64_t cut = start; cut < end; cut++) {
        spit(p, orig, cut);
        assert_int_equal(truncate(p, (off_t)cut), 0);
        expect_recovers_to(n - 1, seg, start, cut - start);
    }
    spit(p, orig, end);
    expect_recovers_to(n, seg, end, 0);

    /* every byte of the last record altered */
    for (uint64_t i = start; i < end; i++) {
        orig[i] ^= 0x5a;
        spit(p, orig, end);
        expect_recovers_to(n - 1, seg, start, end - start);
        orig[i] ^= 0x5a;
    }
    /* a record in the middle of the active segment altered: cut there */
    spit(p, orig, end);
    orig[SEGLOG_HDR_SIZE + 70] ^= 1;
    spit(p, orig, end);
    {
        seglog_t *l = open_log(4096, false, false, NULL, NULL);
        assert_non_null(l);
        assert_int_equal(seglog_last_seq(l), seg - 1); /* the active segment is empty */
        assert_int_equal(fsize(p), SEGLOG_HDR_SIZE);
        /* and it takes the next record where the sealed ones end */
        append_range(l, seg, seg + 2, 3);
        assert_int_equal(seglog_commit(l, NULL, err, sizeof err), RT_OK);
        seglog_close(l);
        expect_recovers_to(seg + 2, seg, fsize(p), 0);
    }
    orig[SEGLOG_HDR_SIZE + 70] ^= 1;

    /* garbage after the last record (zeros, random) is cut, nothing lost */
    uint8_t *more = malloc(end + 300);
    memcpy(more, orig, end);
    memset(more + end, 0, 300);
    assert_int_equal(truncate(p, 0), 0);
    spit(p, more, end + 300);
    expect_recovers_to(n, seg, end, 300);
    for (unsigned i = 0; i < 300; i++)
        more[end + i] = (uint8_t)(i * 73 + 11);
    spit(p, more, end + 300);
    expect_recovers_to(n, seg, end, 300);
    free(more);

    /* after recovery from a cut the log appends and reopens normally */
    spit(p, orig, end - 5);
    assert_int_equal(truncate(p, (off_t)(end - 5)), 0);
    seglog_t *l = open_log(4096, false, false, NULL, NULL);
    assert_non_null(l);
    append_range(l, n, n + 1, 2);
    assert_int_equal(seglog_commit(l, NULL, err, sizeof err), RT_OK);
    seglog_close(l);
    l = open_log(4096, false, false, NULL, NULL);
    assert_non_null(l);
    assert_int_equal(seglog_last_seq(l), n + 1);
    assert_int_equal(iterate_all(l, 1), n + 1);
    seglog_close(l);
    free(orig);
}

static void test_sealed_damage(void **state)
{
    (void)state;
    static seen_t s;
    seglog_t *l = open_log(4096, true, false, NULL, NULL);
    char p[400];
    size_t len;

    assert_non_null(l);
    append_range(l, 1, 20, 20);
    assert_int_equal(seglog_commit(l, NULL, err, sizeof err), RT_OK);
    seglog_close(l);
    memset(&s, 0, sizeof s);
    l = open_log(4096, false, false, on_rec, &s);
    seglog_close(l);
    /* record 2 lives in the first (sealed) segment */
    assert_int_equal(s.loc[1].seg, 1);
    assert_true(s.loc[19].seg > 1);
    seg_path(p, sizeof p, 1);
    uint8_t *b = slurp(p, &len);

    b[s.loc[1].pos + 10] ^= 0x20; /* its header */
    spit(p, b, len);
    assert_null(open_log(4096, false, false, NULL, NULL));
    assert_non_null(strstr(err, "sealed segment"));
    l = open_log(4096, false, true, NULL, NULL);
    assert_non_null(l);
    assert_int_equal(seglog_last_seq(l), 1);
    seglog_close(l);
    b[s.loc[1].pos + 10] ^= 0x20;

    b[s.loc[1].pos + WREC_HDR_SIZE + 3] ^= 0x20; /* its data */
    spit(p, b, len);
    l = open_log(4096, false, false, NULL, NULL); /* headers of sealed segments are fine */
    assert_non_null(l);
    seglog_iter_t *it = seglog_iter_new(l, 1, true, err, sizeof err);
    wrec_hdr_t h;
    assert_int_equal(seglog_iter_next(it, UINT64_MAX, &h, NULL, NULL, err, sizeof err), RT_OK);
    assert_int_equal(seglog_iter_next(it, UINT64_MAX, &h, NULL, NULL, err, sizeof err), RT_ERR);
    assert_non_null(strstr(err, "data checksum"));
    seglog_iter_free(it);
    seglog_close(l);
    seglog_conf_t c = { .seg_max = 4096, .verify_all = true };
    assert_null(seglog_open(dir, &c, err, sizeof err));
    assert_non_null(strstr(err, "data checksum"));
    b[s.loc[1].pos + WREC_HDR_SIZE + 3] ^= 0x20;
    spit(p, b, len);
    assert_non_null(l = seglog_open(dir, &c, err, sizeof err));
    seglog_close(l);

    /* a leftover from an unfinished segment creation goes away on open */
    char tmp[420];
    snprintf(tmp, sizeof tmp, "%s/%020d.seg.tmp", dir, 99);
    int fd = open(tmp, O_CREAT | O_WRONLY, 0640);
    assert_true(fd >= 0);
    close(fd);
    l = open_log(4096, false, true, NULL, NULL); /* read-only leaves it */
    seglog_close(l);
    assert_int_equal(access(tmp, F_OK), 0);
    l = open_log(4096, false, false, NULL, NULL);
    assert_non_null(l);
    assert_int_equal(seglog_last_seq(l), 20);
    seglog_close(l);
    assert_int_equal(access(tmp, F_OK), -1);
    free(b);
}

static void test_trim(void **state)
{
    (void)state;
    seglog_t *l = open_log(4096, true, false, NULL, NULL);
    wrec_hdr_t h;

    assert_non_null(l);
    append_range(l, 1, 60, 60);
    assert_int_equal(seglog_commit(l, NULL, err, sizeof err), RT_OK);
    unsigned segs = seglog_segments(l);
    uint64_t bytes = seglog_bytes(l);
    assert_true(segs > 6);

    /* an iterator inside a segment that survives keeps going */
    seglog_iter_t *it = seglog_iter_new(l, 30, true, err, sizeof err);
    assert_non_null(it);
    assert_int_equal(seglog_iter_next(it, UINT64_MAX, &h, NULL, NULL, err, sizeof err), RT_OK);
    assert_int_equal(h.seq, 30);

    assert_int_equal(seglog_trim(l, 20, err, sizeof err), RT_OK);
    assert_true(seglog_segments(l) < segs);
    assert_true(seglog_bytes(l) < bytes);
    uint64_t first = seglog_first_seq(l);
    assert_true(first > 1 && first <= 20); /* the segment holding 20 stays */
    assert_int_equal(seglog_records(l), 60 - first + 1);
    assert_int_equal(iterate_all(l, 1), 60 - first + 1);
    for (uint64_t s = 31; s <= 60; s++) {
        assert_int_equal(seglog_iter_next(it, UINT64_MAX, &h, NULL, NULL, err, sizeof err), RT_OK);
        assert_int_equal(h.seq, s);
    }
    seglog_iter_free(it);

    /* trimming everything keeps the active segment */
    assert_int_equal(seglog_trim(l, 1000, err, sizeof err), RT_OK);
    assert_int_equal(seglog_segments(l), 1);
    assert_int_equal(seglog_last_seq(l), 60);
    first = seglog_first_seq(l);
    seglog_close(l);
    l = open_log(4096, false, false, NULL, NULL);
    assert_non_null(l);
    assert_int_equal(seglog_first_seq(l), first);
    assert_int_equal(seglog_last_seq(l), 60);
    append_range(l, 61, 62, 2);
    assert_int_equal(iterate_all(l, 1), 62 - first + 1);
    seglog_close(l);
}

static void test_iterators(void **state)
{
    (void)state;
    static uint8_t buf[WREC_MAX_SIZE];
    seglog_t *l = open_log(4096, true, false, NULL, NULL);
    wrec_hdr_t h;
    const uint8_t *p;
    seglog_loc_t loc;

    assert_non_null(l);
    append_range(l, 1, 5, 5);
    seglog_iter_t *it = seglog_iter_new(l, 1, true, err, sizeof err);
    assert_non_null(it);
    for (uint64_t s = 1; s <= 3; s++) {
        assert_int_equal(seglog_iter_next(it, 3, &h, &p, &loc, err, sizeof err), RT_OK);
        assert_int_equal(h.seq, s);
        check_payload(&h, p);
        uint8_t one;
        assert_int_equal(seglog_pread(l, &loc, 1, &one, 1, err, sizeof err), RT_OK);
        assert_int_equal(one, pat(s, 1));
    }
    assert_int_equal(seglog_iter_next(it, 3, &h, &p, NULL, err, sizeof err), SEGLOG_END);
    assert_int_equal(seglog_iter_seq(it), 4);
    assert_int_equal(seglog_iter_next(it, UINT64_MAX, &h, &p, NULL, err, sizeof err), RT_OK);
    assert_int_equal(seglog_iter_next(it, UINT64_MAX, &h, &p, NULL, err, sizeof err), RT_OK);
    assert_int_equal(h.seq, 5);
    assert_int_equal(seglog_iter_next(it, UINT64_MAX, &h, &p, NULL, err, sizeof err), SEGLOG_END);
    /* it follows appends, across rollovers */
    append_range(l, 6, 30, 7);
    for (uint64_t s = 6; s <= 30; s++) {
        assert_int_equal(seglog_iter_next(it, UINT64_MAX, &h, &p, NULL, err, sizeof err), RT_OK);
        assert_int_equal(h.seq, s);
        check_payload(&h, p);
    }
    assert_int_equal(seglog_iter_next(it, UINT64_MAX, &h, &p, NULL, err, sizeof err), SEGLOG_END);
    seglog_iter_free(it);

    /* batches: whole records back to back, as many as fit */
    it = seglog_iter_new(l, 10, false, err, sizeof err);
    size_t cap = WREC_HDR_SIZE + len_of(10) + WREC_HDR_SIZE + len_of(11) + 10, used = 0;
    uint64_t last = 0;
    assert_int_equal(seglog_iter_batch(it, UINT64_MAX, buf, cap, &used, &last, err, sizeof err),
                     RT_OK);
    assert_int_equal(last, 11);
    assert_int_equal(used, 2 * WREC_HDR_SIZE + len_of(10) + len_of(11));
    wrec_cursor_t c;
    wrec_cursor_init(&c, buf, used);
    for (uint64_t s = 10; s <= 11; s++) {
        assert_int_equal(wrec_cursor_next(&c, &h, &p, NULL), RT_OK);
        assert_int_equal(h.seq, s);
        check_payload(&h, p);
    }
    assert_int_equal(wrec_cursor_next(&c, &h, &p, NULL), WREC_END);
    assert_int_equal(seglog_iter_batch(it, UINT64_MAX, buf, 100, &used, &last, err, sizeof err),
                     RT_ERR); /* cannot hold record 12 */
    assert_int_equal(seglog_iter_batch(it, 20, buf, WREC_MAX_SIZE, &used, &last, err, sizeof err),
                     RT_OK);
    assert_int_equal(last, 20);
    assert_int_equal(seglog_iter_batch(it, 20, buf, WREC_MAX_SIZE, &used, &last, err, sizeof err),
                     SEGLOG_END);
    assert_int_equal(used, 0);
    seglog_iter_free(it);

    /* a reset invalidates older iterators */
    it = seglog_iter_new(l, 1, false, err, sizeof err);
    assert_int_equal(seglog_reset(l, 100, err, sizeof err), RT_OK);
    assert_int_equal(seglog_iter_next(it, UINT64_MAX, &h, &p, NULL, err, sizeof err), RT_ERR);
    seglog_iter_free(it);
    seglog_close(l);
}

static void test_lock_and_reset(void **state)
{
    (void)state;
    seglog_t *l = open_log(0, true, false, NULL, NULL);
    assert_non_null(l);
    append_range(l, 1, 10, 10);
    assert_null(open_log(0, false, false, NULL, NULL));
    assert_non_null(strstr(err, "in use"));
    assert_null(open_log(0, false, true, NULL, NULL));
    assert_int_equal(seglog_commit(l, NULL, err, sizeof err), RT_OK);
    seglog_close(l);

    seglog_t *r1 = open_log(0, false, true, NULL, NULL), *r2 = open_log(0, false, true, NULL, NULL);
    assert_non_null(r1);
    assert_non_null(r2);
    assert_int_equal(seglog_last_seq(r2), 10);
    static uint8_t buf[4096];
    size_t n = mkrec(buf, 11, 0, 0);
    assert_int_equal(seglog_append(r1, buf, n, NULL, NULL, err, sizeof err), RT_ERR);
    assert_null(open_log(0, false, false, NULL, NULL)); /* readers keep writers out */
    seglog_close(r1);
    seglog_close(r2);

    l = open_log(0, false, false, NULL, NULL);
    assert_non_null(l);
    assert_int_equal(seglog_reset(l, 500, err, sizeof err), RT_OK);
    assert_int_equal(seglog_last_seq(l), 499);
    assert_int_equal(seglog_first_seq(l), 500);
    assert_int_equal(seglog_records(l), 0);
    assert_int_equal(seglog_segments(l), 1);
    n = mkrec(buf, 11, 0, 0);
    assert_int_equal(seglog_append(l, buf, n, NULL, NULL, err, sizeof err), RT_ERR);
    append_range(l, 500, 505, 3);
    uint64_t d;
    assert_int_equal(seglog_commit(l, &d, err, sizeof err), RT_OK);
    assert_int_equal(d, 505);
    seglog_close(l);
    l = open_log(0, false, false, NULL, NULL);
    assert_non_null(l);
    assert_int_equal(seglog_first_seq(l), 500);
    assert_int_equal(seglog_last_seq(l), 505);
    assert_int_equal(iterate_all(l, 1), 6);
    seglog_close(l);

    /* an empty folder opened read-only is an empty log */
    char empty[400];
    snprintf(empty, sizeof empty, "%s/empty", root);
    assert_int_equal(mkdir(empty, 0750), 0);
    seglog_conf_t c = { .readonly = true, .first_seq = 7 };
    l = seglog_open(empty, &c, err, sizeof err);
    assert_non_null(l);
    assert_int_equal(seglog_last_seq(l), 6);
    assert_int_equal(seglog_segments(l), 0);
    seglog_iter_t *it = seglog_iter_new(l, 1, true, err, sizeof err);
    wrec_hdr_t h;
    assert_int_equal(seglog_iter_next(it, UINT64_MAX, &h, NULL, NULL, err, sizeof err),
                     SEGLOG_END);
    seglog_iter_free(it);
    seglog_close(l);
}

static void test_durable_at_rollover(void **state)
{
    (void)state;
    seglog_t *l = open_log(4096, true, false, NULL, NULL);
    assert_non_null(l);
    append_range(l, 1, 3, 3);
    assert_int_equal(seglog_durable_seq(l), 0);
    append_range(l, 4, 20, 1); /* crosses segments: each one is synced before the next */
    assert_true(seglog_segments(l) > 1);
    assert_true(seglog_durable_seq(l) >= 3);
    assert_true(seglog_durable_seq(l) < 20);
    uint64_t d;
    assert_int_equal(seglog_commit(l, &d, err, sizeof err), RT_OK);
    assert_int_equal(d, 20);
    seglog_close(l);
}

/* ---- asynchronous commit and deferred deletion ------------------------------------- */

static seglog_t *open_defer(uint64_t seg_max, bool create)
{
    seglog_conf_t c = { .seg_max = seg_max, .create = create, .defer_unlink = true };
    return seglog_open(dir, &c, err, sizeof err);
}

static void test_async_commit(void **state)
{
    (void)state;
    seglog_t *l = open_log(0, true, false, NULL, NULL);
    seglog_job_t *j = NULL, *j2 = NULL;
    uint64_t d = 99;

    assert_non_null(l);
    /* nothing appended: nothing to run */
    assert_int_equal(seglog_commit_begin(l, &j, err, sizeof err), RT_OK);
    assert_null(j);

    append_range(l, 1, 5, 5);
    assert_int_equal(seglog_commit_begin(l, &j, err, sizeof err), RT_OK);
    assert_non_null(j);
    /* one commit in flight at a time */
    assert_int_equal(seglog_commit_begin(l, &j2, err, sizeof err), RT_AGAIN);
    assert_null(j2);
    /* appends go on during the sync; none of it is durable before the end */
    append_range(l, 6, 9, 2);
    assert_int_equal(seglog_durable_seq(l), 0);
    seglog_job_run(j);
    assert_int_equal(seglog_durable_seq(l), 0); /* the worker does not touch the log */
    assert_int_equal(seglog_commit_end(l, j, &d, err, sizeof err), RT_OK);
    /* exactly what the sync covered: not the appends made meanwhile */
    assert_int_equal(d, 5);
    assert_int_equal(seglog_durable_seq(l), 5);

    /* the next job covers those */
    assert_int_equal(seglog_commit_begin(l, &j, err, sizeof err), RT_OK);
    assert_non_null(j);
    seglog_job_run(j);
    assert_int_equal(seglog_commit_end(l, j, &d, err, sizeof err), RT_OK);
    assert_int_equal(d, 9);
    assert_int_equal(seglog_commit_begin(l, &j, err, sizeof err), RT_OK);
    assert_null(j); /* all durable */

    /* a job that never ran (dropped at shutdown) is freed, and then a
     * synchronous commit still works beside a job in flight */
    append_range(l, 10, 10, 1);
    assert_int_equal(seglog_commit_begin(l, &j, err, sizeof err), RT_OK);
    assert_non_null(j);
    assert_int_equal(seglog_commit(l, &d, err, sizeof err), RT_OK);
    assert_int_equal(d, 10);
    seglog_job_run(j);
    assert_int_equal(seglog_commit_end(l, j, &d, err, sizeof err), RT_OK);
    assert_int_equal(d, 10); /* never goes down */
    seglog_close(l);

    l = open_log(0, false, false, NULL, NULL);
    assert_non_null(l);
    assert_int_equal(seglog_last_seq(l), 10);
    assert_int_equal(iterate_all(l, 1), 10);
    seglog_close(l);
}

/* the same life (create, appends over several rollovers, commits, a trim
 * with its deletion job, a reset) with and without no_sync */
static unsigned life_syncs(bool no_sync)
{
    seglog_conf_t c = {.seg_max = 64u << 10, .create = true, .defer_unlink = true,
                       .no_sync = no_sync};
    seglog_job_t *j = NULL;
    uint64_t d = 0;
    unsigned before = nsyncs;
    seglog_t *l = seglog_open(dir, &c, err, sizeof err);
    assert_non_null(l);
    append_range(l, 1, 400, 7); /* 400 x 1 KiB records: several segments */
    assert_true(seglog_segments(l) > 2);
    assert_int_equal(seglog_commit_begin(l, &j, err, sizeof err), RT_OK);
    if (no_sync) {
        assert_null(j); /* nothing to wait for: durable at once */
        assert_int_equal(seglog_durable_seq(l), 400);
    } else {
        assert_non_null(j);
        seglog_job_run(j);
        assert_int_equal(seglog_commit_end(l, j, &d, err, sizeof err), RT_OK);
        assert_int_equal(d, 400);
    }
    append_range(l, 401, 410, 5);
    assert_int_equal(seglog_commit(l, &d, err, sizeof err), RT_OK);
    assert_int_equal(d, 410);
    assert_int_equal(seglog_trim(l, 300, err, sizeof err), RT_OK);
    assert_int_equal(seglog_reap_begin(l, &j, err, sizeof err), RT_OK);
    assert_non_null(j);
    seglog_job_run(j);
    assert_int_equal(seglog_reap_end(l, j, err, sizeof err), RT_OK);
    seglog_close(l);
    /* what was appended is there after a reopen */
    l = seglog_open(dir, &c, err, sizeof err);
    assert_non_null(l);
    assert_int_equal(seglog_last_seq(l), 410);
    assert_true(seglog_first_seq(l) <= 300);
    assert_int_equal(seglog_reset(l, 1000, err, sizeof err), RT_OK);
    seglog_close(l);
    return nsyncs - before;
}

static void test_no_sync(void **state)
{
    (void)state;
    assert_true(life_syncs(false) > 10); /* the counter sees the log's syncs */
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(life_syncs(true), 0);

    /* a no_sync log whose first segment is damaged (what a power loss can
     * leave) is started afresh by a writer's open with create; a synced
     * log in the same state is refused */
    for (int ns = 1; ns >= 0; ns--) {
        seglog_conf_t c = {.create = true, .no_sync = ns};
        assert_int_equal(system(cmd), 0);
        seglog_t *l = seglog_open(dir, &c, err, sizeof err);
        assert_non_null(l);
        append_range(l, 1, 20, 4);
        assert_int_equal(seglog_commit(l, NULL, err, sizeof err), RT_OK);
        seglog_close(l);
        char seg[600];
        snprintf(seg, sizeof seg, "%s/%020d.seg", dir, 1);
        int fd = open(seg, O_WRONLY);
        assert_true(fd >= 0);
        assert_int_equal(pwrite(fd, "garbage!garbage!", 16, 0), 16);
        close(fd);
        l = seglog_open(dir, &c, err, sizeof err);
        if (!ns) {
            assert_null(l);
            continue;
        }
        assert_non_null(l);
        const char *why = NULL;
        assert_true(seglog_recovered(l, &why) > 0);
        assert_non_null(strstr(why, "afresh"));
        assert_int_equal(seglog_records(l), 0);
        assert_int_equal(seglog_last_seq(l), 0);
        append_range(l, 1, 3, 3); /* and it takes records again */
        assert_int_equal(seglog_last_seq(l), 3);
        seglog_close(l);
    }
}

static void test_async_commit_rollover(void **state)
{
    (void)state;
    seglog_t *l = open_log(4096, true, false, NULL, NULL);
    seglog_job_t *j = NULL;
    uint64_t d;

    assert_non_null(l);
    append_range(l, 1, 2, 2);
    unsigned segs = seglog_segments(l);
    assert_int_equal(seglog_commit_begin(l, &j, err, sizeof err), RT_OK);
    assert_non_null(j);
    /* rollovers while the job holds (a dup of) the old active segment */
    append_range(l, 3, 30, 1);
    assert_true(seglog_segments(l) > segs + 2);
    uint64_t at_roll = seglog_durable_seq(l); /* the rollovers synced the sealed ones */
    assert_true(at_roll >= 2 && at_roll < 30);
    seglog_job_run(j);
    assert_int_equal(seglog_commit_end(l, j, &d, err, sizeof err), RT_OK);
    assert_int_equal(d, at_roll); /* the old job's 2 does not take it back */
    assert_int_equal(seglog_commit_begin(l, &j, err, sizeof err), RT_OK);
    assert_non_null(j);
    seglog_job_run(j);
    assert_int_equal(seglog_commit_end(l, j, &d, err, sizeof err), RT_OK);
    assert_int_equal(d, 30);
    seglog_close(l);

    /* a job outliving its log's close is stale: freed, nothing else */
    l = open_log(4096, false, false, NULL, NULL);
    assert_non_null(l);
    assert_int_equal(seglog_last_seq(l), 30);
    append_range(l, 31, 31, 1);
    assert_int_equal(seglog_commit_begin(l, &j, err, sizeof err), RT_OK);
    assert_non_null(j);
    seglog_close(l);
    seglog_job_run(j);
    assert_int_equal(seglog_commit_end(NULL, j, &d, err, sizeof err), RT_OK);
    assert_int_equal(d, 0);

    /* and a job from before a reset raises nothing */
    l = open_log(4096, false, false, NULL, NULL);
    assert_non_null(l);
    assert_int_equal(seglog_last_seq(l), 31); /* the job's sync still made it durable */
    append_range(l, 32, 33, 2);
    assert_int_equal(seglog_commit_begin(l, &j, err, sizeof err), RT_OK);
    assert_non_null(j);
    assert_int_equal(seglog_reset(l, 100, err, sizeof err), RT_OK);
    seglog_job_run(j);
    assert_int_equal(seglog_commit_end(l, j, &d, err, sizeof err), RT_OK);
    assert_int_equal(d, 99);
    seglog_close(l);
}

static void test_async_commit_fails(void **state)
{
    (void)state;
    seglog_t *l = open_log(0, true, false, NULL, NULL);
    seglog_job_t *j = NULL;
    static uint8_t buf[4096];
    uint64_t d;

    assert_non_null(l);
    append_range(l, 1, 4, 4);
    assert_int_equal(seglog_commit(l, NULL, err, sizeof err), RT_OK);
    append_range(l, 5, 8, 4);
    /* the job's descriptor is the lowest free one (F_DUPFD from 0): find it
     * first, then close it under the job so that its fdatasync fails */
    int probe = dup(0);
    assert_true(probe >= 0);
    close(probe);
    assert_int_equal(seglog_commit_begin(l, &j, err, sizeof err), RT_OK);
    assert_non_null(j);
    assert_int_equal(close(probe), 0);
    seglog_job_run(j);
    assert_int_equal(seglog_commit_end(l, j, &d, err, sizeof err), RT_ERR);
    assert_non_null(strstr(err, "sync segment"));
    assert_int_equal(seglog_durable_seq(l), 4); /* nothing new is durable */
    /* failed: refuses everything until reopened */
    size_t n = mkrec(buf, 9, 0, 0);
    assert_int_equal(seglog_append(l, buf, n, NULL, NULL, err, sizeof err), RT_ERR);
    assert_int_equal(seglog_commit_begin(l, &j, err, sizeof err), RT_ERR);
    assert_int_equal(seglog_commit(l, NULL, err, sizeof err), RT_ERR);
    seglog_close(l);
    l = open_log(0, false, false, NULL, NULL);
    assert_non_null(l);
    assert_int_equal(seglog_last_seq(l), 8); /* what the page cache had (no crash here) */
    seglog_close(l);
}

/* the segment file names in the folder */
static unsigned seg_files(void)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    unsigned n = 0;

    assert_non_null(d);
    while ((e = readdir(d)) != NULL)
        if (strlen(e->d_name) == 24 && strcmp(e->d_name + 20, ".seg") == 0)
            n++;
    closedir(d);
    return n;
}

static void test_deferred_unlink(void **state)
{
    (void)state;
    seglog_t *l = open_defer(4096, true);
    seglog_job_t *j = NULL, *j2 = NULL;
    char path[400];

    assert_non_null(l);
    append_range(l, 1, 60, 60);
    assert_int_equal(seglog_commit(l, NULL, err, sizeof err), RT_OK);
    unsigned segs = seglog_segments(l);
    assert_true(segs > 6);
    assert_int_equal(seg_files(), segs);
    assert_false(seglog_reap_pending(l));

    /* the table drops the segments at once, the files stay */
    assert_int_equal(seglog_trim(l, 20, err, sizeof err), RT_OK);
    uint64_t first = seglog_first_seq(l);
    unsigned left = seglog_segments(l);
    assert_true(first > 1 && first <= 20);
    assert_true(left < segs);
    assert_int_equal(seg_files(), segs);
    assert_true(seglog_reap_pending(l));
    assert_int_equal(iterate_all(l, 1), 60 - first + 1);

    /* crash before the deletion ran: the trimmed segments come back, below
     * what a caller wants, and the log is continuous */
    seglog_close(l);
    l = open_defer(4096, false);
    assert_non_null(l);
    assert_int_equal(seglog_first_seq(l), 1);
    assert_int_equal(seglog_segments(l), segs);
    assert_int_equal(iterate_all(l, first), 60 - first + 1);

    /* crash after part of the deletion (oldest first): still continuous */
    assert_int_equal(seglog_trim(l, 20, err, sizeof err), RT_OK);
    assert_int_equal(seglog_first_seq(l), first);
    seglog_close(l);
    seg_path(path, sizeof path, 1);
    assert_int_equal(unlink(path), 0);
    l = open_defer(4096, false);
    assert_non_null(l);
    assert_true(seglog_first_seq(l) > 1 && seglog_first_seq(l) <= first);
    assert_int_equal(seglog_last_seq(l), 60);

    /* the reap job deletes them; appends and trims go on meanwhile */
    assert_int_equal(seglog_trim(l, 20, err, sizeof err), RT_OK);
    assert_int_equal(seglog_first_seq(l), first);
    assert_int_equal(seglog_reap_begin(l, &j, err, sizeof err), RT_OK);
    assert_non_null(j);
    assert_false(seglog_reap_pending(l));
    assert_int_equal(seglog_reap_begin(l, &j2, err, sizeof err), RT_OK);
    assert_null(j2); /* nothing queued */
    append_range(l, 61, 80, 1);
    assert_int_equal(seglog_commit(l, NULL, err, sizeof err), RT_OK);
    unsigned before2 = seglog_segments(l);
    assert_int_equal(seglog_trim(l, 40, err, sizeof err), RT_OK);
    unsigned queued2 = before2 - seglog_segments(l);
    assert_true(queued2 > 0);
    uint64_t first2 = seglog_first_seq(l);
    assert_true(first2 > first);
    assert_int_equal(seglog_reap_begin(l, &j2, err, sizeof err), RT_AGAIN); /* one at a time */
    seglog_job_run(j);
    assert_int_equal(seglog_reap_end(l, j, err, sizeof err), RT_OK);
    /* the first job's files are gone, the second trim's are still there */
    assert_int_equal(seg_files(), seglog_segments(l) + queued2);
    assert_true(seglog_reap_pending(l)); /* the second trim's names */
    assert_int_equal(seglog_reap_begin(l, &j, err, sizeof err), RT_OK);
    assert_non_null(j);
    seglog_job_run(j);
    assert_int_equal(seglog_reap_end(l, j, err, sizeof err), RT_OK);
    assert_int_equal(seg_files(), seglog_segments(l)); /* every trimmed file is gone */
    seglog_close(l);
    l = open_defer(4096, false);
    assert_non_null(l);
    assert_int_equal(seglog_first_seq(l), first2);
    assert_int_equal(iterate_all(l, 1), 80 - first2 + 1);

    /* a reset deletes queued names itself: nothing old is left behind */
    assert_int_equal(seglog_trim(l, 70, err, sizeof err), RT_OK);
    assert_true(seglog_reap_pending(l));
    assert_int_equal(seglog_reap_begin(l, &j, err, sizeof err), RT_OK); /* in flight */
    assert_non_null(j);
    append_range(l, 81, 90, 1);
    assert_int_equal(seglog_trim(l, 85, err, sizeof err), RT_OK); /* queued */
    assert_int_equal(seglog_reset(l, 200, err, sizeof err), RT_OK);
    assert_int_equal(seg_files(), 1);
    seglog_job_run(j); /* its names are gone already: ENOENT is fine */
    assert_int_equal(seglog_reap_end(l, j, err, sizeof err), RT_OK);
    assert_false(seglog_reap_pending(l));
    seglog_close(l);
    l = open_defer(4096, false);
    assert_non_null(l);
    assert_int_equal(seglog_first_seq(l), 200);
    seglog_close(l);
}

static void test_trim_queue_bound(void **state)
{
    (void)state;
    seglog_t *l = open_defer(4096, true);
    seglog_job_t *j = NULL;

    assert_non_null(l);
    append_range(l, 1, 400, 50);
    assert_int_equal(seglog_commit(l, NULL, err, sizeof err), RT_OK);
    unsigned segs = seglog_segments(l);
    assert_true(segs > SEGLOG_DEAD_MAX + 2);
    /* at most SEGLOG_DEAD_MAX names wait: the rest stays in the log */
    assert_int_equal(seglog_trim(l, 400, err, sizeof err), RT_OK);
    assert_int_equal(seglog_segments(l), segs - SEGLOG_DEAD_MAX);
    assert_int_equal(seglog_reap_begin(l, &j, err, sizeof err), RT_OK);
    assert_non_null(j);
    assert_int_equal(seglog_trim(l, 400, err, sizeof err), RT_OK);
    assert_int_equal(seglog_segments(l), segs - SEGLOG_DEAD_MAX); /* in flight count too */
    seglog_job_run(j);
    assert_int_equal(seglog_reap_end(l, j, err, sizeof err), RT_OK);
    assert_int_equal(seglog_trim(l, 400, err, sizeof err), RT_OK);
    assert_true(seglog_segments(l) < segs - SEGLOG_DEAD_MAX);
    assert_int_equal(seg_files(), segs - SEGLOG_DEAD_MAX);
    assert_int_equal(iterate_all(l, seglog_first_seq(l)), 400 - seglog_first_seq(l) + 1);
    seglog_close(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_append_commit_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reject_gap_and_bad_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rollover_continuity, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crash_cut_every_byte, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sealed_damage, setup, teardown),
        cmocka_unit_test_setup_teardown(test_trim, setup, teardown),
        cmocka_unit_test_setup_teardown(test_iterators, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lock_and_reset, setup, teardown),
        cmocka_unit_test_setup_teardown(test_durable_at_rollover, setup, teardown),
        cmocka_unit_test_setup_teardown(test_async_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_async_commit_rollover, setup, teardown),
        cmocka_unit_test_setup_teardown(test_async_commit_fails, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deferred_unlink, setup, teardown),
        cmocka_unit_test_setup_teardown(test_trim_queue_bound, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_sync, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
