#!/usr/bin/env python3
"""Builds a busi-infer overlay (bitstream + .hwh) for the PYNQ-Z1 with FINN.

Runs inside FINN's docker environment (./run-docker.sh from Xilinx/finn, with
Vivado installed and FINN_XILINX_PATH set); nothing here runs in busi-infer's
own build or CI. Example, from the repository root inside FINN's container:

  python3 overlays/build.py --model models/busi-w2a4.qonnx.onnx \
      --overlay overlays/busi-w2a4 --folding folding_3fps.json --fclk-mhz 100

Then copy overlays/busi-w2a4 to the board and run
  busi-infer --backend fpga --overlay overlays/busi-w2a4 --model busi-w2a4.bqnn images/

The QONNX model (training/busi_train/export.py) takes raw pixels, annotated
UINT8, divides by 255 inside, and ends in TopK(k=1). By default (--output logits)
build.py first drops that TopK (logits_graph), so the accelerator's output DMA
carries the last layer's three integer accumulators per image: the fpga backend
then computes the same scores, calibration, gate and referral as cpu_int. The
weight scale of that layer (the package's logit_scale) becomes a Mul that FINN's
streamlining moves behind the MatMul and its dataflow partition leaves outside the
accelerator; busi-infer applies logit_scale itself. --output top1 keeps the TopK:
one UINT8 class index per image, 11 bytes fewer, and no verdict (busi-infer
reports "unavailable": a top-1 index cannot be calibrated or referred).
"""
import argparse
import ast
import json
import shutil
from pathlib import Path


def logits_graph(qonnx_in: Path, qonnx_out: Path) -> str:
    """Writes the QONNX model without its final TopK: the graph's output becomes
    the TopK's input, the last MatMul's output (one logit per class). Returns that
    tensor's name. Only plain onnx is needed, so this runs (and is tested) outside FINN."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(qonnx_in))
    graph = model.graph
    topk = graph.node[-1]
    if topk.op_type != "TopK" or [o.name for o in graph.output] != [topk.output[1]]:
        raise SystemExit(f"{qonnx_in}: expected the graph to end in a TopK giving its only output; "
                         f"it ends in {topk.op_type}")
    logits = topk.input[0]
    matmul = next(n for n in graph.node if logits in n.output)
    if matmul.op_type != "MatMul":
        raise SystemExit(f"{qonnx_in}: the TopK's input comes from {matmul.op_type}, not the last MatMul")
    # Classes = the last dimension of the MatMul's weights (an initializer behind a Quant).
    inits = {i.name: i for i in graph.initializer}
    weight_quant = next((n for n in graph.node if matmul.input[1] in n.output), None)
    weights = inits[weight_quant.input[0] if weight_quant is not None else matmul.input[1]]
    classes = int(numpy_helper.to_array(weights).shape[-1])
    graph.node.remove(topk)
    for init in [i for i in graph.initializer if i.name == topk.input[1]]:  # TopK's k
        graph.initializer.remove(init)
    del graph.output[:]
    graph.output.append(helper.make_tensor_value_info(logits, onnx.TensorProto.FLOAT, [1, classes]))
    onnx.checker.check_model(model)
    onnx.save(model, str(qonnx_out))
    return logits


def io_description(driver_py: Path, name: str, model: str, bitstream: str, fclk_mhz: float, folding: str) -> dict:
    """overlay.json from the io_shape_dict of the PYNQ driver FINN generated."""
    tree = ast.parse(driver_py.read_text())
    shapes = None
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "io_shape_dict" for t in node.targets):
            shapes = node.value
    if shapes is None:
        raise SystemExit(f"{driver_py}: no io_shape_dict; is this a FINN zynq-iodma driver?")

    def literal(node):
        # DataType['UINT8'] -> "UINT8"; everything else is a plain literal.
        if isinstance(node, ast.Subscript) and getattr(node.value, "id", None) == "DataType":
            return ast.literal_eval(node.slice)
        if isinstance(node, ast.Dict):
            return {literal(k): literal(v) for k, v in zip(node.keys, node.values)}
        if isinstance(node, (ast.List, ast.Tuple)):
            return [literal(e) for e in node.elts]
        return ast.literal_eval(node)

    d = literal(shapes)
    if len(d["idt"]) != 1 or len(d["odt"]) != 1:
        raise SystemExit("busi-infer drives one input and one output DMA; this design has "
                         f"{len(d['idt'])} inputs and {len(d['odt'])} outputs")
    out_normal = list(d["oshape_normal"][0])
    return {
        "name": name, "model": model, "bitstream": bitstream, "hwh": Path(bitstream).with_suffix(".hwh").name,
        "fclk_mhz": fclk_mhz, "folding": folding,
        "input": {"dma": d.get("input_dma_name", ["idma0"])[0], "datatype": d["idt"][0],
                  "shape_normal": list(d["ishape_normal"][0]), "shape_folded": list(d["ishape_folded"][0]),
                  "shape_packed": list(d["ishape_packed"][0])},
        "output": {"dma": d.get("output_dma_name", ["odma0"])[0], "datatype": d["odt"][0],
                   "kind": "top1" if out_normal[-1] == 1 else "logits",
                   "shape_normal": out_normal, "shape_folded": list(d["oshape_folded"][0]),
                   "shape_packed": list(d["oshape_packed"][0])},
    }


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="QONNX model (models/busi-w2a4.qonnx.onnx)")
    p.add_argument("--overlay", required=True, help="overlay folder to install into (overlays/busi-w2a4)")
    p.add_argument("--folding", default="folding_3fps.json", help="folding file inside the overlay folder")
    p.add_argument("--fclk-mhz", type=float, default=100.0)
    p.add_argument("--output-dir", default=None, help="FINN build folder (default: build/finn-<overlay name>)")
    p.add_argument("--output", choices=("logits", "top1"), default="logits",
                   help="what the accelerator returns per image: the int32 logits (default; busi-infer "
                        "refers and calibrates as on the CPU) or the TopK class index (cannot refer)")
    args = p.parse_args()

    # Imported here so --help works outside FINN's container.
    import finn.builder.build_dataflow as build
    import finn.builder.build_dataflow_config as build_cfg

    overlay = Path(args.overlay).resolve()
    name = overlay.name
    out = Path(args.output_dir or f"build/finn-{name}").resolve()
    model = Path(args.model)
    if args.output == "logits":
        out.mkdir(parents=True, exist_ok=True)
        model = out / f"{name}-logits.qonnx.onnx"
        logits_graph(Path(args.model), model)
    cfg = build_cfg.DataflowBuildConfig(
        output_dir=str(out),
        synth_clk_period_ns=1000.0 / args.fclk_mhz,
        board="Pynq-Z1",
        shell_flow_type=build_cfg.ShellFlowType.VIVADO_ZYNQ,
        folding_config_file=str(overlay / args.folding),
        generate_outputs=[
            build_cfg.DataflowOutputType.ESTIMATE_REPORTS,
            build_cfg.DataflowOutputType.BITFILE,
            build_cfg.DataflowOutputType.PYNQ_DRIVER,
            build_cfg.DataflowOutputType.DEPLOYMENT_PACKAGE,
        ],
    )
    build.build_dataflow_cfg(str(model), cfg)

    bit = next((out / "bitfile").glob("*.bit"))
    hwh = next((out / "bitfile").glob("*.hwh"))
    shutil.copy(bit, overlay / f"{name}.bit")
    shutil.copy(hwh, overlay / f"{name}.hwh")
    description = io_description(out / "driver" / "driver.py", name, name, f"{name}.bit", args.fclk_mhz, args.folding)
    (overlay / "overlay.json").write_text(json.dumps(description, indent=2) + "\n")
    print(f"installed {overlay}/{name}.bit, {name}.hwh and overlay.json; estimates in {out}/report/")


if __name__ == "__main__":
    main()
