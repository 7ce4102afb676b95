/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * diskbench: the disk and compression stages of `make bench`, measured on the
 * benchmark's own test image so that every figure in the table is about the
 * same bytes.
 *
 *   diskbench fsync SRC DST       copy SRC to a new file DST in 1 MiB pwrite()s,
 *                                 each followed by fdatasync() (what a journal
 *                                 with group commit does at best); prints MB/s
 *                                 and the fdatasync latency p50/p99
 *   diskbench lz4 SRC             LZ4_compress_default() on every 1 MiB block
 *                                 of SRC, on one core; prints MB/s of input,
 *                                 the ratio, the share of zero blocks and of
 *                                 incompressible blocks
 *   diskbench mutate FILE SHARE SEED
 *                                 overwrite SHARE (0..1) of FILE's 4 KiB blocks,
 *                                 chosen at random from SEED, with random
 *                                 bytes; prints how many blocks and bytes
 *                                 changed
 *
 * Output is one line of KEY=VALUE pairs on stdout (the driver tools/bench/run
 * parses it); errors are one line on stderr and exit 1, bad usage exits 2.
 * MB is 10^6 bytes. Only the stage itself is timed: reading SRC (from the
 * page cache: the driver reads it once before) is outside the lz4 clock and
 * inside the fsync clock, where it is small next to the disk.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <lz4.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define BLOCK       (1u << 20) /* stage block: 1 MiB */
#define SMALL_BLOCK 4096u      /* mutate granularity: the file system's block */
#define MB          1e6
#define MAX_BLOCKS  (1u << 20) /* 1 TiB of 1 MiB blocks: bounds the latency array */

enum { OK = 0, FAIL = 1, USAGE = 2 };

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int fail(const char *what, const char *path)
{
    fprintf(stderr, "diskbench: %s %s: %s\n", what, path, strerror(errno));
    return FAIL;
}

/* read up to @len bytes at @off (fewer only at end of file); -1 on error */
static ssize_t read_full(int fd, void *buf, size_t len, off_t off)
{
    size_t got = 0;
    while (got < len) {
        ssize_t n = pread(fd, (char *)buf + got, len - got, off + (off_t)got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0)
            break;
        got += (size_t)n;
    }
    return (ssize_t)got;
}

static int write_full(int fd, const void *buf, size_t len, off_t off)
{
    size_t put = 0;
    while (put < len) {
        ssize_t n = pwrite(fd, (const char *)buf + put, len - put, off + (off_t)put);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        put += (size_t)n;
    }
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* the @p quantile (0..1) of the @n sorted values (nearest rank) */
static double quantile(const double *v, size_t n, double p)
{
    if (n == 0)
        return 0;
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return v[i < n ? i : n - 1];
}

static bool all_zero(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return false;
    return true;
}

/* xorshift64*: cheap, seedable, good enough for picking blocks and filling them */
static uint64_t rnd(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ull;
}

/* ---- fsync: sequential write, fdatasync every block ------------------------ */

static int cmd_fsync(const char *src, const char *dst)
{
    int rc = FAIL, in = -1, out = -1;
    unsigned char *buf = NULL;
    double *lat = NULL;
    size_t nlat = 0;
    uint64_t bytes = 0;
    struct stat st;

    in = open(src, O_RDONLY);
    if (in < 0 || fstat(in, &st) != 0) {
        rc = fail("cannot open", src);
        goto out;
    }
    size_t nblocks = (size_t)((st.st_size + BLOCK - 1) / BLOCK);
    if (nblocks == 0 || nblocks > MAX_BLOCKS) {
        fprintf(stderr, "diskbench: %s: size %jd is not between 1 byte and 1 TiB\n", src,
                (intmax_t)st.st_size);
        goto out;
    }
    buf = malloc(BLOCK);
    lat = calloc(nblocks, sizeof *lat);
    if (!buf || !lat) {
        fprintf(stderr, "diskbench: out of memory\n");
        goto out;
    }
    out = open(dst, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (out < 0) {
        rc = fail("cannot create", dst);
        goto out;
    }
    double t0 = mono();
    for (size_t b = 0; b < nblocks; b++) {
        off_t off = (off_t)b * BLOCK;
        ssize_t n = read_full(in, buf, BLOCK, off);
        if (n <= 0) {
            rc = n < 0 ? fail("cannot read", src) : FAIL;
            goto out;
        }
        if (write_full(out, buf, (size_t)n, off) != 0) {
            rc = fail("cannot write", dst);
            goto out;
        }
        double s0 = mono();
        if (fdatasync(out) != 0) {
            rc = fail("cannot fdatasync", dst);
            goto out;
        }
        lat[nlat++] = mono() - s0;
        bytes += (uint64_t)n;
    }
    double secs = mono() - t0;
    qsort(lat, nlat, sizeof *lat, cmp_double);
    printf("bytes=%" PRIu64 " seconds=%.3f mbps=%.1f sync_p50_ms=%.3f sync_p99_ms=%.3f\n",
           bytes, secs, (double)bytes / MB / secs, quantile(lat, nlat, 0.50) * 1e3,
           quantile(lat, nlat, 0.99) * 1e3);
    rc = OK;
out:
    if (in >= 0)
        close(in);
    if (out >= 0 && close(out) != 0 && rc == OK)
        rc = fail("cannot close", dst);
    free(buf);
    free(lat);
    return rc;
}

/* ---- lz4: compression speed and ratio ------------------------------------- */

static int cmd_lz4(const char *src)
{
    int rc = FAIL, in = -1;
    unsigned char *buf = NULL;
    char *dst = NULL;
    uint64_t bytes = 0, packed = 0, nz_bytes = 0, nz_packed = 0;
    uint64_t blocks = 0, zero = 0, incompressible = 0;
    double secs = 0;
    int cap = LZ4_compressBound((int)BLOCK);

    in = open(src, O_RDONLY);
    if (in < 0) {
        rc = fail("cannot open", src);
        goto out;
    }
    buf = malloc(BLOCK);
    dst = malloc((size_t)cap);
    if (!buf || !dst) {
        fprintf(stderr, "diskbench: out of memory\n");
        goto out;
    }
    for (uint64_t b = 0; b < MAX_BLOCKS; b++) {
        ssize_t n = read_full(in, buf, BLOCK, (off_t)(b * BLOCK));
        if (n < 0) {
            rc = fail("cannot read", src);
            goto out;
        }
        if (n == 0)
            break;
        double t0 = mono();
        int z = LZ4_compress_default((const char *)buf, dst, (int)n, cap);
        secs += mono() - t0;
        if (z <= 0) {
            fprintf(stderr, "diskbench: LZ4_compress_default failed on block %" PRIu64 "\n", b);
            goto out;
        }
        blocks++;
        bytes += (uint64_t)n;
        packed += (uint64_t)z;
        if (all_zero(buf, (size_t)n)) {
            zero++;
            continue;
        }
        nz_bytes += (uint64_t)n;
        nz_packed += (uint64_t)z;
        /* saves less than 1/8: a sender would ship such a block raw */
        if ((uint64_t)z * 8 > (uint64_t)n * 7)
            incompressible++;
    }
    if (blocks == 0 || secs <= 0) {
        fprintf(stderr, "diskbench: %s is empty\n", src);
        goto out;
    }
    printf("bytes=%" PRIu64 " seconds=%.3f mbps=%.1f ratio=%.3f nonzero_ratio=%.3f "
           "zero_share=%.4f incompressible_share=%.4f blocks=%" PRIu64 "\n",
           bytes, secs, (double)bytes / MB / secs, (double)bytes / (double)packed,
           nz_packed ? (double)nz_bytes / (double)nz_packed : 0.0,
           (double)zero / (double)blocks,
           blocks > zero ? (double)incompressible / (double)(blocks - zero) : 0.0, blocks);
    rc = OK;
out:
    if (in >= 0)
        close(in);
    free(buf);
    free(dst);
    return rc;
}

/* ---- mutate: change a share of the 4 KiB blocks ----------------------------- */

static int cmd_mutate(const char *path, double share, uint64_t seed)
{
    int rc = FAIL, fd = -1;
    uint8_t *map = NULL;
    struct stat st;
    unsigned char blk[SMALL_BLOCK];
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1; /* never 0 */

    fd = open(path, O_RDWR);
    if (fd < 0 || fstat(fd, &st) != 0) {
        rc = fail("cannot open", path);
        goto out;
    }
    uint64_t nblocks = (uint64_t)st.st_size / SMALL_BLOCK;
    uint64_t want = (uint64_t)((double)nblocks * share + 0.5);
    if (nblocks == 0 || nblocks > (1ull << 32)) {
        fprintf(stderr, "diskbench: %s: size %jd is not between 4 KiB and 16 TiB\n", path,
                (intmax_t)st.st_size);
        goto out;
    }
    map = calloc((size_t)(nblocks + 7) / 8, 1);
    if (!map) {
        fprintf(stderr, "diskbench: out of memory\n");
        goto out;
    }
    uint64_t done = 0;
    /* each pick is a new block with probability >= 1 - share: bounded tries */
    for (uint64_t tries = 0; done < want && tries < want * 64 + 64; tries++) {
        uint64_t b = rnd(&s) % nblocks;
        if (map[b / 8] & (1u << (b % 8)))
            continue;
        map[b / 8] |= (uint8_t)(1u << (b % 8));
        for (size_t i = 0; i < SMALL_BLOCK; i += 8) {
            uint64_t r = rnd(&s);
            memcpy(blk + i, &r, 8);
        }
        if (write_full(fd, blk, SMALL_BLOCK, (off_t)(b * SMALL_BLOCK)) != 0) {
            rc = fail("cannot write", path);
            goto out;
        }
        done++;
    }
    if (done < want) {
        fprintf(stderr, "diskbench: picked only %" PRIu64 " of %" PRIu64 " blocks\n", done, want);
        goto out;
    }
    if (fdatasync(fd) != 0) {
        rc = fail("cannot fdatasync", path);
        goto out;
    }
    printf("blocks=%" PRIu64 " bytes=%" PRIu64 " of_blocks=%" PRIu64 "\n", done,
           done * SMALL_BLOCK, nblocks);
    rc = OK;
out:
    if (fd >= 0)
        close(fd);
    free(map);
    return rc;
}

static int usage(void)
{
    fprintf(stderr, "diskbench: usage: diskbench fsync SRC DST | lz4 SRC | "
                    "mutate FILE SHARE SEED\n");
    return USAGE;
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "fsync") == 0)
        return cmd_fsync(argv[2], argv[3]);
    if (argc == 3 && strcmp(argv[1], "lz4") == 0)
        return cmd_lz4(argv[2]);
    if (argc == 5 && strcmp(argv[1], "mutate") == 0) {
        char *e1, *e2;
        double share = strtod(argv[3], &e1);
        unsigned long long seed = strtoull(argv[4], &e2, 10);
        if (*e1 || *e2 || !(share > 0 && share <= 1))
            return usage();
        return cmd_mutate(argv[2], share, (uint64_t)seed);
    }
    return usage();
}
