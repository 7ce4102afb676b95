# SPDX-License-Identifier: GPL-2.0-or-later
#
# stages.sh: the physical stages (sourced by tools/bench/run): what this
# machine can do at each step of the replication path on its own, measured
# on the test image, so that the product's figures can be judged against
# the slowest of them (DESIGN.md section 7): an fsync'd sequential disk write
# (1 MiB pwrite + fdatasync, as a journal with group commit), lz4 on the same
# data, and one loopback connection in mutual TLS 1.3 (the project's TLS
# context) and in plain TCP.

step_stages() {
    local out cmd site g="physical stages"
    group "Physical stages (on the test image; MB = 10^6 bytes)"
    warm "$IMG"

    cmd="diskbench fsync IMG SCRATCH (1 MiB pwrite + fdatasync each)"
    if out=$(timeout 600 "$BIN/diskbench" fsync "$IMG" "$TMP/fsync.img" 2>"$LOG/fsync.err"); then
        record disk_fsync_write_mbps "$g" "fsync'd sequential disk write" "$(kv mbps "$out")" \
            MB/s "" "$cmd" ""
        record disk_fdatasync_p50_ms "$g" "  fdatasync latency p50 (per 1 MiB)" \
            "$(kv sync_p50_ms "$out")" ms "" "$cmd" ""
        record disk_fdatasync_p99_ms "$g" "  fdatasync latency p99 (per 1 MiB)" \
            "$(kv sync_p99_ms "$out")" ms "" "$cmd" ""
    else
        na disk_fsync_write_mbps "$g" "fsync'd sequential disk write" MB/s "" \
            "failed: $(head -n 1 "$LOG/fsync.err")"
    fi
    rm -f "$TMP/fsync.img"

    cmd="diskbench lz4 IMG (LZ4_compress_default on 1 MiB blocks, one core)"
    if out=$(timeout 600 "$BIN/diskbench" lz4 "$IMG" 2>"$LOG/lz4.err"); then
        record lz4_compress_mbps "$g" "lz4 compression, one core" "$(kv mbps "$out")" MB/s "" \
            "$cmd" ""
        record lz4_ratio "$g" "  lz4 ratio, whole image" "$(kv ratio "$out")" x "" "$cmd" ""
        record lz4_ratio_nonzero "$g" "  lz4 ratio, non-zero blocks" "$(kv nonzero_ratio "$out")" \
            x "" "$cmd" ""
        record lz4_zero_share "$g" "  share of all-zero 1 MiB blocks" "$(kv zero_share "$out")" \
            fraction "" "$cmd" ""
        record lz4_incompressible_share "$g" "  share of incompressible blocks (saves < 1/8)" \
            "$(kv incompressible_share "$out")" fraction "" "$cmd" "of the non-zero blocks"
    else
        na lz4_compress_mbps "$g" "lz4 compression, one core" MB/s "" \
            "failed: $(head -n 1 "$LOG/lz4.err")"
    fi

    site=$TMP/site
    cmd="linkbench tls $LINK_BYTES (mutual TLS 1.3, rt_tls_ctx_new, one connection)"
    if [ ! -x "$CTL" ]; then
        na tls_link_mbps "$g" "TLS 1.3 link, loopback" MB/s "" "n/a ($CTL not built)"
    elif ! { "$CTL" init "$site" && "$CTL" cert issue --ca "$site" bench-server &&
        "$CTL" cert issue --ca "$site" bench-client; } >"$LOG/certs.log" 2>&1; then
        na tls_link_mbps "$g" "TLS 1.3 link, loopback" MB/s "" \
            "failed: nodectl init/cert issue: $(tail -n 1 "$LOG/certs.log")"
    elif out=$(timeout 600 "$BIN/linkbench" tls "$LINK_BYTES" "$site/ca.crt" \
        "$site/bench-server.crt" "$site/bench-server.key" "$site/bench-client.crt" \
        "$site/bench-client.key" 2>"$LOG/tls.err"); then
        record tls_link_mbps "$g" "TLS 1.3 link, loopback" "$(kv mbps "$out")" MB/s "" "$cmd" ""
        record tls_handshake_ms "$g" "  TLS handshake" "$(kv handshake_ms "$out")" ms "" "$cmd" ""
    else
        na tls_link_mbps "$g" "TLS 1.3 link, loopback" MB/s "" \
            "failed: $(head -n 1 "$LOG/tls.err")"
    fi
    rm -rf "$site"

    cmd="linkbench tcp $LINK_BYTES (one connection)"
    if out=$(timeout 600 "$BIN/linkbench" tcp "$LINK_BYTES" 2>"$LOG/tcp.err"); then
        record tcp_link_mbps "$g" "TCP link, loopback" "$(kv mbps "$out")" MB/s "" "$cmd" ""
    else
        na tcp_link_mbps "$g" "TCP link, loopback" MB/s "" "failed: $(head -n 1 "$LOG/tcp.err")"
    fi
    ratio tls_vs_tcp "$g" "  TLS link / TCP link" "" tls_link_mbps tcp_link_mbps

    # the slowest of the stages a replicated write must pass
    local k v best="" bestk=""
    for k in disk_fsync_write_mbps lz4_compress_mbps tls_link_mbps; do
        v=$(value "$k")
        [ -n "$v" ] || continue
        if [ -z "$best" ] || awk -v a="$v" -v b="$best" 'BEGIN { exit !(a < b) }'; then
            best=$v
            bestk=$k
        fi
    done
    if [ -n "$best" ]; then
        record slowest_stage_mbps "$g" "slowest stage (disk write, lz4, TLS)" "$best" MB/s "" \
            "min of the three above" "$bestk"
    else
        na slowest_stage_mbps "$g" "slowest stage (disk write, lz4, TLS)" MB/s "" \
            "n/a (no stage measured)"
    fi
}
