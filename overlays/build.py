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
UINT8, divides by 255 inside, and ends in TopK(k=1), so FINN's default steps
turn it into a dataflow graph whose output is one class index per image.
"""
import argparse
import ast
import json
import shutil
from pathlib import Path


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
    args = p.parse_args()

    # Imported here so --help works outside FINN's container.
    import finn.builder.build_dataflow as build
    import finn.builder.build_dataflow_config as build_cfg

    overlay = Path(args.overlay).resolve()
    name = overlay.name
    out = Path(args.output_dir or f"build/finn-{name}").resolve()
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
    build.build_dataflow_cfg(args.model, cfg)

    bit = next((out / "bitfile").glob("*.bit"))
    hwh = next((out / "bitfile").glob("*.hwh"))
    shutil.copy(bit, overlay / f"{name}.bit")
    shutil.copy(hwh, overlay / f"{name}.hwh")
    description = io_description(out / "driver" / "driver.py", name, name, f"{name}.bit", args.fclk_mhz, args.folding)
    (overlay / "overlay.json").write_text(json.dumps(description, indent=2) + "\n")
    print(f"installed {overlay}/{name}.bit, {name}.hwh and overlay.json; estimates in {out}/report/")


if __name__ == "__main__":
    main()
