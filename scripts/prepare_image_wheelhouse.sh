#!/usr/bin/env bash
# Offline image builds install Python packages from a wheelhouse made on the host (where
# pip reaches PyPI and the local torch CPU wheel), because pip inside a build container
# cannot reach an index. The wheelhouse is kept in the user's cache,
# ${XDG_CACHE_HOME:-~/.cache}/mlops-platform/wheels/<name>/ (WHEELHOUSE_DIR overrides the
# folder), and rebuilt only when the requirements (plus extra packages) change: a sha256
# stamp records what it holds. It is then hard-linked into <context>/.wheels/ so the
# Dockerfile can COPY it.
# Outside the checkout, so a fresh clone (CI's) copies the very same files: Docker's layer
# cache of `COPY .wheels` and the venv installed from it hits. Wheels pip has to build from
# an sdist get fixed file times (SOURCE_DATE_EPOCH), so a rebuilt wheelhouse differs only
# where a requirement did.
#
# usage: scripts/prepare_image_wheelhouse.sh CONTEXT_DIR NAME [EXTRA_REQUIREMENT...]
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
CONTEXT="$1"
NAME="$2"
shift 2
EXTRAS=("$@")
PYTHON="${PYTHON:-python3}"
WHEELHOUSE="${WHEELHOUSE_DIR:-${XDG_CACHE_HOME:-${HOME:-${BUILD_DIR:-$ROOT/build}}/.cache}/mlops-platform/wheels}/$NAME"
REQUIREMENTS="$CONTEXT/requirements.txt"

stamp="$({
  sha256sum <"$REQUIREMENTS"
  printf '%s\n' "${EXTRAS[@]+"${EXTRAS[@]}"}"
  "$PYTHON" -c 'import sys; print(sys.version_info[:2])'
} | sha256sum | cut -d' ' -f1)"

if [ "$(cat "$WHEELHOUSE/.stamp" 2>/dev/null || true)" = "$stamp" ]; then
  echo "wheelhouse $NAME is up to date ($(find "$WHEELHOUSE" -type f ! -name .stamp | wc -l) files)"
else
  echo "wheelhouse $NAME: building from $REQUIREMENTS ${EXTRAS[*]+"${EXTRAS[*]}"}"
  rm -rf "$WHEELHOUSE.tmp"
  mkdir -p "$WHEELHOUSE.tmp"
  # `pip wheel` (not `pip download`) so a package published only as an sdist arrives as a
  # wheel too: the build container has no compiler and no index to fetch build backends.
  SOURCE_DATE_EPOCH=315532800 "$PYTHON" -m pip wheel --quiet --disable-pip-version-check -r "$REQUIREMENTS" \
    ${EXTRAS[@]+"${EXTRAS[@]}"} -w "$WHEELHOUSE.tmp" 2> >(grep -v 'is ignored: it is neither' >&2)
  echo "$stamp" >"$WHEELHOUSE.tmp/.stamp"
  rm -rf "$WHEELHOUSE"
  mv "$WHEELHOUSE.tmp" "$WHEELHOUSE"
fi

# Hard links: no copy of the ~GB of wheels, and unchanged files keep their content so the
# Docker layer cache of `COPY .wheels` still hits.
rm -rf "$CONTEXT/.wheels"
cp -al "$WHEELHOUSE" "$CONTEXT/.wheels" 2>/dev/null || cp -a "$WHEELHOUSE" "$CONTEXT/.wheels"
rm -f "$CONTEXT/.wheels/.stamp"
