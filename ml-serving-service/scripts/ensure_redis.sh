#!/usr/bin/env bash
# Make sure Debian's `redis-server` is on this machine, for the shared-state tests
# (tests/test_shared_state.py starts its own redis-server on a free port, with a password,
# in a temporary folder). Installs Debian's redis-server package when it is missing; the
# packaged service is never started. Idempotent: when it exists it only prints the version.
set -euo pipefail

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

if ! command -v redis-server >/dev/null 2>&1; then
  echo "ensure_redis: installing Debian's redis-server"
  # The package's postinst would start a system-wide redis on :6379; policy-rc.d exit 101
  # forbids that. Only add one for the install when the host has none.
  policy=/usr/sbin/policy-rc.d
  if [ ! -e "$policy" ]; then
    as_root sh -c "printf '#!/bin/sh\nexit 101\n' > $policy && chmod 755 $policy"
    trap 'as_root rm -f "$policy"' EXIT
  fi
  # Lock timeout: another apt-get (a parallel job) may hold the dpkg lock.
  apt_get=(env DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1 apt-get -q
    -o DPkg::Lock::Timeout=300)
  log="$(mktemp)"
  # Quiet on success, the whole apt output on failure.
  if ! { as_root "${apt_get[@]}" update -qq \
    && as_root "${apt_get[@]}" install -y -qq --no-install-recommends redis-server; } >"$log" 2>&1; then
    cat "$log" >&2
    rm -f "$log"
    echo "ensure_redis: installing redis-server failed (output above)" >&2
    exit 1
  fi
  rm -f "$log"
fi

echo "ensure_redis: $(redis-server --version 2>&1 | head -n 1)"
