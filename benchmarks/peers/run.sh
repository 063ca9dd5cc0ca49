#!/usr/bin/env bash
# This runtime beside onnxruntime, OpenCV DNN and PyTorch on the same float model,
# one thread each; prints the markdown recorded in benchmarks/results/peers.md.
#   benchmarks/peers/run.sh [build-dir] [images] [count] [rounds]
# Needs: the build (peers_bench, the Python bindings), the models (override with
# QUANTIZED, FLOAT_BQNN, FLOAT_ONNX; default models/busi-w2a4.bqnn,
# models/busi-float.bqnn, models/busi-float.onnx), and onnxruntime-node installed here:
#   (cd benchmarks/peers && ONNXRUNTIME_NODE_INSTALL=skip npm ci)
# (ONNXRUNTIME_NODE_INSTALL=skip stops its install script fetching a CUDA provider;
# the package already holds the CPU library.)
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build}
images=${2:-../shared/busi}
count=${3:-60}
rounds=${4:-5}
quantized=${QUANTIZED:-models/busi-w2a4.bqnn}
float_bqnn=${FLOAT_BQNN:-models/busi-float.bqnn}
float_onnx=${FLOAT_ONNX:-models/busi-float.onnx}
ort=$(ls benchmarks/peers/node_modules/onnxruntime-node/bin/napi-v*/linux/"$(uname -m | sed 's/x86_64/x64/;s/aarch64/arm64/')"/libonnxruntime.so.* 2>/dev/null | head -1 || true)
if [ -z "$ort" ]; then
  echo "run.sh: no libonnxruntime.so: run (cd benchmarks/peers && ONNXRUNTIME_NODE_INSTALL=skip npm ci)" >&2
  exit 1
fi
export OMP_NUM_THREADS=1
echo "### C++ engines (one process)"
echo
"$build/benchmarks/peers_bench" --quantized "$quantized" --float "$float_bqnn" \
  --onnx "$float_onnx" --ort "$ort" --images "$images" --count "$count" --rounds "$rounds"
echo
echo "### PyTorch and onnxruntime's Python package (one Python process)"
echo
# .venv (scripts/install-python-deps.sh) has onnxruntime from PyPI beside Debian's torch.
python=/usr/bin/python3
[ -x .venv/bin/python ] && python=.venv/bin/python
PYTHONPATH="$build/bindings/python" "$python" benchmarks/peers/torch_peer.py --onnx "$float_onnx" \
  --quantized "$quantized" --float "$float_bqnn" --images "$images" --count "$count" --rounds "$rounds"
