"""An independent reader and integer reference for .bqnn packages, in numpy.

It shares no code with package.py (the writer) or the C++ reader: it parses the
container, checks the CRC, unpacks the bit-packed weights and computes the int32
logits the obvious way (int64 arithmetic, then checked to fit int32).
Float packages run in float64 the same way.
"""
import json
import struct
import zlib

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


class package_error(ValueError):
    pass


def read_package(path_or_bytes):
    if isinstance(path_or_bytes, (bytes, bytearray)):
        raw, origin = bytes(path_or_bytes), "<bytes>"
    else:
        origin = str(path_or_bytes)
        with open(path_or_bytes, "rb") as f:
            raw = f.read()
    if len(raw) < 20 or raw[:8] != b"BUSIQNN\x00":
        raise package_error(f"{origin}: not a .bqnn package (bad magic or too short)")
    version, head_len = struct.unpack_from("<II", raw, 8)
    if version != 1:
        raise package_error(f"{origin}: format version {version}, this reader reads 1")
    (crc,) = struct.unpack_from("<I", raw, len(raw) - 4)
    if zlib.crc32(raw[:-4]) & 0xFFFFFFFF != crc:
        raise package_error(f"{origin}: CRC mismatch")
    if 16 + head_len > len(raw) - 4:
        raise package_error(f"{origin}: header runs past the end")
    header = json.loads(raw[16:16 + head_len].decode("utf-8"))
    payload = raw[16 + head_len:-4]

    def blob(ref):
        o, n = ref["offset"], ref["size"]
        if o < 0 or o + n > len(payload):
            raise package_error(f"{origin}: blob at {o}+{n} past the payload ({len(payload)})")
        return payload[o:o + n]

    layers = []
    for spec in header["layers"]:
        layer = dict(spec)
        if spec["type"] in ("conv", "dense"):
            if spec["type"] == "conv":
                shape = (spec["out_channels"], spec["in_channels"], spec["kernel"], spec["kernel"])
            else:
                shape = (spec["out_features"], spec["in_features"])
            count = int(np.prod(shape))
            dt = spec["weights"]["dtype"]
            if dt == "float32":
                layer["w"] = np.frombuffer(blob(spec["weights"]), "<f4").reshape(shape)
                layer["b"] = np.frombuffer(blob(spec["bias"]), "<f4")
            else:
                bits = int(dt[3:])
                layer["w"] = unpack_signed(blob(spec["weights"]), bits, count).reshape(shape)
            act = spec.get("activation")
            if act and act["type"] == "thresholds":
                q = 2 ** act["bits"] - 1
                layer["t"] = np.frombuffer(blob(act["thresholds"]), "<i4").reshape(shape[0], q)
        layers.append(layer)
    return header, layers


def unpack_signed(data, bits, count):
    """Element i = bits [i*b, (i+1)*b) of the little-endian bit stream, two's complement."""
    if len(data) != (count * bits + 7) // 8:
        raise package_error(f"weight blob of {len(data)} bytes for {count} int{bits} values")
    out = np.empty(count, dtype=np.int64)
    for i in range(count):
        v = 0
        for b in range(bits):
            pos = i * bits + b
            v |= ((data[pos // 8] >> (pos % 8)) & 1) << b
        out[i] = v - (1 << bits) if v >= 1 << (bits - 1) else v
    return out


def _conv(x, w):
    """Valid conv, stride 1: x [C][H][W], w [O][C][K][K] -> [O][H-K+1][W-K+1]."""
    k = w.shape[2]
    win = sliding_window_view(x, (k, k), axis=(1, 2))  # C, H', W', K, K
    return np.einsum("chwij,ocij->ohw", win, w, optimize=True)


def _maxpool(x, k):
    c, h, w = x.shape
    h2, w2 = h // k, w // k
    return x[:, :h2 * k, :w2 * k].reshape(c, h2, k, w2, k).max(axis=(2, 4))


def forward(header, layers, image_u8):
    """Logits for one 255x255 uint8 image: int64 array (quantized, each checked to
    fit int32) or float64 array (float package)."""
    quantized = header["kind"] == "quantized"
    x = np.asarray(image_u8).reshape(header["input"]["channels"], header["input"]["height"],
                                     header["input"]["width"])
    x = x.astype(np.int64 if quantized else np.float64)
    for layer in layers:
        if layer["type"] == "maxpool":
            x = _maxpool(x, layer["kernel"])
            continue
        w = layer["w"].astype(np.int64 if quantized else np.float64)
        acc = _conv(x, w) if layer["type"] == "conv" else w @ x.reshape(-1)
        if quantized and (acc.min(initial=0) < -2 ** 31 or acc.max(initial=0) > 2 ** 31 - 1):
            raise package_error("accumulator outside int32")
        if not quantized:
            bias = layer["b"].astype(np.float64)
            acc = acc + (bias[:, None, None] if acc.ndim == 3 else bias)
        act = layer.get("activation")
        if act is None:
            x = acc
        elif act["type"] == "relu":
            x = np.maximum(acc, 0.0)
        else:
            t = layer["t"].astype(np.int64)
            shape = (-1,) + (1,) * (acc.ndim - 1)
            x = np.zeros_like(acc)
            for j in range(t.shape[1]):
                x += acc >= t[:, j].reshape(shape)
    return x.reshape(-1)


def predict(header, layers, image_u8):
    logits = forward(header, layers, image_u8)
    return int(np.argmax(logits)), logits
