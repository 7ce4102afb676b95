#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
#
# t11_link_refused.sh (acceptance 2): peers that must not get in are
# refused at the TLS handshake with exactly one log line each, naming their
# address and the reason, while the node keeps its good link up.
#
# secondary listens; primary links to it (the good link). linkpoke then
# connects as: a node of another CA, a self-signed certificate, no
# certificate, TLS 1.2 and TLS 1.1 (with a good certificate), and plain TCP
# garbage. For each, the secondary's log gets one line with linkpoke's
# address and the expected reason, and linkpoke sees the connection closed.
# Finally primary is pointed at a listener whose certificate is from
# another CA (a second secondary) and must refuse it too, once in the log
# however often it retries.
set -eu
. "$(dirname "$0")/lib.sh"

make_site "$T/ca" primary secondary poke
make_site "$T/other" stranger secondary
set -- $(free_port 2)
PORT=$1 PORT2=$2
node_conf secondary "$T/ca" listen=127.0.0.1:$PORT
node_conf primary "$T/ca" peer:secondary=127.0.0.1:$PORT
start_noded secondary
wait_for "$T/secondary.log" "listening for links" 10
start_noded primary
wait_for "$T/primary.log" "link:secondary up" 10

# poke CASE REASON ARGS...: one refused connection and its one log line
poke() {
  case_=$1; reason=$2; shift 2
  "$LINKPOKE" --connect 127.0.0.1:$PORT --wait 3 "$@" > "$T/poke.out" 2>&1 ||
    fail "$case_: linkpoke failed: $(cat "$T/poke.out")"
  grep -q '^closed by peer' "$T/poke.out" || fail "$case_: not closed: $(cat "$T/poke.out")"
  local_=$(sed -n 's/^local //p' "$T/poke.out")
  wait_for "$T/secondary.log" "link:in:$local_: refused: " 5
  sleep 0.2 # a second line would come at once
  n=$(count "$T/secondary.log" "$local_")
  [ "$n" -eq 1 ] || fail "$case_: $n log lines for $local_: $(grep -F "$local_" "$T/secondary.log")"
  grep -F "$local_" "$T/secondary.log" | grep -qF "$reason" ||
    fail "$case_: reason is not '$reason': $(grep -F "$local_" "$T/secondary.log")"
  ok "$case_ refused: $(grep -F "$local_" "$T/secondary.log" | sed 's/.*refused: //')"
}

poke "another CA" "not signed by the site CA" \
  --cert "$T/other/stranger.crt" --key "$T/other/stranger.key"
poke "self-signed" "self-signed" --cert "$T/other/ca.crt" --key "$T/other/ca.key"
poke "no certificate" "peer sent no certificate"
poke "TLS 1.2" "does not speak TLS 1.3" --tls 1.2 --cert "$T/ca/poke.crt" --key "$T/ca/poke.key"
if "$LINKPOKE" --connect 127.0.0.1:$PORT --tls 1.1 --wait 1 2>&1 | grep -q 'cannot make'; then
  echo "skip: this wolfSSL cannot speak TLS 1.1"
else
  poke "TLS 1.1" "does not speak TLS 1.3" --tls 1.1 --cert "$T/ca/poke.crt" --key "$T/ca/poke.key"
fi
poke "plain TCP" "does not speak TLS" --plain --send garbage

# the good link never noticed
[ "$(count "$T/primary.log" ' down: ')" -eq 0 ] || fail "the good link went down"
[ "$(count "$T/secondary.log" ' down: ')" -eq 0 ] || fail "the good link went down (secondary)"
[ "$(count "$T/primary.log" ' up: ')" -eq 1 ] || fail "the good link went up again"
kill -0 "$(pid_of secondary)" || fail "secondary died"
ok "the good link stayed up throughout"

# the other way round: primary refuses a listener from another CA, and
# says so once, not once per retry
{
  echo "[node]"; echo "name = secondary"; echo "roles = mt"
  echo "[tls]"; echo "ca = $T/other/ca.crt"
  echo "cert = $T/other/secondary.crt"; echo "key = $T/other/secondary.key"
  echo "[listen]"; echo "link = 127.0.0.1:$PORT2"
  echo "[trace]"; echo "file = fake.trace"
} > "$T/fake.ini"
"$NODED" -c "$T/fake.ini" 2>>"$T/fake.log" &
LIB_PIDS="$LIB_PIDS $!"
wait_for "$T/fake.log" "listening for links" 10
node_conf primary2 "$T/ca" peer:secondary=127.0.0.1:$PORT2
sed -i 's/^name = primary2/name = primary/; s/primary2\.crt/primary.crt/; s/primary2\.key/primary.key/' \
  "$T/primary2.ini"
start_noded primary2
wait_for "$T/primary2.log" "link:secondary: 127.0.0.1:$PORT2: .*not signed by the site CA" 10
sleep 1.5 # several retries
n=$(count "$T/primary2.log" "not signed by the site CA")
[ "$n" -eq 1 ] || fail "primary logged the refusal $n times"
[ "$(count "$T/primary2.log" ' up: ')" -eq 0 ] || fail "primary accepted a foreign listener"
ok "a listener of another CA is refused by the connecting side, logged once"
