"""busi-infer from Python: classify breast ultrasound images (normal, benign,
malignant) with the same C++ runtime and backends as the busi-infer CLI.

    import busi_infer
    clf = busi_infer.Classifier("cpu_int")           # or "cpu_ref", "fpga"
    p = clf.classify("benign (1).png")               # a path ...
    p = clf.classify(cv2.imread(path))               # ... or a BGR/gray uint8 array
    print(p.class_name, p.scores)

The metrics (ConfusionMatrix, summarize_latencies) and the evaluation harness
(evaluate, EvaluationReport, make_power_meter, render_dashboard) are busi-eval's.
Errors raised by the runtime are busi_infer.Error (ModelError, ImageError,
DeviceError) with the runtime's message. See docs/python.md.
"""
import os as _os
import pathlib as _pathlib

# A wheel (pip install) carries the shipped models inside the package; point the
# runtime's default-model search there unless the user chose a folder.
_bundled_models = _pathlib.Path(__file__).with_name("models")
if _bundled_models.is_dir():
    _os.environ.setdefault("BUSI_MODEL_DIR", str(_bundled_models))

from ._core import (  # noqa: E402  (after the model folder is known)
    BackendRun,
    BinaryRates,
    Classifier,
    ConfusionMatrix,
    DeviceError,
    EnergyReading,
    Error,
    EvaluationReport,
    ImageError,
    LabelledImages,
    LatencySummary,
    MachineInfo,
    Model,
    ModelError,
    PowerMeter,
    Prediction,
    RocCurve,
    __version__,
    available_backends,
    collect_images,
    describe_power_sources,
    evaluate,
    label_from_path,
    load_image,
    load_labelled_images,
    make_power_meter,
    percentile,
    preprocess,
    render_dashboard,
    roc_curve,
    summarize_latencies,
    wilson_interval,
)

__all__ = [
    "BackendRun",
    "BinaryRates",
    "Classifier",
    "ConfusionMatrix",
    "DeviceError",
    "EnergyReading",
    "Error",
    "EvaluationReport",
    "ImageError",
    "LabelledImages",
    "LatencySummary",
    "MachineInfo",
    "Model",
    "ModelError",
    "PowerMeter",
    "Prediction",
    "RocCurve",
    "__version__",
    "available_backends",
    "collect_images",
    "describe_power_sources",
    "evaluate",
    "label_from_path",
    "load_image",
    "load_labelled_images",
    "make_power_meter",
    "percentile",
    "preprocess",
    "render_dashboard",
    "roc_curve",
    "summarize_latencies",
    "wilson_interval",
]
