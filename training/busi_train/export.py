"""Exports a checkpoint: the runtime's .bqnn package, QONNX (quantized) or plain ONNX (float).

  /usr/bin/python3 -m busi_train.export runs/w2a4/best.pt --name busi-w2a4 \
      --bqnn ../models/busi-w2a4.bqnn --onnx ../models/busi-w2a4.qonnx.onnx
  /usr/bin/python3 -m busi_train.export runs/float/best.pt --name busi-float \
      --bqnn ../models/busi-float.bqnn --onnx ../models/busi-float.onnx
"""
import argparse
import hashlib
import json
import subprocess
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

from . import data, fold, package, seen, sources
from .model import POOLED
from .train import TRAINING_DIR, load_checkpoint

QONNX_DOMAIN = "qonnx.custom_op.general"


def _git_commit():
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=TRAINING_DIR, check=True,
                              capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def trained_by_cv(ck):
    """A checkpoint of busi_train.cv (its config names a recipe), not of train.py."""
    return "recipe" in ck["config"]


def provenance(ck, extra=None):
    p = {"trainer": "training/busi_train (busi-infer)", "git_commit": _git_commit(),
         "training_config": ck["config"]}
    if trained_by_cv(ck):
        if ck["config"]["eval_images"]:
            raise ValueError("a busi_train.cv fold model (it held images out): export the --final model")
        p.update({"selected_epoch": ck["epoch"],
                  "selection": "none: the recipe's last epoch (busi_train.cv --final, every development image)",
                  "validation": None,
                  "dataset": "BUSI, Al-Dhabyani et al., Data in Brief 28 (2020) 104863; BUS-BRA, Gomez-Flores "
                             "et al., Medical Physics 51(4) (2024) 3110-3123"})
    else:
        splits = {name: hashlib.sha256((data.SPLIT_DIR / f"{name}.txt").read_bytes()).hexdigest()
                  for name in ("train", "val")}
        p.update({"selected_epoch": ck["epoch"],
                  "selection": "highest validation accuracy (ties: lower validation loss)",
                  "validation": ck["val"], "split_sha256": splits,
                  "dataset": "BUSI, Al-Dhabyani et al., Data in Brief 28 (2020) 104863"})
    if extra:
        p.update(extra)
    return p


def trained_on_hashes(ck):
    """input_hashes of the images the checkpoint's weights were fitted on: train.py's
    training split, or every development image of both sources for busi_train.cv --final."""
    if trained_by_cv(ck):
        return package.input_hashes(sources.load_dev_set(cache_dir=TRAINING_DIR / "runs" / "cache").images)
    return seen.split_hashes("train")


def bqnn_bytes(model, ck, name, extra=None):
    prov = provenance(ck, extra)
    trained_on = trained_on_hashes(ck)
    if model.quantized:
        layers, logit_scale = fold.quantized_layers(model)
        return package.build_package(name, "quantized", layers, prov, logit_scale=logit_scale,
                                     seen_hashes=trained_on)
    return package.build_package(name, "float", fold.float_layers(model), prov, seen_hashes=trained_on)


def _const(name, array, inits):
    inits.append(numpy_helper.from_array(np.asarray(array), name))
    return name


@torch.no_grad()
def qonnx_model(model, name):
    """ONNX with QONNX Quant nodes, in the form Brevitas exports: the input is the
    raw pixel (FINN annotates it UINT8), Div by 255, per layer Quant(weights) ->
    Conv/MatMul -> BatchNormalization -> Relu -> Quant(unsigned), MaxPool, and a
    TopK (k=1) giving the class index, as the paper added before synthesis."""
    if model.act_quant == "kmeans":
        # A Quant node rounds on a uniform grid; the k-means boundaries are thresholds
        # (the .bqnn holds them), which this writer does not emit as MultiThreshold.
        raise ValueError("QONNX export: the kmeans activation quantizer has non-uniform boundaries, "
                         "which a QONNX Quant node cannot express; export the .bqnn only")
    model.eval()
    nodes, inits = [], []
    counter = iter(range(10 ** 6))

    def quant(x, scale, bits, signed, narrow):
        i = next(counter)
        out = f"quant{i}_out"
        nodes.append(helper.make_node(
            "Quant", [x, _const(f"quant{i}_scale", np.asarray(scale, np.float32), inits),
                      _const(f"quant{i}_zeropt", np.float32(0), inits),
                      _const(f"quant{i}_bitwidth", np.float32(bits), inits)],
            [out], domain=QONNX_DOMAIN, signed=int(signed), narrow=int(narrow),
            rounding_mode="ROUND", name=f"Quant_{i}"))
        return out

    x = "global_in"
    nodes.append(helper.make_node("Div", [x, _const("pixel_max", np.float32(255), inits)],
                                  ["scaled_in"], name="Div_0"))
    x = "scaled_in"
    layers = model.layers()
    for i, layer in enumerate(layers):
        w_int = layer.wq.integers(layer.weight).numpy()
        w_scale = layer.wq.scale.clamp_min(1e-8).numpy().astype(np.float32)
        shape = [-1] + [1] * (w_int.ndim - 1)
        w_float = (w_int * w_scale.reshape(shape)).astype(np.float32)
        if layer.kind == "dense":
            w_float = w_float.T  # MatMul: x [N][in] @ W [in][out]
            qscale = w_scale.reshape(1, -1) if w_scale.size > 1 else w_scale.reshape(1)
        else:
            qscale = w_scale.reshape(-1, 1, 1, 1) if w_scale.size > 1 else w_scale.reshape(1)
        wq = quant(_const(f"w{i}", w_float, inits), qscale, layer.wq.bits, True, True)
        out = f"l{i}_acc"
        if layer.kind == "conv":
            nodes.append(helper.make_node("Conv", [x, wq], [out], kernel_shape=[3, 3],
                                          name=f"Conv_{i}"))
        else:
            nodes.append(helper.make_node("MatMul", [x, wq], [out], name=f"MatMul_{i}"))
        x = out
        if layer.last:
            break
        bn = layer.bn
        bn_in = [x] + [_const(f"bn{i}_{p}", getattr(bn, a).numpy().astype(np.float32), inits)
                       for p, a in (("scale", "weight"), ("bias", "bias"),
                                    ("mean", "running_mean"), ("var", "running_var"))]
        nodes.append(helper.make_node("BatchNormalization", bn_in, [f"l{i}_bn"],
                                      epsilon=float(bn.eps), name=f"BatchNorm_{i}"))
        nodes.append(helper.make_node("Relu", [f"l{i}_bn"], [f"l{i}_relu"], name=f"Relu_{i}"))
        x = quant(f"l{i}_relu", np.float32(layer.act.scale.clamp_min(1e-8).item()),
                  model.abits, False, False)
        if i < len(POOLED) and POOLED[i]:
            nodes.append(helper.make_node("MaxPool", [x], [f"l{i}_pool"], kernel_shape=[2, 2],
                                          strides=[2, 2], name=f"MaxPool_{i}"))
            x = f"l{i}_pool"
        if i == len(model.convs) - 1:
            nodes.append(helper.make_node("Flatten", [x], ["flat"], axis=1, name="Flatten_0"))
            x = "flat"
    nodes.append(helper.make_node("TopK", [x, _const("k", np.array([1], np.int64), inits)],
                                  ["topk_values", "global_out"], axis=-1, largest=1, sorted=1,
                                  name="TopK_0"))
    graph = helper.make_graph(
        nodes, name, [helper.make_tensor_value_info("global_in", TensorProto.FLOAT, [1, 1, 255, 255])],
        [helper.make_tensor_value_info("global_out", TensorProto.INT64, [1, 1])], inits)
    m = helper.make_model(graph, producer_name="busi-infer training",
                          opset_imports=[helper.make_opsetid("", 11),
                                         helper.make_opsetid(QONNX_DOMAIN, 1)])
    # FINN reads the input's integer type from this annotation (what Brevitas writes).
    qa = onnx.TensorAnnotation(tensor_name="global_in")
    qa.quant_parameter_tensor_names.append(onnx.StringStringEntryProto(key="finn_datatype",
                                                                       value="UINT8"))
    m.graph.quantization_annotation.append(qa)
    onnx.checker.check_model(m)
    return m


def float_onnx(model, path):
    """Plain ONNX of the float network, the same folded layers as the float .bqnn
    (BatchNorm in weights and bias, 1/255 in the first layer): input raw pixel values
    as float [N][1][255][255], output the three logits. Conv, Relu, MaxPool, Flatten
    and Gemm only, so every runtime (OpenCV DNN included) reads it."""
    nodes, inits = [], []
    x = "pixels"
    for i, layer in enumerate(fold.float_layers(model)):
        out = f"l{i}"
        if layer["type"] == "maxpool":
            k = layer["kernel"]
            nodes.append(helper.make_node("MaxPool", [x], [out], kernel_shape=[k, k], strides=[k, k]))
        elif layer["type"] == "conv":
            nodes.append(helper.make_node("Conv", [x, _const(f"w{i}", layer["weights"], inits),
                                                   _const(f"b{i}", layer["bias"], inits)], [out],
                                          kernel_shape=list(layer["weights"].shape[2:])))
        else:
            if not any(n.op_type == "Flatten" for n in nodes):  # CHW -> C*H*W, PyTorch's order
                nodes.append(helper.make_node("Flatten", [x], ["flat"], axis=1))
                x = "flat"
            nodes.append(helper.make_node("Gemm", [x, _const(f"w{i}", layer["weights"], inits),
                                                   _const(f"b{i}", layer["bias"], inits)], [out],
                                          transB=1))
        x = out
        if layer.get("relu"):
            nodes.append(helper.make_node("Relu", [x], [f"{out}_relu"]))
            x = f"{out}_relu"
    nodes[-1].output[0] = "logits"
    graph = helper.make_graph(
        nodes, "busi-float",
        [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["n", 1, 255, 255])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["n", 3])], inits)
    m = helper.make_model(graph, producer_name="busi-infer training",
                          opset_imports=[helper.make_opsetid("", 13)])
    onnx.checker.check_model(m)
    onnx.save(m, str(path))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint")
    p.add_argument("--name", required=True)
    p.add_argument("--bqnn", help="write the .bqnn package here")
    p.add_argument("--onnx", help="write QONNX (quantized) or plain ONNX (float) here")
    p.add_argument("--metrics", help="JSON file whose content goes into provenance['metrics']")
    args = p.parse_args(argv)
    model, ck = load_checkpoint(args.checkpoint)
    extra = {"metrics": json.loads(Path(args.metrics).read_text())} if args.metrics else None
    try:
        if args.bqnn:
            Path(args.bqnn).write_bytes(bqnn_bytes(model, ck, args.name, extra))
            print("wrote", args.bqnn)
        if args.onnx:
            if model.quantized:
                onnx.save(qonnx_model(model, args.name), args.onnx)
            else:
                float_onnx(model, args.onnx)
            print("wrote", args.onnx)
    except ValueError as e:  # a quantizer whose state cannot be written in that format
        raise SystemExit(f"{args.checkpoint}: {e}")


if __name__ == "__main__":
    main()
