"""Imports a QONNX graph of this network family into a quantized .bqnn package.

  python3 -m busi_train.qonnx_import MODEL.onnx -o MODEL.bqnn [--name NAME]
  (the same as `busi-model import MODEL.onnx -o MODEL.bqnn`)

Reads the graph as Brevitas's export_qonnx writes it and as export.py writes it:
Quant nodes on weights and activations, BatchNormalization, Relu, MaxPool,
Flatten/Reshape, Conv, MatMul or Gemm, constant Mul/Div/Add/Sub (an input
scaling such as /255), Identity and Transpose on constants, an optional final
TopK, ArgMax or Softmax. Needs numpy and onnx only (not qonnx).

Streamlining, as FINN does it but computed directly: each tensor on the chain is
tracked as real = alpha_c * X + beta_c, X an integer tensor the runtime holds
(the uint8 pixels, a previous layer's levels, or an int32 accumulator). A
linear layer with quantized weights W = s_o * Wint turns levels into an
accumulator ACC = sum Wint * X (the input scale must be one number for all input
channels, so the sum is integer); BatchNormalization and constant affine nodes
fold into (A_o, B_o); Relu and the activation Quant become the layer's
thresholds: level >= j exactly when ACC >= t_j (ACC' = -ACC with flipped weights
for channels whose A_o is negative, FINN's trick), each t_j derived from the
Quant's scale, zero point, range (signed or not, narrow or not) and rounding
mode (ties included). A Quant applied to levels (e.g. Brevitas's input
QuantIdentity) is checked on every possible level and must be affine in it.
The last layer's logits must share one positive scale and have no per-class
offset; the package stores logit_scale = A.

Refused, with the node's name and the reason: operators outside that list,
datatypes the runtime cannot hold exactly (bipolar/1-bit, more than 8 bits,
a non-integer bit width, a weight zero point), scale chains that do not give an
integer sum (per-channel input scales into a linear layer, a rounding quantizer
on levels), shapes of another family (padding, strides, groups, several
channels of input), and files that are not ONNX.
"""
import argparse
import hashlib
import math
import sys
from pathlib import Path

import numpy as np

from . import package

INT32_MIN, INT32_MAX = -2 ** 31, 2 ** 31 - 1
QUANT_DOMAINS = ("qonnx.custom_op.general", "onnx.brevitas", "finn.custom_op.general")
STORAGE_BITS = (2, 4, 8)  # what the package holds, weights and activations
KNOWN_INPUT_TYPES = {"UINT8": (0, 255)}


class import_error(ValueError):
    """A graph this importer cannot turn into an integer-exact package."""


def _fail(node, reason):
    who = f"node '{node.name or node.output[0]}' ({node.op_type})" if node is not None else "model"
    raise import_error(f"{who}: {reason}")


def _attrs(node):
    from onnx import helper
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


# --- rounding: when is R(u) >= c, for an integer c? As (t, strict): u >= t or u > t.
def _level_condition(mode, c):
    if mode in ("ROUND", "HALF_EVEN"):      # numpy's round: ties to even
        return c - 0.5, c % 2 != 0
    if mode == "HALF_UP":                    # ties away from zero
        return c - 0.5, c <= 0
    if mode == "FLOOR":
        return float(c), False
    if mode == "CEIL":
        return c - 1.0, True
    if mode == "DOWN":                       # toward zero
        return (float(c), False) if c >= 1 else (c - 1.0, True)
    if mode == "UP":                         # away from zero
        return (c - 1.0, True) if c >= 1 else (float(c), False)
    raise KeyError(mode)


def _round(mode, v):
    return {"ROUND": np.round, "HALF_EVEN": np.round, "FLOOR": np.floor, "CEIL": np.ceil,
            "HALF_UP": lambda x: np.sign(x) * np.floor(np.abs(x) + 0.5),
            "DOWN": np.fix, "UP": lambda x: np.sign(x) * np.ceil(np.abs(x))}[mode](v)


class quant_spec:
    """A Quant node's parameters, checked: integer bit width 2..8 (weights may be
    any 2..8, activations too; 1 bit is BIPOLAR, which the runtime does not run)."""

    def __init__(self, node, attrs, scale, zeropt, bitwidth, max_bits=8):
        bw = np.asarray(bitwidth, np.float64).reshape(-1)
        if bw.size != 1:
            _fail(node, "bit width must be one number")
        b = float(bw[0])
        if b != math.floor(b) or not 2 <= b <= max_bits:
            _fail(node, f"datatype with bit width {b:g} not supported (integers 2..{max_bits}; "
                        "1 bit is BIPOLAR, which the runtime does not run)")
        self.bits = int(b)
        self.signed = bool(attrs.get("signed", 1))
        self.narrow = bool(attrs.get("narrow", 0))
        mode = attrs.get("rounding_mode", "ROUND")
        self.mode = (mode.decode() if isinstance(mode, bytes) else mode).upper()
        try:
            _level_condition(self.mode, 1)
        except KeyError:
            _fail(node, f"rounding mode {self.mode!r} not supported "
                        "(ROUND/HALF_EVEN, HALF_UP, FLOOR, CEIL, UP, DOWN)")
        if self.signed:
            self.lo = -(2 ** (self.bits - 1)) + (1 if self.narrow else 0)
            self.hi = 2 ** (self.bits - 1) - 1
        else:
            self.lo, self.hi = 0, 2 ** self.bits - 1 - (1 if self.narrow else 0)
        self.scale = np.asarray(scale, np.float32)
        self.zeropt = np.asarray(zeropt, np.float32)
        if not np.all(np.isfinite(self.scale)) or np.any(self.scale <= 0):
            _fail(node, "scale must be finite and positive")
        self.datatype = f"{'' if self.signed else 'U'}INT{self.bits}"

    def apply(self, x, dtype=np.float64):
        """The Quant's integers (before - zeropt, * scale), as qonnx computes them."""
        v = np.asarray(x, dtype) / self.scale.astype(dtype) + self.zeropt.astype(dtype)
        return np.clip(_round(self.mode, v), self.lo, self.hi)


class qconst:
    """A quantized constant: real = (q - zeropt) * scale, all broadcast to q's shape."""

    def __init__(self, q, zeropt, scale, spec):
        self.q, self.zeropt, self.scale, self.spec = q, zeropt, scale, spec

    def map(self, f):
        return qconst(f(self.q), f(self.zeropt), f(self.scale), self.spec)


class chain:
    """The one activation tensor on the chain: real = alpha_c * X + beta_c.
    kind "levels": X integer in [0, n] (n = 255 for the pixels).
    kind "acc": X the int32 accumulator of the open layer `layer`."""

    def __init__(self, shape, n, alpha, beta):
        self.kind, self.shape, self.n = "levels", tuple(shape), n
        self.alpha, self.beta = np.asarray(alpha, np.float64), np.asarray(beta, np.float64)
        self.layer = None
        self.relu = False
        self.pool = None       # a MaxPool seen between the linear node and its Quant
        self.final = None      # TopK/ArgMax/Softmax after the logits


def _channel_vector(node, value, shape, what):
    """A constant broadcast against the chain tensor (N, C[, H, W]): one number per
    channel (or one for all), else refused."""
    v = np.asarray(value, np.float64)
    c = shape[0]
    try:
        full = np.broadcast_to(v, (1,) + tuple(shape))
    except ValueError:
        _fail(node, f"{what} of shape {v.shape} does not broadcast to {(1,) + tuple(shape)}")
    per = full.reshape(c, -1)
    if np.any(per != per[:, :1]):
        _fail(node, f"{what} varies within a channel (not a per-channel scale chain)")
    return per[:, 0].copy()


def _storage_bits(node, q, spec):
    """The package's narrow int2/int4/int8 holding these integers: the declared
    width when its narrow range holds them, else the smallest that does."""
    m = int(np.abs(q).max()) if q.size else 0
    for b in STORAGE_BITS:
        if b >= spec.bits and 2 ** (b - 1) - 1 >= m:
            return b
    _fail(node, f"weights of {spec.datatype} reach {m}, more than narrow int8 holds")


def _per_output(node, qc, axis, what):
    """Scale per output channel (axis), checked constant over the other axes."""
    s = np.moveaxis(np.asarray(qc.scale, np.float64), axis, 0).reshape(qc.scale.shape[axis], -1)
    if np.any(s != s[:, :1]):
        _fail(node, f"{what} scale varies within an output channel")
    return s[:, 0]


def _thresholds(node, A, B, relu, spec, scale, zeropt, n_levels, out_bits):
    """Per channel c: (thresholds over ACC or -ACC, flip). The level is
    clip(R(g(y)/s + z), lo, hi) - lo with y = A ACC + B, g = relu or identity."""
    C = len(A)
    q = 2 ** out_bits - 1
    t = np.full((C, q), INT32_MAX, np.int64)
    flip = A < 0
    for c in range(C):
        s, z = float(scale[c]), float(zeropt[c])
        for j in range(1, n_levels + 1):
            tu, strict = _level_condition(spec.mode, spec.lo + j)
            T = (tu - z) * s  # g(y) >= T (or > T)
            always = relu and (T < 0 or (T == 0 and not strict))
            if always:
                t[c, j - 1] = INT32_MIN
                continue
            a, b = float(A[c]), float(B[c])
            if a == 0:
                holds = b > T if strict else b >= T
                t[c, j - 1] = INT32_MIN if holds else INT32_MAX
                continue
            v = (T - b) / abs(a)
            k = math.floor(v) + 1 if strict else math.ceil(v)
            t[c, j - 1] = min(max(k, INT32_MIN), INT32_MAX)
    return t, flip


def _load(source):
    import onnx
    from google.protobuf.message import DecodeError
    data = source if isinstance(source, (bytes, bytearray)) else Path(source).read_bytes()
    try:
        model = onnx.load_model_from_string(bytes(data))
    except (DecodeError, RuntimeError, ValueError) as e:
        raise import_error(f"not an ONNX model (truncated or corrupt protobuf): {e}") from None
    if not model.graph.node:
        raise import_error("not an ONNX model (no graph nodes; truncated or empty file?)")
    return model, data


def import_qonnx(source, name=None, source_name=None):
    """source: a path or the file's bytes. Returns (package bytes, summary dict)."""
    from onnx import numpy_helper
    model, data = _load(source)
    g = model.graph
    consts = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    inputs = [i for i in g.input if i.name not in consts]
    if len(inputs) != 1:
        raise import_error(f"the graph must have one input, it has {len(inputs)} "
                           f"({', '.join(i.name for i in inputs)})")
    inp = inputs[0]
    dims = [d.dim_value if d.HasField("dim_value") else None for d in inp.type.tensor_type.shape.dim]
    if len(dims) != 4 or dims[1] is None or dims[2] is None or dims[3] is None:
        raise import_error(f"input '{inp.name}': shape {dims}, this family takes N x 1 x H x W images")
    if dims[1] != 1:
        raise import_error(f"input '{inp.name}': {dims[1]} channels, this family takes one "
                           "(gray-area-v1 grayscale)")
    in_type = "UINT8"
    for qa in g.quantization_annotation:
        if qa.tensor_name == inp.name:
            for e in qa.quant_parameter_tensor_names:
                if e.key == "finn_datatype":
                    in_type = e.value
    if in_type not in KNOWN_INPUT_TYPES:
        raise import_error(f"input '{inp.name}': datatype {in_type} not supported "
                           f"(the runtime feeds {', '.join(KNOWN_INPUT_TYPES)} pixels)")
    values = dict(consts)
    x = chain((1, dims[2], dims[3]), 255, [1.0], [0.0])
    values[inp.name] = x
    layers, notes = [], []
    datatypes = {"input": in_type, "weights": set(), "activations": set()}
    produced = set(values)

    def close_open_layer_check(node):
        if x.kind == "acc":
            _fail(node, "a linear layer's output reaches this node without a quantized activation "
                        "(Quant) in between")

    for node in g.node:
        op, attrs = node.op_type, _attrs(node)
        for tensor in node.input:
            if tensor and tensor not in values:
                _fail(node, f"input '{tensor}' is produced by no earlier node (graph truncated or "
                            "not topologically sorted)")
        ins = [values[n] if n else None for n in node.input]
        on_chain = [v for v in ins if isinstance(v, chain)]
        if x.final is not None and on_chain:
            _fail(node, f"follows the network's final {x.final}; only TopK, ArgMax or Softmax may end it")
        # Constant subgraphs: evaluated here (weights, their Quant, Transpose, ...).
        if not on_chain:
            out = _const_node(node, op, attrs, ins)
            for tensor, v in zip(node.output, out):
                values[tensor] = v
            continue
        if op in ("Mul", "Add") and len(ins) == 2 and ins[1] is x:
            ins = [ins[1], ins[0]]  # commutative: the chain first
        if len(on_chain) != 1 or ins[0] is not x:
            _fail(node, "joins two activation tensors or takes the activation as a parameter "
                        "(not a chain of this family)")
        result = x
        if op in ("Identity", "Dropout"):
            pass
        elif op in ("Mul", "Div", "Add", "Sub"):
            c = ins[1]
            if not isinstance(c, np.ndarray):
                _fail(node, "second operand must be a constant")
            v = _channel_vector(node, c, x.shape, "constant")
            if x.kind == "acc" and (x.relu or x.pool is not None):
                _fail(node, "affine node after Relu/MaxPool and before the activation Quant "
                            "is not supported")
            if op in ("Mul", "Div"):
                if np.any(v == 0):
                    _fail(node, "multiplies by zero")
                f = v if op == "Mul" else 1.0 / v
                x.alpha, x.beta = x.alpha * f, x.beta * f
            else:
                x.beta = x.beta + (v if op == "Add" else -v)
        elif op == "BatchNormalization":
            if x.kind != "acc" or x.relu or x.pool is not None:
                _fail(node, "BatchNormalization only between a linear node and its Relu/Quant")
            g_, b_, mean, var = (np.asarray(v, np.float64) for v in ins[1:5])
            k = g_ / np.sqrt(var + float(attrs.get("epsilon", 1e-5)))
            x.alpha, x.beta = x.alpha * k, k * (x.beta - mean) + b_
        elif op == "Relu":
            if x.kind != "acc":
                # Levels are never negative when their scale and offset are not.
                if np.all(x.alpha >= 0) and np.all(x.beta >= 0):
                    pass
                else:
                    _fail(node, "Relu on quantized levels that can be negative")
            elif x.relu:
                pass
            else:
                x.relu = True
        elif op == "MaxPool":
            k = attrs.get("kernel_shape", [])
            if (len(k) != 2 or k[0] != k[1] or list(attrs.get("strides", k)) != list(k)
                    or any(attrs.get("pads", [0] * 4)) or attrs.get("ceil_mode", 0)
                    or attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", b"VALID", "NOTSET", "VALID")
                    or any(d != 1 for d in attrs.get("dilations", [1, 1]))):
                _fail(node, f"MaxPool must be square, stride = kernel, no padding, floor mode "
                            f"(got kernel {k}, strides {attrs.get('strides')}, pads {attrs.get('pads')})")
            if len(x.shape) != 3:
                _fail(node, "MaxPool after Flatten")
            kk = int(k[0])
            if x.kind == "acc":
                if x.pool is not None:
                    _fail(node, "two MaxPools in one layer")
                x.pool = kk  # max commutes with the (monotone) Relu and Quant that follow
            else:
                if np.any(x.alpha <= 0):
                    _fail(node, "MaxPool on levels with a non-positive scale (max would become min)")
                layers.append({"type": "maxpool", "kernel": kk})
            c, h, w = x.shape
            x.shape = (c, h // kk, w // kk)
        elif op in ("Flatten", "Reshape"):
            close_open_layer_check(node)
            if op == "Flatten" and attrs.get("axis", 1) != 1:
                _fail(node, "Flatten must keep the batch axis (axis=1)")
            if op == "Reshape":
                sh = np.asarray(ins[1]).reshape(-1).tolist()
                total = int(np.prod(x.shape))
                if not (len(sh) == 2 and sh[1] in (-1, total) and sh[0] in (-1, 0, 1)):
                    _fail(node, f"Reshape to {sh}: only a flatten to (N, {total}) is supported")
            size = int(np.prod(x.shape))
            rep = size // x.shape[0]
            x.alpha, x.beta = np.repeat(x.alpha, rep), np.repeat(x.beta, rep)
            x.shape = (size,)
        elif op in ("Conv", "MatMul", "Gemm"):
            close_open_layer_check(node)
            _linear(node, op, attrs, ins, x, layers, datatypes, notes)
        elif op == "Quant":
            if node.domain not in QUANT_DOMAINS:
                _fail(node, f"Quant of domain '{node.domain}' unknown")
            if not all(isinstance(v, np.ndarray) for v in ins[1:4]):
                _fail(node, "scale, zero point and bit width must be constants")
            spec = quant_spec(node, attrs, ins[1], ins[2], ins[3])
            scale = _channel_vector(node, spec.scale, x.shape, "scale")
            zeropt = _channel_vector(node, spec.zeropt, x.shape, "zero point")
            if x.kind == "levels":
                _requantize(node, x, spec, scale, zeropt)
            else:
                _activation(node, x, spec, scale, zeropt, layers, datatypes)
        elif op in ("TopK", "ArgMax", "Softmax", "LogSoftmax"):
            if x.kind != "acc" or x.relu or x.pool is not None or len(x.shape) != 1:
                _fail(node, f"{op} must follow the last linear layer's logits directly")
            if op == "TopK" and int(np.asarray(ins[1]).reshape(-1)[0]) != 1:
                _fail(node, "TopK with k != 1")
            if op in ("TopK", "ArgMax") and attrs.get("largest", 1) != 1:
                _fail(node, f"{op} of the smallest value")
            x.final = op
        else:
            _fail(node, f"operator {op} not supported by this family's importer")
        for tensor in node.output:
            if tensor:
                values[tensor] = result
    if x.kind != "acc":
        raise import_error("the graph does not end in a linear layer's logits (no final Conv, "
                           "MatMul or Gemm without activation)")
    logit_scale = _finish_logits(x, layers)
    datatypes = {"input": datatypes["input"], "weights": sorted(datatypes["weights"]),
                 "activations": sorted(datatypes["activations"])}
    src = bytes(data)
    provenance = {
        "importer": "busi-model import (training/busi_train/qonnx_import.py)",
        "source": source_name or (str(source) if not isinstance(source, (bytes, bytearray)) else None),
        "source_sha256": hashlib.sha256(src).hexdigest(),
        "source_producer": f"{model.producer_name} {model.producer_version}".strip(),
        "source_graph": g.name, "datatypes": datatypes, "notes": notes,
    }
    pkg_name = name or g.name or "imported"
    body = package.build_package(pkg_name, "quantized", [_plain(l) for l in layers], provenance,
                                 logit_scale=logit_scale, input_shape=(1, dims[2], dims[3]))
    return body, {"name": pkg_name, "layers": layers, "logit_scale": logit_scale,
                  "provenance": provenance}


def _plain(layer):
    return {k: v for k, v in layer.items() if not k.startswith("_")}


def _const_node(node, op, attrs, ins):
    from onnx import numpy_helper
    if op == "Constant":
        if "value" not in attrs:
            _fail(node, "Constant without a tensor value")
        return [numpy_helper.to_array(attrs["value"])]
    if op == "Quant":
        if node.domain not in QUANT_DOMAINS:
            _fail(node, f"Quant of domain '{node.domain}' unknown")
        if not isinstance(ins[0], np.ndarray):
            _fail(node, "Quant of a quantized constant")
        spec = quant_spec(node, attrs, ins[1], ins[2], ins[3])
        w = np.asarray(ins[0], np.float32)
        q = spec.apply(w, np.float32).astype(np.float64)  # float32, as qonnx runs it
        full = lambda a: np.broadcast_to(np.asarray(a, np.float64), w.shape).copy()
        return [qconst(q, full(spec.zeropt), full(spec.scale), spec)]
    if op in ("Identity", "Cast"):
        return [ins[0]]
    if op == "Transpose":
        perm = attrs.get("perm")
        f = (lambda a: np.transpose(a, perm))
        return [ins[0].map(f) if isinstance(ins[0], qconst) else f(ins[0])]
    if any(isinstance(v, qconst) for v in ins):
        _fail(node, f"{op} on a quantized constant is not supported")
    if op in ("Mul", "Div", "Add", "Sub"):
        a, b = ins
        return [{"Mul": np.multiply, "Div": np.divide, "Add": np.add, "Sub": np.subtract}[op](a, b)]
    if op == "Reshape":
        return [np.reshape(ins[0], np.asarray(ins[1]).astype(np.int64))]
    if op in ("Unsqueeze", "Squeeze"):
        axes = attrs.get("axes", None if len(ins) < 2 else np.asarray(ins[1]).tolist())
        return [np.expand_dims(ins[0], axes) if op == "Unsqueeze" else np.squeeze(ins[0], tuple(axes) if axes else None)]
    _fail(node, f"operator {op} on constants not supported")


def _linear(node, op, attrs, ins, x, layers, datatypes, notes):
    w = ins[1]
    if not isinstance(w, qconst):
        _fail(node, "weights must be a constant through a Quant node (integer weights); "
                    "float weights cannot run integer-exact")
    spec = w.spec
    if np.any(w.zeropt != 0):
        _fail(node, "weight zero point must be 0")
    bias = ins[2] if len(ins) > 2 else None
    if bias is not None and not isinstance(bias, np.ndarray):
        _fail(node, "bias must be a float constant")
    if op == "Conv":
        if len(x.shape) != 3:
            _fail(node, "Conv after Flatten")
        ks = list(w.q.shape[2:])
        bad = [f"{k}={attrs[k]}" for k, ok in (
            ("pads", lambda v: not any(v)), ("strides", lambda v: all(s == 1 for s in v)),
            ("dilations", lambda v: all(s == 1 for s in v)), ("group", lambda v: v == 1),
            ("auto_pad", lambda v: v in (b"NOTSET", b"VALID", "NOTSET", "VALID")))
            if k in attrs and not ok(attrs[k])]
        if bad or len(ks) != 2 or ks[0] != ks[1]:
            _fail(node, "this family's convolutions are square, valid (no padding), stride 1, "
                        f"dilation 1, one group; got kernel {ks} {' '.join(bad)}")
        wq, axis = w, 0
        if wq.q.shape[1] != x.shape[0]:
            _fail(node, f"weights for {wq.q.shape[1]} input channels, the input has {x.shape[0]}")
        kind = "conv"
    else:
        if len(x.shape) != 1:
            _fail(node, f"{op} on a {len(x.shape) + 1}-d tensor: Flatten first")
        wq = w
        if op == "Gemm":
            if attrs.get("transA", 0):
                _fail(node, "Gemm with transA")
            if not attrs.get("transB", 0):
                wq = w.map(lambda a: a.T)
            alpha = float(attrs.get("alpha", 1.0))
            if alpha != 1.0:
                wq = qconst(wq.q, wq.zeropt, wq.scale * alpha, spec)
            if bias is not None:
                bias = np.asarray(bias, np.float64) * float(attrs.get("beta", 1.0))
        else:
            wq = w.map(lambda a: a.T)  # MatMul: x [N][in] @ W [in][out]
        if wq.q.ndim != 2 or wq.q.shape[1] != x.shape[0]:
            _fail(node, f"weights {list(w.q.shape)} do not take {x.shape[0]} inputs")
        axis = 0
        kind = "dense"
    s = _per_output(node, wq, axis, "weight")
    a = x.alpha
    if np.any(a != a[0]):
        _fail(node, "its input's scale differs between channels, so the integer sum "
                    "would need per-channel factors (not integer-exact)")
    q = wq.q.astype(np.int64)
    # Input offsets (zero points, signed levels) add a constant per output channel.
    beta = x.beta
    if kind == "conv":
        offset = np.einsum("oikl,i->o", q, beta)
    else:
        offset = q @ beta
    B = s * offset
    if bias is not None:
        bv = np.asarray(bias, np.float64).reshape(-1)
        B = B + (bv if bv.size == len(s) else np.broadcast_to(bv, s.shape))
    bits = _storage_bits(node, q, spec)
    if bits != spec.bits:
        notes.append(f"{node.name}: {spec.datatype}{' narrow' if spec.narrow else ''} weights "
                     f"stored as narrow int{bits}")
    datatypes["weights"].add(spec.datatype)
    layer = {"type": kind, "weights": q, "weight_bits": bits, "_node": node.name}
    layers.append(layer)
    c_out = q.shape[0]
    x.kind, x.layer, x.relu, x.pool = "acc", layer, False, None
    x.alpha, x.beta = s * float(a[0]), B
    if kind == "conv":
        k = q.shape[2]
        x.shape = (c_out, x.shape[1] - k + 1, x.shape[2] - k + 1)
        if x.shape[1] < 1 or x.shape[2] < 1:
            _fail(node, "kernel larger than its input")
    else:
        x.shape = (c_out,)


def _requantize(node, x, spec, scale, zeropt):
    """A Quant on levels (an input QuantIdentity, a re-quantizer): every level is
    tried; the result must be affine in the level, or the layer is not exact."""
    levels = np.arange(x.n + 1, dtype=np.float64)
    C = len(x.alpha)
    new_alpha, new_beta = np.empty(C), np.empty(C)
    for c in range(C):
        real = (x.alpha[c] * levels + x.beta[c]).astype(np.float32)
        q = np.clip(_round(spec.mode, real / np.float32(scale[c]) + np.float32(zeropt[c])),
                    spec.lo, spec.hi).astype(np.float64)
        step = q[1] - q[0] if len(q) > 1 else 0.0
        if not np.array_equal(q, q[0] + step * levels) or step == 0:
            _fail(node, f"quantizes {x.n + 1} integer levels with scale {scale[c]:g} into values "
                        "that are not an affine map of them (rounding or clipping merges levels); "
                        "only a lossless re-scaling of integer levels is exact")
        new_alpha[c] = step * float(scale[c])
        new_beta[c] = (q[0] - float(zeropt[c])) * float(scale[c])
    x.alpha, x.beta = new_alpha, new_beta


def _activation(node, x, spec, scale, zeropt, layers, datatypes):
    """Relu? + Quant closing a linear layer: its thresholds."""
    n_levels = spec.hi - spec.lo
    out_bits = next((b for b in STORAGE_BITS if 2 ** b - 1 >= n_levels), None)
    if out_bits is None:
        _fail(node, f"{n_levels + 1} activation levels need more than 8 bits")
    t, flip = _thresholds(node, x.alpha, x.beta, x.relu, spec, scale, zeropt, n_levels, out_bits)
    layer = x.layer
    layer["weights"] = np.where(flip.reshape([-1] + [1] * (layer["weights"].ndim - 1)),
                                -layer["weights"], layer["weights"])
    layer["thresholds"] = t
    layer["act_bits"] = out_bits
    datatypes["activations"].add(spec.datatype + (" narrow" if spec.narrow else ""))
    if x.pool is not None:
        layers.append({"type": "maxpool", "kernel": x.pool})
    x.kind, x.layer, x.relu, x.pool = "levels", None, False, None
    x.n = n_levels
    # level L' = L - lo; real = (L - zeropt) * scale = scale * L' + scale * (lo - zeropt)
    x.alpha = scale.astype(np.float64)
    x.beta = scale.astype(np.float64) * (spec.lo - zeropt.astype(np.float64))


def _finish_logits(x, layers):
    """The last layer: one positive scale, no per-class offset."""
    layer = x.layer
    node = type("n", (), {"name": layer["_node"], "op_type": "logits", "output": [""]})()
    if x.relu or x.pool is not None:
        _fail(node, "the logits pass through Relu/MaxPool (the package's last layer has no activation)")
    A, B = x.alpha, x.beta
    if np.any(A != A[0]) or A[0] == 0:
        _fail(node, "the logits' scale differs between classes (per-channel weight scale on the "
                    "last layer): the argmax of the integer accumulators would not be the graph's")
    if np.any(B != 0):
        _fail(node, "the logits have a per-class offset (bias or input zero point): the package's "
                    "logits are integer accumulators with one scale")
    if A[0] < 0:
        layer["weights"] = -layer["weights"]
    return float(abs(A[0]))


# tools/cli.hpp's exit_fatal: nothing could be done (a bad or unsupported model).
EXIT_FATAL = 3


def main(argv=None):
    p = argparse.ArgumentParser(prog="busi-model import", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="QONNX file (.onnx)")
    p.add_argument("-o", "--output", required=True, help="the .bqnn to write")
    p.add_argument("--name", help="the package's name (default: the graph's name)")
    args = p.parse_args(argv)
    try:
        body, summary = import_qonnx(args.model, args.name, source_name=Path(args.model).name)
    except (import_error, OSError, ValueError) as e:  # ValueError: package.build_package's checks
        print(f"busi-model: error: {args.model}: {e}", file=sys.stderr)
        return EXIT_FATAL
    Path(args.output).write_bytes(body)
    kinds = [f"{l['type']}" + (f" w{l['weight_bits']}" if "weight_bits" in l else "")
             + (f"a{l['act_bits']}" if "act_bits" in l else "") for l in summary["layers"]]
    print(f"wrote {args.output} ({len(body)} bytes): {summary['name']}, {', '.join(kinds)}; "
          f"logit scale {summary['logit_scale']:.6g}; source sha256 "
          f"{summary['provenance']['source_sha256'][:16]}...")
    for note in summary["provenance"]["notes"]:
        print("note:", note)
    return 0


if __name__ == "__main__":
    sys.exit(main())
