#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
#
# t52_repl_outage.sh: issue 3 acceptance 3. The secondary is down longer
# than the process server's cache and the agent's log can cover: the pair
# goes to bitmap_mode (status and trace say so), and once the secondary is
# back the resync sends only the dirty regions.
#
# The demo's appliances run apart, the primary with [ps] cache_quota = 2M,
# [ps] cache = spool and [agent] log_max = 1M. disk0 (64 MiB) starts with 24 MiB of random
# data written into its image before the first start, so the initial sync
# has data to read and holes to skip; drained, the replica equals it.
# Then the secondary stops (SIGTERM), and through the export:
#   1. a 4 MiB sequential write (64 KiB requests): more than cache + log,
#      so the pair must reach bitmap_mode;
#   2. in bitmap_mode, SCATTER more writes of 4..64 KiB at random 4 KiB
#      aligned offsets, each with its own byte pattern.
# `nodectl status` must show bitmap_mode and dirty bytes, and
# `nodetrace --json $TRACE_FILES` the pair's transition to bitmap_mode.
# The process server's status must carry its cache warning (over 75 %).
# The secondary returns: the pair must go bitmap_mode -> resyncing ->
# protected and drain. Then, with everything stopped, offline:
#   - the latest point equals the source (cmp);
#   - bytes on the wire: the record bytes the process server sent to the
#     master target since the outage began (status raw_sent, before LZ4)
#     against the bytes that differ between the replica at the start of the
#     outage and the source: at most 1.05x (the writes are laid out so that
#     no byte is written twice);
#   - the resync pass A..B (from the agent's log): the dirty bytes it had to
#     cover against the bytes that differ between the point just before it
#     (A-1, the replica as the pass found it) and the source: at most 1.05x
#     (the bitmap's 4 KiB granularity costs only the bytes of a rewritten
#     block that kept their value).
#   - the hop from the agent to its process server: the data bytes the
#     agent read and sent for the pass (agent status sync.data_bytes_sent)
#     against the bytes that differ before the pass, and every record byte
#     it sent since the outage began (ship.bytes) against the bytes that
#     differ since then: at most 2x each. The cache (2M) is much smaller
#     than the agent's window (8 MiB): the agent must keep within the
#     credit its process server gives (WriteAck.credit) and wait, not have
#     batches refused with ACK_FULL and send them again (that cost 56-95x).
#
# Knobs: SCATTER (120 writes), DISK_SIZE (64M).
set -eu
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/repl_lib.sh"
need qemu-io cmp awk
SCATTER=${SCATTER:-120}
DISK_SIZE=${DISK_SIZE:-64M}
cd "$T"
T0=$(date +%s)

demo_init "$T/d" 1 "$DISK_SIZE"
grep -q '^cache_quota = ' "$PRIMARY_CONF" || fail "no cache_quota in $PRIMARY_CONF"
sed -i 's/^cache_quota = .*/cache_quota = 2M/' "$PRIMARY_CONF"
# the process server's cache is what this test fills: spool mode (the
# default for a ps beside its agent is relay, where the agent's log holds
# the backlog and no ps cache fills)
ini_set "$PRIMARY_CONF" ps cache spool
if grep -q '^\[agent\]' "$PRIMARY_CONF"; then
  ini_set "$PRIMARY_CONF" agent log_max 1M
else
  printf '\n[agent]\nlog_max = 1M\n' >> "$PRIMARY_CONF"
fi
dd if=/dev/urandom of="$SOURCE_0" bs=1M count=24 conv=notrunc status=none
size=$(stat -c %s "$SOURCE_0")

# jstat KEY: the first number named KEY in `nodectl --json status` (pair 0 is
# the only pair): raw_sent (ps: record bytes sent to the master target,
# before LZ4), data_bytes_sent (agent: data bytes read and sent for sync
# references, resends included)
jstat() {
  "$NODECTL" --json status | tr '{,' '\n\n' | sed -n "s/^\"$1\":\([0-9]*\)\$/\1/p" | head -1
}
# jship: the record bytes the agent sent to its process server (status
# ship.bytes, resends included)
jship() {
  "$NODECTL" --json status | sed -n 's/.*"ship":{[^}]*"bytes":\([0-9]*\).*/\1/p' | head -1
}

start_primary
start_secondary
wait_state "$PAIR_0" protected "the initial sync"
wait_drained "$PAIR_0"
seed_wire=$(jstat raw_sent)
seed_read=$(jstat data_bytes_sent)
[ "${seed_wire:-0}" -ge $((24 * 1048576)) ] || fail "initial sync sent $seed_wire bytes, expected >= 24 MiB"
[ "$seed_wire" -le $((24 * 1048576 * 105 / 100)) ] ||
  fail "initial sync sent $seed_wire bytes to the master target for 24 MiB of data: holes not skipped?"
ok "initial sync: $seed_wire bytes to the master target for 24 MiB of data in a $size-byte disk" \
  "(the agent read and sent $seed_read bytes to its process server, resends included)"

# ---- outage --------------------------------------------------------------------------
stop_clean secondary
restore_cmp "$PAIR_0" "$SOURCE_0" before.img
ok "secondary stopped; its replica equals the source"
d0=$(jstat data_bytes_sent); w0=$(jstat raw_sent); s0=$(jship)
[ -n "$s0" ] || fail "no ship.bytes in the agent status"

set --
off=$((32 * 1048576))
while [ "$off" -lt $((36 * 1048576)) ]; do
  set -- "$@" -c "write -P 90 $off 65536"
  off=$((off + 65536))
done
qemu-io -f raw -t writeback "$@" "$NBD_URI_0" > qio.out 2>&1 || fail "qemu-io: $(tail -3 qio.out)"
"$NODECTL" wait "$PAIR_0" --state bitmap_mode --timeout 20 > wait.out 2>&1 ||
  fail "4 MiB written with the secondary down, cache 2M, log 1M: no bitmap_mode: $(cat wait.out)"
ok "4 MiB written during the outage: bitmap_mode"

set --
# anywhere but the 4 MiB already written, so that no byte is sent twice
blocks=$(((size - 4 * 1048576) / 4096 - 16))
i=0
while [ "$i" -lt "$SCATTER" ]; do
  o=$(( $(rand "$blocks") * 4096 ))
  [ "$o" -lt $((32 * 1048576)) ] || o=$((o + 4 * 1048576))
  l=$(( ($(rand 16) + 1) * 4096 )); pat=$(( $(rand 254) + 1 ))
  set -- "$@" -c "write -P $pat $o $l"
  i=$((i + 1))
done
qemu-io -f raw -t writeback "$@" "$NBD_URI_0" > qio.out 2>&1 || fail "qemu-io: $(tail -3 qio.out)"
"$NODECTL" status > status.out 2>&1 || fail "nodectl status: $(cat status.out)"
grep -q "$PAIR_0 *bitmap_mode" status.out || fail "status does not show bitmap_mode: $(cat status.out)"
dirty=$(field "$PAIR_0" bitmap_dirty_bytes)
[ "${dirty:-0}" -gt 0 ] || fail "bitmap_mode with bitmap_dirty_bytes $dirty"
"$NODETRACE" --json $TRACE_FILES > trace.json 2>trace.err || fail "nodetrace: $(cat trace.err)"
grep '"machine":"pair"' trace.json | grep "\"pair\":\"$PAIR_0\"" | grep -q '"to":"bitmap_mode"' ||
  fail "no transition of $PAIR_0 to bitmap_mode in the trace: $(grep '"machine":"pair"' trace.json | tail -5)"
"$NODECTL" --json status | grep -q '"cache_warning":true' || fail "no cache warning in the ps status"
ok "$SCATTER scattered writes more; status: bitmap_mode, $dirty bytes dirty, cache warning; trace: -> bitmap_mode"

# ---- the secondary returns -----------------------------------------------------------------
start_secondary
wait_state "$PAIR_0" protected "the outage"
wait_drained "$PAIR_0"
d1=$(jstat data_bytes_sent); w1=$(jstat raw_sent); s1=$(jship); rewinds=$(jstat rewinds)
"$NODETRACE" --json $TRACE_FILES > trace.json 2>trace.err || fail "nodetrace: $(cat trace.err)"
grep '"machine":"pair"' trace.json | grep "\"pair\":\"$PAIR_0\"" |
  sed -n 's/.*"from":"\([a-z_]*\)","event":"[A-Za-z_]*","to":"\([a-z_]*\)".*/\1 -> \2/p' > pair.tr
grep -q '^bitmap_mode -> resyncing$' pair.tr || fail "no bitmap_mode -> resyncing in the trace: $(cat pair.tr)"
tail -1 pair.tr | grep -q -- '-> protected$' || fail "the pair's last transition is not to protected: $(cat pair.tr)"
stop_clean primary
stop_clean secondary
ok "secondary back: resyncing -> protected, drained; stopped cleanly"

restore_cmp "$PAIR_0" "$SOURCE_0" after.img
ok "replica = source"

# what the outage cost on the wire: everything sent to the master target
# since the secondary stopped, against what differs since then
set -- $("$LOAD" diff before.img "$SOURCE_0")
[ "$1" = bytes ] || fail "replload diff: $*"
differ=$2; dblocks=$4
wire=$((w1 - w0))
echo "outage: $wire record bytes sent to the master target (before LZ4) for $differ bytes" \
  "($dblocks blocks of 4 KiB) that differ between the replica before the outage and the source" \
  "(ratio $(awk -v s="$wire" -v d="$differ" 'BEGIN { printf "%.4f", s / d }'))"

# the resync pass alone: the regions it covered (the bitmap's dirty bytes
# when the secondary came back) against what differs between the replica
# as the pass found it (the point just before the pass) and the source
pass=$(sed -n 's/.*agent: pair [^:]*: sync pass queued, seq \([0-9]*\)\.\.\([0-9]*\).*/\1 \2/p' primary.log | tail -1)
a=${pass% *}
[ -n "$a" ] && [ "$a" -gt 1 ] || fail "no resync pass in the log: $(grep 'sync pass' primary.log)"
restore "$PAIR_0" $((a - 1)) pre.img
set -- $("$LOAD" diff pre.img "$SOURCE_0")
pdiffer=$2; pblocks=$4
echo "resync pass $pass: $dirty dirty bytes resynced for $pdiffer bytes ($pblocks blocks)" \
  "that differ between the replica before the pass and the source" \
  "(ratio $(awk -v s="$dirty" -v d="$pdiffer" 'BEGIN { printf "%.4f", s / d }'))"
# the hop from the agent to its process server (resends after ACK_FULL
# would count here, not on the wire to the master target)
sent=$((d1 - d0)); shipped=$((s1 - s0))
echo "agent -> process server: $sent data bytes read and sent for the pass" \
  "(resends included; ratio $(awk -v s="$sent" -v d="$pdiffer" 'BEGIN { printf "%.4f", s / d }') to the bytes that differ before the pass);" \
  "$shipped record bytes sent since the outage began" \
  "(ratio $(awk -v s="$shipped" -v d="$differ" 'BEGIN { printf "%.4f", s / d }') to the bytes that differ since then);" \
  "${rewinds:-?} rewinds after ACK_FULL"

[ "$differ" -gt 0 ] && [ "$pdiffer" -gt 0 ] || fail "nothing differs"
[ "$wire" -ge "$differ" ] || fail "$wire bytes sent for $differ that differ, yet the replica is equal?"
[ $((wire * 100)) -le $((differ * 105)) ] || fail "the outage cost $wire bytes on the wire for $differ that differ (> 1.05x)"
[ "$dirty" -ge "$pdiffer" ] || fail "the resync covered $dirty bytes for $pdiffer that differ, yet the replica is equal?"
[ $((dirty * 100)) -le $((pdiffer * 105)) ] || fail "the resync covered $dirty bytes for $pdiffer that differ (> 1.05x)"
[ "$sent" -ge "$pdiffer" ] || fail "the agent sent $sent bytes for the pass, less than the $pdiffer that differ"
[ "$sent" -le $((pdiffer * 2)) ] ||
  fail "the agent sent $sent data bytes to its process server for a pass over $pdiffer that differ (> 2x): batches sent again?"
[ "$shipped" -ge "$differ" ] || fail "the agent sent $shipped record bytes for $differ that differ, yet the replica is equal?"
[ "$shipped" -le $((differ * 2)) ] ||
  fail "the agent sent $shipped record bytes to its process server for $differ that differ (> 2x): batches sent again?"
ok "the outage cost at most 1.05x the bytes that differ on the wire; the resync covered at most 1.05x;" \
  "the agent sent at most 2x of them to its process server"
ok "t52 done in $(elapsed_since "$T0") s"
