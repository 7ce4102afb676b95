#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
#
# t61_repl_crash_roles.sh: tests/integration/t51_repl_crash.sh with the
# roles apart (agent, process server and master target as three noded
# processes) for `make test-fault`: SIGKILL of each role, ROUNDS (20)
# rounds each, under a load on two 256 MiB disks; then up to 60 recovery
# points per pair checked to be exact prefix states of the writes.
set -eu
ROLE_ROUNDS=${ROUNDS:-20}
DISKS=${DISKS:-2}
DISK_SIZE=${DISK_SIZE:-256M}
LOAD_S=${LOAD_S:-2}
POINTS=${POINTS:-20}
MAX_POINTS=${MAX_POINTS:-60}
TOPOS=roles
export ROLE_ROUNDS DISKS DISK_SIZE LOAD_S POINTS MAX_POINTS TOPOS
exec sh "$(dirname "$0")/../integration/t51_repl_crash.sh"
