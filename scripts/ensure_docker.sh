#!/usr/bin/env bash
# Make sure a Docker engine answers on this machine: install Debian's docker.io (and
# debootstrap, which the offline image build needs, and docker-compose) when missing, start dockerd when
# `docker info` fails, wait until it answers, print the engine version.
# Idempotent: on a machine where Docker already runs it only prints the version.
set -euo pipefail

WAIT_SECONDS="${DOCKER_WAIT_SECONDS:-60}"
DOCKERD_LOG="${DOCKERD_LOG:-/var/log/dockerd.log}"

# /usr/bin/docker (Debian's client) matches Debian's daemon; a newer client elsewhere on
# PATH also works because the API version is negotiated, but prefer the matching one.
docker_cli() {
  if [ -x /usr/bin/docker ]; then /usr/bin/docker "$@"; else docker "$@"; fi
}

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

missing=()
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || [ -x /usr/sbin/debootstrap ] || missing+=(debootstrap)
# Compose v1 (Debian's, on the system python): the README's docker-compose commands.
command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
if [ "${#missing[@]}" -gt 0 ]; then
  echo "ensure_docker: installing ${missing[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if ! docker_cli info >/dev/null 2>&1; then
  echo "ensure_docker: starting dockerd (log: $DOCKERD_LOG)"
  # setsid: the daemon must outlive the shell (and CI step) that started it.
  as_root setsid dockerd >"$DOCKERD_LOG" 2>&1 < /dev/null &
  deadline=$((SECONDS + WAIT_SECONDS))
  until docker_cli info >/dev/null 2>&1; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "ensure_docker: dockerd did not answer within ${WAIT_SECONDS}s; last log lines:" >&2
      tail -n 20 "$DOCKERD_LOG" >&2 || true
      exit 1
    fi
    sleep 1
  done
fi

echo "ensure_docker: engine $(docker_cli version --format '{{.Server.Version}} (API {{.Server.APIVersion}})')"
