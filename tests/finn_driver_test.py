"""FINN's own PYNQ driver as a client of the emulated PYNQ-Z1 (issue 14, item 6).

finn-examples' FINNExampleOverlay (the driver FINN's MakePYNQDriver generates,
as shipped on PyPI) runs on pynq 3.0.1 against pynq-emu through
backends/fpga/emulator/pynq_emu_device.py: pynq's parser reads the emulator's
.hwh, pynq programs its .bit, and FINN's driver packs, starts the IODMAs and
unpacks. Its classes must equal `busi-infer --backend fpga` on the same BUSI
images, on the same board. docs/fpga.md says what of PYNQ cannot run on x86.

Usage: finn_driver_test.py BUSI_INFER PYNQ_EMU SOURCE_DIR BUSI_DIR
Exit 77 (skipped, reason printed) without pynq/finn-examples, the build, or the data.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SKIPPED = 77
IMAGES_PER_CLASS = 4


def skip(reason):
    print(f"SKIPPED: {reason}")
    sys.exit(SKIPPED)


busi_infer_cli, pynq_emu, source_dir, busi_dir = (Path(arg) for arg in sys.argv[1:5])
for needed in (pynq_emu, busi_infer_cli):
    if not needed.exists():
        skip(f"{needed} is not built")
if not (busi_dir / "benign").is_dir():
    skip(f"no BUSI images in {busi_dir}")
try:
    import numpy as np
    import pynq
    from pynq.pl_server.hwh_parser import _HWHZynq
    from finn_examples.driver import FINNExampleOverlay  # also puts finn-examples' qonnx subset in sys.modules
    from qonnx.core.datatype import DataType
except ImportError as missing:
    skip(f"{missing.name or missing} is not importable here ({sys.executable}); "
         "scripts/install-python-deps.sh installs pynq and finn-examples into .venv")
try:
    import busi_infer  # the project's own pre-processing (gray-area-v1), from the build tree
except ImportError:
    skip(f"busi_infer is not importable (PYTHONPATH={os.environ.get('PYTHONPATH')})")
sys.path.insert(0, str(source_dir / "backends/fpga/emulator"))


def start_board(work, overlay):
    """pynq-emu serving the overlay under work/board; its process and log files."""
    out, err = open(work / "emu.out", "w+"), open(work / "emu.err", "w+")
    process = subprocess.Popen([str(pynq_emu), "--root", str(work / "board"), "--overlay", str(overlay),
                                "--make-hardware"], stdout=out, stderr=err, text=True)
    deadline = time.monotonic() + 30
    while "board ready" not in (work / "emu.out").read_text():
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("pynq-emu did not start: " + (work / "emu.err").read_text())
        time.sleep(0.05)
    return process, out, err


def io_shape_dict(overlay_json):
    """FINN's io_shape_dict for the overlay: the inverse of overlays/build.py's
    io_description, which writes overlay.json from the driver FINN generated."""
    sides = {"i": overlay_json["input"], "o": overlay_json["output"]}
    shapes = {f"{k}shape_{form}": [tuple(side[f"shape_{form}"])] for k, side in sides.items()
              for form in ("normal", "folded", "packed")}
    return {"idt": [DataType[sides["i"]["datatype"]]], "odt": [DataType[sides["o"]["datatype"]]], **shapes,
            "input_dma_name": [sides["i"]["dma"]], "output_dma_name": [sides["o"]["dma"]],
            "number_of_external_weights": 0, "num_inputs": 1, "num_outputs": 1}


def classes_from(output, kind):
    """FINN's output as class indices: the index itself (top1, FINN's LabelSelect)
    or the first largest logit."""
    output = np.asarray(output)
    return [int(v) for v in (output.reshape(-1) if kind == "top1" else np.argmax(output, axis=1))]


def main():
    images = []
    for name in ("normal", "benign", "malignant"):
        images += busi_infer.collect_images(busi_dir / name)[:IMAGES_PER_CLASS]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        overlay = work / "overlay"
        shutil.copytree(source_dir / "overlays/busi-w2a4", overlay)
        description = json.loads((overlay / "overlay.json").read_text())
        process, out, err = start_board(work, overlay)
        try:
            # 1. FINN's driver on PYNQ, through the device class PYNQ finds by itself. First, on a
            # fresh board: the device's copy of the DMA memory then holds nothing from another
            # client, so a flush or invalidate PYNQ failed to do gives wrong classes.
            os.environ["PYNQ_EMU_ROOT"] = str(work / "board")
            from pynq_emu_device import EmulatedPynqZ1
            device = pynq.Device.active_device
            assert isinstance(device, EmulatedPynqZ1), pynq.Device.devices
            bitfile = str(overlay / description["bitstream"])
            started = time.monotonic()
            # pynq's two .hwh parsers: pynqmetadata's (Overlay's), and pynq.pl_server.hwh_parser.HWH
            # (partial regions; pynq 2.x's only one), which is _HWHZynq on a Zynq-7000 and an
            # abstract base that cannot parse on x86 (hwh_parser.py:657-662).
            for parser in (device.get_bitfile_metadata(bitfile), _HWHZynq(hwh_name=str(overlay / description["hwh"]))):
                for dma, base in ((description["input"]["dma"], 0x43C00000),
                                  (description["output"]["dma"], 0x43C10000)):
                    found = parser.ip_dict[dma]
                    assert (found["phys_addr"], found["addr_range"]) == (base, 0x10000), (type(parser), found)
            pynq.Bitstream(bitfile).download()  # pynq's .bit -> .bin into the emulator's fpga_manager
            accelerator = FINNExampleOverlay(bitfile, "zynq-iodma", io_shape_dict(description),
                                             batch_size=len(images), fclk_mhz=0, download=False)
            pixels = np.stack([busi_infer.load_image(path) for path in images])[..., np.newaxis]
            finn = classes_from(accelerator.execute(pixels), description["output"]["kind"])
            accelerator.batch_size = 1  # new buffers, and one image of each class at a time
            single = [classes_from(accelerator.execute(image[np.newaxis]), description["output"]["kind"])[0]
                      for image in pixels[::IMAGES_PER_CLASS]]
            print(f"FINN's driver on pynq {pynq.__version__}: {len(finn)} + {len(single)} images "
                  f"in {time.monotonic() - started:.1f} s")

            # 2. busi-infer's fpga backend on the same board, as its own process.
            started = time.monotonic()
            result = subprocess.run([str(busi_infer_cli), "--backend", "fpga", "--overlay", str(overlay),
                                     "--device-root", str(work / "board"), "--batch", str(len(images)),
                                     "--format", "json", "--no-progress", *images],
                                    capture_output=True, text=True, check=True)
            by_file = {p["file"]: p["class_index"] for p in json.loads(result.stdout)["images"]}
            expected = [by_file[path] for path in images]
            print(f"busi-infer --backend fpga: {len(expected)} images in {time.monotonic() - started:.1f} s")
        finally:
            process.terminate()
            process.wait(timeout=30)
            out.close(), err.close()
        emulator_report = (work / "emu.out").read_text() + (work / "emu.err").read_text()
    print(emulator_report, end="")
    names = ["normal", "benign", "malignant"]
    for path, fpga, by_finn in zip(images, expected, finn):
        print(f"{Path(path).name:>24}: busi-infer fpga {names[fpga]:>9}, FINN driver {names[by_finn]:>9}")
    assert finn == expected, (finn, expected)
    assert single == expected[::IMAGES_PER_CLASS], (single, expected[::IMAGES_PER_CLASS])
    # Every image reached the emulated accelerator: busi-infer's batch, FINN's batch, FINN's three singles.
    total = 2 * len(images) + 3
    assert f"{total} images" in emulator_report, emulator_report
    # and the board noticed nothing wrong (unflushed input, a bad .bin, addresses outside its memory).
    assert "pynq-emu: error" not in emulator_report and emulator_report.count("pynq-emu:") == 2, emulator_report
    print(f"OK: FINN's driver and busi-infer --backend fpga agree on all {len(images)} BUSI images "
          f"({sum(1 for c in expected if c == 0)} normal, {sum(1 for c in expected if c == 1)} benign, "
          f"{sum(1 for c in expected if c == 2)} malignant predicted)")


main()
