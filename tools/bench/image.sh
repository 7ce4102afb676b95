# SPDX-License-Identifier: GPL-2.0-or-later
#
# image.sh: the benchmark's test data (sourced by tools/bench/run): an ext4
# image of SIZE MiB filled to about 70 % with real files copied from this
# machine's /usr/share and /usr/lib (text, documentation, locale data, shared
# libraries: a realistic mix for compression and for rsync), built with
# mkfs.ext4 -d, so every stage of the table works on the same bytes and
# nothing is downloaded. It is built once per size and kept under
# $DATA/ext4-SIZEM.img; a missing or half-built image is rebuilt (the
# .ok stamp is written last).

# image_pick MIB PERCENT: the list of files (relative to /) to copy: PERCENT %
# of 40 % of the image from /usr/share and of 30 % from /usr/lib, counted in
# whole 4 KiB blocks, files under 16 MiB, in a stable order; names with odd
# characters are left out
image_pick() {
    local share=$(($1 * 1048576 * $2 * 4 / 1000)) lib=$(($1 * 1048576 * $2 * 3 / 1000))
    local tab
    tab=$(printf '\t')
    find /usr/share -xdev -type f -readable -size -16M -printf '%s\t%P\n' 2>/dev/null |
        LC_ALL=C sort -t "$tab" -k 2 | image_take "$share" usr/share/
    find /usr/lib -xdev -type f -readable -size -16M -printf '%s\t%P\n' 2>/dev/null |
        LC_ALL=C sort -t "$tab" -k 2 | image_take "$lib" usr/lib/
}

# image_take BUDGET PREFIX: "SIZE<TAB>PATH" lines in, PREFIX/PATH lines out,
# while the blocks taken stay within BUDGET bytes
image_take() {
    awk -F'\t' -v b="$1" -v p="$2" '$2 ~ /^[A-Za-z0-9._+@=,\/-]+$/ {
        s = int(($1 + 4095) / 4096) * 4096
        if (t + s <= b) { t += s; print p $2 }
    }'
}

# image_build SIZE_MIB: sets IMG to the image path, building it if needed
image_build() {
    local mib=$1 stage=$DATA/stage.tmp list=$DATA/files.tmp pct nfiles ninodes
    IMG=$DATA/ext4-${mib}M.img
    if [ -f "$IMG" ] && [ -f "$IMG.ok" ]; then
        return 0
    fi
    say "building the test image $IMG (once; files from /usr/share and /usr/lib)"
    # file systems of small files lose room to metadata: step down if it is full
    for pct in 100 85 70; do
        rm -rf "$stage" "$list" "$IMG" "$IMG.ok"
        mkdir -p "$stage" || return 1
        image_pick "$mib" "$pct" >"$list"
        nfiles=$(wc -l <"$list")
        if [ "$nfiles" -lt 10 ]; then
            say "image: found only $nfiles files under /usr" >&2
            break
        fi
        if ! timeout 600 tar -C / -cf - --no-recursion --verbatim-files-from -T "$list" \
            2>/dev/null | timeout 600 tar -C "$stage" -xf -; then
            say "image: copying the files failed" >&2
            break
        fi
        # room for every file and folder, whatever the default inode ratio gives
        ninodes=$(($(find "$stage" | wc -l) + 4096))
        if timeout 600 mkfs.ext4 -q -F -b 4096 -N "$ninodes" -L benchdata -d "$stage" \
            "$IMG" "${mib}M" >"$DATA/mkfs.log" 2>&1; then
            rm -rf "$stage" "$list"
            printf '%s\n' "$nfiles" >"$IMG.ok"
            return 0
        fi
        say "image: mkfs.ext4 -d at ${pct} % of the fill: $(tail -n 1 "$DATA/mkfs.log")"
    done
    rm -rf "$stage" "$list" "$IMG"
    return 1
}

# image_figures: record the image's size, fill and file count
image_figures() {
    local count free used
    count=$(dumpe2fs -h "$IMG" 2>/dev/null | sed -n 's/^Block count: *//p')
    free=$(dumpe2fs -h "$IMG" 2>/dev/null | sed -n 's/^Free blocks: *//p')
    used=
    isnum "$count" && isnum "$free" && used=$(calc "($count - $free) / $count" 3)
    record data_image_bytes "test data" "test image size" "$(stat -c %s "$IMG")" bytes "" \
        "mkfs.ext4 -d (files from /usr/share, /usr/lib)" "bench-data/$(basename "$IMG")"
    record data_image_used_share "test data" "test image: share of blocks in use" "$used" fraction "" \
        "dumpe2fs -h" ""
    record data_image_files "test data" "test image: files" "$(cat "$IMG.ok")" files "" "" ""
}
