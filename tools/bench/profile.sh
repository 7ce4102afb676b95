# SPDX-License-Identifier: GPL-2.0-or-later
#
# profile.sh: where the time goes (sourced by tools/bench/run; the step
# "profile", in full runs). The measured rows of ours.sh run without a
# profiler; this step starts the two appliances of its own and repeats the
# work of three of them with perf attached to both:
#   - sync: nbdcopy of the test image into the export until drained;
#   - fio_qd1: fio 4k random writes at depth 1 (the cost per request);
#   - lag: lagbench at the headline rate (a sustained replicated load).
# Each runs twice: under `perf record --call-graph dwarf` (on-CPU samples
# of every thread, with user stacks unwound, so the time of a system call
# counts for the function of ours that made it), then under `perf trace -s`
# (time inside each system call of each appliance's event loop thread, which also
# shows time blocked off the CPU, e.g. in fdatasync, and the loop's idle
# time in epoll_wait). They run apart because tracing every system call
# would swamp the samples. The table gets the CPU of each thread (each
# appliance's loop and its workers), the top symbols by own CPU time,
# noded's functions by time including what they call, and the loop's
# system calls by time, with each pass's wall time; the whole reports are
# in bench-log/perf-PHASE.* (with the perf data too when BENCH_KEEP_PERF=1,
# for perf report by hand). Figures measured under a profiler are slower
# than the rows above: only the shares matter here.

PROF_HZ=${BENCH_PROF_HZ:-199}

# prof_start PHASE TOOL: perf record (TOOL record) or perf trace -s (TOOL
# trace) attached to both appliances ($DEMO_PIDS)
prof_start() {
    if [ "$2" = record ]; then
        bg "$LOG/perf-$1.record.log" perf record -F "$PROF_HZ" --call-graph dwarf,8192 \
            -p "$(printf '%s' "$DEMO_PIDS" | tr ' ' ,)" -o "$TMP/perf-$1.data"
    else
        bg "$LOG/perf-$1.trace.log" perf trace -s -p "$(printf '%s' "$DEMO_PIDS" | tr ' ' ,)" \
            -o "$LOG/perf-$1.syscalls.txt"
    fi
    PROF_PID=$BG_PID
    sleep 1 # attached before the work starts
}

# prof_stop: end it (SIGINT makes perf write its data)
prof_stop() {
    local i=0
    kill -INT "$PROF_PID" 2>/dev/null
    while kill -0 "$PROF_PID" 2>/dev/null && [ $i -lt 300 ]; do
        sleep 0.1
        i=$((i + 1))
    done
    stop "$PROF_PID"
}

# prof_pass PHASE TOOL CMD...: CMD with TOOL attached; records its wall time
prof_pass() {
    local ph=$1 tool=$2 t0
    shift 2
    settle "profile $ph $tool" >/dev/null
    prof_start "$ph" "$tool"
    t0=$(now)
    "$@" >>"$LOG/perf-$ph.work.log" 2>&1
    record "profile_${ph}_${tool}_seconds" "profile: $PROF_TITLE" "wall time under perf $tool" \
        "$(since "$t0")" s "" "$*" ""
    prof_stop
}

# prof_figures PHASE TITLE: the three lists into the record
prof_figures() {
    local ph=$1 g="profile: $2" data=$TMP/perf-$1.data n=0 pct dso sym calls ms avg max
    if [ ! -s "$data" ]; then
        na "profile_${ph}_self_1" "$g" "perf record" "%" "" \
            "failed: $(tail -n 1 "$LOG/perf-$ph.record.log")"
        return 0
    fi
    timeout 300 perf report -i "$data" --stdio --no-children --sort dso,sym -g none \
        --percent-limit 1 -q >"$LOG/perf-$ph.self.txt" 2>/dev/null
    timeout 300 perf report -i "$data" --stdio --children --sort dso,sym -g none \
        --percent-limit 3 -q >"$LOG/perf-$ph.children.txt" 2>/dev/null
    # CPU by thread, from the samples' "PID/TID": the main thread of a
    # process is its loop, the others are its workers
    timeout 300 perf script -i "$data" -F pid,tid 2>/dev/null |
        awk '{ n[$1]++; t++ } END { for (k in n) if (n[k] * 100 >= t) printf "%.2f %s\n", 100 * n[k] / t, k }' |
        sort -g -r >"$LOG/perf-$ph.threads.txt"
    local pid tid who
    n=0
    while read -r pct tid; do
        n=$((n + 1))
        pid=${tid%%/*}
        tid=${tid#*/}
        who=secondary
        [ "$pid" = "$DEMO_PID" ] && who=primary
        if [ "$pid" = "$tid" ]; then who="$who loop"; else who="$who worker $tid"; fi
        record "profile_${ph}_thread_$n" "$g" "CPU of the $who thread" "$pct" "% samples" "" \
            "perf script -F pid,tid" ""
    done <"$LOG/perf-$ph.threads.txt"
    n=0
    # own CPU time: "  40.12%  [kernel.kallsyms]  [k] copy_folio_from_iter_atomic"
    while read -r pct dso _ sym && [ $n -lt 8 ]; do
        n=$((n + 1))
        record "profile_${ph}_self_$n" "$g" "own CPU: $sym ($dso)" "${pct%\%}" "% samples" "" \
            "perf report --no-children --sort dso,sym" ""
    done <<EOF
$(grep -E '^ *[0-9.]+%' "$LOG/perf-$ph.self.txt")
EOF
    # noded's functions with their callees: "  35.68%  0.00%  noded  [.] pwritev_all"
    n=0
    while read -r pct _ dso _ sym && [ $n -lt 12 ]; do
        case $sym in main | run_demo | rt_node_run | rt_node_run_all) continue ;; esac
        n=$((n + 1))
        record "profile_${ph}_fn_$n" "$g" "with callees: $sym" "${pct%\%}" "% samples" "" \
            "perf report --children (dso noded)" ""
    done <<EOF
$(awk '$1 ~ /%$/ && $3 == "noded"' "$LOG/perf-$ph.children.txt")
EOF
    if [ "${BENCH_KEEP_PERF:-0}" = 1 ]; then
        mv "$data" "$LOG/perf-$ph.data"
    else
        rm -f "$data"
    fi
    # each appliance's loop thread (its main thread) by time in system calls,
    # from its block of the summary (" noded (TID), N events" then
    # "   fdatasync  139  0  465.442  0.410  3.349  32.645 ...")
    for who in primary secondary; do
        pid=$DEMO_PID
        [ "$who" = secondary ] && pid=${DEMO_PIDS##* }
        n=0
        while read -r sym calls _ ms _ avg max _ && [ $n -lt 6 ]; do
            n=$((n + 1))
            record "profile_${ph}_${who}_sys_$n" "$g" "$who loop in syscall: $sym ($calls calls)" \
                "$ms" ms "" "perf trace -s" "avg $avg ms, max $max ms"
        done <<EOF
$(awk -v tid="$pid" '/ events, / { mine = ($0 ~ "[(]" tid "[)]") }
            mine && $2 ~ /^[0-9]+$/ && $4 ~ /^[0-9.]+$/ && $1 ~ /^[a-z_0-9]+$/' \
            "$LOG/perf-$ph.syscalls.txt" 2>/dev/null | sort -k4,4 -g -r)
EOF
    done
}

# the work of the sync pass: the image through the export until drained
prof_sync() {
    timeout "$DRAIN_S" nbdcopy --flush "$IMG" "$NBD_URI_0" &&
        timeout $((DRAIN_S + 20)) "$CTL" wait "$PAIR_0" --drained --timeout "$DRAIN_S"
}

# the work of the lag pass: lagbench at RATE
prof_lag() {
    local hp exp
    hp=${NBD_URI_0#nbd://}
    exp=${hp#*/}
    hp=${hp%%/*}
    timeout $((LAG_SECONDS * 3 + SETTLE_S + 200)) "$BIN/lagbench" run --nbd "$hp" --export "$exp" \
        --conf "$NODECTL_CONF" --pair "$PAIR_0" --rate "$1" --seconds "$LAG_SECONDS" \
        --bs "$LAG_BS" --depth "$LAG_DEPTH" --poll-ms "$LAG_POLL_MS" --drain-s "$SETTLE_S"
}

step_profile() {
    local dir=$TMP/prof r
    group "Profile: the two appliances under perf (a pair of their own; shares, not speeds)"
    if ! command -v perf >/dev/null 2>&1 || ! perf record -o "$TMP/perf-probe.data" true \
        >"$LOG/perf-probe.log" 2>&1; then
        na profile_sync_self_1 "profile: initial sync" "perf" "%" "" \
            "n/a (perf is missing or not allowed: $(tail -n 1 "$LOG/perf-probe.log" 2>/dev/null))"
        return 0
    fi
    rm -f "$TMP/perf-probe.data"
    OURS_WHY=
    if ! demo_start "$dir" "${IMG_MIB}M" || ! settle "profile demo" >/dev/null; then
        na profile_sync_self_1 "profile: initial sync" "perf" "%" "" "failed: $OURS_WHY"
        demo_stop
        rm -rf "$dir"
        return 0
    fi

    warm "$IMG"
    PROF_TITLE="initial sync"
    say "  -- $PROF_TITLE"
    prof_pass sync record prof_sync
    prof_pass sync trace prof_sync
    prof_figures sync "$PROF_TITLE"

    PROF_TITLE="fio 4k random writes, depth 1"
    say "  -- $PROF_TITLE"
    prof_pass fio_qd1 record fio_job prof_qd1 "$NBD_URI_0" randwrite 4k 1
    prof_pass fio_qd1 trace fio_job prof_qd1 "$NBD_URI_0" randwrite 4k 1
    prof_figures fio_qd1 "$PROF_TITLE"

    r=$(lag_head)
    PROF_TITLE="lag load at $r MB/s"
    say "  -- $PROF_TITLE"
    prof_pass lag record prof_lag "$r"
    prof_pass lag trace prof_lag "$r"
    prof_figures lag "$PROF_TITLE"

    demo_stop
    rm -rf "$dir"
}
