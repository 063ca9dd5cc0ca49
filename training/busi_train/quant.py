"""Quantization-aware training: the part of Brevitas the paper used.

Weights: signed narrow-range integers w_int in [-(2^(b-1)-1), 2^(b-1)-1] times a
learned positive scale (per output channel for layers followed by BatchNorm, per
tensor for the logit layer, so one scale turns integer logits into real ones).
Activations: unsigned integers in [0, 2^b-1] times one learned scale per layer.
Rounding is floor(v + 0.5) (half up), the rounding an integer threshold
`acc >= t` implements exactly. Gradients: straight-through for the rounding,
LSQ (Esser et al. 2020) for the scales.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class _round_half_up(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return torch.floor(x + 0.5)

    @staticmethod
    def backward(ctx, g):
        return g


def round_half_up_ste(x):
    return _round_half_up.apply(x)


def _grad_scaled(s, factor):
    # Forward value s, gradient scaled by factor (LSQ's step-size gradient scale).
    return (s - s * factor).detach() + s * factor


def weight_qmax(bits):
    return 2 ** (bits - 1) - 1


def act_qmax(bits):
    return 2 ** bits - 1


def fake_quant(x, scale, qmin, qmax, grad_factor):
    s = _grad_scaled(scale, grad_factor)
    return round_half_up_ste(torch.clamp(x / s, qmin, qmax)) * s


def best_scale(x, qmin, qmax, dim=None, steps=100):
    """Scale minimizing the quantization MSE of x (per slice along dim 0 when dim is
    not None), searched over fractions of the largest magnitude; used to start QAT."""
    if dim is None:
        x = x.reshape(1, -1)
    else:
        x = x.reshape(x.shape[0], -1)
    peak = x.abs().amax(dim=1).clamp_min(1e-8)
    qpeak = max(abs(qmin), abs(qmax))
    best_err = torch.full_like(peak, float("inf"))
    best = peak / qpeak
    for i in range(1, steps + 1):
        s = (peak * i / steps / qpeak)[:, None]
        err = ((torch.clamp(torch.floor(x / s + 0.5), qmin, qmax) * s - x) ** 2).mean(dim=1)
        better = err < best_err
        best_err = torch.where(better, err, best_err)
        best = torch.where(better, s[:, 0], best)
    return best


class quant_weight(nn.Module):
    """Holds a layer's weight quantizer: bits and a learned scale (per channel or tensor)."""

    def __init__(self, out_features, bits, per_channel):
        super().__init__()
        self.bits = bits
        self.per_channel = per_channel
        self.scale = nn.Parameter(torch.ones(out_features if per_channel else 1))

    def init_from(self, weight):
        q = weight_qmax(self.bits)
        with torch.no_grad():
            s = best_scale(weight, -q, q, dim=0 if self.per_channel else None)
            self.scale.copy_(s if self.per_channel else s.reshape(1))

    def scale_shaped(self, weight):
        shape = [-1] + [1] * (weight.dim() - 1)
        return self.scale.clamp_min(1e-8).view(shape)

    def forward(self, weight):
        q = weight_qmax(self.bits)
        per_scale = weight[0].numel() if self.per_channel else weight.numel()
        return fake_quant(weight, self.scale_shaped(weight), -q, q,
                          1.0 / math.sqrt(per_scale * q))

    def integers(self, weight):
        """The integer weights the package stores (exactly what forward multiplies)."""
        q = weight_qmax(self.bits)
        return torch.clamp(torch.floor(weight / self.scale_shaped(weight) + 0.5), -q, q)


class quant_relu(nn.Module):
    """Unsigned b-bit activation with one learned scale: level = clamp(floor(x/s+0.5), 0, 2^b-1)."""

    def __init__(self, bits):
        super().__init__()
        self.bits = bits
        self.scale = nn.Parameter(torch.ones(1))

    def init_from(self, x):
        with torch.no_grad():
            self.scale.copy_(best_scale(F.relu(x), 0, act_qmax(self.bits)).reshape(1))

    def forward(self, x):
        q = act_qmax(self.bits)
        per_scale = x[0].numel()
        return fake_quant(x, self.scale.clamp_min(1e-8), 0, q, 1.0 / math.sqrt(per_scale * q))
