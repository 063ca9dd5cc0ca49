#!/usr/bin/env bash
# Instructions of one cpu_int inference on the PYNQ-Z1's Cortex-A9, counted
# under qemu-arm -cpu cortex-a9 with insn_count_plugin.c, and the time per
# image at 650 MHz they imply for a stated range of instructions per cycle.
# The result is an ESTIMATE, not a measurement on the board.
#
# One inference = the difference between insn_probe runs with 1, 2 and 3
# repeats, halved (start-up, model load and image decoding cancel out); the
# script checks that the two single-inference differences agree.
#
# Beside cpu_int, when the build has armnn_probe (its sysroot holds Debian's
# Arm NN: scripts/install-armhf-deps.sh --armnn), Arm NN's reference backend
# (CpuRef, the one Debian 12 ships for armhf) running the float network built
# through its graph API, counted the same way.
#
# Usage: benchmarks/armhf/count-insns.sh [armhf-build-dir] [image] [cpu_int-model]
#   (build dir from scripts/test-armhf.sh, default build-armhf; image default
#   ../shared/busi/benign/benign (1).png; model default the shipped
#   models/busi-w2a4.bqnn, what insn_probe loads without one). Prints a
#   markdown table.
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build-armhf}
image=${2:-${BUSI_DATA:-../shared/busi}/benign/benign (1).png}
model=${3:-}
root=${BUSI_ARMHF_SYSROOT:-/opt/busi-armhf/sysroot}
mhz=650
[ -f "$image" ] || { echo "count-insns: image $image not found" >&2; exit 1; }
[ -z "$model" ] || [ -f "$model" ] || { echo "count-insns: model $model not found" >&2; exit 1; }

plugin="$build/insn_count_plugin.so"
cc -O2 -Wall -shared -fPIC -o "$plugin" benchmarks/armhf/insn_count_plugin.c
cmake --build "$build" --target insn_probe >/dev/null
probe="$build/benchmarks/armhf/insn_probe"
log=$(mktemp)

armnn_probe="$build/benchmarks/armhf/armnn_probe"
cmake --build "$build" --target armnn_probe >/dev/null 2>&1 || armnn_probe=
# Arm NN finds its dynamic backends by listing a folder; a 32-bit guest's
# readdir on ext4 fails under qemu-user with EOVERFLOW (64-bit directory
# offsets), so the backend is listed from a copy on tmpfs.
backends=$(mktemp -d -p /dev/shm 2>/dev/null || mktemp -d)
trap 'rm -f "$log"; rm -rf "$backends"' EXIT
cp "$root"/usr/lib/arm-linux-gnueabihf/armnn*/Arm_CpuRef_backend.so "$backends"/ 2>/dev/null || true

# counts PROBE ENGINE REPEATS [MODEL] -> "insns simd simd_mul simd_mem scalar_mem"
counts() {
  ARMNN_BACKENDS_PATH="$backends" qemu-arm -cpu cortex-a9 -L "$root" -plugin "$plugin" -d plugin -D "$log" \
    "$1" "$2" "$3" "$image" ${4:+"$4"} >/dev/null
  sed -n 's/^insn_count: insns=\([0-9]*\) simd=\([0-9]*\) simd_mul=\([0-9]*\) simd_mem=\([0-9]*\) scalar_mem=\([0-9]*\)$/\1 \2 \3 \4 \5/p' "$log"
}

echo "image: $image; cpu_int model: ${model:-the default (models/busi-w2a4.bqnn)}; qemu $(qemu-arm --version | head -1 | awk '{print $3}'), -cpu cortex-a9"
echo
echo "| engine | instructions / image | NEON+VFP | NEON multiplies | NEON loads/stores | scalar loads/stores | est. ms at IPC 1.0 | est. ms at IPC 0.5 | NEON issue floor, ms |"
echo "|---|---|---|---|---|---|---|---|---|"
engines=("$probe scalar" "$probe neon")
if [ -n "$armnn_probe" ]; then
  engines+=("$armnn_probe CpuRef")
else
  echo "| Arm NN | not in this build (its sysroot lacks libarmnn-dev: scripts/install-armhf-deps.sh --armnn) | | | | | | | |"
fi
for engine in "${engines[@]}"; do
  read -r program kind <<<"$engine"
  isa=$kind
  model_arg=$model  # insn_probe's; Arm NN runs the float network
  [ "$program" = "$armnn_probe" ] && isa="Arm NN $kind, float" && model_arg=
  if ! ARMNN_BACKENDS_PATH="$backends" qemu-arm -cpu cortex-a9 -L "$root" "$program" "$kind" 0 "$image" ${model_arg:+"$model_arg"} >/dev/null 2>&1; then
    echo "| $isa | not available in this build | | | | | | | |"
    continue
  fi
  read -r a1 s1 x1 m1 l1 <<<"$(counts "$program" "$kind" 1 "$model_arg")"
  read -r a2 s2 x2 m2 l2 <<<"$(counts "$program" "$kind" 2 "$model_arg")"
  read -r a3 s3 x3 m3 l3 <<<"$(counts "$program" "$kind" 3 "$model_arg")"
  # The allocator's bookkeeping makes two inferences differ by a handful of
  # instructions out of hundreds of millions; more than 1e-5 means something else ran.
  d1=$((a2 - a1)) d2=$((a3 - a2))
  if [ $(( (d1 > d2 ? d1 - d2 : d2 - d1) * 100000 )) -gt "$d1" ]; then
    echo "count-insns: $isa: the second and third inference differ ($d1 vs $d2 instructions)" >&2
    exit 1
  fi
  awk -v isa="$isa" -v n=$(((a3 - a1) / 2)) -v s=$(((s3 - s1) / 2)) -v x=$(((x3 - x1) / 2)) -v m=$(((m3 - m1) / 2)) -v l=$(((l3 - l1) / 2)) -v mhz=$mhz 'BEGIN {
    # ms = instructions / (IPC * MHz * 1000); the A9 NEON unit issues at most one
    # instruction per cycle, so NEON+VFP instructions alone take >= s cycles.
    printf "| %s | %.1f M | %.1f M | %.1f M | %.1f M | %.1f M | %.0f | %.0f | %.1f |\n",
      isa, n / 1e6, s / 1e6, x / 1e6, m / 1e6, l / 1e6, n / (1.0 * mhz * 1e3), n / (0.5 * mhz * 1e3), s / (mhz * 1e3) }'
done
