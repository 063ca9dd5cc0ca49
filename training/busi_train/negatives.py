"""Images that are not breast ultrasound, which the gate must refuse.

Built on any Debian machine from what it ships (numpy noise, rendered text,
python3-skimage's sample images: photographs, textures, documents and
grey-scale microscopy, retina and CT-phantom images), deterministically from a
seed, so the tests and docs/safety.md measure the same set:

    python3 -m busi_train.negatives OUT_DIR        # writes OUT_DIR/<kind>/<name>.png

Kinds (each refused for its own reason): "noise" (uniform, gaussian,
salt-and-pepper, RGBA), "blank" (constant and nearly constant frames),
"gradient", "photo" (photographs and textures, crops at several scales),
"document" (rendered text, pages, forms), "medical" (grey-scale medical-looking
images that are not breast ultrasound) and "tiny" (below the minimum size).
"""
import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

KINDS = ("noise", "blank", "gradient", "photo", "document", "medical", "tiny")

# skimage.data loaders that read files Debian's python3-skimage ships (brain,
# kidney, ... need a download and are left out).
_PHOTOS = ("astronaut", "camera", "chelsea", "coffee", "coins", "horse", "rocket", "hubble_deep_field",
           "brick", "grass", "gravel", "moon", "clock", "colorwheel", "logo")
_DOCUMENTS = ("page", "text")
_MEDICAL = ("retina", "cell", "microaneurysms", "immunohistochemistry", "shepp_logan_phantom")


def _skimage(name):
    import skimage.data  # python3-skimage (scripts/install-deps.sh)
    img = np.asarray(getattr(skimage.data, name)())
    if img.dtype != np.uint8:  # the phantom is float in [0, 1]
        img = np.clip(img * 255.0 / max(float(img.max()), 1e-9), 0, 255).astype(np.uint8)
    if img.ndim == 3 and img.shape[2] == 3:
        img = img[:, :, ::-1]  # RGB -> BGR, what cv2.imwrite expects
    elif img.ndim == 3 and img.shape[2] == 4:
        img = img[:, :, [2, 1, 0, 3]]
    return np.ascontiguousarray(img)


# Every negative but the "tiny" kind is at least this large on its shorter
# side, so that the gate refuses it for what it shows, not for its size
# (the gate's minimum is 128).
MIN_SIDE = 160


def _crops(img, rng, count, name):
    """count views of img: whole, and random crops of 40-100% of the side,
    rotated by multiples of 90 degrees and flipped, each at least MIN_SIDE
    pixels (a smaller sample image is enlarged first)."""
    h, w = img.shape[:2]
    if min(h, w) < 2 * MIN_SIDE:
        f = 2 * MIN_SIDE / min(h, w)
        img = cv2.resize(img, (round(w * f), round(h * f)), interpolation=cv2.INTER_CUBIC)
        h, w = img.shape[:2]
    out = [(f"{name}-whole", img)]
    for i in range(count - 1):
        f = rng.uniform(0.4, 1.0)
        ch, cw = max(MIN_SIDE, int(h * f)), max(MIN_SIDE, int(w * rng.uniform(0.4, 1.0)))
        ch, cw = min(ch, h), min(cw, w)
        y, x = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
        view = np.rot90(img[y:y + ch, x:x + cw], int(rng.integers(0, 4)))
        if rng.random() < 0.5:
            view = view[:, ::-1]
        out.append((f"{name}-crop{i}", np.ascontiguousarray(view)))
    return out


def _noise(rng, n):
    out = []
    for i in range(n):
        h, w = (int(v) for v in rng.integers(MIN_SIDE, 600, 2))
        kind = ("uniform", "uniform-rgb", "gaussian", "salt-pepper", "rgba", "smooth")[i % 6]
        if kind == "uniform":
            img = rng.integers(0, 256, (h, w), dtype=np.uint8)
        elif kind == "uniform-rgb":
            img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        elif kind == "gaussian":
            img = np.clip(rng.normal(rng.uniform(40, 200), rng.uniform(10, 60), (h, w)), 0, 255).astype(np.uint8)
        elif kind == "salt-pepper":
            img = np.full((h, w), int(rng.integers(0, 256)), np.uint8)
            flip = rng.random((h, w))
            img[flip < 0.1] = 0
            img[flip > 0.9] = 255
        elif kind == "rgba":
            img = rng.integers(0, 256, (h, w, 4), dtype=np.uint8)
        else:  # low-frequency noise: random values blown up, a speckle-free blur
            small = rng.integers(0, 256, (max(2, h // 16), max(2, w // 16)), dtype=np.uint8)
            img = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
        out.append((f"{kind}-{i}", img))
    return out


def _blank(rng, n):
    out = []
    for i in range(n):
        h, w = (int(v) for v in rng.integers(MIN_SIDE, 700, 2))
        value = int(rng.integers(0, 256))
        if i % 3 == 0:
            img = np.full((h, w), value, np.uint8)
        elif i % 3 == 1:  # a colour frame
            img = np.empty((h, w, 3), np.uint8)
            img[:] = rng.integers(0, 256, 3, dtype=np.uint8)
        else:  # nearly constant: +-1 of sensor noise
            img = np.clip(value + rng.integers(-1, 2, (h, w)), 0, 255).astype(np.uint8)
        out.append((f"blank-{i}", img))
    return out


def _gradient(rng, n):
    out = []
    for i in range(n):
        h, w = (int(v) for v in rng.integers(MIN_SIDE, 700, 2))
        y, x = np.mgrid[0:h, 0:w].astype(np.float64)
        a, b = rng.uniform(0, 255, 2)
        if i % 3 == 0:  # linear at a random angle
            t = rng.uniform(0, np.pi)
            s = x * np.cos(t) + y * np.sin(t)
        elif i % 3 == 1:  # radial
            s = np.hypot(x - rng.uniform(0, w), y - rng.uniform(0, h))
        else:  # a colour ramp
            s = x + y
        s = (s - s.min()) / max(np.ptp(s), 1e-9)
        img = (a + (b - a) * s).astype(np.uint8)
        if i % 3 == 2:
            img = np.dstack([img, img[::-1], np.full_like(img, int(rng.integers(0, 256)))])
        out.append((f"gradient-{i}", img))
    return out


def _rendered_documents(rng, n):
    from PIL import Image, ImageDraw, ImageFont  # python3-pil, with matplotlib
    fonts = sorted(Path("/usr/share/fonts/truetype/dejavu").glob("*.ttf"))
    words = ("patient report ultrasound breast lesion findings impression benign malignant normal follow-up "
             "recommendation date name signature page invoice total amount the of and to in").split()
    out = []
    for i in range(n):
        w, h = int(rng.integers(300, 900)), int(rng.integers(300, 1100))
        page = Image.new("L", (w, h), int(rng.integers(200, 256)))
        draw = ImageDraw.Draw(page)
        size = int(rng.integers(10, 28))
        font = ImageFont.truetype(str(fonts[i % len(fonts)]), size) if fonts else ImageFont.load_default()
        y = int(rng.integers(5, 30))
        while y < h - size:
            line = " ".join(rng.choice(words, int(rng.integers(3, 12))))
            draw.text((int(rng.integers(5, 40)), y), line, fill=int(rng.integers(0, 80)), font=font)
            if i % 4 == 3 and rng.random() < 0.3:  # a form: ruled boxes
                draw.rectangle([10, y - 2, w - 10, y + size + 2], outline=0)
            y += int(size * rng.uniform(1.2, 2.0))
        img = np.asarray(page)
        if i % 2:  # scanned look: a slight blur
            img = cv2.GaussianBlur(img, (3, 3), 0)
        out.append((f"rendered-{i}", img))
    return out


def make_negatives(seed=0, per_kind=40):
    """[(kind, name, image)]: uint8 arrays, HxW gray, HxWx3 BGR or HxWx4 BGRA."""
    rng = np.random.default_rng(seed)
    items = [("noise", n, im) for n, im in _noise(rng, per_kind)]
    items += [("blank", n, im) for n, im in _blank(rng, per_kind // 2)]
    items += [("gradient", n, im) for n, im in _gradient(rng, per_kind // 2)]
    per_photo = max(2, -(-2 * per_kind // len(_PHOTOS)))
    for name in _PHOTOS:
        items += [("photo", n, im) for n, im in _crops(_skimage(name), rng, per_photo, name)]
    for name in _DOCUMENTS:
        items += [("document", n, im) for n, im in _crops(_skimage(name), rng, max(2, per_kind // 8), name)]
    items += [("document", n, im) for n, im in _rendered_documents(rng, per_kind)]
    per_medical = max(2, -(-2 * per_kind // len(_MEDICAL)))
    for name in _MEDICAL:
        items += [("medical", n, im) for n, im in _crops(_skimage(name), rng, per_medical, name)]
    for i, (h, w) in enumerate(((1, 1), (8, 8), (40, 40), (63, 300), (300, 20))):
        items.append(("tiny", f"tiny-{w}x{h}", rng.integers(0, 256, (h, w), dtype=np.uint8)))
    return items


def write_negatives(out_dir, seed=0, per_kind=40):
    """Writes make_negatives() as out_dir/<kind>/<name>.png; returns the paths by kind."""
    out_dir = Path(out_dir)
    paths = {}
    for kind, name, img in make_negatives(seed, per_kind):
        path = out_dir / kind / f"{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        if not cv2.imwrite(str(path), img):
            raise OSError(f"{path}: cannot write")
        paths.setdefault(kind, []).append(path)
    return paths


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out_dir")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--per-kind", type=int, default=40, help="noise images; the other kinds scale from it")
    args = ap.parse_args(argv)
    paths = write_negatives(args.out_dir, args.seed, args.per_kind)
    for kind in KINDS:
        print(f"{kind}: {len(paths.get(kind, []))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
