#!/usr/bin/env bash
# End-to-end busi-infer over a folder (decode, pre-process, infer, report):
# images per second at 1 and 2 threads and peak resident memory, run
# alternately (1, 2, 1, 2, ...) so both see the same machine load.
# Usage: benchmarks/e2e_busi_infer.sh [build-dir] [images-dir] [rounds] [backend]
set -euo pipefail
build=${1:-build}
images=${2:-../shared/busi}
rounds=${3:-3}
backend=${4:-cpu_int}
bin="$build/tools/busi-infer"

printf "| threads | round | images | images/s | peak RSS (MB) | anonymous RSS at end (MB) |\n|---|---|---|---|---|---|\n"
for round in $(seq "$rounds"); do
  for threads in 1 2; do
    "$bin" --backend "$backend" --no-progress --format json --threads "$threads" "$images" |
      /usr/bin/python3 -c '
import json, sys
s = json.load(sys.stdin)["summary"]
print("| %d | %s | %d | %.1f | %.1f | %.1f |" % (s["threads"], sys.argv[1], s["classified"],
      s["images_per_second"], s["peak_rss_mb"], s["anon_rss_mb_at_end"]))' "$round"
  done
done
