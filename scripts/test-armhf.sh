#!/usr/bin/env bash
# The armhf (PYNQ-Z1 Cortex-A9) leg of the tests, in two builds:
#  1. <build>: the runtime, cpu_int with its NEON path, the fpga backend, the
#     CLIs and their tests, cross-built with cmake/toolchains/armhf-linux-gnueabihf.cmake
#     and the image decoder; every test runs through ctest under
#     qemu-arm -cpu cortex-a9.
#  2. <build>/package: what a board installs. Third-party code linked statically
#     (cmake/static_third_party.cmake), the few shared libraries that remain
#     bundled; checked for the glibc/libstdc++ versions it needs
#     (scripts/check-armhf-abi.sh), run in a root holding nothing but glibc,
#     libstdc++ and libgcc (no OpenCV, no Boost), and packed with cpack.
# Usage: scripts/test-armhf.sh [build-dir]     (default build-armhf)
# Needs crossbuild-essential-armhf and qemu-user (scripts/install-deps.sh); the
# armhf libraries come from scripts/install-armhf-deps.sh, called here.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build-armhf}
jobs=${BUSI_JOBS:-$(nproc)}
toolchain=cmake/toolchains/armhf-linux-gnueabihf.cmake
sysroot=${BUSI_ARMHF_SYSROOT:-/opt/busi-armhf/sysroot}
data=${BUSI_DATA:-../shared/busi}

./scripts/install-armhf-deps.sh
# cpu_ref (oneDNN) and the Python module are x86/host-only here: Debian has no
# use for them on the board and the sysroot does not carry their libraries.
board_options=(-DCMAKE_BUILD_TYPE=Release -DBUSI_BACKEND_CPU_INT=ON -DBUSI_BACKEND_FPGA=ON -DBUSI_BACKEND_CPU_REF=OFF
               -DBUSI_BUILD_PYTHON=OFF -DBUSI_BUILD_BENCHMARKS=OFF)
cmake -S . -B "$build" -DCMAKE_TOOLCHAIN_FILE=$toolchain "${board_options[@]}" -DBUSI_BUILD_TESTS=ON
cmake --build "$build" -j"$jobs"
ctest --test-dir "$build" --output-on-failure -j"$jobs" --timeout 900

package=$build/package
cmake -S . -B "$package" -DCMAKE_TOOLCHAIN_FILE=$toolchain "${board_options[@]}" -DBUSI_BUILD_TESTS=OFF \
  -DBUSI_STATIC_THIRD_PARTY=ON >/dev/null
cmake --build "$package" -j"$jobs"
rm -rf "$package/stage"
cmake --install "$package" --prefix "$package/stage" | grep 'bundled for the board' || true
# Each program and bundled library against PYNQ v3.0's Ubuntu 22.04 (glibc 2.35, GLIBCXX_3.4.30) ...
./scripts/check-armhf-abi.sh "$package"/stage/bin/* "$package"/stage/lib/busi-infer/*
# ... and the check can fail: PYNQ v2.7's Ubuntu 20.04 (glibc 2.31) is too old for them.
if ./scripts/check-armhf-abi.sh --max-glibc 2.31 "$package/stage/bin/busi-model" >/dev/null; then
  echo "test-armhf: check-armhf-abi.sh accepted glibc 2.31 for a Debian 12 build" >&2
  exit 1
fi

# A root with only the base system a board's image always has: if the package
# needed any other library, the loader would stop here naming it.
bare=$package/bare-root
archives=$(dirname "$sysroot")/apt/cache/archives
rm -rf "$bare" && mkdir -p "$bare"
for name in libc6 libstdc++6 libgcc-s1; do
  deb=$(ls "$archives/${name}"_*_armhf.deb 2>/dev/null | head -1)
  [ -n "$deb" ] || { echo "test-armhf: $archives has no ${name} .deb (rerun scripts/install-armhf-deps.sh)" >&2; exit 1; }
  dpkg-deb -x "$deb" "$bare"
done
if [ -d "$data/benign" ]; then
  images=("$data/normal/normal (101).png" "$data/benign/benign (1).png" "$data/malignant/malignant (1).png")
  # The package in the bare root (its default model found beside it), the
  # tested build in the full sysroot: the same answers.
  qemu-arm -cpu cortex-a9 -L "$bare" "$package/stage/bin/busi-infer" --format csv "${images[@]}" > "$package/bare.csv"
  qemu-arm -cpu cortex-a9 -L "$sysroot" "$build/tools/busi-infer" --format csv "${images[@]}" > "$package/full.csv"
  cmp "$package/bare.csv" "$package/full.csv" ||
    { echo "test-armhf: the package in a bare root and the tested build disagree" >&2; diff "$package/bare.csv" "$package/full.csv" >&2; exit 1; }
  echo "test-armhf: the package runs in a bare root (glibc, libstdc++, libgcc only):"
  cat "$package/bare.csv"
else
  echo "test-armhf: $data not found: bare-root run skipped" >&2
fi
(cd "$package" && cpack -G TGZ >/dev/null && ls "$PWD"/busi_infer-*.tar.gz)
