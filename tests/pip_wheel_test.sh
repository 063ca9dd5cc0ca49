#!/usr/bin/env bash
# pip builds the busi_infer wheel (scikit-build-core, pyproject.toml) and the wheel
# installs into a fresh virtual environment, where busi_infer imports from outside
# the source tree and classifies with the models inside the wheel.
# Usage: pip_wheel_test.sh SOURCE_DIR WORK_DIR BUILDER_PYTHON [BUSI_IMAGE]
#   BUILDER_PYTHON: a python with scikit-build-core (.venv/bin/python, made by
#   scripts/install-python-deps.sh); WORK_DIR keeps the wheel's CMake build tree,
#   so a second run rebuilds only what changed. Exit 77: skipped (said why).
set -euo pipefail
src=$1 work=$2 builder=$3 image=${4:-}
[ -z "$image" ] || image=$(realpath "$image")
if ! "$builder" -c "import scikit_build_core" 2>/dev/null; then
  echo "SKIP: $builder has no scikit-build-core (run scripts/install-python-deps.sh)"
  exit 77
fi
mkdir -p "$work"
rm -rf "$work/dist" "$work/fresh"
# --no-build-isolation: scikit-build-core from the builder's environment (pinned
# in requirements/python.txt), pybind11 and the libraries from Debian; without it
# pip fetches the build requirements from PyPI, as `pip install .` does for users.
"$builder" -m pip wheel "$src" --no-build-isolation --no-deps --disable-pip-version-check -q \
  -w "$work/dist" --config-settings=build-dir="$work/build"
wheel=$(ls "$work"/dist/busi_infer-*.whl)
echo "built $(basename "$wheel")"
python3=/usr/bin/python3
"$python3" -m venv --system-site-packages "$work/fresh"   # numpy from Debian
"$work/fresh/bin/pip" install --no-index --no-deps --disable-pip-version-check -q "$wheel"
cd "$work"   # not the source tree: nothing to import by accident
env -u PYTHONPATH -u BUSI_MODEL_DIR "$work/fresh/bin/python" - "$image" <<'PY'
import sys, pathlib
import numpy as np
import busi_infer
where = pathlib.Path(busi_infer.__file__).resolve()
assert "fresh" in where.parts, where
print("busi_infer from", where.parent, "backends", busi_infer.available_backends())
models = sorted(p.name for p in (where.parent / "models").glob("*.bqnn"))
assert "busi-w2a4.bqnn" in models, models
clf = busi_infer.Classifier("cpu_int")
p = clf.classify(np.full((64, 64), 128, np.uint8))
print("flat gray image:", p.class_name, [round(s, 3) for s in p.scores])
if sys.argv[1]:
    p = clf.classify(sys.argv[1])
    print(pathlib.Path(sys.argv[1]).name + ":", p.class_name, p.logits)
PY
