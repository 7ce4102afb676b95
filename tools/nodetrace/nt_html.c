/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * nt_html.c: nodetrace --html, one self-contained page.
 *
 * The page is the template of tools/nodetrace/assets/ (embedded in the
 * binary at build time) with the data and the chart graphs filled in, so it
 * opens anywhere without network or files beside it. The data is compact
 * JSON, because a million transitions must still load quickly: a table of the
 * strings used, the lanes (node, actor), the distinct transitions (machine,
 * from, event, to, refused), and five integers per record (time delta,
 * lane, transition, detail, pair). Each lane also names the peer its records
 * name (an accepted link's actor is named by an address; the hello says who
 * it is). The chart graphs are the SVG files that make fsm-dot draws from
 * `ragel -V -p` (MACHINE.svg in the charts folder), inlined; the page's
 * script finds the state names in them and highlights the visited
 * transitions. Ragel labels the edges with event numbers, so the page also
 * gets the event names of the charts this build knows (link, pair).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fsm.pb.h"
#include "nodes/agent/pair_fsm.h"
#include "nodetrace.h"
#include "rt_link_fsm.h"

#define SVG_MAX (8u << 20) /* larger chart drawings are not inlined */

/* ---- tuple interning: lanes and distinct transitions ------------------------------ */

typedef struct tuples {
    uint32_t *key;           /* width values per tuple */
    uint32_t n, cap, width;
    uint32_t *slot;          /* tuple index + 1, 0 = empty */
    uint32_t slots;          /* power of two */
} tuples_t;

static uint32_t tuple_hash(const uint32_t *k, uint32_t w)
{
    uint32_t h = 2166136261u;
    for (uint32_t i = 0; i < w; i++)
        h = (h ^ k[i]) * 16777619u;
    return h;
}

static int tuples_grow(tuples_t *t)
{
    uint32_t ns = t->slots ? t->slots * 2 : 256;
    uint32_t *nsl = calloc(ns, sizeof *nsl);
    if (!nsl)
        return RT_ERR;
    for (uint32_t i = 0; i < t->n; i++) {
        uint32_t j = tuple_hash(t->key + (size_t)i * t->width, t->width) & (ns - 1);
        while (nsl[j])
            j = (j + 1) & (ns - 1);
        nsl[j] = i + 1;
    }
    free(t->slot);
    t->slot = nsl;
    t->slots = ns;
    return RT_OK;
}

/* @return the index of tuple @k, added if new; UINT32_MAX on ENOMEM */
static uint32_t tuples_intern(tuples_t *t, const uint32_t *k)
{
    if ((t->n + 1) * 2 > t->slots && tuples_grow(t) != RT_OK)
        return UINT32_MAX;
    uint32_t j = tuple_hash(k, t->width) & (t->slots - 1);
    while (t->slot[j]) {
        if (memcmp(t->key + (size_t)(t->slot[j] - 1) * t->width, k, t->width * sizeof *k) == 0)
            return t->slot[j] - 1;
        j = (j + 1) & (t->slots - 1);
    }
    if (t->n == t->cap) {
        uint32_t nc = t->cap ? t->cap * 2 : 64;
        uint32_t *nk = realloc(t->key, (size_t)nc * t->width * sizeof *nk);
        if (!nk)
            return UINT32_MAX;
        t->key = nk;
        t->cap = nc;
    }
    memcpy(t->key + (size_t)t->n * t->width, k, t->width * sizeof *k);
    t->slot[j] = t->n + 1;
    return t->n++;
}

static void tuples_free(tuples_t *t)
{
    free(t->key);
    free(t->slot);
}

/* ---- the page's data -------------------------------------------------------------- */

typedef struct page {
    const nt_set_t *s;
    uint32_t *pid;           /* set string id -> page string id, UINT32_MAX = unused */
    uint32_t *used;          /* page string id -> set string id */
    uint32_t nused;
    tuples_t lanes;          /* (node, actor) in set string ids */
    tuples_t trs;            /* (machine, from, event, to, refused) in page string ids */
    uint32_t *lane_rank;     /* lane index -> position in the sorted lane list */
    uint32_t *lane_peer;     /* lane index -> the first peer its records name (set id) */
    size_t *recs;            /* indexes of the records shown */
    uint32_t *rec_lane, *rec_tr;
    size_t n;
} page_t;

static uint32_t page_str(page_t *p, uint32_t id)
{
    if (p->pid[id] == UINT32_MAX) {
        p->pid[id] = p->nused;
        p->used[p->nused++] = id;
    }
    return p->pid[id];
}

static const nt_set_t *lane_sort_set;
static const tuples_t *lane_sort_tuples;

static int lane_cmp(const void *a, const void *b)
{
    const uint32_t *x = lane_sort_tuples->key + (size_t)*(const uint32_t *)a * 2;
    const uint32_t *y = lane_sort_tuples->key + (size_t)*(const uint32_t *)b * 2;
    int c = strcmp(nt_str(lane_sort_set, x[0]), nt_str(lane_sort_set, y[0]));
    return c ? c : strcmp(nt_str(lane_sort_set, x[1]), nt_str(lane_sort_set, y[1]));
}

static int page_build(page_t *p, const nt_set_t *s, const nt_filter_t *f)
{
    memset(p, 0, sizeof *p);
    p->s = s;
    p->lanes.width = 2;
    p->trs.width = 5;
    p->pid = malloc(s->str.n * sizeof *p->pid);
    p->used = malloc(s->str.n * sizeof *p->used);
    p->recs = malloc((s->n + 1) * sizeof *p->recs);
    p->rec_lane = malloc((s->n + 1) * sizeof *p->rec_lane);
    p->rec_tr = malloc((s->n + 1) * sizeof *p->rec_tr);
    if (!p->pid || !p->used || !p->recs || !p->rec_lane || !p->rec_tr)
        return RT_ERR;
    memset(p->pid, 0xff, s->str.n * sizeof *p->pid);
    page_str(p, NT_NO_STR);
    for (size_t i = 0; i < s->n; i++) {
        const nt_rec_t *r = &s->rec[i];
        if (!nt_filter_match(s, r, f))
            continue;
        uint32_t lk[2] = {r->node, r->actor};
        uint32_t tk[5] = {page_str(p, r->machine), page_str(p, r->from), page_str(p, r->event),
                          page_str(p, r->to), r->refused};
        uint32_t lane = tuples_intern(&p->lanes, lk), tr = tuples_intern(&p->trs, tk);
        if (lane == UINT32_MAX || tr == UINT32_MAX)
            return RT_ERR;
        page_str(p, r->node);
        page_str(p, r->actor);
        page_str(p, r->detail);
        page_str(p, r->pair);
        p->recs[p->n] = i;
        p->rec_lane[p->n] = lane;
        p->rec_tr[p->n] = tr;
        p->n++;
    }
    /* lanes in node order, then actor order */
    uint32_t nl = p->lanes.n, *order = malloc((nl + 1) * sizeof *order);
    p->lane_rank = malloc((nl + 1) * sizeof *p->lane_rank);
    p->lane_peer = calloc(nl + 1, sizeof *p->lane_peer);
    if (!order || !p->lane_rank || !p->lane_peer) {
        free(order);
        return RT_ERR;
    }
    for (size_t i = 0; i < p->n; i++) {
        uint32_t peer = s->rec[p->recs[i]].peer;
        if (peer != NT_NO_STR && p->lane_peer[p->rec_lane[i]] == NT_NO_STR)
            p->lane_peer[p->rec_lane[i]] = page_str(p, peer);
    }
    for (uint32_t i = 0; i < nl; i++)
        order[i] = i;
    lane_sort_set = s;
    lane_sort_tuples = &p->lanes;
    qsort(order, nl, sizeof *order, lane_cmp);
    for (uint32_t i = 0; i < nl; i++)
        p->lane_rank[order[i]] = i;
    free(order);
    return RT_OK;
}

static void page_free(page_t *p)
{
    free(p->pid);
    free(p->used);
    free(p->recs);
    free(p->rec_lane);
    free(p->rec_tr);
    free(p->lane_rank);
    free(p->lane_peer);
    tuples_free(&p->lanes);
    tuples_free(&p->trs);
}

/* "link":["", "start", ...],"pair":[...]: event names by number, for the
 * charts whose graphs label their edges with numbers */
static void write_events(FILE *out)
{
    static const struct {
        const char *machine;
        const char *(*name)(int ev);
        int max;
    } charts[] = {
        {"link", link_fsm_event_name, (int)_ss_LinkEvent_MAX},
        {"pair", pair_fsm_event_name, (int)_ss_PairEvent_MAX},
    };
    for (size_t c = 0; c < sizeof charts / sizeof charts[0]; c++) {
        fprintf(out, "%s\"%s\":[\"\"", c ? "," : "", charts[c].machine);
        for (int ev = 1; ev <= charts[c].max; ev++) {
            fputc(',', out);
            nt_json_str_html(out, charts[c].name(ev));
        }
        fputc(']', out);
    }
}

static void write_data(FILE *out, page_t *p, const nt_html_opts_t *o)
{
    const nt_set_t *s = p->s;
    nt_offset_t off[64];
    size_t noff = nt_set_offsets(s, off, 64);
    uint64_t t0 = p->n ? s->rec[p->recs[0]].time_us : 0, prev = t0;
    uint32_t nl = p->lanes.n;

    /* offsets and node names go into the string table before it is written */
    for (size_t i = 0; i < noff; i++) {
        page_str(p, off[i].node);
        page_str(p, off[i].peer);
    }
    fprintf(out, "{\"v\":1,\"t0\":%llu,\"n\":%zu,\"title\":", (unsigned long long)t0, p->n);
    nt_json_str_html(out, o->title ? o->title : "");
    fputs(",\"filters\":", out);
    nt_json_str_html(out, o->filters ? o->filters : "");
    fputs(",\"charts_dir\":", out);
    nt_json_str_html(out, o->charts_dir ? o->charts_dir : "");

    /* lanes, sorted; nodes in lane order */
    uint32_t *byrank = malloc((nl + 1) * sizeof *byrank);
    if (byrank) {
        for (uint32_t i = 0; i < nl; i++)
            byrank[p->lane_rank[i]] = i;
    }
    fputs(",\"lanes\":[", out);
    for (uint32_t k = 0; byrank && k < nl; k++) {
        const uint32_t *key = p->lanes.key + (size_t)byrank[k] * 2;
        fprintf(out, "%s[%u,%u,%u]", k ? "," : "", p->pid[key[0]], p->pid[key[1]],
                p->lane_peer[byrank[k]]);
    }
    fputs("],\"nodes\":[", out);
    uint32_t last = UINT32_MAX;
    bool first = true;
    for (uint32_t k = 0; byrank && k < nl; k++) {
        uint32_t node = p->pid[p->lanes.key[(size_t)byrank[k] * 2]];
        if (node != last) {
            fprintf(out, "%s%u", first ? "" : ",", node);
            first = false;
            last = node;
        }
    }
    free(byrank);
    fputs("],\"tr\":[", out);
    for (uint32_t k = 0; k < p->trs.n; k++) {
        const uint32_t *key = p->trs.key + (size_t)k * 5;
        fprintf(out, "%s[%u,%u,%u,%u,%u]", k ? "," : "", key[0], key[1], key[2], key[3], key[4]);
    }
    fputs("],\"off\":[", out);
    for (size_t i = 0; i < noff; i++)
        fprintf(out, "%s[%u,%u,%lld]", i ? "," : "", p->pid[off[i].node], p->pid[off[i].peer],
                (long long)off[i].offset_us);
    fputs("],\"ev\":{", out);
    write_events(out);
    fputs("},\"r\":[", out);
    for (size_t i = 0; i < p->n; i++) {
        const nt_rec_t *r = &s->rec[p->recs[i]];
        fprintf(out, "%s%llu,%u,%u,%u,%u", i ? "," : "",
                (unsigned long long)(r->time_us - prev), p->lane_rank[p->rec_lane[i]],
                p->rec_tr[i], p->pid[r->detail], p->pid[r->pair]);
        prev = r->time_us;
        if (i % 16 == 15)
            fputc('\n', out);
    }
    fputs("],\"s\":[", out);
    for (uint32_t i = 0; i < p->nused; i++) {
        if (i)
            fputc(',', out);
        nt_json_str_html(out, nt_str(s, p->used[i]));
    }
    fputs("]}", out);
}

/* ---- chart graphs ----------------------------------------------------------------- */

static bool safe_name(const char *m)
{
    if (!*m)
        return false;
    for (; *m; m++)
        if (!((*m >= 'a' && *m <= 'z') || (*m >= 'A' && *m <= 'Z') || (*m >= '0' && *m <= '9') ||
              *m == '_' || *m == '-'))
            return false;
    return true;
}

/* inline @dir/@machine.svg from its <svg element on, if it exists */
static void write_svg(FILE *out, const char *dir, const char *machine)
{
    char path[4096];
    char *buf = NULL;
    FILE *in;
    if (!dir || !safe_name(machine))
        return;
    snprintf(path, sizeof path, "%s/%s.svg", dir, machine);
    in = fopen(path, "rb");
    if (!in)
        return;
    buf = malloc(SVG_MAX + 1);
    if (buf) {
        size_t n = fread(buf, 1, SVG_MAX + 1, in);
        buf[n <= SVG_MAX ? n : 0] = '\0';
        char *svg = strstr(buf, "<svg");
        if (n > SVG_MAX)
            fprintf(stderr, "nodetrace: %s: larger than %u bytes, not inlined\n", path, SVG_MAX);
        else if (!svg)
            fprintf(stderr, "nodetrace: %s: no <svg> element, not inlined\n", path);
        else
            fprintf(out, "<div class=\"nt-svg-src\" data-machine=\"%s\">\n%s</div>\n", machine, svg);
    }
    free(buf);
    fclose(in);
}

static void write_charts(FILE *out, const page_t *p, const nt_html_opts_t *o)
{
    /* each machine once, in transition-table order */
    for (uint32_t k = 0; k < p->trs.n; k++) {
        uint32_t m = p->trs.key[(size_t)k * 5];
        bool seen = false;
        for (uint32_t j = 0; j < k && !seen; j++)
            seen = p->trs.key[(size_t)j * 5] == m;
        if (!seen)
            write_svg(out, o->charts_dir, nt_str(p->s, p->used[m]));
    }
}

/* ---- the page --------------------------------------------------------------------- */

static void html_text(FILE *out, const char *str)
{
    for (; *str; str++) {
        switch (*str) {
        case '<': fputs("&lt;", out); break;
        case '>': fputs("&gt;", out); break;
        case '&': fputs("&amp;", out); break;
        case '"': fputs("&quot;", out); break;
        default: putc(*str, out);
        }
    }
}

int nt_write_html(const nt_set_t *s, const nt_filter_t *f, const nt_html_opts_t *o,
                  const char *path)
{
    page_t p;
    int rc = RT_ERR;
    FILE *out = NULL;
    if (page_build(&p, s, f) != RT_OK) {
        fprintf(stderr, "nodetrace: %s: out of memory\n", path);
        goto out;
    }
    out = fopen(path, "w");
    if (!out) {
        fprintf(stderr, "nodetrace: %s: %s\n", path, strerror(errno));
        goto out;
    }
    setvbuf(out, NULL, _IOFBF, 1 << 20);
    for (const char *t = nt_asset_page_html; *t;) {
        const char *open = strstr(t, "{{");
        const char *close = open ? strstr(open, "}}") : NULL;
        if (!open || !close) {
            fputs(t, out);
            break;
        }
        fwrite(t, 1, (size_t)(open - t), out);
        size_t len = (size_t)(close - open - 2);
        const char *name = open + 2;
        if (len == 5 && strncmp(name, "TITLE", 5) == 0)
            html_text(out, o->title ? o->title : "");
        else if (len == 3 && strncmp(name, "CSS", 3) == 0)
            fputs(nt_asset_page_css, out);
        else if (len == 2 && strncmp(name, "JS", 2) == 0)
            fputs(nt_asset_page_js, out);
        else if (len == 4 && strncmp(name, "DATA", 4) == 0)
            write_data(out, &p, o);
        else if (len == 6 && strncmp(name, "CHARTS", 6) == 0)
            write_charts(out, &p, o);
        else
            fwrite(open, 1, len + 4, out);
        t = close + 2;
    }
    if (fflush(out) != 0 || ferror(out)) {
        fprintf(stderr, "nodetrace: %s: write: %s\n", path, strerror(errno));
        goto out;
    }
    rc = RT_OK;
out:
    if (out && fclose(out) != 0 && rc == RT_OK) {
        fprintf(stderr, "nodetrace: %s: close: %s\n", path, strerror(errno));
        rc = RT_ERR;
    }
    page_free(&p);
    return rc;
}
