"""The paper's custom CNN, float or quantized (one class, bit widths as parameters).

Six 3x3 valid convs 1->8->16->32->32->32->32, each followed by BatchNorm and ReLU
(quantized: an unsigned b-bit activation), 2x2 max-pool after the first five,
dense 512->128->64 (BatchNorm, ReLU) and 64->3 logits. No biases anywhere (as in
the paper's Brevitas network); the input is pixels/255.

width > 1 multiplies every conv's and dense layer's width (not the input or the
logits): a larger float teacher for distillation (cv.py --teacher-width), trained
only; the runtime runs the paper's widths, so it is never exported.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from .quant import quant_relu, quant_weight

CONV_CHANNELS = (1, 8, 16, 32, 32, 32, 32)
DENSE_FEATURES = (512, 128, 64, 3)
POOLED = (True, True, True, True, True, False)


class qlayer(nn.Module):
    """conv or dense, optional weight quantizer, optional BatchNorm + activation."""

    def __init__(self, kind, n_in, n_out, wbits, abits, last=False, weight_quant="uniform", act_quant="uniform"):
        super().__init__()
        self.kind = kind
        if kind == "conv":
            self.weight = nn.Parameter(torch.empty(n_out, n_in, 3, 3))
        else:
            self.weight = nn.Parameter(torch.empty(n_out, n_in))
        nn.init.kaiming_uniform_(self.weight, a=5 ** 0.5)
        self.wq = quant_weight(n_out, wbits, per_channel=not last, method=weight_quant,
                               weight_shape=self.weight.shape) if wbits else None
        self.last = last
        if not last:
            self.bn = nn.BatchNorm2d(n_out) if kind == "conv" else nn.BatchNorm1d(n_out)
            self.act = quant_relu(abits, act_quant) if abits else nn.ReLU()

    def pre_activation(self, x):
        w = self.wq(self.weight) if self.wq is not None else self.weight
        return F.conv2d(x, w) if self.kind == "conv" else F.linear(x, w)

    def forward(self, x):
        y = self.pre_activation(x)
        if self.last:
            return y
        return self.act(self.bn(y))


class busi_net(nn.Module):
    """ends_wbits: weight bits of the first conv and the logit layer when they
    differ from wbits (FINN sets bit widths per layer; the two ends hold the
    fewest weights and see the raw pixels and produce the logits).
    weight_quant, act_quant: the quantizers' methods (quant.WEIGHT_QUANTIZERS,
    quant.ACT_QUANTIZERS). width: the layers' width multiplier (float only)."""

    def __init__(self, wbits=None, abits=None, ends_wbits=None, weight_quant="uniform", act_quant="uniform",
                 width=1):
        super().__init__()
        assert (wbits is None) == (abits is None), "quantize both weights and activations or neither"
        assert ends_wbits is None or wbits is not None, "ends_wbits needs a quantized network"
        assert width == 1 or wbits is None, "a widened network is a float teacher only"
        self.wbits, self.abits, self.ends_wbits, self.width = wbits, abits, ends_wbits, width
        # The flattened last conv map (32 x 4 x 4 = 512) widens with the convs.
        self.conv_channels = CONV_CHANNELS[:1] + tuple(c * width for c in CONV_CHANNELS[1:])
        dense_features = tuple(f * width for f in DENSE_FEATURES[:-1]) + DENSE_FEATURES[-1:]
        self.weight_quant, self.act_quant = weight_quant, act_quant
        quantizers = {"weight_quant": weight_quant, "act_quant": act_quant}
        ends = ends_wbits or wbits
        n_conv, n_dense = len(CONV_CHANNELS) - 1, len(DENSE_FEATURES) - 1
        self.convs = nn.ModuleList(
            qlayer("conv", self.conv_channels[i], self.conv_channels[i + 1], ends if i == 0 else wbits, abits,
                   **quantizers)
            for i in range(n_conv))
        self.dense = nn.ModuleList(
            qlayer("dense", dense_features[i], dense_features[i + 1],
                   ends if i == n_dense - 1 else wbits, abits, last=(i == n_dense - 1), **quantizers)
            for i in range(n_dense))

    @property
    def quantized(self):
        return self.wbits is not None

    def layers(self):
        return list(self.convs) + list(self.dense)

    def forward(self, x):
        """x: pixels/255, N x 1 x 255 x 255 float."""
        return self.forward_features(x)[0]

    def forward_features(self, x):
        """(logits, [each conv block's output, after its pool]): the feature maps
        feed training-only heads (lesion_decoder); the deployed network is forward()."""
        features = []
        for layer, pool in zip(self.convs, POOLED):
            x = layer(x)
            if pool:
                x = F.max_pool2d(x, 2)
            features.append(x)
        x = torch.flatten(x, 1)
        for layer in self.dense:
            x = layer(x)
        return x, features

    @torch.no_grad()
    def init_quantizers(self, calibration_x):
        """Start QAT from the float weights: MSE-best weight scales (heq: the
        quantile step), and activation scales (or boundaries) from the float
        network's pre-activations on a calibration batch."""
        self._calibrate(calibration_x, start=True)

    @property
    def calibrates_every_epoch(self):
        """Whether epoch_start_quantizers does anything (it needs a calibration batch)."""
        return self.quantized and (self.weight_quant != "uniform" or self.act_quant != "uniform")

    @property
    def exportable(self):
        """False for a widened teacher, and while an inq-pow2 schedule has weights
        left in float."""
        return self.width == 1 and all(layer.wq is None or layer.wq.method != "inq-pow2" or bool(layer.wq.frozen.all())
                   for layer in self.layers())

    @torch.no_grad()
    def epoch_start_quantizers(self, calibration_x, epoch, n_epochs):
        """Before QAT epoch `epoch` of n_epochs: the weight quantizers' per-epoch
        step (heq: new step; inq-pow2: freeze the next portion), and the
        activation steps or boundaries (heq, kmeans) refitted to the network as it
        now is, on a calibration batch."""
        self._calibrate(calibration_x, start=False, epoch=epoch, n_epochs=n_epochs)

    def _calibrate(self, x, start, epoch=None, n_epochs=None):
        was_training = self.training
        self.eval()
        for i, layer in enumerate(self.layers()):
            if start:
                layer.wq.init_from(layer.weight)
            else:
                layer.wq.epoch_start(layer.weight, epoch, n_epochs)
            if layer.last:
                break
            y = layer.bn(layer.pre_activation(x))
            if start:
                layer.act.init_from(y)
            elif layer.act.recalibrates:
                layer.act.calibrate(y)
            x = layer.act(y)
            if i < len(self.convs) and POOLED[i]:
                x = F.max_pool2d(x, 2)
            if i == len(self.convs) - 1:
                x = torch.flatten(x, 1)
        self.train(was_training)


class lesion_decoder(nn.Module):
    """Training-only segmentation head (multi-task learning from the lesion masks):
    conv2-conv4's pooled maps (16x62x62, 32x30x30, 32x14x14) are projected to 16
    channels, upsampled to 62x62, summed, and turned into one lesion logit per
    pixel. It is not exported: the deployed network is unchanged and only its
    features are shaped by the second task. in_channels: conv2-conv4's widths
    (busi_net.conv_channels[2:5] of a widened network)."""

    def __init__(self, width=16, in_channels=CONV_CHANNELS[2:5]):
        super().__init__()
        self.lateral = nn.ModuleList(nn.Conv2d(c, width, 1) for c in in_channels)
        self.head = nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width),
                                  nn.ReLU(), nn.Conv2d(width, 1, 1))

    def forward(self, features):
        f2, f3, f4 = features[1:4]
        size = f2.shape[-2:]
        x = sum(F.interpolate(lat(f), size=size, mode="bilinear", align_corners=False)
                if f.shape[-2:] != size else lat(f)
                for lat, f in zip(self.lateral, (f2, f3, f4)))
        return self.head(x)


def random_float_net(seed, mean=0.2, var=(0.5, 2.0), bias=0.1):
    """A seeded float network no training produced, in eval mode: Kaiming-random
    weights and non-trivial BatchNorm statistics (running mean in +-mean, running
    variance in var, scale in [0.5, 1.5], shift in +-bias), so folding and the
    backends are exercised beyond the identity BatchNorm of a fresh network."""
    torch.manual_seed(seed)
    net = busi_net()
    for layer in net.layers():
        if not layer.last:
            layer.bn.running_mean.uniform_(-mean, mean)
            layer.bn.running_var.uniform_(*var)
            layer.bn.weight.data.uniform_(0.5, 1.5)
            layer.bn.bias.data.uniform_(-bias, bias)
    return net.eval()
