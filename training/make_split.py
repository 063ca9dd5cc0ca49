"""Writes the fixed split training/splits/{train,val}.txt (run once; the lists are committed).

  /usr/bin/python3 training/make_split.py
"""
from busi_train import data

items = data.list_images(data.data_root())
images, _ = data.load_set(items)
groups = data.near_duplicate_groups(images.numpy())
train, val = data.make_split(items, groups, seed=0)
data.write_split("train", train)
data.write_split("val", val)
print(len(train), "train,", len(val), "validation;", len(set(groups)), "near-duplicate groups")
