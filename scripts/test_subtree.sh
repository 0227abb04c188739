#!/usr/bin/env bash
# Run one service subtree's own Makefile targets the way it would run as a repository of its
# own: `git subtree split --prefix <subtree>` into a temporary clone, then
# `make -C <clone> <targets> VENV=<venv>` there, with nothing else from this repository.
# A subtree with uncommitted changes is tested in place instead (split sees commits only),
# so `make test` on a work in progress still tests what is on disk.
#
# usage: scripts/test_subtree.sh <subtree> <venv> [target ...]   (default target: test)
set -euo pipefail

subtree="$1"
venv="$2"
shift 2
targets=("${@:-test}")
root="$(git rev-parse --show-toplevel)"
cd "$root"

if [ -n "$(git status --porcelain -- "$subtree")" ] || ! git rev-parse -q --verify HEAD >/dev/null; then
  echo "== $subtree: uncommitted changes, testing in place (commit to test the split)"
  exec make --no-print-directory -C "$subtree" "${targets[@]}" VENV="$venv"
fi

tmp="$(mktemp -d)"
branch="subtree-check/$subtree-$$"
cleanup() {
  git branch -D -q "$branch" >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT

sha="$(git subtree split --prefix "$subtree" HEAD 2>/dev/null)"
git branch -f -q "$branch" "$sha"
git clone -q --single-branch --branch "$branch" "$root" "$tmp/$subtree"
echo "== $subtree: split at ${sha:0:12}, running '${targets[*]}' in $tmp/$subtree"
make --no-print-directory -C "$tmp/$subtree" "${targets[@]}" VENV="$venv"
