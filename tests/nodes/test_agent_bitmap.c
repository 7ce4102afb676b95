/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * test_agent_bitmap.c: the agent's persistent dirty bitmap and activity map
 * (nodes/agent/bitmap.c).
 *
 * Bits set and cleared over unaligned ranges, runs found by bitmap_next()
 * and counted, all checked against a plain model under random operations;
 * persistence across a close without sync (what kill -9 leaves: the page
 * cache) and a reopen; the file layout pinned byte by byte; the activity map
 * folded into the dirty bits when a "crash" left extents active, and not
 * when they were quiesced; the header's meta, a damaged header, a disk of
 * another size. Files live under $TMPDIR (default /dev/shm when present).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <xxhash.h>

#include "nodes/agent/bitmap.h"
#include "rt.h"

static char root[256];
static char path[300];
static char err[512];

#define MiB (1ull << 20)

/* ---- helpers -------------------------------------------------------------------- */

static int setup(void **state)
{
    (void)state;
    const char *t = getenv("TMPDIR");
    if (!t)
        t = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(root, sizeof root, "%s/test_bitmap.XXXXXX", t);
    assert_non_null(mkdtemp(root));
    snprintf(path, sizeof path, "%s/bitmap", root);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    unlink(path);
    char tmp[320];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    unlink(tmp);
    rmdir(root);
    return 0;
}

static bitmap_t *open_bm(uint64_t size, bool create, bool *created)
{
    err[0] = '\0';
    bitmap_t *bm = bitmap_open(path, size, create, created, err, sizeof err);
    if (!bm)
        fail_msg("bitmap_open: %s", err);
    return bm;
}

/* every run of marked blocks, as "first+count ..." */
static void runs(const bitmap_t *bm, uint64_t max, char *out, size_t cap)
{
    uint64_t from = 0, first, count;
    out[0] = '\0';
    for (int i = 0; i < 1000 && bitmap_next(bm, from, max, &first, &count) == RT_OK; i++) {
        size_t n = strlen(out);
        snprintf(out + n, cap - n, "%s%llu+%llu", n ? " " : "", (unsigned long long)first,
                 (unsigned long long)count);
        assert_true(count > 0 && count <= max);
        from = first + count;
    }
}

/* ---- tests ------------------------------------------------------------------------ */

static void test_create_and_ranges(void **state)
{
    (void)state;
    bool created = false;
    uint64_t size = 10 * MiB + 1000; /* a partial last block */
    bitmap_t *bm = open_bm(size, true, &created);
    assert_true(created);
    assert_int_equal(bitmap_blocks(bm), 2561);
    assert_int_equal(bitmap_dirty_blocks(bm), 0);
    assert_int_equal(bitmap_disk_size(bm), size);
    uint64_t first, count;
    assert_int_equal(bitmap_next(bm, 0, 100, &first, &count), BITMAP_END);

    /* an unaligned range touches every block it overlaps */
    assert_int_equal(bitmap_set(bm, 4095, 2, err, sizeof err), RT_OK);
    assert_true(bitmap_test(bm, 0) && bitmap_test(bm, 1) && !bitmap_test(bm, 2));
    assert_int_equal(bitmap_dirty_blocks(bm), 2);
    assert_int_equal(bitmap_dirty_bytes(bm), 8192);
    /* setting again changes nothing */
    assert_int_equal(bitmap_set(bm, 0, 8192, err, sizeof err), RT_OK);
    assert_int_equal(bitmap_dirty_blocks(bm), 2);
    assert_int_equal(bitmap_set(bm, 100 * 4096, 20 * 4096, err, sizeof err), RT_OK);
    char s[256];
    runs(bm, 1000, s, sizeof s);
    assert_string_equal(s, "0+2 100+20");
    runs(bm, 8, s, sizeof s); /* cut at max */
    assert_string_equal(s, "0+2 100+8 108+8 116+4");
    assert_int_equal(bitmap_next(bm, 1, 100, &first, &count), RT_OK);
    assert_int_equal(first, 1);
    assert_int_equal(count, 1);
    assert_int_equal(bitmap_next(bm, 120, 100, &first, &count), BITMAP_END);

    /* the last block counts only up to the disk size; ranges are clamped */
    assert_int_equal(bitmap_set(bm, size - 1, 1000, err, sizeof err), RT_OK);
    assert_true(bitmap_test(bm, 2560));
    assert_false(bitmap_test(bm, 2561));
    assert_int_equal(bitmap_dirty_blocks(bm), 23);
    assert_int_equal(bitmap_dirty_bytes(bm), 22 * 4096 + 1000);
    assert_int_equal(bitmap_set(bm, size, 4096, err, sizeof err), RT_OK); /* past the end */
    assert_int_equal(bitmap_dirty_blocks(bm), 23);

    assert_int_equal(bitmap_clear(bm, 105, 1000000, err, sizeof err), RT_OK);
    runs(bm, 1000, s, sizeof s);
    assert_string_equal(s, "0+2 100+5");
    assert_int_equal(bitmap_clear(bm, 0, 1, err, sizeof err), RT_OK);
    assert_int_equal(bitmap_dirty_blocks(bm), 6);
    assert_int_equal(bitmap_dirty_bytes(bm), 6 * 4096);
    bitmap_close(bm);
}

/* what the page cache holds after kill -9 is what the next open reads */
static void test_persist_without_sync(void **state)
{
    (void)state;
    uint64_t size = 64 * MiB;
    bitmap_t *bm = open_bm(size, true, NULL);
    assert_int_equal(bitmap_set(bm, 3 * 4096, 4096, err, sizeof err), RT_OK);
    assert_int_equal(bitmap_set(bm, 1 * MiB + 512, 3 * MiB, err, sizeof err), RT_OK);
    assert_int_equal(bitmap_clear(bm, 300, 10, err, sizeof err), RT_OK);
    char before[512], after[512];
    runs(bm, 1u << 20, before, sizeof before);
    uint64_t n = bitmap_dirty_blocks(bm);
    bitmap_close(bm); /* no sync */

    bool created = true;
    bm = open_bm(size, true, &created);
    assert_false(created);
    runs(bm, 1u << 20, after, sizeof after);
    assert_string_equal(before, "3+1 256+44 310+715");
    assert_string_equal(after, before);
    assert_int_equal(bitmap_dirty_blocks(bm), n);
    assert_int_equal(bitmap_recovered(bm), 0);
    assert_int_equal(bitmap_sync(bm, err, sizeof err), RT_OK);
    bitmap_close(bm);
}

/* the file layout of bitmap.h, byte by byte */
static void test_layout(void **state)
{
    (void)state;
    uint64_t size = 100 * MiB; /* 25 extents, 25600 blocks */
    bitmap_t *bm = open_bm(size, true, NULL);
    bitmap_meta_t meta = {.epoch = 7, .flags = 1, .sync_from = 42, .sync_end = 99};
    assert_int_equal(bitmap_set_meta(bm, &meta, err, sizeof err), RT_OK);
    assert_int_equal(bitmap_set(bm, 9 * 4096, 4096, err, sizeof err), RT_OK);
    assert_int_equal(bitmap_activate(bm, 13 * BITMAP_EXTENT, 1, err, sizeof err), RT_OK);
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    uint8_t h[128], b[2];
    assert_int_equal(pread(fd, h, sizeof h, 0), sizeof h);
    assert_memory_equal(h, "SSBM", 4);
    assert_int_equal(h[4], 1);
    uint64_t v;
    memcpy(&v, h + 16, 8);
    assert_int_equal(v, size);
    memcpy(&v, h + 24, 8);
    assert_int_equal(v, 7);
    memcpy(&v, h + 40, 8);
    assert_int_equal(v, 42);
    memcpy(&v, h + 48, 8);
    assert_int_equal(v, 99);
    memcpy(&v, h + 120, 8);
    assert_true(v == XXH64(h, 120, 0));
    /* activity: extent 13 is bit 5 of byte 1 at 4096 */
    assert_int_equal(pread(fd, b, 2, 4096), 2);
    assert_int_equal(b[0], 0);
    assert_int_equal(b[1], 1u << 5);
    /* dirty bits after the activity map's page: block 9 is bit 1 of byte 1 */
    assert_int_equal(pread(fd, b, 2, 8192), 2);
    assert_int_equal(b[0], 0);
    assert_int_equal(b[1], 1u << 1);
    close(fd);
    bitmap_close(bm);
}

/* a crash with extents active: their blocks become dirty at the next open */
static void test_activity_fold(void **state)
{
    (void)state;
    uint64_t size = 64 * MiB; /* 16 extents */
    bitmap_t *bm = open_bm(size, true, NULL);
    assert_int_equal(bitmap_activate(bm, 5 * MiB, 100, err, sizeof err), RT_OK); /* extent 1 */
    assert_int_equal(bitmap_activate(bm, 8 * MiB - 1, 2, err, sizeof err), RT_OK); /* 1, 2 */
    assert_int_equal(bitmap_active(bm), 2);
    assert_int_equal(bitmap_dirty_blocks(bm), 0);
    bitmap_close(bm); /* "kill -9": no quiesce */

    bm = open_bm(size, false, NULL);
    assert_int_equal(bitmap_recovered(bm), 2);
    assert_int_equal(bitmap_active(bm), 0);
    assert_int_equal(bitmap_dirty_bytes(bm), 2 * BITMAP_EXTENT);
    char s[128];
    runs(bm, 1u << 20, s, sizeof s);
    assert_string_equal(s, "1024+2048");
    bitmap_close(bm);

    /* folded once: the next open finds no activity, the bits stay */
    bm = open_bm(size, false, NULL);
    assert_int_equal(bitmap_recovered(bm), 0);
    assert_int_equal(bitmap_dirty_bytes(bm), 2 * BITMAP_EXTENT);
    assert_int_equal(bitmap_clear(bm, 0, bitmap_blocks(bm), err, sizeof err), RT_OK);
    /* quiesced activity is not folded */
    assert_int_equal(bitmap_activate(bm, 0, size, err, sizeof err), RT_OK);
    assert_int_equal(bitmap_active(bm), 16);
    assert_int_equal(bitmap_quiesce(bm, err, sizeof err), RT_OK);
    assert_int_equal(bitmap_active(bm), 0);
    assert_int_equal(bitmap_activate(bm, 60 * MiB, 1, err, sizeof err), RT_OK);
    assert_int_equal(bitmap_quiesce(bm, err, sizeof err), RT_OK);
    bitmap_close(bm);
    bm = open_bm(size, false, NULL);
    assert_int_equal(bitmap_recovered(bm), 0);
    assert_int_equal(bitmap_dirty_blocks(bm), 0);
    bitmap_close(bm);
}

static void test_meta_and_refusals(void **state)
{
    (void)state;
    uint64_t size = 8 * MiB;
    /* no file and no create */
    assert_null(bitmap_open(path, size, false, NULL, err, sizeof err));
    assert_non_null(strstr(err, "No such file"));
    bitmap_t *bm = open_bm(size, true, NULL);
    assert_int_equal(bitmap_meta(bm)->epoch, 0);
    bitmap_meta_t meta = {.epoch = 123456789, .flags = 3, .sync_from = 1, .sync_end = 0};
    assert_int_equal(bitmap_set_meta(bm, &meta, err, sizeof err), RT_OK);
    bitmap_close(bm);
    bm = open_bm(size, false, NULL);
    assert_int_equal(bitmap_meta(bm)->epoch, 123456789);
    assert_int_equal(bitmap_meta(bm)->flags, 3);
    assert_int_equal(bitmap_meta(bm)->sync_from, 1);
    bitmap_close(bm);

    /* another disk size */
    assert_null(bitmap_open(path, size + 4096, true, NULL, err, sizeof err));
    assert_non_null(strstr(err, "made for a disk of 8388608 bytes"));
    /* a damaged header */
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, "X", 1, 30), 1);
    close(fd);
    assert_null(bitmap_open(path, size, true, NULL, err, sizeof err));
    assert_non_null(strstr(err, "damaged header"));
}

/* random set/clear against a plain array, then reopened */
static void test_model(void **state)
{
    (void)state;
    uint64_t size = 3 * MiB + 12345;
    uint64_t nb = (size + 4095) / 4096;
    static bool model[1024];
    memset(model, 0, sizeof model);
    bitmap_t *bm = open_bm(size, true, NULL);
    unsigned seed = 12345;
    for (int op = 0; op < 2000; op++) {
        seed = seed * 1103515245u + 12345u;
        uint64_t a = (seed >> 8) % nb;
        seed = seed * 1103515245u + 12345u;
        uint64_t n = 1 + (seed >> 8) % 70;
        if (op % 3) {
            uint64_t off = a * 4096 + (seed % 4096), len = n * 1000;
            assert_int_equal(bitmap_set(bm, off, len, err, sizeof err), RT_OK);
            uint64_t end = off + len > size ? size : off + len;
            for (uint64_t b = off / 4096; b <= (end - 1) / 4096; b++)
                model[b] = true;
        } else {
            assert_int_equal(bitmap_clear(bm, a, n, err, sizeof err), RT_OK);
            for (uint64_t b = a; b < a + n && b < nb; b++)
                model[b] = false;
        }
    }
    for (int round = 0; round < 2; round++) {
        uint64_t want = 0;
        for (uint64_t b = 0; b < nb; b++) {
            want += model[b];
            assert_int_equal(bitmap_test(bm, b), model[b]);
        }
        assert_int_equal(bitmap_dirty_blocks(bm), want);
        /* runs enumerate exactly the marked blocks */
        uint64_t from = 0, first, count, seen = 0;
        while (bitmap_next(bm, from, 37, &first, &count) == RT_OK) {
            for (uint64_t b = first; b < first + count; b++)
                assert_true(model[b]);
            if (first > from)
                assert_false(model[first - 1]);
            seen += count;
            from = first + count;
        }
        assert_int_equal(seen, want);
        bitmap_close(bm);
        bm = open_bm(size, false, NULL);
    }
    bitmap_close(bm);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_create_and_ranges, setup, teardown),
        cmocka_unit_test_setup_teardown(test_persist_without_sync, setup, teardown),
        cmocka_unit_test_setup_teardown(test_layout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_activity_fold, setup, teardown),
        cmocka_unit_test_setup_teardown(test_meta_and_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_model, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
