#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
#
# t41_nodetrace_html.sh: nodetrace --html, opened in headless Chromium with no
# network. The page must load without script errors (it records them in
# #nt-errors), have every actor's lane and every chart in the DOM after its
# script ran, show the link chart as Ragel's graph with the visited
# transitions highlighted and the refusal in red, and need nothing from the
# network. A screenshot is saved as $BUILD/nodetrace.png for review. A
# 50,000-transition page must load too (aggregated drawing).
#
# Needs: $BUILD/nodetrace, $BUILD/it-bin/tracegen, chromium,
# $BUILD/fsm/link.svg (make fsm-dot, part of make all).
set -eu
: "${T:?scratch dir}" "${BUILD:?build dir}"
NT=$BUILD/nodetrace
GEN=$BUILD/it-bin/tracegen
fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok: $*"; }
command -v chromium > /dev/null || fail "chromium is not installed (make deps)"

# chromium, bounded, no network, own profile; $1 = page, then extra flags
browse() {
  page=$1; shift
  prof=$(mktemp -d "$T/chrome.XXXXXX")
  timeout -k 5 90 chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --disable-dev-shm-usage --proxy-server=127.0.0.1:9 --user-data-dir="$prof" \
    --enable-logging=stderr --v=0 "$@" "file://$page" 2> "$T/chrome.err"
}

mkdir -p "$T/sc"
"$GEN" scenario "$T/sc" > "$T/expected"
"$NT" --html "$T/page.html" "$T/sc/primary.trace" "$T/sc/secondary.trace" 2> "$T/err" ||
  fail "nodetrace --html: $(cat "$T/err")"
[ -s "$T/page.html" ] || fail "no page"

# self-contained: no external scripts, styles, fonts or images
if grep -Eiq '(src|href)=["'"'"']?(https?:|//)|@import|url\((https?:|//)' "$T/page.html"; then
  fail "the page references the network"
fi
grep -q "Content-Security-Policy" "$T/page.html" || fail "no content security policy"
ok "self-contained page ($(wc -c < "$T/page.html") bytes)"

browse "$T/page.html" --dump-dom > "$T/dom.html" || fail "chromium --dump-dom failed: $(tail -5 "$T/chrome.err")"
grep -q '<div id="nt-status" data-ready="1"' "$T/dom.html" || fail "the page script did not finish"
grep -q '<pre id="nt-errors" data-count="0"' "$T/dom.html" ||
  fail "script errors: $(grep -o '<pre id="nt-errors".*' "$T/dom.html" | head -3)"
if grep -q 'Uncaught' "$T/chrome.err"; then fail "console: $(grep Uncaught "$T/chrome.err" | head -3)"; fi
n_exp=$(wc -l < "$T/expected")
grep -q "data-records=\"$n_exp\"" "$T/dom.html" || fail "record count"
ok "page ran without errors"

# every actor's lane, under its node, with its count and refusals
lanes=$(cut -d' ' -f1,2 "$T/expected" | sort -u)
echo "$lanes" | while read -r node actor; do
  n=$(grep -c "^$node $actor " "$T/expected")
  r=$(grep "^$node $actor " "$T/expected" | grep -c ' refused$' || true)
  grep -q "class=\"nt-lane[^\"]*\" id=\"nt-lane-[0-9]*\" data-node=\"$node\" data-actor=\"$actor\" data-count=\"$n\" data-refused=\"$r\"" "$T/dom.html" ||
    fail "lane $node/$actor ($n, $r refused) missing"
done
[ "$(grep -o 'class="nt-lane[ "]' "$T/dom.html" | wc -l)" -eq "$(echo "$lanes" | wc -l)" ] || fail "extra lanes"
grep -q 'class="nt-lane nt-has-refused"[^>]*data-actor="cs"' "$T/dom.html" || fail "refused lane not marked"
ok "every lane ($(echo "$lanes" | wc -l)) with counts and refusals"

# every chart; link as Ragel's graph with visited edges and the refusal
for m in $(cut -d' ' -f3 "$T/expected" | sort -u); do
  grep -q "<div class=\"nt-chart\" id=\"nt-chart-$m\" data-machine=\"$m\"" "$T/dom.html" || fail "chart $m missing"
done
if [ -f fsm/link_exec.rl ]; then
  [ -f "$BUILD/fsm/link.svg" ] || fail "$BUILD/fsm/link.svg missing (make fsm-dot)"
  # the link chart's section alone: from its div to the next chart's
  python3 - "$T/dom.html" > "$T/link.html" <<'EOF'
import sys
d = open(sys.argv[1]).read()
a = d.index('id="nt-chart-link"')
b = d.find('<div class="nt-chart"', a)
print(d[a:b if b > 0 else len(d)])
EOF
  grep -q 'data-graph="ragel"' "$T/link.html" || fail "link chart is not Ragel's graph"
  # the scenario visits 8 distinct edges of the link chart and refuses hello_ok in closed
  v=$(grep -o 'class="edge nt-visited"' "$T/link.html" | wc -l)
  [ "$v" -eq 8 ] || fail "link: $v visited edges highlighted, expected 8"
  grep -q 'class="edge nt-refused" data-refused="hello_ok ×1"' "$T/link.html" || fail "link: refusal not in red"
  grep -q 'data-state="closed"' "$T/link.html" || fail "link: states not named"
  grep -q 'data-matched="9"' "$T/link.html" || fail "link: every visited transition should match the graph"
  ok "link chart: 8 visited edges highlighted, the refusal in red"
fi
grep -q 'data-machine="pair"[^>]*data-refused="1"' "$T/dom.html" || fail "pair chart: refusal not counted"
grep -q '<tr class="nt-refused"[^>]*data-from="protected" data-event="failover_commit"' "$T/dom.html" ||
  fail "pair chart: refused row"
ok "every chart in the DOM"

# the time range and offsets are in the summary
grep -q 'data-node="primary" data-peer="secondary" data-offset-us="150"' "$T/dom.html" || fail "offset in summary"

browse "$T/page.html" --screenshot="$BUILD/nodetrace.png" --window-size=1400,900 > /dev/null ||
  fail "screenshot failed"
[ -s "$BUILD/nodetrace.png" ] || fail "no screenshot"
ok "screenshot $BUILD/nodetrace.png"

# a filtered page: only the pair's actors
"$NT" --html "$T/pair.html" --pair pair-0 "$T"/sc/*.trace
browse "$T/pair.html" --dump-dom > "$T/pdom.html" || fail "chromium (filtered)"
grep -q 'data-ready="1"' "$T/pdom.html" || fail "filtered page did not finish"
if grep -q 'data-actor="link:' "$T/pdom.html"; then fail "filtered page shows link lanes"; fi
grep -q 'data-actor="agent"' "$T/pdom.html" || fail "filtered page lost the agent"

# 50,000 transitions: loads, aggregated
"$GEN" bulk "$T/big.trace" 50000
"$NT" --html "$T/big.html" "$T/big.trace"
browse "$T/big.html" --dump-dom > "$T/bdom.html" || fail "chromium (50k)"
grep -q '<pre id="nt-errors" data-count="0"' "$T/bdom.html" || fail "50k page: script errors"
grep -o '<div id="nt-status"[^>]*>' "$T/bdom.html" > "$T/bstatus"
for a in 'data-ready="1"' 'data-records="50000"' 'data-lanes="12"' 'data-refused="515"'; do
  grep -q "$a" "$T/bstatus" || fail "50k page: no $a"
done
echo "info: 50k page $(wc -c < "$T/big.html") bytes"
ok "50k-transition page"
echo "PASS t41_nodetrace_html"
