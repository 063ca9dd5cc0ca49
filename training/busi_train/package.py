"""Writer of the .bqnn model package (spec: docs/model-format.md, format version 1).

build_package() takes plain numpy arrays per layer, packs them, and returns the
file's bytes; the C++ reader is busi::Model::load (runtime/src/model.cpp) and an
independent numpy reader lives in int_reference.py. input_hashes() is the hash of
the "seen_images" block (C++: busi::input_hash, runtime/src/seen_images.cpp) and
with_seen_images() adds that block to a package's bytes, changing nothing else.
"""
import json
import struct
import zlib

import numpy as np

MAGIC = b"BUSIQNN\0"
VERSION = 1
WEIGHT_RANGE = {2: 1, 4: 7, 8: 127}  # narrow range: [-q, q]


def pack_signed(values, bits):
    """FINN's packing: element i at bits [i*b, (i+1)*b) of one little-endian bit
    stream (bit 0 of byte 0 first), two's complement; trailing bits zero."""
    v = np.asarray(values, dtype=np.int64).reshape(-1)
    q = WEIGHT_RANGE[bits]
    if v.size and (v.min() < -q or v.max() > q):
        raise ValueError(f"weights outside the narrow int{bits} range [-{q}, {q}]: "
                         f"[{v.min()}, {v.max()}]")
    u = (v & ((1 << bits) - 1)).astype(np.uint8)
    # One row per element, its bits least significant first, then the rows laid
    # end to end form the stream; packbits(little) turns each 8 stream bits into a byte.
    stream = ((u[:, None] >> np.arange(bits, dtype=np.uint8)) & 1).reshape(-1)
    return np.packbits(stream, bitorder="little").tobytes()


class _payload:
    def __init__(self):
        self.chunks, self.size = [], 0

    def add(self, blob, **meta):
        ref = dict(meta, offset=self.size, size=len(blob))
        self.chunks.append(blob)
        self.size += len(blob)
        return ref

    def bytes(self):
        return b"".join(self.chunks)


FNV_OFFSET = np.uint64(0xcbf29ce484222325)
FNV_PRIME = np.uint64(0x100000001b3)


def input_hashes(tensors):
    """FNV-1a 64 of each pre-processed input tensor's bytes (row-major uint8), for
    an array of N tensors (N x H x W) or one (H x W): np.uint64 array of N. The
    images advance together, one byte position at a time (uint64 products wrap)."""
    t = np.ascontiguousarray(tensors, dtype=np.uint8)
    flat = t.reshape(-1 if t.ndim > 2 else 1, t.shape[-2] * t.shape[-1]).T
    h = np.full(flat.shape[1], FNV_OFFSET, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for column in flat:
            h = (h ^ column) * FNV_PRIME
    return h


def seen_images_block(hashes, preprocess, payload):
    """The header's "seen_images" object, its blob added to `payload` (a _payload)."""
    h = np.unique(np.asarray(hashes, dtype=np.uint64))  # sorted, distinct
    return {"hash": f"fnv1a64-{preprocess}", "count": int(h.size),
            "hashes": payload.add(h.astype("<u8").tobytes(), dtype="uint64")}


def with_seen_images(package_bytes, hashes):
    """The package with a "seen_images" block of `hashes` (replacing one it has):
    the header gains the key and the payload the blob at its end; every other key
    and byte stays as it was."""
    header, body = read_container(package_bytes)
    if "seen_images" in header:
        old = header.pop("seen_images")["hashes"]
        if old["offset"] + old["size"] != len(body):
            raise ValueError("the old seen_images blob is not at the payload's end")
        body = body[:old["offset"]]
    payload = _payload()
    payload.add(body)
    header["seen_images"] = seen_images_block(hashes, header["input"]["preprocess"], payload)
    return _container(header, payload.bytes())


def build_package(name, kind, layers, provenance, logit_scale=None,
                  classes=("normal", "benign", "malignant"),
                  input_shape=(1, 255, 255), preprocess="gray-area-v1", seen_hashes=None,
                  calibration=None):
    """layers: dicts, in order, one of
      {"type": "maxpool", "kernel": 2}
      {"type": "conv"|"dense", "weights": int array (OIHW / [out][in]) with "weight_bits",
       or float32 array with "bias" (float models), "thresholds": int array [out][2^b-1]
       with "act_bits" (quantized hidden), "relu": True (float hidden), neither (last)}.
    seen_hashes: input_hashes() of the images it was trained on (the "seen_images" block).
    calibration: the optional "calibration" block (calibrate.py), checked by
    check_calibration. Returns the package's bytes."""
    if kind not in ("quantized", "float"):
        raise ValueError(f"kind must be 'quantized' or 'float', not {kind!r}")
    payload = _payload()
    out_layers = []
    for i, layer in enumerate(layers):
        if layer["type"] == "maxpool":
            out_layers.append({"type": "maxpool", "kernel": int(layer["kernel"])})
            continue
        w = np.asarray(layer["weights"])
        entry = {"type": layer["type"]}
        if layer["type"] == "conv":
            if w.ndim != 4 or w.shape[2] != w.shape[3]:
                raise ValueError(f"layer {i}: conv weights must be OIHW square, got {w.shape}")
            entry.update(in_channels=int(w.shape[1]), out_channels=int(w.shape[0]),
                         kernel=int(w.shape[2]))
        elif layer["type"] == "dense":
            if w.ndim != 2:
                raise ValueError(f"layer {i}: dense weights must be [out][in], got {w.shape}")
            entry.update(in_features=int(w.shape[1]), out_features=int(w.shape[0]))
        else:
            raise ValueError(f"layer {i}: unknown type {layer['type']!r}")
        if kind == "quantized":
            bits = int(layer["weight_bits"])
            entry["weights"] = payload.add(pack_signed(w, bits), dtype=f"int{bits}")
            if "thresholds" in layer:
                t = np.asarray(layer["thresholds"], dtype=np.int64)
                abits = int(layer["act_bits"])
                if t.shape != (w.shape[0], 2 ** abits - 1):
                    raise ValueError(f"layer {i}: thresholds shape {t.shape}, expected "
                                     f"({w.shape[0]}, {2 ** abits - 1})")
                if np.any(np.diff(t, axis=1) < 0):
                    raise ValueError(f"layer {i}: thresholds must be non-decreasing per channel")
                if t.min() < -2 ** 31 or t.max() > 2 ** 31 - 1:
                    raise ValueError(f"layer {i}: thresholds outside int32")
                entry["activation"] = {"type": "thresholds", "bits": abits,
                                       "thresholds": payload.add(t.astype("<i4").tobytes())}
            else:
                entry["activation"] = None
        else:
            entry["weights"] = payload.add(np.asarray(w, dtype="<f4").tobytes(), dtype="float32")
            entry["bias"] = payload.add(np.asarray(layer["bias"], dtype="<f4").tobytes(),
                                        dtype="float32")
            entry["activation"] = {"type": "relu"} if layer.get("relu") else None
        out_layers.append(entry)
    header = {
        "format": "busi-qnn", "kind": kind, "name": name, "classes": list(classes),
        "input": {"height": input_shape[1], "width": input_shape[2],
                  "channels": input_shape[0], "dtype": "uint8", "preprocess": preprocess},
        "layers": out_layers,
    }
    if kind == "quantized":
        header["logit_scale"] = float(logit_scale)
    header["provenance"] = provenance
    if seen_hashes is not None:
        header["seen_images"] = seen_images_block(seen_hashes, preprocess, payload)
    if calibration is not None:
        header["calibration"] = check_calibration(calibration, len(classes))
    return _container(header, payload.bytes())


def _container(header, payload):
    head = json.dumps(header, indent=1).encode("utf-8")
    body = MAGIC + struct.pack("<II", VERSION, len(head)) + head + payload
    return body + struct.pack("<I", zlib.crc32(body) & 0xFFFFFFFF)


IMAGE_STATISTICS = 14  # the gate's features before the logits (Calibration::Gate, model.hpp)


def check_calibration(block, classes=3):
    """The block, after the checks the C++ reader makes (so a tool cannot write a
    package the runtime refuses): ValueError naming the field."""
    def number(obj, key, path, low, high):
        v = obj.get(key) if isinstance(obj, dict) else None
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not low <= v <= high:
            raise ValueError(f"{path}.{key} = {v!r} is not a number in [{low}, {high}]")

    if not isinstance(block.get("fitted_on"), str):
        raise ValueError("calibration.fitted_on must be a string naming the images")
    number(block, "temperature", "calibration", 1e-3, 1e3)
    gate = block.get("gate", {})
    features = IMAGE_STATISTICS + classes
    for key, low, high in (("min_side", 1, 8192), ("min_stddev", 0, 255), ("max_colour", 0, 510),
                           ("ood_threshold", 0, 1e12), ("accepted_rate", 0, 1)):
        number(gate, key, "calibration.gate", low, high)
    if gate.get("ood_score") != "image-logit-mahalanobis-v1":
        raise ValueError(f"calibration.gate.ood_score = {gate.get('ood_score')!r} is not image-logit-mahalanobis-v1")
    params = gate.get("ood_params", {})
    for key, count in (("mean", features), ("precision", features * features)):
        v = np.asarray(params.get(key, []), dtype=float)
        if v.shape != (count,) or not np.all(np.isfinite(v)):
            raise ValueError(f"calibration.gate.ood_params.{key} must hold {count} finite numbers")
    for name in ("referral", "suspicious"):
        point = block.get(name, {})
        for key in ("target_sensitivity", "threshold", "sensitivity", "specificity"):
            number(point, key, f"calibration.{name}", 0, 1)
        curve = np.asarray(point.get("curve", []), dtype=float)
        if curve.ndim != 2 or curve.shape[1] != 3 or len(curve) == 0 or np.any((curve < 0) | (curve > 1)):
            raise ValueError(f"calibration.{name}.curve must be [[threshold, sensitivity, specificity], ...] in [0, 1]")
        if np.any(np.diff(curve[:, 0]) < 0):
            raise ValueError(f"calibration.{name}.curve: thresholds must be ascending")
    return block


def read_container(package_bytes):
    """(header dict, payload bytes) of a package, its magic, version and CRC checked."""
    raw = bytes(package_bytes)
    if len(raw) < 20 or raw[:8] != MAGIC:
        raise ValueError("not a .bqnn package (bad magic or too short)")
    version, head_len = struct.unpack_from("<II", raw, 8)
    if version != VERSION:
        raise ValueError(f"format version {version}, this writer writes {VERSION}")
    if zlib.crc32(raw[:-4]) & 0xFFFFFFFF != struct.unpack_from("<I", raw, len(raw) - 4)[0]:
        raise ValueError("CRC mismatch: the package is corrupt")
    return json.loads(raw[16:16 + head_len].decode("utf-8")), raw[16 + head_len:-4]


def with_calibration(package_bytes, calibration):
    """The package with its "calibration" block replaced (None: removed); every
    other header key and the payload stay as they were."""
    header, payload = read_container(package_bytes)
    header.pop("calibration", None)
    if calibration is not None:
        header["calibration"] = check_calibration(calibration, len(header["classes"]))
    return _container(header, payload)
