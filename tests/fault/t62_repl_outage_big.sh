#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
#
# t62_repl_outage_big.sh: tests/integration/t52_repl_outage.sh on a
# 512 MiB disk with 3000 scattered writes during the outage, for
# `make test-fault`.
set -eu
DISK_SIZE=${DISK_SIZE:-512M}
SCATTER=${SCATTER:-3000}
export DISK_SIZE SCATTER
exec sh "$(dirname "$0")/../integration/t52_repl_outage.sh"
