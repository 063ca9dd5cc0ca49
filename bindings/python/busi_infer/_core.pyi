"""Type stub of busi_infer._core, the compiled module (bindings/python/src/core.cpp)."""
import os
from typing import Iterable, List, Optional, Tuple, Union

import numpy as np
import numpy.typing as npt

__version__: str

# An image: a file path, or a uint8/uint16 array HxW (gray), HxWx3 (BGR) or
# HxWx4 (BGRA) -- OpenCV's channel order; pass color_order="rgb" for RGB(A).
ImageInput = Union[str, os.PathLike, npt.NDArray[np.uint8], npt.NDArray[np.uint16]]

class Error(RuntimeError):
    """Base of every error busi-infer raises on purpose."""

class ModelError(Error):
    """A model package that cannot be used."""

class ImageError(Error):
    """An image that cannot be decoded or pre-processed."""

class DeviceError(Error, OSError):
    """A device, driver or OS resource failed (errno in .errno when known)."""

class Prediction:
    """One classification result."""

    @property
    def class_index(self) -> int: ...
    @property
    def class_name(self) -> str: ...
    @property
    def scores(self) -> List[float]:
        """Softmax scores, one per class; empty when the backend reports only the top-1."""
    @property
    def logits(self) -> List[int]:
        """Raw int32 logits of integer backends; empty otherwise."""

class Model:
    """A validated .bqnn model package; immutable, shareable between classifiers and threads."""

    @staticmethod
    def load(path: Union[str, os.PathLike]) -> Model:
        """Reads and validates a .bqnn file; raises ModelError naming the file and the problem."""
    @property
    def name(self) -> str: ...
    @property
    def kind(self) -> str:
        """'quantized' or 'float'."""
    @property
    def class_names(self) -> List[str]: ...
    @property
    def input_shape(self) -> Tuple[int, int, int]:
        """(channels, height, width) of the network input."""
    @property
    def preprocess(self) -> str:
        """The pre-processing method, e.g. 'gray-area-v1'."""
    @property
    def num_layers(self) -> int: ...
    @property
    def provenance_json(self) -> str: ...
    @property
    def source(self) -> str:
        """The file it was loaded from ('' when built in memory)."""

class Classifier:
    """A model running on one backend.

    Calls on one instance are serialized (it keeps scratch buffers); use one
    instance per thread to classify in parallel. The GIL is released while an
    image is decoded, pre-processed and classified.
    """

    def __init__(self, backend: str = "cpu_int", model: Union[None, str, os.PathLike, Model] = None,
                 **settings: object) -> None:
        """model: a .bqnn path, a Model, or None for the backend's default package.
        settings: backend options, passed as strings (isa="avx2", overlay=..., device_root=...).
        Raises Error for an unknown backend or setting, ModelError, DeviceError."""
    @property
    def backend(self) -> str: ...
    def describe(self) -> str:
        """One line on how it runs (ISA, device, clock, ...)."""
    @property
    def model(self) -> Model: ...
    @property
    def class_names(self) -> List[str]: ...
    def classify(self, image: ImageInput, color_order: str = "bgr") -> Prediction:
        """Classifies an image file or array. Arrays are read in place when each
        row's pixels are contiguous and rows are a positive stride apart, else copied."""
    def classify_batch(self, images: Iterable[ImageInput], color_order: str = "bgr") -> List[Prediction]:
        """Classifies paths and/or arrays in one call; one Prediction each, in order."""
    def _time_classify_pixels(self, image: npt.NDArray[np.uint8], repeats: int) -> List[float]: ...

def available_backends() -> List[str]:
    """The backends compiled into this build, e.g. ['cpu_int', 'cpu_ref', 'fpga']."""

def preprocess(image: Union[npt.NDArray[np.uint8], npt.NDArray[np.uint16]], height: int = 255,
               width: int = 255, color_order: str = "bgr") -> npt.NDArray[np.uint8]:
    """gray-area-v1 (docs/preprocessing.md): the height x width uint8 array the network sees."""

def load_image(path: Union[str, os.PathLike], height: int = 255, width: int = 255) -> npt.NDArray[np.uint8]:
    """Decodes an image file and pre-processes it with gray-area-v1."""

def collect_images(root: Union[str, os.PathLike]) -> List[str]:
    """The image files under a folder (recursively, sorted), or the path itself for a file."""

class BinaryRates:
    """Normal versus abnormal counts (positive = abnormal: benign or malignant)."""

    @property
    def true_positive(self) -> int: ...
    @property
    def false_negative(self) -> int: ...
    @property
    def true_negative(self) -> int: ...
    @property
    def false_positive(self) -> int: ...
    @property
    def sensitivity(self) -> float:
        """TP / (TP + FN); NaN without abnormal images."""
    @property
    def specificity(self) -> float:
        """TN / (TN + FP); NaN without normal images."""

class ConfusionMatrix:
    """Counts of (true class, predicted class); rows true, columns predicted, model class order."""

    def __init__(self, class_names: List[str]) -> None: ...
    def add(self, true_class: int, predicted_class: int) -> None:
        """Counts one image; raises Error for a class index out of range."""
    def add_all(self, true_classes: Iterable[int], predicted_classes: Iterable[int]) -> None:
        """Counts many images (two equally long sequences)."""
    @property
    def class_names(self) -> List[str]: ...
    def count(self, true_class: int, predicted_class: int) -> int: ...
    @property
    def total(self) -> int: ...
    @property
    def correct(self) -> int: ...
    def class_total(self, true_class: int) -> int: ...
    @property
    def accuracy(self) -> float:
        """correct / total; NaN when empty."""
    def recall(self, true_class: int) -> float:
        """NaN when the class has no image."""
    def precision(self, predicted_class: int) -> float:
        """NaN when never predicted."""
    def recalls(self) -> List[float]: ...
    def normal_vs_abnormal(self, negative: str = "normal") -> BinaryRates: ...
    def to_numpy(self) -> npt.NDArray[np.int64]:
        """The counts as an int64 array [true][predicted]."""
    def to_text(self) -> str:
        """A fixed-width table with per-class recall."""

class LatencySummary:
    """Latency statistics in milliseconds."""

    @property
    def count(self) -> int: ...
    @property
    def mean_ms(self) -> float: ...
    @property
    def min_ms(self) -> float: ...
    @property
    def max_ms(self) -> float: ...
    @property
    def p50_ms(self) -> float: ...
    @property
    def p90_ms(self) -> float: ...
    @property
    def p99_ms(self) -> float: ...

def percentile(values: List[float], p: float) -> float:
    """p in [0, 100], linear between the nearest order statistics (numpy's default)."""

def summarize_latencies(milliseconds: List[float]) -> LatencySummary: ...

def label_from_path(image: Union[str, os.PathLike], class_names: List[str]) -> int:
    """The class named by the nearest enclosing folder of an image; -1 when none does."""

def _wraps_without_copy(image: np.ndarray) -> bool: ...
