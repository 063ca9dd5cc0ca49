"""Checks a shipped quantized package against its PyTorch checkpoint, the numpy
integer reference and the C++ cpu_int backend (through the busi_infer bindings).

  PYTHONPATH=build/bindings/python /usr/bin/python3 -m busi_train.equivalence \
      --checkpoint training/checkpoints/busi-w2a4.pt --package models/busi-w2a4.bqnn [--every 1]

Reports how often the predictions agree and whether cpu_int's int32 logits equal
the reference's exactly, as JSON.
"""
import argparse
import json
import sys

import numpy as np
import torch

from . import data, int_reference
from .train import load_checkpoint


def compare(checkpoint, package_path, items, root=None, use_cpu_int=True):
    model, _ = load_checkpoint(checkpoint)
    header, layers = int_reference.read_package(package_path)
    classifier = None
    if use_cpu_int:
        import busi_infer
        classifier = busi_infer.Classifier("cpu_int", model=str(package_path))
    root = root or data.data_root()
    images, labels = data.load_set(items, root)
    with torch.no_grad():
        torch_pred = torch.cat([model(images[i:i + 32].float() / 255).argmax(1)
                                for i in range(0, len(images), 32)]).numpy()
    ref_pred = np.empty(len(items), dtype=np.int64)
    logits_equal, cpu_pred, mismatches = 0, np.full(len(items), -1), []
    for i, (rel, _) in enumerate(items):
        ref_pred[i], logits = int_reference.predict(header, layers, images[i].numpy())
        if classifier is not None:
            p = classifier.classify(str(root / rel))
            cpu_pred[i] = p.class_index
            logits_equal += list(p.logits) == logits.tolist()
        if ref_pred[i] != torch_pred[i]:
            mismatches.append(rel)
    n = len(items)
    out = {"images": n, "package": str(package_path), "checkpoint": str(checkpoint),
           "torch_vs_reference_prediction_agreement": float((ref_pred == torch_pred).mean()),
           "reference_mismatches": mismatches,
           "reference_accuracy": float((ref_pred == labels.numpy()).mean())}
    if classifier is not None:
        out.update({"cpu_int_logits_equal_reference": logits_equal,
                    "cpu_int_vs_torch_prediction_agreement": float((cpu_pred == torch_pred).mean())})
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--package", required=True)
    p.add_argument("--every", type=int, default=1, help="use every N-th of the 702 images")
    p.add_argument("--no-cpu-int", action="store_true")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    items = data.list_images(data.data_root())[::args.every]
    result = compare(args.checkpoint, args.package, items, use_cpu_int=not args.no_cpu_int)
    json.dump(result, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
