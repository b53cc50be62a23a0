#!/usr/bin/env bash
# Installs a built hashpool binary and this deploy kit on a Debian 12 host, as root. Shared by
# build-in-place.sh (binary built on the host) and ship-only.sh (binary built elsewhere).
#
#   install.sh [--devnet] [--configs DIR] [--restart] BINARY
#
#   --configs DIR  install DIR/<role>.toml as /etc/hashpool/<role>.toml where that file does not
#                  exist yet (DIR relative to the repository: deploy/devnet, config/testnet4, ...)
#   --devnet       --configs deploy/devnet, plus the pool's access to the devnet template
#                  provider's RPC cookie (hashpool-pool.service.d/devnet.conf)
#   --restart      restart the roles that are running, so they run the new binary
#
# Never overwrites a config, never touches /var/lib/hashpool contents, never creates keys: each
# role creates its own on first start. Safe to run again for every upgrade.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$here")
roles=(template-provider mint pool jd-client translator)
units=/usr/local/lib/systemd/system

die() { echo "install.sh: $*" >&2; exit 1; }

configs="" devnet=0 restart=0 binary=""
while [ $# -gt 0 ]; do
  case $1 in
    --configs) [ $# -ge 2 ] || die "--configs needs a directory"; configs=$2; shift 2 ;;
    --devnet) devnet=1; shift ;;
    --restart) restart=1; shift ;;
    -h | --help) sed -n '2,15p' "${BASH_SOURCE[0]}"; exit 0 ;;
    -*) die "unknown option $1" ;;
    *) [ -z "$binary" ] || die "one binary only"; binary=$1; shift ;;
  esac
done
[ -n "$binary" ] || die "usage: install.sh [--devnet] [--configs DIR] [--restart] BINARY"
[ "$(id -u)" -eq 0 ] || die "run as root (sudo)"
[ -x "$binary" ] || die "$binary is not an executable"
if [ "$devnet" -eq 1 ] && [ -z "$configs" ]; then configs=deploy/devnet; fi
if [ -n "$configs" ]; then
  case $configs in /*) ;; *) configs=$repo/$configs ;; esac
  [ -d "$configs" ] || die "no config directory $configs"
fi
# Refuse a binary this host cannot run (wrong architecture, too old a glibc) before replacing
# the working one.
"$binary" --version >/dev/null || die "$binary does not run on this host"

# The mint backup (hashpool-mint-backup.service) needs the sqlite3 shell.
if ! command -v sqlite3 >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq sqlite3 >/dev/null
fi

# One system user per role: a compromised role reads neither the others' keys nor their data.
for role in "${roles[@]}"; do
  user=hashpool-$role
  if ! id -u "$user" >/dev/null 2>&1; then
    useradd --system --user-group --home-dir "/var/lib/hashpool/$role" --no-create-home \
      --shell /usr/sbin/nologin --comment "hashpool $role" "$user"
    echo "created user $user"
  fi
done

# Renamed into place: a running role keeps its old binary open, and is never left with a
# half-written one.
install -m 0755 -o root -g root "$binary" /usr/local/bin/hashpool.new
mv -f /usr/local/bin/hashpool.new /usr/local/bin/hashpool
install -m 0755 -o root -g root "$here/backup-mint.sh" /usr/local/sbin/hashpool-backup-mint

# Units go to /usr/local/lib/systemd/system, so `systemctl edit` overrides in /etc survive
# every reinstall.
install -d -m 0755 "$units"
install -m 0644 "$here"/systemd/*.service "$here"/systemd/*.timer "$units/"
if [ "$devnet" -eq 1 ]; then
  install -d -m 0755 "$units/hashpool-pool.service.d"
  install -m 0644 "$here/systemd/hashpool-pool.service.d/devnet.conf" \
    "$units/hashpool-pool.service.d/devnet.conf"
fi

# Configs are readable by their role's group only: the pool's may hold an RPC password.
install -d -m 0755 -o root -g root /etc/hashpool
for role in "${roles[@]}"; do
  dest=/etc/hashpool/$role.toml
  if [ -e "$dest" ]; then
    echo "kept $dest"
  elif [ -n "$configs" ] && [ -f "$configs/$role.toml" ]; then
    install -m 0640 -o root -g "hashpool-$role" "$configs/$role.toml" "$dest"
    echo "installed $dest (edit it before starting hashpool-$role)"
  fi
done

# systemd creates these on start too (StateDirectory=); creating them now lets the operator
# restore a backup into them before the first start.
install -d -m 0755 -o root -g root /var/lib/hashpool
for role in "${roles[@]}"; do
  [ -d "/var/lib/hashpool/$role" ] ||
    install -d -m 0750 -o "hashpool-$role" -g "hashpool-$role" "/var/lib/hashpool/$role"
done
[ -d /var/backups/hashpool-mint ] ||
  install -d -m 0700 -o hashpool-mint -g hashpool-mint /var/backups/hashpool-mint

journald_conf=/etc/systemd/journald.conf.d/hashpool.conf
new_journald=0
if [ ! -e "$journald_conf" ]; then
  install -d -m 0755 /etc/systemd/journald.conf.d
  install -m 0644 "$here/journald/hashpool.conf" "$journald_conf"
  new_journald=1
fi

if [ ! -d /run/systemd/system ]; then
  echo "systemd is not running here: skipped daemon-reload and restarts" >&2
  exit 0
fi
systemctl daemon-reload
[ "$new_journald" -eq 0 ] || systemctl restart systemd-journald
if [ "$restart" -eq 1 ]; then
  # try-restart touches only the roles that are running: stopped ones stay stopped.
  systemctl try-restart "${roles[@]/#/hashpool-}"
fi
echo "installed $(/usr/local/bin/hashpool --version)"
for role in "${roles[@]}"; do
  printf '  hashpool-%-18s %s\n' "$role" "$(systemctl is-active "hashpool-$role" || true)"
done
echo "start a role: systemctl enable --now hashpool-<role> (deploy/README.md, First start)"
