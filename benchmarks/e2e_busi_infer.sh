#!/usr/bin/env bash
# End-to-end busi-infer over a folder (read, decode, pre-process, infer,
# report): images per second at 1 and 2 threads and peak resident memory, run
# alternately so every configuration sees the same machine load. With a second
# build (an older revision built the same way), both are run side by side in
# each round (before t1, after t1, before t2, after t2), the per-image answers
# (every field both report: file, class, logits, scores, verdict, reason, the
# gate's features and score, ...) are compared, and the ratios after / before
# are printed.
# Usage: benchmarks/e2e_busi_infer.sh [build-dir] [images-dir] [rounds] [backend] [before-build-dir]
set -euo pipefail
build=${1:-build}
images=${2:-../shared/busi}
rounds=${3:-3}
backend=${4:-cpu_int}
before=${5:-}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
printf "| build | threads | round | images | images/s | peak RSS (MB) | anonymous RSS at end (MB) |\n|---|---|---|---|---|---|---|\n"
for round in $(seq "$rounds"); do
  for threads in 1 2; do
    for which in ${before:+before} after; do
      dir=$build
      [ "$which" = before ] && dir=$before
      "$dir/tools/busi-infer" --backend "$backend" --no-progress --format json --threads "$threads" "$images" \
        >"$out/$which-$threads-$round.json"
      /usr/bin/python3 -c '
import json, sys
s = json.load(open(sys.argv[1]))["summary"]
print("| %s | %d | %s | %d | %.1f | %.1f | %.1f |" % (sys.argv[2], s["threads"], sys.argv[3], s["classified"],
      s["images_per_second"], s["peak_rss_mb"], s["anon_rss_mb_at_end"]))' "$out/$which-$threads-$round.json" "$which" "$round"
    done
  done
done
echo
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
[ -n "$before" ] || exit 0

# Ratios per round and thread count, and the answers compared.
/usr/bin/python3 - "$out" "$rounds" <<'PY'
import json, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
load = lambda w, t, r: json.load(open(f"{out}/{w}-{t}-{r}.json"))
print()
print("| threads | after / before images/s, each round | median | peak RSS before -> after (MB) |")
print("|---|---|---|---|")
for t in (1, 2):
    ratios = [load("after", t, r)["summary"]["images_per_second"] / load("before", t, r)["summary"]["images_per_second"]
              for r in range(1, rounds + 1)]
    rss_b = max(load("before", t, r)["summary"]["peak_rss_mb"] for r in range(1, rounds + 1))
    rss_a = max(load("after", t, r)["summary"]["peak_rss_mb"] for r in range(1, rounds + 1))
    print("| %d | %s | %.2fx | %.1f -> %.1f |" % (t, ", ".join("%.2fx" % x for x in ratios), statistics.median(ratios), rss_b, rss_a))
# Every per-image field both builds report (an older build may lack the verdict and what comes with it).
fields = ("file", "class", "logits", "scores", "verdict", "reason", "p_abnormal", "suspicious_malignancy",
          "ood_features", "ood_score", "seen", "error")
reported = lambda doc: {k for i in doc["images"] for k in i}
common = [k for k in fields if k in reported(load("before", 1, 1)) and k in reported(load("after", 1, 1))]
answers = lambda doc: [tuple(i.get(k) for k in common) for i in doc["images"]]
reference = answers(load("before", 1, 1))
same = all(answers(load(w, t, r)) == reference for w in ("before", "after") for t in (1, 2) for r in range(1, rounds + 1))
print()
print("answers (%s) of every run identical to the first: %s (%d images)" % (", ".join(common), "yes" if same else "NO", len(reference)))
sys.exit(0 if same else 1)
PY
