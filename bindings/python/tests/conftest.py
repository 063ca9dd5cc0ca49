"""Fixtures for the busi_infer tests. ctest sets PYTHONPATH to the build-tree
package and BUSI_SOURCE_DIR / BUSI_BUILD_DIR; BUSI_DATA points at the BUSI
images (default: <source>/../shared/busi)."""
import json
import os
import pathlib
import shutil
import subprocess

import numpy as np
import pytest

import busi_infer

SOURCE_DIR = pathlib.Path(os.environ.get("BUSI_SOURCE_DIR", pathlib.Path(__file__).parents[3])).resolve()
BUILD_DIR = pathlib.Path(os.environ["BUSI_BUILD_DIR"]) if "BUSI_BUILD_DIR" in os.environ else None


@pytest.fixture(scope="session")
def backend():
    """The integer-exact backend: every test classifies with it."""
    if "cpu_int" not in busi_infer.available_backends():
        pytest.skip(f"cpu_int is not compiled in (backends: {busi_infer.available_backends()})")
    return "cpu_int"


@pytest.fixture(scope="session")
def classifier(backend):
    return busi_infer.Classifier(backend)


@pytest.fixture(scope="session")
def busi_dir():
    data = pathlib.Path(os.environ.get("BUSI_DATA") or SOURCE_DIR.parent / "shared" / "busi")
    if not data.is_dir():
        pytest.skip(f"no BUSI images at {data} (set BUSI_DATA)")
    return data


@pytest.fixture(scope="session")
def busi_images(busi_dir):
    """A few real images of each class (file names with spaces and parentheses)."""
    images = []
    for name in ("normal", "benign", "malignant"):
        images += busi_infer.collect_images(busi_dir / name)[:2]
    return images


def synthetic_bgr(height=256, width=256, seed=0):
    """An ultrasound-like 8-bit BGR image: smooth structure plus speckle, so the
    area resize and the gray weights both matter."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = 128 + 90 * np.sin(x / 17.0) * np.cos(y / 23.0)
    image = base[..., None] + rng.normal(0, 25, (height, width, 3)) + np.array([-30, 0, 30])
    return np.clip(image, 0, 255).astype(np.uint8)


@pytest.fixture
def png_path(tmp_path):
    """A synthetic color PNG on disk, and the BGR array it holds."""
    cv2 = pytest.importorskip("cv2")
    image = synthetic_bgr()
    path = tmp_path / "synthetic (1).png"
    assert cv2.imwrite(str(path), image)
    return path, image


def tool_path(tool):
    """A C++ tool of this build (or on PATH); None when not built."""
    exe = BUILD_DIR / "tools" / tool if BUILD_DIR else None
    if exe is not None and exe.exists():
        return str(exe)
    return shutil.which(tool)


def cli_error(tool, *args):
    """The message a C++ tool of this build prints for an error ("<tool>: error: MSG"),
    or None when the tool is not built."""
    exe = tool_path(tool)
    if exe is None:
        return None
    result = subprocess.run([exe, *map(str, args)], capture_output=True, text=True)
    assert result.returncode != 0, f"{tool} {args} succeeded: {result.stdout}"
    prefix = f"{tool}: error: "
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith(prefix), result.stderr
    return line[len(prefix):]


def cli_json(*args):
    """busi-infer's JSON report for the arguments, or None when it is not built.
    Its exit code is not checked: 1 means some images failed, which tests ask for."""
    exe = tool_path("busi-infer")
    if exe is None:
        return None
    result = subprocess.run([exe, "--format", "json", "--no-progress", *map(str, args)],
                            capture_output=True, text=True)
    assert result.returncode in (0, 1), result.stderr
    return json.loads(result.stdout)
