#!/usr/bin/env bash
# Build the offline base image (default mlops/python-base:bookworm) without a registry:
# debootstrap a minimal Debian 12 with Python 3.11 from the host's apt mirror and
# `docker import` it. Skipped when an image with the same spec label already exists.
#
# usage: scripts/build_base_image.sh [IMAGE:TAG]
# env:   DEBIAN_MIRROR (default: first URI of the host's apt sources), DEBIAN_SUITE (bookworm),
#        BUILD_DIR (default <repo>/build), DOCKER (default /usr/bin/docker when present)
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
IMAGE="${1:-mlops/python-base:bookworm}"
SUITE="${DEBIAN_SUITE:-bookworm}"
BUILD_DIR="${BUILD_DIR:-$ROOT/build}"
if [ -z "${DOCKER:-}" ]; then
  if [ -x /usr/bin/docker ]; then DOCKER=/usr/bin/docker; else DOCKER=docker; fi
fi
# python3-venv is all the images need: each image makes its own venv (pip comes from
# ensurepip's bundled wheel), so python3-pip and its build tool chain stay out.
PACKAGES="python3,python3-venv,ca-certificates"

host_mirror() {
  # deb822 sources first (URIs: ...), then one-line sources (deb URI suite ...); the first
  # Debian archive wins, security and third-party repositories are skipped.
  {
    cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '$1 == "URIs:" {print $2}'
    cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | awk '$1 == "deb" {print $2}'
  } | awk '/\/debian\/?$/ && !/security/ {print; exit}' || true
}

MIRROR="${DEBIAN_MIRROR:-$(host_mirror)}"
MIRROR="${MIRROR:-http://deb.debian.org/debian}"
SPEC="$(printf '%s|%s|%s' "$SUITE" "$PACKAGES" "v1" | sha256sum | cut -c1-16)"

if [ "$("$DOCKER" image inspect --format '{{ index .Config.Labels "org.mlops.base.spec" }}' "$IMAGE" 2>/dev/null || true)" = "$SPEC" ]; then
  echo "base image $IMAGE is up to date (spec $SPEC)"
  exit 0
fi

command -v debootstrap >/dev/null 2>&1 || PATH="$PATH:/usr/sbin:/sbin"
if ! command -v debootstrap >/dev/null 2>&1; then
  echo "debootstrap is missing: run scripts/ensure_docker.sh (it installs it) or apt-get install debootstrap" >&2
  exit 1
fi
if [ "$(id -u)" != 0 ]; then
  echo "debootstrap needs root to build $IMAGE" >&2
  exit 1
fi

ROOTFS="$BUILD_DIR/rootfs-$SUITE"
rm -rf "$ROOTFS"
mkdir -p "$ROOTFS"
trap 'rm -rf "$ROOTFS"' EXIT
echo "debootstrap $SUITE from $MIRROR with $PACKAGES"
start=$SECONDS
debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$ROOTFS" "$MIRROR" >"$BUILD_DIR/debootstrap.log" 2>&1 || {
  tail -n 30 "$BUILD_DIR/debootstrap.log" >&2
  exit 1
}
# Downloaded .debs, apt lists and docs are dead weight in every image built on top.
rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/* \
  "$ROOTFS"/usr/share/doc/* "$ROOTFS"/usr/share/man/* "$ROOTFS"/usr/share/info/*
# Images built on this base run `apt-get update` themselves; keep the mirror it came from.
echo "deb $MIRROR $SUITE main" >"$ROOTFS/etc/apt/sources.list"

tar -C "$ROOTFS" --numeric-owner -c . | "$DOCKER" import \
  -c 'ENV LANG=C.UTF-8 PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  -c 'CMD ["python3"]' \
  -c "LABEL org.mlops.base.spec=$SPEC org.opencontainers.image.description=\"Debian $SUITE minbase with Python 3 (debootstrap)\"" \
  - "$IMAGE" >/dev/null
echo "built base image $IMAGE in $((SECONDS - start)) s"
