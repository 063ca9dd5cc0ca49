"""The field's own tools against busi-infer (needs .venv: requirements/python.txt,
scripts/install-python-deps.sh; ctest runs this file with .venv/bin/python):

- qonnx as the oracle: qonnx's cleanup + execute_onnx (onnxruntime) on our
  exported QONNX and on the paper's network built from Brevitas layers and
  exported by Brevitas's export_qonnx, against cpu_int on the imported package,
  on the BUSI images: identical top-1 on every image, and logits equal up to the
  package's logit_scale wherever qonnx's float32 is not at a near-tie (there
  cpu_int must equal the float64 reading of the same graph, qonnx_numpy);
- the imported Brevitas model on the emulated board (pynq-emu) gives cpu_int's classes;
- our QONNX passes qonnx-cleanup and qonnx.util.inference_cost, and meets what
  FINN's ConvertQONNXtoFINN checks (FoldQuantWeights, QuantReluHandler).

BUSI_ORACLE_STRIDE=n checks every n-th BUSI image (default 1: all 702).
"""
import json
import os
import selectors
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

from busi_train import data, qonnx_numpy, qonnx_oracle
from busi_train.qonnx_import import import_qonnx
from conftest import tool

REPO = Path(__file__).resolve().parents[2]
VENV_HINT = "run scripts/install-python-deps.sh; ctest runs this file with .venv/bin/python"
qonnx = pytest.importorskip("qonnx", reason=f"qonnx is not installed for {sys.executable}: {VENV_HINT}")
pytest.importorskip("onnxruntime", reason=f"onnxruntime is not installed: {VENV_HINT}")
STRIDE = int(os.environ.get("BUSI_ORACLE_STRIDE", "1"))


@pytest.fixture(scope="module")
def busi_infer():
    return pytest.importorskip("busi_infer", reason="the busi_infer bindings are not on PYTHONPATH "
                                                    "(ctest sets it to the build tree)")


@pytest.fixture(scope="module")
def images(busi_root, busi_infer):
    """The BUSI images as cpu_int sees them (gray-area-v1, 255x255 uint8)."""
    names, pixels = qonnx_oracle.busi_images(busi_root, STRIDE)
    return names, pixels


def check_oracle(qonnx_path, package, images, busi_infer):
    names, pixels = images
    r = qonnx_oracle.compare(qonnx_path, package, pixels, busi_infer)
    print(f"\n{Path(qonnx_path).name}: qonnx vs cpu_int on {r['images']} images: top-1 equal "
          f"{r['top1_equal']}, logits equal {r['logits_equal']} ({r['qonnx_seconds']:.0f} s in qonnx)")
    assert r["top1_equal"] == r["images"], [names[i] for i in r["top1_disagreements"]]
    # Where qonnx's float32 logits differ, one activation sat at a near-tie: cpu_int
    # must then equal the exact (float64) reading of the graph.
    assert r["images"] - r["logits_equal"] <= max(2, r["images"] // 100)
    model = onnx.load(str(qonnx_path))
    for i in r["logit_differences"]:
        exact = qonnx_numpy.run(model, pixels[i].astype(np.float64).reshape(1, 1, *pixels[i].shape))
        exact = exact[r["logits_tensor"] if r["logits_tensor"] in exact else _last_linear(model)]
        np.testing.assert_allclose(r["cpu_int_logits"][i], exact.reshape(-1), rtol=1e-9, atol=1e-12,
                                   err_msg=names[i])
        print(f"  {names[i]}: qonnx (float32) {r['qonnx_logits'][i]}, cpu_int = float64 graph "
              f"{r['cpu_int_logits'][i]}")
    return r


def _last_linear(model):
    return [n for n in model.graph.node if n.op_type in ("MatMul", "Gemm", "Conv")][-1].output[0]


@pytest.mark.parametrize("name,stride", [("busi-w2a4", 1), ("busi-w4a4", 6)])
def test_qonnx_oracle_on_our_qonnx(tmp_path, images, busi_infer, name, stride):
    src = REPO / "models" / f"{name}.qonnx.onnx"
    package = tmp_path / f"{name}.bqnn"
    package.write_bytes(import_qonnx(src)[0])
    names, pixels = images
    check_oracle(src, package, (names[::stride], pixels[::stride]), busi_infer)


@pytest.fixture(scope="module")
def brevitas_model(tmp_path_factory):
    """The paper's network in Brevitas layers, with the W2A4 checkpoint's weights,
    exported by Brevitas (export_qonnx) and imported by busi-model import."""
    pytest.importorskip("brevitas", reason=f"brevitas is not installed: {VENV_HINT}")
    from busi_train import brevitas_net
    from busi_train.train import load_checkpoint
    folder = tmp_path_factory.mktemp("brevitas")
    model, _ = load_checkpoint(REPO / "training" / "checkpoints" / "busi-w2a4.pt")
    net = brevitas_net.from_checkpoint(model, 2, 4)
    onnx_path = folder / "brevitas-w2a4.onnx"
    brevitas_net.export(net, onnx_path)
    package = folder / "brevitas-w2a4.bqnn"
    exe = tool("BUSI_MODEL_TOOL")
    if exe:  # the command line, as a user would
        subprocess.run([exe, "import", str(onnx_path), "-o", str(package), "--name", "brevitas-w2a4"],
                       check=True)
    else:
        package.write_bytes(import_qonnx(onnx_path, name="brevitas-w2a4")[0])
    return net, onnx_path, package


def test_brevitas_export_is_what_brevitas_writes(brevitas_model):
    _, onnx_path, package = brevitas_model
    m = onnx.load(str(onnx_path))
    ops = [n.op_type for n in m.graph.node]
    assert ops.count("Quant") == 1 + 9 + 8  # input QuantIdentity, 9 weights, 8 QuantReLU
    assert {n.domain for n in m.graph.node if n.op_type == "Quant"} == {"onnx.brevitas"}
    assert "Transpose" in ops and "BatchNormalization" in ops
    from busi_train import int_reference
    header, layers = int_reference.read_package(package)
    assert header["name"] == "brevitas-w2a4"
    assert header["provenance"]["source_producer"].startswith("pytorch")


def test_qonnx_oracle_on_the_brevitas_model(brevitas_model, images, busi_infer):
    net, onnx_path, package = brevitas_model
    check_oracle(onnx_path, package, images, busi_infer)
    # Brevitas's own PyTorch forward (float32, its own rounding) predicts the same.
    import torch
    names, pixels = images
    with torch.no_grad():
        torch_top = torch.cat([net(torch.from_numpy(pixels[i:i + 54]).float()[:, None]).argmax(1)
                               for i in range(0, len(pixels), 54)]).numpy()
    clf = busi_infer.Classifier("cpu_int", model=str(package))
    ours = np.array([clf.classify(p).class_index for p in pixels])
    agree = int((torch_top == ours).sum())
    print(f"Brevitas (PyTorch) vs cpu_int: {agree}/{len(ours)} top-1 equal")
    assert agree >= len(ours) - max(1, len(ours) // 200)


def test_brevitas_model_on_the_emulated_board(brevitas_model, images, busi_infer, tmp_path):
    emulator = tool("BUSI_PYNQ_EMU")
    if emulator is None:
        pytest.skip("pynq-emu is not built (ctest sets BUSI_PYNQ_EMU)")
    if "fpga" not in busi_infer.available_backends():
        pytest.skip("fpga backend not compiled in")
    _, _, package = brevitas_model
    overlay = tmp_path / "overlay"
    shutil.copytree(REPO / "overlays" / "busi-w2a4", overlay)
    desc = json.loads((overlay / "overlay.json").read_text())
    desc["model"] = "brevitas-w2a4"
    (overlay / "overlay.json").write_text(json.dumps(desc))
    root = tmp_path / "board"
    proc = subprocess.Popen([emulator, "--root", str(root), "--overlay", str(overlay), "--model", str(package),
                             "--make-hardware"], stdout=subprocess.PIPE, text=True)
    try:
        with selectors.DefaultSelector() as wait:
            wait.register(proc.stdout, selectors.EVENT_READ)
            assert wait.select(timeout=60), "pynq-emu did not report ready within 60 s"
        assert "board ready" in proc.stdout.readline()
        fpga = busi_infer.Classifier("fpga", model=str(package), overlay=str(overlay), device_root=str(root))
        cpu = busi_infer.Classifier("cpu_int", model=str(package))
        names, pixels = images
        subset = list(pixels[::3])
        expected = [cpu.classify(p).class_index for p in subset]
        assert [p.class_index for p in fpga.classify_batch(subset)] == expected
        print(f"emulated board = cpu_int on {len(subset)} images (Brevitas model)")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.parametrize("name", ["busi-w2a4", "busi-w4a4"])
def test_overlay_build_without_topk_gives_cpu_int_logits(tmp_path, images, busi_infer, name):
    """What overlays/build.py hands FINN for the shipped logits overlays: the QONNX
    graph without its TopK, whose output (qonnx's execute_onnx) is cpu_int's int32
    logits times logit_scale, with the same top-1, on every 40th BUSI image."""
    sys.path.insert(0, str(REPO / "overlays"))
    try:
        import build
    finally:
        sys.path.pop(0)
    out = tmp_path / f"{name}-logits.qonnx.onnx"
    logits = build.logits_graph(REPO / "models" / f"{name}.qonnx.onnx", out)
    graph = onnx.load(str(out)).graph
    assert graph.node[-1].op_type == "MatMul" and [o.name for o in graph.output] == [logits]
    assert [d.dim_value for d in graph.output[0].type.tensor_type.shape.dim] == [1, 3]
    names, pixels = images
    # The graph ends in no TopK, so the oracle reads its output as the logits.
    check_oracle(out, REPO / "models" / f"{name}.bqnn", (names[::40], pixels[::40]), busi_infer)


def test_our_qonnx_passes_qonnx_cleanup_and_inference_cost(tmp_path):
    from qonnx.util.inference_cost import inference_cost
    src = REPO / "models" / "busi-w2a4.qonnx.onnx"
    cleanup = Path(sys.executable).parent / "qonnx-cleanup"
    out = tmp_path / "clean.onnx"
    cmd = [str(cleanup)] if cleanup.exists() else [sys.executable, "-m", "qonnx.util.cleanup"]
    subprocess.run(cmd + [str(src), f"--out-file={out}"], check=True)
    onnx.checker.check_model(onnx.load(str(out)))
    cost = inference_cost(str(src), output_json=None, output_onnx=None, preprocess=True,
                          discount_sparsity=False)["total_cost"]
    assert cost["total_macs"] == 47_684_424  # the paper network's 47.7 M multiply-accumulates
    assert cost["total_mem_w_elems"] == 107_400
    assert cost["mem_w_SCALEDINT<2>"] == 107_400  # every weight 2-bit
    assert cost["unsupported"] == "{'TopK'}"  # TopK costs nothing to count


@pytest.mark.parametrize("name,wbits", [("busi-w2a4", 2), ("busi-w4a4", 4)])
def test_our_qonnx_meets_convert_qonnx_to_finn(name, wbits):
    """What FINN's ConvertQONNXtoFINN requires (finn/transformation/qonnx:
    FoldQuantWeights and QuantReluHandler), checked with qonnx's own datatypes."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.custom_op.registry import getCustomOp
    from qonnx.util.cleanup import cleanup_model
    m = cleanup_model(ModelWrapper(str(REPO / "models" / f"{name}.qonnx.onnx")))
    assert m.get_tensor_datatype(m.graph.input[0].name).name == "UINT8"
    weights, acts = [], []
    for q in m.get_nodes_by_op_type("Quant"):
        assert m.get_initializer(q.input[2]) == 0, f"{q.name}: zero point"
        inst = getCustomOp(q)
        if all(m.get_initializer(i) is not None for i in q.input):  # FoldQuantWeights
            assert not m.is_fork_node(q)
            assert m.find_direct_successors(q)[0].op_type in ("Conv", "MatMul")
            scale = m.get_initializer(q.input[1])
            if m.find_direct_successors(q)[0].op_type == "Conv" and scale.ndim > 1:
                assert np.prod(scale.shape[1:]) == 1, "per-output-channel scale only"
            weights.append(inst.get_integer_datatype(m).name)
        else:  # QuantReluHandler: after Relu, unsigned, not narrow, zero point 0
            assert m.find_direct_predecessors(q)[0].op_type == "Relu"
            assert not inst.get_nodeattr("signed") and not inst.get_nodeattr("narrow")
            acts.append(inst.get_integer_datatype(m).name)
    assert weights == [f"INT{wbits}"] * 9 and acts == ["UINT4"] * 8
