#!/usr/bin/env bash
# Online backup of the mint's data dir, safe while the mint runs: every SQLite database through
# SQLite's backup API (a consistent snapshot even while the mint writes in WAL mode), each copy
# checked with PRAGMA integrity_check, plus the seed and key files. Each backup is a directory
# BACKUP_ROOT/<UTC time>, complete or absent; the newest KEEP are kept. Installed as
# /usr/local/sbin/hashpool-backup-mint; hashpool-mint-backup.timer runs it daily.
#
#   backup-mint.sh [-d DATA_DIR] [-o BACKUP_ROOT] [-k KEEP]
#   defaults: -d /var/lib/hashpool/mint -o /var/backups/hashpool-mint -k 14
#
# A backup holds mint.seed: whoever has it can sign ecash. Encrypt it before it leaves the host.
# Restore: deploy/README.md, "Backups and restore".
set -euo pipefail
umask 077

data_dir=/var/lib/hashpool/mint
backup_root=/var/backups/hashpool-mint
keep=14

die() { echo "backup-mint: $*" >&2; exit 1; }

while getopts d:o:k:h opt; do
  case $opt in
    d) data_dir=$OPTARG ;;
    o) backup_root=$OPTARG ;;
    k) keep=$OPTARG ;;
    h) sed -n '2,12p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) exit 2 ;;
  esac
done
[[ $keep =~ ^[1-9][0-9]*$ ]] || die "-k wants a positive number, not '$keep'"
[ -d "$data_dir" ] || die "no data dir $data_dir"
command -v sqlite3 >/dev/null || die "sqlite3 is missing: apt-get install sqlite3"
data_dir=$(readlink -f "$data_dir")
backup_root=$(readlink -m "$backup_root")

# SQLite may create -wal/-shm files beside the live databases; created by root they would lock
# the mint out of its own files. So the work is done as the data dir's owner.
owner=$(stat -c %U "$data_dir")
if [ "$(id -u)" -eq 0 ] && [ "$owner" != root ]; then
  install -d -m 0700 -o "$owner" -g "$(stat -c %G "$data_dir")" "$backup_root"
  exec runuser -u "$owner" -- "$(readlink -f "${BASH_SOURCE[0]}")" \
    -d "$data_dir" -o "$backup_root" -k "$keep"
fi

mkdir -p "$backup_root"
# One backup at a time: pruning and the leftovers cleanup below must not race another run.
exec 9>"$backup_root/.lock"
flock -n 9 || die "another backup into $backup_root is running"
# Left by a run that was killed; never a complete backup.
rm -rf "$backup_root"/.partial-*

stamp=$(date -u +%Y%m%dT%H%M%SZ)
[ ! -e "$backup_root/$stamp" ] || die "$backup_root/$stamp exists already"
stage=$(mktemp -d "$backup_root/.partial-$stamp.XXXXXX")
trap 'rm -rf "$stage"' EXIT

is_sqlite() { [ "$(head -c 15 "$1")" = "SQLite format 3" ]; }
sql() { sqlite3 -init /dev/null -bail "$@"; } # -init /dev/null: no ~/.sqliterc

# Snapshots database $1 of the data dir into the stage and checks the copy.
snapshot() {
  rm -f "$stage/$1" "$stage/$1-wal" "$stage/$1-shm"
  # .timeout: wait out the mint's write locks instead of failing on them.
  (cd "$stage" && sql -cmd ".timeout 30000" "$data_dir/$1" ".backup '$1'")
  local check
  check=$(sql "$stage/$1" "PRAGMA integrity_check;")
  [ "$check" = ok ] || die "integrity_check of the copy of $1: $check"
}

# The mint restarts only if the epoch ledger's current epoch has CDK's active ehash keyset (or
# none yet: a rotation cut short, which it completes).
keysets_agree() {
  local active current
  active=$(sql "$stage/mint.sqlite" "SELECT id FROM keyset WHERE unit = 'hash' AND active = 1;") ||
    die "cannot read the active keyset from the copy of mint.sqlite (schema changed?)"
  current=$(sql "$stage/epochs.sqlite" "SELECT ifnull(keyset_id, '') FROM epoch ORDER BY epoch DESC LIMIT 1;") ||
    die "cannot read the current epoch from the copy of epochs.sqlite (schema changed?)"
  [ -z "$current" ] || [ "$current" = "$active" ]
}

databases=0
copied=()
# The two ledgers cannot be snapshotted in one transaction, so the order matters. CDK's
# database (mint.sqlite) first: the mint writes a signature's epoch row before it commits the
# signature, so the later snapshot of epochs.sqlite accounts for every signature in the earlier
# one (an extra pending row is dropped when the mint starts); the other order could miss issued
# ehash. A keyset rotation between the two snapshots would leave them disagreeing on the
# current keyset: then take both again.
if [ -f "$data_dir/mint.sqlite" ] && [ -f "$data_dir/epochs.sqlite" ]; then
  for attempt in 1 2 3 4 5; do
    snapshot mint.sqlite
    snapshot epochs.sqlite
    keysets_agree && break
    [ "$attempt" -lt 5 ] || die "the snapshots of mint.sqlite and epochs.sqlite keep disagreeing on the keyset"
    echo "a keyset rotation ran between the snapshots; taking them again"
    sleep 2
  done
  copied+=(mint.sqlite epochs.sqlite)
  databases=2
fi

# Anything else: other databases by their header, so one added to the mint later is not
# missed; the seed, the authority key and any other file as they are.
shopt -s nullglob dotglob
for src in "$data_dir"/*; do
  name=${src##*/}
  case $name in
    # Done above, when both exist.
    mint.sqlite | epochs.sqlite) [ "$databases" -eq 0 ] || continue ;;
    # SQLite's own side files: the backup API already reads the committed pages they hold.
    *-wal | *-shm | *-journal) continue ;;
  esac
  [ -f "$src" ] || continue
  # The name goes into a sqlite3 dot-command.
  [[ $name =~ ^[A-Za-z0-9._-]+$ ]] || die "unexpected file name in $data_dir: $name"
  if is_sqlite "$src"; then
    snapshot "$name"
    databases=$((databases + 1))
  else
    install -m 0600 "$src" "$stage/$name"
  fi
  copied+=("$name")
done
shopt -u nullglob dotglob

for name in "${copied[@]}"; do
  if is_sqlite "$stage/$name"; then
    # A rollback-journal copy is one self-contained file that opens read-only anywhere; the
    # mint switches it back to WAL when it opens it after a restore.
    mode=$(sql "$stage/$name" "PRAGMA journal_mode=DELETE;")
    [ "$mode" = delete ] || die "cannot take the copy of $name out of WAL mode: $mode"
    chmod 0600 "$stage/$name"
    echo "database $name: integrity ok"
  else
    echo "file $name"
  fi
done
[ "$databases" -gt 0 ] || die "no SQLite database in $data_dir"
[ -f "$stage/mint.seed" ] || die "no mint.seed in $data_dir: this backup could not restore the keysets"

# For checking a copy that travelled: `sha256sum -c SHA256SUMS` in the backup directory.
(cd "$stage" && sha256sum -- "${copied[@]}" >SHA256SUMS)
chmod 0700 "$stage"
mv "$stage" "$backup_root/$stamp"
trap - EXIT
echo "backup $backup_root/$stamp"

# Names are UTC times, so the lexical order is the age order.
mapfile -t old < <(find "$backup_root" -mindepth 1 -maxdepth 1 -type d \
  -regextype posix-extended -regex '.*/[0-9]{8}T[0-9]{6}Z' | sort | head -n "-$keep")
for d in "${old[@]}"; do
  rm -rf -- "$d"
  echo "removed old backup $d"
done
