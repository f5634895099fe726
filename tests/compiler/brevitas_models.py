"""Small Brevitas 1W1A models shaped like FINN's bnn_pynq examples, exported to QONNX for the import tests.

Tiny widths keep export and validation to seconds. Every builder is seeded and
gives BatchNorms random statistics, with some negative and some zero scales, so
the folded thresholds take both directions and the constant case.
"""

from __future__ import annotations

import torch
import torch.nn as nn
from brevitas.export import export_qonnx
from brevitas.nn import QuantConv2d, QuantHardTanh, QuantIdentity, QuantLinear
from brevitas.quant import (
    Int8ActPerTensorFixedPoint,
    Int8WeightPerTensorFloat,
    SignedBinaryActPerTensorConst,
    SignedBinaryWeightPerTensorConst,
    Uint8ActPerTensorFloat,
)

# FINN's bnn_pynq models binarise weights with a constant scale 1.0; Brevitas's own default is 0.1.
UnitBinaryWeight = SignedBinaryWeightPerTensorConst.let(scaling_const=1.0)


def _binary_act():
    return QuantIdentity(act_quant=SignedBinaryActPerTensorConst)


def _randomise_norm(norm: nn.Module, gen: torch.Generator, fan_in: int) -> None:
    """BN statistics on the scale of the integer sums; channel 0 negative, channel 1 zero scale."""
    c = norm.num_features
    with torch.no_grad():
        norm.weight.copy_(torch.randn(c, generator=gen))
        norm.weight[0] = -abs(norm.weight[0]) - 0.1
        norm.weight[1] = 0.0
        norm.bias.copy_(torch.randn(c, generator=gen))
        norm.running_mean.copy_(torch.randn(c, generator=gen) * fan_in ** 0.5)
        norm.running_var.copy_(torch.rand(c, generator=gen) * fan_in + 0.5)


class BinaryMLP(nn.Module):
    """TFC/SFC shape: binary input quant, then QuantLinear + BN + binary activation per hidden layer, then QuantLinear.

    ``first`` picks the input quantiser: ``"binary"`` (BipolarQuant on the
    float input, after FINN's ``2 x - 1``) or ``"int8"`` (an 8-bit Quant).
    ``last_norm`` adds a BatchNorm after the score layer (per class: refused).
    """

    def __init__(self, in_features=16, hidden=(12, 10), classes=5, *, first="binary", last_bias=False,
                 last_norm=False, score_affine=None, weight_quant=UnitBinaryWeight, hidden_act=None, image=None,
                 preprocess=True, seed=0):
        super().__init__()
        self.image = image  # bnn_pynq's FC takes images and flattens them first
        self.preprocess = preprocess
        gen = torch.Generator().manual_seed(seed)
        self.first = first
        if first == "binary":
            self.input_quant = _binary_act()
        else:
            self.input_quant = QuantIdentity(act_quant=Int8ActPerTensorFixedPoint)
        layers = []
        width = in_features
        for h in hidden:
            linear = QuantLinear(width, h, bias=False, weight_quant=weight_quant)
            norm = nn.BatchNorm1d(h)
            with torch.no_grad():
                linear.weight.copy_(torch.randn(h, width, generator=gen))
            _randomise_norm(norm, gen, width)
            act = hidden_act() if hidden_act else QuantHardTanh(act_quant=SignedBinaryActPerTensorConst)
            layers += [linear, norm, act]
            width = h
        last = QuantLinear(width, classes, bias=last_bias, weight_quant=weight_quant)
        with torch.no_grad():
            last.weight.copy_(torch.randn(classes, width, generator=gen))
            if last_bias:
                last.bias.copy_(torch.randn(classes, generator=gen))
        layers.append(last)
        if last_norm:
            norm = nn.BatchNorm1d(classes)
            _randomise_norm(norm, gen, width)
            layers.append(norm)
        if score_affine is not None:
            layers.append(ScaleShift(*score_affine))
        self.features = nn.Sequential(*layers)
        self.in_features = in_features
        self.eval()

    def forward(self, x):
        if self.image is not None:
            x = x.view(x.shape[0], -1)
        if self.first == "binary" and self.preprocess:
            x = 2.0 * x - 1.0  # FINN's bnn_pynq preprocessing: [0, 1] -> [-1, 1]
        return self.features(self.input_quant(x))


class ScaleShift(nn.Module):
    """One scale and shift for the whole tensor (like bnn_pynq's TensorNorm in eval): the same for every class."""

    def __init__(self, scale: float, shift: float):
        super().__init__()
        self.scale, self.shift = scale, shift

    def forward(self, x):
        return x * self.scale + self.shift


class BinaryCNV(nn.Module):
    """CNV shape without padding: conv-BN-sign, conv-BN-sign-maxpool, flatten, dense-BN-sign, dense."""

    def __init__(self, channels=(6, 8), image=(1, 10, 10), hidden=10, classes=4, *, padding=0, first="binary",
                 first_padding=None, pool_before_norm=False, seed=0):
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        c_in, h, w = image
        self.first = first
        self.input_quant = _binary_act() if first == "binary" else QuantIdentity(act_quant=Int8ActPerTensorFixedPoint)
        layers = []
        for i, c in enumerate(channels):
            if i == 0 and first_padding is not None:
                padding, rest = first_padding, padding
            conv = QuantConv2d(c_in, c, 3, padding=padding, bias=False, weight_quant=UnitBinaryWeight)
            norm = nn.BatchNorm2d(c)
            with torch.no_grad():
                conv.weight.copy_(torch.randn(conv.weight.shape, generator=gen))
            _randomise_norm(norm, gen, c_in * 9)
            h, w = h - 2 + 2 * padding, w - 2 + 2 * padding
            if i == 0 and first_padding is not None:
                padding = rest
            pool = i == len(channels) - 1
            if pool and pool_before_norm:
                layers += [conv, nn.MaxPool2d(2), norm, QuantIdentity(act_quant=SignedBinaryActPerTensorConst)]
            else:
                layers += [conv, norm, QuantIdentity(act_quant=SignedBinaryActPerTensorConst)]
                if pool:
                    layers.append(nn.MaxPool2d(2))
            if pool:
                h, w = h // 2, w // 2
            c_in = c
        layers.append(nn.Flatten())
        fan = c_in * h * w
        dense = QuantLinear(fan, hidden, bias=False, weight_quant=UnitBinaryWeight)
        norm = nn.BatchNorm1d(hidden)
        with torch.no_grad():
            dense.weight.copy_(torch.randn(hidden, fan, generator=gen))
        _randomise_norm(norm, gen, fan)
        last = QuantLinear(hidden, classes, bias=False, weight_quant=UnitBinaryWeight)
        with torch.no_grad():
            last.weight.copy_(torch.randn(classes, hidden, generator=gen))
        layers += [dense, norm, QuantIdentity(act_quant=SignedBinaryActPerTensorConst), last]
        self.features = nn.Sequential(*layers)
        self.image = image
        self.eval()

    def forward(self, x):
        if self.first == "binary":
            x = 2.0 * x - 1.0
        return self.features(self.input_quant(x))


def uint8_activation():
    return QuantIdentity(act_quant=Uint8ActPerTensorFloat)


def export(model: nn.Module, path, *, dynamo: bool) -> None:
    """QONNX export through either of torch's exporters (TorchScript: dynamo=False)."""
    shape = (1, *model.image) if getattr(model, "image", None) else (1, model.in_features)
    export_qonnx(model, torch.zeros(shape), str(path), dynamo=dynamo)


def bnn_pynq(name: str, seed: int = 0) -> nn.Module:
    """One of Brevitas's own bnn_pynq models (the FINN examples: tfc_1w1a, sfc_1w1a, lfc_1w1a, cnv_1w1a).

    Untrained (the pretrained weights are a download): seeded random weights and BatchNorm
    statistics, with negative and zero scales, so the thresholds take every form.
    """
    from brevitas_examples.bnn_pynq.models import model_with_cfg

    torch.manual_seed(seed)
    model, _ = model_with_cfg(name, pretrained=False)
    gen = torch.Generator().manual_seed(seed)
    for mod in model.modules():
        if isinstance(mod, (nn.BatchNorm1d, nn.BatchNorm2d)):
            fan_in = 64 if isinstance(mod, nn.BatchNorm2d) else mod.num_features
            _randomise_norm(mod, gen, fan_in)
    model.image = (3, 32, 32) if name.startswith("cnv") else (1, 28, 28)
    return model.eval()
