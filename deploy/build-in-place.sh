#!/usr/bin/env bash
# Builds hashpool on this Debian 12 host from this checkout and installs it (deploy/install.sh).
# Run as the user who owns the checkout; installing asks for sudo.
#
#   deploy/build-in-place.sh [--devnet] [--configs DIR]
#
# Roles that are running are restarted on the new binary; configs in /etc/hashpool are kept.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
sudo=()
[ "$(id -u)" -eq 0 ] || sudo=(sudo)

"$repo/deploy/build-deps.sh"
# --locked: build exactly the reviewed Cargo.lock, never a freshly resolved dependency.
(cd "$repo" && cargo build --release --locked --bin hashpool)
binary=${CARGO_TARGET_DIR:-$repo/target}/release/hashpool
# A relative CARGO_TARGET_DIR is relative to the checkout, where cargo ran.
case $binary in /*) ;; *) binary=$repo/$binary ;; esac

"${sudo[@]}" "$repo/deploy/install.sh" --restart "$@" "$binary"
