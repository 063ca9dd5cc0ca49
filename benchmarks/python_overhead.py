"""What classifying one in-memory image costs from Python, against the same call
from C++, in one process and one run (the machine is shared and noisy, so the two
alternate call by call and are compared as ratios of medians and of minima;
the minimum is the least disturbed call of each side).

    PYTHONPATH=build/bindings/python /usr/bin/python3 benchmarks/python_overhead.py \
        [--backend cpu_int] [--calls 200] [--image PATH] [KEY=VALUE settings...]

Both sides classify the same NumPy array with the same Classifier:
- python: busi_infer.Classifier.classify(array), timed around each call with
  time.perf_counter (argument conversion, GIL release, result conversion included);
- c++: Classifier::classify_pixels(view) in a loop inside the module
  (Classifier._time_classify_pixels), timed around each call with steady_clock.
Two inputs: a BUSI image as cv2.imread gives it (256x256 BGR: the usual case) and
a 255x255 gray array (no resize or color conversion: the smallest amount of work
per call, so the largest share of overhead).
"""
import argparse
import os
import pathlib
import statistics
import sys
import time

import numpy as np

import busi_infer


def default_image():
    data = pathlib.Path(os.environ.get("BUSI_DATA") or pathlib.Path(__file__).resolve().parents[2] / "shared" / "busi")
    found = busi_infer.collect_images(data / "benign") if data.is_dir() else []
    return found[0] if found else None


def load_bgr(path):
    if path is not None:
        import cv2
        return cv2.imread(path, cv2.IMREAD_UNCHANGED), pathlib.Path(path).name
    rng = np.random.default_rng(1)  # no data here: a synthetic image of the same size
    return rng.integers(0, 256, (256, 256, 3), dtype=np.uint8), "synthetic 256x256 BGR"


def measure(classifier, image, calls):
    """Per-call seconds from Python and from C++, taken in pairs (one call each,
    alternating which goes first) so drift in machine load hits both sides."""
    classifier.classify(image)  # warm-up: first-touch allocations on both paths
    classifier._time_classify_pixels(image, 1)
    python, cpp = [], []
    for i in range(calls):
        for side in (("py", "cpp") if i % 2 == 0 else ("cpp", "py")):
            if side == "cpp":
                cpp += classifier._time_classify_pixels(image, 1)
            else:
                start = time.perf_counter()
                classifier.classify(image)
                python.append(time.perf_counter() - start)
    return python, cpp


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="cpu_int")
    parser.add_argument("--model")
    parser.add_argument("--image", help="a BUSI image (default: the first of $BUSI_DATA/benign)")
    parser.add_argument("--calls", type=int, default=200, help="calls per side and input")
    parser.add_argument("settings", nargs="*", help="backend settings, KEY=VALUE")
    args = parser.parse_args()

    settings = dict(s.split("=", 1) for s in args.settings)
    classifier = busi_infer.Classifier(args.backend, model=args.model, **settings)
    color, name = load_bgr(args.image or default_image())
    gray = busi_infer.preprocess(color)  # already the network's size: nothing to resize

    print(f"backend: {classifier.describe()}; model: {classifier.model.name}")
    print(f"python {sys.version.split()[0]} ({sys.executable}); {args.calls} calls per side and input\n")
    print("| input | C++ median ms | Python median ms | ratio of medians | C++ min ms | Python min ms "
          "| ratio of minima | median paired difference us |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for label, image in ((f"{name} {color.shape[1]}x{color.shape[0]}x{color.shape[2] if color.ndim == 3 else 1}", color),
                         ("255x255 gray", gray)):
        python, cpp = measure(classifier, image, args.calls)
        py_ms, cpp_ms = statistics.median(python) * 1e3, statistics.median(cpp) * 1e3
        paired_us = statistics.median(p - c for p, c in zip(python, cpp)) * 1e6
        py_min, cpp_min = min(python) * 1e3, min(cpp) * 1e3
        print(f"| {label} | {cpp_ms:.3f} | {py_ms:.3f} | {py_ms / cpp_ms:.4f} | {cpp_min:.3f} | {py_min:.3f} "
              f"| {py_min / cpp_min:.4f} | {paired_us:.1f} |")


if __name__ == "__main__":
    main()
