#!/usr/bin/env bash
# Starts Debian's PostgreSQL cluster on loopback for the tests and makes their role: hashpool
# (password hashpool, loopback only), allowed to create databases — every test that needs one
# creates its own. The URL the tests use: $HASHPOOL_TEST_POSTGRES, by default
# postgresql://hashpool:hashpool@127.0.0.1:5432/postgres?sslmode=disable
# Safe to run repeatedly.
set -euo pipefail
as_postgres() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else sudo -u postgres "$@"; fi
}
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
if [ -z "$(pg_lsclusters -h)" ]; then
  version=$(find /usr/lib/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' | sort -V | tail -1)
  $sudo pg_createcluster "$version" main >/dev/null
fi
read -r version cluster port status _ < <(pg_lsclusters -h | head -1)
if [ "$status" != "online" ]; then
  $sudo pg_ctlcluster "$version" "$cluster" start
fi
for _ in $(seq 50); do
  pg_isready -q -h 127.0.0.1 -p "$port" && break
  sleep 0.2
done
pg_isready -h 127.0.0.1 -p "$port"
# Tests run mint processes in parallel, each with a pool of connections.
connections=$(as_postgres psql -p "$port" -Atc "SHOW max_connections")
if [ "$connections" -lt 400 ]; then
  as_postgres psql -p "$port" -qc "ALTER SYSTEM SET max_connections = 400"
  $sudo pg_ctlcluster "$version" "$cluster" restart
  for _ in $(seq 50); do
    pg_isready -q -h 127.0.0.1 -p "$port" && break
    sleep 0.2
  done
fi
as_postgres psql -p "$port" -v ON_ERROR_STOP=1 -q <<'SQL'
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'hashpool') THEN
    CREATE ROLE hashpool LOGIN PASSWORD 'hashpool' CREATEDB;
  END IF;
END
$$;
SQL
echo "postgresql ${version}/${cluster} ready on 127.0.0.1:${port}" >&2
