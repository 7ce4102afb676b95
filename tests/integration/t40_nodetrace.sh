#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
#
# t40_nodetrace.sh: the trace viewer in the terminal, on files written by the
# node's trace writer (it-bin/tracegen): the merge of two nodes in emission
# order, the line and JSON formats, clock offsets, filters, damaged files,
# rotated files, a followed live file that rotates, usage errors, and a
# 50,000-transition smoke run (the one-million run is a manual check).
#
# Needs: $BUILD/nodetrace, $BUILD/it-bin/tracegen, python3 (JSON check).
set -eu
: "${T:?scratch dir}" "${BUILD:?build dir}"
NT=$BUILD/nodetrace
GEN=$BUILD/it-bin/tracegen
fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok: $*"; }

# ---- the scenario: two nodes, merged in emission order ----------------------------
mkdir -p "$T/sc"
"$GEN" scenario "$T/sc" > "$T/expected"
n_exp=$(wc -l < "$T/expected")
[ "$n_exp" -ge 20 ] || fail "tracegen wrote only $n_exp records"
"$NT" "$T/sc/primary.trace" "$T/sc/secondary.trace" > "$T/out" 2> "$T/err" || fail "nodetrace failed: $(cat "$T/err")"
[ ! -s "$T/err" ] || fail "unexpected stderr: $(cat "$T/err")"
grep -v '^#' "$T/out" > "$T/lines"
[ "$(wc -l < "$T/lines")" -eq "$n_exp" ] || fail "expected $n_exp lines, got $(wc -l < "$T/lines")"
# fields: TIME NODE ACTOR MACHINE FROM -> TO EVENT ... | FROM -x EVENT (refused)
fields() {
  awk '{ if ($6 == "->") print $2, $3, $4, $5, $8, $7, "ok";
         else if ($6 == "-x" && $8 == "(refused)") print $2, $3, $4, $5, $7, $5, "refused";
         else print "BAD", $0 }'
}
fields < "$T/lines" > "$T/got"
diff "$T/expected" "$T/got" > "$T/diff" || { cat "$T/diff"; fail "merged order differs from emission order"; }
ok "merged $n_exp transitions of two nodes in emission order"
# times: ISO-8601 UTC with microseconds, never decreasing
if grep -Ev '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z ' "$T/lines"; then
  fail "a time is not ISO-8601 with microseconds"
fi
cut -d' ' -f1 "$T/lines" | sort -c || fail "times are not in order"
grep -q 'link:primary link closed -x hello_ok (refused) late hello$' "$T/lines" || fail "refusal line"
grep -q 'cs pair protected -x failover_commit (refused) no failover in progress$' "$T/lines" || fail "refusal line 2"
grep -q '^# node primary: clock offset to secondary +150 us$' "$T/out" || fail "offset header primary"
grep -q '^# node secondary: clock offset to primary -150 us$' "$T/out" || fail "offset header secondary"
ok "formats, refusals and clock offsets"

# ---- colour ---------------------------------------------------------------------------
esc=$(printf '\033')
if grep -q "$esc" "$T/out"; then fail "colour on a pipe"; fi
"$NT" --color=always "$T/sc/primary.trace" > "$T/col"
grep -q "$esc\[" "$T/col" || fail "--color=always has no colour"
ok "colour only when asked or on a terminal"

# ---- JSON -------------------------------------------------------------------------------
"$NT" --json "$T/sc/primary.trace" "$T/sc/secondary.trace" > "$T/json"
[ "$(wc -l < "$T/json")" -eq "$n_exp" ] || fail "json line count"
python3 - "$T/json" "$T/expected" <<'EOF' || fail "json content"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
exp = [l.split() for l in open(sys.argv[2])]
keys = {"time_us", "time", "node", "actor", "machine", "from", "event", "to", "detail",
        "refused", "peer", "pair", "clock_offset_us", "seq"}
for r, e in zip(rows, exp):
    assert set(r) == keys, sorted(r)
    got = [r["node"], r["actor"], r["machine"], r["from"], r["event"], r["to"],
           "refused" if r["refused"] else "ok"]
    assert got == e, (got, e)
assert [r["detail"] for r in rows if r["actor"] == "ps"][-1] == 'drain 3 MiB "q" <b>&'
assert any(r["clock_offset_us"] == -150 and r["peer"] == "primary" for r in rows)
assert all(r["pair"] == "pair-0" for r in rows if r["machine"] == "pair")
seqs = [r["seq"] for r in rows if r["node"] == "primary"]
assert seqs == list(range(seqs[0], seqs[0] + len(seqs))) and seqs[0] <= 1, seqs
EOF
ok "--json: keys, escaping, content"

# ---- filters ------------------------------------------------------------------------------
count() { "$NT" "$@" | grep -vc '^#' || true; }
[ "$(count --actor 'link:*' "$T"/sc/*.trace)" -eq "$(grep -c ' link:' "$T/expected")" ] || fail "--actor"
[ "$(count --machine pair "$T"/sc/*.trace)" -eq "$(grep -c ' pair ' "$T/expected")" ] || fail "--machine"
[ "$(count --node secondary "$T"/sc/*.trace)" -eq "$(grep -c '^secondary ' "$T/expected")" ] || fail "--node"
[ "$(count --pair pair-0 --node primary "$T"/sc/*.trace)" -eq "$(grep -c '^primary \(agent\|ps\) ' "$T/expected")" ] || fail "--pair"
since=$(sed -n 5p "$T/lines" | cut -d' ' -f1)
until=$(sed -n 10p "$T/lines" | cut -d' ' -f1)
[ "$(count --since "$since" --until "$until" "$T"/sc/*.trace)" -eq 6 ] || fail "--since/--until"
[ "$(count --since -1h "$T"/sc/*.trace)" -eq "$n_exp" ] || fail "--since -1h"
[ "$(count --until -1h "$T"/sc/*.trace)" -eq 0 ] || fail "--until -1h"
ok "filters"

# ---- clock adjustment: secondary's times move into primary's clock -------------------------
"$NT" --json --node secondary "$T"/sc/*.trace | head -n 1 > "$T/raw1"
"$NT" --json --adjust-clock --node secondary "$T"/sc/*.trace | head -n 1 > "$T/adj1"
python3 - "$T/raw1" "$T/adj1" <<'EOF' || fail "--adjust-clock"
import json, sys
a = json.load(open(sys.argv[1])); b = json.load(open(sys.argv[2]))
assert b["time_us"] - a["time_us"] == -150, (a["time_us"], b["time_us"])
EOF
ok "--adjust-clock"

# ---- damaged files --------------------------------------------------------------------------
p=$T/sc/primary.trace
size=$(wc -c < "$p")
n_pri=$(grep -c '^primary ' "$T/expected")
head -c $((size - 3)) "$p" > "$T/trunc.trace"
"$NT" "$T/trunc.trace" > "$T/tout" 2> "$T/terr" || fail "truncated file: exit $?"
[ "$(grep -vc '^#' "$T/tout")" -eq $((n_pri - 1)) ] || fail "truncated: wrong number of lines"
grep -q "^nodetrace: $T/trunc.trace: stopped at byte [0-9]*: truncated record (record $n_pri)$" "$T/terr" ||
  fail "truncated: message: $(cat "$T/terr")"
at=$(sed 's/.*stopped at byte \([0-9]*\).*/\1/' "$T/terr")
[ "$at" -gt 0 ] && [ "$at" -lt "$size" ] || fail "truncated: offset $at"
# the first $at bytes are exactly the intact records
head -c "$at" "$p" > "$T/prefix.trace"
"$NT" "$T/prefix.trace" > /dev/null 2> "$T/perr" && [ ! -s "$T/perr" ] || fail "prefix is not clean"
# garbage in the middle: what comes before is shown
half=$((size / 2))
{ head -c "$half" "$p"; printf '\377\377\377\377\377\377\377\377\377\377\377'; tail -c +$((half + 12)) "$p"; } > "$T/mid.trace"
"$NT" "$T/mid.trace" > "$T/mout" 2> "$T/merr" || fail "corrupt middle: exit $?"
grep -q "stopped at byte [0-9]*: corrupt record" "$T/merr" || fail "corrupt middle: message: $(cat "$T/merr")"
nm=$(grep -vc '^#' "$T/mout")
[ "$nm" -gt 0 ] && [ "$nm" -lt "$n_pri" ] || fail "corrupt middle: $nm lines"
grep '^primary ' "$T/expected" | head -n "$nm" > "$T/pexp"
grep -v '^#' "$T/mout" | fields | diff "$T/pexp" - > /dev/null || fail "corrupt middle: wrong records shown"
# garbage from the start: nothing to show, exit 1
printf '\377\377\377\377\377\377\377\377\377\377\377\377' > "$T/bad.trace"
if "$NT" "$T/bad.trace" > "$T/bout" 2> "$T/berr"; then fail "garbage file: exit 0"; fi
grep -q "bad.trace: stopped at byte 0: corrupt record" "$T/berr" || fail "garbage: message"
# an empty file is fine; a missing file is exit 1 but the others are still shown
: > "$T/empty.trace"
"$NT" "$T/empty.trace" > /dev/null || fail "empty file"
if "$NT" "$T/nope.trace" "$p" > "$T/nout" 2> "$T/nerr"; then fail "missing file: exit 0"; fi
grep -q "nope.trace: No such file or directory" "$T/nerr" || fail "missing file: message"
[ "$(grep -vc '^#' "$T/nout")" -eq "$n_pri" ] || fail "missing file: the other file not shown"
ok "damaged, empty and missing files"

# ---- usage ------------------------------------------------------------------------------------
for args in "" "--bogus $p" "--since yesterday $p" "--color=pink $p" "--follow-timeout x $p" "--html"; do
  set +e
  # shellcheck disable=SC2086
  "$NT" $args > /dev/null 2> "$T/uerr"
  rc=$?
  set -e
  [ "$rc" -eq 2 ] || fail "usage '$args': exit $rc"
  [ "$(wc -l < "$T/uerr")" -eq 1 ] || fail "usage '$args': not one line"
done
"$NT" --help | grep -q '^usage: nodetrace' || fail "--help"
ok "usage errors exit 2 with one line"

# ---- rotation -----------------------------------------------------------------------------------
"$GEN" bulk "$T/rot.trace" 300 --max-bytes 2000 --keep 3
[ -f "$T/rot.trace.1" ] && [ -f "$T/rot.trace.3" ] || fail "tracegen did not rotate"
"$NT" --json "$T/rot.trace" > "$T/rjson"
python3 - "$T/rjson" <<'EOF' || fail "rotated files: not one run of seq ending at 300"
import json, sys
seqs = [json.loads(l)["seq"] for l in open(sys.argv[1])]
last = seqs[-1]  # the writer numbers from 0 or 1: the newest is the 300th
assert last in (299, 300) and seqs == list(range(seqs[0], last + 1)) and len(seqs) < 300, (seqs[0], len(seqs))
EOF
[ "$("$NT" --no-rotated "$T/rot.trace" | grep -vc '^#')" -lt "$(wc -l < "$T/rjson")" ] || fail "--no-rotated"
ok "rotated siblings read oldest first, one unbroken run"

# ---- follow a live file that rotates ----------------------------------------------------------
"$NT" --follow --follow-timeout 8 --json "$T/live.trace" > "$T/fout" 2> "$T/ferr" &
fpid=$!
sleep 0.3
"$GEN" bulk "$T/live.trace" 80 --interval-ms 15 --max-bytes 1500 --keep 6
i=0
while [ "$(wc -l < "$T/fout")" -lt 80 ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
wait "$fpid" || fail "follow: exit $?"
[ -f "$T/live.trace.1" ] || fail "follow: the live file did not rotate"
python3 - "$T/fout" <<'EOF' || fail "follow: records missing or out of order"
import json, sys
seqs = [json.loads(l)["seq"] for l in open(sys.argv[1])]
assert len(seqs) == 80 and seqs == list(range(seqs[0], seqs[0] + 80)), seqs
EOF
ok "--follow across rotation"

# ---- scale smoke: 50,000 transitions ------------------------------------------------------------
"$GEN" bulk "$T/big.trace" 50000
start=$(date +%s%N)
"$NT" "$T/big.trace" > "$T/big.out"
end=$(date +%s%N)
[ "$(grep -vc '^#' "$T/big.out")" -eq 50000 ] || fail "50k: line count"
[ "$(grep -c ' (refused) ' "$T/big.out")" -eq $((50000 / 97)) ] || fail "50k: refused count"
echo "info: 50000 transitions rendered in $(( (end - start) / 1000000 )) ms"
ok "50k transitions"
echo "PASS t40_nodetrace"
