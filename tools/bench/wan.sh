# SPDX-License-Identifier: GPL-2.0-or-later
#
# wan.sh: the rows that need two sites (sourced by tools/bench/run). Between
# sites the link is the bottleneck, which loopback cannot show, so these
# steps put the two appliances in two network namespaces the run creates,
# joined by one veth pair shaped to 1 Gbit/s with tbf on both ends (netem is
# not needed: the figures are about rate, not delay), with private addresses
# that exist only inside those namespaces (10.231.0.1/30 primary side,
# 10.231.0.2/30 secondary side); the host's interfaces and routes are never
# touched, and the namespaces (with the veth in them) are removed when the
# step ends and, through net_down in the driver's trap, on every exit path.
# The appliances run as in ours.sh (`noded -c primary.ini` with agent + ps,
# `noded -c secondary.ini` with mt, from `noded --demo DIR --init-only`),
# with only the link's address moved onto the veth; the NBD export and both
# management endpoints stay on 127.0.0.1 inside their namespace, so nbdcopy,
# nodectl and lagbench run inside the primary's namespace. Bytes "on the
# wire" are the veth's receive counter on the secondary's side: what reached
# the secondary (TLS records, TCP/IP headers and the protocol's own
# messages included).
#   step_wan: initial sync of the test image through the export until
#     drained over the link, against rsync and rsync -z of the same image
#     over the same link (an rsync daemon in the secondary's namespace), and
#     against link rate x lz4 ratio of the image (goal 0.8x; the lz4 ratio of
#     the stages step, or measured here when that step did not run);
#   step_resync: after the image is replicated, the secondary appliance is
#     stopped (an outage), 1 % of the image's 4 KiB blocks are changed at
#     random through the export (`lagbench patch`: the same change `diskbench
#     mutate NEW 0.01 1` makes to a copy for rsync), the secondary restarted,
#     and the time from the restart until the pair is drained and the bytes
#     that reached the secondary are measured, against the bytes that differ
#     and against `rsync -I --inplace --no-whole-file -B4096` of the same
#     change on loopback (the rsync step's row, or run here).
# Both need root (ip netns); without it, or without ip/tc/tbf, their rows
# say n/a and the run goes on.

WAN_ADDR_P=10.231.0.1
WAN_ADDR_S=10.231.0.2
WAN_RATE=1gbit
WAN_LINK_MBPS=125 # 1 Gbit/s in MB/s (10^6 bytes)
WAN_BURST=256kb   # measured: 119 MB/s of TCP goodput through it, 1 MiB does no better
WAN_QLAT=50ms
NS_P=
NS_S=

# net_up: the two namespaces, the veth between them, tbf on both ends; sets
# NS_P, NS_S, VETH_P, VETH_S. @return 1 with NET_WHY set.
net_up() {
    local t
    NET_WHY=
    if [ "$(id -u)" != 0 ]; then
        NET_WHY="n/a (needs root for ip netns)"
        return 1
    fi
    for t in ip tc; do
        command -v "$t" >/dev/null 2>&1 || {
            NET_WHY="n/a (no $t: install iproute2)"
            return 1
        }
    done
    # names of this run only (interface names: at most 15 characters)
    NS_P=ssbench-$$-p
    NS_S=ssbench-$$-s
    VETH_P=ssb$$p
    VETH_S=ssb$$s
    if ! {
        timeout 10 ip netns add "$NS_P" && timeout 10 ip netns add "$NS_S" &&
            timeout 10 ip -n "$NS_P" link add "$VETH_P" type veth peer name "$VETH_S" \
                netns "$NS_S" &&
            timeout 10 ip -n "$NS_P" addr add "$WAN_ADDR_P/30" dev "$VETH_P" &&
            timeout 10 ip -n "$NS_S" addr add "$WAN_ADDR_S/30" dev "$VETH_S" &&
            timeout 10 ip -n "$NS_P" link set lo up && timeout 10 ip -n "$NS_S" link set lo up &&
            timeout 10 ip -n "$NS_P" link set "$VETH_P" up &&
            timeout 10 ip -n "$NS_S" link set "$VETH_S" up &&
            timeout 10 tc -n "$NS_P" qdisc add dev "$VETH_P" root tbf rate "$WAN_RATE" \
                burst "$WAN_BURST" latency "$WAN_QLAT" &&
            timeout 10 tc -n "$NS_S" qdisc add dev "$VETH_S" root tbf rate "$WAN_RATE" \
                burst "$WAN_BURST" latency "$WAN_QLAT"
    } >"$LOG/netns.log" 2>&1; then
        NET_WHY="failed: setting up the namespaces: $(tail -n 1 "$LOG/netns.log")"
        net_down
        return 1
    fi
    # nodectl inside the primary's namespace, for settle and replica_check
    printf '#!/bin/sh\nexec ip netns exec %s %s "$@"\n' "$NS_P" "$BUILD/nodectl" >"$TMP/nodectl-ns"
    chmod +x "$TMP/nodectl-ns"
    return 0
}

# net_down: remove the namespaces of net_up (the veth goes with them); the
# processes started in them must be stopped first (stop_all, demo_stop)
net_down() {
    local ns
    for ns in $NS_P $NS_S; do
        timeout 10 ip netns del "$ns" 2>/dev/null
    done
    NS_P=
    NS_S=
    return 0
}

# wire_rx: bytes received so far by the secondary's end of the veth
wire_rx() { timeout 10 ip netns exec "$NS_S" cat "/sys/class/net/$VETH_S/statistics/rx_bytes" 2>/dev/null; }

# ps_wire_sent: the process server's wire_sent (bytes it sent the master
# target for $PAIR_0, after compression), from nodectl --json status
ps_wire_sent() {
    timeout 20 "$TMP/nodectl-ns" --json status 2>/dev/null | tr -d ' \n' |
        sed -n 's/.*"wire_sent":\([0-9]*\).*/\1/p' | head -n 1
}

# wan_watch_up LOG STAMP: write the clock to STAMP once LOG (the restarted
# secondary's) says the primary's link is up; polls every 5 ms, at most 30 s
wan_watch_up() {
    local i=0
    while [ $i -lt 6000 ]; do
        if grep -q 'up: peer primary' "$1" 2>/dev/null; then
            now >"$2"
            return 0
        fi
        sleep 0.005
        i=$((i + 1))
    done
    return 1
}

# wan_secondary_start: the master target's appliance in the secondary's
# namespace; sets WAN_SEC_PID and adds it to DEMO_PIDS
wan_secondary_start() {
    bg "$LOG/noded-$WAN_NAME-secondary.log" ip netns exec "$NS_S" "$NODED" -c "$SECONDARY_CONF"
    WAN_SEC_PID=$BG_PID
    DEMO_PIDS="$DEMO_PIDS $WAN_SEC_PID"
}

# wan_demo_start DIR: the demo folder with the link moved onto the veth, the
# two appliances started in their namespaces, the export serving. Sources
# DIR/demo.env; sets DEMO_PIDS (for demo_stop). @return 1 with OURS_WHY set.
wan_demo_start() {
    local dir=$1 out i=0
    WAN_NAME=$(basename "$dir")
    DEMO_PIDS=
    rm -f "$TMP/stuck"
    if [ ! -x "$NODED" ]; then
        OURS_WHY="$NOT_BUILT: no $NODED)"
        return 1
    fi
    if ! out=$(timeout 60 "$NODED" --demo "$dir" --disk-size "${IMG_MIB}M" --init-only 2>&1) ||
        [ ! -f "$dir/demo.env" ]; then
        OURS_WHY="failed: noded --demo --init-only: $(printf '%s\n' "$out" | head -n 1)"
        return 1
    fi
    # shellcheck disable=SC1091
    . "$dir/demo.env"
    export NODECTL_CONF
    # the link listens on the secondary's veth address and the primary dials it
    sed -i "s/^link = 127\.0\.0\.1:/link = $WAN_ADDR_S:/" "$SECONDARY_CONF" &&
        sed -i "s/^address = 127\.0\.0\.1:/address = $WAN_ADDR_S:/" "$PRIMARY_CONF"
    if ! grep -q "^link = $WAN_ADDR_S:" "$SECONDARY_CONF" ||
        ! grep -q "^address = $WAN_ADDR_S:" "$PRIMARY_CONF"; then
        OURS_WHY="failed: could not move the link of $dir onto the veth (config format changed?)"
        return 1
    fi
    wan_secondary_start
    bg "$LOG/noded-$WAN_NAME-primary.log" ip netns exec "$NS_P" "$NODED" -c "$PRIMARY_CONF"
    DEMO_PIDS="$BG_PID $DEMO_PIDS"
    while [ $i -lt 150 ]; do
        timeout 5 ip netns exec "$NS_P" nbdinfo --size "$NBD_URI_0" >/dev/null 2>&1 && return 0
        sleep 0.2
        i=$((i + 1))
    done
    OURS_WHY="failed: the export $NBD_URI_0 did not serve in 30 s: $(tail -n 1 "$LOG/noded-$WAN_NAME-primary.log")"
    demo_stop
    return 1
}

# wan_lz4_ratio: the lz4 ratio of the whole image (the stages step's, or measured now)
wan_lz4_ratio() {
    local out
    [ -n "$(value lz4_ratio)" ] && return 0
    if out=$(timeout 600 "$BIN/diskbench" lz4 "$IMG" 2>"$LOG/lz4.err"); then
        record lz4_ratio "physical stages" "  lz4 ratio, whole image" "$(kv ratio "$out")" x "" \
            "diskbench lz4 IMG (LZ4_compress_default on 1 MiB blocks, one core)" \
            "measured by the wan step"
    fi
}

# wan_rsync MODE KEY LABEL: rsync (MODE plain or z) of the test image to the
# daemon in the secondary's namespace: KEY_seconds, KEY_mbps, KEY_sent_bytes
wan_rsync() {
    local mode=$1 key=$2 label=$3 g="over a 1 Gbit/s link" t0 secs out zopt=
    [ "$mode" = z ] && zopt=-z
    warm "$IMG"
    t0=$(now)
    if out=$(timeout 900 ip netns exec "$NS_P" rsync $zopt --stats "$IMG" \
        "$WAN_RSYNC_URL/full.img" 2>"$LOG/wan-rsync-$mode.err"); then
        secs=$(since "$t0")
        if cmp -s "$IMG" "$TMP/wan-dst/full.img"; then
            record "${key}_seconds" "$g" "$label" "$secs" s "" \
                "ip netns exec NS_P rsync $zopt --stats IMG rsync://$WAN_ADDR_S/bench/full.img" ""
            record "${key}_mbps" "$g" "  throughput" "$(calc "$IMG_BYTES / 1e6 / $secs" 1)" MB/s \
                "" "" ""
            record "${key}_sent_bytes" "$g" "  bytes rsync sent" "$(rsync_sent "$out")" bytes "" \
                "" "Total bytes sent (--stats)"
        else
            na "${key}_seconds" "$g" "$label" s "" "failed: the copy differs"
        fi
    else
        na "${key}_seconds" "$g" "$label" s "" "failed: $(head -n 1 "$LOG/wan-rsync-$mode.err")"
    fi
    rm -f "$TMP/wan-dst/full.img"
}

# wan_rsyncd_start: an rsync daemon on the secondary's veth address, module
# bench = $TMP/wan-dst; sets WAN_RSYNC_URL. @return 1 if it does not answer.
wan_rsyncd_start() {
    local conf=$TMP/wan-rsyncd.conf i=0
    mkdir -p "$TMP/wan-dst"
    printf 'use chroot = no\nmax connections = 2\nlog file = %s\npid file = %s\n[bench]\npath = %s\nread only = false\nuid = 0\ngid = 0\n' \
        "$LOG/wan-rsyncd.log" "$TMP/wan-rsyncd.pid" "$TMP/wan-dst" >"$conf"
    bg "$LOG/wan-rsyncd.out" ip netns exec "$NS_S" rsync --daemon --no-detach --config="$conf" \
        --address="$WAN_ADDR_S" --port=873
    WAN_RSYNCD_PID=$BG_PID
    WAN_RSYNC_URL=rsync://$WAN_ADDR_S:873/bench
    while [ $i -lt 50 ]; do
        timeout 5 ip netns exec "$NS_P" rsync "rsync://$WAN_ADDR_S:873/" >/dev/null 2>&1 && return 0
        kill -0 "$WAN_RSYNCD_PID" 2>/dev/null || break
        sleep 0.1
        i=$((i + 1))
    done
    stop "$WAN_RSYNCD_PID"
    return 1
}

# wan_na REASON: every row of step_wan says REASON
wan_na() {
    local g="over a 1 Gbit/s link"
    na wan_ours_initial_sync_seconds "$g" "secondsite: initial sync of the test image until drained" \
        s "" "$1"
    na wan_ours_vs_link_lz4 "$g" "  ratio vs link rate x lz4 ratio" x ">= 0.8" "$1"
    na wan_ours_vs_rsync "$g" "  ratio vs rsync over the link (speed)" x ">= 2.5" "$1"
    na wan_ours_vs_rsync_z "$g" "  ratio vs rsync -z over the link (speed)" x ">= 2.5" "$1"
    na wan_replica_identical "$g" "  replica identical to the source" bool "1" "$1"
}

step_wan() {
    local g="over a 1 Gbit/s link" t0 tcopy tall rx0 rx1 ws0 ws1 CTL=$TMP/nodectl-ns
    group "secondsite and rsync over a 1 Gbit/s link (two network namespaces, veth + tbf $WAN_RATE on both ends)"
    if ! net_up; then
        wan_na "$NET_WHY"
        return 0
    fi
    wan_lz4_ratio
    record wan_link_mbps "$g" "link rate (tbf $WAN_RATE, both directions)" "$WAN_LINK_MBPS" MB/s "" \
        "tc qdisc add dev VETH root tbf rate $WAN_RATE burst $WAN_BURST latency $WAN_QLAT" \
        "TCP goodput through it is about 95 % of this"
    if [ -n "$(value lz4_ratio)" ]; then
        record wan_link_x_lz4_mbps "$g" "  link rate x lz4 ratio of the image" \
            "$(calc "$WAN_LINK_MBPS * $(value lz4_ratio)" 1)" MB/s "" "wan_link_mbps x lz4_ratio" ""
    else
        na wan_link_x_lz4_mbps "$g" "  link rate x lz4 ratio of the image" MB/s "" \
            "n/a (no lz4 ratio: $(head -n 1 "$LOG/lz4.err" 2>/dev/null))"
    fi

    if wan_rsyncd_start; then
        wan_rsync plain wan_rsync "rsync of the test image"
        wan_rsync z wan_rsync_z "rsync -z of the test image"
        stop "$WAN_RSYNCD_PID"
    else
        na wan_rsync_seconds "$g" "rsync of the test image" s "" \
            "failed: the rsync daemon in $NS_S did not answer: $(tail -n 1 "$LOG/wan-rsyncd.out" 2>/dev/null)"
    fi
    rm -rf "$TMP/wan-dst"

    OURS_WHY=
    if ! wan_demo_start "$TMP/wan"; then
        wan_na "$OURS_WHY"
        rm -rf "$TMP/wan"
        net_down
        return 0
    fi
    settle "wan: fresh pair" >/dev/null ||
        say "  (the fresh pair was not protected and drained: $(tail -n 1 "$LOG/settle.log"))"
    warm "$IMG"
    rx0=$(wire_rx)
    ws0=$(ps_wire_sent)
    t0=$(now)
    if ! timeout "$DRAIN_S" ip netns exec "$NS_P" nbdcopy --flush "$IMG" "$NBD_URI_0" \
        2>"$LOG/nbdcopy-wan.err"; then
        wan_na "failed: nbdcopy into $NBD_URI_0: $(head -n 1 "$LOG/nbdcopy-wan.err")"
    else
        tcopy=$(since "$t0")
        if timeout $((DRAIN_S + 20)) "$CTL" wait "$PAIR_0" --drained --timeout "$DRAIN_S" \
            >"$LOG/wait-drained-wan.log" 2>&1; then
            tall=$(since "$t0")
            rx1=$(wire_rx)
            ws1=$(ps_wire_sent)
            record wan_ours_initial_sync_seconds "$g" \
                "secondsite: initial sync of the test image until drained" "$tall" s "" \
                "ip netns exec NS_P nbdcopy --flush IMG \$NBD_URI_0 && nodectl wait \$PAIR_0 --drained" \
                "nbdcopy alone ${tcopy} s"
            record wan_ours_initial_sync_mbps "$g" "  throughput" \
                "$(calc "$IMG_BYTES / 1e6 / $tall" 1)" MB/s "" "" ""
            isnum "$rx0" && isnum "$rx1" &&
                record wan_ours_wire_bytes "$g" "  bytes that reached the secondary" \
                    "$((rx1 - rx0))" bytes "" "rx_bytes of the secondary's veth, before and after" \
                    "image / wire: $(calc "$IMG_BYTES / ($rx1 - $rx0 + 1)" 2)x"
            isnum "$ws0" && isnum "$ws1" &&
                record wan_ours_ps_wire_bytes "$g" "  of them, batches the process server sent" \
                    "$((ws1 - ws0))" bytes "" "nodectl --json status: ps wire_sent, before and after" ""
        else
            : >"$TMP/stuck"
            na wan_ours_initial_sync_seconds "$g" \
                "secondsite: initial sync of the test image until drained" s "" \
                "failed: nodectl wait --drained: $(tail -n 1 "$LOG/wait-drained-wan.log")"
        fi
        ratio wan_ours_vs_link_lz4 "$g" "  ratio vs link rate x lz4 ratio" ">= 0.8" \
            wan_ours_initial_sync_mbps wan_link_x_lz4_mbps
        ratio wan_ours_vs_rsync "$g" "  ratio vs rsync over the link (speed)" ">= 2.5" \
            wan_rsync_seconds wan_ours_initial_sync_seconds
        ratio wan_ours_vs_rsync_z "$g" "  ratio vs rsync -z over the link (speed)" ">= 2.5" \
            wan_rsync_z_seconds wan_ours_initial_sync_seconds
    fi
    replica_check wan_replica_identical "  replica identical to the source after the sync" "$g"
    demo_stop
    rm -rf "$TMP/wan"
    net_down
}

# resync_na REASON: every row of step_resync says REASON
resync_na() {
    local g="resync after an outage"
    na resync_ours_seconds "$g" "secondsite: resync of a 1 % block change until drained" s "" "$1"
    na resync_ours_wire_vs_changed "$g" "  bytes on the wire / bytes that differ" x "<= 1.05" "$1"
    na resync_ours_vs_rsync "$g" "  ratio vs rsync -B4096 (speed)" x ">= 3" "$1"
    na resync_replica_identical "$g" "  replica identical to the source" bool "1" "$1"
}

step_resync() {
    local g="resync after an outage" mut out t0 t1 rx0 rx1 ws0 ws1 hp exp watch new=$TMP/resync-new.img
    local CTL=$TMP/nodectl-ns
    group "secondsite: resync after an outage, 1 % of the 4 KiB blocks changed (appliances in two namespaces, 1 Gbit/s link)"
    # the change: 1 % of the blocks of a copy (the same seed as the rsync step)
    if ! { cp "$IMG" "$new" &&
        mut=$(timeout 600 "$BIN/diskbench" mutate "$new" 0.01 1 2>"$LOG/mutate.err"); }; then
        resync_na "failed: diskbench mutate: $(head -n 1 "$LOG/mutate.err")"
        rm -f "$new"
        return 0
    fi
    record resync_changed_bytes "$g" "bytes that differ" "$(kv bytes "$mut")" bytes "" \
        "diskbench mutate NEW 0.01 1" "$(kv blocks "$mut") of $(kv of_blocks "$mut") blocks of 4 KiB"
    # the baseline: the rsync step's row, or the same run here
    if [ -z "$(value rsync_delta_seconds)" ]; then
        mkdir -p "$TMP/rsync-dst"
        if rsyncd_start "$TMP/rsync-dst"; then
            rsync_delta "rsync over loopback" "$TMP/rsync-dst" "$new" "$mut"
            stop "$RSYNCD_PID"
        else
            na rsync_delta_seconds "rsync over loopback" "rsync -B4096 of a 1 % block change" s "" \
                "failed: rsync daemon did not start ($(tail -n 1 "$LOG/rsyncd.out" 2>/dev/null))"
        fi
        rm -rf "$TMP/rsync-dst"
    fi

    if ! net_up; then
        resync_na "$NET_WHY"
        rm -f "$new"
        return 0
    fi
    OURS_WHY=
    if ! wan_demo_start "$TMP/resync"; then
        resync_na "$OURS_WHY"
        rm -rf "$TMP/resync" "$new"
        net_down
        return 0
    fi
    hp=${NBD_URI_0#nbd://}
    exp=${hp#*/}
    hp=${hp%%/*}
    # the replicated image the outage starts from
    if ! settle "resync: fresh pair" >/dev/null ||
        ! timeout "$DRAIN_S" ip netns exec "$NS_P" nbdcopy --flush "$IMG" "$NBD_URI_0" \
            2>"$LOG/nbdcopy-resync.err" ||
        ! settle "resync: the image replicated" >/dev/null; then
        resync_na "failed: the image was not replicated before the outage: $(tail -n 1 "$LOG/settle.log") $(head -n 1 "$LOG/nbdcopy-resync.err" 2>/dev/null)"
        demo_stop
        rm -rf "$TMP/resync" "$new"
        net_down
        return 0
    fi
    # the outage: the secondary appliance stops; the change goes through the export
    stop "$WAN_SEC_PID"
    DEMO_PIDS=$(printf '%s' "$DEMO_PIDS" | tr ' ' '\n' | grep -vx "$WAN_SEC_PID" | tr '\n' ' ')
    rx0=$(wire_rx)
    ws0=$(ps_wire_sent)
    if ! out=$(timeout 900 ip netns exec "$NS_P" "$BIN/lagbench" patch --nbd "$hp" --export "$exp" \
        --old "$IMG" --new "$new" 2>"$LOG/patch.err"); then
        resync_na "failed: lagbench patch: $(head -n 1 "$LOG/patch.err")"
        demo_stop
        rm -rf "$TMP/resync" "$new"
        net_down
        return 0
    fi
    record resync_patch_seconds "$g" "  the change written through the export (secondary down)" \
        "$(kv seconds "$out")" s "" "lagbench patch --old IMG --new NEW" \
        "$(kv blocks "$out") writes of 4 KiB"
    # the end of the outage: time from the restart until drained
    rm -f "$TMP/linkup"
    t0=$(now)
    wan_secondary_start
    bg /dev/null wan_watch_up "$LOG/noded-$WAN_NAME-secondary.log" "$TMP/linkup"
    watch=$BG_PID
    if settle "resync: after the outage" >/dev/null; then
        t1=$(now)
        rx1=$(wire_rx)
        ws1=$(ps_wire_sent)
        record resync_ours_seconds "$g" "secondsite: resync of a 1 % block change until drained" \
            "$(calc "$t1 - $t0")" s "" \
            "restart the secondary appliance; nodectl wait \$PAIR_0 --drained" \
            "from the restart (noded start and the primary's reconnect backoff included)"
        stop "$watch"
        if [ -s "$TMP/linkup" ]; then
            record resync_ours_link_up_seconds "$g" "  of it, from the link up to drained" \
                "$(calc "$t1 - $(cat "$TMP/linkup")")" s "" \
                "the restarted secondary's log says the link is up (polled every 5 ms)" \
                "the rest is noded's start and the primary's reconnect backoff ([link] backoff_min/max)"
        fi
        isnum "$rx0" && isnum "$rx1" &&
            record resync_ours_wire_bytes "$g" "  bytes that reached the secondary" \
                "$((rx1 - rx0))" bytes "" "rx_bytes of the secondary's veth, from the stop to drained" \
                "TLS, TCP/IP headers and the reconnect included"
        isnum "$ws0" && isnum "$ws1" &&
            record resync_ours_ps_wire_bytes "$g" "  of them, batches the process server sent" \
                "$((ws1 - ws0))" bytes "" "nodectl --json status: ps wire_sent, before and after" ""
    else
        stop "$watch"
        na resync_ours_seconds "$g" "secondsite: resync of a 1 % block change until drained" s "" \
            "failed: not drained after the restart: $(tail -n 1 "$LOG/settle.log")"
    fi
    ratio resync_ours_wire_vs_changed "$g" "  bytes on the wire / bytes that differ" "<= 1.05" \
        resync_ours_wire_bytes resync_changed_bytes
    ratio resync_ours_vs_rsync "$g" "  ratio vs rsync -B4096 on loopback (speed)" ">= 3" \
        rsync_delta_seconds resync_ours_seconds
    # the export took the change: the agent's disk is the changed copy
    if [ -n "${SOURCE_0:-}" ] && ! cmp -s "$SOURCE_0" "$new"; then
        record resync_replica_identical "$g" "  replica identical to the source" 0 bool "1" \
            "cmp SOURCE_0 NEW" "the protected disk is not the changed copy: the change did not land"
        demo_stop
    else
        replica_check resync_replica_identical "  replica identical to the source after the resync" "$g"
    fi
    demo_stop
    rm -rf "$TMP/resync" "$new"
    net_down
}
