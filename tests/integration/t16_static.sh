#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
# The appliance build: noded linked statically runs, with no dynamic loader
# and no NSS, and sets up and serves a demo site on loopback.
set -eu
. "$(dirname "$0")/lib.sh"
bin=$BUILD/noded-static
[ -x "$bin" ] || fail "no $bin (make builds it with the integration tests)"
file "$bin" | grep -q "statically linked" || fail "$bin is not statically linked: $(file "$bin")"
"$bin" --version | grep -q "noded (secondsite)" || fail "static noded --version"
"$bin" --demo "$T/demo" --init-only 2> "$T/init.log" || fail "static noded --demo --init-only: $(cat "$T/init.log")"
"$bin" --demo "$T/demo" > "$T/noded.log" 2>&1 &
pid=$!
LIB_PIDS="$LIB_PIDS $pid"
wait_for "$T/noded.log" "up: peer secondary" 20 || fail "the static demo's link did not come up: $(cat "$T/noded.log")"
kill -TERM "$pid"
wait "$pid" || fail "static noded did not stop cleanly"
echo "static noded: $(stat -c %s "$bin") bytes (with debug info)"
