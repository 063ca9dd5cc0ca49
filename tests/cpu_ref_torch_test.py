"""cpu_ref (oneDNN float) against PyTorch's float network on the BUSI images.

The network is the training code's busi_net (training/busi_train/model.py), run by
PyTorch on pixels/255 with BatchNorm unfolded, exactly as in training. cpu_ref runs
the package the training code writes from it (BatchNorm and 1/255 folded into the
weights). Both see the same pre-processed pixels (busi_infer.load_image).
  1. a seeded random network with non-trivial BatchNorm statistics (always runs);
  2. the shipped models/busi-float.bqnn against training/checkpoints/busi-float.pt,
     when both are present.
"""
import os
import pathlib
import sys

import numpy as np
import pytest
import torch

SOURCE_DIR = pathlib.Path(os.environ.get("BUSI_SOURCE_DIR", pathlib.Path(__file__).parents[1])).resolve()
sys.path.insert(0, str(SOURCE_DIR / "training"))

import busi_infer  # noqa: E402
from busi_train import fold, package  # noqa: E402
from busi_train.model import random_float_net  # noqa: E402
from busi_train.train import load_checkpoint  # noqa: E402


@pytest.fixture(scope="module")
def busi_images():
    data = pathlib.Path(os.environ.get("BUSI_DATA") or SOURCE_DIR.parent / "shared" / "busi")
    if not (data / "benign").is_dir():
        pytest.skip(f"no BUSI images at {data} (set BUSI_DATA)")
    files = busi_infer.collect_images(str(data))
    return np.stack([busi_infer.load_image(f) for f in files])


def torch_scores(model, pixels, temperature):
    torch.set_num_threads(1)
    out = []
    with torch.no_grad():
        for i in range(0, len(pixels), 64):
            x = torch.from_numpy(pixels[i:i + 64]).float().unsqueeze(1) / 255
            out.append(torch.softmax(model(x).double() / temperature, 1).numpy())
    return np.concatenate(out)


def compare(model, package_path, pixels):
    classifier = busi_infer.Classifier("cpu_ref", model=str(package_path))
    # A calibrated package's scores are softmax(logits / its temperature) (docs/safety.md).
    header, _ = package.read_container(pathlib.Path(package_path).read_bytes())
    expected = torch_scores(model, pixels, header.get("calibration", {}).get("temperature", 1.0))
    got = np.array([classifier.classify(p).scores for p in pixels])
    assert got.shape == expected.shape
    diff = np.abs(got - expected).max()
    assert diff < 1e-4, f"largest score difference {diff}"
    # Argmax may only differ where PyTorch's top two scores tie within float error.
    top2 = np.sort(expected, 1)[:, -2:]
    decided = top2[:, 1] - top2[:, 0] > 1e-5
    disagree = (got.argmax(1) != expected.argmax(1)) & decided
    assert not disagree.any(), f"{disagree.sum()} of {len(pixels)} predictions differ"
    return diff


def test_random_network_matches_pytorch(busi_images, tmp_path):
    if "cpu_ref" not in busi_infer.available_backends():
        pytest.skip("cpu_ref is not compiled in (no oneDNN)")
    net = random_float_net(11, mean=0.3, var=(0.3, 3.0), bias=0.2)
    path = tmp_path / "random-float.bqnn"
    path.write_bytes(package.build_package("random-float", "float", fold.float_layers(net), {}))
    compare(net, path, busi_images)


def test_shipped_float_model_matches_its_checkpoint(busi_images):
    package_path = SOURCE_DIR / "models" / "busi-float.bqnn"
    checkpoint = SOURCE_DIR / "training" / "checkpoints" / "busi-float.pt"
    if not package_path.exists() or not checkpoint.exists():
        pytest.skip(f"needs {package_path} and {checkpoint}")
    model, _ = load_checkpoint(checkpoint)
    compare(model, package_path, busi_images)
