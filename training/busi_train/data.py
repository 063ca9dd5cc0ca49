"""BUSI images: gray-area-v1 pre-processing, the fixed split, in-memory augmentation.

load_image() makes the same OpenCV calls in the same order as the C++ runtime
(docs/preprocessing.md), so a training pixel is the pixel seen on the board.
"""
import hashlib
import math
import os
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

CLASSES = ("normal", "benign", "malignant")
INPUT_SIZE = 255
SPLIT_DIR = Path(__file__).resolve().parent.parent / "splits"


def data_root():
    """The BUSI development images: $BUSI_DATA, else shared/busi beside the repository
    (../shared/busi) or beside one of its parent folders (for git worktrees)."""
    env = os.environ.get("BUSI_DATA")
    if env:
        return Path(env)
    repo = Path(__file__).resolve().parents[2]
    for parent in repo.parents:
        if (parent / "shared" / "busi").is_dir():
            return parent / "shared" / "busi"
    return repo.parent / "shared" / "busi"


def load_image(path):
    """gray-area-v1: decode unchanged, 16->8 bit, to gray, INTER_AREA to 255x255; uint8 HxW."""
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ValueError(f"{path}: cannot decode image")
    if img.dtype == np.uint16:
        # convertTo(CV_8U, 1/257) in C++: scale, round to nearest, saturate.
        # convertScaleAbs does the same (the abs is a no-op on unsigned input).
        img = cv2.convertScaleAbs(img, alpha=1.0 / 257)
    elif img.dtype != np.uint8:
        raise ValueError(f"{path}: unsupported pixel depth {img.dtype}")
    if img.ndim == 3 and img.shape[2] == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    elif img.ndim == 3 and img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2GRAY)
    elif img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    elif img.ndim != 2:
        raise ValueError(f"{path}: unsupported channel count {img.shape}")
    if img.shape != (INPUT_SIZE, INPUT_SIZE):
        img = cv2.resize(img, (INPUT_SIZE, INPUT_SIZE), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(img)


def list_images(root):
    """(relative path, label) of every image under root/<class>/, sorted by path."""
    items = []
    for label, name in enumerate(CLASSES):
        folder = Path(root) / name
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder}: BUSI class folder missing")
        for f in sorted(folder.iterdir()):
            if f.suffix.lower() == ".png":
                items.append((f"{name}/{f.name}", label))
    return items


def near_duplicate_groups(images_u8, threshold=0.08):
    """Group ids joining near-identical images (BUSI holds many re-saved or
    slightly shifted copies, some under different classes). Two images are joined
    when their 16x16 INTER_AREA thumbnails, each normalized to zero mean and unit
    variance, differ by less than `threshold` in mean squared difference (the
    nearest-neighbour distances show a gap there); groups are the connected parts."""
    thumbs = np.stack([cv2.resize(im.reshape(im.shape[-2:]), (16, 16), interpolation=cv2.INTER_AREA)
                       for im in np.asarray(images_u8)]).reshape(len(images_u8), -1).astype(np.float64)
    thumbs = (thumbs - thumbs.mean(1, keepdims=True)) / (thumbs.std(1, keepdims=True) + 1e-6)
    parent = list(range(len(thumbs)))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(len(thumbs)):
        d = ((thumbs[i + 1:] - thumbs[i]) ** 2).mean(axis=1)
        for j in np.nonzero(d < threshold)[0] + i + 1:
            parent[find(int(j))] = find(i)
    return [find(i) for i in range(len(thumbs))]


def make_split(items, groups, val_fraction=1 / 9, seed=0):
    """Stratified, duplicate-aware split: near-duplicate groups stay on one side (no
    leakage between train and validation); per class, round(n * val_fraction) images
    go to validation (702 images -> 624 / 78: 13 normal, 44 benign, 21 malignant).
    Groups are drawn in a seeded random order and taken whole while they fit."""
    n_classes = len(CLASSES)
    counts = np.bincount([lab for _, lab in items], minlength=n_classes)
    target = np.round(counts * val_fraction).astype(int)
    members = {}
    for i, g in enumerate(groups):
        members.setdefault(g, []).append(i)
    keys = sorted(members)
    rng = np.random.default_rng(seed)
    taken = np.zeros(n_classes, dtype=int)
    val_idx = set()
    for k in (keys[i] for i in rng.permutation(len(keys))):
        need = np.bincount([items[i][1] for i in members[k]], minlength=n_classes)
        if np.all(taken + need <= target):
            taken += need
            val_idx.update(members[k])
    if not np.array_equal(taken, target):
        raise RuntimeError(f"split: could not fill validation quotas {target.tolist()}, got {taken.tolist()}")
    train = [it for i, it in enumerate(items) if i not in val_idx]
    val = [it for i, it in enumerate(items) if i in val_idx]
    return train, val


def read_split(name):
    """The committed split list training/splits/<name>.txt: (relative path, label) pairs."""
    items = []
    for line in (SPLIT_DIR / f"{name}.txt").read_text().splitlines():
        if line.strip():
            items.append((line, CLASSES.index(line.split("/", 1)[0])))
    return items


def write_split(name, items):
    SPLIT_DIR.mkdir(parents=True, exist_ok=True)
    (SPLIT_DIR / f"{name}.txt").write_text("".join(p + "\n" for p, _ in items))


def files_key(paths, tag=""):
    """A short hash of the files' names, sizes and modification times (and tag):
    the key of a decode cache, which changes when any file does."""
    h = hashlib.sha256(tag.encode())
    for p in paths:
        st = Path(p).stat()
        h.update(f"{p}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def load_set(items, root=None, cache_dir=None):
    """Decodes items once into (uint8 tensor N x 1 x 255 x 255, int64 labels).

    Decoding is the slow part, so the result is cached (keyed by the file list and
    the images' sizes and mtimes) under cache_dir when one is given."""
    root = Path(root) if root else data_root()
    labels = torch.tensor([lab for _, lab in items], dtype=torch.int64)
    key = None
    if cache_dir:
        key = Path(cache_dir) / f"images-{files_key([root / p for p, _ in items])}.npy"
        if key.exists():
            return torch.from_numpy(np.load(key)), labels
    images = np.stack([load_image(root / p) for p, _ in items])[:, None]
    if key is not None:
        key.parent.mkdir(parents=True, exist_ok=True)
        np.save(key, images)
    return torch.from_numpy(images), labels


class augmenter:
    """The paper's augmentation on a uint8 batch, in memory: random horizontal and
    vertical flips, rotation and scale (one affine warp, bilinear, zero fill),
    brightness and contrast. Returns float pixels/255 rounded back to the uint8
    grid, so the network only ever sees values a uint8 image can hold."""

    def __init__(self, max_rotation_deg=20.0, scale_range=(0.85, 1.15),
                 brightness=0.1, contrast=(0.8, 1.2)):
        self.max_rotation = math.radians(max_rotation_deg)
        self.scale_range = scale_range
        self.brightness = brightness
        self.contrast = contrast

    def __call__(self, images_u8, generator):
        n = images_u8.shape[0]
        x = images_u8.float() / 255.0

        def uniform(lo, hi):
            return lo + (hi - lo) * torch.rand(n, generator=generator)

        angle = uniform(-self.max_rotation, self.max_rotation)
        scale = uniform(*self.scale_range)
        flip_x = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0)
        flip_y = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0)
        cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
        theta = torch.zeros(n, 2, 3)
        theta[:, 0, 0] = cos * flip_x
        theta[:, 0, 1] = -sin * flip_y
        theta[:, 1, 0] = sin * flip_x
        theta[:, 1, 1] = cos * flip_y
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

        c = uniform(*self.contrast).view(n, 1, 1, 1)
        b = uniform(-self.brightness, self.brightness).view(n, 1, 1, 1)
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        x = ((x - mean) * c + mean + b).clamp(0.0, 1.0)
        return torch.floor(x * 255.0 + 0.5) / 255.0
