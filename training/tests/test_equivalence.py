"""The shipped packages: cpu_int equals the numpy integer reference bit for bit
(int32 logits) and predicts like the PyTorch checkpoint they were exported from,
on a fixed subset of 40 of the 702 BUSI images. The full 702 are checked by
busi_train.equivalence (docs/training.md)."""
from pathlib import Path

import pytest

from busi_train import data, equivalence

REPO = Path(__file__).resolve().parents[2]
SHIPPED = [("busi-w2a4", "busi-w2a4.pt"), ("busi-w4a4", "busi-w4a4.pt"), ("busi-w2a4-2site", "busi-w2a4-2site.pt")]


@pytest.fixture(scope="module")
def busi_infer():
    return pytest.importorskip("busi_infer", reason="the busi_infer bindings are not on PYTHONPATH "
                                                    "(ctest sets it to the build tree)")


def subset():
    items = data.list_images(data.data_root())
    return items[::len(items) // 40][:40]


def test_gray_area_v1_pixels_equal_the_runtimes(busi_root, busi_infer):
    for rel, _ in subset()[::4]:
        ours = data.load_image(busi_root / rel)
        theirs = busi_infer.load_image(str(busi_root / rel))
        assert (ours == theirs).all(), rel


@pytest.mark.parametrize("name,checkpoint", SHIPPED)
def test_cpu_int_equals_reference_and_pytorch(busi_root, busi_infer, name, checkpoint):
    package = REPO / "models" / f"{name}.bqnn"
    ck = REPO / "training" / "checkpoints" / checkpoint
    if not package.exists():
        pytest.skip(f"{package} is not shipped")
    assert ck.exists(), f"{ck} missing: a shipped package comes with the checkpoint it was exported from"
    r = equivalence.compare(ck, package, subset(), busi_root)
    assert r["reference_images"] == r["cpu_int_logits_equal_reference"] == 40
    # 99.5% of 702 allows 3 disagreements from float rounding at threshold ties;
    # on this subset at most one.
    assert r["cpu_int_vs_torch_prediction_agreement"] >= 39 / 40, r["disagreements"]
