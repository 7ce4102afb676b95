/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * fuzz_seglog_recover.c: libFuzzer over seglog crash recovery.
 *
 * The input becomes the body of an active segment file (after a valid
 * segment header, so recovery is always possible): whatever bytes a crash,
 * a torn write or a bad disk leave there. The first input byte selects
 * fix-ups so that the fuzzer gets past the checksums into the deeper rules:
 * bit 0 rewrites each record header's magic, version, reserved field and
 * header checksum; bit 1 also rewrites the data hash of raw payloads; bit 2
 * also renumbers the records 1, 2, 3... The rest is left as it came.
 *
 * Invariants (abort on violation): a writable open always succeeds; it
 * agrees with a read-only open of the untouched bytes; every record it
 * kept reads back verified, in sequence, with nothing after it; reopening
 * cuts nothing more; the log takes the next record and keeps it. The raw
 * body is also walked with the batch cursor.
 */
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <xxhash.h>

#include "nodes/common/seglog.h"
#include "rt.h"

static char dir[256];
static uint8_t file[1u << 20];
static char err[512];

#define CHECK(c)                                                                   \
    do {                                                                           \
        if (!(c)) {                                                                \
            fprintf(stderr, "invariant failed at line %d: %s (%s)\n", __LINE__, #c, \
                    err);                                                          \
            abort();                                                               \
        }                                                                          \
    } while (0)

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void clean(void)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char p[600];

    if (!d)
        abort();
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        unlink(p);
    }
    closedir(d);
}

static void cleanup(void)
{
    char top[256];
    clean();
    rmdir(dir);
    snprintf(top, sizeof top, "%s", dir);
    char *slash = strrchr(top, '/');
    if (slash) {
        *slash = '\0';
        rmdir(top);
    }
}

static void init(void)
{
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    char t[200];
    snprintf(t, sizeof t, "%s/fuzz_seglog.XXXXXX", base);
    if (!mkdtemp(t))
        abort();
    snprintf(dir, sizeof dir, "%s/log", t);
    if (mkdir(dir, 0750) != 0)
        abort();
    atexit(cleanup);
}

/* the segment header of FORMAT.md, for segment 1 */
static void seg_header(uint8_t *p)
{
    memset(p, 0, SEGLOG_HDR_SIZE);
    memcpy(p, "SSSG", 4);
    p[4] = SEGLOG_VERSION;
    p[6] = SEGLOG_HDR_SIZE;
    put64(p + 8, 1);
    put64(p + 16, 1700000000000000ull);
    put64(p + 24, SEGLOG_SEG_MAX_DEFAULT);
    put64(p + 56, XXH64(p, 56, 0));
}

static void fix_records(uint8_t *b, size_t n, unsigned mode)
{
    uint64_t seq = 1;

    for (size_t pos = 0; pos + WREC_HDR_SIZE <= n; seq++) {
        uint8_t *h = b + pos;
        uint32_t len = get32(h + 24), stored = get32(h + 28);
        memcpy(h, "SSWR", 4);
        h[4] = WREC_VERSION;
        h[5] = 0;
        memset(h + 52, 0, 4);
        if (mode & 4) {
            put64(h + 8, seq);
            memset(h + 48, 0, 4);
        }
        bool fits = stored <= n - pos - WREC_HDR_SIZE;
        uint16_t flags = (uint16_t)(h[6] | h[7] << 8);
        if ((mode & 2) && fits && stored == len && !(flags & WREC_F_LZ4))
            put64(h + 40, XXH64(h + WREC_HDR_SIZE, stored, 0));
        put64(h + 56, XXH64(h, 56, 0));
        if (!fits)
            break;
        pos += WREC_HDR_SIZE + stored;
    }
}

static void write_seg(const uint8_t *b, size_t n)
{
    char p[600];
    snprintf(p, sizeof p, "%s/%020d.seg", dir, 1);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0640);
    if (fd < 0 || write(fd, b, n) != (ssize_t)n)
        abort();
    close(fd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    seglog_conf_t rw = { 0 }, ro = { .readonly = true };
    size_t n;

    if (!dir[0])
        init();
    if (size < 1 || size > sizeof file - SEGLOG_HDR_SIZE)
        return 0;

    /* the raw body through the batch cursor */
    {
        wrec_cursor_t c;
        wrec_hdr_t h;
        const uint8_t *p;
        int r;
        wrec_cursor_init(&c, data + 1, size - 1);
        while ((r = wrec_cursor_next(&c, &h, &p, NULL)) == RT_OK)
            CHECK(p + h.stored <= data + size);
        CHECK(r == WREC_END || r == RT_ERR);
    }

    clean();
    seg_header(file);
    memcpy(file + SEGLOG_HDR_SIZE, data + 1, size - 1);
    n = SEGLOG_HDR_SIZE + size - 1;
    if (data[0] & 1)
        fix_records(file + SEGLOG_HDR_SIZE, size - 1, data[0]);
    write_seg(file, n);

    /* read-only first: it must not change the file */
    seglog_t *l = seglog_open(dir, &ro, err, sizeof err);
    CHECK(l != NULL);
    uint64_t ro_last = seglog_last_seq(l), ro_recs = seglog_records(l);
    seglog_close(l);

    l = seglog_open(dir, &rw, err, sizeof err);
    CHECK(l != NULL);
    uint64_t last = seglog_last_seq(l), recs = seglog_records(l);
    CHECK(last == ro_last && recs == ro_recs);
    CHECK(recs == 0 || seglog_first_seq(l) <= last);

    seglog_iter_t *it = seglog_iter_new(l, 0, true, err, sizeof err);
    CHECK(it != NULL);
    wrec_hdr_t h;
    const uint8_t *p;
    uint64_t got = 0, prev = 0;
    int r;
    while ((r = seglog_iter_next(it, UINT64_MAX, &h, &p, NULL, err, sizeof err)) == RT_OK) {
        CHECK(h.seq - h.skip == prev + 1); /* the first one follows the name, 1 */
        prev = h.seq;
        got++;
    }
    CHECK(r == SEGLOG_END);
    CHECK(got == recs);
    CHECK(prev == last || (recs == 0 && last == 0));
    seglog_iter_free(it);
    seglog_close(l);

    /* recovery is done once: nothing more to cut */
    l = seglog_open(dir, &rw, err, sizeof err);
    CHECK(l != NULL);
    CHECK(seglog_recovered(l, NULL) == 0);
    CHECK(seglog_last_seq(l) == last);

    /* and the log goes on */
    uint8_t rec[WREC_HDR_SIZE + 16];
    wrec_hdr_t nh = { .flags = WREC_F_DATA, .seq = last + 1, .offset = 0, .len = 16 };
    size_t rn;
    CHECK(wrec_seal(&nh, "0123456789abcdef", NULL) == RT_OK);
    CHECK(wrec_encode(&nh, "0123456789abcdef", false, rec, sizeof rec, &rn, NULL) == RT_OK);
    CHECK(seglog_append(l, rec, rn, NULL, NULL, err, sizeof err) == RT_OK);
    CHECK(seglog_commit(l, NULL, err, sizeof err) == RT_OK);
    seglog_close(l);
    l = seglog_open(dir, &rw, err, sizeof err);
    CHECK(l != NULL);
    CHECK(seglog_last_seq(l) == last + 1);
    CHECK(seglog_records(l) == recs + 1);
    seglog_close(l);
    return 0;
}
