#!/usr/bin/env bash
# Create one more database per name in POSTGRES_EXTRA_DATABASES (comma or space separated),
# owned by POSTGRES_USER: the stack keeps MLflow (POSTGRES_DB) and Airflow apart this way.
set -euo pipefail
extra="${POSTGRES_EXTRA_DATABASES:-}"
for db in ${extra//,/ }; do
  echo "initdb: creating database $db"
  psql -v ON_ERROR_STOP=1 --no-psqlrc --username "$POSTGRES_USER" --dbname postgres \
    --set db="$db" --set owner="$POSTGRES_USER" <<<'CREATE DATABASE :"db" OWNER :"owner";' >/dev/null
done
