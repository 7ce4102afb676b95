# SPDX-License-Identifier: GPL-2.0-or-later
#
# ours.sh: the product's rows of the table (sourced by tools/bench/run).
# Each row measures secondsite the same way its baseline was measured, in
# the same run, and records the ratio. The product runs as deployed: the
# folder of `noded --demo DIR --init-only` (site CA, certificates, the two
# appliance configs, one disk of the test image's size), and the two
# appliances as two processes, `noded -c secondary.ini` (master target) and
# `noded -c primary.ini` (agent + process server), linked over loopback
# mutual TLS, as rsync runs a process on each side. step_ours:
#   run 1: the initial sync: nbdcopy of the test image into the export
#     ($NBD_URI_0), then `nodectl wait $PAIR_0 --drained` (every write the
#     agent acknowledged is durable at the master target): time against
#     rsync and against the slowest physical stage, and nbdcopy alone
#     against nbdkit; then the fio rows with replication running, against
#     nbdkit, each followed by the time until the pair is drained again (so
#     every row starts from a drained, protected pair);
#   run 2: lag from a write acknowledged at the agent to durable at the
#     master target (p50, p99) and backlog growth under sustained random
#     writes at each rate of $LAG_RATES (bench-bin/lagbench: its header has
#     the method); a run of its own, so that a stall in run 1 does not take
#     the lag rows with it (the stall is a row of its own);
#   run 3: `noded --demo DIR`, both appliances in one process on one loop
#     (the embedded default a new user starts): its idle RSS and its initial
#     sync, to show what sharing one loop (one core) costs.
# After each run the pair is drained, the nodes stopped, the replica rebuilt
# offline (nodectl restore --offline) and compared with the source disk: the
# figures of a replica that differs, or of a pair that never drained, are
# void, and ours_replica_identical says 0.
# step_footprint: noded's stripped size (the static appliance build,
# `make $BUILD/noded-static`, and the dynamic one) and the idle RSS of each
# appliance alone (static build). Profiles are in profile.sh. While noded
# cannot do something, its rows say "n/a (...)" and the run goes on.

NOT_BUILT="n/a (not built yet"

# the rate whose lag and backlog are the headline figures (issue 3)
lag_head() {
    case " $LAG_RATES " in
    *" 100 "*) echo 100 ;;
    *) echo "${LAG_RATES%% *}" ;;
    esac
}

# ours_na REASON: every row of the demo run says REASON
ours_na() {
    local g="secondsite" why=$1
    na ours_idle_rss_kib "$g" "noded idle RSS (demo: both appliances, one process)" KiB \
        "<= 16384" "$why"
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
    lag_na "$why"
    na ours_replica_identical "$g" "replica identical to the source after the run" bool "1" "$why"
}

# lag_na REASON: the headline lag rows say REASON (unless measured)
lag_na() {
    local g="secondsite" h
    h=$(lag_head)
    na ours_lag_p50_ms "$g" "lag, write acked -> durable at master target, p50 ($h MB/s)" ms "" \
        "$1"
    na ours_lag_p99_ms "$g" "lag, write acked -> durable at master target, p99 ($h MB/s)" ms \
        "< 1000" "$1"
    na ours_backlog_grows "$g" "backlog grows under the load ($h MB/s)" bool "0" "$1"
}

# demo_start DIR SIZE [one]: write a demo folder and start its nodes: the
# two appliances as two processes, or with "one" `noded --demo DIR` (both in
# one process); wait until the export serves. Sources DIR/demo.env; sets
# DEMO_PIDS (the primary, or the one process, first) and DEMO_PID (that
# first one). @return 1 with OURS_WHY set.
demo_start() {
    local dir=$1 size=$2 mode=${3:-apart} out name
    name=$(basename "$dir")
    DEMO_PIDS=
    DEMO_PID=
    if [ ! -x "$NODED" ]; then
        OURS_WHY="$NOT_BUILT: no $NODED)"
        return 1
    fi
    if ! out=$(timeout 60 "$NODED" --demo "$dir" --disk-size "$size" --init-only 2>&1) ||
        [ ! -f "$dir/demo.env" ]; then
        OURS_WHY="failed: noded --demo --init-only: $(printf '%s\n' "$out" | head -n 1)"
        return 1
    fi
    # shellcheck disable=SC1091
    . "$dir/demo.env"
    export NODECTL_CONF
    # BENCH_PS_CACHE=spool|relay: the process server's [ps] cache (default:
    # the product's, auto, which is relay beside the agent)
    if [ -n "${BENCH_PS_CACHE:-}" ] && ! grep -q '^cache = ' "$PRIMARY_CONF"; then
        sed -i "/^\[ps\]\$/a cache = $BENCH_PS_CACHE" "$PRIMARY_CONF"
    fi
    if [ "$mode" = one ]; then
        bg "$LOG/noded-$name.log" "$NODED" --demo "$dir"
        DEMO_PIDS=$BG_PID
    else
        bg "$LOG/noded-$name-secondary.log" "$NODED" -c "$SECONDARY_CONF"
        DEMO_PIDS=$BG_PID
        bg "$LOG/noded-$name-primary.log" "$NODED" -c "$PRIMARY_CONF"
        DEMO_PIDS="$BG_PID $DEMO_PIDS"
    fi
    DEMO_PID=${DEMO_PIDS%% *}
    rm -f "$TMP/stuck"
    if [ -z "${NBD_URI_0:-}" ] || [ -z "${PAIR_0:-}" ] || ! wait_nbd "$NBD_URI_0" 30; then
        OURS_WHY="failed: the export ${NBD_URI_0:-(no NBD_URI_0)} did not serve in 30 s: $(cat "$LOG"/noded-"$name"*.log | tail -n 1)"
        demo_stop
        return 1
    fi
    return 0
}

# demo_stop: stop the nodes of demo_start (SIGTERM, then SIGKILL)
demo_stop() {
    local p
    for p in $DEMO_PIDS; do
        stop "$p"
    done
    DEMO_PIDS=
}

# rss_kib PID: VmRSS of PID in KiB
rss_kib() { sed -n 's/^VmRSS:[[:space:]]*\([0-9]*\) kB$/\1/p' "/proc/$1/status" 2>/dev/null; }

# settle WHAT: wait (bounded by $SETTLE_S) until $PAIR_0 is
# protected and drained; prints the seconds it took. @return 1 if it was
# not. A pair that did not drain once is stuck: later waits on the same demo
# are short (5 s), so that a stall costs the run one bound, not one at every
# row; the pair's status at the first failure is kept in bench-log/stuck-*.json.
settle() {
    local t0 log=$LOG/settle.log bound=$SETTLE_S
    [ -f "$TMP/stuck" ] && bound=5
    t0=$(now)
    printf '== %s\n' "$1" >>"$log"
    if timeout $((bound + 20)) "$CTL" wait "$PAIR_0" --state protected --timeout "$bound" \
        >>"$log" 2>&1 &&
        timeout $((bound + 20)) "$CTL" wait "$PAIR_0" --drained --timeout "$bound" \
            >>"$log" 2>&1; then
        since "$t0"
        return 0
    fi
    if [ ! -f "$TMP/stuck" ]; then
        : >"$TMP/stuck"
        timeout 20 "$CTL" --json status >"$LOG/stuck-$(basename "$(dirname "$NODECTL_CONF")").json" 2>&1
    fi
    return 1
}

# after each fio row on our export: how long until every write of the row
# is durable at the master target (so the next row starts drained)
ours_after_fio() {
    local name=$1 secs
    if secs=$(settle "after fio $name"); then
        record "ours_fio_${name}_drain_seconds" "secondsite" "  drained again after the row" \
            "$secs" s "" "nodectl wait \$PAIR_0 --drained" ""
    else
        na "ours_fio_${name}_drain_seconds" "secondsite" "  drained again after the row" s "" \
            "failed: not drained: $(tail -n 1 "$LOG/settle.log")"
    fi
}

# ours_lag: lagbench at every rate of $LAG_RATES against the demo's export
ours_lag() {
    local g="secondsite lag" r hp exp out goal99 grows note h err
    h=$(lag_head)
    hp=${NBD_URI_0#nbd://}
    exp=${hp#*/}
    hp=${hp%%/*}
    group "secondsite: lag from a write acked at the agent to durable at the master target"
    say "  (random ${LAG_BS}-byte writes at a fixed rate, depth $LAG_DEPTH, ${LAG_SECONDS}s per rate; pair-show every ${LAG_POLL_MS} ms)"
    for r in $LAG_RATES; do
        goal99=""
        [ "$r" = 100 ] && goal99="< 100"
        if ! settle "before lag $r" >/dev/null; then
            err="failed: the pair was not drained before the load: $(tail -n 1 "$LOG/settle.log")"
            na "ours_lag_r${r}_p99_ms" "$g" "$r MB/s: lag p99" ms "$goal99" "$err"
            continue
        fi
        if ! out=$(timeout $((LAG_SECONDS * 3 + SETTLE_S + 200)) "$BIN/lagbench" run --nbd "$hp" \
            --export "$exp" --conf "$NODECTL_CONF" --pair "$PAIR_0" --rate "$r" \
            --seconds "$LAG_SECONDS" --bs "$LAG_BS" --depth "$LAG_DEPTH" \
            --poll-ms "$LAG_POLL_MS" --drain-s "$SETTLE_S" --trace "$LOG/lag-$r.tsv" \
            2>"$LOG/lag-$r.err"); then
            err="failed: lagbench: $(tail -n 1 "$LOG/lag-$r.err")"
            na "ours_lag_r${r}_p99_ms" "$g" "$r MB/s: lag p99" ms "$goal99" "$err"
            if grep -q 'bitmap mode' "$LOG/lag-$r.err"; then
                # the log overflowed: the backlog outgrew [agent] log_max
                record "ours_lag_r${r}_backlog_grows" "$g" "  backlog grows" 1 bool "0" \
                    "lagbench" "the agent's log overflowed into bitmap mode under the load"
            fi
            continue
        fi
        printf '%s\n' "$out" >"$LOG/lag-$r.out"
        note=""
        [ "$(kv sustained "$out")" = 1 ] ||
            note="the export took only $(kv achieved_mbps "$out") MB/s: figures are for that rate"
        record "ours_lag_r${r}_achieved_mbps" "$g" "$r MB/s: write rate the export took" \
            "$(kv achieved_mbps "$out")" MB/s ">= $r" \
            "lagbench run --rate $r --bs $LAG_BS --depth $LAG_DEPTH --seconds $LAG_SECONDS" "$note"
        record "ours_lag_r${r}_p50_ms" "$g" "  lag p50" "$(kv lag_p50_ms "$out")" ms "" \
            "lagbench (upper bound)" \
            "lower bound $(kv lag_lo_p50_ms "$out") ms; $(kv writes "$out") writes"
        record "ours_lag_r${r}_p99_ms" "$g" "  lag p99" "$(kv lag_p99_ms "$out")" ms "$goal99" \
            "lagbench (upper bound)" \
            "lower bound $(kv lag_lo_p99_ms "$out") ms; max $(kv lag_max_ms "$out") ms"
        record "ours_lag_r${r}_resolution_ms" "$g" "  sampling resolution (look to next answer)" \
            "$(kv resolution_ms "$out")" ms "" "lagbench" \
            "$(kv samples "$out") looks at pair-show"
        record "ours_lag_r${r}_status_rpo_p99_ms" "$g" "  status rpo_lag_ms p99 (oldest write, per look)" \
            "$(kv status_rpo_p99_ms "$out")" ms "" "nodectl status field rpo_lag_ms" \
            "p50 $(kv status_rpo_p50_ms "$out") ms"
        grows=$(kv backlog_grows "$out")
        record "ours_lag_r${r}_backlog_grows" "$g" "  backlog grows" "$grows" bool "0" "lagbench" \
            "backlog $(kv backlog_first_mib "$out") MiB (first third) -> $(kv backlog_last_mib "$out") MiB (last third), max $(kv backlog_max_mib "$out") MiB, $(kv backlog_slope_mbps "$out") MB/s"
        record "ours_lag_r${r}_drain_seconds" "$g" "  drained after the load" \
            "$(calc "$(kv drain_ms "$out") / 1000" 3)" s "" "lagbench" ""
    done
    r=$h
    if [ -z "$(value "ours_lag_r${r}_p99_ms")" ]; then
        lag_na "n/a (the lag run at $r MB/s failed: see the lag group and bench-log/lag-$r.err)"
        return 0
    fi
    record ours_lag_p50_ms "secondsite" "lag, write acked -> durable at master target, p50 ($r MB/s)" \
        "$(value "ours_lag_r${r}_p50_ms")" ms "" "lagbench --rate $r" "upper bound; see the lag group"
    record ours_lag_p99_ms "secondsite" "lag, write acked -> durable at master target, p99 ($r MB/s)" \
        "$(value "ours_lag_r${r}_p99_ms")" ms "< 1000" "lagbench --rate $r" "upper bound; see the lag group"
    record ours_backlog_grows "secondsite" "backlog grows under the load ($r MB/s)" \
        "$(value "ours_lag_r${r}_backlog_grows")" bool "0" "lagbench --rate $r" \
        "$(awk -F'\t' -v k="ours_lag_r${r}_achieved_mbps" '$1 == k { print $8 }' "$REC")"
}

# replica_check KEY LABEL [GROUP]: drain, stop the demo, rebuild the replica
# offline and compare it with the source disk; records KEY (1 identical, 0
# not, or not drained) in GROUP (default secondsite)
replica_check() {
    local g=${3:-secondsite} key=$1 label=$2
    if ! settle "before the replica check" >/dev/null; then
        demo_stop
        record "$key" "$g" "$label" 0 bool "1" "nodectl wait --drained" \
            "the pair did not drain: figures void ($(tail -n 1 "$LOG/settle.log"))"
        return 0
    fi
    demo_stop
    if [ -z "${MT_DIR:-}" ] || [ -z "${SOURCE_0:-}" ]; then
        na "$key" "$g" "$label" bool "1" "n/a (demo.env has no MT_DIR or SOURCE_0)"
    elif timeout 600 "$CTL" restore --offline "$MT_DIR" --pair "$PAIR_0" --point latest \
        --out "$TMP/replica.img" >"$LOG/restore.log" 2>&1; then
        if cmp -s "$SOURCE_0" "$TMP/replica.img"; then
            record "$key" "$g" "$label" 1 bool "1" "nodectl restore --offline ... && cmp" ""
        else
            record "$key" "$g" "$label" 0 bool "1" "nodectl restore --offline ... && cmp" \
                "the replica DIFFERS: figures void ($(cmp "$SOURCE_0" "$TMP/replica.img" 2>&1 | head -n 1))"
        fi
    else
        record "$key" "$g" "$label" 0 bool "1" "nodectl restore --offline" \
            "restore failed: $(tail -n 1 "$LOG/restore.log")"
    fi
    rm -f "$TMP/replica.img"
}

# initial_sync PREFIX: nbdcopy of the test image into $NBD_URI_0, then
# nodectl wait --drained: PREFIX_initial_sync_seconds, _mbps, the ratios vs
# rsync and the slowest stage, PREFIX_nbdcopy_seconds. @return 1 if nbdcopy
# failed.
initial_sync() {
    local pre=$1 g="secondsite" t0 tcopy tall
    [ "$pre" = ours ] || g="secondsite one-process demo"
    warm "$IMG"
    t0=$(now)
    if ! timeout "$DRAIN_S" nbdcopy --flush "$IMG" "$NBD_URI_0" 2>"$LOG/nbdcopy-$pre.err"; then
        na "${pre}_initial_sync_seconds" "$g" "initial sync of the test image until drained" s \
            "" "failed: nbdcopy into $NBD_URI_0: $(head -n 1 "$LOG/nbdcopy-$pre.err")"
        return 1
    fi
    tcopy=$(since "$t0")
    if timeout $((DRAIN_S + 20)) "$CTL" wait "$PAIR_0" --drained --timeout "$DRAIN_S" \
        >"$LOG/wait-drained-$pre.log" 2>&1; then
        tall=$(since "$t0")
        record "${pre}_initial_sync_seconds" "$g" "initial sync of the test image until drained" \
            "$tall" s "" "nbdcopy --flush IMG \$NBD_URI_0 && nodectl wait \$PAIR_0 --drained" ""
        record "${pre}_initial_sync_mbps" "$g" "  initial sync throughput" \
            "$(calc "$IMG_BYTES / 1e6 / $tall" 1)" MB/s "" "" ""
    else
        : >"$TMP/stuck"
        na "${pre}_initial_sync_seconds" "$g" "initial sync of the test image until drained" s "" \
            "failed: nodectl wait --drained: $(tail -n 1 "$LOG/wait-drained-$pre.log")"
    fi
    ratio "${pre}_vs_rsync_initial_sync" "$g" "  ratio vs rsync (speed)" ">= 1" \
        rsync_full_seconds "${pre}_initial_sync_seconds"
    ratio "${pre}_vs_slowest_stage_initial_sync" "$g" "  ratio vs slowest physical stage" ">= 0.8" \
        "${pre}_initial_sync_mbps" slowest_stage_mbps
    record "${pre}_nbdcopy_seconds" "$g" "nbdcopy of the test image (replicating)" "$tcopy" s "" \
        "nbdcopy --flush IMG \$NBD_URI_0" ""
    ratio "${pre}_vs_nbdkit_nbdcopy" "$g" "  ratio vs nbdkit (speed)" ">= 0.9" \
        nbdkit_nbdcopy_seconds "${pre}_nbdcopy_seconds"
    return 0
}

step_ours() {
    local g="secondsite" rss v1 v2 v3
    group "secondsite: the two appliances as two processes (noded -c), one disk of the test image's size"
    OURS_WHY=
    if ! demo_start "$TMP/run1" "${IMG_MIB}M"; then
        ours_na "$OURS_WHY"
        rm -rf "$TMP/run1"
        return 0
    fi
    # a fresh pair first syncs its empty disk: start from a protected pair
    settle "fresh pair" >/dev/null ||
        say "  (the fresh pair was not protected and drained: $(tail -n 1 "$LOG/settle.log"))"
    if initial_sync ours; then
        settle "after the initial sync" >/dev/null
        fio_rows ours "$g" "$NBD_URI_0" nbdkit ours_after_fio
    else
        ours_na "$(awk -F'\t' '$1 == "ours_initial_sync_seconds" { print $8 }' "$REC")"
    fi
    replica_check ours_replica_identical_sync "  replica identical after the sync and fio rows"
    rm -rf "$TMP/run1"

    if demo_start "$TMP/run2" "${IMG_MIB}M"; then
        ours_lag
        replica_check ours_replica_identical_lag "  replica identical after the lag rows"
    else
        lag_na "$OURS_WHY"
    fi
    rm -rf "$TMP/run2"

    group "secondsite one-process demo: noded --demo (both appliances on one loop)"
    if demo_start "$TMP/run3" "${IMG_MIB}M" one; then
        settle "fresh demo" >/dev/null
        sleep "$IDLE_SECONDS"
        rss=$(rss_kib "$DEMO_PID")
        record ours_idle_rss_kib "secondsite one-process demo" \
            "noded idle RSS (demo: both appliances, one process)" "$rss" KiB "<= 16384" \
            "VmRSS in /proc/PID/status, protected and idle for ${IDLE_SECONDS}s" \
            "$(basename "$NODED") (dynamic)"
        initial_sync ours_demo
        replica_check ours_replica_identical_demo "  replica identical after the demo's sync"
    else
        na ours_idle_rss_kib "secondsite one-process demo" \
            "noded idle RSS (demo: both appliances, one process)" KiB "<= 16384" "$OURS_WHY"
    fi
    rm -rf "$TMP/run3"

    # figures of a replica that is wrong are worth nothing
    group "secondsite: the replicas after the runs"
    v1=$(value ours_replica_identical_sync)
    v2=$(value ours_replica_identical_lag)
    v3=$(value ours_replica_identical_demo)
    if [ "$v1" = 1 ] && [ "$v2" = 1 ] && [ "$v3" = 1 ]; then
        record ours_replica_identical "$g" "replica identical to the source after the run" 1 bool \
            "1" "every run: nodectl restore --offline ... && cmp" ""
    else
        record ours_replica_identical "$g" "replica identical to the source after the run" 0 bool \
            "1" "every run: nodectl restore --offline ... && cmp" \
            "sync and fio: ${v1:-n/a}, lag: ${v2:-n/a}, one-process demo: ${v3:-n/a}: the figures of a run with 0 are void"
    fi
}

# apart_rss BIN KIND: idle RSS of each appliance run as its own process (the
# static appliance build when there is one)
apart_rss() {
    local g="secondsite" dir=$TMP/apart bin=$1 kind=$2 p1 p2 out
    if ! out=$(timeout 60 "$NODED" --demo "$dir" --disk-size 64M --init-only 2>&1); then
        na ours_idle_rss_primary_kib "$g" "idle RSS, primary appliance alone (agent + ps)" KiB \
            "<= 16384" "failed: noded --demo --init-only: $(printf '%s' "$out" | head -n 1)"
        return 0
    fi
    (
        # shellcheck disable=SC1091
        . "$dir/demo.env"
        printf '%s %s %s\n' "$NBD_URI_0" "$PAIR_0" "$NODECTL_CONF"
    ) >"$TMP/apart.env"
    bg "$LOG/noded-secondary.log" "$bin" -c "$dir/secondary.ini"
    p2=$BG_PID
    bg "$LOG/noded-primary.log" "$bin" -c "$dir/primary.ini"
    p1=$BG_PID
    local uri pair conf
    read -r uri pair conf <"$TMP/apart.env"
    if wait_nbd "$uri" 30 && NODECTL_CONF=$conf timeout 60 "$CTL" wait "$pair" --drained \
        --timeout 50 >"$LOG/apart-wait.log" 2>&1; then
        sleep "$IDLE_SECONDS"
        record ours_idle_rss_primary_kib "$g" "idle RSS, primary appliance alone (agent + ps)" \
            "$(rss_kib "$p1")" KiB "<= 16384" "noded -c primary.ini; VmRSS" "$kind build"
        record ours_idle_rss_secondary_kib "$g" "idle RSS, secondary appliance alone (mt)" \
            "$(rss_kib "$p2")" KiB "<= 16384" "noded -c secondary.ini; VmRSS" "$kind build"
    else
        na ours_idle_rss_primary_kib "$g" "idle RSS, primary appliance alone (agent + ps)" KiB \
            "<= 16384" "failed: the appliances apart did not protect the pair: $(tail -n 1 "$LOG/apart-wait.log")"
    fi
    stop "$p1"
    stop "$p2"
    rm -rf "$dir" "$TMP/apart.env"
}

# step_footprint: noded's size, stripped (static appliance build and
# dynamic), and the idle RSS of each appliance apart
step_footprint() {
    local g="secondsite" st=$BUILD/noded-static bin kind
    group "secondsite: footprint"
    if [ ! -x "$NODED" ]; then
        na ours_noded_bytes "$g" "noded binary size, stripped" bytes "<= 3145728" \
            "$NOT_BUILT: no $NODED)"
        return 0
    fi
    bin=$NODED
    kind=dynamic
    if [ "$BENCH_STATIC" = 1 ]; then
        if build_in_tree "$st" >"$LOG/static.log" 2>&1 && [ -x "$st" ]; then
            bin=$st
            kind=static
        else
            say "  (make $st failed: $(grep -m 1 -i error "$LOG/static.log"); measuring the dynamic noded)"
        fi
    fi
    strip -o "$TMP/noded.stripped" "$bin" 2>"$LOG/strip.err" || cp "$bin" "$TMP/noded.stripped"
    record ours_noded_bytes "$g" "noded binary size, stripped ($kind)" \
        "$(stat -c %s "$TMP/noded.stripped")" bytes "<= 3145728" "strip -o OUT $bin" \
        "$kind build, wolfSSL $WOLFSSL_VARIANT"
    strip -o "$TMP/noded.stripped" "$NODED" 2>>"$LOG/strip.err" || cp "$NODED" "$TMP/noded.stripped"
    record ours_noded_dynamic_bytes "$g" "  the dynamic noded, stripped" \
        "$(stat -c %s "$TMP/noded.stripped")" bytes "" "strip -o OUT $NODED" \
        "shared libraries not counted"
    rm -f "$TMP/noded.stripped"
    apart_rss "$bin" "$kind"
}
