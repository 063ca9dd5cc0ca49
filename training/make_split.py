"""Writes the fixed split training/splits/{train,val}.txt (run once; the lists are committed).

  /usr/bin/python3 training/make_split.py             # duplicate-aware: the split every model uses
  /usr/bin/python3 training/make_split.py --random    # random-{train,val}.txt: a plain stratified
                                                      # split as the paper's, which lets near-duplicates
                                                      # straddle the sets (to measure that leakage)
"""
import argparse

from busi_train import data

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--random", action="store_true", help="ignore near-duplicates (writes random-*.txt)")
args = parser.parse_args()

items = data.list_images(data.data_root())
images, _ = data.load_set(items)
groups = data.near_duplicate_groups(images.numpy())
if args.random:
    train, val = data.make_split(items, list(range(len(items))), seed=0)
    leaked = sum(1 for i, it in enumerate(items) if it in val and
                 any(groups[j] == groups[i] and items[j] in train for j in range(len(items))))
    data.write_split("random-train", train)
    data.write_split("random-val", val)
    print(len(train), "train,", len(val), "validation;", leaked, "validation images have a near-duplicate in training")
else:
    train, val = data.make_split(items, groups, seed=0)
    data.write_split("train", train)
    data.write_split("val", val)
    print(len(train), "train,", len(val), "validation;", len(set(groups)), "near-duplicate groups")
