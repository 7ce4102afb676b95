#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
#
# t53_repl_badinput.sh: issue 3 acceptance 4. Malformed NBD negotiation and
# requests against one export of the demo get the protocol's error and close
# only that client, while the other disk keeps replicating.
#
# The demo runs two 64 MiB disks in one process. While
#   - a qemu-io load of random writes (random offsets, lengths and
#     patterns, one qemu-io per round, bounded) runs on disk1, and
#   - one qemu-io session on disk0 writes, sleeps through the whole attack
#     and then writes and reads back on the same connection,
# it-bin/nbdpoke runs every one of its checks POKES times against disk0
# (garbage negotiation, unknown client flags, bad option magic, unknown
# export and option, oversize option, bad request magic, read and write
# out of range, oversize read and write, unknown command and flag, garbage
# in transmission): each gets the protocol's error (EINVAL, ENOSPC,
# NBD_REP_ERR_*) or a hang-up, and the connections that must stay usable
# do. Then the disk1 load must have run during the attack with no error,
# the session on disk0 must have survived it, both pairs must drain, noded
# must stop cleanly, and both replicas must equal their sources (cmp).
#
# Knobs: POKES (3).
set -eu
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/repl_lib.sh"
need qemu-io cmp
POKES=${POKES:-3}
cd "$T"
T0=$(date +%s)

demo_init "$T/d" 2 64M
start_demo

# ---- the load on disk1, in the background ------------------------------------------------
rm -f stop.load load.rounds load.fail
(
  n=0
  while [ ! -e stop.load ] && [ "$n" -lt 300 ]; do
    set --
    j=0
    while [ "$j" -lt 8 ]; do
      set -- "$@" -c "write -P $(( $(rand 255) + 1 )) $(( $(rand 60000000) )) $(( $(rand 200000) + 1 ))"
      j=$((j + 1))
    done
    qemu-io -f raw -t writeback "$@" "$NBD_URI_1" > load.qio 2>&1 || {
      cp load.qio load.fail; exit 1
    }
    n=$((n + 1))
    echo "$n" > load.rounds
  done
) &
LOADPID=$!
LIB_PIDS="$LIB_PIDS $LOADPID"

# ---- a long session on disk0 ---------------------------------------------------------------
qemu-io -f raw -t writeback -c "write -P 17 1048576 65536" -c "sleep 4000" \
  -c "write -P 18 1179648 65536" -c "read -P 17 1048576 65536" -c "read -P 18 1179648 65536" \
  "$NBD_URI_0" > session.out 2>&1 &
SESSPID=$!
LIB_PIDS="$LIB_PIDS $SESSPID"

# ---- the attack on disk0 ------------------------------------------------------------------
i=0
while [ "$i" -lt 20 ] && [ ! -s load.rounds ]; do sleep 0.1; i=$((i + 1)); done
r0=$(cat load.rounds 2>/dev/null || echo 0)
i=1
while [ "$i" -le "$POKES" ]; do
  "$POKE" check "$(hostport "$NBD_URI_0")" "$(export_of "$NBD_URI_0")" all > poke.out 2>&1 ||
    fail "nbdpoke round $i: $(grep -v '^ok' poke.out | head -5)"
  [ "$(grep -c '^ok ' poke.out)" -ge 11 ] || fail "nbdpoke ran only: $(cat poke.out)"
  i=$((i + 1))
done
r1=$(cat load.rounds 2>/dev/null || echo 0)
kill -0 "$SESSPID" 2>/dev/null || fail "the attack outlasted the 4 s session on disk0: too slow to test"
ok "nbdpoke: $POKES x $(grep -c '^ok ' poke.out) malformed-input checks on disk0 answered as the protocol says"

rc=0
wait "$SESSPID" || rc=$?
[ "$rc" -eq 0 ] || fail "the qemu-io session on disk0 failed (rc $rc): $(tail -5 session.out)"
if grep -qi 'fail\|error' session.out; then fail "the session on disk0: $(cat session.out)"; fi
ok "a qemu-io session on disk0 open through the whole attack still writes and reads back"

touch stop.load
rc=0
wait "$LOADPID" || rc=$?
[ "$rc" -eq 0 ] || fail "the qemu-io load on disk1 failed: $(cat load.fail 2>/dev/null)"
r2=$(cat load.rounds)
[ "$r1" -gt "$r0" ] || fail "the disk1 load made no progress during the attack ($r0 -> $r1 rounds)"
ok "disk1: $r2 qemu-io rounds of 8 writes, $((r1 - r0)) of them during the attack, no error"

kill -0 "$(pid_of demo)" || fail "noded died"
nbdinfo "$NBD_URI_0" > info.out 2>&1 || fail "nbdinfo on disk0 after the attack: $(cat info.out)"
wait_drained "$PAIR_0"
wait_drained "$PAIR_1"
stop_clean demo
ok "both pairs drained; noded stopped cleanly"

restore_cmp "$PAIR_0" "$SOURCE_0" r0.img
restore_cmp "$PAIR_1" "$SOURCE_1" r1.img
ok "both replicas equal their sources"
ok "t53 done in $(elapsed_since "$T0") s"
