/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * replload: a recognisable write load for the replication tests, and the
 * checker that says whether an image is exactly what a prefix of that load
 * leaves behind.
 *
 *   replload write ADDR:PORT EXPORT --seed S [--from C] [--count N]
 *            [--seconds T] [--connect-wait T]
 *        writes 1..N numbered writes C, C+1, ... one at a time (queue depth
 *        one: the order the agent sees is the order of the counters) and
 *        prints "acked K" at the end, K the last write the server
 *        acknowledged (C - 1 if none). Exit 0 when N writes or T seconds are
 *        done, 3 when the server went away (K is still printed), 1 when a
 *        write got an NBD error, 2 on bad usage.
 *   replload check IMG --seed S [--upto K [--maybe-next]] [--torn C,...]
 *        with --upto: IMG must be exactly the state after writes 1..K (with
 *        --maybe-next, bytes inside write K+1's range may also hold what
 *        write K+1 wrote: it was in flight when its server was killed).
 *        Without: IMG must be the state after writes 1..K for some K; the
 *        K is found from the newest intact write header in IMG. A write
 *        listed in --torn was in flight when the agent was killed: the disk
 *        may have kept any part of it (until it is written again), so the
 *        state after writes 1..K-1 plus a part of write K is accepted too
 *        for such a K. Prints "prefix K" (exit 0) or where it differs
 *        (exit 1).
 *   replload diff A B
 *        prints "bytes N blocks M": bytes, and 4 KiB blocks, that differ.
 *
 * Write number c is a pure function of (seed, c, disk size): kind (DATA, or
 * one in 16 WRITE_ZEROES), offset (512- or 4096-aligned), length (512 B to
 * 64 KiB, one in 64 between 1 and 1.5 MiB, so the agent splits it into
 * several records), FUA on one in 8, a FLUSH after one in 32. A DATA write
 * starts with a 64-byte header (magic, seed, c, offset, length, XXH64 of
 * the header) followed by random bytes or, for half of the writes, bytes
 * lz4 compresses. The disk starts zeroed, so the state after writes 1..K
 * can be rebuilt in memory and compared byte for byte: any image that is
 * not such a state (a lost write, a write applied out of order, a torn or
 * foreign block) fails. Every wait is bounded (5 s per socket operation).
 */
#include "nodes/agent/nbd_proto.h"
#include "tests/integration/nbdsock.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#define HDR_SIZE   64u
#define HDR_MAGIC  0x52504c44u /* "RPLD" */
#define BIG_MAX    (1536u << 10)
#define ZERO_RUN   64u         /* zero writes a check may step over after the last header */
#define CHUNK      (1u << 20)
#define TORN_MAX   256u        /* --torn counters */

enum { OP_DATA = 0, OP_ZERO };

typedef struct op {
    int kind;
    uint64_t off;
    uint32_t len;
    bool fua, flush_after, compressible;
    uint64_t h;
} op_t;

static uint64_t mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* write number @c of the load @seed on a disk of @size bytes */
static op_t op_of(uint64_t seed, uint64_t c, uint64_t size)
{
    op_t o = {0};
    uint64_t h = mix(seed ^ mix(c)), h2 = mix(h);
    o.h = h;
    o.kind = (h % 16) == 0 ? OP_ZERO : OP_DATA;
    if (((h >> 8) % 64) == 0)
        o.len = (1u << 20) + 512u * (uint32_t)((h >> 16) % 1025);
    else
        o.len = 512u * (1u + (uint32_t)((h >> 16) % 128));
    if (o.len > size)
        o.len = (uint32_t)(size & ~511ull);
    uint64_t align = ((h >> 30) & 1) ? 4096 : 512;
    uint64_t span = (size - o.len) / align;
    o.off = (h2 % (span + 1)) * align;
    o.fua = ((h >> 40) % 8) == 0;
    o.flush_after = ((h >> 44) % 32) == 0;
    o.compressible = (h >> 50) & 1;
    return o;
}

static void put_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_le32(const uint8_t *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static uint64_t get_le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

/* the bytes write @c puts on the disk (DATA only), into @buf (o->len bytes) */
static void fill(uint8_t *buf, uint64_t seed, uint64_t c, const op_t *o)
{
    memset(buf, 0, HDR_SIZE);
    put_le32(buf, HDR_MAGIC);
    put_le32(buf + 4, 1);
    put_le64(buf + 8, seed);
    put_le64(buf + 16, c);
    put_le64(buf + 24, o->off);
    put_le32(buf + 32, o->len);
    put_le64(buf + 40, XXH64(buf, 40, 0));
    if (o->compressible) {
        for (uint32_t i = HDR_SIZE; i < o->len; i++)
            buf[i] = (uint8_t)((c + i / 256u) * 37u);
        return;
    }
    uint64_t s = mix(o->h ^ 0x5a5a5a5a5a5a5a5aull) | 1;
    for (uint32_t i = HDR_SIZE; i < o->len; i += 8) {
        s ^= s >> 12;
        s ^= s << 25;
        s ^= s >> 27;
        uint64_t v = s * 0x2545f4914f6cdd1dull;
        uint32_t n = o->len - i < 8 ? o->len - i : 8;
        memcpy(buf + i, &v, n);
    }
}

/* ---- NBD client ---------------------------------------------------------------------- */

/* fixed newstyle handshake and GO to @name: export size and flags out */
static bool handshake(int fd, const char *name, uint64_t *size, uint16_t *eflags)
{
    uint8_t g[18], cf[4], d[512], h[20], buf[4200];
    uint32_t nl = (uint32_t)strlen(name);

    if (nl > sizeof(d) - 16)
        return FAILF("export name too long");
    if (!get(fd, g, sizeof(g)))
        return false;
    if (memcmp(g, "NBDMAGICIHAVEOPT", 16) != 0)
        return FAILF("bad greeting");
    nbd_put32(cf, NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES);
    if (!put(fd, cf, 4))
        return false;
    nbd_put64(d, NBD_IHAVEOPT);
    nbd_put32(d + 8, NBD_OPT_GO);
    nbd_put32(d + 12, 6 + nl);
    nbd_put32(d + 16, nl);
    memcpy(d + 20, name, nl);
    nbd_put16(d + 20 + nl, 0);
    if (!put(fd, d, 22 + nl))
        return false;
    *size = 0;
    for (int i = 0; i < 16; i++) {
        if (!get(fd, h, 20))
            return false;
        uint32_t type = nbd_get32(h + 12), len = nbd_get32(h + 16);
        if (nbd_get64(h) != NBD_REP_MAGIC || len > sizeof(buf))
            return FAILF("bad option reply");
        if (!get(fd, buf, len))
            return false;
        if (type == NBD_REP_ACK)
            return *size ? true : FAILF("GO: no export size");
        if (type != NBD_REP_INFO)
            return FAILF("GO %s refused (0x%x)", name, type);
        if (len >= 12 && nbd_get16(buf) == NBD_INFO_EXPORT) {
            *size = nbd_get64(buf + 2);
            *eflags = nbd_get16(buf + 10);
        }
    }
    return FAILF("no ACK to GO");
}

/* one request and its reply; *nbd_err gets the reply's error */
static bool request(int fd, uint16_t flags, uint16_t type, uint64_t cookie, uint64_t off,
                    uint32_t len, const void *payload, uint32_t *nbd_err)
{
    uint8_t h[28], r[16];
    nbd_put32(h, NBD_REQUEST_MAGIC);
    nbd_put16(h + 4, flags);
    nbd_put16(h + 6, type);
    nbd_put64(h + 8, cookie);
    nbd_put64(h + 16, off);
    nbd_put32(h + 24, len);
    if (!put(fd, h, 28) || (payload && !put(fd, payload, len)) || !get(fd, r, 16))
        return false;
    if (nbd_get32(r) != NBD_SIMPLE_REPLY_MAGIC || nbd_get64(r + 8) != cookie)
        return FAILF("bad reply header");
    *nbd_err = nbd_get32(r + 4);
    return true;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmd_write(const char *addr, const char *name, uint64_t seed, uint64_t from,
                     uint64_t count, double seconds, double connect_wait)
{
    uint64_t size = 0, acked = from - 1, bytes = 0, cookie = 1;
    uint16_t eflags = 0;
    uint8_t *buf = malloc(BIG_MAX);
    double t0 = now_s();
    int fd = -1, rc = 0;

    if (!buf)
        return fprintf(stderr, "replload: out of memory\n"), 1;
    while ((fd = nbdsock_dial(addr, true)) < 0) {
        if (now_s() - t0 > connect_wait) {
            fprintf(stderr, "replload: cannot connect to %s: %s\n", addr, strerror(errno));
            rc = 3;
            goto out;
        }
        usleep(50000);
    }
    if (!handshake(fd, name, &size, &eflags)) {
        fprintf(stderr, "replload: handshake with %s: %s\n", addr, g_why);
        rc = 3;
        goto out;
    }
    t0 = now_s();
    for (uint64_t c = from; c < from + count && now_s() - t0 < seconds; c++) {
        op_t o = op_of(seed, c, size);
        uint32_t err = 0;
        uint16_t fl = o.fua && (eflags & NBD_FLAG_SEND_FUA) ? NBD_CMD_FLAG_FUA : 0;
        bool sent;
        if (o.kind == OP_ZERO && (eflags & NBD_FLAG_SEND_WRITE_ZEROES)) {
            sent = request(fd, fl, NBD_CMD_WRITE_ZEROES, cookie++, o.off, o.len, NULL, &err);
        } else {
            if (o.kind == OP_ZERO)
                memset(buf, 0, o.len);
            else
                fill(buf, seed, c, &o);
            sent = request(fd, fl, NBD_CMD_WRITE, cookie++, o.off, o.len, buf, &err);
        }
        if (!sent) {
            fprintf(stderr, "replload: write %" PRIu64 ": %s\n", c, g_why);
            rc = 3;
            goto out;
        }
        if (err) {
            fprintf(stderr, "replload: write %" PRIu64 " (%" PRIu64 "+%u): NBD error %u\n", c,
                    o.off, o.len, err);
            rc = 1;
            goto out;
        }
        acked = c;
        bytes += o.len;
        if (o.flush_after && (eflags & NBD_FLAG_SEND_FLUSH)) {
            if (!request(fd, 0, NBD_CMD_FLUSH, cookie++, 0, 0, NULL, &err)) {
                fprintf(stderr, "replload: flush after %" PRIu64 ": %s\n", c, g_why);
                rc = 3;
                goto out;
            }
            if (err) {
                fprintf(stderr, "replload: flush after %" PRIu64 ": NBD error %u\n", c, err);
                rc = 1;
                goto out;
            }
        }
    }
    {
        uint32_t err = 0;
        uint8_t h[28];
        nbd_put32(h, NBD_REQUEST_MAGIC);
        nbd_put16(h + 4, 0);
        nbd_put16(h + 6, NBD_CMD_DISC);
        nbd_put64(h + 8, cookie);
        memset(h + 16, 0, 12);
        (void)err;
        (void)put(fd, h, 28);
    }
out:
    fprintf(stderr, "replload: %" PRIu64 " writes acked (%" PRIu64 " bytes) in %.2f s\n",
            acked - (from - 1), bytes, now_s() - t0);
    printf("acked %" PRIu64 "\n", acked);
    if (fd >= 0)
        close(fd);
    free(buf);
    return rc;
}

/* ---- checker ------------------------------------------------------------------------- */

typedef struct img {
    int fd;
    uint64_t size;
    uint8_t *data; /* the whole image, read once */
} img_t;

static bool img_load(const char *path, img_t *im)
{
    struct stat st;
    im->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (im->fd < 0 || fstat(im->fd, &st) != 0)
        return FAILF("%s: %s", path, strerror(errno));
    im->size = (uint64_t)st.st_size;
    im->data = malloc(im->size ? im->size : 1);
    if (!im->data)
        return FAILF("%s: out of memory", path);
    for (uint64_t off = 0; off < im->size;) {
        size_t n = im->size - off < CHUNK ? (size_t)(im->size - off) : CHUNK;
        ssize_t r = pread(im->fd, im->data + off, n, (off_t)off);
        if (r <= 0)
            return FAILF("%s: read at %" PRIu64 ": %s", path, off, r < 0 ? strerror(errno) : "EOF");
        off += (uint64_t)r;
    }
    return true;
}

/* the counter of an intact header of @seed at @p, or 0 */
static uint64_t header_at(const img_t *im, uint64_t seed, uint64_t p)
{
    const uint8_t *b = im->data + p;
    if (p + HDR_SIZE > im->size || get_le32(b) != HDR_MAGIC || get_le64(b + 8) != seed ||
        get_le64(b + 24) != p || get_le64(b + 40) != XXH64(b, 40, 0))
        return 0;
    uint64_t c = get_le64(b + 16);
    op_t o = op_of(seed, c, im->size);
    if (c == 0 || o.kind != OP_DATA || o.off != p || o.len != get_le32(b + 32))
        return 0;
    return c;
}

static void apply(uint8_t *state, uint64_t seed, uint64_t c, uint64_t size)
{
    op_t o = op_of(seed, c, size);
    if (o.kind == OP_ZERO)
        memset(state + o.off, 0, o.len);
    else
        fill(state + o.off, seed, c, &o);
}

/* first differing offset of @a and @b over @n bytes, or @n */
static uint64_t first_diff(const uint8_t *a, const uint8_t *b, uint64_t n)
{
    for (uint64_t off = 0; off < n; off += CHUNK) {
        uint64_t len = n - off < CHUNK ? n - off : CHUNK;
        if (memcmp(a + off, b + off, len) != 0) {
            for (uint64_t i = off; i < off + len; i++)
                if (a[i] != b[i])
                    return i;
        }
    }
    return n;
}

static void report_diff(const img_t *im, const uint8_t *state, uint64_t d, uint64_t seed,
                        uint64_t k)
{
    uint64_t blk = d & ~4095ull, hc = 0;
    for (uint64_t p = blk; p < blk + 4096 && p < im->size; p += 512)
        if ((hc = header_at(im, seed, p)) != 0)
            break;
    printf("differs from the state after writes 1..%" PRIu64 " at byte %" PRIu64
           " (image 0x%02x, expected 0x%02x; a header of write %" PRIu64
           " in that 4 KiB block)\n",
           k, d, im->data[d], state[d], hc);
}

/* the state after writes 1..@k into @state (@size bytes) */
static void replay(uint8_t *state, uint64_t seed, uint64_t k, uint64_t size)
{
    memset(state, 0, size);
    for (uint64_t c = 1; c <= k; c++)
        apply(state, seed, c, size);
}

/* @im is @state plus a part of write @c (each byte of its range either
 * as in @state or as write @c made it): the first byte that is neither,
 * or im->size */
static uint64_t partial_diff(const img_t *im, const uint8_t *state, uint64_t seed, uint64_t c)
{
    op_t o = op_of(seed, c, im->size);
    uint8_t *nx = malloc(o.len);
    uint64_t d = first_diff(im->data, state, im->size);
    if (!nx)
        return d;
    if (o.kind == OP_ZERO)
        memset(nx, 0, o.len);
    else
        fill(nx, seed, c, &o);
    for (; d < im->size; d++) {
        if (im->data[d] == state[d])
            continue;
        if (d >= o.off && d < o.off + o.len && im->data[d] == nx[d - o.off])
            continue;
        break;
    }
    free(nx);
    return d;
}

static bool in_list(const uint64_t *list, unsigned n, uint64_t c)
{
    for (unsigned i = 0; i < n; i++)
        if (list[i] == c)
            return true;
    return false;
}

static int cmd_check(const char *path, uint64_t seed, bool have_upto, uint64_t upto,
                     bool maybe_next, const uint64_t *torn, unsigned ntorn)
{
    img_t im = {.fd = -1};
    uint8_t *state = NULL;
    int rc = 1;

    if (!img_load(path, &im)) {
        printf("%s\n", g_why);
        goto out;
    }
    state = malloc(im.size ? im.size : 1);
    if (!state) {
        printf("out of memory\n");
        goto out;
    }
    uint64_t k = upto;
    if (!have_upto) {
        k = 0;
        for (uint64_t p = 0; p + HDR_SIZE <= im.size; p += 512) {
            uint64_t c = header_at(&im, seed, p);
            if (c > k)
                k = c;
        }
    }
    replay(state, seed, k, im.size);
    uint64_t d = first_diff(im.data, state, im.size), d0 = d;
    if (d == im.size) {
        printf("prefix %" PRIu64 "\n", k);
        rc = 0;
        goto out;
    }
    if (have_upto) {
        /* write K+1 may have reached the disk, wholly or in part */
        if (maybe_next && (d = partial_diff(&im, state, seed, k + 1)) == im.size) {
            printf("prefix %" PRIu64 " (write %" PRIu64 " landed, at least in part)\n", k, k + 1);
            rc = 0;
            goto out;
        }
        report_diff(&im, state, d, seed, k);
        goto out;
    }
    /* a write in flight at a crash (--torn) may be there in part: after K
     * (its header did not land) or as K itself (its header did) */
    if (in_list(torn, ntorn, k + 1) && partial_diff(&im, state, seed, k + 1) == im.size) {
        printf("prefix %" PRIu64 " (+ part of write %" PRIu64 ", in flight at a crash)\n", k, k + 1);
        rc = 0;
        goto out;
    }
    /* the newest writes of the prefix may be zero writes, which leave no header */
    for (uint64_t c = k + 1; c <= k + ZERO_RUN; c++) {
        if (op_of(seed, c, im.size).kind != OP_ZERO)
            break;
        apply(state, seed, c, im.size);
        if (first_diff(im.data, state, im.size) == im.size) {
            printf("prefix %" PRIu64 "\n", c);
            rc = 0;
            goto out;
        }
    }
    if (k > 0 && in_list(torn, ntorn, k)) {
        replay(state, seed, k - 1, im.size);
        if (partial_diff(&im, state, seed, k) == im.size) {
            printf("prefix %" PRIu64 " (+ part of write %" PRIu64 ", in flight at a crash)\n", k - 1,
                   k);
            rc = 0;
            goto out;
        }
    }
    replay(state, seed, k, im.size);
    report_diff(&im, state, d0, seed, k);
out:
    free(state);
    free(im.data);
    if (im.fd >= 0)
        close(im.fd);
    return rc;
}

static int cmd_diff(const char *pa, const char *pb)
{
    img_t a = {.fd = -1}, b = {.fd = -1};
    uint64_t bytes = 0, blocks = 0;
    int rc = 1;
    if (!img_load(pa, &a) || !img_load(pb, &b)) {
        fprintf(stderr, "replload: %s\n", g_why);
        goto out;
    }
    if (a.size != b.size) {
        fprintf(stderr, "replload: sizes differ (%" PRIu64 ", %" PRIu64 ")\n", a.size, b.size);
        goto out;
    }
    for (uint64_t blk = 0; blk < a.size; blk += 4096) {
        uint64_t n = a.size - blk < 4096 ? a.size - blk : 4096, d = 0;
        if (memcmp(a.data + blk, b.data + blk, n) == 0)
            continue;
        for (uint64_t i = 0; i < n; i++)
            d += a.data[blk + i] != b.data[blk + i];
        bytes += d;
        blocks++;
    }
    printf("bytes %" PRIu64 " blocks %" PRIu64 "\n", bytes, blocks);
    rc = 0;
out:
    free(a.data);
    free(b.data);
    if (a.fd >= 0)
        close(a.fd);
    if (b.fd >= 0)
        close(b.fd);
    return rc;
}

static int usage(void)
{
    fprintf(stderr,
            "usage: replload write ADDR:PORT EXPORT --seed S [--from C] [--count N] "
            "[--seconds T] [--connect-wait T]\n"
            "       replload check IMG --seed S [--upto K [--maybe-next]] [--torn C,...]\n"
            "       replload diff A B\n");
    return 2;
}

int main(int argc, char **argv)
{
    uint64_t seed = 0, from = 1, count = UINT64_MAX / 2, upto = 0;
    double seconds = 1e9, cwait = 0;
    bool have_seed = false, have_upto = false, maybe_next = false;
    const char *pos[3] = {NULL, NULL, NULL};
    int npos = 0;
    uint64_t torn[TORN_MAX];
    unsigned ntorn = 0;

    if (argc < 2)
        return usage();
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        bool more = i + 1 < argc;
        if (strcmp(a, "--seed") == 0 && more) {
            seed = strtoull(argv[++i], NULL, 0);
            have_seed = true;
        } else if (strcmp(a, "--from") == 0 && more) {
            from = strtoull(argv[++i], NULL, 0);
        } else if (strcmp(a, "--count") == 0 && more) {
            count = strtoull(argv[++i], NULL, 0);
        } else if (strcmp(a, "--seconds") == 0 && more) {
            seconds = strtod(argv[++i], NULL);
        } else if (strcmp(a, "--connect-wait") == 0 && more) {
            cwait = strtod(argv[++i], NULL);
        } else if (strcmp(a, "--upto") == 0 && more) {
            upto = strtoull(argv[++i], NULL, 0);
            have_upto = true;
        } else if (strcmp(a, "--maybe-next") == 0) {
            maybe_next = true;
        } else if (strcmp(a, "--torn") == 0 && more) {
            for (char *t = argv[++i], *end; *t; t = end) {
                uint64_t c = strtoull(t, &end, 10);
                if (end == t || ntorn == TORN_MAX)
                    return usage();
                torn[ntorn++] = c;
                while (*end == ',')
                    end++;
            }
        } else if (a[0] != '-' && npos < 3) {
            pos[npos++] = a;
        } else {
            return usage();
        }
    }
    if (strcmp(argv[1], "write") == 0 && npos == 2 && have_seed && from >= 1)
        return cmd_write(pos[0], pos[1], seed, from, count, seconds, cwait);
    if (strcmp(argv[1], "check") == 0 && npos == 1 && have_seed)
        return cmd_check(pos[0], seed, have_upto, upto, maybe_next, torn, ntorn);
    if (strcmp(argv[1], "diff") == 0 && npos == 2)
        return cmd_diff(pos[0], pos[1]);
    return usage();
}
