#!/usr/bin/env bash
# Installs what building hashpool needs on Debian 12 with only Rust present:
# cmake + libboost-dev (bitcoinkernel builds Bitcoin Core's validation code), protobuf-compiler
# (CDK), pkg-config + libssl-dev (TLS to PostgreSQL), the tools the tests use (chromium,
# nginx, shellcheck, systemd, sqlite3, postgresql) and cargo-nextest.
# Safe to run repeatedly.
set -euo pipefail
need=()
command -v cmake >/dev/null 2>&1 || need+=(cmake)
[ -d /usr/include/boost ] || need+=(libboost-dev)
command -v protoc >/dev/null 2>&1 || need+=(protobuf-compiler)
command -v c++ >/dev/null 2>&1 || need+=(g++)
# TLS to PostgreSQL (cdk-postgres and our epoch ledger use native-tls, i.e. OpenSSL).
command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
[ -f /usr/include/openssl/ssl.h ] || need+=(libssl-dev)
# The tests run mints on a real PostgreSQL server (deploy/test-postgres.sh starts it).
command -v pg_ctlcluster >/dev/null 2>&1 || need+=(postgresql)
# The tests: a headless Chromium drives the dashboards; the deploy-kit test checks the units,
# the nginx site and the scripts with Debian's own tools and drills a mint backup.
command -v chromium >/dev/null 2>&1 || need+=(chromium)
for tool in nginx shellcheck systemd-analyze:systemd sqlite3 openssl curl python3; do
  command -v "${tool%%:*}" >/dev/null 2>&1 || need+=("${tool##*:}")
done
if [ ${#need[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing: ${need[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi
if ! cargo nextest --version >/dev/null 2>&1; then
  cargo install --locked cargo-nextest
fi
