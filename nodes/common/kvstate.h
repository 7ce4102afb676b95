/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * kvstate.h: small durable "key value" state files, replaced atomically.
 *
 * The process server keeps one per pair (what it must remember about a
 * pair besides its spool: disk, size, epoch, the end of the last sync pass)
 * and so does the master target (consistent_seq, beside the journal's own
 * state file). The layout is the one of the journal's state file
 * (docs/FORMAT.md 4.2 and 5): ASCII, a first line "MAGIC VERSION", one
 * "key value" per line, and a last line "checksum HEX", the XXH64 of every
 * byte before it as 16 lowercase hex digits. Writing goes through NAME.tmp
 * (written, fdatasync'd, renamed over NAME, folder fsync'd), so after a
 * crash the file is the old one or the new one, never a mix.
 *
 * Values are text without newlines; numbers are written in decimal. Plain
 * blocking I/O. Errors: RT_OK / RT_ERR with a one-line reason in @err.
 */
#ifndef KVSTATE_H
#define KVSTATE_H

#include <stddef.h>
#include <stdint.h>

#define KVS_MAX_KEYS 16u  /* keys in one file */
#define KVS_KEY_MAX  32u  /* bytes of a key, with NUL */
#define KVS_VAL_MAX  128u /* bytes of a value, with NUL */
#define KVS_FILE_MAX 4096u

typedef struct kvs {
    unsigned n;                          /* keys in use */
    char key[KVS_MAX_KEYS][KVS_KEY_MAX];
    char val[KVS_MAX_KEYS][KVS_VAL_MAX];
} kvs_t;

/*! kvs_set() / kvs_set_u64() : set @key (added if new). @return RT_ERR if
 *  the table is full or the key or value is too long or has a newline. */
int kvs_set(kvs_t *kv, const char *key, const char *val);
int kvs_set_u64(kvs_t *kv, const char *key, uint64_t v);
/*! kvs_get() : the value of @key, or NULL. */
const char *kvs_get(const kvs_t *kv, const char *key);
/*! kvs_get_u64() : the value of @key as a decimal number, or @def when it is
 *  absent or not a number. */
uint64_t kvs_get_u64(const kvs_t *kv, const char *key, uint64_t def);

/*! kvs_write() : replace @dir/@name atomically with @magic @version and the
 *  keys of @kv. @return RT_OK once it is durable, or RT_ERR. */
int kvs_write(const char *dir, const char *name, const char *magic, unsigned version,
              const kvs_t *kv, char *err, size_t errlen);
/*! kvs_read() : read @dir/@name into @kv, checking the magic, version and
 *  checksum. @return RT_OK, or RT_ERR (missing: errno ENOENT; damaged). */
int kvs_read(const char *dir, const char *name, const char *magic, unsigned version, kvs_t *kv,
             char *err, size_t errlen);

#endif /* KVSTATE_H */
