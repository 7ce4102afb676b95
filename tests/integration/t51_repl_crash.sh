#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
#
# t51_repl_crash.sh: issue 3 acceptance 2, crash safety. SIGKILL at a
# random moment during a write load, restart, and check that nothing
# acknowledged is lost and nothing is applied out of order.
#
# The load is it-bin/replload: numbered writes (512 B .. 1.5 MiB, write
# zeroes, FUA, flushes; random and compressible data) at queue depth one,
# each a pure function of (seed, number), so that the state after writes
# 1..K can be rebuilt and any image compared with it byte for byte.
#
# Topologies (TOPOS, default both, in this order, on the same demo folder):
#   appliances  the demo's two appliances apart (noded -c primary.ini, noded
#               -c secondary.ini); victims: primary, secondary
#   roles       agent, process server and master target as three processes
#               (agent.ini, ps.ini from the demo's, a certificate each from
#               nodectl cert issue); victims: agent, ps, mt
# Each round kills every victim of the topology once (ROUNDS or ROLE_ROUNDS
# rounds): the load runs, the victim gets SIGKILL 0.2..1.1 s in, stays
# down 0..0.8 s and is restarted. When the victim served the NBD export,
# the load ends with the connection: the source file must then hold every
# write the load saw acknowledged (and at most a part of the one in
# flight), and the agent recovers under a new load (odd rounds) or idle
# (even rounds). Otherwise the load must go on with no error. Then the pair
# must reach protected and drained, and the source be exactly the state
# after every acknowledged write; after an idle recovery, the master target
# is stopped (SIGTERM) and the latest point of every pair must equal its
# source and be at or after the end of the recovery's resync pass (which
# must end on a consistent point).
#
# At the end both appliances stop cleanly (SIGTERM, exit 0) and, offline:
# the latest point of every pair equals its source (cmp); and recovery
# points picked from the run (the master target's durable seq noted before
# each kill, the last record of every sync pass (agent log) and the point
# where the pass became consistent (trace), the points right after them,
# and random ones) are each either refused as not consistent (inside a sync
# pass) or exactly the state after writes 1..K for some K, with K never
# decreasing as the point's seq grows. (After a kill of the agent, until
# the write that was in flight is written again, the disk may hold any part
# of it; the points of that time are the state after writes 1..K-1 plus a
# part of write K, and the check accepts that for those writes only.)
#
# Knobs: ROUNDS (2: rounds of the appliances), ROLE_ROUNDS (1: rounds of the
# roles apart), DISKS (1), DISK_SIZE (64M), LOAD_S (1.2: seconds of load per
# round), POINTS (6: random points per pair), MAX_POINTS (40: points checked
# per pair at most, a random choice among those picked), TOPOS.
set -eu
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/repl_lib.sh"
need cmp sort shuf
DISKS=${DISKS:-1}
DISK_SIZE=${DISK_SIZE:-64M}
LOAD_S=${LOAD_S:-1.2}
ROLE_ROUNDS=${ROLE_ROUNDS:-1}
POINTS=${POINTS:-6}
MAX_POINTS=${MAX_POINTS:-40}
TOPOS=${TOPOS:-appliances roles}
cd "$T"
T0=$(date +%s)

demo_init "$T/d" "$DISKS" "$DISK_SIZE"
i=0
while [ "$i" -lt "$DISKS" ]; do
  eval "SEED_$i=$(( $(rand 1000000) * 16 + i + 1 ))"
  eval "NEXT_$i=1 TORN_$i=0"
  eval "echo \"disk $i: pair \$PAIR_$i, load seed \$SEED_$i\""
  i=$((i + 1))
done
: > points.txt

# ---- the load ---------------------------------------------------------------------------
# load_start SECONDS: one replload per disk, from its NEXT write on
load_start() {
  i=0
  while [ "$i" -lt "$DISKS" ]; do
    eval "u=\$NBD_URI_$i s=\$SEED_$i f=\$NEXT_$i"
    "$LOAD" write "$(hostport "$u")" "$(export_of "$u")" --seed "$s" --from "$f" \
      --seconds "$1" --connect-wait 10 > "load$i.out" 2>> "load$i.err" &
    eval "LP_$i=$!"
    LIB_PIDS="$LIB_PIDS $!"
    i=$((i + 1))
  done
}

# load_wait EOF_OK: wait for every replload (at most 30 s); NEXT_i follows
# its acked count; EOF_OK=1: the server going away (exit 3) is expected
load_wait() {
  i=0
  while [ "$i" -lt "$DISKS" ]; do
    eval "lp=\$LP_$i"
    j=0
    while kill -0 "$lp" 2>/dev/null && [ "$(ps -o stat= -p "$lp" | cut -c1)" != Z ]; do
      j=$((j + 1))
      [ "$j" -le 300 ] || fail "replload of disk $i still running after 30 s"
      sleep 0.1
    done
    rc=0
    wait "$lp" || rc=$?
    k=$(sed -n 's/^acked //p' "load$i.out")
    [ -n "$k" ] || fail "replload of disk $i printed no acked count (rc $rc): $(tail -3 "load$i.err")"
    case $rc in
      0) ;;
      3) [ "$1" = 1 ] || fail "disk $i: the export went away while no NBD server was killed: $(tail -3 "load$i.err")" ;;
      *) fail "replload of disk $i failed (rc $rc): $(tail -3 "load$i.err")" ;;
    esac
    eval "NEXT_$i=$((k + 1))"
    i=$((i + 1))
  done
}

# source_check MAYBE_NEXT: every disk's source is the state after writes
# 1..NEXT-1 (MAYBE_NEXT=1: the write in flight at the kill may be there too)
source_check() {
  i=0
  while [ "$i" -lt "$DISKS" ]; do
    eval "src=\$SOURCE_$i s=\$SEED_$i k=\$((NEXT_$i - 1))"
    if [ "$1" = 1 ]; then set -- 1 --maybe-next; else set -- 0; fi
    "$LOAD" check "$src" --seed "$s" --upto "$k" ${2:-} > check.out 2>&1 ||
      fail "source of disk $i is not the state after the $k acknowledged writes: $(cat check.out)"
    i=$((i + 1))
  done
}

# note_points: the master target's durable seq of every pair, for the end
note_points() {
  i=0
  while [ "$i" -lt "$DISKS" ]; do
    eval "p=\$PAIR_$i"
    v=$(field "$p" mt_durable_seq || true)
    case $v in ''|null) ;; *) echo "$p $v" >> points.txt ;; esac
    i=$((i + 1))
  done
}

converge() {
  i=0
  while [ "$i" -lt "$DISKS" ]; do
    eval "p=\$PAIR_$i"
    wait_state "$p" protected "$1"
    wait_drained "$p"
    i=$((i + 1))
  done
}

# ---- topologies -------------------------------------------------------------------------
# roles_conf: agent.ini, ps.ini and a console file for the agent, from the demo's files
roles_conf() {
  set -- $(free_port 3)
  pslink=$1; amgmt=$2; pmgmt=$3
  sec=$(sed -n '/^\[peer secondary\]/,/^\[/s/^address *= *//p' "$PRIMARY_CONF")
  [ -n "$sec" ] || fail "no [peer secondary] address in $PRIMARY_CONF"
  for n in agent ps; do
    "$NODECTL" cert issue --ca "$D/ca" "$n" > /dev/null || fail "nodectl cert issue $n"
  done
  {
    printf '[node]\nname = agent\nroles = agent\ndata_dir = primary\n'
    printf '[trace]\nfile = primary/agent.trace.pb\n'
    printf '[tls]\nca = ca/ca.crt\ncert = ca/agent.crt\nkey = ca/agent.key\n'
    printf '[listen]\nmgmt = 127.0.0.1:%s\n' "$amgmt"
    printf '[peer ps]\naddress = 127.0.0.1:%s\n' "$pslink"
    printf '[link]\nhb_interval = 0.2\nhb_timeout = 1.5\nbackoff_min = 0.05\nbackoff_max = 0.3\n'
    awk '/^\[/ { on = /^\[disk / } on' "$PRIMARY_CONF"
  } > "$D/agent.ini"
  {
    printf '[node]\nname = ps\nroles = ps\ndata_dir = primary\n'
    printf '[trace]\nfile = primary/ps.trace.pb\n'
    printf '[tls]\nca = ca/ca.crt\ncert = ca/ps.crt\nkey = ca/ps.key\n'
    printf '[listen]\nlink = 127.0.0.1:%s\nmgmt = 127.0.0.1:%s\n' "$pslink" "$pmgmt"
    printf '[peer secondary]\naddress = %s\n' "$sec"
    printf '[link]\nhb_interval = 0.2\nhb_timeout = 1.5\nbackoff_min = 0.05\nbackoff_max = 0.3\n'
  } > "$D/ps.ini"
  sed "s/^endpoint *=.*/endpoint = 127.0.0.1:$amgmt/" "$D/nodectl.ini" > "$D/nodectl-agent.ini"
  NODECTL_CONF=$D/nodectl-agent.ini
  DIAG_CONFS=$D/ps.ini
  export NODECTL_CONF
}

# latest_check: with no write since the agent's recovery, the pair drained:
# the master target stops cleanly (SIGTERM), the latest point of every pair
# must equal its source (the resync the recovery made has a consistent point
# at its end), and the master target starts again
latest_check() {
  stop_clean "$mtproc" 10
  i=0
  while [ "$i" -lt "$DISKS" ]; do
    eval "p=\$PAIR_$i src=\$SOURCE_$i"
    restore_cmp "$p" "$src" latest.img
    seq=$(sed -n 's/.* at point \([0-9]*\) .*/\1/p' restore.out)
    end=$(sed -n "s/.*agent: pair $p: sync pass queued, seq [0-9]*\.\.\([0-9]*\).*/\1/p" "$T/$agentproc.log" | tail -1)
    [ -n "$end" ] || fail "no sync pass of $p in $agentproc.log after a crash"
    [ "${seq:-0}" -ge "$end" ] ||
      fail "$p: drained after the recovery's resync (pass ending at seq $end), yet the latest point is $seq"
    i=$((i + 1))
  done
  start_victim "$mtproc"
  converge "restart of $mtproc"
}

# start_victim NAME: start one process of the current topology
start_victim() {
  case $1 in
    primary) start_primary ;;
    secondary | mt) start_proc "$1" -c "$SECONDARY_CONF"; wait_ping "$SECONDARY_CONF" "$1" ;;
    agent) start_proc agent -c "$D/agent.ini"; wait_ping "$D/agent.ini" agent ;;
    ps) start_proc ps -c "$D/ps.ini"; wait_ping "$D/ps.ini" ps ;;
    *) fail "start_victim $1" ;;
  esac
}

# ---- rounds -------------------------------------------------------------------------------
kills=0
for topo in $TOPOS; do
  case $topo in
    appliances) victims="primary secondary"; nr=$ROUNDS; mtproc=secondary; agentproc=primary ;;
    roles) roles_conf; victims="agent ps mt"; nr=$ROLE_ROUNDS; mtproc=mt; agentproc=agent ;;
    *) fail "unknown topology $topo" ;;
  esac
  for victim in $victims; do start_victim "$victim"; done
  converge "start of $topo"
  r=1
  while [ "$r" -le "$nr" ]; do
    for victim in $victims; do
      case $victim in primary | agent) serves_nbd=1 ;; *) serves_nbd=0 ;; esac
      load_start "$LOAD_S"
      at=$(( $(rand 900) + 200 )); down=$(rand 800)
      sleep "$(ms "$at")"
      note_points
      stop_noded "$victim" KILL 5
      kills=$((kills + 1))
      if [ "$serves_nbd" = 1 ]; then
        load_wait 1
        source_check 1
        # the write in flight, if any: the disk may keep a part of it
        i=0
        while [ "$i" -lt "$DISKS" ]; do eval "TORN_$i=\"\$TORN_$i,\$NEXT_$i\""; i=$((i + 1)); done
      fi
      sleep "$(ms "$down")"
      start_victim "$victim"
      # the agent recovers under a new load in odd rounds, idle in even ones
      idle=0
      if [ "$serves_nbd" = 0 ]; then
        load_wait 0
      elif [ $((r % 2)) = 1 ]; then
        load_start 0.8
        load_wait 0
      else
        idle=1
      fi
      converge "SIGKILL of $victim"
      source_check "$idle" # idle: the write in flight at the kill may be there, or part of it
      acked=""
      i=0
      while [ "$i" -lt "$DISKS" ]; do eval "acked=\"\$acked \$((NEXT_$i - 1))\""; i=$((i + 1)); done
      what="source = all${acked} acknowledged writes"
      if [ "$idle" = 1 ]; then latest_check; what="$what = the latest point"; fi
      ok "$topo round $r: SIGKILL $victim at ${at} ms, down ${down} ms; protected, drained; $what"
    done
    r=$((r + 1))
  done
  for victim in $victims; do stop_clean "$victim" 10; done
  ok "$topo: stopped cleanly (SIGTERM, exit 0)"
done
for f in "$T"/*.log; do
  if grep -q 'AddressSanitizer\|runtime error' "$f"; then fail "$f: $(grep -m3 'AddressSanitizer\|runtime error' "$f")"; fi
done

# ---- the replica, offline -------------------------------------------------------------------
i=0
while [ "$i" -lt "$DISKS" ]; do
  eval "p=\$PAIR_$i src=\$SOURCE_$i s=\$SEED_$i k=\$((NEXT_$i - 1)) torn=\$TORN_$i"
  restore_cmp "$p" "$src" "r$i.img"
  last=$(sed -n 's/.* at point \([0-9]*\) .*/\1/p' restore.out)
  [ -n "$last" ] || fail "no point in: $(cat restore.out)"
  "$LOAD" check "r$i.img" --seed "$s" > check.out 2>&1 || fail "replica of $p: $(cat check.out)"
  grep -qx "prefix $k" check.out || fail "replica of $p: $(cat check.out), expected prefix $k"
  ok "$p: latest point $last = source = the state after all $k acknowledged writes"

  # points to check: noted before the kills, around the end of every sync pass, random
  {
    sed -n "s/^$p //p" points.txt
    cat "$T"/*.log | sed -n "s/.*agent: pair $p: sync pass queued, seq \([0-9]*\)\.\.\([0-9]*\).*/\1 \2/p" |
      while read -r a b; do
        echo $((a - 1)); echo "$b"; echo $((b + 1)); echo $((b + 3))
      done
    # the consistent ends of the passes (the trace's "pass A..E durable")
    tf=$TRACE_FILES
    [ ! -e "$D/primary/agent.trace.pb" ] || tf="$tf $D/primary/agent.trace.pb"
    "$NODETRACE" --json --pair "$p" $tf 2>/dev/null |
      sed -n 's/.*"detail":"pass [0-9]*\.\.\([0-9]*\) durable at the master target".*/\1/p' |
      while read -r e; do echo "$e"; echo $((e + 1)); done
    j=0
    while [ "$j" -lt "$POINTS" ]; do echo $(( $(rand "$last") + 1 )); j=$((j + 1)); done
  } | awk -v last="$last" '$1 >= 1 && $1 <= last' | sort -n -u | shuf -n "$MAX_POINTS" |
    sort -n > "pts$i.txt"
  checked=0; interior=0; prevk=0; prevs=0; seen=""
  while read -r seq; do
    if ! "$NODECTL" restore --offline "$MT_DIR" --pair "$p" --point "$seq" --out pt.img > restore.out 2>&1; then
      grep -q 'not a consistent point' restore.out || fail "restore $p point $seq: $(cat restore.out)"
      interior=$((interior + 1))
      continue
    fi
    "$LOAD" check pt.img --seed "$s" --torn "$torn" > check.out 2>&1 ||
      fail "$p point $seq is not the state after any prefix of the writes: $(cat check.out)"
    pk=$(sed -n 's/^prefix \([0-9]*\).*/\1/p' check.out)
    [ "$pk" -ge "$prevk" ] || fail "$p: point $seq holds writes 1..$pk, but point $prevs held 1..$prevk"
    prevk=$pk; prevs=$seq
    checked=$((checked + 1)); seen="$seen $seq:$pk"
  done < "pts$i.txt"
  [ "$checked" -ge 2 ] || fail "$p: only $checked points could be checked"
  ok "$p: $checked points are each the state after writes 1..K, K growing with the seq ($seen);" \
    "$interior inside a sync pass refused"
  i=$((i + 1))
done
ok "t51 done: $kills kills in $(elapsed_since "$T0") s"
