# SPDX-License-Identifier: GPL-2.0-or-later
#
# nbd.sh: NBD write paths (sourced by tools/bench/run): the baseline,
# `nbdkit file` on a scratch image on 127.0.0.1, and the same measurements
# on any other NBD export (the agent's tap alone, our demo's export with
# replication running) so that every row is a ratio against nbdkit in the
# same run:
#   - nbdcopy of the test image into the export (time, MB/s);
#   - fio with its nbd engine (libnbd URI): 4k random writes at queue depth
#     1 and 16, 1 MiB sequential writes at depth 4, $FIO_SECONDS each.

# fio_job NAME URI RW BS DEPTH: one time-based fio run; prints "iops mbps p99_us"
fio_job() {
    local out
    out=$(timeout $((FIO_SECONDS + 60)) fio --name="$1" --ioengine=nbd --uri="$2" --rw="$3" \
        --bs="$4" --iodepth="$5" --size="$IMG_BYTES" --runtime="$FIO_SECONDS" --time_based \
        --norandommap --randrepeat=0 --output-format=terse --terse-version=3 \
        2>>"$LOG/fio.err") || return 1
    # terse v3 (the line of 3;fio-...; the nbd engine prints a line before it):
    # 47 write KiB, 48 write KiB/s, 49 write IOPS, 50 runtime ms, 59..78 write
    # completion latency percentiles (usec) as "P%=VALUE"
    printf '%s\n' "$out" | awk -F';' '$1 == 3 && NF > 80 {
        p99 = ""
        for (i = 59; i <= 78; i++) if ($i ~ /^99\.0+%=/) { sub(/^[^=]*=/, "", $i); p99 = $i }
        printf "%.0f %.1f %s\n", $49, $48 * 1024 / 1e6, p99
    }' | grep .
}

FIO_ROWS="randwrite4k_qd1:randwrite:4k:1 randwrite4k_qd16:randwrite:4k:16 seqwrite1m_qd4:write:1m:4"

# fio_label ROW: the table's words for a fio row
fio_label() {
    case $1 in
    randwrite4k_qd1) echo "fio 4k random writes, depth 1" ;;
    randwrite4k_qd16) echo "fio 4k random writes, depth 16" ;;
    seqwrite1m_qd4) echo "fio 1 MiB sequential writes, depth 4" ;;
    esac
}

# fio_rows PREFIX GROUP URI [BASE [AFTER]]: every fio row against URI as
# PREFIX_fio_*; with BASE, also the ratio PREFIX/BASE of each row (goal >=
# 0.9); with AFTER, the command AFTER ROW_NAME runs after each row
fio_rows() {
    local pre=$1 g=$2 uri=$3 base=${4:-} after=${5:-} row name rw bs qd out iops mbps p99 unit metric val cmd
    for row in $FIO_ROWS; do
        IFS=: read -r name rw bs qd <<EOF
$row
EOF
        cmd="fio --ioengine=nbd --uri=URI --rw=$rw --bs=$bs --iodepth=$qd --runtime=$FIO_SECONDS --time_based"
        unit=IOPS metric=iops
        [ "$rw" = write ] && unit=MB/s metric=mbps
        if out=$(fio_job "$name" "$uri" "$rw" "$bs" "$qd"); then
            read -r iops mbps p99 <<EOF
$out
EOF
            val=$iops
            [ "$metric" = mbps ] && val=$mbps
            record "${pre}_fio_${name}_$metric" "$g" "$(fio_label "$name")" "$val" "$unit" "" \
                "$cmd" "p99 completion $p99 us"
        else
            na "${pre}_fio_${name}_$metric" "$g" "$(fio_label "$name")" "$unit" "" \
                "failed: $(tail -n 1 "$LOG/fio.err")"
        fi
        [ -n "$base" ] && ratio "${pre}_vs_${base}_fio_${name}" "$g" "  ratio vs $base" ">= 0.9" \
            "${pre}_fio_${name}_$metric" "${base}_fio_${name}_$metric"
        [ -n "$after" ] && "$after" "$name"
    done
}

# nbdcopy_into PREFIX GROUP URI [BASE]: time nbdcopy of the test image into URI
nbdcopy_into() {
    local pre=$1 g=$2 uri=$3 base=${4:-} t0 secs
    warm "$IMG"
    t0=$(now)
    if timeout 600 nbdcopy --flush "$IMG" "$uri" 2>"$LOG/nbdcopy-$pre.err"; then
        secs=$(since "$t0")
        record "${pre}_nbdcopy_seconds" "$g" "nbdcopy of the test image" "$secs" s "" \
            "nbdcopy --flush IMG URI" ""
        record "${pre}_nbdcopy_mbps" "$g" "  nbdcopy throughput" \
            "$(calc "$IMG_BYTES / 1e6 / $secs" 1)" MB/s "" "nbdcopy --flush IMG URI" ""
        [ -n "$base" ] && ratio "${pre}_vs_${base}_nbdcopy" "$g" "  ratio vs $base (speed)" \
            ">= 0.9" "${base}_nbdcopy_seconds" "${pre}_nbdcopy_seconds"
        return 0
    fi
    na "${pre}_nbdcopy_seconds" "$g" "nbdcopy of the test image" s "" \
        "failed: $(head -n 1 "$LOG/nbdcopy-$pre.err")"
    return 1
}

step_nbdkit() {
    local g="nbdkit file" p uri scratch=$TMP/nbdkit.img pid
    group "nbdkit file baseline (127.0.0.1)"
    truncate -s "$IMG_BYTES" "$scratch" || return 0
    p=$(port)
    bg "$LOG/nbdkit.log" nbdkit -f --exit-with-parent -i 127.0.0.1 -p "$p" file file="$scratch"
    pid=$BG_PID
    uri=nbd://127.0.0.1:$p/
    if ! wait_nbd "$uri" 20; then
        na nbdkit_nbdcopy_seconds "$g" "nbdcopy of the test image" s "" \
            "failed: nbdkit did not start ($(tail -n 1 "$LOG/nbdkit.log"))"
        stop "$pid"
        rm -f "$scratch"
        return 0
    fi
    if nbdcopy_into nbdkit "$g" "$uri" && ! cmp -s "$IMG" "$scratch"; then
        record nbdkit_copy_identical "$g" "  copy identical to the image" 0 bool "" "cmp" \
            "the copy DIFFERS"
    fi
    fio_rows nbdkit "$g" "$uri"
    stop "$pid"
    rm -f "$scratch"
}

# The agent's NBD tap alone (tests/integration/nbdserve.c: nodes/agent/nbd.c,
# capture hook, no replication): what the tap costs before anything ships.
step_tap() {
    local g="agent tap alone" srv=$BUILD/it-bin/nbdserve scratch=$TMP/tap.img pf=$TMP/tap.port
    local pid uri i=0
    group "Agent NBD tap alone, no replication (it-bin/nbdserve), vs nbdkit"
    [ -x "$srv" ] || build_in_tree "$srv" >"$LOG/nbdserve-build.log" 2>&1
    if [ ! -x "$srv" ]; then
        na tap_nbdcopy_seconds "$g" "nbdcopy of the test image" s "" \
            "n/a (not built yet: $srv)"
        return 0
    fi
    truncate -s "$IMG_BYTES" "$scratch" || return 0
    rm -f "$pf"
    bg "$LOG/nbdserve.log" "$srv" --listen 127.0.0.1:0 --export bench "$scratch" --port-file "$pf"
    pid=$BG_PID
    while [ ! -s "$pf" ] && [ $i -lt 100 ] && kill -0 "$pid" 2>/dev/null; do
        sleep 0.1
        i=$((i + 1))
    done
    uri=nbd://127.0.0.1:$(cat "$pf" 2>/dev/null)/bench
    if [ ! -s "$pf" ] || ! wait_nbd "$uri" 10; then
        na tap_nbdcopy_seconds "$g" "nbdcopy of the test image" s "" \
            "failed: nbdserve did not serve ($(tail -n 1 "$LOG/nbdserve.log"))"
        stop "$pid"
        rm -f "$scratch"
        return 0
    fi
    if nbdcopy_into tap "$g" "$uri" nbdkit && ! cmp -s "$IMG" "$scratch"; then
        record tap_copy_identical "$g" "  copy identical to the image" 0 bool "" "cmp" \
            "the copy DIFFERS"
    fi
    fio_rows tap "$g" "$uri" nbdkit
    stop "$pid"
    rm -f "$scratch"
}
