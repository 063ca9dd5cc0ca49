"""busi-model import (busi_train.qonnx_import): QONNX in, .bqnn out.

- our exported QONNX imports to exactly the shipped packages (weights, thresholds,
  logit scale), by Python and by `busi-model import`;
- small graphs of the family with every streamlining case (per-channel and
  per-tensor weight scales, negative BatchNorm scales, narrow and non-narrow,
  signed and unsigned, 2/4/8 bits, each rounding mode, an input QuantIdentity)
  import to packages whose integer logits times logit_scale equal the float64
  execution of the graph (qonnx_numpy) on random images;
- bad input is refused with the node's name and the reason.
Only numpy and onnx (Debian's); the qonnx/Brevitas checks are in test_field_tools.py.
"""
import hashlib
import os
import subprocess
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from busi_train import int_reference, qonnx_numpy
from busi_train.qonnx_import import import_error, import_qonnx
from conftest import tool

REPO = Path(__file__).resolve().parents[2]
DOMAIN = "qonnx.custom_op.general"


@pytest.mark.parametrize("name", ["busi-w2a4", "busi-w4a4"])
def test_our_qonnx_imports_to_the_shipped_package(name):
    src = REPO / "models" / f"{name}.qonnx.onnx"
    body, summary = import_qonnx(src)
    h1, l1 = int_reference.read_package(REPO / "models" / f"{name}.bqnn")
    h2, l2 = int_reference.read_package(body)
    assert h2["name"] == name and h2["logit_scale"] == h1["logit_scale"]
    assert [l["type"] for l in l1] == [l["type"] for l in l2]
    for a, b in zip(l1, l2):
        for key in ("w", "t"):
            if key in a:
                assert np.array_equal(a[key], b[key]), (name, a["type"], key)
    prov = h2["provenance"]
    assert prov["source_sha256"] == hashlib.sha256(src.read_bytes()).hexdigest()
    assert prov["datatypes"]["input"] == "UINT8" and prov["datatypes"]["weights"] == [f"INT{name[6]}"]


def test_busi_model_import_writes_what_python_writes(tmp_path):
    exe = tool("BUSI_MODEL_TOOL")
    if exe is None:
        pytest.skip("busi-model not built (ctest sets BUSI_MODEL_TOOL)")
    src = REPO / "models" / "busi-w2a4.qonnx.onnx"
    out = tmp_path / "imported.bqnn"
    r = subprocess.run([exe, "import", str(src), "-o", str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == import_qonnx(src, source_name=src.name)[0]
    info = subprocess.run([exe, "info", str(out)], capture_output=True, text=True, check=True).stdout
    assert "source_sha256" in info
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(src.read_bytes()[:1000])
    r = subprocess.run([exe, "import", str(bad), "-o", str(tmp_path / "x.bqnn")], capture_output=True, text=True)
    assert r.returncode == 3 and r.stderr.startswith("busi-model: error: ") and "protobuf" in r.stderr
    assert not (tmp_path / "x.bqnn").exists()
    env = dict(os.environ, BUSI_PYTHON=str(tmp_path / "no-python"))
    r = subprocess.run([exe, "import", str(src), "-o", str(out)], capture_output=True, text=True, env=env)
    assert r.returncode == 3 and "cannot run" in r.stderr and "BUSI_PYTHON" in r.stderr, r.stderr


# --- small graphs of the family ----------------------------------------------

class graph:
    """Builds a QONNX chain: pixels [1,1,S,S] -> ... with export.py's node kinds."""

    def __init__(self, size=14, channels=1):
        self.nodes, self.inits, self.n = [], [], 0
        self.x = "pixels"
        self.size, self.channels = size, channels
        self.annotation = "UINT8"

    def const(self, value):
        self.n += 1
        name = f"c{self.n}"
        value = np.asarray(value)
        value = value if value.dtype == np.int64 else value.astype(np.float32)
        self.inits.append(numpy_helper.from_array(value, name))
        return name

    def node(self, op, inputs, domain="", **attrs):
        self.n += 1
        out = f"t{self.n}"
        self.nodes.append(helper.make_node(op, inputs, [out], domain=domain, name=f"{op}_{self.n}", **attrs))
        return out

    def quant(self, x, scale, bits, signed, narrow, zeropt=0.0, mode="ROUND"):
        return self.node("Quant", [x, self.const(scale), self.const(zeropt), self.const(bits)],
                         domain=DOMAIN, signed=int(signed), narrow=int(narrow), rounding_mode=mode)

    def then(self, op, *consts, **attrs):
        self.x = self.node(op, [self.x] + [self.const(c) for c in consts], **attrs)
        return self

    def weights(self, w, scale, bits, signed=True, narrow=True):
        return self.quant(self.const(w), scale, bits, signed, narrow)

    def linear(self, op, w, scale, bits, narrow=True, **attrs):
        self.x = self.node(op, [self.x, self.weights(w, scale, bits, narrow=narrow)], **attrs)
        return self

    def act(self, scale, bits, signed=False, narrow=False, mode="ROUND", zeropt=0.0):
        self.x = self.quant(self.x, scale, bits, signed, narrow, zeropt, mode)
        return self

    def model(self, opset=11):
        g = helper.make_graph(self.nodes, "tiny",
                              [helper.make_tensor_value_info("pixels", TensorProto.FLOAT,
                                                             [1, self.channels, self.size, self.size])],
                              [helper.make_tensor_value_info(self.x, TensorProto.FLOAT, None)], self.inits)
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset), helper.make_opsetid(DOMAIN, 1)])
        qa = onnx.TensorAnnotation(tensor_name="pixels")
        qa.quant_parameter_tensor_names.append(onnx.StringStringEntryProto(key="finn_datatype",
                                                                           value=self.annotation))
        m.graph.quantization_annotation.append(qa)
        return m


def weights(rng, shape, bits, narrow, signed=True):
    lo = -(2 ** (bits - 1)) + (1 if narrow else 0) if signed else 0
    hi = 2 ** (bits - 1) - 1 if signed else 2 ** bits - 1
    return rng.integers(lo, hi + 1, shape).astype(np.float64)


def random_images(rng, n, size=14):
    """Images of varied brightness and contrast (plain noise would all look alike)."""
    base = rng.uniform(0, 255, (n, 1, 1))
    contrast = rng.uniform(0.1, 1.0, (n, 1, 1))
    noise = rng.integers(0, 256, (n, size, size))
    return np.clip(base + contrast * (noise - 128), 0, 255).astype(np.uint8)


def tiny_network(seed, wbits=2, abits=4, w_narrow=True, a_signed=False, a_narrow=False, mode="ROUND",
                 per_channel=True, negative_bn=True, input_quant=False, gemm=False, reshape=False,
                 topk=False):
    """conv(1->4) BN Relu Quant, MaxPool, conv(4->5) BN Relu Quant, Flatten,
    dense BN Relu Quant, dense -> 3 logits (the convolutions' Quant signed and
    without Relu when a_signed)."""
    rng = np.random.default_rng(seed)
    g = graph(14)
    g.then("Div", 255.0)
    if input_quant:
        g.act(np.float32(1 / 255), 8)

    def wscale(n, shape):
        s = rng.uniform(0.02, 0.2, n) if per_channel else np.full(n, 0.07)
        return (s / (2 ** (wbits - 1) - 1)).reshape(shape)  # about the same reals for any width

    probe_images = random_images(np.random.default_rng(seed + 100), 24)

    def bn(n):
        # Calibrated on images, as training would: the activations use their levels.
        y = qonnx_numpy.run(g.model(), probe_images[:, None].astype(np.float64))[g.x]
        axes = (0, 2, 3) if y.ndim == 4 else (0,)
        mean, var = y.mean(axis=axes), y.var(axis=axes) + 1e-3
        gamma = rng.uniform(0.5, 2.0, n) * (np.where(rng.random(n) < 0.3, -1, 1) if negative_bn else 1)
        g.then("BatchNormalization", gamma, rng.uniform(-0.3, 0.3, n) + 0.5,
               mean + rng.uniform(-0.1, 0.1, n) * np.sqrt(var), var, epsilon=1e-5)

    def activation(signed):
        if not signed:
            g.then("Relu")
        g.act(rng.uniform(2.0, 3.0) / (2 ** (abits - signed) - 1), abits, signed=signed,
              narrow=a_narrow, mode=mode)

    for cin, cout, pool in ((1, 4, True), (4, 5, False)):
        w = weights(rng, (cout, cin, 3, 3), wbits, w_narrow)
        s = wscale(cout, (-1, 1, 1, 1))
        g.linear("Conv", w * s, s, wbits, narrow=w_narrow, kernel_shape=[3, 3])
        bn(cout)
        activation(a_signed)
        if pool:
            g.then("MaxPool", kernel_shape=[2, 2], strides=[2, 2])
    if reshape:
        g.then("Reshape", np.array([0, -1], np.int64))  # 0: keep the batch
    else:
        g.then("Flatten", axis=1)
    w = weights(rng, (6, 5 * 4 * 4), wbits, w_narrow)
    s = wscale(6, (-1, 1))
    if gemm:
        g.linear("Gemm", w * s, s, wbits, narrow=w_narrow, transB=1)
    else:
        g.linear("MatMul", (w * s).T, s.T, wbits, narrow=w_narrow)
    bn(6)
    activation(False)  # the logits take unsigned levels: a signed input would offset them
    w = weights(rng, (3, 6), wbits, w_narrow)
    g.linear("MatMul", (w * 0.05).T, np.float32(0.05), wbits, narrow=w_narrow)
    if topk:  # the class index, as the paper's graph ends; the logits stay the test's output
        g.nodes.append(helper.make_node("TopK", [g.x, g.const(np.array([1], np.int64))], ["v", "i"],
                                        name="TopK_end", axis=-1))
    return g.model()


CASES = {
    "w2a4": {},
    "w4a2 per-tensor, positive BatchNorm": dict(wbits=4, abits=2, per_channel=False, negative_bn=False),
    "w8a8": dict(wbits=8, abits=8),
    "non-narrow w2 (stored as int4)": dict(w_narrow=False),
    "non-narrow w4, narrow unsigned a4": dict(wbits=4, w_narrow=False, a_narrow=True),
    "signed a4 without Relu": dict(a_signed=True),
    "signed narrow a2": dict(abits=2, a_signed=True, a_narrow=True),
    "HALF_UP": dict(mode="HALF_UP"), "FLOOR": dict(mode="FLOOR"), "CEIL": dict(mode="CEIL"),
    "input QuantIdentity": dict(input_quant=True),
    "Gemm transB": dict(gemm=True),
    "Reshape and a final TopK": dict(reshape=True, topk=True),
}


@pytest.mark.parametrize("case", list(CASES))
def test_streamlined_package_equals_the_graph(case):
    m = tiny_network(list(CASES).index(case), **CASES[case])
    body, summary = import_qonnx(m.SerializeToString())
    header, layers = int_reference.read_package(body)
    images = list(random_images(np.random.default_rng(7), 60))
    images += [np.zeros((14, 14), np.uint8), np.full((14, 14), 255, np.uint8)]
    levels_seen = set()
    for img in images:
        env = qonnx_numpy.run(m, img.astype(np.float64).reshape(1, 1, 14, 14))
        expected = env[m.graph.output[0].name].reshape(-1)
        got = int_reference.forward(header, layers, img) * header["logit_scale"]
        np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-9 * np.abs(expected).max())
        levels_seen.add(tuple(np.round(expected / header["logit_scale"]).astype(int)))
    assert len(levels_seen) > 20, "the random network is degenerate: tests nothing"


# --- refused ------------------------------------------------------------------

def refused(model_or_bytes):
    data = model_or_bytes if isinstance(model_or_bytes, bytes) else model_or_bytes.SerializeToString()
    with pytest.raises(import_error) as info:
        import_qonnx(data)
    return str(info.value)


def test_unsupported_node_is_refused_by_name():
    m = tiny_network(1)
    relu = next(n for n in m.graph.node if n.op_type == "Relu")
    relu.op_type, relu.name = "Sigmoid", "the_sigmoid"
    msg = refused(m)
    assert "'the_sigmoid' (Sigmoid)" in msg and "not supported" in msg


def test_unknown_datatype_is_refused():
    m = tiny_network(1)
    q = [n for n in m.graph.node if n.op_type == "Quant"][1]  # the first activation
    bw = next(i for i in m.graph.initializer if i.name == q.input[3])
    bw.CopyFrom(numpy_helper.from_array(np.float32(3.5), bw.name))
    msg = refused(m)
    assert f"'{q.name}' (Quant)" in msg and "bit width 3.5" in msg
    bw.CopyFrom(numpy_helper.from_array(np.float32(1), bw.name))
    assert "BIPOLAR" in refused(m)
    m = tiny_network(1)
    m.graph.quantization_annotation[0].quant_parameter_tensor_names[0].value = "FLOAT16"
    assert "datatype FLOAT16 not supported" in refused(m)
    m = tiny_network(1)
    q = [n for n in m.graph.node if n.op_type == "Quant"][1]
    next(a for a in q.attribute if a.name == "rounding_mode").s = b"STOCHASTIC"
    assert f"'{q.name}'" in refused(m) and "rounding mode 'STOCHASTIC'" in refused(m)


def test_non_integer_scale_chains_are_refused():
    # A per-channel activation scale into the next convolution.
    m = tiny_network(1)
    q = [n for n in m.graph.node if n.op_type == "Quant"][1]
    s = next(i for i in m.graph.initializer if i.name == q.input[1])
    s.CopyFrom(numpy_helper.from_array(np.array([0.1, 0.2, 0.1, 0.1], np.float32).reshape(1, 4, 1, 1), s.name))
    conv = [n for n in m.graph.node if n.op_type == "Conv"][1]
    msg = refused(m)
    assert f"'{conv.name}' (Conv)" in msg and "scale differs between channels" in msg
    # A rounding re-quantizer on the pixels (merges levels).
    m = tiny_network(1, input_quant=True)
    q = [n for n in m.graph.node if n.op_type == "Quant"][0]
    s = next(i for i in m.graph.initializer if i.name == q.input[1])
    s.CopyFrom(numpy_helper.from_array(np.float32(3 / 255), s.name))
    msg = refused(m)
    assert f"'{q.name}' (Quant)" in msg and "not an affine map" in msg
    # Per-class scale on the logits.
    m = tiny_network(1)
    q = [n for n in m.graph.node if n.op_type == "Quant"][-1]
    s = next(i for i in m.graph.initializer if i.name == q.input[1])
    s.CopyFrom(numpy_helper.from_array(np.array([[0.05, 0.06, 0.05]], np.float32), s.name))
    w = next(i for i in m.graph.initializer if i.name == q.input[0])
    w.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(w) * np.array([[1, 1.2, 1]], np.float32), w.name))
    assert "scale differs between classes" in refused(m)
    # Float weights (no Quant).
    m = tiny_network(1)
    conv = next(n for n in m.graph.node if n.op_type == "Conv")
    q = next(n for n in m.graph.node if n.output[0] == conv.input[1])
    conv.input[1] = q.input[0]
    assert f"'{conv.name}' (Conv)" in refused(m) and "float weights" in refused(m)


def test_shapes_of_another_family_are_refused():
    m = tiny_network(1)
    m.graph.input[0].type.tensor_type.shape.dim[1].dim_value = 3
    assert "3 channels" in refused(m)
    for attr in (helper.make_attribute("pads", [1, 1, 1, 1]), helper.make_attribute("strides", [2, 2]),
                 helper.make_attribute("group", 2)):
        m = tiny_network(1)
        conv = next(n for n in m.graph.node if n.op_type == "Conv")
        conv.attribute.append(attr)
        msg = refused(m)
        assert f"'{conv.name}' (Conv)" in msg and attr.name in msg
    m = tiny_network(1)
    pool = next(n for n in m.graph.node if n.op_type == "MaxPool")
    next(a for a in pool.attribute if a.name == "strides").ints[:] = [1, 1]
    assert f"'{pool.name}' (MaxPool)" in refused(m)


def test_truncated_or_foreign_files_are_refused():
    data = (REPO / "models" / "busi-w2a4.qonnx.onnx").read_bytes()
    for cut in (10, 1000, len(data) // 2, len(data) - 7):
        msg = refused(data[:cut])
        assert "protobuf" in msg or "produced by no earlier node" in msg or "no graph" in msg, (cut, msg)
    assert "not an ONNX model" in refused(b"\x89PNG\r\n\x1a\n" + bytes(100))
    assert "not an ONNX model" in refused(b"")
