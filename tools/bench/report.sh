# SPDX-License-Identifier: GPL-2.0-or-later
#
# report.sh: the outputs of a benchmark run (sourced by tools/bench/run),
# all made from the one record of figures ($REC, see lib.sh), so that the
# table on stdout, the JSON file and docs/PERFORMANCE.md can never disagree
# and none of them shows a number that was not measured in this run:
#   report_json FILE   every figure: value (null when n/a), unit, goal, the
#                      command that measured it and a note
#   report_summary     the figures issue 3 asks for, on stdout
#   report_doc FILE    docs/PERFORMANCE.md: method, how to reproduce, the table,
#                      and tools/bench/findings.md (the reading of a reviewed
#                      run, written by hand) when it exists

# VERDICT_AWK: the awk function verdict(VALUE, GOAL): "met" or "missed" for a
# goal ">= X", "> X", "<= X", "< X" or "X" (equal: the yes/no figures), ""
# when the figure has no goal or was not measured (n/a)
VERDICT_AWK='
function verdict(v, goal,   op, x) {
    if (v == "" || goal == "") return ""
    op = goal; sub(/[ 0-9.].*$/, "", op)
    x = goal; sub(/^[<>=]* */, "", x)
    if (x !~ /^[0-9]+(\.[0-9]+)?$/) return ""
    if (op == ">=") return (v + 0 >= x + 0) ? "met" : "missed"
    if (op == ">") return (v + 0 > x + 0) ? "met" : "missed"
    if (op == "<=") return (v + 0 <= x + 0) ? "met" : "missed"
    if (op == "<") return (v + 0 < x + 0) ? "met" : "missed"
    if (op == "") return (v + 0 == x + 0) ? "met" : "missed"
    return ""
}'

# verdict KEY: met, missed, or nothing (no goal, or n/a)
verdict() {
    awk -F'\t' -v k="$1" "$VERDICT_AWK"'
        $1 == k { v = $4; g = $6 } END { print verdict(v, g) }' "$REC"
}

# json_str TEXT: TEXT as a JSON string literal (control characters dropped)
json_str() {
    printf '"%s"' "$(printf '%s' "$1" | tr -d '\000-\037' | sed 's/\\/\\\\/g; s/"/\\"/g')"
}

report_json() {
    local out=$1
    {
        printf '{\n'
        printf '  "schema": "secondsite-bench/1",\n'
        printf '  "date": %s,\n' "$(json_str "$RUN_DATE")"
        printf '  "quick": %s,\n' "$([ "$QUICK" = 1 ] && echo true || echo false)"
        printf '  "host": {"cpus": %s, "kernel": %s, "cpu": %s, "loadavg_at_start": %s},\n' \
            "$(nproc)" "$(json_str "$(uname -sr)")" "$(json_str "$CPU_MODEL")" \
            "$(json_str "$LOAD_AVG")"
        printf '  "params": {"image_mib": %s, "image_bytes": %s, "link_bytes": %s, "fio_seconds": %s, "lag_rates_mbps": [%s], "lag_bs": %s, "lag_depth": %s, "lag_poll_ms": %s, "wolfssl": %s},\n' \
            "$IMG_MIB" "${IMG_BYTES:-0}" "$LINK_BYTES_N" "$FIO_SECONDS" \
            "$(printf '%s' "$LAG_RATES" | tr -s ' ' ',')" "$LAG_BS" "$LAG_DEPTH" "$LAG_POLL_MS" \
            "$(json_str "${WOLFSSL_VARIANT:-unknown}")"
        printf '  "figures": {'
        # fields: KEY GROUP LABEL VALUE UNIT GOAL CMD NOTE (empty fields kept)
        awk -F'\t' "$VERDICT_AWK"'
        function js(s) {
            gsub(/[\001-\037]/, "", s); gsub(/\\/, "\\\\\\\\", s); gsub(/"/, "\\\"", s)
            return "\"" s "\""
        }
        {
            lab = $3; sub(/^ +/, "", lab)
            met = verdict($4, $6)
            printf "%s\n    %s: {\"group\": %s, \"label\": %s, \"value\": %s, \"unit\": %s, \"goal\": %s, \"met\": %s, \"cmd\": %s, \"note\": %s}",
                   (NR > 1 ? "," : ""), js($1), js($2), js(lab), ($4 == "" ? "null" : $4),
                   js($5), js($6), (met == "" ? "null" : (met == "met" ? "true" : "false")),
                   js($7), js($8)
        }' "$REC"
        printf '\n  }\n}\n'
    } >"$out.tmp" && mv "$out.tmp" "$out"
}

# row KEY: "value unit" or "n/a", for the summary
row() {
    local v
    v=$(value "$1")
    if [ -n "$v" ]; then
        printf '%s %s' "$v" "$(awk -F'\t' -v k="$1" '$1 == k { print $5 }' "$REC")"
    else
        printf 'n/a'
    fi
}

report_summary() {
    local r row name
    printf '\nIssue 3 figures (goals: faster than rsync, >= 0.9x nbdkit, p99 lag < 1 s)\n'
    printf '  %-44s %s (rsync %s)\n' "initial sync until drained, speed vs rsync" \
        "$(row ours_vs_rsync_initial_sync)" "$(row rsync_full_seconds)"
    printf '  %-44s %s (slowest stage %s)\n' "initial sync vs slowest physical stage" \
        "$(row ours_vs_slowest_stage_initial_sync)" "$(row slowest_stage_mbps)"
    printf '  %-44s %s (one-process demo: %s)\n' "  the same, noded --demo, vs rsync" \
        "$(row ours_demo_vs_rsync_initial_sync)" "$(row ours_demo_initial_sync_seconds)"
    printf '  %-44s %s (nbdkit %s)\n' "nbdcopy into our export vs nbdkit file" \
        "$(row ours_vs_nbdkit_nbdcopy)" "$(row nbdkit_nbdcopy_seconds)"
    for row in $FIO_ROWS; do
        name=${row%%:*}
        printf '  %-44s %s\n' "$(fio_label "$name") vs nbdkit" "$(row "ours_vs_nbdkit_fio_$name")"
    done
    printf '  %-44s %s / %s\n' "lag p50 / p99" "$(row ours_lag_p50_ms)" "$(row ours_lag_p99_ms)"
    printf '  %-44s %s\n' "backlog grows" "$(row ours_backlog_grows)"
    printf '  %-44s %s\n' "noded size, stripped" "$(row ours_noded_bytes)"
    printf '  %-44s %s\n' "noded idle RSS (demo)" "$(row ours_idle_rss_kib)"
    printf '  %-44s %s\n' "replica identical to the source (1 = yes)" "$(row ours_replica_identical)"
    printf '\nIssue 5 lag rows (goals: p99 < 100 ms at 100 MB/s, no backlog growth at 200 MB/s)\n'
    for r in $LAG_RATES; do
        printf '  %-44s rate %s, p50 %s, p99 %s, grows %s\n' "$r MB/s of random writes" \
            "$(row "ours_lag_r${r}_achieved_mbps")" "$(row "ours_lag_r${r}_p50_ms")" \
            "$(row "ours_lag_r${r}_p99_ms")" "$(row "ours_lag_r${r}_backlog_grows")"
    done
    case " $STEPS " in
    *" wan "* | *" resync "*) ;;
    *) return 0 ;;
    esac
    printf '\nIssue 5 two-site rows (1 Gbit/s link: >= 0.8x link x lz4, >= 2.5x rsync and rsync -z;\n'
    printf 'resync of 1 %%: wire <= 1.05x the bytes that differ, >= 3x rsync -B4096)\n'
    goal_line "initial sync over the link" wan_ours_initial_sync_mbps
    goal_line "  vs link rate x lz4 ratio ($(row wan_link_x_lz4_mbps))" wan_ours_vs_link_lz4
    goal_line "  vs rsync over the link ($(row wan_rsync_seconds))" wan_ours_vs_rsync
    goal_line "  vs rsync -z over the link ($(row wan_rsync_z_seconds))" wan_ours_vs_rsync_z
    goal_line "  replica identical (1 = yes)" wan_replica_identical
    goal_line "resync of a 1 % change, until drained" resync_ours_seconds
    goal_line "  wire bytes / bytes that differ" resync_ours_wire_vs_changed
    goal_line "  vs rsync -B4096 ($(row rsync_delta_seconds))" resync_ours_vs_rsync
    goal_line "  replica identical (1 = yes)" resync_replica_identical
}

# goal_line LABEL KEY: one summary line: the figure, its goal and met/missed
goal_line() {
    local goal
    goal=$(awk -F'\t' -v k="$2" '$1 == k { print $6 }' "$REC")
    printf '  %-52s %-16s %-8s %s\n' "$1" "$(row "$2")" "${goal:+goal $goal}" "$(verdict "$2")"
}

# md_table: the record as markdown tables, one per group, in record order
md_table() {
    awk -F'\t' "$VERDICT_AWK"'
    function cell(s) { gsub(/\|/, "\\|", s); return s }
    {
        if (!($2 in seen)) { seen[$2] = 1; order[++n] = $2 }
        lab = $3; ind = ""
        if (lab ~ /^  /) { sub(/^ +/, "", lab); ind = "&nbsp;&nbsp;" }
        v = ($4 == "") ? "n/a" : $4
        met = verdict($4, $6)
        if (met == "missed") met = "**missed**"
        rows[$2] = rows[$2] sprintf("| %s%s | %s | %s | %s | %s | %s |\n", ind, cell(lab), v, cell($5),
                                    cell($6), met, cell($8))
    }
    END {
        for (i = 1; i <= n; i++) {
            printf "\n### %s\n\n| figure | value | unit | goal | | note |\n|---|---:|---|---|---|---|\n%s",
                   order[i], rows[order[i]]
        }
    }' "$REC"
}

report_doc() {
    local out=$1
    {
        cat <<'EOF'
<!-- SPDX-License-Identifier: GPL-2.0-or-later -->
<!-- Generated by tools/bench/run (`make bench`) from the run's figures: edit
     tools/bench/report.sh, not this file. -->
# secondsite performance

`make bench` measures secondsite side by side with what an operator would use
instead, on the same machine, in one run, and writes every figure to
`build/bench.json` and this page. The machines we run on are shared and noisy:
compare the ratios, not the absolute times. Goals come from DESIGN.md
section 7 and issues 3 and 5; they are goals, not test assertions.

## What is measured

All stages work on one test image: a 1 GiB ext4 file system made with
`mkfs.ext4 -d` from files copied from this machine's `/usr/share` (about
40 % of the image) and `/usr/lib` (about 30 %), built once and kept in
`build/bench-data/`; nothing is downloaded. MB is 10^6 bytes.

- **Physical stages** (`tools/bench/diskbench.c`, `tools/bench/linkbench.c`):
  the test image copied to a new file in 1 MiB `pwrite`s, each followed by
  `fdatasync` (with the latency of each `fdatasync`); `LZ4_compress_default`
  on each 1 MiB block, on one core (ratio for the whole image and for the
  non-zero blocks; a block is incompressible when lz4 saves less than 1/8);
  one loopback connection in mutual TLS 1.3 made with the project's
  `rt_tls_ctx_new` (certificates from `nodectl init` and `nodectl cert
  issue`; no cipher list is set, so the suite is wolfSSL's default choice),
  and in plain TCP. The slowest of disk write, lz4 and TLS is the
  ceiling an initial sync is judged against (goal: at least 0.8x of it).
- **rsync**: an rsync daemon on 127.0.0.1 receives the image (plain, and with
  `--fsync`); then 1 % of the image's 4 KiB blocks are overwritten at random
  in a copy and `rsync -I --inplace --no-whole-file -B4096` brings the old
  copy up to date (time, bytes sent, bytes that differ). Each copy is checked
  with `cmp`.
- **nbdkit file**: `nbdkit file` on a scratch image on 127.0.0.1; `nbdcopy
  --flush` of the test image into it (checked with `cmp`), then fio with its
  nbd engine: 4k random writes at queue depth 1 and 16, 1 MiB sequential
  writes at depth 4, each for a fixed time.
- **Agent NBD tap alone**: the same on `build/it-bin/nbdserve` (the agent's
  NBD server with its capture hook, no replication; the run builds it if
  it is missing): what the tap costs before anything ships.
- **secondsite**: deployed as two appliances, two processes on this
  machine (`noded -c secondary.ini`, the master target, and `noded -c
  primary.ini`, the agent and the process server, from the folder of
  `noded --demo DIR --init-only`), linked over loopback mutual TLS, as
  rsync runs one process on each side; one protected disk of the image's
  size. `nbdcopy --flush` of the image into `$NBD_URI_0`, then `nodectl
  wait $PAIR_0 --drained` (every write the agent acknowledged is durable at
  the master target): the initial sync, against rsync and the slowest
  stage, and the nbdcopy alone against nbdkit; the fio rows with
  replication running, against nbdkit, each starting from a drained pair
  (the time to drain again after each row is a row of its own). The lag
  rows run on a pair of their own. Then `noded --demo DIR` (both
  appliances in one process on one loop, the embedded default) gives the
  idle RSS and its own initial sync, to show what one shared loop costs.
  After each run the pair is drained, the nodes stopped, the replica
  rebuilt with `nodectl restore --offline` and compared with the source
  disk with `cmp`: if it differs (or never drained), the figures of that
  run are void and the table says so.
- **Lag** (`tools/bench/lagbench.c`): from a write acknowledged at the agent
  to the moment it is durable at the master target, under sustained random
  writes at fixed rates (64 KiB writes at random aligned offsets, at most
  16 in flight, open loop: write *i* is due at *t0 + i x size / rate*, so a
  slow export shows as a lower achieved rate, which is reported). One
  program, one monotonic clock: its writer timestamps every NBD reply, and
  a sampler thread holds one management session (mutual TLS, like nodectl)
  and asks `pair-show` every 5 ms for `source_seq`, `mt_durable_seq`,
  `backlog_bytes` and `rpo_lag_ms`. The agent numbers writes in the order
  it replies and nothing else writes, so reply *i* is sequence *base + i +
  1* (checked: the sequences the load used must equal the writes). A write
  became durable between the look before the first answer showing
  `mt_durable_seq` past it and that answer: the table gives the upper
  bound (reply to that answer) as the lag, with the lower bound in the note
  and the sampling resolution (look to next answer; it grows when noded's
  loop is busy) as a row. The status field `rpo_lag_ms` is the age of the
  oldest write not yet durable at one instant, not a per-write lag; its p99
  over the looks is shown for comparison. The backlog grows when the mean
  `backlog_bytes` of the last third of the load exceeds that of the first
  third by more than 4 MiB and at more than 2 % of the write rate. The
  pair must stay protected during the load (bitmap mode voids the row).
- **Two sites** (`tools/bench/wan.sh`, needs root): the run creates two
  network namespaces joined by one veth pair with private addresses that
  exist only inside them (10.231.0.1/30 and 10.231.0.2/30), shaped to
  1 Gbit/s with `tc qdisc ... tbf rate 1gbit burst 256kb latency 50ms` on
  both ends (about 119 MB/s of TCP goodput), and removes them at the end
  (and on any exit, from the run's trap); the host's interfaces and
  routes are not touched. The primary appliance runs in one namespace,
  the secondary in the other, the link moved onto the veth; the export
  and nodectl stay on 127.0.0.1 in the primary's namespace. The initial
  sync (`nbdcopy --flush` of the image into the export, then `nodectl
  wait --drained`) is judged against link rate x lz4 ratio of the image
  (goal 0.8x) and against `rsync` and `rsync -z` of the same image to an
  rsync daemon in the secondary's namespace, over the same link (goal
  2.5x faster). Bytes on the wire are the receive counter of the
  secondary's veth (TLS, TCP/IP headers and control messages included);
  the process server's own count of batch bytes it sent is shown beside.
- **Resync after an outage** (`tools/bench/wan.sh`, same two namespaces):
  the image replicated and drained, the secondary appliance is stopped,
  1 % of the image's 4 KiB blocks (`diskbench mutate NEW 0.01 1`, random
  bytes, the same change as the rsync row) are written through the export
  (`lagbench patch`: every block where the changed copy differs, then a
  flush), the secondary is started again, and the time from that start
  until the pair is drained (noded start and link reconnect included) and
  the bytes that reached the secondary over that time are measured:
  goals at most 1.05x the bytes that differ on the wire, and at least 3x
  faster than `rsync -I --inplace --no-whole-file -B4096` of the same
  change on loopback (the rsync row). The replica is rebuilt and compared
  afterwards, as for every run.
- **Footprint**: the static appliance build (`make build/noded-static`,
  the same objects linked with `-static`) and the dynamic `noded`, both
  stripped; the idle RSS of each appliance run as its own process
  (`noded -c primary.ini`, `noded -c secondary.ini` from `noded --demo DIR
  --init-only`), static build.
- **Profile** (full runs): two appliances of their own, so the rows above
  run without a profiler, repeat the initial sync, the fio depth-1 row and
  the lag load at 100 MB/s, each twice: under `perf record --call-graph
  dwarf` attached to both (CPU by thread: each appliance's loop and its
  workers; own CPU time per symbol; noded's functions with everything they
  call, so a system call counts for the function that made it), and under
  `perf trace -s` (time inside each system call of each
  appliance's loop thread, blocked time included; `epoll_wait` is the
  loop's idle time, and includes about 1 s before the work starts).
  Whole reports: `build/bench-log/perf-*`.

## How to reproduce

```
make bench                      # full run, 1 GiB image, 10 s per fio row
BENCH_QUICK=1 tools/bench/run   # smoke run: 64 MiB, 2 s per fio row, one lag rate, no doc
```

Knobs (environment): `BUILD` (build folder, default `build`),
`BENCH_QUICK=1`, `BENCH_SIZE_MIB` (image size), `BENCH_SECONDS` (fio
runtime per row), `BENCH_JSON` (output file, default `$BUILD/bench.json`),
`BENCH_DOC` (this page; `none` to skip), `BENCH_STATIC=0` (skip the static
noded build), `BENCH_LAG_RATES` (MB/s, default `50 100 200`),
`BENCH_LAG_BS`, `BENCH_LAG_DEPTH`, `BENCH_LAG_POLL_MS`, `BENCH_DRAIN_S`
(bound on each wait for drained), `BENCH_STEPS` (a subset of `stages rsync
nbdkit tap ours wan resync footprint profile`; a quick run leaves out `wan`
and `resync` unless they are named, e.g. `BENCH_QUICK=1 BENCH_SIZE_MIB=128
BENCH_STEPS="wan resync" tools/bench/run`), `BENCH_KEEP_PERF=1` (keep the perf
data for `perf report -i` by hand). Logs of the last run, with the lag
samples (`lag-RATE.tsv`) and the perf reports, are in `$BUILD/bench-log/`.
`make bench` measures the wolfSSL the build folder links (`WOLFSSL=hw`, the
default, or `WOLFSSL=system`); the run header says which.

## Last run
EOF
        printf '\n%s, %s, %s CPUs (%s, load average %s at the start), wolfSSL %s; %s; image %s MiB, fio %s s per row%s.\n' \
            "$RUN_DATE" "$(uname -sr)" "$(nproc)" "$CPU_MODEL" "$LOAD_AVG" "${WOLFSSL_VARIANT:-?}" \
            "$(value data_image_files) files" "$IMG_MIB" "$FIO_SECONDS" \
            "$([ "$QUICK" = 1 ] && echo ', quick mode (not representative)')"
        md_table
        cat <<'EOF'

Ratios are "ours / baseline" as speeds: above 1 means secondsite is faster
(the resync's wire ratio is bytes on the wire / bytes that differ: lower is
better). The unnamed column says whether the figure met its goal.
Every figure, with the command that measured it, is in `build/bench.json`.
EOF
        # the reading of a reviewed run, written by hand (dated inside), from
        # its first heading on (its licence comment is this file's already)
        if [ -f "$ROOT/tools/bench/findings.md" ]; then
            printf '\n'
            sed -n '/^## /,$p' "$ROOT/tools/bench/findings.md"
        fi
    } >"$out.tmp" && mv "$out.tmp" "$out"
}
