/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * nbd_proto.h: the NBD wire protocol, constants and byte-order helpers.
 *
 * The agent serves each protected disk over NBD ("fixed newstyle"
 * negotiation, simple replies). The numbers below are the ones of the NBD
 * protocol document (NetworkBlockDevice/nbd doc/proto.md); they live apart
 * from nbd.h so that the server, its unit tests, the fuzzer and the poke tool
 * of the integration tests all speak from one table. All integers on the wire
 * are big-endian; nbd_get*() and nbd_put*() convert without alignment
 * assumptions.
 */
#ifndef NBD_PROTO_H
#define NBD_PROTO_H

#include <stdint.h>

/* ---- handshake ----------------------------------------------------------- */

#define NBD_MAGIC           0x4e42444d41474943ull /* "NBDMAGIC" */
#define NBD_IHAVEOPT        0x49484156454f5054ull /* "IHAVEOPT", option request magic */
#define NBD_REP_MAGIC       0x0003e889045565a9ull /* option reply magic */

/* handshake flags (server, 16 bits) */
#define NBD_FLAG_FIXED_NEWSTYLE (1u << 0)
#define NBD_FLAG_NO_ZEROES      (1u << 1)
/* client flags (32 bits) */
#define NBD_FLAG_C_FIXED_NEWSTYLE (1u << 0)
#define NBD_FLAG_C_NO_ZEROES      (1u << 1)

/* options */
enum {
    NBD_OPT_EXPORT_NAME = 1,
    NBD_OPT_ABORT = 2,
    NBD_OPT_LIST = 3,
    NBD_OPT_STARTTLS = 5,
    NBD_OPT_INFO = 6,
    NBD_OPT_GO = 7,
    NBD_OPT_STRUCTURED_REPLY = 8,
    NBD_OPT_LIST_META_CONTEXT = 9,
    NBD_OPT_SET_META_CONTEXT = 10,
    NBD_OPT_EXTENDED_HEADERS = 11,
};

/* option reply types */
#define NBD_REP_ACK     1u
#define NBD_REP_SERVER  2u
#define NBD_REP_INFO    3u
#define NBD_REP_ERR(n)  (0x80000000u | (n))
#define NBD_REP_ERR_UNSUP    NBD_REP_ERR(1u)
#define NBD_REP_ERR_POLICY   NBD_REP_ERR(2u)
#define NBD_REP_ERR_INVALID  NBD_REP_ERR(3u)
#define NBD_REP_ERR_PLATFORM NBD_REP_ERR(4u)
#define NBD_REP_ERR_TLS_REQD NBD_REP_ERR(5u)
#define NBD_REP_ERR_UNKNOWN  NBD_REP_ERR(6u)
#define NBD_REP_ERR_SHUTDOWN NBD_REP_ERR(7u)
#define NBD_REP_ERR_BLOCK_SIZE_REQD NBD_REP_ERR(8u)
#define NBD_REP_ERR_TOO_BIG  NBD_REP_ERR(9u)

/* NBD_REP_INFO types */
#define NBD_INFO_EXPORT      0u
#define NBD_INFO_NAME        1u
#define NBD_INFO_DESCRIPTION 2u
#define NBD_INFO_BLOCK_SIZE  3u

/* transmission flags (16 bits) */
#define NBD_FLAG_HAS_FLAGS         (1u << 0)
#define NBD_FLAG_READ_ONLY         (1u << 1)
#define NBD_FLAG_SEND_FLUSH        (1u << 2)
#define NBD_FLAG_SEND_FUA          (1u << 3)
#define NBD_FLAG_ROTATIONAL        (1u << 4)
#define NBD_FLAG_SEND_TRIM         (1u << 5)
#define NBD_FLAG_SEND_WRITE_ZEROES (1u << 6)
#define NBD_FLAG_SEND_DF           (1u << 7)
#define NBD_FLAG_CAN_MULTI_CONN    (1u << 8)
#define NBD_FLAG_SEND_RESIZE       (1u << 9)
#define NBD_FLAG_SEND_CACHE        (1u << 10)
#define NBD_FLAG_SEND_FAST_ZERO    (1u << 11)

/* ---- transmission ------------------------------------------------------- */

#define NBD_REQUEST_MAGIC      0x25609513u
#define NBD_SIMPLE_REPLY_MAGIC 0x67446698u
#define NBD_REQUEST_SIZE       28u /* magic 4, flags 2, type 2, cookie 8, offset 8, length 4 */
#define NBD_REPLY_SIZE         16u /* magic 4, error 4, cookie 8 */
#define NBD_OPT_HDR_SIZE       16u /* magic 8, option 4, length 4 */
#define NBD_REP_HDR_SIZE       20u /* magic 8, option 4, type 4, length 4 */

enum {
    NBD_CMD_READ = 0,
    NBD_CMD_WRITE = 1,
    NBD_CMD_DISC = 2,
    NBD_CMD_FLUSH = 3,
    NBD_CMD_TRIM = 4,
    NBD_CMD_CACHE = 5,
    NBD_CMD_WRITE_ZEROES = 6,
    NBD_CMD_BLOCK_STATUS = 7,
};

/* command flags (16 bits) */
#define NBD_CMD_FLAG_FUA       (1u << 0)
#define NBD_CMD_FLAG_NO_HOLE   (1u << 1)
#define NBD_CMD_FLAG_DF        (1u << 2)
#define NBD_CMD_FLAG_REQ_ONE   (1u << 3)
#define NBD_CMD_FLAG_FAST_ZERO (1u << 4)

/* error values of a reply */
#define NBD_EPERM     1u
#define NBD_EIO       5u
#define NBD_ENOMEM    12u
#define NBD_EINVAL    22u
#define NBD_ENOSPC    28u
#define NBD_EOVERFLOW 75u
#define NBD_ENOTSUP   95u
#define NBD_ESHUTDOWN 108u

#define NBD_NAME_MAX  4096u /* longest string (export name, description) */

/* ---- byte order ----------------------------------------------------------- */

static inline uint16_t nbd_get16(const uint8_t *p)
{
    return (uint16_t)((unsigned)p[0] << 8 | p[1]);
}

static inline uint32_t nbd_get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline uint64_t nbd_get64(const uint8_t *p)
{
    return (uint64_t)nbd_get32(p) << 32 | nbd_get32(p + 4);
}

static inline void nbd_put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static inline void nbd_put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static inline void nbd_put64(uint8_t *p, uint64_t v)
{
    nbd_put32(p, (uint32_t)(v >> 32));
    nbd_put32(p + 4, (uint32_t)v);
}

#endif /* NBD_PROTO_H */
