#!/usr/bin/env bash
# Installs every Debian package pkmserve needs to build, test, train and serve.
# Idempotent: prints nothing and installs nothing when everything is already there.
# Run as root on Debian bookworm (sudo is used when available otherwise).
set -euo pipefail

PACKAGES=(
  # build
  build-essential cmake ninja-build pkg-config git patch
  # C++ libraries
  libgtest-dev libgmock-dev libbenchmark-dev
  libopenblas-dev libopenblas0-pthread
  nlohmann-json3-dev libsentencepiece-dev sentencepiece
  # server (PKMSERVE_WITH_SERVER)
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler libabsl-dev
  prometheus-cpp-dev
  # python reference, training, tests (Debian's interpreter: /usr/bin/python3)
  python3 python3-torch python3-numpy python3-sentencepiece python3-pytest
  python3-matplotlib python3-grpcio python3-protobuf
  # corpora and tools
  ca-certificates openssl
  # metrics tests: promtool, a real Prometheus, and headless Chromium for the dashboard shot
  prometheus chromium fonts-dejavu-core
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
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
