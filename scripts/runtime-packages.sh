#!/usr/bin/env bash
# Prints the Debian packages whose shared libraries the given binaries load, one per line,
# sorted: what a runtime image must install to run what the build image built
# (deploy/docker/Dockerfile). A library no package owns (e.g. the CUDA toolkit's under
# /usr/local/cuda) is named on stderr and fails the script, unless it is under a directory
# given with --allow-unowned DIR.
#   scripts/runtime-packages.sh build/bin/pkmserve build/bin/pkm build/lib/libpkm_sentencepiece.so
set -euo pipefail

allowed=()
files=()
while [ $# -gt 0 ]; do
  case "$1" in
    --allow-unowned) allowed+=("$2"); shift 2 ;;
    *) files+=("$1"); shift ;;
  esac
done
[ ${#files[@]} -gt 0 ] || { echo "usage: $0 [--allow-unowned DIR] BINARY..." >&2; exit 2; }

# The package owning a path; bookworm's merged /usr means dpkg may know it by either name.
owner() {
  local path=$1 alt
  case "$path" in
    /usr/*) alt=${path#/usr} ;;
    *) alt=/usr$path ;;
  esac
  for p in "$path" "$alt" "$(readlink -f "$path")"; do
    if out=$(dpkg-query -S "$p" 2>/dev/null); then
      echo "${out%%:*}" | cut -d, -f1
      return 0
    fi
  done
  return 1
}

libs=$(for f in "${files[@]}"; do
  ldd "$f" | awk '$2 == "=>" && $3 ~ /^\// {print $3}'
done | sort -u)
{
  status=0
  for lib in $libs; do
    if pkg=$(owner "$lib"); then
      echo "${pkg%:*}"
      continue
    fi
    ok=0
    for dir in "${allowed[@]}"; do
      case "$lib" in "$dir"/*) ok=1 ;; esac
    done
    if [ $ok -eq 0 ]; then
      echo "runtime-packages: no Debian package owns $lib" >&2
      status=1
    fi
  done
  exit $status
} | sort -u
exit "${PIPESTATUS[0]}"
