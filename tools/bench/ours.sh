# SPDX-License-Identifier: GPL-2.0-or-later
#
# ours.sh: the product's slots in the table (sourced by tools/bench/run).
# Each slot measures secondsite the same way its baseline was measured, in
# the same run, and records the ratio; while noded cannot do it yet the slot
# says "n/a (not built yet: ...)" and the run goes on. The slots:
#   - idle RSS of a demo (VmRSS of noded once it has served for a while);
#   - initial sync: nbdcopy of the test image into the demo's export
#     ($NBD_URI_0), then `nodectl wait $PAIR_0 --drained`: time against rsync
#     and against the slowest physical stage; nbdcopy alone against nbdkit;
#   - the fio rows against the export with replication running, against nbdkit;
#   - lag from write acknowledged at the agent to durable at the master
#     target (p50, p99) under sustained random writes: a stub until
#     `nodectl status --json` reports lag (see ours_lag);
#   - noded's size (stripped; static if `make STATIC=1` links, else dynamic);
#   - at the end, the replica rebuilt offline (nodectl restore --offline) is
#     compared with the source disk: figures of a wrong replica are void.
# The demo runs in $TMP/demo with one disk of the test image's size.

NOT_BUILT="n/a (not built yet"

# ours_na REASON: every slot of the demo run says REASON
ours_na() {
    local g="secondsite" why=$1
    na ours_idle_rss_kib "$g" "noded idle RSS (demo)" KiB "<= 16384" "$why"
    na ours_initial_sync_seconds "$g" "initial sync of the test image until drained" s "" "$why"
    na ours_vs_rsync_initial_sync "$g" "  ratio vs rsync (speed)" x ">= 1" "$why"
    na ours_vs_slowest_stage_initial_sync "$g" "  ratio vs slowest physical stage" x ">= 0.8" "$why"
    na ours_nbdcopy_seconds "$g" "nbdcopy of the test image (replicating)" s "" "$why"
    na ours_vs_nbdkit_nbdcopy "$g" "  ratio vs nbdkit (speed)" x ">= 0.9" "$why"
    local row name rest
    for row in $FIO_ROWS; do
        name=${row%%:*}
        rest=${row#*:}
        case $rest in
        write:*) na "ours_fio_${name}_mbps" "$g" "$(fio_label "$name")" MB/s "" "$why" ;;
        *) na "ours_fio_${name}_iops" "$g" "$(fio_label "$name")" IOPS "" "$why" ;;
        esac
        na "ours_vs_nbdkit_fio_${name}" "$g" "  ratio vs nbdkit" x ">= 0.9" "$why"
    done
    na ours_lag_p50_ms "$g" "lag, write acked -> durable at master target, p50" ms "" "$why"
    na ours_lag_p99_ms "$g" "lag, write acked -> durable at master target, p99" ms "< 1000" "$why"
    na ours_backlog_grows "$g" "backlog grows under the load" bool "0" "$why"
    na ours_resync_1pct_seconds "$g" "resync of a 1 % block change" s "" "$why"
    na ours_replica_identical "$g" "replica identical to the source after the run" bool "1" "$why"
}

# demo_start DIR SIZE: start `noded --demo` and wait until its export serves;
# sets DEMO_PID and sources DIR/demo.env. @return 1 with OURS_WHY set.
demo_start() {
    local dir=$1 size=$2 out
    if [ ! -x "$NODED" ]; then
        OURS_WHY="$NOT_BUILT: no $NODED)"
        return 1
    fi
    if ! out=$(timeout 60 "$NODED" --demo "$dir" --disk-size "$size" --init-only 2>&1) ||
        printf '%s' "$out" | grep -qi 'not built yet' || [ ! -f "$dir/demo.env" ]; then
        OURS_WHY="$NOT_BUILT: noded --demo --init-only: $(printf '%s\n' "$out" | head -n 1))"
        return 1
    fi
    # shellcheck disable=SC1091
    . "$dir/demo.env"
    export NODECTL_CONF
    bg "$LOG/noded.log" "$NODED" --demo "$dir" --disk-size "$size"
    DEMO_PID=$BG_PID
    if [ -z "${NBD_URI_0:-}" ] || [ -z "${PAIR_0:-}" ] || ! wait_nbd "$NBD_URI_0" 30; then
        OURS_WHY="$NOT_BUILT: the demo's export ${NBD_URI_0:-(no NBD_URI_0)} did not serve in 30 s: $(tail -n 1 "$LOG/noded.log"))"
        stop "$DEMO_PID"
        return 1
    fi
    return 0
}

# rss_kib PID: VmRSS of PID in KiB
rss_kib() { sed -n 's/^VmRSS:[[:space:]]*\([0-9]*\) kB$/\1/p' "/proc/$1/status" 2>/dev/null; }

# ours_lag: lag from acked at the agent to durable at the master target under
# sustained random writes. Stub: nodectl status --json has no lag figures yet.
# Once it has them, run fio (randwrite, --rate=100m, $FIO_SECONDS) against
# $NBD_URI_0 and sample `nodectl --json status` every 0.5 s: p50/p99 of the
# pair's lag, and whether its backlog grows from the first to the last third.
ours_lag() {
    local g="secondsite"
    na ours_lag_p50_ms "$g" "lag, write acked -> durable at master target, p50" ms "" \
        "$NOT_BUILT: nodectl status --json has no lag figures)"
    na ours_lag_p99_ms "$g" "lag, write acked -> durable at master target, p99" ms "< 1000" \
        "$NOT_BUILT: nodectl status --json has no lag figures)"
    na ours_backlog_grows "$g" "backlog grows under the load" bool "0" \
        "$NOT_BUILT: nodectl status --json has no backlog figures)"
}

step_ours() {
    local g="secondsite" dir=$TMP/demo t0 tcopy tall rss
    group "secondsite: noded --demo, one disk of the test image's size"
    OURS_WHY=
    if ! demo_start "$dir" "${IMG_MIB}M"; then
        ours_na "$OURS_WHY"
        rm -rf "$dir"
        return 0
    fi
    sleep "$IDLE_SECONDS"
    rss=$(rss_kib "$DEMO_PID")
    record ours_idle_rss_kib "$g" "noded idle RSS (demo)" "$rss" KiB "<= 16384" \
        "VmRSS in /proc/PID/status, ${IDLE_SECONDS}s after start" ""

    # a fresh demo may first sync its empty disk: start from a protected pair
    timeout 120 "$CTL" wait "$PAIR_0" --state protected --timeout 100 >"$LOG/wait-protected.log" 2>&1 ||
        say "  (nodectl wait --state protected failed: $(tail -n 1 "$LOG/wait-protected.log"))"
    warm "$IMG"
    t0=$(now)
    if ! timeout 600 nbdcopy --flush "$IMG" "$NBD_URI_0" 2>"$LOG/nbdcopy-ours.err"; then
        ours_na "failed: nbdcopy into $NBD_URI_0: $(head -n 1 "$LOG/nbdcopy-ours.err")"
        stop "$DEMO_PID"
        rm -rf "$dir"
        return 0
    fi
    tcopy=$(since "$t0")
    if timeout 900 "$CTL" wait "$PAIR_0" --drained --timeout 880 >"$LOG/wait-drained.log" 2>&1; then
        tall=$(since "$t0")
        record ours_initial_sync_seconds "$g" "initial sync of the test image until drained" \
            "$tall" s "" "nbdcopy --flush IMG \$NBD_URI_0 && nodectl wait \$PAIR_0 --drained" ""
        record ours_initial_sync_mbps "$g" "  initial sync throughput" \
            "$(calc "$IMG_BYTES / 1e6 / $tall" 1)" MB/s "" "" ""
    else
        na ours_initial_sync_seconds "$g" "initial sync of the test image until drained" s "" \
            "failed: nodectl wait --drained: $(tail -n 1 "$LOG/wait-drained.log")"
    fi
    ratio ours_vs_rsync_initial_sync "$g" "  ratio vs rsync (speed)" ">= 1" \
        rsync_full_seconds ours_initial_sync_seconds
    ratio ours_vs_slowest_stage_initial_sync "$g" "  ratio vs slowest physical stage" ">= 0.8" \
        ours_initial_sync_mbps slowest_stage_mbps
    record ours_nbdcopy_seconds "$g" "nbdcopy of the test image (replicating)" "$tcopy" s "" \
        "nbdcopy --flush IMG \$NBD_URI_0" ""
    ratio ours_vs_nbdkit_nbdcopy "$g" "  ratio vs nbdkit (speed)" ">= 0.9" \
        nbdkit_nbdcopy_seconds ours_nbdcopy_seconds

    fio_rows ours "$g" "$NBD_URI_0" nbdkit
    ours_lag
    na ours_resync_1pct_seconds "$g" "resync of a 1 % block change" s "" \
        "$NOT_BUILT: issue 5)"

    # figures of a replica that is wrong are worth nothing: drain, stop,
    # rebuild the replica offline and compare it with the source disk
    timeout 300 "$CTL" wait "$PAIR_0" --drained --timeout 280 >>"$LOG/wait-drained.log" 2>&1
    stop "$DEMO_PID"
    if [ -z "${MT_DIR:-}" ] || [ -z "${SOURCE_0:-}" ]; then
        na ours_replica_identical "$g" "replica identical to the source after the run" bool "1" \
            "n/a (demo.env has no MT_DIR or SOURCE_0)"
    elif timeout 600 "$CTL" restore --offline "$MT_DIR" --pair "$PAIR_0" --point latest \
        --out "$TMP/replica.img" >"$LOG/restore.log" 2>&1; then
        if cmp -s "$SOURCE_0" "$TMP/replica.img"; then
            record ours_replica_identical "$g" "replica identical to the source after the run" 1 \
                bool "1" "nodectl restore --offline ... && cmp" ""
        else
            record ours_replica_identical "$g" "replica identical to the source after the run" 0 \
                bool "1" "nodectl restore --offline ... && cmp" "the replica DIFFERS: figures void"
        fi
    else
        na ours_replica_identical "$g" "replica identical to the source after the run" bool "1" \
            "$NOT_BUILT: nodectl restore --offline: $(tail -n 1 "$LOG/restore.log"))"
    fi
    rm -rf "$dir" "$TMP/replica.img"
}

# step_footprint: noded's size, stripped; static when `make STATIC=1` links it
step_footprint() {
    local g="secondsite" sbuild=$BUILD/bench-static bin kind
    group "secondsite: footprint"
    if [ ! -x "$NODED" ]; then
        na ours_noded_bytes "$g" "noded binary size, stripped" bytes "<= 3145728" \
            "$NOT_BUILT: no $NODED)"
        return 0
    fi
    bin=$NODED
    kind=dynamic
    if [ "$BENCH_STATIC" = 1 ]; then
        say "  (building a static noded in $sbuild: make STATIC=1)"
        if timeout 900 make --no-print-directory BUILD="$sbuild" STATIC=1 "$sbuild/noded" \
            >"$LOG/static.log" 2>&1; then
            bin=$sbuild/noded
            kind=static
        else
            say "  (make STATIC=1 failed: $(grep -m 1 -i error "$LOG/static.log"); using the dynamic one)"
        fi
    fi
    strip -o "$TMP/noded.stripped" "$bin" 2>"$LOG/strip.err" || cp "$bin" "$TMP/noded.stripped"
    record ours_noded_bytes "$g" "noded binary size, stripped ($kind)" \
        "$(stat -c %s "$TMP/noded.stripped")" bytes "<= 3145728" "strip -o OUT $bin" \
        "$kind build"
    rm -f "$TMP/noded.stripped"
}
