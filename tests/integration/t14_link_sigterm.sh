#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
#
# t14_link_sigterm.sh: SIGTERM (and SIGINT) stop noded cleanly within a few
# seconds, whatever its links are doing: up (the peer hears a Goodbye and
# logs an orderly down, not a failure), retrying an absent peer (backoff),
# or with no links at all. Exit status 0 each time, and the trace ends with
# the link closed.
set -eu
. "$(dirname "$0")/lib.sh"

make_site "$T/ca" primary secondary lonely
set -- $(free_port 2)
PORT=$1 DEAD=$2
node_conf secondary "$T/ca" listen=127.0.0.1:$PORT
node_conf primary "$T/ca" peer:secondary=127.0.0.1:$PORT
start_noded secondary
wait_for "$T/secondary.log" "listening for links" 10
start_noded primary
wait_for "$T/primary.log" "link:secondary up" 10

t0=$(date +%s)
stop_noded primary TERM 3
[ "$STOP_RC" = 0 ] || fail "primary exited $STOP_RC on SIGTERM with its link up"
wait_for "$T/secondary.log" "info: link:in:.* down: peer primary .*peer said goodbye \(code 0: node stopping\)" 5
[ "$(count "$T/secondary.log" 'warn: ')" -eq 0 ] || fail "an orderly stop was logged as a warning"
transitions "$T/primary.trace" | tail -n 1 | grep -qx "up close closed" ||
  fail "primary's trace does not end with up -> closed"
ok "SIGTERM with the link up: exit 0, the peer hears goodbye"

# a node whose only peer is absent: in backoff when the signal comes
node_conf lonely "$T/ca" peer:secondary=127.0.0.1:$DEAD
start_noded lonely
wait_for "$T/lonely.log" "link:secondary: 127.0.0.1:$DEAD: connect: Connection refused" 5
sleep 0.3
stop_noded lonely INT 3
[ "$STOP_RC" = 0 ] || fail "lonely exited $STOP_RC on SIGINT in backoff"
transitions "$T/lonely.trace" | tail -n 1 | grep -Eqx "(backoff|connecting) close closed" ||
  fail "lonely's trace does not end closed: $(transitions "$T/lonely.trace" | tail -n 2)"
ok "SIGINT while retrying an absent peer: exit 0"

stop_noded secondary TERM 3
[ "$STOP_RC" = 0 ] || fail "secondary exited $STOP_RC on SIGTERM"
ok "SIGTERM on a node that only listens: exit 0"
[ $(( $(date +%s) - t0 )) -le 8 ] || fail "stopping took more than 8 s in all"
