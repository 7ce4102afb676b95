# SPDX-License-Identifier: GPL-2.0-or-later
#
# repl_lib.sh: helpers shared by the replication tests (tests/integration/
# t5*_repl_*.sh and their long versions in tests/fault/). Source it after
# lib.sh:
#
#   . "$(dirname "$0")/lib.sh"; . "$(dirname "$0")/repl_lib.sh"
#
# It sets up a demo folder (noded --demo DIR --init-only), gives both
# appliances fast link timers so that a restarted peer is found again in
# well under a second, starts and stops the demo or its appliances as
# recorded processes (lib.sh's trap kills them on exit), and wraps the
# console commands the tests use: wait for drained, read a pair's field,
# restore offline and compare. Every wait is bounded in time.
LOAD=$BUILD/it-bin/replload
POKE=$BUILD/it-bin/nbdpoke
ROUNDS=${ROUNDS:-2}
DRAIN_S=${DRAIN_S:-60}

# need TOOL...: fail unless every tool is on the PATH
need() {
  for t in "$@"; do
    command -v "$t" >/dev/null 2>&1 || fail "missing tool $t"
  done
}

# demo_init DIR DISKS SIZE: a new demo folder with DISKS disks of SIZE, fast
# link timers in both appliance files; sources DIR/demo.env (D is DIR)
demo_init() {
  D=$1
  "$NODED" --demo "$D" --disks "$2" --disk-size "$3" --init-only >>"$T/init.log" 2>&1 ||
    fail "noded --demo $D --init-only: $(tail -3 "$T/init.log")"
  [ -s "$D/demo.env" ] || fail "no $D/demo.env"
  for f in "$D/primary.ini" "$D/secondary.ini"; do
    grep -q '^\[link\]' "$f" && fail "$f has a [link] section already"
    printf '\n[link]\nhb_interval = 0.2\nhb_timeout = 1.5\nbackoff_min = 0.05\nbackoff_max = 0.3\n' >> "$f"
  done
  # shellcheck disable=SC1091
  . "$D/demo.env"
  export NODECTL_CONF
}

# ini_set FILE SECTION KEY VALUE: add KEY = VALUE right after the line
# "[SECTION]" of FILE (the section must exist and lack KEY)
ini_set() {
  grep -q "^\[$2\]\$" "$1" || fail "ini_set: no [$2] in $1"
  sed -i "/^\[$2\]\$/a $3 = $4" "$1"
}

# start_proc NAME ARGS...: run noded ARGS in the background, stderr to
# $T/NAME.log (appended), pid in $T/NAME.pid (lib.sh's stop_noded NAME stops it)
start_proc() {
  name=$1; shift
  "$NODED" "$@" 2>>"$T/$name.log" &
  echo $! > "$T/$name.pid"
  LIB_PIDS="$LIB_PIDS $!"
}

# start_demo: noded --demo $D as "demo"; start_primary / start_secondary:
# the two appliances apart; each waits until the node answers ping
start_demo() { start_proc demo --demo "$D"; wait_ping "$NODECTL_CONF" demo; }
start_primary() { start_proc primary -c "$PRIMARY_CONF"; wait_ping "$NODECTL_CONF" primary; }
start_secondary() { start_proc secondary -c "$SECONDARY_CONF"; wait_ping "$SECONDARY_CONF" secondary; }

# wait_ping CONF NAME: until nodectl --conf CONF call ping answers (10 s)
wait_ping() {
  i=0
  until "$NODECTL" --conf "$1" --timeout 2 call ping >/dev/null 2>&1; do
    i=$((i + 1))
    kill -0 "$(pid_of "$2")" 2>/dev/null || fail "$2 died at start: $(tail -5 "$T/$2.log")"
    [ "$i" -le 100 ] || fail "$2 does not answer ping after 10 s: $(tail -5 "$T/$2.log")"
    sleep 0.1
  done
}

# stop_clean NAME [SECONDS]: SIGTERM, it must exit 0 within SECONDS (5)
stop_clean() {
  stop_noded "$1" TERM "${2:-5}"
  [ "$STOP_RC" -eq 0 ] || fail "$1 exited $STOP_RC on SIGTERM: $(tail -5 "$T/$1.log")"
}

# hostport URI: 127.0.0.1:PORT of nbd://127.0.0.1:PORT/EXPORT
hostport() { u=${1#nbd://}; echo "${u%%/*}"; }
# export_of URI: EXPORT of nbd://127.0.0.1:PORT/EXPORT
export_of() { echo "${1##*/}"; }

# field PAIR NAME: one field of `nodectl --json pair show PAIR` (numbers,
# booleans, strings without quotes)
field() {
  "$NODECTL" --json pair show "$1" 2>/dev/null |
    sed -n "s/.*\"$2\":\"\{0,1\}\([^,\"}]*\).*/\1/p"
}

# diag: every node's status as JSON on stderr (the console's node, the
# secondary, and the files in $DIAG_CONFS), for the log of a failing test
diag() {
  for c in "$NODECTL_CONF" "$SECONDARY_CONF" ${DIAG_CONFS:-}; do
    echo "--- nodectl --conf $c --json status:" >&2
    "$NODECTL" --conf "$c" --timeout 3 --json status >&2 || true
    echo >&2
  done
}

# wait_state PAIR STATE [WHY]: nodectl wait PAIR --state STATE, or fail with the status
wait_state() {
  "$NODECTL" wait "$1" --state "$2" --timeout "$DRAIN_S" > "$T/wait.out" 2>&1 || {
    diag
    fail "pair $1 not $2${3:+ after $3}: $(cat "$T/wait.out")"
  }
}

# wait_drained PAIR [SECONDS]: nodectl wait PAIR --drained, or fail with the status
wait_drained() {
  "$NODECTL" wait "$1" --drained --timeout "${2:-$DRAIN_S}" > "$T/wait.out" 2>&1 || {
    diag
    fail "pair $1 not drained within ${2:-$DRAIN_S} s: $(cat "$T/wait.out")"
  }
}

# restore PAIR POINT OUT: nodectl restore --offline $MT_DIR (no daemon may hold it)
restore() {
  "$NODECTL" restore --offline "$MT_DIR" --pair "$1" --point "$2" --out "$3" > "$T/restore.out" 2>&1 ||
    fail "restore of $1 at point $2: $(cat "$T/restore.out")"
}

# restore_cmp PAIR SOURCE OUT: the latest point of PAIR equals SOURCE byte for byte
restore_cmp() {
  restore "$1" latest "$3"
  cmp "$2" "$3" > "$T/cmp.out" 2>&1 || fail "replica of $1 differs from $2: $(cat "$T/cmp.out")"
}

# rand N: a random number in 0..N-1
rand() { echo $(( $(od -An -N4 -tu4 /dev/urandom | tr -d ' ') % $1 )); }

# ms N: N milliseconds as seconds for sleep (e.g. 1250 -> 1.250)
ms() { printf '%d.%03d' $(($1 / 1000)) $(($1 % 1000)); }

# elapsed_since T0: whole seconds since T0 (date +%s)
elapsed_since() { echo $(( $(date +%s) - $1 )); }
