#!/usr/bin/env bash
# Checks this deploy kit with Debian's own tools, in a temporary directory, touching nothing
# installed: shellcheck on every script, systemd-analyze verify and security on the units,
# nginx -t on the site (self-signed stand-ins for the certbot certificates) and a smoke test of
# it through a throwaway nginx. With a hashpool binary (HASHPOOL_BIN, else the checkout's
# target/release/hashpool, else /usr/local/bin/hashpool) it also loads the devnet example
# configs and runs a backup/restore drill on a live mint. Exits non-zero on any failure.
#
#   apt-get install -y nginx shellcheck systemd sqlite3 openssl   # python3, curl: smoke test
#   deploy/test-deploy.sh
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$here")
tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

failed=()
section() { printf '\n=== %s\n' "$*"; }
fail() { echo "FAIL: $*"; failed+=("$*"); }

for tool in shellcheck systemd-analyze nginx openssl sqlite3; do
  command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install -y nginx shellcheck systemd sqlite3 openssl" >&2; exit 1; }
done

section "shellcheck $(shellcheck --version | sed -n 's/^version: //p')"
mapfile -t scripts < <(find "$here" -name '*.sh' -type f | sort)
for s in "${scripts[@]}"; do
  if shellcheck -x "$s"; then echo "ok ${s#"$repo"/}"; else fail "shellcheck ${s#"$repo"/}"; fi
  [ -x "$s" ] || fail "${s#"$repo"/} is not executable"
done

section "systemd-analyze verify ($(systemd-analyze --version | head -n 1))"
# verify insists that ExecStart= binaries exist: point at stubs where nothing is installed yet.
mkdir -p "$tmp/bin" "$tmp/units"
for b in /usr/local/bin/hashpool /usr/local/sbin/hashpool-backup-mint; do
  [ -x "$b" ] && continue
  printf '#!/bin/sh\nexit 0\n' >"$tmp/bin/${b##*/}"
  chmod +x "$tmp/bin/${b##*/}"
done
stub_paths() {
  local f
  for f in "$@"; do
    [ -x /usr/local/bin/hashpool ] || sed -i "s#/usr/local/bin/hashpool #$tmp/bin/hashpool #" "$f"
    [ -x /usr/local/sbin/hashpool-backup-mint ] ||
      sed -i "s#/usr/local/sbin/hashpool-backup-mint #$tmp/bin/hashpool-backup-mint #" "$f"
  done
}
# Once as installed everywhere, once with the devnet drop-in (systemd reads drop-ins from the
# unit path, hence SYSTEMD_UNIT_PATH). verify prints warnings for mistakes it only ignores
# (unknown keys, bad values): any output is a failure.
for variant in plain devnet; do
  rm -rf "$tmp/units" && mkdir -p "$tmp/units"
  cp "$here"/systemd/*.service "$here"/systemd/*.timer "$tmp/units/"
  [ "$variant" = plain ] || cp -r "$here/systemd/hashpool-pool.service.d" "$tmp/units/"
  stub_paths "$tmp"/units/*.service
  for u in "$tmp"/units/*.service "$tmp"/units/*.timer; do
    if out=$(cd "$tmp/units" && SYSTEMD_UNIT_PATH="$tmp/units:" systemd-analyze verify "${u##*/}" 2>&1) &&
      [ -z "$out" ]; then
      echo "ok $variant ${u##*/}"
    else
      echo "$out"
      fail "systemd-analyze verify $variant ${u##*/}"
    fi
  done
done

section "systemd-analyze security --offline (exposure, lower is better; fails above 2.0)"
for u in "$tmp"/units/*.service; do
  if out=$(cd "$tmp/units" && SYSTEMD_UNIT_PATH="$tmp/units:" systemd-analyze security --offline=yes --threshold=20 "${u##*/}" 2>&1); then
    echo "$out" | tail -n 1
  else
    echo "$out" | tail -n 1
    fail "systemd-analyze security ${u##*/}"
  fi
done

section "nginx -t ($(nginx -v 2>&1))"
le=$tmp/letsencrypt/live
for name in pool.example.com mint.example.com; do
  mkdir -p "$le/$name"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj "/CN=$name" -keyout "$le/$name/privkey.pem" -out "$le/$name/fullchain.pem" 2>/dev/null
done
mkdir -p "$tmp/nginx/logs" "$tmp/nginx/acme/.well-known/acme-challenge"
sed "s#/etc/letsencrypt/live/#$le/#g" "$here/nginx/hashpool.conf" >"$tmp/nginx/hashpool.conf"
grep -q /etc/letsencrypt "$tmp/nginx/hashpool.conf" && fail "certificate paths not redirected to the test certificates"
# Debian's own nginx.conf around the site, as in sites-enabled; only its pid and logs move here.
nginx_conf() { # $1: the site file to include
  sed -e "s#^pid .*#pid $tmp/nginx/nginx.pid;#" \
    -e "s#^error_log .*#error_log $tmp/nginx/logs/error.log;#" \
    -e "s#^\([[:space:]]*\)access_log .*#\1access_log off;#" \
    -e "s#include /etc/nginx/sites-enabled/\*;#include $1;#" /etc/nginx/nginx.conf
}
nginx_conf "$tmp/nginx/hashpool.conf" >"$tmp/nginx/nginx.conf"
if nginx -t -p "$tmp/nginx/" -c "$tmp/nginx/nginx.conf" 2>&1; then :; else fail "nginx -t"; fi

section "nginx smoke test (throwaway nginx on high ports, stand-in upstreams)"
if ! command -v python3 >/dev/null || ! command -v curl >/dev/null; then
  echo "SKIP: needs python3 and curl"
else
  # Four free ports below the kernel's ephemeral range (32768+), where outgoing connections
  # of the tests running alongside take theirs; other tests' listeners are checked by binding.
  base=""
  for _ in $(seq 50); do
    candidate=$((20000 + RANDOM % 12000))
    if python3 -c '
import socket, sys
b = int(sys.argv[1])
for p in range(b, b + 4):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p))
    except OSError:
        sys.exit(1)
    finally:
        s.close()
' "$candidate"; then
      base=$candidate
      break
    fi
  done
  [ -n "$base" ] || base=$((20000 + $$ % 12000))
  http=$base https=$((base + 1)) pool_up=$((base + 2)) mint_up=$((base + 3))
  # Stand-ins answer 200 for the paths they have files for, 404 otherwise.
  mkdir -p "$tmp/up/pool/api" "$tmp/up/mint/v1" "$tmp/up/mint/hashpool/v1"
  echo pool-page >"$tmp/up/pool/index.html"
  echo '{}' >"$tmp/up/pool/api/status"
  echo metrics >"$tmp/up/pool/metrics"
  echo '{}' >"$tmp/up/mint/v1/info"
  echo '{}' >"$tmp/up/mint/hashpool/v1/epochs"
  echo metrics >"$tmp/up/mint/metrics"
  python3 -m http.server -b 127.0.0.1 -d "$tmp/up/pool" "$pool_up" >/dev/null 2>&1 & pids+=($!)
  python3 -m http.server -b 127.0.0.1 -d "$tmp/up/mint" "$mint_up" >/dev/null 2>&1 & pids+=($!)
  echo token >"$tmp/nginx/acme/.well-known/acme-challenge/t"
  sed -e "s#listen 80;#listen 127.0.0.1:$http;#; /listen \[::\]:/d" \
    -e "s#listen 443 ssl http2;#listen 127.0.0.1:$https ssl http2;#" \
    -e "s#127.0.0.1:13334#127.0.0.1:$pool_up#; s#127.0.0.1:13338#127.0.0.1:$mint_up#" \
    -e "s#/var/www/letsencrypt#$tmp/nginx/acme#" \
    -e "s#https://\$host\$request_uri#https://\$host:$https\$request_uri#" \
    "$tmp/nginx/hashpool.conf" >"$tmp/nginx/smoke.conf"
  nginx_conf "$tmp/nginx/smoke.conf" | sed -e 's#^user .*#user root;#' \
    -e "s#^\([[:space:]]*\)http {#\1http {\n\tclient_body_temp_path $tmp/nginx/body; proxy_temp_path $tmp/nginx/proxy;#" \
    -e "s#^\([[:space:]]*\)http {#\1http {\n\tfastcgi_temp_path $tmp/nginx/fcgi; uwsgi_temp_path $tmp/nginx/uwsgi; scgi_temp_path $tmp/nginx/scgi;#" \
    >"$tmp/nginx/smoke-nginx.conf"
  if nginx -p "$tmp/nginx/" -c "$tmp/nginx/smoke-nginx.conf"; then
    sleep 1
    # Stopped by cleanup, whatever happens below.
    pids+=("$(cat "$tmp/nginx/nginx.pid")")
    # $1: expected HTTP status, rest: curl arguments.
    check() {
      local want=$1 got
      shift
      got=$(curl -sk -o /dev/null -w '%{http_code}' "$@") || got="curl-error"
      if [ "$got" = "$want" ]; then echo "ok $want ${*: -1}"; else fail "nginx: want $want, got $got: $*"; fi
    }
    pool=(--resolve "pool.example.com:$https:127.0.0.1" --resolve "pool.example.com:$http:127.0.0.1")
    mint=(--resolve "mint.example.com:$https:127.0.0.1" --resolve "mint.example.com:$http:127.0.0.1")
    check 301 "${pool[@]}" "http://pool.example.com:$http/"
    check 200 "${pool[@]}" "http://pool.example.com:$http/.well-known/acme-challenge/t"
    check 200 "${pool[@]}" "https://pool.example.com:$https/"
    check 200 "${pool[@]}" "https://pool.example.com:$https/api/status"
    # From any address but loopback (127.0.0.2 stands in for the internet): no metrics.
    check 403 "${pool[@]}" --interface 127.0.0.2 "https://pool.example.com:$https/metrics"
    check 403 "${pool[@]}" --interface 127.0.0.2 "https://pool.example.com:$https/metrics/"
    check 200 "${pool[@]}" "https://pool.example.com:$https/metrics"
    check 301 "${mint[@]}" "http://mint.example.com:$http/v1/info"
    check 200 "${mint[@]}" "https://mint.example.com:$https/v1/info"
    check 200 "${mint[@]}" "https://mint.example.com:$https/hashpool/v1/epochs"
    check 403 "${mint[@]}" "https://mint.example.com:$https/metrics"
  else
    fail "nginx smoke test: nginx did not start"
  fi
fi

section "devnet example configs: the README's first start, on ephemeral ports"
bin=${HASHPOOL_BIN:-}
for b in "$repo/target/release/hashpool" /usr/local/bin/hashpool; do
  if [ -z "$bin" ] && [ -x "$b" ]; then bin=$b; fi
done
if [ -z "$bin" ] || ! command -v curl >/dev/null; then
  echo "SKIP: needs a hashpool binary (HASHPOOL_BIN) and curl"
else
  # A private copy: a concurrent cargo build may replace the original mid-test.
  cp "$bin" "$tmp/hashpool"
  bin=$tmp/hashpool
  echo "binary: $("$bin" --version)"
  # The examples as installed, with data in the temp dir and ephemeral ports, so nothing here
  # collides with a stack running on this machine.
  etc=$tmp/etc
  mkdir -p "$etc"
  for f in "$here"/devnet/*.toml; do
    sed -e "s#/var/lib/hashpool/#$tmp/var/#" -e 's#"127\.0\.0\.1:[0-9]*"#"127.0.0.1:0"#' "$f" >"$etc/${f##*/}"
  done
  # Starts a role like its unit does and waits for its "started" line; its pid goes to $role_pid.
  start_role() { # $1: role, $2: log name
    local log=$tmp/$2.log
    NO_COLOR=1 "$bin" "$1" -c "$etc/$1.toml" >"$log" 2>&1 &
    role_pid=$!
    pids+=("$role_pid")
    for _ in $(seq 150); do
      if grep -q "${1/-/ } started" "$log"; then return 0; fi
      kill -0 "$role_pid" 2>/dev/null || break
      sleep 0.2
    done
    cat "$log"
    fail "$1 did not start with its example config"
    return 1
  }
  # SIGTERM, as systemd stops a unit; the role must exit 0 within 20 s.
  stop_role() { # $1: role, $2: pid
    local rc=0
    kill -TERM "$2"
    for _ in $(seq 100); do kill -0 "$2" 2>/dev/null || break; sleep 0.2; done
    wait "$2" || rc=$?
    if [ "$rc" -eq 0 ]; then echo "ok $1 stopped on SIGTERM (exit 0)"; else fail "$1 exited $rc on SIGTERM"; fi
  }
  # A field of a role's "started" line: field LOG NAME.
  field() {
    grep -o "[[:space:]]$2=[^[:space:]]*" "$tmp/$1.log" | tail -n 1 |
      sed -e "s/^[[:space:]]$2=//" -e 's/^Some(\(.*\))$/\1/'
  }
  # Sets KEY = "VALUE" in a role's config (the README's "edit the config").
  set_key() { sed -i "s#^$2 = .*#$2 = $3#" "$etc/$1.toml"; }
  healthy() { # $1: role, $2: log name. Polls /health for up to 30 s.
    local url code
    url=http://$(field "$2" metrics_addr)/health
    for _ in $(seq 60); do
      code=$(curl -s -o /dev/null -w '%{http_code}' "$url") || true
      if [ "$code" = 200 ]; then echo "ok $1 $url: 200 $(curl -s "$url")"; return 0; fi
      sleep 0.5
    done
    tail -n 5 "$tmp/$2.log"
    fail "$1 $url: $code $(curl -s "$url")"
  }

  if start_role template-provider tp; then
    tp_pid=$role_pid
  fi
  if [ -n "${tp_pid:-}" ] && start_role mint mint; then
    mint_pid=$role_pid
    echo "ok template-provider and mint (pool_keys = []) started"
    set_key pool tp_address "\"$(field tp addr)\""
    set_key pool tp_authority "\"$(field tp authority)\""
    set_key pool mint_address "\"$(field mint link_addr)\""
    set_key pool mint_authority "\"$(field mint authority)\""
    set_key pool url "\"http://$(field tp rpc_addr)\""
    if start_role pool pool; then
      pool_pid=$role_pid
      echo "ok pool started, authority $(field pool authority)"
      set_key mint pool_keys "[\"$(field pool authority)\"]"
      # The restarted mint must come back where the pool looks for it.
      set_key mint link_listen "\"$(field mint link_addr)\""
      stop_role mint "$mint_pid"
      if start_role mint mint2; then
        mint_pid=$role_pid
        healthy pool pool
        healthy mint mint2
        set_key translator pool_address "\"$(field pool addr)\""
        set_key translator pool_authority "\"$(field pool authority)\""
        if start_role translator translator; then
          healthy translator translator
          stop_role translator "$role_pid"
        fi

        section "backup-mint.sh on the live mint, then the README's restore"
        mint_data=$tmp/var/mint
        backups=()
        stats() { "$bin" mint -c "$etc/mint.toml" stats --json 2>/dev/null | sed 's/,"[a-z_]*since_start":[0-9]*//g'; }
        # Two backups with -k 1: the first must be pruned. A second apart: names are UTC seconds.
        if "$here/backup-mint.sh" -d "$mint_data" -o "$tmp/backups" -k 1 && sleep 1.1 &&
          "$here/backup-mint.sh" -d "$mint_data" -o "$tmp/backups" -k 1; then
          mapfile -t backups < <(find "$tmp/backups" -mindepth 1 -maxdepth 1 -type d -name '2*')
          [ "${#backups[@]}" -eq 1 ] || fail "backup-mint.sh -k 1 kept ${#backups[@]} backups"
          (cd "${backups[0]}" && sha256sum --quiet -c SHA256SUMS) || fail "backup checksums"
          for f in "${backups[0]}"/*; do
            [ "$(stat -c %a "$f")" = 600 ] || fail "backup file ${f##*/} is not 0600"
          done
          ls -l "${backups[0]}"
        else
          fail "backup-mint.sh on a live mint"
        fi
        before=$(stats)
        stop_role pool "$pool_pid"
        stop_role mint "$mint_pid"
        if [ "${#backups[@]}" -eq 1 ]; then
          # Move the data dir aside (its -wal/-shm with it), copy the backup in, start.
          mv "$mint_data" "$mint_data.before-restore"
          install -d -m 0750 "$mint_data"
          for f in "${backups[0]}"/*; do
            [ "${f##*/}" = SHA256SUMS ] || install -m 0600 "$f" "$mint_data/"
          done
          if start_role mint mint3; then
            after=$(stats)
            healthy mint mint3
            stop_role mint "$role_pid"
            if grep -q 'Rotating keyset' "$tmp/mint3.log"; then
              fail "the restored mint created new keysets"
            elif [ "$(field mint3 authority)" != "$(field mint2 authority)" ]; then
              fail "the restored mint has another authority key"
            elif [ "$before" = "$after" ]; then
              echo "ok restored mint: same authority key, keysets and totals: $after"
            else
              fail "restored mint differs: before $before, after $after"
            fi
            # Ledgers that disagree on the current keyset (a rotation between the two
            # snapshots, every time) would not restart the mint: no backup may be made of them.
            cp -r "$mint_data" "$tmp/skewed"
            sqlite3 "$tmp/skewed/epochs.sqlite" "UPDATE epoch SET keyset_id = 'skewed' WHERE epoch = (SELECT max(epoch) FROM epoch);"
            if "$here/backup-mint.sh" -d "$tmp/skewed" -o "$tmp/skewed-backups" >"$tmp/skewed.log" 2>&1; then
              fail "backup-mint.sh backed up ledgers that disagree on the keyset"
            elif find "$tmp/skewed-backups" -mindepth 1 -maxdepth 1 -type d | grep -q .; then
              fail "backup-mint.sh left a directory behind after failing"
            else
              echo "ok backup-mint.sh refuses ledgers that disagree on the keyset: $(tail -n 1 "$tmp/skewed.log")"
            fi
          fi
        fi
      fi
    fi
  fi
  [ -z "${tp_pid:-}" ] || stop_role template-provider "$tp_pid"
fi

section "result"
if [ "${#failed[@]}" -gt 0 ]; then
  printf 'FAILED: %s\n' "${failed[@]}"
  exit 1
fi
echo "all checks passed"
