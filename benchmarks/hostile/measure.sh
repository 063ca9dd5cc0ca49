#!/usr/bin/env bash
# Peak RSS, wall time and outcome of busi-infer on each crafted file of issue 16
# (make_files.py), on /dev/zero as an image and as the model.
# Usage: benchmarks/hostile/measure.sh BUSI-INFER [work-dir]   (needs /usr/bin/time)
set -euo pipefail
bin=$1
work=${2:-$(mktemp -d)}
here=$(cd "$(dirname "$0")" && pwd)
[ -f "$work/ok-3840x2160.jpg" ] || /usr/bin/python3 "$here/make_files.py" "$work"
run() {
  /usr/bin/time -v -o "$work/time.txt" timeout 15 "$bin" --no-progress "$@" > "$work/out.txt" 2>&1 || true
  local rss wall outcome
  rss=$(awk '/Maximum resident/ {printf "%.0f", $6/1024}' "$work/time.txt")
  wall=$(awk '/Elapsed \(wall/ {print $8}' "$work/time.txt")
  outcome=$(grep -m1 -oE "ERROR.*|(normal|benign|malignant) .*|error: .*|Command terminated.*|status 124" "$work/out.txt" "$work/time.txt" | head -1 | cut -d: -f2- | cut -c1-90)
  echo "| $* | $rss MB | $wall | ${outcome:-killed after 15 s} |"
}
echo "| input | peak RSS | wall | outcome |"
echo "|---|---|---|---|"
cd "$work"
for f in gray8-20000x20000.png rgba16-10000x10000.png progressive-8000x8000.jpg progressive-8000x8000-cut.jpg \
         ok-1920x1080.png ok-3840x2160.jpg /dev/zero; do
  run "$f"
done
run --model /dev/zero ok-1920x1080.png
