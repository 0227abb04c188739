#!/usr/bin/env bash
# A local certificate authority and the TLS proxy's server certificate for docker-compose.yml.
#
#   ca.crt      the CA certificate: clients trust it (mounted read-only into the containers;
#               `curl --cacert certs/ca.crt https://127.0.0.1:5000/health` on the host)
#   ca.key      the CA's private key (0600): stays on the host, signs renewed server certificates
#   server.crt  the proxy's certificate, signed by the CA; its names (SANs) are localhost,
#               127.0.0.1 and every name the containers reach each other by (SERVER_NAMES)
#   server.key  its private key (0600), mounted read-only into the proxy only
#
# usage: scripts/make_certs.sh [--force] [DIR]    (DIR: $CERTS_DIR, default certs/)
# An existing set is kept (a run is a no-op) unless --force is given, or the server
# certificate expires within 30 days or lacks a name of SERVER_NAMES: then a new server
# certificate is signed by the existing CA, so clients keep trusting it.
# The proxy runs as uid PROXY_UID (10001, the image's user): run as root (CI), this script
# gives server.key to that uid; run as another user, the key stays yours and the proxy must run
# as you, so PROXY_UID=<your uid> is added to .env when it lacks the line.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
SERVER_NAMES=(localhost proxy mlflow training serving airflow prometheus grafana)
SERVER_IPS=(127.0.0.1)
CA_DAYS=3650
# Below the 825 days browsers accept for a server certificate.
SERVER_DAYS=825
RENEW_SECONDS=$((30 * 24 * 3600))
PROXY_UID="${PROXY_UID:-10001}"

force=no
dir=""
for arg in "$@"; do
  case "$arg" in
    --force) force=yes ;;
    -h | --help) sed -n '2,19p' "$0"; exit 0 ;;
    -*) echo "unknown option: $arg (see --help)" >&2; exit 2 ;;
    *) dir="$arg" ;;
  esac
done
dir="${dir:-${CERTS_DIR:-$ROOT/certs}}"
command -v openssl >/dev/null || { echo "make_certs: openssl is missing (apt-get install openssl)" >&2; exit 1; }
mkdir -p "$dir"

server_ok() { # the server certificate exists, is signed by ca.crt, lasts 30 days, has every name
  [ -s "$dir/server.crt" ] && [ -s "$dir/server.key" ] || return 1
  openssl verify -CAfile "$dir/ca.crt" "$dir/server.crt" >/dev/null 2>&1 || return 1
  openssl x509 -in "$dir/server.crt" -noout -checkend "$RENEW_SECONDS" >/dev/null || return 1
  local sans
  sans="$(openssl x509 -in "$dir/server.crt" -noout -ext subjectAltName)"
  for name in "${SERVER_NAMES[@]}"; do grep -q "DNS:$name\(,\|$\)" <<<"$sans" || return 1; done
  for ip in "${SERVER_IPS[@]}"; do grep -q "IP Address:$ip\(,\|$\)" <<<"$sans" || return 1; done
}

have_ca=no
[ -s "$dir/ca.crt" ] && [ -s "$dir/ca.key" ] && have_ca=yes
if [ "$force" = no ] && [ "$have_ca" = yes ] && server_ok; then
  echo "make_certs: kept the certificates in $dir (--force renews them)"
  exit 0
fi

# Everything is written in a scratch folder beside the result and moved in at the end, so an
# interrupted run leaves the old set (or nothing), never half of a new one.
work="$(mktemp -d "$dir/.new.XXXXXX")"
trap 'rm -rf "$work"' EXIT
umask 077

if [ "$force" = yes ] || [ "$have_ca" = no ]; then
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$work/ca.key" 2>/dev/null
  openssl req -x509 -new -key "$work/ca.key" -sha256 -days "$CA_DAYS" \
    -subj "/O=MLOps platform/CN=MLOps local CA" \
    -addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out "$work/ca.crt"
  made_ca=yes
else
  cp "$dir/ca.key" "$dir/ca.crt" "$work/"
  made_ca=no
fi

sans=""
for name in "${SERVER_NAMES[@]}"; do sans+="DNS:$name,"; done
for ip in "${SERVER_IPS[@]}"; do sans+="IP:$ip,"; done
cat >"$work/server.ext" <<EOF
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer
subjectAltName = ${sans%,}
EOF
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$work/server.key" 2>/dev/null
openssl req -new -key "$work/server.key" -subj "/O=MLOps platform/CN=localhost" -out "$work/server.csr"
openssl x509 -req -in "$work/server.csr" -CA "$work/ca.crt" -CAkey "$work/ca.key" \
  -set_serial "0x$(openssl rand -hex 16)" -sha256 -days "$SERVER_DAYS" \
  -extfile "$work/server.ext" -out "$work/server.crt" 2>/dev/null
openssl verify -CAfile "$work/ca.crt" "$work/server.crt" >/dev/null

chmod 0600 "$work/ca.key" "$work/server.key"
chmod 0644 "$work/ca.crt" "$work/server.crt"
if [ "$(id -u)" = 0 ]; then
  chown "$PROXY_UID" "$work/server.key"
fi
for file in ca.key ca.crt server.key server.crt; do mv -f "$work/$file" "$dir/$file"; done

if [ "$(id -u)" != 0 ] && [ -f "$ROOT/.env" ] && ! grep -q '^PROXY_UID=' "$ROOT/.env"; then
  printf '\n# The TLS proxy runs as the owner of certs/server.key (scripts/make_certs.sh).\nPROXY_UID=%s\n' \
    "$(id -u)" >>"$ROOT/.env"
  echo "make_certs: added PROXY_UID=$(id -u) to .env (the proxy reads server.key as you)"
fi
what="a new server certificate signed by the existing CA"
[ "$made_ca" = yes ] && what="a new CA and server certificate"
echo "make_certs: $what in $dir (names: ${sans%,}); trust $dir/ca.crt, e.g. curl --cacert"
