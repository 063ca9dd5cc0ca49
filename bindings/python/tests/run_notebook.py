"""Executes the example notebook headless, as CI does, so it cannot rot.

    run_notebook.py NOTEBOOK OUTPUT_DIR

Runs every cell with nbconvert in the `python3` kernel, which must be this
interpreter (Debian's /usr/bin/python3, where the bindings and their
dependencies are); the notebook prints sys.executable and this script checks it.
When the build has the fpga backend and its emulator (pynq-emu), the notebook's
backend comparison runs fpga on an emulated board, and this script checks that
the fpga row is there. Exits 77 (ctest's skip code) with the reason when the
BUSI images or nbconvert are absent. BUSI_NOTEBOOK_IMAGES_PER_CLASS keeps the
run short.
"""
import contextlib
import json
import os
import pathlib
import selectors
import shutil
import subprocess
import sys
import tempfile

SKIP = 77


@contextlib.contextmanager
def emulated_board():
    """An emulated PYNQ-Z1 serving the shipped overlay with the default model:
    yields the environment that points the notebook at it, or {} without one."""
    import busi_infer
    build = pathlib.Path(os.environ.get("BUSI_BUILD_DIR", "."))
    emulator = build / "backends" / "fpga" / "pynq-emu"
    if "fpga" not in busi_infer.available_backends() or not emulator.exists():
        yield {}
        return
    model = busi_infer.Classifier("cpu_int").model
    with tempfile.TemporaryDirectory(prefix="busi-notebook-") as tmp:
        overlay = pathlib.Path(tmp, "overlay")
        shutil.copytree(pathlib.Path(os.environ["BUSI_SOURCE_DIR"], "overlays", "busi-w2a4"), overlay)
        description = json.loads((overlay / "overlay.json").read_text())
        description["model"] = model.name
        (overlay / "overlay.json").write_text(json.dumps(description))
        root = pathlib.Path(tmp, "board")
        process = subprocess.Popen([str(emulator), "--root", str(root), "--overlay", str(overlay), "--model",
                                    model.source, "--make-hardware"], stdout=subprocess.PIPE, text=True)
        try:
            with selectors.DefaultSelector() as wait:
                wait.register(process.stdout, selectors.EVENT_READ)
                ready = wait.select(timeout=60) and "board ready" in process.stdout.readline()
            if not ready:
                raise RuntimeError("pynq-emu did not start")
            yield {"BUSI_OVERLAY": str(overlay), "BUSI_DEVICE_ROOT": str(root)}
        finally:
            process.terminate()
            process.wait(timeout=30)


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
    cmd = [sys.executable, "-m", "nbconvert", "--to", "notebook", "--execute",
           "--ExecutePreprocessor.kernel_name=python3", "--ExecutePreprocessor.timeout=300",
           "--output-dir", str(out_dir), "--output", executed.name, str(notebook)]
    with emulated_board() as board:
        env = dict(os.environ, BUSI_DATA=os.path.abspath(data), **board)
        print("+", " ".join(cmd), "with", board or "no emulated board", flush=True)
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
    compared = {line.split()[0] for line in text.splitlines() if line.split()[:1] and
                line.split()[0] in ("cpu_int", "cpu_ref", "fpga") and "%" in line}
    if "cpu_int" not in compared or (board and "fpga" not in compared):
        print(f"FAIL: the backend comparison shows {sorted(compared)}")
        return 1
    print(f"ok: executed {notebook.name} in {kernel_python}, compared {sorted(compared)} -> {executed}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
