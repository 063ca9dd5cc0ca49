"""The metrics bindings agree with numpy on random data."""
import math

import numpy as np
import pytest

import busi_infer

CLASSES = ["normal", "benign", "malignant"]


def test_confusion_matrix_matches_numpy():
    rng = np.random.default_rng(11)
    truth, predicted = rng.integers(0, 3, 500), rng.integers(0, 3, 500)
    matrix = busi_infer.ConfusionMatrix(CLASSES)
    matrix.add_all(truth.tolist(), predicted.tolist())
    expected = np.zeros((3, 3), np.int64)
    np.add.at(expected, (truth, predicted), 1)
    assert np.array_equal(matrix.to_numpy(), expected)
    assert matrix.total == 500 and matrix.correct == np.trace(expected)
    assert matrix.accuracy == pytest.approx(np.trace(expected) / 500)
    assert matrix.recalls() == pytest.approx(list(expected.diagonal() / expected.sum(axis=1)))
    assert matrix.precision(2) == pytest.approx(expected[2, 2] / expected[:, 2].sum())
    rates = matrix.normal_vs_abnormal()
    abnormal = truth != 0
    assert rates.true_positive == np.sum(abnormal & (predicted != 0))
    assert rates.false_positive == np.sum(~abnormal & (predicted != 0))
    assert rates.sensitivity == pytest.approx(rates.true_positive / abnormal.sum())
    assert "recall" in str(matrix) and matrix.class_names == CLASSES


def test_confusion_matrix_edges():
    empty = busi_infer.ConfusionMatrix(CLASSES)
    assert math.isnan(empty.accuracy) and math.isnan(empty.normal_vs_abnormal().specificity)
    with pytest.raises(busi_infer.Error, match="out of range"):
        empty.add(3, 0)
    with pytest.raises(ValueError, match="2 true classes but 1 predictions"):
        empty.add_all([0, 1], [0])
    with pytest.raises(busi_infer.Error):
        busi_infer.ConfusionMatrix([])


def test_latency_statistics_match_numpy():
    values = np.random.default_rng(12).exponential(3.0, 101).tolist()
    for p in (0, 50, 90, 99, 100):
        assert busi_infer.percentile(values, p) == pytest.approx(np.percentile(values, p))
    summary = busi_infer.summarize_latencies(values)
    assert summary.count == 101 and summary.mean_ms == pytest.approx(np.mean(values))
    assert summary.p90_ms == pytest.approx(np.percentile(values, 90))
    with pytest.raises(busi_infer.Error):
        busi_infer.summarize_latencies([])


def test_label_from_path():
    assert busi_infer.label_from_path("/data/busi/benign/benign (3).png", CLASSES) == 1
    assert busi_infer.label_from_path("/data/malignant/x/y.png", CLASSES) == 2
    assert busi_infer.label_from_path("/data/other/y.png", CLASSES) == -1


def test_wilson_interval_and_roc_curve():
    low, high = busi_infer.wilson_interval(0, 10)
    assert low == 0 and high == pytest.approx(0.2775, abs=1e-4)
    assert all(math.isnan(v) for v in busi_infer.wilson_interval(0, 0))
    roc = busi_infer.roc_curve([0.9, 0.8, 0.7, 0.6], [True, False, True, False])
    assert roc.auc == pytest.approx(0.75)
    assert roc.true_positive_rate == [0, 0.5, 0.5, 1, 1]
    assert math.isnan(busi_infer.roc_curve([0.1, 0.2], [True, True]).auc)
