"""The seed papers' quantizers (quant.py): their levels and boundaries are what
the papers say, and a model trained with each exports to a package whose cpu_int
logits equal the numpy reference's and PyTorch's."""
import numpy as np
import pytest
import torch

from busi_train import cv, export, fold, int_reference, package
from busi_train.quant import (INQ_PORTIONS, heq_step, kmeans_levels, quant_relu, quant_weight, round_pow2,
                              round_uniform)
from busi_train.model import busi_net
from busi_train.train import load_checkpoint
from test_cv import tiny_dev_set


def test_pow2_rounding_follows_inq_eq2():
    # seeds/001 Eq. 2 in units of the scale: 0 below 1/2, 2^p from 3 * 2^(p-2), capped at qmax's power.
    x = torch.tensor([0.0, 0.49, 0.5, 1.49, 1.5, 2.99, 3.0, 5.0, 6.0, 100.0, -0.6, -2.0, -3.5])
    assert round_pow2(x, 7).tolist() == [0, 0, 1, 1, 2, 2, 4, 4, 4, 4, -1, -2, -4]
    assert set(round_pow2(torch.linspace(-200, 200, 4001), 127).unique().abs().tolist()) == \
        {0, 1, 2, 4, 8, 16, 32, 64}
    # At 2 bits the narrow grid {-1, 0, 1} is already powers of two: the same as uniform rounding
    # (away from the exact ties at -1/2, where round-half-up goes to 0).
    y = torch.linspace(-3, 3, 601)
    y = y[(y + 0.5).abs() > 1e-6]
    assert torch.equal(round_pow2(y, 1), round_uniform(y, -1, 1))


def test_inq_freezes_the_largest_weights_portion_by_portion():
    torch.manual_seed(0)
    w = torch.randn(6, 4, 3, 3)
    wq = quant_weight(6, 4, per_channel=True, method="inq-pow2", weight_shape=w.shape)
    wq.init_from(w)
    with pytest.raises(ValueError, match="not quantized yet"):
        wq.integers(w)
    n_epochs, seen = 8, []
    for epoch in range(1, n_epochs + 1):
        before = wq.frozen.clone(), wq.frozen_int.clone()
        wq.epoch_start(w, epoch, n_epochs)
        assert torch.equal(wq.frozen_int[before[0]], before[1][before[0]])  # frozen stays frozen
        share = wq.frozen.float().mean().item()
        seen.append(share)
        # the frozen ones are the largest magnitudes (relative to their channel's scale)
        mag = (w / wq.scale_shaped(w)).abs()
        if share < 1:
            assert mag[wq.frozen].min() >= mag[~wq.frozen].max()
    assert [round(s, 3) for s in sorted(set(seen))] == [round(p, 3) for p in INQ_PORTIONS]
    ints = wq.integers(w)
    assert set(ints.unique().abs().tolist()) <= {0, 1, 2, 4}
    # forward = frozen powers of two times the scale; the scale still learns
    w_param = w.clone().requires_grad_(True)
    out = wq(w_param)
    assert torch.allclose(out, ints * wq.scale_shaped(w))
    out.sum().backward()
    assert wq.scale.grad.abs().sum() > 0 and w_param.grad.abs().sum() == 0


def test_heq_step_puts_the_thresholds_on_the_quantiles():
    # seeds/003 Eq. 3: ternary weights (n = 3) threshold at s/2 = the 1/3 and 2/3 quantiles,
    # so the three levels are used equally often.
    torch.manual_seed(1)
    w = torch.randn(200000) * 0.3
    s = heq_step(w, 3, signed=True)
    share = [(round_uniform(w / s, -1, 1) == v).float().mean().item() for v in (-1, 0, 1)]
    assert all(abs(x - 1 / 3) < 0.01 for x in share), share
    wq = quant_weight(4, 2, per_channel=True, method="heq")
    wq.init_from(w.reshape(4, -1))
    assert not wq.scale.requires_grad and torch.allclose(wq.scale, torch.full((4,), s), rtol=1e-5)
    # unsigned activation, uniform positives on [0, 1] with n = 16 levels: the step is 1/15
    # (thresholds (j - 1/2) s matching the quantiles j/16 in sum), plus ReLU's zeros ignored
    a = torch.cat([torch.rand(100000), -torch.rand(100000)])
    assert heq_step(a, 16, signed=False) == pytest.approx(1 / 15, rel=0.02)


def test_kmeans_boundaries_are_midpoints_of_the_clusters_and_outputs_stay_uniform():
    torch.manual_seed(2)
    centres = torch.tensor([0.0, 0.1, 0.3, 1.0])  # four well-separated clusters: 2-bit activation
    x = (centres[torch.randint(0, 4, (40000,))] + 0.005 * torch.randn(40000)).clamp_min(0)
    bounds, step = kmeans_levels(x, 4)
    assert torch.allclose(bounds, (centres[1:] + centres[:-1]).double() / 2, atol=0.005)
    k = torch.arange(4.0)
    assert step == pytest.approx(float((k * centres).sum() / (k * k).sum()), rel=0.01)
    act = quant_relu(2, "kmeans")
    act.init_from(x)
    assert torch.allclose(act.boundaries(), bounds, atol=1e-6)
    v = torch.tensor([-1.0, 0.04, 0.06, 0.21, 0.64, 0.66, 5.0], requires_grad=True)
    out = act(v)
    # level = how many boundaries lie at or below the value; output = level * step (uniform integers)
    assert (out / act.scale).round().tolist() == [0, 0, 1, 2, 2, 3, 3]
    out.sum().backward()
    assert v.grad.tolist() == [0, 1, 1, 1, 1, 1, 0]  # straight through inside [0, 3 s]


@pytest.mark.parametrize("weight_quant,act_quant", [("inq-pow2", "uniform"), ("heq", "heq"), ("uniform", "kmeans")])
def test_a_short_run_with_each_quantizer_exports_bit_exact(tmp_path, weight_quant, act_quant):
    """A float epoch and four QAT epochs of the cross-validated trainer on random
    images, exported: cpu_int's int32 logits equal the numpy reference's exactly,
    and times the logit scale PyTorch's quantized forward."""
    ds = tiny_dev_set()
    sched = dict(cv.SCHEDULE, float_epochs=1, qat_epochs=4, epoch_images=8, batch=4, calib_images=4,
                 wbits=4 if weight_quant == "inq-pow2" else 2, weight_quant=weight_quant, act_quant=act_quant)
    run = cv.split_run(ds, np.arange(8), np.arange(8, 12), "robust-noseg", sched, tmp_path / "run", seed=5,
                       threads=1)
    assert run.run()
    model, _ = load_checkpoint(tmp_path / "run" / "final.pt")
    assert (model.weight_quant, model.act_quant) == (weight_quant, act_quant)
    layer = model.convs[1]
    if weight_quant == "inq-pow2":
        assert set(layer.wq.integers(layer.weight).unique().abs().tolist()) <= {0, 1, 2, 4}
    if act_quant == "kmeans":
        gaps = np.diff(layer.act.boundaries().numpy())
        assert gaps.max() > 1.05 * gaps.min()  # the boundaries are not the uniform grid
    # export.bqnn_bytes's folding and packing (its provenance refuses a fold model by design)
    layers, logit_scale = fold.quantized_layers(model)
    package_path = tmp_path / "m.bqnn"
    package_path.write_bytes(package.build_package(f"t-{weight_quant}-{act_quant}", "quantized", layers,
                                                   {"test": True}, logit_scale=logit_scale))
    header, layers = int_reference.read_package(package_path)
    with torch.no_grad():
        torch_logits = model(torch.from_numpy(ds.images).float().unsqueeze(1) / 255).double().numpy()
    ref = [int_reference.forward(header, layers, img) for img in ds.images[:4]]
    tolerance = dict(rtol=1e-4, atol=1e-6 * np.abs(torch_logits).max())
    np.testing.assert_allclose(np.array(ref) * header["logit_scale"], torch_logits[:4], **tolerance)
    busi_infer = pytest.importorskip("busi_infer", reason="busi_infer bindings not on PYTHONPATH")
    classifier = busi_infer.Classifier("cpu_int", model=str(package_path))
    cpu = np.array([list(classifier.classify(img).logits) for img in ds.images])
    # the integers are exact; the classes are not compared: an untrained network's
    # logits tie, and PyTorch's float32 argmax breaks a tie either way
    assert cpu[:4].tolist() == [r.tolist() for r in ref]
    np.testing.assert_allclose(cpu * header["logit_scale"], torch_logits, **tolerance)


@pytest.mark.parametrize("n_epochs", [1, 2, 3, 10])
def test_inq_schedule_quantizes_everything_by_the_last_epoch(n_epochs):
    w = torch.randn(3, 20)
    wq = quant_weight(3, 2, per_channel=False, method="inq-pow2", weight_shape=w.shape)
    wq.init_from(w)
    for epoch in range(1, n_epochs + 1):
        wq.epoch_start(w, epoch, n_epochs)
    assert bool(wq.frozen.all())


def test_train_py_refuses_quantizer_choices_for_the_float_network():
    from busi_train import train
    with pytest.raises(SystemExit, match="need --wbits"):
        train.main(["--out", "unused", "--act-quant", "kmeans"])


def test_export_refuses_what_its_format_cannot_hold(tmp_path):
    """A kmeans model has no QONNX form (Quant nodes are uniform); an inq-pow2 model
    whose schedule did not finish has float weights left: both stop with the reason."""
    for weight_quant, act_quant, fmt, reason in (("uniform", "kmeans", "--onnx", "non-uniform boundaries"),
                                                 ("inq-pow2", "uniform", "--bqnn", "not quantized yet")):
        model = busi_net(2, 4, weight_quant=weight_quant, act_quant=act_quant)
        ck = {"config": {"wbits": 2, "abits": 4, "weight_quant": weight_quant, "act_quant": act_quant},
              "epoch": 1, "val": None, "state_dict": model.state_dict()}
        torch.save(ck, tmp_path / "m.pt")
        with pytest.raises(SystemExit, match=reason):
            export.main([str(tmp_path / "m.pt"), "--name", "t", fmt, str(tmp_path / "out")])
