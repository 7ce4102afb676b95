#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
#
# t15_link_noded_usage.sh: noded's command line (DESIGN.md section 6).
# --help reads like a man page and exits 0; --version exits 0; bad usage
# and a bad config file exit 2 with exactly one line on stderr (the config
# error names the file, the line and the key); bad --demo options exit 2;
# missing certificates exit 1 with one line.
set -eu
. "$(dirname "$0")/lib.sh"

# run_noded ARGS...: sets RC, OUT (stdout) and ERR (stderr files)
run_noded() {
  RC=0
  "$NODED" "$@" > "$T/out" 2> "$T/err" || RC=$?
}
lines() { wc -l < "$1" | tr -d ' '; }

run_noded --help
[ "$RC" = 0 ] || fail "--help exit $RC"
for s in NAME SYNOPSIS DESCRIPTION OPTIONS FILES "EXIT STATUS" "noded -c FILE"; do
  grep -q "$s" "$T/out" || fail "--help lacks $s"
done
[ "$(lines "$T/err")" = 0 ] || fail "--help wrote to stderr"
ok "--help is a man page"

run_noded --version
[ "$RC" = 0 ] && grep -q '^noded ' "$T/out" || fail "--version: $RC $(cat "$T/out")"
ok "--version"

for args in "--bogus" "-x" "-c" "" "-c a.ini extra"; do
  # shellcheck disable=SC2086
  run_noded $args
  [ "$RC" = 2 ] || fail "'noded $args' exit $RC, want 2"
  [ "$(lines "$T/err")" = 1 ] || fail "'noded $args': not one line: $(cat "$T/err")"
  grep -q '^noded: ' "$T/err" || fail "'noded $args': $(cat "$T/err")"
  ok "bad usage 'noded $args': $(cat "$T/err")"
done

printf '[node]\nname = n1\nroles = cs\nbogus_key = 1\n' > "$T/bad.ini"
run_noded -c "$T/bad.ini"
[ "$RC" = 2 ] || fail "bad config exit $RC, want 2"
[ "$(lines "$T/err")" = 1 ] || fail "bad config: not one line: $(cat "$T/err")"
grep -q "bad.ini:4:.*bogus_key" "$T/err" || fail "bad config line does not name file:line and key: $(cat "$T/err")"
ok "bad config: $(cat "$T/err")"

run_noded -c "$T/missing.ini"
[ "$RC" = 2 ] && [ "$(lines "$T/err")" = 1 ] || fail "missing config: $RC $(cat "$T/err")"
ok "missing config: $(cat "$T/err")"

run_noded --demo "$T/demo" -c "$T/bad.ini"
[ "$RC" = 2 ] && [ "$(lines "$T/err")" = 1 ] || fail "--demo with -c: $RC $(cat "$T/err")"
run_noded --disks 2
[ "$RC" = 2 ] && [ "$(lines "$T/err")" = 1 ] || fail "--disks without --demo: $RC $(cat "$T/err")"
run_noded --demo "$T/demo" --disk-size 12345
[ "$RC" = 2 ] && grep -q 'disk-size' "$T/err" || fail "--disk-size 12345: $RC $(cat "$T/err")"
run_noded --demo "$T/demo" --disks 0
[ "$RC" = 2 ] && grep -q 'disks' "$T/err" || fail "--disks 0: $RC $(cat "$T/err")"
[ ! -e "$T/demo" ] || fail "bad demo options still wrote $T/demo"
ok "--demo option errors: exit 2, one line, nothing written"

PORT=$(free_port)
printf '[node]\nname = n1\nroles = cs\n[tls]\nca = nope/ca.crt\ncert = nope/n1.crt\nkey = nope/n1.key\n[listen]\nlink = 127.0.0.1:%s\n[trace]\nfile = n1.trace\n' \
  "$PORT" > "$T/nocert.ini"
run_noded -c "$T/nocert.ini"
[ "$RC" = 1 ] || fail "missing certificates: exit $RC, want 1"
[ "$(lines "$T/err")" = 1 ] && grep -q 'cannot load the site CA' "$T/err" ||
  fail "missing certificates: $(cat "$T/err")"
ok "missing certificates: $(cat "$T/err")"

printf '[node]\nname = n1\nroles = cs\n[listen]\nlink = 127.0.0.1:%s\n[trace]\nfile = n1.trace\n' \
  "$PORT" > "$T/notls.ini"
run_noded -c "$T/notls.ini"
[ "$RC" = 1 ] && [ "$(lines "$T/err")" = 1 ] && grep -q '\[tls\] ca, cert and key' "$T/err" ||
  fail "no [tls]: $RC $(cat "$T/err")"
ok "links without [tls]: $(cat "$T/err")"
