"""Type stub of busi_infer._core, the compiled module (bindings/python/src/core.cpp)."""
import os
from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Union

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
    @property
    def verdict(self) -> str:
        """'refer', 'routine', 'unreadable' or 'unavailable'."""
    @property
    def reason(self) -> str:
        """One sentence saying why the verdict is what it is."""
    @property
    def p_abnormal(self) -> float:
        """P(benign) + P(malignant) of the calibrated scores; nan when unavailable."""
    @property
    def suspicious_malignancy(self) -> bool: ...
    @property
    def ood_score(self) -> float:
        """The out-of-distribution score; nan when not computed."""

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
    @property
    def seen_images(self) -> Optional[int]:
        """How many images the package records the model was trained on; None when it records none."""
    def has_seen(self, image: Union[str, os.PathLike, np.ndarray], color_order: str = "bgr") -> bool:
        """Whether the model was trained on this image (pre-processed as classify() does)."""

class Classifier:
    """A model running on one backend.

    Threads sharing one instance decode and pre-process in parallel but take
    turns at inference (it keeps scratch buffers); use one instance per thread
    to infer in parallel. The GIL is released while an
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
    def set_referral_sensitivity(self, sensitivity: float) -> None:
        """Refer at this sensitivity, re-chosen from the model's stored referral curve."""
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

class RocCurve:
    """A ROC curve from the strictest threshold down, with its AUC."""

    @property
    def thresholds(self) -> List[float]:
        """inf first, then each distinct score, descending."""
    @property
    def false_positive_rate(self) -> List[float]: ...
    @property
    def true_positive_rate(self) -> List[float]: ...
    @property
    def auc(self) -> float:
        """Area under the curve (ties count one half); NaN with one class."""
    @property
    def auc_interval(self) -> Tuple[float, float]:
        """Hanley and McNeil's 95% interval (low, high)."""

def wilson_interval(successes: int, trials: int) -> Tuple[float, float]:
    """Wilson's 95% interval (low, high) of successes / trials; NaN for 0 trials."""

def roc_curve(scores: List[float], positive: List[bool]) -> RocCurve:
    """The ROC curve of a score (higher = positive) against a list of booleans."""

def percentile(values: List[float], p: float) -> float:
    """p in [0, 100], linear between the nearest order statistics (numpy's default)."""

def summarize_latencies(milliseconds: List[float]) -> LatencySummary: ...

def label_from_path(image: Union[str, os.PathLike], class_names: List[str]) -> int:
    """The class named by the nearest enclosing folder of an image; -1 when none does."""

class LabelledImages:
    """Labelled images, decoded and pre-processed once (labels from folder names)."""

    @property
    def class_names(self) -> List[str]: ...
    @property
    def files(self) -> List[str]: ...
    @property
    def labels(self) -> List[int]: ...
    def __len__(self) -> int: ...
    def input(self, index: int) -> npt.NDArray[np.uint8]:
        """The pre-processed network input of image `index` (a copy)."""
    @property
    def unreadable(self) -> List[str]:
        """'<file>: <reason>' of each image that could not be decoded (skipped)."""

def load_labelled_images(paths: Sequence[Union[str, os.PathLike]],
                         class_names: Sequence[str] = ("normal", "benign", "malignant"),
                         height: int = 255, width: int = 255) -> LabelledImages:
    """The images under `paths`, labelled by folder name and pre-processed once;
    one that cannot be decoded is skipped and listed in .unreadable."""

class EnergyReading:
    """Energy and mean power over a window; NaN without a source."""

    @property
    def source(self) -> str: ...
    @property
    def estimate(self) -> bool:
        """True when the figure is an estimate, not a measurement."""
    @property
    def seconds(self) -> float: ...
    @property
    def joules(self) -> float: ...
    @property
    def watts(self) -> float: ...
    @property
    def note(self) -> str:
        """Why the figure is missing, or caveats."""
    @property
    def available(self) -> bool: ...

class PowerMeter:
    """A power source (make_power_meter); start(), run something, stop()."""

    @property
    def source(self) -> str: ...
    def start(self) -> None: ...
    def stop(self) -> EnergyReading: ...

def make_power_meter(spec: str = "auto", sysfs_root: Union[str, os.PathLike] = "/") -> PowerMeter:
    """none, auto, rapl, hwmon[:NAME], command:CMD, log:PATH, estimate:WATTS[:WHY], estimate-report:PATH."""

def describe_power_sources(sysfs_root: Union[str, os.PathLike] = "/") -> List[str]:
    """The sources `auto` would consider, readable or not and why."""

class MachineInfo:
    """The machine a report was made on."""

    @property
    def cpu(self) -> str: ...
    @property
    def cores(self) -> int: ...
    @property
    def kernel(self) -> str: ...
    @property
    def host(self) -> str: ...

class BackendRun:
    """One (backend, model) pass over the images."""

    @property
    def backend(self) -> str: ...
    @property
    def description(self) -> str: ...
    @property
    def model_name(self) -> str: ...
    @property
    def model_path(self) -> str: ...
    @property
    def model_sha256(self) -> str: ...
    @property
    def precision(self) -> str:
        """'w2a4', 'fp32', ..."""
    @property
    def confusion(self) -> ConfusionMatrix: ...
    @property
    def predictions(self) -> List[int]:
        """Class index per image, in the images' order."""
    @property
    def latencies_ms(self) -> List[float]:
        """classify() wall time per image."""
    @property
    def scores(self) -> List[List[float]]:
        """Softmax scores per image; empty for a top-1 backend."""
    @property
    def seen(self) -> List[bool]:
        """Per image, whether the model was trained on it; empty when its package does not say."""
    @property
    def unseen(self) -> Optional[ConfusionMatrix]:
        """The confusion of the images the model was not trained on; None when its package does not say."""
    @property
    def verdicts(self) -> List[str]:
        """Per image: 'refer', 'routine', 'unreadable' or 'unavailable'; empty in older reports."""
    @property
    def reasons(self) -> List[str]:
        """Per image, why its verdict."""
    @property
    def p_abnormal(self) -> List[float]:
        """Per image, P(abnormal); NaN when unavailable."""
    @property
    def suspicious_malignancy(self) -> List[bool]: ...
    @property
    def latency(self) -> LatencySummary: ...
    @property
    def seconds(self) -> float: ...
    @property
    def throughput(self) -> float:
        """Images per second over the run."""
    @property
    def energy(self) -> EnergyReading: ...
    @property
    def joules_per_image(self) -> float: ...

class EvaluationReport:
    """What busi-eval reports: machine, commit, runs."""

    @property
    def machine(self) -> MachineInfo: ...
    @property
    def commit(self) -> str: ...
    @property
    def started_utc(self) -> str: ...
    @property
    def inputs(self) -> List[str]: ...
    @property
    def unreadable(self) -> List[str]:
        """Images that could not be decoded, skipped."""
    @property
    def images(self) -> int: ...
    @property
    def files(self) -> List[str]:
        """Per image, its path."""
    @property
    def labels(self) -> List[int]:
        """Per image, its true class index."""
    @property
    def runs(self) -> List[BackendRun]: ...
    def to_json(self, per_image: bool = False) -> str:
        """busi-eval's JSON report."""
    def to_csv(self) -> str:
        """busi-eval's CSV: one row per run."""
    @staticmethod
    def from_json(text: str, origin: str = "<string>") -> EvaluationReport:
        """Reads to_json()'s output back; raises Error naming `origin`."""

def evaluate(images: Union[str, os.PathLike, Sequence[Union[str, os.PathLike]], LabelledImages],
             backends: Sequence[str] = (), models: Sequence[Union[str, os.PathLike]] = (),
             settings: Dict[str, Dict[str, str]] = ..., power: str = "auto",
             power_for: Dict[str, str] = ..., warmup: int = 1,
             sysfs_root: Union[str, os.PathLike] = "/") -> EvaluationReport:
    """busi-eval from Python: every backend (default: all compiled in), every model of its kind,
    the same pre-processed inputs; settings {backend: {key: value}}; power specs as busi-eval's."""

def render_dashboard(reports: Sequence[EvaluationReport], title: str = "busi-infer evaluation") -> str:
    """The self-contained HTML dashboard (busi-dashboard) of one or more reports."""

def _wraps_without_copy(image: np.ndarray) -> bool: ...
