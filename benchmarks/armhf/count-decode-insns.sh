#!/usr/bin/env bash
# Instructions of one image's read + decode + gray-area-v1 pre-processing
# (busi::load_image to 255x255) on the PYNQ-Z1's Cortex-A9, counted under
# qemu-arm -cpu cortex-a9 with insn_count_plugin.c, for one or two armhf
# builds side by side (e.g. this branch and an older revision built the same
# way), over the same images.
#
# Per image = (run with 3 repeats - run with 1 repeat) / (2 x images): the
# start-up cancels out. The probe (decode_probe.cpp) calls only load_image,
# so it builds against older revisions too (copy it and its CMake lines in).
#
# Usage: benchmarks/armhf/count-decode-insns.sh BUILD [BEFORE-BUILD]
#   BUILD dirs are armhf builds (cmake/toolchains/armhf-linux-gnueabihf.cmake)
#   with the decode_probe target; images: every 70th BUSI image (10 of 702,
#   all three classes), from $BUSI_DATA or ../shared/busi.
set -euo pipefail
cd "$(dirname "$0")/../.."
after=${1:?usage: count-decode-insns.sh BUILD [BEFORE-BUILD]}
before=${2:-}
data=${BUSI_DATA:-../shared/busi}
root=${BUSI_ARMHF_SYSROOT:-/opt/busi-armhf/sysroot}
[ -d "$data/benign" ] || { echo "count-decode-insns: BUSI images not found at $data" >&2; exit 1; }
mapfile -t images < <(find "$data" -name '*.png' | sort | awk 'NR % 70 == 1')

plugin=$(mktemp --suffix=.so)
log=$(mktemp)
trap 'rm -f "$plugin" "$log"' EXIT
cc -O2 -Wall -shared -fPIC -o "$plugin" benchmarks/armhf/insn_count_plugin.c

# count BUILD REPEATS -> instructions of the whole run
count() {
  cmake --build "$1" --target decode_probe >/dev/null
  qemu-arm -cpu cortex-a9 -L "$root" -plugin "$plugin" -d plugin -D "$log" "$1/benchmarks/armhf/decode_probe" "$2" \
    "${images[@]}" >/dev/null
  sed -n 's/^insn_count: insns=\([0-9]*\) .*/\1/p' "$log"
}
per_image() {
  local one three
  one=$(count "$1" 1)
  three=$(count "$1" 3)
  echo $(((three - one) / (2 * ${#images[@]})))
}

echo "images: ${#images[@]} BUSI PNGs (every 70th, 256x256 RGB); qemu $(qemu-arm --version | head -1 | awk '{print $3}'), -cpu cortex-a9"
echo
a=$(per_image "$after")
if [ -n "$before" ]; then
  b=$(per_image "$before")
  echo "| build | instructions / image (read + decode + pre-process) |"
  echo "|---|---|"
  echo "| $before | $(awk -v n="$b" 'BEGIN { printf "%.2f M", n / 1e6 }') |"
  echo "| $after | $(awk -v n="$a" 'BEGIN { printf "%.2f M", n / 1e6 }') |"
  echo
  awk -v a="$a" -v b="$b" 'BEGIN { printf "before / after: %.2fx fewer instructions\n", b / a }'
else
  awk -v n="$a" 'BEGIN { printf "instructions / image (read + decode + pre-process): %.2f M\n", n / 1e6 }'
fi
