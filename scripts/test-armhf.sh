#!/usr/bin/env bash
# The armhf (PYNQ-Z1 Cortex-A9) leg of the tests: cross-builds the runtime,
# cpu_int with its NEON path, the fpga backend, the CLIs and their tests with
# cmake/toolchains/armhf-linux-gnueabihf.cmake, runs every test through ctest
# under qemu-arm -cpu cortex-a9, checks the glibc/libstdc++ versions the
# shipped binaries need (scripts/check-armhf-abi.sh) and packs them (cpack).
# Usage: scripts/test-armhf.sh [build-dir]     (default build-armhf)
# Needs crossbuild-essential-armhf and qemu-user (scripts/install-deps.sh); the
# armhf libraries come from scripts/install-armhf-deps.sh, called here.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build-armhf}
jobs=${BUSI_JOBS:-$(nproc)}

./scripts/install-armhf-deps.sh
# cpu_ref (oneDNN) and the Python module are x86/host-only here: Debian has no
# use for them on the board and the sysroot does not carry their libraries.
cmake -S . -B "$build" -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/armhf-linux-gnueabihf.cmake \
  -DCMAKE_BUILD_TYPE=Release -DBUSI_BACKEND_CPU_INT=ON -DBUSI_BACKEND_FPGA=ON -DBUSI_BACKEND_CPU_REF=OFF -DBUSI_BUILD_PYTHON=OFF \
  -DBUSI_BUILD_BENCHMARKS=OFF -DBUSI_BUILD_TESTS=ON
cmake --build "$build" -j"$jobs"
ctest --test-dir "$build" --output-on-failure -j"$jobs" --timeout 900
# What a board gets: the installed programs, checked against the board image's
# glibc and libstdc++, then packed.
rm -rf "$build/stage"
cmake --install "$build" --prefix "$build/stage" >/dev/null
./scripts/check-armhf-abi.sh "$build"/stage/bin/*
# ... and the check can fail: PYNQ v2.7's Ubuntu 20.04 (glibc 2.31) is too old for them.
if ./scripts/check-armhf-abi.sh --max-glibc 2.31 "$build/stage/bin/busi-model" >/dev/null; then
  echo "test-armhf: check-armhf-abi.sh accepted glibc 2.31 for a Debian 12 build" >&2
  exit 1
fi
(cd "$build" && cpack -G TGZ >/dev/null && ls busi_infer-*.tar.gz)
