#!/usr/bin/env bash
# busi-infer --backend fpga against pynq-emu running as its own process, as a
# board user would run it: the shipped overlay description (copied, with the
# emulator's stand-in .hwh/.bit), the default model, --verify cpu_int.
# Usage: fpga_cli_test.sh BUSI-INFER PYNQ-EMU SOURCE-DIR DATA-DIR
set -euo pipefail
busi_infer=$1 pynq_emu=$2 source=$3 data=$4
work=$(mktemp -d)
emu_pid=""
cleanup() {
  if [ -n "$emu_pid" ]; then kill "$emu_pid" 2>/dev/null || true; wait "$emu_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

cp -r "$source/overlays/busi-w2a4" "$work/overlay"
mkdir "$work/images"
if [ -d "$data/benign" ]; then
  # The first image of each class (BUSI's numbering has gaps: there is no "normal (1).png").
  for class in benign malignant normal; do
    files=("$data/$class"/*.png)
    cp "${files[0]}" "$work/images/"
  done
else
  /usr/bin/python3 -c 'import sys, cv2, numpy
for i in range(3): cv2.imwrite(f"{sys.argv[1]}/gen{i}.png", numpy.random.default_rng(i).integers(0, 256, (256, 256), numpy.uint8))' "$work/images"
fi

"$pynq_emu" --root "$work/board" --overlay "$work/overlay" --make-hardware > "$work/emu.log" 2>&1 &
emu_pid=$!
for _ in $(seq 100); do grep -q "board ready" "$work/emu.log" && break; sleep 0.1; done
grep -q "board ready" "$work/emu.log" || { cat "$work/emu.log"; echo "pynq-emu did not start"; exit 1; }

"$busi_infer" --backend fpga --overlay "$work/overlay" --device-root "$work/board" --verify cpu_int \
  "$work/images" | tee "$work/out.txt"
grep -q "verify against cpu_int: 0 disagreements" "$work/out.txt"
grep -q "3 of 3 images classified" "$work/out.txt"

# A board that never finishes: a clear error and a non-zero exit, not a hang.
kill "$emu_pid"; wait "$emu_pid" 2>/dev/null || true
"$pynq_emu" --root "$work/board" --overlay "$work/overlay" --fault never-finish > "$work/emu.log" 2>&1 &
emu_pid=$!
for _ in $(seq 100); do grep -q "board ready" "$work/emu.log" && break; sleep 0.1; done
set +e
"$busi_infer" --backend fpga --overlay "$work/overlay" --device-root "$work/board" --set timeout_ms=300 \
  "$work/images/$(ls "$work/images" | head -1)" > "$work/fail.txt" 2>&1
status=$?
set -e
cat "$work/fail.txt"
[ "$status" -ne 0 ] || { echo "expected a non-zero exit from a board that never finishes"; exit 1; }
grep -q "did not finish within" "$work/fail.txt"

# A dead board at --batch 1 (issue 16): after 3 failed runs the rest of the
# images are reported "not attempted" at once instead of each waiting 300 ms.
mkdir "$work/many"
kill "$emu_pid"; wait "$emu_pid" 2>/dev/null || true  # a fresh board, idle, that will never finish
"$pynq_emu" --root "$work/board" --overlay "$work/overlay" --fault never-finish > "$work/emu.log" 2>&1 &
emu_pid=$!
for _ in $(seq 100); do grep -q "board ready" "$work/emu.log" && break; sleep 0.1; done
for i in 1 2 3 4 5 6 7 8; do cp "$work/images/$(ls "$work/images" | head -1)" "$work/many/img$i.png"; done
set +e
start=$(date +%s%N)
"$busi_infer" --backend fpga --overlay "$work/overlay" --device-root "$work/board" --set timeout_ms=300 \
  --batch 1 "$work/many" > "$work/dead.txt" 2>&1
status=$?
elapsed_ms=$(( ($(date +%s%N) - start) / 1000000 ))
set -e
cat "$work/dead.txt"
[ "$status" -eq 1 ] || { echo "expected exit 1 (images failed), got $status"; exit 1; }
[ "$(grep -c "fpga: not attempted: the device failed 3 runs in a row" "$work/dead.txt")" -ge 5 ] ||
  { echo "expected the last 5 of 8 images reported as not attempted"; exit 1; }
grep -q "0 of 8 images classified" "$work/dead.txt"
echo "8 images on a dead board: ${elapsed_ms} ms"
echo "fpga CLI against pynq-emu: ok"
