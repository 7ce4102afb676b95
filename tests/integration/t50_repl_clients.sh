#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
#
# t50_repl_clients.sh: issue 3 acceptance 1. Real NBD clients write through
# the demo's exports (noded --demo, two 64 MiB disks, both appliances in
# one process over loopback mutual TLS) and the replica rebuilt offline
# equals the source byte for byte.
#
# 1. nbdinfo sees each export with its size.
# 2. disk0: one qemu-io session of aligned and unaligned writes from 512 B
#    to 1 MiB, overlapping writes, write -z (also unmapping) and discard;
#    the backing file must equal a reference made by the same qemu-io
#    commands on a local file. disk1: nbdcopy of an image with data, a zero
#    gap and data (multi-connection).
# 3. After `nodectl wait --drained` for both pairs, the point reached then
#    is noted and disk0's backing file copied aside.
# 4. An ext4 file system made locally (mkfs.ext4 -d with files) goes into
#    disk0 with qemu-img convert -n from a qcow2 image (so the whole disk is
#    rewritten, zeros included).
# 5. Drained again, noded is stopped (SIGTERM: exit 0 within 5 s); nodectl
#    restore --offline of the latest point of each pair equals SOURCE_i
#    (cmp); e2fsck -fn finds the restored ext4 clean and the files in it
#    equal the originals (debugfs dump); the point of step 3 restores to
#    exactly the copy made then.
#
# Needs: qemu-io, qemu-img, nbdinfo, nbdcopy, mkfs.ext4, e2fsck, debugfs, cmp.
set -eu
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/repl_lib.sh"
need qemu-io qemu-img nbdinfo nbdcopy mkfs.ext4 e2fsck debugfs cmp
cd "$T"
T0=$(date +%s)

demo_init "$T/d" 2 64M
start_demo
ok "demo up: $PAIR_0 on $NBD_URI_0, $PAIR_1 on $NBD_URI_1"

# ---- 1. nbdinfo -----------------------------------------------------------------------
for u in "$NBD_URI_0" "$NBD_URI_1"; do
  nbdinfo "$u" > info.out 2>&1 || fail "nbdinfo $u: $(cat info.out)"
  grep -q 'export-size: 67108864' info.out || fail "nbdinfo $u size: $(cat info.out)"
done
ok "nbdinfo: both exports, 64 MiB"

# ---- 2. qemu-io into disk0, nbdcopy into disk1 ------------------------------------------
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
# overlapping writes (the last wins), FUA, zeroes (also unmapping) and discard over data
set -- "$@" -c "write -P 7 100 70000" -c "write -P 8 4096 10000" -c "write -f -P 9 5000 300" \
  -c "write -P 66 62914560 1048576" -c "write -z 62914561 4096" \
  -c "write -z -u 63000000 100000" -c "discard 63500000 200000" -c "flush"
truncate -s 64M ref0.img
qemu-io -f raw -t writeback "$@" "$NBD_URI_0" > qio.out 2>&1 || fail "qemu-io: $(tail -5 qio.out)"
qemu-io -f raw -t writeback "$@" ref0.img > qref.out 2>&1 || fail "qemu-io on ref: $(tail -5 qref.out)"
cmp "$SOURCE_0" ref0.img || fail "disk0 differs from the qemu-io reference"
ok "qemu-io: $((n + 7)) writes, write -z, discard through $NBD_URI_0; source = reference"

dd if=/dev/urandom of=src1.img bs=1M count=20 status=none
dd if=/dev/zero of=src1.img bs=1M seek=20 count=16 conv=notrunc status=none
dd if=/dev/urandom of=src1.img bs=1M seek=36 count=28 conv=notrunc status=none
nbdcopy src1.img "$NBD_URI_1" > copy.out 2>&1 || fail "nbdcopy: $(cat copy.out)"
cmp src1.img "$SOURCE_1" || fail "disk1 differs from the nbdcopy source"
ok "nbdcopy of a 64 MiB image into $NBD_URI_1; source = image"

# ---- 3. drained: note the point ------------------------------------------------------
wait_drained "$PAIR_0"
wait_drained "$PAIR_1"
S0=$(field "$PAIR_0" source_seq)
[ "$(field "$PAIR_0" mt_durable_seq)" -ge "$S0" ] || fail "drained but mt_durable_seq < source_seq"
cp "$SOURCE_0" snap0.img
ok "both pairs drained; $PAIR_0 at seq $S0"

# ---- 4. ext4 through qemu-img convert -n ------------------------------------------------
mkdir -p tree/sub
dd if=/dev/urandom of=tree/random.bin bs=1k count=3000 status=none
seq 1 200000 > tree/sub/numbers.txt
cp "$NODED" tree/noded
mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 -d tree fs.img 64M > mkfs.out 2>&1 ||
  fail "mkfs.ext4: $(cat mkfs.out)"
qemu-img convert -f raw -O qcow2 fs.img fs.qcow2 > conv.out 2>&1 || fail "qemu-img: $(cat conv.out)"
qemu-img convert -n -f qcow2 -O raw fs.qcow2 "$NBD_URI_0" > conv.out 2>&1 ||
  fail "qemu-img convert -n into $NBD_URI_0: $(cat conv.out)"
cmp fs.img "$SOURCE_0" || fail "disk0 differs from the ext4 image after qemu-img convert -n"
nbdinfo "$NBD_URI_0" > info.out 2>&1 || fail "nbdinfo after convert: $(cat info.out)"
ok "ext4 (mkfs.ext4 -d) written with qemu-img convert -n; source = image"

# ---- 5. drain, stop, restore, compare -----------------------------------------------------
wait_drained "$PAIR_0"
wait_drained "$PAIR_1"
"$NODECTL" status > status.out 2>&1 || fail "nodectl status: $(cat status.out)"
grep -q "$PAIR_0 *protected" status.out || fail "pair not protected: $(cat status.out)"
"$NODECTL" --json status > status.json 2>&1 || fail "nodectl status --json: $(cat status.json)"
grep -q '"cache_mode":"relay"' status.json || fail "the ps beside its agent is not in relay mode"
stop_clean demo
if grep -q ': err:' "$T/demo.log"; then fail "errors logged: $(grep ': err:' "$T/demo.log" | head -5)"; fi
ok "drained; noded stopped cleanly (SIGTERM, exit 0)"

restore_cmp "$PAIR_0" "$SOURCE_0" r0.img
restore_cmp "$PAIR_1" "$SOURCE_1" r1.img
ok "restore --offline latest: both replicas equal their sources byte for byte"

e2fsck -fn r0.img > fsck.out 2>&1 || fail "e2fsck -fn of the replica: $(tail -5 fsck.out)"
for f in random.bin sub/numbers.txt noded; do
  rm -f dumped
  debugfs -R "dump /$f dumped" r0.img > /dev/null 2>&1 || fail "debugfs dump /$f"
  cmp "tree/$f" dumped || fail "file /$f in the replica differs"
done
ok "e2fsck -fn: the replica's ext4 is clean; its files equal the originals"

restore "$PAIR_0" "$S0" p0.img
cmp snap0.img p0.img || fail "point $S0 of $PAIR_0 differs from the disk as it was then"
ok "point $S0 (before the ext4) restores to the disk as it was then"
ok "t50 done in $(elapsed_since "$T0") s"
