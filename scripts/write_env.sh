#!/usr/bin/env bash
# Write .env from .env.example: every empty KEY= line gets a random secret (hex for passwords
# and tokens, safe inside URLs, 48 characters: above MLflow's 12 for its admin; url-safe
# base64 of 32 bytes for the Fernet key), e.g. the MLflow and Airflow logins' passwords and the
# services' ORCHESTRATOR_TOKEN and CLIENT_TOKEN. An existing
# .env is kept as it is, and only keys it lacks (added to .env.example since) are appended,
# so `make env` after an upgrade never changes a secret a running stack depends on.
set -euo pipefail
cd "$(dirname "$0")/.."
umask 077

value_for() { # value_for LINE
  case "$1" in
    *FERNET_KEY=) echo "$1$(head -c 32 /dev/urandom | base64 | tr '+/' '-_')" ;;
    [A-Z]*=) echo "$1$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')" ;;
    *) echo "$1" ;;
  esac
}

if [ ! -e .env ]; then
  while IFS= read -r line || [ -n "$line" ]; do value_for "$line"; done <.env.example >.env
  echo "wrote .env with new random secrets"
  exit 0
fi
added=()
while IFS= read -r line || [ -n "$line" ]; do
  case "$line" in
    [A-Z]*=*)
      key="${line%%=*}"
      if ! grep -q "^$key=" .env; then
        value_for "$line" >>.env
        added+=("$key")
      fi
      ;;
  esac
done <.env.example
if [ "${#added[@]}" -gt 0 ]; then
  echo ".env kept; added the keys it lacked: ${added[*]}"
else
  echo ".env exists and has every key of .env.example: kept (delete it to generate new secrets)"
fi
