#!/usr/bin/env bash
# Write .env from .env.example: every empty KEY= line gets a random secret (hex for passwords
# and tokens, safe inside URLs, 48 characters: above MLflow's 12 for its admin; url-safe
# base64 of 32 bytes for the Fernet key), e.g. the MLflow and Airflow logins' passwords and the
# services' ORCHESTRATOR_TOKEN and CLIENT_TOKEN. An existing
# .env is kept as it is, and only keys it lacks (added to .env.example since) are appended,
# so `make env` after an upgrade never changes a secret a running stack depends on.
#
# SCALE=1 (`make env SCALE=1`) then switches .env to the compose profile `scale`: it writes
# COMPOSE_PROFILES (adding `scale` to the profiles already listed), AIRFLOW_EXECUTOR,
# MLFLOW_ARTIFACTS_DESTINATION, MLFLOW_UPSTREAM, SERVING_UPSTREAM, STATE_URL (which holds
# REDIS_PASSWORD), TRAINING_UPSTREAM, TRAINING_EXECUTOR, RAY_ADDRESS, TRAINING_IMAGE (the ray
# variant) and TRAINING_DATABASE_URL (which holds TRAINING_DATABASE_PASSWORD); SCALE=0 removes
# those lines again (back to the single-node defaults).
# Unset, they are left as they are.
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

write_or_update() {
  if [ ! -e .env ]; then
    while IFS= read -r line || [ -n "$line" ]; do value_for "$line"; done <.env.example >.env
    echo "wrote .env with new random secrets"
    return
  fi
  local added=() line key
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
}

SCALE_KEYS=(COMPOSE_PROFILES AIRFLOW_EXECUTOR MLFLOW_ARTIFACTS_DESTINATION MLFLOW_UPSTREAM
  SERVING_UPSTREAM STATE_URL TRAINING_UPSTREAM TRAINING_EXECUTOR RAY_ADDRESS TRAINING_IMAGE
  TRAINING_DATABASE_URL)

without_scale_keys() { # .env without the lines of SCALE_KEYS (COMPOSE_PROFILES: only `scale`)
  local line key profiles
  while IFS= read -r line || [ -n "$line" ]; do
    key="${line%%=*}"
    if [ "$key" = COMPOSE_PROFILES ]; then
      profiles="$(tr ',' '\n' <<<"${line#*=}" | grep -vx 'scale' | paste -sd, -)" || true
      [ -z "$profiles" ] || echo "COMPOSE_PROFILES=$profiles"
    elif [[ " ${SCALE_KEYS[*]} " != *" $key "* ]]; then
      echo "$line"
    fi
  done <.env
}

set_scale() { # set_scale 1|0: write or remove the switches of the profile `scale`
  local kept profiles password training_password
  kept="$(without_scale_keys)"
  if [ "$1" = 0 ]; then
    printf '%s\n' "$kept" >.env
    echo ".env: the scale profile's switches removed (single-node stack)"
    return
  fi
  password="$(sed -n 's/^REDIS_PASSWORD=//p' .env | tail -n 1)"
  training_password="$(sed -n 's/^TRAINING_DATABASE_PASSWORD=//p' .env | tail -n 1)"
  if [ -z "$password" ] || [ -z "$training_password" ]; then
    echo "error: .env has no REDIS_PASSWORD or TRAINING_DATABASE_PASSWORD; add it (or delete" \
      ".env) and run again" >&2
    exit 1
  fi
  profiles="$(sed -n 's/^COMPOSE_PROFILES=//p' <<<"$kept" | tail -n 1)"
  kept="$(grep -v '^COMPOSE_PROFILES=' <<<"$kept" || true)"
  {
    printf '%s\n' "$kept"
    echo "COMPOSE_PROFILES=${profiles:+$profiles,}scale"
    echo "AIRFLOW_EXECUTOR=CeleryExecutor"
    echo "MLFLOW_ARTIFACTS_DESTINATION=s3://mlflow"
    echo "MLFLOW_UPSTREAM=lb:5000"
    echo "SERVING_UPSTREAM=lb:5001"
    echo "STATE_URL=redis://:$password@redis:6379/1"
    echo "TRAINING_UPSTREAM=lb:5002"
    echo "TRAINING_EXECUTOR=ray"
    echo "RAY_ADDRESS=ray-head:6379"
    echo "TRAINING_IMAGE=mlops/ml-training-service-ray:latest"
    echo "TRAINING_DATABASE_URL=postgresql+psycopg://training:$training_password@postgres:5432/training"
  } >.env
  echo ".env: the scale profile's switches written (COMPOSE_PROFILES=${profiles:+$profiles,}scale)"
}

case "${SCALE:-}" in
  "" | 1 | true | yes | 0 | false | no) ;;
  *) echo "error: SCALE=$SCALE: use SCALE=1 (profile scale) or SCALE=0 (single node)" >&2; exit 2 ;;
esac
write_or_update
case "${SCALE:-}" in
  1 | true | yes) set_scale 1 ;;
  0 | false | no) set_scale 0 ;;
esac
