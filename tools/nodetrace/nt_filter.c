/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * nt_filter.c: nodetrace's filters (pair, actor, machine, node, time range)
 * and its time format.
 *
 * Name filters are fnmatch(3) patterns, so "--actor 'link:*'" picks every
 * link. Times print as ISO-8601 UTC with microseconds, the form the operator
 * copies back into --since/--until; those also take "-5m"-style times
 * relative to now, like journalctl.
 */
#include <ctype.h>
#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nodetrace.h"

static bool name_match(const char *pattern, const char *value)
{
    return pattern == NULL || fnmatch(pattern, value, 0) == 0;
}

bool nt_filter_match(const nt_set_t *s, const nt_rec_t *r, const nt_filter_t *f)
{
    if (f->has_since && r->time_us < f->since_us)
        return false;
    if (f->has_until && r->time_us > f->until_us)
        return false;
    return name_match(f->pair, nt_str(s, r->pair)) && name_match(f->actor, nt_str(s, r->actor)) &&
           name_match(f->machine, nt_str(s, r->machine)) && name_match(f->node, nt_str(s, r->node));
}

/* ---- time ------------------------------------------------------------------------ */

/* days since 1970-01-01 of a civil date (proleptic Gregorian) */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static bool digits(const char **p, int n, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)(*p)[i]))
            return false;
        v = v * 10 + (unsigned)((*p)[i] - '0');
    }
    *p += n;
    *out = v;
    return true;
}

static int parse_iso(const char *p, uint64_t *out)
{
    unsigned y, mo, d, h = 0, mi = 0, sec = 0, frac = 0;
    if (!digits(&p, 4, &y) || *p++ != '-' || !digits(&p, 2, &mo) || *p++ != '-' ||
        !digits(&p, 2, &d))
        return RT_ERR;
    if (*p == 'T' || *p == ' ') {
        p++;
        if (!digits(&p, 2, &h) || *p++ != ':' || !digits(&p, 2, &mi))
            return RT_ERR;
        if (*p == ':') {
            p++;
            if (!digits(&p, 2, &sec))
                return RT_ERR;
            if (*p == '.') {
                int n = 0;
                p++;
                while (isdigit((unsigned char)*p)) {
                    if (n < 6) {
                        frac = frac * 10 + (unsigned)(*p - '0');
                        n++;
                    }
                    p++;
                }
                if (n == 0)
                    return RT_ERR;
                for (; n < 6; n++)
                    frac *= 10;
            }
        }
    }
    if (*p == 'Z')
        p++;
    if (*p || y < 1970 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
        return RT_ERR;
    int64_t days = days_from_civil(y, mo, d);
    *out = ((uint64_t)days * 86400u + h * 3600u + mi * 60u + sec) * 1000000u + frac;
    return RT_OK;
}

int nt_parse_time(const char *s, uint64_t now_us, uint64_t *out_us)
{
    if (strcmp(s, "now") == 0) {
        *out_us = now_us;
        return RT_OK;
    }
    if (s[0] == '@') {
        char *end;
        double v = strtod(s + 1, &end);
        if (end == s + 1 || *end || v < 0 || v > 1e13)
            return RT_ERR;
        *out_us = (uint64_t)(v * 1e6);
        return RT_OK;
    }
    if (s[0] == '-') {
        char *end;
        double v = strtod(s + 1, &end);
        double mul;
        if (end == s + 1 || v < 0 || !isdigit((unsigned char)s[1]))
            return RT_ERR;
        if (strcmp(end, "us") == 0)
            mul = 1;
        else if (strcmp(end, "ms") == 0)
            mul = 1e3;
        else if (strcmp(end, "s") == 0 || *end == '\0')
            mul = 1e6;
        else if (strcmp(end, "m") == 0)
            mul = 60e6;
        else if (strcmp(end, "h") == 0)
            mul = 3600e6;
        else if (strcmp(end, "d") == 0)
            mul = 86400e6;
        else
            return RT_ERR;
        double back = v * mul;
        *out_us = back >= (double)now_us ? 0 : now_us - (uint64_t)back;
        return RT_OK;
    }
    return parse_iso(s, out_us);
}

void nt_format_time(uint64_t us, char *out, size_t outlen)
{
    /* the seconds part changes rarely between consecutive records: cache it
     * (nodetrace is single-threaded) */
    static uint64_t cached_sec = UINT64_MAX;
    static char cached[24];
    uint64_t sec = us / 1000000u;
    if (sec != cached_sec) {
        time_t t = (time_t)sec;
        struct tm tm;
        if (!gmtime_r(&t, &tm) || strftime(cached, sizeof cached, "%Y-%m-%dT%H:%M:%S", &tm) == 0)
            snprintf(cached, sizeof cached, "?");
        cached_sec = sec;
    }
    snprintf(out, outlen, "%s.%06uZ", cached, (unsigned)(us % 1000000u));
}
