#!/usr/bin/env bash
# whisper-rs-sys (whisper.cpp's sources and their Rust bindings) as Sori builds it:
# the crate from crates.io, checked against its pinned SHA-256, with the patches
# in patches/whisper-rs-sys applied, in third_party/ where Cargo.toml's
# [patch.crates-io] points. Does nothing when the patches there are the current ones.
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=0.15.0
SHA256=6986c0fe081241d391f09b9a071fbcbb59720c3563628c3c829057cf69f2a56f
URL="https://static.crates.io/crates/whisper-rs-sys/whisper-rs-sys-$VERSION.crate"
DEST="third_party/whisper-rs-sys-$VERSION"
PATCHED="$(cat patches/whisper-rs-sys/*.patch | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$DEST/.sori-patches" 2>/dev/null)" = "$PATCHED" ]; then
    exit 0
fi
mkdir -p third_party
crate="third_party/whisper-rs-sys-$VERSION.crate"
if ! echo "$SHA256  $crate" | sha256sum -c --status 2>/dev/null; then
    python3 -c 'import sys, urllib.request; urllib.request.urlretrieve(sys.argv[1], sys.argv[2])' "$URL" "$crate"
    echo "$SHA256  $crate" | sha256sum -c --quiet
fi
rm -rf "$DEST"
# -m: the files are dated now, so that the build script (which reruns when
# wrapper.h changes) builds whisper.cpp again with the new patches.
tar -m -xzf "$crate" -C third_party
for p in patches/whisper-rs-sys/*.patch; do
    patch --quiet -d "$DEST" -p1 < "$p"
done
# The build script copies whisper.cpp into its output folder only when no copy
# is there yet: earlier builds' copies would keep the old sources.
rm -rf target/*/build/whisper-rs-sys-*/out/whisper.cpp target/*/*/build/whisper-rs-sys-*/out/whisper.cpp
echo "$PATCHED" > "$DEST/.sori-patches"
echo "whisper-rs-sys $VERSION with $(ls patches/whisper-rs-sys | wc -l) patch(es) in $DEST"
