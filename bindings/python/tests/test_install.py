"""`cmake --install` of the python component gives an importable package."""
import os
import re
import subprocess
import sys

import pytest

from conftest import BUILD_DIR, SOURCE_DIR


def test_install_prefix_import(tmp_path):
    cmake = os.environ.get("BUSI_CMAKE", "cmake")
    if BUILD_DIR is None or not (BUILD_DIR / "CMakeCache.txt").exists():
        pytest.skip("BUSI_BUILD_DIR does not name a CMake build tree (ctest sets it)")
    cache = (BUILD_DIR / "CMakeCache.txt").read_text()
    site = re.search(r"^BUSI_PYTHON_INSTALL_DIR:\w+=(.*)$", cache, re.M).group(1)
    prefix = tmp_path / "prefix"
    subprocess.run([cmake, "--install", str(BUILD_DIR), "--component", "python", "--prefix", str(prefix)],
                   check=True, capture_output=True)
    package = prefix / site / "busi_infer"
    installed = sorted(p.name for p in package.iterdir())
    assert {"__init__.py", "_core.pyi", "py.typed"} <= set(installed)
    assert any(name.startswith("_core.") and name.endswith(".so") for name in installed), installed

    # A fresh interpreter that sees only the install prefix (not the build tree).
    script = (
        "import busi_infer, numpy\n"
        "print(busi_infer.__file__)\n"
        "if 'cpu_int' in busi_infer.available_backends():\n"
        "    p = busi_infer.Classifier('cpu_int').classify(numpy.full((64, 64), 128, numpy.uint8))\n"
        "    print(p.class_name)\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(prefix / site)
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                            cwd=tmp_path, check=True)
    lines = result.stdout.splitlines()
    assert lines[0].startswith(str(package)), lines
    assert SOURCE_DIR.exists()
