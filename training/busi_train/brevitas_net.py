"""The paper's network built from Brevitas's own layers, exported with Brevitas's
own QONNX exporter: the check that busi-model import reads what the field's tools
write, not only what this project writes. Needs brevitas (requirements/python.txt,
the .venv interpreter).

  .venv/bin/python -m busi_train.brevitas_net checkpoints/busi-w2a4.pt -o brevitas-w2a4.onnx

Layers, as the paper's Brevitas network: QuantIdentity (unsigned 8-bit, constant
scale 1/255: lossless on the pixels/255 input), then six QuantConv2d (no bias,
per-output-channel weight scales) each with BatchNorm2d and QuantReLU, 2x2
MaxPool after the first five, Flatten, QuantLinear 512->128->64 with BatchNorm1d
and QuantReLU, and a per-tensor QuantLinear 64->3.

Weights come from one of this project's quantized checkpoints (weights, BatchNorm
statistics, activation ranges: max_val = scale * (2^b - 1)); the weight scales are
Brevitas's own (per-channel max statistics of the loaded weights, its default
Int8WeightPerTensorFloat family), so the integers and thresholds are Brevitas's
and FINN-style streamlining has real work to do. Activations round half to even
(torch.round), as Brevitas does.
"""
import argparse

import torch
import torch.nn as nn

from .model import CONV_CHANNELS, DENSE_FEATURES, POOLED


def build(wbits, abits):
    from brevitas.nn import QuantConv2d, QuantIdentity, QuantLinear, QuantReLU
    from brevitas.quant import Int8WeightPerTensorFloat, Uint8ActPerTensorFloat

    def act():
        # A constant range (set from the checkpoint): scale = max_val / (2^b - 1).
        return QuantReLU(act_quant=Uint8ActPerTensorFloat, bit_width=abits, scaling_impl_type="const",
                         scaling_const=1.0, max_val=1.0, return_quant_tensor=False)

    class brevitas_busi_net(nn.Module):
        def __init__(self):
            super().__init__()
            self.input_quant = QuantIdentity(act_quant=Uint8ActPerTensorFloat, bit_width=8,
                                             scaling_impl_type="const", scaling_const=1.0,
                                             max_val=1.0, return_quant_tensor=False)
            self.convs, self.conv_bns, self.conv_acts = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
            for i in range(len(CONV_CHANNELS) - 1):
                self.convs.append(QuantConv2d(CONV_CHANNELS[i], CONV_CHANNELS[i + 1], 3, bias=False,
                                              weight_quant=Int8WeightPerTensorFloat,
                                              weight_bit_width=wbits,
                                              weight_scaling_per_output_channel=True))
                self.conv_bns.append(nn.BatchNorm2d(CONV_CHANNELS[i + 1]))
                self.conv_acts.append(act())
            self.dense, self.dense_bns, self.dense_acts = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
            n_dense = len(DENSE_FEATURES) - 1
            for i in range(n_dense):
                last = i == n_dense - 1
                self.dense.append(QuantLinear(DENSE_FEATURES[i], DENSE_FEATURES[i + 1], bias=False,
                                              weight_quant=Int8WeightPerTensorFloat,
                                              weight_bit_width=wbits,
                                              weight_scaling_per_output_channel=not last))
                if not last:
                    self.dense_bns.append(nn.BatchNorm1d(DENSE_FEATURES[i + 1]))
                    self.dense_acts.append(act())

        def forward(self, pixels):
            x = self.input_quant(pixels / 255.0)
            for conv, bn, act, pool in zip(self.convs, self.conv_bns, self.conv_acts, POOLED):
                x = act(bn(conv(x)))
                if pool:
                    x = nn.functional.max_pool2d(x, 2)
            x = torch.flatten(x, 1)
            for i, layer in enumerate(self.dense):
                x = layer(x)
                if i < len(self.dense_bns):
                    x = self.dense_acts[i](self.dense_bns[i](x))
            return x

    return brevitas_busi_net()


def set_range(act, max_val):
    impl = act.act_quant.fused_activation_quant_proxy.tensor_quant.scaling_impl
    impl.value.value.fill_(max_val)  # a StatelessBuffer holding the constant


@torch.no_grad()
def from_checkpoint(model, wbits, abits):
    """A Brevitas network holding a busi_net checkpoint's quantized weights,
    BatchNorm statistics and activation ranges."""
    net = build(wbits, abits)
    ours = model.layers()
    theirs = list(zip(net.convs, net.conv_bns, net.conv_acts)) + \
        [(d, net.dense_bns[i] if i < len(net.dense_bns) else None,
          net.dense_acts[i] if i < len(net.dense_acts) else None) for i, d in enumerate(net.dense)]
    for layer, (lin, bn, act) in zip(ours, theirs):
        shape = [-1] + [1] * (layer.weight.dim() - 1)
        w = layer.wq.integers(layer.weight) * layer.wq.scale.clamp_min(1e-8).reshape(shape)
        lin.weight.copy_(w)
        if bn is not None:
            bn.load_state_dict(layer.bn.state_dict())
            qmax = 2 ** abits - 1
            scale = float(layer.act.scale.clamp_min(1e-8))
            set_range(act, scale * qmax)
    return net.eval()


def export(net, path, height=255, width=255):
    from brevitas.export import export_qonnx
    export_qonnx(net, torch.zeros(1, 1, height, width), str(path))


def main(argv=None):
    from .train import load_checkpoint
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", help="a quantized busi_net checkpoint (weights, BatchNorm, ranges)")
    p.add_argument("-o", "--output", required=True, help="the QONNX file Brevitas writes")
    args = p.parse_args(argv)
    model, ck = load_checkpoint(args.checkpoint)
    if not model.quantized:
        raise SystemExit(f"{args.checkpoint}: a float checkpoint; give a quantized one")
    if model.act_quant == "kmeans" or (model.weight_quant == "inq-pow2" and model.wbits > 2):
        # Brevitas's QuantReLU and weight quantizers here are uniform grids; k-means
        # boundaries and power-of-two weights above 2 bits would be silently re-rounded.
        raise SystemExit(f"{args.checkpoint}: {model.weight_quant} weights / {model.act_quant} activations at "
                         f"W{model.wbits}: not a uniform grid, which this Brevitas network holds")
    export(from_checkpoint(model, model.wbits, model.abits), args.output)
    print("wrote", args.output)


if __name__ == "__main__":
    main()
