/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * nbdpoke: a deliberately rude NBD client, and log checker, for the
 * integration tests of the agent's NBD tap (no Python, no libnbd: it must be
 * able to send what no real client would).
 *
 *   nbdpoke check ADDR:PORT EXPORT CHECK...   run malformed-input checks
 *   nbdpoke hash FILE OFFSET LEN              XXH64 of a file range (hex)
 *   nbdpoke hash-pattern BYTE LEN             XXH64 of LEN copies of BYTE
 *   nbdpoke verify-log LOG FILE EXPORT        every logged write of EXPORT
 *                                             matches FILE (see below)
 *
 * Checks (each on its own connection; "all" runs every one):
 *   neg-garbage    garbage instead of client flags+options: server hangs up
 *   bad-cflags     unknown client flags: server hangs up
 *   bad-opt-magic  an option without IHAVEOPT: server hangs up
 *   unknown-export GO to a missing export: NBD_REP_ERR_UNKNOWN, session goes on
 *   unknown-option option 0x4242: NBD_REP_ERR_UNSUP, session goes on
 *   opt-too-big    a 100 KiB option: NBD_REP_ERR_TOO_BIG, then GO still works
 *   bad-magic      a request with a bad magic: server hangs up
 *   range          read past the end: EINVAL; write past the end: ENOSPC;
 *                  the connection stays usable
 *   oversize       read and write longer than the maximum block size: EINVAL
 *                  (the write's payload is sent and dropped); still usable
 *   unknown-cmd    command 42 and a bad flag: EINVAL; still usable
 *   trans-garbage  random bytes in transmission: server hangs up
 * Every wait is bounded (5 s receive timeout). Prints "ok CHECK" per check;
 * exit 0 if all passed, 1 otherwise, 2 on bad usage.
 *
 * verify-log reads nbdserve's log lines "SEQ OFF LEN XXH64 EXPORT KIND" and,
 * for EXPORT, checks that SEQ increases by one, that every w/wf line's hash is
 * the hash of FILE at [OFF, OFF+LEN) and that every z/t line's range is zero
 * in FILE (valid when each range was written once, as nbdcopy does). Prints
 * the number of lines checked.
 */
#include "nodes/agent/nbd_proto.h"
#include "tests/integration/nbdsock.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <xxhash.h>

static const char *g_addr, *g_export;
static int dial(void)
{
    return nbdsock_dial(g_addr, false);
}

/* The server hangs up: EOF (or a reset) within the receive timeout. */
static bool expect_close(int fd)
{
    uint8_t junk[4096];
    for (int i = 0; i < 1000; i++) {
        ssize_t r = recv(fd, junk, sizeof(junk), 0);
        if (r == 0 || (r < 0 && errno == ECONNRESET))
            return true;
        if (r < 0)
            return FAILF("server did not hang up: %s", strerror(errno));
    }
    return FAILF("server kept talking");
}

/* ---- protocol helpers ------------------------------------------------------------ */

static bool greet(int fd, uint32_t cflags)
{
    uint8_t g[18], cf[4];
    if (!get(fd, g, sizeof(g)))
        return false;
    if (memcmp(g, "NBDMAGICIHAVEOPT", 16) != 0)
        return FAILF("bad greeting");
    nbd_put32(cf, cflags);
    return put(fd, cf, 4);
}

static bool send_opt(int fd, uint32_t opt, const void *d, uint32_t len)
{
    uint8_t h[16];
    nbd_put64(h, NBD_IHAVEOPT);
    nbd_put32(h + 8, opt);
    nbd_put32(h + 12, len);
    return put(fd, h, 16) && (len == 0 || put(fd, d, len));
}

/* One option reply into @buf; @type and @len out. */
static bool get_rep(int fd, uint32_t opt, uint32_t *type, uint8_t *buf, uint32_t cap,
                    uint32_t *len)
{
    uint8_t h[20];
    if (!get(fd, h, 20))
        return false;
    if (nbd_get64(h) != NBD_REP_MAGIC || nbd_get32(h + 8) != opt)
        return FAILF("bad option reply header");
    *type = nbd_get32(h + 12);
    *len = nbd_get32(h + 16);
    if (*len > cap)
        return FAILF("option reply too long (%u)", *len);
    return get(fd, buf, *len);
}

static uint32_t go_data(uint8_t *d, const char *name)
{
    uint32_t nl = (uint32_t)strlen(name);
    nbd_put32(d, nl);
    memcpy(d + 4, name, nl);
    nbd_put16(d + 4 + nl, 1);
    nbd_put16(d + 6 + nl, NBD_INFO_BLOCK_SIZE);
    return 8 + nl;
}

/* GO to @name; size and maximum block size out. */
static bool go(int fd, const char *name, uint64_t *size, uint32_t *max_block)
{
    uint8_t d[4200], buf[4200];
    uint32_t type, len;
    *max_block = 32u << 20;
    if (!send_opt(fd, NBD_OPT_GO, d, go_data(d, name)))
        return false;
    for (int i = 0; i < 16; i++) {
        if (!get_rep(fd, NBD_OPT_GO, &type, buf, sizeof(buf), &len))
            return false;
        if (type == NBD_REP_ACK)
            return true;
        if (type != NBD_REP_INFO)
            return FAILF("GO %s refused (0x%x)", name, type);
        if (len >= 12 && nbd_get16(buf) == NBD_INFO_EXPORT)
            *size = nbd_get64(buf + 2);
        if (len >= 14 && nbd_get16(buf) == NBD_INFO_BLOCK_SIZE)
            *max_block = nbd_get32(buf + 10);
    }
    return FAILF("no ACK to GO");
}

static bool handshake(int *fd, uint64_t *size, uint32_t *max_block)
{
    *fd = dial();
    if (*fd < 0)
        return FAILF("cannot connect to %s", g_addr);
    return greet(*fd, NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES) &&
           go(*fd, g_export, size, max_block);
}

static bool send_req(int fd, uint16_t flags, uint16_t type, uint64_t cookie, uint64_t off,
                     uint32_t len, const void *payload, uint32_t plen)
{
    uint8_t h[28];
    nbd_put32(h, NBD_REQUEST_MAGIC);
    nbd_put16(h + 4, flags);
    nbd_put16(h + 6, type);
    nbd_put64(h + 8, cookie);
    nbd_put64(h + 16, off);
    nbd_put32(h + 24, len);
    return put(fd, h, 28) && (plen == 0 || put(fd, payload, plen));
}

/* The reply to @cookie must carry @want_err; a good READ's @len bytes are read. */
static bool expect_reply(int fd, uint64_t cookie, uint32_t want_err, uint32_t len)
{
    uint8_t h[16];
    if (!get(fd, h, 16))
        return false;
    if (nbd_get32(h) != NBD_SIMPLE_REPLY_MAGIC || nbd_get64(h + 8) != cookie)
        return FAILF("bad reply header for cookie %" PRIu64, cookie);
    uint32_t err = nbd_get32(h + 4);
    if (err != want_err)
        return FAILF("cookie %" PRIu64 ": error %u, expected %u", cookie, err, want_err);
    if (err == 0 && len > 0) {
        uint8_t *b = malloc(len);
        bool ok = b && get(fd, b, len);
        free(b);
        return ok;
    }
    return true;
}

/* The connection still serves: a small write and read-back at offset 0. */
static bool still_works(int fd, uint64_t cookie)
{
    uint8_t w[512], h[16], r[512];
    for (unsigned i = 0; i < sizeof(w); i++)
        w[i] = (uint8_t)(i * 13 + cookie);
    if (!send_req(fd, 0, NBD_CMD_WRITE, cookie, 0, sizeof(w), w, sizeof(w)) ||
        !expect_reply(fd, cookie, 0, 0) ||
        !send_req(fd, 0, NBD_CMD_READ, cookie + 1, 0, sizeof(r), NULL, 0) || !get(fd, h, 16))
        return false;
    if (nbd_get32(h + 4) != 0 || nbd_get64(h + 8) != cookie + 1 || !get(fd, r, sizeof(r)))
        return FAILF("read-back failed");
    if (memcmp(r, w, sizeof(w)) != 0)
        return FAILF("read-back differs from what was written");
    return true;
}

/* ---- the checks ------------------------------------------------------------------- */

static bool ck_neg_garbage(void)
{
    uint8_t g[18], junk[64];
    int fd = dial();
    if (fd < 0)
        return FAILF("cannot connect");
    for (unsigned i = 0; i < sizeof(junk); i++)
        junk[i] = (uint8_t)(0xa5 ^ (i * 29));
    bool ok = get(fd, g, sizeof(g)) && put(fd, junk, sizeof(junk)) && expect_close(fd);
    close(fd);
    return ok;
}

static bool ck_bad_cflags(void)
{
    int fd = dial();
    if (fd < 0)
        return FAILF("cannot connect");
    bool ok = greet(fd, 0x40000000u) && expect_close(fd);
    close(fd);
    return ok;
}

static bool ck_bad_opt_magic(void)
{
    uint8_t h[16] = "IHAVEOPX";
    int fd = dial();
    if (fd < 0)
        return FAILF("cannot connect");
    nbd_put32(h + 8, NBD_OPT_LIST);
    bool ok = greet(fd, NBD_FLAG_C_FIXED_NEWSTYLE) && put(fd, h, 16) && expect_close(fd);
    close(fd);
    return ok;
}

static bool ck_unknown_export(void)
{
    uint8_t d[64], buf[4200];
    uint32_t type, len;
    int fd = dial();
    if (fd < 0)
        return FAILF("cannot connect");
    bool ok = greet(fd, NBD_FLAG_C_FIXED_NEWSTYLE) &&
              send_opt(fd, NBD_OPT_GO, d, go_data(d, "no-such-export")) &&
              get_rep(fd, NBD_OPT_GO, &type, buf, sizeof(buf), &len);
    if (ok && type != NBD_REP_ERR_UNKNOWN)
        ok = FAILF("GO to a missing export: 0x%x, expected NBD_REP_ERR_UNKNOWN", type);
    ok = ok && send_opt(fd, NBD_OPT_ABORT, NULL, 0) &&
         get_rep(fd, NBD_OPT_ABORT, &type, buf, sizeof(buf), &len);
    if (ok && type != NBD_REP_ACK)
        ok = FAILF("ABORT: 0x%x", type);
    ok = ok && expect_close(fd);
    close(fd);
    return ok;
}

static bool ck_unknown_option(void)
{
    uint8_t buf[4200];
    uint32_t type, len;
    uint64_t size;
    uint32_t mb;
    int fd = dial();
    if (fd < 0)
        return FAILF("cannot connect");
    bool ok = greet(fd, NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES) &&
              send_opt(fd, 0x4242, "abc", 3) &&
              get_rep(fd, 0x4242, &type, buf, sizeof(buf), &len);
    if (ok && type != NBD_REP_ERR_UNSUP)
        ok = FAILF("unknown option: 0x%x, expected NBD_REP_ERR_UNSUP", type);
    ok = ok && go(fd, g_export, &size, &mb) && still_works(fd, 1);
    close(fd);
    return ok;
}

static bool ck_opt_too_big(void)
{
    static uint8_t big[100 << 10];
    uint8_t buf[4200];
    uint32_t type, len, mb;
    uint64_t size;
    int fd = dial();
    if (fd < 0)
        return FAILF("cannot connect");
    bool ok = greet(fd, NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES) &&
              send_opt(fd, NBD_OPT_INFO, big, sizeof(big)) &&
              get_rep(fd, NBD_OPT_INFO, &type, buf, sizeof(buf), &len);
    if (ok && type != NBD_REP_ERR_TOO_BIG)
        ok = FAILF("100 KiB option: 0x%x, expected NBD_REP_ERR_TOO_BIG", type);
    ok = ok && go(fd, g_export, &size, &mb) && still_works(fd, 1);
    close(fd);
    return ok;
}

static bool ck_bad_magic(void)
{
    uint64_t size;
    uint32_t mb;
    uint8_t bad[28];
    int fd;
    memset(bad, 0x5a, sizeof(bad));
    bool ok = handshake(&fd, &size, &mb) && still_works(fd, 1) && put(fd, bad, sizeof(bad)) &&
              expect_close(fd);
    if (fd >= 0)
        close(fd);
    return ok;
}

static bool ck_range(void)
{
    uint64_t size = 0;
    uint32_t mb;
    uint8_t w[4096] = {1};
    int fd;
    bool ok = handshake(&fd, &size, &mb) &&
              send_req(fd, 0, NBD_CMD_READ, 10, size - 100, 4096, NULL, 0) &&
              expect_reply(fd, 10, NBD_EINVAL, 0) &&
              send_req(fd, 0, NBD_CMD_READ, 11, UINT64_MAX - 10, 100, NULL, 0) &&
              expect_reply(fd, 11, NBD_EINVAL, 0) &&
              send_req(fd, 0, NBD_CMD_WRITE, 12, size, sizeof(w), w, sizeof(w)) &&
              expect_reply(fd, 12, NBD_ENOSPC, 0) &&
              send_req(fd, 0, NBD_CMD_TRIM, 13, size + (1u << 20), 4096, NULL, 0) &&
              expect_reply(fd, 13, NBD_EINVAL, 0) &&
              send_req(fd, 0, NBD_CMD_READ, 14, size - 4096, 4096, NULL, 0) &&
              expect_reply(fd, 14, 0, 4096) && still_works(fd, 20);
    if (fd >= 0)
        close(fd);
    return ok;
}

static bool ck_oversize(void)
{
    uint64_t size;
    uint32_t mb = 0;
    int fd;
    bool ok = handshake(&fd, &size, &mb);
    uint8_t *w = ok ? calloc(1, (size_t)mb + 1) : NULL;
    ok = ok && w && send_req(fd, 0, NBD_CMD_READ, 30, 0, mb + 1, NULL, 0) &&
         expect_reply(fd, 30, NBD_EINVAL, 0) &&
         send_req(fd, 0, NBD_CMD_WRITE, 31, 0, mb + 1, w, mb + 1) &&
         expect_reply(fd, 31, NBD_EINVAL, 0) && still_works(fd, 32);
    free(w);
    if (fd >= 0)
        close(fd);
    return ok;
}

static bool ck_unknown_cmd(void)
{
    uint64_t size;
    uint32_t mb;
    int fd;
    bool ok = handshake(&fd, &size, &mb) && send_req(fd, 0, 42, 40, 0, 0, NULL, 0) &&
              expect_reply(fd, 40, NBD_EINVAL, 0) &&
              send_req(fd, 1u << 9, NBD_CMD_READ, 41, 0, 512, NULL, 0) &&
              expect_reply(fd, 41, NBD_EINVAL, 0) && still_works(fd, 42);
    if (fd >= 0)
        close(fd);
    return ok;
}

static bool ck_trans_garbage(void)
{
    uint64_t size;
    uint32_t mb;
    uint8_t junk[256];
    int fd;
    uint32_t x = 0x12345678;
    for (unsigned i = 0; i < sizeof(junk); i++) { /* xorshift: no valid magic here */
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        junk[i] = (uint8_t)x;
    }
    junk[0] = 0x00; /* certainly not 0x25609513 */
    bool ok = handshake(&fd, &size, &mb) && put(fd, junk, sizeof(junk)) && expect_close(fd);
    if (fd >= 0)
        close(fd);
    return ok;
}

static const struct {
    const char *name;
    bool (*fn)(void);
} checks[] = {
    {"neg-garbage", ck_neg_garbage},     {"bad-cflags", ck_bad_cflags},
    {"bad-opt-magic", ck_bad_opt_magic}, {"unknown-export", ck_unknown_export},
    {"unknown-option", ck_unknown_option}, {"opt-too-big", ck_opt_too_big},
    {"bad-magic", ck_bad_magic},         {"range", ck_range},
    {"oversize", ck_oversize},           {"unknown-cmd", ck_unknown_cmd},
    {"trans-garbage", ck_trans_garbage},
};
#define NCHECKS (sizeof(checks) / sizeof(checks[0]))

static int run_check(const char *name)
{
    int rc = 0;
    bool found = false;
    for (unsigned i = 0; i < NCHECKS; i++) {
        if (strcmp(name, "all") != 0 && strcmp(name, checks[i].name) != 0)
            continue;
        found = true;
        g_why[0] = '\0';
        if (checks[i].fn()) {
            printf("ok %s\n", checks[i].name);
        } else {
            printf("FAIL %s: %s\n", checks[i].name, g_why);
            rc = 1;
        }
    }
    if (!found) {
        fprintf(stderr, "nbdpoke: unknown check %s\n", name);
        return 2;
    }
    return rc;
}

/* ---- hashing and the log ----------------------------------------------------------- */

static int hash_range(int fd, uint64_t off, uint64_t len, uint64_t *out, bool *zero)
{
    static uint8_t buf[1 << 16];
    XXH64_state_t *st = XXH64_createState();
    if (!st)
        return -1;
    XXH64_reset(st, 0);
    *zero = true;
    while (len > 0) {
        size_t n = len < sizeof(buf) ? (size_t)len : sizeof(buf);
        ssize_t r = pread(fd, buf, n, (off_t)off);
        if (r <= 0) {
            XXH64_freeState(st);
            return -1;
        }
        for (ssize_t i = 0; i < r && *zero; i++)
            if (buf[i])
                *zero = false;
        XXH64_update(st, buf, (size_t)r);
        off += (uint64_t)r;
        len -= (uint64_t)r;
    }
    *out = XXH64_digest(st);
    XXH64_freeState(st);
    return 0;
}

static int cmd_hash(const char *file, const char *off, const char *len)
{
    uint64_t h;
    bool z;
    int fd = open(file, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || hash_range(fd, strtoull(off, NULL, 0), strtoull(len, NULL, 0), &h, &z) < 0) {
        fprintf(stderr, "nbdpoke: cannot read %s\n", file);
        return 1;
    }
    close(fd);
    printf("%016" PRIx64 "\n", h);
    return 0;
}

static int cmd_hash_pattern(const char *byte, const char *len)
{
    static uint8_t buf[1 << 16];
    uint64_t n = strtoull(len, NULL, 0);
    XXH64_state_t *st = XXH64_createState();
    if (!st)
        return 1;
    memset(buf, (int)strtoul(byte, NULL, 0), sizeof(buf));
    XXH64_reset(st, 0);
    while (n > 0) {
        size_t k = n < sizeof(buf) ? (size_t)n : sizeof(buf);
        XXH64_update(st, buf, k);
        n -= k;
    }
    printf("%016" PRIx64 "\n", XXH64_digest(st));
    XXH64_freeState(st);
    return 0;
}

static int cmd_verify_log(const char *log, const char *file, const char *export)
{
    char line[512], name[256], kind[8], hash[32];
    uint64_t seq, off, prev = 0, h;
    unsigned len, n = 0;
    bool zero;
    FILE *f = fopen(log, "r");
    int fd = open(file, O_RDONLY | O_CLOEXEC);
    if (!f || fd < 0) {
        fprintf(stderr, "nbdpoke: cannot open %s or %s\n", log, file);
        return 1;
    }
    while (fgets(line, sizeof(line), f)) {
        if (sscanf(line, "%" SCNu64 " %" SCNu64 " %u %31s %255s %7s", &seq, &off, &len, hash,
                   name, kind) != 6) {
            fprintf(stderr, "nbdpoke: bad log line: %s", line);
            return 1;
        }
        if (seq != prev + 1) {
            fprintf(stderr, "nbdpoke: seq %" PRIu64 " after %" PRIu64 "\n", seq, prev);
            return 1;
        }
        prev = seq;
        if (strcmp(name, export) != 0)
            continue;
        if (hash_range(fd, off, len, &h, &zero) < 0) {
            fprintf(stderr, "nbdpoke: range %" PRIu64 "+%u outside %s\n", off, len, file);
            return 1;
        }
        if (kind[0] == 'w') {
            char want[32];
            snprintf(want, sizeof(want), "%016" PRIx64, h);
            if (strcmp(want, hash) != 0) {
                fprintf(stderr, "nbdpoke: seq %" PRIu64 ": logged %s, file has %s\n", seq, hash,
                        want);
                return 1;
            }
        } else if (kind[0] == 'z' || kind[0] == 't') {
            if (!zero) {
                fprintf(stderr, "nbdpoke: seq %" PRIu64 ": zeroed range not zero in %s\n", seq,
                        file);
                return 1;
            }
        } else {
            fprintf(stderr, "nbdpoke: seq %" PRIu64 ": failed write logged\n", seq);
            return 1;
        }
        n++;
    }
    fclose(f);
    close(fd);
    printf("%u\n", n);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 5 && strcmp(argv[1], "check") == 0) {
        int rc = 0;
        g_addr = argv[2];
        g_export = argv[3];
        for (int i = 4; i < argc; i++) {
            int r = run_check(argv[i]);
            if (r > rc)
                rc = r;
        }
        return rc;
    }
    if (argc == 5 && strcmp(argv[1], "hash") == 0)
        return cmd_hash(argv[2], argv[3], argv[4]);
    if (argc == 4 && strcmp(argv[1], "hash-pattern") == 0)
        return cmd_hash_pattern(argv[2], argv[3]);
    if (argc == 5 && strcmp(argv[1], "verify-log") == 0)
        return cmd_verify_log(argv[2], argv[3], argv[4]);
    fprintf(stderr, "usage: nbdpoke check ADDR:PORT EXPORT CHECK... | hash FILE OFF LEN |"
                    " hash-pattern BYTE LEN | verify-log LOG FILE EXPORT\n");
    return 2;
}
