#!/usr/bin/env bash
# Make sure Debian's `prometheus` and `promtool` are on this machine, for the monitoring
# tests (config and rule checks, and a real Prometheus scraping the real services).
# Installs Debian's prometheus package when either is missing; the packaged service is
# never started (the tests run their own prometheus on a free port).
# Idempotent: when both exist it only prints the version.
set -euo pipefail

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

if ! command -v prometheus >/dev/null 2>&1 || ! command -v promtool >/dev/null 2>&1; then
  echo "ensure_prometheus: installing Debian's prometheus"
  # The package's postinst would start a system-wide prometheus on :9090; policy-rc.d
  # exit 101 forbids that. Only add one for the install when the host has none.
  policy=/usr/sbin/policy-rc.d
  if [ ! -e "$policy" ]; then
    as_root sh -c "printf '#!/bin/sh\nexit 101\n' > $policy && chmod 755 $policy"
    trap 'as_root rm -f "$policy"' EXIT
  fi
  # Lock timeout: another apt-get (ensure_docker.sh, a parallel job) may hold the dpkg lock.
  apt_get=(env DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1 apt-get -q
    -o DPkg::Lock::Timeout=300)
  log="$(mktemp)"
  # Quiet on success, the whole apt output on failure. No recommends:
  # prometheus-node-exporter would be one more daemon nobody asked for.
  if ! { as_root "${apt_get[@]}" update -qq \
    && as_root "${apt_get[@]}" install -y -qq --no-install-recommends prometheus; } >"$log" 2>&1; then
    cat "$log" >&2
    rm -f "$log"
    echo "ensure_prometheus: installing prometheus failed (output above)" >&2
    exit 1
  fi
  rm -f "$log"
fi

echo "ensure_prometheus: $(prometheus --version 2>&1 | head -n 1)"
