"""Writes a seeded random float network (the training code's busi_net, with
non-trivial BatchNorm statistics) as the float .bqnn and plain ONNX pair the peer
benchmark reads. Timing does not depend on the weights, so this stands in for
models/busi-float.{bqnn,onnx} where they are absent.

  /usr/bin/python3 benchmarks/peers/random_float_model.py OUT_DIR [--seed 3]
"""
import argparse
import pathlib
import sys

import torch

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "training"))
from busi_train import export, fold, package  # noqa: E402
from busi_train.model import busi_net  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out_dir")
    p.add_argument("--seed", type=int, default=3)
    args = p.parse_args()
    out = pathlib.Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(args.seed)
    net = busi_net()
    for layer in net.layers():
        if not layer.last:
            layer.bn.running_mean.uniform_(-0.2, 0.2)
            layer.bn.running_var.uniform_(0.5, 2.0)
            layer.bn.weight.data.uniform_(0.5, 1.5)
            layer.bn.bias.data.uniform_(-0.1, 0.1)
    net.eval()
    name = f"random-float-seed{args.seed}"
    (out / f"{name}.bqnn").write_bytes(package.build_package(name, "float", fold.float_layers(net), {"random": True}))
    export.float_onnx(net, out / f"{name}.onnx")
    print(out / f"{name}.bqnn", out / f"{name}.onnx")


if __name__ == "__main__":
    main()
