#!/usr/bin/env bash
# Copies the build dependencies the GPU machine's image lacks (nlohmann/json's header and
# googletest's sources, from this machine's Debian packages) into .gpu-deps/, which the device
# tool carries (`carry: [".gpu-deps"]`) and scripts/gpu-check.sh passes to CMake.
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf .gpu-deps
mkdir -p .gpu-deps/include
cp -r /usr/include/nlohmann .gpu-deps/include/
cp -r /usr/src/googletest .gpu-deps/googletest
grep -qx '/.gpu-deps/' .git/info/exclude 2>/dev/null || echo '/.gpu-deps/' >> "$(git rev-parse --git-path info/exclude)"
du -sh .gpu-deps
