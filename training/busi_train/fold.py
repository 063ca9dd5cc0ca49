"""Folds a trained network into the package's integer (or float) layers.

Quantized, hidden layer l with integer weights W (per-channel scale w_c), input
scale a (1/255 for the first layer: the input is the uint8 pixel; the previous
layer's activation scale otherwise), BatchNorm y = k_c z + m_c (eval statistics)
and the activation's boundaries b_j (the value at which its level steps from j-1
to j: (j - 1/2) s for the uniform grid's clamp(floor(y/s + 0.5), 0, 2^b-1), the
k-means midpoints for quant.quant_relu's "kmeans"), so
level >= j  <=>  k_c w_c a acc >= b_j - m_c. With A = k_c w_c a:
A > 0: acc >= ceil((b_j - m_c) / A); A < 0: flip the channel's weights
(acc' = -acc, as FINN does) and the same formula holds with |A|; A == 0: the level
is a constant. Computed in float64, clamped to int32. The next layer's input scale
is the activation's output step s, whatever the boundaries.
The last layer: logits = acc * (w * a), per-tensor weight scale, no BatchNorm.
"""
import math

import numpy as np
import torch

from .model import POOLED

INT32_MIN, INT32_MAX = -2 ** 31, 2 ** 31 - 1


def _bn_affine(bn):
    k = bn.weight.double() / torch.sqrt(bn.running_var.double() + bn.eps)
    m = bn.bias.double() - k * bn.running_mean.double()
    return k.numpy(), m.numpy()


def thresholds_for(k, m, w_scale, in_scale, boundaries):
    """(thresholds [out][2^b-1] int64, sign flip per channel) for one hidden layer;
    boundaries: the activation's 2^b-1 level boundaries, nondecreasing."""
    n = len(k)
    q = len(boundaries)
    a = k * w_scale * in_scale
    t = np.empty((n, q), dtype=np.int64)
    flip = a < 0
    for c in range(n):
        for j in range(1, q + 1):
            bound = float(boundaries[j - 1]) - m[c]
            if a[c] == 0:
                t[c, j - 1] = INT32_MIN if bound <= 0 else INT32_MAX
            else:
                v = bound / abs(a[c])
                t[c, j - 1] = INT32_MIN if v <= INT32_MIN else INT32_MAX if v >= INT32_MAX \
                    else int(math.ceil(v))
    return t, flip


@torch.no_grad()
def quantized_layers(model):
    """The package layers (see package.build_package) and the logit scale of a QAT model."""
    if not model.quantized:
        raise ValueError("quantized_layers: the model is a float network")
    model.eval()
    out = []
    in_scale = 1.0 / 255.0
    layers = model.layers()
    for i, layer in enumerate(layers):
        w_int = layer.wq.integers(layer.weight).double().numpy().astype(np.int64)
        w_scale = layer.wq.scale.clamp_min(1e-8).double().numpy()
        kind = layer.kind
        if layer.last:
            assert w_scale.size == 1
            out.append({"type": kind, "weights": w_int, "weight_bits": layer.wq.bits})
            return out, float(w_scale[0] * in_scale)
        k, m = _bn_affine(layer.bn)
        act_scale = float(layer.act.scale.clamp_min(1e-8).double())
        t, flip = thresholds_for(k, m, w_scale, in_scale, layer.act.boundaries().numpy())
        w_int[flip] = -w_int[flip]
        out.append({"type": kind, "weights": w_int, "weight_bits": layer.wq.bits,
                    "thresholds": t, "act_bits": model.abits})
        if i < len(POOLED) and POOLED[i]:
            out.append({"type": "maxpool", "kernel": 2})
        in_scale = act_scale
    raise AssertionError("network without a last layer")


@torch.no_grad()
def float_layers(model):
    """The float package layers: BatchNorm folded into weights and bias, the 1/255
    input scaling folded into the first layer's weights."""
    if model.quantized:
        raise ValueError("float_layers: the model is quantized")
    model.eval()
    out = []
    for i, layer in enumerate(model.layers()):
        w = layer.weight.double().numpy().copy()
        if i == 0:
            w /= 255.0
        if layer.last:
            out.append({"type": layer.kind, "weights": w.astype(np.float32),
                        "bias": np.zeros(w.shape[0], np.float32)})
            return out
        k, m = _bn_affine(layer.bn)
        w *= k.reshape([-1] + [1] * (w.ndim - 1))
        out.append({"type": layer.kind, "weights": w.astype(np.float32),
                    "bias": m.astype(np.float32), "relu": True})
        if i < len(POOLED) and POOLED[i]:
            out.append({"type": "maxpool", "kernel": 2})
    raise AssertionError("network without a last layer")
