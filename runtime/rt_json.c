/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * rt_json.c: the tiny JSON writer and reader of rt_json.h.
 *
 * Management responses are JSON documents built on the loop from the state
 * of the roles, and nodectl reads them back; a general JSON library would be
 * a heap of nodes and a dependency for a few hundred lines of need. The
 * writer is an append-only buffer with a stack of open containers (one bit
 * per level for "object or array" and one for "has an element", so commas
 * and keys are placed by the writer, never by the caller); its errors are
 * sticky so a caller checks once. The reader is a strict recursive-descent
 * checker that records one token per value in a caller array (jsmn style),
 * with each token's subtree end so that lookups skip whole members; nothing
 * is allocated and nothing is unescaped until asked for.
 *
 * The string escaper is shared with the tools (nodetrace's JSON and HTML
 * output), so every JSON string the project writes follows one rule set:
 * the mandatory escapes, \u00XX for other control bytes and DEL, valid UTF-8
 * as is, anything else as U+FFFD.
 */
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "rt.h"
#include "rt_json.h"

/* ---- escaping ---------------------------------------------------------------- */

typedef void (*emit_fn)(void *arg, const char *s, size_t n);

/* length of the valid UTF-8 sequence at @p (at most @avail bytes), 0 if invalid */
static size_t utf8_seq(const unsigned char *p, size_t avail)
{
    unsigned char c = p[0];
    size_t n;
    uint32_t cp;

    if (c < 0x80)
        return 1;
    if ((c & 0xE0u) == 0xC0u) {
        n = 2;
        cp = c & 0x1Fu;
    } else if ((c & 0xF0u) == 0xE0u) {
        n = 3;
        cp = c & 0x0Fu;
    } else if ((c & 0xF8u) == 0xF0u) {
        n = 4;
        cp = c & 0x07u;
    } else {
        return 0;
    }
    if (n > avail)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xC0u) != 0x80u)
            return 0;
        cp = (cp << 6) | (p[i] & 0x3Fu);
    }
    if ((n == 2 && cp < 0x80) || (n == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
        (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
        return 0; /* overlong, surrogate or beyond Unicode */
    return n;
}

/* the quoted, escaped form of @s[@n], in runs, to @emit */
static void escape(const char *s, size_t n, unsigned flags, emit_fn emit, void *arg)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s;
    size_t run = 0; /* plain bytes pending at p[i - run .. i) */
    char esc[8];

    emit(arg, "\"", 1);
    for (size_t i = 0; i < n;) {
        unsigned char c = p[i];
        const char *rep = NULL;
        size_t replen = 2, adv = 1;

        switch (c) {
        case '"': rep = "\\\""; break;
        case '\\': rep = "\\\\"; break;
        case '\n': rep = "\\n"; break;
        case '\r': rep = "\\r"; break;
        case '\t': rep = "\\t"; break;
        case '\b': rep = "\\b"; break;
        case '\f': rep = "\\f"; break;
        case '<':
        case '>':
        case '&':
            if (flags & RT_JSON_HTML) {
                esc[0] = '\\', esc[1] = 'u', esc[2] = '0', esc[3] = '0';
                esc[4] = hex[c >> 4], esc[5] = hex[c & 15];
                rep = esc, replen = 6;
            }
            break;
        default:
            if (c < 0x20 || c == 0x7f) {
                esc[0] = '\\', esc[1] = 'u', esc[2] = '0', esc[3] = '0';
                esc[4] = hex[c >> 4], esc[5] = hex[c & 15];
                rep = esc, replen = 6;
            } else if (c >= 0x80) {
                adv = utf8_seq(p + i, n - i);
                if (adv == 0) {
                    rep = "\\ufffd", replen = 6, adv = 1;
                }
            }
            break;
        }
        if (rep) {
            if (run)
                emit(arg, (const char *)p + i - run, run);
            run = 0;
            emit(arg, rep, replen);
        } else {
            run += adv;
        }
        i += adv;
    }
    if (run)
        emit(arg, (const char *)p + n - run, run);
    emit(arg, "\"", 1);
}

typedef struct {
    char *out;
    size_t cap, len; /* len counts everything, even past cap */
} escbuf_t;

static void emit_buf(void *arg, const char *s, size_t n)
{
    escbuf_t *b = arg;
    if (b->len < b->cap) {
        size_t room = b->cap - b->len;
        memcpy(b->out + b->len, s, n < room ? n : room);
    }
    b->len += n;
}

size_t rt_json_escape(char *out, size_t cap, const char *s, size_t n, unsigned flags)
{
    escbuf_t b = {out, cap, 0};
    escape(s ? s : "", s ? n : 0, flags, emit_buf, &b);
    if (cap)
        out[b.len < cap ? b.len : cap - 1] = '\0';
    return b.len;
}

static void emit_file(void *arg, const char *s, size_t n)
{
    fwrite(s, 1, n, (FILE *)arg);
}

void rt_json_fputs(FILE *f, const char *s, unsigned flags)
{
    escape(s ? s : "", s ? strlen(s) : 0, flags, emit_file, f);
}

/* ---- writer ------------------------------------------------------------------ */

void rt_json_init(rt_json_t *j, char *buf, size_t cap)
{
    memset(j, 0, sizeof *j);
    j->buf = buf;
    j->cap = cap;
    if (!buf || !cap)
        j->err = true;
    else
        buf[0] = '\0';
}

int rt_json_init_alloc(rt_json_t *j, size_t initial, size_t max)
{
    memset(j, 0, sizeof *j);
    if (initial < 16)
        initial = 16;
    if (max < initial)
        max = initial;
    j->buf = malloc(initial);
    if (!j->buf) {
        j->err = true;
        return RT_ERR;
    }
    j->cap = initial;
    j->max = max;
    j->buf[0] = '\0';
    return RT_OK;
}

void rt_json_free(rt_json_t *j)
{
    if (j->max)
        free(j->buf);
    j->buf = NULL;
    j->cap = j->len = 0;
    j->err = true;
}

void rt_json_reset(rt_json_t *j)
{
    j->len = 0;
    j->done = false;
    j->depth = 0;
    j->is_obj = j->has_elem = 0;
    j->err = !j->buf || !j->cap;
    if (!j->err)
        j->buf[0] = '\0';
}

/* make room for @need bytes in all (the NUL included) */
static bool grow(rt_json_t *j, size_t need)
{
    if (!j->max || need > j->max)
        return false;
    size_t ncap = j->cap;
    while (ncap < need)
        ncap = ncap > j->max / 2 ? j->max : ncap * 2;
    char *n = realloc(j->buf, ncap);
    if (!n)
        return false;
    j->buf = n;
    j->cap = ncap;
    return true;
}

static void put(rt_json_t *j, const char *s, size_t n)
{
    if (j->err)
        return;
    if (n >= j->cap - j->len && !grow(j, j->len + n + 1)) {
        j->err = true;
        return;
    }
    memcpy(j->buf + j->len, s, n);
    j->len += n;
    j->buf[j->len] = '\0';
}

static void emit_writer(void *arg, const char *s, size_t n)
{
    put(arg, s, n);
}

/* the comma and the key before a value; false (and the error set) on misuse */
static bool value_begin(rt_json_t *j, const char *key)
{
    if (j->err)
        return false;
    if (j->depth == 0) {
        if (key || j->done)
            j->err = true;
        return !j->err;
    }
    uint32_t bit = 1u << (j->depth - 1);
    if (((j->is_obj & bit) != 0) != (key != NULL)) {
        j->err = true;
        return false;
    }
    if (j->has_elem & bit)
        put(j, ",", 1);
    j->has_elem |= bit;
    if (key) {
        escape(key, strlen(key), 0, emit_writer, j);
        put(j, ":", 1);
    }
    return !j->err;
}

static void value_end(rt_json_t *j)
{
    if (j->depth == 0 && !j->err)
        j->done = true;
}

static void open_container(rt_json_t *j, const char *key, bool obj)
{
    if (!value_begin(j, key))
        return;
    if (j->depth >= RT_JSON_DEPTH) {
        j->err = true;
        return;
    }
    put(j, obj ? "{" : "[", 1);
    uint32_t bit = 1u << j->depth;
    j->depth++;
    if (obj)
        j->is_obj |= bit;
    else
        j->is_obj &= ~bit;
    j->has_elem &= ~bit;
}

static void close_container(rt_json_t *j, bool obj)
{
    if (j->err)
        return;
    if (j->depth == 0 || ((j->is_obj >> (j->depth - 1)) & 1u) != (obj ? 1u : 0u)) {
        j->err = true;
        return;
    }
    put(j, obj ? "}" : "]", 1);
    j->depth--;
    value_end(j);
}

void rt_json_obj(rt_json_t *j, const char *key)
{
    open_container(j, key, true);
}

void rt_json_obj_end(rt_json_t *j)
{
    close_container(j, true);
}

void rt_json_arr(rt_json_t *j, const char *key)
{
    open_container(j, key, false);
}

void rt_json_arr_end(rt_json_t *j)
{
    close_container(j, false);
}

static void scalar(rt_json_t *j, const char *key, const char *text, size_t n)
{
    if (!value_begin(j, key))
        return;
    put(j, text, n);
    value_end(j);
}

void rt_json_strn(rt_json_t *j, const char *key, const char *s, size_t n)
{
    if (!s) {
        rt_json_null(j, key);
        return;
    }
    if (!value_begin(j, key))
        return;
    escape(s, n, 0, emit_writer, j);
    value_end(j);
}

void rt_json_str(rt_json_t *j, const char *key, const char *s)
{
    rt_json_strn(j, key, s, s ? strlen(s) : 0);
}

void rt_json_strf(rt_json_t *j, const char *key, const char *fmt, ...)
{
    char tmp[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) {
        j->err = true;
        return;
    }
    rt_json_strn(j, key, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

void rt_json_u64(rt_json_t *j, const char *key, uint64_t v)
{
    char tmp[24];
    int n = snprintf(tmp, sizeof tmp, "%" PRIu64, v);
    scalar(j, key, tmp, (size_t)n);
}

void rt_json_i64(rt_json_t *j, const char *key, int64_t v)
{
    char tmp[24];
    int n = snprintf(tmp, sizeof tmp, "%" PRId64, v);
    scalar(j, key, tmp, (size_t)n);
}

void rt_json_dbl(rt_json_t *j, const char *key, double v)
{
    char tmp[32];
    if (!isfinite(v)) {
        rt_json_null(j, key);
        return;
    }
    int n = snprintf(tmp, sizeof tmp, "%.15g", v);
    scalar(j, key, tmp, (size_t)n);
}

void rt_json_bool(rt_json_t *j, const char *key, bool v)
{
    scalar(j, key, v ? "true" : "false", v ? 4 : 5);
}

void rt_json_null(rt_json_t *j, const char *key)
{
    scalar(j, key, "null", 4);
}

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

void rt_json_b64(rt_json_t *j, const char *key, const void *data, size_t len)
{
    const uint8_t *p = data;
    char chunk[256];
    size_t k = 0;

    if (!value_begin(j, key))
        return;
    put(j, "\"", 1);
    for (size_t i = 0; i < len && !j->err; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        size_t left = len - i;
        if (left > 1)
            v |= (uint32_t)p[i + 1] << 8;
        if (left > 2)
            v |= p[i + 2];
        chunk[k++] = b64_alphabet[(v >> 18) & 63];
        chunk[k++] = b64_alphabet[(v >> 12) & 63];
        chunk[k++] = left > 1 ? b64_alphabet[(v >> 6) & 63] : '=';
        chunk[k++] = left > 2 ? b64_alphabet[v & 63] : '=';
        if (k + 4 > sizeof chunk) {
            put(j, chunk, k);
            k = 0;
        }
    }
    put(j, chunk, k);
    put(j, "\"", 1);
    value_end(j);
}

rt_json_mark_t rt_json_mark(const rt_json_t *j)
{
    return (rt_json_mark_t){j->len, j->is_obj, j->has_elem, j->depth, j->done};
}

void rt_json_rollback(rt_json_t *j, rt_json_mark_t m)
{
    if (!j->buf || !j->cap || m.len >= j->cap)
        return; /* not a mark of this writer: leave the error standing */
    j->len = m.len;
    j->is_obj = m.is_obj;
    j->has_elem = m.has_elem;
    j->depth = m.depth;
    j->done = m.done;
    j->err = false;
    j->buf[j->len] = '\0';
}

int rt_json_finish(const rt_json_t *j)
{
    return !j->err && j->done && j->depth == 0 ? RT_OK : RT_ERR;
}

/* ---- reader: parsing ----------------------------------------------------------- */

typedef struct {
    const char *s;
    size_t len, pos;
    rt_json_tok_t *tok;        /* NULL: only count */
    uint32_t cap, n;
    char *err;
    size_t errlen;
    rt_json_tok_t sink;        /* what a counting parse writes to */
} parser_t;

static rt_json_tok_t *ptok(parser_t *p, int t)
{
    return p->tok ? &p->tok[t] : &p->sink;
}

static int p_fail(parser_t *p, const char *what)
{
    if (p->err && p->errlen)
        snprintf(p->err, p->errlen, "bad JSON: %s at byte %zu", what, p->pos);
    return RT_ERR;
}

static void p_ws(parser_t *p)
{
    while (p->pos < p->len) {
        char c = p->s[p->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            break;
        p->pos++;
    }
}

static int p_tok(parser_t *p, rt_json_type_t type, size_t start)
{
    if (p->n >= p->cap)
        return p_fail(p, "too many values"), -1;
    rt_json_tok_t *t = ptok(p, (int)p->n);
    t->type = (uint8_t)type;
    t->start = (uint32_t)start;
    t->end = (uint32_t)start;
    t->size = 0;
    t->next = p->n + 1;
    return (int)p->n++;
}

static bool is_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static int p_string(parser_t *p)
{
    int t = p_tok(p, RT_JSON_T_STR, ++p->pos); /* past the opening quote */
    if (t < 0)
        return RT_ERR;
    while (p->pos < p->len) {
        unsigned char c = (unsigned char)p->s[p->pos];
        if (c == '"') {
            ptok(p, t)->end = (uint32_t)p->pos++;
            return RT_OK;
        }
        if (c < 0x20)
            return p_fail(p, "control character in a string");
        if (c == '\\') {
            if (++p->pos >= p->len)
                break;
            c = (unsigned char)p->s[p->pos];
            if (c == 'u') {
                for (int i = 1; i <= 4; i++)
                    if (p->pos + (size_t)i >= p->len || !is_hex(p->s[p->pos + (size_t)i]))
                        return p_fail(p, "bad \\u escape");
                p->pos += 5;
            } else if (strchr("\"\\/bfnrt", c) && c) {
                p->pos++;
            } else {
                return p_fail(p, "bad escape");
            }
            continue;
        }
        if (c >= 0x80) {
            size_t n = utf8_seq((const unsigned char *)p->s + p->pos, p->len - p->pos);
            if (!n)
                return p_fail(p, "invalid UTF-8");
            p->pos += n;
            continue;
        }
        p->pos++;
    }
    return p_fail(p, "unterminated string");
}

static int p_number(parser_t *p)
{
    size_t start = p->pos;
    const char *s = p->s;
    if (s[p->pos] == '-')
        p->pos++;
    if (p->pos < p->len && s[p->pos] == '0') {
        p->pos++;
    } else if (p->pos < p->len && s[p->pos] >= '1' && s[p->pos] <= '9') {
        while (p->pos < p->len && is_digit(s[p->pos]))
            p->pos++;
    } else {
        return p_fail(p, "bad number");
    }
    if (p->pos < p->len && s[p->pos] == '.') {
        p->pos++;
        if (p->pos >= p->len || !is_digit(s[p->pos]))
            return p_fail(p, "bad number");
        while (p->pos < p->len && is_digit(s[p->pos]))
            p->pos++;
    }
    if (p->pos < p->len && (s[p->pos] == 'e' || s[p->pos] == 'E')) {
        p->pos++;
        if (p->pos < p->len && (s[p->pos] == '+' || s[p->pos] == '-'))
            p->pos++;
        if (p->pos >= p->len || !is_digit(s[p->pos]))
            return p_fail(p, "bad number");
        while (p->pos < p->len && is_digit(s[p->pos]))
            p->pos++;
    }
    int t = p_tok(p, RT_JSON_T_NUM, start);
    if (t < 0)
        return RT_ERR;
    ptok(p, t)->end = (uint32_t)p->pos;
    return RT_OK;
}

static int p_literal(parser_t *p, const char *word, rt_json_type_t type)
{
    size_t n = strlen(word);
    if (p->len - p->pos < n || memcmp(p->s + p->pos, word, n) != 0)
        return p_fail(p, "unexpected character");
    int t = p_tok(p, type, p->pos);
    if (t < 0)
        return RT_ERR;
    p->pos += n;
    ptok(p, t)->end = (uint32_t)p->pos;
    return RT_OK;
}

static int p_value(parser_t *p, unsigned depth);

/* an object or an array at p->pos (its opening bracket) */
static int p_container(parser_t *p, unsigned depth, bool obj)
{
    if (depth >= RT_JSON_DEPTH)
        return p_fail(p, "nesting too deep");
    int t = p_tok(p, obj ? RT_JSON_T_OBJ : RT_JSON_T_ARR, p->pos++);
    if (t < 0)
        return RT_ERR;
    char close = obj ? '}' : ']';
    p_ws(p);
    if (p->pos < p->len && p->s[p->pos] == close) {
        p->pos++;
    } else {
        for (;;) {
            if (obj) {
                p_ws(p);
                if (p->pos >= p->len || p->s[p->pos] != '"')
                    return p_fail(p, "expected a member name");
                if (p_string(p) != RT_OK)
                    return RT_ERR;
                p_ws(p);
                if (p->pos >= p->len || p->s[p->pos] != ':')
                    return p_fail(p, "expected ':'");
                p->pos++;
            }
            if (p_value(p, depth + 1) != RT_OK)
                return RT_ERR;
            ptok(p, t)->size++;
            p_ws(p);
            if (p->pos < p->len && p->s[p->pos] == ',') {
                p->pos++;
                continue;
            }
            if (p->pos < p->len && p->s[p->pos] == close) {
                p->pos++;
                break;
            }
            return p_fail(p, obj ? "expected ',' or '}'" : "expected ',' or ']'");
        }
    }
    ptok(p, t)->end = (uint32_t)p->pos;
    ptok(p, t)->next = p->n;
    return RT_OK;
}

static int p_value(parser_t *p, unsigned depth)
{
    p_ws(p);
    if (p->pos >= p->len)
        return p_fail(p, "unexpected end");
    char c = p->s[p->pos];
    switch (c) {
    case '{': return p_container(p, depth, true);
    case '[': return p_container(p, depth, false);
    case '"': return p_string(p);
    case 't': return p_literal(p, "true", RT_JSON_T_BOOL);
    case 'f': return p_literal(p, "false", RT_JSON_T_BOOL);
    case 'n': return p_literal(p, "null", RT_JSON_T_NULL);
    default:
        if (c == '-' || is_digit(c))
            return p_number(p);
        return p_fail(p, "unexpected character");
    }
}

int rt_json_parse(rt_json_doc_t *d, const char *text, size_t len, rt_json_tok_t *tok,
                  uint32_t cap, char *err, size_t errlen)
{
    parser_t p = {text, len, 0, tok, tok ? cap : UINT32_MAX, 0, err, errlen, {0, 0, 0, 0, 0}};

    memset(d, 0, sizeof *d);
    if (err && errlen)
        err[0] = '\0';
    if (!text || len >= UINT32_MAX)
        return p_fail(&p, "document too large");
    if (p_value(&p, 0) != RT_OK)
        return RT_ERR;
    p_ws(&p);
    if (p.pos != len)
        return p_fail(&p, "trailing characters after the document");
    d->text = text;
    d->len = len;
    d->tok = tok;
    d->ntok = p.n;
    return RT_OK;
}

/* ---- reader: lookups ----------------------------------------------------------- */

static const rt_json_tok_t *tok_of(const rt_json_doc_t *d, int t)
{
    return d->tok && t >= 0 && (uint32_t)t < d->ntok ? &d->tok[t] : NULL;
}

rt_json_type_t rt_json_type(const rt_json_doc_t *d, int t)
{
    const rt_json_tok_t *k = tok_of(d, t);
    return k ? (rt_json_type_t)k->type : RT_JSON_T_NULL;
}

uint32_t rt_json_size(const rt_json_doc_t *d, int t)
{
    const rt_json_tok_t *k = tok_of(d, t);
    return k ? k->size : 0;
}

static uint32_t hex4(const char *s)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        char c = s[i];
        v = (v << 4) | (uint32_t)(c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
    }
    return v;
}

/* unescape the string token @k into @out[@cap] (NUL-terminated); *@outlen
 * gets the full length. @return RT_ERR if it does not fit. */
static int unescape(const rt_json_doc_t *d, const rt_json_tok_t *k, char *out, size_t cap,
                    size_t *outlen)
{
    const char *s = d->text + k->start, *e = d->text + k->end;
    size_t n = 0;
    char tmp[4];

    while (s < e) {
        const char *src = s;
        size_t m = 1;
        if (*s != '\\') {
            s++;
        } else {
            char c = s[1];
            s += 2;
            switch (c) {
            case 'b': tmp[0] = '\b'; break;
            case 'f': tmp[0] = '\f'; break;
            case 'n': tmp[0] = '\n'; break;
            case 'r': tmp[0] = '\r'; break;
            case 't': tmp[0] = '\t'; break;
            case 'u': {
                uint32_t cp = hex4(s);
                s += 4;
                if (cp >= 0xD800 && cp <= 0xDBFF && e - s >= 6 && s[0] == '\\' && s[1] == 'u') {
                    uint32_t lo = hex4(s + 2);
                    if (lo >= 0xDC00 && lo <= 0xDFFF) {
                        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                        s += 6;
                    }
                }
                if (cp >= 0xD800 && cp <= 0xDFFF)
                    cp = 0xFFFD; /* a lone surrogate */
                if (cp < 0x80) {
                    tmp[0] = (char)cp;
                } else if (cp < 0x800) {
                    tmp[0] = (char)(0xC0 | (cp >> 6));
                    tmp[1] = (char)(0x80 | (cp & 0x3F));
                    m = 2;
                } else if (cp < 0x10000) {
                    tmp[0] = (char)(0xE0 | (cp >> 12));
                    tmp[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
                    tmp[2] = (char)(0x80 | (cp & 0x3F));
                    m = 3;
                } else {
                    tmp[0] = (char)(0xF0 | (cp >> 18));
                    tmp[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
                    tmp[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
                    tmp[3] = (char)(0x80 | (cp & 0x3F));
                    m = 4;
                }
                break;
            }
            default: tmp[0] = c; break; /* " \ / */
            }
            src = tmp;
        }
        if (n + m < cap)
            memcpy(out + n, src, m);
        n += m;
    }
    if (outlen)
        *outlen = n;
    if (cap)
        out[n < cap ? n : cap - 1] = '\0';
    return n < cap ? RT_OK : RT_ERR;
}

bool rt_json_streq(const rt_json_doc_t *d, int t, const char *s)
{
    const rt_json_tok_t *k = tok_of(d, t);
    if (!k || k->type != RT_JSON_T_STR || !s)
        return false;
    size_t rawlen = k->end - k->start, slen = strlen(s);
    const char *raw = d->text + k->start;
    if (!memchr(raw, '\\', rawlen))
        return rawlen == slen && memcmp(raw, s, slen) == 0;
    char tmp[512]; /* escaped names are short; a longer one compares unequal */
    size_t n;
    return unescape(d, k, tmp, sizeof tmp, &n) == RT_OK && n == slen && memcmp(tmp, s, n) == 0;
}

int rt_json_get(const rt_json_doc_t *d, int obj, const char *key)
{
    const rt_json_tok_t *k = tok_of(d, obj);
    if (!k || k->type != RT_JSON_T_OBJ || !key)
        return -1;
    uint32_t i = (uint32_t)obj + 1;
    for (uint32_t m = 0; m < k->size && i + 1 < d->ntok; m++) {
        if (rt_json_streq(d, (int)i, key))
            return (int)i + 1;
        i = d->tok[i + 1].next;
    }
    return -1;
}

int rt_json_at(const rt_json_doc_t *d, int arr, uint32_t idx)
{
    const rt_json_tok_t *k = tok_of(d, arr);
    if (!k || k->type != RT_JSON_T_ARR || idx >= k->size)
        return -1;
    uint32_t i = (uint32_t)arr + 1;
    for (uint32_t m = 0; m < idx && i < d->ntok; m++)
        i = d->tok[i].next;
    return i < d->ntok ? (int)i : -1;
}

int rt_json_get_str(const rt_json_doc_t *d, int t, char *out, size_t cap)
{
    const rt_json_tok_t *k = tok_of(d, t);
    if (!k || k->type != RT_JSON_T_STR || !out || !cap)
        return RT_ERR;
    return unescape(d, k, out, cap, NULL);
}

int rt_json_get_bool(const rt_json_doc_t *d, int t, bool *out)
{
    const rt_json_tok_t *k = tok_of(d, t);
    if (!k || k->type != RT_JSON_T_BOOL)
        return RT_ERR;
    *out = d->text[k->start] == 't';
    return RT_OK;
}

int rt_json_get_dbl(const rt_json_doc_t *d, int t, double *out)
{
    const rt_json_tok_t *k = tok_of(d, t);
    char tmp[128];
    size_t n;
    if (!k || k->type != RT_JSON_T_NUM || (n = k->end - k->start) >= sizeof tmp)
        return RT_ERR;
    memcpy(tmp, d->text + k->start, n);
    tmp[n] = '\0';
    *out = strtod(tmp, NULL);
    return RT_OK;
}

int rt_json_get_i64(const rt_json_doc_t *d, int t, int64_t *out)
{
    const rt_json_tok_t *k = tok_of(d, t);
    if (!k || k->type != RT_JSON_T_NUM)
        return RT_ERR;
    const char *s = d->text + k->start, *e = d->text + k->end;
    bool neg = *s == '-';
    uint64_t v = 0, lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (s += neg; s < e; s++) {
        if (!is_digit(*s))
            return RT_ERR; /* a fraction or an exponent */
        unsigned dg = (unsigned)(*s - '0');
        if (v > (lim - dg) / 10)
            return RT_ERR;
        v = v * 10 + dg;
    }
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return RT_OK;
}

int rt_json_get_u64(const rt_json_doc_t *d, int t, uint64_t *out)
{
    const rt_json_tok_t *k = tok_of(d, t);
    if (!k || k->type != RT_JSON_T_NUM)
        return RT_ERR;
    const char *s = d->text + k->start, *e = d->text + k->end;
    uint64_t v = 0;
    for (; s < e; s++) {
        if (!is_digit(*s))
            return RT_ERR; /* a sign, a fraction or an exponent */
        unsigned dg = (unsigned)(*s - '0');
        if (v > (UINT64_MAX - dg) / 10)
            return RT_ERR;
        v = v * 10 + dg;
    }
    *out = v;
    return RT_OK;
}

static int b64_val(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

int rt_json_get_b64(const rt_json_doc_t *d, int t, void *out, size_t cap, size_t *outlen)
{
    const rt_json_tok_t *k = tok_of(d, t);
    if (!k || k->type != RT_JSON_T_STR)
        return RT_ERR;
    const char *s = d->text + k->start;
    size_t n = k->end - k->start, o = 0;
    uint8_t *dst = out;
    if (n % 4)
        return RT_ERR;
    for (size_t i = 0; i < n; i += 4) {
        int v[4], pad = 0;
        for (int q = 0; q < 4; q++) {
            char c = s[i + (size_t)q];
            if (c == '=' && i + 4 == n && q >= 2) {
                v[q] = 0;
                pad++;
            } else if (pad || (v[q] = b64_val(c)) < 0) {
                return RT_ERR; /* a bad character, or data after padding */
            }
        }
        uint32_t w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 |
                     (uint32_t)v[3];
        size_t m = 3 - (size_t)pad;
        if (o + m > cap)
            return RT_ERR;
        dst[o] = (uint8_t)(w >> 16);
        if (m > 1)
            dst[o + 1] = (uint8_t)(w >> 8);
        if (m > 2)
            dst[o + 2] = (uint8_t)w;
        o += m;
    }
    *outlen = o;
    return RT_OK;
}
