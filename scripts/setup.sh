#!/usr/bin/env bash
# Installs the Debian packages pkmserve needs, in two sets:
#   scripts/setup.sh serve   what building and serving needs (`make serve`)
#   scripts/setup.sh [all]   that plus what testing, training and the benchmarks need (`make test`)
#   scripts/setup.sh --list SET   prints the set's packages, one per line, and installs nothing
# Idempotent: prints nothing and installs nothing when everything is already there.
# Run as root on Debian bookworm (sudo is used when available otherwise).
set -euo pipefail

SERVE_PACKAGES=(
  # build
  build-essential cmake ninja-build pkg-config git patch
  # C++ libraries
  libopenblas-dev libopenblas0-pthread nlohmann-json3-dev libsentencepiece-dev
  # tiktoken tokenizers: the pre-tokenizer regex (\p{L}, \p{N}, possessive quantifiers)
  libpcre2-dev
  # server (PKMSERVE_WITH_SERVER)
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler libabsl-dev
  prometheus-cpp-dev
  # the OpenAI-compatible HTTP API (server/http/), llama-server's HTTP library
  libcpp-httplib-dev
  # the build rewrites the CUDA sources for HIP-CPU with a standard-library script
  python3
  ca-certificates
)
TEST_PACKAGES=(
  # C++ tests and micro-benchmarks
  libgtest-dev libgmock-dev libbenchmark-dev
  # the sanitizer and fuzz builds (make test-asan, test-fuzz): clang with libFuzzer, its
  # sanitizer runtimes and its OpenMP
  clang-14 libclang-rt-14-dev libomp-14-dev
  # python reference, training, tests (Debian's interpreter: /usr/bin/python3)
  sentencepiece python3-torch python3-numpy python3-sentencepiece python3-pytest
  python3-matplotlib python3-grpcio python3-protobuf
  openssl
  # the tiktoken reference (tests/model_loader/tiktoken_ref runs npm ci and node), the openai
  # SDK as an HTTP client (tests/server/openai_client), curl for server-sent events
  nodejs curl
  # metrics tests: promtool, a real Prometheus, and headless Chromium for the dashboard shot
  prometheus chromium fonts-dejavu-core
  # deploy/ checks: the compose file's schema, the scale-out test's gRPC proxy
  docker-compose haproxy
  # ss (the HTTP listener's backlog, tests/server/test_http_api.py)
  iproute2
)

list_only=0
if [ "${1:-}" = "--list" ]; then
  list_only=1
  shift
fi
case "${1:-all}" in
  serve) PACKAGES=("${SERVE_PACKAGES[@]}") ;;
  all) PACKAGES=("${SERVE_PACKAGES[@]}" "${TEST_PACKAGES[@]}") ;;
  *) echo "setup: unknown set '$1' (expected serve or all)" >&2; exit 2 ;;
esac
if [ $list_only -eq 1 ]; then
  printf '%s\n' "${PACKAGES[@]}"
  exit 0
fi

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
# Debian's nodejs comes without npm, NodeSource's nodejs includes it (and Provides: npm):
# ask for npm only where the command is missing.
if [ "${1:-all}" = "all" ] && ! command -v npm >/dev/null 2>&1; then
  missing+=(npm)
fi
# kubectl renders deploy/k8s (kubectl kustomize): Debian's kubernetes-client where no other
# kubectl is installed (a cloud SDK's would conflict with it).
if [ "${1:-all}" = "all" ] && ! command -v kubectl >/dev/null 2>&1; then
  missing+=(kubernetes-client)
fi
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
echo "setup: installing ${#missing[@]} Debian package(s): ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# Refresh package lists only when they are missing or a day old.
if [ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -mmin -1440 2>/dev/null | head -1)" ]; then
  $SUDO apt-get update -qq
fi
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "setup: done"
