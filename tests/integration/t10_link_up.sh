#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
#
# t10_link_up.sh (acceptance 1): two noded processes on loopback with
# certificates from one site CA (nodectl) bring a link up, exchange
# heartbeats and trace the link chart on both sides.
#
# primary has [peer secondary]; secondary has [listen] link. Heartbeats
# are checked by their effect: with hb_timeout 1.5 s the link stays up for
# 3 s (nothing but heartbeats flows, so without them it would drop). Both
# trace files must hold the chart's path (nodetrace --json): primary
# init -> connecting -> handshake -> hello -> up, secondary (accepted)
# init -> handshake -> hello -> up, and the hello transition carries the
# peer and a clock offset. SIGTERM then stops both with exit status 0.
set -eu
. "$(dirname "$0")/lib.sh"

make_site "$T/ca" primary secondary
PORT=$(free_port)
node_conf secondary "$T/ca" listen=127.0.0.1:$PORT
node_conf primary "$T/ca" peer:secondary=127.0.0.1:$PORT
start_noded secondary
wait_for "$T/secondary.log" "listening for links on 127.0.0.1:$PORT" 10
start_noded primary

wait_for "$T/primary.log" "link:secondary up: peer secondary at 127.0.0.1:$PORT" 10
wait_for "$T/secondary.log" "link:in:127\.0\.0\.1:[0-9]+ up: peer primary" 10
ok "link up on both sides"

sleep 3
[ "$(count "$T/primary.log" ' down: ')" -eq 0 ] || fail "primary saw the link go down: $(cat "$T/primary.log")"
[ "$(count "$T/secondary.log" ' down: ')" -eq 0 ] || fail "secondary saw the link go down"
[ "$(count "$T/primary.log" ' up: ')" -eq 1 ] || fail "primary's link went up more than once"
ok "link stayed up 3 s with hb_timeout 1.5 s: heartbeats flow both ways"

transitions "$T/primary.trace" > "$T/p.tr"
transitions "$T/secondary.trace" > "$T/s.tr"
for t in "init start connecting" "connecting connected handshake" "handshake tls_ok hello" \
         "hello hello_ok up"; do
  grep -qx "$t" "$T/p.tr" || fail "primary trace lacks '$t': $(cat "$T/p.tr")"
done
for t in "init accepted handshake" "handshake tls_ok hello" "hello hello_ok up"; do
  grep -qx "$t" "$T/s.tr" || fail "secondary trace lacks '$t': $(cat "$T/s.tr")"
done
# in that order, with nothing refused
[ "$(tr '\n' ' ' < "$T/s.tr")" = "init accepted handshake handshake tls_ok hello hello hello_ok up " ] ||
  fail "secondary's path: $(cat "$T/s.tr")"
"$NODETRACE" --json "$T/primary.trace" | grep '"event":"hello_ok"' | grep -q '"peer":"secondary"' ||
  fail "primary's hello transition does not name the peer"
"$NODETRACE" --json "$T/secondary.trace" | grep '"event":"hello_ok"' | grep -q '"peer":"primary"' ||
  fail "secondary's hello transition does not name the peer"
"$NODETRACE" "$T/primary.trace" | grep -q '^# node primary: clock offset to secondary' ||
  fail "no clock offset in primary's trace"
! "$NODETRACE" --json "$T/primary.trace" "$T/secondary.trace" | grep -q '"refused":true' ||
  fail "a refused event in the traces"
ok "both traces show the link chart's path"

stop_noded primary TERM 5
[ "$STOP_RC" = 0 ] || fail "primary exited $STOP_RC on SIGTERM"
wait_for "$T/secondary.log" "down: peer primary .*peer said goodbye" 5
stop_noded secondary TERM 5
[ "$STOP_RC" = 0 ] || fail "secondary exited $STOP_RC on SIGTERM"
transitions "$T/primary.trace" | tail -n 1 | grep -qx "up close closed" ||
  fail "primary's link did not end closed"
ok "SIGTERM: both exit 0, the peer hears goodbye"
