"""train.py's distillation loss, class-balanced epoch order and their options."""
import json

import pytest
import torch
import torch.nn.functional as F

from busi_train import train


def test_distillation_loss_is_the_weighted_sum_of_ce_and_tempered_kl():
    gen = torch.Generator().manual_seed(0)
    student = torch.randn(6, 3, generator=gen) * 3
    teacher = torch.randn(6, 3, generator=gen) * 3
    labels = torch.tensor([0, 1, 2, 1, 1, 0])
    weight = torch.tensor([2.0, 0.5, 1.0])
    alpha, t = 0.3, 4.0
    p_t = torch.softmax(teacher / t, dim=1)
    # KL(p_t || p_s) per sample, summed over classes, averaged over the batch.
    kl = (p_t * (p_t.log() - torch.log_softmax(student / t, dim=1))).sum(dim=1).mean()
    ce = F.cross_entropy(student, labels, weight=weight)
    expected = (1 - alpha) * ce + alpha * t * t * kl
    got = train.distillation_loss(student, teacher, ce, alpha, t)
    assert torch.allclose(got, expected, rtol=1e-5)
    assert kl > 0.01  # the two terms differ, so a wrong mix would show
    assert torch.allclose(train.distillation_loss(student, teacher, ce, 0.0, t), ce)
    # alpha 1 with a student equal to its teacher: nothing to learn.
    assert train.distillation_loss(teacher, teacher, ce, 1.0, t).abs() < 1e-6


def test_distillation_gradient_pulls_student_towards_teacher():
    teacher = torch.tensor([[4.0, 0.0, -4.0]])
    student = torch.zeros(1, 3, requires_grad=True)
    train.distillation_loss(student, teacher, F.cross_entropy(student, torch.tensor([0])), 1.0, 2.0).backward()
    # Gradient descent raises the logit the teacher prefers and lowers the one it rejects.
    assert student.grad[0, 0] < 0 < student.grad[0, 2]


def test_plain_epoch_order_is_a_permutation():
    labels = torch.tensor([0] * 5 + [1] * 40 + [2] * 5)
    order = train.epoch_order(labels, torch.Generator().manual_seed(3))
    assert torch.equal(order, torch.randperm(50, generator=torch.Generator().manual_seed(3)))


def test_balanced_epoch_order_draws_each_class_equally_often():
    labels = torch.tensor([0] * 60 + [1] * 480 + [2] * 60)
    gen = torch.Generator().manual_seed(1)
    orders = [train.epoch_order(labels, gen, balanced=True) for _ in range(20)]
    assert all(len(o) == len(labels) for o in orders)  # the epoch keeps its length
    drawn = torch.cat(orders)
    share = torch.bincount(labels[drawn], minlength=3).float() / len(drawn)
    assert torch.all((share - 1 / 3).abs() < 0.02), share
    # Within a class, images are drawn uniformly: every rare image appears.
    assert set(drawn[labels[drawn] == 0].tolist()) == set(range(60))


def test_option_defaults_and_errors():
    a = train.parse_args(["--out", "x", "--balanced"])
    assert a.class_weights == "none" and a.teacher is None
    assert train.parse_args(["--out", "x"]).class_weights == "balanced"
    assert train.parse_args(["--out", "x", "--balanced", "--class-weights", "balanced"]).class_weights == "balanced"
    a = train.parse_args(["--out", "x", "--teacher", "t.pt"])
    assert a.distill_weight == 0.5 and a.temperature == 4.0
    for bad in (["--distill-weight", "0.5"], ["--teacher", "t.pt", "--distill-weight", "1.5"],
                ["--teacher", "t.pt", "--temperature", "0"]):
        with pytest.raises(SystemExit):
            train.parse_args(["--out", "x"] + bad)


def test_one_epoch_with_teacher_and_balanced_sampling(busi_root, tmp_path):
    common = ["--epochs", "1", "--limit", "8", "--threads", "1", "--cache", "", "--wbits", "2", "--abits", "4",
              "--lr", "1e-4", "--init", str(train.TRAINING_DIR / "checkpoints" / "busi-float.pt")]
    plain = train.main(["--out", str(tmp_path / "plain")] + common)
    kd = train.main(["--out", str(tmp_path / "kd"), "--teacher",
                     str(train.TRAINING_DIR / "checkpoints" / "busi-float.pt"), "--distill-weight", "1",
                     "--balanced"] + common)
    c = kd["config"]
    assert c["loss"] == "cross-entropy + distillation" and c["sampling"] == "class-balanced"
    assert c["teacher_from"]["wbits"] is None and c["class_weights"] == "none"
    loss = [json.loads((tmp_path / r / "log.jsonl").read_text())["train_loss"] for r in ("plain", "kd")]
    assert loss[0] != loss[1] and all(v > 0 for v in loss)
    assert plain["config"]["sampling"] == "permutation" and plain["config"]["teacher_from"] is None
