#!/usr/bin/env bash
# Build the Prometheus image of the `monitoring` compose profile (infra/prometheus), tagged
# <prefix>/prometheus:<Debian package version> and :latest.
#
# Same two paths as scripts/build_images.sh: with a registry, FROM debian:bookworm-slim;
# offline, FROM the debootstrapped base (scripts/build_base_image.sh). No pip, no wheelhouse:
# the image installs Debian's prometheus package from the mirror.
#
# usage: scripts/build_prometheus_image.sh [--offline|--registry]
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BUILD_DIR="${BUILD_DIR:-$ROOT/build}"
export BUILD_DIR
PREFIX="${IMAGE_PREFIX:-mlops}"
MODE="${IMAGE_BUILD_MODE:-auto}"
REGISTRY_BASE="${REGISTRY_DEBIAN_IMAGE:-debian:bookworm-slim}"
OFFLINE_BASE="${OFFLINE_BASE_IMAGE:-$PREFIX/python-base:bookworm}"
if [ -z "${DOCKER:-}" ]; then
  if [ -x /usr/bin/docker ]; then DOCKER=/usr/bin/docker; else DOCKER=docker; fi
fi
export DOCKER DOCKER_BUILDKIT="${DOCKER_BUILDKIT:-0}"

case "${1:-}" in
  --offline) MODE=offline ;;
  --registry) MODE=registry ;;
  "") ;;
  *) echo "usage: $0 [--offline|--registry]" >&2; exit 2 ;;
esac

"$DOCKER" info >/dev/null 2>&1 || bash "$ROOT/scripts/ensure_docker.sh"
if [ "$MODE" = auto ]; then
  if "$DOCKER" image inspect "$REGISTRY_BASE" >/dev/null 2>&1 \
    || timeout 120 "$DOCKER" pull -q "$REGISTRY_BASE" >/dev/null 2>&1; then
    MODE=registry
  else
    MODE=offline
  fi
fi
if [ "$MODE" = offline ]; then
  bash "$ROOT/scripts/build_base_image.sh" "$OFFLINE_BASE"
  base="$OFFLINE_BASE"
else
  base="$REGISTRY_BASE"
fi

mkdir -p "$BUILD_DIR/logs"
log="$BUILD_DIR/logs/prometheus.log"
start=$SECONDS
echo "build_prometheus_image: $MODE build FROM $base (log: ${log#"$ROOT"/})"
if ! "$DOCKER" build --build-arg "BASE_IMAGE=$base" --tag "$PREFIX/prometheus:latest" \
  --label org.opencontainers.image.title=prometheus "$ROOT/infra/prometheus" >"$log" 2>&1; then
  echo "build_prometheus_image: build failed; end of $log:" >&2
  tail -n 40 "$log" >&2
  exit 1
fi
# The version is whatever Debian's mirror installed: read it from the image.
version="$("$DOCKER" run --rm "$PREFIX/prometheus:latest" prometheus --version 2>&1 \
  | sed -n 's/^prometheus, version \([0-9.]*\).*/\1/p')"
"$DOCKER" tag "$PREFIX/prometheus:latest" "$PREFIX/prometheus:$version"
size="$("$DOCKER" image inspect --format '{{.Size}}' "$PREFIX/prometheus:latest")"
echo "build_prometheus_image: $PREFIX/prometheus:$version in $((SECONDS - start)) s, $((size / 1000000)) MB"
