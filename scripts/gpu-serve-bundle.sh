#!/usr/bin/env bash
# Packs what the whole server needs on the GPU machine, whose image has CUDA but no gRPC,
# Abseil, prometheus-cpp, protobuf or SentencePiece, into .gpu-serve/ (carried by the device
# tool; scripts/gpu-serve.sh runs it there):
#   bin/  pkmserve, pkm, and the version-less names the scripts call
#   lib/  libpkm_cuda.so, every shared library pkmserve and pkm link against except the CUDA
#         ones (the GPU machine's own toolkit and driver serve those), and this machine's
#         dynamic loader, so that glibc and libstdc++ come from the same build as the
#         binaries whatever the GPU machine's distribution is.
# Run after `make build` (BUILD=build by default):
#   bash scripts/gpu-serve-bundle.sh
#   run(command="bash scripts/gpu-serve.sh", carry=[".gpu-serve"])
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
OUTDIR=.gpu-serve
for f in "$BUILD/bin/pkmserve" "$BUILD/bin/pkm" "$BUILD/lib/libpkm_cuda.so"; do
  [[ -f $f ]] || { echo "gpu-serve-bundle: $f is missing: run make build first (with nvcc found, so that the CUDA plugin builds)" >&2; exit 1; }
done
rm -rf "$OUTDIR"
mkdir -p "$OUTDIR/bin" "$OUTDIR/lib"
strip_copy() {  # strip_copy SRC DESTDIR: copies without debug symbols (the carry is 64 MiB)
  cp -L "$1" "$2/"
  strip --strip-unneeded "$2/$(basename "$1")" 2>/dev/null || true
}
strip_copy "$BUILD/bin/pkmserve" "$OUTDIR/bin"
strip_copy "$BUILD/bin/pkm" "$OUTDIR/bin"
strip_copy "$BUILD/lib/libpkm_cuda.so" "$OUTDIR/lib"
# Every library the three link against, by the name they ask for (ldd's "name => path").
# CUDA's own libraries stay behind: the toolkit there matches its driver.
ldd "$BUILD/bin/pkmserve" "$BUILD/bin/pkm" "$BUILD/lib/libpkm_cuda.so" |
  awk '$2 == "=>" && $3 ~ /^\// { print $1, $3 }' | sort -u |
  while read -r name path; do
    case $name in
      libcuda.so*|libcudart.so*|libcublas*.so*|libnvidia*) continue ;;
    esac
    cp -L "$path" "$OUTDIR/lib/$name"
  done
loader=$(ldd "$BUILD/bin/pkmserve" | awk '/ld-linux/ { print $1 }')
cp -L "$loader" "$OUTDIR/lib/ld-linux.so"
grep -qx '/.gpu-serve/' "$(git rev-parse --git-path info/exclude)" 2>/dev/null ||
  echo '/.gpu-serve/' >> "$(git rev-parse --git-path info/exclude)"
size=$(du -sm "$OUTDIR" | cut -f1)
echo "gpu-serve-bundle: $OUTDIR holds $(ls "$OUTDIR/lib" | wc -l) libraries, ${size} MiB"
if (( size > 60 )); then
  echo "gpu-serve-bundle: over the device tool's 64 MiB carry with the rest of the tree" >&2
  exit 1
fi
