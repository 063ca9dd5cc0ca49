#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/) with clang under AddressSanitizer and
# UndefinedBehaviorSanitizer, replays every committed regression input, then
# fuzzes each target for SECONDS from its committed seed corpus with a 512 MB
# RSS limit (the board's memory) and a 10 s per-input limit (a hang); then runs
# the loaders' unit tests (model, image, image_decode, fpga_parts) under the
# same sanitizers.
# Usage: scripts/fuzz.sh [build-dir] [seconds]   (default build-fuzz, 30 s or $BUSI_FUZZ_SECONDS)
# Exits 77 (ctest's skip) when clang is not installed.
set -euo pipefail
source=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$source/build-fuzz}
seconds=${2:-${BUSI_FUZZ_SECONDS:-30}}
if ! command -v clang++ >/dev/null; then
  echo "fuzz: clang++ not found (scripts/install-deps.sh installs clang): skipped"
  exit 77
fi
mkdir -p "$build"
flags="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -fsanitize=fuzzer-no-link"
CC=clang CXX=clang++ cmake -S "$source" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBUSI_BUILD_FUZZERS=ON \
  -DBUSI_BUILD_TESTS=OFF -DBUSI_BUILD_PYTHON=OFF -DBUSI_BUILD_BENCHMARKS=OFF -DBUSI_BACKEND_CPU_REF=OFF \
  -DBUSI_FPGA_XRT=OFF -DCMAKE_C_FLAGS="$flags" -DCMAKE_CXX_FLAGS="$flags" > "$build/configure.log" 2>&1 ||
  { cat "$build/configure.log"; exit 1; }
targets=(image model hwh overlay)
cmake --build "$build" -j"$(nproc)" --target "${targets[@]/#/fuzz_}"

# A small quarantine: ASan's default 256 MB would count against the 512 MB RSS limit.
export ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=0:quarantine_size_mb=32 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
common=(-rss_limit_mb=512 -malloc_limit_mb=512 -timeout=10)
for t in "${targets[@]}"; do
  fuzzer="$build/fuzz/fuzz_$t"
  log="$build/fuzz_$t.log"
  regressions=("$source/fuzz/regressions/$t"/*)
  if [ -e "${regressions[0]}" ]; then
    if ! "$fuzzer" "${common[@]}" "${regressions[@]}" > "$log" 2>&1; then
      tail -n 60 "$log"
      echo "fuzz_$t: a committed regression input fails again"
      exit 1
    fi
    echo "fuzz_$t: ${#regressions[@]} regression inputs ran clean"
  fi
  work="$build/corpus/$t"
  mkdir -p "$work"
  if ! "$fuzzer" "${common[@]}" -max_total_time="$seconds" -print_final_stats=1 -artifact_prefix="$build/crash-$t-" \
      "$work" "$source/fuzz/corpus/$t" > "$log" 2>&1; then
    tail -n 60 "$log"
    echo "fuzz_$t: FAILED; the input is saved under $build (commit it to fuzz/regressions/$t/ with the fix)"
    exit 1
  fi
  echo "fuzz_$t: ${seconds} s clean: $(grep -E "stat::number_of_executed_units" "$log" | awk '{print $2}') inputs," \
    "peak RSS $(grep -E "stat::peak_rss_mb" "$log" | awk '{print $2}') MB"
done
echo "fuzz: all ${#targets[@]} targets ran clean"

# The loaders' unit tests under the same sanitizers.
tests=(model_test image_test image_decode_test fpga_parts_test)
cmake --build "$build" -j"$(nproc)" --target "${tests[@]/#/sanitized_}"
for t in "${tests[@]}"; do
  if ! "$build/fuzz/sanitized_$t" --gtest_brief=1 > "$build/sanitized_$t.log" 2>&1; then
    tail -n 60 "$build/sanitized_$t.log"
    echo "sanitized_$t: FAILED under AddressSanitizer/UndefinedBehaviorSanitizer"
    exit 1
  fi
  echo "sanitized_$t: $(grep -E "^\[  PASSED  \]" "$build/sanitized_$t.log") under ASan+UBSan"
done
