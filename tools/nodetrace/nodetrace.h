/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * nodetrace.h: the state trace viewer's internals, shared by its files and
 * by its tests (tests/tools/test_nodetrace.c, tests/fuzz/fuzz_trace_reader.c
 * include the .c files directly, because the Makefile links tools only into
 * their own binary).
 *
 * A trace file is a sequence of records, each a varint length followed by an
 * encoded ss_TraceEvent (proto/trace.proto). nodetrace reads the files of one
 * or more nodes into one set (nt_set_t: records with interned strings, so a
 * million transitions fit in well under 100 MiB), merges them by time, filters
 * them, and prints them as a terminal timeline, JSON lines, or one
 * self-contained HTML page. Reading never trusts the file: a damaged record
 * stops that file with a message that says at which byte and why, and what
 * was read before it stays usable.
 *
 * Files: nt_read.c (decoder, files, rotation), nt_set.c (records, strings,
 * merge, clock offsets), nt_filter.c (filters, time parsing), nt_out.c
 * (terminal and JSON lines), nt_html.c (the page), nodetrace.c (command line,
 * --follow), gen/nodetrace/assets.c (the page template, from
 * tools/nodetrace/assets/ at build time).
 */
#ifndef NODETRACE_H
#define NODETRACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "rt.h"
#include "trace.pb.h"

#define NT_REC_MAX   4096u  /* largest record length accepted (ss_TraceEvent_size is far below) */
#define NT_NO_STR    0u     /* string id of "" */

/* ---- the record set (nt_set.c) -------------------------------------------- */

/* One transition, strings as ids into the set's string table. */
typedef struct nt_rec {
    uint64_t time_us;        /* as recorded (or shifted by --adjust-clock) */
    uint64_t seq;            /* per-node record number */
    int64_t clock_offset_us; /* peer clock minus ours, with peer */
    uint32_t node, actor, machine, from, event, to, detail, peer, pair; /* string ids */
    uint32_t order;          /* arrival order in the set: keeps the merge stable */
    bool refused;            /* the state did not accept the event */
} nt_rec_t;

/* Interned strings: one arena, one open-addressing hash table. */
typedef struct nt_strtab {
    char *arena;             /* NUL-terminated strings back to back */
    size_t arena_len, arena_cap;
    uint32_t *off;           /* id -> offset in arena */
    uint32_t n, cap;         /* ids in use, capacity of off[] */
    uint32_t *hash;          /* slots holding id + 1, 0 = empty */
    uint32_t hash_cap;       /* power of two */
} nt_strtab_t;

typedef struct nt_set {
    nt_rec_t *rec;           /* records, in arrival order until nt_set_sort() */
    size_t n, cap;
    nt_strtab_t str;
} nt_set_t;

/*! nt_set_init() : an empty set (string id 0 is ""). @return RT_ERR on ENOMEM. */
int nt_set_init(nt_set_t *s);
void nt_set_free(nt_set_t *s);
/*! nt_str_intern() : the id of @str (its first @len bytes). @return UINT32_MAX on ENOMEM. */
uint32_t nt_str_intern(nt_strtab_t *t, const char *str, size_t len);
/*! nt_str() : the string of @id ("" for an unknown id). */
const char *nt_str(const nt_set_t *s, uint32_t id);
/*! nt_str_find() : the id of @str if interned. @return UINT32_MAX if absent. */
uint32_t nt_str_find(const nt_set_t *s, const char *str);
/*! nt_set_add() : append a decoded event. @return RT_ERR on ENOMEM. */
int nt_set_add(nt_set_t *s, const ss_TraceEvent *ev);
/*! nt_set_sort() : merge by time; ties by node name, then seq, then arrival. */
void nt_set_sort(nt_set_t *s);

/* A node's last measured clock offset to a peer. */
typedef struct nt_offset {
    uint32_t node, peer;     /* string ids */
    int64_t offset_us;       /* peer clock minus node clock */
} nt_offset_t;

/*! nt_set_offsets() : the last nonzero offset (or 0 if none was nonzero)
 *  per (node, peer) pair seen in records that name a peer, sorted by node
 *  then peer names. @return the count (<= @max) written to @out. */
size_t nt_set_offsets(const nt_set_t *s, nt_offset_t *out, size_t max);
/*! nt_set_adjust_clock() : shift every node's times into the clock of the
 *  node of the first record (by time), following measured offsets from node
 *  to node; nodes with no path keep their times. Re-sorts. @return the number
 *  of nodes shifted. */
size_t nt_set_adjust_clock(nt_set_t *s);

/* ---- reading (nt_read.c) ---------------------------------------------------- */

/*! nt_decode_next() : decode one record at @p (@n bytes available).
 *  @return RT_OK with *@used bytes consumed and @ev filled; RT_AGAIN when the
 *  bytes end inside the record (truncated, or not yet written); RT_ERR when the
 *  record is corrupt, with a reason in @why. Never reads past @p + @n. */
int nt_decode_next(const uint8_t *p, size_t n, size_t *used, ss_TraceEvent *ev, char *why,
                   size_t whylen);

/* Where and why reading a buffer or file stopped before its end. */
typedef struct nt_stop {
    bool stopped;            /* false: every byte was read */
    uint64_t at;             /* byte offset of the record that could not be read */
    uint64_t records;        /* records read before it */
    char why[128];           /* "truncated record", "corrupt record: ..." */
} nt_stop_t;

/*! nt_load_buf() : decode every record of @p into @s, stopping at the first
 *  damaged one. @return RT_OK (see @stop for a stop), RT_ERR on ENOMEM. */
int nt_load_buf(nt_set_t *s, const uint8_t *p, size_t n, nt_stop_t *stop);
/*! nt_load_file() : read @path whole into @s. @return RT_OK (see @stop),
 *  RT_ERR if it cannot be opened or read (message on stderr). */
int nt_load_file(nt_set_t *s, const char *path, nt_stop_t *stop);
/*! nt_rotated() : the existing rotated siblings of @path, oldest first
 *  (PATH.N .. PATH.1), as malloc'd strings in @out (at most @max).
 *  @return the count. */
size_t nt_rotated(const char *path, char **out, size_t max);

/* A followed file: an incremental reader that survives rotation and
 * truncation. */
typedef struct nt_follow {
    const char *path;
    int fd;                  /* -1 while the file does not exist */
    uint64_t ino, dev;
    uint64_t off;            /* file offset of buf[0] */
    uint8_t *buf;            /* undecoded bytes (a partial record) */
    size_t len, cap;
    uint64_t records;
    bool broken;             /* a corrupt record was seen: stop decoding this file */
} nt_follow_t;

/*! nt_follow_open() : start following @path at byte @from (what was already
 *  read). @return RT_OK, RT_ERR on ENOMEM. */
int nt_follow_open(nt_follow_t *f, const char *path, uint64_t from);
void nt_follow_close(nt_follow_t *f);
/*! nt_follow_poll() : append every complete new record to @s, reading the
 *  rest of a rotated-away file before switching to the new one.
 *  @return records added, or -1 on ENOMEM. */
long nt_follow_poll(nt_follow_t *f, nt_set_t *s);

/* ---- filters (nt_filter.c) --------------------------------------------------- */

typedef struct nt_filter {
    const char *pair, *actor, *machine, *node; /* fnmatch patterns, or NULL */
    bool has_since, has_until;
    uint64_t since_us, until_us;               /* inclusive bounds */
} nt_filter_t;

/*! nt_filter_match() : does @r pass every filter of @f? */
bool nt_filter_match(const nt_set_t *s, const nt_rec_t *r, const nt_filter_t *f);
/*! nt_parse_time() : "2026-11-26T11:45:01.123456Z" (fraction, Z and the
 *  seconds optional, ' ' for 'T' accepted, UTC), "@SECONDS" (epoch), or
 *  relative to @now_us: "-5m", "-90s", "-2h", "-1d", "-500ms", "now".
 *  @return RT_ERR if malformed. */
int nt_parse_time(const char *s, uint64_t now_us, uint64_t *out_us);
/*! nt_format_time() : ISO-8601 UTC with microseconds into @out (>= 28 bytes). */
void nt_format_time(uint64_t us, char *out, size_t outlen);

/* ---- output (nt_out.c) ------------------------------------------------------- */

/*! nt_json_str() : append @str as a JSON string literal (quotes included);
 *  invalid UTF-8 becomes U+FFFD. */
void nt_json_str(FILE *out, const char *str);
/*! nt_json_str_html() : the same, safe inside an HTML <script> element
 *  ('<', '>' and '&' escaped too). */
void nt_json_str_html(FILE *out, const char *str);
/*! nt_print_line() : one terminal line for @r (ANSI colours if @color). */
void nt_print_line(FILE *out, const nt_set_t *s, const nt_rec_t *r, bool color);
/*! nt_print_json() : one JSON object line for @r. */
void nt_print_json(FILE *out, const nt_set_t *s, const nt_rec_t *r);
/*! nt_print_offsets() : the "# node A: clock offset to B +N us" header lines. */
void nt_print_offsets(FILE *out, const nt_set_t *s);

/* ---- HTML (nt_html.c) -------------------------------------------------------- */

typedef struct nt_html_opts {
    const char *title;       /* page title (the input files) */
    const char *filters;     /* the filters, as text for the summary, or NULL */
    const char *charts_dir;  /* folder with MACHINE.svg (ragel -V | dot), or NULL */
} nt_html_opts_t;

/*! nt_write_html() : the page for the records of @s that pass @f.
 *  @return RT_OK, RT_ERR if @path cannot be written (message on stderr). */
int nt_write_html(const nt_set_t *s, const nt_filter_t *f, const nt_html_opts_t *o,
                  const char *path);

/* the page template (gen/nodetrace/assets.c, from tools/nodetrace/assets/) */
extern const char nt_asset_page_html[], nt_asset_page_css[], nt_asset_page_js[];

#endif /* NODETRACE_H */
