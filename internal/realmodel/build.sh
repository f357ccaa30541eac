#!/usr/bin/env bash
# Builds the real model server the tests use, and the model it serves:
#   - the `ollama` binary, from the Go module proxy at the version go.mod
#     pins (cgo; its vendored ggml CPU backend; no cmake);
#   - gemma3-tiny-vision.gguf, a random-weight Gemma 3 vision model (main.go).
# Both are cached outside the repo, so a second run does no work:
#   ${FORESIGHT_CACHE:-$HOME/.cache/foresight}/realmodel/
#     ollama-<version>-<goos>-<goarch>-<recipe>/ollama  keyed by Ollama's version
#     gemma3-tiny-<hash>/gemma3-tiny-vision.gguf         keyed by a hash of main.go, go.mod, go.sum
#     include/malgo-<version>/miniaudio/miniaudio.h      a header the build needs
#
# Usage: build.sh [--env FILE]
# On success it prints FORESIGHT_OLLAMA_BIN='...' and FORESIGHT_OLLAMA_MODEL='...'
# on stdout (and writes them to FILE; single-quoted, so a shell can source it). Where it cannot build (no Go, no C++
# compiler, headers missing and no way to install them) it exits 1 with one
# line on stderr saying why, and writes FORESIGHT_OLLAMA_UNAVAILABLE=<why> to
# FILE, so the tests that need the server can say why they skip.
#
# Debian packages it needs (installed only when missing, and only as root
# with apt-get): g++, nlohmann-json3-dev, libstb-dev. The third missing
# header, miniaudio.h, comes from the Go module github.com/gen2brain/malgo:
# Go module zips leave out vendor/ folders, which is where Ollama keeps all
# three.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache=${FORESIGHT_CACHE:-$HOME/.cache/foresight}/realmodel
GO=${GO:-go}
env_file=""
while [ $# -gt 0 ]; do
  case $1 in
    --env) env_file=$2; shift 2;;
    *) echo "usage: $0 [--env FILE]" >&2; exit 2;;
  esac
done

# Relative to where we were called from, not to here.
case $env_file in ""|/*) ;; *) env_file=$PWD/$env_file;; esac

say() { echo "realmodel: $*" >&2; }

# fail writes the reason where the tests will read it and stops.
fail() {
  echo "realmodel: cannot build the model server: $*" >&2
  if [ -n "$env_file" ]; then
    mkdir -p "$(dirname "$env_file")"
    local why=$*
    printf "FORESIGHT_OLLAMA_UNAVAILABLE='%s'\n" "${why//\'/}" >"$env_file"
  fi
  exit 1
}

command -v "$GO" >/dev/null 2>&1 || fail "no Go toolchain ($GO) on PATH"
cd "$here"
export GOWORK=off

module_version() { awk -v m="$1" '$1 == m { print $2 }' go.mod; }
ollama_version=$(module_version github.com/ollama/ollama)
malgo_version=$(module_version github.com/gen2brain/malgo)
[ -n "$ollama_version" ] && [ -n "$malgo_version" ] || fail "go.mod in $here pins no ollama or malgo version"

goos=$("$GO" env GOOS)
goarch=$("$GO" env GOARCH)
model_hash=$(cat main.go go.mod go.sum | sha256sum | cut -c1-12)
# Bump recipe when the way the binary is built (flags, headers) changes:
# the binary's cache key holds no hash of this script, so that editing it
# does not cost a rebuild.
recipe=r1
bin_dir=$cache/ollama-$ollama_version-$goos-$goarch-$recipe
model_dir=$cache/gemma3-tiny-$model_hash
bin=$bin_dir/ollama
model=$model_dir/gemma3-tiny-vision.gguf

mkdir -p "$cache" || fail "cannot create the cache folder $cache"
# One build at a time per cache (two checkouts running make check at once
# would otherwise both spend minutes building the same binary).
if command -v flock >/dev/null 2>&1; then
  exec 9>"$cache/.lock"
  flock 9
fi

# missing_debs names the Debian packages whose files the build lacks.
missing_debs() {
  local missing=""
  command -v gcc >/dev/null 2>&1 && command -v g++ >/dev/null 2>&1 || missing="$missing g++"
  [ -f /usr/include/nlohmann/json.hpp ] || missing="$missing nlohmann-json3-dev"
  [ -f /usr/include/stb/stb_image.h ] || missing="$missing libstb-dev"
  echo "$missing"
}

build_ollama() {
  local missing
  missing=$(missing_debs)
  if [ -n "$missing" ]; then
    if [ "$(id -u)" != 0 ]; then
      fail "missing Debian packages:$missing (not root, so not installing them)"
    elif ! command -v apt-get >/dev/null 2>&1; then
      fail "missing Debian packages:$missing (no apt-get here)"
    fi
    say "installing:$missing"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing; } >/dev/null \
      || fail "apt-get install$missing failed"
    missing=$(missing_debs)
    [ -z "$missing" ] || fail "still missing after apt-get:$missing"
  fi

  # miniaudio.h, into a folder named miniaudio/ on CPATH. A fixed path, so
  # the Go build cache sees the same flags on every run.
  local inc=$cache/include/malgo-$malgo_version
  if [ ! -f "$inc/miniaudio/miniaudio.h" ]; then
    local malgo_dir
    "$GO" mod download github.com/gen2brain/malgo >/dev/null 2>&1 || fail "go mod download github.com/gen2brain/malgo@$malgo_version failed"
    malgo_dir=$("$GO" list -m -f '{{.Dir}}' github.com/gen2brain/malgo) || fail "cannot find the malgo module"
    mkdir -p "$inc/miniaudio"
    install -m 0644 "$malgo_dir/miniaudio.h" "$inc/miniaudio/miniaudio.h.tmp"
    mv "$inc/miniaudio/miniaudio.h.tmp" "$inc/miniaudio/miniaudio.h"
  fi

  say "building ollama $ollama_version from the Go module proxy (cgo, low priority; minutes when cold, about one with a warm Go build cache)"
  mkdir -p "$bin_dir"
  local start=$SECONDS tmp=$bin_dir/ollama.tmp.$$
  if ! CGO_ENABLED=1 CPATH="$inc${CPATH:+:$CPATH}" nice -n 19 "$GO" build \
      -ldflags "-s -w -X github.com/ollama/ollama/version.Version=${ollama_version#v}" \
      -o "$tmp" github.com/ollama/ollama >"$bin_dir/build.log" 2>&1; then
    rm -f "$tmp"
    tail -n 20 "$bin_dir/build.log" >&2
    fail "go build github.com/ollama/ollama@$ollama_version failed (log: $bin_dir/build.log)"
  fi
  mv "$tmp" "$bin"
  say "built $bin in $((SECONDS - start)) s ($(du -m "$bin" | cut -f1) MB)"
}

write_model() {
  say "writing the random-weight Gemma 3 vision model"
  mkdir -p "$model_dir"
  local tmp=$model_dir/gemma3-tiny-vision.gguf.tmp.$$
  if ! nice -n 10 "$GO" run . -out "$tmp"; then
    rm -f "$tmp"
    fail "writing the model failed (go run in $here)"
  fi
  mv "$tmp" "$model"
  say "model at $model"
}

if [ -x "$bin" ]; then say "reusing $bin"; else build_ollama; fi
if [ -f "$model" ]; then say "reusing $model"; else write_model; fi

out=$(printf "FORESIGHT_OLLAMA_BIN='%s'\nFORESIGHT_OLLAMA_MODEL='%s'\n" "$bin" "$model")
if [ -n "$env_file" ]; then
  mkdir -p "$(dirname "$env_file")"
  echo "$out" >"$env_file"
fi
echo "$out"
