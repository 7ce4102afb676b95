#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
#
# t42_nodetrace_run.sh: nodetrace on the traces of a real run (issue 4,
# acceptance 1 and 2). The two demo appliances run as separate noded
# processes with a small write log, a small process server cache, fast link
# timers and small rotated trace files. The run: an initial sync of a disk
# written with qemu-io, an outage of the secondary long enough for the pair
# to fall back to bitmap mode while qemu-io writes through the export, the
# secondary's return, the resync, drained. The traces are then fetched from
# both management endpoints (nodectl trace --out) and rendered: the terminal
# timeline (each chart's path in order, causal order across the two nodes,
# every actor's lines, the clock offsets measured at hello), --json, --pair,
# rotation (files bounded by [trace] max/keep, read as one unbroken run),
# and the HTML page in headless Chromium (no network, no script errors,
# every lane, both charts as Ragel's graphs with the visited transitions
# highlighted, the outage in the page's data). The screenshot is saved as
# $BUILD/nodetrace-run.png for review.
#
# Needs: noded, nodectl, nodetrace, $BUILD/fsm/*.svg (make all), qemu-io,
# python3, chromium.
set -eu
. "$(dirname "$0")/lib.sh"
command -v qemu-io > /dev/null || fail "qemu-io is not installed (make deps)"
command -v chromium > /dev/null || fail "chromium is not installed (make deps)"
TRACE_MAX=4096 # [trace] max at its minimum (4K): the primary's trace rotates in this run
TRACE_KEEP=5   # [trace] keep: room for the whole run, so its start is still there
D=$T/demo

# ---- the site: two appliances, small log and cache, small rotated traces ---------------
"$NODED" --demo "$D" --disk-size 8M --init-only 2> "$T/init.log" ||
  fail "noded --demo --init-only: $(cat "$T/init.log")"
# shellcheck disable=SC1091
. "$D/demo.env"
export NODECTL_CONF
for v in PRIMARY_CONF SECONDARY_CONF PAIR_0 NBD_URI_0 SOURCE_0; do
  eval "[ -n \"\${$v:-}\" ]" || fail "demo.env has no $v"
done
sed -i 's/^cache_quota = .*/cache_quota = 64K/' "$PRIMARY_CONF"
grep -q '^cache_quota = 64K$' "$PRIMARY_CONF" || fail "no [ps] cache_quota in $PRIMARY_CONF"
for f in "$PRIMARY_CONF" "$SECONDARY_CONF"; do
  sed -i "s|^\\(file = [a-z]*/trace.pb\\)\$|\\1\\nmax = $TRACE_MAX\\nkeep = $TRACE_KEEP|" "$f"
  grep -q "^max = $TRACE_MAX\$" "$f" || fail "no [trace] file in $f"
  printf '\n[link]\nhb_interval = 0.2\nhb_timeout = 1.5\nbackoff_min = 0.05\nbackoff_max = 0.4\n' >> "$f"
done
printf '\n[agent]\nlog_max = 64K\n' >> "$PRIMARY_CONF"
# the secondary's console file: its management endpoint, the admin certificate
smgmt=$(sed -n 's/^mgmt = //p' "$SECONDARY_CONF")
[ -n "$smgmt" ] || fail "no [listen] mgmt in $SECONDARY_CONF"
printf '[console]\nendpoint = %s\n[tls]\nca = %s/ca/ca.crt\ncert = %s/ca/admin.crt\nkey = %s/ca/admin.key\n' \
  "$smgmt" "$D" "$D" "$D" > "$T/secondary-console.ini"

# data on the disk before protection starts: the initial sync has to copy it
qemu-io -f raw -c 'write -P 0x11 0 1M' -c 'write -P 0x22 3M 512K' "$SOURCE_0" > /dev/null ||
  fail "qemu-io on $SOURCE_0"

# ---- the run ---------------------------------------------------------------------------------
run() { "$NODED" -c "$2" 2>> "$T/$1.log" & echo $! > "$T/$1.pid"; LIB_PIDS="$LIB_PIDS $!"; }
t0=$(date +%s%N)
step() { echo "info: $(( ($(date +%s%N) - t0) / 1000000 )) ms: $*"; }
run secondary "$SECONDARY_CONF"
wait_for "$T/secondary.log" "node secondary ready" 10 # so that the first connect succeeds
run primary "$PRIMARY_CONF"
wait_for "$T/primary.log" "node primary ready" 10
"$NODECTL" wait "$PAIR_0" --state protected --timeout 20 > /dev/null || fail "initial sync"
"$NODECTL" wait "$PAIR_0" --drained --timeout 20 > /dev/null || fail "drained after the initial sync"
step "initial sync done"

# the outage: 32 writes of 16 KiB overflow the cache (64K) and the log (64K)
stop_noded secondary
set --
i=0
while [ $i -lt 32 ]; do set -- "$@" -c "write -P $((i + 64)) $((i * 16))k 16k"; i=$((i + 1)); done
qemu-io -f raw "$@" "$NBD_URI_0" > "$T/qemu-io.out" || fail "qemu-io through $NBD_URI_0"
[ "$(grep -c '^wrote 16384/16384 bytes' "$T/qemu-io.out")" -eq 32 ] || fail "qemu-io: not 32 writes"
"$NODECTL" wait "$PAIR_0" --state bitmap_mode --timeout 10 > /dev/null || fail "no bitmap mode in the outage"
step "bitmap mode"
sleep 1 # a few reconnection attempts
run secondary "$SECONDARY_CONF"
wait_for "$T/secondary.log" "node secondary ready" 10 2
"$NODECTL" wait "$PAIR_0" --state protected --timeout 20 > /dev/null || fail "no resync after the outage"
"$NODECTL" wait "$PAIR_0" --drained --timeout 20 > /dev/null || fail "not drained after the resync"
step "resynced and drained"
ok "real run: initial sync, outage with bitmap mode, resync, drained"

# ---- fetch the traces through both management endpoints --------------------------------------
F=$T/fetched
"$NODECTL" trace --out "$F" > "$T/fetch1.out" || fail "nodectl trace (primary)"
"$NODECTL" --conf "$T/secondary-console.ini" trace --out "$F" > "$T/fetch2.out" ||
  fail "nodectl trace (secondary)"
grep -q "^fetched [0-9]* files* .* from node primary; read them with: nodetrace $F/primary/trace.pb\$" "$T/fetch1.out" ||
  fail "nodectl trace (primary) said: $(tail -n 1 "$T/fetch1.out")"
grep -q "from node secondary; read them with: nodetrace $F/secondary/trace.pb\$" "$T/fetch2.out" ||
  fail "nodectl trace (secondary) said: $(tail -n 1 "$T/fetch2.out")"
# every fetched file is the node's file (a live one as it was when fetched)
for node in primary secondary; do
  for f in "$F/$node"/trace.pb*; do
    n=$(wc -c < "$f")
    [ "$n" -gt 0 ] || fail "fetched $f is empty"
    cmp -n "$n" "$f" "$D/$node/$(basename "$f")" || fail "fetched $f differs from the node's"
  done
done
step "fetched"
ok "nodectl trace fetched $(ls "$F/primary" | wc -l) + $(ls "$F/secondary" | wc -l) trace files"

# ---- rotation: bounded by max and keep, read across files as one run -------------------------
for node in primary secondary; do
  for f in "$D/$node"/trace.pb*; do
    [ "$(wc -c < "$f")" -le $TRACE_MAX ] || fail "$f is larger than [trace] max $TRACE_MAX"
  done
  set -- "$D/$node"/trace.pb*
  nf=$#
  [ "$nf" -le $((TRACE_KEEP + 1)) ] || fail "$node keeps $nf trace files, [trace] keep is $TRACE_KEEP"
done
[ -f "$F/primary/trace.pb.1" ] || fail "the primary's trace did not rotate (max $TRACE_MAX)"
[ ! -f "$F/primary/trace.pb.$TRACE_KEEP" ] || fail "the run filled every kept file: its start may be lost"
P="$F/primary/trace.pb"
S="$F/secondary/trace.pb"
"$NODETRACE" --json "$P" > "$T/pjson" 2> "$T/perr" || fail "nodetrace --json: $(cat "$T/perr")"
[ ! -s "$T/perr" ] || fail "nodetrace: $(cat "$T/perr")"
python3 - "$T/pjson" <<'EOF' || fail "the primary's records across rotation are not one unbroken run from seq 0"
import json, sys
seqs = [json.loads(l)["seq"] for l in open(sys.argv[1])]
assert seqs == list(range(len(seqs))), seqs
EOF
oldest=$(ls "$F/primary" | sed -n 's/^trace\.pb\.\([0-9]*\)$/\1/p' | sort -n | tail -n 1)
"$NODETRACE" --no-rotated "$F/primary/trace.pb.$oldest" | grep -q ' primary agent pair created -> initial_sync ' ||
  fail "the first transition is not in the oldest rotated file trace.pb.$oldest"
[ "$("$NODETRACE" --no-rotated "$P" | grep -vc '^#')" -lt "$(wc -l < "$T/pjson")" ] ||
  fail "--no-rotated reads as much as the rotated set"
ok "trace files within max $TRACE_MAX / keep $TRACE_KEEP; $((oldest + 1)) primary files read as one run of $(wc -l < "$T/pjson") records"

# ---- the terminal timeline -------------------------------------------------------------------
"$NODETRACE" "$P" "$S" > "$T/out" 2> "$T/err" || fail "nodetrace: $(cat "$T/err")"
[ ! -s "$T/err" ] || fail "nodetrace stderr: $(cat "$T/err")"
grep -v '^#' "$T/out" > "$T/lines"
cut -d' ' -f1 "$T/lines" | sort -c || fail "the timeline is not in time order"
# the pair chart's path, in order (fsm/pair.rl)
awk '$4 == "pair" { print $2, $3, $5, $6, $7, $8 }' "$T/lines" > "$T/pair.got"
cat > "$T/pair.exp" <<'EOF'
primary agent created -> initial_sync initial
primary agent initial_sync -> protected sync_done
primary agent protected -> bitmap_mode log_full
primary agent bitmap_mode -> resyncing drained
primary agent resyncing -> protected sync_done
EOF
diff "$T/pair.exp" "$T/pair.got" || fail "the pair's path differs"
grep -q ' initial not seeded yet: 8388608 bytes to sync$' "$T/lines" || fail "initial sync detail"
grep -q ' protected -> bitmap_mode log_full log [0-9]* bytes + [0-9]* > log_max 65536$' "$T/lines" ||
  fail "bitmap mode detail"
# the primary's outbound link: up, down into backoff, retries refused, up again
path=$(awk '$3 == "link:secondary" && $6 == "->" { printf "%s ", $7 }' "$T/lines")
echo "info: link:secondary went through: $path"
echo "$path" | grep -Eq '^connecting handshake hello up backoff (connecting (handshake (hello )?)?backoff )+connecting handshake hello up $' ||
  fail "link:secondary path: $path"
grep -Eq ' primary link:secondary link up -> backoff fail peer said goodbye .*node stopping' "$T/lines" ||
  fail "the secondary's goodbye is not the reason of the backoff"
[ "$(grep -c ' primary link:secondary link connecting -> backoff fail connect: Connection refused' "$T/lines")" -ge 1 ] ||
  fail "no refused reconnection in the outage"
# the secondary: one accepted link from the primary before the outage, one after
python3 - "$T/lines" > "$T/sec.lanes" <<'EOF' || fail "the secondary's links from the primary"
import sys
lanes = {}
for l in open(sys.argv[1]):
    f = l.split()
    if f[1] == "secondary" and f[3] == "link":
        lanes.setdefault(f[2], []).append(l)
prim = [a for a, ls in lanes.items() if any("hello_ok peer primary " in l for l in ls)]
assert len(prim) == 2, prim
first = [l.split()[6] for l in lanes[prim[0]]]
second = [l.split()[6] for l in lanes[prim[1]]]
assert first == ["handshake", "hello", "up", "closed"], first
assert second[:3] == ["handshake", "hello", "up"], second
assert "close node stopping" in lanes[prim[0]][-1], lanes[prim[0]][-1]
print(prim[0]); print(prim[1])
EOF
sec1=$(sed -n 1p "$T/sec.lanes")
sec2=$(sed -n 2p "$T/sec.lanes")
# causal order across the two nodes
at() { grep -n -- "$1" "$T/lines" | head -n 1 | cut -d: -f1; }
l_close=$(at " secondary $sec1 link up -> closed ")
l_bitmap=$(at " primary agent pair protected -> bitmap_mode ")
l_up2=$(at " secondary $sec2 link hello -> up ")
l_resync=$(at " primary agent pair bitmap_mode -> resyncing ")
l_sync1=$(at " primary agent pair initial_sync -> protected ")
l_up1=$(at " primary link:secondary link hello -> up ")
[ "$l_up1" -lt "$l_sync1" ] && [ "$l_sync1" -lt "$l_close" ] && [ "$l_close" -lt "$l_bitmap" ] &&
  [ "$l_bitmap" -lt "$l_up2" ] && [ "$l_up2" -lt "$l_resync" ] ||
  fail "causal order across nodes: up $l_up1, synced $l_sync1, secondary closed $l_close, bitmap $l_bitmap, secondary up $l_up2, resync $l_resync"
# every actor that traces has its lines: the agent, the outbound link, the accepted ones
for a in "primary agent pair" "primary link:secondary link" "secondary $sec1 link" "secondary $sec2 link"; do
  grep -q " $a " "$T/lines" || fail "no lines of $a"
done
ok "terminal: the pair's path, the link's outage and return, causal order across nodes"

# ---- clock offsets measured at hello ---------------------------------------------------------
"$NODETRACE" --json "$P" "$S" > "$T/json"
[ "$(wc -l < "$T/json")" -eq "$(wc -l < "$T/lines")" ] || fail "--json: not one object per line"
grep '^# node ' "$T/out" > "$T/offsets"
python3 - "$T/json" "$T/offsets" "$PAIR_0" <<'EOF' || fail "clock offsets"
import json, re, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
heads = {}
for l in open(sys.argv[2]):
    m = re.match(r"^# node (\S+): clock offset to (\S+) ([+-]\d+) us$", l.strip())
    assert m, l
    heads[(m.group(1), m.group(2))] = int(m.group(3))
for node, peer in (("primary", "secondary"), ("secondary", "primary")):
    assert (node, peer) in heads, (node, peer, heads)
    hellos = [r for r in rows if r["node"] == node and r["peer"] == peer and r["event"] == "hello_ok"]
    assert len(hellos) == 2, (node, peer, len(hellos))  # before and after the outage
    last = [r["clock_offset_us"] for r in rows if r["node"] == node and r["peer"] == peer
            and r["clock_offset_us"] != 0]
    assert heads[(node, peer)] == (last[-1] if last else 0), (node, peer, heads, last)
    # one host, one clock: what hello measured is the round trip's error only
    assert abs(heads[(node, peer)]) < 100000, heads
    for r in hellos:
        assert r["detail"].endswith("clock offset %d us" % r["clock_offset_us"]), r["detail"]
# --json content: the pair's records name it, times never decrease
pair = [r for r in rows if r["machine"] == "pair"]
assert len(pair) == 5 and all(r["pair"] == sys.argv[3] and r["actor"] == "agent" for r in pair), pair
assert [r["time_us"] for r in rows] == sorted(r["time_us"] for r in rows)
assert [(r["from"], r["to"]) for r in pair] == [("created", "initial_sync"), ("initial_sync", "protected"),
    ("protected", "bitmap_mode"), ("bitmap_mode", "resyncing"), ("resyncing", "protected")]
assert not any(r["refused"] for r in rows), [r for r in rows if r["refused"]]
print("info: offsets " + ", ".join("%s->%s %+d us" % (a, b, v) for (a, b), v in sorted(heads.items())))
EOF
ok "clock offsets of both nodes in the header, as measured at hello; --json content"

# ---- --pair ------------------------------------------------------------------------------------
"$NODETRACE" --pair "$PAIR_0" "$P" "$S" | grep -v '^#' > "$T/pairf"
[ "$(wc -l < "$T/pairf")" -eq 5 ] || fail "--pair $PAIR_0: $(wc -l < "$T/pairf") lines, expected 5"
awk '{ print $2, $3, $5, $6, $7, $8 }' "$T/pairf" | diff "$T/pair.exp" - > /dev/null || fail "--pair lines"
[ "$("$NODETRACE" --pair nosuchpair "$P" "$S" | grep -vc '^#')" -eq 0 ] || fail "--pair nosuchpair shows lines"
ok "--pair $PAIR_0: the five transitions of the pair only"

# ---- the HTML page ---------------------------------------------------------------------------------
"$NODETRACE" --html "$T/run.html" "$P" "$S" 2> "$T/herr" || fail "nodetrace --html: $(cat "$T/herr")"
[ ! -s "$T/herr" ] || fail "nodetrace --html: $(cat "$T/herr")"
if grep -Eiq '(src|href)=["'"'"']?(https?:|//)|@import|url\((https?:|//)' "$T/run.html"; then
  fail "the page references the network"
fi
browse() {
  page=$1; shift
  prof=$(mktemp -d "$T/chrome.XXXXXX")
  timeout -k 5 60 chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --disable-dev-shm-usage --proxy-server=127.0.0.1:9 --user-data-dir="$prof" \
    --enable-logging=stderr --v=0 "$@" "file://$page" 2> "$T/chrome.err"
}
browse "$T/run.html" --dump-dom > "$T/dom.html" || fail "chromium --dump-dom: $(tail -n 5 "$T/chrome.err")"
grep -q '<div id="nt-status" data-ready="1"' "$T/dom.html" || fail "the page script did not finish"
grep -q '<pre id="nt-errors" data-count="0"' "$T/dom.html" ||
  fail "script errors: $(grep -o '<pre id="nt-errors".*' "$T/dom.html" | head -n 3)"
if grep -q 'Uncaught' "$T/chrome.err"; then fail "console: $(grep Uncaught "$T/chrome.err" | head -n 3)"; fi
grep -q "data-records=\"$(wc -l < "$T/lines")\"" "$T/dom.html" || fail "the page's record count"
# every actor's lane, with its count and the peer its hello named
python3 - "$T/json" "$T/dom.html" "$sec1" "$sec2" <<'EOF' || fail "lanes"
import json, re, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
dom = open(sys.argv[2]).read()
want = {}
for r in rows:
    want[(r["node"], r["actor"])] = want.get((r["node"], r["actor"]), 0) + 1
lanes = [m.groups() for m in re.finditer(r'class="nt-lane[^"]*" id="nt-lane-\d+" data-node="([^"]*)" '
         r'data-actor="([^"]*)" data-count="(\d+)" data-refused="0"(?: data-peer="([^"]*)")?', dom)]
got = {(n, a): int(c) for n, a, c, p in lanes}
assert got == want, (sorted(got.items()), sorted(want.items()))
assert got[("primary", "agent")] == 5 and ("primary", "link:secondary") in got
peers = {(n, a): p for n, a, c, p in lanes}
assert peers[("primary", "link:secondary")] == "secondary", peers
assert peers[("primary", "agent")] is None, peers
assert [a for (n, a), p in sorted(peers.items()) if n == "secondary" and p == "primary"] == \
    sorted(sys.argv[3:5]), peers
print("info: %d lanes" % len(got))
EOF
# both charts as Ragel's graphs, the visited transitions highlighted
chart() { # the section of chart $1 of the dumped page
  python3 - "$T/dom.html" "$1" <<'EOF'
import sys
d = open(sys.argv[1]).read()
a = d.index('id="nt-chart-%s"' % sys.argv[2])
b = d.find('<div class="nt-chart"', a + 1)
print(d[a:b if b > 0 else len(d)])
EOF
}
chart pair > "$T/pair.html" || fail "no pair chart in the page"
chart link > "$T/link.html" || fail "no link chart in the page"
grep -q 'data-graph="ragel"' "$T/pair.html" || fail "the pair chart is not Ragel's graph"
grep -q 'data-graph="ragel"' "$T/link.html" || fail "the link chart is not Ragel's graph"
v=$(grep -o 'class="edge nt-visited"' "$T/pair.html" | wc -l)
[ "$v" -eq 5 ] || fail "pair chart: $v visited edges highlighted, expected 5"
grep -q 'data-matched="5"' "$T/pair.html" || fail "pair chart: not every visited transition is in the graph"
for s in created initial_sync protected bitmap_mode resyncing; do
  grep -q "class=\"node nt-visited\"[^>]*data-state=\"$s\"" "$T/pair.html" || fail "pair chart: state $s not highlighted"
done
grep -q "class=\"node\"[^>]*data-state=\"paused\"" "$T/pair.html" || fail "pair chart: paused should not be highlighted"
# the link chart: every distinct (from, to) of the trace is a highlighted edge
nl=$(python3 - "$T/json" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print(len({(r["from"], r["to"]) for r in rows if r["machine"] == "link"}),
      len({(r["from"], r["event"], r["to"]) for r in rows if r["machine"] == "link"}))
EOF
)
v=$(grep -o 'class="edge nt-visited"' "$T/link.html" | wc -l)
[ "$v" -eq "${nl% *}" ] || fail "link chart: $v visited edges highlighted, expected ${nl% *}"
grep -q "data-matched=\"${nl#* }\"" "$T/link.html" || fail "link chart: not every visited transition is in the graph"
# Ragel labels edges with event numbers: the page names them, visited or not
if grep -Eq ">([0-9]+|'[^']*')(\.\.[^ ]*)? / [a-z_]+( ×[0-9]+)?</text>" "$T/pair.html" "$T/link.html"; then
  fail "a chart edge is still labelled with an event number"
fi
[ "$(grep -o '>pause / pause</text>' "$T/pair.html" | wc -l)" -eq 5 ] || fail "pair chart: the unvisited pause edges are not named"
grep -q '>close / close</text>' "$T/link.html" || fail "link chart: the unvisited close edges are not named"
# the outage in the page's data: the rows of the charts' visit tables
for row in 'data-from="protected" data-event="log_full" data-to="bitmap_mode"' \
           'data-from="bitmap_mode" data-event="drained" data-to="resyncing"' \
           'data-from="up" data-event="fail" data-to="backoff"' \
           'data-from="backoff" data-event="retry" data-to="connecting"'; do
  grep -q "<tr[^>]* $row" "$T/dom.html" || fail "no visit row $row"
done
grep -q 'data-node="primary" data-peer="secondary" data-offset-us="-\{0,1\}[0-9]*"' "$T/dom.html" ||
  fail "the primary's clock offset is not in the summary"
grep -q 'data-node="secondary" data-peer="primary" data-offset-us="-\{0,1\}[0-9]*"' "$T/dom.html" ||
  fail "the secondary's clock offset is not in the summary"
ok "page: no errors, every lane, pair and link charts with the visited transitions, the outage"

browse "$T/run.html" --screenshot="$BUILD/nodetrace-run.png" --window-size=1400,1350 > /dev/null ||
  fail "screenshot failed: $(tail -n 5 "$T/chrome.err")"
[ -s "$BUILD/nodetrace-run.png" ] || fail "no screenshot"
ok "screenshot $BUILD/nodetrace-run.png"
step "done"
echo "PASS t42_nodetrace_run"
