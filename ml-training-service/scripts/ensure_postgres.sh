#!/usr/bin/env bash
# Make sure PostgreSQL's server binaries (initdb, pg_ctl, postgres) are on this machine, for
# the Postgres job-store tests (they initdb a throw-away cluster on a free port).
# Installs Debian's postgresql package when they are missing; the packaged service is never
# started (policy-rc.d), the tests run their own server. Idempotent: when the binaries exist
# it only prints the version.
set -euo pipefail

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

find_initdb() {
  command -v initdb 2>/dev/null && return 0
  ls -1d /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -n 1
}

if [ -z "$(find_initdb)" ]; then
  echo "ensure_postgres: installing Debian's postgresql"
  # The package's postinst would create and start a system-wide cluster on :5432;
  # policy-rc.d exit 101 forbids starting it. Only add one when the host has none.
  policy=/usr/sbin/policy-rc.d
  if [ ! -e "$policy" ]; then
    as_root sh -c "printf '#!/bin/sh\nexit 101\n' > $policy && chmod 755 $policy"
    trap 'as_root rm -f "$policy"' EXIT
  fi
  # Lock timeout: another apt-get (a parallel ensure_*.sh) may hold the dpkg lock.
  apt_get=(env DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1 apt-get -q
    -o DPkg::Lock::Timeout=300)
  log="$(mktemp)"
  # Quiet on success, the whole apt output on failure.
  if ! { as_root "${apt_get[@]}" update -qq \
    && as_root "${apt_get[@]}" install -y -qq --no-install-recommends postgresql; } >"$log" 2>&1; then
    cat "$log" >&2
    rm -f "$log"
    echo "ensure_postgres: installing postgresql failed (output above)" >&2
    exit 1
  fi
  rm -f "$log"
fi

initdb="$(find_initdb)"
if [ -z "$initdb" ]; then
  echo "ensure_postgres: initdb still not found after installing postgresql" >&2
  exit 1
fi
echo "ensure_postgres: $("$initdb" --version)"
