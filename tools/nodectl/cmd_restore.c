/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * cmd_restore.c: nodectl restore --offline, rebuild a disk image from a
 * master target's folder with no daemon running.
 *
 * This is the operator's last resort and the proof that the replica is
 * whole: it needs nothing but the folder (a copied disk, a mounted backup)
 * and this binary. The journal is opened read-only (nodes/mt/journal.h),
 * the point is resolved (latest, latest-app, oldest, a sequence number, an
 * ISO-8601 UTC time or a bookmark name), every record up to it is verified
 * against its checksum, and the image is written sparse and synced. The
 * on-disk format is docs/FORMAT.md.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "nodes/mt/journal.h"
#include "nodectl.h"
#include "rt.h"

const char ctl_restore_help[] =
    "DESCRIPTION\n"
    "    Rebuilds the disk of protection pair PAIR as it was at recovery point\n"
    "    P from the master target's data folder DIR, with no daemon running\n"
    "    (the master target must not hold the pair open). Every journal record\n"
    "    up to the point is verified against its checksum first. The output is\n"
    "    a sparse image file (or a whole block device), synced before the\n"
    "    command returns; a partial output file is removed on failure.\n"
    "\n"
    "OPTIONS\n"
    "    --offline DIR   the master target's folder ([mt] dir; MT_DIR in demo.env)\n"
    "    --pair PAIR     the protection pair\n"
    "    --point P       latest (default), latest-app, oldest, a sequence number,\n"
    "                    an ISO-8601 UTC time (the latest point at or before it)\n"
    "                    or a bookmark name\n"
    "    --out IMG       the image to write (created or truncated)\n"
    "    --json          print {\"pair\", \"point\": {\"seq\", \"time\", \"kind\", \"label\"},\n"
    "                    \"out\", \"bytes\"}\n"
    "    -h, --help      show this page\n";

static const char *kind_name(mtj_kind_t k)
{
    switch (k) {
    case MTJ_PT_CRASH: return "crash-consistent";
    case MTJ_PT_BASE: return "base";
    case MTJ_PT_MARK: return "checkpoint";
    case MTJ_PT_APP: return "app-consistent";
    }
    return "?";
}

int ctl_cmd_restore(ctl_t *ctl, int argc, char **argv)
{
    static const struct option lo[] = {
        {"offline", 1, NULL, 'd'}, {"pair", 1, NULL, 'p'}, {"point", 1, NULL, 'P'},
        {"out", 1, NULL, 'o'},     CTL_COMMON_LONGOPTS,     {NULL, 0, NULL, 0},
    };
    const char *dir = NULL, *pair = NULL, *point = "latest", *out = NULL;
    bool first = true;
    int c;
    while ((c = ctl_getopt(ctl, argc, argv, "h", lo, &first)) != -1) {
        switch (c) {
        case 'd': dir = optarg; break;
        case 'p': pair = optarg; break;
        case 'P': point = optarg; break;
        case 'o': out = optarg; break;
        case CTL_GETOPT_HELP: return CTL_EXIT_OK;
        default: return CTL_EXIT_USAGE;
        }
    }
    if (optind < argc)
        return ctl_usage(ctl, "unexpected argument '%s'", argv[optind]);
    if (!dir)
        return ctl_usage(ctl, "missing --offline DIR, the master target's folder (only offline "
                              "restores exist so far)");
    if (!pair || !pair[0])
        return ctl_usage(ctl, "missing --pair PAIR");
    if (!out || !out[0])
        return ctl_usage(ctl, "missing --out IMG, the image to write");
    if (!point[0])
        return ctl_usage(ctl, "empty --point");

    char err[512], when[MTJ_TIME_MAX];
    mtj_point_t pt;
    memset(&pt, 0, sizeof pt);
    if (mtj_restore(dir, pair, point, out, &pt, err, sizeof err) != RT_OK)
        return ctl_fail(ctl, "%s", err);
    mtj_format_time(pt.time_us, when);
    if (ctl->json) {
        printf("{\"pair\":");
        ctl_json_str(stdout, pair);
        printf(",\"point\":{\"seq\":%llu,\"time\":\"%s\",\"kind\":\"%s\",\"label\":",
               (unsigned long long)pt.seq, when, kind_name(pt.kind));
        ctl_json_str(stdout, pt.label);
        printf("},\"out\":");
        ctl_json_str(stdout, out);
        printf("}\n");
    } else {
        printf("restored pair %s at point %llu (%s, %s%s%s) into %s\n", pair,
               (unsigned long long)pt.seq, when, kind_name(pt.kind), pt.label[0] ? " " : "",
               pt.label, out);
    }
    return CTL_EXIT_OK;
}
