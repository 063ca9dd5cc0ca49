"""PyTorch and onnxruntime's Python package beside cpu_int (and cpu_ref), one
thread, on the same images.

The float network is read from the float ONNX (the file onnxruntime and OpenCV
DNN run in peers_bench) and executed eagerly with torch.nn.functional, as a
PyTorch user would run it; onnxruntime (PyPI's, from .venv: requirements/python.txt)
runs that ONNX file in an InferenceSession with one intra-op thread, as its
Python users would, when it is importable. cpu_int and cpu_ref are called through the busi_infer
Python bindings, so every engine here pays Python call overhead alike. Engines
take turns image by image; medians and ratios to cpu_int are printed as markdown.

  OMP_NUM_THREADS=1 PYTHONPATH=build/bindings/python /usr/bin/python3 \\
      benchmarks/peers/torch_peer.py --onnx models/busi-float.onnx \\
      --quantized models/busi-w2a4.bqnn --float models/busi-float.bqnn --images ../shared/busi
"""
import argparse
import time

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import numpy_helper

import busi_infer


def torch_from_onnx(path):
    """A chain of Conv/Relu/MaxPool/Flatten/Gemm nodes as a torch function."""
    graph = onnx.load(str(path)).graph
    weights = {i.name: torch.from_numpy(numpy_helper.to_array(i).copy()) for i in graph.initializer}
    steps = []
    for node in graph.node:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type == "Conv":
            w, b = weights[node.input[1]], weights[node.input[2]]
            steps.append(lambda x, w=w, b=b: F.conv2d(x, w, b))
        elif node.op_type == "Relu":
            steps.append(F.relu)
        elif node.op_type == "MaxPool":
            k, s = attrs["kernel_shape"], attrs.get("strides", attrs["kernel_shape"])
            steps.append(lambda x, k=k, s=s: F.max_pool2d(x, k, s))
        elif node.op_type == "Flatten":
            steps.append(lambda x: torch.flatten(x, 1))
        elif node.op_type == "Gemm" and attrs.get("transB") == 1:
            w, b = weights[node.input[1]], weights[node.input[2]]
            steps.append(lambda x, w=w, b=b: F.linear(x, w, b))
        else:
            raise SystemExit(f"{path}: node {node.op_type} {attrs} is not part of the float export")

    def forward(x):
        for step in steps:
            x = step(x)
        return x
    return forward


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--onnx", required=True)
    p.add_argument("--quantized", required=True, help="the quantized .bqnn cpu_int runs")
    p.add_argument("--float", help="the float .bqnn (cpu_ref): predictions are compared with PyTorch's")
    p.add_argument("--images", default="../shared/busi")
    p.add_argument("--count", type=int, default=60)
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args()
    torch.set_num_threads(1)

    files = busi_infer.collect_images(args.images)
    step = max(1, len(files) // args.count)
    inputs = [busi_infer.load_image(f) for f in files[::step][:args.count]]
    net = torch_from_onnx(args.onnx)
    engines = {"cpu_int": busi_infer.Classifier("cpu_int", model=args.quantized)}
    if args.float:
        engines["cpu_ref"] = busi_infer.Classifier("cpu_ref", model=args.float)

    def run_torch(pixels):
        with torch.inference_mode():
            x = torch.from_numpy(pixels).to(torch.float32).reshape(1, 1, *pixels.shape)
            return torch.softmax(net(x)[0], 0).numpy()

    runners = {"pytorch": run_torch}
    try:
        import onnxruntime as ort
    except ImportError:
        ort = None
        print("(onnxruntime's Python package not importable here: run with .venv/bin/python)\n")
    if ort is not None:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        session = ort.InferenceSession(str(args.onnx), opts, providers=["CPUExecutionProvider"])
        in_name = session.get_inputs()[0].name

        def run_ort(pixels):
            x = pixels.astype(np.float32).reshape(1, 1, *pixels.shape)
            logits = session.run(None, {in_name: x})[0][0].astype(np.float64)
            e = np.exp(logits - logits.max())
            return e / e.sum()
        runners["onnxruntime_py"] = run_ort
    for name, c in engines.items():
        runners[name] = lambda pixels, c=c: np.asarray(c.classify(pixels).scores)
    scores = {name: [run(x) for x in inputs] for name, run in runners.items()}  # warm-up too
    times = {name: [] for name in runners}
    names = list(runners)
    for r in range(args.rounds):
        for i, x in enumerate(inputs):
            for k in range(len(names)):
                name = names[(k + i + r) % len(names)]
                t0 = time.perf_counter()
                runners[name](x)
                times[name].append((time.perf_counter() - t0) * 1e3)

    base = float(np.median(times["cpu_int"]))
    print("| engine (from Python) | median ms | p90 ms | time / cpu_int | agrees with cpu_ref | max score diff |")
    print("|---|---|---|---|---|---|")
    for name in names:
        m = float(np.median(times[name]))
        agree, diff = "-", "-"
        if "cpu_ref" in scores and name not in ("cpu_int", "cpu_ref"):
            same = sum(int(np.argmax(a) == np.argmax(b)) for a, b in zip(scores[name], scores["cpu_ref"]))
            agree = f"{same}/{len(inputs)}"
            diff = f"{max(float(np.max(np.abs(a - b))) for a, b in zip(scores[name], scores['cpu_ref'])):.1e}"
        print(f"| {name} | {m:.3f} | {np.percentile(times[name], 90):.3f} | {m / base:.2f}x | {agree} | {diff} |")
    ort_version = f", onnxruntime {ort.__version__} (Python)" if ort is not None else ""
    print(f"\n{len(inputs)} images x {args.rounds} rounds, engines interleaved per image; "
          f"PyTorch {torch.__version__}, {torch.get_num_threads()} thread{ort_version}.")


if __name__ == "__main__":
    main()
