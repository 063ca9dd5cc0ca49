"""The cross-validation protocol: folds, figures and intervals, sampling,
scanner augmentation, and a resumable run."""
import itertools

import numpy as np
import pytest
import torch

from busi_train import augment, cv, cv_metrics, sources
from busi_train.train import load_checkpoint
from busi_train.augment import scanner_augmenter


def test_group_folds_keep_groups_whole_and_classes_balanced():
    rng = np.random.default_rng(3)
    groups = np.repeat(np.arange(300), rng.integers(1, 5, 300))
    labels = np.array([g % 3 if g % 7 else 0 for g in groups])
    fold = sources.stratified_group_folds(labels, groups)
    for g in np.unique(groups):
        assert len(set(fold[groups == g])) == 1
    for c in range(3):
        per_fold = np.bincount(fold[labels == c], minlength=5)[1:]
        assert per_fold.max() - per_fold.min() <= 5, per_fold


def test_auc_equals_the_share_of_correctly_ordered_pairs():
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 6, 60).astype(float)  # many ties
    positive = rng.random(60) < 0.4
    pairs = [(1.0 if p > n else 0.5 if p == n else 0.0)
             for p, n in itertools.product(scores[positive], scores[~positive])]
    assert cv_metrics.auc(scores, positive) == pytest.approx(np.mean(pairs))
    assert cv_metrics.auc([0.1, 0.9], [False, True]) == 1.0
    assert np.isnan(cv_metrics.auc([0.1, 0.9], [True, True]))


def test_busi_figures_of_a_known_confusion():
    labels = np.array([0, 0, 0, 0, 1, 1, 2, 2])
    pred = np.array([0, 0, 0, 1, 1, 2, 2, 0])
    probs = np.eye(3)[pred]
    f = cv_metrics.busi_figures(labels, probs)
    assert f["accuracy"] == pytest.approx(5 / 8)
    assert f["recall_normal"] == pytest.approx(3 / 4)
    assert f["recall_benign"] == pytest.approx(1 / 2)
    assert f["sensitivity"] == pytest.approx(3 / 4)  # one malignant called normal
    assert f["specificity"] == pytest.approx(3 / 4)
    # One-hot scores: 12 of the 16 lesion/normal pairs ranked right (ties count half);
    # among the lesions, one malignant above one benign and one tie each way.
    assert f["auc_abnormal"] == pytest.approx(12 / 16)
    assert f["auc_malignant"] == pytest.approx(1 / 2)


def test_group_bootstrap_interval_holds_the_point_and_widens_with_fewer_groups():
    # 10 groups of 40 copies: right or wrong together, as near-duplicates are.
    rng = np.random.default_rng(1)
    groups = np.arange(400) // 40
    labels = rng.integers(0, 3, 400)
    right = (rng.random(10) < 0.7)[groups]
    probs = np.eye(3)[np.where(right, labels, (labels + 1) % 3)]
    many = cv_metrics.bootstrap(cv_metrics.busi_figures, labels, probs, np.arange(400), n=300)
    few = cv_metrics.bootstrap(cv_metrics.busi_figures, labels, probs, groups, n=300)
    value, lo, hi = many["accuracy"]
    assert lo < value < hi
    assert (few["accuracy"][2] - few["accuracy"][1]) > (hi - lo)


def test_balanced_sampling_weights_classes_and_sources_equally():
    labels = np.array([0] * 10 + [1] * 30 + [1] * 300 + [2] * 5 + [2] * 100)
    source = np.array(["busi"] * 45 + ["busbra"] * 400)
    source[:10], source[10:40], source[340:345] = "busi", "busi", "busi"
    w = cv.sampling_weights(labels, source).numpy()
    for c in range(3):
        assert w[labels == c].sum() == pytest.approx(1 / 3)
    assert w[(labels == 1) & (source == "busi")].sum() == pytest.approx(1 / 6)


def test_scanner_augmentation_moves_masks_with_the_image_and_stays_on_the_uint8_grid():
    img = torch.zeros(4, 1, 255, 255, dtype=torch.uint8)
    img[:, :, 60:120, 140:200] = 200
    mask = (img > 0).to(torch.uint8) * 255
    aug = scanner_augmenter(p_calipers=0, p_text=0, p_blur=0, speckle=0, tgc=0, gain=(1, 1), gamma=(1, 1))
    x, m = aug(img, mask, torch.Generator().manual_seed(5))
    assert x.shape == (4, 1, 255, 255) and m.shape == (4, 1, 255, 255)
    assert torch.equal(torch.round(x * 255), x * 255)
    bright, inside = x[:, 0] > 0.5, m[:, 0] > 0.5
    # The warped square and the warped mask cover the same pixels (up to the edge).
    overlap = (bright & inside).sum().item() / max((bright | inside).sum().item(), 1)
    assert overlap > 0.9
    # and they moved: a flip, rotation or shift happened to at least one image.
    assert not torch.equal(inside, (mask[:, 0] > 0))


def tiny_dev_set(n=12, lesion_at=100):
    rng = np.random.default_rng(0)
    labels = np.array([0, 1, 2] * (n // 3))
    images = rng.integers(0, 255, (n, 255, 255), dtype=np.uint8)
    masks = np.zeros((n, 255, 255), np.uint8)
    masks[labels > 0, lesion_at:lesion_at + 50, lesion_at:lesion_at + 50] = 255
    source = np.array(["busi", "busbra"] * (n // 2))
    source[labels == 0] = "busi"
    return sources.dev_set(images, masks, labels, source, np.array(["BUSI"] * n), np.arange(n),
                           np.arange(n) % 4 + 1, [f"img{i}" for i in range(n)])


@pytest.mark.parametrize("recipe", ["robust", "paper", "robust-noseg-crops"])
def test_a_stopped_run_resumes_to_the_same_model(tmp_path, recipe):
    ds = tiny_dev_set(lesion_at=10)  # lesions in a corner leave room for normal-tissue squares
    sched = dict(cv.SCHEDULE, float_epochs=2, qat_epochs=1, epoch_images=8, batch=4, calib_images=4)
    train, held = np.arange(8), np.arange(8, 12)
    whole = cv.split_run(ds, train, held, recipe, sched, tmp_path / "whole", seed=3, threads=1)
    assert whole.run()
    parts = cv.split_run(ds, train, held, recipe, sched, tmp_path / "parts", seed=3, threads=1)
    assert not parts.run(max_epochs=1)
    assert not parts.run(max_epochs=1)  # stops at the float -> W2A4 boundary
    assert parts.run()
    a = torch.load(tmp_path / "whole" / "final.pt")["state_dict"]
    b = torch.load(tmp_path / "parts" / "final.pt")["state_dict"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert any(".wq." in k for k in a)  # the shipped stage is the quantized network
    pa, pb = np.load(tmp_path / "whole" / "predictions.npz"), np.load(tmp_path / "parts" / "predictions.npz")
    assert list(pa["names"]) == [f"img{i}" for i in held]
    assert np.array_equal(pa["logits"], pb["logits"])
    assert not (tmp_path / "whole" / "state.pt").exists()


def test_scanner_hold_out_refuses_busi_and_unknown_names():
    ds = tiny_dev_set()
    with pytest.raises(SystemExit, match="normal class"):
        cv.splits(ds, [1], "BUSI", False)
    with pytest.raises(SystemExit, match="no such scanner"):
        cv.splits(ds, [1], "LOGIQ7", False)
    # With normal tissue cropped from BUS-BRA, BUSI can be the unseen scanner.
    [(name, train_idx, eval_idx)] = cv.splits(ds, [1], "BUSI", False, normal_crops=True)
    assert name == "without-BUSI" and set(ds.scanner[eval_idx]) == {"BUSI"}
    assert "BUSI" not in set(ds.scanner[train_idx]) and len(train_idx) + len(eval_idx) == len(ds.labels)


def test_the_development_folds_keep_groups_and_patients_whole(busi_root):
    shared = busi_root.parent
    if not (shared / "busbra").is_dir() or not (shared / "busi_masks").is_dir():
        pytest.skip(f"BUS-BRA or the BUSI masks not found beside {busi_root}")
    ds = sources.load_dev_set(shared)
    assert len(ds.labels) == 702 + 1350
    for g in np.unique(ds.group):
        assert len(set(ds.fold[ds.group == g])) == 1
    assert set(ds.scanner) == {"BUSI", "LOGIQ7", "LOGIQ5"}
    assert not np.any(ds.labels[ds.source == "busbra"] == 0)
    assert ds.masks[ds.labels == 0].max() == 0 and ds.masks[ds.labels > 0].max() == 255


def test_temperature_scaling_recovers_the_temperature_of_the_data():
    rng = np.random.default_rng(2)
    logits = rng.normal(0, 3, (4000, 3))
    labels = np.array([rng.choice(3, p=p) for p in cv_metrics.softmax(logits / 2.5)])
    assert cv_metrics.fit_temperature(logits, labels) == pytest.approx(2.5, rel=0.1)
    before = cv_metrics.expected_calibration_error(cv_metrics.softmax(logits), labels)
    after = cv_metrics.expected_calibration_error(cv_metrics.softmax(logits / 2.5), labels)
    assert after < 0.03 < before


def test_threshold_for_sensitivity_is_the_highest_that_keeps_it():
    rng = np.random.default_rng(4)
    scores, positive = rng.random(500), rng.random(500) < 0.5
    t = cv_metrics.threshold_for_sensitivity(scores, positive, 0.97)
    assert np.mean(scores[positive] >= t) >= 0.97
    higher = np.min(scores[positive][scores[positive] > t])
    assert np.mean(scores[positive] >= higher) < 0.97


def test_threshold_for_sensitivity_with_sources_keeps_it_in_each():
    rng = np.random.default_rng(6)
    scores, positive = rng.random(1000), rng.random(1000) < 0.5
    sources = np.where(rng.random(1000) < 0.3, "busi", "busbra")
    scores[(sources == "busi") & positive] *= 0.5  # one source's lesions score lower
    t = cv_metrics.threshold_for_sensitivity(scores, positive, 0.97, sources)
    assert all(np.mean(scores[positive & (sources == s)] >= t) >= 0.97 for s in ("busi", "busbra"))
    assert t == min(cv_metrics.threshold_for_sensitivity(scores[sources == s], positive[sources == s], 0.97)
                    for s in ("busi", "busbra"))
    assert t < cv_metrics.threshold_for_sensitivity(scores, positive, 0.97)


def test_referral_is_cross_fitted_fold_by_fold():
    ds = tiny_dev_set(24)
    rng = np.random.default_rng(5)
    folds = [(np.nonzero(ds.fold == k)[0], rng.normal(0, 2, (int(np.sum(ds.fold == k)), 3))) for k in (1, 2, 3, 4)]
    c = cv.cross_fitted_referral(ds, folds)
    assert len(c["temperature"]) == 4 and len(c["threshold"]) == 4
    assert len(set(c["threshold"])) > 1  # each fold's own fit, not one shared value
    assert cv.cross_fitted_referral(ds, folds[:1]) is None


def test_lesion_only_loss_ignores_the_normal_logit_of_busbra_images():
    logits = torch.tensor([[5.0, 0.0, 1.0], [5.0, 0.0, 1.0]], requires_grad=True)
    labels = torch.tensor([2, 2])
    loss = cv.classification_loss(logits, labels, np.array(["busi", "busbra"]), None, ["busbra"])
    loss.backward()
    assert logits.grad[1, 0] == 0 and logits.grad[0, 0] > 0  # only BUSI's image pushes 'normal' down
    expected = (torch.nn.functional.cross_entropy(logits[:1].detach(), labels[:1])
                + torch.nn.functional.cross_entropy(logits[1:, 1:].detach(), torch.tensor([1]))) / 2
    assert loss.item() == pytest.approx(expected.item())
    plain = cv.classification_loss(logits, labels, np.array(["busi", "busbra"]), None, ())
    assert plain.item() == pytest.approx(torch.nn.functional.cross_entropy(logits.detach(), labels).item())


def test_normal_tissue_squares_hold_no_lesion():
    mask = np.zeros((255, 255), np.uint8)
    mask[150:200, 20:60] = 255
    square = augment.lesion_free_square(mask)
    assert square == (0, 68, 187, 0)  # right of the lesion grown by 8 px: columns 68-254, slid down
    image = np.arange(255 * 255, dtype=np.uint32).reshape(255, 255) % 251
    for offset in (0.0, 0.5, 0.999):
        crop = augment.normal_tissue_crop(image.astype(np.uint8), square, offset)
        assert crop.shape == (255, 255) and crop.dtype == np.uint8
        where = augment.normal_tissue_crop(mask, square, offset)
        assert where.max() == 0, offset
    wide = np.zeros((255, 255), np.uint8)
    wide[150:200, 20:250] = 255
    assert augment.lesion_free_square(wide) == (0, 0, 142, 1)  # above it: rows 0-141, slid across
    whole = np.zeros((255, 255), np.uint8)
    whole[40:215, 40:215] = 255
    assert augment.lesion_free_square(whole) is None and augment.lesion_free_square(whole * 0) is None


def test_normal_crops_recipe_draws_busbra_crops_as_half_the_normal_class():
    ds = tiny_dev_set(24, lesion_at=10)
    run = cv.split_run(ds, np.arange(24), np.arange(0), "robust-noseg-crops", dict(cv.SCHEDULE), "unused", 1, 1)
    draw_idx, draw_labels, squares = run.draws()
    crop = np.array([sq is not None for sq in squares])
    assert crop.sum() == 8 and set(ds.source[draw_idx[crop]]) == {"busbra"} and set(draw_labels[crop]) == {0}
    assert set(ds.labels[draw_idx[crop]]) == {1, 2}  # lesion images, drawn as normal tissue
    w = cv.sampling_weights(draw_labels, ds.source[draw_idx]).numpy()
    assert w[crop].sum() == pytest.approx(w[draw_labels == 0].sum() / 2)
    plain = cv.split_run(ds, np.arange(24), np.arange(0), "robust-noseg", dict(cv.SCHEDULE), "unused", 1, 1)
    assert not any(sq is not None for sq in plain.draws()[2])


def test_gather_keeps_only_the_folds_asked_for(tmp_path):
    names = ["a", "b", "c"]
    for run, held in (("fold1", [0]), ("fold2", [1]), ("without-LOGIQ7", [2])):
        (tmp_path / run).mkdir()
        np.savez(tmp_path / run / "predictions.npz", names=np.array([names[i] for i in held]),
                 logits=np.ones((1, 3)), logits_mirrored=np.ones((1, 3)))
    index = {n: i for i, n in enumerate(names)}
    folds, held = cv.gather(tmp_path, index, mirrored=False)
    assert [list(i) for i, _ in folds] == [[0], [1]] and list(held) == ["without-LOGIQ7"]
    folds, held = cv.gather(tmp_path, index, mirrored=False, only_folds=[2])
    assert [list(i) for i, _ in folds] == [[1]] and held == {}


def test_held_out_busi_scores_malignancy_among_its_lesions(tmp_path):
    ds = tiny_dev_set()  # labels 0, 1, 2, ...; the normals are BUSI images
    busi = [i for i in range(len(ds.labels)) if ds.source[i] == "busi"]
    logits = np.zeros((len(busi), 3))
    for k, i in enumerate(busi):  # malignant ranked above benign, normals above both
        logits[k, 2] = {0: 9.0, 1: 1.0, 2: 5.0}[int(ds.labels[i])]
    for run, idx, lg in (("fold1", [1], np.zeros((1, 3))), ("without-BUSI", busi, logits)):
        (tmp_path / run).mkdir()
        np.savez(tmp_path / run / "predictions.npz", names=np.array([ds.names[i] for i in idx]),
                 logits=lg, logits_mirrored=lg)
    row = cv.recipe_rows(ds, tmp_path, mirrored=False)
    assert row["without-BUSI"]["auc_malignant"][0] == 1.0  # normals left out
    assert cv_metrics.lesion_figures(ds.labels[busi], cv_metrics.softmax(logits))["auc_malignant"] < 1.0


def test_a_distilled_run_trains_its_teacher_first_and_resumes_to_the_same_models(tmp_path):
    ds = tiny_dev_set()
    sched = dict(cv.SCHEDULE, float_epochs=2, qat_epochs=1, epoch_images=8, batch=4, calib_images=4)
    train, held = np.arange(8), np.arange(8, 12)
    distill = {"width": 2, "alpha": 0.5, "temperature": 4.0}
    whole = cv.split_run(ds, train, held, "robust-noseg", sched, tmp_path / "whole", 3, 1, distill=distill)
    assert whole.run()
    parts = cv.split_run(ds, train, held, "robust-noseg", sched, tmp_path / "parts", 3, 1, distill=distill)
    for _ in range(4):  # the teacher's 2 float epochs, the student's 2 float
        assert not parts.run(max_epochs=1)
    assert (tmp_path / "parts" / "teacher" / "final.pt").exists() and not (tmp_path / "parts" / "final.pt").exists()
    assert parts.run(max_epochs=1) and parts.epochs_trained == 1  # and its W2A4 epoch
    for member in ("teacher/final.pt", "final.pt"):
        a = torch.load(tmp_path / "whole" / member)["state_dict"]
        b = torch.load(tmp_path / "parts" / member)["state_dict"]
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), member
    teacher = torch.load(tmp_path / "whole" / "teacher" / "final.pt")
    assert teacher["config"]["width"] == 2 and teacher["config"]["wbits"] is None
    assert teacher["state_dict"]["convs.5.weight"].shape == (64, 64, 3, 3)  # 32 x 2 channels
    assert not any(".wq." in k for k in teacher["state_dict"])
    assert any(".wq." in k for k in torch.load(tmp_path / "whole" / "final.pt")["state_dict"])
    # The teachers' held-out predictions are a row of the report, on the students' images
    # (the two runs stand for two folds here).
    index = {n: i for i, n in enumerate(ds.names)}
    students, _ = cv.gather(tmp_path, index, mirrored=False)
    teachers, _ = cv.gather(tmp_path, index, mirrored=False, member="teacher")
    assert [list(i) for i, _ in teachers] == [list(held)] * 2 == [list(i) for i, _ in students]
    assert not np.array_equal(teachers[0][1], students[0][1])
    assert [m for _, _, m in cv.table_rows([tmp_path])] == ["", "teacher"]
    with pytest.raises(SystemExit, match="width-2 distillation teacher"):
        load_checkpoint(tmp_path / "whole" / "teacher" / "final.pt")


def test_distillation_with_weight_zero_trains_the_plain_recipe_bit_for_bit(tmp_path):
    # alpha 0: the loss is the recipe's cross-entropy, so the student must match an
    # undistilled run exactly (the teacher draws nothing from the run's random streams).
    ds = tiny_dev_set()
    sched = dict(cv.SCHEDULE, float_epochs=2, qat_epochs=1, epoch_images=8, batch=4, calib_images=4)
    train, held = np.arange(8), np.arange(8, 12)
    plain = cv.split_run(ds, train, held, "robust-noseg", sched, tmp_path / "plain", 3, 1)
    zero = cv.split_run(ds, train, held, "robust-noseg", sched, tmp_path / "zero", 3, 1,
                        distill={"width": 2, "alpha": 0.0, "temperature": 4.0})
    half = cv.split_run(ds, train, held, "robust-noseg", sched, tmp_path / "half", 3, 1,
                        distill={"width": 2, "alpha": 0.5, "temperature": 4.0})
    assert plain.run() and zero.run() and half.run()
    logits = {k: np.load(tmp_path / k / "predictions.npz")["logits"] for k in ("plain", "zero", "half")}
    assert np.array_equal(logits["zero"], logits["plain"])
    assert not np.allclose(logits["half"], logits["plain"])  # the teacher's term does change training


@pytest.mark.parametrize("options, complaint", [
    (["--distill-weight", "0.3"], "need --teacher-width"),
    (["--teacher-width", "1"], "at least 2"),
    (["--teacher-width", "2", "--distill-weight", "1.5"], "must be in"),
    (["--teacher-width", "2", "--temperature", "0"], "must be positive"),
])
def test_distillation_options_are_refused_before_any_training(options, complaint, capsys):
    with pytest.raises(SystemExit):
        cv.main(["train", "--recipe", "robust-noseg", "--out", "unused"] + options)
    assert complaint in capsys.readouterr().err
