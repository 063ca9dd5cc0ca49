"""The fpga backend from Python, against the emulated PYNQ-Z1 (pynq-emu): the
same classes as cpu_int, and a missing board is a DeviceError with errno."""
import errno
import json
import os
import selectors
import shutil
import subprocess

import numpy as np
import pytest

import busi_infer
from conftest import BUILD_DIR, SOURCE_DIR, cli_error, synthetic_bgr


@pytest.fixture
def busi_dir_if_any():
    """Up to three real BUSI images, one per class, when they are here."""
    data = os.environ.get("BUSI_DATA") or str(SOURCE_DIR.parent / "shared" / "busi")
    found = []
    for name in ("normal", "benign", "malignant"):
        if os.path.isdir(os.path.join(data, name)):
            found += busi_infer.collect_images(os.path.join(data, name))[:1]
    return found


@pytest.fixture
def overlay(tmp_path, classifier):
    if "fpga" not in busi_infer.available_backends():
        pytest.skip("fpga backend not compiled in")
    folder = tmp_path / "overlay"
    shutil.copytree(SOURCE_DIR / "overlays" / "busi-w2a4", folder)
    description = json.loads((folder / "overlay.json").read_text())
    description["model"] = classifier.model.name
    (folder / "overlay.json").write_text(json.dumps(description))
    return folder


@pytest.fixture
def board(tmp_path, overlay, classifier):
    """A running pynq-emu serving the overlay with cpu_int's model; its root folder."""
    emulator = BUILD_DIR / "backends" / "fpga" / "pynq-emu" if BUILD_DIR else None
    if emulator is None or not emulator.exists():
        pytest.skip("pynq-emu is not built")
    root = tmp_path / "board"
    process = subprocess.Popen([str(emulator), "--root", str(root), "--overlay", str(overlay),
                                "--model", classifier.model.source, "--make-hardware"],
                               stdout=subprocess.PIPE, text=True)
    try:
        with selectors.DefaultSelector() as wait:
            wait.register(process.stdout, selectors.EVENT_READ)
            assert wait.select(timeout=60), "pynq-emu did not report ready within 60 s"
        line = process.stdout.readline()
        assert "board ready" in line, line
        yield root
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_fpga_equals_cpu_int_on_the_emulated_board(overlay, board, classifier, busi_dir_if_any):
    fpga = busi_infer.Classifier("fpga", overlay=overlay, device_root=board)
    assert fpga.backend == "fpga" and str(board) in fpga.describe()
    rng = np.random.default_rng(41)
    images = [synthetic_bgr(seed=42), rng.integers(0, 256, (200, 300), dtype=np.uint8),
              np.full((255, 255), 30, np.uint8)]
    images += busi_dir_if_any  # paths
    expected = [classifier.classify(image).class_index for image in images]
    assert [fpga.classify(image).class_index for image in images] == expected
    assert [p.class_index for p in fpga.classify_batch(images)] == expected


def test_missing_board_is_a_device_error(overlay, tmp_path):
    with pytest.raises(busi_infer.DeviceError) as info:
        busi_infer.Classifier("fpga", overlay=overlay, device_root=tmp_path / "no-board")
    assert info.value.errno == errno.ENOENT and str(overlay) in str(info.value)
    assert cli_error("busi-infer", "--backend", "fpga", "--overlay", overlay, "--device-root",
                     tmp_path / "no-board", tmp_path) in (None, str(info.value))

