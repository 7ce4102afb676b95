/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * nt_set.c: the record set of nodetrace: decoded transitions with interned
 * strings, the merge by time, and the clock offsets between nodes.
 *
 * Strings repeat a lot (node, actor, machine and state names), so every
 * string is interned once and records hold 32-bit ids: a million transitions
 * take about 80 MiB. The merge is a sort on (time, node name, seq, arrival),
 * so that ties are stable and the same files always print the same way.
 */
#include <stdlib.h>
#include <string.h>

#include "nodetrace.h"

/* ---- strings ---------------------------------------------------------------- */

static uint32_t str_hash(const char *p, size_t len)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < len; i++) {
        h ^= (uint8_t)p[i];
        h *= 16777619u;
    }
    return h;
}

static int strtab_grow_hash(nt_strtab_t *t)
{
    uint32_t ncap = t->hash_cap ? t->hash_cap * 2 : 1024;
    uint32_t *nh = calloc(ncap, sizeof *nh);
    if (!nh)
        return RT_ERR;
    for (uint32_t id = 0; id < t->n; id++) {
        const char *str = t->arena + t->off[id];
        uint32_t i = str_hash(str, strlen(str)) & (ncap - 1);
        while (nh[i])
            i = (i + 1) & (ncap - 1);
        nh[i] = id + 1;
    }
    free(t->hash);
    t->hash = nh;
    t->hash_cap = ncap;
    return RT_OK;
}

uint32_t nt_str_intern(nt_strtab_t *t, const char *str, size_t len)
{
    if ((t->n + 1) * 2 > t->hash_cap && strtab_grow_hash(t) != RT_OK)
        return UINT32_MAX;
    uint32_t h = str_hash(str, len);
    uint32_t i = h & (t->hash_cap - 1);
    while (t->hash[i]) {
        const char *cand = t->arena + t->off[t->hash[i] - 1];
        if (strncmp(cand, str, len) == 0 && cand[len] == '\0')
            return t->hash[i] - 1;
        i = (i + 1) & (t->hash_cap - 1);
    }
    if (t->n == t->cap) {
        uint32_t ncap = t->cap ? t->cap * 2 : 256;
        uint32_t *no = realloc(t->off, ncap * sizeof *no);
        if (!no)
            return UINT32_MAX;
        t->off = no;
        t->cap = ncap;
    }
    if (t->arena_len + len + 1 > t->arena_cap) {
        size_t ncap = t->arena_cap ? t->arena_cap * 2 : 16384;
        while (ncap < t->arena_len + len + 1)
            ncap *= 2;
        if (ncap > UINT32_MAX)
            return UINT32_MAX;
        char *na = realloc(t->arena, ncap);
        if (!na)
            return UINT32_MAX;
        t->arena = na;
        t->arena_cap = ncap;
    }
    memcpy(t->arena + t->arena_len, str, len);
    t->arena[t->arena_len + len] = '\0';
    t->off[t->n] = (uint32_t)t->arena_len;
    t->arena_len += len + 1;
    t->hash[i] = t->n + 1;
    return t->n++;
}

const char *nt_str(const nt_set_t *s, uint32_t id)
{
    if (id >= s->str.n)
        return "";
    return s->str.arena + s->str.off[id];
}

uint32_t nt_str_find(const nt_set_t *s, const char *str)
{
    const nt_strtab_t *t = &s->str;
    size_t len = strlen(str);
    uint32_t i = str_hash(str, len) & (t->hash_cap - 1);
    while (t->hash[i]) {
        if (strcmp(t->arena + t->off[t->hash[i] - 1], str) == 0)
            return t->hash[i] - 1;
        i = (i + 1) & (t->hash_cap - 1);
    }
    return UINT32_MAX;
}

/* ---- the set ---------------------------------------------------------------- */

int nt_set_init(nt_set_t *s)
{
    memset(s, 0, sizeof *s);
    if (nt_str_intern(&s->str, "", 0) != NT_NO_STR) {
        nt_set_free(s);
        return RT_ERR;
    }
    return RT_OK;
}

void nt_set_free(nt_set_t *s)
{
    free(s->rec);
    free(s->str.arena);
    free(s->str.off);
    free(s->str.hash);
    memset(s, 0, sizeof *s);
}

static uint32_t intern_field(nt_set_t *s, const char *f, size_t max, bool *ok)
{
    uint32_t id = nt_str_intern(&s->str, f, strnlen(f, max));
    if (id == UINT32_MAX)
        *ok = false;
    return id;
}

int nt_set_add(nt_set_t *s, const ss_TraceEvent *ev)
{
    if (s->n == s->cap) {
        size_t ncap = s->cap ? s->cap * 2 : 4096;
        nt_rec_t *nr = realloc(s->rec, ncap * sizeof *nr);
        if (!nr)
            return RT_ERR;
        s->rec = nr;
        s->cap = ncap;
    }
    nt_rec_t *r = &s->rec[s->n];
    bool ok = true;
#define F(name) r->name = intern_field(s, ev->name, sizeof ev->name, &ok)
    F(node);
    F(actor);
    F(machine);
    F(from);
    F(event);
    F(to);
    F(detail);
    F(peer);
    F(pair);
#undef F
    if (!ok)
        return RT_ERR;
    r->time_us = ev->time_us;
    r->seq = ev->seq;
    r->clock_offset_us = ev->clock_offset_us;
    r->refused = ev->refused;
    r->order = (uint32_t)s->n;
    s->n++;
    return RT_OK;
}

/* ---- merge -------------------------------------------------------------------- */

static const nt_set_t *sort_set; /* qsort has no context argument in C11 */

static int rec_cmp(const void *a, const void *b)
{
    const nt_rec_t *x = a, *y = b;
    if (x->time_us != y->time_us)
        return x->time_us < y->time_us ? -1 : 1;
    if (x->node != y->node) {
        int c = strcmp(nt_str(sort_set, x->node), nt_str(sort_set, y->node));
        if (c)
            return c;
    }
    if (x->seq != y->seq)
        return x->seq < y->seq ? -1 : 1;
    return x->order < y->order ? -1 : x->order > y->order;
}

void nt_set_sort(nt_set_t *s)
{
    /* already in order (one file, or a re-sort): skip the sort */
    size_t i;
    sort_set = s;
    for (i = 1; i < s->n; i++)
        if (rec_cmp(&s->rec[i - 1], &s->rec[i]) > 0)
            break;
    if (i < s->n)
        qsort(s->rec, s->n, sizeof *s->rec, rec_cmp);
    sort_set = NULL;
}

/* ---- clock offsets -------------------------------------------------------------- */

static int off_cmp(const void *a, const void *b)
{
    const nt_offset_t *x = a, *y = b;
    int c = strcmp(nt_str(sort_set, x->node), nt_str(sort_set, y->node));
    return c ? c : strcmp(nt_str(sort_set, x->peer), nt_str(sort_set, y->peer));
}

size_t nt_set_offsets(const nt_set_t *s, nt_offset_t *out, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < s->n; i++) {
        const nt_rec_t *r = &s->rec[i];
        if (r->peer == NT_NO_STR || r->node == NT_NO_STR)
            continue;
        size_t k;
        for (k = 0; k < n; k++)
            if (out[k].node == r->node && out[k].peer == r->peer)
                break;
        if (k == n) {
            if (n == max)
                continue;
            out[n].node = r->node;
            out[n].peer = r->peer;
            out[n].offset_us = 0;
            n++;
        }
        if (r->clock_offset_us != 0)
            out[k].offset_us = r->clock_offset_us; /* in time order: the last one wins */
    }
    sort_set = s;
    qsort(out, n, sizeof *out, off_cmp);
    sort_set = NULL;
    return n;
}

#define NT_MAX_NODES 256u
#define NT_MAX_SHIFT (86400LL * 1000000) /* offsets beyond a day are ignored */

size_t nt_set_adjust_clock(nt_set_t *s)
{
    nt_offset_t off[NT_MAX_NODES];
    uint32_t node[NT_MAX_NODES];    /* nodes with a known shift */
    int64_t shift[NT_MAX_NODES];    /* what to add to their times */
    size_t noff, nn = 0, shifted = 0;

    if (s->n == 0)
        return 0;
    nt_set_sort(s);
    noff = nt_set_offsets(s, off, NT_MAX_NODES);
    node[nn] = s->rec[0].node; /* the reference clock */
    shift[nn++] = 0;
    /* breadth first: offset o = peer - node, so node time + o = peer time */
    for (size_t k = 0; k < nn && nn < NT_MAX_NODES; k++) {
        for (size_t j = 0; j < noff && nn < NT_MAX_NODES; j++) {
            uint32_t other;
            int64_t d;
            if (off[j].offset_us > NT_MAX_SHIFT || off[j].offset_us < -NT_MAX_SHIFT)
                continue; /* not a clock offset anyone measured */
            if (off[j].peer == node[k]) {
                other = off[j].node;
                d = off[j].offset_us;  /* other + o = ref-side time */
            } else if (off[j].node == node[k]) {
                other = off[j].peer;
                d = -off[j].offset_us; /* ref-side + o = other: other - o */
            } else {
                continue;
            }
            size_t m;
            for (m = 0; m < nn; m++)
                if (node[m] == other)
                    break;
            if (m < nn)
                continue;
            node[nn] = other;
            shift[nn++] = shift[k] + d;
        }
    }
    for (size_t m = 1; m < nn; m++)
        if (shift[m])
            shifted++;
    for (size_t i = 0; i < s->n; i++) {
        nt_rec_t *r = &s->rec[i];
        for (size_t m = 1; m < nn; m++) {
            if (node[m] != r->node)
                continue;
            if (r->time_us <= (uint64_t)INT64_MAX / 2) { /* else: not a real time */
                int64_t t = (int64_t)r->time_us + shift[m];
                r->time_us = t < 0 ? 0 : (uint64_t)t;
            }
            break;
        }
    }
    nt_set_sort(s);
    return shifted;
}
