#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
#
# t63_repl_sigterm_rounds.sh: tests/integration/t54_repl_sigterm.sh with
# ROUNDS (20) SIGTERMs of each of the demo, the primary and the secondary,
# and tests/integration/t53_repl_badinput.sh with ROUNDS rounds of every
# malformed-input check, for `make test-fault`.
set -eu
ROUNDS=${ROUNDS:-20}
POKES=$ROUNDS
export ROUNDS POKES
here=$(dirname "$0")
mkdir -p "$T/sigterm" "$T/badinput"
T=$T/sigterm sh "$here/../integration/t54_repl_sigterm.sh"
T=$T/badinput sh "$here/../integration/t53_repl_badinput.sh"
