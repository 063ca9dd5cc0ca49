"""Writes a seeded random float network (the training code's busi_net, with
non-trivial BatchNorm statistics) as the float .bqnn and plain ONNX pair the peer
benchmark reads. Timing does not depend on the weights, so this stands in for
models/busi-float.{bqnn,onnx} where they are absent.

  /usr/bin/python3 benchmarks/peers/random_float_model.py OUT_DIR [--seed 3]
"""
import argparse
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "training"))
from busi_train import export, fold, package  # noqa: E402
from busi_train.model import random_float_net  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out_dir")
    p.add_argument("--seed", type=int, default=3)
    args = p.parse_args()
    out = pathlib.Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    net = random_float_net(args.seed)
    name = f"random-float-seed{args.seed}"
    (out / f"{name}.bqnn").write_bytes(package.build_package(name, "float", fold.float_layers(net), {"random": True}))
    export.float_onnx(net, out / f"{name}.onnx")
    print(out / f"{name}.bqnn", out / f"{name}.onnx")


if __name__ == "__main__":
    main()
