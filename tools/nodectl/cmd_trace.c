/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * cmd_trace.c: nodectl trace --out DIR, fetch a node's trace files.
 *
 * When something went wrong, the state trace of every node is what support
 * needs, and nobody should have to log in to each appliance to copy it. The
 * management endpoint lists the node's trace files (trace-list: the live
 * file and its rotated siblings, oldest first) and serves them in chunks
 * (trace-get, base64 in JSON); this command writes them to DIR/NODE/NAME,
 * ready for `nodetrace DIR/NODE/trace.pb`. Each file is fetched up to the
 * size trace-list reported, so a live file is copied as it was at that
 * moment (whole records: the node appends a record with one write), and
 * written to a temporary name that is renamed only when complete. Names
 * from the node are checked before they touch the file system.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nodectl.h"
#include "rt.h"

#define TRACE_CHUNK (1u << 20) /* bytes asked per trace-get (the node's ceiling too) */
#define TRACE_FILES 128u       /* files of one node, at most */

const char ctl_trace_help[] =
    "DESCRIPTION\n"
    "    Fetches every trace file of the node (the live one and its rotated\n"
    "    siblings) through its management endpoint into DIR/NODE/, so that the\n"
    "    node's state transitions can be read with nodetrace without logging in\n"
    "    to it. A live file is copied up to its size when the fetch began.\n"
    "    Existing files of the same names in DIR/NODE/ are replaced.\n"
    "\n"
    "OPTIONS\n"
    "    --out DIR    where to write (made if missing)\n"
    "    --json       print {\"node\", \"dir\", \"files\": [{\"name\", \"path\", \"size\"}]}\n"
    "    -h, --help   show this page\n";

/* a name the node gave, safe as one path component */
static bool name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n >= RT_NAME_MAX + 8 || s[0] == '.' || s[0] == '-')
        return false;
    return strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") == n;
}

static int make_dir(const ctl_t *ctl, const char *path)
{
    if (mkdir(path, 0755) == 0 || errno == EEXIST) {
        struct stat sb;
        if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode))
            return CTL_EXIT_OK;
        errno = ENOTDIR;
    }
    return ctl_fail(ctl, "cannot make folder %s: %s", path, strerror(errno));
}

/* fetch @name (@size bytes) into @path; @return exit code (the error printed) */
static int fetch(const ctl_t *ctl, ctl_conn_t *c, const char *name, uint64_t size,
                 const char *path)
{
    char tmp[PATH_MAX + RT_NAME_MAX + 32], off_s[24], len_s[24];
    uint8_t *data = malloc(TRACE_CHUNK);
    int fd = -1, rc = CTL_EXIT_FAIL;
    uint64_t off = 0;

    snprintf(tmp, sizeof tmp, "%s.part", path);
    if (!data) {
        ctl_fail(ctl, "out of memory");
        goto out;
    }
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        ctl_fail(ctl, "cannot write %s: %s", tmp, strerror(errno));
        goto out;
    }
    while (off < size) {
        uint64_t want = size - off < TRACE_CHUNK ? size - off : TRACE_CHUNK;
        const char *args[3] = {name, off_s, len_s};
        ctl_resp_t r;
        size_t got = 0;
        uint64_t roff = UINT64_MAX;
        snprintf(off_s, sizeof off_s, "%llu", (unsigned long long)off);
        snprintf(len_s, sizeof len_s, "%llu", (unsigned long long)want);
        if (ctl_call(c, "trace-get", 3, args, &r) != CTL_EXIT_OK) {
            rc = ctl_report(ctl, &r);
            ctl_resp_free(&r);
            goto out;
        }
        int t = rt_json_get(&r.doc, 0, "data");
        if (rt_json_get_u64(&r.doc, rt_json_get(&r.doc, 0, "offset"), &roff) != RT_OK ||
            roff != off || rt_json_get_b64(&r.doc, t, data, TRACE_CHUNK, &got) != RT_OK ||
            got > want) {
            ctl_resp_free(&r);
            ctl_fail(ctl, "node %s sent a bad chunk of %s at offset %llu", ctl_conn_node(c), name,
                     (unsigned long long)off);
            goto out;
        }
        ctl_resp_free(&r);
        if (got == 0) {
            ctl_fail(ctl, "%s on node %s shrank below %llu bytes during the fetch (rotated?): "
                     "run nodectl trace again", name, ctl_conn_node(c), (unsigned long long)size);
            goto out;
        }
        for (size_t w = 0; w < got;) {
            ssize_t n = write(fd, data + w, got - w);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0) {
                ctl_fail(ctl, "cannot write %s: %s", tmp, strerror(errno));
                goto out;
            }
            w += (size_t)n;
        }
        off += got;
    }
    if (close(fd) != 0) {
        fd = -1;
        ctl_fail(ctl, "cannot write %s: %s", tmp, strerror(errno));
        goto out;
    }
    fd = -1;
    if (rename(tmp, path) != 0) {
        ctl_fail(ctl, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
        goto out;
    }
    rc = CTL_EXIT_OK;
out:
    if (fd >= 0)
        close(fd);
    if (rc != CTL_EXIT_OK)
        unlink(tmp);
    free(data);
    return rc;
}

int ctl_cmd_trace(ctl_t *ctl, int argc, char **argv)
{
    static const struct option lo[] = {
        CTL_COMMON_LONGOPTS, {"out", 1, NULL, 'o'}, {NULL, 0, NULL, 0},
    };
    const char *out = NULL;
    bool first = true;
    int c, rc;
    ctl_resp_t r = {0};
    char dir[PATH_MAX], node[RT_NAME_MAX];
    struct {
        char name[RT_NAME_MAX + 8];
        uint64_t size;
    } *files = NULL;
    uint32_t nfiles = 0;
    uint64_t total = 0;

    while ((c = ctl_getopt(ctl, argc, argv, "ho:", lo, &first)) != -1) {
        switch (c) {
        case 'o': out = optarg; break;
        case CTL_GETOPT_HELP: return CTL_EXIT_OK;
        default: return CTL_EXIT_USAGE;
        }
    }
    if (optind < argc)
        return ctl_usage(ctl, "unexpected argument '%s'", argv[optind]);
    if (!out || !out[0])
        return ctl_usage(ctl, "missing --out DIR, where to put the trace files");
    ctl_conn_t *conn = ctl_open(ctl, &rc);
    if (!conn)
        return rc;
    if ((rc = ctl_call(conn, "trace-list", 0, NULL, &r)) != CTL_EXIT_OK) {
        rc = ctl_report(ctl, &r);
        goto done;
    }
    rc = CTL_EXIT_FAIL;
    int list = rt_json_get(&r.doc, 0, "files");
    if (rt_json_get_str(&r.doc, rt_json_get(&r.doc, 0, "node"), node, sizeof node) != RT_OK ||
        !name_ok(node) || rt_json_type(&r.doc, list) != RT_JSON_T_ARR ||
        rt_json_size(&r.doc, list) > TRACE_FILES) {
        ctl_fail(ctl, "node at %s sent a bad trace list", ctl_conn_addr(conn));
        goto done;
    }
    files = calloc(rt_json_size(&r.doc, list) + 1, sizeof *files);
    if (!files) {
        ctl_fail(ctl, "out of memory");
        goto done;
    }
    for (uint32_t i = 0; i < rt_json_size(&r.doc, list); i++) {
        int f = rt_json_at(&r.doc, list, i);
        if (rt_json_get_str(&r.doc, rt_json_get(&r.doc, f, "name"), files[nfiles].name,
                            sizeof files[nfiles].name) != RT_OK ||
            !name_ok(files[nfiles].name) ||
            rt_json_get_u64(&r.doc, rt_json_get(&r.doc, f, "size"), &files[nfiles].size) != RT_OK) {
            ctl_fail(ctl, "node %s sent a bad trace file entry (#%u)", node, (unsigned)i + 1);
            goto done;
        }
        nfiles++;
    }
    if ((size_t)snprintf(dir, sizeof dir, "%s/%s", out, node) >= sizeof dir) {
        rc = ctl_usage(ctl, "DIR is too long");
        goto done;
    }
    if (make_dir(ctl, out) != CTL_EXIT_OK || make_dir(ctl, dir) != CTL_EXIT_OK)
        goto done;
    for (uint32_t i = 0; i < nfiles; i++) {
        char path[PATH_MAX + RT_NAME_MAX + 16];
        snprintf(path, sizeof path, "%s/%s", dir, files[i].name);
        if ((rc = fetch(ctl, conn, files[i].name, files[i].size, path)) != CTL_EXIT_OK)
            goto done;
        total += files[i].size;
        if (!ctl->json)
            printf("%s  %llu bytes\n", path, (unsigned long long)files[i].size);
    }
    if (ctl->json) {
        printf("{\"node\":");
        ctl_json_str(stdout, node);
        printf(",\"dir\":");
        ctl_json_str(stdout, dir);
        printf(",\"files\":[");
        for (uint32_t i = 0; i < nfiles; i++) {
            char path[PATH_MAX + RT_NAME_MAX + 16];
            snprintf(path, sizeof path, "%s/%s", dir, files[i].name);
            printf("%s{\"name\":", i ? "," : "");
            ctl_json_str(stdout, files[i].name);
            printf(",\"path\":");
            ctl_json_str(stdout, path);
            printf(",\"size\":%llu}", (unsigned long long)files[i].size);
        }
        printf("]}\n");
    } else if (nfiles == 0) {
        printf("node %s has no trace files\n", node);
    } else {
        printf("fetched %u file%s (%llu bytes) from node %s; read them with: nodetrace %s/%s\n",
               (unsigned)nfiles, nfiles == 1 ? "" : "s", (unsigned long long)total, node, dir,
               files[nfiles - 1].name);
    }
    rc = CTL_EXIT_OK;
done:
    free(files);
    ctl_resp_free(&r);
    ctl_disconnect(conn);
    return rc;
}
