#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
#
# tools/wolfssl/build.sh: wolfSSL from Debian's own source package, built as a
# static library with the target's hardware crypto.
#
# Why: Debian's libwolfssl is built without AES-NI or assembly, so TLS 1.3
# moves only about 110 MB/s (AES-GCM) or 260 MB/s (ChaCha20-Poly1305) per
# core with it, and TLS would be the ceiling of replication. The same source
# configured with --enable-aesni --enable-intelasm (x86-64) or --enable-armasm
# (aarch64) is several times faster. We build Debian's own source package, the
# version of the installed libwolfssl-dev (with Debian's security patches), so
# that this build and the fallback (`make WOLFSSL=system`, Debian's shared
# library) differ only in configuration. The Makefile runs this script; the
# project's objects are compiled against DIR/install/include (the options.h
# that configure writes describes exactly this library).
#
#   build.sh fetch DIR   make sure the source is in DIR/src and the tools to
#                        build it are there; print "ok", or one line saying
#                        why not (the Makefile then falls back to Debian's
#                        shared library with that line as its notice)
#   build.sh build DIR   fetch if needed, then configure, build and install
#                        DIR/install/lib/libwolfssl.a and its headers
#
# The source comes from `apt-get source wolfssl` with deb-src entries derived
# at run time from this machine's own apt sources (nothing about a mirror is
# written in the repository), through a private apt configuration in DIR/apt,
# so the system's apt state is not touched and root is not needed. The
# download is kept in DIR/src and reused. When it cannot be had (no network),
# DIR/unavailable records why, and later runs say so at once instead of
# waiting for the network again; remove that file to retry.
#
# Environment: CC (compiler, default cc), WOLFSSL_DEB_VERSION (the source
# version; default: the installed libwolfssl-dev's, else the newest),
# WOLFSSL_JOBS (parallel jobs, default: the number of CPUs).
# Output: a few progress lines; everything else goes to DIR/build.log, whose
# tail is shown when a step fails. Exit 0 on success, 1 on failure, 2 on bad
# usage.

set -u

usage() {
  echo "usage: build.sh fetch|build DIR" >&2
  exit 2
}

[ $# -eq 2 ] || usage
MODE=$1
case $MODE in fetch|build) ;; *) usage ;; esac
mkdir -p "$2" || exit 1
DIR=$(cd "$2" && pwd) || exit 1
LOG=$DIR/build.log
APT=$DIR/apt
SRC=$DIR/src
CC=${CC:-cc}

# one run at a time per DIR: build folders may share one (WOLFSSL_DIR)
if command -v flock >/dev/null 2>&1; then
  exec 9>"$DIR/.lock" && flock 9 || exit 1
fi

say() { echo "  WOLFSSL $*"; }
log() { echo "== $*" >>"$LOG"; }

# Run a step with its output in the log; on failure show the log's tail.
step() {
  what=$1
  shift
  log "$what: $*"
  if ! "$@" >>"$LOG" 2>&1; then
    echo "wolfssl: $what failed; the end of $LOG:" >&2
    tail -n 25 "$LOG" >&2
    return 1
  fi
}

# ---- deb-src entries from the machine's own apt sources ---------------------

# Debian's codename (bookworm): only entries for this release are turned into
# deb-src, so third-party repositories that publish no sources are left out.
# shellcheck disable=SC1091 # the os-release of the machine we run on
codename() {
  (. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}")
}

# One-line format (sources.list, *.list): "deb [opts] URI SUITE COMP..." ->
# the same with deb-src.
oneline_to_src() {
  awk -v code="$1" '
    $1 != "deb" { next }
    {
      i = 2
      if ($i ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
      suite = $(i + 1)
      if (code != "" && suite != code && index(suite, code "-") != 1 &&
          index(suite, code "/") != 1) next
      sub(/^[ \t]*deb/, "deb-src")
      print
    }' "$2"
}

# deb822 format (*.sources): each enabled stanza of type deb becomes deb-src,
# keeping only this release'"'"'s suites. Continuation lines (an embedded key)
# stay with their field.
deb822_to_src() {
  awk -v code="$1" '
    BEGIN { RS = ""; FS = "\n" }
    {
      out = ""; deb = 0; off = 0; keep = ""; field = ""
      for (i = 1; i <= NF; i++) {
        line = $i
        if (line ~ /^#/) continue
        if (line ~ /^[ \t]/) { if (field != "skip") out = out line "\n"; continue }
        field = tolower(substr(line, 1, index(line, ":") - 1))
        val = substr(line, index(line, ":") + 1)
        if (field == "types") {
          n = split(val, t, /[ \t]+/)
          for (j = 1; j <= n; j++) if (t[j] == "deb") deb = 1
          out = out "Types: deb-src\n"; field = "skip"; continue
        }
        if (field == "enabled" && val ~ /[Nn][Oo]/) off = 1
        if (field == "suites") {
          n = split(val, s, /[ \t]+/)
          for (j = 1; j <= n; j++)
            if (s[j] != "" && (code == "" || s[j] == code || index(s[j], code "-") == 1 ||
                               index(s[j], code "/") == 1))
              keep = keep " " s[j]
          out = out "Suites:" keep "\n"; field = "skip"; continue
        }
        out = out line "\n"
      }
      if (deb && !off && keep != "") printf "%s\n", out
    }' "$2"
}

write_apt_config() {
  list="" parts=""
  eval "$(apt-config shell list Dir::Etc::sourcelist/f parts Dir::Etc::sourceparts/d)"
  code=$(codename)
  rm -rf "$APT/parts" && mkdir -p "$APT/parts" "$APT/lists/partial" \
    "$APT/cache/archives/partial" || return 1
  : >"$APT/sources.list"
  [ -f "$list" ] && oneline_to_src "$code" "$list" >>"$APT/sources.list"
  for f in "$parts"*.list; do
    [ -f "$f" ] && oneline_to_src "$code" "$f" >>"$APT/sources.list"
  done
  for f in "$parts"*.sources; do
    [ -f "$f" ] && deb822_to_src "$code" "$f" >"$APT/parts/${f##*/}"
  done
  [ -s "$APT/sources.list" ] || [ -n "$(find "$APT/parts" -type f -size +0)" ]
}

apt_private() {
  "$@" -q -o Dir::Etc::SourceList="$APT/sources.list" \
    -o Dir::Etc::SourceParts="$APT/parts" \
    -o Dir::State::Lists="$APT/lists" -o Dir::Cache="$APT/cache" \
    -o Dir::Cache::pkgcache= -o Dir::Cache::srcpkgcache= \
    -o Acquire::Retries=1 -o Acquire::http::Timeout=20 -o Acquire::https::Timeout=20
}

# ---- fetch ------------------------------------------------------------------

# The unpacked source tree, once a previous fetch finished.
tree() {
  [ -f "$SRC/done" ] && sed -n 2p "$SRC/done"
}

missing_tools() {
  m=""
  for t in apt-get dpkg-source autoreconf automake libtoolize make; do
    command -v "$t" >/dev/null 2>&1 || m="$m $t"
  done
  command -v "$CC" >/dev/null 2>&1 || m="$m $CC"
  echo "$m"
}

fetch() {
  m=$(missing_tools)
  if [ -n "$m" ]; then
    echo "wolfssl: cannot build Debian's wolfssl source, missing:$m (run make deps)"
    return 1
  fi
  if [ -n "$(tree)" ] && [ -f "$(tree)/configure.ac" ]; then
    echo ok
    return 0
  fi
  if [ -f "$DIR/unavailable" ]; then
    echo "$(cat "$DIR/unavailable") (remove $DIR/unavailable to retry)"
    return 1
  fi
  : >"$LOG"
  if ! write_apt_config; then
    echo "wolfssl: no Debian apt sources found to derive deb-src entries from" |
      tee "$DIR/unavailable"
    return 1
  fi
  log "deb-src entries (private apt config in $APT)"
  cat "$APT/sources.list" "$APT"/parts/* >>"$LOG" 2>/dev/null
  # a source that fails (one mirror of several) is not fatal: apt-get source
  # below says whether the package can be had
  log "apt-get update"
  apt_private apt-get update >>"$LOG" 2>&1
  want=${WOLFSSL_DEB_VERSION:-$(dpkg-query -W -f='${Version}' libwolfssl-dev 2>/dev/null)}
  rm -rf "$SRC" && mkdir -p "$SRC" || return 1
  got=""
  if [ -n "$want" ] && (cd "$SRC" && apt_private apt-get source "wolfssl=$want") >>"$LOG" 2>&1
  then
    got=$want
  else
    log "wolfssl=${want:-?} not available as source; taking the newest"
    rm -rf "$SRC" && mkdir -p "$SRC" || return 1
    if (cd "$SRC" && apt_private apt-get source wolfssl) >>"$LOG" 2>&1; then
      got=$(sed -n 's/^Version: //p' "$SRC"/*.dsc | head -n 1)
    fi
  fi
  t=$(find "$SRC" -mindepth 1 -maxdepth 1 -type d -name 'wolfssl-*' | head -n 1)
  if [ -z "$got" ] || [ -z "$t" ] || [ ! -f "$t/configure.ac" ]; then
    # apt says "Err:N URI SUITE FILE" and the cause on the next line
    why=$(awk '/^Err:/ { u = $2 " " $3 " " $4; getline; sub(/^[ \t]+/, "");
                         print u ": " $0; exit }
               /^E:/ { print; exit }' "$LOG" | cut -c1-200)
    echo "wolfssl: cannot fetch Debian's wolfssl source package: ${why:-see $LOG}" |
      tee "$DIR/unavailable"
    return 1
  fi
  printf '%s\n%s\n' "$got" "$t" >"$SRC/done"
  echo ok
}

# ---- build ------------------------------------------------------------------

# configure options: the hardware crypto of the target, what the project uses
# (TLS 1.3 with ECC P-256 certificates, AES-GCM, ChaCha20-Poly1305, SHA-384,
# certificate generation, the OpenSSL-compatible X509 calls of rt_tls.c and
# rt_cert.c (X509_NAME_get_text_by_NID, X509_get_notBefore, ASN1_TIME_to_tm,
# CTX_set_mode), OPENSSL_ALL as in Debian's library (without it a self-signed
# peer is reported as "no signer" instead of ASN_SELF_SIGNED_E, and the
# refusal reasons change), and the fixed-point ECC cache that Debian's
# library has and the tests free per thread with wc_ecc_fp_free), a static
# library only. TLS 1.2 and older
# stay (the integration tests prove our links refuse them); what nothing here
# uses is left out.
hw_options() {
  case $($CC -dumpmachine 2>/dev/null) in
  x86_64-* | amd64-*) echo "--enable-aesni --enable-intelasm" ;;
  aarch64-* | arm64-*) echo "--enable-armasm" ;;
  *) echo "" ;;
  esac
}

build() {
  lib=$DIR/install/lib/libwolfssl.a
  # another run (sharing DIR) may have built it while we waited for the lock
  if [ -f "$lib" ] && [ -n "$(find "$lib" -newer "$0")" ]; then
    return 0
  fi
  r=$(fetch) || { echo "$r" >&2; return 1; }
  ver=$(sed -n 1p "$SRC/done")
  t=$(tree)
  hw=$(hw_options)
  [ -n "$hw" ] || say "no hardware crypto options for $($CC -dumpmachine); plain C build"
  rm -rf "$DIR/install"
  log "build of wolfssl $ver in $t"
  say "autoreconf $ver"
  (cd "$t" && step autoreconf autoreconf --install --force) || return 1
  say "configure $hw"
  # shellcheck disable=SC2086 # $hw is a list of options
  (cd "$t" && step configure ./configure CC="$CC" --prefix="$DIR/install" \
    --disable-shared --enable-static --disable-examples --disable-crypttests \
    --disable-benchmark \
    $hw \
    --enable-tls13 --enable-ecc --enable-aesgcm --enable-chacha --enable-poly1305 \
    --enable-sha384 --enable-sha512 \
    --enable-certgen --enable-certreq --enable-certext --enable-keygen \
    --enable-fpecc --enable-opensslextra --enable-opensslall) || return 1
  jobs=${WOLFSSL_JOBS:-$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 2)}
  say "make -j$jobs"
  (cd "$t" && step make make -j"$jobs") || return 1
  (cd "$t" && step install make install) || { rm -rf "$DIR/install"; return 1; }
  if [ ! -f "$DIR/install/lib/libwolfssl.a" ] ||
     [ ! -f "$DIR/install/include/wolfssl/options.h" ]; then
    echo "wolfssl: make install left no libwolfssl.a or options.h in $DIR/install" >&2
    rm -rf "$DIR/install"
    return 1
  fi
  say "installed $DIR/install/lib/libwolfssl.a"
}

# the parent make's flags and variables (BUILD=, V=, -j) are not wolfSSL's
unset MAKEFLAGS MFLAGS MAKELEVEL MAKEOVERRIDES

case $MODE in
fetch) fetch ;;
build) build ;;
esac
