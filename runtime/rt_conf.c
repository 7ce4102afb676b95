/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * rt_conf.c: the node's INI configuration, read with libinih and checked
 * against one schema table.
 *
 * Every section type and every key a node understands is one row below:
 * its value type, default, bounds and whether it is required. Adding a
 * section ("disk NAME", "pair NAME", "agent", ...) is adding rows to the two
 * tables, nothing else. Anything the tables do not know is an error, as is a
 * bad value, a duplicate key or section, or a missing required key: garbage
 * in a config file must stop the node with one line that names the file,
 * the line, the section and the key, and says what was expected.
 *
 * Debian's libinih does not pass line numbers to the handler, so this file
 * feeds inih through its own line reader (ini_parse_stream), which counts
 * lines, rejects over-long ones (inih would split them silently) and notes
 * section headers, so that empty sections are seen too.
 *
 * Relative paths (rt_conf_path) resolve against the config file's folder,
 * so a config and its certificates can move together.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <ini.h>

#include "rt.h"

/* ---- schema ----------------------------------------------------------------- */

typedef enum {
    CT_STR,    /* any text */
    CT_NAME,   /* [A-Za-z0-9_.-]{1,63} */
    CT_PATH,   /* a file path, relative to the config file's folder */
    CT_SIZE,   /* bytes with an optional K/M/G/T suffix */
    CT_U64,    /* a whole number */
    CT_DOUBLE, /* a number, e.g. seconds */
    CT_BOOL,   /* true/false, yes/no, on/off, 1/0 */
    CT_ADDR,   /* numeric IPv4 a.b.c.d:port or [IPv6]:port */
    CT_ROLES,  /* list of agent, ps, cs, mt; rt_conf_u64 gives RT_ROLE_* bits */
    CT_ENUM,   /* one of `choices`; rt_conf_u64 gives its index */
    CT_DURATION, /* seconds, or with an s/m/h/d suffix; rt_conf_u64 gives seconds */
} conf_type_t;

typedef struct {
    const char *type; /* the first word of the section name */
    bool named;       /* [type NAME] */
    bool required;    /* must be in every file */
} sect_schema_t;

typedef struct {
    const char *section;  /* section type */
    const char *key;
    conf_type_t type;
    const char *def;      /* default as text, or NULL */
    bool required;
    const char *min, *max;/* bounds as text, parsed like the value; NULL = none */
    const char *choices;  /* CT_ENUM: "a|b|c" */
} key_schema_t;

static const sect_schema_t sect_schema[] = {
    {"node", false, true},
    {"trace", false, false},
    {"tls", false, false},
    {"listen", false, false},
    {"link", false, false},
    {"peer", true, false},
    {"console", false, false}, /* nodectl's file: [console] + [tls], no [node] needed */
    {"agent", false, false},
    {"disk", true, false},     /* [disk NAME]: one protected disk of the agent */
    {"ps", false, false},      /* process server: cache spool and forwarding */
    {"mt", false, false},      /* master target: journals */
};

static const key_schema_t key_schema[] = {
    {"node", "name", CT_NAME, NULL, true, NULL, NULL, NULL},
    {"node", "roles", CT_ROLES, NULL, true, NULL, NULL, NULL},
    {"node", "data_dir", CT_PATH, ".", false, NULL, NULL, NULL},
    {"node", "memory", CT_SIZE, "64M", false, "4M", NULL, NULL},
    {"node", "msg_slots", CT_U64, "4096", false, "64", "1000000", NULL},
    {"node", "log_level", CT_ENUM, "info", false, NULL, NULL, "err|warn|info|debug"},
    {"node", "workers", CT_U64, NULL, false, "0", "64", NULL}, /* default: CPUs - 1, >= 1 */

    {"trace", "file", CT_PATH, "trace.pb", false, NULL, NULL, NULL},
    {"trace", "max", CT_SIZE, "16M", false, "4K", NULL, NULL},
    {"trace", "keep", CT_U64, "3", false, "0", "100", NULL},

    {"tls", "ca", CT_PATH, NULL, false, NULL, NULL, NULL},
    {"tls", "cert", CT_PATH, NULL, false, NULL, NULL, NULL},
    {"tls", "key", CT_PATH, NULL, false, NULL, NULL, NULL},

    {"listen", "link", CT_ADDR, NULL, false, NULL, NULL, NULL},
    {"listen", "mgmt", CT_ADDR, NULL, false, NULL, NULL, NULL},

    {"link", "hb_interval", CT_DOUBLE, "1.0", false, "0.01", "3600", NULL},
    {"link", "hb_timeout", CT_DOUBLE, "5.0", false, "0.01", "3600", NULL},
    {"link", "backoff_min", CT_DOUBLE, "0.1", false, "0.001", "3600", NULL},
    {"link", "backoff_max", CT_DOUBLE, "1.0", false, "0.001", "3600", NULL},
    {"link", "sndq_high", CT_SIZE, "8M", false, "64K", "1G", NULL},
    {"link", "max_payload", CT_SIZE, "8M", false, "4K", "16M", NULL},

    {"peer", "address", CT_ADDR, NULL, true, NULL, NULL, NULL},

    {"console", "endpoint", CT_ADDR, NULL, true, NULL, NULL, NULL},
    {"console", "timeout", CT_DOUBLE, "10", false, "0.1", "3600", NULL},

    {"agent", "log_max", CT_SIZE, "256M", false, "64K", NULL, NULL},

    {"disk", "path", CT_PATH, NULL, true, NULL, NULL, NULL},
    {"disk", "export", CT_NAME, NULL, false, NULL, NULL, NULL},   /* default: NAME */
    {"disk", "listen", CT_ADDR, NULL, true, NULL, NULL, NULL},
    {"disk", "pair", CT_NAME, NULL, false, NULL, NULL, NULL},     /* default: NAME */
    {"disk", "group", CT_NAME, "default", false, NULL, NULL, NULL},

    {"ps", "dir", CT_PATH, NULL, false, NULL, NULL, NULL},          /* default: data_dir/ps */
    {"ps", "cache_quota", CT_SIZE, "1G", false, "64K", NULL, NULL},
    {"ps", "bandwidth", CT_SIZE, "0", false, NULL, NULL, NULL},     /* bytes/s per pair, 0: none */
    {"ps", "compress", CT_BOOL, "true", false, NULL, NULL, NULL},
    {"ps", "cache", CT_ENUM, "auto", false, NULL, NULL, "auto|spool|relay"},

    {"mt", "dir", CT_PATH, NULL, false, NULL, NULL, NULL},          /* default: data_dir/mt */
    {"mt", "retention", CT_DURATION, "24h", false, "1", NULL, NULL},
    {"mt", "checkpoint", CT_DURATION, "60s", false, "1", NULL, NULL},
};

#define NSECT (sizeof sect_schema / sizeof sect_schema[0])
#define NKEY  (sizeof key_schema / sizeof key_schema[0])

static const sect_schema_t *sect_find(const char *type, size_t len)
{
    for (size_t i = 0; i < NSECT; i++)
        if (strlen(sect_schema[i].type) == len && memcmp(sect_schema[i].type, type, len) == 0)
            return &sect_schema[i];
    return NULL;
}

static const key_schema_t *key_find(const char *type, const char *key)
{
    for (size_t i = 0; i < NKEY; i++)
        if (strcmp(key_schema[i].section, type) == 0 && strcmp(key_schema[i].key, key) == 0)
            return &key_schema[i];
    return NULL;
}

/* ---- value parsers ---------------------------------------------------------- */

int rt_parse_size(const char *s, uint64_t *out)
{
    if (!s || *s < '0' || *s > '9')
        return RT_ERR;
    uint64_t v = 0;
    while (*s >= '0' && *s <= '9') {
        unsigned d = (unsigned)(*s++ - '0');
        if (v > (UINT64_MAX - d) / 10)
            return RT_ERR;
        v = v * 10 + d;
    }
    unsigned shift = 0;
    switch (*s) {
    case 'K': case 'k': shift = 10; s++; break;
    case 'M': case 'm': shift = 20; s++; break;
    case 'G': case 'g': shift = 30; s++; break;
    case 'T': case 't': shift = 40; s++; break;
    default: break;
    }
    if (*s || (shift && v > (UINT64_MAX >> shift)))
        return RT_ERR;
    *out = v << shift;
    return RT_OK;
}

static int parse_port(const char *s, uint16_t *port)
{
    if (!*s)
        return RT_ERR;
    unsigned long v = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return RT_ERR;
        v = v * 10 + (unsigned long)(*s - '0');
        if (v > 65535)
            return RT_ERR;
    }
    *port = (uint16_t)v;
    return RT_OK;
}

int rt_parse_addr(const char *s, struct sockaddr_storage *out, unsigned *addrlen)
{
    char host[64];
    const char *port_s;
    uint16_t port;
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    if (!s)
        return RT_ERR;
    if (s[0] == '[') {
        const char *end = strchr(s, ']');
        if (!end || end[1] != ':' || (size_t)(end - s - 1) >= sizeof host)
            return RT_ERR;
        memcpy(host, s + 1, (size_t)(end - s - 1));
        host[end - s - 1] = '\0';
        port_s = end + 2;
        struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
        if (parse_port(port_s, &port) != RT_OK || inet_pton(AF_INET6, host, &a6->sin6_addr) != 1)
            return RT_ERR;
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons(port);
        if (addrlen)
            *addrlen = sizeof *a6;
    } else {
        const char *colon = strrchr(s, ':');
        if (!colon || (size_t)(colon - s) >= sizeof host)
            return RT_ERR;
        memcpy(host, s, (size_t)(colon - s));
        host[colon - s] = '\0';
        struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
        if (parse_port(colon + 1, &port) != RT_OK || inet_pton(AF_INET, host, &a4->sin_addr) != 1)
            return RT_ERR;
        a4->sin_family = AF_INET;
        a4->sin_port = htons(port);
        if (addrlen)
            *addrlen = sizeof *a4;
    }
    if (out)
        *out = ss;
    return RT_OK;
}

static int parse_u64(const char *s, uint64_t *out)
{
    if (!*s)
        return RT_ERR;
    uint64_t v = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return RT_ERR;
        unsigned d = (unsigned)(*s - '0');
        if (v > (UINT64_MAX - d) / 10)
            return RT_ERR;
        v = v * 10 + d;
    }
    *out = v;
    return RT_OK;
}

/* "90", "90s", "15m", "24h", "7d" -> seconds */
static int parse_duration(const char *s, uint64_t *out)
{
    static const struct { char c; uint64_t mul; } units[] = {
        {'s', 1}, {'m', 60}, {'h', 3600}, {'d', 86400}};
    size_t n = strlen(s);
    uint64_t mul = 1, v;
    char num[32];
    if (n == 0 || n >= sizeof num)
        return RT_ERR;
    memcpy(num, s, n + 1);
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (num[n - 1] == units[i].c) {
            mul = units[i].mul;
            num[--n] = '\0';
            break;
        }
    if (parse_u64(num, &v) != RT_OK || v > UINT64_MAX / mul)
        return RT_ERR;
    *out = v * mul;
    return RT_OK;
}

static int parse_double(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (!*s || *end || errno || !isfinite(v))
        return RT_ERR;
    *out = v;
    return RT_OK;
}

static int parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};
    for (size_t i = 0; i < 4; i++) {
        if (strcmp(s, yes[i]) == 0) {
            *out = true;
            return RT_OK;
        }
        if (strcmp(s, no[i]) == 0) {
            *out = false;
            return RT_OK;
        }
    }
    return RT_ERR;
}

static bool name_ok(const char *s, size_t len)
{
    if (len == 0 || len >= RT_NAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '_' || ch == '.' || ch == '-'))
            return false;
    }
    return true;
}

static int parse_roles(const char *s, uint64_t *out)
{
    static const char *const roles[] = {"agent", "ps", "cs", "mt"};
    uint64_t mask = 0;
    while (*s) {
        size_t n = strcspn(s, ", \t");
        if (n) {
            size_t i;
            for (i = 0; i < 4; i++)
                if (strlen(roles[i]) == n && memcmp(roles[i], s, n) == 0)
                    break;
            if (i == 4)
                return RT_ERR;
            mask |= 1u << i; /* RT_ROLE_* follow this order */
            s += n;
        }
        s += strspn(s, ", \t");
    }
    if (!mask)
        return RT_ERR;
    *out = mask;
    return RT_OK;
}

static int parse_enum(const char *s, const char *choices, uint64_t *out)
{
    size_t len = strlen(s);
    uint64_t i = 0;
    for (const char *p = choices; *p; i++) {
        size_t n = strcspn(p, "|");
        if (n == len && memcmp(p, s, n) == 0 && len) {
            *out = i;
            return RT_OK;
        }
        p += n;
        if (*p == '|')
            p++;
    }
    return RT_ERR;
}

/* a parsed value */
typedef struct {
    uint64_t u;
    double d;
} conf_val_t;

/* check @s against @k (type and bounds); @return RT_ERR if bad */
static int value_parse(const key_schema_t *k, const char *s, conf_val_t *v)
{
    v->u = 0;
    v->d = 0;
    uint64_t lo, hi;
    double dlo, dhi;
    bool b;
    switch (k->type) {
    case CT_STR:
        return RT_OK;
    case CT_NAME:
        return name_ok(s, strlen(s)) ? RT_OK : RT_ERR;
    case CT_PATH:
        return *s && strlen(s) < 4000 ? RT_OK : RT_ERR;
    case CT_SIZE:
    case CT_U64:
        if ((k->type == CT_SIZE ? rt_parse_size(s, &v->u) : parse_u64(s, &v->u)) != RT_OK)
            return RT_ERR;
        if (k->min && rt_parse_size(k->min, &lo) == RT_OK && v->u < lo)
            return RT_ERR;
        if (k->max && rt_parse_size(k->max, &hi) == RT_OK && v->u > hi)
            return RT_ERR;
        v->d = (double)v->u;
        return RT_OK;
    case CT_DOUBLE:
        if (parse_double(s, &v->d) != RT_OK)
            return RT_ERR;
        if (k->min && parse_double(k->min, &dlo) == RT_OK && v->d < dlo)
            return RT_ERR;
        if (k->max && parse_double(k->max, &dhi) == RT_OK && v->d > dhi)
            return RT_ERR;
        return RT_OK;
    case CT_BOOL:
        if (parse_bool(s, &b) != RT_OK)
            return RT_ERR;
        v->u = b;
        return RT_OK;
    case CT_ADDR:
        return rt_parse_addr(s, NULL, NULL);
    case CT_ROLES:
        return parse_roles(s, &v->u);
    case CT_ENUM:
        return parse_enum(s, k->choices ? k->choices : "", &v->u);
    case CT_DURATION:
        if (parse_duration(s, &v->u) != RT_OK)
            return RT_ERR;
        if (k->min && parse_duration(k->min, &lo) == RT_OK && v->u < lo)
            return RT_ERR;
        if (k->max && parse_duration(k->max, &hi) == RT_OK && v->u > hi)
            return RT_ERR;
        v->d = (double)v->u;
        return RT_OK;
    }
    return RT_ERR;
}

/* what a value of @k should look like, for error lines */
static void value_expect(const key_schema_t *k, char *out, size_t len)
{
    const char *what = "";
    switch (k->type) {
    case CT_STR: what = "text"; break;
    case CT_NAME: what = "a name of 1 to 63 characters from A-Z a-z 0-9 _ . -"; break;
    case CT_PATH: what = "a file path"; break;
    case CT_SIZE: what = "a size like 4096, 64K, 16M or 1G"; break;
    case CT_U64: what = "a whole number"; break;
    case CT_DOUBLE: what = "a number"; break;
    case CT_BOOL: what = "true or false"; break;
    case CT_ADDR: what = "a numeric address like 127.0.0.1:7400 or [::1]:7400"; break;
    case CT_ROLES: what = "a list of agent, ps, cs, mt"; break;
    case CT_ENUM: what = "one of "; break;
    case CT_DURATION: what = "seconds, or a duration like 90s, 15m, 24h or 7d"; break;
    }
    if (k->type == CT_ENUM)
        snprintf(out, len, "%s%s", what, k->choices ? k->choices : "");
    else if (k->min && k->max)
        snprintf(out, len, "%s, from %s to %s", what, k->min, k->max);
    else if (k->min)
        snprintf(out, len, "%s, at least %s", what, k->min);
    else if (k->max)
        snprintf(out, len, "%s, at most %s", what, k->max);
    else
        snprintf(out, len, "%s", what);
}

/* ---- the loaded file -------------------------------------------------------- */

typedef struct {
    char *name;                /* canonical full name: "node", "peer secondary" */
    char *arg;                 /* the NAME part ("" if none) */
    const sect_schema_t *schema;
    unsigned line;
} conf_sect_t;

typedef struct {
    size_t sect;               /* index in sects */
    const key_schema_t *key;
    char *value;
    conf_val_t v;
    unsigned line;
} conf_ent_t;

struct rt_conf {
    char *file, *dir;
    conf_sect_t *sects;
    size_t nsects, capsects;
    conf_ent_t *ents;
    size_t nents, capents;
};

/* the reader's and handler's state while loading */
typedef struct {
    rt_conf_t *c;
    FILE *f;
    char *raw;                 /* the current line as read */
    size_t rawcap;
    unsigned lineno;
    long cur;                  /* current section index, -1 before any */
    const char *prev_key;      /* last key of the current section (continuations) */
    bool failed;
    unsigned err_line;
    char *err;
    size_t errlen;
} load_t;

__attribute__((format(printf, 3, 4))) static void load_fail(load_t *st, unsigned line,
                                                            const char *fmt, ...)
{
    if (st->failed)
        return; /* the first error is the one to fix */
    st->failed = true;
    st->err_line = line;
    int n = snprintf(st->err, st->errlen, "%s:%u: ", st->c->file, line);
    if (n < 0 || (size_t)n >= st->errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(st->err + n, st->errlen - (size_t)n, fmt, ap);
    va_end(ap);
}

static const char *sect_label(const load_t *st)
{
    return st->cur >= 0 ? st->c->sects[st->cur].name : "";
}

static bool is_space(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n' || ch == '\f' || ch == '\v';
}

static void section_begin(load_t *st, const char *raw, size_t len)
{
    rt_conf_t *c = st->c;
    while (len && is_space(*raw))
        raw++, len--;
    while (len && is_space(raw[len - 1]))
        len--;
    size_t tlen = 0;
    while (tlen < len && !is_space(raw[tlen]))
        tlen++;
    const char *arg = raw + tlen;
    size_t alen = len - tlen;
    while (alen && is_space(*arg))
        arg++, alen--;
    st->cur = -1;
    st->prev_key = NULL;

    const sect_schema_t *s = sect_find(raw, tlen);
    if (!s) {
        char known[256] = "";
        size_t off = 0;
        for (size_t i = 0; i < NSECT && off < sizeof known; i++) {
            int n = snprintf(known + off, sizeof known - off, "%s%s%s", i ? ", " : "",
                             sect_schema[i].type, sect_schema[i].named ? " NAME" : "");
            off += n > 0 ? (size_t)n : 0;
        }
        load_fail(st, st->lineno, "[%.*s]: unknown section (expected one of %s)", (int)len, raw,
                  known);
        return;
    }
    if (s->named && !name_ok(arg, alen)) {
        load_fail(st, st->lineno,
                  "[%.*s]: bad section name (expected [%s NAME], NAME of 1 to 63 characters from "
                  "A-Z a-z 0-9 _ . -)",
                  (int)len, raw, s->type);
        return;
    }
    if (!s->named && alen) {
        load_fail(st, st->lineno, "[%.*s]: unexpected name (expected [%s])", (int)len, raw,
                  s->type);
        return;
    }
    char *name = malloc(tlen + alen + 2);
    if (!name) {
        load_fail(st, st->lineno, "[%.*s]: out of memory", (int)len, raw);
        return;
    }
    memcpy(name, raw, tlen);
    if (alen) {
        name[tlen] = ' ';
        memcpy(name + tlen + 1, arg, alen);
        name[tlen + 1 + alen] = '\0';
    } else {
        name[tlen] = '\0';
    }
    for (size_t i = 0; i < c->nsects; i++) {
        if (strcmp(c->sects[i].name, name) == 0) {
            load_fail(st, st->lineno, "[%s]: duplicate section (first on line %u)", name,
                      c->sects[i].line);
            free(name);
            return;
        }
    }
    if (c->nsects == c->capsects) {
        size_t ncap = c->capsects ? c->capsects * 2 : 8;
        conf_sect_t *n = realloc(c->sects, ncap * sizeof *n);
        if (!n) {
            load_fail(st, st->lineno, "[%s]: out of memory", name);
            free(name);
            return;
        }
        c->sects = n;
        c->capsects = ncap;
    }
    conf_sect_t *cs = &c->sects[c->nsects];
    cs->name = name;
    cs->arg = alen ? name + tlen + 1 : name + tlen;
    cs->schema = s;
    cs->line = st->lineno;
    st->cur = (long)c->nsects++;
}

/* inih's line source: counts lines and notes section headers */
static char *conf_reader(char *str, int num, void *stream)
{
    load_t *st = stream;
    if (st->failed)
        return NULL; /* stop at the first error */
    ssize_t n = getline(&st->raw, &st->rawcap, st->f);
    if (n < 0)
        return NULL;
    st->lineno++;
    if ((size_t)n + 1 > (size_t)num) {
        load_fail(st, st->lineno, "[%s]: line too long (expected at most %d characters)",
                  sect_label(st), num - 2);
        return NULL;
    }
    memcpy(str, st->raw, (size_t)n + 1);

    const char *p = st->raw;
    if (st->lineno == 1 && memcmp(p, "\xEF\xBB\xBF", 3) == 0)
        p += 3;
    while (is_space(*p))
        p++;
    if (*p == '[') {
        const char *end = strchr(p, ']');
        if (end)
            section_begin(st, p + 1, (size_t)(end - p - 1));
        else
            load_fail(st, st->lineno, "[%s]: bad section line (expected [SECTION])",
                      sect_label(st));
    } else if (*p && *p != ';' && *p != '#') {
        /* a key line needs '=' or ':' before any inline comment */
        const char *q = p;
        while (*q && *q != '=' && *q != ':' && !(*q == ';' && is_space(q[-1])))
            q++;
        if (*q != '=' && *q != ':')
            load_fail(st, st->lineno, "[%s]: bad line (expected KEY = VALUE)", sect_label(st));
    }
    return str;
}

static int conf_handler(void *user, const char *section, const char *key, const char *value)
{
    load_t *st = user;
    rt_conf_t *c = st->c;
    (void)section; /* the reader tracks it, with its line */
    if (st->failed)
        return 0;
    if (st->cur < 0) {
        load_fail(st, st->lineno, "[] %s: key outside any section (expected a [SECTION] line first)",
                  key);
        return 0;
    }
    conf_sect_t *cs = &c->sects[st->cur];
    if (st->prev_key && strcmp(st->prev_key, key) == 0 && is_space(st->raw[0])) {
        load_fail(st, st->lineno,
                  "[%s] %s: indented line read as a continuation of %s (expected KEY = VALUE at "
                  "the start of the line)",
                  cs->name, key, key);
        return 0;
    }
    const key_schema_t *k = key_find(cs->schema->type, key);
    if (!k) {
        char known[256] = "";
        size_t off = 0;
        for (size_t i = 0; i < NKEY && off < sizeof known; i++) {
            if (strcmp(key_schema[i].section, cs->schema->type) != 0)
                continue;
            int n = snprintf(known + off, sizeof known - off, "%s%s", off ? ", " : "",
                             key_schema[i].key);
            off += n > 0 ? (size_t)n : 0;
        }
        load_fail(st, st->lineno, "[%s] %s: unknown key (expected one of %s)", cs->name, key,
                  known);
        return 0;
    }
    for (size_t i = 0; i < c->nents; i++) {
        if (c->ents[i].sect == (size_t)st->cur && c->ents[i].key == k) {
            load_fail(st, st->lineno, "[%s] %s: duplicate key (first set on line %u)", cs->name,
                      key, c->ents[i].line);
            return 0;
        }
    }
    st->prev_key = k->key;
    conf_val_t v;
    if (value_parse(k, value, &v) != RT_OK) {
        char expect[160];
        value_expect(k, expect, sizeof expect);
        load_fail(st, st->lineno, "[%s] %s: bad value \"%s\" (expected %s)", cs->name, key, value,
                  expect);
        return 0;
    }
    if (c->nents == c->capents) {
        size_t ncap = c->capents ? c->capents * 2 : 16;
        conf_ent_t *n = realloc(c->ents, ncap * sizeof *n);
        if (!n)
            goto oom;
        c->ents = n;
        c->capents = ncap;
    }
    conf_ent_t *e = &c->ents[c->nents];
    e->value = strdup(value);
    if (!e->value)
        goto oom;
    e->sect = (size_t)st->cur;
    e->key = k;
    e->v = v;
    e->line = st->lineno;
    c->nents++;
    return 1;
oom:
    load_fail(st, st->lineno, "[%s] %s: out of memory", cs->name, key);
    return 0;
}

static const conf_ent_t *ent_find(const rt_conf_t *c, size_t sect, const key_schema_t *k)
{
    for (size_t i = 0; i < c->nents; i++)
        if (c->ents[i].sect == sect && c->ents[i].key == k)
            return &c->ents[i];
    return NULL;
}

/* required sections and keys, after the whole file was read */
static void check_required(load_t *st)
{
    rt_conf_t *c = st->c;
    char expect[160];
    bool console = false; /* a console file (nodectl) needs no [node] */
    for (size_t i = 0; i < c->nsects; i++)
        console |= strcmp(c->sects[i].schema->type, "console") == 0;
    for (size_t s = 0; s < NSECT && !st->failed; s++) {
        if (!sect_schema[s].required || console)
            continue;
        bool found = false;
        for (size_t i = 0; i < c->nsects; i++)
            found |= c->sects[i].schema == &sect_schema[s];
        for (size_t k = 0; k < NKEY && !found; k++) {
            if (strcmp(key_schema[k].section, sect_schema[s].type) != 0 ||
                !key_schema[k].required)
                continue;
            value_expect(&key_schema[k], expect, sizeof expect);
            load_fail(st, st->lineno ? st->lineno : 1,
                      "[%s] %s: missing required key, and its section (expected %s)",
                      sect_schema[s].type, key_schema[k].key, expect);
            return;
        }
    }
    for (size_t i = 0; i < c->nsects && !st->failed; i++) {
        for (size_t k = 0; k < NKEY; k++) {
            const key_schema_t *ks = &key_schema[k];
            if (!ks->required || strcmp(ks->section, c->sects[i].schema->type) != 0 ||
                ent_find(c, i, ks))
                continue;
            value_expect(ks, expect, sizeof expect);
            load_fail(st, c->sects[i].line, "[%s] %s: missing required key (expected %s)",
                      c->sects[i].name, ks->key, expect);
            return;
        }
    }
}

rt_conf_t *rt_conf_load(const char *path, char *err, size_t errlen)
{
    char dummy[8];
    if (!err || !errlen) {
        err = dummy;
        errlen = sizeof dummy;
    }
    err[0] = '\0';
    load_t st = {.cur = -1, .err = err, .errlen = errlen};
    rt_conf_t *c = calloc(1, sizeof *c);
    if (!c || !(c->file = strdup(path))) {
        snprintf(err, errlen, "%s: out of memory", path);
        goto fail;
    }
    const char *slash = strrchr(path, '/');
    c->dir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");
    if (!c->dir) {
        snprintf(err, errlen, "%s: out of memory", path);
        goto fail;
    }
    st.c = c;
    st.f = fopen(path, "re");
    if (!st.f) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        goto fail;
    }
    int rc = ini_parse_stream(conf_reader, &st, conf_handler, &st);
    if (rc == -2) {
        snprintf(err, errlen, "%s: out of memory", path);
        goto fail;
    }
    if (rc > 0 && (!st.failed || (unsigned)rc < st.err_line)) {
        /* inih saw a line it could not read that our own scan let through */
        st.failed = false;
        load_fail(&st, (unsigned)rc, "bad line (expected [SECTION] or KEY = VALUE)");
    }
    if (!st.failed)
        check_required(&st);
    if (st.failed)
        goto fail;
    fclose(st.f);
    free(st.raw);
    return c;
fail:
    if (st.f)
        fclose(st.f);
    free(st.raw);
    rt_conf_free(c);
    return NULL;
}

void rt_conf_free(rt_conf_t *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->nsects; i++)
        free(c->sects[i].name);
    for (size_t i = 0; i < c->nents; i++)
        free(c->ents[i].value);
    free(c->sects);
    free(c->ents);
    free(c->file);
    free(c->dir);
    free(c);
}

/* ---- lookups ---------------------------------------------------------------- */

/* the schema row and the entry (NULL when absent) of section/key */
static const key_schema_t *lookup(const rt_conf_t *c, const char *section, const char *key,
                                  const conf_ent_t **ent)
{
    *ent = NULL;
    size_t tlen = strcspn(section, " ");
    const key_schema_t *k = NULL;
    for (size_t i = 0; i < NKEY && !k; i++)
        if (strlen(key_schema[i].section) == tlen &&
            memcmp(key_schema[i].section, section, tlen) == 0 &&
            strcmp(key_schema[i].key, key) == 0)
            k = &key_schema[i];
    if (!k) {
        rt_log(RT_LOG_ERR, "config: [%s] %s is not in the schema (bug)", section, key);
        return NULL;
    }
    if (!c)
        return k;
    for (size_t i = 0; i < c->nsects; i++)
        if (strcmp(c->sects[i].name, section) == 0) {
            *ent = ent_find(c, i, k);
            break;
        }
    return k;
}

static conf_val_t lookup_val(const rt_conf_t *c, const char *section, const char *key)
{
    const conf_ent_t *e;
    const key_schema_t *k = lookup(c, section, key, &e);
    conf_val_t v = {0, 0};
    if (e)
        return e->v;
    if (k && k->def && value_parse(k, k->def, &v) != RT_OK)
        v.u = 0, v.d = 0;
    return v;
}

const char *rt_conf_str(const rt_conf_t *c, const char *section, const char *key)
{
    const conf_ent_t *e;
    const key_schema_t *k = lookup(c, section, key, &e);
    return e ? e->value : k ? k->def : NULL;
}

uint64_t rt_conf_u64(const rt_conf_t *c, const char *section, const char *key)
{
    return lookup_val(c, section, key).u;
}

double rt_conf_double(const rt_conf_t *c, const char *section, const char *key)
{
    return lookup_val(c, section, key).d;
}

bool rt_conf_bool(const rt_conf_t *c, const char *section, const char *key)
{
    return lookup_val(c, section, key).u != 0;
}

const char *rt_conf_path(const rt_conf_t *c, const char *section, const char *key, char *out,
                         size_t outlen)
{
    const char *v = rt_conf_str(c, section, key);
    if (!v || !*v || !out || !outlen)
        return NULL;
    int n;
    if (v[0] == '/' || !c)
        n = snprintf(out, outlen, "%s", v);
    else
        n = snprintf(out, outlen, "%s/%s", c->dir, v);
    return n >= 0 && (size_t)n < outlen ? out : NULL;
}

void rt_conf_each(const rt_conf_t *c, const char *type,
                  void (*fn)(void *arg, const char *section, const char *name), void *arg)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->nsects; i++)
        if (strcmp(c->sects[i].schema->type, type) == 0)
            fn(arg, c->sects[i].name, c->sects[i].arg);
}

const char *rt_conf_file(const rt_conf_t *c)
{
    return c ? c->file : NULL;
}

const char *rt_conf_role_dir(const rt_conf_t *c, const char *role, char *out, size_t outlen)
{
    char data[4096];
    if (rt_conf_path(c, role, "dir", out, outlen))
        return out;
    if (!rt_conf_path(c, "node", "data_dir", data, sizeof data))
        return NULL;
    int n = snprintf(out, outlen, "%s/%s", data, role);
    return n < 0 || (size_t)n >= outlen ? NULL : out;
}
