"""Executes the QONNX graphs export.py writes, in numpy and float64 (no qonnx/FINN here).

The node types export.qonnx_model emits, and the few more Brevitas's export_qonnx
writes for the same network (Identity, Transpose, Mul, Gemm, Constant, Reshape): in
float64 it is the exact-arithmetic reading of a graph, against which the float32
of qonnx/onnxruntime can be judged at near-ties. Quant follows the QONNX definition
(qonnx.custom_op.general.quant): q = clip(round(x/scale + zeropt), min, max),
out = (q - zeropt) * scale, with min/max from bitwidth, signed and narrow.
"""
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from onnx import numpy_helper


def _attrs(node):
    out = {}
    for a in node.attribute:
        if a.type == a.INT:
            out[a.name] = a.i
        elif a.type == a.FLOAT:
            out[a.name] = a.f
        elif a.type == a.STRING:
            out[a.name] = a.s.decode()
        elif a.type == a.INTS:
            out[a.name] = list(a.ints)
    return out


def quant(x, scale, zeropt, bits, signed, narrow, rounding_mode="ROUND"):
    bits = int(bits)
    if signed:
        lo, hi = -(2 ** (bits - 1)) + (1 if narrow else 0), 2 ** (bits - 1) - 1
    else:
        lo, hi = 0, 2 ** bits - 1 - (1 if narrow else 0)
    v = x / scale + zeropt
    r = {"ROUND": np.round, "HALF_EVEN": np.round, "FLOOR": np.floor, "CEIL": np.ceil,
         "HALF_UP": lambda u: np.sign(u) * np.floor(np.abs(u) + 0.5),
         "UP": lambda u: np.sign(u) * np.ceil(np.abs(u)), "DOWN": np.fix}[rounding_mode.upper()](v)
    return (np.clip(r, lo, hi) - zeropt) * scale


def _conv(x, w):
    k = w.shape[2]
    win = sliding_window_view(x, (k, k), axis=(2, 3))  # N, C, H', W', K, K
    return np.einsum("nchwij,ocij->nohw", win, w, optimize=True)


def run(model, x):
    env = {t.name: numpy_helper.to_array(t).astype(np.float64)
           if numpy_helper.to_array(t).dtype.kind == "f" else numpy_helper.to_array(t)
           for t in model.graph.initializer}
    inputs = [v for v in model.graph.input if v.name not in env]
    env[inputs[0].name] = np.asarray(x, np.float64)
    for node in model.graph.node:
        a = _attrs(node)
        i = [env[n] for n in node.input]
        op = node.op_type
        if op == "Constant":
            out = [numpy_helper.to_array(node.attribute[0].t).astype(np.float64)]
        elif op == "Identity":
            out = [i[0]]
        elif op == "Transpose":
            out = [np.transpose(i[0], a.get("perm"))]
        elif op == "Div":
            out = [i[0] / i[1]]
        elif op == "Mul":
            out = [i[0] * i[1]]
        elif op == "Gemm":
            w = i[1].T if a.get("transB", 0) else i[1]
            out = [i[0] @ w + (i[2] if len(i) > 2 else 0)]
        elif op == "Quant":
            out = [quant(i[0], i[1], i[2], i[3], a["signed"], a["narrow"],
                         a.get("rounding_mode", "ROUND"))]
        elif op == "Conv":
            out = [_conv(i[0], i[1])]
        elif op == "MatMul":
            out = [i[0] @ i[1]]
        elif op == "BatchNormalization":
            x0, g, b, m, v = i
            sh = (1, -1) + (1,) * (x0.ndim - 2)
            out = [(x0 - m.reshape(sh)) / np.sqrt(v.reshape(sh) + a.get("epsilon", 1e-5))
                   * g.reshape(sh) + b.reshape(sh)]
        elif op == "Relu":
            out = [np.maximum(i[0], 0)]
        elif op == "MaxPool":
            k = a["kernel_shape"][0]
            n, c, h, w = i[0].shape
            h2, w2 = h // k, w // k
            out = [i[0][:, :, :h2 * k, :w2 * k].reshape(n, c, h2, k, w2, k).max(axis=(3, 5))]
        elif op == "Reshape":
            out = [i[0].reshape([d if d != 0 else i[0].shape[k] for k, d in enumerate(i[1].astype(int))])]
        elif op == "Flatten":
            out = [i[0].reshape(i[0].shape[0], -1)]
        elif op == "TopK":
            idx = np.argsort(-i[0], axis=-1, kind="stable")[..., :int(i[1][0])]
            out = [np.take_along_axis(i[0], idx, -1), idx.astype(np.int64)]
        else:
            raise NotImplementedError(f"qonnx_numpy: op {op}")
        for name, val in zip(node.output, out):
            env[name] = val
    return env
