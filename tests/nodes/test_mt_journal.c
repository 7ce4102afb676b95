/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * test_mt_journal.c: the master target's retention journal (nodes/mt/journal.c).
 *
 * A reference model (the disk as a byte array, writes applied in order,
 * snapshots kept at chosen sequences) is compared byte for byte with
 * mtj_read() at every snapshot point, before and after reopening (index
 * rebuilt from the headers), with mtj_export() and the offline
 * mtj_restore(), and across retention promotions (byte budget, hold), an
 * interrupted promotion (read-only and writable reopen), point resolution
 * and listing, the refusals of mtj_append(), sparse output, the commit in
 * two halves (a job: durable and promotion wait for its end) with deferred
 * deletion of promoted segments (a reopen before it ran), and a 256 MiB
 * disk with 100000 records. Random writes are unaligned DATA (raw and LZ4),
 * ZERO, TRIM, MARK and coalesced (INTERIOR) records, generated
 * deterministically from their sequence number.
 */
#include <setjmp.h>
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
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "nodes/common/wrec.h"
#include "nodes/mt/journal.h"
#include "rt.h"

#define T0 1700000000000000ull /* µs: record s is captured at T0 + s ms */
#define MS 1000ull

static char root[256], mtdir[300];
static char err[512];
static uint8_t batch[8u << 20];
static size_t blen;

/* ---- helpers ---------------------------------------------------------------- */

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
    snprintf(root, sizeof root, "%s/test_mtj.XXXXXX", t);
    assert_non_null(mkdtemp(root));
    snprintf(mtdir, sizeof mtdir, "%s/mt", root);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    nftw(root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}

static uint64_t mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

/* Record @seq for a disk of @disk bytes, deterministic; @data gets the
 * payload. @return whether to LZ4-encode it. */
static bool gen(uint64_t seq, uint64_t disk, uint32_t maxlen, wrec_hdr_t *h, uint8_t *data)
{
    uint64_t r = mix(seq * 0x9e3779b97f4a7c15ull + disk);
    unsigned k = (unsigned)(r % 20);
    bool lz4 = false;

    memset(h, 0, sizeof *h);
    h->seq = seq;
    h->time_us = T0 + seq * MS;
    if (k < 16 || k >= 18) {
        h->flags = k < 14 || k >= 18 ? WREC_F_DATA : (k == 14 ? WREC_F_ZERO : WREC_F_TRIM);
        h->len = 1 + (uint32_t)(mix(r + 1) % maxlen);
        if (h->len > disk)
            h->len = (uint32_t)disk;
        h->offset = mix(r + 2) % (disk - h->len + 1);
        if (h->flags & WREC_F_DATA) {
            lz4 = k >= 18;
            uint64_t x = mix(r + 3) | 1;
            for (uint32_t i = 0; i < h->len; i++) {
                if (lz4) {
                    data[i] = (uint8_t)(seq + i / 100);
                } else {
                    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
                    data[i] = (uint8_t)x;
                }
            }
        }
        if (seq % 10 == 3 || seq % 10 == 4)
            h->flags |= WREC_F_INTERIOR;
    } else {
        h->flags = WREC_F_MARK | (seq % 3 == 0 ? WREC_F_APP : 0);
        h->len = (uint32_t)snprintf((char *)data, 64, "cp-%" PRIu64, seq);
    }
    return lz4;
}

static void apply_model(uint8_t *model, const wrec_hdr_t *h, const uint8_t *data)
{
    if (h->flags & WREC_F_DATA)
        memcpy(model + h->offset, data, h->len);
    else if (h->flags & (WREC_F_ZERO | WREC_F_TRIM))
        memset(model + h->offset, 0, h->len);
}

static void add(uint64_t seq, const wrec_hdr_t *h0, const uint8_t *data, bool lz4)
{
    wrec_hdr_t h = *h0;
    size_t n;
    assert_int_equal(wrec_seal(&h, data, NULL), RT_OK);
    assert_int_equal(wrec_encode(&h, data, lz4, batch + blen, sizeof batch - blen, &n, NULL),
                     RT_OK);
    (void)seq;
    blen += n;
}

static uint64_t last_of(mtj_t *j)
{
    mtj_info_t in;
    mtj_info(j, &in);
    return in.last_seq;
}

static void flush(mtj_t *j, bool commit)
{
    uint64_t last = 0, d = 0;
    if (blen) {
        assert_int_equal(mtj_append(j, batch, blen, &last, err, sizeof err), RT_OK);
        assert_int_equal(last, last_of(j));
        blen = 0;
    }
    if (commit) {
        assert_int_equal(mtj_commit(j, &d, err, sizeof err), RT_OK);
        assert_int_equal(d, last_of(j));
    }
}

/* whether the generator makes the boundary after @seq a consistent point */
static bool gen_point(uint64_t seq, uint64_t disk)
{
    static uint8_t data[WREC_MAX_DATA];
    wrec_hdr_t h;
    gen(seq, disk, 1024, &h, data);
    return wrec_is_point(&h);
}

/* the first sequence in [from, to] that is (@point) or is not a point */
static uint64_t find_seq(uint64_t from, uint64_t to, uint64_t disk, bool point)
{
    for (uint64_t s = from; s <= to; s++)
        if (gen_point(s, disk) == point)
            return s;
    fail_msg("no such sequence in [%" PRIu64 ", %" PRIu64 "]", from, to);
    return 0;
}

static mtj_t *jopen(uint64_t disk, uint64_t seg_max, bool create, bool ro)
{
    mtj_conf_t c = { .disk_size = create ? disk : 0, .seg_max = seg_max, .create = create,
                     .readonly = ro, .retention_us = 100 * MS };
    return mtj_open(mtdir, "pair-1", &c, err, sizeof err);
}

typedef struct snap {
    uint64_t seq;
    uint8_t *img;
} snap_t;

/* Generate records first..last into @j (batches of ~@per, commit each),
 * applying them to @model and copying it into the snapshots that fall in. */
static void feed(mtj_t *j, uint64_t first, uint64_t last, uint64_t disk, uint32_t maxlen,
                 uint8_t *model, snap_t *snaps, int nsnaps, unsigned per)
{
    static uint8_t data[WREC_MAX_DATA];
    wrec_hdr_t h;

    for (uint64_t s = first; s <= last; s++) {
        bool lz4 = gen(s, disk, maxlen, &h, data);
        apply_model(model, &h, data);
        add(s, &h, data, lz4);
        for (int i = 0; i < nsnaps; i++)
            if (snaps[i].seq == s)
                memcpy(snaps[i].img, model, disk);
        if ((s - first + 1) % per == 0 || s == last || blen > sizeof batch - (1u << 20))
            flush(j, true);
    }
}

/* compare the point @seq with @img, reading in uneven chunks */
static void expect_point(mtj_t *j, uint64_t seq, const uint8_t *img, uint64_t disk)
{
    static uint8_t buf[1u << 20];
    uint64_t off = 0, step = 1 + seq % 7;

    while (off < disk) {
        size_t n = (size_t)(mix(off + step) % (200u << 10)) + 1;
        if (n > disk - off)
            n = (size_t)(disk - off);
        assert_int_equal(mtj_read(j, seq, off, n, buf, err, sizeof err), RT_OK);
        if (memcmp(buf, img + off, n) != 0) {
            size_t i = 0;
            while (buf[i] == img[off + i])
                i++;
            fail_msg("point %" PRIu64 ": byte %" PRIu64 " is %u, model %u", seq, off + i, buf[i],
                     img[off + i]);
        }
        off += n;
    }
}

static void expect_file(const char *path, const uint8_t *img, uint64_t disk)
{
    static uint8_t buf[1u << 20];
    struct stat st;
    int fd = open(path, O_RDONLY);

    assert_true(fd >= 0);
    assert_int_equal(fstat(fd, &st), 0);
    assert_int_equal((uint64_t)st.st_size, disk);
    for (uint64_t off = 0; off < disk; off += sizeof buf) {
        size_t n = disk - off < sizeof buf ? (size_t)(disk - off) : sizeof buf;
        assert_int_equal(pread(fd, buf, n, (off_t)off), (ssize_t)n);
        assert_memory_equal(buf, img + off, n);
    }
    close(fd);
}

static uint64_t file_blocks(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return (uint64_t)st.st_blocks * 512u;
}

/* ---- tests ------------------------------------------------------------------------ */

#define DISK1 (1u << 20)

static void test_points_match_model(void **state)
{
    (void)state;
    static uint8_t model[DISK1];
    uint64_t seqs[] = { 0, 1, 13, 50, 123, 200, 277, 350, 399, 400 };
    snap_t snaps[10];
    mtj_t *j;

    for (int i = 0; i < 10; i++) {
        snaps[i].seq = seqs[i];
        snaps[i].img = calloc(1, DISK1);
    }
    memset(model, 0, sizeof model);
    j = jopen(DISK1, 64u << 10, true, false);
    assert_non_null(j);
    feed(j, 1, 400, DISK1, 64u << 10, model, snaps, 10, 17);
    for (int i = 0; i < 10; i++)
        expect_point(j, snaps[i].seq, snaps[i].img, DISK1);
    /* points in reverse order too (the cached map rebuilt, not extended) */
    for (int i = 9; i >= 0; i--)
        expect_point(j, snaps[i].seq, snaps[i].img, DISK1);
    assert_int_equal(mtj_read(j, 401, 0, 1, model, err, sizeof err), RT_ERR);
    assert_int_equal(mtj_read(j, 400, DISK1 - 1, 2, model, err, sizeof err), RT_ERR);
    mtj_close(j);

    /* reopened: the index comes back from the headers */
    j = jopen(0, 64u << 10, false, false);
    assert_non_null(j);
    mtj_info_t in;
    mtj_info(j, &in);
    assert_int_equal(in.last_seq, 400);
    assert_int_equal(in.durable_seq, 400);
    assert_int_equal(in.first_seq, 0);
    assert_int_equal(in.records, 400);
    assert_int_equal(in.disk_size, DISK1);
    for (int i = 0; i < 10; i++)
        expect_point(j, snaps[i].seq, snaps[i].img, DISK1);
    char out[400];
    snprintf(out, sizeof out, "%s/img", root);
    for (int i = 0; i < 10; i += 3) {
        uint64_t w = 0;
        assert_int_equal(mtj_export(j, snaps[i].seq, out, &w, err, sizeof err), RT_OK);
        expect_file(out, snaps[i].img, DISK1);
    }
    /* the offline restore refuses while the journal is open */
    assert_int_equal(mtj_restore(mtdir, "pair-1", "latest", out, NULL, err, sizeof err), RT_ERR);
    assert_non_null(strstr(err, "in use"));
    mtj_close(j);

    mtj_point_t pt;
    assert_int_equal(mtj_restore(mtdir, "pair-1", "latest", out, &pt, err, sizeof err), RT_OK);
    assert_int_equal(pt.seq, 400);
    expect_file(out, snaps[9].img, DISK1);
    assert_int_equal(mtj_restore(mtdir, "pair-1", "200", out, &pt, err, sizeof err), RT_OK);
    assert_int_equal(pt.seq, 200);
    expect_file(out, snaps[5].img, DISK1);
    char spec[32];
    snprintf(spec, sizeof spec, "%" PRIu64, find_seq(1, 400, DISK1, false));
    assert_int_equal(mtj_restore(mtdir, "pair-1", spec, out, &pt, err, sizeof err), RT_ERR);
    assert_non_null(strstr(err, "coalesced"));
    assert_int_equal(mtj_restore(mtdir, "nope", "latest", out, &pt, err, sizeof err), RT_ERR);
    for (int i = 0; i < 10; i++)
        free(snaps[i].img);
}

static void test_promotion(void **state)
{
    (void)state;
    static uint8_t model[DISK1];
    uint64_t seqs[] = { 100, 150, 200, 250, 260, 280, 300 };
    snap_t snaps[7];
    mtj_info_t in, before;
    uint64_t p;
    char base[400];

    for (int i = 0; i < 7; i++) {
        snaps[i].seq = seqs[i];
        snaps[i].img = calloc(1, DISK1);
    }
    memset(model, 0, sizeof model);
    mtj_t *j = jopen(DISK1, 32u << 10, true, false);
    assert_non_null(j);
    feed(j, 1, 300, DISK1, 32u << 10, model, snaps, 7, 25);
    mtj_info(j, &before);

    /* retention 100 ms: at T0 + 250 ms, records up to 150 are due */
    assert_int_equal(mtj_retain(j, T0 + 250 * MS + 1, 0, &p, err, sizeof err), RT_OK);
    assert_int_equal(p, 150);
    mtj_info(j, &in);
    assert_int_equal(in.promoted_seq, 150);
    assert_int_equal(in.first_seq, 150);
    assert_int_equal(in.records, 150);
    assert_true(in.journal_bytes < before.journal_bytes);
    snprintf(base, sizeof base, "%s/pair-1/base.img", mtdir);
    expect_file(base, snaps[1].img, DISK1);
    assert_int_equal(mtj_read(j, 149, 0, 1, model, err, sizeof err), RT_ERR);
    for (int i = 1; i < 7; i++)
        expect_point(j, snaps[i].seq, snaps[i].img, DISK1);

    /* a byte budget: several calls, each ending on a consistent point */
    uint64_t prev = 150;
    for (int round = 0; round < 100 && prev < 250; round++) {
        assert_int_equal(mtj_retain(j, T0 + 350 * MS + 1, 64u << 10, &p, err, sizeof err), RT_OK);
        assert_true(p > prev);
        assert_true(p <= 250);
        assert_true(gen_point(p, DISK1));
        prev = p;
        expect_point(j, 260, snaps[4].img, DISK1);
    }
    assert_int_equal(prev, 250);
    expect_file(base, snaps[3].img, DISK1);

    /* a hold stops it; releasing lets it reach the last durable point */
    mtj_hold(j, 262);
    assert_int_equal(mtj_retain(j, T0 + 10000 * MS, 0, &p, err, sizeof err), RT_OK);
    assert_int_equal(p, 262);
    assert_int_equal(mtj_promote(j, 270, err, sizeof err), RT_ERR);
    mtj_hold(j, UINT64_MAX);
    assert_int_equal(mtj_promote(j, find_seq(263, 300, DISK1, false), err, sizeof err),
                     RT_ERR); /* interior */
    expect_point(j, 280, snaps[5].img, DISK1);
    assert_int_equal(mtj_retain(j, T0 + 10000 * MS, 0, &p, err, sizeof err), RT_OK);
    assert_int_equal(p, 300);
    expect_file(base, snaps[6].img, DISK1);
    expect_point(j, 300, snaps[6].img, DISK1);
    mtj_info(j, &in);
    assert_int_equal(in.records, 0);
    /* new writes after a full promotion */
    feed(j, 301, 320, DISK1, 32u << 10, model, NULL, 0, 5);
    expect_point(j, 320, model, DISK1);
    mtj_close(j);

    j = jopen(0, 32u << 10, false, false);
    assert_non_null(j);
    mtj_info(j, &in);
    assert_int_equal(in.promoted_seq, 300);
    assert_int_equal(in.last_seq, 320);
    expect_point(j, 300, snaps[6].img, DISK1);
    expect_point(j, 320, model, DISK1);
    mtj_close(j);
    for (int i = 0; i < 7; i++)
        free(snaps[i].img);
}

/* segment files in the journal's log folder */
static unsigned jseg_files(void)
{
    char path[400];
    struct dirent *e;
    unsigned n = 0;

    snprintf(path, sizeof path, "%s/pair-1/journal", mtdir);
    DIR *d = opendir(path);
    assert_non_null(d);
    while ((e = readdir(d)) != NULL)
        if (strlen(e->d_name) == 24 && strcmp(e->d_name + 20, ".seg") == 0)
            n++;
    closedir(d);
    return n;
}

static mtj_t *jopen_defer(uint64_t disk, uint64_t seg_max, bool create)
{
    mtj_conf_t c = { .disk_size = create ? disk : 0, .seg_max = seg_max, .create = create,
                     .retention_us = 100 * MS, .defer_unlink = true };
    return mtj_open(mtdir, "pair-1", &c, err, sizeof err);
}

static void test_async_commit_deferred_trim(void **state)
{
    (void)state;
    static uint8_t model[DISK1], data[WREC_MAX_DATA];
    snap_t snap = { 220, calloc(1, DISK1) };
    seglog_job_t *job = NULL, *job2 = NULL;
    mtj_info_t in;
    wrec_hdr_t h;
    uint64_t d = 0, p = 0, last = 0;

    assert_non_null(snap.img);
    memset(model, 0, sizeof model);
    mtj_t *j = jopen_defer(DISK1, 32u << 10, true);
    assert_non_null(j);
    feed(j, 1, 200, DISK1, 32u << 10, model, &snap, 1, 25);
    /* 201..220 appended, a commit job begins, 221..230 come during its sync */
    for (uint64_t s = 201; s <= 230; s++) {
        bool lz4 = gen(s, DISK1, 32u << 10, &h, data);
        apply_model(model, &h, data);
        add(s, &h, data, lz4);
        if (s == 220) {
            memcpy(snap.img, model, DISK1);
            flush(j, false);
            assert_int_equal(mtj_commit_begin(j, &job, err, sizeof err), RT_OK);
            assert_non_null(job);
            assert_int_equal(mtj_commit_begin(j, &job2, err, sizeof err), RT_AGAIN);
        }
    }
    flush(j, false);
    mtj_info(j, &in);
    assert_int_equal(in.last_seq, 230);
    /* before the job's end only what rollovers synced (sealed segments) is
     * durable, never the active segment's tail */
    uint64_t rolled = in.durable_seq;
    assert_true(rolled >= 200 && rolled < 230);
    seglog_job_run(job);
    assert_int_equal(mtj_commit_end(j, job, &d, err, sizeof err), RT_OK);
    /* what the sync covered (220), not 221..230 appended during it */
    assert_int_equal(d, rolled > 220 ? rolled : 220);
    mtj_info(j, &in);
    assert_int_equal(in.durable_seq, d);
    /* promotion never passes durable: the far future promotes up to <= d */
    assert_int_equal(mtj_retain(j, T0 + 100000 * MS, 0, &p, err, sizeof err), RT_OK);
    assert_true(p > 150 && p <= d);
    assert_true(gen_point(p, DISK1));
    /* the promoted segments left the journal's table; their files wait */
    unsigned files = jseg_files();
    assert_true(mtj_reap_pending(j));
    mtj_info(j, &in);
    assert_int_equal(in.promoted_seq, p);
    if (p <= 220)
        expect_point(j, 220, snap.img, DISK1);
    expect_point(j, 230, model, DISK1);
    assert_int_equal(mtj_commit(j, &last, err, sizeof err), RT_OK);
    assert_int_equal(last, 230);
    mtj_close(j); /* a crash before the deletion ran */

    j = jopen_defer(0, 32u << 10, false);
    assert_non_null(j);
    mtj_info(j, &in);
    assert_int_equal(in.promoted_seq, p);
    assert_int_equal(in.last_seq, 230);
    assert_int_equal(jseg_files(), files); /* the old segments are back, below P: ignored */
    if (p <= 220)
        expect_point(j, 220, snap.img, DISK1);
    expect_point(j, 230, model, DISK1);
    /* promoting again queues them, and a job deletes them */
    feed(j, 231, 240, DISK1, 32u << 10, model, NULL, 0, 5);
    assert_int_equal(mtj_retain(j, T0 + 100000 * MS, 0, &p, err, sizeof err), RT_OK);
    assert_true(p > 230);
    assert_true(mtj_reap_pending(j));
    assert_int_equal(mtj_reap_begin(j, &job, err, sizeof err), RT_OK);
    assert_non_null(job);
    seglog_job_run(job);
    assert_int_equal(mtj_reap_end(j, job, err, sizeof err), RT_OK);
    assert_false(mtj_reap_pending(j));
    assert_true(jseg_files() < files);
    expect_point(j, 240, model, DISK1);
    mtj_close(j);
    j = jopen_defer(0, 32u << 10, false);
    assert_non_null(j);
    expect_point(j, 240, model, DISK1);
    mtj_close(j);
    free(snap.img);
}

static void write_state(uint64_t disk, uint64_t promoted, uint64_t ptime, uint64_t target)
{
    char text[512], path[400];
    int n = snprintf(text, sizeof text,
                     "secondsite-mt-journal 1\ndisk_size %" PRIu64 "\npromoted_seq %" PRIu64
                     "\npromoted_time_us %" PRIu64 "\ntarget_seq %" PRIu64 "\n",
                     disk, promoted, ptime, target);
    n += snprintf(text + n, sizeof text - (size_t)n, "checksum %016" PRIx64 "\n",
                  (uint64_t)XXH64(text, (size_t)n, 0));
    snprintf(path, sizeof path, "%s/pair-1/state", mtdir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, (size_t)n, f), (size_t)n);
    fclose(f);
}

static void test_interrupted_promotion(void **state)
{
    (void)state;
    static uint8_t model[DISK1], data[WREC_MAX_DATA];
    uint64_t seqs[] = { 120, 150, 200 };
    snap_t snaps[3];
    char base[400];
    mtj_info_t in;

    for (int i = 0; i < 3; i++) {
        snaps[i].seq = seqs[i];
        snaps[i].img = calloc(1, DISK1);
    }
    memset(model, 0, sizeof model);
    mtj_t *j = jopen(DISK1, 32u << 10, true, false);
    assert_non_null(j);
    feed(j, 1, 200, DISK1, 32u << 10, model, snaps, 3, 40);
    mtj_close(j);

    /* crash in the middle of promoting 0 -> 120: the state names the target
     * and the base holds some of those writes, out of order */
    write_state(DISK1, 0, 0, 120);
    snprintf(base, sizeof base, "%s/pair-1/base.img", mtdir);
    int fd = open(base, O_WRONLY);
    assert_true(fd >= 0);
    for (uint64_t s = 120; s >= 1; s -= 3) {
        wrec_hdr_t h;
        gen(s, DISK1, 32u << 10, &h, data);
        if (h.flags & WREC_F_DATA)
            assert_int_equal(pwrite(fd, data, h.len, (off_t)h.offset), (ssize_t)h.len);
        if (s < 3)
            break;
    }
    close(fd);

    j = jopen(0, 0, false, true); /* read-only: points from the target on are right */
    assert_non_null(j);
    mtj_info(j, &in);
    assert_int_equal(in.first_seq, 120);
    assert_int_equal(in.promoted_seq, 0);
    for (int i = 0; i < 3; i++)
        expect_point(j, snaps[i].seq, snaps[i].img, DISK1);
    assert_int_equal(mtj_read(j, 119, 0, 1, data, err, sizeof err), RT_ERR);
    mtj_point_t pt;
    assert_int_equal(mtj_resolve(j, "oldest", &pt, err, sizeof err), RT_OK);
    assert_int_equal(pt.seq, 120);
    wrec_hdr_t h120;
    gen(120, DISK1, 32u << 10, &h120, data);
    assert_int_equal(pt.kind, !(h120.flags & WREC_F_MARK) ? MTJ_PT_BASE
                              : (h120.flags & WREC_F_APP) ? MTJ_PT_APP : MTJ_PT_MARK);
    assert_int_equal(mtj_promote(j, 150, err, sizeof err), RT_ERR);
    mtj_close(j);

    j = jopen(0, 0, false, false); /* writable: the promotion is finished */
    assert_non_null(j);
    mtj_info(j, &in);
    assert_int_equal(in.promoted_seq, 120);
    assert_int_equal(in.first_seq, 120);
    expect_file(base, snaps[0].img, DISK1);
    for (int i = 0; i < 3; i++)
        expect_point(j, snaps[i].seq, snaps[i].img, DISK1);
    mtj_close(j);
    char path[400];
    snprintf(path, sizeof path, "%s/pair-1/state", mtdir);
    FILE *f = fopen(path, "r");
    char text[512] = "";
    assert_true(fread(text, 1, sizeof text - 1, f) > 0);
    fclose(f);
    assert_non_null(strstr(text, "\npromoted_seq 120\n"));
    assert_non_null(strstr(text, "\ntarget_seq 120\n"));
    assert_non_null(strstr(text, "\npromoted_time_us 1700000000120000\n"));

    /* a damaged state file is refused */
    f = fopen(path, "r+");
    fseek(f, 30, SEEK_SET);
    fputc('9', f);
    fclose(f);
    assert_null(jopen(0, 0, false, true));
    assert_non_null(strstr(err, "checksum"));
    for (int i = 0; i < 3; i++)
        free(snaps[i].img);
}

/* kill -9 of the master target while a batch was being written */
static void test_torn_journal_tail(void **state)
{
    (void)state;
    static uint8_t model[DISK1], at100[DISK1];
    snap_t snaps[1] = { { 100, at100 } };
    char seg[600];
    struct stat st;

    memset(model, 0, sizeof model);
    mtj_t *j = jopen(DISK1, 0, true, false);
    assert_non_null(j);
    feed(j, 1, 100, DISK1, 16u << 10, model, snaps, 1, 10);
    mtj_close(j);
    snprintf(seg, sizeof seg, "%s/pair-1/journal/%020d.seg", mtdir, 1);
    assert_int_equal(stat(seg, &st), 0);
    off_t size100 = st.st_size;

    j = jopen(0, 0, false, false);
    assert_non_null(j);
    feed(j, 101, 110, DISK1, 16u << 10, model, NULL, 0, 10);
    mtj_close(j);
    assert_int_equal(truncate(seg, size100 + 40), 0); /* inside record 101's header */

    j = jopen(0, 0, false, false);
    assert_non_null(j);
    mtj_info_t in;
    mtj_info(j, &in);
    assert_int_equal(in.last_seq, 100);
    assert_int_equal(in.durable_seq, 100);
    expect_point(j, 100, at100, DISK1);
    assert_int_equal(stat(seg, &st), 0);
    assert_int_equal(st.st_size, size100);
    /* the sender resends from 101 */
    memcpy(model, at100, DISK1);
    feed(j, 101, 110, DISK1, 16u << 10, model, NULL, 0, 10);
    expect_point(j, 110, model, DISK1);
    expect_point(j, 100, at100, DISK1);
    mtj_close(j);
}

typedef struct plist {
    int n;
    mtj_point_t pt[512];
} plist_t;

static bool collect(void *arg, const mtj_point_t *p)
{
    plist_t *l = arg;
    if (l->n >= 512)
        return false;
    l->pt[l->n++] = *p;
    return true;
}

static void test_resolve_and_points(void **state)
{
    (void)state;
    static uint8_t model[DISK1], data[WREC_MAX_DATA];
    static plist_t pl;
    mtj_point_t pt;
    char t[MTJ_TIME_MAX];
    uint64_t us;

    /* time formatting and parsing */
    assert_string_equal(mtj_format_time(1700000000123456ull, t), "2023-11-14T22:13:20.123456Z");
    assert_int_equal(mtj_parse_time(t, &us), RT_OK);
    assert_int_equal(us, 1700000000123456ull);
    assert_int_equal(mtj_parse_time("2023-11-14T22:13:20Z", &us), RT_OK);
    assert_int_equal(us, 1700000000000000ull);
    assert_int_equal(mtj_parse_time("2023-11-14 22:13:20.5", &us), RT_OK);
    assert_int_equal(us, 1700000000500000ull);
    assert_int_equal(mtj_parse_time("2023-11-14T22:13:20+00:00", &us), RT_OK);
    assert_int_equal(mtj_parse_time("2023-13-01T00:00:00Z", &us), RT_ERR);
    assert_int_equal(mtj_parse_time("2023-02-30T00:00:00Z", &us), RT_ERR);
    assert_int_equal(mtj_parse_time("2023-01-01T00:00:00.Z", &us), RT_ERR);
    assert_int_equal(mtj_parse_time("2023-01-01T00:00:00+02:00", &us), RT_ERR);
    assert_int_equal(mtj_parse_time("yesterday", &us), RT_ERR);

    memset(model, 0, sizeof model);
    mtj_t *j = jopen(DISK1, 0, true, false);
    assert_non_null(j);
    feed(j, 1, 100, DISK1, 16u << 10, model, NULL, 0, 10);

    assert_int_equal(mtj_resolve(j, "latest", &pt, err, sizeof err), RT_OK);
    assert_int_equal(pt.seq, 100);
    assert_int_equal(pt.time_us, T0 + 100 * MS);
    assert_int_equal(mtj_resolve(j, "oldest", &pt, err, sizeof err), RT_OK);
    assert_int_equal(pt.seq, 0);
    assert_int_equal(mtj_resolve(j, "57", &pt, err, sizeof err), RT_OK);
    assert_int_equal(pt.seq, 57);
    char spec[32];
    snprintf(spec, sizeof spec, "%" PRIu64, find_seq(1, 100, DISK1, false));
    assert_int_equal(mtj_resolve(j, spec, &pt, err, sizeof err), RT_ERR);
    assert_non_null(strstr(err, "coalesced"));
    assert_int_equal(mtj_resolve(j, "101", &pt, err, sizeof err), RT_ERR);
    assert_non_null(strstr(err, "outside the retention window"));
    /* a time between records: the latest consistent point at or before it */
    assert_int_equal(mtj_resolve(j, mtj_format_time(T0 + 44 * MS + 500, t), &pt, err, sizeof err),
                     RT_OK);
    uint64_t want = 44;
    while (!gen_point(want, DISK1))
        want--;
    assert_int_equal(pt.seq, want);
    assert_int_equal(mtj_resolve(j, mtj_format_time(T0 + 45 * MS, t), &pt, err, sizeof err),
                     RT_OK);
    assert_int_equal(pt.seq, 45);
    assert_int_equal(mtj_resolve(j, "2001-01-01T00:00:00Z", &pt, err, sizeof err), RT_OK);
    assert_int_equal(pt.seq, 0); /* the empty disk before the first write */

    /* marks: by label, latest-app; compare with the generator */
    uint64_t last_mark = 0, last_app = 0;
    for (uint64_t s = 1; s <= 100; s++) {
        wrec_hdr_t h;
        gen(s, DISK1, 16u << 10, &h, data);
        if (h.flags & WREC_F_MARK) {
            last_mark = s;
            if (h.flags & WREC_F_APP)
                last_app = s;
        }
    }
    assert_true(last_mark > 0 && last_app > 0);
    char label[32];
    snprintf(label, sizeof label, "cp-%" PRIu64, last_mark);
    assert_int_equal(mtj_resolve(j, label, &pt, err, sizeof err), RT_OK);
    assert_int_equal(pt.seq, last_mark);
    assert_string_equal(pt.label, label);
    assert_true(pt.kind == MTJ_PT_MARK || pt.kind == MTJ_PT_APP);
    assert_int_equal(mtj_resolve(j, "latest-app", &pt, err, sizeof err), RT_OK);
    assert_int_equal(pt.seq, last_app);
    assert_int_equal(pt.kind, MTJ_PT_APP);
    assert_int_equal(mtj_resolve(j, "no-such-bookmark", &pt, err, sizeof err), RT_ERR);

    /* appended but not committed: not offered as a point */
    wrec_hdr_t h;
    bool lz = gen(101, DISK1, 16u << 10, &h, data);
    h.flags &= (uint16_t)~WREC_F_INTERIOR;
    add(101, &h, data, lz);
    assert_int_equal(mtj_append(j, batch, blen, NULL, err, sizeof err), RT_OK);
    blen = 0;
    assert_int_equal(mtj_resolve(j, "latest", &pt, err, sizeof err), RT_OK);
    assert_int_equal(pt.seq, 100);
    assert_int_equal(mtj_commit(j, NULL, err, sizeof err), RT_OK);
    assert_int_equal(mtj_resolve(j, "latest", &pt, err, sizeof err), RT_OK);
    assert_int_equal(pt.seq, 101);

    /* listing: oldest first, marks and the latest always, gaps of 20 ms */
    memset(&pl, 0, sizeof pl);
    mtj_each_point(j, 20 * MS, collect, &pl);
    assert_true(pl.n > 5);
    assert_int_equal(pl.pt[0].seq, 0);
    assert_int_equal(pl.pt[0].kind, MTJ_PT_BASE);
    assert_int_equal(pl.pt[pl.n - 1].seq, 101);
    int marks = 0;
    for (int i = 1; i < pl.n; i++) {
        assert_true(pl.pt[i].seq > pl.pt[i - 1].seq);
        assert_true(pl.pt[i].seq == 101 || gen_point(pl.pt[i].seq, DISK1));
        if (pl.pt[i].kind == MTJ_PT_MARK || pl.pt[i].kind == MTJ_PT_APP)
            marks++;
        else if (pl.pt[i].seq != 101)
            assert_true(pl.pt[i].time_us - pl.pt[i - 1].time_us >= 20 * MS);
    }
    mtj_info_t in;
    mtj_info(j, &in);
    assert_int_equal(marks, (int)in.marks);
    memset(&pl, 0, sizeof pl);
    mtj_each_point(j, 0, collect, &pl);
    int npoints = 1 + 1; /* the oldest and 101 */
    for (uint64_t s = 1; s <= 100; s++)
        npoints += gen_point(s, DISK1);
    assert_int_equal(pl.n, npoints); /* every boundary but the interior ones */
    mtj_close(j);

    /* labels of marks in sealed segments are read back at open */
    j = jopen(0, 0, false, true);
    assert_int_equal(mtj_resolve(j, label, &pt, err, sizeof err), RT_OK);
    assert_int_equal(pt.seq, last_mark);
    mtj_close(j);
}

static void test_append_refusals(void **state)
{
    (void)state;
    static uint8_t data[WREC_MAX_DATA];
    mtj_info_t in, before;
    wrec_hdr_t h = { .flags = WREC_F_DATA, .offset = 0, .len = 4096, .time_us = T0 };
    mtj_conf_t bad = { .create = true };

    assert_null(mtj_open(mtdir, "pair-1", &bad, err, sizeof err)); /* no disk size */
    assert_null(mtj_open(mtdir, "../x", &bad, err, sizeof err));
    assert_non_null(strstr(err, "bad pair name"));
    mtj_t *j = jopen(DISK1, 0, true, false);
    assert_non_null(j);
    memset(data, 7, 4096);
    for (uint64_t s = 1; s <= 5; s++) {
        h.seq = s;
        add(s, &h, data, false);
    }
    flush(j, true);
    mtj_info(j, &before);

    /* a payload altered after capture */
    h.seq = 6;
    add(6, &h, data, false);
    batch[WREC_HDR_SIZE + 100] ^= 1;
    assert_int_equal(mtj_append(j, batch, blen, NULL, err, sizeof err), RT_ERR);
    assert_non_null(strstr(err, "data checksum"));
    blen = 0;
    /* past the end of the disk */
    h.offset = DISK1 - 100;
    add(6, &h, data, false);
    assert_int_equal(mtj_append(j, batch, blen, NULL, err, sizeof err), RT_ERR);
    assert_non_null(strstr(err, "past the end"));
    blen = 0;
    h.offset = 0;
    /* a gap */
    h.seq = 7;
    add(7, &h, data, false);
    assert_int_equal(mtj_append(j, batch, blen, NULL, err, sizeof err), RT_ERR);
    assert_non_null(strstr(err, "does not follow"));
    blen = 0;
    /* a good record followed by a bad one: nothing appended */
    h.seq = 6;
    add(6, &h, data, false);
    h.seq = 7;
    add(7, &h, data, false);
    batch[blen - 1] ^= 1;
    assert_int_equal(mtj_append(j, batch, blen, NULL, err, sizeof err), RT_ERR);
    blen = 0;
    mtj_info(j, &in);
    assert_int_equal(in.last_seq, 5);
    assert_int_equal(in.journal_bytes, before.journal_bytes);

    /* a resend: duplicates first are skipped, the rest appended */
    uint64_t last;
    for (uint64_t s = 3; s <= 8; s++) {
        h.seq = s;
        add(s, &h, data, false);
    }
    assert_int_equal(mtj_append(j, batch, blen, &last, err, sizeof err), RT_OK);
    blen = 0;
    assert_int_equal(last, 8);
    mtj_info(j, &in);
    assert_int_equal(in.records, 8);
    for (uint64_t s = 5; s <= 6; s++) { /* all duplicates: nothing to do */
        h.seq = s;
        add(s, &h, data, false);
    }
    assert_int_equal(mtj_append(j, batch, blen, &last, err, sizeof err), RT_OK);
    blen = 0;
    assert_int_equal(last, 8);
    h.seq = 9;
    add(9, &h, data, false);
    h.seq = 4; /* a duplicate after a new record is out of order */
    add(4, &h, data, false);
    assert_int_equal(mtj_append(j, batch, blen, &last, err, sizeof err), RT_ERR);
    blen = 0;
    assert_int_equal(mtj_commit(j, NULL, err, sizeof err), RT_OK);
    mtj_close(j);

    /* read-only refuses writes; the size must match */
    j = jopen(0, 0, false, true);
    assert_non_null(j);
    h.seq = 9;
    add(9, &h, data, false);
    assert_int_equal(mtj_append(j, batch, blen, NULL, err, sizeof err), RT_ERR);
    blen = 0;
    assert_int_equal(mtj_retain(j, T0 * 2, 0, NULL, err, sizeof err), RT_ERR);
    mtj_close(j);
    mtj_conf_t c = { .disk_size = DISK1 * 2 };
    assert_null(mtj_open(mtdir, "pair-1", &c, err, sizeof err));
    assert_non_null(strstr(err, "does not match"));
}

static void test_restore_sparse(void **state)
{
    (void)state;
    const uint64_t disk = 64u << 20;
    uint8_t *model = calloc(1, disk);
    static uint8_t data[1u << 20];
    struct { uint16_t flags; uint64_t off; uint32_t len; uint8_t fill; } w[] = {
        { WREC_F_DATA, 0, 65536, 0xa1 },
        { WREC_F_DATA, 10u << 20, 65536 + 3, 0xa2 },
        { WREC_F_DATA, (40u << 20) + 5, 65536, 0xa3 },
        { WREC_F_ZERO, (10u << 20) + 4096, 8192, 0 },
        { WREC_F_DATA, 20u << 20, 1u << 20, 0 },       /* data that is all zeros */
        { WREC_F_TRIM, 30u << 20, 4u << 20, 0 },
        { WREC_F_DATA, disk - 4096, 4096, 0xa4 },
    };
    char out[400], base[400];

    mtj_t *j = jopen(disk, 0, true, false);
    assert_non_null(j);
    for (unsigned i = 0; i < sizeof w / sizeof w[0]; i++) {
        wrec_hdr_t h = { .flags = w[i].flags, .seq = i + 1, .offset = w[i].off, .len = w[i].len,
                         .time_us = T0 };
        memset(data, w[i].fill, w[i].len > sizeof data ? sizeof data : w[i].len);
        apply_model(model, &h, data);
        add(i + 1, &h, data, i % 2 == 0);
    }
    flush(j, true);
    snprintf(out, sizeof out, "%s/restored.img", root);
    uint64_t written = 0;
    assert_int_equal(mtj_export(j, 7, out, &written, err, sizeof err), RT_OK);
    expect_file(out, model, disk);
    assert_true(written <= 4u << 20); /* the chunks holding data, never the zeros */
    assert_true(file_blocks(out) <= 4u << 20);

    /* everything promoted: the base is sparse and so is the next restore */
    assert_int_equal(mtj_promote(j, 7, err, sizeof err), RT_OK);
    snprintf(base, sizeof base, "%s/pair-1/base.img", mtdir);
    expect_file(base, model, disk);
    assert_true(file_blocks(base) <= 512u << 10); /* zero data and ZERO/TRIM are holes */
    /* an existing bigger file is cut to the disk size */
    assert_int_equal(truncate(out, (off_t)disk * 2), 0);
    assert_int_equal(mtj_export(j, 7, out, &written, err, sizeof err), RT_OK);
    expect_file(out, model, disk);
    assert_true(written <= 4u << 20);
    assert_true(file_blocks(out) <= 4u << 20);
    mtj_close(j);
    free(model);
}

/* ---- scale: 256 MiB disk, 100000 records -------------------------------------------- */

#define BIG_DISK  (256ull << 20)
#define SECT      512u
#define HOT       (32u << 20) /* most writes land in the first 32 MiB */
#define NREC      100000u

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* the content of sector @sec written by record @seq */
static void sector_fill(uint8_t *p, uint64_t seq, uint64_t sec)
{
    uint64_t v = seq << 32 | sec;
    for (unsigned i = 0; i < SECT; i += 8)
        memcpy(p + i, &v, 8);
}

static void expect_sectors(const uint8_t *buf, uint64_t off, size_t n, const uint32_t *owner)
{
    uint8_t want[SECT];
    for (size_t i = 0; i < n; i += SECT) {
        uint64_t sec = (off + i) / SECT;
        if (owner[sec])
            sector_fill(want, owner[sec], sec);
        else
            memset(want, 0, SECT);
        if (memcmp(buf + i, want, SECT) != 0)
            fail_msg("sector %" PRIu64 " differs (owner %u)", sec, owner[sec]);
    }
}

static void test_scale(void **state)
{
    (void)state;
    const uint64_t nsect = BIG_DISK / SECT;
    uint32_t *owner = calloc(nsect, sizeof *owner), *half = calloc(nsect, sizeof *owner);
    static uint8_t data[8 * SECT], buf[1u << 20];
    double t = now_s();

    mtj_t *j = jopen(BIG_DISK, 0, true, false);
    assert_non_null(j);
    for (uint64_t s = 1; s <= NREC; s++) {
        uint64_t r = mix(s);
        uint32_t ns = 1 + (uint32_t)(r % 8);
        /* 1 % elsewhere, in one MiB out of every 16 */
        uint64_t sec = (r >> 8) % 100 == 0
                           ? ((r >> 16) % 16) * (16u << 20) / SECT + (r >> 24) % (2048 - ns)
                           : (r >> 16) % (HOT / SECT - ns);
        wrec_hdr_t h = { .flags = WREC_F_DATA, .seq = s, .offset = sec * SECT, .len = ns * SECT,
                         .time_us = T0 + s };
        for (uint32_t k = 0; k < ns; k++) {
            sector_fill(data + k * SECT, s, sec + k);
            owner[sec + k] = (uint32_t)s;
        }
        add(s, &h, data, r % 10 != 0);
        if (blen > sizeof batch - (1u << 16))
            flush(j, s % 20000 < 1000);
        if (s == NREC / 2) {
            flush(j, true);
            memcpy(half, owner, nsect * sizeof *owner);
        }
    }
    flush(j, true);
    mtj_info_t in;
    mtj_info(j, &in);
    print_message("scale: %u records appended in %.2f s, journal %.1f MiB\n", NREC, now_s() - t,
                  (double)in.journal_bytes / (1 << 20));
    mtj_close(j);

    t = now_s();
    j = jopen(0, 0, false, false);
    assert_non_null(j);
    print_message("scale: reopened (index rebuilt) in %.2f s\n", now_s() - t);
    t = now_s();
    for (uint64_t off = 0; off < HOT; off += sizeof buf) {
        assert_int_equal(mtj_read(j, NREC, off, sizeof buf, buf, err, sizeof err), RT_OK);
        expect_sectors(buf, off, sizeof buf, owner);
    }
    print_message("scale: latest point, 32 MiB read and checked in %.2f s\n", now_s() - t);
    t = now_s();
    for (uint64_t off = 0; off < HOT; off += sizeof buf) {
        assert_int_equal(mtj_read(j, NREC / 2, off, sizeof buf, buf, err, sizeof err), RT_OK);
        expect_sectors(buf, off, sizeof buf, half);
    }
    print_message("scale: point %u (map built), 32 MiB read and checked in %.2f s\n", NREC / 2,
                  now_s() - t);
    for (unsigned k = 0; k < 200; k++) {
        uint64_t off = (mix(k + 77) % (BIG_DISK / 4096)) * 4096;
        assert_int_equal(mtj_read(j, NREC, off, 4096, buf, err, sizeof err), RT_OK);
        expect_sectors(buf, off, 4096, owner);
        assert_int_equal(mtj_read(j, NREC / 2, off, 4096, buf, err, sizeof err), RT_OK);
        expect_sectors(buf, off, 4096, half);
    }
    t = now_s();
    char out[400];
    snprintf(out, sizeof out, "%s/big.img", root);
    assert_int_equal(mtj_export(j, NREC, out, NULL, err, sizeof err), RT_OK);
    print_message("scale: restored 256 MiB (sparse) in %.2f s, %.1f MiB allocated\n",
                  now_s() - t, (double)file_blocks(out) / (1 << 20));
    assert_true(file_blocks(out) < 64ull << 20);
    int fd = open(out, O_RDONLY);
    for (uint64_t off = 0; off < HOT; off += sizeof buf) {
        assert_int_equal(pread(fd, buf, sizeof buf, (off_t)off), (ssize_t)sizeof buf);
        expect_sectors(buf, off, sizeof buf, owner);
    }
    close(fd);
    mtj_close(j);
    free(owner);
    free(half);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_points_match_model, setup, teardown),
        cmocka_unit_test_setup_teardown(test_promotion, setup, teardown),
        cmocka_unit_test_setup_teardown(test_async_commit_deferred_trim, setup, teardown),
        cmocka_unit_test_setup_teardown(test_interrupted_promotion, setup, teardown),
        cmocka_unit_test_setup_teardown(test_torn_journal_tail, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resolve_and_points, setup, teardown),
        cmocka_unit_test_setup_teardown(test_append_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restore_sparse, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scale, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
