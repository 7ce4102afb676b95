#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
#
# t12_link_kill.sh (acceptance 3): SIGKILL of one node moves the other's
# link to backoff; restarting it brings the link back with no operator
# action, and primary's trace shows the whole path.
#
# secondary (listening) is killed with SIGKILL while the link is up:
# primary logs the link down and its trace goes up -> backoff, then keeps
# retrying (backoff -> connecting -> backoff ...). secondary is restarted on
# the same port: primary's link comes back up by itself, and its trace
# continues connecting -> handshake -> hello -> up. The restarted secondary
# traces a fresh accepted link (init -> handshake -> hello -> up).
set -eu
. "$(dirname "$0")/lib.sh"

make_site "$T/ca" primary secondary
PORT=$(free_port)
node_conf secondary "$T/ca" listen=127.0.0.1:$PORT
node_conf primary "$T/ca" peer:secondary=127.0.0.1:$PORT
start_noded secondary
wait_for "$T/secondary.log" "listening for links" 10
start_noded primary
wait_for "$T/primary.log" "link:secondary up" 10
ok "link up"

stop_noded secondary KILL 5
wait_for "$T/primary.log" "link:secondary down: peer secondary" 5
sleep 1 # a few reconnect attempts (backoff 0.05 .. 0.5 s)
transitions "$T/primary.trace" > "$T/p1.tr"
grep -qx "up fail backoff" "$T/p1.tr" || fail "no up -> backoff in primary's trace: $(cat "$T/p1.tr")"
n=$(grep -cx "backoff retry connecting" "$T/p1.tr" || true)
[ "$n" -ge 2 ] || fail "primary did not keep retrying ($n retries): $(cat "$T/p1.tr")"
ok "SIGKILL: primary's link went up -> backoff and retries ($n retries so far)"

start_noded secondary
wait_for "$T/primary.log" "link:secondary up" 10 2
ok "restart: link up again with no operator action"

transitions "$T/primary.trace" > "$T/p2.tr"
# the path from the last "up" of the first life to the new "up"
path=$(sed -n '/^hello hello_ok up$/,$p' "$T/p2.tr" | sed 1d | tr '\n' ';')
case $path in
  "up fail backoff;backoff retry connecting;"*"connecting connected handshake;handshake tls_ok hello;hello hello_ok up;")
    ;;
  *) fail "primary's path after the first up: $path" ;;
esac
ok "primary's trace: up -> backoff -> (connecting -> backoff)* -> connecting -> handshake -> hello -> up"
[ "$(transitions "$T/secondary.trace" | grep -cx 'hello hello_ok up')" -eq 2 ] ||
  fail "secondary's trace should hold two accepted links that went up"
ok "secondary's trace holds the link of each life"
