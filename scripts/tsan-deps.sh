#!/usr/bin/env bash
# Builds Abseil, gRPC and cpp-httplib under ThreadSanitizer, from the Debian source packages of
# exactly the versions installed, into LIBDIR (default build-tsan-deps/lib), for `make test-tsan`.
#
# Why: TSan sees a happens-before edge only where instrumented code (or an intercepted libc
# call) makes it. Debian's gRPC, Abseil and cpp-httplib are not instrumented, so every hand-over
# inside them (completion queues, the poller, absl::Mutex, httplib's thread pool, atomics) is
# invisible and each request reads as a race between our handler and the library's threads.
# Built with -fsanitize=thread they synchronise visibly, and what TSan reports is real.
# Protobuf, OpenSSL, c-ares and re2 stay Debian's: they hand nothing across threads that gRPC
# does not already order; TSan still follows their locks, and ignore_noninstrumented_modules
# (the Makefile) keeps out reports from inside them, such as OpenSSL's own reference counts.
#
# Same sources and options as Debian's (the inline namespace absl::debian3, system protobuf,
# c-ares, re2, OpenSSL, zlib, brotli), clang-14 as `make test-tsan`. Takes 6 to 9 minutes on
# two cores the first time; a stamp per library and version makes later runs a no-op.
set -euo pipefail

LIBDIR=${1:-build-tsan-deps/lib}
mkdir -p "$LIBDIR"
LIBDIR=$(cd "$LIBDIR" && pwd)
WORK=$(dirname "$LIBDIR")/src
JOBS=${JOBS:-$(nproc)}

source_version() { dpkg-query -W -f='${source:Version}' "$1"; }
ABSL_VERSION=$(source_version libabsl-dev)
GRPC_VERSION=$(source_version libgrpc++-dev)
HTTPLIB_VERSION=$(source_version libcpp-httplib-dev)
stamp() { echo "$LIBDIR/.built-$1-$2"; }
built() { [[ -e $(stamp "$1" "$2") ]]; }
built abseil "$ABSL_VERSION" && built grpc "$GRPC_VERSION" && built cpp-httplib "$HTTPLIB_VERSION" &&
  exit 0

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
# stubs) links libprotoc; cpp-httplib's compressors need brotli's headers.
for package in dpkg-dev libprotoc-dev libbrotli-dev; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed" ||
    $SUDO apt-get install -y -qq "$package" >/dev/null
done

# Each step's output goes to a log, shown only when the step fails.
quiet() { "$@" >"$WORK/step.log" 2>&1 || { cat "$WORK/step.log" >&2; exit 1; }; }
rm -rf "$WORK"
mkdir -p "$WORK"
cd "$WORK"
# Unpacks one source package and prints its directory.
unpack() {
  quiet apt-get source "$1=$2"
  local tree
  tree=$(find . -maxdepth 1 -type d -name "$1-*" | head -1)
  [[ -d $tree ]] || { echo "tsan-deps: apt-get source gave no $1 tree" >&2; exit 1; }
  echo "$tree"
}

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

if ! built abseil "$ABSL_VERSION"; then
  echo "tsan-deps: abseil $ABSL_VERSION" >&2
  src=$(unpack abseil "$ABSL_VERSION")
  quiet cmake -S "$src" -B absl-build "${COMMON[@]}" -DBUILD_TESTING=OFF
  quiet cmake --build absl-build --parallel "$JOBS"
  keep_libraries absl-build
  touch "$(stamp abseil "$ABSL_VERSION")"
fi

# Debian's options (debian/rules), without the codegen plugins and the second, "unsecure"
# copy of the core that the server does not link.
if ! built grpc "$GRPC_VERSION"; then
  echo "tsan-deps: grpc $GRPC_VERSION" >&2
  src=$(unpack grpc "$GRPC_VERSION")
  quiet cmake -S "$src" -B grpc-build "${COMMON[@]}" \
    -DgRPC_ABSL_PROVIDER=package -DgRPC_CARES_PROVIDER=package -DgRPC_PROTOBUF_PROVIDER=package \
    -DgRPC_RE2_PROVIDER=package -DgRPC_SSL_PROVIDER=package -DgRPC_ZLIB_PROVIDER=package \
    -DgRPC_BACKWARDS_COMPATIBILITY_MODE=OFF -DgRPC_BUILD_TESTS=OFF
  quiet cmake --build grpc-build --parallel "$JOBS" --target grpc++ grpc++_reflection
  keep_libraries grpc-build
  touch "$(stamp grpc "$GRPC_VERSION")"
fi

# Debian builds the library with meson from split.py's halves of httplib.h, with poll(2)
# (debian/rules) and the options pkg-config names; one translation unit, so clang directly.
if ! built cpp-httplib "$HTTPLIB_VERSION"; then
  echo "tsan-deps: cpp-httplib $HTTPLIB_VERSION" >&2
  src=$(unpack cpp-httplib "$HTTPLIB_VERSION")
  quiet /usr/bin/python3 "$src/split.py" --out "$WORK/httplib-split"
  cmp -s "$WORK/httplib-split/httplib.h" /usr/include/httplib.h ||
    { echo "tsan-deps: cpp-httplib's split header differs from /usr/include/httplib.h" >&2; exit 1; }
  soname=$(readelf -d "$(pkg-config --variable=libdir cpp-httplib)/libcpp-httplib.so" |
           sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')
  # shellcheck disable=SC2046  # pkg-config prints several words on purpose
  quiet clang++-14 -std=c++17 $FLAGS -fPIC -shared -DCPPHTTPLIB_USE_POLL \
    $(pkg-config --cflags cpp-httplib) -I"$WORK/httplib-split" "$WORK/httplib-split/httplib.cc" \
    -o "$LIBDIR/$soname" -Wl,-soname,"$soname" \
    $(pkg-config --libs openssl zlib libbrotlidec libbrotlienc) -pthread
  touch "$(stamp cpp-httplib "$HTTPLIB_VERSION")"
fi

rm -rf "$WORK"
echo "tsan-deps: instrumented libraries in $LIBDIR" >&2
