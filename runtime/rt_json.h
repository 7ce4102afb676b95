/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * rt_json.h: a tiny JSON writer and reader, the manual.
 *
 * The management endpoint answers every request with one JSON document (what
 * `nodectl --json` prints), and nodectl reads those documents back to print
 * tables and to poll. Both sides need the same few things: write objects,
 * arrays, strings with correct escaping, numbers and booleans into a bounded
 * buffer, and read a document back by key without building a heap of nodes.
 *
 * The writer appends to a caller buffer (fixed) or to a buffer it grows up
 * to a ceiling (rt_json_init_alloc). Any overflow or misuse (a value without
 * a key inside an object, a key outside one, an unbalanced end) sets a
 * sticky error: every later call does nothing and rt_json_finish() says
 * RT_ERR, so a caller writes a whole document and checks once. Strings are
 * escaped for JSON; valid UTF-8 passes through unchanged, and a byte that is
 * not part of valid UTF-8 becomes U+FFFD, so the output is always valid JSON
 * and valid UTF-8 whatever the input (file names, peer-supplied text).
 *
 * The reader (rt_json_parse) checks a document strictly against RFC 8259 and
 * fills a caller array of tokens, one per value (and one per object key), in
 * document order, each knowing where its subtree ends; lookups walk that
 * array. Strings are unescaped only on demand, into a caller buffer.
 *
 * Ownership: the caller owns rt_json_t and the token array; rt_json_free()
 * releases the buffer of an allocating writer. Nothing here logs.
 */
#ifndef RT_JSON_H
#define RT_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define RT_JSON_DEPTH 32u /* deepest nesting the writer and the reader accept */

/* ---- writer ----------------------------------------------------------------- */

typedef struct rt_json {
    char *buf;          /* the document, NUL-terminated while no error */
    size_t len;         /* bytes written, without the NUL */
    size_t cap;         /* bytes in buf */
    size_t max;         /* allocating writer: ceiling on cap; 0: caller buffer */
    bool err;           /* overflow or misuse; sticky */
    bool done;          /* a whole top-level value was written */
    uint8_t depth;      /* open containers */
    uint32_t is_obj;    /* bit d: container at depth d+1 is an object */
    uint32_t has_elem;  /* bit d: container at depth d+1 has an element */
} rt_json_t;

/*! rt_json_init() : write into the caller's @buf of @cap bytes (@cap >= 1;
 *  the document is NUL-terminated, so it holds at most @cap - 1 bytes). */
void rt_json_init(rt_json_t *j, char *buf, size_t cap);
/*! rt_json_init_alloc() : write into a buffer of @initial bytes that grows
 *  (doubling) up to @max bytes; free it with rt_json_free().
 *  @return RT_OK, or RT_ERR when the first allocation fails. */
int rt_json_init_alloc(rt_json_t *j, size_t initial, size_t max);
/*! rt_json_free() : release an allocating writer's buffer (a writer on a
 *  caller buffer is left alone). */
void rt_json_free(rt_json_t *j);
/*! rt_json_reset() : empty the document and clear the error, keeping the buffer. */
void rt_json_reset(rt_json_t *j);

/* Values. @key names the member inside an object and must be NULL inside an
 * array or at the top level; a mismatch is an error. */
void rt_json_obj(rt_json_t *j, const char *key);     /* open an object */
void rt_json_obj_end(rt_json_t *j);                  /* close it */
void rt_json_arr(rt_json_t *j, const char *key);     /* open an array */
void rt_json_arr_end(rt_json_t *j);                  /* close it */
void rt_json_str(rt_json_t *j, const char *key, const char *s); /* NULL writes null */
void rt_json_strn(rt_json_t *j, const char *key, const char *s, size_t n);
void rt_json_strf(rt_json_t *j, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4))); /* formatted, at most 1 KiB */
void rt_json_u64(rt_json_t *j, const char *key, uint64_t v);
void rt_json_i64(rt_json_t *j, const char *key, int64_t v);
void rt_json_dbl(rt_json_t *j, const char *key, double v); /* NaN, inf: null */
void rt_json_bool(rt_json_t *j, const char *key, bool v);
void rt_json_null(rt_json_t *j, const char *key);
/*! rt_json_b64() : @len bytes of @data as a base64 string (RFC 4648, padded). */
void rt_json_b64(rt_json_t *j, const char *key, const void *data, size_t len);

/* A point in a document to come back to, e.g. to replace the part a
 * callback wrote with an error when the callback failed. */
typedef struct rt_json_mark {
    size_t len;
    uint32_t is_obj, has_elem;
    uint8_t depth;
    bool done;
} rt_json_mark_t;
/*! rt_json_mark() : remember where @j is. */
rt_json_mark_t rt_json_mark(const rt_json_t *j);
/*! rt_json_rollback() : drop everything written after @m (made on this
 *  writer, not rolled back past) and clear the error. */
void rt_json_rollback(rt_json_t *j, rt_json_mark_t m);

/*! rt_json_finish() : @return RT_OK if exactly one whole value was written
 *  with no error (j->buf then holds it, j->len bytes), else RT_ERR. */
int rt_json_finish(const rt_json_t *j);

/* ---- string escaping, shared with the tools ---------------------------------- */

enum {
    RT_JSON_HTML = 1u << 0, /* also escape < > & (safe inside an HTML <script>) */
};

/*! rt_json_escape() : @s (@n bytes) as a quoted JSON string into @out (@cap
 *  bytes, NUL-terminated when @cap > 0), with the escaping rules above and
 *  @flags. @return the length of the whole quoted string (without the NUL):
 *  when it is >= @cap the output was cut (snprintf style). */
size_t rt_json_escape(char *out, size_t cap, const char *s, size_t n, unsigned flags);
/*! rt_json_fputs() : the quoted, escaped string @s on @f (NULL: ""). */
void rt_json_fputs(FILE *f, const char *s, unsigned flags);

/* ---- reader ----------------------------------------------------------------- */

typedef enum {
    RT_JSON_T_NULL = 0,
    RT_JSON_T_BOOL,
    RT_JSON_T_NUM,
    RT_JSON_T_STR,
    RT_JSON_T_ARR,
    RT_JSON_T_OBJ,
} rt_json_type_t;

/* One value (or object key) of a parsed document. */
typedef struct rt_json_tok {
    uint8_t type;       /* rt_json_type_t */
    uint32_t start;     /* offset of its text (a string: after the opening quote) */
    uint32_t end;       /* offset just past it (a string: at the closing quote) */
    uint32_t size;      /* array: elements; object: members; else 0 */
    uint32_t next;      /* index of the first token after its whole subtree */
} rt_json_tok_t;

/* A parsed document: tokens in document order, tok[0] the root. An object's
 * members follow it as key (a string token), value (a subtree), key, ... */
typedef struct rt_json_doc {
    const char *text;   /* the document, not owned: it must outlive the doc */
    size_t len;
    rt_json_tok_t *tok; /* caller's array */
    uint32_t ntok;      /* tokens used */
} rt_json_doc_t;

/*! rt_json_parse() : parse @len bytes of @text (one value, surrounding
 *  white space allowed) into @tok (@cap tokens; one per value and key).
 *  With @tok NULL it only checks the document and counts the tokens it
 *  needs into d->ntok (d->tok stays NULL: no lookups), to size the array.
 *  @return RT_OK, or RT_ERR with a one-line reason and byte offset in @err
 *  (bad syntax, nesting deeper than RT_JSON_DEPTH, more than @cap tokens, a
 *  document above 4 GiB). */
int rt_json_parse(rt_json_doc_t *d, const char *text, size_t len, rt_json_tok_t *tok,
                  uint32_t cap, char *err, size_t errlen);

/* Lookups take and give token indexes; -1 means "none" and is accepted as
 * input, so lookups chain: rt_json_get(d, rt_json_get(d, 0, "memory"), "used"). */
/*! rt_json_get() : the value of member @key of the object @obj, or -1. */
int rt_json_get(const rt_json_doc_t *d, int obj, const char *key);
/*! rt_json_at() : element @i of the array @arr, or -1. */
int rt_json_at(const rt_json_doc_t *d, int arr, uint32_t i);
/*! rt_json_type() : the type of @t; RT_JSON_T_NULL for -1 too. */
rt_json_type_t rt_json_type(const rt_json_doc_t *d, int t);
/*! rt_json_size() : elements of an array, members of an object, else 0. */
uint32_t rt_json_size(const rt_json_doc_t *d, int t);
/*! value readers: @return RT_OK, or RT_ERR when @t is -1, of another type,
 *  or does not fit (a negative or fractional number as u64, a string longer
 *  than @cap - 1 bytes, bad base64). */
int rt_json_get_u64(const rt_json_doc_t *d, int t, uint64_t *out);
int rt_json_get_i64(const rt_json_doc_t *d, int t, int64_t *out);
int rt_json_get_dbl(const rt_json_doc_t *d, int t, double *out);
int rt_json_get_bool(const rt_json_doc_t *d, int t, bool *out);
/*! rt_json_get_str() : the unescaped string (UTF-8) into @out, NUL-terminated. */
int rt_json_get_str(const rt_json_doc_t *d, int t, char *out, size_t cap);
/*! rt_json_get_b64() : a base64 string decoded into @out (@cap bytes), its
 *  length in *@outlen. */
int rt_json_get_b64(const rt_json_doc_t *d, int t, void *out, size_t cap, size_t *outlen);
/*! rt_json_streq() : true if @t is a string equal to @s once unescaped. */
bool rt_json_streq(const rt_json_doc_t *d, int t, const char *s);

#endif /* RT_JSON_H */
