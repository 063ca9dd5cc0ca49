#!/usr/bin/env bash
# The threaded paths under ThreadSanitizer: busi-infer --threads 2 (one
# classifier per thread, shared model, shared result table) on a subset of the
# BUSI images, and the fpga backend against the emulated board (a second thread
# answering the DMAs). Not part of ctest: a TSan build of everything takes
# longer than CI's budget for it. Usage: scripts/tsan.sh [build-dir] [images]
set -euo pipefail
source=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$source/build-tsan}
images=${2:-${BUSI_DATA:-$source/../shared/busi}}
command -v clang++ >/dev/null || { echo "tsan: clang++ not found: skipped"; exit 77; }
mkdir -p "$build"
flags="-fsanitize=thread -fno-omit-frame-pointer -g"
CC=clang CXX=clang++ cmake -S "$source" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBUSI_BUILD_PYTHON=OFF \
  -DBUSI_BUILD_BENCHMARKS=OFF -DBUSI_BACKEND_CPU_REF=OFF -DBUSI_FPGA_XRT=OFF \
  -DCMAKE_C_FLAGS="$flags" -DCMAKE_CXX_FLAGS="$flags" > "$build/configure.log" 2>&1 || { cat "$build/configure.log"; exit 1; }
cmake --build "$build" -j"$(nproc)" --target busi-infer fpga_emulator_test
export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:suppressions=$source/scripts/tsan.supp"
subset=$(mktemp -d)
trap 'rm -rf "$subset"' EXIT
for class in normal benign malignant; do
  mkdir -p "$subset/$class"
  find "$images/$class" -name '*.png' ! -name '*mask*' 2>/dev/null | sort | sed -n 1,8p | while read -r f; do cp "$f" "$subset/$class/"; done
done
"$build/tools/busi-infer" --no-progress --threads 2 --batch 3 "$subset" | tail -n 3
"$build/tests/fpga_emulator_test" --gtest_filter='FpgaEmulator.LogitsEqualCpuIntForBatchesOf1_7And64:FpgaFaults.*' --gtest_brief=1
echo "tsan: no data race reported"
