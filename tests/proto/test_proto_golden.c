/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * test_proto_golden.c: every protobuf message against golden wire bytes.
 *
 * The wire format is a contract between nodes of different versions, so it
 * must not change by accident (a renumbered field, a changed type, a new
 * nanopb). Each row below pairs a struct with the bytes the protobuf wire
 * format gives for it, derived by hand from the encoding rules (key =
 * field << 3 | wire type; varints 7 bits at a time, low group first; sint
 * zig-zag; proto3 omits fields at their default) and written out with a
 * comment per field. For each row, encoding the struct must give exactly the
 * golden bytes and decoding the golden bytes must give exactly the struct.
 *
 * Adding a message is one GOLDEN() row (an Envelope body is a second row,
 * with the Envelope around it). test_every_message_has_a_row reads the
 * generated headers in gen/proto and fails when a message, or an Envelope
 * body, has no row, so a new .proto cannot slip in untested.
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <pb_decode.h>
#include <pb_encode.h>

#include "link.pb.h"
#include "mgmt.pb.h"
#include "repl.pb.h"
#include "trace.pb.h"

/* One golden row: a message, its expected struct and its wire bytes. */
typedef struct golden {
    const char *name;         /* the C type, "ss_Hello", as gen/proto spells it */
    const pb_msgdesc_t *desc; /* its nanopb descriptor */
    size_t size;              /* sizeof the struct */
    const void *msg;          /* the expected struct (zero-padded: static storage) */
    const uint8_t *wire;      /* the golden bytes */
    size_t len;               /* their count */
} golden_t;

#define UNPAREN(...) __VA_ARGS__
/* GOLDEN(type, (designated initialisers), golden bytes...) */
#define GOLDEN(T, VALUE, ...)                                                             \
    {#T, T##_fields, sizeof(T), &(T){UNPAREN VALUE}, (const uint8_t[]){__VA_ARGS__},     \
     sizeof((const uint8_t[]){__VA_ARGS__})}

/* ---- link.proto ----------------------------------------------------------- */

#define HELLO_VAL                                                                          \
    (.version = 1, .node = "primary", .roles = 3, .time_us = 1700000000000000u,            \
     .max_payload = 16777216u)
#define HELLO_WIRE /* 27 bytes */                                                          \
    0x08, 0x01,                                     /* 1 version     varint 1 */           \
    0x12, 0x07, 'p', 'r', 'i', 'm', 'a', 'r', 'y',  /* 2 node        len 7 "primary" */    \
    0x18, 0x03,                                     /* 3 roles       varint 3 */           \
    0x20, 0x80, 0x80, 0xf9, 0xc0, 0xc1, 0xc4, 0x82, 0x03, /* 4 time_us varint 1.7e15 */    \
    0x28, 0x80, 0x80, 0x80, 0x08                    /* 5 max_payload varint 2^24 */

#define HEARTBEAT_VAL (.time_us = 1700000000123456u, .echo_us = 1699999999876543u)
#define HEARTBEAT_WIRE /* 18 bytes */                                                      \
    0x08, 0xc0, 0xc4, 0x80, 0xc1, 0xc1, 0xc4, 0x82, 0x03, /* 1 time_us varint */           \
    0x10, 0xbf, 0xbb, 0xf1, 0xc0, 0xc1, 0xc4, 0x82, 0x03  /* 2 echo_us varint */

#define GOODBYE_VAL (.code = 2, .reason = "shutting down")
#define GOODBYE_WIRE /* 17 bytes */                                                        \
    0x08, 0x02,                                     /* 1 code   varint 2 */                \
    0x12, 0x0d, 's', 'h', 'u', 't', 't', 'i', 'n', 'g', ' ', 'd', 'o', 'w', 'n'            \
                                                    /* 2 reason len 13 */

/* ---- repl.proto ----------------------------------------------------------- */

#define PAIROPEN_VAL                                                                       \
    (.pair = "p0", .disk = "vda", .disk_size = 268435456u, .last_seq = 1000,               \
     .durable_seq = 990, .mt_durable_seq = 980, .epoch = 2, .consistent_seq = 500,         \
     .group = "g1")
#define PAIROPEN_WIRE /* 33 bytes */                                                       \
    0x0a, 0x02, 'p', '0',                       /* 1 pair           len 2 */           \
    0x12, 0x03, 'v', 'd', 'a',                      /* 2 disk           len 3 */           \
    0x18, 0x80, 0x80, 0x80, 0x80, 0x01,             /* 3 disk_size      varint 2^28 */     \
    0x20, 0xe8, 0x07,                               /* 4 last_seq       varint 1000 */     \
    0x28, 0xde, 0x07,                               /* 5 durable_seq    varint 990 */      \
    0x30, 0xd4, 0x07,                               /* 6 mt_durable_seq varint 980 */      \
    0x38, 0x02,                                     /* 7 epoch          varint 2 */        \
    0x40, 0xf4, 0x03,                               /* 8 consistent_seq varint 500 */      \
    0x4a, 0x02, 'g', '1'                        /* 9 group          len 2 */

#define WRITEBATCH_VAL                                                                     \
    (.pair = "p0", .first_seq = 1, .last_seq = 300, .count = 300, .flags = 3,              \
     .raw_len = 1048576u, .epoch = 2, .sent_us = 1700000000000000u)
#define WRITEBATCH_WIRE /* 29 bytes */                                                     \
    0x0a, 0x02, 'p', '0',                       /* 1 pair      len 2 */                \
    0x10, 0x01,                                     /* 2 first_seq varint 1 */             \
    0x18, 0xac, 0x02,                               /* 3 last_seq  varint 300 */           \
    0x20, 0xac, 0x02,                               /* 4 count     varint 300 */           \
    0x28, 0x03,                                     /* 5 flags     varint LZ4|SYNC */      \
    0x30, 0x80, 0x80, 0x40,                         /* 6 raw_len   varint 2^20 */          \
    0x38, 0x02,                                     /* 7 epoch     varint 2 */             \
    0x40, 0x80, 0x80, 0xf9, 0xc0, 0xc1, 0xc4, 0x82, 0x03 /* 8 sent_us varint 1.7e15 */

#define WRITEACK_VAL                                                                       \
    (.pair = "p0", .durable_seq = 300, .mt_durable_seq = 250, .consistent_seq = 200,       \
     .status = 1, .reason = "cache full")
#define WRITEACK_WIRE /* 27 bytes */                                                       \
    0x0a, 0x02, 'p', '0',                       /* 1 pair           len 2 */           \
    0x10, 0xac, 0x02,                               /* 2 durable_seq    varint 300 */      \
    0x18, 0xfa, 0x01,                               /* 3 mt_durable_seq varint 250 */      \
    0x20, 0xc8, 0x01,                               /* 4 consistent_seq varint 200 */      \
    0x28, 0x01,                                     /* 5 status         varint ACK_FULL */ \
    0x32, 0x0a, 'c', 'a', 'c', 'h', 'e', ' ', 'f', 'u', 'l', 'l' /* 6 reason len 10 */

/* ---- mgmt.proto ----------------------------------------------------------- */

#define MGMTREQ_VAL                                                                        \
    (.cmd = "wait", .args_count = 2, .args = {"p0", "--drained"}, .timeout_ms = 30000)
#define MGMTREQ_WIRE /* 25 bytes */                                                        \
    0x0a, 0x04, 'w', 'a', 'i', 't',                 /* 1 cmd        len 4 */               \
    0x12, 0x02, 'p', '0',                       /* 2 args[0]    len 2 */               \
    0x12, 0x09, '-', '-', 'd', 'r', 'a', 'i', 'n', 'e', 'd', /* 2 args[1] len 9 */         \
    0x18, 0xb0, 0xea, 0x01                          /* 3 timeout_ms varint 30000 */

#define MGMTRESP_VAL (.code = 2, .error = "unknown pair p9")
#define MGMTRESP_WIRE /* 19 bytes */                                                       \
    0x08, 0x02,                                     /* 1 code  varint 2 */                 \
    0x12, 0x0f, 'u', 'n', 'k', 'n', 'o', 'w', 'n', ' ', 'p', 'a', 'i', 'r', ' ', 'p', '9'  \
                                                    /* 2 error len 15 */

static const golden_t rows[] = {
    /* link.proto */
    GOLDEN(ss_Hello, HELLO_VAL, HELLO_WIRE),
    GOLDEN(ss_Heartbeat, HEARTBEAT_VAL, HEARTBEAT_WIRE),
    GOLDEN(ss_Goodbye, GOODBYE_VAL, GOODBYE_WIRE),
    /* Envelope: no body, then each body. A body tag >= 16 takes a 2-byte key. */
    GOLDEN(ss_Envelope, (.payload_len = 4096, .corr = 7),
           0x08, 0x80, 0x20,                        /* 1 payload_len varint 4096 */
           0x10, 0x07),                             /* 2 corr        varint 7 */
    GOLDEN(ss_Envelope,
           (.corr = 1, .which_body = ss_Envelope_hello_tag, .body.hello = {UNPAREN HELLO_VAL}),
           0x10, 0x01,                              /* 2 corr  varint 1 */
           0x52, 0x1b, HELLO_WIRE),                 /* 10 hello len 27 */
    GOLDEN(ss_Envelope,
           (.corr = 2, .which_body = ss_Envelope_heartbeat_tag,
            .body.heartbeat = {UNPAREN HEARTBEAT_VAL}),
           0x10, 0x02,                              /* 2 corr varint 2 */
           0x5a, 0x12, HEARTBEAT_WIRE),             /* 11 heartbeat len 18 */
    GOLDEN(ss_Envelope, (.which_body = ss_Envelope_heartbeat_tag),
           0x5a, 0x00),                             /* 11 heartbeat len 0: a oneof member at
                                                       its defaults is still sent */
    GOLDEN(ss_Envelope,
           (.which_body = ss_Envelope_goodbye_tag, .body.goodbye = {UNPAREN GOODBYE_VAL}),
           0x62, 0x11, GOODBYE_WIRE),               /* 12 goodbye len 17 */
    GOLDEN(ss_Envelope,
           (.corr = 3, .which_body = ss_Envelope_pair_open_tag,
            .body.pair_open = {UNPAREN PAIROPEN_VAL}),
           0x10, 0x03,                              /* 2 corr varint 3 */
           0xa2, 0x01, 0x21, PAIROPEN_WIRE),        /* 20 pair_open len 33 */
    GOLDEN(ss_Envelope,
           (.payload_len = 1048576u, .corr = 4, .which_body = ss_Envelope_write_batch_tag,
            .body.write_batch = {UNPAREN WRITEBATCH_VAL}),
           0x08, 0x80, 0x80, 0x40,                  /* 1 payload_len varint 2^20 */
           0x10, 0x04,                              /* 2 corr varint 4 */
           0xaa, 0x01, 0x1d, WRITEBATCH_WIRE),      /* 21 write_batch len 29 */
    GOLDEN(ss_Envelope,
           (.which_body = ss_Envelope_write_ack_tag, .body.write_ack = {UNPAREN WRITEACK_VAL}),
           0xb2, 0x01, 0x1b, WRITEACK_WIRE),        /* 22 write_ack len 27 */
    GOLDEN(ss_Envelope,
           (.corr = 5, .which_body = ss_Envelope_mgmt_request_tag,
            .body.mgmt_request = {UNPAREN MGMTREQ_VAL}),
           0x10, 0x05,                              /* 2 corr varint 5 */
           0xc2, 0x02, 0x19, MGMTREQ_WIRE),         /* 40 mgmt_request len 25 */
    GOLDEN(ss_Envelope,
           (.corr = 5, .which_body = ss_Envelope_mgmt_response_tag,
            .body.mgmt_response = {UNPAREN MGMTRESP_VAL}),
           0x10, 0x05,                              /* 2 corr varint 5 */
           0xca, 0x02, 0x13, MGMTRESP_WIRE),        /* 41 mgmt_response len 19 */

    /* repl.proto */
    GOLDEN(ss_PairOpen, PAIROPEN_VAL, PAIROPEN_WIRE),
    GOLDEN(ss_WriteBatch, WRITEBATCH_VAL, WRITEBATCH_WIRE),
    GOLDEN(ss_WriteAck, WRITEACK_VAL, WRITEACK_WIRE),
    /* credit (proto3 optional): absent above (an older ps: the agent's own
     * window), present here; present and 0 is sent (send nothing more) */
    GOLDEN(ss_WriteAck, (.pair = "p0", .durable_seq = 300, .has_credit = true, .credit = 1052672u),
           0x0a, 0x02, 'p', '0',                    /* 1 pair        len 2 */
           0x10, 0xac, 0x02,                        /* 2 durable_seq varint 300 */
           0x38, 0x80, 0xa0, 0x40),                 /* 7 credit      varint 2^20 + 4096 */
    GOLDEN(ss_WriteAck, (.pair = "p0", .status = 1, .has_credit = true, .credit = 0),
           0x0a, 0x02, 'p', '0',                    /* 1 pair   len 2 */
           0x28, 0x01,                              /* 5 status varint ACK_FULL */
           0x38, 0x00),                             /* 7 credit varint 0, present */
    GOLDEN(ss_PairOpen,
           (.pair = "p0", .durable_seq = 990, .reply = true, .has_credit = true, .credit = 65536),
           0x0a, 0x02, 'p', '0',                    /* 1 pair        len 2 */
           0x28, 0xde, 0x07,                        /* 5 durable_seq varint 990 */
           0x50, 0x01,                              /* 10 reply      varint 1 */
           0x58, 0x80, 0x80, 0x04),                 /* 11 credit     varint 2^16 */

    /* mgmt.proto */
    GOLDEN(ss_MgmtRequest, MGMTREQ_VAL, MGMTREQ_WIRE),
    GOLDEN(ss_MgmtResponse, MGMTRESP_VAL, MGMTRESP_WIRE),
    GOLDEN(ss_MgmtResponse, (.code = -1),
           0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01),
                                                    /* 1 code: a negative int32 is
                                                       sign-extended to a 10-byte varint */

    /* trace.proto */
    GOLDEN(ss_TraceEvent,
           (.time_us = 1795606822000000u, .node = "primary", .actor = "link:secondary",
            .machine = "link", .from = "hello", .event = "LINK_HELLO_OK", .to = "up",
            .detail = "rtt 120us", .seq = 1234567, .peer = "secondary",
            .clock_offset_us = -1500),
           0x08, 0x80, 0xab, 0xa0, 0xd6, 0x84, 0xa3, 0x98, 0x03, /* 1 time_us varint */
           0x12, 0x07, 'p', 'r', 'i', 'm', 'a', 'r', 'y',        /* 2 node    len 7 */
           0x1a, 0x0e, 'l', 'i', 'n', 'k', ':', 's', 'e', 'c', 'o', 'n', 'd', 'a', 'r', 'y',
                                                                 /* 3 actor   len 14 */
           0x22, 0x04, 'l', 'i', 'n', 'k',                       /* 4 machine len 4 */
           0x2a, 0x05, 'h', 'e', 'l', 'l', 'o',                  /* 5 from    len 5 */
           0x32, 0x0d, 'L', 'I', 'N', 'K', '_', 'H', 'E', 'L', 'L', 'O', '_', 'O', 'K',
                                                                 /* 6 event   len 13 */
           0x3a, 0x02, 'u', 'p',                                 /* 7 to      len 2 */
           0x42, 0x09, 'r', 't', 't', ' ', '1', '2', '0', 'u', 's', /* 8 detail len 9 */
                                                                 /* 9 refused false: absent */
           0x50, 0x87, 0xad, 0x4b,                               /* 10 seq varint 1234567 */
           0x5a, 0x09, 's', 'e', 'c', 'o', 'n', 'd', 'a', 'r', 'y', /* 11 peer len 9 */
           0x60, 0xb7, 0x17),                                    /* 12 clock_offset_us sint64
                                                                    -1500, zig-zag 2999 */
    GOLDEN(ss_TraceEvent,
           (.time_us = 1, .node = "n", .machine = "pair", .from = "protected",
            .event = "FAILBACK", .to = "protected", .refused = true, .seq = 2,
            .clock_offset_us = 1, .pair = "p0"),
           0x08, 0x01,                                           /* 1 time_us varint 1 */
           0x12, 0x01, 'n',                                      /* 2 node    len 1 */
           0x22, 0x04, 'p', 'a', 'i', 'r',                       /* 4 machine len 4 */
           0x2a, 0x09, 'p', 'r', 'o', 't', 'e', 'c', 't', 'e', 'd', /* 5 from len 9 */
           0x32, 0x08, 'F', 'A', 'I', 'L', 'B', 'A', 'C', 'K',   /* 6 event   len 8 */
           0x3a, 0x09, 'p', 'r', 'o', 't', 'e', 'c', 't', 'e', 'd', /* 7 to   len 9 */
           0x48, 0x01,                                           /* 9 refused varint 1 */
           0x50, 0x02,                                           /* 10 seq    varint 2 */
           0x60, 0x02,                                           /* 12 clock_offset_us +1,
                                                                    zig-zag 2 */
           0x6a, 0x02, 'p', '0'),                            /* 13 pair   len 2 */
};

#define NROWS (sizeof rows / sizeof rows[0])

static void hexdump(const char *what, const uint8_t *p, size_t n)
{
    print_message("%s (%zu bytes):", what, n);
    for (size_t i = 0; i < n; i++)
        print_message("%s%02x", i % 16 ? " " : "\n    ", p[i]);
    print_message("\n");
}

/* ---- round trips ---------------------------------------------------------- */

static void test_encode_equals_golden(void **state)
{
    uint8_t buf[4096];

    (void)state;
    for (size_t i = 0; i < NROWS; i++) {
        const golden_t *g = &rows[i];
        pb_ostream_t os = pb_ostream_from_buffer(buf, sizeof buf);
        size_t sz = 0;

        if (!pb_encode(&os, g->desc, g->msg))
            fail_msg("row %zu (%s): encode failed: %s", i, g->name, PB_GET_ERROR(&os));
        if (os.bytes_written != g->len || memcmp(buf, g->wire, g->len) != 0) {
            hexdump("golden", g->wire, g->len);
            hexdump("encoded", buf, os.bytes_written);
            fail_msg("row %zu (%s): encoding differs from the golden bytes", i, g->name);
        }
        assert_true(pb_get_encoded_size(&sz, g->desc, g->msg));
        assert_int_equal(sz, g->len);
    }
}

static void test_decode_equals_struct(void **state)
{
    (void)state;
    for (size_t i = 0; i < NROWS; i++) {
        const golden_t *g = &rows[i];
        pb_istream_t is = pb_istream_from_buffer(g->wire, g->len);
        void *m = calloc(1, g->size); /* zeroed like the static expected struct */

        assert_non_null(m);
        if (!pb_decode(&is, g->desc, m))
            fail_msg("row %zu (%s): decode failed: %s", i, g->name, PB_GET_ERROR(&is));
        assert_int_equal(is.bytes_left, 0);
        if (memcmp(m, g->msg, g->size) != 0) {
            hexdump("expected struct", g->msg, g->size);
            hexdump("decoded struct", m, g->size);
            fail_msg("row %zu (%s): decoded struct differs", i, g->name);
        }
        free(m);
    }
}

/* A golden row is only worth something if a wrong byte is noticed: flip one
 * bit in the middle byte of each row and check that the decode no longer
 * gives the expected struct. */
static void test_corrupted_golden_differs(void **state)
{
    uint8_t buf[4096];

    (void)state;
    for (size_t i = 0; i < NROWS; i++) {
        const golden_t *g = &rows[i];
        void *m;
        pb_istream_t is;
        bool same;

        if (g->len == 0)
            continue;
        assert_true(g->len <= sizeof buf);
        memcpy(buf, g->wire, g->len);
        buf[g->len / 2] ^= 0x01;
        m = calloc(1, g->size);
        assert_non_null(m);
        is = pb_istream_from_buffer(buf, g->len);
        same = pb_decode(&is, g->desc, m) && memcmp(m, g->msg, g->size) == 0;
        free(m);
        if (same)
            fail_msg("row %zu (%s): a flipped byte still decodes to the struct", i, g->name);
    }
}

/* ---- completeness ---------------------------------------------------------- */

static bool has_row(const char *name)
{
    for (size_t i = 0; i < NROWS; i++)
        if (strcmp(rows[i].name, name) == 0)
            return true;
    return false;
}

static bool has_envelope_body(unsigned tag)
{
    for (size_t i = 0; i < NROWS; i++)
        if (rows[i].desc == ss_Envelope_fields &&
            ((const ss_Envelope *)rows[i].msg)->which_body == tag)
            return true;
    return false;
}

/* gen/proto, found from the folder the tests run in (the repository root
 * under make) or a parent of it. */
static DIR *open_gen(char *path, size_t len)
{
    static const char *const tries[] = {"gen/proto", "../gen/proto", "../../gen/proto",
                                        "../../../gen/proto"};
    const char *env = getenv("SS_GEN_PROTO");
    DIR *d;

    if (env) {
        snprintf(path, len, "%s", env);
        return opendir(path);
    }
    for (size_t i = 0; i < sizeof tries / sizeof tries[0]; i++) {
        snprintf(path, len, "%s", tries[i]);
        if ((d = opendir(path)) != NULL)
            return d;
    }
    return NULL;
}

static void test_every_message_has_a_row(void **state)
{
    char dir[256], path[512], line[512], bodies[32][128];
    struct dirent *e;
    unsigned messages = 0, nbodies = 0, missing = 0;
    DIR *d = open_gen(dir, sizeof dir);

    (void)state;
    if (!d)
        fail_msg("cannot find gen/proto (run from the repository root, or set SS_GEN_PROTO)");
    while ((e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        FILE *f;

        if (n < 6 || strcmp(e->d_name + n - 5, ".pb.h") != 0)
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        f = fopen(path, "r");
        assert_non_null(f);
        while (fgets(line, sizeof line, f)) {
            char name[128];
            if (sscanf(line, "extern const pb_msgdesc_t %127[A-Za-z0-9_];", name) == 1) {
                size_t k = strlen(name);
                if (k > 4 && strcmp(name + k - 4, "_msg") == 0)
                    name[k - 4] = 0;
                messages++;
                if (!has_row(name)) {
                    print_error("%s: message %s has no golden row\n", path, name);
                    missing++;
                }
            } else if (sscanf(line, "#define ss_Envelope_body_%127[A-Za-z0-9_]", name) == 1) {
                size_t k = strlen(name);
                if (k > 8 && strcmp(name + k - 8, "_MSGTYPE") == 0 && nbodies < 32) {
                    name[k - 8] = 0;
                    snprintf(bodies[nbodies++], sizeof bodies[0], "%s", name);
                }
            }
        }
        fclose(f);
    }
    closedir(d);

    /* each Envelope body (its tag from link.pb.h) has an Envelope row */
    snprintf(path, sizeof path, "%s/link.pb.h", dir);
    for (unsigned b = 0; b < nbodies; b++) {
        char want[192];
        unsigned tag = 0;
        FILE *f = fopen(path, "r");

        assert_non_null(f);
        if ((size_t)snprintf(want, sizeof want, "#define ss_Envelope_%s_tag", bodies[b]) >=
            sizeof want)
            fail_msg("body name %s too long", bodies[b]);
        while (fgets(line, sizeof line, f))
            if (strncmp(line, want, strlen(want)) == 0 && line[strlen(want)] == ' ')
                tag = (unsigned)strtoul(line + strlen(want), NULL, 10);
        fclose(f);
        if (tag == 0 || !has_envelope_body(tag)) {
            print_error("Envelope body %s (tag %u) has no golden Envelope row\n", bodies[b],
                        tag);
            missing++;
        }
    }
    /* the scan itself must have seen something, or it proves nothing */
    assert_true(messages >= 5);
    assert_true(nbodies >= 3);
    assert_int_equal(missing, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_encode_equals_golden),
        cmocka_unit_test(test_decode_equals_struct),
        cmocka_unit_test(test_corrupted_golden_differs),
        cmocka_unit_test(test_every_message_has_a_row),
    };
    return cmocka_run_group_tests_name("proto_golden", tests, NULL, NULL);
}
