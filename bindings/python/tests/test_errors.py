"""C++ errors arrive as busi_infer exceptions carrying the runtime's own message
(the C++ tools print the same text after "<tool>: error: ")."""
import os

import numpy as np
import pytest

import busi_infer
from conftest import SOURCE_DIR, cli_error, cli_json

MODEL = SOURCE_DIR / "models" / "busi-w2a4.bqnn"


def test_exception_classes():
    assert issubclass(busi_infer.Error, RuntimeError)
    for cls in (busi_infer.ModelError, busi_infer.ImageError, busi_infer.DeviceError):
        assert issubclass(cls, busi_infer.Error)
    assert issubclass(busi_infer.DeviceError, OSError)
    assert busi_infer.ModelError.__module__ == "busi_infer"


def test_unknown_backend_lists_the_known_ones():
    with pytest.raises(busi_infer.Error) as info:
        busi_infer.Classifier("fgpa")
    names = busi_infer.available_backends()
    assert str(info.value) == "unknown backend 'fgpa'; available: " + (", ".join(names) or "(none compiled in)")
    assert type(info.value) is busi_infer.Error
    from_cli = cli_error("busi-infer", "--backend", "fgpa", SOURCE_DIR / "models")
    assert from_cli in (None, str(info.value))


def bad_models(tmp_path):
    good = MODEL.read_bytes()
    files = {"empty.bqnn": b"", "truncated.bqnn": good[: len(good) // 2],
             "magic.bqnn": b"NOTAQNN\0" + good[8:],
             "crc.bqnn": good[:-1] + bytes([good[-1] ^ 0xFF])}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    return [tmp_path / name for name in files] + [tmp_path / "missing (1).bqnn"]


def test_model_errors_match_the_cpp_message(tmp_path):
    for path in bad_models(tmp_path):
        with pytest.raises(busi_infer.ModelError) as info:
            busi_infer.Model.load(path)
        assert str(path) in str(info.value)
        expected = cli_error("busi-model", "info", path)
        if expected is None:
            pytest.skip("busi-model is not built: no C++ message to compare with")
        assert str(info.value) == expected


def test_classifier_model_errors(tmp_path, backend):
    path = bad_models(tmp_path)[1]
    with pytest.raises(busi_infer.ModelError) as from_classifier:
        busi_infer.Classifier(backend, model=path)
    with pytest.raises(busi_infer.ModelError) as from_load:
        busi_infer.Model.load(path)
    assert str(from_classifier.value) == str(from_load.value)


def test_unknown_setting(backend):
    with pytest.raises(busi_infer.Error, match=f"^backend {backend} has no setting 'bogus'") as info:
        busi_infer.Classifier(backend, bogus=1)
    assert cli_error("busi-infer", "--set", "bogus=1", SOURCE_DIR / "models") in (None, str(info.value))


def test_image_errors_match_the_cli(classifier, tmp_path):
    files = {"empty.png": b"", "text.png": b"not an image at all\n", "truncated.jpg": b"\xff\xd8\xff\xe0" + bytes(100)}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    report = cli_json(*(tmp_path / name for name in files))
    if report is None:
        pytest.skip("busi-infer is not built: no C++ message to compare with")
    assert len(report["images"]) == len(files)
    for entry in report["images"]:
        with pytest.raises(busi_infer.ImageError) as info:
            classifier.classify(entry["file"])
        assert str(info.value) == entry["error"]


def test_image_file_errors(classifier, tmp_path):
    cases = {"missing (2).png": None, "empty.png": b"", "text.png": b"not an image at all\n",
             "truncated.jpg": b"\xff\xd8\xff\xe0" + bytes(100)}
    for name, data in cases.items():
        path = tmp_path / name
        if data is not None:
            path.write_bytes(data)
        with pytest.raises(busi_infer.ImageError) as info:
            classifier.classify(path)
        assert str(info.value).startswith(str(path) + ": "), str(info.value)
        with pytest.raises(busi_infer.ImageError) as from_load:
            busi_infer.load_image(path)
        assert str(from_load.value) == str(info.value)
        with pytest.raises(busi_infer.ImageError):
            classifier.classify_batch([np.zeros((8, 8), np.uint8), path])


@pytest.mark.parametrize("array, message", [
    (np.zeros((0, 0), np.uint8), "image view is empty"),
    (np.zeros((8, 8, 2), np.uint8), "image view: 2 channels not supported (1, 3 or 4)"),
    (np.zeros((8, 8), np.float32), "image array: dtype float32 not supported (uint8, uint16)"),
    (np.zeros((8, 8), np.int8), "image array: dtype int8 not supported (uint8, uint16)"),
    (np.zeros((2, 8, 8, 3), np.uint8), "image array: 4 dimensions not supported (HxW gray, HxWxC with C = 1, 3, 4)"),
])
def test_bad_arrays(classifier, array, message):
    with pytest.raises(busi_infer.ImageError) as info:
        classifier.classify(array)
    assert str(info.value) == message


def test_bad_arguments(classifier):
    with pytest.raises(busi_infer.ImageError, match="expected an image path"):  # issue 16: not a TypeError
        classifier.classify(42)
    with pytest.raises(busi_infer.ImageError, match="color_order 'xyz' not supported"):
        classifier.classify(np.zeros((8, 8), np.uint8), color_order="xyz")


def test_fpga_without_a_board(tmp_path):
    """An empty device root: no board. The error names what is missing, as the CLI's does."""
    if "fpga" not in busi_infer.available_backends():
        pytest.skip("fpga backend not compiled in")
    with pytest.raises(busi_infer.Error) as info:
        busi_infer.Classifier("fpga", device_root=tmp_path)
    assert cli_error("busi-infer", "--backend", "fpga", "--device-root", tmp_path, tmp_path) in (None, str(info.value))


def test_device_errors_carry_errno_and_say_the_condition():
    """A device error is an Error and an OSError with errno, its message says the
    condition (never ": Success"), and the CLI prints the same text."""
    import errno
    with pytest.raises(busi_infer.DeviceError) as info:
        busi_infer.make_power_meter("command:exit 3")
    assert isinstance(info.value, busi_infer.Error) and isinstance(info.value, OSError)
    assert info.value.errno == errno.EIO
    assert str(info.value) == "power command 'exit 3': exited with status 3: Input/output error"
    assert "Success" not in str(info.value)
    from_cli = cli_error("busi-eval", "--power", "command:exit 3", SOURCE_DIR / "models")
    assert from_cli in (None, str(info.value))


@pytest.mark.parametrize("tool", ["busi-infer", "busi-eval", "busi-dashboard", "busi-model"])
def test_every_tool_shares_the_exit_codes(tool):
    """Every tool parses with Boost.Program_options: --help lists the shared exit
    codes, a bad option exits 2 with "<tool>: error: ...", as docs/cli.md says."""
    import subprocess
    from conftest import tool_path
    exe = tool_path(tool)
    if exe is None:
        pytest.skip(f"{tool} is not built")
    args = ["random", "--help"] if tool == "busi-model" else ["--help"]
    helped = subprocess.run([exe, *args], capture_output=True, text=True)
    assert helped.returncode == 0 and "Exit codes (every busi-* tool)" in helped.stdout, helped.stdout
    bad = subprocess.run([exe, *args[:-1], "--no-such-option"], capture_output=True, text=True)
    assert bad.returncode == 2, bad.stderr
    assert bad.stderr.startswith(f"{tool}: error: unrecognised option '--no-such-option'"), bad.stderr


# Issue 16 (red-team finding 6): hostile inputs from Python are busi_infer
# errors with a message, promptly, never unbounded memory, a hang or a raw
# TypeError / "Unable to cast".
def test_device_files_and_fifos_are_refused_unread(tmp_path):
    with pytest.raises(busi_infer.ImageError, match="/dev/zero: is a character device, not a regular file"):
        busi_infer.load_image("/dev/zero")
    with pytest.raises(busi_infer.ModelError, match="/dev/zero: is a character device, not a regular file"):
        busi_infer.Model.load("/dev/zero")
    fifo = tmp_path / "scan.png"
    os.mkfifo(fifo)
    with pytest.raises(busi_infer.ImageError, match="is a FIFO"):  # no writer: must not block
        busi_infer.load_image(fifo)


def test_huge_arrays_are_refused_before_any_copy(classifier):
    huge = np.broadcast_to(np.zeros(1, np.uint8), (100000, 100000))  # 10 GB, no memory behind it
    with pytest.raises(busi_infer.ImageError, match=r"image array: shape \(100000, 100000, 1\).*too large"):
        classifier.classify(huge)
    wide = np.broadcast_to(np.zeros((1, 1), np.uint8), (1, 2**32 + 3))  # was read as 1x3 (an int cast)
    with pytest.raises(busi_infer.ImageError, match="too large"):
        busi_infer.preprocess(wide)


def test_bad_arguments_are_busi_errors(tmp_path, classifier):
    with pytest.raises(busi_infer.ImageError, match="out of range"):
        busi_infer.preprocess(np.zeros((8, 8), np.uint8), height=0)
    with pytest.raises(busi_infer.ImageError, match="expected an image path .* got int"):
        classifier.classify(123)
    with pytest.raises(busi_infer.ModelError, match="model must be a .bqnn path .* not int"):
        busi_infer.Classifier("cpu_int", model=123)
    with pytest.raises(busi_infer.ImageError, match="cannot be encoded for the file system"):
        classifier.classify("lone\ud800surrogate.png")
    # Undecodable bytes in a file name come back as os.fsdecode gives them.
    name = os.fsdecode(b"scan\x80.png")
    with pytest.raises(busi_infer.ImageError) as info:
        classifier.classify(str(tmp_path / name))
    assert name + ": no such file" in str(info.value)


def _with_header(package, edit):
    """The package with its JSON header edited, length and CRC re-signed."""
    import json
    import struct
    import zlib
    length = struct.unpack("<I", package[12:16])[0]
    text = edit(json.loads(package[16:16 + length]))
    body = package[:12] + struct.pack("<I", len(text)) + text + package[16 + length:-4]
    return body + struct.pack("<I", zlib.crc32(body))


def test_hostile_models_are_model_errors(tmp_path):
    """Issue 16, findings 1 and 2 from Python: deep nesting, wrapping counts, fractions."""
    import json

    def deep(h):
        h["provenance"] = "DEEP"
        return json.dumps(h).encode().replace(b'"DEEP"', b"[" * 100000 + b"]" * 100000)

    def wrap(h):
        h["layers"][0].update(out_channels=1 << 20, in_channels=1 << 18, kernel=8192)
        h["layers"][0]["weights"]["size"] = 0
        return json.dumps(h).encode()

    def fraction(h):
        h["layers"][0]["weights"]["offset"] = 5.5
        return json.dumps(h).encode()

    good = MODEL.read_bytes()
    for edit, reason in [(deep, "deeper than 64 levels"), (wrap, "weights exceed the limit"),
                         (fraction, '"weights.offset" = 5.5 is not a whole number')]:
        path = tmp_path / "hostile.bqnn"
        path.write_bytes(_with_header(good, edit))
        with pytest.raises(busi_infer.ModelError, match=reason):
            busi_infer.Model.load(path)
