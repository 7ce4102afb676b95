# SPDX-License-Identifier: GPL-2.0-or-later
#
# rsync.sh: the rsync baselines (sourced by tools/bench/run), the tool an
# operator would use instead of us. An rsync daemon on 127.0.0.1 (a free
# port) receives, so the data really crosses TCP, as it would between sites:
#   - a full copy of the test image (the initial sync to beat), plain and,
#     for a fair look at durability, with --fsync;
#   - a 1 % change: 1 % of the image's 4 KiB blocks overwritten at random in
#     a copy, then `rsync -I --inplace --no-whole-file -B4096` onto the old
#     copy (the resync to beat): time, bytes sent and received, and the
#     bytes that differ (rsync_delta, also run by the resync step of wan.sh
#     when this step did not run).
# Each copy is compared with its source afterwards (outside the clock).

# rsyncd_start DIR: a daemon serving DIR as module "bench"; sets RSYNC_URL
rsyncd_start() {
    local dir=$1 conf=$TMP/rsyncd.conf p i=0
    {
        echo "use chroot = no"
        echo "max connections = 4"
        echo "log file = $LOG/rsyncd.log"
        echo "pid file = $TMP/rsyncd.pid"
        echo "[bench]"
        echo "path = $dir"
        echo "read only = false"
        if [ "$(id -u)" = 0 ]; then
            echo "uid = 0"
            echo "gid = 0"
        fi
    } >"$conf"
    p=$(port) || return 1
    bg "$LOG/rsyncd.out" rsync --daemon --no-detach --config="$conf" --address=127.0.0.1 \
        --port="$p"
    RSYNCD_PID=$BG_PID
    RSYNC_URL=rsync://127.0.0.1:$p/bench
    while [ $i -lt 50 ]; do
        timeout 5 rsync "rsync://127.0.0.1:$p/" >/dev/null 2>&1 && return 0
        kill -0 "$RSYNCD_PID" 2>/dev/null || break
        sleep 0.1
        i=$((i + 1))
    done
    stop "$RSYNCD_PID"
    return 1
}

# rsync_sent OUTPUT: "Total bytes sent" from rsync --stats, without separators
rsync_sent() { printf '%s\n' "$1" | sed -n 's/^Total bytes sent: *//p' | tr -d ',.'; }

# rsync_recv OUTPUT: "Total bytes received" from rsync --stats (the block
# checksums the receiving side sent), without separators
rsync_recv() { printf '%s\n' "$1" | sed -n 's/^Total bytes received: *//p' | tr -d ',.'; }

# rsync_delta GROUP DST NEW MUT: the resync baseline. The test image copied
# to DST/old.img (on the daemon's side, $RSYNC_URL), then NEW (the image
# with a change, MUT the output of the diskbench mutate that made it)
# brought over it with `rsync -I --inplace --no-whole-file -B4096`: time,
# bytes sent and received, the bytes that differ; the copy is checked with cmp
rsync_delta() {
    local g=$1 dst=$2 new=$3 mut=$4 cmd t0 secs out changed
    cmd="rsync -I --inplace --no-whole-file -B4096 --stats NEW $RSYNC_URL/old.img"
    changed=$(kv bytes "$mut")
    if ! cp "$IMG" "$dst/old.img" || [ -z "$changed" ]; then
        na rsync_delta_seconds "$g" "rsync -B4096 of a 1 % block change" s "" \
            "failed: no old copy or no change (${mut:-diskbench mutate printed nothing})"
        rm -f "$dst/old.img"
        return 0
    fi
    sync
    t0=$(now)
    if out=$(timeout 600 rsync -I --inplace --no-whole-file -B4096 --stats "$new" \
        "$RSYNC_URL/old.img" 2>"$LOG/rsync-delta.err"); then
        secs=$(since "$t0")
        if cmp -s "$new" "$dst/old.img"; then
            record rsync_delta_seconds "$g" "rsync -B4096 of a 1 % block change" "$secs" s "" \
                "$cmd" ""
            record rsync_delta_changed_bytes "$g" "  bytes that differ" "$changed" bytes "" \
                "diskbench mutate NEW 0.01 1" "$(kv blocks "$mut") blocks of 4 KiB"
            record rsync_delta_sent_bytes "$g" "  bytes rsync sent" "$(rsync_sent "$out")" \
                bytes "" "$cmd" "Total bytes sent (--stats)"
            record rsync_delta_received_bytes "$g" "  bytes rsync received (block checksums)" \
                "$(rsync_recv "$out")" bytes "" "$cmd" "Total bytes received (--stats)"
            ratio rsync_delta_wire_ratio "$g" "  rsync bytes sent / bytes that differ" "" \
                rsync_delta_sent_bytes rsync_delta_changed_bytes
        else
            na rsync_delta_seconds "$g" "rsync -B4096 of a 1 % block change" s "" \
                "failed: the copy differs"
        fi
    else
        na rsync_delta_seconds "$g" "rsync -B4096 of a 1 % block change" s "" \
            "failed: $(head -n 1 "$LOG/rsync-delta.err")"
    fi
    rm -f "$dst/old.img"
}

step_rsync() {
    local g="rsync over loopback" dst=$TMP/rsync-dst t0 secs out cmd mut
    group "rsync baselines (daemon on 127.0.0.1)"
    mkdir -p "$dst"
    if ! rsyncd_start "$dst"; then
        na rsync_full_seconds "$g" "rsync of the test image" s "" \
            "failed: rsync daemon did not start ($(tail -n 1 "$LOG/rsyncd.out" 2>/dev/null))"
        return 0
    fi
    warm "$IMG"

    cmd="rsync --stats IMG $RSYNC_URL/full.img"
    t0=$(now)
    if out=$(timeout 600 rsync --stats "$IMG" "$RSYNC_URL/full.img" 2>"$LOG/rsync-full.err"); then
        secs=$(since "$t0")
        if cmp -s "$IMG" "$dst/full.img"; then
            record rsync_full_seconds "$g" "rsync of the test image" "$secs" s "" "$cmd" ""
            record rsync_full_mbps "$g" "  rsync throughput" "$(calc "$IMG_BYTES / 1e6 / $secs" 1)" \
                MB/s "" "$cmd" ""
        else
            na rsync_full_seconds "$g" "rsync of the test image" s "" "failed: the copy differs"
        fi
    else
        na rsync_full_seconds "$g" "rsync of the test image" s "" \
            "failed: $(head -n 1 "$LOG/rsync-full.err")"
    fi
    rm -f "$dst/full.img"

    cmd="rsync --fsync --stats IMG $RSYNC_URL/full.img"
    t0=$(now)
    if out=$(timeout 600 rsync --fsync --stats "$IMG" "$RSYNC_URL/full.img" \
        2>"$LOG/rsync-fsync.err"); then
        secs=$(since "$t0")
        record rsync_fsync_full_seconds "$g" "rsync --fsync of the test image" "$secs" s "" "$cmd" \
            ""
    else
        na rsync_fsync_full_seconds "$g" "rsync --fsync of the test image" s "" \
            "failed: $(head -n 1 "$LOG/rsync-fsync.err")"
    fi
    rm -f "$dst/full.img"

    # 1 %: the old copy on the daemon's side, the changed copy here
    if cp "$IMG" "$TMP/new.img" &&
        mut=$(timeout 600 "$BIN/diskbench" mutate "$TMP/new.img" 0.01 1 2>"$LOG/mutate.err"); then
        rsync_delta "$g" "$dst" "$TMP/new.img" "$mut"
    else
        na rsync_delta_seconds "$g" "rsync -B4096 of a 1 % block change" s "" \
            "failed: $(head -n 1 "$LOG/mutate.err")"
    fi
    rm -f "$dst/old.img" "$TMP/new.img"
    stop "$RSYNCD_PID"
    rm -rf "$dst"
}
