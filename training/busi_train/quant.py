"""Quantization-aware training: the part of Brevitas the paper used.

Weights: signed narrow-range integers w_int in [-(2^(b-1)-1), 2^(b-1)-1] times a
learned positive scale (per output channel for layers followed by BatchNorm, per
tensor for the logit layer, so one scale turns integer logits into real ones).
Activations: unsigned integers in [0, 2^b-1] times one learned scale per layer.
Rounding is floor(v + 0.5) (half up), the rounding an integer threshold
`acc >= t` implements exactly. Gradients: straight-through for the rounding,
LSQ (Esser et al. 2020) for the scales.

Besides that (uniform) form, the seed papers' quantizers in the form FINN executes
exactly (docs/training.md, "The seed papers' quantizers"): FINN multiplies integer
weights by a per-channel scale, and an activation is the count of per-channel
thresholds t_j <= acc, which the next layer multiplies as an integer. So

  weights "inq-pow2" (seeds/001, incremental network quantization): integers
    restricted to 0 and powers of two ({0,+-1} at 2 bits, {0,+-1,+-2,+-4} at 4),
    frozen group by group (largest magnitudes first: 50, 75, 87.5, 100% of each
    layer) while the rest train in float;
  weights "heq" (seeds/003, histogram-equalized quantization): the uniform grid
    with its step set once per epoch from the weights' n-quantiles (Eq. 3), not
    learned;
  activations "heq": the same for the unsigned activation (quantiles of the
    positive values);
  activations "kmeans" (seeds/004, k-means non-uniform quantization): decision
    boundaries halfway between 1-D k-means centres of the activation, re-fitted
    once per epoch; the OUTPUT stays the uniform level k times one step (the
    least-squares fit of k s to the centres), because a threshold node can move
    its boundaries anywhere but emits uniform integers.
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


WEIGHT_QUANTIZERS = ("uniform", "inq-pow2", "heq")
ACT_QUANTIZERS = ("uniform", "heq", "kmeans")
# INQ's accumulated portions of each layer's weights frozen to powers of two
# (Zhou et al. 2017, as seeds/001 uses it): the last step quantizes every weight.
INQ_PORTIONS = (0.5, 0.75, 0.875, 1.0)
# Calibration statistics use at most this many values of a tensor (torch.quantile's
# input limit is 2^24; a strided sample keeps the cost of a per-epoch refit small).
CALIB_VALUES = 1 << 20


def round_uniform(x, qmin, qmax):
    return torch.clamp(torch.floor(x + 0.5), qmin, qmax)


def round_pow2(x, qmax):
    """x (in units of the scale) to the nearest of 0, +-1, +-2, +-4, ... <= qmax by
    seeds/001's Eq. 2: 2^p for 3 * 2^(p-2) <= |x| < 3 * 2^(p-1), 0 below 1/2, the
    largest power of two <= qmax above."""
    a = x.abs()
    top = math.floor(math.log2(qmax))
    p = torch.floor(torch.log2(a.clamp_min(0.5) / 0.75)).clamp(0, top)
    return torch.where(a < 0.5, torch.zeros_like(x), torch.sign(x) * torch.pow(2.0, p))


def _sample(x):
    flat = x.detach().reshape(-1)
    return flat[::max(1, flat.numel() // CALIB_VALUES)].double()


def heq_step(values, n_levels, signed):
    """seeds/003's Eq. 3: the step whose rounding thresholds (i - 1/2) s best match
    the n-quantiles of the values (sum of the quantiles' magnitudes = sum of the
    thresholds'). Signed: n odd, levels -(n-1)/2..(n-1)/2, quantiles on both sides;
    unsigned (an activation after ReLU): levels 0..n-1, the quantiles of the positive
    values, whose mass the levels share."""
    v = _sample(values)
    if signed:
        q = torch.quantile(v, torch.arange(1, n_levels, dtype=torch.float64) / n_levels)
        return float(4 * q.abs().sum() / (n_levels - 1) ** 2)
    v = v[v > 0]
    if v.numel() == 0:
        return 1e-8
    q = torch.quantile(v, torch.arange(1, n_levels, dtype=torch.float64) / n_levels)
    return float(2 * q.sum() / (n_levels - 1) ** 2)


def kmeans_levels(values, n_levels, iters=30):
    """seeds/004's KNQ in one dimension (Lloyd's algorithm) on the activation after
    ReLU, centres started at 0 (ReLU's mass there) and the positive values'
    quantiles. Returns (boundaries: the n-1 midpoints between sorted centres, step:
    the least-squares s of k s ~ centre_k)."""
    v = _sample(F.relu(values))
    positive = v[v > 0]
    if positive.numel() == 0:
        return torch.full((n_levels - 1,), 1e-8, dtype=torch.float64), 1e-8
    c = torch.cat([torch.zeros(1, dtype=torch.float64),
                   torch.quantile(positive, (torch.arange(n_levels - 1, dtype=torch.float64) + 0.5) / (n_levels - 1))])
    for _ in range(iters):
        assign = torch.bucketize(v, (c[1:] + c[:-1]) / 2)
        sums = torch.zeros(n_levels, dtype=torch.float64).index_add_(0, assign, v)
        counts = torch.bincount(assign, minlength=n_levels).double()
        c = torch.where(counts > 0, sums / counts.clamp_min(1), c).sort().values
    k = torch.arange(n_levels, dtype=torch.float64)
    step = float((k * c).sum() / (k * k).sum())
    return (c[1:] + c[:-1]) / 2, max(step, 1e-8)


def best_scale(x, qmin, qmax, dim=None, steps=100, to_levels=None):
    """Scale minimizing the quantization MSE of x (per slice along dim 0 when dim is
    not None), searched over fractions of the largest magnitude; used to start QAT.
    to_levels(x / s): the grid (default: uniform rounding into [qmin, qmax])."""
    to_levels = to_levels or (lambda v: round_uniform(v, qmin, qmax))
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
        err = ((to_levels(x / s) * s - x) ** 2).mean(dim=1)
        better = err < best_err
        best_err = torch.where(better, err, best_err)
        best = torch.where(better, s[:, 0], best)
    return best


class quant_weight(nn.Module):
    """Holds a layer's weight quantizer: bits and a scale (per channel or tensor),
    learned (uniform, inq-pow2) or set from the weights' quantiles (heq).
    inq-pow2 needs weight_shape: the frozen mask and integers are buffers, so a
    checkpoint resumes with the same partition."""

    def __init__(self, out_features, bits, per_channel, method="uniform", weight_shape=None):
        super().__init__()
        if method not in WEIGHT_QUANTIZERS:
            raise ValueError(f"weight quantizer {method!r}: not one of {WEIGHT_QUANTIZERS}")
        self.bits, self.per_channel, self.method = bits, per_channel, method
        self.scale = nn.Parameter(torch.ones(out_features if per_channel else 1),
                                  requires_grad=method != "heq")
        if method == "inq-pow2":
            if weight_shape is None:
                raise ValueError("inq-pow2 weight quantizer: weight_shape is needed for its frozen partition")
            self.register_buffer("frozen", torch.zeros(weight_shape, dtype=torch.bool))
            self.register_buffer("frozen_int", torch.zeros(weight_shape))

    def _levels(self, x):
        q = weight_qmax(self.bits)
        return round_pow2(x, q) if self.method == "inq-pow2" else round_uniform(x, -q, q)

    def _heq_scale(self, weight):
        # One step per layer, as seeds/003 (a 3x3 kernel's nine weights have no useful quantiles).
        return torch.full_like(self.scale, heq_step(weight, 2 * weight_qmax(self.bits) + 1, signed=True))

    def init_from(self, weight):
        q = weight_qmax(self.bits)
        with torch.no_grad():
            if self.method == "heq":
                self.scale.copy_(self._heq_scale(weight))
                return
            s = best_scale(weight, -q, q, dim=0 if self.per_channel else None, to_levels=self._levels)
            self.scale.copy_(s if self.per_channel else s.reshape(1))

    @torch.no_grad()
    def epoch_start(self, weight, epoch, n_epochs):
        """heq: the step from this epoch's quantiles; inq-pow2: freeze the largest
        unfrozen weights (|w| / s, over the layer) up to this epoch's portion."""
        if self.method == "heq":
            self.scale.copy_(self._heq_scale(weight))
        elif self.method == "inq-pow2":
            # portion i over the epochs e with ceil(e * 4 / n) = i + 1: the last epoch always quantizes all
            steps = len(INQ_PORTIONS)
            portion = INQ_PORTIONS[min(steps - 1, (epoch * steps + n_epochs - 1) // n_epochs - 1)]
            need = math.ceil(portion * weight.numel()) - int(self.frozen.sum())
            if need > 0:
                x = weight / self.scale_shaped(weight)
                magnitude = torch.where(self.frozen, torch.full_like(x, -1.0), x.abs()).reshape(-1)
                pick = torch.topk(magnitude, need).indices
                self.frozen.view(-1)[pick] = True
                self.frozen_int.view(-1)[pick] = self._levels(x).reshape(-1)[pick]

    def scale_shaped(self, weight):
        shape = [-1] + [1] * (weight.dim() - 1)
        return self.scale.clamp_min(1e-8).view(shape)

    def forward(self, weight):
        q = weight_qmax(self.bits)
        per_scale = weight[0].numel() if self.per_channel else weight.numel()
        factor = 1.0 / math.sqrt(per_scale * q)
        if self.method == "inq-pow2":
            # INQ: the frozen group is its power-of-two integers times the (still
            # learned) scale; the rest trains in float until its turn comes.
            s = _grad_scaled(self.scale_shaped(weight), factor)
            return torch.where(self.frozen, self.frozen_int * s, weight)
        return fake_quant(weight, self.scale_shaped(weight), -q, q, factor)

    def integers(self, weight):
        """The integer weights the package stores (exactly what forward multiplies)."""
        if self.method == "inq-pow2":
            if not bool(self.frozen.all()):
                raise ValueError(f"inq-pow2 weights: {int((~self.frozen).sum())} of {self.frozen.numel()} "
                                 "are not quantized yet (the incremental schedule did not reach its last "
                                 "portion); only a finished run exports")
            return self.frozen_int.clone()
        return self._levels(weight / self.scale_shaped(weight))


class quant_relu(nn.Module):
    """Unsigned b-bit activation, output level k times one step s.
    uniform: level = clamp(floor(x/s+0.5), 0, 2^b-1), s learned (LSQ);
    heq: the same grid, s set from the activation's quantiles (calibrate);
    kmeans: level = number of boundaries <= x, boundaries between k-means centres
    (calibrate). boundaries() is what an integer threshold node compares with."""

    def __init__(self, bits, method="uniform"):
        super().__init__()
        if method not in ACT_QUANTIZERS:
            raise ValueError(f"activation quantizer {method!r}: not one of {ACT_QUANTIZERS}")
        self.bits, self.method = bits, method
        self.scale = nn.Parameter(torch.ones(1), requires_grad=method == "uniform")
        if method == "kmeans":
            # float32, the precision the forward compares in; fold reads the same values.
            self.register_buffer("bounds", torch.arange(1, act_qmax(bits) + 1) - 0.5)

    @property
    def recalibrates(self):
        """Whether calibrate() runs again at every epoch (the step or the boundaries
        follow the activation's distribution instead of being learned)."""
        return self.method != "uniform"

    def init_from(self, x):
        with torch.no_grad():
            if self.method == "uniform":
                self.scale.copy_(best_scale(F.relu(x), 0, act_qmax(self.bits)).reshape(1))
            else:
                self.calibrate(x)

    @torch.no_grad()
    def calibrate(self, x):
        n = act_qmax(self.bits) + 1
        if self.method == "heq":
            self.scale.fill_(heq_step(x, n, signed=False))
        elif self.method == "kmeans":
            bounds, step = kmeans_levels(x, n)
            self.bounds.copy_(bounds.float())
            self.scale.fill_(step)

    def boundaries(self):
        """The activation values (float64) at which the level steps from j-1 to j, j = 1..2^b-1."""
        if self.method == "kmeans":
            return self.bounds.double()
        s = self.scale.detach().clamp_min(1e-8).double()
        return (torch.arange(1, act_qmax(self.bits) + 1, dtype=torch.float64) - 0.5) * s

    def forward(self, x):
        q = act_qmax(self.bits)
        if self.method == "kmeans":
            s = self.scale.clamp_min(1e-8)
            level = torch.bucketize(x, self.bounds, right=True).to(x.dtype)  # boundaries <= x
            # Straight-through inside the output's range, as the uniform grid's.
            window = torch.clamp(x, 0.0, float(q * s))
            return level * s + window - window.detach()
        per_scale = x[0].numel()
        return fake_quant(x, self.scale.clamp_min(1e-8), 0, q, 1.0 / math.sqrt(per_scale * q))
