"""The development images of both sources, with their lesion masks, scanners and
cross-validation folds.

BUSI (Al-Dhabyani et al., Data in Brief 2020): ../shared/busi/<class>/*.png with
masks in ../shared/busi_masks; normal, benign, malignant. Its near-duplicates
(data.near_duplicate_groups) are the grouping unit: a group never straddles folds.
BUS-BRA (Gomez-Flores et al., Medical Physics 2024): ../shared/busbra, biopsy-proven
benign or malignant, no normal class; its own patient-grouped folds (kFold 1-4) are
used as they are, so a patient's views never straddle folds.

Fold k of the protocol is BUSI fold k plus BUS-BRA kFold k (k = 1..4).
"""
import csv
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from . import data

FOLDS = (1, 2, 3, 4)
BUSI_SCANNER = "BUSI"  # LOGIQ E9 / E9 Agile per the BUSI paper; not separable per image
SCANNERS = {"GE Logiq 7": "LOGIQ7", "GE Logiq 5": "LOGIQ5"}


@dataclass
class dev_set:
    """Everything index-aligned: N images (uint8 255x255), lesion masks (uint8
    255x255, 255 = lesion), labels (data.CLASSES indices), source ('busi' /
    'busbra'), scanner, group (near-duplicate group or patient, unique across
    sources), fold (1-4), and the relative path that names each image."""
    images: np.ndarray
    masks: np.ndarray
    labels: np.ndarray
    source: np.ndarray
    scanner: np.ndarray
    group: np.ndarray
    fold: np.ndarray
    names: list


def scanner_of(device):
    """The scanner name of a BUS-BRA `Device` field ("GE Logiq 5 @10-12MHz" -> "LOGIQ5")."""
    device = device.split(" @")[0].strip()
    return SCANNERS.get(device, device)


def shared_root():
    """../shared beside the checkout (the folder holding busi/)."""
    return data.data_root().parent


def _resize_mask(mask):
    if mask.shape != (data.INPUT_SIZE, data.INPUT_SIZE):
        mask = cv2.resize(mask, (data.INPUT_SIZE, data.INPUT_SIZE), interpolation=cv2.INTER_AREA)
    return mask


def _read_mask(path):
    mask = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if mask is None:
        raise ValueError(f"{path}: cannot decode mask")
    return _resize_mask(mask)


def stratified_group_folds(labels, groups, n_folds=len(FOLDS), seed=0):
    """Fold (1..n) per item: whole groups, largest first (ties in seeded random
    order), each to the fold whose per-class count falls furthest below its share;
    a group counts under its items' labels."""
    labels, groups = np.asarray(labels), np.asarray(groups)
    n_classes = int(labels.max()) + 1
    target = np.bincount(labels, minlength=n_classes) / n_folds
    members = {}
    for i, g in enumerate(groups):
        members.setdefault(int(g), []).append(i)
    rng = np.random.default_rng(seed)
    keys = list(members)
    order = sorted(rng.permutation(len(keys)), key=lambda k: -len(members[keys[k]]))
    counts = np.zeros((n_folds, n_classes))
    fold = np.zeros(len(labels), dtype=np.int64)
    for k in order:
        idx = members[keys[k]]
        need = np.bincount(labels[idx], minlength=n_classes)
        deficit = ((target - counts) * need).sum(axis=1) / need.sum()
        f = int(np.argmax(deficit))
        counts[f] += need
        fold[idx] = f + 1
    return fold


def file_of(shared, name):
    """The file of a development image's name ("busi/<class>/<file>", "busbra/<ID>.png")."""
    source, rest = name.split("/", 1)
    return Path(shared) / "busi" / rest if source == "busi" else Path(shared) / "busbra" / "images" / rest


def load_busi(root, mask_root):
    items = data.list_images(root)
    paths = [Path(root) / p for p, _ in items]
    images = np.stack([data.load_image(p) for p in paths])
    masks = np.stack([_read_mask(Path(mask_root) / p) for p, _ in items])
    labels = np.array([lab for _, lab in items])
    groups = np.array(data.near_duplicate_groups(images))
    return {"images": images, "masks": masks, "labels": labels, "groups": groups,
            "folds": stratified_group_folds(labels, groups),
            "names": [f"busi/{p}" for p, _ in items]}


def load_busbra(root):
    root = Path(root)
    rows = list(csv.DictReader(open(root / "bus_data.csv", newline="")))
    images, masks, labels, groups, folds, scanners, names = [], [], [], [], [], [], []
    for r in rows:
        images.append(data.load_image(root / "images" / f"{r['ID']}.png"))
        masks.append(_read_mask(root / "masks" / f"{r['ID']}.png"))
        labels.append(data.CLASSES.index(r["Pathology"].strip().lower()))
        groups.append(int(r["Case"]))
        folds.append(int(r["kFold"]))
        scanners.append(scanner_of(r["Device"]))
        names.append(f"busbra/{r['ID']}.png")
    return {"images": np.stack(images), "masks": np.stack(masks), "labels": np.array(labels),
            "groups": np.array(groups), "folds": np.array(folds), "scanners": scanners, "names": names}


def load_dev_set(shared=None, cache_dir=None):
    """Both sources, decoded once (cached under cache_dir, keyed by the files'
    names, sizes and modification times)."""
    shared = Path(shared) if shared else shared_root()
    busi_root, mask_root, bra_root = shared / "busi", shared / "busi_masks", shared / "busbra"
    for need in (busi_root, mask_root, bra_root):
        if not need.is_dir():
            raise FileNotFoundError(f"{need}: development data missing (see the README)")
    key = None
    if cache_dir:
        files = sorted(str(p) for d in (busi_root, mask_root) for p in d.rglob("*.png"))
        key = Path(cache_dir) / f"dev-{data.files_key(files + [bra_root / 'bus_data.csv'], 'v1')}.npz"
        if key.exists():
            z = np.load(key, allow_pickle=False)
            return dev_set(z["images"], z["masks"], z["labels"], z["source"], z["scanner"],
                           z["group"], z["fold"], list(z["names"]))
    b = load_busi(busi_root, mask_root)
    n = len(b["labels"])
    parts = {"images": [b["images"]], "masks": [b["masks"]], "labels": [b["labels"]],
             "source": [np.array(["busi"] * n)], "scanner": [np.array([BUSI_SCANNER] * n)],
             "group": [b["groups"]], "fold": [b["folds"]]}
    r = load_busbra(bra_root)
    m = len(r["labels"])
    offset = int(b["groups"].max()) + 1  # patient ids never collide with BUSI groups
    for k, v in (("images", r["images"]), ("masks", r["masks"]), ("labels", r["labels"]),
                 ("source", np.array(["busbra"] * m)), ("scanner", np.array(r["scanners"])),
                 ("group", r["groups"] + offset), ("fold", r["folds"])):
        parts[k].append(v)
    names = list(b["names"]) + r["names"]
    s = dev_set(*(np.concatenate(parts[k]) for k in
                  ("images", "masks", "labels", "source", "scanner", "group", "fold")), names)
    if key is not None:
        key.parent.mkdir(parents=True, exist_ok=True)
        np.savez(key, images=s.images, masks=s.masks, labels=s.labels, source=s.source,
                 scanner=s.scanner, group=s.group, fold=s.fold, names=np.array(s.names))
    return s
