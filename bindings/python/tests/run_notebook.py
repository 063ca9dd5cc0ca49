"""Executes the example notebook headless, as CI does, so it cannot rot.

    run_notebook.py NOTEBOOK OUTPUT_DIR

Runs every cell with nbconvert in the `python3` kernel, which must be this
interpreter (Debian's /usr/bin/python3, where the bindings and their
dependencies are); the notebook prints sys.executable and this script checks it.
Exits 77 (ctest's skip code) with the reason when the BUSI images or nbconvert
are absent. BUSI_NOTEBOOK_IMAGES_PER_CLASS keeps the run short.
"""
import json
import os
import pathlib
import subprocess
import sys

SKIP = 77


def main():
    notebook, out_dir = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
    data = os.environ.get("BUSI_DATA") or os.path.join(
        os.environ.get("BUSI_SOURCE_DIR", "."), "..", "shared", "busi")
    if not os.path.isdir(data):
        print(f"SKIP: no BUSI images at {data} (set BUSI_DATA)")
        return SKIP
    try:
        import nbconvert  # noqa: F401  (only to know whether it is there)
    except ImportError:
        print(f"SKIP: nbconvert is not installed for {sys.executable} (Debian: jupyter-nbconvert)")
        return SKIP

    out_dir.mkdir(parents=True, exist_ok=True)
    executed = out_dir / (notebook.stem + ".executed.ipynb")
    env = dict(os.environ, BUSI_DATA=os.path.abspath(data))
    cmd = [sys.executable, "-m", "nbconvert", "--to", "notebook", "--execute",
           "--ExecutePreprocessor.kernel_name=python3", "--ExecutePreprocessor.timeout=300",
           "--output-dir", str(out_dir), "--output", executed.name, str(notebook)]
    print("+", " ".join(cmd), flush=True)
    result = subprocess.run(cmd, env=env)
    if result.returncode != 0:
        print(f"FAIL: nbconvert exited {result.returncode}")
        return 1

    # The kernel must be the interpreter the bindings were built for.
    text = "".join("".join(output.get("text", ""))
                   for cell in json.loads(executed.read_text())["cells"]
                   for output in cell.get("outputs", []) if output.get("output_type") == "stream")
    kernel_python = next((line.split(":", 1)[1].strip() for line in text.splitlines()
                          if line.startswith("python:")), None)
    if kernel_python is None or os.path.realpath(kernel_python) != os.path.realpath(sys.executable):
        print(f"FAIL: the notebook ran in {kernel_python}, not {sys.executable}")
        return 1
    print(f"ok: executed {notebook.name} in {kernel_python} -> {executed}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
