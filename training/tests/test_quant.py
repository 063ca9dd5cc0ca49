"""The quantizers: integer grids, straight-through gradients, learned scales."""
import torch

from busi_train.quant import quant_relu, quant_weight


def test_weights_are_narrow_range_integers_times_scale():
    torch.manual_seed(0)
    for bits, q in ((2, 1), (4, 7), (8, 127)):
        w = torch.randn(5, 3, 3, 3)
        wq = quant_weight(5, bits, per_channel=True)
        wq.init_from(w)
        ints = wq.integers(w)
        assert ints.abs().max() <= q and torch.equal(ints, ints.round())
        assert ints.abs().max() == q  # the scale search uses the range
        assert torch.allclose(wq(w), ints * wq.scale.view(-1, 1, 1, 1))


def test_per_tensor_weight_scale_is_one_number():
    w = torch.randn(3, 64)
    wq = quant_weight(3, 2, per_channel=False)
    wq.init_from(w)
    out = wq(w)
    assert wq.scale.numel() == 1
    assert set((out / wq.scale).round().unique().tolist()) <= {-1.0, 0.0, 1.0}


def test_activation_levels_round_half_up_and_clamp():
    act = quant_relu(2)
    with torch.no_grad():
        act.scale.fill_(0.5)
    x = torch.tensor([-1.0, 0.0, 0.24, 0.25, 0.74, 0.75, 1.3, 9.0])
    levels = act(x) / 0.5
    assert levels.tolist() == [0, 0, 0, 1, 1, 2, 3, 3]


def test_gradients_pass_straight_through_and_reach_the_scales():
    torch.manual_seed(1)
    w = torch.randn(4, 8, requires_grad=True)
    wq = quant_weight(4, 4, per_channel=True)
    wq.init_from(w.detach())
    act = quant_relu(4)
    act.init_from(torch.randn(64, 4))
    x = torch.randn(16, 8)
    act(x @ wq(w).t()).sum().backward()
    assert w.grad is not None and w.grad.abs().sum() > 0
    assert wq.scale.grad.abs().sum() > 0
    assert act.scale.grad.abs().sum() > 0
