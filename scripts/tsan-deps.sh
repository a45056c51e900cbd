#!/usr/bin/env bash
# Builds Abseil and gRPC under ThreadSanitizer, from the Debian source packages of exactly the
# versions installed, into LIBDIR (default build-tsan-deps/lib), for `make test-tsan`.
#
# Why: TSan sees a happens-before edge only where instrumented code (or an intercepted libc
# call) makes it. Debian's gRPC and Abseil are not instrumented, so every hand-over inside gRPC
# (completion queues, the poller, absl::Mutex, atomics) is invisible and each RPC reads as a
# race between our handler and gRPC's threads. Built with -fsanitize=thread they synchronise
# visibly, and what TSan reports is real. Protobuf, OpenSSL, c-ares and re2 stay Debian's: they
# hand nothing across threads that gRPC does not already order.
#
# Same sources and options as Debian's (the inline namespace absl::debian3, system protobuf,
# c-ares, re2, OpenSSL, zlib), clang-14 as `make test-tsan`. Takes about 40 minutes on two
# cores the first time; a stamp naming the versions makes later runs a no-op.
set -euo pipefail

LIBDIR=${1:-build-tsan-deps/lib}
mkdir -p "$LIBDIR"
LIBDIR=$(cd "$LIBDIR" && pwd)
WORK=$(dirname "$LIBDIR")/src
JOBS=${JOBS:-$(nproc)}

source_version() { dpkg-query -W -f='${source:Version}' "$1"; }
ABSL_VERSION=$(source_version libabsl-dev)
GRPC_VERSION=$(source_version libgrpc++-dev)
STAMP="$LIBDIR/.built abseil=$ABSL_VERSION grpc=$GRPC_VERSION"
[[ -e $STAMP ]] && exit 0

SUDO=""
[[ $(id -u) -ne 0 ]] && SUDO=sudo
# apt-get source needs the source index; Debian's mirror serves it beside the binaries.
if ! grep -rqs "deb-src" /etc/apt/sources.list /etc/apt/sources.list.d/; then
  echo "tsan-deps: adding bookworm's deb-src index" >&2
  $SUDO tee /etc/apt/sources.list.d/pkmserve-deb-src.sources >/dev/null <<'EOF'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  $SUDO apt-get update -qq
fi
# dpkg-source unpacks and patches the sources; gRPC's codegen (the reflection service's
# stubs) links libprotoc.
for package in dpkg-dev libprotoc-dev; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed" ||
    $SUDO apt-get install -y -qq "$package" >/dev/null
done

# Each step's output goes to a log, shown only when the step fails.
quiet() { "$@" >"$WORK/step.log" 2>&1 || { cat "$WORK/step.log" >&2; exit 1; }; }
rm -rf "$WORK"
mkdir -p "$WORK"
cd "$WORK"
quiet apt-get source "abseil=$ABSL_VERSION" "grpc=$GRPC_VERSION"
ABSL_SRC=$(find . -maxdepth 1 -type d -name 'abseil-*' | head -1)
GRPC_SRC=$(find . -maxdepth 1 -type d -name 'grpc-*' | head -1)
[[ -d $ABSL_SRC && -d $GRPC_SRC ]] || { echo "tsan-deps: apt-get source gave no abseil or grpc tree" >&2; exit 1; }

# Line tables are enough for TSan's stacks and keep the build small. No RUNPATH in the
# libraries: the test binaries' DT_RPATH (make test-tsan) then decides every look-up, so
# libgrpc++ finds the instrumented libgrpc and libabsl_* too, not Debian's.
FLAGS="-fsanitize=thread -O1 -gline-tables-only -fno-omit-frame-pointer"
COMMON=(-G Ninja -DCMAKE_BUILD_TYPE=None -DCMAKE_C_COMPILER=clang-14 -DCMAKE_CXX_COMPILER=clang++-14
  "-DCMAKE_C_FLAGS=$FLAGS" "-DCMAKE_CXX_FLAGS=$FLAGS" -DCMAKE_CXX_STANDARD=17
  -DBUILD_SHARED_LIBS=ON -DCMAKE_SKIP_BUILD_RPATH=ON)
# Only the shared libraries are kept: the headers and CMake packages stay Debian's, which
# come from these same sources, so the binaries build against them and load these.
keep_libraries() { find "$1" -name "lib*.so*" \( -type f -o -type l \) -exec cp -a {} "$LIBDIR/" \; ; }

echo "tsan-deps: abseil $ABSL_VERSION" >&2
quiet cmake -S "$ABSL_SRC" -B absl-build "${COMMON[@]}" -DBUILD_TESTING=OFF
quiet cmake --build absl-build --parallel "$JOBS"
keep_libraries absl-build

# Debian's options (debian/rules), without the codegen plugins and the second, "unsecure"
# copy of the core that the server does not link.
echo "tsan-deps: grpc $GRPC_VERSION" >&2
quiet cmake -S "$GRPC_SRC" -B grpc-build "${COMMON[@]}" \
  -DgRPC_ABSL_PROVIDER=package -DgRPC_CARES_PROVIDER=package -DgRPC_PROTOBUF_PROVIDER=package \
  -DgRPC_RE2_PROVIDER=package -DgRPC_SSL_PROVIDER=package -DgRPC_ZLIB_PROVIDER=package \
  -DgRPC_BACKWARDS_COMPATIBILITY_MODE=OFF -DgRPC_BUILD_TESTS=OFF
quiet cmake --build grpc-build --parallel "$JOBS" --target grpc++ grpc++_reflection
keep_libraries grpc-build

rm -rf "$WORK"
touch "$STAMP"
echo "tsan-deps: instrumented libraries in $LIBDIR" >&2
