"""The evaluation harness from Python gives what the classifier and busi-eval give."""
import json
import math
import pathlib
import time

import numpy as np
import pytest

import busi_infer
from conftest import cli_error, synthetic_bgr

cv2 = pytest.importorskip("cv2")
CLASSES = ["normal", "benign", "malignant"]


@pytest.fixture
def labelled_tree(tmp_path):
    """Two synthetic images in each class folder (names with spaces, as BUSI's)."""
    for index, name in enumerate(CLASSES):
        (tmp_path / name).mkdir()
        for k in range(2):
            image = synthetic_bgr(250 + 7 * k, 262, seed=30 + 3 * index + k)
            assert cv2.imwrite(str(tmp_path / name / f"{name} ({k + 1}).png"), image)
    return tmp_path


def test_evaluate_equals_classifying_each_file(labelled_tree, backend):
    report = busi_infer.evaluate(labelled_tree, backends=[backend], power="none")
    images = busi_infer.load_labelled_images([labelled_tree])
    assert report.images == len(images) == 6 and report.inputs == [str(labelled_tree)]
    assert images.labels == [CLASSES.index(pathlib.Path(f).parent.name) for f in images.files]
    assert sorted(images.labels) == [0, 0, 1, 1, 2, 2]
    (run,) = report.runs
    classifier = busi_infer.Classifier(backend)
    assert run.predictions == [classifier.classify(f).class_index for f in images.files]
    assert run.model_path == classifier.model.source and run.precision == "w2a4"
    expected = np.zeros((3, 3), np.int64)
    np.add.at(expected, (images.labels, run.predictions), 1)
    assert np.array_equal(run.confusion.to_numpy(), expected)
    assert run.latency.count == 6 and len(run.latencies_ms) == 6
    assert not run.energy.available and math.isnan(run.joules_per_image)
    assert np.array_equal(images.input(3), busi_infer.load_image(images.files[3]))
    with pytest.raises(IndexError):
        images.input(6)

    # The same report through busi-eval's formats.
    again = busi_infer.EvaluationReport.from_json(report.to_json(per_image=True))
    assert again.runs[0].predictions == run.predictions
    assert json.loads(report.to_json())["runs"][0]["backend"] == backend
    header, row = report.to_csv().strip().splitlines()
    assert header.startswith("backend,") and row.startswith(backend + ",")
    assert "<svg" in busi_infer.render_dashboard([report])

    # Pre-processed once, evaluated twice: the same predictions.
    assert busi_infer.evaluate(images, backends=[backend], power="none").runs[0].predictions == run.predictions


def test_evaluate_errors_match_busi_eval(labelled_tree, backend):
    stray = labelled_tree / "stray.png"
    assert cv2.imwrite(str(stray), synthetic_bgr(64, 64))
    with pytest.raises(busi_infer.Error) as info:
        busi_infer.evaluate([stray], backends=[backend], power="none")
    assert str(stray) in str(info.value)
    assert cli_error("busi-eval", "--backends", backend, "--power", "none", stray) in (None, str(info.value))
    with pytest.raises(busi_infer.ModelError):
        busi_infer.evaluate(labelled_tree, backends=[backend], models=[labelled_tree / "none.bqnn"], power="none")


def test_power_meters(tmp_path):
    meter = busi_infer.make_power_meter("estimate:2.5:a datasheet figure")
    meter.start()
    time.sleep(0.05)
    reading = meter.stop()
    assert reading.estimate and reading.available and reading.watts == 2.5
    assert reading.joules == pytest.approx(2.5 * reading.seconds)
    assert "estimate" in meter.source
    with pytest.raises(busi_infer.Error):
        busi_infer.make_power_meter("bogus")
    # An explicitly named source that is absent: a DeviceError, which is also an OSError.
    with pytest.raises(OSError) as info:
        busi_infer.make_power_meter("rapl", sysfs_root=tmp_path).start()
    assert isinstance(info.value, busi_infer.DeviceError) and "rapl" in str(info.value)
    assert busi_infer.describe_power_sources(sysfs_root=tmp_path)
