#!/usr/bin/env bash
# Builds hashpool here and installs it on HOST over ssh, without a toolchain there: copies the
# binary and the deploy kit, runs deploy/install.sh with sudo, and restarts the roles that were
# running on HOST.
#
#   deploy/ship-only.sh HOST [--devnet] [--configs DIR]
#
# HOST is anything ssh accepts (user@host, a Host from ~/.ssh/config). The binary links the
# build machine's glibc: build on Debian 12 (or older) for a Debian 12 host; install.sh refuses
# a binary the host cannot run before replacing anything.
set -euo pipefail

[ $# -ge 1 ] || { echo "usage: ship-only.sh HOST [--devnet] [--configs DIR]" >&2; exit 2; }
host=$1
shift
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# --locked: build exactly the reviewed Cargo.lock, never a freshly resolved dependency.
(cd "$repo" && cargo build --release --locked --bin hashpool)
binary=${CARGO_TARGET_DIR:-$repo/target}/release/hashpool
case $binary in /*) ;; *) binary=$repo/$binary ;; esac

# A private (0700) staging directory: other users of HOST cannot swap files in before root
# installs them.
staging=$(ssh "$host" 'mktemp -d /tmp/hashpool-ship.XXXXXX')
# Checked, because it is pasted into remote command lines below.
[[ $staging =~ ^/tmp/hashpool-ship\.[A-Za-z0-9]{6}$ ]] || { echo "bad staging dir: $staging" >&2; exit 1; }
cleanup() { ssh "$host" rm -rf "$staging" || true; }
trap cleanup EXIT

# The same layout as the checkout, so install.sh finds deploy/ and config/ as at home.
scp -q -r "$binary" "$repo/deploy" "$repo/config" "$host:$staging/"
# -t: sudo may ask for a password.
ssh -t "$host" sudo bash "$staging/deploy/install.sh" --restart "$(printf '%q ' "$@")" "$staging/hashpool"
