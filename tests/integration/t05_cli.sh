# SPDX-License-Identifier: GPL-2.0-or-later
#
# t05_cli: the command-line contract of nodectl and noded, on the real
# binaries. Bad usage exits 2 with exactly one line on stderr (and nothing on
# stdout); --help exits 0 and prints a man page (NAME, SYNOPSIS, EXIT
# STATUS); nodectl init and cert issue write the site's files with the right
# modes, refuse to overwrite them, and cert show / cert verify read them back.
# noded's checks run once build/noded exists.
#
# Run by tests/run-integration with $T (scratch folder) and $BUILD set.
set -u
: "${T:?run by tests/run-integration (T unset)}" "${BUILD:?BUILD unset}"

CTL=$BUILD/nodectl
NODED=$BUILD/noded
fails=0

fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
ok() { echo "ok: $*"; }

# run CMD...: sets rc, and $T/out, $T/err
run() {
    "$@" >"$T/out" 2>"$T/err"
    rc=$?
}

# usage CMD...: exit 2, one line on stderr, nothing on stdout
usage() {
    run "$@"
    lines=$(wc -l <"$T/err")
    if [ "$rc" -ne 2 ]; then
        fail "$* exited $rc, want 2 (stderr: $(head -c 300 "$T/err"))"
    elif [ "$lines" -ne 1 ]; then
        fail "$* wrote $lines lines on stderr, want 1: $(cat "$T/err")"
    elif [ -s "$T/out" ]; then
        fail "$* wrote on stdout on a usage error"
    else
        ok "usage error, exit 2: $(cat "$T/err")"
    fi
}

# page CMD...: exit 0, a man page on stdout
page() {
    run "$@"
    if [ "$rc" -ne 0 ]; then
        fail "$* exited $rc, want 0"
        return
    fi
    for s in NAME SYNOPSIS 'EXIT STATUS'; do
        grep -q "^$s\$" "$T/out" || fail "$*: no $s section"
    done
    ok "$* prints a man page"
}

# opfail CMD...: exit 1 (the operation failed), one line on stderr
opfail() {
    run "$@"
    lines=$(wc -l <"$T/err")
    if [ "$rc" -ne 1 ] || [ "$lines" -ne 1 ]; then
        fail "$* exited $rc with $lines stderr lines, want 1 and 1: $(cat "$T/err")"
    else
        ok "operation failed, exit 1: $(cat "$T/err")"
    fi
}

mode() { stat -c %a "$1"; }

want_mode() {
    if [ ! -f "$1" ]; then
        fail "$1 missing"
    elif [ "$(mode "$1")" != "$2" ]; then
        fail "$1 has mode $(mode "$1"), want $2"
    else
        ok "$1 mode $2"
    fi
}

[ -x "$CTL" ] || { echo "FAIL: $CTL not built"; exit 1; }

# ---- nodectl: usage errors and help ------------------------------------------

usage "$CTL"
usage "$CTL" frobnicate
usage "$CTL" --frob
usage "$CTL" --conf
usage "$CTL" init
usage "$CTL" init "$T/a" "$T/b"
usage "$CTL" init --site 'bad/name' "$T/a"
usage "$CTL" cert
usage "$CTL" cert frob
usage "$CTL" cert issue
usage "$CTL" cert issue --ca "$T/site"
usage "$CTL" cert issue --ca "$T/site" ../evil
usage "$CTL" cert issue --ca "$T/site" n1 --days abc
usage "$CTL" cert issue --ca "$T/site" n1 --days 0
usage "$CTL" cert issue --ca
usage "$CTL" cert show
usage "$CTL" cert show a b
usage "$CTL" cert verify "$T/x.crt"
[ -e "$T/a" ] && fail "a usage error created $T/a"

page "$CTL" --help
page "$CTL" -h
page "$CTL" help
page "$CTL" init --help
page "$CTL" cert --help
page "$CTL" cert issue --help
page "$CTL" cert show -h
page "$CTL" help cert verify
grep -q 'NODECTL_CONF' "$T/out" || fail "help pages do not mention NODECTL_CONF"
run "$CTL" --help
for c in 'init DIR' 'cert issue' 'cert show FILE'; do
    grep -q "$c" "$T/out" || fail "nodectl --help does not list '$c'"
done

# ---- nodectl init and cert issue ----------------------------------------------

S=$T/site
run "$CTL" init "$S"
[ "$rc" -eq 0 ] || fail "init exited $rc: $(cat "$T/err")"
want_mode "$S/ca.key" 600
want_mode "$S/ca.crt" 644
want_mode "$S/admin.key" 600
want_mode "$S/admin.crt" 644
[ "$(mode "$S")" = 700 ] || fail "$S has mode $(mode "$S"), want 700"

cp "$S/ca.key" "$T/ca.key.before"
opfail "$CTL" init "$S"
grep -q -- '--force' "$T/err" || fail "refusal does not say --force"
cmp -s "$S/ca.key" "$T/ca.key.before" || fail "a refused init changed ca.key"

run "$CTL" cert issue --ca "$S" primary
[ "$rc" -eq 0 ] || fail "cert issue exited $rc: $(cat "$T/err")"
want_mode "$S/primary.key" 600
want_mode "$S/primary.crt" 644
opfail "$CTL" cert issue --ca "$S" primary
run "$CTL" cert issue --ca "$S" primary --force
[ "$rc" -eq 0 ] || fail "cert issue --force exited $rc"

run "$CTL" cert issue --ca "$S" --out "$T/out-dir" --admin --days 10 ops
[ "$rc" -eq 0 ] || fail "cert issue --out --admin exited $rc: $(cat "$T/err")"
want_mode "$T/out-dir/ops.key" 600
want_mode "$T/out-dir/ops.crt" 644
[ -e "$S/ops.crt" ] && fail "--out ignored: $S/ops.crt written"

# ---- cert show and verify -------------------------------------------------------

run "$CTL" cert show "$S/primary.crt"
if [ "$rc" -eq 0 ] && grep -q '^CN  *primary$' "$T/out" && grep -q '^OU  *node$' "$T/out"; then
    ok "cert show prints CN primary, OU node"
else
    fail "cert show: rc $rc, output: $(cat "$T/out")"
fi
run "$CTL" cert show "$S/admin.crt"
grep -q '^OU  *admin$' "$T/out" || fail "admin.crt is not OU=admin: $(cat "$T/out")"
run "$CTL" --json cert show "$T/out-dir/ops.crt"
if grep -q '"cn":"ops"' "$T/out" && grep -q '"admin":true' "$T/out" &&
   [ "$(wc -l <"$T/out")" -eq 1 ]; then
    ok "cert show --json: $(cat "$T/out")"
else
    fail "cert show --json: $(cat "$T/out")"
fi
run "$CTL" cert show "$S/ca.crt" --json
grep -q '"ca":true' "$T/out" || fail "ca.crt is not a CA: $(cat "$T/out")"
opfail "$CTL" cert show "$S/ca.key"
opfail "$CTL" cert show "$T/no-such.crt"

run "$CTL" cert verify --ca "$S" "$S/primary.crt"
[ "$rc" -eq 0 ] || fail "verify of primary.crt exited $rc: $(cat "$T/err")"
run "$CTL" cert verify --ca "$S/ca.crt" "$T/out-dir/ops.crt"
[ "$rc" -eq 0 ] || fail "verify with a CA file exited $rc: $(cat "$T/err")"
run "$CTL" init --site other "$T/other"
[ "$rc" -eq 0 ] || fail "second init exited $rc"
opfail "$CTL" cert verify --ca "$T/other" "$S/primary.crt"

# ---- noded ----------------------------------------------------------------------

if [ -x "$NODED" ]; then
    usage "$NODED"
    usage "$NODED" --frob
    usage "$NODED" -c
    page "$NODED" --help
else
    echo "note: $NODED not built yet: its command-line checks are skipped"
fi

echo "t05_cli: $fails failure(s)"
[ "$fails" -eq 0 ]
