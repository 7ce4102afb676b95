# SPDX-License-Identifier: GPL-2.0-or-later
#
# lib.sh: the common part of the benchmark driver (sourced by tools/bench/run):
# clocks and arithmetic, the record of figures every step appends to, and the
# start/stop of the background servers (rsync daemon, nbdkit, the agent tap,
# noded) so that each step cleans up after itself and an interrupted run
# leaves no process behind. Kept apart from the steps so that every step
# measures, records and cleans up the same way.
#
# The record ($REC) is one line per figure, tab-separated:
#   KEY  GROUP  LABEL  VALUE  UNIT  GOAL  CMD  NOTE
# VALUE is a number, or empty when the figure could not be measured (NOTE
# then says why, e.g. "n/a (not built yet)"). tools/bench/report.sh turns it
# into the table, bench.json and docs/PERFORMANCE.md.

# ---- clocks and numbers -----------------------------------------------------

now() { date +%s.%N; }

# since T0: seconds elapsed since the clock reading T0, 3 decimals
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.3f", b - a }'; }

# calc EXPR: evaluate an awk expression of numbers, print it with %.Nf (N=$2, default 3)
calc() { awk "BEGIN { printf \"%.${2:-3}f\", $1 }"; }

# isnum X: true if X is a plain non-negative decimal number
isnum() { printf '%s' "$1" | grep -Eq '^(0|[1-9][0-9]*)(\.[0-9]+)?$'; }

# kv KEY LINE: the value of KEY=VALUE in a helper's output line
kv() { printf '%s\n' "$2" | tr ' ' '\n' | sed -n "s/^$1=//p" | head -n 1; }

# ---- the record ---------------------------------------------------------------

# record KEY GROUP LABEL VALUE UNIT GOAL CMD NOTE (VALUE empty or non-numeric: n/a).
# A key is recorded once: a number replaces an earlier line of the key, an
# n/a never replaces a number.
record() {
    local v=$4 note=$8
    if ! isnum "$v"; then
        [ -n "$v" ] && [ -z "$note" ] && note="n/a (not a number: $v)"
        v=
        [ -z "$note" ] && note="n/a"
        [ -n "$(value "$1")" ] && return 0
    fi
    awk -F'\t' -v k="$1" '$1 != k' "$REC" >"$REC.tmp" && mv "$REC.tmp" "$REC"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$v" "$5" "$6" \
        "$(printf '%s' "$7" | tr '\t\n' '  ')" "$(printf '%s' "$note" | tr '\t\n' '  ')" >>"$REC"
    # the live table keeps notes short; bench.json has them whole
    [ ${#note} -gt 72 ] && note="$(printf '%s' "$note" | cut -c 1-69)..."
    printf '  %-50s %12s %-6s %s\n' "$3" "${v:--}" "$5" "$note"
}

# na KEY GROUP LABEL UNIT GOAL REASON: a figure that could not be measured
na() { record "$1" "$2" "$3" "" "$4" "$5" "" "$6"; }

# value KEY: the recorded value of KEY (empty if absent or n/a)
value() { awk -F'\t' -v k="$1" '$1 == k { v = $4 } END { print v }' "$REC"; }

# ratio KEY GROUP LABEL GOAL NUM_KEY DEN_KEY [SCALE]: record NUM/DEN (times SCALE)
# as a ratio "x", or n/a when either side is missing or zero
ratio() {
    local n d
    n=$(value "$5")
    d=$(value "$6")
    if [ -n "$n" ] && [ -n "$d" ] && awk -v d="$d" 'BEGIN { exit !(d > 0) }'; then
        record "$1" "$2" "$3" "$(calc "$n / $d * ${7:-1}")" x "$4" "$5 / $6" ""
    else
        na "$1" "$2" "$3" x "$4" "n/a (needs $5 and $6)"
    fi
}

# ---- processes and files --------------------------------------------------------

BG_PIDS=""

# bg LOG CMD...: start CMD in the background with its output in LOG; sets BG_PID
bg() {
    local log=$1
    shift
    "$@" >"$log" 2>&1 &
    BG_PID=$!
    BG_PIDS="$BG_PIDS $BG_PID"
}

# stop PID: SIGTERM, wait up to 10 s, then SIGKILL; forget it
stop() {
    local pid=$1 i=0
    [ -n "$pid" ] || return 0
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null
        while kill -0 "$pid" 2>/dev/null && [ $i -lt 100 ]; do
            sleep 0.1
            i=$((i + 1))
        done
        kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
    fi
    wait "$pid" 2>/dev/null
    BG_PIDS=$(printf '%s' "$BG_PIDS" | tr ' ' '\n' | grep -vx "$pid" | tr '\n' ' ')
    return 0
}

stop_all() {
    local p
    for p in $BG_PIDS; do
        stop "$p"
    done
}

# build_in_tree TARGET...: make TARGET in this build folder, with the wolfSSL
# variant the folder was built with ($WOLFSSL_VARIANT, from the Makefile's
# stamp), so that a bench run never switches it (that would recompile everything)
build_in_tree() {
    timeout 900 make --no-print-directory -C "$ROOT" BUILD="$BUILD" \
        ${WOLFSSL_VARIANT:+WOLFSSL=$WOLFSSL_VARIANT} "$@"
}

# port: a TCP port on 127.0.0.1 that was free a moment ago
port() { "$BIN/linkbench" port; }

# wait_nbd URI SECONDS: until an NBD server answers at URI (nbdinfo), bounded
wait_nbd() {
    local i=0 n=$(($2 * 5))
    while [ $i -lt $n ]; do
        timeout 5 nbdinfo --size "$1" >/dev/null 2>&1 && return 0
        sleep 0.2
        i=$((i + 1))
    done
    return 1
}

# warm FILE: read FILE once so that every step reads it from the page cache
warm() { cat "$1" >/dev/null; }

# say TEXT: a progress line on stdout
say() { printf '%s\n' "$*"; }

# group TITLE: a section heading in the live table
group() { printf '\n%s\n' "$*"; }
