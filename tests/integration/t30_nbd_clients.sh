#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
#
# t30_nbd_clients.sh: real NBD clients against the agent's NBD tap
# (nodes/agent/nbd.c, served by it-bin/nbdserve): qemu-io with aligned and
# unaligned writes from 512 B to 1 MiB, write -z and discard, read -P checks;
# nbdinfo of one export and --list of all; nbdcopy of an image into an export
# and back out (multi-connection); qemu-img convert -n into an export. Every
# backing file is compared byte for byte with a reference (cmp): for qemu-io
# the reference is the same command list run by qemu-io on a local file.
#
# Needs: $BUILD/it-bin/nbdserve, qemu-io, qemu-img, nbdinfo, nbdcopy, cmp.
set -eu
: "${T:?scratch dir}" "${BUILD:?build dir}"
SERVE=$BUILD/it-bin/nbdserve
fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok: $*"; }
for t in qemu-io qemu-img nbdinfo nbdcopy cmp; do
  command -v "$t" >/dev/null 2>&1 || fail "missing tool $t"
done

SPID=
cleanup() {
  if [ -n "$SPID" ]; then kill "$SPID" 2>/dev/null || true; wait "$SPID" 2>/dev/null || true; fi
}
trap cleanup EXIT INT TERM

# start_server ARGS...: nbdserve on a free loopback port; sets PORT and SPID
start_server() {
  rm -f "$T/port"
  "$SERVE" --listen 127.0.0.1:0 --port-file "$T/port" "$@" 2>>"$T/server.log" &
  SPID=$!
  i=0
  while [ ! -s "$T/port" ]; do
    i=$((i + 1))
    [ "$i" -le 100 ] || fail "nbdserve did not start: $(cat "$T/server.log")"
    kill -0 "$SPID" 2>/dev/null || fail "nbdserve died: $(cat "$T/server.log")"
    sleep 0.05
  done
  PORT=$(cat "$T/port")
}

# ---- images -------------------------------------------------------------------------
cd "$T"
truncate -s 64M disk.img ref.img
truncate -s 16M small.img
# a 32 MiB source with data, a zero gap and data again
dd if=/dev/urandom of=src.img bs=1M count=8 status=none
dd if=/dev/zero of=src.img bs=1M seek=8 count=8 conv=notrunc status=none
dd if=/dev/urandom of=src.img bs=1M seek=16 count=12 conv=notrunc status=none
truncate -s 32M src.img
truncate -s 32M copy.img
# conv.img starts full of garbage: convert must overwrite every byte
dd if=/dev/urandom of=conv.img bs=1M count=32 status=none

start_server --export disk disk.img --export small small.img --export copy copy.img \
  --export conv conv.img
URI=nbd://127.0.0.1:$PORT
ok "nbdserve on port $PORT"

# ---- nbdinfo ------------------------------------------------------------------------
nbdinfo "$URI/disk" > info.out 2>&1 || fail "nbdinfo: $(cat info.out)"
grep -q 'export-size: 67108864' info.out || fail "nbdinfo size: $(cat info.out)"
grep -q 'can_multi_conn: true' info.out || fail "nbdinfo multi-conn: $(cat info.out)"
grep -q 'can_zero: true' info.out || fail "nbdinfo can_zero: $(cat info.out)"
grep -q 'can_trim: true' info.out || fail "nbdinfo can_trim: $(cat info.out)"
grep -q 'block_size_maximum: 33554432' info.out || fail "nbdinfo block size: $(cat info.out)"
ok "nbdinfo reports size, flags and block sizes"
nbdinfo --list "$URI" > list.out 2>&1 || fail "nbdinfo --list: $(cat list.out)"
for e in disk small copy conv; do
  grep -q "export=\"$e\"" list.out || fail "nbdinfo --list lacks $e: $(cat list.out)"
done
grep -q 'export-size: 16777216' list.out || fail "nbdinfo --list size of small"
ok "nbdinfo --list shows the 4 exports"

# ---- qemu-io: aligned and unaligned writes, 512 B .. 1 MiB --------------------------
set --
n=0
for len in 512 1000 4096 4097 65536 100000 1048576; do
  for mis in 0 1 511 4095; do
    n=$((n + 1))
    off=$((n * 2 * 1048576 + mis))
    pat=$(((n * 37) % 255 + 1))
    set -- "$@" -c "write -P $pat $off $len"
  done
done
# overlapping writes: the last one wins
set -- "$@" -c "write -P 7 100 70000" -c "write -P 8 4096 10000" -c "write -P 9 5000 300"
# zeroes and discard over written data
set -- "$@" -c "write -P 66 62914560 1048576" -c "write -z 62914561 4096" \
  -c "write -z -u 63000000 100000" -c "discard 63500000 200000"
qemu-io -f raw -t writeback "$@" -c flush "$URI/disk" > qio.out 2>&1 || fail "qemu-io: $(tail -5 qio.out)"
qemu-io -f raw -t writeback "$@" ref.img > qref.out 2>&1 || fail "qemu-io on ref: $(tail -5 qref.out)"
cmp disk.img ref.img || fail "export differs from the reference after $n+7 qemu-io writes"
ok "qemu-io: $((n + 7)) writes, write -z and discard; backing file = reference (cmp)"

# read back through the export with pattern checks (non-overlapping ones)
set --
n=0
for len in 512 1000 4096 4097 65536 100000 1048576; do
  for mis in 0 1 511 4095; do
    n=$((n + 1))
    off=$((n * 2 * 1048576 + mis))
    pat=$(((n * 37) % 255 + 1))
    set -- "$@" -c "read -P $pat $off $len"
  done
done
set -- "$@" -c "read -P 9 5000 300" -c "read -P 0 62914561 4096" -c "read -P 0 63000000 100000" \
  -c "read -P 0 63500000 200000" -c "read -P 66 62914560 1" -c "read -P 66 62918657 81343"
qemu-io -f raw "$@" "$URI/disk" > qread.out 2>&1 || fail "qemu-io read -P: $(grep -m3 -i fail qread.out)"
if grep -qi 'verification failed' qread.out; then fail "read -P: $(grep -m3 -i fail qread.out)"; fi
ok "qemu-io read -P of every region through the export"

# ---- nbdcopy in and out (multi-conn) -------------------------------------------------
nbdcopy src.img "$URI/copy" > copy.out 2>&1 || fail "nbdcopy in: $(cat copy.out)"
cmp src.img copy.img || fail "nbdcopy into the export: backing file differs from the source"
nbdcopy "$URI/copy" back.img > back.out 2>&1 || fail "nbdcopy out: $(cat back.out)"
cmp src.img back.img || fail "nbdcopy out of the export: copy differs from the source"
ok "nbdcopy image -> export -> image, byte for byte"

# ---- qemu-img convert -n ----------------------------------------------------------------
qemu-img convert -n -f raw -O raw src.img "$URI/conv" > conv.out 2>&1 ||
  fail "qemu-img convert: $(cat conv.out)"
cmp src.img conv.img || fail "qemu-img convert -n: backing file differs from the source"
ok "qemu-img convert -n into the export, byte for byte (garbage overwritten, zeroes written)"

# ---- clean stop ---------------------------------------------------------------------------
kill -0 "$SPID" 2>/dev/null || fail "nbdserve died during the run"
kill -TERM "$SPID"
rc=0
wait "$SPID" || rc=$?
SPID=
[ "$rc" -eq 0 ] || fail "nbdserve exit status $rc on SIGTERM"
if grep -q ': err:' "$T/server.log"; then fail "server errors: $(grep ': err:' "$T/server.log")"; fi
ok "nbdserve stopped cleanly"
