"""busi-infer from Python: classify breast ultrasound images (normal, benign,
malignant) with the same C++ runtime and backends as the busi-infer CLI.

    import busi_infer
    clf = busi_infer.Classifier("cpu_int")           # or "cpu_ref", "fpga"
    p = clf.classify("benign (1).png")               # a path ...
    p = clf.classify(cv2.imread(path))               # ... or a BGR/gray uint8 array
    print(p.class_name, p.scores)

Errors raised by the runtime are busi_infer.Error (ModelError, ImageError,
DeviceError) with the runtime's message. See docs/python.md.
"""
from ._core import (
    Classifier,
    DeviceError,
    Error,
    ImageError,
    Model,
    ModelError,
    Prediction,
    __version__,
    available_backends,
    collect_images,
    load_image,
    preprocess,
)

__all__ = [
    "Classifier",
    "DeviceError",
    "Error",
    "ImageError",
    "Model",
    "ModelError",
    "Prediction",
    "__version__",
    "available_backends",
    "collect_images",
    "load_image",
    "preprocess",
]
