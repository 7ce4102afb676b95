#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
#
# t13_link_malformed.sh (acceptance 4): malformed input on a link closes
# only that link, with one clear log line, and the node keeps serving.
#
# linkpoke connects to secondary with a good certificate of the site CA
# (CN poke) and sends, right after TLS: garbage, a frame cut short then
# EOF, an oversize header length, an oversize payload length, an unknown
# body tag, a Hello with a wrong protocol version, a Hello whose name is
# not its certificate's. Then, after a proper Hello (the link is up):
# garbage, an unknown tag and a truncated frame. Each time secondary closes
# that connection (linkpoke sees it), logs one line with linkpoke's address
# and the reason, and its link with primary stays up.
set -eu
. "$(dirname "$0")/lib.sh"

make_site "$T/ca" primary secondary poke
PORT=$(free_port)
node_conf secondary "$T/ca" listen=127.0.0.1:$PORT
node_conf primary "$T/ca" peer:secondary=127.0.0.1:$PORT
start_noded secondary
wait_for "$T/secondary.log" "listening for links" 10
start_noded primary
wait_for "$T/primary.log" "link:secondary up" 10

# bad KIND REASON [--hello]: one poisoned link, closed with one line
bad() {
  kind=$1; reason=$2; shift 2
  "$LINKPOKE" --connect 127.0.0.1:$PORT --cert "$T/ca/poke.crt" --key "$T/ca/poke.key" \
    --name poke --send "$kind" --wait 3 "$@" > "$T/poke.out" 2>&1 ||
    fail "$kind: linkpoke failed: $(cat "$T/poke.out")"
  grep -q '^handshake ok' "$T/poke.out" || fail "$kind: TLS failed: $(cat "$T/poke.out")"
  case " $* " in
    *" --hello "*) grep -q '^hello ok secondary' "$T/poke.out" ||
                   fail "$kind: no hello: $(cat "$T/poke.out")"; what="down: peer poke at" ;;
    *) what="closed in hello:" ;;
  esac
  grep -q '^closed by peer' "$T/poke.out" || fail "$kind: link left open: $(cat "$T/poke.out")"
  local_=$(sed -n 's/^local //p' "$T/poke.out")
  wait_for "$T/secondary.log" "$local_.* $what" 5
  sleep 0.2
  line=$(grep -F "$local_" "$T/secondary.log" | grep -v ' up: ')
  [ "$(echo "$line" | wc -l)" -eq 1 ] || fail "$kind: more than one line: $line"
  echo "$line" | grep -qF "$reason" || fail "$kind: reason is not '$reason': $line"
  ok "$kind${*:+ ($*)}: ${line#*: *: }"
}

bad garbage "bad frame: bad length prefix"
bad truncated "truncated frame"
bad oversize "bad frame: oversize header"
bad oversize-payload "bad frame: oversize payload"
bad unknown-tag "bad frame: unknown body tag 99"
bad bad-version "wrong protocol version 99"
bad bad-name "Hello says node 'poke-impostor' but its certificate is 'poke'"
bad garbage "bad frame: bad length prefix" --hello
bad unknown-tag "bad frame: unknown body tag 99" --hello
bad truncated "truncated frame" --hello

[ "$(count "$T/primary.log" ' down: ')" -eq 0 ] || fail "the good link went down"
[ "$(count "$T/secondary.log" 'link:in:.* down: peer primary')" -eq 0 ] ||
  fail "the good link went down (secondary)"
kill -0 "$(pid_of secondary)" || fail "secondary died"
# and it still takes new links
"$LINKPOKE" --connect 127.0.0.1:$PORT --cert "$T/ca/poke.crt" --key "$T/ca/poke.key" \
  --name poke --hello --wait 0.5 > "$T/poke.out" 2>&1
grep -q '^hello ok secondary' "$T/poke.out" || fail "secondary stopped serving: $(cat "$T/poke.out")"
grep -q '^open after' "$T/poke.out" || fail "a good link was closed: $(cat "$T/poke.out")"
ok "the good link stayed up and the node still serves new links"
