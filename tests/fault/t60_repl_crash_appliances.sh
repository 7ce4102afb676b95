#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
#
# t60_repl_crash_appliances.sh: the long version of
# tests/integration/t51_repl_crash.sh for `make test-fault` (ROUNDS=20):
# SIGKILL of the primary and of the secondary appliance, ROUNDS rounds each,
# under a load on two 256 MiB disks, then up to 60 recovery points per pair
# checked to be exact prefix states of the writes.
set -eu
ROUNDS=${ROUNDS:-20}
DISKS=${DISKS:-2}
DISK_SIZE=${DISK_SIZE:-256M}
LOAD_S=${LOAD_S:-2}
POINTS=${POINTS:-20}
MAX_POINTS=${MAX_POINTS:-60}
TOPOS=appliances
export ROUNDS DISKS DISK_SIZE LOAD_S POINTS MAX_POINTS TOPOS
exec sh "$(dirname "$0")/../integration/t51_repl_crash.sh"
