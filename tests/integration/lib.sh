# SPDX-License-Identifier: GPL-2.0-or-later
#
# lib.sh: shared helpers for integration tests that run real noded
# processes on loopback. Source it after `set -eu`:
#
#   . "$(dirname "$0")/lib.sh"
#
# It needs $T (the test's scratch folder) and $BUILD (absolute build
# folder), as tests/run-integration sets them. Everything it starts is
# recorded and killed by the EXIT trap, so a failing test leaves no process
# behind. Every wait is bounded in time.
: "${T:?scratch dir}" "${BUILD:?build dir}"

NODED=$BUILD/noded
NODECTL=$BUILD/nodectl
NODETRACE=$BUILD/nodetrace
LINKPOKE=$BUILD/it-bin/linkpoke
LIB_PIDS=""

fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok: $*"; }

lib_cleanup() {
  for p in $LIB_PIDS; do kill -9 "$p" 2>/dev/null || true; done
  for p in $LIB_PIDS; do wait "$p" 2>/dev/null || true; done
}
trap lib_cleanup EXIT INT TERM

# free_port [N]: print N free loopback TCP ports, one a line
free_port() { "$LINKPOKE" --free-port "${1:-1}"; }

# make_site DIR NAME...: a site CA in DIR and a node certificate per NAME
make_site() {
  dir=$1; shift
  "$NODECTL" init "$dir" >/dev/null || fail "nodectl init $dir"
  for n in "$@"; do
    "$NODECTL" cert issue --ca "$dir" "$n" >/dev/null || fail "nodectl cert issue $n"
  done
}

# node_conf NAME CADIR [listen=IP:PORT] [peer:NAME=IP:PORT]...: write
# $T/NAME.ini with fast link timers and the trace in $T/NAME.trace
node_conf() {
  name=$1; ca=$2; shift 2
  f=$T/$name.ini
  {
    echo "[node]"
    echo "name = $name"
    echo "roles = ${ROLES:-cs}"
    echo "log_level = ${LOG_LEVEL:-info}"
    echo "[tls]"
    echo "ca = $ca/ca.crt"
    echo "cert = $ca/$name.crt"
    echo "key = $ca/$name.key"
    echo "[link]"
    echo "hb_interval = ${HB_INTERVAL:-0.2}"
    echo "hb_timeout = ${HB_TIMEOUT:-1.5}"
    echo "backoff_min = 0.05"
    echo "backoff_max = ${BACKOFF_MAX:-0.5}"
    echo "[trace]"
    echo "file = $name.trace"
    for a in "$@"; do
      case $a in
        listen=*) echo "[listen]"; echo "link = ${a#listen=}" ;;
        peer:*) p=${a#peer:}; echo "[peer ${p%%=*}]"; echo "address = ${p#*=}" ;;
        *) fail "node_conf: bad argument $a" ;;
      esac
    done
  } > "$f"
}

# start_noded NAME: run noded -c $T/NAME.ini, stderr to $T/NAME.log (appended);
# sets NAME's pid in $T/NAME.pid
start_noded() {
  "$NODED" -c "$T/$1.ini" 2>>"$T/$1.log" &
  echo $! > "$T/$1.pid"
  LIB_PIDS="$LIB_PIDS $!"
}

pid_of() { cat "$T/$1.pid"; }

# stop_noded NAME [SIGNAL [SECONDS]]: signal it (TERM) and wait for it to
# exit, at most SECONDS (5); its exit status goes to $STOP_RC. Fails if it
# does not exit in time. (Not in $(...): only this shell can wait for it.)
stop_noded() {
  pid=$(pid_of "$1"); sig=${2:-TERM}; secs=${3:-5}
  kill -"$sig" "$pid" 2>/dev/null || true
  i=0
  while kill -0 "$pid" 2>/dev/null; do
    # a zombie has exited: wait reaps it below
    [ "$(ps -o stat= -p "$pid" 2>/dev/null | cut -c1)" = Z ] && break
    i=$((i + 1))
    [ "$i" -le $((secs * 20)) ] || fail "$1 (pid $pid) still running ${secs}s after SIG$sig"
    sleep 0.05
  done
  STOP_RC=0
  wait "$pid" 2>/dev/null || STOP_RC=$?
}

# wait_for FILE PATTERN [SECONDS [COUNT]]: until FILE has COUNT (1) lines
# matching the grep -E PATTERN, at most SECONDS (10); fails with the file's
# tail on timeout
wait_for() {
  file=$1; pat=$2; secs=${3:-10}; want=${4:-1}
  i=0
  while :; do
    n=$(grep -cE -- "$pat" "$file" 2>/dev/null || true)
    [ "${n:-0}" -ge "$want" ] && return 0
    i=$((i + 1))
    if [ "$i" -gt $((secs * 10)) ]; then
      echo "--- tail of $file:" >&2; tail -n 20 "$file" >&2 2>/dev/null || true
      fail "timeout (${secs}s) waiting for $want x '$pat' in $(basename "$file")"
    fi
    sleep 0.1
  done
}

# count FILE PATTERN: lines of FILE matching the grep -E PATTERN
count() { grep -cE -- "$2" "$1" 2>/dev/null || true; }

# transitions TRACE: "FROM EVENT TO" per link transition, from nodetrace --json
transitions() {
  "$NODETRACE" --json "$1" | sed -n \
    's/.*"machine":"link","from":"\([a-z_]*\)","event":"\([a-z_]*\)","to":"\([a-z_]*\)".*/\1 \2 \3/p'
}
