#!/usr/bin/env bash
# Make each database in POSTGRES_OWNED_DATABASES (comma or space separated) exist with a login
# role of the same name that owns it and nothing else (no superuser, no CREATEDB/CREATEROLE),
# its password from <NAME>_DATABASE_PASSWORD (e.g. TRAINING_DATABASE_PASSWORD): the training
# service's Postgres job store gets the role and database `training` this way. Other roles
# cannot connect to it, and the role cannot connect to the other databases (CONNECT and
# TEMPORARY are revoked from PUBLIC on every database; owners and the superuser keep theirs).
# Run by docker-entrypoint.sh at every start, on the Unix socket before the server listens on
# TCP: idempotent, and a password changed in .env is applied at the next start. Passwords are
# read by psql from the environment (\getenv), never put on a command line.
set -euo pipefail
owned="${POSTGRES_OWNED_DATABASES:-}"
psql_admin=(psql -v ON_ERROR_STOP=1 --no-psqlrc --quiet --username "$POSTGRES_USER" --dbname postgres)
names=()
for name in ${owned//,/ }; do
  if ! [[ "$name" =~ ^[a-z_][a-z0-9_]*$ ]]; then
    echo "error: POSTGRES_OWNED_DATABASES: '$name' is not a lower-case SQL name" >&2
    exit 1
  fi
  variable="$(tr '[:lower:]' '[:upper:]' <<<"$name")_DATABASE_PASSWORD"
  if [ -z "${!variable:-}" ]; then
    echo "error: POSTGRES_OWNED_DATABASES names $name but $variable is not set; set it (e.g. in .env)" >&2
    exit 1
  fi
  names+=("$name")
  # A failing statement would otherwise be logged with its text (the password).
  "${psql_admin[@]}" --set name="$name" >/dev/null <<SQL
SET log_min_error_statement = panic;
SET log_statement = none;
\getenv password $variable
SELECT format('CREATE ROLE %I LOGIN', :'name')
  WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'name') \gexec
ALTER ROLE :"name" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS
  PASSWORD :'password';
SELECT format('CREATE DATABASE %I OWNER %I', :'name', :'name')
  WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'name') \gexec
ALTER DATABASE :"name" OWNER TO :"name";
SQL
  echo "postgres: database $name owned by role $name (password from $variable)"
done
[ "${#names[@]}" -gt 0 ] || exit 0
# CONNECT and TEMPORARY only for owners (and the superuser), on every database.
"${psql_admin[@]}" >/dev/null <<'SQL'
SELECT format('REVOKE CONNECT, TEMPORARY ON DATABASE %I FROM PUBLIC', datname)
  FROM pg_database WHERE NOT datistemplate \gexec
SQL
