#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
#
# t32_nbd_capture.sh: the capture hook sees every completed write, in order,
# with the right content, and nothing else. nbdserve --log appends one line
# per write the hook sees ("SEQ OFF LEN XXH64 EXPORT KIND").
#
# 1. A qemu-io session of overlapping writes, write -z, discard, a FUA write,
#    a flush and reads: the log must be exactly the expected lines, in order
#    (hashes of the patterns computed by it-bin/nbdpoke hash-pattern); reads
#    and flushes are not logged.
# 2. nbdcopy (4 connections at once) of an image into a second export: the
#    sequence numbers have no gap, every logged write's hash equals the hash
#    of the image at that range, every zeroed range is zero in the image, and
#    the backing file equals the image.
#
# Needs: $BUILD/it-bin/nbdserve, $BUILD/it-bin/nbdpoke, qemu-io, nbdcopy, cmp.
set -eu
: "${T:?scratch dir}" "${BUILD:?build dir}"
SERVE=$BUILD/it-bin/nbdserve
POKE=$BUILD/it-bin/nbdpoke
fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok: $*"; }
for t in qemu-io nbdcopy cmp diff; do
  command -v "$t" >/dev/null 2>&1 || fail "missing tool $t"
done

SPID=
cleanup() {
  if [ -n "$SPID" ]; then kill "$SPID" 2>/dev/null || true; wait "$SPID" 2>/dev/null || true; fi
}
trap cleanup EXIT INT TERM

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

cd "$T"
truncate -s 8M cap.img
truncate -s 24M bulk.img
dd if=/dev/urandom of=src.img bs=1M count=6 status=none
dd if=/dev/zero of=src.img bs=1M seek=6 count=6 conv=notrunc status=none
dd if=/dev/urandom of=src.img bs=1M seek=12 count=12 conv=notrunc status=none
rm -f capture.log
start_server --export cap cap.img --export bulk bulk.img --log capture.log
URI=nbd://127.0.0.1:$PORT

# ---- 1. one session, exact log ---------------------------------------------------------
qemu-io -f raw -t writeback \
  -c "write -P 0x01 0 64k" -c "write -P 0x02 4k 8k" -c "read -P 0x02 4k 8k" \
  -c "write -z 0 4k" -c "discard 60k 4k" -c "write -P 0x03 1 1000" \
  -c "flush" -c "write -f -P 0x04 8k 512" -c "write -z -u 1M 1M" -c "read -P 0 1M 1M" \
  -c "write -P 0x05 3M 1048576" \
  "$URI/cap" > qio.out 2>&1 || fail "qemu-io: $(tail -3 qio.out)"
h() { "$POKE" hash-pattern "$1" "$2"; }
{
  echo "1 0 65536 $(h 1 65536) cap w"
  echo "2 4096 8192 $(h 2 8192) cap w"
  echo "3 0 4096 $(h 0 4096) cap z"
  echo "4 61440 4096 $(h 0 4096) cap t"
  echo "5 1 1000 $(h 3 1000) cap w"
  echo "6 8192 512 $(h 4 512) cap wf"
  echo "7 1048576 1048576 $(h 0 1048576) cap z"
  echo "8 3145728 1048576 $(h 5 1048576) cap w"
} > expected.log
diff expected.log capture.log > log.diff || { cat log.diff; fail "capture log differs from the expected writes"; }
ok "qemu-io session: 8 writes captured in order with their hashes; reads and flush not logged"
# what the log says is what the disk holds
[ "$("$POKE" hash cap.img 3145728 1048576)" = "$(h 5 1048576)" ] || fail "cap.img content"
[ "$("$POKE" hash cap.img 12288 49152)" = "$(h 1 49152)" ] || fail "cap.img first write middle"
[ "$("$POKE" hash cap.img 61440 4096)" = "$(h 0 4096)" ] || fail "cap.img discarded range"

# ---- 2. nbdcopy over several connections ----------------------------------------------
nbdcopy src.img "$URI/bulk" > copy.out 2>&1 || fail "nbdcopy: $(cat copy.out)"
cmp src.img bulk.img || fail "bulk export differs from the source"
n=$("$POKE" verify-log capture.log src.img bulk) || fail "capture log does not match the source image"
[ "$n" -ge 4 ] || fail "only $n writes captured for a 24 MiB nbdcopy"
# the logged ranges cover the whole data part of the image
cover=$(awk '$5 == "bulk" && $6 ~ /^w/ { s += $3 } END { print s + 0 }' capture.log)
[ "$cover" -ge $((18 * 1048576)) ] || fail "captured writes cover $cover bytes, expected >= 18 MiB"
ok "nbdcopy (multi-conn): $n writes captured, gapless sequence, every hash matches the image"

kill -TERM "$SPID"
rc=0
wait "$SPID" || rc=$?
SPID=
[ "$rc" -eq 0 ] || fail "nbdserve exit status $rc on SIGTERM"
ok "nbdserve stopped cleanly"
