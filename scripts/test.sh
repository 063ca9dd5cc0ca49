#!/usr/bin/env bash
# The test command: installs what is missing, builds everything, runs every test
# suite through ctest (GoogleTest, pytest, the notebook, the armhf cross build
# under qemu). Usage: scripts/test.sh [build-dir]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}

./scripts/install-deps.sh
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release
cmake --build "$build" -j"$(nproc)"
ctest --test-dir "$build" --output-on-failure -j"$(nproc)" --timeout 900
