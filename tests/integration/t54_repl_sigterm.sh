#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
#
# t54_repl_sigterm.sh: issue 3 acceptance 5. SIGTERM during a write load
# stops noded cleanly within a few seconds, with everything acknowledged
# durable.
#
# The load is it-bin/replload (numbered writes whose every prefix state can
# be rebuilt, see t51). Victims, on one demo folder (one 64 MiB disk):
#   demo       noded --demo (both appliances in one process), ROUNDS times
#   primary    noded -c primary.ini, the appliances apart, ROUNDS times
#   secondary  noded -c secondary.ini, ROUNDS times
# Each time the load runs, the victim gets SIGTERM 0.3..1.0 s in and must
# exit 0 within STOP_S (5) seconds. Right before the signal the master
# target's durable seq is noted; when the victim held the master target,
# the offline restore of the latest point right after the stop must reach
# at least that seq and be exactly the state after some prefix of the
# writes. When the victim served the export, the source must hold every
# write the load saw acknowledged (and at most the one in flight). The
# victim is restarted, the load goes on, the pair must reach protected and
# drain, and the source must be exactly the state after every acknowledged
# write. At the end the latest point equals the source (cmp).
#
# Knobs: ROUNDS (2), STOP_S (5).
set -eu
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/repl_lib.sh"
need cmp
STOP_S=${STOP_S:-5}
cd "$T"
T0=$(date +%s)

demo_init "$T/d" 1 64M
SEED=$(( $(rand 1000000) * 16 + 3 ))
NEXT=1
echo "load seed $SEED"
HP=$(hostport "$NBD_URI_0")
EXP=$(export_of "$NBD_URI_0")

load_start() {
  "$LOAD" write "$HP" "$EXP" --seed "$SEED" --from "$NEXT" --seconds "$1" --connect-wait 10 \
    > load.out 2>> load.err &
  LP=$!
  LIB_PIDS="$LIB_PIDS $LP"
}

# load_wait EOF_OK: wait for the load (30 s at most); NEXT follows its acks
load_wait() {
  j=0
  while kill -0 "$LP" 2>/dev/null && [ "$(ps -o stat= -p "$LP" | cut -c1)" != Z ]; do
    j=$((j + 1))
    [ "$j" -le 300 ] || fail "replload still running after 30 s"
    sleep 0.1
  done
  rc=0
  wait "$LP" || rc=$?
  k=$(sed -n 's/^acked //p' load.out)
  [ -n "$k" ] || fail "replload printed no acked count (rc $rc): $(tail -3 load.err)"
  case $rc in
    0) ;;
    3) [ "$1" = 1 ] || fail "the export went away: $(tail -3 load.err)" ;;
    *) fail "replload failed (rc $rc): $(tail -3 load.err)" ;;
  esac
  NEXT=$((k + 1))
}

start_victim() {
  case $1 in
    demo) start_demo ;;
    primary) start_primary ;;
    secondary) start_secondary ;;
  esac
}

n=0
for victim in demo primary secondary; do
  case $victim in
    demo) ;;
    primary) start_secondary; start_primary ;;
    secondary) ;;
  esac
  [ "$victim" = demo ] && start_demo
  wait_state "$PAIR_0" protected "the start of the $victim rounds"
  r=1
  while [ "$r" -le "$ROUNDS" ]; do
    load_start 2
    at=$(( $(rand 700) + 300 ))
    sleep "$(ms "$at")"
    durable=$(field "$PAIR_0" mt_durable_seq)
    t1=$(date +%s%N)
    stop_clean "$victim" "$STOP_S"
    took=$(( ($(date +%s%N) - t1) / 1000000 ))
    case $victim in demo | primary) serves=1 ;; *) serves=0 ;; esac
    case $victim in demo | secondary) holds_mt=1 ;; *) holds_mt=0 ;; esac
    extra=""
    if [ "$serves" = 1 ]; then
      load_wait 1
      "$LOAD" check "$SOURCE_0" --seed "$SEED" --upto $((NEXT - 1)) --maybe-next > check.out 2>&1 ||
        fail "after SIGTERM the source lacks acknowledged writes: $(cat check.out)"
      extra="; the source holds all $((NEXT - 1)) acknowledged writes"
    fi
    if [ "$holds_mt" = 1 ]; then
      restore "$PAIR_0" latest pt.img
      seq=$(sed -n 's/.* at point \([0-9]*\) .*/\1/p' restore.out)
      [ "${seq:-0}" -ge "$durable" ] ||
        fail "the master target said seq $durable was durable, after SIGTERM it has $seq"
      "$LOAD" check pt.img --seed "$SEED" > check.out 2>&1 ||
        fail "the replica after SIGTERM is no prefix state of the writes: $(cat check.out)"
      extra="$extra; replica at seq $seq >= $durable noted before, $(cat check.out)"
    fi
    ok "$victim round $r: SIGTERM at $at ms: exit 0 in $took ms$extra"
    start_victim "$victim"
    if [ "$serves" = 1 ]; then load_start 0.5; fi
    load_wait 0
    wait_state "$PAIR_0" protected "the restart of $victim"
    wait_drained "$PAIR_0"
    "$LOAD" check "$SOURCE_0" --seed "$SEED" --upto $((NEXT - 1)) > check.out 2>&1 ||
      fail "source after the restart: $(cat check.out)"
    n=$((n + 1))
    r=$((r + 1))
  done
  case $victim in
    demo) stop_clean demo ;;
    primary) ;;
    secondary) stop_clean primary; stop_clean secondary ;;
  esac
done

restore_cmp "$PAIR_0" "$SOURCE_0" r0.img
"$LOAD" check r0.img --seed "$SEED" --upto $((NEXT - 1)) > check.out 2>&1 ||
  fail "the replica is not the state after all $((NEXT - 1)) acknowledged writes: $(cat check.out)"
ok "replica = source = the state after all $((NEXT - 1)) acknowledged writes"
ok "t54 done: $n SIGTERMs in $(elapsed_since "$T0") s"
