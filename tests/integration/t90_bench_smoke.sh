# SPDX-License-Identifier: GPL-2.0-or-later
#
# t90_bench_smoke: `make bench` still works, at small sizes. Runs the driver
# tools/bench/run with BENCH_QUICK=1 (64 MiB test image, 1 s per fio row),
# its JSON, logs and doc redirected into $T so the real build/bench.json and
# docs/PERFORMANCE.md are not touched, and checks that the JSON parses, that
# every baseline figure is there as a positive number, that every product
# slot is there (a number, or null with a note saying why), that the 1 %
# change really changed 1 % of the 4 KiB blocks, and that the run left no
# scratch folder behind. Bounded to 120 s.
#
# Run by tests/run-integration with $T (scratch folder) and $BUILD set.
set -u
: "${T:?run by tests/run-integration (T unset)}" "${BUILD:?BUILD unset}"

fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
ok() { echo "ok: $*"; }

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
unset BENCH_STEPS BENCH_SIZE_MIB BENCH_STATIC # the whole quick run, whatever the caller set
OUT=$T/bench.json

before=
[ -f "$BUILD/bench.json" ] && before=$(cksum <"$BUILD/bench.json")

start=$(date +%s)
BENCH_QUICK=1 BENCH_SECONDS=1 BENCH_JSON="$OUT" BENCH_DOC=none BENCH_LOG="$T/bench-log" \
    BUILD="$BUILD" timeout -k 5 120 "$ROOT/tools/bench/run" >"$T/stdout" 2>"$T/stderr"
rc=$?
took=$(($(date +%s) - start))
cat "$T/stdout"
if [ "$rc" -ne 0 ]; then
    fail "tools/bench/run exited $rc after ${took}s: $(tail -n 3 "$T/stderr")"
    exit 1
fi
ok "quick bench ran in ${took}s"

after=
[ -f "$BUILD/bench.json" ] && after=$(cksum <"$BUILD/bench.json")
[ "$before" = "$after" ] || fail "the quick run changed $BUILD/bench.json"

# the JSON, checked by python3's json module (or jq when there is no python3)
BASE="data_image_bytes disk_fsync_write_mbps disk_fdatasync_p99_ms lz4_compress_mbps lz4_ratio
tls_link_mbps tcp_link_mbps slowest_stage_mbps rsync_full_seconds rsync_fsync_full_seconds
rsync_delta_seconds rsync_delta_sent_bytes rsync_delta_changed_bytes nbdkit_nbdcopy_seconds
nbdkit_fio_randwrite4k_qd1_iops nbdkit_fio_randwrite4k_qd16_iops nbdkit_fio_seqwrite1m_qd4_mbps"
SLOTS="ours_idle_rss_kib ours_initial_sync_seconds ours_vs_rsync_initial_sync
ours_vs_slowest_stage_initial_sync ours_nbdcopy_seconds ours_vs_nbdkit_nbdcopy
ours_fio_randwrite4k_qd1_iops ours_fio_randwrite4k_qd16_iops ours_fio_seqwrite1m_qd4_mbps
ours_lag_p50_ms ours_lag_p99_ms ours_backlog_grows ours_noded_bytes"

if python3 -c 'import json' 2>/dev/null; then
    python3 - "$OUT" "$BASE" "$SLOTS" >"$T/check" 2>&1 <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
f = d["figures"]
bad = []
for k in sys.argv[2].split():
    v = f.get(k, {}).get("value")
    if not isinstance(v, (int, float)) or isinstance(v, bool) or not v > 0:
        bad.append("baseline %s is %r" % (k, f.get(k)))
for k in sys.argv[3].split():
    e = f.get(k)
    if e is None:
        bad.append("slot %s missing" % k)
    elif e["value"] is None and not e["note"]:
        bad.append("slot %s is null with no note" % k)
    elif e["value"] is not None and not isinstance(e["value"], (int, float)):
        bad.append("slot %s is %r" % (k, e["value"]))
img = f["data_image_bytes"]["value"]
blocks = img // 4096
want = int(blocks * 0.01 + 0.5) * 4096
if f["rsync_delta_changed_bytes"]["value"] != want:
    bad.append("1 %% change: %r bytes changed, want %d" % (f["rsync_delta_changed_bytes"]["value"], want))
if d["quick"] is not True or d["params"]["image_bytes"] != img:
    bad.append("header: quick %r, image_bytes %r" % (d["quick"], d["params"]["image_bytes"]))
print("\n".join(bad) if bad else "json ok: %d figures" % len(f))
sys.exit(1 if bad else 0)
EOF
    crc=$?
elif command -v jq >/dev/null 2>&1; then
    crc=0
    for k in $BASE; do
        jq -e --arg k "$k" '.figures[$k].value | (type == "number") and (. > 0)' "$OUT" \
            >/dev/null 2>&1 || { echo "baseline $k is not a positive number"; crc=1; }
    done >"$T/check"
    for k in $SLOTS; do
        jq -e --arg k "$k" '.figures[$k] | (.value | type == "number") or (.note | length > 0)' \
            "$OUT" >/dev/null 2>&1 || { echo "slot $k missing or without a note"; crc=1; }
    done >>"$T/check"
    [ "$crc" -eq 0 ] && echo "json ok (jq)" >>"$T/check"
else
    echo "neither python3 nor jq to read JSON with" >"$T/check"
    crc=1
fi
if [ "$crc" -eq 0 ]; then
    ok "$(cat "$T/check")"
else
    fail "bench.json: $(cat "$T/check")"
fi

# the table names every group; nothing of the run is left behind
for g in 'Physical stages' 'rsync baselines' 'nbdkit file baseline' 'secondsite'; do
    grep -q "^$g" "$T/stdout" || fail "the table has no '$g' section"
done
left=$(find "$BUILD" -maxdepth 1 -name 'bench-tmp.*' | head -n 3)
[ -z "$left" ] || fail "scratch left behind: $left"
if pgrep -f "$BUILD/bench-tmp" >/dev/null 2>&1; then
    fail "processes of the run are still alive: $(pgrep -af "$BUILD/bench-tmp" | head -n 3)"
else
    ok "no scratch folder and no process left"
fi

echo "t90_bench_smoke: $fails failure(s)"
[ "$fails" -eq 0 ]
