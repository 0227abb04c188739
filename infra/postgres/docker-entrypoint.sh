#!/usr/bin/env bash
# Entry point of the PostgreSQL image, with the official image's environment contract:
#   POSTGRES_PASSWORD (required on first start), POSTGRES_USER (default postgres, superuser),
#   POSTGRES_DB (default = POSTGRES_USER), POSTGRES_INITDB_ARGS,
#   /docker-entrypoint-initdb.d/*.sh|*.sql run once, on an empty data directory;
#   and POSTGRES_OWNED_DATABASES (+ <NAME>_DATABASE_PASSWORD) at every start.
set -Eeuo pipefail

: "${POSTGRES_USER:=postgres}"
: "${POSTGRES_DB:=$POSTGRES_USER}"
export POSTGRES_USER POSTGRES_DB

if [ "${1:-}" != "postgres" ]; then
  exec "$@"
fi

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  if [ -z "${POSTGRES_PASSWORD:-}" ]; then
    echo "error: the database is uninitialized and POSTGRES_PASSWORD is not set; set it (e.g. in .env)" >&2
    exit 1
  fi
  pwfile="$(mktemp)"
  printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
  # shellcheck disable=SC2086 # POSTGRES_INITDB_ARGS is a word list on purpose.
  initdb --username="$POSTGRES_USER" --pwfile="$pwfile" --auth-local=trust \
    --auth-host=scram-sha-256 --encoding=UTF8 ${POSTGRES_INITDB_ARGS:-} -D "$PGDATA" >/dev/null
  rm -f "$pwfile"
  {
    echo "host all all 0.0.0.0/0 scram-sha-256"
    echo "host all all ::/0 scram-sha-256"
  } >>"$PGDATA/pg_hba.conf"

  # Initialise on the Unix socket only: the healthcheck (TCP) stays red until this is done.
  pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start >/dev/null
  psql_admin=(psql -v ON_ERROR_STOP=1 --no-psqlrc --username "$POSTGRES_USER" --dbname postgres)
  if [ "$POSTGRES_DB" != "postgres" ]; then
    "${psql_admin[@]}" --set db="$POSTGRES_DB" <<<'CREATE DATABASE :"db";' >/dev/null
  fi
  for f in /docker-entrypoint-initdb.d/*; do
    case "$f" in
      *.sh) echo "initdb: running $f"; bash "$f" ;;
      *.sql) echo "initdb: running $f"; "${psql_admin[@]}" --dbname "$POSTGRES_DB" -f "$f" ;;
      *) ;;
    esac
  done
  pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
  echo "initdb: database cluster ready (user $POSTGRES_USER, database $POSTGRES_DB)"
fi

# POSTGRES_OWNED_DATABASES (e.g. training): each a database owned by its own login role,
# made or brought up to date at every start (ensure-owned-databases.sh), also on a data
# directory initialised before the variable was set. Unix socket only, as above.
if [ -n "${POSTGRES_OWNED_DATABASES:-}" ]; then
  pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start >/dev/null
  ensure-owned-databases.sh
  pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
fi

exec postgres -c listen_addresses='*' "${@:2}"
