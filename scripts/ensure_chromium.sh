#!/usr/bin/env bash
# Make sure Debian's Chromium is at /usr/bin/chromium, for the browser smoke test and
# `make screenshots` (Playwright drives it by path: its own browser download fails offline).
# Idempotent: when /usr/bin/chromium exists it only prints the version.
set -euo pipefail

CHROMIUM="${CHROMIUM_PATH:-/usr/bin/chromium}"

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

if [ ! -x "$CHROMIUM" ]; then
  echo "ensure_chromium: installing Debian's chromium"
  # Lock timeout: another apt-get (ensure_docker.sh, a parallel job) may hold the dpkg lock.
  apt_get=(env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300)
  as_root "${apt_get[@]}" update -qq
  as_root "${apt_get[@]}" install -y -qq --no-install-recommends chromium fonts-liberation >/dev/null
fi

# --headless: `chromium --version` must not need a display or a profile.
echo "ensure_chromium: $("$CHROMIUM" --headless --no-sandbox --version 2>/dev/null || echo "$CHROMIUM")"
