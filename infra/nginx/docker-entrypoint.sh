#!/bin/sh
# Entry point of the TLS proxy image: writes the upstream overrides services.conf includes,
# then runs the command (nginx). MLFLOW_UPSTREAM, SERVING_UPSTREAM and TRAINING_UPSTREAM,
# when set, must be host:port (a compose service name and its port, e.g. lb:5001); unset or
# empty, no file is written and services.conf's defaults (mlflow:5000, serving:5001,
# training:5002) hold.
set -eu

dir=/tmp/nginx-upstreams
mkdir -p "$dir"
rm -f "$dir"/*.conf
for pair in mlflow:MLFLOW_UPSTREAM serving:SERVING_UPSTREAM training:TRAINING_UPSTREAM; do
  name="${pair%%:*}"
  variable="${pair#*:}"
  eval "value=\${$variable:-}"
  [ -n "$value" ] || continue
  if ! printf '%s' "$value" | grep -Eqx '[A-Za-z0-9][A-Za-z0-9.-]*:[0-9]{1,5}'; then
    echo "error: $variable=$value is not host:port (e.g. lb:5001)" >&2
    exit 1
  fi
  printf 'set $upstream %s;\n' "$value" >"$dir/$name.conf"
  echo "proxy: $name -> $value ($variable)"
done
exec "$@"
