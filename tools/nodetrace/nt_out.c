/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * nt_out.c: nodetrace's line outputs: the terminal timeline and JSON lines.
 *
 * The timeline has one line per transition, single-space separated so that
 * tests and awk can pick fields:
 *   TIME NODE ACTOR MACHINE FROM -> TO EVENT DETAIL
 *   TIME NODE ACTOR MACHINE FROM -x EVENT (refused) DETAIL
 * An empty name prints as "-". On a terminal the machine part is coloured
 * (one colour per machine, stable across runs) and refusals are red.
 */
#include <string.h>

#include "nodetrace.h"

#define C_RESET "\033[0m"
#define C_DIM   "\033[2m"
#define C_RED   "\033[1;31m"

static const char *const machine_colour[] = {
    "\033[36m", "\033[32m", "\033[33m", "\033[35m", "\033[34m", "\033[96m", "\033[92m", "\033[93m",
};

static const char *colour_of(const char *machine)
{
    uint32_t h = 5381;
    for (const char *p = machine; *p; p++)
        h = h * 33u + (uint8_t)*p;
    return machine_colour[h % (sizeof machine_colour / sizeof machine_colour[0])];
}

/* @str for one line of a terminal: "-" when empty, control characters
 * (newlines, escape sequences from a damaged file) shown as \xHH */
static void put_clean(FILE *out, const char *str)
{
    const unsigned char *q = (const unsigned char *)str;
    if (!*str) {
        putc('-', out);
        return;
    }
    while (*q >= 0x20 && *q != 0x7f)
        q++;
    if (!*q) { /* the usual case: nothing to escape */
        fputs(str, out);
        return;
    }
    for (const unsigned char *p = (const unsigned char *)str; *p; p++) {
        if (*p < 0x20 || *p == 0x7f)
            fprintf(out, "\\x%02x", *p);
        else
            putc(*p, out);
    }
}

void nt_print_line(FILE *out, const nt_set_t *s, const nt_rec_t *r, bool color)
{
    char t[40];
    const char *machine = nt_str(s, r->machine), *detail = nt_str(s, r->detail);
    const char *col = color ? colour_of(machine) : "", *rst = color ? C_RESET : "";
    nt_format_time(r->time_us, t, sizeof t);
    fprintf(out, "%s%s%s ", color ? C_DIM : "", t, rst);
    put_clean(out, nt_str(s, r->node));
    putc(' ', out);
    put_clean(out, nt_str(s, r->actor));
    fputs(" ", out);
    fputs(col, out);
    put_clean(out, machine);
    fprintf(out, "%s %s", rst, r->refused ? (color ? C_RED : "") : col);
    put_clean(out, nt_str(s, r->from));
    if (r->refused) {
        fputs(" -x ", out);
        put_clean(out, nt_str(s, r->event));
        fputs(" (refused)", out);
    } else {
        fputs(" -> ", out);
        put_clean(out, nt_str(s, r->to));
        putc(' ', out);
        put_clean(out, nt_str(s, r->event));
    }
    fputs(rst, out);
    if (*detail) {
        putc(' ', out);
        put_clean(out, detail);
    }
    putc('\n', out);
}

/* bytes of the valid UTF-8 sequence at @p, or 0 if it is not one */
static size_t utf8_len(const unsigned char *p)
{
    size_t n;
    uint32_t cp;
    if (p[0] >= 0xc2 && p[0] <= 0xdf) {
        n = 2;
        cp = p[0] & 0x1fu;
    } else if (p[0] >= 0xe0 && p[0] <= 0xef) {
        n = 3;
        cp = p[0] & 0x0fu;
    } else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
        n = 4;
        cp = p[0] & 0x07u;
    } else {
        return 0;
    }
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80) /* also stops at the NUL */
            return 0;
        cp = (cp << 6) | (p[i] & 0x3fu);
    }
    if ((n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
        (n == 4 && (cp < 0x10000 || cp > 0x10ffff)))
        return 0;
    return n;
}

static void json_str(FILE *out, const char *str, bool html)
{
    static const char hex[] = "0123456789abcdef";
    putc('"', out);
    for (const unsigned char *p = (const unsigned char *)str; *p; p++) {
        switch (*p) {
        case '"': fputs("\\\"", out); break;
        case '\\': fputs("\\\\", out); break;
        case '\n': fputs("\\n", out); break;
        case '\r': fputs("\\r", out); break;
        case '\t': fputs("\\t", out); break;
        case '\b': fputs("\\b", out); break;
        case '\f': fputs("\\f", out); break;
        case '<': fputs(html ? "\\u003c" : "<", out); break;
        case '>': fputs(html ? "\\u003e" : ">", out); break;
        case '&': fputs(html ? "\\u0026" : "&", out); break;
        default:
            if (*p < 0x20 || *p == 0x7f) {
                fputs("\\u00", out);
                putc(hex[*p >> 4], out);
                putc(hex[*p & 15], out);
            } else if (*p < 0x80) {
                putc(*p, out);
            } else {
                size_t n = utf8_len(p);
                if (n == 0) {
                    fputs("\\ufffd", out); /* a cut or invalid sequence */
                } else {
                    fwrite(p, 1, n, out);
                    p += n - 1;
                }
            }
        }
    }
    putc('"', out);
}

void nt_json_str(FILE *out, const char *str)
{
    json_str(out, str, false);
}

void nt_json_str_html(FILE *out, const char *str)
{
    json_str(out, str, true);
}

void nt_print_json(FILE *out, const nt_set_t *s, const nt_rec_t *r)
{
    char t[40];
    nt_format_time(r->time_us, t, sizeof t);
    fprintf(out, "{\"time_us\":%llu,\"time\":\"%s\",\"node\":", (unsigned long long)r->time_us, t);
    nt_json_str(out, nt_str(s, r->node));
    fputs(",\"actor\":", out);
    nt_json_str(out, nt_str(s, r->actor));
    fputs(",\"machine\":", out);
    nt_json_str(out, nt_str(s, r->machine));
    fputs(",\"from\":", out);
    nt_json_str(out, nt_str(s, r->from));
    fputs(",\"event\":", out);
    nt_json_str(out, nt_str(s, r->event));
    fputs(",\"to\":", out);
    nt_json_str(out, nt_str(s, r->to));
    fputs(",\"detail\":", out);
    nt_json_str(out, nt_str(s, r->detail));
    fprintf(out, ",\"refused\":%s,\"peer\":", r->refused ? "true" : "false");
    nt_json_str(out, nt_str(s, r->peer));
    fputs(",\"pair\":", out);
    nt_json_str(out, nt_str(s, r->pair));
    fprintf(out, ",\"clock_offset_us\":%lld,\"seq\":%llu}\n", (long long)r->clock_offset_us,
            (unsigned long long)r->seq);
}

void nt_print_offsets(FILE *out, const nt_set_t *s)
{
    nt_offset_t off[64];
    size_t n = nt_set_offsets(s, off, 64);
    for (size_t i = 0; i < n; i++)
        fprintf(out, "# node %s: clock offset to %s %+lld us\n", nt_str(s, off[i].node),
                nt_str(s, off[i].peer), (long long)off[i].offset_us);
}
