#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
#
# t20_mgmt.sh: the management endpoint and nodectl's console commands, on
# real processes over mutual TLS 1.3 with certificates from nodectl.
#
# Part 1, noded with [listen] mgmt: `nodectl status --json` is one JSON
# document (checked by python3's parser, not ours) with the node's fields
# and its links (a configured peer that is not there shows as down);
# a console whose certificate comes from another site CA is refused (one
# line, exit 1) and the node keeps serving; a node certificate may read;
# a wrong endpoint is one line and exit 1; bad usage is one line and exit 2.
# `nodectl trace --out DIR` fetches the node's trace file: the copy is the
# file as it was when the fetch began, so after the node stopped it must be
# a byte-for-byte prefix of the node's file (cmp), no shorter than the file
# was just before the fetch, and end on a record boundary (nodetrace reads
# it without complaint). (It cannot be the whole file: the node traces the
# fetching connection's close and its own shutdown after the fetch.)
#
# Part 2, it-bin/mgmtnode: a node whose status provider follows a scripted
# timeline (initial_sync, then protected, then drained), standing in for
# the data-path roles: wait --state and --drained return when the pair gets
# there, time out with a line saying where it stood, refuse an unknown pair,
# and survive the node being killed and restarted; an admin command is
# refused to a node certificate (and changes nothing) and works with the
# admin certificate.
set -eu
. "$(dirname "$0")/lib.sh"
MGMTNODE=$BUILD/it-bin/mgmtnode

# run CMD...: sets rc, $T/out, $T/err
run() {
  set +e
  "$@" >"$T/out" 2>"$T/err"
  rc=$?
  set -e
}

# expect_fail CODE CMD...: exit CODE, exactly one line on stderr, no stdout
expect_fail() {
  want=$1; shift
  run "$@"
  [ "$rc" -eq "$want" ] || fail "$* exited $rc, want $want (stderr: $(cat "$T/err"))"
  [ "$(wc -l <"$T/err")" -eq 1 ] || fail "$*: want one stderr line, got: $(cat "$T/err")"
  [ ! -s "$T/out" ] || fail "$*: wrote on stdout: $(cat "$T/out")"
  ok "exit $want, one line: $(cat "$T/err")"
}

# console NAME CADIR CERTNAME PORT: a console file $T/NAME.conf
console() {
  {
    echo "[console]"
    echo "endpoint = 127.0.0.1:$4"
    echo "timeout = 5"
    echo "[tls]"
    echo "ca = $2/ca.crt"
    echo "cert = $2/$3.crt"
    echo "key = $2/$3.key"
  } >"$T/$1.conf"
}

make_site "$T/ca" n1 n2
"$NODECTL" init "$T/other" >/dev/null || fail "nodectl init other"
set -- $(free_port 3)
P1=$1 P2=$2 P3=$3
node_conf n1 "$T/ca" "peer:ghost=127.0.0.1:$P3" # a peer that is never there
printf '[listen]\nmgmt = 127.0.0.1:%s\n' "$P1" >>"$T/n1.ini"
console admin "$T/ca" admin "$P1"
console plain "$T/ca" n1 "$P1"
console other "$T/other" admin "$P1"
console wrong "$T/ca" admin "$P3"

# ---- part 1: noded -----------------------------------------------------------

start_noded n1
wait_for "$T/n1.log" "management endpoint on 127.0.0.1:$P1" 10

run "$NODECTL" --conf "$T/admin.conf" --json status
[ "$rc" -eq 0 ] || fail "status --json exited $rc: $(cat "$T/err")"
python3 - "$T/out" "$P3" <<'EOF' || fail "status --json: $(cat "$T/out")"
import json, sys
text = open(sys.argv[1]).read()
assert text.endswith("}\n") and text.count("\n") == 1, "not one document on one line"
d = json.loads(text)
assert d["node"] == "n1", d
assert d["roles"] == ["cs"], d["roles"]
assert d["version"]
assert d["uptime_s"] >= 0
assert d["memory"]["budget"] == 64 << 20, d["memory"]
assert d["links"] == [{"peer": "ghost", "addr": "127.0.0.1:" + sys.argv[2], "state": "down",
                      "up": False, "clock_offset_us": None}], d["links"]
assert d["pairs"] == [] and d["sections"] == {}, d
assert d["pairs_truncated"] is False
EOF
ok "status --json is one JSON document with the node's fields"

run "$NODECTL" --conf "$T/admin.conf" status
[ "$rc" -eq 0 ] || fail "status exited $rc"
head -n 1 "$T/out" | grep -q '^node n1 (cs), version ' || fail "status: $(cat "$T/out")"
grep -qx 'no protection pairs on node n1' "$T/out" || fail "status: $(cat "$T/out")"
grep -Eqx "ghost +down +127\.0\.0\.1:$P3 +-" "$T/out" || fail "status links: $(cat "$T/out")"
ok "status prints the node and says there are no pairs"

expect_fail 1 "$NODECTL" --conf "$T/other.conf" status
grep -q "^nodectl: node at 127.0.0.1:$P1 refused this console: " "$T/err" || fail "other CA: $(cat "$T/err")"
# the node logs the refused handshake: with the console's alert (unknown_ca)
# or, when the console hung up before its alert left, as a broken pipe
wait_for "$T/n1.log" "refused: TLS handshake: .*(unknown_ca|Broken pipe|reset|closed)" 5
run "$NODECTL" --conf "$T/plain.conf" --json pairs
[ "$rc" -eq 0 ] || fail "a node certificate may read: exited $rc: $(cat "$T/err")"
grep -qx '{"node":"n1","pairs":\[\],"pairs_truncated":false}' "$T/out" || fail "pairs: $(cat "$T/out")"
ok "another site's console is refused; a node certificate may read; the node still serves"

NODECTL_CONF=$T/wrong.conf expect_fail 1 "$NODECTL" status
grep -qx "nodectl: cannot reach node at 127.0.0.1:$P3: connection refused (is noded running? check NODECTL_CONF)" \
  "$T/err" || fail "wrong endpoint: $(cat "$T/err")"

expect_fail 2 env -u NODECTL_CONF "$NODECTL" status
expect_fail 2 "$NODECTL" --conf "$T/admin.conf" status extra
expect_fail 2 "$NODECTL" --conf "$T/admin.conf" wait
expect_fail 2 "$NODECTL" --conf "$T/admin.conf" wait p0
expect_fail 2 "$NODECTL" --conf "$T/admin.conf" wait p0 --state protected --drained
expect_fail 2 "$NODECTL" --conf "$T/admin.conf" wait p0 --drained --timeout soon
expect_fail 2 "$NODECTL" --conf "$T/admin.conf" pair show
expect_fail 2 "$NODECTL" --conf "$T/admin.conf" trace
expect_fail 2 "$NODECTL" --conf "$T/admin.conf" call
expect_fail 2 "$NODECTL" --timeout never --conf "$T/admin.conf" status
expect_fail 2 "$NODECTL" --conf "$T/admin.conf" call no-such-command
printf '[console]\nendpoint = localhost:80\n' >"$T/bad.conf"
expect_fail 2 "$NODECTL" --conf "$T/bad.conf" status
grep -q 'bad.conf:2: \[console\] endpoint: bad value' "$T/err" || fail "bad console file: $(cat "$T/err")"
expect_fail 2 "$NODED" -c "$T/admin.conf"

# trace --out: the copy is the node's file as it was when the fetch began
before=$(stat -c %s "$T/n1.trace")
run "$NODECTL" --conf "$T/admin.conf" trace --out "$T/fetched"
[ "$rc" -eq 0 ] || fail "trace exited $rc: $(cat "$T/err")"
copy=$T/fetched/n1/n1.trace
[ -f "$copy" ] || fail "no $copy: $(cat "$T/out")"
grep -q "^fetched 1 file (.* bytes) from node n1; read them with: nodetrace $T/fetched/n1/n1.trace\$" \
  "$T/out" || fail "trace: $(cat "$T/out")"
got=$(stat -c %s "$copy")
[ "$got" -ge "$before" ] && [ "$before" -gt 0 ] || fail "copy has $got bytes, the file had $before before"
stop_noded n1 TERM 5
[ "$STOP_RC" = 0 ] || fail "noded exited $STOP_RC on SIGTERM"
after=$(stat -c %s "$T/n1.trace")
[ "$after" -gt "$got" ] || fail "the node wrote nothing after the fetch ($after bytes)?"
cmp -n "$got" "$copy" "$T/n1.trace" || fail "the copy differs from the node's file"
run "$NODETRACE" --no-rotated "$copy"
[ "$rc" -eq 0 ] && [ ! -s "$T/err" ] || fail "nodetrace on the copy: rc $rc: $(cat "$T/err")"
[ "$(grep -c ' hello -> up hello_ok peer admin' "$T/out")" -ge 3 ] ||
  fail "the copy lacks the consoles' links: $(cat "$T/out")"
ok "trace --out: $got bytes, a byte-for-byte prefix of the node's $after, whole records"

# ---- part 2: scripted pairs ----------------------------------------------------

cat >"$T/m.ini" <<EOF
[node]
name = n2
roles = agent, ps
[tls]
ca = $T/ca/ca.crt
cert = $T/ca/n2.crt
key = $T/ca/n2.key
[listen]
mgmt = 127.0.0.1:$P2
[trace]
file = n2.trace
EOF
console admin2 "$T/ca" admin "$P2"
console plain2 "$T/ca" n1 "$P2"
start_mgmtnode() {
  "$MGMTNODE" -c "$T/m.ini" --scale "$1" --pair p0 --pair p1 2>>"$T/m.log" &
  echo $! >"$T/m.pid"
  LIB_PIDS="$LIB_PIDS $!"
  wait_for "$T/m.log" "management endpoint on 127.0.0.1:$P2" 10 "$2"
}
start_mgmtnode 1 1
CONF=$T/admin2.conf

run "$NODECTL" --conf "$CONF" wait p0 --state protected --timeout 20
[ "$rc" -eq 0 ] || fail "wait --state protected: $rc: $(cat "$T/err")"
grep -q '^pair p0: in state protected after ' "$T/out" || fail "wait: $(cat "$T/out")"
run "$NODECTL" --conf "$CONF" wait p1 --drained --timeout 20
[ "$rc" -eq 0 ] || fail "wait --drained: $rc: $(cat "$T/err")"
grep -q '^pair p1: drained after .*acked seq 150, durable at the master target up to seq 150' "$T/out" ||
  fail "wait --drained: $(cat "$T/out")"
run "$NODECTL" --conf "$CONF" --json status
python3 - "$T/out" <<'EOF' || fail "status after drained: $(cat "$T/out")"
import json, sys
d = json.load(open(sys.argv[1]))
assert [p["id"] for p in d["pairs"]] == ["p0", "p1"], d["pairs"]
for p in d["pairs"]:
    assert p["state"] == "protected" and p["drained"] is True, p
    assert p["source_seq"] == p["mt_durable_seq"] == 150 and p["backlog_bytes"] == 0, p
    assert set(p) == {"id", "disk", "group", "state", "source_seq", "ps_durable_seq",
                      "mt_durable_seq", "drained", "rpo_lag_ms", "backlog_bytes", "cache_bytes",
                      "cache_quota", "link", "bitmap_dirty_bytes", "sync_progress"}, p
assert d["sections"]["fake"]["age_s"] > 2
EOF
run "$NODECTL" --conf "$CONF" status
grep -Eq '^p1 +protected +0ms +0B +0B of 1\.0G \(0%\) +up$' "$T/out" || fail "status table: $(cat "$T/out")"
run "$NODECTL" --conf "$CONF" pairs
grep -Eq '^p0 +disk0 +g0 +protected +up$' "$T/out" || fail "pairs: $(cat "$T/out")"
run "$NODECTL" --conf "$CONF" pair show p1
grep -Eq '^mt_durable_seq +150$' "$T/out" || fail "pair show: $(cat "$T/out")"
ok "wait --state and --drained return; status, pairs and pair show agree"

expect_fail 1 "$NODECTL" --conf "$CONF" wait p0 --state resyncing --timeout 1
grep -q '^nodectl: wait: pair p0 did not reach state resyncing within 1 s; now: state protected, ' "$T/err" ||
  fail "wait timeout: $(cat "$T/err")"
expect_fail 1 "$NODECTL" --conf "$CONF" wait nope --state protected
grep -q "no pair 'nope' on node n2" "$T/err" || fail "unknown pair: $(cat "$T/err")"
expect_fail 1 "$NODECTL" --conf "$CONF" pair show nope

expect_fail 1 "$NODECTL" --conf "$T/plain2.conf" call fake-pause p0
grep -q "'fake-pause' needs an admin certificate" "$T/err" || fail "non-admin: $(cat "$T/err")"
expect_fail 1 "$NODECTL" --conf "$CONF" wait p0 --state paused --timeout 1
run "$NODECTL" --conf "$CONF" call fake-pause p0
[ "$rc" -eq 0 ] && grep -qx '{"paused":"p0"}' "$T/out" || fail "admin fake-pause: $rc $(cat "$T/out" "$T/err")"
run "$NODECTL" --conf "$CONF" wait p0 --state paused --timeout 5
[ "$rc" -eq 0 ] || fail "wait paused after the admin's command: $(cat "$T/err")"
ok "an admin command is refused to a node certificate and changes nothing; the admin's works"

# a wait outlives the node: killed and restarted, it is back in initial_sync
stop_noded_m() { kill -9 "$(cat "$T/m.pid")"; wait "$(cat "$T/m.pid")" 2>/dev/null || true; }
"$NODECTL" --conf "$CONF" wait p1 --state initial_sync --timeout 30 >"$T/wout" 2>"$T/werr" &
wpid=$!
sleep 0.5
kill -0 "$wpid" 2>/dev/null || fail "wait returned early: $(cat "$T/wout" "$T/werr")"
stop_noded_m
sleep 0.7
start_mgmtnode 4 2
i=0
while kill -0 "$wpid" 2>/dev/null; do
  i=$((i + 1)); [ "$i" -le 200 ] || fail "wait still running 20 s after the restart"
  sleep 0.1
done
wrc=0; wait "$wpid" || wrc=$?
[ "$wrc" -eq 0 ] || fail "wait across a restart exited $wrc: $(cat "$T/werr")"
grep -q '^pair p1: in state initial_sync after ' "$T/wout" || fail "wait across restart: $(cat "$T/wout")"
ok "wait reconnects after the node was killed and restarted"
kill "$(cat "$T/m.pid")"
echo "t20_mgmt: all checks passed"
