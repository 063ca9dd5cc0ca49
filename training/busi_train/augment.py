"""Augmentation that models what differs between scanners and hospitals, on a
uint8 batch with its lesion masks (the masks follow every geometric change).

- geometry: horizontal flip (a vertical flip would put the skin line at the
  bottom, which no scanner shows), rotation, zoom/crop and shift in one affine warp;
- the machine's gain, contrast curve (gamma) and time-gain compensation (a smooth
  random gain along the depth axis);
- its speckle (multiplicative noise, spatially correlated) and its resolution
  (Gaussian blur);
- the screen's overlays: caliper crosses and text drawn at random places on images
  of every class, so that their presence tells the network nothing (BUS-BRA's
  lesion images carry calipers around the lesion, BUSI's normal images none).

Returns pixels/255 rounded back onto the uint8 grid (as data.augmenter does) and
the warped masks in [0, 1].
"""
import math

import cv2
import numpy as np
import torch
import torch.nn.functional as F

_TEXT = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 /.:"


class scanner_augmenter:
    def __init__(self, max_rotation_deg=15.0, scale_range=(0.8, 1.25), shift=0.08,
                 gain=(0.7, 1.4), gamma=(0.7, 1.4), tgc=0.3, speckle=0.25, blur_sigma=1.5,
                 p_blur=0.5, p_calipers=0.5, p_text=0.5):
        self.max_rotation = math.radians(max_rotation_deg)
        self.scale_range, self.shift = scale_range, shift
        self.gain, self.gamma, self.tgc = gain, gamma, tgc
        self.speckle, self.blur_sigma, self.p_blur = speckle, blur_sigma, p_blur
        self.p_calipers, self.p_text = p_calipers, p_text

    def __call__(self, images_u8, masks_u8, generator):
        n = images_u8.shape[0]

        def uniform(lo, hi, *shape):
            return lo + (hi - lo) * torch.rand(shape or (n,), generator=generator)

        x = torch.cat([images_u8.float(), masks_u8.float()], dim=1) / 255.0
        angle = uniform(-self.max_rotation, self.max_rotation)
        scale = uniform(*self.scale_range)
        flip = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0)
        theta = torch.zeros(n, 2, 3)
        theta[:, 0, 0] = torch.cos(angle) / scale * flip
        theta[:, 0, 1] = -torch.sin(angle) / scale
        theta[:, 1, 0] = torch.sin(angle) / scale * flip
        theta[:, 1, 1] = torch.cos(angle) / scale
        theta[:, :, 2] = uniform(-self.shift, self.shift, n, 2) * 2
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        img, mask = x[:, :1], x[:, 1:]

        h = img.shape[-2]
        # Time-gain compensation: a gain curve over depth through 4 random knots.
        knots = 1 + uniform(-self.tgc, self.tgc, n, 1, 4, 1)
        curve = F.interpolate(knots, size=(h, 1), mode="bilinear", align_corners=True)
        img = img * curve * uniform(*self.gain).view(n, 1, 1, 1)
        img = img.clamp(0, 1) ** uniform(*self.gamma).view(n, 1, 1, 1)
        # Speckle: unit-mean multiplicative noise, correlated over ~4 pixels.
        sigma = uniform(0, self.speckle).view(n, 1, 1, 1)
        noise = torch.randn(n, 1, h // 4 + 1, h // 4 + 1, generator=generator)
        noise = F.interpolate(noise, size=img.shape[-2:], mode="bilinear", align_corners=False)
        img = (img * (1 + sigma * noise)).clamp(0, 1)

        out = img[:, 0].numpy().copy()
        rng = np.random.default_rng(int(torch.randint(0, 2 ** 31, (1,), generator=generator)))
        for i in range(n):
            if rng.random() < self.p_blur:
                s = rng.uniform(0.3, self.blur_sigma)
                out[i] = cv2.GaussianBlur(out[i], (0, 0), s)
            if rng.random() < self.p_calipers:
                draw_calipers(out[i], rng)
            if rng.random() < self.p_text:
                draw_text(out[i], rng)
        img = torch.from_numpy(out).unsqueeze(1).clamp(0, 1)
        return torch.floor(img * 255.0 + 0.5) / 255.0, mask


def draw_calipers(img, rng):
    """2-4 '+' marks (5-9 px arms), optionally numbered, bright, anywhere."""
    h, w = img.shape
    level = rng.uniform(0.75, 1.0)
    for k in range(rng.integers(2, 5)):
        cx, cy, arm = int(rng.integers(8, w - 8)), int(rng.integers(8, h - 8)), int(rng.integers(2, 5))
        cv2.line(img, (cx - arm, cy), (cx + arm, cy), level, 1)
        cv2.line(img, (cx, cy - arm), (cx, cy + arm), level, 1)
        if rng.random() < 0.5:
            cv2.putText(img, str(k + 1), (cx - 9, cy - 3), cv2.FONT_HERSHEY_PLAIN, 0.6, level, 1)


def draw_text(img, rng):
    """One or two short lines of capitals, as scanners print the body mark."""
    h, w = img.shape
    level = rng.uniform(0.7, 1.0)
    for _ in range(rng.integers(1, 3)):
        s = "".join(rng.choice(list(_TEXT), size=int(rng.integers(3, 14))))
        x, y = int(rng.integers(0, w // 2)), int(rng.integers(12, h - 4))
        cv2.putText(img, s, (x, y), cv2.FONT_HERSHEY_SIMPLEX, rng.uniform(0.25, 0.45), level, 1)


def lesion_free_square(mask, margin=8, min_side=128):
    """(y, x, side, axis) of the largest square strip beside the lesion: the mask's
    bounding box grown by `margin` leaves four strips (left, right, above, below);
    the widest gives a square of its width, to be slid along `axis` (0: down, 1:
    across). None when the lesion leaves no strip of min_side pixels. The strip
    below may hold the lesion's acoustic shadow or enhancement; it stays, because
    without it only 31 of BUS-BRA's 1,350 lesions leave a strip of 128 pixels."""
    ys, xs = np.nonzero(mask)
    if len(ys) == 0:
        return None
    h, w = mask.shape
    y0, y1 = max(ys.min() - margin, 0), min(ys.max() + margin, h - 1)
    x0, x1 = max(xs.min() - margin, 0), min(xs.max() + margin, w - 1)
    strips = [(x0, (0, 0), 0), (w - 1 - x1, (0, x1 + 1), 0),   # left, right: slide down
              (y0, (0, 0), 1), (h - 1 - y1, (y1 + 1, 0), 1)]   # above, below: slide across
    width, (y, x), axis = max(strips, key=lambda s: s[0])
    side = min(width, h, w)
    if side < min_side:
        return None
    return int(y), int(x), int(side), axis


def normal_tissue_crop(image, square, offset):
    """The square of `image` (lesion_free_square) at `offset` in [0, 1) along its
    strip, resized (bilinear) back to the image's size: a view of a lesion image
    that holds no lesion, labelled normal in training."""
    y, x, side, axis = square
    h, w = image.shape
    if axis == 0:
        y = int(offset * (h - side + 1))
    else:
        x = int(offset * (w - side + 1))
    return cv2.resize(image[y:y + side, x:x + side], (w, h), interpolation=cv2.INTER_LINEAR)
