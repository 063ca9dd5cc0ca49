#!/usr/bin/env bash
# Reproduces the shipped models and the bit-width study of docs/training.md:
# the float network from scratch, then every quantized one initialised from it,
# each run's checkpoint chosen on validation accuracy. Runs go to training/runs/
# (git-ignored); seeds are fixed (--seed 1), one thread each.
#   training/reproduce.sh            # everything: 266 epochs, about 75 min at 15-20 s per epoch
#   training/reproduce.sh export     # only re-export the shipped models from runs/
#   training/reproduce.sh 2site      # the two-site model (busi_train.cv), needs build/tools/busi-infer
set -euo pipefail
cd "$(dirname "$0")"
py=/usr/bin/python3

if [[ "${1:-all}" == 2site ]]; then
  # robust-noseg-crops at 100 + 20 epochs: the four fold models (cross-validated
  # figures and out-of-fold logits for the calibration), then the model on every
  # image. About 5 x 120 epochs of 1,000 images (~1 h each on a free core);
  # every run resumes after a stop.
  long=(--recipe robust-noseg-crops --float-epochs 100 --qat-epochs 20 --out runs/cv-crops100)
  "$py" -m busi_train.cv train "${long[@]}"
  "$py" -m busi_train.cv train "${long[@]}" --final
  cp runs/cv-crops100/robust-noseg-crops/all/final.pt checkpoints/busi-w2a4-2site.pt
  "$py" -m busi_train.export checkpoints/busi-w2a4-2site.pt --name busi-w2a4-2site \
      --bqnn ../models/busi-w2a4-2site.bqnn --onnx ../models/busi-w2a4-2site.qonnx.onnx
  "$py" -m busi_train.negatives runs/negatives
  "$py" -m busi_train.calibrate --model ../models/busi-w2a4-2site.bqnn --out-of-fold runs/cv-crops100/robust-noseg-crops \
      --busi-infer ../build/tools/busi-infer --negatives runs/negatives \
      --out ../models/busi-w2a4-2site.bqnn --report results/calibration-w2a4-2site.json
  exit 0
fi
float_epochs=150  # Adam 1e-3 -> 1e-5 cosine
ship_epochs=30    # W2A4, W4A4: Adam 2e-4 -> 1e-5 cosine
sweep_epochs=8    # the other seven weight x activation widths

train() { "$py" -m busi_train.train --threads 1 --seed 1 "$@"; }

if [[ "${1:-all}" != export ]]; then
  train --out runs/float --epochs "$float_epochs" --lr 1e-3
  for wa in "2 4" "4 4"; do
    set -- $wa
    train --out "runs/w$1a$2" --wbits "$1" --abits "$2" --init runs/float/best.pt \
          --epochs "$ship_epochs" --lr 2e-4
  done
  for wa in "8 8" "8 4" "8 2" "4 8" "4 2" "2 8" "2 2"; do
    set -- $wa
    train --out "runs/w$1a$2" --wbits "$1" --abits "$2" --init runs/float/best.pt \
          --epochs "$sweep_epochs" --lr 2e-4
  done
  "$py" -m busi_train.study runs
fi

# The shipped models: packages for the runtime, QONNX for FINN, ONNX for peers,
# and the checkpoints they came from (the equivalence tests read them).
mkdir -p checkpoints
for name in w2a4 w4a4; do
  cp "runs/$name/best.pt" "checkpoints/busi-$name.pt"
  "$py" -m busi_train.export "runs/$name/best.pt" --name "busi-$name" \
      --bqnn "../models/busi-$name.bqnn" --onnx "../models/busi-$name.qonnx.onnx"
done
cp runs/float/best.pt checkpoints/busi-float.pt
"$py" -m busi_train.export runs/float/best.pt --name busi-float \
    --bqnn ../models/busi-float.bqnn --onnx ../models/busi-float.onnx
