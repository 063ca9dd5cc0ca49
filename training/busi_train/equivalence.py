"""Checks a shipped quantized package against its PyTorch checkpoint, the numpy
integer reference and the C++ cpu_int backend (through the busi_infer bindings).

  PYTHONPATH=build/bindings/python /usr/bin/python3 -m busi_train.equivalence \
      --checkpoint training/checkpoints/busi-w2a4.pt --package models/busi-w2a4.bqnn \
      [--reference-every 1]

cpu_int and PyTorch classify every image; the (slow) numpy reference every
N-th, where cpu_int's int32 logits must equal its logits exactly. JSON out.
"""
import argparse
import json
import sys

import numpy as np
import torch

from . import data, int_reference
from .train import load_checkpoint


def compare(checkpoint, package_path, items, root=None, reference_every=1):
    import busi_infer
    model, _ = load_checkpoint(checkpoint)
    header, layers = int_reference.read_package(package_path)
    classifier = busi_infer.Classifier("cpu_int", model=str(package_path))
    root = root or data.data_root()
    images, labels = data.load_set(items, root)
    with torch.no_grad():
        torch_pred = torch.cat([model(images[i:i + 32].float() / 255).argmax(1)
                                for i in range(0, len(images), 32)]).numpy()
    cpu = [classifier.classify(str(root / rel)) for rel, _ in items]
    cpu_pred = np.array([p.class_index for p in cpu])
    checked, logits_equal, ref_agree = 0, 0, 0
    for i in range(0, len(items), reference_every):
        pred, logits = int_reference.predict(header, layers, images[i].numpy())
        checked += 1
        logits_equal += list(cpu[i].logits) == logits.tolist()
        ref_agree += int(pred == cpu_pred[i])
    return {"images": len(items), "package": str(package_path), "checkpoint": str(checkpoint),
            "cpu_int_vs_torch_prediction_agreement": float((cpu_pred == torch_pred).mean()),
            "disagreements": [rel for (rel, _), a, b in zip(items, cpu_pred, torch_pred) if a != b],
            "cpu_int_accuracy": float((cpu_pred == labels.numpy()).mean()),
            "torch_accuracy": float((torch_pred == labels.numpy()).mean()),
            "reference_images": checked, "cpu_int_logits_equal_reference": logits_equal,
            "reference_predictions_equal_cpu_int": ref_agree}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--package", required=True)
    p.add_argument("--reference-every", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    items = data.list_images(data.data_root())
    result = compare(args.checkpoint, args.package, items, reference_every=args.reference_every)
    json.dump(result, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
