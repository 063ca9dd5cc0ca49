"""Records in model packages which images they were trained on ("seen_images",
docs/model-format.md), so busi-infer and busi-eval can score the other images apart.

  cd training && /usr/bin/python3 -m busi_train.seen ../models/busi-w2a4.bqnn \
      ../models/busi-w4a4.bqnn ../models/busi-float.bqnn

Hashes the training split (training/splits/train.txt, the images the weights were
fitted on) after gray-area-v1 pre-processing and writes the block into each package,
changing nothing else in it. The validation split is left out on purpose: it chose
the checkpoint's epoch but never moved a weight, and it is the held-out set that
docs/training.md reports. A package whose provenance names another training split
(split_sha256.train) is refused.
"""
import argparse
import hashlib
from pathlib import Path

import numpy as np

from . import data, package


def split_hashes(name="train", root=None):
    """input_hashes of every image of a committed split, pre-processed as in training."""
    root = Path(root or data.data_root())
    images = np.stack([data.load_image(root / rel) for rel, _ in data.read_split(name)])
    return package.input_hashes(images)


def training_split_of(package_bytes):
    header, _ = package.read_container(package_bytes)
    return header.get("provenance", {}).get("split_sha256", {}).get("train")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("packages", nargs="+", type=Path)
    p.add_argument("--split", default="train", help="committed split the models were trained on")
    args = p.parse_args(argv)
    split_sha = hashlib.sha256((data.SPLIT_DIR / f"{args.split}.txt").read_bytes()).hexdigest()
    packages = {path: path.read_bytes() for path in args.packages}
    for path, before in packages.items():  # every package checked before any image is read
        if training_split_of(before) != split_sha:
            raise SystemExit(f"{path}: its provenance names training split {training_split_of(before)}, "
                             f"not {args.split}.txt ({split_sha}); nothing written")
    hashes = split_hashes(args.split)
    for path, before in packages.items():
        path.write_bytes(package.with_seen_images(before, hashes))
        print(f"{path}: seen_images = {len(np.unique(hashes))} distinct hashes of {len(hashes)} "
              f"{args.split} images")


if __name__ == "__main__":
    main()
