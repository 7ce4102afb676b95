#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
#
# t31_nbd_badinput.sh: malformed NBD input closes only the offending client.
# While a qemu-io workload writes to export "busy" over and over, the poke
# tool (it-bin/nbdpoke) hits export "victim" with every kind of bad input:
# garbage instead of a handshake, unknown client flags, a bad option magic,
# an unknown export, an unknown option, a 100 KiB option, a bad request magic,
# out-of-range requests (EINVAL / ENOSPC), oversize requests (EINVAL), an
# unknown command and flag (EINVAL), garbage in transmission. Each check
# asserts the protocol's answer (error reply, or the server hanging up). Then:
# every qemu-io run succeeded and "busy" equals the reference byte for byte;
# "victim" still serves a real client; the server is still up and listing.
#
# Needs: $BUILD/it-bin/nbdserve, $BUILD/it-bin/nbdpoke, qemu-io, nbdinfo, cmp.
set -eu
: "${T:?scratch dir}" "${BUILD:?build dir}"
SERVE=$BUILD/it-bin/nbdserve
POKE=$BUILD/it-bin/nbdpoke
fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok: $*"; }
for t in qemu-io nbdinfo cmp; do
  command -v "$t" >/dev/null 2>&1 || fail "missing tool $t"
done

SPID= WPID=
cleanup() {
  touch "$T/pokes.done"
  if [ -n "$WPID" ]; then wait "$WPID" 2>/dev/null || true; fi
  if [ -n "$SPID" ]; then kill "$SPID" 2>/dev/null || true; wait "$SPID" 2>/dev/null || true; fi
}
trap cleanup EXIT INT TERM

start_server() {
  rm -f "$T/port"
  "$SERVE" --listen 127.0.0.1:0 --port-file "$T/port" "$@" 2>>"$T/server.log" &
  SPID=$!
  i=0
  while [ ! -s "$T/port" ]; do
    i=$((i + 1))
    [ "$i" -le 100 ] || fail "nbdserve did not start: $(cat "$T/server.log")"
    kill -0 "$SPID" 2>/dev/null || fail "nbdserve died: $(cat "$T/server.log")"
    sleep 0.05
  done
  PORT=$(cat "$T/port")
}

cd "$T"
truncate -s 16M victim.img
truncate -s 32M busy.img ref.img
start_server --export victim victim.img --export busy busy.img
URI=nbd://127.0.0.1:$PORT
ok "nbdserve on port $PORT"

# ---- the workload: the same 200 writes again and again until the pokes are done -----
set --
i=0
while [ "$i" -lt 200 ]; do
  len=$((4096 + (i * 7919) % 61440))
  off=$(((i * 104729) % (32 * 1048576 - 65536) + i % 3))
  set -- "$@" -c "write -P $((i % 250 + 1)) $off $len"
  i=$((i + 1))
done
qemu-io -f raw -t writeback "$@" ref.img > qref.out 2>&1 || fail "qemu-io on ref: $(tail -3 qref.out)"
rm -f pokes.done runs.ok runs.bad
(
  r=0
  while [ ! -f pokes.done ] && [ "$r" -lt 200 ]; do
    r=$((r + 1))
    if qemu-io -f raw -t writeback "$@" "$URI/busy" > "qio.$r.out" 2>&1; then
      echo "$r" >> runs.ok
    else
      echo "$r" >> runs.bad
    fi
  done
) &
WPID=$!

# ---- pokes at the victim, while the workload runs -------------------------------------
rounds=0
concurrent=0
while [ "$rounds" -lt 5 ]; do
  rounds=$((rounds + 1))
  if kill -0 "$WPID" 2>/dev/null; then concurrent=$((concurrent + 1)); fi
  "$POKE" check "127.0.0.1:$PORT" victim all > "poke.$rounds.out" 2>&1 ||
    fail "poke round $rounds: $(grep -v '^ok' "poke.$rounds.out")"
done
touch pokes.done
wait "$WPID" || true
WPID=
[ "$(grep -c '^ok' poke.1.out)" -eq 11 ] || fail "expected 11 checks: $(cat poke.1.out)"
ok "$rounds rounds of 11 malformed-input checks, $concurrent of them during the workload"
[ "$concurrent" -ge 1 ] || fail "the workload was not running during the pokes"

# ---- the busy export was not disturbed ---------------------------------------------------
[ ! -s runs.bad ] || fail "qemu-io runs failed: $(cat runs.bad); $(tail -3 "qio.$(head -1 runs.bad).out")"
[ -s runs.ok ] || fail "no qemu-io run completed"
cmp busy.img ref.img || fail "busy export differs from the reference"
ok "$(wc -l < runs.ok) qemu-io runs of 200 writes on busy all succeeded; busy = reference (cmp)"

# ---- the victim still serves, the server still lists -------------------------------------
qemu-io -f raw -c "write -P 0x5c 4096 65536" -c "read -P 0x5c 4096 65536" "$URI/victim" \
  > victim.out 2>&1 || fail "victim no longer serves: $(tail -3 victim.out)"
nbdinfo --list "$URI" > list.out 2>&1 || fail "nbdinfo --list: $(cat list.out)"
grep -q 'export="victim"' list.out && grep -q 'export="busy"' list.out ||
  fail "listing incomplete: $(cat list.out)"
kill -0 "$SPID" 2>/dev/null || fail "nbdserve died"
grep -q 'bad request magic' "$T/server.log" || fail "server did not log the bad magic"
ok "victim serves a real client again; server up and listing"

kill -TERM "$SPID"
rc=0
wait "$SPID" || rc=$?
SPID=
[ "$rc" -eq 0 ] || fail "nbdserve exit status $rc on SIGTERM"
ok "nbdserve stopped cleanly"
