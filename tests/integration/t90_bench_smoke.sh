# SPDX-License-Identifier: GPL-2.0-or-later
#
# t90_bench_smoke: `make bench` still works, at small sizes, and the product
# gives every figure of issue 3. Runs the driver tools/bench/run with
# BENCH_QUICK=1 on a 32 MiB test image (1 s per fio row, one lag run at
# 20 MB/s for 1 s, every wait for drained bounded at 20 s), its JSON, logs
# and doc redirected into $T so the real build/bench.json and
# docs/PERFORMANCE.md are not touched, and checks that the JSON parses,
# that every baseline figure is a positive number, that every product
# figure is a number (positive, or 0/1 for a yes/no), that the replica
# rebuilt offline equalled the source (else the figures are void), that the
# 1 % change really changed 1 % of the 4 KiB blocks, and that the run left no
# scratch folder or process behind. The run is bounded to 100 s (about
# 25-40 s; 30 s more to clean up if it had to be stopped).
#
# Run by tests/run-integration with $T (scratch folder) and $BUILD set.
set -u
: "${T:?run by tests/run-integration (T unset)}" "${BUILD:?BUILD unset}"

fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
ok() { echo "ok: $*"; }

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
# the whole quick run, whatever the caller set
unset BENCH_STEPS BENCH_STATIC BENCH_LAG_BS BENCH_LAG_DEPTH BENCH_LAG_POLL_MS
OUT=$T/bench.json

before=
[ -f "$BUILD/bench.json" ] && before=$(cksum <"$BUILD/bench.json")
scratch_before=$(find "$BUILD" -maxdepth 1 -name 'bench-tmp.*' | sort)

start=$(date +%s)
BENCH_QUICK=1 BENCH_SIZE_MIB=32 BENCH_SECONDS=1 BENCH_LAG_RATES=20 BENCH_DRAIN_S=20 \
    BENCH_JSON="$OUT" BENCH_DOC=none BENCH_LOG="$T/bench-log" \
    BUILD="$BUILD" timeout -k 30 100 "$ROOT/tools/bench/run" >"$T/stdout" 2>"$T/stderr"
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
# product figures: positive numbers, except yes/no (0 or 1) and lags (>= 0)
OURS="ours_idle_rss_kib ours_initial_sync_seconds ours_vs_rsync_initial_sync
ours_vs_slowest_stage_initial_sync ours_nbdcopy_seconds ours_vs_nbdkit_nbdcopy
ours_fio_randwrite4k_qd1_iops ours_fio_randwrite4k_qd16_iops ours_fio_seqwrite1m_qd4_mbps
ours_vs_nbdkit_fio_randwrite4k_qd1 ours_vs_nbdkit_fio_randwrite4k_qd16
ours_vs_nbdkit_fio_seqwrite1m_qd4 ours_lag_r20_achieved_mbps ours_noded_bytes
ours_noded_dynamic_bytes ours_idle_rss_primary_kib ours_idle_rss_secondary_kib"
OURS0="ours_lag_p50_ms ours_lag_p99_ms ours_lag_r20_p50_ms ours_lag_r20_p99_ms"
BOOL="ours_backlog_grows ours_replica_identical"

if python3 -c 'import json' 2>/dev/null; then
    python3 - "$OUT" "$BASE" "$OURS" "$OURS0" "$BOOL" >"$T/check" 2>&1 <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
f = d["figures"]
bad = []
def num(k):
    v = f.get(k, {}).get("value")
    ok = isinstance(v, (int, float)) and not isinstance(v, bool)
    return v if ok else None
for k in sys.argv[2].split() + sys.argv[3].split():
    v = num(k)
    if v is None or not v > 0:
        bad.append("%s is %r" % (k, f.get(k)))
for k in sys.argv[4].split():
    v = num(k)
    if v is None or v < 0:
        bad.append("%s is %r" % (k, f.get(k)))
for k in sys.argv[5].split():
    if num(k) not in (0, 1):
        bad.append("%s is %r" % (k, f.get(k)))
if num("ours_replica_identical") != 1:
    bad.append("the replica was not identical to the source: %r" % f.get("ours_replica_identical"))
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
    for k in $OURS; do
        jq -e --arg k "$k" '.figures[$k].value | (type == "number") and (. > 0)' "$OUT" \
            >/dev/null 2>&1 || { echo "$k is not a positive number"; crc=1; }
    done >>"$T/check"
    for k in $OURS0; do
        jq -e --arg k "$k" '.figures[$k].value | (type == "number") and (. >= 0)' "$OUT" \
            >/dev/null 2>&1 || { echo "$k is not a number >= 0"; crc=1; }
    done >>"$T/check"
    for k in $BOOL; do
        jq -e --arg k "$k" '.figures[$k].value | (. == 0) or (. == 1)' "$OUT" \
            >/dev/null 2>&1 || { echo "$k is not 0 or 1"; crc=1; }
    done >>"$T/check"
    jq -e '.figures.ours_replica_identical.value == 1' "$OUT" >/dev/null 2>&1 ||
        { echo "the replica was not identical to the source"; crc=1; } >>"$T/check"
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
for g in 'Physical stages' 'rsync baselines' 'nbdkit file baseline' 'secondsite' \
    'secondsite: lag'; do
    grep -q "^$g" "$T/stdout" || fail "the table has no '$g' section"
done
left=$(find "$BUILD" -maxdepth 1 -name 'bench-tmp.*' | sort | grep -vxF "$scratch_before" | head -n 3)
[ -z "$left" ] || fail "scratch left behind: $left"
if pgrep -f "$BUILD/bench-tmp" >/dev/null 2>&1; then
    fail "processes of the run are still alive: $(pgrep -af "$BUILD/bench-tmp" | head -n 3)"
else
    ok "no scratch folder and no process left"
fi

echo "t90_bench_smoke: $fails failure(s)"
[ "$fails" -eq 0 ]
